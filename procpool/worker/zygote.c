#include "zygote.h"
#include "procpool/fork.h"
#include "fds.h"
#include "worker.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdbool.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

/* Without a pidfd on its creator, the zygote looks at getppid() this
 * often: the creator's death is noticed within this much. */
#define CREATOR_CHECK_MS 250
/* ppx__options_resolve refuses more workers. */
#define ZYGOTE_MAX_WORKERS 1024

/* The application's signal state that the zygote changes for its own
 * needs and gives back to every worker (everything else a worker inherits
 * as the application had it when the zygote was forked). */
typedef struct app_signals {
    sigset_t mask;         /* the creating thread's blocked signals */
    struct sigaction chld; /* SIGCHLD: ignored or default, SA_NOCLDWAIT */
} app_signals;

typedef struct zctx {
    ppx__shared *sh;
    int efd, sock, lifeline, sfd;
    int pidfd; /* on the creator, or -1: then getppid() is watched */
    pid_t parent, self;
    /* The pool's keep_descendants: false makes every worker a process
     * group leader and the zygote a subreaper, so that whatever a worker
     * leaves behind can be found and killed (see reap). */
    bool keep;
    app_signals app;
    char children_path[64];
    pid_t workers[ZYGOTE_MAX_WORKERS]; /* by index; 0 when none runs */
} zctx;

/* Keeps fds[0..n) (renumbered to 3, 4, ...) and closes every other
 * descriptor above 2: a server's listening socket, the application's files
 * and other pools' descriptors must not stay open in workers. */
static void keep_only(int *fds, int n)
{
    int top = 2;
    for (int i = 0; i < n; i++)
        if (fds[i] > top)
            top = fds[i];
    int tmp[8];
    for (int i = 0; i < n; i++)
        tmp[i] = fcntl(fds[i], F_DUPFD, top + 1);
    for (int i = 0; i < n; i++) {
        dup2(tmp[i], 3 + i);
        fds[i] = 3 + i;
    }
    ppx__close_from(3 + n, ppx__fds_avoid);
}

static void send_msg(int sock, uint32_t type, uint32_t index, pid_t pid, int code, int status)
{
    ppx__zmsg m = {type, index, (int32_t)pid, code, status};
    while (send(sock, &m, sizeof m, MSG_NOSIGNAL) < 0 && errno == EINTR)
        ;
}

static int hex_digit(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    return -1;
}

/* The signals that have a handler, from one read of /proc/self/status
 * ("SigCgt:", a hex mask, bit sig - 1), rather than a sigaction query per
 * signal: 61 system calls, 130 us on the 2-vCPU VM against 10-40 us.
 * Without stdio or malloc (a fork of a multi-threaded process); false
 * when it cannot be read, and then every signal is asked. */
