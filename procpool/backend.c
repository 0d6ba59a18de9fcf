/*
 * Which backend ppx_pool_new builds. mpirun tells each process its rank
 * and the job's size through the environment before MPI_Init, which is
 * what lets a node start its local pool (and fork its workers) before
 * MPI is up; see mpi_node.c.
 */
#include "remote.h"

#include <stdlib.h>
#include <string.h>

static long env_long(const char *a, const char *b)
{
    const char *v = getenv(a);
    if (!v || !*v)
        v = getenv(b);
    return v && *v ? strtol(v, NULL, 10) : -1;
}

int ppx__backend_choose(const ppx_pool_options *o, int *be)
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
    return 0;
#endif
}
