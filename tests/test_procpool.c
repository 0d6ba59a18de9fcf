/* End-to-end tests of the process pool with real forked workers, through
 * the blocking API only (no libuv). */
#include "support.h"
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

/* Shared with workers: how many times "mark" ran. */
static _Atomic int *marks;

static int fn_add(ppx_call *c, void *u)
{
    int64_t a, b;
    if (ppx_call_arg_int(c, 0, &a) || ppx_call_arg_int(c, 1, &b))
        return ppx_raise(c, "TypeError", "add takes two integers");
    return ppx_return_int(c, a + b);
}

static int fn_raise(ppx_call *c, void *u)
{
    int64_t n = 0;
    ppx_call_arg_int(c, 0, &n);
    return ppx_raise(c, "ValueError", "bad value %lld", (long long)n);
}

static int fn_fail_silently(ppx_call *c, void *u)
{
    return 5;
}

/* What a function does when its ppx_return_* ran out of memory. */
static int fn_no_memory(ppx_call *c, void *u)
{
    (void)c;
    (void)u;
    return PPX_ENOMEM;
}

static int fn_wait_cancel(ppx_call *c, void *u)
{
    while (!ppx_call_cancelled(c)) {
        struct timespec ts = {0, 1000000};
        nanosleep(&ts, NULL);
    }
    return ppx_return_str(c, "stopped", 7);
}

static int fn_spin_forever(ppx_call *c, void *u)
{
    for (;;)
        pause();
    return 0;
}

static int fn_crash(ppx_call *c, void *u)
{
    const char *how;
    size_t len;
    ppx_call_arg_str(c, 0, &how, &len);
    if (len == 4 && memcmp(how, "segv", 4) == 0)
        raise(SIGSEGV);
    if (len == 5 && memcmp(how, "abort", 5) == 0)
        abort();
    _exit(3);
}

static int fn_echo(ppx_call *c, void *u)
{
    ppx_value v;
    int rc = ppx_call_arg(c, 0, &v);
    return rc ? rc : ppx_return_raw(c, v.data, v.len);
}

static int fn_big(ppx_call *c, void *u)
{
    uint64_t n;
    ppx_call_arg_uint(c, 0, &n);
    unsigned char *b = malloc(n ? n : 1);
    for (uint64_t i = 0; i < n; i++)
        b[i] = (unsigned char)(i * 31 + 7);
    int rc = ppx_return_bin(c, b, n);
    free(b);
    return rc;
}

static int fn_mark(ppx_call *c, void *u)
{
    atomic_fetch_add(marks, 1);
    return ppx_return_nil(c);
}

static int fn_pid(ppx_call *c, void *u)
{
    return ppx_return_int(c, getpid());
}

/* A buggy function that overwrites the pool's shared header: the layout
 * offsets, the slot count and every ring's capacity. */
static int fn_scribble(ppx_call *c, void *u)
{
    FILE *maps = fopen("/proc/self/maps", "r");
    char line[512];
    int hit = 0;
    while (maps && fgets(line, sizeof line, maps)) {
        unsigned long lo, hi;
        char perms[8];
        if (sscanf(line, "%lx-%lx %7s", &lo, &hi, perms) != 3 || perms[3] != 's')
            continue;
        uint32_t *h = (uint32_t *)lo;
        if (h[0] != 0x70707850u) /* "ppxP" */
            continue;
        memset(h + 2, 0xff, 48); /* nworkers .. max_payload */
        for (unsigned long a = lo + 4096; a + 64 <= hi; a += 4096)
            if (*(uint32_t *)a == 0x70707852u) /* a ring: "ppxR" */
                ((uint64_t *)a)[1] = ~0ull;    /* its capacity */
        hit = 1;
    }
    if (maps)
        fclose(maps);
    return hit ? ppx_return_int(c, 1) : ppx_raise(c, "LookupError", "no pool mapping found");
}

static ppx_pool *new_pool(int workers, const ppx_pool_options *extra)
{
    ppx_pool_options o = extra ? *extra : PPX_POOL_OPTIONS();
    o.workers = workers;
    ppx_pool *p = NULL;
    support_valgrind_sizes(&o);
    assert_int_equal(ppx_pool_new(&o, &p), 0);
    return p;
}


static int counted;
static void count_cb(ppx_future *f, void *arg)
{
    (void)f;
    ++*(int *)arg;
    counted++;
}

static void count_cb_atomic(ppx_future *f, void *arg)
{
    (void)f;
    atomic_fetch_add((_Atomic int *)arg, 1);
}

static int teardown(void **state)
{
    (void)state;
    assert_true(support_no_children());
    return 0;
}

/* ---- values and errors ------------------------------------------------ */

