/* End-to-end tests of the libuv integration, with real forked workers:
 * awaitables, run_in_executor, gather and cancellation. */
#include "support.h"
#include "loop_support.h"
#include "ppx.h"
#include "examples/lucky_number/lucky.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>
#include <uv.h>

static void test_run_in_executor_settles_on_the_loop_thread_with_the_value(void **state)
{
    fixture *fx = *state;
    ppx_awaitable *aw;
    assert_int_equal(ppx_run_in_executorf(&fx->loop, fx->pool, &aw, "add", "ii", 40, 2), 0);
    seen s = {0};
    assert_int_equal(ppx_awaitable_add_done_callback(aw, record, &s), 0);
    assert_int_equal(ppx_run_until_complete(&fx->loop, aw), 0);
    uv_thread_t self = uv_thread_self();
    assert_int_equal(s.calls, 1);
    assert_true(uv_thread_equal(&s.thread, &self));
    assert_int_equal(s.state, PPX_DONE);
    ppx_value v;
    assert_int_equal(ppx_awaitable_value(aw, &v), 0);
    int64_t out;
    assert_int_equal(ppx_value_int(v, &out), 0);
    assert_int_equal(out, 42);
    assert_non_null(ppx_awaitable_future(aw));
    ppx_awaitable_unref(aw);
}

static void test_submission_is_eager_without_running_the_loop(void **state)
{
    fixture *fx = *state;
    ppx_awaitable *aw;
    assert_int_equal(ppx_run_in_executorf(&fx->loop, fx->pool, &aw, "mark", ""), 0);
    int64_t end = support_now_ms() + 10000;
    while (atomic_load(marks) == 0 && support_now_ms() < end)
        support_sleep_ms(1);
    assert_int_equal(atomic_load(marks), 1);
    assert_int_equal(ppx_run_until_complete(&fx->loop, aw), 0);
    ppx_awaitable_unref(aw);
}

/* g's value, after asserting that g is done and its value an array of n. */
static ppx_value done_array(const ppx_awaitable *g, size_t n)
{
    assert_int_equal(ppx_awaitable_state(g), PPX_DONE);
    ppx_value v;
    assert_int_equal(ppx_awaitable_value(g, &v), 0);
    size_t len;
    assert_int_equal(ppx_value_array_len(v, &len), 0);
    assert_int_equal(len, n);
    return v;
}

static void test_gather_returns_values_in_submission_order(void **state)
{
    fixture *fx = *state;
    enum { N = 12 };
    ppx_awaitable *aw[N], *g;
    for (int i = 0; i < N; i++) /* later ones finish first */
        assert_int_equal(ppx_run_in_executorf(&fx->loop, fx->pool, &aw[i], "sleep_then",
                                              "iii", (N - i) * 3, i * 10, 0), 0);
    assert_int_equal(ppx_gather(&fx->loop, aw, N, 0, &g), 0);
    assert_int_equal(ppx_run_until_complete(&fx->loop, g), 0);
    ppx_value v = done_array(g, N);
    for (int i = 0; i < N; i++)
        assert_int_equal(int_at(v, (size_t)i), i * 10);
    assert_int_equal(ppx_gather_count(g), N);
    assert_ptr_equal(ppx_gather_child(g, 3), aw[3]);
    for (int i = 0; i < N; i++)
        ppx_awaitable_unref(aw[i]);
    ppx_awaitable_unref(g);
}

/* asyncio's test_duplicate_coroutines: the same child twice (or more)
 * reports in each place it was given, whether it settled before the
 * gather or after. */
static void test_gather_of_the_same_child_twice_reports_it_in_each_place(void **state)
{
    fixture *fx = *state;
    ppx_awaitable *fast, *slow, *g;
    assert_int_equal(ppx_run_in_executorf(&fx->loop, fx->pool, &fast, "add", "ii", 1, 2), 0);
    assert_int_equal(ppx_run_until_complete(&fx->loop, fast), 0); /* settled before */
    assert_int_equal(ppx_run_in_executorf(&fx->loop, fx->pool, &slow, "sleep_then", "iii", 20,
                                          7, 0), 0);
    ppx_awaitable *kids[] = {slow, fast, slow, fast, slow};
    assert_int_equal(ppx_gather(&fx->loop, kids, 5, 0, &g), 0);
    assert_int_equal(ppx_run_until_complete(&fx->loop, g), 0);
    ppx_value v = done_array(g, 5);
    const int64_t want[] = {7, 3, 7, 3, 7};
    for (size_t i = 0; i < 5; i++)
        assert_int_equal(int_at(v, i), want[i]);
    ppx_awaitable_unref(g); /* a reference left behind: the leak checkers say */
    ppx_awaitable_unref(fast);
    ppx_awaitable_unref(slow);
}

