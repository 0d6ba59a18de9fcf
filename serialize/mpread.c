#include "mpread.h"

#include <string.h>

static uint64_t be(const uint8_t *p, int n)
{
    uint64_t v = 0;
    for (int i = 0; i < n; i++)
        v = (v << 8) | p[i];
    return v;
}

/* Decoded header of the next object: its type, the length word (element
 * count, byte count or integer bits) and where its body starts. */
typedef struct head {
    ppx_type type;
    bool negative;   /* for INT: signed encoding with a negative value */
    uint64_t word;   /* INT: the raw value; STR/BIN/EXT: bytes; ARRAY/MAP: count */
    int float_bytes; /* FLOAT: 4 or 8 */
    size_t hlen;     /* bytes of header before the body */
} head;

/* Lengths of the header after the first byte, indexed by byte - 0xc4,
 * for the variable forms 0xc4..0xdf. */
static int read_head(const ppx__mp *c, head *h)
{
    size_t left = ppx__mp_left(c);
    if (left < 1)
        return PPX_EMALFORMED;
    uint8_t b = c->p[0];
    const uint8_t *p = c->p + 1;
    memset(h, 0, sizeof *h);
    h->hlen = 1;
#define NEED(n)                        \
    do {                               \
        if (left < 1 + (size_t)(n))    \
            return PPX_EMALFORMED;     \
        h->hlen = 1 + (size_t)(n);     \
    } while (0)
    if (b <= 0x7f) {
        h->type = PPX_TYPE_INT;
        h->word = b;
    } else if (b >= 0xe0) {
        h->type = PPX_TYPE_INT;
        h->negative = true;
        h->word = (uint64_t)(int64_t)(int8_t)b;
    } else if (b <= 0x8f) {
        h->type = PPX_TYPE_MAP;
        h->word = b & 0x0f;
    } else if (b <= 0x9f) {
        h->type = PPX_TYPE_ARRAY;
        h->word = b & 0x0f;
    } else if (b <= 0xbf) {
        h->type = PPX_TYPE_STR;
        h->word = b & 0x1f;
    } else {
        switch (b) {
        case 0xc0: h->type = PPX_TYPE_NIL; break;
        case 0xc2: case 0xc3: h->type = PPX_TYPE_BOOL; h->word = b & 1; break;
        case 0xc4: NEED(1); h->type = PPX_TYPE_BIN; h->word = be(p, 1); break;
        case 0xc5: NEED(2); h->type = PPX_TYPE_BIN; h->word = be(p, 2); break;
        case 0xc6: NEED(4); h->type = PPX_TYPE_BIN; h->word = be(p, 4); break;
        /* ext: length, then a type byte that belongs to the body */
        case 0xc7: NEED(1); h->type = PPX_TYPE_EXT; h->word = be(p, 1) + 1; break;
        case 0xc8: NEED(2); h->type = PPX_TYPE_EXT; h->word = be(p, 2) + 1; break;
        case 0xc9: NEED(4); h->type = PPX_TYPE_EXT; h->word = be(p, 4) + 1; break;
        case 0xca: h->type = PPX_TYPE_FLOAT; h->float_bytes = 4; break;
        case 0xcb: h->type = PPX_TYPE_FLOAT; h->float_bytes = 8; break;
        case 0xcc: NEED(1); h->type = PPX_TYPE_INT; h->word = be(p, 1); break;
        case 0xcd: NEED(2); h->type = PPX_TYPE_INT; h->word = be(p, 2); break;
        case 0xce: NEED(4); h->type = PPX_TYPE_INT; h->word = be(p, 4); break;
        case 0xcf: NEED(8); h->type = PPX_TYPE_INT; h->word = be(p, 8); break;
        case 0xd0: NEED(1); h->type = PPX_TYPE_INT; h->word = (uint64_t)(int64_t)(int8_t)be(p, 1); h->negative = (int8_t)be(p, 1) < 0; break;
        case 0xd1: NEED(2); h->type = PPX_TYPE_INT; h->word = (uint64_t)(int64_t)(int16_t)be(p, 2); h->negative = (int16_t)be(p, 2) < 0; break;
        case 0xd2: NEED(4); h->type = PPX_TYPE_INT; h->word = (uint64_t)(int64_t)(int32_t)be(p, 4); h->negative = (int32_t)be(p, 4) < 0; break;
        case 0xd3: NEED(8); h->type = PPX_TYPE_INT; h->word = be(p, 8); h->negative = (int64_t)be(p, 8) < 0; break;
        case 0xd4: h->type = PPX_TYPE_EXT; h->word = 2; break;
        case 0xd5: h->type = PPX_TYPE_EXT; h->word = 3; break;
        case 0xd6: h->type = PPX_TYPE_EXT; h->word = 5; break;
        case 0xd7: h->type = PPX_TYPE_EXT; h->word = 9; break;
        case 0xd8: h->type = PPX_TYPE_EXT; h->word = 17; break;
        case 0xd9: NEED(1); h->type = PPX_TYPE_STR; h->word = be(p, 1); break;
        case 0xda: NEED(2); h->type = PPX_TYPE_STR; h->word = be(p, 2); break;
        case 0xdb: NEED(4); h->type = PPX_TYPE_STR; h->word = be(p, 4); break;
        case 0xdc: NEED(2); h->type = PPX_TYPE_ARRAY; h->word = be(p, 2); break;
        case 0xdd: NEED(4); h->type = PPX_TYPE_ARRAY; h->word = be(p, 4); break;
        case 0xde: NEED(2); h->type = PPX_TYPE_MAP; h->word = be(p, 2); break;
        case 0xdf: NEED(4); h->type = PPX_TYPE_MAP; h->word = be(p, 4); break;
        default: return PPX_EMALFORMED; /* 0xc1 is never used */
        }
    }
#undef NEED
    /* Bodies must be present in full before anyone points into them. */
    size_t body = 0;
    if (h->type == PPX_TYPE_FLOAT)
        body = (size_t)h->float_bytes;
    else if (h->type == PPX_TYPE_STR || h->type == PPX_TYPE_BIN || h->type == PPX_TYPE_EXT)
        body = (size_t)h->word;
    if (body > left - h->hlen)
        return PPX_EMALFORMED;
    return 0;
}

