/*
 * The physical floor for a round trip between two forked processes over
 * shared memory, with ppx's own SPSC ring (one each way, 64-byte records).
 *
 *   floor_epoll_futex  the parent sleeps in a libuv loop (uv_poll on an
 *                      eventfd) that the child signals after its reply, with
 *                      ppx's parent_waiting protocol; the child spins, then
 *                      sleeps on the request ring's futex (ppx's worker).
 *   floor_spin         both sides spin on the rings and never sleep.
 *
 * Also the copy floors (impl floor_memcpy): echo_1MiB_MBps,
 * echo_4MiB_MBps and echo_64MiB_MBps are a warm memcpy into a pre-faulted
 * shared mapping and back (the two copies an echo through shared memory
 * cannot avoid, in cache for the small sizes), reported the way an echo
 * is (2 * N bytes per call); zc_echo_64MiB_ms is the time of one 64 MiB
 * memcpy, which a zero-copy echo must beat; and on stderr what a fresh
 * 64 MiB shared mapping costs.
 *
 * JSON lines on stdout (see SPEC.md), diagnostics on stderr.
 */
#include "shm/region.h"
#include "shm/ring.h"
#include "shm/wake.h"
#include "floor_common.h"

#include <errno.h>
#include <signal.h>
#include <stdalign.h>
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
#include <uv.h>

#define RING_CAP 4096u
#define PAYLOAD 64u
#define WARMUP 1000
#define MEASURED 20000
#define IDLE_SPIN 2000 /* what procpool/worker.c polls before sleeping */
#define ORPHAN_CHECK_MS 1000
#define COPY_BYTES ((size_t)64 << 20)
#define COPY_CALLS 5

enum mode { MODE_EPOLL_FUTEX, MODE_SPIN };

/* The shared control block, ahead of the two rings. */
typedef struct ctl {
    alignas(64) _Atomic uint32_t parent_waiting; /* 1: parent wants the eventfd */
    alignas(64) _Atomic uint32_t stop;           /* 1: child exits */
    _Atomic uint64_t child_sleeps;               /* futex sleeps (spin ran out) */
} ctl;

#define CTL_BYTES 256u
_Static_assert(sizeof(ctl) <= CTL_BYTES, "control block fits its slot");

typedef struct shared {
    void *base;
    size_t len;
    ctl *c;
    ppx__ring *req, *resp;
} shared;

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static void shared_map(shared *s)
{
    size_t fp = ppx__ring_footprint(RING_CAP);
    s->len = CTL_BYTES + 2 * fp;
    int rc = ppx__region_map(s->len, &s->base);
    if (rc)
        die("ppx__region_map", rc);
    unsigned char *b = s->base;
    s->c = (ctl *)b;
    s->req = (ppx__ring *)(b + CTL_BYTES);
    s->resp = (ppx__ring *)(b + CTL_BYTES + fp);
    if ((rc = ppx__ring_init(s->req, RING_CAP)) || (rc = ppx__ring_init(s->resp, RING_CAP)))
        die("ppx__ring_init", rc);
}

/* ---- the child: echoes every request record back ---------------------- */

static void wake_parent(ctl *c, int efd)
{
    /* ppx__shared_wake_parent: pairs with the parent's flag-then-look. */
    atomic_thread_fence(memory_order_seq_cst);
    if (atomic_load_explicit(&c->parent_waiting, memory_order_relaxed) &&
        atomic_exchange_explicit(&c->parent_waiting, 0, memory_order_relaxed))
        ppx__eventfd_signal(efd);
}

