/*
 * Writing responses. Answers are gathered in c->out while conn_drive
 * parses and written with one uv_write when it is done (or at once, for
 * an answer made outside it): a pipelining client costs one write call a
 * turn, not one per request. c->writes counts the responses queued and
 * not yet handed to the kernel, gathered or written; conn_drive stops
 * parsing while it is at --max-outstanding, so a client that sends
 * requests and never reads holds a bounded amount of our memory.
 */
#include "json.h"
#include "server.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct wreq {
    uv_write_t req;
    conn *c;
    int responses; /* how many of c->writes this write carries */
    char *data;
} wreq;

static const char *reason(int status)
{
    switch (status) {
    case 100: return "Continue";
    case 200: return "OK";
    case 400: return "Bad Request";
    case 404: return "Not Found";
    case 405: return "Method Not Allowed";
    case 408: return "Request Timeout";
    case 413: return "Content Too Large";
    case 414: return "URI Too Long";
    case 417: return "Expectation Failed";
    case 431: return "Request Header Fields Too Large";
    case 500: return "Internal Server Error";
    case 503: return "Service Unavailable";
    case 504: return "Gateway Timeout";
    case 505: return "HTTP Version Not Supported";
    default: return "Unknown";
    }
}

static void on_written(uv_write_t *req, int status)
{
    wreq *w = (wreq *)req;
    conn *c = w->c;
    c->writes -= w->responses;
    free(w->data);
    free(w);
    if (c->closed)
        return;
    if (status < 0 || (c->gone && c->writes == 0)) {
        conn_close(c);
        return;
    }
    /* The peer took an answer: that is progress, the idle timer restarts. */
    if (c->timer_mode == TIMER_IDLE)
        c->timer_mode = TIMER_OFF;
    conn_drive(c); /* a write backlog may have held parsing back */
}

void conn_flush(conn *c)
{
    if (c->out_len == 0 || c->closed)
        return;
    wreq *w = malloc(sizeof *w);
    if (!w) {
        conn_close(c);
        return;
    }
    *w = (wreq){.c = c, .responses = c->out_responses, .data = c->out};
    uv_buf_t buf = uv_buf_init(c->out, (unsigned)c->out_len);
    c->out = NULL;
    c->out_len = c->out_cap = 0;
    c->out_responses = 0;
    if (uv_write(&w->req, (uv_stream_t *)&c->tcp, &buf, 1, on_written) < 0) {
        c->writes -= w->responses;
        free(w->data);
        free(w);
        conn_close(c);
    }
}

/* Gathers head and body into c->out; false (c closed) without memory. */
static bool gather(conn *c, const char *head, size_t hlen, const char *body, size_t blen,
                   bool response)
{
    size_t need = c->out_len + hlen + blen;
    if (need > c->out_cap) {
        size_t cap = c->out_cap ? c->out_cap : 1024;
        while (cap < need)
            cap *= 2;
        char *out = realloc(c->out, cap);
        if (!out) {
            conn_close(c);
            return false;
        }
        c->out = out;
        c->out_cap = cap;
    }
    memcpy(c->out + c->out_len, head, hlen);
    if (blen)
        memcpy(c->out + c->out_len + hlen, body, blen);
    c->out_len = need;
    if (response) {
        c->out_responses++;
        c->writes++;
    }
    if (!c->driving)
        conn_flush(c);
    return true;
}

void conn_write_raw(conn *c, const char *data, size_t len)
{
    if (!c->gone)
        gather(c, data, len, NULL, 0, false);
}

void conn_respond_ex(conn *c, int status, const char *extra, const char *body, size_t len)
{
    if (c->gone)
        return;
    char head[512];
    int hlen = snprintf(head, sizeof head,
                        "HTTP/1.1 %d %s\r\n"
                        "Content-Type: application/json\r\n"
                        "Content-Length: %zu\r\n"
                        "Connection: %s\r\n"
                        "%s%s\r\n",
                        status, reason(status), len, c->keep_alive ? "keep-alive" : "close",
                        status == 405 ? "Allow: GET, HEAD\r\n" : "", extra ? extra : "");
    if (hlen <= 0 || (size_t)hlen >= sizeof head) {
        conn_close(c);
        return;
    }
    /* HEAD: the same headers, Content-Length included, and no body. */
    if (!gather(c, head, (size_t)hlen, body, c->head ? 0 : len, true))
        return;
    if (!c->keep_alive) {
        /* The last answer on this connection: close once it is written. */
        c->gone = true;
        uv_read_stop((uv_stream_t *)&c->tcp);
        c->reading = false;
    }
    conn_update_timer(c);
}

void conn_respond(conn *c, int status, const char *body, size_t len)
{
    conn_respond_ex(c, status, NULL, body, len);
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
