/* Tests of the SPSC record ring (shm/ring.c) on rings in exactly-sized heap
 * blocks (so the sanitizer build catches any read past the end): wake-up
 * flags and wake-ups between threads, and a stress test with the producer
 * in a forked child and the consumer here. */
#include "support.h"
#include "ring_support.h"
#include "shm/region.h"
#include "shm/ring.h"
#include "shm/wake.h"

#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

/* ------------------------------------------------------------------ */
/* Wake-up flags                                                       */

static void test_ring_want_space_raises_the_flag_that_notify_space_consumes(void **state)
{
    ppx__ring *r = ring_new(256);
    ppx__port port = ppx__port_of(r, 256);
    /* Nobody waits: nothing to wake. */
    uint32_t seq = atomic_load(&r->space_seq);
    assert_false(ppx__ring_notify_space(&port));
    assert_int_equal(atomic_load(&r->space_seq), seq);

    /* Room already there: want_space says so, and still leaves the flag up. */
    assert_true(ppx__ring_want_space(&port, 24));
    assert_int_equal(atomic_load(&r->producer_waiting), 1);
    assert_true(ppx__ring_notify_space(&port));
    assert_int_equal(atomic_load(&r->producer_waiting), 0);
    assert_int_equal(atomic_load(&r->space_seq), seq + 1);
    assert_false(ppx__ring_notify_space(&port)); /* one wake-up per wait */
    assert_int_equal(atomic_load(&r->space_seq), seq + 1);

    /* Full: the producer must wait, and the consumer's release wakes it. */
    for (uint32_t i = 0; i < 8; i++)
        assert_true(push(&port, 24, i, i));
    assert_false(ppx__ring_want_space(&port, 24));
    assert_false(ppx__ring_want_space(&port, 0));
    pop_expect(&port, 24, 0, 0);
    assert_true(ppx__ring_notify_space(&port));
    assert_int_equal(atomic_load(&r->space_seq), seq + 2);
    assert_true(ppx__ring_want_space(&port, 24));
    free(r);
}

static void test_ring_notify_data_wakes_only_a_consumer_that_sleeps(void **state)
{
    ppx__ring *r = ring_new(256);
    ppx__port port = ppx__port_of(r, 256);
    uint32_t seq = atomic_load(&r->data_seq);
    assert_true(push(&port, 1, 0, 0));
    ppx__ring_notify_data(&port);
    assert_int_equal(atomic_load(&r->data_seq), seq);

    atomic_store(&r->consumer_waiting, 1); /* as wait_data leaves it when it sleeps */
    ppx__ring_notify_data(&port);
    assert_int_equal(atomic_load(&r->data_seq), seq + 1);
    assert_int_equal(atomic_load(&r->consumer_waiting), 0);
    ppx__ring_notify_data(&port);
    assert_int_equal(atomic_load(&r->data_seq), seq + 1);

    /* kick wakes whatever the flag says. */
    ppx__ring_kick(&port);
    assert_int_equal(atomic_load(&r->data_seq), seq + 2);
    free(r);
}

static void test_ring_wait_data_returns_for_data_or_stop_and_times_out_otherwise(void **state)
{
    ppx__ring *r = ring_new(256);
    ppx__port port = ppx__port_of(r, 256);
    _Atomic uint32_t stop = 0;
    assert_int_equal(ppx__ring_wait_data(&port, 0, 0, &stop), -ETIMEDOUT);
    assert_int_equal(ppx__ring_wait_data(&port, 10, 1, NULL), -ETIMEDOUT);
    assert_int_equal(atomic_load(&r->consumer_waiting), 0);

    atomic_store(&stop, 1);
    assert_int_equal(ppx__ring_wait_data(&port, 0, -1, &stop), 0);
    assert_int_equal(ppx__ring_wait_data(&port, 10, -1, &stop), 0);
    assert_int_equal(atomic_load(&r->consumer_waiting), 0);
    atomic_store(&stop, 0);

    assert_true(push(&port, 3, 0, 0));
    assert_int_equal(ppx__ring_wait_data(&port, 0, -1, &stop), 0);
    assert_int_equal(ppx__ring_wait_data(&port, 10, -1, NULL), 0);
    free(r);
}

