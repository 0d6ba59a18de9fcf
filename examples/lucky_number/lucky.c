/* The worker function of lucky_number, shared with the tests. */
#include "lucky.h"

#include <stdint.h>
#include <sys/random.h>

/* splitmix64: a reproducible draw per (seed, task index). */
static uint64_t mix(uint64_t z)
{
    z += 0x9e3779b97f4a7c15ull;
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

static int64_t draw(const ppx_call *call)
{
    uint64_t seed, index;
    if (ppx_call_arg_uint(call, 2, &seed) == 0 && ppx_call_arg_uint(call, 3, &index) == 0)
        return 1 + (int64_t)(mix(seed ^ mix(index)) % 10);
    /* No seed: every worker draws from the kernel, so forked workers do
     * not repeat each other the way a copied PRNG state would. */
    uint64_t r = 0;
    while (getrandom(&r, sizeof r, 0) != (ssize_t)sizeof r)
        ;
    return 1 + (int64_t)(r % 10);
}

/* lucky_number(iterations, n, seed, index): n 0 means "draw n here";
 * seed nil means "draw from the kernel". */
int lucky_number(ppx_call *call, void *udata)
{
    (void)udata;
    int64_t iterations, n;
    if (ppx_call_arg_int(call, 0, &iterations) || iterations < 0)
        return ppx_raise(call, "TypeError", "iterations must be a non-negative integer");
    if (ppx_call_arg_int(call, 1, &n) || n < 0)
        return ppx_raise(call, "TypeError", "n must be a non-negative integer");
    if (n == 0)
        n = draw(call);
    if (n == 7)
        return ppx_raise(call, "ValueError", "Unlucky number!");

    /* A real loop: the empty asm hides x from the optimizer, so it cannot
     * replace the sum by its closed form, and time grows with iterations. */
    unsigned __int128 x = 0;
    for (int64_t i = 0; i < iterations; i++) {
        x += (unsigned __int128)((uint64_t)i * (uint64_t)n);
        __asm__("" : "+r"(x));
        if ((i & 0xfffff) == 0xfffff && ppx_call_cancelled(call))
            return ppx_raise(call, "CancelledError", "stopped after %lld iterations",
                             (long long)i);
    }
    if (x > (unsigned __int128)INT64_MAX)
        return ppx_raise(call, "OverflowError", "the sum does not fit in 64 bits");
    return ppx_return_int(call, (int64_t)x);
}
