/* The worker functions and fixture the test_executor_* suites share. */
#include "support.h"
#include "executor_support.h"

#include <stdatomic.h>
#include <stdlib.h>
#include <sys/mman.h>

_Atomic int *turn; /* shared with workers */


/* step(k): waits for its turn (turn == k), passes it on, returns k. */
static int fn_step(ppx_call *c, void *u)
{
    (void)u;
    int64_t k;
    ppx_call_arg_int(c, 0, &k);
    while (atomic_load(turn) != k && !ppx_call_cancelled(c))
        support_sleep_ms(1);
    if (ppx_call_cancelled(c))
        return ppx_raise(c, "CancelledError", "step %lld was cancelled", (long long)k);
    atomic_store(turn, (int)k + 1);
    return ppx_return_int(c, k);
}

/* gate(k): waits until the test sets turn to k, returns k. */
static int fn_gate(ppx_call *c, void *u)
{
    (void)u;
    int64_t k;
    ppx_call_arg_int(c, 0, &k);
    while (atomic_load(turn) != k && !ppx_call_cancelled(c))
        support_sleep_ms(1);
    return ppx_return_int(c, k);
}

/* forever(): runs until cancelled, then counts that it noticed. */
static int fn_forever(ppx_call *c, void *u)
{
    (void)u;
    while (!ppx_call_cancelled(c))
        support_sleep_ms(1);
    atomic_fetch_add(turn, 1000);
    return ppx_return_nil(c);
}

int fn_square(ppx_call *c, void *u)
{
    (void)u;
    int64_t x;
    if (ppx_call_arg_int(c, 0, &x))
        return ppx_raise(c, "TypeError", "square takes an integer");
    if (x < 0)
        return ppx_raise(c, "ValueError", "negative: %lld", (long long)x);
    return ppx_return_int(c, x * x);
}

int setup(void **state)
{
    fixture *fx = calloc(1, sizeof *fx);
    uv_loop_init(&fx->loop);
    ppx_pool_options o = PPX_POOL_OPTIONS(.workers = 3, .cancel_grace_ms = 2000);
    support_valgrind_sizes(&o);
    assert_int_equal(ppx_pool_new(&o, &fx->pool), 0);
    atomic_store(turn, 0);
    *state = fx;
    return 0;
}

ppx_awaitable *call(fixture *fx, const char *fn, int64_t arg)
{
    ppx_awaitable *aw;
    assert_int_equal(ppx_run_in_executorf(&fx->loop, fx->pool, &aw, fn, "l", (long long)arg), 0);
    return aw;
}

ppx_awaitable *forever(fixture *fx)
{
    ppx_awaitable *aw;
    assert_int_equal(ppx_run_in_executorf(&fx->loop, fx->pool, &aw, "forever", ""), 0);
    return aw;
}

uint64_t uint_value(ppx_awaitable *aw)
{
    ppx_value v;
    uint64_t u;
    assert_int_equal(ppx_awaitable_value(aw, &v), 0);
    assert_int_equal(ppx_value_uint(v, &u), 0);
    return u;
}

int64_t int_value(ppx_awaitable *aw)
{
    ppx_value v;
    int64_t i;
    assert_int_equal(ppx_awaitable_value(aw, &v), 0);
    assert_int_equal(ppx_value_int(v, &i), 0);
    return i;
}

void unref_all(ppx_awaitable **aw, size_t n)
{
    for (size_t i = 0; i < n; i++)
        ppx_awaitable_unref(aw[i]);
}

void executor_support_register(void)
{
    turn = mmap(NULL, sizeof *turn, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    ppx_register("step", fn_step, NULL);
    ppx_register("forever", fn_forever, NULL);
    ppx_register("gate", fn_gate, NULL);
    ppx_register("square", fn_square, NULL);
}
