/* Observability: per-worker statistics (ppx_pool_worker_stats) and the
 * task trace (PPX_TRACE / ppx_pool_options.trace_path), with real forked
 * workers. Timing checks are lower bounds that a sleep guarantees. */
#include "support.h"
#include "ppx.h"

#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static void sleep_ms(int64_t ms)
{
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000};
    while (nanosleep(&ts, &ts) != 0)
        ;
}

static int fn_add(ppx_call *c, void *u)
{
    int64_t a, b;
    if (ppx_call_arg_int(c, 0, &a) || ppx_call_arg_int(c, 1, &b))
        return ppx_raise(c, "TypeError", "add takes two integers");
    return ppx_return_int(c, a + b);
}

static int fn_sleep(ppx_call *c, void *u)
{
    int64_t ms = 0;
    ppx_call_arg_int(c, 0, &ms);
    sleep_ms(ms);
    return ppx_return_int(c, ms);
}

static int fn_raise(ppx_call *c, void *u)
{
    return ppx_raise(c, "ValueError", "not this one");
}

/* Sleeps the given milliseconds, then dies of SIGSEGV. */
static int fn_crash(ppx_call *c, void *u)
{
    int64_t ms = 0;
    ppx_call_arg_int(c, 0, &ms);
    sleep_ms(ms);
    raise(SIGSEGV);
    return 0;
}

static int fn_wait_cancel(ppx_call *c, void *u)
{
    while (!ppx_call_cancelled(c))
        sleep_ms(1);
    return ppx_return_nil(c);
}

/* Long enough that a slow run (valgrind) never kills a cancelled call. */
static ppx_pool *new_pool(int workers, const char *trace_path)
{
    ppx_pool_options o = PPX_POOL_OPTIONS(.workers = workers, .cancel_grace_ms = 5000, .trace_path = trace_path);
    ppx_pool *p = NULL;
    support_valgrind_sizes(&o);
    assert_int_equal(ppx_pool_new(&o, &p), 0);
    return p;
}

static ppx_worker_stats worker(ppx_pool *p, int i)
{
    ppx_worker_stats ws = PPX_WORKER_STATS_INIT;
    assert_int_equal(ppx_pool_worker_stats(p, i, &ws), 0);
    return ws;
}

static int teardown(void **state)
{
    (void)state;
    assert_true(support_no_children());
    return 0;
}

/* ---- per-worker statistics --------------------------------------------- */

static void test_busy_time_grows_by_at_least_the_length_of_a_sleeping_call(void **state)
{
    ppx_pool *p = new_pool(1, NULL);
    long pid = support_worker_pid(p, 0); /* reported: alive from here on */
    ppx_worker_stats before = worker(p, 0);
    assert_true(before.alive);
    assert_int_equal(before.pid, pid);
    ppx_future *f;
    assert_int_equal(ppx_pool_submitf(p, &f, "sleep", "i", 60), 0);
    assert_int_equal(ppx_future_wait(f, 10000), 0);
    assert_int_equal(ppx_future_state(f), PPX_DONE);
    ppx_worker_stats after = worker(p, 0);
    assert_true(after.busy_ns - before.busy_ns >= 60 * 1000000ull);
    assert_int_equal(after.completed, 1);
    ppx_future_unref(f);
    ppx_pool_free(p);
}

