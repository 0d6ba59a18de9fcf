/*
 * A binding's handles as its awaitables come and go: whether the poll
 * handle keeps the loop alive, the low-latency spin, and the close of the
 * handles (the binding's memory goes with the last). Beneath binding.c
 * (which makes and detaches bindings) and awaitable.c (whose settling
 * updates them). On the loop's thread.
 */
#include "awaitable.h"
#include "../procpool/pool.h"

#include <stdlib.h>

static void on_spin(uv_idle_t *h);

void ppx__binding_update(ppx__binding *b)
{
    if (!b->pool) {
        if (b->pending == 0 && !b->async_closing) {
            b->async_closing = true;
            uv_close((uv_handle_t *)&b->async, ppx__binding_closed);
        }
        return;
    }
    if (b->open_handles < 3)
        return; /* ppx__bind failed: the handles are closing */
    if (b->pending > 0 || ppx_pool_busy(b->pool))
        uv_ref((uv_handle_t *)&b->poll);
    else
        uv_unref((uv_handle_t *)&b->poll);
    if (b->spin_us > 0 && b->pending > 0 && !uv_is_active((uv_handle_t *)&b->spin))
        uv_idle_start(&b->spin, on_spin);
}

/* Low-latency mode. An active idle handle makes the loop poll for I/O
 * without blocking; each turn we watch the rings for spin_us, and when
 * nothing came in that long we stop, and the eventfd wakes us as usual. */
static void on_spin(uv_idle_t *h)
{
    ppx__binding *b = h->data;
    if (!b->pool || b->pending == 0 || ppx__pool_spin(b->pool, b->spin_us) == 0)
        uv_idle_stop(h);
    if (b->pool)
        ppx__binding_update(b);
}

void ppx__binding_closed(uv_handle_t *h)
{
    ppx__binding *b = h->data;
    if (--b->open_handles == 0) {
        pthread_mutex_destroy(&b->mu);
        free(b);
    }
}
