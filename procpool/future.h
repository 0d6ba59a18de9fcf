/* Process futures: the struct behind ppx_future, used by the pool. Every
 * function here except notify runs under the owning pool's lock. */
#ifndef PPX_PROCPOOL_FUTURE_H
#define PPX_PROCPOOL_FUTURE_H
#include "ppx.h"

#include <stdatomic.h>

struct ppx__task;

typedef struct ppx__cb {
    ppx_future_cb cb;
    void *arg;
} ppx__cb;

/* A progress callback: appended under the pool's lock while the future
 * is pending, read without it by whoever dispatches progress (next is
 * published with a release store), freed once the done callbacks ran. */
typedef struct ppx__pcb {
    ppx_progress_future_cb cb;
    void *arg;
    struct ppx__pcb *_Atomic next;
} ppx__pcb;

/* A future's progress (ppx_call_progress), apart: most calls never report
 * any and nobody asks, so the block is made (under the pool's lock, while
 * the future is pending) the first time a call reports progress or a
 * progress callback is added, published with a release store, and freed
 * with the future. Read anywhere once published. */
typedef struct ppx__fprog {
    /* The latest values, a seqlock written under the pool's lock by
     * ppx__future_progress (pseq odd meanwhile) and read anywhere by
     * ppx_future_progress. */
    _Atomic uint32_t pseq;
    /* Dispatching progress callbacks (progress.c): who runs them, whether
     * to run them again, whether the done callbacks have begun. */
    _Atomic unsigned pdisp;
    _Atomic uint64_t pdone, ptotal;
    ppx__pcb *_Atomic pcbs;
    uint32_t pdelivered;       /* pseq last given to the callbacks */
    _Atomic bool pqueued;      /* on some notify's progress list */
    ppx_future *pnext;         /* there */
} ppx__fprog;

/* Values up to this many bytes (ints, short strings: most results) live
 * in the future rather than in an allocation of their own. */
#define PPX__VALUE_INLINE 24u

#define PPX__FUTURE_MAGIC 0x70707846u /* "ppxF" */

/* Memory owned by another room that a call's block keeps alive (the
 * shared buffers of buffer.h), released through its own function, so the
 * future and the task need know nothing of what it is. */
typedef struct ppx__keep {
    void (*release)(struct ppx__keep *k);
} ppx__keep;

/* Kept small (120 bytes): every pending call has one, in one block with
 * its task and a small frame (256 bytes for a no-argument call, issue
 * 15's budget). What few calls need lives apart: an error (a block of its own, made
 * when the future fails or is cancelled), progress (ppx__fprog), done
 * callbacks past the first (cbs on the heap). */
struct ppx_future {
    uint32_t magic;
    _Atomic int refs;
    _Atomic int state;            /* PENDING until resolved */
    /* Bit 0: f holds a reference on pool, from creation until its
     * callbacks have run (ppx__notify_run), so that a call on f never
     * meets a freed pool. Above it: how many calls have pool pinned. */
    _Atomic unsigned pin;
    /* Set at creation, never changed; used only while pinned. */
    ppx_pool *pool;
    union {
        struct ppx__task *task;   /* while pending (read after a look at state) */
        ppx_future *notify_next;  /* once resolved: on a notify list */
    };
    uint64_t id;
    /* The registry's copy of the name, or a copy after the struct (a name
     * nobody registered: the future fails at once). */
    const char *function;
    size_t value_len;
    /* What the future resolved to, by state and size: */
    union {
        unsigned char bytes[PPX__VALUE_INLINE]; /* DONE, value_len <= 24 */
        struct {
            unsigned char *data; /* malloc'd, or inside mem */
            void *mem;           /* an adopted reply buffer (a ppx__bigbuf), or NULL */
            size_t mem_len;
        } big;                   /* DONE, value_len > 24 */
        ppx_error *err;          /* FAILED, CANCELLED */
    } out;
    ppx__fprog *_Atomic prog;    /* NULL until progress came or was asked for */
    ppx__cb *cbs;                /* cb_inline until a second one is added */
    uint32_t ncbs;               /* on the heap: room for the next power of two */
    /* PPX__HALF_*: which of the block's two owners still hold it. */
    _Atomic uint8_t halves;
    /* 8-byte words in front of the future in its block (the submitter's:
     * a loop awaitable wrapping it), freed with the block. */
    uint8_t prefix_words;
    ppx__cb cb_inline[1];
};

/* A call's future and task share one allocation (one per call): the
 * task (procpool/core.h) lies right behind the future, and either may
 * outlive the other (a resolved future the caller holds; a cancelled
 * call still running). The block goes when both have let go. */
#define PPX__HALF_FUTURE 1u
#define PPX__HALF_TASK 2u
/* Not a half: the task's shared buffers (ppx__task_bufs) stay with the
 * block and go when it is freed, unless the task let go of them first. */
#define PPX__BLOCK_BUFS 4u
/* Not a half either: the block came from the pool's slab (slab.h). */
#define PPX__BLOCK_SLAB 8u
static inline void *ppx__future_task_mem(ppx_future *f)
{
    return f + 1;
}
/* The room in front of f (ppx__future_new's prefix), valid while f's
 * block is: while the user of it holds a reference to f. */
