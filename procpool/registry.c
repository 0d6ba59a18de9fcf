#include "registry.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

/* Open addressing, power-of-two capacity, at most half full. Entries are
 * only added before the freeze, so lookups after it need no lock. */
static ppx__entry *table;
static size_t cap, count;
static atomic_bool frozen;
static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;

static uint64_t hash(const char *s, size_t len)
{
    uint64_t h = 1469598103934665603ull; /* FNV-1a */
    for (size_t i = 0; i < len; i++)
        h = (h ^ (unsigned char)s[i]) * 1099511628211ull;
    return h;
}

static ppx__entry *probe(ppx__entry *t, size_t tcap, const char *name, size_t len)
{
    for (size_t i = hash(name, len) & (tcap - 1);; i = (i + 1) & (tcap - 1))
        if (!t[i].name || (t[i].len == len && memcmp(t[i].name, name, len) == 0))
            return &t[i];
}

static int grow(void)
{
    size_t ncap = cap ? cap * 2 : 32;
    ppx__entry *nt = calloc(ncap, sizeof *nt);
    if (!nt)
        return PPX_ENOMEM;
    for (size_t i = 0; i < cap; i++)
        if (table[i].name)
            *probe(nt, ncap, table[i].name, table[i].len) = table[i];
    free(table);
    table = nt;
    cap = ncap;
    return 0;
}

int ppx_register(const char *name, ppx_fn fn, void *udata)
{
    if (!name || !fn)
        return PPX_EINVAL;
    size_t len = strnlen(name, 256);
    if (len == 0 || len > 255)
        return PPX_EINVAL;
    pthread_mutex_lock(&mu);
    int rc = 0;
    if (atomic_load(&frozen)) {
        rc = PPX_EFROZEN;
    } else if ((count + 1) * 2 > cap && (rc = grow()) == 0) {
        ;
    }
    if (rc == 0) {
        ppx__entry *e = probe(table, cap, name, len);
        if (e->name) {
            rc = PPX_EEXIST;
        } else {
            char *copy = malloc(len + 1);
            if (!copy) {
                rc = PPX_ENOMEM;
            } else {
                memcpy(copy, name, len + 1);
                *e = (ppx__entry){copy, len, fn, udata};
                count++;
            }
        }
    }
    pthread_mutex_unlock(&mu);
    return rc;
}

/* The entry found last. Calls mostly repeat a name, and after the freeze
 * entries never move, so it is checked first; any thread may replace it.
 * Release and acquire: a thread that reads the pointer also sees the
 * entry, written before the freeze that the storing thread saw. */
static _Atomic(const ppx__entry *) last_hit;

const ppx__entry *ppx__registry_find(const char *name, size_t len)
{
    const ppx__entry *e = atomic_load_explicit(&last_hit, memory_order_acquire);
    if (e && e->len == len && memcmp(e->name, name, len) == 0)
        return e;
    if (!cap)
        return NULL;
    e = probe(table, cap, name, len);
    if (!e->name)
        return NULL;
    if (atomic_load_explicit(&frozen, memory_order_acquire))
        atomic_store_explicit(&last_hit, e, memory_order_release);
    return e;
}

void ppx__registry_freeze(void)
{
    pthread_mutex_lock(&mu);
    atomic_store(&frozen, true);
    pthread_mutex_unlock(&mu);
}
