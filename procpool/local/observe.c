/*
 * Per-worker statistics and the pool's side of the trace. Workers stamp
 * each call's start and end in its slot and keep their busy time in their
 * worker block (shared.h); the parent reads those words only once the
 * reply or the worker's death is in, and clamps them: they say how long
 * something took, never where to read or write.
 *
 * Everything here runs under the pool's lock; ppx_pool_worker_stats
 * takes it.
 */
#include "local.h"
#include "serialize/envelope.h"

#include <string.h>

static int64_t clamp(int64_t v, int64_t lo, int64_t hi)
{
    return v < lo ? lo : v > hi ? hi : v;
}

/* When t's function started and ended, by its slot; a call whose end is
 * not stamped ended now, one never stamped started now. */
static void stamps(ppx__local *p, ppx__task *t, int64_t now, int64_t *started,
                   int64_t *ended)
{
    ppx__slot *s = ppx__task_slot(p, t);
    int64_t a = atomic_load_explicit(&s->started_ns, memory_order_relaxed);
    int64_t b = atomic_load_explicit(&s->ended_ns, memory_order_relaxed);
    *started = a ? clamp(a, p->pool->created_ns, now) : now;
    *ended = b ? clamp(b, *started, now) : now;
}

/* The live process's busy time, bounded by the pool's age. */
static uint64_t live_busy(ppx__local *p, int i, int64_t now)
{
    uint64_t v = atomic_load_explicit(&p->w[i].ws->busy_ns, memory_order_relaxed);
    uint64_t age = (uint64_t)(now - p->pool->created_ns);
    return v > age ? age : v;
}

void ppx__observe_exit(ppx__local *p, ppx__worker *w)
{
    int i = (int)(w - p->w);
    w->busy_ns += live_busy(p, i, ppx__now_ns());
    atomic_store_explicit(&p->w[i].ws->busy_ns, 0, memory_order_relaxed);
}

void ppx__observe_lost(ppx__local *p, ppx__worker *w, ppx__task *t, const char *outcome,
                       const char *error)
{
    ppx__slot *s = ppx__task_slot(p, t);
    /* Started and not ended: the worker never added this call's time. */
    if (atomic_load_explicit(&s->started_ns, memory_order_relaxed) &&
        !atomic_load_explicit(&s->ended_ns, memory_order_relaxed)) {
        int64_t now = ppx__now_ns(), a, b;
        stamps(p, t, now, &a, &b);
        w->busy_ns += (uint64_t)(b - a);
    }
    if (p->pool->trace)
        ppx__observe_call_end(p, t, outcome, error, error ? strlen(error) : 0, true);
}

void ppx__observe_call_end(ppx__local *p, ppx__task *t, const char *outcome, const char *error,
                           size_t error_len, bool worker_died)
{
    if (!p->pool->trace || ppx__lt(t)->worker < 0 || ppx__lt(t)->slot == PPX__NO_SLOT)
        return;
    if (!outcome)
        outcome = t->ended == PPX__ENDED_TIMED_OUT ? "timed_out" : "cancelled";
    ppx__trace_call c = {
        .task = ppx__task_id(t),
        .fn = ppx__task_fn(t),
        .worker = ppx__lt(t)->worker,
        .pid = (long)p->w[ppx__lt(t)->worker].pid,
        .submitted = t->start_ns,
        .outcome = outcome,
        .error = error,
        .error_len = error_len,
        .batch = t->kind == PPX__ENV_MAP,
        .worker_died = worker_died,
    };
    stamps(p, t, ppx__now_ns(), &c.started, &c.ended);
    ppx__trace_call_done(p->pool->trace, &c);
}

void ppx__observe_mark(ppx__local *p, const char *what, ppx__task *t, int from, int to,
                       const char *error)
{
    if (!p->pool->trace)
        return;
    ppx__trace_mark m = {what, ppx__task_id(t), ppx__task_fn(t), from, to, error, ppx__now_ns()};
    ppx__trace_mark_add(p->pool->trace, &m);
}

void ppx__observe_pool_end(ppx__local *p)
{
    if (!p->pool->trace)
        return;
    /* Calls the workers had started when they were stopped: cancelled by
     * the free, or earlier. */
    for (int i = 0; i < p->nworkers; i++) {
        for (ppx__task *t = ppx__list_first(&p->w[i].tasks); t; t = ppx__task_next(t)) {
            uint64_t word = atomic_load(&ppx__task_slot(p, t)->state);
            uint32_t st = ppx__slot_st(word);
            if ((st == PPX__SLOT_RUNNING || st == PPX__SLOT_FINISHED) &&
                ppx__slot_seq(word) == ppx__lt(t)->seq && ppx__slot_worker(word) == (uint32_t)i)
                ppx__observe_call_end(p, t, NULL, NULL, 0, true);
        }
    }
    /* Under the pool's lock, as ppx__trace_finish allows: the pool is
     * being freed or failed to start. The trace itself is freed with the
     * pool's last reference: a thread may still be writing it out. */
    ppx__trace_finish(p->pool->trace);
}

int ppx__observe_worker_stats(ppx__local *p, int i, ppx_worker_stats *out)
{
    if (i < 0 || i >= p->nworkers)
        return PPX_EINVAL;
    ppx__worker *w = &p->w[i];
    out->pid = w->alive ? (long)w->pid : 0;
    out->alive = w->alive;
    out->completed = w->completed;
    out->failed = w->failed;
    out->crashed = w->crashed;
    out->restarts = w->restarts;
    out->busy_ns = w->busy_ns + (p->pool->torn_down ? 0 : live_busy(p, i, ppx__now_ns()));
    out->queued = w->tasks.n;
    out->request_ring_bytes = ppx__ring_used_producer(&w->req);
    out->response_ring_bytes = ppx__ring_used_consumer(&w->resp);
    out->ring_bytes = p->pool->opt.ring_bytes;
    return 0;
}
