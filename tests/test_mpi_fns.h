/* The functions tests/test_mpi.c's nodes run, registered on every rank:
 *   echo(x) -> x;  rank_of_node() -> the node's rank;
 *   unlucky() raises ValueError "Unlucky number!";
 *   spin(name, cooperate) marks "<name>.run" in the marker directory,
 *     spins until cancelled (never looking if cooperate is false) and
 *     marks "<name>.stop";
 *   paced() sleeps SLOW_MS on rank 1, FAST_MS elsewhere, returns the rank;
 *   crash() aborts;  where_is_node() -> test_mpi_where's text. */
#ifndef PPX_TESTS_TEST_MPI_FNS_H
#define PPX_TESTS_TEST_MPI_FNS_H
#include <stddef.h>

enum { SLOW_MS = 2000, FAST_MS = 20 };

/* Registers them all; marker_dir (borrowed, for the process's life) is
 * where spin writes its markers. */
void test_mpi_register(const char *marker_dir);
/* Where this process runs: "<hostname> <network namespace>" into out. */
void test_mpi_where(char *out, size_t cap);

#endif
