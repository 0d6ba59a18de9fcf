/*
 * Conformance with CPython's concurrent.futures tests, part 1: the future
 * itself (Lib/test/test_concurrent_futures/test_future.py, FutureTests),
 * ported to ppx's blocking API with real forked workers. The other parts:
 * test_conformance_shutdown.c (test_init.py, test_shutdown.py),
 * test_conformance_executor.c (executor.py), test_conformance_pool.c
 * (test_process_pool.py, test_deadlock.py), test_conformance_asyncio.c
 * (test_tasks.py: gather, wait), test_conformance_waitfor.c
 * (test_waitfor.py, test_tasks.py: as_completed, cancel) and
 * test_conformance_taskgroups.c (test_taskgroups.py).
 *
 * Naming: each test is <file>__<method>[__<variant>], where <file> is the
 * CPython test module without ".py" and <method> the CPython test method
 * (its class is named in the comment above the test); a __<variant>
 * suffix marks one CPython test split into several here. So
 * test_future__test_cancel is FutureTests.test_cancel in test_future.py.
 *
 * Python's fixtures (PENDING_FUTURE, SUCCESSFUL_FUTURE, ...) are futures it
 * builds by hand; ppx futures only come from a pool, so each is made by a
 * real call: "gated" calls that block until the test lets them go (or
 * they are cancelled) stand in for event.wait, and nothing depends on
 * timing. Where ppx deliberately differs, the test asserts ppx's
 * documented behaviour and its comment says so, naming the document.
 */
#include "conformance.h"
#include "support.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

typedef conf_fixture fixture;

static int setup(void **state)
{
    return conf_setup_pool(state, 2);
}

static int teardown(void **state)
{
    return conf_teardown(state);
}

/* One future in each state, as util.py's PENDING_FUTURE, RUNNING_FUTURE,
 * CANCELLED_FUTURE, EXCEPTION_FUTURE (OSError) and SUCCESSFUL_FUTURE (42).
 * Both workers run a gated call, so the pending one waits its turn. */
enum { PENDING_F, RUNNING_F, CANCELLED_F, EXCEPTION_F, SUCCESSFUL_F, BUSY_F, NSTATES };
static void make_states(fixture *fx, ppx_future *f[NSTATES])
{
    assert_int_equal(ppx_pool_submitf(fx->pool, &f[SUCCESSFUL_F], "mul", "ii", 6, 7), 0);
    assert_int_equal(ppx_pool_submitf(fx->pool, &f[EXCEPTION_F], "raise", "ss", "OSError", "io"), 0);
    assert_int_equal(ppx_future_wait(f[SUCCESSFUL_F], -1), 0);
    assert_int_equal(ppx_future_wait(f[EXCEPTION_F], -1), 0);
    f[RUNNING_F] = conf_gated(fx->pool, CONF_NEVER, 0, "ok");
    f[BUSY_F] = conf_gated(fx->pool, CONF_NEVER, 0, "ok");
    support_wait_running(f[RUNNING_F]);
    support_wait_running(f[BUSY_F]);
    f[PENDING_F] = conf_gated(fx->pool, CONF_NEVER, 0, "ok");
    f[CANCELLED_F] = conf_gated(fx->pool, CONF_NEVER, 0, "ok");
    assert_int_equal(ppx_future_cancel(f[CANCELLED_F]), 0);
    assert_int_equal(ppx_future_state(f[PENDING_F]), PPX_PENDING);
}

static void drop_states(ppx_future *f[NSTATES])
{
    for (int i = 0; i < NSTATES; i++) {
        ppx_future_cancel(f[i]);
        ppx_future_unref(f[i]);
    }
}

/* ---- test_future.py: FutureTests --------------------------------------- */

typedef struct seen {
    int calls;
    ppx_state state;
    int64_t value;
    const char *etype;
} seen;

static void record(ppx_future *f, void *arg)
{
    seen *s = arg;
    s->calls++;
    s->state = ppx_future_state(f);
    if (ppx_future_int(f, &s->value) != 0)
        s->value = -1;
    s->etype = ppx_future_error(f) ? ppx_future_error(f)->type : NULL;
}

/* FutureTests.test_done_callback_with_result: a callback added before the
 * future resolves sees its result. */
static void test_future__test_done_callback_with_result(void **state)
{
    fixture *fx = *state;
    seen s = {0};
    ppx_future *f = conf_gated(fx->pool, 1, 5, "ok");
    assert_int_equal(ppx_future_add_done_callback(f, record, &s), 0);
    assert_int_equal(s.calls, 0);
    conf_release(1);
    assert_int_equal(ppx_future_wait(f, -1), 0);
    assert_int_equal(s.calls, 1);
    assert_int_equal(s.value, 5);
    ppx_future_unref(f);
}

