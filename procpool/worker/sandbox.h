/*
 * What a pool's workers may do (ppx_pool_options: sandbox, the resource
 * limits and scheduling; docs/SECURITY.md). The parent checks the options
 * and resolves names once (ppx__sandbox_new); each worker applies the
 * result to itself: scheduling when it starts, limits and the seccomp
 * filter after its initializer ran. A violation ends the worker with
 * PPX__EXIT_SANDBOX and the system call's number in its block; the parent
 * turns that into the running call's "SandboxViolation" (exits.c).
 */
#ifndef PPX_PROCPOOL_WORKER_SANDBOX_H
#define PPX_PROCPOOL_WORKER_SANDBOX_H
#include "ppx.h"
#include "procpool/wire/shared.h"

#include <sched.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define PPX__SANDBOX_ALLOW_MAX 64

typedef struct ppx__sandbox {
    int profile;                          /* PPX_SANDBOX_* */
    int nallow;
    int allow[PPX__SANDBOX_ALLOW_MAX];    /* sandbox_allow, resolved */
    size_t memory_limit;                  /* RLIMIT_AS headroom; 0: none */
    unsigned cpu_limit_s, max_open_files;
    bool no_core;
    int nice, policy;                     /* policy: PPX_SCHED_* */
    bool affinity;
    cpu_set_t cpus;
} ppx__sandbox;

/* In the parent, from resolved options: *out is NULL when o asks for
 * none of this, else a new object (ppx__sandbox_free). PPX_EINVAL for a
 * value out of range, PPX_ENOTSUP when a sandbox is asked for where
 * libseccomp or the kernel's seccomp filters are missing, PPX_ENOMEM;
 * ppx_last_error() says which field or why. */
int ppx__sandbox_new(const ppx_pool_options *o, ppx__sandbox **out);
void ppx__sandbox_free(ppx__sandbox *sb);
/* Whether o sets any of the fields above (the MPI backend refuses them). */
bool ppx__sandbox_wanted(const ppx_pool_options *o);

/* In a worker, when it starts: nice, policy and affinity. 0, or -1 with
 * a message in err (errlen bytes). */
int ppx__sandbox_schedule(const ppx__sandbox *sb, char *err, size_t errlen);
/* In a worker, after its initializer: the resource limits, then the
 * filter, whose violations are reported through ws. *cpu_retire_ns gets
 * the process CPU time past which the worker should retire between
 * calls (0: never). 0, or -1 with a message in err. */
int ppx__sandbox_enter(const ppx__sandbox *sb, ppx__wshared *ws, int64_t *cpu_retire_ns,
                       char *err, size_t errlen);
/* The process's CPU time in ns (CLOCK_PROCESS_CPUTIME_ID). */
int64_t ppx__sandbox_cpu_ns(void);

/* sandbox.c, for limits.c: the SIGSYS (sys) and SIGXCPU (cpu) handlers
 * that report through ws and end the worker (0 or -errno); the filter
 * (0, or -1 with a message in err). */
int ppx__sandbox_arm_reports(ppx__wshared *ws, bool sys, bool cpu);
int ppx__sandbox_install(const ppx__sandbox *sb, char *err, size_t errlen);

/* In the parent: the name of system call nr on this machine, written to
 * buf ("syscall 999" when unknown). Returns buf. */
const char *ppx__sandbox_syscall_name(int nr, char *buf, size_t n);

#endif
