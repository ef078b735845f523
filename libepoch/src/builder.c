/*
 * builder.c: the migration builder.
 *
 *   new --add_lens/set_custom--> READY --commit--> DONE (only free)
 *   commit: (1) marker txn  (2) ONE big txn: rewrite state into the spare
 *           slot, swap, record, archive log, set epoch, clear marker.
 * Invariants:
 *  (1) After a crash the replica is at the old epoch (marker present) or
 *      the new one (marker gone), never between: everything of (2) is
 *      one LMDB txn.
 *  (2) A pure compaction (no lens, no hook) takes the same path but keeps
 *      the state as it is, but for its text and list fields, whose
 *      deleted elements are dropped (crdt_raw_seq_compact).
 *  (3) Memory holds one document at a time (rewrite.c), not the state,
 *      besides the batches of the rewrite's second thread
 *      (rewrite_run.c).
 */
#include <stdlib.h>
#include <string.h>

#include "epoch_internal.h"
#include "lens_internal.h"

struct epoch_builder {
    crdt_replica *r;
    epoch_lens *lens;
    char *custom_name;
    char *custom_coll;
    uint32_t custom_to;
    epoch_custom_fn custom;
    void *custom_ctx;
    epoch_progress_fn progress;
    void *progress_ctx;
    uint32_t retention;
    int done;
};

int
epoch_builder_new(epoch_builder **out, crdt_replica *r)
{
    epoch_builder *b;

    if (out == NULL || r == NULL)
        return CRDT_EINVAL;
    b = calloc(1, sizeof *b);
    if (b == NULL)
        return CRDT_ENOMEM;
    b->r = r;
    b->retention = 0; /* keep all: a fork older than the kept logs could not be rebased */
    *out = b;
    return CRDT_OK;
}

void
epoch_builder_free(epoch_builder *b)
{
    if (b == NULL)
        return;
    epoch_lens_free(b->lens);
    free(b->custom_name);
    free(b->custom_coll);
    free(b);
}

int
epoch_builder_add_lens(epoch_builder *b, const epoch_lens *lens)
{
    char *text;
    size_t len;
    int rc;

    if (b == NULL || lens == NULL || b->done)
        return CRDT_EINVAL;
    if (b->lens != NULL)
        return CRDT_EINVAL; /* one lens file per epoch */
    /* copy through the canonical text: the builder owns its lens */
    if ((rc = epoch_lens_format(&text, &len, lens)) < 0)
        return rc;
    rc = epoch_lens_parse(&b->lens, text, len, NULL);
    epoch_free(text);
    return rc;
}

int
epoch_builder_set_custom(epoch_builder *b, const char *name,
                         const char *coll, uint32_t to_version,
                         epoch_custom_fn fn, void *ctx)
{
    if (b == NULL || name == NULL || name[0] == '\0' || fn == NULL ||
        !crdt__name_ok(coll) || b->done)
        return CRDT_EINVAL;
    free(b->custom_name);
    free(b->custom_coll);
    b->custom_name = strdup(name);
    b->custom_coll = strdup(coll);
    if (b->custom_name == NULL || b->custom_coll == NULL)
        return CRDT_ENOMEM;
    b->custom_to = to_version;
    b->custom = fn;
    b->custom_ctx = ctx;
    return CRDT_OK;
}

void
epoch_builder_set_progress(epoch_builder *b, epoch_progress_fn fn, void *ctx)
{
    if (b == NULL)
        return;
    b->progress = fn;
    b->progress_ctx = ctx;
}

void
epoch_builder_set_retention(epoch_builder *b, uint32_t epochs)
{
    if (b != NULL)
        b->retention = epochs;
}

static int
cmp_schema(const void *a, const void *b)
{
    return strcmp(((const epoch_schema_entry *)a)->coll,
                  ((const epoch_schema_entry *)b)->coll);
}

static int
schema_set(epoch_schema_entry **s, size_t *n, const char *coll,
           uint32_t from, uint32_t to)
{
    for (size_t i = 0; i < *n; i++) {
        if (strcmp((*s)[i].coll, coll) == 0) {
            if ((*s)[i].version != from)
                return CRDT_EINVAL;
            (*s)[i].version = to;
            return CRDT_OK;
        }
    }
    if (from != 1)
        return CRDT_EINVAL; /* an unnamed collection is at version 1 */
    epoch_schema_entry *ns = realloc(*s, (*n + 1) * sizeof *ns);
    if (ns == NULL)
        return CRDT_ENOMEM;
    *s = ns;
    snprintf(ns[*n].coll, sizeof ns[*n].coll, "%s", coll);
    ns[*n].version = to;
    (*n)++;
    return CRDT_OK;
}

