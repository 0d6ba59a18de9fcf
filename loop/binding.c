/*
 * The glue between a pool and a libuv loop, with no extra thread: a
 * uv_poll handle on the pool's fd calls ppx_pool_process on the loop
 * thread, so futures resolved there run their callbacks right there. A
 * future resolved on another thread (one that cancelled it, or drove a
 * blocking wait) is handed over through uv_async.
 *
 * The poll handle is referenced only while awaitables wait or the pool
 * has work, so uv_run returns when everything is done; unreferenced, it
 * still notices workers that die while the pool is idle.
 *
 * Several loops, each run by its own thread, may watch one pool: each has
 * its binding (the pool's fd is an epoll set, so each loop polls it, and
 * ppx_pool_process takes the pool's lock). A binding's handles are only
 * ever touched on its loop's thread. When the pool is freed, its close
 * hook (on_pool_close, on the freeing thread) closes them at once if that
 * is the loop's thread; otherwise it only marks the binding gone and
 * wakes the loop, whose thread closes them (let_go). The binding holds the
 * pool until then (procpool/pool.h), so the pool's descriptor closes only
 * once no loop polls it, and no thread waits for another.
 */
#include "awaitable.h"
#include "../procpool/errors.h"
#include "../procpool/pool.h"

#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>

static ppx__binding *bindings;
static pthread_mutex_t bindings_mu = PTHREAD_MUTEX_INITIALIZER;
/* The binding this thread found last: every call through a loop looks
 * its binding up, and the global lock is not for every call. Only the
 * loop's own thread binds to its loop (loop APIs run there), and a
 * binding leaves the list (detach) and is freed on that thread too, so
 * detach clears this before the binding can go. */
static _Thread_local ppx__binding *last_bound;

/* The default pool. One thread at a time creates it, without the lock
 * (ppx_pool_new forks and may wait seconds for its workers); others wait
 * on default_cv meanwhile, so no thread ever sleeps holding default_mu.
 * Written under default_mu, read without it once set (a release store):
 * a call on the default pool takes no global lock. */
static ppx_pool *_Atomic default_pool;
static bool default_creating;
static pthread_mutex_t default_mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t default_cv = PTHREAD_COND_INITIALIZER;
static pthread_once_t atfork_once = PTHREAD_ONCE_INIT;

/* A fork's child may free its copy of a pool (ppx_default_pool_free, the
 * close hook below), so no lock here may stay held by a thread the child
 * does not have. What they guard is one pointer, flag or list link at a
 * time, consistent at any instant, so the child just starts them afresh
 * (it has one thread). A creation of the default pool under way in the
 * parent never finishes in the child: the child may make its own. The
 * child's one thread is the only one left to run the loops it inherited,
 * so their bindings are its own now: freeing a pool's copy (which goes
 * whatever its hooks do) closes them at once. */
static void fresh_locks_in_child(void)
{
    pthread_mutex_init(&default_mu, NULL);
    pthread_cond_init(&default_cv, NULL);
    default_creating = false;
    pthread_mutex_init(&bindings_mu, NULL);
    for (ppx__binding *b = bindings; b; b = b->next) {
        pthread_mutex_init(&b->mu, NULL);
        b->thread = uv_thread_self();
    }
}

static void install_atfork(void)
{
    pthread_atfork(NULL, NULL, fresh_locks_in_child);
}

static void let_go(ppx__binding *b);

static bool is_gone(ppx__binding *b)
{
    pthread_mutex_lock(&b->mu); /* the freeing thread sets it under mu */
    bool gone = b->gone;
    pthread_mutex_unlock(&b->mu);
    return gone;
}

static void on_poll(uv_poll_t *h, int status, int events)
{
    (void)status;
    (void)events;
    ppx__binding *b = h->data;
    if (!b->pool)
        return;
    /* Freed on another thread: the fd may stay readable, and nothing is
     * left to process. */
    if (is_gone(b)) {
        let_go(b);
        return;
    }
    /* A callback run by process may free the pool (and so clear b->pool);
     * b itself lives until its handles' close callbacks. */
    ppx_pool_process(b->pool);
    ppx__binding_update(b);
}

/* Settles the awaitables other threads handed over; first tells those
 * whose progress they took in (executor.c), each held meanwhile: a
 * progress callback may settle and drop another. */
