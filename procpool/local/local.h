/*
 * The local backend: forked workers on this machine, fed through the
 * shared mapping (wire/shared.h). Its state hangs off ppx_pool.be and each
 * call's off ppx__task.be; the core reaches it only through
 * ppx__local_ops (local.c). Rooms: layout.c (options and the mapping),
 * arena.c (big frames in place), dispatch.c (placing calls, stealing,
 * replies), exits.c (workers that start and end, the fork server's
 * reports), timers.c (deadlines passing, cancelling a call), slots.c
 * (a call's slot and memory, signals, arming the timerfd: beneath the
 * others), start.c (starting and stopping workers), observe.c (worker
 * statistics, the trace's feed), local.c (the backend's entry points).
 *
 * Every function here runs under the pool's lock unless it says so.
 */
#ifndef PPX_PROCPOOL_LOCAL_H
#define PPX_PROCPOOL_LOCAL_H
#include "procpool/core.h"
#include "procpool/local/arena.h"
#include "procpool/util/heap.h"
#include "procpool/wire/frame.h"
#include "procpool/wire/shared.h"
#include "procpool/worker/zygote.h"

#include <assert.h>
#include <stdbool.h>
#include <sys/types.h>

#define PPX__NO_SLOT UINT32_MAX
/* How long to wait before asking again when a worker could not be forked. */
#define RESPAWN_RETRY_NS (100 * 1000000LL)
/* While calls are out, the rings are looked at this often even without a
 * wake-up (see ppx__pump). */
#define PPX__SWEEP_NS (20 * 1000000LL)

/* A call's place on this machine (ppx__task.be). */
typedef struct ppx__ltask {
    uint32_t slot;   /* PPX__NO_SLOT while in the pool's queue */
    uint32_t seq;
    int worker;      /* -1 while in the pool's queue */
    uint32_t src_seq; /* the slot's progress seq last taken in */
    int64_t kill_at; /* kill the worker if the cancelled call still runs */
    /* In the deadline heap at the earlier of timeout_at (while the
     * future is pending) and kill_at. */
    ppx__hnode deadline;
} ppx__ltask;
static_assert(sizeof(ppx__ltask) <= sizeof(((ppx__task *)0)->be), "ppx__ltask fits in be");

static inline ppx__ltask *ppx__lt(ppx__task *t)
{
    return (ppx__ltask *)t->be;
}
static inline const ppx__ltask *ppx__lt_c(const ppx__task *t)
{
    return (const ppx__ltask *)t->be;
}
static inline ppx__task *ppx__task_of_deadline(ppx__hnode *h)
{
    return (ppx__task *)((char *)h - offsetof(ppx__ltask, deadline) - offsetof(ppx__task, be));
}

typedef struct ppx__worker {
    pid_t pid;
    int pidfd;          /* for signals only: the zygote reaps workers */
    bool alive;
    bool spawning;      /* asked the zygote, no answer yet */
    bool started;       /* a process has filled this slot: the next is a respawn */
    int pending_sig;    /* asked for while spawning: sent once it is named */
    bool killed_by_us;   /* killed because a cancelled task overran */
    bool init_failed;    /* its last start failed in the initializer */
    bool protocol_error; /* it sent something unreadable */
    int64_t respawn_at;  /* monotonic ns, when a fork failed */
    ppx__port req, resp; /* private views: capacity not read from shm */
    ppx__list tasks;     /* calls in its ring or running, oldest first */
    ppx__task *partial;  /* frame being written, resumes when space frees */
    size_t partial_off;
    bool wrote;          /* records committed since the last wake-up check */
    ppx__rx rx;
    unsigned char *outbox; /* its outbox in the mapping, or NULL */
    ppx__wshared *ws;      /* its block, and its slots right behind it */
    ppx__slot *slots;
    uint32_t *free_slots;  /* a stack of its free (global) slot numbers */
    uint32_t nfree;
    /* This slot's counters, across the processes that fill it in turn
     * (see ppx_pool_worker_stats). busy_ns is that of the processes that
     * ended; the live one's is in its worker block. */
    uint64_t completed, failed, crashed, restarts, busy_ns;
} ppx__worker;

