/*
 * The MPI backend next to the local pool, in one process and one run
 * (bench/mpi/README.md). Run under mpirun with 3 ranks (bench/mpi/run):
 * ranks 1 and 2 become nodes inside ppx_pool_new and never come back;
 * rank 0 opens a local pool of forked workers (PPX_BACKEND_LOCAL) and an
 * MPI pool (2 nodes x W workers) with the same number of workers in all,
 * drives both from one libuv loop, and measures every metric on both,
 * alternating between them so that the machine's drift hits both alike.
 *
 * stdout: JSON lines as bench/SPEC.md, impl "ppx_local" or "ppx_mpi".
 * stderr: the table, with the ratio mpi/local, and diagnostics.
 */
#include "ppx.h"

#include <dirent.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/types.h>
#include <time.h>
#include <unistd.h>
#include <uv.h>

static bool quick;
static bool table = true;
static int nodes = 2; /* ranks of the job but rank 0 */
static bool scale;    /* --only scale: idle is measured per node, later */

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* ---- worker functions (run on the nodes and in the local workers) ------ */

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

static volatile uint64_t sink;

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
    uint64_t n = 0;
    ppx_call_arg_uint(c, 0, &n);
    sink = spin(n);
    return 0;
}

/* ---- results ----------------------------------------------------------- */

enum { LOCAL, MPI, NIMPL };
static const char *const impl_name[NIMPL] = {"ppx_local", "ppx_mpi"};

typedef struct row {
    const char *metric, *unit;
    double v[NIMPL];
    bool lower_better;
} row;
static row rows[32];
static int nrows;

/* Appended to every metric's name (--suffix): bench/mpi/run names the
 * emulated link's latency so ("_net1ms"). */
static const char *suffix = "";

static void record(const char *metric, const char *unit, bool lower_better, double local,
                   double mpi)
{
    static char names[32][64];
    snprintf(names[nrows], sizeof names[nrows], "%s%s", metric, suffix);
    row *r = &rows[nrows];
    *r = (row){names[nrows++], unit, {local, mpi}, lower_better};
    metric = r->metric;
    for (int i = 0; i < NIMPL; i++)
        printf("{\"metric\": \"%s\", \"impl\": \"%s\", \"value\": %.6g, \"unit\": \"%s\"}\n",
               metric, impl_name[i], r->v[i], unit);
    fflush(stdout);
}

static void print_table(int node_workers)
{
    fprintf(stderr,
            "\nlocal: 1 pool of %d forked workers; mpi: %d nodes x %d workers "
            "(ratio = mpi/local)\n",
            nodes * node_workers, nodes, node_workers);
    fprintf(stderr, "%-22s %12s %12s %-8s %9s  %s\n", "metric", "local", "mpi", "unit",
            "mpi/local", "mpi is");
    for (int i = 0; i < nrows; i++) {
        row *r = &rows[i];
        double ratio = r->v[LOCAL] != 0 ? r->v[MPI] / r->v[LOCAL] : NAN;
        char verdict[32] = "-";
        if (isfinite(ratio) && ratio > 0) {
            bool better = r->lower_better ? ratio < 1 : ratio > 1;
            double by = ratio >= 1 ? ratio : 1 / ratio;
            snprintf(verdict, sizeof verdict, "%.1fx %s", by, better ? "better" : "worse");
        }
        fprintf(stderr, "%-22s %12.4g %12.4g %-8s %9.3g  %s\n", r->metric, r->v[LOCAL],
                r->v[MPI], r->unit, ratio, verdict);
    }
}

#include "job_cpu.h"

/* ---- metrics ------------------------------------------------------------ */

static uv_loop_t loop;
static ppx_pool *pools[NIMPL];

static void await_ok(ppx_awaitable *aw)
{
    ppx_run_until_complete(&loop, aw);
    if (ppx_awaitable_state(aw) != PPX_DONE) {
        const ppx_error *e = ppx_awaitable_error(aw);
        fprintf(stderr, "mpi_bench: a call failed: %s: %s\n", e ? e->type : "?",
                e ? e->message : "?");
        exit(1);
    }
}

