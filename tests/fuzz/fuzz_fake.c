/*
 * Fake workers and a fake zygote for fuzz_shared.c. A fake worker follows
 * ppx__worker_main step for step (the same ports, claim CAS, live table
 * check, FINISHED word, outbox hand-shake, exit notes and statuses) but
 * never blocks: where a real worker would wait, it returns and resumes on
 * its next step. Its "functions": "fail" raises ValueError, anything else
 * returns its arguments (a map: its items).
 */
#include "fuzz_shared.h"
#include "procpool/worker/worker.h"
#include "procpool/worker/zygote.h"
#include "serialize/envelope.h"
#include "shm/wake.h"

#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

harness fuzz_h;

/* The parent signals workers by pidfd, or with kill() where it has none;
 * pidfd_open fails for a fake pid, so every signal comes here. A SIGKILL
 * to a fake worker kills it (its death is reported by the fake zygote);
 * anything else goes to the kernel. */
int kill(pid_t pid, int sig)
{
    if (pid < FAKE_PID_BASE)
        return (int)syscall(SYS_kill, pid, sig);
    for (int i = 0; i < FAKE_MAX_WORKERS; i++) {
        fake *f = &fuzz_h.w[i];
        if (f->alive && f->pid == pid) {
            if (sig == SIGKILL)
                f->killed = true;
            return 0;
        }
    }
    errno = ESRCH;
    return -1;
}

static void zsend(harness *h, uint32_t type, uint32_t index, pid_t pid, int code, int status)
{
    ppx__zmsg m = {type, index, pid, code, status};
    if (send(h->zsock, &m, sizeof m, MSG_NOSIGNAL) != (ssize_t)sizeof m)
        abort(); /* the socket buffer holds far more than one input sends */
}

static void fake_reset(fake *f)
{
    f->alive = f->killed = false;
    ppx__rx_reset(&f->rx);
    msgpack_sbuffer_clear(&f->out);
    f->out_pending = f->out_in_outbox = false;
    f->outbox_sends = 0;
    f->finish_slot = NULL;
}

static void fake_start(harness *h, uint32_t i)
{
    ppx__shared *sh = h->l->sh;
    fake *f = &h->w[i];
    if (f->alive)
        abort(); /* two workers for one region */
    fake_reset(f);
    f->alive = true;
    f->pid = h->next_pid++;
    f->index = i;
    f->first = i * sh->slots_per_worker;
    f->nslots = sh->slots_per_worker;
    f->req = ppx__port_of(ppx__shared_req(sh, i), sh->ring_bytes);
    f->resp = ppx__port_of(ppx__shared_resp(sh, i), sh->ring_bytes);
    f->rx.max = sh->max_payload + PPX__FRAME_SLACK;
    zsend(h, PPX__Z_SPAWNED, i, f->pid, 0, 0);
}

void fake_zygote_step(harness *h)
{
    ppx__zmsg m;
    while (recv(h->zsock, &m, sizeof m, MSG_DONTWAIT) == (ssize_t)sizeof m)
        if (m.type != PPX__Z_SPAWN || m.index >= (uint32_t)h->l->nworkers)
            continue;
        else if (h->spawn_fails && h->spawn_fails--)
            zsend(h, PPX__Z_SPAWN_FAILED, m.index, 0, EAGAIN, 0);
        else
            fake_start(h, m.index);
}

/* _exit(status), announced by a note when deliberate. */
static void leave(harness *h, fake *f, int status, bool note)
{
    ppx__wshared *ws = ppx__shared_worker(h->l->sh, f->index);
    if (note)
        atomic_store(&ws->exit_note, ppx__exit_note((uint32_t)status));
    if (status == PPX__EXIT_INIT)
        snprintf(ws->init_error, sizeof ws->init_error, "fuzz initializer failed");
    fake_reset(f);
    zsend(h, PPX__Z_EXITED, f->index, f->pid, CLD_EXITED, status);
}

int fake_die(harness *h, int i, int kind)
{
    static const int statuses[] = {PPX__EXIT_PROTOCOL, PPX__EXIT_RECYCLE, PPX__EXIT_INIT,
                                   PPX__EXIT_WAKE_LOST, PPX__EXIT_SHUTDOWN, 7};
    fake *f = &h->w[i];
    if (!f->alive)
        return -1;
    if (kind == 0) {
        fake_reset(f);
        zsend(h, PPX__Z_EXITED, f->index, f->pid, CLD_KILLED, SIGSEGV);
        return -1;
    }
    kind--;
    int status = statuses[(kind / 2) % 6];
    leave(h, f, status, kind % 2 == 0);
    return status;
}

