/*
 * The pool's lifecycle and its entry points: create, cancel, process,
 * blocking waits and shutdown (submit.c holds submission). See
 * pool_impl.h for ownership and dispatch.c for how calls move.
 *
 * Threads: any thread may submit, cancel or wait. At most one thread at a
 * time sleeps in epoll_wait on the pool's behalf (the "driver"); others
 * wait on the condition variable, which is broadcast whenever futures
 * resolve. A thread that resolves futures while a driver sleeps kicks it
 * through kickfd, so no waiter misses its future.
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

/* ---- progress ---------------------------------------------------------- */

/* After resolving futures: wake blocked waiters, then run callbacks. */
static void kick(ppx_pool *p)
{
    p->kicked = true;
    ppx__eventfd_signal(p->kickfd);
}

static void after_resolve(ppx_pool *p, ppx__notify *n, bool kick_driver)
{
    if (!n->count)
        return;
    pthread_cond_broadcast(&p->cv);
    if (kick_driver)
        kick(p);
}

static bool replies_waiting(ppx_pool *p)
{
    if (p->remote)
        return p->remote->inbox != NULL;
    for (int i = 0; i < p->nworkers; i++)
        if (p->w[i].alive && !ppx__ring_empty(&p->w[i].resp))
            return true;
    return false;
}

