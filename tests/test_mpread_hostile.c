/* Tests of the bounds-checked msgpack reader (serialize/mpread.c) on hostile
 * input: the wrong type, truncation, reserved bytes, lying lengths, deep
 * nesting and random bytes. They also check that ppx_value_format and
 * ppx__env_decode reject what the reader rejects. */
#include "support.h"
#include "serialize_support.h"
#include "serialize/envelope.h"
#include "serialize/mpread.h"

#include <float.h>
#include <math.h>
#include <msgpack.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

/* One sample of each type, and the reader that accepts it. */
enum { R_ARRAY, R_MAP, R_NIL, R_BOOL, R_INT, R_UINT, R_DOUBLE, R_STR, R_BIN, R_COUNT };

static int read_with(int reader, ppx__mp *m)
{
    uint32_t n;
    bool b;
    int64_t i;
    uint64_t u;
    double d;
    const char *s;
    const void *p;
    switch (reader) {
    case R_ARRAY: return ppx__mp_array(m, &n);
    case R_MAP: return ppx__mp_map(m, &n);
    case R_NIL: return ppx__mp_nil(m);
    case R_BOOL: return ppx__mp_bool(m, &b);
    case R_INT: return ppx__mp_int(m, &i);
    case R_UINT: return ppx__mp_uint(m, &u);
    case R_DOUBLE: return ppx__mp_double(m, &d);
    case R_STR: return ppx__mp_str(m, &s, &n);
    case R_BIN: return ppx__mp_bin(m, &p, &n);
    }
    return -1;
}

static void test_mpread_type_mismatch_is_etype_and_leaves_the_cursor(void **state)
{
    static const struct { const char *bytes; size_t len; int reader; } samples[] = {
        {"\x91\x01", 2, R_ARRAY},
        {"\x81\x01\x02", 3, R_MAP},
        {"\xc0", 1, R_NIL},
        {"\xc3", 1, R_BOOL},
        {"\x05", 1, R_INT},
        {"\xcb\x3f\xf8\0\0\0\0\0\0", 9, R_DOUBLE},
        {"\xa1s", 2, R_STR},
        {"\xc4\x01\x00", 3, R_BIN},
        {"\xd4\x01\x00", 3, -1}, /* ext: no reader takes it */
    };
    for (size_t k = 0; k < sizeof samples / sizeof samples[0]; k++) {
        ts_exact e = ts_exact_copy(samples[k].bytes, samples[k].len);
        for (int r = 0; r < R_COUNT; r++) {
            bool ok = r == samples[k].reader ||
                      (samples[k].reader == R_INT && (r == R_UINT || r == R_DOUBLE));
            ppx__mp m = ppx__mp_of(e.p, e.n);
            int rc = read_with(r, &m);
            if (ok) {
                if (rc != 0)
                    fail_msg("sample %zu, reader %d: %d", k, r, rc);
                assert_true(m.p > e.p);
            } else {
                if (rc != PPX_ETYPE)
                    fail_msg("sample %zu, reader %d: %d, expected PPX_ETYPE", k, r, rc);
                assert_ptr_equal(m.p, e.p);
                assert_ptr_equal(m.end, e.p + e.n);
            }
        }
        ts_exact_free(&e);
    }
}

static void test_mpread_truncated_reads_are_malformed_and_leave_the_cursor(void **state)
{
    static const struct { const char *bytes; size_t len; int reader; } samples[] = {
        {"", 0, R_INT},
        {"", 0, R_NIL},
        {"\xcd\x01", 2, R_INT},
        {"\xcf\0\0\0\0\0\0\0", 8, R_UINT},
        {"\xd3\0\0\0", 4, R_INT},
        {"\xcb\0\0\0", 4, R_DOUBLE},
        {"\xca\0\0\0", 4, R_DOUBLE},
        {"\xa5" "abcd", 5, R_STR},
        {"\xd9", 1, R_STR},
        {"\xda\x01\x00" "x", 4, R_STR},
        {"\xc4\x02\x00", 3, R_BIN},
        {"\xc6\0\0\x01", 4, R_BIN},
        {"\x93\x01\x02", 3, R_ARRAY},
        {"\xdc\x00", 2, R_ARRAY},
        {"\x82\x01\x02\x03", 4, R_MAP},
        {"\xde\x00\x01\x01", 4, R_MAP},
    };
    for (size_t k = 0; k < sizeof samples / sizeof samples[0]; k++) {
        ts_exact e = ts_exact_copy(samples[k].bytes, samples[k].len);
        ppx__mp m = ppx__mp_of(e.p, e.n);
        int rc = read_with(samples[k].reader, &m);
        if (rc != PPX_EMALFORMED)
            fail_msg("sample %zu: %d, expected PPX_EMALFORMED", k, rc);
        assert_ptr_equal(m.p, e.p);
        ts_exact_free(&e);
    }
}

