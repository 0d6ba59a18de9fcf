/*
 * End to end over MPI: run by meson under `mpirun -np 3`. Rank 0 runs
 * these tests against one MPI pool; ranks 1 and 2 serve its calls from
 * inside ppx_pool_new (they never return from it) with local pools of two
 * workers each. Marker files in a temporary directory let a test see a
 * call running on a node and see it stop, without timing guesses.
 * With --hosts (suite mpi_hosts: tools/emulated_hosts.sh, every rank in its
 * own network namespace, TCP only, 1 ms a way) a few of them run over
 * emulated hosts.
 */
#include "support.h"
#include "test_mpi_fns.h"
#include "test_mpi_support.h"
#include "ppx.h"

#include <errno.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <uv.h>

#include <cmocka.h>

static char dir[64];
static ppx_pool *pool;
static uv_loop_t loop; /* bound to the pool until it is freed */

/* ---- helpers ----------------------------------------------------------- */

static long pid_in(const char *name)
{
    return support_marker_pid(dir, name);
}

/* Waits up to 20 s for a marker: the nodes share two cores with rank 0. */
static void wait_for(const char *name)
{
    assert_true(support_marker_wait(dir, name, 20000));
}

static bool gone(long pid)
{
    return support_pid_gone(pid, 20000);
}

/* The nodes' hostnames, as they told them (--hosts). */
static char node_host[2][64];

/* An error from a node: its type, the node's name (with --hosts, that
 * node's own hostname) and, when a worker raised it, that worker's pid
 * (the node's pool raises TimeoutError). */
static void assert_remote_error(const ppx_error *e, const char *type)
{
    assert_non_null(e);
    assert_string_equal(e->type, type);
    assert_non_null(e->node);
    assert_true(strstr(e->node, " rank 1") || strstr(e->node, " rank 2"));
    if (node_host[0][0]) {
        char name[80];
        snprintf(name, sizeof name, "%s rank ", node_host[0]);
        bool first = strncmp(e->node, name, strlen(name)) == 0;
        snprintf(name, sizeof name, "%s rank ", node_host[1]);
        assert_true(first || strncmp(e->node, name, strlen(name)) == 0);
    }
    if (strcmp(type, "TimeoutError") != 0)
        assert_true(e->pid > 0);
    assert_int_not_equal(e->pid, (long)getpid());
}

/* ---- tests ------------------------------------------------------------- */

/* What rank 0 printed on stderr while its pool started. */
static char start_err[64];

static void the_pool_says_how_to_survive_a_lost_node(void **state)
{
    (void)state;
    char text[1024];
    assert_true(support_read_file(start_err, text, sizeof text) > 0);
    assert_non_null(strstr(text, "mpirun --enable-recovery"));
    assert_non_null(strstr(text, "NodeLost"));
    /* Once per process: a second pool says nothing. */
    ppx_pool_free(pool);
    int saved = support_capture_stderr(start_err, sizeof start_err);
    int rc = ppx_pool_new(&PPX_POOL_OPTIONS(.workers = 2, .cancel_grace_ms = 200), &pool);
    support_restore_stderr(saved);
    assert_int_equal(rc, 0);
    assert_int_equal(support_read_file(start_err, text, sizeof text), 0);
}

static void values_come_back(void **state)
{
    (void)state;
    assert_int_equal(ppx_pool_workers(pool), 4); /* 2 nodes x 2 workers */
    enum { N = 500 };
    ppx_future *f[N];
    for (int i = 0; i < N; i++)
        assert_int_equal(ppx_pool_submitf(pool, &f[i], "echo", "i", i * 7), 0);
    for (int i = 0; i < N; i++) {
        assert_int_equal(ppx_future_wait(f[i], 30000), 0);
        int64_t v;
        assert_int_equal(ppx_future_int(f[i], &v), 0);
        assert_int_equal(v, i * 7);
        ppx_future_unref(f[i]);
    }
    ppx_future *s;
    assert_int_equal(ppx_pool_submitf(pool, &s, "echo", "s", "über MPI"), 0);
    assert_int_equal(ppx_future_wait(s, 30000), 0);
    ppx_value v;
    const char *str;
    size_t n;
    assert_int_equal(ppx_future_value(s, &v), 0);
    assert_int_equal(ppx_value_str(v, &str, &n), 0);
    assert_int_equal(n, strlen("über MPI"));
    assert_memory_equal(str, "über MPI", n);
    ppx_future_unref(s);
}

