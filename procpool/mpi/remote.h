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
    PPX__TAG_STEAL = 9,    /* 0 -> node: skips naming calls to give back if not started */
    /* node -> 0: skips naming calls the node is about to start. Sent
     * synchronously (MPI_Issend): a node starts a call only once rank 0
     * has received this, so a call rank 0 never heard of has not run. */
    PPX__TAG_STARTING = 10,
    /* 0 -> node: [host, pid] of rank 0, once every node said hello: a
     * node on rank 0's host ends when that process does (under
     * --enable-recovery Open MPI would keep it serving nobody). */
    PPX__TAG_WELCOME = 11,
};

/* The seq of a SKIP a node sends back (PPX__TAG_REPLIES): why the call
 * ends there without a result. */
enum {
    PPX__SKIP_CANCELLED = 0, /* cancelled (asked, or the node's pool closed) */
    PPX__SKIP_RETURNED = 1,  /* given back unstarted (a steal): run it elsewhere */
    PPX__SKIP_KEPT = 2,      /* a steal came too late: it has started; its answer follows */
};

/* Where a remote task is: queued on rank 0, placed on a node with its
 * frame not yet taken by the progress thread, or sent. */
enum { PPX__AT_QUEUE = 0, PPX__AT_OUT = 1, PPX__AT_NODE = 2 };

/* A call's place in the cluster (ppx__task.be). */
typedef struct ppx__rtask {
    int at;        /* PPX__AT_* */
    int node;      /* index in nodes; -1 while queued on rank 0 */
    uint32_t slot; /* its slot on that node */
    bool started;  /* its node announced it (PPX__TAG_STARTING): may have run */
    bool kept;     /* its node answered a steal with KEPT: it runs there */
    bool stealing; /* asked back from its node, no answer yet */
} ppx__rtask;

static inline ppx__rtask *ppx__rt(ppx__task *t)
{
    return (ppx__rtask *)t->be;
}

/* The most calls a node may hold per worker: one running and some
 * waiting, so a worker never idles for a round trip, while the rest of
 * the queue stays on rank 0 to go to whichever node frees up first. How
 * many it is given (ppx__node.depth) follows its measured speed: its
 * workers, plus what it completes in PPX__AHEAD_NS. */
#define PPX__NODE_DEPTH 4
#define PPX__AHEAD_NS (10 * 1000000LL)
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

/* Envelopes packed back to back, to send as one message. */
typedef struct ppx__packed {
    unsigned char *b;
    size_t len, cap;
} ppx__packed;

/* How long a node's busy time is measured before its rate is updated. */
#define PPX__RATE_NS (100 * 1000000LL)

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
    bool here;            /* on this host: its pid tells whether it lives */
    uint32_t depth;       /* calls it is given at most, workers..cap */
    uint32_t stealing;    /* its calls asked back, not answered yet */
    ppx__list held;       /* calls sent to it, oldest first */
    /* Its speed: completions over the time it held calls, folded into
     * rate (calls per second) every PPX__RATE_NS of that time. */
    uint32_t done_n;
    int64_t busy_ns, busy_at;
    double rate;
    int64_t heard_ns;     /* when it was last given calls while idle */
    int64_t checked_ns;   /* progress thread only: its pid last checked */
    int bell;             /* its doorbell's write end, or -1 */
    int64_t rang_ns;      /* progress thread only: last sent to (or rung) */
    int64_t seen_ns;      /* progress thread only: when it last sent */
    /* Progress thread only: a send to it failed, or a message from it
     * could not be received, so some of its answers will never come;
     * check_silence reports it lost at once. */
    bool broken;
    char broken_why[96];
    /* To send, taken by the progress thread: */
    ppx__list out;        /* calls placed here, frames not yet sent */
    ppx__packed cancels;  /* skips: calls to stop */
    ppx__packed steals;   /* skips: calls to give back if not started */
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
/* Appends m (a message from node m->node; m->buf a bigbuf) to the inbox;
 * the inbox owns m from here. */
void ppx__remote_post(ppx_pool *p, ppx__msg *m);

/* placement.c, under the pool lock: */
/* Places queued calls where there is room; steals for idle nodes. */
void ppx__remote_pump(ppx_pool *p, ppx__notify *n);
/* Folds nd's busy time up to now and completed answers into its rate
 * and depth. */
void ppx__node_account(ppx__node *nd, int64_t now, uint32_t completed);
/* Takes t off node nd (slot, lists, counts) without freeing it. */
void ppx__remote_unplace(ppx__node *nd, ppx__task *t);
/* Takes t off node nd and queues it first on rank 0 (or frees it when
 * its future is gone). */
void ppx__remote_requeue(ppx_pool *p, ppx__node *nd, ppx__task *t);
/* Appends len bytes / a skip envelope naming t on its node: 0 or
 * PPX_ENOMEM (pk unchanged). */
int ppx__packed_add(ppx__packed *pk, const void *b, size_t len);
int ppx__packed_skip(ppx__packed *pk, ppx__task *t);
/* Wakes the progress thread: there is something to send. */
void ppx__remote_wake(ppx_pool *p);
/* Whether every node is lost. */
bool ppx__remote_all_lost(ppx__remote *r);
/* Resolves t's future FAILED with NodeLost, node naming where it was. */
void ppx__remote_fail_lost(ppx_pool *p, ppx__task *t, const char *node, const char *why,
                           ppx__notify *n);

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
 * so far between 20 us and 1 ms, and PPX__IDLE_NAP_NS once nothing has
 * been held for a second. MPI has no descriptor to sleep on: an idle
 * node's only cost is one probe per nap (a wake-up costs 60-110 us of
 * CPU on a 2-vCPU VM), and the first call after a quiet second waits up
 * to a nap, unless rank 0 rings the node's doorbell (node.h). */
#define PPX__IDLE_NAP_NS (50 * 1000000LL)
int64_t ppx__mpi_backoff_ns(int64_t quiet, bool holding);

/* mpi_node.c: on a rank other than 0, serve calls from rank 0 with a
 * local pool made from o, then finalize MPI and exit the process. Returns
 * only on failure, with a code. */
int ppx__node_serve(const ppx_pool_options *o);

/* A node quiet for PPX__BELL_QUIET_NS may nap up to a second: rank 0
 * writes a byte to its doorbell (a pipe on the node's host) before it
 * sends to it. */
#define PPX__BELL_QUIET_NS (500 * 1000000LL)
void ppx__node_ring(ppx__node *nd, int64_t now);

/* remote.c: whether process pid of this host has ended (gone, or a
 * zombie). */
bool ppx__pid_ended(long pid);

/* remote.c: a node's HELLO ([workers, capacity, host, pid]) into nd,
 * whose rank is set; PPX_EMALFORMED for anything else. */
int ppx__remote_read_hello(const unsigned char *b, size_t len, ppx__node *nd);

#endif