static void test_calls_per_worker_add_up_to_the_pool_counters(void **state)
{
    ppx_pool *p = new_pool(3, NULL);
    enum { N = 30 };
    ppx_future *f[N + 1];
    for (int i = 0; i < N; i++)
        assert_int_equal(ppx_pool_submitf(p, &f[i], "add", "ii", i, 1), 0);
    assert_int_equal(ppx_pool_submitf(p, &f[N], "raise", ""), 0);
    for (int i = 0; i <= N; i++)
        assert_int_equal(ppx_future_wait(f[i], 10000), 0);
    uint64_t completed = 0, failed = 0;
    for (int i = 0; i < ppx_pool_workers(p); i++) {
        ppx_worker_stats ws = worker(p, i);
        completed += ws.completed;
        failed += ws.failed;
        assert_int_equal(ws.crashed, 0);
        assert_int_equal(ws.restarts, 0);
    }
    ppx_pool_stats st = PPX_POOL_STATS_INIT;
    ppx_pool_stats_get(p, &st);
    assert_int_equal(completed, N);
    assert_int_equal(completed, st.completed);
    assert_int_equal(failed, 1);
    assert_int_equal(failed, st.failed);
    for (int i = 0; i <= N; i++)
        ppx_future_unref(f[i]);
    ppx_pool_free(p);
}

static void test_restarts_count_a_crash_and_busy_time_keeps_the_crashed_call(void **state)
{
    ppx_pool *p = new_pool(1, NULL);
    long pid = support_worker_pid(p, 0);
    ppx_future *f;
    assert_int_equal(ppx_pool_submitf(p, &f, "crash", "i", 40), 0);
    assert_int_equal(ppx_future_wait(f, 10000), 0);
    assert_string_equal(ppx_future_error(f)->type, "WorkerCrashed");
    int64_t end = support_now_ms() + 10000;
    ppx_worker_stats ws = PPX_WORKER_STATS_INIT;
    while ((ws = worker(p, 0)).restarts == 0 || !ws.alive) {
        assert_true(support_now_ms() < end);
        struct pollfd pf = {ppx_pool_fd(p), POLLIN, 0};
        poll(&pf, 1, 20);
        ppx_pool_process(p);
    }
    assert_int_equal(ws.restarts, 1);
    assert_int_equal(ws.crashed, 1);
    assert_true(ws.pid > 0 && ws.pid != pid);
    /* The call slept 40 ms before it crashed: that time is the slot's. */
    assert_true(ws.busy_ns >= 40 * 1000000ull);
    ppx_pool_stats st = PPX_POOL_STATS_INIT;
    ppx_pool_stats_get(p, &st);
    assert_int_equal(st.respawns, 1);
    ppx_future_unref(f);
    ppx_pool_free(p);
}

static void test_ring_occupancy_is_zero_when_idle_and_counts_calls_behind_a_blocked_one(void **state)
{
    ppx_pool *p = new_pool(1, NULL);
    ppx_worker_stats ws = worker(p, 0);
    assert_int_equal(ws.request_ring_bytes, 0);
    assert_int_equal(ws.response_ring_bytes, 0);
    assert_int_equal(ws.queued, 0);
    assert_true(ws.ring_bytes >= 4096);

    ppx_future *block, *f[3];
    assert_int_equal(ppx_pool_submitf(p, &block, "wait_cancel", ""), 0);
    support_wait_running(block);
    for (int i = 0; i < 3; i++)
        assert_int_equal(ppx_pool_submitf(p, &f[i], "add", "ii", i, i), 0);
    ws = worker(p, 0);
    assert_int_equal(ws.queued, 4);
    assert_true(ws.request_ring_bytes > 0);
    assert_true(ws.request_ring_bytes <= ws.ring_bytes);

    assert_int_equal(ppx_future_cancel(block), 0);
    for (int i = 0; i < 3; i++)
        assert_int_equal(ppx_future_wait(f[i], 10000), 0);
    support_drain(p, 10000);
    /* The worker releases a call's record after its reply: wait for it. */
    int64_t end = support_now_ms() + 10000;
    while ((ws = worker(p, 0)).request_ring_bytes || ws.response_ring_bytes) {
        assert_true(support_now_ms() < end);
        sleep_ms(1);
        ppx_pool_process(p);
    }
    assert_int_equal(ws.queued, 0);
    ppx_future_unref(block);
    for (int i = 0; i < 3; i++)
        ppx_future_unref(f[i]);
    ppx_pool_free(p);
}

