/*
 * A single call's progress (ppx_call_progress): what the function reports
 * reaches a blocking future (ppx_future_progress, ppx_future_on_progress),
 * the awaitable of ppx_run_in_executor on the loop thread, and the thread
 * executor's; what a hostile worker writes into its progress words never
 * makes the parent report done > total; a call that reports nothing
 * calls no progress callback. No timing assertions: intermediate values
 * are waited for, final ones asserted once the result is in.
 */
#include "support.h"
#include "ppx.h"
#include "procpool/worker/call.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>
#include <uv.h>

static _Atomic int *turn; /* shared with workers */

/* steps(n): reports 1..n of n, pausing now and then so that some values
 * are seen on the way; returns n. */
static int fn_steps(ppx_call *c, void *u)
{
    (void)u;
    uint64_t n;
    ppx_call_arg_uint(c, 0, &n);
    for (uint64_t i = 1; i <= n; i++) {
        if (ppx_call_progress(c, i, n))
            return ppx_raise(c, "AssertionError", "ppx_call_progress failed");
        if (i % 100 == 0)
            support_sleep_ms(1);
    }
    return ppx_return_uint(c, n);
}

/* halfway(): reports 5 of 10, waits for turn 1, reports 10 of 10. */
static int fn_halfway(ppx_call *c, void *u)
{
    (void)u;
    ppx_call_progress(c, 5, 10);
    while (atomic_load(turn) != 1 && !ppx_call_cancelled(c))
        support_sleep_ms(1);
    ppx_call_progress(c, 10, 10);
    return ppx_return_int(c, 7);
}

/* scribble(rounds): writes garbage into its own slot's progress words
 * (bypassing ppx_call_progress: whatever a function may write), odd and
 * even seqs, done far above total; ends with done = UINT64_MAX of 5 and
 * an even seq, the last whole pair the parent can read. */
static int fn_scribble(ppx_call *c, void *u)
{
    (void)u;
    int64_t rounds;
    ppx_call_arg_int(c, 0, &rounds);
    ppx__slot *s = (ppx__slot *)c->slot;
    uint64_t x = 0x9e3779b97f4a7c15ull;
    for (int64_t r = 0; r < rounds; r++) {
        x ^= x << 13, x ^= x >> 7, x ^= x << 17;
        atomic_store(&s->progress_seq, (uint32_t)x);
        atomic_store(&s->progress_done, x * 31);
        atomic_store(&s->progress_total, x >> (r % 64));
        if (r % 64 == 0)
            support_sleep_ms(1);
    }
    atomic_store(&s->progress_done, UINT64_MAX);
    atomic_store(&s->progress_total, 5);
    atomic_store(&s->progress_seq, 0x7ffffff0u);
    return ppx_return_int(c, 1);
}

static int fn_plain(ppx_call *c, void *u)
{
    (void)u;
    return ppx_return_int(c, 1);
}

/* ---- what callbacks saw ------------------------------------------------ */

typedef struct seen {
    pthread_mutex_t mu;
    int calls;
    uint64_t last_done, last_total;
    bool monotonic, bounded;
    bool off_thread; /* an awaitable's callback ran off the loop thread */
    pthread_t thread;
    bool done_seen;  /* the awaitable settled */
    uint64_t at_done_done, at_done_total; /* what progress said by then */
} seen;

static void seen_init(seen *s)
{
    memset(s, 0, sizeof *s);
    pthread_mutex_init(&s->mu, NULL);
    s->monotonic = s->bounded = true;
    s->thread = pthread_self();
}

static void record(seen *s, uint64_t done, uint64_t total)
{
    pthread_mutex_lock(&s->mu);
    if (s->calls && (done < s->last_done || total != s->last_total))
        s->monotonic = false;
    if (total && done > total)
        s->bounded = false;
    s->calls++;
    s->last_done = done;
    s->last_total = total;
    pthread_mutex_unlock(&s->mu);
}

static void on_future_progress(ppx_future *f, uint64_t done, uint64_t total, void *arg)
{
    (void)f;
    record(arg, done, total);
}