static void every_node_gets_work(void **state)
{
    (void)state;
    enum { N = 64 };
    ppx_future *f[N];
    for (int i = 0; i < N; i++)
        assert_int_equal(ppx_pool_submitf(pool, &f[i], "rank_of_node", ""), 0);
    int seen[3] = {0};
    for (int i = 0; i < N; i++) {
        assert_int_equal(ppx_future_wait(f[i], 30000), 0);
        int64_t r;
        assert_int_equal(ppx_future_int(f[i], &r), 0);
        assert_true(r == 1 || r == 2);
        seen[r]++;
        ppx_future_unref(f[i]);
    }
    /* Placement fills both nodes before either gets a second round. */
    assert_true(seen[1] >= 8 && seen[2] >= 8);
}

/* --hosts: each node answers from its own hostname and network namespace,
 * neither rank 0's. */
static void nodes_are_separate_hosts(void **state)
{
    (void)state;
    enum { N = 16 };
    ppx_future *f[N];
    char here[160], seen[2][160] = {"", ""};
    test_mpi_where(here, sizeof here);
    for (int i = 0; i < N; i++)
        assert_int_equal(ppx_pool_submitf(pool, &f[i], "where_is_node", ""), 0);
    for (int i = 0; i < N; i++) {
        assert_int_equal(ppx_future_wait(f[i], 30000), 0);
        ppx_value v;
        const char *w;
        size_t n;
        assert_int_equal(ppx_future_value(f[i], &v), 0);
        assert_int_equal(ppx_value_str(v, &w, &n), 0);
        char got[160];
        snprintf(got, sizeof got, "%.*s", (int)n, w);
        int k = !seen[0][0] || strcmp(seen[0], got) == 0 ? 0 : 1;
        assert_true(!seen[k][0] || strcmp(seen[k], got) == 0); /* two places, no more */
        strcpy(seen[k], got);
        ppx_future_unref(f[i]);
    }
    const char *my_ns = strchr(here, ' ');
    for (int k = 0; k < 2; k++) {
        const char *ns = strchr(seen[k], ' ');
        assert_non_null(ns);
        assert_string_not_equal(ns, my_ns);
        snprintf(node_host[k], sizeof node_host[k], "%.*s", (int)(ns - seen[k]), seen[k]);
        assert_int_not_equal(strncmp(here, seen[k], (size_t)(ns - seen[k]) + 1), 0);
    }
    assert_string_not_equal(strchr(seen[0], ' '), strchr(seen[1], ' '));
    assert_string_not_equal(node_host[0], node_host[1]);
}

/* Rank 1 takes SLOW_MS a call, rank 2 FAST_MS, 2 workers each. The
 * fast node alone needs N * FAST_MS / 2 = 600 ms; the slow node cannot
 * do better than one round, SLOW_MS, since it starts a call on each
 * worker before its speed is known: that is the job's unavoidable
 * time. Finishing within 1.5 x SLOW_MS means the slow node runs no
 * second round, so it runs at most one call per worker: the rest,
 * including what was placed on it and had not started, goes to the
 * fast node (taken back from the slow one). Asserted on counts, not on
 * the clock; the fast node's 600 ms leave a loaded machine more than
 * 3 x room before the slow round ends. */
static void a_slow_node_keeps_only_what_it_runs(void **state)
{
    (void)state;
    enum { N = 60, WORKERS = 2 };
    ppx_future *f[N];
    int64_t t0 = support_now_ms();
    for (int i = 0; i < N; i++)
        assert_int_equal(ppx_pool_submitf(pool, &f[i], "paced", ""), 0);
    int ran[3] = {0};
    for (int i = 0; i < N; i++) {
        assert_int_equal(ppx_future_wait(f[i], 60000), 0);
        int64_t r;
        assert_int_equal(ppx_future_int(f[i], &r), 0);
        assert_true(r == 1 || r == 2);
        ran[r]++;
        ppx_future_unref(f[i]);
    }
    int64_t took = support_now_ms() - t0;
    print_message("slow node ran %d, fast node %d, in %lld ms (bound %d ms)\n", ran[1], ran[2],
                  (long long)took, SLOW_MS * 3 / 2);
    assert_true(ran[1] >= 1);
    assert_true(ran[1] <= WORKERS);
    assert_int_equal(ran[1] + ran[2], N);
}

