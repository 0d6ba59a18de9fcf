/*
 * consumer: the smallest program built against an installed ppx (or ppx as
 * a meson subproject). It registers one worker function, starts a pool,
 * runs one call through a libuv loop and checks the result.
 *
 * ppx.h itself is plain C11; uv.h is not: under -std=c11 glibc hides the
 * POSIX types it uses (pthread_rwlock_t), hence the feature-test macro.
 * Under gnu11 it is not needed.
 */
#define _POSIX_C_SOURCE 200809L

#include <ppx.h>

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <uv.h>

static int square(ppx_call *call, void *udata)
{
    (void)udata;
    int64_t x;
    if (ppx_call_arg_int(call, 0, &x) != 0)
        return ppx_raise(call, "TypeError", "square() takes one integer");
    return ppx_return_int(call, x * x);
}

static int fail(const char *what, int rc)
{
    fprintf(stderr, "consumer: %s: %s (%s)\n", what, ppx_strerror(rc), ppx_err_name(rc));
    return 1;
}

int main(void)
{
    int rc = ppx_register("square", square, NULL);
    if (rc)
        return fail("ppx_register", rc);

    ppx_pool *pool;
    rc = ppx_pool_new(&PPX_POOL_OPTIONS(.workers = 2), &pool);
    if (rc)
        return fail("ppx_pool_new", rc);

    uv_loop_t loop;
    rc = uv_loop_init(&loop);
    if (rc) {
        fprintf(stderr, "consumer: uv_loop_init: %s\n", uv_strerror(rc));
        return 1;
    }

    void *args;
    size_t args_len;
    rc = ppx_pack(&args, &args_len, "l", 12LL);
    if (rc)
        return fail("ppx_pack", rc);
    ppx_awaitable *aw;
    rc = ppx_run_in_executor(&loop, pool, "square", args, args_len, &aw);
    free(args); /* copied by the call */
    if (rc)
        return fail("ppx_run_in_executor", rc);
    rc = ppx_run_until_complete(&loop, aw);
    if (rc)
        return fail("ppx_run_until_complete", rc);

    int status = 0;
    ppx_value v;
    int64_t got = 0;
    rc = ppx_awaitable_value(aw, &v);
    if (rc == 0)
        rc = ppx_value_int(v, &got);
    if (rc) {
        const ppx_error *e = ppx_awaitable_error(aw);
        fprintf(stderr, "consumer: square(12) failed: %s: %s\n",
                e ? e->type : ppx_err_name(rc), e ? e->message : ppx_strerror(rc));
        status = 1;
    } else if (got != 144) {
        fprintf(stderr, "consumer: square(12) = %" PRId64 ", expected 144\n", got);
        status = 1;
    } else {
        printf("consumer: ppx %s: square(12) = %" PRId64 " in a worker\n", ppx_version(), got);
    }

    ppx_awaitable_unref(aw);
    ppx_pool_free(pool);
    uv_run(&loop, UV_RUN_DEFAULT); /* lets the pool's handles close */
    if (uv_loop_close(&loop) != 0) {
        fprintf(stderr, "consumer: the loop still has handles\n");
        status = 1;
    }
    return status;
}