/* FutureTests.test_done_callback_with_exception. Python's Exception('test')
 * is an error of type "Exception" with message "test" here. */
static void test_future__test_done_callback_with_exception(void **state)
{
    fixture *fx = *state;
    seen s = {0};
    ppx_future *f;
    assert_int_equal(ppx_pool_submitf(fx->pool, &f, "raise", "ss", "Exception", "test"), 0);
    assert_int_equal(ppx_future_add_done_callback(f, record, &s), 0);
    assert_int_equal(ppx_future_wait(f, -1), 0);
    assert_int_equal(s.calls, 1);
    assert_int_equal(s.state, PPX_FAILED);
    assert_string_equal(s.etype, "Exception");
    assert_string_equal(ppx_future_error(f)->message, "test");
    ppx_future_unref(f);
}

/* FutureTests.test_done_callback_with_cancel: the callback runs before
 * ppx_future_cancel returns (ppx.h, ppx_future_cancel). */
static void test_future__test_done_callback_with_cancel(void **state)
{
    fixture *fx = *state;
    seen s = {0};
    ppx_future *f = conf_gated(fx->pool, CONF_NEVER, 0, "ok");
    assert_int_equal(ppx_future_add_done_callback(f, record, &s), 0);
    assert_int_equal(ppx_future_cancel(f), 0);
    assert_int_equal(s.calls, 1);
    assert_int_equal(s.state, PPX_CANCELLED);
    ppx_future_unref(f);
}

/* FutureTests.test_done_callback_already_successful, _already_failed and
 * _already_cancelled: added to a resolved future, the callback runs before
 * ppx_future_add_done_callback returns. */
static void test_future__test_done_callback_already_successful(void **state)
{
    fixture *fx = *state;
    seen s = {0};
    ppx_future *f;
    assert_int_equal(ppx_pool_submitf(fx->pool, &f, "mul", "ii", 5, 1), 0);
    assert_int_equal(ppx_future_wait(f, -1), 0);
    assert_int_equal(ppx_future_add_done_callback(f, record, &s), 0);
    assert_int_equal(s.calls, 1);
    assert_int_equal(s.value, 5);
    ppx_future_unref(f);
}

static void test_future__test_done_callback_already_failed(void **state)
{
    fixture *fx = *state;
    seen s = {0};
    ppx_future *f;
    assert_int_equal(ppx_pool_submitf(fx->pool, &f, "raise", "ss", "Exception", "test"), 0);
    assert_int_equal(ppx_future_wait(f, -1), 0);
    assert_int_equal(ppx_future_add_done_callback(f, record, &s), 0);
    assert_int_equal(s.calls, 1);
    assert_string_equal(s.etype, "Exception");
    ppx_future_unref(f);
}

static void test_future__test_done_callback_already_cancelled(void **state)
{
    fixture *fx = *state;
    seen s = {0};
    ppx_future *f = conf_gated(fx->pool, CONF_NEVER, 0, "ok");
    assert_int_equal(ppx_future_cancel(f), 0);
    assert_int_equal(ppx_future_add_done_callback(f, record, &s), 0);
    assert_int_equal(s.calls, 1);
    assert_int_equal(s.state, PPX_CANCELLED);
    ppx_future_unref(f);
}

/* FutureTests.test_cancel, all but the RUNNING case (see __running). A
 * pending future cancels. Differs on purpose: Python's cancel() of an
 * already cancelled future answers True; ppx_future_cancel answers
 * PPX_EDONE for every resolved future, cancelled ones included (ppx.h,
 * ppx_future_cancel), and the state stays as it was. */
static void test_future__test_cancel(void **state)
{
    fixture *fx = *state;
    ppx_future *f[NSTATES];
    make_states(fx, f);
    assert_int_equal(ppx_future_cancel(f[PENDING_F]), 0);
    assert_int_equal(ppx_future_state(f[PENDING_F]), PPX_CANCELLED);
    assert_int_equal(ppx_future_cancel(f[CANCELLED_F]), PPX_EDONE);
    assert_int_equal(ppx_future_state(f[CANCELLED_F]), PPX_CANCELLED);
    assert_int_equal(ppx_future_cancel(f[EXCEPTION_F]), PPX_EDONE);
    assert_int_equal(ppx_future_state(f[EXCEPTION_F]), PPX_FAILED);
    assert_int_equal(ppx_future_cancel(f[SUCCESSFUL_F]), PPX_EDONE);
    assert_int_equal(ppx_future_state(f[SUCCESSFUL_F]), PPX_DONE);
    drop_states(f);
}

