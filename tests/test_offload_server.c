/* The offload_server example, driven over real sockets as a client would.
 * OFFLOAD_SERVER holds the path of the built binary. This process is a
 * child subreaper, so a worker or fork server the example left behind
 * would be reparented here and show up as our child. */
#include "offload_client.h"

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

/* ---- hardening (issue 16) -------------------------------------------------- */

static void test_lenient_http_is_refused(void **state)
{
    const char *cl = "POST /ping HTTP/1.1\r\nContent-Length : 5\r\n\r\nhello";
    assert_refused_and_closed(cl, strlen(cl), 400, "Invalid header field char");
    const char *te = "POST /ping HTTP/1.1\r\nTransfer-Encoding : chunked\r\n\r\n"
                     "5\r\nhello\r\n0\r\n\r\n";
    assert_refused_and_closed(te, strlen(te), 400, "Invalid header field char");
    const char *chunk = "POST /ping HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n"
                        "5\r\nhelloXX0\r\n\r\n";
    assert_refused_and_closed(chunk, strlen(chunk), 400, "Expected CRLF after chunk");
    const char *v99 = "GET /ping HTTP/9.9\r\n\r\n";
    assert_refused_and_closed(v99, strlen(v99), 505, "HTTP version not supported");
    const char *v20 = "GET /ping HTTP/2.0\r\n\r\n";
    assert_refused_and_closed(v20, strlen(v20), 505, "HTTP version not supported");
    const char *v09 = "GET /ping HTTP/0.9\r\n\r\n";
    assert_refused_and_closed(v09, strlen(v09), 400, "HTTP/0.9 is not served");
    const char *bare09 = "GET /ping\r\n\r\n";
    assert_refused_and_closed(bare09, strlen(bare09), 400, "HTTP/0.9 is not served");
    assert_still_serving();
}

static void test_integers_that_overflow_are_refused_before_any_work(void **state)
{
    uint64_t started = stat_of("jobs_started");
    assert_bad_request("GET /work?iterations=9999999999999999999 HTTP/1.1\r\n\r\n", 400,
                       "'iterations' must be an integer in 0..100000000000");
    assert_bad_request("GET /work?iterations=9223372036854775808 HTTP/1.1\r\n\r\n", 400,
                       "'iterations' must be an integer in 0..100000000000");
    assert_bad_request("GET /lucky?n=10&iterations=1400000000 HTTP/1.1\r\n\r\n", 400,
                       "the sum for n=10 and iterations=1400000000 would not fit in 64 bits");
    /* n=0 draws up to 10, so it is checked as 10. */
    assert_bad_request("GET /lucky?n=0&iterations=1400000000 HTTP/1.1\r\n\r\n", 400,
                       "would not fit in 64 bits");
    assert_int_equal(stat_of("jobs_started"), started);
    /* The largest that fits still runs: 4*1000*999/2. */
    response r;
    get("/lucky?n=4&iterations=1000", &r);
    assert_string_equal(r.body, "{\"n\":4,\"value\":1998000}\n");
    assert_still_serving();
}

static void test_head_gets_the_headers_of_get_without_a_body(void **state)
{
    client c;
    client_open(&c);
    const char *two = "HEAD /ping HTTP/1.1\r\n\r\nGET /ping HTTP/1.1\r\n\r\n";
    client_send(&c, two, strlen(two));
    response r;
    client_read_head(&c, &r);
    assert_int_equal(r.status, 200);
    assert_non_null(strstr(r.head, "\r\nContent-Length: 14\r\n"));
    assert_non_null(strstr(r.head, "Content-Type: application/json\r\n"));
    /* The next bytes are the GET's answer, not a body of the HEAD's. */
    client_read(&c, &r);
    assert_int_equal(r.status, 200);
    assert_string_equal(r.body, "{\"pong\":true}\n");
    close(c.fd);
    assert_still_serving();
}

