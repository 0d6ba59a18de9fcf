/* The executor surface around gather, end to end with real workers: wait,
 * wait_for and as_completed, and an awaitable whose pool is freed while
 * another thread hands it over. Orderings are forced through a shared
 * counter, never by timing. */
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

/* ---- wait ---------------------------------------------------------------- */

static void test_wait_first_completed_leaves_the_others_running(void **state)
{
    fixture *fx = *state;
    ppx_awaitable *aw[2] = {forever(fx), call(fx, "step", 0)}, *w;
    assert_int_equal(ppx_wait(&fx->loop, aw, 2, PPX_FIRST_COMPLETED, -1, &w), 0);
    assert_int_equal(ppx_run_until_complete(&fx->loop, w), 0);
    assert_int_equal(ppx_awaitable_state(w), PPX_DONE);
    assert_int_equal(uint_value(w), 1);
    assert_int_equal(ppx_awaitable_state(aw[1]), PPX_DONE);
    assert_false(ppx_awaitable_done(aw[0]));
    assert_int_equal(ppx_awaitable_cancel(aw[0]), 0);
    unref_all(aw, 2);
    ppx_awaitable_unref(w);
}

static void test_wait_first_completed_counts_every_child_already_finished(void **state)
{
    fixture *fx = *state;
    ppx_awaitable *aw[3] = {call(fx, "step", 0), call(fx, "step", 1), call(fx, "square", -3)}, *w;
    for (int i = 0; i < 3; i++)
        assert_int_equal(ppx_run_until_complete(&fx->loop, aw[i]), 0);
    int when[3] = {PPX_FIRST_COMPLETED, PPX_FIRST_EXCEPTION, PPX_ALL_COMPLETED};
    for (int k = 0; k < 3; k++) {
        assert_int_equal(ppx_wait(&fx->loop, aw, 3, when[k], -1, &w), 0);
        assert_true(ppx_awaitable_done(w));
        assert_int_equal(uint_value(w), 3);
        ppx_awaitable_unref(w);
    }
    unref_all(aw, 3);
}

static void test_wait_first_exception_returns_on_the_failure(void **state)
{
    fixture *fx = *state;
    ppx_awaitable *aw[3] = {forever(fx), call(fx, "step", 0), call(fx, "square", -3)}, *w;
    assert_int_equal(ppx_wait(&fx->loop, aw, 3, PPX_FIRST_EXCEPTION, -1, &w), 0);
    assert_int_equal(ppx_run_until_complete(&fx->loop, w), 0);
    assert_int_equal(ppx_awaitable_state(aw[2]), PPX_FAILED);
    assert_string_equal(ppx_awaitable_error(aw[2])->type, "ValueError");
    assert_false(ppx_awaitable_done(aw[0])); /* wait never cancels */
    assert_true(uint_value(w) >= 1);
    ppx_awaitable_cancel(aw[0]);
    unref_all(aw, 3);
    ppx_awaitable_unref(w);
}

static void test_wait_all_completed_with_a_timeout_reports_what_finished(void **state)
{
    fixture *fx = *state;
    ppx_awaitable *aw[3] = {call(fx, "step", 0), call(fx, "step", 1), forever(fx)}, *w;
    /* The first two finish quickly in turn; the third never does. Step 1
     * can reply before step 0 does: wait for both, so the 50 ms below only
     * ever waits for the third. */
    assert_int_equal(ppx_run_until_complete(&fx->loop, aw[1]), 0);
    assert_int_equal(ppx_run_until_complete(&fx->loop, aw[0]), 0);
    assert_int_equal(ppx_wait(&fx->loop, aw, 3, PPX_ALL_COMPLETED, 50, &w), 0);
    assert_int_equal(ppx_run_until_complete(&fx->loop, w), 0);
    assert_int_equal(ppx_awaitable_state(w), PPX_DONE);
    assert_int_equal(uint_value(w), 2);
    assert_false(ppx_awaitable_done(aw[2]));
    /* Polling (timeout 0) answers at once with the same count. */
    ppx_awaitable *poll;
    assert_int_equal(ppx_wait(&fx->loop, aw, 3, PPX_ALL_COMPLETED, 0, &poll), 0);
    assert_true(ppx_awaitable_done(poll));
    assert_int_equal(uint_value(poll), 2);
    ppx_awaitable_cancel(aw[2]);
    unref_all(aw, 3);
    ppx_awaitable_unref(w);
    ppx_awaitable_unref(poll);
}

