/* The worker functions of test_sandbox.c: each tries one thing a
 * sandbox forbids or allows, or reads back a limit or the scheduling. */
#include "sandbox_fns.h"
#include "ppx.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ptrace.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#ifdef PPX_HAVE_SECCOMP
#include <seccomp.h>
#include <sys/prctl.h>
#endif

static int fail_errno(ppx_call *c, const char *what)
{
    return ppx_raise(c, "OSError", "%s: %s", what, strerror(errno));
}

/* open(path): reads the file's first byte. */
static int fn_try_open(ppx_call *c, void *u)
{
    (void)u;
    const char *path;
    size_t len;
    ppx_call_arg_str(c, 0, &path, &len);
    char p[256];
    snprintf(p, sizeof p, "%.*s", (int)len, path);
    int fd = open(p, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return fail_errno(c, "open");
    unsigned char b = 0;
    ssize_t n = read(fd, &b, 1);
    close(fd);
    return ppx_return_int(c, n == 1 ? b : -1);
}

/* open(path, O_WRONLY | O_APPEND): allowed by no profile but through
 * sandbox_allow. */
static int fn_try_write_file(ppx_call *c, void *u)
{
    (void)u;
    const char *path;
    size_t len;
    ppx_call_arg_str(c, 0, &path, &len);
    char p[256];
    snprintf(p, sizeof p, "%.*s", (int)len, path);
    int fd = open(p, O_WRONLY | O_APPEND | O_CLOEXEC);
    if (fd < 0)
        return fail_errno(c, "open");
    close(fd);
    return ppx_return_int(c, 1);
}

/* socket + connect to 127.0.0.1:port. */
static int fn_try_connect(ppx_call *c, void *u)
{
    (void)u;
    int64_t port;
    ppx_call_arg_int(c, 0, &port);
    int s = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (s < 0)
        return fail_errno(c, "socket");
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    int rc = connect(s, (struct sockaddr *)&a, sizeof a);
    close(s);
    return rc == 0 ? ppx_return_int(c, 1) : fail_errno(c, "connect");
}

/* execve("/bin/sh/", ...): the trailing slash makes the kernel refuse it
 * with ENOTDIR once it has looked, so without a sandbox the worker stays
 * itself and returns the errno: proof the call reached the kernel. */
static int fn_try_exec(ppx_call *c, void *u)
{
    (void)u;
    char *argv[] = {"sh", "-c", "exit 0", NULL};
    char *envp[] = {NULL};
    execve("/bin/sh/", argv, envp);
    return ppx_return_int(c, errno);
}

/* fork: the child exits 7 at once, the function returns its status. */
static int fn_try_fork(ppx_call *c, void *u)
{
    (void)u;
    pid_t pid = fork();
    if (pid == 0)
        _exit(7);
    if (pid < 0)
        return fail_errno(c, "fork");
    int st = 0;
    while (waitpid(pid, &st, 0) < 0 && errno == EINTR)
        ;
    return ppx_return_int(c, WIFEXITED(st) ? WEXITSTATUS(st) : -1);
}

/* kill(getppid(), 0): may it signal its parent (the fork server)? */
static int fn_try_kill_parent(ppx_call *c, void *u)
{
    (void)u;
    return kill(getppid(), 0) == 0 ? ppx_return_int(c, 1) : fail_errno(c, "kill");
}

/* ptrace(PTRACE_PEEKDATA) on the parent, never attached: the kernel
 * answers ESRCH without a sandbox. */
static int fn_try_ptrace(ppx_call *c, void *u)
{
    (void)u;
    errno = 0;
    ptrace(PTRACE_PEEKDATA, getppid(), NULL, NULL);
    return ppx_return_int(c, errno);
}

static int fn_add(ppx_call *c, void *u)
{
    (void)u;
    int64_t a = 0, b = 0;
    ppx_call_arg_int(c, 0, &a);
    ppx_call_arg_int(c, 1, &b);
    return ppx_return_int(c, a + b);
}

/* alloc(mib): mallocs, touches every page, sums a byte per page; a NULL
 * malloc hands on PPX_ENOMEM (ppx's MemoryError). */
static int fn_alloc(ppx_call *c, void *u)
{
    (void)u;
    int64_t mib;
    ppx_call_arg_int(c, 0, &mib);
    size_t n = (size_t)mib << 20;
    unsigned char *p = malloc(n);
    if (!p)
        return PPX_ENOMEM;
    int64_t sum = 0;
    for (size_t i = 0; i < n; i += 4096) {
        p[i] = (unsigned char)(i >> 12);
        sum += p[i];
    }
    free(p);
    return ppx_return_int(c, sum);
}

/* big(mib): returns mib MiB, byte i being i % 251. */
static int fn_big(ppx_call *c, void *u)
{
    (void)u;
    int64_t mib;
    ppx_call_arg_int(c, 0, &mib);
    size_t n = (size_t)mib << 20;
    unsigned char *p = malloc(n);
    if (!p)
        return PPX_ENOMEM;
    for (size_t i = 0; i < n; i++)
        p[i] = (unsigned char)(i % 251);
    int rc = ppx_return_bin(c, p, n);
    free(p);
    return rc;
}

/* steps(n): reports progress 1..n of n, returns n. */
static int fn_steps(ppx_call *c, void *u)
{
    (void)u;
    int64_t n;
    ppx_call_arg_int(c, 0, &n);
    for (int64_t i = 1; i <= n; i++)
        ppx_call_progress(c, (uint64_t)i, (uint64_t)n);
    return ppx_return_int(c, n);
}

/* Runs until cancelled (cooperative), then returns 0. */
static int fn_until_cancelled(ppx_call *c, void *u)
{
    (void)u;
    while (!ppx_call_cancelled(c))
        ;
    return ppx_return_int(c, 0);
}

/* Burns CPU for good, never looking at cancellation. */
static int fn_burn(ppx_call *c, void *u)
{
    (void)u;
    for (volatile uint64_t i = 0;; i++)
        ;
    return ppx_return_int(c, 0);
}

/* [nice, policy, number of CPUs allowed, the first allowed]. */
static int fn_sched(ppx_call *c, void *u)
{
    (void)u;
    errno = 0;
    int nice_v = getpriority(PRIO_PROCESS, 0);
    int policy = sched_getscheduler(0);
    cpu_set_t set;
    CPU_ZERO(&set);
    sched_getaffinity(0, sizeof set, &set);
    int first = -1;
    for (int i = CPU_SETSIZE - 1; i >= 0; i--)
        if (CPU_ISSET(i, &set))
            first = i;
    return ppx_returnf(c, "iiii", nice_v, policy, CPU_COUNT(&set), first);
}

/* [RLIMIT_CORE soft, RLIMIT_NOFILE soft, RLIMIT_AS soft == infinity]. */
static int fn_limits(ppx_call *c, void *u)
{
    (void)u;
    struct rlimit core, nofile, as;
    getrlimit(RLIMIT_CORE, &core);
    getrlimit(RLIMIT_NOFILE, &nofile);
    getrlimit(RLIMIT_AS, &as);
    return ppx_returnf(c, "llb", (long long)core.rlim_cur, (long long)nofile.rlim_cur,
                       as.rlim_cur == RLIM_INFINITY);
}

/* How many more /dev/null it can open, up to 64. */
static int fn_open_many(ppx_call *c, void *u)
{
    (void)u;
    int fds[64], n = 0;
    while (n < 64 && (fds[n] = open("/dev/null", O_RDONLY | O_CLOEXEC)) >= 0)
        n++;
    int err = errno;
    for (int i = 0; i < n; i++)
        close(fds[i]);
    return n < 64 && err != EMFILE ? fail_errno(c, "open") : ppx_return_int(c, n);
}

/* The initializer opens a file before the sandbox; read_init reads it. */
static int init_fd = -1;
int sandbox_init_open(char *err, size_t errlen, void *arg)
{
    init_fd = open((const char *)arg, O_RDONLY | O_CLOEXEC);
    if (init_fd < 0)
        snprintf(err, errlen, "open: %s", strerror(errno));
    return init_fd < 0;
}

static int fn_read_init(ppx_call *c, void *u)
{
    (void)u;
    unsigned char b = 0;
    return pread(init_fd, &b, 1, 0) == 1 ? ppx_return_int(c, b) : fail_errno(c, "pread");
}

/* Blocks SIGSYS, then opens a file: the kernel forces the signal. */
static int fn_blocked_sigsys_open(ppx_call *c, void *u)
{
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGSYS);
    sigprocmask(SIG_BLOCK, &set, NULL);
    return fn_try_open(c, u);
}

