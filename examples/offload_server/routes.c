/*
 * The endpoints. /ping and /stats are answered on the loop thread; /lucky
 * and /work run in the pool and are answered from the awaitable's done
 * callback, or, with --inline, computed right here on the loop thread.
 */
#include "compute.h"
#include "json.h"
#include "server.h"

#include <inttypes.h>
#include <string.h>
#include <unistd.h>

#define ITERATIONS_MAX INT64_C(100000000000) /* 10^11: about a minute */
#define LUCKY_ITERATIONS_DEFAULT INT64_C(1000000)

typedef struct param {
    const char *name;
    int64_t lo, hi;
    bool required;
    int64_t value;    /* the default until found */
    const char *hint; /* appended to error messages */
    bool seen;
} param;

/* Parses one decimal value: digits only, no sign, no spaces. */
static bool parse_value(const char *s, size_t len, int64_t hi, int64_t *out)
{
    if (len == 0 || len > 19)
        return false;
    int64_t v = 0;
    for (size_t i = 0; i < len; i++) {
        if (s[i] < '0' || s[i] > '9')
            return false;
        v = v * 10 + (s[i] - '0');
    }
    *out = v;
    return v <= hi;
}

/* Fills ps from query (len bytes, "a=1&b=2"); unknown names are ignored,
 * a repeated one keeps its last value. Answers 400 and returns false on
 * the first missing or bad parameter. */
static bool parse_query(conn *c, const char *query, size_t len, param *ps, size_t n)
{
    const char *end = query + len;
    for (const char *p = query; p < end;) {
        const char *amp = memchr(p, '&', (size_t)(end - p));
        const char *stop = amp ? amp : end;
        const char *eq = memchr(p, '=', (size_t)(stop - p));
        const char *vstart = eq ? eq + 1 : stop;
        size_t klen = (size_t)((eq ? eq : stop) - p);
        for (size_t i = 0; i < n; i++) {
            if (strlen(ps[i].name) != klen || memcmp(ps[i].name, p, klen) != 0)
                continue;
            int64_t v;
            if (!parse_value(vstart, (size_t)(stop - vstart), ps[i].hi, &v) || v < ps[i].lo) {
                conn_respond_error(c, 400, "BadRequest",
                                   "parameter '%s' must be an integer in %" PRId64 "..%" PRId64
                                   "%s",
                                   ps[i].name, ps[i].lo, ps[i].hi, ps[i].hint);
                return false;
            }
            ps[i].value = v;
            ps[i].seen = true;
        }
        if (!amp)
            break;
        p = amp + 1;
    }
    for (size_t i = 0; i < n; i++) {
        if (ps[i].required && !ps[i].seen) {
            conn_respond_error(c, 400, "BadRequest",
                               "missing parameter '%s': an integer in %" PRId64 "..%" PRId64 "%s",
                               ps[i].name, ps[i].lo, ps[i].hi, ps[i].hint);
            return false;
        }
    }
    return true;
}

/* Sends b as the body and frees it. */
static void respond_buf(conn *c, int status, jbuf *b)
{
    if (b->oom)
        conn_respond_error(c, 500, "MemoryError", "out of memory");
    else
        conn_respond(c, status, b->text, b->len);
    jbuf_free(b);
}

/* A task's failure, as the issue asks: its type, message, function and pid. */
static void respond_task_error(conn *c, int status, const ppx_error *e)
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

static void respond_lucky(conn *c, int64_t value)
{
    jbuf b = {0};
    jbuf_printf(&b, "{\"n\":%" PRId64 ",\"value\":%" PRId64 "}\n", c->n, value);
    respond_buf(c, 200, &b);
}

static void respond_work(conn *c, uint64_t value)
{
    jbuf b = {0};
    jbuf_printf(&b, "{\"iterations\":%" PRId64 ",\"value\":%" PRIu64 "}\n", c->iterations,
                value);
    respond_buf(c, 200, &b);
}

/* ---- jobs in the pool ------------------------------------------------------ */

