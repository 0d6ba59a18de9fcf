/* The executor surface around gather, end to end with real workers: wait,
 * wait_for, as_completed, task groups, the lazy bounded map and the
 * thread-pool executor. Orderings are forced through a shared counter,
 * never by timing. */
#include "support.h"
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

static _Atomic int *turn; /* shared with workers */


/* step(k): waits for its turn (turn == k), passes it on, returns k. */
static int fn_step(ppx_call *c, void *u)
{
    (void)u;
    int64_t k;
    ppx_call_arg_int(c, 0, &k);
    while (atomic_load(turn) != k && !ppx_call_cancelled(c))
        support_sleep_ms(1);
    if (ppx_call_cancelled(c))
        return ppx_raise(c, "CancelledError", "step %lld was cancelled", (long long)k);
    atomic_store(turn, (int)k + 1);
    return ppx_return_int(c, k);
}

/* gate(k): waits until the test sets turn to k, returns k. */
static int fn_gate(ppx_call *c, void *u)
{
    (void)u;
    int64_t k;
    ppx_call_arg_int(c, 0, &k);
    while (atomic_load(turn) != k && !ppx_call_cancelled(c))
        support_sleep_ms(1);
    return ppx_return_int(c, k);
}

/* forever(): runs until cancelled, then counts that it noticed. */
static int fn_forever(ppx_call *c, void *u)
{
    (void)u;
    while (!ppx_call_cancelled(c))
        support_sleep_ms(1);
    atomic_fetch_add(turn, 1000);
    return ppx_return_nil(c);
}

static int fn_square(ppx_call *c, void *u)
{
    (void)u;
    int64_t x;
    if (ppx_call_arg_int(c, 0, &x))
        return ppx_raise(c, "TypeError", "square takes an integer");
    if (x < 0)
        return ppx_raise(c, "ValueError", "negative: %lld", (long long)x);
    return ppx_return_int(c, x * x);
}

typedef struct fixture {
    uv_loop_t loop;
    ppx_pool *pool;
} fixture;

static int setup(void **state)
{
    fixture *fx = calloc(1, sizeof *fx);
    uv_loop_init(&fx->loop);
    ppx_pool_options o = PPX_POOL_OPTIONS(.workers = 3, .cancel_grace_ms = 2000);
    support_valgrind_sizes(&o);
    assert_int_equal(ppx_pool_new(&o, &fx->pool), 0);
    atomic_store(turn, 0);
    *state = fx;
    return 0;
}

static int teardown(void **state)
{
    fixture *fx = *state;
    ppx_pool_free(fx->pool);
    uv_run(&fx->loop, UV_RUN_DEFAULT);
    assert_int_equal(uv_loop_close(&fx->loop), 0);
    free(fx);
    assert_true(support_no_children());
    return 0;
}

static ppx_awaitable *call(fixture *fx, const char *fn, int64_t arg)
{
    ppx_awaitable *aw;
    assert_int_equal(ppx_run_in_executorf(&fx->loop, fx->pool, &aw, fn, "l", (long long)arg), 0);
    return aw;
}

static ppx_awaitable *forever(fixture *fx)
{
    ppx_awaitable *aw;
    assert_int_equal(ppx_run_in_executorf(&fx->loop, fx->pool, &aw, "forever", ""), 0);
    return aw;
}



static uint64_t uint_value(ppx_awaitable *aw)
{
    ppx_value v;
    uint64_t u;
    assert_int_equal(ppx_awaitable_value(aw, &v), 0);
    assert_int_equal(ppx_value_uint(v, &u), 0);
    return u;
}

static int64_t int_value(ppx_awaitable *aw)
{
    ppx_value v;
    int64_t i;
    assert_int_equal(ppx_awaitable_value(aw, &v), 0);
    assert_int_equal(ppx_value_int(v, &i), 0);
    return i;
}

static void unref_all(ppx_awaitable **aw, size_t n)
{
    for (size_t i = 0; i < n; i++)
        ppx_awaitable_unref(aw[i]);
}

/* ---- wait ---------------------------------------------------------------- */

static void test_wait_first_completed_leaves_the_others_running(void **state)
{
    fixture *fx = *state;
    ppx_awaitable *aw[2] = {forever(fx), call(fx, "step", 0)}, *w;
    assert_int_equal(ppx_wait(&fx->loop, aw, 2, PPX_FIRST_COMPLETED, -1, &w), 0);
    assert_int_equal(ppx_run_until_complete(&fx->loop, w), 0);
    assert_int_equal(ppx_awaitable_state(w), PPX_DONE);
    assert_int_equal(uint_value(w), 1);
    assert_int_equal(ppx_awaitable_state(aw[1]), PPX_DONE);
    assert_false(ppx_awaitable_done(aw[0]));
    assert_int_equal(ppx_awaitable_cancel(aw[0]), 0);
    unref_all(aw, 2);
    ppx_awaitable_unref(w);
}