static void test_submitted_calls_return_their_values(void **state)
{
    ppx_pool *p = new_pool(2, NULL);
    enum { N = 500 };
    ppx_future *f[N];
    for (int i = 0; i < N; i++)
        assert_int_equal(ppx_pool_submitf(p, &f[i], "add", "ii", i, 1000), 0);
    for (int i = N - 1; i >= 0; i--) { /* waiting order does not matter */
        assert_int_equal(ppx_future_wait(f[i], 10000), 0);
        int64_t v;
        assert_int_equal(ppx_future_int(f[i], &v), 0);
        assert_int_equal(v, i + 1000);
        assert_int_equal(ppx_future_state(f[i]), PPX_DONE);
        assert_null(ppx_future_error(f[i]));
        ppx_future_unref(f[i]);
    }
    ppx_pool_stats st = PPX_POOL_STATS_INIT;
    ppx_pool_stats_get(p, &st);
    assert_int_equal(st.submitted, N);
    assert_int_equal(st.completed, N);
    ppx_pool_free(p);
}

static void test_raised_error_carries_type_message_function_pid_and_where(void **state)
{
    ppx_pool *p = new_pool(1, NULL);
    ppx_future *f;
    assert_int_equal(ppx_pool_submitf(p, &f, "raise", "i", 42), 0);
    assert_int_equal(ppx_future_wait(f, 10000), 0);
    assert_int_equal(ppx_future_state(f), PPX_FAILED);
    ppx_value v;
    assert_int_equal(ppx_future_value(f, &v), PPX_ETASK);
    const ppx_error *e = ppx_future_error(f);
    assert_non_null(e);
    assert_string_equal(e->type, "ValueError");
    assert_string_equal(e->message, "bad value 42");
    assert_string_equal(e->function, "raise");
    assert_int_equal(e->pid, ppx_pool_worker_pid(p, 0));
    assert_non_null(strstr(e->where, "test_procpool.c:"));
    assert_int_equal(e->task_id, ppx_future_id(f));
    ppx_future_unref(f);
    ppx_pool_free(p);
}

static void test_unknown_function_fails_with_name_error(void **state)
{
    ppx_pool *p = new_pool(1, NULL);
    ppx_future *f;
    assert_int_equal(ppx_pool_submitf(p, &f, "no_such_function", "i", 1), 0);
    assert_int_equal(ppx_future_wait(f, 10000), 0);
    const ppx_error *e = ppx_future_error(f);
    assert_non_null(e);
    assert_string_equal(e->type, "NameError");
    assert_non_null(strstr(e->message, "'no_such_function'"));
    assert_string_equal(e->function, "no_such_function");
    ppx_future_unref(f);
    ppx_pool_free(p);
}

static void test_function_failing_without_raising_is_a_runtime_error(void **state)
{
    ppx_pool *p = new_pool(1, NULL);
    ppx_future *f;
    assert_int_equal(ppx_pool_submitf(p, &f, "fail_silently", ""), 0);
    assert_int_equal(ppx_future_wait(f, 10000), 0);
    assert_string_equal(ppx_future_error(f)->type, "RuntimeError");
    assert_non_null(strstr(ppx_future_error(f)->message, "returned 5"));
    ppx_future_unref(f);
    ppx_pool_free(p);
}

static void test_function_passing_on_enomem_is_a_memory_error(void **state)
{
    ppx_pool *p = new_pool(1, NULL);
    ppx_future *f;
    assert_int_equal(ppx_pool_submitf(p, &f, "no_memory", ""), 0);
    assert_int_equal(ppx_future_wait(f, 10000), 0);
    assert_string_equal(ppx_future_error(f)->type, "MemoryError");
    assert_non_null(strstr(ppx_future_error(f)->message, "no memory for the result"));
    ppx_future_unref(f);
    ppx_pool_free(p);
}

static void test_version_is_the_projects(void **state)
{
    assert_string_equal(ppx_version(), PPX_PROJECT_VERSION);
}

static void test_done_callbacks_run_exactly_once(void **state)
{
    ppx_pool *p = new_pool(2, NULL);
    enum { N = 100 };
    ppx_future *f[N];
    int calls[N] = {0};
    for (int i = 0; i < N; i++) {
        assert_int_equal(ppx_pool_submitf(p, &f[i], i % 3 ? "add" : "raise", "ii", i, i), 0);
        assert_int_equal(ppx_future_add_done_callback(f[i], count_cb, &calls[i]), 0);
    }
    for (int i = 0; i < N; i++)
        assert_int_equal(ppx_future_wait(f[i], 10000), 0);
    for (int i = 0; i < N; i++) {
        /* Added after resolution: runs at once, still exactly once. */
        assert_int_equal(ppx_future_add_done_callback(f[i], count_cb, &calls[i]), 0);
        assert_int_equal(calls[i], 2);
        ppx_future_unref(f[i]);
    }
    support_drain(p, 10000);
    ppx_pool_free(p);
    assert_int_equal(calls[0], 2);
}

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
static void test_strerror_is_static_for_unknown_codes(void **state)
{
    (void)state;
    const char *a = ppx_strerror(-4000);
    assert_string_equal(a, "unknown error");
    assert_ptr_equal(a, ppx_strerror(-4001));
    assert_string_equal(ppx_strerror(-ENOENT), "No such file or directory");
}

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

/* ---- payloads and bad input ------------------------------------------ */

