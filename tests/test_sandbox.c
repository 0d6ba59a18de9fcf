/* The workers' sandbox, resource limits and scheduling (ppx.h,
 * ppx_pool_options; docs/SECURITY.md): each forbidden action fails only
 * its call, as "SandboxViolation" naming the system call, the function,
 * the pid and the task, and the same function runs without the sandbox;
 * what a computing function needs keeps working; a memory cap turns a
 * 2 GiB allocation into a clean MemoryError; limits and scheduling are
 * what a function reads back from inside its worker.
 *
 * Where seccomp filters are unavailable (a kernel without them, or
 * valgrind, which does not run seccomp(2)), ppx_pool_new refuses a
 * sandbox with PPX_ENOTSUP, and the sandbox tests skip saying so. */
#include "support.h"
#include "sandbox_fns.h"
#include "ppx.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#if defined(__has_feature)
#if __has_feature(thread_sanitizer)
#define __SANITIZE_THREAD__ 1
#endif
#endif

/* A function's malloc beyond RLIMIT_AS must return NULL, as it does
 * without a sanitizer, rather than end the worker with the sanitizer's
 * report. */
#if defined(__SANITIZE_ADDRESS__)
const char *__asan_default_options(void);
const char *__asan_default_options(void)
{
    return "allocator_may_return_null=1";
}
#endif
#if defined(__SANITIZE_THREAD__)
const char *__tsan_default_options(void);
const char *__tsan_default_options(void)
{
    return "allocator_may_return_null=1";
}
#endif

/* Skips the test under the valgrind setup, saying why. */
static void skip_under_valgrind(const char *why)
{
    if (getenv("PPX_UNDER_VALGRIND")) {
        print_message("skipped under valgrind: %s\n", why);
        skip();
    }
}

/* ---- helpers ------------------------------------------------------------ */

static char tmp_path[64];

static int setup(void **state)
{
    (void)state;
    snprintf(tmp_path, sizeof tmp_path, "/tmp/ppx_sandbox_%ld", (long)getpid());
    FILE *f = fopen(tmp_path, "w");
    if (!f)
        return -1;
    fputs("Z contents", f);
    fclose(f);
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    unlink(tmp_path);
    return support_no_children() ? 0 : -1;
}

/* A pool from o, or a skip with the reason where a sandbox cannot be. */
static ppx_pool *pool_or_skip(ppx_pool_options o)
{
    support_valgrind_sizes(&o);
    ppx_pool *p = NULL;
    int rc = ppx_pool_new(&o, &p);
    if (rc == PPX_ENOTSUP && o.sandbox) {
        print_message("skipped: %s\n", ppx_last_error());
        skip();
    }
    if (rc)
        fail_msg("ppx_pool_new: %s: %s", ppx_err_name(rc), ppx_last_error());
    return p;
}

static ppx_future *submit(ppx_pool *p, const char *fn, const char *fmt, ...)
{
    void *args;
    size_t len;
    va_list ap;
    va_start(ap, fmt);
    assert_int_equal(ppx_vpack(&args, &len, fmt, ap), 0);
    va_end(ap);
    ppx_future *f = NULL;
    assert_int_equal(ppx_pool_submit_ex(p, fn, args, len, NULL, &f), 0);
    free(args);
    return f;
}

/* Waits for f and checks it failed with type, its message holding each
 * of the NULL-terminated strings, pid and task its own. */
static void assert_failed(ppx_future *f, const char *type, ...)
{
    assert_int_equal(ppx_future_wait(f, 30000), 0);
    const ppx_error *e = ppx_future_error(f);
    assert_non_null(e);
    if (strcmp(e->type, type) != 0)
        fail_msg("wanted %s, got %s: %s", type, e->type, e->message);
    va_list ap;
    va_start(ap, type);
    for (const char *s; (s = va_arg(ap, const char *));)
        if (!strstr(e->message, s))
            fail_msg("'%s' not in: %s", s, e->message);
    va_end(ap);
    char want[64];
    snprintf(want, sizeof want, "worker %ld ", e->pid);
    assert_true(e->pid > 0);
    assert_non_null(strstr(e->message, want));
    snprintf(want, sizeof want, "(task %llu)", (unsigned long long)e->task_id);
    assert_non_null(strstr(e->message, want));
}

static int64_t result_int(ppx_future *f)
{
    int64_t v = support_future_int(f);
    ppx_future_unref(f);
    return v;
}