static void test_wait_first_completed_counts_every_child_already_finished(void **state)
{
    fixture *fx = *state;
    ppx_awaitable *aw[3] = {call(fx, "step", 0), call(fx, "step", 1), call(fx, "square", -3)}, *w;
    for (int i = 0; i < 3; i++)
        assert_int_equal(ppx_run_until_complete(&fx->loop, aw[i]), 0);
    int when[3] = {PPX_FIRST_COMPLETED, PPX_FIRST_EXCEPTION, PPX_ALL_COMPLETED};
    for (int k = 0; k < 3; k++) {
        assert_int_equal(ppx_wait(&fx->loop, aw, 3, when[k], -1, &w), 0);
        assert_true(ppx_awaitable_done(w));
        assert_int_equal(uint_value(w), 3);
        ppx_awaitable_unref(w);
    }
    unref_all(aw, 3);
}

static void test_wait_first_exception_returns_on_the_failure(void **state)
{
    fixture *fx = *state;
    ppx_awaitable *aw[3] = {forever(fx), call(fx, "step", 0), call(fx, "square", -3)}, *w;
    assert_int_equal(ppx_wait(&fx->loop, aw, 3, PPX_FIRST_EXCEPTION, -1, &w), 0);
    assert_int_equal(ppx_run_until_complete(&fx->loop, w), 0);
    assert_int_equal(ppx_awaitable_state(aw[2]), PPX_FAILED);
    assert_string_equal(ppx_awaitable_error(aw[2])->type, "ValueError");
    assert_false(ppx_awaitable_done(aw[0])); /* wait never cancels */
    assert_true(uint_value(w) >= 1);
    ppx_awaitable_cancel(aw[0]);
    unref_all(aw, 3);
    ppx_awaitable_unref(w);
}

static void test_wait_all_completed_with_a_timeout_reports_what_finished(void **state)
{
    fixture *fx = *state;
    ppx_awaitable *aw[3] = {call(fx, "step", 0), call(fx, "step", 1), forever(fx)}, *w;
    /* The first two finish quickly in turn; the third never does. Step 1
     * can reply before step 0 does: wait for both, so the 50 ms below only
     * ever waits for the third. */
    assert_int_equal(ppx_run_until_complete(&fx->loop, aw[1]), 0);
    assert_int_equal(ppx_run_until_complete(&fx->loop, aw[0]), 0);
    assert_int_equal(ppx_wait(&fx->loop, aw, 3, PPX_ALL_COMPLETED, 50, &w), 0);
    assert_int_equal(ppx_run_until_complete(&fx->loop, w), 0);
    assert_int_equal(ppx_awaitable_state(w), PPX_DONE);
    assert_int_equal(uint_value(w), 2);
    assert_false(ppx_awaitable_done(aw[2]));
    /* Polling (timeout 0) answers at once with the same count. */
    ppx_awaitable *poll;
    assert_int_equal(ppx_wait(&fx->loop, aw, 3, PPX_ALL_COMPLETED, 0, &poll), 0);
    assert_true(ppx_awaitable_done(poll));
    assert_int_equal(uint_value(poll), 2);
    ppx_awaitable_cancel(aw[2]);
    unref_all(aw, 3);
    ppx_awaitable_unref(w);
    ppx_awaitable_unref(poll);
}

static void test_wait_rejects_bad_arguments(void **state)
{
    fixture *fx = *state;
    ppx_awaitable *w = NULL, *aw = call(fx, "square", 2);
    assert_int_equal(ppx_wait(&fx->loop, &aw, 1, 99, -1, &w), PPX_EINVAL);
    assert_int_equal(ppx_wait(NULL, &aw, 1, PPX_ALL_COMPLETED, -1, &w), PPX_EINVAL);
    assert_null(w);
    assert_int_equal(ppx_wait(&fx->loop, NULL, 0, PPX_ALL_COMPLETED, -1, &w), 0);
    assert_true(ppx_awaitable_done(w)); /* nothing to wait for */
    ppx_awaitable_unref(w);
    ppx_run_until_complete(&fx->loop, aw);
    ppx_awaitable_unref(aw);
}

/* ---- wait_for --------------------------------------------------------------- */

