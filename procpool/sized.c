/* Moving growable structs across the caller's and the library's layouts
 * (sized.h). */
#include "sized.h"

#include "errors.h"

#include <stdbool.h>
#include <string.h>

/* No struct will grow this big: a bigger size is garbage (an
 * uninitialised struct), refused rather than read or written through. */
#define SIZE_MAX_SANE 4096

static size_t size_of(const void *s)
{
    size_t n;
    memcpy(&n, s, sizeof n); /* the caller's struct may be packed oddly */
    return n;
}

/* "ppx_pool_options.size is 0 (112 to 4096): make it with
 * PPX_POOL_OPTIONS_INIT or PPX_POOL_OPTIONS(...)" */
static int bad_size(const char *name, size_t theirs, size_t min, bool literal)
{
    char macro[48];
    size_t i = 0;
    for (; name[i] && i + 1 < sizeof macro; i++)
        macro[i] = (char)(name[i] >= 'a' && name[i] <= 'z' ? name[i] - 'a' + 'A' : name[i]);
    macro[i] = 0;
    ppx__set_last_error("%s.size is %zu (%zu to %d): make it with %s_INIT%s%s%s", name,
                        theirs, min, SIZE_MAX_SANE, macro, literal ? " or " : "", literal ? macro : "",
                        literal ? "(...)" : "");
    return PPX_EINVAL;
}

int ppx__sized_in(void *dst, size_t ours, const void *src, size_t min, const char *name)
{
    size_t theirs = size_of(src);
    if (theirs < min || theirs > SIZE_MAX_SANE)
        return bad_size(name, theirs, min, true);
    const unsigned char *tail = (const unsigned char *)src;
    for (size_t i = ours; i < theirs; i++)
        if (tail[i]) {
            ppx__set_last_error("%s sets byte %zu, beyond the %zu this ppx %s knows: a "
                                "field of a newer header",
                                name, i, ours, ppx_version());
            return PPX_EINVAL;
        }
    memset(dst, 0, ours);
    memcpy(dst, src, theirs < ours ? theirs : ours);
    memcpy(dst, &ours, sizeof ours);
    return 0;
}

int ppx__sized_check(const void *dst, size_t min, const char *name)
{
    size_t theirs = size_of(dst);
    return theirs >= min && theirs <= SIZE_MAX_SANE ? 0 : bad_size(name, theirs, min, false);
}

void ppx__sized_out(void *dst, const void *full, size_t ours)
{
    size_t theirs = size_of(dst);
    size_t n = theirs < ours ? theirs : ours;
    unsigned char *d = dst;
    memcpy(d + sizeof(size_t), (const unsigned char *)full + sizeof(size_t),
           n - sizeof(size_t));
    if (theirs > ours)
        memset(d + ours, 0, theirs - ours);
}