/* The pool still computes, on every worker it has. */
static void assert_serves(ppx_pool *p)
{
    for (int i = 0; i < 4; i++)
        assert_int_equal(result_int(submit(p, "add", "ii", i, 40)), 40 + i);
}

static int listener(int *port)
{
    int s = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    struct sockaddr_in a = {.sin_family = AF_INET};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t alen = sizeof a;
    assert_true(s >= 0);
    assert_int_equal(bind(s, (struct sockaddr *)&a, sizeof a), 0);
    assert_int_equal(listen(s, 16), 0);
    assert_int_equal(getsockname(s, (struct sockaddr *)&a, &alen), 0);
    *port = ntohs(a.sin_port);
    return s;
}

/* ---- forbidden actions -------------------------------------------------- */

/* One forbidden action: under the sandbox the call fails naming the
 * system call and the function, the pool goes on; without it the same
 * function returns want. */
typedef struct action {
    const char *fn, *syscall;
    int64_t want;
} action;

static ppx_future *submit_action(ppx_pool *p, const action *a, int port)
{
    if (strcmp(a->fn, "try_open") == 0)
        return submit(p, a->fn, "s", tmp_path);
    if (strcmp(a->fn, "try_connect") == 0)
        return submit(p, a->fn, "i", port);
    return submit(p, a->fn, "");
}

static void test_each_forbidden_action_fails_only_its_call(void **state)
{
    (void)state;
    skip_under_valgrind("valgrind does not run seccomp(2): ppx_pool_new refuses a sandbox (PPX_ENOTSUP)");
    const action actions[] = {
        {"try_open", "openat", 'Z'},     {"try_connect", "socket", 1},
        {"try_exec", "execve", ENOTDIR}, {"try_fork", "clone", 7},
        {"try_kill_parent", "kill", 1},  {"try_ptrace", "ptrace", ESRCH},
    };
    /* The sandboxed pool first: a skip must leave nothing running. */
    ppx_pool *jail = pool_or_skip(PPX_POOL_OPTIONS(.workers = 2, .sandbox = PPX_SANDBOX_COMPUTE));
    ppx_pool *free_pool = pool_or_skip(PPX_POOL_OPTIONS(.workers = 1));
    int port;
    int ls = listener(&port);
    for (size_t i = 0; i < sizeof actions / sizeof *actions; i++) {
        const action *a = &actions[i];
        assert_int_equal(result_int(submit_action(free_pool, a, port)), a->want);
        ppx_future *f = submit_action(jail, a, port);
        assert_failed(f, "SandboxViolation", a->syscall, a->fn, "sandbox", NULL);
        ppx_future_unref(f);
        assert_serves(jail);
    }
    ppx_pool_stats st = PPX_POOL_STATS_INIT;
    assert_int_equal(ppx_pool_stats_get(jail, &st), 0);
    assert_int_equal(st.crashed, 6); /* one worker per violation */
    ppx_pool_free(jail);
    ppx_pool_free(free_pool);
    close(ls);
}

/* A violation on one worker leaves the call running on the other. */
static void test_other_calls_are_untouched(void **state)
{
    (void)state;
    skip_under_valgrind("valgrind does not run seccomp(2): ppx_pool_new refuses a sandbox (PPX_ENOTSUP)");
    ppx_pool *p = pool_or_skip(PPX_POOL_OPTIONS(.workers = 2, .sandbox = PPX_SANDBOX_COMPUTE));
    ppx_future *slow = submit(p, "until_cancelled", "");
    support_wait_running(slow);
    ppx_future *bad = submit(p, "try_open", "s", tmp_path);
    assert_failed(bad, "SandboxViolation", "openat", NULL);
    ppx_future_unref(bad);
    assert_int_equal(ppx_future_state(slow), PPX_RUNNING);
    assert_int_equal(ppx_future_cancel(slow), 0);
    assert_int_equal(ppx_future_wait(slow, 30000), 0);
    assert_int_equal(ppx_future_state(slow), PPX_CANCELLED);
    ppx_future_unref(slow);
    assert_serves(p);
    ppx_pool_free(p);
}

/* A function cannot dodge the report: blocking SIGSYS gets it killed by
 * the signal (the system call then unknown), and taking SIGSYS over is
 * itself forbidden. */
