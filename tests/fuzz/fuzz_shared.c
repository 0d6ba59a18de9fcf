/*
 * libFuzzer target for the parent's view of shared memory (issue 12): the
 * input is a script that interleaves a workload (submits, maps, cancels,
 * the parent's processing, its timers and sweep, worker steps, crashes
 * and exits, failed spawns) with writes of arbitrary values into a live
 * worker's region (its block, slots, ring header words, ring records,
 * outbox), which is exactly what a worker can write. The parent is the
 * real pool code; the workers and the zygote are fakes in this process
 * (fuzz_fake.c).
 *
 * Input: one byte of configuration (bit 0: two workers; bits 1-2: queue
 * depth; bit 3: no arena or outboxes, big frames in chunks; bit 4: trace;
 * bit 5: writes only while a function runs), then steps (see step()).
 *
 * After the script, the workers turn honest and the pool runs until every
 * future has resolved; a worker that wrote into its region at any time
 * may be stuck by its own hand and is killed after a while, as a caller's
 * deadline would. Then:
 *   - every future resolved, within a bounded number of rounds, and with
 *     writes only inside functions without killing anyone, unless they
 *     hit ring contents or the outbox (a reply already sent can be lost);
 *   - a WorkerCrashed or ProtocolError names one of the fake workers;
 *   - without writes into ring contents or an outbox, a result is exactly
 *     its own call's arguments echoed, an error one the script explains;
 *   - the pool holds no task afterwards.
 * ASan and UBSan check the rest.
 */
#include "fuzz_shared.h"
#include "procpool/registry.h"
#include "procpool/worker/worker.h"
#include "shm/wake.h"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerInitialize(int *argc, char ***argv);

#define MAX_SUBS 48

typedef struct in {
    const uint8_t *d;
    size_t n;
} in;

static uint8_t rd(in *s)
{
    if (!s->n)
        return 0;
    s->n--;
    return *s->d++;
}

static uint64_t rdn(in *s, int bytes)
{
    uint64_t v = 0;
    for (int k = 0; k < bytes; k++)
        v |= (uint64_t)rd(s) << (8 * k);
    return v;
}

typedef struct sub {
    ppx_future *f;
    unsigned char *args; /* what an honest echo returns */
    size_t len;
    bool fail, timeout, cancelled;
} sub;

static sub subs[MAX_SUBS];
static size_t nsubs;
/* What the script did, to know which outcomes it can explain. */
static bool data_written, any_written, crashed, init_exit;
static bool region_written[FAKE_MAX_WORKERS];
/* Writes into ring contents or the outbox: even inside a function they can
 * destroy a reply the worker already sent (the parent then reads it as
 * something else), which only a caller's deadline or cancel ends. */
static bool content_written[FAKE_MAX_WORKERS];
/* Writes land only while a function runs (between a claim and its
 * FINISHED), as from a function without threads of its own: then no
 * worker can be stuck by its own hand once it is honest again, and the
 * pool must finish without the harness killing anyone. Otherwise writes
 * land at any time, as from a thread a function left running. */
static bool fn_only;

/* The local backend's table, but for start and stop (see fuzz_shared.h). */
static ppx__backend_ops fake_ops;
static uint8_t pool_cfg; /* the input's configuration byte, for harness_start */
static int harness_start(ppx_pool *pool);
static void harness_stop(ppx_pool *pool);

static int never_runs(ppx_call *call, void *udata)
{
    (void)call;
    (void)udata;
    abort(); /* workers are fakes: nothing calls the registry's functions */
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    ppx_register("echo", never_runs, NULL);
    ppx_register("fail", never_runs, NULL);
    ppx__registry_freeze();
    fake_ops = ppx__local_ops;
    fake_ops.start = harness_start;
    fake_ops.stop = harness_stop;
    return 0;
}

/* ---- the pool, without fork -------------------------------------------- */

/* local_start's steps (local.c), with a socketpair for the zygote's
 * socket and the fake zygote answering the first spawn requests in place
 * of ppx__local_start_workers. */
