/*
 * Rank 0's link to the nodes: MPI start-up, the progress thread, and the
 * goodbye at exit. After MPI_Init this thread is the only one in the
 * process that calls MPI (MPI_THREAD_SERIALIZED is all we ask for).
 *
 * Why a thread, not MPI tests driven from the libuv loop: Open MPI gives
 * no descriptor to poll, so a loop-driven design must either spin the
 * loop (an idle handle: a core burnt whenever a call is out) or test on a
 * timer (a millisecond added to every round trip). The thread polls with
 * a short back-off while calls are out and sleeps on a condition
 * variable when none are; completions reach the loop through the pool's
 * eventfd, the same path as replies from local workers.
 */
#include "remote.h"
#include "shm/wake.h"

#include <mpi.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <time.h>
#include <unistd.h>

/* What rank 0 knows of the cluster; one per process, kept across pools. */
static struct {
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
} cl = {.mu = PTHREAD_MUTEX_INITIALIZER, .next_id = 1};

static void nap_us(long us)
{
    struct timespec ts = {0, us * 1000L};
    nanosleep(&ts, NULL);
}

static void say_goodbye(void);

/* MPI_Init and every node's HELLO, once per process. Under cl.mu. */
static int join(void)
{
    int inited = 0, prov = 0;
    MPI_Initialized(&inited);
    if (!inited) {
        if (MPI_Init_thread(NULL, NULL, MPI_THREAD_SERIALIZED, &prov) != MPI_SUCCESS) {
            ppx__set_last_error("MPI_Init_thread failed");
            return PPX_EBACKEND;
        }
        cl.we_init = true;
    } else {
        MPI_Query_thread(&prov);
    }
    if (prov < MPI_THREAD_SERIALIZED) {
        ppx__set_last_error("MPI gives thread level %d; ppx needs MPI_THREAD_SERIALIZED", prov);
        return PPX_EBACKEND;
    }
    MPI_Comm_dup(MPI_COMM_WORLD, &cl.comm);
    MPI_Comm_set_errhandler(cl.comm, MPI_ERRORS_RETURN);
    MPI_Comm_size(cl.comm, &cl.size);
    cl.pid = getpid();
    cl.up = true;
    if (!cl.exit_hooked) {
        atexit(say_goodbye);
        cl.exit_hooked = true;
    }
    cl.info = calloc((size_t)(cl.size > 1 ? cl.size - 1 : 1), sizeof *cl.info);
    if (!cl.info)
        return PPX_ENOMEM;
    /* The nodes start their pools before MPI_Init, so all of them answer
     * within a few seconds; a minute means something is wrong. */
    int64_t start = ppx__now_ns();
    for (int got = 0; got < cl.size - 1;) {
        int flag = 0;
        MPI_Status st;
        MPI_Iprobe(MPI_ANY_SOURCE, PPX__TAG_HELLO, cl.comm, &flag, &st);
        if (!flag) {
            if (ppx__now_ns() - start > 60 * 1000000000LL) {
                ppx__set_last_error("%d of %d MPI ranks said hello within 60 s", got,
                                    cl.size - 1);
                return PPX_EBACKEND;
            }
            nap_us(200);
            continue;
        }
        int len;
        MPI_Get_count(&st, MPI_BYTE, &len);
        unsigned char b[256];
        if (len > (int)sizeof b)
            len = (int)sizeof b;
        MPI_Recv(b, len, MPI_BYTE, st.MPI_SOURCE, PPX__TAG_HELLO, cl.comm, MPI_STATUS_IGNORE);
        ppx__node *nd = &cl.info[st.MPI_SOURCE - 1];
        nd->rank = st.MPI_SOURCE;
        if (ppx__remote_read_hello(b, (size_t)len, nd)) {
            ppx__set_last_error("rank %d sent a malformed hello", st.MPI_SOURCE);
            return PPX_EBACKEND;
        }
        got++;
    }
    return 0;
}

