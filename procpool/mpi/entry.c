/*
 * The MPI backend's entry (entry.h): what the core calls, in the static
 * library and in the module the shared library loads.
 */
#include "entry.h"
#include "remote.h"
#include "procpool/errors.h"
#include "ppx_abi_token.h"

const ppx__mpi_entry ppx__mpi_entry_point = {
    .version = PPX__VERSION_STRING,
    .token = PPX__ABI_TOKEN,
    .ops = &ppx__mpi_ops,
    .node_serve = ppx__node_serve,
};
