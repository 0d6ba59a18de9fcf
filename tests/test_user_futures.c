/* Awaitables the application resolves (ppx_awaitable_create, _set_result,
 * _set_error), on the loop's thread and from others; ppx_shield;
 * removing done callbacks; state names; error copies. Every ordering is
 * forced (semaphores, the loop's own callbacks), never timed, and every
 * test closes its loop: nothing of the hub may be left open. */
#include "support.h"
#include "ppx.h"

#include <pthread.h>
#include <semaphore.h>
#include <stdlib.h>
#include <string.h>
#include <uv.h>

static int fn_forever(ppx_call *c, void *u)
{
    (void)u;
    while (!ppx_call_cancelled(c))
        support_sleep_ms(1);
    return ppx_return_nil(c);
}

static int setup(void **state)
{
    uv_loop_t *loop = calloc(1, sizeof *loop);
    assert_int_equal(uv_loop_init(loop), 0);
    *state = loop;
    return 0;
}

/* The loop must end by itself (no user awaitable pending keeps it) and
 * close: a hub left open would make uv_loop_close fail with UV_EBUSY. */
static int teardown(void **state)
{
    uv_loop_t *loop = *state;
    assert_int_equal(uv_run(loop, UV_RUN_DEFAULT), 0);
    assert_int_equal(uv_loop_close(loop), 0);
    free(loop);
    return 0;
}

typedef struct counter {
    int calls;
    ppx_state seen;
    bool on_loop_thread;
    uv_thread_t loop_thread;
} counter;

static void count_cb(ppx_awaitable *aw, void *arg)
{
    counter *c = arg;
    uv_thread_t self = uv_thread_self();
    c->calls++;
    c->seen = ppx_awaitable_state(aw);
    c->on_loop_thread = uv_thread_equal(&self, &c->loop_thread);
}

static counter new_counter(void)
{
    return (counter){0, PPX_PENDING, false, uv_thread_self()};
}

static ppx_awaitable *create(uv_loop_t *loop)
{
    ppx_awaitable *aw = NULL;
    assert_int_equal(ppx_awaitable_create(loop, &aw), 0);
    assert_int_equal(ppx_awaitable_state(aw), PPX_PENDING);
    return aw;
}

static int64_t int_value(ppx_awaitable *aw)
{
    ppx_value v;
    int64_t i;
    assert_int_equal(ppx_awaitable_value(aw, &v), 0);
    assert_int_equal(ppx_value_int(v, &i), 0);
    return i;
}

static void assert_error(const ppx_error *e, const char *type, const char *message)
{
    assert_non_null(e);
    assert_string_equal(e->type, type);
    assert_string_equal(e->message, message);
}

/* ---- on the loop's thread ---------------------------------------------- */

static void test_set_result_on_the_loop_thread_resolves_at_once(void **state)
{
    uv_loop_t *loop = *state;
    ppx_awaitable *aw = create(loop);
    counter c = new_counter();
    assert_int_equal(ppx_awaitable_add_done_callback(aw, count_cb, &c), 0);
    const unsigned char s[] = {0xa3, 'a', 0, 'b'}; /* "a\0b": copied exactly */
    assert_int_equal(ppx_awaitable_set_result(aw, s, sizeof s), 0);
    assert_int_equal(c.calls, 1);
    assert_int_equal(c.seen, PPX_DONE);
    assert_true(c.on_loop_thread);
    ppx_value v;
    assert_int_equal(ppx_awaitable_value(aw, &v), 0);
    assert_int_equal(v.len, sizeof s);
    assert_memory_equal(v.data, s, sizeof s);
    assert_null(ppx_awaitable_error(aw));
    assert_int_equal(ppx_awaitable_set_result(aw, s, sizeof s), PPX_EDONE);
    assert_int_equal(ppx_awaitable_set_error(aw, "E", "m"), PPX_EDONE);
    assert_int_equal(ppx_awaitable_cancel(aw), PPX_EDONE);
    assert_int_equal(c.calls, 1);
    ppx_awaitable_unref(aw);
}

