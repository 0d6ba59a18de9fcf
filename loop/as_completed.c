/*
 * as_completed: hands back awaitables in the order they finish. The
 * iterator runs the loop itself (like ppx_run_until_complete), so a batch
 * program can write a plain for loop over results.
 *
 * Its memory is shared by the caller and by every child callback still to
 * come (refs), by its timer while that is open, and by a _next that is
 * running the loop: whichever lets go last frees it, so freeing the
 * iterator early is always safe, from a callback too.
 */
#include "awaitable.h"
#include "children.h"

#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

typedef struct ac_link {
    struct ppx_as_completed *it;
    size_t i;
} ac_link;

struct ppx_as_completed {
    uv_loop_t *loop;
    uv_timer_t timer;
    int refs;            /* the caller, pending callbacks, the open timer, _next */
    bool freed;
    bool fired;
    ppx_awaitable **children;
    size_t n;
    size_t *order;       /* indices, in the order they finished */
    size_t nfinished, nreturned;
    ac_link *links;
};

static void drop(ppx_as_completed *it)
{
    if (--it->refs > 0)
        return;
    free(it->children);
    free(it->order);
    free(it->links);
    free(it);
}

static void on_closed(uv_handle_t *h)
{
    drop(h->data);
}

static void on_child(ppx_awaitable *child, void *arg)
{
    (void)child;
    ac_link *l = arg;
    ppx_as_completed *it = l->it;
    it->order[it->nfinished++] = l->i;
    drop(it);
}

static void on_timer(uv_timer_t *t)
{
    ppx_as_completed *it = t->data;
    it->fired = true;
}

typedef struct ac_key {
    uintptr_t p;
    size_t i;
} ac_key;

static int by_address(const void *a, const void *b)
{
    const ac_key *x = a, *y = b;
    if (x->p != y->p)
        return x->p < y->p ? -1 : 1;
    return (x->i > y->i) - (x->i < y->i);
}

/* Copies items into children once each, in the order first given, and
 * returns how many (SIZE_MAX on ENOMEM): asyncio.as_completed takes a set
 * of them, and one awaitable finishes once. Sorting keeps a long list
 * O(n log n). */
static size_t distinct(ppx_awaitable *const *items, size_t n, ppx_awaitable **children)
{
    memcpy(children, items, n * sizeof *children);
    if (n < 2)
        return n;
    ac_key *k = malloc(n * sizeof *k);
    if (!k)
        return SIZE_MAX;
    for (size_t i = 0; i < n; i++)
        k[i] = (ac_key){(uintptr_t)items[i], i};
    qsort(k, n, sizeof *k, by_address);
    for (size_t j = 1; j < n; j++)
        if (k[j].p == k[j - 1].p)
            children[k[j].i] = NULL; /* items are live, never NULL */
    free(k);
    size_t m = 0;
    for (size_t i = 0; i < n; i++)
        if (children[i])
            children[m++] = children[i];
    return m;
}

static void free_unstarted(ppx_as_completed *it)
{
    if (it) {
        free(it->children);
        free(it->order);
        free(it->links);
    }
    free(it);
}

int ppx_as_completed_new(uv_loop_t *loop, ppx_awaitable *const *items, size_t n,
                         ppx_as_completed **out)
{
    if (!loop || !out || (n && !items))
        return PPX_EINVAL;
    int rc = ppx__check_children(loop, items, n, "ppx_as_completed_new");
    if (rc)
        return rc;
    ppx_as_completed *it = calloc(1, sizeof *it);
    if (it) {
        it->children = calloc(n ? n : 1, sizeof *it->children);
        it->order = calloc(n ? n : 1, sizeof *it->order);
        it->links = calloc(n ? n : 1, sizeof *it->links);
    }
    if (!it || !it->children || !it->order || !it->links ||
        (n = distinct(items, n, it->children)) == SIZE_MAX) {
        free_unstarted(it);
        return PPX_ENOMEM;
    }
    it->loop = loop;
    it->n = n;
    it->refs = 2 + (int)n; /* the caller's, the timer's, one per child */
    uv_timer_init(loop, &it->timer);
    it->timer.data = it;
    uv_unref((uv_handle_t *)&it->timer); /* only next() waits on it */
    for (size_t i = 0; i < n; i++) {
        ppx_awaitable_ref(it->children[i]);
        it->links[i] = (ac_link){it, i};
    }
    if (ppx__add_done_callbacks(it->children, n, on_child, it->links, sizeof *it->links)) {
        it->refs = 2; /* no callback is due: the caller's and the timer's */
        ppx_as_completed_free(it);
        return PPX_ENOMEM;
    }
    *out = it;
    return 0;
}

int ppx_as_completed_next(ppx_as_completed *it, int timeout_ms, ppx_awaitable **out)
{
    if (!it || it->freed || !out)
        return PPX_EINVAL;
    if (it->nreturned == it->n)
        return PPX_EDONE;
    /* A callback the loop runs may free the iterator: hold it meanwhile. */
    it->refs++;
    it->fired = false;
    if (timeout_ms >= 0 && it->nreturned == it->nfinished) {
        uv_ref((uv_handle_t *)&it->timer);
        uv_timer_start(&it->timer, on_timer, (uint64_t)timeout_ms, 0);
    }
    int rc = 0;
    while (it->nreturned == it->nfinished && !it->fired && !it->freed) {
        if (timeout_ms == 0) {
            uv_run(it->loop, UV_RUN_NOWAIT);
            break;
        }
        /* The timer, once fired, leaves the loop with nothing to run:
         * that is a timeout, not a lack of work. */
        if (!uv_run(it->loop, UV_RUN_ONCE) && it->nreturned == it->nfinished && !it->fired) {
            rc = PPX_ENOWORK; /* nothing left that could finish a child */
            break;
        }
    }
    if (it->freed) { /* its children are no longer held: hand none back */
        drop(it);
        return PPX_EINVAL;
    }
    uv_timer_stop(&it->timer);
    uv_unref((uv_handle_t *)&it->timer);
    if (it->nreturned < it->nfinished) {
        *out = it->children[it->order[it->nreturned++]];
        rc = 0;
    } else if (!rc) {
        rc = PPX_ETIMEDOUT;
    }
    drop(it);
    return rc;
}

void ppx_as_completed_free(ppx_as_completed *it)
{
    if (!it || it->freed)
        return;
    it->freed = true;
    for (size_t i = 0; i < it->n; i++)
        ppx_awaitable_unref(it->children[i]);
    uv_close((uv_handle_t *)&it->timer, on_closed);
    drop(it); /* the caller's */
}
