/* The body of a forked worker process. */
#ifndef PPX_PROCPOOL_WORKER_H
#define PPX_PROCPOOL_WORKER_H
#include "shared.h"
#include <stdbool.h>
#include <sys/types.h>

/* Exit statuses a worker uses on purpose; anything else is a crash. */
enum {
    PPX__EXIT_SHUTDOWN = 0,
    PPX__EXIT_PROTOCOL = 120, /* the parent sent something unreadable */
    PPX__EXIT_ORPHAN = 121,   /* the parent is gone */
    PPX__EXIT_NOMEM = 122,
};

/* Runs calls from ring index of sh until shutdown; never returns. efd
 * wakes the pool's parent; parent is the zygote that forked us. */
_Noreturn void ppx__worker_main(ppx__shared *sh, uint32_t index, int efd, pid_t parent);

#endif
