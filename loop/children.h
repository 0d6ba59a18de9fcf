/* The checks every function that takes children (gather, wait, wait_for,
 * as_completed, task groups) makes before it touches any of them. */
#ifndef PPX_LOOP_CHILDREN_H
#define PPX_LOOP_CHILDREN_H
#include "awaitable.h"
#include "../procpool/errors.h"

/* PPX_EBADOBJ for a NULL or wrong-kind child; PPX_EINVAL for one bound
 * to another loop, as asyncio refuses futures of another loop: its
 * callbacks would run on that loop's thread, racing this one (what names
 * the caller, for ppx_last_error). */
static inline int ppx__check_children(uv_loop_t *loop, ppx_awaitable *const *items, size_t n,
                                      const char *what)
{
    for (size_t i = 0; i < n; i++)
        if (!ppx__awaitable_live(items[i]))
            return PPX_EBADOBJ;
    for (size_t i = 0; i < n; i++) {
        if (items[i]->loop != loop) {
            ppx__set_last_error("%s: awaitable %zu belongs to another loop", what, i);
            return PPX_EINVAL;
        }
    }
    return 0;
}

#endif
