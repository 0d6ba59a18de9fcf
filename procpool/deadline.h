/*
 * A min-heap of tasks by their next deadline: the call's timeout while its
 * future is pending, or the moment to kill the worker of a cancelled call
 * that is still running. One entry per task, so firing, re-arming and
 * removing cost O(log n) however many calls wait.
 */
#ifndef PPX_PROCPOOL_DEADLINE_H
#define PPX_PROCPOOL_DEADLINE_H
#include <stddef.h>
#include <stdint.h>

struct ppx__task;

typedef struct ppx__heap {
    struct ppx__task **v;
    size_t n, cap;
} ppx__heap;

/* Makes room for n entries so later inserts cannot fail. 0 or PPX_ENOMEM. */
int ppx__heap_reserve(ppx__heap *h, size_t n);
/* Inserts t at time at, or moves it there (at > 0); at == 0 removes it. */
void ppx__heap_set(ppx__heap *h, struct ppx__task *t, int64_t at);
struct ppx__task *ppx__heap_min(const ppx__heap *h);
void ppx__heap_free(ppx__heap *h);

#endif
