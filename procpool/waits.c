/*
 * Waiting on many futures without a loop: ppx_futures_wait and the
 * ppx_futures_as_completed iterator (concurrent.futures.wait and
 * as_completed).
 *
 * The futures may belong to several pools and nobody else may be
 * processing them, so a blocking wait drives every pool itself. One
 * thread cannot sleep in several pools' epoll_wait, but each pool's epoll
 * descriptor (ppx_pool_fd) is pollable: the waiter takes the driver's
 * role (pool.c) in each pool no other thread drives, sleeps in one
 * poll(2) over those descriptors and an eventfd of its own, then
 * processes each pool it drives, as drive_once does for one pool.
 *
 * A done callback on each future signals the eventfd, so a future that
 * another thread resolves (its pool's driver, a cancel, a free) wakes the
 * waiter too, and records the order of completion for as_completed. A
 * pool that another thread drives is not polled: its driver drains its
 * kicks, and a poll on it would spin until it had. That driver may leave
 * with the waiter's futures unresolved, and its leaving makes nothing
 * readable, so while some pool has another driver the poll is cut into
 * slices of SLICE_MS, after each of which the waiter tries again to drive
 * it. Otherwise nothing runs until something is ready: no busy waiting.
 *
 * A wait that ends before its futures do takes its own callbacks back
 * (ppx_future_remove_done_callback, while the future is still pending),
 * so repeated timed waits on a long call leave nothing behind. The waiter's memory is counted: one
 * reference per callback still on a future, dropped as it runs.
 */
#include "core.h"
#include "shm/wake.h"

#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* How long a waiter sleeps before it looks again at a pool that another
 * thread drives (see above). */
#define SLICE_MS 20

struct ppx__waitset;

typedef struct entry {
    struct ppx__waitset *ws;
    ppx_future *f; /* a reference of the waitset's */
    bool armed;    /* its callback is on f and has not run (ws->mu) */
} entry;

/* One pool of a round of driving, and the future pinning it. */
typedef struct pool_slot {
    ppx_pool *p;
    ppx_future *pin;
    bool mine; /* this thread is its driver for the round */
} pool_slot;

typedef struct ppx__waitset {
    _Atomic int refs;   /* the owner's, plus one per armed callback */
    pthread_mutex_t mu; /* order, norder and the entries' armed flags */
    int efd;            /* signalled by each callback */
    size_t n;           /* distinct futures */
    entry *e;
    size_t *order, norder; /* entries, in the order they resolved */
    size_t handed;         /* as_completed: entries of order handed out */
    pool_slot *ps;         /* a round's pools, at most n */
    struct pollfd *pfd;    /* a round's descriptors, at most n + 1 */
} ppx__waitset;

struct ppx_futures_iter {
    ppx__waitset *ws;
};

/* ---- the waitset's memory ---------------------------------------------- */

static void ws_unref(ppx__waitset *ws)
{
    if (atomic_fetch_sub(&ws->refs, 1) != 1)
        return;
    if (ws->efd >= 0)
        close(ws->efd);
    pthread_mutex_destroy(&ws->mu);
    free(ws->e);
    free(ws->order);
    free(ws->ps);
    free(ws->pfd);
    free(ws);
}

/* A future's done callback: runs once, on whatever thread resolved it,
 * with no lock held. */
static void on_done(ppx_future *f, void *arg)
{
    (void)f;
    entry *e = arg;
    ppx__waitset *ws = e->ws;
    pthread_mutex_lock(&ws->mu);
    if (e->armed) {
        e->armed = false;
        ws->order[ws->norder++] = (size_t)(e - ws->e);
    }
    pthread_mutex_unlock(&ws->mu);
    ppx__eventfd_signal(ws->efd);
    ws_unref(ws);
}

/* Takes on_done(arg) back off f while f is pending: then it never runs.
 * false once f resolved (it runs, or ran), or in a fork's copy of its
 * pool, whose lock belongs to the creator (its free runs it). */
static bool take_back(ppx_future *f, void *arg)
{
    return ppx_future_remove_done_callback(f, on_done, arg) > 0;
}

static void ws_free(ppx__waitset *ws)
{
    for (size_t i = 0; i < ws->n; i++) {
        entry *e = &ws->e[i];
        pthread_mutex_lock(&ws->mu);
        bool armed = e->armed;
        pthread_mutex_unlock(&ws->mu);
        if (armed && take_back(e->f, e)) {
            e->armed = false; /* the callback is gone: nothing races us */
            ws_unref(ws);
        }
        ppx_future_unref(e->f);
    }
    ws_unref(ws);
}

/* ---- making a waitset -------------------------------------------------- */

typedef struct ranked {
    uintptr_t f;
    size_t i;
} ranked;

static int by_future(const void *a, const void *b)
{
    const ranked *x = a, *y = b;
    if (x->f != y->f)
        return x->f < y->f ? -1 : 1;
    return x->i < y->i ? -1 : x->i > y->i;
}

