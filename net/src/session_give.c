/*
 * session_give.c: what a session sends from its replica: CUT, the
 * snapshot (SNAP_BEGIN, SNAP_CHUNK, SNAP_LOG, SNAP_END) and CHANGES,
 * plain or PACKED, one message at a time from cursors (session.c
 * invariant (1)).
 */
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <sodium.h>

#include "session_int.h"

static int build_changes_as(crdtnet_session *s, unsigned type);

/* heads blob of the record with id @p id (a view into @p holder) */
static int
record_heads(epoch_info *holder, crdt_replica *r, const unsigned char *id,
             const unsigned char **h, size_t *hl)
{
    int rc = epoch_get(holder, r, id);

    if (rc < 0)
        return rc;
    rc = epoch_record_heads(h, hl, holder);
    if (rc == CRDT_ENOTFOUND) { /* genesis: nothing folded */
        *h = NULL;
        *hl = 0;
        rc = CRDT_OK;
    }
    return rc;
}

/* What a taker of our snapshot of epoch @p id lacks: every change
 * beyond that epoch's base heads (s->lacks). */
int
crdtnet__giver_lacks(crdtnet_session *s, const unsigned char *id)
{
    epoch_info cur;
    const unsigned char *h;
    size_t hl;
    int rc;

    if ((rc = record_heads(&cur, s->r, id, &h, &hl)) < 0)
        return rc;
    crdt_vv_free(s->lacks);
    s->lacks = NULL;
    rc = crdt_heads_vv(&s->lacks, h, hl);
    epoch_info_clear(&cur);
    return rc;
}

/* CUT messages, before our snapshot: the archived changes of the cut of
 * the taker's next epoch that it lacks, when we can supply them all
 * (cut.c); CRDT_ENOTFOUND once there is nothing (more) to send. */
int
crdtnet__build_cut(crdtnet_session *s)
{
    int rc;

    if (s->cut_phase == 0) {
        s->cut_phase = 2;
        if (!s->peer_cuts)
            return CRDT_ENOTFOUND;
        rc = crdtnet__cut_plan(&s->cut, s->r, s->peer_epoch, s->peer_known,
                               s->peer_heads, s->peer_heads_len);
        if (rc < 0) /* CRDT_ENOTFOUND: the taker keeps the old rule */
            return rc;
        crdt_export_end(s->exp);
        s->exp = NULL;
        if ((rc = crdt_export_begin_archive(&s->exp, s->r,
                                            s->cut.archive_epoch,
                                            s->peer_known, s->cut.upto)) < 0)
            return rc;
        s->cut_phase = 1;
    }
    if (s->cut_phase != 1)
        return CRDT_ENOTFOUND;
    rc = build_changes_as(s, M_CUT);
    if (rc != CRDT_ENOTFOUND)
        return rc;
    s->cut_phase = 2; /* the export ended itself */
    crdtnet__cut_clear(&s->cut);
    return CRDT_ENOTFOUND;
}

/* A collection's kept lens defaults (storage.md 4.2): a release before
 * store format 5 would store the entry and never show them, so its reads
 * would differ from every other replica's. Their keys come first. */
static int
kept_defaults(const void *k, size_t kl)
{
    crdt_state_entry e;

    return kl > 0 && *(const unsigned char *)k == 0 &&
           crdt_state_key_decode(&e, k, kl) == CRDT_OK &&
           e.kind == CRDT_ENTRY_DEFAULTS;
}

/* SNAP_LOG messages, then SNAP_END once the log is sent. */
static int
log_then_end(crdtnet_session *s)
{
    int rc = build_changes_as(s, M_SNAP_LOG);

    if (rc != CRDT_ENOTFOUND)
        return rc;
    s->snap_phase = 2;
    msgpack_pack_array(&s->out.pk, 1);
    msgpack_pack_uint64(&s->out.pk, M_SNAP_END);
    return CRDT_OK;
}

/* The snapshot's read txn, then what goes with it: the taker's lacks,
 * the log's export and the epoch chain (each a read txn of its own).
 * No snapshot or export is open when it begins (snapshot_begin()). */
static int
snapshot_open_all(crdtnet_session *s, unsigned char *id, unsigned char *hash,
                  epoch_info **all, size_t *n_all)
{
    int rc;

    if ((rc = epoch_snapshot_open(&s->snap, s->r, id, hash)) < 0)
        return rc;
    /* The log goes with the state of the snapshot's epoch, which may
     * not be the one we had when we became giver: another session
     * may have reset this replica since. The state holds every change
     * beyond that epoch's base heads, so the log sent along is every
     * change beyond them (changes an older epoch folded but this one
     * does not must go too, or the peer holds their effects without
     * the changes). The log is read right after the state. */
    if ((rc = crdtnet__giver_lacks(s, id)) < 0)
        return rc;
    if ((rc = crdt_export_begin_as_stored(&s->exp, s->r, s->lacks)) < 0)
        return rc;
    return epoch_all(all, n_all, s->r);
}

