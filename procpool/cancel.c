/*
 * The core's cancellation policy: how a task's future ends when the pool
 * stops it before its worker answers (cancelled, or timed out at its
 * deadline), and a task's memory. Backends call these under the pool
 * lock once they have taken the call out of their own structures; how a
 * call is actually stopped (a slot CAS, a flag and a kill, a message to
 * a node) is the backend's (local/timers.c, mpi/remote.c).
 */
#include "core.h"
#include "wire/frame.h"

#include <stdlib.h>

void ppx__frame_free(ppx_pool *p, unsigned char *frame, size_t cap)
{
    if (!p->ops->frame_free(p, frame, cap))
        ppx__bigbuf_free(frame, cap);
}

void ppx__task_free(ppx_pool *p, ppx__task *t)
{
    ppx__task_drop_bufs(t);
    if (t->frame != t->inline_frame)
        ppx__frame_free(p, t->frame, ppx__task_frame_cap(t));
    p->ntasks--;
    ppx__future_release(ppx__task_block(t), PPX__HALF_TASK);
}

bool ppx__task_stop_future(ppx_pool *p, ppx__task *t, bool timed_out, ppx__notify *n)
{
    ppx_future *f = ppx__task_fut(t);
    if (!f)
        return false;
    ppx__task_drop_fut(t);
    t->ended = timed_out ? PPX__ENDED_TIMED_OUT : PPX__ENDED_CANCELLED;
    p->unresolved--;
    if (timed_out) {
        p->stats.timed_out++;
        p->stats.failed++;
        ppx__future_failf(f, "TimeoutError", 0, n,
                          "%s (task %llu) did not finish within its %d ms deadline",
                          f->function, (unsigned long long)ppx__task_id(t), t->timeout_ms);
    } else {
        p->stats.cancelled++;
        ppx__future_cancelled(f, n);
    }
    return true;
}
