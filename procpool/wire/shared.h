/*
 * The pool's shared-memory layout, mapped before the first fork:
 *
 *   [ppx__shared header][live table]          workers: read-only
 *   worker 0: [ppx__wshared][its slots] [req ring][resp ring] [outbox]
 *   worker 1: ... (region_stride apart, every part page aligned)
 *   [call arena]                              workers: read-only
 *
 * Each worker maps its own region read-write and every other worker's
 * region not at all (PROT_NONE, see ppx__worker_main): a wild write
 * lands in its own region or faults, and becomes an ordinary crash of
 * that worker. What stays writable to a worker is what the parent reads
 * from it; docs/FAILURE_MODEL.md ("The trust boundary") says how each
 * read is validated. Outboxes and the arena carry big frames written once
 * and read in place (see arena.h and the OUTBOX/ARENA records in
 * frame.h); their pages are only touched when used (MAP_NORESERVE).
 *
 * A slot describes one call that is in some worker's request ring; a
 * worker's slots live in its own region (slot s belongs to worker
 * s / slots_per_worker). Its state word packs seq (32 bits) | worker (16)
 * | state (16), so that the worker's claim and the parent's cancel or
 * move are each one CAS:
 *
 *   QUEUED(seq)  --worker w claims-->      RUNNING(seq, w)
 *   QUEUED(seq)  --parent cancels-->       CANCELLED(seq)   worker skips it
 *   QUEUED(seq)  --parent moves it-->      FREE             old record stale
 *
 * (the parent clears the slot's live entry before a move, restoring it if
 * the worker's claim won). See ppx__shared_live for how a worker tells a
 * stale record from a slot word written over.
 *   RUNNING(seq, w) --function returns-->  FINISHED(seq, w) before the reply
 *
 * Whichever CAS wins decides: a cancelled call never starts, a claimed
 * call is known to be running, and a moved call runs once (elsewhere, in
 * a slot of the worker it moved to; the slot's seq grows with every use,
 * so a stale record never matches again). FINISHED keeps the parent's
 * cancel deadline from killing the worker for a call that already ended.
 * Only the parent writes FREE, QUEUED and CANCELLED; only workers write
 * RUNNING and FINISHED. The parent treats every state word as a hint:
 * which call a dead worker may have started follows from the order of
 * its replies (see ppx__reap), never from a word the worker could write.
 */
#ifndef PPX_PROCPOOL_SHARED_H
#define PPX_PROCPOOL_SHARED_H
#include "shm/ring.h"

#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

#define PPX__SHARED_MAGIC 0x70707850u /* "ppxP" */
#define PPX__SHARED_VERSION 6u

enum {
    PPX__SLOT_FREE = 0,
    PPX__SLOT_QUEUED,
    PPX__SLOT_RUNNING,
    PPX__SLOT_CANCELLED,
    PPX__SLOT_FINISHED, /* the function returned; the reply is on its way */
};

typedef struct ppx__slot {
    _Atomic uint64_t state;  /* seq | worker | state, see above */
    _Atomic uint32_t cancel; /* 1: the running call should stop */
    /* The call's progress (ppx_call_progress), a seqlock written by the
     * worker alone: progress_seq odd while progress_done and
     * progress_total are rewritten, even (and grown by 2) once they are
     * whole. The parent zeroes all three when it places the call and
     * reads them only as a hint of what to tell the future: a torn or
     * odd read is skipped, done is clamped to total (see ppx__task_progress
     * in local/dispatch.c). */
    _Atomic uint32_t progress_seq;
    /* Monotonic ns (CLOCK_MONOTONIC, the same clock in every process)
     * just before the worker called the function and just after it
     * returned; the parent zeroes both when it places the call. Written
     * by the worker before FINISHED and before its reply, so the parent
     * reads them once the reply or the worker's death is in. They feed
     * statistics and the trace only and are clamped, never trusted. */
    _Atomic int64_t started_ns;
    _Atomic int64_t ended_ns;
    _Atomic uint64_t progress_done;
    _Atomic uint64_t progress_total; /* 0: unknown */
    uint64_t reserved[2];
} ppx__slot;
_Static_assert(sizeof(ppx__slot) == 64, "slot layout is shared ABI");

static inline uint64_t ppx__slot_word(uint32_t seq, uint32_t worker, uint32_t st)
{
    return ((uint64_t)seq << 32) | ((uint64_t)(worker & 0xffff) << 16) | (st & 0xffff);
}
static inline uint32_t ppx__slot_seq(uint64_t w) { return (uint32_t)(w >> 32); }
static inline uint32_t ppx__slot_worker(uint64_t w) { return (uint32_t)(w >> 16) & 0xffff; }
static inline uint32_t ppx__slot_st(uint64_t w) { return (uint32_t)w & 0xffff; }

/* Why a worker exits on purpose, written into its block just before
 * _exit: an exit status alone is only ever reported as an exit status, so
 * a function calling _exit(123) is a crash, not a failed initializer. */
#define PPX__NOTE_MAGIC 0x7070784eu /* "ppxN" */
static inline uint64_t ppx__exit_note(uint32_t status)
{
    return ((uint64_t)PPX__NOTE_MAGIC << 32) | status;
}

/* Per worker, at the start of its region: what it says back to the
 * parent. Everything here is written by the worker and read by the parent
 * as untrusted input. */
