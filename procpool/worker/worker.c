#include "wctx.h"
#include "sandbox.h"
#include "procpool/wire/frame.h"
#include "procpool/registry.h"
#include "procpool/util/clock.h"
#include "serialize/envelope.h"
#include "serialize/mpread.h"
#include "shm/wake.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <pthread.h>
#include <sys/prctl.h>
#include <time.h>
#include <unistd.h>


/* A function that forks (libc's fork, which runs atfork handlers): its
 * copy of this worker may go on running the function, reading its
 * arguments, but must never write a ring, a slot or the outbox, and ends
 * as soon as the function returns (see call_function). */
static wctx *forked_ctx;
static ppx_call *running_call;
static volatile sig_atomic_t forked_copy;

/* Runs the function, then puts back the ring words this worker owns:
 * whatever the function wrote over them, the parent reads the counters
 * this loop keeps privately (the parent does the same for its words on
 * its sweep). */
static int call_function(wctx *w, const ppx__entry *e, ppx_call *call)
{
    running_call = call;
    int rc = e->fn(call, e->udata);
    running_call = NULL;
    if (forked_copy)
        _exit(0); /* the copy of a function that forked: its original answers */
    atomic_store_explicit(&w->req.r->tail, w->req.tail, memory_order_release);
    atomic_store_explicit(&w->resp.r->head, w->resp.head, memory_order_release);
    return rc;
}

static void mark_finished(wctx *w, const ppx__env *env, ppx__slot *slot);

/* Stamps the start of the function in the call's slot; mark_finished
 * stamps its end and adds the time to busy_ns. These two clock reads
 * are all that statistics and the trace cost a worker. */
static void begin_call(wctx *w, ppx__slot *slot)
{
    w->call_t0 = ppx__now_ns();
    atomic_store_explicit(&slot->started_ns, w->call_t0, memory_order_relaxed);
}

/* The call's function, its name copied into fname; or NULL after
 * replying with a NameError. */
static const ppx__entry *lookup(wctx *w, const ppx__env *env, ppx__slot *slot,
                                char fname[PPX__NAME_MAX + 1])
{
    memcpy(fname, env->function.p, env->function.len);
    fname[env->function.len] = '\0';
    const ppx__entry *e = ppx__registry_find(env->function.p, env->function.len);
    if (!e) {
        char msg[PPX__NAME_MAX + 64];
        snprintf(msg, sizeof msg, "no function named '%s' is registered", fname);
        mark_finished(w, env, slot);
        ppx__wsend_error(w, env, "NameError", msg, fname, "");
    }
    return e;
}

static void run_call(wctx *w, const ppx__env *env, ppx__slot *slot)
{
    char fname[PPX__NAME_MAX + 1];
    const ppx__entry *e = lookup(w, env, slot, fname);
    if (!e)
        return;
    ppx_call call;
    if (ppx__call_init(&call, env->task_id, env->function.p, env->function.len,
                       env->payload, slot, &w->ret)) {
        ppx__wsend_error(w, env, "ProtocolError", "call arguments are not an array", fname, "");
        return;
    }
    call.arena = w->arena;
    call.arena_bytes = w->arena_bytes;
    call.progress_wake = ppx__wprogress_wake;
    call.progress_ctx = w;
    /* A free outbox takes the result as the function writes it, behind
     * room for the reply's header: a big result is then never copied
     * again on this side. */
    uint32_t copied;
    if (w->outbox && ppx__woutbox_free(w, &copied))
        ppx__call_lend(&call, w->outbox + w->head_len, w->outbox_bytes - w->head_len);
    begin_call(w, slot);
    int rc = call_function(w, e, &call);
    mark_finished(w, env, slot);
    if (call.raised) {
        ppx__wsend_error(w, env, call.type, call.message ? call.message : "", fname, call.where);
    } else if (rc == PPX_ENOMEM) {
        /* A function handing on its ppx_return_*'s ENOMEM: the result
         * could not be built; say so rather than blame the function (as
         * the thread executor does). */
        char msg[160];
        if (w->memory_limit)
            snprintf(msg, sizeof msg, "out of memory under the pool's memory_limit_bytes (%zu "
                     "bytes beyond the worker's start, RLIMIT_AS): the function returned "
                     "PPX_ENOMEM", w->memory_limit);
        else
            snprintf(msg, sizeof msg,
                     "no memory for the result (the function returned PPX_ENOMEM)");
        ppx__wsend_error(w, env, "MemoryError", msg, fname, "");
    } else if (rc != 0) {
        char msg[128];
        snprintf(msg, sizeof msg, "function returned %d without raising an error", rc);
        ppx__wsend_error(w, env, "RuntimeError", msg, fname, "");
    } else {
        static const unsigned char nil = 0xc0;
        const void *v = call.has_ret ? (const void *)call.ret->data : &nil;
        size_t vlen = call.has_ret ? call.ret->size : 1;
        if (vlen > w->max_payload) { /* the value alone: the header has room */
            char msg[128];
            snprintf(msg, sizeof msg, "result of %zu bytes exceeds the pool's limit of %llu",
                     vlen, (unsigned long long)w->max_payload);
            ppx__wsend_error(w, env, "ResultTooLarge", msg, fname, "");
        } else if (call.has_ret && call.ret == &call.fixed &&
                   w->head_len + vlen >= ppx__big_frame(w->resp.cap)) {
            if (ppx__env_pack_result_head(&w->out, env->task_id, env->slot, env->seq) ||
                w->out.size != w->head_len)
                ppx__wleave(w, PPX__EXIT_NOMEM); /* the header is fixed-width: cannot happen */
            memcpy(w->outbox, w->out.data, w->head_len);
            ppx__wpublish_outbox(w, w->head_len + vlen);
        } else {
            if (ppx__env_pack_result(&w->out, env->task_id, env->slot, env->seq, v, vlen))
                ppx__wleave(w, PPX__EXIT_NOMEM);
            ppx__wsend_frame(w, w->out.data, w->out.size);
        }
    }
    ppx__call_destroy(&call);
}

