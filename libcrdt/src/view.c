/*
 * view.c: turning state entries into visible fields (layout in state.c),
 * and the observations a local remove carries.
 *
 * A field is visible as:
 *   register  its entry is not a tombstone and is newer than the doc
 *             tombstone;
 *   counter   some actor's part has more ops than the removes observed;
 *   set       some element has a live tag.
 * If a field is visible as more than one type (concurrent writers chose
 * different types), the register wins, then the counter: every replica
 * makes the same choice, and local writes refuse to mix types.
 *
 * A collection's lens defaults (entry 00 'V' coll, state_entry.c) show
 * as registers stamped (0, actor 0) in each document that has entries
 * but none of that field: as if stored, so a doc tombstone hides them,
 * and any entry of the field (a write, a field tombstone) replaces them.
 * A document born after them carries a mark (coll 0 doc 0 0 'N',
 * state.c (4)) and shows none.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"
#include "seq.h"
#include "state_keys.h"
#include "view.h"

static int
scratch_elem(crdt__scratch *s, const crdt_value *v)
{
    if (s->n_elems == s->cap_elems) {
        size_t cap = s->cap_elems ? s->cap_elems * 2 : 16;
        crdt_value *e = realloc(s->elems, cap * sizeof *e);
        if (e == NULL)
            return CRDT_ENOMEM;
        s->elems = e;
        s->cap_elems = cap;
    }
    s->elems[s->n_elems++] = *v;
    return CRDT_OK;
}

void
crdt__scratch_free(crdt__scratch *s)
{
    free(s->elems);
    free(s->text);
    free(s->list);
    memset(s, 0, sizeof *s);
}

static int
cmp_value(const void *a, const void *b)
{
    return crdt_value_cmp(a, b);
}

/* Per-field accumulator while walking a document's entries. */
typedef struct {
    const char *name;
    size_t len;
    int reg_visible;
    crdt_value reg;
    uint64_t c_count[64];      /* parts seen so far, matched by actor */
    unsigned char c_actor[64][8];
    size_t n_c;
    int c_overflow_live;       /* more than 64 actors: tracked below */
    uint64_t sum;              /* wrapping: sum of C minus sum of D */
    int counter_live;
    int any_counter;
    /* set: elements with a live tag, in scratch */
    const unsigned char *cur_elem;
    size_t cur_elem_len;
    int cur_elem_live;
    crdt_value cur_value;
    unsigned char seq_kind;    /* 'T' text or 'L' list header seen */
} acc_field;

static int
flush_elem(acc_field *f, crdt__scratch *s)
{
    int rc = CRDT_OK;

    if (f->cur_elem != NULL && f->cur_elem_live)
        rc = scratch_elem(s, &f->cur_value);
    f->cur_elem = NULL;
    f->cur_elem_live = 0;
    return rc;
}

/* The content of a sequence field into the scratch buffers. */
static int
seq_content(crdt_field *out, acc_field *f, crdt__scratch *s, MDB_txn *txn,
            MDB_dbi dbi, const char *coll, size_t cl, const char *doc,
            size_t dl)
{
    crdt__seqkey key;
    crdt__seq *q;
    int rc;

    out->kind = f->seq_kind == 'T' ? CRDT_FIELD_TEXT : CRDT_FIELD_LIST;
    if (s->kind_only)
        return CRDT_OK;
    crdt__seqkey_make(&key, coll, cl, doc, dl, f->name, f->len, f->seq_kind);
    rc = s->r != NULL ? crdt__seq_for_read(&q, s->r, txn, dbi, &key)
                      : crdt__seq_build(&q, txn, dbi, &key);
    if (rc < 0)
        return rc;
    free(s->text);
    free(s->list);
    s->text = NULL;
    s->list = NULL;
    if (f->seq_kind == 'T') {
        size_t len;
        rc = crdt__seq_text(q, 0, crdt__seq_len(q), &s->text, &len);
        if (rc == CRDT_OK)
            out->value = crdt_value_str(s->text, len);
    } else {
        size_t n;
        rc = crdt__seq_list(q, txn, dbi, &s->list, &n);
        if (rc == CRDT_OK) {
            out->elems = s->list;
            out->n_elems = n;
        }
    }
    if (s->r != NULL)
        crdt__seq_release(s->r, q);
    else
        crdt__seq_free(q);
    return rc;
}