#define PPX__INIT_ERROR_MAX 240
typedef struct ppx__wshared {
    _Atomic uint32_t ready; /* 1 once the initializer has run */
    /* The system call a sandboxed worker was stopped at (UINT32_MAX:
     * unknown), read by the parent only with the exit note of
     * PPX__EXIT_SANDBOX and zeroed before each start (see sandbox.c).
     * Until 0.5 this word was unused; before that it held an "outbox
     * busy" flag, now where workers cannot write
     * (ppx__shared_outbox_copied). */
    _Atomic uint32_t violation;
    /* ppx__exit_note(status) when the worker exits on purpose; zeroed by
     * the parent before each start. */
    _Atomic uint64_t exit_note;
    char init_error[PPX__INIT_ERROR_MAX]; /* when the initializer failed */
    /* Nanoseconds this worker process has spent inside worker functions,
     * stored by the worker alone after each call (a plain store of its
     * private running sum: one writer, no read-modify-write). The parent
     * adds it to the slot's total when the process ends and zeroes it
     * before the next one starts. On a cache line of its own. */
    alignas(64) _Atomic uint64_t busy_ns;
    uint64_t reserved[7];
    /* 1: the parent is (or may soon be) asleep and wants the eventfd on
     * this worker's next result or freed request space. Whoever swaps it
     * to 0 signals; the parent sets it again after draining. One per
     * worker, so a worker that clears it (or never signals) delays only
     * its own replies, until the parent's sweep (see ppx__arm_timer). */
    alignas(64) _Atomic uint32_t parent_waiting;
    uint32_t reserved2[15];
} ppx__wshared;
_Static_assert(sizeof(ppx__wshared) == 384, "worker block layout is shared ABI");
_Static_assert(offsetof(ppx__wshared, busy_ns) == 256, "busy_ns has a cache line of its own");
_Static_assert(offsetof(ppx__wshared, parent_waiting) == 320, "so has parent_waiting");

/* Written by the parent only (before each fork), read-only in workers. */
typedef struct ppx__shared {
    uint32_t magic;
    uint32_t version;
    uint32_t nworkers;
    uint32_t slots_per_worker;
    uint64_t ring_bytes;    /* capacity of each ring */
    uint64_t ring_stride;   /* bytes between a worker's two rings */
    uint64_t region_off;    /* worker 0's region */
    uint64_t region_stride; /* bytes between consecutive workers' regions */
    uint64_t block_bytes;   /* a region's ppx__wshared and slots, page rounded */
    uint64_t outbox_bytes;  /* 0: no outboxes; else at block + 2 rings */
    uint64_t max_payload;
    uint64_t max_tasks_per_child; /* 0: no limit */
    uint64_t max_rss_bytes;       /* 0: no limit */
    uint64_t arena_off, arena_bytes; /* the call arena (see arena.h) */
    uint64_t live_off; /* the live table, see ppx__shared_live */
    /* 1: workers exit once their ring is empty. */
    alignas(64) _Atomic uint32_t shutdown;
} ppx__shared;

/* The live table, one word per slot, written by the parent only (and
 * read-only in workers, like the header): the seq of the record that may
 * run in that slot, 0 for none. It tells a worker whose claim failed
 * whether the record was moved or cancelled (the table no longer names
 * it, or the slot says CANCELLED for it) or the slot word was written
 * over (the table still names it), which no honest run produces. */
static inline const _Atomic uint32_t *ppx__shared_live(ppx__shared *s)
{
    return (const _Atomic uint32_t *)((char *)s + s->live_off);
}

/* After the live table, one word per worker, written by the parent only:
 * how many of the worker's OUTBOX replies it has copied out (futex-woken
 * on each), 0 when the worker starts. A worker sends its next OUTBOX
 * reply only once this equals its own count of sends, so nothing it
 * writes can make it wait forever or overwrite a reply not yet copied. */
static inline const _Atomic uint32_t *ppx__shared_outbox_copied(ppx__shared *s, uint32_t w)
{
    return ppx__shared_live(s) + (size_t)s->nworkers * s->slots_per_worker + w;
}

static inline char *ppx__shared_region(ppx__shared *s, uint32_t w)
{
    return (char *)s + s->region_off + (uint64_t)w * s->region_stride;
}
static inline ppx__wshared *ppx__shared_worker(ppx__shared *s, uint32_t w)
{
    return (ppx__wshared *)ppx__shared_region(s, w);
}
/* Worker w's slots: global slot w * slots_per_worker + k is element k. */
static inline ppx__slot *ppx__shared_slots(ppx__shared *s, uint32_t w)
{
    return (ppx__slot *)(ppx__shared_region(s, w) + sizeof(ppx__wshared));
}
static inline ppx__ring *ppx__shared_req(ppx__shared *s, uint32_t w)
{
    return (ppx__ring *)(ppx__shared_region(s, w) + s->block_bytes);
}
static inline ppx__ring *ppx__shared_resp(ppx__shared *s, uint32_t w)
{
    return (ppx__ring *)(ppx__shared_region(s, w) + s->block_bytes + s->ring_stride);
}
static inline unsigned char *ppx__shared_outbox(ppx__shared *s, uint32_t w)
{
    return (unsigned char *)ppx__shared_region(s, w) + s->block_bytes + 2 * s->ring_stride;
}

/* Wake the parent if it asked for it (see parent_waiting): 0, or -errno
 * when the eventfd could not be written (the worker's descriptor is gone). */
int ppx__shared_wake_parent(ppx__wshared *ws, int efd);

#endif