static void test_set_result_of_nothing_is_nil(void **state)
{
    uv_loop_t *loop = *state;
    ppx_awaitable *aw = create(loop);
    assert_int_equal(ppx_awaitable_set_result(aw, NULL, 0), 0);
    ppx_value v;
    assert_int_equal(ppx_awaitable_value(aw, &v), 0);
    assert_int_equal(ppx_value_type(v), PPX_TYPE_NIL);
    assert_int_equal(v.len, 1);
    ppx_awaitable_unref(aw);
}

static void test_set_error_copies_type_and_message(void **state)
{
    uv_loop_t *loop = *state;
    ppx_awaitable *aw = create(loop), *dflt = create(loop);
    char type[] = "ValueError", msg[] = "bad input 7";
    assert_int_equal(ppx_awaitable_set_error(aw, type, msg), 0);
    memset(type, 'x', sizeof type - 1);
    memset(msg, 'x', sizeof msg - 1);
    assert_int_equal(ppx_awaitable_state(aw), PPX_FAILED);
    assert_error(ppx_awaitable_error(aw), "ValueError", "bad input 7");
    ppx_value v;
    assert_int_equal(ppx_awaitable_value(aw, &v), PPX_ETASK);
    assert_int_equal(ppx_awaitable_set_error(aw, "E", "again"), PPX_EDONE);
    assert_int_equal(ppx_awaitable_set_error(dflt, NULL, NULL), 0);
    assert_error(ppx_awaitable_error(dflt), "Error", "");
    ppx_awaitable_unref(aw);
    ppx_awaitable_unref(dflt);
}

static void test_set_result_refuses_what_is_not_one_object(void **state)
{
    uv_loop_t *loop = *state;
    ppx_awaitable *aw = create(loop);
    const unsigned char truncated[] = {0x93, 1, 2}, two[] = {1, 2}, bad[] = {0xc1};
    assert_int_equal(ppx_awaitable_set_result(aw, truncated, sizeof truncated), PPX_EMALFORMED);
    assert_int_equal(ppx_awaitable_set_result(aw, two, sizeof two), PPX_EMALFORMED);
    assert_int_equal(ppx_awaitable_set_result(aw, bad, sizeof bad), PPX_EMALFORMED);
    assert_int_equal(ppx_awaitable_set_result(aw, NULL, 3), PPX_EINVAL);
    assert_int_equal(ppx_awaitable_state(aw), PPX_PENDING);
    const unsigned char arr[] = {0x93, 1, 2, 3};
    assert_int_equal(ppx_awaitable_set_result(aw, arr, sizeof arr), 0);
    ppx_awaitable_unref(aw);
}

static void test_cancel_then_set_is_refused(void **state)
{
    uv_loop_t *loop = *state;
    ppx_awaitable *aw = create(loop);
    counter c = new_counter();
    assert_int_equal(ppx_awaitable_add_done_callback(aw, count_cb, &c), 0);
    assert_int_equal(ppx_awaitable_cancel(aw), 0);
    assert_int_equal(c.calls, 1);
    assert_int_equal(c.seen, PPX_CANCELLED);
    assert_string_equal(ppx_awaitable_error(aw)->type, "CancelledError");
    assert_int_equal(ppx_awaitable_set_result(aw, NULL, 0), PPX_EDONE);
    assert_int_equal(ppx_awaitable_set_error(aw, "E", "m"), PPX_EDONE);
    assert_int_equal(ppx_awaitable_cancel(aw), PPX_EDONE);
    ppx_value v;
    assert_int_equal(ppx_awaitable_value(aw, &v), PPX_ECANCELED);
    ppx_awaitable_unref(aw);
}

