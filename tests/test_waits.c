/* The blocking surface of concurrent.futures without a loop: waiting on
 * many futures of one pool or several (ppx_futures_wait), as_completed,
 * shutdown that cancels only what has not started, and terminating or
 * killing the workers. Calls that must stay running wait on a gate in
 * shared memory that the test opens: no sleeps decide an outcome. */
#include "support.h"
#include "ppx.h"

#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

#define NGATES 32
/* Shared with the workers: gate i is open once nonzero. */
static _Atomic int *gates;
static int next_gate;

/* Waits until gate i opens (or the call is cancelled), returns i. */
static int fn_gate(ppx_call *c, void *u)
{
    (void)u;
    int64_t i = 0;
    ppx_call_arg_int(c, 0, &i);
    while (!atomic_load(&gates[i]) && !ppx_call_cancelled(c)) {
        struct timespec ts = {0, 1000000};
        nanosleep(&ts, NULL);
    }
    return ppx_return_int(c, i);
}

static int fn_add(ppx_call *c, void *u)
{
    (void)u;
    int64_t a = 0, b = 0;
    ppx_call_arg_int(c, 0, &a);
    ppx_call_arg_int(c, 1, &b);
    return ppx_return_int(c, a + b);
}

static int fn_raise(ppx_call *c, void *u)
{
    (void)u;
    return ppx_raise(c, "ValueError", "raised on purpose");
}

static ppx_pool *new_pool(int workers, unsigned max_queued)
{
    ppx_pool_options o = PPX_POOL_OPTIONS(.workers = workers, .max_queued_per_worker = max_queued);
    support_valgrind_sizes(&o);
    ppx_pool *p = NULL;
    assert_int_equal(ppx_pool_new(&o, &p), 0);
    return p;
}

/* A call of "gate" on a gate of its own, closed. */
static ppx_future *gated(ppx_pool *p, int *gate)
{
    *gate = next_gate++;
    assert_true(*gate < NGATES);
    ppx_future *f = NULL;
    assert_int_equal(ppx_pool_submitf(p, &f, "gate", "i", *gate), 0);
    return f;
}

static ppx_future *added(ppx_pool *p, int a, int b)
{
    ppx_future *f = NULL;
    assert_int_equal(ppx_pool_submitf(p, &f, "add", "ii", a, b), 0);
    return f;
}

static void open_gate(int i)
{
    atomic_store(&gates[i], 1);
}

static int teardown(void **state)
{
    (void)state;
    assert_true(support_no_children());
    return 0;
}

/* ---- ppx_futures_wait --------------------------------------------------- */

static void test_misuse_is_refused(void **state)
{
    (void)state;
    bool done[2] = {true, true};
    assert_int_equal(ppx_futures_wait(NULL, 1, PPX_ALL_COMPLETED, 0, done), PPX_EINVAL);
    assert_int_equal(ppx_futures_wait(NULL, 0, PPX_ALL_COMPLETED, 0, done), 0);
    ppx_future *fs[2] = {NULL, NULL};
    assert_int_equal(ppx_futures_wait(fs, 2, 0, 0, done), PPX_EINVAL);
    assert_int_equal(ppx_futures_wait(fs, 2, PPX_FIRST_COMPLETED, 0, done), PPX_EBADOBJ);
    assert_true(done[0] && done[1]); /* untouched on an error */
    ppx_futures_iter *it = NULL;
    assert_int_equal(ppx_futures_as_completed_new(fs, 2, &it), PPX_EBADOBJ);
    assert_int_equal(ppx_futures_as_completed_new(NULL, 1, &it), PPX_EINVAL);
    assert_int_equal(ppx_futures_as_completed_new(NULL, 0, NULL), PPX_EINVAL);
    assert_int_equal(ppx_futures_as_completed_new(NULL, 0, &it), 0);
    ppx_future *f = NULL;
    assert_int_equal(ppx_futures_as_completed_next(it, -1, &f), PPX_EDONE);
    assert_int_equal(ppx_futures_as_completed_next(it, -1, NULL), PPX_EINVAL);
    ppx_futures_as_completed_free(it);
    ppx_futures_as_completed_free(NULL);
}

