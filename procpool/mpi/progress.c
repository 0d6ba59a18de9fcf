/*
 * Rank 0's progress thread: sends what remote.c placed, receives what the
 * nodes answer, notices nodes gone silent, and detaches the nodes when
 * the pool is freed.
 *
 * Why a thread, not MPI tests driven from the libuv loop: Open MPI gives
 * no descriptor to poll, so a loop-driven design must either spin the
 * loop (an idle handle: a core burnt whenever a call is out) or test on a
 * timer (a millisecond added to every round trip). The thread polls with
 * a short back-off while calls are out and sleeps on a condition
 * variable when none are; completions reach the loop through the pool's
 * eventfd, the same path as replies from local workers.
 */
#include "link.h"
#include "shm/wake.h"

#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <time.h>

/* Defined here, beside its heaviest user, so mpi_link.c depends on this
 * file and not both ways. */
ppx__cluster ppx__cl = {.mu = PTHREAD_MUTEX_INITIALIZER, .next_id = 1};
#define cl ppx__cl

typedef struct sending {
    MPI_Request req;
    unsigned char *buf;
    size_t cap; /* a ppx__bigbuf of cap bytes, or malloc'd when cap == 0 */
} sending;

typedef struct mlink {
    ppx_pool *p;
    ppx__remote *r;
    sending *s;
    size_t ns, caps;
    int detach_left;
    int64_t detach_at;
    int64_t due_signalled; /* the queue deadline the pool was woken for */
    int64_t replies_at;    /* when answers last came (see nap) */
} mlink;

/* A node some of whose answers will never come: reported lost at once. */
static void broken(mlink *l, int node, const char *why)
{
    ppx__node *nd = &l->r->nodes[node];
    if (!nd->broken)
        snprintf(nd->broken_why, sizeof nd->broken_why, "%s", why);
    nd->broken = true;
}

typedef struct batch {
    int node, tag;
    unsigned char *buf;
    size_t len, cap; /* cap as for sending */
} batch;

/* A batch's buffer: a ppx__bigbuf of cap bytes, or malloc'd when cap is 0. */
static void drop_buf(unsigned char *buf, size_t cap)
{
    if (cap)
        ppx__bigbuf_free(buf, cap);
    else
        free(buf);
}

static void send_buf(mlink *l, int node, int tag, unsigned char *buf, size_t len, size_t cap)
{
    if (l->ns == l->caps) {
        size_t c = l->caps ? l->caps * 2 : 16;
        sending *s = realloc(l->s, c * sizeof *s);
        if (!s)
            goto fail;
        l->s = s;
        l->caps = c;
    }
    sending *s = &l->s[l->ns];
    int dest = l->r->nodes[node].rank;
    if (len > PPX__MPI_MAX_MSG ||
        MPI_Isend(buf, (int)len, MPI_BYTE, dest, tag, cl.comm, &s->req) != MPI_SUCCESS)
        goto fail;
    s->buf = buf;
    s->cap = cap;
    l->ns++;
    ppx__node_ring(&l->r->nodes[node], ppx__now_ns());
    return;
fail:
    /* The calls in it are answered by nobody: the node is lost to us. */
    drop_buf(buf, cap);
    broken(l, node, "a message to it could not be sent");
}

static bool push(batch **b, size_t *n, size_t *cap, batch x)
{
    if (*n == *cap) {
        size_t c = *cap ? *cap * 2 : 8;
        batch *nb = realloc(*b, c * sizeof *nb);
        if (!nb)
            return false;
        *b = nb;
        *cap = c;
    }
    (*b)[(*n)++] = x;
    return true;
}

/* Moves pk's envelopes into a batch of their own (false without memory). */
static bool take_packed(batch **b, size_t *n, size_t *cap, int node, int tag, ppx__packed *pk)
{
    if (!pk->len)
        return true;
    if (!push(b, n, cap, (batch){node, tag, pk->b, pk->len, 0}))
        return false;
    *pk = (ppx__packed){0};
    return true;
}

/* Under the lock: moves frames waiting to go out into batches (one per
 * node of small ones, up to PPX__MPI_BATCH bytes, one each for the big
 * ones). A frame is taken from its task only once its batch exists, so
 * whatever does not fit (or finds no memory) waits for the next round. */