static void test_set_refuses_other_awaitables(void **state)
{
    uv_loop_t *loop = *state;
    ppx_awaitable *g;
    assert_int_equal(ppx_gather(loop, NULL, 0, 0, &g), 0);
    assert_int_equal(ppx_awaitable_set_result(g, NULL, 0), PPX_EINVAL);
    assert_int_equal(ppx_awaitable_set_error(g, "E", "m"), PPX_EINVAL);
    assert_int_equal(ppx_awaitable_set_result(NULL, NULL, 0), PPX_EBADOBJ);
    assert_int_equal(ppx_awaitable_set_error(NULL, "E", "m"), PPX_EBADOBJ);
    /* An invalid handle reads as PENDING: ppx_awaitable_valid tells. */
    assert_int_equal(ppx_awaitable_state(NULL), PPX_PENDING);
    assert_false(ppx_awaitable_valid(NULL));
    assert_true(ppx_awaitable_valid(g));
    assert_int_equal(ppx_awaitable_create(NULL, &g), PPX_EINVAL);
    assert_int_equal(ppx_awaitable_create(loop, NULL), PPX_EINVAL);
    ppx_awaitable_unref(g);
}

/* ---- from other threads ------------------------------------------------ */

typedef struct setter {
    ppx_awaitable *aw;
    sem_t go;
    int64_t value; /* < 0: set_error */
    int rc;
} setter;

static void *set_from_thread(void *arg)
{
    setter *s = arg;
    sem_wait(&s->go);
    if (s->value >= 0) {
        unsigned char b = (unsigned char)s->value; /* a positive fixint */
        s->rc = ppx_awaitable_set_result(s->aw, &b, 1);
    } else {
        s->rc = ppx_awaitable_set_error(s->aw, "ThreadError", "from a thread");
    }
    return NULL;
}

/* A one-shot timer that lets the setters go once the loop runs: after it
 * fired, only the pending user awaitables keep uv_run going. */
static void release_setters(uv_timer_t *t)
{
    setter *s = t->data;
    for (size_t i = 0; s[i].aw; i++)
        sem_post(&s[i].go);
}

static void start_setters(uv_loop_t *loop, setter *s, size_t n, pthread_t *th, uv_timer_t *t)
{
    for (size_t i = 0; i < n; i++) {
        sem_init(&s[i].go, 0, 0);
        assert_int_equal(pthread_create(&th[i], NULL, set_from_thread, &s[i]), 0);
    }
    uv_timer_init(loop, t);
    t->data = s;
    uv_timer_start(t, release_setters, 0, 0);
}

/* t is on the caller's stack: closed before it returns. */
static void join_setters(uv_loop_t *loop, setter *s, size_t n, pthread_t *th, uv_timer_t *t)
{
    for (size_t i = 0; i < n; i++) {
        pthread_join(th[i], NULL);
        sem_destroy(&s[i].go);
    }
    uv_close((uv_handle_t *)t, NULL);
    assert_int_equal(uv_run(loop, UV_RUN_DEFAULT), 0);
}

static void test_set_from_another_thread_keeps_the_loop_until_it_resolves(void **state)
{
    uv_loop_t *loop = *state;
    enum { N = 4 };
    setter s[N + 1] = {{0}};
    counter c[N];
    pthread_t th[N];
    uv_timer_t t;
    for (size_t i = 0; i < N; i++) {
        s[i].aw = create(loop);
        s[i].value = i == 2 ? -1 : (int64_t)(10 + i);
        c[i] = new_counter();
        assert_int_equal(ppx_awaitable_add_done_callback(s[i].aw, count_cb, &c[i]), 0);
    }
    start_setters(loop, s, N, th, &t);
    /* Returns only when nothing is left: every awaitable has resolved. */
    assert_int_equal(uv_run(loop, UV_RUN_DEFAULT), 0);
    join_setters(loop, s, N, th, &t);
    for (size_t i = 0; i < N; i++) {
        assert_int_equal(s[i].rc, 0);
        assert_int_equal(c[i].calls, 1);
        assert_true(c[i].on_loop_thread);
        if (i == 2) {
            assert_int_equal(ppx_awaitable_state(s[i].aw), PPX_FAILED);
            assert_error(ppx_awaitable_error(s[i].aw), "ThreadError", "from a thread");
        } else {
            assert_int_equal(int_value(s[i].aw), 10 + (int64_t)i);
        }
        assert_int_equal(ppx_awaitable_set_result(s[i].aw, NULL, 0), PPX_EDONE);
        ppx_awaitable_unref(s[i].aw);
    }
}

