/* The teardown of the loop-and-pool fixture (loop_fixture.h). */
#include "support.h"
#include "loop_fixture.h"

#include <stdlib.h>

int teardown(void **state)
{
    fixture *fx = *state;
    ppx_pool_free(fx->pool);
    uv_run(&fx->loop, UV_RUN_DEFAULT);
    assert_int_equal(uv_loop_close(&fx->loop), 0);
    free(fx);
    assert_true(support_no_children());
    return 0;
}
