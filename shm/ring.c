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

void ppx__port_reset(ppx__port *p)
{
    ppx__ring_reset(p->r);
    p->head = p->tail = p->seen_tail = p->seen_head = 0;
}

size_t ppx__ring_max_record(const ppx__port *p)
{
    return p->cap / 2 - HDR;
}

/* The padding in front of a record of rec bytes written at head while
 * used bytes are unreleased: to the end of the buffer when the record does
 * not fit before it, or when it fits into the start again below every
 * unreleased byte (an early wrap, see ring.h); else none. */
static uint64_t pad_before(uint64_t cap, uint64_t head, uint64_t used, uint64_t rec)
{
    uint64_t off = head & (cap - 1), contiguous = cap - off;
    if (rec > contiguous || (off >= PPX__RING_WARM && used + rec <= off))
        return contiguous;
    return 0;
}

/* Bytes unreleased as the producer sees them (tail read again now), or
 * more than the capacity when the consumer has broken the ring (moved
 * tail past head or by more than the capacity): then nothing fits,
 * rather than overwrite. */
static uint64_t used_now(ppx__port *p)
{
    p->seen_tail = atomic_load_explicit(&p->r->tail, memory_order_acquire);
    return p->head - p->seen_tail;
}

/* Whether a record of rec bytes fits at head with used bytes unreleased,
 * and the padding it would take in front (pad_before). */
static bool room(const ppx__port *p, uint64_t used, uint64_t rec, uint64_t *pad)
{
    *pad = pad_before(p->cap, p->head, used, rec);
    return used <= p->cap && *pad + rec <= p->cap - used;
}

static bool fits(ppx__port *p, size_t len)
{
    uint64_t pad;
    return room(p, used_now(p), rec_size(len), &pad);
}

void *ppx__ring_reserve(ppx__port *p, size_t len)
{
    if (len > ppx__ring_max_record(p))
        return NULL;
    uint64_t rec = rec_size(len), pad;
    /* Tail is read again only when the one last seen leaves no room, or
     * when a fresher one could place the record elsewhere: with nothing
     * unreleased it would wrap early (ring.h), by the one seen it would
     * not. */
    if (!room(p, p->head - p->seen_tail, rec, &pad) ||
        pad != pad_before(p->cap, p->head, 0, rec)) {
        if (!room(p, used_now(p), rec, &pad))
            return NULL;
    }
    p->pad = pad;
    return p->r->data + ((p->head + pad) & (p->cap - 1)) + HDR;
}

void ppx__ring_commit(ppx__port *p, size_t len, uint32_t flags)
{
    ppx__ring *r = p->r;
    uint64_t head = p->head;
    uint64_t pad = p->pad; /* where reserve put the payload */
    if (pad) {
        ppx__rec_hdr *ph = (ppx__rec_hdr *)(r->data + (head & (p->cap - 1)));
        ph->len = (uint32_t)(pad - HDR);
        ph->flags = PPX__REC_PAD;
    }
    ppx__rec_hdr *h = (ppx__rec_hdr *)(r->data + ((head + pad) & (p->cap - 1)));
    h->len = (uint32_t)len;
    h->flags = flags & ~PPX__REC_PAD;
    p->head = head + pad + rec_size(len);
    atomic_store_explicit(&r->head, p->head, memory_order_release);
}

void ppx__ring_notify_data(ppx__port *p)
{
    ppx__ring *r = p->r;
    /* Pairs with the fence in ppx__ring_wait_data: either the consumer sees
     * our head, or we see its waiting flag. */
    atomic_thread_fence(memory_order_seq_cst);
    if (atomic_load_explicit(&r->consumer_waiting, memory_order_relaxed) &&
        atomic_exchange_explicit(&r->consumer_waiting, 0, memory_order_relaxed)) {
        atomic_fetch_add_explicit(&r->data_seq, 1, memory_order_release);
        ppx__futex_wake(&r->data_seq, 1);
    }
}

bool ppx__ring_want_space(ppx__port *p, size_t len)
{
    atomic_store_explicit(&p->r->producer_waiting, 1, memory_order_relaxed);
    atomic_thread_fence(memory_order_seq_cst);
    return fits(p, len);
}

