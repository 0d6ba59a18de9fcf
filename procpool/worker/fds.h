/*
 * Descriptor hygiene for freshly forked processes: close everything above
 * the descriptors a process keeps, on any kernel. Safe between fork and
 * exit in the child of a multi-threaded process: system calls only, no
 * allocation, no stdio.
 */
#ifndef PPX_PROCPOOL_FDS_H
#define PPX_PROCPOOL_FDS_H

/* Ways ppx__close_from may not use, to exercise the fallbacks on kernels
 * that have everything (tests). */
enum {
    PPX__FDS_NO_CLOSE_RANGE = 1u << 0, /* SYS_close_range (Linux 5.9) */
    PPX__FDS_NO_PROC = 1u << 1,        /* walking /proc/self/fd */
};

/* Closes every descriptor from lowfd up: with close_range where the kernel
 * has it, else by listing /proc/self/fd (getdents64), else by closing each
 * number below RLIMIT_NOFILE's soft limit, at most 2^20 (descriptors above
 * that survive only this last way). Returns the way that worked:
 * 0 close_range, 1 /proc, 2 the loop. Never fails. */
int ppx__close_from(int lowfd, unsigned avoid);

/* Flags every pool's fork server passes to ppx__close_from; tests set it
 * before ppx_pool_new to force a fallback end to end. 0 in production. */
extern unsigned ppx__fds_avoid;

#endif
