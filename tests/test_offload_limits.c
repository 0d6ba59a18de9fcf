/* examples/offload_server's limits (issue 16), each with a server
 * started for it: the job queue (503), the header and idle timers (408,
 * close), the job deadline (504) and the connection cap (503 and close).
 * Driven over real sockets as test_offload_server.c does; this process is
 * a child subreaper, so anything the server leaves behind shows up. */
#include "offload_client.h"

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <unistd.h>

/* ---- limits: jobs, timers ---------------------------------------------------- */

static int start_limited_server(void **state)
{
    static const char *const args[] = {"--workers", "2", "--max-jobs", "2",
                                       "--header-timeout-ms", "300", "--idle-timeout-ms",
                                       "1000", NULL};
    server_start_with(args);
    return 0;
}

static void test_full_job_queue_answers_503_with_retry_after(void **state)
{
    client a, b;
    client_open(&a);
    client_open(&b);
    const char *req = "GET " LONG_JOB " HTTP/1.1\r\n\r\n";
    client_send(&a, req, strlen(req));
    client_send(&b, req, strlen(req));
    wait_stat_at_least("in_flight", 2);
    response r;
    get("/work?iterations=10", &r);
    assert_int_equal(r.status, 503);
    assert_non_null(strstr(r.head, "\r\nRetry-After: 1\r\n"));
    assert_string_equal(r.body, "{\"error\":{\"type\":\"ServiceUnavailable\","
                                "\"message\":\"the job queue is full\"}}\n");
    assert_int_equal(stat_of("jobs_refused"), 1);
    assert_still_serving();
    close(a.fd);
    close(b.fd);
    int64_t end = support_now_ms() + 10000;
    while (stat_of("in_flight") != 0)
        assert_true(support_now_ms() < end);
    get("/work?iterations=10", &r);
    assert_string_equal(r.body, "{\"iterations\":10,\"value\":45}\n");
}

static void test_half_a_request_line_gets_408_and_is_closed(void **state)
{
    client c;
    client_open(&c);
    client_send(&c, "GET /pi", 7);
    response r;
    client_read(&c, &r);
    assert_int_equal(r.status, 408);
    assert_non_null(strstr(r.head, "Connection: close\r\n"));
    assert_non_null(strstr(r.body, "the request did not arrive whole within 300 ms"));
    assert_true(client_sees_eof(&c));
    close(c.fd);
    assert_still_serving();
}

static void test_idle_connections_are_closed(void **state)
{
    client quiet, done;
    client_open(&quiet); /* never sends a byte */
    client_open(&done);  /* one request, then nothing */
    const char *ping = "GET /ping HTTP/1.1\r\n\r\n";
    client_send(&done, ping, strlen(ping));
    response r;
    client_read(&done, &r);
    assert_int_equal(r.status, 200);
    assert_true(client_sees_eof(&quiet));
    assert_true(client_sees_eof(&done));
    close(quiet.fd);
    close(done.fd);
    assert_true(stat_of("timeouts") >= 2);
    assert_still_serving();
}

static int start_deadline_server(void **state)
{
    static const char *const args[] = {"--workers", "2", "--job-timeout-ms", "1000", NULL};
    server_start_with(args);
    return 0;
}

static void test_job_past_its_deadline_answers_504(void **state)
{
    response r;
    get(LONG_JOB, &r);
    assert_int_equal(r.status, 504);
    const char *want = "{\"error\":{\"type\":\"TimeoutError\",\"message\":";
    assert_memory_equal(r.body, want, strlen(want));
    assert_int_equal(stat_of("jobs_timed_out"), 1);
    assert_still_serving();
    /* A short job still fits its deadline. */
    expect_work_sum();
}

static int start_capped_server(void **state)
{
    static const char *const args[] = {"--workers", "1", "--max-connections", "3", NULL};
    server_start_with(args);
    return 0;
}

static void test_connections_past_the_cap_get_503_and_are_closed(void **state)
{
    client held[3];
    response r;
    const char *ping = "GET /ping HTTP/1.1\r\n\r\n";
    for (int i = 0; i < 3; i++) {
        client_open(&held[i]);
        client_send(&held[i], ping, strlen(ping));
        client_read(&held[i], &r);
        assert_int_equal(r.status, 200);
    }
    client extra;
    client_open(&extra);
    client_read(&extra, &r);
    assert_int_equal(r.status, 503);
    assert_non_null(strstr(r.head, "\r\nRetry-After: 1\r\n"));
    assert_non_null(strstr(r.head, "Connection: close\r\n"));
    assert_non_null(strstr(r.body, "too many connections"));
    assert_true(client_sees_eof(&extra));
    close(extra.fd);
    /* One leaves: a new client is served once the server saw it go. */
    close(held[0].fd);
    wait_for_a_place();
    close(held[1].fd);
    close(held[2].fd);
    wait_for_a_place();
    assert_true(stat_of("connections_refused") >= 1);
    assert_still_serving();
}

int main(void)
{
    prctl(PR_SET_CHILD_SUBREAPER, 1);
    signal(SIGPIPE, SIG_IGN);
    const struct CMUnitTest limits[] = {
        cmocka_unit_test(test_full_job_queue_answers_503_with_retry_after),
        cmocka_unit_test(test_half_a_request_line_gets_408_and_is_closed),
        cmocka_unit_test(test_idle_connections_are_closed),
    };
    const struct CMUnitTest deadline[] = {
        cmocka_unit_test(test_job_past_its_deadline_answers_504),
    };
    const struct CMUnitTest capped[] = {
        cmocka_unit_test(test_connections_past_the_cap_get_503_and_are_closed),
    };
    int failed = cmocka_run_group_tests_name("job and connection limits", limits,
                                             start_limited_server, stop_server);
    failed += cmocka_run_group_tests_name("job deadline", deadline, start_deadline_server,
                                          stop_server);
    failed += cmocka_run_group_tests_name("connection cap", capped, start_capped_server,
                                          stop_server);
    return failed;
}
