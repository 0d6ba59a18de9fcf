/* Helpers shared by the serialize suites (test_mpread_*, test_envelope,
 * test_value). Encodings are produced with msgpack-c's packer, the
 * reference the reader must agree with. Untrusted input is always copied
 * into a heap block of exactly its length first, so the sanitizer build
 * catches any read past the end. */
#ifndef PPX_TESTS_SERIALIZE_SUPPORT_H
#define PPX_TESTS_SERIALIZE_SUPPORT_H
#include "ppx.h"

#include <msgpack.h>
#include <stddef.h>
#include <stdint.h>

/* The encoding under construction; set up by ts_group_setup. */
extern msgpack_sbuffer ts_sb;
extern msgpack_packer ts_pk;

/* Starts a new encoding in ts_sb; pack into the returned ts_pk. */
msgpack_packer *ts_enc(void);

/* A heap copy of exactly n bytes (for n == 0, a pointer just past a
 * one-byte block), so that any read outside [p, p+n) is a heap overflow. */
typedef struct ts_exact {
    unsigned char *base;
    unsigned char *p;
    size_t n;
} ts_exact;

ts_exact ts_exact_copy(const void *data, size_t n);
/* An exact copy of the current contents of ts_sb. */
ts_exact ts_exact_sb(void);
void ts_exact_free(ts_exact *e);
/* The bytes of e as a ppx_value. */
ppx_value ts_value_of(const ts_exact *e);


/* ppx_value_format of e agrees with ppx__mp_check_one: it formats (and
 * truncates like snprintf) what is well-formed, and fails with the same
 * error otherwise. */
void ts_check_format_consistent(const ts_exact *e);

/* cmocka group setup and teardown: initialise and destroy ts_sb/ts_pk. */
int ts_group_setup(void **state);
int ts_group_teardown(void **state);

#endif
