/*
 * The pool's lifecycle: create, shut down, free, and its small accessors
 * (submit.c holds submission, drive.c processing and blocking waits). See
 * pool_impl.h for ownership and dispatch.c for how calls move.
 */
#include "pool_impl.h"
#include "registry.h"
#include "remote.h"
#include "worker.h"
#include "../serialize/envelope.h"
#include "../serialize/mpread.h"
#include "../serialize/pack.h"
#include "../shm/region.h"
#include "../shm/wake.h"

#include <errno.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/syscall.h>
#include <sys/timerfd.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define POOL_MAGIC 0x7070784cu /* "ppxL" */
#define POOL_DEAD 0xdeadb001u

static bool live(const ppx_pool *p)
{
    return p && p->magic == POOL_MAGIC;
}

bool ppx__pool_live(const ppx_pool *p)
{
    return live(p);
}

int ppx__pool_check(const ppx_pool *p)
{
    if (!live(p))
        return PPX_EBADOBJ;
    return ppx__pool_owned(p) ? 0 : PPX_EFORKED;
}

void ppx__want_wakeups(ppx_pool *p, uint32_t v)
{
    for (int i = 0; i < p->nworkers; i++)
        atomic_store_explicit(&p->w[i].ws->parent_waiting, v, memory_order_relaxed);
}

void ppx__pool_lock(ppx_pool *p) { pthread_mutex_lock(&p->mu); }
void ppx__pool_unlock(ppx_pool *p) { pthread_mutex_unlock(&p->mu); }

/* ---- creation ---------------------------------------------------------- */

static int add_fd(ppx_pool *p, int fd, uint64_t tag)
{
    struct epoll_event ev = {.events = EPOLLIN, .data.u64 = tag};
    return epoll_ctl(p->epfd, EPOLL_CTL_ADD, fd, &ev) ? -errno : 0;
}

/* The readiness descriptor is tracked (fork.h): a child of fork gets a
 * stand-in that is never ready, so a loop copied into it never hears the
 * creator's pool. The others stay in a child until it frees its copy:
 * they keep nothing alive, and the fork server itself needs the eventfd
 * (it is forked too, and the atfork handler would close it there). */
static int open_fds(ppx_pool *p)
{
    ppx__fork_hold();
    p->epfd = epoll_create1(EPOLL_CLOEXEC);
    int rc = p->epfd < 0 ? -errno : ppx__fork_track(p->epfd, PPX__FORK_BLIND);
    ppx__fork_release();
    if (rc)
        return rc;
    if ((p->efd = ppx__eventfd_new()) < 0)
        return p->efd;
    if ((p->kickfd = ppx__eventfd_new()) < 0)
        return p->kickfd;
    p->tfd = timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK | TFD_CLOEXEC);
    if (p->tfd < 0)
        return -errno;
    rc = add_fd(p, p->efd, PPX__EV_EFD);
    if (rc == 0)
        rc = add_fd(p, p->kickfd, PPX__EV_KICK);
    if (rc == 0)
        rc = add_fd(p, p->tfd, PPX__EV_TIMER);
    return rc;
}

static void stop_workers(ppx_pool *p);
static void destroy(ppx_pool *p);
static void graveyard_install(void);

/* With an initializer, creation reports its failure: wait until every
 * worker says it is ready, or one exits having failed it. */
static int wait_initialized(ppx_pool *p, int64_t deadline)
{
    for (;;) {
        int ready = 0;
        for (int i = 0; i < p->nworkers; i++)
            ready += atomic_load(&p->w[i].ws->ready) != 0;
        if (ready == p->nworkers)
            return 0;
        ppx__zmsg m;
        int rc;
        while ((rc = ppx__zygote_read(&p->z, &m)) == 1) {
            if (m.type != PPX__Z_EXITED)
                continue;
            const char *msg = "";
            for (int i = 0; i < p->nworkers; i++) {
                if (p->w[i].pid != m.pid)
                    continue;
                p->w[i].alive = false; /* this report is consumed here */
                if (ppx__exit_reason(p, &p->w[i], m.code, m.status) == PPX__EXIT_INIT)
                    msg = p->init_error;
            }
            ppx__set_last_error("worker %d %s: %.*s", (int)m.pid,
                                *msg ? "failed its initializer" : "exited while starting",
                                PPX__INIT_ERROR_MAX - 1, msg);
            return *msg ? PPX_EINIT : PPX_ESPAWN;
        }
        if (rc < 0 || ppx__now_ns() > deadline)
            return PPX_ESPAWN;
        struct pollfd pf[2] = {{p->z.sock, POLLIN, 0}, {p->efd, POLLIN, 0}};
        poll(pf, 2, 50);
        ppx__eventfd_drain(p->efd);
    }
}

