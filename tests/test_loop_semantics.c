/* Where the loop API follows asyncio (issue 14), each test named after the
 * asyncio behaviour it checks (Lib/test/test_asyncio/test_tasks.py,
 * test_taskgroups.py). Most use "manual" awaitables the test resolves by
 * hand, so every ordering is forced and nothing depends on timing: an
 * empty task group is pending until closed (then DONE) or cancelled; one
 * given an unknown thread call fails with its NameError once closed. */
#include "support.h"
#include "ppx.h"

#include <stdlib.h>
#include <string.h>
#include <uv.h>

static int fn_add(ppx_call *c, void *u)
{
    (void)u;
    int64_t a, b;
    ppx_call_arg_int(c, 0, &a);
    ppx_call_arg_int(c, 1, &b);
    return ppx_return_int(c, a + b);
}

static int fn_forever(ppx_call *c, void *u)
{
    (void)u;
    while (!ppx_call_cancelled(c))
        support_sleep_ms(1);
    return ppx_return_nil(c);
}

typedef struct fixture {
    uv_loop_t loop, other;
} fixture;

static int setup(void **state)
{
    fixture *fx = calloc(1, sizeof *fx);
    uv_loop_init(&fx->loop);
    uv_loop_init(&fx->other);
    *state = fx;
    return 0;
}

static int teardown(void **state)
{
    fixture *fx = *state;
    uv_run(&fx->loop, UV_RUN_DEFAULT);
    uv_run(&fx->other, UV_RUN_DEFAULT);
    assert_int_equal(uv_loop_close(&fx->loop), 0);
    assert_int_equal(uv_loop_close(&fx->other), 0);
    free(fx);
    return 0;
}

static ppx_awaitable *manual(uv_loop_t *loop)
{
    ppx_awaitable *p;
    assert_int_equal(ppx_task_group(loop, &p), 0);
    return p;
}

static void finish(ppx_awaitable *p)
{
    assert_int_equal(ppx_task_group_close(p), 0);
    assert_int_equal(ppx_awaitable_state(p), PPX_DONE);
}

/* Fails p with "NameError" naming fn (fn must not be registered). */
static void fail_with(uv_loop_t *loop, ppx_awaitable *p, const char *fn)
{
    ppx_awaitable *t;
    assert_int_equal(ppx_run_in_thread(loop, fn, NULL, 0, &t), 0);
    assert_int_equal(ppx_awaitable_state(t), PPX_FAILED);
    assert_int_equal(ppx_task_group_add(p, t), 0);
    ppx_awaitable_unref(t);
    assert_int_equal(ppx_task_group_close(p), 0);
    assert_int_equal(ppx_awaitable_state(p), PPX_FAILED);
}

/* Drops p, settling it first so that nothing is left pending. */
static void drop(ppx_awaitable *p)
{
    if (!ppx_awaitable_done(p))
        ppx_awaitable_cancel(p);
    ppx_awaitable_unref(p);
}

static uint64_t uint_value(ppx_awaitable *aw)
{
    ppx_value v;
    uint64_t u;
    assert_int_equal(ppx_awaitable_value(aw, &v), 0);
    assert_int_equal(ppx_value_uint(v, &u), 0);
    return u;
}

static bool wait_done(ppx_awaitable *w, size_t i)
{
    bool done = false;
    assert_int_equal(ppx_wait_done(w, i, &done), 0);
    return done;
}

/* ---- 1. ppx_wait's done and pending sets -------------------------------- */

