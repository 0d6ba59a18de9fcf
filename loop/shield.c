/*
 * ppx_shield, like asyncio.shield: an outer awaitable that resolves as
 * the inner one does, and whose cancellation stops the outer alone. The
 * outer holds a reference on the inner (impl) for its value and error,
 * and one on itself while its callback on the inner is due.
 */
#include "awaitable.h"

static const ppx_error shield_cancelled = {
    "CancelledError", "the shield was cancelled", "", "", 0, 0, "",
};

static void on_inner(ppx_awaitable *inner, void *arg)
{
    ppx_awaitable *outer = arg;
    /* The inner's error is borrowed: the outer holds the inner. */
    if (outer->state == PPX_PENDING)
        ppx__awaitable_settle(outer, ppx_awaitable_state(inner), ppx_awaitable_error(inner));
    ppx_awaitable_unref(outer); /* the callback's reference */
}

static void cancel(ppx_awaitable *outer)
{
    ppx_awaitable *inner = outer->impl;
    ppx__awaitable_settle(outer, PPX_CANCELLED, &shield_cancelled);
    /* The inner goes on; it need not keep the outer alive until it ends.
     * Not found: it is settling now, and the callback drops that ref. */
    if (ppx_awaitable_remove_done_callback(inner, on_inner, outer) == 1)
        ppx_awaitable_unref(outer);
}

static int forward_value(const ppx_awaitable *outer, ppx_value *out)
{
    return ppx_awaitable_value(outer->impl, out);
}

static void release(ppx_awaitable *outer)
{
    ppx_awaitable_unref(outer->impl);
}

static const ppx__aw_ops shield_ops = {cancel, forward_value, release, NULL, false};

int ppx_shield(uv_loop_t *loop, ppx_awaitable *aw, ppx_awaitable **out)
{
    if (!loop || !out)
        return PPX_EINVAL;
    if (!ppx__awaitable_live(aw))
        return PPX_EBADOBJ;
    ppx_awaitable *outer = ppx__awaitable_new(loop, &shield_ops, aw);
    if (!outer)
        return PPX_ENOMEM;
    ppx_awaitable_ref(aw);
    outer->refs++; /* the callback's; an inner already settled runs it now */
    int rc = ppx_awaitable_add_done_callback(aw, on_inner, outer);
    if (rc) {
        outer->refs = 1; /* no callback is due, nothing settles it */
        ppx_awaitable_unref(outer);
        return rc;
    }
    *out = outer;
    return 0;
}
