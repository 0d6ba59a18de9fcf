/*
 * offload_server: an HTTP/1.1 server on one libuv loop that runs its
 * CPU-bound endpoints in a ppx pool, so the loop keeps answering. The
 * server and its connections, shared by main.c (options, startup,
 * shutdown), conn.c (accepting, timers, closing), http.c (reading,
 * parsing with llhttp, writing) and routes.c (endpoints, jobs).
 * Everything runs on the loop thread.
 */
#ifndef OFFLOAD_SERVER_H
#define OFFLOAD_SERVER_H
#include "ppx.h"

#include <llhttp.h>
#include <stdbool.h>
#include <stdint.h>
#include <uv.h>

/* Caps on one request; past them the answer is 414, 431 or 413 and the
 * connection closes. */
#define URL_MAX 2048
#define HEADERS_MAX 8192
#define BODY_MAX 8192
/* Parsing time per loop iteration: past it, a connection gets one request
 * parsed at once and queues for the rest, so that a request arriving on
 * a quiet connection waits for at most this much of other clients' work
 * (with 400 connections pipelining, a turn for each took 30-180 ms). */
#define TURN_BUDGET_NS (2 * 1000 * 1000)
/* Unparsed input kept per connection; past it reading stops. */
#define IN_MAX (16 * 1024)
/* A connection's input buffer: IN_MAX and one more read's worth. */
#define IN_CAP (IN_MAX + 4096)

/* The limits, all set from the command line (main.c has the defaults). */
typedef struct server_limits {
    int max_connections;       /* open at once; more get 503 and are closed */
    int max_outstanding;       /* responses written but not sent, per connection */
    int max_requests_per_read; /* requests parsed before other clients get a turn */
    int send_buffer;           /* SO_SNDBUF of each connection; 0: the kernel's */
    int header_timeout_ms;     /* request start to message end, else 408 */
    int idle_timeout_ms;       /* nothing read or sent while no job runs: close */
    int max_jobs;              /* jobs in the pool (queued + running); more get 503 */
    int job_timeout_ms;        /* a job's deadline (ppx_call_options), else 504; 0 none */
} server_limits;

typedef struct server_counters {
    uint64_t requests;           /* requests parsed, bad ones included */
    uint64_t connections;        /* open now */
    uint64_t in_flight;          /* jobs submitted and not resolved */
    uint64_t jobs_started;
    uint64_t jobs_failed;        /* resolved FAILED: the worker raised or crashed */
    uint64_t jobs_cancelled;     /* cancelled by us: disconnect or shutdown */
    uint64_t jobs_timed_out;     /* past their deadline: 504 */
    uint64_t jobs_refused;       /* the job queue was full: 503 */
    uint64_t client_disconnects; /* peers that left while their job ran */
    uint64_t connections_refused; /* over max_connections: 503 and closed */
    uint64_t timeouts;           /* connections closed by the header or idle timer */
} server_counters;

typedef struct conn conn;

typedef struct server {
    uv_loop_t *loop;
    ppx_pool *pool; /* NULL in inline mode, and once shutdown began */
    bool inline_mode;
    bool stopping;
    bool failed; /* stopped by an error, not a signal: exit 1 */
    server_limits lim;
    uv_tcp_t listener;
    uv_signal_t sigint, sigterm;
    uv_idle_t resume;     /* runs connections that used up their turn */
    uv_check_t turn_end;  /* ends the loop iteration's parsing budget */
    uint64_t turn_start;  /* uv_hrtime() of the iteration's first parse; 0: none yet */
    conn *queue, *queue_tail; /* connections waiting for a turn, oldest first */
    size_t queued;
    conn *conns;          /* open connections, for shutdown */
    server_counters count;
} server;

typedef enum job_kind { JOB_LUCKY, JOB_WORK, JOB_HASH, JOB_CRASH } job_kind;

/* What the connection's timer is counting down. */
typedef enum timer_mode {
    TIMER_OFF,
    TIMER_IDLE,    /* waiting for a request, or for the peer to read */
    TIMER_HEADER,  /* a request started and must end in time */
    TIMER_WATCH,   /* a job runs, reading is stopped: poll for a hang-up */
    TIMER_LINGER,  /* the last answer is queued: close even if unread */
} timer_mode;

