/*
 * Rank 0's bookkeeping for an MPI pool: where each call goes, what its
 * node answered, what a lost node takes with it. Everything here runs
 * under the pool lock and makes no MPI call (see remote.h for the
 * threads); mpi_link.c moves the bytes.
 */
#include "remote.h"
#include "serialize/envelope.h"
#include "serialize/mpread.h"
#include "shm/wake.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <fcntl.h>
#include <unistd.h>

static ppx__remote *rm(ppx_pool *p)
{
    return ppx__remote_of(p);
}

int ppx__remote_submit(ppx_pool *p, ppx__task *t, ppx__notify *n)
{
    ppx__remote *r = rm(p);
    if (t->frame_len > PPX__MPI_MAX_MSG) {
        /* MPI counts a message's bytes in an int: a bigger frame would go
         * out truncated (or not at all) and never be answered. */
        ppx_future *f = ppx__task_fut(t);
        ppx__task_drop_fut(t);
        p->unresolved--;
        p->stats.failed++;
        ppx__future_failf(f, "ValueError", 0, n,
                          "%s (task %llu): a call of %zu bytes is too big for MPI "
                          "(at most %zu bytes in one message)",
                          f->function, (unsigned long long)ppx__task_id(t), t->frame_len,
                          PPX__MPI_MAX_MSG);
        ppx__task_free(p, t);
        return 0;
    }
    *ppx__rt(t) = (ppx__rtask){.at = PPX__AT_QUEUE, .node = -1};
    ppx__list_push_back(&r->queue, &t->link);
    if (ppx__task_deadline(t) && (!r->queue_due_ns || ppx__task_deadline(t) < r->queue_due_ns))
        r->queue_due_ns = ppx__task_deadline(t);
    ppx__remote_pump(p, n); /* resolves only when every node is lost */
    return 0;
}

/* Times out the queued calls whose deadline passed before a node had room
 * for them (a placed call's deadline is its node's to keep). */
static void expire_queued(ppx_pool *p, ppx__notify *n)
{
    ppx__remote *r = rm(p);
    int64_t now = ppx__now_ns();
    if (!r->queue_due_ns || now < r->queue_due_ns)
        return;
    int64_t due = 0;
    for (ppx__task *t = ppx__list_first(&r->queue), *next; t; t = next) {
        next = ppx__task_next(t);
        if (!ppx__task_deadline(t))
            continue;
        if (ppx__task_deadline(t) > now) {
            if (!due || ppx__task_deadline(t) < due)
                due = ppx__task_deadline(t);
            continue;
        }
        ppx__list_remove(&r->queue, &t->link);
        ppx__task_stop_future(p, t, true, n);
        ppx__task_free(p, t);
    }
    r->queue_due_ns = due;
}

static void release(ppx_pool *p, ppx__node *nd, ppx__task *t)
{
    ppx__remote_unplace(nd, t);
    ppx__task_free(p, t);
}

void ppx__remote_cancel(ppx_pool *p, ppx__task *t, bool kill_later, bool timed_out,
                        ppx__notify *n)
{
    (void)kill_later;
    ppx__remote *r = rm(p);
    ppx__task_stop_future(p, t, timed_out, n);
    if (ppx__rt(t)->node < 0) {
        ppx__list_remove(&r->queue, &t->link);
        ppx__task_free(p, t);
        return;
    }
    ppx__node *nd = &r->nodes[ppx__rt(t)->node];
    if (ppx__rt(t)->at == PPX__AT_OUT) { /* never sent: the node will not hear of it */
        release(p, nd, t);
        ppx__remote_pump(p, n);
        return;
    }
    /* Sent: the node stops it (flag, then kill after the grace period)
     * and answers, which frees the slot. Without memory for the request
     * the call runs to its end, answered and dropped like any other. */
    if (ppx__packed_skip(&nd->cancels, t) == 0)
        ppx__remote_wake(p);
}

void ppx__remote_cancel_all(ppx_pool *p, bool kill_later, ppx__notify *n)
{
    ppx__remote *r = rm(p);
    while (r->queue.head)
        ppx__remote_cancel(p, ppx__list_first(&r->queue), kill_later, false, n);
    for (int i = 0; i < r->nnodes; i++) {
        ppx__node *nd = &r->nodes[i];
        for (uint32_t s = 0; s < nd->cap; s++)
            if (nd->slot[s] && ppx__task_fut(nd->slot[s]))
                ppx__remote_cancel(p, nd->slot[s], kill_later, false, n);
    }
}

