/* A pool that survives its workers: descriptor hygiene, parent and fork
 * server death, respawns under busy libuv threads, and chaos. */
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

/* ---- no orphans, no leaks ----------------------------------------------- */

static void test_workers_do_not_keep_the_applications_descriptors(void **state)
{
    int listener = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    assert_int_equal(bind(listener, (struct sockaddr *)&a, sizeof a), 0);
    assert_int_equal(listen(listener, 16), 0);
    ppx_pool *p = new_pool(PPX_POOL_OPTIONS(.workers = 1));
    /* Not the listener, nor the zygote's socket to the parent. */
    assert_int_equal(call_int(p, "sockets_open"), 0);
    /* stdin, stdout, stderr and the pool's eventfd. */
    if (!under_valgrind())
        assert_int_equal(call_int(p, "open_fds"), 4);
    ppx_pool_free(p);
    close(listener);
}

/* Children of pid, from /proc. */
static int children_of(pid_t pid, pid_t *out, int max)
{
    char path[64];
    snprintf(path, sizeof path, "/proc/%d/task/%d/children", (int)pid, (int)pid);
    FILE *f = fopen(path, "r");
    int n = 0, c;
    while (f && n < max && fscanf(f, "%d", &c) == 1)
        out[n++] = c;
    if (f)
        fclose(f);
    return n;
}

/* Gone, or a zombie waiting for whoever adopted it. */
static bool process_gone(pid_t pid)
{
    char path[64], buf[256];
    snprintf(path, sizeof path, "/proc/%d/stat", (int)pid);
    FILE *f = fopen(path, "r");
    if (!f)
        return true;
    size_t n = fread(buf, 1, sizeof buf - 1, f);
    fclose(f);
    buf[n] = '\0';
    const char *paren = strrchr(buf, ')');
    return paren && (paren[2] == 'Z' || paren[2] == 'X');
}

static void test_parent_killed_takes_fork_server_and_busy_workers_with_it(void **state)
{
    int ready[2];
    assert_int_equal(pipe(ready), 0);
    pid_t app = fork();
    if (app == 0) {
        close(ready[0]);
        ppx_pool *p;
        ppx_pool_options o = PPX_POOL_OPTIONS(.workers = 2);
        support_valgrind_sizes(&o);
        if (ppx_pool_new(&o, &p))
            _exit(1);
        ppx_future *f[2];
        for (int i = 0; i < 2; i++)
            if (ppx_pool_submitf(p, &f[i], "spin_forever", ""))
                _exit(1);
        for (int i = 0; i < 2; i++)
            while (ppx_future_state(f[i]) != PPX_RUNNING)
                ppx_future_wait(f[i], 2);
        if (write(ready[1], "R", 1) != 1)
            _exit(1);
        for (;;)
            pause();
    }
    close(ready[1]);
    char r;
    assert_int_equal(read(ready[0], &r, 1), 1);
    close(ready[0]);
    pid_t zygote[4], workers[8];
    assert_int_equal(children_of(app, zygote, 4), 1);
    assert_int_equal(children_of(zygote[0], workers, 8), 2);

    assert_int_equal(kill(app, SIGKILL), 0);
    int st;
    assert_int_equal(waitpid(app, &st, 0), app);
    int64_t end = support_now_ms() + 1000;
    bool all_gone = false;
    while (!all_gone && support_now_ms() < end) {
        all_gone = process_gone(zygote[0]) && process_gone(workers[0]) && process_gone(workers[1]);
        support_sleep_ms(5);
    }
    assert_true(all_gone);
}

static void test_killed_fork_server_fails_running_calls_and_pool_recovers(void **state)
{
    ppx_pool *p = new_pool(PPX_POOL_OPTIONS(.workers = 2));
    ppx_future *f;
    assert_int_equal(ppx_pool_submitf(p, &f, "wait_cancel", ""), 0);
    support_wait_running(f);
    pid_t kids[4];
    assert_int_equal(children_of(getpid(), kids, 4), 1); /* the zygote only */
    assert_int_equal(kill(kids[0], SIGKILL), 0);
    assert_int_equal(ppx_future_wait(f, 20000), 0);
    assert_string_equal(ppx_future_error(f)->type, "WorkerCrashed");
    assert_non_null(strstr(ppx_future_error(f)->message, "fork server"));
    for (int i = 0; i < 20; i++)
        assert_true(call_int(p, "pid") > 0);
    ppx_future_unref(f);
    ppx_pool_free(p);
}

/* ---- threads in the parent ------------------------------------------------ */

static _Atomic int stop_threads;

static void churn(uv_work_t *req)
{
    /* Keep libuv's threads inside malloc and stdio, where a fork from this
     * process would catch their locks held. */
    while (!atomic_load(&stop_threads)) {
        char *p = malloc(4096);
        snprintf(p, 4096, "%p", (void *)p);
        free(p);
    }
}

static void churn_done(uv_work_t *req, int status) {}

