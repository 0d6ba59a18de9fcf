/*
 * A pool's sandbox, resource limits and scheduling (sandbox.h): checked
 * and resolved in the parent, applied by each worker to itself. The
 * seccomp filter itself is sandbox.c's.
 */
#include "sandbox.h"
#include "procpool/errors.h"

#include <dirent.h>
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <sys/sysinfo.h>
#include <time.h>
#include <unistd.h>

#ifdef PPX_HAVE_SECCOMP
#include <linux/seccomp.h>
#include <seccomp.h>
#endif

bool ppx__sandbox_wanted(const ppx_pool_options *o)
{
    return o->sandbox || o->sandbox_allow || o->memory_limit_bytes || o->cpu_limit_s ||
           o->max_open_files || o->no_core_dumps || o->nice || o->sched_policy || o->cpus ||
           o->ncpus;
}

static int invalid(const char *fmt, const char *field, long v)
{
    ppx__set_last_error(fmt, field, v);
    return PPX_EINVAL;
}

/* The kernel must take a filter whose default is a trap: seccomp(2)
 * answers that without installing anything (Linux 4.14). */
static int seccomp_usable(void)
{
#ifndef PPX_HAVE_SECCOMP
    ppx__set_last_error("ppx_pool_options.sandbox: this ppx was built without libseccomp "
                        "(install libseccomp-dev and rebuild)");
    return PPX_ENOTSUP;
#else
    unsigned action = SECCOMP_RET_TRAP;
    if (prctl(PR_GET_SECCOMP, 0, 0, 0, 0) < 0 ||
        syscall(SYS_seccomp, SECCOMP_GET_ACTION_AVAIL, 0, &action) != 0) {
        ppx__set_last_error("ppx_pool_options.sandbox: the kernel refuses seccomp filters (%s)",
                            strerror(errno));
        return PPX_ENOTSUP;
    }
    return 0;
#endif
}

static int resolve_allow(const ppx_pool_options *o, ppx__sandbox *sb)
{
    if (!o->sandbox_allow)
        return 0;
    if (!o->sandbox) {
        ppx__set_last_error("ppx_pool_options.sandbox_allow is set without a sandbox");
        return PPX_EINVAL;
    }
    for (int i = 0; o->sandbox_allow[i]; i++) {
        const char *name = o->sandbox_allow[i];
        if (i == PPX__SANDBOX_ALLOW_MAX)
            return invalid("ppx_pool_options.%s names more than %ld system calls",
                           "sandbox_allow", PPX__SANDBOX_ALLOW_MAX);
#ifdef PPX_HAVE_SECCOMP
        int nr = seccomp_syscall_resolve_name(name);
#else
        int nr = -1;
#endif
        if (nr < 0) {
            ppx__set_last_error("ppx_pool_options.sandbox_allow[%d] is '%.64s': not a system "
                                "call of this machine",
                                i, name);
            return PPX_EINVAL;
        }
        sb->allow[sb->nallow++] = nr;
    }
    return 0;
}

static int resolve_cpus(const ppx_pool_options *o, ppx__sandbox *sb)
{
    if (!o->cpus && !o->ncpus)
        return 0;
    if (!o->cpus || o->ncpus <= 0)
        return invalid("ppx_pool_options.%s: cpus and ncpus go together (ncpus %ld)", "cpus",
                       o->ncpus);
    int have = get_nprocs_conf();
    CPU_ZERO(&sb->cpus);
    for (int i = 0; i < o->ncpus; i++) {
        if (o->cpus[i] < 0 || o->cpus[i] >= have || o->cpus[i] >= CPU_SETSIZE) {
            ppx__set_last_error("ppx_pool_options.cpus[%d] is %d: this machine has CPUs 0 to %d",
                                i, o->cpus[i], have - 1);
            return PPX_EINVAL;
        }
        CPU_SET(o->cpus[i], &sb->cpus);
    }
    sb->affinity = true;
    return 0;
}

static int check(const ppx_pool_options *o, ppx__sandbox *sb)
{
    if (o->sandbox < PPX_SANDBOX_NONE || o->sandbox > PPX_SANDBOX_READ_FILES)
        return invalid("ppx_pool_options.%s is %ld: PPX_SANDBOX_NONE, _COMPUTE or _READ_FILES",
                       "sandbox", o->sandbox);
    if (o->nice < 0 || o->nice > 19)
        return invalid("ppx_pool_options.%s is %ld: 0 to 19 (an increase only)", "nice",
                       o->nice);
    if (o->sched_policy < PPX_SCHED_INHERIT || o->sched_policy > PPX_SCHED_IDLE)
        return invalid("ppx_pool_options.%s is %ld: PPX_SCHED_INHERIT, _OTHER, _BATCH or _IDLE",
                       "sched_policy", o->sched_policy);
    int rc = o->sandbox ? seccomp_usable() : 0;
    if (rc == 0)
        rc = resolve_allow(o, sb);
    if (rc == 0)
        rc = resolve_cpus(o, sb);
    return rc;
}

int ppx__sandbox_new(const ppx_pool_options *o, ppx__sandbox **out)
{
    *out = NULL;
    if (!ppx__sandbox_wanted(o))
        return 0;
    ppx__sandbox *sb = calloc(1, sizeof *sb);
    if (!sb)
        return PPX_ENOMEM;
    int rc = check(o, sb);
    if (rc) {
        free(sb);
        return rc;
    }
    sb->profile = o->sandbox;
    sb->memory_limit = o->memory_limit_bytes;
    sb->cpu_limit_s = o->cpu_limit_s;
    sb->max_open_files = o->max_open_files;
    sb->no_core = o->no_core_dumps || o->sandbox;
    sb->nice = o->nice;
    sb->policy = o->sched_policy;
    *out = sb;
    return 0;
}