typedef struct {
    MDB_txn *txn;
    MDB_dbi dbi;
    const char *coll, *doc;
    size_t cl, dl;
} view_where;

static int
emit(acc_field *f, crdt__scratch *s, crdt_field_cb cb, void *ctx,
     char *namebuf, int *found, const view_where *vw)
{
    crdt_field out;
    int rc;

    if ((rc = flush_elem(f, s)) < 0)
        return rc;
    memset(&out, 0, sizeof out);
    memcpy(namebuf, f->name, f->len);
    namebuf[f->len] = 0;
    out.name = namebuf;
    if (f->reg_visible) {
        out.kind = CRDT_FIELD_REGISTER;
        out.value = f->reg;
    } else if (f->counter_live) {
        out.kind = CRDT_FIELD_COUNTER;
        out.counter = (int64_t)f->sum;
    } else if (s->n_elems > 0) {
        qsort(s->elems, s->n_elems, sizeof *s->elems, cmp_value);
        out.kind = CRDT_FIELD_SET;
        out.elems = s->elems;
        out.n_elems = s->n_elems;
    } else if (f->seq_kind != 0) {
        if ((rc = seq_content(&out, f, s, vw->txn, vw->dbi, vw->coll,
                              vw->cl, vw->doc, vw->dl)) < 0)
            return rc;
    } else {
        return CRDT_OK;
    }
    *found = 1;
    return cb ? cb(&out, ctx) : CRDT_OK;
}

static int
take_entry(acc_field *f, crdt__scratch *s, unsigned char kind,
           const unsigned char *rest, size_t rl, const MDB_val *v,
           const unsigned char *doc_tomb)
{
    const unsigned char *val = v->mv_data;

    switch (kind) {
    case 'R':
        if (v->mv_size < 17 || val[16] == 0xc1)
            return CRDT_OK;
        if (doc_tomb != NULL &&
            (crdt__rd64(val) < crdt__rd64(doc_tomb) ||
             (crdt__rd64(val) == crdt__rd64(doc_tomb) &&
              memcmp(val + 8, doc_tomb + 8, 8) <= 0)))
            return CRDT_OK;
        if (crdt__value_parse(&f->reg, val + 16, v->mv_size - 16) < 0)
            return CRDT_ECORRUPT;
        f->reg_visible = 1;
        return CRDT_OK;
    case 'C':
        if (rl != 8 || v->mv_size != 24)
            return CRDT_ECORRUPT;
        f->sum += crdt__rd64(val + 8);
        f->any_counter = 1;
        if (f->n_c < 64) {
            memcpy(f->c_actor[f->n_c], rest, 8);
            f->c_count[f->n_c++] = crdt__rd64(val);
        } else {
            f->c_overflow_live = 1; /* conservatively live */
        }
        f->counter_live = 1; /* refined by the D entries below */
        return CRDT_OK;
    case 'D': {
        uint64_t dcount;

        if (rl != 8 || v->mv_size != 16)
            return CRDT_ECORRUPT;
        dcount = crdt__rd64(val);
        f->sum -= crdt__rd64(val + 8);
        for (size_t i = 0; i < f->n_c; i++) {
            if (memcmp(f->c_actor[i], rest, 8) == 0 &&
                f->c_count[i] <= dcount)
                f->c_count[i] = 0; /* fully observed-removed */
        }
        /* recompute liveness: any part with unobserved ops */
        f->counter_live = f->c_overflow_live;
        for (size_t i = 0; i < f->n_c; i++)
            if (f->c_count[i] > 0)
                f->counter_live = 1;
        return CRDT_OK;
    }
    case 'S': {
        crdt__mp m = { rest, rest + rl };
        crdt_value ev;
        size_t elen;

        if (crdt__mp_value(&m, &ev) < 0 || (size_t)(m.end - m.p) != 16 ||
            v->mv_size != 1)
            return CRDT_ECORRUPT;
        elen = (size_t)(m.p - rest);
        if (f->cur_elem == NULL || f->cur_elem_len != elen ||
            memcmp(f->cur_elem, rest, elen) != 0) {
            int rc = flush_elem(f, s);
            if (rc < 0)
                return rc;
            f->cur_elem = rest;
            f->cur_elem_len = elen;
            f->cur_value = ev;
        }
        if (val[0] == 1)
            f->cur_elem_live = 1;
        return CRDT_OK;
    }
    default:
        return CRDT_ECORRUPT;
    }
}

