/*
 * Conformance with CPython's asyncio tests, part 3: task groups
 * (Lib/test/test_asyncio/test_taskgroups.py, TestTaskGroup), ported to
 * ppx's loop layer with real forked workers. test_conformance_asyncio.c
 * has gather and wait, test_conformance_waitfor.c wait_for and
 * as_completed.
 *
 * Naming: each test is <file>__<method>[__<variant>], where <file> is the
 * CPython test module without ".py" and <method> the CPython test method
 * (its class is named in the comment above the test). So
 * test_taskgroups__test_taskgroup_01 is TestTaskGroup.test_taskgroup_01
 * in test_taskgroups.py.
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

/* A call running until cancelled, already running on return. */
static ppx_awaitable *running(fixture *fx)
{
    ppx_awaitable *aw = gated(fx, CONF_NEVER, 0, "ok");
    support_wait_awaitable_running(aw);
    return aw;
}

/* ---- test_taskgroups.py: TestTaskGroup --------------------------------- */

static ppx_awaitable *group(fixture *fx)
{
    ppx_awaitable *g;
    assert_int_equal(ppx_task_group(&fx->loop, &g), 0);
    return g;
}

static void add(ppx_awaitable *g, ppx_awaitable *t)
{
    assert_int_equal(ppx_task_group_add(g, t), 0);
}

/* TestTaskGroup.test_taskgroup_01: two tasks, the group ends DONE with
 * the number of tasks, each task with its value. */
static void test_taskgroups__test_taskgroup_01(void **state)
{
    fixture *fx = *state;
    ppx_awaitable *g = group(fx), *t1 = gated(fx, 1, 42, "ok"), *t2 = gated(fx, 2, 11, "ok");
    add(g, t1);
    add(g, t2);
    assert_int_equal(ppx_task_group_close(g), 0);
    conf_release(2);
    conf_run(fx, g);
    assert_int_equal(conf_aw_int(g), 2);
    assert_int_equal(conf_aw_int(t1), 42);
    assert_int_equal(conf_aw_int(t2), 11);
    ppx_awaitable_unref(t1);
    ppx_awaitable_unref(t2);
    ppx_awaitable_unref(g);
}

/* TestTaskGroup.test_taskgroup_02: the second task is added after the
 * first has finished, the group still open. */
static void test_taskgroups__test_taskgroup_02(void **state)
{
    fixture *fx = *state;
    ppx_awaitable *g = group(fx), *t1 = gated(fx, 0, 42, "ok");
    add(g, t1);
    conf_run(fx, t1);
    assert_false(ppx_awaitable_done(g));
    ppx_awaitable *t2 = gated(fx, 0, 11, "ok");
    add(g, t2);
    assert_int_equal(ppx_task_group_close(g), 0);
    conf_run(fx, g);
    assert_int_equal(conf_aw_int(g), 2);
    assert_int_equal(conf_aw_int(t1), 42);
    assert_int_equal(conf_aw_int(t2), 11);
    ppx_awaitable_unref(t1);
    ppx_awaitable_unref(t2);
    ppx_awaitable_unref(g);
}

/* TestTaskGroup.test_taskgroup_03: a task cancelled from outside does not
 * fail the group; the others go on. */
static void test_taskgroups__test_taskgroup_03(void **state)
{
    fixture *fx = *state;
    ppx_awaitable *g = group(fx), *t1 = running(fx);
    add(g, t1);
    assert_int_equal(ppx_awaitable_cancel(t1), 0);
    ppx_awaitable *t2 = gated(fx, 0, 11, "ok");
    add(g, t2);
    assert_int_equal(ppx_task_group_close(g), 0);
    conf_run(fx, g);
    assert_int_equal(ppx_awaitable_state(g), PPX_DONE);
    assert_int_equal(ppx_awaitable_state(t1), PPX_CANCELLED);
    assert_int_equal(conf_aw_int(t2), 11);
    ppx_awaitable_unref(t1);
    ppx_awaitable_unref(t2);
    ppx_awaitable_unref(g);
}