int
epoch__schema_apply(epoch_schema_entry **out, size_t *n_out,
                    const epoch_schema_entry *in, size_t n,
                    const epoch_lens *lens, const char *custom_coll,
                    uint32_t custom_to)
{
    epoch_schema_entry *s = malloc((n + 1) * sizeof *s);
    size_t k = n;
    int rc = CRDT_OK;

    if (s == NULL)
        return CRDT_ENOMEM;
    if (n)
        memcpy(s, in, n * sizeof *s);
    for (size_t i = 0; lens && i < epoch_lens_section_count(lens); i++) {
        const char *c;
        uint32_t from, to;
        epoch_lens_section(lens, i, &c, &from, &to);
        if ((rc = schema_set(&s, &k, c, from, to)) < 0)
            break;
    }
    if (rc == CRDT_OK && custom_coll != NULL) {
        uint32_t cur = 1;
        for (size_t i = 0; i < k; i++)
            if (strcmp(s[i].coll, custom_coll) == 0)
                cur = s[i].version;
        if (custom_to <= cur)
            rc = CRDT_EINVAL;
        else
            rc = schema_set(&s, &k, custom_coll, cur, custom_to);
    }
    if (rc < 0) {
        free(s);
        return rc;
    }
    qsort(s, k, sizeof *s, cmp_schema);
    *out = s;
    *n_out = k;
    return CRDT_OK;
}

int
epoch__seq_epoch(crdt_raw *t, const epoch_lens *lens, int no_seq)
{
    int rc = CRDT_OK;

    /* the lens's string <-> text conversions: the rewrite left those
     * fields' entries as they were (under their new names) */
    for (size_t i = 0; rc == CRDT_OK && lens != NULL; i++) {
        const char *coll, *field;
        int dir;
        if (epoch__lens_retype(lens, i, &coll, &field, &dir) < 0)
            break;
        if (field != NULL) {
            rc = crdt_raw_seq_retype(t, coll, field, dir == EPOCH__TO_TEXT);
            no_seq = 0; /* it may have made text entries */
        }
    }
    /* text and list fields drop what no peer at the new epoch can name
     * (every id of the cut is known to all who adopt it); with none,
     * the walk of the whole state would find nothing to drop */
    if (rc == CRDT_OK && !no_seq)
        rc = crdt_raw_seq_compact(t, NULL);
    return rc;
}

