/* End-to-end tests of the process pool with real forked workers, through
 * the blocking API only (no libuv): cancelled tasks and crashed workers. */
#include "support.h"
#include "procpool_support.h"
#include "ppx.h"

#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

/* ---- cancellation ----------------------------------------------------- */

/* Grace long enough that a task polling the flag never gets killed. */
static const ppx_pool_options patient = PPX_POOL_OPTIONS(.cancel_grace_ms = 5000);

static void test_cancelled_pending_task_never_runs(void **state)
{
    ppx_pool *p = new_pool(1, &patient);
    atomic_store(marks, 0);
    ppx_future *busy, *pending;
    assert_int_equal(ppx_pool_submitf(p, &busy, "wait_cancel", ""), 0);
    support_wait_running(busy);
    assert_int_equal(ppx_pool_submitf(p, &pending, "mark", ""), 0);
    assert_int_equal(ppx_future_state(pending), PPX_PENDING);
    assert_int_equal(ppx_future_cancel(pending), 0);
    assert_int_equal(ppx_future_state(pending), PPX_CANCELLED);
    assert_string_equal(ppx_future_error(pending)->type, "CancelledError");
    assert_int_equal(ppx_future_cancel(pending), PPX_EDONE);
    assert_int_equal(ppx_future_cancel(busy), 0);
    support_drain(p, 10000);
    assert_int_equal(atomic_load(marks), 0);
    ppx_pool_stats st = PPX_POOL_STATS_INIT;
    ppx_pool_stats_get(p, &st);
    assert_int_equal(st.cancelled, 2);
    assert_int_equal(st.killed, 0); /* wait_cancel noticed the flag */
    ppx_future_unref(busy);
    ppx_future_unref(pending);
    ppx_pool_free(p);
}

static void test_cancelled_running_task_sees_the_flag_and_worker_survives(void **state)
{
    ppx_pool *p = new_pool(1, &patient);
    long pid = support_worker_pid(p, 0);
    ppx_future *f;
    assert_int_equal(ppx_pool_submitf(p, &f, "wait_cancel", ""), 0);
    support_wait_running(f);
    assert_int_equal(ppx_future_cancel(f), 0);
    assert_int_equal(ppx_future_state(f), PPX_CANCELLED);
    support_drain(p, 10000);
    assert_int_equal(support_worker_pid(p, 0), pid);
    ppx_future *g;
    assert_int_equal(ppx_pool_submitf(p, &g, "add", "ii", 2, 3), 0);
    assert_int_equal(ppx_future_wait(g, 10000), 0);
    int64_t v;
    assert_int_equal(ppx_future_int(g, &v), 0);
    assert_int_equal(v, 5);
    ppx_future_unref(f);
    ppx_future_unref(g);
    ppx_pool_free(p);
}

/* A call's future and task share one block (procpool/future.h): a
 * cancelled call whose future the caller dropped at once still runs, and
 * its task, alone in the block, reads the call's id from the future's
 * half when the worker's answer comes (ASan sees any early free). */
static void test_task_outlives_its_dropped_future(void **state)
{
    ppx_pool *p = new_pool(1, &patient);
    ppx_future *f;
    assert_int_equal(ppx_pool_submitf(p, &f, "wait_cancel", ""), 0);
    support_wait_running(f);
    uint64_t id = ppx_future_id(f);
    assert_int_equal(ppx_future_cancel(f), 0);
    ppx_future_unref(f); /* the last reference: the task lingers alone */
    ppx_future *g;
    assert_int_equal(ppx_pool_submitf(p, &g, "add", "ii", 2, 3), 0);
    assert_int_equal(ppx_future_wait(g, 10000), 0); /* after the answer to f */
    assert_true(ppx_future_id(g) > id);
    support_drain(p, 10000);
    ppx_pool_stats st = PPX_POOL_STATS_INIT;
    ppx_pool_stats_get(p, &st);
    assert_int_equal(st.cancelled, 1);
    assert_int_equal(st.killed, 0);
    ppx_future_unref(g);
    ppx_pool_free(p);
}

static void test_running_task_ignoring_cancel_is_killed_and_worker_respawned(void **state)
{
    ppx_pool *p = new_pool(1, &PPX_POOL_OPTIONS(.cancel_grace_ms = 30));
    long pid = support_worker_pid(p, 0);
    ppx_future *f;
    assert_int_equal(ppx_pool_submitf(p, &f, "spin_forever", ""), 0);
    support_wait_running(f);
    assert_int_equal(ppx_future_cancel(f), 0);
    support_drain(p, 10000);
    ppx_pool_stats st = PPX_POOL_STATS_INIT;
    ppx_pool_stats_get(p, &st);
    assert_int_equal(st.killed, 1);
    assert_int_equal(st.respawns, 1);
    assert_int_equal(st.crashed, 0); /* a kill we asked for is no crash */
    long npid = support_worker_pid(p, 0);
    assert_true(npid > 0 && npid != pid);
    ppx_future *g;
    assert_int_equal(ppx_pool_submitf(p, &g, "pid", ""), 0);
    assert_int_equal(ppx_future_wait(g, 10000), 0);
    int64_t v;
    assert_int_equal(ppx_future_int(g, &v), 0);
    assert_int_equal(v, npid);
    ppx_future_unref(f);
    ppx_future_unref(g);
    ppx_pool_free(p);
}

