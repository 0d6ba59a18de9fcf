/*
 * A node: an MPI rank other than 0 that runs rank 0's calls in a local
 * pool of forked workers. One thread does everything: it probes MPI for
 * calls and cancels, submits them to the local pool, and sends back each
 * answer as the same envelope a worker would write, errors naming this
 * node. The local pool is made before MPI_Init, so its workers (and the
 * zygote that forks their replacements) never inherit MPI's state.
 *
 * Rank 0's calls are kept by slot, the index rank 0 stamped into the
 * call's header: rank 0 reuses a slot only after its answer arrived, so
 * a slot holds one call at a time and an answer names it exactly.
 */
#include "remote.h"
#include "serialize/envelope.h"

#include <mpi.h>
#include <poll.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <unistd.h>

struct node;

typedef struct entry {
    ppx_future *f;
    uint64_t id;
    bool busy;
    struct node *nd;
} entry;

typedef struct node {
    ppx_pool *pool;
    MPI_Comm comm;
    int rank;
    char name[96];
    uint32_t cap;
    entry *e;
    uint32_t *done; /* slots answered since the last send */
    uint32_t ndone;
    uint32_t busy;
    bool detaching, exiting;
    bool lost_peer; /* rank 0 lost a rank: MPI_Finalize would wait for it */
    MPI_Request *req;
    void **bufs;
    size_t nreq, capreq;
    int64_t sent_at;
    uint64_t dropped; /* frames rank 0 should never have sent */
} node;

/* Runs on this thread: inside ppx_pool_process, ppx_future_cancel, or
 * at once when the local pool resolved the call on submission. */
static void on_done(ppx_future *f, void *arg)
{
    (void)f;
    entry *e = arg;
    e->nd->done[e->nd->ndone++] = (uint32_t)(e - e->nd->e);
}

static void send_owned(node *nd, int tag, void *buf, size_t len)
{
    if (nd->nreq == nd->capreq) {
        size_t c = nd->capreq ? nd->capreq * 2 : 16;
        MPI_Request *r = realloc(nd->req, c * sizeof *r);
        void **b = r ? realloc(nd->bufs, c * sizeof *b) : NULL;
        if (r)
            nd->req = r;
        if (!b) {
            /* Blocking instead: slower, never lost. */
            MPI_Send(buf, (int)len, MPI_BYTE, 0, tag, nd->comm);
            free(buf);
            return;
        }
        nd->bufs = b;
        nd->capreq = c;
    }
    MPI_Isend(buf, (int)len, MPI_BYTE, 0, tag, nd->comm, &nd->req[nd->nreq]);
    nd->bufs[nd->nreq++] = buf;
    nd->sent_at = ppx__now_ns();
}

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

/* Packs slot s's answer into sb. */
static int pack_answer(node *nd, uint32_t s, msgpack_sbuffer *sb)
{
    entry *e = &nd->e[s];
    ppx_value v;
    switch (ppx_future_state(e->f)) {
    case PPX_DONE:
        if (ppx_future_value(e->f, &v) == 0 && v.len > PPX__MPI_MAX_MSG - PPX__ENV_RESULT_OVERHEAD)
            /* MPI counts a message's bytes in an int. */
            return ppx__env_pack_error_at(sb, e->id, s, 0, "ValueError",
                                          "the result is too big for MPI (over 2 GiB)", "", "",
                                          0, nd->name);
        if (ppx_future_value(e->f, &v) == 0)
            return ppx__env_pack_result(sb, e->id, s, 0, v.data, v.len);
        return ppx__env_pack_error_at(sb, e->id, s, 0, "MemoryError",
                                      "the node could not read the result", "", "", 0,
                                      nd->name);
    case PPX_FAILED: {
        const ppx_error *err = ppx_future_error(e->f);
        return ppx__env_pack_error_at(sb, e->id, s, 0, err->type, err->message,
                                      err->function, err->where, err->pid, nd->name);
    }
    default:
        return ppx__env_pack_skip(sb, e->id, s, 0);
    }
}

