/* The allocation fault injector behind fault.h: the --wrap targets. */
#include "fault.h"

#include <errno.h>
#include <execinfo.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void *__real_malloc(size_t n);
void *__real_calloc(size_t k, size_t n);
void *__real_realloc(void *p, size_t n);
int __real_posix_memalign(void **out, size_t align, size_t n);
void *__wrap_malloc(size_t n);
void *__wrap_calloc(size_t k, size_t n);
void *__wrap_realloc(void *p, size_t n);
int __wrap_posix_memalign(void **out, size_t align, size_t n);
char *__wrap_strdup(const char *s);
char *__wrap_strndup(const char *s, size_t max);

static atomic_bool armed;
static atomic_ulong counted;
static atomic_ulong target;
static atomic_bool fired;

void fault_arm(unsigned long nth)
{
    if (getenv("FAULT_VERBOSE"))
        fprintf(stderr, "fault: failing allocation %lu\n", nth);
    atomic_store(&counted, 0);
    atomic_store(&fired, false);
    atomic_store(&target, nth);
    atomic_store(&armed, true);
}

unsigned long fault_disarm(void)
{
    atomic_store(&armed, false);
    return atomic_load(&counted);
}

bool fault_fired(void)
{
    return atomic_load(&fired);
}

unsigned long fault_count(void)
{
    return atomic_load(&counted);
}

/* True when this allocation is the one to fail. */
static bool fail_now(void)
{
    if (!atomic_load(&armed))
        return false;
    unsigned long k = atomic_fetch_add(&counted, 1) + 1;
    if (k != atomic_load(&target))
        return false;
    atomic_store(&fired, true);
    if (getenv("FAULT_VERBOSE")) { /* where it failed, to debug a finding */
        void *pcs[16];
        backtrace_symbols_fd(pcs, backtrace(pcs, 16), 2);
    }
    return true;
}

void *__wrap_malloc(size_t n)
{
    if (fail_now()) {
        errno = ENOMEM;
        return NULL;
    }
    return __real_malloc(n);
}

void *__wrap_calloc(size_t k, size_t n)
{
    if (fail_now()) {
        errno = ENOMEM;
        return NULL;
    }
    return __real_calloc(k, n);
}

/* realloc(p, 0) frees in glibc: not an allocation, never failed. */
void *__wrap_realloc(void *p, size_t n)
{
    if (n && fail_now()) {
        errno = ENOMEM;
        return NULL;
    }
    return __real_realloc(p, n);
}

int __wrap_posix_memalign(void **out, size_t align, size_t n)
{
    if (fail_now())
        return ENOMEM;
    return __real_posix_memalign(out, align, n);
}

char *__wrap_strdup(const char *s)
{
    size_t n = strlen(s) + 1;
    char *d = __wrap_malloc(n);
    return d ? memcpy(d, s, n) : NULL;
}

char *__wrap_strndup(const char *s, size_t max)
{
    size_t n = strnlen(s, max);
    char *d = __wrap_malloc(n + 1);
    if (d) {
        memcpy(d, s, n);
        d[n] = '\0';
    }
    return d;
}
