/*
 * What bench_ppx's sections share (ppx_bench.c defines it; startup.c
 * holds the start-up and idle sections).
 */
#ifndef PPX_BENCH_BENCH_H
#define PPX_BENCH_BENCH_H
#include "ppx.h"

#include <stdbool.h>
#include <uv.h>

extern bool quick;

double now_s(void);
/* One JSON line (SPEC.md). */
void emit(const char *metric, const char *impl, double value, const char *unit);
/* A pool of that many workers, or the program exits. */
ppx_pool *pool_new(int workers);
/* Runs aw to completion and drops it; exits unless it is DONE. */
void await_one(uv_loop_t *loop, ppx_awaitable *aw);
/* CPU seconds (user + sys) of process pid, from /proc/<pid>/stat. */
double cpu_of(long pid);
/* Private memory of process pid (USS), KiB. */
double uss_kib(long pid);

void bench_startup(void);
void bench_idle(void);

#endif
