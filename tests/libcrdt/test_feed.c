/*
 * test_feed.c: the change feed: subscriptions (local and merged commits,
 * filters, what a callback may call), cursors across a reopen, the
 * "everything" event, watches woken by another process, and the record
 * decoder's checks.
 */
#include <check.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "crdt/crdt.h"
#include "internal.h"
#include "support/replica_util.h"
#include "support/support.h"

/* a and b: a fresh pair of one space for each test */
TU_PAIR_FIXTURE(tu_pair_create)

/* Events flattened to text: "coll/doc:f1,f2;..." or "*" per event. */
typedef struct {
    char text[16384];
    int events;
    crdt_replica *r; /* for the callback's own calls */
    int busy_txn, busy_sub;
} log_t;

static int
log_event(void *ctx, const crdt_feed_event *ev)
{
    log_t *l = ctx;
    size_t n = strlen(l->text);

    l->events++;
    if (ev->everything) {
        snprintf(l->text + n, sizeof l->text - n, "*|");
        return 0;
    }
    for (size_t i = 0; i < ev->ndocs; i++) {
        const crdt_feed_doc *d = &ev->docs[i];
        n = strlen(l->text);
        n += (size_t)snprintf(l->text + n, sizeof l->text - n, "%s/%s%s:",
                              d->coll, d->doc, d->whole ? "!" : "");
        for (size_t j = 0; j < d->nfields; j++) {
            n += (size_t)snprintf(l->text + n, sizeof l->text - n, "%s%s",
                                  j ? "," : "", d->fields[j]);
        }
        snprintf(l->text + n, sizeof l->text - n, ";");
    }
    n = strlen(l->text);
    snprintf(l->text + n, sizeof l->text - n, "|");
    return 0;
}

static void
write_some(crdt_replica *r)
{
    crdt_txn *t;
    crdt_value one = crdt_value_int(1), x = crdt_value_str("x", 1);

    ck_assert_int_eq(crdt_txn_begin(&t, r), CRDT_OK);
    ck_assert_int_eq(crdt_txn_put(t, "notes", "n1", "title", &x), CRDT_OK);
    ck_assert_int_eq(crdt_txn_put(t, "notes", "n1", "body", &x), CRDT_OK);
    ck_assert_int_eq(crdt_txn_put(t, "notes", "n1", "title", &one), CRDT_OK);
    ck_assert_int_eq(crdt_txn_incr(t, "stats", "s", "views", 2), CRDT_OK);
    ck_assert_int_eq(crdt_txn_sadd(t, "notes", "n2", "tags", &x), CRDT_OK);
    ck_assert_int_eq(crdt_txn_commit(t, NULL), CRDT_OK);
}