static void map_runs_on_a_node(void **state)
{
    (void)state;
    static const unsigned char items[] = {0x93, 0x91, 1, 0x91, 2, 0x91, 3}; /* [[1],[2],[3]] */
    ppx_future *f;
    assert_int_equal(ppx_pool_map(pool, "echo", items, sizeof items, NULL, &f), 0);
    assert_int_equal(ppx_future_wait(f, 30000), 0);
    ppx_value v, e;
    assert_int_equal(ppx_future_value(f, &v), 0);
    size_t count;
    assert_int_equal(ppx_value_array_len(v, &count), 0);
    assert_int_equal(count, 3);
    int64_t x;
    assert_int_equal(ppx_value_at(v, 2, &e), 0);
    assert_int_equal(ppx_value_int(e, &x), 0);
    assert_int_equal(x, 3);
    ppx_future_unref(f);
}

static void remote_error_names_its_node(void **state)
{
    (void)state;
    ppx_future *f;
    assert_int_equal(ppx_pool_submitf(pool, &f, "unlucky", ""), 0);
    assert_int_equal(ppx_future_wait(f, 30000), 0);
    assert_int_equal(ppx_future_state(f), PPX_FAILED);
    const ppx_error *e = ppx_future_error(f);
    assert_remote_error(e, "ValueError");
    assert_string_equal(e->message, "Unlucky number!");
    assert_string_equal(e->function, "unlucky");
    assert_int_equal(e->task_id, ppx_future_id(f));
    ppx_future_unref(f);

    assert_int_equal(ppx_pool_submitf(pool, &f, "no_such_function", ""), 0);
    assert_int_equal(ppx_future_wait(f, 30000), 0);
    assert_string_equal(ppx_future_error(f)->type, "NameError");
    ppx_future_unref(f);
}

static void crash_on_a_node_is_healed_there(void **state)
{
    (void)state;
    ppx_future *f;
    assert_int_equal(ppx_pool_submitf(pool, &f, "crash", ""), 0);
    assert_int_equal(ppx_future_wait(f, 30000), 0);
    assert_remote_error(ppx_future_error(f), "WorkerCrashed");
    assert_non_null(strstr(ppx_future_error(f)->message, "SIGABRT"));
    ppx_future_unref(f);
    /* Every worker of both nodes still answers. */
    ppx_future *g[8];
    for (int i = 0; i < 8; i++)
        assert_int_equal(ppx_pool_submitf(pool, &g[i], "echo", "i", i), 0);
    for (int i = 0; i < 8; i++) {
        assert_int_equal(ppx_future_wait(g[i], 30000), 0);
        assert_int_equal(ppx_future_state(g[i]), PPX_DONE);
        ppx_future_unref(g[i]);
    }
}

static void cancel_reaches_a_running_remote_call(void **state)
{
    (void)state;
    ppx_future *coop, *stubborn;
    assert_int_equal(ppx_pool_submitf(pool, &coop, "spin", "sb", "coop", 1), 0);
    assert_int_equal(ppx_pool_submitf(pool, &stubborn, "spin", "sb", "stubborn", 0), 0);
    wait_for("coop.run");
    wait_for("stubborn.run");
    long stubborn_pid = pid_in("stubborn.run");
    assert_true(stubborn_pid > 0);
    assert_int_equal(ppx_future_cancel(coop), 0);
    assert_int_equal(ppx_future_cancel(stubborn), 0);
    assert_int_equal(ppx_future_state(coop), PPX_CANCELLED);
    assert_int_equal(ppx_future_state(stubborn), PPX_CANCELLED);
    wait_for("coop.stop");                 /* saw the flag on its node */
    assert_true(gone(stubborn_pid));       /* killed after the grace period */
    ppx_future_unref(coop);
    ppx_future_unref(stubborn);
    /* The slots come back: four long calls fit again at once. */
    ppx_future *g[4];
    for (int i = 0; i < 4; i++)
        assert_int_equal(ppx_pool_submitf(pool, &g[i], "echo", "i", i), 0);
    for (int i = 0; i < 4; i++) {
        assert_int_equal(ppx_future_wait(g[i], 30000), 0);
        ppx_future_unref(g[i]);
    }
}

