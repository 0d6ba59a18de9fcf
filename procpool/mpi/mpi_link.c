/*
 * Rank 0's link to the nodes: MPI start-up and every node's HELLO, the
 * progress thread's start and stop (progress.c is the thread), and the
 * goodbye at exit.
 */
#include "link.h"
#include "shm/wake.h"

#include <mpi.h>
#include <msgpack.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <time.h>
#include <unistd.h>

#define cl ppx__cl

static void nap_us(long us)
{
    struct timespec ts = {0, us * 1000L};
    nanosleep(&ts, NULL);
}

static void say_goodbye(void);

/* Open MPI ends the whole job when any rank dies unless mpirun was given
 * --enable-recovery (which it passes to every rank as this variable):
 * said once per process, at the first MPI pool's start, since a user
 * finds out otherwise only when a node is lost and the job with it. */
static void recovery_hint(void)
{
    static bool said;
    const char *v = getenv("OMPI_MCA_orte_enable_recovery");
    if (said || !getenv("OMPI_COMM_WORLD_SIZE") || (v && (strcmp(v, "1") == 0 ||
                                                       strcmp(v, "true") == 0)))
        return;
    said = true;
    fprintf(stderr, "ppx: without mpirun --enable-recovery, Open MPI ends the whole job when "
                    "a node is lost; with it, the MPI pool goes on: calls running on that "
                    "node fail with NodeLost, the others run on the nodes left\n");
}

/* Tells every node where rank 0 runs (PPX__TAG_WELCOME). */
static void welcome(void)
{
    char host[64] = "";
    gethostname(host, sizeof host - 1);
    msgpack_sbuffer sb;
    msgpack_sbuffer_init(&sb);
    msgpack_packer pk;
    msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
    for (int i = 1; i < cl.size; i++) {
        msgpack_sbuffer_clear(&sb);
        if (msgpack_pack_array(&pk, 3) == 0 && msgpack_pack_str(&pk, strlen(host)) == 0 &&
            msgpack_pack_str_body(&pk, host, strlen(host)) == 0 &&
            msgpack_pack_int64(&pk, (int64_t)getpid()) == 0 &&
            (cl.info[i - 1].bell >= 0 ? msgpack_pack_true(&pk) : msgpack_pack_false(&pk)) == 0)
            MPI_Send(sb.data, (int)sb.size, MPI_BYTE, i, PPX__TAG_WELCOME, cl.comm);
    }
    msgpack_sbuffer_destroy(&sb);
}

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
    for (int i = 0; i < cl.size - 1; i++)
        cl.info[i].bell = -1;
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
    welcome();
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
        /* Until its speed is known: two calls per worker; stealing
         * takes back what a slow node cannot start soon. */
        nd->depth = (uint32_t)nd->workers * 2 < nd->cap ? (uint32_t)nd->workers * 2 : nd->cap;
        nd->held = (ppx__list){0};
        nd->out = (ppx__list){0};
        r->workers += nd->lost ? 0 : nd->workers;
    }
    return 0;
}


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
    if (rc == 0)
        recovery_hint();
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
            rc = -pthread_create(&r->thread, NULL, ppx__mpi_progress, p);
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
    for (int i = 0; i < cl.size - 1; i++) {
        if (!cl.info[i].lost) {
            cl.info[i].rang_ns = 0;
            ppx__node_ring(&cl.info[i], ppx__now_ns());
            MPI_Send(&lost_byte, 1, MPI_BYTE, i + 1, PPX__TAG_EXIT, cl.comm);
        }
        if (cl.info[i].bell >= 0)
            close(cl.info[i].bell);
    }
    bool lost = cl.lost_any;
    MPI_Comm_free(&cl.comm);
    cl.up = false;
    free(cl.info);
    cl.info = NULL;
    /* With a rank gone, MPI_Finalize would wait for it forever. */
    if (cl.we_init && !lost)
        MPI_Finalize();
}

