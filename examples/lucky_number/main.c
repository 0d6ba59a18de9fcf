/*
 * lucky_number: the asyncio tutorial's gather example, across forked
 * workers. Five CPU-bound calls are submitted at once and gathered; a
 * draw of 7 raises ValueError("Unlucky number!") in a worker, which fails
 * the gather and stops the siblings that are still running.
 */
#include "lucky.h"

#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <uv.h>

#define MAX_TASKS 4096

typedef struct opts {
    long tasks;
    int64_t iterations;
    int workers;
    bool has_seed;
    bool sandbox; /* --sandbox: workers that can compute and nothing else */
    uint64_t seed;
    long numbers[MAX_TASKS];
    long nnumbers;
} opts;

static void usage(FILE *to)
{
    fprintf(to, "usage: lucky_number [--tasks N] [--iterations M] [--workers W]\n"
                "                    [--seed S] [--numbers a,b,c] [--sandbox]\n");
}

static bool parse_i64(const char *s, int64_t lo, int64_t hi, int64_t *out)
{
    char *end;
    errno = 0;
    long long v = strtoll(s, &end, 10);
    if (errno || end == s || *end || v < lo || v > hi)
        return false;
    *out = v;
    return true;
}

static int parse(int argc, char **argv, opts *o)
{
    static const struct option longs[] = {
        {"tasks", required_argument, NULL, 't'},
        {"iterations", required_argument, NULL, 'i'},
        {"workers", required_argument, NULL, 'w'},
        {"seed", required_argument, NULL, 's'},
        {"numbers", required_argument, NULL, 'n'},
        {"sandbox", no_argument, NULL, 'x'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    *o = (opts){.tasks = 5, .iterations = 1000000};
    int c;
    int64_t v;
    while ((c = getopt_long(argc, argv, "", longs, NULL)) != -1) {
        switch (c) {
        case 't':
            if (!parse_i64(optarg, 1, MAX_TASKS, &v))
                return fprintf(stderr, "--tasks takes 1..%d\n", MAX_TASKS), -1;
            o->tasks = (long)v;
            break;
        case 'i':
            if (!parse_i64(optarg, 0, INT64_MAX, &v))
                return fprintf(stderr, "--iterations takes a non-negative integer\n"), -1;
            o->iterations = v;
            break;
        case 'w':
            if (!parse_i64(optarg, 1, 1024, &v))
                return fprintf(stderr, "--workers takes 1..1024\n"), -1;
            o->workers = (int)v;
            break;
        case 's':
            if (!parse_i64(optarg, 0, INT64_MAX, &v))
                return fprintf(stderr, "--seed takes a non-negative integer\n"), -1;
            o->has_seed = true;
            o->seed = (uint64_t)v;
            break;
        case 'n':
            o->nnumbers = 0;
            for (char *tok = strtok(optarg, ","); tok; tok = strtok(NULL, ",")) {
                if (o->nnumbers == MAX_TASKS || !parse_i64(tok, 1, 10, &v))
                    return fprintf(stderr, "--numbers takes up to %d numbers in 1..10\n",
                                   MAX_TASKS), -1;
                o->numbers[o->nnumbers++] = (long)v;
            }
            if (o->nnumbers == 0)
                return fprintf(stderr, "--numbers needs at least one number\n"), -1;
            break;
        case 'x':
            o->sandbox = true;
            break;
        case 'h':
            usage(stdout);
            exit(0);
        default:
            usage(stderr);
            return -1;
        }
    }
    if (optind != argc) {
        usage(stderr);
        return -1;
    }
    if (o->nnumbers)
        o->tasks = o->nnumbers;
    return 0;
}

static int fail(const char *what, int rc)
{
    const char *more = ppx_last_error();
    fprintf(stderr, "lucky_number: %s: %s%s%s\n", what, ppx_strerror(rc), *more ? ": " : "",
            more);
    return 1;
}

int main(int argc, char **argv)
{
    opts o;
    if (parse(argc, argv, &o))
        return 2;
    int rc = ppx_register("lucky_number", lucky_number, NULL);
    if (rc)
        return fail("register", rc);
    ppx_pool *pool;
    /* The draws need nothing but the CPU: under --sandbox a worker that
     * tried to open a file or a socket would fail its call instead. */
    rc = ppx_pool_new(&PPX_POOL_OPTIONS(.workers = o.workers,
                                        .sandbox = o.sandbox ? PPX_SANDBOX_COMPUTE : 0),
                      &pool);
    if (rc)
        return fail("starting the pool", rc);

    uv_loop_t loop;
    uv_loop_init(&loop);
    uint64_t start = uv_hrtime();

    ppx_awaitable **futures = calloc((size_t)o.tasks, sizeof *futures);
    if (!futures)
        return fail("allocating", PPX_ENOMEM);
    for (long i = 0; i < o.tasks && rc == 0; i++) {
        long n = o.nnumbers ? o.numbers[i] : 0;
        if (o.has_seed)
            rc = ppx_run_in_executorf(&loop, pool, &futures[i], "lucky_number", "llUU",
                                      (long long)o.iterations, (long long)n,
                                      (unsigned long long)o.seed, (unsigned long long)i);
        else
            rc = ppx_run_in_executorf(&loop, pool, &futures[i], "lucky_number", "llnn",
                                      (long long)o.iterations, (long long)n);
    }
    if (rc)
        return fail("submitting", rc);

    ppx_awaitable *all;
    rc = ppx_gather(&loop, futures, (size_t)o.tasks, 0, &all);
    if (rc)
        return fail("gather", rc);
    rc = ppx_run_until_complete(&loop, all);
    if (rc)
        return fail("running the loop", rc);

    int status = 0;
    ppx_value v;
    if (ppx_awaitable_value(all, &v) == 0) {
        int need = ppx_value_format(v, NULL, 0);
        char *text = need >= 0 ? malloc((size_t)need + 1) : NULL;
        if (!text)
            return fail("formatting", need < 0 ? need : PPX_ENOMEM);
        ppx_value_format(v, text, (size_t)need + 1);
        printf("The lucky numbers are %s\n", text);
        free(text);
    } else {
        const ppx_error *e = ppx_awaitable_error(all);
        if (strcmp(e->type, "ValueError") == 0) {
            printf("An exception occurred: %s\n", e->message);
        } else {
            /* The tutorial only catches ValueError; anything else is a bug
             * or a crash worth seeing in full. */
            fprintf(stderr, "lucky_number: %s in %s (worker %ld): %s\n", e->type,
                    e->function, e->pid, e->message);
            status = 1;
        }
    }
    double elapsed = (double)(uv_hrtime() - start) / 1e9;
    printf("Total execution time: %f second(s)\n", elapsed);
    fflush(stdout);

    for (long i = 0; i < o.tasks; i++)
        ppx_awaitable_unref(futures[i]);
    ppx_awaitable_unref(all);
    free(futures);
    ppx_pool_free(pool);
    uv_run(&loop, UV_RUN_DEFAULT); /* lets the pool's handles close */
    uv_loop_close(&loop);
    return status;
}
