/*
 * netdelay: emulated hosts with a real link latency, for the MPI tests and
 * bench (tools/emulated_hosts.sh). The kernel here has no netem qdisc, so
 * the delay is made in user space: every given network namespace gets a
 * TUN device (ppx0) with its address in one /24, and this process routes
 * the IPv4 packets between those devices by destination address, holding
 * each for the one-way delay. TCP between the namespaces then sees a round
 * trip of twice the delay plus this forwarder's own cost (ping measures it).
 *
 *   netdelay DELAY_US NETNS=ADDRESS...     (root; addresses in one /24)
 *
 * Prints "ready" on stdout once every device is up, then forwards until
 * killed. The devices vanish with the process; the caller owns the
 * namespaces. Exit 77 (and a reason on stderr) where TUN or setns is not
 * allowed, so callers can skip.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE /* setns */
#endif
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/if_tun.h>
#include <net/if.h>
#include <netinet/in.h>
#include <sched.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/ioctl.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/timerfd.h>
#include <time.h>
#include <unistd.h>

enum { MAX_HOSTS = 32, QUEUE_LIMIT = 4096 };

/* A packet waiting for its due time; each host's queue is FIFO, and as
 * every packet waits the same delay, FIFO order is due order: packets of
 * one link leave in the order they came. */
typedef struct packet {
    struct packet *next;
    uint64_t due_ns;
    size_t len;
    unsigned char data[];
} packet;

typedef struct host {
    int fd;           /* its TUN device, opened inside its namespace */
    uint32_t addr;    /* network order */
    packet *head, *tail;
    int queued;
} host;

static host hosts[MAX_HOSTS];
static int nhosts;

static uint64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static void die(int code, const char *what)
{
    fprintf(stderr, "netdelay: %s: %s\n", what, strerror(errno));
    exit(code);
}

static void if_ioctl(int sock, unsigned long req, struct ifreq *ifr, const char *what)
{
    if (ioctl(sock, req, ifr) < 0)
        die(1, what);
}

static void set_addr(int sock, struct ifreq *ifr, unsigned long req, uint32_t addr,
                     const char *what)
{
    struct sockaddr_in sin = {.sin_family = AF_INET, .sin_addr.s_addr = addr};
    memcpy(&ifr->ifr_addr, &sin, sizeof sin);
    if_ioctl(sock, req, ifr, what);
}

static void bring_up(int sock, const char *name)
{
    struct ifreq ifr = {0};
    snprintf(ifr.ifr_name, IFNAMSIZ, "%s", name);
    if_ioctl(sock, SIOCGIFFLAGS, &ifr, "SIOCGIFFLAGS");
    ifr.ifr_flags |= IFF_UP | IFF_RUNNING;
    if_ioctl(sock, SIOCSIFFLAGS, &ifr, "SIOCSIFFLAGS");
}

/* Enters the namespace, creates ppx0 there with ADDR/24 (the kernel adds
 * the /24's route through it) and brings it and lo up. The fd stays bound
 * to the device after we leave the namespace. */
static int tun_in(const char *netns, uint32_t addr)
{
    char path[256];
    snprintf(path, sizeof path, "/var/run/netns/%s", netns);
    int nsfd = open(path, O_RDONLY | O_CLOEXEC);
    if (nsfd < 0 || setns(nsfd, CLONE_NEWNET) < 0)
        die(77, path);
    close(nsfd);
    int fd = open("/dev/net/tun", O_RDWR | O_NONBLOCK | O_CLOEXEC);
    if (fd < 0)
        die(77, "/dev/net/tun");
    struct ifreq ifr = {0};
    ifr.ifr_flags = IFF_TUN | IFF_NO_PI;
    snprintf(ifr.ifr_name, IFNAMSIZ, "ppx0");
    if (ioctl(fd, TUNSETIFF, &ifr) < 0)
        die(77, "TUNSETIFF");
    int sock = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    if (sock < 0)
        die(1, "socket");
    set_addr(sock, &ifr, SIOCSIFADDR, addr, "SIOCSIFADDR");
    set_addr(sock, &ifr, SIOCSIFNETMASK, htonl(0xffffff00u), "SIOCSIFNETMASK");
    bring_up(sock, "ppx0");
    bring_up(sock, "lo");
    close(sock);
    return fd;
}

static host *host_of(uint32_t addr)
{
    for (int i = 0; i < nhosts; i++)
        if (hosts[i].addr == addr)
            return &hosts[i];
    return NULL;
}

/* Reads every packet the kernel has for us on one device and queues each
 * for its destination; what is not IPv4 to one of ours is dropped, as is
 * what overflows a queue (as netem's limit would). */
