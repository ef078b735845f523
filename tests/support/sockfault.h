/*
 * Socket calls that misbehave on purpose. Only for test binaries linked
 * with support/sockfault.c and -Wl,--wrap=send,--wrap=recv,
 * --wrap=accept4 (tests/CMakeLists.txt): the calls of every object in
 * that binary go through the wrappers, the library's and the test's.
 *
 * Two modes, as a kernel and a network can behave:
 *  - transient (sockfault_chaos()): a share of the calls answer EINTR or
 *    EAGAIN without doing anything, or move 1 byte, or a random part of
 *    what they were asked to; accept4() also answers ECONNABORTED. A
 *    correct caller retries and ends exactly as without them.
 *  - persistent (sockfault_break_at()): the n-th send() or recv() from
 *    now finds its connection reset: recv() answers ECONNRESET and
 *    send() EPIPE, and so does every later call on that socket, as on a
 *    real reset one.
 * Thread-safe: the client and the server of a test run in one process.
 */
#ifndef TEST_SOCKFAULT_H
#define TEST_SOCKFAULT_H

#include <stdint.h>

/* Misbehave on about @p percent of the calls from now, drawn from
 * @p seed (the same seed, the same draws for the same calls). */
void sockfault_chaos(uint64_t seed, unsigned percent);
/* Break the connection of the @p n-th send() or recv() from now
 * (counting both, from 1). */
void sockfault_break_at(long n);
/* Behave again. Returns the calls since the last arm (send and recv). */
long sockfault_off(void);
/* 1 once the armed call was reached (sockfault_break_at()). */
int sockfault_broke(void);

/* What the transient mode did since the process began. */
typedef struct {
    long calls, eintr, eagain, one_byte, short_io, aborted;
} sockfault_counts;
sockfault_counts sockfault_totals(void);

#endif