static void test_worker_stats_reject_a_bad_index_and_a_bad_pool(void **state)
{
    ppx_pool *p = new_pool(2, NULL);
    ppx_worker_stats ws;
    memset(&ws, 0x5a, sizeof ws);
    ws.size = sizeof ws;
    assert_int_equal(ppx_pool_worker_stats(p, -1, &ws), PPX_EINVAL);
    assert_int_equal(ppx_pool_worker_stats(p, 2, &ws), PPX_EINVAL);
    assert_int_equal(ppx_pool_worker_stats(p, 0, NULL), PPX_EINVAL);
    assert_int_equal(ws.completed, 0x5a5a5a5a5a5a5a5aull); /* untouched */
    assert_int_equal(ppx_pool_worker_stats(NULL, 0, &ws), PPX_EBADOBJ);
    assert_int_equal(ppx_pool_worker_stats(ppx_thread_pool(), 0, &ws), PPX_EBADOBJ);
    assert_int_equal(ppx_pool_worker_stats(p, 1, &ws), 0);
    ppx_pool_free(p); /* using p after this is undefined (ppx.h) */
}

/* ---- the trace ------------------------------------------------------------ */

typedef struct trace_file {
    char *text;
    char **lines;
    size_t n;
} trace_file;

static void trace_read(const char *path, trace_file *t)
{
    FILE *f = fopen(path, "r");
    assert_non_null(f);
    size_t cap = 1 << 16, len = 0;
    t->text = malloc(cap);
    size_t got;
    while ((got = fread(t->text + len, 1, cap - len - 1, f)) > 0) {
        len += got;
        if (cap - len < 2)
            t->text = realloc(t->text, cap *= 2);
    }
    fclose(f);
    t->text[len] = '\0';
    t->lines = NULL;
    t->n = 0;
    char *save = NULL;
    for (char *l = strtok_r(t->text, "\n", &save); l; l = strtok_r(NULL, "\n", &save)) {
        t->lines = realloc(t->lines, (t->n + 1) * sizeof *t->lines);
        t->lines[t->n++] = l;
    }
}

static void trace_free(trace_file *t)
{
    free(t->text);
    free(t->lines);
}

/* Structure the writer promises: "[", one event object per line, each
 * but the last followed by a comma, "]". */
static void check_structure(const trace_file *t)
{
    assert_true(t->n >= 2);
    assert_string_equal(t->lines[0], "[");
    assert_string_equal(t->lines[t->n - 1], "]");
    for (size_t i = 1; i + 1 < t->n; i++) {
        const char *l = t->lines[i];
        size_t len = strlen(l);
        bool last = i + 2 == t->n;
        assert_true(l[0] == '{');
        assert_true(len >= 2);
        assert_true(last ? l[len - 1] == '}' : (l[len - 2] == '}' && l[len - 1] == ','));
        int depth = 0;
        bool in_str = false;
        for (const char *s = l; *s; s++) {
            if (in_str) {
                if (*s == '\\')
                    s++;
                else if (*s == '"')
                    in_str = false;
                continue;
            }
            in_str = *s == '"';
            depth += (*s == '{') - (*s == '}');
            assert_true(depth >= 0);
        }
        assert_false(in_str);
        assert_int_equal(depth, 0);
    }
}

static bool python_says_valid(const char *path)
{
    if (system("command -v python3 >/dev/null 2>&1") != 0)
        return true; /* nothing to ask: the structural check stands */
    char cmd[512];
    snprintf(cmd, sizeof cmd,
             "python3 -c 'import json,sys; e=json.load(open(sys.argv[1])); "
             "assert isinstance(e, list)' '%s'", path);
    return system(cmd) == 0;
}

static long field_int(const char *line, const char *key)
{
    char pat[64];
    snprintf(pat, sizeof pat, "\"%s\":", key);
    const char *s = strstr(line, pat);
    return s ? strtol(s + strlen(pat), NULL, 10) : -1;
}

