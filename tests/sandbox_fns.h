/* test_sandbox.c's worker functions (sandbox_fns.c). */
#ifndef PPX_TESTS_SANDBOX_FNS_H
#define PPX_TESTS_SANDBOX_FNS_H
#include <stddef.h>

/* Registers try_open, try_write_file, try_connect, try_exec, try_fork,
 * try_kill_parent, try_ptrace, add, alloc, big, steps, until_cancelled,
 * burn, sched, limits, open_many, read_init, blocked_sigsys_open,
 * take_sigsys, burn_cpu, threads and len_of (see sandbox_fns.c). */
void sandbox_fns_register(void);
/* An initializer that opens the file named by arg (a char *), which
 * read_init then reads: before the sandbox, a worker may open files. */
int sandbox_init_open(char *err, size_t errlen, void *arg);
/* An initializer that installs a filter of its own making seccomp(2)
 * and prctl(PR_SET_SECCOMP) fail with EPERM. */
int sandbox_init_refuse_filters(char *err, size_t errlen, void *arg);

#endif