static void test_big_payloads_travel_both_ways_through_small_rings(void **state)
{
    ppx_pool *p = new_pool(2, &PPX_POOL_OPTIONS(.ring_bytes = 64 * 1024));
    size_t n = 5u << 20;
    unsigned char *buf = malloc(n);
    for (size_t i = 0; i < n; i++)
        buf[i] = (unsigned char)(i * 131 + 17);
    ppx_future *f[3];
    for (int i = 0; i < 3; i++)
        assert_int_equal(ppx_pool_submitf(p, &f[i], "echo", "B", buf, n - (size_t)i), 0);
    for (int i = 0; i < 3; i++) {
        assert_int_equal(ppx_future_wait(f[i], 30000), 0);
        ppx_value v;
        assert_int_equal(ppx_future_value(f[i], &v), 0);
        const void *q;
        size_t len;
        assert_int_equal(ppx_value_bin(v, &q, &len), 0);
        assert_int_equal(len, n - (size_t)i);
        assert_memory_equal(q, buf, len);
        ppx_future_unref(f[i]);
    }
    free(buf);
    ppx_pool_free(p);
}

static void test_oversized_payloads_give_clear_errors(void **state)
{
    ppx_pool *p = new_pool(1, &PPX_POOL_OPTIONS(.max_payload = 1 << 20));
    size_t n = 2u << 20;
    unsigned char *buf = calloc(1, n);
    ppx_future *f = NULL;
    assert_int_equal(ppx_pool_submitf(p, &f, "echo", "B", buf, n), PPX_ETOOBIG);
    assert_null(f);
    assert_int_equal(ppx_pool_submitf(p, &f, "big", "U", (unsigned long long)n), 0);
    assert_int_equal(ppx_future_wait(f, 10000), 0);
    assert_string_equal(ppx_future_error(f)->type, "ResultTooLarge");
    ppx_future_unref(f);
    free(buf);
    ppx_pool_free(p);
}

static void test_malformed_arguments_and_misuse_are_rejected(void **state)
{
    ppx_pool *p = new_pool(1, NULL);
    ppx_future *f = NULL;
    static const unsigned char not_array[] = {0x01};
    static const unsigned char truncated[] = {0x92, 0x01};
    static const unsigned char trailing[] = {0x90, 0x01};
    assert_int_equal(ppx_pool_submit(p, "add", not_array, 1, &f), PPX_EMALFORMED);
    assert_int_equal(ppx_pool_submit(p, "add", truncated, 2, &f), PPX_EMALFORMED);
    assert_int_equal(ppx_pool_submit(p, "add", trailing, 2, &f), PPX_EMALFORMED);
    assert_int_equal(ppx_pool_submit(p, NULL, NULL, 0, &f), PPX_EINVAL);
    assert_int_equal(ppx_pool_submit(p, "", NULL, 0, &f), PPX_EINVAL);
    assert_int_equal(ppx_pool_submitf(p, &f, "add", "q", 1), PPX_EINVAL);
    assert_null(f);
    assert_int_equal(ppx_register("late", fn_add, NULL), PPX_EFROZEN);
    assert_int_equal(ppx_pool_shutdown(p, PPX_SHUTDOWN_WAIT, -1), 0);
    assert_int_equal(ppx_pool_submitf(p, &f, "add", "ii", 1, 2), PPX_ECLOSED);
    assert_null(f);
    ppx_pool_free(p);
    assert_string_equal(ppx_strerror(PPX_ECLOSED), "the pool is closed");
    assert_string_equal(ppx_err_name(PPX_ETIMEDOUT), "PPX_ETIMEDOUT");
    assert_string_equal(ppx_err_name(-2), "ENOENT");
}

/* ---- scheduling, shutdown, threads ------------------------------------- */

static void test_idle_worker_takes_calls_queued_behind_a_long_one(void **state)
{
    ppx_pool *p = new_pool(2, NULL);
    ppx_future *longf, *f[20];
    assert_int_equal(ppx_pool_submitf(p, &longf, "wait_cancel", ""), 0);
    for (int i = 0; i < 20; i++)
        assert_int_equal(ppx_pool_submitf(p, &f[i], "add", "ii", i, 0), 0);
    /* wait_cancel never ends on its own: these finish only if none of
     * them stays behind it. */
    for (int i = 0; i < 20; i++) {
        assert_int_equal(ppx_future_wait(f[i], 20000), 0);
        assert_int_equal(ppx_future_state(f[i]), PPX_DONE);
        ppx_future_unref(f[i]);
    }
    assert_false(ppx_future_done(longf));
    ppx_pool_stats st = PPX_POOL_STATS_INIT;
    ppx_pool_stats_get(p, &st);
    assert_true(st.stolen > 0);
    ppx_future_cancel(longf);
    ppx_future_unref(longf);
    ppx_pool_free(p);
}

