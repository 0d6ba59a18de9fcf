/*
 * The MPI backend's table (backend.h): rank 0's pool, whose workers are
 * the other ranks. Its bookkeeping is remote.c (no MPI calls), the
 * transport mpi_link.c (the progress thread); what has no meaning across
 * machines (worker pids, a shared call arena) answers here.
 */
#include "remote.h"

static int mpi_start(ppx_pool *p)
{
    p->opt.trace_path = NULL; /* traces are of local workers only */
    return ppx__remote_start(p);
}

static int mpi_spin(ppx_pool *p, int us)
{
    (void)us;
    return ppx_pool_process(p); /* replies come through the progress thread */
}

static bool mpi_busy(ppx_pool *p)
{
    (void)p;
    return false;
}

static int mpi_workers(const ppx_pool *p)
{
    return ppx__remote_of(p)->workers;
}

/* Rank 0 has no worker processes of its own to name. */
static long mpi_worker_pid(ppx_pool *p, int i)
{
    (void)p;
    (void)i;
    return 0;
}

static int mpi_worker_stats(ppx_pool *p, int i, ppx_worker_stats *out)
{
    (void)p;
    (void)i;
    (void)out;
    return PPX_EINVAL;
}

static void *mpi_frame_alloc(ppx_pool *p, size_t cap)
{
    (void)p;
    (void)cap;
    return NULL; /* frames travel in MPI messages, not a shared arena */
}

static bool mpi_frame_free(ppx_pool *p, void *frame, size_t cap)
{
    (void)p;
    (void)frame;
    (void)cap;
    return false;
}

/* A node's workers are its own local pool's, out of rank 0's reach
 * (no message asks a node to signal them, and it would replace them):
 * refused before anything changes. */
static int mpi_signal_workers(ppx_pool *p, int sig, ppx__notify *n)
{
    (void)p;
    (void)sig;
    (void)n;
    return PPX_ENOTSUP;
}

/* The progress thread needs the pool's lock to leave. */
static void mpi_stop(ppx_pool *p)
{
    ppx__pool_unlock(p);
    ppx__remote_stop(p);
    ppx__pool_lock(p);
}

/* A fork's copy has no progress thread: it stays as it is. */
static bool mpi_drop_copy(ppx_pool *p, ppx__notify *n)
{
    (void)p;
    (void)n;
    return false;
}

const ppx__backend_ops ppx__mpi_ops = {
    .start = mpi_start,
    .submit = ppx__remote_submit,
    .cancel = ppx__remote_cancel,
    .cancel_all = ppx__remote_cancel_all,
    .cancel_queued = ppx__remote_cancel_queued,
    .signal_workers = mpi_signal_workers,
    .process = ppx__remote_process,
    .spin = mpi_spin,
    .task_state = ppx__remote_state,
    .busy = mpi_busy,
    .stats = ppx__remote_stats,
    .workers = mpi_workers,
    .worker_pid = mpi_worker_pid,
    .worker_stats = mpi_worker_stats,
    .frame_alloc = mpi_frame_alloc,
    .frame_free = mpi_frame_free,
    .stop = mpi_stop,
    .free_tasks = ppx__remote_free_tasks,
    .drop_copy = mpi_drop_copy,
    .destroy = ppx__remote_destroy,
};