void fake_reap_killed(harness *h)
{
    for (int i = 0; i < h->l->nworkers; i++) {
        fake *f = &h->w[i];
        if (f->alive && f->killed) {
            fake_reset(f);
            zsend(h, PPX__Z_EXITED, f->index, f->pid, CLD_KILLED, SIGKILL);
        }
    }
}

void fake_destroy(fake *f)
{
    fake_reset(f);
    msgpack_sbuffer_destroy(&f->out);
    msgpack_sbuffer_init(&f->out); /* the next input's fake starts empty */
}

static void wake(harness *h, fake *f)
{
    ppx__shared_wake_parent(ppx__shared_worker(h->l->sh, f->index), h->p->efd);
}

/* Puts what fits of the pending reply, as send_frame does: true once it
 * is all in the ring. */
static bool flush(harness *h, fake *f)
{
    if (f->finish_slot) {
        /* The function returned. As call_function: whatever it wrote over
         * the two ring words this side owns, they are put back from the
         * private counters; then FINISHED, then the reply. */
        atomic_store(&f->req.r->tail, f->req.tail);
        atomic_store(&f->resp.r->head, f->resp.head);
        atomic_store(&f->finish_slot->state, f->finish_word);
        f->finish_slot = NULL;
    }
    ppx__shared *sh = h->l->sh;
    size_t len = f->out.size;
    if (!f->out_in_outbox && sh->outbox_bytes && len >= ppx__big_frame(f->resp.cap) &&
        len <= sh->outbox_bytes) {
        if (atomic_load(ppx__shared_outbox_copied(sh, f->index)) != f->outbox_sends)
            return false; /* the parent has not copied the last one out */
        memcpy(ppx__shared_outbox(sh, f->index), f->out.data, len);
        f->outbox_sends++;
        f->out_in_outbox = true;
    }
    bool done;
    if (f->out_in_outbox) {
        ppx__outbox_rec r = {len};
        void *dst = ppx__ring_reserve(&f->resp, sizeof r);
        if ((done = dst != NULL)) {
            memcpy(dst, &r, sizeof r);
            ppx__ring_commit(&f->resp, sizeof r, PPX__REC_OUTBOX);
        }
    } else {
        done = ppx__frame_put(&f->resp, f->out.data, len, &f->out_off);
    }
    wake(h, f);
    if (done)
        f->out_pending = f->out_in_outbox = false;
    return done;
}

static void reply(fake *f, ppx__slot *slot, uint32_t seq)
{
    f->out_pending = true;
    f->out_off = 0;
    f->out_in_outbox = false;
    f->finish_slot = slot; /* NULL: a SKIP, or a rogue run of a call not claimed */
    f->finish_word = ppx__slot_word(seq, f->index, PPX__SLOT_FINISHED);
}

/* As claim() in worker.c: false when the call is not ours to run (and
 * the fake left when the slot was written over). */
static bool claim(harness *h, fake *f, uint64_t id, uint32_t i, uint32_t seq, ppx__slot **out)
{
    ppx__shared *sh = h->l->sh;
    ppx__slot *slot = &ppx__shared_slots(sh, f->index)[i - f->first];
    uint64_t expect = ppx__slot_word(seq, 0, PPX__SLOT_QUEUED);
    if (atomic_compare_exchange_strong(&slot->state, &expect,
                                       ppx__slot_word(seq, f->index, PPX__SLOT_RUNNING))) {
        *out = slot;
        return true;
    }
    if (expect == ppx__slot_word(seq, 0, PPX__SLOT_CANCELLED)) {
        msgpack_sbuffer_clear(&f->out);
        if (ppx__env_pack_skip(&f->out, id, i, seq))
            abort();
        reply(f, NULL, seq);
    } else if (atomic_load(&ppx__shared_live(sh)[i]) == seq) {
        leave(h, f, PPX__EXIT_PROTOCOL, true);
    } else if (f->rogue) {
        *out = NULL; /* moved elsewhere: a rogue worker runs it all the same */
        return true;
    }
    return false;
}

