/*
 * Deadlines: the heap of tasks by next deadline, and what happens when one
 * passes: a call's timeout, the end of a cancelled call's grace period, a
 * delayed respawn. Everything but the heap itself runs under the pool lock.
 */
#include "deadline.h"
#include "pool_impl.h"

#include <errno.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <sys/timerfd.h>
#include <unistd.h>

int ppx__heap_reserve(ppx__heap *h, size_t n)
{
    if (n <= h->cap)
        return 0;
    size_t cap = h->cap ? h->cap : 64;
    while (cap < n)
        cap *= 2;
    ppx__task **v = realloc(h->v, cap * sizeof *v);
    if (!v)
        return PPX_ENOMEM;
    h->v = v;
    h->cap = cap;
    return 0;
}

static void put(ppx__heap *h, size_t i, ppx__task *t)
{
    h->v[i] = t;
    t->heap_idx = i;
}

static void up(ppx__heap *h, size_t i)
{
    ppx__task *t = h->v[i];
    while (i > 0) {
        size_t parent = (i - 1) / 2;
        if (h->v[parent]->heap_at <= t->heap_at)
            break;
        put(h, i, h->v[parent]);
        i = parent;
    }
    put(h, i, t);
}

static void down(ppx__heap *h, size_t i)
{
    ppx__task *t = h->v[i];
    for (;;) {
        size_t c = 2 * i + 1;
        if (c >= h->n)
            break;
        if (c + 1 < h->n && h->v[c + 1]->heap_at < h->v[c]->heap_at)
            c++;
        if (t->heap_at <= h->v[c]->heap_at)
            break;
        put(h, i, h->v[c]);
        i = c;
    }
    put(h, i, t);
}

void ppx__heap_set(ppx__heap *h, ppx__task *t, int64_t at)
{
    if (t->heap_idx == SIZE_MAX) {
        if (!at)
            return;
        /* ppx__heap_reserve made room for every live task. */
        t->heap_at = at;
        h->v[h->n] = t;
        t->heap_idx = h->n++;
        up(h, t->heap_idx);
        return;
    }
    size_t i = t->heap_idx;
    if (!at) {
        ppx__task *last = h->v[--h->n];
        t->heap_idx = SIZE_MAX;
        if (i == h->n)
            return;
        put(h, i, last);
        up(h, i);
        down(h, last->heap_idx);
        return;
    }
    t->heap_at = at;
    up(h, i);
    down(h, t->heap_idx);
}

ppx__task *ppx__heap_min(const ppx__heap *h)
{
    return h->n ? h->v[0] : NULL;
}

void ppx__heap_free(ppx__heap *h)
{
    free(h->v);
    h->v = NULL;
    h->n = h->cap = 0;
}

/* ---- tasks' deadlines -------------------------------------------------- */

void ppx__task_reschedule(ppx_pool *p, ppx__task *t)
{
    int64_t at = t->kill_at;
    if (t->fut && t->timeout_at && (!at || t->timeout_at < at))
        at = t->timeout_at;
    ppx__heap_set(&p->deadlines, t, at);
}

bool ppx__task_stop_future(ppx_pool *p, ppx__task *t, bool timed_out, ppx__notify *n)
{
    ppx_future *f = t->fut;
    if (!f)
        return false;
    t->fut = NULL;
    t->ended = timed_out ? PPX__ENDED_TIMED_OUT : PPX__ENDED_CANCELLED;
    p->unresolved--;
    if (timed_out) {
        p->stats.timed_out++;
        p->stats.failed++;
        ppx__future_failf(f, "TimeoutError", 0, n,
                          "%s (task %llu) did not finish within its %d ms deadline",
                          f->function, (unsigned long long)t->id, t->timeout_ms);
    } else {
        p->stats.cancelled++;
        ppx__future_cancelled(f, n);
    }
    return true;
}

void ppx__cancel_task(ppx_pool *p, ppx__task *t, bool kill_later, bool timed_out,
                      ppx__notify *n)
{
    bool f = ppx__task_stop_future(p, t, timed_out, n);
    const char *mark = t->ended == PPX__ENDED_TIMED_OUT ? "timed_out" : "cancelled";
    if (t->worker < 0) {
        if (f && p->trace)
            ppx__observe_mark(p, mark, t, -1, -1, NULL);
        ppx__list_remove(&p->queue, t);
        ppx__task_free(p, t);
        return;
    }
    ppx__slot *s = ppx__task_slot(p, t);
    uint64_t expect = ppx__slot_word(t->seq, 0, PPX__SLOT_QUEUED);
    if (atomic_compare_exchange_strong(&s->state, &expect,
                                       ppx__slot_word(t->seq, 0, PPX__SLOT_CANCELLED))) {
        if (f && p->trace)
            ppx__observe_mark(p, mark, t, t->worker, -1, NULL);
        ppx__task_reschedule(p, t); /* only a lingering ack is left */
        return; /* never runs; the worker acknowledges with a SKIP */
    }
    /* Running: ask it to stop, and stop it ourselves if it does not. */
    atomic_store_explicit(&s->cancel, 1, memory_order_relaxed);
    if (kill_later && p->opt.cancel_grace_ms >= 0 && !t->kill_at)
        t->kill_at = ppx__now_ns() + (int64_t)p->opt.cancel_grace_ms * 1000000LL;
    ppx__task_reschedule(p, t);
    ppx__arm_timer(p);
}

