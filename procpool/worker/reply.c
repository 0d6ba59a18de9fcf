/*
 * How a worker's replies reach the parent: ring records (waiting for
 * room), big frames through its outbox once the parent copied the last
 * one out, error frames, the eventfd wake-up only when the parent asked,
 * and leaving on purpose with a note the parent believes.
 */
#include "wctx.h"
#include "procpool/util/clock.h"
#include "procpool/wire/frame.h"
#include "shm/wake.h"

#include <errno.h>
#include <string.h>
#include <unistd.h>

int ppx__shared_wake_parent(ppx__wshared *ws, int efd)
{
    atomic_thread_fence(memory_order_seq_cst);
    if (atomic_load_explicit(&ws->parent_waiting, memory_order_relaxed) &&
        atomic_exchange_explicit(&ws->parent_waiting, 0, memory_order_relaxed))
        return ppx__eventfd_signal(efd);
    return 0;
}

/* Exits on purpose with status, saying so in the block first: the parent
 * believes a status only together with its note (see ppx__exit_note). */
_Noreturn void ppx__wleave(const wctx *w, uint32_t status)
{
    atomic_store_explicit(&w->ws->exit_note, ppx__exit_note(status), memory_order_relaxed);
    _exit((int)status);
}

void ppx__wwake_parent(wctx *w)
{
    if (ppx__shared_wake_parent(w->ws, w->efd) < 0)
        w->wake_lost = true;
}

/* After a progress store: now and then a clock read (a clock read costs
 * more than the stores on some machines), and at most every 20 ms the
 * parent's eventfd, if it is waiting. The latest values win; the parent
 * reads what the wake-ups ppx__wleave out on its next look (a reply, or its
 * sweep every 20 ms while calls are out), so the wake-up only makes it
 * sooner. */
void ppx__wprogress_wake(void *ctx)
{
    wctx *w = ctx;
    if (w->progress_skip) {
        w->progress_skip--;
        return;
    }
    w->progress_skip = PROGRESS_CLOCK_EVERY - 1;
    int64_t now = ppx__now_ns();
    if (now < w->progress_wake_at)
        return;
    w->progress_wake_at = now + PROGRESS_WAKE_NS;
    ppx__wwake_parent(w);
}

void ppx__wcheck_parent(const wctx *w)
{
    if (getppid() != w->parent)
        ppx__wleave(w, PPX__EXIT_ORPHAN);
}

/* One small record of the given kind, waiting for room. */
static void send_record(wctx *w, const void *rec, size_t len, uint32_t flags)
{
    void *dst;
    while (!(dst = ppx__ring_reserve(&w->resp, len))) {
        ppx__wwake_parent(w);
        if (ppx__ring_wait_space(&w->resp, len, IDLE_SPIN, ORPHAN_CHECK_MS) == -ETIMEDOUT)
            ppx__wcheck_parent(w);
    }
    memcpy(dst, rec, len);
    ppx__ring_commit(&w->resp, len, flags);
    ppx__wwake_parent(w);
}

/* The outbox is ours once the parent has copied the previous reply out
 * (it does so as soon as it sees it). */
bool ppx__woutbox_free(wctx *w, uint32_t *copied)
{
    *copied = atomic_load_explicit(w->outbox_copied, memory_order_acquire);
    return *copied == w->outbox_sends;
}

static void wait_outbox(wctx *w)
{
    uint32_t copied;
    for (unsigned i = 0; !ppx__woutbox_free(w, &copied); i++) {
        if (i < IDLE_SPIN)
            ppx__spin_step(i);
        /* FUTEX_WAIT only reads the word: a read-only page will do. */
        else if (ppx__futex_wait((_Atomic uint32_t *)w->outbox_copied, copied, ORPHAN_CHECK_MS) ==
                 -ETIMEDOUT)
            ppx__wcheck_parent(w);
    }
}

/* Hands the parent the len-byte frame at the start of the outbox. */
void ppx__wpublish_outbox(wctx *w, size_t len)
{
    w->outbox_sends++;
    ppx__outbox_rec r = {len};
    send_record(w, &r, sizeof r, PPX__REC_OUTBOX); /* publishes the bytes */
}

static void send_outbox(wctx *w, const void *frame, size_t len)
{
    wait_outbox(w);
    memcpy(w->outbox, frame, len);
    ppx__wpublish_outbox(w, len);
}

void ppx__wsend_frame(wctx *w, const void *frame, size_t len)
{
    if (w->outbox && len >= ppx__big_frame(w->resp.cap) && len <= w->outbox_bytes) {
        send_outbox(w, frame, len);
        return;
    }
    size_t off = 0;
    while (!ppx__frame_put(&w->resp, frame, len, &off)) {
        ppx__wwake_parent(w);
        size_t need = ppx__frame_next_need(&w->resp, len, off);
        if (ppx__ring_wait_space(&w->resp, need, IDLE_SPIN, ORPHAN_CHECK_MS) == -ETIMEDOUT)
            ppx__wcheck_parent(w);
    }
    ppx__wwake_parent(w);
}

void ppx__wsend_error(wctx *w, const ppx__env *env, const char *type,
                       const char *message, const char *function, const char *where)
{
    if (ppx__env_pack_error(&w->out, env->task_id, env->slot, env->seq, type,
                            message, function, where, w->pid))
        ppx__wleave(w, PPX__EXIT_NOMEM);
    ppx__wsend_frame(w, w->out.data, w->out.size);
}

