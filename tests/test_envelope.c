/* Tests of the envelopes (serialize/envelope.c): pack/decode round trips
 * of every frame kind, restamping in place, malformed frames, and frames
 * with bytes flipped. Frames are decoded from heap blocks of exactly their
 * length (see serialize_support.h). */
#include "support.h"
#include "serialize_support.h"
#include "serialize/envelope.h"
#include "serialize/mpread.h"

#include <msgpack.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

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
        assert_int_equal(ppx__env_pack_call(&ts_sb, heads[k].id, heads[k].slot, heads[k].seq,
                                            "add", 3, args, args_len), 0);
        ts_exact e = ts_exact_sb();
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
        ts_exact_free(&e);
    }
    free(args);
}

static void test_envelope_result_round_trips_every_field(void **state)
{
    msgpack_packer *pk = ts_enc();
    msgpack_pack_map(pk, 1);
    msgpack_pack_str_with_body(pk, "k", 1);
    msgpack_pack_array(pk, 2);
    msgpack_pack_double(pk, 0.5);
    msgpack_pack_nil(pk);
    ts_exact value = ts_exact_sb();
    assert_int_equal(ppx__env_pack_result(&ts_sb, 77, 3, 4, value.p, value.n), 0);
    ts_exact e = ts_exact_sb();
    ppx__env env;
    assert_int_equal(ppx__env_decode(e.p, e.n, &env), 0);
    assert_int_equal(env.kind, PPX__ENV_RESULT);
    assert_true(env.head_ok);
    assert_int_equal(env.task_id, 77);
    assert_int_equal(env.slot, 3);
    assert_int_equal(env.seq, 4);
    assert_int_equal(env.payload.len, value.n);
    assert_memory_equal(env.payload.data, value.p, value.n);
    ts_exact_free(&e);

    /* Any single value will do, e.g. nil. */
    assert_int_equal(ppx__env_pack_result(&ts_sb, 78, 0, 0, "\xc0", 1), 0);
    e = ts_exact_sb();
    assert_int_equal(ppx__env_decode(e.p, e.n, &env), 0);
    assert_int_equal(env.payload.len, 1);
    assert_int_equal(ppx_value_type(env.payload), PPX_TYPE_NIL);
    ts_exact_free(&e);
    ts_exact_free(&value);
}

static void test_envelope_error_round_trips_every_field(void **state)
{
    assert_int_equal(ppx__env_pack_error(&ts_sb, 5, 6, 7, "ValueError", "bad value 3",
                                         "parse", "parse.c:42", 12345), 0);
    ts_exact e = ts_exact_sb();
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
    ts_exact_free(&e);

    /* NULL strings travel as "", a negative pid survives. */
    assert_int_equal(ppx__env_pack_error(&ts_sb, 1, 0, 0, NULL, NULL, NULL, NULL, -1), 0);
    e = ts_exact_sb();
    assert_int_equal(ppx__env_decode(e.p, e.n, &env), 0);
    assert_str(env.type, "");
    assert_str(env.message, "");
    assert_str(env.function, "");
    assert_str(env.where, "");
    assert_int_equal(env.pid, -1);
    ts_exact_free(&e);

    /* Over-long strings are cut so the frame still decodes. */
    char *long_msg = malloc(10001);
    assert_non_null(long_msg);
    memset(long_msg, 'm', 10000);
    long_msg[10000] = '\0';
    char long_name[400];
    memset(long_name, 'n', sizeof long_name - 1);
    long_name[sizeof long_name - 1] = '\0';
    assert_int_equal(ppx__env_pack_error(&ts_sb, 2, 0, 0, long_name, long_msg, long_name,
                                         long_name, 1), 0);
    e = ts_exact_sb();
    assert_int_equal(ppx__env_decode(e.p, e.n, &env), 0);
    assert_int_equal(env.type.len, PPX__NAME_MAX);
    assert_int_equal(env.message.len, PPX__MESSAGE_MAX);
    assert_int_equal(env.function.len, PPX__NAME_MAX);
    assert_int_equal(env.where.len, PPX__NAME_MAX);
    assert_memory_equal(env.message.p, long_msg, PPX__MESSAGE_MAX);
    ts_exact_free(&e);
    free(long_msg);
}

