/* Tests of the bounds-checked msgpack reader (serialize/mpread.c): reading
 * back what msgpack-c's packer wrote (the reference the reader must agree
 * with): integers, floats, strings and bytes, containers and ext. */
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

/* ------------------------------------------------------------------ */
/* mpread: reading back what msgpack-c wrote                           */

enum { W_SMALLEST, W_UNSIGNED, W_FIX8, W_FIX16, W_FIX32, W_FIX64, W_UFIX8, W_UFIX16,
       W_UFIX32, W_UFIX64 };

typedef struct int_case {
    int how;
    int64_t i;  /* the value, for signed forms */
    uint64_t u; /* the value, for unsigned forms */
    uint8_t marker;
    size_t len;
} int_case;

static void pack_int_case(const int_case *c)
{
    msgpack_packer *pk = ts_enc();
    switch (c->how) {
    case W_SMALLEST: msgpack_pack_int64(pk, c->i); break;
    case W_UNSIGNED: msgpack_pack_uint64(pk, c->u); break;
    case W_FIX8: msgpack_pack_fix_int8(pk, (int8_t)c->i); break;
    case W_FIX16: msgpack_pack_fix_int16(pk, (int16_t)c->i); break;
    case W_FIX32: msgpack_pack_fix_int32(pk, (int32_t)c->i); break;
    case W_FIX64: msgpack_pack_fix_int64(pk, c->i); break;
    case W_UFIX8: msgpack_pack_fix_uint8(pk, (uint8_t)c->u); break;
    case W_UFIX16: msgpack_pack_fix_uint16(pk, (uint16_t)c->u); break;
    case W_UFIX32: msgpack_pack_fix_uint32(pk, (uint32_t)c->u); break;
    case W_UFIX64: msgpack_pack_fix_uint64(pk, c->u); break;
    }
}

static void test_mpread_reads_every_integer_boundary_in_each_width(void **state)
{
    static const int_case cases[] = {
        {W_SMALLEST, 0, 0, 0x00, 1},
        {W_SMALLEST, 1, 0, 0x01, 1},
        {W_SMALLEST, 127, 0, 0x7f, 1},
        {W_SMALLEST, 128, 0, 0xcc, 2},
        {W_SMALLEST, 255, 0, 0xcc, 2},
        {W_SMALLEST, 256, 0, 0xcd, 3},
        {W_SMALLEST, 65535, 0, 0xcd, 3},
        {W_SMALLEST, 65536, 0, 0xce, 5},
        {W_SMALLEST, UINT32_MAX, 0, 0xce, 5},
        {W_SMALLEST, (int64_t)UINT32_MAX + 1, 0, 0xcf, 9},
        {W_SMALLEST, INT64_MAX, 0, 0xcf, 9},
        {W_SMALLEST, -1, 0, 0xff, 1},
        {W_SMALLEST, -32, 0, 0xe0, 1},
        {W_SMALLEST, -33, 0, 0xd0, 2},
        {W_SMALLEST, -128, 0, 0xd0, 2},
        {W_SMALLEST, -129, 0, 0xd1, 3},
        {W_SMALLEST, -32768, 0, 0xd1, 3},
        {W_SMALLEST, -32769, 0, 0xd2, 5},
        {W_SMALLEST, INT32_MIN, 0, 0xd2, 5},
        {W_SMALLEST, (int64_t)INT32_MIN - 1, 0, 0xd3, 9},
        {W_SMALLEST, INT64_MIN, 0, 0xd3, 9},
        {W_FIX8, 5, 0, 0xd0, 2},
        {W_FIX8, INT8_MIN, 0, 0xd0, 2},
        {W_FIX8, INT8_MAX, 0, 0xd0, 2},
        {W_FIX16, INT16_MIN, 0, 0xd1, 3},
        {W_FIX16, INT16_MAX, 0, 0xd1, 3},
        {W_FIX32, INT32_MIN, 0, 0xd2, 5},
        {W_FIX32, INT32_MAX, 0, 0xd2, 5},
        {W_FIX64, 5, 0, 0xd3, 9},
        {W_FIX64, INT64_MAX, 0, 0xd3, 9},
        {W_FIX64, INT64_MIN, 0, 0xd3, 9},
        {W_UFIX8, 0, 0, 0xcc, 2},
        {W_UFIX8, 0, UINT8_MAX, 0xcc, 2},
        {W_UFIX16, 0, UINT16_MAX, 0xcd, 3},
        {W_UFIX32, 0, UINT32_MAX, 0xce, 5},
        {W_UFIX64, 0, 7, 0xcf, 9},
        {W_UFIX64, 0, (uint64_t)INT64_MAX + 1, 0xcf, 9},
        {W_UFIX64, 0, UINT64_MAX, 0xcf, 9},
        {W_UNSIGNED, 0, UINT64_MAX, 0xcf, 9},
        {W_UNSIGNED, 0, (uint64_t)INT64_MAX + 1, 0xcf, 9},
    };
    for (size_t k = 0; k < sizeof cases / sizeof cases[0]; k++) {
        const int_case *c = &cases[k];
        bool is_unsigned = c->how == W_UNSIGNED || c->how >= W_UFIX8;
        bool negative = !is_unsigned && c->i < 0;
        bool fits_int = !is_unsigned || c->u <= (uint64_t)INT64_MAX;
        pack_int_case(c);
        ts_exact e = ts_exact_sb();
        if (e.n != c->len || e.p[0] != c->marker)
            fail_msg("case %zu: encoded as %zu bytes starting 0x%02x", k, e.n, e.p[0]);

        ppx__mp m = ppx__mp_of(e.p, e.n);
        assert_int_equal(ppx__mp_peek(&m), PPX_TYPE_INT);
        int64_t i = 0;
        uint64_t u = 0;
        double d = 0;
        if (fits_int) {
            assert_int_equal(ppx__mp_int(&m, &i), 0);
            assert_true(i == (is_unsigned ? (int64_t)c->u : c->i));
            assert_int_equal(ppx__mp_left(&m), 0);
        } else {
            /* int of a value above INT64_MAX is out of range */
            assert_int_equal(ppx__mp_int(&m, &i), PPX_ERANGE);
            assert_ptr_equal(m.p, e.p);
        }
        m = ppx__mp_of(e.p, e.n);
        if (negative) {
            /* uint of a negative value is out of range */
            assert_int_equal(ppx__mp_uint(&m, &u), PPX_ERANGE);
            assert_ptr_equal(m.p, e.p);
        } else {
            assert_int_equal(ppx__mp_uint(&m, &u), 0);
            assert_true(u == (is_unsigned ? c->u : (uint64_t)c->i));
            assert_int_equal(ppx__mp_left(&m), 0);
        }
        m = ppx__mp_of(e.p, e.n);
        assert_int_equal(ppx__mp_double(&m, &d), 0);
        assert_true(d == (is_unsigned ? (double)c->u : (double)c->i));
        assert_int_equal(ppx__mp_left(&m), 0);
        assert_int_equal(ppx__mp_check_one(e.p, e.n), 0);
        ts_exact_free(&e);
    }
}

