/*
 * Conformance with CPython's asyncio tests, part 1: gather and wait
 * from Lib/test/test_asyncio/test_tasks.py, ported to ppx's
 * loop layer (awaitables on a libuv loop) with real forked workers.
 * test_conformance_waitfor.c has test_waitfor.py and test_tasks.py's
 * as_completed cases, test_conformance_taskgroups.c test_taskgroups.py.
 *
 * Naming: each test is <file>__<method>[__<variant>], where <file> is the
 * CPython test module without ".py" and <method> the CPython test method
 * (its class is named in the comment above the test). So
 * test_tasks__test_one_exception is GatherTestsBase.test_one_exception in
 * test_tasks.py.
 *
 * Python builds its children from loop futures it resolves by hand, and
 * from sleeps on a virtual clock; ppx has no user-resolvable awaitable
 * (yet), so every child is a real call: "gated" calls that finish, with a
 * value or an error, once the test raises a shared counter past their
 * gate, or never (CONF_NEVER) unless cancelled. The order in which they
 * finish is forced that way, never by timing. Where ppx deliberately
 * differs, the test asserts ppx's documented behaviour and its comment
 * says so, naming the document.
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

/* gated(k, v, kind) on the loop: finishes once turn >= k. */
static ppx_awaitable *gated(fixture *fx, int k, int64_t v, const char *kind)
{
    return conf_aw_gated(fx, k, v, kind);
}

static uint64_t count_of(ppx_awaitable *aw)
{
    ppx_value v;
    uint64_t u;
    assert_int_equal(ppx_awaitable_value(aw, &v), 0);
    assert_int_equal(ppx_value_uint(v, &u), 0);
    return u;
}

static void drop(ppx_awaitable **aw, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        ppx_awaitable_cancel(aw[i]);
        ppx_awaitable_unref(aw[i]);
    }
}

static void count_cb(ppx_awaitable *aw, void *arg)
{
    (void)aw;
    ++*(int *)arg;
}

/* ---- test_tasks.py: gather ---------------------------------------------- */

/* GatherTestsBase.test_success / test_result_exception_success: b, then a
 * finish, the gather waits for c; its value is in the children's order. */
static void check_success(fixture *fx, int flags)
{
    ppx_awaitable *c[3] = {gated(fx, 2, 2, "ok"), gated(fx, 1, 1, "ok"), gated(fx, 3, 3, "ok")}, *g;
    int calls = 0;
    char buf[64];
    assert_int_equal(ppx_gather(&fx->loop, c, 3, flags, &g), 0);
    assert_int_equal(ppx_awaitable_add_done_callback(g, count_cb, &calls), 0);
    conf_release(1);
    conf_run(fx, c[1]);
    conf_release(2);
    conf_run(fx, c[0]);
    assert_int_equal(calls, 0);
    assert_false(ppx_awaitable_done(g));
    conf_release(3);
    conf_run(fx, g);
    assert_int_equal(calls, 1);
    assert_string_equal(conf_aw_text(g, buf, sizeof buf), "[2, 1, 3]");
    drop(c, 3);
    ppx_awaitable_unref(g);
}

static void test_tasks__test_success(void **state)
{
    check_success(*state, 0);
}

static void test_tasks__test_result_exception_success(void **state)
{
    check_success(*state, PPX_GATHER_RETURN_ERRORS);
}

/* GatherTestsBase.test_one_exception: the gather fails with the first
 * error, its callback runs once. Differs on purpose: Python leaves the
 * other children running ("Does nothing"); ppx's gather cancels every
 * other child, running ones included (ppx.h, ppx_gather;
 * docs/FAILURE_MODEL.md, "Errors a future can carry"). */