/* The pool sizes its buffers and checks as max_payload plus these: an
 * envelope must never add more than they say, and the largest ones add
 * exactly that. */
static void test_envelope_overheads_are_the_most_an_envelope_adds(void **state)
{
    char name[PPX__NAME_MAX + 1], big[PPX__MESSAGE_MAX + 1];
    memset(name, 'n', sizeof name - 1);
    name[sizeof name - 1] = '\0';
    memset(big, 'm', sizeof big - 1);
    big[sizeof big - 1] = '\0';
    static const unsigned char args[] = {0x91, 0xc0};
    assert_int_equal(ppx__env_pack_call(&ts_sb, UINT64_MAX, UINT32_MAX, UINT32_MAX, name,
                                        PPX__NAME_MAX, args, sizeof args), 0);
    assert_int_equal(ts_sb.size - sizeof args, PPX__ENV_CALL_OVERHEAD);
    assert_int_equal(ppx__env_pack_map(&ts_sb, UINT64_MAX, name, PPX__NAME_MAX, args,
                                       sizeof args), 0);
    assert_int_equal(ts_sb.size - sizeof args, PPX__ENV_CALL_OVERHEAD);
    assert_int_equal(ppx__env_pack_result(&ts_sb, UINT64_MAX, UINT32_MAX, UINT32_MAX, args,
                                          sizeof args), 0);
    assert_int_equal(ts_sb.size - sizeof args, PPX__ENV_RESULT_OVERHEAD);
    assert_int_equal(ppx__env_pack_error_at(&ts_sb, UINT64_MAX, UINT32_MAX, UINT32_MAX, name,
                                            big, name, name, INT64_MIN, name), 0);
    assert_int_equal(ts_sb.size, PPX__ENV_ERROR_MAX);
}

/* Submission writes call and map frames itself (ppx__env_put_call): byte
 * for byte what msgpack-c's packer writes, at every name-length form
 * (fixstr up to 31 bytes, str8 from 32), into exactly the length it says,
 * and the frame decodes to what was put in. */
static void test_envelope_put_call_writes_the_packers_bytes_in_its_length(void **state)
{
    char name[PPX__NAME_MAX];
    memset(name, 'f', sizeof name);
    static const size_t lens[] = {1, 31, 32, PPX__NAME_MAX};
    unsigned char args[40] = {0x9f};
    memset(args + 1, 0x2a, 15); /* [42 x 15] */
    static const size_t arg_lens[] = {16, 1};
    for (size_t k = 0; k < 4; k++) {
        for (size_t a = 0; a < 2; a++) {
            const unsigned char *av = a ? (const unsigned char *)"\x90" : args;
            size_t alen = arg_lens[a];
            for (int kind = PPX__ENV_CALL; kind <= PPX__ENV_MAP; kind += PPX__ENV_MAP) {
                uint64_t id = 0x0102030405060708ull + k;
                if (kind == PPX__ENV_CALL)
                    assert_int_equal(ppx__env_pack_call(&ts_sb, id, 0, 0, name, lens[k], av,
                                                        alen), 0);
                else
                    assert_int_equal(ppx__env_pack_map(&ts_sb, id, name, lens[k], av, alen), 0);
                size_t n = ppx__env_call_len(lens[k], alen);
                assert_int_equal(n, ts_sb.size);
                unsigned char *frame = malloc(n);
                assert_non_null(frame);
                assert_int_equal(ppx__env_put_call(frame, kind, id, name, lens[k], av, alen), n);
                assert_memory_equal(frame, ts_sb.data, n);
                ppx__env env;
                assert_int_equal(ppx__env_decode(frame, n, &env), 0);
                assert_int_equal(env.kind, kind);
                assert_true(env.task_id == id);
                assert_int_equal(env.function.len, lens[k]);
                assert_int_equal(env.payload.len, alen);
                assert_memory_equal(env.payload.data, av, alen);
                free(frame);
            }
        }
    }
}