static void one_noop(ppx_pool *p)
{
    ppx_awaitable *aw;
    if (ppx_run_in_executor(&loop, p, "noop", NULL, 0, &aw)) {
        fprintf(stderr, "mpi_bench: submit failed\n");
        exit(1);
    }
    await_ok(aw);
    ppx_awaitable_unref(aw);
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

/* One call at a time, submitted and awaited on the loop: in 4 rounds per
 * pool, alternating, after a warm-up. Also the CPU the whole job burns
 * per call meanwhile. */
static void bench_rtt(void)
{
    int n = quick ? 400 : 2000, warm = quick ? 100 : 500, rounds = 4;
    double *lat[NIMPL], cpu_s[NIMPL] = {0}, wall[NIMPL] = {0};
    for (int k = 0; k < NIMPL; k++) {
        lat[k] = malloc((size_t)n * sizeof *lat[k]);
        for (int i = 0; i < warm; i++)
            one_noop(pools[k]);
    }
    for (int r = 0; r < rounds; r++) {
        for (int j = 0; j < NIMPL; j++) {
            int k = r % 2 ? NIMPL - 1 - j : j; /* ABBA */
            cpu c0 = job_cpu();
            double t0 = now_s();
            for (int i = r * n / rounds; i < (r + 1) * n / rounds; i++) {
                double t = now_s();
                one_noop(pools[k]);
                lat[k][i] = (now_s() - t) * 1e6;
            }
            wall[k] += now_s() - t0;
            cpu c1 = job_cpu();
            cpu_s[k] += (c1.rank0 - c0.rank0) + (c1.nodes - c0.nodes);
        }
    }
    double med[NIMPL], p99[NIMPL], cpu_us[NIMPL];
    for (int k = 0; k < NIMPL; k++) {
        qsort(lat[k], (size_t)n, sizeof *lat[k], cmp_double);
        med[k] = lat[k][n / 2];
        p99[k] = lat[k][(size_t)n * 99 / 100];
        cpu_us[k] = cpu_s[k] * 1e6 / n;
        fprintf(stderr, "rtt %s: min %.1f us, max %.1f us, %.0f%% of a core busy\n",
                impl_name[k], lat[k][0], lat[k][n - 1], 100 * cpu_s[k] / wall[k]);
        free(lat[k]);
    }
    record("rtt_median_us", "us", true, med[LOCAL], med[MPI]);
    record("rtt_p99_us", "us", true, p99[LOCAL], p99[MPI]);
    record("rtt_cpu_us_per_call", "us", true, cpu_us[LOCAL], cpu_us[MPI]);
}

/* N no-op calls submitted at once, all gathered. */
static double tput_one_by_one(ppx_pool *p, int n)
{
    ppx_awaitable **aw = malloc((size_t)n * sizeof *aw), *g;
    double t = now_s();
    for (int i = 0; i < n; i++)
        if (ppx_run_in_executor(&loop, p, "noop", NULL, 0, &aw[i]))
            exit(1);
    if (ppx_gather(&loop, aw, (size_t)n, 0, &g))
        exit(1);
    await_ok(g);
    double secs = now_s() - t;
    for (int i = 0; i < n; i++)
        ppx_awaitable_unref(aw[i]);
    ppx_awaitable_unref(g);
    free(aw);
    return n / secs;
}

/* The same through ppx_run_in_executor_map, chunks of 1000 calls. */
static double tput_batch(ppx_pool *p, int n)
{
    unsigned char *b = malloc(5 + (size_t)n);
    b[0] = 0xdd; /* array 32 of n empty arrays */
    b[1] = (unsigned char)(n >> 24);
    b[2] = (unsigned char)(n >> 16);
    b[3] = (unsigned char)(n >> 8);
    b[4] = (unsigned char)n;
    memset(b + 5, 0x90, (size_t)n);
    double t = now_s();
    ppx_awaitable *m;
    if (ppx_run_in_executor_map(&loop, p, "noop", b, 5 + (size_t)n, 1000, &m))
        exit(1);
    await_ok(m);
    double secs = now_s() - t;
    ppx_awaitable_unref(m);
    free(b);
    return n / secs;
}

/* The better of two runs per pool (ABBA), as the machine is noisy. */
static void bench_tput(void)
{
    int n = quick ? 10000 : 100000;
    double one[NIMPL] = {0}, batch[NIMPL] = {0};
    for (int r = 0; r < 2; r++) {
        for (int j = 0; j < NIMPL; j++) {
            int k = r ? NIMPL - 1 - j : j;
            double v = tput_one_by_one(pools[k], n);
            one[k] = v > one[k] ? v : one[k];
            fprintf(stderr, "tput_one_by_one %s: %.0f calls/s\n", impl_name[k], v);
        }
    }
    for (int r = 0; r < 2; r++) {
        for (int j = 0; j < NIMPL; j++) {
            int k = r ? NIMPL - 1 - j : j;
            double v = tput_batch(pools[k], n * 10);
            batch[k] = v > batch[k] ? v : batch[k];
        }
    }
    record("tput_one_by_one", "calls/s", false, one[LOCAL], one[MPI]);
    record("tput_batch", "calls/s", false, batch[LOCAL], batch[MPI]);
}

/* Echo of size bytes, sequential calls; GB/s = 2 * size * calls / s. */
static double echo_gbps(ppx_pool *p, const void *args, size_t len, size_t size, int calls)
{
    double t = now_s();
    for (int i = 0; i < calls; i++) {
        ppx_awaitable *aw;
        if (ppx_run_in_executor(&loop, p, "echo", args, len, &aw))
            exit(1);
        await_ok(aw);
        ppx_value v;
        const void *out;
        size_t outlen;
        if (ppx_awaitable_value(aw, &v) || ppx_value_bin(v, &out, &outlen) || outlen != size) {
            fprintf(stderr, "mpi_bench: echo came back wrong\n");
            exit(1);
        }
        ppx_awaitable_unref(aw);
    }
    return 2.0 * (double)size * calls / (now_s() - t) / 1e9;
}

static void bench_echo(void)
{
    static const struct {
        const char *metric;
        size_t size;
        int calls;
    } cases[] = {
        {"echo_8MiB_GBps", 8u << 20, 20},
        {"echo_64MiB_GBps", 64u << 20, 4},
    };
    for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
        size_t size = cases[c].size;
        int calls = quick ? 2 : cases[c].calls;
        char *buf = malloc(size);
        for (size_t i = 0; i < size; i++)
            buf[i] = (char)(i * 131 + (i >> 13));
        void *args;
        size_t len;
        if (ppx_pack(&args, &len, "B", buf, size))
            exit(1);
        double best[NIMPL] = {0};
        /* one untimed call each, so both sides have their buffers */
        for (int k = 0; k < NIMPL; k++)
            echo_gbps(pools[k], args, len, size, 1);
        for (int r = 0; r < 2; r++) {
            for (int j = 0; j < NIMPL; j++) {
                int k = r ? NIMPL - 1 - j : j;
                double v = echo_gbps(pools[k], args, len, size, (calls + 1) / 2);
                best[k] = v > best[k] ? v : best[k];
            }
        }
        record(cases[c].metric, "GB/s", false, best[LOCAL], best[MPI]);
        free(args);
        free(buf);
    }
}