static void test_wait_each_how_on_one_pool(void **state)
{
    (void)state;
    ppx_pool *p = new_pool(2, 0);
    int g0, g1;
    ppx_future *f0 = gated(p, &g0), *f1 = gated(p, &g1);
    ppx_future *fs[2] = {f0, f1};
    bool done[2] = {true, true};
    /* Nothing can finish: a poll and a short timeout both give 0. */
    assert_int_equal(ppx_futures_wait(fs, 2, PPX_FIRST_COMPLETED, 0, done), 0);
    assert_false(done[0] || done[1]);
    assert_int_equal(ppx_futures_wait(fs, 2, PPX_ALL_COMPLETED, 30, done), 0);
    assert_false(done[0] || done[1]);

    open_gate(g0);
    assert_int_equal(ppx_futures_wait(fs, 2, PPX_FIRST_COMPLETED, -1, done), 1);
    assert_true(done[0]);
    assert_false(done[1]);
    assert_int_equal(support_future_int(f0), g0);

    /* FIRST_EXCEPTION returns on a failure while f1 still runs. */
    ppx_future *fr = NULL;
    assert_int_equal(ppx_pool_submitf(p, &fr, "raise", ""), 0);
    ppx_future *fe[2] = {f1, fr};
    assert_int_equal(ppx_futures_wait(fe, 2, PPX_FIRST_EXCEPTION, -1, done), 1);
    assert_false(done[0]);
    assert_true(done[1]);
    assert_int_equal(ppx_future_state(fr), PPX_FAILED);

    open_gate(g1);
    ppx_future *all[3] = {f0, f1, fr};
    bool d3[3];
    assert_int_equal(ppx_futures_wait(all, 3, PPX_ALL_COMPLETED, -1, d3), 3);
    assert_true(d3[0] && d3[1] && d3[2]);
    assert_int_equal(support_future_int(f1), g1);
    /* Without flags, and FIRST_EXCEPTION with no failure left waits for all. */
    assert_int_equal(ppx_futures_wait(fs, 2, PPX_FIRST_EXCEPTION, -1, NULL), 2);
    ppx_future_unref(f0);
    ppx_future_unref(f1);
    ppx_future_unref(fr);
    ppx_pool_free(p);
}

static void test_wait_over_two_pools(void **state)
{
    (void)state;
    ppx_pool *a = new_pool(1, 0), *b = new_pool(1, 0);
    int ga, gb;
    ppx_future *fa = gated(a, &ga), *fb = gated(b, &gb);
    ppx_future *fs[4] = {fa, fb, fa, fb}; /* duplicates count per entry */
    bool done[4];
    assert_int_equal(ppx_futures_wait(fs, 4, PPX_FIRST_COMPLETED, 0, done), 0);
    assert_int_equal(ppx_futures_wait(fs, 4, PPX_FIRST_COMPLETED, 20, done), 0);
    open_gate(gb);
    assert_int_equal(ppx_futures_wait(fs, 4, PPX_FIRST_COMPLETED, -1, done), 2);
    assert_false(done[0] || done[2]);
    assert_true(done[1] && done[3]);
    open_gate(ga);
    assert_int_equal(ppx_futures_wait(fs, 4, PPX_ALL_COMPLETED, -1, done), 4);
    assert_int_equal(support_future_int(fa), ga);
    assert_int_equal(support_future_int(fb), gb);
    ppx_future_unref(fa);
    ppx_future_unref(fb);
    ppx_pool_free(a);
    ppx_pool_free(b);
}

typedef struct waiter_arg {
    ppx_future *f;
    int rc;
} waiter_arg;

static void *wait_thread(void *arg)
{
    waiter_arg *w = arg;
    w->rc = ppx_future_wait(w->f, -1);
    return NULL;
}

/* Another thread drives pool a (it waits on a call of its own there)
 * while this one waits on a future of a and one of b. */
static void test_wait_while_another_thread_drives_a_pool(void **state)
{
    (void)state;
    ppx_pool *a = new_pool(2, 0), *b = new_pool(1, 0);
    int gt, ga;
    waiter_arg w = {gated(a, &gt), -1};
    pthread_t th;
    assert_int_equal(pthread_create(&th, NULL, wait_thread, &w), 0);
    ppx_future *fa = gated(a, &ga), *fb = added(b, 2, 3);
    ppx_future *fs[2] = {fa, fb};
    open_gate(ga);
    assert_int_equal(ppx_futures_wait(fs, 2, PPX_ALL_COMPLETED, -1, NULL), 2);
    assert_int_equal(support_future_int(fa), ga);
    assert_int_equal(support_future_int(fb), 5);
    open_gate(gt);
    pthread_join(th, NULL);
    assert_int_equal(w.rc, 0);
    assert_int_equal(support_future_int(w.f), gt);
    ppx_future_unref(w.f);
    ppx_future_unref(fa);
    ppx_future_unref(fb);
    ppx_pool_free(a);
    ppx_pool_free(b);
}

