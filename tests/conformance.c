#include "conformance.h"
#include "support.h"

#include <pthread.h>
#include <stdlib.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

conf_shared *conf;
static const char *init_status = "uninitialized";

static int fn_mul(ppx_call *c, void *u)
{
    (void)u;
    int64_t x, y;
    if (ppx_call_arg_int(c, 0, &x) || ppx_call_arg_int(c, 1, &y))
        return ppx_raise(c, "TypeError", "mul takes two integers");
    return ppx_return_int(c, x * y);
}

static int fn_pow(ppx_call *c, void *u)
{
    (void)u;
    int64_t a, b;
    uint64_t r = 1;
    if (ppx_call_arg_int(c, 0, &a) || ppx_call_arg_int(c, 1, &b) || b < 0)
        return ppx_raise(c, "TypeError", "pow takes two integers");
    while (b-- > 0)
        r *= (uint64_t)a; /* wraps modulo 2^64, as the test's reference does */
    return ppx_return_int(c, (int64_t)r);
}

static int fn_abs(ppx_call *c, void *u)
{
    (void)u;
    int64_t x;
    if (ppx_call_arg_int(c, 0, &x))
        return ppx_raise(c, "TypeError", "abs takes an integer");
    return ppx_return_int(c, x < 0 ? -x : x);
}

static int fn_divmod(ppx_call *c, void *u)
{
    (void)u;
    int64_t a, b;
    if (ppx_call_arg_int(c, 0, &a) || ppx_call_arg_int(c, 1, &b))
        return ppx_raise(c, "TypeError", "divmod takes two integers");
    if (b == 0)
        return ppx_raise(c, "ZeroDivisionError", "integer division or modulo by zero");
    return ppx_returnf(c, "ll", (long long)(a / b), (long long)(a % b));
}

/* kind "ok": return v; else raise kind(str(v)). */
static int finish(ppx_call *c, int64_t v, const char *kind, size_t klen)
{
    if (klen == 2 && memcmp(kind, "ok", 2) == 0)
        return ppx_return_int(c, v);
    char type[64];
    snprintf(type, sizeof type, "%.*s", (int)klen, kind);
    return ppx_raise(c, type, "%lld", (long long)v);
}

static int fn_gated(ppx_call *c, void *u)
{
    (void)u;
    int64_t k, v;
    const char *kind;
    size_t klen;
    if (ppx_call_arg_int(c, 0, &k) || ppx_call_arg_int(c, 1, &v) ||
        ppx_call_arg_str(c, 2, &kind, &klen))
        return ppx_raise(c, "TypeError", "gated(k, v, kind)");
    atomic_fetch_add(&conf->started, 1);
    while (atomic_load(&conf->turn) < k) {
        if (ppx_call_cancelled(c)) {
            atomic_fetch_add(&conf->noticed, 1);
            return ppx_return_nil(c);
        }
        support_sleep_ms(1);
    }
    return finish(c, v, kind, klen);
}

static int fn_on_cancel(ppx_call *c, void *u)
{
    (void)u;
    int64_t v;
    const char *kind;
    size_t klen;
    if (ppx_call_arg_int(c, 0, &v) || ppx_call_arg_str(c, 1, &kind, &klen))
        return ppx_raise(c, "TypeError", "on_cancel(v, kind)");
    atomic_fetch_add(&conf->started, 1);
    while (!ppx_call_cancelled(c))
        support_sleep_ms(1);
    atomic_fetch_add(&conf->noticed, 1);
    return finish(c, v, kind, klen);
}

static int fn_getpid(ppx_call *c, void *u)
{
    (void)u;
    return ppx_return_int(c, getpid());
}

static int fn_crash(ppx_call *c, void *u)
{
    (void)u;
    const char *how;
    size_t len;
    int64_t code = 1;
    ppx_call_arg_str(c, 0, &how, &len);
    ppx_call_arg_int(c, 1, &code);
    if (len == 4 && memcmp(how, "segv", 4) == 0)
        raise(SIGSEGV);
    _exit((int)code);
}

static int fn_gated_crash(ppx_call *c, void *u)
{
    (void)u;
    int64_t k;
    ppx_call_arg_int(c, 0, &k);
    while (atomic_load(&conf->turn) < k)
        support_sleep_ms(1);
    raise(SIGSEGV);
    return 0;
}

static int fn_raise(ppx_call *c, void *u)
{
    (void)u;
    const char *type, *msg;
    size_t tl, ml;
    if (ppx_call_arg_str(c, 0, &type, &tl) || ppx_call_arg_str(c, 1, &msg, &ml))
        return ppx_raise(c, "TypeError", "raise(type, msg)");
    char t[64];
    snprintf(t, sizeof t, "%.*s", (int)tl, type);
    return ppx_raise(c, t, "%.*s", (int)ml, msg);
}

