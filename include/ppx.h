/*
 * ppx: a process-pool executor with shared-memory futures for CPU-bound
 * work, driven from a libuv event loop.
 *
 * Conventions used by every function in this header:
 *  - Errors, one rule: a function that returns int returns 0 (or, where
 *    its doc says so, a non-negative count or descriptor) on success and
 *    one of the PPX_E* codes below on failure. A negated errno appears
 *    only where a function's doc names it: ppx_pool_new (a descriptor,
 *    the shared mapping or the trace file the kernel refuses), and the
 *    loop functions that hand back libuv's code when libuv refuses a
 *    handle (ppx_wrap_future and those built on it, ppx_awaitable_create;
 *    libuv's UV_E* codes are negated errno values on Linux). Functions
 *    of other types say what they give for an invalid argument.
 *    ppx_strerror() and ppx_err_name() turn any of these into text.
 *  - A function that hands an object back does so through an OUT parameter
 *    and leaves it untouched on failure. On failure the caller keeps
 *    everything it passed. OUT parameters come last, except before a
 *    format's variadic arguments, which must end the list: ppx_pack and
 *    ppx_vpack (out, out_len, fmt, ...), ppx_pool_submitf and
 *    ppx_run_in_executorf (..., out, fn, fmt, ...). A callback's user
 *    pointer is its last parameter.
 *  - Structs the caller allocates can grow: ppx_pool_options,
 *    ppx_call_options, ppx_pool_stats and ppx_worker_stats start with
 *    `size`, the sizeof the struct the caller was compiled with. Make
 *    them with their macros, which set it: PPX_POOL_OPTIONS(.workers = 2)
 *    is a compound literal, PPX_POOL_STATS_INIT an initializer for a
 *    declaration. The library reads and writes only the caller's `size`
 *    bytes, so a later 0.x adds fields at the end and keeps the soname
 *    (libppx.so.0.4 since 0.4.0). A size below the 0.4.0 layout (0: the
 *    struct was zeroed by hand) or above 4096 (garbage: it was never
 *    set) is PPX_EINVAL, and so is a struct bigger
 *    than this library knows with a nonzero byte it does not know (a
 *    newer header's field this version cannot honour); ppx_last_error()
 *    says which. ppx_error is only ever allocated by the library (read it
 *    through the pointers it lends, keep one with ppx_error_copy), so it
 *    grows without a size; ppx_value is a fixed view that never changes.
 *  - Destructors (_free, _unref) accept NULL and cannot fail.
 *  - Using a handle after its last unref, or a pool after ppx_pool_free,
 *    is undefined behaviour (as with libuv's handles and SQLite's
 *    statements): its memory may be gone. PPX_EBADOBJ answers only a
 *    handle that can be told safely: NULL, or a live object of another
 *    kind (a pool passed as a future, ppx_thread_pool() to a pool call).
 *  - Timeouts follow one rule, "Timeouts" below.
 *
 * Timeouts. Every function that waits (ppx_future_wait,
 * ppx_pool_shutdown, ppx_wait, ppx_wait_for, ppx_as_completed_next)
 * takes timeout_ms in milliseconds: any negative value waits forever (-1
 * is the usual spelling, -5 means the same), 0 polls (looks once and
 * never blocks), a positive value waits at most that long. A deadline is
 * not a wait: ppx_call_options.timeout_ms and the pool's task_timeout_ms
 * stop the call itself, and there 0 means "the default" (see them).
 */
#ifndef PPX_H
#define PPX_H

#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* ------------------------------------------------------------------ */
/* Version                                                             */

#define PPX_VERSION_MAJOR 0
#define PPX_VERSION_MINOR 4
#define PPX_VERSION_PATCH 0

/* The version of the linked library, "MAJOR.MINOR.PATCH": a static
 * string. Any thread. */
const char *ppx_version(void);

/* ------------------------------------------------------------------ */
/* Errors                                                              */

/*
 * ppx's own codes live in a block around -29000 so they cannot collide
 * with negated errno values (> -4096) nor with libuv's UV_E* codes. New
 * codes are appended: a code's value never changes.
 */
#define PPX_ERRNO_MAP(XX)                                                     \
    XX(EINVAL, "invalid argument")                                            \
    XX(ENOMEM, "out of memory")                                               \
    XX(ECLOSED, "the pool is closed")                                         \
    XX(EFROZEN, "functions can no longer be registered: a pool has started") \
    XX(EEXIST, "a function with that name is already registered")             \
    XX(EPENDING, "the future is not resolved yet")                            \
    XX(EDONE, "the future is already resolved")                               \
    XX(ETIMEDOUT, "timed out")                                                \
    XX(ECANCELED, "the future was cancelled")                                 \
    XX(ETASK, "the task failed: see the future's error")                      \
    XX(ETYPE, "the value has another type")                                   \
    XX(ERANGE, "the value does not fit the requested type")                   \
    XX(EINDEX, "index out of range")                                          \
    XX(EMALFORMED, "malformed msgpack data")                                  \
    XX(ETOOBIG, "payload exceeds the pool's size limit")                      \
    XX(ESPAWN, "a worker process could not be started")                       \
    XX(EBADOBJ, "the handle is NULL or not an object of this kind")           \
    XX(ENOWORK, "the loop has nothing left to run")                           \
    XX(EINIT, "a worker's initializer failed: see ppx_last_error()")         \
    XX(EBACKEND, "the pool's backend is unavailable: see ppx_last_error()")   \
    XX(EFORKED, "the pool belongs to another process (this is a fork of its creator)") \
    XX(ENOTSUP, "the pool's backend cannot do this")

typedef enum ppx_errno {
    PPX__ERRNO_FIRST = -29000,
#define PPX__ERR_ENUM(code, msg) PPX_##code,
    PPX_ERRNO_MAP(PPX__ERR_ENUM)
#undef PPX__ERR_ENUM
    PPX__ERRNO_LAST
} ppx_errno;

/* A readable message for any code ppx returns (ppx codes and -errno);
 * "success" for 0, "unknown error" for a code it does not know. Never
 * NULL; the string is static. Any thread. */
const char *ppx_strerror(int code);
/* The symbolic name, e.g. "PPX_ETIMEDOUT" or "ENOMEM"; "OK" for 0,
 * "EUNKNOWN" for a code it does not know. Never NULL, static. Any thread. */
const char *ppx_err_name(int code);
/* Details of a failure, when there are more than its code says. Left by
 * ppx_pool_new (a failed initializer's message, PPX_EINIT; a worker that
 * exited while starting, PPX_ESPAWN, when it waits for them; a trace file
 * it could not create),
 * by the loop functions that refuse an awaitable of another loop
 * (PPX_EINVAL, naming the function and the child's index) and by
 * ppx_run_in_executor_ex refusing a deadline. Read it right after the failed call: the text is this
 * thread's own and the next such failure on this thread replaces it. ""
 * until a call on this thread has left details. Never NULL. */
const char *ppx_last_error(void);

/* ------------------------------------------------------------------ */
/* Opaque types                                                        */

typedef struct ppx_pool ppx_pool;           /* pool of forked workers */
typedef struct ppx_future ppx_future;       /* result of one call */
typedef struct ppx_call ppx_call;           /* a call, seen by the worker */
typedef struct ppx_awaitable ppx_awaitable; /* loop-side future (loop/) */

/* A task's state. A future ends in exactly one of the last three. */
typedef enum ppx_state {
    PPX_PENDING = 0, /* submitted, not started by a worker */
    PPX_RUNNING,     /* a worker has started it */
    PPX_DONE,        /* resolved with a value */
    PPX_FAILED,      /* resolved with an error */
    PPX_CANCELLED    /* resolved by cancellation */
} ppx_state;

/* The state's name: "PENDING", "RUNNING", "DONE", "FAILED",
 * "CANCELLED"; "UNKNOWN" for any other value. Static. Any thread. */
const char *ppx_state_name(ppx_state s);

/*
 * What a failed (or cancelled) future or awaitable carries. All strings
 * are owned by it, NUL-terminated, never NULL, and live as long as it does.
 *
 * type is the error class. Those ppx produces itself:
 *   "NameError"      the function name is not registered in the worker
 *   "WorkerCrashed"  the worker died running the task (signal or exit
 *                    status in message)
 *   "ProtocolError"  a frame could not be decoded (message says why)
 *   "CancelledError" the future was cancelled
 *   "RuntimeError"   the function failed without raising an error
 *   "ResultTooLarge" the result exceeded the pool's payload limit
 *   "TimeoutError"   the task's deadline passed (it was stopped)
 *   "InitializerError" no worker could start: the initializer fails
 *   "NodeLost"       (MPI pools) the node holding the task went silent
 *   "SandboxViolation" the function made a system call the pool's sandbox
 *                    forbids (message names it; see ppx_pool_options)
 *   "MemoryError"    no memory for the result, or the function returned
 *                    PPX_ENOMEM (names memory_limit_bytes when one is set)
 *   "CpuLimitExceeded" the call reached the pool's cpu_limit_s
 * Every other type is the one a worker function passed to ppx_raise().
 */
typedef struct ppx_error {
    const char *type;
    const char *message;
    const char *function; /* function the task called */
    const char *where;    /* "file.c:42" where raised, or "" */
    long pid;             /* worker pid, 0 when no worker was involved */
    uint64_t task_id;
    /* The MPI node that raised it, "host rank N"; "" for a local pool.
     * An error built by the caller may leave it NULL. */
    const char *node;
} ppx_error;

/* A copy of e that lives on its own, past the last unref of the future
 * or awaitable it came from: one allocation holds the struct and its
 * strings (a NULL string stays NULL); free it with ppx_error_free. 0,
 * PPX_EINVAL (e or out NULL), PPX_ENOMEM. Any thread. */
int ppx_error_copy(const ppx_error *e, ppx_error **out);
/* Frees a copy made by ppx_error_copy (NULL: nothing); never an error a
 * future or awaitable lends. */
void ppx_error_free(ppx_error *e);

/* ------------------------------------------------------------------ */
/* Values: a borrowed view of one msgpack object                      */

typedef enum ppx_type {
    PPX_TYPE_INVALID = 0,
    PPX_TYPE_NIL,
    PPX_TYPE_BOOL,
    PPX_TYPE_INT, /* any integer; read with ppx_value_int or _uint */
    PPX_TYPE_FLOAT,
    PPX_TYPE_STR,
    PPX_TYPE_BIN,
    PPX_TYPE_ARRAY,
    PPX_TYPE_MAP,
    PPX_TYPE_EXT
} ppx_type;

