/*
 * gather: one awaitable for many, in the spirit of asyncio.gather. The
 * gather holds one reference per child callback still to come, so it
 * lives until every child has reported, even after it has settled.
 */
#include "awaitable.h"
#include "children.h"

#include <msgpack.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

static const ppx_error gather_cancelled = {
    "CancelledError", "the gather was cancelled", "", "", 0, 0, "",
};

/* A gather's own part (aw->impl). */
typedef struct gather {
    ppx_awaitable **children;
    size_t n, ndone;
    int flags;
    bool flatten; /* value: the children's arrays concatenated (a map) */
    ppx_error err; /* a failed child's (held by the gather), or no memory */
} gather;

static const ppx_error no_memory = {
    "MemoryError", "no memory for the gathered values", "", "", 0, 0, "",
};

/* A map's value: the children's result arrays, concatenated. */
static int flatten_into(const gather *g, msgpack_sbuffer *sb, msgpack_packer *pk)
{
    size_t total = 0;
    for (size_t i = 0; i < g->n; i++) {
        ppx_value v;
        size_t k;
        if (ppx_awaitable_value(g->children[i], &v) || ppx_value_array_len(v, &k))
            return PPX_EMALFORMED;
        total += k;
    }
    int rc = msgpack_pack_array(pk, total) ? PPX_ENOMEM : 0;
    for (size_t i = 0; i < g->n && rc == 0; i++) {
        ppx_value v, first;
        ppx_awaitable_value(g->children[i], &v);
        if (ppx_value_at(v, 0, &first) != 0)
            continue; /* an empty chunk */
        size_t head = (size_t)((const char *)first.data - (const char *)v.data);
        rc = msgpack_sbuffer_write(sb, (const char *)v.data + head, v.len - head) ? PPX_ENOMEM : 0;
    }
    return rc;
}

/* The value: an array of the children's values, nil for failed ones. */
static int build_value(ppx_awaitable *aw)
{
    const gather *g = aw->impl;
    msgpack_sbuffer sb;
    msgpack_packer pk;
    msgpack_sbuffer_init(&sb);
    msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
    int rc = g->flatten ? flatten_into(g, &sb, &pk) : msgpack_pack_array(&pk, g->n);
    for (size_t i = 0; i < g->n && rc == 0 && !g->flatten; i++) {
        ppx_value v;
        if (ppx_awaitable_value(g->children[i], &v) == 0)
            rc = msgpack_sbuffer_write(&sb, v.data, v.len);
        else
            rc = msgpack_pack_nil(&pk);
    }
    if (rc) {
        msgpack_sbuffer_destroy(&sb);
        return PPX_ENOMEM;
    }
    aw->value_len = sb.size;
    aw->value = (unsigned char *)msgpack_sbuffer_release(&sb);
    return 0;
}

static void cancel_children(const gather *g)
{
    for (size_t i = 0; i < g->n; i++)
        if (!ppx_awaitable_done(g->children[i]))
            ppx_awaitable_cancel(g->children[i]);
}

static void on_child(ppx_awaitable *child, void *arg)
{
    /* Every child's callback has the gather itself as arg: a link per
     * child (gather, index, flag) was 24 bytes of fresh memory per child,
     * 2.4 MB and ~600 page faults for a gather of 100k. */
    ppx_awaitable *aw = arg;
    gather *g = aw->impl;
    g->ndone++;
    ppx__progress(aw, g->ndone, g->n);
    if (aw->state == PPX_PENDING) {
        ppx_state st = ppx_awaitable_state(child);
        bool failed = st == PPX_FAILED || st == PPX_CANCELLED;
        if (failed && !(g->flags & PPX_GATHER_RETURN_ERRORS)) {
            g->err = *ppx_awaitable_error(child);
            ppx__awaitable_settle(aw, PPX_FAILED, &g->err);
            /* Fail fast: the siblings' results can no longer matter. */
            cancel_children(g);
        } else if (g->ndone == g->n) {
            if (build_value(aw) == 0)
                ppx__awaitable_settle(aw, PPX_DONE, NULL);
            else
                ppx__awaitable_settle(aw, PPX_FAILED, &no_memory);
        }
    }
    ppx_awaitable_unref(aw); /* this child's callback reference */
}

