/*
 * Process hygiene: what workers inherit from the application (signal
 * dispositions, the signal mask, descriptors) and what they leave behind
 * (processes a function started), and the fork server's watch on the
 * process that created it (see docs/FAILURE_MODEL.md, "Where workers come
 * from" and "When the parent dies").
 */
#include "hostile.h"
#include "support.h"
#include "ppx.h"
#include "procpool/worker/fds.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

/* A process that must be gone is given this long: a hang guard only. */
#define GONE_MS 10000

static int teardown(void **state)
{
    (void)state;
    assert_true(support_no_children());
    return 0;
}

static ppx_pool *make_pool(int workers, bool keep_descendants)
{
    ppx_pool *p = NULL;
    ppx_pool_options o = PPX_POOL_OPTIONS(.workers = workers, .ring_bytes = 64 << 10,
                          .keep_descendants = keep_descendants);
    support_valgrind_sizes(&o);
    assert_int_equal(ppx_pool_new(&o, &p), 0);
    return p;
}

static int64_t call_int(ppx_pool *p, const char *fn, int arg)
{
    ppx_future *f;
    int64_t v = 0;
    assert_int_equal(ppx_pool_submitf(p, &f, fn, "i", arg), 0);
    assert_int_equal(ppx_future_wait(f, 30000), 0);
    if (ppx_future_int(f, &v) != 0)
        fail_msg("%s: expected a value, got %s: %s", fn, ppx_future_error(f)->type,
                 ppx_future_error(f)->message);
    ppx_future_unref(f);
    return v;
}

/* A call that must kill its worker: the error it gets. want is a part of
 * the message ("exited with status 3"). */
static void call_crashes(ppx_pool *p, const char *fn, int arg, const char *want)
{
    ppx_future *f;
    assert_int_equal(ppx_pool_submitf(p, &f, fn, "i", arg), 0);
    assert_int_equal(ppx_future_wait(f, 30000), 0);
    const ppx_error *e = ppx_future_error(f);
    assert_non_null(e);
    assert_string_equal(e->type, "WorkerCrashed");
    if (!strstr(e->message, want))
        fail_msg("'%s' does not say '%s'", e->message, want);
    ppx_future_unref(f);
}

/* The pool answers fresh calls with the right values. */
static void serves(ppx_pool *p)
{
    for (int i = 0; i < 4; i++) {
        ppx_future *f;
        int64_t v = 0;
        assert_int_equal(ppx_pool_submitf(p, &f, "add", "ii", i, 1000), 0);
        assert_int_equal(ppx_future_wait(f, 30000), 0);
        assert_int_equal(ppx_future_int(f, &v), 0);
        assert_int_equal(v, i + 1000);
        ppx_future_unref(f);
    }
}

/* ---- worker functions -------------------------------------------------- */

/* write_closed_pipe(): writes to a pipe whose reader is closed; returns
 * the errno (EPIPE when SIGPIPE is ignored: otherwise the worker dies). */
static int fn_write_closed_pipe(ppx_call *c, void *u)
{
    (void)u;
    int fds[2];
    if (pipe(fds) != 0)
        return ppx_raise(c, "OSError", "pipe: %s", strerror(errno));
    close(fds[0]);
    ssize_t r = write(fds[1], "x", 1);
    int err = r < 0 ? errno : 0;
    close(fds[1]);
    return ppx_return_int(c, err);
}

/* signal_state(sig): 10 * (0 default, 1 ignored, 2 handler) + blocked. */
static int fn_signal_state(ppx_call *c, void *u)
{
    (void)u;
    int64_t sig;
    ppx_call_arg_int(c, 0, &sig);
    struct sigaction sa;
    sigset_t mask;
    sigaction((int)sig, NULL, &sa);
    sigprocmask(SIG_SETMASK, NULL, &mask);
    int disp = sa.sa_handler == SIG_DFL ? 0 : sa.sa_handler == SIG_IGN ? 1 : 2;
    return ppx_return_int(c, disp * 10 + sigismember(&mask, (int)sig));
}

static int fn_raise(ppx_call *c, void *u)
{
    (void)u;
    int64_t sig;
    ppx_call_arg_int(c, 0, &sig);
    raise((int)sig);
    return ppx_return_int(c, 0);
}