static bool field_is(const char *line, const char *key, const char *value)
{
    char pat[128];
    snprintf(pat, sizeof pat, "\"%s\":\"%s\"", key, value);
    return strstr(line, pat) != NULL;
}

/* The slice of task id on a worker's track; fails if not exactly one. */
static const char *call_slice(const trace_file *t, uint64_t id)
{
    const char *found = NULL;
    for (size_t i = 1; i + 1 < t->n; i++) {
        const char *l = t->lines[i];
        if (field_is(l, "ph", "X") && field_int(l, "tid") >= 1 &&
            field_int(l, "task") == (long)id) {
            assert_null(found);
            found = l;
        }
    }
    assert_non_null(found);
    return found;
}

static size_t count(const trace_file *t, const char *ph, const char *name, bool workers)
{
    size_t n = 0;
    for (size_t i = 1; i + 1 < t->n; i++) {
        const char *l = t->lines[i];
        if (field_is(l, "ph", ph) && (!name || field_is(l, "name", name)) &&
            (field_int(l, "tid") >= 1) == workers)
            n++;
    }
    return n;
}

static void test_trace_records_every_call_with_its_worker_and_outcome(void **state)
{
    char dir[] = "/tmp/ppx-observe-XXXXXX";
    assert_non_null(mkdtemp(dir));
    char pattern[128], path[128];
    snprintf(pattern, sizeof pattern, "%s/trace-%%p.json", dir);
    snprintf(path, sizeof path, "%s/trace-%ld.json", dir, (long)getpid());
    assert_int_equal(setenv("PPX_TRACE", pattern, 1), 0);
    ppx_pool *p = new_pool(3, NULL);
    unsetenv("PPX_TRACE");

    enum { ADDS = 4 };
    ppx_future *add[ADDS], *raised, *crashed, *cancelled, *timed_out, *batch, *unknown;
    for (int i = 0; i < ADDS; i++)
        assert_int_equal(ppx_pool_submitf(p, &add[i], "add", "ii", i, 2), 0);
    assert_int_equal(ppx_pool_submitf(p, &raised, "raise", ""), 0);
    for (int i = 0; i < ADDS; i++)
        assert_int_equal(ppx_future_wait(add[i], 10000), 0);
    assert_int_equal(ppx_future_wait(raised, 10000), 0);
    assert_int_equal(ppx_pool_submitf(p, &crashed, "crash", "i", 0), 0);
    assert_int_equal(ppx_future_wait(crashed, 10000), 0);
    assert_int_equal(ppx_pool_submitf(p, &cancelled, "wait_cancel", ""), 0);
    support_wait_running(cancelled);
    assert_int_equal(ppx_future_cancel(cancelled), 0);
    void *args;
    size_t len;
    assert_int_equal(ppx_pack(&args, &len, ""), 0);
    /* Its slice needs it running when the deadline passes: wait for that,
     * with a deadline a slow start (valgrind, a busy machine) stays under. */
    ppx_call_options quick = PPX_CALL_OPTIONS(.timeout_ms = 500);
    assert_int_equal(ppx_pool_submit_ex(p, "wait_cancel", args, len, &quick, &timed_out), 0);
    free(args);
    support_wait_running(timed_out);
    assert_int_equal(ppx_future_wait(timed_out, 10000), 0);
    assert_string_equal(ppx_future_error(timed_out)->type, "TimeoutError");
    static const unsigned char items[] = {0x92, 0x92, 1, 2, 0x92, 3, 4}; /* [[1,2],[3,4]] */
    assert_int_equal(ppx_pool_map(p, "add", items, sizeof items, NULL, &batch), 0);
    assert_int_equal(ppx_future_wait(batch, 10000), 0);
    assert_int_equal(ppx_future_state(batch), PPX_DONE);
    assert_int_equal(ppx_pool_submitf(p, &unknown, "no_such_function", ""), 0);
    support_drain(p, 10000); /* the cancelled calls answer */
    ppx_pool_free(p);

    assert_true(python_says_valid(path));
    trace_file t;
    trace_read(path, &t);
    check_structure(&t);
    assert_int_equal(count(&t, "M", "process_name", false), 1);
    assert_int_equal(count(&t, "M", "thread_name", false), 1); /* the pool's track */
    assert_int_equal(count(&t, "M", "thread_name", true), 3);  /* one per worker */
    assert_int_equal(count(&t, "I", "worker restarted", true), 1);
    /* One slice per call a worker started, none for the unknown name. */
    assert_int_equal(count(&t, "X", NULL, true), ADDS + 5);
    assert_int_equal(count(&t, "X", "submit", false), ADDS + 5);
    for (int i = 0; i < ADDS; i++)
        assert_true(field_is(call_slice(&t, ppx_future_id(add[i])), "outcome", "done"));
    const char *l = call_slice(&t, ppx_future_id(raised));
    assert_true(field_is(l, "outcome", "failed") && field_is(l, "error", "ValueError"));
    l = call_slice(&t, ppx_future_id(crashed));
    assert_true(field_is(l, "outcome", "crashed") && field_is(l, "error", "WorkerCrashed"));
    assert_non_null(strstr(l, "\"worker_died\":true"));
    l = call_slice(&t, ppx_future_id(cancelled));
    assert_true(field_is(l, "outcome", "cancelled") && field_is(l, "name", "wait_cancel"));
    assert_true(field_is(call_slice(&t, ppx_future_id(timed_out)), "outcome", "timed_out"));
    l = call_slice(&t, ppx_future_id(batch));
    assert_true(field_is(l, "outcome", "done") && strstr(l, "\"batch\":true"));
    /* Every slice sits on the track of a worker the trace named. */
    for (size_t i = 1; i + 1 < t.n; i++) {
        long tid = field_int(t.lines[i], "tid");
        assert_true(tid >= 0 && tid <= 3);
    }
    size_t failed_marks = 0;
    for (size_t i = 1; i + 1 < t.n; i++)
        failed_marks += field_is(t.lines[i], "name", "failed") &&
                        field_is(t.lines[i], "error", "NameError") &&
                        field_int(t.lines[i], "task") == (long)ppx_future_id(unknown);
    assert_int_equal(failed_marks, 1);
    trace_free(&t);

    for (int i = 0; i < ADDS; i++)
        ppx_future_unref(add[i]);
    ppx_future_unref(raised);
    ppx_future_unref(crashed);
    ppx_future_unref(cancelled);
    ppx_future_unref(timed_out);
    ppx_future_unref(batch);
    ppx_future_unref(unknown);
    assert_int_equal(unlink(path), 0);
    assert_int_equal(rmdir(dir), 0);
}

