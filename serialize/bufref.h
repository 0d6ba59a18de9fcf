/*
 * How a shared buffer (ppx_buffer) travels inside msgpack: a fixext 16 of
 * type PPX__EXT_BUFFER holding where the buffer lies in the pool's call
 * arena (offset from the arena's start, big-endian) and its length. The
 * bytes never leave this machine, so the offset is all a worker needs:
 * it maps the arena read-only and reads the buffer in place.
 *
 * A ppx_buffer starts with a ppx__bufref_head, so ppx_pack's 'M' can
 * encode one without knowing the rest of the struct (procpool/buffer.h).
 */
#ifndef PPX_SERIALIZE_BUFREF_H
#define PPX_SERIALIZE_BUFREF_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define PPX__EXT_BUFFER 0x50 /* 'P' */
#define PPX__BUFREF_BYTES 18 /* 0xd8, the type, 16 bytes */
#define PPX__BUFFER_MAGIC 0x50425546u /* "PBUF" */

typedef struct ppx__bufref_head {
    uint32_t magic; /* PPX__BUFFER_MAGIC while the buffer lives */
    uint32_t unused;
    uint64_t off, len;
} ppx__bufref_head;

static inline void ppx__bufref_put_be64(uint8_t *p, uint64_t v)
{
    for (int i = 7; i >= 0; i--, v >>= 8)
        p[i] = (uint8_t)v;
}

static inline uint64_t ppx__bufref_get_be64(const uint8_t *p)
{
    uint64_t v = 0;
    for (int i = 0; i < 8; i++)
        v = v << 8 | p[i];
    return v;
}

static inline void ppx__bufref_encode(uint8_t out[PPX__BUFREF_BYTES], uint64_t off, uint64_t len)
{
    out[0] = 0xd8;
    out[1] = PPX__EXT_BUFFER;
    ppx__bufref_put_be64(out + 2, off);
    ppx__bufref_put_be64(out + 10, len);
}

/* Whether the msgpack object at p (len bytes) is exactly one buffer
 * reference; if so its offset and length. */
static inline bool ppx__bufref_decode(const void *p, size_t len, uint64_t *off, uint64_t *blen)
{
    const uint8_t *b = p;
    if (len != PPX__BUFREF_BYTES || b[0] != 0xd8 || b[1] != PPX__EXT_BUFFER)
        return false;
    *off = ppx__bufref_get_be64(b + 2);
    *blen = ppx__bufref_get_be64(b + 10);
    return true;
}

#endif
