/*
 * The endpoints. /ping and /stats are answered on the loop thread;
 * /lucky, /work, /hash and /crash run in the pool (jobs.c) or, with
 * --inline, right here on the loop thread. Every parameter is checked,
 * overflow included, before any work starts.
 */
#include "compute.h"
#include "query.h"
#include "routes.h"

#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
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
} param;

/* Fills ps from the query; unknown names are ignored, a repeated one
 * gives its first value (query_get). Answers 400 and returns false on the first
 * missing or bad parameter. */
static bool parse_params(conn *c, const char *query, size_t len, param *ps, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        char text[32];
        long got = query_get(query, len, ps[i].name, text, sizeof text);
        int64_t v;
        if (got == -1 && !ps[i].required)
            continue;
        if (got == -1) {
            conn_respond_error(c, 400, "BadRequest",
                               "missing parameter '%s': an integer in %" PRId64 "..%" PRId64 "%s",
                               ps[i].name, ps[i].lo, ps[i].hi, ps[i].hint);
            return false;
        }
        if (got < 0 || !query_int(text, (size_t)got, ps[i].hi, &v) || v < ps[i].lo) {
            conn_respond_error(c, 400, "BadRequest",
                               "parameter '%s' must be an integer in %" PRId64 "..%" PRId64 "%s",
                               ps[i].name, ps[i].lo, ps[i].hi, ps[i].hint);
            return false;
        }
        ps[i].value = v;
    }
    return true;
}

/* Packs the arguments and submits; 500 if they cannot be packed. */
static void submit_packed(conn *c, job_kind kind, const char *fn, const char *fmt, ...)
{
    void *args;
    size_t len;
    va_list ap;
    va_start(ap, fmt);
    int rc = ppx_vpack(&args, &len, fmt, ap);
    va_end(ap);
    if (rc) {
        conn_respond_error(c, 500, "MemoryError", "packing the arguments: %s", ppx_strerror(rc));
        return;
    }
    job_submit(c, kind, fn, args, len);
    free(args);
}

/* ---- /lucky and /work ------------------------------------------------------ */

static void lucky_inline(conn *c)
{
    int64_t v;
    const char *type, *message;
    if (lucky_sum(c->n, c->iterations, &v, &type, &message) == 0) {
        respond_lucky(c, v);
        return;
    }
    c->srv->count.jobs_failed++;
    ppx_error e = {.type = type, .message = message, .function = "lucky_number",
                   .where = "", .pid = (long)getpid()};
    respond_task_error(c, 500, &e);
}

static void get_lucky(conn *c, const char *query, size_t len)
{
    param ps[] = {
        {"n", 0, 10, true, 0, " (0 draws n in 1..10)"},
        {"iterations", 0, ITERATIONS_MAX, false, LUCKY_ITERATIONS_DEFAULT, ""},
    };
    if (!parse_params(c, query, len, ps, 2))
        return;
    c->n = ps[0].value;
    c->iterations = ps[1].value;
    /* The sum of i*n for i < iterations is n*it*(it-1)/2: refuse up front
     * what cannot fit in 64 bits (n 0 draws up to 10) instead of running
     * the whole loop to fail with OverflowError. */
    __int128 it = c->iterations, n = c->n ? c->n : 10;
    if (it > 1 && n * it * (it - 1) / 2 > INT64_MAX) {
        conn_respond_error(c, 400, "BadRequest",
                           "the sum for n=%" PRId64 " and iterations=%" PRId64
                           " would not fit in 64 bits",
                           c->n, c->iterations);
        return;
    }
    if (c->srv->inline_mode) {
        c->srv->count.jobs_started++;
        lucky_inline(c);
        return;
    }
    submit_packed(c, JOB_LUCKY, "lucky_number", "llnn", (long long)c->iterations, (long long)c->n);
}

static void get_work(conn *c, const char *query, size_t len)
{
    param ps[] = {{"iterations", 0, ITERATIONS_MAX, true, 0, ""}};
    if (!parse_params(c, query, len, ps, 1))
        return;
    c->n = 0;
    c->iterations = ps[0].value;
    if (!c->srv->inline_mode) {
        submit_packed(c, JOB_WORK, "work", "l", (long long)c->iterations);
        return;
    }
    c->srv->count.jobs_started++;
    uint64_t u = 0;
    work_sum(c->iterations, NULL, NULL, &u);
    respond_work(c, u);
}

/* ---- /hash and /crash ------------------------------------------------------ */

#define HASH_TEXT_MAX 256
#define HASH_MEM_MAX (INT64_C(64) << 20) /* 128*N*r: scrypt's big array */

/* /hash's own error shape, shared with bench/offload's peers. */
static void hash_error(conn *c, const char *message)
{
    jbuf b = {0};
    jbuf_printf(&b, "{\"error\":");
    jbuf_str(&b, message);
    jbuf_printf(&b, "}");
    respond_buf(c, 400, &b);
}

