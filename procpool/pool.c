/*
 * What futures need from their pool (pool.h), and the driving that
 * resolves them: one round of processing, the blocking waits, a future's
 * cancel and state, the references that keep a pool's memory alive while
 * a thread is still inside it (an unresolved future holds one). Creating, shutting down and freeing a pool
 * is lifecycle.c; the work itself is the backend's (backend.h).
 *
 * Threads: any thread may submit, cancel or wait. At most one thread at a
 * time sleeps in epoll_wait on the pool's behalf (the "driver"); others
 * wait on the condition variable, which is broadcast whenever futures
 * resolve. A thread that resolves futures while a driver sleeps kicks it
 * through kickfd, so no waiter misses its future.
 */
#include "core.h"
#include "shm/wake.h"
#include "wire/frame.h"

#include <errno.h>
#include <stdlib.h>
#include <sys/epoll.h>
#include <unistd.h>

#define POOL_MAGIC 0x7070784cu /* "ppxL" */
#define POOL_DEAD 0xdeadb001u

bool ppx__pool_live(const ppx_pool *p)
{
    return p && p->magic == POOL_MAGIC;
}

void ppx__pool_mark_live(ppx_pool *p)
{
    p->magic = POOL_MAGIC;
}

int ppx__pool_check(const ppx_pool *p)
{
    if (!ppx__pool_live(p))
        return PPX_EBADOBJ;
    return ppx__pool_owned(p) ? 0 : PPX_EFORKED;
}

void ppx__pool_lock(ppx_pool *p) { pthread_mutex_lock(&p->mu); }

/* Work that must not run under the lock (core.h, Locks) is done here,
 * once it is released: what the backend deferred (p->deferred, its
 * unlocked op) and the trace's writes. The flag is cleared under the
 * lock, so one thread takes each request. Kept out of line: inlined,
 * it made the compiler set up a frame on every unlock (four a call, ~10
 * instructions each), where the common one (no trace, nothing deferred)
 * needs two loads and a tail call. */
static __attribute__((noinline)) void unlock_and_do_deferred(ppx_pool *p)
{
    bool backend = p->deferred && !p->torn_down;
    bool trace = p->trace && !p->torn_down && ppx__trace_pending(p->trace);
    if (!backend && !trace) {
        pthread_mutex_unlock(&p->mu);
        return;
    }
    p->deferred = false;
    /* Until it is torn down the owner's reference is there to add to;
     * ours keeps the backend and the trace alive through a free that
     * another thread runs meanwhile. */
    atomic_fetch_add(&p->refs, 1);
    pthread_mutex_unlock(&p->mu);
    if (backend && p->ops->unlocked)
        p->ops->unlocked(p);
    ppx__trace_write(p->trace); /* set before the pool was shared, freed last */
    ppx__pool_unref(p);
}

void ppx__pool_unlock(ppx_pool *p)
{
    /* Two plain loads on the hot path: most pools trace nothing. */
    if (!p->deferred && !p->trace)
        pthread_mutex_unlock(&p->mu);
    else
        unlock_and_do_deferred(p);
}

int ppx__pool_watch(ppx_pool *p, int fd, uint64_t tag)
{
    struct epoll_event ev = {.events = EPOLLIN, .data.u64 = tag};
    return epoll_ctl(p->epfd, EPOLL_CTL_ADD, fd, &ev) ? -errno : 0;
}

/* ---- the end of a pool's memory ---------------------------------------- */

