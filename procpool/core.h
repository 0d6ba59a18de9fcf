/*
 * The pool's core, shared by pool.c (lifecycle, refs, driving and
 * blocking waits), submit.c and cancel.c, and handed to a backend
 * (backend.h) that runs the calls. The core never looks inside the
 * backend's state (p->be) or a task's backend part (t->be).
 *
 * Who owns what: the pool owns each ppx__task from submission until its
 * backend frees it (ppx__task_free lets go of its half of the block it
 * shares with its future, future.h); a task owns its encoded call frame (kept until the
 * task ends, so a call can be moved or re-sent after a crash) and one
 * reference to its future until that resolves. A cancelled task may
 * outlive its future ("lingering") until its worker acknowledges it,
 * finishes it or dies.
 *
 * Locks (every mutex in the library, what it guards, how they nest):
 * - ppx_pool.mu: everything in the pool, its backend's state, its close
 *   hooks and every unresolved future's fields. Callbacks never run under
 *   it: resolving code collects futures on a ppx__notify and runs them
 *   after unlocking.
 *   Taken first; the others below may be taken inside it, never around.
 * - trace.c's wmu: orders the trace file's write(2)s. Taken with no
 *   other lock held (ppx__pool_unlock, after releasing the pool's), but
 *   under the pool's lock when the trace is finished at the pool's free
 *   or failed creation, which no thread then needs long; never held
 *   while waiting for the pool's lock. fork.c's table lock may nest in it.
 * - local arena mu (local/arena.h): the call arena's free list, alone or
 *   inside the pool's lock (submission allocates frames without the pool
 *   lock).
 * - slab.c's spin lock: one slab's chunk lists; held for a few list
 *   operations, alone or inside the pool's lock (a task's block is freed
 *   under it), never around another lock, and never in a fork's child
 *   (the copy of a slab is left alone there, slab.h).
 * - fork.c's table lock: the tracked descriptors; inside the pool's lock
 *   (a worker's pidfd is tracked as it is opened) or alone; nothing forks
 *   while it is held.
 * - registry.c's lock: ppx_register against the freeze; alone.
 * - mpi/link.h's ppx__cl.mu: which MPI pool is open in this process, the
 *   nodes lost; alone, or by the progress thread inside the pool's lock.
 * - loop/: bindings_mu, a binding's mu and default_mu, never held while
 *   calling into the pool (see loop/binding.c); a call finds its binding
 *   (a thread's last one) and the default pool (an atomic pointer)
 *   without them. user.c's hubs_mu and a hub's mu, each alone.
 * Waits: the pool's condition variable and an MPI pool's progress thread
 * wait on the pool's lock; epoll_wait runs with no lock held.
 * Nothing forks under the pool's lock, and the trace file is written
 * under it only when it is finished (see wmu): such work is deferred to
 * ppx__pool_unlock, which does it right after releasing the lock
 * (pool.c): the trace's writes, and the backend's unlocked op when it
 * set p->deferred (a lost fork server's replacement, local/exits.c).
 * Only stopping the workers (ppx_pool_free, a failed creation) waits for
 * processes under it (backend.h, stop).
 */
#ifndef PPX_PROCPOOL_CORE_H
#define PPX_PROCPOOL_CORE_H
#include "backend.h"
#include "errors.h"
#include "fork.h"
#include "future.h"
#include "pool.h"
#include "slab.h"
#include "trace/trace.h"
#include "util/clock.h"
#include "util/list.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <string.h>
#include <sys/types.h>

/* Words of a task's backend-private state (ppx__task.be). */
#define PPX__TASK_BE_WORDS 6

/* A call's task lives in one block with its future, right behind it
 * (future.h: ppx__future_task_mem), and lets go of its half with
 * ppx__task_free; what both need (the id, the function's name) is read
 * from the future's half, which stays in place until both let go. */
typedef struct ppx__task {
    ppx__link link;  /* in one list of its backend's at a time */
    /* inline_frame, a ppx__bigbuf of ppx__task_frame_cap bytes, or memory
     * the backend gave (frame_alloc), never rewritten once placed. */
    unsigned char *frame;
    size_t frame_len;
    /* Monotonic ns: when it was submitted, if it has a deadline or the
     * pool traces; else 0. */
    int64_t start_ns;
    int timeout_ms;       /* > 0: it fails with TimeoutError that long after start_ns */
    uint8_t kind;         /* PPX__ENV_CALL or PPX__ENV_MAP */
    uint8_t ended;        /* PPX__ENDED_*: why fut resolved before a reply */
    bool pending;         /* its future is unresolved: ppx__task_fut */
    /* Its arguments name shared buffers: the ppx__buffers holding them
     * is in the block (ppx__task_bufs). */
    bool has_bufs;
    uint64_t be[PPX__TASK_BE_WORDS]; /* the backend's (backend.h) */
    /* The frame, when it is small; else the capacity of the frame's own
     * memory (one size_t: ppx__task_frame_cap). */
    unsigned char inline_frame[];
} ppx__task;
/* Frames up to this size share the task's allocation. */
#define PPX__INLINE_FRAME 512u
/* Why the core resolved a task's future before its worker answered. */
enum { PPX__ENDED_NOT = 0, PPX__ENDED_CANCELLED, PPX__ENDED_TIMED_OUT };

