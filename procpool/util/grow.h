/*
 * An array that starts in storage inside its owner (a few inline
 * elements, the common case) and moves to the heap when it outgrows it:
 * the callback lists of futures and awaitables; and plain arrays that
 * double.
 */
#ifndef PPX_UTIL_GROW_H
#define PPX_UTIL_GROW_H
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

/* Doubles *cap, elements of elem bytes at *items, which may still be
 * inline_buf (then copied out to the heap). 0, or -1 without memory: the
 * array is unchanged. */
static inline int ppx__grow_inline(void **items, size_t *cap, const void *inline_buf,
                                   size_t elem)
{
    size_t ncap = *cap * 2;
    bool inline_now = *items == inline_buf;
    void *n = realloc(inline_now ? NULL : *items, ncap * elem);
    if (!n)
        return -1;
    if (inline_now)
        memcpy(n, inline_buf, *cap * elem);
    *items = n;
    *cap = ncap;
    return 0;
}

/* Doubles *cap (first when 0), elements of elem bytes at *items on the
 * heap. 0, or -1 without memory: the array is unchanged. */
static inline int ppx__grow(void **items, size_t *cap, size_t first, size_t elem)
{
    size_t ncap = *cap ? 2 * *cap : first;
    void *n = realloc(*items, ncap * elem);
    if (!n)
        return -1;
    *items = n;
    *cap = ncap;
    return 0;
}

#endif
