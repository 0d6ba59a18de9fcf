/* Big payloads end to end: calls written once into the call arena, results
 * written once into a worker's outbox, and the chunked ring path that
 * takes over when there is no arena or it is full. */
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

/* Sizes on both sides of each place where the path changes: a result
 * held inside its future (24 bytes of value, 22 of them payload), a call
 * frame held inside its task (512 bytes), a frame that becomes big
 * (RING / 4), and far beyond. */
static const size_t sizes[] = {1, 22, 23, 470, 480, RING / 4 - 64, RING / 4 - 20, RING / 4,
                               RING / 4 + 1, RING / 2, RING, 3 * RING + 5, 5u << 20};
#define NSIZES (sizeof sizes / sizeof sizes[0])

static void round_trip_every_size(ppx_pool *p)
{
    for (int round = 0; round < 2; round++) {
        ppx_future *f[NSIZES];
        unsigned char *b[NSIZES];
        for (size_t i = 0; i < NSIZES; i++) {
            b[i] = pattern(sizes[i], (unsigned)(i + 7 * round));
            assert_int_equal(ppx_pool_submitf(p, &f[i], "echo", "B", b[i], sizes[i]), 0);
        }
        for (size_t i = 0; i < NSIZES; i++) {
            assert_echoed(f[i], b[i], sizes[i]);
            ppx_future_unref(f[i]);
            free(b[i]);
        }
    }
}

static void test_every_size_round_trips_through_arena_and_outboxes(void **state)
{
    (void)state;
    ppx_pool *p = new_pool(2, 0);
    round_trip_every_size(p);
    ppx_pool_stats st = PPX_POOL_STATS_INIT;
    ppx_pool_stats_get(p, &st);
    /* The sizes from RING / 4 - 20 on: 7 of them, twice, each way. */
    assert_int_equal(st.arena_calls, 2 * 7);
    assert_int_equal(st.outbox_replies, 2 * 7);
    assert_nothing_held(p);
    ppx_pool_free(p);
}

static void test_without_an_arena_big_frames_travel_in_ring_chunks(void **state)
{
    (void)state;
    ppx_pool *p = new_pool(2, PPX_ARENA_NONE);
    round_trip_every_size(p);
    ppx_pool_stats st = PPX_POOL_STATS_INIT;
    ppx_pool_stats_get(p, &st);
    assert_int_equal(st.arena_calls, 0);
    assert_int_equal(st.outbox_replies, 0);
    assert_nothing_held(p);
    ppx_pool_free(p);
}

static void test_replies_bigger_than_outbox_bytes_travel_in_ring_chunks(void **state)
{
    (void)state;
    /* A 256 KiB outbox: a 64 KiB reply is built there, a 1 MiB one goes
     * in ring chunks and arrives whole all the same. */
    ppx_pool_options o = PPX_POOL_OPTIONS(.workers = 1, .ring_bytes = RING, .outbox_bytes = 256u << 10);
    support_valgrind_sizes(&o);
    ppx_pool *p = NULL;
    assert_int_equal(ppx_pool_new(&o, &p), 0);
    static const size_t replies[] = {64u << 10, 1u << 20};
    uint64_t want[] = {1, 1};
    for (int i = 0; i < 2; i++) {
        unsigned char *b = pattern(replies[i], (unsigned)i + 5);
        ppx_future *f;
        assert_int_equal(ppx_pool_submitf(p, &f, "echo", "B", b, replies[i]), 0);
        assert_echoed(f, b, replies[i]);
        ppx_future_unref(f);
        free(b);
        ppx_pool_stats st = PPX_POOL_STATS_INIT;
        ppx_pool_stats_get(p, &st);
        assert_int_equal(st.outbox_replies, want[i]);
    }
    assert_nothing_held(p);
    ppx_pool_free(p);
}

