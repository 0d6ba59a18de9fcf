/*
 * Conformance with CPython's concurrent.futures tests: the process pool
 * (Lib/test/test_concurrent_futures/test_process_pool.py,
 * ProcessPoolExecutorTest) and its deadlock cases (test_deadlock.py,
 * ExecutorDeadlockTest), ported to ppx's blocking API with real forked
 * workers. The executor's own tests (executor.py, ExecutorTest) are in
 * test_conformance_executor.c.
 *
 * Naming: each test is <file>__<method>[__<variant>], where <file> is the
 * CPython test module without ".py" and <method> the CPython test method
 * (its class is named in the comment above the test); a __<variant>
 * suffix marks one CPython test split into several here. So
 * test_process_pool__test_killed_child is
 * ProcessPoolExecutorTest.test_killed_child in test_process_pool.py.
 *
 * The two deliberate differences met most here (docs/FAILURE_MODEL.md,
 * "Errors a future can carry" and "Crashes, storms and replacements"):
 * a worker that dies fails only the call it ran, with WorkerCrashed, and
 * the pool forks a replacement, where Python's pool becomes
 * BrokenProcessPool for every call; and values are msgpack, so nothing of
 * the caller's code runs while arguments and results are encoded or
 * decoded (no pickling errors, crashes or exits there).
 */
#include "conformance.h"
#include "support.h"

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <uv.h>

typedef conf_fixture fixture;

static int setup(void **state)
{
    return conf_setup_pool(state, 2);
}

static int teardown(void **state)
{
    return conf_teardown(state);
}

/* ---- test_process_pool.py: ProcessPoolExecutorTest --------------------- */

/* ProcessPoolExecutorTest.test_killed_child. Differs on purpose: the
 * call of the killed worker fails with WorkerCrashed and the pool forks a
 * replacement, so the next submission works (Python: BrokenProcessPool for
 * the call and every submission after; docs/FAILURE_MODEL.md, "Crashes,
 * storms and replacements"). */
static void test_process_pool__test_killed_child(void **state)
{
    fixture *fx = *state;
    ppx_pool *p = conf_pool(1, NULL);
    ppx_future *f = conf_gated(p, CONF_NEVER, 0, "ok");
    support_wait_running(f);
    kill((pid_t)support_worker_pid(p, 0), SIGTERM);
    conf_expect_error(f, "WorkerCrashed");
    conf_expect_message(f, "SIGTERM");
    ppx_future *g;
    assert_int_equal(ppx_pool_submitf(p, &g, "pow", "ii", 2, 8), 0);
    assert_int_equal(support_future_int(g), 256);
    ppx_future_unref(f);
    ppx_future_unref(g);
    ppx_pool_free(p);
    (void)fx;
}

/* ProcessPoolExecutorTest.test_broken_process_pool_traceback: each failed
 * future has its own error. Differs on purpose (as test_killed_child):
 * of three calls running on three workers, only the killed worker's call
 * fails, its error naming that worker; the two others run on and finish. */
static void test_process_pool__test_broken_process_pool_traceback(void **state)
{
    (void)state;
    ppx_pool *p = conf_pool(3, NULL);
    ppx_future *f[3];
    for (int i = 0; i < 3; i++)
        f[i] = conf_gated(p, 1, i, "ok");
    for (int i = 0; i < 3; i++)
        support_wait_running(f[i]);
    long victim = support_worker_pid(p, 0);
    kill((pid_t)victim, SIGTERM);
    int crashed = -1;
    while (crashed < 0) {
        for (int i = 0; i < 3; i++)
            if (ppx_future_wait(f[i], 1) == 0)
                crashed = i;
    }
    conf_expect_error(f[crashed], "WorkerCrashed");
    assert_int_equal(ppx_future_error(f[crashed])->pid, victim);
    conf_release(1);
    for (int i = 0; i < 3; i++) {
        if (i != crashed)
            assert_int_equal(support_future_int(f[i]), i);
        ppx_future_unref(f[i]);
    }
    ppx_pool_free(p);
}

/* ProcessPoolExecutorTest.test_map_chunksize: map(pow, range(40),
 * range(40), chunksize=6, 50, 40) gives map's result. ppx's chunked map
 * is ppx_run_in_executor_map, on a loop. Does not apply: chunksize=-1
 * (ValueError) -- chunk_size is a size_t, and 0 means "about four chunks
 * per worker". */
