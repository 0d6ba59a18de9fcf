/*
 * A worker can't hurt the pool: functions that scribble on the shared
 * memory they can reach, exit with any status, close their descriptors or
 * fork, and the pool's answer to each (see docs/FAILURE_MODEL.md, "The
 * trust boundary"). Other groups of the suite: hostile_app.c,
 * hostile_process.c.
 */
#include "hostile.h"
#include "support.h"
#include "ppx.h"

#include <stdio.h>

static int teardown(void **state)
{
    (void)state;
    assert_true(support_no_children());
    return 0;
}

static int fn_add(ppx_call *c, void *u)
{
    (void)u;
    int64_t a, b;
    ppx_call_arg_int(c, 0, &a);
    ppx_call_arg_int(c, 1, &b);
    return ppx_return_int(c, a + b);
}

static void test_pool_serves_before_anything_hostile(void **state)
{
    (void)state;
    ppx_pool *p = NULL;
    assert_int_equal(ppx_pool_new(&p, &(ppx_pool_options){.workers = 1}), 0);
    ppx_future *f;
    assert_int_equal(ppx_pool_submitf(p, &f, "add", "ii", 2, 3), 0);
    assert_int_equal(ppx_future_wait(f, 20000), 0);
    int64_t v = 0;
    assert_int_equal(ppx_future_int(f, &v), 0);
    assert_int_equal(v, 5);
    ppx_future_unref(f);
    ppx_pool_free(p);
}

int main(void)
{
    ppx_register("add", fn_add, NULL);
    hostile_app_register();
    hostile_process_register();
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_teardown(test_pool_serves_before_anything_hostile, teardown),
    };
    int failed = cmocka_run_group_tests_name("hostile_worker", tests, NULL, NULL);
    failed += hostile_app_run();
    failed += hostile_process_run();
    return failed;
}
