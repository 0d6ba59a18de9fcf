/*
 * The call arena: a range of the pool's shared mapping where the parent
 * writes big call frames once, so a worker reads its arguments in place
 * instead of through ring chunks and a reassembly buffer.
 *
 * Only the parent allocates and frees; the bookkeeping lives in its
 * private memory, so a worker cannot corrupt it (workers map the arena
 * read-only anyway). Allocation is first fit from the lowest offset: the
 * same low pages are reused call after call and stay faulted in, which is
 * the point (a fresh 64 MiB costs ~40 ms of page faults on our VMs; a warm
 * copy ~10 ms). When the arena is full, callers fall back to chunked
 * frames, so it never blocks and never fails a call.
 */
#ifndef PPX_PROCPOOL_ARENA_H
#define PPX_PROCPOOL_ARENA_H
#include <pthread.h>
#include <stddef.h>
#include <stdint.h>

typedef struct ppx__span {
    uint64_t off, len;
} ppx__span;

typedef struct ppx__arena {
    pthread_mutex_t mu; /* taken alone, or inside the pool's lock */
    unsigned char *base;
    size_t size;
    ppx__span *free;    /* free ranges, sorted by offset, coalesced */
    size_t nfree, cap;  /* cap > live + 1 always: freeing never grows it */
    size_t live;        /* blocks handed out */
    size_t used;        /* bytes handed out */
} ppx__arena;

/* An arena over base[0..size); size 0 makes an arena that never allocates.
 * 0 or PPX_ENOMEM. */
int ppx__arena_init(ppx__arena *a, void *base, size_t size);
void ppx__arena_destroy(ppx__arena *a);
/* A block of at least len bytes (64-aligned), or NULL when none is free. */
void *ppx__arena_alloc(ppx__arena *a, size_t len);
/* Gives back a block from ppx__arena_alloc(a, len). */
void ppx__arena_free(ppx__arena *a, void *p, size_t len);
/* Whether p lies in the arena. */
static inline int ppx__arena_owns(const ppx__arena *a, const void *p)
{
    return a->size && (const unsigned char *)p >= a->base &&
           (const unsigned char *)p < a->base + a->size;
}

#endif
