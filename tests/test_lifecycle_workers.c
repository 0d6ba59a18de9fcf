/* A pool that survives its workers: crash storms, deadlines, initializers
 * and recycling. */
#include "support.h"
#include "lifecycle_support.h"
#include "ppx.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#include <uv.h>

static int init_ok(char *err, size_t errlen, void *arg)
{
    worker_init_value = *(int *)arg;
    atomic_fetch_add(&sc->inits, 1);
    return 0;
}

static int init_fails(char *err, size_t errlen, void *arg)
{
    snprintf(err, errlen, "no license for %s", (const char *)arg);
    return -1;
}

static int init_fails_later(char *err, size_t errlen, void *arg)
{
    if (atomic_fetch_add(&sc->inits, 1) >= atomic_load(&sc->init_fail_after)) {
        snprintf(err, errlen, "database unreachable");
        return 1;
    }
    return 0;
}

/* ---- crash storms ------------------------------------------------------ */

static void test_function_crashing_every_worker_backs_off_and_says_so(void **state)
{
    ppx_pool *p = new_pool(PPX_POOL_OPTIONS(.workers = 2));
    enum { N = 8 };
    ppx_future *f[N];
    for (int i = 0; i < N; i++)
        assert_int_equal(ppx_pool_submitf(p, &f[i], "crash", ""), 0);
    int backed_off = 0;
    for (int i = 0; i < N; i++) {
        assert_int_equal(ppx_future_wait(f[i], 30000), 0);
        const ppx_error *e = ppx_future_error(f[i]);
        assert_string_equal(e->type, "WorkerCrashed");
        assert_non_null(strstr(e->message, "SIGSEGV"));
        backed_off += strstr(e->message, "the pool waits") != NULL;
        ppx_future_unref(f[i]);
    }
    assert_true(backed_off >= N - 2);
    ppx_pool_stats st = PPX_POOL_STATS_INIT;
    ppx_pool_stats_get(p, &st);
    assert_int_equal(st.crash_streak, N);
    /* The pool is still there, and a call that returns ends the streak. */
    assert_int_equal(call_int(p, "pid") > 0, 1);
    ppx_pool_stats_get(p, &st);
    assert_int_equal(st.crash_streak, 0);
    ppx_pool_free(p);
}

/* ---- deadlines --------------------------------------------------------- */

static void test_task_past_its_deadline_fails_and_its_worker_is_stopped(void **state)
{
    ppx_pool *p = new_pool(PPX_POOL_OPTIONS(.workers = 1, .cancel_grace_ms = 20));
    long pid = support_worker_pid(p, 0);
    ppx_future *f;
    /* Long enough for the call to start first on a loaded machine (or
     * under valgrind): a call still queued at its deadline is dropped,
     * not killed, which is the other test below. */
    assert_int_equal(ppx_pool_submit_ex(p, "spin_forever", NULL, 0,
                                        &PPX_CALL_OPTIONS(.timeout_ms = 500), &f), 0);
    support_wait_running(f);
    assert_int_equal(ppx_future_wait(f, 20000), 0);
    const ppx_error *e = ppx_future_error(f);
    assert_string_equal(e->type, "TimeoutError");
    assert_non_null(strstr(e->message, "500 ms"));
    support_drain(p, 20000);
    ppx_pool_stats st = PPX_POOL_STATS_INIT;
    ppx_pool_stats_get(p, &st);
    assert_int_equal(st.timed_out, 1);
    assert_int_equal(st.killed, 1);
    assert_int_equal(st.crashed, 0);
    assert_true(ppx_pool_worker_pid(p, 0) != pid);
    assert_true(call_int(p, "pid") > 0);
    ppx_future_unref(f);
    ppx_pool_free(p);
}

static void test_queued_task_past_its_deadline_never_runs(void **state)
{
    ppx_pool *p = new_pool(PPX_POOL_OPTIONS(.workers = 1));
    atomic_store(&sc->marks, 0);
    ppx_future *busy, *f;
    assert_int_equal(ppx_pool_submitf(p, &busy, "wait_cancel", ""), 0);
    support_wait_running(busy);
    assert_int_equal(ppx_pool_submit_ex(p, "mark", NULL, 0,
                                        &PPX_CALL_OPTIONS(.timeout_ms = 30), &f), 0);
    assert_int_equal(ppx_future_wait(f, 20000), 0);
    assert_string_equal(ppx_future_error(f)->type, "TimeoutError");
    ppx_future_cancel(busy);
    support_drain(p, 20000);
    assert_int_equal(atomic_load(&sc->marks), 0);
    ppx_future_unref(busy);
    ppx_future_unref(f);
    ppx_pool_free(p);
}

static void test_pool_default_deadline_applies_unless_a_call_opts_out(void **state)
{
    ppx_pool *p = new_pool(PPX_POOL_OPTIONS(.workers = 2, .task_timeout_ms = 40));
    ppx_future *timed, *free_running;
    assert_int_equal(ppx_pool_submitf(p, &timed, "wait_cancel", ""), 0);
    assert_int_equal(ppx_pool_submit_ex(p, "wait_cancel", NULL, 0,
                                        &PPX_CALL_OPTIONS(.timeout_ms = -1), &free_running), 0);
    assert_int_equal(ppx_future_wait(timed, 20000), 0);
    assert_string_equal(ppx_future_error(timed)->type, "TimeoutError");
    /* Waiting with a timeout is not a deadline: this one keeps running. */
    assert_int_equal(ppx_future_wait(free_running, 100), PPX_ETIMEDOUT);
    assert_false(ppx_future_done(free_running));
    ppx_future_cancel(free_running);
    ppx_future_unref(timed);
    ppx_future_unref(free_running);
    ppx_pool_free(p);
}