/* Takes over SIGSYS, to survive its violations. */
static void ignore_sys(int sig)
{
    (void)sig;
}

static int fn_take_sigsys(ppx_call *c, void *u)
{
    (void)u;
    signal(SIGSYS, ignore_sys);
    return ppx_return_int(c, 1);
}

/* len_of(bin): the argument's length. */
static int fn_len_of(ppx_call *c, void *u)
{
    (void)u;
    const void *b;
    size_t n = 0;
    ppx_call_arg_bin(c, 0, &b, &n);
    return ppx_return_int(c, (int64_t)n);
}

/* burn_cpu(ms): computes until this process has used ms more of CPU;
 * returns the worker's pid. */
static int fn_burn_cpu(ppx_call *c, void *u)
{
    (void)u;
    int64_t ms;
    ppx_call_arg_int(c, 0, &ms);
    struct timespec t0, t;
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &t0);
    do {
        for (volatile int i = 0; i < 100000; i++)
            ;
        clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &t);
    } while ((t.tv_sec - t0.tv_sec) * 1000 + (t.tv_nsec - t0.tv_nsec) / 1000000 < ms);
    return ppx_return_int(c, getpid());
}

static void *add_up(void *arg)
{
    int64_t *v = arg;
    *v = *v * (*v + 1) / 2;
    return NULL;
}

