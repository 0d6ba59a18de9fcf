/* Tests of the SPSC record ring (shm/ring.c) on rings in exactly-sized heap
 * blocks (so the sanitizer build catches any read past the end): what the
 * other side, in another process, can write into the shared header and
 * records: it never makes peek read, nor the producer write, out of bounds. */
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
    /* Full: the producer reads tail again only when a record does not fit
     * by the tail it saw last, so every reserve below reads the broken one. */
    for (uint32_t i = 0; i < 8; i++)
        assert_true(push(&prod, 24, i, i)); /* 256 bytes unread */
    const uint64_t head = atomic_load(&r->head);
    assert_int_equal(head, base + 256);
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
    for (uint32_t i = 0; i < 8; i++)
        pop_expect(&cons, 24, i, i);
    assert_peek_empty(&cons);
    free(r);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_ring_peek_rejects_a_header_longer_than_what_was_published),
        cmocka_unit_test(test_ring_peek_rejects_a_record_running_past_the_end_of_the_buffer),
        cmocka_unit_test(test_ring_peek_rejects_a_misaligned_or_impossible_head),
        cmocka_unit_test(test_ring_release_moves_tail_by_the_length_peek_returned_not_the_header_now),
        cmocka_unit_test(test_ring_a_producer_rewriting_the_shared_capacity_does_not_move_the_consumers_bounds),
        cmocka_unit_test(test_ring_reserve_reports_no_room_when_the_tail_is_past_the_head_or_too_far_behind),
        cmocka_unit_test(test_ring_producer_ignores_a_head_rewritten_in_shared_memory),
        cmocka_unit_test(test_ring_peek_rejects_a_record_longer_than_the_largest),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
