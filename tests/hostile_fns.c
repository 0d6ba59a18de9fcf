/* test_hostile.c's worker functions: scribbles on the shared memory a
 * worker can reach, exits with any status, closing every descriptor,
 * forking, stalling the outbox. */
#include "hostile_fns.h"
#include "support.h"
#include "ppx.h"
#include "procpool/wire/shared.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>

static int fn_add(ppx_call *c, void *u)
{
    (void)u;
    int64_t a, b;
    ppx_call_arg_int(c, 0, &a);
    ppx_call_arg_int(c, 1, &b);
    return ppx_return_int(c, a + b);
}

/* The pool's header, found among this process's shared mappings. */
static ppx__shared *find_header(void)
{
    FILE *maps = fopen("/proc/self/maps", "r");
    char line[512];
    ppx__shared *found = NULL;
    while (!found && maps && fgets(line, sizeof line, maps)) {
        unsigned long lo, hi;
        char perms[8];
        if (sscanf(line, "%lx-%lx %7s", &lo, &hi, perms) == 3 && perms[0] == 'r' &&
            perms[3] == 's' && ((ppx__shared *)lo)->magic == PPX__SHARED_MAGIC)
            found = (ppx__shared *)lo;
    }
    if (maps)
        fclose(maps);
    return found;
}

/* This worker's index: the one region it maps writable. */
static int own_index(ppx__shared *sh)
{
    FILE *maps = fopen("/proc/self/maps", "r");
    char line[512];
    int found = -1;
    while (found < 0 && maps && fgets(line, sizeof line, maps)) {
        unsigned long lo, hi;
        char perms[8];
        if (sscanf(line, "%lx-%lx %7s", &lo, &hi, perms) != 3 || perms[1] != 'w')
            continue;
        for (uint32_t i = 0; i < sh->nworkers; i++) {
            unsigned long r = (unsigned long)ppx__shared_region(sh, i);
            if (lo <= r && r < hi)
                found = (int)i;
        }
    }
    if (maps)
        fclose(maps);
    return found;
}

static void fill(void *dst, size_t n, int mode, uint64_t seed)
{
    unsigned char *d = dst;
    if (mode == MODE_ONES || mode == MODE_ZEROS) {
        memset(d, mode == MODE_ONES ? 0xff : 0, n);
        return;
    }
    uint64_t x = seed * 0x9e3779b97f4a7c15ull + 1;
    for (size_t i = 0; i < n; i++) {
        x ^= x << 13, x ^= x >> 7, x ^= x << 17;
        d[i] = (unsigned char)x;
    }
}

/* scribble(mode, part, seed): writes over that part, then returns its pid
 * (when the write did not fault). */
static int fn_scribble(ppx_call *c, void *u)
{
    (void)u;
    int64_t mode, part, seed;
    ppx_call_arg_int(c, 0, &mode);
    ppx_call_arg_int(c, 1, &part);
    ppx_call_arg_int(c, 2, &seed);
    ppx__shared *sh = find_header();
    int me = sh ? own_index(sh) : -1;
    if (me < 0)
        return ppx_raise(c, "LookupError", "no pool mapping found");
    char *own = ppx__shared_region(sh, (uint32_t)me);
    size_t outbox = sh->outbox_bytes > (1u << 20) ? (1u << 20) : sh->outbox_bytes;
    char *req = own + sh->block_bytes, *resp = req + sh->ring_stride;
    switch (part) {
    case PART_BLOCK: fill(own, sh->block_bytes, (int)mode, (uint64_t)seed); break;
    case PART_REQ: fill(req, sh->ring_stride, (int)mode, (uint64_t)seed); break;
    case PART_RESP: fill(resp, sh->ring_stride, (int)mode, (uint64_t)seed); break;
    case PART_OUTBOX: fill(resp + sh->ring_stride, outbox, (int)mode, (uint64_t)seed); break;
    case PART_OWN:
        fill(own, sh->block_bytes + 2 * sh->ring_stride + outbox, (int)mode, (uint64_t)seed);
        break;
    case PART_HEADER: fill(sh, sizeof *sh, (int)mode, (uint64_t)seed); break;
    case PART_OTHER:
        fill(ppx__shared_region(sh, (uint32_t)(me + 1) % sh->nworkers), 4096, (int)mode,
             (uint64_t)seed);
        break;
    case PART_ARENA: /* where other calls' big arguments lie */
        if (!sh->arena_bytes)
            return ppx_raise(c, "LookupError", "no arena");
        fill((char *)sh + sh->arena_off, 4096, (int)mode, (uint64_t)seed);
        break;
    }
    return ppx_return_int(c, getpid());
}

