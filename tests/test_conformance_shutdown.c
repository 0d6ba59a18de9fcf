/*
 * Conformance with CPython's concurrent.futures tests: initializers
 * (Lib/test/test_concurrent_futures/test_init.py) and shutdown
 * (test_shutdown.py), ported to ppx's blocking API with real forked
 * workers. See test_conformance_futures.c for the other parts.
 *
 * Naming: each test is <file>__<method>[__<variant>], where <file> is the
 * CPython test module without ".py" and <method> the CPython test method
 * (its class is named in the comment above the test); a __<variant>
 * suffix marks one CPython test split into several here. So
 * test_shutdown__test_run_after_shutdown is
 * ExecutorShutdownTest.test_run_after_shutdown in test_shutdown.py.
 *
 * Calls that must block use "gated" calls the test lets go; nothing
 * depends on timing. Where ppx deliberately differs, the test asserts
 * ppx's documented behaviour and its comment says so, naming the
 * document.
 */
#include "conformance.h"
#include "support.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef conf_fixture fixture;

static int setup(void **state)
{
    return conf_setup_pool(state, 2);
}

static int teardown(void **state)
{
    return conf_teardown(state);
}

/* ---- test_init.py ------------------------------------------------------ */

/* InitializerMixin.test_initializer: every worker ran the initializer
 * before its first call. */
static void test_init__test_initializer(void **state)
{
    (void)state;
    ppx_pool_options o = PPX_POOL_OPTIONS(.initializer = conf_init_status, .initializer_arg = "initialized");
    ppx_pool *p = conf_pool(2, &o);
    ppx_future *f[2];
    for (int i = 0; i < 2; i++)
        assert_int_equal(ppx_pool_submitf(p, &f[i], "init_status", ""), 0);
    for (int i = 0; i < 2; i++) {
        ppx_value v;
        const char *s;
        size_t n;
        assert_int_equal(ppx_future_wait(f[i], -1), 0);
        assert_int_equal(ppx_future_value(f[i], &v), 0);
        assert_int_equal(ppx_value_str(v, &s, &n), 0);
        assert_int_equal(n, strlen("initialized"));
        assert_memory_equal(s, "initialized", n);
        ppx_future_unref(f[i]);
    }
    ppx_pool_free(p);
}

static int init_fail(char *err, size_t errlen, void *arg)
{
    (void)arg;
    snprintf(err, errlen, "ValueError: error in initializer");
    return 1;
}

/* FailingInitializerMixin.test_initializer. Differs on purpose: Python
 * makes the executor, then breaks it (BrokenExecutor on submit and
 * result); ppx_pool_new runs the initializers of the first workers itself
 * and fails with PPX_EINIT, the initializer's message in ppx_last_error()
 * (ppx.h, ppx_pool_options.initializer and ppx_pool_new): there is no
 * pool to submit to. */
static void test_init__test_initializer__failing(void **state)
{
    (void)state;
    ppx_pool_options o = PPX_POOL_OPTIONS(.workers = 2, .initializer = init_fail);
    support_valgrind_sizes(&o);
    ppx_pool *p = NULL;
    assert_int_equal(ppx_pool_new(&o, &p), PPX_EINIT);
    assert_null(p);
    assert_non_null(strstr(ppx_last_error(), "ValueError: error in initializer"));
}

/* FailingInitializerResourcesTest.test_forkserver (and test_spawn): a
 * failed initializer leaks nothing. ppx's workers come from a fork server
 * (docs/FAILURE_MODEL.md, "Where workers come from"): no process nor
 * descriptor is left once ppx_pool_new has failed. */
static void test_init__test_forkserver(void **state)
{
    (void)state;
    int fds = support_open_fds();
    ppx_pool_options o = PPX_POOL_OPTIONS(.workers = 2, .initializer = init_fail);
    support_valgrind_sizes(&o);
    ppx_pool *p = NULL;
    assert_int_equal(ppx_pool_new(&o, &p), PPX_EINIT);
    assert_true(support_no_children());
    assert_int_equal(support_open_fds(), fds);
}

