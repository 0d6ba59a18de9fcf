/* End-to-end tests of the libuv integration: awaitables, run_in_executor,
 * gather, cross-thread hand-over, with real forked workers. */
#include "support.h"
#include "ppx.h"
#include "examples/lucky_number/lucky.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>
#include <uv.h>

static _Atomic int *marks;


static int fn_add(ppx_call *c, void *u)
{
    int64_t a, b;
    ppx_call_arg_int(c, 0, &a);
    ppx_call_arg_int(c, 1, &b);
    return ppx_return_int(c, a + b);
}

/* sleep_then(ms, value, raise): sleeps, then returns value or raises. */
static int fn_sleep_then(ppx_call *c, void *u)
{
    int64_t ms, v, raise = 0;
    ppx_call_arg_int(c, 0, &ms);
    ppx_call_arg_int(c, 1, &v);
    ppx_call_arg_int(c, 2, &raise);
    for (int64_t t = 0; t < ms && !ppx_call_cancelled(c); t++)
        support_sleep_ms(1);
    if (raise)
        return ppx_raise(c, "ValueError", "failed with %lld", (long long)v);
    return ppx_return_int(c, v);
}

static int fn_wait_cancel(ppx_call *c, void *u)
{
    while (!ppx_call_cancelled(c))
        support_sleep_ms(1);
    atomic_fetch_add(marks, 100); /* proves it saw the flag */
    return 0;
}

static int fn_spin_forever(ppx_call *c, void *u)
{
    for (;;)
        pause();
    return 0;
}

static int fn_mark(ppx_call *c, void *u)
{
    atomic_fetch_add(marks, 1);
    return 0;
}

typedef struct fixture {
    uv_loop_t loop;
    ppx_pool *pool;
} fixture;

static int setup_n(void **state, int workers)
{
    fixture *fx = calloc(1, sizeof *fx);
    uv_loop_init(&fx->loop);
    /* The grace is long enough for cooperative tasks to notice the flag on
     * a loaded machine; the one test that needs a kill waits for it. */
    ppx_pool_options o = PPX_POOL_OPTIONS(.workers = workers, .cancel_grace_ms = 300);
    support_valgrind_sizes(&o);
    assert_int_equal(ppx_pool_new(&o, &fx->pool), 0);
    atomic_store(marks, 0);
    *state = fx;
    return 0;
}
static int setup2(void **state) { return setup_n(state, 2); }
static int setup3(void **state) { return setup_n(state, 3); }

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

typedef struct seen {
    int calls;
    uv_thread_t thread;
    ppx_state state;
} seen;

static void record(ppx_awaitable *aw, void *arg)
{
    seen *s = arg;
    s->calls++;
    s->thread = uv_thread_self();
    s->state = ppx_awaitable_state(aw);
}

static int64_t int_at(ppx_value v, size_t i)
{
    ppx_value e;
    int64_t out;
    assert_int_equal(ppx_value_at(v, i, &e), 0);
    assert_int_equal(ppx_value_int(e, &out), 0);
    return out;
}

static void test_run_in_executor_settles_on_the_loop_thread_with_the_value(void **state)
{
    fixture *fx = *state;
    ppx_awaitable *aw;
    assert_int_equal(ppx_run_in_executorf(&fx->loop, fx->pool, &aw, "add", "ii", 40, 2), 0);
    seen s = {0};
    assert_int_equal(ppx_awaitable_add_done_callback(aw, record, &s), 0);
    assert_int_equal(ppx_run_until_complete(&fx->loop, aw), 0);
    uv_thread_t self = uv_thread_self();
    assert_int_equal(s.calls, 1);
    assert_true(uv_thread_equal(&s.thread, &self));
    assert_int_equal(s.state, PPX_DONE);
    ppx_value v;
    assert_int_equal(ppx_awaitable_value(aw, &v), 0);
    int64_t out;
    assert_int_equal(ppx_value_int(v, &out), 0);
    assert_int_equal(out, 42);
    assert_non_null(ppx_awaitable_future(aw));
    ppx_awaitable_unref(aw);
}

