/*
 * What the floor programs (floor.c, floor_process.c, stream_floor.c)
 * share: a clock, one JSON line per figure (SPEC.md), and an exit that
 * names the program. They link no ppx API, only shm/.
 */
#ifndef PPX_BENCH_FLOOR_COMMON_H
#define PPX_BENCH_FLOOR_COMMON_H
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static inline uint64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static inline void emit(const char *metric, const char *impl, double value, const char *unit)
{
    printf("{\"metric\": \"%s\", \"impl\": \"%s\", \"value\": %.3f, \"unit\": \"%s\"}\n",
           metric, impl, value, unit);
    fflush(stdout);
}

/* err: an errno value, either sign. */
static inline _Noreturn void die(const char *what, int err)
{
    fprintf(stderr, "%s: %s: %s\n", program_invocation_short_name, what,
            strerror(err < 0 ? -err : err));
    exit(1);
}

#endif
