/* What the test_lifecycle_* suites share: the worker functions they call
 * by name, the counters shared with workers, and pool helpers. */
#ifndef PPX_TESTS_LIFECYCLE_SUPPORT_H
#define PPX_TESTS_LIFECYCLE_SUPPORT_H
#include "ppx.h"

#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

/* Shared with workers. */
typedef struct shared_counters {
    _Atomic int marks;
    _Atomic int inits;
    _Atomic int init_fail_after; /* initializer fails once inits exceeds it */
} shared_counters;
extern shared_counters *sc;
extern int worker_init_value; /* set in each worker by the initializer */

/* Maps sc and registers add, add_slowly, crash, exit, spin_forever,
 * wait_cancel, mark, pid, init_value, grow, sockets_open and open_fds.
 * Call once, first thing in main. */
void lifecycle_support_register(void);

/* A pool with options o, sized down under valgrind. */
ppx_pool *new_pool(ppx_pool_options o);
/* fn() in p, waited for: its integer value. */
int64_t call_int(ppx_pool *p, const char *fn);
/* cmocka teardown: the test left no child behind. */
int teardown(void **state);
/* Under valgrind a process's resident size and descriptors include the
 * tool's own, so tests that measure those are skipped there. */
bool under_valgrind(void);

#endif
