/*
 * sockfault.c: the wrappers of support/sockfault.h. The linker sends
 * send(), recv() and accept4() here (--wrap); __real_* are libc's.
 */
#define _GNU_SOURCE /* accept4 */
#include "support/sockfault.h"

#include <errno.h>
#include <pthread.h>
#include <sys/socket.h>

ssize_t __real_send(int fd, const void *buf, size_t len, int flags);
ssize_t __real_recv(int fd, void *buf, size_t len, int flags);
int __real_accept4(int fd, struct sockaddr *addr, socklen_t *alen,
                   int flags);
ssize_t __wrap_send(int fd, const void *buf, size_t len, int flags);
ssize_t __wrap_recv(int fd, void *buf, size_t len, int flags);
int __wrap_accept4(int fd, struct sockaddr *addr, socklen_t *alen,
                   int flags);

#define BROKEN_MAX 8

enum { OFF, CHAOS, BREAK };

static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static int mode = OFF;
static uint64_t rng;
static unsigned share; /* percent, CHAOS */
static long calls, armed_at;
static int broke;
static int broken[BROKEN_MAX]; /* sockets found reset, BREAK */
static int n_broken;
static sockfault_counts totals;

static uint64_t
next_draw(void) /* splitmix64; under the lock */
{
    uint64_t z = (rng += 0x9e3779b97f4a7c15ULL);

    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}

static void
arm(int m, uint64_t seed, unsigned percent, long n)
{
    pthread_mutex_lock(&lock);
    mode = m;
    rng = seed;
    share = percent;
    armed_at = n;
    calls = 0;
    broke = 0;
    n_broken = 0;
    pthread_mutex_unlock(&lock);
}

void
sockfault_chaos(uint64_t seed, unsigned percent)
{
    arm(CHAOS, seed, percent > 100 ? 100 : percent, 0);
}

void
sockfault_break_at(long n)
{
    arm(BREAK, 0, 0, n);
}

long
sockfault_off(void)
{
    long n;

    pthread_mutex_lock(&lock);
    mode = OFF;
    n = calls;
    pthread_mutex_unlock(&lock);
    return n;
}

int
sockfault_broke(void)
{
    int b;

    pthread_mutex_lock(&lock);
    b = broke;
    pthread_mutex_unlock(&lock);
    return b;
}

sockfault_counts
sockfault_totals(void)
{
    sockfault_counts c;

    pthread_mutex_lock(&lock);
    c = totals;
    pthread_mutex_unlock(&lock);
    return c;
}

/* What to do with one send() or recv() of @p *len bytes on @p fd:
 * 0 = go on (with *len perhaps cut), else the errno to answer. */
static int
decide(int fd, size_t *len)
{
    int err = 0;

    pthread_mutex_lock(&lock);
    if (mode == OFF) {
        pthread_mutex_unlock(&lock);
        return 0;
    }
    calls++;
    if (mode == BREAK) {
        for (int i = 0; i < n_broken; i++)
            if (broken[i] == fd)
                err = ECONNRESET;
        if (err == 0 && calls == armed_at && n_broken < BROKEN_MAX) {
            broken[n_broken++] = fd;
            broke = 1;
            err = ECONNRESET;
        }
    } else if (next_draw() % 100 < share) {
        uint64_t d = next_draw();

        totals.calls++;
        switch (d % 4) {
        case 0:
            err = EINTR;
            totals.eintr++;
            break;
        case 1:
            err = EAGAIN;
            totals.eagain++;
            break;
        case 2:
            *len = *len > 0 ? 1 : 0;
            totals.one_byte++;
            break;
        default:
            if (*len > 1)
                *len = 1 + (size_t)((d >> 8) % (*len - 1));
            totals.short_io++;
            break;
        }
    } else {
        totals.calls++;
    }
    pthread_mutex_unlock(&lock);
    return err;
}

ssize_t
__wrap_send(int fd, const void *buf, size_t len, int flags)
{
    int err = decide(fd, &len);

    if (err != 0) {
        errno = err == ECONNRESET ? EPIPE : err;
        return -1;
    }
    return __real_send(fd, buf, len, flags);
}

ssize_t
__wrap_recv(int fd, void *buf, size_t len, int flags)
{
    int err = decide(fd, &len);

    if (err != 0) {
        errno = err;
        return -1;
    }
    return __real_recv(fd, buf, len, flags);
}

int
__wrap_accept4(int fd, struct sockaddr *addr, socklen_t *alen, int flags)
{
    int err = 0;

    pthread_mutex_lock(&lock);
    if (mode == CHAOS && next_draw() % 100 < share) {
        static const int errs[] = { EINTR, EAGAIN, ECONNABORTED };

        err = errs[next_draw() % 3];
        totals.aborted += err == ECONNABORTED;
    }
    pthread_mutex_unlock(&lock);
    if (err != 0) {
        errno = err;
        return -1;
    }
    return __real_accept4(fd, addr, alen, flags);
}
