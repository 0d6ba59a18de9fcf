/*
 * The seccomp-bpf filter a sandboxed worker installs on itself, and how
 * it reports a violation. The filter is built in the worker (its rules
 * name the worker's own pid, for kill and tgkill) with libseccomp, after
 * the resource limits (limits.c) and before the first call.
 *
 * A forbidden call traps (SCMP_ACT_TRAP): the kernel raises SIGSYS
 * without running it, and the handler below stores the call's number in
 * the worker's block, leaves the exit note of PPX__EXIT_SANDBOX and ends
 * the process, all async-signal-safe (the function may have been inside
 * malloc). An error reply from inside the handler would need the
 * allocator and the reply path's buffers in whatever state the function
 * left them, so the parent builds the call's error instead, as it does
 * for a crash (exits.c): it knows the task, the function and the pid,
 * and names the system call from the number. A function that blocks or
 * takes over SIGSYS is killed by it instead (the kernel forces the
 * signal), which the parent reports as a violation of unknown number.
 */
#include "sandbox.h"
#include "worker.h"

#include <errno.h>
#include <fcntl.h>
#include <sched.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/syscall.h>
#include <termios.h>
#include <unistd.h>

#ifdef PPX_HAVE_SECCOMP
#include <seccomp.h>
/* libseccomp's SCMP_A0..A5(op, value) leave the second datum out of the
 * struct they build; clang's -Wmissing-field-initializers (on with
 * -Wextra) reports each use. The field is meant to be zero there. */
#pragma GCC diagnostic ignored "-Wmissing-field-initializers"
#endif

/* The worker's block, for the handlers: set once before they are armed. */
static ppx__wshared *report_ws;

static void leave_from_handler(uint32_t status)
{
    atomic_store_explicit(&report_ws->exit_note, ppx__exit_note(status), memory_order_relaxed);
    syscall(SYS_exit_group, (int)status); /* _exit may be a sanitizer's, doing more */
    for (;;)
        ;
}

static void on_sigsys(int sig, siginfo_t *si, void *uc)
{
    (void)sig;
    (void)uc;
    /* Only a trap of the filter carries a system call; anything else
     * raising SIGSYS (kill) is a violation of unknown number. */
    uint32_t nr = si->si_code == 1 /* SYS_SECCOMP */ ? (uint32_t)si->si_syscall : UINT32_MAX;
    atomic_store_explicit(&report_ws->violation, nr, memory_order_relaxed);
    leave_from_handler(PPX__EXIT_SANDBOX);
}

static void on_sigxcpu(int sig)
{
    (void)sig;
    leave_from_handler(PPX__EXIT_CPU);
}

int ppx__sandbox_arm_reports(ppx__wshared *ws, bool sys, bool cpu)
{
    report_ws = ws;
    sigset_t unblock;
    sigemptyset(&unblock);
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sigfillset(&sa.sa_mask); /* nothing else runs while it leaves */
    if (sys) {
        sa.sa_sigaction = on_sigsys;
        sa.sa_flags = SA_SIGINFO;
        if (sigaction(SIGSYS, &sa, NULL) != 0)
            return -errno;
        sigaddset(&unblock, SIGSYS);
    }
    if (cpu) {
        sa.sa_handler = on_sigxcpu;
        sa.sa_flags = 0;
        if (sigaction(SIGXCPU, &sa, NULL) != 0)
            return -errno;
        sigaddset(&unblock, SIGXCPU);
    }
    return sigprocmask(SIG_UNBLOCK, &unblock, NULL) == 0 ? 0 : -errno;
}

#ifdef PPX_HAVE_SECCOMP

/* What any worker needs to compute and to talk to ppx (rings, futexes,
 * its eventfd, the clock, its own signals, exit). Names this
 * architecture lacks are skipped. Conditional rules are in add_guarded. */
static const char *const compute_calls[] = {
    "read", "write", "readv", "writev", "pread64", "pwrite64", "close",
    "poll", "ppoll", "select", "pselect6", "epoll_wait", "epoll_pwait", "epoll_pwait2",
    "mmap", "munmap", "mprotect", "madvise", "brk", "mremap",
    "futex", "futex_waitv", "set_robust_list", "get_robust_list", "rseq",
    "clock_gettime", "clock_getres", "clock_nanosleep", "nanosleep", "gettimeofday", "time",
    "getpid", "gettid", "getppid", "getuid", "geteuid", "getgid", "getegid",
    "rt_sigreturn", "rt_sigprocmask", "rt_sigpending", "rt_sigsuspend", "sigaltstack", "pause",
    "exit", "exit_group", "restart_syscall", "sched_yield", "getrandom",
    "fcntl", "fstat", "uname", "sysinfo", "getrusage", "times", "getrlimit",
    "getpriority", "sched_getscheduler", "sched_getparam", "sched_getaffinity", "getcpu",
    NULL,
};

