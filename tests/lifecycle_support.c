/* The worker functions and helpers the test_lifecycle_* suites share. */
#include "support.h"
#include "lifecycle_support.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

shared_counters *sc;
int worker_init_value; /* set in each worker by the initializer */

static int fn_add(ppx_call *c, void *u)
{
    int64_t a, b;
    ppx_call_arg_int(c, 0, &a);
    ppx_call_arg_int(c, 1, &b);
    return ppx_return_int(c, a + b);
}

static int fn_crash(ppx_call *c, void *u)
{
    raise(SIGSEGV);
    return 0;
}

static int fn_exit(ppx_call *c, void *u)
{
    _exit(3);
}

static int fn_spin_forever(ppx_call *c, void *u)
{
    for (;;)
        pause();
    return 0;
}

static int fn_wait_cancel(ppx_call *c, void *u)
{
    while (!ppx_call_cancelled(c))
        support_sleep_ms(1);
    return 0;
}

static int fn_mark(ppx_call *c, void *u)
{
    atomic_fetch_add(&sc->marks, 1);
    return 0;
}

static int fn_pid(ppx_call *c, void *u)
{
    return ppx_return_int(c, getpid());
}

static int fn_init_value(ppx_call *c, void *u)
{
    return ppx_return_int(c, worker_init_value);
}

static char *volatile grown; /* escapes, so the compiler keeps the pages */

static int fn_grow(ppx_call *c, void *u)
{
    size_t n = 64u << 20;
    char *p = malloc(n);
    if (!p)
        return ppx_raise(c, "MemoryError", "no memory");
    memset(p, 1, n); /* resident, and kept: this worker has grown */
    grown = p;
    return ppx_return_int(c, grown[n - 1]);
}

/* How many sockets the worker holds (descriptor numbers get reused, so
 * look at what each one is). */
static int fn_sockets_open(ppx_call *c, void *u)
{
    int n = 0;
    for (int fd = 0; fd < 1024; fd++) {
        char path[64], target[128];
        snprintf(path, sizeof path, "/proc/self/fd/%d", fd);
        ssize_t len = readlink(path, target, sizeof target - 1);
        if (len > 0) {
            target[len] = '\0';
            n += strncmp(target, "socket:", 7) == 0;
        }
    }
    return ppx_return_int(c, n);
}

static int fn_open_fds(ppx_call *c, void *u)
{
    return ppx_return_int(c, support_open_fds());
}

/* add_slowly(a, b): a + b after roughly a hundred microseconds of work. */
static int fn_add_slowly(ppx_call *c, void *u)
{
    int64_t a, b;
    ppx_call_arg_int(c, 0, &a);
    ppx_call_arg_int(c, 1, &b);
    struct timespec ts = {0, 100000};
    nanosleep(&ts, NULL);
    return ppx_return_int(c, a + b);
}

ppx_pool *new_pool(ppx_pool_options o)
{
    ppx_pool *p = NULL;
    support_valgrind_sizes(&o);
    assert_int_equal(ppx_pool_new(&o, &p), 0);
    return p;
}

int64_t call_int(ppx_pool *p, const char *fn)
{
    ppx_future *f;
    assert_int_equal(ppx_pool_submitf(p, &f, fn, ""), 0);
    assert_int_equal(ppx_future_wait(f, 20000), 0);
    int64_t v = -1;
    assert_int_equal(ppx_future_int(f, &v), 0);
    ppx_future_unref(f);
    return v;
}

int teardown(void **state)
{
    assert_true(support_no_children());
    return 0;
}

/* Under valgrind a process's resident size and descriptors include the
 * tool's own, so tests that measure those are skipped there. */
bool under_valgrind(void)
{
    return getenv("PPX_UNDER_VALGRIND") != NULL;
}

void lifecycle_support_register(void)
{
    sc = mmap(NULL, sizeof *sc, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    ppx_register("add", fn_add, NULL);
    ppx_register("add_slowly", fn_add_slowly, NULL);
    ppx_register("crash", fn_crash, NULL);
    ppx_register("exit", fn_exit, NULL);
    ppx_register("spin_forever", fn_spin_forever, NULL);
    ppx_register("wait_cancel", fn_wait_cancel, NULL);
    ppx_register("mark", fn_mark, NULL);
    ppx_register("pid", fn_pid, NULL);
    ppx_register("init_value", fn_init_value, NULL);
    ppx_register("grow", fn_grow, NULL);
    ppx_register("sockets_open", fn_sockets_open, NULL);
    ppx_register("open_fds", fn_open_fds, NULL);
}