static int make_nodes(ppx__remote *r)
{
    r->nnodes = cl.size - 1;
    r->nodes = calloc((size_t)r->nnodes, sizeof *r->nodes);
    if (!r->nodes)
        return PPX_ENOMEM;
    for (int i = 0; i < r->nnodes; i++) {
        ppx__node *nd = &r->nodes[i];
        *nd = cl.info[i];
        nd->lost = nd->lost || cl.info[i].lost;
        nd->slot = calloc(nd->cap, sizeof *nd->slot);
        nd->free_slots = malloc(nd->cap * sizeof *nd->free_slots);
        if (!nd->slot || !nd->free_slots)
            return PPX_ENOMEM;
        for (uint32_t s = 0; s < nd->cap; s++)
            nd->free_slots[s] = nd->cap - 1 - s;
        nd->nfree = nd->cap;
        r->workers += nd->lost ? 0 : nd->workers;
    }
    return 0;
}

static void *progress(void *arg);

int ppx__remote_start(ppx_pool *p)
{
    pthread_mutex_lock(&cl.mu);
    int rc = 0;
    if (cl.open) {
        ppx__set_last_error("an MPI pool is already open in this process");
        rc = PPX_EBACKEND;
    } else if (!cl.up) {
        rc = join();
    }
    ppx__remote *r = rc ? NULL : calloc(1, sizeof *r);
    if (!rc && !r)
        rc = PPX_ENOMEM;
    if (r) {
        p->be = r;
        pthread_condattr_t ca;
        pthread_condattr_init(&ca);
        pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
        pthread_cond_init(&r->wake, &ca);
        pthread_condattr_destroy(&ca);
        const char *t = getenv("PPX_NODE_TIMEOUT_MS");
        long ms = t && *t ? strtol(t, NULL, 10) : PPX__NODE_TIMEOUT_MS;
        r->timeout_ns = (ms > 0 ? ms : PPX__NODE_TIMEOUT_MS) * 1000000LL;
        rc = make_nodes(r);
        if (rc == 0 && r->workers == 0) {
            ppx__set_last_error("no MPI node is left to run calls");
            rc = PPX_EBACKEND;
        }
        if (rc == 0) {
            rc = -pthread_create(&r->thread, NULL, progress, p);
            r->thread_started = rc == 0;
        }
        if (rc == 0) {
            cl.open = p;
            atomic_store(&p->next_id, cl.next_id);
        }
    }
    pthread_mutex_unlock(&cl.mu);
    return rc;
}