static void test_mpread_reads_float32_and_float64_exactly(void **state)
{
    static const float fs[] = {1.5f, -0.0f, 0.1f, FLT_MAX, -FLT_MIN, 1e-45f, INFINITY, NAN};
    for (size_t k = 0; k < sizeof fs / sizeof fs[0]; k++) {
        msgpack_pack_float(ts_enc(), fs[k]);
        ts_exact e = ts_exact_sb();
        assert_int_equal(e.n, 5);
        assert_int_equal(e.p[0], 0xca);
        ppx__mp m = ppx__mp_of(e.p, e.n);
        assert_int_equal(ppx__mp_peek(&m), PPX_TYPE_FLOAT);
        double d;
        assert_int_equal(ppx__mp_double(&m, &d), 0);
        assert_int_equal(ppx__mp_left(&m), 0);
        double want = fs[k];
        if (isnan(want))
            assert_true(isnan(d));
        else
            assert_memory_equal(&d, &want, sizeof d);
        ts_exact_free(&e);
    }
    static const double ds[] = {0.1, -2.5, 1.0, -0.0, DBL_MAX, DBL_MIN, 4.9e-324, -INFINITY, NAN};
    for (size_t k = 0; k < sizeof ds / sizeof ds[0]; k++) {
        msgpack_pack_double(ts_enc(), ds[k]);
        ts_exact e = ts_exact_sb();
        assert_int_equal(e.n, 9);
        assert_int_equal(e.p[0], 0xcb);
        ppx__mp m = ppx__mp_of(e.p, e.n);
        double d;
        assert_int_equal(ppx__mp_double(&m, &d), 0);
        assert_int_equal(ppx__mp_left(&m), 0);
        if (isnan(ds[k]))
            assert_true(isnan(d));
        else
            assert_memory_equal(&d, &ds[k], sizeof d);
        /* a float is not an integer */
        m = ppx__mp_of(e.p, e.n);
        int64_t i;
        assert_int_equal(ppx__mp_int(&m, &i), PPX_ETYPE);
        ts_exact_free(&e);
    }
}