/* test_wait_first_completed: done = {b}, pending = {a}. */
static void test_wait_first_completed_returns_done_and_pending(void **state)
{
    fixture *fx = *state;
    ppx_awaitable *a = manual(&fx->loop), *b = manual(&fx->loop), *w;
    ppx_awaitable *items[] = {a, b};
    assert_int_equal(ppx_wait(&fx->loop, items, 2, PPX_FIRST_COMPLETED, -1, &w), 0);
    bool done = true;
    assert_int_equal(ppx_wait_done(w, 0, &done), PPX_EPENDING);
    finish(b);
    assert_int_equal(ppx_awaitable_state(w), PPX_DONE);
    assert_int_equal(uint_value(w), 1);
    assert_false(wait_done(w, 0));
    assert_true(wait_done(w, 1));
    /* The sets are those of the moment the wait returned. */
    finish(a);
    assert_false(wait_done(w, 0));
    assert_int_equal(ppx_wait_done(w, 2, &done), PPX_EINDEX);
    assert_int_equal(ppx_wait_done(w, 0, NULL), PPX_EINVAL);
    assert_int_equal(ppx_wait_done(a, 0, &done), PPX_EBADOBJ); /* not a wait */
    assert_int_equal(ppx_wait_done(NULL, 0, &done), PPX_EBADOBJ);
    drop(w);
    drop(a);
    drop(b);
}

/* test_wait_first_exception: the failed child is done, the other pending. */
static void test_wait_first_exception_puts_the_failed_child_in_done(void **state)
{
    fixture *fx = *state;
    ppx_awaitable *a = manual(&fx->loop), *b = manual(&fx->loop), *w, *wf;
    ppx_awaitable *items[] = {a, b};
    assert_int_equal(ppx_wait(&fx->loop, items, 2, PPX_FIRST_EXCEPTION, -1, &w), 0);
    assert_int_equal(ppx_wait_for(&fx->loop, a, -1, &wf), 0);
    fail_with(&fx->loop, b, "no_such_function");
    assert_int_equal(ppx_awaitable_state(w), PPX_DONE);
    assert_false(wait_done(w, 0));
    assert_true(wait_done(w, 1));
    bool done;
    assert_int_equal(ppx_wait_done(wf, 0, &done), PPX_EBADOBJ); /* wait_for: no sets */
    drop(wf);
    drop(w);
    drop(a);
    drop(b);
}

/* asyncio.wait raises CancelledError when cancelled: no sets to read. */
static void test_wait_cancelled_has_no_sets(void **state)
{
    fixture *fx = *state;
    ppx_awaitable *a = manual(&fx->loop), *w;
    assert_int_equal(ppx_wait(&fx->loop, &a, 1, PPX_ALL_COMPLETED, -1, &w), 0);
    assert_int_equal(ppx_awaitable_cancel(w), 0);
    bool done;
    assert_int_equal(ppx_wait_done(w, 0, &done), PPX_ECANCELED);
    assert_false(ppx_awaitable_done(a)); /* wait leaves its children alone */
    drop(w);
    drop(a);
}

/* ---- 5. documented edges ------------------------------------------------ */

/* asyncio.wait(set()) raises ValueError; ppx_wait resolves DONE with 0. */
static void test_wait_with_no_children_resolves_at_once_with_zero(void **state)
{
    fixture *fx = *state;
    static const int when[] = {PPX_FIRST_COMPLETED, PPX_FIRST_EXCEPTION, PPX_ALL_COMPLETED};
    for (size_t k = 0; k < 3; k++) {
        ppx_awaitable *w;
        assert_int_equal(ppx_wait(&fx->loop, NULL, 0, when[k], -1, &w), 0);
        assert_int_equal(ppx_awaitable_state(w), PPX_DONE);
        assert_int_equal(uint_value(w), 0);
        ppx_awaitable_unref(w);
    }
}

/* asyncio's as_completed(timeout=) ends at its timeout; ppx's iterator
 * may be asked again and resumes where it was. */
static void test_as_completed_next_resumes_after_a_timeout(void **state)
{
    fixture *fx = *state;
    ppx_awaitable *a = manual(&fx->loop), *b = manual(&fx->loop), *got = NULL;
    ppx_awaitable *items[] = {a, b};
    ppx_as_completed *it;
    assert_int_equal(ppx_as_completed_new(&fx->loop, items, 2, &it), 0);
    assert_int_equal(ppx_as_completed_next(it, 0, &got), PPX_ETIMEDOUT);
    assert_int_equal(ppx_as_completed_next(it, 1, &got), PPX_ETIMEDOUT);
    assert_null(got);
    finish(b);
    assert_int_equal(ppx_as_completed_next(it, 0, &got), 0);
    assert_ptr_equal(got, b);
    assert_int_equal(ppx_as_completed_next(it, 0, &got), PPX_ETIMEDOUT);
    finish(a);
    assert_int_equal(ppx_as_completed_next(it, -1, &got), 0);
    assert_ptr_equal(got, a);
    assert_int_equal(ppx_as_completed_next(it, -1, &got), PPX_EDONE);
    ppx_as_completed_free(it);
    drop(a);
    drop(b);
}

