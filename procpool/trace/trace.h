/*
 * A pool's task trace: Chrome Trace Event Format JSON (the JSON Array
 * Format: "[", one event per line, "]"), which chrome://tracing and
 * https://ui.perfetto.dev open. See docs/TRACING.md for what it shows.
 *
 * One process ("ppx pool", the parent's pid) with one track per worker
 * (tid = worker index + 1) and the pool's own track (tid 0) for
 * submissions and for what happens to calls that never ran.
 *
 * The parent is the only writer: every function here runs under the
 * pool's lock. Events are formatted into a 64 KiB buffer and written
 * with write(2) when it fills, at least once a second while events come,
 * and at close, so memory stays bounded and a forked child that exits
 * never flushes a copy of the buffer. Timestamps are monotonic ns; the
 * file shows microseconds since the trace was opened. The writer knows
 * nothing of tasks and workers beyond the numbers it is given:
 * procpool/observe.c feeds it.
 */
#ifndef PPX_PROCPOOL_TRACE_H
#define PPX_PROCPOOL_TRACE_H
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct ppx__trace ppx__trace;

/*
 * Starts a trace if one is asked for: path when not NULL, else the
 * PPX_TRACE environment variable when set and not empty (ignored in
 * set-uid programs). In the name, "%p" becomes the process id, "%n" the
 * number of this trace in the process (1, 2, ...), "%%" a '%'. The file
 * is created or truncated. Returns 0 with *out NULL when nothing asks for
 * a trace, 0 with the trace, or -errno (-ENAMETOOLONG, open's errors,
 * -ENOMEM) with ppx_last_error() naming the file. t0 is the monotonic
 * time that becomes ts 0.
 */
int ppx__trace_open(ppx__trace **out, const char *path, long pid, int nworkers, int64_t t0);
/* Writes what is buffered now. */
void ppx__trace_flush(ppx__trace *t);
/* Ends the JSON array, writes what is buffered, closes the file and
 * frees t. NULL is fine. */
void ppx__trace_close(ppx__trace *t);
/* Frees t without writing: t is a fork's copy (fork.h), whose descriptor
 * the fork closed. NULL is fine. */
void ppx__trace_discard(ppx__trace *t);

/* Worker i has a new process: the first time, names its track
 * "worker i (pid P)"; later, marks the restart on it. */
void ppx__trace_worker(ppx__trace *t, int i, long pid, int64_t now);

/* A submission, as a short slice on the pool's track from begin to end,
 * with the start of a flow that ends on the call's slice. */
void ppx__trace_submit(ppx__trace *t, uint64_t task, const char *fn, int64_t begin,
                       int64_t end);

/* One call a worker ran: a slice on its track. */
typedef struct ppx__trace_call {
    uint64_t task;
    const char *fn;
    int worker;
    long pid;                 /* the worker process, 0 if gone */
    int64_t submitted;        /* 0 if unknown */
    int64_t started, ended;
    const char *outcome;      /* "done", "failed", "crashed", "cancelled", "timed_out" */
    const char *error;        /* the error's type, or NULL */
    size_t error_len;
    bool batch;               /* a ppx_pool_map frame */
    bool worker_died;         /* the call ended with its worker */
} ppx__trace_call;
void ppx__trace_call_done(ppx__trace *t, const ppx__trace_call *c);

/* Something the pool did to a call, as an instant on the pool's track:
 * "steal", "requeue", "cancelled", "timed_out", "failed". */
typedef struct ppx__trace_mark {
    const char *what;
    uint64_t task;
    const char *fn;
    int from, to;      /* worker indexes involved, -1 for none */
    const char *error; /* an error type, or NULL */
    int64_t at;
} ppx__trace_mark;
void ppx__trace_mark_add(ppx__trace *t, const ppx__trace_mark *m);

#endif