static void test_respawns_while_libuv_threads_are_busy_do_not_deadlock(void **state)
{
    /* Valgrind runs one thread at a time, so the race this is about cannot
     * happen there, and the churning threads starve the test for minutes. */
    if (under_valgrind())
        skip();
    ppx_pool *p = new_pool(PPX_POOL_OPTIONS(.workers = 2));
    uv_loop_t loop;
    uv_loop_init(&loop);
    uv_work_t work[4];
    atomic_store(&stop_threads, 0);
    for (int i = 0; i < 4; i++)
        uv_queue_work(&loop, &work[i], churn, churn_done);
    const int rounds = 10;
    for (int round = 0; round < rounds; round++) {
        ppx_future *bad;
        assert_int_equal(ppx_pool_submitf(p, &bad, "crash", ""), 0);
        assert_int_equal(ppx_future_wait(bad, 20000), 0);
        ppx_future_unref(bad);
        assert_true(call_int(p, "pid") > 0);
    }
    atomic_store(&stop_threads, 1);
    uv_run(&loop, UV_RUN_DEFAULT);
    assert_int_equal(uv_loop_close(&loop), 0);
    support_drain(p, 20000); /* the last replacement reports in */
    ppx_pool_stats st = PPX_POOL_STATS_INIT;
    ppx_pool_stats_get(p, &st);
    assert_true(st.respawns >= (uint64_t)rounds);
    ppx_pool_free(p);
}

/* ---- chaos ------------------------------------------------------------- */

typedef struct chaos_rec {
    int resolved;
} chaos_rec;

static void chaos_cb(ppx_future *f, void *arg)
{
    ((chaos_rec *)arg)->resolved++;
}

static void test_chaos_every_future_resolves_once_with_its_own_workers_error(void **state)
{
    int fds = support_open_fds();
    int shm = support_dev_shm_entries();
    ppx_pool *p = new_pool(PPX_POOL_OPTIONS(.workers = 2, .ring_bytes = 16384));
    /* Every kill costs a respawn, a second or more under valgrind: there
     * the same chaos, on a fifth of the calls. */
    const int N = under_valgrind() ? 600 : 3000;
    ppx_future **f = calloc(N, sizeof *f);
    chaos_rec *rec = calloc(N, sizeof *rec);
    long killed[512];
    int nkilled = 0;
    unsigned seed = 12345;
    for (int i = 0; i < N; i++) {
        const char *fn = i % 97 == 13 ? "exit" : "add_slowly";
        assert_int_equal(ppx_pool_submitf(p, &f[i], fn, "ii", i, 7), 0);
        assert_int_equal(ppx_future_add_done_callback(f[i], chaos_cb, &rec[i]), 0);
        if (i % 40 == 39 && nkilled < 512) {
            /* Drive a little, then hit a random worker. */
            ppx_future_wait(f[i - 20], 50);
            long pid = support_worker_pid(p, (int)(rand_r(&seed) % 2));
            static const int sigs[] = {SIGKILL, SIGSEGV, SIGTERM};
            if (pid > 0 && kill((pid_t)pid, sigs[rand_r(&seed) % 3]) == 0)
                killed[nkilled++] = pid;
        }
    }
    int ok = 0, crashed = 0;
    for (int i = 0; i < N; i++) {
        assert_int_equal(ppx_future_wait(f[i], 60000), 0);
        ppx_state st = ppx_future_state(f[i]);
        if (st == PPX_DONE) {
            int64_t v;
            assert_int_equal(ppx_future_int(f[i], &v), 0);
            assert_int_equal(v, i + 7);
            ok++;
            continue;
        }
        assert_int_equal(st, PPX_FAILED);
        const ppx_error *e = ppx_future_error(f[i]);
        assert_string_equal(e->type, "WorkerCrashed");
        if (i % 97 == 13 && strstr(e->message, "status 3"))
            continue; /* its own exit */
        bool ours = false;
        for (int k = 0; k < nkilled; k++)
            ours |= killed[k] == e->pid;
        if (!ours) /* it must have died with a worker we killed */
            fail_msg("task %d failed with '%s' (pid %ld)", i, e->message, e->pid);
        crashed++;
    }
    support_drain(p, 20000);
    for (int i = 0; i < N; i++) {
        assert_int_equal(rec[i].resolved, 1);
        ppx_future_unref(f[i]);
    }
    assert_true(nkilled > 10);
    assert_true(ok > N / 2);
    ppx_pool_free(p);
    free(f);
    free(rec);
    assert_int_equal(support_open_fds(), fds);
    assert_int_equal(support_dev_shm_entries(), shm);
    assert_true(support_no_children());
}

int main(void)
{
    lifecycle_support_register();

    const struct CMUnitTest tests[] = {
        cmocka_unit_test_teardown(test_workers_do_not_keep_the_applications_descriptors, teardown),
        cmocka_unit_test_teardown(test_parent_killed_takes_fork_server_and_busy_workers_with_it, teardown),
        cmocka_unit_test_teardown(test_killed_fork_server_fails_running_calls_and_pool_recovers, teardown),
        cmocka_unit_test_teardown(test_respawns_while_libuv_threads_are_busy_do_not_deadlock, teardown),
        cmocka_unit_test_teardown(test_chaos_every_future_resolves_once_with_its_own_workers_error, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
