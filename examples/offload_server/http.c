/*
 * Connections: accept, read, parse with http_parser, write responses,
 * close. One request is handled at a time per connection: the parser is
 * paused in on_message_complete, so http_parser_execute returns right after
 * each request and the bytes behind it stay in c->in until the answer to
 * this one is queued. Responses are therefore written in request order,
 * which is what HTTP/1.1 pipelining needs.
 */
#include "json.h"
#include "server.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Past these, stop reading (unparsed input) or parsing (unsent output)
 * until the backlog drains. While reads are stopped, a peer that leaves
 * is only noticed when reading resumes. */
#define IN_MAX (64 * 1024)
#define OUT_MAX (256 * 1024)

typedef struct wreq {
    uv_write_t req;
    conn *c;
    char data[];
} wreq;

static void drive(conn *c);
static void conn_close(conn *c);

/* ---- parser callbacks ---------------------------------------------------- */

static int on_message_begin(http_parser *p)
{
    conn *c = p->data;
    c->url_len = 0;
    c->body_len = 0;
    c->reject = 0;
    return 0;
}

static int on_url(http_parser *p, const char *at, size_t len)
{
    conn *c = p->data;
    if (len > URL_MAX - c->url_len) {
        c->reject = 414;
        return -1;
    }
    memcpy(c->url + c->url_len, at, len);
    c->url_len += len;
    c->url[c->url_len] = '\0';
    return 0;
}

static int on_headers_complete(http_parser *p)
{
    conn *c = p->data;
    /* After an Upgrade or CONNECT the bytes are not HTTP any more: answer,
     * then close. */
    c->keep_alive = http_should_keep_alive(p) && !p->upgrade;
    return 0;
}

static int on_body(http_parser *p, const char *at, size_t len)
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

static int on_message_complete(http_parser *p)
{
    http_parser_pause(p, 1);
    return 0;
}

static const http_parser_settings settings = {
    .on_message_begin = on_message_begin,
    .on_url = on_url,
    .on_headers_complete = on_headers_complete,
    .on_body = on_body,
    .on_message_complete = on_message_complete,
};

/* ---- writing ------------------------------------------------------------- */

static const char *reason(int status)
{
    switch (status) {
    case 200: return "OK";
    case 400: return "Bad Request";
    case 404: return "Not Found";
    case 405: return "Method Not Allowed";
    case 413: return "Content Too Large";
    case 414: return "URI Too Long";
    case 431: return "Request Header Fields Too Large";
    case 500: return "Internal Server Error";
    case 503: return "Service Unavailable";
    default: return "Unknown";
    }
}

static void on_written(uv_write_t *req, int status)
{
    wreq *w = (wreq *)req;
    conn *c = w->c;
    free(w);
    c->writes--;
    if (c->closed)
        return;
    if (status < 0 || (c->gone && c->writes == 0)) {
        conn_close(c);
        return;
    }
    drive(c); /* a write backlog may have held parsing back */
}

void conn_respond(conn *c, int status, const char *body, size_t len)
{
    if (c->gone)
        return;
    char head[512];
    int hlen = snprintf(head, sizeof head,
                        "HTTP/1.1 %d %s\r\n"
                        "Content-Type: application/json\r\n"
                        "Content-Length: %zu\r\n"
                        "Connection: %s\r\n"
                        "%s\r\n",
                        status, reason(status), len, c->keep_alive ? "keep-alive" : "close",
                        status == 405 ? "Allow: GET\r\n" : "");
    wreq *w = hlen > 0 && (size_t)hlen < sizeof head ? malloc(sizeof *w + (size_t)hlen + len)
                                                     : NULL;
    if (!w) {
        conn_close(c);
        return;
    }
    w->c = c;
    memcpy(w->data, head, (size_t)hlen);
    memcpy(w->data + hlen, body, len);
    uv_buf_t buf = uv_buf_init(w->data, (unsigned)((size_t)hlen + len));
    if (uv_write(&w->req, (uv_stream_t *)&c->tcp, &buf, 1, on_written) < 0) {
        free(w);
        conn_close(c);
        return;
    }
    c->writes++;
    if (!c->keep_alive) {
        /* The last answer on this connection: close once it is written. */
        c->gone = true;
        uv_read_stop((uv_stream_t *)&c->tcp);
        c->reading = false;
    }
}

