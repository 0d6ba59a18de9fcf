#include "query.h"

#include <string.h>

bool query_int(const char *s, size_t len, int64_t hi, int64_t *out)
{
    if (len == 0)
        return false;
    int64_t v = 0;
    for (size_t i = 0; i < len; i++) {
        if (s[i] < '0' || s[i] > '9')
            return false;
        int d = s[i] - '0';
        /* v * 10 + d <= hi, checked before it is computed. */
        if (v > hi / 10 || (v == hi / 10 && d > hi % 10))
            return false;
        v = v * 10 + d;
    }
    *out = v;
    return true;
}

static int hex(char ch)
{
    if (ch >= '0' && ch <= '9')
        return ch - '0';
    if (ch >= 'a' && ch <= 'f')
        return ch - 'a' + 10;
    if (ch >= 'A' && ch <= 'F')
        return ch - 'A' + 10;
    return -1;
}

static long decode(const char *s, size_t len, char *out, size_t room)
{
    size_t n = 0;
    for (size_t i = 0; i < len; i++) {
        char ch = s[i];
        if (ch == '+') {
            ch = ' ';
        } else if (ch == '%') {
            if (i + 2 >= len)
                return -2;
            int hi = hex(s[i + 1]), lo = hex(s[i + 2]);
            if (hi < 0 || lo < 0)
                return -2;
            ch = (char)(hi * 16 + lo);
            i += 2;
        }
        if (n == room)
            return -2;
        out[n++] = ch;
    }
    return (long)n;
}

long query_get(const char *query, size_t qlen, const char *name, char *out, size_t room)
{
    size_t nlen = strlen(name);
    const char *end = query + qlen;
    for (const char *p = query; p < end;) {
        const char *amp = memchr(p, '&', (size_t)(end - p));
        const char *stop = amp ? amp : end;
        const char *eq = memchr(p, '=', (size_t)(stop - p));
        const char *key_end = eq ? eq : stop;
        /* Names are decoded too, as the peers' parsers do. */
        char key[64];
        long klen = decode(p, (size_t)(key_end - p), key, sizeof key);
        if (klen == (long)nlen && memcmp(key, name, nlen) == 0) {
            const char *v = eq ? eq + 1 : stop;
            return decode(v, (size_t)(stop - v), out, room);
        }
        if (!amp)
            break;
        p = amp + 1;
    }
    return -1;
}