/* A batch: fn once per argument array, results gathered into one array.
 * The first failure fails the batch, naming the item. */
static void run_map(wctx *w, const ppx__env *env, ppx__slot *slot)
{
    char fname[PPX__NAME_MAX + 1];
    const ppx__entry *e = lookup(w, env, slot, fname);
    if (!e)
        return;
    ppx__mp items = ppx__mp_of(env->payload.data, env->payload.len);
    uint32_t n = 0;
    ppx__mp_array(&items, &n); /* the decoder checked it is one array */
    msgpack_packer pk;
    msgpack_packer_init(&pk, &w->out, msgpack_sbuffer_write);
    if (ppx__env_pack_result_head(&w->out, env->task_id, env->slot, env->seq) ||
        msgpack_pack_array(&pk, n))
        ppx__wleave(w, PPX__EXIT_NOMEM);
    begin_call(w, slot); /* one span for the whole batch */
    for (uint32_t i = 0; i < n; i++) {
        const uint8_t *start = items.p;
        ppx__mp_skip(&items);
        ppx_value args = {start, (size_t)(items.p - start)};
        ppx_call call;
        char msg[PPX__MESSAGE_MAX];
        const char *type = NULL, *where = "";
        if (atomic_load_explicit(&slot->cancel, memory_order_relaxed)) {
            type = "CancelledError";
            snprintf(msg, sizeof msg, "stopped before item %u", i);
        } else if (ppx__call_init(&call, env->task_id, env->function.p, env->function.len,
                                  args, slot, &w->ret)) {
            type = "ProtocolError";
            snprintf(msg, sizeof msg, "item %u: arguments are not an array", i);
        } else {
            call.progress_wake = ppx__wprogress_wake;
            call.progress_ctx = w;
            call.arena = w->arena;
            call.arena_bytes = w->arena_bytes;
            int rc = call_function(w, e, &call);
            w->calls++;
            if (call.raised) {
                type = call.type; /* call lives until this function returns */
                snprintf(msg, sizeof msg, "item %u: %s", i, call.message ? call.message : "");
                where = call.where;
            } else if (rc != 0) {
                type = "RuntimeError";
                snprintf(msg, sizeof msg, "item %u: function returned %d without raising", i, rc);
            } else if (call.has_ret ? msgpack_sbuffer_write(&w->out, w->ret.data, w->ret.size)
                                    : msgpack_pack_nil(&pk)) {
                ppx__wleave(w, PPX__EXIT_NOMEM);
            }
            ppx__call_destroy(&call); /* frees only the message, copied into msg */
        }
        if (type) {
            mark_finished(w, env, slot);
            ppx__wsend_error(w, env, type, msg, fname, where);
            return;
        }
    }
    mark_finished(w, env, slot);
    size_t vlen = w->out.size - w->head_len; /* the array of results */
    if (vlen > w->max_payload) {
        char msg[128];
        snprintf(msg, sizeof msg, "results of %zu bytes exceed the pool's limit of %llu",
                 vlen, (unsigned long long)w->max_payload);
        ppx__wsend_error(w, env, "ResultTooLarge", msg, fname, "");
        return;
    }
    ppx__wsend_frame(w, w->out.data, w->out.size);
}