START_TEST(test_subscribe_local_commit_with_filters)
{
    log_t all = { .events = 0 }, coll = { .events = 0 },
          doc = { .events = 0 };
    crdt_feed_sub *s1, *s2, *s3;
    crdt_txn *t;

    ck_assert_int_eq(crdt_feed_subscribe(&s1, a, NULL, NULL, log_event,
                                         &all), CRDT_OK);
    ck_assert_int_eq(crdt_feed_subscribe(&s2, a, "notes", NULL, log_event,
                                         &coll), CRDT_OK);
    ck_assert_int_eq(crdt_feed_subscribe(&s3, a, "notes", "n2", log_event,
                                         &doc), CRDT_OK);
    write_some(a);
    ck_assert_str_eq(all.text,
                     "notes/n1:body,title;notes/n2:tags;stats/s:views;|");
    ck_assert_str_eq(coll.text, "notes/n1:body,title;notes/n2:tags;|");
    ck_assert_str_eq(doc.text, "notes/n2:tags;|");

    /* a commit outside a filter does not call it */
    ck_assert_int_eq(tu_put_int(a, "stats", "s", "max", 3), CRDT_OK);
    ck_assert_int_eq(all.events, 2);
    ck_assert_int_eq(coll.events, 1);
    ck_assert_int_eq(doc.events, 1);

    /* a whole-document delete */
    ck_assert_int_eq(crdt_txn_begin(&t, a), CRDT_OK);
    ck_assert_int_eq(crdt_txn_del_doc(t, "notes", "n2"), CRDT_OK);
    ck_assert_int_eq(crdt_txn_commit(t, NULL), CRDT_OK);
    ck_assert_ptr_nonnull(strstr(doc.text, "|notes/n2!:"));

    /* an empty txn commits nothing and calls nobody */
    ck_assert_int_eq(crdt_txn_begin(&t, a), CRDT_OK);
    ck_assert_int_eq(crdt_txn_commit(t, NULL), CRDT_OK);
    ck_assert_int_eq(all.events, 3);

    crdt_feed_unsubscribe(s2);
    ck_assert_int_eq(tu_put_int(a, "notes", "n9", "x", 1), CRDT_OK);
    ck_assert_int_eq(coll.events, 1 + 1);
    ck_assert_int_eq(all.events, 4);
    crdt_feed_unsubscribe(s1);
    crdt_feed_unsubscribe(s3);
    ck_assert_int_eq(crdt_feed_subscribe(&s1, a, NULL, "d", log_event,
                                         &all), CRDT_EINVAL);
    ck_assert_int_eq(crdt_feed_subscribe(&s1, a, "", NULL, log_event, &all),
                     CRDT_EINVAL);
}
END_TEST

/* Fields and documents whose names begin with another's, and a
 * document's own key between its fields' keys: each is its own entry
 * (crdt__feed_note compares a key with the last entry before parsing
 * it; the field's NUL keeps "t" from matching "title"). */
START_TEST(test_entries_of_prefix_names)
{
    log_t all = { .events = 0 };
    crdt_feed_sub *s1;
    crdt_txn *t;
    crdt_value one = crdt_value_int(1);

    ck_assert_int_eq(crdt_feed_subscribe(&s1, a, NULL, NULL, log_event,
                                         &all), CRDT_OK);
    ck_assert_int_eq(crdt_txn_begin(&t, a), CRDT_OK);
    ck_assert_int_eq(crdt_txn_put(t, "n", "d", "t", &one), CRDT_OK);
    ck_assert_int_eq(crdt_txn_put(t, "n", "d", "title", &one), CRDT_OK);
    ck_assert_int_eq(crdt_txn_put(t, "n", "d", "t", &one), CRDT_OK);
    ck_assert_int_eq(crdt_txn_put(t, "n", "dd", "t", &one), CRDT_OK);
    ck_assert_int_eq(crdt_txn_put(t, "nn", "d", "t", &one), CRDT_OK);
    ck_assert_int_eq(crdt_txn_commit(t, NULL), CRDT_OK);
    ck_assert_str_eq(all.text, "n/d:t,title;n/dd:t;nn/d:t;|");

    all.text[0] = 0;
    ck_assert_int_eq(crdt_txn_begin(&t, a), CRDT_OK);
    ck_assert_int_eq(crdt_txn_del_doc(t, "n", "d"), CRDT_OK);
    ck_assert_int_eq(crdt_txn_put(t, "n", "dd", "x", &one), CRDT_OK);
    ck_assert_int_eq(crdt_txn_commit(t, NULL), CRDT_OK);
    ck_assert_str_eq(all.text, "n/d!:;n/dd:x;|");
    crdt_feed_unsubscribe(s1);
}
END_TEST

START_TEST(test_subscribe_merged_changes)
{
    log_t l = { .events = 0 };
    crdt_feed_sub *s;
    crdt_merge_report rep;
    tu_batch x;

    ck_assert_int_eq(crdt_feed_subscribe(&s, b, NULL, NULL, log_event, &l),
                     CRDT_OK);
    write_some(a);
    ck_assert_int_eq(tu_sync_one_way(b, a), CRDT_OK);
    ck_assert_int_eq(l.events, 1);
    ck_assert_str_eq(l.text,
                     "notes/n1:body,title;notes/n2:tags;stats/s:views;|");
    /* merging the same changes again changes nothing: no event */
    x = tu_export_all(a);
    ck_assert_int_eq(crdt_merge(&rep, b, x.v, x.n), CRDT_OK);
    ck_assert_uint_eq(rep.duplicates, 1);
    tu_batch_free(&x);
    ck_assert_int_eq(l.events, 1);
    /* an older write that loses LWW changes no state: no event */
    crdt_feed_unsubscribe(s);
}
END_TEST

