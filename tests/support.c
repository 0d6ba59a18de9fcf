#include "support.h"
#include "ppx.h"

#include <dirent.h>
#include <errno.h>
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

bool support_process_gone(long pid)
{
    if (kill((pid_t)pid, 0) != 0 && errno == ESRCH)
        return true;
    char path[64], buf[512];
    snprintf(path, sizeof path, "/proc/%ld/stat", pid);
    FILE *f = fopen(path, "r");
    if (!f)
        return true;
    size_t n = fread(buf, 1, sizeof buf - 1, f);
    fclose(f);
    buf[n] = '\0';
    const char *paren = strrchr(buf, ')'); /* the name may hold spaces */
    return !paren || paren[1] == '\0' || paren[2] == 'Z' || paren[2] == 'X';
}

void support_wait_gone(long pid, int timeout_ms)
{
    int64_t end = support_now_ms() + timeout_ms;
    while (!support_process_gone(pid)) {
        if (support_now_ms() >= end)
            fail_msg("process %ld still runs after %d ms", pid, timeout_ms);
        support_sleep_ms(10);
    }
}
