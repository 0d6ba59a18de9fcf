/* Allocation failure, one allocation at a time (fault.h): for submit,
 * wrapping, gather, wait, wait_for, as_completed, task groups, the lazy
 * map, user awaitables and shield, iteration N fails the Nth allocation
 * the library makes while the operation runs (the call and the loop
 * turns until it resolves), until an iteration makes fewer than N. At
 * every N the call either returns PPX_ENOMEM and nothing of it survives
 * (no callback later, every reference given back), or it resolves: with
 * the right values, or with a MemoryError (only when an allocation was
 * failed), never DONE while a child still runs, never stuck (the loop
 * must not run dry or hang). */
#include "fault_loop.h"
#include "fault.h"
#include "ppx.h"
#include "loop/awaitable.h"
#include "procpool/future.h"

#include <stdlib.h>
#include <string.h>
#include <uv.h>

/* ---- submit and wrap ---------------------------------------------------- */

static void test_submit_and_wait(void **state)
{
    fixture *fx = *state;
    for (unsigned long n = 1;; n++) {
        ppx_future *f = NULL;
        fault_arm(n);
        int rc = ppx_pool_submitf(fx->pool, &f, "sleep_then", "ii", 0, 42);
        if (rc == 0)
            assert_int_equal(ppx_future_wait(f, -1), 0);
        bool fired = fault_fired();
        fault_disarm();
        if (rc) {
            assert_int_equal(rc, PPX_ENOMEM);
            assert_true(fired);
            assert_null(f);
        } else if (ppx_future_state(f) == PPX_DONE) {
            ppx_value v;
            assert_int_equal(ppx_future_value(f, &v), 0);
            assert_int_equal(int_of(v), 42);
        } else {
            assert_int_equal(ppx_future_state(f), PPX_FAILED);
            assert_true(fired);
            assert_string_equal(ppx_future_error(f)->type, "MemoryError");
        }
        if (f) {
            assert_int_equal(atomic_load(&f->refs), 1);
            ppx_future_unref(f);
        }
        drain(fx);
        if (!fired)
            break;
    }
}

static void count_future(ppx_future *f, void *arg)
{
    (void)f;
    (*(int *)arg)++;
}

static void test_wrap_future(void **state)
{
    fixture *fx = *state;
    for (unsigned long n = 1;; n++) {
        ppx_future *f;
        int hits = 0;
        assert_int_equal(ppx_pool_submitf(fx->pool, &f, "sleep_then", "ii", 20, 5), 0);
        /* Two callbacks already: the awaitable's must grow the array. */
        assert_int_equal(ppx_future_add_done_callback(f, count_future, &hits), 0);
        assert_int_equal(ppx_future_add_done_callback(f, count_future, &hits), 0);
        ppx_awaitable *aw = NULL;
        fault_arm(n);
        int rc = ppx_wrap_future(&fx->loop, f, &aw);
        if (rc == 0)
            settle(fx, aw);
        bool fired = fault_fired();
        fault_disarm();
        if (rc) {
            assert_int_equal(rc, PPX_ENOMEM);
            assert_true(fired);
            assert_int_equal(ppx_future_wait(f, -1), 0);
        } else if (ppx_awaitable_state(aw) == PPX_DONE) {
            assert_int_equal(aw_int(aw), 5);
        } else {
            check_failure(aw, fired, NULL);
        }
        assert_int_equal(hits, 2);
        release_all(&aw, 1);
        assert_int_equal(atomic_load(&f->refs), 1);
        ppx_future_unref(f);
        drain(fx);
        if (!fired)
            break;
    }
}

/* A user awaitable resolved through a shield: each call returns
 * PPX_ENOMEM (only when an allocation failed, and then leaves nothing
 * behind: the loop closes at teardown) or does its work in full. */