static void test_ring_wait_space_returns_when_it_fits_and_times_out_when_full(void **state)
{
    ppx__ring *r = ring_new(256);
    ppx__port port = ppx__port_of(r, 256);
    assert_int_equal(ppx__ring_wait_space(&port, 120, 0, -1), 0);
    assert_int_equal(ppx__ring_wait_space(&port, 120, 10, -1), 0);
    for (uint32_t i = 0; i < 8; i++)
        assert_true(push(&port, 24, i, i));
    assert_int_equal(ppx__ring_wait_space(&port, 0, 0, 0), -ETIMEDOUT);
    assert_int_equal(ppx__ring_wait_space(&port, 24, 10, 1), -ETIMEDOUT);
    pop_expect(&port, 24, 0, 0);
    assert_int_equal(ppx__ring_wait_space(&port, 24, 0, -1), 0);
    assert_int_equal(ppx__ring_wait_space(&port, 25, 0, 0), -ETIMEDOUT);
    free(r);
}

/* A thread blocked in wait_data / wait_space with no timeout. If a wake-up
 * is lost the main thread gives up after a long deadline, unblocks it by
 * hand and fails the test, rather than hang. */
typedef struct sleeper {
    ppx__port *port; /* the sleeping side's own port */
    _Atomic uint32_t stop;
    _Atomic int done;
    int rc;
    bool fits; /* what the thread saw when it returned */
} sleeper;

static void *consumer_thread(void *arg)
{
    sleeper *s = arg;
    s->rc = ppx__ring_wait_data(s->port, 0, -1, &s->stop);
    s->fits = !ppx__ring_empty(s->port);
    atomic_store(&s->done, 1);
    return NULL;
}

static void *producer_thread(void *arg)
{
    sleeper *s = arg;
    s->rc = ppx__ring_wait_space(s->port, 24, 0, -1);
    s->fits = ppx__ring_reserve(s->port, 24) != NULL;
    atomic_store(&s->done, 1);
    return NULL;
}

static bool wait_until_set(_Atomic uint32_t *w, _Atomic int *i, int64_t ms)
{
    int64_t deadline = support_now_ms() + ms;
    while (support_now_ms() < deadline) {
        if ((w && atomic_load(w)) || (i && atomic_load(i)))
            return true;
        struct timespec ts = {0, 200000};
        nanosleep(&ts, NULL);
    }
    return false;
}

static void test_ring_sleeping_consumer_is_woken_by_notify_data(void **state)
{
    ppx__ring *r = ring_new(256);
    ppx__port port = ppx__port_of(r, 256);
    sleeper s = {.port = &port};
    pthread_t t;
    assert_int_equal(pthread_create(&t, NULL, consumer_thread, &s), 0);
    bool asleep = wait_until_set(&r->consumer_waiting, NULL, 10000);
    if (asleep) {
        assert_true(push(&port, 4, 0, 0));
        ppx__ring_notify_data(&port);
    }
    bool woke = wait_until_set(NULL, &s.done, 10000);
    if (!woke) {
        atomic_store(&s.stop, 1);
        ppx__ring_kick(&port);
    }
    pthread_join(t, NULL);
    assert_true(asleep);
    assert_true(woke);
    assert_int_equal(s.rc, 0);
    assert_true(s.fits);
    free(r);
}

