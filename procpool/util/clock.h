/*
 * The monotonic clock every part of ppx measures with (deadlines, traces,
 * statistics), in nanoseconds. clock_gettime(CLOCK_MONOTONIC) goes
 * through the vDSO: no system call, cheap enough to read per call.
 */
#ifndef PPX_UTIL_CLOCK_H
#define PPX_UTIL_CLOCK_H
#include <stdint.h>
#include <time.h>

static inline int64_t ppx__now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

/* A deadline timeout_ms from now, or -1 (none) for a negative timeout. */
static inline int64_t ppx__deadline_of(int timeout_ms)
{
    return timeout_ms < 0 ? -1 : ppx__now_ns() + (int64_t)timeout_ms * 1000000LL;
}

/* Milliseconds left until deadline, rounded up: -1 for none, 0 once it
 * has passed. */
static inline int ppx__remaining_ms(int64_t deadline)
{
    if (deadline < 0)
        return -1;
    int64_t left = deadline - ppx__now_ns();
    if (left <= 0)
        return 0;
    return (int)((left + 999999) / 1000000);
}

#endif