/* threads(n): n threads, thread i sums 1..i+1; returns the total. */
static int fn_threads(ppx_call *c, void *u)
{
    (void)u;
    int64_t n;
    ppx_call_arg_int(c, 0, &n);
    pthread_t t[8];
    int64_t v[8];
    if (n < 1 || n > 8)
        return ppx_raise(c, "ValueError", "1 to 8 threads");
    for (int i = 0; i < n; i++) {
        v[i] = i + 1;
        int rc = pthread_create(&t[i], NULL, add_up, &v[i]);
        if (rc)
            return ppx_raise(c, "OSError", "pthread_create: %s", strerror(rc));
    }
    int64_t sum = 0;
    for (int i = 0; i < n; i++) {
        pthread_join(t[i], NULL);
        sum += v[i];
    }
    return ppx_return_int(c, sum);
}

/* A filter of the initializer's own that answers EPERM to installing
 * another, as a kernel or container that refuses seccomp would. */
int sandbox_init_refuse_filters(char *err, size_t errlen, void *arg)
{
    (void)arg;
#ifdef PPX_HAVE_SECCOMP
    scmp_filter_ctx ctx = seccomp_init(SCMP_ACT_ALLOW);
    int rc = ctx ? 0 : -ENOMEM;
    if (rc == 0)
        rc = seccomp_rule_add(ctx, SCMP_ACT_ERRNO(EPERM), SCMP_SYS(seccomp), 0);
    if (rc == 0)
        rc = seccomp_rule_add(ctx, SCMP_ACT_ERRNO(EPERM), SCMP_SYS(prctl), 1,
                              SCMP_A0(SCMP_CMP_EQ, PR_SET_SECCOMP));
    if (rc == 0)
        rc = seccomp_load(ctx);
    seccomp_release(ctx);
    if (rc < 0)
        snprintf(err, errlen, "test filter: %s", strerror(-rc));
    return rc < 0;
#else
    snprintf(err, errlen, "built without libseccomp");
    return 1;
#endif
}

void sandbox_fns_register(void)
{
    ppx_register("try_open", fn_try_open, NULL);
    ppx_register("try_write_file", fn_try_write_file, NULL);
    ppx_register("try_connect", fn_try_connect, NULL);
    ppx_register("try_exec", fn_try_exec, NULL);
    ppx_register("try_fork", fn_try_fork, NULL);
    ppx_register("try_kill_parent", fn_try_kill_parent, NULL);
    ppx_register("try_ptrace", fn_try_ptrace, NULL);
    ppx_register("add", fn_add, NULL);
    ppx_register("alloc", fn_alloc, NULL);
    ppx_register("big", fn_big, NULL);
    ppx_register("steps", fn_steps, NULL);
    ppx_register("until_cancelled", fn_until_cancelled, NULL);
    ppx_register("burn", fn_burn, NULL);
    ppx_register("sched", fn_sched, NULL);
    ppx_register("limits", fn_limits, NULL);
    ppx_register("open_many", fn_open_many, NULL);
    ppx_register("read_init", fn_read_init, NULL);
    ppx_register("blocked_sigsys_open", fn_blocked_sigsys_open, NULL);
    ppx_register("take_sigsys", fn_take_sigsys, NULL);
    ppx_register("burn_cpu", fn_burn_cpu, NULL);
    ppx_register("threads", fn_threads, NULL);
    ppx_register("len_of", fn_len_of, NULL);
}
