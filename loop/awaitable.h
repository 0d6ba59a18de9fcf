/* Loop-side futures: the struct behind ppx_awaitable, and the binding
 * of a pool to a loop. Everything here runs on the loop's thread except
 * where a comment says otherwise. */
#ifndef PPX_LOOP_AWAITABLE_H
#define PPX_LOOP_AWAITABLE_H
#include "ppx.h"

#include <pthread.h>
#include <uv.h>

/* One per (loop, pool): watches the pool's fd and hands back futures that
 * other threads resolved. A pool may have one on each of several loops,
 * each loop run by its own thread. */
typedef struct ppx__binding {
    uv_loop_t *loop;
    ppx_pool *pool;
    uv_poll_t poll;
    uv_async_t async;
    uv_idle_t spin;      /* low-latency mode: polls while results are due */
    int spin_us;
    uv_thread_t thread;  /* the loop's thread (in a fork's child, its one thread) */
    size_t pending;      /* awaitables waiting on this pool */
    int open_handles;    /* poll, async and spin: 3 when all are open */
    /* Once the pool is gone, async stays open (and referenced) until the
     * last awaitable bound here has settled: another thread may still be
     * handing one over. */
    bool async_closing;
    /* Guards what other threads write: cross, which they push to, and
     * gone, set when the pool is freed on another thread (the loop's
     * thread then closes the handles and lets the pool go, binding.c). */
    pthread_mutex_t mu;
    struct ppx_awaitable *cross;
    /* Wrapped futures whose progress another thread took in (executor.c):
     * told on the loop's thread, before cross is settled. */
    struct ppx_awaitable *pcross;
    bool gone;
    struct ppx__binding *next;
} ppx__binding;

typedef struct ppx__acb {
    ppx_awaitable_cb cb;
    void *arg;
} ppx__acb;

typedef struct ppx__glink {
    struct ppx_awaitable *g;
    size_t i;
} ppx__glink;

/* What an awaitable that is not a wrapped future does differently
 * (gather, wait, wait_for, task group, lazy map, thread call, user). */
typedef struct ppx__aw_ops {
    /* ppx_awaitable_cancel on a pending one; must settle it, unless its
     * outcome was already decided on another thread and is on its way
     * (user.c): the cancel then gives PPX_EDONE. */
    void (*cancel)(struct ppx_awaitable *aw);
    /* The value of a DONE one; NULL: aw->value. */
    int (*value)(const struct ppx_awaitable *aw, ppx_value *out);
    /* The last reference went: free impl (aw itself is freed after). */
    void (*release)(struct ppx_awaitable *aw);
    /* A single call's (thread call): starts watching its function's
     * progress once a progress callback is set. 0 or a PPX_E* code. */
    int (*watch_progress)(struct ppx_awaitable *aw);
    /* It reports progress: it is made of parts (gather, task group, lazy
     * map). */
    bool has_parts;
} ppx__aw_ops;

/* Kept small (112 bytes): every pending call through the loop has one
 * (in the call's block, for ppx_run_in_executor: 368 bytes in all).
 * What a kind needs beyond the common part is in a union: a wrapped
 * future's hand-over links, or any other kind's ops and impl (its own
 * state, errors included, lives in impl). */
struct ppx_awaitable {
    uint32_t magic;
    int refs;
    uv_loop_t *loop;
    ppx_state state;          /* PENDING until settled */
    bool wrapped;             /* a process future's (executor.c), else ops */
    /* Wrapped, in the block of its future (ppx_run_in_executor): its
     * memory goes with the future, not with its last unref. */
    bool embedded;
    /* A wrapped future's progress (executor.c): hooked on fut once a
     * progress callback is set; on b->pcross while pcross_queued (both
     * under b->mu). */
    bool progress_hooked;
    bool pcross_queued;
    const ppx_error *err;     /* borrowed from fut, a child or impl */
    ppx_progress_cb progress; /* single calls, gathers, maps, task groups */
    void *progress_arg;
    ppx__acb *cbs; /* NULL, then cb_inline, then the heap past one */
    uint32_t ncbs, capcbs;
    ppx__acb cb_inline[1];
    union {
        struct { /* wrapped */
            ppx_future *fut;
            ppx__binding *b;
            struct ppx_awaitable *cross_next;
            struct ppx_awaitable *pcross_next;
        };
        struct { /* any other kind */
            const ppx__aw_ops *ops;
            void *impl;
            unsigned char *value; /* its own value, unless ops->value */
            size_t value_len;
        };
    };
};

