/* Tests of the msgpack reader (serialize/mpread.c), the envelopes
 * (serialize/envelope.c), the ppx_value views and ppx_pack. Encodings are
 * produced with msgpack-c's packer, the reference the reader must agree
 * with. Untrusted input is always copied into a heap block of exactly its
 * length first, so the sanitizer build catches any read past the end. */
#include "support.h"
#include "serialize/envelope.h"
#include "serialize/mpread.h"

#include <float.h>
#include <limits.h>
#include <math.h>
#include <msgpack.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static msgpack_sbuffer g_sb;
static msgpack_packer g_pk;

/* Starts a new encoding in g_sb; pack into g_pk. */
static msgpack_packer *enc(void)
{
    msgpack_sbuffer_clear(&g_sb);
    return &g_pk;
}

/* A heap copy of exactly n bytes (for n == 0, a pointer just past a
 * one-byte block), so that any read outside [p, p+n) is a heap overflow. */
typedef struct exact {
    unsigned char *base;
    unsigned char *p;
    size_t n;
} exact;

static exact exact_copy(const void *data, size_t n)
{
    exact e;
    e.base = malloc(n ? n : 1);
    assert_non_null(e.base);
    if (n)
        memcpy(e.base, data, n);
    e.p = n ? e.base : e.base + 1;
    e.n = n;
    return e;
}

static exact exact_sb(void)
{
    return exact_copy(g_sb.data, g_sb.size);
}

static void exact_free(exact *e)
{
    free(e->base);
    e->base = e->p = NULL;
}

static ppx_value value_of(const exact *e)
{
    ppx_value v = {e->p, e->n};
    return v;
}

static uint64_t xorshift(uint64_t *s)
{
    uint64_t x = *s;
    x ^= x >> 12;
    x ^= x << 25;
    x ^= x >> 27;
    *s = x;
    return x * 0x2545f4914f6cdd1dull;
}

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
    msgpack_packer *pk = enc();
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
        exact e = exact_sb();
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
        exact_free(&e);
    }
}

static void test_mpread_reads_float32_and_float64_exactly(void **state)
{
    static const float fs[] = {1.5f, -0.0f, 0.1f, FLT_MAX, -FLT_MIN, 1e-45f, INFINITY, NAN};
    for (size_t k = 0; k < sizeof fs / sizeof fs[0]; k++) {
        msgpack_pack_float(enc(), fs[k]);
        exact e = exact_sb();
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
        exact_free(&e);
    }
    static const double ds[] = {0.1, -2.5, 1.0, -0.0, DBL_MAX, DBL_MIN, 4.9e-324, -INFINITY, NAN};
    for (size_t k = 0; k < sizeof ds / sizeof ds[0]; k++) {
        msgpack_pack_double(enc(), ds[k]);
        exact e = exact_sb();
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
        exact_free(&e);
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

        msgpack_pack_str_with_body(enc(), body, len);
        exact e = exact_sb();
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
        exact_free(&e);

        msgpack_pack_bin_with_body(enc(), body, len);
        e = exact_sb();
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
        exact_free(&e);
    }
    free(body);
}

