/*
 * sim_world.c: the simulated world: replicas on real LMDB (tmpfs when
 * available), sessions wired through in-memory links with delays,
 * partitions, crashes, migrations; all decided by one seeded PRNG.
 */
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "crdt/backup.h"
#include "crdt/raw.h"
#include "sim.h"

/* ---- determinism: one PRNG behind libsodium and the clock ---- */

static sim_world *current_world;
static uint64_t sodium_rng = 1;

static uint64_t
mix(uint64_t *s)
{
    uint64_t z = (*s += 0x9e3779b97f4a7c15ULL);

    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}

static const char *
rb_name(void)
{
    return "strata-sim";
}

static uint32_t
rb_random(void)
{
    return (uint32_t)mix(&sodium_rng);
}

static void
rb_buf(void *buf, size_t n)
{
    unsigned char *p = buf;

    while (n > 0) {
        uint64_t v = mix(&sodium_rng);
        size_t k = n < 8 ? n : 8;
        memcpy(p, &v, k);
        p += k;
        n -= k;
    }
}

static struct randombytes_implementation sim_randombytes = {
    rb_name, rb_random, NULL, NULL, rb_buf, NULL,
};

static uint64_t
sim_clock(void *ctx)
{
    sim_world *w = ctx;

    return 1700000000000ull + w->now_ms + (uint64_t)w->clock_offset[w->cur];
}

uint64_t
sim_rand(sim_world *w)
{
    return mix(&w->rng);
}

uint64_t
sim_below(sim_world *w, uint64_t n)
{
    return n ? sim_rand(w) % n : 0;
}

void
sim_trace(sim_world *w, uint64_t v)
{
    w->trace = (w->trace ^ v) * 0x100000001b3ULL;
}

static void
say(sim_world *w, const char *what, int replica, long detail)
{
    if (w->verbose)
        fprintf(stderr, "[%8llu] %s r%d (%ld)\n",
                (unsigned long long)w->now_ms, what, replica, detail);
}

/* ---- replicas ---- */

static int
open_replica(sim_world *w, int i, int create, const unsigned char *space)
{
    crdt_open_options o = CRDT_OPEN_OPTIONS_INIT;
    int rc;

    o.create = create;
    o.no_sync = 1; /* logic, not power loss, is under test */
    o.map_size = 32u << 20;
    o.space_id = space;
    w->cur = i;
    rc = crdt_replica_open(&w->rep[i], w->dirs[i], &o);
    if (rc == CRDT_OK)
        rc = epoch_attach(w->rep[i]);
    return rc;
}

static void
link_close(sim_world *w, sim_link *l)
{
    (void)w;
    crdtnet_session_free(l->sa);
    crdtnet_session_free(l->sb);
    for (int d = 0; d < 2; d++) {
        for (size_t i = 0; i < l->n[d]; i++)
            free(l->q[d][i].data);
        free(l->q[d]);
    }
    memset(l, 0, sizeof *l);
}

static void
close_links_of(sim_world *w, int i)
{
    for (int k = 0; k < SIM_MAX_LINKS; k++) {
        sim_link *l = &w->links[k];
        if (l->used && (l->a == i || l->b == i)) {
            w->aborted_links++;
            link_close(w, l);
        }
    }
}

int
sim_world_init(sim_world *w, uint64_t seed, int verbose)
{
    unsigned char space[16];
    const char *base = access("/dev/shm", W_OK) == 0 ? "/dev/shm" : "/tmp";
    static const int sizes[] = { 3, 4, 5, 5, 7 };
    int rc;

    memset(w, 0, sizeof *w);
    w->seed = seed;
    w->rng = seed * 0x2545F4914F6CDD1DULL + 1;
    w->verbose = verbose;
    w->n = sizes[sim_below(w, 5)];
    /* a sixth of the seeds restore one backup twice, and another sixth
     * copy a replica's directory (STRATA_SIM_CLONES=0 leaves the clones
     * out, STRATA_SIM_OFF=copy both); by seed, not by the PRNG, so every
     * other decision of a seed stays as it was */
    w->allow_clone = seed % 6 == 1 && (getenv("STRATA_SIM_CLONES") == NULL ||
                                       strcmp(getenv("STRATA_SIM_CLONES"),
                                              "0") != 0);
    w->allow_restore = seed % 6 == 2;
    current_world = w;
    sodium_rng = seed ^ 0x5eedULL;
    randombytes_set_implementation(&sim_randombytes);
    if (sodium_init() < 0)
        return CRDT_ERROR;
    crdt_set_clock(sim_clock, w);
    snprintf(w->root, sizeof w->root, "%s/strata-sim-%d-%llu", base,
             (int)getpid(), (unsigned long long)seed);
    if (mkdir(w->root, 0700) != 0)
        return CRDT_EIO;
    w->commits = calloc(SIM_MAX_COMMITS, sizeof *w->commits);
    if (w->commits == NULL)
        return CRDT_ENOMEM;
    for (int i = 0; i < w->n; i++) {
        snprintf(w->dirs[i], sizeof w->dirs[i], "%s/r%d", w->root, i);
        w->clock_offset[i] = (int64_t)sim_below(w, 240001) - 120000;
        rc = open_replica(w, i, 1, i ? space : NULL);
        if (rc < 0)
            return rc;
        if (i == 0)
            crdt_replica_space_id(w->rep[0], space);
    }
    return CRDT_OK;
}