/* FutureTests.test_cancel, the RUNNING case. Differs on purpose: Python
 * cannot cancel a running call (cancel() is False, it stays RUNNING); ppx
 * stops it: the future resolves CANCELLED at once and the function sees
 * ppx_call_cancelled() (docs/GUIDE.md, "Cancellation"). */
static void test_future__test_cancel__running(void **state)
{
    fixture *fx = *state;
    ppx_future *f[NSTATES];
    make_states(fx, f);
    assert_int_equal(ppx_future_cancel(f[RUNNING_F]), 0);
    assert_int_equal(ppx_future_state(f[RUNNING_F]), PPX_CANCELLED);
    assert_string_equal(ppx_future_error(f[RUNNING_F])->type, "CancelledError");
    conf_wait_noticed(1);
    drop_states(f);
}

/* FutureTests.test_cancelled, test_done, test_running. */
static void test_future__test_cancelled(void **state)
{
    fixture *fx = *state;
    ppx_future *f[NSTATES];
    make_states(fx, f);
    for (int i = 0; i < BUSY_F; i++)
        assert_int_equal(ppx_future_state(f[i]) == PPX_CANCELLED, i == CANCELLED_F);
    drop_states(f);
}

static void test_future__test_done(void **state)
{
    fixture *fx = *state;
    ppx_future *f[NSTATES];
    make_states(fx, f);
    for (int i = 0; i < BUSY_F; i++)
        assert_int_equal(ppx_future_done(f[i]), i != PENDING_F && i != RUNNING_F);
    drop_states(f);
}

static void test_future__test_running(void **state)
{
    fixture *fx = *state;
    ppx_future *f[NSTATES];
    make_states(fx, f);
    for (int i = 0; i < BUSY_F; i++)
        assert_int_equal(ppx_future_state(f[i]) == PPX_RUNNING, i == RUNNING_F);
    drop_states(f);
}

/* FutureTests.test_result_with_timeout: result(timeout=0) is
 * ppx_future_wait(f, 0) then ppx_future_value. TimeoutError is
 * PPX_ETIMEDOUT, CancelledError PPX_ECANCELED, a raised error PPX_ETASK. */
static void test_future__test_result_with_timeout(void **state)
{
    fixture *fx = *state;
    ppx_future *f[NSTATES];
    make_states(fx, f);
    ppx_value v;
    assert_int_equal(ppx_future_wait(f[PENDING_F], 0), PPX_ETIMEDOUT);
    assert_int_equal(ppx_future_value(f[PENDING_F], &v), PPX_EPENDING);
    assert_int_equal(ppx_future_wait(f[RUNNING_F], 0), PPX_ETIMEDOUT);
    assert_int_equal(ppx_future_value(f[RUNNING_F], &v), PPX_EPENDING);
    assert_int_equal(ppx_future_wait(f[CANCELLED_F], 0), 0);
    assert_int_equal(ppx_future_value(f[CANCELLED_F], &v), PPX_ECANCELED);
    assert_int_equal(ppx_future_wait(f[EXCEPTION_F], 0), 0);
    assert_int_equal(ppx_future_value(f[EXCEPTION_F], &v), PPX_ETASK);
    assert_int_equal(ppx_future_wait(f[SUCCESSFUL_F], 0), 0);
    int64_t i;
    assert_int_equal(ppx_future_int(f[SUCCESSFUL_F], &i), 0);
    assert_int_equal(i, 42);
    drop_states(f);
}

/* FutureTests.test_exception_with_timeout: exception() is
 * ppx_future_error. Differs: a cancelled future has an error too, of type
 * CancelledError (ppx.h, ppx_error), where Python raises CancelledError. */
static void test_future__test_exception_with_timeout(void **state)
{
    fixture *fx = *state;
    ppx_future *f[NSTATES];
    make_states(fx, f);
    assert_int_equal(ppx_future_wait(f[PENDING_F], 0), PPX_ETIMEDOUT);
    assert_null(ppx_future_error(f[PENDING_F]));
    assert_int_equal(ppx_future_wait(f[RUNNING_F], 0), PPX_ETIMEDOUT);
    assert_null(ppx_future_error(f[RUNNING_F]));
    assert_string_equal(ppx_future_error(f[CANCELLED_F])->type, "CancelledError");
    assert_string_equal(ppx_future_error(f[EXCEPTION_F])->type, "OSError");
    assert_null(ppx_future_error(f[SUCCESSFUL_F]));
    drop_states(f);
}