static void test_shutdown_wait_finishes_work_in_flight(void **state)
{
    ppx_pool *p = new_pool(2, NULL);
    enum { N = 300 };
    ppx_future *f[N];
    int calls[N] = {0};
    for (int i = 0; i < N; i++) {
        assert_int_equal(ppx_pool_submitf(p, &f[i], "add", "ii", i, i), 0);
        ppx_future_add_done_callback(f[i], count_cb, &calls[i]);
    }
    assert_int_equal(ppx_pool_shutdown(p, PPX_SHUTDOWN_WAIT, 20000), 0);
    for (int i = 0; i < N; i++) {
        assert_int_equal(ppx_future_state(f[i]), PPX_DONE);
        assert_int_equal(calls[i], 1);
        ppx_future_unref(f[i]);
    }
    ppx_pool_free(p);
}

static void test_shutdown_cancel_resolves_everything_at_once(void **state)
{
    ppx_pool *p = new_pool(2, &PPX_POOL_OPTIONS(.cancel_grace_ms = 20));
    enum { N = 50 };
    ppx_future *f[N];
    for (int i = 0; i < N; i++)
        assert_int_equal(ppx_pool_submitf(p, &f[i], i % 2 ? "spin_forever" : "wait_cancel", ""), 0);
    assert_int_equal(ppx_pool_shutdown(p, PPX_SHUTDOWN_CANCEL, 5000), 0);
    for (int i = 0; i < N; i++) {
        assert_int_equal(ppx_future_state(f[i]), PPX_CANCELLED);
        ppx_future_unref(f[i]);
    }
    ppx_pool_free(p);
}

static void test_free_with_work_in_flight_resolves_every_future_once(void **state)
{
    ppx_pool *p = new_pool(2, &PPX_POOL_OPTIONS(.cancel_grace_ms = 20));
    enum { N = 200 };
    ppx_future *f[N];
    int calls[N] = {0};
    for (int i = 0; i < N; i++) {
        const char *fn = i % 10 == 0 ? "spin_forever" : "add";
        assert_int_equal(ppx_pool_submitf(p, &f[i], fn, "ii", i, 1), 0);
        ppx_future_add_done_callback(f[i], count_cb, &calls[i]);
    }
    ppx_pool_free(p);
    for (int i = 0; i < N; i++) {
        ppx_state st = ppx_future_state(f[i]);
        assert_true(st == PPX_DONE || st == PPX_CANCELLED);
        assert_int_equal(calls[i], 1);
        ppx_future_unref(f[i]);
    }
}

typedef struct thread_arg {
    ppx_pool *p;
    int base;
    int ok;
} thread_arg;

static void *submit_and_wait(void *arg)
{
    thread_arg *a = arg;
    for (int i = 0; i < 200; i++) {
        ppx_future *f;
        if (ppx_pool_submitf(a->p, &f, "add", "ii", a->base, i))
            return NULL;
        int64_t v = -1;
        if (ppx_future_wait(f, 20000) == 0 && ppx_future_int(f, &v) == 0 && v == a->base + i)
            a->ok++;
        ppx_future_unref(f);
    }
    return NULL;
}

static void test_several_threads_submit_and_wait_at_once(void **state)
{
    ppx_pool *p = new_pool(2, NULL);
    pthread_t th[4];
    thread_arg args[4];
    for (int i = 0; i < 4; i++) {
        args[i] = (thread_arg){p, i * 1000, 0};
        pthread_create(&th[i], NULL, submit_and_wait, &args[i]);
    }
    for (int i = 0; i < 4; i++) {
        pthread_join(th[i], NULL);
        assert_int_equal(args[i].ok, 200);
    }
    ppx_pool_free(p);
}

static void test_worker_death_is_noticed_when_sigchld_is_ignored(void **state)
{
    /* Servers often ignore SIGCHLD; then nobody can collect a status. */
    signal(SIGCHLD, SIG_IGN);
    ppx_pool *p = new_pool(1, NULL);
    ppx_future *bad, *ok;
    assert_int_equal(ppx_pool_submitf(p, &bad, "crash", "s", "segv"), 0);
    assert_int_equal(ppx_pool_submitf(p, &ok, "add", "ii", 1, 1), 0);
    assert_int_equal(ppx_future_wait(bad, 10000), 0);
    assert_string_equal(ppx_future_error(bad)->type, "WorkerCrashed");
    /* The zygote collects statuses, so the cause is still known. */
    assert_non_null(strstr(ppx_future_error(bad)->message, "SIGSEGV"));
    assert_int_equal(ppx_future_wait(ok, 10000), 0);
    assert_int_equal(ppx_future_state(ok), PPX_DONE);
    ppx_future_unref(bad);
    ppx_future_unref(ok);
    ppx_pool_free(p);
    signal(SIGCHLD, SIG_DFL);
}

