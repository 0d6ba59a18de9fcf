#include "future.h"
#include "core.h"
#include "procpool/wire/frame.h"
#include "pool.h"

#include <assert.h>
#include <sched.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Every pending call has a future: 120 bytes on 64-bit targets, so that
 * with its task and a small frame it fits one 256-byte malloc chunk
 * (procpool/submit.c). */
static_assert(sizeof(void *) != 8 || sizeof(struct ppx_future) <= 120,
              "ppx_future stays at 120 bytes");

#define FUTURE_DEAD 0xdeadf00du

/* The pin word (future.h): HOLD while f's reference on its pool stands,
 * plus USER for each call using the pool through ppx__future_pin. */
#define HOLD 1u
#define USER 2u

/* A wrong-kind or NULL handle is caught here; a freed one is undefined
 * behaviour (ppx.h): its memory is gone, nothing is read safely there. */
static bool live(const ppx_future *f)
{
    return f && f->magic == PPX__FUTURE_MAGIC;
}

/* Drops f's hold on its pool, once; the pool goes with its last
 * reference. Never under the pool's lock: destroying it takes the lock
 * away. A call still pinning the pool drops the reference instead. */
static void let_go_of_pool(ppx_future *f)
{
    unsigned old = atomic_fetch_and_explicit(&f->pin, ~HOLD, memory_order_acq_rel);
    if (old == HOLD)
        ppx__pool_unref(f->pool);
}

ppx_pool *ppx__future_pin(ppx_future *f)
{
    unsigned v = atomic_load_explicit(&f->pin, memory_order_acquire);
    do {
        if (!(v & HOLD))
            return NULL; /* resolved, and the pool may be gone */
    } while (!atomic_compare_exchange_weak_explicit(&f->pin, &v, v + USER,
                                                    memory_order_acq_rel,
                                                    memory_order_acquire));
    /* f too: a callback run meanwhile may drop the reference the caller
     * borrowed (an awaitable's, cancelled through ppx_awaitable_cancel). */
    atomic_fetch_add_explicit(&f->refs, 1, memory_order_relaxed);
    if (atomic_load_explicit(&f->state, memory_order_acquire) != PPX_PENDING) {
        ppx__future_unpin(f);
        return NULL;
    }
    return f->pool;
}

void ppx__future_unpin(ppx_future *f)
{
    unsigned old = atomic_fetch_sub_explicit(&f->pin, USER, memory_order_acq_rel);
    if (old == USER) /* the hold went while we used the pool */
        ppx__pool_unref(f->pool);
    ppx_future_unref(f);
}

ppx_future *ppx__future_new(ppx_pool *pool, uint64_t id, const char *fn, size_t fn_len,
                            const char *stable_name, size_t task_bytes, size_t prefix)
{
    /* The pool's slab first (slab.h), else malloc, not calloc: glibc's
     * calloc skips the per-thread cache, and a future is allocated and
     * freed on every call. Zeroed by assigning
     * a compound literal, not memset: GCC and clang fold malloc + memset
     * of the whole block back into calloc (which cost ~150 instructions a
     * call here, and sent every free down glibc's slow path). Behind the
     * struct: the task, or a copy of a name nobody registered. */
    size_t bytes = prefix + sizeof(ppx_future) + (stable_name ? task_bytes : fn_len + 1);
    char *block = pool ? ppx__slab_alloc(pool->slab, bytes) : NULL;
    uint8_t from_slab = block ? PPX__BLOCK_SLAB : 0;
    if (!block && !(block = malloc(bytes)))
        return NULL;
    ppx_future *f = (ppx_future *)(block + prefix);
    *f = (ppx_future){.prefix_words = (uint8_t)(prefix / 8)};
    if (stable_name) {
        f->function = stable_name;
    } else {
        char *copy = (char *)(f + 1);
        memcpy(copy, fn, fn_len);
        copy[fn_len] = '\0';
        f->function = copy;
    }
    f->cbs = f->cb_inline;
    atomic_init(&f->halves, PPX__HALF_FUTURE | from_slab |
                                (stable_name && task_bytes ? PPX__HALF_TASK : 0));
    f->magic = PPX__FUTURE_MAGIC;
    atomic_init(&f->refs, 2);
    atomic_init(&f->state, PPX_PENDING);
    /* Taken before f is reachable: a pool's count always covers every
     * hold on it, in a fork's copy too. */
    if (pool)
        ppx__pool_ref(pool);
    f->pool = pool;
    atomic_init(&f->pin, pool ? HOLD : 0);
    f->id = id;
    return f;
}

