/* Structs the caller allocates can grow (ppx.h, "Structs the caller
 * allocates can grow"): a program compiled with a newer header, whose
 * structs are bigger, still works with this library when it leaves the
 * fields this library does not know at zero, and is told clearly when it
 * sets one; a struct whose size was never set is refused, not misread.
 * The "newer header" here is each struct followed by one more field. */
#include "support.h"
#include "ppx.h"

#include <signal.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <uv.h>

static int fn_add(ppx_call *c, void *u)
{
    (void)u;
    int64_t a = 0, b = 0;
    ppx_call_arg_int(c, 0, &a);
    ppx_call_arg_int(c, 1, &b);
    return ppx_return_int(c, a + b);
}

/* Runs until cancelled: only a deadline ends it. */
static int fn_spin(ppx_call *c, void *u)
{
    (void)u;
    while (!ppx_call_cancelled(c))
        ;
    return ppx_return_int(c, 0);
}

typedef struct {
    ppx_pool_options known;
    uint64_t newer; /* a field this library does not have */
} newer_pool_options;

typedef struct {
    ppx_call_options known;
    uint64_t newer;
} newer_call_options;

typedef struct {
    ppx_pool_stats known;
    uint64_t newer;
} newer_pool_stats;

typedef struct {
    ppx_worker_stats known;
    uint64_t newer;
} newer_worker_stats;

static ppx_pool *pool_of(ppx_pool_options *o)
{
    support_valgrind_sizes(o);
    ppx_pool *p = NULL;
    assert_int_equal(ppx_pool_new(o, &p), 0);
    return p;
}

static void test_pool_options_never_sized_are_refused(void **state)
{
    (void)state;
    ppx_pool_options o; /* zeroed by hand, as before 0.4.0 */
    memset(&o, 0, sizeof o);
    o.workers = 1;
    ppx_pool *p = (ppx_pool *)&o; /* must stay untouched */
    assert_int_equal(ppx_pool_new(&o, &p), PPX_EINVAL);
    assert_ptr_equal(p, (ppx_pool *)&o);
    assert_non_null(strstr(ppx_last_error(), "ppx_pool_options.size is 0"));
    assert_non_null(strstr(ppx_last_error(), "PPX_POOL_OPTIONS"));
    o.size = offsetof(ppx_pool_options, outbox_bytes) + sizeof(size_t) - 1; /* short of 0.4.0 */
    assert_int_equal(ppx_pool_new(&o, &p), PPX_EINVAL);
    assert_true(support_no_children());
}

static void test_pool_options_from_a_newer_header(void **state)
{
    (void)state;
    newer_pool_options n = {.known = PPX_POOL_OPTIONS(.workers = 3)};
    n.known.size = sizeof n;
    ppx_pool *p = pool_of(&n.known);
    assert_int_equal(ppx_pool_workers(p), 3); /* the known fields count */
    ppx_future *f;
    assert_int_equal(ppx_pool_submitf(p, &f, "add", "ii", 2, 40), 0);
    assert_int_equal(support_future_int(f), 42);
    ppx_future_unref(f);
    ppx_pool_free(p);

    n.newer = 1; /* a newer field this library cannot honour */
    assert_int_equal(ppx_pool_new(&n.known, &p), PPX_EINVAL);
    char want[64];
    snprintf(want, sizeof want, "sets byte %zu", sizeof(ppx_pool_options));
    assert_non_null(strstr(ppx_last_error(), want));
    assert_non_null(strstr(ppx_last_error(), ppx_version()));
    assert_true(support_no_children());
}

/* A program built against the 0.4 header: its ppx_pool_options ends at
 * outbox_bytes. Whatever lies in memory past its size (here 0xFF bytes
 * where 0.5's sandbox, limits and scheduling fields are) is never read:
 * the pool starts with all of them off. */
static void test_pool_options_from_an_older_header(void **state)
{
    (void)state;
    size_t old_size = offsetof(ppx_pool_options, outbox_bytes) + sizeof(size_t);
    assert_true(old_size < sizeof(ppx_pool_options));
    ppx_pool_options o;
    memset(&o, 0xFF, sizeof o);
    memset(&o, 0, old_size);
    o.size = old_size;
    o.workers = 1;
    support_valgrind_sizes(&o);
    ppx_pool *p = NULL;
    assert_int_equal(ppx_pool_new(&o, &p), 0);
    ppx_future *f;
    assert_int_equal(ppx_pool_submitf(p, &f, "add", "ii", 2, 40), 0);
    assert_int_equal(support_future_int(f), 42); /* no sandbox, no limit, no affinity */
    ppx_future_unref(f);
    ppx_pool_free(p);
    /* The same bytes inside the caller's size are read, and refused. */
    o.size = sizeof o;
    assert_int_equal(ppx_pool_new(&o, &p), PPX_EINVAL);
    assert_true(support_no_children());
}

