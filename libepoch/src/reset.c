/*
 * reset.c: swapping in another replica's epoch snapshot (reset sync).
 *
 *   begin (small txn: spare cleared, "staging" token set)
 *     --put...--> entries staged into the spare slot in small txns
 *     --commit--> ONE txn: check hash, swap slots, adopt the epoch and
 *                 its heads, bring back the archived logs of a losing
 *                 fork, replay every change beyond the new heads
 *                 through the lenses (rebase), drop the token
 *   abort: drop the token; the spare is cleared by the next user.
 * Staging in small txns keeps the writer lock free while a snapshot
 * streams in from a slow peer.
 * Invariants:
 *  (1) The switch is one LMDB txn: a crash leaves the replica as it was
 *      (a half-staged spare slot is never read, and is cleared by the
 *      next reset or migration).
 *  (2) A snapshot written in an older schema than @p migrate_to is
 *      migrated in memory, one document at a time, before it is written.
 *  (3) Nothing is lost: local changes beyond the new heads stay in the
 *      log and are replayed; what cannot be rebased is quarantined.
 */
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "epoch_internal.h"

struct epoch_reset {
    crdt_replica *r;
    epoch_info target;  /* the snapshot's epoch */
    epoch_info final;   /* the epoch the replica ends at */
    epoch_lens *lens;   /* target -> final, when migrating up */
    epoch__rewriter *w; /* set when migrating up */
    unsigned char token[16];
    char *quarantine_reason;  /* rejected: quarantine unsynced at commit */
    int knew_owner;     /* our member set had an owner before the reset */
    uint64_t *moved_out;
    crdt_actor *forks;        /* equivocation lost: these actors' chains */
    size_t n_forks;
    char *fork_reason;
    uint64_t *fork_moved_out;
    crdt__enc buf;      /* entries not yet written: klen(2) k vlen(4) v;
                           klen 0xffff marks a change for the log */
    size_t n_buf;
    int failed;
    int committed; /* the staging is gone with the commit: no cleanup */
};

#define FLUSH_BYTES (4u * 1024 * 1024)

/*
 * The staging token: token(16) | started_ms(8) | pid(8) | pid_start(8),
 * big-endian; pid_start is field 22 of /proc/PID/stat (the process's
 * start time in clock ticks since boot), so a pid reused by another
 * process does not count as the owner. A token of 24 bytes (written
 * before the owner was recorded) has only the time.
 */
#define STAGING_BYTES 40

/* The start time of process @p pid, from /proc; 0 if it does not exist
 * or cannot be read. */
static uint64_t
proc_start(uint64_t pid)
{
    char path[64], buf[1024], *p;
    unsigned long long v = 0;
    FILE *f;
    size_t n;

    if (pid == 0 || pid > 0x7fffffff)
        return 0;
    snprintf(path, sizeof path, "/proc/%llu/stat", (unsigned long long)pid);
    if ((f = fopen(path, "re")) == NULL)
        return 0;
    n = fread(buf, 1, sizeof buf - 1, f);
    fclose(f);
    buf[n] = '\0';
    /* the command name (field 2) may hold spaces and ')': skip to the
     * last ')' then count fields 3..22 */
    if ((p = strrchr(buf, ')')) == NULL)
        return 0;
    p++;
    for (int field = 3; field <= 22 && p != NULL; field++) {
        while (*p == ' ')
            p++;
        if (field == 22) {
            v = strtoull(p, NULL, 10);
            break;
        }
        p = strchr(p, ' ');
    }
    return (uint64_t)v;
}

static int
proc_visible(void)
{
    return access("/proc/self/stat", R_OK) == 0;
}

int
epoch__staging_read(crdt_raw *t, epoch_staging *out)
{
    const unsigned char *v;
    const void *vp;
    size_t vl;

    int rc;

    memset(out, 0, sizeof *out);
    rc = crdt_raw_get(t, CRDT_DB_META, "staging", 7, &vp, &vl);
    if (rc < 0)
        return rc == CRDT_ENOTFOUND ? 0 : rc;
    if (vl != 24 && vl != STAGING_BYTES)
        return 0;
    v = vp;
    out->present = 1;
    out->started_ms = crdt__rd64(v + 16);
    out->active = out->started_ms + EPOCH__STAGING_STALE_MS >
                  crdt_raw_now_ms();
    out->owner_alive = -1; /* not known: the time alone decides */
    if (vl == STAGING_BYTES && proc_visible()) {
        uint64_t start = crdt__rd64(v + 32);
        out->pid = crdt__rd64(v + 24);
        out->owner_alive = start != 0 && proc_start(out->pid) == start;
        if (!out->owner_alive)
            out->active = 0; /* its owner died: recognised at once */
    }
    return 1;
}

int
epoch__staging_active(crdt_raw *t)
{
    epoch_staging s;
    int rc = epoch__staging_read(t, &s);

    return rc <= 0 ? rc : s.active;
}

