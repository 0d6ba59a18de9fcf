/*
 * Conformance with CPython's asyncio tests, part 4: shield, futures the
 * test resolves by hand, duplicates, children of another loop and task
 * group error lists. From Lib/test/test_asyncio/test_tasks.py (shield,
 * wait/as_completed duplicates, gather's heterogeneous loops and
 * FutureGatherTests), test_taskgroups.py (_19, _20a, _24, _25) and
 * Lib/test/test_concurrent_futures/test_future.py (multiple set_result /
 * set_exception), ported to ppx_shield and ppx_awaitable_create.
 *
 * Naming as in test_conformance_asyncio.c: <file>__<method>[__<variant>],
 * the CPython class named in the comment above each test.
 *
 * Python's self.new_future(loop) is ppx_awaitable_create;
 * test_utils.run_briefly is one uv_run(UV_RUN_NOWAIT). Where ppx
 * deliberately differs, the test asserts ppx's documented behaviour and
 * names the document.
 */
#include "conformance.h"
#include "support.h"

#include <stdlib.h>
#include <string.h>
#include <uv.h>

typedef conf_fixture fixture;

static int setup(void **state)
{
    return conf_setup_loop(state, 2);
}

static int teardown(void **state)
{
    return conf_teardown(state);
}

static ppx_awaitable *future(fixture *fx)
{
    ppx_awaitable *aw;
    assert_int_equal(ppx_awaitable_create(&fx->loop, &aw), 0);
    return aw;
}

static ppx_awaitable *shield(fixture *fx, ppx_awaitable *aw)
{
    ppx_awaitable *out;
    assert_int_equal(ppx_shield(&fx->loop, aw, &out), 0);
    return out;
}

static void run_briefly(fixture *fx)
{
    uv_run(&fx->loop, UV_RUN_NOWAIT);
}

/* ---- test_tasks.py: BaseTaskTests, shield ------------------------------- */

/* BaseTaskTests.test_shield_result. */
static void test_tasks__test_shield_result(void **state)
{
    fixture *fx = *state;
    ppx_awaitable *inner = future(fx), *outer = shield(fx, inner);
    assert_int_equal(conf_set_int(inner, 42), 0);
    assert_int_equal(ppx_run_until_complete(&fx->loop, outer), 0);
    assert_int_equal(conf_aw_int(outer), 42);
    ppx_awaitable *a[] = {inner, outer};
    conf_unref_all(a, 2);
}

/* BaseTaskTests.test_shield_exception: the outer fails with the inner's
 * error (type and message; ppx errors are copied, not shared objects). */
static void test_tasks__test_shield_exception(void **state)
{
    fixture *fx = *state;
    ppx_awaitable *inner = future(fx), *outer = shield(fx, inner);
    assert_int_equal(ppx_awaitable_set_error(inner, "Exception", "boom"), 0);
    run_briefly(fx);
    assert_int_equal(ppx_awaitable_state(outer), PPX_FAILED);
    assert_string_equal(conf_aw_etype(outer), "Exception");
    assert_string_equal(ppx_awaitable_error(outer)->message, "boom");
    ppx_awaitable *a[] = {inner, outer};
    conf_unref_all(a, 2);
}

/* BaseTaskTests.test_shield_cancel_inner. */
static void test_tasks__test_shield_cancel_inner(void **state)
{
    fixture *fx = *state;
    ppx_awaitable *inner = future(fx), *outer = shield(fx, inner);
    assert_int_equal(ppx_awaitable_cancel(inner), 0);
    run_briefly(fx);
    assert_int_equal(ppx_awaitable_state(outer), PPX_CANCELLED);
    ppx_awaitable *a[] = {inner, outer};
    conf_unref_all(a, 2);
}