static void test_wait_for_passes_the_result_through_in_time(void **state)
{
    fixture *fx = *state;
    ppx_awaitable *aw = call(fx, "square", 7), *t;
    assert_int_equal(ppx_wait_for(&fx->loop, aw, 10000, &t), 0);
    assert_int_equal(ppx_run_until_complete(&fx->loop, t), 0);
    assert_int_equal(ppx_awaitable_state(t), PPX_DONE);
    assert_int_equal(int_value(t), 49);
    ppx_awaitable_unref(aw);
    ppx_awaitable_unref(t);
    /* An error passes through too. */
    aw = call(fx, "square", -1);
    assert_int_equal(ppx_wait_for(&fx->loop, aw, 10000, &t), 0);
    assert_int_equal(ppx_run_until_complete(&fx->loop, t), 0);
    assert_string_equal(ppx_awaitable_error(t)->type, "ValueError");
    ppx_awaitable_unref(aw);
    ppx_awaitable_unref(t);
}

static void test_wait_for_times_out_and_stops_the_running_call(void **state)
{
    fixture *fx = *state;
    ppx_awaitable *aw = forever(fx), *t;
    support_wait_awaitable_running(aw); /* so the timeout stops a running call, not a queued one */
    assert_int_equal(ppx_wait_for(&fx->loop, aw, 30, &t), 0);
    assert_int_equal(ppx_run_until_complete(&fx->loop, t), 0);
    assert_int_equal(ppx_awaitable_state(t), PPX_FAILED);
    assert_string_equal(ppx_awaitable_error(t)->type, "TimeoutError");
    assert_int_equal(ppx_awaitable_state(aw), PPX_CANCELLED);
    uv_run(&fx->loop, UV_RUN_DEFAULT); /* until the pool is idle again */
    assert_false(ppx_pool_busy(fx->pool));
    assert_int_equal(atomic_load(turn), 1000); /* it saw the cancel */
    ppx_awaitable_unref(aw);
    ppx_awaitable_unref(t);
}

/* ---- a pool freed on the loop while another thread resolves -------------- */

static void hold_until_set(ppx_future *f, void *arg)
{
    (void)f;
    while (!atomic_load((_Atomic int *)arg))
        support_sleep_ms(1);
}

static void *wait_in_thread(void *f)
{
    ppx_future_wait(f, -1);
    return NULL;
}

/* A blocking waiter on another thread resolves the call and runs its
 * callbacks there, the awaitable's last; meanwhile the loop thread frees
 * the pool and runs the loop, which closes the binding's handles. The
 * awaitable must still settle, through a binding that is still there. */
static void test_an_awaitable_settles_when_its_pool_is_freed_while_another_thread_hands_it_over(
    void **state)
{
    fixture *fx = *state;
    ppx_future *f;
    assert_int_equal(ppx_pool_submitf(fx->pool, &f, "gate", "l", 1LL), 0);
    static _Atomic int freed; /* static: the other thread may outlive a failed test */
    atomic_store(&freed, 0);
    assert_int_equal(ppx_future_add_done_callback(f, hold_until_set, &freed), 0);
    ppx_awaitable *aw;
    assert_int_equal(ppx_wrap_future(&fx->loop, f, &aw), 0);
    pthread_t t;
    assert_int_equal(pthread_create(&t, NULL, wait_in_thread, f), 0);
    atomic_store(turn, 1);
    int64_t end = support_now_ms() + 10000;
    while (!ppx_future_done(f)) { /* resolved by the other thread */
        assert_true(support_now_ms() < end);
        support_sleep_ms(1);
    }
    ppx_pool_free(fx->pool);
    fx->pool = NULL;
    uv_run(&fx->loop, UV_RUN_NOWAIT);
    atomic_store(&freed, 1);
    assert_int_equal(ppx_run_until_complete(&fx->loop, aw), 0);
    assert_int_equal(int_value(aw), 1);
    assert_int_equal(pthread_join(t, NULL), 0);
    ppx_awaitable_unref(aw);
    ppx_future_unref(f);
}

/* ---- as_completed --------------------------------------------------------- */

static void test_as_completed_yields_in_finishing_order(void **state)
{
    fixture *fx = *state;
    /* Submitted as gates 2, 0, 1; the test opens them 0, 1, 2, each
     * only once the one before came out. */
    atomic_store(turn, -1);
    ppx_awaitable *aw[3] = {call(fx, "gate", 2), call(fx, "gate", 0), call(fx, "gate", 1)};
    ppx_as_completed *it;
    assert_int_equal(ppx_as_completed_new(&fx->loop, aw, 3, &it), 0);
    unref_all(aw, 3); /* the iterator holds them */
    for (int64_t want = 0; want < 3; want++) {
        ppx_awaitable *next;
        atomic_store(turn, (int)want);
        assert_int_equal(ppx_as_completed_next(it, 10000, &next), 0);
        assert_int_equal(int_value(next), want);
    }
    ppx_awaitable *none;
    assert_int_equal(ppx_as_completed_next(it, 10, &none), PPX_EDONE);
    ppx_as_completed_free(it);
}

