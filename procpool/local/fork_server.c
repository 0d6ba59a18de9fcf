/*
 * The parent's side of the fork server (worker/zygote.h): forking it with
 * its socket and lifeline, asking it for workers, reading its reports,
 * and stopping it. The server itself is worker/zygote.c.
 */
#include "procpool/fork.h"
#include "procpool/worker/zygote.h"

#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

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

int ppx__zygote_start(ppx__zygote *z, ppx__shared *sh, int efd, ppx__worker_init init,
                      bool keep_descendants)
{
    int sv[2], life[2];
    int err = open_channels(sv, life);
    if (err)
        return err;
    pid_t parent = getpid();
    pid_t pid = fork();
    if (pid == 0) /* the atfork handler closed sv[0] and life[1] here */
        ppx__zygote_serve(sh, efd, sv[1], life[0], parent, keep_descendants, init);
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
