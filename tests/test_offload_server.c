/* The offload_server example, driven over real sockets as a client would.
 * OFFLOAD_SERVER holds the path of the built binary. This process is a
 * child subreaper, so a worker or fork server the example left behind
 * would be reparented here and show up as our child. */
#include "support.h"

#include <arpa/inet.h>
#include <errno.h>
#include <inttypes.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#define MAX_WORKERS 8
#define LONG_JOB "/work?iterations=100000000000" /* a minute of work */

typedef struct server {
    pid_t pid;
    int out; /* its stdout */
    int port;
} server;

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

static server srv;

/* ---- the server process ------------------------------------------------- */

/* Starts the server on a free port, with a pool of 2 workers or inline. */
static void server_start(bool inline_mode)
{
    const char *bin = getenv("OFFLOAD_SERVER");
    assert_non_null(bin);
    int p[2];
    assert_int_equal(pipe(p), 0);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        dup2(p[1], 1);
        close(p[0]);
        close(p[1]);
        if (inline_mode)
            execl(bin, bin, "--port", "0", "--inline", (char *)NULL);
        else
            execl(bin, bin, "--port", "0", "--workers", "2", (char *)NULL);
        _exit(127);
    }
    close(p[1]);
    srv = (server){.pid = pid, .out = p[0]};
    char line[128];
    size_t len = 0;
    int64_t end = support_now_ms() + 10000;
    while (len == 0 || line[len - 1] != '\n') {
        assert_true(support_now_ms() < end && len < sizeof line - 1);
        struct pollfd pf = {srv.out, POLLIN, 0};
        poll(&pf, 1, 100);
        ssize_t n = read(srv.out, line + len, sizeof line - 1 - len);
        assert_true(n > 0 || (n < 0 && errno == EAGAIN) || (n < 0 && errno == EINTR));
        if (n > 0)
            len += (size_t)n;
    }
    line[len] = '\0';
    assert_int_equal(sscanf(line, "listening on 127.0.0.1:%d", &srv.port), 1);
    assert_true(srv.port > 0);
}

/* Waits (up to 10 s, or fails) for the server to exit; its exit status. */
static int server_wait(void)
{
    int64_t end = support_now_ms() + 10000;
    int st;
    pid_t r;
    while ((r = waitpid(srv.pid, &st, WNOHANG)) == 0) {
        assert_true(support_now_ms() < end);
        usleep(10000);
    }
    assert_int_equal(r, srv.pid);
    srv.pid = 0;
    close(srv.out);
    return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
}

static int group_teardown(void **state)
{
    if (srv.pid > 0) { /* a test failed before stopping it */
        kill(srv.pid, SIGKILL);
        waitpid(srv.pid, NULL, 0);
        close(srv.out);
        srv.pid = 0;
    }
    return 0;
}

/* ---- HTTP over a socket ------------------------------------------------- */

static void client_open(client *c)
{
    c->fd = socket(AF_INET, SOCK_STREAM, 0);
    assert_true(c->fd >= 0);
    struct timeval tv = {10, 0}; /* a hang fails the test instead */
    setsockopt(c->fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)srv.port)};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    assert_int_equal(connect(c->fd, (struct sockaddr *)&a, sizeof a), 0);
    c->len = 0;
}

static void client_send(client *c, const char *data, size_t len)
{
    while (len > 0) {
        ssize_t n = write(c->fd, data, len);
        assert_true(n > 0);
        data += n;
        len -= (size_t)n;
    }
}

/* Reads more into c->buf; false on EOF. */
static bool client_fill(client *c)
{
    assert_true(c->len < sizeof c->buf);
    ssize_t n = read(c->fd, c->buf + c->len, sizeof c->buf - c->len);
    assert_true(n >= 0); /* not the 10 s timeout */
    c->len += (size_t)n;
    return n > 0;
}