static void test_trace_path_option_wins_and_an_unwritable_one_fails_pool_creation(void **state)
{
    char dir[] = "/tmp/ppx-observe-XXXXXX";
    assert_non_null(mkdtemp(dir));
    char path[128], bad[160], decoy[128];
    snprintf(path, sizeof path, "%s/100%%%%.json", dir); /* "%%" is a '%' */
    snprintf(decoy, sizeof decoy, "%s/env.json", dir);
    assert_int_equal(setenv("PPX_TRACE", decoy, 1), 0);
    ppx_pool *p = new_pool(2, path);
    unsetenv("PPX_TRACE");
    ppx_pool_free(p);
    snprintf(path, sizeof path, "%s/100%%.json", dir);
    assert_int_equal(access(decoy, F_OK), -1);
    assert_true(python_says_valid(path));
    trace_file t;
    trace_read(path, &t);
    check_structure(&t);
    assert_int_equal(count(&t, "M", "thread_name", true), 2);
    assert_int_equal(count(&t, "X", NULL, true), 0);
    trace_free(&t);
    assert_int_equal(unlink(path), 0);

    snprintf(bad, sizeof bad, "%s/missing/trace.json", dir);
    ppx_pool_options o = PPX_POOL_OPTIONS(.workers = 1, .trace_path = bad);
    ppx_pool *q = NULL;
    support_valgrind_sizes(&o);
    assert_int_equal(ppx_pool_new(&o, &q), -ENOENT);
    assert_null(q);
    assert_non_null(strstr(ppx_last_error(), bad));
    assert_int_equal(rmdir(dir), 0);
}