static void on_job_done(ppx_awaitable *aw, void *arg)
{
    conn *c = arg;
    server *s = c->srv;
    c->job = NULL;
    s->count.in_flight--;
    const ppx_error *e = ppx_awaitable_error(aw);
    ppx_value v;
    int64_t i;
    uint64_t u;
    bool have = ppx_awaitable_value(aw, &v) == 0;
    switch (ppx_awaitable_state(aw)) {
    case PPX_DONE:
        if (have && c->kind == JOB_LUCKY && ppx_value_int(v, &i) == 0)
            respond_lucky(c, i);
        else if (have && c->kind == JOB_WORK && ppx_value_uint(v, &u) == 0)
            respond_work(c, u);
        else
            conn_respond_error(c, 500, "TypeError", "the worker returned an unexpected value");
        break;
    case PPX_FAILED:
        s->count.jobs_failed++;
        respond_task_error(c, 500, e);
        break;
    default:
        /* Cancelled: the peer left or the server stops, so this is only
         * written if something else cancelled it. */
        if (e)
            respond_task_error(c, 503, e);
        else
            conn_respond_error(c, 503, "CancelledError", "the job was cancelled");
        break;
    }
    ppx_awaitable_unref(aw);
    conn_job_finished(c);
}

static void start_job(conn *c, job_kind kind, int64_t n, int64_t iterations)
{
    server *s = c->srv;
    ppx_awaitable *aw;
    int rc = kind == JOB_LUCKY
                 ? ppx_run_in_executorf(s->loop, s->pool, &aw, "lucky_number", "llnn",
                                        (long long)iterations, (long long)n)
                 : ppx_run_in_executorf(s->loop, s->pool, &aw, "work", "l", (long long)iterations);
    if (rc) {
        conn_respond_error(c, 503, "ServiceUnavailable", "could not submit the job: %s",
                           ppx_strerror(rc));
        return;
    }
    c->job = aw;
    c->kind = kind;
    c->n = n;
    c->iterations = iterations;
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

/* ---- the same jobs on the loop thread ----------------------------------- */

static void run_inline(conn *c, job_kind kind, int64_t n, int64_t iterations)
{
    c->kind = kind;
    c->n = n;
    c->iterations = iterations;
    c->srv->count.jobs_started++;
    if (kind == JOB_WORK) {
        uint64_t u = 0;
        work_sum(iterations, NULL, NULL, &u);
        respond_work(c, u);
        return;
    }
    int64_t v;
    const char *type, *message;
    if (lucky_sum(n, iterations, &v, &type, &message) == 0) {
        respond_lucky(c, v);
        return;
    }
    c->srv->count.jobs_failed++;
    ppx_error e = {.type = type, .message = message, .function = "lucky_number",
                   .where = "", .pid = (long)getpid()};
    respond_task_error(c, 500, &e);
}

/* ---- endpoints ------------------------------------------------------------- */

static void get_lucky(conn *c, const char *query, size_t len)
{
    param ps[] = {
        {"n", 0, 10, true, 0, " (0 draws n in 1..10)", false},
        {"iterations", 0, ITERATIONS_MAX, false, LUCKY_ITERATIONS_DEFAULT, "", false},
    };
    if (!parse_query(c, query, len, ps, 2))
        return;
    if (c->srv->inline_mode)
        run_inline(c, JOB_LUCKY, ps[0].value, ps[1].value);
    else
        start_job(c, JOB_LUCKY, ps[0].value, ps[1].value);
}

static void get_work(conn *c, const char *query, size_t len)
{
    param ps[] = {{"iterations", 0, ITERATIONS_MAX, true, 0, "", false}};
    if (!parse_query(c, query, len, ps, 1))
        return;
    if (c->srv->inline_mode)
        run_inline(c, JOB_WORK, 0, ps[0].value);
    else
        start_job(c, JOB_WORK, 0, ps[0].value);
}

static void get_ping(conn *c, const char *query, size_t len)
{
    (void)query;
    (void)len;
    static const char body[] = "{\"pong\":true}\n";
    conn_respond(c, 200, body, sizeof body - 1);
}

static void get_stats(conn *c, const char *query, size_t len)
{
    (void)query;
    (void)len;
    server *s = c->srv;
    const server_counters *k = &s->count;
    jbuf b = {0};
    jbuf_printf(&b,
                "{\"mode\":\"%s\",\"server\":{\"requests\":%" PRIu64 ",\"in_flight\":%" PRIu64
                ",\"connections\":%" PRIu64 ",\"jobs_started\":%" PRIu64
                ",\"jobs_failed\":%" PRIu64 ",\"jobs_cancelled\":%" PRIu64
                ",\"client_disconnects\":%" PRIu64 "},",
                s->inline_mode ? "inline" : "ppx", k->requests, k->in_flight, k->connections,
                k->jobs_started, k->jobs_failed, k->jobs_cancelled, k->client_disconnects);
    if (!s->pool) {
        /* --inline never creates a pool. */
        jbuf_printf(&b, "\"pool\":null}\n");
        respond_buf(c, 200, &b);
        return;
    }
    ppx_pool_stats st = PPX_POOL_STATS_INIT; /* zeros if the pool cannot be read */
    (void)ppx_pool_stats_get(s->pool, &st);
    int workers = ppx_pool_workers(s->pool);
    jbuf_printf(&b, "\"pool\":{\"workers\":%d,\"worker_pids\":[", workers);
    for (int i = 0; i < workers; i++)
        jbuf_printf(&b, "%s%ld", i ? "," : "", ppx_pool_worker_pid(s->pool, i));
    jbuf_printf(&b,
                "],\"submitted\":%" PRIu64 ",\"completed\":%" PRIu64 ",\"failed\":%" PRIu64
                ",\"cancelled\":%" PRIu64 ",\"crashed\":%" PRIu64 ",\"respawns\":%" PRIu64
                ",\"killed\":%" PRIu64 ",\"stolen\":%" PRIu64 ",\"timed_out\":%" PRIu64
                ",\"recycled\":%" PRIu64 ",\"init_failures\":%" PRIu64
                ",\"crash_streak\":%" PRIu64 ",\"queued\":%" PRIu64 ",\"running\":%" PRIu64
                ",\"arena_used\":%" PRIu64 ",\"arena_calls\":%" PRIu64 "}}\n",
                st.submitted, st.completed, st.failed, st.cancelled, st.crashed, st.respawns,
                st.killed, st.stolen, st.timed_out, st.recycled, st.init_failures,
                st.crash_streak, st.queued, st.running, st.arena_used, st.arena_calls);
    respond_buf(c, 200, &b);
}

static const struct route {
    const char *path;
    void (*get)(conn *c, const char *query, size_t len);
} routes[] = {
    {"/ping", get_ping},
    {"/lucky", get_lucky},
    {"/work", get_work},
    {"/stats", get_stats},
};

void route_request(conn *c)
{
    struct http_parser_url u;
    http_parser_url_init(&u);
    if (http_parser_parse_url(c->url, c->url_len, 0, &u) != 0 || !(u.field_set & (1 << UF_PATH))) {
        conn_respond_error(c, 400, "BadRequest", "the request target is not a valid URL");
        return;
    }
    const char *path = c->url + u.field_data[UF_PATH].off;
    size_t plen = u.field_data[UF_PATH].len;
    const char *query = "";
    size_t qlen = 0;
    if (u.field_set & (1 << UF_QUERY)) {
        query = c->url + u.field_data[UF_QUERY].off;
        qlen = u.field_data[UF_QUERY].len;
    }
    for (size_t i = 0; i < sizeof routes / sizeof routes[0]; i++) {
        if (strlen(routes[i].path) != plen || memcmp(routes[i].path, path, plen) != 0)
            continue;
        if (c->parser.method != HTTP_GET) {
            conn_respond_error(c, 405, "BadRequest", "%s takes GET, not %s", routes[i].path,
                               http_method_str((enum http_method)c->parser.method));
            return;
        }
        routes[i].get(c, query, qlen);
        return;
    }
    conn_respond_error(c, 404, "BadRequest", "no endpoint %.*s: try /ping, /lucky, /work, /stats",
                       (int)plen, path);
}