static int harness_start(ppx_pool *pool)
{
    harness *h = &fuzz_h;
    ppx__local *p = calloc(1, sizeof *p);
    if (!p)
        abort();
    p->pool = pool;
    p->tfd = -1;
    p->z.sock = p->z.lifeline = -1;
    p->nworkers = pool->opt.workers;
    pool->be = p;
    h->p = pool;
    h->l = p;
    p->w = calloc((size_t)p->nworkers, sizeof *p->w);
    if (!p->w || ppx__layout_map(p) || ppx__local_open_timer(p))
        abort();
    /* The trace reads the slots' start and end stamps a worker writes. */
    if ((pool_cfg & 16) && ppx__trace_open(&pool->trace, "/dev/null", (long)pool->self,
                                           p->nworkers, pool->created_ns))
        abort();
    pool->opt.trace_path = NULL;
    int sv[2];
    if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv))
        abort();
    fcntl(sv[0], F_SETFL, fcntl(sv[0], F_GETFL) | O_NONBLOCK);
    p->z.sock = sv[0];
    h->zsock = sv[1];
    if (ppx__pool_watch(pool, p->z.sock, PPX__EV_ZYGOTE))
        abort();
    for (int i = 0; i < p->nworkers; i++)
        if (ppx__spawn(p, i))
            abort();
    fake_zygote_step(h);
    ppx__notify n = {0};
    ppx__zygote_events(p, &n); /* no calls yet: nothing to notify */
    for (int i = 0; i < p->nworkers; i++)
        if (!p->w[i].alive)
            abort();
    ppx__want_wakeups(p, 1);
    if (pool->trace)
        ppx__trace_flush(pool->trace);
    return 0;
}

/* local_stop's place in ppx_pool_free (the pool's lock held): the fake
 * workers all die (the parent stops respawning), nothing may outlive
 * them, then the trace ends and the fake zygote's socket closes. */
static void harness_stop(ppx_pool *pool)
{
    harness *h = &fuzz_h;
    ppx__local *p = ppx__local_of(pool);
    if (!p)
        return;
    ppx__notify n = {0};
    atomic_store(&p->sh->shutdown, 1);
    for (int i = 0; i < p->nworkers; i++)
        if (p->w[i].alive)
            ppx__reap(p, &p->w[i], CLD_KILLED, SIGKILL, &n);
    /* A worker the zygote has not named yet (spawning) may hold calls
     * placed in its ring, lingering once their futures were cancelled:
     * ppx_pool_free's free_tasks frees those, as for a real pool. Any
     * other task left here outlived every worker and every future. */
    size_t on_spawning = 0;
    for (int i = 0; i < p->nworkers; i++)
        for (ppx__task *t = p->w[i].spawning ? ppx__list_first(&p->w[i].tasks) : NULL; t;
             t = ppx__task_next(t))
            on_spawning++;
    if (pool->ntasks != on_spawning || pool->unresolved || p->queue.n)
        abort();
    /* As ppx__local_stop_workers leaves them; a respawn asked for and not
     * answered yet is dropped with the fake zygote. */
    for (int i = 0; i < p->nworkers; i++) {
        if (p->w[i].alive)
            abort();
        ppx__fork_close(p->w[i].pidfd);
        p->w[i].pidfd = -1;
        p->w[i].spawning = false;
    }
    if (!pool->torn_down)
        ppx__observe_pool_end(p);
    if (p->z.sock >= 0)
        close(p->z.sock);
    p->z.sock = -1;
    close(h->zsock);
    h->zsock = -1;
    /* The stop may let go of the lock (backend.h): callbacks never run
     * under it. */
    ppx__pool_unlock(pool);
    ppx__notify_run(&n);
    ppx__pool_lock(pool);
}

static void pool_new(harness *h, uint8_t cfg)
{
    ppx_pool_options o = PPX_POOL_OPTIONS(.workers = 1 + (cfg & 1), .ring_bytes = 4096,
                          .max_payload = 16384, .max_queued_per_worker = 2 + (cfg >> 1) % 3);
    if (cfg & 8)
        o.arena_bytes = PPX_ARENA_NONE; /* big frames travel in chunks */
    ppx_pool_options resolved;
    ppx_pool *p = NULL;
    pool_cfg = cfg;
    if (ppx__options_resolve(&resolved, &o) || ppx__pool_open(&p, &resolved, &fake_ops) ||
        p != h->p)
        abort();
}