/* ppx_awaitable_cancel of a pending gather (which holds a reference
 * meanwhile): it settles CANCELLED, then its children are cancelled.
 * Unless every child has resolved already: a cancel from one of a
 * child's done callbacks added before the gather's own runs before the
 * gather has heard of it, when its outcome is decided and nothing is left
 * to stop. It is refused then (left pending: PPX_EDONE), and the gather
 * resolves as its children did, as asyncio's does (Python issue #26923,
 * test_tasks.py test_cancel_gather_1). */
static void gather_cancel(ppx_awaitable *aw)
{
    gather *g = aw->impl;
    size_t done = 0;
    while (done < g->n && ppx_awaitable_done(g->children[done]))
        done++;
    if (g->n > 0 && done == g->n)
        return;
    ppx__awaitable_settle(aw, PPX_CANCELLED, &gather_cancelled);
    cancel_children(g);
}

/* Its children (and the strings of a failed one's error) go with it. */
static void gather_release(ppx_awaitable *aw)
{
    gather *g = aw->impl;
    for (size_t i = 0; i < g->n; i++)
        ppx_awaitable_unref(g->children[i]);
    free(g->children);
    free(g);
}

/* Its value is aw->value. */
static const ppx__aw_ops gather_ops = {
    .cancel = gather_cancel, .release = gather_release, .has_parts = true,
};

int ppx_gather(uv_loop_t *loop, ppx_awaitable *const *items, size_t n, int flags,
               ppx_awaitable **out)
{
    if (flags & ~PPX_GATHER_RETURN_ERRORS)
        return PPX_EINVAL;
    return ppx__gather(loop, items, n, flags, false, out);
}

int ppx__gather(uv_loop_t *loop, ppx_awaitable *const *items, size_t n, int flags,
                bool flatten, ppx_awaitable **out)
{
    if (!loop || !out || (n && !items))
        return PPX_EINVAL;
    int rc = ppx__check_children(loop, items, n, flatten ? "ppx_run_in_executor_map" : "ppx_gather");
    if (rc)
        return rc;
    gather *g = calloc(1, sizeof *g);
    ppx_awaitable *aw = g ? ppx__awaitable_new(loop, &gather_ops, g) : NULL;
    if (g)
        g->children = malloc((n ? n : 1) * sizeof *g->children);
    if (!aw || !g->children) {
        if (g)
            free(g->children);
        free(g);
        free(aw);
        return PPX_ENOMEM;
    }
    g->flatten = flatten;
    g->flags = flags;
    /* The caller's, the pending state's, and one per child callback. */
    aw->refs = 2 + (int)n;
    for (size_t i = 0; i < n; i++) {
        g->children[i] = items[i];
        ppx_awaitable_ref(items[i]);
    }
    /* Counted once every child holds its reference: release unrefs n. */
    g->n = n;
    if (n == 0) {
        *out = aw;
        ppx__awaitable_settle(aw, build_value(aw) == 0 ? PPX_DONE : PPX_FAILED, &no_memory);
        return 0;
    }
    /* Children already settled report at once, which may settle aw. */
    ppx_awaitable_ref(aw);
    if (ppx__add_done_callbacks(items, n, on_child, aw, 0)) {
        aw->refs = 1; /* no callback is due: only the caller's was real */
        ppx_awaitable_unref(aw);
        return PPX_ENOMEM;
    }
    *out = aw;
    ppx_awaitable_unref(aw);
    return 0;
}

static const gather *gather_of(const ppx_awaitable *aw)
{
    return ppx__awaitable_live(aw) && !aw->wrapped && aw->ops == &gather_ops ? aw->impl : NULL;
}

size_t ppx_gather_count(const ppx_awaitable *aw)
{
    const gather *g = gather_of(aw);
    return g ? g->n : 0;
}

ppx_awaitable *ppx_gather_child(const ppx_awaitable *aw, size_t i)
{
    const gather *g = gather_of(aw);
    return g && i < g->n ? g->children[i] : NULL;
}