static void test_calls_that_find_the_arena_full_still_run(void **state)
{
    (void)state;
    /* Room for two of the ten calls at a time: the rest go in chunks. */
    size_t n = 1u << 20;
    ppx_pool *p = new_pool(2, 2 * n + 4096);
    unsigned char *b[10];
    ppx_future *f[10];
    for (int i = 0; i < 10; i++) {
        b[i] = pattern(n - (size_t)i, (unsigned)i);
        assert_int_equal(ppx_pool_submitf(p, &f[i], "slow_echo", "Bi", b[i], n - (size_t)i, 100), 0);
    }
    ppx_pool_stats st = PPX_POOL_STATS_INIT;
    ppx_pool_stats_get(p, &st);
    assert_true(st.arena_calls >= 1 && st.arena_calls <= 2);
    assert_true(st.arena_used > 0);
    for (int i = 0; i < 10; i++) {
        assert_echoed(f[i], b[i], n - (size_t)i);
        ppx_future_unref(f[i]);
        free(b[i]);
    }
    assert_nothing_held(p);
    ppx_pool_free(p);
}

/* Calls queued behind a long one are taken by the idle worker, leaving
 * stale records that point at arena frames which are then freed and
 * reused; the first worker must skip those without reading them. */
static void test_stolen_arena_calls_run_once_and_stale_records_are_skipped(void **state)
{
    (void)state;
    ppx_pool *p = new_pool(2, 0);
    ppx_future *longf;
    assert_int_equal(ppx_pool_submitf(p, &longf, "wait_cancel", ""), 0);
    support_wait_running(longf);
    size_t n = RING; /* big: through the arena */
    for (int round = 0; round < 3; round++) {
        unsigned char *b[16];
        ppx_future *f[16];
        for (int i = 0; i < 16; i++) {
            b[i] = pattern(n, (unsigned)(round * 16 + i));
            assert_int_equal(ppx_pool_submitf(p, &f[i], "slow_echo", "Bi", b[i], n, 2), 0);
        }
        for (int i = 0; i < 16; i++) {
            assert_echoed(f[i], b[i], n);
            ppx_future_unref(f[i]);
            free(b[i]);
        }
    }
    ppx_pool_stats st = PPX_POOL_STATS_INIT;
    ppx_pool_stats_get(p, &st);
    assert_true(st.stolen > 0);
    assert_int_equal(st.arena_calls, 48);
    /* Let the first worker go through its stale records. */
    assert_int_equal(ppx_future_cancel(longf), 0);
    assert_int_equal(ppx_future_wait(longf, 10000), 0);
    ppx_future_unref(longf);
    unsigned char *b = pattern(n, 99);
    ppx_future *f[2];
    for (int i = 0; i < 2; i++)
        assert_int_equal(ppx_pool_submitf(p, &f[i], "echo", "B", b, n), 0);
    for (int i = 0; i < 2; i++) {
        assert_echoed(f[i], b, n);
        ppx_future_unref(f[i]);
    }
    free(b);
    ppx_pool_stats_get(p, &st);
    assert_int_equal(st.crashed, 0);
    assert_int_equal(st.arena_used, 0);
    assert_int_equal(st.completed, 48 + 2);
    ppx_pool_free(p);
}

static void test_a_worker_cannot_write_into_its_arguments(void **state)
{
    (void)state;
    /* The arena is read-only in workers everywhere, valgrind included. */
    ppx_pool *p = new_pool(1, 0);
    size_t n = RING;
    unsigned char *b = pattern(n, 1);
    ppx_future *f;
    assert_int_equal(ppx_pool_submitf(p, &f, "write_arg", "B", b, n), 0);
    assert_int_equal(ppx_future_wait(f, 10000), 0);
    ppx_pool_stats st = PPX_POOL_STATS_INIT;
    ppx_pool_stats_get(p, &st);
    assert_int_equal(st.arena_calls, 1); /* the argument lay in the arena */
    assert_int_equal(ppx_future_state(f), PPX_FAILED);
    assert_string_equal(ppx_future_error(f)->type, "WorkerCrashed");
    assert_non_null(strstr(ppx_future_error(f)->message, "SIGSEGV"));
    ppx_future_unref(f);
    /* The pool heals: the next big call runs on the replacement. */
    assert_int_equal(ppx_pool_submitf(p, &f, "echo", "B", b, n), 0);
    assert_echoed(f, b, n);
    ppx_future_unref(f);
    free(b);
    ppx_pool_free(p);
}

