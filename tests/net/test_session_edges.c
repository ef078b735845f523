/*
 * test_session_edges.c: a peer that sends what it should not: a message
 * out of order, a field of the wrong type or length, a count over a
 * limit, a snapshot or FORKS or FIN that does not add up. Each ends the
 * receiving session with the error and reason docs/protocol.md gives,
 * and the receiving replica is left as it was. Also the session's API
 * at its edges (NULL arguments, options of version 1).
 */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "crdt/crdt.h"
#include "crdtnet/session.h"
#include "epoch/epoch.h"
#include "internal.h"
#include "support/epoch_util.h"
#include "support/replica_util.h"
#include "support/session_msg.h"
#include "support/support.h"

/* a and b: a fresh attached pair of one space for each test */
TU_PAIR_FIXTURE(tu_pair_open)

/* ---- messages built and rewritten ---- */

/* bin 8 of @p n bytes of @p fill */
static void
put_bin(wbuf *w, size_t n, unsigned fill)
{
    ck_assert_uint_lt(n, 256);
    put_byte(w, 0xc4);
    put_byte(w, (unsigned)n);
    for (size_t i = 0; i < n; i++)
        put_byte(w, fill);
}

/* Message @p m (a msgpack array) with its element @p k replaced by the
 * bytes @p raw (NULL: dropped); every other element copied as it is. */
static size_t
rewrite(unsigned char *out, const unsigned char *m, size_t len, uint32_t k,
        const unsigned char *raw, size_t raw_len)
{
    crdt__mp mp = { m, m + len };
    uint32_t n;
    wbuf w;

    w.n = 0;
    ck_assert_int_eq(crdt__mp_array(&mp, &n), 0);
    ck_assert_uint_lt(k, n);
    ck_assert_uint_lt(n, 16);
    put_byte(&w, 0x90 | (raw != NULL ? n : n - 1));
    for (uint32_t i = 0; i < n; i++) {
        const unsigned char *p = mp.p;
        ck_assert_int_eq(crdt__mp_skip(&mp), 0);
        if (i != k)
            put(&w, p, (size_t)(mp.p - p));
        else if (raw != NULL)
            put(&w, raw, raw_len);
    }
    memcpy(out, w.b, w.n);
    return w.n;
}

/* ---- two sessions, one message of one side replaced ---- */

/* What edge_run() does to the @p nth message of type @p type that a
 * (@p from_a) or b sends: @p edit writes what the peer gets instead
 * (its length; 0 with @p msg NULL when the edit only looks); with
 * @p then_original the original follows it. */
typedef size_t (*edit_fn)(unsigned char *out, const unsigned char *msg,
                          size_t len);

typedef struct {
    int from_a, type, nth, then_original;
    edit_fn edit;
} edge;

typedef struct {
    int hit;               /* the message was met and replaced */
    int rc;                /* what the receiver answered it */
    int ea, eb;            /* each side's error at the end */
    crdtnet_report ra, rb; /* each side's report */
} edge_result;

static unsigned char edited[CRDTNET_SESSION_MSG_MAX];

/* edge_run() with @p ne edits (each met once); the result's hit and
 * rc are the first one's. */
static edge_result
edge_run_n(const crdtnet_session_options *oa,
           const crdtnet_session_options *ob, const edge *e, size_t ne)
{
    crdtnet_session *s[2];
    edge_result res;
    int seen[2] = { 0, 0 }, hit[2] = { 0, 0 };

    ck_assert_uint_le(ne, 2);
    memset(&res, 0, sizeof res);
    ck_assert_int_eq(crdtnet_session_new(&s[0], a, oa), CRDT_OK);
    ck_assert_int_eq(crdtnet_session_new(&s[1], b, ob), CRDT_OK);
    for (int round = 0; round < 10000; round++) {
        int moved = 0;
        for (int d = 0; d < 2; d++) {
            const unsigned char *msg;
            size_t len;
            while (crdtnet_session_next_out(s[d], &msg, &len) == CRDT_OK) {
                unsigned char *copy = malloc(len + 1);
                size_t i;
                int rc;
                ck_assert_ptr_nonnull(copy);
                memcpy(copy, msg, len);
                moved = 1;
                for (i = 0; i < ne; i++)
                    if (!hit[i] && (d == 0) == (e[i].from_a != 0) &&
                        type_of(copy, len) == e[i].type &&
                        seen[i]++ == e[i].nth)
                        break;
                if (i < ne) {
                    size_t el = e[i].edit(edited, copy, len);
                    hit[i] = 1;
                    rc = crdtnet_session_feed(s[!d], edited, el);
                    if (e[i].then_original && rc == CRDT_OK)
                        rc = crdtnet_session_feed(s[!d], copy, len);
                    if (i == 0) {
                        res.hit = 1;
                        res.rc = rc;
                    }
                } else {
                    rc = crdtnet_session_feed(s[!d], copy, len);
                    (void)rc;
                }
                free(copy);
            }
        }
        if (!moved)
            break;
    }
    /* every session ends: finished, or with an error */
    for (int d = 0; d < 2; d++)
        ck_assert_msg(crdtnet_session_finished(s[d]) ||
                          crdtnet_session_error(s[d]) != CRDT_OK,
                      "%c neither finished nor failed (edit answered %d: %s)",
                      "ab"[d], res.rc, crdtnet_session_report(s[!d])->reason);
    res.ea = crdtnet_session_error(s[0]);
    res.eb = crdtnet_session_error(s[1]);
    res.ra = *crdtnet_session_report(s[0]);
    res.rb = *crdtnet_session_report(s[1]);
    crdtnet_session_free(s[0]);
    crdtnet_session_free(s[1]);
    return res;
}

static edge_result
edge_run(const crdtnet_session_options *oa, const crdtnet_session_options *ob,
         const edge *e)
{
    return edge_run_n(oa, ob, e, 1);
}

/* The receiver of the edit (a when b's message was edited) ended with
 * @p rc and @p why, the replica unchanged since @p h0. */
