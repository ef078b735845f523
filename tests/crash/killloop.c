/*
 * strata-killloop: the kill -9 loop with real processes (docs/testing.md,
 * "Crash loops with real processes"). One replica; each cycle forks a
 * process that opens it and either commits one-op writes, reporting
 * each one's id down a pipe once its commit returned, or merges a batch
 * of changes another replica wrote (a synced batch; of the epoch before
 * once this one migrated, so rebased), or migrates it to the next epoch
 * (a compaction, or the resume of an interrupted one).
 * Once the process has opened the replica and begun, after a delay
 * drawn from 0 to --max-ms ms (a fifth of it for a migration or a merge,
 * which take a few here) it gets SIGKILL,
 * and the replica must then:
 *  - open (LMDB and the engine's own open checks);
 *  - pass the record check (crdt_replica_check_records());
 *  - keep a state hash equal to the one recomputed from every entry;
 *  - be at exactly one epoch: the one before, with or without the
 *    marker of an interrupted migration (writers then get busy), or the
 *    next one complete, never a mix;
 *  - hold every write whose commit returned (this cycle's all, and a
 *    sample of the earlier ones), and a merged batch whole or not at
 *    all (whole once the merge returned);
 *  - have no reader slot of a dead process left after one sweep;
 *  - take a killed merge's batch again, whole.
 * A cycle after an interrupted migration resumes it. The loop runs
 * --cycles cycles, and more migration cycles until --inside of the kills
 * landed inside a migration (after it began, the epoch unchanged).
 *
 *   strata-killloop [--cycles N] [--inside N] [--docs N] [--max-ms N]
 *                   [--seed S] [--keep]
 *
 * Exit 0 when every check held; 1 with the cycle, the seed and what
 * failed otherwise. Every wait is bounded.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <stdarg.h>
#include <fcntl.h>
#include <poll.h>
#include <inttypes.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "crdt/crdt.h"
#include "crdt/raw.h"
#include "crdt/text.h"
#include "epoch/epoch.h"

#define MSG_START UINT64_MAX       /* a migration began */
#define MSG_DONE (UINT64_MAX - 1)  /* ... and committed */
#define WRITES_MAX 100000          /* a writer's bound, were it not killed */
#define SAMPLE 16                  /* earlier writes checked per cycle */
/* Writes go to KEYS documents, id modulo KEYS, so the state (and with it
 * every migration and check) stays the same size however many cycles
 * run: a write is there when its document holds its id or a later one
 * of the same document. */
#define KEYS 512

static uint64_t rng;
static char path[300];
static uint64_t seed;
static long cycle;

static uint64_t
draw(void) /* splitmix64 */
{
    uint64_t z = (rng += 0x9e3779b97f4a7c15ULL);

    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}

static void __attribute__((noreturn, format(printf, 1, 2)))
fail(const char *fmt, ...)
{
    va_list ap;

    fprintf(stderr, "strata-killloop: FAIL at cycle %ld (--seed %" PRIu64
            "): ", cycle, seed);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
    fprintf(stderr, "strata-killloop: the replica is left in %s\n", path);
    exit(1);
}

