/*
 * The local backend's bookkeeping of one call and one worker, beneath
 * placement, replies, exits and deadlines (which all use it): a call's
 * slot released and the call freed, a worker signalled, the timerfd armed
 * for the next deadline, the back-off after repeated crashes. Under the
 * pool's lock.
 */
#include "local.h"

#include <errno.h>
#include <signal.h>
#include <string.h>
#include <sys/syscall.h>
#include <sys/timerfd.h>
#include <unistd.h>

void ppx__local_task_free(ppx__local *p, ppx__task *t)
{
    ppx__heap_set(&p->deadlines, &ppx__lt(t)->deadline, 0);
    ppx__task_free(p->pool, t);
}

void ppx__release_slot(ppx__local *p, ppx__task *t)
{
    ppx__ltask *lt = ppx__lt(t);
    if (lt->slot == PPX__NO_SLOT)
        return;
    atomic_store_explicit(&p->live[lt->slot], 0, memory_order_relaxed);
    atomic_store_explicit(&ppx__task_slot(p, t)->state, 0, memory_order_relaxed);
    p->slot_task[lt->slot] = NULL;
    ppx__worker *owner = &p->w[lt->worker]; /* a slot of its region */
    owner->free_slots[owner->nfree++] = lt->slot;
    lt->slot = PPX__NO_SLOT;
}

void ppx__task_finish(ppx__local *p, ppx__task *t)
{
    if (ppx__lt(t)->worker >= 0) {
        ppx__worker *w = &p->w[ppx__lt(t)->worker];
        if (w->partial == t)
            w->partial = NULL; /* only when the worker died mid-frame */
        ppx__list_remove(&w->tasks, &t->link);
    }
    ppx__release_slot(p, t);
    ppx__local_task_free(p, t);
}

void ppx__signal_worker(ppx__worker *w, int sig)
{
    if (w->spawning && w->pid <= 0) {
        if (w->pending_sig != SIGKILL)
            w->pending_sig = sig;
        return;
    }
    if (w->pidfd >= 0 && syscall(SYS_pidfd_send_signal, w->pidfd, sig, NULL, 0) == 0)
        return;
    if (w->pid > 0 && (w->pidfd < 0 || errno == ENOSYS))
        kill(w->pid, sig);
}

void ppx__task_reschedule(ppx__local *p, ppx__task *t)
{
    ppx__ltask *lt = ppx__lt(t);
    int64_t at = lt->kill_at;
    if (ppx__task_fut(t) && ppx__task_deadline(t) && (!at || ppx__task_deadline(t) < at))
        at = ppx__task_deadline(t);
    ppx__heap_set(&p->deadlines, &lt->deadline, at);
}

void ppx__arm_timer(ppx__local *p)
{
    ppx__hnode *first = ppx__heap_min(&p->deadlines);
    int64_t next = first ? first->at : 0;
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

int64_t ppx__backoff_ns(const ppx__local *p)
{
    /* Two crashes in a row are bad luck; more look like a function that
     * kills every worker it touches: wait 10 ms, doubling up to 5 s. */
    if (p->crash_streak < 3)
        return 0;
    unsigned k = p->crash_streak - 3;
    int64_t ms = k >= 9 ? 5000 : 10LL << k;
    return (ms > 5000 ? 5000 : ms) * 1000000LL;
}
