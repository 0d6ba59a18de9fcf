#include "ring.h"
#include "wake.h"

#include <errno.h>
#include <string.h>

#define HDR sizeof(ppx__rec_hdr)

static inline uint64_t rec_size(size_t len)
{
    return (HDR + len + 7) & ~(uint64_t)7;
}

size_t ppx__ring_footprint(size_t capacity)
{
    return sizeof(ppx__ring) + capacity;
}

int ppx__ring_init(ppx__ring *r, size_t capacity)
{
    if (capacity < PPX__RING_MIN || (capacity & (capacity - 1)) != 0 ||
        capacity > ((size_t)1 << 31))
        return -EINVAL;
    r->magic = PPX__RING_MAGIC;
    r->version = PPX__RING_VERSION;
    r->capacity = capacity;
    ppx__ring_reset(r);
    return 0;
}

void ppx__ring_reset(ppx__ring *r)
{
    atomic_store(&r->head, 0);
    atomic_store(&r->tail, 0);
    atomic_store(&r->producer_waiting, 0);
    atomic_store(&r->consumer_waiting, 0);
}

size_t ppx__ring_max_record(const ppx__ring *r)
{
    return r->capacity / 2 - HDR;
}

/* Where a record of this size starts if written at head, and how much
 * room it needs including the padding to the end of the buffer. */
static uint64_t placement(const ppx__ring *r, uint64_t head, uint64_t rec,
                          uint64_t *pad)
{
    uint64_t pos = head & (r->capacity - 1);
    uint64_t contiguous = r->capacity - pos;
    *pad = rec <= contiguous ? 0 : contiguous;
    return *pad + rec;
}

static bool fits(const ppx__ring *r, size_t len)
{
    uint64_t head = atomic_load_explicit(&r->head, memory_order_relaxed);
    uint64_t tail = atomic_load_explicit(&r->tail, memory_order_acquire);
    uint64_t pad;
    return placement(r, head, rec_size(len), &pad) <= r->capacity - (head - tail);
}

void *ppx__ring_reserve(ppx__ring *r, size_t len)
{
    if (len > ppx__ring_max_record(r) || !fits(r, len))
        return NULL;
    uint64_t head = atomic_load_explicit(&r->head, memory_order_relaxed);
    uint64_t pad;
    placement(r, head, rec_size(len), &pad);
    return r->data + ((head + pad) & (r->capacity - 1)) + HDR;
}

void ppx__ring_commit(ppx__ring *r, size_t len, uint32_t flags)
{
    uint64_t head = atomic_load_explicit(&r->head, memory_order_relaxed);
    uint64_t pad;
    placement(r, head, rec_size(len), &pad);
    if (pad) {
        ppx__rec_hdr *ph = (ppx__rec_hdr *)(r->data + (head & (r->capacity - 1)));
        ph->len = (uint32_t)(pad - HDR);
        ph->flags = PPX__REC_PAD;
    }
    ppx__rec_hdr *h = (ppx__rec_hdr *)(r->data + ((head + pad) & (r->capacity - 1)));
    h->len = (uint32_t)len;
    h->flags = flags & ~PPX__REC_PAD;
    atomic_store_explicit(&r->head, head + pad + rec_size(len), memory_order_release);
}

void ppx__ring_notify_data(ppx__ring *r)
{
    /* Pairs with the fence in ppx__ring_wait_data: either the consumer sees
     * our head, or we see its waiting flag. */
    atomic_thread_fence(memory_order_seq_cst);
    if (atomic_load_explicit(&r->consumer_waiting, memory_order_relaxed) &&
        atomic_exchange_explicit(&r->consumer_waiting, 0, memory_order_relaxed)) {
        atomic_fetch_add_explicit(&r->data_seq, 1, memory_order_release);
        ppx__futex_wake(&r->data_seq, 1);
    }
}

bool ppx__ring_want_space(ppx__ring *r, size_t len)
{
    atomic_store_explicit(&r->producer_waiting, 1, memory_order_relaxed);
    atomic_thread_fence(memory_order_seq_cst);
    return fits(r, len);
}

