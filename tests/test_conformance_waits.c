/*
 * Conformance with CPython's concurrent.futures tests, part 3: wait
 * (Lib/test/test_concurrent_futures/test_wait.py), as_completed
 * (test_as_completed.py), shutdown(cancel_futures=True)
 * (test_shutdown.py) and terminate_workers / kill_workers
 * (test_process_pool.py), ported to ppx_futures_wait,
 * ppx_futures_as_completed_*, PPX_SHUTDOWN_CANCEL_QUEUED and
 * ppx_pool_terminate_workers / ppx_pool_kill_workers, with real forked
 * workers.
 *
 * Naming as in test_conformance_shutdown.c: <file>__<method>[__<variant>],
 * the CPython class named in the comment above each test.
 *
 * CPython's util.py provides finished futures: SUCCESSFUL_FUTURE,
 * EXCEPTION_FUTURE, CANCELLED_AND_NOTIFIED_FUTURE; here they are real
 * calls resolved before the test uses them (mul, divmod by zero, a
 * cancelled call). CANCELLED_FUTURE (cancel() called, the executor not
 * yet told) has no counterpart: ppx_future_cancel resolves the future
 * CANCELLED before it returns (ppx.h, ppx_future_cancel), so every
 * cancelled ppx future is "cancelled and notified"; the tests that list
 * CANCELLED_FUTURE say what that changes. Calls that must block are
 * "gated" (conformance.h); nothing depends on timing.
 */
#include "conformance.h"
#include "support.h"

#include <signal.h>
#include <stdlib.h>
#include <string.h>

typedef struct fixture {
    ppx_pool *pool;
    ppx_future *ok;        /* SUCCESSFUL_FUTURE: mul(21, 2) == 42 */
    ppx_future *exc;       /* EXCEPTION_FUTURE: divmod(1, 0) failed */
    ppx_future *cancelled; /* CANCELLED_AND_NOTIFIED_FUTURE */
} fixture;

static int setup(void **state)
{
    fixture *fx = calloc(1, sizeof *fx);
    conf_reset();
    fx->pool = conf_pool(3, NULL);
    assert_int_equal(ppx_pool_submitf(fx->pool, &fx->ok, "mul", "ii", 21, 2), 0);
    assert_int_equal(support_future_int(fx->ok), 42);
    assert_int_equal(ppx_pool_submitf(fx->pool, &fx->exc, "divmod", "ii", 1, 0), 0);
    assert_int_equal(ppx_future_wait(fx->exc, -1), 0);
    assert_int_equal(ppx_future_state(fx->exc), PPX_FAILED);
    fx->cancelled = conf_gated(fx->pool, CONF_NEVER, 0, "ok");
    assert_int_equal(ppx_future_cancel(fx->cancelled), 0);
    assert_int_equal(ppx_future_state(fx->cancelled), PPX_CANCELLED);
    *state = fx;
    return 0;
}

static int teardown(void **state)
{
    fixture *fx = *state;
    ppx_future_unref(fx->ok);
    ppx_future_unref(fx->exc);
    ppx_future_unref(fx->cancelled);
    ppx_pool_free(fx->pool);
    free(fx);
    assert_true(support_no_children());
    return 0;
}

/* For the tests that make their own pools. */
static int setup_bare(void **state)
{
    (void)state;
    conf_reset();
    return 0;
}

static int teardown_bare(void **state)
{
    (void)state;
    assert_true(support_no_children());
    return 0;
}

/* Lets a gated call go and collects it. */
static void finish(ppx_future *f, int turn)
{
    conf_release(turn);
    assert_int_equal(ppx_future_wait(f, -1), 0);
    ppx_future_unref(f);
}

static void expect_flags(const bool *done, const bool *want, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (done[i] != want[i])
            fail_msg("future %zu: done %d, expected %d", i, done[i], want[i]);
}

/* ---- test_wait.py: WaitTests --------------------------------------------- */

