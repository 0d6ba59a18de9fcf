/*
 * The process generation and the descriptors a child of fork must not
 * keep (see fork.h); freeing a pool's copy in such a child is
 * ppx__pool_free_copy (lifecycle.c).
 *
 * Lock: mu guards the table. It is taken by ppx__fork_hold and by the
 * prepare handler, so a fork happens either before a descriptor is opened
 * and tracked or after both: the table a child inherits names exactly the
 * tracked descriptors open at the fork. Nothing else is locked while it is
 * held, and nothing forks under it (the prepare handler would wait on it
 * forever).
 */
#include "fork.h"
#include "ppx.h"

#include <fcntl.h>
#include <pthread.h>
#include <stdlib.h>
#include <sys/eventfd.h>
#include <unistd.h>

_Atomic uint32_t ppx__fork_gen;

typedef struct tracked {
    int fd;
    int how;
} tracked;

static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
static tracked *table;
static size_t ntable, captable;
static pthread_once_t once = PTHREAD_ONCE_INIT;

static void prepare(void)
{
    pthread_mutex_lock(&mu);
}

static void parent(void)
{
    pthread_mutex_unlock(&mu);
}

/* In the child, single-threaded: only async-signal-safe calls. Every
 * pool here is another process's, so none of its descriptors stays: the
 * fork server and the workers then live exactly as long as the creator
 * (whose lifeline end is the last one). */
static void child(void)
{
    atomic_fetch_add_explicit(&ppx__fork_gen, 1, memory_order_relaxed);
    int blank = -1;
    for (size_t i = 0; i < ntable; i++) {
        if (table[i].how == PPX__FORK_CLOSE) {
            close(table[i].fd);
            continue;
        }
        if (blank < 0)
            blank = eventfd(0, EFD_CLOEXEC);
        /* Without a stand-in, close the number: a poll on it then fails
         * instead of seeing the creator's events. */
        if (blank < 0 || dup3(blank, table[i].fd, O_CLOEXEC) < 0)
            close(table[i].fd);
    }
    if (blank >= 0)
        close(blank);
    /* The table's memory stays: a child of this child must not find
     * these numbers, and free() is not safe to call here. */
    ntable = 0;
    pthread_mutex_unlock(&mu);
}

static void install(void)
{
    pthread_atfork(prepare, parent, child);
}

void ppx__fork_hold(void)
{
    pthread_once(&once, install);
    pthread_mutex_lock(&mu);
}

void ppx__fork_release(void)
{
    pthread_mutex_unlock(&mu);
}

int ppx__fork_track(int fd, int how)
{
    if (ntable == captable) {
        size_t cap = captable ? captable * 2 : 16;
        tracked *t = realloc(table, cap * sizeof *t);
        if (!t)
            return PPX_ENOMEM;
        table = t;
        captable = cap;
    }
    table[ntable++] = (tracked){fd, how};
    return 0;
}

void ppx__fork_close(int fd)
{
    if (fd < 0)
        return;
    ppx__fork_hold();
    for (size_t i = 0; i < ntable; i++) {
        if (table[i].fd == fd) {
            table[i] = table[--ntable];
            break;
        }
    }
    close(fd);
    ppx__fork_release();
}
