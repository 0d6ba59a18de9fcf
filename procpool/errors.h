/* The thread's last error details (ppx_last_error). */
#ifndef PPX_PROCPOOL_ERRORS_H
#define PPX_PROCPOOL_ERRORS_H

/* Sets what ppx_last_error() returns on this thread. */
void ppx__set_last_error(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

#endif
