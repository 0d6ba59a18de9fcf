/*
 * The process generation and the descriptors a child of fork must not
 * keep (see fork.h), and the freeing of a pool's copy in such a child.
 *
 * Lock: mu guards the table. It is taken by ppx__fork_hold and by the
 * prepare handler, so a fork happens either before a descriptor is opened
 * and tracked or after both: the table a child inherits names exactly the
 * tracked descriptors open at the fork. Nothing else is locked while it is
 * held, and nothing forks under it (the prepare handler would wait on it
 * forever).
 */
#include "fork.h"
#include "pool_impl.h"
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

/* ---- a pool's copy ------------------------------------------------------ */

/* Drops the copy's tasks, resolving their futures CANCELLED in this
 * process only: no live table, slot, ring or arena word is written. */
static void drop_tasks(ppx_pool *p, ppx__list *l, ppx__notify *n)
{
    while (l->head) {
        ppx__task *t = l->head;
        ppx__list_remove(l, t);
        if (t->fut) {
            ppx__future_cancelled(t->fut, n);
            p->unresolved--;
        }
        /* An arena frame is a block of the shared mapping: it goes with
         * the arena's bookkeeping, whose lock may be held by a thread the
         * copy does not have. */
        if (t->frame != t->inline_frame && !ppx__arena_owns(&p->arena, t->frame))
            ppx__bigbuf_free(t->frame, t->frame_cap);
        free(t);
        p->ntasks--;
    }
}

/*
 * ppx_pool_free in a fork of the pool's creator. The copy's memory goes;
 * nothing shared is touched: no shutdown flag, no ring or slot, no signal,
 * no wait on the fork server. The atfork handler has closed its
 * descriptors already. Its unresolved futures resolve CANCELLED here (the
 * creator's go on), their callbacks on this thread, then the close hooks
 * run (a loop binding stops watching the stand-in descriptor).
 *
 * A copy whose lock was held at the fork (by a thread the child does not
 * have) may be half updated, and an MPI pool's copy lacks its progress
 * thread: both are left as they are, allocated.
 */
void ppx__pool_free_copy(ppx_pool *p)
{
    if (p->freeing || p->remote || pthread_mutex_trylock(&p->mu) != 0)
        return;
    p->freeing = true;
    p->closed = true;
    ppx__notify n = {0};
    drop_tasks(p, &p->queue, &n);
    for (int i = 0; i < p->nworkers; i++) {
        drop_tasks(p, &p->w[i].tasks, &n);
        ppx__rx_reset(&p->w[i].rx);
    }
    p->torn_down = true;
    pthread_mutex_unlock(&p->mu);
    ppx__notify_run(&n);
    for (size_t i = 0; i < p->nhooks; i++)
        p->hooks[i].fn(p, p->hooks[i].arg);
    ppx__pool_destroy(p, true);
}
