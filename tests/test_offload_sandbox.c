/* examples/offload_server with --sandbox (issue 17): the same answers as
 * without it, workers that really are sandboxed and run at the lower
 * priority the server gives them, a crash still reported as one. The
 * server runs as in test_offload_server.c (this process is a child
 * subreaper: anything left behind shows up as our child). */
#include "offload_client.h"
#include "ppx.h"

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <unistd.h>

/* RFC 7914's second scrypt vector (N=16384, r=8, p=1, 64 bytes). */
#define RFC_HASH "7023bdcb3afd7348461c06cd81fd38ebfda8fbba904f8e3ea9b543f6545da1f2" \
                 "d5432955613f0fcf62d49705242a9af9e61e85dc0d651e40dfcf017b45575887"

static bool sandbox_available;

static int start_sandboxed_server(void **state)
{
    (void)state;
    /* ppx built with libseccomp, a kernel with seccomp filters: asked of
     * the library itself, as the server will. */
    ppx_pool *p;
    int rc = ppx_pool_new(&PPX_POOL_OPTIONS(.workers = 1, .sandbox = PPX_SANDBOX_COMPUTE), &p);
    if (rc == 0)
        ppx_pool_free(p);
    sandbox_available = rc == 0;
    if (!sandbox_available) {
        fprintf(stderr, "no sandbox here (%s): skipped\n", ppx_last_error());
        return 0;
    }
    static const char *const args[] = {"--workers", "2", "--sandbox", NULL};
    server_start_with(args);
    return 0;
}

/* A field of /proc/PID/status ("Seccomp:" ...) as a number, or -1. */
static long status_field(long pid, const char *key)
{
    char path[64], line[256];
    snprintf(path, sizeof path, "/proc/%ld/status", pid);
    FILE *f = fopen(path, "r");
    long v = -1;
    while (f && fgets(line, sizeof line, f))
        if (strncmp(line, key, strlen(key)) == 0)
            v = strtol(line + strlen(key), NULL, 10);
    if (f)
        fclose(f);
    return v;
}

/* The nice value of pid (field 19 of /proc/PID/stat), or -100. */
static long nice_of(long pid)
{
    char path[64], buf[1024];
    snprintf(path, sizeof path, "/proc/%ld/stat", pid);
    FILE *f = fopen(path, "r");
    size_t n = f ? fread(buf, 1, sizeof buf - 1, f) : 0;
    if (f)
        fclose(f);
    buf[n] = '\0';
    char *p = strrchr(buf, ')'); /* the name may hold spaces */
    long v = -100;
    /* After ") ": state, then fields 4..19. */
    if (p && sscanf(p + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %*u %*u %*d %*d %*d %ld",
                    &v) != 1)
        v = -100;
    return v;
}

static void test_workers_are_sandboxed_and_niced(void **state)
{
    (void)state;
    if (!sandbox_available)
        skip();
    long pids[MAX_WORKERS];
    int n = worker_pids(pids);
    assert_int_equal(n, 2);
    for (int i = 0; i < n; i++) {
        assert_int_equal(status_field(pids[i], "Seccomp:"), 2); /* filter mode */
        assert_int_equal(status_field(pids[i], "NoNewPrivs:"), 1);
        assert_int_equal(nice_of(pids[i]), nice_of(getpid()) + 10); /* --worker-nice's default */
    }
}

static void test_same_answers_as_without_the_sandbox(void **state)
{
    (void)state;
    if (!sandbox_available)
        skip();
    response r;
    get("/ping", &r);
    assert_int_equal(r.status, 200);
    get("/lucky?n=3&iterations=1000", &r);
    assert_string_equal(r.body, "{\"n\":3,\"value\":1498500}\n");
    get("/lucky?n=7", &r);
    assert_int_equal(r.status, 500);
    assert_non_null(strstr(r.body, "\"type\":\"ValueError\",\"message\":\"Unlucky number!\""));
    get("/work?iterations=1000", &r);
    assert_string_equal(r.body, "{\"iterations\":1000,\"value\":499500}\n");
    /* scrypt through OpenSSL, whose set-up the initializer did before the
     * filter forbade opening its files. */
    get("/hash?password=pleaseletmein&salt=SodiumChloride&len=64", &r);
    assert_int_equal(r.status, 200);
    assert_string_equal(r.body, "{\"hash\":\"" RFC_HASH "\",\"N\":16384,\"r\":8,\"p\":1}");
    get("/hash?password=a&salt=b&N=3", &r);
    assert_int_equal(r.status, 400);
    assert_still_serving();
}

static void test_crash_is_still_a_worker_crash(void **state)
{
    (void)state;
    if (!sandbox_available)
        skip();
    response r;
    get("/crash", &r);
    assert_int_equal(r.status, 500);
    const char *want = "{\"error\":{\"type\":\"WorkerCrashed\",\"message\":\"worker ";
    assert_memory_equal(r.body, want, strlen(want));
    assert_non_null(strstr(r.body, "\"function\":\"crash\""));
    /* The replacement worker is sandboxed too and computes. */
    get("/hash?password=pleaseletmein&salt=SodiumChloride&len=64", &r);
    assert_int_equal(r.status, 200);
    test_workers_are_sandboxed_and_niced(state);
    assert_still_serving();
}

static int stop_and_check(void **state)
{
    if (!sandbox_available)
        return 0;
    int rc = stop_server(state);
    return rc ? rc : !support_no_children();
}

int main(void)
{
    prctl(PR_SET_CHILD_SUBREAPER, 1);
    signal(SIGPIPE, SIG_IGN);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_workers_are_sandboxed_and_niced),
        cmocka_unit_test(test_same_answers_as_without_the_sandbox),
        cmocka_unit_test(test_crash_is_still_a_worker_crash),
    };
    return cmocka_run_group_tests_name("offload_server --sandbox", tests, start_sandboxed_server,
                                       stop_and_check);
}
