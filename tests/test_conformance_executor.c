/*
 * Conformance with CPython's concurrent.futures tests: the executor
 * (Lib/test/test_concurrent_futures/executor.py, ExecutorTest, mixed into
 * ProcessPoolExecutorTest), ported with real forked workers: submit and
 * map on ppx's blocking API, and the map with a buffersize (3.14) on
 * ppx_map_lazy, which needs a loop. The process pool's own tests are in
 * test_conformance_pool.c.
 *
 * Naming: as in test_conformance_futures.c, with executor__<method> for
 * the ExecutorTest methods (executor.py is a mixin, not a test module).
 * Where ppx deliberately differs, the test asserts ppx's documented
 * behaviour and its comment says so, naming the document.
 */
#include "conformance.h"
#include "support.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <uv.h>

typedef conf_fixture fixture;

static int setup(void **state)
{
    return conf_setup_pool(state, 2);
}

static int setup_loop(void **state)
{
    return conf_setup_loop(state, 2);
}

static int teardown(void **state)
{
    return conf_teardown(state);
}

/* ---- executor.py: ExecutorTest ----------------------------------------- */

/* ExecutorTest.test_submit. */
static void executor__test_submit(void **state)
{
    fixture *fx = *state;
    ppx_future *f;
    assert_int_equal(ppx_pool_submitf(fx->pool, &f, "pow", "ii", 2, 8), 0);
    assert_int_equal(support_future_int(f), 256);
    ppx_future_unref(f);
}

/* ExecutorTest.test_map: map(pow, range(10), range(10)) as one batch
 * (ppx_pool_map; its chunksize variant is
 * test_process_pool__test_map_chunksize, in test_conformance_pool.c). */
static void executor__test_map(void **state)
{
    fixture *fx = *state;
    int r[10];
    for (int i = 0; i < 10; i++)
        r[i] = i;
    size_t len;
    void *items = conf_pairs(r, r, 10, &len);
    ppx_future *f;
    assert_int_equal(ppx_pool_map(fx->pool, "pow", items, len, NULL, &f), 0);
    char want[512];
    conf_pow_text(10, want, sizeof want);
    conf_expect_text(f, want);
    ppx_future_unref(f);
    free(items);
}

/* ExecutorTest.test_map_exception: map(divmod, [1]*4, [2, 3, 0, 5]).
 * Differs on purpose: Python's map is an iterator that yields (0, 1)
 * twice before raising; ppx_pool_map is one future, and the first call
 * that fails fails the whole batch, its message naming the item (ppx.h,
 * ppx_pool_map). */
static void executor__test_map_exception(void **state)
{
    fixture *fx = *state;
    int a[4] = {1, 1, 1, 1}, b[4] = {2, 3, 0, 5};
    size_t len;
    void *items = conf_pairs(a, b, 4, &len);
    ppx_future *f;
    assert_int_equal(ppx_pool_map(fx->pool, "divmod", items, len, NULL, &f), 0);
    conf_expect_error(f, "ZeroDivisionError");
    conf_expect_message(f, "item 2");
    ppx_future_unref(f);
    free(items);
}

/* ExecutorTest.test_map_timeout: map(time.sleep, [0, 0, 6], timeout=5).
 * The third item blocks until stopped. Differs: the batch is one future
 * with one deadline (ppx_call_options.timeout_ms), so it fails whole with
 * TimeoutError, and its call is stopped (docs/GUIDE.md, "Cancellation");
 * Python yields the two first results, then raises, the call running on. */
static void executor__test_map_timeout(void **state)
{
    fixture *fx = *state;
    /* [[0, 0, "ok"], [0, 0, "ok"], [2**30, 0, "ok"]] for gated(k, v, kind) */
    static const char items[] = "\x93"
                                "\x93\x00\x00\xa2ok"
                                "\x93\x00\x00\xa2ok"
                                "\x93\xce\x40\x00\x00\x00\x00\xa2ok";
    ppx_call_options o = PPX_CALL_OPTIONS(.timeout_ms = 50);
    ppx_future *f;
    assert_int_equal(ppx_pool_map(fx->pool, "gated", items, sizeof items - 1, &o, &f), 0);
    conf_expect_error(f, "TimeoutError");
    /* Stopped: if the third item had begun by the deadline, it sees its
     * flag; a batch not begun by then never runs at all. */
    if (atomic_load(&conf->started) == 3)
        conf_wait_noticed(1);
    ppx_future_unref(f);
}

/* ExecutorTest.test_shutdown_race_issue12456: a map of workers + 1 calls,
 * then shutdown: no hang. */
