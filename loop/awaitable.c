/* What every awaitable shares: state, value, callbacks, references,
 * cancellation, run_until_complete. Wrapping a process future is
 * executor.c; the other kinds are in their own files. */
#include "awaitable.h"
#include "../procpool/future.h"
#include "../procpool/pool.h"

#include <assert.h>
#include <stdlib.h>
#include <string.h>

/* Every pending call through the loop has one: 112 bytes on 64-bit
 * targets (ppx_run_in_executor's sits in front of its call's block). */
static_assert(sizeof(void *) != 8 || sizeof(struct ppx_awaitable) <= 112,
              "ppx_awaitable stays at 112 bytes");

/* A wrong-kind or NULL handle is caught by the magic; an awaitable used
 * after its last unref is undefined behaviour (ppx.h). */
static bool live(const ppx_awaitable *aw)
{
    return ppx__awaitable_live(aw);
}

ppx_awaitable *ppx__awaitable_alloc(uv_loop_t *loop)
{
    /* malloc, not calloc, which skips glibc's per-thread cache; zeroed
     * by a compound literal, since a memset would be folded back into
     * calloc (procpool/future.c). */
    return ppx__awaitable_init(malloc(sizeof(ppx_awaitable)), loop);
}

ppx_awaitable *ppx__awaitable_init(void *mem, uv_loop_t *loop)
{
    ppx_awaitable *aw = mem;
    if (!aw)
        return NULL;
    *aw = (ppx_awaitable){.magic = AW_MAGIC};
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

static const ppx_error no_memory_for_value = {
    "MemoryError", "no memory for the value", "", "", 0, 0, "",
};

void ppx__awaitable_settle_uint(ppx_awaitable *aw, uint64_t v)
{
    unsigned char *b = malloc(9);
    if (!b) {
        ppx__awaitable_settle(aw, PPX_FAILED, &no_memory_for_value);
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
    if (aw->cbs != aw->cb_inline)
        free(aw->cbs);
    if (aw->wrapped) {
        ppx_future *f = aw->fut;
        if (!aw->embedded)
            free(aw);
        ppx_future_unref(f); /* last: an embedded aw may go with it */
        return;
    }
    if (aw->ops->release)
        aw->ops->release(aw);
    free(aw->value);
    free(aw);
}

void ppx__awaitable_settle(ppx_awaitable *aw, ppx_state st, const ppx_error *err)
{
    if (aw->state != PPX_PENDING)
        return;
    aw->state = st;
    aw->err = err;
    if (aw->wrapped && aw->b)
        ppx__binding_drop_pending(aw->b);
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

ppx_state ppx_awaitable_state(const ppx_awaitable *aw)
{
    if (!live(aw))
        return PPX_PENDING;
    if (aw->state == PPX_PENDING && aw->wrapped)
        return ppx_future_state(aw->fut) == PPX_RUNNING ? PPX_RUNNING : PPX_PENDING;
    return aw->state;
}

bool ppx_awaitable_done(const ppx_awaitable *aw)
{
    return live(aw) && aw->state != PPX_PENDING;
}

bool ppx_awaitable_valid(const ppx_awaitable *aw)
{
    return live(aw);
}

/* What asking a result of aw into out answers before looking at it: 0
 * when aw is DONE. */
static int result_check(const ppx_awaitable *aw, const void *out)
{
    if (!live(aw))
        return PPX_EBADOBJ;
    if (!out)
        return PPX_EINVAL;
    return aw->state == PPX_DONE ? 0 : ppx__not_done_rc(aw->state);
}

int ppx_awaitable_value(const ppx_awaitable *aw, ppx_value *out)
{
    int rc = result_check(aw, out);
    if (rc)
        return rc;
    if (aw->wrapped)
        return ppx_future_value(aw->fut, out);
    if (aw->ops->value)
        return aw->ops->value(aw, out);
    out->data = aw->value;
    out->len = aw->value_len;
    return 0;
}

const ppx_error *ppx_awaitable_error(const ppx_awaitable *aw)
{
    if (!live(aw) || (aw->state != PPX_FAILED && aw->state != PPX_CANCELLED))
        return NULL;
    return aw->err;
}

ppx_future *ppx_awaitable_future(const ppx_awaitable *aw)
{
    return live(aw) && aw->wrapped ? aw->fut : NULL;
}

int ppx_awaitable_cancel(ppx_awaitable *aw)
{
    if (!live(aw))
        return PPX_EBADOBJ;
    if (aw->state != PPX_PENDING)
        return PPX_EDONE;
    if (!aw->wrapped) {
        ppx_awaitable_ref(aw);
        aw->ops->cancel(aw);
        /* Still pending: its outcome was decided first, elsewhere. */
        int rc = aw->state == PPX_PENDING ? PPX_EDONE : 0;
        ppx_awaitable_unref(aw);
        return rc;
    }
    /* Resolves the future on this thread, which settles aw at once. */
    return ppx_future_cancel(aw->fut);
}

/* Doubles aw's callback array (moving it to the heap from cb_inline). 0,
 * or -1 without memory: the array is unchanged. */
static int grow_callbacks(ppx_awaitable *aw)
{
    uint32_t ncap = aw->capcbs * 2;
    bool inline_now = aw->cbs == aw->cb_inline;
    ppx__acb *to = realloc(inline_now ? NULL : aw->cbs, ncap * sizeof *to);
    if (!to)
        return -1;
    if (inline_now)
        memcpy(to, aw->cb_inline, sizeof aw->cb_inline);
    aw->cbs = to;
    aw->capcbs = ncap;
    return 0;
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
    if (aw->ncbs == aw->capcbs && grow_callbacks(aw))
        return PPX_ENOMEM;
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

int ppx_awaitable_remove_done_callback(ppx_awaitable *aw, ppx_awaitable_cb cb, void *arg)
{
    if (!live(aw))
        return PPX_EBADOBJ;
    if (!cb)
        return PPX_EINVAL;
    /* Settling detaches the list before running it: callbacks already
     * due are not found here. */
    size_t kept = 0;
    for (size_t i = 0; i < aw->ncbs; i++)
        if (aw->cbs[i].cb != cb || aw->cbs[i].arg != arg)
            aw->cbs[kept++] = aw->cbs[i];
    int removed = (int)(aw->ncbs - kept);
    aw->ncbs = kept;
    return removed;
}

/* Counting a child whose callback could not be added as "reported" would
 * let a gather or wait settle while it still runs (and hand as_completed
 * a pending one): so either every pending child gets its callback, or
 * none keeps one. Settled children are reported only after that, since
 * reporting has effects (a failed child fails a gather, which cancels
 * the others) that could not be taken back. */
int ppx__add_done_callbacks(ppx_awaitable *const *items, size_t n, ppx_awaitable_cb cb,
                            void *args, size_t stride)
{
    /* Bit i: items[i] had settled before its callback was due. Kept here,
     * not in the callers' args: on the stack for up to 512 items. */
    unsigned char small[64] = {0};
    unsigned char *late = n <= 8 * sizeof small ? small : calloc(n / 8 + 1, 1);
    if (!late)
        return PPX_ENOMEM;
#define LATE(i) ((late[(i) / 8] >> ((i) % 8)) & 1)
    char *a = args;
    int rc = 0;
    for (size_t i = 0; i < n; i++) {
        if (ppx_awaitable_done(items[i])) {
            late[i / 8] |= (unsigned char)(1u << (i % 8));
        } else if (ppx_awaitable_add_done_callback(items[i], cb, a + i * stride) != 0) {
            while (i-- > 0)
                if (!LATE(i))
                    ppx__awaitable_remove_done_callback(items[i], cb, a + i * stride);
            rc = PPX_ENOMEM;
            break;
        }
    }
    for (size_t i = 0; i < n && rc == 0; i++)
        if (LATE(i))
            cb(items[i], a + i * stride);
#undef LATE
    if (late != small)
        free(late);
    return rc;
}

void ppx__wrapped_tell_progress(ppx_awaitable *aw)
{
    uint64_t done, total;
    if (aw->wrapped && aw->state == PPX_PENDING && aw->progress &&
        ppx_future_progress(aw->fut, &done, &total) == 0)
        ppx__progress(aw, (size_t)done, (size_t)total);
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

int ppx_awaitable_buffer(const ppx_awaitable *aw, ppx_buffer **out)
{
    int rc = result_check(aw, out);
    if (rc)
        return rc;
    return aw->wrapped ? ppx_future_buffer(aw->fut, out) : PPX_ETYPE;
}