/* ppx_pool_free, through harness_stop and the local backend's destroy. */
static void pool_free(harness *h)
{
    /* Checked before ppx_pool_free's cancel_all could resolve anything. */
    ppx__pool_lock(h->p);
    if (h->p->unresolved)
        abort();
    ppx__pool_unlock(h->p);
    ppx_pool_free(h->p);
    h->p = NULL;
    h->l = NULL;
    for (int i = 0; i < FAKE_MAX_WORKERS; i++)
        fake_destroy(&h->w[i]);
}

/* ---- parent steps -------------------------------------------------------- */

/* What an event loop does: process when the pool's descriptor is
 * readable, so a worker's lost or withheld wake-up delays its replies
 * until the sweep (timers_due), as it would in an application. */
static void process(harness *h)
{
    fake_reap_killed(h);
    fake_zygote_step(h);
    struct pollfd pf = {ppx_pool_fd(h->p), POLLIN, 0};
    if (poll(&pf, 1, 0) > 0)
        ppx_pool_process(h->p);
    fake_reap_killed(h);
}

/* Every deadline, sweep and respawn delay passes now: time is the
 * script's, not the clock's. */
static void timers_due(harness *h)
{
    ppx_pool *pool = h->p;
    ppx__local *p = h->l;
    ppx__notify n = {0};
    pthread_mutex_lock(&pool->mu);
    size_t k = p->deadlines.n;
    ppx__hnode **due = malloc((k ? k : 1) * sizeof *due);
    if (!due)
        abort();
    if (k)
        memcpy(due, p->deadlines.v, k * sizeof *due);
    for (size_t j = 0; j < k; j++) {
        ppx__task *t = ppx__task_of_deadline(due[j]);
        if (ppx__task_deadline(t)) /* due at 1 ns: long past */
            t->start_ns = 1 - (int64_t)t->timeout_ms * 1000000LL;
        if (ppx__lt(t)->kill_at)
            ppx__lt(t)->kill_at = 1;
        ppx__heap_set(&p->deadlines, due[j], 1);
    }
    free(due);
    if (p->sweep_at)
        p->sweep_at = 1;
    for (int i = 0; i < p->nworkers; i++)
        if (p->w[i].respawn_at)
            p->w[i].respawn_at = 1;
    ppx__run_timers(p, &n);
    pthread_mutex_unlock(&pool->mu);
    ppx__notify_run(&n);
    fake_reap_killed(h);
    /* A real expiry is the timerfd turning readable, and the loop then
     * processes the pool: every worker's replies are drained in that same
     * round, whether or not its wake-up came (a function may have cleared
     * parent_waiting; the sweep is what makes up for it). */
    ppx_pool_process(pool);
    fake_reap_killed(h);
}

/* [id, bin(len)], or for a map [[id, bin], [id, bin]]: id, the
 * submission's number, makes every call's echo its own, so a value handed
 * to the wrong future shows. */
static unsigned char *make_args(in *s, bool map, size_t *len)
{
    static const size_t big[] = {1100, 3000, 9000};
    uint8_t b = rd(s);
    size_t n = b & 0x80 ? big[(b & 0x7f) % 3] : (size_t)(b & 0x3f);
    if (map && n > 4000)
        n = 4000; /* both items within max_payload */
    size_t one = 5 + n, total = map ? 1 + 2 * one : one;
    unsigned char *a = malloc(total), *q = a;
    if (map)
        *q++ = 0x92;
    for (int k = 0; k < (map ? 2 : 1); k++) {
        *q++ = 0x92;
        *q++ = (unsigned char)nsubs; /* positive fixint: MAX_SUBS < 128 */
        *q++ = 0xc5;                 /* bin16 */
        *q++ = (unsigned char)(n >> 8);
        *q++ = (unsigned char)n;
        memset(q, b + k, n);
        q += n;
    }
    *len = total;
    return a;
}

static void submit(harness *h, in *s, int kind)
{
    if (nsubs == MAX_SUBS)
        return;
    sub *u = &subs[nsubs];
    uint8_t opt = rd(s);
    u->fail = kind == 1;
    u->timeout = opt & 1;
    u->args = make_args(s, kind == 2, &u->len);
    ppx_call_options co = PPX_CALL_OPTIONS(.timeout_ms = u->timeout ? 1000 : -1);
    int rc = kind == 2 ? ppx_pool_map(h->p, "echo", u->args, u->len, &co, &u->f)
                       : ppx_pool_submit_ex(h->p, u->fail ? "fail" : "echo", u->args, u->len,
                                            &co, &u->f);
    if (rc)
        abort(); /* every argument here is well-formed and within limits */
    nsubs++;
}

