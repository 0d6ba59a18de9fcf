/*
 * offload_server: options, startup and shutdown.
 *
 *   offload_server [--port N] [--workers N] [--inline] [limits...]
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
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>

typedef struct opts {
    int port;
    int workers;
    int worker_nice;
    int worker_sched; /* PPX_SCHED_* */
    bool inline_mode;
    bool sandbox;
    server_limits lim;
} opts;

/* One option taking an integer: its name, range, where it goes, and
 * the line --help prints. */
typedef struct int_opt {
    const char *name;
    long lo, hi;
    size_t offset; /* into opts */
    const char *help;
} int_opt;

#define LIM(field) offsetof(opts, lim.field)
static const int_opt int_opts[] = {
    {"port", 0, 65535, offsetof(opts, port),
     "listen on 127.0.0.1:N; 0 picks a free port (default 8080)"},
    {"workers", 1, 256, offsetof(opts, workers), "pool workers (default: one per CPU)"},
    {"worker-nice", 0, 19, offsetof(opts, worker_nice),
     "added to the workers' nice value, so the loop wins the CPU from them (default 10)"},
    {"max-connections", 1, 1000000, LIM(max_connections),
     "open connections; past it a new one gets 503 and is closed (default 1024)"},
    {"max-outstanding", 1, 1000000, LIM(max_outstanding),
     "responses not yet sent per connection before parsing pauses (default 64)"},
    {"max-requests-per-read", 1, 1000000, LIM(max_requests_per_read),
     "requests parsed per connection before others get a turn (default 16)"},
    {"send-buffer", 0, 16777216, LIM(send_buffer),
     "the kernel's send buffer per connection, bytes (SO_SNDBUF); 0: the kernel's "
     "autotuning (default 65536)"},
    {"header-timeout-ms", 1, 86400000, LIM(header_timeout_ms),
     "a started request must arrive whole within N ms, else 408 (default 10000)"},
    {"idle-timeout-ms", 1, 86400000, LIM(idle_timeout_ms),
     "close a connection idle this long while no job of it runs (default 5000)"},
    {"max-jobs", 1, 1000000, LIM(max_jobs),
     "jobs queued or running in the pool; past it 503 + Retry-After (default 64)"},
    {"job-timeout-ms", 0, 86400000, LIM(job_timeout_ms),
     "a job's deadline, then it is stopped and 504 answered; 0: none (default 30000)"},
};
#define N_INT_OPTS (sizeof int_opts / sizeof int_opts[0])

static void usage(FILE *to)
{
    fprintf(to, "usage: offload_server [options]\n");
    for (size_t i = 0; i < N_INT_OPTS; i++)
        fprintf(to, "  --%-22s %s\n", int_opts[i].name, int_opts[i].help);
    fprintf(to, "  --%-22s %s\n", "inline", "compute /lucky, /work and /hash on the loop thread, no pool");
    fprintf(to, "  --%-22s %s\n", "worker-sched POLICY",
            "the workers' policy: other, batch or idle (idle: they run only when nothing "
            "else wants the CPU; default idle)");
    fprintf(to, "  --%-22s %s\n", "sandbox",
            "workers can compute and nothing else (seccomp; docs/SECURITY.md)");
    fprintf(to, "  --%-22s %s\n", "help", "this text");
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

/* PPX_SCHED_* for a policy's name, or -1. */
static int sched_policy(const char *name)
{
    static const struct {
        const char *name;
        int policy;
    } names[] = {{"other", PPX_SCHED_OTHER}, {"batch", PPX_SCHED_BATCH}, {"idle", PPX_SCHED_IDLE}};
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++)
        if (strcmp(name, names[i].name) == 0)
            return names[i].policy;
    return -1;
}

