/* The executor surface around gather, end to end with real workers: task
 * groups, the lazy bounded map and progress over gathers, maps and groups.
 * Orderings are forced through a shared counter, never by timing. */
#include "support.h"
#include "executor_support.h"
#include "ppx.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>
#include <uv.h>

/* ---- task groups -------------------------------------------------------- */

static void test_task_group_waits_for_every_task_added_over_time(void **state)
{
    fixture *fx = *state;
    ppx_awaitable *g, *aw[4];
    assert_int_equal(ppx_task_group(&fx->loop, &g), 0);
    for (int i = 0; i < 2; i++) {
        aw[i] = call(fx, "square", i);
        assert_int_equal(ppx_task_group_add(g, aw[i]), 0);
    }
    assert_int_equal(ppx_run_until_complete(&fx->loop, aw[0]), 0);
    assert_false(ppx_awaitable_done(g)); /* not closed yet */
    for (int i = 2; i < 4; i++) {
        aw[i] = call(fx, "square", i);
        assert_int_equal(ppx_task_group_add(g, aw[i]), 0);
    }
    assert_int_equal(ppx_task_group_close(g), 0);
    assert_int_equal(ppx_run_until_complete(&fx->loop, g), 0);
    assert_int_equal(ppx_awaitable_state(g), PPX_DONE);
    assert_int_equal(ppx_task_group_add(g, aw[0]), PPX_ECLOSED); /* settled */
    assert_int_equal(uint_value(g), 4);
    for (int i = 0; i < 4; i++)
        assert_int_equal(int_value(aw[i]), i * i);
    unref_all(aw, 4);
    ppx_awaitable_unref(g);
}

static void test_task_group_first_failure_cancels_the_rest(void **state)
{
    fixture *fx = *state;
    ppx_awaitable *g, *run[2] = {forever(fx), forever(fx)}, *bad, *late;
    assert_int_equal(ppx_task_group(&fx->loop, &g), 0);
    for (int i = 0; i < 2; i++) {
        assert_int_equal(ppx_task_group_add(g, run[i]), 0);
        support_wait_awaitable_running(run[i]);
    }
    bad = call(fx, "square", -5);
    assert_int_equal(ppx_task_group_add(g, bad), 0);
    assert_int_equal(ppx_run_until_complete(&fx->loop, bad), 0);
    /* The failure cancelled the running tasks; a latecomer is cancelled. */
    for (int i = 0; i < 2; i++)
        assert_int_equal(ppx_awaitable_state(run[i]), PPX_CANCELLED);
    late = call(fx, "square", 1);
    assert_int_equal(ppx_task_group_add(g, late), PPX_ECANCELED);
    assert_int_equal(ppx_awaitable_state(late), PPX_CANCELLED);
    assert_false(ppx_awaitable_done(g)); /* it settles on close */
    assert_int_equal(ppx_task_group_close(g), 0);
    assert_int_equal(ppx_run_until_complete(&fx->loop, g), 0);
    assert_int_equal(ppx_awaitable_state(g), PPX_FAILED);
    assert_string_equal(ppx_awaitable_error(g)->type, "ValueError");
    assert_string_equal(ppx_awaitable_error(g)->message, "negative: -5");
    uv_run(&fx->loop, UV_RUN_DEFAULT);
    assert_int_equal(atomic_load(turn), 2000); /* both running tasks stopped */
    unref_all(run, 2);
    ppx_awaitable_unref(bad);
    ppx_awaitable_unref(late);
    ppx_awaitable_unref(g);
}

static void test_cancelling_a_task_group_cancels_its_tasks(void **state)
{
    fixture *fx = *state;
    ppx_awaitable *g, *t = forever(fx), *outside = forever(fx);
    assert_int_equal(ppx_task_group(&fx->loop, &g), 0);
    assert_int_equal(ppx_task_group_add(g, t), 0);
    assert_int_equal(ppx_task_group_add(g, outside), 0);
    /* A task cancelled from outside ends without failing the group. */
    assert_int_equal(ppx_awaitable_cancel(outside), 0);
    assert_false(ppx_awaitable_done(g));
    assert_int_equal(ppx_awaitable_cancel(g), 0);
    assert_int_equal(ppx_awaitable_state(g), PPX_CANCELLED);
    assert_int_equal(ppx_awaitable_state(t), PPX_CANCELLED);
    assert_int_equal(ppx_task_group_add(g, t), PPX_ECLOSED);
    assert_int_equal(ppx_task_group_add(t, g), PPX_EBADOBJ); /* not a group */
    ppx_awaitable_unref(t);
    ppx_awaitable_unref(outside);
    ppx_awaitable_unref(g);
}