/* BaseTaskTests.test_shield_cancel_outer: the inner is not cancelled. */
static void test_tasks__test_shield_cancel_outer(void **state)
{
    fixture *fx = *state;
    ppx_awaitable *inner = future(fx), *outer = shield(fx, inner);
    assert_int_equal(ppx_awaitable_cancel(outer), 0);
    run_briefly(fx);
    assert_int_equal(ppx_awaitable_state(outer), PPX_CANCELLED);
    assert_false(ppx_awaitable_done(inner));
    assert_int_equal(ppx_awaitable_cancel(inner), 0);
    ppx_awaitable *a[] = {inner, outer};
    conf_unref_all(a, 2);
}

/* BaseTaskTests.test_shield_cancel_outer_result: the inner then resolves
 * on its own; the outer stays CANCELLED. */
static void test_tasks__test_shield_cancel_outer_result(void **state)
{
    fixture *fx = *state;
    ppx_awaitable *inner = future(fx), *outer = shield(fx, inner);
    assert_int_equal(ppx_awaitable_cancel(outer), 0);
    assert_int_equal(conf_set_int(inner, 1), 0);
    run_briefly(fx);
    assert_int_equal(conf_aw_int(inner), 1);
    assert_int_equal(ppx_awaitable_state(outer), PPX_CANCELLED);
    ppx_awaitable *a[] = {inner, outer};
    conf_unref_all(a, 2);
}

/* BaseTaskTests.test_shield_cancel_outer_exception (and
 * test_shield_duplicate_log_once). Python logs the inner's exception,
 * once, as never retrieved; ppx has no such log (ppx.h: an error is
 * borrowed from its awaitable and stays readable there): the inner keeps
 * its error, the outer stays CANCELLED. */
static void test_tasks__test_shield_cancel_outer_exception(void **state)
{
    fixture *fx = *state;
    ppx_awaitable *inner = future(fx), *outer = shield(fx, inner);
    assert_int_equal(ppx_awaitable_cancel(outer), 0);
    assert_int_equal(ppx_awaitable_set_error(inner, "Exception", "foo"), 0);
    run_briefly(fx);
    assert_int_equal(ppx_awaitable_state(inner), PPX_FAILED);
    assert_string_equal(ppx_awaitable_error(inner)->message, "foo");
    assert_int_equal(ppx_awaitable_state(outer), PPX_CANCELLED);
    ppx_awaitable *a[] = {inner, outer};
    conf_unref_all(a, 2);
}

/* BaseTaskTests.test_shield_shortcut: shielding a finished future gives
 * a finished outer (ppx.h, ppx_shield: "so has the outer on return"). */
static void test_tasks__test_shield_shortcut(void **state)
{
    fixture *fx = *state;
    ppx_awaitable *fut = future(fx);
    assert_int_equal(conf_set_int(fut, 42), 0);
    ppx_awaitable *outer = shield(fx, fut);
    assert_true(ppx_awaitable_done(outer));
    assert_int_equal(conf_aw_int(outer), 42);
    ppx_awaitable *a[] = {fut, outer};
    conf_unref_all(a, 2);
}

/* BaseTaskTests.test_shield_effect: cancelling the outer leaves the
 * shielded call running to its end (a real call, held by its gate). */
static void test_tasks__test_shield_effect(void **state)
{
    fixture *fx = *state;
    ppx_awaitable *inner;
    assert_int_equal(ppx_run_in_executorf(&fx->loop, fx->pool, &inner, "gated", "lls", 1LL, 7LL, "ok"), 0);
    ppx_awaitable *outer = shield(fx, inner);
    conf_wait_started(1);
    assert_int_equal(ppx_awaitable_cancel(outer), 0);
    assert_int_equal(ppx_awaitable_state(outer), PPX_CANCELLED);
    assert_false(ppx_awaitable_done(inner));
    conf_release(1);
    assert_int_equal(ppx_run_until_complete(&fx->loop, inner), 0);
    assert_int_equal(conf_aw_int(inner), 7);
    assert_int_equal(atomic_load(&conf->noticed), 0);
    ppx_awaitable *a[] = {inner, outer};
    conf_unref_all(a, 2);
}

