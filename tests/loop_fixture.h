/* The fixture the test_executor_* and test_loop_* suites share: a libuv
 * loop and a pool, made by each family's own setup. */
#ifndef PPX_TESTS_LOOP_FIXTURE_H
#define PPX_TESTS_LOOP_FIXTURE_H
#include "ppx.h"

#include <uv.h>

typedef struct fixture {
    uv_loop_t loop;
    ppx_pool *pool;
} fixture;

/* cmocka teardown: frees the pool, runs the loop dry, closes it, and
 * checks no child is left. */
int teardown(void **state);

#endif
