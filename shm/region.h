/* Anonymous shared memory, mapped before fork so only our children see it. */
#ifndef PPX_SHM_REGION_H
#define PPX_SHM_REGION_H
#include <stddef.h>

/* Maps len bytes (rounded up to pages) of zeroed MAP_SHARED|MAP_ANONYMOUS
 * memory into *out. Nothing appears in /dev/shm, and nothing outlives the
 * last process that maps it. 0 or -errno. */
int ppx__region_map(size_t len, void **out);
void ppx__region_unmap(void *p, size_t len);
size_t ppx__page_round(size_t len);

#endif
