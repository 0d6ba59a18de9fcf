/*
 * The fork server. A pool forks one small process, the zygote, when it is
 * created (ideally before the application starts threads), and every
 * worker, first ones and replacements alike, is forked from it: never from
 * the application, which may be large and multi-threaded by then. The
 * zygote has the registry and the shared mapping because it was forked
 * after both existed.
 *
 * Lifetimes: the parent holds the write end of a lifeline pipe; the
 * zygote asks the kernel (O_ASYNC, F_SETSIG) for SIGKILL when that end
 * closes, which happens however the parent dies, unless a forked copy of
 * the application holds it too. So the zygote also watches its creator:
 * a pidfd in its poll set, or getppid() every 250 ms without pidfds; it
 * exits when the creator has. Workers are the zygote's children with
 * PR_SET_PDEATHSIG(SIGKILL), so they follow it.
 *
 * The zygote reaps its workers and reports each exit status to the
 * parent; the parent keeps a pidfd per worker only to signal it safely.
 */
#ifndef PPX_PROCPOOL_ZYGOTE_H
#define PPX_PROCPOOL_ZYGOTE_H
#include "procpool/wire/shared.h"
#include "worker.h"

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

enum {
    PPX__Z_SPAWN = 1,    /* parent -> zygote: start worker index */
    PPX__Z_SPAWNED,      /* zygote -> parent: index runs as pid */
    PPX__Z_SPAWN_FAILED, /* zygote -> parent: fork failed with errno code */
    PPX__Z_EXITED,       /* zygote -> parent: pid ended: code, status as siginfo */
};

typedef struct ppx__zmsg {
    uint32_t type;
    uint32_t index;
    int32_t pid;
    int32_t code;   /* si_code (CLD_EXITED, CLD_KILLED...) or errno */
    int32_t status; /* si_status */
} ppx__zmsg;

typedef struct ppx__zygote {
    pid_t pid;
    int sock;     /* parent's end, SOCK_SEQPACKET */
    int lifeline; /* parent's write end */
} ppx__zygote;

/* worker/zygote.c, in the child: the fork server's loop; never returns. */
_Noreturn void ppx__zygote_serve(ppx__shared *sh, int efd, int sock, int lifeline, pid_t parent,
                                 bool keep_descendants, ppx__worker_init init);

/* local/fork_server.c, in the parent. Forks the zygote. efd is the pool's eventfd, which workers keep. Every
 * other descriptor is closed in the zygote. Workers run init first. Unless
 * keep_descendants, each worker leads its own process group, killed when
 * the worker ends, and the zygote kills whatever descendants it adopts as
 * a subreaper. 0 or -errno. */
int ppx__zygote_start(ppx__zygote *z, ppx__shared *sh, int efd, ppx__worker_init init,
                      bool keep_descendants);
/* Asks for worker index; the answer arrives as a message on z->sock.
 * 0 or -errno (the zygote is gone). */
int ppx__zygote_request(ppx__zygote *z, uint32_t index);
/* Reads one message without blocking: 1, 0 when none, -EPIPE when the
 * zygote is gone. */
int ppx__zygote_read(ppx__zygote *z, ppx__zmsg *m);
/* Closes the parent's ends and reaps the zygote (its workers die with it). */
void ppx__zygote_stop(ppx__zygote *z);

#endif