/* ------------------------------------------------------------------ */
/* mpread: hostile input                                               */

/* Every proper prefix of data must be rejected by every entry point,
 * without reading outside the prefix. */
static void assert_prefixes_rejected(const void *data, size_t len, size_t step)
{
    assert_int_equal(ppx__mp_check_one(data, len), 0);
    char out[16];
    for (size_t k = 0; k < len; k += (k < 16 || k + 16 >= len) ? 1 : step) {
        ts_exact e = ts_exact_copy(data, k);
        ppx__mp m = ppx__mp_of(e.p, e.n);
        if (ppx__mp_skip(&m) != PPX_EMALFORMED)
            fail_msg("prefix of %zu/%zu bytes: skip accepted it", k, len);
        assert_ptr_equal(m.p, e.p);
        assert_int_equal(ppx__mp_check_one(e.p, e.n), PPX_EMALFORMED);
        assert_true(ppx_value_format(ts_value_of(&e), out, sizeof out) < 0);
        ppx__env env;
        assert_int_equal(ppx__env_decode(e.p, e.n, &env), PPX_EMALFORMED);
        ts_exact_free(&e);
    }
}

static void test_mpread_every_truncated_prefix_is_an_error(void **state)
{
    unsigned char *body = calloc(1, 70000);
    assert_non_null(body);
    msgpack_packer *pk;
    /* Each scalar form on its own. */
    static const int64_t ints[] = {0, 127, 128, 256, 65536, (int64_t)1 << 32, -1, -33, -129, -32769, INT64_MIN};
    for (size_t k = 0; k < sizeof ints / sizeof ints[0]; k++) {
        msgpack_pack_int64(ts_enc(), ints[k]);
        assert_prefixes_rejected(ts_sb.data, ts_sb.size, 1);
    }
    msgpack_pack_float(ts_enc(), 1.5f);
    assert_prefixes_rejected(ts_sb.data, ts_sb.size, 1);
    msgpack_pack_double(ts_enc(), 0.1);
    assert_prefixes_rejected(ts_sb.data, ts_sb.size, 1);
    static const uint32_t lens[] = {1, 31, 32, 255, 256, 65536};
    for (size_t k = 0; k < sizeof lens / sizeof lens[0]; k++) {
        size_t step = lens[k] > 1000 ? 997 : 1;
        msgpack_pack_str_with_body(ts_enc(), body, lens[k]);
        assert_prefixes_rejected(ts_sb.data, ts_sb.size, step);
        msgpack_pack_bin_with_body(ts_enc(), body, lens[k]);
        assert_prefixes_rejected(ts_sb.data, ts_sb.size, step);
        msgpack_pack_ext_with_body(ts_enc(), body, lens[k], 1);
        assert_prefixes_rejected(ts_sb.data, ts_sb.size, step);
    }
    /* Containers, including the 16- and 32-bit count forms. */
    pk = ts_enc();
    msgpack_pack_map(pk, 3);
    msgpack_pack_str_with_body(pk, "key", 3);
    msgpack_pack_array(pk, 3);
    msgpack_pack_nil(pk);
    msgpack_pack_double(pk, 2.5);
    msgpack_pack_map(pk, 1);
    msgpack_pack_true(pk);
    msgpack_pack_bin_with_body(pk, "\x01\x02", 2);
    msgpack_pack_int(pk, -7);
    msgpack_pack_ext_with_body(pk, "abcd", 4, 3);
    msgpack_pack_uint64(pk, UINT64_MAX);
    msgpack_pack_array(pk, 0);
    assert_prefixes_rejected(ts_sb.data, ts_sb.size, 1);
    pk = ts_enc();
    msgpack_pack_array(pk, 70);
    for (int k = 0; k < 70; k++)
        msgpack_pack_int(pk, k * 1000);
    assert_prefixes_rejected(ts_sb.data, ts_sb.size, 1);
    pk = ts_enc();
    msgpack_pack_map(pk, 17);
    for (int k = 0; k < 17; k++) {
        msgpack_pack_int(pk, k);
        msgpack_pack_str_with_body(pk, "v", 1);
    }
    assert_prefixes_rejected(ts_sb.data, ts_sb.size, 1);
    pk = ts_enc();
    msgpack_pack_array(pk, 65536);
    for (int k = 0; k < 65536; k++)
        msgpack_pack_nil(pk);
    assert_prefixes_rejected(ts_sb.data, ts_sb.size, 4099);
    /* Whole envelopes. */
    void *args;
    size_t args_len;
    assert_int_equal(ppx_pack(&args, &args_len, "isd", 1, "two", 3.0), 0);
    assert_int_equal(ppx__env_pack_call(&ts_sb, 1, 2, 3, "fn", 2, args, args_len), 0);
    assert_prefixes_rejected(ts_sb.data, ts_sb.size, 1);
    assert_int_equal(ppx__env_pack_result(&ts_sb, 1, 2, 3, args, args_len), 0);
    assert_prefixes_rejected(ts_sb.data, ts_sb.size, 1);
    assert_int_equal(ppx__env_pack_error(&ts_sb, 1, 2, 3, "ValueError", "bad", "fn", "x.c:1", 42), 0);
    assert_prefixes_rejected(ts_sb.data, ts_sb.size, 1);
    assert_int_equal(ppx__env_pack_skip(&ts_sb, 1, 2, 3), 0);
    assert_prefixes_rejected(ts_sb.data, ts_sb.size, 1);
    free(args);
    free(body);
}