static int parse(int argc, char **argv, opts *o)
{
    struct option longs[N_INT_OPTS + 5];
    for (size_t i = 0; i < N_INT_OPTS; i++)
        longs[i] = (struct option){int_opts[i].name, required_argument, NULL, (int)(i + 1)};
    longs[N_INT_OPTS] = (struct option){"inline", no_argument, NULL, 'i'};
    longs[N_INT_OPTS + 1] = (struct option){"help", no_argument, NULL, 'h'};
    longs[N_INT_OPTS + 2] = (struct option){"sandbox", no_argument, NULL, 's'};
    longs[N_INT_OPTS + 3] = (struct option){"worker-sched", required_argument, NULL, 'w'};
    longs[N_INT_OPTS + 4] = (struct option){NULL, 0, NULL, 0};
    *o = (opts){.port = 8080,
                .worker_nice = 10,
                .worker_sched = PPX_SCHED_IDLE,
                .lim = {.max_connections = 1024, .max_outstanding = 64,
                        .max_requests_per_read = 16, .send_buffer = 65536,
                        .header_timeout_ms = 10000,
                        .idle_timeout_ms = 5000, .max_jobs = 64, .job_timeout_ms = 30000}};
    int c;
    while ((c = getopt_long(argc, argv, "", longs, NULL)) != -1) {
        if (c >= 1 && c <= (int)N_INT_OPTS) {
            const int_opt *io = &int_opts[c - 1];
            if (!parse_int(optarg, io->lo, io->hi, (int *)((char *)o + io->offset)))
                return fprintf(stderr, "--%s takes %ld..%ld\n", io->name, io->lo, io->hi), -1;
        } else if (c == 'i') {
            o->inline_mode = true;
        } else if (c == 's') {
            o->sandbox = true;
        } else if (c == 'w') {
            if ((o->worker_sched = sched_policy(optarg)) < 0)
                return fprintf(stderr, "--worker-sched takes other, batch or idle\n"), -1;
        } else if (c == 'h') {
            usage(stdout);
            exit(0);
        } else {
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

/* Each connection holds a descriptor: raise the soft limit to the hard one
 * and lower --max-connections to what fits, keeping some for the pool
 * and the loop, so that past the cap clients get a 503, not a reset from
 * a failed accept. */
static void fit_descriptor_limit(opts *o)
{
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) != 0)
        return;
    if (rl.rlim_cur < rl.rlim_max) {
        rl.rlim_cur = rl.rlim_max;
        if (setrlimit(RLIMIT_NOFILE, &rl) != 0)
            (void)getrlimit(RLIMIT_NOFILE, &rl);
    }
    rlim_t reserve = 64 + 8 * (rlim_t)(o->workers > 0 ? o->workers : 64);
    rlim_t room = rl.rlim_cur > reserve + 16 ? rl.rlim_cur - reserve : 16;
    if ((rlim_t)o->lim.max_connections > room) {
        fprintf(stderr, "offload_server: --max-connections lowered to %llu (open files limit %llu)\n",
                (unsigned long long)room, (unsigned long long)rl.rlim_cur);
        o->lim.max_connections = (int)room;
    }
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
    uv_close((uv_handle_t *)&s->resume, NULL);
    uv_close((uv_handle_t *)&s->turn_end, NULL);
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

/* Registers the worker functions and starts the pool, before the loop and
 * its signal handlers exist (the pool forks its fork server now). The
 * workers' scheduling options, when the pool has them, are set here from
 * the command line. 0, or main's exit status. */
static int start_pool(const opts *o, ppx_pool **pool)
{
    int rc = ppx_register("lucky_number", lucky_number, NULL);
    if (rc == 0)
        rc = ppx_register("work", work_fn, NULL);
    if (rc == 0)
        rc = ppx_register("hash", hash_fn, NULL);
    if (rc == 0)
        rc = ppx_register("crash", crash_fn, NULL);
    if (rc)
        return fail("registering the functions", rc);
    /* Workers at the lowest priority (SCHED_IDLE by default; nice alone
     * did not do it: with workers at nice 10, /ping's p99 under a /hash
     * load was 57 ms, with SCHED_IDLE 12 ms): with one worker per CPU
     * the loop still gets a CPU at once when a request comes (issue 16).
     * Jobs only wait for CPU the loop leaves; their deadline bounds it. Under --sandbox the initializer lets
     * OpenSSL read its configuration before the filter forbids files. */
    ppx_pool_options po = PPX_POOL_OPTIONS(.workers = o->workers, .nice = o->worker_nice,
                                           .sched_policy = o->worker_sched);
    if (o->sandbox) {
        po.sandbox = PPX_SANDBOX_COMPUTE;
        po.initializer = hash_warm_up;
    }
    rc = ppx_pool_new(&po, pool);
    if (rc == PPX_ENOTSUP)
        fprintf(stderr, "offload_server: --sandbox: %s\n", ppx_last_error());
    if (rc)
        return fail("starting the pool", rc);
    return 0;
}

int main(int argc, char **argv)
{
    opts o;
    if (parse(argc, argv, &o))
        return 2;
    fit_descriptor_limit(&o);
    /* A peer that leaves while its answer is written must not kill us. */
    signal(SIGPIPE, SIG_IGN);

    static server s; /* big (the read buffer), and reached from callbacks */
    s.inline_mode = o.inline_mode;
    s.lim = o.lim;
    if (!o.inline_mode) {
        int rc = start_pool(&o, &s.pool);
        if (rc)
            return rc;
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