/* 16 calls of about 50 ms of CPU each, all at once: wall time, and the
 * speedup over running them back to back in this process. */
static uint64_t iters_50ms;

static void calibrate(void)
{
    for (uint64_t n = 1u << 20;; n *= 2) {
        double best = 1e9;
        for (int k = 0; k < 3; k++) {
            double t = now_s();
            sink = spin(n);
            double s = now_s() - t;
            best = s < best ? s : best;
        }
        if (best > 0.05) {
            iters_50ms = (uint64_t)((double)n * 0.05 / best);
            return;
        }
    }
}

static double cpu_batch(ppx_pool *p, int jobs)
{
    ppx_awaitable *aw[64], *g;
    double t = now_s();
    for (int i = 0; i < jobs; i++)
        if (ppx_run_in_executorf(&loop, p, &aw[i], "cpu", "U", (unsigned long long)iters_50ms))
            exit(1);
    if (ppx_gather(&loop, aw, (size_t)jobs, 0, &g))
        exit(1);
    await_ok(g);
    double secs = now_s() - t;
    for (int i = 0; i < jobs; i++)
        ppx_awaitable_unref(aw[i]);
    ppx_awaitable_unref(g);
    return secs;
}

static void bench_cpu(void)
{
    int jobs = 16;
    double t = now_s();
    for (int i = 0; i < jobs; i++)
        sink = spin(iters_50ms);
    double serial = now_s() - t;
    double best[NIMPL] = {1e9, 1e9};
    for (int r = 0; r < 2; r++) {
        for (int j = 0; j < NIMPL; j++) {
            int k = r ? NIMPL - 1 - j : j;
            double s = cpu_batch(pools[k], jobs);
            best[k] = s < best[k] ? s : best[k];
        }
    }
    fprintf(stderr, "cpu batch: 16 x 50 ms back to back here %.3f s; local %.3f s, mpi %.3f s\n",
            serial, best[LOCAL], best[MPI]);
    record("cpu16x50ms_s", "s", true, best[LOCAL], best[MPI]);
    record("cpu16x50ms_speedup", "x", false, serial / best[LOCAL], serial / best[MPI]);
}