int
epoch_staging_get(epoch_staging *out, crdt_replica *r)
{
    crdt_raw *t;
    int rc;

    if (out == NULL || r == NULL)
        return CRDT_EINVAL;
    if ((rc = crdt_raw_begin(&t, r, 0)) < 0)
        return rc;
    rc = epoch__staging_read(t, out);
    crdt_raw_abort(t);
    return rc < 0 ? rc : CRDT_OK;
}

/* Is the staging ours? (another reset may have taken over a stale one) */
static int
staging_ours(crdt_raw *t, const unsigned char *token)
{
    const void *v;
    size_t vl;
    int rc = crdt_raw_get(t, CRDT_DB_META, "staging", 7, &v, &vl);

    if (rc < 0)
        return rc == CRDT_ENOTFOUND ? 0 : rc;
    return (vl == 24 || vl == STAGING_BYTES) && memcmp(v, token, 16) == 0;
}

static int
stage_txn(epoch_reset *rs, crdt_raw **out)
{
    int rc = crdt_raw_begin(out, rs->r, 1);

    if (rc < 0)
        return rc;
    if ((rc = staging_ours(*out, rs->token)) <= 0) {
        crdt_raw_abort(*out);
        return rc < 0 ? rc : CRDT_EBUSY;
    }
    return CRDT_OK;
}

/* Write the buffered entries into the spare slot inside @p t. */
static int
flush_into(epoch_reset *rs, crdt_raw *t)
{
    const unsigned char *p = (const unsigned char *)rs->buf.sb.data;
    const unsigned char *end;
    int rc = CRDT_OK;

    epoch__rewriter_set_txn(rs->w, t);
    if (p == NULL || rs->buf.sb.size == 0)
        return CRDT_OK; /* nothing buffered (an empty snapshot) */
    end = p + rs->buf.sb.size;
    while (p < end && rc == CRDT_OK) {
        size_t kl = (size_t)p[0] << 8 | p[1];
        if (kl == 0xffff) { /* a change of the sender's log */
            size_t vl = (size_t)crdt__rd64((const unsigned char[8]){
                0, 0, 0, 0, p[2], p[3], p[4], p[5] });
            crdt_change c;
            unsigned char key[16];
            rc = crdt_change_decode(&c, p + 6, vl);
            if (rc == CRDT_OK) {
                memcpy(key, c.actor.b, 8);
                crdt__be64(key + 8, c.seq + c.n_ops - 1);
                rc = crdt_raw_put(t, CRDT_DB_STAGING, key, 16, p + 6, vl);
            }
            p += 6 + vl;
            continue;
        }
        size_t vl = (size_t)crdt__rd64((const unsigned char[8]){
            0, 0, 0, 0, p[2 + kl], p[3 + kl], p[4 + kl], p[5 + kl] });
        const unsigned char *k = p + 2, *v = p + 6 + kl;
        rc = rs->w ? epoch__rewriter_put(rs->w, k, kl, v, vl)
                   : crdt_raw_spare_put(t, k, kl, v, vl);
        p = v + vl;
    }
    return rc;
}

/* Write what is buffered in its own small txn: the replica stays open
 * to other writers while a snapshot streams in. */
static int
flush(epoch_reset *rs)
{
    crdt_raw *t;
    int rc;

    if (rs->buf.sb.size == 0)
        return CRDT_OK;
    for (int tries = 0; tries < 8; tries++) {
        if ((rc = stage_txn(rs, &t)) < 0)
            return rc;
        rc = flush_into(rs, t);
        if (rc == CRDT_OK)
            rc = crdt_raw_commit(t);
        else
            crdt_raw_abort(t);
        if (!epoch__grew(rs->r, &rc))
            break;
    }
    if (rc == CRDT_OK) {
        crdt__enc_reset(&rs->buf);
        rs->n_buf = 0;
    }
    return rc;
}

/* What epoch_reset_begin() reads and writes in its txn: the epochs, the
 * lens and its rewriter, the spare slot and staging cleared, our
 * staging token. On failure nothing of it is left in @p rs, so it can
 * be run again (after the map grew). */
