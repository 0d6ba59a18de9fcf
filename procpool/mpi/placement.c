/*
 * Rank 0's placement of calls on nodes, under the pool lock (no MPI
 * call): which node gets the next queued call, how many calls a node may
 * hold (its depth, from its measured speed), and work stealing: a call
 * sent to a busy node that has not started there is asked back for a
 * node with an idle worker. The node answers for itself (PPX__SKIP_
 * RETURNED or _KEPT), since only it knows whether the call started;
 * rank 0 re-places a call only once its node gave it back.
 */
#include "remote.h"
#include "serialize/envelope.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Here, not in remote.c: placement is what finds every node lost and
 * what has work to send; remote.c calls in here, never the reverse. */
void ppx__remote_wake(ppx_pool *p)
{
    ppx__remote *r = ppx__remote_of(p);
    r->has_work = true;
    pthread_cond_signal(&r->wake);
}

bool ppx__remote_all_lost(ppx__remote *r)
{
    for (int i = 0; i < r->nnodes; i++)
        if (!r->nodes[i].lost)
            return false;
    return true;
}

void ppx__remote_fail_lost(ppx_pool *p, ppx__task *t, const char *node, const char *why,
                           ppx__notify *n)
{
    ppx_future *f = ppx__task_fut(t);
    if (!f)
        return;
    ppx__task_drop_fut(t);
    p->unresolved--;
    p->stats.failed++;
    p->stats.crashed++;
    char msg[512];
    snprintf(msg, sizeof msg, "%s (task %llu) was lost with its node: %s", f->function,
             (unsigned long long)ppx__task_id(t), why);
    ppx__future_fail_at(f, "NodeLost", msg, "", 0, node, n);
}

/* The node with the fewest calls per worker and room for one more under
 * its depth; ties go to the node chosen last, which is still polling MPI
 * hot (see ppx__mpi_backoff_ns) while the others back off. -1 when all
 * are full. */
static int pick(ppx__remote *r)
{
    int best = -1;
    for (int k = 0; k < r->nnodes; k++) {
        int i = (int)((r->rr + (unsigned)k) % (unsigned)r->nnodes);
        ppx__node *nd = &r->nodes[i];
        if (nd->lost || nd->nfree == 0 || nd->inflight >= nd->depth)
            continue;
        if (best < 0 || (uint64_t)nd->inflight * (uint64_t)r->nodes[best].workers <
                            (uint64_t)r->nodes[best].inflight * (uint64_t)nd->workers)
            best = i;
    }
    if (best >= 0)
        r->rr = (unsigned)best;
    return best;
}

/* Busy time and completions of nd up to now; every PPX__RATE_NS of busy
 * time its rate is updated (half the old, half the new) and its depth
 * set to its workers plus what it completes in PPX__AHEAD_NS. */
void ppx__node_account(ppx__node *nd, int64_t now, uint32_t completed)
{
    if (nd->busy_at)
        nd->busy_ns += now - nd->busy_at;
    nd->busy_at = nd->inflight ? now : 0;
    nd->done_n += completed;
    if (nd->busy_ns < PPX__RATE_NS)
        return;
    double rate = (double)nd->done_n * 1e9 / (double)nd->busy_ns;
    nd->rate = nd->rate > 0 ? (nd->rate + rate) / 2 : rate;
    nd->done_n = 0;
    nd->busy_ns = 0;
    double ahead = nd->rate * (double)PPX__AHEAD_NS / 1e9;
    uint32_t depth = (uint32_t)nd->workers + (uint32_t)(ahead + 0.999);
    nd->depth = depth > nd->cap ? nd->cap : depth;
}

int ppx__packed_add(ppx__packed *pk, const void *b, size_t len)
{
    if (pk->len + len > pk->cap) {
        size_t cap = pk->cap ? pk->cap * 2 : 256;
        while (cap < pk->len + len)
            cap *= 2;
        unsigned char *c = realloc(pk->b, cap);
        if (!c)
            return PPX_ENOMEM;
        pk->b = c;
        pk->cap = cap;
    }
    memcpy(pk->b + pk->len, b, len);
    pk->len += len;
    return 0;
}

/* A skip envelope naming t on its node, appended to pk. */
int ppx__packed_skip(ppx__packed *pk, ppx__task *t)
{
    msgpack_sbuffer sb;
    msgpack_sbuffer_init(&sb);
    int rc = ppx__env_pack_skip(&sb, ppx__task_id(t), ppx__rt(t)->slot, 0) ? PPX_ENOMEM
                                                                            : ppx__packed_add(pk, sb.data, sb.size);
    msgpack_sbuffer_destroy(&sb);
    return rc;
}

/* Whether t is worth asking back: rank 0 kept its frame (a big one was
 * handed to MPI without a copy) and its node has not said it started it
 * (KEPT). An announced call may still wait for a worker there. */