static void test_submission_is_eager_without_running_the_loop(void **state)
{
    fixture *fx = *state;
    ppx_awaitable *aw;
    assert_int_equal(ppx_run_in_executorf(&fx->loop, fx->pool, &aw, "mark", ""), 0);
    int64_t end = support_now_ms() + 10000;
    while (atomic_load(marks) == 0 && support_now_ms() < end)
        support_sleep_ms(1);
    assert_int_equal(atomic_load(marks), 1);
    assert_int_equal(ppx_run_until_complete(&fx->loop, aw), 0);
    ppx_awaitable_unref(aw);
}

static void test_gather_returns_values_in_submission_order(void **state)
{
    fixture *fx = *state;
    enum { N = 12 };
    ppx_awaitable *aw[N], *g;
    for (int i = 0; i < N; i++) /* later ones finish first */
        assert_int_equal(ppx_run_in_executorf(&fx->loop, fx->pool, &aw[i], "sleep_then",
                                              "iii", (N - i) * 3, i * 10, 0), 0);
    assert_int_equal(ppx_gather(&fx->loop, aw, N, 0, &g), 0);
    assert_int_equal(ppx_run_until_complete(&fx->loop, g), 0);
    assert_int_equal(ppx_awaitable_state(g), PPX_DONE);
    ppx_value v;
    assert_int_equal(ppx_awaitable_value(g, &v), 0);
    size_t n;
    assert_int_equal(ppx_value_array_len(v, &n), 0);
    assert_int_equal(n, N);
    for (int i = 0; i < N; i++)
        assert_int_equal(int_at(v, (size_t)i), i * 10);
    assert_int_equal(ppx_gather_count(g), N);
    assert_ptr_equal(ppx_gather_child(g, 3), aw[3]);
    for (int i = 0; i < N; i++)
        ppx_awaitable_unref(aw[i]);
    ppx_awaitable_unref(g);
}

static void test_gather_fails_fast_and_cancels_running_siblings(void **state)
{
    fixture *fx = *state;
    ppx_awaitable *aw[6], *g;
    /* Three workers: two siblings run (one cooperates, one ignores the
     * flag), one raises after a moment; three more wait in the queue. */
    assert_int_equal(ppx_run_in_executorf(&fx->loop, fx->pool, &aw[0], "wait_cancel", ""), 0);
    assert_int_equal(ppx_run_in_executorf(&fx->loop, fx->pool, &aw[1], "spin_forever", ""), 0);
    /* Both siblings must be running when the error comes, however slow
     * the machine (valgrind): only then is stopping them what is tested. */
    for (int i = 0; i < 2; i++)
        support_wait_awaitable_running(aw[i]);
    assert_int_equal(ppx_run_in_executorf(&fx->loop, fx->pool, &aw[2], "sleep_then", "iii", 50, 7, 1), 0);
    for (int i = 3; i < 6; i++)
        assert_int_equal(ppx_run_in_executorf(&fx->loop, fx->pool, &aw[i], "sleep_then", "iii", 5000, i, 0), 0);
    assert_int_equal(ppx_gather(&fx->loop, aw, 6, 0, &g), 0);
    seen s = {0};
    ppx_awaitable_add_done_callback(g, record, &s);
    assert_int_equal(ppx_run_until_complete(&fx->loop, g), 0);
    assert_int_equal(s.calls, 1);
    assert_int_equal(ppx_awaitable_state(g), PPX_FAILED);
    const ppx_error *e = ppx_awaitable_error(g);
    assert_string_equal(e->type, "ValueError");
    assert_string_equal(e->message, "failed with 7");
    assert_string_equal(e->function, "sleep_then");
    assert_int_equal(ppx_awaitable_state(aw[2]), PPX_FAILED);
    for (int i = 0; i < 6; i++)
        if (i != 2)
            assert_int_equal(ppx_awaitable_state(aw[i]), PPX_CANCELLED);
    /* The cancelled running siblings stop: one by the flag, one killed. */
    uv_run(&fx->loop, UV_RUN_DEFAULT);
    assert_false(ppx_pool_busy(fx->pool));
    assert_int_equal(atomic_load(marks), 100);
    ppx_pool_stats st = PPX_POOL_STATS_INIT;
    ppx_pool_stats_get(fx->pool, &st);
    assert_int_equal(st.killed, 1);
    assert_int_equal(st.cancelled, 5);
    for (int i = 0; i < 6; i++)
        ppx_awaitable_unref(aw[i]);
    ppx_awaitable_unref(g);
}