static int
misbehave(void *ctx, const crdt_feed_event *ev)
{
    log_t *l = ctx;
    crdt_txn *t;
    crdt_feed_sub *s;
    crdt_feed_cursor c;

    (void)ev;
    l->events++;
    l->busy_txn = crdt_txn_begin(&t, l->r);
    l->busy_sub = crdt_feed_subscribe(&s, l->r, NULL, NULL, log_event, l);
    /* reading is fine */
    ck_assert_int_eq(crdt_feed_head(&c, l->r), CRDT_OK);
    ck_assert_uint_eq(c.seq, ev->commit);
    return 0;
}

START_TEST(test_callback_may_not_write)
{
    log_t l = { .events = 0, .r = a };
    crdt_feed_sub *s;

    ck_assert_int_eq(crdt_feed_subscribe(&s, a, NULL, NULL, misbehave, &l),
                     CRDT_OK);
    ck_assert_int_eq(tu_put_int(a, "c", "d", "f", 1), CRDT_OK);
    ck_assert_int_eq(l.events, 1);
    ck_assert_int_eq(l.busy_txn, CRDT_EBUSY);
    ck_assert_int_eq(l.busy_sub, CRDT_EBUSY);
    crdt_feed_unsubscribe(s);
    /* outside a callback, writing works again */
    ck_assert_int_eq(tu_put_int(a, "c", "d", "f", 2), CRDT_OK);
}
END_TEST

START_TEST(test_cursor_survives_reopen)
{
    crdt_feed_cursor c0, c1, c2, parsed;
    char text[CRDT_FEED_CURSOR_CHARS];
    log_t l = { .events = 0 };

    ck_assert_int_eq(crdt_feed_head(&c0, a), CRDT_OK);
    ck_assert_uint_eq(c0.seq, 0);
    write_some(a);
    ck_assert_int_eq(tu_put_int(a, "c", "d", "f", 1), CRDT_OK);
    ck_assert_int_eq(crdt_feed_since(a, &c0, NULL, NULL, 0, log_event, &l,
                                     &c1), 2);
    ck_assert_str_eq(l.text, "notes/n1:body,title;notes/n2:tags;"
                             "stats/s:views;|c/d:f;|");
    ck_assert_uint_eq(c1.seq, 2);
    crdt_feed_cursor_format(text, &c1);
    ck_assert_int_eq(crdt_feed_cursor_parse(&parsed, text), CRDT_OK);
    ck_assert_mem_eq(&parsed, &c1, sizeof c1);

    /* a restart: the cursor still means the same place */
    {
        char path[300];
        snprintf(path, sizeof path, "%s", crdt_replica_path(a));
        crdt_replica_close(a);
        ck_assert_int_eq(crdt_replica_open(&a, path, NULL), CRDT_OK);
    }
    ck_assert_int_eq(tu_put_int(a, "c", "d", "g", 1), CRDT_OK);
    l.text[0] = 0;
    l.events = 0;
    ck_assert_int_eq(crdt_feed_since(a, &parsed, NULL, NULL, 0, log_event,
                                     &l, &c2), 1);
    ck_assert_str_eq(l.text, "c/d:g;|");
    ck_assert_uint_eq(c2.seq, 3);
    /* caught up: nothing more */
    ck_assert_int_eq(crdt_feed_since(a, &c2, NULL, NULL, 0, log_event, &l,
                                     &c1), 0);
    ck_assert_uint_eq(c1.seq, 3);
    /* filtered: the commits are passed over, the cursor still moves */
    ck_assert_int_eq(crdt_feed_since(a, &c0, "stats", NULL, 0, log_event,
                                     &l, &c1), 1);
    ck_assert_uint_eq(c1.seq, 3);
    /* max: one at a time */
    ck_assert_int_eq(crdt_feed_since(a, &c0, NULL, NULL, 1, log_event, &l,
                                     &c1), 1);
    ck_assert_uint_eq(c1.seq, 1);

    ck_assert_int_eq(crdt_feed_cursor_parse(&parsed, "xyz"), CRDT_EINVAL);
    ck_assert_int_eq(crdt_feed_cursor_parse(&parsed, "0011223344556677."),
                     CRDT_EINVAL);
    ck_assert_int_eq(crdt_feed_cursor_parse(&parsed,
                                            "0011223344556677.1x"),
                     CRDT_EINVAL);
    ck_assert_int_eq(crdt_feed_cursor_parse(&parsed,
                                            "001122334455667g.1"),
                     CRDT_EINVAL);
}
END_TEST