/* BaseTaskTests.test_shield_gather: a shielded gather goes on. */
static void test_tasks__test_shield_gather(void **state)
{
    fixture *fx = *state;
    ppx_awaitable *c[2] = {future(fx), future(fx)}, *parent;
    assert_int_equal(ppx_gather(&fx->loop, c, 2, 0, &parent), 0);
    ppx_awaitable *outer = shield(fx, parent);
    run_briefly(fx);
    assert_int_equal(ppx_awaitable_cancel(outer), 0);
    run_briefly(fx);
    assert_int_equal(ppx_awaitable_state(outer), PPX_CANCELLED);
    assert_int_equal(conf_set_int(c[0], 1), 0);
    assert_int_equal(conf_set_int(c[1], 2), 0);
    run_briefly(fx);
    char buf[32];
    assert_string_equal(conf_aw_text(parent, buf, sizeof buf), "[1, 2]");
    ppx_awaitable *a[] = {c[0], c[1], parent, outer};
    conf_unref_all(a, 4);
}

/* BaseTaskTests.test_gather_shield: cancelling a gather of shields
 * cancels the shields, not the children behind them. */
static void test_tasks__test_gather_shield(void **state)
{
    fixture *fx = *state;
    ppx_awaitable *child[2] = {future(fx), future(fx)};
    ppx_awaitable *inner[2] = {shield(fx, child[0]), shield(fx, child[1])}, *parent;
    assert_int_equal(ppx_gather(&fx->loop, inner, 2, 0, &parent), 0);
    run_briefly(fx);
    assert_int_equal(ppx_awaitable_cancel(parent), 0);
    run_briefly(fx);
    assert_string_equal(conf_aw_etype(parent), "CancelledError");
    assert_int_equal(ppx_awaitable_state(inner[0]), PPX_CANCELLED);
    assert_int_equal(ppx_awaitable_state(inner[1]), PPX_CANCELLED);
    assert_int_equal(conf_set_int(child[0], 1), 0);
    assert_int_equal(conf_set_int(child[1], 2), 0);
    run_briefly(fx);
    assert_int_equal(conf_aw_int(child[0]), 1);
    assert_int_equal(conf_aw_int(child[1]), 2);
    ppx_awaitable *a[] = {child[0], child[1], inner[0], inner[1], parent};
    conf_unref_all(a, 5);
}

/* ---- test_future.py (concurrent.futures): FutureTests ------------------- */

/* FutureTests.test_multiple_set_result: the second set is refused
 * (InvalidStateError: PPX_EDONE) and the first result stays. */
static void test_future__test_multiple_set_result(void **state)
{
    fixture *fx = *state;
    ppx_awaitable *f = future(fx);
    assert_int_equal(conf_set_int(f, 1), 0);
    assert_int_equal(conf_set_int(f, 2), PPX_EDONE);
    assert_int_equal(ppx_awaitable_set_error(f, "ValueError", ""), PPX_EDONE);
    assert_true(ppx_awaitable_done(f));
    assert_int_equal(conf_aw_int(f), 1);
    ppx_awaitable_unref(f);
}

/* FutureTests.test_multiple_set_exception. */
static void test_future__test_multiple_set_exception(void **state)
{
    fixture *fx = *state;
    ppx_awaitable *f = future(fx);
    assert_int_equal(ppx_awaitable_set_error(f, "ValueError", "first"), 0);
    assert_int_equal(ppx_awaitable_set_error(f, "Exception", "second"), PPX_EDONE);
    assert_int_equal(conf_set_int(f, 1), PPX_EDONE);
    assert_string_equal(conf_aw_etype(f), "ValueError");
    assert_string_equal(ppx_awaitable_error(f)->message, "first");
    ppx_awaitable_unref(f);
}

/* test_multiple_set_result with the first set on another thread: it
 * decides even before the loop has taken it in; later sets and a cancel
 * get PPX_EDONE (ppx.h, ppx_awaitable_create). */
static void test_future__test_multiple_set_result__other_thread(void **state)
{
    fixture *fx = *state;
    ppx_awaitable *f = future(fx);
    conf_setter s = {f, 1, NULL, -1};
    conf_set_from_thread(&s);
    assert_int_equal(conf_set_int(f, 2), PPX_EDONE);
    assert_int_equal(ppx_awaitable_cancel(f), PPX_EDONE);
    assert_int_equal(ppx_run_until_complete(&fx->loop, f), 0);
    assert_int_equal(conf_aw_int(f), 1);
    ppx_awaitable_unref(f);
}