static void test_mpread_reserved_byte_0xc1_is_malformed(void **state)
{
    static const struct { const char *bytes; size_t len; } samples[] = {
        {"\xc1", 1},
        {"\x92\x01\xc1", 3},
        {"\x81\xc1\x01", 3},
        {"\x81\x01\xc1", 3},
    };
    for (size_t k = 0; k < sizeof samples / sizeof samples[0]; k++) {
        ts_exact e = ts_exact_copy(samples[k].bytes, samples[k].len);
        assert_int_equal(ppx__mp_check_one(e.p, e.n), PPX_EMALFORMED);
        ppx__mp m = ppx__mp_of(e.p, e.n);
        assert_int_equal(ppx__mp_skip(&m), PPX_EMALFORMED);
        assert_ptr_equal(m.p, e.p);
        char out[8];
        assert_true(ppx_value_format(ts_value_of(&e), out, sizeof out) < 0);
        ts_exact_free(&e);
    }
    ts_exact e = ts_exact_copy("\xc1", 1);
    ppx__mp m = ppx__mp_of(e.p, e.n);
    assert_int_equal(ppx__mp_peek(&m), PPX_TYPE_INVALID);
    assert_int_equal(ppx_value_type(ts_value_of(&e)), PPX_TYPE_INVALID);
    for (int r = 0; r < R_COUNT; r++) {
        assert_int_equal(read_with(r, &m), PPX_EMALFORMED);
        assert_ptr_equal(m.p, e.p);
    }
    ts_exact_free(&e);
}

static void test_mpread_lengths_claiming_more_than_the_buffer_are_malformed(void **state)
{
    static const struct { const char *bytes; size_t len; int reader; } samples[] = {
        {"\xdd\xff\xff\xff\xff\x01\x02\x03", 8, R_ARRAY}, /* 2^32-1 elements, 3 bytes */
        {"\xdf\xff\xff\xff\xff\x01\x02\x03", 8, R_MAP},
        {"\xdf\x00\x00\x00\x02\x01\x02\x03", 8, R_MAP},   /* 4 objects, 3 bytes */
        {"\xdb\xff\xff\xff\xff\x01\x02\x03", 8, R_STR},
        {"\xc6\xff\xff\xff\xff\x01\x02\x03", 8, R_BIN},
        {"\xc9\xff\xff\xff\xff\x01\x02\x03", 8, -1},
        {"\x9f\x01\x02\x03", 4, R_ARRAY},
        {"\x8f\x01\x02\x03", 4, R_MAP},                 /* 30 objects, 3 bytes */
        {"\x92\x81\x01", 3, -1},                         /* [{1: ?}, ?] */
    };
    for (size_t k = 0; k < sizeof samples / sizeof samples[0]; k++) {
        ts_exact e = ts_exact_copy(samples[k].bytes, samples[k].len);
        assert_int_equal(ppx__mp_check_one(e.p, e.n), PPX_EMALFORMED);
        ppx__mp m = ppx__mp_of(e.p, e.n);
        assert_int_equal(ppx__mp_skip(&m), PPX_EMALFORMED);
        if (samples[k].reader >= 0) {
            assert_int_equal(read_with(samples[k].reader, &m), PPX_EMALFORMED);
            assert_ptr_equal(m.p, e.p);
        }
        size_t n;
        ppx_value el;
        char out[8];
        if (samples[k].reader == R_ARRAY) {
            assert_int_equal(ppx_value_array_len(ts_value_of(&e), &n), PPX_EMALFORMED);
            assert_int_equal(ppx_value_at(ts_value_of(&e), 0, &el), PPX_EMALFORMED);
        }
        assert_true(ppx_value_format(ts_value_of(&e), out, sizeof out) < 0);
        ts_exact_free(&e);
    }
}