static int
begin_in(epoch_reset *rs, const unsigned char *target_id,
         const unsigned char *migrate_to)
{
    unsigned char staging[STAGING_BYTES];
    crdt_raw *t = NULL;
    const void *v;
    size_t vl;
    int rc;

    if ((rc = crdt_raw_begin(&t, rs->r, 1)) < 0)
        return rc;
    rc = crdt_raw_get(t, CRDT_DB_META, "upgrade", 7, &v, &vl);
    if (rc == CRDT_ENOTFOUND)
        rc = epoch__staging_active(t);
    else if (rc == CRDT_OK)
        rc = 1;
    if (rc != 0) {
        /* a migration, or another reset, is running */
        rc = rc > 0 ? CRDT_EBUSY : rc;
        goto fail;
    }
    if ((rc = epoch__get_in(&rs->target, t, target_id)) < 0)
        goto fail;
    if (migrate_to != NULL &&
        memcmp(migrate_to, target_id, EPOCH_ID_BYTES) != 0) {
        /* keeps (2): only a direct child made by a lens is supported */
        if ((rc = epoch__get_in(&rs->final, t, migrate_to)) < 0)
            goto fail;
        if (memcmp(rs->final.parent, target_id, EPOCH_ID_BYTES) != 0 ||
            rs->final.custom[0] != '\0') {
            rc = CRDT_EINVAL;
            goto fail;
        }
        if (rs->final.lens[0] != '\0' &&
            (rc = epoch_lens_parse(&rs->lens, rs->final.lens,
                                   strlen(rs->final.lens), NULL)) < 0)
            goto fail;
        if ((rc = epoch__rewriter_new(&rs->w, t, rs->lens, NULL, NULL,
                                      NULL)) < 0)
            goto fail;
    } else if ((rc = epoch__get_in(&rs->final, t, target_id)) < 0) {
        goto fail;
    }
    memcpy(staging, rs->token, 16);
    crdt__be64(staging + 16, crdt_raw_now_ms());
    crdt__be64(staging + 24, (uint64_t)getpid());
    crdt__be64(staging + 32, proc_start((uint64_t)getpid()));
    if ((rc = crdt_raw_spare_clear(t)) < 0 ||
        (rc = crdt_raw_clear(t, CRDT_DB_STAGING)) < 0 ||
        (rc = crdt_raw_put(t, CRDT_DB_META, "staging", 7, staging,
                           sizeof staging)) < 0)
        goto fail;
    rc = crdt_raw_commit(t);
    t = NULL;
    if (rc == CRDT_OK)
        return CRDT_OK;
fail:
    crdt_raw_abort(t);
    epoch__rewriter_free(rs->w);
    rs->w = NULL;
    epoch_lens_free(rs->lens);
    rs->lens = NULL;
    epoch_info_clear(&rs->target);
    epoch_info_clear(&rs->final);
    return rc;
}

int
epoch_reset_begin(epoch_reset **out, crdt_replica *r,
                  const unsigned char *target_id,
                  const unsigned char *migrate_to)
{
    epoch_reset *rs;
    int rc;

    if (out == NULL || r == NULL || target_id == NULL)
        return CRDT_EINVAL;
    rs = calloc(1, sizeof *rs);
    if (rs == NULL)
        return CRDT_ENOMEM;
    rs->r = r;
    crdt__enc_init(&rs->buf);
    randombytes_buf(rs->token, sizeof rs->token);
    /* BUSY before waiting on the writer lock a migration holds */
    if ((rc = crdt_raw_marker_peek(r)) != 0) {
        rc = rc > 0 ? CRDT_EBUSY : rc;
        goto fail;
    }
    if ((rc = crdt_members_owner(r, NULL)) < 0)
        goto fail;
    rs->knew_owner = rc;
    for (int tries = 0; tries < 8; tries++) {
        rc = begin_in(rs, target_id, migrate_to);
        if (!epoch__grew(r, &rc))
            break;
    }
    if (rc < 0)
        goto fail;
    *out = rs;
    return CRDT_OK;
fail:
    crdt__enc_free(&rs->buf);
    free(rs);
    return rc;
}

int
epoch_reset_change(epoch_reset *rs, const void *change, size_t len)
{
    unsigned char hdr[6] = { 0xff, 0xff, (unsigned char)(len >> 24),
                             (unsigned char)(len >> 16),
                             (unsigned char)(len >> 8), (unsigned char)len };
    crdt_change c;
    int rc;

    if (rs == NULL || change == NULL || len > CRDT_CHANGE_MAX)
        return CRDT_EINVAL;
    if (rs->failed)
        return CRDT_EBADTXN;
    if ((rc = crdt_change_decode(&c, change, len)) < 0)
        return rc; /* checked again, with its chain, at commit */
    crdt__enc_raw(&rs->buf, (const char *)hdr, 6);
    crdt__enc_raw(&rs->buf, change, len);
    if (crdt__enc_ok(&rs->buf) < 0) {
        rs->failed = 1; /* a short record must never be flushed */
        return CRDT_ENOMEM;
    }
    if (rs->buf.sb.size < FLUSH_BYTES)
        return CRDT_OK;
    rc = flush(rs);
    if (rc < 0)
        rs->failed = 1;
    return rc;
}

/* A staged change of the sender's takes the key of one of ours with
 * other content (an equivocation: a copy of this replica wrote): ours
 * goes to the quarantine first, never overwritten. */
static int
keep_ours(crdt_raw *t, const unsigned char *key, const unsigned char *theirs,
          size_t tl, uint64_t *lost)
{
    static const char why[] = "equivocation: the peer's log holds another "
                              "change for these seqs (a copied replica?); "
                              "this one lost";
    const void *v;
    size_t vl;
    crdt_change mine, other;
    unsigned char *copy;
    uint64_t n = 0;
    int rc;

    if ((rc = crdt_raw_get(t, CRDT_DB_LOG, key, 16, &v, &vl)) < 0)
        return rc == CRDT_ENOTFOUND ? CRDT_OK : rc;
    if ((copy = malloc(vl)) == NULL)
        return CRDT_ENOMEM;
    memcpy(copy, v, vl);
    rc = crdt_change_decode(&mine, copy, vl);
    if (rc == CRDT_OK && crdt_change_decode(&other, theirs, tl) == CRDT_OK &&
        memcmp(mine.hash, other.hash, CRDT_HASH_BYTES) != 0) {
        rc = crdt_raw_quarantine_change(&n, t, &mine, 0,
                                        CRDT_QK_EQUIVOCATION, why);
        *lost += n;
    }
    free(copy);
    return rc;
}

