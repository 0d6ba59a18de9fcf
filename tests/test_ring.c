/* Tests of the SPSC record ring (shm/ring.c): single-process unit tests on
 * rings in exactly-sized heap blocks (so the sanitizer build catches any
 * read past the end), wake-ups between threads, and a stress test with the
 * producer in a forked child and the consumer here. */
#include "support.h"
#include "shm/region.h"
#include "shm/ring.h"
#include "shm/wake.h"

#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define HDR sizeof(ppx__rec_hdr)

/* A zeroed ring in a heap block of exactly its footprint. */
static ppx__ring *ring_new(size_t capacity)
{
    size_t fp = ppx__ring_footprint(capacity);
    ppx__ring *r = aligned_alloc(64, fp);
    assert_non_null(r);
    memset(r, 0, fp);
    assert_int_equal(ppx__ring_init(r, capacity), 0);
    return r;
}

/* Puts head and tail at pos (bytes ever published/released), as if that
 * much traffic had already gone through an empty ring: in shared memory and
 * in the port's own counters. */
static void ring_rewind_to(ppx__port *p, uint64_t pos)
{
    atomic_store(&p->r->head, pos);
    atomic_store(&p->r->tail, pos);
    p->head = p->tail = pos;
}

static uint8_t pattern(uint32_t tag, size_t i)
{
    return (uint8_t)(tag * 131u + i * 7u + 3u);
}

/* Whether [p, p + len) lies in the buffer, by the capacity the port was
 * made with (never the shared header's, which the other side can change). */
static bool in_data(const ppx__port *port, const void *p, size_t len)
{
    const unsigned char *c = p;
    return c >= port->r->data && len <= port->cap &&
           c <= port->r->data + port->cap - len;
}

/* Reserves, fills with pattern(tag) and commits; false when it did not fit. */
static bool push(ppx__port *port, size_t len, uint32_t flags, uint32_t tag)
{
    unsigned char *p = ppx__ring_reserve(port, len);
    if (!p)
        return false;
    assert_true(in_data(port, p, len));
    for (size_t i = 0; i < len; i++)
        p[i] = pattern(tag, i);
    ppx__ring_commit(port, len, flags);
    return true;
}

/* Peeks the next record, checks it against what push() wrote, releases it
 * with the length peek gave and returns where its payload was. */
static const unsigned char *pop_expect(ppx__port *port, size_t len, uint32_t flags,
                                       uint32_t tag)
{
    const void *p = NULL;
    size_t got_len = 0;
    uint32_t got_flags = 0;
    assert_int_equal(ppx__ring_peek(port, &p, &got_len, &got_flags), 1);
    assert_int_equal(got_len, len);
    assert_int_equal(got_flags, flags);
    assert_true(in_data(port, p, got_len));
    const unsigned char *c = p;
    for (size_t i = 0; i < len; i++)
        if (c[i] != pattern(tag, i))
            fail_msg("record %u: byte %zu is %u, expected %u", tag, i, c[i],
                     pattern(tag, i));
    ppx__ring_release(port, got_len);
    return c;
}

static void assert_peek_empty(ppx__port *port)
{
    const void *p;
    size_t len;
    uint32_t flags;
    assert_int_equal(ppx__ring_peek(port, &p, &len, &flags), 0);
    assert_true(ppx__ring_empty(port));
}

static void assert_peek_rejects(ppx__port *port)
{
    const void *p;
    size_t len;
    uint32_t flags;
    uint64_t tail = atomic_load(&port->r->tail);
    assert_int_equal(ppx__ring_peek(port, &p, &len, &flags), -EBADMSG);
    /* The ring stays unusable: asking again gives the same answer. */
    assert_int_equal(ppx__ring_peek(port, &p, &len, &flags), -EBADMSG);
    assert_int_equal(atomic_load(&port->r->tail), tail);
}

/* ------------------------------------------------------------------ */
/* Single-process behaviour                                            */

static void test_ring_init_accepts_only_powers_of_two_from_the_minimum_up(void **state)
{
    /* init only writes the header, so one header-sized block will do for
     * any capacity. */
    ppx__ring *r = aligned_alloc(64, sizeof(ppx__ring));
    assert_non_null(r);
    static const size_t bad[] = {0, 1, 2, 8, 32, 48, 63, 65, 96, 100, 1000, 4095, 3u << 20};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        assert_int_equal(ppx__ring_init(r, bad[i]), -EINVAL);

    static const size_t good[] = {PPX__RING_MIN, 128, 4096, 1u << 20};
    for (size_t i = 0; i < sizeof good / sizeof good[0]; i++) {
        memset(r, 0xa5, sizeof *r);
        assert_int_equal(ppx__ring_init(r, good[i]), 0);
        assert_int_equal(r->magic, PPX__RING_MAGIC);
        assert_int_equal(r->version, PPX__RING_VERSION);
        assert_int_equal(r->capacity, good[i]);
        ppx__port port = ppx__port_of(r, good[i]);
        assert_int_equal(port.cap, good[i]);
        assert_ptr_equal(port.r, r);
        assert_true(ppx__ring_empty(&port));
        assert_int_equal(ppx__ring_max_record(&port), good[i] / 2 - HDR);
    }
    assert_int_equal(ppx__ring_footprint(4096), sizeof(ppx__ring) + 4096);
    free(r);
}