/* Claims the call in slot i for this worker: false if it is not ours to
 * run (cancelled before we got to it, which the parent is told, or moved
 * to another worker). */
static bool claim(wctx *w, uint64_t task_id, uint32_t i, uint32_t seq, ppx__slot **out)
{
    ppx__slot *slot = &w->slots[i - w->first_slot]; /* i was checked */
    uint64_t expect = ppx__slot_word(seq, 0, PPX__SLOT_QUEUED);
    uint64_t mine = ppx__slot_word(seq, w->index, PPX__SLOT_RUNNING);
    if (!atomic_compare_exchange_strong_explicit(&slot->state, &expect, mine,
                                                 memory_order_acq_rel,
                                                 memory_order_acquire)) {
        if (expect == ppx__slot_word(seq, 0, PPX__SLOT_CANCELLED)) {
            if (ppx__env_pack_skip(&w->out, task_id, i, seq))
                ppx__wleave(w, PPX__EXIT_NOMEM);
            ppx__wsend_frame(w, w->out.data, w->out.size);
        } else if (atomic_load_explicit(&w->live[i], memory_order_acquire) == seq) {
            /* Neither moved nor cancelled: a function wrote over the slot.
             * Leaving between calls hands every call back to the parent. */
            ppx__wleave(w, PPX__EXIT_PROTOCOL);
        }
        return false;
    }
    *out = slot;
    return true;
}

static void run_claimed(wctx *w, const ppx__env *env, int decode_rc, ppx__slot *slot)
{
    if (decode_rc != 0 || (env->kind != PPX__ENV_CALL && env->kind != PPX__ENV_MAP)) {
        mark_finished(w, env, slot);
        ppx__wsend_error(w, env, "ProtocolError", "malformed call frame", "", "");
        return;
    }
    if (env->kind == PPX__ENV_MAP)
        run_map(w, env, slot);
    else
        run_call(w, env, slot);
    w->calls++;
}

static void handle_frame(wctx *w, const void *frame, size_t len)
{
    ppx__env env;
    int rc = ppx__env_decode(frame, len, &env);
    /* Without a readable header nobody can be told which call it was:
     * exiting makes the parent fail whatever we held, as it does on a
     * crash, so nothing hangs. */
    if (!env.head_ok || env.slot - w->first_slot >= w->nslots)
        ppx__wleave(w, PPX__EXIT_PROTOCOL);
    ppx__slot *slot;
    if (claim(w, env.task_id, env.slot, env.seq, &slot))
        run_claimed(w, &env, rc, slot);
}

/* A call whose frame lies in the arena: claimed on the record's word
 * before the frame is read (see ppx__arena_rec), then run in place. */
static void handle_arena(wctx *w, const void *rec, size_t len)
{
    ppx__arena_rec r;
    if (len != sizeof r || !w->arena)
        ppx__wleave(w, PPX__EXIT_PROTOCOL);
    memcpy(&r, rec, sizeof r);
    if (r.off > w->arena_bytes || r.len > w->arena_bytes - r.off || r.slot - w->first_slot >= w->nslots)
        ppx__wleave(w, PPX__EXIT_PROTOCOL);
    ppx__slot *slot;
    if (!claim(w, r.task_id, r.slot, r.seq, &slot))
        return;
    ppx__env env;
    int rc = ppx__env_decode(w->arena + r.off, r.len, &env);
    if (!env.head_ok || env.task_id != r.task_id)
        rc = PPX_EMALFORMED;
    env.task_id = r.task_id;
    env.slot = r.slot;
    env.seq = r.seq;
    run_claimed(w, &env, rc, slot);
}

/* Called between the function's return and the reply. The stores
 * before the release store of FINISHED (and the reply's commit) are
 * what the parent reads once it has the reply. */
static void mark_finished(wctx *w, const ppx__env *env, ppx__slot *slot)
{
    if (w->call_t0) {
        int64_t t1 = ppx__now_ns();
        atomic_store_explicit(&slot->ended_ns, t1, memory_order_relaxed);
        w->busy += (uint64_t)(t1 - w->call_t0);
        atomic_store_explicit(w->busy_ns, w->busy, memory_order_relaxed);
        w->call_t0 = 0;
    }
    atomic_store_explicit(&slot->state,
                          ppx__slot_word(env->seq, w->index, PPX__SLOT_FINISHED),
                          memory_order_release);
}