static void test_expect_100_continue_is_answered_before_the_body(void **state)
{
    client c;
    client_open(&c);
    const char *head = "GET /ping HTTP/1.1\r\nExpect: 100-continue\r\nContent-Length: 5\r\n\r\n";
    client_send(&c, head, strlen(head));
    response r;
    client_read_head(&c, &r);
    assert_string_equal(r.head, "HTTP/1.1 100 Continue\r\n\r\n");
    client_send(&c, "hello", 5);
    client_read(&c, &r);
    assert_int_equal(r.status, 200);
    assert_string_equal(r.body, "{\"pong\":true}\n");
    close(c.fd);
    /* An expectation we cannot meet: 417. */
    const char *odd = "GET /ping HTTP/1.1\r\nExpect: telepathy\r\n\r\n";
    assert_refused_and_closed(odd, strlen(odd), 417, "only expectation met is 100-continue");
    assert_still_serving();
}

/* RFC 7914, section 12: scrypt("pleaseletmein", "SodiumChloride",
 * N=16384, r=8, p=1, 64 bytes), /hash's defaults but for len. */
#define RFC_HASH "7023bdcb3afd7348461c06cd81fd38ebfda8fbba904f8e3ea9b543f6545da1f2" \
                 "d5432955613f0fcf62d49705242a9af9e61e85dc0d651e40dfcf017b45575887"

static void test_hash_is_scrypt_with_the_contracts_body(void **state)
{
    response r;
    get("/hash?password=pleaseletmein&salt=SodiumChloride&len=64", &r);
    assert_int_equal(r.status, 200);
    assert_non_null(strstr(r.head, "Content-Type: application/json\r\n"));
    assert_string_equal(r.body, "{\"hash\":\"" RFC_HASH "\",\"N\":16384,\"r\":8,\"p\":1}");
    /* Percent-decoded; len 32 is the first 32 bytes (PBKDF2's first block). */
    get("/hash?password=please%6Cet%6de%69n&salt=Sodium%43hloride", &r);
    assert_int_equal(r.status, 200);
    char want[256];
    snprintf(want, sizeof want, "{\"hash\":\"%.64s\",\"N\":16384,\"r\":8,\"p\":1}", RFC_HASH);
    assert_string_equal(r.body, want);
    /* Names are decoded too, and a repeated one gives its first value,
     * as Node's URLSearchParams and aiohttp do. */
    get("/hash?pass%77ord=pleaseletmein&password=other&salt=SodiumChloride&len=64&len=1", &r);
    assert_int_equal(r.status, 200);
    assert_string_equal(r.body, "{\"hash\":\"" RFC_HASH "\",\"N\":16384,\"r\":8,\"p\":1}");
    /* RFC 7914's other vector exercises N, r, p from the query. */
    get("/hash?password=password&salt=NaCl&N=1024&r=8&p=16&len=64", &r);
    assert_int_equal(r.status, 200);
    assert_string_equal(r.body, "{\"hash\":\"fdbabe1c9d3472007856e7190d01e9fe7c6ad7cbc8237830e7737"
                                "6634b3731622eaf30d92e22a3886ff109279d9830dac727afb94a83ee6d8360"
                                "cbdfa2cc0640\",\"N\":1024,\"r\":8,\"p\":16}");
    assert_still_serving();
}

static void expect_hash_400(const char *query, const char *body)
{
    char target[512];
    snprintf(target, sizeof target, "/hash?%s", query);
    response r;
    get(target, &r);
    assert_int_equal(r.status, 400);
    assert_string_equal(r.body, body);
}

