/* Tests of the SPSC record ring (shm/ring.c) on rings in exactly-sized heap
 * blocks (so the sanitizer build catches any read past the end): records
 * in one process, in order, through wraps and past 4 GiB of traffic. */
#include "support.h"
#include "ring_support.h"
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
        uint64_t x = support_xorshift(&s);
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

/* Early wraps (ring.h): past PPX__RING_WARM bytes the producer starts
 * again at 0 whenever the record fits below every unreleased byte. */
static void test_ring_wraps_early_only_below_every_unreleased_byte(void **state)
{
    const size_t cap = 65536;
    ppx__ring *r = ring_new(cap);
    ppx__port port = ppx__port_of(r, cap);
    /* Two records of 8 KiB fill the buffer up to PPX__RING_WARM. */
    assert_true(push(&port, 8192 - HDR, 1, 1));
    assert_true(push(&port, 8192 - HDR, 2, 2));
    assert_int_equal(port.head, PPX__RING_WARM);
    /* All 16 KiB below are unreleased: the next record goes on at 16 KiB. */
    unsigned char *p = ppx__ring_reserve(&port, 24);
    assert_ptr_equal(p, r->data + PPX__RING_WARM + HDR);
    for (size_t i = 0; i < 24; i++)
        p[i] = pattern(3, i);
    ppx__ring_commit(&port, 24, 3);
    /* Once the first is released, 24 bytes fit below the second: the
     * producer pads to the end and starts again at 0. */
    pop_expect(&port, 8192 - HDR, 1, 1);
    p = ppx__ring_reserve(&port, 24);
    assert_ptr_equal(p, r->data + HDR);
    for (size_t i = 0; i < 24; i++)
        p[i] = pattern(4, i);
    ppx__ring_commit(&port, 24, 4);
    assert_int_equal(atomic_load(&r->head), cap + 32);
    /* From there the records go on up to the oldest unreleased byte (the
     * second record, at 8 KiB), never over it. */
    assert_null(ppx__ring_reserve(&port, 8192 - HDR));
    assert_true(push(&port, 8192 - 32 - HDR, 5, 5));
    assert_int_equal(atomic_load(&r->head), cap + 8192);
    assert_null(ppx__ring_reserve(&port, 0));
    pop_expect(&port, 8192 - HDR, 2, 2);
    pop_expect(&port, 24, 3, 3);
    pop_expect(&port, 24, 4, 4);
    pop_expect(&port, 8192 - 32 - HDR, 5, 5);
    assert_peek_empty(&port);
    free(r);
}

/* Light traffic keeps to the first pages of a big ring: one record in
 * flight at a time never lands past PPX__RING_WARM and its own size. */
static void test_ring_light_traffic_keeps_to_the_first_pages(void **state)
{
    const size_t cap = (size_t)1 << 20;
    ppx__ring *r = ring_new(cap);
    ppx__port port = ppx__port_of(r, cap);
    const unsigned char *highest = r->data;
    for (uint32_t i = 0; i < 100000; i++) {
        size_t len = 16 + (i * 37u) % 200;
        assert_true(push(&port, len, i, i));
        const unsigned char *at = pop_expect(&port, len, i, i);
        highest = at > highest ? at : highest;
    }
    assert_true(highest < r->data + PPX__RING_WARM + 256);
    assert_true(atomic_load(&r->head) > 10 * (uint64_t)cap); /* it did wrap, often */
    assert_peek_empty(&port);
    free(r);
}

/* Many records in flight on a ring big enough to wrap early: the FIFO
 * holds and every byte read is the byte written (an early wrap into
 * unreleased bytes would show as a wrong pattern). */
static void test_ring_early_wraps_keep_a_fifo_with_many_records_in_flight(void **state)
{
    const size_t cap = 65536;
    ppx__ring *r = ring_new(cap);
    ppx__port port = ppx__port_of(r, cap);
    size_t max = ppx__ring_max_record(&port);
    enum { Q = 4096 };
    static struct { size_t len; uint32_t tag; } fifo[Q];
    size_t first = 0, count = 0, early = 0;
    uint32_t next_tag = 0;
    uint64_t s = 0x2545f4914f6cdd1dull;
    for (int op = 0; op < 400000; op++) {
        uint64_t x = support_xorshift(&s);
        /* Phases that fill and phases that drain, so that the bytes in
         * flight range from none to most of the ring. */
        bool produce = ((op >> 12) & 1) ? (x & 3) != 0 : (x & 3) == 0;
        if (produce && count < Q) {
            size_t len = (x >> 8) % 16 == 0 ? (x >> 16) % (max + 1) : (x >> 16) % 300;
            uint64_t off = port.head & (cap - 1), used = port.head - atomic_load(&r->tail);
            uint64_t rec = (HDR + len + 7) & ~(uint64_t)7;
            /* Where the record fits without an early wrap, it fits. */
            bool fits = rec <= cap - off ? used + rec <= cap : used + (cap - off) + rec <= cap;
            if (push(&port, len, next_tag, next_tag)) {
                size_t at = (first + count++) % Q;
                fifo[at].len = len;
                fifo[at].tag = next_tag++;
                /* A record that would have fitted before the end went to 0. */
                early += (port.head & (cap - 1)) < off && off + rec <= cap;
            } else {
                assert_false(fits);
            }
        } else if (count > 0) {
            pop_expect(&port, fifo[first].len, fifo[first].tag, fifo[first].tag);
            first = (first + 1) % Q;
            count--;
        }
    }
    while (count > 0) {
        pop_expect(&port, fifo[first].len, fifo[first].tag, fifo[first].tag);
        first = (first + 1) % Q;
        count--;
    }
    assert_peek_empty(&port);
    assert_true(early > 100);
    free(r);
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
        cmocka_unit_test(test_ring_wraps_early_only_below_every_unreleased_byte),
        cmocka_unit_test(test_ring_light_traffic_keeps_to_the_first_pages),
        cmocka_unit_test(test_ring_early_wraps_keep_a_fifo_with_many_records_in_flight),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
