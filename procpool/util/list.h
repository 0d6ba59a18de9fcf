/*
 * An intrusive doubly linked list: the element embeds a ppx__link and is
 * found again with PPX__CONTAINER_OF. Nothing is allocated, so adding and
 * removing cannot fail, and an element knows its place (O(1) removal).
 * An element is in at most one list per link at a time.
 */
#ifndef PPX_UTIL_LIST_H
#define PPX_UTIL_LIST_H
#include <stddef.h>

#define PPX__CONTAINER_OF(ptr, type, member) ((type *)((char *)(ptr) - offsetof(type, member)))

typedef struct ppx__link {
    struct ppx__link *prev, *next;
} ppx__link;

typedef struct ppx__list {
    ppx__link *head, *tail;
    size_t n;
} ppx__list;

static inline void ppx__list_push_back(ppx__list *l, ppx__link *e)
{
    e->next = NULL;
    e->prev = l->tail;
    if (l->tail)
        l->tail->next = e;
    else
        l->head = e;
    l->tail = e;
    l->n++;
}

static inline void ppx__list_push_front(ppx__list *l, ppx__link *e)
{
    e->prev = NULL;
    e->next = l->head;
    if (l->head)
        l->head->prev = e;
    else
        l->tail = e;
    l->head = e;
    l->n++;
}

static inline void ppx__list_remove(ppx__list *l, ppx__link *e)
{
    if (e->prev)
        e->prev->next = e->next;
    else
        l->head = e->next;
    if (e->next)
        e->next->prev = e->prev;
    else
        l->tail = e->prev;
    e->prev = e->next = NULL;
    l->n--;
}

#endif
