/*
 * A single-producer single-consumer ring of variable-length records in
 * shared memory. Lock-free: the producer owns head, the consumer owns
 * tail, each publishes with a release store and reads the other's with an
 * acquire load.
 *
 * A record is an 8-byte header {u32 len, u32 flags} and len payload bytes,
 * padded to 8. A record never wraps: when it does not fit before the end,
 * the producer fills the end with a PAD record and starts again at offset
 * 0, so the consumer always gets one contiguous payload it can decode in
 * place. The largest record is therefore half the capacity.
 *
 * The producer also starts again at 0 early, once past PPX__RING_WARM
 * bytes, whenever the record fits before every unreleased byte: a ring
 * whose traffic is light then keeps to its first pages, already mapped
 * and in cache, instead of walking its whole capacity. A first touch of a
 * page is a page fault in each process (10-14 us each on the 2-vCPU VM,
 * ~1,000 of them per pool for 1 MiB rings, a third of the parent's time
 * in a stream of 100k no-op calls).
 *
 * The ring also carries the words either side sleeps on: a consumer that
 * found it empty sleeps on data_seq, a producer that found it full sleeps
 * on space_seq; the other side bumps the word and wakes it only when the
 * matching *_waiting flag says somebody sleeps (Dekker-style, with a
 * seq_cst fence on both sides).
 */
#ifndef PPX_SHM_RING_H
#define PPX_SHM_RING_H
#include <stdalign.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define PPX__RING_MAGIC 0x70707852u /* "ppxR" */
#define PPX__RING_VERSION 1u
#define PPX__RING_MIN 64u
#define PPX__RING_WARM 16384u /* see above: where early wraps may start */

/* magic, version and capacity describe the ring for whoever inspects the
 * memory (ppx__ring_init writes them); neither side reads them, and a
 * pool's rings, zeroed memory until first used, go without them. */
typedef struct ppx__ring {
    uint32_t magic;
    uint32_t version;
    uint64_t capacity; /* bytes in data[], a power of two */

    /* Written by the producer. */
    alignas(64) _Atomic uint64_t head; /* bytes ever published */
    _Atomic uint32_t data_seq;         /* bumped to wake a sleeping consumer */
    _Atomic uint32_t producer_waiting; /* 1: producer waits for space */

    /* Written by the consumer. */
    alignas(64) _Atomic uint64_t tail; /* bytes ever released */
    _Atomic uint32_t space_seq;        /* bumped to wake a sleeping producer */
    _Atomic uint32_t consumer_waiting; /* 1: consumer waits for data */

    alignas(64) unsigned char data[];
} ppx__ring;

_Static_assert(sizeof(ppx__ring) == 192, "ring header layout is shared ABI");

/*
 * One side's handle on a ring, in private memory: the capacity, and the
 * counter this side owns (head for the producer, tail for the consumer).
 * The shared words are only ever written from these copies, and the other
 * side's word is checked against them, so nothing the other process writes
 * can move where this side reads or writes.
 */
typedef struct ppx__port {
    ppx__ring *r;
    uint64_t cap;
    uint64_t head; /* producer's own counter */
    uint64_t tail; /* consumer's own counter */
    uint64_t pad;  /* producer: padding reserve chose, for commit */
    /* The other side's counter as this side last read it: the producer
     * reads tail again only when the record does not fit by it (or might
     * wrap early), the consumer head only once it has read up to it. The
     * other side writes its counter after every record: read each time,
     * its cache line crossed between the CPUs once per call. */
    uint64_t seen_tail; /* producer */
    uint64_t seen_head; /* consumer */
} ppx__port;

/* A port on r, a ring of capacity bytes (exactly as passed to
 * ppx__ring_init: a power of two >= PPX__RING_MIN). It starts from the
 * ring's current counters. */
static inline ppx__port ppx__port_of(ppx__ring *r, size_t capacity)
{
    uint64_t head = atomic_load(&r->head), tail = atomic_load(&r->tail);
    ppx__port p = {r, capacity, head, tail, 0, tail, tail};
    return p;
}

typedef struct ppx__rec_hdr {
    uint32_t len;
    uint32_t flags;
} ppx__rec_hdr;

#define PPX__REC_PAD 0x80000000u /* filler to the end of the buffer */

/* Bytes of shared memory a ring of capacity bytes needs. */
size_t ppx__ring_footprint(size_t capacity);
/* capacity must be a power of two >= PPX__RING_MIN. 0 or -EINVAL. */
int ppx__ring_init(ppx__ring *r, size_t capacity);
/* Empties the ring; only while neither side uses it. */
void ppx__ring_reset(ppx__ring *r);
/* Empties the ring and restarts p's counters with it. */
void ppx__port_reset(ppx__port *p);
/* Largest payload one record can hold. */
size_t ppx__ring_max_record(const ppx__port *p);

/* Producer: room for a len-byte payload, or NULL when the ring is too full
 * now (or len exceeds the largest record). Write the payload there, then
 * commit with the same len, before the next reserve. */
void *ppx__ring_reserve(ppx__port *p, size_t len);
void ppx__ring_commit(ppx__port *p, size_t len, uint32_t flags);
/* Producer, after committing: wakes the consumer if it sleeps. */
void ppx__ring_notify_data(ppx__port *p);
/* Producer: sleeps (after spin rounds of polling) until len bytes fit or
 * timeout_ms passes. 0 or -ETIMEDOUT. */
int ppx__ring_wait_space(ppx__port *p, size_t len, int spin, int timeout_ms);
/* Producer that cannot sleep (the parent): raise the waiting flag and
 * re-check. Returns true if the space is there after all. */
bool ppx__ring_want_space(ppx__port *p, size_t len);

/* Consumer: 1 and the next record's payload, 0 when empty, -EBADMSG when
 * the producer wrote a header that cannot be right (the ring is then
 * unusable). The payload stays valid until ppx__ring_release. */
int ppx__ring_peek(ppx__port *p, const void **payload, size_t *len, uint32_t *flags);
/* Releases the record peek returned; len is the length peek gave. */
void ppx__ring_release(ppx__port *p, size_t len);
/* Consumer, after releasing: wakes a producer waiting for space. Returns
 * true if one was waiting (a producer that cannot sleep on the futex
 * needs another wake-up, e.g. an eventfd). */
bool ppx__ring_notify_space(ppx__port *p);
/* Consumer: sleeps (after spin rounds) until data arrives, the word at
 * *stop becomes nonzero, or timeout_ms passes. 0 or -ETIMEDOUT. */
int ppx__ring_wait_data(ppx__port *p, int spin, int timeout_ms,
                        const _Atomic uint32_t *stop);
/* Wakes the consumer whatever the state, e.g. to make it see *stop. */
void ppx__ring_kick(ppx__port *p);

/* Bytes in the ring as this side sees them: its own counter against the
 * other side's word, clamped to the capacity (the other process may have
 * written anything there). For statistics only. */
static inline uint64_t ppx__ring_used_producer(const ppx__port *p)
{
    uint64_t used = p->head - atomic_load_explicit(&p->r->tail, memory_order_relaxed);
    return used > p->cap ? p->cap : used;
}
static inline uint64_t ppx__ring_used_consumer(const ppx__port *p)
{
    uint64_t used = atomic_load_explicit(&p->r->head, memory_order_relaxed) - p->tail;
    return used > p->cap ? p->cap : used;
}

/* Consumer: nothing to read. */
static inline bool ppx__ring_empty(const ppx__port *p)
{
    return atomic_load_explicit(&p->r->head, memory_order_acquire) == p->tail;
}

#endif