static void test_as_completed_times_out_and_can_be_freed_early(void **state)
{
    fixture *fx = *state;
    ppx_awaitable *aw[2] = {forever(fx), call(fx, "square", 3)}, *next;
    ppx_as_completed *it;
    assert_int_equal(ppx_as_completed_new(&fx->loop, aw, 2, &it), 0);
    assert_int_equal(ppx_as_completed_next(it, 10000, &next), 0);
    assert_ptr_equal(next, aw[1]);
    assert_int_equal(ppx_as_completed_next(it, 20, &next), PPX_ETIMEDOUT);
    ppx_as_completed_free(it); /* with a child still running */
    ppx_awaitable_cancel(aw[0]);
    unref_all(aw, 2);
}

static void free_iterator(ppx_awaitable *aw, void *arg)
{
    (void)aw;
    ppx_as_completed_free(arg);
}

static void test_as_completed_freed_by_a_callback_while_next_runs_the_loop(void **state)
{
    fixture *fx = *state;
    ppx_awaitable *aw = call(fx, "square", 4);
    ppx_as_completed *it;
    assert_int_equal(ppx_as_completed_new(&fx->loop, &aw, 1, &it), 0);
    /* Registered after the iterator's: it runs once the child is counted. */
    assert_int_equal(ppx_awaitable_add_done_callback(aw, free_iterator, it), 0);
    ppx_awaitable *next = NULL;
    assert_int_equal(ppx_as_completed_next(it, -1, &next), PPX_EINVAL);
    assert_null(next); /* the iterator let go of its children: none handed back */
    assert_int_equal(int_value(aw), 16);
    ppx_awaitable_unref(aw);
}

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

/* ---- the thread-pool executor ------------------------------------------ */

static int fn_blocking_read(ppx_call *c, void *u)
{
    (void)u;
    /* Blocking I/O stand-in: wait, checking for cancellation. */
    int64_t ms;
    ppx_call_arg_int(c, 0, &ms);
    for (int64_t t = 0; t < ms; t++) {
        if (ppx_call_cancelled(c))
            return ppx_raise(c, "CancelledError", "stopped");
        support_sleep_ms(1);
    }
    return ppx_returnf(c, "si", "read", (int)getpid());
}

static void test_thread_pool_runs_registered_functions_in_this_process(void **state)
{
    fixture *fx = *state;
    ppx_awaitable *aw[3];
    assert_int_equal(ppx_run_in_executorf(&fx->loop, ppx_thread_pool(), &aw[0], "blocking_read", "i", 5), 0);
    assert_int_equal(ppx_run_in_thread(&fx->loop, "square", "\x91\x07", 2, &aw[1]), 0);
    assert_int_equal(ppx_run_in_thread(&fx->loop, "square", "\x91\xff", 2, &aw[2]), 0);
    ppx_awaitable *g;
    assert_int_equal(ppx_gather(&fx->loop, aw, 2, 0, &g), 0);
    assert_int_equal(ppx_run_until_complete(&fx->loop, g), 0);
    char text[64];
    ppx_value v;
    assert_int_equal(ppx_awaitable_value(g, &v), 0);
    ppx_value_format(v, text, sizeof text);
    char want[64];
    snprintf(want, sizeof want, "[['read', %d], 49]", (int)getpid());
    assert_string_equal(text, want);
    assert_int_equal(ppx_run_until_complete(&fx->loop, aw[2]), 0);
    assert_string_equal(ppx_awaitable_error(aw[2])->type, "ValueError");
    assert_string_equal(ppx_awaitable_error(aw[2])->message, "negative: -1");
    unref_all(aw, 3);
    ppx_awaitable_unref(g);
}