typedef struct ppx__local {
    ppx_pool *pool;
    ppx__shared *sh;
    size_t sh_len;
    /* Layout kept privately (see shared.h): nothing a worker writes can
     * move what the parent reads or writes. */
    uint32_t nslots, per; /* per: slots of each worker */
    size_t region_off, region_stride, block_bytes, ring_stride;
    size_t outbox_bytes; /* 0: no outboxes */
    ppx__arena arena;
    ppx__worker *w;
    int nworkers;
    unsigned rr; /* the last worker chosen: ties go to it */

    ppx__task **slot_task; /* by slot index */
    uint32_t *slot_seq;    /* last seq used per slot */
    _Atomic uint32_t *live; /* the live table in the mapping (shared.h) */

    ppx__list queue; /* not yet in any ring */
    int tfd;         /* timerfd: deadlines, respawn retries, the sweep */
    ppx__zygote z;
    /* The fork server was lost and another is owed: forked with no lock
     * held (ppx__zygote_replace), by the one thread that claims it
     * (forking). Meanwhile z has no socket (-1) and z.pid is the lost
     * one until that thread reaps it. */
    bool zygote_owed, zygote_forking;
    int64_t timer_at;
    int64_t sweep_at;  /* next look at the rings without a wake-up, 0: none */
    int64_t polled_at; /* last epoll_wait for timer and zygote events */
    ppx__heap deadlines;
    unsigned crash_streak; /* crashes since a call last returned */
    char init_error[PPX__INIT_ERROR_MAX];
    /* The pool's sandbox, limits and scheduling, or NULL (worker/sandbox.h):
     * the fork servers and workers read it through their copy of memory. */
    struct ppx__sandbox *sandbox;
} ppx__local;

/* The local backend's epoll tags (core.h). */
enum { PPX__EV_TIMER = PPX__EV_BACKEND, PPX__EV_ZYGOTE };

static inline ppx__local *ppx__local_of(const ppx_pool *p)
{
    return (ppx__local *)p->be;
}

/* The shared slot of t, which holds one: in the region of the worker it
 * was placed on (the global number minus that worker's first). */
static inline ppx__slot *ppx__task_slot(ppx__local *p, ppx__task *t)
{
    const ppx__ltask *lt = ppx__lt(t);
    return &p->w[lt->worker].slots[lt->slot - (uint32_t)lt->worker * p->per];
}

/* layout.c */
int ppx__options_resolve(ppx_pool_options *o, const ppx_pool_options *in);
int ppx__layout_map(ppx__local *p);
void ppx__layout_unmap(ppx__local *p);
/* Rewrites the layout into the shared header (before every fork). */
void ppx__restamp_layout(ppx__local *p);
/* Sets every worker's parent_waiting flag to v (see ppx__wshared). */
void ppx__want_wakeups(ppx__local *p, uint32_t v);

/* slots.c */
/* The task's slot back to its worker's free list, its live entry and
 * slot word cleared; and the task over (out of its worker's list, slot
 * released, freed); and a task freed that is in no list, holds no slot. */
void ppx__release_slot(ppx__local *p, ppx__task *t);
void ppx__task_finish(ppx__local *p, ppx__task *t);
void ppx__local_task_free(ppx__local *p, ppx__task *t);
/* Sends sig to worker w: through its pidfd, so a recycled pid is never
 * hit, or with kill() where pidfds are missing (old kernels, valgrind).
 * A worker the fork server has not named yet gets it once named. */
void ppx__signal_worker(ppx__worker *w, int sig);
/* Puts t in the deadline heap at its earliest deadline that matters. */
void ppx__task_reschedule(ppx__local *p, ppx__task *t);
void ppx__arm_timer(ppx__local *p);
/* Delay before the next respawn, given the current crash streak. */
int64_t ppx__backoff_ns(const ppx__local *p);

