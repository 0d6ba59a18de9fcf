/*
 * Conformance with CPython's asyncio tests, part 2: wait_for
 * (Lib/test/test_asyncio/test_waitfor.py, AsyncioWaitForTest) and
 * as_completed and cancel (test_tasks.py, BaseTaskTests), ported to ppx's loop layer
 * with real forked workers. test_conformance_asyncio.c has gather and
 * wait, test_conformance_taskgroups.c task groups.
 *
 * Naming: each test is <file>__<method>[__<variant>], where <file> is the
 * CPython test module without ".py" and <method> the CPython test method
 * (its class is named in the comment above the test). So
 * test_waitfor__test_wait_for is AsyncioWaitForTest.test_wait_for in
 * test_waitfor.py.
 *
 * Children are real calls: "gated" ones finish once the test lets them,
 * or never (CONF_NEVER) unless cancelled; "on_cancel" ones wait for their
 * cancel flag and then return or raise, as a coroutine that catches its
 * CancelledError. Nothing depends on timing: a deadline only ever expires
 * on a call that cannot finish.
 *
 * The difference met most here is deliberate (docs/GUIDE.md,
 * "Cancellation"): cancelling an awaitable resolves it at once and stops
 * the call behind it -- a call not started never runs, a running one sees
 * ppx_call_cancelled() -- and whatever that call does afterwards (return
 * a value, raise) is discarded. Python's wait_for and TaskGroup instead
 * wait for the cancelled coroutine, which may swallow the cancellation.
 */
#include "conformance.h"
#include "support.h"

#include <stdlib.h>
#include <string.h>
#include <uv.h>

typedef conf_fixture fixture;

static int setup(void **state)
{
    return conf_setup_loop(state, 4);
}

static int teardown(void **state)
{
    return conf_teardown(state);
}

static ppx_awaitable *gated(fixture *fx, int k, int64_t v, const char *kind)
{
    return conf_aw_gated(fx, k, v, kind);
}

static ppx_awaitable *on_cancel(fixture *fx, int64_t v, const char *kind)
{
    ppx_awaitable *aw;
    assert_int_equal(ppx_run_in_executorf(&fx->loop, fx->pool, &aw, "on_cancel", "ls", (long long)v, kind), 0);
    return aw;
}

/* A call running until cancelled, already running on return. */
static ppx_awaitable *running(fixture *fx)
{
    ppx_awaitable *aw = gated(fx, CONF_NEVER, 0, "ok");
    support_wait_awaitable_running(aw);
    return aw;
}

static ppx_awaitable *wait_for(fixture *fx, ppx_awaitable *aw, int timeout_ms)
{
    ppx_awaitable *wf;
    assert_int_equal(ppx_wait_for(&fx->loop, aw, timeout_ms, &wf), 0);
    return wf;
}

/* wait_for(aw, timeout) fails with TimeoutError and aw is cancelled; the
 * call behind it saw its flag (n calls in all have, by then). */
static void expect_timeout(fixture *fx, ppx_awaitable *aw, int timeout_ms, int noticed)
{
    ppx_awaitable *wf = wait_for(fx, aw, timeout_ms);
    conf_run(fx, wf);
    assert_int_equal(ppx_awaitable_state(wf), PPX_FAILED);
    assert_string_equal(conf_aw_etype(wf), "TimeoutError");
    assert_int_equal(ppx_awaitable_state(aw), PPX_CANCELLED);
    conf_wait_noticed(noticed);
    ppx_awaitable_unref(wf);
}

static void drop(ppx_awaitable **aw, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        ppx_awaitable_cancel(aw[i]);
        ppx_awaitable_unref(aw[i]);
    }
}

/* ---- test_waitfor.py: AsyncioWaitForTest ----------------------------- */

/* AsyncioWaitForTest.test_asyncio_wait_for_cancelled: cancelling the
 * wait_for cancels the call, which stops (t.exited). Differs on purpose:
 * Python's SlowTask ignores the cancel and wait_for waits for it to exit;
 * ppx resolves at once and the call sees its flag (docs/GUIDE.md,
 * "Cancellation"). */
static void test_waitfor__test_asyncio_wait_for_cancelled(void **state)
{
    fixture *fx = *state;
    ppx_awaitable *t = running(fx), *wf = wait_for(fx, t, 60000);
    assert_int_equal(ppx_awaitable_cancel(wf), 0);
    assert_int_equal(ppx_awaitable_state(wf), PPX_CANCELLED);
    assert_int_equal(ppx_awaitable_state(t), PPX_CANCELLED);
    conf_wait_noticed(1);
    ppx_awaitable_unref(wf);
    ppx_awaitable_unref(t);
}

