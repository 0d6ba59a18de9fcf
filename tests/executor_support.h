/* What the test_executor_* suites share: worker functions ordered through
 * a shared counter, a loop-and-pool fixture and awaitable helpers. */
#ifndef PPX_TESTS_EXECUTOR_SUPPORT_H
#define PPX_TESTS_EXECUTOR_SUPPORT_H
#include "ppx.h"
#include "loop_fixture.h"

#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <uv.h>

extern _Atomic int *turn; /* shared with workers */

/* Maps turn and registers step, forever, gate and square. Call once,
 * first thing in main. */
void executor_support_register(void);

/* square(x): x * x; TypeError for a non-integer, ValueError if negative. */
int fn_square(ppx_call *c, void *u);

/* cmocka setup: a loop and a pool of 3 workers, turn at 0 (the
 * teardown is loop_fixture.h's). */
int setup(void **state);

/* fn(arg) in fx's pool, through the executor. */
ppx_awaitable *call(fixture *fx, const char *fn, int64_t arg);
/* forever() in fx's pool: runs until cancelled. */
ppx_awaitable *forever(fixture *fx);
/* aw's value as an unsigned / signed integer; fails the test otherwise. */
uint64_t uint_value(ppx_awaitable *aw);
int64_t int_value(ppx_awaitable *aw);
/* Unrefs the n awaitables of aw. */
void unref_all(ppx_awaitable **aw, size_t n);

#endif