static void test_ring_peek_on_an_empty_ring_returns_zero(void **state)
{
    ppx__ring *r = ring_new(256);
    ppx__port port = ppx__port_of(r, 256);
    assert_peek_empty(&port);
    assert_true(push(&port, 10, 0, 1));
    pop_expect(&port, 10, 0, 1);
    assert_peek_empty(&port);
    free(r);
}

static void test_ring_round_trip_preserves_payload_and_flags_in_order(void **state)
{
    ppx__ring *r = ring_new(1024);
    ppx__port port = ppx__port_of(r, 1024);
    static const size_t lens[] = {0, 1, 7, 8, 9, 100, 200};
    static const uint32_t flags[] = {0, 1, 0x7fffffffu, 42, 0x12345678u, 7, 0x40000000u};
    enum { N = sizeof lens / sizeof lens[0] };

    /* A reserved but uncommitted record is invisible to the consumer. */
    unsigned char *p = ppx__ring_reserve(&port, 16);
    assert_non_null(p);
    assert_peek_empty(&port);

    for (uint32_t i = 0; i < N; i++) {
        assert_true(push(&port, lens[i], flags[i], i));
        assert_false(ppx__ring_empty(&port));
    }
    for (uint32_t i = 0; i < N; i++)
        pop_expect(&port, lens[i], flags[i], i);
    assert_peek_empty(&port);
    free(r);
}

static void test_ring_commit_masks_the_pad_bit_so_user_flags_never_hide_a_record(void **state)
{
    ppx__ring *r = ring_new(256);
    ppx__port port = ppx__port_of(r, 256);
    assert_true(push(&port, 5, 0xffffffffu, 1));
    assert_true(push(&port, 6, PPX__REC_PAD, 2));
    assert_true(push(&port, 7, 3, 3));
    pop_expect(&port, 5, 0xffffffffu & ~PPX__REC_PAD, 1);
    pop_expect(&port, 6, 0, 2);
    pop_expect(&port, 7, 3, 3);
    assert_peek_empty(&port);
    free(r);
}

static void test_ring_records_that_do_not_fit_before_the_end_start_at_offset_zero(void **state)
{
    ppx__ring *r = ring_new(256);
    ppx__port port = ppx__port_of(r, 256);

    /* 112 + 128 bytes leave 16 at the end: a 48-byte record goes to 0. */
    assert_true(push(&port, 100, 1, 1));
    pop_expect(&port, 100, 1, 1);
    assert_true(push(&port, 120, 2, 2));
    pop_expect(&port, 120, 2, 2);
    unsigned char *p = ppx__ring_reserve(&port, 40);
    assert_ptr_equal(p, r->data + HDR);
    for (size_t i = 0; i < 40; i++)
        p[i] = pattern(3, i);
    ppx__ring_commit(&port, 40, 3);
    /* The end is filled with a PAD record the consumer never sees. */
    const ppx__rec_hdr *pad = (const ppx__rec_hdr *)(r->data + 240);
    assert_true(pad->flags & PPX__REC_PAD);
    assert_ptr_equal(pop_expect(&port, 40, 3, 3), r->data + HDR);
    assert_peek_empty(&port);
    assert_int_equal(atomic_load(&r->tail), 256 + 48);

    /* Exactly one header's worth left at the end: a zero-length PAD. */
    ppx__port_reset(&port);
    assert_true(push(&port, 120, 4, 4));
    assert_true(push(&port, 112, 5, 5));
    assert_int_equal(atomic_load(&r->head), 248);
    pop_expect(&port, 120, 4, 4);
    assert_true(push(&port, 8, 6, 6));
    pop_expect(&port, 112, 5, 5);
    assert_ptr_equal(pop_expect(&port, 8, 6, 6), r->data + HDR);
    assert_peek_empty(&port);
    free(r);
}

static void test_ring_reserve_returns_null_when_full_and_succeeds_after_release(void **state)
{
    ppx__ring *r = ring_new(256);
    ppx__port port = ppx__port_of(r, 256);
    for (uint32_t i = 0; i < 8; i++)
        assert_true(push(&port, 24, i, i)); /* 8 x 32 bytes: full */
    assert_null(ppx__ring_reserve(&port, 0));
    assert_null(ppx__ring_reserve(&port, 24));
    pop_expect(&port, 24, 0, 0);
    assert_null(ppx__ring_reserve(&port, 25)); /* 40 bytes do not fit in 32 */
    assert_true(push(&port, 24, 8, 8));
    assert_null(ppx__ring_reserve(&port, 0));
    for (uint32_t i = 1; i <= 8; i++)
        pop_expect(&port, 24, i, i);
    assert_peek_empty(&port);
    free(r);
}

static void test_ring_reserve_never_hands_out_unreleased_bytes_when_a_record_must_wrap(void **state)
{
    ppx__ring *r = ring_new(256);
    ppx__port port = ppx__port_of(r, 256);
    for (uint32_t i = 0; i < 7; i++)
        assert_true(push(&port, 24, i, i)); /* head at 224 */
    pop_expect(&port, 24, 0, 0);
    pop_expect(&port, 24, 1, 1); /* tail at 64: 96 bytes free, 32 of them at the end */
    /* 72 bytes would fit in the free total, but not after the 32 of padding. */
    assert_null(ppx__ring_reserve(&port, 64));
    /* 64 bytes do: the record lands at offset 0, just short of the tail. */
    unsigned char *p = ppx__ring_reserve(&port, 56);
    assert_ptr_equal(p, r->data + HDR);
    for (size_t i = 0; i < 56; i++)
        p[i] = pattern(7, i);
    ppx__ring_commit(&port, 56, 7);
    assert_null(ppx__ring_reserve(&port, 0));
    for (uint32_t i = 2; i < 7; i++)
        pop_expect(&port, 24, i, i);
    pop_expect(&port, 56, 7, 7);
    assert_peek_empty(&port);
    free(r);
}