static void test_user_future_and_shield(void **state)
{
    fixture *fx = *state;
    for (unsigned long n = 1;; n++) {
        ppx_awaitable *aw = NULL, *outer = NULL;
        ppx_error *copy = NULL;
        const unsigned char five = 5;
        fault_arm(n);
        int rc = ppx_awaitable_create(&fx->loop, &aw);
        int src = rc ? 0 : ppx_shield(&fx->loop, aw, &outer);
        int vrc = rc ? 0 : ppx_awaitable_set_result(aw, &five, 1);
        int erc = ppx_error_copy(&(ppx_error){"T", "M", "", "", 0, 0, ""}, &copy);
        bool fired = fault_fired();
        fault_disarm();
        for (int i = 0, *r[] = {&rc, &src, &vrc, &erc}; i < 4; i++)
            assert_true(*r[i] == 0 || (*r[i] == PPX_ENOMEM && fired));
        if (aw && vrc) /* still pending: it would keep the loop */
            assert_int_equal(ppx_awaitable_cancel(aw), 0);
        if (aw && vrc == 0)
            assert_int_equal(aw_int(aw), 5);
        if (outer)
            assert_int_equal(ppx_awaitable_state(outer), ppx_awaitable_state(aw));
        assert_true(erc != 0 || strcmp(copy->message, "M") == 0);
        ppx_error_free(copy);
        ppx_awaitable_unref(outer);
        ppx_awaitable_unref(aw);
        if (!fired)
            break;
    }
}

static void test_run_in_executor(void **state)
{
    fixture *fx = *state;
    for (unsigned long n = 1;; n++) {
        ppx_awaitable *aw = NULL;
        fault_arm(n);
        int rc = ppx_run_in_executorf(&fx->loop, fx->pool, &aw, "sleep_then", "ii", 0, 9);
        if (rc == 0)
            settle(fx, aw);
        bool fired = fault_fired();
        fault_disarm();
        if (rc) {
            assert_int_equal(rc, PPX_ENOMEM);
            assert_true(fired);
        } else if (ppx_awaitable_state(aw) == PPX_DONE) {
            assert_int_equal(aw_int(aw), 9);
        } else {
            check_failure(aw, fired, NULL);
        }
        release_all(&aw, 1);
        drain(fx);
        if (!fired)
            break;
    }
}

static void test_run_in_executor_map(void **state)
{
    fixture *fx = *state;
    /* [[0,1],[5,2],[0,3],[9,4],[0,5]]: sleep_then(ms, v) five times */
    static const unsigned char items[] = {0x95, 0x92, 0, 1, 0x92, 5, 2, 0x92, 0, 3,
                                          0x92, 9, 4, 0x92, 0, 5};
    size_t len = sizeof items;
    for (unsigned long n = 1;; n++) {
        ppx_awaitable *aw = NULL;
        fault_arm(n);
        int rc = ppx_run_in_executor_map(&fx->loop, fx->pool, "sleep_then", items, len, 2, &aw);
        if (rc == 0)
            settle(fx, aw);
        bool fired = fault_fired();
        fault_disarm();
        if (rc) {
            assert_int_equal(rc, PPX_ENOMEM);
            assert_true(fired);
        } else if (ppx_awaitable_state(aw) == PPX_DONE) {
            ppx_value v, e;
            size_t k;
            assert_int_equal(ppx_awaitable_value(aw, &v), 0);
            assert_int_equal(ppx_value_array_len(v, &k), 0);
            assert_int_equal(k, 5);
            for (size_t i = 0; i < k; i++) {
                assert_int_equal(ppx_value_at(v, i, &e), 0);
                assert_int_equal(int_of(e), (int64_t)i + 1);
            }
        } else {
            check_failure(aw, fired, NULL);
        }
        if (aw)
            for (size_t i = 0; i < ppx_gather_count(aw); i++)
                settle(fx, ppx_gather_child(aw, i));
        release_all(&aw, 1);
        drain(fx);
        if (!fired)
            break;
    }
}

/* ---- gather ------------------------------------------------------------- */