static void
rmtree(const char *path)
{
    char cmd[600];

    snprintf(cmd, sizeof cmd, "rm -rf '%s'", path);
    if (system(cmd) != 0)
        fprintf(stderr, "strata-sim: could not remove %s\n", path);
}

void
sim_world_free(sim_world *w)
{
    for (int k = 0; k < SIM_MAX_LINKS; k++)
        if (w->links[k].used)
            link_close(w, &w->links[k]);
    for (int i = 0; i < w->n; i++)
        crdt_replica_close(w->rep[i]);
    free(w->commits);
    /* STRATA_SIM_KEEP: the directories stay for strata or mdb_dump */
    if (w->root[0] && getenv("STRATA_SIM_KEEP") == NULL)
        rmtree(w->root);
    crdt_set_clock(NULL, NULL);
}

/* ---- writes ---- */

static const char *const COLLS[] = { "c", "d" };
static const char *const REGS[] = { "a", "b", "x" };

/* Sequence fields: "t" a text, "l" a list (names lenses also rename). */
static const char *const SEQS[] = { "t", "l" };
/* Names a delete or a lens rename/remove may pick: every type. */
static const char *const ANY_FIELD[] = { "a", "b", "x", "t", "l" };

/* Code point of unique element @p u: a CJK ideograph (the oracle's range). */
static uint32_t
uniq_cp(uint64_t u)
{
    return 0x4E00 + (uint32_t)(u % 20000);
}

/* Unique element @p u as 3 bytes of UTF-8. */
static size_t
uniq_utf8(char *out, uint64_t u)
{
    uint32_t cp = uniq_cp(u);

    out[0] = (char)(0xE0 | (cp >> 12));
    out[1] = (char)(0x80 | ((cp >> 6) & 0x3F));
    out[2] = (char)(0x80 | (cp & 0x3F));
    return 3;
}

/*
 * One text or list op, planned before the txn (its length is read from
 * the committed state; a txn holds at most one sequence op, so that
 * length is still right inside it). Positions favour the ends and one
 * middle spot, so concurrent inserts at the same place are common, and
 * deletes take ranges of up to 6 that others may be inserting into.
 */
typedef struct {
    int on;
    int list;
    int op;          /* 0 insert, 1 delete, 2 set (list) */
    char coll[4], doc[8];
    uint64_t pos, len;
    char text[3 * 6];
    size_t text_len;
    crdt_value v;
} seq_plan;

static void
plan_seq(sim_world *w, int i, seq_plan *p)
{
    crdt_read *rd;
    uint64_t n = 0;
    int rc;

    memset(p, 0, sizeof *p);
#ifndef SIM_SEQUENCES
    (void)i;
    return; /* built without the sequence engine */
#endif
    if (sim_below(w, 3) != 0)
        return;
    p->on = 1;
    p->list = (int)sim_below(w, 3) == 0;
    snprintf(p->coll, sizeof p->coll, "%s", COLLS[sim_below(w, 2)]);
    snprintf(p->doc, sizeof p->doc, "d%d", (int)sim_below(w, 3));
    if (crdt_read_begin(&rd, w->rep[i]) == CRDT_OK) {
        rc = crdt_read_seq_len(&n, rd, p->coll, p->doc, SEQS[p->list]);
        crdt_read_end(rd);
        if (rc < 0)
            n = 0;
    }
    p->op = n == 0 ? 0 : (int)sim_below(w, p->list ? 6 : 5);
    p->op = p->op <= 2 ? 0 : p->op <= 4 ? 1 : 2;
    switch (sim_below(w, 4)) {
    case 0: p->pos = 0; break;
    case 1: p->pos = n; break;
    case 2: p->pos = n / 2; break;
    default: p->pos = sim_below(w, n + 1); break;
    }
    if (p->op != 0 && p->pos >= n)
        p->pos = n - 1;
    if (p->op == 1) {
        p->len = 1 + sim_below(w, 6);
        if (p->len > n - p->pos)
            p->len = n - p->pos;
    }
    if (p->list) {
        p->v = crdt_value_int((int64_t)w->uniq++);
    } else if (p->op == 0) {
        int k = 1 + (int)sim_below(w, 5);
        for (int j = 0; j < k; j++)
            p->text_len += uniq_utf8(p->text + p->text_len, w->uniq++);
    }
}

static int
apply_seq(crdt_txn *t, const seq_plan *p)
{
    const char *f = SEQS[p->list];

    if (!p->list)
        return p->op == 0 ? crdt_txn_text_insert(t, p->coll, p->doc, f,
                                                 p->pos, p->text, p->text_len)
                          : crdt_txn_text_delete(t, p->coll, p->doc, f,
                                                 p->pos, p->len);
    switch (p->op) {
    case 0: return crdt_txn_list_insert(t, p->coll, p->doc, f, p->pos, &p->v);
    case 1: return crdt_txn_list_delete(t, p->coll, p->doc, f, p->pos, p->len);
    default: return crdt_txn_list_set(t, p->coll, p->doc, f, p->pos, &p->v);
    }
}