static void test_mpread_walks_nested_arrays_and_maps(void **state)
{
    /* [1, [2, {"a": [nil, true, false], "b": {}}], {}, "x", []] */
    msgpack_packer *pk = enc();
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
    exact e = exact_sb();
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
    exact_free(&e);

    /* 16 and 65536 elements use the array16/array32 and map16/map32 forms. */
    static const uint32_t counts[] = {15, 16, 65535, 65536};
    for (size_t k = 0; k < 4; k++) {
        pk = enc();
        msgpack_pack_array(pk, counts[k]);
        for (uint32_t j = 0; j < counts[k]; j++)
            msgpack_pack_map(pk, 0);
        msgpack_pack_map(pk, counts[k]);
        for (uint32_t j = 0; j < counts[k]; j++) {
            msgpack_pack_nil(pk);
            msgpack_pack_uint32(pk, j);
        }
        e = exact_sb();
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
        exact_free(&e);
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
        msgpack_packer *pk = enc();
        msgpack_pack_array(pk, 2);
        msgpack_pack_ext_with_body(pk, body, cases[k].len, 42);
        msgpack_pack_int(pk, 7);
        exact e = exact_sb();
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
        exact_free(&e);
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
        exact e = exact_copy(samples[k].bytes, samples[k].len);
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
        exact_free(&e);
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
        exact e = exact_copy(samples[k].bytes, samples[k].len);
        ppx__mp m = ppx__mp_of(e.p, e.n);
        int rc = read_with(samples[k].reader, &m);
        if (rc != PPX_EMALFORMED)
            fail_msg("sample %zu: %d, expected PPX_EMALFORMED", k, rc);
        assert_ptr_equal(m.p, e.p);
        exact_free(&e);
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
        exact e = exact_copy(data, k);
        ppx__mp m = ppx__mp_of(e.p, e.n);
        if (ppx__mp_skip(&m) != PPX_EMALFORMED)
            fail_msg("prefix of %zu/%zu bytes: skip accepted it", k, len);
        assert_ptr_equal(m.p, e.p);
        assert_int_equal(ppx__mp_check_one(e.p, e.n), PPX_EMALFORMED);
        assert_true(ppx_value_format(value_of(&e), out, sizeof out) < 0);
        ppx__env env;
        assert_int_equal(ppx__env_decode(e.p, e.n, &env), PPX_EMALFORMED);
        exact_free(&e);
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
        msgpack_pack_int64(enc(), ints[k]);
        assert_prefixes_rejected(g_sb.data, g_sb.size, 1);
    }
    msgpack_pack_float(enc(), 1.5f);
    assert_prefixes_rejected(g_sb.data, g_sb.size, 1);
    msgpack_pack_double(enc(), 0.1);
    assert_prefixes_rejected(g_sb.data, g_sb.size, 1);
    static const uint32_t lens[] = {1, 31, 32, 255, 256, 65536};
    for (size_t k = 0; k < sizeof lens / sizeof lens[0]; k++) {
        size_t step = lens[k] > 1000 ? 997 : 1;
        msgpack_pack_str_with_body(enc(), body, lens[k]);
        assert_prefixes_rejected(g_sb.data, g_sb.size, step);
        msgpack_pack_bin_with_body(enc(), body, lens[k]);
        assert_prefixes_rejected(g_sb.data, g_sb.size, step);
        msgpack_pack_ext_with_body(enc(), body, lens[k], 1);
        assert_prefixes_rejected(g_sb.data, g_sb.size, step);
    }
    /* Containers, including the 16- and 32-bit count forms. */
    pk = enc();
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
    assert_prefixes_rejected(g_sb.data, g_sb.size, 1);
    pk = enc();
    msgpack_pack_array(pk, 70);
    for (int k = 0; k < 70; k++)
        msgpack_pack_int(pk, k * 1000);
    assert_prefixes_rejected(g_sb.data, g_sb.size, 1);
    pk = enc();
    msgpack_pack_map(pk, 17);
    for (int k = 0; k < 17; k++) {
        msgpack_pack_int(pk, k);
        msgpack_pack_str_with_body(pk, "v", 1);
    }
    assert_prefixes_rejected(g_sb.data, g_sb.size, 1);
    pk = enc();
    msgpack_pack_array(pk, 65536);
    for (int k = 0; k < 65536; k++)
        msgpack_pack_nil(pk);
    assert_prefixes_rejected(g_sb.data, g_sb.size, 4099);
    /* Whole envelopes. */
    void *args;
    size_t args_len;
    assert_int_equal(ppx_pack(&args, &args_len, "isd", 1, "two", 3.0), 0);
    assert_int_equal(ppx__env_pack_call(&g_sb, 1, 2, 3, "fn", 2, args, args_len), 0);
    assert_prefixes_rejected(g_sb.data, g_sb.size, 1);
    assert_int_equal(ppx__env_pack_result(&g_sb, 1, 2, 3, args, args_len), 0);
    assert_prefixes_rejected(g_sb.data, g_sb.size, 1);
    assert_int_equal(ppx__env_pack_error(&g_sb, 1, 2, 3, "ValueError", "bad", "fn", "x.c:1", 42), 0);
    assert_prefixes_rejected(g_sb.data, g_sb.size, 1);
    assert_int_equal(ppx__env_pack_skip(&g_sb, 1, 2, 3), 0);
    assert_prefixes_rejected(g_sb.data, g_sb.size, 1);
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
        exact e = exact_copy(samples[k].bytes, samples[k].len);
        assert_int_equal(ppx__mp_check_one(e.p, e.n), PPX_EMALFORMED);
        ppx__mp m = ppx__mp_of(e.p, e.n);
        assert_int_equal(ppx__mp_skip(&m), PPX_EMALFORMED);
        assert_ptr_equal(m.p, e.p);
        char out[8];
        assert_true(ppx_value_format(value_of(&e), out, sizeof out) < 0);
        exact_free(&e);
    }
    exact e = exact_copy("\xc1", 1);
    ppx__mp m = ppx__mp_of(e.p, e.n);
    assert_int_equal(ppx__mp_peek(&m), PPX_TYPE_INVALID);
    assert_int_equal(ppx_value_type(value_of(&e)), PPX_TYPE_INVALID);
    for (int r = 0; r < R_COUNT; r++) {
        assert_int_equal(read_with(r, &m), PPX_EMALFORMED);
        assert_ptr_equal(m.p, e.p);
    }
    exact_free(&e);
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
        exact e = exact_copy(samples[k].bytes, samples[k].len);
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
            assert_int_equal(ppx_value_array_len(value_of(&e), &n), PPX_EMALFORMED);
            assert_int_equal(ppx_value_at(value_of(&e), 0, &el), PPX_EMALFORMED);
        }
        assert_true(ppx_value_format(value_of(&e), out, sizeof out) < 0);
        exact_free(&e);
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
    exact e = exact_copy(deep, DEPTH);
    assert_int_equal(ppx__mp_check_one(e.p, e.n), 0);
    ppx__mp m = ppx__mp_of(e.p, e.n);
    assert_int_equal(ppx__mp_skip(&m), 0);
    assert_int_equal(ppx__mp_left(&m), 0);
    ppx_value el;
    assert_int_equal(ppx_value_at(value_of(&e), 0, &el), 0);
    assert_ptr_equal(el.data, e.p + 1);
    assert_int_equal(el.len, DEPTH - 1);
    /* Formatting is bounded too: an error, not a stack overflow. */
    char out[32];
    assert_true(ppx_value_format(value_of(&e), out, sizeof out) < 0);
    exact_free(&e);

    /* The same without the innermost element. */
    deep[DEPTH - 1] = 0x91;
    e = exact_copy(deep, DEPTH);
    assert_int_equal(ppx__mp_check_one(e.p, e.n), PPX_EMALFORMED);
    exact_free(&e);
    e = exact_copy(deep, DEPTH - 1);
    assert_int_equal(ppx__mp_check_one(e.p, e.n), PPX_EMALFORMED);
    exact_free(&e);

    /* {0: {0: ... {} ...}} */
    for (size_t k = 0; k < DEPTH; k++) {
        deep[2 * k] = 0x81;
        deep[2 * k + 1] = 0x00;
    }
    deep[2 * DEPTH] = 0x80;
    e = exact_copy(deep, 2 * DEPTH + 1);
    assert_int_equal(ppx__mp_check_one(e.p, e.n), 0);
    exact_free(&e);
    e = exact_copy(deep, 2 * DEPTH);
    assert_int_equal(ppx__mp_check_one(e.p, e.n), PPX_EMALFORMED);
    exact_free(&e);
    free(deep);
}

static void check_format_consistent(const exact *e)
{
    int ok = ppx__mp_check_one(e->p, e->n);
    char out[24];
    memset(out, 'Z', sizeof out);
    int full = ppx_value_format(value_of(e), NULL, 0);
    int rc = ppx_value_format(value_of(e), out, sizeof out);
    assert_int_equal(rc, full);
    if (ok == 0) {
        /* Within 64 bytes nesting stays under the format's depth bound. */
        assert_true(rc >= 0);
        assert_int_equal(strlen(out), (size_t)rc < sizeof out ? (size_t)rc : sizeof out - 1);
    } else {
        assert_int_equal(rc, ok);
    }
}

static void test_mpread_random_bytes_never_crash_the_readers(void **state)
{
    uint64_t s = 0x853c49e6748fea9bull;
    unsigned char bytes[64];
    int well_formed = 0;
    for (int iter = 0; iter < 20000; iter++) {
        size_t len = (size_t)(xorshift(&s) % 65);
        for (size_t k = 0; k < len; k++)
            bytes[k] = (unsigned char)xorshift(&s);
        if (iter % 4 == 0 && len > 0)
            bytes[0] = (unsigned char)(0x90 | (bytes[0] & 0x0f)); /* start as an array */
        exact e = exact_copy(bytes, len);
        int ok = ppx__mp_check_one(e.p, e.n);
        well_formed += ok == 0;
        check_format_consistent(&e);
        ppx__env env;
        if (ppx__env_decode(e.p, e.n, &env) == 0)
            assert_int_equal(ok, 0);
        ppx_value_type(value_of(&e));
        ppx_value el;
        size_t n;
        if (ppx_value_array_len(value_of(&e), &n) == 0 && n > 0)
            ppx_value_at(value_of(&e), n - 1, &el);
        exact_free(&e);
    }
    /* Some inputs must have been well-formed, or the loop proved little. */
    assert_true(well_formed > 100);
}