static void test_results_written_into_the_outbox_arrive_whole_or_are_refused(void **state)
{
    (void)state;
    /* The outbox holds max_payload: a result written into it in pieces
     * arrives whole; one that grows beyond moves to the heap, and is then
     * refused as too large. */
    ppx_pool_options o = PPX_POOL_OPTIONS(.workers = 1, .ring_bytes = RING, .max_payload = 1u << 20);
    ppx_pool *p = NULL;
    support_valgrind_sizes(&o);
    assert_int_equal(ppx_pool_new(&o, &p), 0);
    size_t ok = (1u << 20) - 4096, too_big = (1u << 20) + 8192;
    ppx_future *f;
    assert_int_equal(ppx_pool_submitf(p, &f, "pieces", "U", (unsigned long long)ok), 0);
    assert_int_equal(ppx_future_wait(f, 10000), 0);
    assert_int_equal(ppx_future_state(f), PPX_DONE);
    ppx_value v, item;
    const void *q;
    size_t len;
    int64_t tail;
    assert_int_equal(ppx_future_value(f, &v), 0);
    size_t count;
    assert_int_equal(ppx_value_array_len(v, &count), 0);
    assert_int_equal(count, 3);
    assert_int_equal(ppx_value_at(v, 1, &item), 0);
    assert_int_equal(ppx_value_bin(item, &q, &len), 0);
    assert_int_equal(len, ok);
    assert_int_equal(((const unsigned char *)q)[ok - 1], (unsigned char)((ok - 1) * 7 + 3));
    assert_int_equal(ppx_value_at(v, 2, &item), 0);
    assert_int_equal(ppx_value_int(item, &tail), 0);
    assert_int_equal(tail, 42);
    ppx_future_unref(f);
    assert_int_equal(ppx_pool_submitf(p, &f, "pieces", "U", (unsigned long long)too_big), 0);
    assert_int_equal(ppx_future_wait(f, 10000), 0);
    assert_string_equal(ppx_future_error(f)->type, "ResultTooLarge");
    ppx_future_unref(f);
    ppx_pool_free(p);
}

static void test_a_worker_dying_with_its_outbox_busy_does_not_block_the_next(void **state)
{
    (void)state;
    ppx_pool *p = new_pool(1, 0);
    ppx_future *f;
    assert_int_equal(ppx_pool_submitf(p, &f, "die_with_outbox_busy", ""), 0);
    assert_int_equal(ppx_future_wait(f, 10000), 0);
    assert_string_equal(ppx_future_error(f)->type, "WorkerCrashed");
    assert_non_null(strstr(ppx_future_error(f)->message, "SIGSEGV"));
    ppx_future_unref(f);
    size_t n = RING;
    unsigned char *b = pattern(n, 3);
    assert_int_equal(ppx_pool_submitf(p, &f, "echo", "B", b, n), 0);
    assert_echoed(f, b, n);
    ppx_future_unref(f);
    free(b);
    ppx_pool_free(p);
}

/* Big results live in buffers of their own; one freed is kept for the
 * next. A child the application forks still reads the results its parent
 * holds, and frees and allocates its own without touching the parent's. */
static void test_a_forked_child_can_use_big_results(void **state)
{
    (void)state;
    ppx_pool *p = new_pool(1, 0);
    size_t n = 9u << 20; /* above the size big buffers are mapped from */
    unsigned char *b = pattern(n, 11);
    ppx_future *f, *g;
    assert_int_equal(ppx_pool_submitf(p, &f, "echo", "B", b, n), 0);
    assert_echoed(f, b, n);
    assert_int_equal(ppx_pool_submitf(p, &g, "echo", "B", b, n - 1), 0);
    assert_echoed(g, b, n - 1);
    ppx_future_unref(g); /* its buffer is now the kept one */
    /* The child reports through a pipe and dies by SIGKILL: under
     * valgrind an exit would run a leak check over the parent's heap. */
    int fds[2];
    assert_int_equal(pipe(fds), 0);
    fflush(NULL);
    pid_t child = fork();
    if (child == 0) {
        ppx_value v;
        const void *q;
        size_t len;
        char ok = ppx_future_value(f, &v) == 0 && ppx_value_bin(v, &q, &len) == 0 &&
                  len == n && memcmp(q, b, n) == 0;
        unsigned char *mine = malloc(n);
        ok = ok && mine;
        if (mine) {
            memset(mine, 1, n);
            free(mine);
        }
        if (write(fds[1], &ok, 1) != 1)
            ok = 0;
        raise(SIGKILL);
    }
    assert_true(child > 0);
    close(fds[1]);
    char ok = 0;
    assert_int_equal(read(fds[0], &ok, 1), 1);
    close(fds[0]);
    assert_true(ok);
    int status;
    assert_int_equal(waitpid(child, &status, 0), child);
    /* And the parent's next big result is whole. */
    assert_int_equal(ppx_pool_submitf(p, &g, "echo", "B", b, n), 0);
    assert_echoed(g, b, n);
    ppx_future_unref(g);
    ppx_future_unref(f);
    free(b);
    ppx_pool_free(p);
}