/* TestTaskGroup.test_taskgroup_04 and test_cancel_children_on_child_error:
 * a failing task cancels the others (t2_cancel, and t2 never completes:
 * NUM == 0). Differs: the group fails with the first error itself, where
 * Python raises an ExceptionGroup of all (ppx.h, ppx_task_group). */
static void failing_child(fixture *fx, int nfailing)
{
    ppx_awaitable *g = group(fx), *t2 = running(fx), *bad[3];
    add(g, t2);
    for (int i = 0; i < nfailing; i++) {
        bad[i] = gated(fx, 1, 0, "ZeroDivisionError");
        add(g, bad[i]);
    }
    assert_int_equal(ppx_task_group_close(g), 0);
    conf_release(1);
    conf_run(fx, g);
    assert_int_equal(ppx_awaitable_state(g), PPX_FAILED);
    assert_string_equal(conf_aw_etype(g), "ZeroDivisionError");
    assert_int_equal(ppx_awaitable_state(t2), PPX_CANCELLED);
    conf_wait_noticed(1);
    for (int i = 0; i < nfailing; i++)
        ppx_awaitable_unref(bad[i]);
    ppx_awaitable_unref(t2);
    ppx_awaitable_unref(g);
}

static void test_taskgroups__test_taskgroup_04(void **state)
{
    failing_child(*state, 1);
}

static void test_taskgroups__test_cancel_children_on_child_error(void **state)
{
    failing_child(*state, 3);
}

/* TestTaskGroup.test_cancellation: cancelling the group cancels its five
 * tasks (NUM == 5). Differs: with four workers the fifth call has not
 * started, and a cancelled call that has not started never runs
 * (docs/GUIDE.md, "Cancellation"): four calls notice their flag, all five
 * tasks are CANCELLED, and no call starts afterwards. */
static void test_taskgroups__test_cancellation(void **state)
{
    fixture *fx = *state;
    ppx_awaitable *g = group(fx), *t[5];
    for (int i = 0; i < 5; i++) {
        t[i] = gated(fx, CONF_NEVER, 0, "ok");
        add(g, t[i]);
    }
    conf_wait_started(4);
    assert_false(ppx_awaitable_done(g));
    assert_int_equal(ppx_awaitable_cancel(g), 0);
    assert_int_equal(ppx_awaitable_state(g), PPX_CANCELLED);
    for (int i = 0; i < 5; i++)
        assert_int_equal(ppx_awaitable_state(t[i]), PPX_CANCELLED);
    conf_wait_noticed(4);
    ppx_awaitable *after = gated(fx, 0, 0, "ok");
    conf_run(fx, after);
    assert_int_equal(atomic_load(&conf->started), 5); /* the 4, then after */
    ppx_awaitable_unref(after);
    for (int i = 0; i < 5; i++)
        ppx_awaitable_unref(t[i]);
    ppx_awaitable_unref(g);
}

/* TestTaskGroup.test_taskgroup_11: cancelling an outer group cancels the
 * inner group in it and the inner group's tasks (here blocking; Python's
 * fail after 0.1 s, about when the runner is cancelled). */
static void test_taskgroups__test_taskgroup_11(void **state)
{
    fixture *fx = *state;
    ppx_awaitable *g1 = group(fx), *g2 = group(fx), *t[3];
    add(g1, g2);
    for (int i = 0; i < 3; i++) {
        t[i] = gated(fx, CONF_NEVER, 0, "ok");
        add(g2, t[i]);
    }
    assert_int_equal(ppx_awaitable_cancel(g1), 0);
    assert_int_equal(ppx_awaitable_state(g1), PPX_CANCELLED);
    assert_int_equal(ppx_awaitable_state(g2), PPX_CANCELLED);
    for (int i = 0; i < 3; i++) {
        assert_int_equal(ppx_awaitable_state(t[i]), PPX_CANCELLED);
        ppx_awaitable_unref(t[i]);
    }
    ppx_awaitable_unref(g2);
    ppx_awaitable_unref(g1);
}

/* TestTaskGroup.test_taskgroup_13: the outer group's own task fails; the
 * inner group (and its task) is cancelled. Differs: the outer group fails
 * with the ValueError itself, not an ExceptionGroup of it. */