/* Marks in first[i] whether fs[i] is the first of its future in fs:
 * duplicates are dropped as Python's sets drop them, in O(n log n). The
 * number of distinct futures, or PPX_ENOMEM. */
static long mark_first(ppx_future *const *fs, size_t n, bool *first)
{
    ranked *r = malloc(n * sizeof *r);
    if (!r)
        return PPX_ENOMEM;
    for (size_t i = 0; i < n; i++)
        r[i] = (ranked){(uintptr_t)fs[i], i};
    qsort(r, n, sizeof *r, by_future);
    long m = 0;
    for (size_t k = 0; k < n; k++) {
        first[r[k].i] = k == 0 || r[k].f != r[k - 1].f;
        m += first[r[k].i];
    }
    free(r);
    return m;
}

static ppx__waitset *ws_alloc(size_t m)
{
    ppx__waitset *ws = calloc(1, sizeof *ws);
    if (!ws)
        return NULL;
    atomic_init(&ws->refs, 1);
    pthread_mutex_init(&ws->mu, NULL);
    ws->efd = ppx__eventfd_new();
    size_t k = m ? m : 1;
    ws->e = calloc(k, sizeof *ws->e);
    ws->order = calloc(k, sizeof *ws->order);
    ws->ps = calloc(k, sizeof *ws->ps);
    ws->pfd = calloc(k + 1, sizeof *ws->pfd);
    if (ws->efd < 0 || !ws->e || !ws->order || !ws->ps || !ws->pfd) {
        ws_unref(ws);
        return NULL;
    }
    return ws;
}

/* Arms a callback on each distinct future of fs, in order: those already
 * resolved go first in the completion order, in the order given. */
static int ws_new(ppx_future *const *fs, size_t n, ppx__waitset **out)
{
    if (!fs && n > 0)
        return PPX_EINVAL;
    for (size_t i = 0; i < n; i++)
        if (ppx_future_id(fs[i]) == 0) /* 0 only for a NULL or wrong-kind handle */
            return PPX_EBADOBJ;
    bool *first = malloc(n ? n : 1);
    long m = first ? mark_first(fs, n, first) : PPX_ENOMEM;
    ppx__waitset *ws = m >= 0 ? ws_alloc((size_t)m) : NULL;
    if (!ws) {
        free(first);
        return PPX_ENOMEM;
    }
    int rc = 0;
    for (size_t i = 0; i < n && rc == 0; i++) {
        if (!first[i])
            continue;
        entry *e = &ws->e[ws->n++];
        *e = (entry){ws, fs[i], true};
        ppx_future_ref(fs[i]);
        atomic_fetch_add(&ws->refs, 1); /* the callback's, before it can run */
        rc = ppx_future_add_done_callback(fs[i], on_done, e);
        if (rc) { /* never called: its reference is ours to drop */
            e->armed = false;
            ws_unref(ws);
        }
    }
    free(first);
    if (rc) {
        ws_free(ws);
        return rc;
    }
    *out = ws;
    return 0;
}

/* ---- driving every pool ------------------------------------------------ */

/* The pools of ws's unresolved futures, each pinned by one of them, with
 * the driver's role taken in each that no other thread drives. Sets
 * *others when one has another driver. The number, or PPX_EFORKED. */
static long gather_pools(ppx__waitset *ws, bool *others)
{
    size_t np = 0;
    for (size_t i = 0; i < ws->n; i++) {
        ppx_future *f = ws->e[i].f;
        ppx_pool *p = ppx_future_done(f) ? NULL : ppx__future_pin(f);
        if (!p)
            continue;
        size_t k = 0;
        while (k < np && ws->ps[k].p != p)
            k++;
        int rc = k < np ? 1 : ppx__pool_check(p);
        if (rc) {
            ppx__future_unpin(f);
            if (rc < 0) {
                for (k = 0; k < np; k++)
                    ppx__future_unpin(ws->ps[k].pin);
                return rc;
            }
            continue;
        }
        ws->ps[np++] = (pool_slot){p, f, false};
    }
    for (size_t k = 0; k < np; k++) {
        ppx_pool *p = ws->ps[k].p;
        ppx__pool_lock(p);
        if (!p->torn_down && !p->driving) {
            p->driving = true;
            p->driver = pthread_self();
            ws->ps[k].mine = true;
        } else if (!p->torn_down) {
            *others = true;
        }
        ppx__pool_unlock(p);
    }
    return (long)np;
}

/* One sleep of at most ms (-1: no limit) over the pools this thread can
 * drive and ws's eventfd, then one round of processing in each. */
