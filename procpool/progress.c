/*
 * A call's progress on its future (future.h): the values, seqlocked, and
 * the callbacks that hear of them. Progress callbacks run outside the
 * pool's lock, like done callbacks, on the thread that took the new
 * values in; several threads may do so
 * at once (each driving the pool for a while). pdisp keeps them in line:
 * one thread at a time runs f's progress callbacks (RUN), another that
 * has newer values asks it to look again (AGAIN) rather than run them
 * alongside; and once f's done callbacks begin (DONE) no progress
 * callback starts, and the done callbacks wait for one that is running
 * on another thread (a callback that resolves f itself, on the running
 * thread, is not waited for: the progress loop stops after it). So an
 * awaitable's hook, or a user's, never meets an argument its done
 * callback has let go of.
 */
#include "future.h"

#include <sched.h>
#include <stdlib.h>
#include <stdatomic.h>
#include <stdbool.h>

#define PD_RUN 1u
#define PD_AGAIN 2u
#define PD_DONE 4u

/* The futures whose progress callbacks this thread is running (nested
 * when a callback drives the pool). */
typedef struct pframe {
    const ppx_future *f;
    struct pframe *up;
} pframe;
static _Thread_local pframe *dispatching;

static bool dispatching_here(const ppx_future *f)
{
    for (const pframe *fr = dispatching; fr; fr = fr->up)
        if (fr->f == f)
            return true;
    return false;
}

/* The latest pair, whole (the writer holds the pool's lock for four
 * stores; a fork's copy whose writer was mid-way gives up after a
 * while and takes what it reads). 0, 0 before any came. */
uint32_t ppx__progress_read(const ppx_future *f, uint64_t *done, uint64_t *total)
{
    const ppx__fprog *pr = atomic_load_explicit(&f->prog, memory_order_acquire);
    if (!pr) {
        *done = *total = 0;
        return 0;
    }
    for (int tries = 0;; tries++) {
        uint32_t s1 = atomic_load_explicit(&pr->pseq, memory_order_acquire);
        *done = atomic_load_explicit(&pr->pdone, memory_order_relaxed);
        *total = atomic_load_explicit(&pr->ptotal, memory_order_relaxed);
        atomic_thread_fence(memory_order_acquire);
        uint32_t s2 = atomic_load_explicit(&pr->pseq, memory_order_relaxed);
        if ((!(s1 & 1) && s1 == s2) || tries > 1000)
            return s2;
        sched_yield();
    }
}

ppx__fprog *ppx__progress_block(ppx_future *f)
{
    /* Only this thread (holding the lock) ever stores the pointer. */
    ppx__fprog *pr = atomic_load_explicit(&f->prog, memory_order_relaxed);
    if (pr)
        return pr;
    /* Not calloc (it skips glibc's per-thread cache); not memset either,
     * which the compiler folds back into calloc (future.c). */
    if (!(pr = malloc(sizeof *pr)))
        return NULL;
    *pr = (ppx__fprog){.pdelivered = 0};
    /* Released: a reader that finds the block finds it zeroed. */
    atomic_store_explicit(&f->prog, pr, memory_order_release);
    return pr;
}

void ppx__progress_free(ppx_future *f)
{
    ppx__fprog *pr = atomic_load_explicit(&f->prog, memory_order_acquire);
    if (!pr)
        return;
    /* Kept until here: a progress callback that resolved f on its own
     * thread is still walking the list when the done callbacks end. */
    for (ppx__pcb *c = atomic_load_explicit(&pr->pcbs, memory_order_acquire); c;) {
        ppx__pcb *next = atomic_load_explicit(&c->next, memory_order_relaxed);
        free(c);
        c = next;
    }
    free(pr);
}

