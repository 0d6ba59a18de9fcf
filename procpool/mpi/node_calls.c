/*
 * A node's calls (see node.h): the FIFO of calls waiting for a worker,
 * the STARTING handshake with rank 0, steals and cancels, and the
 * answers, each the same envelope a worker would write, errors naming
 * this node.
 */
#include "node.h"
#include "serialize/envelope.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- sending to rank 0 --------------------------------------------------- */

/* Here, not in mpi_node.c, which reaps these sends: every message this
 * file makes goes out through it, and mpi_node.c already calls in here. */
void ppx__node_send(node *nd, int tag, void *buf, size_t len)
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

/* ---- the FIFO of waiting calls ------------------------------------------ */

static void fifo_push(node *nd, fifo *q, uint32_t s)
{
    entry *e = &nd->e[s];
    e->prev = q->tail;
    e->next = E_NONE;
    if (q->tail != E_NONE)
        nd->e[q->tail].next = s;
    else
        q->head = s;
    q->tail = s;
    q->n++;
}

static void fifo_remove(node *nd, fifo *q, uint32_t s)
{
    entry *e = &nd->e[s];
    if (e->prev != E_NONE)
        nd->e[e->prev].next = e->next;
    else
        q->head = e->next;
    if (e->next != E_NONE)
        nd->e[e->next].prev = e->prev;
    else
        q->tail = e->prev;
    q->n--;
}

/* The FIFO a call that has not started is in. */
static fifo *queue_of(node *nd, uint32_t s)
{
    return nd->e[s].state == E_WAITING ? &nd->waiting : &nd->ready;
}

/* ---- ending calls ---------------------------------------------------------- */

/* Runs on this thread: inside ppx_pool_process, ppx_future_cancel, or
 * at once when the local pool resolved the call on submission. */
static void on_done(ppx_future *f, void *arg)
{
    (void)f;
    entry *e = arg;
    node *nd = e->nd;
    nd->done[nd->ndone++] = (uint32_t)(e - nd->e);
    nd->submitted--;
    int64_t took = ppx__now_ns() - e->start_ns;
    nd->call_ns = nd->call_ns ? (3 * nd->call_ns + took) / 4 : took;
}

void ppx__node_drop_frame(entry *e)
{
    if (e->frame_cap)
        ppx__bigbuf_free(e->frame, e->frame_cap);
    else
        free(e->frame);
    e->frame = NULL;
    e->frame_cap = 0;
}

/* A call that ends here without a local future: answered as a SKIP. */
static void end_skip(node *nd, uint32_t s, uint32_t why)
{
    entry *e = &nd->e[s];
    ppx__node_drop_frame(e);
    e->state = E_ENDED;
    e->skip = why;
    nd->done[nd->ndone++] = s;
}

static void free_entry(node *nd, uint32_t s)
{
    entry *e = &nd->e[s];
    ppx_future_unref(e->f);
    ppx__node_drop_frame(e);
    if (e->announced)
        nd->announced--;
    *e = (entry){.nd = nd};
    nd->busy--;
}

/* Answers a call this node will not run, as if its worker had raised. */
static void refuse(node *nd, uint64_t id, uint32_t slot, const char *fn, const char *msg)
{
    msgpack_sbuffer sb;
    msgpack_sbuffer_init(&sb);
    if (ppx__env_pack_error_at(&sb, id, slot, 0, "RuntimeError", msg, fn, "", 0, nd->name) ==
        0) {
        size_t len = sb.size;
        ppx__node_send(nd, PPX__TAG_REPLIES, msgpack_sbuffer_release(&sb), len);
    }
    msgpack_sbuffer_destroy(&sb);
}

/* ---- calls from rank 0 ------------------------------------------------------ */

/* Keeps the call's envelope (b, len bytes) until it starts: the whole
 * message, *adopt (a ppx__bigbuf of cap bytes), when it is this one call
 * (a big one travels alone), else a copy. */
