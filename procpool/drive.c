/*
 * Driving the pool: one round of everything it has to do (replies,
 * deaths, deadlines, placement), ppx_pool_process, the blocking waits that
 * drive it, and a future's cancel and state as the pool sees them.
 *
 * Threads: any thread may submit, cancel or wait. At most one thread at a
 * time sleeps in epoll_wait on the pool's behalf (the "driver"); others
 * wait on the condition variable, which is broadcast whenever futures
 * resolve. A thread that resolves futures while a driver sleeps kicks it
 * through kickfd, so no waiter misses its future.
 */
#include "pool_impl.h"
#include "remote.h"
#include "../shm/wake.h"

#include <sched.h>
#include <sys/epoll.h>
#include <time.h>

/* After resolving futures: wake blocked waiters, then run callbacks. */
void ppx__pool_kick(ppx_pool *p)
{
    p->kicked = true;
    ppx__eventfd_signal(p->kickfd);
}

void ppx__pool_after_resolve(ppx_pool *p, ppx__notify *n, bool kick_driver)
{
    if (!n->count)
        return;
    pthread_cond_broadcast(&p->cv);
    if (kick_driver)
        ppx__pool_kick(p);
}

static bool replies_waiting(ppx_pool *p)
{
    if (p->remote)
        return p->remote->inbox != NULL;
    for (int i = 0; i < p->nworkers; i++)
        if (p->w[i].alive && !ppx__ring_empty(&p->w[i].resp))
            return true;
    return false;
}

/* One round of everything the pool has to do; under the lock. */
static void process_locked(ppx_pool *p, ppx__notify *n)
{
    if (p->torn_down)
        return;
    bool other_driver = p->driving && !pthread_equal(p->driver, pthread_self());
    if (p->remote) {
        if (p->kicked && !other_driver) {
            ppx__eventfd_drain(p->kickfd);
            p->kicked = false;
        }
        ppx__eventfd_drain(p->efd);
        ppx__remote_drain(p, n);
        return;
    }
    for (int round = 0; round < 8; round++) {
        if (p->kicked && !other_driver) {
            ppx__eventfd_drain(p->kickfd);
            p->kicked = false;
        }
        bool replies = ppx__eventfd_drain(p->efd);
        /* The timerfd and the zygote's socket only need looking at when
         * the wake-up was not a reply, a deadline is due, or a while has
         * passed: the epoll set stays readable until they are handled. */
        int64_t now = ppx__now_ns();
        int nev = 0;
        struct epoll_event ev[32];
        if (!replies || (p->timer_at > 0 && now >= p->timer_at) ||
            now - p->polled_at > 1000000) {
            nev = epoll_wait(p->epfd, ev, 32, 0);
            p->polled_at = now;
        }
        bool timers = false;
        for (int i = 0; i < p->nworkers; i++)
            if (p->w[i].alive)
                ppx__drain_replies(p, &p->w[i], n);
        for (int k = 0; k < nev; k++) {
            uint64_t tag = ev[k].data.u64;
            if (tag == PPX__EV_TIMER)
                timers = true;
            else if (tag == PPX__EV_ZYGOTE)
                ppx__zygote_events(p, n);
        }
        if (timers)
            ppx__run_timers(p, n);
        ppx__pump(p);
        /* Ask for the eventfd again, then look once more: a reply that
         * raced with the flag is seen here or signals (see shared.h). */
        ppx__want_wakeups(p, 1);
        atomic_thread_fence(memory_order_seq_cst);
        if (!replies_waiting(p))
            return;
    }
    /* Out of rounds with replies left: a worker may have seen the flag
     * down and not signalled, so keep the fd readable for the next call. */
    ppx__eventfd_signal(p->efd);
}

int ppx_pool_process(ppx_pool *p)
{
    int rc = ppx__pool_check(p);
    if (rc)
        return rc;
    ppx__notify n = {0};
    ppx__pool_lock(p);
    process_locked(p, &n);
    bool kick = p->driving && !pthread_equal(p->driver, pthread_self());
    ppx__pool_after_resolve(p, &n, kick);
    ppx__pool_unlock(p);
    int count = n.count;
    ppx__notify_run(&n);
    return count;
}

int64_t ppx__deadline_of(int timeout_ms)
{
    return timeout_ms < 0 ? -1 : ppx__now_ns() + (int64_t)timeout_ms * 1000000LL;
}

int ppx__remaining_ms(int64_t deadline)
{
    if (deadline < 0)
        return -1;
    int64_t left = deadline - ppx__now_ns();
    if (left <= 0)
        return 0;
    return (int)((left + 999999) / 1000000);
}

