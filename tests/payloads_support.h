/* What the test_payloads_* suites share: the worker functions they call
 * by name, pools with small rings, and checks of what came back. */
#ifndef PPX_TESTS_PAYLOADS_SUPPORT_H
#define PPX_TESTS_PAYLOADS_SUPPORT_H
#include "ppx.h"

#include <stddef.h>

#define RING (64 * 1024) /* frames from RING / 4 are "big" */

/* Names of PPX__NAME_MAX (255) bytes: the longest call envelope, the
 * longest function field of an error. */
extern char echo_long[256], raise_long[256];

/* Registers echo, slow_echo, wait_cancel, write_arg, pieces,
 * die_with_outbox_busy, make, return_huge, and echo and raise_long under
 * the longest names. Call once, first thing in main. */
void payloads_support_register(void);

/* Writes a msgpack bin of exactly n bytes (n >= 5) into b. */
void put_value(unsigned char *b, size_t n, unsigned seed);
/* n bytes of a pattern of seed, malloc'd. */
unsigned char *pattern(size_t n, unsigned seed);
/* A pool of that many workers with RING-byte rings and that arena. */
ppx_pool *new_pool(int workers, size_t arena_bytes);
/* f came back DONE with the n bytes of want. */
void assert_echoed(ppx_future *f, const unsigned char *want, size_t n);
/* p holds no arena bytes and saw no crash or failure. */
void assert_nothing_held(ppx_pool *p);
/* cmocka teardown: the test left no child behind. */
int teardown(void **state);

#endif