static int drive_round(ppx__waitset *ws, int ms)
{
    bool others = false;
    long np = gather_pools(ws, &others);
    if (np < 0)
        return (int)np;
    nfds_t k = 0;
    ws->pfd[k++] = (struct pollfd){.fd = ws->efd, .events = POLLIN};
    for (long i = 0; i < np; i++)
        if (ws->ps[i].mine)
            ws->pfd[k++] = (struct pollfd){.fd = ws->ps[i].p->epfd, .events = POLLIN};
    if (others && (ms < 0 || ms > SLICE_MS))
        ms = SLICE_MS;
    poll(ws->pfd, k, ms); /* EINTR: one more round, as a wake-up */
    ppx__eventfd_drain(ws->efd);
    for (long i = 0; i < np; i++)
        if (ws->ps[i].mine)
            ppx__pool_after_sleep(ws->ps[i].p);
    /* The pins go last: a callback run above may have freed a pool that
     * only they still hold. */
    for (long i = 0; i < np; i++)
        ppx__future_unpin(ws->ps[i].pin);
    return 0;
}

/* Drives until ready(ws, arg) or timeout_ms passes (PPX_ETIMEDOUT). A
 * zero timeout still gets one round, so a poll sees what has arrived. */
static int ws_block(ppx__waitset *ws, bool (*ready)(ppx__waitset *, const void *),
                    const void *arg, int timeout_ms)
{
    int64_t deadline = ppx__deadline_of(timeout_ms);
    bool looked = false;
    while (!ready(ws, arg)) {
        int ms = ppx__remaining_ms(deadline);
        if (ms == 0 && looked)
            return PPX_ETIMEDOUT;
        looked = true;
        int rc = drive_round(ws, ms);
        if (rc)
            return rc;
    }
    return 0;
}

/* ---- ppx_futures_wait -------------------------------------------------- */

typedef struct wait_args {
    ppx_future *const *fs;
    size_t n;
    int how;
} wait_args;

static bool wait_holds(const wait_args *a)
{
    size_t done = 0;
    for (size_t i = 0; i < a->n; i++) {
        ppx_state st = ppx_future_done(a->fs[i]) ? ppx_future_state(a->fs[i]) : PPX_PENDING;
        if (st == PPX_PENDING)
            continue;
        if (a->how == PPX_FIRST_COMPLETED || (a->how == PPX_FIRST_EXCEPTION && st == PPX_FAILED))
            return true;
        done++;
    }
    return done == a->n;
}

static bool wait_ready(ppx__waitset *ws, const void *arg)
{
    (void)ws;
    return wait_holds(arg);
}

int ppx_futures_wait(ppx_future *const *fs, size_t n, int how, int timeout_ms, bool *done)
{
    if ((!fs && n > 0) ||
        (how != PPX_FIRST_COMPLETED && how != PPX_FIRST_EXCEPTION && how != PPX_ALL_COMPLETED))
        return PPX_EINVAL;
    for (size_t i = 0; i < n; i++)
        if (ppx_future_id(fs[i]) == 0)
            return PPX_EBADOBJ;
    wait_args a = {fs, n, how};
    if (n > 0 && !wait_holds(&a)) { /* else nothing to arm */
        ppx__waitset *ws;
        int rc = ws_new(fs, n, &ws);
        if (rc)
            return rc;
        rc = ws_block(ws, wait_ready, &a, timeout_ms);
        ws_free(ws);
        /* A timeout is no error, as in Python: what finished by then. */
        if (rc && rc != PPX_ETIMEDOUT)
            return rc;
    }
    int count = 0;
    for (size_t i = 0; i < n; i++) {
        bool d = ppx_future_done(fs[i]);
        if (done)
            done[i] = d;
        count += d;
    }
    return count;
}

/* ---- as_completed ------------------------------------------------------ */

int ppx_futures_as_completed_new(ppx_future *const *fs, size_t n, ppx_futures_iter **out)
{
    if (!out)
        return PPX_EINVAL;
    ppx_futures_iter *it = malloc(sizeof *it);
    if (!it)
        return PPX_ENOMEM;
    int rc = ws_new(fs, n, &it->ws);
    if (rc) {
        free(it);
        return rc;
    }
    *out = it;
    return 0;
}

static bool next_ready(ppx__waitset *ws, const void *arg)
{
    (void)arg;
    pthread_mutex_lock(&ws->mu);
    bool ready = ws->norder > ws->handed;
    pthread_mutex_unlock(&ws->mu);
    return ready;
}

int ppx_futures_as_completed_next(ppx_futures_iter *it, int timeout_ms, ppx_future **out)
{
    if (!it || !out)
        return PPX_EINVAL;
    ppx__waitset *ws = it->ws;
    if (ws->handed == ws->n)
        return PPX_EDONE;
    int rc = ws_block(ws, next_ready, NULL, timeout_ms);
    if (rc)
        return rc;
    pthread_mutex_lock(&ws->mu);
    *out = ws->e[ws->order[ws->handed++]].f;
    pthread_mutex_unlock(&ws->mu);
    return 0;
}

void ppx_futures_as_completed_free(ppx_futures_iter *it)
{
    if (!it)
        return;
    ws_free(it->ws);
    free(it);
}