static void run(fake *f, const ppx__env *env, int rc, ppx__slot *slot)
{
    msgpack_sbuffer_clear(&f->out);
    int prc;
    if (rc != 0 || (env->kind != PPX__ENV_CALL && env->kind != PPX__ENV_MAP))
        prc = ppx__env_pack_error(&f->out, env->task_id, env->slot, env->seq, "ProtocolError",
                                  "malformed call frame", "", "", f->pid);
    else if (env->function.len == 4 && memcmp(env->function.p, "fail", 4) == 0)
        prc = ppx__env_pack_error(&f->out, env->task_id, env->slot, env->seq, "ValueError",
                                  "asked to fail", "fail", "fuzz_fake.c:1", f->pid);
    else
        prc = ppx__env_pack_result(&f->out, env->task_id, env->slot, env->seq,
                                   env->payload.data, env->payload.len);
    if (prc)
        abort();
    reply(f, slot, env->seq);
}

/* handle_frame and handle_arena of worker.c. */
static void handle_frame(harness *h, fake *f, const void *frame, size_t len)
{
    ppx__env env;
    int rc = ppx__env_decode(frame, len, &env);
    if (!env.head_ok || env.slot - f->first >= f->nslots) {
        leave(h, f, PPX__EXIT_PROTOCOL, true);
        return;
    }
    ppx__slot *slot;
    if (claim(h, f, env.task_id, env.slot, env.seq, &slot))
        run(f, &env, rc, slot);
}

static void handle_arena(harness *h, fake *f, const void *rec, size_t len)
{
    ppx__shared *sh = h->l->sh;
    ppx__arena_rec r;
    if (len != sizeof r || !sh->arena_bytes) {
        leave(h, f, PPX__EXIT_PROTOCOL, true);
        return;
    }
    memcpy(&r, rec, sizeof r);
    if (r.off > sh->arena_bytes || r.len > sh->arena_bytes - r.off ||
        r.slot - f->first >= f->nslots) {
        leave(h, f, PPX__EXIT_PROTOCOL, true);
        return;
    }
    ppx__slot *slot;
    if (!claim(h, f, r.task_id, r.slot, r.seq, &slot))
        return;
    ppx__env env;
    int rc = ppx__env_decode((char *)sh + sh->arena_off + r.off, r.len, &env);
    if (!env.head_ok || env.task_id != r.task_id)
        rc = PPX_EMALFORMED;
    env.task_id = r.task_id;
    env.slot = r.slot;
    env.seq = r.seq;
    run(f, &env, rc, slot);
}

/* One record of the request ring, as the loop of ppx__worker_main. */
static bool take_request(harness *h, fake *f)
{
    const void *rec;
    size_t len;
    uint32_t flags;
    int rc = ppx__ring_peek(&f->req, &rec, &len, &flags);
    if (rc == 0) {
        if (atomic_load(&h->l->sh->shutdown))
            leave(h, f, PPX__EXIT_SHUTDOWN, true);
        return false;
    }
    if (rc < 0) {
        leave(h, f, PPX__EXIT_PROTOCOL, true);
        return true;
    }
    if (flags == PPX__REC_ARENA) {
        handle_arena(h, f, rec, len);
    } else {
        const void *frame;
        size_t flen;
        rc = ppx__rx_feed(&f->rx, rec, len, flags, &frame, &flen);
        if (rc < 0) {
            leave(h, f, PPX__EXIT_PROTOCOL, true);
            return true;
        }
        if (rc == 1) {
            handle_frame(h, f, frame, flen);
            if (flags != PPX__REC_WHOLE)
                ppx__rx_done(&f->rx);
        }
    }
    if (!f->alive)
        return true; /* it left: it releases nothing more */
    ppx__ring_release(&f->req, len);
    if (ppx__ring_notify_space(&f->req))
        ppx__eventfd_signal(h->p->efd);
    return true;
}

bool fake_serve(harness *h, int i, bool finish_later, bool rogue)
{
    fake *f = &h->w[i];
    if (!f->alive || f->killed)
        return false;
    f->rogue = rogue;
    if (f->out_pending)
        return flush(h, f);
    if (rogue && f->out.size) { /* the last reply, once more */
        f->out_pending = true;
        f->out_off = 0;
        f->finish_slot = NULL;
        return flush(h, f);
    }
    if (!take_request(h, f))
        return false;
    if (f->alive && f->out_pending && !finish_later)
        flush(h, f);
    return true;
}
