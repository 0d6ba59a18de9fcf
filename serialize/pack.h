/* Packing values from a format string (see ppx_pack in ppx.h). */
#ifndef PPX_SERIALIZE_PACK_H
#define PPX_SERIALIZE_PACK_H
#include "ppx.h"
#include <msgpack.h>

/* msgpack counts a string's or bytes' length in 32 bits. msgpack-c takes
 * a size_t and writes it cut to 32 bits, followed by every byte: a header
 * that lies about its body, which then reads as other values. Longer
 * strings and bytes are refused before they reach it. */
#define PPX__MP_LEN_MAX ((size_t)UINT32_MAX)

/* Packs the values fmt describes into pk: as an array when as_array, else
 * fmt must hold exactly one letter. 0, PPX_EINVAL, PPX_ETOOBIG (a string
 * or bytes over PPX__MP_LEN_MAX) or PPX_ENOMEM. */
int ppx__vpack(msgpack_packer *pk, bool as_array, const char *fmt, va_list ap);

/* The *f entry points (ppx_pool_submitf, ppx_run_in_executorf): packs
 * fmt's values as an argument array, hands them to use(ctx, args, len)
 * and frees them after. use's result, or ppx_vpack's error. */
int ppx__with_packed(int (*use)(void *ctx, const void *args, size_t len), void *ctx,
                     const char *fmt, va_list ap);

#endif
