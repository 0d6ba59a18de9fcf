/* The lucky_number example, run as users run it, plus its worker function's
 * draws. LUCKY_NUMBER holds the path of the built binary. */
#include "support.h"
#include "ppx.h"
#include "examples/lucky_number/lucky.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>

/* Runs the example with args; returns its exit status, stdout in out. */
static int run(const char *args, char *out, size_t n)
{
    const char *bin = getenv("LUCKY_NUMBER");
    assert_non_null(bin);
    char cmd[1024];
    snprintf(cmd, sizeof cmd, "%s %s 2>/dev/null", bin, args);
    FILE *p = popen(cmd, "r");
    assert_non_null(p);
    size_t len = fread(out, 1, n - 1, p);
    out[len] = '\0';
    int st = pclose(p);
    return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
}

static void assert_time_line(const char *line)
{
    double secs;
    char tail[32];
    assert_int_equal(sscanf(line, "Total execution time: %lf second%31s", &secs, tail), 2);
    assert_string_equal(tail, "(s)");
    assert_true(secs >= 0);
}

/* Each test runs the example as given and again with --sandbox (the
 * workers under PPX_SANDBOX_COMPUTE), which must not change what it
 * prints; where this kernel (or valgrind) has no seccomp filters, the
 * sandboxed run is skipped. */
static const char *const modes[] = {"", " --sandbox"};

static bool sandbox_available(void)
{
    ppx_pool *p = NULL;
    ppx_pool_options o = PPX_POOL_OPTIONS(.workers = 1, .sandbox = PPX_SANDBOX_COMPUTE);
    support_valgrind_sizes(&o);
    int rc = ppx_pool_new(&o, &p);
    ppx_pool_free(p);
    if (rc == PPX_ENOTSUP)
        print_message("--sandbox runs skipped: %s\n", ppx_last_error());
    else
        assert_int_equal(rc, 0);
    return rc == 0;
}

static int run_mode(int mode, const char *args, char *out, size_t n)
{
    char full[512];
    snprintf(full, sizeof full, "%s%s", args, modes[mode]);
    return run(full, out, n);
}

static int modes_here(void)
{
    return sandbox_available() ? 2 : 1;
}

static void test_fixed_numbers_print_the_python_values(void **state)
{
    char out[4096];
    for (int m = 0, nm = modes_here(); m < nm; m++) {
        assert_int_equal(run_mode(m, "--numbers 1,2,3,4,5", out, sizeof out), 0);
        const char *want = "The lucky numbers are [499999500000, 999999000000, 1499998500000, "
                           "1999998000000, 2499997500000]\n";
        assert_memory_equal(out, want, strlen(want));
        assert_time_line(out + strlen(want));
    }
}

static void test_unlucky_number_stops_running_siblings_instead_of_waiting(void **state)
{
    for (int m = 0, nm = modes_here(); m < nm; m++) {
        char out[4096];
        int64_t start = support_now_ms();
        /* The siblings hold tens of seconds of work each: finishing at all in
         * the bound below means they were stopped, not awaited. */
        assert_int_equal(run_mode(m, "--numbers 7,1,2,3,4 --iterations 40000000000 --workers 2",
                                  out, sizeof out), 0);
        int64_t took = support_now_ms() - start;
        const char *want = "An exception occurred: Unlucky number!\n";
        assert_memory_equal(out, want, strlen(want));
        assert_time_line(out + strlen(want));
        assert_true(took < 10000);
    }
}

static void test_same_seed_gives_the_same_draws(void **state)
{
    char a[4096], b[4096];
    assert_int_equal(run("--seed 12345 --tasks 6 --iterations 1000", a, sizeof a), 0);
    /* The second run sandboxed where it can be: the same draws. */
    assert_int_equal(run_mode(modes_here() - 1, "--seed 12345 --tasks 6 --iterations 1000", b,
                              sizeof b), 0);
    *strchr(a, '\n') = *strchr(b, '\n') = '\0';
    assert_string_equal(a, b);
    assert_true(strncmp(a, "The lucky numbers are [", 23) == 0 ||
                strcmp(a, "An exception occurred: Unlucky number!") == 0);
}

static void test_bad_options_exit_with_usage(void **state)
{
    char out[256];
    assert_int_equal(run("--numbers 1,11", out, sizeof out), 2);
    assert_int_equal(run("--tasks 0", out, sizeof out), 2);
    assert_int_equal(run("--iterations -5", out, sizeof out), 2);
    assert_int_equal(run("--bogus", out, sizeof out), 2);
    assert_int_equal(run("--help", out, sizeof out), 0);
    assert_non_null(strstr(out, "usage: lucky_number"));
}

/* With iterations = 2 the sum is 0*n + 1*n = n, so the value shows the
 * draw: forked workers must not all draw the same number. */
static void test_workers_draw_independent_numbers(void **state)
{
    ppx_pool *p;
    ppx_pool_options o = PPX_POOL_OPTIONS(.workers = 2);
    support_valgrind_sizes(&o);
    assert_int_equal(ppx_pool_new(&o, &p), 0);
    enum { N = 60 };
    ppx_future *f[N];
    for (int i = 0; i < N; i++)
        assert_int_equal(ppx_pool_submitf(p, &f[i], "lucky_number", "llnn", 2LL, 0LL), 0);
    int seen[11] = {0}, distinct = 0;
    for (int i = 0; i < N; i++) {
        assert_int_equal(ppx_future_wait(f[i], 10000), 0);
        int64_t n;
        if (ppx_future_int(f[i], &n) == 0) {
            assert_true(n >= 1 && n <= 10 && n != 7);
        } else {
            assert_string_equal(ppx_future_error(f[i])->message, "Unlucky number!");
            n = 7;
        }
        distinct += seen[n]++ == 0;
        ppx_future_unref(f[i]);
    }
    assert_true(distinct >= 3);
    ppx_pool_free(p);
}

int main(void)
{
    ppx_register("lucky_number", lucky_number, NULL);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_fixed_numbers_print_the_python_values),
        cmocka_unit_test(test_unlucky_number_stops_running_siblings_instead_of_waiting),
        cmocka_unit_test(test_same_seed_gives_the_same_draws),
        cmocka_unit_test(test_bad_options_exit_with_usage),
        cmocka_unit_test(test_workers_draw_independent_numbers),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