/* WaitTests.test_20369: one future listed twice. Python's done set holds
 * it once; ppx's flags are per position and the count counts each
 * (ppx.h, ppx_futures_wait: "a future listed twice counts twice"). */
static void test_wait__test_20369(void **state)
{
    fixture *fx = *state;
    ppx_future *f;
    assert_int_equal(ppx_pool_submitf(fx->pool, &f, "mul", "ii", 1, 2), 0);
    ppx_future *fs[] = {f, f};
    bool done[2] = {false, false};
    assert_int_equal(ppx_futures_wait(fs, 2, PPX_ALL_COMPLETED, -1, done), 2);
    expect_flags(done, (bool[]){true, true}, 2);
    assert_int_equal(support_future_int(f), 2);
    ppx_future_unref(f);
}

/* WaitTests.test_first_completed, without CANCELLED_FUTURE: of mul and a
 * call blocked on its event, mul is done, the other pending. */
static void test_wait__test_first_completed(void **state)
{
    fixture *fx = *state;
    ppx_future *f1, *f2 = conf_gated(fx->pool, 1, 0, "ok");
    assert_int_equal(ppx_pool_submitf(fx->pool, &f1, "mul", "ii", 21, 2), 0);
    ppx_future *fs[] = {f1, f2};
    bool done[2];
    assert_int_equal(ppx_futures_wait(fs, 2, PPX_FIRST_COMPLETED, -1, done), 1);
    expect_flags(done, (bool[]){true, false}, 2);
    assert_int_equal(support_future_int(f1), 42);
    ppx_future_unref(f1);
    finish(f2, 1);
}

/* WaitTests.test_first_completed with CANCELLED_FUTURE listed. Differs on
 * purpose: a cancelled ppx future has resolved (ppx.h, ppx_future_cancel),
 * so it is in the done set and FIRST_COMPLETED holds at once; Python
 * leaves a not-notified cancelled future in not_done. */
static void test_wait__test_first_completed__cancelled(void **state)
{
    fixture *fx = *state;
    ppx_future *f2 = conf_gated(fx->pool, 1, 0, "ok");
    ppx_future *fs[] = {fx->cancelled, f2};
    bool done[2];
    assert_int_equal(ppx_futures_wait(fs, 2, PPX_FIRST_COMPLETED, -1, done), 1);
    expect_flags(done, (bool[]){true, false}, 2);
    finish(f2, 1);
}

/* WaitTests.test_first_completed_some_already_completed. */
static void test_wait__test_first_completed_some_already_completed(void **state)
{
    fixture *fx = *state;
    ppx_future *f1 = conf_gated(fx->pool, 1, 0, "ok");
    ppx_future *fs[] = {fx->cancelled, fx->ok, f1};
    bool done[3];
    assert_int_equal(ppx_futures_wait(fs, 3, PPX_FIRST_COMPLETED, -1, done), 2);
    expect_flags(done, (bool[]){true, true, false}, 3);
    finish(f1, 1);
}

/* Python's wait_for_future1 thread: lets future2 raise once future1 is
 * done. */
static void release_on_done(ppx_future *f, void *arg)
{
    (void)f;
    conf_release((int)(intptr_t)arg);
}

/* WaitTests.test_first_exception: mul finishes, then (its done callback
 * letting it go) the raising call; the third stays blocked. */
static void test_wait__test_first_exception(void **state)
{
    fixture *fx = *state;
    ppx_future *f1;
    assert_int_equal(ppx_pool_submitf(fx->pool, &f1, "mul", "ii", 2, 21), 0);
    ppx_future *f2 = conf_gated(fx->pool, 1, 0, "Exception");
    ppx_future *f3 = conf_gated(fx->pool, 2, 0, "ok");
    assert_int_equal(ppx_future_add_done_callback(f1, release_on_done, (void *)(intptr_t)1), 0);
    ppx_future *fs[] = {f1, f2, f3};
    bool done[3];
    assert_int_equal(ppx_futures_wait(fs, 3, PPX_FIRST_EXCEPTION, -1, done), 2);
    expect_flags(done, (bool[]){true, true, false}, 3);
    assert_int_equal(ppx_future_state(f1), PPX_DONE);
    assert_int_equal(ppx_future_state(f2), PPX_FAILED);
    assert_string_equal(ppx_future_error(f2)->type, "Exception");
    ppx_future_unref(f1);
    ppx_future_unref(f2);
    finish(f3, 2);
}

