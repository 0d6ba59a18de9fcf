/* A client of examples/offload_server for test_offload_server.c: the
 * server process, HTTP over sockets, and the checks the cases share. */
#ifndef OFFLOAD_CLIENT_H
#define OFFLOAD_CLIENT_H
#include "support.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#define MAX_WORKERS 8
#define RSS_BOUND_KB (100 * 1024) /* issue 16's bound on the server: 100 MB */
#define LONG_JOB "/work?iterations=100000000000" /* a minute of work */

typedef struct server_proc {
    pid_t pid;
    int out; /* its stdout */
    int port;
} server_proc;

typedef struct response {
    int status;
    char head[4096];
    char body[16384];
} response;

/* A client connection with the bytes read past the last response. */
typedef struct client {
    int fd;
    char buf[32768];
    size_t len;
} client;

/* The server under test; its pid is 0 when none runs. */
extern server_proc srv;

/* Starts the server on a free port with the given options (NULL-ended). */
void server_start_with(const char *const *args);
/* Starts the server with a pool of 2 workers, or inline. */
void server_start(bool inline_mode);
/* Waits (up to 10 s, or fails) for the server to exit; its exit status. */
int server_wait(void);
/* Group teardowns: kill the server if a test left it running, or stop
 * it with SIGTERM and expect exit status 0. */
int group_teardown(void **state);
int stop_server(void **state);
/* Connects to the server; reads time out after 10 s, failing the test. */
void client_open(client *c);
/* Same, with a receive buffer of rcvbuf bytes (0: the default). */
void client_open_window(client *c, int rcvbuf);
void client_send(client *c, const char *data, size_t len);
/* Reads more into c->buf; false on EOF. */
bool client_fill(client *c);
/* Reads exactly one response: head, then Content-Length bytes of body. */
void client_read(client *c, response *r);
/* Reads one response head only (a HEAD answer, an interim 100). */
void client_read_head(client *c, response *r);
/* True when the server closed the connection (after what was read). */
bool client_sees_eof(client *c);
/* One raw request on a fresh connection; its response in r. */
void raw(const char *request, response *r);
/* GET target on a fresh connection. */
void get(const char *target, response *r);
/* The number after "key": in a JSON body; fails the test if absent. */
uint64_t json_u64(const char *body, const char *key);
/* One counter from /stats. */
uint64_t stat_of(const char *key);
/* Polls /stats (up to 10 s, or fails) until key reaches at least want. */
void wait_stat_at_least(const char *key, uint64_t want);
/* The pool's worker pids from /stats (at most MAX_WORKERS); how many. */
int worker_pids(long *pids);
/* The server's resident set, from /proc/PID/status. */
long server_rss_kb(void);
/* What every hardening case ends with: /ping still answered, and the
 * server within the memory bound. */
void assert_still_serving(void);
/* request is answered status with a BadRequest body naming message_part. */
void assert_bad_request(const char *request, int status, const char *message_part);
/* A request the parser refuses is answered, then the connection closes. */
void assert_refused_and_closed(const char *request, size_t len, int status,
                               const char *message_part);
/* Polls /ping (up to 10 s, or fails) until it is answered, not refused. */
void wait_for_a_place(void);
/* Sends up to `want` bytes of pipelined GET /stats (answers ~25 times
 * their request) on non-blocking fd, as far as the kernel takes them;
 * returns what was sent now. */
size_t flood_some(int fd, size_t *sent, size_t want);

/* GET /work?iterations=123456 answers the sum of i < 123456. */
void expect_work_sum(void);

#endif