/* open_fds(): "fd=target,..." for every descriptor above 2 (below the soft
 * limit: valgrind keeps its own above it). */
static int fn_open_fds(ppx_call *c, void *u)
{
    (void)u;
    struct rlimit rl;
    getrlimit(RLIMIT_NOFILE, &rl);
    DIR *d = opendir("/proc/self/fd");
    if (!d)
        return ppx_raise(c, "OSError", "opendir: %s", strerror(errno));
    char out[1024] = "";
    size_t used = 0;
    struct dirent *e;
    while ((e = readdir(d))) {
        int fd = atoi(e->d_name);
        if (e->d_name[0] == '.' || fd <= 2 || fd == dirfd(d) || (rlim_t)fd >= rl.rlim_cur)
            continue;
        char path[64], target[256];
        snprintf(path, sizeof path, "/proc/self/fd/%d", fd);
        ssize_t n = readlink(path, target, sizeof target - 1);
        target[n < 0 ? 0 : n] = '\0';
        used += (size_t)snprintf(out + used, sizeof out - used, "%s%d=%s", used ? "," : "", fd,
                                 target);
        if (used >= sizeof out)
            break;
    }
    closedir(d);
    return ppx_return_str(c, out, strlen(out));
}

/* A process that sleeps until killed, never returning into ppx. */
_Noreturn static void sleep_forever(void)
{
    for (;;)
        pause();
}

/* spawn_sleeper(mode): starts a process that sleeps until killed and
 * returns its pid. mode 0: a child of the worker. mode 1: a daemon, forked
 * twice with setsid() between (its parent exits at once, as daemon() does). */
static int fn_spawn_sleeper(ppx_call *c, void *u)
{
    (void)u;
    int64_t mode;
    ppx_call_arg_int(c, 0, &mode);
    if (mode == 0) {
        pid_t pid = fork();
        if (pid == 0)
            sleep_forever();
        return pid < 0 ? ppx_raise(c, "OSError", "fork: %s", strerror(errno))
                       : ppx_return_int(c, pid);
    }
    /* Above the low numbers: the forked copy runs the application's
     * atfork handlers, and libuv's closes the numbers of its signal lock
     * pipe, which in a worker may be ours (docs/FAILURE_MODEL.md). */
    int fds[2], tmp[2];
    if (pipe(tmp) != 0)
        return ppx_raise(c, "OSError", "pipe: %s", strerror(errno));
    fds[0] = fcntl(tmp[0], F_DUPFD, 64);
    fds[1] = fcntl(tmp[1], F_DUPFD, 64);
    close(tmp[0]);
    close(tmp[1]);
    if (fds[0] < 0 || fds[1] < 0)
        return ppx_raise(c, "OSError", "fcntl: %s", strerror(errno));
    pid_t mid = fork();
    if (mid == 0) {
        setsid();
        pid_t pid = fork();
        if (pid == 0)
            sleep_forever();
        ssize_t w = write(fds[1], &pid, sizeof pid);
        _exit(w == (ssize_t)sizeof pid ? 0 : 1);
    }
    close(fds[1]);
    pid_t pid = -1;
    ssize_t r = mid < 0 ? -1 : read(fds[0], &pid, sizeof pid);
    close(fds[0]);
    if (mid > 0)
        waitpid(mid, NULL, 0);
    if (r != (ssize_t)sizeof pid || pid <= 0)
        return ppx_raise(c, "OSError", "the daemon did not start");
    return ppx_return_int(c, pid);
}

void hostile_process_register(void)
{
    ppx_register("write_closed_pipe", fn_write_closed_pipe, NULL);
    ppx_register("signal_state", fn_signal_state, NULL);
    ppx_register("raise", fn_raise, NULL);
    ppx_register("open_fds", fn_open_fds, NULL);
    ppx_register("spawn_sleeper", fn_spawn_sleeper, NULL);
}

/* ---- signals ----------------------------------------------------------- */