static void executor__test_shutdown_race_issue12456(void **state)
{
    fixture *fx = *state;
    ppx_future *f;
    assert_int_equal(ppx_pool_map(fx->pool, "abs", "\x93\x91\x02\x91\x02\x91\x02", 7, NULL, &f), 0);
    assert_int_equal(ppx_pool_shutdown(fx->pool, PPX_SHUTDOWN_WAIT, -1), 0);
    conf_expect_text(f, "[2, 2, 2]");
    ppx_future_unref(f);
}

/* ExecutorTest.test_max_workers_negative: a negative worker count is
 * refused (PPX_EINVAL for ValueError). Differs: 0 is not an error but
 * "one per online CPU" (ppx.h, ppx_pool_options.workers). */
static void executor__test_max_workers_negative(void **state)
{
    (void)state;
    ppx_pool_options o = PPX_POOL_OPTIONS(.workers = -1);
    ppx_pool *p = NULL;
    assert_int_equal(ppx_pool_new(&o, &p), PPX_EINVAL);
    assert_null(p);
}

/* ---- executor.py (3.14): map(..., buffersize=b) as ppx_map_lazy ------- */

/* Python's map with a buffersize submits b calls, then one more as each
 * result is consumed. ppx_map_lazy (ppx.h) pulls input i from next(),
 * keeps at most max_in_flight calls between the oldest result not yet
 * handed over and the newest call, and hands the results to on_result in
 * input order; the iterable is next(), list(res) is what on_result got.
 * A feed counts what was pulled and keeps the first results as text. */
typedef struct feed {
    size_t n;          /* inputs to give; SIZE_MAX: endless (itertools.count) */
    bool gated;        /* inputs are gated(k, i, "ok"), k = 2 for input 0 */
    size_t pulled;     /* inputs next() gave */
    size_t delivered;  /* results on_result got */
    size_t stop_after; /* cancel the map after this many results (0: never) */
    ppx_awaitable *map;
    char got[8][24];   /* results 0..7, formatted */
    unsigned char buf[32];
} feed;

/* Appends the msgpack uint64 x at b. */
static size_t pack_u64(unsigned char *b, uint64_t x)
{
    b[0] = 0xcf;
    for (int k = 0; k < 8; k++)
        b[1 + k] = (unsigned char)(x >> (56 - 8 * k));
    return 9;
}

static int next_input(size_t i, const void **args, size_t *len, void *arg)
{
    feed *f = arg;
    if (i >= f->n)
        return 0;
    size_t k = 1;
    if (f->gated) { /* [k, i, "ok"] */
        f->buf[0] = 0x93;
        k += pack_u64(f->buf + k, i == 0 ? 2 : 1);
        k += pack_u64(f->buf + k, i);
        memcpy(f->buf + k, "\xa2ok", 3);
        k += 3;
    } else { /* [i] */
        f->buf[0] = 0x91;
        k += pack_u64(f->buf + k, i);
    }
    *args = f->buf;
    *len = k;
    f->pulled++;
    return 1;
}

static void on_result(size_t i, ppx_awaitable *aw, void *arg)
{
    feed *f = arg;
    assert_int_equal(i, f->delivered); /* in input order, each once */
    if (i < 8)
        conf_aw_text(aw, f->got[i], sizeof f->got[i]);
    f->delivered++;
    if (f->delivered == f->stop_after)
        assert_int_equal(ppx_awaitable_cancel(f->map), 0);
}

/* ExecutorTest.test_map_buffersize_value_validation: buffersize 0 and -1
 * are refused (ValueError). ppx: max_in_flight 0, and (size_t)-1, over
 * the 2^24 bound, are PPX_EINVAL (ppx.h, ppx_map_lazy), before any input
 * is pulled; there is no message to match (ppx_map_lazy sets none). */
static void executor__test_map_buffersize_value_validation(void **state)
{
    fixture *fx = *state;
    static const size_t sizes[] = {0, (size_t)-1};
    for (size_t k = 0; k < 2; k++) {
        feed f = {.n = 4};
        ppx_awaitable *m = NULL;
        assert_int_equal(ppx_map_lazy(&fx->loop, fx->pool, "str", sizes[k], next_input, on_result,
                                      &f, &m),
                         PPX_EINVAL);
        assert_null(m);
        assert_int_equal(f.pulled, 0);
    }
}

/* ExecutorTest.test_map_buffersize: map(str, range(4), buffersize=b) for
 * b in (1, 2, 4, 8) gives ["0", "1", "2", "3"]; the map's own value is
 * the number of calls. */
