/*
 * One scrypt at a time, as offload_server's worker computes it (OpenSSL's
 * EVP_PBE_scrypt, N=16384 r=8 p=1, 32 bytes, the same memory limit), on
 * the libcrypto this is linked with (Debian's): bench/offload/run's
 * "alone" part compares its CPU time per hash with Node's bundled OpenSSL
 * (scrypt_alone.js). Three warm-up hashes first (the first two fault in
 * scrypt's 16 MiB array), then HASHES timed ones.
 *
 *   scrypt_alone HASHES   prints {"cpu_ms":..,"wall_ms":..} per hash
 */
#define _POSIX_C_SOURCE 200809L
#include <openssl/evp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

static double ms(clockid_t clock)
{
    struct timespec t;
    clock_gettime(clock, &t);
    return (double)t.tv_sec * 1e3 + (double)t.tv_nsec / 1e6;
}

static int hash(void)
{
    static const char pw[] = "correct horse battery staple", salt[] = "NaCl-salt";
    const uint64_t n = 16384, r = 8, p = 1;
    unsigned char key[32];
    return EVP_PBE_scrypt(pw, sizeof pw - 1, (const unsigned char *)salt, sizeof salt - 1, n, r,
                          p, 128 * n * r + 128 * r * p + (1 << 20), key, sizeof key);
}

int main(int argc, char **argv)
{
    int hashes = argc > 1 ? atoi(argv[1]) : 20;
    if (hashes < 1)
        return 2;
    for (int i = 0; i < 3; i++)
        if (!hash())
            return 1;
    double cpu = ms(CLOCK_PROCESS_CPUTIME_ID), wall = ms(CLOCK_MONOTONIC);
    for (int i = 0; i < hashes; i++)
        if (!hash())
            return 1;
    printf("{\"cpu_ms\":%.3f,\"wall_ms\":%.3f}\n", (ms(CLOCK_PROCESS_CPUTIME_ID) - cpu) / hashes,
           (ms(CLOCK_MONOTONIC) - wall) / hashes);
    return 0;
}