/* Reads exactly one response: head, then Content-Length bytes of body. */
static void client_read(client *c, response *r)
{
    char *end;
    while (!(end = memmem(c->buf, c->len, "\r\n\r\n", 4)))
        assert_true(client_fill(c));
    size_t hlen = (size_t)(end - c->buf) + 4;
    assert_true(hlen < sizeof r->head);
    memcpy(r->head, c->buf, hlen);
    r->head[hlen] = '\0';
    assert_int_equal(sscanf(r->head, "HTTP/1.1 %d ", &r->status), 1);
    const char *cl = strcasestr(r->head, "\r\nContent-Length: ");
    assert_non_null(cl);
    size_t blen = strtoul(cl + 18, NULL, 10);
    assert_true(blen < sizeof r->body);
    while (c->len < hlen + blen)
        assert_true(client_fill(c));
    memcpy(r->body, c->buf + hlen, blen);
    r->body[blen] = '\0';
    c->len -= hlen + blen;
    memmove(c->buf, c->buf + hlen + blen, c->len);
}

/* True when the server closed the connection (after what was read). */
static bool client_sees_eof(client *c)
{
    return c->len == 0 && !client_fill(c);
}

/* One raw request on a fresh connection; its response in r. */
static void raw(const char *request, response *r)
{
    client c;
    client_open(&c);
    client_send(&c, request, strlen(request));
    client_read(&c, r);
    close(c.fd);
}

static void get(const char *target, response *r)
{
    char req[4096];
    snprintf(req, sizeof req, "GET %s HTTP/1.1\r\nHost: test\r\n\r\n", target);
    raw(req, r);
}

/* The number after "key": in a JSON body; fails the test if absent. */
static uint64_t json_u64(const char *body, const char *key)
{
    char pat[64];
    snprintf(pat, sizeof pat, "\"%s\":", key);
    const char *p = strstr(body, pat);
    assert_non_null(p);
    return strtoull(p + strlen(pat), NULL, 10);
}

static uint64_t stat_of(const char *key)
{
    response r;
    get("/stats", &r);
    assert_int_equal(r.status, 200);
    return json_u64(r.body, key);
}

/* Polls /stats (up to 10 s, or fails) until key reaches at least want. */
static void wait_stat_at_least(const char *key, uint64_t want)
{
    int64_t end = support_now_ms() + 10000;
    while (stat_of(key) < want) {
        assert_true(support_now_ms() < end);
        usleep(10000);
    }
}

static int worker_pids(long *pids)
{
    response r;
    get("/stats", &r);
    const char *p = strstr(r.body, "\"worker_pids\":[");
    assert_non_null(p);
    p += strlen("\"worker_pids\":[");
    int n = 0;
    while (*p != ']' && n < MAX_WORKERS) {
        char *end;
        pids[n++] = strtol(p, &end, 10);
        p = *end == ',' ? end + 1 : end;
    }
    return n;
}

/* ---- ppx mode ------------------------------------------------------------ */

static int start_pool_server(void **state)
{
    server_start(false);
    return 0;
}

static void test_ping_answers_pong(void **state)
{
    response r;
    get("/ping", &r);
    assert_int_equal(r.status, 200);
    assert_string_equal(r.body, "{\"pong\":true}\n");
    assert_non_null(strstr(r.head, "Connection: keep-alive\r\n"));
    assert_non_null(strstr(r.head, "Content-Type: application/json\r\n"));
}

static void test_lucky_returns_the_workers_sum_of_i_times_n(void **state)
{
    int64_t sum = 0;
    for (int64_t i = 0; i < 1000; i++)
        sum += i * 3;
    char want[128];
    snprintf(want, sizeof want, "{\"n\":3,\"value\":%" PRId64 "}\n", sum);
    response r;
    get("/lucky?n=3&iterations=1000", &r);
    assert_int_equal(r.status, 200);
    assert_string_equal(r.body, want);
}

static void test_lucky_seven_answers_500_with_the_workers_value_error(void **state)
{
    long pids[MAX_WORKERS];
    int n = worker_pids(pids);
    assert_int_equal(n, 2);
    response r;
    get("/lucky?n=7", &r);
    assert_int_equal(r.status, 500);
    const char *want = "{\"error\":{\"type\":\"ValueError\",\"message\":\"Unlucky number!\","
                       "\"function\":\"lucky_number\",\"pid\":";
    assert_memory_equal(r.body, want, strlen(want));
    long pid = (long)json_u64(r.body, "pid");
    assert_true(pid == pids[0] || pid == pids[1]);
}

