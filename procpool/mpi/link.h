/*
 * Rank 0's MPI side, shared by mpi_link.c (start-up, stop, goodbye) and
 * progress.c (the progress thread): what this process knows of the
 * cluster. After MPI_Init the progress thread is the only one that calls
 * MPI (MPI_THREAD_SERIALIZED is all we ask for).
 */
#ifndef PPX_PROCPOOL_MPI_LINK_H
#define PPX_PROCPOOL_MPI_LINK_H
#include "remote.h"

#include <mpi.h>
#include <pthread.h>
#include <stdbool.h>
#include <sys/types.h>

/* What rank 0 knows of the cluster; one per process, kept across pools. */
typedef struct ppx__cluster {
    pthread_mutex_t mu;
    bool up;
    bool we_init;   /* we called MPI_Init, so we finalize */
    bool exit_hooked;
    pid_t pid;      /* forked children must not say goodbye for us */
    MPI_Comm comm;
    int size;
    ppx__node *info; /* per node: rank, workers, cap, pid, name */
    bool lost_any;
    ppx_pool *open;  /* the MPI pool, while one exists */
    /* Task ids go on where the last MPI pool stopped, so a late answer
     * meant for a freed pool can never match a call of the next one. */
    uint64_t next_id;
} ppx__cluster;

/* Lock: mu, alone (core.h), guards open, next_id and the lost flags. */
extern ppx__cluster ppx__cl;

/* progress.c: the progress thread of MPI pool arg (a ppx_pool *). */
void *ppx__mpi_progress(void *arg);

#endif
