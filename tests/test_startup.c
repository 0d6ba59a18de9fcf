/* Start-up and idleness (issue 15): idle workers, which sleep without a
 * timeout, still die with their parent. Nothing here is timed: every
 * wait has a generous bound only. */
#include "support.h"
#include "ppx.h"

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
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

static int teardown(void **state)
{
    (void)state;
    assert_true(support_no_children());
    return 0;
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
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_teardown(test_idle_workers_die_with_their_killed_parent, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