static void test_gather_returning_errors_waits_for_every_child(void **state)
{
    fixture *fx = *state;
    ppx_awaitable *aw[4], *g;
    for (int i = 0; i < 4; i++)
        assert_int_equal(ppx_run_in_executorf(&fx->loop, fx->pool, &aw[i], "sleep_then", "iii",
                                              i * 5, i, i % 2), 0);
    assert_int_equal(ppx_gather(&fx->loop, aw, 4, PPX_GATHER_RETURN_ERRORS, &g), 0);
    assert_int_equal(ppx_run_until_complete(&fx->loop, g), 0);
    assert_int_equal(ppx_awaitable_state(g), PPX_DONE);
    ppx_value v, e;
    assert_int_equal(ppx_awaitable_value(g, &v), 0);
    assert_int_equal(int_at(v, 0), 0);
    assert_int_equal(int_at(v, 2), 2);
    assert_int_equal(ppx_value_at(v, 1, &e), 0);
    assert_int_equal(ppx_value_type(e), PPX_TYPE_NIL);
    assert_string_equal(ppx_awaitable_error(ppx_gather_child(g, 3))->message, "failed with 3");
    for (int i = 0; i < 4; i++)
        ppx_awaitable_unref(aw[i]);
    ppx_awaitable_unref(g);
}

static void test_gather_of_nothing_is_an_empty_list(void **state)
{
    fixture *fx = *state;
    ppx_awaitable *g;
    assert_int_equal(ppx_gather(&fx->loop, NULL, 0, 0, &g), 0);
    assert_true(ppx_awaitable_done(g));
    ppx_value v;
    assert_int_equal(ppx_awaitable_value(g, &v), 0);
    char text[16];
    assert_int_equal(ppx_value_format(v, text, sizeof text), 2);
    assert_string_equal(text, "[]");
    ppx_awaitable_unref(g);
}

static void test_gathers_nest(void **state)
{
    fixture *fx = *state;
    ppx_awaitable *a[2], *b[2], *ga, *gb, *top;
    for (int i = 0; i < 2; i++) {
        ppx_run_in_executorf(&fx->loop, fx->pool, &a[i], "add", "ii", i, 1);
        ppx_run_in_executorf(&fx->loop, fx->pool, &b[i], "add", "ii", i, 10);
    }
    ppx_gather(&fx->loop, a, 2, 0, &ga);
    ppx_gather(&fx->loop, b, 2, 0, &gb);
    ppx_awaitable *both[2] = {ga, gb};
    assert_int_equal(ppx_gather(&fx->loop, both, 2, 0, &top), 0);
    assert_int_equal(ppx_run_until_complete(&fx->loop, top), 0);
    ppx_value v;
    assert_int_equal(ppx_awaitable_value(top, &v), 0);
    char text[64];
    ppx_value_format(v, text, sizeof text);
    assert_string_equal(text, "[[1, 2], [10, 11]]");
    for (int i = 0; i < 2; i++) {
        ppx_awaitable_unref(a[i]);
        ppx_awaitable_unref(b[i]);
    }
    ppx_awaitable_unref(ga);
    ppx_awaitable_unref(gb);
    ppx_awaitable_unref(top);
}

