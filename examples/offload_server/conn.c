/*
 * Connections: accept (or refuse past --max-connections), the timer of
 * each connection, closing and freeing. A connection owns two handles,
 * its socket and its timer, and is freed once both are closed and no job
 * refers to it.
 */
#include "server.h"

#include <poll.h>
#include <stdio.h>
#include <stdlib.h>

/* How often a connection whose reading is stopped while its job runs
 * looks for the peer's hang-up. */
#define WATCH_MS 100

/* ---- the timer ------------------------------------------------------------ */

static void on_timer(uv_timer_t *t);
static void on_resume(uv_idle_t *h);

/* True once the peer hung up or the socket failed, though unread input
 * may be queued: POLLRDHUP says the peer shut down its side. */
static bool peer_hung_up(conn *c)
{
    uv_os_fd_t fd;
    if (uv_fileno((uv_handle_t *)&c->tcp, &fd) != 0)
        return true;
    struct pollfd pf = {.fd = fd, .events = POLLRDHUP};
    return poll(&pf, 1, 0) == 1 && (pf.revents & (POLLRDHUP | POLLHUP | POLLERR));
}

static void on_timer(uv_timer_t *t)
{
    conn *c = t->data;
    server *s = c->srv;
    switch (c->timer_mode) {
    case TIMER_WATCH:
        if (c->job && peer_hung_up(c)) {
            s->count.client_disconnects++;
            conn_close(c); /* cancels the job */
        }
        return; /* a repeating timer: polls again */
    case TIMER_HEADER:
        /* The request did not arrive whole in time: 408, then close. */
        s->count.timeouts++;
        c->keep_alive = false;
        c->in_message = false;
        c->timer_mode = TIMER_OFF;
        conn_respond_error(c, 408, "RequestTimeout",
                           "the request did not arrive whole within %d ms",
                           s->lim.header_timeout_ms);
        if (c->writes == 0)
            conn_close(c);
        return;
    case TIMER_IDLE:
        s->count.timeouts++;
        conn_close(c);
        return;
    case TIMER_LINGER:
        /* Our last answer was not taken in time: give up on it. */
        conn_close(c);
        return;
    case TIMER_OFF:
        return;
    }
}

static void set_timer(conn *c, timer_mode mode, int ms, bool repeat)
{
    c->timer_mode = mode;
    if (mode == TIMER_OFF || ms <= 0) {
        uv_timer_stop(&c->timer);
        return;
    }
    uv_timer_start(&c->timer, on_timer, (uint64_t)ms, repeat ? (uint64_t)ms : 0);
}

void conn_update_timer(conn *c)
{
    if (c->closed)
        return;
    const server_limits *l = &c->srv->lim;
    timer_mode want;
    if (c->gone)
        want = TIMER_LINGER;
    else if (c->job)
        want = c->reading ? TIMER_OFF : TIMER_WATCH;
    else if (c->in_message)
        want = TIMER_HEADER;
    else
        want = TIMER_IDLE;
    /* Counting continues in the same state: a slow request does not get
     * more time by trickling bytes. on_written resets the idle count. */
    if (want == c->timer_mode)
        return;
    switch (want) {
    case TIMER_LINGER:
    case TIMER_IDLE: set_timer(c, want, l->idle_timeout_ms, false); break;
    case TIMER_HEADER: set_timer(c, want, l->header_timeout_ms, false); break;
    case TIMER_WATCH: set_timer(c, want, WATCH_MS, true); break;
    case TIMER_OFF: set_timer(c, want, 0, false); break;
    }
}

/* ---- lifetime -------------------------------------------------------------- */

static void conn_free(conn *c)
{
    free(c->in);
    free(c->out);
    free(c);
}

void conn_maybe_free(conn *c)
{
    if (c->handles_open == 0 && !c->job)
        conn_free(c);
}

static void on_closed(uv_handle_t *h)
{
    conn *c = h->data;
    if (--c->handles_open > 0)
        return;
    server *s = c->srv;
    if (c->prev)
        c->prev->next = c->next;
    else
        s->conns = c->next;
    if (c->next)
        c->next->prev = c->prev;
    s->count.connections--;
    conn_maybe_free(c);
}

static void unqueue(conn *c)
{
    server *s = c->srv;
    if (c->q_prev)
        c->q_prev->q_next = c->q_next;
    else
        s->queue = c->q_next;
    if (c->q_next)
        c->q_next->q_prev = c->q_prev;
    else
        s->queue_tail = c->q_prev;
    c->q_prev = c->q_next = NULL;
    c->yielded = false;
    s->queued--;
}

