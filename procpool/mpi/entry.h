/*
 * How the core reaches the MPI backend. The backend needs libmpi, and
 * loading libmpi (with Open MPI's libopen-rte, libopen-pal, hwloc,
 * libevent, udev) costs every process that links ppx ~95 page faults and
 * ~2.5 ms at start-up, and 48 more mappings that every fork of the pool
 * then copies (~0.1 ms more for a fork of a fork). So in the shared
 * library the backend is a module of its own (libppx-mpi-VERSION.so,
 * next to libppx.so), loaded only when a pool is made under mpirun
 * (load.c); the static library links it in (linked.c), as a static link
 * cannot load a module that needs the library's own internals.
 */
#ifndef PPX_PROCPOOL_MPI_ENTRY_H
#define PPX_PROCPOOL_MPI_ENTRY_H
#include "procpool/backend.h"

/* What the module gives the core. The module uses the library's
 * internals (its exported PPX_PRIVATE symbols, ppx.map), so only the build
 * it came from may load it: version is the release, token a hash of the
 * headers both compile against and of the build's configuration
 * (tools/abi_token.py); both must equal the loading library's. */
typedef struct ppx__mpi_entry {
    const char *version;
    const char *token;
    /* Rank 0's pool: the other ranks are its workers. */
    const ppx__backend_ops *ops;
    /* Another rank: serves rank 0's calls and exits; returns only if it
     * could not start (mpi/remote.h). */
    int (*node_serve)(const ppx_pool_options *o);
} ppx__mpi_entry;

/* The module's one exported symbol (entry.c). */
#define PPX__MPI_ENTRY_SYMBOL "ppx__mpi_entry_point"
extern const ppx__mpi_entry ppx__mpi_entry_point;

/* The backend's entry, or NULL with ppx_last_error() saying why (the
 * module missing, not loadable, or from another build). Any thread. */
const ppx__mpi_entry *ppx__mpi_entry_get(void);

#endif