static void test_cancelling_an_awaitable_cancels_its_running_task(void **state)
{
    fixture *fx = *state;
    ppx_awaitable *aw;
    assert_int_equal(ppx_run_in_executorf(&fx->loop, fx->pool, &aw, "wait_cancel", ""), 0);
    support_wait_awaitable_running(aw);
    seen s = {0};
    ppx_awaitable_add_done_callback(aw, record, &s);
    assert_int_equal(ppx_awaitable_cancel(aw), 0);
    assert_int_equal(s.calls, 1);
    assert_int_equal(ppx_awaitable_state(aw), PPX_CANCELLED);
    assert_string_equal(ppx_awaitable_error(aw)->type, "CancelledError");
    assert_int_equal(ppx_awaitable_cancel(aw), PPX_EDONE);
    uv_run(&fx->loop, UV_RUN_DEFAULT);
    assert_int_equal(atomic_load(marks), 100);
    ppx_awaitable_unref(aw);
}

static void test_cancelling_a_gather_cancels_its_children(void **state)
{
    fixture *fx = *state;
    ppx_awaitable *aw[3], *g;
    for (int i = 0; i < 3; i++)
        ppx_run_in_executorf(&fx->loop, fx->pool, &aw[i], "wait_cancel", "");
    assert_int_equal(ppx_gather(&fx->loop, aw, 3, 0, &g), 0);
    assert_int_equal(ppx_awaitable_cancel(g), 0);
    assert_int_equal(ppx_awaitable_state(g), PPX_CANCELLED);
    for (int i = 0; i < 3; i++)
        assert_int_equal(ppx_awaitable_state(aw[i]), PPX_CANCELLED);
    uv_run(&fx->loop, UV_RUN_DEFAULT);
    assert_false(ppx_pool_busy(fx->pool));
    for (int i = 0; i < 3; i++)
        ppx_awaitable_unref(aw[i]);
    ppx_awaitable_unref(g);
}

static void test_wrapping_a_resolved_future_settles_at_once(void **state)
{
    fixture *fx = *state;
    ppx_future *f;
    assert_int_equal(ppx_pool_submitf(fx->pool, &f, "add", "ii", 1, 1), 0);
    assert_int_equal(ppx_future_wait(f, 10000), 0);
    ppx_awaitable *aw;
    assert_int_equal(ppx_wrap_future(&fx->loop, f, &aw), 0);
    assert_true(ppx_awaitable_done(aw));
    assert_ptr_equal(ppx_awaitable_future(aw), f);
    ppx_future_unref(f);
    ppx_value v;
    assert_int_equal(ppx_awaitable_value(aw, &v), 0);
    ppx_awaitable_unref(aw);
}

typedef struct cross {
    ppx_future *f;
    ppx_pool *pool;
} cross;

static void *cancel_from_thread(void *arg)
{
    cross *c = arg;
    support_sleep_ms(20);
    ppx_future_cancel(c->f);
    return NULL;
}

static void test_future_resolved_on_another_thread_settles_on_the_loop_thread(void **state)
{
    fixture *fx = *state;
    ppx_future *f;
    assert_int_equal(ppx_pool_submitf(fx->pool, &f, "wait_cancel", ""), 0);
    ppx_awaitable *aw;
    assert_int_equal(ppx_wrap_future(&fx->loop, f, &aw), 0);
    seen s = {0};
    ppx_awaitable_add_done_callback(aw, record, &s);
    cross c = {f, fx->pool};
    pthread_t th;
    pthread_create(&th, NULL, cancel_from_thread, &c);
    assert_int_equal(ppx_run_until_complete(&fx->loop, aw), 0);
    pthread_join(th, NULL);
    uv_thread_t self = uv_thread_self();
    assert_int_equal(s.calls, 1);
    assert_true(uv_thread_equal(&s.thread, &self));
    assert_int_equal(s.state, PPX_CANCELLED);
    ppx_future_unref(f);
    ppx_awaitable_unref(aw);
}

static void *wait_from_thread(void *arg)
{
    ppx_future_wait(arg, 20000);
    return NULL;
}

