/*
 * The "startup" and "idle" sections of bench_ppx (SPEC.md): how long a
 * pool takes from creation to its first result, by worker count and by
 * the parent's size, and what idle workers cost.
 */
#include "bench.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#define MIB (1024 * 1024)

/* Creation to the first no-op result through a loop, as the peers
 * measure it; the pool is freed afterwards (not timed). */
static double startup_once(int workers)
{
    uv_loop_t loop;
    uv_loop_init(&loop);
    double t = now_s();
    ppx_pool *p = pool_new(workers);
    ppx_awaitable *aw;
    ppx_run_in_executor(&loop, p, "noop", NULL, 0, &aw);
    await_one(&loop, aw);
    double ms = (now_s() - t) * 1e3;
    ppx_pool_free(p);
    uv_run(&loop, UV_RUN_DEFAULT);
    uv_loop_close(&loop);
    return ms;
}

static double startup_best(int workers, int runs)
{
    double best = 1e9;
    for (int k = 0; k < runs; k++) {
        double ms = startup_once(workers);
        best = ms < best ? ms : best;
    }
    return best;
}

/* Where the grown heap is kept: nothing may optimise it away. */
static char *volatile heap_kept;

static void grow_heap(size_t bytes)
{
    char *h = malloc(bytes);
    if (!h) {
        fprintf(stderr, "no memory for the heap\n");
        _exit(1);
    }
    memset(h, 1, bytes); /* touched: fork copies its page tables */
    heap_kept = h;
}

/* A 1 GiB parent, in a child of this process (which stays small for the
 * sections after this one). early: the pool is created first thing, as
 * docs/GUIDE.md suggests, then the heap grows; what the application
 * waits for is then the pool's creation plus its first call after the
 * growth. Otherwise the pool is created in the grown process. */
static double startup_big(bool early)
{
    int fds[2];
    if (pipe(fds) != 0)
        return -1;
    fflush(NULL);
    pid_t pid = fork();
    if (pid == 0) {
        close(fds[0]);
        double best = 1e9;
        if (early) {
            uv_loop_t loop;
            uv_loop_init(&loop);
            double t = now_s();
            ppx_pool *p = pool_new(2);
            double created = (now_s() - t) * 1e3;
            grow_heap((size_t)1024 * MIB);
            t = now_s();
            ppx_awaitable *aw;
            ppx_run_in_executor(&loop, p, "noop", NULL, 0, &aw);
            await_one(&loop, aw);
            best = created + (now_s() - t) * 1e3;
            ppx_pool_free(p);
            uv_run(&loop, UV_RUN_DEFAULT);
            uv_loop_close(&loop);
        } else {
            grow_heap((size_t)1024 * MIB);
            best = startup_best(2, 3);
        }
        ssize_t w = write(fds[1], &best, sizeof best);
        _exit(w == (ssize_t)sizeof best ? 0 : 1);
    }
    close(fds[1]);
    double ms = -1;
    if (pid < 0 || read(fds[0], &ms, sizeof ms) != (ssize_t)sizeof ms)
        ms = -1;
    close(fds[0]);
    if (pid > 0)
        waitpid(pid, NULL, 0);
    return ms;
}

void bench_startup(void)
{
    double w2 = startup_best(2, 5);
    emit("startup_ms", "ppx", w2, "ms");
    double w16 = startup_best(16, 3), w64 = startup_best(64, 3);
    emit("startup_16w_ms", "ppx", w16, "ms");
    emit("startup_64w_ms", "ppx", w64, "ms");
    double late = startup_big(false), early = startup_big(true);
    emit("startup_1GiB_ms", "ppx", late, "ms");
    emit("startup_1GiB_early_ms", "ppx", early, "ms");
    fprintf(stderr,
            "startup: 2 workers %.3f ms, 16 %.3f (x%.1f), 64 %.3f (x%.1f); 1 GiB parent %.3f ms "
            "(x%.1f), pool made before the heap %.3f ms (x%.1f)\n",
            w2, w16, w16 / w2, w64, w64 / w2, late, late / w2, early, early / w2);
}

/* CPU time of process pid so far, in ns: the first field of
 * /proc/<pid>/schedstat (time on the CPU, at scheduler precision). */
static long long schedstat_ns(long pid)
{
    char path[64];
    snprintf(path, sizeof path, "/proc/%ld/schedstat", pid);
    FILE *f = fopen(path, "r");
    long long ns = -1;
    if (f && fscanf(f, "%lld", &ns) != 1)
        ns = -1;
    if (f)
        fclose(f);
    return ns;
}

/* ms of CPU per idle worker per second, over 5 s, with n workers, once
 * the pool has served calls and every worker has started (their
 * start-up and last spin are over by the 0.2 s pause). */
static double idle_per_worker(int n)
{
    ppx_pool *p = pool_new(n);
    uv_loop_t loop;
    uv_loop_init(&loop);
    for (int i = 0; i < 20 * n; i++) {
        ppx_awaitable *aw;
        ppx_run_in_executor(&loop, p, "noop", NULL, 0, &aw);
        await_one(&loop, aw);
    }
    long *pids = calloc((size_t)n, sizeof *pids);
    for (int i = 0; i < n; i++) {
        while (!(pids[i] = ppx_pool_worker_pid(p, i)))
            ppx_pool_process(p); /* a worker still starting */
    }
    usleep(200000);
    long long before = 0, after = 0;
    for (int i = 0; i < n; i++)
        before += schedstat_ns(pids[i]);
    double t = now_s();
    sleep(quick ? 1 : 5);
    double secs = now_s() - t;
    for (int i = 0; i < n; i++)
        after += schedstat_ns(pids[i]);
    free(pids);
    ppx_pool_free(p);
    uv_run(&loop, UV_RUN_DEFAULT);
    uv_loop_close(&loop);
    return (double)(after - before) / 1e6 / n / secs;
}

void bench_idle(void)
{
    ppx_pool *p = pool_new(2);
    uv_loop_t loop;
    uv_loop_init(&loop);
    for (int i = 0; i < 1000; i++) {
        ppx_awaitable *aw;
        ppx_run_in_executor(&loop, p, "noop", NULL, 0, &aw);
        await_one(&loop, aw);
    }
    long w0 = ppx_pool_worker_pid(p, 0), w1 = ppx_pool_worker_pid(p, 1);
    emit("idle_uss_kib", "ppx", uss_kib(w0), "KiB");
    double before = cpu_of(w0) + cpu_of(w1) + cpu_of(getpid());
    sleep(1); /* the pool has nothing to do; nothing should run */
    double after = cpu_of(w0) + cpu_of(w1) + cpu_of(getpid());
    emit("idle_cpu_ms", "ppx", (after - before) * 1e3, "ms");
    ppx_pool_free(p);
    uv_run(&loop, UV_RUN_DEFAULT);
    uv_loop_close(&loop);
    emit("idle_worker_cpu_2w", "ppx", idle_per_worker(2), "ms/s");
    emit("idle_worker_cpu_64w", "ppx", idle_per_worker(64), "ms/s");
}
