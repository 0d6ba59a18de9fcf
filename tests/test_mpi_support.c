#include "test_mpi_support.h"

#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

int support_capture_stderr(char *path, size_t cap)
{
    snprintf(path, cap, "/tmp/ppx-mpi-stderr-XXXXXX");
    int fd = mkstemp(path);
    if (fd < 0)
        return -1;
    fflush(stderr);
    int saved = dup(2);
    if (saved < 0 || dup2(fd, 2) < 0) {
        if (saved >= 0)
            close(saved);
        close(fd);
        return -1;
    }
    close(fd);
    return saved;
}

void support_restore_stderr(int saved)
{
    if (saved < 0)
        return;
    fflush(stderr);
    dup2(saved, 2);
    close(saved);
}

long support_read_file(const char *path, char *buf, size_t cap)
{
    FILE *f = fopen(path, "r");
    if (!f)
        return -1;
    size_t n = fread(buf, 1, cap - 1, f);
    fclose(f);
    buf[n] = 0;
    return (long)n;
}

void support_mpi_status(int failed)
{
    const char *path = getenv("PPX_TEST_STATUS");
    if (!path || !*path)
        return;
    FILE *f = fopen(path, "w");
    if (f) {
        fprintf(f, "%d", failed ? 1 : 0);
        fclose(f);
    }
}

static void marker_path(char *path, size_t cap, const char *dir, const char *name)
{
    snprintf(path, cap, "%s/%s", dir, name);
}

void support_marker_write(const char *dir, const char *name, const char *what)
{
    /* Written aside, then renamed: whoever sees the marker reads it whole. */
    char path[160], tmp[200];
    marker_path(path, sizeof path, dir, name);
    snprintf(tmp, sizeof tmp, "%s.%ld.tmp", path, (long)getpid());
    FILE *f = fopen(tmp, "w");
    if (f) {
        fprintf(f, "%s %ld\n", what, (long)getpid());
        fclose(f);
        rename(tmp, path);
    }
}

bool support_marker_exists(const char *dir, const char *name)
{
    char path[160];
    struct stat st;
    marker_path(path, sizeof path, dir, name);
    return stat(path, &st) == 0;
}

long support_marker_pid(const char *dir, const char *name)
{
    char path[160], word[16];
    long pid = 0;
    marker_path(path, sizeof path, dir, name);
    FILE *f = fopen(path, "r");
    if (f) {
        if (fscanf(f, "%15s %ld", word, &pid) != 2)
            pid = 0;
        fclose(f);
    }
    return pid;
}

bool support_marker_wait(const char *dir, const char *name, int timeout_ms)
{
    struct timespec t0, t;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    for (;;) {
        if (support_marker_exists(dir, name))
            return true;
        clock_gettime(CLOCK_MONOTONIC, &t);
        if ((t.tv_sec - t0.tv_sec) * 1000 + (t.tv_nsec - t0.tv_nsec) / 1000000 > timeout_ms)
            return false;
        usleep(5000);
    }
}
