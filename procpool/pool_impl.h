/*
 * The parent's side of a pool, shared by pool.c (lifecycle, submit,
 * cancel, waiting) and dispatch.c (placing calls, collecting replies,
 * workers that die, timers).
 *
 * One mutex guards everything here and every unresolved future's fields.
 * Callbacks never run under it: resolving code collects futures on a
 * ppx__notify list and runs them after unlocking.
 *
 * Who owns what: the pool owns each ppx__task until its slot is freed;
 * a task owns its encoded call frame (kept until the task ends, so a call
 * can be moved or re-sent after a crash) and one reference to its future
 * until that resolves. A cancelled task may outlive its future's interest
 * ("lingering") until its worker acknowledges it, finishes it or dies.
 */
#ifndef PPX_PROCPOOL_POOL_IMPL_H
#define PPX_PROCPOOL_POOL_IMPL_H
#include "arena.h"
#include "deadline.h"
#include "fork.h"
#include "frame.h"
#include "future.h"
#include "pool.h"
#include "shared.h"
#include "trace.h"
#include "zygote.h"

#include <pthread.h>
#include <stdbool.h>
#include <sys/types.h>

#define PPX__NO_SLOT UINT32_MAX
/* How long to wait before asking again when a worker could not be forked. */
#define RESPAWN_RETRY_NS (100 * 1000000LL)
/* While calls are out, the rings are looked at this often even without a
 * wake-up (see ppx__pump). */
#define PPX__SWEEP_NS (20 * 1000000LL)

typedef struct ppx__task {
    uint64_t id;
    ppx_future *fut; /* NULL once resolved (lingering) */
    /* inline_frame, a ppx__bigbuf of frame_cap bytes, or a block of the
     * call arena (see ppx__arena_owns), never rewritten once placed. */
    unsigned char *frame;
    size_t frame_len, frame_cap;
    uint32_t slot; /* PPX__NO_SLOT while in the pool's queue */
    uint32_t seq;
    int worker;    /* -1 while in the pool's queue */
    /* Deadlines in monotonic ns, 0 when unset; the heap holds the task at
     * the earlier one that still matters (see deadline.h). */
    int64_t timeout_at; /* fail the future with TimeoutError */
    int timeout_ms;
    int64_t kill_at;    /* kill the worker if the cancelled call still runs */
    int64_t heap_at;
    size_t heap_idx;    /* SIZE_MAX when not in the heap */
    const char *fn;       /* the registry's copy of the name: outlives fut */
    int64_t submitted_ns; /* when traced, else 0 */
    uint8_t kind;         /* PPX__ENV_CALL or PPX__ENV_MAP */
    uint8_t ended;        /* PPX__ENDED_*: why fut resolved before a reply */
    struct ppx__task *prev, *next;
    unsigned char inline_frame[]; /* frame, when it is small */
} ppx__task;
/* Frames up to this size share the task's allocation. */
#define PPX__INLINE_FRAME 512u
/* Why the parent resolved a task's future before its worker answered. */
enum { PPX__ENDED_NOT = 0, PPX__ENDED_CANCELLED, PPX__ENDED_TIMED_OUT };

typedef struct ppx__list {
    ppx__task *head, *tail;
    size_t n;
} ppx__list;