static void on_aw_progress(ppx_awaitable *aw, size_t done, size_t total, void *arg)
{
    (void)aw;
    seen *s = arg;
    if (!pthread_equal(s->thread, pthread_self()))
        s->off_thread = true;
    record(s, done, total);
}

static void on_aw_done(ppx_awaitable *aw, void *arg)
{
    (void)aw;
    seen *s = arg;
    s->done_seen = true;
    s->at_done_done = s->last_done;
    s->at_done_total = s->last_total;
}

/* ---- helpers ----------------------------------------------------------- */

static int setup(void **state)
{
    (void)state;
    atomic_store(turn, 0);
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    assert_true(support_no_children());
    return 0;
}

static ppx_pool *new_pool(int workers)
{
    ppx_pool *p = NULL;
    ppx_pool_options o = PPX_POOL_OPTIONS(.workers = workers);
    support_valgrind_sizes(&o);
    assert_int_equal(ppx_pool_new(&o, &p), 0);
    return p;
}

/* ---- tests ------------------------------------------------------------- */

static void test_blocking_future_sees_the_last_values(void **state)
{
    (void)state;
    ppx_pool *p = new_pool(2);
    ppx_future *f;
    assert_int_equal(ppx_pool_submitf(p, &f, "steps", "u", 1000u), 0);
    seen s;
    seen_init(&s);
    int rc = ppx_future_on_progress(f, on_future_progress, &s);
    assert_true(rc == 0 || rc == PPX_EDONE);
    assert_int_equal(support_future_int(f), 1000);
    uint64_t done, total;
    assert_int_equal(ppx_future_progress(f, &done, &total), 0);
    assert_int_equal(done, 1000);
    assert_int_equal(total, 1000);
    if (rc == 0) { /* registered while pending: the last pair came before the result */
        assert_true(s.calls >= 1);
        assert_int_equal(s.last_done, 1000);
        assert_int_equal(s.last_total, 1000);
    }
    assert_true(s.monotonic);
    assert_true(s.bounded);
    assert_int_equal(ppx_future_on_progress(f, on_future_progress, &s), PPX_EDONE);
    ppx_future_unref(f);
    ppx_pool_free(p);
}

static void test_blocking_user_sees_progress_while_it_runs(void **state)
{
    (void)state;
    ppx_pool *p = new_pool(1);
    ppx_future *f;
    assert_int_equal(ppx_pool_submitf(p, &f, "halfway", ""), 0);
    seen s;
    seen_init(&s);
    assert_int_equal(ppx_future_on_progress(f, on_future_progress, &s), 0);
    uint64_t done = 0, total = 0;
    int64_t until = support_now_ms() + 10000;
    while (done != 5) {
        assert_true(support_now_ms() < until);
        ppx_future_wait(f, 5); /* drives the pool: times out, the call waits */
        assert_int_equal(ppx_future_progress(f, &done, &total), 0);
    }
    assert_int_equal(total, 10);
    assert_false(ppx_future_done(f));
    pthread_mutex_lock(&s.mu);
    assert_int_equal(s.last_done, 5); /* the callback ran on this thread */
    pthread_mutex_unlock(&s.mu);
    atomic_store(turn, 1);
    assert_int_equal(support_future_int(f), 7);
    assert_int_equal(ppx_future_progress(f, &done, &total), 0);
    assert_int_equal(done, 10);
    assert_int_equal(total, 10);
    assert_int_equal(s.last_done, 10);
    assert_true(s.monotonic && s.bounded);
    ppx_future_unref(f);
    ppx_pool_free(p);
}