static void test_ring_sleeping_producer_is_woken_by_notify_space(void **state)
{
    ppx__ring *r = ring_new(256);
    ppx__port port = ppx__port_of(r, 256);
    for (uint32_t i = 0; i < 8; i++)
        assert_true(push(&port, 24, i, i));
    sleeper s = {.port = &port};
    pthread_t t;
    assert_int_equal(pthread_create(&t, NULL, producer_thread, &s), 0);
    bool asleep = wait_until_set(&r->producer_waiting, NULL, 10000);
    bool notified = false;
    if (asleep) {
        pop_expect(&port, 24, 0, 0);
        notified = ppx__ring_notify_space(&port);
    }
    bool woke = wait_until_set(NULL, &s.done, 10000);
    if (!woke) {
        if (!asleep)
            pop_expect(&port, 24, 0, 0);
        atomic_fetch_add(&r->space_seq, 1);
        ppx__futex_wake(&r->space_seq, 1);
    }
    pthread_join(t, NULL);
    assert_true(asleep);
    assert_true(notified);
    assert_true(woke);
    assert_int_equal(s.rc, 0);
    assert_true(s.fits);
    free(r);
}

/* ------------------------------------------------------------------ */
/* Stress: a forked producer, this process consumes                    */

#define STRESS_CAPACITY (64u * 1024u)
#define STRESS_RECORDS 1000000u
#define STRESS_LEN_SEED 0x243f6a8885a308d3ull
#define STRESS_WAIT_MS 10000

static uint64_t fnv1a(uint64_t h, const unsigned char *p, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        h ^= p[i];
        h *= 0x100000001b3ull;
    }
    return h;
}

/* Record lengths, replayed by the consumer from the same seed: mostly a
 * few hundred bytes, some up to 4 KiB, a few up to and at max_record. */
static size_t stress_len(uint64_t *s, size_t max)
{
    uint64_t x = support_xorshift(s);
    unsigned pick = (unsigned)(x % 1000);
    x >>= 10;
    if (pick < 800)
        return x % 256;
    if (pick < 995)
        return x % 4096;
    if (pick < 999)
        return x % (max + 1);
    return max;
}

/* A payload of len >= 16 holds the sequence number, then the FNV-1a of
 * every other byte, then random bytes; shorter ones hold bytes derived
 * from the sequence number. */
static void stress_fill(unsigned char *p, size_t len, uint64_t seq, uint64_t *s)
{
    if (len < 16) {
        for (size_t i = 0; i < len; i++)
            p[i] = (uint8_t)(seq * 151u + i);
        return;
    }
    memcpy(p, &seq, 8);
    for (size_t i = 16; i < len; i += 8) {
        uint64_t x = support_xorshift(s);
        memcpy(p + i, &x, len - i < 8 ? len - i : 8);
    }
    uint64_t h = fnv1a(fnv1a(0xcbf29ce484222325ull, p, 8), p + 16, len - 16);
    memcpy(p + 8, &h, 8);
}

static const char *stress_check(const unsigned char *p, size_t len, uint64_t seq)
{
    if (len < 16) {
        for (size_t i = 0; i < len; i++)
            if (p[i] != (uint8_t)(seq * 151u + i))
                return "short payload has wrong bytes";
        return NULL;
    }
    uint64_t got_seq, sum;
    memcpy(&got_seq, p, 8);
    memcpy(&sum, p + 8, 8);
    if (got_seq != seq)
        return "sequence number out of order";
    if (sum != fnv1a(fnv1a(0xcbf29ce484222325ull, p, 8), p + 16, len - 16))
        return "checksum mismatch";
    return NULL;
}

static void stress_produce(ppx__ring *r, pid_t parent)
{
    /* Die with the parent, so a failed test never leaves us blocked. */
    if (prctl(PR_SET_PDEATHSIG, SIGKILL) != 0 || getppid() != parent)
        _exit(2);
    /* The producer's own port, in this process's private memory. */
    ppx__port port = ppx__port_of(r, STRESS_CAPACITY);
    size_t max = ppx__ring_max_record(&port);
    uint64_t len_rng = STRESS_LEN_SEED, body_rng = 0x13198a2e03707344ull;
    for (uint64_t seq = 0; seq < STRESS_RECORDS; seq++) {
        size_t len = stress_len(&len_rng, max);
        unsigned char *p;
        while (!(p = ppx__ring_reserve(&port, len)))
            if (ppx__ring_wait_space(&port, len, 64, STRESS_WAIT_MS) != 0)
                _exit(3);
        stress_fill(p, len, seq, &body_rng);
        ppx__ring_commit(&port, len, (uint32_t)(seq & 0x7fffffff));
        ppx__ring_notify_data(&port);
    }
    _exit(0);
}