/* Its deadline passed: time the call out, or kill the worker still
 * running a call that was cancelled a grace period ago. */
static void expire(ppx_pool *p, ppx__task *t, int64_t now, ppx__notify *n)
{
    if (t->fut && t->timeout_at && t->timeout_at <= now) {
        ppx__cancel_task(p, t, true, true, n); /* may free t */
        return;
    }
    if (t->kill_at && t->kill_at <= now) {
        t->kill_at = 0;
        ppx__worker *w = t->worker >= 0 ? &p->w[t->worker] : NULL;
        if (w && w->alive && w->tasks.head != t) {
            /* Calls ahead of it run first (ring order): look again later,
             * in case it starts after all. */
            t->kill_at = now + (int64_t)p->opt.cancel_grace_ms * 1000000LL;
        } else if (w && w->alive) {
            uint64_t word = atomic_load(&ppx__task_slot(p, t)->state);
            /* FINISHED means the call ended on its own: no reason to
             * kill. Anything else (RUNNING, or whatever the worker wrote
             * there) and the oldest call of w overran its grace. */
            if (word != ppx__slot_word(t->seq, (uint32_t)t->worker, PPX__SLOT_FINISHED)) {
                w->killed_by_us = true;
                p->stats.killed++;
                ppx__signal_worker(w, SIGKILL);
            }
        }
    }
    ppx__task_reschedule(p, t);
}

/* ---- the timerfd ------------------------------------------------------- */

void ppx__arm_timer(ppx_pool *p)
{
    ppx__task *t = ppx__heap_min(&p->deadlines);
    int64_t next = t ? t->heap_at : 0;
    if (p->sweep_at && (!next || p->sweep_at < next))
        next = p->sweep_at;
    for (int i = 0; i < p->nworkers; i++) {
        ppx__worker *w = &p->w[i];
        if (!w->alive && !w->spawning && w->respawn_at && (!next || w->respawn_at < next))
            next = w->respawn_at;
    }
    if (next == p->timer_at)
        return;
    struct itimerspec its;
    memset(&its, 0, sizeof its);
    if (next) {
        its.it_value.tv_sec = next / 1000000000LL;
        its.it_value.tv_nsec = next % 1000000000LL;
    }
    timerfd_settime(p->tfd, TFD_TIMER_ABSTIME, &its, NULL);
    p->timer_at = next;
}

void ppx__run_timers(ppx_pool *p, ppx__notify *n)
{
    uint64_t expirations;
    if (read(p->tfd, &expirations, sizeof expirations) < 0 && errno != EAGAIN)
        return;
    p->timer_at = -1; /* force a re-arm */
    int64_t now = ppx__now_ns();
    if (p->sweep_at && p->sweep_at <= now) { /* the rings were just drained */
        ppx__sweep(p);
        p->sweep_at = p->ntasks ? now + PPX__SWEEP_NS : 0;
    }
    ppx__task *t;
    while ((t = ppx__heap_min(&p->deadlines)) && t->heap_at <= now) {
        ppx__heap_set(&p->deadlines, t, 0);
        expire(p, t, now, n);
    }
    for (int i = 0; i < p->nworkers; i++) {
        ppx__worker *w = &p->w[i];
        if (w->alive || w->spawning || !w->respawn_at || w->respawn_at > now)
            continue;
        if (atomic_load(&p->sh->shutdown))
            w->respawn_at = 0;
        else if (ppx__spawn(p, i) != 0)
            w->respawn_at = now + RESPAWN_RETRY_NS;
    }
    ppx__arm_timer(p);
}

int64_t ppx__backoff_ns(const ppx_pool *p)
{
    /* Two crashes in a row are bad luck; more look like a function that
     * kills every worker it touches: wait 10 ms, doubling up to 5 s. */
    if (p->crash_streak < 3)
        return 0;
    unsigned k = p->crash_streak - 3;
    int64_t ms = k >= 9 ? 5000 : 10LL << k;
    return (ms > 5000 ? 5000 : ms) * 1000000LL;
}