static int fn_init_status(ppx_call *c, void *u)
{
    (void)u;
    return ppx_return_str(c, init_status, strlen(init_status));
}

static int fn_first_arg(ppx_call *c, void *u)
{
    (void)u;
    ppx_value v;
    int rc = ppx_call_arg(c, 0, &v);
    return rc ? rc : ppx_return_raw(c, v.data, v.len);
}

static int fn_str(ppx_call *c, void *u)
{
    (void)u;
    int64_t x;
    if (ppx_call_arg_int(c, 0, &x))
        return ppx_raise(c, "TypeError", "str takes an integer");
    char s[24];
    int n = snprintf(s, sizeof s, "%lld", (long long)x);
    return ppx_return_str(c, s, (size_t)n);
}

/* gated(k, v, "ok") that ignores SIGTERM, as a function may (ppx.h,
 * ppx_pool_terminate_workers): ignored before it counts as started. */
static int fn_gated_term_ignored(ppx_call *c, void *u)
{
    (void)u;
    int64_t k, v;
    if (ppx_call_arg_int(c, 0, &k) || ppx_call_arg_int(c, 1, &v))
        return ppx_raise(c, "TypeError", "gated_term_ignored(k, v)");
    signal(SIGTERM, SIG_IGN);
    atomic_fetch_add(&conf->started, 1);
    while (atomic_load(&conf->turn) < k)
        support_sleep_ms(1);
    return ppx_return_int(c, v);
}

/* The pool's initializer (test_init.py's init): arg is the status. */
int conf_init_status(char *err, size_t errlen, void *arg)
{
    (void)err;
    (void)errlen;
    init_status = arg;
    return 0;
}

