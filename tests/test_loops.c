/* One pool used from several libuv loops, each run by its own thread
 * (issue 13): every loop gets its results, and when the pool is freed
 * (from one of the loop threads or from another thread) every loop closes
 * its own handles on its own thread and uv_loop_close succeeds. Also: the
 * default pool, created once however many threads ask for it first. */
#include "support.h"
#include "ppx.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <uv.h>

#define CALLS 8
#define MAX_LOOPERS 4

enum { CMD_FREE = 1, CMD_STOP = 2 };

static int fn_add(ppx_call *c, void *u)
{
    int64_t a, b;
    ppx_call_arg_int(c, 0, &a);
    ppx_call_arg_int(c, 1, &b);
    return ppx_return_int(c, a + b);
}

static int fn_wait_cancel(ppx_call *c, void *u)
{
    while (!ppx_call_cancelled(c))
        support_sleep_ms(1);
    return 0;
}

struct looper;
typedef struct call {
    struct looper *l;
    int i;
} call;

/* A thread that runs its own loop: it submits CALLS calls to pool (NULL:
 * the default pool), runs the loop until told to stop, then closes it. A
 * handle of its own (cmd) keeps the loop running until then. */
typedef struct looper {
    int id;
    ppx_pool *pool;
    const char *fn;
    pthread_barrier_t *start; /* NULL, or passed just before the calls */
    uv_loop_t loop;
    uv_async_t cmd;
    uv_timer_t check;
    atomic_int cmds;
    uv_thread_t thread;
    call calls[CALLS];
    int submit_rc;
    ppx_pool *used; /* the pool the calls went to */
    int64_t value[CALLS];
    ppx_state state[CALLS];
    uv_thread_t settled_on[CALLS];
    int settled;
    int close_rc;
} looper;

/* Main waits on these for what the loop threads report. */
static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t cv = PTHREAD_COND_INITIALIZER;
static int submitted, all_settled;

static void report(int *counter)
{
    pthread_mutex_lock(&mu);
    ++*counter;
    pthread_cond_broadcast(&cv);
    pthread_mutex_unlock(&mu);
}

static void await_count(int *counter, int n)
{
    pthread_mutex_lock(&mu);
    while (*counter < n)
        pthread_cond_wait(&cv, &mu);
    pthread_mutex_unlock(&mu);
}

static void on_settled(ppx_awaitable *aw, void *arg)
{
    call *c = arg;
    looper *l = c->l;
    l->state[c->i] = ppx_awaitable_state(aw);
    l->settled_on[c->i] = uv_thread_self();
    ppx_value v;
    if (ppx_awaitable_value(aw, &v) == 0)
        ppx_value_int(v, &l->value[c->i]);
    ppx_awaitable_unref(aw);
    if (++l->settled == CALLS)
        report(&all_settled);
}

static void count_open(uv_handle_t *h, void *arg)
{
    looper *l = arg;
    if (h != (uv_handle_t *)&l->cmd && h != (uv_handle_t *)&l->check && !uv_is_closing(h))
        l->close_rc++; /* reused as a counter until the loop closes */
}

/* Stops once nothing but our own handles is left open: a binding to a
 * pool freed on another thread closes when this loop next runs its
 * callbacks, so the loop must run until then. */
static void on_check(uv_timer_t *t)
{
    looper *l = t->data;
    l->close_rc = 0;
    uv_walk(&l->loop, count_open, l);
    if (l->close_rc == 0) {
        uv_close((uv_handle_t *)&l->cmd, NULL);
        uv_close((uv_handle_t *)&l->check, NULL);
    } else {
        uv_timer_start(t, on_check, 1, 0);
    }
}

static void on_cmd(uv_async_t *h)
{
    looper *l = h->data;
    int c = atomic_exchange(&l->cmds, 0);
    if (c & CMD_FREE) { /* on this loop's thread, with the others running */
        if (l->pool)
            ppx_pool_free(l->pool);
        else
            ppx_default_pool_free();
    }
    if (c & CMD_STOP)
        uv_timer_start(&l->check, on_check, 0, 0);
}

static void send_cmd(looper *l, int c)
{
    atomic_fetch_or(&l->cmds, c);
    uv_async_send(&l->cmd);
}

