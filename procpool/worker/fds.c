#include "fds.h"

#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <unistd.h>

unsigned ppx__fds_avoid;

/* The last resort closes at most this many numbers: a soft limit of a
 * billion would otherwise cost a billion system calls per fork. */
#define LOOP_MAX (1L << 20)

/* The kernel's record for getdents64 (glibc exports no type before 2.30). */
struct dirent64_rec {
    uint64_t ino;
    int64_t off;
    unsigned short reclen;
    unsigned char type;
    char name[];
};

static int parse_fd(const char *s)
{
    if (!*s)
        return -1;
    int v = 0;
    for (; *s; s++) {
        if (*s < '0' || *s > '9' || v > (INT32_MAX - 9) / 10)
            return -1;
        v = v * 10 + (*s - '0');
    }
    return v;
}

/* One pass over /proc/self/fd, closing what it lists from lowfd up: how
 * many it closed, or -1 when the directory cannot be read. Closing changes
 * the directory under the reader, so the caller passes again until a pass
 * closes nothing (as glibc's closefrom fallback does). */
static int proc_pass(int dir, int lowfd)
{
    /* 8-aligned: the records' 64-bit fields are read in place. */
    _Alignas(8) char buf[4096];
    int closed = 0;
    if (lseek(dir, 0, SEEK_SET) != 0)
        return -1;
    for (;;) {
        long n = syscall(SYS_getdents64, dir, buf, sizeof buf);
        if (n < 0)
            return -1;
        if (n == 0)
            return closed;
        for (long off = 0; off < n;) {
            const struct dirent64_rec *d = (const void *)(buf + off);
            off += d->reclen;
            int fd = parse_fd(d->name);
            /* Only a close that took counts as progress: a number the
             * kernel lists but refuses (valgrind keeps its own above
             * the limit it reports) would otherwise be read forever. */
            if (fd >= lowfd && fd != dir && (close(fd) == 0 || errno != EBADF))
                closed++;
        }
    }
}

static int close_by_proc(int lowfd)
{
    int dir = open("/proc/self/fd", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (dir < 0)
        return -1;
    int rc;
    while ((rc = proc_pass(dir, lowfd)) > 0)
        ;
    close(dir); /* skipped by the passes, even when in the range */
    return rc < 0 ? -1 : 0;
}

int ppx__close_from(int lowfd, unsigned avoid)
{
    if (lowfd < 0)
        lowfd = 0;
#ifdef SYS_close_range
    if (!(avoid & PPX__FDS_NO_CLOSE_RANGE) && syscall(SYS_close_range, lowfd, ~0U, 0) == 0)
        return 0;
#endif
    /* ENOSYS before Linux 5.9 (or a seccomp filter that refuses it). */
    if (!(avoid & PPX__FDS_NO_PROC) && close_by_proc(lowfd) == 0)
        return 1;
    /* No /proc (a chroot, a sandbox): every number the process may hold. */
    struct rlimit rl;
    long top = LOOP_MAX;
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < (rlim_t)LOOP_MAX)
        top = (long)rl.rlim_cur;
    for (long fd = lowfd; fd < top; fd++)
        close((int)fd);
    return 2;
}
