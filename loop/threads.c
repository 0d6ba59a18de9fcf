/*
 * The thread-pool executor: the same registered functions, run on libuv's
 * thread pool (uv_queue_work) instead of in a worker process, for work
 * that blocks on I/O rather than burns CPU. No isolation: a crash here is
 * the application's crash. ppx_run_in_executor(loop, ppx_thread_pool(),
 * ...) takes this path, as asyncio's run_in_executor serves both kinds.
 *
 * The function reads its arguments and reports through the same ppx_call
 * as in a worker; ppx_call_cancelled() turns true when the awaitable is
 * cancelled while it runs. Its ppx_call_progress writes the call's own
 * slot, which the loop's thread reads every PROGRESS_TICK_MS while a
 * progress callback is set (a timer, not a wake-up per report: the
 * function pays four stores), and once more before the awaitable
 * settles.
 */
#include "awaitable.h"
#include "procpool/worker/call.h"
#include "procpool/registry.h"
#include "../serialize/mpread.h"

#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define PROGRESS_TICK_MS 20

typedef struct thread_call {
    uv_work_t req;
    ppx_awaitable *aw;
    /* A copy: registering more functions (allowed until a process pool
     * freezes the registry) moves the table's entries, not their names. */
    ppx__entry e;
    unsigned char *args;
    size_t args_len;
    ppx__slot slot;          /* its cancel flag and progress words */
    uv_timer_t tick;         /* the look at progress, once a callback is set */
    bool ticking, finished;
    uint32_t told_seq;       /* the progress seq last told */
    msgpack_sbuffer ret;
    bool has_ret, raised;
    int rc;
    char type[256], where[256];
    char *message;
    ppx_error err; /* the call's, once it failed or was cancelled */
} thread_call;

/* The object behind ppx_thread_pool(): zeros, so the pool functions'
 * magic check refuses it (PPX_EBADOBJ) without reading past its end. */
static uint64_t thread_pool_tag[64];

ppx_pool *ppx_thread_pool(void)
{
    return (ppx_pool *)(void *)thread_pool_tag;
}

static void work(uv_work_t *req)
{
    thread_call *tc = req->data;
    ppx_call call;
    if (ppx__call_init(&call, 0, tc->e.name, tc->e.len,
                       (ppx_value){tc->args, tc->args_len}, &tc->slot, &tc->ret)) {
        tc->rc = PPX_EMALFORMED;
        return;
    }
    tc->rc = tc->e.fn(&call, tc->e.udata);
    tc->has_ret = call.has_ret;
    tc->raised = call.raised;
    if (call.raised) {
        memcpy(tc->type, call.type, sizeof tc->type);
        memcpy(tc->where, call.where, sizeof tc->where);
        tc->message = call.message; /* ours now */
        call.message = NULL;
    }
    ppx__call_destroy(&call);
}

/* On the loop's thread: tells aw's progress callback what the function
 * last reported, if that changed (the function's own seqlock, shared.h). */
static void tell_progress(thread_call *tc)
{
    uint32_t seq = atomic_load_explicit(&tc->slot.progress_seq, memory_order_acquire);
    if (seq == tc->told_seq || (seq & 1))
        return;
    uint64_t done = atomic_load_explicit(&tc->slot.progress_done, memory_order_relaxed);
    uint64_t total = atomic_load_explicit(&tc->slot.progress_total, memory_order_relaxed);
    atomic_thread_fence(memory_order_acquire);
    if (atomic_load_explicit(&tc->slot.progress_seq, memory_order_relaxed) != seq)
        return;
    tc->told_seq = seq;
    if (total && done > total)
        done = total;
    ppx__progress(tc->aw, (size_t)done, (size_t)total);
}

static void on_tick(uv_timer_t *h)
{
    tell_progress(h->data);
}

static void tick_closed(uv_handle_t *h)
{
    thread_call *tc = h->data;
    ppx_awaitable_unref(tc->aw); /* the timer's */
}

/* Starts the look at a running call's progress once a progress
 * callback is set. */
static int watch_progress(ppx_awaitable *aw)
{
    thread_call *tc = aw->impl;
    if (!tc->aw || tc->ticking || tc->finished)
        return 0; /* not running, or watched already */
    if (uv_timer_init(aw->loop, &tc->tick))
        return PPX_ENOMEM; /* it cannot fail otherwise */
    tc->tick.data = tc;
    tc->ticking = true;
    ppx_awaitable_ref(aw); /* the timer's, until it is closed */
    uv_timer_start(&tc->tick, on_tick, PROGRESS_TICK_MS, PROGRESS_TICK_MS);
    uv_unref((uv_handle_t *)&tc->tick); /* the work keeps the loop alive */
    return 0;
}

