/*
 * Moving calls between the pool's queue and the workers' rings, and the
 * replies that come back (exits.c: workers that start and end). Every
 * function here runs under the pool's lock.
 *
 * Placement: a new call goes to the live worker with the fewest calls
 * outstanding, at most max_queued_per_worker deep, so the rings hold work
 * ahead of each worker and submission is eager. A call queued behind a
 * long one is not stuck there: when a worker runs dry, it takes the newest
 * unstarted calls of the busiest worker (one CAS per call on the slot; see
 * shared.h).
 */
#include "local.h"
#include "procpool/worker/worker.h"
#include "serialize/envelope.h"
#include "shm/wake.h"

#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#define STEAL_MAX 64

/* ---- placing calls -------------------------------------------------- */

/* Puts what fits of t's frame in w's ring: the whole frame, chunks of
 * it, or for an arena frame the record that points at it. */
static bool put_frame(ppx__local *p, ppx__worker *w, ppx__task *t)
{
    if (!ppx__arena_owns(&p->arena, t->frame))
        return ppx__frame_put(&w->req, t->frame, t->frame_len, &w->partial_off);
    ppx__arena_rec r = {(uint64_t)(t->frame - p->arena.base), t->frame_len, ppx__task_id(t),
                        ppx__lt(t)->slot, ppx__lt(t)->seq};
    void *dst = ppx__ring_reserve(&w->req, sizeof r);
    if (!dst)
        return false;
    memcpy(dst, &r, sizeof r);
    ppx__ring_commit(&w->req, sizeof r, PPX__REC_ARENA);
    w->partial_off = t->frame_len;
    return true;
}

/* Writes as much of w's partial frame as fits. */
static void feed(ppx__local *p, ppx__worker *w)
{
    ppx__task *t = w->partial;
    for (;;) {
        size_t before = w->partial_off;
        bool all = put_frame(p, w, t);
        if (w->partial_off != before)
            w->wrote = true; /* ppx__pump wakes it once for the lot */
        if (all) {
            w->partial = NULL;
            return;
        }
        /* Full: the worker signals the eventfd when it frees space. */
        size_t need = ppx__arena_owns(&p->arena, t->frame)
                          ? sizeof(ppx__arena_rec)
                          : ppx__frame_next_need(&w->req, t->frame_len, w->partial_off);
        if (!ppx__ring_want_space(&w->req, need))
            return;
    }
}

static void place(ppx__local *p, int wi, ppx__task *t)
{
    ppx__worker *w = &p->w[wi];
    /* A slot of wi's own region: another worker cannot reach it. */
    ppx__lt(t)->slot = w->free_slots[--w->nfree];
    p->slot_task[ppx__lt(t)->slot] = t;
    ppx__lt(t)->seq = ++p->slot_seq[ppx__lt(t)->slot];
    if (ppx__lt(t)->seq == 0) /* 0 means "no record" in the live table */
        ppx__lt(t)->seq = ++p->slot_seq[ppx__lt(t)->slot];
    ppx__lt(t)->worker = wi;
    atomic_store_explicit(&p->live[ppx__lt(t)->slot], ppx__lt(t)->seq, memory_order_relaxed);
    ppx__slot *s = ppx__task_slot(p, t);
    atomic_store_explicit(&s->cancel, 0, memory_order_relaxed);
    atomic_store_explicit(&s->started_ns, 0, memory_order_relaxed);
    atomic_store_explicit(&s->ended_ns, 0, memory_order_relaxed);
    atomic_store_explicit(&s->progress_seq, 0, memory_order_relaxed);
    atomic_store_explicit(&s->progress_done, 0, memory_order_relaxed);
    atomic_store_explicit(&s->progress_total, 0, memory_order_relaxed);
    ppx__lt(t)->src_seq = 0;
    atomic_store_explicit(&s->state, ppx__slot_word(ppx__lt(t)->seq, 0, PPX__SLOT_QUEUED),
                          memory_order_release);
    if (!ppx__arena_owns(&p->arena, t->frame))
        ppx__env_restamp(t->frame, ppx__lt(t)->slot, ppx__lt(t)->seq); /* an arena record carries them */
    ppx__list_push_back(&w->tasks, &t->link);
    w->partial = t;
    w->partial_off = 0;
    feed(p, w);
}

