/*
 * The slab of call blocks (procpool/slab.h) on its own: pools use it only
 * in plain builds (not under the sanitizers or valgrind), so its own
 * rules are checked here, in every build: blocks that do not overlap and
 * keep what is written to them, recycling, chunks given back, a slab that
 * outlives its owner while blocks are out, and frees from other threads.
 */
#include "procpool/slab.h"

#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>

enum { MANY = 60000 };

/* Fills a block with a pattern only it has. */
static void stamp(unsigned char *b, size_t n, uint32_t seed)
{
    for (size_t i = 0; i < n; i++)
        b[i] = (unsigned char)(seed * 131u + i);
}

static int stamped(const unsigned char *b, size_t n, uint32_t seed)
{
    for (size_t i = 0; i < n; i++)
        if (b[i] != (unsigned char)(seed * 131u + i))
            return 0;
    return 1;
}

static void test_blocks_aligned_and_separate(void **state)
{
    (void)state;
    ppx__slab *s = ppx__slab_new();
    assert_non_null(s);
    static const size_t sizes[] = {1, 100, 243, 248, 249, 368, 376, 500, 760, 1016};
    unsigned char *b[10];
    for (int i = 0; i < 10; i++) {
        b[i] = ppx__slab_alloc(s, sizes[i]);
        assert_non_null(b[i]);
        assert_int_equal((uintptr_t)b[i] % 16, 0); /* as malloc's */
        stamp(b[i], sizes[i], (uint32_t)i);
    }
    for (int i = 0; i < 10; i++)
        assert_true(stamped(b[i], sizes[i], (uint32_t)i));
    /* Over the biggest size: the caller uses malloc. */
    assert_null(ppx__slab_alloc(s, 1017));
    assert_null(ppx__slab_alloc(NULL, 16));
    for (int i = 0; i < 10; i++)
        ppx__slab_free(b[i]);
    ppx__slab_close(s);
}

static void test_freed_block_is_reused(void **state)
{
    (void)state;
    ppx__slab *s = ppx__slab_new();
    void *a = ppx__slab_alloc(s, 200);
    void *keep = ppx__slab_alloc(s, 200);
    ppx__slab_free(a);
    /* The next block of the size is the one just freed, not fresh memory. */
    void *b = ppx__slab_alloc(s, 240);
    assert_ptr_equal(a, b);
    ppx__slab_free(b);
    ppx__slab_free(keep);
    ppx__slab_close(s);
}

static void alloc_stamped(ppx__slab *s, unsigned char **b, uint32_t n)
{
    for (uint32_t i = 0; i < n; i++) {
        assert_non_null(b[i] = ppx__slab_alloc(s, 240));
        stamp(b[i], 240, i);
    }
}

/* The slab's clock in these tests: they move it by hand. */
static uint64_t fake_now;

static uint64_t fake_clock(void)
{
    return fake_now;
}

/* Many blocks (several chunks) keep their contents. Freed in another
 * order, the chunks stay for the next burst, which maps nothing new;
 * once they are stale they go back but for the chunk blocks are cut
 * from. */
static void test_many_blocks_and_chunks_kept_then_back(void **state)
{
    (void)state;
    ppx__slab *s = ppx__slab_new();
    ppx__slab_set_clock(s, fake_clock);
    fake_now = 1000;
    unsigned char **b = malloc(MANY * sizeof *b);
    assert_non_null(b);
    alloc_stamped(s, b, MANY);
    size_t grown = ppx__slab_mapped(s);
    assert_true(grown >= (size_t)MANY * 256);
    for (uint32_t i = 0; i < MANY; i++)
        assert_true(stamped(b[i], 240, i));
    for (uint32_t i = 1; i < MANY; i += 2) /* odd ones, then even ones */
        ppx__slab_free(b[i]);
    for (uint32_t i = 0; i < MANY; i += 2)
        ppx__slab_free(b[i]);
    assert_int_equal(ppx__slab_mapped(s), grown);
    /* Kept for PPX__SLAB_KEEP_NS from when each chunk emptied. */
    assert_int_equal(ppx__slab_trim(s, fake_now + PPX__SLAB_KEEP_NS), 0);
    alloc_stamped(s, b, MANY); /* the next burst */
    assert_int_equal(ppx__slab_mapped(s), grown);
    /* Chunks in use again are no longer empty, however old. */
    assert_int_equal(ppx__slab_trim(s, UINT64_MAX), 0);
    for (uint32_t i = 0; i < MANY; i++)
        assert_true(stamped(b[i], 240, i));
    for (uint32_t i = 0; i < MANY; i++)
        ppx__slab_free(b[i]);
    size_t back = ppx__slab_trim(s, fake_now + PPX__SLAB_KEEP_NS + 1);
    /* Left: the chunk blocks are cut from (at most 2 MiB). */
    assert_true(back > 0);
    assert_int_equal(ppx__slab_mapped(s), grown - back);
    assert_true(ppx__slab_mapped(s) <= (2u << 20));
    assert_non_null(b[0] = ppx__slab_alloc(s, 240)); /* still usable */
    ppx__slab_free(b[0]);
    free(b);
    ppx__slab_close(s);
}