static void looper_main(void *arg)
{
    looper *l = arg;
    uv_loop_init(&l->loop);
    uv_async_init(&l->loop, &l->cmd, on_cmd);
    l->cmd.data = l;
    uv_timer_init(&l->loop, &l->check);
    l->check.data = l;
    if (l->start)
        pthread_barrier_wait(l->start);
    for (int i = 0; i < CALLS && l->submit_rc == 0; i++) {
        ppx_awaitable *aw;
        l->calls[i] = (call){l, i};
        l->submit_rc = ppx_run_in_executorf(&l->loop, l->pool, &aw, l->fn, "ii", l->id * 1000, i);
        if (l->submit_rc == 0)
            ppx_awaitable_add_done_callback(aw, on_settled, &l->calls[i]);
    }
    l->used = l->pool ? l->pool : ppx_default_pool();
    report(&submitted);
    uv_run(&l->loop, UV_RUN_DEFAULT);
    l->close_rc = uv_loop_close(&l->loop);
}

static void start_loopers(looper *ls, int n, ppx_pool *pool, const char *fn,
                          pthread_barrier_t *start)
{
    submitted = all_settled = 0;
    for (int i = 0; i < n; i++) {
        memset(&ls[i], 0, sizeof ls[i]);
        ls[i].id = i + 1;
        ls[i].pool = pool;
        ls[i].fn = fn;
        ls[i].start = start;
        assert_int_equal(uv_thread_create(&ls[i].thread, looper_main, &ls[i]), 0);
    }
}

/* Stops every loop, joins its thread and checks that it closed cleanly:
 * every call settled in want on its own loop's thread. */
static void stop_loopers(looper *ls, int n, ppx_state want)
{
    for (int i = 0; i < n; i++)
        send_cmd(&ls[i], CMD_STOP);
    for (int i = 0; i < n; i++) {
        looper *l = &ls[i];
        assert_int_equal(uv_thread_join(&l->thread), 0);
        assert_int_equal(l->submit_rc, 0);
        assert_int_equal(l->settled, CALLS);
        assert_int_equal(l->close_rc, 0); /* no handle of ours left open */
        for (int k = 0; k < CALLS; k++) {
            assert_int_equal(l->state[k], want);
            assert_true(uv_thread_equal(&l->settled_on[k], &l->thread));
            if (want == PPX_DONE)
                assert_int_equal(l->value[k], l->id * 1000 + k);
        }
    }
}

static ppx_pool *new_pool(void)
{
    ppx_pool *p;
    assert_int_equal(ppx_pool_new(&PPX_POOL_OPTIONS(.workers = 2), &p), 0);
    return p;
}

static void test_two_loops_share_a_pool_freed_from_a_third_thread(void **state)
{
    looper ls[2];
    ppx_pool *p = new_pool();
    start_loopers(ls, 2, p, "add", NULL);
    await_count(&all_settled, 2);
    /* Both loops run (their cmd handles keep them alive): each closes its
     * own binding on its own thread, the last one frees the pool. */
    ppx_pool_free(p);
    stop_loopers(ls, 2, PPX_DONE);
    assert_true(support_no_children());
}

static void test_two_loops_share_a_pool_freed_on_one_of_them(void **state)
{
    looper ls[2];
    ppx_pool *p = new_pool();
    start_loopers(ls, 2, p, "add", NULL);
    await_count(&all_settled, 2);
    send_cmd(&ls[0], CMD_FREE);
    stop_loopers(ls, 2, PPX_DONE);
    assert_true(support_no_children());
}

static void test_calls_pending_on_two_loops_settle_cancelled_when_freed(void **state)
{
    looper ls[2];
    ppx_pool *p = new_pool();
    start_loopers(ls, 2, p, "wait_cancel", NULL);
    await_count(&submitted, 2);
    /* Some calls run, the rest wait in the pool: the free cancels them all
     * on this thread, and each loop gets its own through its uv_async. */
    ppx_pool_free(p);
    await_count(&all_settled, 2);
    stop_loopers(ls, 2, PPX_CANCELLED);
    assert_true(support_no_children());
}

static void test_two_loops_share_the_default_pool(void **state)
{
    looper ls[2];
    start_loopers(ls, 2, NULL, "add", NULL);
    await_count(&all_settled, 2);
    assert_non_null(ls[0].used);
    assert_ptr_equal(ls[0].used, ls[1].used);
    ppx_default_pool_free();
    assert_null(ppx_default_pool());
    stop_loopers(ls, 2, PPX_DONE);
    assert_true(support_no_children());
}

static void test_the_default_pool_freed_on_one_of_two_loops(void **state)
{
    looper ls[2];
    start_loopers(ls, 2, NULL, "add", NULL);
    await_count(&all_settled, 2);
    send_cmd(&ls[1], CMD_FREE);
    stop_loopers(ls, 2, PPX_DONE);
    assert_null(ppx_default_pool());
    assert_true(support_no_children());
}