/* ---- 2. as_completed removes duplicates -------------------------------- */

/* test_as_completed_duplicate_coroutines: as_completed takes a set. */
static void test_as_completed_hands_back_a_duplicate_once(void **state)
{
    fixture *fx = *state;
    ppx_awaitable *a = manual(&fx->loop), *b = manual(&fx->loop), *d = manual(&fx->loop);
    finish(d); /* finished before: handed back first */
    ppx_awaitable *items[] = {a, d, b, a, d, a}, *got;
    ppx_as_completed *it;
    assert_int_equal(ppx_as_completed_new(&fx->loop, items, 6, &it), 0);
    assert_int_equal(ppx_as_completed_next(it, 0, &got), 0);
    assert_ptr_equal(got, d);
    finish(a);
    finish(b);
    assert_int_equal(ppx_as_completed_next(it, 0, &got), 0);
    assert_ptr_equal(got, a);
    assert_int_equal(ppx_as_completed_next(it, 0, &got), 0);
    assert_ptr_equal(got, b);
    assert_int_equal(ppx_as_completed_next(it, 0, &got), PPX_EDONE);
    ppx_as_completed_free(it);
    drop(a);
    drop(b);
    drop(d);
}

/* ---- 3. children of another loop --------------------------------------- */

static void assert_refused_as_foreign(int rc, const char *fn)
{
    assert_int_equal(rc, PPX_EINVAL);
    assert_non_null(strstr(ppx_last_error(), fn));
    assert_non_null(strstr(ppx_last_error(), "another loop"));
}

/* test_constructor_heterogenous_futures: gather refuses futures of
 * another loop (ValueError); wait, wait_for, as_completed and TaskGroup's
 * create_task run on one loop too. */
static void test_futures_of_another_loop_are_refused(void **state)
{
    fixture *fx = *state;
    ppx_awaitable *mine = manual(&fx->loop), *theirs = manual(&fx->other), *out = NULL;
    ppx_awaitable *items[] = {mine, theirs};
    ppx_as_completed *it = NULL;
    assert_refused_as_foreign(ppx_gather(&fx->loop, items, 2, 0, &out), "ppx_gather");
    assert_non_null(strstr(ppx_last_error(), "awaitable 1"));
    assert_refused_as_foreign(ppx_wait(&fx->loop, items, 2, PPX_ALL_COMPLETED, -1, &out),
                              "ppx_wait");
    assert_refused_as_foreign(ppx_wait_for(&fx->loop, theirs, -1, &out), "ppx_wait_for");
    assert_refused_as_foreign(ppx_as_completed_new(&fx->loop, items, 2, &it),
                              "ppx_as_completed_new");
    ppx_awaitable *g = manual(&fx->loop);
    assert_refused_as_foreign(ppx_task_group_add(g, theirs), "ppx_task_group_add");
    assert_null(out);
    assert_null(it);
    /* Nothing was taken: the children are untouched and still the caller's. */
    assert_false(ppx_awaitable_done(theirs));
    assert_int_equal(ppx_wait_for(&fx->other, theirs, -1, &out), 0);
    drop(out);
    drop(g);
    drop(mine);
    drop(theirs);
}

/* ---- 4. one rule for timeouts ------------------------------------------ */

/* timeout=None: any negative timeout waits forever. With no timer armed,
 * running the loop finds nothing to wait for (PPX_ENOWORK) instead of
 * timing out, which is how "forever" shows without a clock. */
