/* A pool that survives its workers: crash storms, deadlines, initializers,
 * recycling, descriptor hygiene, parent death, and chaos. */
#include "support.h"
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

/* Shared with workers. */
typedef struct shared_counters {
    _Atomic int marks;
    _Atomic int inits;
    _Atomic int init_fail_after; /* initializer fails once inits exceeds it */
} shared_counters;
static shared_counters *sc;
static int worker_init_value; /* set in each worker by the initializer */


static int fn_add(ppx_call *c, void *u)
{
    int64_t a, b;
    ppx_call_arg_int(c, 0, &a);
    ppx_call_arg_int(c, 1, &b);
    return ppx_return_int(c, a + b);
}

static int fn_crash(ppx_call *c, void *u)
{
    raise(SIGSEGV);
    return 0;
}

static int fn_exit(ppx_call *c, void *u)
{
    _exit(3);
}

static int fn_spin_forever(ppx_call *c, void *u)
{
    for (;;)
        pause();
    return 0;
}

static int fn_wait_cancel(ppx_call *c, void *u)
{
    while (!ppx_call_cancelled(c))
        support_sleep_ms(1);
    return 0;
}

static int fn_mark(ppx_call *c, void *u)
{
    atomic_fetch_add(&sc->marks, 1);
    return 0;
}

static int fn_pid(ppx_call *c, void *u)
{
    return ppx_return_int(c, getpid());
}

static int fn_init_value(ppx_call *c, void *u)
{
    return ppx_return_int(c, worker_init_value);
}

static char *volatile grown; /* escapes, so the compiler keeps the pages */

static int fn_grow(ppx_call *c, void *u)
{
    size_t n = 64u << 20;
    char *p = malloc(n);
    if (!p)
        return ppx_raise(c, "MemoryError", "no memory");
    memset(p, 1, n); /* resident, and kept: this worker has grown */
    grown = p;
    return ppx_return_int(c, grown[n - 1]);
}

/* How many sockets the worker holds (descriptor numbers get reused, so
 * look at what each one is). */
static int fn_sockets_open(ppx_call *c, void *u)
{
    int n = 0;
    for (int fd = 0; fd < 1024; fd++) {
        char path[64], target[128];
        snprintf(path, sizeof path, "/proc/self/fd/%d", fd);
        ssize_t len = readlink(path, target, sizeof target - 1);
        if (len > 0) {
            target[len] = '\0';
            n += strncmp(target, "socket:", 7) == 0;
        }
    }
    return ppx_return_int(c, n);
}

static int fn_open_fds(ppx_call *c, void *u)
{
    return ppx_return_int(c, support_open_fds());
}

/* add_slowly(a, b): a + b after roughly a hundred microseconds of work. */
static int fn_add_slowly(ppx_call *c, void *u)
{
    int64_t a, b;
    ppx_call_arg_int(c, 0, &a);
    ppx_call_arg_int(c, 1, &b);
    struct timespec ts = {0, 100000};
    nanosleep(&ts, NULL);
    return ppx_return_int(c, a + b);
}

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

static ppx_pool *new_pool(ppx_pool_options o)
{
    ppx_pool *p = NULL;
    support_valgrind_sizes(&o);
    assert_int_equal(ppx_pool_new(&o, &p), 0);
    return p;
}


static int64_t call_int(ppx_pool *p, const char *fn)
{
    ppx_future *f;
    assert_int_equal(ppx_pool_submitf(p, &f, fn, ""), 0);
    assert_int_equal(ppx_future_wait(f, 20000), 0);
    int64_t v = -1;
    assert_int_equal(ppx_future_int(f, &v), 0);
    ppx_future_unref(f);
    return v;
}

static int teardown(void **state)
{
    assert_true(support_no_children());
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

/* Under valgrind a process's resident size and descriptors include the
 * tool's own, so tests that measure those are skipped there. */
static bool under_valgrind(void)
{
    return getenv("PPX_UNDER_VALGRIND") != NULL;
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
    sc = mmap(NULL, sizeof *sc, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    ppx_register("add", fn_add, NULL);
    ppx_register("add_slowly", fn_add_slowly, NULL);
    ppx_register("crash", fn_crash, NULL);
    ppx_register("exit", fn_exit, NULL);
    ppx_register("spin_forever", fn_spin_forever, NULL);
    ppx_register("wait_cancel", fn_wait_cancel, NULL);
    ppx_register("mark", fn_mark, NULL);
    ppx_register("pid", fn_pid, NULL);
    ppx_register("init_value", fn_init_value, NULL);
    ppx_register("grow", fn_grow, NULL);
    ppx_register("sockets_open", fn_sockets_open, NULL);
    ppx_register("open_fds", fn_open_fds, NULL);

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
        cmocka_unit_test_teardown(test_workers_do_not_keep_the_applications_descriptors, teardown),
        cmocka_unit_test_teardown(test_parent_killed_takes_fork_server_and_busy_workers_with_it, teardown),
        cmocka_unit_test_teardown(test_killed_fork_server_fails_running_calls_and_pool_recovers, teardown),
        cmocka_unit_test_teardown(test_respawns_while_libuv_threads_are_busy_do_not_deadlock, teardown),
        cmocka_unit_test_teardown(test_chaos_every_future_resolves_once_with_its_own_workers_error, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