/* Writes value into worker w's region at a place the script picks. */
static void scribble(harness *h, in *s)
{
    ppx__local *p = h->l;
    int wi = rd(s) % p->nworkers;
    uint8_t area = rd(s), mode = rd(s);
    uint32_t off = (uint32_t)rdn(s, 2);
    uint64_t v = rdn(s, 8);
    if (!h->w[wi].alive || (fn_only && !h->w[wi].finish_slot))
        return; /* only a live worker writes, in a function if fn_only */
    size_t cap = h->p->opt.ring_bytes, hdr = sizeof(ppx__ring), at;
    size_t req = p->block_bytes, resp = req + p->ring_stride, ob = req + 2 * p->ring_stride;
    bool data = false;
    switch (area % 8) {
    case 0: at = off % sizeof(ppx__wshared); break;
    case 1: at = sizeof(ppx__wshared) + off % (p->per * sizeof(ppx__slot)); break;
    case 2: at = req + off % hdr; break;
    case 3: at = req + hdr + off % cap, data = true; break;
    case 4: at = resp + off % hdr; break;
    case 5: /* near where the parent reads next: record headers */
        at = resp + hdr + (p->w[wi].resp.tail + off % 64) % cap, data = true;
        break;
    case 6:
        if (!p->outbox_bytes)
            return;
        at = ob + off % 4096, data = true;
        break;
    default:
        at = ((uint32_t)rdn(s, 2) << 16 | off) % p->region_stride;
        data = (at >= req + hdr && at < req + hdr + cap) ||
               (at >= resp + hdr && at < resp + hdr + cap) || at >= ob;
    }
    static const size_t widths[] = {1, 4, 8, 8};
    size_t wd = widths[mode % 4];
    at &= ~(wd - 1);
    if (at + wd > p->region_stride)
        return;
    unsigned char *dst =
        (unsigned char *)p->sh + p->region_off + (size_t)wi * p->region_stride + at;
    if (mode % 4 == 3) { /* nudge a counter: head and tail a little off */
        uint64_t cur;
        memcpy(&cur, dst, 8);
        v = cur + (uint64_t)(int64_t)(int8_t)v;
    }
    memcpy(dst, &v, wd);
    any_written = region_written[wi] = true;
    content_written[wi] |= data;
    data_written |= data;
}

/* What a caller can ask while calls are out: the reads of slot words
 * and busy times behind them must stay hints, bounded and harmless. */
static void observe(harness *h)
{
    ppx_pool_stats ps = PPX_POOL_STATS_INIT;
    ppx_pool_stats_get(h->p, &ps);
    for (int i = 0; i < h->l->nworkers; i++) {
        ppx_worker_stats ws = PPX_WORKER_STATS_INIT;
        if (ppx_pool_worker_stats(h->p, i, &ws) || ws.queued > h->l->per ||
            ws.request_ring_bytes > ws.ring_bytes || ws.response_ring_bytes > ws.ring_bytes)
            abort();
    }
    for (size_t i = 0; i < nsubs; i++) {
        ppx_state st = ppx_future_state(subs[i].f);
        if (st != PPX_PENDING && st != PPX_RUNNING && !ppx_future_done(subs[i].f))
            abort();
    }
}

static void step(harness *h, in *s)
{
    uint8_t op = rd(s);
    switch (op % 16) {
    case 0: case 1: submit(h, s, 0); break;
    case 2: submit(h, s, 1); break;
    case 3: submit(h, s, 2); break;
    case 4: {
        uint8_t k = rd(s);
        if (nsubs && ppx_future_cancel(subs[k % nsubs].f) == 0)
            subs[k % nsubs].cancelled = true;
        break;
    }
    case 5: process(h); break;
    case 6: case 7: {
        uint8_t b = rd(s);
        int wi = b % h->l->nworkers;
        bool rogue = (b & 0x1c) == 0x1c; /* one step in eight */
        if (rogue && h->w[wi].alive)
            any_written = region_written[wi] = true; /* explains its ProtocolError */
        fake_serve(h, wi, b & 2, rogue);
        break;
    }
    case 8: {
        uint8_t b = rd(s);
        crashed = true;
        init_exit |= fake_die(h, b % h->l->nworkers, (b >> 1) % 13) == PPX__EXIT_INIT;
        break;
    }
    case 9: timers_due(h); break;
    case 12: observe(h); break;
    case 13: h->spawn_fails += 1 + rd(s) % 3; break;
    default: scribble(h, s); break;
    }
}