/* WaitTests.test_first_exception_some_already_complete. The cancelled
 * future does not count as an exception (ppx.h: FIRST_EXCEPTION waits for
 * one that FAILED), as in Python; CANCELLED_FUTURE, which Python leaves
 * pending, is in the done set here (see the file's comment). */
static void test_wait__test_first_exception_some_already_complete(void **state)
{
    fixture *fx = *state;
    ppx_future *f1, *f2 = conf_gated(fx->pool, 1, 0, "ok");
    assert_int_equal(ppx_pool_submitf(fx->pool, &f1, "divmod", "ii", 21, 0), 0);
    ppx_future *fs[] = {fx->ok, fx->cancelled, f1, f2};
    bool done[4];
    assert_int_equal(ppx_futures_wait(fs, 4, PPX_FIRST_EXCEPTION, -1, done), 3);
    expect_flags(done, (bool[]){true, true, true, false}, 4);
    assert_string_equal(ppx_future_error(f1)->type, "ZeroDivisionError");
    ppx_future_unref(f1);
    finish(f2, 1);
}

/* WaitTests.test_first_exception_one_already_failed. */
static void test_wait__test_first_exception_one_already_failed(void **state)
{
    fixture *fx = *state;
    ppx_future *f1 = conf_gated(fx->pool, 1, 0, "ok");
    ppx_future *fs[] = {fx->exc, f1};
    bool done[2];
    assert_int_equal(ppx_futures_wait(fs, 2, PPX_FIRST_EXCEPTION, -1, done), 1);
    expect_flags(done, (bool[]){true, false}, 2);
    finish(f1, 1);
}

/* WaitTests.test_all_completed. */
static void test_wait__test_all_completed(void **state)
{
    fixture *fx = *state;
    ppx_future *f1, *f2;
    assert_int_equal(ppx_pool_submitf(fx->pool, &f1, "divmod", "ii", 2, 0), 0);
    assert_int_equal(ppx_pool_submitf(fx->pool, &f2, "mul", "ii", 2, 21), 0);
    ppx_future *fs[] = {fx->ok, fx->cancelled, fx->exc, f1, f2};
    bool done[5];
    assert_int_equal(ppx_futures_wait(fs, 5, PPX_ALL_COMPLETED, -1, done), 5);
    expect_flags(done, (bool[]){true, true, true, true, true}, 5);
    assert_int_equal(ppx_future_state(f1), PPX_FAILED);
    assert_int_equal(support_future_int(f2), 42);
    ppx_future_unref(f1);
    ppx_future_unref(f2);
}

/* WaitTests.test_timeout: after 50 ms the blocked call is pending, the
 * finished ones done; a timeout is no error (ppx.h, ppx_futures_wait). */
static void test_wait__test_timeout(void **state)
{
    fixture *fx = *state;
    ppx_future *f = conf_gated(fx->pool, 1, 0, "ok");
    ppx_future *fs[] = {fx->cancelled, fx->exc, fx->ok, f};
    bool done[4];
    assert_int_equal(ppx_futures_wait(fs, 4, PPX_ALL_COMPLETED, 50, done), 3);
    expect_flags(done, (bool[]){true, true, true, false}, 4);
    finish(f, 1);
}

/* ---- test_as_completed.py: AsCompletedTests ------------------------------ */

/* Hands back everything it can within timeout_ms each; returns the code
 * that ended it and the number handed back, recorded in got. */
