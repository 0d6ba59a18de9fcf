#include "support.h"
#include "ppx.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

/* Entries of a directory, "." and ".." aside; -1 if it cannot be read. */
static int count_entries(const char *path)
{
    DIR *d = opendir(path);
    if (!d)
        return -1;
    int n = 0;
    struct dirent *e;
    while ((e = readdir(d)))
        n += e->d_name[0] != '.';
    closedir(d);
    return n;
}

int support_open_fds(void)
{
    int n = count_entries("/proc/self/fd");
    return n < 0 ? n : n - 1; /* the DIR's own fd */
}

bool support_no_children(void)
{
    return waitpid(-1, NULL, WNOHANG) == -1 && errno == ECHILD;
}

uint64_t support_xorshift(uint64_t *s)
{
    uint64_t x = *s;
    x ^= x >> 12;
    x ^= x << 25;
    x ^= x >> 27;
    *s = x;
    return x * 0x2545f4914f6cdd1dull;
}

int support_children_alive(void)
{
    char path[64];
    snprintf(path, sizeof path, "/proc/self/task/%d/children", (int)getpid());
    FILE *f = fopen(path, "r");
    if (!f)
        return -1;
    int n = 0, pid;
    while (fscanf(f, "%d", &pid) == 1)
        n++;
    fclose(f);
    return n;
}

int support_dev_shm_entries(void)
{
    return count_entries("/dev/shm");
}

int64_t support_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

void support_drain(ppx_pool *p, int timeout_ms)
{
    int64_t end = support_now_ms() + timeout_ms;
    while (ppx_pool_busy(p)) {
        assert_true(support_now_ms() < end);
        struct pollfd pf = {ppx_pool_fd(p), POLLIN, 0};
        poll(&pf, 1, 20);
        ppx_pool_process(p);
    }
}

long support_worker_pid(ppx_pool *p, int i)
{
    int64_t end = support_now_ms() + 30000;
    long pid;
    while ((pid = ppx_pool_worker_pid(p, i)) == 0) {
        assert_true(support_now_ms() < end);
        struct pollfd pf = {ppx_pool_fd(p), POLLIN, 0};
        poll(&pf, 1, 20);
        ppx_pool_process(p);
    }
    return pid;
}

void support_wait_running(ppx_future *f)
{
    int64_t end = support_now_ms() + 10000;
    while (ppx_future_state(f) != PPX_RUNNING) {
        assert_true(support_now_ms() < end);
        ppx_future_wait(f, 2);
    }
}

void support_sleep_ms(int64_t ms)
{
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

void support_wait_awaitable_running(ppx_awaitable *aw)
{
    int64_t end = support_now_ms() + 10000;
    while (ppx_awaitable_state(aw) != PPX_RUNNING) {
        assert_true(support_now_ms() < end);
        support_sleep_ms(1);
    }
}

static int child_report_fd = -1;

void support_child_report(int code)
{
    unsigned char b = (unsigned char)code;
    if (child_report_fd >= 0 && write(child_report_fd, &b, 1) == 1)
        child_report_fd = -1; /* one report per child */
}

int support_in_child(int (*fn)(void *), void *arg, int timeout_ms)
{
    int rep[2];
    if (pipe2(rep, O_CLOEXEC | O_NONBLOCK) != 0)
        return -1;
    fflush(NULL); /* else the child's exit() writes our buffers again */
    pid_t pid = fork();
    if (pid == 0) {
        close(rep[0]);
        child_report_fd = rep[1];
        int rc = fn(arg);
        support_child_report(rc);
        _exit(rc);
    }
    close(rep[1]);
    if (pid < 0) {
        close(rep[0]);
        return -1;
    }
    int64_t end = support_now_ms() + timeout_ms;
    int st = 0;
    pid_t r;
    while ((r = waitpid(pid, &st, WNOHANG)) == 0 && support_now_ms() < end)
        support_sleep_ms(2);
    if (r == 0) {
        kill(pid, SIGKILL);
        waitpid(pid, &st, 0);
    }
    unsigned char b;
    bool reported = read(rep[0], &b, 1) == 1;
    close(rep[0]);
    if (r == 0)
        return -1;
    if (reported) /* not the exit status: valgrind may replace it */
        return b;
    return WIFSIGNALED(st) ? -WTERMSIG(st) : 256;
}

/* What follows the command name in /proc/<pid>/stat (" S ppid ..."),
 * read into buf; NULL if the process is gone. */
static const char *stat_fields(long pid, char *buf, size_t len)
{
    char path[64];
    snprintf(path, sizeof path, "/proc/%ld/stat", pid);
    FILE *f = fopen(path, "r");
    if (!f)
        return NULL;
    size_t n = fread(buf, 1, len - 1, f);
    fclose(f);
    buf[n] = '\0';
    const char *paren = strrchr(buf, ')'); /* the name may hold spaces */
    return paren && paren[1] == ' ' ? paren + 1 : NULL;
}

/* A process that ended but was not reaped (its parent died, and a
 * container's init may never reap it) counts as gone. */
bool support_process_gone(long pid)
{
    if (kill((pid_t)pid, 0) != 0 && errno == ESRCH)
        return true;
    char buf[512];
    const char *f = stat_fields(pid, buf, sizeof buf);
    return !f || f[1] == 'Z' || f[1] == 'X';
}

bool support_pid_gone(long pid, int timeout_ms)
{
    int64_t end = support_now_ms() + timeout_ms;
    while (!support_process_gone(pid)) {
        if (support_now_ms() >= end)
            return false;
        support_sleep_ms(2);
    }
    return true;
}

long support_parent_of(long pid)
{
    char buf[512];
    const char *f = stat_fields(pid, buf, sizeof buf);
    long ppid = -1;
    char state;
    if (!f || sscanf(f, " %c %ld", &state, &ppid) != 2)
        return -1;
    return ppid;
}

void support_wait_gone(long pid, int timeout_ms)
{
    if (!support_pid_gone(pid, timeout_ms))
        fail_msg("process %ld still runs after %d ms", pid, timeout_ms);
}

int64_t support_future_int(ppx_future *f)
{
    int64_t v = 0;
    assert_int_equal(ppx_future_wait(f, 30000), 0);
    if (ppx_future_int(f, &v) != 0)
        fail_msg("expected a value, got %s: %s", ppx_future_error(f)->type,
                 ppx_future_error(f)->message);
    return v;
}

void support_valgrind_sizes(ppx_pool_options *o)
{
    const size_t cap = (size_t)16 << 20;
    if (!getenv("PPX_UNDER_VALGRIND"))
        return;
    if (o->arena_bytes == 0 && (o->max_payload == 0 || o->max_payload > cap / 2))
        o->arena_bytes = cap;
    if (o->outbox_bytes == 0)
        o->outbox_bytes = cap;
}