ppx_type ppx__mp_peek(const ppx__mp *c)
{
    head h;
    return read_head(c, &h) ? PPX_TYPE_INVALID : h.type;
}

static int expect(ppx__mp *c, ppx_type t, head *h)
{
    int rc = read_head(c, h);
    if (rc)
        return rc;
    return h->type == t ? 0 : PPX_ETYPE;
}

/* An array's or map's count; each of its objects takes at least one
 * byte (per objects an entry), so a count past the end is a lie. */
static int read_count(ppx__mp *c, ppx_type type, uint64_t per, uint32_t *n)
{
    head h;
    int rc = expect(c, type, &h);
    if (rc)
        return rc;
    if (h.word * per > ppx__mp_left(c) - h.hlen)
        return PPX_EMALFORMED;
    c->p += h.hlen;
    *n = (uint32_t)h.word;
    return 0;
}

int ppx__mp_array(ppx__mp *c, uint32_t *n)
{
    return read_count(c, PPX_TYPE_ARRAY, 1, n);
}

int ppx__mp_map(ppx__mp *c, uint32_t *n)
{
    return read_count(c, PPX_TYPE_MAP, 2, n);
}

int ppx__mp_nil(ppx__mp *c)
{
    head h;
    int rc = expect(c, PPX_TYPE_NIL, &h);
    if (rc == 0)
        c->p += h.hlen;
    return rc;
}

int ppx__mp_bool(ppx__mp *c, bool *b)
{
    head h;
    int rc = expect(c, PPX_TYPE_BOOL, &h);
    if (rc == 0) {
        *b = h.word != 0;
        c->p += h.hlen;
    }
    return rc;
}

int ppx__mp_int(ppx__mp *c, int64_t *v)
{
    head h;
    int rc = expect(c, PPX_TYPE_INT, &h);
    if (rc)
        return rc;
    if (!h.negative && h.word > (uint64_t)INT64_MAX)
        return PPX_ERANGE;
    *v = (int64_t)h.word;
    c->p += h.hlen;
    return 0;
}

int ppx__mp_uint(ppx__mp *c, uint64_t *v)
{
    head h;
    int rc = expect(c, PPX_TYPE_INT, &h);
    if (rc)
        return rc;
    if (h.negative)
        return PPX_ERANGE;
    *v = h.word;
    c->p += h.hlen;
    return 0;
}