static void test_envelope_skip_round_trips_every_field(void **state)
{
    assert_int_equal(ppx__env_pack_skip(&ts_sb, UINT64_MAX - 1, 9, 10), 0);
    ts_exact e = ts_exact_sb();
    ppx__env env;
    assert_int_equal(ppx__env_decode(e.p, e.n, &env), 0);
    assert_int_equal(env.kind, PPX__ENV_SKIP);
    assert_true(env.head_ok);
    assert_true(env.task_id == UINT64_MAX - 1);
    assert_int_equal(env.slot, 9);
    assert_int_equal(env.seq, 10);
    ts_exact_free(&e);
}

/* Packs one frame of the given kind with the given header. */
static void pack_kind(int kind, uint64_t id, uint32_t slot, uint32_t seq)
{
    static const unsigned char args[] = {0x92, 0x01, 0xa1, 'x'};
    switch (kind) {
    case PPX__ENV_CALL:
        assert_int_equal(ppx__env_pack_call(&ts_sb, id, slot, seq, "f", 1, args, sizeof args), 0);
        break;
    case PPX__ENV_RESULT:
        assert_int_equal(ppx__env_pack_result(&ts_sb, id, slot, seq, args, sizeof args), 0);
        break;
    case PPX__ENV_ERROR:
        assert_int_equal(ppx__env_pack_error(&ts_sb, id, slot, seq, "T", "m", "f", "w", 3), 0);
        break;
    default:
        assert_int_equal(ppx__env_pack_skip(&ts_sb, id, slot, seq), 0);
    }
}

static void test_envelope_restamp_changes_slot_and_seq_and_the_frame_still_decodes(void **state)
{
    for (int kind = 0; kind <= PPX__ENV_SKIP; kind++) {
        /* Small values first: the header must not use the compact forms. */
        pack_kind(kind, 1, 0, 0);
        ts_exact e = ts_exact_sb();
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
        assert_memory_equal(e.p, ts_sb.data, e.n);
        ts_exact_free(&e);
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
        assert_int_equal(ppx__env_pack_call(&ts_sb, 0xabcdef0123ull, 17, 99, "fn", 2,
                                            garbage[k].bytes, garbage[k].len), 0);
        ts_exact e = ts_exact_sb();
        ppx__env env;
        assert_int_equal(ppx__env_decode(e.p, e.n, &env), PPX_EMALFORMED);
        assert_true(env.head_ok);
        assert_true(env.task_id == 0xabcdef0123ull);
        assert_int_equal(env.slot, 17);
        assert_int_equal(env.seq, 99);
        ts_exact_free(&e);

        /* The same holds for a result whose value is garbage (bar "not an
         * array", which is a fine result). */
        if (garbage[k].len == 1)
            continue;
        assert_int_equal(ppx__env_pack_result(&ts_sb, 0xabcdef0124ull, 18, 100,
                                              garbage[k].bytes, garbage[k].len), 0);
        e = ts_exact_sb();
        assert_int_equal(ppx__env_decode(e.p, e.n, &env), PPX_EMALFORMED);
        assert_true(env.head_ok);
        assert_true(env.task_id == 0xabcdef0124ull);
        assert_int_equal(env.slot, 18);
        assert_int_equal(env.seq, 100);
        ts_exact_free(&e);
    }
}

static void test_envelope_frame_with_trailing_bytes_is_malformed(void **state)
{
    for (int kind = 0; kind <= PPX__ENV_SKIP; kind++) {
        pack_kind(kind, 11, 12, 13);
        msgpack_pack_nil(&ts_pk);
        ts_exact e = ts_exact_sb();
        ppx__env env;
        assert_int_equal(ppx__env_decode(e.p, e.n, &env), PPX_EMALFORMED);
        assert_true(env.head_ok);
        assert_int_equal(env.task_id, 11);
        ts_exact_free(&e);
    }
}