/* READ_FILES adds these, and open/openat for reading (add_guarded). */
static const char *const read_file_calls[] = {
    "lseek", "getdents64", "stat", "lstat", "newfstatat", "statx", "readlink",
    "readlinkat", "access", "faccessat", "faccessat2", "fadvise64", NULL,
};

static int add_names(scmp_filter_ctx ctx, const char *const *names)
{
    for (; *names; names++) {
        int nr = seccomp_syscall_resolve_name(*names);
        if (nr == __NR_SCMP_ERROR)
            continue; /* not a system call of this libseccomp's table */
        int rc = seccomp_rule_add(ctx, SCMP_ACT_ALLOW, nr, 0);
        if (rc < 0 && rc != -EEXIST)
            return rc;
    }
    return 0;
}

/* Threads, not processes: clone only with CLONE_THREAD (which the kernel
 * accepts only with CLONE_SIGHAND and CLONE_VM: a thread of this process,
 * under this filter), and clone3, whose flags sit in a struct no filter
 * can read, answered ENOSYS so that glibc falls back to clone. clone's
 * flags are its first argument on x86-64 and arm64; elsewhere (s390)
 * threads stay forbidden. */
static int add_threads(scmp_filter_ctx ctx)
{
    int rc = 0;
#if defined(__x86_64__) || defined(__aarch64__)
    rc |= seccomp_rule_add(ctx, SCMP_ACT_ALLOW, SCMP_SYS(clone), 1,
                           SCMP_A0(SCMP_CMP_MASKED_EQ, CLONE_THREAD, CLONE_THREAD));
    int clone3 = seccomp_syscall_resolve_name("clone3");
    if (clone3 >= 0)
        rc |= seccomp_rule_add(ctx, SCMP_ACT_ERRNO(ENOSYS), clone3, 0);
#endif
    return rc;
}

/* Signals to itself (raise, abort), its own handlers but not those the
 * sandbox relies on, fstat through newfstatat(fd, "", AT_EMPTY_PATH),
 * isatty, getrlimit through prlimit64. */
static int add_guarded(scmp_filter_ctx ctx, scmp_datum_t pid)
{
    int rc = 0;
    rc |= seccomp_rule_add(ctx, SCMP_ACT_ALLOW, SCMP_SYS(kill), 1, SCMP_A0(SCMP_CMP_EQ, pid));
    rc |= seccomp_rule_add(ctx, SCMP_ACT_ALLOW, SCMP_SYS(tgkill), 1, SCMP_A0(SCMP_CMP_EQ, pid));
    rc |= seccomp_rule_add(ctx, SCMP_ACT_ALLOW, SCMP_SYS(tkill), 1, SCMP_A0(SCMP_CMP_EQ, pid));
    /* SIGXCPU is 24 and SIGSYS 31 on every Linux architecture ppx runs
     * on; one rule may compare an argument once, hence the pieces. */
    _Static_assert(SIGXCPU < SIGSYS, "the ranges below");
    rc |= seccomp_rule_add(ctx, SCMP_ACT_ALLOW, SCMP_SYS(rt_sigaction), 1,
                           SCMP_A0(SCMP_CMP_LT, SIGXCPU));
    for (int s = SIGXCPU + 1; s < SIGSYS; s++)
        rc |= seccomp_rule_add(ctx, SCMP_ACT_ALLOW, SCMP_SYS(rt_sigaction), 1,
                               SCMP_A0(SCMP_CMP_EQ, (scmp_datum_t)s));
    rc |= seccomp_rule_add(ctx, SCMP_ACT_ALLOW, SCMP_SYS(rt_sigaction), 1,
                           SCMP_A0(SCMP_CMP_GT, SIGSYS));
    rc |= seccomp_rule_add(ctx, SCMP_ACT_ALLOW, SCMP_SYS(newfstatat), 1,
                           SCMP_A3(SCMP_CMP_MASKED_EQ, AT_EMPTY_PATH, AT_EMPTY_PATH));
    rc |= seccomp_rule_add(ctx, SCMP_ACT_ALLOW, SCMP_SYS(ioctl), 1, SCMP_A1(SCMP_CMP_EQ, TCGETS));
    rc |= seccomp_rule_add(ctx, SCMP_ACT_ALLOW, SCMP_SYS(prlimit64), 2, SCMP_A0(SCMP_CMP_EQ, 0),
                           SCMP_A2(SCMP_CMP_EQ, 0));
    return rc | add_threads(ctx);
}

