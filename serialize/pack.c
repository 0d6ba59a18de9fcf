#include "pack.h"
#include "bufref.h"

#include <stdlib.h>
#include <string.h>

static size_t count_letters(const char *fmt)
{
    size_t n = 0;
    for (const char *p = fmt; *p; p++)
        n += *p != ' ';
    return n;
}

int ppx__vpack(msgpack_packer *pk, bool as_array, const char *fmt, va_list ap)
{
    if (!fmt)
        return PPX_EINVAL;
    size_t n = count_letters(fmt);
    if (as_array ? msgpack_pack_array(pk, n) != 0 : n != 1)
        return as_array ? PPX_ENOMEM : PPX_EINVAL;
    int rc = 0;
    for (const char *p = fmt; *p && rc == 0; p++) {
        const char *s;
        const void *b;
        size_t len;
        switch (*p) {
        case ' ': continue;
        case 'i': rc = msgpack_pack_int(pk, va_arg(ap, int)); break;
        case 'l': rc = msgpack_pack_long_long(pk, va_arg(ap, long long)); break;
        case 'u': rc = msgpack_pack_unsigned_int(pk, va_arg(ap, unsigned)); break;
        case 'U': rc = msgpack_pack_unsigned_long_long(pk, va_arg(ap, unsigned long long)); break;
        case 'd': rc = msgpack_pack_double(pk, va_arg(ap, double)); break;
        case 'b': rc = va_arg(ap, int) ? msgpack_pack_true(pk) : msgpack_pack_false(pk); break;
        case 'n': rc = msgpack_pack_nil(pk); break;
        case 's':
            s = va_arg(ap, const char *);
            if (s && strlen(s) > PPX__MP_LEN_MAX)
                return PPX_ETOOBIG;
            rc = s ? msgpack_pack_str_with_body(pk, s, strlen(s)) : msgpack_pack_nil(pk);
            break;
        case 'S':
            s = va_arg(ap, const char *);
            len = va_arg(ap, size_t);
            if (!s && len)
                return PPX_EINVAL;
            if (len > PPX__MP_LEN_MAX)
                return PPX_ETOOBIG;
            rc = msgpack_pack_str_with_body(pk, s ? s : "", len);
            break;
        case 'B':
            b = va_arg(ap, const void *);
            len = va_arg(ap, size_t);
            if (!b && len)
                return PPX_EINVAL;
            if (len > PPX__MP_LEN_MAX)
                return PPX_ETOOBIG;
            rc = msgpack_pack_bin_with_body(pk, b ? b : "", len);
            break;
        case 'M': { /* a shared buffer, by reference (bufref.h) */
            const ppx__bufref_head *h = va_arg(ap, const void *);
            if (!h || h->magic != PPX__BUFFER_MAGIC)
                return PPX_EINVAL;
            uint8_t ref[PPX__BUFREF_BYTES];
            ppx__bufref_encode(ref, h->off, h->len);
            rc = msgpack_pack_ext(pk, 16, PPX__EXT_BUFFER) ||
                 msgpack_pack_ext_body(pk, ref + 2, 16);
            break;
        }
        default:
            return PPX_EINVAL;
        }
        if (rc)
            rc = PPX_ENOMEM;
    }
    return rc;
}

int ppx_vpack(void **out, size_t *out_len, const char *fmt, va_list ap)
{
    if (!out || !out_len)
        return PPX_EINVAL;
    msgpack_sbuffer sb;
    msgpack_packer pk;
    msgpack_sbuffer_init(&sb);
    msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
    int rc = ppx__vpack(&pk, true, fmt, ap);
    if (rc) {
        msgpack_sbuffer_destroy(&sb);
        return rc;
    }
    *out_len = sb.size;
    *out = msgpack_sbuffer_release(&sb);
    return 0;
}

int ppx_pack(void **out, size_t *out_len, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int rc = ppx_vpack(out, out_len, fmt, ap);
    va_end(ap);
    return rc;
}

int ppx__with_packed(int (*use)(void *ctx, const void *args, size_t len), void *ctx,
                     const char *fmt, va_list ap)
{
    void *args;
    size_t len;
    int rc = ppx_vpack(&args, &len, fmt, ap);
    if (rc)
        return rc;
    rc = use(ctx, args, len);
    free(args);
    return rc;
}
