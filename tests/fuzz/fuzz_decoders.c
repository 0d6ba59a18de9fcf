/*
 * libFuzzer target for everything that reads bytes another process wrote:
 * envelopes, msgpack values, call arguments, frame reassembly and ring
 * headers. The first input byte picks the decoder; the rest is its input,
 * copied into a buffer of exactly that size so ASan sees any overread.
 */
#include "ppx.h"
#include "procpool/worker/call.h"
#include "procpool/wire/frame.h"
#include "serialize/envelope.h"
#include "serialize/mpread.h"
#include "shm/ring.h"

#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void walk_value(ppx_value v, int depth)
{
    int64_t i;
    uint64_t u;
    double d;
    bool b;
    const char *s;
    const void *p;
    size_t n;
    ppx_value_int(v, &i);
    ppx_value_uint(v, &u);
    ppx_value_double(v, &d);
    ppx_value_bool(v, &b);
    ppx_value_str(v, &s, &n);
    ppx_value_bin(v, &p, &n);
    char buf[64];
    ppx_value_format(v, buf, sizeof buf);
    if (depth < 4 && ppx_value_array_len(v, &n) == 0)
        for (size_t k = 0; k < n && k < 64; k++) {
            ppx_value e;
            if (ppx_value_at(v, k, &e) == 0)
                walk_value(e, depth + 1);
        }
}

static void fuzz_envelope(const uint8_t *d, size_t n)
{
    ppx__env env;
    if (ppx__env_decode(d, n, &env) == 0 && env.payload.data) {
        if (ppx__mp_check_one(env.payload.data, env.payload.len) != 0)
            abort(); /* decode promised one well-formed object */
        walk_value(env.payload, 0);
    }
}

static void fuzz_call_args(const uint8_t *d, size_t n)
{
    if (ppx__mp_check_one(d, n) != 0)
        return; /* the decoder validates args before a call sees them */
    msgpack_sbuffer ret;
    msgpack_sbuffer_init(&ret);
    ppx_call call;
    ppx_value args = {d, n};
    if (ppx__call_init(&call, 1, "f", 1, args, NULL, &ret) == 0) {
        for (size_t i = 0; i <= ppx_call_argc(&call) && i < 64; i++) {
            ppx_value v;
            if (ppx_call_arg(&call, i, &v) == 0)
                walk_value(v, 0);
        }
        ppx__call_destroy(&call);
    }
    msgpack_sbuffer_destroy(&ret);
}

/* Records as [flags:1][len:2][bytes]; the reassembled frame must stay
 * within the sizes fed in. */
static void fuzz_frames(const uint8_t *d, size_t n)
{
    ppx__rx rx = {.max = 1 << 16};
    size_t fed = 0;
    while (n >= 3) {
        uint32_t flags = d[0] & 3;
        size_t len = (size_t)d[1] | (size_t)d[2] << 8;
        d += 3;
        n -= 3;
        if (len > n)
            len = n;
        uint8_t *rec = malloc(len ? len : 1);
        memcpy(rec, d, len);
        fed += len;
        const void *frame;
        size_t flen;
        int rc = ppx__rx_feed(&rx, rec, len, flags, &frame, &flen);
        if (rc == 1) {
            if (flen > fed && frame != rec)
                abort();
            fuzz_envelope(frame, flen);
            if (flags != PPX__REC_WHOLE)
                ppx__rx_reset(&rx);
            fed = 0;
        } else if (rc < 0) {
            ppx__rx_reset(&rx);
            fed = 0;
        }
        free(rec);
        d += len;
        n -= len;
    }
    ppx__rx_reset(&rx);
}

/* A ring whose header and contents the producer side wrote arbitrarily. */
static void fuzz_ring(const uint8_t *d, size_t n)
{
    enum { CAP = 256 };
    if (n < 16)
        return;
    ppx__ring *r = malloc(ppx__ring_footprint(CAP));
    ppx__ring_init(r, CAP);
    uint64_t head, tail;
    memcpy(&head, d, 8);
    memcpy(&tail, d + 8, 8);
    memset(r->data, 0, CAP);
    memcpy(r->data, d + 16, n - 16 < CAP ? n - 16 : CAP);
    atomic_store(&r->head, head);
    atomic_store(&r->tail, tail);
    ppx__port port = ppx__port_of(r, CAP);
    for (int i = 0; i < 64; i++) {
        const void *p;
        size_t len;
        uint32_t flags;
        if (ppx__ring_peek(&port, &p, &len, &flags) != 1)
            break;
        const uint8_t *bp = p;
        if (bp < r->data || bp + len > r->data + CAP)
            abort(); /* peek handed out memory outside the ring */
        fuzz_envelope(p, len);
        ppx__ring_release(&port, len);
        /* The producer may rewrite the shared capacity; we must not care. */
        r->capacity = (uint64_t)i << 40;
    }
    free(r);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1)
        return 0;
    size_t n = size - 1;
    uint8_t *copy = malloc(n ? n : 1);
    memcpy(copy, data + 1, n);
    switch (data[0] % 5) {
    case 0: fuzz_envelope(copy, n); break;
    case 1: walk_value((ppx_value){copy, n}, 0); break;
    case 2: fuzz_call_args(copy, n); break;
    case 3: fuzz_frames(copy, n); break;
    default: fuzz_ring(copy, n); break;
    }
    free(copy);
    return 0;
}