/* ---- test_tasks.py: duplicates, loops, FutureGatherTests ----------------- */

/* BaseTaskTests.test_wait_duplicate_coroutines: wait([c, c, d]) ends with
 * nothing pending. ppx counts each position (ppx.h, ppx_wait), so the
 * count is 3 where Python's done set has 2 members. */
static void test_tasks__test_wait_duplicate_coroutines(void **state)
{
    fixture *fx = *state;
    ppx_awaitable *c = future(fx), *d = future(fx), *w;
    ppx_awaitable *items[] = {c, c, d};
    assert_int_equal(ppx_wait(&fx->loop, items, 3, PPX_ALL_COMPLETED, -1, &w), 0);
    assert_int_equal(conf_set_int(c, 1), 0);
    assert_int_equal(conf_set_int(d, 2), 0);
    assert_int_equal(ppx_run_until_complete(&fx->loop, w), 0);
    assert_int_equal(conf_aw_int(w), 3);
    for (size_t i = 0; i < 3; i++) {
        bool done;
        assert_int_equal(ppx_wait_done(w, i, &done), 0);
        assert_true(done);
    }
    ppx_awaitable *a[] = {c, d, w};
    conf_unref_all(a, 3);
}

/* BaseTaskTests.test_as_completed_duplicate_coroutines: each once. */
static void test_tasks__test_as_completed_duplicate_coroutines(void **state)
{
    fixture *fx = *state;
    ppx_awaitable *c = future(fx), *d = future(fx), *got;
    ppx_awaitable *items[] = {c, c, d};
    ppx_as_completed *it;
    assert_int_equal(ppx_as_completed_new(&fx->loop, items, 3, &it), 0);
    assert_int_equal(conf_set_int(d, 2), 0);
    assert_int_equal(conf_set_int(c, 1), 0);
    int sum = 0, n = 0;
    while (ppx_as_completed_next(it, -1, &got) == 0) {
        sum += (int)conf_aw_int(got);
        n++;
    }
    assert_int_equal(n, 2);
    assert_int_equal(sum, 3);
    ppx_as_completed_free(it);
    ppx_awaitable *a[] = {c, d};
    conf_unref_all(a, 2);
}

/* GatherTestsBase.test_constructor_heterogenous_futures: ValueError is
 * PPX_EINVAL with ppx_last_error naming the function (ppx.h). ppx makes
 * the same check in wait, as_completed, wait_for and task groups. */
static void test_tasks__test_constructor_heterogenous_futures(void **state)
{
    fixture *fx = *state;
    uv_loop_t other;
    uv_loop_init(&other);
    ppx_awaitable *f1 = future(fx), *f2, *out = NULL, *g;
    assert_int_equal(ppx_awaitable_create(&other, &f2), 0);
    ppx_awaitable *items[] = {f1, f2};
    assert_int_equal(ppx_gather(&fx->loop, items, 2, 0, &out), PPX_EINVAL);
    assert_true(ppx_last_error()[0] != '\0');
    assert_int_equal(ppx_wait(&fx->loop, items, 2, PPX_ALL_COMPLETED, -1, &out), PPX_EINVAL);
    assert_true(ppx_last_error()[0] != '\0');
    ppx_as_completed *it = NULL;
    assert_int_equal(ppx_as_completed_new(&fx->loop, items, 2, &it), PPX_EINVAL);
    assert_null(it);
    assert_int_equal(ppx_wait_for(&fx->loop, f2, -1, &out), PPX_EINVAL);
    assert_null(out);
    assert_int_equal(ppx_task_group(&fx->loop, &g), 0);
    assert_int_equal(ppx_task_group_add(g, f2), PPX_EINVAL);
    assert_int_equal(ppx_task_group_close(g), 0);
    run_briefly(fx);
    assert_int_equal(conf_aw_int(g), 0);
    assert_int_equal(ppx_awaitable_cancel(f1), 0);
    assert_int_equal(ppx_awaitable_cancel(f2), 0);
    ppx_awaitable *a[] = {f1, f2, g};
    conf_unref_all(a, 3);
    uv_run(&other, UV_RUN_DEFAULT);
    assert_int_equal(uv_loop_close(&other), 0);
}

