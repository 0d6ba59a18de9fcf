/*
 * What futures need from their pool (pool.h), and the driving that
 * resolves them: one round of processing, the blocking waits, a future's
 * cancel and state, the references that keep a pool's memory alive while
 * a thread is still inside it. Creating, shutting down and freeing a pool
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
void ppx__pool_unlock(ppx_pool *p) { pthread_mutex_unlock(&p->mu); }

int ppx__pool_watch(ppx_pool *p, int fd, uint64_t tag)
{
    struct epoll_event ev = {.events = EPOLLIN, .data.u64 = tag};
    return epoll_ctl(p->epfd, EPOLL_CTL_ADD, fd, &ev) ? -errno : 0;
}

/* ---- the end of a pool's memory ---------------------------------------- */

/* A freed pool's shell is kept (the last GRAVEYARD of them), marked dead,
 * so a call on a freed pool returns PPX_EBADOBJ instead of reading freed
 * memory. Only the struct is kept; everything it owned is released. */
#define GRAVEYARD 64
static pthread_mutex_t graveyard_mu = PTHREAD_MUTEX_INITIALIZER;
static ppx_pool *graveyard[GRAVEYARD];
static size_t graveyard_next;
static pthread_once_t graveyard_once = PTHREAD_ONCE_INIT;

/* A fork's copy of a pool is buried too: the lock must not be copied
 * held by a thread that the child does not have. */
static void graveyard_lock(void) { pthread_mutex_lock(&graveyard_mu); }
static void graveyard_unlock(void) { pthread_mutex_unlock(&graveyard_mu); }
static void graveyard_atfork(void)
{
    pthread_atfork(graveyard_lock, graveyard_unlock, graveyard_unlock);
}

void ppx__graveyard_install(void)
{
    pthread_once(&graveyard_once, graveyard_atfork);
}

static void bury(ppx_pool *p)
{
    p->magic = POOL_DEAD;
    pthread_mutex_lock(&graveyard_mu);
    ppx_pool *oldest = graveyard[graveyard_next];
    graveyard[graveyard_next] = p;
    graveyard_next = (graveyard_next + 1) % GRAVEYARD;
    pthread_mutex_unlock(&graveyard_mu);
    free(oldest);
}

void ppx__pool_destroy(ppx_pool *p, bool copy)
{
    if (copy)
        ppx__trace_discard(p->trace);
    else
        ppx__trace_close(p->trace); /* only when ppx_pool_new failed */
    if (p->ops)
        p->ops->destroy(p, copy);
    /* In a copy, epfd is the stand-in (fork.h). */
    ppx__fork_close(p->epfd);
    if (p->efd >= 0)
        close(p->efd);
    if (p->kickfd >= 0)
        close(p->kickfd);
    ppx__bigbuf_trim(); /* the kept result buffer goes with a pool */
    free(p->hooks);
    /* A copy's condition variable may count waiters that were threads of
     * the creator: destroying it would wait for them forever. */
    if (!copy)
        pthread_cond_destroy(&p->cv);
    pthread_mutex_destroy(&p->mu);
    bury(p);
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

/* One sleep in epoll_wait for the pool, then one round of processing;
 * entered and left with the lock held, p->driving set by the caller. */
static void drive_once(ppx_pool *p, int ms)
{
    ppx__pool_unlock(p);
    struct epoll_event ev;
    epoll_wait(p->epfd, &ev, 1, ms);
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
    ppx__pool_lock(p);
}

int ppx__pool_drive_until(ppx_pool *p, bool (*done)(ppx_pool *, void *), void *arg,
                          int64_t deadline)
{
    /* A reference only while the pool lives: a wait that races the
     * pool's last unref must not bring it back (the shell stays readable
     * in the graveyard a while after the free). */
    int refs = atomic_load(&p->refs);
    do {
        if (refs <= 0)
            return PPX_EBADOBJ;
    } while (!atomic_compare_exchange_weak(&p->refs, &refs, refs + 1));
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
    ppx__pool_unref(p);
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