START_TEST(test_foreign_or_future_cursor_says_everything_once)
{
    crdt_feed_cursor cb, ca, next, n2;
    log_t l = { .events = 0 };

    ck_assert_int_eq(tu_put_int(a, "c", "d", "f", 1), CRDT_OK);
    ck_assert_int_eq(tu_put_int(b, "c", "d", "f", 1), CRDT_OK);
    ck_assert_int_eq(crdt_feed_head(&cb, b), CRDT_OK);
    ck_assert_int_eq(crdt_feed_head(&ca, a), CRDT_OK);
    ck_assert_int_eq(memcmp(ca.gen, cb.gen, 8) != 0, 1);
    /* another replica's cursor */
    cb.seq = 0;
    ck_assert_int_eq(crdt_feed_since(a, &cb, NULL, NULL, 0, log_event, &l,
                                     &next), 1);
    ck_assert_str_eq(l.text, "*|");
    ck_assert_mem_eq(&next, &ca, sizeof ca);
    ck_assert_int_eq(crdt_feed_since(a, &next, NULL, NULL, 0, log_event,
                                     &l, &n2), 0);
    /* one from the future (a restored replica) */
    ca.seq += 5;
    l.text[0] = 0;
    ck_assert_int_eq(crdt_feed_since(a, &ca, "c", "d", 0, log_event, &l,
                                     &next), 1);
    ck_assert_str_eq(l.text, "*|");
    ck_assert_uint_eq(next.seq, 1);
}
END_TEST

START_TEST(test_state_swap_says_everything)
{
    crdt_feed_cursor c0, c1;
    log_t l = { .events = 0 }, sl = { .events = 0 };
    crdt_feed_sub *s;
    crdt_raw *t;

    ck_assert_int_eq(tu_put_int(a, "c", "d", "f", 1), CRDT_OK);
    ck_assert_int_eq(crdt_feed_head(&c0, a), CRDT_OK);
    ck_assert_int_eq(crdt_feed_subscribe(&s, a, "c", "d", log_event, &sl),
                     CRDT_OK);
    /* what a migration does: a new state in the spare slot, swapped in */
    ck_assert_int_eq(crdt_raw_begin(&t, a, 1), CRDT_OK);
    ck_assert_int_eq(crdt_raw_swap_state(t), CRDT_OK);
    ck_assert_int_eq(crdt_raw_commit(t), CRDT_OK);
    ck_assert_str_eq(sl.text, "*|"); /* even through a document filter */
    ck_assert_int_eq(crdt_feed_since(a, &c0, "other", NULL, 0, log_event,
                                     &l, &c1), 1);
    ck_assert_str_eq(l.text, "*|");
    ck_assert_int_eq(crdt_feed_since(a, &c1, NULL, NULL, 0, log_event, &l,
                                     &c0), 0);
    crdt_feed_unsubscribe(s);
}
END_TEST