static void test_negative_timeout_waits_forever_like_none(void **state)
{
    fixture *fx = *state;
    ppx_awaitable *a = manual(&fx->loop), *w, *wf, *got = NULL;
    ppx_as_completed *it;
    assert_int_equal(ppx_wait(&fx->loop, &a, 1, PPX_ALL_COMPLETED, -5, &w), 0);
    assert_int_equal(ppx_wait_for(&fx->loop, a, -5, &wf), 0);
    assert_int_equal(ppx_as_completed_new(&fx->loop, &a, 1, &it), 0);
    assert_int_equal(ppx_run_until_complete(&fx->loop, w), PPX_ENOWORK);
    assert_int_equal(ppx_run_until_complete(&fx->loop, wf), PPX_ENOWORK);
    assert_int_equal(ppx_as_completed_next(it, -5, &got), PPX_ENOWORK);
    assert_false(ppx_awaitable_done(w));
    assert_false(ppx_awaitable_done(wf));
    finish(a);
    assert_int_equal(ppx_awaitable_state(w), PPX_DONE);
    assert_int_equal(ppx_awaitable_state(wf), PPX_DONE);
    assert_int_equal(ppx_as_completed_next(it, -5, &got), 0);
    assert_ptr_equal(got, a);
    ppx_as_completed_free(it);
    drop(w);
    drop(wf);
    drop(a);
}

/* timeout=0 polls: the answer is there before the call returns. */
static void test_zero_timeout_polls(void **state)
{
    fixture *fx = *state;
    ppx_awaitable *a = manual(&fx->loop), *w, *wf, *got = NULL;
    ppx_as_completed *it;
    assert_int_equal(ppx_wait(&fx->loop, &a, 1, PPX_ALL_COMPLETED, 0, &w), 0);
    assert_int_equal(ppx_awaitable_state(w), PPX_DONE);
    assert_int_equal(uint_value(w), 0);
    assert_false(wait_done(w, 0));
    assert_int_equal(ppx_as_completed_new(&fx->loop, &a, 1, &it), 0);
    assert_int_equal(ppx_as_completed_next(it, 0, &got), PPX_ETIMEDOUT);
    /* wait_for(aw, 0): TimeoutError, and aw is cancelled. */
    assert_int_equal(ppx_wait_for(&fx->loop, a, 0, &wf), 0);
    assert_int_equal(ppx_awaitable_state(wf), PPX_FAILED);
    assert_string_equal(ppx_awaitable_error(wf)->type, "TimeoutError");
    assert_int_equal(ppx_awaitable_state(a), PPX_CANCELLED);
    ppx_as_completed_free(it);
    drop(wf);
    drop(w);
    drop(a);
}

/* ---- 6. every error of a task group ------------------------------------ */

typedef struct chain {
    uv_loop_t *loop;
    ppx_awaitable *next; /* failed when the first one fails */
} chain;

static void fail_next(ppx_awaitable *aw, void *arg)
{
    (void)aw;
    chain *c = arg;
    fail_with(c->loop, c->next, "no_such_b");
}

/* test_taskgroup_07 and friends: children failing together end up in one
 * ExceptionGroup; siblings the group cancels are not among its errors. */
static void test_taskgroup_exception_group_holds_every_error(void **state)
{
    fixture *fx = *state;
    ppx_awaitable *g = manual(&fx->loop);
    ppx_awaitable *a = manual(&fx->loop), *b = manual(&fx->loop), *c = manual(&fx->loop);
    /* a's own callback, ahead of the group's, fails b: two tasks fail at
     * once, as two workers reporting in one turn of the loop would. */
    chain ch = {&fx->loop, b};
    assert_int_equal(ppx_awaitable_add_done_callback(a, fail_next, &ch), 0);
    assert_int_equal(ppx_task_group_add(g, a), 0);
    assert_int_equal(ppx_task_group_add(g, b), 0);
    assert_int_equal(ppx_task_group_add(g, c), 0);
    assert_int_equal(ppx_task_group_close(g), 0);
    assert_int_equal(ppx_task_group_error_count(g), 0);
    fail_with(&fx->loop, a, "no_such_a");
    assert_int_equal(ppx_awaitable_state(g), PPX_FAILED);
    assert_int_equal(ppx_awaitable_state(c), PPX_CANCELLED); /* by the group */
    assert_int_equal(ppx_task_group_error_count(g), 2);
    /* In the order the group heard of them; its own error is the first. */
    assert_non_null(strstr(ppx_task_group_error_at(g, 0)->message, "no_such_b"));
    assert_non_null(strstr(ppx_task_group_error_at(g, 1)->message, "no_such_a"));
    assert_string_equal(ppx_awaitable_error(g)->message, ppx_task_group_error_at(g, 0)->message);
    assert_null(ppx_task_group_error_at(g, 2));
    assert_int_equal(ppx_task_group_error_count(a), 1); /* a is a group too */
    assert_int_equal(ppx_task_group_error_count(NULL), 0);
    assert_null(ppx_task_group_error_at(NULL, 0));
    drop(g);
    drop(a);
    drop(b);
    drop(c);
}