/* ---- test_shutdown.py: ExecutorShutdownTest, ProcessPoolShutdownTest ---- */

/* ExecutorShutdownTest.test_run_after_shutdown: RuntimeError is
 * PPX_ECLOSED. */
static void test_shutdown__test_run_after_shutdown(void **state)
{
    fixture *fx = *state;
    assert_int_equal(ppx_pool_shutdown(fx->pool, PPX_SHUTDOWN_WAIT, -1), 0);
    ppx_future *f = NULL;
    assert_int_equal(ppx_pool_submitf(fx->pool, &f, "pow", "ii", 2, 5), PPX_ECLOSED);
    assert_null(f);
}

/* ExecutorShutdownTest.test_hang_issue12364: shutdown with 50 calls
 * queued waits for all of them. */
static void test_shutdown__test_hang_issue12364(void **state)
{
    fixture *fx = *state;
    enum { N = 50 };
    ppx_future *f[N];
    for (int i = 0; i < N; i++)
        assert_int_equal(ppx_pool_submitf(fx->pool, &f[i], "mul", "ii", i, 2), 0);
    assert_int_equal(ppx_pool_shutdown(fx->pool, PPX_SHUTDOWN_WAIT, -1), 0);
    for (int i = 0; i < N; i++) {
        assert_true(ppx_future_done(f[i]));
        assert_int_equal(support_future_int(f[i]), 2 * i);
        ppx_future_unref(f[i]);
    }
}

/* ExecutorShutdownTest.test_hang_gh94440: a call cancelled right before
 * shutdown(wait=True) does not hang it. The cancel may come too late (the
 * call done already: PPX_EDONE); either way shutdown returns. */
static void test_shutdown__test_hang_gh94440(void **state)
{
    (void)state;
    ppx_pool *p = conf_pool(1, NULL);
    ppx_future *f;
    assert_int_equal(ppx_pool_submitf(p, &f, "abs", "i", 0), 0);
    assert_int_equal(support_future_int(f), 0);
    ppx_future_unref(f);
    assert_int_equal(ppx_pool_submitf(p, &f, "abs", "i", 0), 0);
    int rc = ppx_future_cancel(f);
    assert_true(rc == 0 || rc == PPX_EDONE);
    assert_int_equal(ppx_pool_shutdown(p, PPX_SHUTDOWN_WAIT, 30000), 0);
    ppx_future_unref(f);
    ppx_pool_free(p);
}

/* ProcessPoolShutdownTest.test_processes_terminate: calls blocked on a
 * semaphore are let go, shutdown waits, and the workers are gone once the
 * pool is freed (ppx_pool_shutdown does not free; ppx_pool_free reaps). */
static void test_shutdown__test_processes_terminate(void **state)
{
    fixture *fx = *state;
    ppx_future *f[3];
    for (int i = 0; i < 3; i++)
        f[i] = conf_gated(fx->pool, 1, i, "ok");
    assert_int_equal(ppx_pool_workers(fx->pool), 2);
    long pid[2] = {support_worker_pid(fx->pool, 0), support_worker_pid(fx->pool, 1)};
    conf_release(1);
    assert_int_equal(ppx_pool_shutdown(fx->pool, PPX_SHUTDOWN_WAIT, -1), 0);
    for (int i = 0; i < 3; i++) {
        assert_int_equal(support_future_int(f[i]), i);
        ppx_future_unref(f[i]);
    }
    ppx_pool_free(fx->pool);
    fx->pool = conf_pool(1, NULL); /* for the teardown */
    for (int i = 0; i < 2; i++)
        support_wait_gone(pid[i], 10000);
}

/* ProcessPoolShutdownTest.test_context_manager_shutdown (and
 * test_del_shutdown: C has no "with" nor garbage collector, the free is
 * explicit): map abs over range(-5, 5), free, no worker left. */
static void map_abs(ppx_pool *p, ppx_future **out)
{
    char items[64];
    size_t n = 0;
    items[n++] = (char)0x9a; /* array of 10 */
    for (int x = -5; x < 5; x++) {
        items[n++] = (char)0x91;
        items[n++] = (char)(x & 0xff); /* positive or negative fixint */
    }
    assert_int_equal(ppx_pool_map(p, "abs", items, n, NULL, out), 0);
}