/* The lens defaults of a collection, walked in field order beside the
 * document's own fields. */
typedef struct {
    const unsigned char *p, *end; /* the pairs after the current one */
    const char *f;                /* the current pair; NULL: none left */
    size_t fl;
    crdt_value v;
} virt;

static int
virt_next(virt *vt)
{
    int rc = vt->p == NULL ? 0
                           : crdt_state_defaults_next(&vt->p, vt->end, &vt->f,
                                                      &vt->fl, &vt->v);
    if (rc <= 0)
        vt->f = NULL;
    return rc < 0 ? CRDT_ECORRUPT : CRDT_OK;
}

static int
virt_open(virt *vt, MDB_txn *txn, MDB_dbi dbi, const char *coll, size_t cl)
{
    unsigned char kb[2 + CRDT_NAME_MAX];
    MDB_val k = { 2 + cl, kb }, v;
    int rc;

    memset(vt, 0, sizeof *vt);
    if (cl > CRDT_NAME_MAX)
        return CRDT_OK;
    kb[0] = 0;
    kb[1] = 'V';
    memcpy(kb + 2, coll, cl);
    rc = mdb_get(txn, dbi, &k, &v);
    if (rc == MDB_NOTFOUND)
        return CRDT_OK;
    if (rc != 0)
        return crdt__mdb_err(rc);
    vt->p = v.mv_data;
    vt->end = vt->p + v.mv_size;
    return virt_next(vt);
}

/* Show the defaults that come before field @p name (all with NULL), and
 * pass over the one of that name: the document's own entries stand. */
static int
virt_emit_upto(virt *vt, const char *name, size_t nl, crdt_field_cb cb,
               void *ctx, char *namebuf, int *found)
{
    int rc, c;

    while (vt->f != NULL &&
           (c = name == NULL ? -1
                             : crdt__field_order(vt->f, vt->fl, name, nl)) <=
               0) {
        if (c < 0) {
            crdt_field out;

            memset(&out, 0, sizeof out);
            memcpy(namebuf, vt->f, vt->fl);
            namebuf[vt->fl] = 0;
            out.name = namebuf;
            out.kind = CRDT_FIELD_REGISTER;
            out.value = vt->v;
            *found = 1;
            if (cb != NULL && (rc = cb(&out, ctx)) != 0)
                return rc;
        }
        if ((rc = virt_next(vt)) < 0)
            return rc;
    }
    return CRDT_OK;
}

/* Does the document whose key is @p dk (its tombstone's) show its
 * collection's defaults: has it entries, without the mark of one born
 * after them? The mark sorts right after the doc key. */