void ppx__remote_cancel_queued(ppx_pool *p, ppx__notify *n)
{
    ppx__remote *r = rm(p);
    while (r->queue.head)
        ppx__remote_cancel(p, ppx__list_first(&r->queue), false, false, n);
    /* Placed but not taken by the progress thread: the node never hears
     * of it. One already sent may start there before a cancel would
     * arrive (rank 0 hears of a start only after it): it runs to its end. */
    for (int i = 0; i < r->nnodes; i++) {
        ppx__node *nd = &r->nodes[i];
        for (uint32_t s = 0; s < nd->cap; s++)
            if (nd->slot[s] && ppx__task_fut(nd->slot[s]) && ppx__rt(nd->slot[s])->at == PPX__AT_OUT)
                ppx__remote_cancel(p, nd->slot[s], false, false, n);
    }
}

void ppx__remote_node_lost(ppx_pool *p, int i, const char *why, ppx__notify *n)
{
    ppx__remote *r = rm(p);
    ppx__node *nd = &r->nodes[i];
    if (nd->lost)
        return;
    nd->lost = true;
    r->workers -= nd->workers;
    /* Never sent: they go elsewhere as they are. */
    while (nd->out.head)
        ppx__remote_requeue(p, nd, ppx__list_first(&nd->out));
    /* Sent: a call the node never said it starts has not run (see
     * PPX__TAG_STARTING) and goes elsewhere, if rank 0 kept its frame;
     * newest first, so the oldest end up first in the queue. */
    while (nd->held.tail) {
        ppx__task *t = ppx__list_last(&nd->held);
        char msg[300];
        if (!ppx__rt(t)->started && t->frame_len > 0) {
            ppx__remote_requeue(p, nd, t);
            continue;
        }
        if (ppx__rt(t)->started)
            snprintf(msg, sizeof msg, "it had started there and may have run: %s", why);
        else
            snprintf(msg, sizeof msg,
                     "it had not started, but its arguments (over %u bytes) were handed "
                     "to MPI without a copy to send elsewhere: %s",
                     PPX__MPI_ALONE, why);
        ppx__remote_fail_lost(p, t, nd->name, msg, n);
        release(p, nd, t);
    }
    ppx__remote_pump(p, n); /* re-places, or fails the queue if no node is left */
}

/* A node's STARTING: it is about to start these calls. */
static void read_starting(ppx_pool *p, ppx__msg *m)
{
    ppx__node *nd = &rm(p)->nodes[m->node];
    const unsigned char *b = m->buf;
    size_t left = m->len;
    while (left) {
        size_t len;
        ppx__env env;
        if (ppx__env_next(b, left, &len) || ppx__env_decode(b, len, &env)) {
            rm(p)->protocol_errors++;
            return;
        }
        ppx__task *t = env.slot < nd->cap ? nd->slot[env.slot] : NULL;
        if (t && ppx__task_id(t) == env.task_id && ppx__rt(t)->at == PPX__AT_NODE)
            ppx__rt(t)->started = true;
        else
            rm(p)->protocol_errors++;
        b += len;
        left -= len;
    }
}

/* A SKIP answering a steal: t comes back (RETURNED) or stays (KEPT). */
static bool stolen(ppx_pool *p, ppx__node *nd, ppx__task *t, const ppx__env *env)
{
    if (env->kind != PPX__ENV_SKIP || env->seq == PPX__SKIP_CANCELLED)
        return false;
    if (env->seq == PPX__SKIP_RETURNED) {
        /* Not started, even if announced: it was waiting for a worker. */
        ppx__remote_requeue(p, nd, t);
    } else {
        ppx__rt(t)->kept = true;
        if (ppx__rt(t)->stealing) {
            ppx__rt(t)->stealing = false;
            nd->stealing--;
        }
    }
    return true;
}

/* One envelope from node nd: resolves its call's future, frees its slot.
 * adopt, when set, is the message's buffer, which a big value may keep. */
