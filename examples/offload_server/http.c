/*
 * Reading, parsing with llhttp and writing. One request is handled at a
 * time per connection: on_message_complete pauses the parser, so
 * llhttp_execute returns right after each request and the bytes behind it
 * stay in c->in until the answer to this one is queued. Responses are
 * therefore written in request order, which is what HTTP/1.1 pipelining
 * needs. llhttp is built in strict mode (examples/meson.build) and no
 * lenient flag is set: a space before a header's colon, chunk data
 * without its CRLF or a bare LF are errors.
 */
#include "server.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

/* ---- parser callbacks ---------------------------------------------------- */

static int on_message_begin(llhttp_t *p)
{
    conn *c = p->data;
    c->url_len = c->head_len = c->body_len = 0;
    c->field_len = c->value_len = 0;
    c->reject = 0;
    c->expect_continue = false;
    c->head = false;
    c->in_message = true;
    return 0;
}

/* Counts head bytes against HEADERS_MAX; false (431) past it. */
static bool count_head(conn *c, size_t len)
{
    c->head_len += len;
    if (c->head_len > HEADERS_MAX) {
        c->reject = 431;
        return false;
    }
    return true;
}

static int on_url(llhttp_t *p, const char *at, size_t len)
{
    conn *c = p->data;
    if (len > URL_MAX - c->url_len) {
        c->reject = 414;
        return -1;
    }
    memcpy(c->url + c->url_len, at, len);
    c->url_len += len;
    c->url[c->url_len] = '\0';
    return count_head(c, len) ? 0 : -1;
}

/* The version's text, kept to tell "HTTP/9.9" (505) from garbage (400). */
static int on_version(llhttp_t *p, const char *at, size_t len)
{
    conn *c = p->data;
    for (size_t i = 0; i < len && c->value_len < sizeof c->value - 1; i++)
        c->value[c->value_len++] = at[i];
    c->value[c->value_len] = '\0';
    return count_head(c, len) ? 0 : -1;
}

static int on_version_complete(llhttp_t *p)
{
    conn *c = p->data;
    c->value_len = 0;
    /* HTTP/0.9 has no headers and no status line: refuse it (400). */
    if (p->http_major == 0) {
        c->reject = 400;
        return -1;
    }
    if (p->http_major != 1 || p->http_minor > 1) {
        c->reject = 505;
        return -1;
    }
    return 0;
}

/* Appends up to the room in buf (a short header name or value); longer
 * ones are marked by a length past the room and match nothing. */
static void keep_short(char *buf, size_t room, size_t *len, const char *at, size_t n)
{
    for (size_t i = 0; i < n; i++, (*len)++)
        if (*len < room - 1)
            buf[*len] = at[i];
    buf[*len < room - 1 ? *len : room - 1] = '\0';
}

static int on_header_field(llhttp_t *p, const char *at, size_t len)
{
    conn *c = p->data;
    keep_short(c->field, sizeof c->field, &c->field_len, at, len);
    return count_head(c, len) ? 0 : -1;
}

static int on_header_value(llhttp_t *p, const char *at, size_t len)
{
    conn *c = p->data;
    keep_short(c->value, sizeof c->value, &c->value_len, at, len);
    return count_head(c, len) ? 0 : -1;
}

static int on_header_value_complete(llhttp_t *p)
{
    conn *c = p->data;
    if (c->field_len == 6 && strcasecmp(c->field, "expect") == 0) {
        /* Any other expectation cannot be met: RFC 9110 says 417. */
        if (c->value_len != 12 || strcasecmp(c->value, "100-continue") != 0) {
            c->reject = 417;
            return -1;
        }
        c->expect_continue = true;
    }
    c->field_len = c->value_len = 0;
    return 0;
}