/* ---- the end: everything resolves, and only to what the script explains */

static size_t unresolved(void)
{
    size_t k = 0;
    for (size_t i = 0; i < nsubs; i++)
        k += !ppx_future_done(subs[i].f);
    return k;
}

/* Honest workers from here; one stuck for a while (after writing into
 * its region) is killed, as a caller's deadline would. */
static void settle(harness *h)
{
    size_t left = unresolved(), idle = 0;
    h->spawn_fails = 0; /* the fork server is honest too */
    for (int round = 0; round < 4000 && left; round++) {
        process(h);
        for (int i = 0; i < h->l->nworkers; i++)
            for (int k = 0; k < 64 && fake_serve(h, i, false, false); k++)
                ;
        process(h);
        size_t now = unresolved();
        idle = now < left ? 0 : idle + 1;
        left = now;
        if (idle % 4 == 3)
            timers_due(h);
        if (idle % 16 == 15) {
            /* Only a worker that wrote into its region may be stuck by
             * its own hand (inside functions: only by writing over ring
             * contents or its outbox); honest ones must never need this. */
            bool any = false;
            for (int i = 0; i < h->l->nworkers; i++)
                if (region_written[i] && (!fn_only || content_written[i]))
                    any |= fake_die(h, i, 0) == -1;
            if (!any) {
                fprintf(stderr, "fuzz_shared: stalled with honest workers\n");
                abort();
            }
            crashed = true;
        }
    }
    if (left) {
        fprintf(stderr, "fuzz_shared: %zu futures never resolved\n", left);
        abort();
    }
}

static void check(const sub *u)
{
    ppx_state st = ppx_future_state(u->f);
    if (st == PPX_CANCELLED) {
        if (!u->cancelled)
            abort();
        return;
    }
    if (st == PPX_DONE) {
        ppx_value v;
        if (ppx_future_value(u->f, &v))
            abort();
        if (!data_written && (u->fail || v.len != u->len || memcmp(v.data, u->args, v.len)))
            abort(); /* a value that is not the worker's answer */
        return;
    }
    const ppx_error *e = ppx_future_error(u->f);
    if (st != PPX_FAILED || !e)
        abort();
    bool lost = !strcmp(e->type, "WorkerCrashed"), proto = !strcmp(e->type, "ProtocolError");
    if (!data_written && (lost || proto) && (e->pid < FAKE_PID_BASE || e->pid >= fuzz_h.next_pid)) {
        fprintf(stderr, "fuzz_shared: %s names pid %ld\n", e->type, e->pid);
        abort(); /* misattributed: not one of our workers */
    }
    if (data_written)
        return; /* the worker may have written any error frame */
    /* A worker that wrote over its own slot words may be killed by the
     * pool (a cancelled call's slot no longer reads as FINISHED after
     * the grace: timers.c), costing the call it runs then. */
    bool ok = (lost && (crashed || any_written)) || (proto && any_written) ||
              (!strcmp(e->type, "ValueError") && u->fail) ||
              (!strcmp(e->type, "TimeoutError") && u->timeout) ||
              (!strcmp(e->type, "InitializerError") && init_exit);
    if (!ok) {
        fprintf(stderr, "fuzz_shared: unexplained %s: %s\n", e->type, e->message);
        abort();
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    in s = {data, size};
    harness *h = &fuzz_h;
    h->next_pid = FAKE_PID_BASE;
    h->spawn_fails = 0;
    nsubs = 0;
    data_written = any_written = crashed = init_exit = false;
    memset(region_written, 0, sizeof region_written);
    memset(content_written, 0, sizeof content_written);
    fn_only = size && (data[0] & 32);
    pool_new(h, rd(&s));
    for (int k = 0; k < 400 && s.n; k++)
        step(h, &s);
    settle(h);
    for (size_t i = 0; i < nsubs; i++) {
        check(&subs[i]);
        ppx_future_unref(subs[i].f);
        free(subs[i].args);
    }
    pool_free(h);
    return 0;
}