static _Noreturn void child_main(const shared *s, enum mode mode, int efd, pid_t parent)
{
    prctl(PR_SET_PDEATHSIG, SIGKILL);
    if (getppid() != parent)
        _exit(3);
    ctl *c = s->c;
    ppx__port req = ppx__port_of(s->req, RING_CAP);
    ppx__port resp = ppx__port_of(s->resp, RING_CAP);
    uint64_t sleeps = 0;
    for (;;) {
        const void *rec;
        size_t len;
        uint32_t flags;
        int rc = ppx__ring_peek(&req, &rec, &len, &flags);
        if (rc < 0)
            _exit(2);
        if (rc == 0) {
            if (atomic_load_explicit(&c->stop, memory_order_relaxed)) {
                atomic_store(&c->child_sleeps, sleeps);
                _exit(0);
            }
            if (mode == MODE_SPIN) {
                ppx__cpu_relax();
                continue;
            }
            /* ppx's worker: IDLE_SPIN polls, then the futex. The spin is
             * done here so the sleeps can be counted; wait_data with a
             * spin of 0 goes straight to the flag and the futex. */
            int i = 0;
            while (i < IDLE_SPIN && ppx__ring_empty(&req) &&
                   !atomic_load_explicit(&c->stop, memory_order_relaxed)) {
                ppx__cpu_relax();
                i++;
            }
            if (i == IDLE_SPIN) {
                sleeps++;
                if (ppx__ring_wait_data(&req, 0, ORPHAN_CHECK_MS, &c->stop) == -ETIMEDOUT &&
                    getppid() != parent)
                    _exit(3);
            }
            continue;
        }
        void *out;
        while (!(out = ppx__ring_reserve(&resp, len)))
            ppx__cpu_relax(); /* cannot happen: one record in flight */
        memcpy(out, rec, len);
        ppx__ring_commit(&resp, len, 0);
        ppx__ring_release(&req, len);
        if (mode == MODE_EPOLL_FUTEX)
            wake_parent(c, efd);
    }
}

static pid_t child_start(const shared *s, enum mode mode, int efd)
{
    atomic_store(&s->c->stop, 0);
    atomic_store(&s->c->parent_waiting, 0);
    atomic_store(&s->c->child_sleeps, 0);
    ppx__ring_reset(s->req);
    ppx__ring_reset(s->resp);
    pid_t parent = getpid();
    fflush(NULL);
    pid_t pid = fork();
    if (pid < 0)
        die("fork", errno);
    if (pid == 0)
        child_main(s, mode, efd, parent);
    return pid;
}

static void child_stop(const shared *s, pid_t pid)
{
    atomic_store(&s->c->stop, 1);
    ppx__port req = ppx__port_of(s->req, RING_CAP);
    ppx__ring_kick(&req);
    int status;
    while (waitpid(pid, &status, 0) < 0)
        if (errno != EINTR)
            die("waitpid", errno);
    if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
        fprintf(stderr, "bench_floor: child failed (status %d)\n", status);
        exit(1);
    }
}

/* ---- the parent ------------------------------------------------------- */

typedef struct run {
    ppx__port req, resp;
    ctl *c;
    int efd;
    uv_poll_t poll;
    int sent, done, total;
    uint64_t t0;
    double *us; /* MEASURED samples */
    uint64_t wakeups, spurious;
} run;

static void send_request(run *r)
{
    unsigned char msg[PAYLOAD];
    memset(msg, 0, sizeof msg);
    memcpy(msg, &r->sent, sizeof r->sent);
    r->t0 = now_ns();
    void *p = ppx__ring_reserve(&r->req, PAYLOAD);
    if (!p)
        die("request ring full", EAGAIN);
    memcpy(p, msg, PAYLOAD);
    ppx__ring_commit(&r->req, PAYLOAD, 0);
    ppx__ring_notify_data(&r->req);
    r->sent++;
}

/* 1 when the reply to the last request was taken, 0 when none is there. */
static int take_reply(run *r)
{
    const void *rec;
    size_t len;
    uint32_t flags;
    int rc = ppx__ring_peek(&r->resp, &rec, &len, &flags);
    if (rc == 0)
        return 0;
    uint64_t t1 = now_ns();
    int seq;
    if (rc < 0 || len != PAYLOAD || (memcpy(&seq, rec, sizeof seq), seq != r->done)) {
        fprintf(stderr, "bench_floor: bad reply\n");
        exit(1);
    }
    ppx__ring_release(&r->resp, len);
    if (r->done >= WARMUP)
        r->us[r->done - WARMUP] = (double)(t1 - r->t0) / 1e3;
    r->done++;
    return 1;
}

/* Takes replies and sends the next request until the reply ring is empty
 * with the flag up (ppx's process_locked: flag, fence, look once more). */
