/*
 * A pool whose workers are other MPI ranks ("nodes"), each hosting a
 * local pool of its own. On rank 0 it is an ordinary ppx_pool: the same
 * futures, lock, descriptors and counters, with nworkers == 0 and
 * p->remote set; calls are packed by submit.c exactly as for local
 * workers, then placed on a node here instead of in a ring.
 *
 * Threads: remote.c runs under the pool lock on whatever thread submits,
 * cancels or processes (it makes no MPI call); mpi_link.c's progress
 * thread is the only thread that calls MPI after MPI_Init. They meet in
 * the outbox lists below (calls and cancels to send) and the inbox
 * (messages received), both under the pool lock; the progress thread
 * signals p->efd when the inbox fills, so the loop's uv_poll (or a
 * blocking wait) drains it like replies from a ring.
 *
 * Who owns what: a task belongs to the pool from submission until its
 * node answers (or is lost). Its frame is handed to the progress thread
 * when sent (copied when small, moved when big), so the task never
 * waits for MPI to finish with it.
 */
#ifndef PPX_PROCPOOL_REMOTE_H
#define PPX_PROCPOOL_REMOTE_H
#include "procpool/core.h"
#include "procpool/wire/frame.h"

#include <limits.h>

/* Message tags on ppx's own communicator (a dup of MPI_COMM_WORLD). */
enum {
    PPX__TAG_HELLO = 1,    /* node -> 0: [workers, capacity, host, pid] */
    PPX__TAG_CALLS = 2,    /* 0 -> node: call/map envelopes back to back */
    PPX__TAG_CANCELS = 3,  /* 0 -> node: skip envelopes naming calls to stop */
    PPX__TAG_REPLIES = 4,  /* node -> 0: result/error/skip envelopes */
    PPX__TAG_ALIVE = 5,    /* node -> 0: empty, while it holds calls */
    PPX__TAG_DETACH = 6,   /* 0 -> node: the pool is freed, stop its calls */
    PPX__TAG_DETACHED = 7, /* node -> 0: every call of that pool answered */
    PPX__TAG_EXIT = 8,     /* 0 -> node: [lost] rank 0 is leaving; finalize unless lost */
};

/* Where a remote task is: queued on rank 0, placed on a node with its
 * frame not yet taken by the progress thread, or sent. */
enum { PPX__AT_QUEUE = 0, PPX__AT_OUT = 1, PPX__AT_NODE = 2 };

/* A call's place in the cluster (ppx__task.be). */
typedef struct ppx__rtask {
    int at;        /* PPX__AT_* */
    int node;      /* index in nodes; -1 while queued on rank 0 */
    uint32_t slot; /* its slot on that node */
} ppx__rtask;

static inline ppx__rtask *ppx__rt(ppx__task *t)
{
    return (ppx__rtask *)t->be;
}

/* Calls a node may hold per worker: one running and some waiting, so a
 * worker never idles for a round trip, while the rest of the queue stays
 * on rank 0 to go to whichever node frees up first. */
#define PPX__NODE_DEPTH 4
/* Frames at least this big are sent on their own, without a copy. */
#define PPX__MPI_ALONE (64u * 1024u)
/* Small frames sent together make messages of at most this many bytes. */
#define PPX__MPI_BATCH (16u << 20)
/* MPI counts bytes in an int: no message may be bigger. */
#define PPX__MPI_MAX_MSG ((size_t)INT_MAX)
/* A node that holds calls and has said nothing for this long is lost
 * (it sends PPX__TAG_ALIVE every PPX__ALIVE_MS while it holds calls). */
#define PPX__NODE_TIMEOUT_MS 10000
#define PPX__ALIVE_MS 500

typedef struct ppx__node {
    int rank;
    int workers;
    uint32_t cap;         /* calls it may hold at once */
    uint32_t inflight;
    ppx__task **slot;     /* by slot, the calls it holds */
    uint32_t *free_slots; /* a stack */
    uint32_t nfree;
    long pid;
    char name[96];        /* "host rank N", as errors report it */
    bool lost;
    int64_t heard_ns;     /* when it was last given calls while idle */
    int64_t seen_ns;      /* progress thread only: when it last sent */
    /* Progress thread only: a send to it failed, or a message from it
     * could not be received, so some of its answers will never come;
     * check_silence reports it lost at once. */
    bool broken;
    char broken_why[96];
    /* To send, taken by the progress thread: */
    ppx__list out;        /* calls placed here, frames not yet sent */
    unsigned char *cancels; /* packed skip envelopes */
    size_t cancels_len, cancels_cap;
} ppx__node;