/* The future half of t's block, resolved or not, even once its last
 * reference went: only its fixed fields (id, function) may be read. */
static inline ppx_future *ppx__task_block(const ppx__task *t)
{
    return (ppx_future *)((char *)(uintptr_t)t - sizeof(struct ppx_future));
}
static inline uint64_t ppx__task_id(const ppx__task *t)
{
    return ppx__task_block(t)->id;
}
/* The registry's copy of the name (a call of an unknown one has no task). */
static inline const char *ppx__task_fn(const ppx__task *t)
{
    return ppx__task_block(t)->function;
}
/* t's future while it is unresolved; NULL once resolved (lingering). */
static inline ppx_future *ppx__task_fut(const ppx__task *t)
{
    return t->pending ? ppx__task_block(t) : NULL;
}
/* Its future resolved before the task ends: the task lingers. */
static inline void ppx__task_drop_fut(ppx__task *t)
{
    t->pending = false;
}
/* Monotonic ns at which the call fails with TimeoutError; 0: never. */
static inline int64_t ppx__task_deadline(const ppx__task *t)
{
    return t->timeout_ms > 0 ? t->start_ns + (int64_t)t->timeout_ms * 1000000LL : 0;
}
/* The capacity of a frame that is not inline (a bigbuf, the arena's). */
static inline size_t ppx__task_frame_cap(const ppx__task *t)
{
    size_t cap;
    memcpy(&cap, t->inline_frame, sizeof cap);
    return cap;
}

/* What a frame takes of the block past the task struct, up to the word
 * ppx__task_bufs holds: a small frame's bytes rounded to a word, or a big
 * frame's capacity. */
static inline size_t ppx__task_frame_room(size_t frame_len, bool small)
{
    return small ? (frame_len + 7) & ~(size_t)7 : sizeof(size_t);
}
/* Where a task whose arguments name shared buffers (has_bufs) keeps
 * their ppx__buffers (buffer.h): the word after its frame's room. Pools
 * that never made a buffer pay no byte for it. */
static inline ppx__keep **ppx__task_bufs(ppx__task *t)
{
    size_t room = ppx__task_frame_room(t->frame_len, t->frame == t->inline_frame);
    return (ppx__keep **)(void *)(t->inline_frame + room);
}
/* Lets go of t's buffers as the task ends, unless its future is DONE:
 * its result may be one of them (ppx_future_buffer), so they stay with
 * the block (PPX__BLOCK_BUFS, ppx__future_release). */
static inline void ppx__task_drop_bufs(ppx__task *t)
{
    if (!t->has_bufs ||
        atomic_load_explicit(&ppx__task_block(t)->state, memory_order_acquire) == PPX_DONE)
        return;
    ppx__keep **k = ppx__task_bufs(t);
    if (*k)
        (*k)->release(*k);
    *k = NULL;
}

static inline ppx__task *ppx__task_of(ppx__link *l)
{
    return l ? PPX__CONTAINER_OF(l, ppx__task, link) : NULL;
}
static inline ppx__task *ppx__list_first(const ppx__list *l)
{
    return ppx__task_of(l->head);
}
static inline ppx__task *ppx__list_last(const ppx__list *l)
{
    return ppx__task_of(l->tail);
}
static inline ppx__task *ppx__task_next(const ppx__task *t)
{
    return ppx__task_of(t->link.next);
}
static inline ppx__task *ppx__task_prev(const ppx__task *t)
{
    return ppx__task_of(t->link.prev);
}

typedef struct ppx__hook {
    ppx__pool_close_hook fn;
    void *arg;
} ppx__hook;

struct ppx_pool {
    uint32_t magic;
    /* The owner's reference, plus one per unresolved future (let go
     * after its callbacks ran, or when the last call pinning it leaves:
     * future.h), one per close hook (a loop's binding, until it stopped
     * polling: pool.h), one per live ppx_buffer (buffer.h: its memory is
     * in the arena) and one per blocking ppx_pool_shutdown, so ppx_pool_free
     * can tear the pool down (workers stopped, futures resolved) while
     * such a thread is still leaving; the last reference closes the
     * descriptors and frees the memory. */
    _Atomic int refs;
    bool freeing;   /* ppx_pool_free has begun */
    bool torn_down; /* workers are gone; nothing left to process */
    /* The backend has work for after the lock is released (its unlocked
     * op, run by ppx__pool_unlock). */
    bool deferred;
    pthread_mutex_t mu;
    pthread_cond_t cv;   /* broadcast whenever futures resolve */
    bool driving;        /* a thread is blocked in epoll_wait for us */
    pthread_t driver;
    bool closed;
    ppx_pool_options opt;
    pid_t self;
    /* The process generation that made the pool (fork.h): in any other
     * process, a fork of this one, the pool is a copy to refuse and free. */
    uint32_t gen;

