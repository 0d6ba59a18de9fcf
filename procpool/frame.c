#include "frame.h"
#include "ppx.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

/* Chunks are a quarter of the ring, so two can be in flight while the
 * reader copies a third out. */
static size_t chunk_size(const ppx__port *p)
{
    return ppx__ring_max_record(p) / 2;
}

size_t ppx__frame_next_need(const ppx__port *p, size_t len, size_t off)
{
    if (off == 0 && len <= ppx__ring_max_record(p))
        return len;
    size_t n = len - off < chunk_size(p) ? len - off : chunk_size(p);
    return off == 0 ? n + sizeof(uint64_t) : n;
}

bool ppx__frame_put(ppx__port *p, const void *frame, size_t len, size_t *off)
{
    const unsigned char *f = frame;
    if (*off == 0 && len <= ppx__ring_max_record(p)) {
        void *dst = ppx__ring_reserve(p, len);
        if (!dst)
            return false;
        memcpy(dst, f, len);
        ppx__ring_commit(p, len, PPX__REC_WHOLE);
        *off = len;
        return true;
    }
    while (*off < len) {
        size_t n = len - *off < chunk_size(p) ? len - *off : chunk_size(p);
        bool first = *off == 0;
        unsigned char *dst = ppx__ring_reserve(p, n + (first ? sizeof(uint64_t) : 0));
        if (!dst)
            return false;
        uint32_t flag = first ? PPX__REC_FIRST
                        : *off + n == len ? PPX__REC_LAST : PPX__REC_MORE;
        if (first) {
            uint64_t total = len;
            memcpy(dst, &total, sizeof total);
            memcpy(dst + sizeof total, f, n);
            ppx__ring_commit(p, n + sizeof total, flag);
        } else {
            memcpy(dst, f + *off, n);
            ppx__ring_commit(p, n, flag);
        }
        *off += n;
    }
    return true;
}

int ppx__rx_feed(ppx__rx *rx, const void *rec, size_t len, uint32_t flags,
                 const void **frame, size_t *flen)
{
    const unsigned char *p = rec;
    switch (flags) {
    case PPX__REC_WHOLE:
        if (rx->buf)
            return PPX_EMALFORMED; /* a whole frame inside a chunked one */
        *frame = rec;
        *flen = len;
        return 1;
    case PPX__REC_FIRST: {
        uint64_t total;
        if (rx->buf || len < sizeof total)
            return PPX_EMALFORMED;
        memcpy(&total, p, sizeof total);
        if (total > rx->max)
            return PPX_ETOOBIG;
        if (total < len - sizeof total || total == 0)
            return PPX_EMALFORMED;
        rx->buf = malloc(total);
        if (!rx->buf)
            return PPX_ENOMEM;
        rx->total = total;
        rx->len = len - sizeof total;
        memcpy(rx->buf, p + sizeof total, rx->len);
        return 0;
    }
    case PPX__REC_MORE:
    case PPX__REC_LAST:
        if (!rx->buf || len > rx->total - rx->len)
            return PPX_EMALFORMED;
        memcpy(rx->buf + rx->len, p, len);
        rx->len += len;
        if (flags == PPX__REC_MORE)
            return rx->len < rx->total ? 0 : PPX_EMALFORMED;
        if (rx->len != rx->total)
            return PPX_EMALFORMED;
        *frame = rx->buf;
        *flen = rx->len;
        return 1;
    default:
        return PPX_EMALFORMED;
    }
}

void ppx__rx_reset(ppx__rx *rx)
{
    free(rx->buf);
    rx->buf = NULL;
    rx->len = rx->total = 0;
}