static const char WHY_STAGED[] = "equivocation: the peer's log holds another "
                                 "change for these seqs (a copied "
                                 "replica?); this one lost";

/*
 * The sender's log (staged) holds a chain of actor @p a that ours leaves:
 * a change of ours for seqs the staged chain covers that is not one of
 * its changes (another version: a copy wrote; its bounds may differ, so
 * it need not share a key with theirs), and every change of ours after
 * it (they continue the losing version), go to the quarantine before
 * the staged log joins ours. Left in the log they would sit between the
 * sender's changes: an unsigned change of theirs would find ours after
 * it instead of its signed successor (CRDT_EAUTH), and the replay would
 * meet two changes for one seq (CRDT_ECONFLICT), failing every reset.
 */
static int
drop_forked_actor(crdt_raw *t, const unsigned char *a, uint64_t *lost,
                  uint64_t *actors)
{
    epoch__span *ours = NULL, *theirs = NULL;
    size_t n_ours = 0, n_theirs = 0;
    uint64_t staged_max = 0;
    int losing = 0, moved = 0, rc;

    if ((rc = epoch__spans_of(&theirs, &n_theirs, t, CRDT_DB_STAGING, a)) <
        0)
        return rc;
    if ((rc = epoch__spans_of(&ours, &n_ours, t, CRDT_DB_LOG, a)) < 0) {
        free(theirs);
        return rc;
    }
    for (size_t j = 0; j < n_theirs; j++)
        if (theirs[j].last > staged_max)
            staged_max = theirs[j].last;
    for (size_t i = 0; rc == CRDT_OK && i < n_ours; i++) {
        int same = 0;
        if (n_theirs == 0 || ours[i].last < theirs[0].first)
            continue; /* below the sender's log: folded or judged before */
        for (size_t j = 0; j < n_theirs && !same; j++)
            same = theirs[j].last == ours[i].last &&
                   memcmp(theirs[j].hash, ours[i].hash,
                          CRDT_HASH_BYTES) == 0;
        if (!losing && (same || ours[i].first > staged_max))
            continue;
        losing = 1;
        {
            const void *v;
            size_t vl;
            unsigned char *copy;
            crdt_change ch;
            uint64_t n = 0;
            if ((rc = crdt_raw_get(t, CRDT_DB_LOG, ours[i].key, 16, &v,
                                   &vl)) < 0)
                break;
            if ((copy = malloc(vl)) == NULL) {
                rc = CRDT_ENOMEM;
                break;
            }
            memcpy(copy, v, vl); /* the view dies at the first write */
            rc = crdt_change_decode(&ch, copy, vl);
            if (rc == CRDT_OK)
                rc = crdt_raw_quarantine_change(&n, t, &ch, 0,
                                                CRDT_QK_EQUIVOCATION,
                                                WHY_STAGED);
            if (rc == CRDT_OK)
                rc = crdt_raw_del(t, CRDT_DB_LOG, ours[i].key, 16);
            free(copy);
            *lost += n;
            moved = 1;
        }
    }
    free(ours);
    free(theirs);
    if (rc == CRDT_OK && moved) {
        (*actors)++;
        rc = crdt_raw_recount_log(t);
    }
    return rc;
}

/* drop_forked_actor() for every actor of the staged log; @p actors
 * counts those whose chain forked. */
static int
drop_forked(crdt_raw *t, uint64_t *lost, uint64_t *actors)
{
    unsigned char prev[CRDT_ACTOR_BYTES];
    int have = 0, rc;

    for (;;) {
        crdt_raw_cursor *c;
        const void *k, *v;
        size_t kl, vl;
        unsigned char next[CRDT_ACTOR_BYTES + 8];

        if ((rc = crdt_raw_cursor_open(&c, t, CRDT_DB_STAGING)) < 0)
            return rc;
        if (have) { /* the first key past every key of the previous actor */
            memcpy(next, prev, CRDT_ACTOR_BYTES);
            memset(next + CRDT_ACTOR_BYTES, 0xff, 8);
            rc = crdt_raw_cursor_seek(c, next, sizeof next, &k, &kl, &v, &vl);
            if (rc == CRDT_OK && kl >= CRDT_ACTOR_BYTES &&
                memcmp(k, prev, CRDT_ACTOR_BYTES) == 0)
                rc = crdt_raw_cursor_next(c, &k, &kl, &v, &vl);
        } else {
            rc = crdt_raw_cursor_seek(c, NULL, 0, &k, &kl, &v, &vl);
        }
        if (rc == CRDT_OK && kl < CRDT_ACTOR_BYTES)
            rc = CRDT_ECORRUPT;
        if (rc == CRDT_OK)
            memcpy(prev, k, CRDT_ACTOR_BYTES);
        crdt_raw_cursor_close(c);
        if (rc == CRDT_ENOTFOUND)
            return CRDT_OK;
        if (rc < 0)
            return rc;
        have = 1;
        if ((rc = drop_forked_actor(t, prev, lost, actors)) < 0)
            return rc;
    }
}

