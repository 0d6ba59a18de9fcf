/*
 * The harness of fuzz_shared.c: a pool's parent, in this process, served
 * by fake workers (fuzz_fake.c) that live in this process too and play
 * the worker's side of the protocol on the real shared mapping, and a fake
 * zygote on the pool's own socket. Nothing forks, so one input runs in
 * well under a millisecond and replays the same way every time.
 *
 * The pool is made and freed by the core (ppx__pool_open, ppx_pool_free)
 * with the local backend's ops table (backend.h), but for start and stop:
 * the harness's own start sets up the local state as local.c's does and
 * hands the zygote's socket to the fake zygote instead of forking one;
 * its stop ends the fake workers instead of real ones.
 */
#ifndef PPX_FUZZ_SHARED_H
#define PPX_FUZZ_SHARED_H
#include "procpool/local/local.h"

#include <msgpack.h>
#include <stdbool.h>
#include <stdint.h>

/* Above PID_MAX_LIMIT (4194304): no process can have these pids, so the
 * kill() the parent sends a fake worker reaches nobody (see kill()). */
#define FAKE_PID_BASE 5000000
#define FAKE_MAX_WORKERS 2

typedef struct fake {
    bool alive;
    bool killed;   /* the parent sent SIGKILL: report the death */
    pid_t pid;
    uint32_t index, first, nslots;
    ppx__port req, resp;
    ppx__rx rx;
    /* A reply not yet (fully) in the response ring: a real worker blocks
     * until it fits, a fake one resumes on its next step. */
    msgpack_sbuffer out;
    size_t out_off;
    bool out_pending, out_in_outbox;
    uint32_t outbox_sends; /* as worker.c: free when the parent's count equals it */
    bool rogue; /* this step: replays its last reply, runs calls moved away */
    ppx__slot *finish_slot; /* FINISHED still to be written before the reply */
    uint64_t finish_word;
} fake;

typedef struct harness {
    ppx_pool *p;
    ppx__local *l; /* p's local backend state (p->be) */
    int zsock; /* the fake zygote's end of the pool's socket */
    fake w[FAKE_MAX_WORKERS];
    pid_t next_pid;
    unsigned spawn_fails; /* answer this many spawn requests with a failure */
} harness;

extern harness fuzz_h;

/* The fake zygote: answers every spawn request the parent sent. Aborts if
 * the parent asks for a worker whose region still has a live one. */
void fake_zygote_step(harness *h);
/* One step of worker i: resume its pending reply, else take one request
 * record. finish_later leaves a claimed call RUNNING until the next step.
 * A rogue step sends its last reply again (or, with none, runs a call
 * that was moved to another worker as if it were still its own): what
 * a worker that breaks the protocol without scribbling does. Returns true
 * if it did anything. */
bool fake_serve(harness *h, int i, bool finish_later, bool rogue);
/* Worker i ends: kind 0 a crash (SIGSEGV), else an exit status with or
 * without the note that makes it deliberate. The status, or -1 for a
 * crash or when it was not alive. */
int fake_die(harness *h, int i, int kind);
/* Reports the deaths of workers the parent killed. */
void fake_reap_killed(harness *h);
void fake_destroy(fake *f);

#endif