void ppx__future_first_callback(ppx_future *f, ppx_future_cb cb, void *arg)
{
    assert(f->ncbs == 0 && f->cbs == f->cb_inline);
    f->cb_inline[0] = (ppx__cb){cb, arg};
    f->ncbs = 1;
}

static void enqueue(ppx_future *f, int state, ppx__notify *n)
{
    f->task = NULL;
    /* Published before the hold goes (ppx__notify_run): a call that finds
     * no pool to pin sees the final state, never PENDING. */
    atomic_store_explicit(&f->state, state, memory_order_release);
    f->notify_next = NULL;
    if (n->tail)
        n->tail->notify_next = f;
    else
        n->head = f;
    n->tail = f;
    n->count++;
}

void ppx__future_done(ppx_future *f, const void *value, size_t len, ppx__notify *n)
{
    unsigned char *to = f->out.bytes;
    if (len > PPX__VALUE_INLINE) {
        if (!(to = malloc(len))) {
            ppx__future_fail(f, "MemoryError", "no memory to hold the result", "", 0, n);
            return;
        }
        f->out.big.data = to;
        f->out.big.mem = NULL;
    }
    memcpy(to, value, len);
    f->value_len = len;
    enqueue(f, PPX_DONE, n);
}

void ppx__future_done_adopt(ppx_future *f, void *buf, size_t buf_len, const void *value,
                            size_t len, ppx__notify *n)
{
    if (len <= PPX__VALUE_INLINE) { /* the inline bytes say where a small value is */
        ppx__future_done(f, value, len, n);
        ppx__bigbuf_free(buf, buf_len);
        return;
    }
    f->out.big.data = (unsigned char *)value;
    f->out.big.mem = buf;
    f->out.big.mem_len = buf_len;
    f->value_len = len;
    enqueue(f, PPX_DONE, n);
}

/* Stand-ins when there is no memory for a future's error: shared and
 * never written, so they say less (no function, no task id). */
static ppx_error no_memory_error = {"MemoryError", "no memory to hold the error", "", "", 0, 0, ""};
static ppx_error cancelled_error = {"CancelledError", "the task was cancelled", "", "", 0, 0, ""};

static bool own_error(const ppx_error *e)
{
    return e != &no_memory_error && e != &cancelled_error;
}

void ppx__future_fail(ppx_future *f, const char *type, const char *message,
                      const char *where, long pid, ppx__notify *n)
{
    ppx__future_fail_at(f, type, message, where, pid, "", n);
}

void ppx__future_fail_at(ppx_future *f, const char *type, const char *message,
                         const char *where, long pid, const char *node, ppx__notify *n)
{
    /* One block holds the error and every string, so there is one
     * allocation to fail; if it does, a static error still tells it. */
    size_t lt = strlen(type) + 1, lm = strlen(message) + 1, lw = strlen(where) + 1;
    size_t ln = strlen(node) + 1;
    ppx_error *e = malloc(sizeof *e + lt + lm + lw + ln);
    if (e) {
        char *mem = (char *)(e + 1);
        memcpy(mem, type, lt);
        memcpy(mem + lt, message, lm);
        memcpy(mem + lt + lm, where, lw);
        memcpy(mem + lt + lm + lw, node, ln);
        *e = (ppx_error){.type = mem, .message = mem + lt, .where = mem + lt + lm,
                         .node = mem + lt + lm + lw, .function = f->function, .pid = pid,
                         .task_id = f->id};
    }
    f->out.err = e ? e : &no_memory_error;
    enqueue(f, PPX_FAILED, n);
}

