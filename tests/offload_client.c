#include "offload_client.h"

#include <arpa/inet.h>
#include <errno.h>
#include <inttypes.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

server_proc srv;

/* Starts the server on a free port with the given options (NULL-ended). */
void server_start_with(const char *const *args)
{
    const char *bin = getenv("OFFLOAD_SERVER");
    assert_non_null(bin);
    const char *argv[24] = {bin, "--port", "0"};
    size_t argc = 3;
    for (; *args && argc < sizeof argv / sizeof argv[0] - 1; args++)
        argv[argc++] = *args;
    argv[argc] = NULL;
    int p[2];
    assert_int_equal(pipe(p), 0);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        /* Under ASan, freed memory waits in a quarantine of up to 256 MB,
         * which would count against the RSS bound though the server freed
         * it: keep the quarantine small (leaks and use-after-free are
         * still caught for what it holds). */
        const char *asan = getenv("ASAN_OPTIONS");
        if (asan) {
            char opts[512];
            snprintf(opts, sizeof opts, "%s:quarantine_size_mb=16", asan);
            setenv("ASAN_OPTIONS", opts, 1);
        }
        dup2(p[1], 1);
        close(p[0]);
        close(p[1]);
        execv(bin, (char *const *)argv);
        _exit(127);
    }
    close(p[1]);
    srv = (server_proc){.pid = pid, .out = p[0]};
    char line[128];
    size_t len = 0;
    int64_t end = support_now_ms() + 10000;
    while (len == 0 || line[len - 1] != '\n') {
        assert_true(support_now_ms() < end && len < sizeof line - 1);
        struct pollfd pf = {srv.out, POLLIN, 0};
        poll(&pf, 1, 100);
        ssize_t n = read(srv.out, line + len, sizeof line - 1 - len);
        assert_true(n > 0 || (n < 0 && errno == EAGAIN) || (n < 0 && errno == EINTR));
        if (n > 0)
            len += (size_t)n;
    }
    line[len] = '\0';
    assert_int_equal(sscanf(line, "listening on 127.0.0.1:%d", &srv.port), 1);
    assert_true(srv.port > 0);
}

/* Starts the server with a pool of 2 workers, or inline. */
void server_start(bool inline_mode)
{
    static const char *const pool[] = {"--workers", "2", NULL};
    static const char *const inl[] = {"--inline", NULL};
    server_start_with(inline_mode ? inl : pool);
}

/* Waits (up to 10 s, or fails) for the server to exit; its exit status. */
int server_wait(void)
{
    int64_t end = support_now_ms() + 10000;
    int st;
    pid_t r;
    while ((r = waitpid(srv.pid, &st, WNOHANG)) == 0) {
        assert_true(support_now_ms() < end);
        usleep(10000);
    }
    assert_int_equal(r, srv.pid);
    srv.pid = 0;
    close(srv.out);
    return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
}

int group_teardown(void **state)
{
    if (srv.pid > 0) { /* a test failed before stopping it */
        kill(srv.pid, SIGKILL);
        waitpid(srv.pid, NULL, 0);
        close(srv.out);
        srv.pid = 0;
    }
    return 0;
}

int stop_server(void **state)
{
    if (srv.pid > 0) {
        assert_int_equal(kill(srv.pid, SIGTERM), 0);
        assert_int_equal(server_wait(), 0);
    }
    return 0;
}

void client_open(client *c)
{
    client_open_window(c, 0);
}

void client_open_window(client *c, int rcvbuf)
{
    c->fd = socket(AF_INET, SOCK_STREAM, 0);
    assert_true(c->fd >= 0);
    struct timeval tv = {10, 0}; /* a hang fails the test instead */
    setsockopt(c->fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    if (rcvbuf > 0) /* before connect: it sets the window offered */
        assert_int_equal(setsockopt(c->fd, SOL_SOCKET, SO_RCVBUF, &rcvbuf, sizeof rcvbuf), 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)srv.port)};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    assert_int_equal(connect(c->fd, (struct sockaddr *)&a, sizeof a), 0);
    c->len = 0;
}