static int pick_worker(ppx__local *p)
{
    int best = -1;
    size_t best_n = SIZE_MAX;
    for (int k = 0; k < p->nworkers; k++) {
        int i = (int)((p->rr + (unsigned)k) % (unsigned)p->nworkers);
        ppx__worker *w = &p->w[i];
        /* A worker still starting takes calls too: they wait in its
         * ring, and it finds them the moment it runs. */
        if (!(w->alive || w->spawning) || w->partial || !w->nfree)
            continue;
        if (w->tasks.n < best_n) {
            best = i;
            best_n = w->tasks.n;
            if (best_n == 0)
                break;
        }
    }
    /* Ties go to the worker chosen last: while it has nothing queued it
     * is the one most likely still polling rather than asleep, and its
     * buffers (and the outbox for big replies) are already faulted in. */
    if (best >= 0)
        p->rr = (unsigned)best;
    return best;
}

/* Moves up to half of the victim's unstarted calls to idle worker wi. */
static void steal_for(ppx__local *p, int wi)
{
    int victim = -1;
    size_t most = 1;
    for (int i = 0; i < p->nworkers; i++)
        if (i != wi && p->w[i].alive && p->w[i].tasks.n > most) {
            victim = i;
            most = p->w[i].tasks.n;
        }
    if (victim < 0)
        return;
    ppx__worker *v = &p->w[victim];
    ppx__task *taken[STEAL_MAX];
    size_t n = 0, want = v->tasks.n / 2;
    for (ppx__task *t = ppx__list_last(&v->tasks); t && n < want && n < STEAL_MAX;
         t = ppx__task_prev(t)) {
        if (t == v->partial)
            continue;
        uint64_t expect = ppx__slot_word(ppx__lt(t)->seq, 0, PPX__SLOT_QUEUED);
        /* Freeing the slot makes the copy in the victim's ring stale: its
         * claim expects QUEUED(seq), and the slot's seq only grows. The
         * live entry goes first, so a claim that fails finds it gone. */
        atomic_store(&p->live[ppx__lt(t)->slot], 0);
        if (!atomic_compare_exchange_strong(&ppx__task_slot(p, t)->state, &expect, 0)) {
            atomic_store(&p->live[ppx__lt(t)->slot], ppx__lt(t)->seq);
            break; /* started (or cancelled): older ones have too */
        }
        taken[n++] = t;
    }
    for (size_t k = 0; k < n; k++) {
        ppx__list_remove(&v->tasks, &taken[k]->link);
        ppx__release_slot(p, taken[k]);
        ppx__lt(taken[k])->worker = -1;
    }
    size_t k = n;
    for (; k > 0 && !p->w[wi].partial && p->w[wi].nfree; k--) { /* oldest first */
        place(p, wi, taken[k - 1]);
        p->pool->stats.stolen++;
        if (p->pool->trace)
            ppx__observe_mark(p, "steal", taken[k - 1], victim, wi, NULL);
    }
    /* Calls that did not fit go back to the front of the pool's queue,
     * in their order. */
    for (size_t j = 0; j < k; j++)
        ppx__list_push_front(&p->queue, &taken[j]->link);
}

void ppx__pump(ppx__local *p)
{
    for (int i = 0; i < p->nworkers; i++)
        if ((p->w[i].alive || p->w[i].spawning) && p->w[i].partial)
            feed(p, &p->w[i]);
    while (p->queue.head) {
        int wi = pick_worker(p);
        if (wi < 0)
            break;
        ppx__task *t = ppx__list_first(&p->queue);
        ppx__list_remove(&p->queue, &t->link);
        place(p, wi, t);
    }
    if (!p->queue.head)
        for (int i = 0; i < p->nworkers; i++)
            if (p->w[i].alive && p->w[i].tasks.n == 0)
                steal_for(p, i);
    /* While calls are out, look at the rings every PPX__SWEEP_NS even
     * without a wake-up: a worker that lost its eventfd, or cleared its
     * parent_waiting, delays its replies by that much, never forever. */
    if (!p->sweep_at && p->pool->ntasks) {
        p->sweep_at = ppx__now_ns() + PPX__SWEEP_NS;
        ppx__arm_timer(p);
    }
    /* One wake-up check (a fence) per worker written to, not per call. */
    for (int i = 0; i < p->nworkers; i++)
        if (p->w[i].wrote) {
            p->w[i].wrote = false;
            ppx__ring_notify_data(&p->w[i].req);
        }
}

void ppx__sweep(ppx__local *p)
{
    /* The words the parent owns in a worker's rings, put back from its
     * private counters, and both sides of the worker woken: whatever the
     * worker wrote over them, it sees its calls and room for its replies
     * again (or finds its rings unreadable and leaves). */
    for (int i = 0; i < p->nworkers; i++) {
        ppx__worker *w = &p->w[i];
        if (!w->alive || !w->tasks.n)
            continue;
        atomic_store_explicit(&w->req.r->head, w->req.head, memory_order_release);
        atomic_store_explicit(&w->resp.r->tail, w->resp.tail, memory_order_release);
        ppx__ring_kick(&w->req);
        atomic_fetch_add_explicit(&w->resp.r->space_seq, 1, memory_order_release);
        ppx__futex_wake(&w->resp.r->space_seq, 1);
    }
}