static bool caught_signals(uint64_t *mask)
{
    static char status[4096]; /* not on the application's thread stack */
    int fd = open("/proc/self/status", O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return false;
    ssize_t n = read(fd, status, sizeof status - 1);
    close(fd);
    if (n <= 0)
        return false;
    status[n] = '\0';
    const char *p = strstr(status, "\nSigCgt:");
    if (!p)
        return false;
    p += 8;
    while (*p == ' ' || *p == '\t')
        p++;
    uint64_t m = 0;
    int digits = 0;
    for (int d; (d = hex_digit(*p)) >= 0 && digits < 16; p++, digits++)
        m = m << 4 | (uint64_t)d;
    if (digits == 0 || hex_digit(*p) >= 0)
        return false;
    *mask = m;
    return true;
}

/* Done once, here, for the zygote and every worker it will fork, and in
 * one pass: only the signals that have a handler are touched (the
 * application's handlers are few; caught_signals finds them):
 * - a handler goes back to SIG_DFL: it is the parent's code (libuv's, the
 *   application's) and would act on the parent's state from this process;
 * - an ignored signal stays ignored (SIGPIPE above all: a function then
 *   gets EPIPE, as it would in the application);
 * - SIGINT is ignored: a Ctrl-C reaches the whole process group and the
 *   parent decides what happens to its workers;
 * - SIGCHLD is SIG_DFL without SA_NOCLDWAIT in the zygote, which must
 *   reap its workers itself, and blocked for its signalfd; workers get the
 *   application's SIGCHLD and mask back (restore_app_signals). */
static void reset_signals(app_signals *app)
{
    sigprocmask(SIG_SETMASK, NULL, &app->mask);
    uint64_t caught = 0;
    bool known = caught_signals(&caught);
    for (int sig = 1; sig < NSIG; sig++) {
        if (sig == SIGKILL || sig == SIGSTOP)
            continue;
        if (known && sig != SIGCHLD && (sig > 64 || !((caught >> (sig - 1)) & 1)))
            continue; /* no handler: nothing to reset */
        struct sigaction sa;
        if (sigaction(sig, NULL, &sa) != 0)
            continue; /* libc's own real-time signals */
        if (sig == SIGCHLD) {
            memset(&app->chld, 0, sizeof app->chld);
            app->chld.sa_handler = sa.sa_handler == SIG_IGN ? SIG_IGN : SIG_DFL;
            app->chld.sa_flags = sa.sa_flags & SA_NOCLDWAIT;
            sigemptyset(&app->chld.sa_mask);
            sa.sa_handler = SIG_DFL;
            sa.sa_flags = 0;
            sigaction(sig, &sa, NULL);
        } else if (sa.sa_handler != SIG_DFL && sa.sa_handler != SIG_IGN) {
            sa.sa_handler = SIG_DFL;
            sa.sa_flags = 0;
            sigaction(sig, &sa, NULL);
        }
    }
    signal(SIGINT, SIG_IGN);
}

static void restore_app_signals(const app_signals *app)
{
    sigaction(SIGCHLD, &app->chld, NULL);
    sigprocmask(SIG_SETMASK, &app->mask, NULL);
}

static int worker_index(const zctx *z, pid_t pid)
{
    for (uint32_t i = 0; i < z->sh->nworkers && i < ZYGOTE_MAX_WORKERS; i++)
        if (z->workers[i] == pid)
            return (int)i;
    return -1;
}

/* Kills every child of the zygote that is not a worker: as a subreaper it
 * adopts whatever a worker's descendants orphan (the children of a worker
 * that died, a daemon that double-forked, setsid's included). Each death
 * brings the victim's own children here and SIGCHLD, so the next call
 * goes one generation further. /proc/<pid>/task/<pid>/children lists
 * them (CONFIG_PROC_CHILDREN); without it only process groups are killed. */
static void kill_stray(const zctx *z, long pid)
{
    if (pid > 0 && worker_index(z, (pid_t)pid) < 0) {
        kill(-(pid_t)pid, SIGKILL); /* the group it may lead */
        kill((pid_t)pid, SIGKILL);
    }
}

static void kill_adopted(const zctx *z)
{
    int fd = open(z->children_path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return;
    char buf[512];
    long pid = 0;
    ssize_t n;
    while ((n = read(fd, buf, sizeof buf)) > 0) {
        for (ssize_t i = 0; i < n; i++) {
            if (buf[i] >= '0' && buf[i] <= '9') {
                pid = pid * 10 + (buf[i] - '0');
            } else {
                kill_stray(z, pid);
                pid = 0;
            }
        }
    }
    kill_stray(z, pid);
    close(fd);
}

/* "/proc/<self>/task/<self>/children" (the zygote has one thread), made
 * without stdio, which a fork of a multi-threaded process should avoid. */
static void set_children_path(zctx *z)
{
    char num[16];
    int len = 0;
    for (unsigned v = (unsigned)z->self; v || !len; v /= 10)
        num[len++] = (char)('0' + v % 10);
    char *p = z->children_path;
    const char *parts[] = {"/proc/", NULL, "/task/", NULL, "/children"};
    for (int k = 0; k < 5; k++) {
        if (parts[k]) {
            for (const char *c = parts[k]; *c; c++)
                *p++ = *c;
        } else {
            for (int i = len - 1; i >= 0; i--)
                *p++ = num[i];
        }
    }
    *p = '\0';
}

/* Reaps every child that has ended and reports the workers among them. A
 * worker's process group is killed while the worker is still a zombie:
 * its pid, the group's id, cannot have been reused yet. Its orphans are
 * adopted here at once (subreaper) and killed before the report. */
static void reap(zctx *z)
{
    for (;;) {
        siginfo_t si;
        memset(&si, 0, sizeof si);
        if (waitid(P_ALL, 0, &si, WEXITED | WNOHANG | WNOWAIT) != 0 || si.si_pid == 0)
            break;
        pid_t pid = si.si_pid;
        int i = worker_index(z, pid);
        if (i >= 0 && !z->keep)
            kill(-pid, SIGKILL);
        siginfo_t gone;
        while (waitid(P_PID, (id_t)pid, &gone, WEXITED) != 0 && errno == EINTR)
            ;
        if (i < 0)
            continue; /* an adopted descendant: nobody to tell */
        z->workers[i] = 0;
        /* Before the report: the parent may close the lifeline (and so
         * kill this process) as soon as it has heard of its last worker. */
        if (!z->keep)
            kill_adopted(z);
        send_msg(z->sock, PPX__Z_EXITED, 0, pid, si.si_code, si.si_status);
    }
    if (!z->keep)
        kill_adopted(z); /* the next generation, brought by the deaths above */
}

/* The pool is gone (its socket closed, or its creator died): workers die
 * of PR_SET_PDEATHSIG as the zygote exits; their groups and adopted
 * descendants are killed first. */
_Noreturn static void zygote_exit(const zctx *z)
{
    if (!z->keep) {
        for (uint32_t i = 0; i < z->sh->nworkers && i < ZYGOTE_MAX_WORKERS; i++)
            if (z->workers[i] > 0)
                kill(-z->workers[i], SIGKILL);
        kill_adopted(z);
    }
    _exit(0);
}

/* The creator is watched directly, not only through the lifeline: a
 * forked copy of the application may hold the lifeline's write end (and
 * the socket) long after the creator died. A pidfd turns readable when
 * the process exits (Linux 5.3); where there is none, getppid() changes
 * when the creator dies and this process is reparented. */
static void watch_creator(zctx *z)
{
    z->pidfd = -1;
#ifdef SYS_pidfd_open
    z->pidfd = (int)syscall(SYS_pidfd_open, z->parent, 0);
#endif
    if (getppid() != z->parent) /* after the open: the pidfd is the creator's */
        _exit(PPX__EXIT_ORPHAN);
}

_Noreturn static void become_worker(zctx *z, uint32_t index, ppx__worker_init init)
{
    /* The zygote does the same from its side: the group exists before
     * either of them goes on, whichever runs first. */
    if (!z->keep)
        setpgid(0, 0);
    close(z->sock);
    close(z->sfd);
    close(z->lifeline);
    if (z->pidfd >= 0)
        close(z->pidfd);
    restore_app_signals(&z->app);
    prctl(PR_SET_NAME, "ppx-worker");
    ppx__worker_main(z->sh, index, z->efd, z->self, init);
}

static void spawn(zctx *z, const ppx__zmsg *m, ppx__worker_init init)
{
    if (m->type != PPX__Z_SPAWN || m->index >= z->sh->nworkers || m->index >= ZYGOTE_MAX_WORKERS)
        return;
    pid_t pid = fork();
    if (pid == 0)
        become_worker(z, m->index, init);
    if (pid < 0) {
        send_msg(z->sock, PPX__Z_SPAWN_FAILED, m->index, 0, errno, 0);
        return;
    }
    if (!z->keep)
        setpgid(pid, pid);
    z->workers[m->index] = pid;
    send_msg(z->sock, PPX__Z_SPAWNED, m->index, pid, 0, 0);
}

/* Arms the lifeline: SIGKILL when the parent's write end closes, that is
 * on any parent death where no forked copy of the application holds it. */
static void arm_lifeline(int lifeline)
{
    fcntl(lifeline, F_SETOWN, getpid());
    fcntl(lifeline, F_SETSIG, SIGKILL);
    fcntl(lifeline, F_SETFL, fcntl(lifeline, F_GETFL) | O_ASYNC | O_NONBLOCK);
    char probe;
    if (read(lifeline, &probe, 1) == 0)
        _exit(PPX__EXIT_ORPHAN); /* closed before O_ASYNC was armed */
}

_Noreturn static void zygote_main(zctx *z, ppx__worker_init init)
{
    reset_signals(&z->app);
    prctl(PR_SET_NAME, "ppx-zygote");
    int keep[3] = {z->efd, z->sock, z->lifeline};
    keep_only(keep, 3);
    z->efd = keep[0];
    z->sock = keep[1];
    z->lifeline = keep[2];
    z->self = getpid();
    set_children_path(z);
    if (!z->keep)
        prctl(PR_SET_CHILD_SUBREAPER, 1);
    arm_lifeline(z->lifeline);
    watch_creator(z);

    sigset_t chld;
    sigemptyset(&chld);
    sigaddset(&chld, SIGCHLD);
    sigprocmask(SIG_SETMASK, &chld, NULL);
    z->sfd = signalfd(-1, &chld, SFD_CLOEXEC | SFD_NONBLOCK);

    for (;;) {
        struct pollfd pf[3] = {{z->sock, POLLIN, 0}, {z->sfd, POLLIN, 0}, {z->pidfd, POLLIN, 0}};
        int nfds = z->pidfd >= 0 ? 3 : 2;
        int rc = poll(pf, (nfds_t)nfds, z->pidfd >= 0 ? -1 : CREATOR_CHECK_MS);
        if ((z->pidfd >= 0 && pf[2].revents) || (z->pidfd < 0 && getppid() != z->parent))
            zygote_exit(z);
        if (rc <= 0)
            continue;
        if (pf[1].revents & POLLIN) {
            struct signalfd_siginfo ssi;
            while (read(z->sfd, &ssi, sizeof ssi) == (ssize_t)sizeof ssi)
                ;
            reap(z);
        }
        if (pf[0].revents & (POLLIN | POLLHUP | POLLERR)) {
            ppx__zmsg m;
            ssize_t r = recv(z->sock, &m, sizeof m, 0);
            if (r == 0 || (r < 0 && errno != EINTR && errno != EAGAIN))
                zygote_exit(z); /* the parent closed its end */
            if (r == (ssize_t)sizeof m)
                spawn(z, &m, init);
        }
    }
}

_Noreturn void ppx__zygote_serve(ppx__shared *sh, int efd, int sock, int lifeline, pid_t parent,
                                 bool keep_descendants, ppx__worker_init init)
{
    /* Static: 4 KiB of worker pids are better not on a stack the
     * application may have made small (this is its thread's stack). */
    static zctx zc;
    memset(&zc, 0, sizeof zc);
    zc.sh = sh;
    zc.efd = efd;
    zc.sock = sock;
    zc.lifeline = lifeline;
    zc.parent = parent;
    zc.keep = keep_descendants;
    zygote_main(&zc, init);
}