static void test_mpread_skips_100000_levels_of_nesting_without_recursion(void **state)
{
    enum { DEPTH = 100000 };
    unsigned char *deep = malloc(2 * DEPTH + 1);
    assert_non_null(deep);

    /* [[[...[]...]]] */
    memset(deep, 0x91, DEPTH - 1);
    deep[DEPTH - 1] = 0x90;
    ts_exact e = ts_exact_copy(deep, DEPTH);
    assert_int_equal(ppx__mp_check_one(e.p, e.n), 0);
    ppx__mp m = ppx__mp_of(e.p, e.n);
    assert_int_equal(ppx__mp_skip(&m), 0);
    assert_int_equal(ppx__mp_left(&m), 0);
    ppx_value el;
    assert_int_equal(ppx_value_at(ts_value_of(&e), 0, &el), 0);
    assert_ptr_equal(el.data, e.p + 1);
    assert_int_equal(el.len, DEPTH - 1);
    /* Formatting is bounded too: an error, not a stack overflow. */
    char out[32];
    assert_true(ppx_value_format(ts_value_of(&e), out, sizeof out) < 0);
    ts_exact_free(&e);

    /* The same without the innermost element. */
    deep[DEPTH - 1] = 0x91;
    e = ts_exact_copy(deep, DEPTH);
    assert_int_equal(ppx__mp_check_one(e.p, e.n), PPX_EMALFORMED);
    ts_exact_free(&e);
    e = ts_exact_copy(deep, DEPTH - 1);
    assert_int_equal(ppx__mp_check_one(e.p, e.n), PPX_EMALFORMED);
    ts_exact_free(&e);

    /* {0: {0: ... {} ...}} */
    for (size_t k = 0; k < DEPTH; k++) {
        deep[2 * k] = 0x81;
        deep[2 * k + 1] = 0x00;
    }
    deep[2 * DEPTH] = 0x80;
    e = ts_exact_copy(deep, 2 * DEPTH + 1);
    assert_int_equal(ppx__mp_check_one(e.p, e.n), 0);
    ts_exact_free(&e);
    e = ts_exact_copy(deep, 2 * DEPTH);
    assert_int_equal(ppx__mp_check_one(e.p, e.n), PPX_EMALFORMED);
    ts_exact_free(&e);
    free(deep);
}

static void test_mpread_random_bytes_never_crash_the_readers(void **state)
{
    uint64_t s = 0x853c49e6748fea9bull;
    unsigned char bytes[64];
    int well_formed = 0;
    for (int iter = 0; iter < 20000; iter++) {
        size_t len = (size_t)(support_xorshift(&s) % 65);
        for (size_t k = 0; k < len; k++)
            bytes[k] = (unsigned char)support_xorshift(&s);
        if (iter % 4 == 0 && len > 0)
            bytes[0] = (unsigned char)(0x90 | (bytes[0] & 0x0f)); /* start as an array */
        ts_exact e = ts_exact_copy(bytes, len);
        int ok = ppx__mp_check_one(e.p, e.n);
        well_formed += ok == 0;
        ts_check_format_consistent(&e);
        ppx__env env;
        if (ppx__env_decode(e.p, e.n, &env) == 0)
            assert_int_equal(ok, 0);
        ppx_value_type(ts_value_of(&e));
        ppx_value el;
        size_t n;
        if (ppx_value_array_len(ts_value_of(&e), &n) == 0 && n > 0)
            ppx_value_at(ts_value_of(&e), n - 1, &el);
        ts_exact_free(&e);
    }
    /* Some inputs must have been well-formed, or the loop proved little. */
    assert_true(well_formed > 100);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_mpread_type_mismatch_is_etype_and_leaves_the_cursor),
        cmocka_unit_test(test_mpread_truncated_reads_are_malformed_and_leave_the_cursor),
        cmocka_unit_test(test_mpread_every_truncated_prefix_is_an_error),
        cmocka_unit_test(test_mpread_reserved_byte_0xc1_is_malformed),
        cmocka_unit_test(test_mpread_lengths_claiming_more_than_the_buffer_are_malformed),
        cmocka_unit_test(test_mpread_skips_100000_levels_of_nesting_without_recursion),
        cmocka_unit_test(test_mpread_random_bytes_never_crash_the_readers),
    };
    return cmocka_run_group_tests(tests, ts_group_setup, ts_group_teardown);
}