/* data points at exactly one encoded msgpack object of len bytes. The
 * view borrows the memory of whatever produced it (a future, an awaitable,
 * a call) and is valid as long as that is (a call's: until the worker
 * function returns). The functions that read values are pure: any thread. */
typedef struct ppx_value {
    const void *data;
    size_t len;
} ppx_value;

/* The type of v's first object, from its header alone; PPX_TYPE_INVALID
 * when v.data is NULL or the header is truncated or invalid. */
ppx_type ppx_value_type(ppx_value v);
/* Each getter reads v's first object into *out and returns 0,
 * PPX_EINVAL (v.data or an OUT pointer is NULL), PPX_ETYPE when v holds
 * another type, PPX_ERANGE when the integer does not fit (_int, _uint: a
 * negative one for _uint), PPX_EMALFORMED on bad encoding. */
int ppx_value_int(ppx_value v, int64_t *out);
int ppx_value_uint(ppx_value v, uint64_t *out);
int ppx_value_double(ppx_value v, double *out); /* also accepts integers */
int ppx_value_bool(ppx_value v, bool *out);
/* The string is not NUL-terminated (and may hold NULs); *out points into
 * v's memory. */
int ppx_value_str(ppx_value v, const char **out, size_t *len);
int ppx_value_bin(ppx_value v, const void **out, size_t *len);
/* Number of elements of an array (PPX_ETYPE if v is not one). */
int ppx_value_array_len(ppx_value v, size_t *n);
/* Element i of an array, a view into v's memory; PPX_EINDEX when i is
 * past the end, PPX_ETYPE if v is not an array. */
int ppx_value_at(ppx_value v, size_t i, ppx_value *out);
/* Writes a Python-like rendering ("[1, 2]", "'s'", "None") into buf,
 * cut to n - 1 bytes and always NUL-terminated when n > 0. Returns the
 * length the full text needs (like snprintf), or PPX_EINVAL (v.data NULL,
 * or buf NULL with n > 0), PPX_EMALFORMED (v is not exactly one
 * well-formed object), PPX_ERANGE (nested deeper than 64, or a text over
 * INT32_MAX bytes); buf then holds what was written so far. */
int ppx_value_format(ppx_value v, char *buf, size_t n);

/* ------------------------------------------------------------------ */
/* Worker functions                                                    */

/*
 * A worker function runs in a worker process (or, through
 * ppx_run_in_thread, on one of libuv's threads in this process: then it
 * must be thread-safe). It reads its arguments from call, sets its result
 * with one ppx_return_*() and returns 0, or returns ppx_raise(call, type,
 * fmt, ...) to fail with an error. Returning nonzero without raising fails
 * the task with a "RuntimeError". Returning 0 without setting a result
 * returns nil. call, and everything read from it, is valid only until the
 * function returns; udata is the pointer given to ppx_register.
 */
typedef int (*ppx_fn)(ppx_call *call, void *udata);

/* Registers fn under name (copied) in this process's registry; udata
 * (borrowed, for the life of the process: workers inherit it by fork) is
 * passed to every call of fn. Must run before the first pool is created
 * so forked workers share the table: the first ppx_pool_new freezes the
 * registry for good, even if it then fails to start its workers. Any
 * thread, but not while another thread is in ppx_run_in_thread (its
 * lookup takes no lock). Errors: PPX_EINVAL (name or fn NULL, name
 * empty or longer than 255 bytes), PPX_EEXIST, PPX_EFROZEN (a pool was
 * already created), PPX_ENOMEM. */
int ppx_register(const char *name, ppx_fn fn, void *udata);

/*
 * The functions from here to ppx_raise_at serve a worker function: call
 * them on the thread that runs it, with the call it was given, before it
 * returns. Given a NULL call they return 0, "", false or PPX_EINVAL.
 */

/* The number of arguments of the call. */
size_t ppx_call_argc(const ppx_call *call);
/* Argument i as a value view, valid until the function returns.
 * PPX_EINDEX if absent, PPX_EINVAL (out NULL), PPX_EMALFORMED. */
int ppx_call_arg(const ppx_call *call, size_t i, ppx_value *out);
/* Shortcuts: argument i converted as by the ppx_value getters, with their
 * codes and ppx_call_arg's. Strings and bytes point into the call's
 * arguments (not NUL-terminated), valid until the function returns. */
int ppx_call_arg_int(const ppx_call *call, size_t i, int64_t *out);
int ppx_call_arg_uint(const ppx_call *call, size_t i, uint64_t *out);
int ppx_call_arg_double(const ppx_call *call, size_t i, double *out);
int ppx_call_arg_str(const ppx_call *call, size_t i, const char **s, size_t *len);
int ppx_call_arg_bin(const ppx_call *call, size_t i, const void **p, size_t *len);
/* Argument i, a shared buffer (ppx_buffer, packed with 'M'): its bytes,
 * read in place in the pool's shared memory (read-only here; no copy was
 * made), valid until the function returns. PPX_ETYPE (not a buffer),
 * PPX_ENOTSUP (the thread executor: no shared memory), PPX_ERANGE (the
 * reference lies outside the pool's memory), and ppx_call_arg's codes. */
int ppx_call_arg_buffer(const ppx_call *call, size_t i, const void **data, size_t *len);
/* The name the call was made with, owned by the call. */
const char *ppx_call_function(const ppx_call *call);
/* The task's id, the one ppx_future_id gives in the parent; 0 on the
 * thread executor. */
uint64_t ppx_call_task_id(const ppx_call *call);
/* True once the parent asked this task to stop (cancel, a deadline, or a
 * gather, map or task group that failed). Costs one atomic load: check it
 * in long loops and return. */
bool ppx_call_cancelled(const ppx_call *call);
/*
 * Reports the call's progress: done steps of total (0: total unknown).
 * The latest values win: cheap enough for a tight loop (four stores in
 * the call's slot, a clock read every 16th time; the parent is woken at
 * most every 20 ms and reads the values at the latest on its next sweep,
 * 20 ms later).
 * They reach ppx_future_progress and the future's progress callbacks
 * (ppx_future_on_progress), and the progress callback of an awaitable
 * wrapping the call (ppx_awaitable_on_progress); on the thread executor
 * the awaitable's callback (looked at every 20 ms and once at the end).
 * What a worker reports is not trusted: the parent hands on done clamped
 * to total (when total is not 0), nothing else. A batch's items
 * (ppx_pool_map) report for the batch. Not carried across MPI yet: an
 * MPI pool's futures report no progress. 0, or PPX_EINVAL (call NULL).
 */
int ppx_call_progress(ppx_call *call, uint64_t done, uint64_t total);

/* Set the call's result: the last one set wins, and a ppx_raise() wins
 * over any. Strings and bytes are copied. 0, PPX_EINVAL (s or p NULL with
 * len > 0), PPX_ETOOBIG (len over 4 GiB - 1, which msgpack cannot
 * count), PPX_ENOMEM; after a failure an earlier result may be gone: set
 * one again or raise. A result whose msgpack value is bigger than the
 * pool's max_payload fails the task with "ResultTooLarge" once the
 * function returns; one of exactly max_payload bytes arrives. */
int ppx_return_nil(ppx_call *call);
int ppx_return_bool(ppx_call *call, bool b);
int ppx_return_int(ppx_call *call, int64_t i);
int ppx_return_uint(ppx_call *call, uint64_t u);
int ppx_return_double(ppx_call *call, double d);
int ppx_return_str(ppx_call *call, const char *s, size_t len);
int ppx_return_bin(ppx_call *call, const void *p, size_t len);
/* One msgpack object, already encoded (copied); PPX_EINVAL if msgpack is
 * NULL, PPX_EMALFORMED if it is not exactly one well-formed object. */
int ppx_return_raw(ppx_call *call, const void *msgpack, size_t len);
/* The result is argument i, a shared buffer, by reference: nothing is
 * copied; the caller gets the buffer back with ppx_future_buffer.
 * PPX_ETYPE (argument i is not a buffer), ppx_call_arg's codes. */
int ppx_return_buffer(ppx_call *call, size_t i);
/* Like ppx_pack(): one format letter returns that value, several (or
 * none) return an array of them. PPX_EINVAL (fmt NULL, or as ppx_pack),
 * PPX_ETOOBIG (as ppx_pack), PPX_ENOMEM. */
int ppx_returnf(ppx_call *call, const char *fmt, ...);

/* Fails the call with an error of class type (NULL or "": "Error") and a
 * printf-style message (fmt NULL: ""). The task fails even if the function
 * then returns 0; the last raise wins. type and where are cut to 255
 * bytes, and in a worker the message to 4096. Returns PPX_ETASK so that
 * `return ppx_raise(...)` ends the function. */
#define ppx_raise(call, type, ...) \
    ppx_raise_at((call), __FILE__ ":" PPX__STR(__LINE__), (type), __VA_ARGS__)
#define PPX__STR(x) PPX__STR2(x)
#define PPX__STR2(x) #x
int ppx_raise_at(ppx_call *call, const char *where, const char *type,
                 const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 4, 5)))
#endif
    ;

/* ------------------------------------------------------------------ */
/* Packing arguments                                                   */

/*
 * Format letters for ppx_pack(), ppx_pool_submitf() and ppx_returnf():
 *   'i' int          'l' long long       'u' unsigned    'U' unsigned long long
 *   'd' double       'b' bool (int)      'n' nil (no argument)
 *   's' const char * (NUL-terminated; NULL packs nil)
 *   'S' const char *, size_t   (string with length)
 *   'B' const void *, size_t   (binary)
 *   'M' ppx_buffer *           (a shared buffer, by reference: 18 bytes
 *                               however big the buffer; see ppx_buffer)
 * Spaces in fmt are ignored. ppx_pack() packs an array with one element
 * per letter into a heap buffer (*out, *out_len bytes) the caller frees
 * with free(). Returns 0, PPX_EINVAL (out, out_len or fmt NULL, an
 * unknown letter, 'S' or 'B' with a NULL pointer and a nonzero length,
 * 'M' with no live buffer),
 * PPX_ETOOBIG (a string or bytes over 4 GiB - 1: msgpack counts their
 * length in 32 bits), PPX_ENOMEM. ppx_vpack() consumes ap. Any thread.
 */
int ppx_pack(void **out, size_t *out_len, const char *fmt, ...);
int ppx_vpack(void **out, size_t *out_len, const char *fmt, va_list ap);

/* ------------------------------------------------------------------ */
/* Pool                                                                */

/* Made with PPX_POOL_OPTIONS(...) (see "Structs the caller allocates"
 * at the top); a field left out, or NULL for the whole struct, means its
 * default. */
