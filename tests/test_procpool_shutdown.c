/* End-to-end tests of the process pool with real forked workers, through
 * the blocking API only (no libuv): scheduling, shutdown and free, threads
 * racing them, and what a pool's lifetime leaves behind. */
#include "support.h"
#include "procpool_support.h"
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

/* How many children of this process's only child (a pool's fork server)
 * sleep in a futex wait, as a worker with nothing to do does. */
static int workers_asleep(void)
{
    char path[96];
    snprintf(path, sizeof path, "/proc/self/task/%d/children", (int)getpid());
    FILE *f = fopen(path, "r");
    int zygote = 0, n = 0, pid;
    if (!f || fscanf(f, "%d", &zygote) != 1)
        zygote = 0;
    if (f)
        fclose(f);
    snprintf(path, sizeof path, "/proc/%d/task/%d/children", zygote, zygote);
    if (!zygote || !(f = fopen(path, "r")))
        return 0;
    while (fscanf(f, "%d", &pid) == 1) {
        char wpath[64], wchan[64] = "";
        snprintf(wpath, sizeof wpath, "/proc/%d/wchan", pid);
        FILE *w = fopen(wpath, "r");
        if (w) {
            if (!fgets(wchan, sizeof wchan, w))
                wchan[0] = '\0';
            fclose(w);
        }
        n += strstr(wchan, "futex") != NULL;
    }
    fclose(f);
    return n;
}

/* A pool nobody drove has not read the fork server's reports: its
 * workers, already asleep on their rings, must still be woken by the
 * free, not left to the grace period and SIGKILL. The grace here is
 * longer than the suite's timeout: waiting it out fails the test. */
static void test_free_of_a_pool_never_driven_wakes_its_sleeping_workers(void **state)
{
    (void)state;
    ppx_pool *p = new_pool(2, &PPX_POOL_OPTIONS(.cancel_grace_ms = 600000));
    for (int i = 0; i < 3000 && workers_asleep() < 2; i++)
        support_sleep_ms(10);
    assert_int_equal(workers_asleep(), 2);
    ppx_pool_free(p);
    assert_true(support_no_children());
}

int main(void)
{
    procpool_support_register();

    const struct CMUnitTest tests[] = {
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
        cmocka_unit_test_teardown(test_pool_lifetimes_leave_no_descriptor_or_process, teardown),
        cmocka_unit_test_teardown(test_free_of_a_pool_never_driven_wakes_its_sleeping_workers,
                                  teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
