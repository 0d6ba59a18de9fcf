/*
 * What any design built on forked processes pays at least on this
 * machine, measured in the same run as ppx (impl names are peers in
 * report.py), so that ppx's start-up and big echoes can be read against
 * the machine as well as against libuv's in-process thread pool:
 *
 *   startup_ms  floor_fork        one fork: the child's first byte back
 *                                 through a pipe (best of 5, as ppx's)
 *   startup_ms  floor_fork_chain  a fork of a fork, as with a fork
 *                                 server: the grandchild's first byte back
 *   echo_1MiB_MBps, echo_4MiB_MBps  floor_xproc
 *               an echo across two processes in which the caller's result
 *               is its own (a worker can never write it afterwards): the
 *               argument copied into shared memory, the child copies it
 *               into a reply area, the caller copies the reply out. Three
 *               copies, two of them reading what the other CPU wrote, and
 *               each side spins briefly, then sleeps on a futex, as ppx's
 *               do; the best of 5 rounds. No IPC design that copies
 *               results out does less.
 *               floor_xproc_1cpu
 *               the same with both processes pinned to one CPU: no line
 *               crosses between CPUs. Not a floor for ppx (whose
 *               workers run beside the caller), but how far apart the
 *               host has put the two vCPUs at the moment: the echo rows
 *               of a run are read against the gap between the two.
 *
 * Why these exist (issue 15): on the VMs we measure on a page fault and a
 * fork cost 10-100x what they cost on bare metal, and the in-cache
 * memcpy floor_memcpy reports is not what two processes can reach.
 *
 * JSON lines on stdout (see SPEC.md), diagnostics on stderr.
 */
#include "shm/region.h"
#include "shm/wake.h"
#include "floor_common.h"

#include <errno.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define MIB ((size_t)1 << 20)
#define MAX_ECHO (4 * MIB)

/* ---- start-up: fork, and a fork of a fork ------------------------------ */

static void reap(pid_t pid)
{
    while (waitpid(pid, NULL, 0) < 0 && errno == EINTR)
        ;
}

/* Milliseconds from the first fork to the first byte of the last
 * descendant (the child, or with chain the child's child). */
static double fork_once(bool chain)
{
    int fd[2];
    if (pipe(fd))
        die("pipe", errno);
    uint64_t t0 = now_ns();
    pid_t pid = fork();
    if (pid < 0)
        die("fork", errno);
    if (pid == 0) {
        if (chain) {
            pid_t grandchild = fork();
            if (grandchild == 0) {
                (void)!write(fd[1], "x", 1);
                _exit(0);
            }
            if (grandchild > 0)
                reap(grandchild);
        } else {
            (void)!write(fd[1], "x", 1);
        }
        _exit(0);
    }
    char c;
    if (read(fd[0], &c, 1) != 1)
        die("read from the child", EPROTO);
    double ms = (double)(now_ns() - t0) / 1e6;
    reap(pid);
    close(fd[0]);
    close(fd[1]);
    return ms;
}

static void bench_forks(int runs)
{
    static const struct { const char *impl; bool chain; } kinds[] = {
        {"floor_fork", false}, {"floor_fork_chain", true}};
    for (size_t k = 0; k < sizeof kinds / sizeof kinds[0]; k++) {
        double best = 1e9;
        for (int i = 0; i < runs; i++) {
            double ms = fork_once(kinds[k].chain);
            best = ms < best ? ms : best;
        }
        emit("startup_ms", kinds[k].impl, best, "ms");
    }
}

/* ---- echo across two processes ------------------------------------------ */

/* At the start of the shared mapping; the argument area and the reply
 * area follow, each MAX_ECHO bytes. */
typedef struct xctl {
    _Alignas(64) _Atomic uint32_t asked; /* calls the caller has copied in */
    _Alignas(64) _Atomic uint32_t done;  /* calls the child has copied over */
    _Atomic uint64_t size;
    _Atomic uint32_t stop;
} xctl;

/* Waits until *word moves from seen: a short spin, then a futex sleep,
 * as ppx's own sides wait (a pure spin is faster on an idle machine and
 * far slower on a loaded one, where a spinner that lost its CPU holds
 * the other side up). */
static uint32_t await_change(_Atomic uint32_t *word, uint32_t seen, const _Atomic uint32_t *stop)
{
    uint32_t now;
    for (unsigned i = 0; (now = atomic_load_explicit(word, memory_order_acquire)) == seen; i++) {
        if (stop && atomic_load_explicit(stop, memory_order_relaxed))
            _exit(0);
        if (i < 2000)
            ppx__cpu_relax();
        else
            ppx__futex_wait(word, seen, 100);
    }
    return now;
}

#define XCTL_BYTES 4096u

