/*
 * The local backend's entry points (backend.h): what the core asks of
 * forked workers on this machine. Starting and stopping them is in
 * start.c, placing calls and reading replies in dispatch.c.
 */
#include "local.h"
#include "procpool/worker/sandbox.h"
#include "procpool/buffer.h"
#include "shm/ring.h"
#include "shm/wake.h"

#include <sched.h>
#include <stdlib.h>
#include <sys/epoll.h>
#include <unistd.h>

static int local_submit(ppx_pool *pool, ppx__task *t, ppx__notify *n)
{
    (void)n;
    ppx__local *p = ppx__local_of(pool);
    /* Room in the deadline heap for every live task, so scheduling a
     * deadline later cannot fail. */
    if (ppx__heap_reserve(&p->deadlines, pool->ntasks + 1))
        return PPX_ENOMEM;
    ppx__ltask *lt = ppx__lt(t);
    lt->slot = PPX__NO_SLOT;
    lt->worker = -1;
    ppx__hnode_init(&lt->deadline);
    ppx__list_push_back(&p->queue, &t->link);
    if (ppx__task_deadline(t)) {
        ppx__task_reschedule(p, t);
        if (!p->timer_at || ppx__task_deadline(t) < p->timer_at)
            ppx__arm_timer(p);
    }
    ppx__pump(p);
    return 0;
}

static void local_cancel(ppx_pool *pool, ppx__task *t, bool kill_later, bool timed_out,
                         ppx__notify *n)
{
    ppx__cancel_task(ppx__local_of(pool), t, kill_later, timed_out, n);
}

static void local_cancel_all(ppx_pool *pool, bool kill_later, ppx__notify *n)
{
    ppx__local *p = ppx__local_of(pool);
    while (p->queue.head)
        ppx__cancel_task(p, ppx__list_first(&p->queue), kill_later, false, n);
    for (int i = 0; i < p->nworkers; i++)
        for (ppx__task *t = ppx__list_first(&p->w[i].tasks); t; t = ppx__task_next(t))
            if (ppx__task_fut(t))
                ppx__cancel_task(p, t, kill_later, false, n);
}

static void local_cancel_queued(ppx_pool *pool, ppx__notify *n)
{
    ppx__local *p = ppx__local_of(pool);
    while (p->queue.head)
        ppx__cancel_unclaimed(p, ppx__list_first(&p->queue), n);
    /* Calls placed in a ring: the ones behind the running call are still
     * QUEUED; a CAS that fails means the worker has claimed it. */
    for (int i = 0; i < p->nworkers; i++)
        for (ppx__task *t = ppx__list_first(&p->w[i].tasks); t; t = ppx__task_next(t))
            if (ppx__task_fut(t))
                ppx__cancel_unclaimed(p, t, n);
}

/* The shutdown flag first: it is what stops respawns (exits.c, timers.c)
 * and makes a reaped worker's death expected, not a crash streak's; a
 * worker that sees it between calls exits on its own. Running calls fail
 * when the fork server reports their worker's death (ppx__reap). */
static int local_signal_workers(ppx_pool *pool, int sig, ppx__notify *n)
{
    ppx__local *p = ppx__local_of(pool);
    atomic_store(&p->sh->shutdown, 1);
    local_cancel_queued(pool, n);
    for (int i = 0; i < p->nworkers; i++) {
        ppx__worker *w = &p->w[i];
        w->respawn_at = 0;
        if (w->alive || w->spawning)
            ppx__signal_worker(w, sig);
    }
    return 0;
}

static ppx_state local_task_state(ppx_pool *pool, ppx__task *t)
{
    ppx__local *p = ppx__local_of(pool);
    const ppx__ltask *lt = ppx__lt(t);
    if (lt->slot == PPX__NO_SLOT)
        return PPX_PENDING;
    uint64_t w = atomic_load(&ppx__task_slot(p, t)->state);
    uint32_t s = ppx__slot_st(w);
    if ((s == PPX__SLOT_RUNNING || s == PPX__SLOT_FINISHED) && ppx__slot_seq(w) == lt->seq)
        return PPX_RUNNING;
    return PPX_PENDING;
}