static void test_hash_refuses_bad_input_with_400(void **state)
{
    uint64_t started = stat_of("jobs_started");
    expect_hash_400("salt=s", "{\"error\":\"password is required: 1..256 bytes, percent-encoded\"}");
    expect_hash_400("password=&salt=s",
                    "{\"error\":\"password is required: 1..256 bytes, percent-encoded\"}");
    expect_hash_400("password=p", "{\"error\":\"salt is required: 1..256 bytes, percent-encoded\"}");
    expect_hash_400("password=p%zz&salt=s",
                    "{\"error\":\"password is required: 1..256 bytes, percent-encoded\"}");
    static char q[400];
    snprintf(q, sizeof q, "password=%0257d&salt=s", 0);
    expect_hash_400(q, "{\"error\":\"password is required: 1..256 bytes, percent-encoded\"}");
    expect_hash_400("password=p&salt=s&N=3",
                    "{\"error\":\"N must be a power of two in 2..1048576\"}");
    expect_hash_400("password=p&salt=s&N=1",
                    "{\"error\":\"N must be an integer in 2..1048576\"}");
    expect_hash_400("password=p&salt=s&N=99999999999999999999",
                    "{\"error\":\"N must be an integer in 2..1048576\"}");
    expect_hash_400("password=p&salt=s&r=33", "{\"error\":\"r must be an integer in 1..32\"}");
    expect_hash_400("password=p&salt=s&p=0", "{\"error\":\"p must be an integer in 1..16\"}");
    expect_hash_400("password=p&salt=s&len=65", "{\"error\":\"len must be an integer in 1..64\"}");
    expect_hash_400("password=p&salt=s&N=1048576&r=1",
                    "{\"error\":\"128*N*r must be at most 67108864 (64 MiB)\"}");
    assert_int_equal(stat_of("jobs_started"), started);
    assert_still_serving();
}

static void test_crash_answers_500_worker_crashed_and_the_server_goes_on(void **state)
{
    uint64_t crashed = stat_of("crashed");
    response r;
    get("/crash", &r);
    assert_int_equal(r.status, 500);
    const char *want = "{\"error\":{\"type\":\"WorkerCrashed\",\"message\":\"worker ";
    assert_memory_equal(r.body, want, strlen(want));
    assert_non_null(strstr(r.body, "SIGSEGV"));
    assert_non_null(strstr(r.body, "\"function\":\"crash\""));
    assert_int_equal(stat_of("crashed"), crashed + 1);
    assert_still_serving();
    /* The pool replaced the worker: jobs run again. */
    get("/hash?password=pleaseletmein&salt=SodiumChloride&len=64", &r);
    assert_int_equal(r.status, 200);
    expect_work_sum();
}

/* Issue 16's clients that pipeline 256 KiB each and never read. The
 * issue measured 400 connections; the test runs OFFLOAD_FLOOD_CONNS
 * (default 50, same volume per connection) to stay quick. The requests
 * are /stats, whose answers outweigh them: without --max-outstanding's
 * cap 50 such clients took the server to 286 MB. */
static void test_clients_that_never_read_leave_memory_bounded(void **state)
{
    const char *env = getenv("OFFLOAD_FLOOD_CONNS");
    int n = env ? atoi(env) : 50;
    static int fds[2000];
    static size_t sent[2000];
    assert_true(n > 0 && n <= 2000);
    size_t want = 256 * 1024;
    memset(sent, 0, sizeof sent);
    uint64_t parsed_before = stat_of("requests");
    for (int i = 0; i < n; i++) {
        /* A small receive window: the answers back up in the server, not
         * in our kernel, as with a client far away that never reads. */
        client c;
        client_open_window(&c, 4096);
        fds[i] = c.fd;
    }
    /* Send until every connection sent it all or the kernel takes no
     * more after the server had a turn (a /ping answered). */
    int64_t end = support_now_ms() + 20000;
    for (int idle_rounds = 0; idle_rounds < 3 && support_now_ms() < end;) {
        size_t progress = 0, left = 0;
        for (int i = 0; i < n; i++) {
            progress += flood_some(fds[i], &sent[i], want);
            left += want - sent[i];
        }
        if (left == 0)
            break;
        if (progress == 0) {
            idle_rounds++;
            assert_still_serving();
            usleep(50000);
        } else {
            idle_rounds = 0;
        }
    }
    /* Then until the server parsed all it will: its request count stands
     * still but for our own /stats. */
    for (uint64_t before = stat_of("requests");;) {
        assert_true(support_now_ms() < end + 20000);
        usleep(200000);
        uint64_t now = stat_of("requests");
        if (now <= before + 1)
            break;
        before = now;
    }
    assert_still_serving();
    /* What a client that never reads gets out of the server is bounded
     * too: the answers its kernel send buffer (--send-buffer, 64 KiB;
     * Linux doubles it) holds, --max-outstanding (64) more, and a turn's
     * worth. /stats answers are over 500 bytes, so 256 KiB would do; the
     * kernel's own autotuning (up to 4 MiB) let each parse thousands. */
    uint64_t parsed = stat_of("requests") - parsed_before;
    if (parsed > (uint64_t)n * 500 + 100)
        fail_msg("%d never-reading clients had %" PRIu64 " requests answered", n, parsed);
    size_t total = 0;
    for (int i = 0; i < n; i++)
        total += sent[i];
    print_message("never-reading clients: %d x %zu KiB offered, %zu KiB taken, %" PRIu64
                  " requests parsed, server RSS %ld kB\n",
                  n, want / 1024, total / 1024, stat_of("requests"), server_rss_kb());
    for (int i = 0; i < n; i++)
        close(fds[i]);
    assert_still_serving();
}