static void test_violations_are_reported_whatever_the_function_does(void **state)
{
    (void)state;
    skip_under_valgrind("valgrind does not run seccomp(2): ppx_pool_new refuses a sandbox "
                        "(PPX_ENOTSUP)");
    ppx_pool *p = pool_or_skip(PPX_POOL_OPTIONS(.workers = 1, .sandbox = PPX_SANDBOX_COMPUTE));
    ppx_future *f = submit(p, "blocked_sigsys_open", "s", tmp_path);
    assert_failed(f, "SandboxViolation", "killed by SIGSYS", "blocked_sigsys_open", NULL);
    ppx_future_unref(f);
#if defined(__SANITIZE_THREAD__)
    /* TSan's own handler is the kernel's for every signal with one: the
     * function's signal() then only changes TSan's table, no system call
     * is made, and the trap never comes. */
    print_message("take_sigsys skipped under TSan: it interposes signal()\n");
#else
    f = submit(p, "take_sigsys", "");
    assert_failed(f, "SandboxViolation", "rt_sigaction", "take_sigsys", NULL);
    ppx_future_unref(f);
#endif
    assert_serves(p);
    ppx_pool_free(p);
}

/* READ_FILES reads files (and the initializer opens what it likes under
 * either profile); writing one is still forbidden, and sandbox_allow adds
 * what an application needs. */
static void test_read_files_profile_and_allow_list(void **state)
{
    (void)state;
    skip_under_valgrind("valgrind does not run seccomp(2): ppx_pool_new refuses a sandbox (PPX_ENOTSUP)");
    ppx_pool *p = pool_or_skip(PPX_POOL_OPTIONS(.workers = 1, .sandbox = PPX_SANDBOX_READ_FILES));
    assert_int_equal(result_int(submit(p, "try_open", "s", tmp_path)), 'Z');
    ppx_future *f = submit(p, "try_write_file", "s", tmp_path);
    assert_failed(f, "SandboxViolation", "openat", "try_write_file", NULL);
    ppx_future_unref(f);
    ppx_pool_free(p);

    p = pool_or_skip(PPX_POOL_OPTIONS(.workers = 1, .sandbox = PPX_SANDBOX_COMPUTE,
                                      .initializer = sandbox_init_open, .initializer_arg = tmp_path));
    assert_int_equal(result_int(submit(p, "read_init", "")), 'Z');
    ppx_pool_free(p);

    int port;
    int ls = listener(&port);
    static const char *const net[] = {"socket", "connect", NULL};
    p = pool_or_skip(PPX_POOL_OPTIONS(.workers = 1, .sandbox = PPX_SANDBOX_COMPUTE,
                                      .sandbox_allow = net));
    assert_int_equal(result_int(submit(p, "try_connect", "i", port)), 1);
    f = submit(p, "try_open", "s", tmp_path); /* still forbidden */
    assert_failed(f, "SandboxViolation", "openat", NULL);
    ppx_future_unref(f);
    ppx_pool_free(p);
    close(ls);
}

/* A worker that cannot install its filter (here its initializer's own
 * filter refuses another) fails ppx_pool_new, saying why: no worker
 * ever runs a call unsandboxed. */
static void test_a_refused_filter_fails_pool_creation(void **state)
{
    (void)state;
    skip_under_valgrind("valgrind does not run seccomp(2): ppx_pool_new refuses a sandbox "
                        "(PPX_ENOTSUP)");
    ppx_pool *probe = pool_or_skip(PPX_POOL_OPTIONS(.workers = 1, .sandbox = PPX_SANDBOX_COMPUTE));
    ppx_pool_free(probe);
    ppx_pool *p = NULL;
    ppx_pool_options o = PPX_POOL_OPTIONS(.workers = 2, .sandbox = PPX_SANDBOX_COMPUTE,
                                          .initializer = sandbox_init_refuse_filters);
    support_valgrind_sizes(&o);
    assert_int_equal(ppx_pool_new(&o, &p), PPX_EINIT);
    assert_null(p);
    if (!strstr(ppx_last_error(), "could not apply the pool's options: sandbox: seccomp_load "
                                  "failed: "))
        fail_msg("not named: %s", ppx_last_error());
    assert_true(support_no_children());
}

/* ---- allowed work ------------------------------------------------------- */