static void test_tasks__test_one_exception(void **state)
{
    fixture *fx = *state;
    ppx_awaitable *c[5] = {gated(fx, 1, 1, "ok"), gated(fx, 1, 0, "ZeroDivisionError"),
                           gated(fx, CONF_NEVER, 3, "ok"), gated(fx, CONF_NEVER, 0, "ok"),
                           gated(fx, CONF_NEVER, 0, "RuntimeError")},
                  *g;
    int calls = 0;
    assert_int_equal(ppx_gather(&fx->loop, c, 5, 0, &g), 0);
    assert_int_equal(ppx_awaitable_add_done_callback(g, count_cb, &calls), 0);
    conf_release(1);
    conf_run(fx, g);
    assert_int_equal(calls, 1);
    assert_int_equal(ppx_awaitable_state(g), PPX_FAILED);
    assert_string_equal(conf_aw_etype(g), "ZeroDivisionError");
    for (int i = 2; i < 5; i++)
        assert_int_equal(ppx_awaitable_state(c[i]), PPX_CANCELLED);
    drop(c, 5);
    ppx_awaitable_unref(g);
}

/* GatherTestsBase.test_return_exceptions: [3, 1, exc, exc2]. Differs:
 * values are msgpack, not Python objects, so a failed child's element is
 * nil and its error is read from the child (ppx.h, ppx_gather,
 * PPX_GATHER_RETURN_ERRORS and ppx_gather_child). */
static void test_tasks__test_return_exceptions(void **state)
{
    fixture *fx = *state;
    ppx_awaitable *c[4] = {gated(fx, 1, 3, "ok"), gated(fx, 1, 1, "ok"),
                           gated(fx, 1, 0, "ZeroDivisionError"), gated(fx, 2, 0, "RuntimeError")},
                  *g;
    int calls = 0;
    char buf[64];
    assert_int_equal(ppx_gather(&fx->loop, c, 4, PPX_GATHER_RETURN_ERRORS, &g), 0);
    assert_int_equal(ppx_awaitable_add_done_callback(g, count_cb, &calls), 0);
    conf_release(1);
    for (int i = 0; i < 3; i++)
        conf_run(fx, c[i]);
    assert_false(ppx_awaitable_done(g));
    conf_release(2);
    conf_run(fx, g);
    assert_int_equal(calls, 1);
    assert_string_equal(conf_aw_text(g, buf, sizeof buf), "[3, 1, None, None]");
    assert_string_equal(conf_aw_etype(ppx_gather_child(g, 2)), "ZeroDivisionError");
    assert_string_equal(conf_aw_etype(ppx_gather_child(g, 3)), "RuntimeError");
    drop(c, 4);
    ppx_awaitable_unref(g);
}

/* FutureGatherTests.test_constructor_empty_sequence_use_running_loop:
 * gather() is DONE with [] at once. */
static void test_tasks__test_constructor_empty_sequence_use_running_loop(void **state)
{
    fixture *fx = *state;
    ppx_awaitable *g;
    char buf[16];
    assert_int_equal(ppx_gather(&fx->loop, NULL, 0, 0, &g), 0);
    assert_true(ppx_awaitable_done(g));
    assert_string_equal(conf_aw_text(g, buf, sizeof buf), "[]");
    ppx_awaitable_unref(g);
}

/* FutureGatherTests.test_constructor_empty_sequence_without_loop: with no
 * loop (RuntimeError there) ppx_gather gives PPX_EINVAL. */
static void test_tasks__test_constructor_empty_sequence_without_loop(void **state)
{
    (void)state;
    ppx_awaitable *g = NULL;
    assert_int_equal(ppx_gather(NULL, NULL, 0, 0, &g), PPX_EINVAL);
    assert_null(g);
}

/* FutureGatherTests.test_one_cancellation: a cancelled child fails the
 * gather (FAILED, not CANCELLED) with a CancelledError, as in Python.
 * Differs on purpose (as test_one_exception): the other children are
 * cancelled. */