void ppx__sandbox_free(ppx__sandbox *sb)
{
    free(sb);
}

int ppx__sandbox_schedule(const ppx__sandbox *sb, char *err, size_t errlen)
{
    static const int policies[] = {0, SCHED_OTHER, SCHED_BATCH, SCHED_IDLE};
    static const char *const names[] = {"", "SCHED_OTHER", "SCHED_BATCH", "SCHED_IDLE"};
    if (sb->policy) {
        struct sched_param sp = {.sched_priority = 0};
        if (sched_setscheduler(0, policies[sb->policy], &sp) != 0) {
            snprintf(err, errlen, "scheduling: sched_setscheduler(%s) failed: %s",
                     names[sb->policy], strerror(errno));
            return -1;
        }
    }
    if (sb->nice) {
        errno = 0;
        int now = getpriority(PRIO_PROCESS, 0);
        if ((now == -1 && errno) || setpriority(PRIO_PROCESS, 0, now + sb->nice) != 0) {
            snprintf(err, errlen, "scheduling: setpriority(nice + %d) failed: %s", sb->nice,
                     strerror(errno));
            return -1;
        }
    }
    if (sb->affinity && sched_setaffinity(0, sizeof sb->cpus, &sb->cpus) != 0) {
        snprintf(err, errlen, "scheduling: sched_setaffinity failed: %s (none of the pool's "
                 "cpus is allowed to this process?)", strerror(errno));
        return -1;
    }
    return 0;
}

int64_t ppx__sandbox_cpu_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
    return (int64_t)ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

/* The highest descriptor open, from /proc/self/fd (before the filter). */
static int highest_fd(void)
{
    DIR *d = opendir("/proc/self/fd");
    if (!d)
        return 1024; /* unknown: leave room for what the worker may hold */
    int top = 2;
    for (struct dirent *e; (e = readdir(d));) {
        int fd = atoi(e->d_name);
        if (fd > top && fd != dirfd(d))
            top = fd;
    }
    closedir(d);
    return top;
}

/* The address space now, from /proc/self/statm (pages). */
static size_t address_space(void)
{
    FILE *f = fopen("/proc/self/statm", "r");
    unsigned long pages = 0;
    if (f) {
        if (fscanf(f, "%lu", &pages) != 1)
            pages = 0;
        fclose(f);
    }
    return (size_t)pages * (size_t)sysconf(_SC_PAGESIZE);
}

/* Limits only ever lower what the worker has: never above its hard limit
 * (which an unprivileged process could not raise anyway). */
static int set_limit(int res, rlim_t soft, rlim_t hard, const char *name, char *err,
                     size_t errlen)
{
    struct rlimit now;
    if (getrlimit(res, &now) == 0 && now.rlim_max != RLIM_INFINITY) {
        soft = soft > now.rlim_max ? now.rlim_max : soft;
        hard = hard > now.rlim_max ? now.rlim_max : hard;
    }
    struct rlimit rl = {soft, hard};
    if (setrlimit(res, &rl) == 0)
        return 0;
    snprintf(err, errlen, "limits: setrlimit(%s, %llu) failed: %s", name, (unsigned long long)soft,
             strerror(errno));
    return -1;
}

static int set_limits(const ppx__sandbox *sb, int64_t *cpu_retire_ns, char *err, size_t errlen)
{
    if (sb->no_core && set_limit(RLIMIT_CORE, 0, 0, "RLIMIT_CORE", err, errlen))
        return -1;
    if (sb->max_open_files) {
        rlim_t n = (rlim_t)highest_fd() + 1 + sb->max_open_files;
        if (set_limit(RLIMIT_NOFILE, n, n, "RLIMIT_NOFILE", err, errlen))
            return -1;
    }
    if (sb->cpu_limit_s) {
        /* The count is the process's: the budget starts from what it has
         * used, whole seconds up; SIGKILL a second after SIGXCPU, should
         * the function block SIGXCPU. */
        int64_t used = ppx__sandbox_cpu_ns();
        rlim_t soft = (rlim_t)(used / 1000000000LL + 1 + sb->cpu_limit_s);
        if (set_limit(RLIMIT_CPU, soft, soft + 1, "RLIMIT_CPU", err, errlen))
            return -1;
        *cpu_retire_ns = used + (int64_t)sb->cpu_limit_s * 1000000000LL / 2;
    }
    if (sb->memory_limit) {
        size_t base = address_space();
        rlim_t n = sb->memory_limit > SIZE_MAX - base ? RLIM_INFINITY
                                                       : (rlim_t)(base + sb->memory_limit);
        if (set_limit(RLIMIT_AS, n, n, "RLIMIT_AS", err, errlen))
            return -1;
    }
    return 0;
}

int ppx__sandbox_enter(const ppx__sandbox *sb, ppx__wshared *ws, int64_t *cpu_retire_ns,
                       char *err, size_t errlen)
{
    *cpu_retire_ns = 0;
    int rc = ppx__sandbox_arm_reports(ws, sb->profile != PPX_SANDBOX_NONE, sb->cpu_limit_s != 0);
    if (rc) {
        snprintf(err, errlen, "sandbox: sigaction failed: %s", strerror(-rc));
        return -1;
    }
    if (set_limits(sb, cpu_retire_ns, err, errlen))
        return -1;
    return sb->profile ? ppx__sandbox_install(sb, err, errlen) : 0;
}