static int on_headers_complete(llhttp_t *p)
{
    conn *c = p->data;
    /* "GET /path" without a version is HTTP/0.9 to llhttp: refused too. */
    if (p->http_major == 0) {
        c->reject = 400;
        return -1;
    }
    /* After an Upgrade or CONNECT the bytes are not HTTP any more: answer,
     * then close. */
    c->keep_alive = llhttp_should_keep_alive(p) && !p->upgrade;
    c->head = p->method == HTTP_HEAD;
    /* A body we would refuse is refused before the client sends it. */
    if (p->content_length > BODY_MAX && (p->flags & F_CONTENT_LENGTH)) {
        c->reject = 413;
        return -1;
    }
    if (c->expect_continue && p->http_minor == 1) {
        static const char cont[] = "HTTP/1.1 100 Continue\r\n\r\n";
        conn_write_raw(c, cont, sizeof cont - 1);
    }
    return 0;
}

static int on_body(llhttp_t *p, const char *at, size_t len)
{
    (void)at;
    conn *c = p->data;
    c->body_len += len;
    if (c->body_len > BODY_MAX) {
        c->reject = 413;
        return -1;
    }
    return 0;
}

static int on_message_complete(llhttp_t *p)
{
    conn *c = p->data;
    c->in_message = false;
    return HPE_PAUSED;
}

const llhttp_settings_t http_settings = {
    .on_message_begin = on_message_begin,
    .on_url = on_url,
    .on_version = on_version,
    .on_version_complete = on_version_complete,
    .on_header_field = on_header_field,
    .on_header_value = on_header_value,
    .on_header_value_complete = on_header_value_complete,
    .on_headers_complete = on_headers_complete,
    .on_body = on_body,
    .on_message_complete = on_message_complete,
};

/* ---- reading and parsing --------------------------------------------------- */

/* A request the parser refused: answer it and close. */
static void reject(conn *c, llhttp_errno_t e)
{
    c->keep_alive = false;
    c->srv->count.requests++;
    const char *v = c->value;
    bool numeric_version = c->value_len == 3 && v[0] >= '0' && v[0] <= '9' && v[1] == '.' &&
                           v[2] >= '0' && v[2] <= '9';
    int status = c->reject;
    if (!status && e == HPE_INVALID_VERSION && numeric_version)
        status = 505;
    switch (status) {
    case 414:
        conn_respond_error(c, 414, "BadRequest", "the URL is longer than %d bytes", URL_MAX);
        break;
    case 413:
        conn_respond_error(c, 413, "BadRequest", "the body is longer than %d bytes", BODY_MAX);
        break;
    case 431:
        conn_respond_error(c, 431, "BadRequest",
                           "the request line and headers are longer than %d bytes", HEADERS_MAX);
        break;
    case 417:
        conn_respond_error(c, 417, "BadRequest", "the only expectation met is 100-continue");
        break;
    case 505:
        conn_respond_error(c, 505, "BadRequest", "HTTP version not supported: use HTTP/1.1 or 1.0");
        break;
    case 400:
        conn_respond_error(c, 400, "BadRequest", "malformed HTTP request: HTTP/0.9 is not served");
        break;
    default:
        conn_respond_error(c, 400, "BadRequest", "malformed HTTP request: %s",
                           llhttp_get_error_reason(&c->parser));
    }
}

/* Reads land in the connection's own buffer, allocated once at its full
 * size (IN_CAP): no copy from a shared buffer and no growing, whose
 * reallocations and fresh pages cost 75 us a read when 400 connections
 * sent at once. Parsed bytes are dropped here, before a read. */
static void on_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf)
{
    (void)suggested;
    conn *c = h->data;
    *buf = uv_buf_init(NULL, 0); /* no memory: libuv reports UV_ENOBUFS */
    if (!c->in && !(c->in = malloc(IN_CAP)))
        return;
    if (c->in_off > 0) {
        memmove(c->in, c->in + c->in_off, c->in_len - c->in_off);
        c->in_len -= c->in_off;
        c->in_off = 0;
    }
    /* Never more than IN_MAX plus a little unparsed bytes per connection
     * (reading stops past IN_MAX: conn_update_reading), and a page once
     * the iteration's budget is spent: the connection will wait in the
     * queue with reading stopped (conn_yield), so more is not needed yet,
     * and 400 connections' first reads cost less at once. */
    size_t room = IN_CAP - c->in_len;
    if (room > 4096 && server_turn_spent(c->srv))
        room = 4096;
    *buf = uv_buf_init(c->in + c->in_len, (unsigned)room);
}