static bool local_busy(ppx_pool *pool)
{
    ppx__local *p = ppx__local_of(pool);
    if (p->zygote_owed || p->zygote_forking)
        return true;
    for (int i = 0; i < p->nworkers; i++)
        if (p->w[i].spawning || (!p->w[i].alive && p->w[i].respawn_at))
            return true;
    return false;
}

static void local_stats(ppx_pool *pool, ppx_pool_stats *out)
{
    ppx__local *p = ppx__local_of(pool);
    out->crash_streak = p->crash_streak;
    out->queued = p->queue.n;
    pthread_mutex_lock(&p->arena.mu); /* nested in the pool's lock (core.h) */
    out->arena_used = p->arena.used;
    pthread_mutex_unlock(&p->arena.mu);
}

static int local_workers(const ppx_pool *pool)
{
    return ppx__local_of(pool)->nworkers;
}

static long local_worker_pid(ppx_pool *pool, int i)
{
    ppx__local *p = ppx__local_of(pool);
    if (i < 0 || i >= p->nworkers)
        return 0;
    return p->w[i].alive ? (long)p->w[i].pid : 0;
}

static int local_worker_stats(ppx_pool *pool, int i, ppx_worker_stats *out)
{
    return ppx__observe_worker_stats(ppx__local_of(pool), i, out);
}

/* A frame too big for one ring record goes in the call arena, where the
 * worker reads it in place. No pool lock: the arena has its own. */
static void *local_frame_alloc(ppx_pool *pool, size_t cap)
{
    ppx__local *p = ppx__local_of(pool);
    if (cap < ppx__big_frame(pool->opt.ring_bytes))
        return NULL;
    return ppx__arena_alloc(&p->arena, cap);
}

static bool local_frame_free(ppx_pool *pool, void *frame, size_t cap)
{
    ppx__local *p = ppx__local_of(pool);
    if (!ppx__arena_owns(&p->arena, frame))
        return false;
    ppx__arena_free(&p->arena, frame, cap);
    return true;
}

static void *local_shared_alloc(ppx_pool *pool, size_t len, uint64_t *off)
{
    ppx__local *p = ppx__local_of(pool);
    unsigned char *mem = ppx__arena_alloc(&p->arena, len);
    if (mem)
        *off = (uint64_t)(mem - p->arena.base);
    return mem;
}

static void local_shared_free(ppx_pool *pool, void *mem, size_t len)
{
    ppx__arena_free(&ppx__local_of(pool)->arena, mem, len);
}

static void *local_shared_at(ppx_pool *pool, uint64_t off, uint64_t len)
{
    ppx__local *p = ppx__local_of(pool);
    if (off > p->arena.size || len > p->arena.size - off)
        return NULL;
    return p->arena.base + off;
}

static void free_tasks(ppx__local *p, ppx__list *l)
{
    while (l->head) {
        ppx__task *t = ppx__list_first(l);
        ppx__list_remove(l, &t->link);
        ppx__local_task_free(p, t);
    }
}

static void local_free_tasks(ppx_pool *pool)
{
    ppx__local *p = ppx__local_of(pool);
    for (int i = 0; p->w && i < p->nworkers; i++) {
        free_tasks(p, &p->w[i].tasks);
        ppx__rx_reset(&p->w[i].rx);
    }
    free_tasks(p, &p->queue);
}

/* Drops a copy's tasks, resolving their futures CANCELLED in this
 * process only: no live table, slot, ring or arena word is written. */