static void test_future_driven_by_a_blocking_waiter_still_reaches_the_loop(void **state)
{
    fixture *fx = *state;
    ppx_future *f;
    assert_int_equal(ppx_pool_submitf(fx->pool, &f, "sleep_then", "iii", 20, 5, 0), 0);
    ppx_awaitable *aw;
    assert_int_equal(ppx_wrap_future(&fx->loop, f, &aw), 0);
    pthread_t th;
    pthread_create(&th, NULL, wait_from_thread, f);
    pthread_join(th, NULL); /* the other thread collected the result */
    assert_true(ppx_future_done(f));
    assert_int_equal(ppx_run_until_complete(&fx->loop, aw), 0);
    ppx_value v;
    assert_int_equal(ppx_awaitable_value(aw, &v), 0);
    int64_t out;
    ppx_value_int(v, &out);
    assert_int_equal(out, 5);
    ppx_future_unref(f);
    ppx_awaitable_unref(aw);
}

static void test_many_awaitables_each_settle_exactly_once(void **state)
{
    fixture *fx = *state;
    enum { N = 2000 };
    ppx_awaitable **aw = calloc(N, sizeof *aw);
    seen *s = calloc(N, sizeof *s);
    for (int i = 0; i < N; i++) {
        assert_int_equal(ppx_run_in_executorf(&fx->loop, fx->pool, &aw[i], "add", "ii", i, i), 0);
        ppx_awaitable_add_done_callback(aw[i], record, &s[i]);
    }
    ppx_awaitable *g;
    assert_int_equal(ppx_gather(&fx->loop, aw, N, 0, &g), 0);
    assert_int_equal(ppx_run_until_complete(&fx->loop, g), 0);
    ppx_value v;
    assert_int_equal(ppx_awaitable_value(g, &v), 0);
    for (int i = 0; i < N; i++) {
        assert_int_equal(s[i].calls, 1);
        assert_int_equal(int_at(v, (size_t)i), 2 * i);
        ppx_awaitable_unref(aw[i]);
    }
    ppx_awaitable_unref(g);
    free(aw);
    free(s);
}

static void test_lucky_number_gathers_values_or_the_unlucky_error(void **state)
{
    fixture *fx = *state;
    ppx_awaitable *aw[5], *g;
    for (int i = 0; i < 5; i++)
        ppx_run_in_executorf(&fx->loop, fx->pool, &aw[i], "lucky_number", "llnn",
                             1000000LL, (long long)(i + 1));
    ppx_gather(&fx->loop, aw, 5, 0, &g);
    assert_int_equal(ppx_run_until_complete(&fx->loop, g), 0);
    ppx_value v;
    assert_int_equal(ppx_awaitable_value(g, &v), 0);
    for (int i = 0; i < 5; i++)
        assert_int_equal(int_at(v, (size_t)i), 499999500000LL * (i + 1));
    for (int i = 0; i < 5; i++)
        ppx_awaitable_unref(aw[i]);
    ppx_awaitable_unref(g);

    for (int i = 0; i < 5; i++)
        ppx_run_in_executorf(&fx->loop, fx->pool, &aw[i], "lucky_number", "llnn",
                             1000000LL, i == 2 ? 7LL : 1LL);
    ppx_gather(&fx->loop, aw, 5, 0, &g);
    assert_int_equal(ppx_run_until_complete(&fx->loop, g), 0);
    assert_string_equal(ppx_awaitable_error(g)->type, "ValueError");
    assert_string_equal(ppx_awaitable_error(g)->message, "Unlucky number!");
    for (int i = 0; i < 5; i++)
        ppx_awaitable_unref(aw[i]);
    ppx_awaitable_unref(g);
}

static void test_default_pool_is_created_on_first_use(void **state)
{
    uv_loop_t loop;
    uv_loop_init(&loop);
    assert_null(ppx_default_pool());
    ppx_awaitable *aw;
    assert_int_equal(ppx_run_in_executorf(&loop, NULL, &aw, "add", "ii", 3, 4), 0);
    assert_non_null(ppx_default_pool());
    assert_int_equal(ppx_run_until_complete(&loop, aw), 0);
    ppx_value v;
    int64_t out;
    assert_int_equal(ppx_awaitable_value(aw, &v), 0);
    ppx_value_int(v, &out);
    assert_int_equal(out, 7);
    ppx_awaitable_unref(aw);
    ppx_default_pool_free();
    assert_null(ppx_default_pool());
    uv_run(&loop, UV_RUN_DEFAULT);
    assert_int_equal(uv_loop_close(&loop), 0);
    assert_true(support_no_children());
}