START_TEST(test_watch_wakes_on_another_process)
{
    crdt_feed_watch *w;
    pid_t pid;
    int status;

    ck_assert_int_eq(crdt_feed_watch_open(&w, crdt_replica_path(a)),
                     CRDT_OK);
    ck_assert_int_ge(crdt_feed_watch_fd(w), 0);
    /* idle: no wake-up */
    ck_assert_int_eq(crdt_feed_watch_wait(w, 150), 0);
    pid = fork();
    ck_assert_int_ge(pid, 0);
    if (pid == 0) {
        crdt_replica *r2;
        if (crdt_replica_open(&r2, crdt_replica_path(a), NULL) != CRDT_OK ||
            tu_put_int(r2, "c", "d", "f", 1) != CRDT_OK)
            _exit(1);
        crdt_replica_close(r2);
        _exit(0);
    }
    ck_assert_int_eq(crdt_feed_watch_wait(w, 5000), 1);
    ck_assert_int_eq(waitpid(pid, &status, 0), pid);
    ck_assert_int_eq(WEXITSTATUS(status), 0);
    /* drained: quiet again (closing lock.mdb may queue one more wake) */
    crdt_feed_watch_clear(w);
    ck_assert_int_eq(crdt_feed_watch_wait(w, 100), 0);
    /* in this process too */
    ck_assert_int_eq(tu_put_int(a, "c", "d", "f", 2), CRDT_OK);
    ck_assert_int_eq(crdt_feed_watch_wait(w, 5000), 1);
    crdt_feed_watch_close(w);
    ck_assert_int_eq(crdt_feed_watch_open(&w, "/nonexistent/x"),
                     CRDT_ENOTFOUND);
}
END_TEST

static int
cmp_str(const void *x, const void *y)
{
    return strcmp(*(char *const *)x, *(char *const *)y);
}

/* Stored entries are coded against the one before (the parts they share
 * at either end are not repeated): names that share beginnings, ends,
 * both, or one that is all of another's beginning come back exactly,
 * to a subscriber and from the store after a reopen. */
START_TEST(test_coded_entries_round_trip)
{
    static const char *stems[] = { "d", "dd", "d-x", "xd", "d1", "d10",
                                   "d100", "e1", "e11", "e111" };
    char names[120][72], *sorted[120], want[16384];
    log_t sub = { .events = 0 }, since = { .events = 0 };
    crdt_feed_sub *s;
    crdt_feed_cursor c0, c1;
    crdt_txn *t;
    crdt_value one = crdt_value_int(1);
    size_t n = 0, w = 0;

    for (size_t i = 0; i < 10; i++)
        for (size_t j = 0; j < 12; j++) {
            if (j == 11) /* near the 64-byte limit, differing at the end */
                snprintf(names[n], sizeof names[n], "%.56s%s%zu",
                         "long-long-long-long-long-long-long-long-long-"
                         "long-long-long",
                         stems[i], j);
            else
                snprintf(names[n], sizeof names[n], "%s%.*s", stems[i],
                         (int)j, "zzzzzzzzzz");
            sorted[n] = names[n];
            n++;
        }
    ck_assert_int_eq(crdt_feed_head(&c0, a), CRDT_OK);
    ck_assert_int_eq(crdt_feed_subscribe(&s, a, NULL, NULL, log_event, &sub),
                     CRDT_OK);
    ck_assert_int_eq(crdt_txn_begin(&t, a), CRDT_OK);
    for (size_t i = 0; i < n; i++) {
        ck_assert_int_eq(crdt_txn_put(t, "c", names[i], "v", &one), CRDT_OK);
        ck_assert_int_eq(crdt_txn_put(t, "c", names[i], "vv", &one),
                         CRDT_OK);
        if (i % 7 == 0)
            ck_assert_int_eq(crdt_txn_del_doc(t, "c", names[i]), CRDT_OK);
    }
    ck_assert_int_eq(crdt_txn_commit(t, NULL), CRDT_OK);
    crdt_feed_unsubscribe(s);

    qsort(sorted, n, sizeof *sorted, cmp_str);
    for (size_t i = 0; i < n; i++) {
        int whole = (size_t)((char(*)[72])sorted[i] - names) % 7 == 0;
        /* a deleted document: its entry and its fields' */
        w += (size_t)snprintf(want + w, sizeof want - w, "c/%s%s:v,vv;",
                              sorted[i], whole ? "!" : "");
    }
    snprintf(want + w, sizeof want - w, "|");
    ck_assert(strcmp(sub.text, want) == 0); /* too long for the message */
    {
        char path[300];
        snprintf(path, sizeof path, "%s", crdt_replica_path(a));
        crdt_replica_close(a);
        ck_assert_int_eq(crdt_replica_open(&a, path, NULL), CRDT_OK);
    }
    ck_assert_int_eq(crdt_feed_since(a, &c0, NULL, NULL, 0, log_event,
                                     &since, &c1), 1);
    ck_assert(strcmp(since.text, want) == 0);
    /* stored coded: version 2, well under the whole entries' bytes */
    {
        MDB_txn *txn;
        MDB_val k, v;
        unsigned char key[8] = { 0, 0, 0, 0, 0, 0, 0, 1 };
        size_t whole = 6;
        ck_assert_int_eq(mdb_txn_begin(a->env, NULL, MDB_RDONLY, &txn), 0);
        k.mv_size = 8;
        k.mv_data = key;
        ck_assert_int_eq(mdb_get(txn, a->feed_dbi, &k, &v), 0);
        ck_assert_uint_eq(((unsigned char *)v.mv_data)[0], 2);
        for (size_t i = 0; i < n; i++) { /* len(2) | c 0 doc 0 field 0 */
            size_t dl = strlen(names[i]);
            whole += (2 + dl + 5) + (2 + dl + 6);
            if (i % 7 == 0)
                whole += 2 + dl + 4;
        }
        ck_assert_uint_lt(v.mv_size * 2, whole);
        mdb_txn_abort(txn);
    }
}
END_TEST