static void hand_over(ppx__binding *b)
{
    pthread_mutex_lock(&b->mu);
    ppx_awaitable *list = b->cross;
    b->cross = NULL;
    ppx_awaitable *plist = b->pcross;
    b->pcross = NULL;
    for (ppx_awaitable *aw = plist; aw; aw = aw->pcross_next)
        ppx_awaitable_ref(aw);
    pthread_mutex_unlock(&b->mu);
    while (plist) {
        ppx_awaitable *aw = plist;
        pthread_mutex_lock(&b->mu);
        plist = aw->pcross_next;
        aw->pcross_queued = false;
        pthread_mutex_unlock(&b->mu);
        ppx__wrapped_tell_progress(aw);
        ppx_awaitable_unref(aw);
    }
    while (list) {
        ppx_awaitable *aw = list;
        list = aw->cross_next;
        ppx__awaitable_settle(aw, ppx_future_state(aw->fut), ppx_future_error(aw->fut));
    }
}

static void on_async(uv_async_t *h)
{
    ppx__binding *b = h->data;
    hand_over(b);
    /* A callback of hand_over may have freed the pool on this thread, and
     * the binding with it (b->pool is NULL then). */
    if (b->pool && is_gone(b))
        let_go(b);
}

/* The application closed ppx's handles itself (uv_walk closing every
 * handle, then perhaps uv_loop_close) before freeing the pool, which
 * ppx.h forbids; the free must still not crash (issue 18 saw a segfault
 * in ppx_pool_free). A handle it closed is libuv's to finish, so none is
 * touched but those still open, and the binding's memory stays: libuv
 * may still read a closing handle. Said on stderr and in
 * ppx_last_error(), as ppx_pool_free returns nothing. */
static ppx__binding *abandoned;

static bool closed_behind_our_back(ppx__binding *b)
{
    uv_handle_t *h[3] = {(uv_handle_t *)&b->poll, (uv_handle_t *)&b->spin,
                         (uv_handle_t *)&b->async};
    /* A detached binding has all three open (ppx__bind's failures never
     * get here, and ppx closes them only from here on). */
    bool any = false;
    for (int i = 0; i < 3; i++)
        any |= uv_is_closing(h[i]);
    if (!any)
        return false;
    for (int i = 0; i < 3; i++)
        if (!uv_is_closing(h[i]))
            uv_close(h[i], NULL);
    ppx__set_last_error("ppx_pool_free: the application closed ppx's handles on its loop "
                        "before freeing the pool (free the pool, run the loop, then close it)");
    fprintf(stderr, "ppx: %s\n", ppx_last_error());
    return true;
}

/* On the loop's thread, once the pool is being freed: stops watching it
 * and closes the handles (async last, once every awaitable has settled). */
static void detach(ppx__binding *b)
{
    if (last_bound == b)
        last_bound = NULL;
    pthread_mutex_lock(&bindings_mu);
    for (ppx__binding **pp = &bindings; *pp; pp = &(*pp)->next) {
        if (*pp == b) {
            *pp = b->next;
            break;
        }
    }
    pthread_mutex_unlock(&bindings_mu);
    /* Futures resolved on other threads before the pool went away. */
    if (closed_behind_our_back(b)) {
        b->pool = NULL;
        pthread_mutex_lock(&bindings_mu); /* kept where leak checkers see it */
        b->next = abandoned;
        abandoned = b;
        pthread_mutex_unlock(&bindings_mu);
        return;
    }
    hand_over(b);
    b->pool = NULL;
    /* uv_close of a poll handle forgets its fd at once (libuv takes it out
     * of the loop's epoll set): the fd may close from here on. */
    uv_poll_stop(&b->poll);
    uv_close((uv_handle_t *)&b->poll, ppx__binding_closed);
    uv_close((uv_handle_t *)&b->spin, ppx__binding_closed);
    /* Every future is resolved now, but a thread that resolved one (a
     * blocking waiter) may still be running its callbacks: keep the loop
     * alive until it has handed its awaitables over. */
    if (b->pending > 0)
        uv_ref((uv_handle_t *)&b->async);
    ppx__binding_update(b);
}

/* A close hook that returned false: the loop's thread detaches, then lets
 * the pool go, which may close its descriptors and free it, here. */
static bool on_pool_close(ppx_pool *pool, void *arg);
static void let_go(ppx__binding *b)
{
    ppx_pool *pool = b->pool;
    detach(b);
    ppx__pool_remove_close_hook(pool, on_pool_close, b);
}

/* Runs from ppx_pool_free, on the freeing thread, before the pool's fd
 * closes. Only the loop's thread may touch its handles: on another one,
 * mark the binding and wake the loop, and keep the pool until let_go. It
 * never waits for the loop: that loop may be idle, or its thread blocked
 * on this one. */