typedef struct {
    sim_world *w;
    const seq_plan *sp;
    int n_ops;
} write_body_args;

/* A write's ops: the body of its txn, or of its crdt_txn_write(). */
static int
write_body(crdt_txn *t, void *arg)
{
    write_body_args *b = arg;
    sim_world *w = b->w;
    int n_ops = b->n_ops, rc;

    if (b->sp->on) {
        rc = apply_seq(t, b->sp);
        if (rc == CRDT_OK)
            w->seq_ops++;
        else if (rc == CRDT_ETYPE || rc == CRDT_ENOTFOUND)
            rc = CRDT_OK; /* renamed into another type meanwhile: skip */
        if (rc < 0)
            return rc;
    }
    for (int k = 0; k < n_ops; k++) {
        const char *coll = COLLS[sim_below(w, 2)];
        char doc[8], s[8];
        crdt_value v;

        snprintf(doc, sizeof doc, "d%d", (int)sim_below(w, 8));
        switch (sim_below(w, 4)) {
        case 0: v = crdt_value_int((int64_t)sim_below(w, 100)); break;
        case 1:
            snprintf(s, sizeof s, "s%d", (int)sim_below(w, 5));
            v = crdt_value_str(s, strlen(s));
            break;
        case 2:
            v = sim_below(w, 2) ? crdt_value_int(INT64_MAX)
                                : crdt_value_null();
            break;
        default: v = crdt_value_int(7); break; /* equal values */
        }
        switch (sim_below(w, 10)) {
        case 0: case 1: case 2: case 3:
            rc = crdt_txn_put(t, coll, doc, REGS[sim_below(w, 3)], &v);
            break;
        case 4: case 5:
            rc = crdt_txn_incr(t, coll, doc, "n", (int64_t)sim_below(w, 9) - 4);
            break;
        case 6: case 7:
            rc = crdt_txn_sadd(t, coll, doc, "s", &v);
            break;
        case 8:
            rc = crdt_txn_srem(t, coll, doc, "s", &v);
            break;
        default:
            rc = sim_below(w, 2) ? crdt_txn_del_field(t, coll, doc,
                                                      ANY_FIELD[sim_below(w, 5)])
                                 : crdt_txn_del_doc(t, coll, doc);
        }
        if (rc == CRDT_ETYPE || rc == CRDT_ELIMIT)
            rc = CRDT_OK; /* a field renamed into another type: skip */
        if (rc < 0)
            return rc;
    }
    return CRDT_OK;
}

/* Odd replicas write through crdt_txn_write() (a group of one here),
 * even ones with a txn of their own: the same change either way.
 * info->first_seq is 0 when the write had no ops. */
static int
commit_write(sim_world *w, int i, const seq_plan *sp, int n_ops,
             crdt_commit_info *info)
{
    write_body_args b = { w, sp, n_ops };
    crdt_txn *t;
    int rc;

    memset(info, 0, sizeof *info);
    if (i % 2)
        return crdt_txn_write(w->rep[i], write_body, &b, info);
    if ((rc = crdt_txn_begin(&t, w->rep[i])) < 0)
        return rc;
    if ((rc = write_body(t, &b)) < 0) {
        crdt_txn_abort(t);
        return rc;
    }
    if (crdt_txn_op_count(t) == 0) {
        crdt_txn_abort(t);
        return CRDT_OK;
    }
    return crdt_txn_commit(t, info);
}

static int
random_write(sim_world *w, int i)
{
    crdt_commit_info info;
    int n_ops = 1 + (int)sim_below(w, 3), rc;
    seq_plan sp;
    uint64_t first_uniq = w->uniq;

    w->cur = i;
    plan_seq(w, i, &sp);
    rc = commit_write(w, i, &sp, n_ops, &info);
    if (rc == CRDT_EBUSY)
        return CRDT_OK; /* a migration was interrupted here */
    if (rc < 0 || info.first_seq == 0)
        return rc; /* an error, or no ops */
    crdt_actor a = crdt_replica_actor(w->rep[i]);
    unsigned char hash[32];
    uint64_t head = 0;
    /* the head right after the commit is the change just made */
    if ((rc = crdt_head_read(&head, hash, w->rep[i], &a)) < 0)
        return rc;
    for (uint64_t s = info.first_seq; s <= info.last_seq; s++) {
        if (w->n_commits < SIM_MAX_COMMITS) {
            w->commits[w->n_commits].actor = a;
            w->commits[w->n_commits].seq = s;
            w->commits[w->n_commits].replica = i;
            memcpy(w->commits[w->n_commits].hash, hash, 32);
            w->n_commits++;
        }
        w->ops++;
    }
    sim_trace(w, info.last_seq * 31 + (uint64_t)i);
    if (w->verbose)
        fprintf(stderr, "[%8llu] write r%d %02x%02x seq %llu..%llu\n",
                (unsigned long long)w->now_ms, i, a.b[0], a.b[1],
                (unsigned long long)info.first_seq,
                (unsigned long long)info.last_seq);
    /* what a duplicate finding names: the code points or list values */
    if (w->verbose && sp.on && sp.op == 0 && sp.list)
        fprintf(stderr, "           inserted list values %s/%s: %llu at %llu\n",
                sp.coll, sp.doc, (unsigned long long)first_uniq,
                (unsigned long long)sp.pos);
    else if (w->verbose && sp.on && sp.op == 0 && w->uniq > first_uniq)
        fprintf(stderr,
                "           inserted code points %s/%s: U+%04X..U+%04X at %llu\n",
                sp.coll, sp.doc, (unsigned)uniq_cp(first_uniq),
                (unsigned)uniq_cp(w->uniq - 1),
                (unsigned long long)sp.pos);
    return CRDT_OK;
}