/* items [[0, 0], [1, 1], ...] for n calls of add */
static void *pairs(int n, size_t *len)
{
    unsigned char *b = malloc(5 + (size_t)n * 11);
    size_t k = 0;
    b[k++] = 0xdd;
    b[k++] = (unsigned char)(n >> 24);
    b[k++] = (unsigned char)(n >> 16);
    b[k++] = (unsigned char)(n >> 8);
    b[k++] = (unsigned char)n;
    for (int i = 0; i < n; i++) {
        b[k++] = 0x92;
        for (int j = 0; j < 2; j++) {
            b[k++] = 0xce; /* uint32 */
            b[k++] = (unsigned char)(i >> 24);
            b[k++] = (unsigned char)(i >> 16);
            b[k++] = (unsigned char)(i >> 8);
            b[k++] = (unsigned char)i;
        }
    }
    *len = k;
    return b;
}

static void test_map_spreads_chunks_and_returns_every_result_in_order(void **state)
{
    fixture *fx = *state;
    size_t len;
    void *items = pairs(10007, &len);
    for (size_t chunk = 0; chunk <= 1000; chunk += 1000) {
        ppx_awaitable *m;
        assert_int_equal(ppx_run_in_executor_map(&fx->loop, fx->pool, "add", items, len, chunk, &m), 0);
        assert_int_equal(ppx_run_until_complete(&fx->loop, m), 0);
        ppx_value v;
        size_t n;
        assert_int_equal(ppx_awaitable_value(m, &v), 0);
        assert_int_equal(ppx_value_array_len(v, &n), 0);
        assert_int_equal(n, 10007);
        for (size_t i = 0; i < n; i += 997)
            assert_int_equal(int_at(v, i), 2 * (int64_t)i);
        assert_int_equal(int_at(v, n - 1), 2 * 10006);
        ppx_awaitable_unref(m);
    }
    free(items);
    ppx_awaitable *m;
    assert_int_equal(ppx_run_in_executor_map(&fx->loop, fx->pool, "nope", "\x91\x90", 2, 1, &m), 0);
    assert_int_equal(ppx_run_until_complete(&fx->loop, m), 0);
    assert_string_equal(ppx_awaitable_error(m)->type, "NameError");
    ppx_awaitable_unref(m);
    assert_int_equal(ppx_run_in_executor_map(&fx->loop, fx->pool, "add", "\x91\x01", 2, 1, &m),
                     PPX_EMALFORMED);
}

static void test_low_latency_mode_gives_the_same_results(void **state)
{
    fixture *fx = *state;
    ppx_pool *p;
    ppx_pool_options o = PPX_POOL_OPTIONS(.workers = 2, .parent_spin_us = 50);
    support_valgrind_sizes(&o);
    assert_int_equal(ppx_pool_new(&o, &p), 0);
    for (int i = 0; i < 200; i++) {
        ppx_awaitable *aw;
        assert_int_equal(ppx_run_in_executorf(&fx->loop, p, &aw, "add", "ii", i, 1), 0);
        assert_int_equal(ppx_run_until_complete(&fx->loop, aw), 0);
        ppx_value v;
        int64_t out;
        assert_int_equal(ppx_awaitable_value(aw, &v), 0);
        ppx_value_int(v, &out);
        assert_int_equal(out, i + 1);
        ppx_awaitable_unref(aw);
    }
    ppx_pool_free(p);
}

static void free_pool_cb(ppx_awaitable *aw, void *arg)
{
    fixture *fx = arg;
    ppx_pool_free(fx->pool);
    fx->pool = NULL;
}