static void test_tasks__test_one_cancellation(void **state)
{
    fixture *fx = *state;
    ppx_awaitable *c[5] = {gated(fx, 1, 1, "ok"), gated(fx, CONF_NEVER, 0, "ok"),
                           gated(fx, CONF_NEVER, 3, "ok"), gated(fx, CONF_NEVER, 0, "ok"),
                           gated(fx, CONF_NEVER, 0, "ok")},
                  *g;
    int calls = 0;
    assert_int_equal(ppx_gather(&fx->loop, c, 5, 0, &g), 0);
    assert_int_equal(ppx_awaitable_add_done_callback(g, count_cb, &calls), 0);
    conf_release(1);
    conf_run(fx, c[0]);
    assert_int_equal(ppx_awaitable_cancel(c[1]), 0);
    assert_true(ppx_awaitable_done(g)); /* its callbacks ran in the cancel */
    assert_int_equal(calls, 1);
    assert_int_equal(ppx_awaitable_state(g), PPX_FAILED);
    assert_string_equal(conf_aw_etype(g), "CancelledError");
    for (int i = 2; i < 5; i++)
        assert_int_equal(ppx_awaitable_state(c[i]), PPX_CANCELLED);
    drop(c, 5);
    ppx_awaitable_unref(g);
}

/* FutureGatherTests.test_result_exception_one_cancellation: with
 * return_exceptions the cancelled children count as errors too. Differs
 * (as test_return_exceptions): their elements are nil, the errors are the
 * children's. */
static void test_tasks__test_result_exception_one_cancellation(void **state)
{
    fixture *fx = *state;
    ppx_awaitable *c[6] = {gated(fx, 1, 1, "ok"), gated(fx, 1, 0, "ZeroDivisionError"),
                           gated(fx, CONF_NEVER, 0, "ok"), gated(fx, 2, 3, "ok"),
                           gated(fx, CONF_NEVER, 0, "ok"), gated(fx, 2, 0, "RuntimeError")},
                  *g;
    int calls = 0;
    char buf[64];
    assert_int_equal(ppx_gather(&fx->loop, c, 6, PPX_GATHER_RETURN_ERRORS, &g), 0);
    assert_int_equal(ppx_awaitable_add_done_callback(g, count_cb, &calls), 0);
    conf_release(1);
    conf_run(fx, c[0]);
    conf_run(fx, c[1]);
    assert_int_equal(ppx_awaitable_cancel(c[2]), 0);
    assert_false(ppx_awaitable_done(g));
    conf_release(2);
    assert_int_equal(ppx_awaitable_cancel(c[4]), 0);
    conf_run(fx, g);
    assert_int_equal(calls, 1);
    assert_string_equal(conf_aw_text(g, buf, sizeof buf), "[1, None, None, 3, None, None]");
    const char *want[6] = {"(none)", "ZeroDivisionError", "CancelledError",
                           "(none)", "CancelledError",    "RuntimeError"};
    for (int i = 0; i < 6; i++)
        assert_string_equal(conf_aw_etype(ppx_gather_child(g, (size_t)i)), want[i]);
    drop(c, 6);
    ppx_awaitable_unref(g);
}

/* CoroutineGatherTests.test_duplicate_coroutines: one awaitable given
 * several times fills each of its places. */
static void test_tasks__test_duplicate_coroutines(void **state)
{
    fixture *fx = *state;
    ppx_awaitable *c = gated(fx, 0, 7, "ok"), *d = gated(fx, 0, 8, "ok"), *g;
    ppx_awaitable *items[4] = {c, c, d, c};
    char buf[64];
    assert_int_equal(ppx_gather(&fx->loop, items, 4, 0, &g), 0);
    conf_run(fx, g);
    assert_string_equal(conf_aw_text(g, buf, sizeof buf), "[7, 7, 8, 7]");
    ppx_awaitable_unref(g);
    ppx_awaitable_unref(c);
    ppx_awaitable_unref(d);
}

/* FutureGatherTests.test_constructor_homogenous_futures: children all of
 * another loop make a gather of that loop, which stays pending while
 * that loop runs. Python takes the loop from the children (first half)
 * or from its loop argument (second half); ppx always takes it as an
 * argument (ppx.h, ppx_gather), so both halves make the gather on the
 * children's loop. That it is bound there (fut._loop) shows in a
 * ppx_wait on it: refused on the test's loop (PPX_EINVAL, "bound to
 * another loop"), taken on the children's. */
