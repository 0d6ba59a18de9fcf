/*
 * A pool's lifecycle: opening one with a backend, shutting it down,
 * freeing it (and a fork's copy of it), its close hooks, and its small
 * public accessors. The backend is chosen in backend.c; what each
 * backend does is behind backend.h.
 */
#include "core.h"
#include "registry.h"
#include "sized.h"
#include "shm/wake.h"

#include <errno.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <unistd.h>

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
    rc = ppx__pool_watch(p, p->efd, PPX__EV_EFD);
    if (rc == 0)
        rc = ppx__pool_watch(p, p->kickfd, PPX__EV_KICK);
    return rc;
}

int ppx__pool_open(ppx_pool **out, const ppx_pool_options *opt, const ppx__backend_ops *ops)
{
    ppx_pool *p = calloc(1, sizeof *p);
    if (!p)
        return PPX_ENOMEM;
    p->opt = *opt;
    p->efd = p->kickfd = p->epfd = -1;
    p->self = getpid();
    p->gen = ppx__fork_generation();
    p->created_ns = ppx__now_ns();
    /* NULL is fine: blocks then come from malloc. */
    p->slab = ppx__slab_for_calls() ? ppx__slab_new() : NULL;
    pthread_mutex_init(&p->mu, NULL);
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&p->cv, &ca);
    pthread_condattr_destroy(&ca);
    ppx__pool_mark_live(p);
    atomic_init(&p->refs, 1);
    atomic_init(&p->next_id, 1);
    int rc = open_fds(p);
    if (rc) {
        ppx__pool_destroy(p, false);
        return rc;
    }
    ppx__registry_freeze();
    p->ops = ops;
    rc = ops->start(p);
    if (rc) {
        ppx__pool_lock(p);
        ops->stop(p);
        ppx__pool_unlock(p);
        ppx__pool_destroy(p, false);
        return rc;
    }
    *out = p;
    return 0;
}

/* ---- shutdown ---------------------------------------------------------- */

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
    if (how != PPX_SHUTDOWN_WAIT && how != PPX_SHUTDOWN_CANCEL &&
        how != PPX_SHUTDOWN_CANCEL_QUEUED)
        return PPX_EINVAL;
    ppx__notify n = {0};
    atomic_fetch_add(&p->refs, 1); /* a callback below may free the pool */
    ppx__pool_lock(p);
    p->closed = true;
    if (how == PPX_SHUTDOWN_CANCEL)
        p->ops->cancel_all(p, true, &n);
    else if (how == PPX_SHUTDOWN_CANCEL_QUEUED && !p->torn_down)
        p->ops->cancel_queued(p, &n);
    ppx__pool_after_resolve(p, &n, ppx__pool_other_driver(p));
    ppx__pool_unlock(p);
    ppx__notify_run(&n);
    rc = ppx__pool_drive_until(p, nothing_unresolved, NULL, ppx__deadline_of(timeout_ms));
    ppx__pool_unref(p);
    return rc;
}

/* Python's terminate_workers / kill_workers: shutdown(wait=False,
 * cancel_futures=True), then a signal to every worker. Nothing waits
 * here: the running calls fail as the deaths are processed, by whichever
 * thread drives the pool next. */
static int signal_workers(ppx_pool *p, int sig)
{
    int rc = ppx__pool_check(p);
    if (rc)
        return rc;
    ppx__notify n = {0};
    ppx__pool_lock(p);
    if (!p->torn_down)
        rc = p->ops->signal_workers(p, sig, &n);
    if (rc == 0)
        p->closed = true;
    ppx__pool_after_resolve(p, &n, ppx__pool_other_driver(p));
    ppx__pool_unlock(p);
    ppx__notify_run(&n); /* p is not touched after: a callback may free it */
    return rc;
}

int ppx_pool_terminate_workers(ppx_pool *p)
{
    return signal_workers(p, SIGTERM);
}

int ppx_pool_kill_workers(ppx_pool *p)
{
    return signal_workers(p, SIGKILL);
}

/* Watchers stop polling before the descriptors go away: one on another
 * thread holds the pool until it has (pool.h). No lock while a hook runs.
 * From the last down: an entry is removed only once it has run, so those
 * still to run never move (adds are refused by now). In a fork's copy
 * (copy) every hook stops at once and the copy goes whatever they say. */
