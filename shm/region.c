#include "region.h"

#include <errno.h>
#include <sys/mman.h>
#include <unistd.h>

size_t ppx__page_round(size_t len)
{
    size_t page = (size_t)sysconf(_SC_PAGESIZE);
    return (len + page - 1) & ~(page - 1);
}

int ppx__region_map(size_t len, void **out)
{
    if (len == 0)
        return -EINVAL;
    /* MAP_SHARED|MAP_ANONYMOUS is shmem without a name: invariant 4.
     * NORESERVE: big regions (outboxes, the call arena) are mostly never
     * touched, and must not count against the commit limit until they are. */
    void *p = mmap(NULL, ppx__page_round(len), PROT_READ | PROT_WRITE,
                   MAP_SHARED | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    if (p == MAP_FAILED)
        return -errno;
    *out = p;
    return 0;
}

void ppx__region_unmap(void *p, size_t len)
{
    if (p)
        munmap(p, ppx__page_round(len));
}