static void check_gathered(ppx_awaitable *g, int flags)
{
    ppx_value v, e;
    size_t k;
    assert_int_equal(ppx_awaitable_value(g, &v), 0);
    assert_int_equal(ppx_value_array_len(v, &k), 0);
    assert_int_equal(k, NKIDS);
    for (size_t i = 0; i < NKIDS; i++) {
        assert_int_equal(ppx_value_at(v, i, &e), 0);
        if ((flags & PPX_GATHER_RETURN_ERRORS) &&
            ppx_awaitable_state(ppx_gather_child(g, i)) == PPX_FAILED) {
            assert_int_equal(ppx_value_type(e), PPX_TYPE_NIL);
            assert_string_equal(ppx_awaitable_error(ppx_gather_child(g, i))->type, "MemoryError");
        } else {
            assert_int_equal(int_of(e), kid_value[i]);
        }
    }
}

static void gather_under_faults(fixture *fx, int flags)
{
    for (unsigned long n = 1;; n++) {
        int hits[NKIDS] = {0};
        ppx_awaitable *kids[NKIDS], *g = NULL;
        make_kids(fx, kids, hits);
        outcome o = {kids, NKIDS, 0, 0};
        fault_arm(n);
        int rc = ppx_gather(&fx->loop, kids, NKIDS, flags, &g);
        if (rc == 0) {
            assert_int_equal(ppx_awaitable_add_done_callback(g, observe, &o), 0);
            settle(fx, g);
        }
        bool fired = fault_fired();
        fault_disarm();
        if (rc) {
            assert_int_equal(rc, PPX_ENOMEM);
            assert_true(fired);
            assert_null(g);
        } else if (ppx_awaitable_state(g) == PPX_DONE) {
            assert_int_equal(o.calls, 1);
            assert_int_equal(o.running, 0); /* never DONE while a child runs */
            check_gathered(g, flags);
        } else {
            check_failure(g, fired, NULL);
        }
        finish(fx, kids, NKIDS);
        check_hits(hits);
        release_all(&g, 1);
        release_all(kids, NKIDS);
        if (!fired)
            break;
    }
}

static void test_gather(void **state)
{
    gather_under_faults(*state, 0);
}

static void test_gather_returning_errors(void **state)
{
    gather_under_faults(*state, PPX_GATHER_RETURN_ERRORS);
}

/* ---- wait, wait_for ----------------------------------------------------- */

/* A timeout far away opens the wait's timer, which ENOMEM must close. */
static void wait_under_faults(fixture *fx, int when, int timeout_ms)
{
    for (unsigned long n = 1;; n++) {
        int hits[NKIDS] = {0};
        ppx_awaitable *kids[NKIDS], *w = NULL;
        make_kids(fx, kids, hits);
        outcome o = {kids, NKIDS, 0, 0};
        /* FIRST_COMPLETED: child 0 has finished, so it holds at once. */
        fault_arm(n);
        int rc = ppx_wait(&fx->loop, kids, NKIDS, when, timeout_ms, &w);
        if (rc == 0) {
            assert_int_equal(ppx_awaitable_add_done_callback(w, observe, &o), 0);
            settle(fx, w);
        }
        bool fired = fault_fired();
        fault_disarm();
        if (rc) {
            assert_int_equal(rc, PPX_ENOMEM);
            assert_true(fired);
        } else if (ppx_awaitable_state(w) == PPX_DONE) {
            assert_int_equal(o.calls, 1);
            if (when == PPX_ALL_COMPLETED) {
                assert_int_equal(o.running, 0);
                assert_int_equal(aw_int(w), NKIDS);
            } else {
                assert_int_equal(aw_int(w), (int64_t)(NKIDS - o.running));
            }
        } else {
            check_failure(w, fired, NULL);
        }
        finish(fx, kids, NKIDS);
        check_hits(hits);
        release_all(&w, 1);
        release_all(kids, NKIDS);
        if (!fired)
            break;
    }
}

static void test_wait_all(void **state)
{
    wait_under_faults(*state, PPX_ALL_COMPLETED, 600000);
}

static void test_wait_first(void **state)
{
    wait_under_faults(*state, PPX_FIRST_COMPLETED, -1);
}