static void pump(run *r)
{
    for (;;) {
        if (take_reply(r)) {
            if (r->done == r->total) {
                uv_poll_stop(&r->poll);
                return;
            }
            send_request(r);
            continue;
        }
        atomic_store_explicit(&r->c->parent_waiting, 1, memory_order_relaxed);
        atomic_thread_fence(memory_order_seq_cst);
        if (ppx__ring_empty(&r->resp))
            return;
    }
}

static void on_eventfd(uv_poll_t *h, int status, int events)
{
    run *r = h->data;
    if (status < 0) {
        fprintf(stderr, "bench_floor: uv_poll: %s\n", uv_strerror(status));
        exit(1);
    }
    r->wakeups++;
    ppx__eventfd_drain(r->efd);
    int before = r->done;
    pump(r);
    if (r->done == before)
        r->spurious++;
}

static void report_rtt(const char *impl, double *us)
{
    double mean = 0;
    for (int i = 0; i < MEASURED; i++)
        mean += us[i] / MEASURED;
    qsort(us, MEASURED, sizeof *us, cmp_double);
    emit("rtt_median_us", impl, us[MEASURED / 2], "us");
    emit("rtt_p99_us", impl, us[(size_t)(MEASURED * 0.99)], "us");
    fprintf(stderr, "%s: mean %.2f us, min %.2f us, p90 %.2f us, p99.9 %.2f us, max %.2f us\n",
            impl, mean, us[0], us[(size_t)(MEASURED * 0.9)], us[(size_t)(MEASURED * 0.999)], us[MEASURED - 1]);
}

static void bench_epoll_futex(const shared *s, double *us)
{
    int efd = ppx__eventfd_new();
    if (efd < 0)
        die("eventfd", efd);
    pid_t pid = child_start(s, MODE_EPOLL_FUTEX, efd);

    uv_loop_t loop;
    int rc = uv_loop_init(&loop);
    if (rc)
        die("uv_loop_init", rc);
    run r = {ppx__port_of(s->req, RING_CAP), ppx__port_of(s->resp, RING_CAP), s->c, efd,
             {0}, 0, 0, WARMUP + MEASURED, 0, us, 0, 0};
    if ((rc = uv_poll_init(&loop, &r.poll, efd)))
        die("uv_poll_init", rc);
    r.poll.data = &r;
    if ((rc = uv_poll_start(&r.poll, UV_READABLE, on_eventfd)))
        die("uv_poll_start", rc);
    send_request(&r);
    pump(&r);
    uv_run(&loop, UV_RUN_DEFAULT);
    if (r.done != r.total)
        die("loop ended early", EPROTO);
    uv_close((uv_handle_t *)&r.poll, NULL);
    uv_run(&loop, UV_RUN_DEFAULT);
    if ((rc = uv_loop_close(&loop)))
        die("uv_loop_close", rc);

    child_stop(s, pid);
    close(efd);
    fprintf(stderr,
            "floor_epoll_futex: %llu eventfd wake-ups for %d round trips (%llu spurious), "
            "child slept on the futex %llu times\n",
            (unsigned long long)r.wakeups, r.total, (unsigned long long)r.spurious,
            (unsigned long long)atomic_load(&s->c->child_sleeps));
    report_rtt("floor_epoll_futex", us);
}

static void bench_spin(const shared *s, double *us)
{
    pid_t pid = child_start(s, MODE_SPIN, -1);
    run r = {ppx__port_of(s->req, RING_CAP), ppx__port_of(s->resp, RING_CAP), s->c, -1,
             {0}, 0, 0, WARMUP + MEASURED, 0, us, 0, 0};
    while (r.done < r.total) {
        send_request(&r);
        while (!take_reply(&r))
            ppx__cpu_relax();
    }
    child_stop(s, pid);
    report_rtt("floor_spin", us);
}

/* ---- the copy floor --------------------------------------------------- */

static void touch_pages(unsigned char *p, size_t len, size_t page)
{
    for (size_t off = 0; off < len; off += page)
        p[off] = 1;
}

/* Seconds for one round of the copies an echo of size bytes needs:
 * src -> shm -> dst (two), or src -> dst (one); the best of rounds, after
 * an untimed one so caches and TLB are as warm as they get. */