/* A task cancelled from outside is no error, and a group cancelled from
 * outside reports CancelledError as its own error but lists none. */
static void test_taskgroup_cancellations_are_not_errors(void **state)
{
    fixture *fx = *state;
    ppx_awaitable *g = manual(&fx->loop), *a = manual(&fx->loop), *b = manual(&fx->loop);
    assert_int_equal(ppx_task_group_add(g, a), 0);
    assert_int_equal(ppx_task_group_add(g, b), 0);
    assert_int_equal(ppx_awaitable_cancel(a), 0);
    assert_false(ppx_awaitable_done(g));
    assert_int_equal(ppx_awaitable_cancel(g), 0);
    assert_string_equal(ppx_awaitable_error(g)->type, "CancelledError");
    assert_int_equal(ppx_task_group_error_count(g), 0);
    drop(g);
    drop(a);
    drop(b);
}

/* ---- 7. adding until the group has settled ----------------------------- */

typedef struct adder {
    ppx_awaitable *group, *task;
    int rc;
} adder;

static void add_from_callback(ppx_awaitable *aw, void *arg)
{
    (void)aw;
    adder *ad = arg;
    ad->rc = ppx_task_group_add(ad->group, ad->task);
}

/* TaskGroup.create_task works until the group is done: a task's done
 * callback may add one after the body has ended (after _close). */
static void test_taskgroup_create_task_from_a_done_callback_after_close(void **state)
{
    fixture *fx = *state;
    ppx_awaitable *g = manual(&fx->loop), *a = manual(&fx->loop), *b = manual(&fx->loop);
    adder ad = {g, b, 1};
    assert_int_equal(ppx_awaitable_add_done_callback(a, add_from_callback, &ad), 0);
    assert_int_equal(ppx_task_group_add(g, a), 0);
    assert_int_equal(ppx_task_group_close(g), 0);
    finish(a);
    assert_int_equal(ad.rc, 0);
    assert_false(ppx_awaitable_done(g)); /* b keeps it open */
    finish(b);
    assert_int_equal(ppx_awaitable_state(g), PPX_DONE);
    assert_int_equal(uint_value(g), 2);
    drop(g);
    drop(a);
    drop(b);
}

/* test_taskgroup_*: create_task on a finished group raises RuntimeError;
 * ppx says PPX_ECLOSED, and the task is left alone. */
static void test_taskgroup_refuses_tasks_once_settled(void **state)
{
    fixture *fx = *state;
    ppx_awaitable *g = manual(&fx->loop), *a = manual(&fx->loop), *late = manual(&fx->loop);
    /* This callback runs after the group's own: the group has settled. */
    adder ad = {g, late, 1};
    assert_int_equal(ppx_task_group_add(g, a), 0);
    assert_int_equal(ppx_awaitable_add_done_callback(a, add_from_callback, &ad), 0);
    assert_int_equal(ppx_task_group_close(g), 0);
    finish(a);
    assert_int_equal(ppx_awaitable_state(g), PPX_DONE);
    assert_int_equal(ad.rc, PPX_ECLOSED);
    assert_int_equal(ppx_task_group_add(g, late), PPX_ECLOSED);
    assert_false(ppx_awaitable_done(late));
    assert_int_equal(uint_value(g), 1);
    drop(g);
    drop(a);
    drop(late);
}

/* ---- 8. per-call options through run_in_executor ----------------------- */

/* wait_for's deadline, enforced by the pool: the running call is stopped
 * and the awaitable fails with TimeoutError. */
