/* End-to-end tests of the process pool with real forked workers, through
 * the blocking API only (no libuv): what calls return, the errors they
 * raise, payloads and bad input, and map. */
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
    assert_non_null(strstr(e->where, "procpool_support.c:"));
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

static void test_strerror_is_static_for_unknown_codes(void **state)
{
    (void)state;
    const char *a = ppx_strerror(-4000);
    assert_string_equal(a, "unknown error");
    assert_ptr_equal(a, ppx_strerror(-4001));
    assert_string_equal(ppx_strerror(-ENOENT), "No such file or directory");
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

int main(void)
{
    procpool_support_register();

    const struct CMUnitTest tests[] = {
        cmocka_unit_test_teardown(test_submitted_calls_return_their_values, teardown),
        cmocka_unit_test(test_strerror_is_static_for_unknown_codes),
        cmocka_unit_test_teardown(test_raised_error_carries_type_message_function_pid_and_where, teardown),
        cmocka_unit_test_teardown(test_unknown_function_fails_with_name_error, teardown),
        cmocka_unit_test_teardown(test_function_failing_without_raising_is_a_runtime_error, teardown),
        cmocka_unit_test_teardown(test_function_passing_on_enomem_is_a_memory_error, teardown),
        cmocka_unit_test(test_version_is_the_projects),
        cmocka_unit_test_teardown(test_done_callbacks_run_exactly_once, teardown),
        cmocka_unit_test_teardown(test_big_payloads_travel_both_ways_through_small_rings, teardown),
        cmocka_unit_test_teardown(test_oversized_payloads_give_clear_errors, teardown),
        cmocka_unit_test_teardown(test_malformed_arguments_and_misuse_are_rejected, teardown),
        cmocka_unit_test_teardown(test_map_runs_one_call_per_item_and_returns_their_results, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