static void test_a_big_batch_goes_through_the_arena(void **state)
{
    (void)state;
    ppx_pool *p = new_pool(2, 0);
    enum { N = 64 };
    size_t n = 1024;
    unsigned char *b = pattern(n, 5);
    /* [[bytes], [bytes], ...]: 64 KiB of items, one frame. */
    const void *items;
    size_t len;
    size_t total = 3 + N * (n + 8);
    unsigned char *buf = malloc(total), *w = buf;
    *w++ = 0xdc;
    *w++ = 0;
    *w++ = N;
    for (int i = 0; i < N; i++) {
        *w++ = 0x91;
        *w++ = 0xc5;
        *w++ = (unsigned char)(n >> 8);
        *w++ = (unsigned char)n;
        memcpy(w, b, n);
        w += n;
    }
    items = buf;
    len = (size_t)(w - buf);
    ppx_future *f;
    assert_int_equal(ppx_pool_map(p, "echo", items, len, NULL, &f), 0);
    assert_int_equal(ppx_future_wait(f, 30000), 0);
    assert_int_equal(ppx_future_state(f), PPX_DONE);
    ppx_value v, item;
    assert_int_equal(ppx_future_value(f, &v), 0);
    size_t count;
    assert_int_equal(ppx_value_array_len(v, &count), 0);
    assert_int_equal(count, N);
    for (int i = 0; i < N; i++) {
        const void *q;
        size_t qlen;
        assert_int_equal(ppx_value_at(v, (size_t)i, &item), 0);
        assert_int_equal(ppx_value_bin(item, &q, &qlen), 0);
        assert_int_equal(qlen, n);
        assert_memory_equal(q, b, n);
    }
    ppx_future_unref(f);
    ppx_pool_stats st = PPX_POOL_STATS_INIT;
    ppx_pool_stats_get(p, &st);
    assert_int_equal(st.arena_calls, 1);
    assert_nothing_held(p);
    free(buf);
    free(b);
    ppx_pool_free(p);
}

int main(void)
{
    payloads_support_register();
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_teardown(test_every_size_round_trips_through_arena_and_outboxes, teardown),
        cmocka_unit_test_teardown(test_without_an_arena_big_frames_travel_in_ring_chunks, teardown),
        cmocka_unit_test_teardown(test_replies_bigger_than_outbox_bytes_travel_in_ring_chunks,
                                  teardown),
        cmocka_unit_test_teardown(test_calls_that_find_the_arena_full_still_run, teardown),
        cmocka_unit_test_teardown(test_stolen_arena_calls_run_once_and_stale_records_are_skipped,
                                  teardown),
        cmocka_unit_test_teardown(test_a_worker_cannot_write_into_its_arguments, teardown),
        cmocka_unit_test_teardown(test_results_written_into_the_outbox_arrive_whole_or_are_refused,
                                  teardown),
        cmocka_unit_test_teardown(test_a_worker_dying_with_its_outbox_busy_does_not_block_the_next,
                                  teardown),
        cmocka_unit_test_teardown(test_a_forked_child_can_use_big_results, teardown),
        cmocka_unit_test_teardown(test_a_big_batch_goes_through_the_arena, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