int ppx__ring_wait_space(ppx__ring *r, size_t len, int spin, int timeout_ms)
{
    for (int i = 0; i < spin; i++) {
        if (fits(r, len))
            return 0;
        ppx__cpu_relax();
    }
    for (;;) {
        uint32_t seq = atomic_load_explicit(&r->space_seq, memory_order_acquire);
        if (ppx__ring_want_space(r, len))
            return 0;
        int rc = ppx__futex_wait(&r->space_seq, seq, timeout_ms);
        if (rc == -ETIMEDOUT)
            return fits(r, len) ? 0 : rc;
    }
}

int ppx__ring_peek(ppx__ring *r, const void **payload, size_t *len, uint32_t *flags)
{
    uint64_t mask = r->capacity - 1;
    for (;;) {
        uint64_t tail = atomic_load_explicit(&r->tail, memory_order_relaxed);
        uint64_t head = atomic_load_explicit(&r->head, memory_order_acquire);
        if (head == tail)
            return 0;
        uint64_t avail = head - tail;
        uint64_t pos = tail & mask;
        /* Both words live in memory another process can write: check
         * them before trusting a header. */
        if (avail > r->capacity || ((avail | tail) & 7) || avail < HDR)
            return -EBADMSG;
        const ppx__rec_hdr *h = (const ppx__rec_hdr *)(r->data + pos);
        uint32_t hlen = h->len, hflags = h->flags;
        uint64_t rec = rec_size(hlen);
        if (rec > avail || rec > r->capacity - pos)
            return -EBADMSG;
        if (hflags & PPX__REC_PAD) {
            atomic_store_explicit(&r->tail, tail + rec, memory_order_release);
            continue;
        }
        *payload = r->data + pos + HDR;
        *len = hlen;
        *flags = hflags;
        return 1;
    }
}

void ppx__ring_release(ppx__ring *r)
{
    uint64_t tail = atomic_load_explicit(&r->tail, memory_order_relaxed);
    const ppx__rec_hdr *h = (const ppx__rec_hdr *)(r->data + (tail & (r->capacity - 1)));
    atomic_store_explicit(&r->tail, tail + rec_size(h->len), memory_order_release);
}

bool ppx__ring_notify_space(ppx__ring *r)
{
    atomic_thread_fence(memory_order_seq_cst);
    if (atomic_load_explicit(&r->producer_waiting, memory_order_relaxed) &&
        atomic_exchange_explicit(&r->producer_waiting, 0, memory_order_relaxed)) {
        atomic_fetch_add_explicit(&r->space_seq, 1, memory_order_release);
        ppx__futex_wake(&r->space_seq, 1);
        return true;
    }
    return false;
}

int ppx__ring_wait_data(ppx__ring *r, int spin, int timeout_ms,
                        const _Atomic uint32_t *stop)
{
    for (int i = 0; i < spin; i++) {
        if (!ppx__ring_empty(r) || (stop && atomic_load(stop)))
            return 0;
        ppx__cpu_relax();
    }
    for (;;) {
        uint32_t seq = atomic_load_explicit(&r->data_seq, memory_order_acquire);
        atomic_store_explicit(&r->consumer_waiting, 1, memory_order_relaxed);
        atomic_thread_fence(memory_order_seq_cst);
        if (!ppx__ring_empty(r) || (stop && atomic_load(stop))) {
            atomic_store_explicit(&r->consumer_waiting, 0, memory_order_relaxed);
            return 0;
        }
        int rc = ppx__futex_wait(&r->data_seq, seq, timeout_ms);
        if (rc == -ETIMEDOUT) {
            atomic_store_explicit(&r->consumer_waiting, 0, memory_order_relaxed);
            return (!ppx__ring_empty(r) || (stop && atomic_load(stop))) ? 0 : rc;
        }
    }
}

void ppx__ring_kick(ppx__ring *r)
{
    atomic_fetch_add_explicit(&r->data_seq, 1, memory_order_release);
    ppx__futex_wake(&r->data_seq, 1);
}