/* ---- migrations ---- */

static int
set_checked(epoch_doc *doc, const char *coll, const char *id, void *ctx)
{
    crdt_value v = crdt_value_bool(1);

    (void)coll;
    (void)id;
    (void)ctx;
    return epoch_doc_set_register(doc, "checked", &v);
}

static int
random_migration(sim_world *w, int i, int crash_midway)
{
    epoch_info cur;
    epoch_builder *b = NULL;
    epoch_lens *l = NULL;
    char text[256];
    const char *coll = COLLS[sim_below(w, 2)];
    uint32_t v;
    int kind = (int)sim_below(w, 12), rc;
    const char *only = getenv("STRATA_SIM_KINDS"); /* e.g. "0123" */

    if (only != NULL && strchr(only, "0123456789ab"[kind]) == NULL)
        kind = 0;

    w->cur = i;
    if ((rc = epoch_current(&cur, w->rep[i])) < 0)
        return rc;
    v = epoch_schema_version(&cur, coll);
    text[0] = 0;
    switch (kind) {
    case 0: case 1: case 2: case 3:
        break; /* compaction only */
    case 4: case 5: case 6:
        snprintf(text, sizeof text, "collection %s %u -> %u\nrename %s -> %s%u\n",
                 coll, v, v + 1, ANY_FIELD[sim_below(w, 5)], "r", (unsigned)cur.number + 1);
        break;
    case 7: case 8:
        /* any field, text and list ones too, while other replicas
         * keep editing them */
        snprintf(text, sizeof text, "collection %s %u -> %u\nremove %s\n", coll,
                 v, v + 1, ANY_FIELD[sim_below(w, 5)]);
        break;
    case 9:
        snprintf(text, sizeof text,
                 "collection %s %u -> %u\nadd note string default \"-\"\n",
                 coll, v, v + 1);
        break;
    case 10:
        snprintf(text, sizeof text,
                 "collection %s %u -> %u\nconvert %s int -> string\n", coll, v,
                 v + 1, REGS[sim_below(w, 3)]);
        break;
    default:
        break; /* custom, below */
    }
    epoch_info_clear(&cur);
    if (crash_midway) {
        /* the marker is committed, then the process dies */
        crdt_raw *t;
        extern int epoch__marker_put(crdt_raw *, uint64_t, const char *,
                                     const char *);
        if ((rc = crdt_raw_begin(&t, w->rep[i], 1)) < 0)
            return rc;
        rc = epoch__marker_put(t, 0, text, "");
        if (rc == CRDT_OK)
            rc = crdt_raw_commit(t);
        else
            crdt_raw_abort(t);
        return rc;
    }
    if (text[0] && (rc = epoch_lens_parse(&l, text, strlen(text), NULL)) < 0)
        return rc;
    if ((rc = epoch_builder_new(&b, w->rep[i])) == CRDT_OK) {
        if (l)
            rc = epoch_builder_add_lens(b, l);
        else if (kind == 11)
            rc = epoch_builder_set_custom(b, "checked", coll, v + 1,
                                          set_checked, NULL);
        if (rc == CRDT_OK)
            rc = epoch_builder_commit(NULL, b);
    }
    epoch_builder_free(b);
    epoch_lens_free(l);
    if (rc == CRDT_EBUSY)
        return CRDT_OK; /* an interrupted one is pending here */
    if (rc == CRDT_OK) {
        w->migrations++;
        if (text[0])
            w->lens_migrations++;
        sim_trace(w, 0x4d16 + (uint64_t)i);
        say(w, "migrate", i, kind);
    }
    return rc;
}

/* Resume or abort an interrupted migration of replica @p i. With
 * @p busy_ok, a reset that a session of @p i is staging at this moment
 * (CRDT_EBUSY) means: later. In the heal phase no session is open, and
 * busy is a finding. */