void conn_close(conn *c)
{
    if (c->closed)
        return;
    if (c->yielded)
        unqueue(c); /* it may be freed before its turn comes */
    c->closed = c->gone = true;
    if (c->job)
        route_cancel_job(c);
    uv_close((uv_handle_t *)&c->tcp, on_closed);
    uv_close((uv_handle_t *)&c->timer, on_closed);
}

void conn_job_finished(conn *c)
{
    if (c->closed)
        conn_maybe_free(c);
    else if (c->gone && c->writes == 0)
        conn_close(c);
    else
        conn_drive(c);
}

/* ---- accepting ------------------------------------------------------------- */

/* Past --max-connections: a 503 that says to come back, then close. */
static void refuse(conn *c)
{
    c->srv->count.connections_refused++;
    c->keep_alive = false;
    static const char body[] = "{\"error\":{\"type\":\"ServiceUnavailable\","
                               "\"message\":\"too many connections\"}}\n";
    conn_respond_ex(c, 503, "Retry-After: 1\r\n", body, sizeof body - 1);
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
    bool over = s->count.connections >= (uint64_t)s->lim.max_connections;
    c->srv = s;
    c->tcp.data = c->timer.data = c;
    c->parser.data = c;
    llhttp_init(&c->parser, HTTP_REQUEST, &http_settings);
    c->parser.data = c;
    uv_tcp_init(s->loop, &c->tcp); /* cannot fail on Linux */
    uv_timer_init(s->loop, &c->timer);
    c->handles_open = 2;
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
    /* Answers the peer does not read wait in the kernel's send buffer,
     * which Linux grows up to tcp_wmem's maximum (4 MiB): 400 clients
     * that never read pinned 540 MiB of kernel memory there, and the
     * server parsed and answered over a million of their requests to fill
     * it. A fixed buffer bounds both; answers here are small. */
    int sndbuf = s->lim.send_buffer;
    if (sndbuf > 0)
        uv_send_buffer_size((uv_handle_t *)&c->tcp, &sndbuf);
    if (over) {
        refuse(c);
        return;
    }
    conn_update_reading(c);
    conn_update_timer(c);
}

/* ---- turns ------------------------------------------------------------------ */

void conn_yield(conn *c)
{
    server *s = c->srv;
    if (c->yielded)
        return;
    c->yielded = true;
    c->q_prev = s->queue_tail;
    c->q_next = NULL;
    if (s->queue_tail)
        s->queue_tail->q_next = c;
    else
        s->queue = c;
    s->queue_tail = c;
    s->queued++;
    uv_idle_start(&s->resume, on_resume);
}

bool server_turn_spent(server *s)
{
    uint64_t now = uv_hrtime();
    if (s->turn_start == 0)
        s->turn_start = now;
    return now - s->turn_start >= TURN_BUDGET_NS;
}

/* After the poll phase's callbacks: the next iteration has a new budget. */
static void on_turn_end(uv_check_t *h)
{
    server *s = h->data;
    s->turn_start = 0;
}

/* Queued connections get their turns, oldest first, until the budget is
 * spent (one at least): the rest wait for the next iteration, in which
 * the poll phase first serves whatever arrived. Only queued connections
 * are visited, not all of them. */
static void on_resume(uv_idle_t *h)
{
    server *s = h->data;
    /* Those queued again meanwhile wait for the next call. */
    for (size_t n = s->queued, done = 0; s->queue && done < n; done++) {
        if (done > 0 && server_turn_spent(s))
            break;
        conn *c = s->queue;
        unqueue(c);
        c->parsed_this_turn = 0;
        conn_drive(c); /* may queue c again, at the end */
    }
    if (!s->queue)
        uv_idle_stop(h);
}

int server_listen(server *s, int port, int *bound)
{
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
    uv_idle_init(s->loop, &s->resume);
    s->resume.data = s;
    uv_check_init(s->loop, &s->turn_end);
    s->turn_end.data = s;
    uv_check_start(&s->turn_end, on_turn_end);
    uv_unref((uv_handle_t *)&s->turn_end); /* it keeps nothing alive */
    *bound = ntohs(addr.sin_port);
    return 0;
}

void server_close_connections(server *s)
{
    for (conn *c = s->conns; c; c = c->next)
        conn_close(c);
}