/* ---- lifecycle options -------------------------------------------------- */

static void test_initializer_runs_once_in_each_worker_before_its_calls(void **state)
{
    atomic_store(&sc->inits, 0);
    int value = 77;
    ppx_pool *p = new_pool(PPX_POOL_OPTIONS(.workers = 2, .initializer = init_ok,
                                              .initializer_arg = &value));
    assert_int_equal(atomic_load(&sc->inits), 2);
    for (int i = 0; i < 10; i++)
        assert_int_equal(call_int(p, "init_value"), 77);
    assert_int_equal(atomic_load(&sc->inits), 2);
    ppx_pool_free(p);
}

static void test_failing_initializer_fails_pool_creation_with_its_message(void **state)
{
    ppx_pool *p = NULL;
    int fds = support_open_fds();
    ppx_pool_options o = PPX_POOL_OPTIONS(.workers = 2, .initializer = init_fails, .initializer_arg = "ppx");
    support_valgrind_sizes(&o);
    assert_int_equal(ppx_pool_new(&o, &p), PPX_EINIT);
    assert_null(p);
    assert_non_null(strstr(ppx_last_error(), "no license for ppx"));
    assert_int_equal(support_open_fds(), fds);
}

static void test_initializer_failing_on_respawn_fails_queued_calls_clearly(void **state)
{
    atomic_store(&sc->inits, 0);
    atomic_store(&sc->init_fail_after, 1); /* the first worker starts, no other */
    ppx_pool *p = new_pool(PPX_POOL_OPTIONS(.workers = 1, .initializer = init_fails_later));
    ppx_future *bad, *queued;
    assert_int_equal(ppx_pool_submitf(p, &bad, "crash", ""), 0);
    assert_int_equal(ppx_pool_submitf(p, &queued, "add", "ii", 1, 2), 0);
    assert_int_equal(ppx_future_wait(bad, 20000), 0);
    assert_string_equal(ppx_future_error(bad)->type, "WorkerCrashed");
    assert_int_equal(ppx_future_wait(queued, 20000), 0);
    assert_string_equal(ppx_future_error(queued)->type, "InitializerError");
    assert_non_null(strstr(ppx_future_error(queued)->message, "database unreachable"));
    ppx_pool_stats st = PPX_POOL_STATS_INIT;
    ppx_pool_stats_get(p, &st);
    assert_true(st.init_failures >= 1);
    ppx_future_unref(bad);
    ppx_future_unref(queued);
    ppx_pool_free(p);
}

static void test_workers_are_replaced_after_max_tasks_per_child(void **state)
{
    ppx_pool *p = new_pool(PPX_POOL_OPTIONS(.workers = 1, .max_tasks_per_child = 5));
    long pids[20];
    int distinct = 0;
    for (int i = 0; i < 20; i++) {
        pids[i] = (long)call_int(p, "pid");
        distinct += i == 0 || pids[i] != pids[i - 1];
        if (i % 5)
            assert_int_equal(pids[i], pids[i - 1]);
    }
    assert_int_equal(distinct, 4);
    /* The fourth worker retires after its last reply: wait to hear it. */
    ppx_pool_stats st = PPX_POOL_STATS_INIT;
    int64_t end = support_now_ms() + 20000;
    do {
        struct pollfd pf = {ppx_pool_fd(p), POLLIN, 0};
        poll(&pf, 1, 20);
        ppx_pool_process(p);
        ppx_pool_stats_get(p, &st);
    } while (st.recycled < 4 && support_now_ms() < end);
    assert_int_equal(st.recycled, 4);
    assert_int_equal(st.crashed, 0);
    ppx_pool_free(p);
}

static void test_worker_over_its_memory_limit_is_replaced_between_calls(void **state)
{
    if (under_valgrind())
        skip();
    ppx_pool *p = new_pool(PPX_POOL_OPTIONS(.workers = 1, .max_rss_bytes = 32u << 20));
    long before = (long)call_int(p, "pid");
    assert_int_equal(call_int(p, "grow"), 1);
    long after = (long)call_int(p, "pid");
    assert_true(after != before);
    assert_true(call_int(p, "pid") == after); /* a lean worker stays */
    ppx_pool_stats st = PPX_POOL_STATS_INIT;
    ppx_pool_stats_get(p, &st);
    assert_int_equal(st.recycled, 1);
    ppx_pool_free(p);
}

int main(void)
{
    lifecycle_support_register();

    const struct CMUnitTest tests[] = {
        cmocka_unit_test_teardown(test_function_crashing_every_worker_backs_off_and_says_so, teardown),
        cmocka_unit_test_teardown(test_task_past_its_deadline_fails_and_its_worker_is_stopped, teardown),
        cmocka_unit_test_teardown(test_queued_task_past_its_deadline_never_runs, teardown),
        cmocka_unit_test_teardown(test_pool_default_deadline_applies_unless_a_call_opts_out, teardown),
        cmocka_unit_test_teardown(test_initializer_runs_once_in_each_worker_before_its_calls, teardown),
        cmocka_unit_test_teardown(test_failing_initializer_fails_pool_creation_with_its_message, teardown),
        cmocka_unit_test_teardown(test_initializer_failing_on_respawn_fails_queued_calls_clearly, teardown),
        cmocka_unit_test_teardown(test_workers_are_replaced_after_max_tasks_per_child, teardown),
        cmocka_unit_test_teardown(test_worker_over_its_memory_limit_is_replaced_between_calls, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
