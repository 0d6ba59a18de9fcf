/*
 * Forks of the application. A pool belongs to the process that made it;
 * a child of fork() inherits a copy of the pool's memory and descriptors
 * but must never act on the shared region, the workers or the fork server.
 *
 * Two things make that cheap and safe:
 *  - a process generation, bumped in every child by a pthread_atfork
 *    handler: a pool records it at creation, and each entry point compares
 *    it with the current one (a load, no system call);
 *  - a table of the descriptors that belong to this process alone (the
 *    zygote's socket, the lifeline, worker pidfds, the trace file, the
 *    pool's readiness descriptor). The child handler closes them in the
 *    child (the fork server too is such a child), so no copy
 *    keeps the fork server alive once the creator is gone, and gives the
 *    pool's readiness descriptor a private stand-in that is never ready
 *    (PPX__FORK_BLIND): a libuv loop copied into the child may still watch
 *    that number, and epoll calls made there on the stand-in can never
 *    reach the creator's registrations.
 *
 * A fork that bypasses libc (syscall(SYS_fork), clone) runs no atfork
 * handler: its copy is not recognised as one.
 */
#ifndef PPX_PROCPOOL_FORK_H
#define PPX_PROCPOOL_FORK_H
#include <stdatomic.h>
#include <stdint.h>

/* Bumped once in every child of fork (relaxed: the child is
 * single-threaded when it changes). Read through ppx__fork_generation. */
extern _Atomic uint32_t ppx__fork_gen;

static inline uint32_t ppx__fork_generation(void)
{
    return atomic_load_explicit(&ppx__fork_gen, memory_order_relaxed);
}

enum {
    PPX__FORK_CLOSE = 0, /* closed in a child */
    PPX__FORK_BLIND = 1, /* replaced in a child by a descriptor never ready */
};

/* Holds forks of this process off (fork() in another thread waits in its
 * prepare handler) until ppx__fork_release, so a descriptor can be opened
 * and tracked with no child in between getting an untracked copy. Never
 * fork, nor take a pool's lock, while holding it. */
void ppx__fork_hold(void);
void ppx__fork_release(void);
/* Under ppx__fork_hold: fd belongs to this process alone, a child deals
 * with it as how says. 0 or PPX_ENOMEM (fd is then not tracked). */
int ppx__fork_track(int fd, int how);
/* Stops tracking fd and closes it, as one step with respect to fork: a
 * child never closes a number this process has reused. fd < 0: nothing. */
void ppx__fork_close(int fd);

#endif