/* dispatch.c */
void ppx__pump(ppx__local *p);
void ppx__drain_replies(ppx__local *p, ppx__worker *w, ppx__notify *n);
/* The periodic look at busy workers without a wake-up (see PPX__SWEEP_NS). */
void ppx__sweep(ppx__local *p);
/* Takes in the progress t's worker wrote in its slot, if it changed
 * (ppx_call_progress; clamped), for t's future; and so for the call each
 * busy worker runs (its oldest). */
void ppx__task_progress(ppx__local *p, ppx__task *t, ppx__notify *n);
void ppx__scan_progress(ppx__local *p, ppx__notify *n);

/* exits.c */
/* A worker ended: code/status as in siginfo (CLD_*), or code 0 when the
 * status is unknown. Fails or re-queues its calls and asks for another. */
void ppx__reap(ppx__local *p, ppx__worker *w, int code, int status, ppx__notify *n);
/* What worker w's end means: the PPX__EXIT_* status it announced in its
 * block before exiting with it, else -1 (a crash, or a status a function
 * chose). For PPX__EXIT_INIT the initializer's message is copied into
 * p->init_error. Consumes the note. */
int ppx__exit_reason(ppx__local *p, ppx__worker *w, int code, int status);
/* Handles every message the zygote has sent. */
void ppx__zygote_events(ppx__local *p, ppx__notify *n);
/* Asks the zygote for worker i; without one, asks for a new zygote to
 * be forked once the lock is released. 0 or -errno. */
int ppx__spawn(ppx__local *p, int i);
/* The backend's unlocked op (backend.h): forks the fork server owed
 * since the last was lost, and installs it. No lock held. */
void ppx__zygote_replace(ppx__local *p);

/* timers.c */
void ppx__run_timers(ppx__local *p, ppx__notify *n);
/* Stops t (queued, in a ring or running) and resolves its future:
 * CANCELLED, or FAILED with a TimeoutError when timed_out. */
void ppx__cancel_task(ppx__local *p, ppx__task *t, bool kill_later, bool timed_out,
                      ppx__notify *n);
/* Cancels t only if no worker can have started it: in the pool's queue
 * (removed and freed), or in a ring with its slot still QUEUED (CAS to
 * CANCELLED; it lingers until the worker skips it). false: claimed. */
bool ppx__cancel_unclaimed(ppx__local *p, ppx__task *t, ppx__notify *n);

/* start.c: the timerfd, starting and stopping the workers. */
int ppx__local_open_timer(ppx__local *p);
int ppx__local_start_workers(ppx__local *p);
void ppx__local_stop_workers(ppx__local *p);

/* trace/observe.c: per-worker statistics and the trace. */
/* Worker w's process has ended: its busy time joins the slot's total. */
void ppx__observe_exit(ppx__local *p, ppx__worker *w);
/* t was running on w when w's process ended: the time its function ran
 * counts as busy, and the trace gets its slice. outcome as for
 * ppx__observe_call_end. */
void ppx__observe_lost(ppx__local *p, ppx__worker *w, ppx__task *t, const char *outcome,
                       const char *error);
/* Traces the end of t, which its worker started: outcome is "done",
 * "failed", "crashed", or NULL for what t->ended says; error the error
 * type (error_len bytes) or NULL. Only when tracing. */
void ppx__observe_call_end(ppx__local *p, ppx__task *t, const char *outcome, const char *error,
                           size_t error_len, bool worker_died);
/* Traces something done to t on the pool's track (see ppx__trace_mark). */
void ppx__observe_mark(ppx__local *p, const char *what, ppx__task *t, int from, int to,
                       const char *error);
/* The pool is freed, workers stopped: slices for the calls still on a
 * worker, then the trace file is closed. */
void ppx__observe_pool_end(ppx__local *p);
/* ppx_pool_worker_stats for worker i. */
int ppx__observe_worker_stats(ppx__local *p, int i, ppx_worker_stats *out);

#endif