static void check_abs(ppx_future *f)
{
    char text[64];
    ppx_value v;
    assert_int_equal(ppx_future_wait(f, -1), 0);
    assert_int_equal(ppx_future_value(f, &v), 0);
    ppx_value_format(v, text, sizeof text);
    assert_string_equal(text, "[5, 4, 3, 2, 1, 0, 1, 2, 3, 4]");
}

static void test_shutdown__test_context_manager_shutdown(void **state)
{
    (void)state;
    ppx_pool *p = conf_pool(5, NULL);
    ppx_future *f;
    map_abs(p, &f);
    check_abs(f);
    ppx_pool_free(p);
    ppx_future_unref(f);
    assert_true(support_no_children());
}

/* ProcessPoolShutdownTest.test_shutdown_no_wait: shutdown(wait=False) is
 * ppx_pool_shutdown(WAIT, 0), which closes the pool and returns at once
 * (PPX_ETIMEDOUT while work runs); the work still completes. */
static void test_shutdown__test_shutdown_no_wait(void **state)
{
    fixture *fx = *state;
    ppx_future *f;
    map_abs(fx->pool, &f);
    int rc = ppx_pool_shutdown(fx->pool, PPX_SHUTDOWN_WAIT, 0);
    assert_true(rc == 0 || rc == PPX_ETIMEDOUT);
    check_abs(f);
    ppx_future_unref(f);
}

/* ProcessPoolShutdownTest.test_shutdown_gh_132969_case_1 and _case_2:
 * max_tasks_per_child=1, one call in the middle fails, shutdown without
 * waiting; the sum of results up to the failure is 1 and nothing hangs. */
static void gh_132969(int workers)
{
    ppx_pool_options o = PPX_POOL_OPTIONS(.max_tasks_per_child = 1);
    ppx_pool *p = conf_pool(workers, &o);
    ppx_future *f[3];
    assert_int_equal(ppx_pool_submitf(p, &f[0], "abs", "i", 1), 0);
    assert_int_equal(ppx_pool_submitf(p, &f[1], "raise", "ss", "ValueError", "failing task"), 0);
    assert_int_equal(ppx_pool_submitf(p, &f[2], "abs", "i", 3), 0);
    int64_t result = support_future_int(f[0]);
    assert_int_equal(ppx_future_wait(f[1], -1), 0);
    assert_string_equal(ppx_future_error(f[1])->type, "ValueError");
    assert_int_equal(result, 1);
    int rc = ppx_pool_shutdown(p, PPX_SHUTDOWN_WAIT, 0);
    assert_true(rc == 0 || rc == PPX_ETIMEDOUT);
    assert_int_equal(ppx_pool_shutdown(p, PPX_SHUTDOWN_WAIT, 30000), 0);
    assert_int_equal(support_future_int(f[2]), 3);
    for (int i = 0; i < 3; i++)
        ppx_future_unref(f[i]);
    ppx_pool_free(p);
}

static void test_shutdown__test_shutdown_gh_132969_case_1(void **state)
{
    (void)state;
    gh_132969(2);
}

static void test_shutdown__test_shutdown_gh_132969_case_2(void **state)
{
    (void)state;
    gh_132969(4);
}

int main(void)
{
    conf_register();
#define T(name) cmocka_unit_test_setup_teardown(name, setup, teardown)
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_init__test_initializer),
        cmocka_unit_test(test_init__test_initializer__failing),
        cmocka_unit_test(test_init__test_forkserver),
        T(test_shutdown__test_run_after_shutdown),
        T(test_shutdown__test_hang_issue12364),
        cmocka_unit_test(test_shutdown__test_hang_gh94440),
        T(test_shutdown__test_processes_terminate),
        cmocka_unit_test(test_shutdown__test_context_manager_shutdown),
        T(test_shutdown__test_shutdown_no_wait),
        cmocka_unit_test(test_shutdown__test_shutdown_gh_132969_case_1),
        cmocka_unit_test(test_shutdown__test_shutdown_gh_132969_case_2),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