static void test_run_until_complete_waits_for_a_thread(void **state)
{
    uv_loop_t *loop = *state;
    setter s[2] = {{.aw = create(loop), .value = 42}, {0}};
    pthread_t th;
    uv_timer_t t;
    start_setters(loop, s, 1, &th, &t);
    assert_int_equal(ppx_run_until_complete(loop, s[0].aw), 0);
    assert_int_equal(int_value(s[0].aw), 42);
    join_setters(loop, s, 1, &th, &t);
    assert_int_equal(s[0].rc, 0);
    ppx_awaitable_unref(s[0].aw);
}

/* A thread's set against a cancel on the loop's thread: exactly one wins,
 * and the awaitable ends as the winner said. */
static void test_a_thread_set_racing_a_cancel_has_one_winner(void **state)
{
    uv_loop_t *loop = *state;
    for (int round = 0; round < 200; round++) {
        setter s[2] = {{.aw = create(loop), .value = 5}, {0}};
        sem_init(&s[0].go, 0, 1); /* no wait: it races the cancel */
        pthread_t th;
        assert_int_equal(pthread_create(&th, NULL, set_from_thread, &s[0]), 0);
        int crc = ppx_awaitable_cancel(s[0].aw);
        pthread_join(th, NULL);
        sem_destroy(&s[0].go);
        assert_int_equal(ppx_run_until_complete(loop, s[0].aw), 0);
        if (crc == 0) {
            assert_int_equal(s[0].rc, PPX_EDONE);
            assert_int_equal(ppx_awaitable_state(s[0].aw), PPX_CANCELLED);
        } else {
            assert_int_equal(crc, PPX_EDONE);
            assert_int_equal(s[0].rc, 0);
            assert_int_equal(int_value(s[0].aw), 5);
        }
        ppx_awaitable_unref(s[0].aw);
    }
}

/* ---- composed --------------------------------------------------------- */

static void test_gather_over_user_awaitables(void **state)
{
    uv_loop_t *loop = *state;
    enum { N = 3 };
    setter s[N + 1] = {{0}};
    pthread_t th[N];
    uv_timer_t t;
    ppx_awaitable *items[N], *g;
    for (size_t i = 0; i < N; i++) {
        items[i] = s[i].aw = create(loop);
        s[i].value = (int64_t)i + 1;
    }
    assert_int_equal(ppx_gather(loop, items, N, 0, &g), 0);
    start_setters(loop, s, N, th, &t);
    assert_int_equal(ppx_run_until_complete(loop, g), 0);
    join_setters(loop, s, N, th, &t);
    ppx_value v, e;
    assert_int_equal(ppx_awaitable_value(g, &v), 0);
    for (size_t i = 0; i < N; i++) {
        int64_t x;
        assert_int_equal(ppx_value_at(v, i, &e), 0);
        assert_int_equal(ppx_value_int(e, &x), 0);
        assert_int_equal(x, (int64_t)i + 1);
        ppx_awaitable_unref(items[i]);
    }
    ppx_awaitable_unref(g);
}