/* ---- progress --------------------------------------------------------- */

void ppx__task_progress(ppx__local *p, ppx__task *t, ppx__notify *n)
{
    ppx_future *f = ppx__task_fut(t);
    if (!f || ppx__lt(t)->worker < 0)
        return;
    /* The worker's seqlock (shared.h), read as untrusted input: an odd
     * or moving seq is skipped until the next look, and whatever the
     * words say, done never exceeds a known total. */
    ppx__slot *s = ppx__task_slot(p, t);
    uint32_t seq = atomic_load_explicit(&s->progress_seq, memory_order_acquire);
    if (seq == ppx__lt(t)->src_seq || (seq & 1))
        return;
    uint64_t done = atomic_load_explicit(&s->progress_done, memory_order_relaxed);
    uint64_t total = atomic_load_explicit(&s->progress_total, memory_order_relaxed);
    atomic_thread_fence(memory_order_acquire);
    if (atomic_load_explicit(&s->progress_seq, memory_order_relaxed) != seq)
        return;
    ppx__lt(t)->src_seq = seq;
    if (total && done > total)
        done = total;
    ppx__future_progress(f, done, total, n);
}

void ppx__scan_progress(ppx__local *p, ppx__notify *n)
{
    /* A worker runs its oldest call (the others wait in its ring): one
     * load per busy worker when nothing changed. */
    for (int i = 0; i < p->nworkers; i++)
        if (p->w[i].alive && p->w[i].tasks.head)
            ppx__task_progress(p, ppx__list_first(&p->w[i].tasks), n);
}

/* ---- replies ---------------------------------------------------------- */

/* A worker that breaks the protocol cannot be trusted with more work:
 * kill it, and its tasks fail as they do on a crash. */
static void protocol_fail(ppx__local *p, ppx__worker *w)
{
    (void)p;
    if (!w->protocol_error && w->alive) {
        w->protocol_error = true;
        ppx__signal_worker(w, SIGKILL);
    }
}

/* The trace's slice of a call its worker answered (not a SKIP: that
 * call never started). */
static void trace_reply(ppx__local *p, ppx__task *t, int rc, const ppx__env *env)
{
    if (!ppx__task_fut(t)) /* resolved already: cancelled or timed out while running */
        ppx__observe_call_end(p, t, NULL, NULL, 0, false);
    else if (rc != 0)
        ppx__observe_call_end(p, t, "failed", "ProtocolError", strlen("ProtocolError"), false);
    else if (env->kind == PPX__ENV_ERROR)
        ppx__observe_call_end(p, t, "failed", env->type.p, env->type.len, false);
    else
        ppx__observe_call_end(p, t, "done", NULL, 0, false);
}

/* One reply frame. When own is set, frame lies in own (a ppx__bigbuf of
 * own_cap bytes), which a result's future adopts; otherwise it is freed. */