static void test_concurrent_first_calls_make_one_default_pool(void **state)
{
    looper ls[MAX_LOOPERS];
    pthread_barrier_t start;
    pthread_barrier_init(&start, NULL, MAX_LOOPERS);
    assert_null(ppx_default_pool());
    start_loopers(ls, MAX_LOOPERS, NULL, "add", &start);
    await_count(&all_settled, MAX_LOOPERS);
    ppx_pool *p = ppx_default_pool();
    assert_non_null(p);
    for (int i = 0; i < MAX_LOOPERS; i++)
        assert_ptr_equal(ls[i].used, p);
    ppx_default_pool_free();
    stop_loopers(ls, MAX_LOOPERS, PPX_DONE);
    pthread_barrier_destroy(&start);
    assert_true(support_no_children());
}

/* ppx_default_pool (NULL until made) is read while another thread
 * creates the pool: no race (TSan), and no lock held through the fork. */
static void *read_default(void *arg)
{
    atomic_int *done = arg;
    while (!atomic_load(done))
        (void)ppx_default_pool();
    return NULL;
}

static void test_the_default_pool_may_be_read_while_it_is_created(void **state)
{
    atomic_int done = 0;
    pthread_t reader;
    pthread_create(&reader, NULL, read_default, &done);
    /* This thread creates it while the reader keeps reading. */
    uv_loop_t loop;
    uv_loop_init(&loop);
    ppx_awaitable *aw;
    assert_int_equal(ppx_run_in_executorf(&loop, NULL, &aw, "add", "ii", 1, 2), 0);
    assert_int_equal(ppx_run_until_complete(&loop, aw), 0);
    ppx_awaitable_unref(aw);
    ppx_pool *got = ppx_default_pool();
    atomic_store(&done, 1);
    pthread_join(reader, NULL);
    assert_non_null(got);
    ppx_default_pool_free();
    uv_run(&loop, UV_RUN_DEFAULT);
    assert_int_equal(uv_loop_close(&loop), 0);
}

static int check_no_children(void **state)
{
    assert_null(ppx_default_pool());
    assert_true(support_no_children());
    return 0;
}

static void close_any(uv_handle_t *h, void *arg)
{
    (void)arg;
    if (!uv_is_closing(h))
        uv_close(h, NULL);
}

/* Issue 18: an application that closes every handle of its loop (ppx's
 * too), closes the loop, and only then frees the pool, which ppx.h
 * forbids. The free must not crash: it says what went wrong, on stderr
 * and in ppx_last_error(), and leaves the closed handles alone. */
static void test_freeing_a_pool_after_its_loop_was_closed_is_reported(void **state)
{
    (void)state;
    ppx_pool *p;
    assert_int_equal(ppx_pool_new(&PPX_POOL_OPTIONS(.workers = 1), &p), 0);
    uv_loop_t loop;
    assert_int_equal(uv_loop_init(&loop), 0);
    ppx_awaitable *aw;
    assert_int_equal(ppx_run_in_executorf(&loop, p, &aw, "add", "ii", 2, 3), 0);
    assert_int_equal(ppx_run_until_complete(&loop, aw), 0);
    ppx_value val;
    int64_t v;
    assert_int_equal(ppx_awaitable_value(aw, &val), 0);
    assert_int_equal(ppx_value_int(val, &v), 0);
    assert_int_equal(v, 5);
    ppx_awaitable_unref(aw);
    uv_walk(&loop, close_any, NULL);
    uv_run(&loop, UV_RUN_DEFAULT);
    assert_int_equal(uv_loop_close(&loop), 0);
    memset(&loop, 0xff, sizeof loop); /* the loop is gone: ppx must not read it */
    ppx_pool_free(p);
    assert_non_null(strstr(ppx_last_error(), "closed ppx's handles on its loop"));
}

int main(void)
{
    ppx_register("add", fn_add, NULL);
    ppx_register("wait_cancel", fn_wait_cancel, NULL);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_teardown(test_two_loops_share_a_pool_freed_from_a_third_thread, check_no_children),
        cmocka_unit_test_teardown(test_two_loops_share_a_pool_freed_on_one_of_them, check_no_children),
        cmocka_unit_test_teardown(test_calls_pending_on_two_loops_settle_cancelled_when_freed, check_no_children),
        cmocka_unit_test_teardown(test_two_loops_share_the_default_pool, check_no_children),
        cmocka_unit_test_teardown(test_the_default_pool_freed_on_one_of_two_loops, check_no_children),
        cmocka_unit_test_teardown(test_concurrent_first_calls_make_one_default_pool, check_no_children),
        cmocka_unit_test_teardown(test_the_default_pool_may_be_read_while_it_is_created, check_no_children),
        cmocka_unit_test_teardown(test_freeing_a_pool_after_its_loop_was_closed_is_reported, check_no_children),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