void client_send(client *c, const char *data, size_t len)
{
    while (len > 0) {
        ssize_t n = write(c->fd, data, len);
        assert_true(n > 0);
        data += n;
        len -= (size_t)n;
    }
}

/* Reads more into c->buf; false on EOF. */
bool client_fill(client *c)
{
    assert_true(c->len < sizeof c->buf);
    ssize_t n = read(c->fd, c->buf + c->len, sizeof c->buf - c->len);
    assert_true(n >= 0); /* not the 10 s timeout */
    c->len += (size_t)n;
    return n > 0;
}

/* Waits for a whole response head in c->buf and copies it into r (with
 * its status); returns its length, still in c->buf. */
static size_t peek_head(client *c, response *r)
{
    char *end;
    while (!(end = memmem(c->buf, c->len, "\r\n\r\n", 4)))
        assert_true(client_fill(c));
    size_t hlen = (size_t)(end - c->buf) + 4;
    assert_true(hlen < sizeof r->head);
    memcpy(r->head, c->buf, hlen);
    r->head[hlen] = '\0';
    r->body[0] = '\0';
    assert_int_equal(sscanf(r->head, "HTTP/1.1 %d ", &r->status), 1);
    return hlen;
}

/* Drops the first n bytes of c->buf. */
static void consume(client *c, size_t n)
{
    c->len -= n;
    memmove(c->buf, c->buf + n, c->len);
}

/* Reads exactly one response: head, then Content-Length bytes of body. */
void client_read(client *c, response *r)
{
    size_t hlen = peek_head(c, r);
    const char *cl = strcasestr(r->head, "\r\nContent-Length: ");
    assert_non_null(cl);
    size_t blen = strtoul(cl + 18, NULL, 10);
    assert_true(blen < sizeof r->body);
    while (c->len < hlen + blen)
        assert_true(client_fill(c));
    memcpy(r->body, c->buf + hlen, blen);
    r->body[blen] = '\0';
    consume(c, hlen + blen);
}

/* Reads one response head only (a HEAD answer, an interim 100). */
void client_read_head(client *c, response *r)
{
    consume(c, peek_head(c, r));
}

/* True when the server closed the connection (after what was read). */
bool client_sees_eof(client *c)
{
    return c->len == 0 && !client_fill(c);
}

/* One raw request on a fresh connection; its response in r. */
void raw(const char *request, response *r)
{
    client c;
    client_open(&c);
    client_send(&c, request, strlen(request));
    client_read(&c, r);
    close(c.fd);
}

void get(const char *target, response *r)
{
    char req[4096];
    snprintf(req, sizeof req, "GET %s HTTP/1.1\r\nHost: test\r\n\r\n", target);
    raw(req, r);
}

/* The number after "key": in a JSON body; fails the test if absent. */
uint64_t json_u64(const char *body, const char *key)
{
    char pat[64];
    snprintf(pat, sizeof pat, "\"%s\":", key);
    const char *p = strstr(body, pat);
    assert_non_null(p);
    return strtoull(p + strlen(pat), NULL, 10);
}

uint64_t stat_of(const char *key)
{
    response r;
    get("/stats", &r);
    assert_int_equal(r.status, 200);
    return json_u64(r.body, key);
}

/* Polls /stats (up to 10 s, or fails) until key reaches at least want. */
void wait_stat_at_least(const char *key, uint64_t want)
{
    int64_t end = support_now_ms() + 10000;
    while (stat_of(key) < want) {
        assert_true(support_now_ms() < end);
        usleep(10000);
    }
}

int worker_pids(long *pids)
{
    response r;
    get("/stats", &r);
    const char *p = strstr(r.body, "\"worker_pids\":[");
    assert_non_null(p);
    p += strlen("\"worker_pids\":[");
    int n = 0;
    while (*p != ']' && n < MAX_WORKERS) {
        char *end;
        pids[n++] = strtol(p, &end, 10);
        p = *end == ',' ? end + 1 : end;
    }
    return n;
}

