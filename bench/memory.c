/*
 * Heap per pending call, counted rather than timed: the parent's heap in
 * use (mallinfo2) before and after submitting N no-op calls that cannot
 * start (the only worker runs a call that waits to be cancelled), divided
 * by N. Blocking API (ppx_pool_submit: task, future, queued frame) and
 * loop API (ppx_run_in_executor: the same plus the awaitable). Issue 15's
 * targets: <= 256 B and <= 384 B.
 *
 * JSON lines on stdout (see SPEC.md).
 */
#include "ppx.h"

#include <malloc.h>
#include <stdio.h>
#include <stdlib.h>
#include <uv.h>

enum { N = 20000, WARM = 100 };

static int noop(ppx_call *c, void *u)
{
    (void)u;
    return ppx_return_nil(c);
}

static int wait_cancel(ppx_call *c, void *u)
{
    (void)u;
    while (!ppx_call_cancelled(c))
        ;
    return ppx_return_nil(c);
}

static void emit(const char *impl, double bytes)
{
    printf("{\"metric\": \"pending_call_bytes\", \"impl\": \"%s\", \"value\": %.1f, "
           "\"unit\": \"B\"}\n",
           impl, bytes);
}

static void fail(const char *what, int rc)
{
    fprintf(stderr, "bench_memory: %s: %s\n", what, ppx_strerror(rc));
    exit(1);
}

int main(void)
{
    ppx_register("noop", noop, NULL);
    ppx_register("wait_cancel", wait_cancel, NULL);
    ppx_pool *p;
    int rc = ppx_pool_new(&PPX_POOL_OPTIONS(.workers = 1), &p);
    if (rc)
        fail("ppx_pool_new", rc);
    ppx_future *gate;
    if ((rc = ppx_pool_submit(p, "wait_cancel", NULL, 0, &gate)))
        fail("submit", rc);
    ppx_future **f = malloc(N * sizeof *f);
    ppx_awaitable **aw = malloc(N * sizeof *aw);
    uv_loop_t loop;
    if (!f || !aw || uv_loop_init(&loop))
        fail("setup", PPX_ENOMEM);
    /* The first calls grow the pool's queue and the loop's tables. */
    for (int i = 0; i < WARM; i++)
        if ((rc = ppx_pool_submit(p, "noop", NULL, 0, &f[i])))
            fail("submit", rc);
    size_t before = mallinfo2().uordblks;
    for (int i = WARM; i < N; i++)
        if ((rc = ppx_pool_submit(p, "noop", NULL, 0, &f[i])))
            fail("submit", rc);
    emit("ppx", (double)(mallinfo2().uordblks - before) / (N - WARM));

    for (int i = 0; i < WARM; i++)
        if ((rc = ppx_run_in_executor(&loop, p, "noop", NULL, 0, &aw[i])))
            fail("run_in_executor", rc);
    before = mallinfo2().uordblks;
    for (int i = WARM; i < N; i++)
        if ((rc = ppx_run_in_executor(&loop, p, "noop", NULL, 0, &aw[i])))
            fail("run_in_executor", rc);
    emit("ppx_loop", (double)(mallinfo2().uordblks - before) / (N - WARM));

    ppx_future_cancel(gate);
    for (int i = 0; i < N; i++) {
        ppx_future_unref(f[i]);
        ppx_awaitable_unref(aw[i]);
    }
    ppx_future_unref(gate);
    ppx_pool_free(p);
    uv_run(&loop, UV_RUN_DEFAULT);
    uv_loop_close(&loop);
    free(f);
    free(aw);
    return 0;
}