/* At commit: the staged changes join the log (the replay applies them). */
static int
unstage(crdt_raw *t, uint64_t *lost, uint64_t *forked)
{
    crdt_raw_cursor *c;
    const void *k, *v;
    size_t kl, vl;
    int rc;

    if ((rc = drop_forked(t, lost, forked)) < 0)
        return rc;
    if ((rc = crdt_raw_cursor_open(&c, t, CRDT_DB_STAGING)) < 0)
        return rc;
    rc = crdt_raw_cursor_seek(c, NULL, 0, &k, &kl, &v, &vl);
    while (rc == CRDT_OK) {
        unsigned char key[16], *copy = malloc(vl);
        if (copy == NULL || kl != 16) {
            free(copy);
            rc = copy ? CRDT_ECORRUPT : CRDT_ENOMEM;
            break;
        }
        memcpy(key, k, 16);
        memcpy(copy, v, vl);
        rc = keep_ours(t, key, copy, vl, lost);
        if (rc == CRDT_OK)
            rc = crdt_raw_put(t, CRDT_DB_LOG, key, 16, copy, vl);
        free(copy);
        if (rc < 0)
            break;
        rc = crdt_raw_cursor_next(c, &k, &kl, &v, &vl);
    }
    crdt_raw_cursor_close(c);
    if (rc != CRDT_ENOTFOUND)
        return rc;
    return crdt_raw_clear(t, CRDT_DB_STAGING);
}

int
epoch_reset_quarantine_unsynced(epoch_reset *rs, const char *reason,
                                uint64_t *moved_out)
{
    if (rs == NULL || reason == NULL)
        return CRDT_EINVAL;
    free(rs->quarantine_reason);
    rs->quarantine_reason = strdup(reason);
    if (rs->quarantine_reason == NULL)
        return CRDT_ENOMEM;
    rs->moved_out = moved_out;
    return CRDT_OK;
}

int
epoch_reset_quarantine_forks(epoch_reset *rs, const crdt_actor *actors,
                             size_t n, const char *reason,
                             uint64_t *moved_out)
{
    crdt_actor *forks;
    char *why;

    if (rs == NULL || reason == NULL || (actors == NULL && n > 0))
        return CRDT_EINVAL;
    /* both copies first: a failed call leaves the actors named before
     * as they were (freed, they would still be counted in n_forks, and
     * the commit would read them) */
    forks = malloc((n ? n : 1) * sizeof *actors);
    why = strdup(reason);
    if (forks == NULL || why == NULL) {
        free(forks);
        free(why);
        return CRDT_ENOMEM;
    }
    free(rs->forks);
    free(rs->fork_reason);
    rs->forks = forks;
    rs->fork_reason = why;
    if (n > 0)
        memcpy(rs->forks, actors, n * sizeof *actors);
    rs->n_forks = n;
    rs->fork_moved_out = moved_out;
    return CRDT_OK;
}

int
epoch_reset_put(epoch_reset *rs, const void *k, size_t kl, const void *v,
                size_t vl)
{
    unsigned char hdr[6];
    int rc;

    if (rs == NULL || k == NULL || kl == 0 || kl > CRDT__KEY_MAX ||
        vl > CRDT_CHANGE_MAX + 64)
        return CRDT_EINVAL;
    if (rs->failed)
        return CRDT_EBADTXN;
    hdr[0] = (unsigned char)(kl >> 8);
    hdr[1] = (unsigned char)kl;
    crdt__enc_raw(&rs->buf, (const char *)hdr, 2);
    crdt__enc_raw(&rs->buf, k, kl);
    hdr[2] = (unsigned char)(vl >> 24);
    hdr[3] = (unsigned char)(vl >> 16);
    hdr[4] = (unsigned char)(vl >> 8);
    hdr[5] = (unsigned char)vl;
    crdt__enc_raw(&rs->buf, (const char *)hdr + 2, 4);
    crdt__enc_raw(&rs->buf, v, vl);
    if (crdt__enc_ok(&rs->buf) < 0) {
        rs->failed = 1; /* a short entry must never be flushed */
        return CRDT_ENOMEM;
    }
    rs->n_buf++;
    if (rs->buf.sb.size < FLUSH_BYTES)
        return CRDT_OK;
    rc = flush(rs);
    if (rc < 0)
        rs->failed = 1;
    return rc;
}

/* The local epochs not on the target's ancestry go back to their parent
 * until one is: their archived logs (by number) come back for replay. */
