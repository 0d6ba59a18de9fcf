/* The worker functions and helpers the test_payloads_* suites share. */
#include "support.h"
#include "payloads_support.h"
#include "procpool/wire/shared.h"

#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

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
char echo_long[256], raise_long[256];

/* Writes a msgpack value of exactly n bytes (n >= 5) into b: bytes with
 * a 32-bit length (not the shortest header, but valid, and it makes
 * every size reachable), their body a pattern of seed. */
void put_value(unsigned char *b, size_t n, unsigned seed)
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

unsigned char *pattern(size_t n, unsigned seed)
{
    unsigned char *b = malloc(n ? n : 1);
    assert_non_null(b);
    for (size_t i = 0; i < n; i++)
        b[i] = (unsigned char)(i * 131 + seed);
    return b;
}

ppx_pool *new_pool(int workers, size_t arena_bytes)
{
    ppx_pool_options o = PPX_POOL_OPTIONS(.workers = workers, .ring_bytes = RING, .arena_bytes = arena_bytes);
    ppx_pool *p = NULL;
    support_valgrind_sizes(&o);
    assert_int_equal(ppx_pool_new(&o, &p), 0);
    return p;
}

void assert_echoed(ppx_future *f, const unsigned char *want, size_t n)
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

void assert_nothing_held(ppx_pool *p)
{
    ppx_pool_stats st = PPX_POOL_STATS_INIT;
    ppx_pool_stats_get(p, &st);
    assert_int_equal(st.arena_used, 0);
    assert_int_equal(st.crashed, 0);
    assert_int_equal(st.failed, 0);
}

int teardown(void **state)
{
    (void)state;
    assert_true(support_no_children());
    return 0;
}

void payloads_support_register(void)
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
}