static void test_process_pool__test_map_chunksize(void **state)
{
    fixture *fx = *state;
    int r[40];
    for (int i = 0; i < 40; i++)
        r[i] = i;
    size_t len;
    void *items = conf_pairs(r, r, 40, &len);
    char want[2048], text[2048];
    conf_pow_text(40, want, sizeof want);
    uv_loop_t loop;
    uv_loop_init(&loop);
    size_t sizes[] = {6, 50, 40, 0};
    for (size_t k = 0; k < 4; k++) {
        ppx_awaitable *aw;
        assert_int_equal(ppx_run_in_executor_map(&loop, fx->pool, "pow", items, len, sizes[k], &aw), 0);
        assert_int_equal(ppx_run_until_complete(&loop, aw), 0);
        ppx_value v;
        assert_int_equal(ppx_awaitable_value(aw, &v), 0);
        ppx_value_format(v, text, sizeof text);
        assert_string_equal(text, want);
        ppx_awaitable_unref(aw);
    }
    ppx_pool_free(fx->pool);
    fx->pool = conf_pool(1, NULL);
    uv_run(&loop, UV_RUN_DEFAULT);
    assert_int_equal(uv_loop_close(&loop), 0);
    free(items);
}

/* ProcessPoolExecutorTest.test_traceback: the error raised in the worker
 * reaches the caller with its type and message, and where it was raised
 * ("file.c:line", the C counterpart of the remote traceback). */
static void test_process_pool__test_traceback(void **state)
{
    fixture *fx = *state;
    ppx_future *f;
    assert_int_equal(ppx_pool_submitf(fx->pool, &f, "raise", "ss", "RuntimeError", "123"), 0);
    conf_expect_error(f, "RuntimeError");
    const ppx_error *e = ppx_future_error(f);
    assert_string_equal(e->message, "123");
    assert_string_equal(e->function, "raise");
    assert_non_null(strstr(e->where, "conformance.c:"));
    assert_true(e->pid > 0);
    ppx_future_unref(f);
}

/* ProcessPoolExecutorTest.test_traceback_when_child_process_terminates_
 * abruptly: os._exit(99). The error says "exited with status 99"; it is
 * WorkerCrashed where Python has BrokenProcessPool (differs on purpose,
 * docs/FAILURE_MODEL.md). */
static void test_process_pool__test_traceback_when_child_process_terminates_abruptly(void **state)
{
    (void)state;
    ppx_pool *p = conf_pool(1, NULL);
    ppx_future *f;
    assert_int_equal(ppx_pool_submitf(p, &f, "crash", "si", "exit", 99), 0);
    conf_expect_error(f, "WorkerCrashed");
    conf_expect_message(f, "exited with status 99");
    ppx_future_unref(f);
    ppx_pool_free(p);
}

/* ProcessPoolExecutorTest.test_saturation: 15 calls per worker blocked
 * on a semaphore use the pool's workers, no more; then all finish. */
static void test_process_pool__test_saturation(void **state)
{
    fixture *fx = *state;
    enum { N = 30 };
    ppx_future *f[N];
    for (int i = 0; i < N; i++)
        f[i] = conf_gated(fx->pool, 1, i, "ok");
    conf_wait_started(2);
    assert_int_equal(ppx_pool_workers(fx->pool), 2);
    long a = support_worker_pid(fx->pool, 0), b = support_worker_pid(fx->pool, 1);
    assert_true(a > 0 && b > 0 && a != b);
    conf_release(1);
    for (int i = 0; i < N; i++) {
        assert_int_equal(support_future_int(f[i]), i);
        ppx_future_unref(f[i]);
    }
}

/* ProcessPoolExecutorTest.test_max_tasks_per_child. Differs on purpose:
 * Python refuses max_tasks_per_child with the fork start method
 * (ValueError); ppx forks replacements from its fork server, not from the
 * application (docs/FAILURE_MODEL.md, "Where workers come from"), and
 * allows it. */
static void test_process_pool__test_max_tasks_per_child(void **state)
{
    (void)state;
    ppx_pool_options o = PPX_POOL_OPTIONS(.max_tasks_per_child = 3);
    ppx_pool *p = conf_pool(1, &o);
    int64_t pid[4];
    for (int i = 0; i < 4; i++) {
        ppx_future *f;
        assert_int_equal(ppx_pool_submitf(p, &f, "getpid", ""), 0);
        pid[i] = support_future_int(f);
        ppx_future_unref(f);
    }
    assert_int_equal(pid[1], pid[0]);
    assert_int_equal(pid[2], pid[0]);
    assert_int_not_equal(pid[3], pid[0]);
    assert_int_equal(ppx_pool_workers(p), 1);
    ppx_pool_free(p);
}