static int teardown_no_children(void **state)
{
    assert_true(support_no_children());
    return 0;
}

static void test_ring_stress_a_million_records_across_two_processes(void **state)
{
    size_t fp = ppx__ring_footprint(STRESS_CAPACITY);
    void *mem = NULL;
    assert_int_equal(ppx__region_map(fp, &mem), 0);
    ppx__ring *r = mem;
    assert_int_equal(ppx__ring_init(r, STRESS_CAPACITY), 0);
    /* The consumer's port; the forked producer makes its own. */
    ppx__port port = ppx__port_of(r, STRESS_CAPACITY);
    size_t max = ppx__ring_max_record(&port);

    pid_t parent = getpid();
    fflush(NULL);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0)
        stress_produce(r, parent);

    _Atomic uint32_t stop = 0;
    uint64_t len_rng = STRESS_LEN_SEED;
    uint64_t seq = 0, bytes = 0, wraps = 0, at_max = 0;
    const unsigned char *last = r->data;
    const char *err = NULL;
    size_t expect_len = stress_len(&len_rng, max);
    while (seq < STRESS_RECORDS) {
        const void *payload;
        size_t len;
        uint32_t flags;
        int rc = ppx__ring_peek(&port, &payload, &len, &flags);
        if (rc == 0) {
            if (ppx__ring_wait_data(&port, 64, STRESS_WAIT_MS, &stop) != 0) {
                err = "timed out waiting for data";
                break;
            }
            continue;
        }
        if (rc < 0) {
            err = "peek failed";
            break;
        }
        const unsigned char *p = payload;
        if (!in_data(&port, p, len)) {
            err = "payload outside the ring or not contiguous";
            break;
        }
        if (len != expect_len) {
            err = "wrong length";
            break;
        }
        if (flags != (uint32_t)(seq & 0x7fffffff)) {
            err = "wrong flags";
            break;
        }
        if ((err = stress_check(p, len, seq)))
            break;
        wraps += p < last;
        last = p;
        at_max += len == max;
        bytes += HDR + ((len + 7) & ~(size_t)7);
        ppx__ring_release(&port, len);
        ppx__ring_notify_space(&port);
        if (++seq < STRESS_RECORDS)
            expect_len = stress_len(&len_rng, max);
    }
    if (err)
        kill(pid, SIGKILL);
    int status = 0;
    pid_t reaped = waitpid(pid, &status, 0);
    bool empty = ppx__ring_empty(&port);
    ppx__region_unmap(mem, fp);

    if (err)
        fail_msg("record %llu (expected %zu bytes): %s", (unsigned long long)seq,
                 expect_len, err);
    assert_int_equal(reaped, pid);
    assert_true(WIFEXITED(status));
    assert_int_equal(WEXITSTATUS(status), 0);
    assert_true(empty);
    assert_true(at_max > 0);
    /* Every pass over the ring ends in one wrap to offset 0. */
    assert_true(bytes / STRESS_CAPACITY > 1000);
    assert_true(wraps + 1 >= bytes / STRESS_CAPACITY);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_ring_want_space_raises_the_flag_that_notify_space_consumes),
        cmocka_unit_test(test_ring_notify_data_wakes_only_a_consumer_that_sleeps),
        cmocka_unit_test(test_ring_wait_data_returns_for_data_or_stop_and_times_out_otherwise),
        cmocka_unit_test(test_ring_wait_space_returns_when_it_fits_and_times_out_when_full),
        cmocka_unit_test(test_ring_sleeping_consumer_is_woken_by_notify_data),
        cmocka_unit_test(test_ring_sleeping_producer_is_woken_by_notify_space),
        cmocka_unit_test_teardown(test_ring_stress_a_million_records_across_two_processes,
                                  teardown_no_children),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