static void test_allowed_work_behaves_as_without(void **state)
{
    (void)state;
    skip_under_valgrind("valgrind does not run seccomp(2): ppx_pool_new refuses a sandbox (PPX_ENOTSUP)");
    ppx_pool *p = pool_or_skip(PPX_POOL_OPTIONS(.workers = 2, .sandbox = PPX_SANDBOX_COMPUTE,
                                                .cancel_grace_ms = 50));
    /* A big allocation, touched: 256 MiB, one byte per page summed. */
    int64_t want = 0;
    for (size_t i = 0; i < ((size_t)256 << 20); i += 4096)
        want += (unsigned char)(i >> 12);
    assert_int_equal(result_int(submit(p, "alloc", "i", 256)), want);
    /* 64 MiB back. */
    ppx_future *f = submit(p, "big", "i", 64);
    assert_int_equal(ppx_future_wait(f, 60000), 0);
    ppx_value v;
    assert_int_equal(ppx_future_value(f, &v), 0);
    const unsigned char *b;
    size_t n;
    assert_int_equal(ppx_value_bin(v, (const void **)&b, &n), 0);
    assert_int_equal(n, (size_t)64 << 20);
    for (size_t i = 0; i < n; i += 4093)
        assert_int_equal(b[i], i % 251);
    ppx_future_unref(f);
    /* Threads (clone with CLONE_THREAD; a process stays forbidden). */
    assert_int_equal(result_int(submit(p, "threads", "i", 4)), 1 + 3 + 6 + 10);
    /* Progress. */
    f = submit(p, "steps", "i", 1000);
    assert_int_equal(support_future_int(f), 1000);
    uint64_t done = 0, total = 0;
    assert_int_equal(ppx_future_progress(f, &done, &total), 0);
    assert_int_equal(done, 1000);
    assert_int_equal(total, 1000);
    ppx_future_unref(f);
    /* Cancellation, noticed by the function. */
    f = submit(p, "until_cancelled", "");
    support_wait_running(f);
    assert_int_equal(ppx_future_cancel(f), 0);
    assert_int_equal(ppx_future_wait(f, 30000), 0);
    assert_int_equal(ppx_future_state(f), PPX_CANCELLED);
    ppx_future_unref(f);
    /* A deadline on a function that never looks: killed after the grace. */
    ppx_future *t = NULL;
    ppx_call_options co = PPX_CALL_OPTIONS(.timeout_ms = 50);
    assert_int_equal(ppx_pool_submit_ex(p, "burn", "\x90", 1, &co, &t), 0);
    assert_int_equal(ppx_future_wait(t, 30000), 0);
    assert_string_equal(ppx_future_error(t)->type, "TimeoutError");
    ppx_future_unref(t);
    assert_serves(p);
    ppx_pool_free(p);
}

/* ---- limits ------------------------------------------------------------- */

/* A call whose arguments the worker cannot take in under its limit (with
 * no arena they travel in ring chunks, gathered in the worker's memory)
 * fails with MemoryError rather than going from worker to worker. */
static void memory_cap_on_arguments(void)
{
    ppx_pool *p = pool_or_skip(PPX_POOL_OPTIONS(.workers = 1, .arena_bytes = PPX_ARENA_NONE,
                                                .memory_limit_bytes = (size_t)64 << 20));
    size_t n = (size_t)100 << 20;
    char *b = calloc(1, n);
    assert_non_null(b);
    ppx_future *f = submit(p, "len_of", "B", b, n);
    assert_failed(f, "MemoryError", "memory_limit_bytes (67108864", "len_of", NULL);
    ppx_future_unref(f);
    assert_int_equal(result_int(submit(p, "len_of", "B", b, (size_t)1 << 20)), 1 << 20);
    free(b);
    ppx_pool_free(p);
}

static void test_memory_cap_turns_2gib_into_memory_error(void **state)
{
    (void)state;
    skip_under_valgrind("memcheck's own allocator and mappings share the worker's RLIMIT_AS "
                        "(and its 2 GiB request is reported, not refused quietly)");
    struct rlimit before;
    getrlimit(RLIMIT_AS, &before);
    ppx_pool *p = pool_or_skip(PPX_POOL_OPTIONS(.workers = 1,
                                                .memory_limit_bytes = (size_t)512 << 20));
    ppx_future *f = submit(p, "alloc", "i", 2048);
    assert_int_equal(ppx_future_wait(f, 30000), 0);
    const ppx_error *e = ppx_future_error(f);
    assert_non_null(e);
    assert_string_equal(e->type, "MemoryError");
    assert_non_null(strstr(e->message, "memory_limit_bytes (536870912"));
    ppx_future_unref(f);
    /* Under the cap, the same function works, on the same worker. */
    assert_int_equal(result_int(submit(p, "alloc", "i", 16)) > 0, 1);
    ppx_pool_stats st = PPX_POOL_STATS_INIT;
    assert_int_equal(ppx_pool_stats_get(p, &st), 0);
    assert_int_equal(st.worker_deaths, 0);
    ppx_pool_free(p);
    /* The parent is untouched: its own limit, and 2 GiB of address space. */
    struct rlimit after;
    getrlimit(RLIMIT_AS, &after);
    assert_int_equal(after.rlim_cur, before.rlim_cur);
    void *big = malloc((size_t)2 << 30);
    assert_non_null(big);
    free(big);
    memory_cap_on_arguments();
}