static void drop_tasks(ppx__local *p, ppx__list *l, ppx__notify *n)
{
    while (l->head) {
        ppx__task *t = ppx__list_first(l);
        ppx__list_remove(l, &t->link);
        if (ppx__task_fut(t)) {
            ppx__future_cancelled(ppx__task_fut(t), n);
            p->pool->unresolved--;
        }
        /* An arena frame is a block of the shared mapping: it goes with
         * the arena's bookkeeping, whose lock may be held by a thread the
         * copy does not have. */
        if (t->frame != t->inline_frame && !ppx__arena_owns(&p->arena, t->frame))
            ppx__bigbuf_free(t->frame, ppx__task_frame_cap(t));
        ppx__task_drop_bufs(t); /* in a copy: the handles only */
        p->pool->ntasks--;
        ppx__future_release(ppx__task_block(t), PPX__HALF_TASK);
    }
}

static bool local_drop_copy(ppx_pool *pool, ppx__notify *n)
{
    ppx__local *p = ppx__local_of(pool);
    drop_tasks(p, &p->queue, n);
    for (int i = 0; i < p->nworkers; i++) {
        drop_tasks(p, &p->w[i].tasks, n);
        ppx__rx_reset(&p->w[i].rx);
    }
    return true;
}

static void local_destroy(ppx_pool *pool, bool copy)
{
    ppx__local *p = ppx__local_of(pool);
    if (!p)
        return;
    if (!copy)
        local_free_tasks(pool);
    /* In a copy, the tracked zygote and worker descriptors went at the
     * fork (fork.h). */
    if (p->tfd >= 0)
        close(p->tfd);
    ppx__layout_unmap(p);
    free(p->slot_task);
    free(p->slot_seq);
    for (int i = 0; p->w && i < p->nworkers; i++)
        free(p->w[i].free_slots);
    free(p->w);
    ppx__heap_free(&p->deadlines);
    ppx__sandbox_free(p->sandbox);
    free(p);
    pool->be = NULL;
}

static void local_unlocked(ppx_pool *pool)
{
    ppx__zygote_replace(ppx__local_of(pool));
}

static int local_start(ppx_pool *pool);
static void local_stop(ppx_pool *pool);
static void local_process(ppx_pool *pool, ppx__notify *n);
static int local_spin(ppx_pool *pool, int us);

const ppx__backend_ops ppx__local_ops = {
    .start = local_start,
    .submit = local_submit,
    .cancel = local_cancel,
    .cancel_all = local_cancel_all,
    .cancel_queued = local_cancel_queued,
    .signal_workers = local_signal_workers,
    .process = local_process,
    .unlocked = local_unlocked,
    .spin = local_spin,
    .task_state = local_task_state,
    .busy = local_busy,
    .stats = local_stats,
    .workers = local_workers,
    .worker_pid = local_worker_pid,
    .worker_stats = local_worker_stats,
    .frame_alloc = local_frame_alloc,
    .frame_free = local_frame_free,
    .shared_alloc = local_shared_alloc,
    .shared_free = local_shared_free,
    .shared_at = local_shared_at,
    .stop = local_stop,
    .free_tasks = local_free_tasks,
    .drop_copy = local_drop_copy,
    .destroy = local_destroy,
};

/* ---- starting, stopping, processing ------------------------------------ */

static int local_start(ppx_pool *pool)
{
    ppx__local *p = calloc(1, sizeof *p);
    if (!p)
        return PPX_ENOMEM;
    p->pool = pool;
    p->tfd = -1;
    p->nworkers = pool->opt.workers;
    pool->be = p;
    p->w = calloc((size_t)p->nworkers, sizeof *p->w);
    int rc = p->w ? ppx__sandbox_new(&pool->opt, &p->sandbox) : PPX_ENOMEM;
    pool->opt.sandbox_allow = NULL; /* borrowed for this call only */
    pool->opt.cpus = NULL;
    if (rc == 0)
        rc = ppx__layout_map(p);
    if (rc == 0)
        rc = ppx__local_open_timer(p);
    if (rc == 0) /* before the workers start: their tracks get named */
        rc = ppx__trace_open(&pool->trace, pool->opt.trace_path, (long)pool->self,
                             p->nworkers, pool->created_ns);
    pool->opt.trace_path = NULL; /* borrowed for this call only */
    if (rc == 0)
        rc = ppx__local_start_workers(p);
    if (rc)
        return rc;
    ppx__want_wakeups(p, 1);
    if (pool->trace) { /* the header and track names are on disk, whatever happens */
        ppx__trace_flush(pool->trace);
        ppx__trace_write(pool->trace); /* no lock: the pool is not shared yet */
    }
    return 0;
}