static void
assert_refused(const edge_result *r, int from_a, int rc, const char *why,
               const char *h0)
{
    const crdtnet_report *rep = from_a ? &r->rb : &r->ra;
    char h1[65];

    ck_assert_msg(r->hit, "the message to edit never went");
    ck_assert_msg(r->rc == rc, "answered %d (%s), not %d", r->rc,
                  rep->reason, rc);
    ck_assert_int_eq(from_a ? r->eb : r->ea, rc);
    ck_assert_str_eq(rep->reason, why);
    tu_hash(h1, from_a ? b : a);
    ck_assert_str_eq(h0, h1);
}

/* A message of version 3 (HELLO at once, no summary). */
static crdtnet_session_options
v3(void)
{
    crdtnet_session_options o = CRDTNET_SESSION_OPTIONS_INIT;
    o.sync_proto = 3;
    return o;
}

/* What the edits put in place of a message or a field: set before each
 * edge_run() */
static const unsigned char *raw_msg; /* a whole message */
static size_t raw_len;
static uint32_t field;               /* rewrite(): the element */
static wbuf fld;                     /* ... and its bytes (n 0: dropped) */

static size_t
edit_whole(unsigned char *out, const unsigned char *msg, size_t len)
{
    (void)msg;
    (void)len;
    memcpy(out, raw_msg, raw_len);
    return raw_len;
}

static size_t
edit_field(unsigned char *out, const unsigned char *msg, size_t len)
{
    return rewrite(out, msg, len, field, fld.n ? fld.b : NULL, fld.n);
}

/* The same message twice */
static size_t
edit_same(unsigned char *out, const unsigned char *msg, size_t len)
{
    memcpy(out, msg, len);
    return len;
}

/* A whole message @p m, which the peer of a (@p from_a) or of b gets
 * in place of (or, @p before, just before) the @p nth message of @p type
 * that side sends; the receiver ends with @p rc and @p why and nothing
 * of its replica changed. */
static edge_result
x_sends(int from_a, const crdtnet_session_options *o, int type, int nth,
        int before, const unsigned char *m, size_t len, int rc,
        const char *why)
{
    edge e = { from_a, type, nth, before, edit_whole };
    edge_result r;
    char h0[65];

    tu_hash(h0, from_a ? b : a);
    raw_msg = m;
    raw_len = len;
    r = edge_run(o, o, &e);
    assert_refused(&r, from_a, rc, why, h0);
    return r;
}

static edge_result
b_sends(const crdtnet_session_options *o, int type, int nth, int before,
        const unsigned char *m, size_t len, int rc, const char *why)
{
    return x_sends(0, o, type, nth, before, m, len, rc, why);
}

/* The @p nth message of @p type from a (@p from_a) or b with its element
 * @p k replaced by fld (dropped if empty) */
static edge_result
x_field(int from_a, const crdtnet_session_options *o, int type, int nth,
        uint32_t k, int rc, const char *why)
{
    edge e = { from_a, type, nth, 0, edit_field };
    edge_result r;
    char h0[65];

    tu_hash(h0, from_a ? b : a);
    field = k;
    r = edge_run(o, o, &e);
    assert_refused(&r, from_a, rc, why, h0);
    return r;
}

static edge_result
b_field(const crdtnet_session_options *o, int type, int nth, uint32_t k,
        int rc, const char *why)
{
    return x_field(0, o, type, nth, k, rc, why);
}

/* a sends the bytes given just before its first message of @p type */
#define A_BEFORE(o, type, rc, why, ...)                                      \
    x_sends(1, (o), (type), 0, 1, MSG(__VA_ARGS__), MSG_LEN(__VA_ARGS__),    \
            (rc), (why))
/* b sends the bytes given instead of (before) its first DONE */
#define B_BEFORE_DONE(o, rc, why, ...)                                       \
    b_sends((o), T_DONE, 0, 1, MSG(__VA_ARGS__), MSG_LEN(__VA_ARGS__), (rc), \
            (why))

/* ---- the API at its edges ---- */

START_TEST(test_api_null_arguments)
{
    crdtnet_session *s;
    const unsigned char *msg;
    unsigned char *em;
    size_t len;

    ck_assert_int_eq(crdtnet_session_new(NULL, a, NULL), CRDT_EINVAL);
    ck_assert_int_eq(crdtnet_session_new(&s, NULL, NULL), CRDT_EINVAL);
    ck_assert_int_eq(crdtnet_session_finished(NULL), 0);
    ck_assert_int_eq(crdtnet_session_error(NULL), CRDT_EINVAL);
    ck_assert_ptr_null(crdtnet_session_report(NULL));
    crdtnet_session_poke(NULL);
    crdtnet_session_free(NULL);
    ck_assert_int_eq(crdtnet_session_next_out(NULL, &msg, &len), CRDT_EINVAL);
    ck_assert_int_eq(crdtnet_session_feed(NULL, MSG(0x91, 0x08), 2),
                     CRDT_EINVAL);
    ck_assert_int_eq(crdtnet_session_error_msg(NULL, &len, -1, "x"),
                     CRDT_EINVAL);
    ck_assert_int_eq(crdtnet_session_error_msg(&em, NULL, -1, "x"),
                     CRDT_EINVAL);
    ck_assert_int_eq(crdtnet_session_error_msg(&em, &len, -1, NULL),
                     CRDT_EINVAL);
    ck_assert_int_eq(crdtnet_session_new(&s, a, NULL), CRDT_OK);
    ck_assert_int_eq(crdtnet_session_next_out(s, NULL, &len), CRDT_EINVAL);
    ck_assert_int_eq(crdtnet_session_next_out(s, &msg, NULL), CRDT_EINVAL);
    /* no bytes at a NULL pointer */
    ck_assert_int_eq(crdtnet_session_feed(s, NULL, 3), CRDT_EINVAL);
    ck_assert_int_eq(crdtnet_session_error(s), CRDT_OK);
    crdtnet_session_free(s);
}
END_TEST

