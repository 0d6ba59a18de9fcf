/* Big payloads end to end: calls written once into the call arena, results
 * written once into a worker's outbox, and the chunked ring path that
 * takes over when there is no arena or it is full. */
#include "support.h"
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

#define RING (64 * 1024) /* frames from RING / 4 are "big" */

static int fn_echo(ppx_call *c, void *u)
{
    (void)u;
    ppx_value v;
    int rc = ppx_call_arg(c, 0, &v);
    return rc ? rc : ppx_return_raw(c, v.data, v.len);
}

/* Echoes its first argument after sleeping its second in milliseconds,
 * so that calls pile up in the rings. */
static int fn_slow_echo(ppx_call *c, void *u)
{
    (void)u;
    ppx_value v;
    int64_t ms;
    if (ppx_call_arg(c, 0, &v) || ppx_call_arg_int(c, 1, &ms))
        return ppx_raise(c, "TypeError", "slow_echo takes bytes and milliseconds");
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
    return ppx_return_raw(c, v.data, v.len);
}

static int fn_wait_cancel(ppx_call *c, void *u)
{
    (void)u;
    while (!ppx_call_cancelled(c)) {
        struct timespec ts = {0, 1000000};
        nanosleep(&ts, NULL);
    }
    return ppx_return_nil(c);
}

/* A buggy function that writes into the arguments it was given. */
static int fn_write_arg(ppx_call *c, void *u)
{
    (void)u;
    const void *p;
    size_t len;
    if (ppx_call_arg_bin(c, 0, &p, &len) || len == 0)
        return ppx_raise(c, "TypeError", "write_arg takes bytes");
    ((volatile unsigned char *)p)[len / 2] ^= 0xff;
    return ppx_return_int(c, 1);
}

/* A function that tries to forge the parent's count of outbox replies
 * copied out (shared.h): the word is read-only in workers, so the worker
 * faults, and its successor starts from a count of its own. */
static int fn_die_with_outbox_busy(ppx_call *c, void *u)
{
    (void)c;
    (void)u;
    FILE *maps = fopen("/proc/self/maps", "r");
    char line[512];
    while (maps && fgets(line, sizeof line, maps)) {
        unsigned long lo, hi;
        char perms[8];
        if (sscanf(line, "%lx-%lx %7s", &lo, &hi, perms) != 3 || perms[3] != 's')
            continue;
        ppx__shared *sh = (ppx__shared *)lo;
        if (sh->magic != PPX__SHARED_MAGIC)
            continue;
        for (uint32_t i = 0; i < sh->nworkers; i++)
            atomic_store((_Atomic uint32_t *)ppx__shared_outbox_copied(sh, i), 7);
    }
    raise(SIGKILL);
    return 0;
}

/* A result built in several pieces, whatever its size. */
static int fn_pieces(ppx_call *c, void *u)
{
    (void)u;
    uint64_t n;
    if (ppx_call_arg_uint(c, 0, &n))
        return ppx_raise(c, "TypeError", "pieces takes a size");
    unsigned char *b = malloc(n ? n : 1);
    for (uint64_t i = 0; i < n; i++)
        b[i] = (unsigned char)(i * 7 + 3);
    int rc = ppx_returnf(c, "sBi", "head", b, (size_t)n, 42);
    free(b);
    return rc;
}

/* Names of PPX__NAME_MAX (255) bytes: the longest call envelope, the
 * longest function field of an error. */
static char echo_long[256], raise_long[256];

/* Writes a msgpack value of exactly n bytes (n >= 5) into b: bytes with
 * a 32-bit length (not the shortest header, but valid, and it makes
 * every size reachable), their body a pattern of seed. */
static void put_value(unsigned char *b, size_t n, unsigned seed)
{
    uint32_t body = (uint32_t)(n - 5);
    b[0] = 0xc6;
    for (int i = 0; i < 4; i++)
        b[1 + i] = (unsigned char)(body >> (24 - 8 * i));
    for (size_t i = 5; i < n; i++)
        b[i] = (unsigned char)(i * 131 + seed);
}

/* make(n, seed): the value put_value writes, n bytes of result. */
static int fn_make(ppx_call *c, void *u)
{
    (void)u;
    uint64_t n, seed;
    if (ppx_call_arg_uint(c, 0, &n) || ppx_call_arg_uint(c, 1, &seed) || n < 5)
        return ppx_raise(c, "TypeError", "make takes a size of at least 5 and a seed");
    unsigned char *b = malloc(n);
    if (!b)
        return ppx_raise(c, "MemoryError", "no memory for %llu bytes", (unsigned long long)n);
    put_value(b, n, (unsigned)seed);
    int rc = ppx_return_raw(c, b, n);
    free(b);
    return rc;
}

