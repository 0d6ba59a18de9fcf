/*
 * Starting and stopping a local pool's workers: the fork server, the
 * first workers (and, with an initializer, its verdict), and at the end
 * the grace period, SIGKILL, and the fork server's last reports. Pool
 * creation and ppx_pool_free run these; a short block is fine there.
 */
#include "local.h"
#include "shm/wake.h"

#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <string.h>
#include <sys/timerfd.h>
#include <unistd.h>

int ppx__local_open_timer(ppx__local *p)
{
    p->tfd = timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK | TFD_CLOEXEC);
    if (p->tfd < 0)
        return -errno;
    return ppx__pool_watch(p->pool, p->tfd, PPX__EV_TIMER);
}

/* What a worker's start-up message (its block's init_error) is about: the
 * pool's own options fail with messages of theirs (worker/limits.c,
 * sandbox.c), after the initializer ran. */
static const char *what_failed(const char *msg)
{
    static const char *const ours[] = {"sandbox:", "limits:", "scheduling:"};
    for (size_t i = 0; i < sizeof ours / sizeof *ours; i++)
        if (strncmp(msg, ours[i], strlen(ours[i])) == 0)
            return "could not apply the pool's options";
    return "failed its initializer";
}

/* With an initializer, creation reports its failure: wait until every
 * worker says it is ready, or one exits having failed it. */
static int wait_initialized(ppx__local *p, int64_t deadline)
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
                                *msg ? what_failed(msg) : "exited while starting",
                                PPX__INIT_ERROR_MAX - 1, msg);
            return *msg ? PPX_EINIT : PPX_ESPAWN;
        }
        if (rc < 0 || ppx__now_ns() > deadline)
            return PPX_ESPAWN;
        struct pollfd pf[2] = {{p->z.sock, POLLIN, 0}, {p->pool->efd, POLLIN, 0}};
        poll(pf, 2, 50);
        ppx__eventfd_drain(p->pool->efd);
    }
}

/* Waits until every worker has been forked and named by the fork
 * server, and with an initializer until each says it is ready. */
static int wait_started(ppx__local *p)
{
    int64_t deadline = ppx__now_ns() + 10 * 1000000000LL;
    for (int i = 0; i < p->nworkers;) {
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
        if (p->pool->stats.init_failures) {
            /* A fast worker already failed its initializer. */
            ppx__set_last_error("a worker %s: %s", what_failed(p->init_error), p->init_error);
            return PPX_EINIT;
        }
    }
    return p->pool->opt.initializer || p->sandbox ? wait_initialized(p, deadline) : 0;
}

/* Starts the zygote and asks it for every worker. Without an initializer
 * that is all: nothing a worker does while starting can fail creation,
 * so the workers report while the pool is driven (ppx__zygote_events)
 * and calls wait in their rings meanwhile (ppx__pump). The parent's
 * time is then one fork and a message per worker, whatever the zygote
 * and the workers take. With an initializer, creation reports its
 * failure; with a trace, the workers' tracks (named by pid) are on disk
 * when creation returns: both wait. */
int ppx__local_start_workers(ppx__local *p)
{
    const ppx_pool_options *o = &p->pool->opt;
    ppx__worker_init init = {o->initializer, o->initializer_arg, p->sandbox};
    int rc = ppx__zygote_start(&p->z, p->sh, p->pool->efd, init, o->keep_descendants);
    if (rc)
        return PPX_ESPAWN;
    rc = ppx__pool_watch(p->pool, p->z.sock, PPX__EV_ZYGOTE);
    for (int i = 0; i < p->nworkers && rc == 0; i++)
        rc = ppx__spawn(p, i);
    if (rc)
        return PPX_ESPAWN;
    return o->initializer || p->sandbox || p->pool->trace ? wait_started(p) : 0;
}

/* Reads the zygote's reports until deadline or until no worker is left
 * running; returns how many still run. */
static int await_exits(ppx__local *p, int64_t deadline)
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
                    if (w->pending_sig) /* the SIGKILL below, asked for early */
                        kill(m.pid, w->pending_sig);
                    w->pending_sig = 0;
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
void ppx__local_stop_workers(ppx__local *p)
{
    if (!p->sh)
        return; /* the mapping failed: nothing was started */
    atomic_store(&p->sh->shutdown, 1);
    /* Starting ones too: a pool that was never driven has not read the
     * fork server's reports, and its workers may already sleep on their
     * rings (they would wait out the grace period, then be killed). */
    for (int i = 0; i < p->nworkers; i++)
        if (p->w[i].alive || p->w[i].spawning)
            ppx__ring_kick(&p->w[i].req);
    int grace = p->pool->opt.cancel_grace_ms < 0 ? 100 : p->pool->opt.cancel_grace_ms;
    if (await_exits(p, ppx__now_ns() + (int64_t)grace * 1000000LL)) {
        for (int i = 0; i < p->nworkers; i++)
            if (p->w[i].alive || p->w[i].spawning)
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