typedef struct ppx_pool_options {
    size_t size;               /* sizeof(ppx_pool_options); the macros set it */
    int workers;               /* 0: number of online CPUs */
    size_t ring_bytes;         /* per ring, rounded up to a power of two;
                                  0: 1 MiB, minimum 4 KiB */
    /* Largest call or result, counting the caller's bytes only: a call's
     * packed argument array (args_len; a batch's items, len, as a whole)
     * and a result's msgpack value (a batch's array of results). Exactly
     * max_payload bytes pass; the envelope around them is the pool's
     * business. 0: 256 MiB */
    size_t max_payload;
    /* A cancelled running call (or one whose deadline passed) gets this
     * long to notice before its worker is killed and replaced. 0: 100 ms.
     * Negative: such a call is never killed; it runs to its end, its
     * result discarded. ppx_pool_free is not a cancellation: the pool
     * must end, so there every worker still running a call gets
     * cancel_grace_ms, or 100 ms when it is negative, before SIGKILL. */
    int cancel_grace_ms;
    unsigned max_queued_per_worker; /* calls placed in one worker's ring
                                       ahead of it; 0: 64 */
    /* Runs once in each worker before its first call. Return 0, or write
     * a message into err (NUL-terminated, errlen bytes) and return nonzero:
     * for the first workers ppx_pool_new then fails with PPX_EINIT. */
    int (*initializer)(char *err, size_t errlen, void *arg);
    void *initializer_arg;
    unsigned max_tasks_per_child; /* replace a worker after this many
                                     calls; 0: never */
    size_t max_rss_bytes;         /* replace a worker whose resident size
                                     exceeds this after a call; 0: never
                                     (a hard cap during the call:
                                     memory_limit_bytes, below) */
    int task_timeout_ms;          /* default deadline of each call; 0: none
                                     (CPU time: cpu_limit_s, below) */
    /* Low-latency mode: while results are due, a loop watching the pool
     * polls for them up to this long before sleeping in epoll (costs CPU
     * on the loop thread, saves the wake-up). 0: off. */
    int parent_spin_us;
    /* Shared memory for big calls (frames of ring_bytes / 4 and more):
     * they are written there once and read in place by the worker, which
     * maps the arena read-only, and each worker has an outbox (see
     * outbox_bytes) for its big replies. Pages are touched only when used
     * and stay mapped while the pool lives, so repeated big calls reuse
     * warm memory. A call that finds the arena full travels in ring
     * chunks instead. 0: room for two calls of max_payload bytes with
     * their envelopes; PPX_ARENA_NONE: no arena and no outboxes, big
     * frames always travel in ring chunks (no shared memory kept beyond
     * the rings). Under valgrind, each new worker's mprotect of the
     * arena takes time in proportion to its size (0.66 s for the default
     * 528 MiB with valgrind 3.19), and big outboxes slow every worker
     * too: there, pass a few MiB here and in outbox_bytes. */
    size_t arena_bytes;
    /* Writes a trace of every call (submission; start, end and outcome
     * on the worker that ran it) to this file as Chrome Trace Event
     * Format JSON, one track per worker, for ui.perfetto.dev or
     * chrome://tracing (see docs/TRACING.md). "%p" in the name becomes
     * the process id, "%n" the number of the trace in this process. The
     * file is complete once ppx_pool_free returns. Read only during
     * ppx_pool_new, which fails with the kernel's -errno (e.g. -ENOENT,
     * -EACCES) if the file cannot be created (ppx_last_error() names
     * it). NULL: the file named by the
     * PPX_TRACE environment variable, if set; else no trace, at no cost. */
    const char *trace_path;
    /* Where the workers are (see "MPI" in README.md):
     * PPX_BACKEND_AUTO (0): the MPI backend when this process was started
     *   by mpirun with more than one rank (PPX_BACKEND=local|mpi in the
     *   environment overrides), else local workers.
     * PPX_BACKEND_LOCAL: forked workers on this machine.
     * PPX_BACKEND_MPI: rank 0 gets a pool whose workers are the other
     *   ranks' local pools (each built from these same options).
     * On a rank other than 0, ppx_pool_new with the MPI backend does not
     * return: the rank serves rank 0's calls until rank 0 exits, then
     * exits itself (status 0). One MPI pool may be open at a time; its
     * trace_path is ignored. Fails with PPX_EBACKEND when ppx was built
     * without MPI, or MPI cannot start (ppx_last_error() says why). */
    int backend;
    /* What becomes of processes a function starts and leaves running.
     * false (the default): a worker's descendants go with it. Each worker
     * leads its own process group, killed as soon as the worker ends
     * (crash, recycle, replacement, ppx_pool_free), and the fork server
     * is their subreaper: whatever is orphaned below a worker (a
     * double-forked or setsid() daemon included) is adopted by it and
     * killed, at the latest when the next worker or descendant ends or
     * the pool is freed. Not covered: a process that escapes through
     * another subreaper or a new PID namespace; and when the creating
     * process itself dies, workers die but their descendants may
     * outlive them. Workers being in their own process groups, a worker
     * reading the terminal is stopped by SIGTTIN (it gets EIO if the
     * application ignores SIGTTIN), and a Ctrl-Z does not stop workers.
     * true: descendants are left alone (reparented to init once their
     * parent ends) and workers stay in the application's process group,
     * as before 0.2.0. */
    bool keep_descendants;
    /* Each worker's outbox, in the shared mapping: a reply frame (the
     * result and its envelope) of ring_bytes / 4 up to this size is
     * built there and read in place by the parent; a bigger one travels
     * in ring chunks. Pages are touched only when used. 0, or more than
     * max_payload with its envelope: max_payload with its envelope.
     * With arena_bytes PPX_ARENA_NONE there are no outboxes. */
    size_t outbox_bytes;
    /* ---- 0.5.0: sandbox, limits and scheduling (docs/SECURITY.md) ----
     * All of these are applied in each worker process and each is off at
     * 0. A value out of range is PPX_EINVAL, and ppx_last_error() names
     * the field. They apply to the local backend's workers only (an MPI
     * pool refuses them: PPX_ENOTSUP), and the thread executor
     * (ppx_thread_pool()) has no pool options: its functions run in the
     * application, never sandboxed.
     *
     * sandbox: a seccomp-bpf filter (with PR_SET_NO_NEW_PRIVS) that each
     * worker installs after its initializer ran (the initializer may still
     * open files, load a model, connect) and before its first call.
     *   PPX_SANDBOX_NONE (0): no filter.
     *   PPX_SANDBOX_COMPUTE: the worker can compute and talk to ppx:
     *     memory management (mmap, munmap, mprotect, madvise, brk,
     *     mremap), futex, time and sleep, read/write/poll on the
     *     descriptors it holds (no filtering by descriptor), signals to
     *     itself, threads (on x86-64 and arm64), exit. No open, socket,
     *     connect, execve, fork or clone of a process, ptrace, kill of
     *     another process, mount, setrlimit, and every other system call
     *     not listed in docs/SECURITY.md.
     *   PPX_SANDBOX_READ_FILES: COMPUTE plus open/openat for reading only
     *     (flags with O_WRONLY, O_RDWR, O_CREAT, O_TRUNC or O_TMPFILE are
     *     forbidden), stat, lseek, getdents64, readlink, access.
     * A function that makes a forbidden system call fails with error type
     * "SandboxViolation", its message naming the system call, the
     * function, the worker's pid and the task; that worker exits and is
     * replaced, other calls are untouched. ppx_pool_new fails with
     * PPX_ENOTSUP when ppx was built without libseccomp or the kernel has
     * no seccomp filters, with PPX_EINIT when a worker could not install
     * the filter (ppx_last_error() says why in both cases). A sandboxed
     * pool waits for its workers' verdict in ppx_pool_new, as one with an
     * initializer does. No core dumps under a sandbox (see no_core_dumps).
     * sandbox_allow: NULL, or a NULL-terminated list of further system
     * call names the profile allows (e.g. {"socket", "connect", NULL}),
     * read during ppx_pool_new only; a name this machine does not know
     * is PPX_EINVAL. Without sandbox it is PPX_EINVAL too. */
    int sandbox;
    const char *const *sandbox_allow;
    /* Resource limits (setrlimit in each worker, after its initializer).
     * Beside them: max_rss_bytes recycles a worker between calls, after
     * the fact; task_timeout_ms and cancel_grace_ms bound wall time.
     * memory_limit_bytes: RLIMIT_AS set to the worker's address space
     * after its initializer plus this many bytes, so ppx's shared mapping
     * (rings, arena, outboxes: mapped in every worker, reserved, not
     * resident) and what the initializer loaded do not count against it.
     * An allocation beyond it fails (malloc returns NULL, mmap ENOMEM)
     * instead of the OOM killer choosing a process; a function that
     * returns PPX_ENOMEM then fails with "MemoryError" naming the limit,
     * and a worker that dies of it names it too. It caps address space,
     * not resident memory: thread stacks and mappings count whole. */
    size_t memory_limit_bytes;
    /* cpu_limit_s: seconds of CPU time (RLIMIT_CPU). A call that runs
     * longer than this on the CPU fails with "CpuLimitExceeded" naming
     * the limit; its worker is replaced. The count is the process's, so a
     * worker that has used half of it retires between calls (a fresh one
     * takes its place): a call is stopped after between cpu_limit_s / 2
     * and cpu_limit_s + 1 seconds of CPU. Time asleep does not count
     * (task_timeout_ms does). */
    unsigned cpu_limit_s;
    /* max_open_files: RLIMIT_NOFILE set to the worker's highest
     * descriptor after its initializer, plus one, plus this many: the
     * function may open this many more (its open fails with EMFILE
     * beyond). 0: unchanged. */
    unsigned max_open_files;
    /* no_core_dumps: RLIMIT_CORE 0 in each worker (a crashing function
     * leaves no core file). Always so under a sandbox. */
    bool no_core_dumps;
    /* Scheduling, applied when each worker starts (before the
     * initializer). nice: 0 unchanged, 1 to 19 added to the worker's nice
     * value (lower priority; an increase only, which needs no privilege).
     * sched_policy: PPX_SCHED_INHERIT (0), PPX_SCHED_OTHER,
     * PPX_SCHED_BATCH or PPX_SCHED_IDLE (sched_setscheduler).
     * cpus: NULL, or ncpus CPU numbers the workers may run on
     * (sched_setaffinity), read during ppx_pool_new only; a number below
     * 0 or beyond the machine's CPUs is PPX_EINVAL. */
    int nice;
    int sched_policy;
    const int *cpus;
    int ncpus;
} ppx_pool_options;
/* A ppx_pool_options with its size set and the given fields, e.g.
 * ppx_pool_new(&PPX_POOL_OPTIONS(.workers = 2), &pool). */