static inline void *ppx__future_prefix(ppx_future *f)
{
    return (char *)f - 8u * f->prefix_words;
}
/* Lets go of f's block for half (the future's last unref, the task's
 * free); the second to let go frees it. */
void ppx__future_release(ppx_future *f, unsigned half);

/* What asking for the value of something in state st (not DONE) returns:
 * PPX_ETASK, PPX_ECANCELED or PPX_EPENDING. Awaitables answer the same. */
static inline int ppx__not_done_rc(int st)
{
    return st == PPX_FAILED ? PPX_ETASK : st == PPX_CANCELLED ? PPX_ECANCELED : PPX_EPENDING;
}

/* Futures resolved under the lock, whose callbacks run after it; and
 * futures whose progress changed (each holding a reference), whose
 * progress callbacks run first. */
typedef struct ppx__notify {
    ppx_future *head, *tail;
    int count;
    ppx_future *phead, *ptail;
} ppx__notify;

/* A new pending future with two references: the caller's and the pool's;
 * it takes a reference on pool (NULL: none), let go once it resolved.
 * stable_name, when given, is fn's registry entry (which lives as long as
 * the process) and is used instead of a copy. task_bytes: room for its
 * task behind it (ppx__future_task_mem), which the task then owns
 * (released with PPX__HALF_TASK); 0 (and then no stable_name only): no
 * task. prefix: bytes in front of it (ppx__future_prefix), a multiple of
 * 8 up to 2040. NULL on ENOMEM. */
ppx_future *ppx__future_new(ppx_pool *pool, uint64_t id, const char *fn, size_t fn_len,
                            const char *stable_name, size_t task_bytes, size_t prefix);
/* A resolved future's state and error (NULL unless FAILED or
 * CANCELLED), as ppx_future_state and ppx_future_error give them, for
 * its done callbacks: inline, with no check of the handle. */
static inline ppx_state ppx__future_outcome(const ppx_future *f, const ppx_error **err)
{
    int st = atomic_load_explicit(&f->state, memory_order_acquire);
    *err = st == PPX_FAILED || st == PPX_CANCELLED ? f->out.err : NULL;
    return (ppx_state)st;
}
/* Adds f's first done callback before f is published (a submitter's
 * ppx__submit_prep): no lock, since no other thread can reach f yet. */
void ppx__future_first_callback(ppx_future *f, ppx_future_cb cb, void *arg);
/* Resolve and queue on n, which takes over the pool's reference. */
void ppx__future_done(ppx_future *f, const void *value, size_t len, ppx__notify *n);
/* Resolves with value, which lies inside buf (a ppx__bigbuf of buf_len
 * bytes): the future keeps buf instead of copying a big value out of it. */
void ppx__future_done_adopt(ppx_future *f, void *buf, size_t buf_len, const void *value,
                            size_t len, ppx__notify *n);
void ppx__future_fail(ppx_future *f, const char *type, const char *message,
                      const char *where, long pid, ppx__notify *n);
/* As ppx__future_fail, raised on the MPI node named node ("" locally). */
void ppx__future_fail_at(ppx_future *f, const char *type, const char *message,
                         const char *where, long pid, const char *node, ppx__notify *n);
void ppx__future_failf(ppx_future *f, const char *type, long pid, ppx__notify *n,
                       const char *fmt, ...) __attribute__((format(printf, 5, 6)));
void ppx__future_cancelled(ppx_future *f, ppx__notify *n);
/* Under the pool's lock, while f is pending: its latest progress (done
 * already clamped by the caller); queues its progress callbacks on n if
 * it has any. */
void ppx__future_progress(ppx_future *f, uint64_t done, uint64_t total, ppx__notify *n);

/* Outside any lock: runs the progress callbacks of every future on n's
 * progress list, then the callbacks of every future on n and drops the
 * references n held, and each future's reference on its pool (which may
 * be the last: a caller that uses the pool after holds one of its own). */
void ppx__notify_run(ppx__notify *n);

/* f's pool, kept alive (and f with it) until ppx__future_unpin, while f
 * is pending; NULL once f resolved (its pool may be gone then: do not
 * touch it). Outside the pool's lock, as is unpin, which may drop the
 * last reference on the pool, or on f. */
ppx_pool *ppx__future_pin(ppx_future *f);
void ppx__future_unpin(ppx_future *f);

/* progress.c: a call's progress on its future. The latest pair, whole
 * (its sequence number returned); the progress callbacks of f run on this
 * thread (one thread at a time); before f's done callbacks, none starts
 * again and one running elsewhere is waited for. */
uint32_t ppx__progress_read(const ppx_future *f, uint64_t *done, uint64_t *total);
/* Under the pool's lock while f is pending: f's progress block, made if
 * need be; NULL without memory. */
ppx__fprog *ppx__progress_block(ppx_future *f);
/* As f is freed: its progress block and progress callbacks. */
void ppx__progress_free(ppx_future *f);
void ppx__progress_run(ppx_future *f);
void ppx__progress_end(ppx_future *f);

#endif
