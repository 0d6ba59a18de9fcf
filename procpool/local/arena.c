#include "arena.h"
#include "ppx.h"

#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#define ALIGN 64u

static uint64_t round_up(uint64_t n)
{
    return (n + ALIGN - 1) & ~(uint64_t)(ALIGN - 1);
}

int ppx__arena_init(ppx__arena *a, void *base, size_t size)
{
    memset(a, 0, sizeof *a);
    pthread_mutex_init(&a->mu, NULL);
    a->base = base;
    a->size = base ? size & ~(size_t)(ALIGN - 1) : 0;
    a->cap = 8;
    a->free = malloc(a->cap * sizeof *a->free);
    if (!a->free) {
        pthread_mutex_destroy(&a->mu);
        return PPX_ENOMEM;
    }
    if (a->size)
        a->free[a->nfree++] = (ppx__span){0, a->size};
    return 0;
}

void ppx__arena_destroy(ppx__arena *a)
{
    if (!a->free)
        return;
    free(a->free);
    a->free = NULL;
    pthread_mutex_destroy(&a->mu);
}

void *ppx__arena_alloc(ppx__arena *a, size_t len)
{
    if (!a->size || len == 0 || len > a->size)
        return NULL;
    uint64_t need = round_up(len);
    void *p = NULL;
    pthread_mutex_lock(&a->mu);
    /* A free may split nothing but must never need to grow the list, so
     * make room for one more range per live block before handing one out. */
    if (a->live + 2 > a->cap) {
        size_t cap = a->cap * 2;
        ppx__span *f = realloc(a->free, cap * sizeof *f);
        if (!f)
            goto out;
        a->free = f;
        a->cap = cap;
    }
    for (size_t i = 0; i < a->nfree; i++) {
        ppx__span *s = &a->free[i];
        if (s->len < need)
            continue;
        p = a->base + s->off;
        s->off += need;
        s->len -= need;
        if (s->len == 0) {
            memmove(s, s + 1, (a->nfree - i - 1) * sizeof *s);
            a->nfree--;
        }
        a->live++;
        a->used += need;
        break;
    }
out:
    pthread_mutex_unlock(&a->mu);
    return p;
}

void ppx__arena_free(ppx__arena *a, void *p, size_t len)
{
    if (!p)
        return;
    uint64_t off = (uint64_t)((unsigned char *)p - a->base), n = round_up(len);
    pthread_mutex_lock(&a->mu);
    size_t i = 0;
    while (i < a->nfree && a->free[i].off < off)
        i++;
    bool merge_prev = i > 0 && a->free[i - 1].off + a->free[i - 1].len == off;
    bool merge_next = i < a->nfree && off + n == a->free[i].off;
    if (merge_prev && merge_next) {
        a->free[i - 1].len += n + a->free[i].len;
        memmove(&a->free[i], &a->free[i + 1], (a->nfree - i - 1) * sizeof *a->free);
        a->nfree--;
    } else if (merge_prev) {
        a->free[i - 1].len += n;
    } else if (merge_next) {
        a->free[i].off = off;
        a->free[i].len += n;
    } else {
        memmove(&a->free[i + 1], &a->free[i], (a->nfree - i) * sizeof *a->free);
        a->free[i] = (ppx__span){off, n};
        a->nfree++;
    }
    a->live--;
    a->used -= n;
    pthread_mutex_unlock(&a->mu);
}