/* ---- as_completed ------------------------------------------------------- */

static void as_completed_fast_then_slow(ppx_pool *slow_pool, ppx_pool *fast_pool)
{
    /* First, while a worker is free for it. */
    ppx_future *done = added(fast_pool, 1, 1);
    assert_int_equal(ppx_future_wait(done, -1), 0);
    int gs, gf;
    ppx_future *slow = gated(slow_pool, &gs), *fast = gated(fast_pool, &gf);
    ppx_future *fs[5] = {slow, fast, slow, done, fast};
    ppx_futures_iter *it = NULL;
    assert_int_equal(ppx_futures_as_completed_new(fs, 5, &it), 0);
    ppx_future *f = NULL;
    /* The one already resolved comes first. */
    assert_int_equal(ppx_futures_as_completed_next(it, 0, &f), 0);
    assert_ptr_equal(f, done);
    assert_int_equal(ppx_futures_as_completed_next(it, 0, &f), PPX_ETIMEDOUT);
    assert_int_equal(ppx_futures_as_completed_next(it, 20, &f), PPX_ETIMEDOUT);
    open_gate(gf);
    assert_int_equal(ppx_futures_as_completed_next(it, -1, &f), 0);
    assert_ptr_equal(f, fast);
    open_gate(gs);
    assert_int_equal(ppx_futures_as_completed_next(it, -1, &f), 0);
    assert_ptr_equal(f, slow);
    /* Each once: the duplicates are not handed back again. */
    assert_int_equal(ppx_futures_as_completed_next(it, -1, &f), PPX_EDONE);
    assert_int_equal(ppx_futures_as_completed_next(it, 0, &f), PPX_EDONE);
    ppx_future_unref(slow);
    ppx_future_unref(fast);
    ppx_future_unref(done);
    /* The iterator's references keep them. */
    assert_int_equal(support_future_int(f), gs);
    ppx_futures_as_completed_free(it);
}

static void test_as_completed_on_one_pool(void **state)
{
    (void)state;
    ppx_pool *p = new_pool(2, 0);
    as_completed_fast_then_slow(p, p);
    ppx_pool_free(p);
}

static void test_as_completed_over_two_pools(void **state)
{
    (void)state;
    ppx_pool *a = new_pool(1, 0), *b = new_pool(1, 0);
    as_completed_fast_then_slow(a, b);
    ppx_pool_free(a);
    ppx_pool_free(b);
}

/* An iterator freed before its futures resolve takes its callbacks back:
 * their later resolution touches nothing freed (ASan, valgrind). */
static void test_as_completed_freed_early(void **state)
{
    (void)state;
    ppx_pool *p = new_pool(1, 0);
    int g;
    ppx_future *f = gated(p, &g);
    for (int i = 0; i < 3; i++) {
        ppx_futures_iter *it = NULL;
        assert_int_equal(ppx_futures_as_completed_new(&f, 1, &it), 0);
        ppx_future *got = NULL;
        assert_int_equal(ppx_futures_as_completed_next(it, 0, &got), PPX_ETIMEDOUT);
        ppx_futures_as_completed_free(it);
    }
    open_gate(g);
    assert_int_equal(support_future_int(f), g);
    ppx_future_unref(f);
    ppx_pool_free(p);
}

/* ---- shutdown, terminate, kill ------------------------------------------ */

static void test_shutdown_cancel_queued_lets_the_running_call_finish(void **state)
{
    (void)state;
    ppx_pool *p = new_pool(1, 1); /* some stay in the pool's queue */
    int g;
    ppx_future *running = gated(p, &g);
    support_wait_running(running);
    long pid = support_worker_pid(p, 0);
    assert_true(pid > 0);
    ppx_future *queued[4];
    for (int i = 0; i < 4; i++)
        queued[i] = added(p, i, 1);
    assert_int_equal(ppx_pool_shutdown(p, PPX_SHUTDOWN_CANCEL_QUEUED, 0), PPX_ETIMEDOUT);
    for (int i = 0; i < 4; i++)
        assert_int_equal(ppx_future_state(queued[i]), PPX_CANCELLED);
    assert_false(ppx_future_done(running));
    ppx_future *late = NULL;
    assert_int_equal(ppx_pool_submitf(p, &late, "add", "ii", 1, 2), PPX_ECLOSED);
    open_gate(g);
    assert_int_equal(ppx_pool_shutdown(p, PPX_SHUTDOWN_CANCEL_QUEUED, -1), 0);
    assert_int_equal(ppx_future_state(running), PPX_DONE);
    assert_int_equal(support_future_int(running), g);
    assert_int_equal(support_worker_pid(p, 0), pid);
    for (int i = 0; i < 4; i++)
        ppx_future_unref(queued[i]);
    ppx_future_unref(running);
    ppx_pool_free(p);
}