/* The server's resident set, from /proc/PID/status. */
long server_rss_kb(void)
{
    char path[64], line[256];
    snprintf(path, sizeof path, "/proc/%ld/status", (long)srv.pid);
    FILE *f = fopen(path, "r");
    assert_non_null(f);
    long kb = -1;
    while (fgets(line, sizeof line, f))
        if (sscanf(line, "VmRSS: %ld kB", &kb) == 1)
            break;
    fclose(f);
    assert_true(kb > 0);
    return kb;
}

/* What every hardening case ends with: /ping still answered, and the
 * server within the memory bound. */
void assert_still_serving(void)
{
    response r;
    get("/ping", &r);
    assert_int_equal(r.status, 200);
    assert_string_equal(r.body, "{\"pong\":true}\n");
    long kb = server_rss_kb();
    if (kb >= RSS_BOUND_KB)
        fail_msg("server RSS %ld kB, over %d kB", kb, RSS_BOUND_KB);
}

void assert_bad_request(const char *request, int status, const char *message_part)
{
    response r;
    raw(request, &r);
    assert_int_equal(r.status, status);
    const char *want = "{\"error\":{\"type\":\"BadRequest\",\"message\":\"";
    assert_memory_equal(r.body, want, strlen(want));
    if (!strstr(r.body, message_part))
        fail_msg("%d: %s lacks \"%s\"", status, r.body, message_part);
}

/* What llhttp refuses is answered, then the connection closes. */
void assert_refused_and_closed(const char *request, size_t len, int status,
                                      const char *message_part)
{
    client c;
    client_open(&c);
    client_send(&c, request, len);
    response r;
    client_read(&c, &r);
    assert_int_equal(r.status, status);
    assert_non_null(strstr(r.head, "Connection: close\r\n"));
    assert_non_null(strstr(r.body, "\"type\":\"BadRequest\""));
    if (!strstr(r.body, message_part))
        fail_msg("%d: %s lacks \"%s\"", status, r.body, message_part);
    assert_true(client_sees_eof(&c));
    close(c.fd);
}

/* Polls /ping (up to 10 s, or fails) until it is answered, not refused. */
void wait_for_a_place(void)
{
    int64_t end = support_now_ms() + 10000;
    response r;
    for (;;) {
        get("/ping", &r);
        if (r.status == 200)
            return;
        assert_int_equal(r.status, 503);
        assert_true(support_now_ms() < end);
        usleep(10000);
    }
}

/* Sends up to `want` bytes of pipelined GET /stats on non-blocking fd, as
 * far as the kernel takes them; returns what was sent now. Each answer is
 * some 25 times its request, so unless the server holds back, the answers
 * pile up in it rather than in the kernel's socket buffers. */
size_t flood_some(int fd, size_t *sent, size_t want)
{
    static const char stats[] = "GET /stats HTTP/1.1\r\n\r\n";
    static char block[32 * (sizeof stats - 1)];
    if (!block[0])
        for (size_t i = 0; i < 32; i++)
            memcpy(block + i * (sizeof stats - 1), stats, sizeof stats - 1);
    size_t now = 0;
    while (*sent < want) {
        size_t off = *sent % sizeof block;
        size_t n = sizeof block - off < want - *sent ? sizeof block - off : want - *sent;
        ssize_t w = send(fd, block + off, n, MSG_DONTWAIT);
        if (w < 0 && (errno == EPIPE || errno == ECONNRESET)) {
            *sent = want; /* the server's idle timer closed it: nothing held */
            break;
        }
        if (w <= 0) {
            assert_true(w < 0 && (errno == EAGAIN || errno == EWOULDBLOCK));
            break;
        }
        *sent += (size_t)w;
        now += (size_t)w;
    }
    return now;
}

/* GET /work?iterations=123456 answers the sum of i < 123456. */
void expect_work_sum(void)
{
    uint64_t sum = 0;
    for (uint64_t i = 0; i < 123456; i++)
        sum += i;
    char want[128];
    snprintf(want, sizeof want, "{\"iterations\":123456,\"value\":%" PRIu64 "}\n", sum);
    response r;
    get("/work?iterations=123456", &r);
    assert_int_equal(r.status, 200);
    assert_string_equal(r.body, want);
}