/* An ERROR built for a peer that is refused before any session (a
 * daemon's): the session that reads it ends with its code and reason;
 * a code that is no error of ours is read as a protocol error. */
START_TEST(test_error_message_ends_the_peer)
{
    crdtnet_session *s;
    unsigned char *em;
    size_t len;
    char h0[65], h1[65];

    tu_hash(h0, a);
    ck_assert_int_eq(crdtnet_session_error_msg(&em, &len, CRDT_EBUSY,
                                               "too many sessions"),
                     CRDT_OK);
    ck_assert_int_eq(crdtnet_session_new(&s, a, NULL), CRDT_OK);
    ck_assert_int_eq(crdtnet_session_feed(s, em, len), CRDT_EBUSY);
    ck_assert_str_eq(crdtnet_session_report(s)->reason,
                     "peer: too many sessions");
    /* ended by the peer: nothing more goes, nothing more is read */
    {
        const unsigned char *msg;
        size_t l;
        ck_assert_int_eq(crdtnet_session_next_out(s, &msg, &l), CRDT_ECLOSED);
        ck_assert_int_eq(crdtnet_session_feed(s, em, len), CRDT_EBUSY);
    }
    crdtnet_session_free(s);
    free(em);
    /* codes out of range, and an ERROR without them */
    ck_assert_int_eq(crdtnet_session_new(&s, a, NULL), CRDT_OK);
    ck_assert_int_eq(crdtnet_session_feed(
                         s, MSG(0x93, 0x0a, 0x05, 0xa1, 'x'), 5),
                     CRDT_EPROTO);
    ck_assert_str_eq(crdtnet_session_report(s)->reason, "peer: x");
    crdtnet_session_free(s);
    ck_assert_int_eq(crdtnet_session_new(&s, a, NULL), CRDT_OK);
    ck_assert_int_eq(crdtnet_session_feed(
                         s, MSG(0x93, 0x0a, 0xd1, 0xfc, 0x00, 0xa0), 6),
                     CRDT_EPROTO); /* -1024 */
    crdtnet_session_free(s);
    ck_assert_int_eq(crdtnet_session_new(&s, a, NULL), CRDT_OK);
    ck_assert_int_eq(crdtnet_session_feed(s, MSG(0x91, 0x0a), 2),
                     CRDT_EPROTO);
    ck_assert_str_eq(crdtnet_session_report(s)->reason, "peer: ");
    crdtnet_session_free(s);
    /* a long reason: the message keeps 159 bytes, the report 120 */
    {
        char longer[200], want[140];

        memset(longer, 'r', sizeof longer - 1);
        longer[sizeof longer - 1] = '\0';
        ck_assert_int_eq(crdtnet_session_error_msg(&em, &len, CRDT_EBUSY,
                                                   longer),
                         CRDT_OK);
        ck_assert_uint_lt(len, 170);
        ck_assert_int_eq(crdtnet_session_new(&s, a, NULL), CRDT_OK);
        ck_assert_int_eq(crdtnet_session_feed(s, em, len), CRDT_EBUSY);
        snprintf(want, sizeof want, "peer: %.120s", longer);
        ck_assert_str_eq(crdtnet_session_report(s)->reason, want);
        crdtnet_session_free(s);
        free(em);
    }
    tu_hash(h1, a);
    ck_assert_str_eq(h0, h1);
}
END_TEST

/* BUSY without a delay means a second; a delay over ten minutes is
 * held to ten minutes. */
START_TEST(test_busy_delay_defaults_and_is_capped)
{
    crdtnet_session *s;

    ck_assert_int_eq(crdtnet_session_new(&s, a, NULL), CRDT_OK);
    ck_assert_int_eq(crdtnet_session_feed(s, MSG(0x91, 0x02), 2), CRDT_EBUSY);
    ck_assert_uint_eq(crdtnet_session_report(s)->busy_retry_ms, 1000);
    ck_assert_str_eq(crdtnet_session_report(s)->reason,
                     "peer is migrating; retry later");
    crdtnet_session_free(s);
    ck_assert_int_eq(crdtnet_session_new(&s, a, NULL), CRDT_OK);
    ck_assert_int_eq(crdtnet_session_feed(
                         s, MSG(0x92, 0x02, 0xce, 0x3b, 0x9a, 0xca, 0x00), 7),
                     CRDT_EBUSY); /* 1e9 ms */
    ck_assert_uint_eq(crdtnet_session_report(s)->busy_retry_ms, 600000);
    crdtnet_session_free(s);
}
END_TEST

/* A message over CRDTNET_SESSION_MSG_MAX is refused unread. */
START_TEST(test_message_too_large)
{
    crdtnet_session *s;
    unsigned char *big = calloc(CRDTNET_SESSION_MSG_MAX + 1, 1);

    ck_assert_ptr_nonnull(big);
    ck_assert_int_eq(crdtnet_session_new(&s, a, NULL), CRDT_OK);
    ck_assert_int_eq(crdtnet_session_feed(s, big, CRDTNET_SESSION_MSG_MAX + 1),
                     CRDT_ELIMIT);
    ck_assert_str_eq(crdtnet_session_report(s)->reason, "message too large");
    crdtnet_session_free(s);
    free(big);
}
END_TEST

/* Options of version 1 end before sync_proto: what follows is not read
 * (the newest protocol is offered), whatever the caller's struct holds
 * there; a batch over half a message is held to half a message. */
START_TEST(test_options_version1_and_batch_cap)
{
    crdtnet_session_options o = CRDTNET_SESSION_OPTIONS_INIT;
    tu_sync_result r;

    ck_assert_int_eq(tu_put_int(a, "c", "d", "x", 1), CRDT_OK);
    o.version = 1;
    o.sync_proto = 3; /* past a version 1 struct: ignored */
    o.batch_bytes = CRDTNET_SESSION_MSG_MAX; /* over half: capped */
    r = tu_sessions_run(a, b, &o);
    ck_assert_int_eq(r.ex, 0);
    ck_assert_int_eq(r.ey, 0);
    ck_assert_uint_eq(r.rx.sync_proto, 4);
    ck_assert_uint_eq(r.ry.changes_received, 1);
    tu_assert_converged(a, b);
}
END_TEST

