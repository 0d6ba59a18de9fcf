/*
 * A node (an MPI rank other than 0) serving rank 0's calls with a local
 * pool: mpi_node.c runs the loop (MPI in and out, start-up, exit),
 * node_calls.c keeps the calls. One thread does everything.
 *
 * A call rank 0 sends waits here, in a FIFO, until a worker is free for
 * it; then the node tells rank 0 it starts it (PPX__TAG_STARTING, a
 * synchronous send) and only once rank 0 has that message hands it to
 * the local pool. So a call that is still waiting has certainly not
 * run: rank 0 may take it back for an idle node (a steal) and, if this
 * node is lost, send it elsewhere; only calls it heard start may have
 * run. A call goes to the local pool only when a worker is free for it.
 * It is announced a little before, so its worker does not wait a round
 * trip: for short calls (under PPX__SHORT_CALL_NS on average) up to
 * PPX__SHORT_AHEAD per worker ahead, for longer ones when a running call
 * is due to end, and as many as a worker runs in two announcement round
 * trips when that is longer than a call (see may_announce); then it waits
 * READY. A READY call
 * can still be given back to a steal; if the node is lost, it counts as
 * may-have-run.
 *
 * Rank 0's calls are kept by slot, the index rank 0 stamped into the
 * call's header: rank 0 reuses a slot only after its answer arrived, so
 * a slot holds one call at a time and an answer names it exactly.
 */
#ifndef PPX_PROCPOOL_MPI_NODE_H
#define PPX_PROCPOOL_MPI_NODE_H
#include "remote.h"

#include <mpi.h>
#include <msgpack.h>

struct node;

/* A slot's call: FREE, then WAITING (in the waiting FIFO, its frame
 * kept), STARTING (announced, rank 0 has not received it yet), READY
 * (announced and received, in the ready FIFO for a free worker),
 * RUNNING (in the local pool: f), ENDED (answered without a local
 * future: skip says why). WAITING and READY calls have not started and
 * can be given back. */
enum { E_FREE = 0, E_WAITING, E_STARTING, E_READY, E_RUNNING, E_ENDED };
#define E_NONE UINT32_MAX
#define PPX__SHORT_CALL_NS (1000 * 1000LL)
#define PPX__SHORT_AHEAD 2
/* A quiet node's nap when rank 0 rings its doorbell before sending. */
#define PPX__BELL_NAP_NS (1000 * 1000000LL)

/* Slots in order, linked through their entries. */
typedef struct fifo {
    uint32_t head, tail, n;
} fifo;

typedef struct entry {
    int state;
    bool announced; /* counted in node.announced */
    bool cancelled; /* STARTING: cancelled before it could start */
    uint32_t skip;  /* ENDED: PPX__SKIP_* */
    uint64_t id;
    ppx_future *f;
    unsigned char *frame; /* WAITING, STARTING, READY: the call's envelope */
    size_t len;
    size_t frame_cap;     /* frame is a ppx__bigbuf of this many bytes; 0: malloc'd */
    int64_t got_ns;       /* when it arrived: its deadline counts from there */
    int64_t start_ns;     /* RUNNING: when the local pool got it */
    uint32_t prev, next;  /* WAITING, READY: its FIFO */
    struct node *nd;
} entry;

typedef struct node {
    ppx_pool *pool;
    MPI_Comm comm;
    int rank;
    int workers;
    char name[96];
    uint32_t cap;
    entry *e;
    fifo waiting, ready;
    uint32_t *done;  /* slots to answer */
    uint32_t ndone;
    uint32_t busy;    /* slots not FREE */
    uint32_t announced; /* announced to rank 0 and not answered yet */
    uint32_t submitted; /* in the local pool, unresolved */
    int64_t call_ns;  /* how long its calls take, on average (0: unknown) */
    /* The STARTING message in flight (one at a time). */
    bool announcing;
    MPI_Request ann_req;
    void *ann_buf;
    uint32_t *ann_slots;
    uint32_t ann_n;
    int64_t ann_at;     /* when it was sent */
    int64_t ann_rtt_ns; /* how long announcements take, on average */
    msgpack_sbuffer kept; /* KEPT answers to steals, sent with the replies */
    bool detaching, exiting;
    bool local_news;    /* the local pool's descriptor woke the last nap */
    int bell[2];        /* the doorbell pipe (-1: none) */
    bool rung;          /* rank 0 opened it (WELCOME) */
    long root_pid;      /* rank 0's process, when on this host (WELCOME) */
    int64_t root_checked;
    bool orphaned;      /* rank 0's process has ended without a goodbye */
    bool lost_peer; /* rank 0 lost a rank: MPI_Finalize would wait for it */
    MPI_Request *req;
    void **bufs;
    size_t nreq, capreq;
    int64_t sent_at;
    uint64_t dropped; /* frames rank 0 should never have sent */
} node;

/* node_calls.c */
/* A CALLS, CANCELS or STEAL message from rank 0: *buf, a ppx__bigbuf of
 * cap bytes, len of them used; a call may keep it (then *buf is NULL). */
void ppx__node_handle(node *nd, int tag, unsigned char **buf, size_t len, size_t cap);
/* Frees e's frame, however it was kept. */
void ppx__node_drop_frame(entry *e);
/* Stops every call (DETACH, EXIT). */
void ppx__node_cancel_everything(node *nd);
/* Announces waiting calls for free workers, and starts those rank 0
 * has received; true if anything moved. */
bool ppx__node_start_calls(node *nd);
/* Rank 0 is leaving and its progress thread has stopped, so a STARTING
 * in flight will never be received: its calls end here, unstarted. */
void ppx__node_abandon_start(node *nd);
/* Sends every answer ready (and KEPTs): true if any. */
bool ppx__node_answer(node *nd);
/* Sends buf (malloc'd, taken) to rank 0; mpi_node.c reaps the sends. */
void ppx__node_send(node *nd, int tag, void *buf, size_t len);

#endif
