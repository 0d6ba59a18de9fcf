#include "envelope.h"
#include "mpread.h"

#include <string.h>

/* Offsets of the fixed-width header fields (see envelope.h). */
#define OFF_SLOT 11 /* 1 array + 1 kind + 9 task id, then 0xce */
#define OFF_SEQ 16
#define HEAD_LEN PPX__ENV_HEAD_LEN

static void put_be32(unsigned char *p, uint32_t v)
{
    p[0] = (unsigned char)(v >> 24);
    p[1] = (unsigned char)(v >> 16);
    p[2] = (unsigned char)(v >> 8);
    p[3] = (unsigned char)v;
}

static uint32_t get_be32(const unsigned char *p)
{
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

/* The fixed header, by hand: fixarray n, fixint kind, then the
 * fixed-width ints (uint64 0xcf, uint32 0xce). */
static void put_head(unsigned char *h, int kind, size_t n, uint64_t id, uint32_t slot,
                     uint32_t seq)
{
    h[0] = (unsigned char)(0x90 | n);
    h[1] = (unsigned char)kind;
    h[2] = 0xcf;
    put_be32(h + 3, (uint32_t)(id >> 32));
    put_be32(h + 7, (uint32_t)id);
    h[OFF_SLOT] = h[OFF_SEQ] = 0xce;
    put_be32(h + OFF_SLOT + 1, slot);
    put_be32(h + OFF_SEQ + 1, seq);
}

static int begin(msgpack_sbuffer *sb, msgpack_packer *pk, int kind, size_t n,
                 uint64_t id, uint32_t slot, uint32_t seq)
{
    msgpack_sbuffer_clear(sb);
    msgpack_packer_init(pk, sb, msgpack_sbuffer_write);
    unsigned char h[HEAD_LEN];
    put_head(h, kind, n, id, slot, seq);
    return msgpack_sbuffer_write(sb, (const char *)h, sizeof h) ? PPX_ENOMEM : 0;
}

size_t ppx__env_call_len(size_t fn_len, size_t args_len)
{
    return HEAD_LEN + (fn_len < 32 ? 1 : 2) + fn_len + args_len;
}

size_t ppx__env_put_call(void *dst, int kind, uint64_t id, const char *fn, size_t fn_len,
                         const void *args, size_t args_len)
{
    /* The bytes msgpack-c's packer writes (a fixstr, or a str8 for names
     * of 32..255 bytes), without its buffer's bookkeeping and one call
     * per piece: this runs for every submitted call. */
    unsigned char *d = dst;
    put_head(d, kind, 6, id, 0, 0);
    d += HEAD_LEN;
    if (fn_len < 32) {
        *d++ = (unsigned char)(0xa0 | fn_len);
    } else {
        *d++ = 0xd9;
        *d++ = (unsigned char)fn_len;
    }
    memcpy(d, fn, fn_len);
    memcpy(d + fn_len, args, args_len);
    return (size_t)(d + fn_len + args_len - (unsigned char *)dst);
}

static int pack_str(msgpack_packer *pk, const char *s, size_t len)
{
    return msgpack_pack_str_with_body(pk, s, len) ? PPX_ENOMEM : 0;
}

int ppx__env_pack_call(msgpack_sbuffer *sb, uint64_t id, uint32_t slot,
                       uint32_t seq, const char *fn, size_t fn_len,
                       const void *args, size_t args_len)
{
    msgpack_packer pk;
    int rc = begin(sb, &pk, PPX__ENV_CALL, 6, id, slot, seq);
    if (rc == 0)
        rc = pack_str(&pk, fn, fn_len);
    if (rc == 0 && msgpack_sbuffer_write(sb, args, args_len))
        rc = PPX_ENOMEM;
    return rc;
}

int ppx__env_pack_map(msgpack_sbuffer *sb, uint64_t id, const char *fn, size_t fn_len,
                      const void *items, size_t items_len)
{
    msgpack_packer pk;
    int rc = begin(sb, &pk, PPX__ENV_MAP, 6, id, 0, 0);
    if (rc == 0)
        rc = pack_str(&pk, fn, fn_len);
    if (rc == 0 && msgpack_sbuffer_write(sb, items, items_len))
        rc = PPX_ENOMEM;
    return rc;
}

int ppx__env_pack_result_head(msgpack_sbuffer *sb, uint64_t id, uint32_t slot, uint32_t seq)
{
    msgpack_packer pk;
    return begin(sb, &pk, PPX__ENV_RESULT, 5, id, slot, seq);
}

int ppx__env_pack_result(msgpack_sbuffer *sb, uint64_t id, uint32_t slot,
                         uint32_t seq, const void *value, size_t len)
{
    msgpack_packer pk;
    int rc = begin(sb, &pk, PPX__ENV_RESULT, 5, id, slot, seq);
    if (rc == 0 && msgpack_sbuffer_write(sb, value, len))
        rc = PPX_ENOMEM;
    return rc;
}

static size_t cut(const char *s, size_t max)
{
    return s ? strnlen(s, max) : 0;
}

int ppx__env_pack_error(msgpack_sbuffer *sb, uint64_t id, uint32_t slot,
                        uint32_t seq, const char *type, const char *message,
                        const char *function, const char *where, int64_t pid)
{
    return ppx__env_pack_error_at(sb, id, slot, seq, type, message, function, where, pid, NULL);
}

int ppx__env_pack_error_at(msgpack_sbuffer *sb, uint64_t id, uint32_t slot, uint32_t seq,
                           const char *type, const char *message, const char *function,
                           const char *where, int64_t pid, const char *node)
{
    msgpack_packer pk;
    bool at = node && *node;
    int rc = begin(sb, &pk, PPX__ENV_ERROR, at ? 10 : 9, id, slot, seq);
    if (rc == 0)
        rc = pack_str(&pk, type ? type : "", cut(type, PPX__NAME_MAX));
    if (rc == 0)
        rc = pack_str(&pk, message ? message : "", cut(message, PPX__MESSAGE_MAX));
    if (rc == 0)
        rc = pack_str(&pk, function ? function : "", cut(function, PPX__NAME_MAX));
    if (rc == 0)
        rc = pack_str(&pk, where ? where : "", cut(where, PPX__NAME_MAX));
    if (rc == 0 && msgpack_pack_int64(&pk, pid))
        rc = PPX_ENOMEM;
    if (rc == 0 && at)
        rc = pack_str(&pk, node, cut(node, PPX__NAME_MAX));
    return rc;
}

int ppx__env_pack_skip(msgpack_sbuffer *sb, uint64_t id, uint32_t slot, uint32_t seq)
{
    msgpack_packer pk;
    return begin(sb, &pk, PPX__ENV_SKIP, 4, id, slot, seq);
}

void ppx__env_restamp(void *frame, uint32_t slot, uint32_t seq)
{
    unsigned char *f = frame;
    put_be32(f + OFF_SLOT + 1, slot);
    put_be32(f + OFF_SEQ + 1, seq);
}

static int read_name(ppx__mp *c, ppx__str *s, uint32_t max)
{
    int rc = ppx__mp_str(c, &s->p, &s->len);
    if (rc)
        return PPX_EMALFORMED;
    return s->len <= max ? 0 : PPX_EMALFORMED;
}

/* ppx__env_decode zeroes ppx__env field by field: a field added to it
 * must be zeroed there too (this size is the reminder). */
_Static_assert(sizeof(void *) != 8 || sizeof(ppx__env) == 128,
               "every field of ppx__env is zeroed by ppx__env_decode");

int ppx__env_decode(const void *buf, size_t len, ppx__env *out)
{
    static const uint32_t arity[] = {6, 5, 9, 4, 6};
    /* Field by field rather than memset: GCC makes a 128-byte memset a
     * rep stos, and this runs for every reply. */
    out->kind = 0;
    out->head_ok = false;
    out->task_id = 0;
    out->slot = out->seq = 0;
    out->function = (ppx__str){NULL, 0};
    out->type = (ppx__str){NULL, 0};
    out->message = (ppx__str){NULL, 0};
    out->where = (ppx__str){NULL, 0};
    out->node = (ppx__str){NULL, 0};
    out->payload = (ppx_value){NULL, 0};
    out->pid = 0;
    ppx__mp c = ppx__mp_of(buf, len);
    uint32_t n;
    uint64_t kind, slot, seq;
    const unsigned char *h = buf;
    if (len >= HEAD_LEN && (h[0] & 0xf0) == 0x90 && h[1] < 0x80 && h[2] == 0xcf &&
        h[OFF_SLOT] == 0xce && h[OFF_SEQ] == 0xce) {
        /* The header as we pack it: read it without the general reader. */
        n = h[0] & 0x0f;
        kind = h[1];
        out->task_id = (uint64_t)get_be32(h + 3) << 32 | get_be32(h + 7);
        slot = get_be32(h + OFF_SLOT + 1);
        seq = get_be32(h + OFF_SEQ + 1);
        c.p += HEAD_LEN;
        if (n < 4)
            return PPX_EMALFORMED;
    } else if (ppx__mp_array(&c, &n) || n < 4 || ppx__mp_uint(&c, &kind) ||
               ppx__mp_uint(&c, &out->task_id) || ppx__mp_uint(&c, &slot) ||
               ppx__mp_uint(&c, &seq) || slot > UINT32_MAX || seq > UINT32_MAX) {
        return PPX_EMALFORMED;
    }
    out->slot = (uint32_t)slot;
    out->seq = (uint32_t)seq;
    out->head_ok = true;
    /* An error from another node names that node in a tenth field. */
    bool at_node = kind == PPX__ENV_ERROR && n == 10;
    if (kind > PPX__ENV_MAP || (n != arity[kind] && !at_node))
        return PPX_EMALFORMED;
    out->kind = (int)kind;

    const uint8_t *start;
    switch (out->kind) {
    case PPX__ENV_CALL:
    case PPX__ENV_MAP:
        if (read_name(&c, &out->function, PPX__NAME_MAX) || out->function.len == 0)
            return PPX_EMALFORMED;
        if (ppx__mp_peek(&c) != PPX_TYPE_ARRAY)
            return PPX_EMALFORMED;
        /* the rest is one object, the args or the value */
        __attribute__((fallthrough));
    case PPX__ENV_RESULT:
        start = c.p;
        if (ppx__mp_skip(&c))
            return PPX_EMALFORMED;
        out->payload.data = start;
        out->payload.len = (size_t)(c.p - start);
        break;
    case PPX__ENV_ERROR:
        if (read_name(&c, &out->type, PPX__NAME_MAX) ||
            read_name(&c, &out->message, PPX__MESSAGE_MAX) ||
            read_name(&c, &out->function, PPX__NAME_MAX) ||
            read_name(&c, &out->where, PPX__NAME_MAX) || ppx__mp_int(&c, &out->pid) ||
            (at_node && read_name(&c, &out->node, PPX__NAME_MAX)))
            return PPX_EMALFORMED;
        break;
    default:
        break;
    }
    return ppx__mp_left(&c) == 0 ? 0 : PPX_EMALFORMED;
}

int ppx__env_next(const void *buf, size_t len, size_t *frame_len)
{
    ppx__mp c = ppx__mp_of(buf, len);
    if (len == 0 || ppx__mp_peek(&c) != PPX_TYPE_ARRAY || ppx__mp_skip(&c))
        return PPX_EMALFORMED;
    *frame_len = len - ppx__mp_left(&c);
    return 0;
}