static void test_a_failed_user_awaitable_fails_the_gather_and_cancels_the_rest(void **state)
{
    uv_loop_t *loop = *state;
    ppx_awaitable *items[2] = {create(loop), create(loop)}, *g;
    assert_int_equal(ppx_gather(loop, items, 2, 0, &g), 0);
    assert_int_equal(ppx_awaitable_set_error(items[0], "KeyError", "k"), 0);
    assert_int_equal(ppx_awaitable_state(g), PPX_FAILED);
    assert_error(ppx_awaitable_error(g), "KeyError", "k");
    assert_int_equal(ppx_awaitable_state(items[1]), PPX_CANCELLED);
    assert_int_equal(ppx_awaitable_set_result(items[1], NULL, 0), PPX_EDONE);
    ppx_awaitable_unref(items[0]);
    ppx_awaitable_unref(items[1]);
    ppx_awaitable_unref(g);
}

/* ---- shield ------------------------------------------------------------ */

static void test_cancelling_a_shield_leaves_the_inner_running(void **state)
{
    uv_loop_t *loop = *state;
    ppx_awaitable *inner = create(loop), *outer;
    counter ci = new_counter(), co = new_counter();
    assert_int_equal(ppx_shield(loop, inner, &outer), 0);
    assert_int_equal(ppx_awaitable_add_done_callback(inner, count_cb, &ci), 0);
    assert_int_equal(ppx_awaitable_add_done_callback(outer, count_cb, &co), 0);
    assert_int_equal(ppx_awaitable_cancel(outer), 0);
    assert_int_equal(co.calls, 1);
    assert_int_equal(co.seen, PPX_CANCELLED);
    assert_string_equal(ppx_awaitable_error(outer)->type, "CancelledError");
    assert_int_equal(ppx_awaitable_state(inner), PPX_PENDING);
    assert_int_equal(ci.calls, 0);
    ppx_awaitable_unref(outer); /* the inner needs nothing of the outer */
    const unsigned char seven = 7;
    assert_int_equal(ppx_awaitable_set_result(inner, &seven, 1), 0);
    assert_int_equal(ci.calls, 1);
    assert_int_equal(int_value(inner), 7);
    ppx_awaitable_unref(inner);
}

static void test_a_shield_resolves_as_its_inner(void **state)
{
    uv_loop_t *loop = *state;
    ppx_awaitable *ok = create(loop), *bad = create(loop), *gone = create(loop);
    ppx_awaitable *o_ok, *o_bad, *o_gone;
    assert_int_equal(ppx_shield(loop, ok, &o_ok), 0);
    assert_int_equal(ppx_shield(loop, bad, &o_bad), 0);
    assert_int_equal(ppx_shield(loop, gone, &o_gone), 0);
    const unsigned char nine = 9;
    assert_int_equal(ppx_awaitable_set_result(ok, &nine, 1), 0);
    assert_int_equal(ppx_awaitable_set_error(bad, "OSError", "disk"), 0);
    assert_int_equal(ppx_awaitable_cancel(gone), 0);
    assert_int_equal(int_value(o_ok), 9);
    assert_int_equal(ppx_awaitable_state(o_bad), PPX_FAILED);
    assert_error(ppx_awaitable_error(o_bad), "OSError", "disk");
    assert_int_equal(ppx_awaitable_state(o_gone), PPX_CANCELLED);
    assert_int_equal(ppx_awaitable_cancel(o_ok), PPX_EDONE);
    /* The outers keep their inners' values and errors. */
    ppx_awaitable_unref(ok);
    ppx_awaitable_unref(bad);
    ppx_awaitable_unref(gone);
    assert_int_equal(int_value(o_ok), 9);
    assert_error(ppx_awaitable_error(o_bad), "OSError", "disk");
    /* An inner already resolved: so is the outer, on return. */
    ppx_awaitable *again;
    assert_int_equal(ppx_shield(loop, o_ok, &again), 0);
    assert_int_equal(int_value(again), 9);
    assert_int_equal(ppx_shield(NULL, o_ok, &again), PPX_EINVAL);
    assert_int_equal(ppx_shield(loop, NULL, &again), PPX_EBADOBJ);
    ppx_awaitable_unref(again);
    ppx_awaitable_unref(o_ok);
    ppx_awaitable_unref(o_bad);
    ppx_awaitable_unref(o_gone);
}

