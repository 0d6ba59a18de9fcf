/* The public ppx_value getters, over the bounds-checked cursor. */
#include "mpread.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

ppx_type ppx_value_type(ppx_value v)
{
    if (!v.data)
        return PPX_TYPE_INVALID;
    ppx__mp c = ppx__mp_of(v.data, v.len);
    return ppx__mp_peek(&c);
}

#define GETTER(name, ctype, fn)                    \
    int ppx_value_##name(ppx_value v, ctype *out)  \
    {                                              \
        if (!v.data || !out)                       \
            return PPX_EINVAL;                     \
        ppx__mp c = ppx__mp_of(v.data, v.len);     \
        return fn(&c, out);                        \
    }
GETTER(int, int64_t, ppx__mp_int)
GETTER(uint, uint64_t, ppx__mp_uint)
GETTER(double, double, ppx__mp_double)
GETTER(bool, bool, ppx__mp_bool)
#undef GETTER

int ppx_value_str(ppx_value v, const char **out, size_t *len)
{
    if (!v.data || !out || !len)
        return PPX_EINVAL;
    ppx__mp c = ppx__mp_of(v.data, v.len);
    uint32_t n;
    int rc = ppx__mp_str(&c, out, &n);
    if (rc == 0)
        *len = n;
    return rc;
}

int ppx_value_bin(ppx_value v, const void **out, size_t *len)
{
    if (!v.data || !out || !len)
        return PPX_EINVAL;
    ppx__mp c = ppx__mp_of(v.data, v.len);
    uint32_t n;
    int rc = ppx__mp_bin(&c, out, &n);
    if (rc == 0)
        *len = n;
    return rc;
}

int ppx_value_array_len(ppx_value v, size_t *n)
{
    if (!v.data || !n)
        return PPX_EINVAL;
    ppx__mp c = ppx__mp_of(v.data, v.len);
    uint32_t k;
    int rc = ppx__mp_array(&c, &k);
    if (rc == 0)
        *n = k;
    return rc;
}

int ppx_value_at(ppx_value v, size_t i, ppx_value *out)
{
    if (!v.data || !out)
        return PPX_EINVAL;
    ppx__mp c = ppx__mp_of(v.data, v.len);
    uint32_t n;
    int rc = ppx__mp_array(&c, &n);
    if (rc)
        return rc;
    if (i >= n)
        return PPX_EINDEX;
    for (size_t k = 0; k < i; k++)
        if ((rc = ppx__mp_skip(&c)))
            return rc;
    const uint8_t *start = c.p;
    if ((rc = ppx__mp_skip(&c)))
        return rc;
    out->data = start;
    out->len = (size_t)(c.p - start);
    return 0;
}

/* A growable-free writer: counts what it cannot store, like snprintf. */
typedef struct out {
    char *buf;
    size_t cap, len;
} out;

static void put(out *o, const char *s, size_t n)
{
    if (o->len < o->cap) {
        size_t room = o->cap - o->len;
        memcpy(o->buf + o->len, s, n < room ? n : room);
    }
    o->len += n;
}