void conn_respond_error(conn *c, int status, const char *type, const char *fmt, ...)
{
    char msg[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    jbuf b = {0};
    jbuf_printf(&b, "{\"error\":{\"type\":");
    jbuf_str(&b, type);
    jbuf_printf(&b, ",\"message\":");
    jbuf_str(&b, msg);
    jbuf_printf(&b, "}}\n");
    if (b.oom)
        conn_close(c);
    else
        conn_respond(c, status, b.text, b.len);
    jbuf_free(&b);
}

/* ---- reading and parsing --------------------------------------------------- */

/* A request the parser refused: answer it and close. */
static void reject(conn *c, enum http_errno e)
{
    c->keep_alive = false;
    c->srv->count.requests++;
    if (c->reject == 414)
        conn_respond_error(c, 414, "BadRequest", "the URL is longer than %d bytes", URL_MAX);
    else if (c->reject == 413)
        conn_respond_error(c, 413, "BadRequest", "the body is longer than %d bytes", BODY_MAX);
    else if (e == HPE_HEADER_OVERFLOW)
        conn_respond_error(c, 431, "BadRequest",
                           "the request line and headers are longer than %d bytes",
                           HEADERS_MAX);
    else
        conn_respond_error(c, 400, "BadRequest", "malformed HTTP request: %s",
                           http_errno_description(e));
}

static bool write_backlog(conn *c)
{
    return uv_stream_get_write_queue_size((uv_stream_t *)&c->tcp) > OUT_MAX;
}

static void on_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf)
{
    (void)suggested;
    conn *c = h->data;
    *buf = uv_buf_init(c->srv->rbuf, sizeof c->srv->rbuf);
}

static void on_read(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf);

static void update_reading(conn *c)
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

/* Parses and answers requests until the input runs out or one of them has
 * to wait (a job runs, the peer reads slowly). */
static void drive(conn *c)
{
    if (c->driving)
        return; /* a job finished synchronously: the outer drive goes on */
    c->driving = true;
    size_t off = 0;
    while (!c->gone && !c->job && !write_backlog(c) && off < c->in_len) {
        off += http_parser_execute(&c->parser, &settings, c->in + off, c->in_len - off);
        enum http_errno e = HTTP_PARSER_ERRNO(&c->parser);
        if (e == HPE_PAUSED) {
            http_parser_pause(&c->parser, 0);
            c->srv->count.requests++;
            route_request(c);
        } else if (e != HPE_OK) {
            reject(c, e);
            off = c->in_len;
        }
    }
    if (off > 0) {
        memmove(c->in, c->in + off, c->in_len - off);
        c->in_len -= off;
    }
    c->driving = false;
    update_reading(c);
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
    drive(c);
}

/* ---- lifetime -------------------------------------------------------------- */

static void conn_free(conn *c)
{
    free(c->in);
    free(c);
}

static void on_closed(uv_handle_t *h)
{
    conn *c = h->data;
    server *s = c->srv;
    if (c->prev)
        c->prev->next = c->next;
    else
        s->conns = c->next;
    if (c->next)
        c->next->prev = c->prev;
    s->count.connections--;
    c->handle_closed = true;
    if (!c->job)
        conn_free(c);
}

static void conn_close(conn *c)
{
    if (c->closed)
        return;
    c->closed = c->gone = true;
    if (c->job)
        route_cancel_job(c);
    uv_close((uv_handle_t *)&c->tcp, on_closed);
}

void conn_job_finished(conn *c)
{
    if (c->handle_closed)
        conn_free(c);
    else if (c->gone && c->writes == 0)
        conn_close(c);
    else
        drive(c);
}

static void on_connection(uv_stream_t *listener, int status)
{
    server *s = listener->data;
    if (status < 0) {
        fprintf(stderr, "offload_server: accept: %s\n", uv_strerror(status));
        return;
    }
    conn *c = calloc(1, sizeof *c);
    if (!c) {
        /* libuv accepts nothing more until this one is accepted, and
         * accepting needs the memory we lack: give up cleanly. */
        fprintf(stderr, "offload_server: out of memory accepting a connection\n");
        s->failed = true;
        server_stop(s);
        return;
    }
    c->srv = s;
    c->tcp.data = c;
    c->parser.data = c;
    http_parser_init(&c->parser, HTTP_REQUEST);
    uv_tcp_init(s->loop, &c->tcp); /* cannot fail on Linux */
    c->next = s->conns;
    if (s->conns)
        s->conns->prev = c;
    s->conns = c;
    s->count.connections++;
    if (uv_accept(listener, (uv_stream_t *)&c->tcp) < 0) {
        conn_close(c);
        return;
    }
    uv_tcp_nodelay(&c->tcp, 1);
    update_reading(c);
}

int server_listen(server *s, int port, int *bound)
{
    http_parser_set_max_header_size(HEADERS_MAX);
    struct sockaddr_in addr;
    int rc = uv_ip4_addr("127.0.0.1", port, &addr);
    if (rc == 0)
        rc = uv_tcp_init(s->loop, &s->listener);
    if (rc)
        return rc;
    s->listener.data = s;
    rc = uv_tcp_bind(&s->listener, (const struct sockaddr *)&addr, 0);
    if (rc == 0)
        rc = uv_listen((uv_stream_t *)&s->listener, 511, on_connection);
    int len = sizeof addr;
    if (rc == 0)
        rc = uv_tcp_getsockname(&s->listener, (struct sockaddr *)&addr, &len);
    if (rc) {
        uv_close((uv_handle_t *)&s->listener, NULL);
        return rc;
    }
    *bound = ntohs(addr.sin_port);
    return 0;
}

void server_close_connections(server *s)
{
    for (conn *c = s->conns; c; c = c->next)
        conn_close(c);
}