    size_t ntasks;   /* every task alive, lingering ones included */
    size_t unresolved;
    _Atomic uint64_t next_id;
    /* Whether a ppx_buffer was ever made here: until then a submission
     * does not look for buffer references in its arguments (buffer.c).
     * Not a count of live ones: a stale reference must still be found,
     * and refused, after the last buffer went. */
    _Atomic bool buffers_used;

    int efd;    /* the backend -> the thread processing the pool */
    int kickfd; /* other threads -> the thread driving a blocking wait */
    int epfd;   /* both, and whatever the backend watches (ppx__pool_watch) */
    bool kicked; /* kickfd was signalled and not drained yet */

    ppx__hook *hooks;
    size_t nhooks;
    ppx_pool_stats stats;
    int64_t created_ns; /* monotonic: no honest worker stamp is older */
    ppx__trace *trace;  /* NULL unless tracing (trace/trace.h) */
    const ppx__backend_ops *ops;
    void *be;           /* the backend's state */
    /* Where this pool's call blocks come from (slab.h); NULL: malloc. */
    ppx__slab *slab;
};

/* epoll tags: the core's; a backend's own start at PPX__EV_BACKEND. */
enum { PPX__EV_EFD = 0, PPX__EV_KICK = 1, PPX__EV_BACKEND = 2 };

/* pool.c */
/* Makes a pool run by ops from resolved options (the backend is chosen
 * by ppx_pool_new, backend.c). 0 or a PPX_E* code. */
int ppx__pool_open(ppx_pool **out, const ppx_pool_options *opt, const ppx__backend_ops *ops);
/* Adds fd to the pool's epoll set with tag. 0 or -errno. */
int ppx__pool_watch(ppx_pool *p, int fd, uint64_t tag);
bool ppx__pool_live(const ppx_pool *p);
void ppx__pool_mark_live(ppx_pool *p);
/* The last step of freeing p: its backend, descriptors, memory. copy: p
 * is a fork's copy (ppx__pool_free_copy): nothing but this process's
 * memory is touched. */
void ppx__pool_destroy(ppx_pool *p, bool copy);
/* Wake a sleeping driver; after futures resolved (n), wake blocked
 * waiters and, if kick_driver, the driver. */
void ppx__pool_kick(ppx_pool *p);
void ppx__pool_after_resolve(ppx_pool *p, ppx__notify *n, bool kick_driver);
/* Whether another thread than this one drives the pool right now. */
bool ppx__pool_other_driver(const ppx_pool *p);
/* Clears a pending kick, unless another thread drives (it will). */
void ppx__pool_take_kick(ppx_pool *p);
/* Blocks until done(p, arg) holds (checked under the lock), the pool is
 * torn down, or deadline (ppx__now_ns() clock; -1: none) passes, driving
 * the pool meanwhile unless another thread does. 0 or PPX_ETIMEDOUT. The
 * caller holds a reference on p throughout (its own, or a pinned
 * future's): a callback run here may free the pool. */
int ppx__pool_drive_until(ppx_pool *p, bool (*done)(ppx_pool *, void *), void *arg,
                          int64_t deadline);
/* A driver's round after its sleep in epoll_wait: one round of
 * processing, the driver's role given up, blocked waiters told, then the
 * callbacks. Entered and left without the lock, p->driving set by this
 * thread (pool.c's blocking waits, waits.c's wait over several pools). */
void ppx__pool_after_sleep(ppx_pool *p);
/* fork.c's part of ppx_pool_free: the copy inherited through fork(). */
void ppx__pool_free_copy(ppx_pool *p);
/* Whether p was made by this process, not inherited through fork(). */
static inline bool ppx__pool_owned(const ppx_pool *p)
{
    return p->gen == ppx__fork_generation();
}

/* cancel.c, under the lock */
/* Frees a task's frame, wherever it lives. */
void ppx__frame_free(ppx_pool *p, unsigned char *frame, size_t cap);
/* Frees a task that is in no list and holds nothing of its backend's. */
void ppx__task_free(ppx_pool *p, ppx__task *t);
/* Resolves t's future, if it has one still pending: CANCELLED, or FAILED
 * with a TimeoutError when timed_out. false when there was none. */
bool ppx__task_stop_future(ppx_pool *p, ppx__task *t, bool timed_out, ppx__notify *n);

#endif