/* GET /work?iterations=123456 answers the sum of i < 123456. */
static void expect_work_sum(void)
{
    uint64_t sum = 0;
    for (uint64_t i = 0; i < 123456; i++)
        sum += i;
    char want[128];
    snprintf(want, sizeof want, "{\"iterations\":123456,\"value\":%" PRIu64 "}\n", sum);
    response r;
    get("/work?iterations=123456", &r);
    assert_int_equal(r.status, 200);
    assert_string_equal(r.body, want);
}

static void test_work_returns_the_sum_of_i(void **state)
{
    expect_work_sum();
}

static void test_stats_show_every_pool_and_server_counter(void **state)
{
    response r;
    get("/stats", &r);
    assert_int_equal(r.status, 200);
    assert_non_null(strstr(r.body, "\"mode\":\"ppx\""));
    static const char *const keys[] = {
        "requests", "in_flight", "connections", "jobs_started", "jobs_failed",
        "jobs_cancelled", "client_disconnects", "workers", "submitted", "completed",
        "failed", "cancelled", "crashed", "respawns", "killed", "stolen", "timed_out",
        "recycled", "init_failures", "crash_streak", "queued", "running", "arena_used",
        "arena_calls",
    };
    for (size_t i = 0; i < sizeof keys / sizeof keys[0]; i++)
        json_u64(r.body, keys[i]);
    assert_int_equal(json_u64(r.body, "workers"), 2);
    assert_true(json_u64(r.body, "requests") >= 1);
    assert_true(json_u64(r.body, "completed") >= 2);
    assert_true(json_u64(r.body, "failed") >= 1);
}

static void assert_bad_request(const char *request, int status, const char *message_part)
{
    response r;
    raw(request, &r);
    assert_int_equal(r.status, status);
    const char *want = "{\"error\":{\"type\":\"BadRequest\",\"message\":\"";
    assert_memory_equal(r.body, want, strlen(want));
    if (!strstr(r.body, message_part))
        fail_msg("%d: %s lacks \"%s\"", status, r.body, message_part);
}

static void test_bad_requests_get_a_json_4xx(void **state)
{
    assert_bad_request("GET /nope HTTP/1.1\r\n\r\n", 404, "no endpoint /nope");
    assert_bad_request("GET /work HTTP/1.1\r\n\r\n", 400, "missing parameter 'iterations'");
    assert_bad_request("GET /lucky?iterations=5 HTTP/1.1\r\n\r\n", 400,
                       "missing parameter 'n'");
    assert_bad_request("GET /work?iterations=abc HTTP/1.1\r\n\r\n", 400,
                       "'iterations' must be an integer in 0..100000000000");
    assert_bad_request("GET /work?iterations=-5 HTTP/1.1\r\n\r\n", 400, "must be an integer");
    assert_bad_request("GET /work?iterations=100000000001 HTTP/1.1\r\n\r\n", 400,
                       "0..100000000000");
    assert_bad_request("GET /work?iterations=99999999999999999999999 HTTP/1.1\r\n\r\n", 400,
                       "0..100000000000");
    assert_bad_request("GET /lucky?n=11 HTTP/1.1\r\n\r\n", 400, "'n' must be an integer in 0..10");
    assert_bad_request("POST /ping HTTP/1.1\r\nContent-Length: 0\r\n\r\n", 405,
                       "/ping takes GET or HEAD, not POST");

    response r;
    raw("DELETE /stats HTTP/1.1\r\n\r\n", &r);
    assert_non_null(strstr(r.head, "\r\nAllow: GET, HEAD\r\n"));
}