static void test_tasks__test_constructor_homogenous_futures(void **state)
{
    fixture *fx = *state;
    uv_loop_t other;
    uv_loop_init(&other);
    ppx_awaitable *c[3], *g[2], *w;
    for (int i = 0; i < 3; i++)
        assert_int_equal(ppx_awaitable_create(&other, &c[i]), 0);
    for (int k = 0; k < 2; k++) {
        assert_int_equal(ppx_gather(&other, c, 3, 0, &g[k]), 0);
        w = NULL;
        assert_int_equal(ppx_wait(&fx->loop, &g[k], 1, PPX_ALL_COMPLETED, -1, &w), PPX_EINVAL);
        assert_null(w);
        assert_int_equal(ppx_wait(&other, &g[k], 1, PPX_ALL_COMPLETED, -1, &w), 0);
        assert_int_equal(ppx_awaitable_cancel(w), 0); /* leaves g[k] alone */
        ppx_awaitable_unref(w);
        uv_run(&other, UV_RUN_NOWAIT); /* _run_loop(other_loop) */
        assert_false(ppx_awaitable_done(g[k]));
    }
    /* A cancelled child fails both gathers, which cancel the others. */
    assert_int_equal(ppx_awaitable_cancel(c[0]), 0);
    assert_int_equal(ppx_awaitable_state(c[2]), PPX_CANCELLED);
    assert_int_equal(ppx_awaitable_state(g[0]), PPX_FAILED);
    assert_string_equal(conf_aw_etype(g[0]), "CancelledError");
    assert_string_equal(conf_aw_etype(g[1]), "CancelledError");
    conf_unref_all(c, 3);
    conf_unref_all(g, 2);
    uv_run(&other, UV_RUN_DEFAULT);
    assert_int_equal(uv_loop_close(&other), 0);
}

typedef struct canceller {
    ppx_awaitable *g;
    int calls, rc;
} canceller;

static void cancel_gather(ppx_awaitable *fut, void *arg)
{
    (void)fut;
    canceller *c = arg;
    c->calls++;
    c->rc = ppx_awaitable_cancel(c->g);
}

/* BaseTaskTests.test_cancel_gather_1 (Python issue #26923): a gather
 * whose children are all done refuses a cancel even before it has heard
 * of the last one: cancel() is False and the result [42]. Python's cancel
 * comes from a done callback of the future its child awaits, run after
 * the child finished and before the gather's own callback. ppx runs an
 * awaitable's callbacks in the order they were added, so a cancelling
 * callback added to the child before the gather is made runs in that
 * very window: PPX_EDONE, the outcome being decided (ppx.h,
 * ppx_awaitable_cancel), and the gather resolves DONE with [42]. Once it
 * has, a cancel is PPX_EDONE too and the value stays. */
static void test_tasks__test_cancel_gather_1(void **state)
{
    fixture *fx = *state;
    ppx_awaitable *fut, *g;
    canceller cc = {NULL, 0, 1};
    char text[32];
    assert_int_equal(ppx_awaitable_create(&fx->loop, &fut), 0);
    assert_int_equal(ppx_awaitable_add_done_callback(fut, cancel_gather, &cc), 0);
    assert_int_equal(ppx_gather(&fx->loop, &fut, 1, 0, &g), 0);
    cc.g = g;
    assert_int_equal(conf_set_int(fut, 42), 0); /* on the loop's thread: callbacks run now */
    assert_int_equal(cc.calls, 1);
    assert_int_equal(cc.rc, PPX_EDONE);
    conf_run(fx, g);
    assert_int_equal(ppx_awaitable_state(g), PPX_DONE);
    assert_string_equal(conf_aw_text(g, text, sizeof text), "[42]");
    assert_int_equal(ppx_awaitable_cancel(g), PPX_EDONE);
    assert_string_equal(conf_aw_text(g, text, sizeof text), "[42]");
    ppx_awaitable_unref(fut);
    ppx_awaitable_unref(g);
}

/* CoroutineGatherTests.test_cancellation_broadcast: cancelling the gather
 * cancels its children, and a second cancel is refused (Python: False;
 * ppx: PPX_EDONE). The children's work never completes (proof == 0):
 * here both running calls are stopped and see their flag. */
