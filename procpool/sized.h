/*
 * Structs the caller allocates and the library may grow (ppx.h, "Structs
 * the caller allocates can grow"): each starts with `size_t size`, the
 * sizeof the caller was compiled with. These move bytes between the
 * caller's size and the library's, so either side may be the newer one.
 */
#ifndef PPX_PROCPOOL_SIZED_H
#define PPX_PROCPOOL_SIZED_H

#include "ppx.h"

#include <stddef.h>

/* The bytes of a struct up to and including field: the 0.4.0 layouts,
 * below which a size is refused. They never change once released. */
#define PPX__SIZE_UPTO(type, field) (offsetof(type, field) + sizeof(((type *)0)->field))
#define PPX__POOL_OPTIONS_MIN PPX__SIZE_UPTO(ppx_pool_options, outbox_bytes)
#define PPX__CALL_OPTIONS_MIN PPX__SIZE_UPTO(ppx_call_options, timeout_ms)
#define PPX__POOL_STATS_MIN PPX__SIZE_UPTO(ppx_pool_stats, outbox_replies)
#define PPX__WORKER_STATS_MIN PPX__SIZE_UPTO(ppx_worker_stats, ring_bytes)

/* Copies the caller's struct src (its size first) into dst, ours bytes
 * long: fields the caller's layout lacks become 0, dst->size becomes
 * ours. PPX_EINVAL, with ppx_last_error() naming the struct (name), when
 * src's size is under min or it sets a byte past ours. */
int ppx__sized_in(void *dst, size_t ours, const void *src, size_t min, const char *name);

/* Checks the caller's output struct dst (its size first): 0, or
 * PPX_EINVAL with ppx_last_error() naming the struct when its size is
 * under min. */
int ppx__sized_check(const void *dst, size_t min, const char *name);

/* Writes full (ours bytes, the library's layout) into the caller's dst,
 * checked by ppx__sized_check: the caller's size stays, fields it does
 * not have are not written, fields only it has become 0. */
void ppx__sized_out(void *dst, const void *full, size_t ours);

#endif
