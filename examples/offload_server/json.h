/* A growing text buffer, with the little JSON the server writes. */
#ifndef OFFLOAD_JSON_H
#define OFFLOAD_JSON_H
#include <stdbool.h>
#include <stddef.h>

/* Zero-initialise it; text is NUL-terminated once anything was added. A
 * failed allocation sets oom, after which appends do nothing. */
typedef struct jbuf {
    char *text;
    size_t len, cap;
    bool oom;
} jbuf;

void jbuf_printf(jbuf *b, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 2, 3)))
#endif
    ;
/* Appends s as a quoted JSON string, escaping what JSON requires. */
void jbuf_str(jbuf *b, const char *s);
void jbuf_free(jbuf *b);

#endif
