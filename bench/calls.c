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
 */
#include "ppx.h"

#include <stdio.h>
#include <stdlib.h>

static int noop(ppx_call *c, void *u)
{
    (void)u;
    return ppx_return_nil(c);
}

int main(int argc, char **argv)
{
    long n = argc > 1 ? strtol(argv[1], NULL, 10) : 20000;
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
