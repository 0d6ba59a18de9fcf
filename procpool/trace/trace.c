/*
 * The trace file's writer (see trace.h). Each event is formatted straight
 * into the buffer, which always keeps EVENT_MAX bytes free for the next
 * one: the longest event holds two names of at most 255 bytes, each of
 * which escapes to at most 6 bytes per byte.
 *
 * Strings are escaped so the file is valid JSON whatever a function name
 * or a worker's error type holds: quotes, backslashes and control bytes
 * as JSON escapes, and bytes of 0x7f and above as \u00XX (read as
 * Latin-1), so an invalid UTF-8 sequence cannot make the file unreadable.
 */
#include "trace.h"
#include "procpool/errors.h"
#include "procpool/fork.h"
#include "procpool/util/clock.h"
#include "ppx.h"
#include "serialize/envelope.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define BUF_BYTES (64 * 1024)
#define EVENT_MAX 8192
#define FLUSH_NS 1000000000LL

struct ppx__trace {
    int fd;
    bool broken;    /* a write failed: events are dropped from then on */
    long pid;       /* the parent's, the trace's one process */
    int nworkers;
    bool *named;    /* per worker: its track has a name */
    int64_t t0;
    int64_t flushed_at;
    size_t len;
    char buf[BUF_BYTES];
};

static _Atomic unsigned traces_opened;

/* ---- the buffer ---------------------------------------------------- */

void ppx__trace_flush(ppx__trace *t)
{
    size_t off = 0;
    while (off < t->len && !t->broken) {
        ssize_t n = write(t->fd, t->buf + off, t->len - off);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            t->broken = true;
        else
            off += (size_t)n;
    }
    t->len = 0;
    t->flushed_at = ppx__now_ns();
}

static void put(ppx__trace *t, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void put(ppx__trace *t, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(t->buf + t->len, sizeof t->buf - t->len, fmt, ap);
    va_end(ap);
    if (n > 0)
        t->len += (size_t)n < sizeof t->buf - t->len ? (size_t)n : sizeof t->buf - t->len - 1;
}

/* s (len bytes, or up to its NUL when len is SIZE_MAX) as a JSON string. */
static void put_str(ppx__trace *t, const char *s, size_t len)
{
    static const char hex[] = "0123456789abcdef";
    if (len == SIZE_MAX)
        len = strlen(s);
    if (len > PPX__NAME_MAX)
        len = PPX__NAME_MAX;
    char *o = t->buf + t->len;
    *o++ = '"';
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c == '"' || c == '\\') {
            *o++ = '\\';
            *o++ = (char)c;
        } else if (c < 0x20 || c >= 0x7f) {
            memcpy(o, "\\u00", 4);
            o[4] = hex[c >> 4];
            o[5] = hex[c & 15];
            o += 6;
        } else {
            *o++ = (char)c;
        }
    }
    *o++ = '"';
    t->len = (size_t)(o - t->buf);
}

/* Opens an event: the separator, and room for it. */
static void begin(ppx__trace *t)
{
    if (sizeof t->buf - t->len < EVENT_MAX)
        ppx__trace_flush(t);
    put(t, ",\n");
}

static void end(ppx__trace *t)
{
    if (ppx__now_ns() - t->flushed_at > FLUSH_NS)
        ppx__trace_flush(t);
}

/* Microseconds since t0, to the nanosecond. */
static void put_ts(ppx__trace *t, const char *key, int64_t ns, bool relative)
{
    if (relative)
        ns -= t->t0;
    if (ns < 0)
        ns = 0;
    put(t, ",\"%s\":%" PRId64 ".%03d", key, ns / 1000, (int)(ns % 1000));
}

static void put_head(ppx__trace *t, const char *ph, int tid, int64_t ts)
{
    put(t, "{\"ph\":\"%s\",\"cat\":\"ppx\",\"pid\":%ld,\"tid\":%d", ph, t->pid, tid);
    put_ts(t, "ts", ts, true);
}

static void put_meta(ppx__trace *t, const char *name, int tid, const char *key,
                     const char *value, int number)
{
    begin(t);
    put(t, "{\"ph\":\"M\",\"name\":\"%s\",\"pid\":%ld,\"tid\":%d,\"args\":{\"%s\":", name,
        t->pid, tid, key);
    if (value)
        put_str(t, value, SIZE_MAX);
    else
        put(t, "%d", number);
    put(t, "}}");
}

/* ---- opening and closing --------------------------------------------- */

/* The file name: pattern with %p, %n and %% replaced. */
static int expand(char *out, size_t n, const char *pattern, long pid, unsigned seq)
{
    size_t o = 0;
    for (const char *s = pattern; *s; s++) {
        char num[32];
        const char *add = num;
        if (s[0] == '%' && s[1] == 'p') {
            snprintf(num, sizeof num, "%ld", pid);
            s++;
        } else if (s[0] == '%' && s[1] == 'n') {
            snprintf(num, sizeof num, "%u", seq);
            s++;
        } else if (s[0] == '%' && s[1] == '%') {
            add = "%";
            s++;
        } else {
            num[0] = *s;
            num[1] = '\0';
        }
        size_t len = strlen(add);
        if (o + len >= n)
            return -ENAMETOOLONG;
        memcpy(out + o, add, len);
        o += len;
    }
    out[o] = '\0';
    return 0;
}

