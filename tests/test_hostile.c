/*
 * A worker can't hurt the pool: functions that scribble on the shared
 * memory they can reach, exit with any status, close their descriptors or
 * fork, and the pool's answer to each (see docs/FAILURE_MODEL.md, "The
 * trust boundary"). The functions are in hostile_fns.c. Other groups of
 * the suite: hostile_app.c, hostile_fork.c, hostile_process.c.
 */
#include "hostile.h"
#include "hostile_fns.h"
#include "support.h"
#include "ppx.h"
#include "procpool/wire/shared.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdatomic.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>

static const char *const part_names[PARTS] = {"block", "req",   "resp",  "outbox",
                                              "own",   "header", "other", "arena"};

static int teardown(void **state)
{
    (void)state;
    assert_true(support_no_children());
    return 0;
}

/* ---- helpers ----------------------------------------------------------- */

static ppx_pool *new_pool(int workers)
{
    ppx_pool *p = NULL;
    ppx_pool_options o = PPX_POOL_OPTIONS(.workers = workers, .ring_bytes = 64 << 10, .max_payload = 4 << 20);
    support_valgrind_sizes(&o);
    assert_int_equal(ppx_pool_new(&o, &p), 0);
    return p;
}

static ppx_future *submit_add(ppx_pool *p, int a, int b)
{
    ppx_future *f;
    assert_int_equal(ppx_pool_submitf(p, &f, "add", "ii", a, b), 0);
    return f;
}

/* The pool answers n fresh calls with the right values. */
static void serves(ppx_pool *p, int n)
{
    for (int i = 0; i < n; i++) {
        ppx_future *f = submit_add(p, i, 1000);
        assert_int_equal(support_future_int(f), i + 1000);
        ppx_future_unref(f);
    }
}

/* A call that failed because of worker pid: its error names the worker,
 * the task, and is one of the two a broken worker may cause. */
static void assert_blames(ppx_future *f, long pid)
{
    const ppx_error *e = ppx_future_error(f);
    assert_non_null(e);
    if (strcmp(e->type, "WorkerCrashed") != 0 && strcmp(e->type, "ProtocolError") != 0)
        fail_msg("unexpected %s: %s", e->type, e->message);
    assert_true(e->pid > 0);
    if (pid)
        assert_int_equal(e->pid, pid);
    char task[64];
    snprintf(task, sizeof task, "task %" PRIu64 ")", ppx_future_id(f));
    assert_non_null(strstr(e->message, task));
}

/* ---- scribbling -------------------------------------------------------- */

enum { BEHIND = 12 };

/* One scribble and a dozen calls submitted behind it: the scribble call
 * resolves (value, or an error naming its worker), every other call
 * returns its value except at most one that the broken worker held (an
 * error naming that worker), and the pool serves afterwards. */
static void scribble_once(int workers, int mode, int part, int seed)
{
    if (getenv("HOSTILE_VERBOSE"))
        print_message("scribble %s mode %d seed %d, %d workers\n", part_names[part], mode, seed,
                      workers);
    ppx_pool *p = new_pool(workers);
    ppx_future *s, *f[BEHIND];
    assert_int_equal(ppx_pool_submitf(p, &s, "scribble", "iii", mode, part, seed), 0);
    for (int i = 0; i < BEHIND; i++)
        f[i] = submit_add(p, i, seed);
    assert_int_equal(ppx_future_wait(s, 30000), 0);
    long culprit = 0;
    int64_t pid = 0;
    if (ppx_future_int(s, &pid) == 0) {
        culprit = (long)pid;
        if (part >= PART_HEADER)
            fail_msg("a %s scribble did not fault", part_names[part]);
    } else {
        assert_blames(s, 0);
        culprit = ppx_future_error(s)->pid;
        if (part >= PART_HEADER)
            assert_non_null(strstr(ppx_future_error(s)->message, "SIGSEGV"));
    }
    int lost = 0;
    for (int i = 0; i < BEHIND; i++) {
        assert_int_equal(ppx_future_wait(f[i], 30000), 0);
        int64_t v;
        if (ppx_future_int(f[i], &v) == 0) {
            assert_int_equal(v, i + seed);
        } else {
            assert_blames(f[i], culprit);
            lost++;
        }
        ppx_future_unref(f[i]);
    }
    if (lost > 1)
        fail_msg("%s/%d over %s with %d workers: %d calls lost", part_names[part], mode,
                 part_names[part], workers, lost);
    ppx_future_unref(s);
    serves(p, 2 * workers + 2);
    ppx_pool_free(p);
}