static void test_shutdown_wait_runs_calls_requeued_after_a_crash(void **state)
{
    ppx_pool *p = new_pool(1, NULL);
    ppx_future *bad, *ok;
    assert_int_equal(ppx_pool_submitf(p, &bad, "crash", "s", "exit"), 0);
    assert_int_equal(ppx_pool_submitf(p, &ok, "add", "ii", 2, 2), 0);
    assert_int_equal(ppx_pool_shutdown(p, PPX_SHUTDOWN_WAIT, 20000), 0);
    assert_string_equal(ppx_future_error(bad)->type, "WorkerCrashed");
    int64_t v;
    assert_int_equal(ppx_future_int(ok, &v), 0);
    assert_int_equal(v, 4);
    ppx_future_unref(bad);
    ppx_future_unref(ok);
    ppx_pool_free(p);
}

static void test_worker_scribbling_on_the_shared_header_faults_and_the_pool_goes_on(void **state)
{
    ppx_pool *p = new_pool(1, NULL);
    ppx_future *f;
    assert_int_equal(ppx_pool_submitf(p, &f, "scribble", ""), 0);
    assert_int_equal(ppx_future_wait(f, 10000), 0);
    /* The header is read-only in workers: the write is a crash of its own. */
    const ppx_error *e = ppx_future_error(f);
    assert_non_null(e);
    assert_string_equal(e->type, "WorkerCrashed");
    assert_non_null(strstr(e->message, "SIGSEGV"));
    int64_t v;
    ppx_future_unref(f);
    /* Its replacement, and the one after, keep working. */
    for (int round = 0; round < 2; round++) {
        for (int i = 0; i < 50; i++) {
            assert_int_equal(ppx_pool_submitf(p, &f, "add", "ii", i, round), 0);
            assert_int_equal(ppx_future_wait(f, 10000), 0);
            assert_int_equal(ppx_future_int(f, &v), 0);
            assert_int_equal(v, i + round);
            ppx_future_unref(f);
        }
        kill((pid_t)support_worker_pid(p, 0), SIGKILL);
        support_drain(p, 10000);
        int64_t end = support_now_ms() + 10000;
        while (ppx_pool_worker_pid(p, 0) == 0 && support_now_ms() < end)
            support_drain(p, 10000), ppx_pool_process(p);
    }
    ppx_pool_free(p);
}

static void *wait_forever(void *arg)
{
    ppx_future_wait(arg, -1);
    return NULL;
}

static void test_free_releases_threads_blocked_in_a_wait(void **state)
{
    int before = support_open_fds();
    ppx_pool *p = new_pool(1, &PPX_POOL_OPTIONS(.cancel_grace_ms = 20));
    ppx_future *f;
    assert_int_equal(ppx_pool_submitf(p, &f, "spin_forever", ""), 0);
    pthread_t th;
    pthread_create(&th, NULL, wait_forever, f);
    support_wait_running(f);
    ppx_pool_free(p);
    pthread_join(th, NULL);
    /* The waiter pinned the pool through the free; it freed it leaving. */
    assert_int_equal(support_open_fds(), before);
    assert_int_equal(ppx_future_state(f), PPX_CANCELLED);
    ppx_future_unref(f);
}

/* A future outlives its pool: after ppx_pool_free it reads its final
 * state and touches no pool (the pool's memory and descriptors are gone
 * once no call pins it; under ASan and valgrind nothing reads it). A use
 * after the last unref or free is undefined (ppx.h), so never tried. */
static void test_futures_kept_past_the_pool_free_stay_readable(void **state)
{
    int before = support_open_fds();
    ppx_pool *p = new_pool(1, &PPX_POOL_OPTIONS(.cancel_grace_ms = 20));
    ppx_future *done, *running, *queued;
    assert_int_equal(ppx_pool_submitf(p, &done, "add", "ii", 1, 2), 0);
    assert_int_equal(support_future_int(done), 3);
    assert_int_equal(ppx_pool_submitf(p, &running, "spin_forever", ""), 0);
    assert_int_equal(ppx_pool_submitf(p, &queued, "add", "ii", 3, 4), 0);
    support_wait_running(running);
    ppx_pool_free(p);
    assert_int_equal(support_open_fds(), before); /* the pool is gone */
    ppx_future *kept[] = {running, queued};
    for (int i = 0; i < 2; i++) {
        ppx_future *f = kept[i];
        ppx_value v;
        int calls = 0;
        assert_int_equal(ppx_future_state(f), PPX_CANCELLED);
        assert_true(ppx_future_done(f));
        assert_int_equal(ppx_future_wait(f, -1), 0);
        assert_int_equal(ppx_future_cancel(f), PPX_EDONE);
        assert_int_equal(ppx_future_value(f, &v), PPX_ECANCELED);
        assert_string_equal(ppx_future_error(f)->type, "CancelledError");
        assert_int_equal(ppx_future_add_done_callback(f, count_cb, &calls), 0);
        assert_int_equal(calls, 1);
        ppx_future_unref(f);
    }
    assert_int_equal(support_future_int(done), 3);
    ppx_future_unref(done);
}

/* What can be told safely still is: NULL, and a live handle of another
 * kind (the magic at its start is not a future's, or not a pool's). */
