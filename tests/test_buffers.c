/* Shared buffers (ppx_buffer): big data written once by the caller, read
 * in place by a worker, handed back without a copy; held by the calls
 * that name them; refused clearly when they cannot work. */
#include "support.h"
#include "ppx.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>
#include <uv.h>

/* Sum of the bytes of buffer argument 0, and whether they were read in
 * place (the worker never wrote a copy: the address is in its arena). */
static int fn_sum(ppx_call *c, void *u)
{
    (void)u;
    const void *data;
    size_t len;
    int rc = ppx_call_arg_buffer(c, 0, &data, &len);
    if (rc)
        return ppx_raise(c, "BufferError", "%s", ppx_strerror(rc));
    uint64_t sum = 0;
    for (size_t i = 0; i < len; i++)
        sum += ((const unsigned char *)data)[i];
    return ppx_returnf(c, "UU", (unsigned long long)sum, (unsigned long long)len);
}

/* Returns buffer argument 0 itself. */
static int fn_echo(ppx_call *c, void *u)
{
    (void)u;
    int rc = ppx_return_buffer(c, 0);
    return rc ? ppx_raise(c, "BufferError", "%s", ppx_strerror(rc)) : 0;
}

/* What ppx_call_arg_buffer says about argument 0. */
static int fn_arg_code(ppx_call *c, void *u)
{
    (void)u;
    const void *data;
    size_t len;
    return ppx_return_int(c, ppx_call_arg_buffer(c, 0, &data, &len));
}

static ppx_pool *new_pool(ppx_pool_options o)
{
    support_valgrind_sizes(&o);
    ppx_pool *p = NULL;
    assert_int_equal(ppx_pool_new(&o, &p), 0);
    return p;
}

static ppx_buffer *filled(ppx_pool *p, size_t size, uint64_t *sum)
{
    ppx_buffer *b = NULL;
    assert_int_equal(ppx_buffer_new(p, size, &b), 0);
    unsigned char *d = ppx_buffer_data(b);
    assert_non_null(d);
    assert_int_equal((uintptr_t)d % 64, 0);
    assert_int_equal(ppx_buffer_size(b), size);
    *sum = 0;
    for (size_t i = 0; i < size; i++) {
        d[i] = (unsigned char)(i * 7 + 3);
        *sum += d[i];
    }
    return b;
}

static void assert_sum(ppx_future *f, uint64_t sum, size_t len)
{
    assert_int_equal(ppx_future_wait(f, -1), 0);
    if (ppx_future_state(f) != PPX_DONE)
        fail_msg("%s: %s", ppx_future_error(f)->type, ppx_future_error(f)->message);
    ppx_value v, e;
    assert_int_equal(ppx_future_value(f, &v), 0);
    uint64_t got;
    assert_int_equal(ppx_value_at(v, 0, &e), 0);
    assert_int_equal(ppx_value_uint(e, &got), 0);
    assert_int_equal(got, sum);
    assert_int_equal(ppx_value_at(v, 1, &e), 0);
    assert_int_equal(ppx_value_uint(e, &got), 0);
    assert_int_equal(got, len);
}

static void test_worker_reads_the_callers_bytes_in_place(void **state)
{
    (void)state;
    ppx_pool *p = new_pool(PPX_POOL_OPTIONS(.workers = 2));
    enum { SIZE = 3 << 20 }; /* a big call: would go through the arena */
    uint64_t sum;
    ppx_buffer *b = filled(p, SIZE, &sum);
    ppx_pool_stats before = PPX_POOL_STATS_INIT, after = PPX_POOL_STATS_INIT;
    ppx_pool_stats_get(p, &before);
    ppx_future *f;
    assert_int_equal(ppx_pool_submitf(p, &f, "sum", "M", b), 0);
    assert_sum(f, sum, SIZE);
    ppx_pool_stats_get(p, &after);
    /* 18 bytes went as the argument, not a 3 MiB frame. */
    assert_int_equal(after.arena_calls, before.arena_calls);
    ppx_future_unref(f);
    ppx_buffer_unref(b);
    ppx_pool_free(p);
}

static void test_result_is_the_same_buffer_without_a_copy(void **state)
{
    (void)state;
    ppx_pool *p = new_pool(PPX_POOL_OPTIONS(.workers = 1));
    uint64_t sum;
    ppx_buffer *b = filled(p, 1 << 20, &sum);
    ppx_future *f;
    assert_int_equal(ppx_pool_submitf(p, &f, "echo", "M", b), 0);
    ppx_buffer_unref(b); /* the call holds it */
    assert_int_equal(ppx_future_wait(f, -1), 0);
    ppx_buffer *back = NULL;
    assert_int_equal(ppx_future_buffer(f, &back), 0);
    assert_ptr_equal(back, b);
    unsigned char *d = ppx_buffer_data(back);
    assert_int_equal(d[12345], (unsigned char)(12345 * 7 + 3));
    ppx_future_unref(f);
    assert_int_equal(ppx_buffer_size(back), 1 << 20); /* ours now */
    ppx_buffer_unref(back);

    /* A result that is not a buffer. */
    assert_int_equal(ppx_pool_submitf(p, &f, "arg_code", "i", 5), 0);
    assert_int_equal(ppx_future_wait(f, -1), 0);
    int64_t code;
    assert_int_equal(ppx_future_int(f, &code), 0);
    assert_int_equal(code, PPX_ETYPE);
    assert_int_equal(ppx_future_buffer(f, &back), PPX_ETYPE);
    ppx_future_unref(f);
    ppx_pool_free(p);
}

