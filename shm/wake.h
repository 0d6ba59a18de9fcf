/* Wake-ups across processes: futexes on shared words, eventfds. */
#ifndef PPX_SHM_WAKE_H
#define PPX_SHM_WAKE_H
#include <stdatomic.h>
#include <stdint.h>

/* Sleeps while *word == expected, at most timeout_ms (-1: forever).
 * Returns 0 when woken or the value differs, -ETIMEDOUT, -EINTR. The word
 * lives in MAP_SHARED memory, so this is a shared (not private) futex. */
int ppx__futex_wait(_Atomic uint32_t *word, uint32_t expected, int timeout_ms);
/* Wakes up to n sleepers on word. */
void ppx__futex_wake(_Atomic uint32_t *word, int n);

/* A non-blocking, close-on-exec eventfd. fd or -errno. */
int ppx__eventfd_new(void);
/* Adds one to the counter; never blocks (a saturated counter is already
 * readable, which is all a wake-up needs). 0, or -errno when fd cannot be
 * written (e.g. -EBADF: someone closed it). */
int ppx__eventfd_signal(int fd);
/* Resets the counter; returns 1 if it was signalled. */
int ppx__eventfd_drain(int fd);

/* One step of a polling loop. Every 64th step yields the CPU: a process
 * woken by the other side is often placed on the waker's CPU, and a pure
 * spin would keep the waker (who has our data to write) off it. */
void ppx__spin_step(unsigned i);

static inline void ppx__cpu_relax(void)
{
#if defined(__x86_64__) || defined(__i386__)
    __builtin_ia32_pause();
#elif defined(__aarch64__)
    __asm__ __volatile__("yield");
#endif
}

#endif
