#include "frame.h"
#include "ppx.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

/* Chunks are a quarter of the ring, so two can be in flight while the
 * reader copies a third out. */
static size_t chunk_size(const ppx__ring *r)
{
    return ppx__ring_max_record(r) / 2;
}

size_t ppx__frame_next_need(const ppx__ring *r, size_t len, size_t off)
{
    if (off == 0 && len <= ppx__ring_max_record(r))
        return len;
    size_t n = len - off < chunk_size(r) ? len - off : chunk_size(r);
    return off == 0 ? n + sizeof(uint64_t) : n;
}

bool ppx__frame_put(ppx__ring *r, const void *frame, size_t len, size_t *off)
{
    const unsigned char *f = frame;
    if (*off == 0 && len <= ppx__ring_max_record(r)) {
        void *p = ppx__ring_reserve(r, len);
        if (!p)
            return false;
        memcpy(p, f, len);
        ppx__ring_commit(r, len, PPX__REC_WHOLE);
        *off = len;
        return true;
    }
    while (*off < len) {
        size_t n = len - *off < chunk_size(r) ? len - *off : chunk_size(r);
        bool first = *off == 0;
        unsigned char *p = ppx__ring_reserve(r, n + (first ? sizeof(uint64_t) : 0));
        if (!p)
            return false;
        uint32_t flag = first ? PPX__REC_FIRST
                        : *off + n == len ? PPX__REC_LAST : PPX__REC_MORE;
        if (first) {
            uint64_t total = len;
            memcpy(p, &total, sizeof total);
            memcpy(p + sizeof total, f, n);
            ppx__ring_commit(r, n + sizeof total, flag);
        } else {
            memcpy(p, f + *off, n);
            ppx__ring_commit(r, n, flag);
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