/* ProcessPoolExecutorTest.test_max_tasks_per_child_pending_tasks_gh115634:
 * a backlog of calls while workers retire at their limit all complete. */
static void test_process_pool__test_max_tasks_per_child_pending_tasks_gh115634(void **state)
{
    (void)state;
    const int cases[2][3] = {{1, 2, 6}, {2, 2, 8}};
    for (int c = 0; c < 2; c++) {
        ppx_pool_options o = PPX_POOL_OPTIONS(.max_tasks_per_child = (unsigned)cases[c][1]);
        ppx_pool *p = conf_pool(cases[c][0], &o);
        ppx_future *f[8];
        for (int i = 0; i < cases[c][2]; i++)
            assert_int_equal(ppx_pool_submitf(p, &f[i], "mul", "ii", i, 2), 0);
        for (int i = 0; i < cases[c][2]; i++) {
            assert_int_equal(support_future_int(f[i]), 2 * i);
            ppx_future_unref(f[i]);
        }
        ppx_pool_free(p);
    }
}

/* ProcessPoolExecutorTest.test_shutdown_no_wait_max_tasks_gh119592, the
 * drop_reference=False case: one worker retiring after each call, the
 * first call running when shutdown(wait=False) comes; the worker is still
 * replaced and the queued calls run. (drop_reference=True has no C
 * counterpart: a pool is only freed explicitly, and ppx_pool_free cancels
 * what is left.) */
static void test_process_pool__test_shutdown_no_wait_max_tasks_gh119592(void **state)
{
    (void)state;
    ppx_pool_options o = PPX_POOL_OPTIONS(.max_tasks_per_child = 1);
    ppx_pool *p = conf_pool(1, &o);
    ppx_future *f[3];
    for (int i = 0; i < 3; i++)
        f[i] = conf_gated(p, 1, i, "ok");
    conf_wait_started(1);
    assert_int_equal(ppx_pool_shutdown(p, PPX_SHUTDOWN_WAIT, 0), PPX_ETIMEDOUT);
    conf_release(1);
    for (int i = 0; i < 3; i++) {
        assert_int_equal(support_future_int(f[i]), i);
        ppx_future_unref(f[i]);
    }
    ppx_pool_free(p);
}

/* ProcessPoolExecutorTest.test_max_tasks_early_shutdown: 3 workers, one
 * call each before retiring, 6 calls, then shutdown(wait=True). */
static void test_process_pool__test_max_tasks_early_shutdown(void **state)
{
    (void)state;
    ppx_pool_options o = PPX_POOL_OPTIONS(.max_tasks_per_child = 1);
    ppx_pool *p = conf_pool(3, &o);
    ppx_future *f[6];
    for (int i = 0; i < 6; i++)
        assert_int_equal(ppx_pool_submitf(p, &f[i], "mul", "ii", i, i), 0);
    assert_int_equal(ppx_pool_shutdown(p, PPX_SHUTDOWN_WAIT, -1), 0);
    for (int i = 0; i < 6; i++) {
        assert_int_equal(support_future_int(f[i]), i * i);
        ppx_future_unref(f[i]);
    }
    ppx_pool_free(p);
}

/* ProcessPoolExecutorTest.test_force_shutdown_during_max_tasks_worker_exit:
 * one worker that retires after each call, three calls; the first is
 * running when the pool is force-shut down, then returns, and its
 * worker retires. Python sets its private _force_shutting_down flag
 * without signalling; the ppx counterpart is ppx_pool_terminate_workers,
 * whose SIGTERM the running function ignores (ppx.h: it "may finish its
 * task instead"), so that the worker retires at its limit while the
 * pool is shutting down. As in Python, the first call's value is
 * delivered and the retiring worker is not replaced (a replacement would
 * escape the signal). Differs: the queued calls resolve CANCELLED when
 * the workers are terminated (ppx.h, ppx_pool_terminate_workers: as
 * PPX_SHUTDOWN_CANCEL_QUEUED), where Python fails them with
 * BrokenProcessPool "forcefully shut down". */
