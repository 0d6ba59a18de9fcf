/*
 * The creator of a pool dies while a fork of it lives: the fork server
 * and the workers must go with the creator, not with the last copy of it.
 * The "creator" is a child of the test process, so the test survives
 * killing it; the fork it makes is its own child, blocked on a pipe.
 */
#include "hostile.h"
#include "support.h"
#include "ppx.h"

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <unistd.h>

/* Generous: the kernel signals the fork server when the lifeline's last
 * write end closes, and the workers follow it; nothing here is timed. */
#define GONE_MS 10000

enum { ZYGOTE, WORKER0, WORKER1, COPY, NPIDS };

static int teardown(void **state)
{
    (void)state;
    assert_true(support_no_children());
    return 0;
}

/* The creator: makes a pool, forks a copy that waits for EOF on hold,
 * reports the pids, then waits to be killed. Exit status 1 on failure. */
_Noreturn static void creator_main(int report, int hold_r)
{
    ppx_pool *p = NULL;
    ppx_pool_options o = PPX_POOL_OPTIONS(.workers = 2);
    ppx_future *f = NULL;
    int64_t v = 0;
    support_valgrind_sizes(&o);
    if (ppx_pool_new(&o, &p) != 0 || ppx_pool_submitf(p, &f, "add", "ii", 1, 2) != 0 ||
        ppx_future_wait(f, 30000) != 0 || ppx_future_int(f, &v) != 0 || v != 3)
        _exit(1);
    long pids[NPIDS];
    pids[WORKER0] = support_worker_pid(p, 0);
    pids[WORKER1] = support_worker_pid(p, 1);
    pids[ZYGOTE] = support_parent_of(pids[WORKER0]);
    pid_t copy = fork();
    if (copy == 0) {
        char c;
        while (read(hold_r, &c, 1) != 0) /* the test closes its end */
            ;
        _exit(0);
    }
    pids[COPY] = copy;
    if (copy < 0 || write(report, pids, sizeof pids) != (ssize_t)sizeof pids)
        _exit(1);
    for (;;)
        pause();
}

static void test_fork_server_and_workers_die_with_the_creator_while_its_fork_lives(void **state)
{
    (void)state;
    int report[2], hold[2];
    assert_int_equal(pipe(report), 0);
    assert_int_equal(pipe(hold), 0);
    fflush(NULL);
    pid_t creator = fork();
    assert_true(creator >= 0);
    if (creator == 0) {
        close(report[0]);
        close(hold[1]);
        creator_main(report[1], hold[0]);
    }
    close(report[1]);
    close(hold[0]);
    long pids[NPIDS];
    ssize_t got = read(report[0], pids, sizeof pids);
    close(report[0]);
    if (got != (ssize_t)sizeof pids) {
        close(hold[1]);
        waitpid(creator, NULL, 0);
        fail_msg("the creator did not start its pool");
    }
    for (int i = 0; i < NPIDS; i++)
        assert_true(pids[i] > 0);
    assert_int_not_equal(pids[ZYGOTE], creator); /* workers are the zygote's */

    assert_int_equal(kill(creator, SIGKILL), 0);
    int st;
    assert_int_equal(waitpid(creator, &st, 0), creator);
    assert_true(WIFSIGNALED(st) && WTERMSIG(st) == SIGKILL);
    assert_true(support_pid_gone(pids[ZYGOTE], GONE_MS));
    assert_true(support_pid_gone(pids[WORKER0], GONE_MS));
    assert_true(support_pid_gone(pids[WORKER1], GONE_MS));
    /* The copy lived on all along: it is not what ended them. */
    assert_false(support_pid_gone(pids[COPY], 0));
    close(hold[1]);
    assert_true(support_pid_gone(pids[COPY], GONE_MS));
}

int hostile_fork_run(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_teardown(test_fork_server_and_workers_die_with_the_creator_while_its_fork_lives, teardown),
    };
    return cmocka_run_group_tests_name("hostile_fork", tests, NULL, NULL);
}