/* Starts the zygote and asks it for every worker, waiting for the answers:
 * this is pool creation, not the loop, so a short block is fine. */
static int start_workers(ppx_pool *p)
{
    ppx__worker_init init = {p->opt.initializer, p->opt.initializer_arg};
    int rc = ppx__zygote_start(&p->z, p->sh, p->efd, init, p->opt.keep_descendants);
    if (rc)
        return PPX_ESPAWN;
    rc = add_fd(p, p->z.sock, PPX__EV_ZYGOTE);
    for (int i = 0; i < p->nworkers && rc == 0; i++)
        rc = ppx__spawn(p, i);
    int64_t deadline = ppx__now_ns() + 10 * 1000000000LL;
    for (int i = 0; i < p->nworkers && rc == 0;) {
        if (p->w[i].alive) {
            i++;
            continue;
        }
        if (!p->w[i].spawning || ppx__now_ns() > deadline)
            return PPX_ESPAWN;
        struct pollfd pf = {p->z.sock, POLLIN, 0};
        poll(&pf, 1, 100);
        ppx__notify n = {0};
        ppx__zygote_events(p, &n); /* no calls yet: nothing to notify */
        if (p->stats.init_failures) {
            /* A fast worker already failed its initializer. */
            ppx__set_last_error("a worker failed its initializer: %s", p->init_error);
            return PPX_EINIT;
        }
    }
    p->started_all = true;
    if (rc)
        return PPX_ESPAWN;
    return p->opt.initializer ? wait_initialized(p, deadline) : 0;
}

/* Rank 0 of an MPI pool: the pool's descriptors and futures, with the
 * nodes for workers (remote.h). */
static int remote_new(ppx_pool *p)
{
    p->nworkers = 0;
    p->opt.trace_path = NULL; /* traces are of local workers only */
    int rc = open_fds(p);
    if (rc)
        return rc;
    ppx__registry_freeze();
    return ppx__remote_start(p);
}

int ppx_pool_new(ppx_pool **out, const ppx_pool_options *opts)
{
    if (!out)
        return PPX_EINVAL;
    ppx__set_last_error("%s", ""); /* no stale details on a later failure */
    ppx_pool *p = calloc(1, sizeof *p);
    if (!p)
        return PPX_ENOMEM;
    p->efd = p->kickfd = p->tfd = p->epfd = -1;
    int be = PPX__BE_LOCAL;
    int rc = ppx__options_resolve(&p->opt, opts);
    if (rc == 0)
        rc = ppx__backend_choose(&p->opt, &be);
    if (rc || be == PPX__BE_NODE) {
        ppx_pool_options o = p->opt;
        free(p);
        /* This rank lends itself to rank 0's pool and exits when rank 0
         * does: ppx__node_serve returns only if it could not start. */
        return rc ? rc : ppx__node_serve(&o);
    }
    p->nworkers = p->opt.workers;
    graveyard_install();
    p->self = getpid();
    p->gen = ppx__fork_generation();
    p->created_ns = ppx__now_ns();
    pthread_mutex_init(&p->mu, NULL);
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&p->cv, &ca);
    pthread_condattr_destroy(&ca);
    p->magic = POOL_MAGIC;
    atomic_init(&p->refs, 1);
    atomic_init(&p->next_id, 1);
    if (be == PPX__BE_ROOT) {
        rc = remote_new(p);
        if (rc) {
            ppx__remote_stop(p);
            destroy(p);
            return rc;
        }
        *out = p;
        return 0;
    }

    p->w = calloc((size_t)p->nworkers, sizeof *p->w);
    rc = p->w ? ppx__layout_map(p) : PPX_ENOMEM;
    if (rc == 0)
        rc = open_fds(p);
    if (rc == 0) /* before the workers start: their tracks get named */
        rc = ppx__trace_open(&p->trace, p->opt.trace_path, (long)p->self, p->nworkers,
                             p->created_ns);
    p->opt.trace_path = NULL; /* borrowed for this call only */
    if (rc) {
        destroy(p);
        return rc;
    }
    ppx__registry_freeze();
    rc = start_workers(p);
    if (rc) {
        stop_workers(p);
        destroy(p);
        return rc;
    }
    ppx__want_wakeups(p, 1);
    if (p->trace) /* the header and track names are on disk, whatever happens */
        ppx__trace_flush(p->trace);
    *out = p;
    return 0;
}

