/*
 * Awaitables that wrap process futures: ppx_wrap_future,
 * ppx_run_in_executor (on a process pool, the default pool or the thread
 * executor). A future resolved on the loop's thread settles its awaitable
 * there; one resolved on another thread is handed to the loop through
 * its binding (binding.c), and so is its progress (ppx_call_progress):
 * taken in by another thread, it is queued on the binding's pcross and
 * the loop's thread tells the awaitable's callback the future's latest
 * values, before it settles anything handed over with it.
 */
#include "awaitable.h"
#include "../procpool/errors.h"
#include "../procpool/future.h"
#include "../procpool/pool.h"
#include "../procpool/sized.h"
#include "../serialize/pack.h"

#include <stdlib.h>

/* On the loop's thread, as aw settles: it leaves the progress hand-over
 * list, where it may wait since a thread took its last values in. */
static void leave_pcross(ppx_awaitable *aw, ppx__binding *b)
{
    if (!aw->progress_hooked)
        return;
    pthread_mutex_lock(&b->mu);
    if (aw->pcross_queued) {
        for (ppx_awaitable **pp = &b->pcross; *pp; pp = &(*pp)->pcross_next)
            if (*pp == aw) {
                *pp = aw->pcross_next;
                break;
            }
        aw->pcross_queued = false;
    }
    pthread_mutex_unlock(&b->mu);
}

/* Runs on whichever thread resolved the future. */
static void on_future_done(ppx_future *f, void *arg)
{
    ppx_awaitable *aw = arg;
    ppx__binding *b = aw->b;
    if (!b || uv_thread_equal(&b->thread, &(uv_thread_t){uv_thread_self()})) {
        if (b)
            leave_pcross(aw, b);
        const ppx_error *err;
        ppx_state st = ppx__future_outcome(f, &err);
        ppx__awaitable_settle(aw, st, err);
        return;
    }
    /* Sent under the lock: the loop takes aw from cross under it, and
     * closes the handle (and frees b) only once aw has settled. */
    pthread_mutex_lock(&b->mu);
    aw->cross_next = b->cross;
    b->cross = aw;
    uv_async_send(&b->async);
    pthread_mutex_unlock(&b->mu);
}

/* Runs on whichever thread took the future's new progress in. aw is
 * alive: it settles only through on_future_done, which starts only once
 * every progress callback of f has returned (future.c). */
static void on_future_progress(ppx_future *f, uint64_t done, uint64_t total, void *arg)
{
    (void)f;
    ppx_awaitable *aw = arg;
    ppx__binding *b = aw->b;
    if (uv_thread_equal(&b->thread, &(uv_thread_t){uv_thread_self()})) {
        ppx__progress(aw, (size_t)done, (size_t)total);
        return;
    }
    /* Queued once: the loop reads the latest values when it gets there. */
    pthread_mutex_lock(&b->mu);
    if (!aw->pcross_queued) {
        aw->pcross_queued = true;
        aw->pcross_next = b->pcross;
        b->pcross = aw;
    }
    uv_async_send(&b->async);
    pthread_mutex_unlock(&b->mu);
}

/* Hooks aw's future for ppx_awaitable_on_progress: 0 or a PPX_E* code. */
static int wrapped_watch_progress(ppx_awaitable *aw)
{
    if (aw->progress_hooked || !aw->b)
        return 0; /* hooked already, or resolved when wrapped */
    int rc = ppx_future_on_progress(aw->fut, on_future_progress, aw);
    if (rc == PPX_EDONE)
        return 0; /* resolved: aw settles with the last values told */
    if (rc == 0)
        aw->progress_hooked = true;
    return rc;
}

/* Here rather than in awaitable.c: a wrapped call's progress is this
 * file's (the hook above), other kinds answer through their ops. */