static _Noreturn void xchild(xctl *c, unsigned char *arg, unsigned char *reply)
{
    prctl(PR_SET_PDEATHSIG, 9);
    uint32_t seen = 0;
    for (;;) {
        seen = await_change(&c->asked, seen, &c->stop);
        memcpy(reply, arg, (size_t)atomic_load_explicit(&c->size, memory_order_relaxed));
        atomic_store_explicit(&c->done, seen, memory_order_release);
        ppx__futex_wake(&c->done, 1);
    }
}

/* One echo: src -> arg (caller), arg -> reply (child), reply -> dst. */
static void xecho(xctl *c, unsigned char *arg, const unsigned char *reply, const unsigned char *src,
                  unsigned char *dst, size_t size, uint32_t call)
{
    memcpy(arg, src, size);
    atomic_store_explicit(&c->size, size, memory_order_relaxed);
    atomic_store_explicit(&c->asked, call, memory_order_release);
    ppx__futex_wake(&c->asked, 1);
    await_change(&c->done, call - 1, NULL);
    memcpy(dst, reply, size);
}

/* impl: floor_xproc, or with pin_cpu >= 0 both processes on that CPU
 * (the child inherits the affinity). */
static void bench_xproc(bool quick, const char *impl, int pin_cpu)
{
    cpu_set_t all;
    if (pin_cpu >= 0) {
        cpu_set_t one;
        CPU_ZERO(&one);
        CPU_SET(pin_cpu, &one);
        if (sched_getaffinity(0, sizeof all, &all) != 0 ||
            sched_setaffinity(0, sizeof one, &one) != 0)
            die("sched_setaffinity", errno);
    }
    size_t len = XCTL_BYTES + 2 * MAX_ECHO;
    void *base;
    int rc = ppx__region_map(len, &base);
    if (rc)
        die("ppx__region_map", -rc);
    memset(base, 0, len); /* faulted in before the child inherits it */
    xctl *c = base;
    unsigned char *arg = (unsigned char *)base + XCTL_BYTES, *reply = arg + MAX_ECHO;
    unsigned char *src = malloc(MAX_ECHO), *dst = malloc(MAX_ECHO);
    if (!src || !dst)
        die("malloc", ENOMEM);
    for (size_t i = 0; i < MAX_ECHO; i++)
        src[i] = (unsigned char)(i * 131u + 7u);
    memset(dst, 0, MAX_ECHO);
    pid_t pid = fork();
    if (pid < 0)
        die("fork", errno);
    if (pid == 0)
        xchild(c, arg, reply);
    static const struct { const char *metric; size_t size; int calls; } echo[] = {
        {"echo_1MiB_MBps", MIB, 200},
        {"echo_4MiB_MBps", 4 * MIB, 50},
    };
    uint32_t call = 0;
    for (size_t k = 0; k < sizeof echo / sizeof echo[0]; k++) {
        size_t size = echo[k].size;
        int calls = quick ? 10 : echo[k].calls;
        xecho(c, arg, reply, src, dst, size, ++call); /* untimed: warm both sides */
        double best = 1e9; /* a floor is the best case: the best of 5 rounds */
        for (int round = 0; round < 5; round++) {
            uint64_t t0 = now_ns();
            for (int i = 0; i < calls; i++)
                xecho(c, arg, reply, src, dst, size, ++call);
            double secs = (double)(now_ns() - t0) / 1e9;
            best = secs < best ? secs : best;
        }
        if (memcmp(src, dst, size) != 0)
            die("echo mismatch", EPROTO);
        emit(echo[k].metric, impl, 2.0 * (double)size * calls / best / 1e6, "MB/s");
    }
    atomic_store(&c->stop, 1);
    atomic_fetch_add(&c->asked, 1);
    ppx__futex_wake(&c->asked, 1);
    reap(pid);
    free(src);
    free(dst);
    ppx__region_unmap(base, len);
    if (pin_cpu >= 0 && sched_setaffinity(0, sizeof all, &all) != 0)
        die("sched_setaffinity", errno);
}

/* The last CPU this process may run on, or -1. */
static int last_cpu(void)
{
    cpu_set_t set;
    if (sched_getaffinity(0, sizeof set, &set) != 0)
        return -1;
    for (int cpu = CPU_SETSIZE - 1; cpu >= 0; cpu--)
        if (CPU_ISSET(cpu, &set))
            return cpu;
    return -1;
}

int main(int argc, char **argv)
{
    bool quick = argc > 1 && strcmp(argv[1], "--quick") == 0;
    /* Start-up first, while this process is as small as ppx's is when
     * bench_ppx measures its own. */
    bench_forks(5);
    bench_xproc(quick, "floor_xproc", -1);
    int cpu = last_cpu();
    if (cpu >= 0)
        bench_xproc(quick, "floor_xproc_1cpu", cpu);
    return 0;
}