/* AsyncioWaitForTest.test_asyncio_wait_for_timeout. */
static void test_waitfor__test_asyncio_wait_for_timeout(void **state)
{
    fixture *fx = *state;
    ppx_awaitable *t = running(fx);
    expect_timeout(fx, t, 20, 1);
    ppx_awaitable_unref(t);
}

/* AsyncioWaitForTest.test_wait_for_timeout_less_then_0_or_0_future_done:
 * a finished awaitable passes through even with timeout 0. */
static void test_waitfor__test_wait_for_timeout_less_then_0_or_0_future_done(void **state)
{
    fixture *fx = *state;
    ppx_awaitable *t = gated(fx, 0, 5, "ok");
    conf_run(fx, t);
    ppx_awaitable *wf = wait_for(fx, t, 0);
    conf_run(fx, wf);
    assert_int_equal(conf_aw_int(wf), 5);
    assert_true(ppx_awaitable_done(t));
    ppx_awaitable_unref(wf);
    ppx_awaitable_unref(t);
}

/* AsyncioWaitForTest.test_wait_for_timeout_less_then_0_or_0_coroutine_
 * do_not_started: a call still queued (every worker busy) times out at 0
 * and never starts. */
static void test_waitfor__test_wait_for_timeout_less_then_0_or_0_coroutine_do_not_started(void **state)
{
    fixture *fx = *state;
    ppx_awaitable *busy[4];
    for (int i = 0; i < 4; i++)
        busy[i] = gated(fx, CONF_NEVER, 0, "ok");
    conf_wait_started(4);
    ppx_awaitable *t = gated(fx, 0, 1, "ok");
    assert_int_equal(ppx_awaitable_state(t), PPX_PENDING);
    expect_timeout(fx, t, 0, 0);
    for (int i = 0; i < 4; i++) {
        ppx_awaitable_cancel(busy[i]);
        ppx_awaitable_unref(busy[i]);
    }
    ppx_awaitable *after = gated(fx, 0, 2, "ok"); /* runs after t's place */
    conf_run(fx, after);
    assert_int_equal(atomic_load(&conf->started), 5); /* 4 busy + after */
    ppx_awaitable_unref(after);
    ppx_awaitable_unref(t);
}

/* AsyncioWaitForTest.test_wait_for_timeout_less_then_0_or_0, timeout 0:
 * a running call is cancelled and stops (foo_running is False). Differs:
 * -1 is not "already expired" but "no timeout", ppx's convention for
 * every timeout (ppx.h, top; ppx_wait_for); see test_wait_for_blocking. */
static void test_waitfor__test_wait_for_timeout_less_then_0_or_0(void **state)
{
    fixture *fx = *state;
    ppx_awaitable *t = running(fx);
    expect_timeout(fx, t, 0, 1);
    ppx_awaitable_unref(t);
}

/* AsyncioWaitForTest.test_wait_for: a 10 s call, 0.1 s (here 50 ms)
 * timeout: TimeoutError, the call cancelled and stopped. */
static void test_waitfor__test_wait_for(void **state)
{
    fixture *fx = *state;
    ppx_awaitable *t = running(fx);
    expect_timeout(fx, t, 50, 1);
    ppx_awaitable_unref(t);
}

/* AsyncioWaitForTest.test_wait_for_blocking: timeout=None is -1. */
static void test_waitfor__test_wait_for_blocking(void **state)
{
    fixture *fx = *state;
    ppx_awaitable *t = gated(fx, 1, 7, "ok"), *wf = wait_for(fx, t, -1);
    conf_release(1);
    conf_run(fx, wf);
    assert_int_equal(conf_aw_int(wf), 7);
    ppx_awaitable_unref(wf);
    ppx_awaitable_unref(t);
}

/* AsyncioWaitForTest.test_wait_for_race_condition: the result comes
 * before the deadline (let go by the test, the deadline far away). */
static void test_waitfor__test_wait_for_race_condition(void **state)
{
    fixture *fx = *state;
    ppx_awaitable *t = gated(fx, 1, 1, "ok"), *wf = wait_for(fx, t, 60000);
    conf_release(1);
    conf_run(fx, wf);
    assert_int_equal(conf_aw_int(wf), 1);
    ppx_awaitable_unref(wf);
    ppx_awaitable_unref(t);
}

