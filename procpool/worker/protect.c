/*
 * What a worker gives up of the shared mapping right after its fork
 * (wire/shared.h has the layout): it follows the layout the parent
 * stamped in the header, which the worker reads before the header turns
 * read-only.
 */
#include "worker.h"

#include <errno.h>
#include <sys/mman.h>

/* In worker index, after fork: the parts of the mapping it has no
 * business writing. The header, the live table and the call arena become
 * read-only, every other worker's region disappears. A wild write then
 * faults there, as an ordinary crash of that worker, instead of landing
 * in someone else's rings or another call's arguments. (Under valgrind
 * this mprotect takes time in proportion to the arena's size, 0.66 s for
 * the default 528 MiB with valgrind 3.19: its test setup passes a small
 * arena_bytes instead.) */
int ppx__layout_protect(ppx__shared *sh, uint32_t index)
{
    char *base = (char *)sh;
    char *first = ppx__shared_region(sh, 0);
    char *mine = ppx__shared_region(sh, index);
    char *end = ppx__shared_region(sh, sh->nworkers);
    if (mprotect(base, (size_t)(first - base), PROT_READ) ||
        (mine > first && mprotect(first, (size_t)(mine - first), PROT_NONE)) ||
        (end > mine + sh->region_stride &&
         mprotect(mine + sh->region_stride, (size_t)(end - mine - sh->region_stride), PROT_NONE)))
        return -errno;
    if (sh->arena_bytes && mprotect(base + sh->arena_off, sh->arena_bytes, PROT_READ))
        return -errno;
    return 0;
}
