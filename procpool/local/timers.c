/*
 * Deadlines: the heap of tasks by next deadline (util/heap.h), and what
 * happens when one passes: a call's timeout, the end of a cancelled
 * call's grace period, a delayed respawn, the periodic sweep; and the
 * local way to cancel a call (the core's policy is in cancel.c). All
 * under the pool lock.
 */
#include "local.h"

#include <errno.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <sys/timerfd.h>
#include <unistd.h>

/* ---- tasks' deadlines -------------------------------------------------- */

bool ppx__cancel_unclaimed(ppx__local *p, ppx__task *t, ppx__notify *n)
{
    ppx__ltask *lt = ppx__lt(t);
    if (lt->worker < 0) {
        ppx__cancel_task(p, t, false, false, n);
        return true;
    }
    /* The slot's CAS is the one test the worker agrees with: once it
     * reads CANCELLED it skips the call, once it claimed it the CAS fails. */
    ppx__slot *s = ppx__task_slot(p, t);
    uint64_t expect = ppx__slot_word(lt->seq, 0, PPX__SLOT_QUEUED);
    if (!atomic_compare_exchange_strong(&s->state, &expect,
                                        ppx__slot_word(lt->seq, 0, PPX__SLOT_CANCELLED)))
        return false;
    if (ppx__task_stop_future(p->pool, t, false, n) && p->pool->trace)
        ppx__observe_mark(p, "cancelled", t, lt->worker, -1, NULL);
    ppx__task_reschedule(p, t); /* only a lingering ack is left */
    return true;
}

void ppx__cancel_task(ppx__local *p, ppx__task *t, bool kill_later, bool timed_out,
                      ppx__notify *n)
{
    ppx__ltask *lt = ppx__lt(t);
    bool f = ppx__task_stop_future(p->pool, t, timed_out, n);
    const char *mark = t->ended == PPX__ENDED_TIMED_OUT ? "timed_out" : "cancelled";
    if (lt->worker < 0) {
        if (f && p->pool->trace)
            ppx__observe_mark(p, mark, t, -1, -1, NULL);
        ppx__list_remove(&p->queue, &t->link);
        ppx__local_task_free(p, t);
        return;
    }
    ppx__slot *s = ppx__task_slot(p, t);
    uint64_t expect = ppx__slot_word(lt->seq, 0, PPX__SLOT_QUEUED);
    if (atomic_compare_exchange_strong(&s->state, &expect,
                                       ppx__slot_word(lt->seq, 0, PPX__SLOT_CANCELLED))) {
        if (f && p->pool->trace)
            ppx__observe_mark(p, mark, t, lt->worker, -1, NULL);
        ppx__task_reschedule(p, t); /* only a lingering ack is left */
        return; /* never runs; the worker acknowledges with a SKIP */
    }
    /* Running: ask it to stop, and stop it ourselves if it does not. */
    atomic_store_explicit(&s->cancel, 1, memory_order_relaxed);
    int grace = p->pool->opt.cancel_grace_ms;
    if (kill_later && grace >= 0 && !lt->kill_at)
        lt->kill_at = ppx__now_ns() + (int64_t)grace * 1000000LL;
    ppx__task_reschedule(p, t);
    ppx__arm_timer(p);
}

/* Its deadline passed: time the call out, or kill the worker still
 * running a call that was cancelled a grace period ago. */
static void expire(ppx__local *p, ppx__task *t, int64_t now, ppx__notify *n)
{
    ppx__ltask *lt = ppx__lt(t);
    if (ppx__task_fut(t) && ppx__task_deadline(t) && ppx__task_deadline(t) <= now) {
        ppx__cancel_task(p, t, true, true, n); /* may free t */
        return;
    }
    if (lt->kill_at && lt->kill_at <= now) {
        lt->kill_at = 0;
        ppx__worker *w = lt->worker >= 0 ? &p->w[lt->worker] : NULL;
        if (w && !w->alive && !w->spawning)
            w = NULL;
        if (w && ppx__list_first(&w->tasks) != t) {
            /* Calls ahead of it run first (ring order): look again later,
             * in case it starts after all. */
            lt->kill_at = now + (int64_t)p->pool->opt.cancel_grace_ms * 1000000LL;
        } else if (w) {
            uint64_t word = atomic_load(&ppx__task_slot(p, t)->state);
            /* FINISHED means the call ended on its own: no reason to
             * kill. Anything else (RUNNING, or whatever the worker wrote
             * there) and the oldest call of w overran its grace. */
            if (word != ppx__slot_word(lt->seq, (uint32_t)lt->worker, PPX__SLOT_FINISHED)) {
                w->killed_by_us = true;
                p->pool->stats.killed++;
                ppx__signal_worker(w, SIGKILL);
            }
        }
    }
    ppx__task_reschedule(p, t);
}

/* ---- the timerfd ------------------------------------------------------- */

void ppx__run_timers(ppx__local *p, ppx__notify *n)
{
    uint64_t expirations;
    if (read(p->tfd, &expirations, sizeof expirations) < 0 && errno != EAGAIN)
        return;
    p->timer_at = -1; /* force a re-arm */
    int64_t now = ppx__now_ns();
    if (p->sweep_at && p->sweep_at <= now) { /* the rings were just drained */
        ppx__sweep(p);
        /* ppx_call_progress of the running calls: read here, every
         * PPX__SWEEP_NS while calls are out, not on every round, which
         * would cost each call the look (and once more before a result,
         * handle_reply). */
        ppx__scan_progress(p, n);
        p->sweep_at = p->pool->ntasks ? now + PPX__SWEEP_NS : 0;
    }
    ppx__hnode *h;
    while ((h = ppx__heap_min(&p->deadlines)) && h->at <= now) {
        ppx__heap_set(&p->deadlines, h, 0);
        expire(p, ppx__task_of_deadline(h), now, n);
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
