/*
 * Submission: checks a call, packs its envelope once into the memory it
 * will be read from (the task itself, the call arena or a big buffer) and
 * hands it to the backend, which places it on a worker before the call
 * returns when one has room, so submission is eager. Any thread may
 * submit.
 */
#include "buffer.h"
#include "core.h"
#include "registry.h"
#include "sized.h"
#include "serialize/envelope.h"
#include "serialize/mpread.h"
#include "serialize/pack.h"
#include "wire/frame.h"

#include <assert.h>
#include <stdlib.h>
#include <string.h>

/* ---- submission -------------------------------------------------------- */

int ppx_pool_submit(ppx_pool *p, const char *fn, const void *args, size_t args_len,
                    ppx_future **out)
{
    return ppx_pool_submit_ex(p, fn, args, args_len, NULL, out);
}

/* How a submission is made beyond its call: the room in front of the
 * future and what its submitter does to it first (ppx__submit_prep). */
typedef struct submit_how {
    size_t prefix;
    ppx__submit_prep prep;
    void *ctx;
} submit_how;

/* Inlined into each entry point, so that ppx_pool_submit's constant how
 * folds away (out of line, passing it cost the blocking path ~9
 * instructions a call in bench/calls.c). */
static inline __attribute__((always_inline)) int
submit(ppx_pool *p, int kind, const char *fn, const void *args, size_t args_len,
       const ppx_call_options *opts, const submit_how *how, ppx_future **out);

static const submit_how plain = {0, NULL, NULL};

int ppx_pool_submit_ex(ppx_pool *p, const char *fn, const void *args, size_t args_len,
                       const ppx_call_options *opts, ppx_future **out)
{
    return submit(p, PPX__ENV_CALL, fn, args, args_len, opts, &plain, out);
}

int ppx__pool_submit_prefixed(ppx_pool *p, const char *fn, const void *args, size_t args_len,
                              const ppx_call_options *opts, size_t prefix,
                              ppx__submit_prep prep, void *ctx, ppx_future **out)
{
    submit_how how = {prefix, prep, ctx};
    return submit(p, PPX__ENV_CALL, fn, args, args_len, opts, &how, out);
}

/* Every element of a map's items must be an argument array. */
static bool all_arrays(const void *items, size_t len)
{
    ppx__mp c = ppx__mp_of(items, len);
    uint32_t n;
    if (ppx__mp_array(&c, &n))
        return false;
    for (uint32_t i = 0; i < n; i++)
        if (ppx__mp_peek(&c) != PPX_TYPE_ARRAY || ppx__mp_skip(&c))
            return false;
    return ppx__mp_left(&c) == 0;
}

int ppx_pool_map(ppx_pool *p, const char *fn, const void *items, size_t len,
                 const ppx_call_options *opts, ppx_future **out)
{
    if (ppx__pool_check(p) == 0 && items && !all_arrays(items, len))
        return PPX_EMALFORMED;
    return submit(p, PPX__ENV_MAP, fn, items, len, opts, &plain, out);
}

/* What can be refused before any work: 0, or the code to return. */
static int check_call(ppx_pool *p, const char *fn, size_t *fn_len, const void **args,
                      size_t *args_len, ppx_future **out)
{
    int rc = ppx__pool_check(p);
    if (rc)
        return rc;
    if (!fn || !out)
        return PPX_EINVAL;
    *fn_len = strnlen(fn, PPX__NAME_MAX + 1);
    if (*fn_len == 0 || *fn_len > PPX__NAME_MAX)
        return PPX_EINVAL;
    rc = ppx__mp_call_args(args, args_len);
    if (rc)
        return rc;
    /* The limit is on the caller's bytes: the envelope around them is
     * room every frame buffer adds (PPX__FRAME_SLACK). */
    if (*args_len > p->opt.max_payload)
        return PPX_ETOOBIG;
    if (p->closed) /* checked again under the lock; this avoids the work */
        return PPX_ECLOSED;
    return 0;
}

/* A call of a name nobody registered fails at once: every worker shares
 * this registry, so there is no need to ask one. */
static void fail_unknown(ppx_pool *p, ppx_future *f, uint64_t id)
{
    ppx__notify n = {0};
    ppx__pool_lock(p);
    p->stats.submitted++;
    p->stats.failed++;
    if (p->trace) {
        ppx__trace_mark m = {"failed", id, f->function, -1, -1, "NameError", ppx__now_ns()};
        ppx__trace_mark_add(p->trace, &m);
    }
    ppx__future_failf(f, "NameError", 0, &n, "no function named '%s' is registered", f->function);
    ppx__pool_unlock(p);
    ppx__notify_run(&n);
}

/* A call's block: the future (120 bytes), the task and a small frame;
 * with these a no-argument call's is 243 bytes, one 256-byte malloc
 * chunk (issue 15's budget per pending call). */
static_assert(sizeof(void *) != 8 || sizeof(ppx__task) <= 96, "ppx__task stays at 96 bytes");

/* Whether a frame of cap bytes lives in the call's block. */
static bool task_frame_inline(size_t cap)
{
    return cap <= PPX__INLINE_FRAME;
}

/* f's task with its call frame written (cap bytes, exactly its length:
 * ppx__env_call_len), or NULL without memory (the caller releases the
 * task's half of the block). A small frame lives in the block behind the
 * task; a big one goes where the backend reads it in place (the call
 * arena), or failing that into a pre-faulted ppx__bigbuf. */