static void test_tasks__test_cancellation_broadcast(void **state)
{
    fixture *fx = *state;
    ppx_awaitable *c[2] = {gated(fx, CONF_NEVER, 0, "ok"), gated(fx, CONF_NEVER, 0, "ok")}, *g;
    support_wait_awaitable_running(c[0]);
    support_wait_awaitable_running(c[1]);
    assert_int_equal(ppx_gather(&fx->loop, c, 2, 0, &g), 0);
    assert_int_equal(ppx_awaitable_cancel(g), 0);
    assert_int_equal(ppx_awaitable_state(g), PPX_CANCELLED);
    assert_int_equal(ppx_awaitable_cancel(g), PPX_EDONE);
    assert_int_equal(ppx_awaitable_state(c[0]), PPX_CANCELLED);
    assert_int_equal(ppx_awaitable_state(c[1]), PPX_CANCELLED);
    conf_wait_noticed(2);
    drop(c, 2);
    ppx_awaitable_unref(g);
}

/* CoroutineGatherTests.test_exception_marking: both children raise; the
 * gather fails with a RuntimeError. */
static void test_tasks__test_exception_marking(void **state)
{
    fixture *fx = *state;
    ppx_awaitable *c[2] = {gated(fx, 1, 0, "RuntimeError"), gated(fx, 2, 0, "RuntimeError")}, *g;
    assert_int_equal(ppx_gather(&fx->loop, c, 2, 0, &g), 0);
    conf_release(1);
    conf_run(fx, c[0]);
    conf_release(2);
    conf_run(fx, g);
    assert_string_equal(conf_aw_etype(g), "RuntimeError");
    drop(c, 2);
    ppx_awaitable_unref(g);
}

/* CoroutineGatherTests.test_issue46672: a child that is not an awaitable
 * (TypeError there) is refused with PPX_EBADOBJ, and nothing is left
 * behind (the valid child still runs to its end). */
static void test_tasks__test_issue46672(void **state)
{
    fixture *fx = *state;
    ppx_awaitable *c = gated(fx, 0, 1, "ok"), *g = NULL;
    ppx_awaitable *items[2] = {c, NULL};
    assert_int_equal(ppx_gather(&fx->loop, items, 2, 0, &g), PPX_EBADOBJ);
    items[1] = (ppx_awaitable *)fx->pool; /* a live object of another kind */
    assert_int_equal(ppx_gather(&fx->loop, items, 2, 0, &g), PPX_EBADOBJ);
    assert_null(g);
    conf_run(fx, c);
    ppx_awaitable_unref(c);
}

/* ---- test_tasks.py: wait ------------------------------------------------ */

/* BaseTaskTests.test_wait: ALL_COMPLETED; a second wait on the finished
 * children is done at once. The wait's value is the number finished
 * (ppx.h, ppx_wait: no done/pending sets). */
static void test_tasks__test_wait(void **state)
{
    fixture *fx = *state;
    ppx_awaitable *c[2] = {gated(fx, 1, 0, "ok"), gated(fx, 1, 0, "ok")}, *w;
    assert_int_equal(ppx_wait(&fx->loop, c, 2, PPX_ALL_COMPLETED, -1, &w), 0);
    conf_release(1);
    conf_run(fx, w);
    assert_int_equal(count_of(w), 2);
    assert_true(ppx_awaitable_done(c[0]) && ppx_awaitable_done(c[1]));
    ppx_awaitable_unref(w);
    assert_int_equal(ppx_wait(&fx->loop, c, 2, PPX_ALL_COMPLETED, -1, &w), 0);
    assert_true(ppx_awaitable_done(w));
    assert_int_equal(count_of(w), 2);
    ppx_awaitable_unref(w);
    drop(c, 2);
}

/* BaseTaskTests.test_wait_errors: return_when=-1 is refused (PPX_EINVAL
 * for ValueError). Differs: an empty set is no error; the wait is DONE at
 * once with a count of 0 (ppx.h, ppx_wait: items may be NULL when n is 0). */