static int
restore_fork_archive(epoch_reset *rs, crdt_raw *t, uint64_t *from_number)
{
    epoch_info mine, theirs;
    unsigned char id[EPOCH_ID_BYTES];
    int rc;

    *from_number = UINT64_MAX;
    if ((rc = epoch__current_in(&mine, t)) < 0)
        return rc;
    /* find the common ancestor by walking both sides by number */
    memcpy(id, rs->final.id, EPOCH_ID_BYTES);
    if ((rc = epoch__get_in(&theirs, t, id)) < 0) {
        epoch_info_clear(&mine);
        return rc;
    }
    while (memcmp(mine.id, theirs.id, EPOCH_ID_BYTES) != 0) {
        epoch_info up;
        int mine_side = mine.number >= theirs.number;
        epoch_info *e = mine_side ? &mine : &theirs;

        if (e->number == 0) {
            rc = CRDT_ECORRUPT;
            break;
        }
        if ((rc = epoch__get_in(&up, t, e->parent)) < 0)
            break;
        epoch_info_clear(e);
        *e = up;
    }
    if (rc == CRDT_OK)
        *from_number = mine.number;
    epoch_info_clear(&mine);
    epoch_info_clear(&theirs);
    return rc;
}

/* Move archived changes (epochs >= @p from_number) back into the log.
 * Collected first, then moved: the cursor walks a database we change. */
static int
unarchive(crdt_raw *t, uint64_t from_number)
{
    crdt_raw_cursor *c;
    const void *k, *v;
    size_t kl, vl;
    unsigned char start[8];
    unsigned char (*keys)[24] = NULL;
    size_t n = 0;
    int rc;

    crdt__be64(start, from_number);
    if ((rc = crdt_raw_cursor_open(&c, t, CRDT_DB_ARCHIVE)) < 0)
        return rc;
    rc = crdt_raw_cursor_seek(c, start, 8, &k, &kl, &v, &vl);
    while (rc == CRDT_OK) {
        if (kl == 24) {
            void *nk = realloc(keys, (n + 1) * 24);
            if (nk == NULL) {
                rc = CRDT_ENOMEM;
                break;
            }
            keys = nk;
            memcpy(keys[n++], k, 24);
        }
        rc = crdt_raw_cursor_next(c, &k, &kl, &v, &vl);
    }
    crdt_raw_cursor_close(c);
    if (rc == CRDT_ENOTFOUND)
        rc = CRDT_OK;
    for (size_t i = 0; rc == CRDT_OK && i < n; i++) {
        unsigned char *copy;
        if ((rc = crdt_raw_get(t, CRDT_DB_ARCHIVE, keys[i], 24, &v, &vl)) < 0)
            break;
        copy = malloc(vl);
        if (copy == NULL) {
            rc = CRDT_ENOMEM;
            break;
        }
        memcpy(copy, v, vl);
        /* the log key is the archive key without the epoch number; the
         * replay archives again what the new epoch already folds */
        rc = crdt_raw_put(t, CRDT_DB_LOG, keys[i] + 8, 16, copy, vl);
        free(copy);
        if (rc == CRDT_OK)
            rc = crdt_raw_del(t, CRDT_DB_ARCHIVE, keys[i], 24);
    }
    free(keys);
    return rc;
}

static int
find_own(const epoch_quarantined *q, void *p)
{
    const crdt_actor *own = p;

    return q->kind == CRDT_QK_EQUIVOCATION &&
           memcmp(q->actor.b, own->b, 8) == 0;
}

/* Does the quarantine hold a losing op of @p own (an equivocation)?
 * 1, 0, or the error of the listing: taken for a "no", a failed listing
 * would skip the new incarnation and the re-apply of what lost, and the
 * reset would answer CRDT_OK. */
static int
own_has_lost(crdt_replica *r, const crdt_actor *own)
{
    int rc = epoch_quarantine_list(r, find_own, (void *)own);

    return rc < 0 ? rc : rc == 1;
}

/*
 * A replica that knew no owner (it just joined) has no member set to
 * judge the snapshot's creator by, and the snapshot's own member set
 * could be forged. The owner, though, is bound to the space id by the
 * genesis record: such a replica adopts a snapshot of a space with an
 * owner only when the owner signed its epoch records.
 */
static int
owner_signed(epoch_reset *rs, crdt_raw *t)
{
    unsigned char owner[CRDT_PUBKEY_BYTES];
    int rc = crdt_raw_owner(t, owner);

    if (rc <= 0 || rs->final.number == 0)
        return rc < 0 ? rc : CRDT_OK; /* no owner: as before; genesis */
    if (memcmp(owner, rs->target.creator, CRDT_PUBKEY_BYTES) != 0 ||
        memcmp(owner, rs->final.creator, CRDT_PUBKEY_BYTES) != 0)
        return CRDT_EPERM;
    return CRDT_OK;
}