/* ---- shutdown ---------------------------------------------------------- */

static void cancel_all(ppx_pool *p, bool kill_later, ppx__notify *n)
{
    if (p->remote) {
        ppx__remote_cancel_all(p, n);
        return;
    }
    while (p->queue.head)
        ppx__cancel_task(p, p->queue.head, kill_later, false, n);
    for (int i = 0; i < p->nworkers; i++)
        for (ppx__task *t = p->w[i].tasks.head; t; t = t->next)
            if (t->fut)
                ppx__cancel_task(p, t, kill_later, false, n);
}

static bool nothing_unresolved(ppx_pool *p, void *arg)
{
    (void)arg;
    return p->unresolved == 0;
}

int ppx_pool_shutdown(ppx_pool *p, int how, int timeout_ms)
{
    int rc = ppx__pool_check(p);
    if (rc)
        return rc;
    if (how != PPX_SHUTDOWN_WAIT && how != PPX_SHUTDOWN_CANCEL)
        return PPX_EINVAL;
    ppx__notify n = {0};
    atomic_fetch_add(&p->refs, 1); /* a callback below may free the pool */
    ppx__pool_lock(p);
    p->closed = true;
    if (how == PPX_SHUTDOWN_CANCEL)
        cancel_all(p, true, &n);
    ppx__pool_after_resolve(p, &n, p->driving && !pthread_equal(p->driver, pthread_self()));
    ppx__pool_unlock(p);
    ppx__notify_run(&n);
    rc = ppx__pool_drive_until(p, nothing_unresolved, NULL, ppx__deadline_of(timeout_ms));
    ppx__pool_unref(p);
    return rc;
}

/* Reads the zygote's reports until deadline or until no worker is left
 * running; returns how many still run. */
static int await_exits(ppx_pool *p, int64_t deadline)
{
    for (;;) {
        ppx__zmsg m;
        int rc = 0;
        while (p->z.pid > 0 && (rc = ppx__zygote_read(&p->z, &m)) == 1) {
            for (int i = 0; i < p->nworkers; i++) {
                ppx__worker *w = &p->w[i];
                if (m.type == PPX__Z_SPAWNED && m.index == (uint32_t)i && w->spawning) {
                    w->spawning = false;
                    w->alive = true; /* it starts, sees the shutdown flag, exits */
                    w->pid = m.pid;
                } else if (m.type == PPX__Z_SPAWN_FAILED && m.index == (uint32_t)i) {
                    w->spawning = false;
                } else if (m.type == PPX__Z_EXITED && w->alive && w->pid == m.pid) {
                    w->alive = false;
                }
            }
        }
        int running = 0;
        for (int i = 0; i < p->nworkers; i++)
            running += p->w[i].alive || p->w[i].spawning;
        int ms = ppx__remaining_ms(deadline);
        if (!running || rc < 0 || p->z.pid <= 0 || ms == 0)
            return running;
        struct pollfd pf = {p->z.sock, POLLIN, 0};
        poll(&pf, 1, ms);
    }
}

/* Asks every worker to exit and gives running calls the grace period, then
 * kills what is left. The zygote reaps them all and reports each exit;
 * then it is told to stop and is reaped itself. */
static void stop_workers(ppx_pool *p)
{
    if (p->remote) {
        ppx__pool_unlock(p); /* the progress thread needs the lock to leave */
        ppx__remote_stop(p);
        ppx__pool_lock(p);
        return;
    }
    atomic_store(&p->sh->shutdown, 1);
    for (int i = 0; i < p->nworkers; i++)
        if (p->w[i].alive)
            ppx__ring_kick(&p->w[i].req);
    int grace = p->opt.cancel_grace_ms < 0 ? 100 : p->opt.cancel_grace_ms;
    if (await_exits(p, ppx__now_ns() + (int64_t)grace * 1000000LL)) {
        for (int i = 0; i < p->nworkers; i++)
            if (p->w[i].alive)
                ppx__signal_worker(&p->w[i], SIGKILL);
        await_exits(p, ppx__now_ns() + 5000 * 1000000LL);
    }
    for (int i = 0; i < p->nworkers; i++) {
        ppx__worker *w = &p->w[i];
        ppx__fork_close(w->pidfd);
        w->alive = w->spawning = false;
        w->pidfd = -1;
        w->pid = 0;
    }
    ppx__zygote_stop(&p->z);
}