/* The binding of pool to loop, created on first use. NULL on ENOMEM,
 * PPX_ECLOSED (the pool is being freed) or when libuv refuses the fd (*rc
 * says which). */
ppx__binding *ppx__bind(uv_loop_t *loop, ppx_pool *pool, int *rc);
/* watch.c: re-evaluates whether the binding keeps the loop alive (and
 * closes its async handle once the pool is gone and nothing waits); the
 * close callback of a binding's handles, which frees it after the last. */
void ppx__binding_update(ppx__binding *b);
/* One awaitable more or less waits on b. Between two updates with
 * awaitables pending the poll handle stays referenced (only an update
 * with none unreferences it), so an update is due only when the count
 * leaves or reaches 0, or in low-latency mode, where each may restart
 * the spin. Inline: twice for every call through the loop. */
static inline void ppx__binding_add_pending(ppx__binding *b)
{
    if (b->pending++ == 0 || b->spin_us > 0)
        ppx__binding_update(b);
}
static inline void ppx__binding_drop_pending(ppx__binding *b)
{
    if (--b->pending == 0 || b->spin_us > 0)
        ppx__binding_update(b);
}
void ppx__binding_closed(uv_handle_t *h);

#define AW_MAGIC 0x70707841u /* "ppxA" */
#define AW_DEAD 0xdeadaaaau

static inline bool ppx__awaitable_live(const struct ppx_awaitable *aw)
{
    return aw && aw->magic == AW_MAGIC;
}

ppx_awaitable *ppx__awaitable_alloc(uv_loop_t *loop);
/* A fresh awaitable in mem (NULL: returns NULL). */
ppx_awaitable *ppx__awaitable_init(void *mem, uv_loop_t *loop);
/* A pending awaitable of another kind, with the caller's reference and the
 * pending state's. NULL on ENOMEM. */
ppx_awaitable *ppx__awaitable_new(uv_loop_t *loop, const ppx__aw_ops *ops, void *impl);
/* Tells aw's progress callback, if any, while aw is pending. */
static inline void ppx__progress(ppx_awaitable *aw, size_t done, size_t total)
{
    if (aw->progress && aw->state == PPX_PENDING)
        aw->progress(aw, done, total, aw->progress_arg);
}
/* Settles aw DONE with an unsigned integer as its value. */
void ppx__awaitable_settle_uint(ppx_awaitable *aw, uint64_t v);
/* The default pool, created on first use (binding.c). */
int ppx__default_pool_get(ppx_pool **out);

/* awaitable.c: tells aw's callback its future's latest progress (the
 * loop's side of a hand-over, binding.c). */
void ppx__wrapped_tell_progress(ppx_awaitable *aw);

/* Wraps a future just submitted and drops the caller's reference to it;
 * if wrapping fails the call is cancelled. */
int ppx__wrap_submitted(uv_loop_t *loop, ppx_future *f, ppx_awaitable **out);
/* Room for an awaitable in front of a future (ppx__pool_submit_prefixed). */
#define PPX__AW_PREFIX ((sizeof(struct ppx_awaitable) + 7) / 8 * 8)
/* ppx_gather; with flatten, the value is the children's arrays joined. */
int ppx__gather(uv_loop_t *loop, ppx_awaitable *const *items, size_t n, int flags,
                bool flatten, ppx_awaitable **out);
/* Removes callback (cb, arg), not run yet, from aw: undoes an add. */
void ppx__awaitable_remove_done_callback(ppx_awaitable *aw, ppx_awaitable_cb cb, void *arg);
/* Adds cb to every pending one of items, all or none: PPX_ENOMEM (none
 * added, nothing called) or 0, then calls cb at once for those already
 * settled. cb's arg for items[i] is (char *)args + i * stride (stride 0:
 * args itself for every item). */
int ppx__add_done_callbacks(ppx_awaitable *const *items, size_t n, ppx_awaitable_cb cb,
                            void *args, size_t stride);
/* Settles aw in state st, runs its callbacks, drops the reference the
 * pending state held. */
void ppx__awaitable_settle(ppx_awaitable *aw, ppx_state st, const ppx_error *err);

#endif