typedef struct {
    char doc[72];
    const char *field;
} pair_t;

static int
cmp_pair(const void *x, const void *y)
{
    const pair_t *a1 = x, *b1 = y;
    int c = strcmp(a1->doc, b1->doc);

    return c ? c : strcmp(a1->field, b1->field);
}

/* Random names of a two-letter alphabet (most entries share long
 * beginnings and ends with their neighbours), some near 64 bytes:
 * every commit's summary comes back exactly. */
START_TEST(test_coded_entries_random_names)
{
    static const char *fields[] = { "v", "vv", "w", "x1" };
    static pair_t pairs[300];
    static char want[16384];
    uint64_t seed = 0x5eed;
    crdt_value one = crdt_value_int(1);

    for (int round = 0; round < 5; round++) {
        log_t sub = { .events = 0 };
        crdt_feed_sub *s;
        crdt_txn *t;
        size_t n = 0, w = 0;

        for (size_t i = 0; i < 300; i++) {
            pair_t *pr = &pairs[i];
            size_t len;
            seed = seed * 6364136223846793005u + 1442695040888963407u;
            len = (seed >> 59) % 12 + 1;
            if ((seed >> 20) % 10 == 0)
                len = 56 + (seed >> 40) % 8;
            for (size_t j = 0; j < len; j++)
                pr->doc[j] = (char)('a' + (seed >> (j % 40 + 8) & 1));
            pr->doc[len] = 0;
            pr->field = fields[(seed >> 50) % 4];
        }
        ck_assert_int_eq(crdt_feed_subscribe(&s, a, NULL, NULL, log_event,
                                             &sub), CRDT_OK);
        ck_assert_int_eq(crdt_txn_begin(&t, a), CRDT_OK);
        for (size_t i = 0; i < 300; i++) {
            crdt_value v = crdt_value_int(round * 1000 + (int64_t)i);
            ck_assert_int_eq(crdt_txn_put(t, "c", pairs[i].doc,
                                          pairs[i].field, i ? &v : &one),
                             CRDT_OK);
        }
        ck_assert_int_eq(crdt_txn_commit(t, NULL), CRDT_OK);
        crdt_feed_unsubscribe(s);
        qsort(pairs, 300, sizeof *pairs, cmp_pair);
        for (size_t i = 0; i < 300; i++) {
            if (i > 0 && cmp_pair(&pairs[i - 1], &pairs[i]) == 0)
                continue;
            if (i == 0 || strcmp(pairs[i - 1].doc, pairs[i].doc) != 0)
                w += (size_t)snprintf(want + w, sizeof want - w, "%sc/%s:",
                                      n ? ";" : "", pairs[i].doc);
            else
                w += (size_t)snprintf(want + w, sizeof want - w, ",");
            w += (size_t)snprintf(want + w, sizeof want - w, "%s",
                                  pairs[i].field);
            n++;
        }
        snprintf(want + w, sizeof want - w, ";|");
        ck_assert(strcmp(sub.text, want) == 0);
    }
}
END_TEST

