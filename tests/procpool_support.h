/* What the test_procpool_* suites share: the worker functions they call
 * by name, a pool constructor and the fixtures their tests check with. */
#ifndef PPX_TESTS_PROCPOOL_SUPPORT_H
#define PPX_TESTS_PROCPOOL_SUPPORT_H
#include "ppx.h"

#include <stdatomic.h>

/* Shared with workers: how many times "mark" ran. */
extern _Atomic int *marks;
/* Done callbacks count here too (count_cb), besides in their arg. */
extern int counted;

/* Maps marks and registers the worker functions: add, raise,
 * fail_silently, no_memory, wait_cancel, spin_forever, crash, echo, big,
 * mark, pid, scribble. Call once, first thing in main. */
void procpool_support_register(void);

/* "add": the sum of its two integer arguments. */
int fn_add(ppx_call *c, void *u);

/* A pool of that many workers, with extra's options (defaults if NULL),
 * sized down under valgrind. Fails the test if it cannot be made. */
ppx_pool *new_pool(int workers, const ppx_pool_options *extra);

/* Done callbacks that count their calls in *(int *)arg, or atomically in
 * *(_Atomic int *)arg. */
void count_cb(ppx_future *f, void *arg);
void count_cb_atomic(ppx_future *f, void *arg);

/* cmocka teardown: the test left no child behind. */
int teardown(void **state);

#endif