static void test_wait_rejects_bad_arguments(void **state)
{
    fixture *fx = *state;
    ppx_awaitable *w = NULL, *aw = call(fx, "square", 2);
    assert_int_equal(ppx_wait(&fx->loop, &aw, 1, 99, -1, &w), PPX_EINVAL);
    assert_int_equal(ppx_wait(NULL, &aw, 1, PPX_ALL_COMPLETED, -1, &w), PPX_EINVAL);
    assert_null(w);
    assert_int_equal(ppx_wait(&fx->loop, NULL, 0, PPX_ALL_COMPLETED, -1, &w), 0);
    assert_true(ppx_awaitable_done(w)); /* nothing to wait for */
    ppx_awaitable_unref(w);
    ppx_run_until_complete(&fx->loop, aw);
    ppx_awaitable_unref(aw);
}

/* ---- wait_for --------------------------------------------------------------- */

static void test_wait_for_passes_the_result_through_in_time(void **state)
{
    fixture *fx = *state;
    ppx_awaitable *aw = call(fx, "square", 7), *t;
    assert_int_equal(ppx_wait_for(&fx->loop, aw, 10000, &t), 0);
    assert_int_equal(ppx_run_until_complete(&fx->loop, t), 0);
    assert_int_equal(ppx_awaitable_state(t), PPX_DONE);
    assert_int_equal(int_value(t), 49);
    ppx_awaitable_unref(aw);
    ppx_awaitable_unref(t);
    /* An error passes through too. */
    aw = call(fx, "square", -1);
    assert_int_equal(ppx_wait_for(&fx->loop, aw, 10000, &t), 0);
    assert_int_equal(ppx_run_until_complete(&fx->loop, t), 0);
    assert_string_equal(ppx_awaitable_error(t)->type, "ValueError");
    ppx_awaitable_unref(aw);
    ppx_awaitable_unref(t);
}

static void test_wait_for_times_out_and_stops_the_running_call(void **state)
{
    fixture *fx = *state;
    ppx_awaitable *aw = forever(fx), *t;
    support_wait_awaitable_running(aw); /* so the timeout stops a running call, not a queued one */
    assert_int_equal(ppx_wait_for(&fx->loop, aw, 30, &t), 0);
    assert_int_equal(ppx_run_until_complete(&fx->loop, t), 0);
    assert_int_equal(ppx_awaitable_state(t), PPX_FAILED);
    assert_string_equal(ppx_awaitable_error(t)->type, "TimeoutError");
    assert_int_equal(ppx_awaitable_state(aw), PPX_CANCELLED);
    uv_run(&fx->loop, UV_RUN_DEFAULT); /* until the pool is idle again */
    assert_false(ppx_pool_busy(fx->pool));
    assert_int_equal(atomic_load(turn), 1000); /* it saw the cancel */
    ppx_awaitable_unref(aw);
    ppx_awaitable_unref(t);
}

/* ---- a pool freed on the loop while another thread resolves -------------- */

static void hold_until_set(ppx_future *f, void *arg)
{
    (void)f;
    while (!atomic_load((_Atomic int *)arg))
        support_sleep_ms(1);
}

static void *wait_in_thread(void *f)
{
    ppx_future_wait(f, -1);
    return NULL;
}

/* A blocking waiter on another thread resolves the call and runs its
 * callbacks there, the awaitable's last; meanwhile the loop thread frees
 * the pool and runs the loop, which closes the binding's handles. The
 * awaitable must still settle, through a binding that is still there. */
static void test_an_awaitable_settles_when_its_pool_is_freed_while_another_thread_hands_it_over(
    void **state)
{
    fixture *fx = *state;
    ppx_future *f;
    assert_int_equal(ppx_pool_submitf(fx->pool, &f, "gate", "l", 1LL), 0);
    static _Atomic int freed; /* static: the other thread may outlive a failed test */
    atomic_store(&freed, 0);
    assert_int_equal(ppx_future_add_done_callback(f, hold_until_set, &freed), 0);
    ppx_awaitable *aw;
    assert_int_equal(ppx_wrap_future(&fx->loop, f, &aw), 0);
    pthread_t t;
    assert_int_equal(pthread_create(&t, NULL, wait_in_thread, f), 0);
    atomic_store(turn, 1);
    int64_t end = support_now_ms() + 10000;
    while (!ppx_future_done(f)) { /* resolved by the other thread */
        assert_true(support_now_ms() < end);
        support_sleep_ms(1);
    }
    ppx_pool_free(fx->pool);
    fx->pool = NULL;
    uv_run(&fx->loop, UV_RUN_NOWAIT);
    atomic_store(&freed, 1);
    assert_int_equal(ppx_run_until_complete(&fx->loop, aw), 0);
    assert_int_equal(int_value(aw), 1);
    assert_int_equal(pthread_join(t, NULL), 0);
    ppx_awaitable_unref(aw);
    ppx_future_unref(f);
}