static void test_taskgroups__test_taskgroup_13(void **state)
{
    fixture *fx = *state;
    ppx_awaitable *g1 = group(fx), *g2 = group(fx), *a = gated(fx, 1, 1, "ValueError");
    ppx_awaitable *b = gated(fx, CONF_NEVER, 10, "ValueError");
    add(g1, a);
    add(g1, g2);
    add(g2, b);
    assert_int_equal(ppx_task_group_close(g2), 0);
    assert_int_equal(ppx_task_group_close(g1), 0);
    conf_release(1);
    conf_run(fx, g1);
    assert_string_equal(conf_aw_etype(g1), "ValueError");
    assert_int_equal(ppx_awaitable_state(g2), PPX_CANCELLED);
    assert_int_equal(ppx_awaitable_state(b), PPX_CANCELLED);
    ppx_awaitable_unref(a);
    ppx_awaitable_unref(b);
    ppx_awaitable_unref(g2);
    ppx_awaitable_unref(g1);
}

/* TestTaskGroup.test_taskgroup_14: the inner group's task fails, which
 * fails the inner group, which fails the outer one and cancels its other
 * task. Differs: the error is the ValueError itself, not an ExceptionGroup
 * holding an ExceptionGroup. */
static void test_taskgroups__test_taskgroup_14(void **state)
{
    fixture *fx = *state;
    ppx_awaitable *g1 = group(fx), *g2 = group(fx), *a = gated(fx, CONF_NEVER, 10, "ValueError");
    ppx_awaitable *b = gated(fx, 1, 1, "ValueError");
    add(g1, a);
    add(g1, g2);
    add(g2, b);
    assert_int_equal(ppx_task_group_close(g2), 0);
    assert_int_equal(ppx_task_group_close(g1), 0);
    conf_release(1);
    conf_run(fx, g1);
    assert_string_equal(conf_aw_etype(g1), "ValueError");
    assert_string_equal(conf_aw_etype(g2), "ValueError");
    assert_int_equal(ppx_awaitable_state(a), PPX_CANCELLED);
    ppx_awaitable_unref(a);
    ppx_awaitable_unref(b);
    ppx_awaitable_unref(g2);
    ppx_awaitable_unref(g1);
}

/* TestTaskGroup.test_taskgroup_22: a group cancelled soon after its tasks
 * were added ends CANCELLED. */
static void test_taskgroups__test_taskgroup_22(void **state)
{
    fixture *fx = *state;
    ppx_awaitable *g = group(fx), *t1 = gated(fx, CONF_NEVER, 42, "ok"), *t2 = gated(fx, CONF_NEVER, 11, "ok");
    add(g, t1);
    add(g, t2);
    uv_run(&fx->loop, UV_RUN_NOWAIT);
    assert_int_equal(ppx_awaitable_cancel(g), 0);
    assert_int_equal(ppx_awaitable_state(g), PPX_CANCELLED);
    assert_string_equal(conf_aw_etype(g), "CancelledError");
    assert_int_equal(ppx_awaitable_state(t1), PPX_CANCELLED);
    assert_int_equal(ppx_awaitable_state(t2), PPX_CANCELLED);
    ppx_awaitable_unref(t1);
    ppx_awaitable_unref(t2);
    ppx_awaitable_unref(g);
}

typedef struct late_add {
    fixture *fx;
    ppx_awaitable *g, *late;
    ppx_state seen; /* the task's state when its callback ran */
    int rc;
} late_add;

/* coro2's except CancelledError: g.create_task(coro1()), on a task's
 * done callback. */
static void add_on_cancel(ppx_awaitable *t, void *arg)
{
    late_add *a = arg;
    a->seen = ppx_awaitable_state(t);
    a->late = gated(a->fx, 1, 0, "ZeroDivisionError");
    a->rc = ppx_task_group_add(a->g, a->late);
}

