/*
 * Forks of the application: a pool belongs to the process that made it.
 * A child of fork() that calls on its copy is refused with PPX_EFORKED;
 * one that frees its copy (or its futures, or leaves through exit())
 * releases its own memory only, and the creator's calls go on resolving
 * with the right values. See docs/FAILURE_MODEL.md, "Forks of the
 * application". The creator dying while a fork lives: hostile_fork.c.
 *
 * Checks inside a child cannot use cmocka (its state is the parent's):
 * they print what failed and make the child exit with status 1.
 */
#include "hostile.h"
#include "support.h"
#include "ppx.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <uv.h>

#define CHILD_CHECK(cond)                                                        \
    do {                                                                         \
        if (!(cond)) {                                                           \
            fprintf(stderr, "child check failed, %s:%d: %s\n", __FILE__, __LINE__, \
                    #cond);                                                      \
            return 1;                                                            \
        }                                                                        \
    } while (0)

/* How long a child may take: it does no waiting of its own. */
#define CHILD_MS 30000

/* ppx_sleep_add(ms, a, b): a + b after ms, so calls are still out when
 * the application forks. */
static int fn_sleep_add(ppx_call *c, void *u)
{
    (void)u;
    int64_t ms, a, b;
    ppx_call_arg_int(c, 0, &ms);
    ppx_call_arg_int(c, 1, &a);
    ppx_call_arg_int(c, 2, &b);
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
    return ppx_return_int(c, a + b);
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
    ppx_pool_options o = PPX_POOL_OPTIONS(.workers = workers, .ring_bytes = 64 << 10, .max_payload = 1 << 20);
    support_valgrind_sizes(&o);
    assert_int_equal(ppx_pool_new(&o, &p), 0);
    return p;
}

static ppx_future *sleep_add(ppx_pool *p, int ms, int a, int b)
{
    ppx_future *f;
    assert_int_equal(ppx_pool_submitf(p, &f, "app_sleep_add", "iii", ms, a, b), 0);
    return f;
}

/* The calls out at the fork, and what the creator's pool looked like. */
#define OUT 6
typedef struct scene {
    ppx_pool *p;
    ppx_future *out[OUT]; /* out[i] = i + 100, still unresolved at the fork */
    ppx_future *done;     /* 42, resolved before the fork */
    long pids[2];
} scene;

static void scene_start(scene *s)
{
    s->p = new_pool(2);
    s->done = sleep_add(s->p, 0, 40, 2);
    assert_int_equal(support_future_int(s->done), 42);
    for (int i = 0; i < 2; i++)
        s->pids[i] = support_worker_pid(s->p, i);
    /* Nothing drives the pool until the parent waits: these are
     * unresolved in the child's copy, whatever the workers do meanwhile. */
    for (int i = 0; i < OUT; i++)
        s->out[i] = sleep_add(s->p, 20, i, 100);
}

/* The creator's pool after the child: every call out at the fork and
 * every new one resolves with its value, no worker was lost or replaced,
 * nothing was cancelled; then it is freed. */
static void scene_finish(scene *s)
{
    for (int i = 0; i < OUT; i++) {
        assert_int_equal(support_future_int(s->out[i]), i + 100);
        ppx_future_unref(s->out[i]);
    }
    for (int i = 0; i < 10; i++) {
        ppx_future *f = sleep_add(s->p, 0, i, 1000);
        assert_int_equal(support_future_int(f), i + 1000);
        ppx_future_unref(f);
    }
    ppx_pool_stats st = PPX_POOL_STATS_INIT;
    ppx_pool_stats_get(s->p, &st);
    assert_int_equal(st.crashed, 0);
    assert_int_equal(st.respawns, 0);
    assert_int_equal(st.cancelled, 0);
    assert_int_equal(st.completed, OUT + 11);
    for (int i = 0; i < 2; i++)
        assert_int_equal(ppx_pool_worker_pid(s->p, i), s->pids[i]);
    ppx_future_unref(s->done);
    ppx_pool_free(s->p);
}

/* ---- freeing the copy -------------------------------------------------- */

static int child_frees_pool(void *arg)
{
    scene *s = arg;
    ppx_pool_free(s->p);
    /* The copy is gone (using s->p here would be undefined). Its
     * unresolved futures were resolved CANCELLED, here only, and read
     * that without their pool. */
    for (int i = 0; i < OUT; i++)
        CHILD_CHECK(ppx_future_state(s->out[i]) == PPX_CANCELLED);
    return 0;
}

static void test_child_freeing_its_copy_leaves_every_parent_call_resolving(void **state)
{
    (void)state;
    scene s;
    scene_start(&s);
    assert_int_equal(support_in_child(child_frees_pool, &s, CHILD_MS), 0);
    scene_finish(&s);
}

/* ---- every call refused ------------------------------------------------ */

static int cb_calls;

static void count_cb(ppx_future *f, void *arg)
{
    (void)f;
    (void)arg;
    cb_calls++;
}

static int child_pool_calls(ppx_pool *p)
{
    ppx_future *f = NULL;
    static const unsigned char args[] = {0x93, 0x00, 0x01, 0x02}; /* [0, 1, 2] */
    static const unsigned char items[] = {0x91, 0x93, 0x00, 0x01, 0x02};
    CHILD_CHECK(ppx_pool_submit(p, "app_sleep_add", args, sizeof args, &f) == PPX_EFORKED);
    CHILD_CHECK(ppx_pool_submitf(p, &f, "app_sleep_add", "iii", 0, 1, 2) == PPX_EFORKED);
    CHILD_CHECK(ppx_pool_submit_ex(p, "app_sleep_add", args, sizeof args, NULL, &f) ==
                PPX_EFORKED);
    CHILD_CHECK(ppx_pool_map(p, "app_sleep_add", items, sizeof items, NULL, &f) ==
                PPX_EFORKED);
    CHILD_CHECK(f == NULL);
    CHILD_CHECK(ppx_pool_process(p) == PPX_EFORKED);
    CHILD_CHECK(ppx_pool_shutdown(p, PPX_SHUTDOWN_WAIT, 0) == PPX_EFORKED);
    CHILD_CHECK(ppx_pool_shutdown(p, PPX_SHUTDOWN_CANCEL, -1) == PPX_EFORKED);
    CHILD_CHECK(ppx_pool_fd(p) == PPX_EFORKED);
    CHILD_CHECK(ppx_pool_workers(p) == PPX_EFORKED);
    ppx_worker_stats ws = PPX_WORKER_STATS_INIT;
    CHILD_CHECK(ppx_pool_worker_stats(p, 0, &ws) == PPX_EFORKED);
    CHILD_CHECK(!ppx_pool_busy(p));
    CHILD_CHECK(ppx_pool_worker_pid(p, 0) == 0);
    ppx_pool_stats st = PPX_POOL_STATS_INIT;
    memset(&st, 0xff, sizeof st);
    CHILD_CHECK(ppx_pool_stats_get(p, &st) == PPX_EFORKED);
    CHILD_CHECK(st.submitted == UINT64_MAX); /* untouched on failure */
    return 0;
}

static int child_future_calls(scene *s)
{
    ppx_future *f = s->out[0];
    CHILD_CHECK(ppx_future_wait(f, 0) == PPX_EFORKED);
    CHILD_CHECK(ppx_future_wait(f, -1) == PPX_EFORKED);
    CHILD_CHECK(ppx_future_cancel(f) == PPX_EFORKED);
    CHILD_CHECK(ppx_future_add_done_callback(f, count_cb, NULL) == PPX_EFORKED);
    CHILD_CHECK(cb_calls == 0);
    CHILD_CHECK(ppx_future_state(f) == PPX_PENDING);
    CHILD_CHECK(!ppx_future_done(f));
    ppx_value v;
    CHILD_CHECK(ppx_future_value(f, &v) == PPX_EPENDING);
    /* What resolved before the fork is this process's to read. */
    int64_t x = 0;
    CHILD_CHECK(ppx_future_int(s->done, &x) == 0 && x == 42);
    CHILD_CHECK(ppx_future_wait(s->done, -1) == 0);
    CHILD_CHECK(ppx_future_cancel(s->done) == PPX_EDONE);
    CHILD_CHECK(ppx_future_add_done_callback(s->done, count_cb, NULL) == 0 && cb_calls == 1);
    return 0;
}

static int child_calls_everything(void *arg)
{
    scene *s = arg;
    CHILD_CHECK(strcmp(ppx_err_name(PPX_EFORKED), "PPX_EFORKED") == 0);
    CHILD_CHECK(strstr(ppx_strerror(PPX_EFORKED), "another process") != NULL);
    if (child_pool_calls(s->p) || child_future_calls(s))
        return 1;
    ppx_pool_free(s->p);
    return 0;
}

static void test_every_call_on_a_childs_copy_is_refused_with_eforked(void **state)
{
    (void)state;
    scene s;
    scene_start(&s);
    assert_int_equal(support_in_child(child_calls_everything, &s, CHILD_MS), 0);
    scene_finish(&s);
}

/* ---- exit() and atexit ------------------------------------------------- */

static ppx_pool *atexit_pool;

static bool atexit_freed;

static void free_atexit_pool(void)
{
    ppx_pool_free(atexit_pool);
    atexit_freed = true;
}

/* Runs after free_atexit_pool (atexit handlers run in reverse): the free
 * returned. */
static void report_freed(void)
{
    support_child_report(atexit_freed ? 0 : 1);
}

static int child_exits(void *arg)
{
    scene *s = arg;
    atexit_pool = s->p;
    atexit(report_freed);
    atexit(free_atexit_pool);
    exit(0);
}

static void test_child_leaving_through_exit_frees_its_copy_in_atexit(void **state)
{
    (void)state;
    scene s;
    scene_start(&s);
    assert_int_equal(support_in_child(child_exits, &s, CHILD_MS), 0);
    scene_finish(&s);
}

/* ---- futures ----------------------------------------------------------- */

static int child_drops_futures(void *arg)
{
    scene *s = arg;
    /* Extra references first, so the last unref of each comes below. */
    for (int i = 0; i < OUT; i++) {
        ppx_future_ref(s->out[i]);
        ppx_future_unref(s->out[i]);
        ppx_future_unref(s->out[i]);
    }
    ppx_future_unref(s->done); /* freed here, as the parent's goes on */
    ppx_pool_free(s->p);
    return 0;
}

static void test_child_dropping_its_futures_leaves_the_parents_to_resolve(void **state)
{
    (void)state;
    scene s;
    scene_start(&s);
    assert_int_equal(support_in_child(child_drops_futures, &s, CHILD_MS), 0);
    scene_finish(&s);
}

/* ---- the loop ---------------------------------------------------------- */

typedef struct loop_scene {
    uv_loop_t loop;
    ppx_pool *p;
    ppx_awaitable *pending; /* 7 + 100, unresolved at the fork */
    ppx_future *fut;        /* 8 + 100, unresolved at the fork */
} loop_scene;

static int next_none(size_t i, const void **args, size_t *len, void *arg)
{
    (void)arg;
    (void)i;
    (void)args;
    (void)len;
    return 0;
}

static void on_result_none(size_t i, ppx_awaitable *result, void *arg)
{
    (void)arg;
    (void)i;
    (void)result;
}

/* Refused, then the copy freed: its close hook closes the binding's
 * handles on the child's copy of the loop, which never called
 * uv_loop_fork, so shares the creator's epoll set: that must not cost the
 * creator its watch on the pool. */
static int child_uses_loop(void *arg)
{
    loop_scene *ls = arg;
    static const unsigned char args[] = {0x93, 0x00, 0x01, 0x02};
    static const unsigned char items[] = {0x91, 0x93, 0x00, 0x01, 0x02};
    ppx_awaitable *aw = NULL;
    CHILD_CHECK(ppx_run_in_executor(&ls->loop, ls->p, "app_sleep_add", args, sizeof args,
                                    &aw) == PPX_EFORKED);
    CHILD_CHECK(ppx_run_in_executorf(&ls->loop, ls->p, &aw, "app_sleep_add", "iii", 0, 1,
                                     2) == PPX_EFORKED);
    CHILD_CHECK(ppx_run_in_executor_map(&ls->loop, ls->p, "app_sleep_add", items,
                                        sizeof items, 0, &aw) == PPX_EFORKED);
    CHILD_CHECK(ppx_map_lazy(&ls->loop, ls->p, "app_sleep_add", 4, next_none, on_result_none,
                             NULL, &aw) == PPX_EFORKED);
    CHILD_CHECK(ppx_wrap_future(&ls->loop, ls->fut, &aw) == PPX_EFORKED);
    CHILD_CHECK(aw == NULL);
    CHILD_CHECK(ppx_awaitable_state(ls->pending) == PPX_PENDING);
    ppx_pool_free(ls->p);
    CHILD_CHECK(ppx_awaitable_state(ls->pending) == PPX_CANCELLED);
    return 0;
}

static void test_loop_api_on_a_childs_copy_is_refused_and_the_parents_loop_goes_on(void **state)
{
    (void)state;
    loop_scene ls;
    assert_int_equal(uv_loop_init(&ls.loop), 0);
    ls.p = new_pool(2);
    ppx_awaitable *first;
    assert_int_equal(ppx_run_in_executorf(&ls.loop, ls.p, &first, "app_sleep_add", "iii", 0, 1,
                                          2), 0);
    assert_int_equal(ppx_run_until_complete(&ls.loop, first), 0);
    ppx_awaitable_unref(first);
    assert_int_equal(ppx_run_in_executorf(&ls.loop, ls.p, &ls.pending, "app_sleep_add", "iii",
                                          20, 7, 100), 0);
    ls.fut = sleep_add(ls.p, 20, 8, 100);
    assert_int_equal(support_in_child(child_uses_loop, &ls, CHILD_MS), 0);

    /* The creator's loop still hears its pool: through the uv_poll the
     * child's copy closed. */
    assert_int_equal(ppx_run_until_complete(&ls.loop, ls.pending), 0);
    ppx_value v;
    int64_t x;
    assert_int_equal(ppx_awaitable_value(ls.pending, &v), 0);
    assert_int_equal(ppx_value_int(v, &x), 0);
    assert_int_equal(x, 107);
    ppx_awaitable *aw;
    assert_int_equal(ppx_wrap_future(&ls.loop, ls.fut, &aw), 0);
    assert_int_equal(ppx_run_until_complete(&ls.loop, aw), 0);
    assert_int_equal(support_future_int(ls.fut), 108);
    ppx_awaitable_unref(aw);
    ppx_awaitable_unref(ls.pending);
    ppx_future_unref(ls.fut);
    ppx_pool_free(ls.p);
    uv_run(&ls.loop, UV_RUN_DEFAULT);
    assert_int_equal(uv_loop_close(&ls.loop), 0);
}

/* ---- forks while other threads use the pool ---------------------------- */

typedef struct hammer {
    ppx_pool *p;
    atomic_bool stop;
    int wrong; /* calls that did not give their value */
    int calls;
} hammer;

static void *hammer_main(void *arg)
{
    hammer *h = arg;
    for (int i = 0; !atomic_load(&h->stop); i++) {
        ppx_future *f;
        int64_t v = -1;
        if (ppx_pool_submitf(h->p, &f, "app_sleep_add", "iii", 0, i, 1) != 0) {
            h->wrong++;
            continue;
        }
        if (ppx_future_wait(f, 30000) != 0 || ppx_future_int(f, &v) != 0 || v != i + 1)
            h->wrong++;
        ppx_future_unref(f);
        h->calls++;
    }
    return NULL;
}

static int child_frees_hammered(void *arg)
{
    ppx_pool_free(((hammer *)arg)->p);
    return 0;
}

/* Whatever another thread holds at the fork (the pool's lock, a pin on
 * one of its futures, a notify list not run yet), the child neither
 * blocks nor breaks the creator's pool. */
static void test_children_forked_while_a_thread_uses_the_pool_free_without_blocking(void **state)
{
    (void)state;
    hammer h = {.p = new_pool(2)};
    atomic_init(&h.stop, false);
    pthread_t th;
    assert_int_equal(pthread_create(&th, NULL, hammer_main, &h), 0);
    int status[20];
    for (int i = 0; i < 20; i++)
        status[i] = support_in_child(child_frees_hammered, &h, CHILD_MS);
    atomic_store(&h.stop, true);
    pthread_join(th, NULL); /* before any assertion leaves the test */
    for (int i = 0; i < 20; i++)
        assert_int_equal(status[i], 0);
    assert_int_equal(h.wrong, 0);
    assert_true(h.calls > 0);
    ppx_pool_stats st = PPX_POOL_STATS_INIT;
    ppx_pool_stats_get(h.p, &st);
    assert_int_equal(st.crashed, 0);
    assert_int_equal(st.respawns, 0);
    ppx_pool_free(h.p);
}

/* ---- a child's own pool ------------------------------------------------ */

static int child_makes_its_own_pool(void *arg)
{
    scene *s = arg;
    ppx_pool_free(s->p);
    ppx_pool *mine = NULL;
    ppx_pool_options o = PPX_POOL_OPTIONS(.workers = 1);
    support_valgrind_sizes(&o);
    CHILD_CHECK(ppx_pool_new(&o, &mine) == 0);
    ppx_future *f;
    int64_t v = 0;
    CHILD_CHECK(ppx_pool_submitf(mine, &f, "app_sleep_add", "iii", 0, 5, 6) == 0);
    CHILD_CHECK(ppx_future_wait(f, 30000) == 0 && ppx_future_int(f, &v) == 0 && v == 11);
    ppx_future_unref(f);
    ppx_pool_free(mine);
    return 0;
}

static void test_a_pool_a_child_makes_is_its_own(void **state)
{
    (void)state;
    scene s;
    scene_start(&s);
    assert_int_equal(support_in_child(child_makes_its_own_pool, &s, CHILD_MS), 0);
    scene_finish(&s);
}

/* ---- the default pool -------------------------------------------------- */

static int child_replaces_default_pool(void *arg)
{
    (void)arg;
    uv_loop_t loop; /* the creator's loop is not this process's */
    CHILD_CHECK(uv_loop_init(&loop) == 0);
    ppx_awaitable *aw = NULL;
    CHILD_CHECK(ppx_run_in_executorf(&loop, NULL, &aw, "app_sleep_add", "iii", 0, 1, 2) ==
                PPX_EFORKED);
    ppx_default_pool_free();
    CHILD_CHECK(ppx_default_pool() == NULL);
    CHILD_CHECK(ppx_run_in_executorf(&loop, NULL, &aw, "app_sleep_add", "iii", 0, 3, 4) == 0);
    CHILD_CHECK(ppx_run_until_complete(&loop, aw) == 0);
    ppx_value v;
    int64_t x = 0;
    CHILD_CHECK(ppx_awaitable_value(aw, &v) == 0 && ppx_value_int(v, &x) == 0 && x == 7);
    ppx_awaitable_unref(aw);
    ppx_default_pool_free();
    uv_run(&loop, UV_RUN_DEFAULT);
    CHILD_CHECK(uv_loop_close(&loop) == 0);
    return 0;
}

static void test_a_fork_replaces_the_default_pool_only_after_freeing_its_copy(void **state)
{
    (void)state;
    uv_loop_t loop;
    assert_int_equal(uv_loop_init(&loop), 0);
    ppx_awaitable *aw;
    assert_int_equal(ppx_run_in_executorf(&loop, NULL, &aw, "app_sleep_add", "iii", 0, 1, 2), 0);
    assert_int_equal(ppx_run_until_complete(&loop, aw), 0);
    ppx_awaitable_unref(aw);
    ppx_pool *mine = ppx_default_pool();
    assert_int_equal(support_in_child(child_replaces_default_pool, NULL, CHILD_MS), 0);
    assert_ptr_equal(ppx_default_pool(), mine);
    assert_int_equal(ppx_run_in_executorf(&loop, NULL, &aw, "app_sleep_add", "iii", 0, 5, 6), 0);
    assert_int_equal(ppx_run_until_complete(&loop, aw), 0);
    ppx_value v;
    int64_t x = 0;
    assert_int_equal(ppx_awaitable_value(aw, &v), 0);
    assert_int_equal(ppx_value_int(v, &x), 0);
    assert_int_equal(x, 11);
    ppx_awaitable_unref(aw);
    ppx_default_pool_free();
    uv_run(&loop, UV_RUN_DEFAULT);
    assert_int_equal(uv_loop_close(&loop), 0);
}

void hostile_app_register(void)
{
    ppx_register("app_sleep_add", fn_sleep_add, NULL);
}

int hostile_app_run(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_teardown(test_child_freeing_its_copy_leaves_every_parent_call_resolving, teardown),
        cmocka_unit_test_teardown(test_every_call_on_a_childs_copy_is_refused_with_eforked, teardown),
        cmocka_unit_test_teardown(test_child_leaving_through_exit_frees_its_copy_in_atexit, teardown),
        cmocka_unit_test_teardown(test_child_dropping_its_futures_leaves_the_parents_to_resolve, teardown),
        cmocka_unit_test_teardown(test_loop_api_on_a_childs_copy_is_refused_and_the_parents_loop_goes_on, teardown),
        cmocka_unit_test_teardown(test_children_forked_while_a_thread_uses_the_pool_free_without_blocking, teardown),
        cmocka_unit_test_teardown(test_a_pool_a_child_makes_is_its_own, teardown),
        cmocka_unit_test_teardown(test_a_fork_replaces_the_default_pool_only_after_freeing_its_copy, teardown),
    };
    return cmocka_run_group_tests_name("hostile_app", tests, NULL, NULL);
}
