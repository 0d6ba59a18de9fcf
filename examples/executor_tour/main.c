/*
 * The executor surface in one short program, one section per call:
 * wait, wait_for, as_completed, a task group, the lazy map and the
 * thread-pool executor. Each prints what it saw.
 *
 *   ./build/examples/executor_tour
 */
#include <ppx.h>

#include <stdio.h>
#include <time.h>
#include <unistd.h>
#include <uv.h>

/* nap(ms, x): sleeps ms (stopping early if cancelled), returns x; a
 * negative x raises ValueError. */
static int nap(ppx_call *c, void *u)
{
    (void)u;
    int64_t ms, x;
    if (ppx_call_arg_int(c, 0, &ms) || ppx_call_arg_int(c, 1, &x))
        return ppx_raise(c, "TypeError", "nap takes (ms, x)");
    for (int64_t t = 0; t < ms && !ppx_call_cancelled(c); t++)
        nanosleep(&(struct timespec){0, 1000000}, NULL);
    if (x < 0)
        return ppx_raise(c, "ValueError", "x = %lld", (long long)x);
    return ppx_return_int(c, x);
}

static uv_loop_t loop;
static ppx_pool *pool;

static ppx_awaitable *run(int ms, int x)
{
    ppx_awaitable *aw = NULL;
    ppx_run_in_executorf(&loop, pool, &aw, "nap", "ii", ms, x);
    return aw;
}

static long long value_of(ppx_awaitable *aw)
{
    ppx_value v;
    int64_t i = 0;
    if (ppx_awaitable_value(aw, &v) == 0)
        ppx_value_int(v, &i);
    return (long long)i;
}

static void unref(ppx_awaitable **aw, int n)
{
    for (int i = 0; i < n; i++)
        ppx_awaitable_unref(aw[i]);
}

static void show_wait(void)
{
    ppx_awaitable *aw[3] = {run(10, 1), run(300, 2), run(20, -3)}, *w;
    ppx_wait(&loop, aw, 3, PPX_FIRST_EXCEPTION, -1, &w);
    ppx_run_until_complete(&loop, w);
    printf("wait(FIRST_EXCEPTION): %s raised; the 300 ms call is %s\n",
           ppx_awaitable_error(aw[2])->type, ppx_awaitable_done(aw[1]) ? "done" : "still running");
    ppx_awaitable_cancel(aw[1]);
    unref(aw, 3);
    ppx_awaitable_unref(w);
}

static void show_wait_for(void)
{
    ppx_awaitable *slow = run(5000, 4), *t;
    ppx_wait_for(&loop, slow, 50, &t);
    ppx_run_until_complete(&loop, t);
    printf("wait_for(50 ms) on a 5 s call: %s, and the call was %s\n",
           ppx_awaitable_error(t)->type,
           ppx_awaitable_state(slow) == PPX_CANCELLED ? "cancelled" : "left running");
    ppx_awaitable_unref(slow);
    ppx_awaitable_unref(t);
}

static void show_as_completed(void)
{
    ppx_awaitable *aw[3] = {run(60, 60), run(20, 20), run(40, 40)}, *next;
    ppx_as_completed *it;
    ppx_as_completed_new(&loop, aw, 3, &it);
    printf("as_completed:");
    while (ppx_as_completed_next(it, -1, &next) == 0)
        printf(" %lld", value_of(next));
    printf("\n");
    ppx_as_completed_free(it);
    unref(aw, 3);
}

static void show_task_group(void)
{
    ppx_awaitable *g, *aw[3] = {run(2000, 1), run(2000, 2), run(10, -1)};
    ppx_task_group(&loop, &g);
    for (int i = 0; i < 3; i++)
        ppx_task_group_add(g, aw[i]);
    ppx_task_group_close(g);
    ppx_run_until_complete(&loop, g);
    printf("task group: %s (%s); the two 2 s tasks were %s\n", ppx_awaitable_error(g)->type,
           ppx_awaitable_error(g)->message,
           ppx_awaitable_state(aw[0]) == PPX_CANCELLED ? "cancelled" : "not cancelled");
    unref(aw, 3);
    ppx_awaitable_unref(g);
}

static int next_input(size_t i, const void **args, size_t *len, void *arg)
{
    static unsigned char buf[3];
    (void)arg;
    if (i >= 10)
        return 0;
    buf[0] = 0x92; /* [0, i]: nap 0 ms, return i */
    buf[1] = 0x00;
    buf[2] = (unsigned char)i;
    *args = buf;
    *len = 3;
    return 1;
}

static void on_result(size_t i, ppx_awaitable *aw, void *arg)
{
    long long *sum = arg;
    (void)i;
    *sum += value_of(aw);
}

static void show_lazy_map(void)
{
    long long sum = 0;
    ppx_awaitable *m;
    ppx_map_lazy(&loop, pool, "nap", 4, next_input, on_result, &sum, &m);
    ppx_run_until_complete(&loop, m);
    printf("lazy map over 10 inputs, 4 in flight: sum %lld\n", sum);
    ppx_awaitable_unref(m);
}

static void show_threads(void)
{
    ppx_awaitable *aw;
    ppx_run_in_executorf(&loop, ppx_thread_pool(), &aw, "nap", "ii", 10, 7);
    ppx_run_until_complete(&loop, aw);
    printf("thread pool: %lld, computed in this process (pid %d)\n", value_of(aw), (int)getpid());
    ppx_awaitable_unref(aw);
}

int main(void)
{
    ppx_register("nap", nap, NULL);
    if (ppx_pool_new(&PPX_POOL_OPTIONS(.workers = 3), &pool) != 0)
        return 1;
    uv_loop_init(&loop);
    show_wait();
    show_wait_for();
    show_as_completed();
    show_task_group();
    show_lazy_map();
    show_threads();
    ppx_pool_free(pool);
    uv_run(&loop, UV_RUN_DEFAULT);
    return uv_loop_close(&loop) == 0 ? 0 : 1;
}