static void test_ring_max_record_is_the_largest_payload_accepted_wherever_the_ring_stands(void **state)
{
    ppx__ring *r = ring_new(256);
    ppx__port port = ppx__port_of(r, 256);
    size_t max = ppx__ring_max_record(&port);
    assert_int_equal(max, 120);
    for (uint64_t pos = 0; pos < 256; pos += 8) {
        ring_rewind_to(&port, 1000 * 256 + pos);
        assert_null(ppx__ring_reserve(&port, max + 1));
        assert_null(ppx__ring_reserve(&port, (size_t)1 << 31));
        assert_null(ppx__ring_reserve(&port, SIZE_MAX));
        assert_true(push(&port, max, (uint32_t)pos, (uint32_t)pos));
        pop_expect(&port, max, (uint32_t)pos, (uint32_t)pos);
        assert_peek_empty(&port);
    }
    free(r);
}

static void test_ring_counters_keep_working_past_four_gigabytes(void **state)
{
    ppx__ring *r = ring_new(256);
    ppx__port port = ppx__port_of(r, 256);
    ring_rewind_to(&port, ((uint64_t)1 << 32) - 200);
    for (uint32_t i = 0; i < 200; i++) {
        size_t len = (i * 37u) % 100;
        assert_true(push(&port, len, i, i));
        assert_true(push(&port, len / 2, i + 1000, i + 1000));
        pop_expect(&port, len, i, i);
        pop_expect(&port, len / 2, i + 1000, i + 1000);
    }
    assert_true(atomic_load(&r->tail) > ((uint64_t)1 << 32));
    assert_peek_empty(&port);
    free(r);
}

static uint64_t xorshift(uint64_t *s)
{
    uint64_t x = *s;
    x ^= x >> 12;
    x ^= x << 25;
    x ^= x >> 27;
    *s = x;
    return x * 0x2545f4914f6cdd1dull;
}

static void test_ring_interleaved_use_matches_a_fifo_through_many_wraps(void **state)
{
    ppx__ring *r = ring_new(512);
    ppx__port port = ppx__port_of(r, 512);
    size_t max = ppx__ring_max_record(&port);
    struct { size_t len; uint32_t tag; } fifo[128];
    size_t first = 0, count = 0, wraps = 0;
    uint32_t next_tag = 0;
    const unsigned char *last = r->data;
    uint64_t s = 0x9e3779b97f4a7c15ull;
    for (int op = 0; op < 50000; op++) {
        uint64_t x = xorshift(&s);
        if (x & 1) {
            size_t len = (x >> 8) % 8 == 0 ? (x >> 16) % (max + 1) : (x >> 16) % 48;
            if (push(&port, len, next_tag, next_tag)) {
                assert_true(count < 128);
                size_t at = (first + count++) % 128;
                fifo[at].len = len;
                fifo[at].tag = next_tag++;
            } else {
                /* An empty ring takes anything up to max_record. */
                assert_true(count > 0);
            }
        } else if (count > 0) {
            const unsigned char *p = pop_expect(&port, fifo[first].len, fifo[first].tag,
                                                fifo[first].tag);
            wraps += p < last;
            last = p;
            first = (first + 1) % 128;
            count--;
        } else {
            assert_peek_empty(&port);
        }
    }
    while (count > 0) {
        pop_expect(&port, fifo[first].len, fifo[first].tag, fifo[first].tag);
        first = (first + 1) % 128;
        count--;
    }
    assert_peek_empty(&port);
    assert_true(wraps > 1000);
    free(r);
}

/* ------------------------------------------------------------------ */
/* A producer in another process cannot make peek read out of bounds   */

static void test_ring_peek_rejects_a_header_longer_than_what_was_published(void **state)
{
    ppx__ring *r = ring_new(256);
    ppx__port port = ppx__port_of(r, 256);
    assert_true(push(&port, 16, 0, 0));
    ppx__rec_hdr *h = (ppx__rec_hdr *)r->data;
    h->len = 17; /* 32 bytes, only 24 published */
    assert_peek_rejects(&port);
    h->len = 1000;
    assert_peek_rejects(&port);
    h->len = UINT32_MAX;
    assert_peek_rejects(&port);
    h->flags = PPX__REC_PAD; /* a PAD record is checked the same way */
    assert_peek_rejects(&port);
    free(r);
}

static void test_ring_peek_rejects_a_record_running_past_the_end_of_the_buffer(void **state)
{
    ppx__ring *r = ring_new(256);
    ppx__port port = ppx__port_of(r, 256);
    ring_rewind_to(&port, 240);
    ppx__rec_hdr *h = (ppx__rec_hdr *)(r->data + 240);
    h->len = 40; /* 48 bytes published, only 16 before the end */
    h->flags = 0;
    atomic_store(&r->head, 240 + 48);
    assert_peek_rejects(&port);
    h->flags = PPX__REC_PAD;
    assert_peek_rejects(&port);
    free(r);
}