static int drain(ppx_futures_iter *it, int timeout_ms, ppx_future **got, size_t cap, size_t *n)
{
    int rc;
    ppx_future *f;
    *n = 0;
    while ((rc = ppx_futures_as_completed_next(it, timeout_ms, &f)) == 0) {
        assert_true(*n < cap);
        got[(*n)++] = f;
    }
    return rc;
}

/* AsCompletedTests.test_no_timeout: each future once; those finished
 * already come first, in the order given (ppx.h,
 * ppx_futures_as_completed_new). */
static void test_as_completed__test_no_timeout(void **state)
{
    fixture *fx = *state;
    ppx_future *f1, *f2;
    assert_int_equal(ppx_pool_submitf(fx->pool, &f1, "mul", "ii", 2, 21), 0);
    assert_int_equal(ppx_pool_submitf(fx->pool, &f2, "mul", "ii", 7, 6), 0);
    ppx_future *fs[] = {fx->cancelled, fx->exc, fx->ok, f1, f2};
    ppx_futures_iter *it;
    assert_int_equal(ppx_futures_as_completed_new(fs, 5, &it), 0);
    ppx_future *got[8];
    size_t n;
    assert_int_equal(drain(it, -1, got, 8, &n), PPX_EDONE);
    assert_int_equal(n, 5);
    for (size_t i = 0; i < 3; i++)
        assert_ptr_equal(got[i], fs[i]);
    assert_true((got[3] == f1 && got[4] == f2) || (got[3] == f2 && got[4] == f1));
    ppx_futures_as_completed_free(it);
    ppx_future_unref(f1);
    ppx_future_unref(f2);
}

/* AsCompletedTests.test_future_times_out, for timeout 0 and 100 ms: the
 * three finished futures, then PPX_ETIMEDOUT (TimeoutError); the blocked
 * call is never handed back. */
static void test_as_completed__test_future_times_out(void **state)
{
    fixture *fx = *state;
    static const int timeouts[] = {0, 100};
    for (size_t t = 0; t < 2; t++) {
        ppx_future *f = conf_gated(fx->pool, CONF_NEVER, 0, "ok");
        ppx_future *fs[] = {fx->cancelled, fx->exc, fx->ok, f};
        ppx_futures_iter *it;
        assert_int_equal(ppx_futures_as_completed_new(fs, 4, &it), 0);
        ppx_future *got[8];
        size_t n;
        assert_int_equal(drain(it, timeouts[t], got, 8, &n), PPX_ETIMEDOUT);
        assert_int_equal(n, 3);
        for (size_t i = 0; i < 3; i++)
            assert_ptr_equal(got[i], fs[i]);
        ppx_futures_as_completed_free(it);
        assert_int_equal(ppx_future_cancel(f), 0);
        ppx_future_unref(f);
    }
}

/* AsCompletedTests.test_duplicate_futures: one future listed three times
 * is handed back once. */
static void test_as_completed__test_duplicate_futures(void **state)
{
    fixture *fx = *state;
    ppx_future *f = conf_gated(fx->pool, 1, 5, "ok");
    ppx_future *fs[] = {f, f, f};
    ppx_futures_iter *it;
    assert_int_equal(ppx_futures_as_completed_new(fs, 3, &it), 0);
    conf_release(1);
    ppx_future *got[4];
    size_t n;
    assert_int_equal(drain(it, -1, got, 4, &n), PPX_EDONE);
    assert_int_equal(n, 1);
    assert_ptr_equal(got[0], f);
    ppx_futures_as_completed_free(it);
    assert_int_equal(support_future_int(f), 5);
    ppx_future_unref(f);
}

/* AsCompletedTests.test_free_reference_yielded_future. Differs on
 * purpose: Python's generator drops a future once it yielded it; ppx's
 * iterator keeps a reference to each future until _free (ppx.h,
 * ppx_futures_as_completed_new), so a future handed back stays valid
 * while the iterator lives even after the caller's last unref, and is
 * freed by _free (the ASan and valgrind runs check that nothing leaks). */
