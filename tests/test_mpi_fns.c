/* The functions tests/test_mpi.c's nodes run (test_mpi_fns.h). */
#include "test_mpi_fns.h"
#include "test_mpi_support.h"
#include "ppx.h"

#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static const char *dir;

static int echo(ppx_call *c, void *u)
{
    (void)u;
    ppx_value v;
    int rc = ppx_call_arg(c, 0, &v);
    return rc ? rc : ppx_return_raw(c, v.data, v.len);
}

static int rank_of_node(ppx_call *c, void *u)
{
    (void)u;
    const char *r = getenv("OMPI_COMM_WORLD_RANK");
    return ppx_return_int(c, r ? atoi(r) : -1);
}

void test_mpi_where(char *out, size_t cap)
{
    char host[64] = "", ns[64] = "";
    gethostname(host, sizeof host - 1);
    ssize_t n = readlink("/proc/self/ns/net", ns, sizeof ns - 1);
    snprintf(out, cap, "%s %.*s", host, (int)(n > 0 ? n : 0), ns);
}

static int where_is_node(ppx_call *c, void *u)
{
    (void)u;
    char w[160];
    test_mpi_where(w, sizeof w);
    return ppx_return_str(c, w, strlen(w));
}

static int unlucky(ppx_call *c, void *u)
{
    (void)u;
    return ppx_raise(c, "ValueError", "Unlucky number!");
}

static void mark(const char *name, const char *what)
{
    support_marker_write(dir, name, what);
}

/* Marks "<name>.run", then spins until cancelled and marks "<name>.stop";
 * with cooperate false it never looks at the flag. */
static int spin(ppx_call *c, void *u)
{
    (void)u;
    ppx_value v;
    char name[32] = "";
    bool cooperate = true;
    const char *str;
    size_t n;
    if (ppx_call_arg(c, 0, &v) == 0 && ppx_value_str(v, &str, &n) == 0)
        snprintf(name, sizeof name, "%.*s", (int)n, str);
    if (ppx_call_arg(c, 1, &v) == 0)
        ppx_value_bool(v, &cooperate);
    char run[48];
    snprintf(run, sizeof run, "%s.run", name);
    mark(run, "running");
    for (;;) {
        if (cooperate && ppx_call_cancelled(c)) {
            snprintf(run, sizeof run, "%s.stop", name);
            mark(run, "stopped");
            return ppx_raise(c, "CancelledError", "saw the flag");
        }
        usleep(1000);
    }
}

/* One node 100 times slower than the other: SLOW_MS on rank 1, FAST_MS
 * on rank 2; returns the rank. */
static int paced(ppx_call *c, void *u)
{
    (void)u;
    const char *r = getenv("OMPI_COMM_WORLD_RANK");
    int rank = r ? atoi(r) : -1;
    usleep(rank == 1 ? SLOW_MS * 1000 : FAST_MS * 1000);
    return ppx_return_int(c, rank);
}

static int crash(ppx_call *c, void *u)
{
    (void)c;
    (void)u;
    abort();
}

void test_mpi_register(const char *marker_dir)
{
    dir = marker_dir;
    ppx_register("echo", echo, NULL);
    ppx_register("rank_of_node", rank_of_node, NULL);
    ppx_register("unlucky", unlucky, NULL);
    ppx_register("spin", spin, NULL);
    ppx_register("crash", crash, NULL);
    ppx_register("paced", paced, NULL);
    ppx_register("where_is_node", where_is_node, NULL);
}