/* snapshot_open_all(), again from nothing when a read txn could not
 * begin while the snapshot's was open (CRDT_EBUSY: another process grew
 * the map, whose new size this process adopts only once it holds no
 * txn, docs/storage.md "Map size and growth"). */
static int
snapshot_begin(crdtnet_session *s, unsigned char *id, unsigned char *hash,
               epoch_info **all, size_t *n_all)
{
    int rc = CRDT_EBUSY;

    for (int tries = 0; tries < 3 && rc == CRDT_EBUSY; tries++) {
        epoch_snapshot_close(s->snap);
        s->snap = NULL;
        crdt_export_end(s->exp);
        s->exp = NULL;
        rc = snapshot_open_all(s, id, hash, all, n_all);
    }
    return rc;
}

int
crdtnet__build_snapshot(crdtnet_session *s)
{
    unsigned char id[CRDT_HASH_BYTES], hash[CRDT_HASH_BYTES];
    const void *k, *v;
    size_t kl, vl;
    crdt__enc items;
    uint64_t n = 0;
    int rc = CRDT_ENOTFOUND;

    if (s->snap_phase == 1 && s->snap == NULL) /* sending the log */
        return log_then_end(s);
    if (s->snap_phase == 0) {
        epoch_info *all = NULL;
        size_t n_all = 0;

        if ((rc = snapshot_begin(s, id, hash, &all, &n_all)) < 0)
            return rc;
        msgpack_pack_array(&s->out.pk, 4);
        msgpack_pack_uint64(&s->out.pk, M_SNAP_BEGIN);
        crdt__enc_bin(&s->out, id, sizeof id);
        crdt__enc_bin(&s->out, hash, sizeof hash);
        msgpack_pack_array(&s->out.pk, n_all);
        for (size_t i = 0; i < n_all; i++)
            crdt__enc_bin(&s->out, all[i].raw, all[i].raw_len);
        epoch_chain_free(all, n_all);
        s->snap_phase = 1;
        s->rep.snapshot_sent = 1;
        return CRDT_OK;
    }
    crdt__enc_init(&items);
    while (items.sb.size < s->opts.batch_bytes &&
           (rc = epoch_snapshot_next(s->snap, &k, &kl, &v, &vl)) == CRDT_OK) {
        if (!s->peer_defaults && kept_defaults(k, kl)) {
            crdt__enc_free(&items);
            return crdtnet__fail(
                s, CRDT_EVERSION,
                "the peer's release cannot read this epoch's kept "
                "lens defaults (store format 5): upgrade it",
                1);
        }
        crdt__enc_bin(&items, k, kl);
        crdt__enc_bin(&items, v, vl);
        n++;
    }
    if (rc < 0 && rc != CRDT_ENOTFOUND) { /* not the end: the read failed */
        crdt__enc_free(&items);
        return rc;
    }
    if (n == 0) {
        crdt__enc_free(&items);
        if (rc != CRDT_ENOTFOUND)
            return rc;
        epoch_snapshot_close(s->snap);
        s->snap = NULL;
        /* the state holds our log beyond the base: send it along, so the
         * peer's version vector matches its state when it commits */
        return log_then_end(s);
    }
    if (crdt__enc_ok(&items) < 0) {
        crdt__enc_free(&items);
        return CRDT_ENOMEM;
    }
    msgpack_pack_array(&s->out.pk, 2);
    msgpack_pack_uint64(&s->out.pk, M_SNAP_CHUNK);
    msgpack_pack_array(&s->out.pk, 2 * n);
    crdt__enc_raw(&s->out, items.sb.data, items.sb.size);
    crdt__enc_free(&items);
    s->rep.snapshot_entries_sent += n;
    return CRDT_OK;
}

/* Remember what the peer holds now that we sent it: later exports start
 * above it (live mode, and the changes after a snapshot's log). */
void
crdtnet__note_sent(crdtnet_session *s, const unsigned char *p, size_t len)
{
    crdt_actor a;
    uint64_t last;

    /* the header is enough: the change was validated where it came from */
    if (crdt_change_peek(&a, &last, p, len) != CRDT_OK)
        return;
    if (s->peer_known != NULL)
        crdt_vv_set(s->peer_known, &a, last);
    if (s->lacks != NULL)
        crdt_vv_set(s->lacks, &a, last);
}