static void on_read(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf);

void conn_update_reading(conn *c)
{
    if (c->gone || c->closed)
        return;
    /* A queued connection has a request to parse already: its socket is
     * read again on its turn, not in every iteration it waits. */
    bool want = c->in_len - c->in_off <= IN_MAX && !c->yielded;
    if (want && !c->reading) {
        if (uv_read_start((uv_stream_t *)&c->tcp, on_alloc, on_read) < 0) {
            conn_close(c);
            return;
        }
    } else if (!want && c->reading) {
        uv_read_stop((uv_stream_t *)&c->tcp);
    }
    c->reading = want;
}

/* Parses one request from off; returns the new offset. */
static size_t parse_one(conn *c, size_t off)
{
    llhttp_errno_t e = llhttp_execute(&c->parser, c->in + off, c->in_len - off);
    if (e == HPE_OK)
        return c->in_len;
    /* After an Upgrade or CONNECT request llhttp pauses with its own code;
     * the request is answered all the same, and the connection closes
     * (keep_alive is false for it). */
    if (e == HPE_PAUSED || e == HPE_PAUSED_UPGRADE) {
        size_t end = (size_t)(llhttp_get_error_pos(&c->parser) - c->in);
        if (e == HPE_PAUSED)
            llhttp_resume(&c->parser);
        c->srv->count.requests++;
        c->parsed_this_turn++;
        route_request(c);
        return end;
    }
    reject(c, e);
    return c->in_len;
}

void conn_drive(conn *c)
{
    if (c->driving)
        return; /* a job finished synchronously: the outer drive goes on */
    c->driving = true;
    size_t off = c->in_off;
    while (!c->gone && !c->job && !c->yielded && off < c->in_len) {
        /* Responses the peer has not taken yet hold parsing back: counted
         * here, not by libuv's queue size, which misses written ones. */
        if (c->writes >= c->srv->lim.max_outstanding)
            break;
        /* Out of turns: the queue gives it the next one once the
         * connections ahead had theirs. A connection's first request
         * of a turn is parsed whatever the budget: a quiet client's
         * request is answered at once. */
        if (c->parsed_this_turn >= c->srv->lim.max_requests_per_read ||
            (c->parsed_this_turn > 0 && server_turn_spent(c->srv))) {
            conn_yield(c);
            break;
        }
        off = parse_one(c, off);
    }
    /* Parsed bytes are dropped before the next read (on_alloc), not
     * after each request: a connection parsed one request a turn would
     * move its whole backlog every time. */
    c->in_off = off;
    if (c->in_off == c->in_len)
        c->in_off = c->in_len = 0;
    c->driving = false;
    conn_flush(c);
    conn_update_reading(c);
    conn_update_timer(c);
}

/* The peer closed its side or the connection failed. A job it was waiting
 * for is cancelled: nobody is left to read the answer. Answers already
 * queued are still written after an orderly EOF (a half-close). */
static void peer_left(conn *c, ssize_t why)
{
    c->gone = true;
    c->reading = false;
    uv_read_stop((uv_stream_t *)&c->tcp);
    if (c->job) {
        c->srv->count.client_disconnects++;
        route_cancel_job(c);
    }
    if (why != UV_EOF || c->writes == 0)
        conn_close(c);
    else
        conn_update_timer(c);
}

static void on_read(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf)
{
    conn *c = s->data;
    if (nread < 0) {
        peer_left(c, nread);
        return;
    }
    (void)buf; /* c->in + c->in_len: on_alloc */
    if (nread == 0 || c->gone)
        return;
    c->in_len += (size_t)nread;
    /* A new read is a new turn, unless the connection is waiting for
     * its next one behind the others (queued: conn_drive leaves the
     * input for that turn). */
    if (!c->yielded)
        c->parsed_this_turn = 0;
    conn_drive(c);
}
