/* The executor surface around gather, end to end with real workers: the
 * thread-pool executor, and a thread call before any process pool exists.
 * Orderings are forced through a shared counter, never by timing. */
#include "support.h"
#include "executor_support.h"
#include "ppx.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>
#include <uv.h>

/* ---- the thread-pool executor ------------------------------------------ */

static int fn_blocking_read(ppx_call *c, void *u)
{
    (void)u;
    /* Blocking I/O stand-in: wait, checking for cancellation. */
    int64_t ms;
    ppx_call_arg_int(c, 0, &ms);
    for (int64_t t = 0; t < ms; t++) {
        if (ppx_call_cancelled(c))
            return ppx_raise(c, "CancelledError", "stopped");
        support_sleep_ms(1);
    }
    return ppx_returnf(c, "si", "read", (int)getpid());
}

static void test_thread_pool_runs_registered_functions_in_this_process(void **state)
{
    fixture *fx = *state;
    ppx_awaitable *aw[3];
    assert_int_equal(ppx_run_in_executorf(&fx->loop, ppx_thread_pool(), &aw[0], "blocking_read", "i", 5), 0);
    assert_int_equal(ppx_run_in_thread(&fx->loop, "square", "\x91\x07", 2, &aw[1]), 0);
    assert_int_equal(ppx_run_in_thread(&fx->loop, "square", "\x91\xff", 2, &aw[2]), 0);
    ppx_awaitable *g;
    assert_int_equal(ppx_gather(&fx->loop, aw, 2, 0, &g), 0);
    assert_int_equal(ppx_run_until_complete(&fx->loop, g), 0);
    char text[64];
    ppx_value v;
    assert_int_equal(ppx_awaitable_value(g, &v), 0);
    ppx_value_format(v, text, sizeof text);
    char want[64];
    snprintf(want, sizeof want, "[['read', %d], 49]", (int)getpid());
    assert_string_equal(text, want);
    assert_int_equal(ppx_run_until_complete(&fx->loop, aw[2]), 0);
    assert_string_equal(ppx_awaitable_error(aw[2])->type, "ValueError");
    assert_string_equal(ppx_awaitable_error(aw[2])->message, "negative: -1");
    unref_all(aw, 3);
    ppx_awaitable_unref(g);
}

static void test_thread_pool_calls_can_be_cancelled_and_names_checked(void **state)
{
    fixture *fx = *state;
    ppx_awaitable *aw, *bad;
    assert_int_equal(ppx_run_in_thread(&fx->loop, "blocking_read", "\x91\xcd\x27\x10", 4, &aw), 0);
    support_sleep_ms(20); /* most likely running by now; either way it must stop */
    assert_int_equal(ppx_awaitable_cancel(aw), 0);
    assert_int_equal(ppx_awaitable_state(aw), PPX_CANCELLED);
    uv_run(&fx->loop, UV_RUN_DEFAULT); /* returns only once the thread let go */
    ppx_awaitable_unref(aw);
    assert_int_equal(ppx_run_in_thread(&fx->loop, "nope", NULL, 0, &bad), 0);
    assert_int_equal(ppx_awaitable_state(bad), PPX_FAILED);
    assert_string_equal(ppx_awaitable_error(bad)->type, "NameError");
    ppx_awaitable_unref(bad);
    assert_int_equal(ppx_run_in_thread(&fx->loop, "square", "\x01", 1, &bad), PPX_EMALFORMED);
    ppx_future *f = NULL;
    assert_int_equal(ppx_pool_submit(ppx_thread_pool(), "square", NULL, 0, &f), PPX_EBADOBJ);
}

/* ---- before any process pool ------------------------------------------- */

/* hold(): waits until turn is 1, then raises. */
static int fn_hold(ppx_call *c, void *u)
{
    (void)u;
    while (atomic_load(turn) != 1)
        support_sleep_ms(1);
    return ppx_raise(c, "ValueError", "held");
}

/* Until a process pool freezes the registry, functions may still be
 * registered, and the registry's table moves as it grows: a thread call
 * in flight must not keep a pointer into the old one. Runs before any
 * pool exists (the first pool freezes the registry). */
static void test_a_thread_call_outlives_registrations_made_while_it_runs(void **state)
{
    (void)state;
    uv_loop_t loop;
    uv_loop_init(&loop);
    atomic_store(turn, 0);
    ppx_awaitable *aw;
    assert_int_equal(ppx_run_in_thread(&loop, "hold", NULL, 0, &aw), 0);
    for (int i = 0; i < 100; i++) { /* the table doubles more than once */
        char name[32];
        snprintf(name, sizeof name, "filler_%d", i);
        assert_int_equal(ppx_register(name, fn_square, NULL), 0);
    }
    atomic_store(turn, 1);
    assert_int_equal(ppx_run_until_complete(&loop, aw), 0);
    assert_int_equal(ppx_awaitable_state(aw), PPX_FAILED);
    assert_string_equal(ppx_awaitable_error(aw)->function, "hold");
    ppx_awaitable_unref(aw);
    uv_run(&loop, UV_RUN_DEFAULT);
    assert_int_equal(uv_loop_close(&loop), 0);
}

int main(void)
{
    executor_support_register();
    ppx_register("blocking_read", fn_blocking_read, NULL);
    ppx_register("hold", fn_hold, NULL);
    const struct CMUnitTest before_any_pool[] = {
        cmocka_unit_test(test_a_thread_call_outlives_registrations_made_while_it_runs),
    };
    int failed = cmocka_run_group_tests(before_any_pool, NULL, NULL);
#define T(name) cmocka_unit_test_setup_teardown(name, setup, teardown)
    const struct CMUnitTest tests[] = {
        T(test_thread_pool_runs_registered_functions_in_this_process),
        T(test_thread_pool_calls_can_be_cancelled_and_names_checked),
    };
    return failed | cmocka_run_group_tests(tests, NULL, NULL);
}