#define PPX_POOL_OPTIONS(...) \
    ((ppx_pool_options){.size = sizeof(ppx_pool_options), __VA_ARGS__})
/* For a declaration: ppx_pool_options o = PPX_POOL_OPTIONS_INIT; */
#define PPX_POOL_OPTIONS_INIT {.size = sizeof(ppx_pool_options)}
#define PPX_ARENA_NONE ((size_t)-1)
enum { PPX_BACKEND_AUTO = 0, PPX_BACKEND_LOCAL = 1, PPX_BACKEND_MPI = 2 };
enum { PPX_SANDBOX_NONE = 0, PPX_SANDBOX_COMPUTE = 1, PPX_SANDBOX_READ_FILES = 2 };
enum { PPX_SCHED_INHERIT = 0, PPX_SCHED_OTHER = 1, PPX_SCHED_BATCH = 2, PPX_SCHED_IDLE = 3 };

/*
 * A pool belongs to the process that made it. In a fork of that process
 * (a server forking a helper, a test runner), the inherited copy refuses
 * every call that would use the pool with PPX_EFORKED: submissions and
 * batches, ppx_pool_process, _shutdown, _fd, _workers, _worker_stats,
 * _stats_get, and on its unresolved futures ppx_future_wait, _cancel and
 * _add_done_callback (ppx_pool_busy gives false, ppx_pool_worker_pid 0,
 * ppx_future_state PENDING; what resolved
 * before the fork stays readable). ppx_pool_free of the copy, and the
 * last unref of its futures, release that process's memory only: the
 * copy's unresolved futures resolve CANCELLED there, while the creator's
 * calls, workers and fork server go on untouched. The fork server and the
 * workers end with the creator, whatever forks of it live on. A fork is
 * recognised through pthread_atfork: one that bypasses libc
 * (syscall(SYS_fork), clone) is not.
 */

/* Forks the workers (through a fork server it starts) and returns the
 * pool in *out, the caller's to free with ppx_pool_free. opts (NULL: all
 * defaults) is copied.
 * Returns once the fork server is forked and asked for every worker:
 * calls submitted at once wait in the workers' rings and run as each
 * worker starts, and the workers report as the pool is driven
 * (ppx_pool_process, a wait, a loop), ppx_pool_worker_pid saying 0 until
 * then. With an initializer, or a trace file, it blocks until every
 * worker has started (and run the initializer), at most about 10 s, so
 * that a failed initializer fails this call. The fork server is a copy
 * of the process as it is here, and every worker a copy of it: made
 * while the process is small (pools created first thing in main), they
 * start in the same time whatever the process grows to later. Freezes
 * the function registry, even if it then fails. Any thread. Errors:
 * PPX_EINVAL (out NULL; opts->size wrong, see the top; workers < 0 or
 * > 1024, ring_bytes over 1 GiB, max_payload or arena_bytes over 1 TiB,
 * max_queued_per_worker over 4096; a sandbox, limit or scheduling field
 * out of range), PPX_ENOMEM, PPX_ESPAWN (the fork
 * server could not start; with an initializer, a sandbox or a trace file,
 * a worker could not either), PPX_EINIT (an initializer failed, or a
 * worker could not apply the sandbox, limits or scheduling), PPX_ENOTSUP
 * (a sandbox without libseccomp or the kernel's seccomp filters; any of
 * those fields with the MPI backend), PPX_EBACKEND (the MPI
 * backend was asked for or mpirun started this process, and MPI is
 * missing, cannot start, or an MPI pool is already open); PPX_ENOMEM also
 * when the kernel has no memory for the shared mapping or a descriptor.
 * Another negated errno from the kernel when a descriptor (epoll,
 * eventfd, timerfd: e.g. -EMFILE), the shared mapping or the trace file
 * (options.trace_path) cannot be made. On failure no process is left
 * behind and ppx_last_error() says more where it can. Under mpirun, on a
 * rank other than 0, it does not return (see options.backend). */
int ppx_pool_new(const ppx_pool_options *opts, ppx_pool **out);

/*
 * Closes the pool for good: from now on submissions fail with
 * PPX_ECLOSED. With PPX_SHUTDOWN_WAIT it then blocks, driving the pool,
 * until every submitted task has resolved or timeout_ms passes
 * (PPX_ETIMEDOUT; the tasks keep running). With PPX_SHUTDOWN_CANCEL it
 * cancels every unresolved task first (as ppx_future_cancel: their
 * callbacks run on this thread) and returns once all are resolved. With
 * PPX_SHUTDOWN_CANCEL_QUEUED (Python's shutdown(wait=True,
 * cancel_futures=True)) it cancels only the tasks no worker has started
 * (in the pool's queue, or placed in a worker's ring and not claimed
 * yet: they resolve CANCELLED, their callbacks on this thread), lets the
 * running ones finish normally, and then waits as PPX_SHUTDOWN_WAIT
 * does; the workers stay as they are. On an MPI pool a task already
 * sent to a node counts as started (rank 0 is not told when a node's
 * worker takes it) and runs to its end. It does not free the pool.
 * Returns 0, PPX_ETIMEDOUT, PPX_EINVAL (how), PPX_EBADOBJ, PPX_EFORKED
 * (a fork's copy). Call it from the thread that drives the pool.
 */
enum { PPX_SHUTDOWN_WAIT = 0, PPX_SHUTDOWN_CANCEL = 1, PPX_SHUTDOWN_CANCEL_QUEUED = 2 };
int ppx_pool_shutdown(ppx_pool *pool, int how, int timeout_ms);

/*
 * Ends the workers, like Python's ProcessPoolExecutor.terminate_workers
 * (SIGTERM) and kill_workers (SIGKILL): the pool closes (submissions
 * fail with PPX_ECLOSED), the tasks no worker has started resolve
 * CANCELLED (as with PPX_SHUTDOWN_CANCEL_QUEUED; their callbacks run on
 * this thread), every worker gets the signal, and no worker is started
 * again. It does not wait: a running task fails with "WorkerCrashed",
 * whose message names the signal ("killed by signal 15 (SIGTERM)"), once
 * the pool sees its worker's death (ppx_future_wait, ppx_futures_wait,
 * ppx_pool_process, ppx_pool_shutdown with PPX_SHUTDOWN_WAIT). A worker
 * function that catches or ignores SIGTERM may finish its task instead;
 * ppx_pool_kill_workers cannot be caught. Processes a function started
 * go with their worker unless options.keep_descendants. The pool must
 * still be freed with ppx_pool_free. Returns 0, PPX_EBADOBJ, PPX_EFORKED,
 * PPX_ENOTSUP for an MPI pool (its workers are the nodes' own: nothing is
 * changed; ppx_pool_shutdown with PPX_SHUTDOWN_CANCEL stops its tasks).
 * Any thread.
 */
int ppx_pool_terminate_workers(ppx_pool *pool);
int ppx_pool_kill_workers(ppx_pool *pool);

/* Cancels whatever is unresolved (their callbacks run on this thread),
 * stops and reaps every worker, releases all memory and descriptors. It
 * blocks while workers exit: a running call gets cancel_grace_ms (100 ms
 * if negative: the pool must end, see the option) before its worker is
 * killed. Futures stay valid (resolved)
 * until their last unref, and never touch the pool again. Threads blocked
 * in ppx_future_wait or ppx_pool_shutdown return (their futures resolve
 * CANCELLED); a thread still inside a call on one of its futures keeps
 * the pool's memory until it leaves. It may be called from any callback,
 * an awaitable's on the loop thread included; other threads must not
 * start new calls on the pool once it has begun (calls on its futures
 * are fine). A pool behind awaitables (on one loop or several, each run
 * by its own thread) may be freed on any thread; it never waits for a
 * loop. A loop on the freeing thread closes its handles now, each other
 * loop on its own thread the next time it runs its callbacks: keep such
 * a loop running (with work or a handle of its own) until its ppx handles
 * have closed, and run a loop after the free so that they finish closing
 * before uv_loop_close. The pool's descriptors and memory go once the
 * last loop has closed its handles. An application that closed ppx's
 * handles itself first (uv_walk closing every handle, uv_loop_close)
 * broke this rule: the free then leaves those handles alone, says so on
 * stderr and in ppx_last_error(), and keeps the loop's small binding
 * (libuv may still read a closing handle). The pool handle is dead on return:
 * using it after is undefined behaviour (a callback run by this very free
 * may still use it: submissions there fail with PPX_ECLOSED). In a fork of the pool's
 * creator it frees that process's copy only, without blocking (see
 * above); a copy taken while another thread held the pool's lock may be
 * half updated and is left allocated. */
void ppx_pool_free(ppx_pool *pool);

/*
 * Submits fn(args...) and returns its future in *out (one reference, the
 * caller's: drop it with ppx_future_unref). args is a msgpack array (see
 * ppx_pack), copied; NULL with args_len 0 means no arguments. Submission
 * is eager: the call is in a worker's ring or the pool's queue on return.
 * A name that is not registered still gives a future, already FAILED with
 * a "NameError" naming it, as a worker would report it.
 * Thread-safe; it takes the pool's lock but never waits for a worker.
 * Errors: PPX_EBADOBJ (NULL or not a pool, ppx_thread_pool() included),
 * PPX_EFORKED (a fork's copy of the pool), PPX_EINVAL (fn or out NULL, fn empty or longer than 255 bytes, args NULL
 * with args_len > 0), PPX_ECLOSED, PPX_ETOOBIG (args_len over the pool's
 * max_payload), PPX_EMALFORMED (args not one msgpack array), PPX_ENOMEM.
 */
int ppx_pool_submit(ppx_pool *pool, const char *fn, const void *args,
                    size_t args_len, ppx_future **out);
/* Same, packing the arguments from fmt (see ppx_pack; its errors too). */
int ppx_pool_submitf(ppx_pool *pool, ppx_future **out, const char *fn,
                     const char *fmt, ...);

/*
 * A batch: fn once per element of items, a msgpack array of argument
 * arrays, all shipped in one frame and run back to back by one worker. The
 * future's value is the array of the results, in order; the first call
 * that fails fails the whole batch (its message names the item). The
 * cheap way to run many small calls; see ppx_run_in_executor_map to spread
 * a large batch over every worker. items is copied (NULL with len 0: an
 * empty batch); opts as for ppx_pool_submit_ex, one deadline for the whole
 * batch. max_payload applies to the batch as a whole: items up to
 * max_payload bytes in all, and the array of results as one result
 * (bigger fails the batch with "ResultTooLarge"). Errors as
 * ppx_pool_submit (PPX_ETOOBIG: len over max_payload); also
 * PPX_EMALFORMED if an element is not an array.
 */
