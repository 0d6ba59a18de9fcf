/* Tests of the public ppx_value views (the ppx_value_* getters and
 * ppx_value_format) and of ppx_pack. Encodings are produced with
 * msgpack-c's packer or written out byte for byte. */
#include "support.h"
#include "serialize_support.h"
#include "serialize/mpread.h"

#include <float.h>
#include <limits.h>
#include <math.h>
#include <msgpack.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

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
        ts_exact e = ts_exact_copy(samples[k].bytes, samples[k].len);
        ppx_value v = ts_value_of(&e);
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
        ts_exact_free(&e);
    }

    ts_exact e = ts_exact_copy("\xd0\xfb", 2);
    int64_t i;
    double d;
    assert_int_equal(ppx_value_int(ts_value_of(&e), &i), 0);
    assert_int_equal(i, -5);
    assert_int_equal(ppx_value_double(ts_value_of(&e), &d), 0);
    assert_true(d == -5.0);
    ts_exact_free(&e);
    e = ts_exact_copy("\xcf\xff\xff\xff\xff\xff\xff\xff\xff", 9);
    uint64_t u;
    assert_int_equal(ppx_value_uint(ts_value_of(&e), &u), 0);
    assert_true(u == UINT64_MAX);
    assert_int_equal(ppx_value_int(ts_value_of(&e), &i), PPX_ERANGE);
    ts_exact_free(&e);
    e = ts_exact_copy("\xc3", 1);
    bool b = false;
    assert_int_equal(ppx_value_bool(ts_value_of(&e), &b), 0);
    assert_true(b);
    ts_exact_free(&e);
    e = ts_exact_copy("\xa2hi", 3);
    const char *s;
    size_t n;
    assert_int_equal(ppx_value_str(ts_value_of(&e), &s, &n), 0);
    assert_int_equal(n, 2);
    assert_ptr_equal(s, e.p + 1);
    ts_exact_free(&e);
    e = ts_exact_copy("\xc4\x02\x00\xff", 4);
    const void *p;
    assert_int_equal(ppx_value_bin(ts_value_of(&e), &p, &n), 0);
    assert_int_equal(n, 2);
    assert_memory_equal(p, "\x00\xff", 2);
    ts_exact_free(&e);

    /* No data, or nowhere to write: invalid. Bad encoding: malformed. */
    ppx_value none = {NULL, 0};
    assert_int_equal(ppx_value_type(none), PPX_TYPE_INVALID);
    assert_int_equal(ppx_value_int(none, &i), PPX_EINVAL);
    assert_int_equal(ppx_value_str(none, &s, &n), PPX_EINVAL);
    assert_int_equal(ppx_value_array_len(none, &n), PPX_EINVAL);
    e = ts_exact_copy("\xcd\x01", 2);
    assert_int_equal(ppx_value_int(ts_value_of(&e), NULL), PPX_EINVAL);
    assert_int_equal(ppx_value_int(ts_value_of(&e), &i), PPX_EMALFORMED);
    assert_int_equal(ppx_value_double(ts_value_of(&e), &d), PPX_EMALFORMED);
    ts_exact_free(&e);
}

static void test_value_at_returns_each_element_and_eindex_past_the_end(void **state)
{
    msgpack_packer *pk = ts_enc();
    msgpack_pack_array(pk, 4);
    msgpack_pack_int(pk, 10);
    msgpack_pack_str_with_body(pk, "xyz", 3);
    msgpack_pack_array(pk, 2);
    msgpack_pack_int(pk, 1);
    msgpack_pack_map(pk, 0);
    msgpack_pack_nil(pk);
    ts_exact e = ts_exact_sb();
    ppx_value v = ts_value_of(&e);
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
    ts_exact_free(&e);

    e = ts_exact_copy("\x90", 1);
    assert_int_equal(ppx_value_array_len(ts_value_of(&e), &n), 0);
    assert_int_equal(n, 0);
    assert_int_equal(ppx_value_at(ts_value_of(&e), 0, &el), PPX_EINDEX);
    ts_exact_free(&e);
}

static void assert_formats_as(const ts_exact *e, const char *want)
{
    char out[256];
    int rc = ppx_value_format(ts_value_of(e), out, sizeof out);
    if (rc < 0 || strcmp(out, want) != 0)
        fail_msg("formatted as \"%s\" (rc %d), expected \"%s\"", rc < 0 ? "" : out, rc, want);
    assert_int_equal(rc, strlen(want));
}

static void assert_bytes_format_as(const char *bytes, size_t len, const char *want)
{
    ts_exact e = ts_exact_copy(bytes, len);
    assert_formats_as(&e, want);
    ts_exact_free(&e);
}