static void test_gather_fails_fast_and_cancels_running_siblings(void **state)
{
    fixture *fx = *state;
    ppx_awaitable *aw[6], *g;
    /* Three workers: two siblings run (one cooperates, one ignores the
     * flag), one raises after a moment; three more wait in the queue. */
    assert_int_equal(ppx_run_in_executorf(&fx->loop, fx->pool, &aw[0], "wait_cancel", ""), 0);
    assert_int_equal(ppx_run_in_executorf(&fx->loop, fx->pool, &aw[1], "spin_forever", ""), 0);
    /* Both siblings must be running when the error comes, however slow
     * the machine (valgrind): only then is stopping them what is tested. */
    for (int i = 0; i < 2; i++)
        support_wait_awaitable_running(aw[i]);
    assert_int_equal(ppx_run_in_executorf(&fx->loop, fx->pool, &aw[2], "sleep_then", "iii", 50, 7, 1), 0);
    for (int i = 3; i < 6; i++)
        assert_int_equal(ppx_run_in_executorf(&fx->loop, fx->pool, &aw[i], "sleep_then", "iii", 5000, i, 0), 0);
    assert_int_equal(ppx_gather(&fx->loop, aw, 6, 0, &g), 0);
    seen s = {0};
    ppx_awaitable_add_done_callback(g, record, &s);
    assert_int_equal(ppx_run_until_complete(&fx->loop, g), 0);
    assert_int_equal(s.calls, 1);
    assert_int_equal(ppx_awaitable_state(g), PPX_FAILED);
    const ppx_error *e = ppx_awaitable_error(g);
    assert_string_equal(e->type, "ValueError");
    assert_string_equal(e->message, "failed with 7");
    assert_string_equal(e->function, "sleep_then");
    assert_int_equal(ppx_awaitable_state(aw[2]), PPX_FAILED);
    for (int i = 0; i < 6; i++)
        if (i != 2)
            assert_int_equal(ppx_awaitable_state(aw[i]), PPX_CANCELLED);
    /* The cancelled running siblings stop: one by the flag, one killed. */
    uv_run(&fx->loop, UV_RUN_DEFAULT);
    assert_false(ppx_pool_busy(fx->pool));
    assert_int_equal(atomic_load(marks), 100);
    ppx_pool_stats st = PPX_POOL_STATS_INIT;
    ppx_pool_stats_get(fx->pool, &st);
    assert_int_equal(st.killed, 1);
    assert_int_equal(st.cancelled, 5);
    for (int i = 0; i < 6; i++)
        ppx_awaitable_unref(aw[i]);
    ppx_awaitable_unref(g);
}

static void test_gather_returning_errors_waits_for_every_child(void **state)
{
    fixture *fx = *state;
    ppx_awaitable *aw[4], *g;
    for (int i = 0; i < 4; i++)
        assert_int_equal(ppx_run_in_executorf(&fx->loop, fx->pool, &aw[i], "sleep_then", "iii",
                                              i * 5, i, i % 2), 0);
    assert_int_equal(ppx_gather(&fx->loop, aw, 4, PPX_GATHER_RETURN_ERRORS, &g), 0);
    assert_int_equal(ppx_run_until_complete(&fx->loop, g), 0);
    assert_int_equal(ppx_awaitable_state(g), PPX_DONE);
    ppx_value v, e;
    assert_int_equal(ppx_awaitable_value(g, &v), 0);
    assert_int_equal(int_at(v, 0), 0);
    assert_int_equal(int_at(v, 2), 2);
    assert_int_equal(ppx_value_at(v, 1, &e), 0);
    assert_int_equal(ppx_value_type(e), PPX_TYPE_NIL);
    assert_string_equal(ppx_awaitable_error(ppx_gather_child(g, 3))->message, "failed with 3");
    for (int i = 0; i < 4; i++)
        ppx_awaitable_unref(aw[i]);
    ppx_awaitable_unref(g);
}

static void test_gather_of_nothing_is_an_empty_list(void **state)
{
    fixture *fx = *state;
    ppx_awaitable *g;
    assert_int_equal(ppx_gather(&fx->loop, NULL, 0, 0, &g), 0);
    assert_true(ppx_awaitable_done(g));
    ppx_value v;
    assert_int_equal(ppx_awaitable_value(g, &v), 0);
    char text[16];
    assert_int_equal(ppx_value_format(v, text, sizeof text), 2);
    assert_string_equal(text, "[]");
    ppx_awaitable_unref(g);
}

