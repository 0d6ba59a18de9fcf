/*
 * ppx's side of the benchmark suite (see SPEC.md): each metric with the
 * workload the peers use, printed as JSON lines. Run through bench/run.
 */
#include "bench.h"

#include <dirent.h>
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>
#include <uv.h>

bool quick;

double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

void emit(const char *metric, const char *impl, double value, const char *unit)
{
    printf("{\"metric\": \"%s\", \"impl\": \"%s\", \"value\": %.6g, \"unit\": \"%s\"}\n",
           metric, impl, value, unit);
    fflush(stdout);
}

/* ---- worker functions ----------------------------------------------------- */

static int fn_noop(ppx_call *c, void *u)
{
    (void)c;
    (void)u;
    return 0;
}

static int fn_echo(ppx_call *c, void *u)
{
    (void)u;
    ppx_value v;
    int rc = ppx_call_arg(c, 0, &v);
    return rc ? rc : ppx_return_raw(c, v.data, v.len);
}

/* The zero-copy echo: reads both ends of buffer argument 0 in place (so
 * the worker did touch it) and hands the buffer itself back. */
static int fn_echo_buffer(ppx_call *c, void *u)
{
    (void)u;
    const unsigned char *d;
    size_t len;
    if (ppx_call_arg_buffer(c, 0, (const void **)&d, &len) || len == 0 || d[0] != d[len - 1])
        return ppx_raise(c, "BufferError", "not the buffer sent");
    return ppx_return_buffer(c, 0);
}

static volatile uint64_t sink;
static uint64_t spin_iterations; /* calibrated to 0.25 s, before the pools */

static uint64_t spin(uint64_t n)
{
    uint64_t x = 0;
    for (uint64_t i = 0; i < n; i++) {
        x += i * 2654435761u;
        __asm__("" : "+r"(x));
    }
    return x;
}

static int fn_cpu(ppx_call *c, void *u)
{
    (void)u;
    uint64_t n;
    ppx_call_arg_uint(c, 0, &n);
    for (uint64_t done = 0; done < n; done += 1u << 22) {
        sink = spin(n - done < (1u << 22) ? n - done : (1u << 22));
        if (ppx_call_cancelled(c))
            return ppx_raise(c, "CancelledError", "stopped");
    }
    return 0;
}

static int fn_fail_after(ppx_call *c, void *u)
{
    (void)u;
    int64_t ms;
    ppx_call_arg_int(c, 0, &ms);
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
    return ppx_raise(c, "ValueError", "failed on purpose");
}

/* ---- helpers --------------------------------------------------------------- */

ppx_pool *pool_new(int workers)
{
    ppx_pool *p;
    int rc = ppx_pool_new(&PPX_POOL_OPTIONS(.workers = workers), &p);
    if (rc) {
        fprintf(stderr, "ppx_pool_new: %s\n", ppx_strerror(rc));
        exit(1);
    }
    return p;
}