static void assert_double_formats_as(double d, const char *want)
{
    msgpack_pack_double(ts_enc(), d);
    ts_exact e = ts_exact_sb();
    assert_formats_as(&e, want);
    ts_exact_free(&e);
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
    msgpack_pack_float(ts_enc(), 1.5f); /* float32 widens exactly */
    ts_exact e = ts_exact_sb();
    assert_formats_as(&e, "1.5");
    ts_exact_free(&e);
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
    ts_exact e = ts_exact_copy("\xc1", 1);
    char out[8];
    memset(out, 'Z', sizeof out);
    assert_true(ppx_value_format(ts_value_of(&e), out, sizeof out) < 0);
    assert_int_equal(out[0], '\0');
    ts_exact_free(&e);
}

static void test_value_format_has_snprintf_semantics(void **state)
{
    ts_exact e = ts_exact_copy("\x93\x01\x02\x03", 4);
    const char *full = "[1, 2, 3]";
    assert_int_equal(ppx_value_format(ts_value_of(&e), NULL, 0), 9);
    for (size_t n = 1; n <= 12; n++) {
        char out[16];
        memset(out, 'Z', sizeof out);
        assert_int_equal(ppx_value_format(ts_value_of(&e), out, n), 9);
        size_t kept = n - 1 < 9 ? n - 1 : 9;
        assert_int_equal(strlen(out), kept);
        assert_memory_equal(out, full, kept);
        for (size_t k = n; k < sizeof out; k++)
            assert_int_equal(out[k], 'Z');
    }
    ts_exact_free(&e);

    /* Long tokens (numbers are written in one piece) are cut too. */
    msgpack_packer *pk = ts_enc();
    msgpack_pack_array(pk, 2);
    msgpack_pack_int64(pk, INT64_MIN);
    msgpack_pack_double(pk, DBL_MAX);
    e = ts_exact_sb();
    const char *text = "[-9223372036854775808, 1.7976931348623157e+308]";
    int want = (int)strlen(text);
    for (size_t n = 1; n <= strlen(text) + 2; n++) {
        char out[64];
        memset(out, 'Z', sizeof out);
        assert_int_equal(ppx_value_format(ts_value_of(&e), out, n), want);
        size_t kept = n - 1 < strlen(text) ? n - 1 : strlen(text);
        assert_int_equal(strlen(out), kept);
        assert_memory_equal(out, text, kept);
        for (size_t k = n; k < sizeof out; k++)
            assert_int_equal(out[k], 'Z');
    }
    /* A 0-byte buffer is never touched. */
    char one = 'Z';
    assert_int_equal(ppx_value_format(ts_value_of(&e), &one, 0), want);
    assert_int_equal(one, 'Z');
    ts_exact_free(&e);

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

/* msgpack's lengths are 32-bit: a longer string or bytes is refused
 * before a byte of it is read (the pointer here has one byte behind it). */
static void test_pack_strings_or_bytes_over_4_gib_are_etoobig(void **state)
{
    static const char one = 'x';
    void *sentinel = (void *)&sentinel;
    void *out = sentinel;
    size_t len = 12345;
    size_t over = (size_t)UINT32_MAX + 1;
    assert_int_equal(ppx_pack(&out, &len, "S", &one, over), PPX_ETOOBIG);
    assert_int_equal(ppx_pack(&out, &len, "iB", 1, (const void *)&one, over), PPX_ETOOBIG);
    assert_int_equal(ppx_pack(&out, &len, "B", (const void *)&one, SIZE_MAX), PPX_ETOOBIG);
    assert_ptr_equal(out, sentinel);
    assert_int_equal(len, 12345);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_value_getters_read_each_type_and_refuse_the_others),
        cmocka_unit_test(test_value_at_returns_each_element_and_eindex_past_the_end),
        cmocka_unit_test(test_value_format_renders_like_python_repr),
        cmocka_unit_test(test_value_format_has_snprintf_semantics),
        cmocka_unit_test(test_value_format_renders_integral_doubles_without_exponent),
        cmocka_unit_test(test_value_format_terminates_the_buffer_even_on_error),
        cmocka_unit_test(test_pack_each_format_letter_produces_the_expected_element),
        cmocka_unit_test(test_pack_empty_format_gives_an_empty_array),
        cmocka_unit_test(test_pack_unknown_letter_or_bad_arguments_are_einval),
        cmocka_unit_test(test_pack_strings_or_bytes_over_4_gib_are_etoobig),
    };
    return cmocka_run_group_tests(tests, ts_group_setup, ts_group_teardown);
}