static void test_tasks__test_wait_errors(void **state)
{
    fixture *fx = *state;
    ppx_awaitable *c = gated(fx, 0, 0, "ok"), *w = NULL;
    assert_int_equal(ppx_wait(&fx->loop, &c, 1, -1, -1, &w), PPX_EINVAL);
    assert_null(w);
    assert_int_equal(ppx_wait(&fx->loop, NULL, 0, PPX_ALL_COMPLETED, -1, &w), 0);
    assert_true(ppx_awaitable_done(w));
    assert_int_equal(count_of(w), 0);
    ppx_awaitable_unref(w);
    conf_run(fx, c);
    ppx_awaitable_unref(c);
}

/* BaseTaskTests.test_wait_first_completed. */
static void test_tasks__test_wait_first_completed(void **state)
{
    fixture *fx = *state;
    ppx_awaitable *c[2] = {gated(fx, 1, 0, "ok"), gated(fx, CONF_NEVER, 0, "ok")}, *w;
    assert_int_equal(ppx_wait(&fx->loop, c, 2, PPX_FIRST_COMPLETED, -1, &w), 0);
    conf_release(1);
    conf_run(fx, w);
    assert_int_equal(count_of(w), 1);
    assert_true(ppx_awaitable_done(c[0]));
    assert_false(ppx_awaitable_done(c[1]));
    ppx_awaitable_unref(w);
    drop(c, 2);
}

/* BaseTaskTests.test_wait_really_done: children that have finished by
 * the time the wait looks all count, not just the first. */
static void test_tasks__test_wait_really_done(void **state)
{
    fixture *fx = *state;
    ppx_awaitable *c[2] = {gated(fx, 0, 0, "ok"), gated(fx, 0, 0, "ok")}, *w;
    conf_run(fx, c[0]);
    conf_run(fx, c[1]);
    assert_int_equal(ppx_wait(&fx->loop, c, 2, PPX_FIRST_COMPLETED, -1, &w), 0);
    conf_run(fx, w);
    assert_int_equal(count_of(w), 2);
    ppx_awaitable_unref(w);
    drop(c, 2);
}

/* BaseTaskTests.test_wait_first_exception: a child has already failed. */
static void test_tasks__test_wait_first_exception(void **state)
{
    fixture *fx = *state;
    ppx_awaitable *c[2] = {gated(fx, 0, 0, "ZeroDivisionError"), gated(fx, CONF_NEVER, 0, "ok")}, *w;
    conf_run(fx, c[0]);
    assert_int_equal(ppx_wait(&fx->loop, c, 2, PPX_FIRST_EXCEPTION, -1, &w), 0);
    assert_true(ppx_awaitable_done(w));
    assert_int_equal(count_of(w), 1);
    assert_false(ppx_awaitable_done(c[1]));
    ppx_awaitable_unref(w);
    drop(c, 2);
}

/* BaseTaskTests.test_wait_first_exception_in_wait: it fails meanwhile. */
static void test_tasks__test_wait_first_exception_in_wait(void **state)
{
    fixture *fx = *state;
    ppx_awaitable *c[2] = {gated(fx, 1, 0, "ZeroDivisionError"), gated(fx, CONF_NEVER, 0, "ok")}, *w;
    assert_int_equal(ppx_wait(&fx->loop, c, 2, PPX_FIRST_EXCEPTION, -1, &w), 0);
    assert_false(ppx_awaitable_done(w));
    conf_release(1);
    conf_run(fx, w);
    assert_int_equal(count_of(w), 1);
    assert_string_equal(conf_aw_etype(c[0]), "ZeroDivisionError");
    assert_false(ppx_awaitable_done(c[1]));
    ppx_awaitable_unref(w);
    drop(c, 2);
}