typedef struct ppx_call_options ppx_call_options;
int ppx_pool_map(ppx_pool *pool, const char *fn, const void *items, size_t len,
                 const ppx_call_options *opts, ppx_future **out);

/* Per-call options, made with PPX_CALL_OPTIONS(...); a field left out,
 * or NULL for the whole struct, means the pool's default. */
typedef struct ppx_call_options {
    size_t size; /* sizeof(ppx_call_options); the macros set it */
    /* Deadline from submission: when it passes, the future fails with a
     * "TimeoutError" and the call is stopped like a cancelled one (never
     * started, or flag, grace, kill). 0: the pool's task_timeout_ms;
     * negative: none. Waiting with a timeout never cancels anything. */
    int timeout_ms;
} ppx_call_options;
#define PPX_CALL_OPTIONS(...) \
    ((ppx_call_options){.size = sizeof(ppx_call_options), __VA_ARGS__})
#define PPX_CALL_OPTIONS_INIT {.size = sizeof(ppx_call_options)}
/* ppx_pool_submit with per-call options, read during the call only (NULL:
 * the pool's defaults). Same errors, and PPX_EINVAL for a wrong
 * opts->size (see the top). */
int ppx_pool_submit_ex(ppx_pool *pool, const char *fn, const void *args,
                       size_t args_len, const ppx_call_options *opts,
                       ppx_future **out);

/*
 * The pool's readiness descriptor (or PPX_EBADOBJ, PPX_EFORKED): readable when
 * ppx_pool_process() has something to do. Watch it with poll/epoll/uv_poll;
 * do not read or close it. The pool owns it: it is closed by
 * ppx_pool_free, so stop watching it before. Any thread.
 */
int ppx_pool_fd(const ppx_pool *pool);
/* Does pending work without blocking: collects results, notices dead
 * workers, fires timers, dispatches queued calls, and runs the done
 * callbacks of the futures it resolved, on the calling thread, outside the
 * pool's lock. If it stops with work left (it bounds each call), the fd
 * stays readable. Any thread, several at once. Returns the number of
 * futures it resolved, or PPX_EBADOBJ, PPX_EFORKED. */
int ppx_pool_process(ppx_pool *pool);
/* True while any task is unresolved, a cancelled task still runs, or a
 * worker is starting or being replaced; false for an invalid pool.
 * Thread-safe. */
bool ppx_pool_busy(const ppx_pool *pool);
/* The number of workers (the resolved options.workers; for an MPI pool,
 * the workers of every node not lost), or PPX_EBADOBJ, PPX_EFORKED. */
int ppx_pool_workers(const ppx_pool *pool);
/* Pid of worker i (0 <= i < workers), 0 if it is starting (until the
 * fork server's report of it is read: ppx_pool_new without an initializer
 * returns before; any processing of the pool reads it, and so does the
 * one that reads a reply of worker i) or being respawned, i is out of
 * range, the pool is invalid, or the pool's workers are on MPI nodes.
 * Thread-safe. */
long ppx_pool_worker_pid(const ppx_pool *pool, int i);

/* Pool counters, for tests and observability. Declare with
 * PPX_POOL_STATS_INIT, which sets size. */
typedef struct ppx_pool_stats {
    size_t size; /* sizeof(ppx_pool_stats); PPX_POOL_STATS_INIT sets it */
    uint64_t submitted, completed, failed, cancelled;
    /* Calls lost with the process or node running them: a worker that
     * died or broke the protocol during the call ("WorkerCrashed",
     * "ProtocolError"), and under MPI a lost node ("NodeLost"). Calls
     * the pool stopped itself (cancel, deadline) are not counted. */
    uint64_t crashed;
    /* Worker processes that ended without the pool asking them to (a
     * crash, an _exit, a kill from outside), whether or not a call was
     * lost. 0 for an MPI pool: each node replaces its own workers. */
    uint64_t worker_deaths;
    uint64_t respawns, killed, stolen;
    uint64_t timed_out, recycled, init_failures;
    uint64_t crash_streak; /* crashes since the last call that returned */
    uint64_t queued;  /* in the pool's own queue, not yet in a ring */
    uint64_t running; /* unresolved tasks in rings or running */
    uint64_t arena_used; /* bytes of the call arena held by calls now */
    uint64_t arena_calls; /* calls whose frame went through the arena */
    uint64_t outbox_replies; /* replies that came through an outbox */
} ppx_pool_stats;
#define PPX_POOL_STATS_INIT {.size = sizeof(ppx_pool_stats)}
/* Fills *out with a snapshot of the pool's counters. Thread-safe (takes
 * the pool's lock; no system call). Returns 0, PPX_EBADOBJ (pool is NULL
 * or not a pool), PPX_EINVAL (out is NULL, or out->size wrong: see the
 * top), PPX_EFORKED (a fork's copy).
 * *out is untouched on failure. */
int ppx_pool_stats_get(ppx_pool *pool, ppx_pool_stats *out);

/*
 * One worker's counters. Worker i is a slot the pool keeps filled: when
 * its process dies or retires, a new process takes the slot and the
 * counters carry on (restarts says how often that happened).
 */
typedef struct ppx_worker_stats {
    size_t size;          /* sizeof(ppx_worker_stats); _INIT sets it */
    long pid;             /* the slot's process, 0 while it is started
                             or replaced (see ppx_pool_worker_pid) */
    bool alive;           /* a process runs in the slot, and its start
                             has been reported */
    uint64_t completed;   /* calls that returned a value here; over all
                             workers this sums to ppx_pool_stats.completed */
    uint64_t failed;      /* calls that failed here: an error raised (or
                             returned) by the function, a malformed reply */
    uint64_t crashed;     /* calls lost when a process of this slot died */
    uint64_t restarts;    /* processes started to replace an ended one */
    /* Time spent inside worker functions: CLOCK_MONOTONIC read by the
     * worker before and after each call (each batch of ppx_pool_map),
     * plus, for a call that killed its worker, the time from its start
     * until the pool noticed the death. A call still running is not
     * counted until it returns. Wall-clock time, not CPU time. */
    uint64_t busy_ns;
    /* Calls placed with this worker and not finished with: in its
     * request ring, or running (a cancelled call still running too). */
    uint64_t queued;
    /* Bytes in the worker's rings as the parent sees them: calls it has
     * not released yet (the running call's record included) and replies
     * the parent has not collected. At most ring_bytes each. */
    uint64_t request_ring_bytes, response_ring_bytes;
    uint64_t ring_bytes;  /* capacity of each ring */
} ppx_worker_stats;
#define PPX_WORKER_STATS_INIT {.size = sizeof(ppx_worker_stats)}

/* Fills *out with worker i's counters, 0 <= i < ppx_pool_workers(pool).
 * Thread-safe (takes the pool's lock; no system call). Returns 0,
 * PPX_EINVAL (out is NULL, out->size wrong, or i out of range), PPX_EBADOBJ (pool is not a
 * live pool), PPX_EFORKED. *out is untouched on failure. */
int ppx_pool_worker_stats(ppx_pool *pool, int i, ppx_worker_stats *out);

/* ------------------------------------------------------------------ */
/* Shared buffers: big data without copies                            */

/*
 * A buffer in the pool's shared memory (its call arena, see
 * options.arena_bytes): the caller writes its data there once and passes
 * the buffer as an argument by reference (ppx_pack's 'M', 18 bytes
 * whatever its size); the worker reads it in place, read-only
 * (ppx_call_arg_buffer), and may hand it back as its result
 * (ppx_return_buffer), which the caller takes with ppx_future_buffer.
 * Nothing is copied on the way. A call holds a reference on each buffer
 * its arguments name until it ends, and a DONE future on those it may
 * give back, so unreffing a buffer early is safe. Do not write a buffer
 * while a call that reads it runs: the worker sees the bytes as they are
 * (shared memory, no snapshot). Buffers share the arena with big calls
 * (which fall back to ring chunks when it is full) and keep the pool's
 * memory, not its workers, after ppx_pool_free until their last unref.
 * A fork of the creator sees no data (ppx_buffer_data gives NULL) and
 * its unrefs free only its own copy of the handle.
 */
typedef struct ppx_buffer ppx_buffer;
/* A buffer of size bytes (contents undefined), the caller's to unref.
 * Any thread. 0, PPX_EINVAL (out NULL, size 0), PPX_EBADOBJ, PPX_EFORKED,
 * PPX_ENOTSUP (no shared memory: arena_bytes PPX_ARENA_NONE, or an MPI
 * pool), PPX_ENOMEM (no room left in the arena: ppx_last_error() says
 * how big it is). */
int ppx_buffer_new(ppx_pool *pool, size_t size, ppx_buffer **out);
/* Its bytes, writable, 64-byte aligned; NULL for NULL, a freed buffer
 * or in a fork of the creator. */
void *ppx_buffer_data(ppx_buffer *b);
size_t ppx_buffer_size(const ppx_buffer *b); /* 0 for NULL */
/* References, any thread; the last unref gives the memory back. */
void ppx_buffer_ref(ppx_buffer *b);
void ppx_buffer_unref(ppx_buffer *b);

/* ------------------------------------------------------------------ */
/* Process futures (usable without libuv)                             */

/* A done callback: f is valid during the call; arg is the caller's. */
typedef void (*ppx_future_cb)(ppx_future *f, void *arg);

/* Futures are thread-safe: every function below may be called from any
 * thread, also while another thread frees the future's pool. A NULL or
 * wrong-kind handle gives PPX_EBADOBJ, or the value each function names
 * for an invalid handle; a future used after its last unref is undefined
 * behaviour. An unresolved future keeps its pool's memory; a resolved
 * one outlives the pool and never touches it. */

/* Takes another reference; each is dropped by one ppx_future_unref. */
void ppx_future_ref(ppx_future *f);
/* Drops one reference; the last one frees the future, its value and its
 * error. An unresolved future's task keeps running and its result is
 * discarded. */
void ppx_future_unref(ppx_future *f);

/* f's state: PPX_RUNNING once a worker has claimed the call. A NULL or
 * wrong-kind handle also gives PPX_PENDING, which cannot be told from a
 * call not started yet: check ppx_future_valid when f may be invalid. */
ppx_state ppx_future_state(const ppx_future *f);
/* True if f is a future (not NULL, not an object of another kind): what
 * PPX_EBADOBJ stands for in this section. It cannot tell a future used
 * after its last unref (undefined behaviour, see the conventions). */