/* Frames with a few bytes flipped: decode must either reject them or
 * return fields that lie inside the frame. */
static void test_envelope_mutated_frames_never_crash_decode(void **state)
{
    void *args;
    size_t args_len;
    assert_int_equal(ppx_pack(&args, &args_len, "isB", 7, "seven", "\x07", (size_t)1), 0);
    uint64_t s = 0x2b992ddfa23249d6ull;
    unsigned char frame[128];
    int decoded = 0;
    for (int iter = 0; iter < 20000; iter++) {
        switch (iter % 4) {
        case 0: ppx__env_pack_call(&g_sb, 9, 1, 2, "function", 8, args, args_len); break;
        case 1: ppx__env_pack_result(&g_sb, 9, 1, 2, args, args_len); break;
        case 2: ppx__env_pack_error(&g_sb, 9, 1, 2, "E", "msg", "f", "w", -3); break;
        case 3: ppx__env_pack_skip(&g_sb, 9, 1, 2); break;
        }
        /* Under 64 bytes, so nesting stays within the format's bound. */
        assert_true(g_sb.size <= 64 && g_sb.size <= sizeof frame);
        size_t len = g_sb.size;
        memcpy(frame, g_sb.data, len);
        int flips = 1 + (int)(xorshift(&s) % 3);
        for (int f = 0; f < flips; f++) {
            uint64_t x = xorshift(&s);
            frame[x % len] = (unsigned char)(x >> 32);
        }
        if (xorshift(&s) % 4 == 0)
            len = (size_t)(xorshift(&s) % (len + 1));
        exact e = exact_copy(frame, len);
        ppx__env env;
        if (ppx__env_decode(e.p, e.n, &env) == 0) {
            decoded++;
            assert_int_equal(ppx__mp_check_one(e.p, e.n), 0);
            assert_true(env.head_ok);
            const unsigned char *lo = e.p, *hi = e.p + e.n;
            if (env.kind == PPX__ENV_CALL || env.kind == PPX__ENV_RESULT)
                assert_true((const unsigned char *)env.payload.data >= lo &&
                            (const unsigned char *)env.payload.data + env.payload.len <= hi);
            if (env.kind == PPX__ENV_CALL || env.kind == PPX__ENV_ERROR)
                assert_true((const unsigned char *)env.function.p >= lo &&
                            (const unsigned char *)env.function.p + env.function.len <= hi);
        }
        check_format_consistent(&e);
        exact_free(&e);
    }
    assert_true(decoded > 0);
    free(args);
}

/* ------------------------------------------------------------------ */
/* Envelopes                                                           */

static void assert_str(ppx__str s, const char *want)
{
    assert_int_equal(s.len, strlen(want));
    assert_memory_equal(s.p, want, s.len);
}

static void test_envelope_call_round_trips_every_field(void **state)
{
    void *args;
    size_t args_len;
    assert_int_equal(ppx_pack(&args, &args_len, "is", 2, "three"), 0);
    static const struct { uint64_t id; uint32_t slot, seq; } heads[] = {
        {0, 0, 0}, {0x0123456789abcdefull, 7, 0xfffffffeu}, {UINT64_MAX, UINT32_MAX, UINT32_MAX},
    };
    for (size_t k = 0; k < 3; k++) {
        assert_int_equal(ppx__env_pack_call(&g_sb, heads[k].id, heads[k].slot, heads[k].seq,
                                            "add", 3, args, args_len), 0);
        exact e = exact_sb();
        ppx__env env;
        assert_int_equal(ppx__env_decode(e.p, e.n, &env), 0);
        assert_int_equal(env.kind, PPX__ENV_CALL);
        assert_true(env.head_ok);
        assert_true(env.task_id == heads[k].id);
        assert_int_equal(env.slot, heads[k].slot);
        assert_int_equal(env.seq, heads[k].seq);
        assert_str(env.function, "add");
        assert_int_equal(env.payload.len, args_len);
        assert_memory_equal(env.payload.data, args, args_len);
        exact_free(&e);
    }
    free(args);
}

static void test_envelope_result_round_trips_every_field(void **state)
{
    msgpack_packer *pk = enc();
    msgpack_pack_map(pk, 1);
    msgpack_pack_str_with_body(pk, "k", 1);
    msgpack_pack_array(pk, 2);
    msgpack_pack_double(pk, 0.5);
    msgpack_pack_nil(pk);
    exact value = exact_sb();
    assert_int_equal(ppx__env_pack_result(&g_sb, 77, 3, 4, value.p, value.n), 0);
    exact e = exact_sb();
    ppx__env env;
    assert_int_equal(ppx__env_decode(e.p, e.n, &env), 0);
    assert_int_equal(env.kind, PPX__ENV_RESULT);
    assert_true(env.head_ok);
    assert_int_equal(env.task_id, 77);
    assert_int_equal(env.slot, 3);
    assert_int_equal(env.seq, 4);
    assert_int_equal(env.payload.len, value.n);
    assert_memory_equal(env.payload.data, value.p, value.n);
    exact_free(&e);

    /* Any single value will do, e.g. nil. */
    assert_int_equal(ppx__env_pack_result(&g_sb, 78, 0, 0, "\xc0", 1), 0);
    e = exact_sb();
    assert_int_equal(ppx__env_decode(e.p, e.n, &env), 0);
    assert_int_equal(env.payload.len, 1);
    assert_int_equal(ppx_value_type(env.payload), PPX_TYPE_NIL);
    exact_free(&e);
    exact_free(&value);
}

static void test_envelope_error_round_trips_every_field(void **state)
{
    assert_int_equal(ppx__env_pack_error(&g_sb, 5, 6, 7, "ValueError", "bad value 3",
                                         "parse", "parse.c:42", 12345), 0);
    exact e = exact_sb();
    ppx__env env;
    assert_int_equal(ppx__env_decode(e.p, e.n, &env), 0);
    assert_int_equal(env.kind, PPX__ENV_ERROR);
    assert_true(env.head_ok);
    assert_int_equal(env.task_id, 5);
    assert_int_equal(env.slot, 6);
    assert_int_equal(env.seq, 7);
    assert_str(env.type, "ValueError");
    assert_str(env.message, "bad value 3");
    assert_str(env.function, "parse");
    assert_str(env.where, "parse.c:42");
    assert_int_equal(env.pid, 12345);
    exact_free(&e);

    /* NULL strings travel as "", a negative pid survives. */
    assert_int_equal(ppx__env_pack_error(&g_sb, 1, 0, 0, NULL, NULL, NULL, NULL, -1), 0);
    e = exact_sb();
    assert_int_equal(ppx__env_decode(e.p, e.n, &env), 0);
    assert_str(env.type, "");
    assert_str(env.message, "");
    assert_str(env.function, "");
    assert_str(env.where, "");
    assert_int_equal(env.pid, -1);
    exact_free(&e);

    /* Over-long strings are cut so the frame still decodes. */
    char *long_msg = malloc(10001);
    assert_non_null(long_msg);
    memset(long_msg, 'm', 10000);
    long_msg[10000] = '\0';
    char long_name[400];
    memset(long_name, 'n', sizeof long_name - 1);
    long_name[sizeof long_name - 1] = '\0';
    assert_int_equal(ppx__env_pack_error(&g_sb, 2, 0, 0, long_name, long_msg, long_name,
                                         long_name, 1), 0);
    e = exact_sb();
    assert_int_equal(ppx__env_decode(e.p, e.n, &env), 0);
    assert_int_equal(env.type.len, PPX__NAME_MAX);
    assert_int_equal(env.message.len, PPX__MESSAGE_MAX);
    assert_int_equal(env.function.len, PPX__NAME_MAX);
    assert_int_equal(env.where.len, PPX__NAME_MAX);
    assert_memory_equal(env.message.p, long_msg, PPX__MESSAGE_MAX);
    exact_free(&e);
    free(long_msg);
}