static int
decode(const unsigned char *p, size_t n)
{
    crdt_feed_event ev;
    void *mem;
    int rc = crdt__feed_decode(p, n, 1, NULL, NULL, &ev, &mem);

    free(mem);
    return rc;
}

START_TEST(test_decoder_refuses_bad_records)
{
    static const unsigned char good[] = {
        1, 0, 0, 0, 0, 2, 0, 6, 'c', 0, 'd', 0, 'f', 0, 0, 5, 'c', 0, 'e',
        0, 0,
    };
    unsigned char bad[sizeof good];

    ck_assert_int_eq(decode(good, sizeof good), CRDT_OK);
    ck_assert_int_eq(decode(good, 3), CRDT_ECORRUPT);
    ck_assert_int_eq(decode(good, sizeof good - 1), CRDT_ECORRUPT);
    memcpy(bad, good, sizeof bad);
    bad[0] = 3; /* version */
    ck_assert_int_eq(decode(bad, sizeof bad), CRDT_ECORRUPT);
    memcpy(bad, good, sizeof bad);
    bad[5] = 3; /* count beyond the bytes */
    ck_assert_int_eq(decode(bad, sizeof bad), CRDT_ECORRUPT);
    memcpy(bad, good, sizeof bad);
    bad[13] = 1; /* no NUL after the field */
    ck_assert_int_eq(decode(bad, sizeof bad), CRDT_ECORRUPT);
    memcpy(bad, good, sizeof bad);
    bad[18] = 'a'; /* second entry sorts before the first */
    ck_assert_int_eq(decode(bad, sizeof bad), CRDT_ECORRUPT);
    memcpy(bad, good, sizeof bad);
    bad[1] = 1; /* everything with entries */
    ck_assert_int_eq(decode(bad, sizeof bad), CRDT_ECORRUPT);
    memcpy(bad, good, sizeof bad);
    bad[8] = 0; /* empty collection name */
    ck_assert_int_eq(decode(bad, sizeof bad), CRDT_ECORRUPT);
    memcpy(bad, good, sizeof bad);
    bad[8] = 0xff; /* not UTF-8 */
    ck_assert_int_eq(decode(bad, sizeof bad), CRDT_ECORRUPT);
}
END_TEST

