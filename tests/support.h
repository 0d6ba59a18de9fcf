/* Helpers shared by the test suites. */
#ifndef PPX_TESTS_SUPPORT_H
#define PPX_TESTS_SUPPORT_H
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdbool.h>
#include <stdint.h>
#include <cmocka.h>

/* Number of open file descriptors of this process. */
int support_open_fds(void);
/* True when this process has no child left (nothing to reap either). */
bool support_no_children(void);
/* Number of live children of this process, from /proc. */
int support_children_alive(void);
/* Number of entries in /dev/shm (named shared memory), -1 if absent. */
int support_dev_shm_entries(void);
/* Monotonic milliseconds. */
int64_t support_now_ms(void);

#endif