static void test_null_and_wrong_kind_handles_give_ebadobj(void **state)
{
    ppx_pool *p = new_pool(1, NULL);
    ppx_future *f;
    assert_int_equal(ppx_pool_submitf(p, &f, "add", "ii", 1, 2), 0);
    ppx_future *not_future = (ppx_future *)(void *)p;
    ppx_pool *not_pool = (ppx_pool *)(void *)f;
    ppx_value v;
    ppx_future *g;
    for (int i = 0; i < 2; i++) {
        ppx_future *bad = i ? not_future : NULL;
        assert_int_equal(ppx_future_wait(bad, 0), PPX_EBADOBJ);
        assert_int_equal(ppx_future_value(bad, &v), PPX_EBADOBJ);
        assert_int_equal(ppx_future_cancel(bad), PPX_EBADOBJ);
        assert_int_equal(ppx_future_add_done_callback(bad, count_cb, &counted), PPX_EBADOBJ);
        assert_int_equal(ppx_future_state(bad), PPX_PENDING);
        assert_false(ppx_future_valid(bad)); /* what tells it from pending */
        assert_int_equal(ppx_future_id(bad), 0);
        ppx_future_ref(bad);
        ppx_future_unref(bad); /* ignored */
    }
    for (int i = 0; i < 2; i++) {
        ppx_pool *bad = i ? not_pool : NULL;
        assert_int_equal(ppx_pool_submitf(bad, &g, "add", "ii", 1, 2), PPX_EBADOBJ);
        assert_int_equal(ppx_pool_shutdown(bad, PPX_SHUTDOWN_WAIT, 0), PPX_EBADOBJ);
        assert_int_equal(ppx_pool_process(bad), PPX_EBADOBJ);
        assert_int_equal(ppx_pool_workers(bad), PPX_EBADOBJ);
        ppx_pool_stats st = {.size = sizeof st, .submitted = 42};
        assert_int_equal(ppx_pool_stats_get(bad, &st), PPX_EBADOBJ);
        assert_int_equal(st.submitted, 42); /* untouched on failure */
        ppx_pool_free(bad); /* ignored */
    }
    assert_true(ppx_future_valid(f));
    assert_int_equal(ppx_pool_stats_get(p, NULL), PPX_EINVAL);
    assert_int_equal(ppx_pool_stats_get(ppx_thread_pool(), &(ppx_pool_stats)PPX_POOL_STATS_INIT), PPX_EBADOBJ);
    ppx_pool_stats st = PPX_POOL_STATS_INIT;
    assert_int_equal(ppx_pool_stats_get(p, &st), 0);
    assert_int_equal(st.submitted, 1);
    assert_int_equal(support_future_int(f), 3);
    ppx_future_unref(f);
    ppx_pool_free(p);
}

/* A thread running callbacks in its wait when another frees the pool:
 * the pool (its descriptors included) lives on until that thread leaves,
 * and goes then. */
typedef struct held {
    ppx_future *g;
    _Atomic int in_cb, freed;
} held;

static void block_until_freed(ppx_future *f, void *arg)
{
    (void)f;
    held *h = arg;
    atomic_store(&h->in_cb, 1);
    int64_t end = support_now_ms() + 10000;
    while (!atomic_load(&h->freed) && support_now_ms() < end)
        support_sleep_ms(1);
}

static void *wait_on_g(void *arg)
{
    ppx_future_wait(((held *)arg)->g, -1);
    return NULL;
}

static void test_a_thread_inside_a_call_keeps_the_pool_through_its_free(void **state)
{
    int before = support_open_fds();
    ppx_pool *p = new_pool(2, &PPX_POOL_OPTIONS(.cancel_grace_ms = 20));
    held h = {0};
    ppx_future *f;
    /* Nobody drives the pool yet: f is pending until the waiter does. */
    assert_int_equal(ppx_pool_submitf(p, &f, "add", "ii", 1, 2), 0);
    assert_int_equal(ppx_future_add_done_callback(f, block_until_freed, &h), 0);
    assert_int_equal(ppx_pool_submitf(p, &h.g, "spin_forever", ""), 0);
    pthread_t th;
    assert_int_equal(pthread_create(&th, NULL, wait_on_g, &h), 0);
    int64_t end = support_now_ms() + 10000;
    while (!atomic_load(&h.in_cb) && support_now_ms() < end)
        support_sleep_ms(1);
    assert_true(atomic_load(&h.in_cb));
    ppx_pool_free(p);
    assert_true(support_open_fds() > before); /* still held by the waiter */
    atomic_store(&h.freed, 1);
    pthread_join(th, NULL);
    assert_int_equal(support_open_fds(), before);
    assert_int_equal(ppx_future_state(h.g), PPX_CANCELLED);
    assert_int_equal(support_future_int(f), 3);
    ppx_future_unref(h.g);
    ppx_future_unref(f);
}

/* ---- a free racing calls on its futures from other threads ------------ */

enum { RACE_FUTURES = 48, RACE_THREADS = 3 };

typedef struct race {
    ppx_future *f[RACE_FUTURES];
    int who;
    _Atomic int calls;
} race;

/* Reads, waits on and cancels the futures until all resolved; each
 * thread does it differently so that every call meets the free. */