/* What http_parser refuses is answered, then the connection closes. */
static void assert_refused_and_closed(const char *request, size_t len, int status,
                                      const char *message_part)
{
    client c;
    client_open(&c);
    client_send(&c, request, len);
    response r;
    client_read(&c, &r);
    assert_int_equal(r.status, status);
    assert_non_null(strstr(r.head, "Connection: close\r\n"));
    assert_non_null(strstr(r.body, "\"type\":\"BadRequest\""));
    if (!strstr(r.body, message_part))
        fail_msg("%d: %s lacks \"%s\"", status, r.body, message_part);
    assert_true(client_sees_eof(&c));
    close(c.fd);
}

static void test_malformed_or_oversized_http_is_refused_and_closed(void **state)
{
    const char garbage[] = "\x16\x03\x01 not http at all\r\n\r\n";
    assert_refused_and_closed(garbage, sizeof garbage - 1, 400, "malformed HTTP request");
    const char *bad_version = "GET /ping HTTP/9x\r\n\r\n";
    assert_refused_and_closed(bad_version, strlen(bad_version), 400, "malformed HTTP request");

    static char req[12000];
    int n = snprintf(req, sizeof req, "GET /work?iterations=1&pad=%03000d HTTP/1.1\r\n\r\n", 0);
    assert_refused_and_closed(req, (size_t)n, 414, "longer than 2048 bytes");
    n = snprintf(req, sizeof req, "GET /ping HTTP/1.1\r\nX-Pad: %09000d\r\n\r\n", 0);
    assert_refused_and_closed(req, (size_t)n, 431, "longer than 8192 bytes");
}

static void test_keep_alive_serves_sequential_pipelined_and_split_requests(void **state)
{
    client c;
    client_open(&c);
    response r;

    const char *ping = "GET /ping HTTP/1.1\r\nHost: t\r\n\r\n";
    client_send(&c, ping, strlen(ping));
    client_read(&c, &r);
    assert_int_equal(r.status, 200);
    const char *work = "GET /work?iterations=10 HTTP/1.1\r\nHost: t\r\n\r\n";
    client_send(&c, work, strlen(work));
    client_read(&c, &r);
    assert_string_equal(r.body, "{\"iterations\":10,\"value\":45}\n");

    /* Three at once: a job first, so the others wait behind it in order. */
    const char *three = "GET /lucky?n=2&iterations=10 HTTP/1.1\r\n\r\n"
                        "GET /ping HTTP/1.1\r\n\r\n"
                        "GET /nope HTTP/1.1\r\n\r\n";
    client_send(&c, three, strlen(three));
    client_read(&c, &r);
    assert_string_equal(r.body, "{\"n\":2,\"value\":90}\n");
    client_read(&c, &r);
    assert_string_equal(r.body, "{\"pong\":true}\n");
    client_read(&c, &r);
    assert_int_equal(r.status, 404);

    /* One byte at a time, the last request asking to close. */
    const char *last = "GET /work?iterations=3 HTTP/1.1\r\nConnection: close\r\n\r\n";
    for (const char *p = last; *p; p++)
        client_send(&c, p, 1);
    client_read(&c, &r);
    assert_string_equal(r.body, "{\"iterations\":3,\"value\":3}\n");
    assert_non_null(strstr(r.head, "Connection: close\r\n"));
    assert_true(client_sees_eof(&c));
    close(c.fd);
}

static void test_client_that_leaves_mid_job_gets_its_job_cancelled(void **state)
{
    uint64_t disconnects = stat_of("client_disconnects");
    uint64_t cancelled = stat_of("jobs_cancelled");
    uint64_t pool_cancelled = stat_of("cancelled");
    uint64_t started = stat_of("jobs_started");

    client c;
    client_open(&c);
    const char *req = "GET " LONG_JOB " HTTP/1.1\r\n\r\n";
    client_send(&c, req, strlen(req));
    wait_stat_at_least("jobs_started", started + 1);
    wait_stat_at_least("running", 1);
    close(c.fd);

    wait_stat_at_least("client_disconnects", disconnects + 1);
    wait_stat_at_least("jobs_cancelled", cancelled + 1);
    wait_stat_at_least("cancelled", pool_cancelled + 1);
    assert_int_equal(stat_of("in_flight"), 0);
    /* The worker is free again: a new job runs to its end. */
    response r;
    get("/work?iterations=4", &r);
    assert_string_equal(r.body, "{\"iterations\":4,\"value\":6}\n");
}