/* Another thread resolves the future the main thread blocks on: by
 * letting its gated call go, or by cancelling it. */
typedef struct resolver {
    ppx_future *f;
    int how; /* 0: release the gate, 1: cancel */
} resolver;

static void *resolve_thread(void *arg)
{
    resolver *r = arg;
    if (r->how == 0)
        conf_release(1);
    else
        ppx_future_cancel(r->f);
    return NULL;
}

static void wait_resolved_by_thread(ppx_future *f, int how)
{
    resolver r = {f, how};
    pthread_t t;
    assert_int_equal(pthread_create(&t, NULL, resolve_thread, &r), 0);
    assert_int_equal(ppx_future_wait(f, -1), 0);
    pthread_join(t, NULL);
}

/* FutureTests.test_result_with_success, without its 1 s sleep: whether
 * the thread acts before or during the wait, the wait sees the result. */
static void test_future__test_result_with_success(void **state)
{
    fixture *fx = *state;
    ppx_future *f = conf_gated(fx->pool, 1, 42, "ok");
    wait_resolved_by_thread(f, 0);
    int64_t v;
    assert_int_equal(ppx_future_int(f, &v), 0);
    assert_int_equal(v, 42);
    ppx_future_unref(f);
}

/* FutureTests.test_result_with_cancel. */
static void test_future__test_result_with_cancel(void **state)
{
    fixture *fx = *state;
    ppx_future *f = conf_gated(fx->pool, CONF_NEVER, 0, "ok");
    wait_resolved_by_thread(f, 1);
    ppx_value v;
    assert_int_equal(ppx_future_value(f, &v), PPX_ECANCELED);
    ppx_future_unref(f);
}

/* FutureTests.test_exception_with_success: the call fails with OSError
 * while the main thread waits. */
static void test_future__test_exception_with_success(void **state)
{
    fixture *fx = *state;
    ppx_future *f = conf_gated(fx->pool, 1, 5, "OSError");
    wait_resolved_by_thread(f, 0);
    assert_string_equal(ppx_future_error(f)->type, "OSError");
    assert_string_equal(ppx_future_error(f)->message, "5");
    ppx_future_unref(f);
}

/* FutureTests.test_get_snapshot, its concurrent part: threads reading a
 * finished future at once all see the same state and value. */
static void *read_snapshots(void *arg)
{
    ppx_future *f = arg;
    for (int i = 0; i < 1000; i++) {
        int64_t v = 0;
        if (!ppx_future_done(f) || ppx_future_state(f) != PPX_DONE || ppx_future_int(f, &v) != 0 ||
            v != 100 || ppx_future_error(f) != NULL)
            return (void *)1;
    }
    return NULL;
}

static void test_future__test_get_snapshot(void **state)
{
    fixture *fx = *state;
    ppx_future *f;
    assert_int_equal(ppx_pool_submitf(fx->pool, &f, "mul", "ii", 10, 10), 0);
    assert_int_equal(ppx_future_wait(f, -1), 0);
    pthread_t t[4];
    for (int i = 0; i < 4; i++)
        assert_int_equal(pthread_create(&t[i], NULL, read_snapshots, f), 0);
    for (int i = 0; i < 4; i++) {
        void *bad;
        pthread_join(t[i], &bad);
        assert_null(bad);
    }
    ppx_future_unref(f);
}

int main(void)
{
    conf_register();
#define T(name) cmocka_unit_test_setup_teardown(name, setup, teardown)
    const struct CMUnitTest tests[] = {
        T(test_future__test_done_callback_with_result),
        T(test_future__test_done_callback_with_exception),
        T(test_future__test_done_callback_with_cancel),
        T(test_future__test_done_callback_already_successful),
        T(test_future__test_done_callback_already_failed),
        T(test_future__test_done_callback_already_cancelled),
        T(test_future__test_cancel),
        T(test_future__test_cancel__running),
        T(test_future__test_cancelled),
        T(test_future__test_done),
        T(test_future__test_running),
        T(test_future__test_result_with_timeout),
        T(test_future__test_exception_with_timeout),
        T(test_future__test_result_with_success),
        T(test_future__test_result_with_cancel),
        T(test_future__test_exception_with_success),
        T(test_future__test_get_snapshot),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