static void test_ring_peek_rejects_a_misaligned_or_impossible_head(void **state)
{
    ppx__ring *r = ring_new(256);
    ppx__port port = ppx__port_of(r, 256);
    assert_true(push(&port, 8, 0, 0)); /* a valid first record... */
    uint64_t head = atomic_load(&r->head);
    atomic_store(&r->head, head + 3); /* ...but a head no record can end at */
    assert_peek_rejects(&port);
    atomic_store(&r->head, 5);
    assert_peek_rejects(&port);
    atomic_store(&r->head, 256 + 8); /* more than the ring can hold */
    assert_peek_rejects(&port);
    atomic_store(&r->head, UINT64_MAX - 7); /* behind the tail */
    assert_peek_rejects(&port);
    free(r);
}

static void test_ring_release_moves_tail_by_the_length_peek_returned_not_the_header_now(void **state)
{
    ppx__ring *r = ring_new(256);
    ppx__port port = ppx__port_of(r, 256);
    /* Each case rewrites the first record's header between peek and
     * release: longer, shorter, huge, or turned into a PAD. */
    static const ppx__rec_hdr rewrites[] = {
        {200, 0}, {0, 0}, {UINT32_MAX, 0}, {16, PPX__REC_PAD}, {UINT32_MAX, UINT32_MAX},
    };
    for (uint32_t i = 0; i < sizeof rewrites / sizeof rewrites[0]; i++) {
        ring_rewind_to(&port, 1000 * 256 + i * 72);
        uint64_t tail = atomic_load(&r->tail);
        assert_true(push(&port, 16, 1, 10 * i));
        assert_true(push(&port, 8, 2, 10 * i + 1));

        const void *p;
        size_t len;
        uint32_t flags;
        assert_int_equal(ppx__ring_peek(&port, &p, &len, &flags), 1);
        assert_int_equal(len, 16);
        assert_int_equal(flags, 1);
        ppx__rec_hdr *h = (ppx__rec_hdr *)(r->data + (tail & 255));
        *h = rewrites[i];
        ppx__ring_release(&port, len);
        /* 8 + 16: the record peek checked, whatever the header says now. */
        assert_int_equal(atomic_load(&r->tail), tail + HDR + 16);
        pop_expect(&port, 8, 2, 10 * i + 1);
        assert_peek_empty(&port);
    }
    free(r);
}

static void test_ring_a_producer_rewriting_the_shared_capacity_does_not_move_the_consumers_bounds(void **state)
{
    ppx__ring *r = ring_new(256);
    /* Both ports keep 256 in private memory; the shared word is a lie. */
    ppx__port prod = ppx__port_of(r, 256);
    ppx__port cons = ppx__port_of(r, 256);
    static const uint64_t lies[] = {
        0, 1, 8, 64, 128, 255, 512, 4096, (uint64_t)1 << 31, (uint64_t)1 << 40,
        UINT64_MAX / 2 + 1, UINT64_MAX,
    };
    for (uint32_t i = 0; i < sizeof lies / sizeof lies[0]; i++) {
        ppx__port_reset(&prod);
        ppx__port_reset(&cons);
        r->capacity = lies[i];
        assert_int_equal(ppx__ring_max_record(&cons), 120);
        assert_int_equal(ppx__ring_max_record(&prod), 120);

        /* Good records, through several wraps: every payload is where the
         * real capacity puts it (a mask from the lie would put tails past
         * 256 outside the buffer, or make every peek fail). */
        ring_rewind_to(&prod, 3 * 256 + 200);
        ring_rewind_to(&cons, 3 * 256 + 200);
        assert_true(push(&prod, 40, 1, 100 * i + 1));  /* 200..248 */
        assert_true(push(&prod, 40, 2, 100 * i + 2));  /* PAD at 248, then 0..48 */
        assert_true(push(&prod, 120, 3, 100 * i + 3)); /* 48..176 */
        assert_ptr_equal(pop_expect(&cons, 40, 1, 100 * i + 1), r->data + 200 + HDR);
        assert_ptr_equal(pop_expect(&cons, 40, 2, 100 * i + 2), r->data + HDR);
        assert_ptr_equal(pop_expect(&cons, 120, 3, 100 * i + 3), r->data + 48 + HDR);
        assert_peek_empty(&cons);
        for (uint32_t k = 0; k < 40; k++) {
            size_t len = (k * 29u) % 121;
            assert_true(push(&prod, len, k, 100 * i + k));
            pop_expect(&cons, len, k, 100 * i + k);
        }
        assert_peek_empty(&cons);

        /* Bad records are judged by the real capacity too: these would
         * pass a check against a large enough lie, and reading them would
         * run off the end of the heap block. */
        ring_rewind_to(&prod, 5 * 256 + 240);
        ring_rewind_to(&cons, 5 * 256 + 240);
        ppx__rec_hdr *h = (ppx__rec_hdr *)(r->data + 240);
        h->len = 40; /* 48 bytes published, only 16 before the end */
        h->flags = 0;
        atomic_store(&r->head, 5 * 256 + 240 + 48);
        assert_peek_rejects(&cons);
        h->flags = PPX__REC_PAD;
        assert_peek_rejects(&cons);

        ring_rewind_to(&prod, 7 * 256);
        ring_rewind_to(&cons, 7 * 256);
        h = (ppx__rec_hdr *)r->data;
        h->len = 512 - HDR; /* a whole 512-byte record published */
        h->flags = 0;
        atomic_store(&r->head, 7 * 256 + 512);
        assert_peek_rejects(&cons);

        ring_rewind_to(&prod, 9 * 256 + 128);
        ring_rewind_to(&cons, 9 * 256 + 128);
        h = (ppx__rec_hdr *)(r->data + 128);
        h->len = 192; /* 200 bytes from offset 128, all published */
        h->flags = 0;
        atomic_store(&r->head, 9 * 256 + 128 + 200);
        assert_peek_rejects(&cons);

        /* The lie is still there, and reset does not care either. */
        assert_int_equal(r->capacity, lies[i]);
    }
    free(r);
}

