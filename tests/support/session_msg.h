/* session_msg.h: sync messages built and read byte by byte, for the
 * tests that play a peer sending what it should not (test_session_edges
 * and test_session_edges2). */
#ifndef TEST_SESSION_MSG_H
#define TEST_SESSION_MSG_H

#include <check.h>
#include <string.h>

/* the message types (docs/protocol.md); 0 is protocol 4's empty offer */
enum {
    T_OFFER = 0, T_HELLO = 1, T_BUSY, T_REJECT, T_SNAP_BEGIN, T_SNAP_CHUNK,
    T_SNAP_END, T_CHANGES, T_DONE, T_FIN, T_ERROR, T_SNAP_LOG, T_FORKS,
    T_PACKED, T_SUMMARY, T_CUT
};

#define MSG(...) ((const unsigned char[]){ __VA_ARGS__ })
#define MSG_LEN(...) sizeof((const unsigned char[]){ __VA_ARGS__ })

/* bytes written one piece after another */
typedef struct {
    unsigned char b[1 << 17];
    size_t n;
} wbuf;

static inline void
put(wbuf *w, const void *p, size_t n)
{
    ck_assert_uint_le(w->n + n, sizeof w->b);
    memcpy(w->b + w->n, p, n);
    w->n += n;
}

static inline void
put_byte(wbuf *w, unsigned v)
{
    unsigned char c = (unsigned char)v;
    put(w, &c, 1);
}

/* The type of message @p m (T_OFFER: the empty offer of protocol 4). */
static inline int
type_of(const unsigned char *m, size_t len)
{
    if (len == 0)
        return T_OFFER;
    ck_assert_uint_ge(len, 2);
    ck_assert_uint_eq(m[0] & 0xf0, 0x90);
    return m[1];
}

#endif