static void scribble_all(int workers)
{
    for (int part = 0; part < PARTS; part++) {
        if (part == PART_OTHER && workers == 1)
            continue;
        for (int mode = 0; mode < MODES; mode++)
            for (int seed = 1; seed <= (mode == MODE_RANDOM ? 3 : 1); seed++)
                scribble_once(workers, mode, part, seed);
    }
}

static void test_scribbling_one_worker_costs_at_most_one_call_and_the_pool_recovers(void **state)
{
    (void)state;
    scribble_all(1);
}

static void test_scribbling_among_three_workers_never_touches_the_others_calls(void **state)
{
    (void)state;
    scribble_all(3);
}

/* ---- exit statuses ----------------------------------------------------- */

static void test_any_exit_status_is_a_crash_named_by_its_status_and_queued_calls_rerun(void **state)
{
    (void)state;
    /* 0 and 120..125 are the statuses ppx's own workers use on purpose. */
    static const int statuses[] = {0, 1, 3, 120, 121, 122, 123, 124, 125, 127, 255};
    ppx_pool *p = new_pool(1);
    for (size_t k = 0; k < sizeof statuses / sizeof *statuses; k++) {
        long pid = 0;
        ppx_future *who;
        assert_int_equal(ppx_pool_submitf(p, &who, "pid", ""), 0);
        pid = (long)support_future_int(who);
        ppx_future_unref(who);
        ppx_future *e, *f[4];
        assert_int_equal(ppx_pool_submitf(p, &e, "exit_with", "i", statuses[k]), 0);
        for (int i = 0; i < 4; i++)
            f[i] = submit_add(p, i, 10);
        assert_int_equal(ppx_future_wait(e, 30000), 0);
        const ppx_error *err = ppx_future_error(e);
        assert_non_null(err);
        assert_string_equal(err->type, "WorkerCrashed");
        assert_int_equal(err->pid, pid);
        char want[64];
        snprintf(want, sizeof want, "exited with status %d", statuses[k]);
        assert_non_null(strstr(err->message, want));
        assert_blames(e, pid);
        for (int i = 0; i < 4; i++) {
            assert_int_equal(support_future_int(f[i]), i + 10);
            ppx_future_unref(f[i]);
        }
        ppx_future_unref(e);
    }
    ppx_pool_stats st = PPX_POOL_STATS_INIT;
    ppx_pool_stats_get(p, &st);
    assert_int_equal(st.init_failures, 0);
    ppx_pool_free(p);
}

/* ---- descriptors ------------------------------------------------------- */

static void test_function_closing_every_descriptor_still_answers_and_its_worker_is_replaced(void **state)
{
    (void)state;
    ppx_pool *p = new_pool(1);
    ppx_future *f;
    assert_int_equal(ppx_pool_submitf(p, &f, "pid", ""), 0);
    long before = (long)support_future_int(f);
    ppx_future_unref(f);
    for (int round = 0; round < 3; round++) {
        assert_int_equal(ppx_pool_submitf(p, &f, "close_all", ""), 0);
        assert_int_equal(support_future_int(f), 42); /* no timeout given: it must come */
        ppx_future_unref(f);
        serves(p, 3);
    }
    /* The worker without its eventfd leaves once it sees that, and is
     * replaced; a hang guard only, the wait is for an event. */
    int64_t end = support_now_ms() + 20000;
    while (ppx_pool_worker_pid(p, 0) == before || ppx_pool_worker_pid(p, 0) == 0) {
        assert_true(support_now_ms() < end);
        ppx_future *g = submit_add(p, 0, 0);
        assert_int_equal(support_future_int(g), 0);
        ppx_future_unref(g);
        support_sleep_ms(50);
    }
    serves(p, 5);
    ppx_pool_free(p);
}

