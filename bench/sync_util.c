/*
 * sync_util.c: the loopback sync between two processes that w1_sync and
 * sync_delta share (see sync_util.h).
 */
#include "sync_util.h"

#include <arpa/inet.h>
#include <errno.h>
#include <linux/tcp.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

int
sync_write_all(int fd, const void *p, size_t n)
{
    const char *c = p;

    while (n > 0) {
        ssize_t w = write(fd, c, n);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0)
            return -1;
        c += w;
        n -= (size_t)w;
    }
    return 0;
}

int
sync_read_all(int fd, void *p, size_t n, int ms)
{
    char *c = p;
    double end = bench_now() + ms / 1000.0;

    while (n > 0) {
        struct pollfd pfd = { fd, POLLIN, 0 };
        int left = (int)((end - bench_now()) * 1000);
        ssize_t r;

        if (left <= 0)
            return -1;
        if (poll(&pfd, 1, left) <= 0)
            continue;
        r = read(fd, c, n);
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0)
            return -1;
        c += r;
        n -= (size_t)r;
    }
    return 0;
}

int
sync_state_hash(crdt_replica *r, unsigned char out[CRDT_HASH_BYTES])
{
    crdt_read *rd;
    crdt_stats st;
    int rc = crdt_read_begin(&rd, r);

    if (rc < 0)
        return rc;
    rc = crdt_read_stats(&st, rd);
    crdt_read_end(rd);
    if (rc == CRDT_OK)
        memcpy(out, st.state_hash, CRDT_HASH_BYTES);
    return rc;
}

int
sync_listen_accept(int port_w, int ms)
{
    struct sockaddr_in sa;
    socklen_t len = sizeof sa;
    struct pollfd pfd;
    int lfd, fd, port = -1, saved;

    lfd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    memset(&sa, 0, sizeof sa);
    sa.sin_family = AF_INET;
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (lfd < 0 || bind(lfd, (struct sockaddr *)&sa, sizeof sa) != 0 ||
        listen(lfd, 1) != 0 ||
        getsockname(lfd, (struct sockaddr *)&sa, &len) != 0) {
        saved = errno;
        (void)sync_write_all(port_w, &port, sizeof port);
        close(port_w);
        if (lfd >= 0)
            close(lfd);
        errno = saved;
        return SYNC_LISTEN_FAILED;
    }
    port = ntohs(sa.sin_port);
    (void)sync_write_all(port_w, &port, sizeof port);
    close(port_w);
    pfd.fd = lfd;
    pfd.events = POLLIN;
    pfd.revents = 0;
    fd = poll(&pfd, 1, ms) <= 0 ? -1 : accept(lfd, NULL, NULL);
    saved = errno;
    close(lfd);
    errno = saved;
    return fd < 0 ? SYNC_ACCEPT_FAILED : fd;
}

void
sync_server_exit(int port_w, crdt_replica *r, int res_w, const void *res,
                 size_t n)
{
    if (port_w >= 0) {
        int port = -1;
        (void)sync_write_all(port_w, &port, sizeof port);
    }
    crdt_replica_close(r);
    (void)sync_write_all(res_w, res, n);
    _exit(0);
}

void
sync_tcp_bytes(int fd, uint64_t *acked, uint64_t *received)
{
    struct tcp_info ti;
    socklen_t tl = sizeof ti;

    memset(&ti, 0, sizeof ti);
    if (getsockopt(fd, IPPROTO_TCP, TCP_INFO, &ti, &tl) != 0)
        return;
    if (tl >= offsetof(struct tcp_info, tcpi_bytes_received) +
                  sizeof ti.tcpi_bytes_received)
        *received = ti.tcpi_bytes_received;
    if (tl >= offsetof(struct tcp_info, tcpi_bytes_acked) +
                  sizeof ti.tcpi_bytes_acked)
        *acked = ti.tcpi_bytes_acked;
}

int
sync_server_start(sync_server *s, bench_res *out, sync_server_fn fn,
                  const void *ctx)
{
    int port_p[2] = { -1, -1 }, res_p[2] = { -1, -1 };

    s->pid = -1;
    s->port_r = s->res_r = -1;
    signal(SIGPIPE, SIG_IGN);
    if (pipe(port_p) != 0 || pipe(res_p) != 0)
        return bench_fail(out, "pipe: %s", strerror(errno));
    s->pid = fork();
    if (s->pid < 0)
        return bench_fail(out, "fork: %s", strerror(errno));
    if (s->pid == 0) {
        close(port_p[0]);
        close(res_p[0]);
        fn(ctx, port_p[1], res_p[1]); /* does not return */
        _exit(1);
    }
    close(port_p[1]);
    close(res_p[1]);
    s->port_r = port_p[0];
    s->res_r = res_p[0];
    return 0;
}

int
sync_server_port(sync_server *s, char *port, size_t size, int ms)
{
    int p = -1;

    if (sync_read_all(s->port_r, &p, sizeof p, ms) < 0 || p <= 0)
        return -1;
    snprintf(port, size, "%d", p);
    return 0;
}

void
sync_server_end(sync_server *s, int failed)
{
    int status;

    if (s->pid > 0) {
        if (failed)
            kill(s->pid, SIGKILL);
        while (waitpid(s->pid, &status, 0) < 0 && errno == EINTR)
            ;
    }
    if (s->port_r >= 0)
        close(s->port_r);
    if (s->res_r >= 0)
        close(s->res_r);
    s->pid = -1;
    s->port_r = s->res_r = -1;
}
