/* Packing values from a format string (see ppx_pack in ppx.h). */
#ifndef PPX_SERIALIZE_PACK_H
#define PPX_SERIALIZE_PACK_H
#include "ppx.h"
#include <msgpack.h>

/* Packs the values fmt describes into pk: as an array when as_array, else
 * fmt must hold exactly one letter. 0, PPX_EINVAL or PPX_ENOMEM. */
int ppx__vpack(msgpack_packer *pk, bool as_array, const char *fmt, va_list ap);

#endif