static int
recover_marker(sim_world *w, int i, int busy_ok)
{
    epoch_marker m;
    int rc;

    w->cur = i;
    if (epoch_marker_get(&m, w->rep[i]) != CRDT_OK)
        return CRDT_OK;
    epoch_marker_clear(&m);
    if (sim_below(w, 2))
        rc = epoch_migration_abort(w->rep[i]);
    else
        rc = epoch_migration_resume(NULL, w->rep[i], NULL, NULL);
    if (rc == CRDT_EBUSY && busy_ok)
        return CRDT_OK;
    return rc == CRDT_ENOTFOUND ? CRDT_OK : rc;
}

/* ---- links ---- */

static sim_link *
find_link(sim_world *w, int a, int b)
{
    for (int k = 0; k < SIM_MAX_LINKS; k++) {
        sim_link *l = &w->links[k];
        if (l->used && ((l->a == a && l->b == b) || (l->a == b && l->b == a)))
            return l;
    }
    return NULL;
}

static int
link_open(sim_world *w, int a, int b)
{
    crdtnet_session_options o = CRDTNET_SESSION_OPTIONS_INIT;
    sim_link *l = NULL;

    if (a == b || w->blocked[a][b] || find_link(w, a, b))
        return CRDT_OK;
    for (int k = 0; k < SIM_MAX_LINKS && l == NULL; k++)
        if (!w->links[k].used)
            l = &w->links[k];
    if (l == NULL)
        return CRDT_OK;
    o.batch_bytes = 1024 + sim_below(w, 64 * 1024); /* small batches too */
    if (sim_below(w, 4) == 0)
        o.policy.max_epochs_behind = 2;
    memset(l, 0, sizeof *l);
    if (crdtnet_session_new(&l->sa, w->rep[a], &o) < 0 ||
        crdtnet_session_new(&l->sb, w->rep[b], &o) < 0) {
        crdtnet_session_free(l->sa);
        return CRDT_ENOMEM;
    }
    l->used = 1;
    l->a = a;
    l->b = b;
    w->syncs++;
    return CRDT_OK;
}

static int
push(sim_link *l, int d, const unsigned char *p, size_t len, uint64_t due)
{
    sim_msg *m;

    if (l->n[d] == l->cap[d]) {
        size_t cap = l->cap[d] ? 2 * l->cap[d] : 8;
        sim_msg *q = realloc(l->q[d], cap * sizeof *q);
        if (q == NULL)
            return CRDT_ENOMEM;
        l->q[d] = q;
        l->cap[d] = cap;
    }
    m = &l->q[d][l->n[d]++];
    m->data = malloc(len);
    if (m->data == NULL)
        return CRDT_ENOMEM;
    memcpy(m->data, p, len);
    m->len = len;
    /* a stream keeps its order: never before the message ahead of it */
    if (l->n[d] > 1 && l->q[d][l->n[d] - 2].due > due)
        due = l->q[d][l->n[d] - 2].due;
    m->due = due;
    return CRDT_OK;
}

/* Ended: finished, or failed (its goodbye is already queued). Only
 * link_step() takes output, so no message is ever lost here. */
static int
session_ended(crdtnet_session *s)
{
    return crdtnet_session_finished(s) || crdtnet_session_error(s) != 0;
}

/* The version vector of @p r for the debug dumps; NULL if unreadable. */
static crdt_vv *
vv_of(crdt_replica *r)
{
    crdt_read *rd;
    crdt_vv *vv = NULL;

    if (crdt_read_begin(&rd, r) == CRDT_OK) {
        if (crdt_read_vv(&vv, rd) != CRDT_OK)
            vv = NULL;
        crdt_read_end(rd);
    }
    return vv;
}

static int
dump_q(const epoch_quarantined *q, void *ctx)
{
    fprintf(stderr, "r%d QUAR %02x%02x:%llu epoch %02x%02x %.*s/%.*s/%.*s: %s\n",
            *(int *)ctx, q->actor.b[0], q->actor.b[1],
            (unsigned long long)q->seq, q->epoch_id[0], q->epoch_id[1],
            (int)q->op.coll_len, q->op.coll, (int)q->op.doc_len, q->op.doc,
            (int)q->op.field_len, q->op.field ? q->op.field : "",
            q->reason);
    return 0;
}

/* STRATA_SIM_DUMP=1: print a replica's raw state entries (for diffing
 * two replicas that diverged). */