static void test_call_options_sized_or_refused(void **state)
{
    (void)state;
    ppx_pool *p = pool_of(&PPX_POOL_OPTIONS(.workers = 1, .cancel_grace_ms = 20));
    ppx_future *f = NULL;
    ppx_call_options never_sized = {.timeout_ms = 5};
    assert_int_equal(ppx_pool_submit_ex(p, "add", "\x92\x01\x02", 3, &never_sized, &f),
                     PPX_EINVAL);
    assert_null(f);
    assert_non_null(strstr(ppx_last_error(), "ppx_call_options.size is 0"));

    newer_call_options n = {.known = PPX_CALL_OPTIONS(.timeout_ms = 50)};
    n.known.size = sizeof n;
    assert_int_equal(ppx_pool_submit_ex(p, "spin", "\x90", 1, &n.known, &f), 0);
    assert_int_equal(ppx_future_wait(f, -1), 0);
    assert_string_equal(ppx_future_error(f)->type, "TimeoutError"); /* 50 ms honoured */
    ppx_future_unref(f);

    n.newer = 7;
    f = NULL;
    assert_int_equal(ppx_pool_submit_ex(p, "spin", "\x90", 1, &n.known, &f), PPX_EINVAL);
    assert_null(f);
    assert_non_null(strstr(ppx_last_error(), "newer header"));
    /* The thread executor reads the same struct the same way. */
    uv_loop_t loop;
    uv_loop_init(&loop);
    ppx_awaitable *aw = NULL;
    assert_int_equal(ppx_run_in_executor_ex(&loop, ppx_thread_pool(), "add", "\x92\x01\x02",
                                            3, &never_sized, &aw),
                     PPX_EINVAL);
    assert_null(aw);
    assert_int_equal(uv_loop_close(&loop), 0);
    support_drain(p, 20000);
    ppx_pool_stats st = PPX_POOL_STATS_INIT;
    assert_int_equal(ppx_pool_stats_get(p, &st), 0);
    assert_int_equal(st.submitted, 1); /* the refused calls were never taken */
    ppx_pool_free(p);
}

static void test_stats_into_a_newer_or_unsized_struct(void **state)
{
    (void)state;
    ppx_pool *p = pool_of(&PPX_POOL_OPTIONS(.workers = 2));
    ppx_future *f;
    assert_int_equal(ppx_pool_submitf(p, &f, "add", "ii", 1, 1), 0);
    assert_int_equal(support_future_int(f), 2);
    ppx_future_unref(f);

    newer_pool_stats ns;
    memset(&ns, 0xAB, sizeof ns);
    ns.known.size = sizeof ns;
    assert_int_equal(ppx_pool_stats_get(p, &ns.known), 0);
    assert_int_equal(ns.known.size, sizeof ns); /* the caller's size stays */
    assert_int_equal(ns.known.completed, 1);
    assert_int_equal(ns.newer, 0); /* what this library does not have: 0 */

    ppx_pool_stats unsized;
    memset(&unsized, 0, sizeof unsized);
    unsized.completed = 99;
    assert_int_equal(ppx_pool_stats_get(p, &unsized), PPX_EINVAL);
    assert_int_equal(unsized.completed, 99); /* untouched */
    assert_non_null(strstr(ppx_last_error(), "PPX_POOL_STATS_INIT"));

    long pid0 = support_worker_pid(p, 0);
    newer_worker_stats nw;
    memset(&nw, 0xCD, sizeof nw);
    nw.known.size = sizeof nw;
    assert_int_equal(ppx_pool_worker_stats(p, 0, &nw.known), 0);
    assert_int_equal(nw.known.pid, pid0);
    assert_int_equal(nw.newer, 0);
    ppx_worker_stats wunsized = {.pid = -5};
    assert_int_equal(ppx_pool_worker_stats(p, 0, &wunsized), PPX_EINVAL);
    assert_int_equal(wunsized.pid, -5);
    assert_non_null(strstr(ppx_last_error(), "PPX_WORKER_STATS_INIT"));
    ppx_pool_free(p);
}

/* crashed counts calls lost with their worker, worker_deaths the worker
 * processes that ended unasked: a crash between calls is a death that
 * costs no call. */
static int fn_crash(ppx_call *c, void *u)
{
    (void)c;
    (void)u;
    abort();
}

static void test_crashed_counts_calls_and_worker_deaths_processes(void **state)
{
    (void)state;
    ppx_pool *p = pool_of(&PPX_POOL_OPTIONS(.workers = 1));
    ppx_future *f;
    for (int i = 0; i < 2; i++) {
        assert_int_equal(ppx_pool_submitf(p, &f, "crash", ""), 0);
        assert_int_equal(ppx_future_wait(f, -1), 0);
        assert_string_equal(ppx_future_error(f)->type, "WorkerCrashed");
        ppx_future_unref(f);
    }
    support_drain(p, 20000);
    long pid = support_worker_pid(p, 0);
    assert_true(pid > 0);
    kill((pid_t)pid, SIGKILL); /* idle: no call is lost */
    support_wait_gone(pid, 20000);
    assert_int_equal(ppx_pool_submitf(p, &f, "add", "ii", 1, 2), 0);
    assert_int_equal(support_future_int(f), 3); /* on the replacement */
    ppx_future_unref(f);
    ppx_pool_stats st = PPX_POOL_STATS_INIT;
    assert_int_equal(ppx_pool_stats_get(p, &st), 0);
    assert_int_equal(st.crashed, 2);
    assert_int_equal(st.worker_deaths, 3);
    ppx_pool_free(p);
}

int main(void)
{
    ppx_register("add", fn_add, NULL);
    ppx_register("spin", fn_spin, NULL);
    ppx_register("crash", fn_crash, NULL);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_pool_options_never_sized_are_refused),
        cmocka_unit_test(test_pool_options_from_a_newer_header),
        cmocka_unit_test(test_pool_options_from_an_older_header),
        cmocka_unit_test(test_call_options_sized_or_refused),
        cmocka_unit_test(test_stats_into_a_newer_or_unsized_struct),
        cmocka_unit_test(test_crashed_counts_calls_and_worker_deaths_processes),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
