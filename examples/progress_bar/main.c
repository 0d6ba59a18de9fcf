/*
 * A live progress bar over a lazy map: N CPU jobs pulled one at a time,
 * at most 2 * workers in flight, the bar redrawn from the map's progress
 * callback on the loop thread. On a terminal the bar updates in place;
 * otherwise a line is printed every 10%.
 *
 * With --one-job, one long job of N * M iterations instead: the function
 * reports its own steps with ppx_call_progress (cheap enough for every
 * 1024th iteration: the parent hears of the latest within about 20 ms),
 * and the awaitable of ppx_run_in_executor hands them to the same bar.
 *
 *   ./build/examples/progress_bar [--jobs N] [--iterations M] [--one-job]
 */
#include <ppx.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <uv.h>

static int spin(ppx_call *c, void *u)
{
    (void)u;
    uint64_t n, x = 0;
    if (ppx_call_arg_uint(c, 0, &n))
        return ppx_raise(c, "TypeError", "spin takes a count");
    for (uint64_t i = 0; i < n; i++) {
        x += i * 2654435761u;
        __asm__("" : "+r"(x)); /* a real loop, not its closed form */
        if ((i & 1023) == 1023)
            ppx_call_progress(c, i + 1, n); /* the latest wins: call it often */
    }
    ppx_call_progress(c, n, n);
    return ppx_return_uint(c, x);
}

typedef struct job {
    size_t jobs;
    uint64_t iterations;
    unsigned char args[16];
    bool tty;
    size_t last_tenth;
    const char *unit; /* "jobs", or "%" for one job's steps */
} job;

static int next_input(size_t i, const void **args, size_t *len, void *arg)
{
    job *j = arg;
    if (i >= j->jobs)
        return 0;
    /* [iterations] as msgpack: fixarray 1, uint64 */
    j->args[0] = 0x91;
    j->args[1] = 0xcf;
    for (int k = 0; k < 8; k++)
        j->args[2 + k] = (unsigned char)(j->iterations >> (56 - 8 * k));
    *args = j->args;
    *len = 10;
    return 1;
}

/* Redraws the bar at done of total. */
static void show(job *j, size_t done, size_t total)
{
    if (j->tty) {
        char bar[41];
        size_t fill = (size_t)((double)done * 40 / (double)total);
        memset(bar, '#', fill);
        memset(bar + fill, '.', 40 - fill);
        bar[40] = '\0';
        if (j->unit[0] == '%')
            printf("\r[%s] %3zu%%", bar, (size_t)((double)done * 100 / (double)total));
        else
            printf("\r[%s] %zu/%zu", bar, done, total);
        fflush(stdout);
    } else if ((size_t)((double)done * 10 / (double)total) > j->last_tenth) {
        j->last_tenth = (size_t)((double)done * 10 / (double)total);
        if (j->unit[0] == '%')
            printf("%zu%% done\n", j->last_tenth * 10);
        else
            printf("%zu/%zu done\n", done, total);
    }
}

static void draw(ppx_awaitable *aw, size_t done, size_t total, void *arg)
{
    (void)aw;
    (void)total; /* a lazy map does not know its length; we do */
    job *j = arg;
    show(j, done, j->jobs);
}

/* One job's own steps (ppx_call_progress), as its function counts them. */
static void draw_steps(ppx_awaitable *aw, size_t done, size_t total, void *arg)
{
    (void)aw;
    if (total)
        show(arg, done, total);
}

int main(int argc, char **argv)
{
    job j = {.jobs = 200, .iterations = 20000000, .tty = isatty(STDOUT_FILENO), .unit = "jobs"};
    bool one_job = false;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--one-job") == 0)
            one_job = true;
        else if (i + 1 < argc && strcmp(argv[i], "--jobs") == 0)
            j.jobs = strtoul(argv[++i], NULL, 10);
        else if (i + 1 < argc && strcmp(argv[i], "--iterations") == 0)
            j.iterations = strtoull(argv[++i], NULL, 10);
    }
    if (j.jobs == 0)
        return fprintf(stderr, "--jobs must be at least 1\n"), 2;
    ppx_register("spin", spin, NULL);
    ppx_pool *pool;
    int rc = ppx_pool_new(NULL, &pool);
    if (rc)
        return fprintf(stderr, "ppx_pool_new: %s\n", ppx_strerror(rc)), 1;
    uv_loop_t loop;
    uv_loop_init(&loop);
    if (one_job) {
        j.unit = "%";
        ppx_awaitable *aw;
        uint64_t n = (uint64_t)j.jobs * j.iterations;
        rc = ppx_run_in_executorf(&loop, pool, &aw, "spin", "U", (unsigned long long)n);
        if (rc == 0) {
            ppx_awaitable_on_progress(aw, draw_steps, &j);
            ppx_run_until_complete(&loop, aw);
            if (ppx_awaitable_state(aw) == PPX_DONE)
                printf("%sone job of %llu iterations done\n", j.tty ? "\n" : "",
                       (unsigned long long)n);
            else
                printf("\nfailed: %s\n", ppx_awaitable_error(aw)->message);
            ppx_awaitable_unref(aw);
        }
        ppx_pool_free(pool);
        uv_run(&loop, UV_RUN_DEFAULT);
        uv_loop_close(&loop);
        return rc ? 1 : 0;
    }
    ppx_awaitable *map;
    rc = ppx_map_lazy(&loop, pool, "spin", 2 * (size_t)ppx_pool_workers(pool), next_input, NULL,
                      &j, &map);
    if (rc == 0) {
        ppx_awaitable_on_progress(map, draw, &j);
        ppx_run_until_complete(&loop, map);
        if (ppx_awaitable_state(map) == PPX_DONE)
            printf("%s%zu jobs done\n", j.tty ? "\n" : "", j.jobs);
        else
            printf("\nfailed: %s\n", ppx_awaitable_error(map)->message);
        ppx_awaitable_unref(map);
    }
    ppx_pool_free(pool);
    uv_run(&loop, UV_RUN_DEFAULT);
    uv_loop_close(&loop);
    return rc ? 1 : 0;
}