/* The last item of @p items, a bin from @p at holding change @p c (as
 * decoded), loses its signature: its successor follows it. The change's
 * bytes end with the signature (bin8 of 64 bytes: c4 40 ...), the last
 * item of its outer array, which becomes nil (crdt_change_strip_sig());
 * the body before it is not touched, so its hash (the one the successor
 * names) stays, and nothing is decoded or hashed again. In place: only
 * the bin's header is written anew, and the body moves when the shorter
 * length takes a shorter header. */
static int
strip_last(crdt__enc *items, size_t at, const crdt_change *c)
{
    crdt__mp m = { (unsigned char *)items->sb.data + at,
                   (unsigned char *)items->sb.data + items->sb.size };
    unsigned char *data = (unsigned char *)items->sb.data, *old;
    const unsigned char *payload;
    uint32_t len;
    size_t nl, hl;

    if (c->sig == NULL || c->version != CRDT__FORMAT ||
        crdt__mp_bin(&m, &payload, &len) < 0 || m.p != m.end || len < 67)
        return CRDT_EPROTO;
    old = data + (payload - data);
    if (old[len - 66] != 0xc4 || old[len - 65] != 0x40 ||
        memcmp(old + len - 64, c->sig, 64) != 0)
        return CRDT_EPROTO;
    nl = (size_t)len - 65;
    hl = nl < 256 ? 2 : nl < 65536 ? 3 : 5;
    memmove(data + at + hl, old, nl - 1);
    data[at + hl + nl - 1] = 0xc0;
    if (hl == 2) {
        data[at] = 0xc4;
        data[at + 1] = (unsigned char)nl;
    } else {
        data[at] = hl == 3 ? 0xc5 : 0xc6;
        for (size_t i = 1; i < hl; i++) /* big-endian */
            data[at + i] = (unsigned char)(nl >> (8 * (hl - 1 - i)));
    }
    items->sb.size = at + hl + nl;
    return CRDT_OK;
}

/* The @p n changes in @p items (bins, as a plain message lists them) as
 * one PACKED message; CRDT_EAGAIN when packing would not save a byte
 * (the caller sends the plain message). */
static int
emit_packed(crdtnet_session *s, unsigned type, const crdt__enc *items,
            const unsigned char *hashes, size_t n)
{
    crdt__mp m = { (const unsigned char *)items->sb.data,
                   (const unsigned char *)items->sb.data + items->sb.size };
    crdt_bytes *list = calloc(n ? n : 1, sizeof *list);
    unsigned char *packed = NULL;
    size_t plen = 0;
    int rc = CRDT_OK;

    if (list == NULL)
        return CRDT_ENOMEM;
    for (size_t i = 0; i < n && rc == CRDT_OK; i++) {
        const unsigned char *p;
        uint32_t l;
        if (crdt__mp_bin(&m, &p, &l) < 0)
            rc = CRDT_EPROTO;
        list[i].data = p;
        list[i].len = l;
    }
    if (rc == CRDT_OK) /* decoded and hashed as they were read */
        rc = crdt_changes_pack_version(&packed, &plen, list, hashes, n,
                                       s->peer_packs);
    free(list);
    if (rc == CRDT_OK && plen + 16 >= items->sb.size)
        rc = CRDT_EAGAIN;
    if (rc == CRDT_OK) {
        msgpack_pack_array(&s->out.pk, 3);
        msgpack_pack_uint64(&s->out.pk, M_PACKED);
        msgpack_pack_uint64(&s->out.pk, type);
        crdt__enc_bin(&s->out, packed, plen);
    }
    crdt_free(packed);
    return rc == CRDT_ENOMEM ? rc : rc < 0 ? CRDT_EAGAIN : CRDT_OK;
}

/* CHANGES (or SNAP_LOG) from the export cursor; CRDT_ENOTFOUND when it
 * is exhausted. */
/* The changes' buffer back to the allocator: the export is over (or
 * failed), and an idle session keeps none. */
static void
items_release(crdtnet_session *s)
{
    crdt__enc_free(&s->items);
    crdt__enc_init(&s->items);
}