int ppx_awaitable_on_progress(ppx_awaitable *aw, ppx_progress_cb cb, void *arg)
{
    if (!ppx__awaitable_live(aw))
        return PPX_EBADOBJ;
    int (*watch)(ppx_awaitable *) = aw->wrapped ? wrapped_watch_progress
                                                : aw->ops->watch_progress;
    if (!aw->wrapped && !aw->ops->has_parts && !watch)
        return PPX_EINVAL; /* a wait has no steps to report */
    ppx_progress_cb was = aw->progress;
    void *was_arg = aw->progress_arg;
    aw->progress = cb;
    aw->progress_arg = arg;
    /* A single call's progress comes from its function: watch it. */
    int rc = cb && aw->state == PPX_PENDING && watch ? watch(aw) : 0;
    if (rc) {
        aw->progress = was;
        aw->progress_arg = was_arg;
    }
    return rc;
}

/* ppx_wrap_future while f is pinned to pool (NULL: f is resolved), the
 * awaitable in mem (room in f's block) or, if NULL, allocated. */
static int wrap_pinned(uv_loop_t *loop, ppx_future *f, ppx_pool *pool, void *mem,
                       ppx_awaitable **out)
{
    /* Pending in a pool this process did not make (a fork's copy):
     * nothing here could ever resolve it. */
    if (pool && ppx__pool_check(pool) == PPX_EFORKED)
        return PPX_EFORKED;
    ppx_awaitable *aw = mem ? ppx__awaitable_init(mem, loop) : ppx__awaitable_alloc(loop);
    if (!aw)
        return PPX_ENOMEM;
    aw->wrapped = true;
    aw->embedded = mem != NULL;
    int rc = 0;
    if (pool) {
        aw->b = ppx__bind(loop, pool, &rc);
        if (!aw->b) {
            if (!mem)
                free(aw);
            return rc;
        }
    }
    ppx_future_ref(f);
    aw->fut = f;
    aw->refs = 2; /* the caller's and the pending state's */
    if (aw->b)
        aw->b->pending++;
    rc = ppx_future_add_done_callback(f, on_future_done, aw);
    if (rc) {
        if (aw->b)
            aw->b->pending--;
        aw->refs = 1;
        ppx_awaitable_unref(aw);
        return rc;
    }
    if (aw->b)
        ppx__binding_update(aw->b);
    *out = aw;
    return 0;
}

static int wrap(uv_loop_t *loop, ppx_future *f, void *mem, ppx_awaitable **out)
{
    /* Pinned, the pool cannot go while it is bound; a resolved f needs
     * no pool (which may be gone). */
    ppx_pool *pool = ppx__future_pin(f);
    int rc = wrap_pinned(loop, f, pool, mem, out);
    if (pool)
        ppx__future_unpin(f);
    return rc;
}

int ppx_wrap_future(uv_loop_t *loop, ppx_future *f, ppx_awaitable **out)
{
    if (!loop || !out)
        return PPX_EINVAL;
    if (!ppx_future_id(f))
        return PPX_EBADOBJ;
    return wrap(loop, f, NULL, out);
}

/* ppx__wrap_submitted, the awaitable in mem (NULL: allocated). */
static int wrap_submitted(uv_loop_t *loop, ppx_future *f, void *mem, ppx_awaitable **out)
{
    int rc = wrap(loop, f, mem, out);
    if (rc)
        ppx_future_cancel(f);
    ppx_future_unref(f);
    return rc;
}

typedef struct prep_ctx {
    uv_loop_t *loop;
    ppx_pool *pool;
    ppx__binding *b; /* set once the awaitable counts as pending there */
} prep_ctx;

/* Makes the awaitable of a call about to be submitted (ppx__submit_prep),
 * in the room in front of its future: what wrap does, without pinning
 * the future or taking the pool's lock for its callback, since no other
 * thread can see the future yet. The submitter's reference on the
 * future becomes the awaitable's. */