static int
doc_shows_defaults(MDB_txn *txn, MDB_dbi dbi, const crdt__key *dk)
{
    MDB_cursor *cur;
    MDB_val k = { dk->len, (void *)dk->b }, v;
    const unsigned char *kb;
    int rc;

    if ((rc = crdt__mdb_err(mdb_cursor_open(txn, dbi, &cur))) < 0)
        return rc;
    rc = mdb_cursor_get(cur, &k, &v, MDB_SET_RANGE);
    mdb_cursor_close(cur);
    if (rc == MDB_NOTFOUND)
        return 0;
    if (rc != 0)
        return crdt__mdb_err(rc);
    kb = k.mv_data;
    if (k.mv_size < dk->len || memcmp(kb, dk->b, dk->len) != 0)
        return 0;
    return !(k.mv_size == dk->len + 2 && kb[dk->len] == 0 &&
             kb[dk->len + 1] == 'N');
}

int
crdt__view_doc(crdt__scratch *s, MDB_txn *txn, MDB_dbi dbi,
               const char *coll, size_t cl, const char *doc, size_t dl,
               const char *only, size_t only_len, crdt_field_cb cb,
               void *ctx)
{
    MDB_cursor *cur;
    MDB_val k, v;
    crdt__key prefix;
    unsigned char tomb[16];
    const unsigned char *doc_tomb = NULL;
    acc_field f;
    char namebuf[CRDT_NAME_MAX + 1];
    int rc, found = 0, have = 0;
    view_where vw = { txn, dbi, coll, doc, cl, dl };
    virt vt;

    if ((rc = virt_open(&vt, txn, dbi, coll, cl)) < 0)
        return rc;
    if (only != NULL) { /* only that default matters */
        while (vt.f != NULL &&
               crdt__field_order(vt.f, vt.fl, only, only_len) < 0)
            if ((rc = virt_next(&vt)) < 0)
                return rc;
        if (vt.f != NULL &&
            crdt__field_order(vt.f, vt.fl, only, only_len) != 0)
            vt.f = NULL;
        vt.p = NULL; /* and no other */
    }
    crdt__key_doc(&prefix, coll, cl, doc, dl);
    if (only != NULL)
        crdt__key_field(&prefix, only, only_len);
    if ((rc = crdt__mdb_err(mdb_cursor_open(txn, dbi, &cur))) < 0)
        return rc;
    if (only != NULL) { /* the doc tombstone sits before the fields */
        MDB_val dk = { cl + dl + 2, prefix.b }, dv;
        rc = mdb_get(txn, dbi, &dk, &dv);
        if (rc == 0 && dv.mv_size == 16) {
            memcpy(tomb, dv.mv_data, 16);
            doc_tomb = tomb;
            vt.f = NULL; /* it hides what is stamped (0, actor 0) */
        } else if (rc != 0 && rc != MDB_NOTFOUND) {
            mdb_cursor_close(cur);
            return crdt__mdb_err(rc);
        }
    }
    k.mv_size = prefix.len;
    k.mv_data = prefix.b;
    s->n_elems = 0;
    memset(&f, 0, sizeof f);
    rc = mdb_cursor_get(cur, &k, &v, MDB_SET_RANGE);
    while (rc == 0) {
        const unsigned char *kb = k.mv_data, *fend;
        size_t base = cl + dl + 2;

        if (k.mv_size < prefix.len || memcmp(kb, prefix.b, prefix.len) != 0)
            break;
        if (k.mv_size == base) { /* the doc tombstone */
            if (v.mv_size == 16) {
                memcpy(tomb, v.mv_data, 16);
                doc_tomb = tomb;
                vt.f = NULL; /* it hides what is stamped (0, actor 0) */
            }
            rc = mdb_cursor_get(cur, &k, &v, MDB_NEXT);
            continue;
        }
        if (k.mv_size == base + 2 && kb[base] == 0 && kb[base + 1] == 'N') {
            vt.f = NULL; /* born after the defaults: state.c (4) */
            rc = mdb_cursor_get(cur, &k, &v, MDB_NEXT);
            continue;
        }
        fend = memchr(kb + base, 0, k.mv_size - base);
        if (fend == NULL || fend + 1 >= kb + k.mv_size) {
            rc = MDB_CORRUPTED;
            break;
        }
        size_t flen = (size_t)(fend - (kb + base));
        if (!have || flen != f.len ||
            memcmp(f.name, kb + base, flen) != 0) {
            /* a name no writer gives (empty, too long, not UTF-8) is a
             * damaged entry: never handed on, never copied past namebuf */
            if (!crdt__name_ok_len((const char *)kb + base, flen)) {
                rc = MDB_CORRUPTED;
                break;
            }
            if (have) {
                rc = emit(&f, s, cb, ctx, namebuf, &found, &vw);
                if (rc != 0)
                    goto done;
            }
            if (vt.f != NULL &&
                (rc = virt_emit_upto(&vt, (const char *)kb + base, flen, cb,
                                     ctx, namebuf, &found)) != 0)
                goto done;
            memset(&f, 0, sizeof f);
            s->n_elems = 0;
            f.name = (const char *)kb + base;
            f.len = flen;
            have = 1;
        }
        if (fend[1] == 'T' || fend[1] == 'L') {
            /* a sequence block: note its header, then jump past it (its
             * runs are read only when the content is wanted) */
            unsigned char seek[CRDT__KEY_MAX];
            size_t sl = (size_t)(fend + 2 - kb);
            MDB_val sk;

            if (k.mv_size == sl && (f.seq_kind == 0 || fend[1] == 'T'))
                f.seq_kind = fend[1];
            memcpy(seek, kb, sl);
            seek[sl - 1]++;
            sk.mv_size = sl;
            sk.mv_data = seek;
            rc = mdb_cursor_get(cur, &sk, &v, MDB_SET_RANGE);
            k = sk;
            continue;
        }
        rc = take_entry(&f, s, fend[1], fend + 2,
                        (size_t)(kb + k.mv_size - (fend + 2)), &v, doc_tomb);
        if (rc != 0)
            goto done;
        rc = mdb_cursor_get(cur, &k, &v, MDB_NEXT);
    }
    if (rc != 0 && rc != MDB_NOTFOUND) {
        rc = crdt__mdb_err(rc);
        goto done;
    }
    rc = have ? emit(&f, s, cb, ctx, namebuf, &found, &vw) : CRDT_OK;
    if (rc == CRDT_OK && vt.f != NULL && !have && only != NULL &&
        doc_tomb == NULL) {
        /* the field has no entry: its default shows if the doc exists */
        crdt__key dk;
        crdt__key_doc(&dk, coll, cl, doc, dl);
        if ((rc = doc_shows_defaults(txn, dbi, &dk)) <= 0)
            vt.f = NULL;
        rc = rc < 0 ? rc : CRDT_OK;
    } else if (rc == CRDT_OK && vt.f != NULL && !have && only == NULL) {
        vt.f = NULL; /* no field entry: no document, or a mark alone */
    }
    if (rc == CRDT_OK && vt.f != NULL)
        rc = virt_emit_upto(&vt, NULL, 0, cb, ctx, namebuf, &found);
    if (rc == CRDT_OK && !found)
        rc = CRDT_ENOTFOUND;
done:
    mdb_cursor_close(cur);
    return rc;
}