static void test_cpu_limit_fails_the_call_naming_it(void **state)
{
    (void)state;
    skip_under_valgrind("a second of native CPU is tens of seconds there");
#if defined(__SANITIZE_THREAD__)
    /* TSan runs a handler only once the thread enters a call it
     * intercepts: a function spinning in pure computation never runs the
     * SIGXCPU handler, and the hard limit's SIGKILL (a WorkerCrashed)
     * ends it, as it would a function that blocks SIGXCPU. */
    print_message("skipped under TSan: it defers the SIGXCPU handler of a spinning function\n");
    skip();
#endif
    ppx_pool *p = pool_or_skip(PPX_POOL_OPTIONS(.workers = 1, .cpu_limit_s = 1));
    ppx_future *f = submit(p, "burn", "");
    assert_failed(f, "CpuLimitExceeded", "cpu_limit_s 1 s", "burn", NULL);
    ppx_future_unref(f);
    assert_serves(p);
    ppx_pool_free(p);
}

/* A worker that has used half its CPU budget retires between calls, so
 * the next call starts with at least half of it. */
static void test_cpu_limit_retires_a_worker_past_half(void **state)
{
    (void)state;
    skip_under_valgrind("a second of native CPU is tens of seconds there");
    ppx_pool *p = pool_or_skip(PPX_POOL_OPTIONS(.workers = 1, .cpu_limit_s = 2));
    int64_t a = result_int(submit(p, "burn_cpu", "i", 10));
    int64_t b = result_int(submit(p, "burn_cpu", "i", 1100)); /* past 1 s: retires after */
    int64_t c = result_int(submit(p, "burn_cpu", "i", 10));
    assert_int_equal(a, b); /* under half: the same worker */
    assert_true(c != b);
    ppx_pool_stats st = PPX_POOL_STATS_INIT;
    assert_int_equal(ppx_pool_stats_get(p, &st), 0);
    assert_int_equal(st.recycled, 1);
    assert_int_equal(st.crashed, 0);
    ppx_pool_free(p);
}

static void test_open_files_and_core_limits(void **state)
{
    (void)state;
    skip_under_valgrind("valgrind keeps descriptors of its own near the limit");
    ppx_pool *p = pool_or_skip(PPX_POOL_OPTIONS(.workers = 1, .max_open_files = 5,
                                                .no_core_dumps = true));
    int64_t n = result_int(submit(p, "open_many", ""));
    assert_true(n >= 5 && n < 5 + 8); /* 5, and any holes below ppx's own */
    ppx_future *f = submit(p, "limits", "");
    assert_int_equal(ppx_future_wait(f, 30000), 0);
    ppx_value v, x;
    int64_t core, nofile;
    bool as_unlimited = false;
    assert_int_equal(ppx_future_value(f, &v), 0);
    assert_int_equal(ppx_value_at(v, 0, &x), 0);
    assert_int_equal(ppx_value_int(x, &core), 0);
    assert_int_equal(ppx_value_at(v, 1, &x), 0);
    assert_int_equal(ppx_value_int(x, &nofile), 0);
    assert_int_equal(ppx_value_at(v, 2, &x), 0);
    assert_int_equal(ppx_value_bool(x, &as_unlimited), 0);
    assert_true(as_unlimited); /* no memory_limit_bytes: RLIMIT_AS as it was */
    assert_int_equal(core, 0);
    assert_true(nofile > 5 && nofile < 64);
    ppx_future_unref(f);
    ppx_pool_free(p);
}

/* ---- scheduling --------------------------------------------------------- */

static void read_sched(ppx_pool *p, int64_t out[4])
{
    ppx_future *f = submit(p, "sched", "");
    assert_int_equal(ppx_future_wait(f, 30000), 0);
    ppx_value v, x;
    assert_int_equal(ppx_future_value(f, &v), 0);
    for (size_t i = 0; i < 4; i++) {
        assert_int_equal(ppx_value_at(v, i, &x), 0);
        assert_int_equal(ppx_value_int(x, &out[i]), 0);
    }
    ppx_future_unref(f);
}

