/*
 * The machine's own stalls, seen from one CPU: sleeps PERIOD_MS at a time
 * and records how late it wakes. On the shared 2-vCPU VM the host now and
 * then stops both vCPUs for ~100 ms under full load, whatever runs; a
 * /ping that waits through one measures the host, not the server
 * (bench/offload/shootout.py and flood.py run a slice again then).
 *
 * C, not Python: the probe runs beside the servers it must not slow. A
 * Python one cost ~0.3 s of CPU just to start on this VM (page faults
 * are dear here), two of them at nice -10 inside every measured slice,
 * and ~40 us per wake-up; this one starts in about a millisecond.
 *
 *   stall_probe SECONDS CPU [NICE [DELAY_S [PERIOD_MS]]]
 *
 * Pins itself to CPU, lowers its nice value to NICE where allowed (root),
 * prints "ready", sleeps DELAY_S unmeasured (so it can be started before
 * the load it watches), then measures for SECONDS and prints
 * {"max_late_ms":..,"late_over_20ms":..}. Defaults: NICE 0, DELAY_S 0,
 * PERIOD_MS 5.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE /* sched_setaffinity */
#endif
#include <errno.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/resource.h>
#include <time.h>

static double now_ms(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec * 1e3 + (double)t.tv_nsec / 1e6;
}

static void sleep_ms(double ms)
{
    struct timespec t = {.tv_sec = (time_t)(ms / 1e3),
                         .tv_nsec = (long)((ms - (double)(time_t)(ms / 1e3) * 1e3) * 1e6)};
    while (clock_nanosleep(CLOCK_MONOTONIC, 0, &t, &t) == EINTR)
        ;
}

static int arg(int argc, char **argv, int i, double dflt, double lo, double hi, double *out)
{
    if (i >= argc) {
        *out = dflt;
        return 0;
    }
    char *end;
    *out = strtod(argv[i], &end);
    return *end || end == argv[i] || *out < lo || *out > hi ? -1 : 0;
}

int main(int argc, char **argv)
{
    double seconds, cpu, nice_v, delay_s, period_ms;
    if (argc < 3 || arg(argc, argv, 1, 0, 0, 86400, &seconds) ||
        arg(argc, argv, 2, 0, 0, CPU_SETSIZE - 1, &cpu) ||
        arg(argc, argv, 3, 0, -20, 19, &nice_v) || arg(argc, argv, 4, 0, 0, 3600, &delay_s) ||
        arg(argc, argv, 5, 5, 0.1, 1000, &period_ms)) {
        fprintf(stderr, "usage: stall_probe SECONDS CPU [NICE [DELAY_S [PERIOD_MS]]]\n");
        return 2;
    }
    cpu_set_t set;
    CPU_ZERO(&set);
    CPU_SET((int)cpu, &set);
    if (sched_setaffinity(0, sizeof set, &set) != 0) {
        perror("stall_probe: sched_setaffinity");
        return 1;
    }
    /* Unprivileged, a negative nice fails: the probe then runs at 0, as
     * the /ping client does in that case. */
    (void)setpriority(PRIO_PROCESS, 0, (int)nice_v);
    printf("ready\n");
    fflush(stdout);
    sleep_ms(delay_s * 1e3);
    double end = now_ms() + seconds * 1e3, worst = 0;
    long late20 = 0;
    for (;;) {
        double t = now_ms();
        if (t >= end)
            break;
        sleep_ms(period_ms);
        double late = now_ms() - t - period_ms;
        if (late > worst)
            worst = late;
        late20 += late > 20;
    }
    printf("{\"max_late_ms\": %.3f, \"late_over_20ms\": %ld}\n", worst, late20);
    return 0;
}
