/* What the test_loop_* suites share: the worker functions they call by
 * name, a loop-and-pool fixture, and a done callback that records where
 * and how it ran. */
#ifndef PPX_TESTS_LOOP_SUPPORT_H
#define PPX_TESTS_LOOP_SUPPORT_H
#include "ppx.h"
#include "loop_fixture.h"

#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <uv.h>

extern _Atomic int *marks; /* shared with workers */

/* Maps marks and registers add, sleep_then, wait_cancel, spin_forever,
 * mark and lucky_number. Call once, first thing in main. */
void loop_support_register(void);

/* cmocka setups: a loop and a pool of 2 or 3 workers, marks at 0 (the
 * teardown is loop_fixture.h's). */
int setup2(void **state);
int setup3(void **state);

typedef struct seen {
    int calls;
    uv_thread_t thread;
    ppx_state state;
} seen;

/* Done callback: counts its calls in the seen at arg, with the thread and
 * the awaitable's state of the last. */
void record(ppx_awaitable *aw, void *arg);
/* Element i of array v, an integer; fails the test otherwise. */
int64_t int_at(ppx_value v, size_t i);

#endif