static void deadline_is_kept_by_the_node(void **state)
{
    (void)state;
    ppx_future *f;
    ppx_call_options o = PPX_CALL_OPTIONS(.timeout_ms = 200);
    void *args;
    size_t len;
    assert_int_equal(ppx_pack(&args, &len, "sb", "late", 1), 0);
    assert_int_equal(ppx_pool_submit_ex(pool, "spin", args, len, &o, &f), 0);
    free(args);
    assert_int_equal(ppx_future_wait(f, 30000), 0);
    assert_remote_error(ppx_future_error(f), "TimeoutError");
    ppx_future_unref(f);
}

static void big_payload_round_trip(void **state)
{
    (void)state;
    size_t n = (size_t)8 << 20;
    unsigned char *b = malloc(n);
    assert_non_null(b);
    for (size_t i = 0; i < n; i++)
        b[i] = (unsigned char)(i * 131 + (i >> 13));
    ppx_future *f;
    assert_int_equal(ppx_pool_submitf(pool, &f, "echo", "B", b, n), 0);
    assert_int_equal(ppx_future_wait(f, 60000), 0);
    ppx_value v;
    const void *got;
    size_t len;
    assert_int_equal(ppx_future_value(f, &v), 0);
    assert_int_equal(ppx_value_bin(v, &got, &len), 0);
    assert_int_equal(len, n);
    assert_memory_equal(got, b, n);
    ppx_future_unref(f);
    free(b);
}

static void gather_cancels_remote_siblings(void **state)
{
    (void)state;
    ppx_awaitable *a[3];
    assert_int_equal(ppx_run_in_executorf(&loop, pool, &a[0], "spin", "sb", "sib1", 1), 0);
    assert_int_equal(ppx_run_in_executorf(&loop, pool, &a[1], "spin", "sb", "sib2", 1), 0);
    wait_for("sib1.run");
    wait_for("sib2.run");
    assert_int_equal(ppx_run_in_executorf(&loop, pool, &a[2], "unlucky", ""), 0);
    ppx_awaitable *all;
    assert_int_equal(ppx_gather(&loop, a, 3, 0, &all), 0);
    assert_int_equal(ppx_run_until_complete(&loop, all), 0);
    const ppx_error *e = ppx_awaitable_error(all);
    assert_remote_error(e, "ValueError");
    assert_string_equal(e->message, "Unlucky number!");
    assert_int_equal(ppx_awaitable_state(a[0]), PPX_CANCELLED);
    assert_int_equal(ppx_awaitable_state(a[1]), PPX_CANCELLED);
    wait_for("sib1.stop");
    wait_for("sib2.stop");
    for (int i = 0; i < 3; i++)
        ppx_awaitable_unref(a[i]);
    ppx_awaitable_unref(all);
}

/* Every node slot busy (2 nodes x 2 workers x 4), so the next call waits
 * on rank 0: its deadline still counts there. */
static void deadline_counts_while_queued_on_rank_0(void **state)
{
    (void)state;
    enum { SLOTS = 16 };
    ppx_future *busy[SLOTS];
    for (int i = 0; i < SLOTS; i++) {
        char name[16];
        snprintf(name, sizeof name, "full%d", i);
        assert_int_equal(ppx_pool_submitf(pool, &busy[i], "spin", "sb", name, 1), 0);
    }
    ppx_future *f;
    void *args;
    size_t len;
    assert_int_equal(ppx_pack(&args, &len, "i", 7), 0);
    assert_int_equal(ppx_pool_submit_ex(pool, "echo", args, len,
                                        &PPX_CALL_OPTIONS(.timeout_ms = 100), &f),
                     0);
    free(args);
    assert_int_equal(ppx_future_wait(f, 30000), 0);
    assert_int_equal(ppx_future_state(f), PPX_FAILED);
    assert_string_equal(ppx_future_error(f)->type, "TimeoutError");
    ppx_future_unref(f);
    for (int i = 0; i < SLOTS; i++) {
        assert_int_equal(ppx_future_cancel(busy[i]), 0);
        ppx_future_unref(busy[i]);
    }
    /* The slots come back once the nodes have stopped the spins. */
    ppx_future *g[SLOTS];
    for (int i = 0; i < SLOTS; i++)
        assert_int_equal(ppx_pool_submitf(pool, &g[i], "echo", "i", i), 0);
    for (int i = 0; i < SLOTS; i++) {
        assert_int_equal(ppx_future_wait(g[i], 30000), 0);
        assert_int_equal(ppx_future_state(g[i]), PPX_DONE);
        ppx_future_unref(g[i]);
    }
}