/* ---- fork inside a function ------------------------------------------- */

static void test_function_forking_gets_the_originals_answer_and_the_copy_writes_nothing(void **state)
{
    (void)state;
    ppx_pool *p = new_pool(1);
    for (int round = 0; round < 10; round++) {
        ppx_future *f, *g[3];
        assert_int_equal(ppx_pool_submitf(p, &f, "fork_and_return", "i", round & 1), 0);
        for (int i = 0; i < 3; i++)
            g[i] = submit_add(p, i, round);
        assert_int_equal(ppx_future_wait(f, 30000), 0);
        if (round & 1) {
            const void *b;
            size_t n;
            ppx_value v;
            assert_int_equal(ppx_future_value(f, &v), 0);
            assert_int_equal(ppx_value_bin(v, &b, &n), 0);
            assert_int_equal(n, 1 << 20);
            for (size_t k = 0; k < n; k += 4096)
                assert_int_equal(((const unsigned char *)b)[k], 0x07);
        } else {
            assert_int_equal(support_future_int(f), 7);
        }
        for (int i = 0; i < 3; i++) {
            assert_int_equal(support_future_int(g[i]), i + round);
            ppx_future_unref(g[i]);
        }
        ppx_future_unref(f);
    }
    ppx_pool_stats st = PPX_POOL_STATS_INIT;
    ppx_pool_stats_get(p, &st);
    assert_int_equal(st.crashed, 0);
    serves(p, 5);
    ppx_pool_free(p);
}

/* Found by fuzz_shared: after one big reply, a function setting the busy
 * flag its block used to hold kept the worker waiting for its outbox for
 * good. The count it waits on is the parent's now, where it cannot write. */
static void test_function_cannot_stall_its_worker_through_the_outbox(void **state)
{
    (void)state;
    ppx_pool *p = new_pool(1);
    for (int set = 0; set < 3; set++) {
        ppx_future *f;
        assert_int_equal(ppx_pool_submitf(p, &f, "big_after_flag", "i", set == 1), 0);
        assert_int_equal(ppx_future_wait(f, 30000), 0);
        ppx_value v;
        const void *b;
        size_t n;
        assert_int_equal(ppx_future_value(f, &v), 0);
        assert_int_equal(ppx_value_bin(v, &b, &n), 0);
        assert_int_equal(n, 1 << 20);
        for (size_t k = 0; k < n; k += 4093)
            assert_int_equal(((const unsigned char *)b)[k], 0x5A);
        ppx_future_unref(f);
    }
    ppx_pool_stats st = PPX_POOL_STATS_INIT;
    ppx_pool_stats_get(p, &st);
    assert_int_equal(st.crashed, 0);
    assert_true(st.outbox_replies >= 3);
    serves(p, 5);
    ppx_pool_free(p);
}

/* ---- the fork server, lost under a busy thread ------------------------- */

typedef struct submitter {
    ppx_pool *p;
    _Atomic bool stop;
    _Atomic int ok, crashed, wrong;
} submitter;

/* Calls add again and again, each waited for, until told to stop: each
 * is its sum, or a WorkerCrashed error (a call a worker held when it
 * died with the fork server); anything else counts as wrong. */