static void run_close_hooks(ppx_pool *p, bool copy)
{
    ppx__pool_lock(p);
    for (size_t i = p->nhooks; i-- > 0;) {
        ppx__hook h = p->hooks[i];
        ppx__pool_unlock(p);
        if (h.fn(p, h.arg) && !copy) /* the owner's reference keeps p here */
            ppx__pool_remove_close_hook(p, h.fn, h.arg);
        ppx__pool_lock(p);
    }
    ppx__pool_unlock(p);
}

void ppx_pool_free(ppx_pool *p)
{
    if (!ppx__pool_live(p))
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
    p->ops->cancel_all(p, false, &n);
    /* Threads blocked in a wait leave now: their futures are resolved. */
    pthread_cond_broadcast(&p->cv);
    if (p->driving)
        ppx__pool_kick(p);
    ppx__pool_unlock(p);
    ppx__notify_run(&n);
    run_close_hooks(p, false);
    ppx__pool_lock(p);
    p->ops->stop(p);
    p->ops->free_tasks(p);
    p->torn_down = true;
    pthread_cond_broadcast(&p->cv);
    ppx__pool_unlock(p);
    /* Every future let go of p in notify above; a thread still inside a
     * call on one of them (pinned) or in shutdown holds p until it
     * leaves, and then frees it. */
    ppx__pool_unref(p);
}

/*
 * ppx_pool_free in a fork of the pool's creator. The copy's memory goes;
 * nothing shared is touched: no shutdown flag, no ring or slot, no signal,
 * no wait on the fork server. The atfork handler has closed its
 * descriptors already. Its unresolved futures resolve CANCELLED here (the
 * creator's go on), their callbacks on this thread, then the close hooks
 * run (a loop binding stops watching the stand-in descriptor).
 *
 * A copy whose lock was held at the fork (by a thread the child does not
 * have) may be half updated, and a backend may refuse (an MPI pool's copy
 * lacks its progress thread): both are left as they are, allocated.
 */
void ppx__pool_free_copy(ppx_pool *p)
{
    if (p->freeing || pthread_mutex_trylock(&p->mu) != 0)
        return;
    ppx__notify n = {0};
    if (!p->ops->drop_copy(p, &n)) {
        pthread_mutex_unlock(&p->mu);
        return;
    }
    p->freeing = true;
    p->closed = true;
    p->torn_down = true;
    pthread_mutex_unlock(&p->mu);
    ppx__notify_run(&n);
    run_close_hooks(p, true);
    ppx__pool_destroy(p, true);
}

/* ---- close hooks ------------------------------------------------------- */

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

/* ---- small accessors --------------------------------------------------- */

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
    bool busy = p->ntasks > 0 || p->unresolved > 0 || (!p->torn_down && p->ops->busy(mp));
    ppx__pool_unlock(mp);
    return busy;
}

int ppx_pool_workers(const ppx_pool *p)
{
    int rc = ppx__pool_check(p);
    return rc ? rc : p->ops->workers(p);
}

long ppx_pool_worker_pid(const ppx_pool *p, int i)
{
    if (ppx__pool_check(p))
        return 0;
    ppx_pool *mp = (ppx_pool *)p;
    ppx__pool_lock(mp);
    long pid = p->ops->worker_pid(mp, i);
    ppx__pool_unlock(mp);
    return pid;
}

int ppx_pool_worker_stats(ppx_pool *p, int i, ppx_worker_stats *out)
{
    int rc = ppx__pool_check(p);
    if (rc)
        return rc;
    if (!out)
        return PPX_EINVAL;
    rc = ppx__sized_check(out, PPX__WORKER_STATS_MIN, "ppx_worker_stats");
    if (rc)
        return rc;
    ppx_worker_stats ws; /* out stays untouched on an error */
    memset(&ws, 0, sizeof ws);
    ppx__pool_lock(p);
    rc = p->ops->worker_stats(p, i, &ws);
    ppx__pool_unlock(p);
    if (rc == 0)
        ppx__sized_out(out, &ws, sizeof ws);
    return rc;
}

int ppx_pool_stats_get(ppx_pool *p, ppx_pool_stats *out)
{
    int rc = ppx__pool_check(p);
    if (rc)
        return rc;
    if (!out)
        return PPX_EINVAL;
    rc = ppx__sized_check(out, PPX__POOL_STATS_MIN, "ppx_pool_stats");
    if (rc)
        return rc;
    ppx__pool_lock(p);
    ppx_pool_stats st = p->stats;
    p->ops->stats(p, &st);
    st.running = p->unresolved - st.queued;
    ppx__pool_unlock(p);
    ppx__sized_out(out, &st, sizeof st);
    return 0;
}
