/*
 * Workers that start and end, as the parent sees them: why one exited
 * (trusting its status only with its exit note), what becomes of the calls
 * it held, its replacement, and the fork server's reports. Every function
 * here runs under the pool's lock but ppx__zygote_replace, which forks a
 * lost fork server's replacement without it.
 */
#include "local.h"
#include "procpool/worker/sandbox.h"
#include "procpool/worker/worker.h"

#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/pidfd.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

int ppx__exit_reason(ppx__local *p, ppx__worker *w, int code, int status)
{
    ppx__wshared *ws = w->ws;
    uint64_t note = atomic_exchange_explicit(&ws->exit_note, 0, memory_order_relaxed);
    if (code != CLD_EXITED || status < 0 || note != ppx__exit_note((uint32_t)status))
        return -1;
    if (status == PPX__EXIT_INIT) {
        size_t len = strnlen(ws->init_error, sizeof ws->init_error - 1);
        memcpy(p->init_error, ws->init_error, len);
        p->init_error[len] = '\0';
        memset(ws->init_error, 0, sizeof ws->init_error);
    }
    return status;
}

/* An end the pool's sandbox or limits caused (sandbox.h): its error type
 * and what the worker did, naming the system call or the limit; NULL
 * when it is none of those. A worker that blocked or took over SIGSYS or
 * SIGXCPU dies of the signal itself, and is judged by it. */
static const char *limit_exit(const ppx__local *p, const ppx__worker *w, int code, int status,
                              int why, char *buf, size_t n)
{
    const ppx__sandbox *sb = p->sandbox;
    bool signal = code == CLD_KILLED || code == CLD_DUMPED;
    if (!sb)
        return NULL;
    if (why == PPX__EXIT_SANDBOX || (sb->profile && signal && status == SIGSYS)) {
        uint32_t nr = atomic_load_explicit(&w->ws->violation, memory_order_relaxed);
        char name[64];
        if (why != PPX__EXIT_SANDBOX || nr > 4095)
            snprintf(buf, n, "was killed by SIGSYS (a system call the pool's sandbox forbids)");
        else
            snprintf(buf, n, "made a system call the pool's sandbox forbids, %s,",
                     ppx__sandbox_syscall_name((int)nr, name, sizeof name));
        return "SandboxViolation";
    }
    if (why == PPX__EXIT_CPU || (sb->cpu_limit_s && signal && status == SIGXCPU)) {
        snprintf(buf, n, "reached the pool's CPU-time limit (cpu_limit_s %u s, RLIMIT_CPU)",
                 sb->cpu_limit_s);
        return "CpuLimitExceeded";
    }
    if (why == PPX__EXIT_NOMEM && sb->memory_limit) {
        snprintf(buf, n, "ran out of memory under the pool's memory_limit_bytes (%zu, RLIMIT_AS)",
                 sb->memory_limit);
        return "MemoryError";
    }
    return NULL;
}

static void describe_exit(int code, int status, int why, char *buf, size_t n)
{
    if (why == PPX__EXIT_NOMEM)
        snprintf(buf, n, "ran out of memory");
    else if (code == CLD_EXITED)
        snprintf(buf, n, "exited with status %d", status);
    else if (code == CLD_KILLED || code == CLD_DUMPED)
        snprintf(buf, n, "was killed by signal %d (SIG%s)", status,
                 sigabbrev_np(status) ? sigabbrev_np(status) : "?");
    else
        snprintf(buf, n, "was lost with the pool's fork server");
}

/* The worker's initializer failed (its message is in p->init_error). If
 * no worker has managed to start, no queued call ever will: fail them
 * with it. */
static void initializer_failed(ppx__local *p, ppx__worker *w, ppx__notify *n)
{
    w->init_failed = true;
    p->pool->stats.init_failures++;
    for (int i = 0; i < p->nworkers; i++)
        if (!p->w[i].init_failed)
            return;
    while (p->queue.head) {
        ppx__task *t = ppx__list_first(&p->queue);
        p->pool->unresolved--;
        p->pool->stats.failed++;
        ppx__observe_mark(p, "failed", t, -1, -1, "InitializerError");
        ppx__future_failf(ppx__task_fut(t), "InitializerError", 0, n,
                          "no worker could start: the initializer failed: %s", p->init_error);
        ppx__task_drop_fut(t);
        ppx__list_remove(&p->queue, &t->link);
        ppx__local_task_free(p, t);
    }
}

