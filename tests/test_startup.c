/* Start-up and idleness (issue 15): a pool without an initializer is
 * usable as soon as ppx_pool_new returns, its workers report as it is
 * driven, a pool freed before they did leaves no process, and idle
 * workers, which sleep without a timeout, still die with their parent.
 * Nothing here is timed: every wait has a generous bound only. */
#include "support.h"
#include "ppx.h"

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#define GONE_MS 10000

static int fn_add(ppx_call *c, void *u)
{
    (void)u;
    int64_t a, b;
    ppx_call_arg_int(c, 0, &a);
    ppx_call_arg_int(c, 1, &b);
    return ppx_return_int(c, a + b);
}

static int fn_pid(ppx_call *c, void *u)
{
    (void)u;
    return ppx_return_int(c, getpid());
}

static int init_ok(char *err, size_t errlen, void *arg)
{
    (void)err;
    (void)errlen;
    (void)arg;
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    assert_true(support_no_children());
    return 0;
}

static ppx_pool *new_pool(ppx_pool_options o)
{
    support_valgrind_sizes(&o);
    ppx_pool *p = NULL;
    assert_int_equal(ppx_pool_new(&o, &p), 0);
    return p;
}

static void test_calls_submitted_right_after_creation_complete(void **state)
{
    (void)state;
    enum { W = 4, N = 64 };
    ppx_pool *p = new_pool(PPX_POOL_OPTIONS(.workers = W));
    ppx_future *f[N];
    for (int i = 0; i < N; i++)
        assert_int_equal(ppx_pool_submitf(p, &f[i], "add", "ii", i, 1), 0);
    for (int i = 0; i < N; i++) {
        assert_int_equal(ppx_future_wait(f[i], 30000), 0);
        int64_t v = -1;
        assert_int_equal(ppx_future_int(f[i], &v), 0);
        assert_int_equal(v, i + 1);
        ppx_future_unref(f[i]);
    }
    ppx_pool_free(p);
}

static void test_worker_pids_are_known_once_the_pool_has_heard_from_its_workers(void **state)
{
    (void)state;
    ppx_pool *p = new_pool(PPX_POOL_OPTIONS(.workers = 3));
    /* Each is 0 or the worker's pid, never anything else, meanwhile. */
    for (int i = 0; i < 3; i++)
        assert_true(ppx_pool_worker_pid(p, i) >= 0);
    support_drain(p, 30000); /* busy while a worker is starting */
    for (int i = 0; i < 3; i++)
        assert_true(ppx_pool_worker_pid(p, i) > 0);
    ppx_pool_stats st = PPX_POOL_STATS_INIT;
    ppx_pool_stats_get(p, &st);
    assert_int_equal(st.respawns, 0); /* first starts are not respawns */
    ppx_pool_free(p);
}

static void test_with_an_initializer_creation_waits_for_every_worker(void **state)
{
    (void)state;
    ppx_pool *p = new_pool(PPX_POOL_OPTIONS(.workers = 3, .initializer = init_ok));
    for (int i = 0; i < 3; i++)
        assert_true(ppx_pool_worker_pid(p, i) > 0);
    ppx_future *f;
    assert_int_equal(ppx_pool_submitf(p, &f, "pid", ""), 0);
    assert_true(support_future_int(f) > 0);
    ppx_future_unref(f);
    ppx_pool_free(p);
}

/* In a child that is a subreaper: whatever the pool leaves behind is
 * adopted there, so waiting for every child until ECHILD proves that
 * nothing outlives the free (a survivor would hang the child until the
 * timeout). */
static int free_at_once_child(void *arg)
{
    int workers = *(int *)arg;
    prctl(PR_SET_CHILD_SUBREAPER, 1);
    ppx_pool_options o = PPX_POOL_OPTIONS(.workers = workers);
    support_valgrind_sizes(&o);
    ppx_pool *p;
    if (ppx_pool_new(&o, &p) != 0)
        return 1;
    ppx_pool_free(p);
    while (waitpid(-1, NULL, 0) > 0)
        ;
    return support_no_children() ? 0 : 2;
}

