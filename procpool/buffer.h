/*
 * Shared buffers (ppx_buffer): memory in the pool's call arena that the
 * caller writes once and workers read in place, passed by reference as a
 * msgpack ext (serialize/bufref.h). The parent alone allocates, frees and
 * vouches for them; workers map the arena read-only.
 */
#ifndef PPX_PROCPOOL_BUFFER_H
#define PPX_PROCPOOL_BUFFER_H

#include "ppx.h"
#include "future.h"
#include "serialize/bufref.h"

#include <stdatomic.h>
#include <stdint.h>

/* In the arena, right before a buffer's bytes, where only the parent
 * writes: what a reference found in a call's arguments is checked
 * against, and the buffer it names. */
typedef struct ppx__buffer_tag {
    uint64_t magic; /* PPX__BUFFER_MAGIC while the buffer lives, else 0 */
    ppx_buffer *owner;
} ppx__buffer_tag;
#define PPX__BUFFER_TAG 64u /* keeps the bytes 64-aligned */

struct ppx_buffer {
    ppx__bufref_head head; /* first: ppx_pack's 'M' reads it */
    _Atomic int refs;
    uint32_t gen;          /* the fork generation that made it */
    ppx_pool *pool;        /* a reference, until the last unref */
    unsigned char *mem;    /* the tag, then the bytes */
};

/* The buffers one call holds: its arguments' (taken at submission), kept
 * by the future once the call is done so ppx_future_buffer can hand the
 * result back. */
typedef struct ppx__buffers {
    ppx__keep keep; /* first: the task and the future hold it as this */
    size_t n;
    ppx_buffer *b[];
} ppx__buffers;

/* The shared buffers args (one msgpack value of len bytes) refers to,
 * each referenced, in *out (NULL when none: the usual case, and free
 * when the pool never made a buffer). 0, PPX_EINVAL (a reference to no
 * live buffer of p; ppx_last_error() says which), PPX_ENOMEM. */
int ppx__buffers_take(ppx_pool *p, const void *args, size_t len, ppx__keep **out);
/* Drops the references of a ppx__buffers and frees it (NULL: nothing). */
void ppx__buffers_release(ppx__keep *k);
/* The buffer of bs that the value (len bytes) refers to, or NULL. */
ppx_buffer *ppx__buffers_find(const ppx__buffers *bs, const void *value, size_t len);

#endif