static void *race_main(void *arg)
{
    race *r = arg;
    int who = r->who;
    bool added[RACE_FUTURES] = {0};
    bool all_done = false;
    while (!all_done) {
        all_done = true;
        for (int i = 0; i < RACE_FUTURES; i++) {
            ppx_future *f = r->f[i];
            ppx_state st = ppx_future_state(f);
            if (who == 0)
                ppx_future_wait(f, i % 2 ? 0 : 1);
            else if (who == 1 && i % 7 == 3)
                ppx_future_cancel(f);
            else if (!added[i])
                added[i] = ppx_future_add_done_callback(f, count_cb_atomic, &r->calls) == 0;
            all_done &= ppx_future_done(f) && st != PPX_PENDING && st != PPX_RUNNING;
        }
    }
    return NULL;
}

static void test_free_races_calls_on_its_futures_from_other_threads(void **state)
{
    int before = support_open_fds();
    for (int round = 0; round < 4; round++) {
        ppx_pool *p = new_pool(2, &PPX_POOL_OPTIONS(.cancel_grace_ms = 20));
        race r[RACE_THREADS];
        for (int i = 0; i < RACE_FUTURES; i++) {
            const char *fn = i % 3 == 0 ? "spin_forever" : i % 3 == 1 ? "wait_cancel" : "add";
            ppx_future *f;
            assert_int_equal(ppx_pool_submitf(p, &f, fn, "ii", i, 1), 0);
            for (int t = 0; t < RACE_THREADS; t++) {
                ppx_future_ref(f);
                r[t].f[i] = f;
            }
            ppx_future_unref(f);
        }
        pthread_t th[RACE_THREADS];
        for (int t = 0; t < RACE_THREADS; t++) {
            r[t].who = t;
            atomic_init(&r[t].calls, 0);
            assert_int_equal(pthread_create(&th[t], NULL, race_main, &r[t]), 0);
        }
        support_sleep_ms(round * 5);
        ppx_pool_free(p); /* the threads' calls may still pin it */
        for (int t = 0; t < RACE_THREADS; t++)
            pthread_join(th[t], NULL);
        /* Added once per future, each callback ran once. */
        assert_int_equal(atomic_load(&r[2].calls), RACE_FUTURES);
        for (int i = 0; i < RACE_FUTURES; i++) {
            ppx_state st = ppx_future_state(r[0].f[i]);
            assert_true(st == PPX_DONE || st == PPX_CANCELLED);
            for (int t = 0; t < RACE_THREADS; t++)
                ppx_future_unref(r[t].f[i]);
        }
    }
    /* Every pool went with its last pin: no descriptor of one is left. */
    assert_int_equal(support_open_fds(), before);
}

static void test_map_runs_one_call_per_item_and_returns_their_results(void **state)
{
    ppx_pool *p = new_pool(1, NULL);
    void *items;
    size_t len;
    /* [[1, 2], [3, 4], [5, 6]] */
    static const unsigned char three[] = {0x93, 0x92, 1, 2, 0x92, 3, 4, 0x92, 5, 6};
    ppx_future *f;
    assert_int_equal(ppx_pool_map(p, "add", three, sizeof three, NULL, &f), 0);
    assert_int_equal(ppx_future_wait(f, 10000), 0);
    ppx_value v;
    assert_int_equal(ppx_future_value(f, &v), 0);
    char text[32];
    ppx_value_format(v, text, sizeof text);
    assert_string_equal(text, "[3, 7, 11]");
    ppx_future_unref(f);
    /* The first failure fails the batch and names the item. */
    assert_int_equal(ppx_pack(&items, &len, "iii", 0, 0, 0), 0);
    static const unsigned char raising[] = {0x93, 0x91, 1, 0x91, 2, 0x91, 3};
    assert_int_equal(ppx_pool_map(p, "raise", raising, sizeof raising, NULL, &f), 0);
    assert_int_equal(ppx_future_wait(f, 10000), 0);
    assert_string_equal(ppx_future_error(f)->type, "ValueError");
    assert_string_equal(ppx_future_error(f)->message, "item 0: bad value 1");
    ppx_future_unref(f);
    /* Items must each be an argument array. */
    assert_int_equal(ppx_pool_map(p, "add", items, len, NULL, &f), PPX_EMALFORMED);
    free(items);
    static const unsigned char none[] = {0x90};
    assert_int_equal(ppx_pool_map(p, "add", none, 1, NULL, &f), 0);
    assert_int_equal(ppx_future_wait(f, 10000), 0);
    assert_int_equal(ppx_future_value(f, &v), 0);
    ppx_value_format(v, text, sizeof text);
    assert_string_equal(text, "[]");
    ppx_future_unref(f);
    ppx_pool_free(p);
}