/* A received message waiting for ppx__remote_drain. */
typedef struct ppx__msg {
    struct ppx__msg *next;
    int node;   /* index in nodes, -1: none */
    int tag;
    unsigned char *buf; /* a ppx__bigbuf */
    size_t len, cap;
} ppx__msg;

typedef struct ppx__remote {
    ppx__node *nodes;
    int nnodes;
    int workers; /* across every node */
    ppx__list queue; /* submitted, waiting for room on a node */
    /* The earliest deadline among queued calls (0: none; may be stale,
     * early): the progress thread wakes the pool when it passes, and
     * ppx__remote_drain times out what is due. */
    int64_t queue_due_ns;
    ppx__msg *inbox, *inbox_tail;
    unsigned rr;
    /* The progress thread: */
    pthread_t thread;
    pthread_cond_t wake; /* work to send, or time to stop */
    bool thread_started;
    bool has_work;       /* set with wake, cleared by the thread */
    bool stopping;       /* ppx_pool_free: detach the nodes, then leave */
    int64_t timeout_ns;  /* PPX__NODE_TIMEOUT_MS, or PPX_NODE_TIMEOUT_MS */
    uint64_t protocol_errors;
} ppx__remote;

static inline ppx__remote *ppx__remote_of(const ppx_pool *p)
{
    return (ppx__remote *)p->be;
}

/* remote.c, under the pool lock: the MPI backend's entry points
 * (backend.h) that need no MPI call; mpi_link.c holds the table. */
/* Queues t and places what fits on the nodes. */
int ppx__remote_submit(ppx_pool *p, ppx__task *t, ppx__notify *n);
/* Resolves t's future as cancelled (or timed out) and asks its node to
 * stop it; t lingers until the node answers. The node applies its own
 * grace period (kill_later is always so over MPI). */
void ppx__remote_cancel(ppx_pool *p, ppx__task *t, bool kill_later, bool timed_out,
                        ppx__notify *n);
/* Cancels every call (pool free or shutdown CANCEL). */
void ppx__remote_cancel_all(ppx_pool *p, bool kill_later, ppx__notify *n);
/* Cancels the calls no node has been sent (shutdown CANCEL_QUEUED). */
void ppx__remote_cancel_queued(ppx_pool *p, ppx__notify *n);
/* One round: the inbox, queued deadlines, placement. */
void ppx__remote_process(ppx_pool *p, ppx__notify *n);
/* Resolves the futures answered by the messages in the inbox. */
void ppx__remote_drain(ppx_pool *p, ppx__notify *n);
/* Node i is gone: fails every call it held with NodeLost. */
void ppx__remote_node_lost(ppx_pool *p, int i, const char *why, ppx__notify *n);
ppx_state ppx__remote_state(ppx_pool *p, ppx__task *t);
/* Calls queued on rank 0, not yet placed on a node. */
void ppx__remote_stats(ppx_pool *p, ppx_pool_stats *out);
void ppx__remote_free_tasks(ppx_pool *p);
/* Frees the bookkeeping, after the progress thread has stopped. */
void ppx__remote_destroy(ppx_pool *p, bool copy);
/* Wakes the progress thread: there is something to send. */
void ppx__remote_wake(ppx_pool *p);
/* Appends m (a message from node m->node; m->buf a bigbuf) to the inbox;
 * the inbox owns m from here. */
void ppx__remote_post(ppx_pool *p, ppx__msg *m);

/* mpi_link.c: rank 0's side. */
/* Joins the cluster (MPI_Init on the first call in this process), learns
 * the nodes and starts the progress thread. */
int ppx__remote_start(ppx_pool *p);
/* Detaches the nodes and joins the progress thread. Under no lock. */
void ppx__remote_stop(ppx_pool *p);

/* How long a side of the MPI link sleeps before it probes MPI again,
 * after quiet ns without traffic: 0 means yield the CPU and look again
 * (the first 200 us, when an answer is most likely and a worker on the
 * same core may need the CPU to produce it), then a quarter of the quiet
 * so far between 20 us and 1 ms, and up to 4 ms once nothing has been
 * held for a second. MPI has no descriptor to sleep on. */
int64_t ppx__mpi_backoff_ns(int64_t quiet, bool holding);

/* mpi_node.c: on a rank other than 0, serve calls from rank 0 with a
 * local pool made from o, then finalize MPI and exit the process. Returns
 * only on failure, with a code. */
int ppx__node_serve(const ppx_pool_options *o);

/* remote.c: a node's HELLO ([workers, capacity, host, pid]) into nd,
 * whose rank is set; PPX_EMALFORMED for anything else. */
int ppx__remote_read_hello(const unsigned char *b, size_t len, ppx__node *nd);

#endif
