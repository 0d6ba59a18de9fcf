/* The body of a forked worker process. */
#ifndef PPX_PROCPOOL_WORKER_H
#define PPX_PROCPOOL_WORKER_H
#include "procpool/wire/shared.h"
#include <stdbool.h>
#include <sys/types.h>

/* Exit statuses a worker uses on purpose, each announced by a note in its
 * block (ppx__exit_note); any other end, or one of these without its
 * note, is a crash. */
enum {
    PPX__EXIT_SHUTDOWN = 0,
    PPX__EXIT_PROTOCOL = 120, /* the parent sent something unreadable */
    PPX__EXIT_ORPHAN = 121,   /* the parent is gone */
    PPX__EXIT_NOMEM = 122,
    PPX__EXIT_INIT = 123,     /* the initializer failed (message in shm) */
    PPX__EXIT_RECYCLE = 124,  /* max_tasks_per_child or max_rss_bytes reached */
    PPX__EXIT_WAKE_LOST = 125, /* its eventfd was closed under it */
    PPX__EXIT_SANDBOX = 126,   /* a forbidden system call (number in the block) */
    PPX__EXIT_CPU = 127,       /* SIGXCPU: the pool's cpu_limit_s */
};

struct ppx__sandbox;

/* What a worker runs once before its first call. */
typedef struct ppx__worker_init {
    int (*fn)(char *err, size_t errlen, void *arg);
    void *arg;
    /* Sandbox, limits and scheduling (sandbox.h), or NULL: the pool's,
     * which outlives every fork server and worker. */
    const struct ppx__sandbox *sandbox;
} ppx__worker_init;

/* Runs calls from ring index of sh until shutdown; never returns. efd
 * wakes the pool's parent; parent is the zygote that forked us. */
_Noreturn void ppx__worker_main(ppx__shared *sh, uint32_t index, int efd, pid_t parent,
                                ppx__worker_init init);

/* protect.c, in a worker after fork: the header, the live table and the
 * call arena read-only, other workers' regions PROT_NONE. 0 or -errno
 * (the mapping could not be split). */
int ppx__layout_protect(ppx__shared *sh, uint32_t index);

#endif