static void handle_reply(ppx__local *p, ppx__worker *w, const void *frame, size_t len,
                         void *own, size_t own_cap, ppx__notify *n)
{
    ppx__env env;
    int rc = ppx__env_decode(frame, len, &env);
    if (!env.head_ok || env.slot >= p->nslots) {
        protocol_fail(p, w);
        ppx__bigbuf_free(own, own_cap);
        return;
    }
    ppx__task *t = p->slot_task[env.slot];
    /* A worker answers its calls in the order they were placed, so a reply
     * is for the oldest call it holds or the worker is broken: skipping
     * one would leave that call waiting forever. */
    if (!t || t != ppx__list_first(&w->tasks) || ppx__task_id(t) != env.task_id || ppx__lt(t)->seq != env.seq ||
        (rc == 0 && (env.kind == PPX__ENV_CALL || env.kind == PPX__ENV_MAP))) {
        protocol_fail(p, w);
        ppx__bigbuf_free(own, own_cap);
        return;
    }
    ppx_future *f = ppx__task_fut(t);
    w->init_failed = false;
    if (rc == 0 && (env.kind == PPX__ENV_RESULT || env.kind == PPX__ENV_ERROR))
        p->crash_streak = 0; /* a call came back: whatever crashed, it is not all */
    if (f && rc == 0 && env.kind == PPX__ENV_SKIP) {
        protocol_fail(p, w); /* a SKIP for a call we did not cancel */
        ppx__bigbuf_free(own, own_cap);
        return;
    }
    if (p->pool->trace && !(rc == 0 && env.kind == PPX__ENV_SKIP))
        trace_reply(p, t, rc, &env);
    if (f && rc == 0 && (env.kind == PPX__ENV_RESULT || env.kind == PPX__ENV_ERROR))
        ppx__task_progress(p, t, n); /* the last values, before the result */
    if (f) {
        p->pool->unresolved--;
        if (rc != 0) {
            p->pool->stats.failed++;
            w->failed++;
            ppx__future_failf(f, "ProtocolError", (long)w->pid, n,
                              "worker %ld sent a malformed reply for task %llu",
                              (long)w->pid, (unsigned long long)ppx__task_id(t));
        } else if (env.kind == PPX__ENV_RESULT) {
            p->pool->stats.completed++;
            w->completed++;
            if (own) {
                /* A big reply: hand its buffer over rather than copy it. */
                ppx__future_done_adopt(f, own, own_cap, env.payload.data, env.payload.len, n);
                own = NULL;
            } else {
                ppx__future_done(f, env.payload.data, env.payload.len, n);
            }
        } else if (env.kind == PPX__ENV_ERROR) {
            char type[PPX__NAME_MAX + 1], where[PPX__NAME_MAX + 1];
            char *msg = malloc(env.message.len + 1);
            snprintf(type, sizeof type, "%.*s", (int)env.type.len, env.type.p);
            snprintf(where, sizeof where, "%.*s", (int)env.where.len, env.where.p);
            if (msg) {
                memcpy(msg, env.message.p, env.message.len);
                msg[env.message.len] = '\0';
            }
            p->pool->stats.failed++;
            w->failed++;
            ppx__future_fail(f, type, msg ? msg : "(no memory for the message)", where,
                             (long)env.pid, n);
            free(msg);
        }
    }
    ppx__bigbuf_free(own, own_cap);
    ppx__task_finish(p, t);
}

/* The reply waiting in w's outbox: copied into a buffer its future adopts,
 * then the outbox is handed back for the worker's next big reply. */
static int outbox_reply(ppx__local *p, ppx__worker *w, const void *rec, size_t len,
                        ppx__notify *n)
{
    ppx__outbox_rec r;
    if (!w->outbox || len != sizeof r)
        return PPX_EMALFORMED;
    memcpy(&r, rec, sizeof r);
    if (r.len == 0 || r.len > p->outbox_bytes)
        return PPX_EMALFORMED;
    _Atomic uint32_t *copied = &p->live[p->nslots + (size_t)(w - p->w)];
    size_t cap;
    void *buf = ppx__bigbuf_alloc(r.len, &cap);
    if (buf)
        memcpy(buf, w->outbox, r.len);
    else /* read in place: only copying the value out can fail, MemoryError */
        handle_reply(p, w, w->outbox, r.len, NULL, 0, n);
    atomic_fetch_add_explicit(copied, 1, memory_order_release);
    ppx__futex_wake(copied, 1);
    if (buf)
        handle_reply(p, w, buf, r.len, buf, cap, n);
    p->pool->stats.outbox_replies++;
    return 0;
}

void ppx__drain_replies(ppx__local *p, ppx__worker *w, ppx__notify *n)
{
    /* The worker hears about freed space once per batch (the fence in
     * notify_space was a tenth of the parent's time per call), and every
     * 256 records so a long batch does not hold up a worker that waits. */
    unsigned released = 0;
    for (;; released++) {
        if (released % 256 == 255)
            ppx__ring_notify_space(&w->resp);
        const void *rec, *frame;
        size_t len, flen;
        uint32_t flags;
        int rc = ppx__ring_peek(&w->resp, &rec, &len, &flags);
        if (rc == 0)
            break;
        if (rc < 0) {
            protocol_fail(p, w);
            break;
        }
        void *own = NULL;
        size_t own_cap = 0;
        if (flags == PPX__REC_OUTBOX) {
            rc = outbox_reply(p, w, rec, len, n); /* 0: handled */
        } else {
            rc = ppx__rx_feed(&w->rx, rec, len, flags, &frame, &flen);
            if (rc == 1 && flags != PPX__REC_WHOLE)
                frame = own = ppx__rx_take(&w->rx, &own_cap);
        }
        if (rc < 0) {
            ppx__rx_reset(&w->rx);
            ppx__ring_release(&w->resp, len);
            protocol_fail(p, w);
            break;
        }
        if (rc == 1)
            handle_reply(p, w, frame, flen, own, own_cap, n);
        ppx__ring_release(&w->resp, len);
    }
    if (released)
        ppx__ring_notify_space(&w->resp);
}
