/* Tests of the bounds-checked msgpack reader (serialize/mpread.c): reading
 * back what msgpack-c's packer wrote (the reference the reader must agree
 * with), and hostile input: truncation, reserved bytes, lying lengths, deep
 * nesting and random bytes. The hostile-input tests also check that
 * ppx_value_format and ppx__env_decode reject what the reader rejects. */
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
        size_t len = (size_t)(ts_xorshift(&s) % 65);
        for (size_t k = 0; k < len; k++)
            bytes[k] = (unsigned char)ts_xorshift(&s);
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
        cmocka_unit_test(test_mpread_reads_every_integer_boundary_in_each_width),
        cmocka_unit_test(test_mpread_reads_float32_and_float64_exactly),
        cmocka_unit_test(test_mpread_reads_str_and_bin_of_every_length_class),
        cmocka_unit_test(test_mpread_walks_nested_arrays_and_maps),
        cmocka_unit_test(test_mpread_skips_ext_of_every_length_class),
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
