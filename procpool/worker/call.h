/* The worker's view of one call (struct behind the public ppx_call). */
#ifndef PPX_PROCPOOL_CALL_H
#define PPX_PROCPOOL_CALL_H
#include "ppx.h"
#include "procpool/wire/shared.h"
#include <msgpack.h>

struct ppx_call {
    uint64_t task_id;
    char function[256];
    ppx_value args; /* the args array */
    uint32_t argc;
    /* Position of argument next_i, so reading arguments in order is O(1). */
    uint32_t next_i;
    const uint8_t *next_p;
    const ppx__slot *slot;
    /* The pool's call arena, mapped read-only, where shared buffers
     * (ppx_buffer) lie; NULL outside a process pool's worker. */
    const unsigned char *arena;
    uint64_t arena_bytes;
    msgpack_sbuffer *ret; /* the result value, when has_ret: heap or fixed */
    msgpack_sbuffer *heap; /* the worker's reusable buffer */
    msgpack_sbuffer fixed; /* memory lent by ppx__call_lend, never grown */
    bool has_ret;
    bool raised;
    /* ppx_call_progress: the slot's progress seq this side last wrote
     * (from the slot at init, so a batch's items go on counting), and
     * whether writing it is forbidden (a forked copy of the worker). */
    bool no_progress;
    uint32_t progress_seq;
    /* Told after each progress store, when set (the worker: a throttled
     * wake-up of the parent; the thread executor polls instead). */
    void (*progress_wake)(void *ctx);
    void *progress_ctx;
    char type[256];
    char where[256];
    char *message; /* heap, when raised */
};

/* Prepares call for one invocation; ret is the worker's reusable buffer.
 * PPX_EMALFORMED if args is not an array. */
int ppx__call_init(ppx_call *call, uint64_t task_id, const char *fn, size_t fn_len,
                   ppx_value args, const ppx__slot *slot, msgpack_sbuffer *ret);
void ppx__call_destroy(ppx_call *call);
/* Lets the result be written straight into buf[0..cap) (the worker's
 * outbox). A result that outgrows it moves to the heap buffer, so
 * call->ret == &call->fixed afterwards says where the value is. */
void ppx__call_lend(ppx_call *call, void *buf, size_t cap);
/* Moves whatever the lent memory holds to the heap buffer and stops using
 * the lent memory (in a forked copy of the worker, which must not write
 * the outbox). */
void ppx__call_unlend(ppx_call *call);

#endif