static void test_envelope_skip_round_trips_every_field(void **state)
{
    assert_int_equal(ppx__env_pack_skip(&g_sb, UINT64_MAX - 1, 9, 10), 0);
    exact e = exact_sb();
    ppx__env env;
    assert_int_equal(ppx__env_decode(e.p, e.n, &env), 0);
    assert_int_equal(env.kind, PPX__ENV_SKIP);
    assert_true(env.head_ok);
    assert_true(env.task_id == UINT64_MAX - 1);
    assert_int_equal(env.slot, 9);
    assert_int_equal(env.seq, 10);
    exact_free(&e);
}

/* Packs one frame of the given kind with the given header. */
static void pack_kind(int kind, uint64_t id, uint32_t slot, uint32_t seq)
{
    static const unsigned char args[] = {0x92, 0x01, 0xa1, 'x'};
    switch (kind) {
    case PPX__ENV_CALL:
        assert_int_equal(ppx__env_pack_call(&g_sb, id, slot, seq, "f", 1, args, sizeof args), 0);
        break;
    case PPX__ENV_RESULT:
        assert_int_equal(ppx__env_pack_result(&g_sb, id, slot, seq, args, sizeof args), 0);
        break;
    case PPX__ENV_ERROR:
        assert_int_equal(ppx__env_pack_error(&g_sb, id, slot, seq, "T", "m", "f", "w", 3), 0);
        break;
    default:
        assert_int_equal(ppx__env_pack_skip(&g_sb, id, slot, seq), 0);
    }
}

static void test_envelope_restamp_changes_slot_and_seq_and_the_frame_still_decodes(void **state)
{
    for (int kind = 0; kind <= PPX__ENV_SKIP; kind++) {
        /* Small values first: the header must not use the compact forms. */
        pack_kind(kind, 1, 0, 0);
        exact e = exact_sb();
        ppx__env before, after;
        assert_int_equal(ppx__env_decode(e.p, e.n, &before), 0);
        ppx__env_restamp(e.p, 0xfedcba98u, UINT32_MAX);
        assert_int_equal(ppx__env_decode(e.p, e.n, &after), 0);
        assert_int_equal(after.kind, kind);
        assert_int_equal(after.task_id, 1);
        assert_int_equal(after.slot, 0xfedcba98u);
        assert_int_equal(after.seq, UINT32_MAX);
        assert_int_equal(after.function.len, before.function.len);
        assert_int_equal(after.payload.len, before.payload.len);
        assert_int_equal(after.pid, before.pid);
        ppx__env_restamp(e.p, 3, 4);
        assert_int_equal(ppx__env_decode(e.p, e.n, &after), 0);
        assert_int_equal(after.slot, 3);
        assert_int_equal(after.seq, 4);
        /* Back to the original values: the original bytes. */
        ppx__env_restamp(e.p, 0, 0);
        assert_memory_equal(e.p, g_sb.data, e.n);
        exact_free(&e);
    }
}

static void test_envelope_call_with_garbage_args_still_yields_its_header(void **state)
{
    static const struct { const char *bytes; size_t len; } garbage[] = {
        {"\xc1\xc1", 2},     /* reserved byte */
        {"\x92\x01", 2},     /* truncated array */
        {"\x05", 1},         /* not an array */
        {"", 0},             /* missing */
        {"\xdd\xff\xff\xff\xff", 5},
    };
    for (size_t k = 0; k < sizeof garbage / sizeof garbage[0]; k++) {
        assert_int_equal(ppx__env_pack_call(&g_sb, 0xabcdef0123ull, 17, 99, "fn", 2,
                                            garbage[k].bytes, garbage[k].len), 0);
        exact e = exact_sb();
        ppx__env env;
        assert_int_equal(ppx__env_decode(e.p, e.n, &env), PPX_EMALFORMED);
        assert_true(env.head_ok);
        assert_true(env.task_id == 0xabcdef0123ull);
        assert_int_equal(env.slot, 17);
        assert_int_equal(env.seq, 99);
        exact_free(&e);

        /* The same holds for a result whose value is garbage (bar "not an
         * array", which is a fine result). */
        if (garbage[k].len == 1)
            continue;
        assert_int_equal(ppx__env_pack_result(&g_sb, 0xabcdef0124ull, 18, 100,
                                              garbage[k].bytes, garbage[k].len), 0);
        e = exact_sb();
        assert_int_equal(ppx__env_decode(e.p, e.n, &env), PPX_EMALFORMED);
        assert_true(env.head_ok);
        assert_true(env.task_id == 0xabcdef0124ull);
        assert_int_equal(env.slot, 18);
        assert_int_equal(env.seq, 100);
        exact_free(&e);
    }
}

static void test_envelope_frame_with_trailing_bytes_is_malformed(void **state)
{
    for (int kind = 0; kind <= PPX__ENV_SKIP; kind++) {
        pack_kind(kind, 11, 12, 13);
        msgpack_pack_nil(&g_pk);
        exact e = exact_sb();
        ppx__env env;
        assert_int_equal(ppx__env_decode(e.p, e.n, &env), PPX_EMALFORMED);
        assert_true(env.head_ok);
        assert_int_equal(env.task_id, 11);
        exact_free(&e);
    }
}

/* Packs [kind, id, slot, seq, extra...] by hand, with n elements in all. */
static exact pack_frame_by_hand(int64_t kind, uint32_t n)
{
    msgpack_packer *pk = enc();
    msgpack_pack_array(pk, n);
    msgpack_pack_int64(pk, kind);
    msgpack_pack_uint64(pk, 21);
    msgpack_pack_uint32(pk, 22);
    msgpack_pack_uint32(pk, 23);
    for (uint32_t k = 4; k < n; k++)
        msgpack_pack_str_with_body(pk, "s", 1);
    return exact_sb();
}