/*
 * One client. Requests are answered in order: while a job runs, parsing
 * stops and later (pipelined) bytes wait in `in`, but the socket is still
 * read (up to IN_MAX), so a peer that leaves is noticed and its job
 * cancelled; past IN_MAX the timer polls the socket for a hang-up.
 */
struct conn {
    uv_tcp_t tcp;
    uv_timer_t timer;
    server *srv;
    conn *prev, *next;
    conn *q_prev, *q_next; /* in the server's queue while yielded */
    llhttp_t parser;
    char *in; /* IN_CAP bytes once read: received; from in_off on not parsed yet */
    size_t in_off, in_len;

    /* the request being parsed */
    char url[URL_MAX + 1];
    size_t url_len;
    size_t head_len; /* URL and header bytes, against HEADERS_MAX */
    size_t body_len;
    char field[16], value[16]; /* the header being read, if short */
    size_t field_len, value_len;
    int reject;      /* why a callback stopped the parser: an HTTP status */
    bool keep_alive; /* as llhttp_should_keep_alive said */
    bool head;       /* a HEAD request: headers only */
    bool expect_continue;
    bool in_message; /* between message begin and complete */

    /* the job answering the request, with what the response echoes */
    ppx_awaitable *job;
    job_kind kind;
    int64_t n, iterations;
    int64_t hash_n, hash_r, hash_p;

    char *out;           /* answers gathered while parsing, not written yet */
    size_t out_len, out_cap;
    int out_responses;   /* how many answers out holds */
    int writes;          /* answers gathered or being written */
    int parsed_this_turn;
    timer_mode timer_mode;
    bool reading;
    bool yielded;        /* out of turns: queued, the server's idle handle resumes it */
    bool driving;        /* inside drive(): it must not be re-entered */
    bool gone;           /* no more requests: peer left or we close */
    bool closed;         /* uv_close called */
    int handles_open;    /* tcp and timer: freed when both closed */
};

/* conn.c */
/* Binds 127.0.0.1:port (0: any free port), listens, and stores the port
 * in *bound. 0 or a libuv error code. */
int server_listen(server *s, int port, int *bound);
/* Puts c at the end of the queue of connections waiting for a turn (the
 * server's idle handle drives them on the next loop iterations). */
void conn_yield(conn *c);
/* True once this loop iteration has parsed for TURN_BUDGET_NS: requests
 * past each connection's first wait for the next iteration. */
bool server_turn_spent(server *s);
/* Closes every connection; their jobs are cancelled first. */
void server_close_connections(server *s);
/* Closes c now; its job, if any, is cancelled. */
void conn_close(conn *c);
/* Sets c's timer for its current state (see timer_mode). */
void conn_update_timer(conn *c);
/* Called once c->job is back to NULL: frees c if it was closed meanwhile,
 * otherwise parses what the peer pipelined behind the finished request. */
void conn_job_finished(conn *c);
/* Frees c once its handles are closed and no job refers to it. */
void conn_maybe_free(conn *c);

/* http.c */
extern const llhttp_settings_t http_settings;
/* Parses and answers requests until the input runs out or one has to wait. */
void conn_drive(conn *c);
/* Starts or stops reading as c's backlog allows. */
void conn_update_reading(conn *c);
/* Queues a response with a JSON body and extra header lines (each ending
 * in \r\n; NULL: none). Its Connection header follows c->keep_alive;
 * without keep-alive, c is gone afterwards and closes once the response
 * is written. A HEAD request gets the headers only. Nothing happens once
 * c is gone. */
void conn_respond_ex(conn *c, int status, const char *extra, const char *body, size_t len);
void conn_respond(conn *c, int status, const char *body, size_t len);
/* A {"error":{"type":...,"message":...}} response. */
void conn_respond_error(conn *c, int status, const char *type, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 4, 5)))
#endif
    ;
/* Writes what conn_respond gathered while c was being driven. */
void conn_flush(conn *c);
/* Writes raw bytes (an interim 100 Continue) ahead of the response. */
void conn_write_raw(conn *c, const char *data, size_t len);

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
