#include "compute.h"

#include <inttypes.h>
#include <openssl/evp.h>
#include <signal.h>
#include <sys/random.h>

#define CHECK_MASK ((INT64_C(1) << 20) - 1)

/* Never inlined: --inline and the workers then run the very same machine
 * code, so the load test compares where the loop runs, not how the
 * compiler specialised it (inlined into work_fn it ran 1.5x faster). */
__attribute__((noinline)) bool work_sum(int64_t iterations, compute_stop_fn stop, void *arg,
                                        uint64_t *out)
{
    /* The empty asm hides x from the optimizer, so the loop cannot become
     * its closed form and time grows with iterations, as in lucky.c. */
    uint64_t x = 0;
    for (int64_t i = 0; i < iterations; i++) {
        x += (uint64_t)i;
        __asm__("" : "+r"(x));
        if ((i & CHECK_MASK) == CHECK_MASK && stop && stop(arg))
            return false;
    }
    *out = x;
    return true;
}

static bool call_cancelled(void *call)
{
    return ppx_call_cancelled(call);
}

int work_fn(ppx_call *call, void *udata)
{
    (void)udata;
    int64_t iterations;
    if (ppx_call_arg_int(call, 0, &iterations) || iterations < 0)
        return ppx_raise(call, "TypeError", "iterations must be a non-negative integer");
    uint64_t x;
    if (!work_sum(iterations, call_cancelled, call, &x))
        return ppx_raise(call, "CancelledError", "stopped before %lld iterations",
                         (long long)iterations);
    return ppx_return_uint(call, x);
}

int lucky_sum(int64_t n, int64_t iterations, int64_t *out, const char **type,
              const char **message)
{
    if (n == 0) {
        uint64_t r = 0;
        while (getrandom(&r, sizeof r, 0) != (ssize_t)sizeof r)
            ;
        n = 1 + (int64_t)(r % 10);
    }
    if (n == 7) {
        *type = "ValueError";
        *message = "Unlucky number!";
        return -1;
    }
    unsigned __int128 x = 0;
    for (int64_t i = 0; i < iterations; i++) {
        x += (unsigned __int128)((uint64_t)i * (uint64_t)n);
        __asm__("" : "+r"(x));
    }
    if (x > (unsigned __int128)INT64_MAX) {
        *type = "OverflowError";
        *message = "the sum does not fit in 64 bits";
        return -1;
    }
    *out = (int64_t)x;
    return 0;
}

int hash_scrypt(const char *password, size_t plen, const char *salt, size_t slen,
                const hash_params *hp, unsigned char *out)
{
    /* What scrypt allocates (V: 128*N*r, B: 128*r*p) and some room; the
     * bounds in hash_params keep this under 1.1 GiB. */
    uint64_t maxmem = 128 * hp->N * hp->r * hp->p + 128 * hp->r * hp->p + (1u << 20);
    return EVP_PBE_scrypt(password, plen, (const unsigned char *)salt, slen, hp->N, hp->r,
                          hp->p, maxmem, out, hp->len) == 1
               ? 0
               : -1;
}

int hash_warm_up(char *err, size_t errlen, void *arg)
{
    (void)arg;
    /* OpenSSL reads its configuration and sets up its providers on first
     * use: do that here, in the initializer, before a sandbox forbids
     * opening files. */
    static const hash_params tiny = {2, 1, 1, 16};
    unsigned char out[16];
    if (hash_scrypt("warm", 4, "up", 2, &tiny, out) != 0) {
        snprintf(err, errlen, "OpenSSL's scrypt failed in the worker's initializer");
        return -1;
    }
    return 0;
}

int hash_fn(ppx_call *call, void *udata)
{
    (void)udata;
    const char *password, *salt;
    size_t plen, slen;
    int64_t v[4];
    if (ppx_call_arg_str(call, 0, &password, &plen) || ppx_call_arg_str(call, 1, &salt, &slen))
        return ppx_raise(call, "TypeError", "password and salt must be strings");
    for (size_t i = 0; i < 4; i++)
        if (ppx_call_arg_int(call, 2 + i, &v[i]) || v[i] < 1)
            return ppx_raise(call, "TypeError", "N, r, p and len must be positive integers");
    hash_params hp = {(uint64_t)v[0], (uint64_t)v[1], (uint64_t)v[2], (size_t)v[3]};
    unsigned char out[HASH_LEN_MAX];
    if (hp.len > sizeof out || hash_scrypt(password, plen, salt, slen, &hp, out) != 0)
        return ppx_raise(call, "ValueError", "EVP_PBE_scrypt refused N=%" PRIu64 " r=%" PRIu64
                         " p=%" PRIu64 " len=%zu", hp.N, hp.r, hp.p, hp.len);
    return ppx_return_bin(call, out, hp.len);
}

int crash_fn(ppx_call *call, void *udata)
{
    (void)call;
    (void)udata;
    /* What a bug in native code does: the worker dies of SIGSEGV, and the
     * pool reports the call as WorkerCrashed and starts a new worker. */
    raise(SIGSEGV);
    return 0;
}