static void test_wait_for(void **state)
{
    fixture *fx = *state;
    for (unsigned long n = 1;; n++) {
        int hits = 0;
        ppx_awaitable *kid = watched(fx, 50, 11, &hits), *w = NULL;
        outcome o = {&kid, 1, 0, 0};
        fault_arm(n);
        int rc = ppx_wait_for(&fx->loop, kid, 600000, &w);
        if (rc == 0) {
            assert_int_equal(ppx_awaitable_add_done_callback(w, observe, &o), 0);
            settle(fx, w);
        }
        bool fired = fault_fired();
        fault_disarm();
        if (rc) {
            assert_int_equal(rc, PPX_ENOMEM);
            assert_true(fired);
        } else if (ppx_awaitable_state(w) == PPX_DONE) {
            assert_int_equal(o.running, 0);
            assert_int_equal(aw_int(w), 11);
        } else {
            check_failure(w, fired, NULL);
        }
        finish(fx, &kid, 1);
        assert_int_equal(hits, 2);
        release_all(&w, 1);
        release_all(&kid, 1);
        if (!fired)
            break;
    }
}

/* ---- as_completed ------------------------------------------------------- */

static void test_as_completed(void **state)
{
    fixture *fx = *state;
    for (unsigned long n = 1;; n++) {
        int hits[NKIDS] = {0};
        ppx_awaitable *kids[NKIDS];
        make_kids(fx, kids, hits);
        ppx_as_completed *it = NULL;
        int got = 0, seen = 0;
        fault_arm(n);
        int rc = ppx_as_completed_new(&fx->loop, kids, NKIDS, &it);
        for (ppx_awaitable *aw; rc == 0 && (rc = ppx_as_completed_next(it, -1, &aw)) == 0; got++) {
            assert_true(ppx_awaitable_done(aw)); /* never one still running */
            for (int i = 0; i < NKIDS; i++)
                if (aw == kids[i])
                    seen |= 1 << i;
        }
        bool fired = fault_fired();
        fault_disarm();
        if (it) {
            assert_int_equal(rc, PPX_EDONE);
            assert_int_equal(got, NKIDS);
            assert_int_equal(seen, (1 << NKIDS) - 1);
            ppx_as_completed_free(it);
        } else {
            assert_int_equal(rc, PPX_ENOMEM);
            assert_true(fired);
        }
        finish(fx, kids, NKIDS);
        check_hits(hits);
        release_all(kids, NKIDS);
        if (!fired)
            break;
    }
}

/* ---- task group --------------------------------------------------------- */

static void test_task_group(void **state)
{
    fixture *fx = *state;
    for (unsigned long n = 1;; n++) {
        int hits[NKIDS] = {0};
        ppx_awaitable *kids[NKIDS], *added[NKIDS], *grp = NULL;
        make_kids(fx, kids, hits);
        outcome o = {added, 0, 0, 0};
        fault_arm(n);
        int rc = ppx_task_group(&fx->loop, &grp);
        if (rc == 0) {
            assert_int_equal(ppx_awaitable_add_done_callback(grp, observe, &o), 0);
            for (int i = 0; i < NKIDS; i++) {
                int r = ppx_task_group_add(grp, kids[i]);
                if (r == 0)
                    added[o.n++] = kids[i];
                else if (r != PPX_ECANCELED) /* the group failed already */
                    assert_int_equal(r, PPX_ENOMEM);
            }
            rc = ppx_task_group_close(grp);
            assert_true(rc == 0 || rc == PPX_EDONE);
            rc = 0;
            settle(fx, grp);
        }
        bool fired = fault_fired();
        fault_disarm();
        if (rc) {
            assert_int_equal(rc, PPX_ENOMEM);
            assert_true(fired);
        } else if (ppx_awaitable_state(grp) == PPX_DONE) {
            assert_int_equal(o.running, 0); /* never DONE while a task runs */
            assert_int_equal(aw_int(grp), (int64_t)o.n);
            if (!fired)
                assert_int_equal(o.n, NKIDS);
        } else {
            check_failure(grp, fired, NULL);
        }
        finish(fx, kids, NKIDS);
        check_hits(hits);
        release_all(&grp, 1);
        release_all(kids, NKIDS);
        if (!fired)
            break;
    }
}

