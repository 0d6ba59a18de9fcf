/*
 * A bounds-checked msgpack cursor over untrusted bytes. Every read checks
 * the remaining length first; a read that fails leaves the cursor where it
 * was. msgpack-c's unpacker builds object trees in a zone; we need byte
 * ranges of sub-objects (to keep a value without re-encoding it, and to
 * read a task id ahead of a malformed payload), which its C API does not
 * expose, so reading is done here and writing uses msgpack-c's packer.
 */
#ifndef PPX_SERIALIZE_MPREAD_H
#define PPX_SERIALIZE_MPREAD_H
#include "ppx.h"

typedef struct ppx__mp {
    const uint8_t *p;
    const uint8_t *end;
} ppx__mp;

static inline ppx__mp ppx__mp_of(const void *data, size_t len)
{
    ppx__mp c = {(const uint8_t *)data, (const uint8_t *)data + len};
    return c;
}
static inline size_t ppx__mp_left(const ppx__mp *c) { return (size_t)(c->end - c->p); }

/* Type of the next object without consuming it (INVALID if truncated or
 * the reserved byte 0xc1). */
ppx_type ppx__mp_peek(const ppx__mp *c);
/* Each returns 0, PPX_ETYPE (another type is next), PPX_ERANGE or
 * PPX_EMALFORMED (truncated). */
int ppx__mp_array(ppx__mp *c, uint32_t *n);
int ppx__mp_map(ppx__mp *c, uint32_t *n);
int ppx__mp_nil(ppx__mp *c);
int ppx__mp_bool(ppx__mp *c, bool *b);
int ppx__mp_int(ppx__mp *c, int64_t *v);
int ppx__mp_uint(ppx__mp *c, uint64_t *v);
int ppx__mp_double(ppx__mp *c, double *v);
int ppx__mp_str(ppx__mp *c, const char **s, uint32_t *len);
int ppx__mp_bin(ppx__mp *c, const void **p, uint32_t *len);
/* Skips one whole object (any nesting), checking every length. */
int ppx__mp_skip(ppx__mp *c);
/* 0 if [data, data+len) is exactly one well-formed object. */
int ppx__mp_check_one(const void *data, size_t len);
/* A call's arguments: NULL (with len 0) becomes the empty array; anything
 * else must be exactly one msgpack array. 0, PPX_EINVAL, PPX_EMALFORMED. */
int ppx__mp_call_args(const void **args, size_t *len);

#endif