static ppx__task *make_task(ppx_pool *p, ppx_future *f, int kind, const char *fn, size_t fn_len,
                            const void *args, size_t args_len, size_t cap, bool *in_backend)
{
    bool small = task_frame_inline(cap);
    ppx__task *t = ppx__future_task_mem(f);
    memset(t, 0, sizeof *t); /* the frame is written whole below */
    unsigned char *frame = t->inline_frame;
    size_t room = cap;
    if (!small) {
        *in_backend = (frame = p->ops->frame_alloc(p, cap)) != NULL;
        if (!frame && !(frame = ppx__bigbuf_alloc(cap, &room)))
            return NULL;
        memcpy(t->inline_frame, &room, sizeof room); /* where an inline frame would be */
    }
    t->frame_len = ppx__env_put_call(frame, kind, f->id, fn, fn_len, args, args_len);
    t->frame = frame;
    t->kind = (uint8_t)kind;
    return t;
}

/* A future and task that never reached the backend. */
static void discard(ppx_pool *p, ppx__task *t, ppx_future *f)
{
    if (t) {
        ppx__task_drop_bufs(t);
        if (t->frame != t->inline_frame)
            ppx__frame_free(p, t->frame, ppx__task_frame_cap(t));
        ppx__future_release(f, PPX__HALF_TASK);
    }
    atomic_store(&f->refs, 1); /* the pool's reference was never used */
    ppx_future_unref(f);
}

static inline __attribute__((always_inline)) int
submit(ppx_pool *p, int kind, const char *fn, const void *args, size_t args_len,
       const ppx_call_options *opts, const submit_how *how, ppx_future **out)
{
    size_t fn_len;
    int rc = check_call(p, fn, &fn_len, &args, &args_len, out);
    ppx_call_options co = {.timeout_ms = 0};
    if (rc == 0 && opts)
        rc = ppx__sized_in(&co, sizeof co, opts, PPX__CALL_OPTIONS_MIN, "ppx_call_options");
    if (rc)
        return rc;
    uint64_t id = atomic_fetch_add_explicit(&p->next_id, 1, memory_order_relaxed);
    const ppx__entry *entry = ppx__registry_find(fn, fn_len);
    /* Only pools that ever made a buffer look for references. */
    ppx__keep *bufs = NULL;
    if (entry && atomic_load_explicit(&p->buffers_used, memory_order_relaxed) &&
        (rc = ppx__buffers_take(p, args, args_len, &bufs)))
        return rc;
    /* One block for the future, its task and a small frame (and, with
     * buffers, the word that holds them: ppx__task_bufs). */
    size_t cap = ppx__env_call_len(fn_len, args_len);
    size_t task_bytes = sizeof(ppx__task) + (task_frame_inline(cap) ? cap : sizeof(size_t));
    if (bufs)
        task_bytes = sizeof(ppx__task) + ppx__task_frame_room(cap, task_frame_inline(cap)) +
                     sizeof bufs;
    ppx_future *f = ppx__future_new(p, id, fn, fn_len, entry ? entry->name : NULL,
                                    entry ? task_bytes : 0, how->prefix);
    if (!f) {
        ppx__buffers_release(bufs);
        return PPX_ENOMEM;
    }
    if (!entry) {
        fail_unknown(p, f, id);
        *out = f;
        return 0;
    }
    bool in_backend = false;
    ppx__task *t = make_task(p, f, kind, fn, fn_len, args, args_len, cap, &in_backend);
    if (!t) {
        ppx__buffers_release(bufs);
        ppx__future_release(f, PPX__HALF_TASK);
        discard(p, NULL, f);
        return PPX_ENOMEM;
    }
    if (bufs) {
        t->has_bufs = true;
        *ppx__task_bufs(t) = bufs;
        atomic_fetch_or_explicit(&f->halves, PPX__BLOCK_BUFS, memory_order_relaxed);
    }
    if (how->prep && (rc = how->prep(f, how->ctx))) {
        discard(p, t, f);
        return rc;
    }
    t->pending = true;
    t->timeout_ms = co.timeout_ms ? co.timeout_ms : p->opt.task_timeout_ms;
    /* The deadline counts from here; the trace's submission too. */
    if (t->timeout_ms > 0 || p->trace)
        t->start_ns = ppx__now_ns();
    f->task = t;

    ppx__notify n = {0};
    ppx__pool_lock(p);
    p->ntasks++;
    p->unresolved++;
    int64_t traced_at = t->start_ns;
    /* t may be gone once the backend has it (resolved and freed at once). */
    rc = p->closed ? PPX_ECLOSED : p->ops->submit(p, t, &n);
    if (rc) {
        p->ntasks--;
        p->unresolved--;
        ppx__pool_unlock(p);
        discard(p, t, f);
        return rc;
    }
    p->stats.submitted++;
    p->stats.arena_calls += in_backend;
    if (p->trace)
        ppx__trace_submit(p->trace, id, entry->name, traced_at, ppx__now_ns());
    ppx__pool_unlock(p);
    ppx__notify_run(&n);
    *out = f;
    return 0;
}

typedef struct submit_args {
    ppx_pool *p;
    const char *fn;
    ppx_future **out;
} submit_args;

static int submit_packed(void *ctx, const void *args, size_t len)
{
    submit_args *a = ctx;
    return ppx_pool_submit(a->p, a->fn, args, len, a->out);
}

int ppx_pool_submitf(ppx_pool *p, ppx_future **out, const char *fn, const char *fmt, ...)
{
    submit_args a = {p, fn, out};
    va_list ap;
    va_start(ap, fmt);
    int rc = ppx__with_packed(submit_packed, &a, fmt, ap);
    va_end(ap);
    return rc;
}