static void test_envelope_wrong_arity_or_unknown_kind_is_malformed(void **state)
{
    /* The header as the reader sees it need not be in the fixed forms. */
    static const uint32_t arity[] = {6, 5, 9, 4};
    for (int kind = 0; kind <= 3; kind++) {
        for (uint32_t n = 4; n <= 10; n++) {
            if (n == arity[kind])
                continue;
            exact e = pack_frame_by_hand(kind, n);
            ppx__env env;
            if (ppx__env_decode(e.p, e.n, &env) != PPX_EMALFORMED)
                fail_msg("kind %d with %u elements decoded", kind, n);
            assert_true(env.head_ok);
            assert_int_equal(env.task_id, 21);
            exact_free(&e);
        }
    }
    /* The skip frame is the only one whose tail we can build from "s"s. */
    exact e = pack_frame_by_hand(PPX__ENV_SKIP, 4);
    ppx__env env;
    assert_int_equal(ppx__env_decode(e.p, e.n, &env), 0);
    assert_int_equal(env.slot, 22);
    exact_free(&e);

    static const int64_t kinds[] = {4, 5, 127, 255, 65536, -1};
    for (size_t k = 0; k < sizeof kinds / sizeof kinds[0]; k++) {
        for (uint32_t n = 4; n <= 9; n++) {
            e = pack_frame_by_hand(kinds[k], n);
            assert_int_equal(ppx__env_decode(e.p, e.n, &env), PPX_EMALFORMED);
            exact_free(&e);
        }
    }
    /* Fewer than four fields, or no array at all: not even a header. */
    for (uint32_t n = 0; n < 4; n++) {
        msgpack_packer *pk = enc();
        msgpack_pack_array(pk, n);
        for (uint32_t k = 0; k < n; k++)
            msgpack_pack_int(pk, 1);
        e = exact_sb();
        assert_int_equal(ppx__env_decode(e.p, e.n, &env), PPX_EMALFORMED);
        assert_false(env.head_ok);
        exact_free(&e);
    }
    e = exact_copy("\x84\x00\x00\x01\x01\x02\x02\x03\x03", 9);
    assert_int_equal(ppx__env_decode(e.p, e.n, &env), PPX_EMALFORMED);
    assert_false(env.head_ok);
    exact_free(&e);
    /* slot does not fit in 32 bits */
    msgpack_packer *pk = enc();
    msgpack_pack_array(pk, 4);
    msgpack_pack_int(pk, 3);
    msgpack_pack_int(pk, 1);
    msgpack_pack_uint64(pk, (uint64_t)UINT32_MAX + 1);
    msgpack_pack_int(pk, 1);
    e = exact_sb();
    assert_int_equal(ppx__env_decode(e.p, e.n, &env), PPX_EMALFORMED);
    assert_false(env.head_ok);
    exact_free(&e);
}

static void test_envelope_function_name_must_be_1_to_255_bytes(void **state)
{
    char name[300];
    memset(name, 'f', sizeof name);
    static const unsigned char args[] = {0x90};
    static const struct { size_t len; int rc; } cases[] = {
        {0, PPX_EMALFORMED}, {1, 0}, {255, 0}, {256, PPX_EMALFORMED}, {300, PPX_EMALFORMED},
    };
    for (size_t k = 0; k < sizeof cases / sizeof cases[0]; k++) {
        assert_int_equal(ppx__env_pack_call(&g_sb, 1, 2, 3, name, cases[k].len, args, 1), 0);
        exact e = exact_sb();
        ppx__env env;
        assert_int_equal(ppx__env_decode(e.p, e.n, &env), cases[k].rc);
        assert_true(env.head_ok);
        if (cases[k].rc == 0)
            assert_int_equal(env.function.len, cases[k].len);
        exact_free(&e);
    }

    /* An error frame written by someone else with a 256-byte type,
     * function or where, or a message past the limit, is malformed too. */
    char *big = malloc(PPX__MESSAGE_MAX + 1);
    assert_non_null(big);
    memset(big, 'x', PPX__MESSAGE_MAX + 1);
    for (int field = 0; field < 4; field++) {
        for (int over = 0; over <= 1; over++) {
            size_t limit = field == 1 ? PPX__MESSAGE_MAX : PPX__NAME_MAX;
            msgpack_packer *pk = enc();
            msgpack_pack_array(pk, 9);
            msgpack_pack_int(pk, PPX__ENV_ERROR);
            msgpack_pack_int(pk, 1);
            msgpack_pack_int(pk, 2);
            msgpack_pack_int(pk, 3);
            for (int f = 0; f < 4; f++)
                msgpack_pack_str_with_body(pk, big, f == field ? limit + (size_t)over : 1);
            msgpack_pack_int(pk, 4);
            exact e = exact_sb();
            ppx__env env;
            assert_int_equal(ppx__env_decode(e.p, e.n, &env), over ? PPX_EMALFORMED : 0);
            exact_free(&e);
        }
    }
    free(big);
}

/* ------------------------------------------------------------------ */
/* Values                                                              */

