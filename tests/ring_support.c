/* The rings and record helpers the test_ring_* suites share. */
#include "ring_support.h"
#include "support.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

/* A zeroed ring in a heap block of exactly its footprint. */
ppx__ring *ring_new(size_t capacity)
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
void ring_rewind_to(ppx__port *p, uint64_t pos)
{
    atomic_store(&p->r->head, pos);
    atomic_store(&p->r->tail, pos);
    p->head = p->tail = p->seen_tail = p->seen_head = pos;
}

uint8_t pattern(uint32_t tag, size_t i)
{
    return (uint8_t)(tag * 131u + i * 7u + 3u);
}

/* Whether [p, p + len) lies in the buffer, by the capacity the port was
 * made with (never the shared header's, which the other side can change). */
bool in_data(const ppx__port *port, const void *p, size_t len)
{
    const unsigned char *c = p;
    return c >= port->r->data && len <= port->cap &&
           c <= port->r->data + port->cap - len;
}

/* Reserves, fills with pattern(tag) and commits; false when it did not fit. */
bool push(ppx__port *port, size_t len, uint32_t flags, uint32_t tag)
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
const unsigned char *pop_expect(ppx__port *port, size_t len, uint32_t flags,
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

void assert_peek_empty(ppx__port *port)
{
    const void *p;
    size_t len;
    uint32_t flags;
    assert_int_equal(ppx__ring_peek(port, &p, &len, &flags), 0);
    assert_true(ppx__ring_empty(port));
}

void assert_peek_rejects(ppx__port *port)
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