static void test_process_pool__test_force_shutdown_during_max_tasks_worker_exit(void **state)
{
    (void)state;
    ppx_pool_options o = PPX_POOL_OPTIONS(.max_tasks_per_child = 1);
    ppx_pool *p = conf_pool(1, &o);
    ppx_future *f[3];
    for (int i = 0; i < 3; i++)
        assert_int_equal(ppx_pool_submitf(p, &f[i], "gated_term_ignored", "ii", 1, i), 0);
    conf_wait_started(1); /* started.get() == 0: the first call runs */
    long pid = support_worker_pid(p, 0);
    assert_true(pid > 0);
    assert_int_equal(ppx_pool_terminate_workers(p), 0);
    for (int i = 1; i < 3; i++) {
        assert_int_equal(ppx_future_state(f[i]), PPX_CANCELLED);
        assert_string_equal(ppx_future_error(f[i])->type, "CancelledError");
    }
    conf_release(1); /* gate.set() */
    assert_int_equal(support_future_int(f[0]), 0);
    /* The worker retires at its limit; once the pool has reaped it the
     * slot stays empty: no respawn was asked for, none is under way. */
    support_wait_gone(pid, 20000);
    ppx_worker_stats ws = PPX_WORKER_STATS_INIT;
    int64_t end = support_now_ms() + 20000;
    do {
        assert_true(support_now_ms() < end);
        ppx_pool_process(p);
        assert_int_equal(ppx_pool_worker_stats(p, 0, &ws), 0);
    } while (ws.alive);
    assert_false(ppx_pool_busy(p));
    assert_int_equal(ppx_pool_worker_pid(p, 0), 0);
    ppx_pool_stats st = PPX_POOL_STATS_INIT;
    assert_int_equal(ppx_pool_stats_get(p, &st), 0);
    assert_int_equal(st.respawns, 0);
    assert_int_equal(st.completed, 1);
    assert_int_equal(st.cancelled, 2);
    assert_int_equal(atomic_load(&conf->started), 1); /* the queued calls never ran */
    for (int i = 0; i < 3; i++)
        ppx_future_unref(f[i]);
    ppx_pool_free(p);
}

/* ---- test_deadlock.py: ExecutorDeadlockTest ----------------------------- */

/* A crash must not hang: the call fails, the pool goes on (one more call
 * works). Differs on purpose: WorkerCrashed for BrokenProcessPool, and
 * the pool heals (docs/FAILURE_MODEL.md). */
static void check_pool_goes_on(ppx_pool *p)
{
    ppx_future *g;
    assert_int_equal(ppx_pool_submitf(p, &g, "mul", "ii", 6, 7), 0);
    assert_int_equal(support_future_int(g), 42);
    ppx_future_unref(g);
}

/* ExecutorDeadlockTest.test_error_at_task_pickle. Arguments are msgpack:
 * what cannot be encoded is refused by the submission itself
 * (PPX_EMALFORMED), before any worker sees it. */
static void test_deadlock__test_error_at_task_pickle(void **state)
{
    fixture *fx = *state;
    ppx_future *f = NULL;
    assert_int_equal(ppx_pool_submit(fx->pool, "first_arg", "\x91\xc1", 2, &f), PPX_EMALFORMED);
    assert_null(f);
    check_pool_goes_on(fx->pool);
}

/* ExecutorDeadlockTest.test_crash_during_func_exec_on_worker: SIGSEGV. */
static void test_deadlock__test_crash_during_func_exec_on_worker(void **state)
{
    fixture *fx = *state;
    ppx_future *f;
    assert_int_equal(ppx_pool_submitf(fx->pool, &f, "crash", "si", "segv", 0), 0);
    conf_expect_error(f, "WorkerCrashed");
    conf_expect_message(f, "SIGSEGV");
    check_pool_goes_on(fx->pool);
    ppx_future_unref(f);
}

/* ExecutorDeadlockTest.test_exit_during_func_exec_on_worker: sys.exit(1).
 * Differs: C has no SystemExit to catch; the worker process ends, so the
 * call fails with WorkerCrashed "exited with status 1" and the worker is
 * replaced. */
static void test_deadlock__test_exit_during_func_exec_on_worker(void **state)
{
    fixture *fx = *state;
    ppx_future *f;
    assert_int_equal(ppx_pool_submitf(fx->pool, &f, "crash", "si", "exit", 1), 0);
    conf_expect_error(f, "WorkerCrashed");
    conf_expect_message(f, "exited with status 1");
    check_pool_goes_on(fx->pool);
    ppx_future_unref(f);
}

/* ExecutorDeadlockTest.test_error_during_func_exec_on_worker. */
static void test_deadlock__test_error_during_func_exec_on_worker(void **state)
{
    fixture *fx = *state;
    ppx_future *f;
    assert_int_equal(ppx_pool_submitf(fx->pool, &f, "raise", "ss", "RuntimeError", ""), 0);
    conf_expect_error(f, "RuntimeError");
    check_pool_goes_on(fx->pool);
    ppx_future_unref(f);
}

