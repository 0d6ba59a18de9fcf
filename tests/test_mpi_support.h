/* Helpers of the MPI suites (run by tests/test_mpi_job.sh). */
#ifndef PPX_TESTS_TEST_MPI_SUPPORT_H
#define PPX_TESTS_TEST_MPI_SUPPORT_H
#include <stdbool.h>
#include <stddef.h>

/* Sends this process's stderr to a new temporary file, whose name goes
 * to path (cap bytes); returns the descriptor to give
 * support_restore_stderr, or -1 (nothing changed). */
int support_capture_stderr(char *path, size_t cap);
/* Puts stderr back (saved: support_capture_stderr's answer; -1: no-op). */
void support_restore_stderr(int saved);
/* The text of file path into buf (NUL-terminated): its length, -1 if it
 * cannot be read. */
long support_read_file(const char *path, char *buf, size_t cap);
/* Writes rank 0's result where test_mpi_job.sh looks for it
 * (PPX_TEST_STATUS): mpirun's exit status does not carry it under
 * --enable-recovery. */
void support_mpi_status(int failed);
/* Marker files in dir, which every rank of the job agrees on: written
 * ("<what> <pid>"), looked for, their pid read (0: none), waited for
 * (false after timeout_ms). */
void support_marker_write(const char *dir, const char *name, const char *what);
bool support_marker_exists(const char *dir, const char *name);
long support_marker_pid(const char *dir, const char *name);
bool support_marker_wait(const char *dir, const char *name, int timeout_ms);

#endif