/* Packs [kind, id, slot, seq, extra...] by hand, with n elements in all. */
static ts_exact pack_frame_by_hand(int64_t kind, uint32_t n)
{
    msgpack_packer *pk = ts_enc();
    msgpack_pack_array(pk, n);
    msgpack_pack_int64(pk, kind);
    msgpack_pack_uint64(pk, 21);
    msgpack_pack_uint32(pk, 22);
    msgpack_pack_uint32(pk, 23);
    for (uint32_t k = 4; k < n; k++)
        msgpack_pack_str_with_body(pk, "s", 1);
    return ts_exact_sb();
}

static void test_envelope_wrong_arity_or_unknown_kind_is_malformed(void **state)
{
    /* The header as the reader sees it need not be in the fixed forms. */
    static const uint32_t arity[] = {6, 5, 9, 4};
    for (int kind = 0; kind <= 3; kind++) {
        for (uint32_t n = 4; n <= 10; n++) {
            if (n == arity[kind])
                continue;
            ts_exact e = pack_frame_by_hand(kind, n);
            ppx__env env;
            if (ppx__env_decode(e.p, e.n, &env) != PPX_EMALFORMED)
                fail_msg("kind %d with %u elements decoded", kind, n);
            assert_true(env.head_ok);
            assert_int_equal(env.task_id, 21);
            ts_exact_free(&e);
        }
    }
    /* The skip frame is the only one whose tail we can build from "s"s. */
    ts_exact e = pack_frame_by_hand(PPX__ENV_SKIP, 4);
    ppx__env env;
    assert_int_equal(ppx__env_decode(e.p, e.n, &env), 0);
    assert_int_equal(env.slot, 22);
    ts_exact_free(&e);

    static const int64_t kinds[] = {4, 5, 127, 255, 65536, -1};
    for (size_t k = 0; k < sizeof kinds / sizeof kinds[0]; k++) {
        for (uint32_t n = 4; n <= 9; n++) {
            e = pack_frame_by_hand(kinds[k], n);
            assert_int_equal(ppx__env_decode(e.p, e.n, &env), PPX_EMALFORMED);
            ts_exact_free(&e);
        }
    }
    /* Fewer than four fields, or no array at all: not even a header. */
    for (uint32_t n = 0; n < 4; n++) {
        msgpack_packer *pk = ts_enc();
        msgpack_pack_array(pk, n);
        for (uint32_t k = 0; k < n; k++)
            msgpack_pack_int(pk, 1);
        e = ts_exact_sb();
        assert_int_equal(ppx__env_decode(e.p, e.n, &env), PPX_EMALFORMED);
        assert_false(env.head_ok);
        ts_exact_free(&e);
    }
    e = ts_exact_copy("\x84\x00\x00\x01\x01\x02\x02\x03\x03", 9);
    assert_int_equal(ppx__env_decode(e.p, e.n, &env), PPX_EMALFORMED);
    assert_false(env.head_ok);
    ts_exact_free(&e);
    /* slot does not fit in 32 bits */
    msgpack_packer *pk = ts_enc();
    msgpack_pack_array(pk, 4);
    msgpack_pack_int(pk, 3);
    msgpack_pack_int(pk, 1);
    msgpack_pack_uint64(pk, (uint64_t)UINT32_MAX + 1);
    msgpack_pack_int(pk, 1);
    e = ts_exact_sb();
    assert_int_equal(ppx__env_decode(e.p, e.n, &env), PPX_EMALFORMED);
    assert_false(env.head_ok);
    ts_exact_free(&e);
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
        assert_int_equal(ppx__env_pack_call(&ts_sb, 1, 2, 3, name, cases[k].len, args, 1), 0);
        ts_exact e = ts_exact_sb();
        ppx__env env;
        assert_int_equal(ppx__env_decode(e.p, e.n, &env), cases[k].rc);
        assert_true(env.head_ok);
        if (cases[k].rc == 0)
            assert_int_equal(env.function.len, cases[k].len);
        ts_exact_free(&e);
    }

    /* An error frame written by someone else with a 256-byte type,
     * function or where, or a message past the limit, is malformed too. */
    char *big = malloc(PPX__MESSAGE_MAX + 1);
    assert_non_null(big);
    memset(big, 'x', PPX__MESSAGE_MAX + 1);
    for (int field = 0; field < 4; field++) {
        for (int over = 0; over <= 1; over++) {
            size_t limit = field == 1 ? PPX__MESSAGE_MAX : PPX__NAME_MAX;
            msgpack_packer *pk = ts_enc();
            msgpack_pack_array(pk, 9);
            msgpack_pack_int(pk, PPX__ENV_ERROR);
            msgpack_pack_int(pk, 1);
            msgpack_pack_int(pk, 2);
            msgpack_pack_int(pk, 3);
            for (int f = 0; f < 4; f++)
                msgpack_pack_str_with_body(pk, big, f == field ? limit + (size_t)over : 1);
            msgpack_pack_int(pk, 4);
            ts_exact e = ts_exact_sb();
            ppx__env env;
            assert_int_equal(ppx__env_decode(e.p, e.n, &env), over ? PPX_EMALFORMED : 0);
            ts_exact_free(&e);
        }
    }
    free(big);
}

