/*
 * A module that looks like the MPI backend's but is not from this build
 * (test_mpi_module.c): it exports the entry with FAKE_VERSION and
 * FAKE_TOKEN, and nothing a loader that took it could run.
 */
#include "procpool/mpi/entry.h"
#include "ppx_abi_token.h"

const ppx__mpi_entry ppx__mpi_entry_point = {
    .version = FAKE_VERSION,
    .token = FAKE_TOKEN,
    .ops = NULL,
    .node_serve = NULL,
};