void ppx__future_progress(ppx_future *f, uint64_t done, uint64_t total, ppx__notify *n)
{
    if (atomic_load_explicit(&f->state, memory_order_relaxed) != PPX_PENDING)
        return;
    ppx__fprog *pr = ppx__progress_block(f);
    if (!pr)
        return; /* no memory: this report is lost, a later one may pass */
    uint32_t s = atomic_load_explicit(&pr->pseq, memory_order_relaxed);
    atomic_store_explicit(&pr->pseq, s + 1, memory_order_relaxed);
    atomic_thread_fence(memory_order_release);
    atomic_store_explicit(&pr->pdone, done, memory_order_relaxed);
    atomic_store_explicit(&pr->ptotal, total, memory_order_relaxed);
    atomic_store_explicit(&pr->pseq, s + 2, memory_order_release);
    if (!atomic_load_explicit(&pr->pcbs, memory_order_relaxed) ||
        atomic_exchange_explicit(&pr->pqueued, true, memory_order_acq_rel))
        return; /* nobody to tell, or queued already: the latest wins */
    /* A plain increment, not ppx_future_ref: this file stays beneath
     * future.c (f is live: it is pending). */
    atomic_fetch_add_explicit(&f->refs, 1, memory_order_relaxed);
    pr->pnext = NULL;
    if (n->ptail)
        atomic_load_explicit(&n->ptail->prog, memory_order_relaxed)->pnext = f;
    else
        n->phead = f;
    n->ptail = f;
}

void ppx__progress_run(ppx_future *f)
{
    /* Queued on a notify: it has a block, with callbacks. */
    ppx__fprog *pr = atomic_load_explicit(&f->prog, memory_order_acquire);
    unsigned v = atomic_load_explicit(&pr->pdisp, memory_order_acquire);
    for (;;) {
        if (v & PD_DONE)
            return;
        unsigned want = v & PD_RUN ? v | PD_AGAIN : v | PD_RUN;
        if (atomic_compare_exchange_weak_explicit(&pr->pdisp, &v, want, memory_order_acq_rel,
                                                  memory_order_acquire)) {
            if (v & PD_RUN)
                return; /* the thread running them looks again */
            break;
        }
    }
    pframe fr = {f, dispatching};
    dispatching = &fr;
    for (;;) {
        uint64_t done, total;
        uint32_t seq = ppx__progress_read(f, &done, &total);
        if (seq != pr->pdelivered) {
            pr->pdelivered = seq;
            for (ppx__pcb *c = atomic_load_explicit(&pr->pcbs, memory_order_acquire); c;
                 c = atomic_load_explicit(&c->next, memory_order_acquire)) {
                if (atomic_load_explicit(&pr->pdisp, memory_order_acquire) & PD_DONE)
                    break;
                c->cb(f, done, total, c->arg);
            }
        }
        v = atomic_load_explicit(&pr->pdisp, memory_order_acquire);
        unsigned want;
        do {
            want = (v & PD_AGAIN) && !(v & PD_DONE) ? v & ~PD_AGAIN : v & ~(PD_RUN | PD_AGAIN);
        } while (!atomic_compare_exchange_weak_explicit(&pr->pdisp, &v, want, memory_order_acq_rel,
                                                        memory_order_acquire));
        if (want & PD_RUN)
            continue; /* newer values came meanwhile */
        break;
    }
    dispatching = fr.up;
}

/* Before f's done callbacks: no progress callback of f starts from here
 * on, and one running on another thread is waited for. */
void ppx__progress_end(ppx_future *f)
{
    ppx__fprog *pr = atomic_load_explicit(&f->prog, memory_order_acquire);
    if (!pr || !atomic_load_explicit(&pr->pcbs, memory_order_acquire))
        return; /* none was ever added: nothing can be running */
    unsigned v = atomic_fetch_or_explicit(&pr->pdisp, PD_DONE, memory_order_acq_rel);
    if ((v & PD_RUN) && !dispatching_here(f))
        while (atomic_load_explicit(&pr->pdisp, memory_order_acquire) & PD_RUN)
            sched_yield();
}