static void *submit_loop(void *arg)
{
    submitter *s = arg;
    for (int i = 0; !atomic_load(&s->stop); i++) {
        ppx_future *f;
        int64_t v = 0;
        if (ppx_pool_submitf(s->p, &f, "add", "ii", i, 1000) != 0) {
            atomic_fetch_add(&s->wrong, 1);
            break;
        }
        const ppx_error *e = NULL;
        if (ppx_future_wait(f, -1) == 0 && ppx_future_int(f, &v) == 0 && v == i + 1000)
            atomic_fetch_add(&s->ok, 1);
        else if ((e = ppx_future_error(f)) && strcmp(e->type, "WorkerCrashed") == 0)
            atomic_fetch_add(&s->crashed, 1);
        else
            atomic_fetch_add(&s->wrong, 1);
        ppx_future_unref(f);
    }
    return NULL;
}

/* The parent of the worker that answers: retried past the calls that
 * fail because their worker died with the old fork server. */
static long answering_parent(ppx_pool *p)
{
    for (;;) {
        ppx_future *f;
        assert_int_equal(ppx_pool_submitf(p, &f, "ppid", ""), 0);
        assert_int_equal(ppx_future_wait(f, 30000), 0);
        int64_t v;
        int rc = ppx_future_int(f, &v);
        if (rc != 0)
            assert_string_equal(ppx_future_error(f)->type, "WorkerCrashed");
        ppx_future_unref(f);
        if (rc == 0)
            return (long)v;
    }
}

/* Progress of another thread, waited for by its count (no clock). */
static void await_count(_Atomic int *count, int at_least)
{
    while (atomic_load(count) < at_least)
        support_sleep_ms(1);
}

static void test_killed_fork_server_is_replaced_while_another_thread_submits(void **state)
{
    (void)state;
    ppx_pool *p = new_pool(2);
    long old = answering_parent(p);
    assert_int_equal(support_parent_of(old), (long)getpid());
    submitter s = {.p = p};
    pthread_t th;
    assert_int_equal(pthread_create(&th, NULL, submit_loop, &s), 0);
    await_count(&s.ok, 20);
    assert_int_equal(kill((pid_t)old, SIGKILL), 0);
    /* Workers of the old fork server may answer until they die with it:
     * an answer counts once its worker's parent is a new child of ours. */
    long now;
    do
        now = answering_parent(p);
    while (now == old || support_parent_of(now) != (long)getpid());
    int healed = atomic_load(&s.ok);
    await_count(&s.ok, healed + 50); /* the busy thread's calls answer again */
    atomic_store(&s.stop, true);
    assert_int_equal(pthread_join(th, NULL), 0);
    assert_int_equal(atomic_load(&s.wrong), 0);
    serves(p, 20);
    assert_int_equal(answering_parent(p), now); /* one fork server, and it stays */
    ppx_pool_stats st = PPX_POOL_STATS_INIT;
    ppx_pool_stats_get(p, &st);
    assert_true(st.respawns >= 2);
    ppx_pool_free(p);
}

int main(void)
{
    hostile_fns_register();
    hostile_app_register();
    hostile_process_register();
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_teardown(test_scribbling_one_worker_costs_at_most_one_call_and_the_pool_recovers, teardown),
        cmocka_unit_test_teardown(test_scribbling_among_three_workers_never_touches_the_others_calls, teardown),
        cmocka_unit_test_teardown(test_any_exit_status_is_a_crash_named_by_its_status_and_queued_calls_rerun, teardown),
        cmocka_unit_test_teardown(test_function_closing_every_descriptor_still_answers_and_its_worker_is_replaced, teardown),
        cmocka_unit_test_teardown(test_function_forking_gets_the_originals_answer_and_the_copy_writes_nothing, teardown),
        cmocka_unit_test_teardown(test_function_cannot_stall_its_worker_through_the_outbox, teardown),
        cmocka_unit_test_teardown(test_killed_fork_server_is_replaced_while_another_thread_submits, teardown),
    };
    int failed = cmocka_run_group_tests_name("hostile_worker", tests, NULL, NULL);
    failed += hostile_app_run();
    failed += hostile_fork_run();
    failed += hostile_process_run();
    return failed;
}
