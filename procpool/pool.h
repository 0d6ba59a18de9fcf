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

/* Low-latency mode (ppx_pool_options.parent_spin_us): the setting, and a
 * bounded poll of the response rings that processes what arrives. Returns
 * futures resolved (0 if nothing came within us). */
int ppx__pool_spin_us(const ppx_pool *p);
int ppx__pool_spin(ppx_pool *p, int us);

/* Hooks run (in order added) when the pool is freed, before its
 * descriptor closes, so a watcher (loop/) can stop polling it first. */
typedef void (*ppx__pool_close_hook)(ppx_pool *p, void *arg);
int ppx__pool_add_close_hook(ppx_pool *p, ppx__pool_close_hook fn, void *arg);
void ppx__pool_remove_close_hook(ppx_pool *p, ppx__pool_close_hook fn, void *arg);

#endif