static size_t collect(mlink *l, batch **out)
{
    ppx__remote *r = l->r;
    size_t n = 0, cap = 0;
    batch *b = NULL;
    for (int i = 0; i < r->nnodes; i++) {
        ppx__node *nd = &r->nodes[i];
        if (!take_packed(&b, &n, &cap, i, PPX__TAG_CANCELS, &nd->cancels) ||
            !take_packed(&b, &n, &cap, i, PPX__TAG_STEAL, &nd->steals))
            break;
        size_t small = 0;
        for (ppx__task *t = ppx__list_first(&nd->out); t; t = ppx__task_next(t))
            if (t->frame_len < PPX__MPI_ALONE && small + t->frame_len <= PPX__MPI_BATCH)
                small += t->frame_len;
        unsigned char *sb = small ? malloc(small) : NULL;
        if (small && !sb)
            continue; /* they wait for the next round */
        size_t at = n, used = 0;
        if (sb && !push(&b, &n, &cap, (batch){i, PPX__TAG_CALLS, sb, 0, 0})) {
            free(sb);
            break;
        }
        bool full = false;
        for (ppx__task *t = ppx__list_first(&nd->out), *next; t; t = next) {
            next = ppx__task_next(t);
            if (t->frame_len >= PPX__MPI_ALONE) {
                if (full || !push(&b, &n, &cap,
                                  (batch){i, PPX__TAG_CALLS, t->frame, t->frame_len, ppx__task_frame_cap(t)})) {
                    full = true;
                    continue;
                }
                t->frame = t->inline_frame; /* the batch owns it now */
                t->frame_len = 0;             /* so it cannot be sent elsewhere */
            } else {
                /* A copy: the task keeps its frame, to be placed again
                 * if the node gives it back or is lost before it starts. */
                if (used + t->frame_len > small)
                    continue;
                memcpy(sb + used, t->frame, t->frame_len);
                used += t->frame_len;
            }
            ppx__rt(t)->at = PPX__AT_NODE;
            ppx__list_remove(&nd->out, &t->link);
            ppx__list_push_back(&nd->held, &t->link);
        }
        if (sb)
            b[at].len = used;
        if (full)
            break;
    }
    *out = b;
    return n;
}

/* Receives everything that has arrived; returns how many messages. */
static int receive(mlink *l, ppx__msg **head)
{
    int got = 0;
    for (;;) {
        int flag = 0;
        MPI_Status st;
        if (MPI_Iprobe(MPI_ANY_SOURCE, MPI_ANY_TAG, cl.comm, &flag, &st) != MPI_SUCCESS || !flag)
            return got;
        int len = 0;
        if (MPI_Get_count(&st, MPI_BYTE, &len) != MPI_SUCCESS)
            len = MPI_UNDEFINED;
        size_t cap = 0;
        unsigned char *buf = len >= 0 ? ppx__bigbuf_alloc(len > 0 ? (size_t)len : 1, &cap) : NULL;
        ppx__msg *m = buf ? calloc(1, sizeof *m) : NULL;
        int node = st.MPI_SOURCE - 1;
        bool known = node >= 0 && node < l->r->nnodes;
        got++;
        if (!m) {
            /* Too big to count (over 2 GiB) or no memory for it: receive
             * it truncated, which takes it out of MPI's queue (left there
             * it would come first in every probe), and since some answers
             * in it are lost, lose the node. */
            unsigned char none[1];
            if (buf)
                ppx__bigbuf_free(buf, cap);
            MPI_Recv(none, 0, MPI_BYTE, st.MPI_SOURCE, st.MPI_TAG, cl.comm, MPI_STATUS_IGNORE);
            if (known && st.MPI_TAG == PPX__TAG_REPLIES)
                broken(l, node, len < 0 ? "it sent a message too big for MPI to count"
                                        : "no memory to receive its answers");
            continue;
        }
        int rc = MPI_Recv(buf, len, MPI_BYTE, st.MPI_SOURCE, st.MPI_TAG, cl.comm,
                          MPI_STATUS_IGNORE);
        bool keep = st.MPI_TAG == PPX__TAG_REPLIES || st.MPI_TAG == PPX__TAG_STARTING;
        if (!known || rc != MPI_SUCCESS || !keep) {
            if (known && rc != MPI_SUCCESS && keep)
                broken(l, node, "its answers could not be received");
            else if (known && st.MPI_TAG == PPX__TAG_DETACHED && l->detach_at)
                l->detach_left--;
            if (known)
                l->r->nodes[node].seen_ns = ppx__now_ns();
            ppx__bigbuf_free(buf, cap);
            free(m);
            continue;
        }
        l->r->nodes[node].seen_ns = ppx__now_ns();
        if (st.MPI_TAG == PPX__TAG_REPLIES)
            l->replies_at = l->r->nodes[node].seen_ns;
        *m = (ppx__msg){*head, node, st.MPI_TAG, buf, (size_t)len, cap};
        *head = m;
    }
}