/* ---- messages out of order or of the wrong shape ---- */

/* Each message of a wrong element count, after HELLO and FORKS */
START_TEST(test_wrong_element_counts)
{
    crdtnet_session_options o = v3();

    ck_assert_int_eq(tu_put_int(a, "c", "d", "x", 1), CRDT_OK);
    B_BEFORE_DONE(&o, CRDT_EPROTO, "malformed snapshot message", 0x91, 0x04);
    B_BEFORE_DONE(&o, CRDT_EPROTO, "malformed snapshot message", 0x92, 0x06,
                  0x00);
    B_BEFORE_DONE(&o, CRDT_EPROTO, "malformed CHANGES", 0x91, 0x07);
    B_BEFORE_DONE(&o, CRDT_EPROTO, "malformed CUT", 0x91, 0x0f);
    B_BEFORE_DONE(&o, CRDT_EPROTO, "malformed PACKED", 0x92, 0x0d, 0x07);
    B_BEFORE_DONE(&o, CRDT_EPROTO, "malformed REJECT", 0x92, 0x03, 0x05);
    B_BEFORE_DONE(&o, CRDT_EPROTO, "unexpected DONE", 0x92, 0x08, 0x00);
    B_BEFORE_DONE(&o, CRDT_EPROTO, "unexpected FORKS", 0x91, 0x0c);
    B_BEFORE_DONE(&o, CRDT_EPROTO, "unexpected FIN", 0x91, 0x09);
    /* a whole FIN, but before the peer's DONE */
    B_BEFORE_DONE(&o, CRDT_EPROTO, "unexpected FIN", 0x94, 0x09, 0x00, 0x00,
                  0x00);
    B_BEFORE_DONE(&o, CRDT_EPROTO, "malformed CHANGES", 0x92, 0x07, 0x05);
    B_BEFORE_DONE(&o, CRDT_EPROTO, "malformed PACKED", 0x93, 0x0d, 0xa0,
                  0xc4, 0x00);
    B_BEFORE_DONE(&o, CRDT_EPROTO, "malformed PACKED", 0x93, 0x0d, 0x08,
                  0xc4, 0x00);
    B_BEFORE_DONE(&o, CRDT_EPROTO, "malformed PACKED", 0x93, 0x0d, 0x07,
                  0x05);
    /* the order rules of SNAP_LOG hold inside PACKED */
    B_BEFORE_DONE(&o, CRDT_EPROTO, "unexpected snapshot", 0x93, 0x0d, 0x0b,
                  0xc4, 0x00);
    /* a second HELLO, a second FORKS, a second DONE */
    B_BEFORE_DONE(&o, CRDT_EPROTO, "malformed HELLO", 0x92, 0x01, 0x03);
    B_BEFORE_DONE(&o, CRDT_EPROTO, "malformed FORKS", 0x92, 0x0c, 0x90);
    B_BEFORE_DONE(&o, CRDT_EPROTO, "unexpected DONE", 0x91, 0x08);
    /* SUMMARY belongs to protocol 4, before FORKS */
    B_BEFORE_DONE(&o, CRDT_EPROTO, "unexpected SUMMARY", 0x93, 0x0e, 0xc4,
                  0x00, 0xc4, 0x00);
    B_BEFORE_DONE(NULL, CRDT_EPROTO, "unexpected SUMMARY", 0x93, 0x0e, 0xc4,
                  0x00, 0xc4, 0x00);
    /* a REJECT with its reason is only noted: the sync goes on */
    {
        edge e = { 0, T_DONE, 0, 1, edit_whole };
        edge_result r;
        raw_msg = MSG(0x92, 0x03, 0xa1, 'x');
        raw_len = 4;
        r = edge_run(&o, &o, &e);
        ck_assert_int_eq(r.rc, CRDT_OK);
        ck_assert_int_eq(r.ea, 0);
        ck_assert_str_eq(r.ra.reason, "peer x");
        ck_assert_int_eq(r.ra.in_sync, 1);
        tu_assert_converged(a, b);
    }
}
END_TEST

/* A FIN twice, or with a field of the wrong type or length */
START_TEST(test_bad_fin)
{
    crdtnet_session_options o = v3();
    edge e = { 0, T_FIN, 0, 1, edit_same };
    edge_result r;
    char h0[65];

    tu_hash(h0, a);
    r = edge_run(&o, &o, &e);
    assert_refused(&r, 0, CRDT_EPROTO, "malformed FIN", h0);
    for (uint32_t k = 1; k <= 3; k++) {
        fld.n = 0;
        put_byte(&fld, 0x07); /* a uint where a bin belongs */
        b_field(&o, T_FIN, 0, k, CRDT_EPROTO, "malformed FIN");
    }
    /* protocol 4: the vv's digest is 32 bytes */
    fld.n = 0;
    put_bin(&fld, 31, 0);
    b_field(NULL, T_FIN, 0, 2, CRDT_EPROTO, "malformed FIN");
}
END_TEST