/* Throughput of 1 ms CPU-bound calls, all submitted at once and
 * gathered (best of 2, alternating), with the node count in the metric's
 * name: bench/mpi/run runs this (--only scale,idle) with 1, 2 and 4
 * nodes, the local pool having as many workers as all nodes together. */
static void bench_cpu1ms(void)
{
    int jobs = quick ? 200 : 1000;
    uint64_t iters = iters_50ms / 50;
    double best[NIMPL] = {1e9, 1e9};
    for (int r = 0; r < 2; r++) {
        for (int j = 0; j < NIMPL; j++) {
            int k = r ? NIMPL - 1 - j : j;
            ppx_awaitable **aw = malloc((size_t)jobs * sizeof *aw), *g;
            double t = now_s();
            for (int i = 0; i < jobs; i++)
                if (!aw || ppx_run_in_executorf(&loop, pools[k], &aw[i], "cpu", "U",
                                                (unsigned long long)iters))
                    exit(1);
            if (ppx_gather(&loop, aw, (size_t)jobs, 0, &g))
                exit(1);
            await_ok(g);
            double secs = now_s() - t;
            for (int i = 0; i < jobs; i++)
                ppx_awaitable_unref(aw[i]);
            ppx_awaitable_unref(g);
            free(aw);
            best[k] = secs < best[k] ? secs : best[k];
        }
    }
    static char name[40];
    snprintf(name, sizeof name, "cpu1ms_calls_s_%dnode%s", nodes, nodes > 1 ? "s" : "");
    fprintf(stderr, "1 ms calls, %d nodes: local %.0f/s, mpi %.0f/s\n", nodes, jobs / best[LOCAL],
            jobs / best[MPI]);
    record(name, "calls/s", false, jobs / best[LOCAL], jobs / best[MPI]);
}

/* CPU the job burns in 1 s with nothing to do: rank 0's tree (this
 * process with the MPI progress thread, the local pool), the nodes'. */
static void bench_idle(void)
{
    for (int k = 0; k < NIMPL; k++)
        one_noop(pools[k]);
    /* Let every back-off reach its end; the scale runs measure after the
     * nodes' first quiet second. */
    struct timespec ts = {scale ? 1 : 0, scale ? 200000000L : 300000000L};
    nanosleep(&ts, NULL);
    cpu c0 = job_cpu();
    sleep(1);
    cpu c1 = job_cpu();
    fprintf(stderr, "idle 1 s: rank 0 (with the local pool and the MPI progress thread) "
                    "%.0f ms, nodes %.0f ms, mpirun %.0f ms of CPU\n",
            (c1.rank0 - c0.rank0) * 1e3, (c1.nodes - c0.nodes) * 1e3,
            (c1.mpirun - c0.mpirun) * 1e3);
    record("idle_cpu_ms", "ms", true, (c1.rank0 - c0.rank0) * 1e3, (c1.nodes - c0.nodes) * 1e3);
    if (scale) {
        /* Per node, after its first quiet second. */
        static char name[40];
        snprintf(name, sizeof name, "idle_cpu_ms_per_node_%dnode%s", nodes, nodes > 1 ? "s" : "");
        record(name, "ms", true, (c1.rank0 - c0.rank0) * 1e3,
               (c1.nodes - c0.nodes) * 1e3 / nodes);
    }
}