void ppx__pool_destroy(ppx_pool *p, bool copy)
{
    /* The backend's stop finished the file (ppx__trace_finish). */
    if (copy)
        ppx__trace_discard(p->trace);
    else
        ppx__trace_close(p->trace);
    if (p->ops)
        p->ops->destroy(p, copy);
    /* In a copy, epfd is the stand-in (fork.h). */
    ppx__fork_close(p->epfd);
    if (p->efd >= 0)
        close(p->efd);
    if (p->kickfd >= 0)
        close(p->kickfd);
    ppx__bigbuf_trim(); /* the kept result buffer goes with a pool */
    if (!copy) /* blocks still out keep it; in a copy its lock may be held */
        ppx__slab_close(p->slab);
    free(p->hooks);
    /* A copy's condition variable may count waiters that were threads of
     * the creator: destroying it would wait for them forever. */
    if (!copy)
        pthread_cond_destroy(&p->cv);
    pthread_mutex_destroy(&p->mu);
    /* Only a pointer of the wrong kind is caught by the magic: a freed
     * pool is undefined behaviour (ppx.h). */
    p->magic = POOL_DEAD;
    free(p);
}

void ppx__pool_ref(ppx_pool *p)
{
    atomic_fetch_add_explicit(&p->refs, 1, memory_order_relaxed);
}

void ppx__pool_unref(ppx_pool *p)
{
    if (atomic_fetch_sub(&p->refs, 1) == 1)
        ppx__pool_destroy(p, false);
}

/* ---- driving ----------------------------------------------------------- */

void ppx__pool_kick(ppx_pool *p)
{
    p->kicked = true;
    ppx__eventfd_signal(p->kickfd);
}

bool ppx__pool_other_driver(const ppx_pool *p)
{
    return p->driving && !pthread_equal(p->driver, pthread_self());
}

void ppx__pool_take_kick(ppx_pool *p)
{
    if (p->kicked && !ppx__pool_other_driver(p)) {
        ppx__eventfd_drain(p->kickfd);
        p->kicked = false;
    }
}

/* After resolving futures: wake blocked waiters, then run callbacks. */
void ppx__pool_after_resolve(ppx_pool *p, ppx__notify *n, bool kick_driver)
{
    if (!n->count)
        return;
    pthread_cond_broadcast(&p->cv);
    if (kick_driver)
        ppx__pool_kick(p);
}

int ppx_pool_process(ppx_pool *p)
{
    int rc = ppx__pool_check(p);
    if (rc)
        return rc;
    ppx__notify n = {0};
    ppx__pool_lock(p);
    if (!p->torn_down)
        p->ops->process(p, &n);
    ppx__pool_after_resolve(p, &n, ppx__pool_other_driver(p));
    ppx__pool_unlock(p);
    int count = n.count;
    ppx__notify_run(&n);
    return count;
}

void ppx__pool_after_sleep(ppx_pool *p)
{
    ppx__notify n = {0};
    ppx__pool_lock(p);
    if (!p->torn_down)
        p->ops->process(p, &n);
    p->driving = false;
    ppx__eventfd_drain(p->kickfd);
    p->kicked = false;
    pthread_cond_broadcast(&p->cv);
    ppx__pool_unlock(p);
    ppx__notify_run(&n);
}

/* One sleep in epoll_wait for the pool, then one round of processing;
 * entered and left with the lock held, p->driving set by the caller. */
static void drive_once(ppx_pool *p, int ms)
{
    ppx__pool_unlock(p);
    struct epoll_event ev;
    epoll_wait(p->epfd, &ev, 1, ms);
    ppx__pool_after_sleep(p);
    ppx__pool_lock(p);
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
        drive_once(p, ms);
    }
    ppx__pool_unlock(p);
    return rc;
}

/* ---- a future's view of its pool --------------------------------------- */

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
    p->ops->cancel(p, f->task, true, false, &n);
    ppx__pool_after_resolve(p, &n, ppx__pool_other_driver(p));
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
    if (now != PPX_PENDING)
        st = (ppx_state)now;
    else if (f->task)
        st = p->ops->task_state(p, f->task);
    ppx__pool_unlock(p);
    return st;
}

int ppx__pool_spin_us(const ppx_pool *p)
{
    return ppx__pool_live(p) ? p->opt.parent_spin_us : 0;
}

int ppx__pool_spin(ppx_pool *p, int us)
{
    if (ppx__pool_check(p))
        return 0;
    return p->ops->spin(p, us);
}