/* A HELLO of the wrong shape, field by field */
START_TEST(test_bad_hello)
{
    crdtnet_session_options o = v3();
    static const struct {
        uint32_t k;
        int proto4;
    } bad[] = {
        { 2, 0 }, { 3, 0 }, { 4, 0 }, { 5, 0 }, { 6, 0 }, { 7, 0 },
        { 5, 1 }, { 6, 1 }, { 7, 1 }, { 8, 1 },
    };

    /* [1] and [1, "x"] */
    b_sends(&o, T_HELLO, 0, 0, MSG(0x91, 0x01), 2, CRDT_EPROTO,
            "malformed HELLO");
    b_sends(&o, T_HELLO, 0, 0, MSG(0x92, 0x01, 0xa1, 'x'), 4, CRDT_EPROTO,
            "malformed HELLO");
    /* one element short */
    fld.n = 0;
    b_field(&o, T_HELLO, 0, 7, CRDT_EPROTO, "malformed HELLO");
    /* each field of the wrong type: a bin of 3 where a uint goes, a
     * string anywhere else */
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        fld.n = 0;
        if (bad[i].k == 3 || (bad[i].proto4 && bad[i].k == 6))
            put_bin(&fld, 3, 0);
        else
            put(&fld, "\xa1x", 2);
        b_field(bad[i].proto4 ? NULL : &o, T_HELLO, 0, bad[i].k, CRDT_EPROTO,
                "malformed HELLO");
    }
    /* an epoch record that is not a bin */
    fld.n = 0;
    put(&fld, "\x91\x05", 2);
    b_field(&o, T_HELLO, 0, 6, CRDT_EPROTO, "malformed epoch record");
    /* protocol 4: more heads than a side may hold */
    fld.n = 0;
    put(&fld, "\xce\x00\x01\x00\x01", 5);
    b_field(NULL, T_HELLO, 0, 6, CRDT_ELIMIT, "too many heads in HELLO");
}
END_TEST

/* FORKS: not a list of actors, too many of them */
START_TEST(test_bad_forks)
{
    crdtnet_session_options o = v3();
    wbuf *w = malloc(sizeof *w);

    fld.n = 0;
    put(&fld, "\x91\x05", 2);
    b_field(&o, T_FORKS, 0, 1, CRDT_EPROTO, "malformed FORKS");
    fld.n = 0;
    put(&fld, "\x91\xc4\x03\x00\x00\x00", 6);
    b_field(&o, T_FORKS, 0, 1, CRDT_EPROTO, "malformed FORKS");
    /* 65,537 actors */
    ck_assert_ptr_nonnull(w);
    w->n = 0;
    put(w, "\x92\x0c\xdd\x00\x01\x00\x01", 7);
    for (int i = 0; i < 6554; i++) /* 65,540 bytes of fixints */
        put(w, "\0\0\0\0\0\0\0\0\0\0", 10);
    b_sends(&o, T_FORKS, 0, 0, w->b, 7 + 65537, CRDT_ELIMIT,
            "too many actors in FORKS");
    free(w);
}
END_TEST

/* ---- a taker that is sent what a snapshot is not ---- */

/* a compacts: b is behind, a's taker */
static void
a_ahead(void)
{
    ck_assert_int_eq(tu_put_int(a, "c", "d", "x", 1), CRDT_OK);
    ck_assert_int_eq(tu_sync_one_way(b, a), CRDT_OK);
    ck_assert_int_eq(tu_put_int(b, "c", "e", "x", 2), CRDT_OK);
    tu_migrate(a, NULL, NULL);
    ck_assert_int_eq(tu_put_int(a, "c", "f", "x", 3), CRDT_OK);
}

/* Before SNAP_BEGIN: CHANGES, a snapshot's part, its log */
START_TEST(test_taker_before_snap_begin)
{
    crdtnet_session_options o = v3();

    a_ahead();
    A_BEFORE(&o, T_SNAP_BEGIN, CRDT_EPROTO, "CHANGES out of order", 0x92,
             0x07, 0x90);
    A_BEFORE(&o, T_SNAP_BEGIN, CRDT_EPROTO, "CHANGES out of order", 0x93,
             0x0d, 0x07, 0xc4, 0x00);
    A_BEFORE(&o, T_SNAP_BEGIN, CRDT_EPROTO, "snapshot without SNAP_BEGIN",
             0x92, 0x05, 0x90);
    A_BEFORE(&o, T_SNAP_BEGIN, CRDT_EPROTO, "snapshot without SNAP_BEGIN",
             0x93, 0x0d, 0x0b, 0xc4, 0x00);
    /* a CUT of a change that is none */
    {
        unsigned char m[4 + 3 + 200];
        memset(m, 0, sizeof m);
        memcpy(m, "\x92\x0f\x91\xc5\x00\xc8", 6);
        x_sends(1, &o, T_SNAP_BEGIN, 0, 1, m, 6 + 200, CRDT_EPROTO,
                "malformed CUT");
    }
    /* nor does packing make one */
    A_BEFORE(&o, T_SNAP_BEGIN, CRDT_EPROTO, "malformed PACKED", 0x93, 0x0d,
             0x0f, 0xc4, 0x01, 0x00);
}
END_TEST

/* SNAP_BEGIN twice, or of the wrong shape: b stays at its epoch */
START_TEST(test_taker_bad_snap_begin)
{
    crdtnet_session_options o = v3();
    edge e = { 1, T_SNAP_BEGIN, 0, 1, edit_same };
    edge_result r;
    char h0[65];

    a_ahead();
    tu_hash(h0, b);
    r = edge_run(&o, &o, &e);
    assert_refused(&r, 1, CRDT_EPROTO, "malformed SNAP_BEGIN", h0);
    for (uint32_t k = 1; k <= 3; k++) {
        fld.n = 0;
        put_byte(&fld, 0x07);
        x_field(1, &o, T_SNAP_BEGIN, 0, k, CRDT_EPROTO,
                "malformed SNAP_BEGIN");
    }
    fld.n = 0;
    put(&fld, "\x91\x07", 2);
    x_field(1, &o, T_SNAP_BEGIN, 0, 3, CRDT_EPROTO, "malformed SNAP_BEGIN");
    /* a record that is no record */
    fld.n = 0;
    put_byte(&fld, 0x91);
    put_bin(&fld, 40, 0x5a);
    x_field(1, &o, T_SNAP_BEGIN, 0, 3, CRDT_EAUTH,
            "invalid epoch record from peer");
}
END_TEST