/* ---- removing callbacks, names, error copies -------------------------- */

static void test_remove_done_callback_counts(void **state)
{
    uv_loop_t *loop = *state;
    ppx_awaitable *aw = create(loop);
    counter a = new_counter(), b = new_counter();
    assert_int_equal(ppx_awaitable_add_done_callback(aw, count_cb, &a), 0);
    assert_int_equal(ppx_awaitable_add_done_callback(aw, count_cb, &b), 0);
    assert_int_equal(ppx_awaitable_add_done_callback(aw, count_cb, &a), 0);
    assert_int_equal(ppx_awaitable_add_done_callback(aw, count_cb, &a), 0);
    assert_int_equal(ppx_awaitable_remove_done_callback(aw, count_cb, &a), 3);
    assert_int_equal(ppx_awaitable_remove_done_callback(aw, count_cb, &a), 0);
    assert_int_equal(ppx_awaitable_remove_done_callback(aw, count_cb, NULL), 0);
    assert_int_equal(ppx_awaitable_remove_done_callback(aw, NULL, &b), PPX_EINVAL);
    assert_int_equal(ppx_awaitable_remove_done_callback(NULL, count_cb, &b), PPX_EBADOBJ);
    assert_int_equal(ppx_awaitable_set_result(aw, NULL, 0), 0);
    assert_int_equal(a.calls, 0);
    assert_int_equal(b.calls, 1);
    assert_int_equal(ppx_awaitable_remove_done_callback(aw, count_cb, &b), 0);
    ppx_awaitable_unref(aw);
}

static int future_calls;
static void future_cb(ppx_future *f, void *arg)
{
    (void)f;
    future_calls += (int)(intptr_t)arg;
}

static void test_future_remove_done_callback_counts(void **state)
{
    (void)state;
    ppx_pool *pool;
    ppx_pool_options o = PPX_POOL_OPTIONS(.workers = 1);
    support_valgrind_sizes(&o);
    assert_int_equal(ppx_pool_new(&o, &pool), 0);
    ppx_future *f;
    assert_int_equal(ppx_pool_submit(pool, "forever", NULL, 0, &f), 0);
    future_calls = 0;
    assert_int_equal(ppx_future_add_done_callback(f, future_cb, (void *)1), 0);
    assert_int_equal(ppx_future_add_done_callback(f, future_cb, (void *)10), 0);
    assert_int_equal(ppx_future_add_done_callback(f, future_cb, (void *)1), 0);
    assert_int_equal(ppx_future_remove_done_callback(f, future_cb, (void *)1), 2);
    assert_int_equal(ppx_future_remove_done_callback(f, future_cb, (void *)1), 0);
    assert_int_equal(ppx_future_remove_done_callback(f, NULL, NULL), PPX_EINVAL);
    assert_int_equal(ppx_future_remove_done_callback(NULL, future_cb, NULL), PPX_EBADOBJ);
    assert_int_equal(ppx_future_cancel(f), 0);
    assert_int_equal(future_calls, 10);
    assert_int_equal(ppx_future_remove_done_callback(f, future_cb, (void *)10), 0);
    ppx_future_unref(f);
    ppx_pool_free(pool);
}

static void test_state_names(void **state)
{
    (void)state;
    assert_string_equal(ppx_state_name(PPX_PENDING), "PENDING");
    assert_string_equal(ppx_state_name(PPX_RUNNING), "RUNNING");
    assert_string_equal(ppx_state_name(PPX_DONE), "DONE");
    assert_string_equal(ppx_state_name(PPX_FAILED), "FAILED");
    assert_string_equal(ppx_state_name(PPX_CANCELLED), "CANCELLED");
    assert_string_equal(ppx_state_name((ppx_state)99), "UNKNOWN");
    assert_string_equal(ppx_state_name((ppx_state)-1), "UNKNOWN");
}