static void take(host *from, uint64_t delay_ns)
{
    unsigned char buf[65536];
    for (;;) {
        ssize_t n = read(from->fd, buf, sizeof buf);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            if (errno == EAGAIN)
                return;
            die(1, "read");
        }
        if (n < 20 || buf[0] >> 4 != 4)
            continue;
        uint32_t dst;
        memcpy(&dst, buf + 16, 4);
        host *to = host_of(dst);
        if (!to || to->queued >= QUEUE_LIMIT)
            continue;
        packet *p = malloc(sizeof *p + (size_t)n);
        if (!p)
            continue;
        *p = (packet){NULL, now_ns() + delay_ns, (size_t)n};
        memcpy(p->data, buf, (size_t)n);
        if (to->tail)
            to->tail->next = p;
        else
            to->head = p;
        to->tail = p;
        to->queued++;
    }
}

/* Delivers every due packet; returns the earliest due time left, or 0. */
static uint64_t deliver(void)
{
    uint64_t t = now_ns(), next = 0;
    for (int i = 0; i < nhosts; i++) {
        host *h = &hosts[i];
        while (h->head && h->head->due_ns <= t) {
            packet *p = h->head;
            h->head = p->next;
            if (!h->head)
                h->tail = NULL;
            h->queued--;
            /* a full device queue drops the packet, as a link would */
            if (write(h->fd, p->data, p->len) < 0 && errno != EAGAIN && errno != ENOBUFS)
                die(1, "write");
            free(p);
        }
        if (h->head && (!next || h->head->due_ns < next))
            next = h->head->due_ns;
    }
    return next;
}

static void arm(int tfd, uint64_t due_ns)
{
    struct itimerspec its = {0};
    if (due_ns) {
        its.it_value.tv_sec = (time_t)(due_ns / 1000000000u);
        its.it_value.tv_nsec = (long)(due_ns % 1000000000u);
    }
    if (timerfd_settime(tfd, TFD_TIMER_ABSTIME, &its, NULL) < 0)
        die(1, "timerfd_settime");
}

static void parse_hosts(int argc, char **argv, int *nsfd_home)
{
    *nsfd_home = open("/proc/self/ns/net", O_RDONLY | O_CLOEXEC);
    if (*nsfd_home < 0)
        die(77, "/proc/self/ns/net");
    for (int i = 2; i < argc; i++) {
        char *eq = strchr(argv[i], '=');
        struct in_addr a;
        if (!eq || nhosts == MAX_HOSTS || inet_pton(AF_INET, eq + 1, &a) != 1) {
            fprintf(stderr, "netdelay: bad host %s (NETNS=IPV4, at most %d)\n", argv[i],
                    MAX_HOSTS);
            exit(2);
        }
        *eq = '\0';
        hosts[nhosts].addr = a.s_addr;
        hosts[nhosts].fd = tun_in(argv[i], a.s_addr);
        nhosts++;
        if (setns(*nsfd_home, CLONE_NEWNET) < 0)
            die(1, "setns back");
    }
}

int main(int argc, char **argv)
{
    if (argc < 4) {
        fprintf(stderr, "usage: netdelay DELAY_US NETNS=ADDRESS NETNS=ADDRESS...\n");
        return 2;
    }
    uint64_t delay_ns = strtoull(argv[1], NULL, 10) * 1000u;
    int home;
    parse_hosts(argc, argv, &home);
    close(home);
    /* The default 50 us timer slack would add itself to every hop. */
    prctl(PR_SET_TIMERSLACK, 1UL);
    int ep = epoll_create1(EPOLL_CLOEXEC);
    int tfd = timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK | TFD_CLOEXEC);
    if (ep < 0 || tfd < 0)
        die(1, "epoll/timerfd");
    for (int i = 0; i <= nhosts; i++) {
        struct epoll_event ev = {.events = EPOLLIN, .data.u32 = (uint32_t)i};
        if (epoll_ctl(ep, EPOLL_CTL_ADD, i < nhosts ? hosts[i].fd : tfd, &ev) < 0)
            die(1, "epoll_ctl");
    }
    printf("ready\n");
    fflush(stdout);
    for (;;) {
        struct epoll_event evs[MAX_HOSTS + 1];
        int n = epoll_wait(ep, evs, MAX_HOSTS + 1, -1);
        if (n < 0 && errno != EINTR)
            die(1, "epoll_wait");
        for (int i = 0; i < n; i++) {
            uint32_t k = evs[i].data.u32;
            if (k < (uint32_t)nhosts) {
                take(&hosts[k], delay_ns);
            } else {
                uint64_t ticks;
                if (read(tfd, &ticks, sizeof ticks) < 0 && errno != EAGAIN)
                    die(1, "timerfd read");
            }
        }
        arm(tfd, deliver());
    }
}