static void executor__test_map_buffersize(void **state)
{
    fixture *fx = *state;
    static const size_t sizes[] = {1, 2, 4, 8};
    for (size_t k = 0; k < 4; k++) {
        feed f = {.n = 4};
        ppx_awaitable *m;
        assert_int_equal(ppx_map_lazy(&fx->loop, fx->pool, "str", sizes[k], next_input, on_result,
                                      &f, &m),
                         0);
        conf_run(fx, m);
        assert_int_equal(ppx_awaitable_state(m), PPX_DONE);
        assert_int_equal(conf_aw_int(m), 4);
        assert_int_equal(f.delivered, 4);
        for (int i = 0; i < 4; i++) {
            char want[8];
            snprintf(want, sizeof want, "'%d'", i);
            assert_string_equal(f.got[i], want);
        }
        ppx_awaitable_unref(m);
    }
}

/* ExecutorTest.test_map_buffersize_on_infinite_iterable: map(str,
 * itertools.count(), buffersize=2), three results taken: "0", "1", "2".
 * next() never ends; the consumer stops after the third result by
 * cancelling the map (the iterator dropped), and nothing more is handed
 * over; no more than the window was pulled past what was consumed. */
static void executor__test_map_buffersize_on_infinite_iterable(void **state)
{
    fixture *fx = *state;
    feed f = {.n = SIZE_MAX, .stop_after = 3};
    assert_int_equal(ppx_map_lazy(&fx->loop, fx->pool, "str", 2, next_input, on_result, &f, &f.map),
                     0);
    conf_run(fx, f.map);
    assert_int_equal(ppx_awaitable_state(f.map), PPX_CANCELLED);
    assert_string_equal(conf_aw_etype(f.map), "CancelledError");
    assert_int_equal(f.delivered, 3);
    assert_string_equal(f.got[0], "'0'");
    assert_string_equal(f.got[1], "'1'");
    assert_string_equal(f.got[2], "'2'");
    assert_true(f.pulled <= 3 + 2);
    uv_run(&fx->loop, UV_RUN_DEFAULT); /* the cancelled calls settle */
    assert_int_equal(f.delivered, 3);
    ppx_awaitable_unref(f.map);
}

/* ExecutorTest.test_map_buffersize_when_buffer_is_full: iter(range(4)),
 * buffersize 2, results never consumed: only 2 inputs are fetched. A ppx
 * map hands each result over as soon as those before it are, so the
 * buffer is full while its oldest call is unfinished: input 0 waits for
 * turn 2, input 1 for turn 1. With call 1 finished and settled on the
 * loop, still only 2 inputs are pulled; once call 0 finishes the rest
 * follow. */
static void executor__test_map_buffersize_when_buffer_is_full(void **state)
{
    fixture *fx = *state;
    feed f = {.n = 4, .gated = true};
    ppx_awaitable *m;
    assert_int_equal(ppx_map_lazy(&fx->loop, fx->pool, "gated", 2, next_input, on_result, &f, &m), 0);
    assert_int_equal(f.pulled, 2);
    conf_release(1);
    /* The loop's turns run the pool's callbacks: once it has counted call
     * 1 complete, the map has seen it settle. */
    ppx_pool_stats st = PPX_POOL_STATS_INIT;
    int64_t end = support_now_ms() + 20000;
    do {
        assert_true(support_now_ms() < end);
        uv_run(&fx->loop, UV_RUN_ONCE);
        assert_int_equal(ppx_pool_stats_get(fx->pool, &st), 0);
    } while (st.completed < 1);
    assert_int_equal(st.completed, 1);
    assert_int_equal(f.pulled, 2); /* next(ints) == buffersize */
    assert_int_equal(f.delivered, 0);
    conf_release(2);
    conf_run(fx, m);
    assert_int_equal(conf_aw_int(m), 4);
    assert_int_equal(f.pulled, 4);
    for (int i = 0; i < 4; i++) {
        char want[8];
        snprintf(want, sizeof want, "%d", i);
        assert_string_equal(f.got[i], want);
    }
    ppx_awaitable_unref(m);
}

int main(void)
{
    conf_register();
#define T(name) cmocka_unit_test_setup_teardown(name, setup, teardown)
#define L(name) cmocka_unit_test_setup_teardown(name, setup_loop, teardown)
    const struct CMUnitTest tests[] = {
        T(executor__test_submit),
        T(executor__test_map),
        T(executor__test_map_exception),
        T(executor__test_map_timeout),
        T(executor__test_shutdown_race_issue12456),
        T(executor__test_max_workers_negative),
        L(executor__test_map_buffersize_value_validation),
        L(executor__test_map_buffersize),
        L(executor__test_map_buffersize_on_infinite_iterable),
        L(executor__test_map_buffersize_when_buffer_is_full),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