static bool movable(ppx__task *t)
{
    return t->frame_len > 0 && !ppx__rt(t)->kept;
}

/* Queue empty, some node has idle workers: ask the other nodes for calls
 * they hold but have not started, newest first, one per idle worker. */
static bool steal(ppx__remote *r)
{
    if (r->queue.head)
        return false;
    int64_t idle = 0;
    for (int i = 0; i < r->nnodes; i++) {
        ppx__node *nd = &r->nodes[i];
        if (!nd->lost && nd->inflight < (uint32_t)nd->workers)
            idle += nd->workers - (int64_t)nd->inflight;
        idle -= nd->stealing;
    }
    bool asked = false;
    for (int i = 0; i < r->nnodes && idle > 0; i++) {
        ppx__node *nd = &r->nodes[i];
        if (nd->lost || nd->inflight <= (uint32_t)nd->workers)
            continue;
        for (ppx__task *t = ppx__list_last(&nd->held); t && idle > 0; t = ppx__task_prev(t)) {
            if (!movable(t) || ppx__rt(t)->stealing || !ppx__task_fut(t))
                continue;
            if (ppx__packed_skip(&nd->steals, t))
                return asked;
            ppx__rt(t)->stealing = true;
            nd->stealing++;
            idle--;
            asked = true;
        }
    }
    return asked;
}

/* Places queued calls on nodes while there is room, then steals for the
 * nodes left idle. */
void ppx__remote_pump(ppx_pool *p, ppx__notify *n)
{
    ppx__remote *r = ppx__remote_of(p);
    bool placed = false;
    while (r->queue.head) {
        int i = pick(r);
        if (i < 0)
            break;
        ppx__node *nd = &r->nodes[i];
        ppx__task *t = ppx__list_first(&r->queue);
        ppx__list_remove(&r->queue, &t->link);
        uint32_t s = nd->free_slots[--nd->nfree];
        nd->slot[s] = t;
        int64_t now = ppx__now_ns();
        ppx__node_account(nd, now, 0);
        nd->inflight++;
        if (nd->inflight == 1) {
            nd->heard_ns = now; /* its silence counts from now */
            nd->busy_at = now;
        }
        *ppx__rt(t) = (ppx__rtask){.at = PPX__AT_OUT, .node = i, .slot = s};
        /* Over MPI the header's seq carries what is left of the call's
         * deadline (it counts from submission, time queued here too): the
         * node's pool enforces it, as a local pool would. */
        uint32_t ms = 0;
        if (ppx__task_deadline(t)) {
            int64_t left = (ppx__task_deadline(t) - now + 999999) / 1000000;
            ms = left < 1 ? 1 : left > INT32_MAX ? INT32_MAX : (uint32_t)left;
        }
        ppx__env_restamp(t->frame, s, ms);
        ppx__list_push_back(&nd->out, &t->link);
        placed = true;
    }
    if (r->queue.head && ppx__remote_all_lost(r)) {
        while (r->queue.head) {
            ppx__task *t = ppx__list_first(&r->queue);
            ppx__list_remove(&r->queue, &t->link);
            ppx__remote_fail_lost(p, t, "", "every node of the MPI pool is lost", n);
            ppx__task_free(p, t);
        }
    }
    if (steal(r))
        placed = true;
    if (placed)
        ppx__remote_wake(p);
}

/* Takes t off its node (its slot, and the list it is in there) without
 * freeing it. */
void ppx__remote_unplace(ppx__node *nd, ppx__task *t)
{
    ppx__rtask *rt = ppx__rt(t);
    nd->slot[rt->slot] = NULL;
    nd->free_slots[nd->nfree++] = rt->slot;
    nd->inflight--;
    if (rt->stealing)
        nd->stealing--;
    ppx__list_remove(rt->at == PPX__AT_OUT ? &nd->out : &nd->held, &t->link);
    ppx__node_account(nd, ppx__now_ns(), 0);
}

/* t, given back by its node unstarted (or never sent to it), goes first
 * in the queue again; a call whose future is gone (cancelled meanwhile)
 * is freed instead. */
void ppx__remote_requeue(ppx_pool *p, ppx__node *nd, ppx__task *t)
{
    ppx__remote *r = ppx__remote_of(p);
    ppx__remote_unplace(nd, t);
    if (!ppx__task_fut(t)) {
        ppx__task_free(p, t);
        return;
    }
    *ppx__rt(t) = (ppx__rtask){.at = PPX__AT_QUEUE, .node = -1};
    ppx__list_push_front(&r->queue, &t->link);
    if (ppx__task_deadline(t) && (!r->queue_due_ns || ppx__task_deadline(t) < r->queue_due_ns))
        r->queue_due_ns = ppx__task_deadline(t);
}