/* ------------------------------------------------------------------ */
/* A consumer in another process cannot make the producer overwrite     */
/* unread data                                                          */

/* The producer writes from its own head: a consumer that rewrites the
 * shared one (here to 4 bytes before the end) cannot steer its writes. */
static void test_ring_producer_ignores_a_head_rewritten_in_shared_memory(void **state)
{
    ppx__ring *r = ring_new(256);
    ppx__port prod = ppx__port_of(r, 256);
    ppx__port cons = ppx__port_of(r, 256);
    atomic_store(&r->head, 252);
    unsigned char *p = ppx__ring_reserve(&prod, 8);
    assert_ptr_equal(p, r->data + HDR);
    memset(p, 0xab, 8);
    ppx__ring_commit(&prod, 8, 1);
    assert_int_equal(atomic_load(&r->head), 16);
    const void *got;
    size_t len;
    uint32_t flags;
    assert_int_equal(ppx__ring_peek(&cons, &got, &len, &flags), 1);
    assert_int_equal(len, 8);
    free(r);
}

/* No honest producer writes a record over half the ring. */
static void test_ring_peek_rejects_a_record_longer_than_the_largest(void **state)
{
    ppx__ring *r = ring_new(256);
    ppx__port cons = ppx__port_of(r, 256);
    ppx__rec_hdr *h = (ppx__rec_hdr *)r->data;
    h->len = 248;
    h->flags = 0;
    atomic_store(&r->head, 256);
    const void *got;
    size_t len;
    uint32_t flags;
    assert_int_equal(ppx__ring_peek(&cons, &got, &len, &flags), -EBADMSG);
    free(r);
}

static void test_ring_reserve_reports_no_room_when_the_tail_is_past_the_head_or_too_far_behind(void **state)
{
    ppx__ring *r = ring_new(256);
    ppx__port prod = ppx__port_of(r, 256);
    ppx__port cons = ppx__port_of(r, 256);
    const uint64_t base = ((uint64_t)1 << 32) - 64; /* counters cross 4 GiB */
    ring_rewind_to(&prod, base);
    ring_rewind_to(&cons, base);
    for (uint32_t i = 0; i < 3; i++)
        assert_true(push(&prod, 24, i, i)); /* 96 bytes unread */
    const uint64_t head = atomic_load(&r->head);
    assert_int_equal(head, base + 96);
    unsigned char before[256];
    memcpy(before, r->data, sizeof before);

    const uint64_t broken[] = {
        head + 8,                /* past the head */
        head + 1,
        head + 256,
        UINT64_MAX,
        head - 256 - 8,          /* more than a capacity behind */
        head - 257,
        head - 4096,
        0,
    };
    for (size_t i = 0; i < sizeof broken / sizeof broken[0]; i++) {
        atomic_store(&r->tail, broken[i]);
        assert_null(ppx__ring_reserve(&prod, 0));
        assert_null(ppx__ring_reserve(&prod, 24));
        assert_null(ppx__ring_reserve(&prod, ppx__ring_max_record(&prod)));
        assert_false(ppx__ring_want_space(&prod, 0));
        assert_int_equal(ppx__ring_wait_space(&prod, 0, 10, 0), -ETIMEDOUT);
        atomic_store(&r->producer_waiting, 0);
        assert_int_equal(atomic_load(&r->head), head);
        assert_memory_equal(r->data, before, sizeof before);
    }

    /* The edges that are not broken: exactly a capacity behind is a full
     * ring (no room, but not an error), and tail == head is empty. */
    atomic_store(&r->tail, head - 256);
    assert_null(ppx__ring_reserve(&prod, 0));
    atomic_store(&r->tail, head);
    assert_non_null(ppx__ring_reserve(&prod, ppx__ring_max_record(&prod)));

    /* Put the consumer back where it was: nothing unread was overwritten. */
    atomic_store(&r->tail, base);
    for (uint32_t i = 0; i < 3; i++)
        pop_expect(&cons, 24, i, i);
    assert_peek_empty(&cons);
    free(r);
}

/* ------------------------------------------------------------------ */
/* Wake-up flags                                                       */

static void test_ring_want_space_raises_the_flag_that_notify_space_consumes(void **state)
{
    ppx__ring *r = ring_new(256);
    ppx__port port = ppx__port_of(r, 256);
    /* Nobody waits: nothing to wake. */
    uint32_t seq = atomic_load(&r->space_seq);
    assert_false(ppx__ring_notify_space(&port));
    assert_int_equal(atomic_load(&r->space_seq), seq);

    /* Room already there: want_space says so, and still leaves the flag up. */
    assert_true(ppx__ring_want_space(&port, 24));
    assert_int_equal(atomic_load(&r->producer_waiting), 1);
    assert_true(ppx__ring_notify_space(&port));
    assert_int_equal(atomic_load(&r->producer_waiting), 0);
    assert_int_equal(atomic_load(&r->space_seq), seq + 1);
    assert_false(ppx__ring_notify_space(&port)); /* one wake-up per wait */
    assert_int_equal(atomic_load(&r->space_seq), seq + 1);

    /* Full: the producer must wait, and the consumer's release wakes it. */
    for (uint32_t i = 0; i < 8; i++)
        assert_true(push(&port, 24, i, i));
    assert_false(ppx__ring_want_space(&port, 24));
    assert_false(ppx__ring_want_space(&port, 0));
    pop_expect(&port, 24, 0, 0);
    assert_true(ppx__ring_notify_space(&port));
    assert_int_equal(atomic_load(&r->space_seq), seq + 2);
    assert_true(ppx__ring_want_space(&port, 24));
    free(r);
}