int ppx__pool_drive_until(ppx_pool *p, bool (*done)(ppx_pool *, void *), void *arg,
                       int64_t deadline)
{
    /* No reference of its own: the caller's (ppx_pool_shutdown's, or
     * ppx_future_wait's pin) keeps p through a free by a callback below. */
    ppx__pool_lock(p);
    int rc = 0;
    bool looked = false;
    while (!done(p, arg) && !p->torn_down) {
        int ms = ppx__remaining_ms(deadline);
        /* A zero timeout still gets one look at the rings, so a caller
         * polling with 0 sees its future resolve. */
        if (ms == 0 && (looked || p->driving)) {
            rc = PPX_ETIMEDOUT;
            break;
        }
        looked = true;
        if (p->driving) {
            if (deadline < 0) {
                pthread_cond_wait(&p->cv, &p->mu);
            } else {
                struct timespec ts = {deadline / 1000000000LL, deadline % 1000000000LL};
                pthread_cond_timedwait(&p->cv, &p->mu, &ts);
            }
            continue;
        }
        p->driving = true;
        p->driver = pthread_self();
        ppx__pool_unlock(p);
        struct epoll_event ev;
        epoll_wait(p->epfd, &ev, 1, ms);
        ppx__notify n = {0};
        ppx__pool_lock(p);
        process_locked(p, &n);
        p->driving = false;
        ppx__eventfd_drain(p->kickfd);
        p->kicked = false;
        pthread_cond_broadcast(&p->cv);
        ppx__pool_unlock(p);
        ppx__notify_run(&n);
        ppx__pool_lock(p);
    }
    ppx__pool_unlock(p);
    return rc;
}

static bool future_done(ppx_pool *p, void *f)
{
    (void)p;
    return ppx_future_done(f);
}

int ppx__pool_wait(ppx_pool *p, ppx_future *f, int timeout_ms)
{
    if (!ppx__pool_owned(p))
        return PPX_EFORKED;
    return ppx__pool_drive_until(p, future_done, f, ppx__deadline_of(timeout_ms));
}

int ppx__pool_cancel(ppx_pool *p, ppx_future *f)
{
    if (!ppx__pool_owned(p))
        return PPX_EFORKED;
    ppx__notify n = {0};
    ppx__pool_lock(p);
    if (ppx_future_done(f) || !f->task) {
        ppx__pool_unlock(p);
        return PPX_EDONE;
    }
    if (p->remote)
        ppx__remote_cancel(p, f->task, &n);
    else
        ppx__cancel_task(p, f->task, true, false, &n);
    ppx__pool_after_resolve(p, &n, p->driving && !pthread_equal(p->driver, pthread_self()));
    ppx__pool_unlock(p);
    ppx__notify_run(&n);
    return 0;
}

ppx_state ppx__pool_task_state(ppx_pool *p, ppx_future *f)
{
    ppx_state st = PPX_PENDING;
    if (!ppx__pool_owned(p)) /* its lock may be held by a thread not copied */
        return st;
    ppx__pool_lock(p);
    int now = atomic_load(&f->state);
    if (now != PPX_PENDING) {
        st = (ppx_state)now;
    } else if (f->task && p->remote) {
        st = ppx__remote_state(p, f->task);
    } else if (f->task && f->task->slot != PPX__NO_SLOT) {
        uint64_t w = atomic_load(&ppx__task_slot(p, f->task)->state);
        uint32_t s = ppx__slot_st(w);
        if ((s == PPX__SLOT_RUNNING || s == PPX__SLOT_FINISHED) && ppx__slot_seq(w) == f->task->seq)
            st = PPX_RUNNING;
    }
    ppx__pool_unlock(p);
    return st;
}

int ppx__pool_spin(ppx_pool *p, int us)
{
    if (ppx__pool_check(p))
        return 0;
    if (p->remote)
        return ppx_pool_process(p); /* replies come through the progress thread */
    int64_t deadline = ppx__now_ns() + (int64_t)us * 1000;
    /* While we poll, workers need not pay for an eventfd write. */
    ppx__want_wakeups(p, 0);
    for (;;) {
        ppx__pool_lock(p);
        bool ready = !p->torn_down && replies_waiting(p);
        ppx__pool_unlock(p);
        if (ready || ppx__now_ns() > deadline)
            break;
        /* The worker we just woke is often placed on this very CPU: a
         * pure spin would keep it from running until the spin ends. */
        sched_yield();
    }
    return ppx_pool_process(p); /* also raises parent_waiting again */
}
