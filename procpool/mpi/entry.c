/*
 * The MPI backend's entry (entry.h): what the core calls, in the static
 * library and in the module the shared library loads.
 */
#include "entry.h"
#include "remote.h"
#include "ppx_abi_token.h"

#define S2(x) #x
#define S(x) S2(x)

const ppx__mpi_entry ppx__mpi_entry_point = {
    .version = S(PPX_VERSION_MAJOR) "." S(PPX_VERSION_MINOR) "." S(PPX_VERSION_PATCH),
    .token = PPX__ABI_TOKEN,
    .ops = &ppx__mpi_ops,
    .node_serve = ppx__node_serve,
};
