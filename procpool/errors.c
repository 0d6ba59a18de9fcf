#include "ppx.h"
#include "errors.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static _Thread_local char last_error[512];

const char *ppx_last_error(void)
{
    return last_error;
}

void ppx__set_last_error(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(last_error, sizeof last_error, fmt, ap);
    va_end(ap);
}

const char *ppx_version(void)
{
    return PPX__VERSION_STRING;
}

const char *ppx_strerror(int code)
{
    switch (code) {
#define XX(c, msg) case PPX_##c: return msg;
        PPX_ERRNO_MAP(XX)
#undef XX
    case 0:
        return "success";
    default:
        break;
    }
    /* strerror would write unknown codes into a per-thread buffer. */
    const char *d = code < 0 && code > -4096 ? strerrordesc_np(-code) : NULL;
    return d ? d : "unknown error";
}

const char *ppx_err_name(int code)
{
    switch (code) {
#define XX(c, msg) case PPX_##c: return "PPX_" #c;
        PPX_ERRNO_MAP(XX)
#undef XX
    case 0:
        return "OK";
    default:
        break;
    }
    if (code < 0 && code > -4096) {
        const char *n = strerrorname_np(-code);
        return n ? n : "EUNKNOWN";
    }
    return "EUNKNOWN";
}

const char *ppx_state_name(ppx_state s)
{
    switch (s) {
    case PPX_PENDING:
        return "PENDING";
    case PPX_RUNNING:
        return "RUNNING";
    case PPX_DONE:
        return "DONE";
    case PPX_FAILED:
        return "FAILED";
    case PPX_CANCELLED:
        return "CANCELLED";
    }
    return "UNKNOWN";
}

int ppx_error_copy(const ppx_error *e, ppx_error **out)
{
    if (!e || !out)
        return PPX_EINVAL;
    /* The strings follow the struct in one block, so ppx_error_free is
     * one free and a copy has one allocation to fail. A NULL string (a
     * caller-built error's node) stays NULL. */
    const char *src[5] = {e->type, e->message, e->function, e->where, e->node};
    size_t len[5], total = sizeof(ppx_error);
    for (int i = 0; i < 5; i++) {
        len[i] = src[i] ? strlen(src[i]) + 1 : 0;
        total += len[i];
    }
    ppx_error *c = malloc(total);
    if (!c)
        return PPX_ENOMEM;
    *c = *e;
    const char **dst[5] = {&c->type, &c->message, &c->function, &c->where, &c->node};
    char *p = (char *)(c + 1);
    for (int i = 0; i < 5; i++) {
        *dst[i] = src[i] ? memcpy(p, src[i], len[i]) : NULL;
        p += len[i];
    }
    *out = c;
    return 0;
}

void ppx_error_free(ppx_error *e)
{
    free(e);
}