/* TestTaskGroup.test_taskgroup_no_create_task_after_failure: coro1
 * raises ZeroDivisionError; coro2, cancelled by the group, then tries
 * to add another coro1, which raises RuntimeError (the coroutine closed,
 * never run). ppx: _add after a task failed returns PPX_ECANCELED and
 * cancels the task (ppx.h, ppx_task_group). The group fails with the
 * ZeroDivisionError alone ({ZeroDivisionError}; not an ExceptionGroup,
 * as test_taskgroup_04): the refused task adds no error. */
static void test_taskgroups__test_taskgroup_no_create_task_after_failure(void **state)
{
    fixture *fx = *state;
    ppx_awaitable *g = group(fx), *t1 = gated(fx, 1, 0, "ZeroDivisionError"), *t2 = running(fx);
    late_add a = {fx, g, NULL, PPX_PENDING, 1};
    /* Added before the group's own callback, it runs while the group
     * still waits for coro2, as coro2's except block does in Python. */
    assert_int_equal(ppx_awaitable_add_done_callback(t2, add_on_cancel, &a), 0);
    add(g, t1);
    add(g, t2);
    assert_int_equal(ppx_task_group_close(g), 0);
    conf_release(1);
    conf_run(fx, g);
    assert_int_equal(a.seen, PPX_CANCELLED);
    assert_int_equal(a.rc, PPX_ECANCELED);
    assert_int_equal(ppx_awaitable_state(a.late), PPX_CANCELLED);
    assert_int_equal(ppx_awaitable_state(g), PPX_FAILED);
    assert_string_equal(ppx_awaitable_error(g)->type, "ZeroDivisionError");
    assert_string_equal(ppx_awaitable_error(g)->message, "0");
    assert_int_equal(ppx_task_group_error_count(g), 1);
    assert_string_equal(ppx_task_group_error_at(g, 0)->type, "ZeroDivisionError");
    conf_wait_noticed(1); /* coro2's call was stopped */
    ppx_awaitable *all[] = {g, t1, t2, a.late};
    conf_unref_all(all, 4);
}

/* TestTaskGroup.test_taskgroup_finished: create_task on a group that has
 * finished raises RuntimeError ("is finished"); ppx: _add returns
 * PPX_ECLOSED, and the group keeps its value (0 tasks). Differs on
 * purpose: Python closes the refused coroutine; ppx leaves the refused
 * awaitable alone, still the caller's (ppx.h, ppx_task_group), and the
 * caller cancels it here, so it never runs to its end. */
static void test_taskgroups__test_taskgroup_finished(void **state)
{
    fixture *fx = *state;
    ppx_awaitable *g = group(fx), *late;
    assert_int_equal(ppx_task_group_close(g), 0); /* async with tg: pass */
    conf_run(fx, g);
    assert_int_equal(conf_aw_int(g), 0);
    late = gated(fx, 1, 0, "ok"); /* asyncio.sleep(0) */
    assert_int_equal(ppx_task_group_add(g, late), PPX_ECLOSED);
    assert_false(ppx_awaitable_done(late));
    assert_int_equal(ppx_task_group_error_count(g), 0);
    assert_int_equal(conf_aw_int(g), 0);
    assert_int_equal(ppx_awaitable_cancel(late), 0);
    assert_int_equal(ppx_awaitable_state(late), PPX_CANCELLED);
    ppx_awaitable_unref(late);
    ppx_awaitable_unref(g);
}

int main(void)
{
    conf_register();
#define T(name) cmocka_unit_test_setup_teardown(name, setup, teardown)
    const struct CMUnitTest tests[] = {
        T(test_taskgroups__test_taskgroup_01),
        T(test_taskgroups__test_taskgroup_02),
        T(test_taskgroups__test_taskgroup_03),
        T(test_taskgroups__test_taskgroup_04),
        T(test_taskgroups__test_cancel_children_on_child_error),
        T(test_taskgroups__test_cancellation),
        T(test_taskgroups__test_taskgroup_11),
        T(test_taskgroups__test_taskgroup_13),
        T(test_taskgroups__test_taskgroup_14),
        T(test_taskgroups__test_taskgroup_22),
        T(test_taskgroups__test_taskgroup_no_create_task_after_failure),
        T(test_taskgroups__test_taskgroup_finished),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
