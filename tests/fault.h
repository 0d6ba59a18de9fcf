/* Allocation fault injection for the 'faults' suite.
 *
 * The suite's executable links with -Wl,--wrap for malloc, calloc,
 * realloc, posix_memalign, strdup and strndup: every call the static
 * libppx (and the test itself) makes goes through fault.c, while libc,
 * libuv, msgpack-c's compiled code and cmocka allocate as usual. --wrap
 * rather than defining malloc keeps the sanitizers' and valgrind's own
 * malloc in charge: __real_malloc is theirs.
 *
 * Nothing is counted or failed until fault_arm(); arm only around the
 * operation under test. Thread-safe (atomics); forked processes inherit
 * the state of the moment, so a pool made while disarmed has disarmed
 * workers. */
#ifndef PPX_TESTS_FAULT_H
#define PPX_TESTS_FAULT_H
#include <stdbool.h>

/* Counts allocations from now on and fails the nth one (1-based), only
 * that one; nth 0 only counts. */
void fault_arm(unsigned long nth);
/* Stops counting; returns how many allocations were made while armed. */
unsigned long fault_disarm(void);
/* Whether the armed allocation has been failed since fault_arm. */
bool fault_fired(void);
/* Allocations counted so far while armed. */
unsigned long fault_count(void);

#endif