static void test_thread_pool_calls_can_be_cancelled_and_names_checked(void **state)
{
    fixture *fx = *state;
    ppx_awaitable *aw, *bad;
    assert_int_equal(ppx_run_in_thread(&fx->loop, "blocking_read", "\x91\xcd\x27\x10", 4, &aw), 0);
    support_sleep_ms(20); /* most likely running by now; either way it must stop */
    assert_int_equal(ppx_awaitable_cancel(aw), 0);
    assert_int_equal(ppx_awaitable_state(aw), PPX_CANCELLED);
    uv_run(&fx->loop, UV_RUN_DEFAULT); /* returns only once the thread let go */
    ppx_awaitable_unref(aw);
    assert_int_equal(ppx_run_in_thread(&fx->loop, "nope", NULL, 0, &bad), 0);
    assert_int_equal(ppx_awaitable_state(bad), PPX_FAILED);
    assert_string_equal(ppx_awaitable_error(bad)->type, "NameError");
    ppx_awaitable_unref(bad);
    assert_int_equal(ppx_run_in_thread(&fx->loop, "square", "\x01", 1, &bad), PPX_EMALFORMED);
    ppx_future *f = NULL;
    assert_int_equal(ppx_pool_submit(ppx_thread_pool(), "square", NULL, 0, &f), PPX_EBADOBJ);
}

/* ---- before any process pool ------------------------------------------- */

/* hold(): waits until turn is 1, then raises. */
static int fn_hold(ppx_call *c, void *u)
{
    (void)u;
    while (atomic_load(turn) != 1)
        support_sleep_ms(1);
    return ppx_raise(c, "ValueError", "held");
}

/* Until a process pool freezes the registry, functions may still be
 * registered, and the registry's table moves as it grows: a thread call
 * in flight must not keep a pointer into the old one. Runs before any
 * pool exists (the first pool freezes the registry). */
static void test_a_thread_call_outlives_registrations_made_while_it_runs(void **state)
{
    (void)state;
    uv_loop_t loop;
    uv_loop_init(&loop);
    atomic_store(turn, 0);
    ppx_awaitable *aw;
    assert_int_equal(ppx_run_in_thread(&loop, "hold", NULL, 0, &aw), 0);
    for (int i = 0; i < 100; i++) { /* the table doubles more than once */
        char name[32];
        snprintf(name, sizeof name, "filler_%d", i);
        assert_int_equal(ppx_register(name, fn_square, NULL), 0);
    }
    atomic_store(turn, 1);
    assert_int_equal(ppx_run_until_complete(&loop, aw), 0);
    assert_int_equal(ppx_awaitable_state(aw), PPX_FAILED);
    assert_string_equal(ppx_awaitable_error(aw)->function, "hold");
    ppx_awaitable_unref(aw);
    uv_run(&loop, UV_RUN_DEFAULT);
    assert_int_equal(uv_loop_close(&loop), 0);
}

int main(void)
{
    turn = mmap(NULL, sizeof *turn, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    ppx_register("step", fn_step, NULL);
    ppx_register("forever", fn_forever, NULL);
    ppx_register("gate", fn_gate, NULL);
    ppx_register("square", fn_square, NULL);
    ppx_register("blocking_read", fn_blocking_read, NULL);
    ppx_register("hold", fn_hold, NULL);
    const struct CMUnitTest before_any_pool[] = {
        cmocka_unit_test(test_a_thread_call_outlives_registrations_made_while_it_runs),
    };
    int failed = cmocka_run_group_tests(before_any_pool, NULL, NULL);
#define T(name) cmocka_unit_test_setup_teardown(name, setup, teardown)
    const struct CMUnitTest tests[] = {
        T(test_wait_first_completed_leaves_the_others_running),
        T(test_wait_first_completed_counts_every_child_already_finished),
        T(test_wait_first_exception_returns_on_the_failure),
        T(test_wait_all_completed_with_a_timeout_reports_what_finished),
        T(test_wait_rejects_bad_arguments),
        T(test_wait_for_passes_the_result_through_in_time),
        T(test_wait_for_times_out_and_stops_the_running_call),
        T(test_an_awaitable_settles_when_its_pool_is_freed_while_another_thread_hands_it_over),
        T(test_as_completed_yields_in_finishing_order),
        T(test_as_completed_times_out_and_can_be_freed_early),
        T(test_as_completed_freed_by_a_callback_while_next_runs_the_loop),
        T(test_task_group_waits_for_every_task_added_over_time),
        T(test_task_group_first_failure_cancels_the_rest),
        T(test_cancelling_a_task_group_cancels_its_tasks),
        T(test_lazy_map_delivers_in_order_with_bounded_calls_in_flight),
        T(test_lazy_map_stops_at_the_first_failure),
        T(test_lazy_map_cancelled_by_its_input_callback_submits_nothing_more),
        T(test_lazy_map_over_a_million_inputs_keeps_memory_flat),
        T(test_progress_counts_each_part_of_gathers_maps_and_groups),
        T(test_thread_pool_runs_registered_functions_in_this_process),
        T(test_thread_pool_calls_can_be_cancelled_and_names_checked),
    };
    return failed | cmocka_run_group_tests(tests, NULL, NULL);
}