static void test_gathers_nest(void **state)
{
    fixture *fx = *state;
    ppx_awaitable *a[2], *b[2], *ga, *gb, *top;
    for (int i = 0; i < 2; i++) {
        ppx_run_in_executorf(&fx->loop, fx->pool, &a[i], "add", "ii", i, 1);
        ppx_run_in_executorf(&fx->loop, fx->pool, &b[i], "add", "ii", i, 10);
    }
    ppx_gather(&fx->loop, a, 2, 0, &ga);
    ppx_gather(&fx->loop, b, 2, 0, &gb);
    ppx_awaitable *both[2] = {ga, gb};
    assert_int_equal(ppx_gather(&fx->loop, both, 2, 0, &top), 0);
    assert_int_equal(ppx_run_until_complete(&fx->loop, top), 0);
    ppx_value v;
    assert_int_equal(ppx_awaitable_value(top, &v), 0);
    char text[64];
    ppx_value_format(v, text, sizeof text);
    assert_string_equal(text, "[[1, 2], [10, 11]]");
    for (int i = 0; i < 2; i++) {
        ppx_awaitable_unref(a[i]);
        ppx_awaitable_unref(b[i]);
    }
    ppx_awaitable_unref(ga);
    ppx_awaitable_unref(gb);
    ppx_awaitable_unref(top);
}

static void test_cancelling_an_awaitable_cancels_its_running_task(void **state)
{
    fixture *fx = *state;
    ppx_awaitable *aw;
    assert_int_equal(ppx_run_in_executorf(&fx->loop, fx->pool, &aw, "wait_cancel", ""), 0);
    support_wait_awaitable_running(aw);
    seen s = {0};
    ppx_awaitable_add_done_callback(aw, record, &s);
    assert_int_equal(ppx_awaitable_cancel(aw), 0);
    assert_int_equal(s.calls, 1);
    assert_int_equal(ppx_awaitable_state(aw), PPX_CANCELLED);
    assert_string_equal(ppx_awaitable_error(aw)->type, "CancelledError");
    assert_int_equal(ppx_awaitable_cancel(aw), PPX_EDONE);
    uv_run(&fx->loop, UV_RUN_DEFAULT);
    assert_int_equal(atomic_load(marks), 100);
    ppx_awaitable_unref(aw);
}

static void test_cancelling_a_gather_cancels_its_children(void **state)
{
    fixture *fx = *state;
    ppx_awaitable *aw[3], *g;
    for (int i = 0; i < 3; i++)
        ppx_run_in_executorf(&fx->loop, fx->pool, &aw[i], "wait_cancel", "");
    assert_int_equal(ppx_gather(&fx->loop, aw, 3, 0, &g), 0);
    assert_int_equal(ppx_awaitable_cancel(g), 0);
    assert_int_equal(ppx_awaitable_state(g), PPX_CANCELLED);
    for (int i = 0; i < 3; i++)
        assert_int_equal(ppx_awaitable_state(aw[i]), PPX_CANCELLED);
    uv_run(&fx->loop, UV_RUN_DEFAULT);
    assert_false(ppx_pool_busy(fx->pool));
    for (int i = 0; i < 3; i++)
        ppx_awaitable_unref(aw[i]);
    ppx_awaitable_unref(g);
}

static void test_wrapping_a_resolved_future_settles_at_once(void **state)
{
    fixture *fx = *state;
    ppx_future *f;
    assert_int_equal(ppx_pool_submitf(fx->pool, &f, "add", "ii", 1, 1), 0);
    assert_int_equal(ppx_future_wait(f, 10000), 0);
    ppx_awaitable *aw;
    assert_int_equal(ppx_wrap_future(&fx->loop, f, &aw), 0);
    assert_true(ppx_awaitable_done(aw));
    assert_ptr_equal(ppx_awaitable_future(aw), f);
    ppx_future_unref(f);
    ppx_value v;
    assert_int_equal(ppx_awaitable_value(aw, &v), 0);
    ppx_awaitable_unref(aw);
}

int main(void)
{
    loop_support_register();

    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_run_in_executor_settles_on_the_loop_thread_with_the_value, setup2, teardown),
        cmocka_unit_test_setup_teardown(test_submission_is_eager_without_running_the_loop, setup2, teardown),
        cmocka_unit_test_setup_teardown(test_gather_returns_values_in_submission_order, setup2, teardown),
        cmocka_unit_test_setup_teardown(test_gather_of_the_same_child_twice_reports_it_in_each_place, setup2, teardown),
        cmocka_unit_test_setup_teardown(test_gather_fails_fast_and_cancels_running_siblings, setup3, teardown),
        cmocka_unit_test_setup_teardown(test_gather_returning_errors_waits_for_every_child, setup2, teardown),
        cmocka_unit_test_setup_teardown(test_gather_of_nothing_is_an_empty_list, setup2, teardown),
        cmocka_unit_test_setup_teardown(test_gathers_nest, setup2, teardown),
        cmocka_unit_test_setup_teardown(test_cancelling_an_awaitable_cancels_its_running_task, setup2, teardown),
        cmocka_unit_test_setup_teardown(test_cancelling_a_gather_cancels_its_children, setup3, teardown),
        cmocka_unit_test_setup_teardown(test_wrapping_a_resolved_future_settles_at_once, setup2, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
