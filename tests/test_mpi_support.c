#include "test_mpi_support.h"

#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
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