static bool sends_done(mlink *l)
{
    size_t k = 0;
    for (size_t i = 0; i < l->ns; i++) {
        int flag = 0;
        MPI_Test(&l->s[i].req, &flag, MPI_STATUS_IGNORE);
        if (flag)
            drop_buf(l->s[i].buf, l->s[i].cap);
        else
            l->s[k++] = l->s[i];
    }
    bool progressed = k != l->ns;
    l->ns = k;
    return progressed;
}

/* A node on this host that holds calls: its process is looked at every
 * 50 ms, so its death is noticed long before its silence would be. */
static void check_pid(mlink *l, ppx__node *nd, int64_t now)
{
    if (!nd->here || nd->broken || nd->pid <= 0 || now - nd->checked_ns < 50000000LL)
        return;
    nd->checked_ns = now;
    if (ppx__pid_ended(nd->pid))
        broken(l, (int)(nd - l->r->nodes), "its process has ended");
}

/* Under the lock: a node that holds calls and has been silent too long,
 * or whose answers were lost on the way (broken), is lost; its calls fail
 * through the inbox, on the thread that drains. */
static bool check_silence(mlink *l)
{
    ppx__remote *r = l->r;
    bool any = false;
    int64_t now = ppx__now_ns();
    for (int i = 0; i < r->nnodes; i++) {
        ppx__node *nd = &r->nodes[i];
        if (nd->lost || (!nd->inflight && !nd->broken))
            continue;
        check_pid(l, nd, now);
        char why[256];
        if (nd->broken) {
            snprintf(why, sizeof why, "%s: %s", nd->name, nd->broken_why);
        } else {
            if (nd->seen_ns < nd->heard_ns)
                nd->seen_ns = nd->heard_ns; /* calls placed after a quiet spell */
            if (now - nd->seen_ns <= r->timeout_ns)
                continue;
            snprintf(why, sizeof why, "%s sent nothing for %lld ms", nd->name,
                     (long long)((now - nd->seen_ns) / 1000000));
        }
        size_t cap;
        unsigned char *b = ppx__bigbuf_alloc(sizeof why, &cap);
        ppx__msg *m = b ? calloc(1, sizeof *m) : NULL;
        if (!m) { /* tried again on the next round */
            if (b)
                ppx__bigbuf_free(b, cap);
            continue;
        }
        memcpy(b, why, sizeof why);
        pthread_mutex_lock(&cl.mu);
        cl.info[i].lost = true;
        cl.lost_any = true;
        pthread_mutex_unlock(&cl.mu);
        *m = (ppx__msg){NULL, i, -1, b, sizeof why, cap};
        ppx__remote_post(l->p, m);
        nd->seen_ns = INT64_MAX / 2; /* reported once */
        nd->broken = false;
        any = true;
    }
    return any;
}

static bool idle(ppx__remote *r, mlink *l)
{
    if (l->ns || r->queue.n)
        return false;
    for (int i = 0; i < r->nnodes; i++)
        if (r->nodes[i].inflight && !r->nodes[i].lost)
            return false;
    return true;
}

/* Tells every node still in the job that the pool is going (detach[i]:
 * node i was not lost when the stop was seen). No lock. */
static void send_detach(mlink *l, const bool *detach)
{
    l->detach_at = ppx__now_ns();
    for (int i = 0; detach && i < l->r->nnodes; i++) {
        if (!detach[i])
            continue;
        ppx__node_ring(&l->r->nodes[i], l->detach_at);
        if (MPI_Send(NULL, 0, MPI_BYTE, l->r->nodes[i].rank, PPX__TAG_DETACH, cl.comm) ==
            MPI_SUCCESS)
            l->detach_left++;
    }
}

/* Under the lock: what arrived (newest first in `in`) goes to the inbox
 * oldest first, with lost nodes and passed queue deadlines; the pool's
 * eventfd is signalled when there is anything for the drainer. */
static void post_received(mlink *l, ppx__msg *in)
{
    ppx__remote *r = l->r;
    ppx__msg *rev = NULL;
    while (in) {
        ppx__msg *next = in->next;
        in->next = rev;
        rev = in;
        in = next;
    }
    bool posted = rev != NULL;
    while (rev) {
        ppx__msg *next = rev->next;
        ppx__remote_post(l->p, rev);
        rev = next;
    }
    posted |= check_silence(l);
    /* A queued call's deadline passed: the drainer times it out. */
    if (r->queue_due_ns && r->queue_due_ns != l->due_signalled &&
        ppx__now_ns() >= r->queue_due_ns) {
        l->due_signalled = r->queue_due_ns;
        posted = true;
    }
    if (posted)
        ppx__eventfd_signal(l->p->efd);
}

