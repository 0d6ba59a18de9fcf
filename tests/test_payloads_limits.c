/* Big payloads end to end: max_payload counts the user's bytes, not the
 * envelope, on every path (ring records, ring chunks, arena and outbox);
 * the longest error, and what msgpack cannot count. */
#include "support.h"
#include "payloads_support.h"
#include "ppx.h"
#include "procpool/wire/shared.h"

#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

/* ---- max_payload counts the user's bytes, not the envelope ---------- */

static ppx_value done_value(ppx_future *f)
{
    assert_int_equal(ppx_future_wait(f, 30000), 0);
    if (ppx_future_state(f) != PPX_DONE)
        fail_msg("%s: %s", ppx_future_error(f)->type, ppx_future_error(f)->message);
    ppx_value v;
    assert_int_equal(ppx_future_value(f, &v), 0);
    return v;
}

/* what is "result" (one call) or "results" (a batch). */
static void assert_too_large(ppx_future *f, const char *what, size_t size, size_t max)
{
    assert_int_equal(ppx_future_wait(f, 30000), 0);
    assert_int_equal(ppx_future_state(f), PPX_FAILED);
    assert_string_equal(ppx_future_error(f)->type, "ResultTooLarge");
    char want[160];
    snprintf(want, sizeof want, "%s of %zu bytes %s the pool's limit of %zu", what, size,
             strcmp(what, "result") ? "exceed" : "exceeds", max);
    assert_string_equal(ppx_future_error(f)->message, want);
}

/* Arguments [bytes] of exactly n bytes, to the function with the longest
 * name, come back whole; one byte more is refused. So for a batch whose
 * items [[bytes]] are n bytes in all. */
static void arguments_at_the_limit(ppx_pool *p, size_t max)
{
    unsigned char *b = malloc(max + 2);
    assert_non_null(b);
    ppx_future *f;
    b[0] = 0x91;
    put_value(b + 1, max - 1, 1);
    assert_int_equal(ppx_pool_submit(p, echo_long, b, max, &f), 0);
    ppx_value v = done_value(f);
    assert_int_equal(v.len, max - 1);
    assert_memory_equal(v.data, b + 1, max - 1);
    ppx_future_unref(f);
    put_value(b + 1, max, 1);
    assert_int_equal(ppx_pool_submit(p, echo_long, b, max + 1, &f), PPX_ETOOBIG);

    b[1] = 0x91;
    put_value(b + 2, max - 2, 2);
    assert_int_equal(ppx_pool_map(p, echo_long, b, max, NULL, &f), 0);
    v = done_value(f);
    assert_int_equal(v.len, max - 1); /* [bytes] */
    assert_int_equal(((const unsigned char *)v.data)[0], 0x91);
    assert_memory_equal((const unsigned char *)v.data + 1, b + 2, max - 2);
    ppx_future_unref(f);
    put_value(b + 2, max - 1, 2);
    assert_int_equal(ppx_pool_map(p, echo_long, b, max + 1, NULL, &f), PPX_ETOOBIG);
    free(b);
}

/* [[n, seed]] for make, by hand: ppx_pack makes flat arrays only. */
static size_t make_items(unsigned char *items, uint64_t n, unsigned seed)
{
    unsigned char *w = items;
    *w++ = 0x91;
    *w++ = 0x92;
    *w++ = 0xcf;
    for (int i = 0; i < 8; i++)
        *w++ = (unsigned char)(n >> (56 - 8 * i));
    *w++ = (unsigned char)(seed & 0x7f);
    return (size_t)(w - items);
}

/* A result of exactly max bytes arrives byte for byte; one of max + 1
 * fails, naming both sizes. So for a batch's array of results. */
static void results_at_the_limit(ppx_pool *p, size_t max)
{
    unsigned char *want = malloc(max);
    assert_non_null(want);
    ppx_future *f;
    assert_int_equal(ppx_pool_submitf(p, &f, "make", "UU", (unsigned long long)max, 3ull), 0);
    put_value(want, max, 3);
    ppx_value v = done_value(f);
    assert_int_equal(v.len, max);
    assert_memory_equal(v.data, want, max);
    ppx_future_unref(f);
    assert_int_equal(ppx_pool_submitf(p, &f, "make", "UU", (unsigned long long)max + 1, 3ull), 0);
    assert_too_large(f, "result", max + 1, max);
    ppx_future_unref(f);

    unsigned char items[16];
    size_t len = make_items(items, max - 1, 4);
    assert_int_equal(ppx_pool_map(p, "make", items, len, NULL, &f), 0);
    put_value(want, max - 1, 4);
    v = done_value(f);
    assert_int_equal(v.len, max); /* [bytes] */
    assert_int_equal(((const unsigned char *)v.data)[0], 0x91);
    assert_memory_equal((const unsigned char *)v.data + 1, want, max - 1);
    ppx_future_unref(f);
    len = make_items(items, max, 4);
    assert_int_equal(ppx_pool_map(p, "make", items, len, NULL, &f), 0);
    assert_too_large(f, "results", max + 1, max);
    ppx_future_unref(f);
    free(want);
}

static ppx_pool *limit_pool(size_t ring_bytes, size_t arena_bytes, size_t max)
{
    ppx_pool_options o = PPX_POOL_OPTIONS(.workers = 1, .ring_bytes = ring_bytes, .arena_bytes = arena_bytes,
                          .max_payload = max);
    ppx_pool *p = NULL;
    support_valgrind_sizes(&o);
    assert_int_equal(ppx_pool_new(&o, &p), 0);
    arguments_at_the_limit(p, max);
    results_at_the_limit(p, max);
    return p;
}

/* Which paths a pool's calls at the limit took (limit_pool ran them):
 * calls through the arena, replies through the outbox, and no crash. */