static void test_scheduling_read_back_from_a_worker(void **state)
{
    (void)state;
    int base = getpriority(PRIO_PROCESS, 0);
    int cpu = 0;
    cpu_set_t mine;
    sched_getaffinity(0, sizeof mine, &mine);
    while (!CPU_ISSET(cpu, &mine))
        cpu++;
    ppx_pool *p = pool_or_skip(PPX_POOL_OPTIONS(.workers = 1, .nice = 5,
                                                .sched_policy = PPX_SCHED_BATCH, .cpus = &cpu,
                                                .ncpus = 1));
    int64_t s[4];
    read_sched(p, s);
    assert_int_equal(s[0], base + 5 > 19 ? 19 : base + 5);
    assert_int_equal(s[1], SCHED_BATCH);
    assert_int_equal(s[2], 1);
    assert_int_equal(s[3], cpu);
    ppx_pool_free(p);

    p = pool_or_skip(PPX_POOL_OPTIONS(.workers = 1, .sched_policy = PPX_SCHED_IDLE));
    read_sched(p, s);
    assert_int_equal(s[0], base);
    assert_int_equal(s[1], SCHED_IDLE);
    assert_int_equal(s[2], CPU_COUNT(&mine));
    ppx_pool_free(p);
}

static void expect_einval(ppx_pool_options o, const char *field)
{
    ppx_pool *p = NULL;
    assert_int_equal(ppx_pool_new(&o, &p), PPX_EINVAL);
    assert_null(p);
    if (!strstr(ppx_last_error(), field))
        fail_msg("'%s' not in: %s", field, ppx_last_error());
}

static void test_bad_values_are_refused_naming_the_field(void **state)
{
    (void)state;
    int bad_cpu = -1, far_cpu = 1 << 20;
    static const char *const unknown[] = {"no_such_call", NULL};
    static const char *const fine[] = {"socket", NULL};
    expect_einval(PPX_POOL_OPTIONS(.nice = -1), "nice");
    expect_einval(PPX_POOL_OPTIONS(.nice = 20), "nice");
    expect_einval(PPX_POOL_OPTIONS(.sched_policy = 9), "sched_policy");
    expect_einval(PPX_POOL_OPTIONS(.cpus = &bad_cpu, .ncpus = 1), "cpus[0]");
    expect_einval(PPX_POOL_OPTIONS(.cpus = &far_cpu, .ncpus = 1), "cpus[0]");
    expect_einval(PPX_POOL_OPTIONS(.ncpus = 2), "cpus");
    expect_einval(PPX_POOL_OPTIONS(.sandbox = 7), "sandbox");
    expect_einval(PPX_POOL_OPTIONS(.sandbox_allow = fine), "sandbox_allow");
    ppx_pool *p = NULL;
    ppx_pool_options o = PPX_POOL_OPTIONS(.sandbox = PPX_SANDBOX_COMPUTE, .sandbox_allow = unknown);
    int rc = ppx_pool_new(&o, &p);
    if (rc != PPX_ENOTSUP) { /* where there is a sandbox, the name is checked */
        assert_int_equal(rc, PPX_EINVAL);
        assert_non_null(strstr(ppx_last_error(), "no_such_call"));
    }
    assert_null(p);
    assert_true(support_no_children());
}

int main(void)
{
    sandbox_fns_register();
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_each_forbidden_action_fails_only_its_call, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_other_calls_are_untouched, setup, teardown),
        cmocka_unit_test_setup_teardown(test_violations_are_reported_whatever_the_function_does,
                                        setup, teardown),
        cmocka_unit_test_setup_teardown(test_read_files_profile_and_allow_list, setup, teardown),
        cmocka_unit_test_setup_teardown(test_a_refused_filter_fails_pool_creation, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_allowed_work_behaves_as_without, setup, teardown),
        cmocka_unit_test_setup_teardown(test_memory_cap_turns_2gib_into_memory_error, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_cpu_limit_fails_the_call_naming_it, setup, teardown),
        cmocka_unit_test_setup_teardown(test_cpu_limit_retires_a_worker_past_half, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_open_files_and_core_limits, setup, teardown),
        cmocka_unit_test_setup_teardown(test_scheduling_read_back_from_a_worker, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_bad_values_are_refused_naming_the_field, setup,
                                        teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
