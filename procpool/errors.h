/* The thread's last error details (ppx_last_error). */
#ifndef PPX_PROCPOOL_ERRORS_H
#define PPX_PROCPOOL_ERRORS_H

#include "ppx.h"

/* ppx.h's version as a string literal, "MAJOR.MINOR.PATCH" (PPX__STR is
 * ppx.h's): what ppx_version() returns, and what the MPI module and its
 * loader compare (mpi/entry.h). */
#define PPX__VERSION_STRING                                                                 \
    PPX__STR(PPX_VERSION_MAJOR) "." PPX__STR(PPX_VERSION_MINOR) "." PPX__STR(PPX_VERSION_PATCH)

/* Sets what ppx_last_error() returns on this thread. */
void ppx__set_last_error(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

#endif
