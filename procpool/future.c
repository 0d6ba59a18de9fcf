#include "future.h"
#include "procpool/wire/frame.h"
#include "pool.h"

#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define FUTURE_MAGIC 0x70707846u /* "ppxF" */
#define FUTURE_DEAD 0xdeadf00du

/*
 * Released futures wait in a FIFO quarantine before their memory is used
 * again, so a handle used after its last unref still points at memory we
 * own, marked dead: the call fails with PPX_EBADOBJ instead of reading
 * freed memory. The window is QUARANTINE releases long.
 */
#define QUARANTINE 4096
static pthread_mutex_t quarantine_mu = PTHREAD_MUTEX_INITIALIZER;
static ppx_future *quarantine_head, *quarantine_tail;
static size_t quarantined;
static pthread_once_t quarantine_once = PTHREAD_ONCE_INIT;

/* A fork's child frees futures too: the lock must not be copied held by
 * a thread the child does not have, nor the queue half updated. */
static void quarantine_lock(void) { pthread_mutex_lock(&quarantine_mu); }
static void quarantine_unlock(void) { pthread_mutex_unlock(&quarantine_mu); }
static void quarantine_atfork(void)
{
    pthread_atfork(quarantine_lock, quarantine_unlock, quarantine_unlock);
}

static bool live(const ppx_future *f)
{
    return f && f->magic == FUTURE_MAGIC;
}

static ppx_future *take_memory(void)
{
    pthread_once(&quarantine_once, quarantine_atfork);
    ppx_future *f = NULL;
    pthread_mutex_lock(&quarantine_mu);
    if (quarantined > QUARANTINE) {
        f = quarantine_head;
        quarantine_head = f->notify_next;
        if (!quarantine_head)
            quarantine_tail = NULL;
        quarantined--;
    }
    pthread_mutex_unlock(&quarantine_mu);
    if (f) {
        memset(f, 0, sizeof *f);
        return f;
    }
    return calloc(1, sizeof *f);
}

static void give_back(ppx_future *f)
{
    f->magic = FUTURE_DEAD;
    f->notify_next = NULL;
    pthread_mutex_lock(&quarantine_mu);
    if (quarantine_tail)
        quarantine_tail->notify_next = f;
    else
        quarantine_head = f;
    quarantine_tail = f;
    quarantined++;
    pthread_mutex_unlock(&quarantine_mu);
}

ppx_future *ppx__future_new(ppx_pool *pool, uint64_t id, const char *fn, size_t fn_len,
                            const char *stable_name)
{
    ppx_future *f = take_memory();
    if (!f)
        return NULL;
    if (stable_name) {
        f->function = (char *)stable_name;
    } else {
        f->function = malloc(fn_len + 1);
        if (!f->function) {
            give_back(f);
            return NULL;
        }
        memcpy(f->function, fn, fn_len);
        f->function[fn_len] = '\0';
        f->owns_function = true;
    }
    f->cbs = f->cb_inline;
    f->capcbs = sizeof f->cb_inline / sizeof f->cb_inline[0];
    f->magic = FUTURE_MAGIC;
    atomic_init(&f->refs, 2);
    atomic_init(&f->state, PPX_PENDING);
    atomic_init(&f->pool, pool);
    f->id = id;
    return f;
}

static void enqueue(ppx_future *f, int state, ppx__notify *n)
{
    f->task = NULL;
    /* The state first, then the pool gone, both released: a waiter on
     * another thread that finds no pool (ppx_future_wait returns 0 then)
     * sees the final state too, never PENDING. */
    atomic_store_explicit(&f->state, state, memory_order_release);
    atomic_store_explicit(&f->pool, NULL, memory_order_release);
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
    f->value = len <= sizeof f->value_inline ? f->value_inline : malloc(len);
    if (!f->value) {
        ppx__future_fail(f, "MemoryError", "no memory to hold the result", "", 0, n);
        return;
    }
    memcpy(f->value, value, len);
    f->value_len = len;
    enqueue(f, PPX_DONE, n);
}

void ppx__future_done_adopt(ppx_future *f, void *buf, size_t buf_len, const void *value,
                            size_t len, ppx__notify *n)
{
    f->value_mem = buf;
    f->value_mem_len = buf_len;
    f->value = (unsigned char *)value;
    f->value_len = len;
    enqueue(f, PPX_DONE, n);
}

void ppx__future_fail(ppx_future *f, const char *type, const char *message,
                      const char *where, long pid, ppx__notify *n)
{
    ppx__future_fail_at(f, type, message, where, pid, "", n);
}