void conf_register(void)
{
    conf = mmap(NULL, sizeof *conf, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    assert_true(conf != MAP_FAILED);
    static const struct {
        const char *name;
        ppx_fn fn;
    } fns[] = {
        {"mul", fn_mul},       {"pow", fn_pow},         {"abs", fn_abs},
        {"divmod", fn_divmod}, {"gated", fn_gated},     {"on_cancel", fn_on_cancel},
        {"getpid", fn_getpid}, {"crash", fn_crash},     {"gated_crash", fn_gated_crash},
        {"raise", fn_raise},   {"init_status", fn_init_status}, {"first_arg", fn_first_arg},
        {"str", fn_str},       {"gated_term_ignored", fn_gated_term_ignored},
    };
    for (size_t i = 0; i < sizeof fns / sizeof fns[0]; i++)
        assert_int_equal(ppx_register(fns[i].name, fns[i].fn, NULL), 0);
}

ppx_pool *conf_pool(int workers, const ppx_pool_options *o)
{
    ppx_pool_options opts = PPX_POOL_OPTIONS_INIT;
    if (o)
        opts = *o;
    opts.workers = workers;
    if (opts.cancel_grace_ms == 0)
        opts.cancel_grace_ms = 2000;
    support_valgrind_sizes(&opts);
    ppx_pool *p = NULL;
    assert_int_equal(ppx_pool_new(&opts, &p), 0);
    return p;
}

void conf_release(int turn)
{
    atomic_store(&conf->turn, turn);
}

void conf_reset(void)
{
    atomic_store(&conf->turn, 0);
    atomic_store(&conf->started, 0);
    atomic_store(&conf->noticed, 0);
}

static void wait_count(_Atomic int *c, int n, const char *what)
{
    int64_t end = support_now_ms() + 20000;
    while (atomic_load(c) < n) {
        if (support_now_ms() > end)
            fail_msg("%s: %d, expected %d", what, atomic_load(c), n);
        support_sleep_ms(1);
    }
}

void conf_wait_started(int n)
{
    wait_count(&conf->started, n, "calls started");
}

void conf_wait_noticed(int n)
{
    wait_count(&conf->noticed, n, "calls that noticed their cancellation");
}

ppx_future *conf_gated(ppx_pool *p, int k, int64_t v, const char *kind)
{
    ppx_future *f = NULL;
    assert_int_equal(ppx_pool_submitf(p, &f, "gated", "lls", (long long)k, (long long)v, kind), 0);
    return f;
}

ppx_future *conf_on_cancel(ppx_pool *p, int64_t v, const char *kind)
{
    ppx_future *f = NULL;
    assert_int_equal(ppx_pool_submitf(p, &f, "on_cancel", "ls", (long long)v, kind), 0);
    return f;
}

void conf_expect_text(ppx_future *f, const char *want)
{
    char text[512];
    ppx_value v;
    assert_int_equal(ppx_future_wait(f, -1), 0);
    if (ppx_future_value(f, &v) != 0)
        fail_msg("%s: %s", ppx_future_error(f)->type, ppx_future_error(f)->message);
    ppx_value_format(v, text, sizeof text);
    assert_string_equal(text, want);
}

void conf_expect_error(ppx_future *f, const char *type)
{
    assert_int_equal(ppx_future_wait(f, -1), 0);
    assert_int_equal(ppx_future_state(f), PPX_FAILED);
    assert_string_equal(ppx_future_error(f)->type, type);
}

void conf_expect_message(ppx_future *f, const char *part)
{
    const char *m = ppx_future_error(f)->message;
    if (!strstr(m, part))
        fail_msg("message \"%s\" lacks \"%s\"", m, part);
}

void *conf_pairs(const int *a, const int *b, size_t n, size_t *len)
{
    char *buf = malloc(16 + n * 12);
    assert_non_null(buf);
    size_t k = 0;
    buf[k++] = (char)0xdc; /* array 16 */
    buf[k++] = (char)(n >> 8);
    buf[k++] = (char)n;
    for (size_t i = 0; i < n; i++) {
        buf[k++] = (char)0x92;
        for (int j = 0; j < 2; j++) {
            int x = j ? b[i] : a[i];
            buf[k++] = (char)0xd2; /* int 32 */
            for (int s = 24; s >= 0; s -= 8)
                buf[k++] = (char)((unsigned)x >> s);
        }
    }
    *len = k;
    return buf;
}

void conf_pow_text(int n, char *out, size_t cap)
{
    size_t k = (size_t)snprintf(out, cap, "[");
    for (int i = 0; i < n; i++) {
        uint64_t r = 1;
        for (int j = 0; j < i; j++)
            r *= (uint64_t)i;
        k += (size_t)snprintf(out + k, cap - k, "%s%lld", i ? ", " : "", (long long)r);
    }
    snprintf(out + k, cap - k, "]");
}

int conf_set_int(ppx_awaitable *aw, int v)
{
    unsigned char b = (unsigned char)v;
    return ppx_awaitable_set_result(aw, &b, 1);
}

void conf_run(conf_fixture *fx, ppx_awaitable *aw)
{
    assert_int_equal(ppx_run_until_complete(&fx->loop, aw), 0);
}

int64_t conf_aw_int(ppx_awaitable *aw)
{
    ppx_value v;
    int64_t i;
    if (ppx_awaitable_value(aw, &v) != 0)
        fail_msg("no value: %s", conf_aw_etype(aw));
    assert_int_equal(ppx_value_int(v, &i), 0);
    return i;
}

const char *conf_aw_text(ppx_awaitable *aw, char *buf, size_t n)
{
    ppx_value v;
    if (ppx_awaitable_value(aw, &v) != 0)
        fail_msg("no value: %s", conf_aw_etype(aw));
    ppx_value_format(v, buf, n);
    return buf;
}

const char *conf_aw_etype(const ppx_awaitable *aw)
{
    const ppx_error *e = ppx_awaitable_error(aw);
    return e ? e->type : "(none)";
}

void conf_unref_all(ppx_awaitable **a, size_t n)
{
    for (size_t i = 0; i < n; i++)
        ppx_awaitable_unref(a[i]);
}

static void *set_on_thread(void *arg)
{
    conf_setter *s = arg;
    s->rc = s->type ? ppx_awaitable_set_error(s->aw, s->type, "from a thread")
                    : conf_set_int(s->aw, s->v);
    return NULL;
}

void conf_set_from_thread(conf_setter *s)
{
    pthread_t t;
    assert_int_equal(pthread_create(&t, NULL, set_on_thread, s), 0);
    assert_int_equal(pthread_join(t, NULL), 0);
    assert_int_equal(s->rc, 0);
}

static int setup_fixture(void **state, int workers, int has_loop)
{
    conf_fixture *fx = calloc(1, sizeof *fx);
    assert_non_null(fx);
    conf_reset();
    fx->has_loop = has_loop;
    if (has_loop)
        uv_loop_init(&fx->loop);
    fx->pool = conf_pool(workers, NULL);
    *state = fx;
    return 0;
}

int conf_setup_loop(void **state, int workers)
{
    return setup_fixture(state, workers, 1);
}

int conf_setup_pool(void **state, int workers)
{
    return setup_fixture(state, workers, 0);
}

int conf_teardown(void **state)
{
    conf_fixture *fx = *state;
    ppx_pool_free(fx->pool);
    if (fx->has_loop) {
        uv_run(&fx->loop, UV_RUN_DEFAULT);
        assert_int_equal(uv_loop_close(&fx->loop), 0);
    }
    free(fx);
    assert_true(support_no_children());
    return 0;
}

ppx_awaitable *conf_aw_gated(conf_fixture *fx, int k, int64_t v, const char *kind)
{
    ppx_awaitable *aw;
    assert_int_equal(ppx_run_in_executorf(&fx->loop, fx->pool, &aw, "gated", "lls", (long long)k,
                                          (long long)v, kind),
                     0);
    return aw;
}