static void test_pool_may_be_freed_from_an_awaitable_callback(void **state)
{
    fixture *fx = *state;
    ppx_awaitable *aw[3], *g;
    for (int i = 0; i < 3; i++)
        ppx_run_in_executorf(&fx->loop, fx->pool, &aw[i], "add", "ii", i, i);
    ppx_gather(&fx->loop, aw, 3, 0, &g);
    ppx_awaitable_add_done_callback(g, free_pool_cb, fx);
    assert_int_equal(ppx_run_until_complete(&fx->loop, g), 0);
    assert_null(fx->pool);
    assert_int_equal(ppx_awaitable_state(g), PPX_DONE);
    for (int i = 0; i < 3; i++)
        ppx_awaitable_unref(aw[i]);
    ppx_awaitable_unref(g);
}

static void test_bad_calls_report_codes(void **state)
{
    fixture *fx = *state;
    ppx_awaitable *aw = NULL;
    assert_int_equal(ppx_run_in_executor(NULL, fx->pool, "add", NULL, 0, &aw), PPX_EINVAL);
    assert_int_equal(ppx_run_in_executorf(&fx->loop, fx->pool, &aw, "add", "z"), PPX_EINVAL);
    assert_int_equal(ppx_gather(&fx->loop, NULL, 2, 0, &aw), PPX_EINVAL);
    assert_null(aw);
    assert_int_equal(ppx_pool_shutdown(fx->pool, PPX_SHUTDOWN_WAIT, 1000), 0);
    assert_int_equal(ppx_run_in_executorf(&fx->loop, fx->pool, &aw, "add", "ii", 1, 2), PPX_ECLOSED);
    assert_null(aw);
}

int main(void)
{
    marks = mmap(NULL, sizeof *marks, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    ppx_register("add", fn_add, NULL);
    ppx_register("sleep_then", fn_sleep_then, NULL);
    ppx_register("wait_cancel", fn_wait_cancel, NULL);
    ppx_register("spin_forever", fn_spin_forever, NULL);
    ppx_register("mark", fn_mark, NULL);
    ppx_register("lucky_number", lucky_number, NULL);

    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_run_in_executor_settles_on_the_loop_thread_with_the_value, setup2, teardown),
        cmocka_unit_test_setup_teardown(test_submission_is_eager_without_running_the_loop, setup2, teardown),
        cmocka_unit_test_setup_teardown(test_gather_returns_values_in_submission_order, setup2, teardown),
        cmocka_unit_test_setup_teardown(test_gather_fails_fast_and_cancels_running_siblings, setup3, teardown),
        cmocka_unit_test_setup_teardown(test_gather_returning_errors_waits_for_every_child, setup2, teardown),
        cmocka_unit_test_setup_teardown(test_gather_of_nothing_is_an_empty_list, setup2, teardown),
        cmocka_unit_test_setup_teardown(test_gathers_nest, setup2, teardown),
        cmocka_unit_test_setup_teardown(test_cancelling_an_awaitable_cancels_its_running_task, setup2, teardown),
        cmocka_unit_test_setup_teardown(test_cancelling_a_gather_cancels_its_children, setup3, teardown),
        cmocka_unit_test_setup_teardown(test_wrapping_a_resolved_future_settles_at_once, setup2, teardown),
        cmocka_unit_test_setup_teardown(test_future_resolved_on_another_thread_settles_on_the_loop_thread, setup2, teardown),
        cmocka_unit_test_setup_teardown(test_future_driven_by_a_blocking_waiter_still_reaches_the_loop, setup2, teardown),
        cmocka_unit_test_setup_teardown(test_many_awaitables_each_settle_exactly_once, setup2, teardown),
        cmocka_unit_test_setup_teardown(test_lucky_number_gathers_values_or_the_unlucky_error, setup2, teardown),
        cmocka_unit_test_setup_teardown(test_bad_calls_report_codes, setup2, teardown),
        cmocka_unit_test_setup_teardown(test_pool_may_be_freed_from_an_awaitable_callback, setup2, teardown),
        cmocka_unit_test_setup_teardown(test_map_spreads_chunks_and_returns_every_result_in_order, setup2, teardown),
        cmocka_unit_test_setup_teardown(test_low_latency_mode_gives_the_same_results, setup2, teardown),
        cmocka_unit_test(test_default_pool_is_created_on_first_use),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