int ppx__ring_wait_space(ppx__port *p, size_t len, int spin, int timeout_ms)
{
    for (int i = 0; i < spin; i++) {
        if (fits(p, len))
            return 0;
        ppx__spin_step((unsigned)i);
    }
    for (;;) {
        uint32_t seq = atomic_load_explicit(&p->r->space_seq, memory_order_acquire);
        if (ppx__ring_want_space(p, len))
            return 0;
        int rc = ppx__futex_wait(&p->r->space_seq, seq, timeout_ms);
        if (rc == -ETIMEDOUT)
            return fits(p, len) ? 0 : rc;
    }
}

int ppx__ring_peek(ppx__port *p, const void **payload, size_t *len, uint32_t *flags)
{
    ppx__ring *r = p->r;
    uint64_t mask = p->cap - 1;
    for (;;) {
        uint64_t tail = p->tail;
        uint64_t head = p->seen_head;
        if (head == tail) {
            head = p->seen_head = atomic_load_explicit(&r->head, memory_order_acquire);
            if (head == tail)
                return 0;
        }
        uint64_t avail = head - tail;
        uint64_t pos = tail & mask;
        /* Both words live in memory another process can write: check
         * them before trusting a header. */
        if (avail > p->cap || ((avail | tail) & 7) || avail < HDR)
            return -EBADMSG;
        const ppx__rec_hdr *h = (const ppx__rec_hdr *)(r->data + pos);
        uint32_t hlen = h->len, hflags = h->flags;
        uint64_t rec = rec_size(hlen);
        if (rec > avail || rec > p->cap - pos)
            return -EBADMSG;
        if (hflags & PPX__REC_PAD) {
            p->tail = tail + rec;
            atomic_store_explicit(&r->tail, p->tail, memory_order_release);
            continue;
        }
        if (hlen > ppx__ring_max_record(p))
            return -EBADMSG; /* no honest producer writes one this long */
        *payload = r->data + pos + HDR;
        *len = hlen;
        *flags = hflags;
        return 1;
    }
}

void ppx__ring_release(ppx__port *p, size_t len)
{
    /* len is what peek checked; the header may have changed since. */
    p->tail += rec_size(len);
    atomic_store_explicit(&p->r->tail, p->tail, memory_order_release);
}

bool ppx__ring_notify_space(ppx__port *p)
{
    ppx__ring *r = p->r;
    atomic_thread_fence(memory_order_seq_cst);
    if (atomic_load_explicit(&r->producer_waiting, memory_order_relaxed) &&
        atomic_exchange_explicit(&r->producer_waiting, 0, memory_order_relaxed)) {
        atomic_fetch_add_explicit(&r->space_seq, 1, memory_order_release);
        ppx__futex_wake(&r->space_seq, 1);
        return true;
    }
    return false;
}

int ppx__ring_wait_data(ppx__port *p, int spin, int timeout_ms, const _Atomic uint32_t *stop)
{
    ppx__ring *r = p->r;
    for (int i = 0; i < spin; i++) {
        if (!ppx__ring_empty(p) || (stop && atomic_load(stop)))
            return 0;
        ppx__spin_step((unsigned)i);
    }
    for (;;) {
        uint32_t seq = atomic_load_explicit(&r->data_seq, memory_order_acquire);
        atomic_store_explicit(&r->consumer_waiting, 1, memory_order_relaxed);
        atomic_thread_fence(memory_order_seq_cst);
        if (!ppx__ring_empty(p) || (stop && atomic_load(stop))) {
            atomic_store_explicit(&r->consumer_waiting, 0, memory_order_relaxed);
            return 0;
        }
        int rc = ppx__futex_wait(&r->data_seq, seq, timeout_ms);
        if (rc == -ETIMEDOUT) {
            atomic_store_explicit(&r->consumer_waiting, 0, memory_order_relaxed);
            return (!ppx__ring_empty(p) || (stop && atomic_load(stop))) ? 0 : rc;
        }
    }
}

void ppx__ring_kick(ppx__port *p)
{
    atomic_fetch_add_explicit(&p->r->data_seq, 1, memory_order_release);
    ppx__futex_wake(&p->r->data_seq, 1);
}
