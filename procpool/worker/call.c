/* Worker-side API: reading arguments, returning values, raising errors. */
#include "call.h"
#include "serialize/bufref.h"
#include "serialize/mpread.h"
#include "serialize/pack.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int ppx__call_init(ppx_call *call, uint64_t task_id, const char *fn, size_t fn_len,
                   ppx_value args, const ppx__slot *slot, msgpack_sbuffer *ret)
{
    memset(call, 0, offsetof(ppx_call, type));
    call->type[0] = call->where[0] = '\0';
    call->message = NULL;
    call->task_id = task_id;
    if (fn_len >= sizeof call->function)
        return PPX_EMALFORMED;
    memcpy(call->function, fn, fn_len);
    call->function[fn_len] = '\0';
    ppx__mp c = ppx__mp_of(args.data, args.len);
    if (ppx__mp_array(&c, &call->argc))
        return PPX_EMALFORMED;
    call->args = args;
    call->next_p = c.p;
    call->slot = slot;
    if (slot) /* even: nothing of ours is half written */
        call->progress_seq =
            atomic_load_explicit(&slot->progress_seq, memory_order_relaxed) & ~1u;
    call->ret = call->heap = ret;
    msgpack_sbuffer_clear(ret);
    return 0;
}

void ppx__call_lend(ppx_call *call, void *buf, size_t cap)
{
    call->fixed.data = buf;
    call->fixed.alloc = cap;
    call->fixed.size = 0;
    call->ret = &call->fixed;
}

void ppx__call_unlend(ppx_call *call)
{
    if (call->ret != &call->fixed)
        return;
    msgpack_sbuffer_clear(call->heap);
    if (call->fixed.size && msgpack_sbuffer_write(call->heap, call->fixed.data, call->fixed.size))
        call->has_ret = false; /* no memory: the copy's result is dropped anyway */
    call->ret = call->heap;
}

/* The packer's sink: the lent memory while the value fits, the heap
 * buffer from then on (the lent memory must never be realloc'd). */
static int ret_write(void *data, const char *buf, size_t len)
{
    ppx_call *call = data;
    if (call->ret == &call->fixed && call->fixed.alloc - call->fixed.size < len) {
        msgpack_sbuffer_clear(call->heap);
        /* Nothing written yet (a first value bigger than the outbox): no
         * copy, which msgpack would make as a memcpy into NULL. */
        if (call->fixed.size &&
            msgpack_sbuffer_write(call->heap, call->fixed.data, call->fixed.size))
            return -1;
        call->ret = call->heap;
    }
    return msgpack_sbuffer_write(call->ret, buf, len);
}

void ppx__call_destroy(ppx_call *call)
{
    free(call->message);
    call->message = NULL;
}

size_t ppx_call_argc(const ppx_call *call)
{
    return call ? call->argc : 0;
}

int ppx_call_arg(const ppx_call *call, size_t i, ppx_value *out)
{
    if (!call || !out)
        return PPX_EINVAL;
    if (i >= call->argc)
        return PPX_EINDEX;
    /* The args were validated when the frame was decoded; skipping cannot
     * fail, but check anyway rather than trust that. */
    ppx_call *mut = (ppx_call *)call;
    if (i < mut->next_i) {
        ppx__mp c = ppx__mp_of(call->args.data, call->args.len);
        uint32_t n;
        ppx__mp_array(&c, &n);
        mut->next_i = 0;
        mut->next_p = c.p;
    }
    const uint8_t *end = (const uint8_t *)call->args.data + call->args.len;
    ppx__mp c = {mut->next_p, end};
    for (; mut->next_i < i; mut->next_i++) {
        if (ppx__mp_skip(&c))
            return PPX_EMALFORMED;
        mut->next_p = c.p;
    }
    const uint8_t *start = c.p;
    if (ppx__mp_skip(&c))
        return PPX_EMALFORMED;
    out->data = start;
    out->len = (size_t)(c.p - start);
    return 0;
}

#define ARG_GETTER(name, ctype)                                             \
    int ppx_call_arg_##name(const ppx_call *call, size_t i, ctype *out)     \
    {                                                                       \
        ppx_value v;                                                        \
        int rc = ppx_call_arg(call, i, &v);                                 \
        return rc ? rc : ppx_value_##name(v, out);                          \
    }
ARG_GETTER(int, int64_t)
ARG_GETTER(uint, uint64_t)
ARG_GETTER(double, double)
#undef ARG_GETTER

int ppx_call_arg_str(const ppx_call *call, size_t i, const char **s, size_t *len)
{
    ppx_value v;
    int rc = ppx_call_arg(call, i, &v);
    return rc ? rc : ppx_value_str(v, s, len);
}

int ppx_call_arg_bin(const ppx_call *call, size_t i, const void **p, size_t *len)
{
    ppx_value v;
    int rc = ppx_call_arg(call, i, &v);
    return rc ? rc : ppx_value_bin(v, p, len);
}

int ppx_call_arg_buffer(const ppx_call *call, size_t i, const void **data, size_t *len)
{
    ppx_value v;
    int rc = ppx_call_arg(call, i, &v);
    if (rc)
        return rc;
    if (!data || !len)
        return PPX_EINVAL;
    uint64_t off, blen;
    if (!ppx__bufref_decode(v.data, v.len, &off, &blen))
        return PPX_ETYPE;
    if (!call->arena)
        return PPX_ENOTSUP; /* the thread executor: no arena to look in */
    /* The parent vouched for it at submission; check anyway, as every
     * read of what came through shared memory is. */
    if (off > call->arena_bytes || blen > call->arena_bytes - off)
        return PPX_ERANGE;
    *data = call->arena + off;
    *len = (size_t)blen;
    return 0;
}