/* Whether the oldest unanswered call of w, t, may have started. A worker
 * runs its calls one at a time in ring order and answers each before it
 * claims the next, so no other call of w can have; t has unless its
 * frame is incomplete or its slot still reads exactly as placed, which
 * no accidental write produces. */
static bool may_have_started(ppx__local *p, ppx__worker *w, ppx__task *t)
{
    return t != w->partial &&
           atomic_load(&ppx__task_slot(p, t)->state) != ppx__slot_word(ppx__lt(t)->seq, 0, PPX__SLOT_QUEUED);
}

/* Fails t, which w was running when it ended, with an error of type. */
static void fail_lost(ppx__local *p, ppx__worker *w, ppx__task *t, const char *type,
                      const char *how, const char *backoff, ppx__notify *n)
{
    ppx__observe_lost(p, w, t, ppx__task_fut(t) ? "crashed" : NULL, ppx__task_fut(t) ? type : NULL);
    if (!ppx__task_fut(t))
        return;
    w->crashed++;
    p->pool->stats.crashed++;
    p->pool->unresolved--;
    p->pool->stats.failed++;
    ppx__future_failf(ppx__task_fut(t), type, (long)w->pid, n, "worker %ld %s while running %s (task %llu)%s",
                      (long)w->pid, how, ppx__task_fn(t), (unsigned long long)ppx__task_id(t), backoff);
}

/* Requeues w's calls that cannot have started, in their order, and fails
 * the one that may have (none when the worker said it left between
 * calls; the oldest, started or not, when it is to blame). */
static void settle_tasks(ppx__local *p, ppx__worker *w, bool between_calls, bool blame_oldest,
                         const char *type, const char *how, const char *backoff, ppx__notify *n)
{
    bool oldest = !between_calls;
    ppx__list requeue = {0};
    while (w->tasks.head) {
        ppx__task *t = ppx__list_first(&w->tasks);
        bool started = oldest && (blame_oldest || may_have_started(p, w, t));
        oldest = false;
        if (started || !ppx__task_fut(t)) {
            if (started)
                fail_lost(p, w, t, type, how, backoff, n);
            ppx__task_finish(p, t);
        } else {
            if (p->pool->trace)
                ppx__observe_mark(p, "requeue", t, (int)(w - p->w), -1, NULL);
            ppx__list_remove(&w->tasks, &t->link);
            ppx__release_slot(p, t);
            ppx__lt(t)->worker = -1;
            ppx__list_push_back(&requeue, &t->link);
        }
    }
    while (requeue.tail) {
        ppx__task *t = ppx__list_last(&requeue);
        ppx__list_remove(&requeue, &t->link);
        ppx__list_push_front(&p->queue, &t->link);
    }
}

/* w's rings back to empty, for the process that fills the slot next. */
static void reset_rings(ppx__worker *w)
{
    w->partial = NULL;
    ppx__rx_reset(&w->rx);
    ppx__port_reset(&w->req);
    ppx__port_reset(&w->resp);
}

/* w was asked for and never named: its fork failed, or the fork server
 * was lost first, maybe after the fork (may_have_run; the worker dies
 * with it). The calls placed in its ring go back to the queue, but the
 * one it may have started, which fails as on a crash. */
static void unplace(ppx__local *p, ppx__worker *w, bool may_have_run, ppx__notify *n)
{
    w->spawning = false;
    w->pending_sig = 0;
    settle_tasks(p, w, !may_have_run, false, "WorkerCrashed", "was lost with the pool's fork server",
                 "", n);
    reset_rings(w);
}