static void after_work(uv_work_t *req, int status)
{
    thread_call *tc = req->data;
    ppx_awaitable *aw = tc->aw;
    tc->finished = true;
    if (tc->ticking) {
        tc->ticking = false;
        uv_close((uv_handle_t *)&tc->tick, tick_closed);
    }
    if (aw->state == PPX_PENDING && status == 0)
        tell_progress(tc); /* the last values, before it settles */
    if (aw->state == PPX_PENDING) {
        tc->err = (ppx_error){"", "", tc->e.name, "", (long)getpid(), 0, ""};
        if (status != 0) {
            tc->err.type = "RuntimeError";
            tc->err.message = "the thread pool could not run the call";
            ppx__awaitable_settle(aw, PPX_FAILED, &tc->err);
        } else if (tc->raised) {
            tc->err.type = tc->type;
            tc->err.message = tc->message ? tc->message : "";
            tc->err.where = tc->where;
            ppx__awaitable_settle(aw, PPX_FAILED, &tc->err);
        } else if (tc->rc == PPX_ENOMEM) {
            /* A function handing on its ppx_return_*'s ENOMEM: the result
             * could not be built; say so rather than blame the function. */
            tc->err.type = "MemoryError";
            tc->err.message = "no memory for the result (the function returned PPX_ENOMEM)";
            ppx__awaitable_settle(aw, PPX_FAILED, &tc->err);
        } else if (tc->rc != 0) {
            tc->err.type = tc->rc == PPX_EMALFORMED ? "ProtocolError" : "RuntimeError";
            tc->err.message = tc->rc == PPX_EMALFORMED
                                      ? "call arguments are not an array"
                                      : "function returned nonzero without raising an error";
            ppx__awaitable_settle(aw, PPX_FAILED, &tc->err);
        } else {
            if (tc->has_ret) {
                aw->value_len = tc->ret.size;
                aw->value = (unsigned char *)msgpack_sbuffer_release(&tc->ret);
            } else if ((aw->value = malloc(1))) {
                aw->value[0] = 0xc0; /* nil */
                aw->value_len = 1;
            }
            if (aw->value) {
                ppx__awaitable_settle(aw, PPX_DONE, NULL);
            } else {
                tc->err.type = "MemoryError";
                tc->err.message = "no memory for the result";
                ppx__awaitable_settle(aw, PPX_FAILED, &tc->err);
            }
        }
    }
    ppx_awaitable_unref(aw); /* the work's reference */
}

static void cancel(ppx_awaitable *aw)
{
    thread_call *tc = aw->impl;
    atomic_store_explicit(&tc->slot.cancel, 1, memory_order_relaxed);
    uv_cancel((uv_req_t *)&tc->req); /* only if it has not started */
    tc->err = (ppx_error){"CancelledError", "the call was cancelled", tc->e.name, "", 0, 0, ""};
    ppx__awaitable_settle(aw, PPX_CANCELLED, &tc->err);
}

static void release(ppx_awaitable *aw)
{
    thread_call *tc = aw->impl;
    msgpack_sbuffer_destroy(&tc->ret);
    free(tc->message);
    free(tc->args);
    free(tc);
}

static const ppx__aw_ops thread_ops = {cancel, NULL, release, watch_progress, false};

int ppx_run_in_thread(uv_loop_t *loop, const char *fn, const void *args, size_t args_len,
                      ppx_awaitable **out)
{
    if (!loop || !fn || !out)
        return PPX_EINVAL;
    int rc = ppx__mp_call_args(&args, &args_len);
    if (rc)
        return rc;
    const ppx__entry *e = ppx__registry_find(fn, strnlen(fn, 256));
    thread_call *tc = calloc(1, sizeof *tc);
    if (!tc)
        return PPX_ENOMEM;
    ppx_awaitable *aw = ppx__awaitable_new(loop, &thread_ops, tc);
    tc->args = malloc(args_len);
    if (!aw || !tc->args) {
        free(tc->args);
        free(tc);
        free(aw);
        return PPX_ENOMEM;
    }
    *out = aw;
    if (!e) {
        /* As a worker would report it, without a trip to a thread. */
        snprintf(tc->type, sizeof tc->type, "no function named '%.200s' is registered", fn);
        tc->err = (ppx_error){"NameError", tc->type, "", "", 0, 0, ""};
        ppx__awaitable_settle(aw, PPX_FAILED, &tc->err);
        return 0;
    }
    tc->aw = aw;
    tc->e = *e;
    memcpy(tc->args, args, args_len);
    tc->args_len = args_len;
    msgpack_sbuffer_init(&tc->ret);
    tc->req.data = tc;
    ppx_awaitable_ref(aw); /* the work's, dropped in after_work */
    rc = uv_queue_work(loop, &tc->req, work, after_work);
    if (rc) {
        ppx_awaitable_unref(aw);
        tc->err = (ppx_error){"RuntimeError", "uv_queue_work failed", e->name, "", 0, 0, ""};
        ppx__awaitable_settle(aw, PPX_FAILED, &tc->err);
    }
    return 0;
}
