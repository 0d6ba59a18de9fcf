/*
 * A pool's options and its shared mapping (see shared.h for the layout).
 * The parent keeps every pointer into the mapping in private memory, and
 * workers map the header read-only: nothing a worker writes can move what
 * anyone reads or writes.
 */
#include "local.h"
#include "procpool/worker/worker.h"
#include "procpool/sized.h"
#include "shm/region.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

static size_t round_pow2(size_t v)
{
    size_t r = 1;
    while (r < v)
        r <<= 1;
    return r;
}

int ppx__options_resolve(ppx_pool_options *o, const ppx_pool_options *in)
{
    if (in) {
        int rc = ppx__sized_in(o, sizeof *o, in, PPX__POOL_OPTIONS_MIN, "ppx_pool_options");
        if (rc)
            return rc;
    } else {
        memset(o, 0, sizeof *o);
        o->size = sizeof *o;
    }
    if (o->workers < 0 || o->workers > 1024)
        return PPX_EINVAL;
    if (o->workers == 0) {
        long n = sysconf(_SC_NPROCESSORS_ONLN);
        o->workers = n > 0 ? (int)(n > 1024 ? 1024 : n) : 1;
    }
    if (o->ring_bytes == 0)
        o->ring_bytes = 1u << 20;
    if (o->ring_bytes > (1u << 30))
        return PPX_EINVAL;
    o->ring_bytes = round_pow2(o->ring_bytes < 4096 ? 4096 : o->ring_bytes);
    if (o->max_payload == 0)
        o->max_payload = (size_t)256 << 20;
    if (o->max_payload > ((size_t)1 << 40))
        return PPX_EINVAL;
    /* The caller's value is bounded, not the default: that one follows a
     * max_payload of up to 1 TiB. */
    if (o->arena_bytes > ((size_t)1 << 40) && o->arena_bytes != PPX_ARENA_NONE)
        return PPX_EINVAL;
    if (o->arena_bytes == 0) /* two calls at the limit, with envelopes */
        o->arena_bytes = 2 * (o->max_payload + PPX__FRAME_SLACK);
    /* An outbox beyond the largest reply would never be used. */
    if (o->outbox_bytes == 0 || o->outbox_bytes > o->max_payload + PPX__FRAME_SLACK)
        o->outbox_bytes = o->max_payload + PPX__FRAME_SLACK;
    if (o->cancel_grace_ms == 0)
        o->cancel_grace_ms = 100;
    if (o->max_queued_per_worker == 0)
        o->max_queued_per_worker = 64;
    if (o->max_queued_per_worker > 4096)
        return PPX_EINVAL;
    return 0;
}

void ppx__want_wakeups(ppx__local *p, uint32_t v)
{
    for (int i = 0; i < p->nworkers; i++)
        atomic_store_explicit(&p->w[i].ws->parent_waiting, v, memory_order_relaxed);
}

void ppx__restamp_layout(ppx__local *p)
{
    ppx__shared *sh = p->sh;
    uint32_t nw = (uint32_t)p->nworkers;
    sh->magic = PPX__SHARED_MAGIC;
    sh->version = PPX__SHARED_VERSION;
    sh->nworkers = nw;
    sh->slots_per_worker = p->per;
    sh->ring_bytes = p->pool->opt.ring_bytes;
    sh->ring_stride = p->ring_stride;
    sh->region_off = p->region_off;
    sh->region_stride = p->region_stride;
    sh->block_bytes = p->block_bytes;
    sh->outbox_bytes = p->outbox_bytes;
    sh->max_payload = p->pool->opt.max_payload;
    sh->max_tasks_per_child = p->pool->opt.max_tasks_per_child;
    sh->max_rss_bytes = p->pool->opt.max_rss_bytes;
    sh->arena_off = p->arena.size ? (uint64_t)(p->arena.base - (unsigned char *)sh) : 0;
    sh->arena_bytes = p->arena.size;
    sh->live_off = (uint64_t)((char *)p->live - (char *)sh);
}

