/*
 * A task group in the spirit of asyncio.TaskGroup and Trio's nurseries:
 * tasks are added over time; the first one that fails cancels the others
 * (and any added later); once closed, the group settles when every task
 * has ended: DONE with the number of tasks, or FAILED with the first error.
 * A task cancelled from outside the group ends without failing it.
 * Every task that fails while the group is pending is kept, in the order
 * they failed, like the exceptions of asyncio's ExceptionGroup.
 *
 * The group keeps a reference to each task only while it runs: a task
 * that ends leaves the set (swap-remove through its link), so a
 * long-lived group holds memory for what is running, not what ran.
 */
#include "awaitable.h"
#include "../procpool/util/grow.h"
#include "children.h"

#include <stdlib.h>

typedef struct member {
    ppx_awaitable *group;
    ppx_awaitable *task;
    size_t idx; /* in running[] */
} member;

typedef struct group {
    member **running;
    size_t nrunning, cap;
    uint64_t added;
    bool closed;
    bool failed;    /* a task failed or the group was cancelled */
    /* The tasks that failed, each held for its error's strings (the
     * first's are also err's). capfailed stays at least nfailed +
     * nrunning, so a failure never needs memory it may not get. */
    ppx_awaitable **failed_tasks;
    size_t nfailed, capfailed;
    ppx_error err; /* the group's, once it failed or was cancelled */
} group;

static void cancel_running(group *g)
{
    /* Cancelling settles a task at once, and its callback takes it out of
     * running[] (and may take others, if tasks wrap each other): cancel
     * from a snapshot, holding each task until its turn. */
    size_t n = g->nrunning;
    ppx_awaitable **snap = malloc((n ? n : 1) * sizeof *snap);
    if (!snap) {
        for (size_t k = g->nrunning; k-- > 0;)
            if (k < g->nrunning)
                ppx_awaitable_cancel(g->running[k]->task);
        return;
    }
    for (size_t k = 0; k < n; k++) {
        snap[k] = g->running[k]->task;
        ppx_awaitable_ref(snap[k]);
    }
    for (size_t k = 0; k < n; k++) {
        if (!ppx_awaitable_done(snap[k]))
            ppx_awaitable_cancel(snap[k]);
        ppx_awaitable_unref(snap[k]);
    }
    free(snap);
}

static void maybe_settle(ppx_awaitable *aw)
{
    group *g = aw->impl;
    if (aw->state == PPX_PENDING && g->closed && g->nrunning == 0) {
        if (g->failed)
            ppx__awaitable_settle(aw, PPX_FAILED, &g->err);
        else
            ppx__awaitable_settle_uint(aw, g->added);
    }
}

static void on_task(ppx_awaitable *task, void *arg)
{
    member *m = arg;
    ppx_awaitable *aw = m->group;
    group *g = aw->impl;
    g->running[m->idx] = g->running[--g->nrunning];
    g->running[m->idx]->idx = m->idx;
    /* As in asyncio: a task cancelled from outside, or by the group, does
     * not fail the group. */
    if (ppx_awaitable_state(task) == PPX_FAILED && aw->state == PPX_PENDING) {
        ppx_awaitable_ref(task);
        g->failed_tasks[g->nfailed++] = task;
        if (!g->failed) {
            g->failed = true;
            g->err = *ppx_awaitable_error(task);
            cancel_running(g);
        }
    }
    ppx__progress(aw, (size_t)(g->added - g->nrunning), (size_t)g->added);
    maybe_settle(aw);
    ppx_awaitable_unref(task);
    free(m);
    ppx_awaitable_unref(aw); /* this task's callback reference */
}

static void cancel(ppx_awaitable *aw)
{
    group *g = aw->impl;
    g->failed = g->closed = true;
    g->err = (ppx_error){"CancelledError", "the task group was cancelled", "", "", 0, 0, ""};
    ppx__awaitable_settle(aw, PPX_CANCELLED, &g->err);
    cancel_running(g);
}

static void release(ppx_awaitable *aw)
{
    group *g = aw->impl;
    for (size_t i = 0; i < g->nfailed; i++)
        ppx_awaitable_unref(g->failed_tasks[i]);
    free(g->failed_tasks);
    free(g->running); /* empty: every task's callback held a reference */
    free(g);
}

static const ppx__aw_ops group_ops = {cancel, NULL, release, NULL, true};

static group *group_of(const ppx_awaitable *aw)
{
    return ppx__awaitable_live(aw) && aw->ops == &group_ops ? aw->impl : NULL;
}

int ppx_task_group(uv_loop_t *loop, ppx_awaitable **out)
{
    if (!loop || !out)
        return PPX_EINVAL;
    group *g = calloc(1, sizeof *g);
    ppx_awaitable *aw = g ? ppx__awaitable_new(loop, &group_ops, g) : NULL;
    if (!aw) {
        free(g);
        return PPX_ENOMEM;
    }
    *out = aw;
    return 0;
}

/* Room for one more running task, and for its failure. */
static int make_room(group *g)
{
    if (g->nrunning == g->cap &&
        ppx__grow((void **)&g->running, &g->cap, 8, sizeof *g->running))
        return PPX_ENOMEM;
    if (g->nfailed + g->nrunning == g->capfailed &&
        ppx__grow((void **)&g->failed_tasks, &g->capfailed, 8, sizeof *g->failed_tasks))
        return PPX_ENOMEM;
    return 0;
}

int ppx_task_group_add(ppx_awaitable *aw, ppx_awaitable *task)
{
    group *g = group_of(aw);
    if (!g || !ppx__awaitable_live(task))
        return PPX_EBADOBJ;
    int rc = ppx__check_children(aw->loop, &task, 1, "ppx_task_group_add");
    if (rc)
        return rc;
    /* As asyncio's create_task: closed (the body has ended) still takes
     * tasks, from a done callback say, until the group has settled. */
    if (aw->state != PPX_PENDING)
        return PPX_ECLOSED;
    if (g->failed) {
        ppx_awaitable_cancel(task); /* the group is going down: so is it */
        return PPX_ECANCELED;
    }
    if (make_room(g))
        return PPX_ENOMEM;
    member *m = malloc(sizeof *m);
    if (!m)
        return PPX_ENOMEM;
    *m = (member){aw, task, g->nrunning};
    g->running[g->nrunning++] = m;
    g->added++;
    ppx_awaitable_ref(task);
    ppx_awaitable_ref(aw);
    if (ppx_awaitable_add_done_callback(task, on_task, m)) {
        /* Counting it as ended would let the group settle while it runs:
         * it is not added (nothing ran, so m is still the last one). */
        g->nrunning--;
        g->added--;
        free(m);
        ppx_awaitable_unref(task);
        ppx_awaitable_unref(aw);
        return PPX_ENOMEM;
    }
    return 0;
}

size_t ppx_task_group_error_count(const ppx_awaitable *aw)
{
    const group *g = group_of(aw);
    return g ? g->nfailed : 0;
}

const ppx_error *ppx_task_group_error_at(const ppx_awaitable *aw, size_t i)
{
    const group *g = group_of(aw);
    return g && i < g->nfailed ? ppx_awaitable_error(g->failed_tasks[i]) : NULL;
}

int ppx_task_group_close(ppx_awaitable *aw)
{
    group *g = group_of(aw);
    if (!g)
        return PPX_EBADOBJ;
    if (g->closed)
        return aw->state == PPX_PENDING ? 0 : PPX_EDONE;
    g->closed = true;
    maybe_settle(aw);
    return 0;
}