/* Sends every answer ready: small ones together, big ones alone. */
static void answer(node *nd)
{
    msgpack_sbuffer many;
    msgpack_sbuffer_init(&many);
    uint32_t kept = 0;
    for (uint32_t i = 0; i < nd->ndone; i++) {
        uint32_t s = nd->done[i];
        msgpack_sbuffer one;
        msgpack_sbuffer_init(&one);
        if (pack_answer(nd, s, &one) ||
            (one.size < PPX__MPI_ALONE && msgpack_sbuffer_write(&many, one.data, one.size))) {
            /* Out of memory: this answer waits for the next round. */
            msgpack_sbuffer_destroy(&one);
            nd->done[kept++] = s;
            continue;
        }
        if (one.size >= PPX__MPI_ALONE) {
            size_t len = one.size;
            send_owned(nd, PPX__TAG_REPLIES, msgpack_sbuffer_release(&one), len);
        }
        msgpack_sbuffer_destroy(&one);
        entry *e = &nd->e[s];
        ppx_future_unref(e->f);
        *e = (entry){0};
        nd->busy--;
    }
    nd->ndone = kept;
    if (many.size) {
        size_t len = many.size;
        send_owned(nd, PPX__TAG_REPLIES, msgpack_sbuffer_release(&many), len);
    }
    msgpack_sbuffer_destroy(&many);
}

/* Answers a call this node will not run, as if its worker had raised. */
static void refuse(node *nd, const ppx__env *env, const char *fn, const char *msg)
{
    msgpack_sbuffer sb;
    msgpack_sbuffer_init(&sb);
    if (ppx__env_pack_error_at(&sb, env->task_id, env->slot, 0, "RuntimeError", msg, fn, "", 0,
                               nd->name) == 0) {
        size_t len = sb.size;
        send_owned(nd, PPX__TAG_REPLIES, msgpack_sbuffer_release(&sb), len);
    }
    msgpack_sbuffer_destroy(&sb);
}

static void start_call(node *nd, const ppx__env *env)
{
    uint32_t s = env->slot;
    char fn[PPX__NAME_MAX + 1];
    snprintf(fn, sizeof fn, "%.*s", (int)env->function.len, env->function.p);
    if (s >= nd->cap) {
        nd->dropped++; /* rank 0 could not match an answer to it */
        return;
    }
    if (nd->e[s].busy) {
        /* A call of a pool rank 0 gave up waiting for still holds the
         * slot: answer this one (task ids never repeat across rank 0's
         * pools, so the old call's answer cannot be taken for it). */
        refuse(nd, env, fn, "the node still runs an earlier call in this slot");
        return;
    }
    ppx_call_options o =
        PPX_CALL_OPTIONS(.timeout_ms = (int)(env->seq > INT32_MAX ? INT32_MAX : env->seq));
    ppx_future *f = NULL;
    int rc = env->kind == PPX__ENV_MAP
                 ? ppx_pool_map(nd->pool, fn, env->payload.data, env->payload.len, &o, &f)
                 : ppx_pool_submit_ex(nd->pool, fn, env->payload.data, env->payload.len, &o,
                                      &f);
    entry *e = &nd->e[s];
    *e = (entry){NULL, env->task_id, true, nd};
    nd->busy++;
    if (rc) {
        /* Refused here (too big for this node's pool, say): the caller
         * hears why, as if its worker had raised it. */
        char msg[256];
        snprintf(msg, sizeof msg, "the node refused the call: %s", ppx_strerror(rc));
        refuse(nd, env, fn, msg);
        *e = (entry){0};
        nd->busy--;
        return;
    }
    e->f = f;
    ppx_future_add_done_callback(f, on_done, e);
}

static void cancel_call(node *nd, const ppx__env *env)
{
    uint32_t s = env->slot;
    if (s < nd->cap && nd->e[s].busy && nd->e[s].id == env->task_id && nd->e[s].f)
        ppx_future_cancel(nd->e[s].f); /* answered as a skip once resolved */
}

static void cancel_everything(node *nd)
{
    for (uint32_t s = 0; s < nd->cap; s++)
        if (nd->e[s].busy && nd->e[s].f)
            ppx_future_cancel(nd->e[s].f);
}

