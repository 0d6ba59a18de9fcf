#include "frame.h"
#include "ppx.h"
#include "serialize/envelope.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

_Static_assert(PPX__FRAME_SLACK >= PPX__ENV_CALL_OVERHEAD &&
               PPX__FRAME_SLACK >= PPX__ENV_RESULT_OVERHEAD &&
               PPX__FRAME_SLACK >= PPX__ENV_ERROR_MAX,
               "a frame at the limit must fit the readers' bound");

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

#define BIG (8u << 20) /* below this, glibc reuses its heap: faster */

/* One kept buffer, process-wide, swapped atomically because futures free
 * their buffers on whatever thread drops them. While kept, its first word
 * holds its size, so one pointer says everything. */
static _Atomic(void *) kept;
static pthread_once_t kept_once = PTHREAD_ONCE_INIT;

/* A child of fork must not write into the copy-on-write share of our kept
 * buffer (every page would fault) nor count on it: drop its copy. */
static void forget_kept_in_child(void)
{
    ppx__bigbuf_trim();
}

static void register_atfork(void)
{
    pthread_atfork(NULL, NULL, forget_kept_in_child);
}

static void unmap_kept(void *k)
{
    size_t cap;
    memcpy(&cap, k, sizeof cap);
    munmap(k, cap);
}

void *ppx__bigbuf_alloc(size_t len, size_t *cap)
{
    if (len < BIG) {
        *cap = len;
        return malloc(len ? len : 1);
    }
    pthread_once(&kept_once, register_atfork);
    void *k = atomic_exchange(&kept, NULL);
    if (k) {
        size_t kcap;
        memcpy(&kcap, k, sizeof kcap);
        if (kcap >= len && kcap / 2 <= len) {
            *cap = kcap;
            return k;
        }
        munmap(k, kcap);
    }
    void *p = mmap(NULL, len, PROT_READ | PROT_WRITE,
                   MAP_PRIVATE | MAP_ANONYMOUS | MAP_POPULATE, -1, 0);
    if (p == MAP_FAILED)
        return NULL;
    *cap = len;
    return p;
}

void ppx__bigbuf_free(void *p, size_t cap)
{
    if (!p)
        return;
    if (cap < BIG) {
        free(p);
        return;
    }
    memcpy(p, &cap, sizeof cap);
    void *old = atomic_exchange(&kept, p);
    if (old)
        unmap_kept(old);
}

void ppx__bigbuf_trim(void)
{
    void *k = atomic_exchange(&kept, NULL);
    if (k)
        unmap_kept(k);
}

int ppx__rx_feed(ppx__rx *rx, const void *rec, size_t len, uint32_t flags,
                 const void **frame, size_t *flen)
{
    const unsigned char *p = rec;
    switch (flags) {
    case PPX__REC_WHOLE:
        if (rx->active)
            return PPX_EMALFORMED; /* a whole frame inside a chunked one */
        *frame = rec;
        *flen = len;
        return 1;
    case PPX__REC_FIRST: {
        uint64_t total;
        if (rx->active || len < sizeof total)
            return PPX_EMALFORMED;
        memcpy(&total, p, sizeof total);
        if (total > rx->max)
            return PPX_ETOOBIG;
        if (total < len - sizeof total || total == 0)
            return PPX_EMALFORMED;
        if (rx->cap < total) {
            ppx__bigbuf_free(rx->buf, rx->cap);
            rx->buf = ppx__bigbuf_alloc(total, &rx->cap);
            if (!rx->buf)
                rx->cap = 0;
            if (!rx->buf)
                return PPX_ENOMEM;
        }
        rx->active = true;
        rx->total = total;
        rx->len = len - sizeof total;
        memcpy(rx->buf, p + sizeof total, rx->len);
        return 0;
    }
    case PPX__REC_MORE:
    case PPX__REC_LAST:
        if (!rx->active || len > rx->total - rx->len)
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

void ppx__rx_done(ppx__rx *rx)
{
    rx->active = false;
    rx->len = rx->total = 0;
}

void ppx__rx_reset(ppx__rx *rx)
{
    ppx__bigbuf_free(rx->buf, rx->cap);
    rx->buf = NULL;
    rx->cap = 0;
    ppx__rx_done(rx);
}

void *ppx__rx_take(ppx__rx *rx, size_t *cap)
{
    void *b = rx->buf;
    *cap = rx->cap;
    rx->buf = NULL;
    rx->cap = 0;
    ppx__rx_done(rx);
    return b;
}