static void test_mpread_reads_str_and_bin_of_every_length_class(void **state)
{
    static const struct { uint32_t len; uint8_t str_marker, bin_marker; size_t hlen_str, hlen_bin; } cases[] = {
        {0, 0xa0, 0xc4, 1, 2},       {31, 0xbf, 0xc4, 1, 2},     {32, 0xd9, 0xc4, 2, 2},
        {255, 0xd9, 0xc4, 2, 2},     {256, 0xda, 0xc5, 3, 3},    {65535, 0xda, 0xc5, 3, 3},
        {65536, 0xdb, 0xc6, 5, 5},
    };
    unsigned char *body = malloc(65536);
    assert_non_null(body);
    for (size_t i = 0; i < 65536; i++)
        body[i] = (unsigned char)(i * 13 + 1);
    for (size_t k = 0; k < sizeof cases / sizeof cases[0]; k++) {
        uint32_t len = cases[k].len;

        msgpack_pack_str_with_body(ts_enc(), body, len);
        ts_exact e = ts_exact_sb();
        assert_int_equal(e.n, cases[k].hlen_str + len);
        assert_int_equal(e.p[0], cases[k].str_marker);
        ppx__mp m = ppx__mp_of(e.p, e.n);
        assert_int_equal(ppx__mp_peek(&m), PPX_TYPE_STR);
        const char *s = NULL;
        uint32_t n = 1;
        assert_int_equal(ppx__mp_str(&m, &s, &n), 0);
        assert_int_equal(n, len);
        assert_ptr_equal(s, e.p + cases[k].hlen_str);
        assert_memory_equal(s, body, len);
        assert_int_equal(ppx__mp_left(&m), 0);
        const void *b;
        m = ppx__mp_of(e.p, e.n);
        assert_int_equal(ppx__mp_bin(&m, &b, &n), PPX_ETYPE);
        assert_ptr_equal(m.p, e.p);
        ts_exact_free(&e);

        msgpack_pack_bin_with_body(ts_enc(), body, len);
        e = ts_exact_sb();
        assert_int_equal(e.n, cases[k].hlen_bin + len);
        assert_int_equal(e.p[0], cases[k].bin_marker);
        m = ppx__mp_of(e.p, e.n);
        assert_int_equal(ppx__mp_peek(&m), PPX_TYPE_BIN);
        b = NULL;
        n = 1;
        assert_int_equal(ppx__mp_bin(&m, &b, &n), 0);
        assert_int_equal(n, len);
        assert_ptr_equal(b, e.p + cases[k].hlen_bin);
        assert_memory_equal(b, body, len);
        assert_int_equal(ppx__mp_left(&m), 0);
        m = ppx__mp_of(e.p, e.n);
        assert_int_equal(ppx__mp_str(&m, &s, &n), PPX_ETYPE);
        assert_ptr_equal(m.p, e.p);
        ts_exact_free(&e);
    }
    free(body);
}