/* ---- the progress thread --------------------------------------------- */

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
        if (nd->cancels_len) {
            if (!push(&b, &n, &cap, (batch){i, PPX__TAG_CANCELS, nd->cancels, nd->cancels_len, 0}))
                break;
            nd->cancels = NULL;
            nd->cancels_len = nd->cancels_cap = 0;
        }
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
                                  (batch){i, PPX__TAG_CALLS, t->frame, t->frame_len, t->frame_cap})) {
                    full = true;
                    continue;
                }
                t->frame = t->inline_frame; /* the batch owns it now */
            } else {
                if (used + t->frame_len > small)
                    continue;
                memcpy(sb + used, t->frame, t->frame_len);
                used += t->frame_len;
                if (t->frame != t->inline_frame)
                    ppx__bigbuf_free(t->frame, t->frame_cap);
                t->frame = t->inline_frame;
            }
            t->frame_len = 0;
            ppx__rt(t)->at = PPX__AT_NODE;
            ppx__list_remove(&nd->out, &t->link);
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
        if (!known || rc != MPI_SUCCESS || st.MPI_TAG != PPX__TAG_REPLIES) {
            if (known && rc != MPI_SUCCESS && st.MPI_TAG == PPX__TAG_REPLIES)
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

static void *progress(void *arg)
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
            l.detach_at = ppx__now_ns();
            for (int i = 0; detach && i < r->nnodes; i++) {
                if (!detach[i])
                    continue;
                if (MPI_Send(NULL, 0, MPI_BYTE, r->nodes[i].rank, PPX__TAG_DETACH, cl.comm) ==
                    MPI_SUCCESS)
                    l.detach_left++;
            }
        }
        ppx__msg *in = NULL;
        int got = receive(&l, &in);
        bool sent = sends_done(&l);

        ppx__pool_lock(p);
        /* Oldest first, as they came. */
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
            ppx__remote_post(p, rev);
            rev = next;
        }
        posted |= check_silence(&l);
        /* A queued call's deadline passed: the drainer times it out. */
        if (r->queue_due_ns && r->queue_due_ns != l.due_signalled &&
            ppx__now_ns() >= r->queue_due_ns) {
            l.due_signalled = r->queue_due_ns;
            posted = true;
        }
        if (posted)
            ppx__eventfd_signal(p->efd);
        if (detaching && l.ns == 0 &&
            (l.detach_left <= 0 || ppx__now_ns() - l.detach_at > 5 * 1000000000LL))
            break;
        if (nb || got || sent) {
            active_at = ppx__now_ns();
            continue;
        }
        if (r->has_work) {
            r->has_work = false;
            continue;
        }
        if (idle(r, &l) && !detaching) {
            while (!r->has_work && !r->stopping)
                pthread_cond_wait(&r->wake, &p->mu);
        } else {
            /* Calls are out: poll hot, then back off, so a busy run
             * answers fast and a long call costs about a thousand cheap
             * probes a second. */
            int64_t wait = ppx__mpi_backoff_ns(ppx__now_ns() - active_at, true);
            if (wait == 0) {
                ppx__pool_unlock(p);
                sched_yield();
                ppx__pool_lock(p);
                continue;
            }
            int64_t at = ppx__now_ns() + wait;
            struct timespec ts = {at / 1000000000LL, at % 1000000000LL};
            pthread_cond_timedwait(&r->wake, &p->mu, &ts);
        }
        r->has_work = false;
    }
    ppx__pool_unlock(p);
    for (size_t i = 0; i < l.ns; i++) /* only after a 5 s detach timeout */
        MPI_Cancel(&l.s[i].req);
    free(l.s);
    free(detach);
    return NULL;
}

void ppx__remote_stop(ppx_pool *p)
{
    ppx__remote *r = ppx__remote_of(p);
    if (!r || !r->thread_started)
        return;
    ppx__pool_lock(p);
    r->stopping = true;
    ppx__remote_wake(p);
    ppx__pool_unlock(p);
    pthread_join(r->thread, NULL);
    r->thread_started = false;
    pthread_mutex_lock(&cl.mu);
    if (cl.open == p) {
        cl.open = NULL;
        cl.next_id = atomic_load(&p->next_id);
    }
    pthread_mutex_unlock(&cl.mu);
}

/* atexit: the nodes finalize and exit when rank 0 does. */
static void say_goodbye(void)
{
    if (!cl.up || getpid() != cl.pid)
        return;
    int finalized = 0;
    MPI_Finalized(&finalized);
    if (finalized) /* the program finalized MPI itself: nothing to say */
        return;
    ppx_pool *open = cl.open;
    if (open)
        ppx__remote_stop(open); /* exit() with the pool still open */
    /* One byte: whether a rank was lost, so the nodes skip MPI_Finalize
     * too (it would wait for the lost rank forever). */
    unsigned char lost_byte = cl.lost_any;
    for (int i = 0; i < cl.size - 1; i++)
        if (!cl.info[i].lost)
            MPI_Send(&lost_byte, 1, MPI_BYTE, i + 1, PPX__TAG_EXIT, cl.comm);
    bool lost = cl.lost_any;
    MPI_Comm_free(&cl.comm);
    cl.up = false;
    free(cl.info);
    cl.info = NULL;
    /* With a rank gone, MPI_Finalize would wait for it forever. */
    if (cl.we_init && !lost)
        MPI_Finalize();
}

