/*
 * marker.c: the upgrade marker. Written and committed before the big
 * migration txn starts; cleared inside it. While it is present, local
 * writers get CRDT_EBUSY at once (libcrdt checks it) and readers keep
 * reading the old state. After a crash it stays: the migration is
 * resumed from the start or aborted, never half-done.
 *
 *   marker = [ target_number: uint, started_ms: uint, lens: str,
 *              custom: str ]     (meta key "upgrade")
 */
#include <stdlib.h>
#include <string.h>

#include "epoch_internal.h"

int
epoch__marker_put(crdt_raw *t, uint64_t target, const char *lens,
                  const char *custom)
{
    crdt__enc e;
    int rc;

    crdt__enc_init(&e);
    msgpack_pack_array(&e.pk, 4);
    msgpack_pack_uint64(&e.pk, target);
    msgpack_pack_uint64(&e.pk, crdt_raw_now_ms());
    crdt__enc_str(&e, lens, strlen(lens));
    crdt__enc_str(&e, custom, strlen(custom));
    rc = crdt__enc_ok(&e);
    if (rc == CRDT_OK)
        rc = crdt_raw_put(t, CRDT_DB_META, "upgrade", 7, e.sb.data,
                          e.sb.size);
    crdt__enc_free(&e);
    return rc;
}

int
epoch__marker_del(crdt_raw *t)
{
    int rc = crdt_raw_del(t, CRDT_DB_META, "upgrade", 7);

    return rc == CRDT_ENOTFOUND ? CRDT_OK : rc;
}

void
epoch_marker_clear(epoch_marker *m)
{
    if (m == NULL)
        return;
    free(m->lens);
    free(m->custom);
    memset(m, 0, sizeof *m);
}

int
epoch_marker_get(epoch_marker *out, crdt_replica *r)
{
    crdt_raw *t;
    const void *v;
    size_t vl;
    int rc;

    if (out == NULL || r == NULL)
        return CRDT_EINVAL;
    memset(out, 0, sizeof *out);
    if ((rc = crdt_raw_begin(&t, r, 0)) < 0)
        return rc;
    rc = crdt_raw_get(t, CRDT_DB_META, "upgrade", 7, &v, &vl);
    if (rc == CRDT_OK) {
        crdt__mp m = { v, (const unsigned char *)v + vl };
        uint32_t n, ll, cl;
        const char *l, *c;

        if (crdt__mp_array(&m, &n) < 0 || n != 4 ||
            crdt__mp_uint(&m, &out->target_number) < 0 ||
            crdt__mp_uint(&m, &out->started_ms) < 0 ||
            crdt__mp_str(&m, &l, &ll) < 0 || crdt__mp_str(&m, &c, &cl) < 0) {
            rc = CRDT_ECORRUPT;
        } else {
            out->lens = strndup(l, ll);
            out->custom = strndup(c, cl);
            if (out->lens == NULL || out->custom == NULL) {
                epoch_marker_clear(out);
                rc = CRDT_ENOMEM;
            }
        }
    }
    crdt_raw_abort(t);
    return rc;
}

static int
marker_del(crdt_raw *t, void *ctx)
{
    (void)ctx;
    return crdt_raw_del(t, CRDT_DB_META, "upgrade", 7);
}

int
epoch_migration_abort(crdt_replica *r)
{
    /* CRDT_ENOTFOUND: nothing to abort */
    return epoch__write(r, marker_del, NULL);
}

int
epoch_migration_resume(epoch_info *out, crdt_replica *r,
                       epoch_progress_fn fn, void *ctx)
{
    epoch_marker m;
    epoch_builder *b = NULL;
    epoch_lens *lens = NULL;
    int rc;

    if ((rc = epoch_marker_get(&m, r)) < 0)
        return rc;
    if (m.custom[0] != '\0') {
        /* a custom hook is code, not data: only its program can resume */
        epoch_marker_clear(&m);
        return CRDT_EVERSION;
    }
    if (m.lens[0] != '\0' &&
        (rc = epoch_lens_parse(&lens, m.lens, strlen(m.lens), NULL)) < 0) {
        epoch_marker_clear(&m);
        return rc == CRDT_ENOMEM ? rc : CRDT_ECORRUPT;
    }
    epoch_marker_clear(&m);
    /* drop the stale marker; the builder writes a fresh one */
    if ((rc = epoch_migration_abort(r)) < 0 && rc != CRDT_ENOTFOUND)
        goto done;
    if ((rc = epoch_builder_new(&b, r)) < 0)
        goto done;
    if (lens != NULL && (rc = epoch_builder_add_lens(b, lens)) < 0)
        goto done;
    epoch_builder_set_progress(b, fn, ctx);
    rc = epoch_builder_commit(out, b);
done:
    epoch_builder_free(b);
    epoch_lens_free(lens);
    return rc;
}