/* The parent's private view of worker i's region (see shared.h). */
static int map_worker(ppx__local *p, char *base, uint32_t i)
{
    ppx__worker *w = &p->w[i];
    char *region = base + p->region_off + (size_t)i * p->region_stride;
    ppx__ring *req = (ppx__ring *)(region + p->block_bytes);
    ppx__ring *resp = (ppx__ring *)((char *)req + p->ring_stride);
    w->ws = (ppx__wshared *)region;
    w->slots = (ppx__slot *)(region + sizeof(ppx__wshared));
    /* The mapping is fresh, so zeroed: both rings are empty, and their
     * pages are first touched by whoever uses them (the parent faulting
     * in every worker's ring headers here cost 2 page faults per worker
     * of pool creation). The stamp in a ring header (magic, version,
     * capacity) is left out: nothing reads it, each side takes the
     * capacity from the layout (ppx__port). */
    w->req = (ppx__port){.r = req, .cap = p->pool->opt.ring_bytes};
    w->resp = (ppx__port){.r = resp, .cap = p->pool->opt.ring_bytes};
    w->pidfd = -1;
    w->rx.max = p->pool->opt.max_payload + PPX__FRAME_SLACK;
    w->outbox = p->outbox_bytes ? (unsigned char *)region + p->block_bytes + 2 * p->ring_stride
                                : NULL;
    w->free_slots = malloc(p->per * sizeof *w->free_slots);
    if (!w->free_slots)
        return PPX_ENOMEM;
    for (uint32_t k = 0; k < p->per; k++) /* lowest first: warm cache lines */
        w->free_slots[k] = i * p->per + (p->per - 1 - k);
    w->nfree = p->per;
    return 0;
}

int ppx__layout_map(ppx__local *p)
{
    uint32_t nw = (uint32_t)p->nworkers;
    p->per = p->pool->opt.max_queued_per_worker;
    p->nslots = nw * p->per;
    size_t live_off = (sizeof(ppx__shared) + 63) & ~(size_t)63;
    /* The live table, then each worker's outbox count (shared.h). */
    p->region_off = ppx__page_round(live_off + (p->nslots + nw) * sizeof(uint32_t));
    p->block_bytes = ppx__page_round(sizeof(ppx__wshared) + p->per * sizeof(ppx__slot));
    p->ring_stride = ppx__page_round(ppx__ring_footprint(p->pool->opt.ring_bytes));
    /* An outbox holds the largest reply a worker may send through it;
     * bigger ones travel in ring chunks. */
    bool none = p->pool->opt.arena_bytes == PPX_ARENA_NONE;
    size_t outbox = none ? 0 : ppx__page_round(p->pool->opt.outbox_bytes);
    size_t arena = none ? 0 : ppx__page_round(p->pool->opt.arena_bytes);
    size_t bare = p->block_bytes + 2 * p->ring_stride;
    p->region_stride = bare + outbox;
    p->sh_len = p->region_off + nw * p->region_stride + arena;
    int rc = ppx__region_map(p->sh_len, (void **)&p->sh);
    if (rc == -ENOMEM && !none) {
        /* Strict overcommit charges even untouched shared pages: without
         * outboxes and arena, big frames still travel in ring chunks. */
        outbox = arena = 0;
        p->region_stride = bare;
        p->sh_len = p->region_off + nw * p->region_stride;
        rc = ppx__region_map(p->sh_len, (void **)&p->sh);
    }
    if (rc)
        return rc;
    char *base = (char *)p->sh;
    p->live = (_Atomic uint32_t *)(base + live_off);
    p->outbox_bytes = outbox;
    p->slot_task = calloc(p->nslots, sizeof *p->slot_task);
    p->slot_seq = calloc(p->nslots, sizeof *p->slot_seq);
    if (!p->slot_task || !p->slot_seq)
        return PPX_ENOMEM;
    for (uint32_t i = 0; i < nw; i++)
        if ((rc = map_worker(p, base, i)) != 0)
            return rc;
    rc = ppx__arena_init(&p->arena, arena ? base + p->region_off + nw * p->region_stride : NULL,
                         arena);
    if (rc)
        return rc;
    ppx__restamp_layout(p);
    return 0;
}

void ppx__layout_unmap(ppx__local *p)
{
    ppx__arena_destroy(&p->arena);
    ppx__region_unmap(p->sh, p->sh_len);
    p->sh = NULL;
}