void ppx__reap(ppx__local *p, ppx__worker *w, int code, int status, ppx__notify *n)
{
    int wi = (int)(w - p->w);
    /* Replies it wrote before dying count: collect them first. */
    w->alive = false;
    ppx__drain_replies(p, w, n);
    ppx__observe_exit(p, w);

    int why = ppx__exit_reason(p, w, code, status);
    char how[160];
    const char *type = limit_exit(p, w, code, status, why, how, sizeof how);
    if (!type) {
        describe_exit(code, status, why, how, sizeof how);
        bool protocol = w->protocol_error || why == PPX__EXIT_PROTOCOL;
        type = protocol ? "ProtocolError" : "WorkerCrashed";
    }
    bool recycled = why == PPX__EXIT_RECYCLE || why == PPX__EXIT_WAKE_LOST;
    bool expected = recycled || w->killed_by_us || atomic_load(&p->sh->shutdown);
    /* Count this death before naming the delay in the error it causes. */
    if (!expected)
        p->crash_streak++;
    int64_t delay = expected ? 0 : ppx__backoff_ns(p);
    char backoff[128] = "";
    if (delay)
        snprintf(backoff, sizeof backoff,
                 "; %u workers crashed in a row, the pool waits %lld ms before the next",
                 p->crash_streak, (long long)(delay / 1000000));
    bool between_calls = why == PPX__EXIT_PROTOCOL || why == PPX__EXIT_RECYCLE ||
                         why == PPX__EXIT_WAKE_LOST || why == PPX__EXIT_SHUTDOWN;
    /* Out of memory under memory_limit_bytes, the worker was taking in
     * or answering its oldest call (it runs them in order): another
     * worker, under the same limit, would die of it too, and the call
     * would go round for good. */
    bool blame_oldest = why == PPX__EXIT_NOMEM && p->sandbox && p->sandbox->memory_limit;
    settle_tasks(p, w, between_calls, blame_oldest, type, how, backoff, n);
    if (!expected)
        p->pool->stats.worker_deaths++;
    if (recycled)
        p->pool->stats.recycled++;
    if (why == PPX__EXIT_INIT)
        initializer_failed(p, w, n);

    ppx__fork_close(w->pidfd);
    w->pidfd = -1;
    w->pid = 0;
    reset_rings(w);
    /* A closed pool still owes its queued calls a worker (shutdown WAIT);
     * only the final stop ends respawning. */
    if (atomic_load(&p->sh->shutdown))
        return;
    if (delay || ppx__spawn(p, wi) != 0) {
        w->respawn_at = ppx__now_ns() + (delay ? delay : RESPAWN_RETRY_NS);
        ppx__arm_timer(p);
    }
}

int ppx__spawn(ppx__local *p, int i)
{
    if (p->z.sock < 0) {
        /* No fork server (zygote_lost). If the last fork of one failed,
         * this asks for another try once the lock is released. */
        if (p->zygote_owed)
            p->pool->deferred = true;
        return -EPIPE;
    }
    ppx__worker *w = &p->w[i];
    ppx__restamp_layout(p);
    /* Its predecessor's reply and last words are gone. */
    atomic_store(&p->live[p->nslots + (size_t)i], 0);
    atomic_store(&w->ws->exit_note, 0);
    atomic_store(&w->ws->violation, 0);
    int rc = ppx__zygote_request(&p->z, (uint32_t)i);
    if (rc == 0) {
        w->spawning = true;
        w->respawn_at = 0;
        w->pending_sig = 0;
    }
    return rc;
}

static void spawned(ppx__local *p, ppx__worker *w, pid_t pid)
{
    w->spawning = false;
    w->pid = pid;
    /* The zygote reaps; the pidfd lets us signal without racing pid reuse.
     * If the worker is already gone, its EXITED message follows. */
    ppx__fork_hold(); /* no fork of the application gets it untracked */
    w->pidfd = pidfd_open(pid, 0);
    if (w->pidfd >= 0 && ppx__fork_track(w->pidfd, PPX__FORK_CLOSE)) {
        close(w->pidfd); /* signalled with kill() instead */
        w->pidfd = -1;
    }
    ppx__fork_release();
    w->alive = true;
    /* A kill asked for while it was starting (a call past its grace,
     * timers.c) is sent below, and is ours: its death is no crash. */
    w->killed_by_us = w->killed_by_us && w->pending_sig == SIGKILL;
    w->protocol_error = false;
    if (w->started) {
        p->pool->stats.respawns++;
        w->restarts++;
    }
    w->started = true;
    if (w->pending_sig) { /* asked for before it was named (ppx__signal_worker) */
        int sig = w->pending_sig;
        w->pending_sig = 0;
        ppx__signal_worker(w, sig);
    }
    if (p->pool->trace)
        ppx__trace_worker(p->pool->trace, (int)(w - p->w), (long)pid, ppx__now_ns());
}

/* Closes the parent's ends of the fork server, which kills it if it
 * still runs (the lifeline); z.pid stays, for whoever reaps it. */
static void detach_zygote(ppx__local *p)
{
    epoll_ctl(p->pool->epfd, EPOLL_CTL_DEL, p->z.sock, NULL);
    ppx__fork_close(p->z.sock);
    ppx__fork_close(p->z.lifeline);
    p->z.sock = p->z.lifeline = -1;
}

/* The zygote died (killed from outside?): its workers died with it.
 * Another is forked from the parent, the one fork this design cannot
 * avoid, but not here: a fork, or a wait for the old one, under the lock
 * would stall every thread that needs the pool. It is owed instead, to
 * ppx__zygote_replace once the lock is released. */
