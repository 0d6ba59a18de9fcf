/*
 * A worker process's own state (worker.c runs calls, reply.c sends what
 * comes back), private to procpool/worker/.
 */
#ifndef PPX_PROCPOOL_WORKER_WCTX_H
#define PPX_PROCPOOL_WORKER_WCTX_H
#include "call.h"
#include "worker.h"
#include "procpool/registry.h"
#include "serialize/envelope.h"

#include <msgpack.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

/* Polls this many times before sleeping: a call that follows within tens
 * of microseconds is picked up without a futex round trip. */
#define IDLE_SPIN 2000
/* A worker blocked on the parent (a full response ring, a busy outbox)
 * looks at its parent this often. An idle worker sleeps without a
 * timeout (see wait_for_calls in worker.c). */
#define ORPHAN_CHECK_MS 1000
/* The least time between two wake-ups for progress, and how many reports
 * pass between two clock reads (see progress_wake). */
#define PROGRESS_WAKE_NS (20 * 1000000LL)
#define PROGRESS_CLOCK_EVERY 16

typedef struct wctx {
    ppx__shared *sh;
    uint32_t index;
    int efd;
    pid_t parent;
    long pid;
    ppx__wshared *ws; /* this worker's block */
    /* Layout read once at start (the header is read-only here, but the
     * loop should not depend on that): this worker's slots are the global
     * slots first_slot .. first_slot + nslots - 1. */
    ppx__slot *slots;
    uint32_t first_slot, nslots;
    const _Atomic uint32_t *live; /* read-only: see ppx__shared_live */
    /* The eventfd could not be written: a function closed (or replaced)
     * the descriptor. The worker leaves after its reply (see serve). */
    bool wake_lost;
    uint64_t max_payload;
    uint64_t max_tasks, max_rss, calls;
    /* max_rss_bytes reads /proc/self/statm through this descriptor,
     * opened at start (a sandbox forbids opening it later); -1: none. */
    int statm_fd;
    /* cpu_limit_s: retire between calls past this process CPU time
     * (sandbox.h), 0: never. */
    int64_t cpu_retire_ns;
    size_t memory_limit; /* the pool's memory_limit_bytes, for MemoryError */
    bool served; /* a record has come in: the idle spin is worth it */
    ppx__port req, resp;
    const unsigned char *arena; /* read-only here; NULL when there is none */
    uint64_t arena_bytes;
    unsigned char *outbox;      /* NULL when there is none */
    uint64_t outbox_bytes;
    /* The parent's count of OUTBOX replies copied out (read-only here),
     * and ours of those sent: the outbox is free when they are equal. */
    const _Atomic uint32_t *outbox_copied;
    uint32_t outbox_sends;
    /* Time spent in functions: this process's running sum, published in
     * its worker block after each call (see ppx__wshared.busy_ns). */
    _Atomic uint64_t *busy_ns;
    uint64_t busy;
    int64_t call_t0; /* when the running call's function started, or 0 */
    /* ppx_call_progress wakes the parent at most once per
     * PROGRESS_WAKE_NS (and only when it asked, see parent_waiting); the
     * parent's sweep reads what comes between. */
    int64_t progress_wake_at;
    unsigned progress_skip; /* reports left before the clock is read again */
    size_t head_len;  /* a result frame's header, fixed-width */
    msgpack_sbuffer out; /* the reply frame */
    msgpack_sbuffer ret; /* the function's result value */
} wctx;

/* reply.c: exits on purpose with status, saying so in the block first
 * (the parent believes a status only with its note, ppx__exit_note). */
_Noreturn void ppx__wleave(const wctx *w, uint32_t status);
/* Signals the pool's eventfd if the parent asked for it. */
void ppx__wwake_parent(wctx *w);
/* ppx_call_progress's hook: a coalesced wake-up (see reply.c). */
void ppx__wprogress_wake(void *ctx);
/* Leaves when the parent is gone. */
void ppx__wcheck_parent(const wctx *w);
/* Whether the outbox is free (copied: the parent's count read). */
bool ppx__woutbox_free(wctx *w, uint32_t *copied);
/* Hands the parent the len-byte frame at the start of the outbox. */
void ppx__wpublish_outbox(wctx *w, size_t len);
/* A reply frame, through the outbox when big, else ring chunks; waits
 * for room. An error reply for env's call. */
void ppx__wsend_frame(wctx *w, const void *frame, size_t len);
void ppx__wsend_error(wctx *w, const ppx__env *env, const char *type, const char *message,
                      const char *function, const char *where);

#endif