static void test_ring_notify_data_wakes_only_a_consumer_that_sleeps(void **state)
{
    ppx__ring *r = ring_new(256);
    ppx__port port = ppx__port_of(r, 256);
    uint32_t seq = atomic_load(&r->data_seq);
    assert_true(push(&port, 1, 0, 0));
    ppx__ring_notify_data(&port);
    assert_int_equal(atomic_load(&r->data_seq), seq);

    atomic_store(&r->consumer_waiting, 1); /* as wait_data leaves it when it sleeps */
    ppx__ring_notify_data(&port);
    assert_int_equal(atomic_load(&r->data_seq), seq + 1);
    assert_int_equal(atomic_load(&r->consumer_waiting), 0);
    ppx__ring_notify_data(&port);
    assert_int_equal(atomic_load(&r->data_seq), seq + 1);

    /* kick wakes whatever the flag says. */
    ppx__ring_kick(&port);
    assert_int_equal(atomic_load(&r->data_seq), seq + 2);
    free(r);
}

static void test_ring_wait_data_returns_for_data_or_stop_and_times_out_otherwise(void **state)
{
    ppx__ring *r = ring_new(256);
    ppx__port port = ppx__port_of(r, 256);
    _Atomic uint32_t stop = 0;
    assert_int_equal(ppx__ring_wait_data(&port, 0, 0, &stop), -ETIMEDOUT);
    assert_int_equal(ppx__ring_wait_data(&port, 10, 1, NULL), -ETIMEDOUT);
    assert_int_equal(atomic_load(&r->consumer_waiting), 0);

    atomic_store(&stop, 1);
    assert_int_equal(ppx__ring_wait_data(&port, 0, -1, &stop), 0);
    assert_int_equal(ppx__ring_wait_data(&port, 10, -1, &stop), 0);
    assert_int_equal(atomic_load(&r->consumer_waiting), 0);
    atomic_store(&stop, 0);

    assert_true(push(&port, 3, 0, 0));
    assert_int_equal(ppx__ring_wait_data(&port, 0, -1, &stop), 0);
    assert_int_equal(ppx__ring_wait_data(&port, 10, -1, NULL), 0);
    free(r);
}

static void test_ring_wait_space_returns_when_it_fits_and_times_out_when_full(void **state)
{
    ppx__ring *r = ring_new(256);
    ppx__port port = ppx__port_of(r, 256);
    assert_int_equal(ppx__ring_wait_space(&port, 120, 0, -1), 0);
    assert_int_equal(ppx__ring_wait_space(&port, 120, 10, -1), 0);
    for (uint32_t i = 0; i < 8; i++)
        assert_true(push(&port, 24, i, i));
    assert_int_equal(ppx__ring_wait_space(&port, 0, 0, 0), -ETIMEDOUT);
    assert_int_equal(ppx__ring_wait_space(&port, 24, 10, 1), -ETIMEDOUT);
    pop_expect(&port, 24, 0, 0);
    assert_int_equal(ppx__ring_wait_space(&port, 24, 0, -1), 0);
    assert_int_equal(ppx__ring_wait_space(&port, 25, 0, 0), -ETIMEDOUT);
    free(r);
}

/* A thread blocked in wait_data / wait_space with no timeout. If a wake-up
 * is lost the main thread gives up after a long deadline, unblocks it by
 * hand and fails the test, rather than hang. */
typedef struct sleeper {
    ppx__port *port; /* the sleeping side's own port */
    _Atomic uint32_t stop;
    _Atomic int done;
    int rc;
    bool fits; /* what the thread saw when it returned */
} sleeper;

static void *consumer_thread(void *arg)
{
    sleeper *s = arg;
    s->rc = ppx__ring_wait_data(s->port, 0, -1, &s->stop);
    s->fits = !ppx__ring_empty(s->port);
    atomic_store(&s->done, 1);
    return NULL;
}

static void *producer_thread(void *arg)
{
    sleeper *s = arg;
    s->rc = ppx__ring_wait_space(s->port, 24, 0, -1);
    s->fits = ppx__ring_reserve(s->port, 24) != NULL;
    atomic_store(&s->done, 1);
    return NULL;
}

static bool wait_until_set(_Atomic uint32_t *w, _Atomic int *i, int64_t ms)
{
    int64_t deadline = support_now_ms() + ms;
    while (support_now_ms() < deadline) {
        if ((w && atomic_load(w)) || (i && atomic_load(i)))
            return true;
        struct timespec ts = {0, 200000};
        nanosleep(&ts, NULL);
    }
    return false;
}