/* Resident bytes from statm's second field; 0 when it cannot be read (a
 * function closed the descriptor: the worker then never retires by
 * size). */
static uint64_t resident_bytes(const wctx *w)
{
    char buf[128];
    ssize_t n = w->statm_fd >= 0 ? pread(w->statm_fd, buf, sizeof buf - 1, 0) : -1;
    unsigned long size = 0, resident = 0;
    if (n <= 0)
        return 0;
    buf[n] = '\0';
    if (sscanf(buf, "%lu %lu", &size, &resident) != 2)
        return 0;
    return (uint64_t)resident * (uint64_t)sysconf(_SC_PAGESIZE);
}

/* Between calls: has this worker done its share? The calls still in its
 * ring were not started, so the parent hands them to the next worker. */
static bool time_to_retire(const wctx *w)
{
    return (w->max_tasks && w->calls >= w->max_tasks) ||
           (w->max_rss && w->calls && resident_bytes(w) > w->max_rss) ||
           (w->cpu_retire_ns && ppx__sandbox_cpu_ns() >= w->cpu_retire_ns);
}

_Noreturn static void init_failed(wctx *w, char *err, size_t errlen, const char *fallback)
{
    err[errlen - 1] = '\0';
    if (!err[0])
        snprintf(err, errlen, "%s", fallback);
    memcpy(w->ws->init_error, err, errlen);
    ppx__wleave(w, PPX__EXIT_INIT);
}

/* The initializer, then the pool's limits and sandbox (which must not
 * stop the initializer from opening files or loading what it needs). A
 * failure of either is reported as the initializer's. */
static void run_initializer(wctx *w, ppx__worker_init init)
{
    ppx__wshared *ws = w->ws;
    char err[PPX__INIT_ERROR_MAX];
    memset(err, 0, sizeof err);
    if (init.fn && init.fn(err, sizeof err, init.arg) != 0)
        init_failed(w, err, sizeof err, "the initializer returned an error");
    w->memory_limit = init.sandbox ? init.sandbox->memory_limit : 0;
    if (init.sandbox && ppx__sandbox_enter(init.sandbox, ws, &w->cpu_retire_ns, err, sizeof err))
        init_failed(w, err, sizeof err, "the sandbox could not be set up");
    atomic_store(&ws->ready, 1);
    /* Only a pool with an initializer (or a sandbox) waits for its
     * workers' verdict; a needless wake-up would cost the parent a round
     * while its first calls are starting. */
    if (init.fn || init.sandbox)
        ppx__eventfd_signal(w->efd);
}

static void forked_in_function(void)
{
    if (!forked_ctx)
        return;
    forked_copy = 1;
    if (running_call) {
        ppx__call_unlend(running_call); /* its result goes to the heap */
        running_call->no_progress = true; /* the slot is read-only here */
    }
    ppx__shared *sh = forked_ctx->sh;
    mprotect(sh, (size_t)(ppx__shared_region(sh, sh->nworkers) - (char *)sh), PROT_READ);
}

static void start(wctx *w, ppx__shared *sh, uint32_t index)
{
    w->ws = ppx__shared_worker(sh, index);
    w->slots = ppx__shared_slots(sh, index);
    w->live = ppx__shared_live(sh);
    w->first_slot = index * sh->slots_per_worker;
    w->nslots = sh->slots_per_worker;
    w->max_payload = sh->max_payload;
    w->max_tasks = sh->max_tasks_per_child;
    w->max_rss = sh->max_rss_bytes;
    w->statm_fd = w->max_rss ? open("/proc/self/statm", O_RDONLY | O_CLOEXEC) : -1;
    w->req = ppx__port_of(ppx__shared_req(sh, index), sh->ring_bytes);
    w->resp = ppx__port_of(ppx__shared_resp(sh, index), sh->ring_bytes);
    if (sh->arena_bytes) {
        w->arena = (unsigned char *)sh + sh->arena_off;
        w->arena_bytes = sh->arena_bytes;
    }
    if (sh->outbox_bytes) {
        w->outbox = ppx__shared_outbox(sh, index);
        w->outbox_bytes = sh->outbox_bytes;
    }
    w->outbox_copied = ppx__shared_outbox_copied(sh, index);
    w->busy_ns = &w->ws->busy_ns;
    if (ppx__layout_protect(sh, index))
        ppx__wleave(w, PPX__EXIT_NOMEM); /* cannot split the mapping: no memory */
    forked_ctx = w;
    pthread_atfork(NULL, NULL, forked_in_function);
}