static void test_hostile_progress_words_stay_clamped(void **state)
{
    (void)state;
    ppx_pool *p = new_pool(1);
    ppx_future *f;
    assert_int_equal(ppx_pool_submitf(p, &f, "scribble", "i", 20000), 0);
    seen s;
    seen_init(&s);
    assert_int_equal(ppx_future_on_progress(f, on_future_progress, &s), 0);
    assert_int_equal(support_future_int(f), 1);
    uint64_t done, total;
    assert_int_equal(ppx_future_progress(f, &done, &total), 0);
    assert_int_equal(total, 5);
    assert_int_equal(done, 5); /* UINT64_MAX of 5, clamped */
    assert_true(s.bounded);
    ppx_future_unref(f);
    /* And the pool goes on serving, progress included. */
    assert_int_equal(ppx_pool_submitf(p, &f, "steps", "u", 300u), 0);
    assert_int_equal(support_future_int(f), 300);
    assert_int_equal(ppx_future_progress(f, &done, &total), 0);
    assert_int_equal(done, 300);
    assert_int_equal(total, 300);
    ppx_future_unref(f);
    ppx_pool_free(p);
}

static void test_call_without_progress_calls_no_callback(void **state)
{
    (void)state;
    ppx_pool *p = new_pool(1);
    ppx_future *f;
    assert_int_equal(ppx_pool_submitf(p, &f, "plain", ""), 0);
    seen s;
    seen_init(&s);
    int rc = ppx_future_on_progress(f, on_future_progress, &s);
    assert_true(rc == 0 || rc == PPX_EDONE);
    assert_int_equal(support_future_int(f), 1);
    uint64_t done = 9, total = 9;
    assert_int_equal(ppx_future_progress(f, &done, &total), 0);
    assert_int_equal(done, 0);
    assert_int_equal(total, 0);
    ppx_future_unref(f);

    uv_loop_t loop;
    uv_loop_init(&loop);
    ppx_awaitable *aw;
    assert_int_equal(ppx_run_in_executorf(&loop, p, &aw, "plain", ""), 0);
    assert_int_equal(ppx_awaitable_on_progress(aw, on_aw_progress, &s), 0);
    assert_int_equal(ppx_run_until_complete(&loop, aw), 0);
    assert_int_equal(ppx_awaitable_state(aw), PPX_DONE);
    ppx_awaitable_unref(aw);
    assert_int_equal(s.calls, 0);
    ppx_pool_free(p);
    uv_run(&loop, UV_RUN_DEFAULT);
    assert_int_equal(uv_loop_close(&loop), 0);
}

static void test_awaitable_progress_on_the_loop_thread(void **state)
{
    (void)state;
    ppx_pool *p = new_pool(2);
    uv_loop_t loop;
    uv_loop_init(&loop);
    ppx_awaitable *aw;
    assert_int_equal(ppx_run_in_executorf(&loop, p, &aw, "steps", "u", 1000u), 0);
    seen s;
    seen_init(&s);
    assert_int_equal(ppx_awaitable_on_progress(aw, on_aw_progress, &s), 0);
    assert_int_equal(ppx_awaitable_add_done_callback(aw, on_aw_done, &s), 0);
    assert_int_equal(ppx_run_until_complete(&loop, aw), 0);
    assert_int_equal(ppx_awaitable_state(aw), PPX_DONE);
    assert_true(s.done_seen);
    assert_true(s.calls >= 1);
    assert_int_equal(s.at_done_done, 1000); /* the last pair came before it settled */
    assert_int_equal(s.at_done_total, 1000);
    assert_true(s.monotonic && s.bounded);
    assert_false(s.off_thread);
    ppx_awaitable_unref(aw);
    ppx_pool_free(p);
    uv_run(&loop, UV_RUN_DEFAULT);
    assert_int_equal(uv_loop_close(&loop), 0);
}

static void test_thread_executor_progress(void **state)
{
    (void)state;
    uv_loop_t loop;
    uv_loop_init(&loop);
    ppx_awaitable *aw;
    assert_int_equal(
        ppx_run_in_executorf(&loop, ppx_thread_pool(), &aw, "steps", "u", 1000u), 0);
    seen s;
    seen_init(&s);
    assert_int_equal(ppx_awaitable_on_progress(aw, on_aw_progress, &s), 0);
    assert_int_equal(ppx_awaitable_add_done_callback(aw, on_aw_done, &s), 0);
    assert_int_equal(ppx_run_until_complete(&loop, aw), 0);
    assert_int_equal(ppx_awaitable_state(aw), PPX_DONE);
    assert_true(s.done_seen);
    assert_int_equal(s.at_done_done, 1000);
    assert_int_equal(s.at_done_total, 1000);
    assert_true(s.monotonic && s.bounded);
    assert_false(s.off_thread);
    ppx_awaitable_unref(aw);
    uv_run(&loop, UV_RUN_DEFAULT);
    assert_int_equal(uv_loop_close(&loop), 0);
}