static void test_pool_lifetimes_leave_no_descriptor_or_process(void **state)
{
    int before = support_open_fds();
    int shm_before = support_dev_shm_entries();
    for (int k = 0; k < 3; k++) {
        ppx_pool *p = new_pool(2, NULL);
        ppx_future *f;
        assert_int_equal(ppx_pool_submitf(p, &f, "add", "ii", 1, 2), 0);
        assert_int_equal(ppx_future_wait(f, 10000), 0);
        ppx_future_unref(f);
        ppx_pool_free(p);
    }
    assert_int_equal(support_open_fds(), before);
    assert_int_equal(support_dev_shm_entries(), shm_before);
    assert_true(support_no_children());
    assert_int_equal(support_children_alive(), 0);
}

int main(void)
{
    marks = mmap(NULL, sizeof *marks, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    ppx_register("add", fn_add, NULL);
    ppx_register("raise", fn_raise, NULL);
    ppx_register("fail_silently", fn_fail_silently, NULL);
    ppx_register("no_memory", fn_no_memory, NULL);
    ppx_register("wait_cancel", fn_wait_cancel, NULL);
    ppx_register("spin_forever", fn_spin_forever, NULL);
    ppx_register("crash", fn_crash, NULL);
    ppx_register("echo", fn_echo, NULL);
    ppx_register("big", fn_big, NULL);
    ppx_register("mark", fn_mark, NULL);
    ppx_register("pid", fn_pid, NULL);
    ppx_register("scribble", fn_scribble, NULL);
    assert_int_equal(ppx_register("add", fn_add, NULL), PPX_EEXIST);

    const struct CMUnitTest tests[] = {
        cmocka_unit_test_teardown(test_submitted_calls_return_their_values, teardown),
        cmocka_unit_test(test_polling_with_zero_timeout_sees_the_result),
        cmocka_unit_test(test_strerror_is_static_for_unknown_codes),
        cmocka_unit_test_teardown(test_raised_error_carries_type_message_function_pid_and_where, teardown),
        cmocka_unit_test_teardown(test_unknown_function_fails_with_name_error, teardown),
        cmocka_unit_test_teardown(test_function_failing_without_raising_is_a_runtime_error, teardown),
        cmocka_unit_test_teardown(test_function_passing_on_enomem_is_a_memory_error, teardown),
        cmocka_unit_test(test_version_is_the_projects),
        cmocka_unit_test_teardown(test_done_callbacks_run_exactly_once, teardown),
        cmocka_unit_test_teardown(test_cancelled_pending_task_never_runs, teardown),
        cmocka_unit_test_teardown(test_cancelled_running_task_sees_the_flag_and_worker_survives, teardown),
        cmocka_unit_test_teardown(test_task_outlives_its_dropped_future, teardown),
        cmocka_unit_test_teardown(test_running_task_ignoring_cancel_is_killed_and_worker_respawned, teardown),
        cmocka_unit_test_teardown(test_wait_timeout_leaves_the_task_running, teardown),
        cmocka_unit_test_teardown(test_segfault_fails_only_its_task_and_pool_heals, teardown),
        cmocka_unit_test_teardown(test_abort_fails_only_its_task, teardown),
        cmocka_unit_test_teardown(test_exit_fails_only_its_task, teardown),
        cmocka_unit_test_teardown(test_worker_killed_from_outside_fails_its_running_task, teardown),
        cmocka_unit_test_teardown(test_big_payloads_travel_both_ways_through_small_rings, teardown),
        cmocka_unit_test_teardown(test_oversized_payloads_give_clear_errors, teardown),
        cmocka_unit_test_teardown(test_malformed_arguments_and_misuse_are_rejected, teardown),
        cmocka_unit_test_teardown(test_idle_worker_takes_calls_queued_behind_a_long_one, teardown),
        cmocka_unit_test_teardown(test_shutdown_wait_finishes_work_in_flight, teardown),
        cmocka_unit_test_teardown(test_shutdown_cancel_resolves_everything_at_once, teardown),
        cmocka_unit_test_teardown(test_free_with_work_in_flight_resolves_every_future_once, teardown),
        cmocka_unit_test_teardown(test_several_threads_submit_and_wait_at_once, teardown),
        cmocka_unit_test_teardown(test_worker_death_is_noticed_when_sigchld_is_ignored, teardown),
        cmocka_unit_test_teardown(test_shutdown_wait_runs_calls_requeued_after_a_crash, teardown),
        cmocka_unit_test_teardown(test_worker_scribbling_on_the_shared_header_faults_and_the_pool_goes_on, teardown),
        cmocka_unit_test_teardown(test_free_releases_threads_blocked_in_a_wait, teardown),
        cmocka_unit_test_teardown(test_futures_kept_past_the_pool_free_stay_readable, teardown),
        cmocka_unit_test_teardown(test_null_and_wrong_kind_handles_give_ebadobj, teardown),
        cmocka_unit_test_teardown(test_a_thread_inside_a_call_keeps_the_pool_through_its_free, teardown),
        cmocka_unit_test_teardown(test_free_races_calls_on_its_futures_from_other_threads, teardown),
        cmocka_unit_test_teardown(test_map_runs_one_call_per_item_and_returns_their_results, teardown),
        cmocka_unit_test_teardown(test_pool_lifetimes_leave_no_descriptor_or_process, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
