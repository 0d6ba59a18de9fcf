/* The worker functions and fixtures the test_loop_* suites share. */
#include "support.h"
#include "loop_support.h"
#include "examples/lucky_number/lucky.h"

#include <stdatomic.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <unistd.h>

_Atomic int *marks;

static int fn_add(ppx_call *c, void *u)
{
    int64_t a, b;
    ppx_call_arg_int(c, 0, &a);
    ppx_call_arg_int(c, 1, &b);
    return ppx_return_int(c, a + b);
}

/* sleep_then(ms, value, raise): sleeps, then returns value or raises. */
static int fn_sleep_then(ppx_call *c, void *u)
{
    int64_t ms, v, raise = 0;
    ppx_call_arg_int(c, 0, &ms);
    ppx_call_arg_int(c, 1, &v);
    ppx_call_arg_int(c, 2, &raise);
    for (int64_t t = 0; t < ms && !ppx_call_cancelled(c); t++)
        support_sleep_ms(1);
    if (raise)
        return ppx_raise(c, "ValueError", "failed with %lld", (long long)v);
    return ppx_return_int(c, v);
}

static int fn_wait_cancel(ppx_call *c, void *u)
{
    while (!ppx_call_cancelled(c))
        support_sleep_ms(1);
    atomic_fetch_add(marks, 100); /* proves it saw the flag */
    return 0;
}

static int fn_spin_forever(ppx_call *c, void *u)
{
    for (;;)
        pause();
    return 0;
}

static int fn_mark(ppx_call *c, void *u)
{
    atomic_fetch_add(marks, 1);
    return 0;
}

static int setup_n(void **state, int workers)
{
    fixture *fx = calloc(1, sizeof *fx);
    uv_loop_init(&fx->loop);
    /* The grace is long enough for cooperative tasks to notice the flag on
     * a loaded machine; the one test that needs a kill waits for it. */
    ppx_pool_options o = PPX_POOL_OPTIONS(.workers = workers, .cancel_grace_ms = 300);
    support_valgrind_sizes(&o);
    assert_int_equal(ppx_pool_new(&o, &fx->pool), 0);
    atomic_store(marks, 0);
    *state = fx;
    return 0;
}
int setup2(void **state) { return setup_n(state, 2); }
int setup3(void **state) { return setup_n(state, 3); }

void record(ppx_awaitable *aw, void *arg)
{
    seen *s = arg;
    s->calls++;
    s->thread = uv_thread_self();
    s->state = ppx_awaitable_state(aw);
}

int64_t int_at(ppx_value v, size_t i)
{
    ppx_value e;
    int64_t out;
    assert_int_equal(ppx_value_at(v, i, &e), 0);
    assert_int_equal(ppx_value_int(e, &out), 0);
    return out;
}

void loop_support_register(void)
{
    marks = mmap(NULL, sizeof *marks, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    ppx_register("add", fn_add, NULL);
    ppx_register("sleep_then", fn_sleep_then, NULL);
    ppx_register("wait_cancel", fn_wait_cancel, NULL);
    ppx_register("spin_forever", fn_spin_forever, NULL);
    ppx_register("mark", fn_mark, NULL);
    ppx_register("lucky_number", lucky_number, NULL);
}
