#include "ppx.h"
#include "errors.h"

#include <stdarg.h>
#include <stdio.h>
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
#define S2(x) #x
#define S(x) S2(x)
    return S(PPX_VERSION_MAJOR) "." S(PPX_VERSION_MINOR) "." S(PPX_VERSION_PATCH);
#undef S
#undef S2
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