/* ppx_futures_wait and as_completed drive an MPI pool too; terminating
 * or killing its workers is refused and changes nothing. */
static void waits_and_refusals_over_mpi(void **state)
{
    (void)state;
    ppx_future *f[3];
    for (int i = 0; i < 3; i++)
        assert_int_equal(ppx_pool_submitf(pool, &f[i], "echo", "i", i), 0);
    ppx_futures_iter *it = NULL;
    assert_int_equal(ppx_futures_as_completed_new(f, 3, &it), 0);
    ppx_future *got;
    for (int i = 0; i < 3; i++)
        assert_int_equal(ppx_futures_as_completed_next(it, 30000, &got), 0);
    assert_int_equal(ppx_futures_as_completed_next(it, 0, &got), PPX_EDONE);
    ppx_futures_as_completed_free(it);
    bool done[3];
    assert_int_equal(ppx_futures_wait(f, 3, PPX_ALL_COMPLETED, 30000, done), 3);
    for (int i = 0; i < 3; i++)
        ppx_future_unref(f[i]);
    assert_int_equal(ppx_pool_terminate_workers(pool), PPX_ENOTSUP);
    assert_int_equal(ppx_pool_kill_workers(pool), PPX_ENOTSUP);
    assert_string_equal(ppx_err_name(PPX_ENOTSUP), "PPX_ENOTSUP");
    ppx_future *g;
    assert_int_equal(ppx_pool_submitf(pool, &g, "echo", "i", 7), 0);
    assert_int_equal(ppx_futures_wait(&g, 1, PPX_FIRST_COMPLETED, 30000, NULL), 1);
    ppx_future_unref(g);
}

/* Last of all (it closes the pool): more calls than the nodes hold, so
 * the last ones wait on rank 0 and are cancelled, while one already
 * running on a node goes on; SHUTDOWN_CANCEL then stops the rest. */
static void shutdown_cancel_queued_over_mpi(void **state)
{
    (void)state;
    enum { N = 24 };
    ppx_future *f[N];
    char name[16];
    for (int i = 0; i < N; i++) {
        snprintf(name, sizeof name, "cq%d", i);
        assert_int_equal(ppx_pool_submitf(pool, &f[i], "spin", "sb", name, 1), 0);
    }
    wait_for("cq0.run");
    ppx_pool_stats st = PPX_POOL_STATS_INIT;
    assert_int_equal(ppx_pool_stats_get(pool, &st), 0);
    assert_true(st.queued > 0);
    assert_int_equal(ppx_pool_shutdown(pool, PPX_SHUTDOWN_CANCEL_QUEUED, 0), PPX_ETIMEDOUT);
    assert_int_equal(ppx_future_state(f[N - 1]), PPX_CANCELLED);
    assert_false(ppx_future_done(f[0]));
    assert_int_equal(ppx_pool_shutdown(pool, PPX_SHUTDOWN_CANCEL, 30000), 0);
    for (int i = 0; i < N; i++) {
        assert_true(ppx_future_done(f[i]));
        ppx_future_unref(f[i]);
    }
}

static void one_mpi_pool_at_a_time(void **state)
{
    (void)state;
    ppx_pool *other = NULL;
    assert_int_equal(ppx_pool_new(NULL, &other), PPX_EBACKEND);
    assert_null(other);
    assert_non_null(strstr(ppx_last_error(), "already open"));
    /* A local pool beside it is fine. */
    assert_int_equal(ppx_pool_new(&PPX_POOL_OPTIONS(.workers = 1,
                                                               .backend = PPX_BACKEND_LOCAL), &other),
                     0);
    ppx_future *f;
    assert_int_equal(ppx_pool_submitf(other, &f, "rank_of_node", ""), 0);
    assert_int_equal(ppx_future_wait(f, 30000), 0);
    int64_t r;
    assert_int_equal(ppx_future_int(f, &r), 0);
    assert_int_equal(r, 0); /* ran in a child of rank 0 */
    ppx_future_unref(f);
    ppx_pool_free(other);
}

/* Last: frees the pool with calls out, then opens a new one on the same
 * nodes. */