static void test_an_error_copy_outlives_its_awaitable(void **state)
{
    uv_loop_t *loop = *state;
    ppx_awaitable *aw = create(loop);
    assert_int_equal(ppx_awaitable_set_error(aw, "ZeroDivisionError", "x / 0"), 0);
    ppx_error *e = NULL;
    assert_int_equal(ppx_error_copy(ppx_awaitable_error(aw), &e), 0);
    ppx_awaitable_unref(aw);
    assert_error(e, "ZeroDivisionError", "x / 0");
    assert_string_equal(e->function, "");
    assert_string_equal(e->where, "");
    assert_string_equal(e->node, "");
    ppx_error_free(e);
    /* A caller-built one: NULL strings stay NULL, numbers are kept. */
    ppx_error mine = {"T", "M", "fn", "f.c:1", 42, 7, NULL};
    assert_int_equal(ppx_error_copy(&mine, &e), 0);
    assert_error(e, "T", "M");
    assert_string_equal(e->function, "fn");
    assert_string_equal(e->where, "f.c:1");
    assert_int_equal(e->pid, 42);
    assert_int_equal(e->task_id, 7);
    assert_null(e->node);
    assert_ptr_not_equal(e->type, mine.type);
    ppx_error_free(e);
    ppx_error_free(NULL);
    assert_int_equal(ppx_error_copy(NULL, &e), PPX_EINVAL);
    assert_int_equal(ppx_error_copy(&mine, NULL), PPX_EINVAL);
}

static void test_an_error_copy_outlives_its_future_and_pool(void **state)
{
    (void)state;
    ppx_pool *pool;
    ppx_pool_options o = PPX_POOL_OPTIONS(.workers = 1);
    support_valgrind_sizes(&o);
    assert_int_equal(ppx_pool_new(&o, &pool), 0);
    ppx_future *f;
    assert_int_equal(ppx_pool_submit(pool, "no_such_function", NULL, 0, &f), 0);
    assert_int_equal(ppx_future_wait(f, -1), 0);
    ppx_error *e;
    assert_int_equal(ppx_error_copy(ppx_future_error(f), &e), 0);
    uint64_t id = ppx_future_id(f);
    ppx_future_unref(f);
    ppx_pool_free(pool);
    assert_string_equal(e->type, "NameError");
    assert_non_null(strstr(e->message, "no_such_function"));
    assert_string_equal(e->function, "no_such_function");
    assert_int_equal(e->task_id, id);
    ppx_error_free(e);
}

int main(void)
{
    ppx_register("forever", fn_forever, NULL);
#define T(name) cmocka_unit_test_setup_teardown(name, setup, teardown)
    const struct CMUnitTest tests[] = {
        T(test_set_result_on_the_loop_thread_resolves_at_once),
        T(test_set_result_of_nothing_is_nil),
        T(test_set_error_copies_type_and_message),
        T(test_set_result_refuses_what_is_not_one_object),
        T(test_cancel_then_set_is_refused),
        T(test_set_refuses_other_awaitables),
        T(test_set_from_another_thread_keeps_the_loop_until_it_resolves),
        T(test_run_until_complete_waits_for_a_thread),
        T(test_a_thread_set_racing_a_cancel_has_one_winner),
        T(test_gather_over_user_awaitables),
        T(test_a_failed_user_awaitable_fails_the_gather_and_cancels_the_rest),
        T(test_cancelling_a_shield_leaves_the_inner_running),
        T(test_a_shield_resolves_as_its_inner),
        T(test_remove_done_callback_counts),
        T(test_future_remove_done_callback_counts),
        T(test_state_names),
        T(test_an_error_copy_outlives_its_awaitable),
        T(test_an_error_copy_outlives_its_future_and_pool),
    };
#undef T
    return cmocka_run_group_tests(tests, NULL, NULL);
}