static ppx_awaitable *gather(fixture *fx, ppx_awaitable **c, size_t n, int flags)
{
    ppx_awaitable *g;
    assert_int_equal(ppx_gather(&fx->loop, c, n, flags, &g), 0);
    return g;
}

/* FutureGatherTests.test_success (_check_success). */
static void test_tasks__test_success__futures(void **state)
{
    fixture *fx = *state;
    ppx_awaitable *c[3] = {future(fx), future(fx), future(fx)};
    ppx_awaitable *g = gather(fx, c, 3, 0);
    assert_int_equal(conf_set_int(c[1], 1), 0);
    assert_int_equal(conf_set_int(c[0], 2), 0);
    run_briefly(fx);
    assert_false(ppx_awaitable_done(g));
    assert_int_equal(conf_set_int(c[2], 3), 0);
    run_briefly(fx);
    char buf[32];
    assert_string_equal(conf_aw_text(g, buf, sizeof buf), "[2, 1, 3]");
    conf_unref_all(c, 3);
    ppx_awaitable_unref(g);
}

/* FutureGatherTests.test_one_exception: the gather fails with b's error.
 * Differs on purpose: ppx's gather then cancels its other children (ppx.h,
 * ppx_gather), so setting c afterwards gets PPX_EDONE where asyncio
 * leaves c to its owner. */
static void test_tasks__test_one_exception__futures(void **state)
{
    fixture *fx = *state;
    ppx_awaitable *c[5] = {future(fx), future(fx), future(fx), future(fx), future(fx)};
    ppx_awaitable *g = gather(fx, c, 5, 0);
    assert_int_equal(conf_set_int(c[0], 1), 0);
    assert_int_equal(ppx_awaitable_set_error(c[1], "ZeroDivisionError", "b"), 0);
    run_briefly(fx);
    assert_int_equal(ppx_awaitable_state(g), PPX_FAILED);
    assert_string_equal(conf_aw_etype(g), "ZeroDivisionError");
    assert_string_equal(ppx_awaitable_error(g)->message, "b");
    for (size_t i = 2; i < 5; i++)
        assert_int_equal(ppx_awaitable_state(c[i]), PPX_CANCELLED);
    assert_int_equal(conf_set_int(c[2], 3), PPX_EDONE);
    conf_unref_all(c, 5);
    ppx_awaitable_unref(g);
}

/* FutureGatherTests.test_return_exceptions: all four gathered, the
 * failed ones nil in the array with their errors on the children
 * (ppx.h, PPX_GATHER_RETURN_ERRORS). */
static void test_tasks__test_return_exceptions__futures(void **state)
{
    fixture *fx = *state;
    ppx_awaitable *c[4] = {future(fx), future(fx), future(fx), future(fx)};
    ppx_awaitable *g = gather(fx, c, 4, PPX_GATHER_RETURN_ERRORS);
    assert_int_equal(conf_set_int(c[1], 3), 0);
    assert_int_equal(conf_set_int(c[0], 1), 0);
    assert_int_equal(ppx_awaitable_set_error(c[2], "ZeroDivisionError", "exc1"), 0);
    run_briefly(fx);
    assert_false(ppx_awaitable_done(g));
    assert_int_equal(ppx_awaitable_set_error(c[3], "RuntimeError", "exc2"), 0);
    run_briefly(fx);
    char buf[32];
    assert_string_equal(conf_aw_text(g, buf, sizeof buf), "[1, 3, None, None]");
    assert_string_equal(ppx_awaitable_error(ppx_gather_child(g, 2))->message, "exc1");
    assert_string_equal(ppx_awaitable_error(ppx_gather_child(g, 3))->message, "exc2");
    conf_unref_all(c, 4);
    ppx_awaitable_unref(g);
}