typedef struct ppx__worker {
    pid_t pid;
    int pidfd;          /* for signals only: the zygote reaps workers */
    bool alive;
    bool spawning;      /* asked the zygote, no answer yet */
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

typedef struct ppx__hook {
    ppx__pool_close_hook fn;
    void *arg;
} ppx__hook;

struct ppx_pool {
    uint32_t magic;
    /* The owner's reference, plus one per unresolved future (let go
     * after its callbacks ran, or when the last call pinning it leaves:
     * future.h) and one per blocking ppx_pool_shutdown, so ppx_pool_free
     * can tear the pool down (workers stopped, futures resolved) while
     * such a thread is still leaving; the last reference closes the
     * descriptors and frees the memory. */
    _Atomic int refs;
    bool freeing;   /* ppx_pool_free has begun */
    bool torn_down; /* workers are gone; nothing left to process */
    pthread_mutex_t mu;
    pthread_cond_t cv;   /* broadcast whenever futures resolve */
    bool driving;        /* a thread is blocked in epoll_wait for us */
    pthread_t driver;
    bool closed;
    bool started_all; /* the first workers are up: later spawns are respawns */
    ppx_pool_options opt;
    pid_t self;
    /* The process generation that made the pool (fork.h): in any other
     * process, a fork of this one, the pool is a copy to refuse and free. */
    uint32_t gen;

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
    size_t ntasks;   /* every task alive, lingering ones included */
    size_t unresolved;
    _Atomic uint64_t next_id;

    int efd;    /* workers -> parent */
    int kickfd; /* other threads -> the thread driving a blocking wait */
    int tfd;    /* timerfd: kill deadlines, respawn retries */
    int epfd;   /* all of the above and the zygote's socket */
    ppx__zygote z;
    int64_t timer_at;
    int64_t sweep_at;       /* next look at the rings without a wake-up, 0: none */
    int64_t polled_at;      /* last epoll_wait for timer and zygote events */
    bool kicked;            /* kickfd was signalled and not drained yet */
    ppx__heap deadlines;
    unsigned crash_streak;  /* crashes since a call last returned */
    char init_error[PPX__INIT_ERROR_MAX];

    ppx__hook *hooks;
    size_t nhooks;
    ppx_pool_stats stats;
    int64_t created_ns; /* monotonic: no honest worker stamp is older */
    ppx__trace *trace;  /* NULL unless tracing (trace.h, observe.c) */
    /* Set on rank 0 of an MPI pool, whose workers are other ranks
     * (remote.h); such a pool has no shared mapping and no workers. */
    struct ppx__remote *remote;
};

/* epoll tags */
enum { PPX__EV_EFD = 0, PPX__EV_KICK = 1, PPX__EV_TIMER = 2, PPX__EV_ZYGOTE = 3 };

/* layout.c */
int ppx__options_resolve(ppx_pool_options *o, const ppx_pool_options *in);
int ppx__layout_map(ppx_pool *p);
void ppx__layout_unmap(ppx_pool *p);
/* Rewrites the layout into the shared header (before every fork). */
void ppx__restamp_layout(ppx_pool *p);

int64_t ppx__now_ns(void);
/* Sets what ppx_last_error() returns on this thread. */
void ppx__set_last_error(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

void ppx__list_push_back(ppx__list *l, ppx__task *t);
void ppx__list_push_front(ppx__list *l, ppx__task *t);
void ppx__list_remove(ppx__list *l, ppx__task *t);

/* dispatch.c, all under the lock */
void ppx__pump(ppx_pool *p);
void ppx__drain_replies(ppx_pool *p, ppx__worker *w, ppx__notify *n);
/* A worker ended: code/status as in siginfo (CLD_*), or code 0 when the
 * status is unknown. Fails or re-queues its calls and asks for another. */
void ppx__reap(ppx_pool *p, ppx__worker *w, int code, int status, ppx__notify *n);
/* What worker w's end means: the PPX__EXIT_* status it announced in its
 * block before exiting with it, else -1 (a crash, or a status a function
 * chose). For PPX__EXIT_INIT the initializer's message is copied into
 * p->init_error. Consumes the note. */
int ppx__exit_reason(ppx_pool *p, ppx__worker *w, int code, int status);
/* Handles every message the zygote has sent. */
void ppx__zygote_events(ppx_pool *p, ppx__notify *n);
void ppx__run_timers(ppx_pool *p, ppx__notify *n);
/* The periodic look at busy workers without a wake-up (see PPX__SWEEP_NS). */
void ppx__sweep(ppx_pool *p);
void ppx__arm_timer(ppx_pool *p);
/* Puts t in the deadline heap at its earliest deadline that matters. */
void ppx__task_reschedule(ppx_pool *p, ppx__task *t);
/* Delay before the next respawn, given the current crash streak. */
int64_t ppx__backoff_ns(const ppx_pool *p);
int ppx__spawn(ppx_pool *p, int i);
/* Resolves t's future, if it has one still pending: CANCELLED, or FAILED
 * with a TimeoutError when timed_out. false when there was none. */
bool ppx__task_stop_future(ppx_pool *p, ppx__task *t, bool timed_out, ppx__notify *n);
/* Stops t (queued, in a ring or running) and resolves its future:
 * CANCELLED, or FAILED with a TimeoutError when timed_out. */
void ppx__cancel_task(ppx_pool *p, ppx__task *t, bool kill_later, bool timed_out,
                      ppx__notify *n);

/* The shared slot of t, which holds one: in the region of the worker it
 * was placed on (the global number minus that worker's first). */
static inline ppx__slot *ppx__task_slot(ppx_pool *p, const ppx__task *t)
{
    return &p->w[t->worker].slots[t->slot - (uint32_t)t->worker * p->per];
}
/* Sends sig to worker w: through its pidfd, so a recycled pid is never
 * hit, or with kill() where pidfds are missing (old kernels, valgrind). */
void ppx__signal_worker(ppx__worker *w, int sig);
/* Frees a task's frame, wherever it lives. */
void ppx__frame_free(ppx_pool *p, unsigned char *frame, size_t cap);
/* dispatch.c: the task's slot back to its worker's free list, its live
 * entry and slot word cleared; and the task over for the pool (out of
 * its worker's list, slot released, freed). */
void ppx__release_slot(ppx_pool *p, ppx__task *t);
void ppx__task_finish(ppx_pool *p, ppx__task *t);
/* Frees a task that is in no list and holds no slot. */
void ppx__task_free(ppx_pool *p, ppx__task *t);
bool ppx__pool_live(const ppx_pool *p);
/* The last step of freeing p: descriptors, then memory. copy: p is a
 * fork's copy whose tasks are gone already (ppx__pool_free_copy): nothing
 * but this process's memory is touched. */
void ppx__pool_destroy(ppx_pool *p, bool copy);

/* drive.c: wake a sleeping driver; after futures resolved (n), wake
 * blocked waiters and, if kick_driver, the driver. */
void ppx__pool_kick(ppx_pool *p);
void ppx__pool_after_resolve(ppx_pool *p, ppx__notify *n, bool kick_driver);
/* Blocks until done(p, arg) holds (checked under the lock), the pool is
 * torn down, or deadline (ppx__now_ns() clock; -1: none) passes, driving
 * the pool meanwhile unless another thread does. 0 or PPX_ETIMEDOUT. The
 * caller holds a reference on p throughout (its own, or a pinned
 * future's): a callback run here may free the pool. */
int ppx__pool_drive_until(ppx_pool *p, bool (*done)(ppx_pool *, void *), void *arg,
                          int64_t deadline);
/* A deadline timeout_ms from now (-1 for a negative timeout), and the
 * milliseconds left until one (-1: none; 0: passed). */
int64_t ppx__deadline_of(int timeout_ms);
int ppx__remaining_ms(int64_t deadline);

/* fork.c: ppx_pool_free of a copy inherited through fork(). */
void ppx__pool_free_copy(ppx_pool *p);
/* Whether p was made by this process, not inherited through fork(). */
static inline bool ppx__pool_owned(const ppx_pool *p)
{
    return p->gen == ppx__fork_generation();
}
/* Sets every worker's parent_waiting flag to v (see ppx__wshared). */
void ppx__want_wakeups(ppx_pool *p, uint32_t v);

/* observe.c, under the lock: per-worker statistics and the trace. */
/* Worker w's process has ended: its busy time joins the slot's total. */
void ppx__observe_exit(ppx_pool *p, ppx__worker *w);
/* t was running on w when w's process ended: the time its function ran
 * counts as busy, and the trace gets its slice. outcome as for
 * ppx__observe_call_end. */
void ppx__observe_lost(ppx_pool *p, ppx__worker *w, ppx__task *t, const char *outcome,
                       const char *error);
/* Traces the end of t, which its worker started: outcome is "done",
 * "failed", "crashed", or NULL for what t->ended says; error the error
 * type (error_len bytes) or NULL. Only when p->trace. */
void ppx__observe_call_end(ppx_pool *p, ppx__task *t, const char *outcome, const char *error,
                           size_t error_len, bool worker_died);
/* Traces something done to t on the pool's track (see ppx__trace_mark). */
void ppx__observe_mark(ppx_pool *p, const char *what, ppx__task *t, int from, int to,
                       const char *error);
/* ppx_pool_free, workers stopped: slices for the calls still on a
 * worker, then the trace file is closed. */
void ppx__observe_pool_end(ppx_pool *p);

#endif
