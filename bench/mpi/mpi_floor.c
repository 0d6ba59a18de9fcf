/*
 * The transport's floor for bench_mpi: plain MPI between two ranks on
 * this machine, no ppx. Run as mpirun -np 2 (bench/mpi/run does).
 *  - rtt: a 64-byte message (about a no-op call's envelope) to rank 1 and
 *    back, both sides spinning on MPI_Iprobe + MPI_Recv as ppx's progress
 *    thread and nodes do when busy; median and p99 over 2000 after 500.
 *  - echo: N bytes to rank 1 and back, into buffers allocated once;
 *    GB/s = 2 * N * calls / s, as bench_mpi counts its echo.
 * stdout: JSON lines (bench/SPEC.md), impl "mpi_floor".
 */
#include <mpi.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void emit(const char *metric, double value, const char *unit)
{
    printf("{\"metric\": \"%s\", \"impl\": \"mpi_floor\", \"value\": %.6g, \"unit\": \"%s\"}\n",
           metric, value, unit);
    fflush(stdout);
}

/* Spins on MPI_Iprobe, then receives what came, whatever its size. */
static int recv_polling(void *buf, int cap, int from)
{
    int flag = 0, len = 0;
    MPI_Status st;
    while (!flag)
        MPI_Iprobe(from, MPI_ANY_TAG, MPI_COMM_WORLD, &flag, &st);
    MPI_Get_count(&st, MPI_BYTE, &len);
    if (len > cap)
        MPI_Abort(MPI_COMM_WORLD, 1);
    MPI_Recv(buf, len, MPI_BYTE, from, st.MPI_TAG, MPI_COMM_WORLD, MPI_STATUS_IGNORE);
    return st.MPI_TAG;
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

enum { TAG_DATA = 1, TAG_STOP = 2 };

int main(int argc, char **argv)
{
    bool quick = false, rtt_only = false; /* --rtt-only: no echo (bench/mpi/run, emulated hosts) */
    for (int i = 1; i < argc; i++) {
        quick |= strcmp(argv[i], "--quick") == 0;
        rtt_only |= strcmp(argv[i], "--rtt-only") == 0;
    }
    MPI_Init(&argc, &argv);
    int rank, size;
    MPI_Comm_rank(MPI_COMM_WORLD, &rank);
    MPI_Comm_size(MPI_COMM_WORLD, &size);
    if (size != 2) {
        if (rank == 0)
            fprintf(stderr, "mpi_floor: run me as mpirun -np 2\n");
        MPI_Finalize();
        return 2;
    }
    size_t big = (size_t)64 << 20;
    char *buf = malloc(big);
    memset(buf, 'x', big);
    if (rank == 1) {
        /* Echo everything back until told to stop. */
        for (;;) {
            int flag = 0, len = 0;
            MPI_Status st;
            while (!flag)
                MPI_Iprobe(0, MPI_ANY_TAG, MPI_COMM_WORLD, &flag, &st);
            MPI_Get_count(&st, MPI_BYTE, &len);
            MPI_Recv(buf, len, MPI_BYTE, 0, st.MPI_TAG, MPI_COMM_WORLD, MPI_STATUS_IGNORE);
            if (st.MPI_TAG == TAG_STOP)
                break;
            MPI_Send(buf, len, MPI_BYTE, 0, TAG_DATA, MPI_COMM_WORLD);
        }
        free(buf);
        MPI_Finalize();
        return 0;
    }
    char *back = malloc(big);
    int n = quick ? 400 : 2000, warm = 500;
    double *lat = malloc((size_t)n * sizeof *lat);
    for (int i = 0; i < warm + n; i++) {
        double t = now_s();
        MPI_Send(buf, 64, MPI_BYTE, 1, TAG_DATA, MPI_COMM_WORLD);
        recv_polling(back, 64, 1);
        if (i >= warm)
            lat[i - warm] = (now_s() - t) * 1e6;
    }
    qsort(lat, (size_t)n, sizeof *lat, cmp_double);
    emit("rtt_median_us", lat[n / 2], "us");
    emit("rtt_p99_us", lat[(size_t)n * 99 / 100], "us");
    static const struct {
        const char *metric;
        size_t size;
        int calls;
    } cases[] = {{"echo_8MiB_GBps", 8u << 20, 20}, {"echo_64MiB_GBps", 64u << 20, 4}};
    for (size_t c = 0; !rtt_only && c < sizeof cases / sizeof cases[0]; c++) {
        int calls = quick ? 2 : cases[c].calls, len = (int)cases[c].size;
        MPI_Send(buf, len, MPI_BYTE, 1, TAG_DATA, MPI_COMM_WORLD); /* warm */
        recv_polling(back, len, 1);
        double t = now_s();
        for (int i = 0; i < calls; i++) {
            MPI_Send(buf, len, MPI_BYTE, 1, TAG_DATA, MPI_COMM_WORLD);
            recv_polling(back, len, 1);
        }
        emit(cases[c].metric, 2.0 * (double)len * calls / (now_s() - t) / 1e9, "GB/s");
    }
    MPI_Send(NULL, 0, MPI_BYTE, 1, TAG_STOP, MPI_COMM_WORLD);
    free(lat);
    free(buf);
    free(back);
    MPI_Finalize();
    return 0;
}
