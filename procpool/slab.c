#include "slab.h"
#include "fork.h"
#include "util/list.h"

#include <sched.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>

#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
#define SANITIZED 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer) || __has_feature(thread_sanitizer)
#define SANITIZED 1
#endif
#endif

/* Block sizes, the 8-byte word in front of each block included. The
 * smallest is a no-argument call on the blocking API (243 bytes), the
 * next the same through the loop (a 112-byte awaitable in front). */
static const uint32_t class_bytes[] = {256, 384, 512, 768, 1024};
#define NCLASS (sizeof class_bytes / sizeof class_bytes[0])

#define FIRST_CHUNK (64u << 10)
#define HUGE_CHUNK (2u << 20) /* a transparent huge page */

/* Why an empty chunk is kept for the next burst before it goes back to
 * the kernel: fresh memory costs more than the calls cut from it. On the
 * 2-vCPU VM a chunk given
 * back is soon handed on to the host (free page reporting, order 9)
 * and faulting 2 MiB in again costs 2.2-3.5 ms against 0.13 ms for
 * zeroing it; a pool's third and fourth bursts of 100k calls went from
 * 1.22-1.38M to 1.29-1.63M calls/s when its chunks were kept (in other
 * minutes the two were within noise). (PPX__SLAB_KEEP_NS,
 * slab.h: 10 s, jemalloc's default decay.) */

/* A chunk of one class's blocks. A block's word holds its chunk while the
 * block is out, the next free word while it is free. */
typedef struct chunk {
    struct ppx__slab *slab;
    struct chunk *all_prev, *all_next;         /* every chunk of the slab */
    struct chunk *part_prev, *part_next;       /* those with free blocks */
    void **free; /* non-NULL exactly while on the class's partial list */
    char *bump, *end;
    /* On the slab's empty list exactly while no block is out and it is
     * not its class's current chunk (empty_ns: since when). */
    ppx__link empty_link;
    uint64_t empty_ns;
    size_t bytes;
    uint32_t live;
    uint8_t cls;
} chunk;

/* The chunk's header, then the first block's word, placed so that
 * blocks are 16-aligned (as malloc's). */
#define CHUNK_HEAD (((sizeof(chunk) + sizeof(void *) + 15) & ~(size_t)15) - sizeof(void *))

typedef struct slab_class {
    chunk *current; /* where new blocks are cut (bump) */
    chunk *partial; /* chunks with freed blocks, reused first */
    size_t next_bytes;
} slab_class;

struct ppx__slab {
    atomic_flag lock;
    /* The process generation (fork.h) that made it. A fork's child has a
     * copy whose lock another thread of the parent may have held at the
     * fork, forever held there: the copy is never locked, its blocks are
     * never reused, and what the child frees stays where it is. */
    uint32_t gen;
    slab_class cls[NCLASS];
    chunk *all;
    /* Chunks other than a class's current one with no block out, oldest
     * first: kept for the next burst, given back once stale. */
    ppx__list empty;
    uint64_t (*now_ns)(void); /* ppx__slab_now_ns; tests set their own */
    size_t live;
    bool closed;
};

/* A spin lock, not a mutex: it is held for a few list operations, and a
 * mutex's lock and unlock were most of a block's cost (callgrind: ~95
 * instructions a call against ~10). A holder descheduled mid-way (two
 * CPUs, three busy processes) is waited for with sched_yield. */
static void lock(ppx__slab *s)
{
    for (unsigned spins = 0; atomic_flag_test_and_set_explicit(&s->lock, memory_order_acquire);)
        if (++spins % 64 == 0)
            sched_yield();
}

static void unlock(ppx__slab *s)
{
    atomic_flag_clear_explicit(&s->lock, memory_order_release);
}

bool ppx__slab_for_calls(void)
{
#ifdef SANITIZED
    return false;
#else
    /* Valgrind preloads its own libraries into the program it runs; its
     * header may not be there when ppx is built. */
    const char *pre = getenv("LD_PRELOAD");
    return !(pre && strstr(pre, "vgpreload"));
#endif
}