static double
now_s(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void
must(int rc, const char *what)
{
    if (rc != CRDT_OK)
        fail("%s: %s", what, crdt_strerror(rc));
}

/* ---- the children ---------------------------------------------------- */

static void
say(int fd, uint64_t v)
{
    if (write(fd, &v, sizeof v) != (ssize_t)sizeof v)
        _exit(3);
}

/* Commit one-op writes ledger/k<id % KEYS> v=<id>, ids from @p first, and
 * report each once its commit returned. */
static void __attribute__((noreturn))
writer(int fd, uint64_t first)
{
    crdt_replica *r;

    if (crdt_replica_open(&r, path, NULL) != CRDT_OK)
        _exit(2);
    say(fd, MSG_START);
    for (uint64_t id = first; id < first + WRITES_MAX; id++) {
        char doc[32];
        crdt_value v = crdt_value_int((int64_t)id);
        crdt_txn *t;

        snprintf(doc, sizeof doc, "k%" PRIu64, id % KEYS);
        if (crdt_txn_begin(&t, r) != CRDT_OK)
            _exit(4);
        if (crdt_txn_put(t, "ledger", doc, "v", &v) != CRDT_OK ||
            crdt_txn_commit(t, NULL) != CRDT_OK)
            _exit(5);
        say(fd, id);
    }
    _exit(0);
}

/* Merge @p n changes of the peer. */
static void __attribute__((noreturn))
merger(int fd, const crdt_bytes *batch, size_t n)
{
    crdt_replica *r;

    if (crdt_replica_open(&r, path, NULL) != CRDT_OK ||
        epoch_attach(r) != CRDT_OK)
        _exit(2);
    say(fd, MSG_START);
    if (crdt_merge(NULL, r, batch, n) != CRDT_OK)
        _exit(7);
    say(fd, MSG_DONE);
    _exit(0);
}

/* Migrate to the next epoch: resume the interrupted one, or a
 * compaction. */
static void __attribute__((noreturn))
migrator(int fd, int resume)
{
    crdt_replica *r;
    epoch_builder *b;
    int rc;

    if (crdt_replica_open(&r, path, NULL) != CRDT_OK ||
        epoch_attach(r) != CRDT_OK)
        _exit(2);
    say(fd, MSG_START);
    if (resume) {
        rc = epoch_migration_resume(NULL, r, NULL, NULL);
    } else if ((rc = epoch_builder_new(&b, r)) == CRDT_OK) {
        rc = epoch_builder_commit(NULL, b);
        epoch_builder_free(b);
    }
    if (rc != CRDT_OK)
        _exit(6);
    say(fd, MSG_DONE);
    _exit(0);
}

/* ---- the parent ------------------------------------------------------ */

typedef struct {
    uint64_t *ids; /* every write whose commit returned */
    size_t n, cap;
} acked;

static void
acked_add(acked *a, uint64_t id)
{
    if (a->n == a->cap) {
        size_t cap = a->cap ? a->cap * 2 : 1024;
        uint64_t *p = realloc(a->ids, cap * sizeof *p);
        if (p == NULL)
            fail("out of memory");
        a->ids = p;
        a->cap = cap;
    }
    a->ids[a->n++] = id;
}

static void
check_write(crdt_read *rd, uint64_t id)
{
    char doc[32];
    crdt_field f;
    int rc;

    snprintf(doc, sizeof doc, "k%" PRIu64, id % KEYS);
    rc = crdt_read_field(&f, rd, "ledger", doc, "v");
    if (rc != CRDT_OK)
        fail("the write %" PRIu64 " (%s), committed before the kill, is "
             "missing (%s)", id, doc, crdt_strerror(rc));
    if (f.kind != CRDT_FIELD_REGISTER || f.value.type != CRDT_VINT ||
        f.value.u.i < (int64_t)id || (uint64_t)f.value.u.i % KEYS != id % KEYS)
        fail("the write %" PRIu64 " (%s), committed before the kill, is "
             "lost: the document holds an older one", id, doc);
}

/* ---- the peer's batches ---- */

#define PEER_CHANGES 400 /* written by the peer for each merge cycle */
_Static_assert(PEER_CHANGES <= KEYS, "a batch writes distinct documents");

static char peer_path[300];

typedef struct {
    crdt_bytes *v;
    size_t n;
    uint64_t first, last; /* ids the peer wrote for this cycle */
} batch;

static void
batch_free(batch *b)
{
    for (size_t i = 0; i < b->n; i++)
        free((void *)b->v[i].data);
    free(b->v);
    memset(b, 0, sizeof *b);
}

/* The peer writes PEER_CHANGES one-op changes (ledger2/p<id % KEYS>
 * v=id), then
 * every change of it the replica lacks becomes the batch. */
static void
peer_batch(batch *b, uint64_t *next)
{
    crdt_open_options o = CRDT_OPEN_OPTIONS_INIT;
    crdt_replica *p, *r;
    crdt_read *rd;
    crdt_vv *vv = NULL;
    crdt_export *e;
    const unsigned char *buf;
    size_t len, cap = 0;
    int rc;

    o.no_sync = 1; /* the peer's own durability is not under test */
    must(crdt_replica_open(&p, peer_path, &o), "open the peer");
    b->first = *next;
    for (int i = 0; i < PEER_CHANGES; i++, ++*next) {
        char doc[32];
        crdt_value v = crdt_value_int((int64_t)*next);
        crdt_txn *t;

        snprintf(doc, sizeof doc, "p%" PRIu64, *next % KEYS);
        must(crdt_txn_begin(&t, p), "peer begin");
        must(crdt_txn_put(t, "ledger2", doc, "v", &v), "peer put");
        must(crdt_txn_commit(t, NULL), "peer commit");
    }
    b->last = *next - 1;
    must(crdt_replica_open(&r, path, NULL), "open for its vv");
    must(crdt_read_begin(&rd, r), "read");
    must(crdt_read_vv(&vv, rd), "vv");
    crdt_read_end(rd);
    crdt_replica_close(r);
    /* as a sync sends them: a run proven by its last change's signature,
     * none signed again (the peer's own durability and signing cost are
     * not what is tested) */
    must(crdt_export_begin_as_stored(&e, p, vv), "peer export");
    while ((rc = crdt_export_next(e, &buf, &len)) == CRDT_OK) {
        unsigned char *copy = malloc(len);
        if (copy == NULL)
            fail("out of memory");
        memcpy(copy, buf, len);
        if (b->n == cap) {
            cap = cap ? cap * 2 : 256;
            crdt_bytes *nv = realloc(b->v, cap * sizeof *nv);
            if (nv == NULL)
                fail("out of memory");
            b->v = nv;
        }
        b->v[b->n].data = copy;
        b->v[b->n++].len = len;
    }
    if (rc != CRDT_ENOTFOUND)
        fail("peer export: %s", crdt_strerror(rc));
    crdt_export_end(e);
    crdt_vv_free(vv);
    crdt_replica_close(p);
}

/* After a killed merge: the batch again, as the next sync would send
 * it; it must merge (whatever part of it the kill let in). */
static void
merge_again(const batch *b)
{
    crdt_replica *r;

    must(crdt_replica_open(&r, path, NULL), "open to merge again");
    must(epoch_attach(r), "attach");
    must(crdt_merge(NULL, r, b->v, b->n), "the killed merge's batch again");
    crdt_replica_close(r);
}

/* 1 if the peer's write @p id is there, 0 if its document is absent or
 * holds an older write (@p id is the newest the peer made for it). */
static int
peer_write_held(crdt_read *rd, uint64_t id)
{
    char doc[32];
    crdt_field f;
    int rc;

    snprintf(doc, sizeof doc, "p%" PRIu64, id % KEYS);
    rc = crdt_read_field(&f, rd, "ledger2", doc, "v");
    if (rc == CRDT_ENOTFOUND)
        return 0;
    if (rc != CRDT_OK)
        fail("read %s: %s", doc, crdt_strerror(rc));
    if (f.kind != CRDT_FIELD_REGISTER || f.value.type != CRDT_VINT ||
        f.value.u.i > (int64_t)id || (uint64_t)f.value.u.i % KEYS != id % KEYS)
        fail("the merged %s holds a write the peer never made", doc);
    return f.value.u.i == (int64_t)id;
}

/* What the replica must be after a kill (see the top). @p epoch_before:
 * its epoch before the cycle; @p migration: the cycle migrated. Returns
 * 1 if an interrupted migration's marker is there. */
static int
check(const acked *a, size_t first_new, uint64_t *epoch, int migration,
      const batch *b, int merged)
{
    unsigned char kept[CRDT_HASH_BYTES], again[CRDT_HASH_BYTES];
    crdt_replica *r;
    crdt_raw *t;
    crdt_read *rd;
    epoch_info e;
    epoch_marker m;
    char why[256];
    int rc, dead = 0, marker;

    must(crdt_replica_open(&r, path, NULL), "open after the kill");
    rc = crdt_replica_check_records(r, why, sizeof why);
    if (rc != CRDT_OK)
        fail("record check: %s (%s)", crdt_strerror(rc), why);
    must(crdt_raw_begin(&t, r, 0), "read txn");
    must(crdt_raw_state_hash(t, kept), "kept state hash");
    must(crdt_raw_state_rehash(t, again), "recomputed state hash");
    crdt_raw_abort(t);
    if (memcmp(kept, again, sizeof kept) != 0)
        fail("the kept state hash is not the state's");

    must(epoch_current(&e, r), "current epoch");
    rc = epoch_marker_get(&m, r);
    if (rc != CRDT_OK && rc != CRDT_ENOTFOUND)
        fail("marker: %s", crdt_strerror(rc));
    marker = rc == CRDT_OK;
    if (marker) {
        if (!migration || e.number != *epoch ||
            m.target_number != e.number + 1)
            fail("a marker for epoch %" PRIu64 " at epoch %" PRIu64
                 " (was %" PRIu64 ")", m.target_number, e.number, *epoch);
        epoch_marker_clear(&m);
    } else if (e.number != *epoch &&
               !(migration && e.number == *epoch + 1)) {
        fail("at epoch %" PRIu64 " after a cycle that began at %" PRIu64,
             e.number, *epoch);
    }
    *epoch = e.number;
    epoch_info_clear(&e);

    must(crdt_read_begin(&rd, r), "read");
    for (size_t i = first_new; i < a->n; i++)
        check_write(rd, a->ids[i]);
    for (int i = 0; i < SAMPLE && first_new > 0; i++)
        check_write(rd, a->ids[draw() % first_new]);
    if (b != NULL) { /* one txn: all of the batch or none of it */
        int first = peer_write_held(rd, b->first),
            last = peer_write_held(rd, b->last);
        if (first != last)
            fail("half a merged batch: %" PRIu64 " %s, %" PRIu64 " %s",
                 b->first, first ? "held" : "missing", b->last,
                 last ? "held" : "missing");
        if (merged && !first)
            fail("a merge that returned is missing (%" PRIu64 ")",
                 b->first);
    }
    crdt_read_end(rd);

    must(crdt_replica_reader_check(r, &dead), "reader check");
    must(crdt_replica_reader_check(r, &dead), "reader check again");
    if (dead != 0)
        fail("%d reader slots of dead processes left after a sweep", dead);
    crdt_replica_close(r);
    return marker;
}

/* A replica of @p docs documents (a number and, on every tenth, a text)
 * for the migrations to rewrite. */
static void
create(const char *dir, long docs)
{
    crdt_open_options o = CRDT_OPEN_OPTIONS_INIT;
    crdt_replica *r;

    snprintf(path, sizeof path, "%s/r", dir);
    o.create = 1;
    must(crdt_replica_open(&r, path, &o), "create");
    for (long i = 0; i < docs;) {
        crdt_txn *t;

        must(crdt_txn_begin(&t, r), "begin");
        for (long j = 0; j < 500 && i < docs; j++, i++) {
            char doc[32];
            crdt_value v = crdt_value_int(i);

            snprintf(doc, sizeof doc, "d%ld", i);
            must(crdt_txn_put(t, "c", doc, "n", &v), "put");
            if (i % 10 == 0)
                must(crdt_txn_text_insert(t, "c", doc, "t", 0, "hello", 5),
                     "text");
        }
        must(crdt_txn_commit(t, NULL), "commit");
    }
    /* the peer: another replica of the space, whose changes are merged */
    {
        crdt_open_options po = CRDT_OPEN_OPTIONS_INIT;
        unsigned char space[CRDT_SPACE_ID_BYTES];
        crdt_replica *p;

        crdt_replica_space_id(r, space);
        snprintf(peer_path, sizeof peer_path, "%s/p", dir);
        po.create = 1;
        po.space_id = space;
        must(crdt_replica_open(&p, peer_path, &po), "create the peer");
        crdt_replica_close(p);
    }
    crdt_replica_close(r);
}

static long
opt_long(const char *v, const char *name)
{
    char *end;
    long n = strtol(v, &end, 10);

    if (*end != '\0' || n < 0) {
        fprintf(stderr, "strata-killloop: bad %s\n", name);
        exit(2);
    }
    return n;
}

int
main(int argc, char **argv)
{
    long cycles = 1000, want_inside = 200, docs = 2000, max_ms = 50;
    long inside = 0, migrations = 0, completed = 0, resumed = 0;
    long merges = 0, merges_inside = 0;
    int keep = 0, marker = 0;
    uint64_t epoch = 0, next_id = 1, peer_next = 1;
    char dir[] = "/tmp/strata-killloop.XXXXXX";
    acked a = { 0 };
    double t0;

    seed = (uint64_t)time(NULL);
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--keep") == 0)
            keep = 1;
        else if (i + 1 < argc && strcmp(argv[i], "--cycles") == 0)
            cycles = opt_long(argv[++i], "--cycles");
        else if (i + 1 < argc && strcmp(argv[i], "--inside") == 0)
            want_inside = opt_long(argv[++i], "--inside");
        else if (i + 1 < argc && strcmp(argv[i], "--docs") == 0)
            docs = opt_long(argv[++i], "--docs");
        else if (i + 1 < argc && strcmp(argv[i], "--max-ms") == 0)
            max_ms = opt_long(argv[++i], "--max-ms");
        else if (i + 1 < argc && strcmp(argv[i], "--seed") == 0)
            seed = (uint64_t)opt_long(argv[++i], "--seed");
        else {
            fprintf(stderr, "usage: strata-killloop [--cycles N] [--inside N]"
                    " [--docs N] [--max-ms N] [--seed S] [--keep]\n");
            return 2;
        }
    }
    if (max_ms < 1)
        max_ms = 1;
    rng = seed;
    if (mkdtemp(dir) == NULL) {
        perror("strata-killloop: mkdtemp");
        return 1;
    }
    create(dir, docs);
    printf("strata-killloop: seed %" PRIu64 ", %ld documents, kills after "
           "0 to %ld ms\n", seed, docs, max_ms);
    fflush(stdout);
    t0 = now_s();
    /* bounded: at most three times the cycles asked for */
    for (cycle = 0; cycle < 3 * (cycles + want_inside); cycle++) {
        int fds[2], status, migrate, merge, started = 0, done = 0;
        int was_marked;
        uint64_t before;
        batch b = { 0 };
        size_t first_new = a.n;
        struct timespec nap;
        uint64_t msg, delay_us;
        pid_t pid;

        if (cycle >= cycles && inside >= want_inside)
            break;
        /* a quarter of the cycles migrate, more once the loop is short
         * of kills inside a migration; an interrupted one is resumed */
        migrate = marker || draw() % 4 == 0 ||
                  (cycle >= cycles && inside < want_inside);
        /* a third of the others merge a batch of the peer's */
        merge = !migrate && draw() % 3 == 0;
        if (merge)
            peer_batch(&b, &peer_next);
        if (pipe2(fds, O_CLOEXEC) != 0)
            fail("pipe: %s", strerror(errno));
        fflush(stdout);
        pid = fork();
        if (pid < 0)
            fail("fork: %s", strerror(errno));
        if (pid == 0) {
            close(fds[0]);
            if (migrate)
                migrator(fds[1], marker);
            if (merge)
                merger(fds[1], b.v, b.n);
            writer(fds[1], next_id);
        }
        close(fds[1]);
        /* the delay counts from the work's start, once the process has
         * opened the replica (it says so; bounded by the poll) */
        {
            struct pollfd pfd = { fds[0], POLLIN, 0 };
            if (poll(&pfd, 1, 30000) != 1 ||
                read(fds[0], &msg, sizeof msg) != (ssize_t)sizeof msg ||
                msg != MSG_START)
                fail("the child did not start (open failed?)");
            started = 1;
        }
        /* a migration or a merge takes a few ms here: its kills come
         * within a fifth of the window */
        delay_us = draw() % ((uint64_t)max_ms * (merge || migrate ? 200
                                                                   : 1000) +
                             1);
        nap.tv_sec = (time_t)(delay_us / 1000000);
        nap.tv_nsec = (long)(delay_us % 1000000) * 1000;
        nanosleep(&nap, NULL);
        kill(pid, SIGKILL);
        if (waitpid(pid, &status, 0) != pid)
            fail("waitpid: %s", strerror(errno));
        if (WIFEXITED(status) && WEXITSTATUS(status) != 0)
            fail("the %s process failed by itself (exit %d)",
                 migrate ? "migration" : merge ? "merge" : "writer",
                 WEXITSTATUS(status));
        /* the pipe holds what it said before it died */
        while (read(fds[0], &msg, sizeof msg) == (ssize_t)sizeof msg) {
            if (msg == MSG_START)
                started = 1;
            else if (msg == MSG_DONE)
                done = 1;
            else {
                acked_add(&a, msg);
                next_id = msg + 1;
            }
        }
        close(fds[0]);
        before = epoch;
        was_marked = marker;
        marker = check(&a, first_new, &epoch, migrate, merge ? &b : NULL,
                       done);
        if (merge) {
            merges++;
            merges_inside += started && !done;
            if (!done) /* the next sync brings it: it merges whole */
                merge_again(&b);
            batch_free(&b);
        }
        if (migrate) {
            migrations++;
            resumed += was_marked;
            completed += epoch > before;
            /* begun, and killed before its commit */
            inside += started && !done && epoch == before;
        }
    }
    printf("strata-killloop: %ld cycles in %.1f s: %ld migrations (%ld "
           "killed inside, %ld resumed, %ld completed; at epoch %" PRIu64
           "), %ld merges of the peer's batches (%ld killed inside), %zu "
           "writes committed before their kill, all present; every check "
           "held\n",
           cycle, now_s() - t0, migrations, inside, resumed, completed,
           epoch, merges, merges_inside, a.n);
    free(a.ids);
    if (!keep) {
        char cmd[400];
        snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
        if (system(cmd) != 0)
            fprintf(stderr, "strata-killloop: could not remove %s\n", dir);
    }
    return inside >= want_inside && cycle >= cycles ? 0 : 1;
}