int ppx__mp_double(ppx__mp *c, double *v)
{
    head h;
    int rc = read_head(c, &h);
    if (rc)
        return rc;
    if (h.type == PPX_TYPE_INT) {
        *v = h.negative ? (double)(int64_t)h.word : (double)h.word;
    } else if (h.type == PPX_TYPE_FLOAT) {
        uint64_t bits = be(c->p + 1, h.float_bytes);
        if (h.float_bytes == 4) {
            uint32_t b32 = (uint32_t)bits;
            float f;
            memcpy(&f, &b32, sizeof f);
            *v = f;
        } else {
            memcpy(v, &bits, sizeof *v);
        }
        c->p += (size_t)h.float_bytes;
    } else {
        return PPX_ETYPE;
    }
    c->p += h.hlen;
    return 0;
}

/* A string's or bytes' body in place, of the type expected. */
static int read_body(ppx__mp *c, ppx_type type, const unsigned char **body, uint32_t *len)
{
    head h;
    int rc = expect(c, type, &h);
    if (rc)
        return rc;
    *body = c->p + h.hlen;
    *len = (uint32_t)h.word;
    c->p += h.hlen + h.word;
    return 0;
}

int ppx__mp_str(ppx__mp *c, const char **s, uint32_t *len)
{
    const unsigned char *b;
    int rc = read_body(c, PPX_TYPE_STR, &b, len);
    if (rc == 0)
        *s = (const char *)b;
    return rc;
}

int ppx__mp_bin(ppx__mp *c, const void **p, uint32_t *len)
{
    const unsigned char *b;
    int rc = read_body(c, PPX_TYPE_BIN, &b, len);
    if (rc == 0)
        *p = b;
    return rc;
}

/* Whether b alone is a whole header with no body: a fixint, nil, a bool,
 * or the head of a fixmap or fixarray (whose elements follow). */
static bool one_byte_head(uint8_t b)
{
    return b <= 0x9f || b >= 0xe0 || b == 0xc0 || b == 0xc2 || b == 0xc3;
}

int ppx__mp_skip(ppx__mp *c)
{
    /* Iterative, so hostile nesting cannot exhaust the stack: todo counts
     * the objects still to skip, and can never exceed the bytes left. */
    ppx__mp cur = *c;
    uint64_t todo = 1;
    while (todo) {
        /* Most objects are one byte, or the one-byte head of a small
         * container: read_head's answer for those, without its work. */
        uint8_t b;
        if (cur.p < cur.end && one_byte_head(b = *cur.p)) {
            cur.p++;
            todo--;
            if (b >= 0x80 && b <= 0x9f) /* fixmap: 2 objects an entry; fixarray: 1 */
                todo += b <= 0x8f ? 2u * (b & 0x0f) : (b & 0x0fu);
            if (todo > ppx__mp_left(&cur))
                return PPX_EMALFORMED;
            continue;
        }
        head h;
        int rc = read_head(&cur, &h);
        if (rc)
            return rc;
        todo--;
        cur.p += h.hlen;
        switch (h.type) {
        case PPX_TYPE_ARRAY: todo += h.word; break;
        case PPX_TYPE_MAP: todo += 2 * h.word; break;
        case PPX_TYPE_FLOAT: cur.p += (size_t)h.float_bytes; break;
        case PPX_TYPE_STR:
        case PPX_TYPE_BIN:
        case PPX_TYPE_EXT: cur.p += h.word; break;
        default: break;
        }
        if (todo > ppx__mp_left(&cur))
            return PPX_EMALFORMED;
    }
    *c = cur;
    return 0;
}

int ppx__mp_check_one(const void *data, size_t len)
{
    ppx__mp c = ppx__mp_of(data, len);
    int rc = ppx__mp_skip(&c);
    if (rc)
        return rc == PPX_ETYPE ? PPX_EMALFORMED : rc;
    return ppx__mp_left(&c) == 0 ? 0 : PPX_EMALFORMED;
}

int ppx__mp_call_args(const void **args, size_t *len)
{
    static const unsigned char no_args = 0x90;
    if (!*args && *len)
        return PPX_EINVAL;
    if (!*args) {
        *args = &no_args;
        *len = 1;
    }
    /* An array's head (fixarray, array16, array32), then exactly one
     * whole object: what ppx__mp_peek and ppx__mp_check_one say, with one
     * pass over the bytes. */
    const uint8_t *b = *args;
    if (*len == 0 || !((b[0] & 0xf0) == 0x90 || b[0] == 0xdc || b[0] == 0xdd))
        return PPX_EMALFORMED;
    return ppx__mp_check_one(*args, *len) ? PPX_EMALFORMED : 0;
}
