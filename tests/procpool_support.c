/* The worker functions and fixtures the test_procpool_* suites share: the
 * pool's end-to-end tests through the blocking API only (no libuv). */
#include "support.h"
#include "procpool_support.h"

#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

/* Shared with workers: how many times "mark" ran. */
_Atomic int *marks;

int fn_add(ppx_call *c, void *u)
{
    int64_t a, b;
    if (ppx_call_arg_int(c, 0, &a) || ppx_call_arg_int(c, 1, &b))
        return ppx_raise(c, "TypeError", "add takes two integers");
    return ppx_return_int(c, a + b);
}

static int fn_raise(ppx_call *c, void *u)
{
    int64_t n = 0;
    ppx_call_arg_int(c, 0, &n);
    return ppx_raise(c, "ValueError", "bad value %lld", (long long)n);
}

static int fn_fail_silently(ppx_call *c, void *u)
{
    return 5;
}

/* What a function does when its ppx_return_* ran out of memory. */
static int fn_no_memory(ppx_call *c, void *u)
{
    (void)c;
    (void)u;
    return PPX_ENOMEM;
}

static int fn_wait_cancel(ppx_call *c, void *u)
{
    while (!ppx_call_cancelled(c)) {
        struct timespec ts = {0, 1000000};
        nanosleep(&ts, NULL);
    }
    return ppx_return_str(c, "stopped", 7);
}

static int fn_spin_forever(ppx_call *c, void *u)
{
    for (;;)
        pause();
    return 0;
}

static int fn_crash(ppx_call *c, void *u)
{
    const char *how;
    size_t len;
    ppx_call_arg_str(c, 0, &how, &len);
    if (len == 4 && memcmp(how, "segv", 4) == 0)
        raise(SIGSEGV);
    if (len == 5 && memcmp(how, "abort", 5) == 0)
        abort();
    _exit(3);
}

static int fn_echo(ppx_call *c, void *u)
{
    ppx_value v;
    int rc = ppx_call_arg(c, 0, &v);
    return rc ? rc : ppx_return_raw(c, v.data, v.len);
}

static int fn_big(ppx_call *c, void *u)
{
    uint64_t n;
    ppx_call_arg_uint(c, 0, &n);
    unsigned char *b = malloc(n ? n : 1);
    for (uint64_t i = 0; i < n; i++)
        b[i] = (unsigned char)(i * 31 + 7);
    int rc = ppx_return_bin(c, b, n);
    free(b);
    return rc;
}

static int fn_mark(ppx_call *c, void *u)
{
    atomic_fetch_add(marks, 1);
    return ppx_return_nil(c);
}

static int fn_pid(ppx_call *c, void *u)
{
    return ppx_return_int(c, getpid());
}

/* A buggy function that overwrites the pool's shared header: the layout
 * offsets, the slot count and every ring's capacity. */
static int fn_scribble(ppx_call *c, void *u)
{
    FILE *maps = fopen("/proc/self/maps", "r");
    char line[512];
    int hit = 0;
    while (maps && fgets(line, sizeof line, maps)) {
        unsigned long lo, hi;
        char perms[8];
        if (sscanf(line, "%lx-%lx %7s", &lo, &hi, perms) != 3 || perms[3] != 's')
            continue;
        uint32_t *h = (uint32_t *)lo;
        if (h[0] != 0x70707850u) /* "ppxP" */
            continue;
        memset(h + 2, 0xff, 48); /* nworkers .. max_payload */
        for (unsigned long a = lo + 4096; a + 64 <= hi; a += 4096)
            if (*(uint32_t *)a == 0x70707852u) /* a ring: "ppxR" */
                ((uint64_t *)a)[1] = ~0ull;    /* its capacity */
        hit = 1;
    }
    if (maps)
        fclose(maps);
    return hit ? ppx_return_int(c, 1) : ppx_raise(c, "LookupError", "no pool mapping found");
}

ppx_pool *new_pool(int workers, const ppx_pool_options *extra)
{
    ppx_pool_options o = extra ? *extra : PPX_POOL_OPTIONS();
    o.workers = workers;
    ppx_pool *p = NULL;
    support_valgrind_sizes(&o);
    assert_int_equal(ppx_pool_new(&o, &p), 0);
    return p;
}


int counted;
void count_cb(ppx_future *f, void *arg)
{
    (void)f;
    ++*(int *)arg;
    counted++;
}

void count_cb_atomic(ppx_future *f, void *arg)
{
    (void)f;
    atomic_fetch_add((_Atomic int *)arg, 1);
}

int teardown(void **state)
{
    (void)state;
    assert_true(support_no_children());
    return 0;
}

void procpool_support_register(void)
{
    marks = mmap(NULL, sizeof *marks, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    ppx_register("add", fn_add, NULL);
    ppx_register("raise", fn_raise, NULL);
    ppx_register("fail_silently", fn_fail_silently, NULL);
    ppx_register("no_memory", fn_no_memory, NULL);
    ppx_register("wait_cancel", fn_wait_cancel, NULL);
    ppx_register("spin_forever", fn_spin_forever, NULL);
    ppx_register("crash", fn_crash, NULL);
    ppx_register("echo", fn_echo, NULL);
    ppx_register("big", fn_big, NULL);
    ppx_register("mark", fn_mark, NULL);
    ppx_register("pid", fn_pid, NULL);
    ppx_register("scribble", fn_scribble, NULL);
    assert_int_equal(ppx_register("add", fn_add, NULL), PPX_EEXIST);
}