static void
dump_state(sim_world *w, int i)
{
    crdt_raw *t;
    crdt_raw_cursor *c;
    const void *k, *v;
    size_t kl, vl;
    int rc;

    if (getenv("STRATA_SIM_DUMP") == NULL)
        return;
    if (crdt_raw_begin(&t, w->rep[i], 0) < 0)
        return;
    crdt_raw_cursor_open(&c, t, crdt_raw_state_db(t, 0));
    rc = crdt_raw_cursor_seek(c, NULL, 0, &k, &kl, &v, &vl);
    while (rc == CRDT_OK) {
        fprintf(stderr, "r%d ", i);
        for (size_t j = 0; j < kl; j++) {
            unsigned char ch = ((const unsigned char *)k)[j];
            if (ch >= 32 && ch < 127)
                fputc(ch, stderr);
            else
                fprintf(stderr, "\\x%02x", ch);
        }
        fprintf(stderr, " = ");
        for (size_t j = 0; j < vl; j++)
            fprintf(stderr, "%02x", ((const unsigned char *)v)[j]);
        fputc('\n', stderr);
        rc = crdt_raw_cursor_next(c, &k, &kl, &v, &vl);
    }
    crdt_raw_cursor_close(c);
    crdt_raw_abort(t);
    epoch_quarantine_list(w->rep[i], dump_q, &i);
    {
        epoch_info *all;
        size_t n;
        epoch_info cur;
        epoch_current(&cur, w->rep[i]);
        fprintf(stderr, "r%d CURRENT %llu %02x%02x base_total %llu\n", i,
                (unsigned long long)cur.number, cur.id[0], cur.id[1],
                (unsigned long long)cur.base_total);
        {
            crdt_vv *vv = vv_of(w->rep[i]);
            for (size_t j = 0; j < crdt_vv_count(vv); j++) {
                crdt_actor a;
                uint64_t sq;
                unsigned char hh[32];
                uint64_t hs = 0;
                crdt_vv_entry(vv, j, &a, &sq);
                memset(hh, 0, sizeof hh);
                crdt_head_read(&hs, hh, w->rep[i], &a);
                fprintf(stderr, "r%d VV %02x%02x=%llu head %02x%02x%02x\n", i,
                        a.b[0], a.b[1], (unsigned long long)sq, hh[0], hh[1],
                        hh[2]);
            }
            crdt_vv_free(vv);
        }
        epoch_info_clear(&cur);
        if (epoch_all(&all, &n, w->rep[i]) == CRDT_OK) {
            for (size_t j = 0; j < n; j++)
                fprintf(stderr, "r%d EPOCH %llu %02x%02x parent %02x%02x lens %s\n", i,
                        (unsigned long long)all[j].number, all[j].id[0],
                        all[j].id[1], all[j].parent[0], all[j].parent[1],
                        all[j].lens);
            epoch_chain_free(all, n);
        }
    }
}

/* Move messages for one link; @p faults allows delays and resets.
 * Returns 1 when the link is finished (and closed). */
static int
link_step(sim_world *w, sim_link *l, int faults, int *err)
{
    crdtnet_session *side[2] = { l->sa, l->sb };
    int idx[2] = { l->a, l->b };

    *err = 0;
    for (int pass = 0, moved = 1; moved && pass < 1000; pass++) {
        moved = 0;
        for (int d = 0; d < 2; d++) {
            const unsigned char *p;
            size_t len;
            int guard = 0;

            w->cur = idx[d];
            while (guard++ < 64 &&
                   crdtnet_session_next_out(side[d], &p, &len) == CRDT_OK) {
                uint64_t delay = 0;
                if (faults) {
                    delay = sim_below(w, 200);
                    if (sim_below(w, 20) == 0)
                        delay += sim_below(w, 2000); /* the long tail */
                }
                if (push(l, d, p, len, w->now_ms + delay) < 0)
                    return -1;
                moved = 1;
            }
        }
        for (int d = 0; d < 2; d++) {
            size_t k = 0;
            w->cur = idx[1 - d];
            while (k < l->n[d] && l->q[d][k].due <= w->now_ms) {
                crdtnet_session_feed(side[1 - d], l->q[d][k].data,
                                     l->q[d][k].len);
                free(l->q[d][k].data);
                k++;
                moved = 1;
            }
            memmove(l->q[d], l->q[d] + k, (l->n[d] - k) * sizeof *l->q[d]);
            l->n[d] -= k;
        }
    }
    if (faults && sim_below(w, 400) == 0) { /* connection reset */
        w->aborted_links++;
        link_close(w, l);
        return 1;
    }
    if (session_ended(l->sa) && session_ended(l->sb) && l->n[0] == 0 &&
        l->n[1] == 0) {
        const crdtnet_report *ra = crdtnet_session_report(l->sa);
        const crdtnet_report *rb = crdtnet_session_report(l->sb);
        int ea = crdtnet_session_error(l->sa), eb = crdtnet_session_error(l->sb);
        if (ea == 0 && eb == 0)
            w->syncs_ok++;
        if (ea == CRDT_EBUSY || eb == CRDT_EBUSY)
            w->busy++;
        w->resets += (uint64_t)(ra->snapshot_received + rb->snapshot_received);
        w->cut_changes += ra->cut_changes_received + rb->cut_changes_received;
        w->rejects += (uint64_t)(ra->rejected + rb->rejected);
        /* an error other than busy or a peer reset is a finding */
        if (ea == CRDT_ECORRUPT || eb == CRDT_ECORRUPT) {
            *err = CRDT_ECORRUPT;
            dump_state(w, l->a);
            dump_state(w, l->b);
        }
        else if (ea != 0 && ea != CRDT_EBUSY)
            *err = ea;
        else if (eb != 0 && eb != CRDT_EBUSY)
            *err = eb;
        if (*err != 0)
            snprintf(w->finding, sizeof w->finding,
                     "sync r%d<->r%d failed: %s / %s (%d, %d)", l->a, l->b,
                     ra->reason, rb->reason, ea, eb);
        sim_trace(w, (uint64_t)(ra->changes_sent * 7 + rb->changes_sent));
        if (w->verbose && getenv("STRATA_SIM_VV")) {
            for (int end = 0; end < 2; end++) {
                int ri = end ? l->b : l->a;
                crdt_vv *vv = vv_of(w->rep[ri]);
                fprintf(stderr, "    r%d vv:", ri);
                for (size_t j = 0; j < crdt_vv_count(vv); j++) {
                    crdt_actor a;
                    uint64_t q;
                    crdt_vv_entry(vv, j, &a, &q);
                    fprintf(stderr, " %02x%02x=%llu", a.b[0], a.b[1],
                            (unsigned long long)q);
                }
                fprintf(stderr, "\n");
                crdt_vv_free(vv);
            }
        }
        if (w->verbose)
            fprintf(stderr, "[%8llu] link r%d<->r%d: sent %llu/%llu snap %d/%d "
                    "rebased %llu/%llu quar %llu/%llu err %d/%d sync %d\n",
                    (unsigned long long)w->now_ms, l->a, l->b,
                    (unsigned long long)ra->changes_sent,
                    (unsigned long long)rb->changes_sent,
                    ra->snapshot_received, rb->snapshot_received,
                    (unsigned long long)ra->rebased_ops,
                    (unsigned long long)rb->rebased_ops,
                    (unsigned long long)ra->quarantined_ops,
                    (unsigned long long)rb->quarantined_ops, ea, eb,
                    ra->in_sync);
        if (w->verbose && (ea != 0 || eb != 0))
            fprintf(stderr, "    reasons: %s / %s\n", ra->reason, rb->reason);
        link_close(w, l);
        return 1;
    }
    return 0;
}