static void test_pool_freed_before_its_workers_reported_leaves_no_process(void **state)
{
    (void)state;
    for (int workers = 1; workers <= 16; workers *= 4)
        assert_int_equal(support_in_child(free_at_once_child, &workers, 60000), 0);
}

/* The creator: makes a pool, has every worker serve a call, reports the
 * worker pids, then waits to be killed. */
_Noreturn static void creator_main(int report)
{
    ppx_pool_options o = PPX_POOL_OPTIONS(.workers = 2);
    support_valgrind_sizes(&o);
    ppx_pool *p;
    if (ppx_pool_new(&o, &p) != 0)
        _exit(1);
    ppx_future *f[8];
    for (int i = 0; i < 8; i++)
        if (ppx_pool_submitf(p, &f[i], "add", "ii", i, i) != 0)
            _exit(1);
    for (int i = 0; i < 8; i++)
        if (ppx_future_wait(f[i], 30000) != 0)
            _exit(1);
    support_drain(p, 30000);
    long pids[2] = {ppx_pool_worker_pid(p, 0), ppx_pool_worker_pid(p, 1)};
    if (write(report, pids, sizeof pids) != (ssize_t)sizeof pids)
        _exit(1);
    for (;;)
        pause();
}

/* 'S': asleep (the futex, after the spin); from /proc/<pid>/stat. */
static bool asleep(long pid)
{
    char path[64], buf[256];
    snprintf(path, sizeof path, "/proc/%ld/stat", pid);
    FILE *f = fopen(path, "r");
    if (!f)
        return false;
    size_t n = fread(buf, 1, sizeof buf - 1, f);
    fclose(f);
    buf[n] = '\0';
    const char *paren = strrchr(buf, ')');
    return paren && paren[1] == ' ' && paren[2] == 'S';
}

static void test_idle_workers_die_with_their_killed_parent(void **state)
{
    (void)state;
    int report[2];
    assert_int_equal(pipe(report), 0);
    fflush(NULL);
    pid_t app = fork();
    assert_true(app >= 0);
    if (app == 0) {
        close(report[0]);
        creator_main(report[1]);
    }
    close(report[1]);
    long pids[2] = {0, 0};
    ssize_t got = read(report[0], pids, sizeof pids);
    close(report[0]);
    if (got != (ssize_t)sizeof pids)
        kill(app, SIGKILL);
    assert_int_equal(got, (ssize_t)sizeof pids);
    long zygote = support_parent_of(pids[0]);
    assert_true(zygote > 0 && pids[0] > 0 && pids[1] > 0);
    /* Both asleep with nothing to do: no timeout will wake them. */
    int64_t end = support_now_ms() + GONE_MS;
    while (!(asleep(pids[0]) && asleep(pids[1])) && support_now_ms() < end)
        support_sleep_ms(1);
    assert_true(asleep(pids[0]) && asleep(pids[1]));
    assert_int_equal(kill(app, SIGKILL), 0);
    int st;
    assert_int_equal(waitpid(app, &st, 0), app);
    support_wait_gone(zygote, GONE_MS);
    support_wait_gone(pids[0], GONE_MS);
    support_wait_gone(pids[1], GONE_MS);
}

int main(void)
{
    ppx_register("add", fn_add, NULL);
    ppx_register("pid", fn_pid, NULL);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_teardown(test_calls_submitted_right_after_creation_complete, teardown),
        cmocka_unit_test_teardown(
            test_worker_pids_are_known_once_the_pool_has_heard_from_its_workers, teardown),
        cmocka_unit_test_teardown(test_with_an_initializer_creation_waits_for_every_worker,
                                  teardown),
        cmocka_unit_test_teardown(test_pool_freed_before_its_workers_reported_leaves_no_process,
                                  teardown),
        cmocka_unit_test_teardown(test_idle_workers_die_with_their_killed_parent, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
