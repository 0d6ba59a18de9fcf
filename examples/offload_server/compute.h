/* The CPU-bound jobs behind /work and /lucky, as plain C the loop thread
 * can call (--inline) and as the worker function the pool runs. */
#ifndef OFFLOAD_COMPUTE_H
#define OFFLOAD_COMPUTE_H
#include "ppx.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Polled every 2^20 iterations; returning true stops the sum. */
typedef bool (*compute_stop_fn)(void *arg);

/* Sum of i for i < iterations, modulo 2^64, in *out. Returns false, *out
 * untouched, when stop (may be NULL) asked it to stop. */
bool work_sum(int64_t iterations, compute_stop_fn stop, void *arg, uint64_t *out);

/* work(iterations) -> work_sum as an unsigned integer; stops with a
 * CancelledError once the call is cancelled. Registered as "work". */
int work_fn(ppx_call *call, void *udata);

/*
 * What lucky_number (examples/lucky_number/lucky.c) computes, for the loop
 * thread: n 0 draws n in 1..10; n 7 fails with ValueError("Unlucky
 * number!"), a sum past INT64_MAX with OverflowError. Returns 0 and the
 * sum of i*n for i < iterations in *out, or fills *type and *message
 * (static strings) and returns -1.
 */
int lucky_sum(int64_t n, int64_t iterations, int64_t *out, const char **type,
              const char **message);

/* scrypt's parameters, within the bounds /hash checks (routes.c). */
#define HASH_LEN_MAX 64
typedef struct hash_params {
    uint64_t N, r, p;
    size_t len;
} hash_params;

/* scrypt(password, salt) with OpenSSL's EVP_PBE_scrypt: hp->len bytes in
 * out. 0, or -1 if OpenSSL refused (memory, parameters). */
int hash_scrypt(const char *password, size_t plen, const char *salt, size_t slen,
                const hash_params *hp, unsigned char *out);

/* hash(password, salt, N, r, p, len) -> hash_scrypt's bytes as binary.
 * Registered as "hash". */
int hash_fn(ppx_call *call, void *udata);

/* The pool's initializer under --sandbox: one tiny scrypt, so that
 * OpenSSL has loaded its configuration before files are forbidden. */
int hash_warm_up(char *err, size_t errlen, void *arg);

/* crash() -> the worker dies of SIGSEGV. Registered as "crash". */
int crash_fn(ppx_call *call, void *udata);

#endif