static void test_ring_sleeping_consumer_is_woken_by_notify_data(void **state)
{
    ppx__ring *r = ring_new(256);
    ppx__port port = ppx__port_of(r, 256);
    sleeper s = {.port = &port};
    pthread_t t;
    assert_int_equal(pthread_create(&t, NULL, consumer_thread, &s), 0);
    bool asleep = wait_until_set(&r->consumer_waiting, NULL, 10000);
    if (asleep) {
        assert_true(push(&port, 4, 0, 0));
        ppx__ring_notify_data(&port);
    }
    bool woke = wait_until_set(NULL, &s.done, 10000);
    if (!woke) {
        atomic_store(&s.stop, 1);
        ppx__ring_kick(&port);
    }
    pthread_join(t, NULL);
    assert_true(asleep);
    assert_true(woke);
    assert_int_equal(s.rc, 0);
    assert_true(s.fits);
    free(r);
}

static void test_ring_sleeping_producer_is_woken_by_notify_space(void **state)
{
    ppx__ring *r = ring_new(256);
    ppx__port port = ppx__port_of(r, 256);
    for (uint32_t i = 0; i < 8; i++)
        assert_true(push(&port, 24, i, i));
    sleeper s = {.port = &port};
    pthread_t t;
    assert_int_equal(pthread_create(&t, NULL, producer_thread, &s), 0);
    bool asleep = wait_until_set(&r->producer_waiting, NULL, 10000);
    bool notified = false;
    if (asleep) {
        pop_expect(&port, 24, 0, 0);
        notified = ppx__ring_notify_space(&port);
    }
    bool woke = wait_until_set(NULL, &s.done, 10000);
    if (!woke) {
        if (!asleep)
            pop_expect(&port, 24, 0, 0);
        atomic_fetch_add(&r->space_seq, 1);
        ppx__futex_wake(&r->space_seq, 1);
    }
    pthread_join(t, NULL);
    assert_true(asleep);
    assert_true(notified);
    assert_true(woke);
    assert_int_equal(s.rc, 0);
    assert_true(s.fits);
    free(r);
}

/* ------------------------------------------------------------------ */
/* Stress: a forked producer, this process consumes                    */

#define STRESS_CAPACITY (64u * 1024u)
#define STRESS_RECORDS 1000000u
#define STRESS_LEN_SEED 0x243f6a8885a308d3ull
#define STRESS_WAIT_MS 10000

static uint64_t fnv1a(uint64_t h, const unsigned char *p, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        h ^= p[i];
        h *= 0x100000001b3ull;
    }
    return h;
}

/* Record lengths, replayed by the consumer from the same seed: mostly a
 * few hundred bytes, some up to 4 KiB, a few up to and at max_record. */
static size_t stress_len(uint64_t *s, size_t max)
{
    uint64_t x = xorshift(s);
    unsigned pick = (unsigned)(x % 1000);
    x >>= 10;
    if (pick < 800)
        return x % 256;
    if (pick < 995)
        return x % 4096;
    if (pick < 999)
        return x % (max + 1);
    return max;
}

/* A payload of len >= 16 holds the sequence number, then the FNV-1a of
 * every other byte, then random bytes; shorter ones hold bytes derived
 * from the sequence number. */
static void stress_fill(unsigned char *p, size_t len, uint64_t seq, uint64_t *s)
{
    if (len < 16) {
        for (size_t i = 0; i < len; i++)
            p[i] = (uint8_t)(seq * 151u + i);
        return;
    }
    memcpy(p, &seq, 8);
    for (size_t i = 16; i < len; i += 8) {
        uint64_t x = xorshift(s);
        memcpy(p + i, &x, len - i < 8 ? len - i : 8);
    }
    uint64_t h = fnv1a(fnv1a(0xcbf29ce484222325ull, p, 8), p + 16, len - 16);
    memcpy(p + 8, &h, 8);
}

static const char *stress_check(const unsigned char *p, size_t len, uint64_t seq)
{
    if (len < 16) {
        for (size_t i = 0; i < len; i++)
            if (p[i] != (uint8_t)(seq * 151u + i))
                return "short payload has wrong bytes";
        return NULL;
    }
    uint64_t got_seq, sum;
    memcpy(&got_seq, p, 8);
    memcpy(&sum, p + 8, 8);
    if (got_seq != seq)
        return "sequence number out of order";
    if (sum != fnv1a(fnv1a(0xcbf29ce484222325ull, p, 8), p + 16, len - 16))
        return "checksum mismatch";
    return NULL;
}

static void stress_produce(ppx__ring *r, pid_t parent)
{
    /* Die with the parent, so a failed test never leaves us blocked. */
    if (prctl(PR_SET_PDEATHSIG, SIGKILL) != 0 || getppid() != parent)
        _exit(2);
    /* The producer's own port, in this process's private memory. */
    ppx__port port = ppx__port_of(r, STRESS_CAPACITY);
    size_t max = ppx__ring_max_record(&port);
    uint64_t len_rng = STRESS_LEN_SEED, body_rng = 0x13198a2e03707344ull;
    for (uint64_t seq = 0; seq < STRESS_RECORDS; seq++) {
        size_t len = stress_len(&len_rng, max);
        unsigned char *p;
        while (!(p = ppx__ring_reserve(&port, len)))
            if (ppx__ring_wait_space(&port, len, 64, STRESS_WAIT_MS) != 0)
                _exit(3);
        stress_fill(p, len, seq, &body_rng);
        ppx__ring_commit(&port, len, (uint32_t)(seq & 0x7fffffff));
        ppx__ring_notify_data(&port);
    }
    _exit(0);
}

static int teardown_no_children(void **state)
{
    assert_true(support_no_children());
    return 0;
}

