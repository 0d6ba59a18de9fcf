/*
 * Jobs in the pool: admission (--max-jobs), deadline (--job-timeout-ms,
 * ppx's per-call timeout), and the answer written from the awaitable's
 * done callback. The responses are shared with --inline.
 */
#include "routes.h"

#include <inttypes.h>
#include <string.h>

void respond_buf(conn *c, int status, jbuf *b)
{
    if (b->oom)
        conn_respond_error(c, 500, "MemoryError", "out of memory");
    else
        conn_respond(c, status, b->text, b->len);
    jbuf_free(b);
}

void respond_task_error(conn *c, int status, const ppx_error *e)
{
    jbuf b = {0};
    jbuf_printf(&b, "{\"error\":{\"type\":");
    jbuf_str(&b, e->type);
    jbuf_printf(&b, ",\"message\":");
    jbuf_str(&b, e->message);
    jbuf_printf(&b, ",\"function\":");
    jbuf_str(&b, e->function);
    jbuf_printf(&b, ",\"pid\":%ld}}\n", e->pid);
    respond_buf(c, status, &b);
}

void respond_lucky(conn *c, int64_t value)
{
    jbuf b = {0};
    jbuf_printf(&b, "{\"n\":%" PRId64 ",\"value\":%" PRId64 "}\n", c->n, value);
    respond_buf(c, 200, &b);
}

void respond_work(conn *c, uint64_t value)
{
    jbuf b = {0};
    jbuf_printf(&b, "{\"iterations\":%" PRId64 ",\"value\":%" PRIu64 "}\n", c->iterations,
                value);
    respond_buf(c, 200, &b);
}

/* The contract shared with bench/offload's peers, byte for byte: no
 * spaces, no newline. */
void respond_hash(conn *c, const unsigned char *hash, size_t len)
{
    jbuf b = {0};
    jbuf_printf(&b, "{\"hash\":\"");
    for (size_t i = 0; i < len; i++)
        jbuf_printf(&b, "%02x", hash[i]);
    jbuf_printf(&b, "\",\"N\":%" PRId64 ",\"r\":%" PRId64 ",\"p\":%" PRId64 "}", c->hash_n,
                c->hash_r, c->hash_p);
    respond_buf(c, 200, &b);
}

static void respond_value(conn *c, ppx_value v)
{
    int64_t i;
    uint64_t u;
    const void *bin;
    size_t len;
    if (c->kind == JOB_LUCKY && ppx_value_int(v, &i) == 0)
        respond_lucky(c, i);
    else if (c->kind == JOB_WORK && ppx_value_uint(v, &u) == 0)
        respond_work(c, u);
    else if (c->kind == JOB_HASH && ppx_value_bin(v, &bin, &len) == 0)
        respond_hash(c, bin, len);
    else
        conn_respond_error(c, 500, "TypeError", "the worker returned an unexpected value");
}

static void on_job_done(ppx_awaitable *aw, void *arg)
{
    conn *c = arg;
    server *s = c->srv;
    c->job = NULL;
    s->count.in_flight--;
    const ppx_error *e = ppx_awaitable_error(aw);
    ppx_value v;
    ppx_state st = ppx_awaitable_state(aw);
    if (st == PPX_DONE && ppx_awaitable_value(aw, &v) == 0) {
        respond_value(c, v);
    } else if (e && strcmp(e->type, "TimeoutError") == 0) {
        s->count.jobs_timed_out++;
        respond_task_error(c, 504, e);
    } else if (st == PPX_FAILED) {
        /* A raised error, or WorkerCrashed: the worker died (the pool
         * starts another) and the message names the signal. */
        s->count.jobs_failed++;
        respond_task_error(c, 500, e);
    } else if (e) {
        /* Cancelled: the peer left or the server stops, so this is only
         * written if something else cancelled it. */
        respond_task_error(c, 503, e);
    } else {
        conn_respond_error(c, 503, "CancelledError", "the job was cancelled");
    }
    ppx_awaitable_unref(aw);
    conn_job_finished(c);
}

static void refuse_job(conn *c)
{
    c->srv->count.jobs_refused++;
    static const char body[] = "{\"error\":{\"type\":\"ServiceUnavailable\","
                               "\"message\":\"the job queue is full\"}}\n";
    conn_respond_ex(c, 503, "Retry-After: 1\r\n", body, sizeof body - 1);
}

void job_submit(conn *c, job_kind kind, const char *fn, const void *args, size_t len)
{
    server *s = c->srv;
    if (s->count.in_flight >= (uint64_t)s->lim.max_jobs) {
        refuse_job(c);
        return;
    }
    ppx_call_options opts = PPX_CALL_OPTIONS(
        .timeout_ms = s->lim.job_timeout_ms > 0 ? s->lim.job_timeout_ms : -1);
    ppx_awaitable *aw;
    int rc = ppx_run_in_executor_ex(s->loop, s->pool, fn, args, len, &opts, &aw);
    if (rc) {
        conn_respond_error(c, 503, "ServiceUnavailable", "could not submit the job: %s",
                           ppx_strerror(rc));
        return;
    }
    c->job = aw;
    c->kind = kind;
    s->count.in_flight++;
    s->count.jobs_started++;
    /* An already resolved awaitable runs the callback before this returns. */
    rc = ppx_awaitable_add_done_callback(aw, on_job_done, c);
    if (rc) {
        c->job = NULL;
        s->count.in_flight--;
        ppx_awaitable_cancel(aw);
        ppx_awaitable_unref(aw);
        conn_respond_error(c, 503, "ServiceUnavailable", "could not watch the job: %s",
                           ppx_strerror(rc));
    }
}

void route_cancel_job(conn *c)
{
    if (c->job && ppx_awaitable_cancel(c->job) == 0)
        c->srv->count.jobs_cancelled++;
}
