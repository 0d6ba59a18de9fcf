/* Helpers of the 'faults' suite (test_faults.c): a pool with real
 * workers, a loop with a watchdog, calls with callbacks of their own. */
#ifndef PPX_TESTS_FAULT_LOOP_H
#define PPX_TESTS_FAULT_LOOP_H
#include "support.h"
#include "ppx.h"

#include <uv.h>

typedef struct fixture {
    uv_loop_t loop;
    ppx_pool *pool;
    uv_timer_t dog; /* a hang fails the test instead of the suite timing out */
    bool hung;
} fixture;

/* What an awaitable looked like when it settled. */
typedef struct outcome {
    ppx_awaitable **kids;
    size_t n;
    int calls;
    size_t running; /* children still pending then */
} outcome;

enum { NKIDS = 4 };
extern const int kid_value[NKIDS];

/* sleep_then(ms, v): sleeps ms, then returns v. */
int fn_sleep_then(ppx_call *c, void *u);
int setup(void **state);
int teardown(void **state);
/* Runs the loop until done(arg): fails the test if the loop runs dry
 * first (a stall) or nothing happens for a minute (a hang). */
void run_until(fixture *fx, bool (*done)(void *), void *arg);
void settle(fixture *fx, ppx_awaitable *aw);
/* Every call out of the pool. Driven directly: with no awaitable left
 * waiting, the loop rightly has nothing to run (a cancelled call may
 * still be stopping). */
void drain(fixture *fx);
/* Every awaitable settled and every call out of the pool. */
void finish(fixture *fx, ppx_awaitable **aws, size_t n);
ppx_awaitable *call(fixture *fx, int ms, int v);
/* A call with two callbacks already: one more must grow its array, the
 * allocation whose failure a gather, wait or group has to survive. */
ppx_awaitable *watched(fixture *fx, int ms, int v, int *hits);
int64_t int_of(ppx_value v);
int64_t aw_int(const ppx_awaitable *aw);
void observe(ppx_awaitable *aw, void *arg);
/* A failure is allowed only when an allocation was failed, and must say so. */
void check_failure(const ppx_awaitable *aw, bool fired, const char *also);
/* Drops the test's references, checking they were the last ones. */
void release_all(ppx_awaitable **aws, size_t n);
/* Child 0 has finished; the others run, the last longest, so a child
 * whose callback could not be added is still running when the others
 * are done. */
void make_kids(fixture *fx, ppx_awaitable **kids, int *hits);
void check_hits(const int *hits);

#endif