static void take_call(node *nd, const ppx__env *env, const unsigned char *b, size_t len,
                      unsigned char **adopt, size_t cap)
{
    uint32_t s = env->slot;
    if (s >= nd->cap) {
        nd->dropped++; /* rank 0 could not match an answer to it */
        return;
    }
    if (nd->e[s].state != E_FREE) {
        /* A call of a pool rank 0 gave up waiting for still holds the
         * slot: answer this one (task ids never repeat across rank 0's
         * pools, so the old call's answer cannot be taken for it). */
        char fn[PPX__NAME_MAX + 1];
        snprintf(fn, sizeof fn, "%.*s", (int)env->function.len, env->function.p);
        refuse(nd, env->task_id, s, fn, "the node still runs an earlier call in this slot");
        return;
    }
    unsigned char *copy = adopt && *adopt == b ? *adopt : malloc(len);
    if (!copy) {
        refuse(nd, env->task_id, s, "", "the node has no memory for the call");
        return;
    }
    size_t copy_cap = 0;
    if (copy == b) {
        *adopt = NULL;
        copy_cap = cap;
    } else {
        memcpy(copy, b, len);
    }
    entry *e = &nd->e[s];
    *e = (entry){.state = E_WAITING, .id = env->task_id, .frame = copy, .frame_cap = copy_cap,
                 .len = len, .got_ns = ppx__now_ns(), .nd = nd};
    nd->busy++;
    fifo_push(nd, &nd->waiting, s);
}

static entry *find(node *nd, const ppx__env *env)
{
    uint32_t s = env->slot;
    if (s >= nd->cap || nd->e[s].state == E_FREE || nd->e[s].id != env->task_id)
        return NULL;
    return &nd->e[s];
}

static void cancel_entry(node *nd, uint32_t s)
{
    entry *e = &nd->e[s];
    if (e->state == E_WAITING || e->state == E_READY) {
        fifo_remove(nd, queue_of(nd, s), s);
        end_skip(nd, s, PPX__SKIP_CANCELLED);
    } else if (e->state == E_STARTING) {
        e->cancelled = true;
    } else if (e->state == E_RUNNING) {
        ppx_future_cancel(e->f); /* answered as a skip once resolved */
    }
}

/* Rank 0 wants it back for an idle node: given back if it has not
 * started;
 * else KEPT (its answer follows), unless it has already ended. */
static void steal_entry(node *nd, uint32_t s)
{
    entry *e = &nd->e[s];
    if (e->state == E_WAITING || e->state == E_READY) {
        fifo_remove(nd, queue_of(nd, s), s);
        end_skip(nd, s, PPX__SKIP_RETURNED);
    } else if (e->state == E_STARTING || e->state == E_RUNNING) {
        nd->dropped += ppx__env_pack_skip(&nd->kept, e->id, s, PPX__SKIP_KEPT) != 0;
    }
}

void ppx__node_cancel_everything(node *nd)
{
    for (uint32_t s = 0; s < nd->cap; s++)
        cancel_entry(nd, s);
}

void ppx__node_handle(node *nd, int tag, unsigned char **buf, size_t len, size_t cap)
{
    const unsigned char *b = *buf;
    while (len) {
        size_t flen;
        ppx__env env;
        if (ppx__env_next(b, len, &flen) || ppx__env_decode(b, flen, &env)) {
            nd->dropped++;
            return;
        }
        entry *e = tag == PPX__TAG_CALLS ? NULL : find(nd, &env);
        if (tag == PPX__TAG_CALLS && (env.kind == PPX__ENV_CALL || env.kind == PPX__ENV_MAP))
            take_call(nd, &env, b, flen, flen == len && b == *buf ? buf : NULL, cap);
        else if (tag == PPX__TAG_CANCELS && env.kind == PPX__ENV_SKIP && e)
            cancel_entry(nd, (uint32_t)(e - nd->e));
        else if (tag == PPX__TAG_STEAL && env.kind == PPX__ENV_SKIP && e)
            steal_entry(nd, (uint32_t)(e - nd->e));
        else if (env.kind != PPX__ENV_SKIP) /* a skip for a call already answered is fine */
            nd->dropped++;
        b += flen;
        len -= flen;
    }
}