bool ppx_future_valid(const ppx_future *f);
/* True once f has resolved (DONE, FAILED or CANCELLED); false for an
 * invalid handle. */
bool ppx_future_done(const ppx_future *f);
/* The task's id (never 0; ppx_call_task_id in the worker, task_id in its
 * error and the trace), 0 for an invalid handle. */
uint64_t ppx_future_id(const ppx_future *f);
/* The function's name, owned by f; "" for an invalid handle. */
const char *ppx_future_function(const ppx_future *f);

/* Blocks until f resolves, driving the pool from this thread if no other
 * thread does (the done callbacks of any future it resolves run here).
 * Returns 0 when f is resolved, whatever the outcome (when the pool is
 * freed meanwhile, f is CANCELLED), PPX_ETIMEDOUT (the task keeps
 * running), PPX_EBADOBJ, PPX_EFORKED (f is unresolved in a fork's copy of
 * its pool). Several threads may wait at once. Never call it
 * on a loop thread that watches the pool. */
int ppx_future_wait(ppx_future *f, int timeout_ms);

/* The value of a DONE future, borrowed from f (valid until its last
 * unref). PPX_EPENDING, PPX_ETASK (failed: see ppx_future_error),
 * PPX_ECANCELED, PPX_EINVAL (out NULL), PPX_EBADOBJ. */
int ppx_future_value(const ppx_future *f, ppx_value *out);
/* Shortcut for an integer result: ppx_future_value's codes, then
 * ppx_value_int's. */
int ppx_future_int(const ppx_future *f, int64_t *out);
/* The result of a DONE future as a shared buffer: the one of its call's
 * arguments that the function returned (ppx_return_buffer), referenced
 * for the caller (unref it). ppx_future_value's codes, and PPX_ETYPE when
 * the result is not one of the call's buffers. */
int ppx_future_buffer(ppx_future *f, ppx_buffer **out);
/* The error of a FAILED or CANCELLED future, borrowed (valid until f's
 * last unref); NULL otherwise. */
const ppx_error *ppx_future_error(const ppx_future *f);

/*
 * Cancels f: a task not started yet never runs; a running task has its
 * cancellation flag set and, if still running after the pool's grace
 * period, its worker is killed and respawned. f resolves CANCELLED before
 * this returns and its callbacks run on this thread. Returns 0, PPX_EDONE
 * if f was already resolved, PPX_EBADOBJ, PPX_EFORKED (f is unresolved in
 * a fork's copy of its pool).
 */
int ppx_future_cancel(ppx_future *f);

/* Adds a callback run exactly once when f resolves, on the thread that
 * resolves it (the one calling ppx_pool_process, ppx_future_wait,
 * ppx_future_cancel, ppx_pool_shutdown or ppx_pool_free), outside the
 * pool's lock: it may unref f, submit, even free the pool. If f is
 * already resolved, cb runs before this returns. 0, PPX_EINVAL (cb
 * NULL), PPX_EBADOBJ, PPX_EFORKED (f is unresolved in a fork's copy of
 * its pool) or PPX_ENOMEM (then cb is never called). */
int ppx_future_add_done_callback(ppx_future *f, ppx_future_cb cb, void *arg);
/* Removes every callback added as (cb, arg) that has not been called, as
 * asyncio's remove_done_callback: returns how many (0 once f resolved:
 * its callbacks have run or are running), PPX_EINVAL (cb NULL),
 * PPX_EBADOBJ, PPX_EFORKED (f is unresolved in a fork's copy of its
 * pool). Takes the pool's lock while f is unresolved. */
int ppx_future_remove_done_callback(ppx_future *f, ppx_future_cb cb, void *arg);

/*
 * Waits on n futures at once, like concurrent.futures.wait: blocks until
 * how holds (PPX_FIRST_COMPLETED: one has resolved; PPX_FIRST_EXCEPTION:
 * one has FAILED, or all have resolved; PPX_ALL_COMPLETED: all have
 * resolved; the constants are those of ppx_wait, below) or timeout_ms
 * passes (-1: no timeout; 0: look once). The futures may belong to
 * different pools: this thread drives each pool that no other thread
 * drives (their done callbacks run here), sleeping in one poll(2) over
 * their descriptors, and is woken by futures that other threads resolve;
 * a pool another thread drives is looked at again every 20 ms in case
 * that thread leaves. done, if not NULL, is an array of n flags filled
 * with which futures have resolved (Python's done set; the others are
 * its not_done set). Returns the number of entries of fs resolved on
 * return (a future listed twice counts twice, as its flags do), also
 * after a timeout, which is not an error: check the count or the flags.
 * Errors: PPX_EINVAL (fs NULL with n > 0, unknown how), PPX_EBADOBJ (a
 * NULL or wrong-kind future), PPX_EFORKED (one is unresolved in a fork's
 * copy of its pool), PPX_ENOMEM; done is then untouched. Never on a loop
 * thread that watches one of the pools.
 */
int ppx_futures_wait(ppx_future *const *fs, size_t n, int how, int timeout_ms, bool *done);

/*
 * as_completed for process futures, like concurrent.futures.as_completed:
 * hands back each future of fs once, in the order they resolve (those
 * already resolved first, in the order given); a future listed twice is
 * handed back once. _new takes a reference to each future (dropped by
 * _free) and arms a done callback on each; its errors: PPX_EINVAL (out
 * NULL, fs NULL with n > 0), PPX_EBADOBJ (a NULL or wrong-kind future),
 * PPX_EFORKED, PPX_ENOMEM. _next blocks, driving the pools as
 * ppx_futures_wait does, until one more has resolved, and puts it in *f,
 * borrowed (valid while the iterator lives; ref it to keep it longer).
 * Returns 0, PPX_EDONE once every future was handed back (the end, as
 * for ppx_as_completed_next), PPX_ETIMEDOUT after timeout_ms (-1: none;
 * 0: poll; the iterator stays usable), PPX_EINVAL (it or f NULL),
 * PPX_EFORKED. One thread at a time per iterator, and not from a done
 * callback that its own _next runs. _free may be called at any time
 * (NULL is fine); futures not handed back keep running.
 */
typedef struct ppx_futures_iter ppx_futures_iter;
int ppx_futures_as_completed_new(ppx_future *const *fs, size_t n, ppx_futures_iter **out);
int ppx_futures_as_completed_next(ppx_futures_iter *it, int timeout_ms, ppx_future **f);
void ppx_futures_as_completed_free(ppx_futures_iter *it);

/*
 * Progress of a call that reports it (ppx_call_progress). cb(f, done,
 * total, arg) runs, outside the pool's lock, on a thread that processes
 * the pool (as a done callback does) each time it takes in newer values
 * while f is pending; updates are coalesced: the latest values win, and
 * a callback may see the same pair twice but never an older one after a
 * newer. The values are clamped: done <= total unless total is 0
 * (unknown). The last values a call reported are taken in with its
 * result, before f's done callbacks, and no progress callback runs once
 * they have begun: one running on another thread is waited for, so a
 * progress callback must not block on a thread that may resolve f.
 * Callbacks run in the order added and stay until f resolves. 0,
 * PPX_EINVAL (cb NULL), PPX_EBADOBJ, PPX_EDONE (f has resolved: its
 * last values are in ppx_future_progress), PPX_EFORKED, PPX_ENOMEM.
 */
typedef void (*ppx_progress_future_cb)(ppx_future *f, uint64_t done, uint64_t total,
                                       void *arg);
int ppx_future_on_progress(ppx_future *f, ppx_progress_future_cb cb, void *arg);
/* The latest progress the call reported (clamped as above), for a
 * blocking user: 0, 0 until it reported any; after f resolved, the last
 * values it reported. Never blocks. 0, PPX_EINVAL (done or total NULL),
 * PPX_EBADOBJ. */
int ppx_future_progress(const ppx_future *f, uint64_t *done, uint64_t *total);

/* ------------------------------------------------------------------ */
/* Loop integration (libuv). Call these on the loop's thread.         */

/*
 * Awaitables are not thread-safe: every function of this section, and the
 * callbacks it takes, run on the loop's thread, unless said otherwise. A
 * function that makes an awaitable gives the caller one reference in *out
 * (drop it with ppx_awaitable_unref) and takes its own on the awaitables
 * it is given. A NULL or wrong-kind handle gives PPX_EBADOBJ, or the value
 * each function names for an invalid handle; an awaitable used after its
 * last unref is undefined behaviour.
 */

struct uv_loop_s;
/* A done callback: aw is valid during the call; arg is the caller's. */
typedef void (*ppx_awaitable_cb)(ppx_awaitable *aw, void *arg);

/*
 * Wraps process future f (a reference is taken; the caller keeps its own)
 * in an awaitable whose callbacks run on loop's thread, even when another
 * thread resolves f. Watches the pool's fd with a uv_poll handle on loop;
 * no thread is created. One pool may back awaitables on several loops,
 * each run by its own thread; see ppx_pool_free for freeing it. If f is
 * already resolved, so is the awaitable on return. Errors: PPX_EINVAL
 * (loop or out NULL), PPX_EBADOBJ (f is NULL or not a future),
 * PPX_EFORKED (f is unresolved in a fork's copy of its pool), PPX_ECLOSED
 * (its pool is being freed), PPX_ENOMEM, or libuv's code, a negated
 * errno (UV_E* codes are -errno on Linux), if libuv cannot watch the
 * pool's fd (uv_poll_init) or set up the loop's wake-up (uv_async_init).
 */
int ppx_wrap_future(struct uv_loop_s *loop, ppx_future *f, ppx_awaitable **out);

/*
 * Submits fn(args) to pool (NULL: the default pool, created on first use
 * with default options; ppx_thread_pool(): as ppx_run_in_thread) and wraps
 * it: run_in_executor. Eager: the call is submitted before this returns;
 * args is copied. Errors: PPX_EINVAL (loop or out NULL), those of
 * ppx_pool_new (creating the default pool), ppx_pool_submit, and
 * ppx_wrap_future (the call is then cancelled).
 */
int ppx_run_in_executor(struct uv_loop_s *loop, ppx_pool *pool,
                        const char *fn, const void *args, size_t args_len,
                        ppx_awaitable **out);
/* ppx_run_in_executor with per-call options, as ppx_pool_submit_ex (NULL:
 * the pool's defaults; read during the call only): a deadline stops the
 * call and fails the awaitable with "TimeoutError". On the thread
 * executor a running thread cannot be stopped, so a positive timeout_ms
 * is refused (PPX_EINVAL, ppx_last_error() says why; ppx_wait_for gives
 * up waiting instead); 0 and negative mean none there. Same errors. */