static void assert_paths(ppx_pool *p, uint64_t arena_calls, uint64_t outbox_replies,
                         ppx_pool_stats *st)
{
    ppx_pool_stats_get(p, st);
    assert_int_equal(st->arena_calls, arena_calls);
    assert_int_equal(st->outbox_replies, outbox_replies);
    assert_int_equal(st->crashed, 0);
}

static void test_max_payload_bytes_pass_whole_in_ring_records(void **state)
{
    (void)state;
    /* Frames of 64 KiB and their envelopes stay under a quarter of 1 MiB. */
    ppx_pool *p = limit_pool(1u << 20, 0, 64u << 10);
    ppx_pool_stats st = PPX_POOL_STATS_INIT;
    assert_paths(p, 0, 0, &st);
    ppx_pool_free(p);
}

static void test_max_payload_bytes_pass_in_ring_chunks_without_an_arena(void **state)
{
    (void)state;
    ppx_pool *p = limit_pool(RING, PPX_ARENA_NONE, 1u << 20);
    ppx_pool_stats st = PPX_POOL_STATS_INIT;
    assert_paths(p, 0, 0, &st);
    ppx_pool_free(p);
}

static void test_max_payload_bytes_pass_through_the_arena_and_the_outbox(void **state)
{
    (void)state;
    ppx_pool *p = limit_pool(RING, 0, 1u << 20);
    ppx_pool_stats st = PPX_POOL_STATS_INIT;
    /* The call and the batch at the limit; the result and the results
     * at the limit (and the echoes of the arguments). */
    assert_paths(p, 2, 4, &st);
    assert_int_equal(st.arena_used, 0);
    ppx_pool_free(p);
}

/* An error frame carries no payload but may be longer than a small
 * max_payload: it must still arrive, in chunks or through the outbox. */
static void test_the_longest_error_arrives_from_a_pool_with_a_tiny_max_payload(void **state)
{
    (void)state;
    static const size_t arenas[] = {PPX_ARENA_NONE, 0};
    for (size_t k = 0; k < 2; k++) {
        ppx_pool_options o = PPX_POOL_OPTIONS(.workers = 1, .ring_bytes = 4096, .arena_bytes = arenas[k],
                              .max_payload = 64);
        ppx_pool *p = NULL;
        support_valgrind_sizes(&o);
        assert_int_equal(ppx_pool_new(&o, &p), 0);
        ppx_future *f;
        assert_int_equal(ppx_pool_submit(p, raise_long, NULL, 0, &f), 0);
        assert_int_equal(ppx_future_wait(f, 30000), 0);
        assert_int_equal(ppx_future_state(f), PPX_FAILED);
        const ppx_error *e = ppx_future_error(f);
        assert_int_equal(strlen(e->type), 255);
        assert_int_equal(strspn(e->type, "T"), 255);
        assert_int_equal(strlen(e->message), 4096);
        assert_int_equal(strspn(e->message, "m"), 4096);
        assert_int_equal(strlen(e->where), 255);
        assert_string_equal(e->function, raise_long);
        assert_true(e->pid > 0);
        ppx_future_unref(f);
        ppx_pool_stats st = PPX_POOL_STATS_INIT;
        ppx_pool_stats_get(p, &st);
        assert_int_equal(st.crashed, 0);
        ppx_pool_free(p);
    }
}

static void test_strings_and_bytes_msgpack_cannot_count_are_not_returned(void **state)
{
    (void)state;
    ppx_pool *p = new_pool(1, 0);
    ppx_future *f;
    assert_int_equal(ppx_pool_submitf(p, &f, "return_huge", ""), 0);
    ppx_value v = done_value(f), item;
    int64_t rc;
    for (size_t i = 0; i < 2; i++) {
        assert_int_equal(ppx_value_at(v, i, &item), 0);
        assert_int_equal(ppx_value_int(item, &rc), 0);
        assert_int_equal(rc, PPX_ETOOBIG);
    }
    ppx_future_unref(f);
    ppx_pool_free(p);
}

/* The default arena follows max_payload: it must not push a valid
 * max_payload over the arena's own bound. */
static void test_a_max_payload_of_1_tib_makes_a_pool(void **state)
{
    (void)state;
    ppx_pool_options o = PPX_POOL_OPTIONS(.workers = 1, .max_payload = (size_t)1 << 40);
    ppx_pool *p = NULL;
    support_valgrind_sizes(&o);
    assert_int_equal(ppx_pool_new(&o, &p), 0);
    unsigned char *b = pattern(RING, 9);
    ppx_future *f;
    assert_int_equal(ppx_pool_submitf(p, &f, "echo", "B", b, (size_t)RING), 0);
    assert_echoed(f, b, RING);
    ppx_future_unref(f);
    free(b);
    ppx_pool_free(p);
    o.max_payload++;
    support_valgrind_sizes(&o);
    assert_int_equal(ppx_pool_new(&o, &p), PPX_EINVAL);
}

int main(void)
{
    payloads_support_register();
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_teardown(test_max_payload_bytes_pass_whole_in_ring_records, teardown),
        cmocka_unit_test_teardown(test_max_payload_bytes_pass_in_ring_chunks_without_an_arena,
                                  teardown),
        cmocka_unit_test_teardown(test_max_payload_bytes_pass_through_the_arena_and_the_outbox,
                                  teardown),
        cmocka_unit_test_teardown(
            test_the_longest_error_arrives_from_a_pool_with_a_tiny_max_payload, teardown),
        cmocka_unit_test_teardown(test_strings_and_bytes_msgpack_cannot_count_are_not_returned,
                                  teardown),
        cmocka_unit_test_teardown(test_a_max_payload_of_1_tib_makes_a_pool, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