/* password or salt: required, 1..256 bytes once percent-decoded. */
static long hash_text(conn *c, const char *query, size_t len, const char *name, char *out)
{
    long got = query_get(query, len, name, out, HASH_TEXT_MAX);
    if (got < 1) {
        char msg[96];
        snprintf(msg, sizeof msg, "%s is required: 1..%d bytes, percent-encoded", name,
                 HASH_TEXT_MAX);
        hash_error(c, msg);
    }
    return got;
}

/* One of N, r, p, len: its default when absent, else checked in lo..hi. */
static bool hash_int(conn *c, const char *query, size_t len, const char *name, int64_t lo,
                     int64_t hi, int64_t *v)
{
    char text[32], msg[96];
    long got = query_get(query, len, name, text, sizeof text);
    if (got == -1)
        return true;
    if (got >= 0 && query_int(text, (size_t)got, hi, v) && *v >= lo)
        return true;
    snprintf(msg, sizeof msg, "%s must be an integer in %" PRId64 "..%" PRId64, name, lo, hi);
    hash_error(c, msg);
    return false;
}

static void get_hash(conn *c, const char *query, size_t len)
{
    char password[HASH_TEXT_MAX], salt[HASH_TEXT_MAX];
    long plen = hash_text(c, query, len, "password", password);
    if (plen < 1)
        return;
    long slen = hash_text(c, query, len, "salt", salt);
    if (slen < 1)
        return;
    int64_t N = 16384, r = 8, p = 1, hlen = 32;
    if (!hash_int(c, query, len, "N", 2, 1048576, &N) || !hash_int(c, query, len, "r", 1, 32, &r) ||
        !hash_int(c, query, len, "p", 1, 16, &p) ||
        !hash_int(c, query, len, "len", 1, HASH_LEN_MAX, &hlen))
        return;
    if (N & (N - 1))
        return hash_error(c, "N must be a power of two in 2..1048576");
    if (128 * N * r > HASH_MEM_MAX)
        return hash_error(c, "128*N*r must be at most 67108864 (64 MiB)");
    c->hash_n = N;
    c->hash_r = r;
    c->hash_p = p;
    if (!c->srv->inline_mode) {
        submit_packed(c, JOB_HASH, "hash", "SSllll", password, (size_t)plen, salt, (size_t)slen,
                      (long long)N, (long long)r, (long long)p, (long long)hlen);
        return;
    }
    c->srv->count.jobs_started++;
    hash_params hp = {(uint64_t)N, (uint64_t)r, (uint64_t)p, (size_t)hlen};
    unsigned char out[HASH_LEN_MAX];
    if (hash_scrypt(password, (size_t)plen, salt, (size_t)slen, &hp, out) == 0)
        respond_hash(c, out, hp.len);
    else
        conn_respond_error(c, 500, "ValueError", "EVP_PBE_scrypt failed");
}

static void get_crash(conn *c, const char *query, size_t len)
{
    (void)query;
    (void)len;
    if (c->srv->inline_mode) {
        /* The loop thread is the server: there is no worker to lose. */
        conn_respond_error(c, 400, "BadRequest", "/crash needs a pool: not with --inline");
        return;
    }
    submit_packed(c, JOB_CRASH, "crash", "");
}

/* ---- the loop thread's own ------------------------------------------------- */

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
    stats_respond(c);
}

static const struct route {
    const char *path;
    void (*get)(conn *c, const char *query, size_t len);
} routes[] = {
    {"/ping", get_ping}, {"/lucky", get_lucky}, {"/work", get_work},
    {"/hash", get_hash}, {"/crash", get_crash}, {"/stats", get_stats},
};

/* Splits an origin-form target ("/path?query") at '?'; false for any
 * other form (absolute URLs, "*"). */
static bool split_target(const char *url, size_t len, size_t *plen, const char **query,
                         size_t *qlen)
{
    if (len == 0 || url[0] != '/')
        return false;
    const char *q = memchr(url, '?', len);
    const char *hash = memchr(url, '#', len);
    if (hash)
        return false; /* a fragment is never sent by a client */
    *plen = q ? (size_t)(q - url) : len;
    *query = q ? q + 1 : "";
    *qlen = q ? len - *plen - 1 : 0;
    return true;
}

void route_request(conn *c)
{
    size_t plen, qlen;
    const char *query;
    if (!split_target(c->url, c->url_len, &plen, &query, &qlen)) {
        conn_respond_error(c, 400, "BadRequest", "the request target is not a valid URL");
        return;
    }
    const char *path = c->url;
    for (size_t i = 0; i < sizeof routes / sizeof routes[0]; i++) {
        if (strlen(routes[i].path) != plen || memcmp(routes[i].path, path, plen) != 0)
            continue;
        int m = llhttp_get_method(&c->parser);
        if (m != HTTP_GET && m != HTTP_HEAD) {
            conn_respond_error(c, 405, "BadRequest", "%s takes GET or HEAD, not %s",
                               routes[i].path, llhttp_method_name((llhttp_method_t)m));
            return;
        }
        routes[i].get(c, query, qlen);
        return;
    }
    conn_respond_error(c, 404, "BadRequest",
                       "no endpoint %.*s: try /ping, /lucky, /work, /hash, /crash, /stats",
                       (int)plen, path);
}
