/*
 * peer_pipe.c: running a crdtnet_peer over a pair of file descriptors
 * (stdin/stdout of `strata sync --stdio` and `strata serve --stdio`, or
 * the pipes of the command `strata sync --via CMD` starts).
 *
 * Both descriptors are non-blocking and waited on together with poll():
 * the two sides of a sync may both send at once, so a blocking write
 * into a full pipe while the other side does the same would deadlock.
 * The write end is closed as soon as the peer is done, so the other side
 * sees EOF. Every wait is bounded: by the peer's clock
 * (crdtnet_peer_tick: keepalives, live pushes, revocation, handshake and
 * idle timeouts), at most TICK_MS, and by the idle timeout.
 *
 * A failed write (EPIPE) does not end the session: a server that
 * refused us closes its end right after its error frame, possibly while
 * we are still sending, and that frame says why (exit 5, not 7). So we
 * stop writing but keep reading and feeding the peer until EOF or
 * READ_ON_MS, then report what the peer knows.
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "cli.h"
#include "peer_pipe.h"

#define TICK_MS 250
#define READ_ON_MS 2000

/* How long poll() may wait: until the peer's next deadline, at most
 * TICK_MS. */
static int
wait_ms(uint64_t next, long long now)
{
    long long left;

    if (next == UINT64_MAX)
        return TICK_MS;
    left = (long long)next - now;
    return left < 0 ? 0 : left > TICK_MS ? TICK_MS : (int)left;
}

int
cli_peer_pipe(crdtnet_peer *p, int in_fd, int out_fd, int idle_ms,
              crdtnet_report *rep)
{
    static unsigned char buf[65536];
    const unsigned char *pend = NULL;
    size_t plen = 0, poff = 0;
    long long now = cli_mono_ms(), last = now, t_wfail = 0;
    uint64_t next;
    int in_eof = 0, rc;

    signal(SIGPIPE, SIG_IGN);
    (void)fcntl(in_fd, F_SETFL, fcntl(in_fd, F_GETFL) | O_NONBLOCK);
    (void)fcntl(out_fd, F_SETFL, fcntl(out_fd, F_GETFL) | O_NONBLOCK);
    for (;;) {
        struct pollfd pf[2];
        int nf = 0, i_in = -1, i_out = -1;

        now = cli_mono_ms();
        next = crdtnet_peer_tick(p, (uint64_t)now);
        if (out_fd < 0) {
            /* the writing side is gone: what the peer still has to say
             * goes nowhere, but it moves the peer on */
            while (crdtnet_peer_next_out(p, &pend, &plen) == CRDT_OK)
                ;
            pend = NULL;
            if (!crdtnet_peer_done(p) && now - t_wfail >= READ_ON_MS)
                crdtnet_peer_eof(p); /* no answer came: give up */
        }
        if (pend == NULL && out_fd >= 0 &&
            crdtnet_peer_next_out(p, &pend, &plen) != CRDT_OK)
            pend = NULL;
        if (pend == NULL && crdtnet_peer_done(p))
            break;
        if (!in_eof) {
            pf[nf].fd = in_fd;
            pf[nf].events = POLLIN;
            i_in = nf++;
        }
        if (pend != NULL) {
            pf[nf].fd = out_fd;
            pf[nf].events = POLLOUT;
            i_out = nf++;
        }
        if (nf == 0) { /* nothing to read or write, not done: give up */
            crdtnet_peer_eof(p);
            break;
        }
        rc = poll(pf, (nfds_t)nf, wait_ms(next, now));
        if (rc < 0 && errno != EINTR)
            return CRDT_EIO;
        now = cli_mono_ms();
        if (rc <= 0) {
            if (now - last >= idle_ms) {
                crdtnet_peer_eof(p); /* the transport went quiet */
                break;
            }
            continue;
        }
        last = now;
        if (i_out >= 0 && (pf[i_out].revents & (POLLOUT | POLLERR | POLLHUP))) {
            ssize_t w = write(out_fd, pend + poff, plen - poff);
            if (w < 0 && errno != EAGAIN && errno != EINTR) {
                /* EPIPE: nobody reads any more; an answer may still be
                 * on its way (see the top of this file) */
                pend = NULL;
                poff = 0;
                out_fd = -1;
                t_wfail = now;
            } else if (w > 0 && (poff += (size_t)w) == plen) {
                pend = NULL;
                poff = 0;
            }
        }
        if (i_in >= 0 && (pf[i_in].revents & (POLLIN | POLLHUP | POLLERR))) {
            ssize_t r = read(in_fd, buf, sizeof buf);
            if (r == 0 || (r < 0 && errno != EAGAIN && errno != EINTR)) {
                in_eof = 1;
                if (!crdtnet_peer_done(p))
                    crdtnet_peer_eof(p);
            } else if (r > 0) {
                crdtnet_peer_feed(p, buf, (size_t)r);
            }
        }
    }
    rc = crdtnet_peer_result(p, rep);
    if (rc == CRDT_EAGAIN) /* cannot happen after eof(); be safe */
        rc = CRDT_EIO;
    return rc;
}

int
cli_spawn_sh(pid_t *pid_out, int *to_child, int *from_child,
             const char *command)
{
    int in[2], out[2];
    pid_t pid;

    if (pipe(in) != 0)
        return -1;
    if (pipe(out) != 0) {
        close(in[0]);
        close(in[1]);
        return -1;
    }
    /* ours only: the child gets them as 0 and 1 through dup2() */
    for (int i = 0; i < 2; i++) {
        (void)fcntl(in[i], F_SETFD, FD_CLOEXEC);
        (void)fcntl(out[i], F_SETFD, FD_CLOEXEC);
    }
    pid = fork();
    if (pid < 0) {
        close(in[0]);
        close(in[1]);
        close(out[0]);
        close(out[1]);
        return -1;
    }
    if (pid == 0) {
        signal(SIGPIPE, SIG_DFL);
        if (dup2(in[0], 0) < 0 || dup2(out[1], 1) < 0)
            _exit(127);
        execl("/bin/sh", "sh", "-c", command, (char *)NULL);
        _exit(127);
    }
    close(in[0]);
    close(out[1]);
    *pid_out = pid;
    *to_child = in[1];
    *from_child = out[0];
    return 0;
}

int
cli_reap(pid_t pid, int wait_ms)
{
    int status = 0;

    for (int waited = 0; waited <= wait_ms; waited += 20) {
        pid_t w = waitpid(pid, &status, WNOHANG);
        if (w == pid)
            return WIFEXITED(status) ? WEXITSTATUS(status) : 128;
        if (w < 0)
            return -1;
        usleep(20000);
    }
    kill(pid, SIGTERM);
    waitpid(pid, &status, 0);
    return -1;
}
