/*
 * Waiting on awaitables without gathering them, in the spirit of
 * asyncio.wait and asyncio.wait_for: ppx_wait settles when a condition
 * over its children holds or its timeout passes, and never touches the
 * children; ppx_wait_for settles with its child's outcome, or fails with
 * TimeoutError and cancels the child.
 *
 * Like a gather, a wait holds one reference on itself per child callback
 * still to come, so it lives until every child has reported. Its timer is
 * in impl, which outlives the awaitable until the timer's close callback.
 */
#include "awaitable.h"
#include "children.h"

#include <stddef.h>
#include <stdlib.h>

typedef struct waiter {
    uv_timer_t timer;
    bool timer_open;
    ppx_awaitable *aw;   /* NULL once released */
    int when;            /* PPX_FIRST_COMPLETED, ...; -1: wait_for */
    ppx_awaitable **children;
    ppx__glink *links;
    size_t n, ndone;
    bool failed_child;
    /* asyncio.wait's done set, as it stood when the wait settled: a child
     * that finishes later stays out of it (ppx_wait_done). */
    bool *done_at;
    bool has_sets;
} waiter;

static const ppx_error timed_out = {
    "TimeoutError", "the awaitable did not finish in time", "", "", 0, 0, "",
};
static const ppx_error wait_cancelled = {
    "CancelledError", "the wait was cancelled", "", "", 0, 0, "",
};

static void free_waiter(uv_handle_t *h)
{
    waiter *w = h->data;
    free(w->children);
    free(w->links);
    free(w->done_at);
    free(w);
}

static void release(ppx_awaitable *aw)
{
    waiter *w = aw->impl;
    for (size_t i = 0; i < w->n; i++)
        ppx_awaitable_unref(w->children[i]);
    w->aw = NULL;
    if (w->timer_open)
        uv_close((uv_handle_t *)&w->timer, free_waiter);
    else
        free_waiter((uv_handle_t *)&w->timer);
}

static void stop_timer(waiter *w)
{
    if (w->timer_open)
        uv_timer_stop(&w->timer);
}

/* The value is how many children have finished by now, counted from
 * their states: done callbacks of children that finished before the wait
 * began run one by one while it registers, so ndone can lag behind. */
static void settle_wait(waiter *w)
{
    stop_timer(w);
    size_t finished = 0;
    for (size_t i = 0; i < w->n; i++) {
        w->done_at[i] = ppx_awaitable_done(w->children[i]);
        finished += w->done_at[i];
    }
    w->has_sets = true;
    ppx__awaitable_settle_uint(w->aw, finished);
}

static bool condition_holds(const waiter *w)
{
    switch (w->when) {
    case PPX_FIRST_COMPLETED:
        return w->ndone > 0 || w->n == 0;
    case PPX_FIRST_EXCEPTION:
        return w->failed_child || w->ndone == w->n;
    default:
        return w->ndone == w->n;
    }
}

static void on_child(ppx_awaitable *child, void *arg)
{
    ppx__glink *link = arg;
    ppx_awaitable *aw = link->g;
    waiter *w = aw->impl;
    w->ndone++;
    if (aw->state == PPX_PENDING) {
        if (w->when < 0) {
            stop_timer(w);
            ppx__awaitable_settle(aw, ppx_awaitable_state(child), ppx_awaitable_error(child));
        } else {
            w->failed_child |= ppx_awaitable_state(child) == PPX_FAILED;
            if (condition_holds(w))
                settle_wait(w);
        }
    }
    ppx_awaitable_unref(aw); /* this child's callback reference */
}

static void on_timer(uv_timer_t *t)
{
    waiter *w = t->data;
    ppx_awaitable *aw = w->aw;
    if (!aw || aw->state != PPX_PENDING)
        return;
    if (w->when >= 0) {
        settle_wait(w);
        return;
    }
    /* wait_for: the timeout is the outcome, then the child is stopped. */
    ppx_awaitable_ref(aw);
    ppx__awaitable_settle(aw, PPX_FAILED, &timed_out);
    ppx_awaitable_cancel(w->children[0]);
    ppx_awaitable_unref(aw);
}

static void cancel(ppx_awaitable *aw)
{
    waiter *w = aw->impl;
    stop_timer(w);
    ppx__awaitable_settle(aw, PPX_CANCELLED, &wait_cancelled);
    if (w->when < 0) /* wait_for owns its child's fate; wait does not */
        ppx_awaitable_cancel(w->children[0]);
}