int ppx_run_in_executor_ex(struct uv_loop_s *loop, ppx_pool *pool,
                           const char *fn, const void *args, size_t args_len,
                           const ppx_call_options *opts, ppx_awaitable **out);
/* Same, packing the arguments from fmt (see ppx_pack; its errors too). */
int ppx_run_in_executorf(struct uv_loop_s *loop, ppx_pool *pool,
                         ppx_awaitable **out, const char *fn,
                         const char *fmt, ...);

/*
 * Runs fn once per element of items (a msgpack array of argument arrays)
 * across the pool: items are cut into chunks of chunk_size calls (0: about
 * four chunks per worker), each chunk one frame (see ppx_pool_map). The
 * awaitable's value is the array of all results in order; the first
 * failure fails it and cancels the other chunks. Like executor.map with
 * a chunksize. items is copied; an empty array gives []. pool as for
 * ppx_run_in_executor, but only a process pool (ppx_thread_pool():
 * PPX_EBADOBJ). Errors: PPX_EINVAL (loop, out, fn or items NULL),
 * PPX_EMALFORMED (items not one array of arrays), those of creating the
 * default pool, of ppx_pool_map (PPX_ETOOBIG: a chunk is too big;
 * PPX_EFORKED: a fork's copy of the pool, before anything is sized) and
 * of ppx_wrap_future; on
 * failure the chunks already submitted are cancelled.
 */
int ppx_run_in_executor_map(struct uv_loop_s *loop, ppx_pool *pool, const char *fn,
                            const void *items, size_t len, size_t chunk_size,
                            ppx_awaitable **out);

/* The default pool, or NULL until a call with pool NULL has created it.
 * Borrowed: free it only with ppx_default_pool_free. Any thread; it never
 * waits for a creation under way. Threads whose first calls with pool
 * NULL race all get the one pool: one of them creates it, without holding
 * a lock through the fork, and the others wait for it. */
ppx_pool *ppx_default_pool(void);
/* Frees the default pool, if there is one, as ppx_pool_free does (any
 * thread, loops as said there): call it once no loop needs it any more.
 * A later call with pool NULL makes a new one; a creation under way on
 * another thread is not waited for: its pool becomes the default after.
 * In a fork of the process that made it, calls with pool NULL are refused
 * (PPX_EFORKED) until the fork frees its copy with this; the next such
 * call then makes the fork a pool of its own. */
void ppx_default_pool_free(void);

/*
 * Gathers n awaitables (references taken) into one. It resolves DONE when
 * all are done, with an array of their values in the given order. On the
 * first failure it resolves FAILED with that child's error and cancels
 * every other child, running ones included (a cancelled child fails it
 * too). With PPX_GATHER_RETURN_ERRORS it waits for all and resolves DONE;
 * a failed child's element is nil and ppx_gather_child() shows its error.
 * n == 0 resolves DONE with [] at once. Cancelling the gather cancels
 * every child; once every child has resolved the cancel is refused
 * (PPX_EDONE), even from a child's done callback that runs before the
 * gather's own: its outcome is decided, as asyncio's gather refuses it
 * then. The same awaitable may be listed twice: its value is in
 * both places. Errors: PPX_EINVAL (loop or out NULL, items NULL with
 * n > 0, unknown flags, a child bound to another loop: see
 * ppx_last_error), PPX_EBADOBJ (a NULL or wrong-kind child), PPX_ENOMEM.
 */
enum { PPX_GATHER_RETURN_ERRORS = 1 };
int ppx_gather(struct uv_loop_s *loop, ppx_awaitable *const *items, size_t n,
               int flags, ppx_awaitable **out);
/* The number of children of gather g (of ppx_run_in_executor_map: its
 * chunks); 0 if g is not a gather. */
size_t ppx_gather_count(const ppx_awaitable *g);
/* Child i of gather g, borrowed (valid while g lives); NULL if g is not a
 * gather or i is out of range. */
ppx_awaitable *ppx_gather_child(const ppx_awaitable *g, size_t i);

/* Takes another reference; each is dropped by one ppx_awaitable_unref. */
void ppx_awaitable_ref(ppx_awaitable *aw);
/* Drops one reference; the last one frees aw, its value and its error.
 * It does not cancel: a pending awaitable lives, and its work runs on,
 * until it resolves. */
void ppx_awaitable_unref(ppx_awaitable *aw);
/* aw's state. Only a wrapped process call reports PPX_RUNNING (a worker
 * has started it); other kinds go from PENDING to their outcome. A NULL
 * or wrong-kind handle also gives PPX_PENDING, which cannot be told from
 * a pending awaitable: check ppx_awaitable_valid when aw may be invalid. */
ppx_state ppx_awaitable_state(const ppx_awaitable *aw);
/* True if aw is an awaitable (not NULL, not an object of another kind):
 * what PPX_EBADOBJ stands for in this section. It cannot tell an
 * awaitable used after its last unref (undefined behaviour). */
bool ppx_awaitable_valid(const ppx_awaitable *aw);
/* True once aw has resolved; false for an invalid handle. */
bool ppx_awaitable_done(const ppx_awaitable *aw);
/* The value of a DONE awaitable, borrowed from aw (valid until its last
 * unref): a call's result, a gather's array, the count of ppx_wait,
 * ppx_task_group and ppx_map_lazy, ppx_wait_for's child's value.
 * PPX_EPENDING, PPX_ETASK (see ppx_awaitable_error), PPX_ECANCELED,
 * PPX_EINVAL (out NULL), PPX_EBADOBJ. */
int ppx_awaitable_value(const ppx_awaitable *aw, ppx_value *out);
/* ppx_future_buffer for the call aw wraps (ppx_run_in_executor);
 * PPX_ETYPE for other awaitables. */
int ppx_awaitable_buffer(const ppx_awaitable *aw, ppx_buffer **out);
/* The error of a FAILED or CANCELLED awaitable, borrowed (valid until
 * aw's last unref); NULL otherwise. */
const ppx_error *ppx_awaitable_error(const ppx_awaitable *aw);
/* The wrapped process future (borrowed, valid while aw lives), NULL for
 * any other kind of awaitable. */
ppx_future *ppx_awaitable_future(const ppx_awaitable *aw);
/* Cancels the awaitable and what it runs: a call (process or thread), a
 * gather's children, ppx_wait_for's child, a task group's tasks, a lazy
 * map's calls in flight; ppx_wait leaves its children alone. Its
 * callbacks run before this returns. 0, PPX_EDONE if it already resolved
 * (or, for one of ppx_awaitable_create's, another thread has set its
 * outcome, which resolves it on a coming turn of the loop; for a gather,
 * every child has resolved: see ppx_gather), PPX_EBADOBJ. */
int ppx_awaitable_cancel(ppx_awaitable *aw);
/* Callback on the loop thread, exactly once; if already resolved it is
 * called before this returns. 0, PPX_EINVAL (cb NULL), PPX_EBADOBJ or
 * PPX_ENOMEM (then cb is never called). */
int ppx_awaitable_add_done_callback(ppx_awaitable *aw, ppx_awaitable_cb cb,
                                    void *arg);
/* Removes every callback added as (cb, arg) that has not been called, as
 * asyncio's remove_done_callback: returns how many (0 once aw resolved:
 * its callbacks have run, or are running), PPX_EINVAL (cb NULL),
 * PPX_EBADOBJ. */
int ppx_awaitable_remove_done_callback(ppx_awaitable *aw, ppx_awaitable_cb cb,
                                       void *arg);

/*
 * A future the application resolves, like asyncio's loop.create_future():
 * the bridge from a callback- or thread-based source to awaitables.
 * _create (on the loop's thread) gives a pending awaitable of loop;
 * _set_result resolves it DONE with a copy of msgpack, one encoded object
 * (len 0: nil; msgpack may then be NULL); _set_error resolves it FAILED
 * with copies of type (NULL or "": "Error") and message (NULL: ""), its
 * other fields "" and 0. ppx_awaitable_cancel resolves it CANCELLED.
 *
 * _set_result and _set_error may be called on any thread. On the loop's
 * thread the awaitable resolves, and its callbacks run, before the call
 * returns; on another thread the outcome is handed to the loop's thread
 * (through a uv_async), where the awaitable resolves on a coming turn of
 * the loop. The first of them, or of a cancel, decides: later ones get
 * PPX_EDONE (asyncio's InvalidStateError), and so does a cancel on the
 * loop's thread that comes after another thread's set, whose outcome
 * wins. From another thread, aw must be live throughout the call: keep a
 * reference on the loop's thread until that thread is done with aw
 * (references are not thread-safe: it cannot take one itself).
 *
 * While one is pending it keeps loop alive (uv_run does not return, as
 * when a handle is active): resolve or cancel each, or the loop runs
 * forever. Once none is pending the loop holds nothing of them (run it
 * once more before uv_loop_close, as for any closing handle).
 *
 * Errors: _create: PPX_EINVAL (loop or out NULL), PPX_ENOMEM, libuv's
 * code, a negated errno, if uv_async_init fails. _set_*: PPX_EDONE (already resolved or
 * cancelled), PPX_EINVAL (aw is not one of these awaitables; msgpack
 * NULL with len > 0), PPX_EMALFORMED (msgpack is not exactly one
 * well-formed object), PPX_ENOMEM, PPX_EBADOBJ.
 */
int ppx_awaitable_create(struct uv_loop_s *loop, ppx_awaitable **out);
int ppx_awaitable_set_result(ppx_awaitable *aw, const void *msgpack, size_t len);
int ppx_awaitable_set_error(ppx_awaitable *aw, const char *type, const char *message);

/*
 * Shields aw from cancellation, like asyncio.shield: the returned outer
 * awaitable resolves as aw does (same state, value and error; a
 * reference to aw is taken), but cancelling the outer cancels only the
 * outer: aw goes on, and its callbacks run when it ends. Cancelling aw
 * itself cancels the outer too. If aw has resolved, so has the outer on
 * return. Errors: PPX_EINVAL (loop or out NULL), PPX_EBADOBJ (aw NULL
 * or not an awaitable), PPX_ENOMEM.
 */
int ppx_shield(struct uv_loop_s *loop, ppx_awaitable *aw, ppx_awaitable **out);