/* AsyncioWaitForTest.test_wait_for_cancellation_race_condition and
 * test_wait_for_cancel_suppressed: a call that catches its cancellation
 * and returns a value. Differs on purpose: Python's wait_for returns that
 * value; in ppx the deadline cancels the call, which resolves CANCELLED at
 * once, so wait_for fails with TimeoutError and the late value is
 * discarded (docs/GUIDE.md, "Cancellation": "Its result, if any, is
 * discarded"). */
static void test_waitfor__test_wait_for_cancellation_race_condition(void **state)
{
    fixture *fx = *state;
    ppx_awaitable *t = on_cancel(fx, 1, "ok");
    conf_wait_started(1);
    expect_timeout(fx, t, 10, 1);
    ppx_awaitable_unref(t);
}

static void test_waitfor__test_wait_for_cancel_suppressed(void **state)
{
    fixture *fx = *state;
    ppx_awaitable *t = on_cancel(fx, 42, "ok");
    conf_wait_started(1);
    expect_timeout(fx, t, 100, 1);
    ppx_awaitable_unref(t);
}

/* AsyncioWaitForTest.test_wait_for_waits_for_task_cancellation and
 * _w_timeout_0: TimeoutError, and the task's cleanup ran (task_done).
 * Differs: ppx's wait_for does not wait for the call to return, but the
 * call does see its flag and end (counted in noticed); the error is a
 * TimeoutError with no chained CancelledError (C has no chaining). */
static void test_waitfor__test_wait_for_waits_for_task_cancellation(void **state)
{
    fixture *fx = *state;
    ppx_awaitable *t = running(fx);
    expect_timeout(fx, t, 1, 1);
    ppx_awaitable_unref(t);
}

static void test_waitfor__test_wait_for_waits_for_task_cancellation_w_timeout_0(void **state)
{
    fixture *fx = *state;
    ppx_awaitable *t = running(fx);
    expect_timeout(fx, t, 0, 1);
    ppx_awaitable_unref(t);
}

/* AsyncioWaitForTest.test_wait_for_reraises_exception_during_
 * cancellation: the call raises while being cancelled. Differs on
 * purpose: Python's wait_for raises that FooException; ppx's resolves
 * with TimeoutError and discards what the stopped call raised. */
static void test_waitfor__test_wait_for_reraises_exception_during_cancellation(void **state)
{
    fixture *fx = *state;
    ppx_awaitable *t = on_cancel(fx, 0, "FooException");
    conf_wait_started(1);
    expect_timeout(fx, t, 1, 1);
    assert_string_equal(conf_aw_etype(t), "CancelledError");
    ppx_awaitable_unref(t);
}

/* AsyncioWaitForTest.test_wait_for_self_cancellation: cancelling the
 * wait_for cancels it. Differs on purpose: Python's inner task shrugs off
 * the cancellations and returns 42; the ppx call is stopped with the
 * wait_for, and its 42 is discarded. */
static void test_waitfor__test_wait_for_self_cancellation(void **state)
{
    fixture *fx = *state;
    ppx_awaitable *t = on_cancel(fx, 42, "ok"), *wf = wait_for(fx, t, 100);
    conf_wait_started(1);
    assert_int_equal(ppx_awaitable_cancel(wf), 0);
    assert_int_equal(ppx_awaitable_state(wf), PPX_CANCELLED);
    assert_int_equal(ppx_awaitable_state(t), PPX_CANCELLED);
    conf_wait_noticed(1);
    ppx_awaitable_unref(wf);
    ppx_awaitable_unref(t);
}

/* AsyncioWaitForTest.test_cancel_blocking_wait_for (timeout None) and
 * test_cancel_wait_for (60 s): cancelling the wait_for also cancels the
 * task (Python issue #23219), as in Python. */
static void cancel_wait_for(fixture *fx, int timeout_ms)
{
    ppx_awaitable *t = gated(fx, CONF_NEVER, 0, "ok"), *wf = wait_for(fx, t, timeout_ms);
    uv_run(&fx->loop, UV_RUN_NOWAIT);
    assert_int_equal(ppx_awaitable_cancel(wf), 0);
    assert_int_equal(ppx_awaitable_state(wf), PPX_CANCELLED);
    assert_int_equal(ppx_awaitable_state(t), PPX_CANCELLED);
    ppx_awaitable_unref(wf);
    ppx_awaitable_unref(t);
}

static void test_waitfor__test_cancel_blocking_wait_for(void **state)
{
    cancel_wait_for(*state, -1);
}