static void test_run_in_executor_ex_deadline_stops_the_call(void **state)
{
    fixture *fx = *state;
    ppx_pool *pool;
    ppx_pool_options o = PPX_POOL_OPTIONS(.workers = 1);
    support_valgrind_sizes(&o);
    assert_int_equal(ppx_pool_new(&o, &pool), 0);
    ppx_call_options opts = PPX_CALL_OPTIONS(.timeout_ms = 50);
    ppx_awaitable *slow, *quick;
    assert_int_equal(ppx_run_in_executor_ex(&fx->loop, pool, "forever", NULL, 0, &opts, &slow), 0);
    assert_int_equal(ppx_run_in_executor_ex(&fx->loop, pool, "add", "\x92\x01\x02", 3, NULL, &quick), 0);
    assert_int_equal(ppx_run_until_complete(&fx->loop, slow), 0);
    assert_int_equal(ppx_awaitable_state(slow), PPX_FAILED);
    assert_string_equal(ppx_awaitable_error(slow)->type, "TimeoutError");
    assert_int_equal(ppx_run_until_complete(&fx->loop, quick), 0);
    ppx_value v;
    int64_t sum;
    assert_int_equal(ppx_awaitable_value(quick, &v), 0);
    assert_int_equal(ppx_value_int(v, &sum), 0);
    assert_int_equal(sum, 3);
    assert_int_equal(ppx_run_in_executor_ex(NULL, pool, "add", NULL, 0, NULL, &quick), PPX_EINVAL);
    ppx_awaitable_unref(slow);
    ppx_awaitable_unref(quick);
    ppx_pool_free(pool);
    uv_run(&fx->loop, UV_RUN_DEFAULT);
    assert_true(support_no_children());
}

/* A thread cannot be stopped: a deadline is refused there, no deadline
 * (0 or negative) runs as run_in_executor does. */
static void test_run_in_executor_ex_thread_executor_refuses_a_deadline(void **state)
{
    fixture *fx = *state;
    ppx_call_options opts = PPX_CALL_OPTIONS(.timeout_ms = 50);
    ppx_awaitable *aw = NULL;
    assert_int_equal(ppx_run_in_executor_ex(&fx->loop, ppx_thread_pool(), "add", "\x92\x01\x02", 3,
                                            &opts, &aw),
                     PPX_EINVAL);
    assert_null(aw);
    assert_non_null(strstr(ppx_last_error(), "thread executor"));
    opts.timeout_ms = -1;
    assert_int_equal(ppx_run_in_executor_ex(&fx->loop, ppx_thread_pool(), "add", "\x92\x01\x02", 3,
                                            &opts, &aw),
                     0);
    assert_int_equal(ppx_run_until_complete(&fx->loop, aw), 0);
    ppx_value v;
    int64_t sum;
    assert_int_equal(ppx_awaitable_value(aw, &v), 0);
    assert_int_equal(ppx_value_int(v, &sum), 0);
    assert_int_equal(sum, 3);
    ppx_awaitable_unref(aw);
}

int main(void)
{
    ppx_register("add", fn_add, NULL);
    ppx_register("forever", fn_forever, NULL);
    const struct CMUnitTest tests[] = {
#define T(name) cmocka_unit_test_setup_teardown(name, setup, teardown)
        T(test_wait_first_completed_returns_done_and_pending),
        T(test_wait_first_exception_puts_the_failed_child_in_done),
        T(test_wait_cancelled_has_no_sets),
        T(test_wait_with_no_children_resolves_at_once_with_zero),
        T(test_as_completed_next_resumes_after_a_timeout),
        T(test_as_completed_hands_back_a_duplicate_once),
        T(test_futures_of_another_loop_are_refused),
        T(test_negative_timeout_waits_forever_like_none),
        T(test_zero_timeout_polls),
        T(test_taskgroup_exception_group_holds_every_error),
        T(test_taskgroup_cancellations_are_not_errors),
        T(test_taskgroup_create_task_from_a_done_callback_after_close),
        T(test_taskgroup_refuses_tasks_once_settled),
        T(test_run_in_executor_ex_thread_executor_refuses_a_deadline),
        T(test_run_in_executor_ex_deadline_stops_the_call),
#undef T
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