void ppx__future_failf(ppx_future *f, const char *type, long pid, ppx__notify *n,
                       const char *fmt, ...)
{
    char msg[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    ppx__future_fail(f, type, msg, "", pid, n);
}

void ppx__future_cancelled(ppx_future *f, ppx__notify *n)
{
    ppx_error *e = malloc(sizeof *e);
    if (e)
        *e = (ppx_error){.type = "CancelledError", .node = "",
                         .message = "the task was cancelled", .where = "",
                         .function = f->function, .pid = 0, .task_id = f->id};
    f->out.err = e ? e : &cancelled_error;
    enqueue(f, PPX_CANCELLED, n);
}

static __attribute__((noinline)) void run_notified(ppx__notify *n)
{
    ppx_future *pf = n->phead;
    n->phead = n->ptail = NULL;
    while (pf) {
        ppx__fprog *pr = atomic_load_explicit(&pf->prog, memory_order_relaxed);
        ppx_future *next = pr->pnext; /* queued: it has a block */
        atomic_store_explicit(&pr->pqueued, false, memory_order_release);
        ppx__progress_run(pf);
        ppx_future_unref(pf);
        pf = next;
    }
    ppx_future *f = n->head;
    n->head = n->tail = NULL;
    while (f) {
        ppx_future *next = f->notify_next;
        ppx__progress_end(f);
        /* Resolved: nobody appends to cbs any more (see add_done_callback). */
        for (size_t i = 0; i < f->ncbs; i++)
            f->cbs[i].cb(f, f->cbs[i].arg);
        if (f->cbs != f->cb_inline)
            free(f->cbs);
        f->cbs = NULL;
        f->ncbs = 0;
        let_go_of_pool(f); /* after the callbacks: one may free the pool */
        ppx_future_unref(f);
        f = next;
    }
}

void ppx__notify_run(ppx__notify *n)
{
    /* Most notifies carry nothing (every submission's, for one): out of
     * line, the loops' frame is not set up for them. */
    if (n->head || n->phead)
        run_notified(n);
}

void ppx_future_ref(ppx_future *f)
{
    if (live(f))
        atomic_fetch_add_explicit(&f->refs, 1, memory_order_relaxed);
}

void ppx_future_unref(ppx_future *f)
{
    if (!live(f))
        return;
    if (atomic_fetch_sub_explicit(&f->refs, 1, memory_order_acq_rel) != 1)
        return;
    /* The pool holds a reference while f is unresolved, so f is resolved,
     * or was never submitted (submit.c's failures): then its hold on the
     * pool goes here. */
    let_go_of_pool(f);
    int st = atomic_load_explicit(&f->state, memory_order_relaxed);
    if (st == PPX_DONE && f->value_len > PPX__VALUE_INLINE) {
        if (f->out.big.mem)
            ppx__bigbuf_free(f->out.big.mem, f->out.big.mem_len);
        else
            free(f->out.big.data);
    } else if ((st == PPX_FAILED || st == PPX_CANCELLED) && own_error(f->out.err)) {
        free(f->out.err);
    }
    if (f->cbs && f->cbs != f->cb_inline) /* NULL once its callbacks ran */
        free(f->cbs);
    ppx__progress_free(f);
    f->magic = FUTURE_DEAD;
    ppx__future_release(f, PPX__HALF_FUTURE);
}

void ppx__future_release(ppx_future *f, unsigned half)
{
    /* acq_rel: whichever frees the block has seen every write of the
     * other half. */
    unsigned old = atomic_fetch_and_explicit(&f->halves, (uint8_t)~half, memory_order_acq_rel);
    if ((old & (PPX__HALF_FUTURE | PPX__HALF_TASK)) != half)
        return;
    if (old & PPX__BLOCK_BUFS) { /* a DONE call's: its result may have been one */
        ppx__keep **k = ppx__task_bufs(ppx__future_task_mem(f));
        if (*k)
            (*k)->release(*k);
    }
    if (old & PPX__BLOCK_SLAB)
        ppx__slab_free(ppx__future_prefix(f));
    else
        free(ppx__future_prefix(f));
}

ppx_state ppx_future_state(const ppx_future *f)
{
    if (!live(f))
        return PPX_PENDING;
    int st = atomic_load_explicit(&f->state, memory_order_acquire);
    if (st != PPX_PENDING)
        return (ppx_state)st;
    ppx_future *mf = (ppx_future *)f;
    ppx_pool *p = ppx__future_pin(mf);
    if (!p) /* resolved meanwhile */
        return (ppx_state)atomic_load_explicit(&f->state, memory_order_acquire);
    st = ppx__pool_task_state(p, mf);
    ppx__future_unpin(mf);
    return (ppx_state)st;
}

bool ppx_future_done(const ppx_future *f)
{
    return live(f) && atomic_load_explicit(&f->state, memory_order_acquire) != PPX_PENDING;
}

bool ppx_future_valid(const ppx_future *f)
{
    return live(f);
}

uint64_t ppx_future_id(const ppx_future *f)
{
    return live(f) ? f->id : 0;
}

const char *ppx_future_function(const ppx_future *f)
{
    return live(f) ? f->function : "";
}

int ppx_future_wait(ppx_future *f, int timeout_ms)
{
    if (!live(f))
        return PPX_EBADOBJ;
    ppx_pool *p = ppx__future_pin(f);
    if (!p)
        return 0; /* resolved: its pool, maybe freed, is not touched */
    int rc = ppx__pool_wait(p, f, timeout_ms);
    ppx__future_unpin(f);
    return rc;
}

int ppx_future_value(const ppx_future *f, ppx_value *out)
{
    if (!live(f) || !out)
        return live(f) ? PPX_EINVAL : PPX_EBADOBJ;
    int st = atomic_load_explicit(&f->state, memory_order_acquire);
    if (st != PPX_DONE)
        return ppx__not_done_rc(st);
    out->data = f->value_len <= PPX__VALUE_INLINE ? f->out.bytes : f->out.big.data;
    out->len = f->value_len;
    return 0;
}


int ppx_future_int(const ppx_future *f, int64_t *out)
{
    ppx_value v;
    int rc = ppx_future_value(f, &v);
    return rc ? rc : ppx_value_int(v, out);
}

const ppx_error *ppx_future_error(const ppx_future *f)
{
    if (!live(f))
        return NULL;
    int st = atomic_load_explicit(&f->state, memory_order_acquire);
    return st == PPX_FAILED || st == PPX_CANCELLED ? f->out.err : NULL;
}

int ppx_future_cancel(ppx_future *f)
{
    if (!live(f))
        return PPX_EBADOBJ;
    ppx_pool *p = ppx__future_pin(f);
    if (!p)
        return PPX_EDONE;
    int rc = ppx__pool_cancel(p, f);
    ppx__future_unpin(f);
    return rc;
}

/* Makes room for one more callback: 0, or -1 without memory (the array
 * is unchanged). The capacity is not stored: a heap array holds at least
 * 2 and at least the next power of two of the most it held (removals
 * only shrink ncbs), so it is full only when ncbs is a power of two. */
static int grow_callbacks(ppx_future *f)
{
    uint32_t n = f->ncbs;
    bool inline_now = f->cbs == f->cb_inline;
    if (inline_now ? n < 1 : n < 2 || (n & (n - 1)))
        return 0;
    ppx__cb *to = realloc(inline_now ? NULL : f->cbs, 2 * n * sizeof *to);
    if (!to)
        return -1;
    if (inline_now)
        memcpy(to, f->cb_inline, sizeof f->cb_inline);
    f->cbs = to;
    return 0;
}

/* Appends cb to f's list under p's lock if f is still pending: 1 if
 * added, 0 if f resolved first (the caller runs cb), or PPX_ENOMEM. */
static int append_callback(ppx_pool *p, ppx_future *f, ppx_future_cb cb, void *arg)
{
    ppx__pool_lock(p);
    if (atomic_load(&f->state) != PPX_PENDING) {
        ppx__pool_unlock(p);
        return 0;
    }
    int rc = 1;
    if (f->ncbs == UINT32_MAX || grow_callbacks(f))
        rc = PPX_ENOMEM;
    if (rc == 1)
        f->cbs[f->ncbs++] = (ppx__cb){cb, arg};
    ppx__pool_unlock(p);
    return rc;
}

/* The start of a call that touches a future's lists: f checked and
 * pinned. 0 with *p its pool, pinned (the caller unpins); 1 with *p NULL
 * once f has resolved (nothing is pinned); or a code: PPX_EBADOBJ,
 * PPX_EINVAL (no callback), PPX_EFORKED (pending in the creator:
 * nothing resolves it here). */
static int pin_pending(ppx_future *f, bool has_cb, ppx_pool **p)
{
    *p = NULL;
    if (!live(f))
        return PPX_EBADOBJ;
    if (!has_cb)
        return PPX_EINVAL;
    ppx_pool *pool = ppx__future_pin(f);
    if (!pool)
        return 1;
    if (ppx__pool_check(pool) == PPX_EFORKED) {
        ppx__future_unpin(f);
        return PPX_EFORKED;
    }
    *p = pool;
    return 0;
}

int ppx_future_add_done_callback(ppx_future *f, ppx_future_cb cb, void *arg)
{
    ppx_pool *p;
    int rc = pin_pending(f, cb != NULL, &p);
    if (rc < 0)
        return rc;
    rc = p ? append_callback(p, f, cb, arg) : 0; /* 0: resolved, run it now */
    if (p)
        ppx__future_unpin(f);
    if (rc == 0)
        cb(f, arg);
    return rc < 0 ? rc : 0;
}

/* Drops every (cb, arg) from f's list under p's lock if f is still
 * pending: how many. Once f has resolved, its list belongs to the thread
 * running it (ppx__notify_run): 0, those callbacks are due. */
static int remove_callbacks(ppx_pool *p, ppx_future *f, ppx_future_cb cb, void *arg)
{
    int removed = 0;
    ppx__pool_lock(p);
    if (atomic_load(&f->state) == PPX_PENDING) {
        size_t kept = 0;
        for (size_t i = 0; i < f->ncbs; i++)
            if (f->cbs[i].cb != cb || f->cbs[i].arg != arg)
                f->cbs[kept++] = f->cbs[i];
        removed = (int)(f->ncbs - kept);
        f->ncbs = kept;
    }
    ppx__pool_unlock(p);
    return removed;
}

int ppx_future_remove_done_callback(ppx_future *f, ppx_future_cb cb, void *arg)
{
    ppx_pool *p;
    int rc = pin_pending(f, cb != NULL, &p);
    if (rc)
        return rc < 0 ? rc : 0; /* resolved: its callbacks have run or are running */
    rc = remove_callbacks(p, f, cb, arg);
    ppx__future_unpin(f);
    return rc;
}

int ppx_future_on_progress(ppx_future *f, ppx_progress_future_cb cb, void *arg)
{
    ppx_pool *p;
    int rc = pin_pending(f, cb != NULL, &p);
    if (rc)
        return rc < 0 ? rc : PPX_EDONE;
    ppx__pcb *c = malloc(sizeof *c);
    if (!c)
        rc = PPX_ENOMEM;
    if (c) {
        c->cb = cb;
        c->arg = arg;
        atomic_init(&c->next, NULL);
        ppx__pool_lock(p);
        ppx__fprog *pr = NULL;
        if (atomic_load(&f->state) != PPX_PENDING) {
            rc = PPX_EDONE;
        } else if (!(pr = ppx__progress_block(f))) {
            rc = PPX_ENOMEM;
        } else {
            /* Appended (callbacks run in the order added), published
             * with a release store: dispatchers walk it without the lock. */
            ppx__pcb *_Atomic *at = &pr->pcbs;
            ppx__pcb *cur;
            while ((cur = atomic_load_explicit(at, memory_order_relaxed)))
                at = &cur->next;
            atomic_store_explicit(at, c, memory_order_release);
            c = NULL;
        }
        ppx__pool_unlock(p);
        free(c);
    }
    ppx__future_unpin(f);
    return rc;
}

int ppx_future_progress(const ppx_future *f, uint64_t *done, uint64_t *total)
{
    if (!live(f))
        return PPX_EBADOBJ;
    if (!done || !total)
        return PPX_EINVAL;
    ppx__progress_read(f, done, total);
    return 0;
}