/* Between SNAP_BEGIN and SNAP_END: chunks and log of the wrong shape */
START_TEST(test_taker_bad_chunk_and_log)
{
    crdtnet_session_options o = v3();
    unsigned char m[8 + 200];

    a_ahead();
    A_BEFORE(&o, T_SNAP_END, CRDT_EPROTO, "malformed SNAP_CHUNK", 0x92, 0x05,
             0x07);
    A_BEFORE(&o, T_SNAP_END, CRDT_EPROTO, "malformed SNAP_CHUNK", 0x92, 0x05,
             0x91, 0xc4, 0x00);
    A_BEFORE(&o, T_SNAP_END, CRDT_EPROTO, "malformed SNAP_CHUNK", 0x92, 0x05,
             0x92, 0x07, 0x07);
    A_BEFORE(&o, T_SNAP_END, CRDT_EPROTO, "bad snapshot entry", 0x92, 0x05,
             0x92, 0xc4, 0x00, 0xc4, 0x00);
    A_BEFORE(&o, T_SNAP_END, CRDT_EPROTO, "malformed SNAP_LOG", 0x92, 0x0b,
             0x07);
    A_BEFORE(&o, T_SNAP_END, CRDT_EPROTO, "malformed SNAP_LOG", 0x92, 0x0b,
             0x91, 0x07);
    memset(m, 0, sizeof m);
    memcpy(m, "\x92\x0b\x91\xc5\x00\xc8", 6);
    x_sends(1, &o, T_SNAP_END, 0, 1, m, 6 + 200, CRDT_EPROTO,
            "bad change in the snapshot's log");
}
END_TEST

/* SNAP_END twice: the snapshot is taken once; the second is refused */
START_TEST(test_taker_snap_end_twice)
{
    crdtnet_session_options o = v3();
    edge e = { 1, T_SNAP_END, 0, 1, edit_same };
    edge_result r;

    a_ahead();
    r = edge_run(&o, &o, &e);
    ck_assert(r.hit);
    ck_assert_int_eq(r.rc, CRDT_EPROTO);
    ck_assert_int_eq(r.eb, CRDT_EPROTO);
    ck_assert_str_eq(r.rb.reason, "unexpected snapshot");
    ck_assert_int_eq(r.rb.snapshot_received, 1);
}
END_TEST

/* ---- FORKS that name what they should not ---- */

static size_t
edit_forks_twice(unsigned char *out, const unsigned char *msg, size_t len)
{
    (void)msg;
    (void)len;
    /* [12, [X, X]]: one actor, named twice, that neither side holds */
    memcpy(out, "\x92\x0c\x92\xc4\x08" "ABCDEFGH" "\xc4\x08" "ABCDEFGH", 23);
    return 23;
}

/* Across epochs a FORKS naming an actor changes nothing: the reset that
 * follows settles it. */
START_TEST(test_forks_across_epochs_are_ignored)
{
    crdtnet_session_options o = v3();
    edge e = { 0, T_FORKS, 0, 0, edit_forks_twice };
    edge_result r;

    a_ahead();
    r = edge_run(&o, &o, &e);
    ck_assert_msg(r.rc == CRDT_OK, "%s", r.ra.reason);
    ck_assert_int_eq(r.ea, 0);
    ck_assert_int_eq(r.eb, 0);
    ck_assert_uint_eq(r.ra.equivocations, 0);
    ck_assert_int_eq(r.rb.snapshot_received, 1);
    tu_assert_converged(a, b);
}
END_TEST

/* b's FORKS of one actor, [12, [A]], with the actor named twice */
static size_t
edit_forks_doubled(unsigned char *out, const unsigned char *msg, size_t len)
{
    ck_assert_uint_eq(len, 13);
    ck_assert_uint_eq(msg[2], 0x91);
    memcpy(out, "\x92\x0c\x92", 3);
    memcpy(out + 3, msg + 3, 10);
    memcpy(out + 13, msg + 3, 10);
    return 23;
}

/* In one epoch, an actor named twice counts once: a real fork (a copy of
 * a wrote its own seq 2, which b holds), b's FORKS naming it twice. */
START_TEST(test_forks_named_twice_count_once)
{
    crdtnet_session_options o = v3();
    edge e = { 0, T_FORKS, 0, 0, edit_forks_doubled };
    edge_result r;
    crdt_replica *copy;
    char dc[256];

    ck_assert_int_eq(tu_put_int(a, "c", "d", "base", 1), CRDT_OK);
    copy = tu_clone_open(da, dc, sizeof dc);
    ck_assert_int_eq(tu_put_int(a, "c", "d", "x", 2), CRDT_OK);
    ck_assert_int_eq(tu_put_int(copy, "c", "d", "x", 3), CRDT_OK);
    ck_assert_int_eq(tu_sync_one_way(b, copy), CRDT_OK);
    crdt_replica_close(copy);
    test_rmtree(dc);
    r = edge_run(&o, &o, &e);
    ck_assert_msg(r.hit, "b sent no FORKS");
    ck_assert_msg(r.rc == CRDT_OK, "%s", r.ra.reason);
    ck_assert_int_eq(r.ea, 0);
    ck_assert_int_eq(r.eb, 0);
    ck_assert_uint_eq(r.ra.equivocations, 1);
    ck_assert_uint_eq(r.rb.equivocations, 1);
    ck_assert_int_eq(r.ra.in_sync, 1);
    tu_assert_converged(a, b);
}
END_TEST

/* A FORKS naming an actor neither side holds is refused: it would make
 * the receiver lose the comparison and reset to the peer's snapshot. */
START_TEST(test_forks_naming_an_actor_neither_holds_are_refused)
{
    crdtnet_session_options o = v3();
    edge e = { 0, T_FORKS, 0, 0, edit_forks_twice };
    edge_result r;
    char h0[65];

    ck_assert_int_eq(tu_put_int(b, "c", "d", "x", 1), CRDT_OK);
    tu_hash(h0, a);
    r = edge_run(&o, &o, &e);
    assert_refused(&r, 0, CRDT_EPROTO,
                   "FORKS names an actor whose heads do not fork", h0);
    ck_assert_uint_eq(r.ra.equivocations, 0);
    ck_assert_int_eq(r.ra.snapshot_received, 0);
}
END_TEST