/* Whether nd said it started one of the calls it holds. */
static bool holds_started(ppx__node *nd)
{
    for (ppx__task *t = ppx__list_first(&nd->held); t; t = ppx__task_next(t))
        if (ppx__rt(t)->started)
            return true;
    return false;
}

/* Under the lock, nothing moved this round: sleep until there is work
 * (idle) or for the back-off (calls are out: poll hot, then back off, so
 * a busy run answers fast and a long call costs about a thousand cheap
 * probes a second). false after a bare yield, which must not clear
 * has_work. */
static bool nap(mlink *l, int64_t active_at, bool detaching)
{
    ppx__remote *r = l->r;
    ppx_pool *p = l->p;
    if (idle(r, l) && !detaching) {
        while (!r->has_work && !r->stopping)
            pthread_cond_wait(&r->wake, &p->mu);
        return true;
    }
    int64_t now = ppx__now_ns(), quiet = now - active_at;
    int64_t wait = ppx__mpi_backoff_ns(quiet, true);
    /* Nodes whose answers come far apart (long calls): no hot polling
     * right after an answer, which would take the CPU their workers need;
     * sleep through half the expected gap from it first. Only while every
     * node holding calls has one started: one waiting for us to take its
     * STARTING starts nothing until we poll, so a nap there slows it,
     * lowers its measured rate and lengthens the next nap (over TCP, a
     * round trip grew past 200 ms that way). */
    double rate = 0;
    bool all_started = true;
    for (int i = 0; i < r->nnodes; i++) {
        ppx__node *nd = &r->nodes[i];
        if (!nd->inflight || nd->lost)
            continue;
        rate += nd->rate;
        all_started = all_started && holds_started(nd);
    }
    int64_t gap = rate > 0 ? (int64_t)(1e9 / rate) : 0;
    int64_t since = now - l->replies_at;
    if (all_started && gap > 400000 && since < gap / 2 && gap / 2 - since > wait)
        wait = gap / 2 - since;
    if (wait == 0) {
        ppx__pool_unlock(p);
        sched_yield();
        ppx__pool_lock(p);
        return false;
    }
    int64_t at = ppx__now_ns() + wait;
    struct timespec ts = {at / 1000000000LL, at % 1000000000LL};
    pthread_cond_timedwait(&r->wake, &p->mu, &ts);
    return true;
}

void *ppx__mpi_progress(void *arg)
{
    ppx_pool *p = arg;
    ppx__remote *r = ppx__remote_of(p);
    mlink l = {.p = p, .r = r};
    /* Linux adds 50 us of slack to each timed sleep of this thread by
     * default, more than the back-off's shortest waits. */
    prctl(PR_SET_TIMERSLACK, 1000UL);
    int64_t active_at = ppx__now_ns();
    bool detaching = false;
    /* The nodes to detach, read under the lock (lost is the drainer's). */
    bool *detach = calloc((size_t)r->nnodes, sizeof *detach);
    ppx__pool_lock(p);
    for (;;) {
        batch *b = NULL;
        size_t nb = collect(&l, &b);
        bool stopping = r->stopping;
        if (stopping && !detaching)
            for (int i = 0; detach && i < r->nnodes; i++)
                detach[i] = !r->nodes[i].lost;
        ppx__pool_unlock(p);

        for (size_t i = 0; i < nb; i++)
            send_buf(&l, b[i].node, b[i].tag, b[i].buf, b[i].len, b[i].cap);
        free(b);
        if (stopping && !detaching) {
            detaching = true;
            send_detach(&l, detach);
        }
        ppx__msg *in = NULL;
        int got = receive(&l, &in);
        bool sent = sends_done(&l);

        ppx__pool_lock(p);
        post_received(&l, in);
        /* Done when every node said it detached and every send completed;
         * after 5 s, whatever is left: a send to a lost node on another
         * host never completes over TCP (its peer is gone), and waiting
         * for it kept ppx_pool_free from returning. */
        bool late = detaching && ppx__now_ns() - l.detach_at > 5 * 1000000000LL;
        if (detaching && ((l.ns == 0 && l.detach_left <= 0) || late))
            break;
        if (nb || got || sent) {
            active_at = ppx__now_ns();
            continue;
        }
        if (r->has_work) {
            r->has_work = false;
            continue;
        }
        if (nap(&l, active_at, detaching))
            r->has_work = false;
    }
    ppx__pool_unlock(p);
    /* Only after the 5 s detach timeout; their buffers stay allocated,
     * as MPI may still hold them. */
    for (size_t i = 0; i < l.ns; i++)
        MPI_Cancel(&l.s[i].req);
    free(l.s);
    free(detach);
    return NULL;
}