/* big_after_flag(set): with set, writes 1 over the word of its block that
 * held the outbox's busy flag before 0.2 (a function could stall its
 * worker with it); then returns 1 MiB of 0x5A through the outbox. */
static int fn_big_after_flag(ppx_call *c, void *u)
{
    (void)u;
    int64_t set;
    ppx_call_arg_int(c, 0, &set);
    ppx__shared *sh = find_header();
    int me = sh ? own_index(sh) : -1;
    if (me < 0)
        return ppx_raise(c, "LookupError", "no pool mapping found");
    if (set) {
        ppx__wshared *ws = ppx__shared_worker(sh, (uint32_t)me);
        memset((void *)&ws->violation, 0xFF, sizeof ws->violation);
    }
    size_t n = 1 << 20;
    unsigned char *b = malloc(n);
    if (!b)
        return ppx_raise(c, "MemoryError", "1 MiB");
    memset(b, 0x5A, n);
    int rc = ppx_return_bin(c, b, n);
    free(b);
    return rc;
}

/* exit_with(status): the function ends its process with that status. */
static int fn_exit_with(ppx_call *c, void *u)
{
    (void)u;
    int64_t status;
    ppx_call_arg_int(c, 0, &status);
    _exit((int)status);
}

/* close_all(): closes every descriptor above stderr, as some libraries
 * do, and returns 42. */
static int fn_close_all(ppx_call *c, void *u)
{
    (void)u;
    if (syscall(SYS_close_range, 3, ~0U, 0) != 0)
        for (int fd = 3; fd < 4096; fd++)
            close(fd);
    return ppx_return_int(c, 42);
}

/* fork_and_return(big): forks; both copies return. The original returns
 * 7 (or, with big, 1 MiB of 0x07), the copy -1 (or 1 MiB of 0xcc) after
 * trying to scribble on the shared mapping. */
static int fn_fork_and_return(ppx_call *c, void *u)
{
    (void)u;
    int64_t big;
    ppx_call_arg_int(c, 0, &big);
    static unsigned char buf[1 << 20];
    pid_t pid = fork();
    if (pid < 0)
        return ppx_raise(c, "OSError", "fork: %s", strerror(errno));
    if (pid == 0 && big) {
        memset(buf, 0xcc, sizeof buf);
        return ppx_return_bin(c, buf, sizeof buf);
    }
    if (pid == 0)
        return ppx_return_int(c, -1);
    if (big) {
        memset(buf, 0x07, sizeof buf);
        return ppx_return_bin(c, buf, sizeof buf);
    }
    return ppx_return_int(c, 7);
}

static int fn_pid(ppx_call *c, void *u)
{
    (void)u;
    return ppx_return_int(c, getpid());
}

static int fn_ppid(ppx_call *c, void *u)
{
    (void)u;
    return ppx_return_int(c, getppid());
}

void hostile_fns_register(void)
{
    ppx_register("add", fn_add, NULL);
    ppx_register("pid", fn_pid, NULL);
    ppx_register("ppid", fn_ppid, NULL);
    ppx_register("scribble", fn_scribble, NULL);
    ppx_register("exit_with", fn_exit_with, NULL);
    ppx_register("close_all", fn_close_all, NULL);
    ppx_register("fork_and_return", fn_fork_and_return, NULL);
    ppx_register("big_after_flag", fn_big_after_flag, NULL);
}
