#include "zygote.h"
#include "fork.h"
#include "worker.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#ifndef CLOSE_RANGE_UNSHARE
#define CLOSE_RANGE_UNSHARE 2
#endif

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
    syscall(SYS_close_range, 3 + n, ~0U, 0);
}

static void send_msg(int sock, uint32_t type, uint32_t index, pid_t pid, int code, int status)
{
    ppx__zmsg m = {type, index, (int32_t)pid, code, status};
    while (send(sock, &m, sizeof m, MSG_NOSIGNAL) < 0 && errno == EINTR)
        ;
}

static void reset_signals(void)
{
    for (int sig = 1; sig < NSIG; sig++) {
        if (sig == SIGKILL || sig == SIGSTOP)
            continue;
        struct sigaction sa;
        if (sigaction(sig, NULL, &sa) == 0 && sa.sa_handler != SIG_DFL) {
            sa.sa_handler = SIG_DFL;
            sa.sa_flags = 0;
            sigaction(sig, &sa, NULL);
        }
    }
    /* A Ctrl-C on the terminal reaches the whole process group; the parent
     * decides what happens to its workers. */
    signal(SIGINT, SIG_IGN);
}

_Noreturn static void zygote_main(ppx__shared *sh, int efd, int sock, int lifeline, pid_t parent,
                                  ppx__worker_init init)
{
    reset_signals();
    prctl(PR_SET_NAME, "ppx-zygote");
    int keep[3] = {efd, sock, lifeline};
    keep_only(keep, 3);
    efd = keep[0];
    sock = keep[1];
    lifeline = keep[2];
    /* SIGKILL when the parent's write end closes: on any parent death. */
    fcntl(lifeline, F_SETOWN, getpid());
    fcntl(lifeline, F_SETSIG, SIGKILL);
    fcntl(lifeline, F_SETFL, fcntl(lifeline, F_GETFL) | O_ASYNC | O_NONBLOCK);
    if (getppid() != parent)
        _exit(PPX__EXIT_ORPHAN);
    char probe;
    if (read(lifeline, &probe, 1) == 0)
        _exit(PPX__EXIT_ORPHAN); /* closed before O_ASYNC was armed */

    sigset_t chld, none;
    sigemptyset(&chld);
    sigaddset(&chld, SIGCHLD);
    sigemptyset(&none);
    sigprocmask(SIG_SETMASK, &chld, NULL);
    int sfd = signalfd(-1, &chld, SFD_CLOEXEC | SFD_NONBLOCK);
    pid_t self = getpid();

    for (;;) {
        struct pollfd pf[2] = {{sock, POLLIN, 0}, {sfd, POLLIN, 0}};
        if (poll(pf, 2, -1) < 0)
            continue;
        if (pf[1].revents & POLLIN) {
            struct signalfd_siginfo ssi;
            while (read(sfd, &ssi, sizeof ssi) == (ssize_t)sizeof ssi)
                ;
            siginfo_t si;
            for (;;) {
                memset(&si, 0, sizeof si);
                if (waitid(P_ALL, 0, &si, WEXITED | WNOHANG) != 0 || si.si_pid == 0)
                    break;
                send_msg(sock, PPX__Z_EXITED, 0, si.si_pid, si.si_code, si.si_status);
            }
        }
        if (pf[0].revents & (POLLIN | POLLHUP | POLLERR)) {
            ppx__zmsg m;
            ssize_t r = recv(sock, &m, sizeof m, 0);
            if (r == 0 || (r < 0 && errno != EINTR && errno != EAGAIN))
                _exit(0); /* the parent closed its end: workers follow us */
            if (r != (ssize_t)sizeof m || m.type != PPX__Z_SPAWN || m.index >= sh->nworkers)
                continue;
            pid_t pid = fork();
            if (pid == 0) {
                close(sock);
                close(sfd);
                close(lifeline);
                sigprocmask(SIG_SETMASK, &none, NULL);
                prctl(PR_SET_NAME, "ppx-worker");
                ppx__worker_main(sh, m.index, efd, self, init);
            }
            if (pid < 0)
                send_msg(sock, PPX__Z_SPAWN_FAILED, m.index, 0, errno, 0);
            else
                send_msg(sock, PPX__Z_SPAWNED, m.index, pid, 0, 0);
        }
    }
}

/* The zygote's socket and pipe, the parent's ends tracked (fork.h): a
 * fork of the application must not keep the zygote alive through a copy
 * of either, so no fork may come between their creation and tracking. */
static int open_channels(int sv[2], int life[2])
{
    ppx__fork_hold();
    int err = 0;
    if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv) != 0) {
        err = -errno;
    } else if (pipe2(life, O_CLOEXEC) != 0) {
        err = -errno;
        close(sv[0]);
        close(sv[1]);
    } else if (ppx__fork_track(sv[0], PPX__FORK_CLOSE) ||
               ppx__fork_track(life[1], PPX__FORK_CLOSE)) {
        err = -ENOMEM;
    }
    ppx__fork_release();
    if (err == -ENOMEM) {
        ppx__fork_close(sv[0]);
        ppx__fork_close(life[1]);
        close(sv[1]);
        close(life[0]);
    }
    return err;
}

int ppx__zygote_start(ppx__zygote *z, ppx__shared *sh, int efd, ppx__worker_init init)
{
    int sv[2], life[2];
    int err = open_channels(sv, life);
    if (err)
        return err;
    pid_t parent = getpid();
    pid_t pid = fork();
    if (pid == 0) /* the atfork handler closed sv[0] and life[1] here */
        zygote_main(sh, efd, sv[1], life[0], parent, init);
    err = pid < 0 ? -errno : 0;
    close(sv[1]);
    close(life[0]);
    if (err) {
        ppx__fork_close(sv[0]);
        ppx__fork_close(life[1]);
        return err;
    }
    fcntl(sv[0], F_SETFL, fcntl(sv[0], F_GETFL) | O_NONBLOCK);
    z->pid = pid;
    z->sock = sv[0];
    z->lifeline = life[1];
    return 0;
}

int ppx__zygote_request(ppx__zygote *z, uint32_t index)
{
    ppx__zmsg m = {PPX__Z_SPAWN, index, 0, 0, 0};
    ssize_t r;
    do
        r = send(z->sock, &m, sizeof m, MSG_NOSIGNAL);
    while (r < 0 && errno == EINTR);
    return r == (ssize_t)sizeof m ? 0 : (r < 0 ? -errno : -EPIPE);
}

int ppx__zygote_read(ppx__zygote *z, ppx__zmsg *m)
{
    ssize_t r;
    do
        r = recv(z->sock, m, sizeof *m, 0);
    while (r < 0 && errno == EINTR);
    if (r == (ssize_t)sizeof *m)
        return 1;
    if (r < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
        return 0;
    return -EPIPE;
}

void ppx__zygote_stop(ppx__zygote *z)
{
    if (z->pid <= 0)
        return;
    ppx__fork_close(z->sock);
    ppx__fork_close(z->lifeline);
    z->sock = z->lifeline = -1;
    int st;
    while (waitpid(z->pid, &st, 0) < 0 && errno == EINTR)
        ;
    z->pid = 0;
}