static void test_disconnect_behind_pipelined_requests_cancels_the_job(void **state)
{
    uint64_t disconnects = stat_of("client_disconnects");
    uint64_t pool_cancelled = stat_of("cancelled");
    uint64_t running = stat_of("running");

    /* A long job, then ~70 KB of requests queued behind it: more than the
     * server reads ahead, so it stops reading while the job runs. */
    client c;
    client_open(&c);
    static char req[72 * 1024];
    size_t len = (size_t)snprintf(req, sizeof req, "GET " LONG_JOB " HTTP/1.1\r\n\r\n");
    const char *more = "GET /work?iterations=1000 HTTP/1.1\r\n\r\n";
    while (len + strlen(more) < sizeof req) {
        memcpy(req + len, more, strlen(more));
        len += strlen(more);
    }
    client_send(&c, req, len);
    wait_stat_at_least("running", running + 1);
    close(c.fd);

    wait_stat_at_least("client_disconnects", disconnects + 1);
    wait_stat_at_least("cancelled", pool_cancelled + 1);
    int64_t end = support_now_ms() + 10000;
    while (stat_of("in_flight") != 0)
        assert_true(support_now_ms() < end);
    assert_still_serving();
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
    /* Issue 16: this one gave 200 and a negative count on the loop thread. */
    assert_bad_request("GET /work?iterations=9223372036854775808 HTTP/1.1\r\n\r\n", 400,
                       "'iterations' must be an integer in 0..100000000000");
    assert_bad_request("GET /lucky?n=10&iterations=1400000000 HTTP/1.1\r\n\r\n", 400,
                       "would not fit in 64 bits");
    assert_still_serving();
    get("/hash?password=pleaseletmein&salt=SodiumChloride&len=64", &r);
    assert_string_equal(r.body, "{\"hash\":\"" RFC_HASH "\",\"N\":16384,\"r\":8,\"p\":1}");
    get("/crash", &r);
    assert_int_equal(r.status, 400);
    get("/stats", &r);
    assert_non_null(strstr(r.body, "\"mode\":\"inline\""));
    assert_non_null(strstr(r.body, "\"pool\":null"));
    assert_int_equal(json_u64(r.body, "jobs_started"), 4);

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
        cmocka_unit_test(test_lenient_http_is_refused),
        cmocka_unit_test(test_integers_that_overflow_are_refused_before_any_work),
        cmocka_unit_test(test_head_gets_the_headers_of_get_without_a_body),
        cmocka_unit_test(test_expect_100_continue_is_answered_before_the_body),
        cmocka_unit_test(test_hash_is_scrypt_with_the_contracts_body),
        cmocka_unit_test(test_hash_refuses_bad_input_with_400),
        cmocka_unit_test(test_crash_answers_500_worker_crashed_and_the_server_goes_on),
        cmocka_unit_test(test_clients_that_never_read_leave_memory_bounded),
        cmocka_unit_test(test_disconnect_behind_pipelined_requests_cancels_the_job),
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