static void answer(ppx_pool *p, ppx__node *nd, const ppx__env *env, ppx__msg *adopt,
                   ppx__notify *n)
{
    ppx__remote *r = rm(p);
    ppx__task *t = env->slot < nd->cap ? nd->slot[env->slot] : NULL;
    if (!t || ppx__task_id(t) != env->task_id || ppx__rt(t)->at != PPX__AT_NODE ||
        (env->kind != PPX__ENV_RESULT && env->kind != PPX__ENV_ERROR &&
         env->kind != PPX__ENV_SKIP)) {
        /* A KEPT may come after the call's own answer: nothing to do. */
        r->protocol_errors += !(env->kind == PPX__ENV_SKIP && env->seq == PPX__SKIP_KEPT);
        return;
    }
    if (stolen(p, nd, t, env))
        return;
    ppx__node_account(nd, ppx__now_ns(), env->kind != PPX__ENV_SKIP);
    ppx_future *f = ppx__task_fut(t);
    if (f) {
        ppx__task_drop_fut(t);
        p->unresolved--;
        if (env->kind == PPX__ENV_RESULT) {
            p->stats.completed++;
            if (adopt) {
                ppx__future_done_adopt(f, adopt->buf, adopt->cap, env->payload.data,
                                       env->payload.len, n);
                adopt->buf = NULL;
            } else {
                ppx__future_done(f, env->payload.data, env->payload.len, n);
            }
        } else if (env->kind == PPX__ENV_ERROR) {
            char type[PPX__NAME_MAX + 1], where[PPX__NAME_MAX + 1], node[PPX__NAME_MAX + 1];
            char msg[PPX__MESSAGE_MAX + 1];
            snprintf(type, sizeof type, "%.*s", (int)env->type.len, env->type.p);
            snprintf(msg, sizeof msg, "%.*s", (int)env->message.len, env->message.p);
            snprintf(where, sizeof where, "%.*s", (int)env->where.len, env->where.p);
            if (env->node.len)
                snprintf(node, sizeof node, "%.*s", (int)env->node.len, env->node.p);
            else
                snprintf(node, sizeof node, "%s", nd->name);
            p->stats.failed++;
            p->stats.crashed +=
                strcmp(type, "WorkerCrashed") == 0 || strcmp(type, "ProtocolError") == 0;
            p->stats.timed_out += strcmp(type, "TimeoutError") == 0;
            ppx__future_fail_at(f, type, msg, where, (long)env->pid, node, n);
        } else {
            /* The node dropped it unasked: its pool was closing. */
            p->stats.cancelled++;
            ppx__future_cancelled(f, n);
        }
    }
    release(p, nd, t);
}

static void read_replies(ppx_pool *p, ppx__msg *m, ppx__notify *n)
{
    ppx__node *nd = &rm(p)->nodes[m->node];
    const unsigned char *b = m->buf;
    size_t left = m->len;
    while (left) {
        size_t len;
        ppx__env env;
        if (ppx__env_next(b, left, &len) || ppx__env_decode(b, len, &env)) {
            rm(p)->protocol_errors++;
            return; /* the rest cannot be framed; a lost call times out */
        }
        /* A message that is one big result gives its buffer away. */
        bool alone = len == m->len && env.kind == PPX__ENV_RESULT &&
                     env.payload.len >= PPX__MPI_ALONE;
        answer(p, nd, &env, alone ? m : NULL, n);
        b += len;
        left -= len;
    }
}

void ppx__remote_post(ppx_pool *p, ppx__msg *m)
{
    ppx__remote *r = rm(p);
    m->next = NULL;
    if (r->inbox_tail)
        r->inbox_tail->next = m;
    else
        r->inbox = m;
    r->inbox_tail = m;
}

void ppx__remote_drain(ppx_pool *p, ppx__notify *n)
{
    ppx__remote *r = rm(p);
    ppx__msg *m = r->inbox;
    r->inbox = r->inbox_tail = NULL;
    while (m) {
        ppx__msg *next = m->next;
        if (m->tag == PPX__TAG_REPLIES)
            read_replies(p, m, n);
        else if (m->tag == PPX__TAG_STARTING)
            read_starting(p, m);
        else if (m->tag < 0)
            ppx__remote_node_lost(p, m->node, (const char *)m->buf, n);
        if (m->buf)
            ppx__bigbuf_free(m->buf, m->cap);
        free(m);
        m = next;
    }
    expire_queued(p, n);
    ppx__remote_pump(p, n);
}

int64_t ppx__mpi_backoff_ns(int64_t quiet, bool holding)
{
    if (quiet < 200000)
        return 0;
    int64_t cap = !holding && quiet > 1000000000LL ? PPX__IDLE_NAP_NS : 1000000;
    int64_t wait = quiet / 4;
    return wait < 20000 ? 20000 : wait > cap ? cap : wait;
}

