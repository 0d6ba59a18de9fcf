/*
 * A lazy, bounded map: inputs are pulled from a callback only as calls
 * complete, so at most max_in_flight calls (and their results) exist at
 * any time, whatever the length of the input. Python's Executor.map
 * submits everything first; this never does.
 *
 * Results are handed to on_result in input order. A window of
 * max_in_flight slots holds the calls between the oldest undelivered one
 * and the newest submitted; a result that finishes early waits in its
 * slot until those before it are delivered.
 */
#include "awaitable.h"
#include "../procpool/pool.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct lazy_map {
    ppx_awaitable *aw;
    uv_loop_t *loop;
    ppx_pool *pool;
    char *fn;
    ppx_map_next_fn next;
    ppx_map_result_fn on_result;
    void *arg;
    size_t window;
    ppx_awaitable **slots; /* slots[i % window]: call i, head <= i < tail */
    uint64_t head, tail;   /* oldest undelivered, next to submit */
    bool exhausted;        /* next() said there is no more */
    bool stopping;         /* failed or cancelled: pull and deliver no more */
    bool pumping;          /* pump() is on the stack */
    ppx_error err;         /* the map's, once it failed or was cancelled */
    char msg[160];         /* err's message */
    ppx_awaitable *failed; /* holds the strings err points at */
} lazy_map;

static void fail(lazy_map *m, const char *type, const char *fmt, int code)
{
    ppx_awaitable *aw = m->aw;
    snprintf(m->msg, sizeof m->msg, fmt, code, ppx_strerror(code));
    m->err = (ppx_error){type, m->msg, m->fn, "", 0, 0, ""};
    m->stopping = true;
    ppx__awaitable_settle(aw, PPX_FAILED, &m->err);
}

static void cancel_window(lazy_map *m)
{
    for (uint64_t i = m->head; i < m->tail; i++) {
        ppx_awaitable *c = m->slots[i % m->window];
        if (c && !ppx_awaitable_done(c))
            ppx_awaitable_cancel(c);
    }
}

static void on_call(ppx_awaitable *call, void *arg);

/* Delivers what is ready in order, then tops the window up. Re-entrant
 * calls (a call that settles while being submitted) only set the stage:
 * the outer pump does the work. */
static void pump(lazy_map *m)
{
    if (m->pumping)
        return;
    m->pumping = true;
    ppx_awaitable *aw = m->aw;
    ppx_awaitable_ref(aw);
    for (;;) {
        while (!m->stopping && m->head < m->tail &&
               ppx_awaitable_done(m->slots[m->head % m->window])) {
            ppx_awaitable *c = m->slots[m->head % m->window];
            m->slots[m->head % m->window] = NULL;
            uint64_t i = m->head++;
            if (ppx_awaitable_state(c) == PPX_FAILED || ppx_awaitable_state(c) == PPX_CANCELLED) {
                m->err = *ppx_awaitable_error(c);
                ppx_awaitable_ref(c);
                m->failed = c;
                m->stopping = true;
                ppx__awaitable_settle(aw, PPX_FAILED, &m->err);
                cancel_window(m);
            } else {
                if (m->on_result)
                    m->on_result((size_t)i, c, m->arg);
                ppx__progress(aw, (size_t)m->head, 0);
            }
            ppx_awaitable_unref(c);
        }
        if (m->stopping || m->exhausted || m->tail - m->head >= m->window)
            break;
        const void *args = NULL;
        size_t len = 0;
        int rc = m->next((size_t)m->tail, &args, &len, m->arg);
        if (m->stopping)
            break; /* next() cancelled the map: its input goes nowhere */
        if (rc == 0) {
            m->exhausted = true;
            break;
        }
        if (rc < 0) {
            fail(m, "InputError", "the input callback failed with %d (%s)", rc);
            cancel_window(m);
            break;
        }
        ppx_awaitable *c;
        rc = ppx_run_in_executor(m->loop, m->pool, m->fn, args, len, &c);
        if (rc) {
            fail(m, "SubmitError", "submitting failed with %d (%s)", rc);
            cancel_window(m);
            break;
        }
        m->slots[m->tail++ % m->window] = c;
        ppx_awaitable_ref(aw); /* this call's callback */
        rc = ppx_awaitable_add_done_callback(c, on_call, m);
        if (rc) {
            /* Nothing would pump when c ends: the map would stall. */
            ppx_awaitable_unref(aw);
            fail(m, "SubmitError", "watching a call failed with %d (%s)", rc);
            cancel_window(m);
            break;
        }
    }
    if (aw->state == PPX_PENDING && !m->stopping && m->exhausted && m->head == m->tail)
        ppx__awaitable_settle_uint(aw, m->tail);
    m->pumping = false;
    ppx_awaitable_unref(aw);
}

static void on_call(ppx_awaitable *call, void *arg)
{
    (void)call;
    lazy_map *m = arg;
    ppx_awaitable *aw = m->aw;
    if (aw->state == PPX_PENDING)
        pump(m);
    ppx_awaitable_unref(aw);
}

static void cancel(ppx_awaitable *aw)
{
    lazy_map *m = aw->impl;
    m->stopping = true;
    m->err = (ppx_error){"CancelledError", "the map was cancelled", "", "", 0, 0, ""};
    ppx__awaitable_settle(aw, PPX_CANCELLED, &m->err);
    cancel_window(m);
}

static void release(ppx_awaitable *aw)
{
    lazy_map *m = aw->impl;
    for (uint64_t i = m->head; i < m->tail; i++)
        ppx_awaitable_unref(m->slots[i % m->window]);
    ppx_awaitable_unref(m->failed);
    free(m->slots);
    free(m->fn);
    free(m);
}

static const ppx__aw_ops lazy_map_ops = {cancel, NULL, release, NULL, true};

int ppx_map_lazy(uv_loop_t *loop, ppx_pool *pool, const char *fn, size_t max_in_flight,
                 ppx_map_next_fn next, ppx_map_result_fn on_result, void *arg,
                 ppx_awaitable **out)
{
    if (!loop || !fn || !next || !out || max_in_flight == 0 || max_in_flight > (1u << 24))
        return PPX_EINVAL;
    int rc = pool ? 0 : ppx__default_pool_get(&pool);
    if (rc == 0 && ppx__pool_check(pool) == PPX_EFORKED) /* a fork's copy */
        rc = PPX_EFORKED;
    if (rc)
        return rc;
    lazy_map *m = calloc(1, sizeof *m);
    if (m) {
        m->slots = calloc(max_in_flight, sizeof *m->slots);
        m->fn = strdup(fn);
    }
    ppx_awaitable *aw = m && m->slots && m->fn ? ppx__awaitable_new(loop, &lazy_map_ops, m) : NULL;
    if (!aw) {
        if (m) {
            free(m->slots);
            free(m->fn);
        }
        free(m);
        return PPX_ENOMEM;
    }
    m->aw = aw;
    m->loop = loop;
    m->pool = pool;
    m->next = next;
    m->on_result = on_result;
    m->arg = arg;
    m->window = max_in_flight;
    *out = aw;
    pump(m);
    return 0;
}