static void test_as_completed__test_free_reference_yielded_future(void **state)
{
    fixture *fx = *state;
    enum { N = 4 };
    ppx_future *fs[N + 1];
    for (int i = 0; i < N; i++)
        fs[i] = conf_gated(fx->pool, i + 1, 10 + i, "ok");
    ppx_future_ref(fx->ok);
    fs[N] = fx->ok;
    ppx_futures_iter *it;
    assert_int_equal(ppx_futures_as_completed_new(fs, N + 1, &it), 0);
    for (int i = 0; i < N + 1; i++)
        ppx_future_unref(fs[i]); /* the iterator's references remain */
    ppx_future *f;
    assert_int_equal(ppx_futures_as_completed_next(it, 0, &f), 0);
    assert_ptr_equal(f, fx->ok);
    assert_int_equal(ppx_futures_as_completed_next(it, 0, &f), PPX_ETIMEDOUT);
    for (int i = 0; i < N; i++) {
        conf_release(i + 1);
        assert_int_equal(ppx_futures_as_completed_next(it, -1, &f), 0);
        assert_int_equal(support_future_int(f), 10 + i);
    }
    assert_int_equal(ppx_futures_as_completed_next(it, -1, &f), PPX_EDONE);
    ppx_futures_as_completed_free(it);
}

/* AsCompletedTests.test_correct_timeout_exception_msg: of four futures,
 * two unfinished (one queued, one running). ppx's timeout has no message
 * ("2 (of 4) futures unfinished"); the same numbers come from
 * ppx_futures_wait's count, after two handed back and PPX_ETIMEDOUT. */
static void test_as_completed__test_correct_timeout_exception_msg(void **state)
{
    fixture *fx = *state;
    ppx_future *running = conf_gated(fx->pool, 1, 0, "ok");
    conf_wait_started(1);
    ppx_future *pending = conf_gated(fx->pool, 1, 0, "ok");
    ppx_future *fs[] = {fx->cancelled, pending, running, fx->ok};
    ppx_futures_iter *it;
    assert_int_equal(ppx_futures_as_completed_new(fs, 4, &it), 0);
    ppx_future *got[4];
    size_t n;
    assert_int_equal(drain(it, 0, got, 4, &n), PPX_ETIMEDOUT);
    assert_int_equal(n, 2);
    assert_int_equal(4 - ppx_futures_wait(fs, 4, PPX_ALL_COMPLETED, 0, NULL), 2);
    ppx_futures_as_completed_free(it);
    finish(running, 1);
    assert_int_equal(ppx_future_wait(pending, -1), 0);
    ppx_future_unref(pending);
}

/* ---- test_shutdown.py: ExecutorShutdownTest ------------------------------ */

/* Lets the running calls go once the shutdown has cancelled the queue:
 * a done callback of a queued call, run on the shutting-down thread. */
static void release_on_cancel(ppx_future *f, void *arg)
{
    (void)arg;
    if (ppx_future_state(f) == PPX_CANCELLED)
        conf_release(1);
}

/* ExecutorShutdownTest.test_cancel_futures: shutdown(cancel_futures=True)
 * with 50 calls and 2 workers. Python can only bound the numbers (over 20
 * cancelled, at least one finished); here the two running calls are held
 * until the queue has been cancelled, so exactly those two finish (no
 * error) and the 48 others are CANCELLED (ppx.h,
 * PPX_SHUTDOWN_CANCEL_QUEUED). */