static void local_stop(ppx_pool *pool)
{
    ppx__local *p = ppx__local_of(pool);
    if (!p)
        return;
    ppx__local_stop_workers(p);
    /* Stop runs once, before the pool is torn down (ppx_pool_free, or a
     * failed start): the trace file is complete from here. */
    ppx__observe_pool_end(p);
}

static bool replies_waiting(ppx__local *p)
{
    for (int i = 0; i < p->nworkers; i++)
        if (p->w[i].alive && !ppx__ring_empty(&p->w[i].resp))
            return true;
    return false;
}

/* One round: replies first, then the timer's and the zygote's events,
 * then placement; again while replies keep coming, up to 8 rounds. */
static void local_process(ppx_pool *pool, ppx__notify *n)
{
    ppx__local *p = ppx__local_of(pool);
    for (int round = 0; round < 8; round++) {
        ppx__pool_take_kick(pool);
        bool replies = ppx__eventfd_drain(pool->efd);
        /* The timerfd and the zygote's socket only need looking at when
         * the wake-up was not a reply, a deadline is due, or a while has
         * passed: the epoll set stays readable until they are handled. */
        int64_t now = ppx__now_ns();
        int nev = 0;
        struct epoll_event ev[32];
        if (!replies || (p->timer_at > 0 && now >= p->timer_at) ||
            now - p->polled_at > 1000000) {
            nev = epoll_wait(pool->epfd, ev, 32, 0);
            p->polled_at = now;
        }
        bool timers = false;
        int resolved = n->count;
        for (int i = 0; i < p->nworkers; i++)
            if (p->w[i].alive)
                ppx__drain_replies(p, &p->w[i], n);
        /* A wake-up that brought no reply may be a ppx_call_progress one:
         * look at the running calls then, not on every round (each call
         * would pay for the look; the 20 ms sweep catches the rest). */
        if (n->count == resolved)
            ppx__scan_progress(p, n);
        for (int k = 0; k < nev; k++) {
            uint64_t tag = ev[k].data.u64;
            if (tag == PPX__EV_TIMER)
                timers = true;
            else if (tag == PPX__EV_ZYGOTE)
                ppx__zygote_events(p, n);
        }
        if (timers)
            ppx__run_timers(p, n);
        ppx__pump(p);
        /* Ask for the eventfd again, then look once more: a reply that
         * raced with the flag is seen here or signals (see shared.h). */
        ppx__want_wakeups(p, 1);
        atomic_thread_fence(memory_order_seq_cst);
        if (!replies_waiting(p))
            return;
    }
    /* Out of rounds with replies left: a worker may have seen the flag
     * down and not signalled, so keep the fd readable for the next call. */
    ppx__eventfd_signal(pool->efd);
}

static int local_spin(ppx_pool *pool, int us)
{
    ppx__local *p = ppx__local_of(pool);
    int64_t deadline = ppx__now_ns() + (int64_t)us * 1000;
    /* While we poll, workers need not pay for an eventfd write. */
    ppx__pool_lock(pool);
    ppx__want_wakeups(p, 0);
    ppx__pool_unlock(pool);
    for (;;) {
        ppx__pool_lock(pool);
        bool ready = !pool->torn_down && replies_waiting(p);
        ppx__pool_unlock(pool);
        if (ready || ppx__now_ns() > deadline)
            break;
        /* The worker we just woke is often placed on this very CPU: a
         * pure spin would keep it from running until the spin ends. */
        sched_yield();
    }
    return ppx_pool_process(pool); /* also raises parent_waiting again */
}
