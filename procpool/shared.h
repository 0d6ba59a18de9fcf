/*
 * The pool's shared-memory layout, mapped before the first fork:
 *
 *   [ppx__shared header][slots[nslots]][wshared[nworkers]]
 *   [ring req0][ring resp0][req1]...[outbox0][outbox1]...[call arena]
 *
 * Outboxes and the arena carry big frames written once and read in place
 * (see arena.h and the OUTBOX/ARENA records in frame.h); their pages are
 * only touched when used (the mapping is MAP_NORESERVE).
 *
 * A slot describes one call that is in some worker's request ring. Its
 * state word packs seq (32 bits) | worker (16) | state (16), so that the
 * worker's claim and the parent's cancel or move are each one CAS:
 *
 *   QUEUED(seq)  --worker w claims-->      RUNNING(seq, w)
 *   QUEUED(seq)  --parent cancels-->       CANCELLED(seq)   worker skips it
 *   QUEUED(seq)  --parent moves it-->      QUEUED(seq + 1)  old record stale
 *   RUNNING(seq, w) --function returns-->  FINISHED(seq, w) before the reply
 *
 * Whichever CAS wins decides: a cancelled call never starts, a claimed
 * call is known to be running, and a moved call runs once. FINISHED keeps
 * the parent's cancel deadline from killing the worker for a call that
 * already ended. Only the parent writes FREE, QUEUED and CANCELLED; only
 * workers write RUNNING and FINISHED.
 */
#ifndef PPX_PROCPOOL_SHARED_H
#define PPX_PROCPOOL_SHARED_H
#include "../shm/ring.h"

#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

#define PPX__SHARED_MAGIC 0x70707850u /* "ppxP" */
#define PPX__SHARED_VERSION 3u

enum {
    PPX__SLOT_FREE = 0,
    PPX__SLOT_QUEUED,
    PPX__SLOT_RUNNING,
    PPX__SLOT_CANCELLED,
    PPX__SLOT_FINISHED, /* the function returned; the reply is on its way */
};

typedef struct ppx__slot {
    _Atomic uint64_t state;  /* seq | worker | state, see above */
    _Atomic uint32_t cancel; /* 1: the running call should stop */
    uint32_t reserved;
    /* Monotonic ns (CLOCK_MONOTONIC, the same clock in every process)
     * just before the worker called the function and just after it
     * returned; the parent zeroes both when it places the call. Written
     * by the worker before FINISHED and before its reply, so the parent
     * reads them once the reply or the worker's death is in. They feed
     * statistics and the trace only and are clamped, never trusted. */
    _Atomic int64_t started_ns;
    _Atomic int64_t ended_ns;
} ppx__slot;
_Static_assert(sizeof(ppx__slot) == 32, "slot layout is shared ABI");

static inline uint64_t ppx__slot_word(uint32_t seq, uint32_t worker, uint32_t st)
{
    return ((uint64_t)seq << 32) | ((uint64_t)(worker & 0xffff) << 16) | (st & 0xffff);
}
static inline uint32_t ppx__slot_seq(uint64_t w) { return (uint32_t)(w >> 32); }
static inline uint32_t ppx__slot_worker(uint64_t w) { return (uint32_t)(w >> 16) & 0xffff; }
static inline uint32_t ppx__slot_st(uint64_t w) { return (uint32_t)w & 0xffff; }

/* Per worker: what its start-up says back to the parent. */
#define PPX__INIT_ERROR_MAX 248
typedef struct ppx__wshared {
    _Atomic uint32_t ready; /* 1 once the initializer has run */
    /* 1 while the worker's outbox holds a reply the parent has not copied
     * out yet: set by the worker before it sends the OUTBOX record,
     * cleared (and futex-woken) by the parent. */
    _Atomic uint32_t outbox_busy;
    char init_error[PPX__INIT_ERROR_MAX]; /* when the initializer failed */
    /* Nanoseconds this worker process has spent inside worker functions,
     * stored by the worker alone after each call (a plain store of its
     * private running sum: one writer, no read-modify-write). The parent
     * adds it to the slot's total when the process ends and zeroes it
     * before the next one starts. On a cache line of its own (blocks
     * start 64-byte aligned), away from the words above. */
    _Atomic uint64_t busy_ns;
    uint64_t reserved[7];
} ppx__wshared;
_Static_assert(sizeof(ppx__wshared) == 320, "worker block layout is shared ABI");
_Static_assert(offsetof(ppx__wshared, busy_ns) == 256, "busy_ns has a cache line of its own");

typedef struct ppx__shared {
    uint32_t magic;
    uint32_t version;
    uint32_t nworkers;
    uint32_t nslots;
    uint64_t ring_bytes;   /* capacity of each ring */
    uint64_t ring_stride;  /* bytes between consecutive rings */
    uint64_t slots_off;
    uint64_t rings_off;
    uint64_t max_payload;
    uint64_t wshared_off;
    uint64_t max_tasks_per_child; /* 0: no limit */
    uint64_t max_rss_bytes;       /* 0: no limit */
    uint64_t arena_off, arena_bytes;   /* the call arena (see arena.h) */
    uint64_t outbox_off, outbox_bytes; /* per worker, outbox_bytes apart */
    /* 1: the parent is (or may soon be) asleep and wants the eventfd on
     * the next result or freed request space. Whoever swaps it to 0
     * signals; the parent sets it again after draining. */
    alignas(64) _Atomic uint32_t parent_waiting;
    /* 1: workers exit once their ring is empty. */
    _Atomic uint32_t shutdown;
} ppx__shared;

static inline ppx__slot *ppx__shared_slots(ppx__shared *s)
{
    return (ppx__slot *)((char *)s + s->slots_off);
}
static inline ppx__ring *ppx__shared_req(ppx__shared *s, uint32_t w)
{
    return (ppx__ring *)((char *)s + s->rings_off + (2 * (uint64_t)w) * s->ring_stride);
}
static inline ppx__ring *ppx__shared_resp(ppx__shared *s, uint32_t w)
{
    return (ppx__ring *)((char *)s + s->rings_off + (2 * (uint64_t)w + 1) * s->ring_stride);
}

static inline unsigned char *ppx__shared_outbox(ppx__shared *s, uint32_t w)
{
    return (unsigned char *)s + s->outbox_off + (uint64_t)w * s->outbox_bytes;
}

static inline ppx__wshared *ppx__shared_worker(ppx__shared *s, uint32_t w)
{
    return (ppx__wshared *)((char *)s + s->wshared_off) + w;
}

/* Wake the parent if it asked for it (see parent_waiting). */
void ppx__shared_wake_parent(ppx__shared *s, int efd);

#endif