static void test_shutdown__test_cancel_futures(void **state)
{
    (void)state;
    enum { N = 50 };
    ppx_pool *p = conf_pool(2, NULL);
    ppx_future *f[N];
    for (int i = 0; i < 2; i++)
        f[i] = conf_gated(p, 1, i, "ok");
    conf_wait_started(2);
    for (int i = 2; i < N; i++)
        f[i] = conf_gated(p, 1, i, "ok");
    assert_int_equal(ppx_future_add_done_callback(f[N - 1], release_on_cancel, NULL), 0);
    assert_int_equal(ppx_pool_shutdown(p, PPX_SHUTDOWN_CANCEL_QUEUED, -1), 0);
    int cancelled = 0;
    for (int i = 0; i < N; i++) {
        assert_true(ppx_future_done(f[i]));
        if (ppx_future_state(f[i]) == PPX_CANCELLED) {
            cancelled++;
        } else {
            assert_null(ppx_future_error(f[i]));
            assert_int_equal(support_future_int(f[i]), i);
        }
        ppx_future_unref(f[i]);
    }
    assert_int_equal(cancelled, N - 2);
    ppx_pool_free(p);
}

/* test_cancel_futures, the pool's later life: submissions are refused
 * after the shutdown, and the workers that ran are still there until the
 * free (the shutdown "does not free the pool"). */
static void test_shutdown__test_cancel_futures__closed(void **state)
{
    (void)state;
    ppx_pool *p = conf_pool(1, NULL);
    ppx_future *q = conf_gated(p, 1, 0, "ok");
    conf_release(1);
    assert_int_equal(ppx_pool_shutdown(p, PPX_SHUTDOWN_CANCEL_QUEUED, -1), 0);
    assert_true(ppx_future_done(q));
    ppx_future *f = NULL;
    assert_int_equal(ppx_pool_submitf(p, &f, "abs", "i", 1), PPX_ECLOSED);
    assert_null(f);
    assert_int_equal(ppx_pool_workers(p), 1);
    ppx_future_unref(q);
    ppx_pool_free(p);
}

/* ---- test_process_pool.py: ProcessPoolExecutorTest ----------------------- */

typedef int (*force_fn)(ppx_pool *);

/* test_force_shutdown_workers (parameterized on _TERMINATE and _KILL; its
 * mock-based siblings test_terminate_workers and test_kill_workers only
 * check that those route to it): a call blocked for good is ended by the
 * signal, never returns ("finished" never put), and fails with
 * WorkerCrashed naming the signal (ppx.h, ppx_pool_terminate_workers); a
 * queued call is cancelled; the worker is gone. */
static void force_shutdown_workers(force_fn fn, const char *sig)
{
    ppx_pool *p = conf_pool(1, NULL);
    ppx_future *f = conf_gated(p, CONF_NEVER, 0, "ok");
    conf_wait_started(1);
    ppx_future *queued = conf_gated(p, 1, 0, "ok");
    long pid = support_worker_pid(p, 0);
    assert_true(pid > 0);
    assert_int_equal(fn(p), 0);
    assert_int_equal(ppx_future_state(queued), PPX_CANCELLED);
    assert_int_equal(ppx_future_wait(f, -1), 0);
    assert_int_equal(ppx_future_state(f), PPX_FAILED);
    assert_string_equal(ppx_future_error(f)->type, "WorkerCrashed");
    assert_non_null(strstr(ppx_future_error(f)->message, sig));
    assert_int_equal(atomic_load(&conf->noticed), 0);
    support_wait_gone(pid, 10000);
    ppx_future_unref(f);
    ppx_future_unref(queued);
    ppx_pool_free(p);
}

static void test_process_pool__test_force_shutdown_workers__terminate(void **state)
{
    (void)state;
    force_shutdown_workers(ppx_pool_terminate_workers, "SIGTERM");
}

static void test_process_pool__test_force_shutdown_workers__kill(void **state)
{
    (void)state;
    force_shutdown_workers(ppx_pool_kill_workers, "SIGKILL");
}

/* test_force_shutdown_workers_dead_workers: after a worker died under a
 * call (BrokenProcessPool in Python, WorkerCrashed here), terminating and
 * killing the workers still succeed. */