/* ------------------------------------------------------------------ */
/* Envelopes: hostile input                                            */

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
        case 0: ppx__env_pack_call(&ts_sb, 9, 1, 2, "function", 8, args, args_len); break;
        case 1: ppx__env_pack_result(&ts_sb, 9, 1, 2, args, args_len); break;
        case 2: ppx__env_pack_error(&ts_sb, 9, 1, 2, "E", "msg", "f", "w", -3); break;
        case 3: ppx__env_pack_skip(&ts_sb, 9, 1, 2); break;
        }
        /* Under 64 bytes, so nesting stays within the format's bound. */
        assert_true(ts_sb.size <= 64 && ts_sb.size <= sizeof frame);
        size_t len = ts_sb.size;
        memcpy(frame, ts_sb.data, len);
        int flips = 1 + (int)(support_xorshift(&s) % 3);
        for (int f = 0; f < flips; f++) {
            uint64_t x = support_xorshift(&s);
            frame[x % len] = (unsigned char)(x >> 32);
        }
        if (support_xorshift(&s) % 4 == 0)
            len = (size_t)(support_xorshift(&s) % (len + 1));
        ts_exact e = ts_exact_copy(frame, len);
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
        ts_check_format_consistent(&e);
        ts_exact_free(&e);
    }
    assert_true(decoded > 0);
    free(args);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_envelope_mutated_frames_never_crash_decode),
        cmocka_unit_test(test_envelope_call_round_trips_every_field),
        cmocka_unit_test(test_envelope_result_round_trips_every_field),
        cmocka_unit_test(test_envelope_error_round_trips_every_field),
        cmocka_unit_test(test_envelope_overheads_are_the_most_an_envelope_adds),
        cmocka_unit_test(test_envelope_put_call_writes_the_packers_bytes_in_its_length),
        cmocka_unit_test(test_envelope_skip_round_trips_every_field),
        cmocka_unit_test(test_envelope_restamp_changes_slot_and_seq_and_the_frame_still_decodes),
        cmocka_unit_test(test_envelope_call_with_garbage_args_still_yields_its_header),
        cmocka_unit_test(test_envelope_frame_with_trailing_bytes_is_malformed),
        cmocka_unit_test(test_envelope_wrong_arity_or_unknown_kind_is_malformed),
        cmocka_unit_test(test_envelope_function_name_must_be_1_to_255_bytes),
    };
    return cmocka_run_group_tests(tests, ts_group_setup, ts_group_teardown);
}