static void free_tasks(ppx__list *l, ppx_pool *p)
{
    while (l->head) {
        ppx__task *t = l->head;
        ppx__list_remove(l, t);
        ppx__task_free(p, t);
    }
}

static void free_all_tasks(ppx_pool *p)
{
    if (p->remote)
        ppx__remote_free_tasks(p);
    for (int i = 0; p->w && i < p->nworkers; i++) {
        free_tasks(&p->w[i].tasks, p);
        ppx__rx_reset(&p->w[i].rx);
    }
    free_tasks(&p->queue, p);
}

/* A freed pool's shell is kept (the last GRAVEYARD of them), marked dead,
 * so a call on a freed pool returns PPX_EBADOBJ instead of reading freed
 * memory. Only the struct is kept; everything it owned is released. */
#define GRAVEYARD 64
static pthread_mutex_t graveyard_mu = PTHREAD_MUTEX_INITIALIZER;
static ppx_pool *graveyard[GRAVEYARD];
static size_t graveyard_next;
static pthread_once_t graveyard_once = PTHREAD_ONCE_INIT;

/* A fork's copy of a pool is buried too: the lock must not be copied
 * held by a thread that the child does not have. */
static void graveyard_lock(void) { pthread_mutex_lock(&graveyard_mu); }
static void graveyard_unlock(void) { pthread_mutex_unlock(&graveyard_mu); }
static void graveyard_atfork(void)
{
    pthread_atfork(graveyard_lock, graveyard_unlock, graveyard_unlock);
}

static void graveyard_install(void)
{
    pthread_once(&graveyard_once, graveyard_atfork);
}

static void bury(ppx_pool *p)
{
    p->magic = POOL_DEAD;
    pthread_mutex_lock(&graveyard_mu);
    ppx_pool *oldest = graveyard[graveyard_next];
    graveyard[graveyard_next] = p;
    graveyard_next = (graveyard_next + 1) % GRAVEYARD;
    pthread_mutex_unlock(&graveyard_mu);
    free(oldest);
}

void ppx__pool_destroy(ppx_pool *p, bool copy)
{
    if (copy) {
        ppx__trace_discard(p->trace);
    } else {
        ppx__trace_close(p->trace); /* only when ppx_pool_new failed */
        free_all_tasks(p);
        ppx__remote_destroy(p);
    }
    /* In a copy, epfd is the stand-in (fork.h), and the tracked zygote
     * and worker descriptors went at the fork. */
    ppx__fork_close(p->epfd);
    if (p->efd >= 0)
        close(p->efd);
    if (p->kickfd >= 0)
        close(p->kickfd);
    if (p->tfd >= 0)
        close(p->tfd);
    ppx__layout_unmap(p);
    ppx__bigbuf_trim(); /* the kept result buffer goes with a pool */
    free(p->slot_task);
    free(p->slot_seq);
    for (int i = 0; p->w && i < p->nworkers; i++)
        free(p->w[i].free_slots);
    free(p->w);
    free(p->hooks);
    ppx__heap_free(&p->deadlines);
    /* A copy's condition variable may count waiters that were threads of
     * the creator: destroying it would wait for them forever. */
    if (!copy)
        pthread_cond_destroy(&p->cv);
    pthread_mutex_destroy(&p->mu);
    bury(p);
}

static void destroy(ppx_pool *p)
{
    ppx__pool_destroy(p, false);
}

void ppx__pool_unref(ppx_pool *p)
{
    if (atomic_fetch_sub(&p->refs, 1) == 1)
        destroy(p);
}