static double copy_secs(unsigned char *src, unsigned char *shm, unsigned char *dst,
                        size_t size, int rounds, bool two)
{
    memcpy(shm, src, size);
    memcpy(dst, shm, size);
    double best = 1e9;
    for (int i = 0; i < rounds; i++) {
        uint64_t t0 = now_ns();
        if (two) {
            memcpy(shm, src, size);
            memcpy(dst, shm, size);
        } else {
            memcpy(dst, src, size);
        }
        double s = (double)(now_ns() - t0) / 1e9;
        if (s < best)
            best = s;
    }
    if (memcmp(src, dst, size) != 0)
        die("copy mismatch", EPROTO);
    return best;
}

static void bench_copy(void)
{
    size_t page = (size_t)sysconf(_SC_PAGESIZE);
    unsigned char *src = malloc(COPY_BYTES), *dst = malloc(COPY_BYTES);
    void *shm;
    if (!src || !dst)
        die("malloc", ENOMEM);
    int rc = ppx__region_map(COPY_BYTES, &shm);
    if (rc)
        die("ppx__region_map", rc);
    for (size_t i = 0; i < COPY_BYTES; i++)
        src[i] = (unsigned char)(i * 131u);
    memset(dst, 0, COPY_BYTES);
    memset(shm, 0, COPY_BYTES);
    static const struct { const char *metric; size_t size; int rounds; } echo[] = {
        {"echo_1MiB_MBps", (size_t)1 << 20, 200},
        {"echo_4MiB_MBps", (size_t)4 << 20, 50},
        {"echo_64MiB_MBps", COPY_BYTES, COPY_CALLS},
    };
    for (size_t k = 0; k < sizeof echo / sizeof echo[0]; k++) {
        double secs = copy_secs(src, shm, dst, echo[k].size, echo[k].rounds, true);
        emit(echo[k].metric, "floor_memcpy", 2.0 * (double)echo[k].size / secs / 1e6, "MB/s");
    }
    emit("zc_echo_64MiB_ms", "floor_memcpy",
         copy_secs(src, shm, dst, COPY_BYTES, COPY_CALLS, false) * 1e3, "ms");
    ppx__region_unmap(shm, COPY_BYTES);

    /* A fresh shared mapping: mmap plus the first write to every page. */
    for (int k = 0; k < 3; k++) {
        uint64_t a = now_ns();
        void *fresh;
        if ((rc = ppx__region_map(COPY_BYTES, &fresh)))
            die("ppx__region_map", rc);
        uint64_t b = now_ns();
        touch_pages(fresh, COPY_BYTES, page);
        uint64_t c = now_ns();
        memcpy(fresh, src, COPY_BYTES);
        uint64_t d = now_ns();
        ppx__region_unmap(fresh, COPY_BYTES);
        uint64_t e = now_ns();
        fprintf(stderr,
                "fresh 64 MiB shared mapping #%d: mmap %.3f ms + first touch of %zu pages "
                "%.2f ms = %.2f ms (then a warm memcpy into it %.2f ms, munmap %.2f ms)\n",
                k + 1, (double)(b - a) / 1e6, COPY_BYTES / page, (double)(c - b) / 1e6,
                (double)(c - a) / 1e6, (double)(d - c) / 1e6, (double)(e - d) / 1e6);
    }
    free(src);
    free(dst);
}

static void report_pause_cost(void)
{
    enum { N = 20000 };
    double ns = 1e9;
    for (int k = 0; k < 10; k++) { /* the best of 10: preemption only adds */
        uint64_t t0 = now_ns();
        for (int i = 0; i < N; i++)
            ppx__cpu_relax();
        double each = (double)(now_ns() - t0) / N;
        if (each < ns)
            ns = each;
    }
    fprintf(stderr, "pause: %.1f ns each, so the worker's %d-poll spin lasts ~%.1f us\n", ns,
            IDLE_SPIN, ns * IDLE_SPIN / 1e3);
}

int main(void)
{
    shared s;
    shared_map(&s);
    double *us = malloc(MEASURED * sizeof *us);
    if (!us)
        die("malloc", ENOMEM);
    report_pause_cost();
    bench_epoll_futex(&s, us);
    bench_spin(&s, us);
    bench_copy();
    free(us);
    ppx__region_unmap(s.base, s.len);
    return 0;
}