static void handle(node *nd, int tag, const unsigned char *b, size_t len)
{
    if (tag == PPX__TAG_DETACH) {
        nd->detaching = true;
        cancel_everything(nd);
        return;
    }
    if (tag == PPX__TAG_EXIT) {
        nd->exiting = true;
        nd->lost_peer = len >= 1 && b[0];
        cancel_everything(nd);
        return;
    }
    if (tag != PPX__TAG_CALLS && tag != PPX__TAG_CANCELS)
        return;
    while (len) {
        size_t flen;
        ppx__env env;
        if (ppx__env_next(b, len, &flen) || ppx__env_decode(b, flen, &env)) {
            nd->dropped++;
            return;
        }
        if (tag == PPX__TAG_CANCELS && env.kind == PPX__ENV_SKIP)
            cancel_call(nd, &env);
        else if (tag == PPX__TAG_CALLS && (env.kind == PPX__ENV_CALL || env.kind == PPX__ENV_MAP))
            start_call(nd, &env);
        else
            nd->dropped++;
        b += flen;
        len -= flen;
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
        handle(nd, st.MPI_TAG, buf, (size_t)len);
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
    int bad = msgpack_pack_array(&pk, 4) || msgpack_pack_uint32(&pk, (uint32_t)workers) ||
              msgpack_pack_uint32(&pk, nd->cap) || msgpack_pack_str(&pk, strlen(host)) ||
              msgpack_pack_str_body(&pk, host, strlen(host)) ||
              msgpack_pack_int64(&pk, (int64_t)getpid());
    if (!bad)
        bad = MPI_Send(sb.data, (int)sb.size, MPI_BYTE, 0, PPX__TAG_HELLO, nd->comm);
    msgpack_sbuffer_destroy(&sb);
    return bad ? PPX_EBACKEND : 0;
}

static void serve(node *nd)
{
    prctl(PR_SET_TIMERSLACK, 1000UL); /* as rank 0's progress thread */
    int64_t active_at = ppx__now_ns();
    while (!nd->exiting || nd->nreq) {
        bool active = receive(nd);
        if (ppx_pool_process(nd->pool) > 0)
            active = true;
        if (nd->ndone) {
            answer(nd);
            active = true;
        }
        if (nd->detaching && nd->busy == 0) {
            MPI_Send(NULL, 0, MPI_BYTE, 0, PPX__TAG_DETACHED, nd->comm);
            nd->detaching = false;
        }
        if (nd->busy && ppx__now_ns() - nd->sent_at > PPX__ALIVE_MS * 1000000LL) {
            MPI_Send(NULL, 0, MPI_BYTE, 0, PPX__TAG_ALIVE, nd->comm);
            nd->sent_at = ppx__now_ns();
        }
        reap_sends(nd);
        if (nd->exiting && nd->busy == 0 && nd->nreq == 0)
            break;
        if (active) {
            active_at = ppx__now_ns();
            continue;
        }
        /* Nothing to do: wait on the local pool's descriptor, which wakes
         * us at once for a local answer, with a timeout for MPI. */
        int64_t wait = ppx__mpi_backoff_ns(ppx__now_ns() - active_at, nd->busy > 0);
        if (wait == 0) {
            sched_yield(); /* our worker may be waiting for this core */
            continue;
        }
        struct pollfd pf = {ppx_pool_fd(nd->pool), POLLIN, 0};
        struct timespec ts = {0, (long)wait};
        ppoll(&pf, 1, &ts, NULL);
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
    rc = hello(&nd);
    if (rc == 0) {
        nd.e = calloc(nd.cap, sizeof *nd.e);
        nd.done = calloc(nd.cap, sizeof *nd.done);
        if (!nd.e || !nd.done)
            rc = PPX_ENOMEM;
    }
    if (rc == 0)
        serve(&nd);
    for (uint32_t s = 0; s < nd.cap && nd.e; s++)
        ppx_future_unref(nd.e[s].f);
    free(nd.e);
    free(nd.done);
    free(nd.req);
    free(nd.bufs);
    ppx_pool_free(nd.pool);
    MPI_Comm_free(&nd.comm);
    if (!nd.lost_peer)
        MPI_Finalize();
    /* This process was lent to rank 0's pool; its own program must not
     * go on as if ppx_pool_new had returned. */
    exit(rc ? 1 : 0);
}
