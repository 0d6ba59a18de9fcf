/*
 * A min-heap of intrusive nodes by time: the element embeds a ppx__hnode
 * and is found again with PPX__CONTAINER_OF. Equal times come out in the
 * order they went in (a sequence number breaks ties), so two deadlines set
 * for the same instant fire first-come, first-served. One entry per
 * element: setting, moving and removing cost O(log n).
 *
 * Inserting cannot fail once ppx__heap_reserve made room: callers reserve
 * when an element is created, where failing is still clean.
 */
#ifndef PPX_UTIL_HEAP_H
#define PPX_UTIL_HEAP_H
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>

#define PPX__HEAP_NONE SIZE_MAX

typedef struct ppx__hnode {
    int64_t at;     /* its time while in the heap */
    uint64_t order; /* when it went in: earlier first among equal times */
    size_t idx;     /* PPX__HEAP_NONE when not in the heap */
} ppx__hnode;

typedef struct ppx__heap {
    ppx__hnode **v;
    size_t n, cap;
    uint64_t inserted;
} ppx__heap;

static inline void ppx__hnode_init(ppx__hnode *e)
{
    e->idx = PPX__HEAP_NONE;
}

/* Room for n entries. 0, or -1 without memory (the heap is unchanged). */
static inline int ppx__heap_reserve(ppx__heap *h, size_t n)
{
    if (n <= h->cap)
        return 0;
    size_t cap = h->cap ? h->cap : 64;
    while (cap < n)
        cap *= 2;
    ppx__hnode **v = realloc(h->v, cap * sizeof *v);
    if (!v)
        return -1;
    h->v = v;
    h->cap = cap;
    return 0;
}

static inline bool ppx__heap_before(const ppx__hnode *a, const ppx__hnode *b)
{
    return a->at < b->at || (a->at == b->at && a->order < b->order);
}

static inline void ppx__heap_put(ppx__heap *h, size_t i, ppx__hnode *e)
{
    h->v[i] = e;
    e->idx = i;
}

static inline void ppx__heap_up(ppx__heap *h, size_t i)
{
    ppx__hnode *e = h->v[i];
    while (i > 0) {
        size_t parent = (i - 1) / 2;
        if (!ppx__heap_before(e, h->v[parent]))
            break;
        ppx__heap_put(h, i, h->v[parent]);
        i = parent;
    }
    ppx__heap_put(h, i, e);
}

static inline void ppx__heap_down(ppx__heap *h, size_t i)
{
    ppx__hnode *e = h->v[i];
    for (;;) {
        size_t c = 2 * i + 1;
        if (c >= h->n)
            break;
        if (c + 1 < h->n && ppx__heap_before(h->v[c + 1], h->v[c]))
            c++;
        if (!ppx__heap_before(h->v[c], e))
            break;
        ppx__heap_put(h, i, h->v[c]);
        i = c;
    }
    ppx__heap_put(h, i, e);
}

/* Puts e in the heap at time at, or moves it there; at == 0 takes it
 * out. Inserting needs the room ppx__heap_reserve made. */
static inline void ppx__heap_set(ppx__heap *h, ppx__hnode *e, int64_t at)
{
    if (e->idx == PPX__HEAP_NONE) {
        if (!at)
            return;
        e->at = at;
        e->order = h->inserted++;
        ppx__heap_put(h, h->n++, e);
        ppx__heap_up(h, e->idx);
        return;
    }
    size_t i = e->idx;
    if (!at) {
        ppx__hnode *last = h->v[--h->n];
        e->idx = PPX__HEAP_NONE;
        if (i == h->n)
            return;
        ppx__heap_put(h, i, last);
        ppx__heap_up(h, i);
        ppx__heap_down(h, last->idx);
        return;
    }
    e->at = at;
    ppx__heap_up(h, i);
    ppx__heap_down(h, e->idx);
}

static inline ppx__hnode *ppx__heap_min(const ppx__heap *h)
{
    return h->n ? h->v[0] : NULL;
}

static inline void ppx__heap_free(ppx__heap *h)
{
    free(h->v);
    h->v = NULL;
    h->n = h->cap = 0;
}

#endif