void await_one(uv_loop_t *loop, ppx_awaitable *aw)
{
    ppx_run_until_complete(loop, aw);
    if (ppx_awaitable_state(aw) != PPX_DONE) {
        fprintf(stderr, "call failed: %s\n", ppx_awaitable_error(aw)->message);
        exit(1);
    }
    ppx_awaitable_unref(aw);
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

/* CPU seconds (user + sys) of process pid, from /proc. */
double cpu_of(long pid)
{
    char path[64], buf[1024];
    snprintf(path, sizeof path, "/proc/%ld/stat", pid);
    FILE *f = fopen(path, "r");
    if (!f)
        return -1;
    size_t n = fread(buf, 1, sizeof buf - 1, f);
    fclose(f);
    buf[n] = '\0';
    char *p = strrchr(buf, ')');
    unsigned long ut = 0, st = 0;
    if (!p || sscanf(p + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %lu %lu", &ut, &st) != 2)
        return -1;
    return (double)(ut + st) / (double)sysconf(_SC_CLK_TCK);
}

double uss_kib(long pid)
{
    char path[64], line[256];
    snprintf(path, sizeof path, "/proc/%ld/smaps_rollup", pid);
    FILE *f = fopen(path, "r");
    double kib = 0;
    while (f && fgets(line, sizeof line, f)) {
        unsigned long v;
        if (sscanf(line, "Private_Clean: %lu kB", &v) == 1 ||
            sscanf(line, "Private_Dirty: %lu kB", &v) == 1)
            kib += (double)v;
    }
    if (f)
        fclose(f);
    return kib;
}

/* ---- metrics ---------------------------------------------------------------- */

/* impl "ppx_sandbox": the workers under PPX_SANDBOX_COMPUTE, for its
 * per-call cost (none expected: the filter runs only on system calls,
 * and a call's path makes few). Exits when there is no sandbox here. */
static ppx_pool *pool_for(const char *impl, int workers, int spin_us)
{
    ppx_pool *p;
    bool sandbox = strcmp(impl, "ppx_sandbox") == 0;
    int rc = ppx_pool_new(&PPX_POOL_OPTIONS(.workers = workers, .parent_spin_us = spin_us,
                                            .sandbox = sandbox ? PPX_SANDBOX_COMPUTE : 0),
                          &p);
    if (rc) {
        fprintf(stderr, "ppx_pool_new (%s): %s: %s\n", impl, ppx_strerror(rc), ppx_last_error());
        exit(1);
    }
    return p;
}

static void bench_rtt(const char *impl, int spin_us)
{
    ppx_pool *p = pool_for(impl, 2, spin_us);
    uv_loop_t loop;
    uv_loop_init(&loop);
    int warm = 1000, n = quick ? 2000 : 20000;
    double *lat = malloc((size_t)n * sizeof *lat);
    for (int i = 0; i < warm + n; i++) {
        double t = now_s();
        ppx_awaitable *aw;
        ppx_run_in_executor(&loop, p, "noop", NULL, 0, &aw);
        await_one(&loop, aw);
        if (i >= warm)
            lat[i - warm] = (now_s() - t) * 1e6;
    }
    qsort(lat, (size_t)n, sizeof *lat, cmp_double);
    emit("rtt_median_us", impl, lat[n / 2], "us");
    emit("rtt_p99_us", impl, lat[(size_t)n * 99 / 100], "us");
    free(lat);
    ppx_pool_free(p);
    uv_run(&loop, UV_RUN_DEFAULT);
    uv_loop_close(&loop);
}

/* n calls submitted one by one, then gathered: calls per second. */
static double one_by_one(ppx_pool *p, uv_loop_t *loop, int n)
{
    ppx_awaitable **aw = malloc((size_t)n * sizeof *aw);
    double t = now_s();
    for (int i = 0; i < n; i++)
        ppx_run_in_executor(loop, p, "noop", NULL, 0, &aw[i]);
    ppx_awaitable *g;
    ppx_gather(loop, aw, (size_t)n, 0, &g);
    ppx_run_until_complete(loop, g);
    double secs = now_s() - t;
    if (ppx_awaitable_state(g) != PPX_DONE)
        exit(1);
    for (int i = 0; i < n; i++)
        ppx_awaitable_unref(aw[i]);
    ppx_awaitable_unref(g);
    free(aw);
    return n / secs;
}

/* tput_one_by_one for ppx and ppx_sandbox, each on a fresh pool, in the
 * order ppx, sandbox, sandbox, ppx, each the mean of its two runs, after
 * one run on a pool that is not counted: the first pool of a process
 * measures unlike the next ones whatever its options (on the 2-vCPU VM
 * up to 2x faster before 0.5.0; since rings wrap early, 1.5x slower: the
 * process's memory is cold), and uv_queue_work's stream is measured in a
 * process that has run its other benchmarks first. */
static void bench_one_by_one(void)
{
    static const char *const order[] = {"ppx" /* not counted */, "ppx", "ppx_sandbox",
                                        "ppx_sandbox", "ppx"};
    double sum[2] = {0, 0};
    for (int k = 0; k < 5; k++) {
        ppx_pool *p = pool_for(order[k], 2, 0);
        uv_loop_t loop;
        uv_loop_init(&loop);
        double rate = one_by_one(p, &loop, quick ? 10000 : 100000);
        if (k > 0)
            sum[k == 2 || k == 3] += rate;
        ppx_pool_free(p);
        uv_run(&loop, UV_RUN_DEFAULT);
        uv_loop_close(&loop);
    }
    emit("tput_one_by_one", "ppx", sum[0] / 2, "tasks/s");
    emit("tput_one_by_one", "ppx_sandbox", sum[1] / 2, "tasks/s");
}

/* tput_burst_warm: bursts of one_by_one on one pool, the first not
 * counted: what a server's later bursts cost, the memory they use
 * already faulted in (bench_uvwork's counterpart reuses its requests). */
static void bench_burst_warm(void)
{
    ppx_pool *p = pool_new(2);
    uv_loop_t loop;
    uv_loop_init(&loop);
    int n = quick ? 10000 : 100000;
    one_by_one(p, &loop, n);
    double warm = one_by_one(p, &loop, n);
    warm += one_by_one(p, &loop, n);
    emit("tput_burst_warm", "ppx", warm / 2, "tasks/s");
    ppx_pool_free(p);
    uv_run(&loop, UV_RUN_DEFAULT);
    uv_loop_close(&loop);
}

static void bench_throughput(void)
{
    ppx_pool *p = pool_new(2);
    uv_loop_t loop;
    uv_loop_init(&loop);
    int n = quick ? 10000 : 100000;
    double t, secs;

    /* The batch API: one call per item, shipped chunk_size calls a frame. */
    void *items;
    size_t len;
    {
        /* n empty argument arrays */
        unsigned char *b = malloc(5 + (size_t)n);
        b[0] = 0xdd;
        b[1] = (unsigned char)(n >> 24);
        b[2] = (unsigned char)(n >> 16);
        b[3] = (unsigned char)(n >> 8);
        b[4] = (unsigned char)n;
        memset(b + 5, 0x90, (size_t)n);
        items = b;
        len = 5 + (size_t)n;
    }
    t = now_s();
    ppx_awaitable *m;
    int rc = ppx_run_in_executor_map(&loop, p, "noop", items, len, 1000, &m);
    if (rc == 0)
        ppx_run_until_complete(&loop, m);
    secs = now_s() - t;
    if (rc || ppx_awaitable_state(m) != PPX_DONE) {
        fprintf(stderr, "map failed: %s\n", rc ? ppx_strerror(rc) : ppx_awaitable_error(m)->message);
        exit(1);
    }
    emit("tput_batch", "ppx", n / secs, "tasks/s");
    ppx_awaitable_unref(m);
    free(items);
    ppx_pool_free(p);
    uv_run(&loop, UV_RUN_DEFAULT);
    uv_loop_close(&loop);
}

/* zc_echo_64MiB_ms: 64 MiB written once into a shared buffer, then calls
 * that pass it, read it in place and hand it back, as in bench_echo; the
 * mean per call, against one memcpy of 64 MiB (floor_memcpy). */
static void bench_zero_copy_echo(uv_loop_t *loop, ppx_pool *p)
{
    size_t size = (size_t)64 << 20;
    int calls = quick ? 5 : 50;
    ppx_buffer *b;
    if (ppx_buffer_new(p, size, &b)) {
        fprintf(stderr, "ppx_buffer_new: %s\n", ppx_last_error());
        exit(1);
    }
    memset(ppx_buffer_data(b), 'x', size);
    void *args;
    size_t len;
    ppx_pack(&args, &len, "M", b);
    double t = 0;
    for (int i = 0; i <= calls; i++) { /* the first, untimed: warm-up */
        double t0 = now_s();
        ppx_awaitable *aw;
        ppx_run_in_executor(loop, p, "echo_buffer", args, len, &aw);
        ppx_run_until_complete(loop, aw);
        ppx_buffer *back;
        if (ppx_awaitable_buffer(aw, &back) || back != b)
            exit(1);
        ppx_buffer_unref(back);
        ppx_awaitable_unref(aw);
        if (i)
            t += now_s() - t0;
    }
    emit("zc_echo_64MiB_ms", "ppx", t / calls * 1e3, "ms");
    free(args);
    ppx_buffer_unref(b);
}

static void bench_echo(void)
{
    ppx_pool *p = pool_new(2);
    uv_loop_t loop;
    uv_loop_init(&loop);
    static const struct { const char *metric; size_t size; int calls; } cases[] = {
        {"echo_1KiB_MBps", 1024, 2000},
        {"echo_1MiB_MBps", 1u << 20, 200},
        {"echo_4MiB_MBps", 4u << 20, 50},
        {"echo_64MiB_MBps", 64u << 20, 5},
    };
    for (size_t k = 0; k < sizeof cases / sizeof cases[0]; k++) {
        size_t size = cases[k].size;
        int calls = quick && size > (1u << 20) ? 2 : cases[k].calls;
        char *buf = malloc(size);
        memset(buf, 'x', size);
        void *args;
        size_t len;
        ppx_pack(&args, &len, "B", buf, size);
        /* one untimed call so both sides have their buffers */
        ppx_awaitable *aw;
        ppx_run_in_executor(&loop, p, "echo", args, len, &aw);
        await_one(&loop, aw);
        double t = now_s();
        for (int i = 0; i < calls; i++) {
            ppx_run_in_executor(&loop, p, "echo", args, len, &aw);
            ppx_run_until_complete(&loop, aw);
            ppx_value v;
            const void *out;
            size_t outlen;
            if (ppx_awaitable_value(aw, &v) || ppx_value_bin(v, &out, &outlen) || outlen != size)
                exit(1);
            ppx_awaitable_unref(aw);
        }
        double secs = now_s() - t;
        emit(cases[k].metric, "ppx", 2.0 * (double)size * calls / secs / 1e6, "MB/s");
        free(args);
        free(buf);
    }
    bench_zero_copy_echo(&loop, p);
    ppx_pool_free(p);
    uv_run(&loop, UV_RUN_DEFAULT);
    uv_loop_close(&loop);
}

/* The faster of two runs of 4 CPU jobs on a pool of this many workers,
 * each of which has served a call first (as the peers do, SPEC.md). */
static double run_cpu_jobs(int workers)
{
    ppx_pool *p = pool_new(workers);
    uv_loop_t loop;
    uv_loop_init(&loop);
    ppx_awaitable *aw[4], *g;
    for (int i = 0; i < workers; i++)
        ppx_run_in_executor(&loop, p, "noop", NULL, 0, &aw[i]);
    ppx_gather(&loop, aw, (size_t)workers, 0, &g);
    ppx_run_until_complete(&loop, g);
    for (int i = 0; i < workers; i++)
        ppx_awaitable_unref(aw[i]);
    ppx_awaitable_unref(g);
    double best = 1e9;
    for (int run = 0; run < 2; run++) {
        double t = now_s();
        for (int i = 0; i < 4; i++)
            ppx_run_in_executorf(&loop, p, &aw[i], "cpu", "U", (unsigned long long)spin_iterations);
        ppx_gather(&loop, aw, 4, 0, &g);
        ppx_run_until_complete(&loop, g);
        double secs = now_s() - t;
        best = secs < best ? secs : best;
        for (int i = 0; i < 4; i++)
            ppx_awaitable_unref(aw[i]);
        ppx_awaitable_unref(g);
    }
    ppx_pool_free(p);
    uv_run(&loop, UV_RUN_DEFAULT);
    uv_loop_close(&loop);
    return best;
}

static void bench_speedup(void)
{
    double t1 = run_cpu_jobs(1), t2 = run_cpu_jobs(2);
    fprintf(stderr, "speedup: 1 worker %.3f s, 2 workers %.3f s\n", t1, t2);
    emit("speedup_2w", "ppx", t1 / t2, "x");
}

static void bench_error_stop(void)
{
    ppx_pool *p = pool_new(3);
    uv_loop_t loop;
    uv_loop_init(&loop);
    ppx_awaitable *aw[3], *g;
    ppx_run_in_executorf(&loop, p, &aw[0], "cpu", "U", (unsigned long long)spin_iterations * 40);
    ppx_run_in_executorf(&loop, p, &aw[1], "cpu", "U", (unsigned long long)spin_iterations * 40);
    ppx_run_in_executorf(&loop, p, &aw[2], "fail_after", "i", 50);
    ppx_gather(&loop, aw, 3, 0, &g);
    ppx_run_until_complete(&loop, g);
    double t = now_s();
    long pids[3];
    for (int i = 0; i < 3; i++)
        pids[i] = ppx_pool_worker_pid(p, i);
    /* Stopped: the call's worker has returned to idle (its CPU time stops
     * growing) or was replaced. Sample every millisecond. */
    double stopped = -1;
    double last[3] = {0};
    int still[3] = {0};
    for (int round = 0; round < 10000 && stopped < 0; round++) {
        uv_run(&loop, UV_RUN_NOWAIT);
        int busy = 0;
        for (int i = 0; i < 3; i++) {
            double c = cpu_of(pids[i]);
            if (c >= 0 && c != last[i]) {
                last[i] = c;
                still[i] = 0;
            } else {
                still[i]++;
            }
            busy += still[i] < 20; /* 20 ms without CPU time: stopped */
        }
        if (!busy)
            stopped = (now_s() - t) * 1e3 - 20;
        struct timespec ts = {0, 1000000};
        nanosleep(&ts, NULL);
    }
    emit("error_stop_ms", "ppx", stopped < 0 ? -1 : (stopped < 0.1 ? 0.1 : stopped), "ms");
    for (int i = 0; i < 3; i++)
        ppx_awaitable_unref(aw[i]);
    ppx_awaitable_unref(g);
    ppx_pool_free(p);
    uv_run(&loop, UV_RUN_DEFAULT);
    uv_loop_close(&loop);
}

static void calibrate(void)
{
    uint64_t n = 1u << 22;
    for (;;) {
        double t = now_s();
        sink = spin(n);
        double secs = now_s() - t;
        if (secs > 0.05) {
            spin_iterations = (uint64_t)((double)n * 0.25 / secs);
            return;
        }
        n *= 2;
    }
}

static bool wanted(const char *only, const char *name)
{
    return !only || strstr(only, name) != NULL;
}

int main(int argc, char **argv)
{
    const char *only = NULL;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--quick") == 0)
            quick = true;
        else if (strcmp(argv[i], "--only") == 0 && i + 1 < argc)
            only = argv[++i];
    }
    ppx_register("noop", fn_noop, NULL);
    ppx_register("echo", fn_echo, NULL);
    ppx_register("echo_buffer", fn_echo_buffer, NULL);
    ppx_register("cpu", fn_cpu, NULL);
    ppx_register("fail_after", fn_fail_after, NULL);
    /* Start-up first, in a process that has not grown yet, as the peers
     * measure it in a fresh interpreter (fork copies the page tables). */
    if (wanted(only, "startup"))
        bench_startup();
    calibrate();
    if (wanted(only, "rtt")) {
        bench_rtt("ppx", 0);
        bench_rtt("ppx_lowlat", 50);
        bench_rtt("ppx_sandbox", 0);
    }
    if (wanted(only, "tput")) {
        bench_one_by_one();
        bench_burst_warm();
        bench_throughput();
    }
    if (wanted(only, "echo"))
        bench_echo();
    if (wanted(only, "speedup"))
        bench_speedup();
    if (wanted(only, "idle"))
        bench_idle();
    if (wanted(only, "error"))
        bench_error_stop();
    return 0;
}