static void zygote_lost(ppx__local *p, ppx__notify *n)
{
    detach_zygote(p);
    for (int i = 0; i < p->nworkers; i++) {
        ppx__worker *w = &p->w[i];
        if (w->spawning)
            unplace(p, w, true, n);
        if (w->alive)
            ppx__reap(p, w, 0, 0, n); /* its respawn request fails: no zygote */
    }
    if (atomic_load(&p->sh->shutdown))
        return; /* the final stop reaps the old one */
    p->zygote_owed = true;
    p->pool->deferred = true;
    /* Should that fork fail, a respawn coming due asks again (ppx__spawn). */
    int64_t retry = ppx__now_ns() + RESPAWN_RETRY_NS;
    for (int i = 0; i < p->nworkers; i++)
        if (!p->w[i].alive && !p->w[i].respawn_at)
            p->w[i].respawn_at = retry;
    ppx__arm_timer(p);
}

/* A new fork server (z) takes the lost one's place; then every missing
 * worker is asked for. */
static void install_zygote(ppx__local *p, const ppx__zygote *z)
{
    p->z = *z;
    if (ppx__pool_watch(p->pool, p->z.sock, PPX__EV_ZYGOTE) != 0) {
        /* Unwatched, its reports would go unread: lost as well. */
        detach_zygote(p);
        p->zygote_owed = true;
        return;
    }
    for (int i = 0; i < p->nworkers; i++)
        if (!p->w[i].alive && !p->w[i].spawning && ppx__spawn(p, i) != 0)
            p->w[i].respawn_at = ppx__now_ns() + RESPAWN_RETRY_NS;
    ppx__arm_timer(p);
}

/* No lock held on entry or exit. Two threads may both get here (the
 * request is raised again by respawns coming due): the claim under the
 * lock lets one fork. A free that begins meanwhile finds no zygote to
 * stop (z.pid is 0 while forking), so the new one is stopped here. */
void ppx__zygote_replace(ppx__local *p)
{
    ppx_pool *pool = p->pool;
    ppx__pool_lock(pool);
    bool go = p->zygote_owed && !p->zygote_forking && !pool->freeing &&
              !atomic_load(&p->sh->shutdown);
    pid_t lost = 0;
    if (go) {
        p->zygote_owed = false;
        p->zygote_forking = true;
        lost = p->z.pid;
        p->z.pid = 0; /* reaped below: the final stop must not wait for it too */
    }
    ppx__worker_init init = {pool->opt.initializer, pool->opt.initializer_arg, p->sandbox};
    bool keep = pool->opt.keep_descendants;
    ppx__pool_unlock(pool);
    if (!go)
        return;
    /* Its ends are closed (detach_zygote): it is dead or being killed. */
    while (lost > 0 && waitpid(lost, NULL, 0) < 0 && errno == EINTR)
        ;
    ppx__zygote z;
    int rc = ppx__zygote_start(&z, p->sh, pool->efd, init, keep);
    ppx__pool_lock(pool);
    p->zygote_forking = false;
    bool wanted = !pool->freeing && !atomic_load(&p->sh->shutdown);
    if (rc == 0 && wanted)
        install_zygote(p, &z);
    else if (wanted)
        p->zygote_owed = true; /* a respawn coming due asks again */
    ppx__pool_unlock(pool);
    if (rc == 0 && !wanted)
        ppx__zygote_stop(&z);
}

void ppx__zygote_events(ppx__local *p, ppx__notify *n)
{
    ppx__zmsg m;
    int rc;
    while ((rc = ppx__zygote_read(&p->z, &m)) == 1) {
        if (m.type == PPX__Z_SPAWNED && m.index < (uint32_t)p->nworkers) {
            spawned(p, &p->w[m.index], m.pid);
        } else if (m.type == PPX__Z_SPAWN_FAILED && m.index < (uint32_t)p->nworkers) {
            unplace(p, &p->w[m.index], false, n);
            p->w[m.index].respawn_at = ppx__now_ns() + RESPAWN_RETRY_NS;
            ppx__arm_timer(p);
        } else if (m.type == PPX__Z_EXITED) {
            for (int i = 0; i < p->nworkers; i++)
                if (p->w[i].alive && p->w[i].pid == m.pid)
                    ppx__reap(p, &p->w[i], m.code, m.status, n);
        }
    }
    if (rc < 0 && !atomic_load(&p->sh->shutdown))
        zygote_lost(p, n);
}
