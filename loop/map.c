/*
 * run_in_executor_map: a large batch cut into chunks, one frame each,
 * spread over the pool and gathered into one flat array of results.
 */
#include "awaitable.h"
#include "../serialize/mpread.h"
#include "../procpool/pool.h"

#include <stdlib.h>
#include <string.h>

/* A chunk's items: an array header for count elements, then their bytes. */
static int submit_chunk(uv_loop_t *loop, ppx_pool *pool, const char *fn, const uint8_t *first,
                        size_t bytes, uint32_t count, ppx_awaitable **out)
{
    unsigned char *buf = malloc(bytes + 5);
    if (!buf)
        return PPX_ENOMEM;
    buf[0] = 0xdd; /* array32: the same header whatever the count */
    buf[1] = (unsigned char)(count >> 24);
    buf[2] = (unsigned char)(count >> 16);
    buf[3] = (unsigned char)(count >> 8);
    buf[4] = (unsigned char)count;
    memcpy(buf + 5, first, bytes);
    ppx_future *f;
    int rc = ppx_pool_map(pool, fn, buf, bytes + 5, NULL, &f);
    free(buf);
    return rc ? rc : ppx__wrap_submitted(loop, f, out);
}

int ppx_run_in_executor_map(uv_loop_t *loop, ppx_pool *pool, const char *fn,
                            const void *items, size_t len, size_t chunk_size,
                            ppx_awaitable **out)
{
    if (!loop || !out || !fn || !items)
        return PPX_EINVAL;
    int rc = pool ? 0 : ppx__default_pool_get(&pool);
    if (rc == 0 && ppx__pool_check(pool) == PPX_EFORKED) /* before chunks are sized */
        rc = PPX_EFORKED;
    if (rc)
        return rc;
    ppx__mp c = ppx__mp_of(items, len);
    uint32_t n;
    if (ppx__mp_array(&c, &n) || ppx__mp_check_one(items, len))
        return PPX_EMALFORMED;
    if (chunk_size == 0) {
        size_t chunks = 4 * (size_t)ppx_pool_workers(pool);
        chunk_size = n / chunks + (n % chunks != 0);
    }
    if (chunk_size == 0)
        chunk_size = 1;
    size_t nchunks = n / chunk_size + (n % chunk_size != 0);
    ppx_awaitable **parts = calloc(nchunks ? nchunks : 1, sizeof *parts);
    if (!parts)
        return PPX_ENOMEM;
    size_t made = 0;
    for (uint32_t i = 0; i < n && rc == 0; made++) {
        const uint8_t *first = c.p;
        uint32_t count = 0;
        for (; count < chunk_size && i < n; count++, i++)
            if (ppx__mp_skip(&c))
                rc = PPX_EMALFORMED;
        if (rc == 0)
            rc = submit_chunk(loop, pool, fn, first, (size_t)(c.p - first), count, &parts[made]);
        if (rc)
            break;
    }
    ppx_awaitable *g = NULL;
    if (rc == 0)
        rc = ppx__gather(loop, parts, made, 0, true, &g);
    for (size_t k = 0; k < made; k++) {
        if (rc && parts[k])
            ppx_awaitable_cancel(parts[k]);
        ppx_awaitable_unref(parts[k]);
    }
    free(parts);
    if (rc == 0)
        *out = g;
    return rc;
}
