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

static void on_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf)
{
    (void)suggested;
    conn *c = h->data;
    /* Never more than IN_MAX plus a little unparsed bytes per connection. */
    size_t room = IN_MAX + 4096 - (c->in_len < IN_MAX ? c->in_len : IN_MAX);
    if (room > sizeof c->srv->rbuf)
        room = sizeof c->srv->rbuf;
    *buf = uv_buf_init(c->srv->rbuf, (unsigned)room);
}

static void on_read(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf);

void conn_update_reading(conn *c)
{
    if (c->gone || c->closed)
        return;
    bool want = c->in_len <= IN_MAX;
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

/* Out of turns: the server's idle handle calls conn_drive again once the
 * other connections had theirs. */
static void yield(conn *c)
{
    c->yielded = true;
    server_resume_later(c->srv);
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
    size_t off = 0;
    while (!c->gone && !c->job && off < c->in_len) {
        /* Responses the peer has not taken yet hold parsing back: counted
         * here, not by libuv's queue size, which misses written ones. */
        if (c->writes >= c->srv->lim.max_outstanding)
            break;
        if (c->parsed_this_turn >= c->srv->lim.max_requests_per_read) {
            yield(c);
            break;
        }
        off = parse_one(c, off);
    }
    if (off > 0) {
        memmove(c->in, c->in + off, c->in_len - off);
        c->in_len -= off;
    }
    c->driving = false;
    conn_flush(c);
    conn_update_reading(c);
    conn_update_timer(c);
}

static bool keep_input(conn *c, const char *p, size_t n)
{
    if (c->in_len + n > c->in_cap) {
        size_t cap = c->in_cap ? c->in_cap : 4096;
        while (cap < c->in_len + n)
            cap *= 2;
        char *in = realloc(c->in, cap);
        if (!in)
            return false;
        c->in = in;
        c->in_cap = cap;
    }
    memcpy(c->in + c->in_len, p, n);
    c->in_len += n;
    return true;
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
    if (nread == 0 || c->gone)
        return;
    if (!keep_input(c, buf->base, (size_t)nread)) {
        conn_close(c);
        return;
    }
    /* A new read is a new turn, unless the connection is waiting for
     * its next one behind the others (the server's idle handle). */
    if (!c->yielded)
        c->parsed_this_turn = 0;
    conn_drive(c);
}