static void putf(out *o, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
static void putf(out *o, const char *fmt, ...)
{
    char tmp[64];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(tmp, sizeof tmp, fmt, ap);
    va_end(ap);
    if (n > 0)
        put(o, tmp, (size_t)n < sizeof tmp ? (size_t)n : sizeof tmp - 1);
}

static void put_quoted(out *o, const char *prefix, const uint8_t *s, size_t n)
{
    put(o, prefix, strlen(prefix));
    put(o, "'", 1);
    for (size_t i = 0; i < n; i++) {
        uint8_t ch = s[i];
        if (ch == '\'' || ch == '\\') {
            char e[2] = {'\\', (char)ch};
            put(o, e, 2);
        } else if (ch == '\n') {
            put(o, "\\n", 2);
        } else if (ch < 0x20 || ch == 0x7f || (prefix[0] == 'b' && ch >= 0x80)) {
            putf(o, "\\x%02x", ch);
        } else {
            put(o, (const char *)&ch, 1);
        }
    }
    put(o, "'", 1);
}

static void put_double(out *o, double d)
{
    if (isnan(d)) {
        put(o, "nan", 3);
        return;
    }
    if (isinf(d)) {
        put(o, d < 0 ? "-inf" : "inf", d < 0 ? 4 : 3);
        return;
    }
    /* Python's repr: the shortest digits that read back as the same
     * double, positional unless the exponent is below -4 or at least 16. */
    char tmp[48];
    int prec;
    for (prec = 1; prec < 17; prec++) {
        snprintf(tmp, sizeof tmp, "%.*e", prec - 1, d);
        if (strtod(tmp, NULL) == d)
            break;
    }
    int exp10 = atoi(strchr(tmp, 'e') + 1);
    if (exp10 < -4 || exp10 >= 16) {
        snprintf(tmp, sizeof tmp, "%.*g", prec, d);
    } else {
        int decimals = prec - 1 - exp10;
        snprintf(tmp, sizeof tmp, "%.*f", decimals > 0 ? decimals : 0, d);
    }
    put(o, tmp, strlen(tmp));
    if (!strpbrk(tmp, ".e"))
        put(o, ".0", 2);
}

/* Formats one object at c (already validated by the caller's skip). Nesting
 * is bounded so hostile input cannot exhaust the stack. */
static int fmt_one(out *o, ppx__mp *c, int depth)
{
    if (depth > 64)
        return PPX_ERANGE;
    int rc = 0;
    uint32_t n;
    switch (ppx__mp_peek(c)) {
    case PPX_TYPE_NIL:
        ppx__mp_nil(c);
        put(o, "None", 4);
        break;
    case PPX_TYPE_BOOL: {
        bool b = false;
        ppx__mp_bool(c, &b);
        put(o, b ? "True" : "False", b ? 4 : 5);
        break;
    }
    case PPX_TYPE_INT: {
        int64_t i;
        uint64_t u;
        if (ppx__mp_int(c, &i) == 0)
            putf(o, "%lld", (long long)i);
        else if ((rc = ppx__mp_uint(c, &u)) == 0)
            putf(o, "%llu", (unsigned long long)u);
        break;
    }
    case PPX_TYPE_FLOAT: {
        double d = 0;
        rc = ppx__mp_double(c, &d);
        put_double(o, d);
        break;
    }
    case PPX_TYPE_STR: {
        const char *s;
        if ((rc = ppx__mp_str(c, &s, &n)) == 0)
            put_quoted(o, "", (const uint8_t *)s, n);
        break;
    }
    case PPX_TYPE_BIN: {
        const void *p;
        if ((rc = ppx__mp_bin(c, &p, &n)) == 0)
            put_quoted(o, "b", p, n);
        break;
    }
    case PPX_TYPE_ARRAY:
        if ((rc = ppx__mp_array(c, &n)))
            break;
        put(o, "[", 1);
        for (uint32_t k = 0; k < n && rc == 0; k++) {
            if (k)
                put(o, ", ", 2);
            rc = fmt_one(o, c, depth + 1);
        }
        put(o, "]", 1);
        break;
    case PPX_TYPE_MAP:
        if ((rc = ppx__mp_map(c, &n)))
            break;
        put(o, "{", 1);
        for (uint32_t k = 0; k < n && rc == 0; k++) {
            if (k)
                put(o, ", ", 2);
            rc = fmt_one(o, c, depth + 1);
            put(o, ": ", 2);
            if (rc == 0)
                rc = fmt_one(o, c, depth + 1);
        }
        put(o, "}", 1);
        break;
    case PPX_TYPE_EXT: {
        const uint8_t *start = c->p;
        if ((rc = ppx__mp_skip(c)) == 0)
            putf(o, "ExtType(%zu bytes)", (size_t)(c->p - start));
        break;
    }
    default:
        rc = PPX_EMALFORMED;
    }
    return rc;
}

int ppx_value_format(ppx_value v, char *buf, size_t n)
{
    if (!buf && n)
        return PPX_EINVAL;
    if (n)
        buf[0] = '\0';
    if (!v.data)
        return PPX_EINVAL;
    int rc = ppx__mp_check_one(v.data, v.len);
    if (rc)
        return rc;
    out o = {buf, n ? n - 1 : 0, 0};
    ppx__mp c = ppx__mp_of(v.data, v.len);
    rc = fmt_one(&o, &c, 0);
    if (n)
        buf[o.len < o.cap ? o.len : o.cap] = '\0';
    if (rc)
        return rc;
    return o.len > (size_t)INT32_MAX ? PPX_ERANGE : (int)o.len;
}
