/*
 * Awaitables the user resolves, like asyncio's loop.create_future() with
 * set_result and set_exception: the bridge that turns a callback- or
 * thread-based source into an awaitable.
 *
 * Any thread may decide the outcome. The first of set_result, set_error
 * and cancel to claim the awaitable (an atomic flag, the only field other
 * threads write before handing it over) decides; the others get
 * PPX_EDONE. On the loop's thread the awaitable settles at once; on
 * another, the claimer writes the outcome into the awaitable's impl and
 * pushes it on its loop's hub, whose uv_async wakes the loop's thread,
 * which settles it (as binding.c hands over futures other threads
 * resolved). A cancel that finds the outcome already claimed elsewhere
 * leaves it to arrive and gives PPX_EDONE (awaitable.c).
 *
 * A hub is one per loop with user awaitables pending: its uv_async is
 * open, and so keeps uv_run going, exactly while one of them is pending
 * (another thread may still resolve it), and closes when the last one
 * settles, so nothing of it is left at uv_loop_close.
 */
#include "awaitable.h"
#include "../serialize/mpread.h"

#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

typedef struct user_fut user_fut;

typedef struct hub {
    uv_loop_t *loop;
    uv_async_t async;
    uv_thread_t thread; /* the loop's: the one that made the hub */
    size_t pending;     /* user awaitables pending here; loop thread only */
    /* Guards cross. Claimers push and send under it, so once the loop's
     * thread has taken an awaitable from cross, no thread touches the
     * hub for it any more, and the hub may close. */
    pthread_mutex_t mu;
    user_fut *cross;
    struct hub *next;
} hub;

struct user_fut {
    ppx_awaitable *aw;
    hub *h;
    atomic_bool claimed;
    /* The outcome, written by the claimer alone, read on the loop's
     * thread once it has the awaitable (after the hub's lock when it came
     * from another thread). */
    ppx_state outcome;
    unsigned char *value;
    size_t value_len;
    ppx_error err;
    char *err_mem; /* err's type and message */
    user_fut *next; /* on h->cross */
};

static const ppx_error user_cancelled = {
    "CancelledError", "the awaitable was cancelled", "", "", 0, 0, "",
};

/* Only loops' threads use the list, each for its own loop's hub; the
 * lock is for several loops on several threads. */
static hub *hubs;
static pthread_mutex_t hubs_mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_once_t atfork_once = PTHREAD_ONCE_INIT;

/* As binding.c does for its locks: the child has one thread, which runs
 * the loops it inherited, and no thread that could hold these. */
static void fresh_locks_in_child(void)
{
    pthread_mutex_init(&hubs_mu, NULL);
    for (hub *h = hubs; h; h = h->next) {
        pthread_mutex_init(&h->mu, NULL);
        h->thread = uv_thread_self();
    }
}

static void install_atfork(void)
{
    pthread_atfork(NULL, NULL, fresh_locks_in_child);
}

static void hub_closed(uv_handle_t *a)
{
    hub *h = a->data;
    pthread_mutex_destroy(&h->mu);
    free(h);
}

static void settle(user_fut *u);

/* Settles what other threads handed over, in the order they did. */
static void on_async(uv_async_t *a)
{
    hub *h = a->data;
    pthread_mutex_lock(&h->mu);
    user_fut *list = h->cross;
    h->cross = NULL;
    pthread_mutex_unlock(&h->mu);
    user_fut *fifo = NULL;
    while (list) {
        user_fut *u = list;
        list = u->next;
        u->next = fifo;
        fifo = u;
    }
    /* Each is pending, so the hub stays open until the last. */
    while (fifo) {
        user_fut *u = fifo;
        fifo = u->next;
        settle(u);
    }
}

/* loop's hub, made on first use, with one more pending awaitable on it.
 * NULL on ENOMEM or when libuv refuses the handle (*rc says which). */
static hub *hub_join(uv_loop_t *loop, int *rc)
{
    pthread_once(&atfork_once, install_atfork);
    pthread_mutex_lock(&hubs_mu);
    hub *h = hubs;
    while (h && h->loop != loop)
        h = h->next;
    pthread_mutex_unlock(&hubs_mu);
    if (!h) {
        h = calloc(1, sizeof *h);
        if (!h) {
            *rc = PPX_ENOMEM;
            return NULL;
        }
        *rc = uv_async_init(loop, &h->async, on_async);
        if (*rc) {
            free(h);
            return NULL;
        }
        h->async.data = h;
        h->loop = loop;
        h->thread = uv_thread_self();
        pthread_mutex_init(&h->mu, NULL);
        pthread_mutex_lock(&hubs_mu);
        h->next = hubs;
        hubs = h;
        pthread_mutex_unlock(&hubs_mu);
    }
    h->pending++;
    return h;
}

/* One pending awaitable fewer; the last closes the hub (a later one on
 * this loop makes a new hub). */