static void test_mpread_walks_nested_arrays_and_maps(void **state)
{
    /* [1, [2, {"a": [nil, true, false], "b": {}}], {}, "x", []] */
    msgpack_packer *pk = ts_enc();
    msgpack_pack_array(pk, 5);
    msgpack_pack_int(pk, 1);
    msgpack_pack_array(pk, 2);
    msgpack_pack_int(pk, 2);
    msgpack_pack_map(pk, 2);
    msgpack_pack_str_with_body(pk, "a", 1);
    msgpack_pack_array(pk, 3);
    msgpack_pack_nil(pk);
    msgpack_pack_true(pk);
    msgpack_pack_false(pk);
    msgpack_pack_str_with_body(pk, "b", 1);
    msgpack_pack_map(pk, 0);
    msgpack_pack_map(pk, 0);
    msgpack_pack_str_with_body(pk, "x", 1);
    msgpack_pack_array(pk, 0);
    ts_exact e = ts_exact_sb();
    assert_int_equal(ppx__mp_check_one(e.p, e.n), 0);

    ppx__mp m = ppx__mp_of(e.p, e.n);
    uint32_t n;
    int64_t i;
    bool b;
    const char *s;
    uint32_t slen;
    assert_int_equal(ppx__mp_array(&m, &n), 0);
    assert_int_equal(n, 5);
    assert_int_equal(ppx__mp_int(&m, &i), 0);
    assert_int_equal(i, 1);
    assert_int_equal(ppx__mp_array(&m, &n), 0);
    assert_int_equal(n, 2);
    assert_int_equal(ppx__mp_int(&m, &i), 0);
    assert_int_equal(i, 2);
    assert_int_equal(ppx__mp_map(&m, &n), 0);
    assert_int_equal(n, 2);
    assert_int_equal(ppx__mp_str(&m, &s, &slen), 0);
    assert_int_equal(slen, 1);
    assert_int_equal(s[0], 'a');
    assert_int_equal(ppx__mp_array(&m, &n), 0);
    assert_int_equal(n, 3);
    assert_int_equal(ppx__mp_nil(&m), 0);
    assert_int_equal(ppx__mp_bool(&m, &b), 0);
    assert_true(b);
    assert_int_equal(ppx__mp_bool(&m, &b), 0);
    assert_false(b);
    assert_int_equal(ppx__mp_str(&m, &s, &slen), 0);
    assert_int_equal(s[0], 'b');
    assert_int_equal(ppx__mp_map(&m, &n), 0);
    assert_int_equal(n, 0);
    assert_int_equal(ppx__mp_map(&m, &n), 0);
    assert_int_equal(n, 0);
    /* skip steps over whole objects */
    const uint8_t *before = m.p;
    assert_int_equal(ppx__mp_skip(&m), 0);
    assert_int_equal(m.p - before, 2);
    assert_int_equal(ppx__mp_array(&m, &n), 0);
    assert_int_equal(n, 0);
    assert_int_equal(ppx__mp_left(&m), 0);

    /* And skip over the outer array takes it all. */
    m = ppx__mp_of(e.p, e.n);
    assert_int_equal(ppx__mp_skip(&m), 0);
    assert_int_equal(ppx__mp_left(&m), 0);
    ts_exact_free(&e);

    /* 16 and 65536 elements use the array16/array32 and map16/map32 forms. */
    static const uint32_t counts[] = {15, 16, 65535, 65536};
    for (size_t k = 0; k < 4; k++) {
        pk = ts_enc();
        msgpack_pack_array(pk, counts[k]);
        for (uint32_t j = 0; j < counts[k]; j++)
            msgpack_pack_map(pk, 0);
        msgpack_pack_map(pk, counts[k]);
        for (uint32_t j = 0; j < counts[k]; j++) {
            msgpack_pack_nil(pk);
            msgpack_pack_uint32(pk, j);
        }
        e = ts_exact_sb();
        m = ppx__mp_of(e.p, e.n);
        assert_int_equal(ppx__mp_array(&m, &n), 0);
        assert_int_equal(n, counts[k]);
        m.p += n;
        assert_int_equal(ppx__mp_map(&m, &n), 0);
        assert_int_equal(n, counts[k]);
        m = ppx__mp_of(e.p, e.n);
        assert_int_equal(ppx__mp_skip(&m), 0);
        assert_int_equal(ppx__mp_skip(&m), 0);
        assert_int_equal(ppx__mp_left(&m), 0);
        ts_exact_free(&e);
    }
}

static void test_mpread_skips_ext_of_every_length_class(void **state)
{
    static const struct { uint32_t len; uint8_t marker; size_t hlen; } cases[] = {
        {1, 0xd4, 2},   {2, 0xd5, 2},   {4, 0xd6, 2},     {8, 0xd7, 2},     {16, 0xd8, 2},
        {0, 0xc7, 3},   {3, 0xc7, 3},   {255, 0xc7, 3},   {256, 0xc8, 4},   {65536, 0xc9, 6},
    };
    unsigned char *body = calloc(1, 65536);
    assert_non_null(body);
    for (size_t k = 0; k < sizeof cases / sizeof cases[0]; k++) {
        msgpack_packer *pk = ts_enc();
        msgpack_pack_array(pk, 2);
        msgpack_pack_ext_with_body(pk, body, cases[k].len, 42);
        msgpack_pack_int(pk, 7);
        ts_exact e = ts_exact_sb();
        assert_int_equal(e.n, 1 + cases[k].hlen + cases[k].len + 1);
        assert_int_equal(e.p[1], cases[k].marker);
        assert_int_equal(ppx__mp_check_one(e.p, e.n), 0);
        ppx__mp m = ppx__mp_of(e.p, e.n);
        uint32_t n;
        assert_int_equal(ppx__mp_array(&m, &n), 0);
        assert_int_equal(ppx__mp_peek(&m), PPX_TYPE_EXT);
        ppx_value ev = {m.p, e.n - 2};
        assert_int_equal(ppx_value_type(ev), PPX_TYPE_EXT);
        assert_int_equal(ppx__mp_skip(&m), 0);
        int64_t i;
        assert_int_equal(ppx__mp_int(&m, &i), 0);
        assert_int_equal(i, 7);
        assert_int_equal(ppx__mp_left(&m), 0);
        ts_exact_free(&e);
    }
    free(body);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_mpread_reads_every_integer_boundary_in_each_width),
        cmocka_unit_test(test_mpread_reads_float32_and_float64_exactly),
        cmocka_unit_test(test_mpread_reads_str_and_bin_of_every_length_class),
        cmocka_unit_test(test_mpread_walks_nested_arrays_and_maps),
        cmocka_unit_test(test_mpread_skips_ext_of_every_length_class),
    };
    return cmocka_run_group_tests(tests, ts_group_setup, ts_group_teardown);
}