/*
 * Progress of a gather (and so of ppx_run_in_executor_map, in chunks), a
 * lazy map or a task group: cb(aw, done, total, arg) runs on the loop
 * thread each time one more of its parts ends while aw is pending. total
 * is the number of parts (a task group: added so far), 0 when unknown (a
 * lazy map). A single call (ppx_run_in_executor, ppx_wrap_future, the
 * thread executor) reports what its function reports with
 * ppx_call_progress, coalesced (see ppx_future_on_progress), the last
 * values before aw settles; values taken in by another thread (one
 * blocked in ppx_future_wait on the same pool) are handed to the loop
 * thread, the latest winning. One callback per awaitable; NULL removes
 * it. PPX_EINVAL for ppx_wait and ppx_wait_for (they have no parts),
 * PPX_EBADOBJ, PPX_ENOMEM or PPX_EFORKED (a wrapped future, whose
 * progress could not be watched).
 */
typedef void (*ppx_progress_cb)(ppx_awaitable *aw, size_t done, size_t total, void *arg);
int ppx_awaitable_on_progress(ppx_awaitable *aw, ppx_progress_cb cb, void *arg);

/* Runs loop (uv_run, one turn at a time) until aw resolves: blocks. Not
 * from a callback of loop (uv_run is not reentrant); hold a reference to
 * aw meanwhile. 0 once aw resolved (whatever the outcome), PPX_EINVAL
 * (loop NULL), PPX_EBADOBJ, or PPX_ENOWORK if the loop ran out of things
 * to wait for first (which would otherwise hang). */
int ppx_run_until_complete(struct uv_loop_s *loop, ppx_awaitable *aw);

/*
 * Waits on n awaitables (references taken) without touching them, like
 * asyncio.wait: the returned awaitable resolves DONE once return_when
 * holds (PPX_FIRST_COMPLETED: one finished; PPX_FIRST_EXCEPTION: one
 * FAILED, or all finished; PPX_ALL_COMPLETED: all finished) or timeout_ms
 * passes (see "Timeouts": negative never, 0 resolves it before this
 * returns). Its value is the number of children finished by then, each
 * position counted; ppx_wait_done tells which (asyncio's done and pending
 * sets). With n == 0 it resolves DONE at once with 0, whatever
 * return_when (asyncio raises ValueError). Cancelling it leaves the
 * children running. Errors: PPX_EINVAL (loop or out NULL, items NULL with
 * n > 0, unknown return_when, a child bound to another loop: see
 * ppx_last_error), PPX_EBADOBJ (a NULL or wrong-kind child), PPX_ENOMEM.
 */
enum { PPX_FIRST_COMPLETED = 1, PPX_FIRST_EXCEPTION = 2, PPX_ALL_COMPLETED = 3 };
int ppx_wait(struct uv_loop_s *loop, ppx_awaitable *const *items, size_t n,
             int return_when, int timeout_ms, ppx_awaitable **out);
/* Whether child i (its position in items) of wait w had finished when w
 * resolved: true puts it in asyncio.wait's done set, false in its pending
 * set. The answer is fixed when w resolves; a child that finishes later
 * stays pending here. 0, PPX_EPENDING (w has not resolved), PPX_ECANCELED
 * (w was cancelled: there are no sets), PPX_EINDEX (i >= n), PPX_EINVAL
 * (done NULL), PPX_EBADOBJ (w is not a ppx_wait). */
int ppx_wait_done(const ppx_awaitable *w, size_t i, bool *done);

/*
 * aw with a deadline, like asyncio.wait_for: the returned awaitable
 * resolves as aw does (same value or error; a reference to aw is taken)
 * if it finishes within timeout_ms (see "Timeouts": negative never times
 * out; 0 times out before this returns, unless aw has finished);
 * otherwise it fails with "TimeoutError" and aw is cancelled (a running
 * call is stopped). Cancelling the returned awaitable cancels aw. For a
 * deadline that the pool enforces without a loop, see
 * ppx_call_options.timeout_ms and ppx_run_in_executor_ex. Errors:
 * PPX_EINVAL (loop or out NULL, aw bound to another loop: see
 * ppx_last_error), PPX_EBADOBJ (aw NULL or not an awaitable), PPX_ENOMEM.
 */
int ppx_wait_for(struct uv_loop_s *loop, ppx_awaitable *aw, int timeout_ms,
                 ppx_awaitable **out);

/*
 * as_completed: the awaitables in the order they finish, each once: an
 * awaitable listed several times is handed back once (asyncio takes a
 * set), and those already finished come first, in the order given. _next
 * runs the loop (as ppx_run_until_complete does) until one more has
 * finished and hands it back, borrowed (valid while the iterator lives).
 * Returns 0, PPX_EDONE when all were handed back, PPX_ETIMEDOUT after
 * timeout_ms (see "Timeouts": negative never, 0 polls), PPX_ENOWORK if
 * nothing left could finish one, PPX_EINVAL (it or out NULL, or a
 * callback freed it meanwhile: nothing is handed back). After
 * PPX_ETIMEDOUT or PPX_ENOWORK the iterator is intact: call _next again
 * and it resumes (asyncio's iterator ends at its timeout). Like
 * ppx_run_until_complete, _next blocks and must not be called from a
 * callback of the loop. _new takes a reference to each child, dropped by
 * _free; its errors: PPX_EINVAL (loop or out NULL, items NULL with n > 0,
 * a child bound to another loop: see ppx_last_error), PPX_EBADOBJ (a NULL
 * or wrong-kind child), PPX_ENOMEM. _free may be called at any time, from
 * a callback too; unfinished children keep running.
 */
typedef struct ppx_as_completed ppx_as_completed;
int ppx_as_completed_new(struct uv_loop_s *loop, ppx_awaitable *const *items, size_t n,
                         ppx_as_completed **out);
int ppx_as_completed_next(ppx_as_completed *it, int timeout_ms, ppx_awaitable **out);
void ppx_as_completed_free(ppx_as_completed *it);

/*
 * A task group, like asyncio.TaskGroup or a Trio nursery. _add puts a
 * running awaitable in the group (a reference is taken while it runs).
 * The first task that FAILS cancels every other task, and any added
 * after (_add then returns PPX_ECANCELED); a task cancelled from outside
 * ends without failing the group. A task that has already ended counts
 * at once. _close says no more tasks will come from the group's owner
 * (the end of asyncio's async-with body): the group awaitable resolves
 * once every task has ended, DONE with the number of tasks added, or
 * FAILED with the first error. Until it has resolved, _add still takes
 * tasks (from a task's done callback, say, as asyncio's create_task
 * does); after, _add returns PPX_ECLOSED and leaves the task alone (it
 * stays the caller's, to cancel or await). _close returns 0 (also when
 * already closed), or PPX_EDONE once the group has resolved. Cancelling
 * the group resolves it CANCELLED and cancels its tasks. Errors:
 * PPX_EINVAL (loop or out NULL, a task bound to another loop: see
 * ppx_last_error), PPX_EBADOBJ (not a group, or a NULL or wrong-kind
 * task), PPX_ENOMEM.
 */
int ppx_task_group(struct uv_loop_s *loop, ppx_awaitable **out);
int ppx_task_group_add(ppx_awaitable *group, ppx_awaitable *task);
int ppx_task_group_close(ppx_awaitable *group);
/* Every error of a group, as asyncio's ExceptionGroup holds them: the
 * errors of its tasks that FAILED while it was pending, in the order
 * the group learned of them, as their done callbacks ran (the group's
 * own error is the first of them, or
 * "CancelledError" if the group was cancelled). Tasks cancelled, by the
 * group or from outside, add none. _count gives how many so far (0 for
 * an invalid handle or another kind); _at gives error i, borrowed (valid
 * while the group lives), or NULL when i >= _count. */
size_t ppx_task_group_error_count(const ppx_awaitable *group);
const ppx_error *ppx_task_group_error_at(const ppx_awaitable *group, size_t i);

/*
 * A lazy, bounded map: fn over inputs pulled one at a time from next(),
 * with at most max_in_flight calls submitted at once, so memory stays
 * flat however long the input is (Python's Executor.map submits it all
 * first). next(i, &args, &len, arg) returns 1 with input i (a msgpack
 * argument array, borrowed until next returns), 0 at the end, or a
 * negative code (the map fails with "InputError"). on_result(i, aw, arg)
 * gets each settled call in input order; aw is borrowed for the callback
 * (ref it to keep it). next is first called before ppx_map_lazy returns,
 * then on the loop thread as calls settle; on_result may be NULL. The map
 * resolves DONE with the number of calls, or FAILED with the error of the
 * first failed (or cancelled) call in input order, or "SubmitError" if a
 * call could not be submitted, after which nothing more is pulled and
 * calls in flight are cancelled. pool NULL: the default pool;
 * ppx_thread_pool(): the thread pool. Errors: PPX_EINVAL (loop, fn, next
 * or out NULL; max_in_flight 0 or over 2^24), PPX_EFORKED (a fork's copy
 * of the pool), PPX_ENOMEM, those of creating the default pool.
 */
typedef int (*ppx_map_next_fn)(size_t i, const void **args, size_t *len, void *arg);
typedef void (*ppx_map_result_fn)(size_t i, ppx_awaitable *result, void *arg);
int ppx_map_lazy(struct uv_loop_s *loop, ppx_pool *pool, const char *fn,
                 size_t max_in_flight, ppx_map_next_fn next,
                 ppx_map_result_fn on_result, void *arg, ppx_awaitable **out);

/*
 * The thread-pool executor, for blocking I/O: runs registered function
 * fn(args) on libuv's thread pool (uv_queue_work) in this process, with
 * the same ppx_call API as a worker, and resolves an awaitable like a
 * process call. No isolation: a crash is this process's crash. Cancelling
 * the awaitable resolves it at once; a call not started never runs, a
 * running one sees ppx_call_cancelled(). ppx_run_in_executor with pool
 * ppx_thread_pool() does the same. args is copied (NULL with args_len 0:
 * no arguments). Errors: PPX_EINVAL (loop, fn or out NULL; args NULL with
 * args_len > 0), PPX_EMALFORMED (args not one msgpack array), PPX_ENOMEM;
 * an unknown name gives an awaitable FAILED with NameError, a call libuv
 * refuses to queue one FAILED with "RuntimeError".
 */
int ppx_run_in_thread(struct uv_loop_s *loop, const char *fn, const void *args,
                      size_t args_len, ppx_awaitable **out);
/* A handle that stands for libuv's thread pool in ppx_run_in_executor and
 * ppx_map_lazy: static, never freed. It is not a process pool: pool
 * functions refuse it (PPX_EBADOBJ, or the value they give an invalid
 * pool). Any thread. */
ppx_pool *ppx_thread_pool(void);

#ifdef __cplusplus
}
#endif
#endif /* PPX_H */