/* An error with every field longer than an envelope carries. */
static int fn_raise_long(ppx_call *c, void *u)
{
    (void)u;
    char type[300], where[300], msg[5000];
    memset(type, 'T', sizeof type - 1);
    memset(where, 'W', sizeof where - 1);
    memset(msg, 'm', sizeof msg - 1);
    type[sizeof type - 1] = where[sizeof where - 1] = msg[sizeof msg - 1] = '\0';
    return ppx_raise_at(c, where, type, "%s", msg);
}

/* Strings and bytes msgpack cannot count (over 4 GiB - 1): refused
 * before a byte is read, so one byte behind the pointer is enough. */
static int fn_return_huge(ppx_call *c, void *u)
{
    (void)u;
    static const char one = 'x';
    int s = ppx_return_str(c, &one, (size_t)UINT32_MAX + 1);
    int b = ppx_return_bin(c, &one, SIZE_MAX);
    return ppx_returnf(c, "ii", s, b);
}

static unsigned char *pattern(size_t n, unsigned seed)
{
    unsigned char *b = malloc(n ? n : 1);
    assert_non_null(b);
    for (size_t i = 0; i < n; i++)
        b[i] = (unsigned char)(i * 131 + seed);
    return b;
}

static ppx_pool *new_pool(int workers, size_t arena_bytes)
{
    ppx_pool_options o = PPX_POOL_OPTIONS(.workers = workers, .ring_bytes = RING, .arena_bytes = arena_bytes);
    ppx_pool *p = NULL;
    support_valgrind_sizes(&o);
    assert_int_equal(ppx_pool_new(&o, &p), 0);
    return p;
}

static void assert_echoed(ppx_future *f, const unsigned char *want, size_t n)
{
    assert_int_equal(ppx_future_wait(f, 30000), 0);
    if (ppx_future_state(f) != PPX_DONE)
        fail_msg("echo of %zu bytes: %s: %s", n, ppx_future_error(f)->type,
                 ppx_future_error(f)->message);
    ppx_value v;
    const void *q;
    size_t len;
    assert_int_equal(ppx_future_value(f, &v), 0);
    assert_int_equal(ppx_value_bin(v, &q, &len), 0);
    assert_int_equal(len, n);
    assert_memory_equal(q, want, n);
}

static void assert_nothing_held(ppx_pool *p)
{
    ppx_pool_stats st = PPX_POOL_STATS_INIT;
    ppx_pool_stats_get(p, &st);
    assert_int_equal(st.arena_used, 0);
    assert_int_equal(st.crashed, 0);
    assert_int_equal(st.failed, 0);
}

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

static void test_max_payload_bytes_pass_whole_in_ring_records(void **state)
{
    (void)state;
    /* Frames of 64 KiB and their envelopes stay under a quarter of 1 MiB. */
    ppx_pool *p = limit_pool(1u << 20, 0, 64u << 10);
    ppx_pool_stats st = PPX_POOL_STATS_INIT;
    ppx_pool_stats_get(p, &st);
    assert_int_equal(st.arena_calls, 0);
    assert_int_equal(st.outbox_replies, 0);
    assert_int_equal(st.crashed, 0);
    ppx_pool_free(p);
}

static void test_max_payload_bytes_pass_in_ring_chunks_without_an_arena(void **state)
{
    (void)state;
    ppx_pool *p = limit_pool(RING, PPX_ARENA_NONE, 1u << 20);
    ppx_pool_stats st = PPX_POOL_STATS_INIT;
    ppx_pool_stats_get(p, &st);
    assert_int_equal(st.arena_calls, 0);
    assert_int_equal(st.outbox_replies, 0);
    assert_int_equal(st.crashed, 0);
    ppx_pool_free(p);
}

static void test_max_payload_bytes_pass_through_the_arena_and_the_outbox(void **state)
{
    (void)state;
    ppx_pool *p = limit_pool(RING, 0, 1u << 20);
    ppx_pool_stats st = PPX_POOL_STATS_INIT;
    ppx_pool_stats_get(p, &st);
    /* The call and the batch at the limit; the result and the results
     * at the limit (and the echoes of the arguments). */
    assert_int_equal(st.arena_calls, 2);
    assert_int_equal(st.outbox_replies, 4);
    assert_int_equal(st.crashed, 0);
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

static int teardown(void **state)
{
    (void)state;
    assert_true(support_no_children());
    return 0;
}

int main(void)
{
    ppx_register("echo", fn_echo, NULL);
    ppx_register("slow_echo", fn_slow_echo, NULL);
    ppx_register("wait_cancel", fn_wait_cancel, NULL);
    ppx_register("write_arg", fn_write_arg, NULL);
    ppx_register("pieces", fn_pieces, NULL);
    ppx_register("die_with_outbox_busy", fn_die_with_outbox_busy, NULL);
    ppx_register("make", fn_make, NULL);
    ppx_register("return_huge", fn_return_huge, NULL);
    memset(echo_long, 'e', sizeof echo_long - 1);
    memset(raise_long, 'r', sizeof raise_long - 1);
    ppx_register(echo_long, fn_echo, NULL);
    ppx_register(raise_long, fn_raise_long, NULL);
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
