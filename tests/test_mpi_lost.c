/*
 * Losing a whole rank, run by meson under `mpirun -np 3 --enable-recovery`
 * with PPX_NODE_TIMEOUT_MS=1000 (without --enable-recovery Open MPI ends
 * the whole job when a rank dies). Each node has one worker. A call
 * running on rank 1 kills rank 1's process while rank 1 still holds a
 * call it has not started: only the running call fails, with NodeLost
 * naming rank 1 and saying it may have run; the unstarted one, and every
 * other, completes on rank 2.
 */
#include "support.h"
#include "test_mpi_support.h"
#include "ppx.h"

#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

static ppx_pool *pool;
static char dir[64];
static char start_err[64];

static int my_rank(void)
{
    const char *r = getenv("OMPI_COMM_WORLD_RANK");
    return r ? atoi(r) : -1;
}

static bool exists(const char *name)
{
    return support_marker_exists(dir, name);
}

static void touch(const char *name)
{
    support_marker_write(dir, name, "");
}

/* Marks "run.<i>.<rank>", waits for "release"; then on rank 1 kills its
 * own node (a worker's parent is the node's fork server, whose parent is
 * the node), on rank 2 returns i after 300 ms, long enough for rank 1's
 * loss to be seen while rank 2 is still busy. */
static int hold(ppx_call *c, void *u)
{
    (void)u;
    int64_t i = 0;
    ppx_value v;
    if (ppx_call_arg(c, 0, &v) == 0)
        ppx_value_int(v, &i);
    char name[32];
    snprintf(name, sizeof name, "run.%d.%d", (int)i, my_rank());
    touch(name);
    while (!exists("release"))
        usleep(1000);
    if (my_rank() == 1) {
        long node = support_parent_of(support_parent_of((long)getpid()));
        if (node > 1)
            kill((pid_t)node, SIGKILL);
        sleep(30);
    }
    usleep(300000);
    return ppx_return_int(c, i * 10 + my_rank());
}

static int count_running(int rank, int n)
{
    int k = 0;
    for (int i = 0; i < n; i++) {
        char name[32];
        snprintf(name, sizeof name, "run.%d.%d", i, rank);
        k += exists(name);
    }
    return k;
}

static void lost_node_fails_only_its_running_call(void **state)
{
    (void)state;
    enum { N = 6 };
    ppx_future *f[N];
    for (int i = 0; i < N; i++)
        assert_int_equal(ppx_pool_submitf(pool, &f[i], "hold", "i", i), 0);
    /* One call running on each node (one worker each), and at least one
     * more sent to rank 1 behind it (2 per worker at first). */
    int64_t until = support_now_ms() + 20000;
    while ((count_running(1, N) < 1 || count_running(2, N) < 1) && support_now_ms() < until)
        support_sleep_ms(5);
    assert_int_equal(count_running(1, N), 1);
    ppx_pool_stats st = PPX_POOL_STATS_INIT;
    assert_int_equal(ppx_pool_stats_get(pool, &st), 0);
    assert_true(st.queued < N - 2); /* some wait on the nodes, not on rank 0 */
    touch("release");

    int failed = 0;
    for (int i = 0; i < N; i++) {
        assert_int_equal(ppx_future_wait(f[i], 30000), 0);
        char name[32];
        snprintf(name, sizeof name, "run.%d.1", i);
        if (exists(name)) { /* the one that ran on rank 1 */
            failed++;
            assert_int_equal(ppx_future_state(f[i]), PPX_FAILED);
            const ppx_error *e = ppx_future_error(f[i]);
            assert_string_equal(e->type, "NodeLost");
            assert_non_null(strstr(e->node, " rank 1"));
            assert_non_null(strstr(e->message, "may have run"));
            assert_non_null(strstr(e->message, "hold"));
        } else {
            int64_t v;
            assert_int_equal(ppx_future_int(f[i], &v), 0);
            assert_int_equal(v, i * 10 + 2); /* ran on rank 2 */
        }
        ppx_future_unref(f[i]);
    }
    assert_int_equal(failed, 1);
    assert_int_equal(ppx_pool_workers(pool), 1);
}

static void no_hint_under_enable_recovery(void **state)
{
    (void)state;
    char text[1024];
    assert_true(support_read_file(start_err, text, sizeof text) >= 0);
    assert_null(strstr(text, "--enable-recovery"));
}

int main(void)
{
    ppx_register("hold", hold, NULL);
    const char *job = getenv("OMPI_MCA_ess_base_jobid");
    snprintf(dir, sizeof dir, "/tmp/ppx-mpi-lost-%s", job ? job : "x");
    mkdir(dir, 0700);
    int saved = my_rank() == 0 ? support_capture_stderr(start_err, sizeof start_err) : -1;
    int rc = ppx_pool_new(&PPX_POOL_OPTIONS(.workers = 1), &pool);
    support_restore_stderr(saved);
    if (rc) {
        fprintf(stderr, "test_mpi_lost: %s: %s\n", ppx_strerror(rc), ppx_last_error());
        return 1;
    }
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(no_hint_under_enable_recovery),
        cmocka_unit_test(lost_node_fails_only_its_running_call),
    };
    int failed = cmocka_run_group_tests(tests, NULL, NULL);
    ppx_pool_free(pool);
    unlink(start_err);
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
    (void)!system(cmd);
    support_mpi_status(failed);
    return failed ? 1 : 0;
}
