/* Helpers shared by the serialize suites; see serialize_support.h. */
#include "support.h"
#include "serialize_support.h"
#include "serialize/mpread.h"

#include <stdlib.h>
#include <string.h>

msgpack_sbuffer ts_sb;
msgpack_packer ts_pk;

msgpack_packer *ts_enc(void)
{
    msgpack_sbuffer_clear(&ts_sb);
    return &ts_pk;
}

ts_exact ts_exact_copy(const void *data, size_t n)
{
    ts_exact e;
    e.base = malloc(n ? n : 1);
    assert_non_null(e.base);
    if (n)
        memcpy(e.base, data, n);
    e.p = n ? e.base : e.base + 1;
    e.n = n;
    return e;
}

ts_exact ts_exact_sb(void)
{
    return ts_exact_copy(ts_sb.data, ts_sb.size);
}

void ts_exact_free(ts_exact *e)
{
    free(e->base);
    e->base = e->p = NULL;
}

ppx_value ts_value_of(const ts_exact *e)
{
    ppx_value v = {e->p, e->n};
    return v;
}

void ts_check_format_consistent(const ts_exact *e)
{
    int ok = ppx__mp_check_one(e->p, e->n);
    char out[24];
    memset(out, 'Z', sizeof out);
    int full = ppx_value_format(ts_value_of(e), NULL, 0);
    int rc = ppx_value_format(ts_value_of(e), out, sizeof out);
    assert_int_equal(rc, full);
    if (ok == 0) {
        /* Within 64 bytes nesting stays under the format's depth bound. */
        assert_true(rc >= 0);
        assert_int_equal(strlen(out), (size_t)rc < sizeof out ? (size_t)rc : sizeof out - 1);
    } else {
        assert_int_equal(rc, ok);
    }
}

int ts_group_setup(void **state)
{
    msgpack_sbuffer_init(&ts_sb);
    msgpack_packer_init(&ts_pk, &ts_sb, msgpack_sbuffer_write);
    return 0;
}

int ts_group_teardown(void **state)
{
    msgpack_sbuffer_destroy(&ts_sb);
    return 0;
}
