/*
 * The envelopes that travel through the rings, as msgpack arrays that all
 * start with the same four fields:
 *
 *   call    [0, task_id, slot, seq, function, args]
 *   result  [1, task_id, slot, seq, value]
 *   error   [2, task_id, slot, seq, type, message, function, where, pid]
 *           or with a tenth field, node, when raised on
 *           another node of an MPI pool
 *   skip    [3, task_id, slot, seq]   (a cancelled call was dropped unrun)
 *   map     [4, task_id, slot, seq, function, [args, args, ...]]
 *           one frame, one function run once per args array; the result
 *           is the array of their results (a batch)
 *
 * task_id is packed as uint64 and slot/seq as uint32 in their fixed-width
 * forms, so the header has a fixed layout: the parent re-stamps seq in
 * place when it moves a call to another worker, and a reader can recover
 * the task id even when the rest of the frame is garbage.
 */
#ifndef PPX_SERIALIZE_ENVELOPE_H
#define PPX_SERIALIZE_ENVELOPE_H
#include "ppx.h"
#include <msgpack.h>

enum {
    PPX__ENV_CALL = 0,
    PPX__ENV_RESULT = 1,
    PPX__ENV_ERROR = 2,
    PPX__ENV_SKIP = 3,
    PPX__ENV_MAP = 4,
};

/* Longest function name and error type; messages are cut to this too. */
#define PPX__NAME_MAX 255
#define PPX__MESSAGE_MAX 4096

/* What an envelope adds to the bytes it carries, at most. The pool's
 * max_payload limits the user's bytes (a call's argument array, a
 * result's value), so every buffer and check that holds a whole frame
 * adds these. The header is fixarray, fixint kind, uint64 task id and
 * two uint32 (slot, seq); a name of 32..255 bytes takes a str8 header,
 * a message of 256..4096 bytes a str16 one, the pid an int64. */
#define PPX__ENV_HEAD_LEN 21
#define PPX__ENV_CALL_OVERHEAD (PPX__ENV_HEAD_LEN + 2 + PPX__NAME_MAX)
#define PPX__ENV_RESULT_OVERHEAD PPX__ENV_HEAD_LEN
/* The longest error frame: type, function, where and node at
 * PPX__NAME_MAX, the message at PPX__MESSAGE_MAX. It carries no user
 * payload, so it must fit whatever max_payload is. */
#define PPX__ENV_ERROR_MAX \
    (PPX__ENV_HEAD_LEN + 4 * (2 + PPX__NAME_MAX) + 3 + PPX__MESSAGE_MAX + 9)

typedef struct ppx__str {
    const char *p;
    uint32_t len;
} ppx__str;

typedef struct ppx__env {
    int kind;
    bool head_ok; /* task_id, slot and seq are valid (even if rc != 0) */
    uint64_t task_id;
    uint32_t slot;
    uint32_t seq;
    ppx__str function;  /* call, error */
    ppx_value payload;  /* call: the args array; result: the value */
    ppx__str type, message, where; /* error */
    int64_t pid;        /* error */
    ppx__str node;      /* error: "" unless raised on another node */
} ppx__env;

/* Strict decode of one frame; all pointers point into buf. 0 or
 * PPX_EMALFORMED (then head_ok says whether the header was readable). */
int ppx__env_decode(const void *buf, size_t len, ppx__env *out);

/* A call frame (kind PPX__ENV_CALL) or a map frame (PPX__ENV_MAP) with
 * slot and seq 0, which placement stamps (ppx__env_restamp), written
 * straight into dst, which holds ppx__env_call_len(fn_len, args_len)
 * bytes: the bytes ppx__env_pack_call and ppx__env_pack_map write. fn_len
 * is 1..PPX__NAME_MAX; args is one whole msgpack object, checked by the
 * caller. Returns the frame's length, ppx__env_call_len's. */
size_t ppx__env_call_len(size_t fn_len, size_t args_len);
size_t ppx__env_put_call(void *dst, int kind, uint64_t task_id, const char *fn, size_t fn_len,
                         const void *args, size_t args_len);
int ppx__env_pack_call(msgpack_sbuffer *sb, uint64_t task_id, uint32_t slot,
                       uint32_t seq, const char *fn, size_t fn_len,
                       const void *args, size_t args_len);
/* A map frame: items is an array of argument arrays. */
int ppx__env_pack_map(msgpack_sbuffer *sb, uint64_t task_id, const char *fn, size_t fn_len,
                      const void *items, size_t items_len);
int ppx__env_pack_result(msgpack_sbuffer *sb, uint64_t task_id, uint32_t slot,
                         uint32_t seq, const void *value, size_t len);
int ppx__env_pack_error(msgpack_sbuffer *sb, uint64_t task_id, uint32_t slot,
                        uint32_t seq, const char *type, const char *message,
                        const char *function, const char *where, int64_t pid);
/* An error raised on another node: node names it ("" or NULL: none). */
int ppx__env_pack_error_at(msgpack_sbuffer *sb, uint64_t task_id, uint32_t slot, uint32_t seq,
                           const char *type, const char *message, const char *function,
                           const char *where, int64_t pid, const char *node);
int ppx__env_pack_skip(msgpack_sbuffer *sb, uint64_t task_id, uint32_t slot,
                       uint32_t seq);
/* The head of a result frame, [1, task_id, slot, seq, ...]: the caller
 * appends exactly one value after it. */
int ppx__env_pack_result_head(msgpack_sbuffer *sb, uint64_t task_id, uint32_t slot,
                              uint32_t seq);
/* Several frames sent back to back (as over MPI): the length of the
 * first one, which must be a whole msgpack array. 0 or PPX_EMALFORMED. */
int ppx__env_next(const void *buf, size_t len, size_t *frame_len);
/* Rewrites slot and seq of a packed frame in place. */
void ppx__env_restamp(void *frame, uint32_t slot, uint32_t seq);

#endif