static bool on_pool_close(ppx_pool *pool, void *arg)
{
    (void)pool;
    ppx__binding *b = arg;
    uv_thread_t self = uv_thread_self();
    if (uv_thread_equal(&b->thread, &self)) {
        detach(b);
        return true;
    }
    /* The send is under mu: once the loop has seen gone it may close async
     * and free b, and it reads gone under mu. */
    pthread_mutex_lock(&b->mu);
    b->gone = true;
    uv_async_send(&b->async);
    pthread_mutex_unlock(&b->mu);
    return false;
}

ppx__binding *ppx__bind(uv_loop_t *loop, ppx_pool *pool, int *rc)
{
    ppx__binding *b = last_bound;
    if (b && b->loop == loop && b->pool == pool)
        return b;
    pthread_once(&atfork_once, install_atfork);
    pthread_mutex_lock(&bindings_mu);
    b = bindings;
    while (b && (b->loop != loop || b->pool != pool))
        b = b->next;
    pthread_mutex_unlock(&bindings_mu);
    if (b)
        return last_bound = b;

    b = calloc(1, sizeof *b);
    if (!b) {
        *rc = PPX_ENOMEM;
        return NULL;
    }
    b->loop = loop;
    b->pool = pool;
    b->thread = uv_thread_self();
    pthread_mutex_init(&b->mu, NULL);
    *rc = uv_poll_init(loop, &b->poll, ppx_pool_fd(pool));
    if (*rc) {
        pthread_mutex_destroy(&b->mu);
        free(b);
        return NULL;
    }
    b->poll.data = b;
    b->open_handles = 1;
    uv_idle_init(loop, &b->spin); /* cannot fail */
    b->spin.data = b;
    b->spin_us = ppx__pool_spin_us(pool);
    b->open_handles = 2;
    *rc = uv_async_init(loop, &b->async, on_async);
    if (*rc == 0) {
        b->async.data = b;
        b->open_handles = 3;
        uv_unref((uv_handle_t *)&b->async);
        *rc = uv_poll_start(&b->poll, UV_READABLE, on_poll);
    }
    if (*rc == 0)
        *rc = ppx__pool_add_close_hook(pool, on_pool_close, b);
    if (*rc) {
        if (b->open_handles == 3)
            uv_close((uv_handle_t *)&b->async, ppx__binding_closed);
        uv_close((uv_handle_t *)&b->spin, ppx__binding_closed);
        uv_close((uv_handle_t *)&b->poll, ppx__binding_closed);
        return NULL;
    }
    pthread_mutex_lock(&bindings_mu);
    b->next = bindings;
    bindings = b;
    pthread_mutex_unlock(&bindings_mu);
    ppx__binding_update(b);
    return last_bound = b;
}

/* ---- the default pool --------------------------------------------------- */

int ppx__default_pool_get(ppx_pool **out)
{
    ppx_pool *p = atomic_load_explicit(&default_pool, memory_order_acquire);
    if (p) {
        *out = p;
        return 0;
    }
    pthread_once(&atfork_once, install_atfork);
    pthread_mutex_lock(&default_mu);
    /* The wait releases default_mu while another thread creates it. */
    while (!atomic_load_explicit(&default_pool, memory_order_relaxed) && default_creating)
        pthread_cond_wait(&default_cv, &default_mu);
    p = atomic_load_explicit(&default_pool, memory_order_relaxed);
    if (p) {
        pthread_mutex_unlock(&default_mu);
        *out = p;
        return 0;
    }
    default_creating = true;
    pthread_mutex_unlock(&default_mu);
    /* No lock held across the fork and the wait for the workers. Only the
     * thread that set default_creating installs, so no two threads ever
     * see different default pools. On failure a waiter tries again (and
     * so gets its own error details). */
    int rc = ppx_pool_new(NULL, &p);
    pthread_mutex_lock(&default_mu);
    default_creating = false;
    if (rc == 0)
        atomic_store_explicit(&default_pool, p, memory_order_release);
    pthread_cond_broadcast(&default_cv);
    pthread_mutex_unlock(&default_mu);
    *out = rc == 0 ? p : NULL;
    return rc;
}

ppx_pool *ppx_default_pool(void)
{
    return atomic_load_explicit(&default_pool, memory_order_acquire);
}

void ppx_default_pool_free(void)
{
    /* Frees the pool installed now. A creation under way is not waited
     * for: it installs its pool afterwards, as if it began after this. */
    pthread_mutex_lock(&default_mu);
    ppx_pool *p = atomic_exchange_explicit(&default_pool, NULL, memory_order_acq_rel);
    pthread_mutex_unlock(&default_mu);
    ppx_pool_free(p);
}