static void test_sigpipe_ignored_by_the_application_gives_a_function_epipe_not_a_crash(void **state)
{
    (void)state;
    struct sigaction ign = {.sa_handler = SIG_IGN}, old;
    sigemptyset(&ign.sa_mask);
    sigaction(SIGPIPE, &ign, &old);
    ppx_pool *p = make_pool(1, false);
    sigaction(SIGPIPE, &old, NULL);
    long pid = support_worker_pid(p, 0);
    assert_int_equal(call_int(p, "signal_state", SIGPIPE), 10);
    for (int i = 0; i < 3; i++)
        assert_int_equal(call_int(p, "write_closed_pipe", 0), EPIPE);
    assert_int_equal(support_worker_pid(p, 0), pid);
    ppx_pool_stats st = PPX_POOL_STATS_INIT;
    ppx_pool_stats_get(p, &st);
    assert_int_equal(st.crashed, 0);
    serves(p);
    ppx_pool_free(p);
}

static void test_sigpipe_left_default_by_the_application_kills_the_worker_as_it_would_the_app(void **state)
{
    (void)state;
    struct sigaction dfl = {.sa_handler = SIG_DFL}, old;
    sigemptyset(&dfl.sa_mask);
    sigaction(SIGPIPE, &dfl, &old);
    ppx_pool *p = make_pool(1, false);
    sigaction(SIGPIPE, &old, NULL);
    call_crashes(p, "write_closed_pipe", 0, "was killed by signal 13 (SIGPIPE)");
    serves(p);
    ppx_pool_free(p);
}

/* Counts runs of the handler in any process: the mapping is shared. */
static _Atomic int *handler_runs;

static void count_run(int sig)
{
    (void)sig;
    atomic_fetch_add(handler_runs, 1);
}

static void test_a_handler_installed_by_the_application_never_runs_in_a_worker(void **state)
{
    (void)state;
    handler_runs = mmap(NULL, sizeof *handler_runs, PROT_READ | PROT_WRITE,
                        MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    assert_true(handler_runs != MAP_FAILED);
    struct sigaction sa = {.sa_handler = count_run}, old;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGUSR1, &sa, &old);
    ppx_pool *p = make_pool(1, false);
    assert_int_equal(call_int(p, "signal_state", SIGUSR1), 0);
    call_crashes(p, "raise", SIGUSR1, "was killed by signal 10 (SIGUSR1)");
    assert_int_equal(atomic_load(handler_runs), 0);
    serves(p);
    ppx_pool_free(p);
    raise(SIGUSR1); /* the application's own handler still works */
    assert_int_equal(atomic_load(handler_runs), 1);
    sigaction(SIGUSR1, &old, NULL);
    munmap((void *)handler_runs, sizeof *handler_runs);
}

static void test_workers_get_the_applications_sigchld_and_mask_and_sigint_is_ignored(void **state)
{
    (void)state;
    struct sigaction ign = {.sa_handler = SIG_IGN}, old;
    sigemptyset(&ign.sa_mask);
    sigset_t usr2, before;
    sigemptyset(&usr2);
    sigaddset(&usr2, SIGUSR2);
    sigaction(SIGCHLD, &ign, &old);
    sigprocmask(SIG_BLOCK, &usr2, &before);
    ppx_pool *p = make_pool(1, false);
    sigprocmask(SIG_SETMASK, &before, NULL);
    sigaction(SIGCHLD, &old, NULL);
    assert_int_equal(call_int(p, "signal_state", SIGCHLD), 10);
    assert_int_equal(call_int(p, "signal_state", SIGUSR2), 1);
    assert_int_equal(call_int(p, "signal_state", SIGINT), 10);
    assert_int_equal(call_int(p, "signal_state", SIGTERM), 0);
    /* The zygote reaps for itself whatever the application does. */
    call_crashes(p, "exit_with", 3, "exited with status 3");
    serves(p);
    ppx_pool_free(p);
}

/* ---- descriptors ------------------------------------------------------- */

/* In a child: opens descriptors at 40, 41 and 300, closes from 40 with
 * the given ways avoided; the exit status is the way used, or 10 + what
 * went wrong. */
static int close_from_in_child(unsigned avoid)
{
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        int fd = open("/dev/null", O_RDONLY);
        if (fd < 0 || dup2(fd, 39) != 39 || dup2(fd, 40) != 40 || dup2(fd, 41) != 41 ||
            dup2(fd, 300) != 300)
            _exit(10);
        int way = ppx__close_from(40, avoid);
        if (fcntl(40, F_GETFD) >= 0 || fcntl(41, F_GETFD) >= 0 || fcntl(300, F_GETFD) >= 0)
            _exit(11);
        if (fcntl(39, F_GETFD) < 0 || fcntl(fd, F_GETFD) < 0)
            _exit(12);
        _exit(way);
    }
    int st;
    assert_int_equal(waitpid(pid, &st, 0), pid);
    assert_true(WIFEXITED(st));
    return WEXITSTATUS(st);
}