/* (2) of the file comment: the big txn. */
static int
build(epoch_info *out, epoch_builder *b, crdt_raw *t)
{
    epoch_info cur, next;
    epoch_schema_entry *schema = NULL;
    size_t n_schema = 0, heads_len = 0;
    unsigned char *heads = NULL, hash[CRDT_HASH_BYTES];
    char *lens_text = NULL;
    size_t lens_len = 0;
    int rewrite = b->lens != NULL || b->custom != NULL;
    int no_seq = 0; /* the rewrite wrote no text or list entry */
    crdt_vv *vv = NULL;
    int rc;

    memset(&next, 0, sizeof next);
    if ((rc = epoch__staging_active(t)) != 0) /* a reset is staging */
        return rc > 0 ? CRDT_EBUSY : rc;       /* in the spare slot */
    if ((rc = epoch__current_in(&cur, t)) < 0)
        return rc;
    rc = epoch__schema_apply(&schema, &n_schema, cur.schema, cur.n_schema,
                             b->lens, b->custom_coll, b->custom_to);
    if (rc < 0)
        goto done;

    if (rewrite) {
        epoch__rewrite_opts o;
        int wrote_seq;

        memset(&o, 0, sizeof o);
        o.lens = b->lens;
        o.custom_coll = b->custom_coll;
        o.custom = b->custom;
        o.custom_ctx = b->custom_ctx;
        o.progress = b->progress;
        o.progress_ctx = b->progress_ctx;
        o.threaded = 1; /* nothing above wrote the active slot */
        if ((rc = epoch__rewrite_slot(t, &o, &wrote_seq)) < 0 ||
            (rc = crdt_raw_swap_state(t)) < 0)
            goto done;
        no_seq = !wrote_seq;
    }

    if ((rc = epoch__seq_epoch(t, b->lens, no_seq)) < 0)
        goto done;
    if ((rc = crdt_raw_heads_encode(&heads, &heads_len, t)) < 0 ||
        (rc = crdt_raw_vv(&vv, t)) < 0)
        goto done;
    if ((rc = crdt_raw_state_hash(t, hash)) < 0)
        goto done;
    if (b->lens != NULL &&
        (rc = epoch_lens_format(&lens_text, &lens_len, b->lens)) < 0)
        goto done;
    rc = epoch__record_make(&next, b->r, cur.number + 1, cur.id, schema,
                            n_schema, lens_text ? lens_text : "",
                            b->custom_name ? b->custom_name : "", heads,
                            heads_len, hash);
    if (rc < 0)
        goto done;
    if ((rc = epoch__put_in(t, &next)) < 0 ||
        (rc = crdt_raw_archive_log(t, NULL, cur.number)) < 0 ||
        (rc = crdt_raw_set_epoch(t, next.number, next.id)) < 0 ||
        (rc = epoch__marker_del(t)) < 0)
        goto done;
    if (b->retention > 0 && next.number > b->retention)
        rc = crdt_raw_prune_archive(t, next.number - b->retention);
done:
    if (rc == CRDT_OK && out != NULL) {
        *out = next;
        memset(&next, 0, sizeof next);
    }
    epoch_info_clear(&next);
    epoch_info_clear(&cur);
    free(schema);
    crdt_free(heads);
    epoch_free(lens_text);
    crdt_vv_free(vv);
    return rc;
}

/* The marker of a migration to the next epoch, unless one is there
 * (running elsewhere, or interrupted: resume). */
struct marker_args {
    const char *lens, *custom;
};

static int
marker_in(crdt_raw *t, void *ctx)
{
    const struct marker_args *m = ctx;
    epoch_info cur;
    const void *v;
    size_t vl;
    int rc;

    rc = crdt_raw_get(t, CRDT_DB_META, "upgrade", 7, &v, &vl);
    if (rc != CRDT_ENOTFOUND)
        return rc == CRDT_OK ? CRDT_EBUSY : rc;
    if ((rc = epoch__current_in(&cur, t)) < 0)
        return rc;
    rc = epoch__marker_put(t, cur.number + 1, m->lens, m->custom);
    epoch_info_clear(&cur);
    return rc;
}

int
epoch_builder_commit(epoch_info *out, epoch_builder *b)
{
    char *lens_text = NULL;
    size_t lens_len;
    crdt_raw *t;
    int rc;

    if (b == NULL || b->done)
        return CRDT_EINVAL;
    b->done = 1;
    {   /* only an admin makes epochs (docs/security.md) */
        unsigned char pk[CRDT_PUBKEY_BYTES];
        crdt_replica_public_key(b->r, pk);
        if ((rc = epoch__creator_ok(b->r, pk)) < 0)
            return rc;
    }
    if (b->lens != NULL &&
        (rc = epoch_lens_format(&lens_text, &lens_len, b->lens)) < 0)
        return rc;

    /* (1) the marker, in its own committed txn */
    {
        struct marker_args m = { lens_text ? lens_text : "",
                                 b->custom_name ? b->custom_name : "" };
        if ((rc = epoch__write(b->r, marker_in, &m)) < 0)
            goto out;
    }

    /* (2) everything else in ONE txn; keeps (1) */
    for (int tries = 0; tries < 8; tries++) {
        if ((rc = crdt_raw_begin(&t, b->r, 1)) < 0)
            break;
        rc = build(out, b, t);
        if (rc == CRDT_OK) {
            rc = crdt_raw_commit(t); /* a full map there: all again */
            if (rc < 0 && out != NULL)
                epoch_info_clear(out); /* not committed: no epoch to give */
        } else {
            crdt_raw_abort(t);
        }
        if (!epoch__grew(b->r, &rc))
            break;
    }
    if (rc < 0) {
        /* a clean failure leaves nothing behind; a crash leaves the
         * marker for --resume / --abort */
        epoch_migration_abort(b->r);
    }
out:
    epoch_free(lens_text);
    return rc;
}
