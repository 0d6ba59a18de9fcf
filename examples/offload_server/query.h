/* Query strings: "a=1&b=x%20y", split, percent-decoded and checked. */
#ifndef OFFLOAD_QUERY_H
#define OFFLOAD_QUERY_H
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/*
 * Parses s (len bytes) as a decimal integer: digits only, no sign, no
 * spaces, at most hi. Never overflows: a value past hi, however long,
 * is refused. True and *out on success.
 */
bool query_int(const char *s, size_t len, int64_t hi, int64_t *out);

/*
 * Finds name in query (qlen bytes) and percent-decodes its value into
 * out (room bytes), '+' as a space, as HTML forms, Node's URLSearchParams
 * and aiohttp do; names are decoded the same way before they are
 * compared. A repeated name gives its first value, as those do. Returns
 * the decoded length, -1 if absent, -2 if malformed (a bad %XX escape)
 * or longer than room.
 */
long query_get(const char *query, size_t qlen, const char *name, char *out, size_t room);

#endif