static void end_workers(int (*how)(ppx_pool *), const char *signame)
{
    ppx_pool *p = new_pool(1, 1);
    int g;
    ppx_future *running = gated(p, &g); /* never opened */
    support_wait_running(running);
    long pid = support_worker_pid(p, 0);
    ppx_future *queued[3];
    for (int i = 0; i < 3; i++)
        queued[i] = added(p, i, 1);
    ppx_pool_stats before = PPX_POOL_STATS_INIT;
    ppx_pool_stats_get(p, &before);

    assert_int_equal(how(p), 0);
    for (int i = 0; i < 3; i++)
        assert_int_equal(ppx_future_state(queued[i]), PPX_CANCELLED);
    ppx_future *late = NULL;
    assert_int_equal(ppx_pool_submitf(p, &late, "add", "ii", 1, 2), PPX_ECLOSED);
    assert_int_equal(ppx_futures_wait(&running, 1, PPX_ALL_COMPLETED, -1, NULL), 1);
    assert_int_equal(ppx_future_state(running), PPX_FAILED);
    const ppx_error *e = ppx_future_error(running);
    assert_string_equal(e->type, "WorkerCrashed");
    assert_non_null(strstr(e->message, signame));
    assert_int_equal(e->pid, pid);
    support_wait_gone(pid, 10000);

    /* No worker comes back, however long the pool is driven. */
    assert_int_equal(ppx_pool_shutdown(p, PPX_SHUTDOWN_WAIT, -1), 0);
    for (int i = 0; i < 3; i++)
        ppx_pool_process(p);
    assert_int_equal(ppx_pool_worker_pid(p, 0), 0);
    ppx_pool_stats after = PPX_POOL_STATS_INIT;
    ppx_pool_stats_get(p, &after);
    assert_int_equal(after.respawns, before.respawns);
    assert_int_equal(how(p), 0); /* again: nothing left to signal */
    for (int i = 0; i < 3; i++)
        ppx_future_unref(queued[i]);
    ppx_future_unref(running);
    ppx_pool_free(p);
}

static void test_terminate_workers(void **state)
{
    (void)state;
    end_workers(ppx_pool_terminate_workers, "SIGTERM");
}

static void test_kill_workers(void **state)
{
    (void)state;
    end_workers(ppx_pool_kill_workers, "SIGKILL");
}

static void test_terminate_an_idle_pool(void **state)
{
    (void)state;
    ppx_pool *p = new_pool(2, 0);
    long pids[2] = {support_worker_pid(p, 0), support_worker_pid(p, 1)};
    assert_int_equal(ppx_pool_terminate_workers(p), 0);
    support_wait_gone(pids[0], 10000);
    support_wait_gone(pids[1], 10000);
    assert_int_equal(ppx_pool_shutdown(p, PPX_SHUTDOWN_WAIT, -1), 0);
    ppx_pool_free(p);
    assert_int_equal(ppx_pool_terminate_workers(NULL), PPX_EBADOBJ);
    assert_int_equal(ppx_pool_kill_workers(NULL), PPX_EBADOBJ);
}

int main(void)
{
    gates = mmap(NULL, NGATES * sizeof *gates, PROT_READ | PROT_WRITE,
                 MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    if (gates == MAP_FAILED)
        return 1;
    ppx_register("gate", fn_gate, NULL);
    ppx_register("add", fn_add, NULL);
    ppx_register("raise", fn_raise, NULL);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_misuse_is_refused),
        cmocka_unit_test_teardown(test_wait_each_how_on_one_pool, teardown),
        cmocka_unit_test_teardown(test_wait_over_two_pools, teardown),
        cmocka_unit_test_teardown(test_wait_while_another_thread_drives_a_pool, teardown),
        cmocka_unit_test_teardown(test_as_completed_on_one_pool, teardown),
        cmocka_unit_test_teardown(test_as_completed_over_two_pools, teardown),
        cmocka_unit_test_teardown(test_as_completed_freed_early, teardown),
        cmocka_unit_test_teardown(test_shutdown_cancel_queued_lets_the_running_call_finish,
                                  teardown),
        cmocka_unit_test_teardown(test_terminate_workers, teardown),
        cmocka_unit_test_teardown(test_kill_workers, teardown),
        cmocka_unit_test_teardown(test_terminate_an_idle_pool, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