static void test_value_getters_read_each_type_and_refuse_the_others(void **state)
{
    static const struct { const char *bytes; size_t len; ppx_type type; } samples[] = {
        {"\xc0", 1, PPX_TYPE_NIL},
        {"\xc2", 1, PPX_TYPE_BOOL},
        {"\xd0\xfb", 2, PPX_TYPE_INT},
        {"\xcb\x3f\xf8\0\0\0\0\0\0", 9, PPX_TYPE_FLOAT},
        {"\xa2hi", 3, PPX_TYPE_STR},
        {"\xc4\x02\x00\xff", 4, PPX_TYPE_BIN},
        {"\x92\x01\x02", 3, PPX_TYPE_ARRAY},
        {"\x81\x01\x02", 3, PPX_TYPE_MAP},
        {"\xd4\x05\x00", 3, PPX_TYPE_EXT},
    };
    for (size_t k = 0; k < sizeof samples / sizeof samples[0]; k++) {
        exact e = exact_copy(samples[k].bytes, samples[k].len);
        ppx_value v = value_of(&e);
        ppx_type t = samples[k].type;
        assert_int_equal(ppx_value_type(v), t);
        int64_t i = 0;
        uint64_t u = 0;
        double d = 0;
        bool b = true;
        const char *s = NULL;
        const void *p = NULL;
        size_t n = 0;
        int rc = ppx_value_int(v, &i);
        assert_int_equal(rc, t == PPX_TYPE_INT ? 0 : PPX_ETYPE);
        rc = ppx_value_uint(v, &u);
        assert_int_equal(rc, t == PPX_TYPE_INT ? PPX_ERANGE : PPX_ETYPE);
        rc = ppx_value_double(v, &d);
        assert_int_equal(rc, t == PPX_TYPE_INT || t == PPX_TYPE_FLOAT ? 0 : PPX_ETYPE);
        rc = ppx_value_bool(v, &b);
        assert_int_equal(rc, t == PPX_TYPE_BOOL ? 0 : PPX_ETYPE);
        rc = ppx_value_str(v, &s, &n);
        assert_int_equal(rc, t == PPX_TYPE_STR ? 0 : PPX_ETYPE);
        rc = ppx_value_bin(v, &p, &n);
        assert_int_equal(rc, t == PPX_TYPE_BIN ? 0 : PPX_ETYPE);
        rc = ppx_value_array_len(v, &n);
        assert_int_equal(rc, t == PPX_TYPE_ARRAY ? 0 : PPX_ETYPE);
        ppx_value el;
        rc = ppx_value_at(v, 0, &el);
        assert_int_equal(rc, t == PPX_TYPE_ARRAY ? 0 : PPX_ETYPE);
        exact_free(&e);
    }

    exact e = exact_copy("\xd0\xfb", 2);
    int64_t i;
    double d;
    assert_int_equal(ppx_value_int(value_of(&e), &i), 0);
    assert_int_equal(i, -5);
    assert_int_equal(ppx_value_double(value_of(&e), &d), 0);
    assert_true(d == -5.0);
    exact_free(&e);
    e = exact_copy("\xcf\xff\xff\xff\xff\xff\xff\xff\xff", 9);
    uint64_t u;
    assert_int_equal(ppx_value_uint(value_of(&e), &u), 0);
    assert_true(u == UINT64_MAX);
    assert_int_equal(ppx_value_int(value_of(&e), &i), PPX_ERANGE);
    exact_free(&e);
    e = exact_copy("\xc3", 1);
    bool b = false;
    assert_int_equal(ppx_value_bool(value_of(&e), &b), 0);
    assert_true(b);
    exact_free(&e);
    e = exact_copy("\xa2hi", 3);
    const char *s;
    size_t n;
    assert_int_equal(ppx_value_str(value_of(&e), &s, &n), 0);
    assert_int_equal(n, 2);
    assert_ptr_equal(s, e.p + 1);
    exact_free(&e);
    e = exact_copy("\xc4\x02\x00\xff", 4);
    const void *p;
    assert_int_equal(ppx_value_bin(value_of(&e), &p, &n), 0);
    assert_int_equal(n, 2);
    assert_memory_equal(p, "\x00\xff", 2);
    exact_free(&e);

    /* No data, or nowhere to write: invalid. Bad encoding: malformed. */
    ppx_value none = {NULL, 0};
    assert_int_equal(ppx_value_type(none), PPX_TYPE_INVALID);
    assert_int_equal(ppx_value_int(none, &i), PPX_EINVAL);
    assert_int_equal(ppx_value_str(none, &s, &n), PPX_EINVAL);
    assert_int_equal(ppx_value_array_len(none, &n), PPX_EINVAL);
    e = exact_copy("\xcd\x01", 2);
    assert_int_equal(ppx_value_int(value_of(&e), NULL), PPX_EINVAL);
    assert_int_equal(ppx_value_int(value_of(&e), &i), PPX_EMALFORMED);
    assert_int_equal(ppx_value_double(value_of(&e), &d), PPX_EMALFORMED);
    exact_free(&e);
}

static void test_value_at_returns_each_element_and_eindex_past_the_end(void **state)
{
    msgpack_packer *pk = enc();
    msgpack_pack_array(pk, 4);
    msgpack_pack_int(pk, 10);
    msgpack_pack_str_with_body(pk, "xyz", 3);
    msgpack_pack_array(pk, 2);
    msgpack_pack_int(pk, 1);
    msgpack_pack_map(pk, 0);
    msgpack_pack_nil(pk);
    exact e = exact_sb();
    ppx_value v = value_of(&e);
    size_t n;
    assert_int_equal(ppx_value_array_len(v, &n), 0);
    assert_int_equal(n, 4);

    ppx_value el;
    int64_t i;
    assert_int_equal(ppx_value_at(v, 0, &el), 0);
    assert_int_equal(el.len, 1);
    assert_int_equal(ppx_value_int(el, &i), 0);
    assert_int_equal(i, 10);
    assert_int_equal(ppx_value_at(v, 1, &el), 0);
    assert_int_equal(el.len, 4);
    const char *s;
    assert_int_equal(ppx_value_str(el, &s, &n), 0);
    assert_memory_equal(s, "xyz", 3);
    assert_int_equal(ppx_value_at(v, 2, &el), 0);
    assert_int_equal(el.len, 3);
    assert_int_equal(ppx_value_array_len(el, &n), 0);
    assert_int_equal(n, 2);
    ppx_value inner;
    assert_int_equal(ppx_value_at(el, 1, &inner), 0);
    assert_int_equal(ppx_value_type(inner), PPX_TYPE_MAP);
    assert_int_equal(ppx_value_at(v, 3, &el), 0);
    assert_int_equal(el.len, 1);
    assert_int_equal(ppx_value_type(el), PPX_TYPE_NIL);

    /* Past the end: PPX_EINDEX and the out value untouched. */
    ppx_value untouched = {"sentinel", 8};
    el = untouched;
    assert_int_equal(ppx_value_at(v, 4, &el), PPX_EINDEX);
    assert_int_equal(ppx_value_at(v, SIZE_MAX, &el), PPX_EINDEX);
    assert_ptr_equal(el.data, untouched.data);
    exact_free(&e);

    e = exact_copy("\x90", 1);
    assert_int_equal(ppx_value_array_len(value_of(&e), &n), 0);
    assert_int_equal(n, 0);
    assert_int_equal(ppx_value_at(value_of(&e), 0, &el), PPX_EINDEX);
    exact_free(&e);
}

static void assert_formats_as(const exact *e, const char *want)
{
    char out[256];
    int rc = ppx_value_format(value_of(e), out, sizeof out);
    if (rc < 0 || strcmp(out, want) != 0)
        fail_msg("formatted as \"%s\" (rc %d), expected \"%s\"", rc < 0 ? "" : out, rc, want);
    assert_int_equal(rc, strlen(want));
}

static void assert_bytes_format_as(const char *bytes, size_t len, const char *want)
{
    exact e = exact_copy(bytes, len);
    assert_formats_as(&e, want);
    exact_free(&e);
}

static void assert_double_formats_as(double d, const char *want)
{
    msgpack_pack_double(enc(), d);
    exact e = exact_sb();
    assert_formats_as(&e, want);
    exact_free(&e);
}