static int forward_value(const ppx_awaitable *aw, ppx_value *out)
{
    const waiter *w = aw->impl;
    return ppx_awaitable_value(w->children[0], out);
}

static const ppx__aw_ops wait_ops = {cancel, NULL, release, NULL, false};
static const ppx__aw_ops wait_for_ops = {cancel, forward_value, release, NULL, false};

/* A waiter for n children and its awaitable; NULL on ENOMEM. */
static ppx_awaitable *new_waiter(uv_loop_t *loop, size_t n, int when)
{
    waiter *w = calloc(1, sizeof *w);
    ppx_awaitable *aw = NULL;
    if (w) {
        w->timer.data = w; /* what free_waiter reads */
        w->children = calloc(n ? n : 1, sizeof *w->children);
        w->links = calloc(n ? n : 1, sizeof *w->links);
        w->done_at = calloc(n ? n : 1, sizeof *w->done_at);
    }
    if (w && w->children && w->links && w->done_at)
        aw = ppx__awaitable_new(loop, when < 0 ? &wait_for_ops : &wait_ops, w);
    if (!aw && w)
        free_waiter((uv_handle_t *)&w->timer);
    return aw;
}

static int start(uv_loop_t *loop, ppx_awaitable *const *items, size_t n, int when,
                 int timeout_ms, ppx_awaitable **out)
{
    if (!loop || !out || (n && !items))
        return PPX_EINVAL;
    int rc = ppx__check_children(loop, items, n, when < 0 ? "ppx_wait_for" : "ppx_wait");
    if (rc)
        return rc;
    ppx_awaitable *aw = new_waiter(loop, n, when);
    if (!aw)
        return PPX_ENOMEM;
    waiter *w = aw->impl;
    w->aw = aw;
    w->when = when;
    w->n = n;
    if (timeout_ms > 0) {
        uv_timer_init(loop, &w->timer); /* cannot fail */
        w->timer_open = true;
        uv_timer_start(&w->timer, on_timer, (uint64_t)timeout_ms, 0);
    }
    aw->refs += (int)n;
    for (size_t i = 0; i < n; i++) {
        w->children[i] = items[i];
        ppx_awaitable_ref(items[i]);
        w->links[i] = (ppx__glink){aw, i};
    }
    ppx_awaitable_ref(aw);
    if (ppx__add_done_callbacks(items, n, on_child, w->links, sizeof *w->links)) {
        aw->refs = 1; /* no callback is due: release closes the timer */
        ppx_awaitable_unref(aw);
        return PPX_ENOMEM;
    }
    *out = aw;
    if (aw->state == PPX_PENDING && (condition_holds(w) && when >= 0))
        settle_wait(w);
    if (aw->state == PPX_PENDING && timeout_ms == 0)
        on_timer(&w->timer); /* a poll: what is done now is the answer */
    ppx_awaitable_unref(aw);
    return 0;
}

int ppx_wait(uv_loop_t *loop, ppx_awaitable *const *items, size_t n, int return_when,
             int timeout_ms, ppx_awaitable **out)
{
    if (return_when != PPX_FIRST_COMPLETED && return_when != PPX_FIRST_EXCEPTION &&
        return_when != PPX_ALL_COMPLETED)
        return PPX_EINVAL;
    return start(loop, items, n, return_when, timeout_ms, out);
}

int ppx_wait_done(const ppx_awaitable *aw, size_t i, bool *done)
{
    if (!ppx__awaitable_live(aw) || aw->ops != &wait_ops)
        return PPX_EBADOBJ;
    if (!done)
        return PPX_EINVAL;
    const waiter *w = aw->impl;
    if (!w->has_sets) /* pending, or cancelled: asyncio.wait then has no sets */
        return aw->state == PPX_PENDING ? PPX_EPENDING : PPX_ECANCELED;
    if (i >= w->n)
        return PPX_EINDEX;
    *done = w->done_at[i];
    return 0;
}

int ppx_wait_for(uv_loop_t *loop, ppx_awaitable *aw, int timeout_ms, ppx_awaitable **out)
{
    if (!ppx__awaitable_live(aw))
        return PPX_EBADOBJ;
    return start(loop, &aw, 1, -1, timeout_ms, out);
}