/* ---- the lazy map ----------------------------------------------------------- */

typedef struct feed {
    size_t n;          /* inputs to give */
    int64_t fail_at;   /* input that raises, or -1 */
    size_t pulled, delivered, max_outstanding;
    bool in_order;
    unsigned char buf[16];
} feed;

static int next_input(size_t i, const void **args, size_t *len, void *arg)
{
    feed *f = arg;
    if (i >= f->n)
        return 0;
    int64_t x = (int64_t)i == f->fail_at ? -1 : (int64_t)(i % 1000);
    /* [x] as msgpack: fixarray 1, int64 */
    f->buf[0] = 0x91;
    f->buf[1] = 0xd3;
    for (int k = 0; k < 8; k++)
        f->buf[2 + k] = (unsigned char)((uint64_t)x >> (56 - 8 * k));
    *args = f->buf;
    *len = 10;
    f->pulled++;
    if (f->pulled - f->delivered > f->max_outstanding)
        f->max_outstanding = f->pulled - f->delivered;
    return 1;
}

static void on_result(size_t i, ppx_awaitable *aw, void *arg)
{
    feed *f = arg;
    int64_t want = (int64_t)(i % 1000) * (int64_t)(i % 1000), got;
    ppx_value v;
    f->in_order &= i == f->delivered && ppx_awaitable_value(aw, &v) == 0 &&
                   ppx_value_int(v, &got) == 0 && got == want;
    f->delivered++;
}

static void test_lazy_map_delivers_in_order_with_bounded_calls_in_flight(void **state)
{
    fixture *fx = *state;
    feed f = {.n = 500, .fail_at = -1, .in_order = true};
    ppx_awaitable *m;
    assert_int_equal(ppx_map_lazy(&fx->loop, fx->pool, "square", 8, next_input, on_result, &f, &m), 0);
    assert_int_equal(ppx_run_until_complete(&fx->loop, m), 0);
    assert_int_equal(ppx_awaitable_state(m), PPX_DONE);
    assert_int_equal(uint_value(m), 500);
    assert_int_equal(f.delivered, 500);
    assert_true(f.in_order);
    assert_true(f.max_outstanding <= 8);
    ppx_awaitable_unref(m);
}

static void test_lazy_map_stops_at_the_first_failure(void **state)
{
    fixture *fx = *state;
    feed f = {.n = 10000, .fail_at = 40, .in_order = true};
    ppx_awaitable *m;
    assert_int_equal(ppx_map_lazy(&fx->loop, fx->pool, "square", 4, next_input, on_result, &f, &m), 0);
    assert_int_equal(ppx_run_until_complete(&fx->loop, m), 0);
    assert_int_equal(ppx_awaitable_state(m), PPX_FAILED);
    assert_string_equal(ppx_awaitable_error(m)->type, "ValueError");
    assert_int_equal(f.delivered, 40); /* everything before it, in order */
    assert_true(f.in_order);
    assert_true(f.pulled <= 40 + 4); /* nothing pulled past the window */
    uv_run(&fx->loop, UV_RUN_DEFAULT);
    ppx_awaitable_unref(m);
    assert_int_equal(ppx_map_lazy(&fx->loop, fx->pool, "square", 0, next_input, NULL, &f, &m),
                     PPX_EINVAL);
}

typedef struct cancelling_feed {
    ppx_awaitable *map;
    size_t at;  /* the input whose pull cancels the map */
    int answer; /* what next() returns for it */
} cancelling_feed;

