/*
 * A node's loop (see node.h for how it keeps calls): probes MPI for
 * calls, cancels and steals, starts what a free worker can take, sends
 * the answers. The local pool is made before MPI_Init, so its workers
 * (and the zygote that forks their replacements) never inherit MPI's
 * state.
 */
#include "node.h"
#include "serialize/envelope.h"
#include "serialize/mpread.h"

#include <poll.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <fcntl.h>
#include <unistd.h>

static void reap_sends(node *nd)
{
    size_t k = 0;
    for (size_t i = 0; i < nd->nreq; i++) {
        int flag = 0;
        MPI_Test(&nd->req[i], &flag, MPI_STATUS_IGNORE);
        if (flag) {
            free(nd->bufs[i]);
        } else {
            nd->req[k] = nd->req[i];
            nd->bufs[k++] = nd->bufs[i];
        }
    }
    nd->nreq = k;
}

/* Rank 0's [host, pid]: watched when on this host. */
static void welcomed(node *nd, const unsigned char *b, size_t len)
{
    ppx__mp c = ppx__mp_of(b, len);
    uint32_t n, hl;
    const char *host;
    int64_t pid;
    char me[64] = "";
    gethostname(me, sizeof me - 1);
    bool rung = false;
    if (ppx__mp_array(&c, &n) == 0 && n == 3 && ppx__mp_str(&c, &host, &hl) == 0 &&
        ppx__mp_int(&c, &pid) == 0 && ppx__mp_bool(&c, &rung) == 0 && pid > 1 &&
        hl == strlen(me) && memcmp(host, me, hl) == 0) {
        nd->root_pid = (long)pid;
        nd->rung = rung;
    }
}

/* Rank 0 on this host has ended without saying goodbye (it crashed, or
 * was killed, and Open MPI under --enable-recovery keeps the job). */
static bool root_gone(node *nd)
{
    int64_t now = ppx__now_ns();
    if (!nd->root_pid || now - nd->root_checked < 1000000000LL)
        return false;
    nd->root_checked = now;
    return ppx__pid_ended(nd->root_pid);
}

static void handle(node *nd, int tag, unsigned char **buf, size_t len, size_t cap)
{
    const unsigned char *b = *buf;
    if (tag == PPX__TAG_DETACH) {
        nd->detaching = true;
        ppx__node_cancel_everything(nd);
    } else if (tag == PPX__TAG_EXIT) {
        nd->exiting = true;
        nd->lost_peer = len >= 1 && b[0];
        ppx__node_cancel_everything(nd);
    } else if (tag == PPX__TAG_WELCOME) {
        welcomed(nd, b, len);
    } else if (tag == PPX__TAG_CALLS || tag == PPX__TAG_CANCELS || tag == PPX__TAG_STEAL) {
        ppx__node_handle(nd, tag, buf, len, cap);
    }
}

static bool receive(node *nd)
{
    bool got = false;
    for (;;) {
        int flag = 0;
        MPI_Status st;
        if (MPI_Iprobe(0, MPI_ANY_TAG, nd->comm, &flag, &st) != MPI_SUCCESS || !flag)
            return got;
        int len = 0;
        MPI_Get_count(&st, MPI_BYTE, &len);
        size_t cap = 0;
        unsigned char *buf = ppx__bigbuf_alloc(len > 0 ? (size_t)len : 1, &cap);
        if (!buf)
            return got;
        MPI_Recv(buf, len, MPI_BYTE, 0, st.MPI_TAG, nd->comm, MPI_STATUS_IGNORE);
        handle(nd, st.MPI_TAG, &buf, (size_t)len, cap);
        if (buf)
            ppx__bigbuf_free(buf, cap);
        got = true;
    }
}

static int hello(node *nd)
{
    char host[64] = "";
    gethostname(host, sizeof host - 1);
    snprintf(nd->name, sizeof nd->name, "%s rank %d", host, nd->rank);
    int workers = ppx_pool_workers(nd->pool);
    nd->cap = (uint32_t)workers * PPX__NODE_DEPTH;
    msgpack_sbuffer sb;
    msgpack_sbuffer_init(&sb);
    msgpack_packer pk;
    msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
    int bad = msgpack_pack_array(&pk, 5) || msgpack_pack_uint32(&pk, (uint32_t)workers) ||
              msgpack_pack_uint32(&pk, nd->cap) || msgpack_pack_str(&pk, strlen(host)) ||
              msgpack_pack_str_body(&pk, host, strlen(host)) ||
              msgpack_pack_int64(&pk, (int64_t)getpid()) ||
              msgpack_pack_int64(&pk, nd->bell[1]);
    if (!bad)
        bad = MPI_Send(sb.data, (int)sb.size, MPI_BYTE, 0, PPX__TAG_HELLO, nd->comm);
    msgpack_sbuffer_destroy(&sb);
    return bad ? PPX_EBACKEND : 0;
}

/* One round: MPI in, calls started and answered, MPI out. true if
 * anything moved. */
static bool round_trip(node *nd)
{
    bool active = receive(nd);
    /* An idle node's local pool has news only when its descriptor says
     * so (a worker's death, a respawn due): a nap costs one probe. */
    if ((nd->busy || nd->local_news) && ppx_pool_process(nd->pool) > 0)
        active = true;
    nd->local_news = false;
    if (ppx__node_start_calls(nd))
        active = true;
    if (ppx__node_answer(nd))
        active = true;
    if (nd->detaching && nd->busy == 0 && !nd->announcing) {
        MPI_Send(NULL, 0, MPI_BYTE, 0, PPX__TAG_DETACHED, nd->comm);
        nd->detaching = false;
    }
    if (nd->busy && ppx__now_ns() - nd->sent_at > PPX__ALIVE_MS * 1000000LL) {
        MPI_Send(NULL, 0, MPI_BYTE, 0, PPX__TAG_ALIVE, nd->comm);
        nd->sent_at = ppx__now_ns();
    }
    reap_sends(nd);
    return active;
}