ppx__slab *ppx__slab_new(void)
{
    ppx__slab *s = calloc(1, sizeof *s);
    if (!s)
        return NULL;
    atomic_flag_clear(&s->lock);
    ppx__fork_hold(); /* installs the handler that counts forks */
    ppx__fork_release();
    s->gen = ppx__fork_generation();
    s->now_ns = ppx__slab_now_ns;
    for (size_t i = 0; i < NCLASS; i++)
        s->cls[i].next_bytes = FIRST_CHUNK;
    return s;
}

/* Faults in a fresh chunk with one call: its blocks are cut one after
 * another, so every page will be touched, and a page fault each costs
 * 10-14 us on the 2-vCPU VM against ~1 us a page here. */
static void populate(void *m, size_t bytes)
{
#ifdef MADV_POPULATE_WRITE
    madvise(m, bytes, MADV_POPULATE_WRITE);
#else
    (void)m, (void)bytes;
#endif
}

/* bytes of fresh memory, faulted in; a huge chunk aligned to its size and
 * marked for a transparent huge page (where the kernel has them:
 * otherwise it is populated page by page, as malloc's would fault). */
static void *map_chunk(size_t bytes)
{
    if (bytes < HUGE_CHUNK) {
        void *m = mmap(NULL, bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
        if (m == MAP_FAILED)
            return NULL;
        populate(m, bytes);
        return m;
    }
    char *m = mmap(NULL, 2 * bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (m == MAP_FAILED)
        return NULL;
    char *base = (char *)(((uintptr_t)m + bytes - 1) & ~(uintptr_t)(bytes - 1));
    if (base > m)
        munmap(m, (size_t)(base - m));
    if (base + bytes < m + 2 * bytes)
        munmap(base + bytes, (size_t)(m + 2 * bytes - (base + bytes)));
#ifdef MADV_HUGEPAGE
    madvise(base, bytes, MADV_HUGEPAGE);
#endif
    populate(base, bytes);
    return base;
}

/* A new current chunk for class c (under the lock), or NULL. */
static chunk *grow(ppx__slab *s, unsigned c)
{
    slab_class *k = &s->cls[c];
    chunk *ch = map_chunk(k->next_bytes);
    if (!ch)
        return NULL;
    *ch = (chunk){.slab = s, .all_next = s->all, .bytes = k->next_bytes, .cls = (uint8_t)c};
    ch->bump = (char *)ch + CHUNK_HEAD;
    ch->end = (char *)ch + ch->bytes;
    if (s->all)
        s->all->all_prev = ch;
    s->all = ch;
    if (k->next_bytes < HUGE_CHUNK)
        k->next_bytes *= 2;
    k->current = ch;
    return ch;
}

static void partial_unlink(slab_class *k, chunk *ch)
{
    if (ch->part_prev)
        ch->part_prev->part_next = ch->part_next;
    else
        k->partial = ch->part_next;
    if (ch->part_next)
        ch->part_next->part_prev = ch->part_prev;
    ch->part_prev = ch->part_next = NULL;
}

static void partial_push(slab_class *k, chunk *ch)
{
    ch->part_prev = NULL;
    ch->part_next = k->partial;
    if (k->partial)
        k->partial->part_prev = ch;
    k->partial = ch;
}

static void all_unlink(ppx__slab *s, chunk *ch)
{
    if (ch->all_prev)
        ch->all_prev->all_next = ch->all_next;
    else
        s->all = ch->all_next;
    if (ch->all_next)
        ch->all_next->all_prev = ch->all_prev;
}

/* Takes the chunks empty for longer than PPX__SLAB_KEEP_NS at now_ns off
 * every list (under the lock) and returns them chained by all_next, to be
 * unmapped once the lock is let go. */
static chunk *take_stale(ppx__slab *s, uint64_t now_ns)
{
    chunk *stale = NULL;
    for (ppx__link *e; (e = s->empty.head);) {
        chunk *ch = PPX__CONTAINER_OF(e, chunk, empty_link);
        if (now_ns <= ch->empty_ns || now_ns - ch->empty_ns <= PPX__SLAB_KEEP_NS)
            break;
        ppx__list_remove(&s->empty, e);
        partial_unlink(&s->cls[ch->cls], ch);
        all_unlink(s, ch);
        ch->all_next = stale;
        stale = ch;
    }
    return stale;
}

static size_t unmap_all(chunk *list)
{
    size_t bytes = 0;
    for (chunk *next; list; list = next) {
        next = list->all_next;
        bytes += list->bytes;
        munmap(list, list->bytes);
    }
    return bytes;
}

/* A cheap clock (no system call, 4 ms steps): the decay is counted in
 * seconds. */
uint64_t ppx__slab_now_ns(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC_COARSE, &t);
    return (uint64_t)t.tv_sec * 1000000000ull + (uint64_t)t.tv_nsec;
}

/* A free block's word from class c (under the lock), or NULL. */
static void **take(ppx__slab *s, unsigned c, chunk **from)
{
    slab_class *k = &s->cls[c];
    chunk *ch = k->partial;
    if (ch) {
        void **w = ch->free;
        ch->free = *w;
        if (!ch->free)
            partial_unlink(k, ch);
        if (ch->live == 0 && ch != k->current)
            ppx__list_remove(&s->empty, &ch->empty_link);
        *from = ch;
        return w;
    }
    ch = k->current;
    if (!ch || ch->bump + class_bytes[c] > ch->end)
        if (!(ch = grow(s, c)))
            return NULL;
    void **w = (void **)ch->bump;
    ch->bump += class_bytes[c];
    *from = ch;
    return w;
}

void *ppx__slab_alloc(ppx__slab *s, size_t bytes)
{
    if (!s || s->gen != ppx__fork_generation())
        return NULL;
    unsigned c = 0;
    while (c < NCLASS && bytes + sizeof(void *) > class_bytes[c])
        c++;
    if (c == NCLASS)
        return NULL;
    chunk *ch = NULL;
    lock(s);
    void **w = take(s, c, &ch);
    if (w) {
        ch->live++;
        s->live++;
    }
    unlock(s);
    if (!w)
        return NULL;
    *w = ch;
    return w + 1;
}

static void destroy(ppx__slab *s)
{
    for (chunk *ch = s->all, *next; ch; ch = next) {
        next = ch->all_next;
        munmap(ch, ch->bytes);
    }
    free(s);
}

void ppx__slab_free(void *block)
{
    void **w = (void **)block - 1;
    chunk *ch = *w, *stale = NULL;
    ppx__slab *s = ch->slab;
    if (s->gen != ppx__fork_generation())
        return;
    slab_class *k = &s->cls[ch->cls];
    lock(s);
    if (!ch->free)
        partial_push(k, ch);
    *w = ch->free;
    ch->free = w;
    ch->live--;
    s->live--;
    /* An emptied chunk is kept for the next burst; the ones kept too long
     * go back (looked at only here: a chunk empties once per its blocks). */
    if (ch->live == 0 && ch != k->current) {
        ch->empty_ns = s->now_ns();
        ppx__list_push_back(&s->empty, &ch->empty_link);
        stale = take_stale(s, ch->empty_ns);
    }
    bool gone = s->closed && s->live == 0;
    unlock(s);
    unmap_all(stale);
    if (gone)
        destroy(s);
}

size_t ppx__slab_trim(ppx__slab *s, uint64_t now_ns)
{
    if (!s || s->gen != ppx__fork_generation())
        return 0;
    lock(s);
    chunk *stale = take_stale(s, now_ns);
    unlock(s);
    return unmap_all(stale);
}

void ppx__slab_set_clock(ppx__slab *s, uint64_t (*now_ns)(void))
{
    lock(s);
    s->now_ns = now_ns;
    unlock(s);
}

size_t ppx__slab_mapped(ppx__slab *s)
{
    size_t bytes = 0;
    lock(s);
    for (chunk *ch = s->all; ch; ch = ch->all_next)
        bytes += ch->bytes;
    unlock(s);
    return bytes;
}

void ppx__slab_close(ppx__slab *s)
{
    if (!s || s->gen != ppx__fork_generation())
        return;
    lock(s);
    s->closed = true;
    bool gone = s->live == 0;
    unlock(s);
    if (gone)
        destroy(s);
}