/* ---- test_taskgroups.py: TestTaskGroup ------------------------------------ */

/* TestTaskGroup.test_taskgroup_19 and _20a: crash_soon fails the group,
 * whose cancel reaches nested(), which raises in its cleanup: both errors
 * are in the ExceptionGroup. In ppx a cancel resolves a task at once, so
 * the only task that can fail after the group's cancel is one whose
 * outcome another thread had already set (ppx.h, ppx_awaitable_cancel:
 * PPX_EDONE, the set "resolves it on a coming turn"); that is nested()
 * here. ppx_task_group_error_at lists both, in the order learnt; ppx has
 * no BaseException, so _20a's MyBaseExc is one more type name. */
static void taskgroup_two_errors(fixture *fx, const char *nested_type)
{
    ppx_awaitable *g, *crash = future(fx), *nested = future(fx);
    assert_int_equal(ppx_task_group(&fx->loop, &g), 0);
    assert_int_equal(ppx_task_group_add(g, crash), 0);
    assert_int_equal(ppx_task_group_add(g, nested), 0);
    assert_int_equal(ppx_task_group_close(g), 0);
    conf_setter s = {nested, 0, nested_type, -1};
    conf_set_from_thread(&s);
    assert_int_equal(ppx_awaitable_set_error(crash, "ZeroDivisionError", "division by zero"), 0);
    assert_int_equal(ppx_run_until_complete(&fx->loop, g), 0);
    assert_int_equal(ppx_awaitable_state(g), PPX_FAILED);
    assert_string_equal(conf_aw_etype(g), "ZeroDivisionError");
    assert_int_equal(ppx_task_group_error_count(g), 2);
    assert_string_equal(ppx_task_group_error_at(g, 0)->type, "ZeroDivisionError");
    assert_string_equal(ppx_task_group_error_at(g, 1)->type, nested_type);
    assert_null(ppx_task_group_error_at(g, 2));
    ppx_awaitable *a[] = {crash, nested, g};
    conf_unref_all(a, 3);
}

static void test_taskgroups__test_taskgroup_19(void **state)
{
    taskgroup_two_errors(*state, "MyExc");
}

static void test_taskgroups__test_taskgroup_20a(void **state)
{
    taskgroup_two_errors(*state, "MyBaseExc");
}

typedef struct tg_ctx {
    fixture *fx;
    ppx_awaitable *g;
    ppx_awaitable *hercules;
    int hydras;
    int refused;
} tg_ctx;

static ppx_awaitable *call(fixture *fx, int x)
{
    ppx_awaitable *aw;
    assert_int_equal(ppx_run_in_executorf(&fx->loop, fx->pool, &aw, "abs", "i", x), 0);
    return aw;
}

/* Adds t to the group from a callback; a refused task is cancelled. */
static void late_add(tg_ctx *c, ppx_awaitable *t)
{
    int rc = ppx_task_group_add(c->g, t);
    if (rc != 0) {
        assert_true(rc == PPX_ECANCELED || rc == PPX_ECLOSED);
        c->refused++;
        ppx_awaitable_cancel(t);
    }
    ppx_awaitable_unref(t);
}

static void root_done(ppx_awaitable *aw, void *arg)
{
    tg_ctx *c = arg;
    assert_int_equal(ppx_awaitable_state(aw), PPX_DONE);
    late_add(c, call(c->fx, -1));
    late_add(c, call(c->fx, -2));
}

/* TestTaskGroup.test_taskgroup_24: root, the only task when the body
 * ends, adds two tasks as it finishes; the group takes them (ppx.h,
 * ppx_task_group: _add works until the group resolves) and counts 3. */