static int next_cancelling(size_t i, const void **args, size_t *len, void *arg)
{
    cancelling_feed *f = arg;
    if (i == f->at)
        assert_int_equal(ppx_awaitable_cancel(f->map), 0);
    *args = "\x91\x02"; /* [2] */
    *len = 2;
    return i == f->at ? f->answer : 1;
}

static void test_lazy_map_cancelled_by_its_input_callback_submits_nothing_more(void **state)
{
    fixture *fx = *state;
    /* Whatever next() answers once it has cancelled the map, the map stays
     * cancelled with its own error, and that input is not submitted. */
    static const int answers[] = {1, 0, -5};
    uint64_t submitted = 0;
    for (size_t k = 0; k < sizeof answers / sizeof answers[0]; k++) {
        cancelling_feed f = {.at = 2, .answer = answers[k]};
        /* Calls settle only when the loop runs: the first two are in flight. */
        assert_int_equal(ppx_map_lazy(&fx->loop, fx->pool, "square", 4, next_cancelling, NULL,
                                      &f, &f.map), 0);
        assert_int_equal(ppx_awaitable_state(f.map), PPX_CANCELLED);
        assert_string_equal(ppx_awaitable_error(f.map)->type, "CancelledError");
        ppx_pool_stats st = PPX_POOL_STATS_INIT;
        ppx_pool_stats_get(fx->pool, &st);
        assert_int_equal(st.submitted - submitted, 2);
        submitted = st.submitted;
        uv_run(&fx->loop, UV_RUN_DEFAULT);
        assert_string_equal(ppx_awaitable_error(f.map)->type, "CancelledError");
        ppx_awaitable_unref(f.map);
    }
}

static long rss_kib(void)
{
    FILE *s = fopen("/proc/self/statm", "r");
    long size = 0, res = 0;
    if (s) {
        if (fscanf(s, "%ld %ld", &size, &res) != 2)
            res = 0;
        fclose(s);
    }
    return res * (sysconf(_SC_PAGESIZE) / 1024);
}

static void test_lazy_map_over_a_million_inputs_keeps_memory_flat(void **state)
{
    fixture *fx = *state;
    /* Under valgrind each call costs a thousand times more: fewer inputs,
     * the same bound. Under ASan freed memory sits in its quarantine, and
     * TSan keeps shadow and history for every access, so resident size
     * says nothing there. */
#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
    bool measure = false;
#else
    bool measure = !getenv("PPX_UNDER_VALGRIND");
#endif
    size_t n = measure ? 1000000 : 20000;
    feed f = {.n = n, .fail_at = -1, .in_order = true};
    ppx_awaitable *m;
    long before = rss_kib();
    assert_int_equal(ppx_map_lazy(&fx->loop, fx->pool, "square", 256, next_input, on_result, &f, &m), 0);
    assert_int_equal(ppx_run_until_complete(&fx->loop, m), 0);
    long grown = rss_kib() - before;
    assert_int_equal(ppx_awaitable_state(m), PPX_DONE);
    assert_int_equal(f.delivered, n);
    assert_true(f.in_order);
    assert_true(f.max_outstanding <= 256);
    /* Holding every call at once would take hundreds of MiB. */
    if (measure && grown > 16 * 1024)
        fail_msg("resident memory grew by %ld KiB over %zu calls", grown, n);
    ppx_awaitable_unref(m);
}

/* ---- progress ---------------------------------------------------------------- */

typedef struct progress {
    size_t calls, last_done, last_total;
    bool increasing;
} progress;

static void on_progress(ppx_awaitable *aw, size_t done, size_t total, void *arg)
{
    (void)aw;
    progress *p = arg;
    p->increasing &= done == p->last_done + 1;
    p->calls++;
    p->last_done = done;
    p->last_total = total;
}