/* What ppx__slab_free does when a chunk empties: chunks empty for longer
 * than PPX__SLAB_KEEP_NS go back then, the younger ones stay. */
static void test_stale_chunks_go_when_another_empties(void **state)
{
    (void)state;
    ppx__slab *s = ppx__slab_new();
    ppx__slab_set_clock(s, fake_clock);
    unsigned char **b = malloc(MANY * sizeof *b);
    assert_non_null(b);
    alloc_stamped(s, b, MANY);
    size_t grown = ppx__slab_mapped(s);
    fake_now = 5000; /* the first half empties its chunks now */
    for (uint32_t i = 0; i < MANY / 2; i++)
        ppx__slab_free(b[i]);
    /* The second half's, but for one block in a chunk before the last
     * (blocks are cut from the last): not stale yet. */
    uint32_t held = MANY / 2 + 100;
    fake_now += PPX__SLAB_KEEP_NS;
    for (uint32_t i = MANY / 2; i < MANY; i++)
        if (i != held)
            ppx__slab_free(b[i]);
    assert_int_equal(ppx__slab_mapped(s), grown);
    /* A nanosecond later that block's chunk empties, and the first
     * half's chunks are then older than the slab keeps. */
    fake_now += 1;
    ppx__slab_free(b[held]);
    size_t left = ppx__slab_mapped(s);
    assert_true(left < grown);
    /* Only the first half's chunks went: the second half's stay until
     * they are stale too. */
    assert_true(grown - left <= (size_t)(MANY / 2) * 256 + (2u << 20));
    assert_true(ppx__slab_trim(s, fake_now + PPX__SLAB_KEEP_NS + 1) > 0);
    assert_true(ppx__slab_mapped(s) <= (2u << 20));
    free(b);
    ppx__slab_close(s);
}

typedef struct handoff {
    unsigned char **blocks;
    uint32_t n;
} handoff;

static void *free_all(void *arg)
{
    handoff *h = arg;
    for (uint32_t i = 0; i < h->n; i++) {
        if (!stamped(h->blocks[i], 300, i))
            return (void *)1;
        ppx__slab_free(h->blocks[i]);
    }
    return NULL;
}

/* The owner closes while blocks are out; another thread frees them; the
 * last one takes the slab (ASan's leak check and valgrind see that it
 * went). */
static void test_outlives_owner(void **state)
{
    (void)state;
    ppx__slab *s = ppx__slab_new();
    handoff h = {malloc(1000 * sizeof(unsigned char *)), 1000};
    for (uint32_t i = 0; i < h.n; i++) {
        h.blocks[i] = ppx__slab_alloc(s, 300);
        stamp(h.blocks[i], 300, i);
    }
    ppx__slab_close(s);
    pthread_t t;
    assert_int_equal(pthread_create(&t, NULL, free_all, &h), 0);
    void *bad;
    pthread_join(t, &bad);
    assert_null(bad);
    free(h.blocks);
}

typedef struct churn {
    ppx__slab *s;
    int failed;
} churn;