static int
kind_cb(const crdt_field *f, void *ctx)
{
    *(int *)ctx = (int)f->kind;
    return 0;
}

int
crdt__state_field_kind(MDB_txn *txn, MDB_dbi state, const char *coll,
                       const char *doc, const char *field)
{
    crdt__scratch s = { 0 };
    int kind = 0, rc;

    s.kind_only = 1;
    rc = crdt__view_doc(&s, txn, state, coll, strlen(coll), doc, strlen(doc),
                        field, strlen(field), kind_cb, &kind);
    crdt__scratch_free(&s);
    return rc < 0 && rc != CRDT_ENOTFOUND ? rc : kind;
}

/* ---- observations for local removes ---- */

/* Encode fobs = [ [actor, count, sum]*, [elem, actor, seq]* ] for the
 * field whose key prefix (coll 0 doc 0 field 0) is @p fk. */
static int
observe_field(crdt__enc *e, MDB_txn *txn, MDB_dbi dbi, const crdt__key *fk,
              const unsigned char *elem, size_t elem_len, int only_set)
{
    MDB_cursor *cur;
    MDB_val k, v;
    size_t n_c = 0, n_s = 0;
    crdt__enc c, st;
    int rc, bad = 0; /* a write into a buffer failed: out of memory */

    crdt__enc_init(&c);
    crdt__enc_init(&st);
    if ((rc = crdt__mdb_err(mdb_cursor_open(txn, dbi, &cur))) < 0)
        goto out;
    k.mv_size = fk->len;
    k.mv_data = (void *)fk->b;
    rc = mdb_cursor_get(cur, &k, &v, MDB_SET_RANGE);
    for (; rc == 0; rc = mdb_cursor_get(cur, &k, &v, MDB_NEXT)) {
        const unsigned char *kb = k.mv_data;
        const unsigned char *rest = kb + fk->len + 1;
        size_t rl;

        if (k.mv_size <= fk->len || memcmp(kb, fk->b, fk->len) != 0)
            break;
        rl = k.mv_size - fk->len - 1;
        if (kb[fk->len] == 'C' && !only_set && rl == 8 && v.mv_size == 24) {
            bad |= crdt__enc_bin(&c, rest, 8) < 0;
            bad |= msgpack_pack_uint64(&c.pk, crdt__rd64(v.mv_data)) < 0;
            bad |= msgpack_pack_int64(&c.pk, (int64_t)crdt__rd64(
                                          (unsigned char *)v.mv_data + 8)) < 0;
            n_c++;
        } else if (kb[fk->len] == 'S' && rl > 16 && v.mv_size == 1 &&
                   ((unsigned char *)v.mv_data)[0] == 1) {
            size_t el = rl - 16;
            if (elem != NULL && (el != elem_len || memcmp(rest, elem, el)))
                continue;
            bad |= crdt__enc_raw(&st, (const char *)rest, el) < 0;
            bad |= crdt__enc_bin(&st, rest + el, 8) < 0;
            bad |= msgpack_pack_uint64(&st.pk, crdt__rd64(rest + el + 8)) < 0;
            n_s++;
        }
    }
    mdb_cursor_close(cur);
    if (rc != 0 && rc != MDB_NOTFOUND) {
        rc = crdt__mdb_err(rc);
        goto out;
    }
    rc = CRDT_OK;
    if (bad)
        goto out;
    if (elem != NULL && n_s == 0) { /* not in the set: nothing seen */
        bad |= msgpack_pack_array(&e->pk, 0) < 0;
        goto out;
    }
    if (elem != NULL) { /* SREM: tags only, flattened [actor, seq]* */
        crdt__mp m = { (unsigned char *)st.sb.data,
                       (unsigned char *)st.sb.data + st.sb.size };
        bad |= msgpack_pack_array(&e->pk, 2 * n_s) < 0;
        for (size_t i = 0; i < n_s; i++) {
            crdt_value ev;
            const unsigned char *a;
            uint32_t al;
            uint64_t seq;
            crdt__mp_value(&m, &ev);
            crdt__mp_bin(&m, &a, &al);
            crdt__mp_uint(&m, &seq);
            bad |= crdt__enc_bin(e, a, al) < 0;
            bad |= msgpack_pack_uint64(&e->pk, seq) < 0;
        }
        goto out;
    }
    bad |= msgpack_pack_array(&e->pk, 2) < 0;
    bad |= msgpack_pack_array(&e->pk, 3 * n_c) < 0;
    bad |= n_c > 0 && crdt__enc_raw(e, c.sb.data, c.sb.size) < 0;
    bad |= msgpack_pack_array(&e->pk, 3 * n_s) < 0;
    bad |= n_s > 0 && crdt__enc_raw(e, st.sb.data,
                                            st.sb.size) < 0;
out:
    crdt__enc_free(&c);
    crdt__enc_free(&st);
    return rc == CRDT_OK && bad ? CRDT_ENOMEM : rc;
}