static void test_buffers_through_the_loop_and_a_batch(void **state)
{
    (void)state;
    ppx_pool *p = new_pool(PPX_POOL_OPTIONS(.workers = 2));
    uv_loop_t loop;
    uv_loop_init(&loop);
    uint64_t sum;
    ppx_buffer *b = filled(p, 4096, &sum);
    void *args;
    size_t len;
    assert_int_equal(ppx_pack(&args, &len, "M", b), 0);
    assert_int_equal(len, 1 + 18); /* the array header and the reference */
    ppx_awaitable *aw;
    assert_int_equal(ppx_run_in_executor(&loop, p, "echo", args, len, &aw), 0);
    free(args);
    ppx_run_until_complete(&loop, aw);
    ppx_buffer *back = NULL;
    assert_int_equal(ppx_awaitable_buffer(aw, &back), 0);
    assert_ptr_equal(back, b);
    ppx_buffer_unref(back);
    ppx_awaitable_unref(aw);

    /* A batch: three items, each naming the same buffer. */
    void *one;
    size_t olen;
    assert_int_equal(ppx_pack(&one, &olen, "M", b), 0);
    unsigned char items[1 + 3 * 20];
    size_t n = 0;
    items[n++] = 0x93;
    for (int i = 0; i < 3; i++, n += olen)
        memcpy(items + n, one, olen);
    free(one);
    ppx_future *m;
    assert_int_equal(ppx_pool_map(p, "sum", items, n, NULL, &m), 0);
    assert_int_equal(ppx_future_wait(m, -1), 0);
    ppx_value v, item, e;
    assert_int_equal(ppx_future_value(m, &v), 0);
    size_t n_items;
    assert_int_equal(ppx_value_array_len(v, &n_items), 0);
    assert_int_equal(n_items, 3);
    for (size_t i = 0; i < 3; i++) {
        uint64_t got;
        assert_int_equal(ppx_value_at(v, i, &item), 0);
        assert_int_equal(ppx_value_at(item, 0, &e), 0);
        assert_int_equal(ppx_value_uint(e, &got), 0);
        assert_int_equal(got, sum);
    }
    ppx_future_unref(m);
    ppx_buffer_unref(b);
    ppx_pool_free(p);
    uv_run(&loop, UV_RUN_DEFAULT);
    assert_int_equal(uv_loop_close(&loop), 0);
}

static void test_stale_or_forged_references_are_refused(void **state)
{
    (void)state;
    ppx_pool *p = new_pool(PPX_POOL_OPTIONS(.workers = 1));
    uint64_t sum;
    ppx_buffer *b = filled(p, 1000, &sum);
    void *args;
    size_t len;
    assert_int_equal(ppx_pack(&args, &len, "M", b), 0);
    /* A reference to bytes that are not a buffer's. */
    unsigned char *forged = malloc(len);
    memcpy(forged, args, len);
    forged[len - 9] ^= 0x40; /* its length */
    ppx_future *f = NULL;
    assert_int_equal(ppx_pool_submit(p, "sum", forged, len, &f), PPX_EINVAL);
    assert_null(f);
    assert_non_null(strstr(ppx_last_error(), "not a live ppx_buffer of this pool"));
    free(forged);
    /* The buffer gone: its reference is stale. */
    ppx_buffer_unref(b);
    assert_int_equal(ppx_pool_submit(p, "sum", args, len, &f), PPX_EINVAL);
    assert_null(f);
    /* The pool still serves. */
    assert_int_equal(ppx_pool_submitf(p, &f, "arg_code", "i", 1), 0);
    assert_int_equal(support_future_int(f), PPX_ETYPE);
    ppx_future_unref(f);
    free(args);
    ppx_pool_stats st = PPX_POOL_STATS_INIT;
    ppx_pool_stats_get(p, &st);
    assert_int_equal(st.arena_used, 0); /* every buffer gave its bytes back */
    ppx_pool_free(p);
}