int
epoch_reset_commit(crdt_merge_report *report, epoch_reset *rs,
                   const unsigned char *expected_hash)
{
    const unsigned char *heads;
    size_t heads_len;
    unsigned char hash[CRDT_HASH_BYTES];
    uint64_t old_number = 0, fork_from = UINT64_MAX, moved = 0;
    uint64_t lost = 0, xmoved = 0, xforked = 0, own_head = 0, sforked = 0;
    int xown = 0;
    crdt_actor own;
    int own_lost = 0;
    crdt_raw *t = NULL;
    int rc;

    if (rs == NULL)
        return CRDT_EINVAL;
    if (rs->failed) {
        epoch_reset_abort(rs);
        return CRDT_EBADTXN;
    }
    /* keeps (1): everything from here is one txn */
    for (int tries = 0; tries < 8; tries++) {
        const void *mv;
        size_t ml;

        lost = 0; /* counted again by a retried txn */
        sforked = 0;

        if ((rc = stage_txn(rs, &t)) < 0)
            break;
        rc = crdt_raw_get(t, CRDT_DB_META, "upgrade", 7, &mv, &ml);
        if (rc != CRDT_ENOTFOUND) {
            crdt_raw_abort(t); /* a migration started meanwhile */
            t = NULL;
            rc = rc == CRDT_OK ? CRDT_EBUSY : rc;
            break;
        }
        rc = flush_into(rs, t);
        if (rc == CRDT_OK && rs->w != NULL)
            rc = epoch__rewriter_finish(rs->w);
        if (rc == CRDT_OK && (rc = crdt_raw_get_epoch(t, &old_number, NULL)) == 0)
            rc = restore_fork_archive(rs, t, &fork_from);
        if (rc == CRDT_OK)
            rc = crdt_raw_swap_state(t);
        /* migrating up into the child epoch: its text and list fields as
         * the builder made them (conversions, compaction) */
        if (rc == CRDT_OK && rs->w != NULL)
            rc = epoch__seq_epoch(t, rs->lens, 0);
        if (rc == CRDT_OK && (rc = crdt_raw_state_hash(t, hash)) == CRDT_OK) {
            if (rs->w == NULL && expected_hash != NULL &&
                memcmp(hash, expected_hash, CRDT_HASH_BYTES) != 0)
                rc = CRDT_ECORRUPT; /* not the state the peer sent */
            /* migrated up, the state must be the one the final epoch's
             * base heads (adopted below) stand for: from a snapshot that
             * lacks ops that epoch folds, those ops would count as held
             * and never be replayed nor asked for again (lost, against
             * (3)); from one holding more, the heads would not match */
            if (rc == CRDT_OK && rs->w != NULL &&
                memcmp(hash, rs->final.state_hash, CRDT_HASH_BYTES) != 0)
                rc = CRDT_ECORRUPT;
        }
        if (rc == CRDT_OK && !rs->knew_owner)
            rc = owner_signed(rs, t);
        if (rc == CRDT_OK)
            rc = epoch__record_heads(&heads, &heads_len, &rs->final);
        if (rc == CRDT_ENOTFOUND) { /* genesis folds nothing */
            heads = (const unsigned char *)"\x90";
            heads_len = 1;
            rc = CRDT_OK;
        }
        /* a fork: every archived change comes back for the replay, which
         * archives again what the new epoch already folds (restoring by
         * epoch number alone could miss changes archived by an earlier
         * reset under a lower number, leaving a gap). Before the
         * quarantines below, which judge them as part of our log: an
         * archived change may be held unsigned, proven only by its
         * successor in the log (storage.md 5.5); if that successor goes
         * to the quarantine and the archived one came back after, the
         * replay could not prove it (CRDT_EAUTH, the reset fails for
         * good). A change of the losing fork beyond the canonical
         * epoch's heads is unsynced like any other. */
        if (rc == CRDT_OK && fork_from != UINT64_MAX && fork_from < old_number)
            rc = unarchive(t, 0);
        /* the passes below judge, quarantine and move single changes by
         * their keys: a merged run record becomes one record per change
         * (storage.md 3), in this txn */
        if (rc == CRDT_OK)
            rc = crdt_raw_log_split(NULL, t, CRDT_DB_LOG);
        /* an equivocation across epochs, judged on our whole log before
         * the passes below take changes out of it: a change of ours that
         * spans the cut is the evidence, and a rejected taker's unsynced
         * pass would move it away first, leaving our changes below the
         * cut to be archived as folded (crossfork.c) */
        if (rc == CRDT_OK)
            rc = epoch__own_head_in(&own_head, t);
        if (rc == CRDT_OK)
            rc = epoch__quarantine_crossforks_in(&xmoved, &xforked, &xown, t,
                                                 own_head, heads, heads_len);
        if (rc == CRDT_OK && rs->quarantine_reason != NULL) {
            /* only our own log: the snapshot's log (staged) comes after */
            rc = epoch__quarantine_unsynced_in(&moved, t, heads, heads_len,
                                               rs->quarantine_reason);
        }
        if (rc == CRDT_OK && rs->n_forks > 0) {
            /* before the sender's log joins ours under the same keys */
            rc = epoch__quarantine_forks_in(&lost, t, rs->forks, rs->n_forks,
                                            heads, heads_len,
                                            rs->fork_reason);
        }
        if (rc == CRDT_OK)
            rc = crdt_raw_heads_replace(t, heads, heads_len);
        if (rc == CRDT_OK)
            rc = crdt_raw_set_epoch(t, rs->final.number, rs->final.id);
        if (rc == CRDT_OK)
            rc = unstage(t, &lost, &sforked);
        if (rc == CRDT_OK) /* keeps (3) */
            rc = crdt_raw_replay_log(report, t, old_number);
        if (rc == CRDT_OK)
            rc = crdt_raw_del(t, CRDT_DB_META, "staging", 7);
        if (rc == CRDT_OK)
            rc = crdt_raw_commit(t); /* a full map there: all again */
        else
            crdt_raw_abort(t);
        t = NULL;
        if (!epoch__grew(rs->r, &rc))
            break;
    }
    crdt__enc_reset(&rs->buf);
    if (rc == CRDT_OK) {
        rs->committed = 1; /* nothing left to clean up */
        if (rs->moved_out != NULL)
            *rs->moved_out = moved;
        if (rs->fork_moved_out != NULL)
            *rs->fork_moved_out = lost;
        if (report != NULL)
            report->quarantined_ops += xmoved;
        own = crdt_replica_actor(rs->r);
        own_lost |= xown; /* crossfork.c: renew, re-apply what lost */
        if (xforked + sforked > 0) /* counted like a same-epoch fork */
            rc = crdt_equivocations_add(rs->r, xforked + sforked);
        for (size_t i = 0; i < rs->n_forks; i++)
            own_lost |= memcmp(rs->forks[i].b, own.b, 8) == 0;
        /* the replay or the unstaging met a copy of this replica */
        if (rc == CRDT_OK &&
            (lost > 0 || (report != NULL && report->conflicts > 0))) {
            int has = own_has_lost(rs->r, &own);
            if (has < 0)
                rc = has;
            else
                own_lost |= has;
        }
        /* quarantined or parked own changes: never reuse their seqs; a
         * copy that lost keeps its writes under its new actor */
        if (rc == CRDT_OK && (moved > 0 || own_lost))
            rc = crdt_replica_new_incarnation(rs->r);
        if (rc == CRDT_OK && own_lost)
            rc = epoch_quarantine_apply_lost(NULL, rs->r, &own);
        if (rc == CRDT_OK)
            rc = crdt_replica_check_incarnation(NULL, rs->r);
    }
    epoch_reset_abort(rs);
    return rc;
}