static bool process_exists(long pid)
{
    char path[64];
    snprintf(path, sizeof path, "/proc/%ld", pid);
    struct stat st;
    return stat(path, &st) == 0;
}

static void test_sigterm_exits_0_and_leaves_no_worker_behind(void **state)
{
    long pids[MAX_WORKERS];
    int n = worker_pids(pids);
    assert_int_equal(n, 2);
    for (int i = 0; i < n; i++)
        assert_true(pids[i] > 0 && process_exists(pids[i]));

    /* A job still runs and an idle keep-alive connection is open. */
    client busy, idle;
    client_open(&busy);
    client_open(&idle);
    const char *req = "GET " LONG_JOB " HTTP/1.1\r\n\r\n";
    client_send(&busy, req, strlen(req));
    wait_stat_at_least("running", 1);

    assert_int_equal(kill(srv.pid, SIGTERM), 0);
    assert_int_equal(server_wait(), 0);
    assert_true(client_sees_eof(&busy));
    assert_true(client_sees_eof(&idle));
    close(busy.fd);
    close(idle.fd);
    for (int i = 0; i < n; i++)
        assert_false(process_exists(pids[i]));
    /* Anything orphaned (fork server, workers) would be our child now. */
    assert_true(support_no_children());
}

/* ---- inline mode ----------------------------------------------------------- */

static int start_inline_server(void **state)
{
    server_start(true);
    return 0;
}

static void test_inline_mode_computes_the_same_answers_without_a_pool(void **state)
{
    expect_work_sum();
    response r;
    get("/lucky?n=3&iterations=1000", &r);
    assert_string_equal(r.body, "{\"n\":3,\"value\":1498500}\n");
    get("/lucky?n=7", &r);
    assert_int_equal(r.status, 500);
    assert_non_null(strstr(r.body, "\"type\":\"ValueError\",\"message\":\"Unlucky number!\""));
    assert_int_equal((long)json_u64(r.body, "pid"), (long)srv.pid);
    get("/stats", &r);
    assert_non_null(strstr(r.body, "\"mode\":\"inline\""));
    assert_non_null(strstr(r.body, "\"pool\":null"));
    assert_int_equal(json_u64(r.body, "jobs_started"), 3);

    assert_int_equal(kill(srv.pid, SIGINT), 0);
    assert_int_equal(server_wait(), 0);
    assert_true(support_no_children());
}

int main(void)
{
    prctl(PR_SET_CHILD_SUBREAPER, 1);
    signal(SIGPIPE, SIG_IGN);
    const struct CMUnitTest pool_mode[] = {
        cmocka_unit_test(test_ping_answers_pong),
        cmocka_unit_test(test_lucky_returns_the_workers_sum_of_i_times_n),
        cmocka_unit_test(test_lucky_seven_answers_500_with_the_workers_value_error),
        cmocka_unit_test(test_work_returns_the_sum_of_i),
        cmocka_unit_test(test_stats_show_every_pool_and_server_counter),
        cmocka_unit_test(test_bad_requests_get_a_json_4xx),
        cmocka_unit_test(test_malformed_or_oversized_http_is_refused_and_closed),
        cmocka_unit_test(test_keep_alive_serves_sequential_pipelined_and_split_requests),
        cmocka_unit_test(test_client_that_leaves_mid_job_gets_its_job_cancelled),
        cmocka_unit_test(test_sigterm_exits_0_and_leaves_no_worker_behind),
    };
    const struct CMUnitTest inline_mode[] = {
        cmocka_unit_test(test_inline_mode_computes_the_same_answers_without_a_pool),
    };
    int failed = cmocka_run_group_tests_name("pool mode", pool_mode, start_pool_server,
                                             group_teardown);
    failed += cmocka_run_group_tests_name("inline mode", inline_mode, start_inline_server,
                                          group_teardown);
    return failed;
}