static int prep_wrapped(ppx_future *f, void *arg)
{
    prep_ctx *c = arg;
    int rc = 0;
    ppx__binding *b = ppx__bind(c->loop, c->pool, &rc);
    if (!b)
        return rc;
    ppx_awaitable *aw = ppx__awaitable_init(ppx__future_prefix(f), c->loop);
    aw->wrapped = true;
    aw->embedded = true;
    aw->b = b;
    aw->fut = f;
    aw->refs = 2; /* the caller's and the pending state's */
    ppx__future_first_callback(f, on_future_done, aw);
    ppx__binding_add_pending(b);
    c->b = b;
    return 0;
}

/* A call through the loop: its awaitable shares the call's block
 * (future, task, small frame), one allocation in all. */
static int submit_wrapped(uv_loop_t *loop, ppx_pool *pool, const char *fn, const void *args,
                          size_t args_len, const ppx_call_options *opts, ppx_awaitable **out)
{
    ppx_future *f;
    prep_ctx c = {loop, pool, NULL};
    int rc = ppx__pool_submit_prefixed(pool, fn, args, args_len, opts, PPX__AW_PREFIX,
                                       prep_wrapped, &c, &f);
    if (rc) { /* the call and its awaitable are gone, unsent */
        if (c.b)
            ppx__binding_drop_pending(c.b);
        return rc;
    }
    if (!c.b) /* a name nobody registered: f has failed already */
        return wrap_submitted(loop, f, ppx__future_prefix(f), out);
    *out = ppx__future_prefix(f);
    return 0;
}

int ppx_run_in_executor(uv_loop_t *loop, ppx_pool *pool, const char *fn,
                        const void *args, size_t args_len, ppx_awaitable **out)
{
    if (!loop || !out)
        return PPX_EINVAL;
    if (pool == ppx_thread_pool())
        return ppx_run_in_thread(loop, fn, args, args_len, out);
    int rc = pool ? 0 : ppx__default_pool_get(&pool);
    return rc ? rc : submit_wrapped(loop, pool, fn, args, args_len, NULL, out);
}

int ppx_run_in_executor_ex(uv_loop_t *loop, ppx_pool *pool, const char *fn,
                           const void *args, size_t args_len, const ppx_call_options *opts,
                           ppx_awaitable **out)
{
    if (!loop || !out)
        return PPX_EINVAL;
    if (pool == ppx_thread_pool()) {
        ppx_call_options co = {.timeout_ms = 0};
        int rc = opts ? ppx__sized_in(&co, sizeof co, opts, PPX__CALL_OPTIONS_MIN,
                                      "ppx_call_options")
                      : 0;
        if (rc)
            return rc;
        /* A thread cannot be stopped as a worker is killed: a deadline
         * could only give up waiting, which ppx_wait_for already does. */
        if (co.timeout_ms > 0) {
            ppx__set_last_error("ppx_run_in_executor_ex: the thread executor cannot enforce "
                                "a deadline (timeout_ms %d): use ppx_wait_for",
                                co.timeout_ms);
            return PPX_EINVAL;
        }
        return ppx_run_in_thread(loop, fn, args, args_len, out);
    }
    int rc = pool ? 0 : ppx__default_pool_get(&pool);
    return rc ? rc : submit_wrapped(loop, pool, fn, args, args_len, opts, out);
}

int ppx__wrap_submitted(uv_loop_t *loop, ppx_future *f, ppx_awaitable **out)
{
    return wrap_submitted(loop, f, NULL, out);
}

typedef struct executor_args {
    uv_loop_t *loop;
    ppx_pool *pool;
    const char *fn;
    ppx_awaitable **out;
} executor_args;

static int run_packed(void *ctx, const void *args, size_t len)
{
    executor_args *a = ctx;
    return ppx_run_in_executor(a->loop, a->pool, a->fn, args, len, a->out);
}

int ppx_run_in_executorf(uv_loop_t *loop, ppx_pool *pool, ppx_awaitable **out,
                         const char *fn, const char *fmt, ...)
{
    executor_args a = {loop, pool, fn, out};
    va_list ap;
    va_start(ap, fmt);
    int rc = ppx__with_packed(run_packed, &a, fmt, ap);
    va_end(ap);
    return rc;
}

