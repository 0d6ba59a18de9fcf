/*
 * offload_server: an HTTP/1.1 server on one libuv loop that runs its
 * CPU-bound endpoints in a ppx pool, so the loop keeps answering. The
 * server and its connections, shared by main.c (startup, shutdown),
 * http.c (connections, parsing, writing) and routes.c (endpoints, jobs).
 * Everything runs on the loop thread.
 */
#ifndef OFFLOAD_SERVER_H
#define OFFLOAD_SERVER_H
#include "ppx.h"

#include <http_parser.h>
#include <stdbool.h>
#include <stdint.h>
#include <uv.h>

/* Caps on one request; past them the answer is 414, 431 or 413 and the
 * connection closes. */
#define URL_MAX 2048
#define HEADERS_MAX 8192
#define BODY_MAX 8192

typedef struct server_counters {
    uint64_t requests;           /* requests parsed, bad ones included */
    uint64_t connections;        /* open now */
    uint64_t in_flight;          /* jobs submitted and not resolved */
    uint64_t jobs_started;
    uint64_t jobs_failed;        /* resolved FAILED: the worker raised */
    uint64_t jobs_cancelled;     /* cancelled by us: disconnect or shutdown */
    uint64_t client_disconnects; /* peers that left while their job ran */
} server_counters;

typedef struct conn conn;

typedef struct server {
    uv_loop_t *loop;
    ppx_pool *pool; /* NULL in inline mode, and once shutdown began */
    bool inline_mode;
    bool stopping;
    bool failed; /* stopped by an error, not a signal: exit 1 */
    uv_tcp_t listener;
    uv_signal_t sigint, sigterm;
    conn *conns; /* open connections, for shutdown */
    server_counters count;
    char rbuf[64 * 1024]; /* every read lands here, then is parsed or kept */
} server;

typedef enum job_kind { JOB_LUCKY, JOB_WORK } job_kind;

/*
 * One client. Requests are answered in order: while a job runs, parsing
 * stops and later (pipelined) bytes wait in `in`, but the socket is still
 * read, so a peer that leaves is noticed and its job cancelled.
 */
struct conn {
    uv_tcp_t tcp;
    server *srv;
    conn *prev, *next;
    http_parser parser;
    char *in; /* received, not parsed yet */
    size_t in_len, in_cap;

    /* the request being parsed */
    char url[URL_MAX + 1];
    size_t url_len;
    size_t body_len;
    int reject;      /* 414 or 413: why a callback stopped the parser */
    bool keep_alive; /* as http_should_keep_alive said */

    /* the job answering the request, with what the response echoes */
    ppx_awaitable *job;
    job_kind kind;
    int64_t n, iterations;

    int writes;          /* responses being written */
    bool reading;
    bool driving;        /* inside drive(): it must not be re-entered */
    bool gone;           /* no more requests: peer left or we close */
    bool closed;         /* uv_close called */
    bool handle_closed;  /* its close callback ran */
};

/* http.c */
/* Binds 127.0.0.1:port (0: any free port), listens, and stores the port
 * in *bound. 0 or a libuv error code. */
int server_listen(server *s, int port, int *bound);
/* Closes every connection; their jobs are cancelled first. */
void server_close_connections(server *s);
/* Queues a response with a JSON body (a 405 also says "Allow: GET"). Its
 * Connection header follows c->keep_alive; without keep-alive, c is gone
 * afterwards and closes once the response is written. Nothing happens
 * once c is gone. */
void conn_respond(conn *c, int status, const char *body, size_t len);
/* A {"error":{"type":...,"message":...}} response. */
void conn_respond_error(conn *c, int status, const char *type, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 4, 5)))
#endif
    ;
/* Called once c->job is back to NULL: frees c if it was closed meanwhile,
 * otherwise parses what the peer pipelined behind the finished request. */
void conn_job_finished(conn *c);

/* routes.c */
/* Answers the request c just parsed, at once or through a job. */
void route_request(conn *c);
/* Cancels c's job (its callback runs before this returns). */
void route_cancel_job(conn *c);

/* main.c */
/* Stops accepting, cancels jobs, closes connections and frees the pool;
 * the loop then ends once the handles are closed. */
void server_stop(server *s);

#endif