static void test_close_from_closes_every_descriptor_from_a_number_up_by_each_way(void **state)
{
    (void)state;
    int way = close_from_in_child(0);
    assert_true(way == 0 || way == 1); /* 1: valgrind may lack close_range */
    assert_int_equal(close_from_in_child(PPX__FDS_NO_CLOSE_RANGE), 1);
    assert_int_equal(close_from_in_child(PPX__FDS_NO_CLOSE_RANGE | PPX__FDS_NO_PROC), 2);
}

/* Descriptors of the application, none close-on-exec, one far up. */
static void open_extras(int fds[5])
{
    assert_int_equal(pipe(fds), 0);
    fds[2] = open("/dev/null", O_RDWR);
    fds[3] = socket(AF_UNIX, SOCK_STREAM, 0);
    fds[4] = dup2(fds[2], 200);
    for (int i = 0; i < 5; i++)
        assert_true(fds[i] > 2);
}

static void test_a_worker_sees_none_of_the_applications_descriptors_whichever_way_they_close(void **state)
{
    (void)state;
    int extra[5];
    open_extras(extra);
    static const unsigned avoid[] = {0, PPX__FDS_NO_CLOSE_RANGE,
                                     PPX__FDS_NO_CLOSE_RANGE | PPX__FDS_NO_PROC};
    for (size_t k = 0; k < sizeof avoid / sizeof *avoid; k++) {
        ppx__fds_avoid = avoid[k];
        ppx_pool *p = make_pool(2, false);
        ppx__fds_avoid = 0;
        for (int i = 0; i < 4; i++) { /* both workers, whichever runs it */
            ppx_future *f;
            ppx_value v;
            const char *s;
            size_t n;
            assert_int_equal(ppx_pool_submitf(p, &f, "open_fds", ""), 0);
            assert_int_equal(ppx_future_wait(f, 30000), 0);
            assert_int_equal(ppx_future_value(f, &v), 0);
            assert_int_equal(ppx_value_str(v, &s, &n), 0);
            /* The pool's eventfd alone, renumbered to 3. */
            if (n != strlen("3=anon_inode:[eventfd]") || memcmp(s, "3=anon_inode:[eventfd]", n))
                fail_msg("avoid %u: a worker has %.*s", avoid[k], (int)n, s);
            ppx_future_unref(f);
        }
        serves(p);
        ppx_pool_free(p);
    }
    for (int i = 0; i < 5; i++)
        close(extra[i]);
}

/* ---- descendants ------------------------------------------------------- */

static void test_a_workers_descendants_go_with_it_when_it_is_replaced(void **state)
{
    (void)state;
    ppx_pool *p = make_pool(1, false);
    for (int mode = 0; mode < 2; mode++) {
        long g = (long)call_int(p, "spawn_sleeper", mode);
        assert_false(support_process_gone(g));
        call_crashes(p, "exit_with", 3, "exited with status 3");
        support_wait_gone(g, GONE_MS);
        serves(p);
    }
    ppx_pool_free(p);
    /* Recycled after each call: the daemon of the call goes too. */
    ppx_pool_options o = PPX_POOL_OPTIONS(.workers = 1, .max_tasks_per_child = 1);
    support_valgrind_sizes(&o);
    assert_int_equal(ppx_pool_new(&o, &p), 0);
    long g = (long)call_int(p, "spawn_sleeper", 1);
    support_wait_gone(g, GONE_MS);
    serves(p);
    ppx_pool_free(p);
}

static void test_a_workers_descendants_go_with_the_pool(void **state)
{
    (void)state;
    ppx_pool *p = make_pool(2, false);
    long g[4];
    for (int i = 0; i < 4; i++)
        g[i] = (long)call_int(p, "spawn_sleeper", i & 1);
    for (int i = 0; i < 4; i++)
        assert_false(support_process_gone(g[i]));
    serves(p);
    ppx_pool_free(p);
    for (int i = 0; i < 4; i++)
        support_wait_gone(g[i], GONE_MS);
}