/* ---- lazy map ----------------------------------------------------------- */

enum { NINPUTS = 6 };

typedef struct feed {
    unsigned char args[NINPUTS][16];
    size_t len[NINPUTS];
    size_t delivered;
    bool in_order;
} feed;

static int next_input(size_t i, const void **args, size_t *len, void *arg)
{
    feed *f = arg;
    if (i >= NINPUTS)
        return 0;
    *args = f->args[i];
    *len = f->len[i];
    return 1;
}

static void on_result(size_t i, ppx_awaitable *aw, void *arg)
{
    feed *f = arg;
    ppx_value v;
    int64_t got;
    f->in_order &= i == f->delivered && ppx_awaitable_done(aw) &&
                   ppx_awaitable_value(aw, &v) == 0 && ppx_value_int(v, &got) == 0 &&
                   got == (int64_t)i * 10;
    f->delivered++;
}

static void make_feed(feed *f)
{
    memset(f, 0, sizeof *f);
    f->in_order = true;
    for (int i = 0; i < NINPUTS; i++) {
        void *b;
        assert_int_equal(ppx_pack(&b, &f->len[i], "ii", (i % 3) * 5, i * 10), 0);
        assert_true(f->len[i] <= sizeof f->args[i]);
        memcpy(f->args[i], b, f->len[i]);
        free(b);
    }
}

static void lazy_map_under_faults(fixture *fx, ppx_pool *pool)
{
    for (unsigned long n = 1;; n++) {
        feed f;
        make_feed(&f);
        ppx_awaitable *m = NULL;
        fault_arm(n);
        int rc = ppx_map_lazy(&fx->loop, pool, "sleep_then", 2, next_input, on_result, &f, &m);
        if (rc == 0)
            settle(fx, m); /* a stall fails here */
        bool fired = fault_fired();
        fault_disarm();
        assert_true(f.in_order);
        if (rc) {
            assert_int_equal(rc, PPX_ENOMEM);
            assert_true(fired);
        } else if (ppx_awaitable_state(m) == PPX_DONE) {
            assert_int_equal(aw_int(m), NINPUTS);
            assert_int_equal(f.delivered, NINPUTS);
        } else {
            check_failure(m, fired, "SubmitError");
        }
        drain(fx);
        release_all(&m, 1);
        if (!fired)
            break;
    }
}

static void test_lazy_map(void **state)
{
    fixture *fx = *state;
    lazy_map_under_faults(fx, fx->pool);
}

/* The same over libuv's threads: their allocations count too. */
static void test_lazy_map_on_threads(void **state)
{
    fixture *fx = *state;
    lazy_map_under_faults(fx, ppx_thread_pool());
}

int main(void)
{
    ppx_register("sleep_then", fn_sleep_then, NULL);
    if (getenv("FAULT_TEST")) /* e.g. FAULT_TEST=test_gather */
        cmocka_set_test_filter(getenv("FAULT_TEST"));
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_submit_and_wait, setup, teardown),
        cmocka_unit_test_setup_teardown(test_wrap_future, setup, teardown),
        cmocka_unit_test_setup_teardown(test_user_future_and_shield, setup, teardown),
        cmocka_unit_test_setup_teardown(test_run_in_executor, setup, teardown),
        cmocka_unit_test_setup_teardown(test_run_in_executor_map, setup, teardown),
        cmocka_unit_test_setup_teardown(test_gather, setup, teardown),
        cmocka_unit_test_setup_teardown(test_gather_returning_errors, setup, teardown),
        cmocka_unit_test_setup_teardown(test_wait_all, setup, teardown),
        cmocka_unit_test_setup_teardown(test_wait_first, setup, teardown),
        cmocka_unit_test_setup_teardown(test_wait_for, setup, teardown),
        cmocka_unit_test_setup_teardown(test_as_completed, setup, teardown),
        cmocka_unit_test_setup_teardown(test_task_group, setup, teardown),
        cmocka_unit_test_setup_teardown(test_lazy_map, setup, teardown),
        cmocka_unit_test_setup_teardown(test_lazy_map_on_threads, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