/* A program that exits without ppx_pool_free leaves whole events and no
 * closing bracket: one line holding "]" makes the file JSON again. */
static void test_trace_cut_short_by_exit_is_whole_events_without_the_bracket(void **state)
{
    char dir[] = "/tmp/ppx-observe-XXXXXX";
    assert_non_null(mkdtemp(dir));
    char path[128];
    snprintf(path, sizeof path, "%s/cut.json", dir);
    pid_t child = fork();
    assert_true(child >= 0);
    if (child == 0) {
        ppx_pool *p = NULL;
        ppx_pool_options o = PPX_POOL_OPTIONS(.workers = 2, .trace_path = path);
        ppx_future *f;
        support_valgrind_sizes(&o);
        if (ppx_pool_new(&o, &p) || ppx_pool_submitf(p, &f, "add", "ii", 1, 2) ||
            ppx_future_wait(f, 10000))
            _exit(2);
        _exit(0); /* no ppx_pool_free: its workers follow the process */
    }
    int status;
    assert_int_equal(waitpid(child, &status, 0), child);
    assert_true(WIFEXITED(status) && WEXITSTATUS(status) == 0);
    trace_file t;
    trace_read(path, &t);
    assert_true(t.n >= 2);
    assert_string_equal(t.lines[0], "[");
    assert_int_equal(count(&t, "M", "thread_name", true), 2); /* on disk from the start */
    const char *last = t.lines[t.n - 1];
    assert_true(last[0] == '{' && last[strlen(last) - 1] == '}');
    trace_free(&t);
    FILE *f = fopen(path, "a");
    assert_non_null(f);
    fputs("\n]\n", f);
    fclose(f);
    trace_read(path, &t);
    check_structure(&t);
    trace_free(&t);
    assert_true(python_says_valid(path));
    assert_int_equal(unlink(path), 0);
    assert_int_equal(rmdir(dir), 0);
}

int main(void)
{
    ppx_register("add", fn_add, NULL);
    ppx_register("sleep", fn_sleep, NULL);
    ppx_register("raise", fn_raise, NULL);
    ppx_register("crash", fn_crash, NULL);
    ppx_register("wait_cancel", fn_wait_cancel, NULL);

    const struct CMUnitTest tests[] = {
        cmocka_unit_test_teardown(test_busy_time_grows_by_at_least_the_length_of_a_sleeping_call, teardown),
        cmocka_unit_test_teardown(test_calls_per_worker_add_up_to_the_pool_counters, teardown),
        cmocka_unit_test_teardown(test_restarts_count_a_crash_and_busy_time_keeps_the_crashed_call, teardown),
        cmocka_unit_test_teardown(test_ring_occupancy_is_zero_when_idle_and_counts_calls_behind_a_blocked_one, teardown),
        cmocka_unit_test_teardown(test_worker_stats_reject_a_bad_index_and_a_bad_pool, teardown),
        cmocka_unit_test_teardown(test_trace_records_every_call_with_its_worker_and_outcome, teardown),
        cmocka_unit_test_teardown(test_trace_path_option_wins_and_an_unwritable_one_fails_pool_creation, teardown),
        cmocka_unit_test_teardown(test_trace_cut_short_by_exit_is_whole_events_without_the_bracket, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
