/*
 * A live progress bar over a lazy map: N CPU jobs pulled one at a time,
 * at most 2 * workers in flight, the bar redrawn from the map's progress
 * callback on the loop thread. On a terminal the bar updates in place;
 * otherwise a line is printed every 10%.
 *
 *   ./build/examples/progress_bar [--jobs N] [--iterations M]
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
    }
    return ppx_return_uint(c, x);
}

typedef struct job {
    size_t jobs;
    uint64_t iterations;
    unsigned char args[16];
    bool tty;
    size_t last_tenth;
} job;

static int next_input(void *arg, size_t i, const void **args, size_t *len)
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

static void draw(ppx_awaitable *aw, size_t done, size_t total, void *arg)
{
    (void)aw;
    (void)total; /* a lazy map does not know its length; we do */
    job *j = arg;
    if (j->tty) {
        char bar[41];
        size_t fill = done * 40 / j->jobs;
        memset(bar, '#', fill);
        memset(bar + fill, '.', 40 - fill);
        bar[40] = '\0';
        printf("\r[%s] %zu/%zu", bar, done, j->jobs);
        fflush(stdout);
    } else if (done * 10 / j->jobs > j->last_tenth) {
        j->last_tenth = done * 10 / j->jobs;
        printf("%zu/%zu done\n", done, j->jobs);
    }
}

int main(int argc, char **argv)
{
    job j = {.jobs = 200, .iterations = 20000000, .tty = isatty(STDOUT_FILENO)};
    for (int i = 1; i + 1 < argc; i += 2) {
        if (strcmp(argv[i], "--jobs") == 0)
            j.jobs = strtoul(argv[i + 1], NULL, 10);
        else if (strcmp(argv[i], "--iterations") == 0)
            j.iterations = strtoull(argv[i + 1], NULL, 10);
    }
    if (j.jobs == 0)
        return fprintf(stderr, "--jobs must be at least 1\n"), 2;
    ppx_register("spin", spin, NULL);
    ppx_pool *pool;
    int rc = ppx_pool_new(&pool, NULL);
    if (rc)
        return fprintf(stderr, "ppx_pool_new: %s\n", ppx_strerror(rc)), 1;
    uv_loop_t loop;
    uv_loop_init(&loop);
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