/* O_TMPFILE is __O_TMPFILE | O_DIRECTORY: only its own bit is refused, so
 * that opening a directory stays allowed. */
#define TMPFILE_BIT (O_TMPFILE & ~O_DIRECTORY)
#define WRITE_BITS ((scmp_datum_t)(O_ACCMODE | O_CREAT | O_TRUNC | TMPFILE_BIT))

static int add_read_files(scmp_filter_ctx ctx)
{
    int rc = add_names(ctx, read_file_calls);
    rc |= seccomp_rule_add(ctx, SCMP_ACT_ALLOW, SCMP_SYS(openat), 1,
                           SCMP_A2(SCMP_CMP_MASKED_EQ, WRITE_BITS, O_RDONLY));
    int open_nr = seccomp_syscall_resolve_name("open");
    if (open_nr >= 0)
        rc |= seccomp_rule_add(ctx, SCMP_ACT_ALLOW, open_nr, 1,
                               SCMP_A1(SCMP_CMP_MASKED_EQ, WRITE_BITS, O_RDONLY));
    return rc;
}

static int build_and_load(const ppx__sandbox *sb, char *err, size_t errlen)
{
    scmp_filter_ctx ctx = seccomp_init(SCMP_ACT_TRAP);
    if (!ctx) {
        snprintf(err, errlen, "sandbox: seccomp_init failed");
        return -1;
    }
    /* A binary tree over the system call numbers rather than a chain:
     * the few calls a call's path makes (futex, write, read) cost the
     * same few comparisons as any other. */
    int rc = seccomp_attr_set(ctx, SCMP_FLTATR_CTL_OPTIMIZE, 2);
    /* The kernel's own errno when it refuses the filter, not ECANCELED. */
    if (rc == 0)
        rc = seccomp_attr_set(ctx, SCMP_FLTATR_API_SYSRAWRC, 1);
    /* A call through another architecture's entry (int 0x80 on x86-64)
     * ends the whole process, not only its thread (threads are allowed). */
    if (rc == 0)
        rc = seccomp_attr_set(ctx, SCMP_FLTATR_ACT_BADARCH, SCMP_ACT_KILL_PROCESS);
    if (rc == 0)
        rc = add_names(ctx, compute_calls);
    if (rc == 0)
        rc = add_guarded(ctx, (scmp_datum_t)getpid()) ? -EINVAL : 0;
    if (rc == 0 && sb->profile == PPX_SANDBOX_READ_FILES)
        rc = add_read_files(ctx) ? -EINVAL : 0;
    for (int i = 0; rc == 0 && i < sb->nallow; i++) {
        rc = seccomp_rule_add(ctx, SCMP_ACT_ALLOW, sb->allow[i], 0);
        if (rc == -EEXIST)
            rc = 0;
    }
    const char *what = "building the filter";
    if (rc == 0) {
        what = "seccomp_load";
        rc = seccomp_load(ctx); /* sets PR_SET_NO_NEW_PRIVS first */
    }
    seccomp_release(ctx);
    if (rc < 0) {
        snprintf(err, errlen, "sandbox: %s failed: %s", what, strerror(-rc));
        return -1;
    }
    return 0;
}

int ppx__sandbox_install(const ppx__sandbox *sb, char *err, size_t errlen)
{
    return build_and_load(sb, err, errlen);
}

const char *ppx__sandbox_syscall_name(int nr, char *buf, size_t n)
{
    char *name = nr >= 0 ? seccomp_syscall_resolve_num_arch(SCMP_ARCH_NATIVE, nr) : NULL;
    if (name)
        snprintf(buf, n, "%s", name);
    else
        snprintf(buf, n, "syscall %d", nr);
    free(name);
    return buf;
}

#else /* !PPX_HAVE_SECCOMP: ppx__sandbox_new refuses a sandbox */

int ppx__sandbox_install(const ppx__sandbox *sb, char *err, size_t errlen)
{
    (void)sb;
    snprintf(err, errlen, "sandbox: ppx was built without libseccomp");
    return -1;
}

const char *ppx__sandbox_syscall_name(int nr, char *buf, size_t n)
{
    snprintf(buf, n, "syscall %d", nr);
    return buf;
}

#endif