static void test_ring_stress_a_million_records_across_two_processes(void **state)
{
    size_t fp = ppx__ring_footprint(STRESS_CAPACITY);
    void *mem = NULL;
    assert_int_equal(ppx__region_map(fp, &mem), 0);
    ppx__ring *r = mem;
    assert_int_equal(ppx__ring_init(r, STRESS_CAPACITY), 0);
    /* The consumer's port; the forked producer makes its own. */
    ppx__port port = ppx__port_of(r, STRESS_CAPACITY);
    size_t max = ppx__ring_max_record(&port);

    pid_t parent = getpid();
    fflush(NULL);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0)
        stress_produce(r, parent);

    _Atomic uint32_t stop = 0;
    uint64_t len_rng = STRESS_LEN_SEED;
    uint64_t seq = 0, bytes = 0, wraps = 0, at_max = 0;
    const unsigned char *last = r->data;
    const char *err = NULL;
    size_t expect_len = stress_len(&len_rng, max);
    while (seq < STRESS_RECORDS) {
        const void *payload;
        size_t len;
        uint32_t flags;
        int rc = ppx__ring_peek(&port, &payload, &len, &flags);
        if (rc == 0) {
            if (ppx__ring_wait_data(&port, 64, STRESS_WAIT_MS, &stop) != 0) {
                err = "timed out waiting for data";
                break;
            }
            continue;
        }
        if (rc < 0) {
            err = "peek failed";
            break;
        }
        const unsigned char *p = payload;
        if (!in_data(&port, p, len)) {
            err = "payload outside the ring or not contiguous";
            break;
        }
        if (len != expect_len) {
            err = "wrong length";
            break;
        }
        if (flags != (uint32_t)(seq & 0x7fffffff)) {
            err = "wrong flags";
            break;
        }
        if ((err = stress_check(p, len, seq)))
            break;
        wraps += p < last;
        last = p;
        at_max += len == max;
        bytes += HDR + ((len + 7) & ~(size_t)7);
        ppx__ring_release(&port, len);
        ppx__ring_notify_space(&port);
        if (++seq < STRESS_RECORDS)
            expect_len = stress_len(&len_rng, max);
    }
    if (err)
        kill(pid, SIGKILL);
    int status = 0;
    pid_t reaped = waitpid(pid, &status, 0);
    bool empty = ppx__ring_empty(&port);
    ppx__region_unmap(mem, fp);

    if (err)
        fail_msg("record %llu (expected %zu bytes): %s", (unsigned long long)seq,
                 expect_len, err);
    assert_int_equal(reaped, pid);
    assert_true(WIFEXITED(status));
    assert_int_equal(WEXITSTATUS(status), 0);
    assert_true(empty);
    assert_true(at_max > 0);
    /* Every pass over the ring ends in one wrap to offset 0. */
    assert_true(bytes / STRESS_CAPACITY > 1000);
    assert_true(wraps + 1 >= bytes / STRESS_CAPACITY);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_ring_init_accepts_only_powers_of_two_from_the_minimum_up),
        cmocka_unit_test(test_ring_peek_on_an_empty_ring_returns_zero),
        cmocka_unit_test(test_ring_round_trip_preserves_payload_and_flags_in_order),
        cmocka_unit_test(test_ring_commit_masks_the_pad_bit_so_user_flags_never_hide_a_record),
        cmocka_unit_test(test_ring_records_that_do_not_fit_before_the_end_start_at_offset_zero),
        cmocka_unit_test(test_ring_reserve_returns_null_when_full_and_succeeds_after_release),
        cmocka_unit_test(test_ring_reserve_never_hands_out_unreleased_bytes_when_a_record_must_wrap),
        cmocka_unit_test(test_ring_max_record_is_the_largest_payload_accepted_wherever_the_ring_stands),
        cmocka_unit_test(test_ring_counters_keep_working_past_four_gigabytes),
        cmocka_unit_test(test_ring_interleaved_use_matches_a_fifo_through_many_wraps),
        cmocka_unit_test(test_ring_peek_rejects_a_header_longer_than_what_was_published),
        cmocka_unit_test(test_ring_peek_rejects_a_record_running_past_the_end_of_the_buffer),
        cmocka_unit_test(test_ring_peek_rejects_a_misaligned_or_impossible_head),
        cmocka_unit_test(test_ring_release_moves_tail_by_the_length_peek_returned_not_the_header_now),
        cmocka_unit_test(test_ring_a_producer_rewriting_the_shared_capacity_does_not_move_the_consumers_bounds),
        cmocka_unit_test(test_ring_reserve_reports_no_room_when_the_tail_is_past_the_head_or_too_far_behind),
        cmocka_unit_test(test_ring_producer_ignores_a_head_rewritten_in_shared_memory),
        cmocka_unit_test(test_ring_peek_rejects_a_record_longer_than_the_largest),
        cmocka_unit_test(test_ring_want_space_raises_the_flag_that_notify_space_consumes),
        cmocka_unit_test(test_ring_notify_data_wakes_only_a_consumer_that_sleeps),
        cmocka_unit_test(test_ring_wait_data_returns_for_data_or_stop_and_times_out_otherwise),
        cmocka_unit_test(test_ring_wait_space_returns_when_it_fits_and_times_out_when_full),
        cmocka_unit_test(test_ring_sleeping_consumer_is_woken_by_notify_data),
        cmocka_unit_test(test_ring_sleeping_producer_is_woken_by_notify_space),
        cmocka_unit_test_teardown(test_ring_stress_a_million_records_across_two_processes,
                                  teardown_no_children),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
