/*
 * ppx_pool_new: which backend runs the pool's calls. mpirun tells each
 * process its rank and the job's size through the environment before
 * MPI_Init, which is what lets a node start its local pool (and fork its
 * workers) before MPI is up; see mpi/mpi_node.c.
 */
#include "core.h"
#include "local/local.h"
#include "worker/sandbox.h"
#include "mpi/entry.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

/* What this process is for a new pool: a local pool, rank 0 of an MPI
 * pool, or a node serving rank 0 (another rank of the job). */
enum { PPX__BE_LOCAL, PPX__BE_ROOT, PPX__BE_NODE };

static long env_long(const char *a, const char *b)
{
    const char *v = getenv(a);
    if (!v || !*v)
        v = getenv(b);
    return v && *v ? strtol(v, NULL, 10) : -1;
}

static int choose(const ppx_pool_options *o, int *be)
{
    int want = o->backend;
    if (want < PPX_BACKEND_AUTO || want > PPX_BACKEND_MPI)
        return PPX_EINVAL;
    const char *env = getenv("PPX_BACKEND");
    if (want == PPX_BACKEND_AUTO && env && *env) {
        if (strcmp(env, "local") == 0) {
            want = PPX_BACKEND_LOCAL;
        } else if (strcmp(env, "mpi") == 0) {
            want = PPX_BACKEND_MPI;
        } else {
            ppx__set_last_error("PPX_BACKEND is '%.40s'; it takes local or mpi", env);
            return PPX_EINVAL;
        }
    }
    *be = PPX__BE_LOCAL;
    if (want == PPX_BACKEND_LOCAL)
        return 0;
    /* Open MPI's launcher, then the PMI names MPICH's uses. */
    long size = env_long("OMPI_COMM_WORLD_SIZE", "PMI_SIZE");
    long rank = env_long("OMPI_COMM_WORLD_RANK", "PMI_RANK");
    if (size <= 1 || rank < 0) {
        if (want == PPX_BACKEND_AUTO)
            return 0;
        ppx__set_last_error("the MPI backend needs mpirun with 2 or more ranks "
                            "(rank 0 runs the program, the others run calls)");
        return PPX_EBACKEND;
    }
#ifndef PPX_HAVE_MPI
    ppx__set_last_error("started by mpirun with %ld ranks, but this ppx was built without "
                        "MPI (meson setup -Dmpi=enabled); set PPX_BACKEND=local to run "
                        "every rank on its own",
                        size);
    return PPX_EBACKEND;
#else
    *be = rank == 0 ? PPX__BE_ROOT : PPX__BE_NODE;
    return ppx__mpi_entry_get() ? 0 : PPX_EBACKEND;
#endif
}

/* The kernel's "no memory" (mmap, epoll_create1, eventfd, timerfd) is
 * ppx's PPX_ENOMEM at the API; other negated errno values pass as
 * ppx_pool_new's doc says. */
static int api_code(int rc)
{
    return rc == -ENOMEM ? PPX_ENOMEM : rc;
}

int ppx_pool_new(const ppx_pool_options *opts, ppx_pool **out)
{
    if (!out)
        return PPX_EINVAL;
    ppx__set_last_error("%s", ""); /* no stale details on a later failure */
    ppx_pool_options o;
    int be = PPX__BE_LOCAL;
    int rc = ppx__options_resolve(&o, opts);
    if (rc == 0)
        rc = choose(&o, &be);
    if (rc == 0 && be != PPX__BE_LOCAL && ppx__sandbox_wanted(&o)) {
        /* Their pointers do not travel to other ranks, nor would a rank's
         * refusal reach rank 0 in time. */
        ppx__set_last_error("the sandbox, limit and scheduling options are the local "
                            "backend's: an MPI pool does not take them");
        rc = PPX_ENOTSUP;
    }
    if (rc)
        return rc;
    /* This rank lends itself to rank 0's pool and exits when rank 0
     * does: ppx__node_serve returns only if it could not start. */
#ifdef PPX_HAVE_MPI
    if (be == PPX__BE_NODE)
        return api_code(ppx__mpi_entry_get()->node_serve(&o));
    if (be == PPX__BE_ROOT)
        return api_code(ppx__pool_open(out, &o, ppx__mpi_entry_get()->ops));
#endif
    return api_code(ppx__pool_open(out, &o, &ppx__local_ops));
}