/* BaseTaskTests.test_wait_with_exception: ALL_COMPLETED with one error. */
static void test_tasks__test_wait_with_exception(void **state)
{
    fixture *fx = *state;
    ppx_awaitable *c[2] = {gated(fx, 1, 0, "ok"), gated(fx, 2, 0, "ZeroDivisionError")}, *w;
    assert_int_equal(ppx_wait(&fx->loop, c, 2, PPX_ALL_COMPLETED, -1, &w), 0);
    conf_release(1);
    conf_run(fx, c[0]);
    assert_false(ppx_awaitable_done(w));
    conf_release(2);
    conf_run(fx, w);
    assert_int_equal(count_of(w), 2);
    assert_int_equal((ppx_awaitable_error(c[0]) != NULL) + (ppx_awaitable_error(c[1]) != NULL), 1);
    ppx_awaitable_unref(w);
    drop(c, 2);
}

/* BaseTaskTests.test_wait_with_timeout (timeout 20 ms) and
 * test_wait_concurrent_complete (here: timeout 0, look once). One child
 * has finished, the other never will: the count is 1 and the timeout
 * cancels nothing. */
static void wait_with_timeout(fixture *fx, int timeout_ms)
{
    ppx_awaitable *c[2] = {gated(fx, 0, 0, "ok"), gated(fx, CONF_NEVER, 0, "ok")}, *w;
    conf_run(fx, c[0]);
    assert_int_equal(ppx_wait(&fx->loop, c, 2, PPX_ALL_COMPLETED, timeout_ms, &w), 0);
    conf_run(fx, w);
    assert_int_equal(ppx_awaitable_state(w), PPX_DONE);
    assert_int_equal(count_of(w), 1);
    assert_false(ppx_awaitable_done(c[1]));
    ppx_awaitable_unref(w);
    drop(c, 2);
}

static void test_tasks__test_wait_with_timeout(void **state)
{
    wait_with_timeout(*state, 20);
}

static void test_tasks__test_wait_concurrent_complete(void **state)
{
    wait_with_timeout(*state, 0);
}

/* BaseTaskTests.test_yield_wait_does_not_shield_cancel: cancelling the
 * wait leaves its child running, which then finishes (proof == 1). */
static void test_tasks__test_yield_wait_does_not_shield_cancel(void **state)
{
    fixture *fx = *state;
    ppx_awaitable *c = gated(fx, 1, 1, "ok"), *w;
    assert_int_equal(ppx_wait(&fx->loop, &c, 1, PPX_ALL_COMPLETED, -1, &w), 0);
    assert_int_equal(ppx_awaitable_cancel(w), 0);
    assert_int_equal(ppx_awaitable_state(w), PPX_CANCELLED);
    assert_false(ppx_awaitable_done(c));
    conf_release(1);
    conf_run(fx, c);
    assert_int_equal(ppx_awaitable_state(c), PPX_DONE);
    ppx_awaitable_unref(w);
    ppx_awaitable_unref(c);
}

int main(void)
{
    conf_register();
#define T(name) cmocka_unit_test_setup_teardown(name, setup, teardown)
    const struct CMUnitTest tests[] = {
        T(test_tasks__test_success),
        T(test_tasks__test_result_exception_success),
        T(test_tasks__test_one_exception),
        T(test_tasks__test_return_exceptions),
        T(test_tasks__test_constructor_empty_sequence_use_running_loop),
        T(test_tasks__test_constructor_empty_sequence_without_loop),
        T(test_tasks__test_one_cancellation),
        T(test_tasks__test_result_exception_one_cancellation),
        T(test_tasks__test_duplicate_coroutines),
        T(test_tasks__test_cancellation_broadcast),
        T(test_tasks__test_constructor_homogenous_futures),
        T(test_tasks__test_cancel_gather_1),
        T(test_tasks__test_exception_marking),
        T(test_tasks__test_issue46672),
        T(test_tasks__test_wait),
        T(test_tasks__test_wait_errors),
        T(test_tasks__test_wait_first_completed),
        T(test_tasks__test_wait_really_done),
        T(test_tasks__test_wait_first_exception),
        T(test_tasks__test_wait_first_exception_in_wait),
        T(test_tasks__test_wait_with_exception),
        T(test_tasks__test_wait_with_timeout),
        T(test_tasks__test_wait_concurrent_complete),
        T(test_tasks__test_yield_wait_does_not_shield_cancel),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