int ppx_return_buffer(ppx_call *call, size_t i)
{
    ppx_value v;
    int rc = ppx_call_arg(call, i, &v);
    if (rc)
        return rc;
    uint64_t off, blen;
    if (!ppx__bufref_decode(v.data, v.len, &off, &blen))
        return PPX_ETYPE;
    return ppx_return_raw(call, v.data, v.len);
}

const char *ppx_call_function(const ppx_call *call)
{
    return call ? call->function : "";
}

uint64_t ppx_call_task_id(const ppx_call *call)
{
    return call ? call->task_id : 0;
}

bool ppx_call_cancelled(const ppx_call *call)
{
    return call && call->slot &&
           atomic_load_explicit(&((ppx__slot *)call->slot)->cancel, memory_order_relaxed);
}

int ppx_call_progress(ppx_call *call, uint64_t done, uint64_t total)
{
    if (!call)
        return PPX_EINVAL;
    if (!call->slot || call->no_progress)
        return 0;
    /* A seqlock with one writer (shared.h): odd while the pair is
     * rewritten, so the reader never takes half of an update. */
    ppx__slot *s = (ppx__slot *)call->slot;
    uint32_t seq = call->progress_seq;
    atomic_store_explicit(&s->progress_seq, seq + 1, memory_order_relaxed);
    atomic_thread_fence(memory_order_release);
    atomic_store_explicit(&s->progress_done, done, memory_order_relaxed);
    atomic_store_explicit(&s->progress_total, total, memory_order_relaxed);
    atomic_store_explicit(&s->progress_seq, seq + 2, memory_order_release);
    call->progress_seq = seq + 2;
    if (call->progress_wake)
        call->progress_wake(call->progress_ctx);
    return 0;
}

/* Starts a fresh result: the last ppx_return_* wins. */
static msgpack_packer start(ppx_call *call)
{
    msgpack_packer pk;
    msgpack_sbuffer_clear(call->ret);
    msgpack_packer_init(&pk, call, ret_write);
    call->has_ret = true;
    return pk;
}

static int done(ppx_call *call, int rc)
{
    if (rc) {
        call->has_ret = false;
        return PPX_ENOMEM;
    }
    return 0;
}

int ppx_return_nil(ppx_call *call)
{
    if (!call)
        return PPX_EINVAL;
    msgpack_packer pk = start(call);
    return done(call, msgpack_pack_nil(&pk));
}

int ppx_return_bool(ppx_call *call, bool b)
{
    if (!call)
        return PPX_EINVAL;
    msgpack_packer pk = start(call);
    return done(call, b ? msgpack_pack_true(&pk) : msgpack_pack_false(&pk));
}

int ppx_return_int(ppx_call *call, int64_t i)
{
    if (!call)
        return PPX_EINVAL;
    msgpack_packer pk = start(call);
    return done(call, msgpack_pack_int64(&pk, i));
}

int ppx_return_uint(ppx_call *call, uint64_t u)
{
    if (!call)
        return PPX_EINVAL;
    msgpack_packer pk = start(call);
    return done(call, msgpack_pack_uint64(&pk, u));
}

int ppx_return_double(ppx_call *call, double d)
{
    if (!call)
        return PPX_EINVAL;
    msgpack_packer pk = start(call);
    return done(call, msgpack_pack_double(&pk, d));
}

int ppx_return_str(ppx_call *call, const char *s, size_t len)
{
    if (!call || (!s && len))
        return PPX_EINVAL;
    if (len > PPX__MP_LEN_MAX)
        return PPX_ETOOBIG; /* see pack.h */
    msgpack_packer pk = start(call);
    return done(call, msgpack_pack_str_with_body(&pk, s ? s : "", len));
}

int ppx_return_bin(ppx_call *call, const void *p, size_t len)
{
    if (!call || (!p && len))
        return PPX_EINVAL;
    if (len > PPX__MP_LEN_MAX)
        return PPX_ETOOBIG; /* see pack.h */
    msgpack_packer pk = start(call);
    return done(call, msgpack_pack_bin_with_body(&pk, p ? p : "", len));
}

int ppx_return_raw(ppx_call *call, const void *msgpack, size_t len)
{
    if (!call || !msgpack)
        return PPX_EINVAL;
    int rc = ppx__mp_check_one(msgpack, len);
    if (rc)
        return rc;
    start(call);
    return done(call, ret_write(call, msgpack, len));
}

int ppx_returnf(ppx_call *call, const char *fmt, ...)
{
    if (!call || !fmt)
        return PPX_EINVAL;
    size_t letters = 0;
    for (const char *p = fmt; *p; p++)
        letters += *p != ' ';
    msgpack_packer pk = start(call);
    va_list ap;
    va_start(ap, fmt);
    int rc = ppx__vpack(&pk, letters != 1, fmt, ap);
    va_end(ap);
    if (rc)
        call->has_ret = false;
    return rc;
}

int ppx_raise_at(ppx_call *call, const char *where, const char *type,
                 const char *fmt, ...)
{
    if (!call)
        return PPX_EINVAL;
    snprintf(call->type, sizeof call->type, "%s", type && *type ? type : "Error");
    snprintf(call->where, sizeof call->where, "%s", where ? where : "");
    free(call->message);
    call->message = NULL;
    if (fmt) {
        va_list ap, ap2;
        va_start(ap, fmt);
        va_copy(ap2, ap);
        int n = vsnprintf(NULL, 0, fmt, ap);
        va_end(ap);
        if (n >= 0 && (call->message = malloc((size_t)n + 1)))
            vsnprintf(call->message, (size_t)n + 1, fmt, ap2);
        va_end(ap2);
    }
    call->raised = true;
    return PPX_ETASK;
}