/* ---- as_completed --------------------------------------------------------- */

static void test_as_completed_yields_in_finishing_order(void **state)
{
    fixture *fx = *state;
    /* Submitted as gates 2, 0, 1; the test opens them 0, 1, 2, each
     * only once the one before came out. */
    atomic_store(turn, -1);
    ppx_awaitable *aw[3] = {call(fx, "gate", 2), call(fx, "gate", 0), call(fx, "gate", 1)};
    ppx_as_completed *it;
    assert_int_equal(ppx_as_completed_new(&fx->loop, aw, 3, &it), 0);
    unref_all(aw, 3); /* the iterator holds them */
    for (int64_t want = 0; want < 3; want++) {
        ppx_awaitable *next;
        atomic_store(turn, (int)want);
        assert_int_equal(ppx_as_completed_next(it, 10000, &next), 0);
        assert_int_equal(int_value(next), want);
    }
    ppx_awaitable *none;
    assert_int_equal(ppx_as_completed_next(it, 10, &none), PPX_EDONE);
    ppx_as_completed_free(it);
}

static void test_as_completed_times_out_and_can_be_freed_early(void **state)
{
    fixture *fx = *state;
    ppx_awaitable *aw[2] = {forever(fx), call(fx, "square", 3)}, *next;
    ppx_as_completed *it;
    assert_int_equal(ppx_as_completed_new(&fx->loop, aw, 2, &it), 0);
    assert_int_equal(ppx_as_completed_next(it, 10000, &next), 0);
    assert_ptr_equal(next, aw[1]);
    assert_int_equal(ppx_as_completed_next(it, 20, &next), PPX_ETIMEDOUT);
    ppx_as_completed_free(it); /* with a child still running */
    ppx_awaitable_cancel(aw[0]);
    unref_all(aw, 2);
}

static void free_iterator(ppx_awaitable *aw, void *arg)
{
    (void)aw;
    ppx_as_completed_free(arg);
}

static void test_as_completed_freed_by_a_callback_while_next_runs_the_loop(void **state)
{
    fixture *fx = *state;
    ppx_awaitable *aw = call(fx, "square", 4);
    ppx_as_completed *it;
    assert_int_equal(ppx_as_completed_new(&fx->loop, &aw, 1, &it), 0);
    /* Registered after the iterator's: it runs once the child is counted. */
    assert_int_equal(ppx_awaitable_add_done_callback(aw, free_iterator, it), 0);
    ppx_awaitable *next = NULL;
    assert_int_equal(ppx_as_completed_next(it, -1, &next), PPX_EINVAL);
    assert_null(next); /* the iterator let go of its children: none handed back */
    assert_int_equal(int_value(aw), 16);
    ppx_awaitable_unref(aw);
}

int main(void)
{
    executor_support_register();
#define T(name) cmocka_unit_test_setup_teardown(name, setup, teardown)
    const struct CMUnitTest tests[] = {
        T(test_wait_first_completed_leaves_the_others_running),
        T(test_wait_first_completed_counts_every_child_already_finished),
        T(test_wait_first_exception_returns_on_the_failure),
        T(test_wait_all_completed_with_a_timeout_reports_what_finished),
        T(test_wait_rejects_bad_arguments),
        T(test_wait_for_passes_the_result_through_in_time),
        T(test_wait_for_times_out_and_stops_the_running_call),
        T(test_an_awaitable_settles_when_its_pool_is_freed_while_another_thread_hands_it_over),
        T(test_as_completed_yields_in_finishing_order),
        T(test_as_completed_times_out_and_can_be_freed_early),
        T(test_as_completed_freed_by_a_callback_while_next_runs_the_loop),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