/* A thread blocked in ppx_future_wait drives the pool while the loop
 * waits on the same call: progress it takes in is handed to the loop. */
typedef struct waiter_arg {
    ppx_future *f;
} waiter_arg;

static void *waiter(void *arg)
{
    waiter_arg *a = arg;
    ppx_future_wait(a->f, -1);
    return NULL;
}

static void test_progress_taken_in_by_another_thread(void **state)
{
    (void)state;
    ppx_pool *p = new_pool(1);
    uv_loop_t loop;
    uv_loop_init(&loop);
    ppx_future *f;
    assert_int_equal(ppx_pool_submitf(p, &f, "steps", "u", 2000u), 0);
    ppx_awaitable *aw;
    assert_int_equal(ppx_wrap_future(&loop, f, &aw), 0);
    seen s;
    seen_init(&s);
    assert_int_equal(ppx_awaitable_on_progress(aw, on_aw_progress, &s), 0);
    assert_int_equal(ppx_awaitable_add_done_callback(aw, on_aw_done, &s), 0);
    waiter_arg a = {f};
    pthread_t th;
    assert_int_equal(pthread_create(&th, NULL, waiter, &a), 0);
    assert_int_equal(ppx_run_until_complete(&loop, aw), 0);
    pthread_join(th, NULL);
    assert_int_equal(ppx_awaitable_state(aw), PPX_DONE);
    assert_int_equal(s.at_done_done, 2000);
    assert_int_equal(s.at_done_total, 2000);
    assert_true(s.monotonic && s.bounded);
    assert_false(s.off_thread);
    ppx_awaitable_unref(aw);
    ppx_future_unref(f);
    ppx_pool_free(p);
    uv_run(&loop, UV_RUN_DEFAULT);
    assert_int_equal(uv_loop_close(&loop), 0);
}

static void test_argument_checks(void **state)
{
    (void)state;
    assert_int_equal(ppx_call_progress(NULL, 1, 2), PPX_EINVAL);
    uint64_t d, t;
    assert_int_equal(ppx_future_progress(NULL, &d, &t), PPX_EBADOBJ);
    assert_int_equal(ppx_future_on_progress(NULL, on_future_progress, NULL), PPX_EBADOBJ);
    ppx_pool *p = new_pool(1);
    ppx_future *f;
    assert_int_equal(ppx_pool_submitf(p, &f, "plain", ""), 0);
    assert_int_equal(ppx_future_on_progress(f, NULL, NULL), PPX_EINVAL);
    assert_int_equal(ppx_future_progress(f, NULL, &t), PPX_EINVAL);
    assert_int_equal(support_future_int(f), 1);
    ppx_future_unref(f);
    ppx_pool_free(p);
}

int main(void)
{
    turn = mmap(NULL, sizeof *turn, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    if (turn == MAP_FAILED)
        return 1;
    ppx_register("steps", fn_steps, NULL);
    ppx_register("halfway", fn_halfway, NULL);
    ppx_register("scribble", fn_scribble, NULL);
    ppx_register("plain", fn_plain, NULL);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_blocking_future_sees_the_last_values, setup, teardown),
        cmocka_unit_test_setup_teardown(test_blocking_user_sees_progress_while_it_runs, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_hostile_progress_words_stay_clamped, setup, teardown),
        cmocka_unit_test_setup_teardown(test_call_without_progress_calls_no_callback, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_awaitable_progress_on_the_loop_thread, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_thread_executor_progress, setup, teardown),
        cmocka_unit_test_setup_teardown(test_progress_taken_in_by_another_thread, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_argument_checks, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
