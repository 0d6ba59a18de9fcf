/* Shared buffers (buffer.h): their lives, and the references to them
 * that calls carry. */
#include "buffer.h"

#include "core.h"
#include "errors.h"
#include "future.h"
#include "pool.h"
#include "serialize/mpread.h"

#include <stdlib.h>
#include <string.h>

static bool buffer_valid(const ppx_buffer *b)
{
    return b && b->head.magic == PPX__BUFFER_MAGIC;
}

int ppx_buffer_new(ppx_pool *p, size_t size, ppx_buffer **out)
{
    int rc = ppx__pool_check(p);
    if (rc)
        return rc;
    if (!out || size == 0 || size > SIZE_MAX - PPX__BUFFER_TAG)
        return PPX_EINVAL;
    if (!p->ops->shared_alloc || p->opt.arena_bytes == PPX_ARENA_NONE) {
        ppx__set_last_error("this pool has no shared memory for buffers (%s)",
                            p->ops->shared_alloc ? "arena_bytes is PPX_ARENA_NONE"
                                                 : "its workers are on MPI nodes");
        return PPX_ENOTSUP;
    }
    ppx_buffer *b = malloc(sizeof *b);
    if (!b)
        return PPX_ENOMEM;
    uint64_t off;
    b->mem = p->ops->shared_alloc(p, PPX__BUFFER_TAG + size, &off);
    if (!b->mem) {
        free(b);
        ppx__set_last_error("no room for %zu bytes in the pool's call arena (arena_bytes %zu, "
                            "shared by buffers and big calls)",
                            size, p->opt.arena_bytes);
        return PPX_ENOMEM;
    }
    b->head = (ppx__bufref_head){PPX__BUFFER_MAGIC, 0, off + PPX__BUFFER_TAG, size};
    atomic_init(&b->refs, 1);
    b->gen = p->gen;
    b->pool = p;
    ppx__pool_ref(p);
    atomic_store(&p->buffers_used, true);
    ppx__buffer_tag tag = {PPX__BUFFER_MAGIC, b};
    memcpy(b->mem, &tag, sizeof tag);
    *out = b;
    return 0;
}

void *ppx_buffer_data(ppx_buffer *b)
{
    /* In a fork the arena is still the creator's, shared: hands off. */
    if (!buffer_valid(b) || b->gen != ppx__fork_generation())
        return NULL;
    return b->mem + PPX__BUFFER_TAG;
}

size_t ppx_buffer_size(const ppx_buffer *b)
{
    return buffer_valid(b) ? (size_t)b->head.len : 0;
}

void ppx_buffer_ref(ppx_buffer *b)
{
    if (buffer_valid(b))
        atomic_fetch_add_explicit(&b->refs, 1, memory_order_relaxed);
}

void ppx_buffer_unref(ppx_buffer *b)
{
    if (!buffer_valid(b) || atomic_fetch_sub(&b->refs, 1) != 1)
        return;
    b->head.magic = 0;
    if (b->gen == ppx__fork_generation()) {
        ppx_pool *p = b->pool;
        memset(b->mem, 0, sizeof(ppx__buffer_tag)); /* no reference finds it now */
        p->ops->shared_free(p, b->mem, PPX__BUFFER_TAG + (size_t)b->head.len);
        ppx__pool_unref(p);
    } /* else a fork's copy: its pool copy may be gone; only our memory goes */
    free(b);
}

/* The live buffer of p at off..off + len, or NULL. */
static ppx_buffer *buffer_at(ppx_pool *p, uint64_t off, uint64_t len)
{
    if (off < PPX__BUFFER_TAG || len == 0 || !p->ops->shared_at)
        return NULL;
    unsigned char *mem = p->ops->shared_at(p, off - PPX__BUFFER_TAG, PPX__BUFFER_TAG + len);
    if (!mem)
        return NULL;
    ppx__buffer_tag tag;
    memcpy(&tag, mem, sizeof tag);
    if (tag.magic != PPX__BUFFER_MAGIC || tag.owner->mem != mem || tag.owner->head.len != len)
        return NULL;
    return tag.owner;
}