void
epoch_reset_abort(epoch_reset *rs)
{
    crdt_raw *t;
    int rc;

    if (rs == NULL)
        return;
    /* drop our staging (if still ours); the spare is cleared next time.
     * After the commit there is none: no write txn for nothing (and no
     * allocation that could fail after the work is done) */
    if (!rs->committed && crdt_raw_begin(&t, rs->r, 1) == CRDT_OK) {
        if (staging_ours(t, rs->token) == 1 &&
            crdt_raw_del(t, CRDT_DB_META, "staging", 7) == CRDT_OK) {
            rc = crdt_raw_commit(t);
            (void)rc; /* best effort, like the abort below */
        } else {
            crdt_raw_abort(t);
        }
    }
    epoch__rewriter_free(rs->w);
    epoch_lens_free(rs->lens);
    epoch_info_clear(&rs->target);
    epoch_info_clear(&rs->final);
    crdt__enc_free(&rs->buf);
    free(rs->quarantine_reason);
    free(rs->forks);
    free(rs->fork_reason);
    free(rs);
}

int
epoch_snapshot_walk(crdt_replica *r, unsigned char *epoch_id_out,
                    unsigned char *hash_out, epoch_entry_cb cb, void *ctx)
{
    crdt_raw *t;
    crdt_raw_cursor *c;
    const void *k, *v;
    size_t kl, vl;
    int rc;

    if (r == NULL || cb == NULL)
        return CRDT_EINVAL;
    if ((rc = crdt_raw_begin(&t, r, 0)) < 0)
        return rc;
    if ((hash_out != NULL && (rc = crdt_raw_state_hash(t, hash_out)) < 0) ||
        (epoch_id_out != NULL &&
         (rc = crdt_raw_get_epoch(t, NULL, epoch_id_out)) < 0)) {
        crdt_raw_abort(t);
        return rc;
    }
    if ((rc = crdt_raw_cursor_open(&c, t, crdt_raw_state_db(t, 0))) < 0) {
        crdt_raw_abort(t);
        return rc;
    }
    rc = crdt_raw_cursor_seek(c, NULL, 0, &k, &kl, &v, &vl);
    while (rc == CRDT_OK) {
        if ((rc = cb(k, kl, v, vl, ctx)) != 0)
            break;
        rc = crdt_raw_cursor_next(c, &k, &kl, &v, &vl);
    }
    crdt_raw_cursor_close(c);
    crdt_raw_abort(t);
    return rc == CRDT_ENOTFOUND ? CRDT_OK : rc;
}