static bool wanted(const char *only, const char *name)
{
    return !only || strstr(only, name) != NULL;
}

int main(int argc, char **argv)
{
    const char *only = NULL;
    int node_workers = 1;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--quick") == 0) {
            quick = true;
        } else if (strcmp(argv[i], "--only") == 0 && i + 1 < argc) {
            only = argv[++i];
        } else if (strcmp(argv[i], "--no-table") == 0) {
            table = false; /* bench/mpi/run prints its own, with the floor */
        } else if (strcmp(argv[i], "--suffix") == 0 && i + 1 < argc) {
            suffix = argv[++i];
        } else if (strcmp(argv[i], "--node-workers") == 0 && i + 1 < argc) {
            node_workers = atoi(argv[++i]);
        } else {
            fprintf(stderr, "usage: mpirun -np 3 %s [--quick] [--no-table] [--node-workers W] "
                            "[--only rtt,tput,echo,cpu,idle,scale] [--suffix S]\n",
                    argv[0]);
            return 2;
        }
    }
    if (node_workers < 1)
        node_workers = 1;
    ppx_register("noop", fn_noop, NULL);
    ppx_register("echo", fn_echo, NULL);
    ppx_register("cpu", fn_cpu, NULL);

    /* Rank 0 forks its local pool before MPI starts in this process (the
     * MPI pool's ppx_pool_new runs MPI_Init), so its workers inherit no
     * MPI state. The other ranks go straight to serving. */
    const char *rank = getenv("OMPI_COMM_WORLD_RANK");
    const char *size = getenv("OMPI_COMM_WORLD_SIZE");
    bool root = !rank || atoi(rank) == 0;
    if (root && (!size || atoi(size) < 2)) {
        fprintf(stderr, "mpi_bench: run me as mpirun -np 3 (2 nodes): see bench/mpi/run\n");
        return 2;
    }
    nodes = size ? atoi(size) - 1 : 2;
    int rc = 0;
    if (root)
        rc = ppx_pool_new(&PPX_POOL_OPTIONS(.workers = nodes * node_workers,
                                                               .backend = PPX_BACKEND_LOCAL), &pools[LOCAL]);
    if (rc == 0)
        rc = ppx_pool_new(&PPX_POOL_OPTIONS(.workers = node_workers,
                                                             .backend = PPX_BACKEND_MPI), &pools[MPI]);
    /* Only rank 0 gets here. */
    if (rc) {
        fprintf(stderr, "mpi_bench: ppx_pool_new: %s: %s\n", ppx_strerror(rc),
                ppx_last_error());
        return 1;
    }
    if (ppx_pool_workers(pools[MPI]) != nodes * node_workers) {
        fprintf(stderr, "mpi_bench: the MPI pool has %d workers, not %d\n",
                ppx_pool_workers(pools[MPI]), nodes * node_workers);
        return 1;
    }
    uv_loop_init(&loop);
    find_job();
    calibrate();
    if (wanted(only, "rtt"))
        bench_rtt();
    if (wanted(only, "tput"))
        bench_tput();
    if (wanted(only, "echo"))
        bench_echo();
    if (wanted(only, "cpu"))
        bench_cpu();
    scale = only && wanted(only, "scale");
    if (scale)
        bench_cpu1ms();
    if (wanted(only, "idle"))
        bench_idle();
    if (table)
        print_table(node_workers);
    ppx_pool_free(pools[MPI]);
    ppx_pool_free(pools[LOCAL]);
    uv_run(&loop, UV_RUN_DEFAULT);
    uv_loop_close(&loop);
    return 0;
}