/* ---- copies ---- */

/* Clone: replica @p i's directory copied byte for byte into a new
 * replica; both go on writing under the same actor (an equivocation
 * every sync and every epoch must survive). */
static int
clone_replica(sim_world *w, int i)
{
    char cmd[700];
    int k = w->n, rc;

    if (!w->allow_clone || w->clones > 0 || k >= SIM_MAX_REPLICAS)
        return CRDT_OK;
    close_links_of(w, i);
    crdt_replica_close(w->rep[i]);
    w->rep[i] = NULL;
    snprintf(w->dirs[k], sizeof w->dirs[k], "%s/r%d", w->root, k);
    snprintf(cmd, sizeof cmd, "cp -a '%s' '%s'", w->dirs[i], w->dirs[k]);
    if (system(cmd) != 0)
        return CRDT_EIO;
    if ((rc = open_replica(w, i, 0, NULL)) < 0)
        return rc;
    w->clock_offset[k] = w->clock_offset[i];
    if ((rc = open_replica(w, k, 0, NULL)) < 0)
        return rc;
    w->n++;
    w->clones++;
    sim_trace(w, 0xc10e + (uint64_t)i);
    say(w, "clone", i, k);
    return CRDT_OK;
}

/* The backup that a later event restores twice. */
static int
take_backup(sim_world *w, int i)
{
    int rc;

    if (!w->allow_restore || w->have_backup)
        return CRDT_OK;
    snprintf(w->backup, sizeof w->backup, "%s/backup", w->root);
    w->cur = i;
    rc = crdt_backup(NULL, w->rep[i], w->backup);
    if (rc == CRDT_EBUSY)
        return CRDT_OK;
    if (rc < 0)
        return rc;
    w->have_backup = 1;
    say(w, "backup", i, 0);
    return CRDT_OK;
}

/* Restore the same backup into two new replicas that both write. */
static int
restore_twice(sim_world *w)
{
    int rc;

    if (!w->have_backup || w->restores > 0 || w->n + 2 > SIM_MAX_REPLICAS)
        return CRDT_OK;
    for (int c = 0; c < 2; c++) {
        int k = w->n;
        snprintf(w->dirs[k], sizeof w->dirs[k], "%s/r%d", w->root, k);
        w->cur = k;
        w->clock_offset[k] = 0;
        if ((rc = crdt_restore(NULL, w->backup, w->dirs[k])) < 0)
            return rc;
        if ((rc = open_replica(w, k, 0, NULL)) < 0)
            return rc;
        w->n++;
        say(w, "restore", k, 0);
    }
    w->restores++;
    sim_trace(w, 0xba0c);
    return CRDT_OK;
}

/* ---- the chaos phase ---- */

