/*
 * offload_server: options, startup and shutdown.
 *
 *   offload_server [--port N] [--workers N] [--inline]
 *
 * Listens on 127.0.0.1:N (0: a free port) and prints
 * "listening on 127.0.0.1:PORT" once it accepts connections. SIGINT or
 * SIGTERM stop it: the listener closes, running jobs are cancelled,
 * connections close, the pool's workers are stopped and reaped, and the
 * process exits 0 once the loop has closed every handle.
 */
#include "compute.h"
#include "lucky.h"
#include "server.h"

#include <errno.h>
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>

typedef struct opts {
    int port;
    int workers;
    bool inline_mode;
} opts;

static void usage(FILE *to)
{
    fprintf(to, "usage: offload_server [--port N] [--workers N] [--inline]\n"
                "  --port N     listen on 127.0.0.1:N; 0 picks a free port (default 8080)\n"
                "  --workers N  pool workers, 1..256 (default: one per CPU)\n"
                "  --inline     compute /lucky and /work on the loop thread, no pool\n");
}

static bool parse_int(const char *s, long lo, long hi, int *out)
{
    char *end;
    errno = 0;
    long v = strtol(s, &end, 10);
    if (errno || end == s || *end || v < lo || v > hi)
        return false;
    *out = (int)v;
    return true;
}

static int parse(int argc, char **argv, opts *o)
{
    static const struct option longs[] = {
        {"port", required_argument, NULL, 'p'},
        {"workers", required_argument, NULL, 'w'},
        {"inline", no_argument, NULL, 'i'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    *o = (opts){.port = 8080};
    int c;
    while ((c = getopt_long(argc, argv, "", longs, NULL)) != -1) {
        switch (c) {
        case 'p':
            if (!parse_int(optarg, 0, 65535, &o->port))
                return fprintf(stderr, "--port takes 0..65535\n"), -1;
            break;
        case 'w':
            if (!parse_int(optarg, 1, 256, &o->workers))
                return fprintf(stderr, "--workers takes 1..256\n"), -1;
            break;
        case 'i':
            o->inline_mode = true;
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
    return 0;
}

static void on_signal(uv_signal_t *h, int signum)
{
    (void)signum;
    server_stop(h->data);
}

void server_stop(server *s)
{
    if (s->stopping)
        return;
    s->stopping = true;
    uv_close((uv_handle_t *)&s->listener, NULL);
    uv_close((uv_handle_t *)&s->sigint, NULL);
    uv_close((uv_handle_t *)&s->sigterm, NULL);
    server_close_connections(s);
    if (s->pool) {
        /* The connections' jobs are cancelled by now; this catches any
         * other, then free stops and reaps the workers and the zygote. */
        ppx_pool_shutdown(s->pool, PPX_SHUTDOWN_CANCEL, 1000);
        ppx_pool_free(s->pool);
        s->pool = NULL;
    }
}

static int fail(const char *what, int rc)
{
    fprintf(stderr, "offload_server: %s: %s\n", what,
            rc < -4095 ? ppx_strerror(rc) : uv_strerror(rc));
    return 1;
}

int main(int argc, char **argv)
{
    opts o;
    if (parse(argc, argv, &o))
        return 2;
    /* A peer that leaves while its answer is written must not kill us. */
    signal(SIGPIPE, SIG_IGN);

    static server s; /* big (the read buffer), and reached from callbacks */
    s.inline_mode = o.inline_mode;
    if (!o.inline_mode) {
        int rc = ppx_register("lucky_number", lucky_number, NULL);
        if (rc == 0)
            rc = ppx_register("work", work_fn, NULL);
        if (rc)
            return fail("registering the functions", rc);
        /* Before the loop and its signal handlers exist: the pool forks
         * its fork server now. */
        rc = ppx_pool_new(&PPX_POOL_OPTIONS(.workers = o.workers), &s.pool);
        if (rc)
            return fail("starting the pool", rc);
    }

    uv_loop_t loop;
    int rc = uv_loop_init(&loop);
    if (rc) {
        ppx_pool_free(s.pool);
        return fail("creating the loop", rc);
    }
    s.loop = &loop;
    int port = 0;
    rc = server_listen(&s, o.port, &port);
    if (rc) {
        ppx_pool_free(s.pool);
        uv_run(&loop, UV_RUN_DEFAULT);
        uv_loop_close(&loop);
        return fail("listening", rc);
    }
    uv_signal_init(&loop, &s.sigint);
    uv_signal_init(&loop, &s.sigterm);
    s.sigint.data = s.sigterm.data = &s;
    uv_signal_start(&s.sigint, on_signal, SIGINT);
    uv_signal_start(&s.sigterm, on_signal, SIGTERM);

    printf("listening on 127.0.0.1:%d\n", port);
    fflush(stdout);

    uv_run(&loop, UV_RUN_DEFAULT);
    server_stop(&s); /* no-op after a signal; frees the pool otherwise */
    uv_run(&loop, UV_RUN_DEFAULT);
    rc = uv_loop_close(&loop);
    if (rc)
        return fail("closing the loop", rc);
    fprintf(stderr, "offload_server: stopped after %llu requests\n",
            (unsigned long long)s.count.requests);
    return s.failed ? 1 : 0;
}