ppx_state ppx__remote_state(ppx_pool *p, ppx__task *t)
{
    (void)p;
    /* Its node says when it starts a call (PPX__TAG_STARTING). */
    return ppx__rt(t)->started ? PPX_RUNNING : PPX_PENDING;
}

void ppx__remote_stats(ppx_pool *p, ppx_pool_stats *out)
{
    out->queued = rm(p)->queue.n;
}

void ppx__remote_process(ppx_pool *p, ppx__notify *n)
{
    ppx__pool_take_kick(p);
    ppx__eventfd_drain(p->efd);
    ppx__remote_drain(p, n);
}

void ppx__remote_free_tasks(ppx_pool *p)
{
    ppx__remote *r = rm(p);
    while (r->queue.head) {
        ppx__task *t = ppx__list_first(&r->queue);
        ppx__list_remove(&r->queue, &t->link);
        ppx__task_free(p, t);
    }
    for (int i = 0; i < r->nnodes; i++) {
        ppx__node *nd = &r->nodes[i];
        for (uint32_t s = 0; nd->slot && s < nd->cap; s++)
            if (nd->slot[s])
                release(p, nd, nd->slot[s]);
    }
}

void ppx__remote_destroy(ppx_pool *p, bool copy)
{
    ppx__remote *r = rm(p);
    if (!r || copy) /* a copy is never freed (see ppx__pool_free_copy) */
        return;
    ppx__notify n = {0};
    ppx__remote_drain(p, &n); /* frees what is left in the inbox */
    ppx__remote_free_tasks(p);
    for (int i = 0; i < r->nnodes; i++) {
        free(r->nodes[i].slot);
        free(r->nodes[i].free_slots);
        free(r->nodes[i].cancels.b);
        free(r->nodes[i].steals.b);
    }
    free(r->nodes);
    pthread_cond_destroy(&r->wake);
    free(r);
    p->be = NULL;
}

void ppx__node_ring(ppx__node *nd, int64_t now)
{
    if (nd->bell >= 0 && now - nd->rang_ns > PPX__BELL_QUIET_NS)
        (void)!write(nd->bell, "", 1); /* full: it rings already */
    nd->rang_ns = now;
}

bool ppx__pid_ended(long pid)
{
    char path[64], buf[256];
    snprintf(path, sizeof path, "/proc/%ld/stat", pid);
    FILE *f = fopen(path, "r");
    if (!f)
        return true;
    size_t n = fread(buf, 1, sizeof buf - 1, f);
    fclose(f);
    buf[n] = 0;
    const char *end = strrchr(buf, ')');
    return !end || end[1] != ' ' || end[2] == 'Z' || end[2] == 'X';
}

/* [workers, capacity, host, pid] from a node's HELLO. */
int ppx__remote_read_hello(const unsigned char *b, size_t len, ppx__node *nd)
{
    ppx__mp c = ppx__mp_of(b, len);
    uint32_t n, hl;
    uint64_t workers, cap;
    int64_t pid;
    const char *host;
    int64_t bell = -1;
    if (ppx__mp_array(&c, &n) || (n != 4 && n != 5) || ppx__mp_uint(&c, &workers) ||
        ppx__mp_uint(&c, &cap) || ppx__mp_str(&c, &host, &hl) || ppx__mp_int(&c, &pid) ||
        (n == 5 && ppx__mp_int(&c, &bell)) || workers == 0 || workers > 4096 ||
        cap < workers || cap > 65536 || hl > 63)
        return PPX_EMALFORMED;
    nd->workers = (int)workers;
    nd->cap = (uint32_t)cap;
    nd->pid = (long)pid;
    snprintf(nd->name, sizeof nd->name, "%.*s rank %d", (int)hl, host, nd->rank);
    char me[64] = "";
    gethostname(me, sizeof me - 1);
    nd->here = strlen(me) == hl && memcmp(me, host, hl) == 0;
    /* Its doorbell's write end, through /proc: only on this host, and
     * only where this process may look at the node's descriptors. */
    nd->bell = -1;
    if (nd->here && bell >= 0 && bell < INT32_MAX && pid > 1) {
        char path[64];
        snprintf(path, sizeof path, "/proc/%lld/fd/%lld", (long long)pid, (long long)bell);
        nd->bell = open(path, O_WRONLY | O_NONBLOCK | O_CLOEXEC);
    }
    return 0;
}