static int
build_changes_as(crdtnet_session *s, unsigned type)
{
    const unsigned char *p;
    size_t len, n = 0;
    crdt_change c, last; /* last: the previous change of this batch */
    size_t last_at = 0;  /* where last's bin starts in items */
    unsigned char *hashes = NULL; /* each change's hash, for the packer */
    size_t hashes_cap = 0;
    /* What the batch counts against batch_bytes: the plain message's
     * bytes; to a peer that reads PACKED, each change's ops plus 8 (what
     * a packed change keeps: its header shrinks to a few bytes), so a
     * message of one-op changes carries about as many ops as one of
     * large changes (one merge txn, one commit, each) while the plain
     * message, should packing not pay, stays within half the limit. */
    size_t counted = 0;
    int rc = CRDT_ENOTFOUND, have_last = 0;

    if (s->exp == NULL &&
        (rc = crdt_export_begin_as_stored(&s->exp, s->r, s->lacks)) < 0)
        return rc;
    crdt__enc_reset(&s->items);
    /* Never serve a damaged change; checked as a receiver checks, for
     * the same cost: each change decodes (its hash is computed from its
     * body), a change follows the one before it of its actor in this
     * batch (its prev is that hash), and the last change of each actor's
     * run is signature-checked, which covers the run through the chain.
     * A change of a run record comes hashed from the run's read (the
     * hash of these very bytes): it is not hashed again here, nor when
     * it is packed.
     * A failure means this replica's log is damaged (strata verify says
     * where).
     * Signatures of a run (docs/protocol.md, CHANGES): a change whose
     * successor goes in the same message is sent without its signature
     * (the successor proves it), and a message never ends on a change
     * held without one: the batch runs on to the next signed change. */
    while (((s->peer_packs
                 ? counted < s->opts.batch_bytes &&
                       s->items.sb.size < CRDTNET_SESSION_MSG_MAX / 2
                 : s->items.sb.size < s->opts.batch_bytes) ||
            (have_last && last.sig == NULL)) &&
           (rc = crdt_export_next_change(s->exp, &p, &len, &c)) ==
               CRDT_OK) {
        int follows;

        /* a change that does not follow the previous one (another
         * actor, a gap, a damaged body or prev) ends that one's run */
        follows = have_last && crdt_change_proves(&c, &last);
        if (have_last && !follows && crdt_change_verify(&last) != CRDT_OK)
            goto damaged;
        if (follows && last.sig != NULL &&
            strip_last(&s->items, last_at, &last) == CRDT_OK)
            last.sig = NULL;
        if (s->items.sb.size + len + 5 > CRDTNET_SESSION_MSG_MAX - 64) {
            items_release(s); /* a run held unsigned, longer */
            free(hashes);           /* than a message: never cut it */
            return CRDT_ELIMIT;
        }
        if (n == hashes_cap) {
            size_t nc = hashes_cap ? hashes_cap * 2 : 256;
            unsigned char *nh = realloc(hashes, nc * CRDT_HASH_BYTES);
            if (nh == NULL) {
                items_release(s);
                free(hashes);
                return CRDT_ENOMEM;
            }
            hashes = nh;
            hashes_cap = nc;
        }
        memcpy(hashes + n * CRDT_HASH_BYTES, c.hash, CRDT_HASH_BYTES);
        counted += c.ops_len + 8;
        last = c;
        have_last = 1;
        last_at = s->items.sb.size;
        crdt__enc_bin(&s->items, p, len);
        crdtnet__note_sent(s, p, len);
        n++;
    }
    if (rc == CRDT_ECORRUPT)
        goto damaged; /* a stored change that does not decode */
    if (rc < 0 && rc != CRDT_ENOTFOUND) { /* the export could not go on */
        items_release(s);
        free(hashes);
        return rc;
    }
    if (have_last && crdt_change_verify(&last) != CRDT_OK)
        goto damaged;
    if (n == 0) {
        free(hashes);
        items_release(s);
        crdt_export_end(s->exp);
        s->exp = NULL;
        return rc == CRDT_ENOTFOUND ? CRDT_ENOTFOUND : rc;
    }
    if (crdt__enc_ok(&s->items) < 0) {
        items_release(s);
        free(hashes);
        return CRDT_ENOMEM;
    }
    if (!s->peer_packs ||
        (rc = emit_packed(s, type, &s->items, hashes, n)) < 0) {
        if (rc == CRDT_ENOMEM) {
            items_release(s);
            free(hashes);
            return rc;
        }
        msgpack_pack_array(&s->out.pk, 2);
        msgpack_pack_uint64(&s->out.pk, type);
        msgpack_pack_array(&s->out.pk, n);
        crdt__enc_raw(&s->out, s->items.sb.data, s->items.sb.size);
    }
    free(hashes);
    /* a large buffer stays for the next message (a long sync); a small
     * one is not worth what an idle session would hold */
    if (s->items.sb.alloc < 64 * 1024)
        items_release(s);
    s->rep.changes_sent += n;
    return CRDT_OK;
damaged:
    items_release(s);
    free(hashes);
    return CRDT_ECORRUPT;
}

int
crdtnet__build_changes(crdtnet_session *s)
{
    return build_changes_as(s, M_CHANGES);
}
