/* What the test_ring_* suites share: rings in exactly-sized heap blocks,
 * records whose every byte is checked, and a seeded random stream. */
#ifndef PPX_TESTS_RING_SUPPORT_H
#define PPX_TESTS_RING_SUPPORT_H
#include "shm/ring.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define HDR sizeof(ppx__rec_hdr)

/* A zeroed ring in a heap block of exactly its footprint (free() it). */
ppx__ring *ring_new(size_t capacity);
/* Puts head and tail at pos, as if that much traffic had gone through. */
void ring_rewind_to(ppx__port *p, uint64_t pos);
/* Byte i of record tag's payload. */
uint8_t pattern(uint32_t tag, size_t i);
/* Whether [p, p + len) lies in the buffer, by the port's own capacity. */
bool in_data(const ppx__port *port, const void *p, size_t len);
/* Reserves, fills with pattern(tag) and commits; false when it did not fit. */
bool push(ppx__port *port, size_t len, uint32_t flags, uint32_t tag);
/* Peeks, checks against push()'s record, releases; where its payload was. */
const unsigned char *pop_expect(ppx__port *port, size_t len, uint32_t flags,
                                uint32_t tag);
/* Peek finds nothing and the ring is empty. */
void assert_peek_empty(ppx__port *port);
/* Peek rejects the next record with -EBADMSG, again when asked again, and
 * the tail stays. */
void assert_peek_rejects(ppx__port *port);

#endif
