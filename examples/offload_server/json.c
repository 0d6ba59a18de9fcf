#include "json.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>

static bool reserve(jbuf *b, size_t more)
{
    if (b->oom)
        return false;
    if (b->len + more + 1 <= b->cap)
        return true;
    size_t cap = b->cap ? b->cap : 256;
    while (cap < b->len + more + 1)
        cap *= 2;
    char *p = realloc(b->text, cap);
    if (!p) {
        b->oom = true;
        return false;
    }
    b->text = p;
    b->cap = cap;
    return true;
}

void jbuf_printf(jbuf *b, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int need = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    if (need < 0 || !reserve(b, (size_t)need))
        return;
    va_start(ap, fmt);
    vsnprintf(b->text + b->len, b->cap - b->len, fmt, ap);
    va_end(ap);
    b->len += (size_t)need;
}

void jbuf_str(jbuf *b, const char *s)
{
    jbuf_printf(b, "\"");
    for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
        if (*p == '"' || *p == '\\')
            jbuf_printf(b, "\\%c", *p);
        else if (*p < 0x20)
            jbuf_printf(b, "\\u%04x", *p);
        else
            jbuf_printf(b, "%c", *p);
    }
    jbuf_printf(b, "\"");
}

void jbuf_free(jbuf *b)
{
    free(b->text);
    *b = (jbuf){0};
}