static void test_taskgroups__test_taskgroup_24(void **state)
{
    fixture *fx = *state;
    tg_ctx c = {.fx = fx};
    assert_int_equal(ppx_task_group(&fx->loop, &c.g), 0);
    ppx_awaitable *root = call(fx, 5);
    assert_int_equal(ppx_awaitable_add_done_callback(root, root_done, &c), 0);
    assert_int_equal(ppx_task_group_add(c.g, root), 0);
    assert_int_equal(ppx_task_group_close(c.g), 0);
    assert_int_equal(ppx_run_until_complete(&fx->loop, c.g), 0);
    assert_int_equal(conf_aw_int(c.g), 3);
    assert_int_equal(c.refused, 0);
    ppx_awaitable_unref(root);
    ppx_awaitable_unref(c.g);
}

static void hydra_done(ppx_awaitable *aw, void *arg);

static void spawn_hydra(tg_ctx *c)
{
    ppx_awaitable *h = call(c->fx, c->hydras);
    assert_int_equal(ppx_awaitable_add_done_callback(h, hydra_done, c), 0);
    late_add(c, h);
}

/* A hydra that ends adds two more; once ten have run, hercules fails. */
static void hydra_done(ppx_awaitable *aw, void *arg)
{
    tg_ctx *c = arg;
    if (ppx_awaitable_state(aw) != PPX_DONE || ppx_awaitable_done(c->g))
        return;
    if (++c->hydras == 10)
        assert_int_equal(ppx_awaitable_set_error(c->hercules, "ZeroDivisionError", "division by zero"), 0);
    if (ppx_awaitable_done(c->g))
        return;
    spawn_hydra(c);
    spawn_hydra(c);
}

/* TestTaskGroup.test_taskgroup_25: hydras add hydras from inside the
 * group until hercules fails it; the group's error list holds only
 * ZeroDivisionError (the hydras it cancelled add none: ppx.h,
 * ppx_task_group_error_count), and at least ten hydras ran. */
static void test_taskgroups__test_taskgroup_25(void **state)
{
    fixture *fx = *state;
    tg_ctx c = {.fx = fx, .hercules = future(fx)};
    assert_int_equal(ppx_task_group(&fx->loop, &c.g), 0);
    spawn_hydra(&c);
    assert_int_equal(ppx_task_group_add(c.g, c.hercules), 0);
    assert_int_equal(ppx_task_group_close(c.g), 0);
    assert_int_equal(ppx_run_until_complete(&fx->loop, c.g), 0);
    assert_int_equal(ppx_awaitable_state(c.g), PPX_FAILED);
    assert_int_equal(ppx_task_group_error_count(c.g), 1);
    assert_string_equal(ppx_task_group_error_at(c.g, 0)->type, "ZeroDivisionError");
    assert_true(c.hydras >= 10);
    ppx_awaitable_unref(c.hercules);
    ppx_awaitable_unref(c.g);
}

int main(void)
{
    conf_register();
#define T(name) cmocka_unit_test_setup_teardown(name, setup, teardown)
    const struct CMUnitTest tests[] = {
        T(test_tasks__test_shield_result),
        T(test_tasks__test_shield_exception),
        T(test_tasks__test_shield_cancel_inner),
        T(test_tasks__test_shield_cancel_outer),
        T(test_tasks__test_shield_cancel_outer_result),
        T(test_tasks__test_shield_cancel_outer_exception),
        T(test_tasks__test_shield_shortcut),
        T(test_tasks__test_shield_effect),
        T(test_tasks__test_shield_gather),
        T(test_tasks__test_gather_shield),
        T(test_future__test_multiple_set_result),
        T(test_future__test_multiple_set_exception),
        T(test_future__test_multiple_set_result__other_thread),
        T(test_tasks__test_wait_duplicate_coroutines),
        T(test_tasks__test_as_completed_duplicate_coroutines),
        T(test_tasks__test_constructor_heterogenous_futures),
        T(test_tasks__test_success__futures),
        T(test_tasks__test_one_exception__futures),
        T(test_tasks__test_return_exceptions__futures),
        T(test_taskgroups__test_taskgroup_19),
        T(test_taskgroups__test_taskgroup_20a),
        T(test_taskgroups__test_taskgroup_24),
        T(test_taskgroups__test_taskgroup_25),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