/* The request ring is empty: spin a while (a call that follows within
 * tens of microseconds is taken without a futex round trip), then sleep
 * until a call or the shutdown flag comes, with no timeout, so an idle
 * worker costs no CPU at all. Nothing needs a periodic look: the zygote
 * dies with the creator (lifeline, pidfd) and PR_SET_PDEATHSIG kills this
 * process with the zygote. The one check left is made once per sleep:
 * a function that closed the eventfd while the parent was not waiting
 * has not been caught by a failed write yet. */
static void wait_for_calls(wctx *w)
{
    /* No spin before the first call: nothing says one is near, and a
     * pool's workers all start at once, where each spin would take a CPU
     * from the ones still starting (the first call, when it was already
     * submitted, is in the ring before the worker runs). */
    int spin = w->served ? IDLE_SPIN : 0;
    if (ppx__ring_wait_data(&w->req, spin, 0, &w->sh->shutdown) == 0)
        return;
    if (fcntl(w->efd, F_GETFD) < 0)
        ppx__wleave(w, PPX__EXIT_WAKE_LOST);
    ppx__ring_wait_data(&w->req, 0, -1, &w->sh->shutdown);
}

_Noreturn void ppx__worker_main(ppx__shared *sh, uint32_t index, int efd, pid_t parent,
                                ppx__worker_init init)
{
    /* Signals are as the zygote left them (reset_signals in zygote.c): the
     * application's dispositions and mask, without its handlers.
     * The zygote is single-threaded, so this fires exactly when it dies,
     * and it dies with the pool's parent (see zygote.h). */
    prctl(PR_SET_PDEATHSIG, SIGKILL);
    wctx w = {.sh = sh, .index = index, .efd = efd, .parent = parent, .pid = (long)getpid()};
    start(&w, sh, index);
    if (init.sandbox) { /* scheduling: the initializer runs as the calls will */
        char err[PPX__INIT_ERROR_MAX] = "";
        if (ppx__sandbox_schedule(init.sandbox, err, sizeof err))
            init_failed(&w, err, sizeof err, "the scheduling options could not be applied");
    }
    ppx__wcheck_parent(&w); /* the parent may have died before prctl */
    msgpack_sbuffer_init(&w.out);
    msgpack_sbuffer_init(&w.ret);
    if (ppx__env_pack_result_head(&w.out, 0, 0, 0))
        ppx__wleave(&w, PPX__EXIT_NOMEM);
    w.head_len = w.out.size;
    run_initializer(&w, init);
    ppx__rx rx = {.max = w.max_payload + PPX__FRAME_SLACK};

    for (;;) {
        const void *rec;
        size_t len;
        uint32_t flags;
        int rc = ppx__ring_peek(&w.req, &rec, &len, &flags);
        if (rc == 0) {
            if (atomic_load(&sh->shutdown))
                ppx__wleave(&w, PPX__EXIT_SHUTDOWN);
            wait_for_calls(&w);
            continue;
        }
        if (rc < 0)
            ppx__wleave(&w, PPX__EXIT_PROTOCOL);
        w.served = true;
        if (flags == PPX__REC_ARENA) {
            handle_arena(&w, rec, len);
            ppx__ring_release(&w.req, len);
            rc = 1;
        } else {
            const void *frame;
            size_t flen;
            rc = ppx__rx_feed(&rx, rec, len, flags, &frame, &flen);
            if (rc < 0)
                ppx__wleave(&w, rc == PPX_ENOMEM ? PPX__EXIT_NOMEM : PPX__EXIT_PROTOCOL);
            if (rc == 1 && flags == PPX__REC_WHOLE) {
                handle_frame(&w, frame, flen); /* decoded in place, then released */
                ppx__ring_release(&w.req, len);
            } else {
                ppx__ring_release(&w.req, len); /* chunks are copied into rx */
                if (rc == 1) {
                    handle_frame(&w, frame, flen);
                    ppx__rx_done(&rx); /* keep the buffer: the next big call reuses it */
                }
            }
        }
        if (ppx__ring_notify_space(&w.req) && ppx__eventfd_signal(efd) < 0)
            w.wake_lost = true;
        /* Without its eventfd the parent hears of this worker only through
         * its sweep: ppx__wleave now that the reply is out, and be replaced. */
        if (w.wake_lost)
            ppx__wleave(&w, PPX__EXIT_WAKE_LOST);
        if (rc == 1 && time_to_retire(&w))
            ppx__wleave(&w, PPX__EXIT_RECYCLE);
    }
}