/* Names of the fields of a doc that have counter or set entries. */
static int
doc_fields(MDB_txn *txn, MDB_dbi dbi, const crdt__key *dk, char ***names,
           size_t *n)
{
    MDB_cursor *cur;
    MDB_val k, v;
    size_t cap = 0;
    int rc;

    *names = NULL;
    *n = 0;
    if ((rc = crdt__mdb_err(mdb_cursor_open(txn, dbi, &cur))) < 0)
        return rc;
    k.mv_size = dk->len;
    k.mv_data = (void *)dk->b;
    rc = mdb_cursor_get(cur, &k, &v, MDB_SET_RANGE);
    for (; rc == 0; rc = mdb_cursor_get(cur, &k, &v, MDB_NEXT)) {
        const unsigned char *kb = k.mv_data, *fend;

        if (k.mv_size < dk->len || memcmp(kb, dk->b, dk->len) != 0)
            break;
        if (k.mv_size == dk->len)
            continue;
        fend = memchr(kb + dk->len, 0, k.mv_size - dk->len);
        if (fend == NULL || fend + 1 >= kb + k.mv_size)
            continue;
        if (fend[1] != 'C' && fend[1] != 'S')
            continue;
        size_t fl = (size_t)(fend - (kb + dk->len));
        if (*n > 0 && strlen((*names)[*n - 1]) == fl &&
            memcmp((*names)[*n - 1], kb + dk->len, fl) == 0)
            continue;
        if (*n == cap) {
            cap = cap ? cap * 2 : 8;
            char **nn = realloc(*names, cap * sizeof *nn);
            if (nn == NULL) {
                rc = ENOMEM;
                break;
            }
            *names = nn;
        }
        (*names)[*n] = strndup((const char *)kb + dk->len, fl);
        if ((*names)[*n] == NULL) {
            rc = ENOMEM;
            break;
        }
        (*n)++;
    }
    mdb_cursor_close(cur);
    return rc == 0 || rc == MDB_NOTFOUND ? CRDT_OK : crdt__mdb_err(rc);
}

