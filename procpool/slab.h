/*
 * A pool's call blocks (a future, its task, a small frame and the
 * submitter's prefix: one block per call) come from here rather than
 * from malloc. Why: a stream of calls keeps tens of thousands of blocks
 * pending, all fresh heap, and on the machines we measure on a page
 * fault on fresh heap costs more than the rest of a call's work in the
 * parent (issue 15: 100k streamed calls, 11k faults, ~40% of the time in
 * the kernel). The slab hands out fixed-size blocks from chunks that
 * grow to 2 MiB, asks for transparent huge pages and prefaults the big
 * ones in one go, and recycles freed blocks with no global lock (one
 * spin lock per slab, held for a few list operations). A chunk whose
 * blocks are all back is kept for the next burst and goes back to the
 * kernel once it has stayed empty for 10 s (looked at when another chunk
 * empties, and with the slab): the memory of a pool's busiest burst is
 * held that long after it.
 *
 * A slab belongs to a pool but outlives it while blocks are out (a
 * resolved future may be held long after ppx_pool_free): the pool closes
 * it, the last block back frees it. Every block carries its chunk in the
 * 8 bytes before it, so freeing needs no pool and no lookup.
 *
 * Under AddressSanitizer, ThreadSanitizer or valgrind pools do not use
 * one (ppx__slab_for_calls): there a call's block comes from malloc, so
 * that overruns, uses after free and leaked futures are caught. The slab
 * itself is tested on its own (tests/test_slab.c) in every build.
 */
#ifndef PPX_PROCPOOL_SLAB_H
#define PPX_PROCPOOL_SLAB_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct ppx__slab ppx__slab;

/* Whether pools take their call blocks from a slab: not under a
 * sanitizer or valgrind. */
bool ppx__slab_for_calls(void);
/* A new, empty slab (no memory until the first block), or NULL without
 * memory. */
ppx__slab *ppx__slab_new(void);
/* A block of at least bytes bytes, 16-byte aligned, or NULL when bytes is
 * over the biggest size the slab keeps (then use malloc), without memory,
 * or in a fork's child (see ppx__slab_free). s may be NULL (then NULL). */
void *ppx__slab_alloc(ppx__slab *s, size_t bytes);
/* Gives a block back (from any thread). In a child of fork() a block of
 * a slab the parent made stays where it is: the child's copy of the slab
 * is never locked (a thread of the parent may have held the lock at the
 * fork, and no thread of the child would ever release it). */
void ppx__slab_free(void *block);
/* Bytes the slab has mapped now (for tests). */
size_t ppx__slab_mapped(ppx__slab *s);
/* How long a chunk with no block out is kept: 10 s. */
#define PPX__SLAB_KEEP_NS (UINT64_C(10) * 1000000000u)
/* The clock the slab stamps chunks with (CLOCK_MONOTONIC_COARSE, ns). */
uint64_t ppx__slab_now_ns(void);
/* For tests: s stamps and judges its chunks by now_ns instead. */
void ppx__slab_set_clock(ppx__slab *s, uint64_t (*now_ns)(void));
/* Gives back the chunks that had been empty for longer than
 * PPX__SLAB_KEEP_NS at now_ns, as ppx__slab_free does at the clock's
 * time when a chunk empties. Returns the bytes given back (for tests);
 * 0 in a fork's child, as for ppx__slab_free. */
size_t ppx__slab_trim(ppx__slab *s, uint64_t now_ns);
/* The owner lets go: the slab goes now if no block is out, else with the
 * last one. Nothing in a fork's child, as for ppx__slab_free. */
void ppx__slab_close(ppx__slab *s);

#endif