/* One round of everything the pool has to do; under the lock. */
static void process_locked(ppx_pool *p, ppx__notify *n)
{
    if (p->torn_down)
        return;
    bool other_driver = p->driving && !pthread_equal(p->driver, pthread_self());
    if (p->remote) {
        if (p->kicked && !other_driver) {
            ppx__eventfd_drain(p->kickfd);
            p->kicked = false;
        }
        ppx__eventfd_drain(p->efd);
        ppx__remote_drain(p, n);
        return;
    }
    for (int round = 0; round < 8; round++) {
        if (p->kicked && !other_driver) {
            ppx__eventfd_drain(p->kickfd);
            p->kicked = false;
        }
        bool replies = ppx__eventfd_drain(p->efd);
        /* The timerfd and the zygote's socket only need looking at when
         * the wake-up was not a reply, a deadline is due, or a while has
         * passed: the epoll set stays readable until they are handled. */
        int64_t now = ppx__now_ns();
        int nev = 0;
        struct epoll_event ev[32];
        if (!replies || (p->timer_at > 0 && now >= p->timer_at) ||
            now - p->polled_at > 1000000) {
            nev = epoll_wait(p->epfd, ev, 32, 0);
            p->polled_at = now;
        }
        bool timers = false;
        for (int i = 0; i < p->nworkers; i++)
            if (p->w[i].alive)
                ppx__drain_replies(p, &p->w[i], n);
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
    ppx__eventfd_signal(p->efd);
}

int ppx_pool_process(ppx_pool *p)
{
    int rc = ppx__pool_check(p);
    if (rc)
        return rc;
    ppx__notify n = {0};
    ppx__pool_lock(p);
    process_locked(p, &n);
    bool kick = p->driving && !pthread_equal(p->driver, pthread_self());
    after_resolve(p, &n, kick);
    ppx__pool_unlock(p);
    int count = n.count;
    ppx__notify_run(&n);
    return count;
}

static int64_t deadline_of(int timeout_ms)
{
    return timeout_ms < 0 ? -1 : ppx__now_ns() + (int64_t)timeout_ms * 1000000LL;
}

static int remaining_ms(int64_t deadline)
{
    if (deadline < 0)
        return -1;
    int64_t left = deadline - ppx__now_ns();
    if (left <= 0)
        return 0;
    return (int)((left + 999999) / 1000000);
}

/* Blocks until done(p, arg) holds (checked under the lock) or the
 * deadline passes. 0 or PPX_ETIMEDOUT. */
static void pool_unref(ppx_pool *p);

static int drive_until(ppx_pool *p, bool (*done)(ppx_pool *, void *), void *arg,
                       int64_t deadline)
{
    /* A reference only while the pool lives: a wait that races the
     * pool's last unref must not bring it back (the shell stays readable
     * in the graveyard a while after the free). */
    int refs = atomic_load(&p->refs);
    do {
        if (refs <= 0)
            return PPX_EBADOBJ;
    } while (!atomic_compare_exchange_weak(&p->refs, &refs, refs + 1));
    ppx__pool_lock(p);
    int rc = 0;
    bool looked = false;
    while (!done(p, arg) && !p->torn_down) {
        int ms = remaining_ms(deadline);
        /* A zero timeout still gets one look at the rings, so a caller
         * polling with 0 sees its future resolve. */
        if (ms == 0 && (looked || p->driving)) {
            rc = PPX_ETIMEDOUT;
            break;
        }
        looked = true;
        if (p->driving) {
            if (deadline < 0) {
                pthread_cond_wait(&p->cv, &p->mu);
            } else {
                struct timespec ts = {deadline / 1000000000LL, deadline % 1000000000LL};
                pthread_cond_timedwait(&p->cv, &p->mu, &ts);
            }
            continue;
        }
        p->driving = true;
        p->driver = pthread_self();
        ppx__pool_unlock(p);
        struct epoll_event ev;
        epoll_wait(p->epfd, &ev, 1, ms);
        ppx__notify n = {0};
        ppx__pool_lock(p);
        process_locked(p, &n);
        p->driving = false;
        ppx__eventfd_drain(p->kickfd);
        p->kicked = false;
        pthread_cond_broadcast(&p->cv);
        ppx__pool_unlock(p);
        ppx__notify_run(&n);
        ppx__pool_lock(p);
    }
    ppx__pool_unlock(p);
    pool_unref(p);
    return rc;
}

static bool future_done(ppx_pool *p, void *f)
{
    (void)p;
    return ppx_future_done(f);
}

int ppx__pool_wait(ppx_pool *p, ppx_future *f, int timeout_ms)
{
    if (!ppx__pool_owned(p))
        return PPX_EFORKED;
    return drive_until(p, future_done, f, deadline_of(timeout_ms));
}

int ppx__pool_cancel(ppx_pool *p, ppx_future *f)
{
    if (!ppx__pool_owned(p))
        return PPX_EFORKED;
    ppx__notify n = {0};
    ppx__pool_lock(p);
    if (ppx_future_done(f) || !f->task) {
        ppx__pool_unlock(p);
        return PPX_EDONE;
    }
    if (p->remote)
        ppx__remote_cancel(p, f->task, &n);
    else
        ppx__cancel_task(p, f->task, true, false, &n);
    after_resolve(p, &n, p->driving && !pthread_equal(p->driver, pthread_self()));
    ppx__pool_unlock(p);
    ppx__notify_run(&n);
    return 0;
}

ppx_state ppx__pool_task_state(ppx_pool *p, ppx_future *f)
{
    ppx_state st = PPX_PENDING;
    if (!ppx__pool_owned(p)) /* its lock may be held by a thread not copied */
        return st;
    ppx__pool_lock(p);
    int now = atomic_load(&f->state);
    if (now != PPX_PENDING) {
        st = (ppx_state)now;
    } else if (f->task && p->remote) {
        st = ppx__remote_state(p, f->task);
    } else if (f->task && f->task->slot != PPX__NO_SLOT) {
        uint64_t w = atomic_load(&ppx__task_slot(p, f->task)->state);
        uint32_t s = ppx__slot_st(w);
        if ((s == PPX__SLOT_RUNNING || s == PPX__SLOT_FINISHED) && ppx__slot_seq(w) == f->task->seq)
            st = PPX_RUNNING;
    }
    ppx__pool_unlock(p);
    return st;
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
    after_resolve(p, &n, p->driving && !pthread_equal(p->driver, pthread_self()));
    ppx__pool_unlock(p);
    ppx__notify_run(&n);
    rc = drive_until(p, nothing_unresolved, NULL, deadline_of(timeout_ms));
    pool_unref(p);
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
        int ms = remaining_ms(deadline);
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

static void pool_unref(ppx_pool *p)
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
        kick(p);
    ppx__pool_unlock(p);
    ppx__notify_run(&n);
    /* Watchers stop polling before the descriptors go away. */
    for (size_t i = 0; i < p->nhooks; i++)
        p->hooks[i].fn(p, p->hooks[i].arg);
    ppx__pool_lock(p);
    stop_workers(p);
    ppx__observe_pool_end(p); /* the trace file is complete from here */
    free_all_tasks(p);
    p->torn_down = true;
    pthread_cond_broadcast(&p->cv);
    ppx__pool_unlock(p);
    pool_unref(p);
}

/* ---- small accessors --------------------------------------------------- */

int ppx__pool_spin_us(const ppx_pool *p)
{
    return live(p) ? p->opt.parent_spin_us : 0;
}

int ppx__pool_spin(ppx_pool *p, int us)
{
    if (ppx__pool_check(p))
        return 0;
    if (p->remote)
        return ppx_pool_process(p); /* replies come through the progress thread */
    int64_t deadline = ppx__now_ns() + (int64_t)us * 1000;
    /* While we poll, workers need not pay for an eventfd write. */
    ppx__want_wakeups(p, 0);
    for (;;) {
        ppx__pool_lock(p);
        bool ready = !p->torn_down && replies_waiting(p);
        ppx__pool_unlock(p);
        if (ready || ppx__now_ns() > deadline)
            break;
        /* The worker we just woke is often placed on this very CPU: a
         * pure spin would keep it from running until the spin ends. */
        sched_yield();
    }
    return ppx_pool_process(p); /* also raises parent_waiting again */
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
    ppx__hook *h = realloc(p->hooks, (p->nhooks + 1) * sizeof *h);
    if (!h)
        return PPX_ENOMEM;
    p->hooks = h;
    p->hooks[p->nhooks++] = (ppx__hook){fn, arg};
    return 0;
}

void ppx__pool_remove_close_hook(ppx_pool *p, ppx__pool_close_hook fn, void *arg)
{
    for (size_t i = 0; i < p->nhooks; i++) {
        if (p->hooks[i].fn == fn && p->hooks[i].arg == arg) {
            memmove(&p->hooks[i], &p->hooks[i + 1], (p->nhooks - i - 1) * sizeof *p->hooks);
            p->nhooks--;
            return;
        }
    }
}
