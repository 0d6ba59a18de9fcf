/*
 * Memory per pending call, counted rather than timed: the parent's
 * memory in use before and after submitting N no-op calls that cannot
 * start (the only worker runs a call that waits to be cancelled), divided
 * by N. In use: malloc's heap (mallinfo2) plus the resident memory the
 * heap does not account for, i.e. the pool's slab of call blocks
 * (procpool/slab.h), read from /proc/self/statm; both before and after,
 * with this program's own arrays faulted in beforehand. The slab grows in
 * chunks of up to 2 MiB, so N is large enough for one chunk's rounding
 * to stay within a few bytes a call. Blocking API (ppx_pool_submit: task, future, queued frame) and
 * loop API (ppx_run_in_executor: the same plus the awaitable). Issue 15's
 * targets: <= 256 B and <= 384 B.
 *
 * JSON lines on stdout (see SPEC.md).
 */
#include "ppx.h"

#include <malloc.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <uv.h>

enum { N = 200000, WARM = 100 };

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

/* Bytes in use: the heap's (mallinfo2), plus what became resident
 * outside the heap (resident memory less the heap's mapped bytes; the
 * rest of the process is the same before and after). */
static double in_use(void)
{
    struct mallinfo2 mi = mallinfo2();
    long pages = 0, resident = 0;
    FILE *f = fopen("/proc/self/statm", "r");
    if (!f || fscanf(f, "%ld %ld", &pages, &resident) != 2) {
        fprintf(stderr, "bench_memory: cannot read /proc/self/statm\n");
        exit(1);
    }
    fclose(f);
    double outside_heap = (double)resident * (double)sysconf(_SC_PAGESIZE) -
                          (double)(mi.arena + mi.hblkhd);
    return (double)mi.uordblks + outside_heap;
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
    memset(f, 0, N * sizeof *f); /* resident before the first count */
    memset(aw, 0, N * sizeof *aw);
    /* The first calls grow the pool's queue and the loop's tables. */
    for (int i = 0; i < WARM; i++)
        if ((rc = ppx_pool_submit(p, "noop", NULL, 0, &f[i])))
            fail("submit", rc);
    double before = in_use();
    for (int i = WARM; i < N; i++)
        if ((rc = ppx_pool_submit(p, "noop", NULL, 0, &f[i])))
            fail("submit", rc);
    emit("ppx", (in_use() - before) / (N - WARM));

    for (int i = 0; i < WARM; i++)
        if ((rc = ppx_run_in_executor(&loop, p, "noop", NULL, 0, &aw[i])))
            fail("run_in_executor", rc);
    before = in_use();
    for (int i = WARM; i < N; i++)
        if ((rc = ppx_run_in_executor(&loop, p, "noop", NULL, 0, &aw[i])))
            fail("run_in_executor", rc);
    emit("ppx_loop", (in_use() - before) / (N - WARM));

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