static void serve(node *nd)
{
    prctl(PR_SET_TIMERSLACK, 1000UL); /* as rank 0's progress thread */
    int64_t active_at = ppx__now_ns();
    for (;;) {
        bool active = round_trip(nd);
        if (nd->exiting)
            ppx__node_abandon_start(nd);
        if (nd->exiting && nd->busy == 0 && nd->nreq == 0)
            break;
        if (root_gone(nd)) {
            nd->orphaned = true;
            break;
        }
        if (active) {
            active_at = ppx__now_ns();
            continue;
        }
        /* Nothing to do: wait on the local pool's descriptor, which wakes
         * us at once for a local answer, with a timeout for MPI; a STARTING
         * in flight is looked at as often as MPI is. */
        int64_t quiet = ppx__now_ns() - active_at;
        int64_t wait = ppx__mpi_backoff_ns(quiet, nd->busy > 0);
        if (wait == 0) {
            sched_yield(); /* our worker may be waiting for this core */
            continue;
        }
        /* Rank 0 rings the doorbell before it sends to a quiet node. */
        if (nd->rung && !nd->busy && quiet > 1000000000LL)
            wait = PPX__BELL_NAP_NS;
        struct pollfd pf[2] = {{ppx_pool_fd(nd->pool), POLLIN, 0}, {nd->bell[0], POLLIN, 0}};
        struct timespec ts = {wait / 1000000000LL, (long)(wait % 1000000000LL)};
        if (ppoll(pf, nd->bell[0] >= 0 ? 2 : 1, &ts, NULL) > 0) {
            nd->local_news = pf[0].revents != 0;
            char drain[64];
            if (pf[1].revents) {
                while (read(nd->bell[0], drain, sizeof drain) > 0) {
                }
                /* What it announces may still be on its way: poll hot. */
                active_at = ppx__now_ns();
            }
        }
    }
}

int ppx__node_serve(const ppx_pool_options *o)
{
    ppx_pool_options lo = *o;
    lo.backend = PPX_BACKEND_LOCAL;
    lo.trace_path = NULL; /* one file per pool: rank 0's */
    node nd = {0};
    int rc = ppx__pool_open(&nd.pool, &lo, &ppx__local_ops);
    if (rc)
        return rc;
    int prov, inited = 0;
    MPI_Initialized(&inited);
    if (inited) { /* a second MPI_Init would abort the process */
        ppx_pool_free(nd.pool);
        ppx__set_last_error("MPI is already initialized: a node's pool must be made first");
        return PPX_EBACKEND;
    }
    if (MPI_Init_thread(NULL, NULL, MPI_THREAD_FUNNELED, &prov) != MPI_SUCCESS) {
        ppx_pool_free(nd.pool);
        ppx__set_last_error("MPI_Init_thread failed on a node");
        return PPX_EBACKEND;
    }
    MPI_Comm_dup(MPI_COMM_WORLD, &nd.comm);
    MPI_Comm_set_errhandler(nd.comm, MPI_ERRORS_RETURN);
    MPI_Comm_rank(nd.comm, &nd.rank);
    /* The doorbell: rank 0, on this host, opens the write end through
     * /proc and rings it before sending to a quiet node, which can then
     * nap long. Made after the local pool, so no worker holds it. */
    if (pipe2(nd.bell, O_NONBLOCK | O_CLOEXEC))
        nd.bell[0] = nd.bell[1] = -1;
    rc = hello(&nd);
    if (rc == 0) {
        nd.workers = ppx_pool_workers(nd.pool);
        nd.waiting = nd.ready = (fifo){E_NONE, E_NONE, 0};
        msgpack_sbuffer_init(&nd.kept);
        nd.e = calloc(nd.cap, sizeof *nd.e);
        nd.done = calloc(nd.cap, sizeof *nd.done);
        nd.ann_slots = calloc(nd.cap, sizeof *nd.ann_slots);
        if (!nd.e || !nd.done || !nd.ann_slots)
            rc = PPX_ENOMEM;
        for (uint32_t s = 0; nd.e && s < nd.cap; s++)
            nd.e[s].nd = &nd;
    }
    if (rc == 0)
        serve(&nd);
    /* First: it resolves calls still running (rank 0 gone), whose done
     * callbacks write into nd.e and nd.done. */
    ppx_pool_free(nd.pool); /* its workers end here */
    for (uint32_t s = 0; s < nd.cap && nd.e; s++) {
        ppx_future_unref(nd.e[s].f);
        ppx__node_drop_frame(&nd.e[s]);
    }
    free(nd.e);
    free(nd.ann_slots);
    free(nd.ann_buf);
    msgpack_sbuffer_destroy(&nd.kept);
    free(nd.done);
    free(nd.req);
    free(nd.bufs);
    if (nd.bell[0] >= 0) {
        close(nd.bell[0]);
        close(nd.bell[1]);
    }
    if (nd.orphaned) /* MPI would wait for rank 0 forever */
        _exit(1);
    MPI_Comm_free(&nd.comm);
    if (!nd.lost_peer)
        MPI_Finalize();
    /* This process was lent to rank 0's pool; its own program must not
     * go on as if ppx_pool_new had returned. */
    exit(rc ? 1 : 0);
}