/* Appends the buffer a reference (off, len) names to *bs. */
static int take_one(ppx_pool *p, uint64_t off, uint64_t len, ppx__buffers **bs, size_t *cap)
{
    ppx_buffer *b = buffer_at(p, off, len);
    if (!b) {
        ppx__set_last_error("the arguments refer to a shared buffer (offset %llu, %llu bytes) "
                            "that is not a live ppx_buffer of this pool",
                            (unsigned long long)off, (unsigned long long)len);
        return PPX_EINVAL;
    }
    if (!*bs || (*bs)->n == *cap) {
        size_t ncap = *cap ? 2 * *cap : 2;
        ppx__buffers *g = realloc(*bs, sizeof **bs + ncap * sizeof(ppx_buffer *));
        if (!g)
            return PPX_ENOMEM;
        if (!*bs) {
            g->keep.release = ppx__buffers_release;
            g->n = 0;
        }
        *bs = g;
        *cap = ncap;
    }
    ppx_buffer_ref(b);
    (*bs)->b[(*bs)->n++] = b;
    return 0;
}

/* Walks one msgpack object, taking every buffer reference in it. */
static int walk(ppx_pool *p, ppx__mp *c, int depth, ppx__buffers **bs, size_t *cap)
{
    if (depth > 64)
        return 0; /* the pool's decoder refuses it; not ours to judge */
    ppx_type t = ppx__mp_peek(c);
    uint32_t n;
    int rc = 0;
    if (t == PPX_TYPE_ARRAY) {
        if ((rc = ppx__mp_array(c, &n)))
            return rc;
        for (uint32_t i = 0; i < n && rc == 0; i++)
            rc = walk(p, c, depth + 1, bs, cap);
        return rc;
    }
    if (t == PPX_TYPE_MAP) {
        if ((rc = ppx__mp_map(c, &n)))
            return rc;
        for (uint32_t i = 0; i < 2 * n && rc == 0; i++)
            rc = walk(p, c, depth + 1, bs, cap);
        return rc;
    }
    const uint8_t *at = c->p;
    if ((rc = ppx__mp_skip(c)))
        return rc;
    uint64_t off, len;
    if (t == PPX_TYPE_EXT && ppx__bufref_decode(at, (size_t)(c->p - at), &off, &len))
        rc = take_one(p, off, len, bs, cap);
    return rc;
}

int ppx__buffers_take(ppx_pool *p, const void *args, size_t len, ppx__keep **out)
{
    *out = NULL;
    if (!atomic_load_explicit(&p->buffers_used, memory_order_relaxed))
        return 0;
    ppx__mp c = ppx__mp_of(args, len);
    size_t cap = 0;
    ppx__buffers *bs = NULL;
    int rc = walk(p, &c, 0, &bs, &cap);
    if (rc == PPX_EINVAL || rc == PPX_ENOMEM) {
        ppx__buffers_release(bs ? &bs->keep : NULL);
        return rc;
    }
    *out = bs ? &bs->keep : NULL;
    return 0; /* malformed msgpack: the submission's own checks say so */
}

void ppx__buffers_release(ppx__keep *k)
{
    ppx__buffers *bs = (ppx__buffers *)k;
    if (!bs)
        return;
    for (size_t i = 0; i < bs->n; i++)
        ppx_buffer_unref(bs->b[i]);
    free(bs);
}

ppx_buffer *ppx__buffers_find(const ppx__buffers *bs, const void *value, size_t len)
{
    uint64_t off, blen;
    if (!bs || !ppx__bufref_decode(value, len, &off, &blen))
        return NULL;
    for (size_t i = 0; i < bs->n; i++)
        if (bs->b[i]->head.off == off && bs->b[i]->head.len == blen)
            return bs->b[i];
    return NULL;
}

int ppx_future_buffer(ppx_future *f, ppx_buffer **out)
{
    if (!f || f->magic != PPX__FUTURE_MAGIC)
        return PPX_EBADOBJ;
    if (!out)
        return PPX_EINVAL;
    int st = atomic_load_explicit(&f->state, memory_order_acquire);
    if (st != PPX_DONE)
        return ppx__not_done_rc(st);
    /* A DONE call's buffers stay in its block (core.h, ppx__task_bufs). */
    if (!(atomic_load_explicit(&f->halves, memory_order_relaxed) & PPX__BLOCK_BUFS))
        return PPX_ETYPE;
    const ppx__buffers *bs = (const ppx__buffers *)*ppx__task_bufs(ppx__future_task_mem(f));
    const void *value = f->value_len <= PPX__VALUE_INLINE ? f->out.bytes : f->out.big.data;
    ppx_buffer *b = ppx__buffers_find(bs, value, f->value_len);
    if (!b)
        return PPX_ETYPE;
    ppx_buffer_ref(b);
    *out = b;
    return 0;
}
