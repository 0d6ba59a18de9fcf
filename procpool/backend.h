/*
 * The seam between the pool's core (the .c files of procpool/: lifecycle, futures,
 * submission, waits, cancellation policy) and a backend that runs the
 * calls: local/ (forked workers on this machine) or mpi/ (other ranks).
 * The core calls a backend only through this table and never asks which
 * one it holds; a backend keeps its own state behind ppx_pool.be and its
 * own per-call state in ppx__task.be.
 *
 * "lock" below means the pool's mutex is held by the caller; a backend
 * never runs a future's callbacks: it resolves futures onto n and the
 * core runs them after unlocking.
 */
#ifndef PPX_PROCPOOL_BACKEND_H
#define PPX_PROCPOOL_BACKEND_H
#include "future.h"
#include "ppx.h"

#include <stdbool.h>
#include <stddef.h>

struct ppx__task;

typedef struct ppx__backend_ops {
    /* Starts what runs the calls; the core's lock, descriptors and
     * options are ready, the registry is frozen. No lock. On failure the
     * core calls stop, then destroy. 0 or a PPX_E* code. */
    int (*start)(ppx_pool *p);
    /* Takes a new call: queues or places it. Lock. Fails (PPX_ENOMEM)
     * only before changing anything; may resolve t's future at once. */
    int (*submit)(ppx_pool *p, struct ppx__task *t, ppx__notify *n);
    /* Stops t wherever it is and resolves its future (cancelled, or a
     * TimeoutError when timed_out); kill_later: a running call's worker
     * is killed if it does not stop within the grace period. Lock. */
    void (*cancel)(ppx_pool *p, struct ppx__task *t, bool kill_later, bool timed_out,
                   ppx__notify *n);
    void (*cancel_all)(ppx_pool *p, bool kill_later, ppx__notify *n);
    /* Resolves CANCELLED every call no worker can have started yet (its
     * own queue; placed but not claimed) and leaves the others to finish
     * (ppx_pool_shutdown's PPX_SHUTDOWN_CANCEL_QUEUED). Lock. */
    void (*cancel_queued)(ppx_pool *p, ppx__notify *n);
    /* Ends the workers for good (ppx_pool_terminate_workers): cancels as
     * cancel_queued, sends sig to every worker and never replaces one;
     * the calls they ran fail once their deaths are processed. Lock.
     * 0, or a negative code before anything changed when the backend
     * cannot signal its workers. */
    int (*signal_workers)(ppx_pool *p, int sig, ppx__notify *n);
    /* One round of everything the backend has to do: replies, deaths,
     * deadlines, placement. Lock. */
    void (*process)(ppx_pool *p, ppx__notify *n);
    /* Work the backend deferred until the pool's lock is released (a
     * fork, a wait for a process): asked for by setting p->deferred
     * under the lock; ppx__pool_unlock clears it and calls this right
     * after unlocking, on one thread per request. No lock: it may take
     * the lock itself, and must check again under it whether the work
     * is still wanted (another thread may have done it, or the pool may
     * be freeing). Optional (NULL: never asked for). */
    void (*unlocked)(ppx_pool *p);
    /* Low-latency mode: polls for replies up to us microseconds, then
     * processes; the number of futures resolved. No lock. */
    int (*spin)(ppx_pool *p, int us);
    /* PENDING or RUNNING, for t's unresolved future. Lock. */
    ppx_state (*task_state)(ppx_pool *p, struct ppx__task *t);
    /* Whether it has work of its own besides calls (workers starting or
     * waiting to be replaced). Lock. */
    bool (*busy)(ppx_pool *p);
    /* Fills its part of the statistics: queued, crash_streak,
     * arena_used. Lock. */
    void (*stats)(ppx_pool *p, ppx_pool_stats *out);
    /* Workers now (no lock), a worker's pid and statistics (lock). */
    int (*workers)(const ppx_pool *p);
    long (*worker_pid)(ppx_pool *p, int i);
    int (*worker_stats)(ppx_pool *p, int i, ppx_worker_stats *out);
    /* Memory for a frame of cap bytes that the backend reads where it
     * lies (the call arena), or NULL: the core then uses a ppx__bigbuf.
     * Any thread, no lock. frame_free frees what frame_alloc gave and
     * returns false for anything else. */
    void *(*frame_alloc)(ppx_pool *p, size_t cap);
    bool (*frame_free)(ppx_pool *p, void *frame, size_t cap);
    /* Shared buffers (buffer.h): len bytes workers can read in place,
     * and their offset as workers see it (off), or NULL when there is no
     * room or no such memory (MPI). shared_at is the memory at off..
     * off + len, or NULL when that is not all shared memory. Any thread,
     * no lock; shared_free takes what shared_alloc gave. */
    void *(*shared_alloc)(ppx_pool *p, size_t len, uint64_t *off);
    void (*shared_free)(ppx_pool *p, void *mem, size_t len);
    void *(*shared_at)(ppx_pool *p, uint64_t off, uint64_t len);
    /* Stops every worker (the grace period, then SIGKILL). Lock held; it
     * may release and retake it. */
    void (*stop)(ppx_pool *p);
    /* Frees every task it holds, futures long resolved. Lock. */
    void (*free_tasks)(ppx_pool *p);
    /* A fork's copy of the pool (fork.h): resolves its futures CANCELLED
     * on n and frees its tasks touching nothing shared. false when the
     * copy cannot be freed safely; it then stays allocated. Lock. */
    bool (*drop_copy)(ppx_pool *p, ppx__notify *n);
    /* Frees its state. copy: in a fork's copy, only this process's
     * memory. No lock: the last reference is gone. */
    void (*destroy)(ppx_pool *p, bool copy);
} ppx__backend_ops;

/* local/local.c: forked workers on this machine. */
extern const ppx__backend_ops ppx__local_ops;
/* mpi/mpi_link.c: the other ranks of an MPI job, from rank 0. */
extern const ppx__backend_ops ppx__mpi_ops;

#endif
