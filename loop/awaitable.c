/* Awaitables that wrap process futures, and what every awaitable shares:
 * state, callbacks, references, cancellation, run_until_complete. */
#include "awaitable.h"
#include "../procpool/future.h"
#include "../procpool/pool.h"

#include <stdlib.h>
#include <string.h>



static bool live(const ppx_awaitable *aw)
{
    return ppx__awaitable_live(aw);
}

ppx_awaitable *ppx__awaitable_alloc(uv_loop_t *loop)
{
    ppx_awaitable *aw = calloc(1, sizeof *aw);
    if (!aw)
        return NULL;
    aw->magic = AW_MAGIC;
    aw->loop = loop;
    aw->state = PPX_PENDING;
    return aw;
}

ppx_awaitable *ppx__awaitable_new(uv_loop_t *loop, const ppx__aw_ops *ops, void *impl)
{
    ppx_awaitable *aw = ppx__awaitable_alloc(loop);
    if (!aw)
        return NULL;
    aw->ops = ops;
    aw->impl = impl;
    aw->refs = 2;
    return aw;
}

void ppx__awaitable_settle_uint(ppx_awaitable *aw, uint64_t v)
{
    unsigned char *b = malloc(9);
    if (!b) {
        aw->own_err = (ppx_error){"MemoryError", "no memory for the value", "", "", 0, 0, ""};
        ppx__awaitable_settle(aw, PPX_FAILED, &aw->own_err);
        return;
    }
    b[0] = 0xcf; /* uint64, big-endian */
    for (int i = 0; i < 8; i++)
        b[1 + i] = (unsigned char)(v >> (56 - 8 * i));
    free(aw->value);
    aw->value = b;
    aw->value_len = 9;
    ppx__awaitable_settle(aw, PPX_DONE, NULL);
}

void ppx_awaitable_ref(ppx_awaitable *aw)
{
    if (live(aw))
        aw->refs++;
}

void ppx_awaitable_unref(ppx_awaitable *aw)
{
    if (!live(aw) || --aw->refs > 0)
        return;
    aw->magic = AW_DEAD;
    if (aw->ops && aw->ops->release)
        aw->ops->release(aw);
    ppx_future_unref(aw->fut);
    for (size_t i = 0; i < aw->n; i++)
        ppx_awaitable_unref(aw->children[i]);
    free(aw->children);
    free(aw->links);
    free(aw->value);
    if (aw->cbs != aw->cb_inline)
        free(aw->cbs);
    free(aw);
}

void ppx__awaitable_settle(ppx_awaitable *aw, ppx_state st, const ppx_error *err)
{
    if (aw->state != PPX_PENDING)
        return;
    aw->state = st;
    aw->err = err;
    if (aw->b) {
        aw->b->pending--;
        ppx__binding_update(aw->b);
    }
    ppx__acb *cbs = aw->cbs;
    size_t n = aw->ncbs;
    aw->cbs = NULL;
    aw->ncbs = aw->capcbs = 0;
    for (size_t i = 0; i < n; i++)
        cbs[i].cb(aw, cbs[i].arg);
    if (cbs != aw->cb_inline)
        free(cbs);
    ppx_awaitable_unref(aw); /* the pending state's reference */
}