/* Version 2: keep | tail | n | n bytes, against the entry before. */
#define REC_GROW_N (6 + 20 * 23)
START_TEST(test_decoder_refuses_bad_coded_records)
{
    /* c/d:f; c/e:f (keep 2, tail 3: "e"); c/g! (keep 2, tail 1: "g" 0) */
    static const unsigned char good[] = {
        2, 0, 0, 0, 0, 3,
        0, 0, 6, 'c', 0, 'd', 0, 'f', 0,
        2, 3, 1, 'e',
        2, 1, 2, 'g', 0,
    };
    unsigned char bad[sizeof good];
    crdt_feed_event ev;
    void *mem;

    ck_assert_int_eq(crdt__feed_decode(good, sizeof good, 1, NULL, NULL, &ev,
                                       &mem), CRDT_OK);
    ck_assert_uint_eq(ev.ndocs, 3);
    ck_assert_str_eq(ev.docs[0].doc, "d");
    ck_assert_str_eq(ev.docs[1].doc, "e");
    ck_assert_uint_eq(ev.docs[1].nfields, 1);
    ck_assert_str_eq(ev.docs[1].fields[0], "f");
    ck_assert_int_eq(ev.docs[1].whole, 0);
    ck_assert_str_eq(ev.docs[2].coll, "c");
    ck_assert_str_eq(ev.docs[2].doc, "g");
    ck_assert_int_eq(ev.docs[2].whole, 1);
    ck_assert_uint_eq(ev.docs[2].nfields, 0);
    free(mem);
    ck_assert_int_eq(decode(good, sizeof good - 1), CRDT_ECORRUPT);
    memcpy(bad, good, sizeof bad);
    bad[6] = 1; /* the first entry keeps bytes of none before it */
    ck_assert_int_eq(decode(bad, sizeof bad), CRDT_ECORRUPT);
    memcpy(bad, good, sizeof bad);
    bad[16] = 5; /* keep + tail beyond the entry before */
    ck_assert_int_eq(decode(bad, sizeof bad), CRDT_ECORRUPT);
    memcpy(bad, good, sizeof bad);
    bad[17] = 9; /* n beyond the record */
    ck_assert_int_eq(decode(bad, sizeof bad), CRDT_ECORRUPT);
    memcpy(bad, good, sizeof bad);
    bad[18] = 'a'; /* c/a:f sorts before c/d:f */
    ck_assert_int_eq(decode(bad, sizeof bad), CRDT_ECORRUPT);
    memcpy(bad, good, sizeof bad);
    bad[18] = 'd'; /* a repeat of the entry before */
    ck_assert_int_eq(decode(bad, sizeof bad), CRDT_ECORRUPT);
    memcpy(bad, good, sizeof bad);
    bad[23] = 'x'; /* two NULs: no field */
    ck_assert_int_eq(decode(bad, sizeof bad), CRDT_ECORRUPT);
    memcpy(bad, good, sizeof bad);
    bad[5] = 4; /* more entries than the record holds */
    ck_assert_int_eq(decode(bad, sizeof bad), CRDT_ECORRUPT);
    {
        /* entries that grow by keeping all of the one before: refused
         * at the first beyond 195 bytes (the first pass, which sizes the
         * allocation, stops there) */
        unsigned char grow[REC_GROW_N];
        size_t o = 6, k = 0;
        grow[0] = 2, grow[1] = 0, grow[2] = 0, grow[3] = 0, grow[4] = 0;
        grow[5] = 20;
        for (int i = 0; i < 20; i++) {
            grow[o++] = (unsigned char)k; /* keep all */
            grow[o++] = 0;
            grow[o++] = 20;
            memset(grow + o, 'a' + i, 20);
            o += 20;
            k += 20;
            if (k > 255)
                k = 255;
        }
        ck_assert_int_eq(decode(grow, o), CRDT_ECORRUPT);
    }
}
END_TEST

Suite *
test_suite(void)
{
    Suite *s = suite_create("feed");
    TCase *tc = tcase_create("feed");

    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_set_timeout(tc, 30);
    tcase_add_test(tc, test_subscribe_local_commit_with_filters);
    tcase_add_test(tc, test_entries_of_prefix_names);
    tcase_add_test(tc, test_subscribe_merged_changes);
    tcase_add_test(tc, test_callback_may_not_write);
    tcase_add_test(tc, test_cursor_survives_reopen);
    tcase_add_test(tc, test_foreign_or_future_cursor_says_everything_once);
    tcase_add_test(tc, test_state_swap_says_everything);
    tcase_add_test(tc, test_watch_wakes_on_another_process);
    tcase_add_test(tc, test_coded_entries_round_trip);
    tcase_add_test(tc, test_coded_entries_random_names);
    tcase_add_test(tc, test_decoder_refuses_bad_records);
    tcase_add_test(tc, test_decoder_refuses_bad_coded_records);
    suite_add_tcase(s, tc);
    return s;
}