/* b's FORKS naming a's actor, whose head both sides hold alike */
static crdt_actor named;

static size_t
edit_forks_named(unsigned char *out, const unsigned char *msg, size_t len)
{
    (void)msg;
    (void)len;
    memcpy(out, "\x92\x0c\x91\xc4\x08", 5);
    memcpy(out + 5, named.b, 8);
    return 13;
}

/* a's actor, written once and synced to b, then written again by @p w
 * (field @p name): b's FORKS naming it is refused, a's actor unchanged */
static void
assert_our_actor_named_is_refused(crdt_replica *w, const char *name)
{
    crdtnet_session_options o = v3();
    edge e = { 0, T_FORKS, 0, 0, edit_forks_named };
    edge_result r;
    crdt_actor before;
    char h0[65];

    ck_assert_int_eq(tu_put_int(a, "c", "d", "x", 1), CRDT_OK);
    ck_assert_int_eq(tu_sync_one_way(b, a), CRDT_OK);
    ck_assert_int_eq(tu_put_int(w, "c", "d", name, 2), CRDT_OK);
    before = named = crdt_replica_actor(a);
    tu_hash(h0, a);
    r = edge_run(&o, &o, &e);
    assert_refused(&r, 0, CRDT_EPROTO,
                   "FORKS names an actor whose heads do not fork", h0);
    ck_assert_mem_eq(crdt_replica_actor(a).b, before.b, 8);
    ck_assert_uint_eq(r.ra.renewed, 0);
}

/* Naming our own actor where both heads agree is refused too: it would
 * make us start a new incarnation (a new actor) each session. */
START_TEST(test_forks_naming_our_actor_at_an_equal_head_are_refused)
{
    assert_our_actor_named_is_refused(b, "y");
}
END_TEST

/* And naming it where the peer's head is behind ours, on our chain: the
 * peer cannot have judged a head of ours beyond its own. */
START_TEST(test_forks_naming_our_actor_behind_on_our_chain_are_refused)
{
    assert_our_actor_named_is_refused(a, "x");
}
END_TEST

/* A HELLO of version 3 whose head of the actor `named` claims the hash
 * @p fill, fill, ...: a member lying about its head. */
static size_t
edit_hello_head(unsigned char *out, const unsigned char *msg, size_t len,
                unsigned fill)
{
    crdt__mp mp = { msg, msg + len }, hm;
    const unsigned char *heads, *hash;
    uint32_t n, hl, items, bl;

    memcpy(out, msg, len);
    ck_assert_int_eq(crdt__mp_array(&mp, &n), 0);
    ck_assert_uint_eq(n, 8);
    for (int i = 0; i < 7; i++)
        ck_assert_int_eq(crdt__mp_skip(&mp), 0);
    ck_assert_int_eq(crdt__mp_bin(&mp, &heads, &hl), 0);
    hm.p = heads;
    hm.end = heads + hl;
    ck_assert_int_eq(crdt__mp_array(&hm, &items), 0);
    for (uint32_t i = 0; i < items / 3; i++) {
        crdt_actor x;
        uint64_t seq;
        ck_assert_int_eq(crdt__mp_bin_fixed(&hm, x.b, CRDT_ACTOR_BYTES), 0);
        ck_assert_int_eq(crdt__mp_uint(&hm, &seq), 0);
        ck_assert_int_eq(crdt__mp_bin(&hm, &hash, &bl), 0);
        if (memcmp(x.b, named.b, CRDT_ACTOR_BYTES) == 0) {
            memset(out + (hash - msg), (int)fill, bl);
            return len;
        }
    }
    ck_abort_msg("no head of the named actor in HELLO");
    return 0;
}

static size_t
edit_hello_head_low(unsigned char *out, const unsigned char *msg, size_t len)
{
    return edit_hello_head(out, msg, len, 0x00);
}

static size_t
edit_hello_head_high(unsigned char *out, const unsigned char *msg, size_t len)
{
    return edit_hello_head(out, msg, len, 0xff);
}

/* A giver that made up its head of an actor both hold alike (b claims
 * hash 00.. at a's head, and sees a's as ff.., so both sides find a
 * fork and b wins it) must show the change with that head in its
 * SNAP_LOG: it cannot, so a refuses the reset and keeps everything. */
START_TEST(test_fork_won_with_a_made_up_head_is_refused)
{
    crdtnet_session_options o = v3();
    edge e[2] = { { 0, T_HELLO, 0, 0, edit_hello_head_low },
                  { 1, T_HELLO, 0, 0, edit_hello_head_high } };
    edge_result r;
    char h0[65], h1[65];

    ck_assert_int_eq(tu_put_int(a, "c", "d", "x", 1), CRDT_OK);
    ck_assert_int_eq(tu_sync_one_way(b, a), CRDT_OK);
    ck_assert_int_eq(tu_put_int(b, "c", "d", "y", 2), CRDT_OK);
    named = crdt_replica_actor(a);
    tu_hash(h0, a);
    r = edge_run_n(&o, &o, e, 2);
    ck_assert_int_eq(r.ea, CRDT_EPROTO);
    ck_assert_str_eq(r.ra.reason, "the peer's log lacks the head it "
                                  "claimed for the forked actor");
    ck_assert_int_eq(r.ra.equivocation_lost, 1);
    ck_assert_int_eq(r.ra.snapshot_received, 0);
    tu_hash(h1, a);
    ck_assert_str_eq(h0, h1);
    ck_assert_uint_eq(tu_quarantine_count(a), 0);
}
END_TEST

/* ---- protocol 4: the summary ---- */