static void test_value_format_renders_like_python_repr(void **state)
{
    assert_bytes_format_as("\x93\x01\x02\x03", 4, "[1, 2, 3]");
    assert_bytes_format_as("\x90", 1, "[]");
    assert_bytes_format_as("\x80", 1, "{}");
    assert_bytes_format_as("\xc0", 1, "None");
    assert_bytes_format_as("\xc3", 1, "True");
    assert_bytes_format_as("\xc2", 1, "False");
    assert_bytes_format_as("\xa4it's", 5, "'it\\'s'");
    assert_bytes_format_as("\xa4" "a\\b\n", 5, "'a\\\\b\\n'");
    assert_bytes_format_as("\xa0", 1, "''");
    assert_bytes_format_as("\xc4\x02\x00\x01", 4, "b'\\x00\\x01'");
    assert_bytes_format_as("\xc4\x03" "a\xff'", 5, "b'a\\xff\\''");
    assert_bytes_format_as("\x81\x01\xa1" "a", 4, "{1: 'a'}");
    assert_bytes_format_as("\x82\xa1k\x90\xc0\xc3", 6, "{'k': [], None: True}");
    assert_bytes_format_as("\x93\xc0\x91\xc3\x81\xa1k\xc4\x00", 9, "[None, [True], {'k': b''}]");
    assert_bytes_format_as("\xff", 1, "-1");
    assert_bytes_format_as("\xd3\x80\0\0\0\0\0\0\0", 9, "-9223372036854775808");
    assert_bytes_format_as("\xcf\xff\xff\xff\xff\xff\xff\xff\xff", 9, "18446744073709551615");

    assert_double_formats_as(1.5, "1.5");
    assert_double_formats_as(0.1, "0.1");
    assert_double_formats_as(1.0, "1.0");
    assert_double_formats_as(-2.0, "-2.0");
    assert_double_formats_as(-0.0, "-0.0");
    assert_double_formats_as(2.5, "2.5");
    assert_double_formats_as(1.0 / 3.0, "0.3333333333333333");
    assert_double_formats_as(123456789.0, "123456789.0");
    assert_double_formats_as(0.1 + 0.2, "0.30000000000000004");
    assert_double_formats_as(1e-05, "1e-05");
    assert_double_formats_as(1e16, "1e+16");
    assert_double_formats_as(1.7976931348623157e308, "1.7976931348623157e+308");
    assert_double_formats_as(INFINITY, "inf");
    assert_double_formats_as(-INFINITY, "-inf");
    assert_double_formats_as(NAN, "nan");
    msgpack_pack_float(enc(), 1.5f); /* float32 widens exactly */
    exact e = exact_sb();
    assert_formats_as(&e, "1.5");
    exact_free(&e);
}

/* Python prints integral doubles positionally up to 1e16: 100.0, not 1e+02. */
static void test_value_format_renders_integral_doubles_without_exponent(void **state)
{
    assert_double_formats_as(10.0, "10.0");
    assert_double_formats_as(100.0, "100.0");
    assert_double_formats_as(1200.0, "1200.0");
    assert_double_formats_as(1e15, "1000000000000000.0");
    assert_double_formats_as(1e16, "1e+16");
    assert_double_formats_as(123.456, "123.456");
    assert_double_formats_as(-2.5e-5, "-2.5e-05");
    assert_double_formats_as(0.0001, "0.0001");
}

/* The buffer is NUL-terminated even when the value is malformed. */
static void test_value_format_terminates_the_buffer_even_on_error(void **state)
{
    exact e = exact_copy("\xc1", 1);
    char out[8];
    memset(out, 'Z', sizeof out);
    assert_true(ppx_value_format(value_of(&e), out, sizeof out) < 0);
    assert_int_equal(out[0], '\0');
    exact_free(&e);
}

static void test_value_format_has_snprintf_semantics(void **state)
{
    exact e = exact_copy("\x93\x01\x02\x03", 4);
    const char *full = "[1, 2, 3]";
    assert_int_equal(ppx_value_format(value_of(&e), NULL, 0), 9);
    for (size_t n = 1; n <= 12; n++) {
        char out[16];
        memset(out, 'Z', sizeof out);
        assert_int_equal(ppx_value_format(value_of(&e), out, n), 9);
        size_t kept = n - 1 < 9 ? n - 1 : 9;
        assert_int_equal(strlen(out), kept);
        assert_memory_equal(out, full, kept);
        for (size_t k = n; k < sizeof out; k++)
            assert_int_equal(out[k], 'Z');
    }
    exact_free(&e);

    /* Long tokens (numbers are written in one piece) are cut too. */
    msgpack_packer *pk = enc();
    msgpack_pack_array(pk, 2);
    msgpack_pack_int64(pk, INT64_MIN);
    msgpack_pack_double(pk, DBL_MAX);
    e = exact_sb();
    const char *text = "[-9223372036854775808, 1.7976931348623157e+308]";
    int want = (int)strlen(text);
    for (size_t n = 1; n <= strlen(text) + 2; n++) {
        char out[64];
        memset(out, 'Z', sizeof out);
        assert_int_equal(ppx_value_format(value_of(&e), out, n), want);
        size_t kept = n - 1 < strlen(text) ? n - 1 : strlen(text);
        assert_int_equal(strlen(out), kept);
        assert_memory_equal(out, text, kept);
        for (size_t k = n; k < sizeof out; k++)
            assert_int_equal(out[k], 'Z');
    }
    /* A 0-byte buffer is never touched. */
    char one = 'Z';
    assert_int_equal(ppx_value_format(value_of(&e), &one, 0), want);
    assert_int_equal(one, 'Z');
    exact_free(&e);

    ppx_value none = {NULL, 0};
    char out[4];
    assert_int_equal(ppx_value_format(none, out, sizeof out), PPX_EINVAL);
}

/* ------------------------------------------------------------------ */
/* ppx_pack                                                            */

static void assert_packs_as(const void *out, size_t len, const char *want, size_t want_len)
{
    assert_int_equal(len, want_len);
    assert_memory_equal(out, want, want_len);
}