static void free_with_calls_out_then_reopen(void **state)
{
    (void)state;
    ppx_future *f[3];
    assert_int_equal(ppx_pool_submitf(pool, &f[0], "spin", "sb", "freed", 1), 0);
    assert_int_equal(ppx_pool_submitf(pool, &f[1], "spin", "sb", "freed2", 0), 0);
    assert_int_equal(ppx_pool_submitf(pool, &f[2], "echo", "i", 1), 0);
    wait_for("freed.run");
    ppx_pool_free(pool);
    pool = NULL;
    for (int i = 0; i < 2; i++)
        assert_int_equal(ppx_future_state(f[i]), PPX_CANCELLED);
    assert_true(ppx_future_done(f[2]));
    for (int i = 0; i < 3; i++)
        ppx_future_unref(f[i]);
    wait_for("freed.stop");

    assert_int_equal(ppx_pool_new(&PPX_POOL_OPTIONS(.workers = 2), &pool), 0);
    assert_int_equal(ppx_pool_workers(pool), 4);
    ppx_future *g;
    assert_int_equal(ppx_pool_submitf(pool, &g, "echo", "i", 42), 0);
    assert_int_equal(ppx_future_wait(g, 30000), 0);
    int64_t v;
    assert_int_equal(ppx_future_int(g, &v), 0);
    assert_int_equal(v, 42);
    ppx_future_unref(g);
}

int main(int argc, char **argv)
{
    bool hosts = argc > 1 && strcmp(argv[1], "--hosts") == 0;
    /* Every rank agrees on the directory: the nodes write markers there. */
    const char *job = getenv("OMPI_MCA_ess_base_jobid");
    snprintf(dir, sizeof dir, "/tmp/ppx-mpi-test-%s", job ? job : "x");
    mkdir(dir, 0700);
    test_mpi_register(dir);
    /* Rank 0's stderr while the pool starts, to see the hint about
     * --enable-recovery (this job runs without it). */
    const char *rank = getenv("OMPI_COMM_WORLD_RANK");
    int saved = -1;
    if (rank && strcmp(rank, "0") == 0)
        saved = support_capture_stderr(start_err, sizeof start_err);
    int rc = ppx_pool_new(&PPX_POOL_OPTIONS(.workers = 2, .cancel_grace_ms = 200), &pool);
    /* Only rank 0 gets here. */
    support_restore_stderr(saved);
    if (rc) {
        fprintf(stderr, "test_mpi: no MPI pool: %s: %s\n", ppx_strerror(rc), ppx_last_error());
        return 1;
    }
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(the_pool_says_how_to_survive_a_lost_node),
        cmocka_unit_test(values_come_back),
        cmocka_unit_test(every_node_gets_work),
        cmocka_unit_test(a_slow_node_keeps_only_what_it_runs),
        cmocka_unit_test(map_runs_on_a_node),
        cmocka_unit_test(remote_error_names_its_node),
        cmocka_unit_test(crash_on_a_node_is_healed_there),
        cmocka_unit_test(cancel_reaches_a_running_remote_call),
        cmocka_unit_test(deadline_is_kept_by_the_node),
        cmocka_unit_test(big_payload_round_trip),
        cmocka_unit_test(gather_cancels_remote_siblings),
        cmocka_unit_test(deadline_counts_while_queued_on_rank_0),
        cmocka_unit_test(waits_and_refusals_over_mpi),
        cmocka_unit_test(one_mpi_pool_at_a_time),
        cmocka_unit_test(free_with_calls_out_then_reopen),
        cmocka_unit_test(shutdown_cancel_queued_over_mpi),
    };
    /* Over emulated hosts: what crosses the network, in a few seconds. */
    const struct CMUnitTest over_hosts[] = {
        cmocka_unit_test(nodes_are_separate_hosts),
        cmocka_unit_test(values_come_back),
        cmocka_unit_test(remote_error_names_its_node),
        cmocka_unit_test(cancel_reaches_a_running_remote_call),
    };
    uv_loop_init(&loop);
    int failed = hosts ? cmocka_run_group_tests(over_hosts, NULL, NULL)
                       : cmocka_run_group_tests(tests, NULL, NULL);
    ppx_pool_free(pool);
    uv_run(&loop, UV_RUN_DEFAULT); /* the binding's handles close */
    if (uv_loop_close(&loop) != 0) {
        fprintf(stderr, "test_mpi: the loop still has handles\n");
        failed = 1;
    }
    unlink(start_err);
    support_mpi_status(failed);
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
    if (system(cmd) != 0) /* a node may still be writing: once more */
        support_sleep_ms(100), (void)!system(cmd);
    return failed ? 1 : 0;
}
