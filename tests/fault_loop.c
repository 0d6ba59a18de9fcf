/* Helpers of the 'faults' suite: see fault_loop.h. */
#include "fault_loop.h"
#include "fault.h"
#include "loop/awaitable.h"

#include <stdlib.h>
#include <string.h>

/* sleep_then(ms, v): sleeps ms, then returns v. */
int fn_sleep_then(ppx_call *c, void *u)
{
    (void)u;
    int64_t ms, v;
    ppx_call_arg_int(c, 0, &ms);
    ppx_call_arg_int(c, 1, &v);
    for (int64_t t = 0; t < ms && !ppx_call_cancelled(c); t++)
        support_sleep_ms(1);
    return ppx_return_int(c, v);
}


int setup(void **state)
{
    fixture *fx = calloc(1, sizeof *fx);
    uv_loop_init(&fx->loop);
    uv_timer_init(&fx->loop, &fx->dog);
    fx->dog.data = fx;
    uv_unref((uv_handle_t *)&fx->dog);
    ppx_pool_options o = PPX_POOL_OPTIONS(.workers = 2, .cancel_grace_ms = 300);
    support_valgrind_sizes(&o);
    assert_int_equal(ppx_pool_new(&o, &fx->pool), 0);
    *state = fx;
    return 0;
}

int teardown(void **state)
{
    fixture *fx = *state;
    ppx_pool_free(fx->pool);
    uv_close((uv_handle_t *)&fx->dog, NULL);
    uv_run(&fx->loop, UV_RUN_DEFAULT);
    assert_int_equal(uv_loop_close(&fx->loop), 0);
    free(fx);
    assert_true(support_no_children());
    return 0;
}

static void on_dog(uv_timer_t *t)
{
    fixture *fx = t->data;
    fx->hung = true;
}

/* Runs the loop until done(arg): fails the test if the loop runs dry
 * first (a stall) or nothing happens for a minute (a hang). */
void run_until(fixture *fx, bool (*done)(void *), void *arg)
{
    uint64_t limit = getenv("PPX_UNDER_VALGRIND") ? 600000 : 60000;
    fx->hung = false;
    uv_timer_start(&fx->dog, on_dog, limit, 0);
    bool alive = true;
    while (!done(arg) && alive && !fx->hung)
        alive = uv_run(&fx->loop, UV_RUN_ONCE) != 0;
    uv_timer_stop(&fx->dog);
    if (fx->hung)
        fail_msg("hang: nothing resolved");
    if (!done(arg))
        fail_msg("stall: the loop ran out of work with the awaitable pending");
}

static bool aw_done(void *arg)
{
    return ppx_awaitable_done(arg);
}

void settle(fixture *fx, ppx_awaitable *aw)
{
    run_until(fx, aw_done, aw);
}

/* Every call out of the pool. Driven directly: with no awaitable left
 * waiting, the loop rightly has nothing to run (a cancelled call may
 * still be stopping). */
void drain(fixture *fx)
{
    support_drain(fx->pool, getenv("PPX_UNDER_VALGRIND") ? 300000 : 30000);
    assert_false(ppx_pool_busy(fx->pool));
}

/* Every awaitable settled and every call out of the pool. */
void finish(fixture *fx, ppx_awaitable **aws, size_t n)
{
    for (size_t i = 0; i < n; i++)
        settle(fx, aws[i]);
    drain(fx);
}

ppx_awaitable *call(fixture *fx, int ms, int v)
{
    ppx_awaitable *aw;
    assert_int_equal(ppx_run_in_executorf(&fx->loop, fx->pool, &aw, "sleep_then", "ii", ms, v),
                     0);
    return aw;
}

static void count(ppx_awaitable *aw, void *arg)
{
    (void)aw;
    (*(int *)arg)++;
}

/* A call with two callbacks already: one more must grow its array, the
 * allocation whose failure a gather, wait or group has to survive. */
ppx_awaitable *watched(fixture *fx, int ms, int v, int *hits)
{
    ppx_awaitable *aw = call(fx, ms, v);
    assert_int_equal(ppx_awaitable_add_done_callback(aw, count, hits), 0);
    assert_int_equal(ppx_awaitable_add_done_callback(aw, count, hits), 0);
    return aw;
}

int64_t int_of(ppx_value v)
{
    int64_t out;
    assert_int_equal(ppx_value_int(v, &out), 0);
    return out;
}

int64_t aw_int(const ppx_awaitable *aw)
{
    ppx_value v;
    assert_int_equal(ppx_awaitable_value(aw, &v), 0);
    return int_of(v);
}


void observe(ppx_awaitable *aw, void *arg)
{
    (void)aw;
    outcome *o = arg;
    o->calls++;
    for (size_t i = 0; i < o->n; i++)
        o->running += !ppx_awaitable_done(o->kids[i]);
}

/* A failure is allowed only when an allocation was failed, and must say so. */
void check_failure(const ppx_awaitable *aw, bool fired, const char *also)
{
    const ppx_error *e = ppx_awaitable_error(aw);
    assert_non_null(e);
    if (!fired)
        fail_msg("failed without an injected fault: %s: %s", e->type, e->message);
    if (strcmp(e->type, "MemoryError") != 0 && (!also || strcmp(e->type, also) != 0))
        fail_msg("unexpected error %s: %s", e->type, e->message);
}

/* Drops the test's references, checking they were the last ones. */
void release_all(ppx_awaitable **aws, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        if (!aws[i])
            continue;
        assert_int_equal(aws[i]->refs, 1);
        ppx_awaitable_unref(aws[i]);
    }
}

const int kid_value[NKIDS] = {7, 1, 2, 3};

/* Child 0 has finished; the others run, the last longest, so a child
 * whose callback could not be added is still running when the others
 * are done. */
void make_kids(fixture *fx, ppx_awaitable **kids, int *hits)
{
    kids[0] = call(fx, 0, kid_value[0]);
    settle(fx, kids[0]);
    kids[1] = watched(fx, 0, kid_value[1], &hits[1]);
    kids[2] = watched(fx, 5, kid_value[2], &hits[2]);
    kids[3] = watched(fx, 200, kid_value[3], &hits[3]);
}

void check_hits(const int *hits)
{
    for (int i = 1; i < NKIDS; i++)
        assert_int_equal(hits[i], 2);
}