/* Allocates and frees in bursts, checking every block it holds. */
static void *churn_run(void *arg)
{
    churn *c = arg;
    unsigned char *held[512];
    for (uint32_t round = 0; round < 200; round++) {
        uint32_t n = 1 + (round * 37) % 512;
        for (uint32_t i = 0; i < n; i++) {
            if (!(held[i] = ppx__slab_alloc(c->s, 100 + (i % 3) * 150)))
                c->failed = 1;
            else
                stamp(held[i], 100, round + i);
        }
        for (uint32_t i = 0; i < n; i++)
            if (held[i]) {
                if (!stamped(held[i], 100, round + i))
                    c->failed = 1;
                ppx__slab_free(held[i]);
            }
    }
    return NULL;
}

static void test_threads_share_a_slab(void **state)
{
    (void)state;
    ppx__slab *s = ppx__slab_new();
    churn c[3] = {{s, 0}, {s, 0}, {s, 0}};
    pthread_t t[3];
    for (int i = 0; i < 3; i++)
        assert_int_equal(pthread_create(&t[i], NULL, churn_run, &c[i]), 0);
    for (int i = 0; i < 3; i++) {
        pthread_join(t[i], NULL);
        assert_int_equal(c[i].failed, 0);
    }
    ppx__slab_close(s);
}

/* What a child of fork() does with its copy of a slab: it frees and
 * allocates without taking the copy's lock, which a thread of the parent
 * may have held at the fork and nothing in the child would release. */
static int child_uses_copy(ppx__slab *s, void *parents_block)
{
    ppx__slab_free(parents_block); /* stays where it is */
    if (ppx__slab_alloc(s, 100) != NULL)
        return 1; /* the copy must hand out nothing: callers use malloc */
    ppx__slab_close(s); /* nothing either */
    return 0;
}

static void test_fork_child_leaves_the_copy_alone(void **state)
{
    (void)state;
    ppx__slab *s = ppx__slab_new();
    unsigned char *b = ppx__slab_alloc(s, 100);
    assert_non_null(b);
    stamp(b, 100, 7);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0)
        _exit(child_uses_copy(s, b));
    int st;
    assert_int_equal(waitpid(pid, &st, 0), pid);
    assert_true(WIFEXITED(st));
    assert_int_equal(WEXITSTATUS(st), 0);
    /* The parent's slab and block are its own still. */
    assert_true(stamped(b, 100, 7));
    ppx__slab_free(b);
    assert_ptr_equal(ppx__slab_alloc(s, 100), b);
    ppx__slab_free(b);
    ppx__slab_close(s);
}

/* The same while other threads churn the slab, so that some forks happen
 * with its lock held: every child must still finish (a child spinning on
 * the copied lock would hang here until the suite's timeout). */
static void test_fork_while_threads_churn(void **state)
{
    (void)state;
    ppx__slab *s = ppx__slab_new();
    churn c[2] = {{s, 0}, {s, 0}};
    pthread_t t[2];
    for (int i = 0; i < 2; i++)
        assert_int_equal(pthread_create(&t[i], NULL, churn_run, &c[i]), 0);
    for (int k = 0; k < 40; k++) {
        void *b = ppx__slab_alloc(s, 200);
        assert_non_null(b);
        pid_t pid = fork();
        assert_true(pid >= 0);
        if (pid == 0)
            _exit(child_uses_copy(s, b));
        int st;
        assert_int_equal(waitpid(pid, &st, 0), pid);
        assert_true(WIFEXITED(st) && WEXITSTATUS(st) == 0);
        ppx__slab_free(b);
    }
    for (int i = 0; i < 2; i++) {
        pthread_join(t[i], NULL);
        assert_int_equal(c[i].failed, 0);
    }
    ppx__slab_close(s);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_blocks_aligned_and_separate),
        cmocka_unit_test(test_freed_block_is_reused),
        cmocka_unit_test(test_many_blocks_and_chunks_kept_then_back),
        cmocka_unit_test(test_stale_chunks_go_when_another_empties),
        cmocka_unit_test(test_outlives_owner),
        cmocka_unit_test(test_threads_share_a_slab),
        cmocka_unit_test(test_fork_child_leaves_the_copy_alone),
        cmocka_unit_test(test_fork_while_threads_churn),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