static void test_pack_each_format_letter_produces_the_expected_element(void **state)
{
    void *out = NULL;
    size_t len = 0;
    assert_int_equal(ppx_pack(&out, &len, "iluUdbbnssSSBB", INT_MIN, LLONG_MIN, UINT_MAX,
                              ULLONG_MAX, 0.1, 7, 0, "hi", (const char *)NULL, "a\0b",
                              (size_t)3, (const char *)NULL, (size_t)0, "\x00\xff",
                              (size_t)2, (const void *)NULL, (size_t)0), 0);
    ppx_value v = {out, len};
    assert_int_equal(ppx__mp_check_one(out, len), 0);
    size_t n;
    assert_int_equal(ppx_value_array_len(v, &n), 0);
    assert_int_equal(n, 14);

    ppx_value el[14];
    for (size_t k = 0; k < 14; k++)
        assert_int_equal(ppx_value_at(v, k, &el[k]), 0);
    int64_t i;
    uint64_t u;
    double d;
    bool b;
    const char *s;
    const void *p;
    assert_int_equal(ppx_value_int(el[0], &i), 0);
    assert_true(i == INT_MIN);
    assert_int_equal(ppx_value_int(el[1], &i), 0);
    assert_true(i == LLONG_MIN);
    assert_int_equal(ppx_value_uint(el[2], &u), 0);
    assert_true(u == UINT_MAX);
    assert_int_equal(ppx_value_uint(el[3], &u), 0);
    assert_true(u == ULLONG_MAX);
    assert_int_equal(ppx_value_type(el[4]), PPX_TYPE_FLOAT);
    assert_int_equal(ppx_value_double(el[4], &d), 0);
    assert_true(d == 0.1);
    assert_int_equal(ppx_value_bool(el[5], &b), 0);
    assert_true(b);
    assert_int_equal(ppx_value_bool(el[6], &b), 0);
    assert_false(b);
    assert_int_equal(ppx_value_type(el[7]), PPX_TYPE_NIL);
    assert_int_equal(ppx_value_str(el[8], &s, &n), 0);
    assert_int_equal(n, 2);
    assert_memory_equal(s, "hi", 2);
    assert_int_equal(ppx_value_type(el[9]), PPX_TYPE_NIL); /* 's' NULL */
    assert_int_equal(ppx_value_str(el[10], &s, &n), 0);
    assert_int_equal(n, 3);
    assert_memory_equal(s, "a\0b", 3);
    assert_int_equal(ppx_value_str(el[11], &s, &n), 0); /* 'S' NULL, 0 */
    assert_int_equal(n, 0);
    assert_int_equal(ppx_value_bin(el[12], &p, &n), 0);
    assert_int_equal(n, 2);
    assert_memory_equal(p, "\x00\xff", 2);
    assert_int_equal(ppx_value_bin(el[13], &p, &n), 0); /* 'B' NULL, 0 */
    assert_int_equal(n, 0);

    char text[256];
    assert_true(ppx_value_format(v, text, sizeof text) > 0);
    assert_string_equal(text, "[-2147483648, -9223372036854775808, 4294967295, "
                              "18446744073709551615, 0.1, True, False, None, 'hi', "
                              "None, 'a\\x00b', '', b'\\x00\\xff', b'']");
    free(out);

    /* Single letters, byte for byte. */
    assert_int_equal(ppx_pack(&out, &len, "i", 1), 0);
    assert_packs_as(out, len, "\x91\x01", 2);
    free(out);
    assert_int_equal(ppx_pack(&out, &len, "n"), 0);
    assert_packs_as(out, len, "\x91\xc0", 2);
    free(out);
    assert_int_equal(ppx_pack(&out, &len, "d", 1.5), 0);
    assert_packs_as(out, len, "\x91\xcb\x3f\xf8\0\0\0\0\0\0", 10);
    free(out);
    assert_int_equal(ppx_pack(&out, &len, "B", "\x01", (size_t)1), 0);
    assert_packs_as(out, len, "\x91\xc4\x01\x01", 4);
    free(out);
    assert_int_equal(ppx_pack(&out, &len, "s", "ab"), 0);
    assert_packs_as(out, len, "\x91\xa2" "ab", 4);
    free(out);
}

static void test_pack_empty_format_gives_an_empty_array(void **state)
{
    void *out = NULL;
    size_t len = 0;
    assert_int_equal(ppx_pack(&out, &len, ""), 0);
    assert_non_null(out);
    assert_packs_as(out, len, "\x90", 1);
    free(out);
}

static void test_pack_unknown_letter_or_bad_arguments_are_einval(void **state)
{
    void *sentinel = (void *)&sentinel;
    void *out = sentinel;
    size_t len = 12345;
    assert_int_equal(ppx_pack(&out, &len, "x"), PPX_EINVAL);
    assert_int_equal(ppx_pack(&out, &len, "iz", 1), PPX_EINVAL);
    assert_int_equal(ppx_pack(&out, &len, "i?", 1), PPX_EINVAL);
    assert_int_equal(ppx_pack(&out, &len, NULL), PPX_EINVAL);
    assert_int_equal(ppx_pack(&out, &len, "S", (const char *)NULL, (size_t)3), PPX_EINVAL);
    assert_int_equal(ppx_pack(&out, &len, "B", (const void *)NULL, (size_t)1), PPX_EINVAL);
    /* On failure the out parameters are left alone. */
    assert_ptr_equal(out, sentinel);
    assert_int_equal(len, 12345);
    assert_int_equal(ppx_pack(NULL, &len, "i", 1), PPX_EINVAL);
    assert_int_equal(ppx_pack(&out, NULL, "i", 1), PPX_EINVAL);
}

static int group_setup(void **state)
{
    msgpack_sbuffer_init(&g_sb);
    msgpack_packer_init(&g_pk, &g_sb, msgpack_sbuffer_write);
    return 0;
}

static int group_teardown(void **state)
{
    msgpack_sbuffer_destroy(&g_sb);
    return 0;
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
        cmocka_unit_test(test_envelope_mutated_frames_never_crash_decode),
        cmocka_unit_test(test_envelope_call_round_trips_every_field),
        cmocka_unit_test(test_envelope_result_round_trips_every_field),
        cmocka_unit_test(test_envelope_error_round_trips_every_field),
        cmocka_unit_test(test_envelope_skip_round_trips_every_field),
        cmocka_unit_test(test_envelope_restamp_changes_slot_and_seq_and_the_frame_still_decodes),
        cmocka_unit_test(test_envelope_call_with_garbage_args_still_yields_its_header),
        cmocka_unit_test(test_envelope_frame_with_trailing_bytes_is_malformed),
        cmocka_unit_test(test_envelope_wrong_arity_or_unknown_kind_is_malformed),
        cmocka_unit_test(test_envelope_function_name_must_be_1_to_255_bytes),
        cmocka_unit_test(test_value_getters_read_each_type_and_refuse_the_others),
        cmocka_unit_test(test_value_at_returns_each_element_and_eindex_past_the_end),
        cmocka_unit_test(test_value_format_renders_like_python_repr),
        cmocka_unit_test(test_value_format_has_snprintf_semantics),
        cmocka_unit_test(test_value_format_renders_integral_doubles_without_exponent),
        cmocka_unit_test(test_value_format_terminates_the_buffer_even_on_error),
        cmocka_unit_test(test_pack_each_format_letter_produces_the_expected_element),
        cmocka_unit_test(test_pack_empty_format_gives_an_empty_array),
        cmocka_unit_test(test_pack_unknown_letter_or_bad_arguments_are_einval),
    };
    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
