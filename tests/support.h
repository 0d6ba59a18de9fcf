/* Helpers shared by the test suites. */
#ifndef PPX_TESTS_SUPPORT_H
#define PPX_TESTS_SUPPORT_H
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdbool.h>
#include <stdint.h>
#include <cmocka.h>

/* xorshift64* step: the next pseudo-random number of the stream *s
 * (the same sequence in every run: tests stay deterministic). */
uint64_t support_xorshift(uint64_t *s);
/* Number of open file descriptors of this process. */
int support_open_fds(void);
/* True when this process has no child left (nothing to reap either). */
bool support_no_children(void);
/* Number of live children of this process, from /proc. */
int support_children_alive(void);
/* Number of entries in /dev/shm (named shared memory), -1 if absent. */
int support_dev_shm_entries(void);
/* Drives pool p (poll its fd, process) until it is not busy; fails the
 * test after timeout_ms. */
struct ppx_pool;
void support_drain(struct ppx_pool *p, int timeout_ms);
/* The pid of worker i, driving p (poll its fd, process) until the fork
 * server's report of it has come in: ppx_pool_new without an initializer
 * returns before that. Fails the test after 30 s. */
long support_worker_pid(struct ppx_pool *p, int i);
/* Waits (up to 10 s, or fails the test) until f is RUNNING. */
struct ppx_future;
void support_wait_running(struct ppx_future *f);
/* Waits (up to 10 s, or fails the test) until awaitable aw is RUNNING,
 * by polling: the loop is not run meanwhile. */
struct ppx_awaitable;
void support_wait_awaitable_running(struct ppx_awaitable *aw);
/* Sleeps ms milliseconds. */
void support_sleep_ms(int64_t ms);
/* Monotonic milliseconds. */
int64_t support_now_ms(void);
/* Runs fn(arg) in a child of fork and reaps it: what the child reported
 * (fn's return value, reported before _exit, or a support_child_report
 * of a child that leaves otherwise, e.g. through exit()), -signal if a
 * signal ended it unreported, -1 if it still ran after timeout_ms (it is
 * then killed), 256 if it exited without a report. The report travels
 * through a pipe, not the exit status: under valgrind a child's status
 * counts leaks of memory only another thread's stack pointed to. stdio
 * is flushed first. */
int support_in_child(int (*fn)(void *), void *arg, int timeout_ms);
/* In such a child: reports code (the first report counts). */
void support_child_report(int code);
/* Polls /proc until process pid has ended (a zombie counts as ended):
 * false if it still runs after timeout_ms. */
bool support_pid_gone(long pid, int timeout_ms);
/* The parent pid of process pid, from /proc; -1 if it is gone. */
long support_parent_of(long pid);
/* True when process pid no longer runs: gone, or a zombie nobody reaps
 * (an init that does not reap leaves them). */
bool support_process_gone(long pid);
/* Polls (up to timeout_ms, or fails the test) until pid is gone. */
void support_wait_gone(long pid, int timeout_ms);

/* Under the valgrind test setup (PPX_UNDER_VALGRIND set), shrinks the
 * shared memory o leaves at its defaults to 16 MiB: the arena (when two
 * calls of max_payload would need more) and each worker's outbox.
 * Valgrind's mprotect of the arena, read-only in each new worker, and
 * its leak check at each exit take time in proportion to their size.
 * Elsewhere it leaves o alone. Every suite's pools go through it. */
struct ppx_pool_options;
void support_valgrind_sizes(struct ppx_pool_options *o);

/* Waits (up to 30 s) for f and returns its integer value; fails the test
 * naming the error's type and message if it has none. */
struct ppx_future;
int64_t support_future_int(struct ppx_future *f);

#endif