static void test_waitfor__test_cancel_wait_for(void **state)
{
    cancel_wait_for(*state, 60000);
}

/* ---- test_tasks.py: as_completed ---------------------------------------- */

/* BaseTaskTests.test_as_completed: a and b first (either order), then c. */
static void test_tasks__test_as_completed(void **state)
{
    fixture *fx = *state;
    ppx_awaitable *a = gated(fx, 1, 1, "ok"), *b = gated(fx, 1, 2, "ok"), *c = gated(fx, 2, 3, "ok");
    ppx_awaitable *items[3] = {b, c, a}, *x, *y, *z;
    ppx_as_completed *it;
    assert_int_equal(ppx_as_completed_new(&fx->loop, items, 3, &it), 0);
    conf_release(1);
    assert_int_equal(ppx_as_completed_next(it, -1, &x), 0);
    assert_int_equal(ppx_as_completed_next(it, -1, &y), 0);
    assert_true((x == a && y == b) || (x == b && y == a));
    conf_release(2);
    assert_int_equal(ppx_as_completed_next(it, -1, &z), 0);
    assert_ptr_equal(z, c);
    assert_int_equal(ppx_as_completed_next(it, -1, &z), PPX_EDONE);
    ppx_as_completed_free(it);
    drop(items, 3);
}

/* BaseTaskTests.test_as_completed_same_tasks_in_as_out: what comes out is
 * the very awaitables that went in. */
static void test_tasks__test_as_completed_same_tasks_in_as_out(void **state)
{
    fixture *fx = *state;
    ppx_awaitable *items[4], *out;
    for (int i = 0; i < 4; i++)
        items[i] = gated(fx, 0, i, "ok");
    ppx_as_completed *it;
    assert_int_equal(ppx_as_completed_new(&fx->loop, items, 4, &it), 0);
    bool seen[4] = {false};
    for (int k = 0; k < 4; k++) {
        assert_int_equal(ppx_as_completed_next(it, -1, &out), 0);
        int found = -1;
        for (int i = 0; i < 4; i++)
            if (items[i] == out)
                found = i;
        assert_true(found >= 0 && !seen[found]);
        seen[found] = true;
    }
    ppx_as_completed_free(it);
    drop(items, 4);
}

/* BaseTaskTests.test_as_completed_with_timeout: a comes, then the timeout
 * (PPX_ETIMEDOUT for TimeoutError); b is left running, not cancelled. */
static void test_tasks__test_as_completed_with_timeout(void **state)
{
    fixture *fx = *state;
    ppx_awaitable *items[2] = {gated(fx, 0, 1, "ok"), gated(fx, CONF_NEVER, 2, "ok")}, *out;
    ppx_as_completed *it;
    assert_int_equal(ppx_as_completed_new(&fx->loop, items, 2, &it), 0);
    assert_int_equal(ppx_as_completed_next(it, -1, &out), 0);
    assert_ptr_equal(out, items[0]);
    assert_int_equal(ppx_as_completed_next(it, 20, &out), PPX_ETIMEDOUT);
    assert_false(ppx_awaitable_done(items[1]));
    ppx_as_completed_free(it);
    drop(items, 2);
}

/* BaseTaskTests.test_as_completed_with_unused_timeout. */
static void test_tasks__test_as_completed_with_unused_timeout(void **state)
{
    fixture *fx = *state;
    ppx_awaitable *a = gated(fx, 0, 1, "ok"), *out;
    ppx_as_completed *it;
    assert_int_equal(ppx_as_completed_new(&fx->loop, &a, 1, &it), 0);
    assert_int_equal(ppx_as_completed_next(it, 60000, &out), 0);
    assert_ptr_equal(out, a);
    assert_int_equal(ppx_as_completed_next(it, 60000, &out), PPX_EDONE);
    ppx_as_completed_free(it);
    ppx_awaitable_unref(a);
}

/* BaseTaskTests.test_as_completed_resume_iterator: two, a pause, the
 * rest. */
static void test_tasks__test_as_completed_resume_iterator(void **state)
{
    fixture *fx = *state;
    ppx_awaitable *items[4], *out;
    for (int i = 0; i < 4; i++)
        items[i] = gated(fx, 0, i, "ok");
    ppx_as_completed *it;
    assert_int_equal(ppx_as_completed_new(&fx->loop, items, 4, &it), 0);
    int64_t sum = 0;
    char buf[8];
    for (int k = 0; k < 4; k++) {
        if (k == 2) /* the pause: the loop runs something else */
            uv_run(&fx->loop, UV_RUN_NOWAIT);
        assert_int_equal(ppx_as_completed_next(it, -1, &out), 0);
        sum += atoi(conf_aw_text(out, buf, sizeof buf));
    }
    assert_int_equal(sum, 0 + 1 + 2 + 3);
    assert_int_equal(ppx_as_completed_next(it, -1, &out), PPX_EDONE);
    ppx_as_completed_free(it);
    drop(items, 4);
}