/* ---- starting calls ------------------------------------------------------------ */

/* Hands slot s's call to the local pool, with what is left of its
 * deadline (rank 0 stamped the rest of it into seq; the wait here
 * counts too). */
static void submit(node *nd, uint32_t s)
{
    entry *e = &nd->e[s];
    ppx__env env;
    char fn[PPX__NAME_MAX + 1] = "";
    int rc = ppx__env_decode(e->frame, e->len, &env) ? PPX_EMALFORMED : 0;
    if (rc == 0) {
        snprintf(fn, sizeof fn, "%.*s", (int)env.function.len, env.function.p);
        int64_t ms = env.seq;
        if (ms) {
            ms -= (ppx__now_ns() - e->got_ns) / 1000000;
            ms = ms < 1 ? 1 : ms > INT32_MAX ? INT32_MAX : ms;
        }
        ppx_call_options o = PPX_CALL_OPTIONS(.timeout_ms = (int)ms);
        ppx_future *f = NULL;
        rc = env.kind == PPX__ENV_MAP
                 ? ppx_pool_map(nd->pool, fn, env.payload.data, env.payload.len, &o, &f)
                 : ppx_pool_submit_ex(nd->pool, fn, env.payload.data, env.payload.len, &o, &f);
        if (rc == 0) {
            ppx__node_drop_frame(e);
            e->f = f;
            e->state = E_RUNNING;
            e->start_ns = ppx__now_ns();
            nd->submitted++;
            ppx_future_add_done_callback(f, on_done, e);
            return;
        }
    }
    /* Refused here (too big for this node's pool, say): the caller hears
     * why, as if its worker had raised it. */
    char msg[256];
    snprintf(msg, sizeof msg, "the node refused the call: %s", ppx_strerror(rc));
    refuse(nd, e->id, s, fn, msg);
    free_entry(nd, s);
}

/* The STARTING message has reached rank 0: its calls may start. */
static bool confirm(node *nd)
{
    int flag = 0;
    if (!nd->announcing || MPI_Test(&nd->ann_req, &flag, MPI_STATUS_IGNORE) != MPI_SUCCESS ||
        !flag)
        return false;
    nd->announcing = false;
    free(nd->ann_buf);
    nd->ann_buf = NULL;
    int64_t rtt = ppx__now_ns() - nd->ann_at;
    nd->ann_rtt_ns = nd->ann_rtt_ns ? (3 * nd->ann_rtt_ns + rtt) / 4 : rtt;
    for (uint32_t i = 0; i < nd->ann_n; i++) {
        uint32_t s = nd->ann_slots[i];
        if (nd->e[s].state != E_STARTING)
            continue;
        if (nd->e[s].cancelled) {
            end_skip(nd, s, PPX__SKIP_CANCELLED);
        } else {
            nd->e[s].state = E_READY;
            fifo_push(nd, &nd->ready, s);
        }
    }
    return true;
}

/* Calls announced at most: one per worker; for short calls up to
 * PPX__SHORT_AHEAD more per worker; for longer ones one more for each
 * running call due to end within two announcement round trips (by the
 * node's average call), so the next is READY when its worker frees, and
 * when those two round trips are longer than a call (rank 0 far away),
 * as many per worker as it runs meanwhile: one announcement at a time
 * would otherwise feed each worker one call per round trip. A node whose
 * calls have no history announces none ahead. */
static uint32_t may_announce(const node *nd)
{
    uint32_t w = (uint32_t)nd->workers;
    if (!nd->call_ns)
        return w;
    if (nd->call_ns < PPX__SHORT_CALL_NS)
        return w + w * PPX__SHORT_AHEAD;
    int64_t window = 2 * nd->ann_rtt_ns;
    if (window > nd->call_ns) {
        int64_t per = (window + nd->call_ns - 1) / nd->call_ns;
        int64_t most = (int64_t)w + (int64_t)w * per;
        return most > (int64_t)nd->cap ? nd->cap : (uint32_t)most;
    }
    int64_t due = ppx__now_ns() - (nd->call_ns - 2 * nd->ann_rtt_ns);
    uint32_t ending = 0;
    for (uint32_t s = 0; s < nd->cap; s++)
        ending += nd->e[s].state == E_RUNNING && nd->e[s].start_ns <= due;
    return w + ending;
}

