/* The process-wide table of worker functions, shared with forked workers
 * by fork itself: it is frozen when the first pool starts. */
#ifndef PPX_PROCPOOL_REGISTRY_H
#define PPX_PROCPOOL_REGISTRY_H
#include "ppx.h"

typedef struct ppx__entry {
    const char *name;
    size_t len;
    ppx_fn fn;
    void *udata;
} ppx__entry;

/* NULL if no function has that name. Lock-free once frozen. */
const ppx__entry *ppx__registry_find(const char *name, size_t len);
void ppx__registry_freeze(void);

#endif