void ppx_pool_free(ppx_pool *p)
{
    if (!live(p))
        return;
    if (!ppx__pool_owned(p)) {
        ppx__pool_free_copy(p);
        return;
    }
    ppx__notify n = {0};
    ppx__pool_lock(p);
    if (p->freeing) { /* again, from a callback of this very free */
        ppx__pool_unlock(p);
        return;
    }
    p->freeing = true;
    p->closed = true;
    cancel_all(p, false, &n);
    /* Threads blocked in a wait leave now: their futures are resolved. */
    pthread_cond_broadcast(&p->cv);
    if (p->driving)
        ppx__pool_kick(p);
    ppx__pool_unlock(p);
    ppx__notify_run(&n);
    /* Watchers stop polling before the descriptors go away: one on another
     * thread holds the pool until it has (pool.h). No lock while a hook
     * runs. From the last down: an entry is removed only once it has run,
     * so those still to run never move (adds are refused now). */
    ppx__pool_lock(p);
    for (size_t i = p->nhooks; i-- > 0;) {
        ppx__hook h = p->hooks[i];
        ppx__pool_unlock(p);
        if (h.fn(p, h.arg)) /* the owner's reference keeps p here */
            ppx__pool_remove_close_hook(p, h.fn, h.arg);
        ppx__pool_lock(p);
    }
    stop_workers(p);
    ppx__observe_pool_end(p); /* the trace file is complete from here */
    free_all_tasks(p);
    p->torn_down = true;
    pthread_cond_broadcast(&p->cv);
    ppx__pool_unlock(p);
    ppx__pool_unref(p);
}

/* ---- small accessors --------------------------------------------------- */

int ppx__pool_spin_us(const ppx_pool *p)
{
    return live(p) ? p->opt.parent_spin_us : 0;
}

int ppx_pool_fd(const ppx_pool *p)
{
    int rc = ppx__pool_check(p);
    return rc ? rc : p->epfd;
}

bool ppx_pool_busy(const ppx_pool *p)
{
    if (ppx__pool_check(p))
        return false;
    ppx_pool *mp = (ppx_pool *)p;
    ppx__pool_lock(mp);
    bool busy = p->ntasks > 0 || p->unresolved > 0;
    for (int i = 0; i < p->nworkers && !busy && !p->torn_down; i++)
        busy = p->w[i].spawning || (!p->w[i].alive && p->w[i].respawn_at);
    ppx__pool_unlock(mp);
    return busy;
}

int ppx_pool_workers(const ppx_pool *p)
{
    int rc = ppx__pool_check(p);
    if (rc)
        return rc;
    return p->remote ? p->remote->workers : p->nworkers;
}

long ppx_pool_worker_pid(const ppx_pool *p, int i)
{
    if (ppx__pool_check(p) || i < 0 || i >= p->nworkers)
        return 0;
    ppx_pool *mp = (ppx_pool *)p;
    ppx__pool_lock(mp);
    long pid = p->w[i].alive ? (long)p->w[i].pid : 0;
    ppx__pool_unlock(mp);
    return pid;
}

void ppx_pool_stats_get(ppx_pool *p, ppx_pool_stats *out)
{
    if (!out)
        return;
    memset(out, 0, sizeof *out);
    if (ppx__pool_check(p))
        return;
    ppx__pool_lock(p);
    *out = p->stats;
    out->crash_streak = p->crash_streak;
    out->queued = p->remote ? ppx__remote_queued(p) : p->queue.n;
    out->running = p->unresolved - out->queued;
    pthread_mutex_lock(&p->arena.mu);
    out->arena_used = p->arena.used;
    pthread_mutex_unlock(&p->arena.mu);
    ppx__pool_unlock(p);
}

int ppx__pool_add_close_hook(ppx_pool *p, ppx__pool_close_hook fn, void *arg)
{
    ppx__pool_lock(p); /* guards the array: bindings on other loop threads */
    ppx__hook *h = p->freeing ? NULL : realloc(p->hooks, (p->nhooks + 1) * sizeof *h);
    if (h) {
        p->hooks = h;
        p->hooks[p->nhooks++] = (ppx__hook){fn, arg};
        atomic_fetch_add(&p->refs, 1); /* the hook's hold (pool.h) */
    }
    int rc = h ? 0 : p->freeing ? PPX_ECLOSED : PPX_ENOMEM;
    ppx__pool_unlock(p);
    return rc;
}

void ppx__pool_remove_close_hook(ppx_pool *p, ppx__pool_close_hook fn, void *arg)
{
    size_t i = 0;
    ppx__pool_lock(p);
    while (i < p->nhooks && (p->hooks[i].fn != fn || p->hooks[i].arg != arg))
        i++;
    bool found = i < p->nhooks;
    if (found)
        memmove(&p->hooks[i], &p->hooks[i + 1], (--p->nhooks - i) * sizeof *p->hooks);
    ppx__pool_unlock(p);
    if (found) /* the last hold destroys the pool, its lock included */
        ppx__pool_unref(p);
}