int
sim_chaos(sim_world *w, int steps)
{
    /* STRATA_SIM_OFF=migrate,crash,partition,custom narrows a failing
     * seed down to the events that matter */
    const char *off = getenv("STRATA_SIM_OFF");
    int no_mig = off && strstr(off, "migrate");
    int no_crash = off && strstr(off, "crash");
    int no_part = off && strstr(off, "partition");
    int no_copy = off && strstr(off, "copy");
    int each = getenv("STRATA_SIM_EACH") != NULL;
    int rc = CRDT_OK;

    for (int s = 0; s < steps && rc == CRDT_OK; s++) {
        int i = (int)sim_below(w, (uint64_t)w->n);
        int j = (int)sim_below(w, (uint64_t)w->n);
        uint64_t ev = sim_below(w, 100);

        w->now_ms += sim_below(w, 150);
        if (ev < 40) {
            rc = random_write(w, i);
        } else if (ev < 60) {
            rc = link_open(w, i, j);
        } else if (ev < 64 && !no_part) {
            /* partition: cut or heal one pair, both ways or one way */
            int cut = !w->blocked[i][j];
            w->blocked[i][j] = cut;
            if (sim_below(w, 3))
                w->blocked[j][i] = cut;
            w->partitions++;
            if (cut) {
                sim_link *l = find_link(w, i, j);
                if (l) {
                    w->aborted_links++;
                    link_close(w, l);
                }
            }
        } else if (ev < 67 && !no_crash && ev >= 64) {
            /* crash: drop everything in memory, reopen from disk */
            close_links_of(w, i);
            crdt_replica_close(w->rep[i]);
            w->rep[i] = NULL;
            w->crashes++;
            rc = open_replica(w, i, 0, NULL);
            say(w, "crash", i, 0);
        } else if (ev < 70 && !no_mig && ev >= 67) {
            rc = random_migration(w, i, sim_below(w, 6) == 0);
        } else if (ev < 72) {
            rc = recover_marker(w, i, 1);
        } else if (ev == 72 && !no_copy) {
            rc = clone_replica(w, i);
        } else if (ev == 73 && !no_copy) {
            rc = take_backup(w, i);
        } else if (ev == 74 && !no_copy) {
            rc = restore_twice(w);
        }
        for (int k = 0; k < SIM_MAX_LINKS && rc == CRDT_OK; k++) {
            int err;
            if (w->links[k].used && link_step(w, &w->links[k], 1, &err) &&
                err == CRDT_ECORRUPT)
                rc = err;
        }
        if (rc == CRDT_OK && each && sim_no_duplicates(w)) {
            fprintf(stderr, "[%8lld] step %d: %s\n", (long long)w->now_ms, s,
                    w->finding);
            rc = CRDT_ERROR;
        }
    }
    if (rc != CRDT_OK && w->finding[0] == 0)
        snprintf(w->finding, sizeof w->finding, "chaos step failed: %s",
                 crdt_strerror(rc));
    return rc;
}

/* ---- heal ---- */

static int
sync_pair(sim_world *w, int a, int b)
{
    sim_link *l;
    int err = 0;

    if (link_open(w, a, b) < 0)
        return CRDT_ENOMEM;
    l = find_link(w, a, b);
    for (int guard = 0; l != NULL && guard < 100000; guard++) {
        w->now_ms += 1;
        if (link_step(w, l, 0, &err))
            break;
    }
    return err;
}

int
sim_heal(sim_world *w)
{
    for (int k = 0; k < SIM_MAX_LINKS; k++)
        if (w->links[k].used)
            link_close(w, &w->links[k]);
    memset(w->blocked, 0, sizeof w->blocked);
    for (int i = 0; i < w->n; i++) {
        int rc;
        w->clock_offset[i] = 0;
        /* an interrupted migration is resumed or aborted by its owner */
        if ((rc = recover_marker(w, i, 0)) < 0) {
            snprintf(w->finding, sizeof w->finding,
                     "r%d: recovering the migration failed: %s", i,
                     crdt_strerror(rc));
            return rc;
        }
    }
    w->now_ms += 600000; /* past any skew */
    for (int round = 0; round < 20; round++) {
        for (int a = 0; a < w->n; a++) {
            for (int b = a + 1; b < w->n; b++) {
                int rc = sync_pair(w, a, b);
                if (rc != 0 && rc != CRDT_EBUSY)
                    return rc;
            }
        }
        /* quiet when every pair would find nothing to move */
        int quiet = 1;
        for (int a = 1; a < w->n && quiet; a++) {
            crdt_read *r0, *r1;
            crdt_stats s0, s1;
            crdt_vv *v0, *v1;
            if (crdt_read_begin(&r0, w->rep[0]) != CRDT_OK) {
                quiet = 0;
                break;
            }
            if (crdt_read_begin(&r1, w->rep[a]) != CRDT_OK) {
                crdt_read_end(r0);
                quiet = 0;
                break;
            }
            crdt_read_stats(&s0, r0);
            crdt_read_stats(&s1, r1);
            crdt_read_vv(&v0, r0);
            crdt_read_vv(&v1, r1);
            crdt_read_end(r0);
            crdt_read_end(r1);
            if (memcmp(s0.state_hash, s1.state_hash, 32) != 0 ||
                memcmp(s0.epoch_id, s1.epoch_id, 32) != 0 ||
                !crdt_vv_covers(v0, v1) || !crdt_vv_covers(v1, v0))
                quiet = 0;
            crdt_vv_free(v0);
            crdt_vv_free(v1);
        }
        if (quiet && round > 0)
            return CRDT_OK;
    }
    snprintf(w->finding, sizeof w->finding,
             "not converged after 20 rounds of healing (liveness)");
    return CRDT_ERROR;
}