static void test_wait_timeout_leaves_the_task_running(void **state)
{
    ppx_pool *p = new_pool(1, NULL);
    ppx_future *f;
    assert_int_equal(ppx_pool_submitf(p, &f, "wait_cancel", ""), 0);
    assert_int_equal(ppx_future_wait(f, 30), PPX_ETIMEDOUT);
    assert_false(ppx_future_done(f));
    assert_int_equal(ppx_future_wait(f, 0), PPX_ETIMEDOUT);
    assert_int_equal(ppx_future_cancel(f), 0);
    ppx_future_unref(f);
    ppx_pool_free(p);
}

/* A caller that only ever polls (timeout 0) still sees its call finish:
 * each poll looks at the rings once. */
static void test_polling_with_zero_timeout_sees_the_result(void **state)
{
    (void)state;
    ppx_pool *p = new_pool(1, NULL);
    ppx_future *f;
    assert_int_equal(ppx_pool_submitf(p, &f, "add", "ii", 40, 2), 0);
    int64_t until = support_now_ms() + 20000;
    int rc;
    while ((rc = ppx_future_wait(f, 0)) == PPX_ETIMEDOUT && support_now_ms() < until)
        support_sleep_ms(1);
    assert_int_equal(rc, 0);
    int64_t v;
    assert_int_equal(ppx_future_int(f, &v), 0);
    assert_int_equal(v, 42);
    ppx_future_unref(f);
    ppx_pool_free(p);
}

/* Unknown errno values get a static text, not glibc's per-thread buffer. */

/* ---- crashes ---------------------------------------------------------- */

static void crash_case(const char *how, const char *expect)
{
    ppx_pool *p = new_pool(2, NULL);
    enum { N = 40 };
    ppx_future *ok[N], *bad;
    for (int i = 0; i < N / 2; i++)
        assert_int_equal(ppx_pool_submitf(p, &ok[i], "add", "ii", i, 1), 0);
    assert_int_equal(ppx_pool_submitf(p, &bad, "crash", "s", how), 0);
    for (int i = N / 2; i < N; i++)
        assert_int_equal(ppx_pool_submitf(p, &ok[i], "add", "ii", i, 1), 0);
    assert_int_equal(ppx_future_wait(bad, 10000), 0);
    const ppx_error *e = ppx_future_error(bad);
    assert_non_null(e);
    assert_string_equal(e->type, "WorkerCrashed");
    assert_non_null(strstr(e->message, expect));
    assert_non_null(strstr(e->message, "crash"));
    assert_true(e->pid > 0);
    for (int i = 0; i < N; i++) {
        assert_int_equal(ppx_future_wait(ok[i], 10000), 0);
        int64_t v;
        assert_int_equal(ppx_future_int(ok[i], &v), 0);
        assert_int_equal(v, i + 1);
        ppx_future_unref(ok[i]);
    }
    support_drain(p, 10000);
    ppx_pool_stats st = PPX_POOL_STATS_INIT;
    ppx_pool_stats_get(p, &st);
    assert_int_equal(st.crashed, 1);
    assert_int_equal(st.respawns, 1);
    for (int i = 0; i < 2; i++)
        assert_true(support_worker_pid(p, i) > 0);
    assert_true(ppx_pool_worker_pid(p, 0) != e->pid && ppx_pool_worker_pid(p, 1) != e->pid);
    ppx_future_unref(bad);
    ppx_pool_free(p);
}

static void test_segfault_fails_only_its_task_and_pool_heals(void **state)
{
    crash_case("segv", "signal 11 (SIGSEGV)");
}

static void test_abort_fails_only_its_task(void **state)
{
    crash_case("abort", "signal 6 (SIGABRT)");
}

static void test_exit_fails_only_its_task(void **state)
{
    crash_case("exit", "exited with status 3");
}

static void test_worker_killed_from_outside_fails_its_running_task(void **state)
{
    ppx_pool *p = new_pool(1, NULL);
    ppx_future *f;
    assert_int_equal(ppx_pool_submitf(p, &f, "wait_cancel", ""), 0);
    support_wait_running(f);
    long pid = support_worker_pid(p, 0);
    assert_int_equal(kill((pid_t)pid, SIGKILL), 0);
    assert_int_equal(ppx_future_wait(f, 10000), 0);
    assert_string_equal(ppx_future_error(f)->type, "WorkerCrashed");
    assert_non_null(strstr(ppx_future_error(f)->message, "SIGKILL"));
    assert_int_equal(ppx_future_error(f)->pid, pid);
    ppx_future_unref(f);
    ppx_pool_free(p);
}

int main(void)
{
    procpool_support_register();

    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_polling_with_zero_timeout_sees_the_result),
        cmocka_unit_test_teardown(test_cancelled_pending_task_never_runs, teardown),
        cmocka_unit_test_teardown(test_cancelled_running_task_sees_the_flag_and_worker_survives, teardown),
        cmocka_unit_test_teardown(test_task_outlives_its_dropped_future, teardown),
        cmocka_unit_test_teardown(test_running_task_ignoring_cancel_is_killed_and_worker_respawned, teardown),
        cmocka_unit_test_teardown(test_wait_timeout_leaves_the_task_running, teardown),
        cmocka_unit_test_teardown(test_segfault_fails_only_its_task_and_pool_heals, teardown),
        cmocka_unit_test_teardown(test_abort_fails_only_its_task, teardown),
        cmocka_unit_test_teardown(test_exit_fails_only_its_task, teardown),
        cmocka_unit_test_teardown(test_worker_killed_from_outside_fails_its_running_task, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