/* Runs on whichever thread resolved the future. */
static void on_future_done(ppx_future *f, void *arg)
{
    ppx_awaitable *aw = arg;
    ppx__binding *b = aw->b;
    if (!b || uv_thread_equal(&b->thread, &(uv_thread_t){uv_thread_self()})) {
        ppx__awaitable_settle(aw, ppx_future_state(f), ppx_future_error(f));
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

int ppx_wrap_future(uv_loop_t *loop, ppx_future *f, ppx_awaitable **out)
{
    if (!loop || !out)
        return PPX_EINVAL;
    if (!ppx_future_id(f))
        return PPX_EBADOBJ;
    ppx_pool *pool = atomic_load(&f->pool);
    /* Pending in a pool this process did not make (a fork's copy):
     * nothing here could ever resolve it. */
    if (pool && !ppx_future_done(f) && ppx__pool_check(pool) == PPX_EFORKED)
        return PPX_EFORKED;
    ppx_awaitable *aw = ppx__awaitable_alloc(loop);
    if (!aw)
        return PPX_ENOMEM;
    int rc = 0;
    if (pool && !ppx_future_done(f)) {
        aw->b = ppx__bind(loop, pool, &rc);
        if (!aw->b) {
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

int ppx_run_in_executor(uv_loop_t *loop, ppx_pool *pool, const char *fn,
                        const void *args, size_t args_len, ppx_awaitable **out)
{
    if (!loop || !out)
        return PPX_EINVAL;
    if (pool == ppx_thread_pool())
        return ppx_run_in_thread(loop, fn, args, args_len, out);
    int rc = pool ? 0 : ppx__default_pool_get(&pool);
    if (rc)
        return rc;
    ppx_future *f;
    rc = ppx_pool_submit(pool, fn, args, args_len, &f);
    return rc ? rc : ppx__wrap_submitted(loop, f, out);
}

int ppx__wrap_submitted(uv_loop_t *loop, ppx_future *f, ppx_awaitable **out)
{
    int rc = ppx_wrap_future(loop, f, out);
    if (rc)
        ppx_future_cancel(f);
    ppx_future_unref(f);
    return rc;
}

int ppx_run_in_executorf(uv_loop_t *loop, ppx_pool *pool, ppx_awaitable **out,
                         const char *fn, const char *fmt, ...)
{
    void *args;
    size_t len;
    va_list ap;
    va_start(ap, fmt);
    int rc = ppx_vpack(&args, &len, fmt, ap);
    va_end(ap);
    if (rc)
        return rc;
    rc = ppx_run_in_executor(loop, pool, fn, args, len, out);
    free(args);
    return rc;
}

ppx_state ppx_awaitable_state(const ppx_awaitable *aw)
{
    if (!live(aw))
        return PPX_PENDING;
    if (aw->state == PPX_PENDING && aw->fut)
        return ppx_future_state(aw->fut) == PPX_RUNNING ? PPX_RUNNING : PPX_PENDING;
    return aw->state;
}

bool ppx_awaitable_done(const ppx_awaitable *aw)
{
    return live(aw) && aw->state != PPX_PENDING;
}

int ppx_awaitable_value(const ppx_awaitable *aw, ppx_value *out)
{
    if (!live(aw))
        return PPX_EBADOBJ;
    if (!out)
        return PPX_EINVAL;
    switch (aw->state) {
    case PPX_DONE:
        if (aw->ops && aw->ops->value)
            return aw->ops->value(aw, out);
        if (aw->fut)
            return ppx_future_value(aw->fut, out);
        out->data = aw->value;
        out->len = aw->value_len;
        return 0;
    case PPX_FAILED:
        return PPX_ETASK;
    case PPX_CANCELLED:
        return PPX_ECANCELED;
    default:
        return PPX_EPENDING;
    }
}

const ppx_error *ppx_awaitable_error(const ppx_awaitable *aw)
{
    if (!live(aw) || (aw->state != PPX_FAILED && aw->state != PPX_CANCELLED))
        return NULL;
    return aw->err;
}

ppx_future *ppx_awaitable_future(const ppx_awaitable *aw)
{
    return live(aw) ? aw->fut : NULL;
}

int ppx_awaitable_cancel(ppx_awaitable *aw)
{
    if (!live(aw))
        return PPX_EBADOBJ;
    if (aw->state != PPX_PENDING)
        return PPX_EDONE;
    if (aw->is_gather) {
        ppx__gather_cancel(aw);
        return 0;
    }
    if (aw->ops) {
        ppx_awaitable_ref(aw);
        aw->ops->cancel(aw);
        ppx_awaitable_unref(aw);
        return 0;
    }
    /* Resolves the future on this thread, which settles aw at once. */
    return ppx_future_cancel(aw->fut);
}

int ppx_awaitable_add_done_callback(ppx_awaitable *aw, ppx_awaitable_cb cb, void *arg)
{
    if (!live(aw))
        return PPX_EBADOBJ;
    if (!cb)
        return PPX_EINVAL;
    if (aw->state != PPX_PENDING) {
        cb(aw, arg);
        return 0;
    }
    if (!aw->cbs) {
        aw->cbs = aw->cb_inline;
        aw->capcbs = sizeof aw->cb_inline / sizeof aw->cb_inline[0];
    }
    if (aw->ncbs == aw->capcbs) {
        size_t ncap = aw->capcbs * 2;
        bool inline_now = aw->cbs == aw->cb_inline;
        ppx__acb *n = realloc(inline_now ? NULL : aw->cbs, ncap * sizeof *n);
        if (!n)
            return PPX_ENOMEM;
        if (inline_now)
            memcpy(n, aw->cb_inline, sizeof aw->cb_inline);
        aw->cbs = n;
        aw->capcbs = ncap;
    }
    aw->cbs[aw->ncbs++] = (ppx__acb){cb, arg};
    return 0;
}

void ppx__awaitable_remove_done_callback(ppx_awaitable *aw, ppx_awaitable_cb cb, void *arg)
{
    for (size_t i = aw->ncbs; i-- > 0;) {
        if (aw->cbs[i].cb == cb && aw->cbs[i].arg == arg) {
            memmove(&aw->cbs[i], &aw->cbs[i + 1], (aw->ncbs - i - 1) * sizeof aw->cbs[i]);
            aw->ncbs--;
            return;
        }
    }
}

/* Counting a child whose callback could not be added as "reported" would
 * let a gather or wait settle while it still runs (and hand as_completed
 * a pending one): so either every pending child gets its callback, or
 * none keeps one. Settled children are reported only after that, since
 * reporting has effects (a failed child fails a gather, which cancels
 * the others) that could not be taken back. */
int ppx__add_done_callbacks(ppx_awaitable *const *items, size_t n, ppx_awaitable_cb cb,
                            void *args, size_t stride, size_t late_off)
{
    char *a = args;
#define LATE(i) (*(bool *)(a + (i) * stride + late_off))
    for (size_t i = 0; i < n; i++) {
        LATE(i) = ppx_awaitable_done(items[i]);
        if (LATE(i) || ppx_awaitable_add_done_callback(items[i], cb, a + i * stride) == 0)
            continue;
        while (i-- > 0)
            if (!LATE(i))
                ppx__awaitable_remove_done_callback(items[i], cb, a + i * stride);
        return PPX_ENOMEM;
    }
    for (size_t i = 0; i < n; i++)
        if (LATE(i))
            cb(items[i], a + i * stride);
#undef LATE
    return 0;
}

int ppx_awaitable_on_progress(ppx_awaitable *aw, ppx_progress_cb cb, void *arg)
{
    if (!live(aw))
        return PPX_EBADOBJ;
    if (!aw->is_gather && !(aw->ops && aw->ops->has_parts))
        return PPX_EINVAL; /* a call or a wait has no steps to report */
    aw->progress = cb;
    aw->progress_arg = arg;
    return 0;
}

int ppx_run_until_complete(uv_loop_t *loop, ppx_awaitable *aw)
{
    if (!loop)
        return PPX_EINVAL;
    if (!live(aw))
        return PPX_EBADOBJ;
    while (aw->state == PPX_PENDING) {
        int alive = uv_run(loop, UV_RUN_ONCE);
        if (!alive && aw->state == PPX_PENDING)
            return PPX_ENOWORK;
    }
    return 0;
}