/* BaseTaskTests.test_as_completed_coroutine_without_loop: no loop
 * (RuntimeError there) is PPX_EINVAL. */
static void test_tasks__test_as_completed_coroutine_without_loop(void **state)
{
    fixture *fx = *state;
    ppx_awaitable *a = gated(fx, 0, 1, "ok");
    ppx_as_completed *it = NULL;
    assert_int_equal(ppx_as_completed_new(NULL, &a, 1, &it), PPX_EINVAL);
    assert_null(it);
    conf_run(fx, a);
    ppx_awaitable_unref(a);
}
/* ---- test_tasks.py: BaseTaskTests, cancellation ------------------------ */

static void cancel_soon(uv_timer_t *t)
{
    assert_int_equal(ppx_awaitable_cancel(t->data), 0);
    uv_close((uv_handle_t *)t, NULL);
}

/* BaseTaskTests.test_cancel: a running task (sleep(10), then 12) is
 * cancelled from a loop callback (loop.call_soon: a 0 ms timer); running
 * the loop until it completes gives CancelledError, it is done and
 * cancelled, and a second cancel is refused (False; PPX_EDONE). The call
 * behind it is stopped: it sees its flag and its 12 never arrives. */
static void test_tasks__test_cancel(void **state)
{
    fixture *fx = *state;
    ppx_awaitable *t = gated(fx, CONF_NEVER, 12, "ok");
    ppx_value v;
    support_wait_awaitable_running(t);
    uv_timer_t soon;
    uv_timer_init(&fx->loop, &soon);
    soon.data = t;
    uv_timer_start(&soon, cancel_soon, 0, 0);
    conf_run(fx, t);
    assert_true(ppx_awaitable_done(t));
    assert_int_equal(ppx_awaitable_state(t), PPX_CANCELLED);
    assert_string_equal(conf_aw_etype(t), "CancelledError");
    assert_int_equal(ppx_awaitable_value(t, &v), PPX_ECANCELED);
    assert_int_equal(ppx_awaitable_cancel(t), PPX_EDONE);
    conf_wait_noticed(1);
    uv_run(&fx->loop, UV_RUN_DEFAULT); /* the timer closes */
    assert_int_equal(ppx_awaitable_state(t), PPX_CANCELLED);
    ppx_awaitable_unref(t);
}

int main(void)
{
    conf_register();
#define T(name) cmocka_unit_test_setup_teardown(name, setup, teardown)
    const struct CMUnitTest tests[] = {
        T(test_waitfor__test_asyncio_wait_for_cancelled),
        T(test_waitfor__test_asyncio_wait_for_timeout),
        T(test_waitfor__test_wait_for_timeout_less_then_0_or_0_future_done),
        T(test_waitfor__test_wait_for_timeout_less_then_0_or_0_coroutine_do_not_started),
        T(test_waitfor__test_wait_for_timeout_less_then_0_or_0),
        T(test_waitfor__test_wait_for),
        T(test_waitfor__test_wait_for_blocking),
        T(test_waitfor__test_wait_for_race_condition),
        T(test_waitfor__test_wait_for_cancellation_race_condition),
        T(test_waitfor__test_wait_for_cancel_suppressed),
        T(test_waitfor__test_wait_for_waits_for_task_cancellation),
        T(test_waitfor__test_wait_for_waits_for_task_cancellation_w_timeout_0),
        T(test_waitfor__test_wait_for_reraises_exception_during_cancellation),
        T(test_waitfor__test_wait_for_self_cancellation),
        T(test_waitfor__test_cancel_blocking_wait_for),
        T(test_waitfor__test_cancel_wait_for),
        T(test_tasks__test_as_completed),
        T(test_tasks__test_as_completed_same_tasks_in_as_out),
        T(test_tasks__test_as_completed_with_timeout),
        T(test_tasks__test_as_completed_with_unused_timeout),
        T(test_tasks__test_as_completed_resume_iterator),
        T(test_tasks__test_as_completed_coroutine_without_loop),
        T(test_tasks__test_cancel),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