void ppx__future_fail_at(ppx_future *f, const char *type, const char *message,
                         const char *where, long pid, const char *node, ppx__notify *n)
{
    /* One block holds every string, so there is one allocation to fail;
     * if it does, static strings still tell the story. */
    size_t lt = strlen(type) + 1, lm = strlen(message) + 1, lw = strlen(where) + 1;
    size_t ln = strlen(node) + 1;
    char *mem = malloc(lt + lm + lw + ln);
    if (mem) {
        memcpy(mem, type, lt);
        memcpy(mem + lt, message, lm);
        memcpy(mem + lt + lm, where, lw);
        memcpy(mem + lt + lm + lw, node, ln);
        f->err.type = mem;
        f->err.message = mem + lt;
        f->err.where = mem + lt + lm;
        f->err.node = mem + lt + lm + lw;
    } else {
        f->err.type = "MemoryError";
        f->err.message = "no memory to hold the error";
        f->err.where = "";
        f->err.node = "";
    }
    f->err_mem = mem;
    f->err.function = f->function;
    f->err.pid = pid;
    f->err.task_id = f->id;
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
    f->err.type = "CancelledError";
    f->err.node = "";
    f->err.message = "the task was cancelled";
    f->err.where = "";
    f->err.function = f->function;
    f->err.pid = 0;
    f->err.task_id = f->id;
    enqueue(f, PPX_CANCELLED, n);
}

void ppx__notify_run(ppx__notify *n)
{
    ppx_future *f = n->head;
    n->head = n->tail = NULL;
    while (f) {
        ppx_future *next = f->notify_next;
        /* Resolved: nobody appends to cbs any more (see add_done_callback). */
        for (size_t i = 0; i < f->ncbs; i++)
            f->cbs[i].cb(f, f->cbs[i].arg);
        if (f->cbs != f->cb_inline)
            free(f->cbs);
        f->cbs = NULL;
        f->ncbs = f->capcbs = 0;
        ppx_future_unref(f);
        f = next;
    }
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
    /* The pool holds a reference while f is unresolved, so f is resolved. */
    if (f->owns_function)
        free(f->function);
    if (f->value_mem)
        ppx__bigbuf_free(f->value_mem, f->value_mem_len);
    else if (f->value != f->value_inline)
        free(f->value);
    free(f->err_mem);
    if (f->cbs != f->cb_inline)
        free(f->cbs);
    give_back(f);
}

ppx_state ppx_future_state(const ppx_future *f)
{
    if (!live(f))
        return PPX_PENDING;
    int st = atomic_load_explicit(&f->state, memory_order_acquire);
    if (st != PPX_PENDING)
        return (ppx_state)st;
    ppx_pool *p = atomic_load(&((ppx_future *)f)->pool);
    return p ? ppx__pool_task_state(p, (ppx_future *)f) : (ppx_state)atomic_load(&f->state);
}

bool ppx_future_done(const ppx_future *f)
{
    return live(f) && atomic_load_explicit(&f->state, memory_order_acquire) != PPX_PENDING;
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
    if (ppx_future_done(f))
        return 0;
    ppx_pool *p = atomic_load(&f->pool);
    return p ? ppx__pool_wait(p, f, timeout_ms) : 0;
}

int ppx_future_value(const ppx_future *f, ppx_value *out)
{
    if (!live(f) || !out)
        return live(f) ? PPX_EINVAL : PPX_EBADOBJ;
    switch (atomic_load_explicit(&f->state, memory_order_acquire)) {
    case PPX_DONE:
        out->data = f->value;
        out->len = f->value_len;
        return 0;
    case PPX_FAILED:
        return PPX_ETASK;
    case PPX_CANCELLED:
        return PPX_ECANCELED;
    default:
        return PPX_EPENDING;
    }
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
    return st == PPX_FAILED || st == PPX_CANCELLED ? &f->err : NULL;
}

int ppx_future_cancel(ppx_future *f)
{
    if (!live(f))
        return PPX_EBADOBJ;
    ppx_pool *p = atomic_load(&f->pool);
    if (!p || ppx_future_done(f))
        return PPX_EDONE;
    return ppx__pool_cancel(p, f);
}

int ppx_future_add_done_callback(ppx_future *f, ppx_future_cb cb, void *arg)
{
    if (!live(f))
        return PPX_EBADOBJ;
    if (!cb)
        return PPX_EINVAL;
    ppx_pool *p = atomic_load(&f->pool);
    if (p && ppx__pool_check(p) == PPX_EFORKED)
        return PPX_EFORKED; /* pending in the creator: nothing resolves it here */
    if (p) {
        ppx__pool_lock(p);
        if (atomic_load(&f->state) == PPX_PENDING) {
            int rc = 0;
            if (f->ncbs == f->capcbs) {
                size_t ncap = f->capcbs * 2;
                bool inline_now = f->cbs == f->cb_inline;
                ppx__cb *n = realloc(inline_now ? NULL : f->cbs, ncap * sizeof *n);
                if (n) {
                    if (inline_now)
                        memcpy(n, f->cb_inline, sizeof f->cb_inline);
                    f->cbs = n;
                    f->capcbs = ncap;
                } else {
                    rc = PPX_ENOMEM;
                }
            }
            if (rc == 0)
                f->cbs[f->ncbs++] = (ppx__cb){cb, arg};
            ppx__pool_unlock(p);
            return rc;
        }
        ppx__pool_unlock(p);
    }
    cb(f, arg);
    return 0;
}