int ppx__trace_open(ppx__trace **out, const char *path, long pid, int nworkers, int64_t t0)
{
    *out = NULL;
    if (!path || !*path)
        path = secure_getenv("PPX_TRACE");
    if (!path || !*path)
        return 0;
    unsigned seq = atomic_fetch_add(&traces_opened, 1) + 1;
    char name[PATH_MAX];
    int rc = expand(name, sizeof name, path, pid, seq);
    if (rc) {
        ppx__set_last_error("trace file name too long: %s", path);
        return rc;
    }
    ppx__trace *t = calloc(1, sizeof *t);
    bool *named = calloc((size_t)nworkers, sizeof *named);
    if (!t || !named) {
        free(t);
        free(named);
        return PPX_ENOMEM;
    }
    /* Tracked (fork.h): a fork's copy must never write the creator's file. */
    ppx__fork_hold();
    t->fd = open(name, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0666);
    rc = t->fd < 0 ? -errno : ppx__fork_track(t->fd, PPX__FORK_CLOSE);
    ppx__fork_release();
    if (rc) {
        if (t->fd >= 0)
            close(t->fd);
        ppx__set_last_error("cannot open the trace file %s: %s", name, ppx_strerror(rc));
        free(t);
        free(named);
        return rc;
    }
    t->pid = pid;
    t->nworkers = nworkers;
    t->named = named;
    t->t0 = t0;
    t->flushed_at = t0;
    char labels[96];
    snprintf(labels, sizeof labels, "ppx %s, %d workers", ppx_version(), nworkers);
    put(t, "[\n");
    put(t, "{\"ph\":\"M\",\"name\":\"process_name\",\"pid\":%ld,\"tid\":0,"
           "\"args\":{\"name\":\"ppx pool\"}}", pid);
    put_meta(t, "process_labels", 0, "labels", labels, 0);
    put_meta(t, "thread_name", 0, "name", "pool (parent)", 0);
    put_meta(t, "thread_sort_index", 0, "sort_index", NULL, 0);
    *out = t;
    return 0;
}

void ppx__trace_close(ppx__trace *t)
{
    if (!t)
        return;
    put(t, "\n]\n");
    ppx__trace_flush(t);
    ppx__fork_close(t->fd);
    free(t->named);
    free(t);
}

void ppx__trace_discard(ppx__trace *t)
{
    if (!t)
        return;
    free(t->named);
    free(t);
}

/* ---- events ---------------------------------------------------------- */

void ppx__trace_worker(ppx__trace *t, int i, long pid, int64_t now)
{
    if (i < 0 || i >= t->nworkers)
        return;
    if (!t->named[i]) {
        char name[64];
        snprintf(name, sizeof name, "worker %d (pid %ld)", i, pid);
        put_meta(t, "thread_name", i + 1, "name", name, 0);
        put_meta(t, "thread_sort_index", i + 1, "sort_index", NULL, i + 1);
        t->named[i] = true;
    } else {
        begin(t);
        put_head(t, "I", i + 1, now);
        put(t, ",\"s\":\"t\",\"name\":\"worker restarted\",\"args\":{\"worker_pid\":%ld}}", pid);
    }
    end(t);
}

void ppx__trace_submit(ppx__trace *t, uint64_t task, const char *fn, int64_t begin_ns,
                       int64_t end_ns)
{
    begin(t);
    put_head(t, "X", 0, begin_ns);
    put_ts(t, "dur", end_ns - begin_ns, false);
    put(t, ",\"name\":\"submit\",\"args\":{\"task\":%" PRIu64 ",\"fn\":", task);
    put_str(t, fn, SIZE_MAX);
    put(t, "}}");
    /* The flow starts on the submit slice (same cat, tid and ts). */
    begin(t);
    put_head(t, "s", 0, begin_ns);
    put(t, ",\"name\":\"task\",\"id\":%" PRIu64 "}", task);
    end(t);
}

void ppx__trace_call_done(ppx__trace *t, const ppx__trace_call *c)
{
    int tid = c->worker + 1;
    begin(t);
    put_head(t, "X", tid, c->started);
    put_ts(t, "dur", c->ended - c->started, false);
    put(t, ",\"name\":");
    put_str(t, c->fn, SIZE_MAX);
    put(t, ",\"args\":{\"task\":%" PRIu64 ",\"outcome\":\"%s\"", c->task, c->outcome);
    if (c->pid > 0)
        put(t, ",\"worker_pid\":%ld", c->pid);
    if (c->error) {
        put(t, ",\"error\":");
        put_str(t, c->error, c->error_len);
    }
    if (c->submitted)
        put_ts(t, "wait_us", c->started - c->submitted, false);
    if (c->batch)
        put(t, ",\"batch\":true");
    if (c->worker_died)
        put(t, ",\"worker_died\":true");
    put(t, "}}");
    if (c->submitted) {
        /* The flow ends on this slice ("bp":"e": the enclosing one). */
        begin(t);
        put_head(t, "f", tid, c->started);
        put(t, ",\"bp\":\"e\",\"name\":\"task\",\"id\":%" PRIu64 "}", c->task);
    }
    end(t);
}

void ppx__trace_mark_add(ppx__trace *t, const ppx__trace_mark *m)
{
    begin(t);
    put_head(t, "I", 0, m->at);
    put(t, ",\"s\":\"t\",\"name\":\"%s\",\"args\":{\"task\":%" PRIu64 ",\"fn\":", m->what,
        m->task);
    put_str(t, m->fn ? m->fn : "", SIZE_MAX);
    if (m->from >= 0)
        put(t, ",\"from_worker\":%d", m->from);
    if (m->to >= 0)
        put(t, ",\"to_worker\":%d", m->to);
    if (m->error) {
        put(t, ",\"error\":");
        put_str(t, m->error, SIZE_MAX);
    }
    put(t, "}}");
    end(t);
}
