/* Shared by the conformance suites (tests/test_conformance_*.c): the worker
 * functions that stand in for the Python callables of CPython's
 * concurrent.futures and asyncio test suites, and a few counters in shared
 * memory through which a test steers them deterministically (no sleeps
 * that a result depends on). */
#ifndef PPX_TESTS_CONFORMANCE_H
#define PPX_TESTS_CONFORMANCE_H
#include "ppx.h"

#include <uv.h>

#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

/* In MAP_SHARED memory: the workers see what the test writes. */
typedef struct conf_shared {
    _Atomic int turn;    /* "gated" calls with k <= turn may finish */
    _Atomic int started; /* calls of gated/on_cancel_* that have begun */
    _Atomic int noticed; /* calls that saw ppx_call_cancelled() */
} conf_shared;
extern conf_shared *conf;

/*
 * Registers (once, before any pool) the worker functions:
 *   mul(x, y)          x * y                  (CPython's mul)
 *   pow(a, b)          a ** b                 (pow)
 *   abs(x)             |x|                    (abs)
 *   divmod(a, b)       [a // b, a % b]; b == 0 raises ZeroDivisionError
 *   gated(k, v, kind)  counts in started, waits until turn >= k, then
 *                      returns v (kind "ok") or raises an error of type
 *                      kind with message str(v); if cancelled first it
 *                      counts in noticed and returns (event.wait, sleep)
 *   on_cancel(v, kind) counts in started, waits for its cancel flag,
 *                      counts in noticed, then returns v (kind "ok") or
 *                      raises kind: a call that catches its cancellation
 *   getpid()           the worker's pid       (os.getpid)
 *   crash(how, code)   "segv": SIGSEGV; "exit": _exit(code)
 *   gated_crash(k)     waits until turn >= k, then SIGSEGV
 *   raise(type, msg)   raises type with msg   (_raise_error)
 *   init_status()      what the pool's initializer left ("uninitialized")
 *   first_arg(x, ...)  its first argument, as is (id())
 *   str(x)             x as a decimal string  (str of an int)
 *   gated_term_ignored(k, v)
 *                      ignores SIGTERM from then on, then as
 *                      gated(k, v, "ok"): a function that outlives
 *                      ppx_pool_terminate_workers (its worker keeps
 *                      ignoring SIGTERM: use it where that worker retires)
 */
void conf_register(void);
/* An initializer (test_init.py's init): sets what init_status returns to
 * arg, a static string. */
int conf_init_status(char *err, size_t errlen, void *arg);
/* A pool of `workers` processes, cancel grace 2 s (a cooperative call is
 * never killed), valgrind-sized; o (may be NULL) gives further options. */
ppx_pool *conf_pool(int workers, const ppx_pool_options *o);
/* Lets gated calls with k <= turn finish. */
void conf_release(int turn);
/* Resets the counters (turn 0). */
void conf_reset(void);
/* Waits (up to 20 s, else fails the test) until started / noticed >= n. */
void conf_wait_started(int n);
void conf_wait_noticed(int n);
/* Submits gated(k, v, kind) / on_cancel(v, kind). */
ppx_future *conf_gated(ppx_pool *p, int k, int64_t v, const char *kind);
ppx_future *conf_on_cancel(ppx_pool *p, int64_t v, const char *kind);
/* Loop-side helpers (test_conformance_shield.c). set_result(v) for
 * 0 <= v < 128; an awaitable's integer value, formatted value, error type
 * ("(none)"); n unrefs. */
int conf_set_int(ppx_awaitable *aw, int v);
int64_t conf_aw_int(ppx_awaitable *aw);
const char *conf_aw_text(ppx_awaitable *aw, char *buf, size_t n);
const char *conf_aw_etype(const ppx_awaitable *aw);
void conf_unref_all(ppx_awaitable **a, size_t n);
/* Sets aw's outcome on another thread (result v, or error type with
 * message "from a thread" if type is not NULL) and joins it. */
typedef struct conf_setter {
    ppx_awaitable *aw;
    int v;
    const char *type;
    int rc;
} conf_setter;
void conf_set_from_thread(conf_setter *s);
/* Blocking-API checks (test_conformance_pool.c, _executor.c): f resolves
 * (waits for it) DONE with a value that formats as want; FAILED with an
 * error of that type; f's error message holds part. */
void conf_expect_text(ppx_future *f, const char *want);
void conf_expect_error(ppx_future *f, const char *type);
void conf_expect_message(ppx_future *f, const char *part);
/* Packs [[a0, b0], [a1, b1], ...] (n pairs, n < 65536) for pow/divmod
 * maps; the caller frees it. */
void *conf_pairs(const int *a, const int *b, size_t n, size_t *len);
/* The rendering of [pow(i, i) for i in range(n)], 64-bit wrap. */
void conf_pow_text(int n, char *out, size_t cap);
/* A call that runs until cancelled: gated with an unreachable k. */
#define CONF_NEVER (1 << 30)

/* A test's loop and pool (cmocka state): made by conf_setup_loop (a loop
 * and a pool of workers) or conf_setup_pool (the pool alone); the
 * teardowns free the pool, run the loop dry and close it, and check that
 * no child process is left. */
typedef struct conf_fixture {
    uv_loop_t loop;
    ppx_pool *pool;
    int has_loop;
} conf_fixture;
int conf_setup_loop(void **state, int workers);
int conf_setup_pool(void **state, int workers);
int conf_teardown(void **state);
/* Runs fx's loop until aw resolves (it must). */
void conf_run(conf_fixture *fx, ppx_awaitable *aw);
/* A gated call as an awaitable on fx's loop (see conf_gated). */
ppx_awaitable *conf_aw_gated(conf_fixture *fx, int k, int64_t v, const char *kind);

#endif