static void test_keep_descendants_leaves_them_running_after_replacement_and_free(void **state)
{
    (void)state;
    ppx_pool *p = make_pool(1, true);
    long g[2];
    for (int mode = 0; mode < 2; mode++)
        g[mode] = (long)call_int(p, "spawn_sleeper", mode);
    call_crashes(p, "exit_with", 3, "exited with status 3");
    serves(p);
    ppx_pool_free(p);
    for (int mode = 0; mode < 2; mode++) {
        assert_false(support_process_gone(g[mode]));
        assert_int_equal(kill((pid_t)g[mode], SIGKILL), 0);
        support_wait_gone(g[mode], GONE_MS);
    }
}

/* ---- the creator's death ----------------------------------------------- */

/* The creator: makes a pool, forks a copy of itself that keeps every
 * descriptor (a raw clone runs no atfork handler, so the copy surely
 * holds the lifeline and the socket), reports {zygote, worker 0, worker 1,
 * copy} on out and sleeps. */
_Noreturn static void be_creator(int out)
{
    ppx_pool *p = NULL;
    ppx_pool_options o = PPX_POOL_OPTIONS(.workers = 2);
    support_valgrind_sizes(&o);
    if (ppx_pool_new(&o, &p) != 0)
        _exit(1);
    long pids[4] = {0, support_worker_pid(p, 0), support_worker_pid(p, 1), 0};
    pids[0] = support_parent_of(pids[1]);
    long copy = syscall(SYS_clone, SIGCHLD, 0, 0, 0, 0);
    if (copy == 0)
        sleep_forever();
    pids[3] = copy;
    if (write(out, pids, sizeof pids) != (ssize_t)sizeof pids)
        _exit(1);
    sleep_forever();
}

static void test_the_zygote_and_workers_die_with_their_creator_while_a_copy_of_it_lives(void **state)
{
    (void)state;
    int fds[2];
    assert_int_equal(pipe(fds), 0);
    pid_t creator = fork();
    assert_true(creator >= 0);
    if (creator == 0) {
        close(fds[0]);
        be_creator(fds[1]);
    }
    close(fds[1]);
    long pids[4];
    assert_int_equal(read(fds[0], pids, sizeof pids), (ssize_t)sizeof pids);
    close(fds[0]);
    assert_int_equal(support_parent_of(pids[0]), creator);
    assert_int_equal(support_parent_of(pids[3]), creator);
    for (int i = 0; i < 3; i++)
        assert_false(support_process_gone(pids[i]));
    assert_int_equal(kill(creator, SIGKILL), 0);
    assert_int_equal(waitpid(creator, NULL, 0), creator);
    for (int i = 0; i < 3; i++)
        support_wait_gone(pids[i], GONE_MS);
    assert_false(support_process_gone(pids[3])); /* the copy was not the target */
    kill((pid_t)pids[3], SIGKILL);
    support_wait_gone(pids[3], GONE_MS);
}

int hostile_process_run(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_teardown(test_sigpipe_ignored_by_the_application_gives_a_function_epipe_not_a_crash, teardown),
        cmocka_unit_test_teardown(test_sigpipe_left_default_by_the_application_kills_the_worker_as_it_would_the_app, teardown),
        cmocka_unit_test_teardown(test_a_handler_installed_by_the_application_never_runs_in_a_worker, teardown),
        cmocka_unit_test_teardown(test_workers_get_the_applications_sigchld_and_mask_and_sigint_is_ignored, teardown),
        cmocka_unit_test_teardown(test_close_from_closes_every_descriptor_from_a_number_up_by_each_way, teardown),
        cmocka_unit_test_teardown(test_a_worker_sees_none_of_the_applications_descriptors_whichever_way_they_close, teardown),
        cmocka_unit_test_teardown(test_a_workers_descendants_go_with_it_when_it_is_replaced, teardown),
        cmocka_unit_test_teardown(test_a_workers_descendants_go_with_the_pool, teardown),
        cmocka_unit_test_teardown(test_keep_descendants_leaves_them_running_after_replacement_and_free, teardown),
        cmocka_unit_test_teardown(test_the_zygote_and_workers_die_with_their_creator_while_a_copy_of_it_lives, teardown),
    };
    return cmocka_run_group_tests_name("hostile_process", tests, NULL, NULL);
}