int
crdt__state_observe(crdt__wctx *w, crdt__enc *e, crdt_op_kind kind,
                    const char *coll, const char *doc, const char *field,
                    const crdt_value *elem)
{
    crdt__key k;
    char **names = NULL;
    size_t n = 0;
    int rc;

    crdt__key_doc(&k, coll, strlen(coll), doc, strlen(doc));
    if (kind == CRDT_OP_SREM || kind == CRDT_OP_DEL_FIELD) {
        unsigned char eb[CRDT__ELEM_MAX];
        int el = 0;

        crdt__key_field(&k, field, strlen(field));
        if (kind == CRDT_OP_SREM) {
            el = crdt__value_bytes(eb, sizeof eb, elem);
            if (el < 0)
                return CRDT_ELIMIT;
        }
        return observe_field(e, w->txn, w->state, &k,
                             kind == CRDT_OP_SREM ? eb : NULL, (size_t)el,
                             0);
    }
    rc = doc_fields(w->txn, w->state, &k, &names, &n);
    if (rc == CRDT_OK) {
        size_t base = k.len;
        if (msgpack_pack_array(&e->pk, 2 * n) < 0)
            rc = CRDT_ENOMEM;
        for (size_t i = 0; i < n && rc == CRDT_OK; i++) {
            if ((rc = crdt__enc_str(e, names[i], strlen(names[i]))) < 0)
                break;
            k.len = base;
            crdt__key_field(&k, names[i], strlen(names[i]));
            rc = observe_field(e, w->txn, w->state, &k, NULL, 0, 0);
        }
    }
    for (size_t i = 0; i < n; i++)
        free(names[i]);
    free(names);
    return rc;
}