static void test_refused_where_there_is_no_shared_memory(void **state)
{
    (void)state;
    ppx_pool *p = new_pool(PPX_POOL_OPTIONS(.workers = 1, .arena_bytes = PPX_ARENA_NONE));
    ppx_buffer *b = NULL;
    assert_int_equal(ppx_buffer_new(p, 100, &b), PPX_ENOTSUP);
    assert_null(b);
    assert_non_null(strstr(ppx_last_error(), "PPX_ARENA_NONE"));
    ppx_pool_free(p);

    p = new_pool(PPX_POOL_OPTIONS(.workers = 1, .arena_bytes = 1 << 20));
    assert_int_equal(ppx_buffer_new(p, 2 << 20, &b), PPX_ENOMEM);
    assert_non_null(strstr(ppx_last_error(), "no room"));
    assert_int_equal(ppx_buffer_new(p, 0, &b), PPX_EINVAL);
    assert_int_equal(ppx_buffer_new(NULL, 10, &b), PPX_EBADOBJ);
    assert_int_equal(ppx_buffer_new(ppx_thread_pool(), 10, &b), PPX_EBADOBJ);
    assert_null(ppx_buffer_data(NULL));
    assert_int_equal(ppx_buffer_size(NULL), 0);
    ppx_buffer_unref(NULL);
    void *args;
    size_t len;
    assert_int_equal(ppx_pack(&args, &len, "M", NULL), PPX_EINVAL);

    /* The thread executor has no shared memory to read a buffer from. */
    assert_int_equal(ppx_buffer_new(p, 64, &b), 0);
    uv_loop_t loop;
    uv_loop_init(&loop);
    assert_int_equal(ppx_pack(&args, &len, "M", b), 0);
    ppx_awaitable *aw;
    assert_int_equal(ppx_run_in_thread(&loop, "arg_code", args, len, &aw), 0);
    free(args);
    ppx_run_until_complete(&loop, aw);
    ppx_value v;
    int64_t code;
    assert_int_equal(ppx_awaitable_value(aw, &v), 0);
    assert_int_equal(ppx_value_int(v, &code), 0);
    assert_int_equal(code, PPX_ENOTSUP);
    ppx_awaitable_unref(aw);
    uv_run(&loop, UV_RUN_DEFAULT);
    assert_int_equal(uv_loop_close(&loop), 0);
    ppx_buffer_unref(b);
    ppx_pool_free(p);
}

static void test_buffer_outlives_its_pool_and_its_call(void **state)
{
    (void)state;
    ppx_pool *p = new_pool(PPX_POOL_OPTIONS(.workers = 1));
    uint64_t sum;
    ppx_buffer *b = filled(p, 1 << 16, &sum);
    ppx_future *f;
    assert_int_equal(ppx_pool_submitf(p, &f, "echo", "M", b), 0);
    assert_int_equal(ppx_future_wait(f, -1), 0);
    ppx_pool_free(p); /* the workers go; the memory stays for b and f */
    ppx_buffer *back = NULL;
    assert_int_equal(ppx_future_buffer(f, &back), 0);
    unsigned char *d = ppx_buffer_data(back);
    assert_non_null(d);
    d[0] = 42; /* still ours to write */
    assert_int_equal(((unsigned char *)ppx_buffer_data(b))[0], 42);
    ppx_future_unref(f);
    ppx_buffer_unref(back);
    ppx_buffer_unref(b); /* the last: the pool's memory goes now */
    assert_true(support_no_children());
}

/* In a fork of the creator the arena is still the creator's. */
static int child_sees_no_data(void *arg)
{
    ppx_buffer *b = arg;
    int ok = ppx_buffer_data(b) == NULL && ppx_buffer_size(b) == 1000;
    ppx_buffer_unref(b); /* frees the child's handle only */
    return ok ? 0 : 1;
}

static void test_fork_of_the_creator_sees_no_data(void **state)
{
    (void)state;
    ppx_pool *p = new_pool(PPX_POOL_OPTIONS(.workers = 1));
    uint64_t sum;
    ppx_buffer *b = filled(p, 1000, &sum);
    assert_int_equal(support_in_child(child_sees_no_data, b, 20000), 0);
    ppx_future *f;
    assert_int_equal(ppx_pool_submitf(p, &f, "sum", "M", b), 0);
    assert_sum(f, sum, 1000); /* untouched by the child */
    ppx_future_unref(f);
    ppx_buffer_unref(b);
    ppx_pool_free(p);
}

int main(void)
{
    ppx_register("sum", fn_sum, NULL);
    ppx_register("echo", fn_echo, NULL);
    ppx_register("arg_code", fn_arg_code, NULL);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_worker_reads_the_callers_bytes_in_place),
        cmocka_unit_test(test_result_is_the_same_buffer_without_a_copy),
        cmocka_unit_test(test_buffers_through_the_loop_and_a_batch),
        cmocka_unit_test(test_stale_or_forged_references_are_refused),
        cmocka_unit_test(test_refused_where_there_is_no_shared_memory),
        cmocka_unit_test(test_buffer_outlives_its_pool_and_its_call),
        cmocka_unit_test(test_fork_of_the_creator_sees_no_data),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