/* ExecutorDeadlockTest.test_shutdown_deadlock: a worker that crashes
 * after shutdown(wait=True) has begun does not hang it. The pool is
 * closed first (shutdown with timeout 0), then the call is let crash,
 * then shutdown waits. Differs: WorkerCrashed, not BrokenProcessPool. */
static void test_deadlock__test_shutdown_deadlock(void **state)
{
    fixture *fx = *state;
    ppx_future *f;
    assert_int_equal(ppx_pool_submitf(fx->pool, &f, "gated_crash", "i", 1), 0);
    assert_int_equal(ppx_pool_shutdown(fx->pool, PPX_SHUTDOWN_WAIT, 0), PPX_ETIMEDOUT);
    conf_release(1);
    assert_int_equal(ppx_pool_shutdown(fx->pool, PPX_SHUTDOWN_WAIT, -1), 0);
    conf_expect_error(f, "WorkerCrashed");
    ppx_future_unref(f);
}

/* ExecutorDeadlockTest.test_crash_big_data: a crash while big arguments
 * are in flight gives a clean error, not a deadlock: a batch of ten calls
 * whose arguments are 256 KiB strings, the first of which crashes.
 * Differs: the batch fails with WorkerCrashed; the pool goes on. */
static void test_deadlock__test_crash_big_data(void **state)
{
    fixture *fx = *state;
    enum { N = 10, SZ = 256 << 10 };
    size_t len = 1 + N * (1 + 5 + 1 + 4 + SZ);
    char *items = malloc(len), *q = items;
    *q++ = (char)(0x90 | N);
    for (int i = 0; i < N; i++) {
        *q++ = (char)0x92; /* ["segv", "aaa..."]: crash ignores the rest */
        memcpy(q, "\xa4segv", 5);
        q += 5;
        *q++ = (char)0xdb;
        for (int s = 24; s >= 0; s -= 8)
            *q++ = (char)((unsigned)SZ >> s);
        memset(q, 'a', SZ);
        q += SZ;
    }
    ppx_future *f;
    assert_int_equal(ppx_pool_map(fx->pool, "crash", items, (size_t)(q - items), NULL, &f), 0);
    conf_expect_error(f, "WorkerCrashed");
    check_pool_goes_on(fx->pool);
    ppx_future_unref(f);
    assert_int_equal((size_t)(q - items), len);
    free(items);
}

/* ExecutorDeadlockTest.test_gh105829_should_not_deadlock_if_wakeup_pipe_
 * full: 100 calls submitted at once, far more than the workers' rings
 * take (one call each here), all complete. */
static void test_deadlock__test_gh105829_should_not_deadlock_if_wakeup_pipe_full(void **state)
{
    (void)state;
    ppx_pool_options o = PPX_POOL_OPTIONS(.max_queued_per_worker = 1);
    ppx_pool *p = conf_pool(2, &o);
    enum { N = 100 };
    ppx_future *f[N];
    for (int i = 0; i < N; i++)
        assert_int_equal(ppx_pool_submitf(p, &f[i], "abs", "i", i), 0);
    for (int i = 0; i < N; i++) {
        assert_int_equal(support_future_int(f[i]), i);
        ppx_future_unref(f[i]);
    }
    ppx_pool_free(p);
}

int main(void)
{
    conf_register();
#define T(name) cmocka_unit_test_setup_teardown(name, setup, teardown)
    const struct CMUnitTest tests[] = {
        T(test_process_pool__test_killed_child),
        T(test_process_pool__test_broken_process_pool_traceback),
        T(test_process_pool__test_map_chunksize),
        T(test_process_pool__test_traceback),
        T(test_process_pool__test_traceback_when_child_process_terminates_abruptly),
        T(test_process_pool__test_saturation),
        T(test_process_pool__test_max_tasks_per_child),
        T(test_process_pool__test_max_tasks_per_child_pending_tasks_gh115634),
        T(test_process_pool__test_shutdown_no_wait_max_tasks_gh119592),
        T(test_process_pool__test_max_tasks_early_shutdown),
        T(test_process_pool__test_force_shutdown_during_max_tasks_worker_exit),
        T(test_deadlock__test_error_at_task_pickle),
        T(test_deadlock__test_crash_during_func_exec_on_worker),
        T(test_deadlock__test_exit_during_func_exec_on_worker),
        T(test_deadlock__test_error_during_func_exec_on_worker),
        T(test_deadlock__test_shutdown_deadlock),
        T(test_deadlock__test_crash_big_data),
        T(test_deadlock__test_gh105829_should_not_deadlock_if_wakeup_pipe_full),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