static void test_process_pool__test_force_shutdown_workers_dead_workers(void **state)
{
    (void)state;
    static const force_fn fns[] = {ppx_pool_terminate_workers, ppx_pool_kill_workers};
    for (size_t i = 0; i < 2; i++) {
        ppx_pool *p = conf_pool(1, NULL);
        ppx_future *f;
        assert_int_equal(ppx_pool_submitf(p, &f, "crash", "si", "exit", 1), 0);
        assert_int_equal(ppx_future_wait(f, -1), 0);
        assert_string_equal(ppx_future_error(f)->type, "WorkerCrashed");
        assert_int_equal(fns[i](p), 0);
        ppx_future_unref(f);
        ppx_pool_free(p);
    }
}

/* test_force_shutdown_workers_not_started_yet: Python's workers start on
 * demand, so there is nothing to signal. ppx_pool_new starts its workers
 * (ppx.h), so the nearest case is a pool that never ran a call: both
 * calls succeed, and its idle worker is gone. */
static void test_process_pool__test_force_shutdown_workers_not_started_yet(void **state)
{
    (void)state;
    static const force_fn fns[] = {ppx_pool_terminate_workers, ppx_pool_kill_workers};
    for (size_t i = 0; i < 2; i++) {
        ppx_pool *p = conf_pool(1, NULL);
        long pid = support_worker_pid(p, 0);
        assert_int_equal(fns[i](p), 0);
        support_wait_gone(pid, 10000);
        ppx_pool_free(p);
    }
}

/* test_force_shutdown_workers_stops_pool: after a call succeeded, the
 * workers are signalled; submit raises RuntimeError (PPX_ECLOSED) and the
 * worker process dies. */
static void test_process_pool__test_force_shutdown_workers_stops_pool(void **state)
{
    (void)state;
    static const force_fn fns[] = {ppx_pool_terminate_workers, ppx_pool_kill_workers};
    for (size_t i = 0; i < 2; i++) {
        ppx_pool *p = conf_pool(1, NULL);
        ppx_future *f;
        assert_int_equal(ppx_pool_submitf(p, &f, "abs", "i", 0), 0);
        assert_int_equal(support_future_int(f), 0);
        ppx_future_unref(f);
        long pid = support_worker_pid(p, 0);
        assert_int_equal(fns[i](p), 0);
        f = NULL;
        assert_int_equal(ppx_pool_submitf(p, &f, "abs", "i", 0), PPX_ECLOSED);
        assert_null(f);
        support_wait_gone(pid, 10000);
        ppx_pool_free(p);
    }
}

int main(void)
{
    conf_register();
#define T(name) cmocka_unit_test_setup_teardown(name, setup, teardown)
#define B(name) cmocka_unit_test_setup_teardown(name, setup_bare, teardown_bare)
    const struct CMUnitTest tests[] = {
        T(test_wait__test_20369),
        T(test_wait__test_first_completed),
        T(test_wait__test_first_completed__cancelled),
        T(test_wait__test_first_completed_some_already_completed),
        T(test_wait__test_first_exception),
        T(test_wait__test_first_exception_some_already_complete),
        T(test_wait__test_first_exception_one_already_failed),
        T(test_wait__test_all_completed),
        T(test_wait__test_timeout),
        T(test_as_completed__test_no_timeout),
        T(test_as_completed__test_future_times_out),
        T(test_as_completed__test_duplicate_futures),
        T(test_as_completed__test_free_reference_yielded_future),
        T(test_as_completed__test_correct_timeout_exception_msg),
        B(test_shutdown__test_cancel_futures),
        B(test_shutdown__test_cancel_futures__closed),
        B(test_process_pool__test_force_shutdown_workers__terminate),
        B(test_process_pool__test_force_shutdown_workers__kill),
        B(test_process_pool__test_force_shutdown_workers_dead_workers),
        B(test_process_pool__test_force_shutdown_workers_not_started_yet),
        B(test_process_pool__test_force_shutdown_workers_stops_pool),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