/* 100 actors on a, all synced to b, then one change on b: more heads
 * than travel in HELLO, so a SUMMARY round is due */
static void
many_heads(void)
{
    for (int i = 0; i < 100; i++) {
        char doc[16];
        snprintf(doc, sizeof doc, "d%d", i);
        ck_assert_int_eq(crdt_replica_new_incarnation(a), CRDT_OK);
        ck_assert_int_eq(tu_put_int(a, "c", doc, "v", i), CRDT_OK);
    }
    ck_assert_int_eq(tu_sync_one_way(b, a), CRDT_OK);
    ck_assert_int_eq(tu_put_int(b, "c", "x", "b", 1), CRDT_OK);
}

/* More heads in a SUMMARY than a side may hold: 65,537 entries */
static size_t
edit_summary_huge(unsigned char *out, const unsigned char *msg, size_t len)
{
    crdt__mp mp = { msg, msg + len };
    const unsigned char *p;
    uint32_t n, l, hl = 65537u * 48;
    size_t o;

    ck_assert_int_eq(crdt__mp_array(&mp, &n), 0);
    ck_assert_int_eq(crdt__mp_skip(&mp), 0);
    ck_assert_int_eq(crdt__mp_bin(&mp, &p, &l), 0);
    out[0] = 0x93;
    out[1] = 0x0e;
    memcpy(out + 2, p - (l < 256 ? 2 : l < 65536 ? 3 : 5),
           l + (l < 256 ? 2 : l < 65536 ? 3 : 5));
    o = 2 + l + (l < 256 ? 2 : l < 65536 ? 3 : 5);
    out[o++] = 0xc6;
    out[o++] = (unsigned char)(hl >> 24);
    out[o++] = (unsigned char)(hl >> 16);
    out[o++] = (unsigned char)(hl >> 8);
    out[o++] = (unsigned char)hl;
    memset(out + o, 0, hl);
    return o + hl;
}

START_TEST(test_bad_summary_rounds)
{
    edge e = { 0, T_SUMMARY, 0, 0, edit_summary_huge };
    edge_result r;
    char h0[65];

    many_heads();
    tu_hash(h0, a);
    /* FORKS in place of the round */
    b_sends(NULL, T_SUMMARY, 0, 0, MSG(0x92, 0x0c, 0x90), 3, CRDT_EPROTO,
            "FORKS before the end of the summary");
    /* the digests, then the heads, not a bin */
    for (uint32_t k = 1; k <= 2; k++) {
        fld.n = 0;
        put_byte(&fld, 0x07);
        b_field(NULL, T_SUMMARY, 0, k, CRDT_EPROTO, "malformed SUMMARY");
    }
    r = edge_run(NULL, NULL, &e);
    assert_refused(&r, 0, CRDT_ELIMIT, "too many heads in SUMMARY", h0);
    /* the same round twice: one round ahead of what a answers */
    {
        edge twice = { 0, T_SUMMARY, 0, 1, edit_same };
        char h1[65];

        r = edge_run(NULL, NULL, &twice);
        ck_assert(r.hit);
        ck_assert_int_eq(r.ea, CRDT_EPROTO);
        ck_assert_str_eq(r.ra.reason, "malformed SUMMARY");
        tu_hash(h1, a);
        ck_assert_str_eq(h0, h1);
    }
}
END_TEST

/* Few heads travel in HELLO: a list that is not their count's */
START_TEST(test_bad_hello_heads_list)
{
    ck_assert_int_eq(tu_put_int(b, "c", "d", "x", 1), CRDT_OK);
    fld.n = 0;
    put_bin(&fld, 47, 0);
    {
        edge e = { 0, T_HELLO, 0, 0, edit_field };
        edge_result r;
        char h0[65], h1[65];
        tu_hash(h0, a);
        field = 8;
        r = edge_run(NULL, NULL, &e);
        /* judged once a's HELLO is built: the ERROR goes in its place */
        ck_assert(r.hit);
        ck_assert_int_eq(r.ea, CRDT_EPROTO);
        ck_assert_str_eq(r.ra.reason, "malformed HELLO");
        ck_assert_int_eq(r.eb, CRDT_EPROTO);
        ck_assert_str_eq(r.rb.reason, "peer: malformed HELLO");
        tu_hash(h1, a);
        ck_assert_str_eq(h0, h1);
    }
}
END_TEST

Suite *
test_suite(void)
{
    Suite *s = suite_create("session_edges");
    TCase *tc = tcase_create("core");

    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, test_api_null_arguments);
    tcase_add_test(tc, test_error_message_ends_the_peer);
    tcase_add_test(tc, test_busy_delay_defaults_and_is_capped);
    tcase_add_test(tc, test_message_too_large);
    tcase_add_test(tc, test_options_version1_and_batch_cap);
    tcase_add_test(tc, test_wrong_element_counts);
    tcase_add_test(tc, test_bad_fin);
    tcase_add_test(tc, test_bad_hello);
    tcase_add_test(tc, test_bad_forks);
    tcase_add_test(tc, test_taker_before_snap_begin);
    tcase_add_test(tc, test_taker_bad_snap_begin);
    tcase_add_test(tc, test_taker_bad_chunk_and_log);
    tcase_add_test(tc, test_taker_snap_end_twice);
    tcase_add_test(tc, test_forks_across_epochs_are_ignored);
    tcase_add_test(tc, test_forks_named_twice_count_once);
    tcase_add_test(tc, test_forks_naming_an_actor_neither_holds_are_refused);
    tcase_add_test(tc, test_forks_naming_our_actor_at_an_equal_head_are_refused);
    tcase_add_test(tc,
                   test_forks_naming_our_actor_behind_on_our_chain_are_refused);
    tcase_add_test(tc, test_fork_won_with_a_made_up_head_is_refused);
    tcase_add_test(tc, test_bad_summary_rounds);
    tcase_add_test(tc, test_bad_hello_heads_list);
    suite_add_tcase(s, tc);
    return s;
}
