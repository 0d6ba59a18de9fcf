/* What futures need from the pool (struct ppx_pool stays in pool.c). */
#ifndef PPX_PROCPOOL_POOL_H
#define PPX_PROCPOOL_POOL_H
#include "ppx.h"

/* 0 for a live pool this process made, PPX_EBADOBJ for no live pool,
 * PPX_EFORKED for a copy inherited through fork() (see fork.h). */
int ppx__pool_check(const ppx_pool *p);
void ppx__pool_lock(ppx_pool *p);
/* References on the pool's memory (the owner's, one per unresolved
 * future, one per blocking shutdown); the last unref destroys it. */
void ppx__pool_ref(ppx_pool *p);
void ppx__pool_unref(ppx_pool *p);
void ppx__pool_unlock(ppx_pool *p);
/* PENDING or RUNNING for an unresolved future, else its final state. */
ppx_state ppx__pool_task_state(ppx_pool *p, ppx_future *f);
int ppx__pool_wait(ppx_pool *p, ppx_future *f, int timeout_ms);
int ppx__pool_cancel(ppx_pool *p, ppx_future *f);
/* What a submitter does to a call's future before the pool has it:
 * run once the future exists and its function is registered, before any
 * other thread can see it, with no lock held. It may add the future's
 * first done callback (ppx__future_first_callback) and use the prefix.
 * 0, or a code that fails the submission: the call is dropped unsent,
 * and no callback of it ever runs. */
typedef int (*ppx__submit_prep)(ppx_future *f, void *ctx);
/* ppx_pool_submit_ex with prefix bytes (a multiple of 8, at most 2040)
 * in front of the future, in the call's one block: the caller's
 * (ppx__future_prefix) while it holds a reference to the future. prep
 * (NULL: none) runs as above with ctx, unless the function is one nobody
 * registered: then *out has failed already and prep is not called. */
int ppx__pool_submit_prefixed(ppx_pool *p, const char *fn, const void *args, size_t args_len,
                              const ppx_call_options *opts, size_t prefix,
                              ppx__submit_prep prep, void *ctx, ppx_future **out);

/* Low-latency mode (ppx_pool_options.parent_spin_us): the setting, and a
 * bounded poll of the response rings that processes what arrives. Returns
 * futures resolved (0 if nothing came within us). */
int ppx__pool_spin_us(const ppx_pool *p);
int ppx__pool_spin(ppx_pool *p, int us);

/* Close hooks: a watcher of the pool's descriptor (loop/) learns that the
 * pool is being freed. ppx_pool_free runs each hook once, after every
 * future is resolved and before its descriptors close, on the freeing
 * thread, with no lock held (the last added runs first).
 *
 * Each hook added holds the pool (its memory and descriptors) until it
 * lets go: a hook that returns true has stopped watching and lets go as it
 * returns; one that returns false (its watcher lives on another thread,
 * which must stop polling on that thread) keeps the pool until it calls
 * ppx__pool_remove_close_hook, from any thread, once it no longer polls.
 * The pool's descriptors close, and its memory goes, only then: a watcher
 * never polls a closed, perhaps reused, descriptor, and no hook waits for
 * another thread. In a fork's copy every hook must stop at once (the copy
 * goes whatever they return).
 *
 * add fails with PPX_ECLOSED once ppx_pool_free has begun, and PPX_ENOMEM.
 * remove drops the hold of a hook still added (else does nothing) and may
 * free the pool: call it before the hook ran (unwatching a live pool) or
 * after it returned false, never while it runs. */
typedef bool (*ppx__pool_close_hook)(ppx_pool *p, void *arg);
int ppx__pool_add_close_hook(ppx_pool *p, ppx__pool_close_hook fn, void *arg);
void ppx__pool_remove_close_hook(ppx_pool *p, ppx__pool_close_hook fn, void *arg);

#endif