static void hub_leave(hub *h)
{
    if (--h->pending > 0)
        return;
    pthread_mutex_lock(&hubs_mu);
    for (hub **pp = &hubs; *pp; pp = &(*pp)->next) {
        if (*pp == h) {
            *pp = h->next;
            break;
        }
    }
    pthread_mutex_unlock(&hubs_mu);
    uv_close((uv_handle_t *)&h->async, hub_closed);
}

/* On the loop's thread, with the outcome claimed and written. */
static void settle(user_fut *u)
{
    ppx_awaitable *aw = u->aw;
    hub *h = u->h; /* u may go with aw's last reference, in a callback */
    if (u->outcome == PPX_DONE) {
        aw->value = u->value;
        aw->value_len = u->value_len;
        u->value = NULL;
        ppx__awaitable_settle(aw, PPX_DONE, NULL);
    } else {
        ppx__awaitable_settle(aw, u->outcome, &u->err); /* u goes with aw */
    }
    /* After the callbacks: one that makes another user awaitable on this
     * loop reuses the hub. */
    hub_leave(h);
}

static bool claim(user_fut *u)
{
    return !atomic_exchange_explicit(&u->claimed, true, memory_order_acq_rel);
}

/* With the outcome claimed and written: settles it here on the loop's
 * thread, else hands it to that thread. */
static void decide(user_fut *u)
{
    hub *h = u->h;
    uv_thread_t self = uv_thread_self();
    if (uv_thread_equal(&h->thread, &self)) {
        settle(u);
        return;
    }
    pthread_mutex_lock(&h->mu);
    u->next = h->cross;
    h->cross = u;
    uv_async_send(&h->async);
    pthread_mutex_unlock(&h->mu);
}

/* ppx_awaitable_cancel, on the loop's thread. */
static void cancel(ppx_awaitable *aw)
{
    user_fut *u = aw->impl;
    if (!claim(u))
        return; /* another thread's outcome is on its way: PPX_EDONE */
    u->outcome = PPX_CANCELLED;
    u->err = user_cancelled;
    settle(u);
}

static void release(ppx_awaitable *aw)
{
    user_fut *u = aw->impl;
    free(u->value);
    free(u->err_mem);
    free(u);
}

static const ppx__aw_ops user_ops = {cancel, NULL, release, NULL, false};

int ppx_awaitable_create(uv_loop_t *loop, ppx_awaitable **out)
{
    if (!loop || !out)
        return PPX_EINVAL;
    user_fut *u = calloc(1, sizeof *u);
    ppx_awaitable *aw = u ? ppx__awaitable_new(loop, &user_ops, u) : NULL;
    if (!aw) {
        free(u);
        return PPX_ENOMEM;
    }
    int rc = 0;
    u->h = hub_join(loop, &rc);
    if (!u->h) {
        free(aw);
        free(u);
        return rc;
    }
    u->aw = aw;
    atomic_init(&u->claimed, false);
    *out = aw;
    return 0;
}

/* aw's impl if aw is a user awaitable. magic and ops are set before aw
 * is handed to anyone and stay until its last unref. */
static int user_of(ppx_awaitable *aw, user_fut **u)
{
    if (!ppx__awaitable_live(aw))
        return PPX_EBADOBJ;
    if (aw->ops != &user_ops)
        return PPX_EINVAL;
    *u = aw->impl;
    /* An early answer, before copying anything; claim() decides. */
    return atomic_load_explicit(&(*u)->claimed, memory_order_acquire) ? PPX_EDONE : 0;
}

int ppx_awaitable_set_result(ppx_awaitable *aw, const void *msgpack, size_t len)
{
    user_fut *u;
    int rc = user_of(aw, &u);
    if (rc)
        return rc;
    if (len > 0 && !msgpack)
        return PPX_EINVAL;
    if (len > 0 && (rc = ppx__mp_check_one(msgpack, len)))
        return rc;
    unsigned char *v = malloc(len > 0 ? len : 1);
    if (!v)
        return PPX_ENOMEM;
    if (len > 0) {
        memcpy(v, msgpack, len);
    } else {
        v[0] = 0xc0; /* nil */
        len = 1;
    }
    if (!claim(u)) {
        free(v);
        return PPX_EDONE;
    }
    u->outcome = PPX_DONE;
    u->value = v;
    u->value_len = len;
    decide(u);
    return 0;
}

int ppx_awaitable_set_error(ppx_awaitable *aw, const char *type, const char *message)
{
    user_fut *u;
    int rc = user_of(aw, &u);
    if (rc)
        return rc;
    type = type && *type ? type : "Error";
    message = message ? message : "";
    size_t lt = strlen(type) + 1, lm = strlen(message) + 1;
    char *mem = malloc(lt + lm); /* one block: one allocation to fail */
    if (!mem)
        return PPX_ENOMEM;
    memcpy(mem, type, lt);
    memcpy(mem + lt, message, lm);
    if (!claim(u)) {
        free(mem);
        return PPX_EDONE;
    }
    u->outcome = PPX_FAILED;
    u->err_mem = mem;
    u->err = (ppx_error){mem, mem + lt, "", "", 0, 0, ""};
    decide(u);
    return 0;
}