static void test_progress_counts_each_part_of_gathers_maps_and_groups(void **state)
{
    fixture *fx = *state;
    ppx_awaitable *aw[5], *g;
    for (int i = 0; i < 5; i++)
        aw[i] = call(fx, "square", i);
    assert_int_equal(ppx_gather(&fx->loop, aw, 5, 0, &g), 0);
    progress pg = {.increasing = true};
    /* Nothing settles before the loop runs: every part reports. */
    assert_false(ppx_awaitable_done(g));
    assert_int_equal(ppx_awaitable_on_progress(g, on_progress, &pg), 0);
    assert_int_equal(ppx_run_until_complete(&fx->loop, g), 0);
    assert_true(pg.increasing);
    assert_int_equal(pg.calls, 5);
    assert_int_equal(pg.last_done, 5);
    assert_int_equal(pg.last_total, 5);
    /* A single call (process or thread) reports what its function
     * reports (ppx_call_progress; square reports nothing: no more calls);
     * a wait has no parts. */
    assert_int_equal(ppx_awaitable_on_progress(aw[0], on_progress, &pg), 0);
    ppx_awaitable *w, *wf, *th;
    assert_int_equal(ppx_wait(&fx->loop, aw, 5, PPX_ALL_COMPLETED, -1, &w), 0);
    assert_int_equal(ppx_wait_for(&fx->loop, aw[0], -1, &wf), 0);
    assert_int_equal(ppx_run_in_thread(&fx->loop, "square", "\x91\x02", 2, &th), 0);
    assert_int_equal(ppx_awaitable_on_progress(w, on_progress, &pg), PPX_EINVAL);
    assert_int_equal(ppx_awaitable_on_progress(wf, on_progress, &pg), PPX_EINVAL);
    assert_int_equal(ppx_awaitable_on_progress(th, on_progress, &pg), 0);
    assert_int_equal(ppx_run_until_complete(&fx->loop, th), 0);
    assert_int_equal(pg.calls, 5);
    ppx_awaitable_unref(w);
    ppx_awaitable_unref(wf);
    ppx_awaitable_unref(th);
    unref_all(aw, 5);
    ppx_awaitable_unref(g);

    feed f = {.n = 100, .fail_at = -1, .in_order = true};
    progress pm = {.increasing = true};
    ppx_awaitable *m;
    assert_int_equal(ppx_map_lazy(&fx->loop, fx->pool, "square", 4, next_input, on_result, &f, &m), 0);
    assert_int_equal(ppx_awaitable_on_progress(m, on_progress, &pm), 0);
    assert_int_equal(ppx_run_until_complete(&fx->loop, m), 0);
    assert_true(pm.increasing);
    assert_int_equal(pm.calls, 100); /* one per delivered result */
    assert_int_equal(pm.last_done, 100);
    assert_int_equal(pm.last_total, 0); /* a lazy map does not know its length */
    ppx_awaitable_unref(m);

    ppx_awaitable *tg, *t[3];
    progress pt = {.increasing = true};
    assert_int_equal(ppx_task_group(&fx->loop, &tg), 0);
    assert_int_equal(ppx_awaitable_on_progress(tg, on_progress, &pt), 0);
    for (int i = 0; i < 3; i++) {
        t[i] = call(fx, "step", i);
        assert_int_equal(ppx_task_group_add(tg, t[i]), 0);
    }
    assert_int_equal(ppx_task_group_close(tg), 0);
    assert_int_equal(ppx_run_until_complete(&fx->loop, tg), 0);
    assert_int_equal(pt.calls, 3);
    assert_int_equal(pt.last_done, 3);
    assert_int_equal(pt.last_total, 3);
    unref_all(t, 3);
    ppx_awaitable_unref(tg);
}

int main(void)
{
    executor_support_register();
#define T(name) cmocka_unit_test_setup_teardown(name, setup, teardown)
    const struct CMUnitTest tests[] = {
        T(test_task_group_waits_for_every_task_added_over_time),
        T(test_task_group_first_failure_cancels_the_rest),
        T(test_cancelling_a_task_group_cancels_its_tasks),
        T(test_lazy_map_delivers_in_order_with_bounded_calls_in_flight),
        T(test_lazy_map_stops_at_the_first_failure),
        T(test_lazy_map_cancelled_by_its_input_callback_submits_nothing_more),
        T(test_lazy_map_over_a_million_inputs_keeps_memory_flat),
        T(test_progress_counts_each_part_of_gathers_maps_and_groups),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
