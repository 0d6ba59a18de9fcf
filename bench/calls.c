/*
 * The parent's work per call, counted rather than timed: N no-op calls
 * one after another on one worker (submit, wait, unref), for an
 * instruction counter to read. The machine is shared and noisy; counted
 * instructions are not. Run it under callgrind and read the parent's
 * total (the lowest pid; the others are the fork server and the worker):
 *
 *   valgrind --tool=callgrind --callgrind-out-file=/dev/null \
 *       build-bench/bench/bench_calls 20000 2>&1 | grep Collected | sort | head -1
 *
 * Recorded (release build, gcc 12): 65.28M at 6e40ae7 (0.2), 67.59M
 * after progress and handles came in, 62.95M at 0.4.0. A jump of ~4M
 * has been seen once from an allocation alone: malloc + memset of a
 * future folded back into calloc by the compiler, which skips glibc's
 * per-thread cache (see ppx__future_new). Check here after touching
 * the per-call path.
 *
 * With "loop" after N, the same calls go through the loop API
 * (ppx_run_in_executor, ppx_run_until_complete, unref). This file as it
 * is now (its libuv calls add ~0.5M of start-up to the blocking count),
 * built against 0.4.0 and against issue 15's one block per call: 63.45M
 * -> 60.72M blocking, 99.6M -> 87.95M through the loop.
 *
 * With "stream" after N, the shape of bench_ppx's tput_one_by_one: all
 * N submitted through the loop API, one gather, the loop run to its end.
 * Its count moves by several M from run to run (how many replies each
 * round of the loop finds); compare interleaved runs. Issue 15's stream
 * work (0.5.0), against 0380e20, runs interleaved: stream 72.6-73.8M ->
 * 58.5-60.5M, loop 89.44M -> 76.48M, blocking 62.24M -> 54.58M.
 * Under valgrind a call's block comes from malloc, not the pool's slab
 * (procpool/slab.h): with the slab, as outside valgrind, stream counts
 * ~5M (~260 a call) less; loop and blocking barely move.
 */
#include "ppx.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <uv.h>

static int noop(ppx_call *c, void *u)
{
    (void)u;
    return ppx_return_nil(c);
}

/* The loop API's calls: one awaitable each, run to completion. */
static int loop_calls(ppx_pool *p, long n)
{
    uv_loop_t loop;
    if (uv_loop_init(&loop))
        return 1;
    int rc = 0;
    for (long i = 0; i < n && rc == 0; i++) {
        ppx_awaitable *aw;
        if ((rc = ppx_run_in_executor(&loop, p, "noop", NULL, 0, &aw)) ||
            (rc = ppx_run_until_complete(&loop, aw)))
            fprintf(stderr, "call %ld: %s\n", i, ppx_strerror(rc));
        else
            ppx_awaitable_unref(aw);
    }
    ppx_pool_free(p);
    uv_run(&loop, UV_RUN_DEFAULT); /* closes the binding's handles */
    uv_loop_close(&loop);
    return rc != 0;
}

/* The streaming shape of bench_ppx's tput_one_by_one: all n submitted,
 * one gather, the loop run until it resolves. */
static int stream_calls(ppx_pool *p, long n)
{
    uv_loop_t loop;
    ppx_awaitable **aw = malloc((size_t)n * sizeof *aw), *g = NULL;
    if (!aw || uv_loop_init(&loop))
        return 1;
    int rc = 0;
    for (long i = 0; i < n && rc == 0; i++)
        if ((rc = ppx_run_in_executor(&loop, p, "noop", NULL, 0, &aw[i])))
            n = i;
    if (rc == 0 && (rc = ppx_gather(&loop, aw, (size_t)n, 0, &g)) == 0)
        rc = ppx_run_until_complete(&loop, g);
    if (rc)
        fprintf(stderr, "stream: %s\n", ppx_strerror(rc));
    for (long i = 0; i < n; i++)
        ppx_awaitable_unref(aw[i]);
    if (g)
        ppx_awaitable_unref(g);
    free(aw);
    ppx_pool_free(p);
    uv_run(&loop, UV_RUN_DEFAULT);
    uv_loop_close(&loop);
    return rc != 0;
}

int main(int argc, char **argv)
{
    long n = argc > 1 ? strtol(argv[1], NULL, 10) : 20000;
    bool through_loop = argc > 2 && strcmp(argv[2], "loop") == 0;
    bool streaming = argc > 2 && strcmp(argv[2], "stream") == 0;
    ppx_register("noop", noop, NULL);
    /* A small arena: valgrind's mprotect of the default one in the worker
     * takes most of a second and is no part of a call. */
    ppx_pool_options o = PPX_POOL_OPTIONS(.workers = 1, .arena_bytes = 16 << 20);
    ppx_pool *p;
    int rc = ppx_pool_new(&o, &p);
    if (rc) {
        fprintf(stderr, "ppx_pool_new: %s\n", ppx_strerror(rc));
        return 1;
    }
    if (through_loop)
        return loop_calls(p, n);
    if (streaming)
        return stream_calls(p, n);
    for (long i = 0; i < n; i++) {
        ppx_future *f;
        if ((rc = ppx_pool_submit(p, "noop", NULL, 0, &f)) || (rc = ppx_future_wait(f, -1))) {
            fprintf(stderr, "call %ld: %s\n", i, ppx_strerror(rc));
            return 1;
        }
        ppx_future_unref(f);
    }
    ppx_pool_free(p);
    return 0;
}
