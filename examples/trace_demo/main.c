/*
 * trace_demo: a short run of a three-worker pool with its trace switched
 * on, the program behind docs/example-trace.json. Sleep-based calls of
 * different lengths, a call that raises, one that crashes its worker,
 * one cancelled while it runs, one that outlives its deadline and a
 * ppx_pool_map batch; then each worker's counters are printed.
 *
 *     trace_demo [TRACE.json]        (default: trace.json)
 *
 * Open the file in https://ui.perfetto.dev or chrome://tracing; see
 * docs/TRACING.md. Any program gets the same trace with PPX_TRACE=path.
 */
#include "ppx.h"

#include <inttypes.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

static void sleep_ms(int64_t ms)
{
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000};
    nanosleep(&ts, NULL);
}

static int64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Drives the pool for ms milliseconds (replies, deadlines, respawns):
 * ppx starts no thread, so something must, as a loop would. */
static void drive(ppx_pool *pool, int ms)
{
    for (int64_t end = now_ms() + ms, left; (left = end - now_ms()) > 0;) {
        struct pollfd pf = {ppx_pool_fd(pool), POLLIN, 0};
        poll(&pf, 1, (int)left);
        ppx_pool_process(pool);
    }
}

/* work(ms): sleeps ms milliseconds (a stand-in for computing), in 1 ms
 * steps so that a cancelled or timed-out call stops early. */
static int fn_work(ppx_call *c, void *u)
{
    (void)u;
    int64_t ms = 0;
    if (ppx_call_arg_int(c, 0, &ms) || ms < 0 || ms > 10000)
        return ppx_raise(c, "ValueError", "work takes milliseconds, 0..10000");
    for (int64_t i = 0; i < ms && !ppx_call_cancelled(c); i++)
        sleep_ms(1);
    return ppx_return_int(c, ms);
}

static int fn_fail(ppx_call *c, void *u)
{
    (void)u;
    sleep_ms(8);
    return ppx_raise(c, "ValueError", "this input is not welcome");
}

static int fn_crash(ppx_call *c, void *u)
{
    (void)c;
    (void)u;
    sleep_ms(12);
    raise(SIGSEGV);
    return 0;
}

static ppx_future *submit(ppx_pool *pool, const char *fn, int ms, int timeout_ms)
{
    void *args;
    size_t len;
    ppx_future *f = NULL;
    ppx_call_options o = PPX_CALL_OPTIONS(.timeout_ms = timeout_ms);
    if (ppx_pack(&args, &len, "i", ms) == 0) {
        if (ppx_pool_submit_ex(pool, fn, args, len, &o, &f) != 0)
            f = NULL;
        free(args);
    }
    return f;
}

int main(int argc, char **argv)
{
    const char *path = argc > 1 ? argv[1] : "trace.json";
    ppx_register("work", fn_work, NULL);
    ppx_register("fail", fn_fail, NULL);
    ppx_register("crash", fn_crash, NULL);

    ppx_pool *pool;
    ppx_pool_options opts = PPX_POOL_OPTIONS(.workers = 3, .trace_path = path);
    int rc = ppx_pool_new(&opts, &pool);
    if (rc) {
        fprintf(stderr, "trace_demo: %s: %s\n", ppx_strerror(rc), ppx_last_error());
        return 1;
    }

    enum { N = 16 };
    ppx_future *f[N];
    int k = 0;
    static const int lengths[] = {30, 10, 20, 15, 40, 5, 25, 10};
    for (int i = 0; i < 8; i++)
        f[k++] = submit(pool, "work", lengths[i], 0);
    f[k++] = submit(pool, "fail", 0, 0);
    f[k++] = submit(pool, "crash", 0, 0);
    ppx_future *cancelled = f[k++] = submit(pool, "work", 500, 0);
    f[k++] = submit(pool, "work", 400, 60); /* deadline: 60 ms */
    for (int i = 0; i < 3; i++)
        f[k++] = submit(pool, "work", 10 + 5 * i, 0);
    /* A batch, one frame run back to back by one worker: work(5),
     * work(10), work(5), work(10), as msgpack [[5], [10], [5], [10]]. */
    static const unsigned char batch[] = {0x94, 0x91, 5, 0x91, 10, 0x91, 5, 0x91, 10};
    if (ppx_pool_map(pool, "work", batch, sizeof batch, NULL, &f[k]) == 0)
        k++;

    /* Cancel the long call once it has run for a while. */
    while (cancelled && ppx_future_state(cancelled) == PPX_PENDING)
        drive(pool, 1);
    drive(pool, 40);
    if (cancelled)
        ppx_future_cancel(cancelled);

    int done = 0, failed = 0, other = 0;
    for (int i = 0; i < k; i++) {
        if (!f[i])
            continue;
        ppx_future_wait(f[i], -1);
        ppx_state st = ppx_future_state(f[i]);
        done += st == PPX_DONE;
        failed += st == PPX_FAILED;
        other += st == PPX_CANCELLED;
    }
    /* Let the cancelled call's worker answer, so its slice is complete. */
    while (ppx_pool_busy(pool))
        drive(pool, 2);
    printf("%d done, %d failed, %d cancelled\n", done, failed, other);
    for (int i = 0; i < ppx_pool_workers(pool); i++) {
        ppx_worker_stats ws = PPX_WORKER_STATS_INIT;
        if (ppx_pool_worker_stats(pool, i, &ws) == 0)
            printf("worker %d: pid %ld, %" PRIu64 " completed, %" PRIu64 " failed, %" PRIu64
                   " crashed, %" PRIu64 " restarts, busy %.1f ms\n",
                   i, ws.pid, ws.completed, ws.failed, ws.crashed, ws.restarts,
                   (double)ws.busy_ns / 1e6);
    }
    for (int i = 0; i < k; i++)
        ppx_future_unref(f[i]);
    ppx_pool_free(pool);
    printf("trace written to %s\n", path);
    return 0;
}
