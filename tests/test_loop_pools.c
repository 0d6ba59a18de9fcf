/* End-to-end tests of the libuv integration, with real forked workers:
 * futures handed over from other threads, and pools on the loop (the
 * default pool, map, low-latency mode, a free from a callback, bad calls). */
#include "support.h"
#include "loop_support.h"
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
    loop_support_register();

    const struct CMUnitTest tests[] = {
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