/* Announces waiting calls up to may_announce, in one message. */
static bool announce(node *nd)
{
    uint32_t most = may_announce(nd);
    if (nd->announcing || !nd->waiting.n || nd->announced >= most)
        return false;
    msgpack_sbuffer sb;
    msgpack_sbuffer_init(&sb);
    uint32_t k = 0;
    for (uint32_t s = nd->waiting.head; s != E_NONE && nd->announced + k < most;
         s = nd->e[s].next) {
        if (ppx__env_pack_skip(&sb, nd->e[s].id, s, 0))
            break;
        nd->ann_slots[k++] = s;
    }
    if (k == 0 || MPI_Issend(sb.data, (int)sb.size, MPI_BYTE, 0, PPX__TAG_STARTING, nd->comm,
                             &nd->ann_req) != MPI_SUCCESS) {
        msgpack_sbuffer_destroy(&sb);
        return false; /* tried again on the next round */
    }
    for (uint32_t i = 0; i < k; i++) {
        uint32_t s = nd->ann_slots[i];
        fifo_remove(nd, &nd->waiting, s);
        nd->e[s].state = E_STARTING;
        nd->e[s].announced = true;
    }
    nd->announced += k;
    nd->ann_n = k;
    nd->ann_at = ppx__now_ns();
    nd->ann_buf = msgpack_sbuffer_release(&sb);
    nd->announcing = true;
    msgpack_sbuffer_destroy(&sb);
    return true;
}

bool ppx__node_start_calls(node *nd)
{
    bool moved = confirm(nd);
    while (nd->ready.n && nd->submitted < (uint32_t)nd->workers) {
        uint32_t s = nd->ready.head;
        fifo_remove(nd, &nd->ready, s);
        submit(nd, s);
        moved = true;
    }
    return announce(nd) || moved;
}

void ppx__node_abandon_start(node *nd)
{
    if (!nd->announcing)
        return;
    MPI_Cancel(&nd->ann_req);
    MPI_Request_free(&nd->ann_req);
    nd->announcing = false;
    free(nd->ann_buf);
    nd->ann_buf = NULL;
    for (uint32_t i = 0; i < nd->ann_n; i++)
        if (nd->e[nd->ann_slots[i]].state == E_STARTING)
            end_skip(nd, nd->ann_slots[i], PPX__SKIP_CANCELLED);
}

/* ---- answers ------------------------------------------------------------------- */

/* Packs slot s's answer into sb. */
static int pack_answer(node *nd, uint32_t s, msgpack_sbuffer *sb)
{
    entry *e = &nd->e[s];
    ppx_value v;
    if (!e->f)
        return ppx__env_pack_skip(sb, e->id, s, e->skip);
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
        return ppx__env_pack_skip(sb, e->id, s, PPX__SKIP_CANCELLED);
    }
}

bool ppx__node_answer(node *nd)
{
    if (!nd->ndone && !nd->kept.size)
        return false;
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
            ppx__node_send(nd, PPX__TAG_REPLIES, msgpack_sbuffer_release(&one), len);
        }
        msgpack_sbuffer_destroy(&one);
        free_entry(nd, s);
    }
    nd->ndone = kept;
    if (nd->kept.size && msgpack_sbuffer_write(&many, nd->kept.data, nd->kept.size) == 0)
        msgpack_sbuffer_clear(&nd->kept);
    if (many.size) {
        size_t len = many.size;
        ppx__node_send(nd, PPX__TAG_REPLIES, msgpack_sbuffer_release(&many), len);
    }
    msgpack_sbuffer_destroy(&many);
    return true;
}
