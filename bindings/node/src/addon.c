/*
 * addon.c: the Node.js binding of Strata, an N-API addon in C.
 *
 * The native side is a flat set of functions on opaque handles
 * (externals); lib/index.js wraps them in the classes a JS developer
 * uses (Replica, Txn, Peer, Subscription) and index.d.ts types them.
 *
 * Threads: every call that may wait on the disk or the network beyond a
 * local commit (sync over TCP, a peer's feed/next_out, the watch behind
 * a subscription) runs off the JS thread: napi_async_work for the
 * Promise-returning calls, one thread per subscription that sleeps in
 * poll() on the replica's feed watch and hands events to the JS thread
 * through a napi_threadsafe_function. Reads and txn()/begin() run on
 * the JS thread (short, like a file write); write() records its ops on
 * the JS thread and commits them with crdt_txn_write() on the pool, so
 * concurrent write()s share LMDB txns and syncs.
 *
 * Lifetime: a replica handle counts its users (pending async work, live
 * subscriptions, open txns); close() marks it closed and the LMDB
 * environment goes when the last user is done. All counting happens on
 * the JS thread (async work completes there), so it needs no lock.
 *
 * Errors: a JS Error whose `code` is the Strata error's name
 * ("CRDT_EBUSY"), `errno` its number (-14) and message crdt_strerror().
 */
#define NAPI_VERSION 8
#include <node_api.h>

#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "crdt/crdt.h"
#include "crdtnet/conn.h"
#include "crdtnet/peer.h"
#include "epoch/epoch.h"

#define CHECK(call)                                                       \
    do {                                                                  \
        if ((call) != napi_ok)                                            \
            return NULL;                                                  \
    } while (0)

/* ---- errors ------------------------------------------------------- */

static const char *
err_name(int rc)
{
    static const char *const names[] = {
        "CRDT_OK", "CRDT_ERROR", "CRDT_ENOMEM", "CRDT_EINVAL",
        "CRDT_ENOTFOUND", "CRDT_EEXISTS", "CRDT_EIO", "CRDT_ECORRUPT",
        "CRDT_EBADTXN", "CRDT_EVERSION", "CRDT_EPROTO", "CRDT_EAUTH",
        "CRDT_ECLOSED", "CRDT_EAGAIN", "CRDT_EBUSY", "CRDT_EREJECTED",
        "CRDT_EFULL", "CRDT_ECLOCK", "CRDT_ECONFLICT", "CRDT_ETYPE",
        "CRDT_ELIMIT", "CRDT_EPERM",
    };

    if (rc <= 0 && -rc < (int)(sizeof names / sizeof names[0]))
        return names[-rc];
    return "CRDT_ERROR";
}

static napi_value
make_error(napi_env env, int rc, const char *what, const char *reason)
{
    napi_value msg, err, code, num;
    char buf[512];

    snprintf(buf, sizeof buf, "%s: %s%s%s", what, crdt_strerror(rc),
             reason && *reason ? ": " : "", reason ? reason : "");
    napi_create_string_utf8(env, buf, NAPI_AUTO_LENGTH, &msg);
    napi_create_error(env, NULL, msg, &err);
    napi_create_string_utf8(env, err_name(rc), NAPI_AUTO_LENGTH, &code);
    napi_create_int32(env, rc, &num);
    napi_set_named_property(env, err, "code", code);
    napi_set_named_property(env, err, "errno", num);
    return err;
}

static napi_value
throw_crdt(napi_env env, int rc, const char *what)
{
    napi_throw(env, make_error(env, rc, what, NULL));
    return NULL;
}

static napi_value
throw_type(napi_env env, const char *msg)
{
    napi_throw_type_error(env, "CRDT_EINVAL", msg);
    return NULL;
}

/* ---- handles ------------------------------------------------------ */

typedef struct {
    crdt_replica *r;   /* NULL once closed for good */
    int closed;        /* close() was called (or the handle collected) */
    int collected;     /* the JS handle is gone: free with the last user */
    int users;         /* txns, async work, subscriptions; JS thread only */
    int txns;          /* of those, txns open on the JS thread */
} h_replica;

/* The environment closes when the handle is closed and nothing uses it;
 * the struct goes when, besides, the JS handle was collected (so a
 * closed handle never points at freed memory). */
static void
replica_settle(h_replica *h)
{
    if (h->users > 0)
        return;
    if (h->closed && h->r != NULL) {
        crdt_replica_close(h->r);
        h->r = NULL;
    }
    if (h->collected)
        free(h);
}

static void
replica_unref(h_replica *h)
{
    h->users--;
    replica_settle(h);
}

static void
replica_finalize(napi_env env, void *data, void *hint)
{
    h_replica *h = data;

    (void)env;
    (void)hint;
    h->closed = 1; /* garbage collected, maybe without close() */
    h->collected = 1;
    replica_settle(h);
}

static h_replica *
get_replica(napi_env env, napi_value v)
{
    void *p = NULL;
    napi_valuetype t;

    if (napi_typeof(env, v, &t) != napi_ok || t != napi_external ||
        napi_get_value_external(env, v, &p) != napi_ok || p == NULL) {
        throw_type(env, "not a replica handle");
        return NULL;
    }
    if (((h_replica *)p)->closed) {
        throw_crdt(env, CRDT_ECLOSED, "replica");
        return NULL;
    }
    return p;
}

/* A string argument copied into @p buf (NUL-terminated). 0 on success. */
static int
get_str(napi_env env, napi_value v, char *buf, size_t size, const char *what)
{
    size_t len;
    napi_valuetype t;
    char msg[96];

    if (napi_typeof(env, v, &t) != napi_ok || t != napi_string ||
        napi_get_value_string_utf8(env, v, buf, size, &len) != napi_ok ||
        len + 1 >= size) {
        snprintf(msg, sizeof msg, "%s must be a string (at most %zu bytes)",
                 what, size - 2);
        throw_type(env, msg);
        return -1;
    }
    return 0;
}

/* A string or null/undefined (@p out NULL then). */
static int
get_opt_str(napi_env env, napi_value v, char *buf, size_t size,
            const char **out, const char *what)
{
    napi_valuetype t;

    if (napi_typeof(env, v, &t) != napi_ok)
        return -1;
    if (t == napi_null || t == napi_undefined) {
        *out = NULL;
        return 0;
    }
    if (get_str(env, v, buf, size, what) < 0)
        return -1;
    *out = buf;
    return 0;
}

#define NAME_BUF (CRDT_NAME_MAX * 4 + 2)

static int
get_args(napi_env env, napi_callback_info info, size_t want, napi_value *argv)
{
    size_t argc = want;

    if (napi_get_cb_info(env, info, &argc, argv, NULL, NULL) != napi_ok)
        return -1;
    for (size_t i = argc; i < want; i++)
        napi_get_undefined(env, &argv[i]);
    return 0;
}

/* The handle in argument 0 of a call taking @p want arguments (any
 * kind: each caller checks its own state), or NULL after throwing a
 * TypeError "not a @p what handle". */
static void *
get_handle(napi_env env, napi_callback_info info, size_t want,
           napi_value *argv, const char *what)
{
    void *p = NULL;
    char msg[64];

    if (get_args(env, info, want, argv) < 0 ||
        napi_get_value_external(env, argv[0], &p) != napi_ok || p == NULL) {
        snprintf(msg, sizeof msg, "not a %s handle", what);
        throw_type(env, msg);
        return NULL;
    }
    return p;
}

/* o[k] = a string, a number, an integer, a boolean. */
static void
set_str(napi_env env, napi_value o, const char *k, const char *v)
{
    napi_value x;

    napi_create_string_utf8(env, v, NAPI_AUTO_LENGTH, &x);
    napi_set_named_property(env, o, k, x);
}

static void
set_num(napi_env env, napi_value o, const char *k, double v)
{
    napi_value x;

    napi_create_double(env, v, &x);
    napi_set_named_property(env, o, k, x);
}

static void
set_int(napi_env env, napi_value o, const char *k, int64_t v)
{
    napi_value x;

    napi_create_int64(env, v, &x);
    napi_set_named_property(env, o, k, x);
}

static void
set_bool(napi_env env, napi_value o, const char *k, int v)
{
    napi_value x;

    napi_get_boolean(env, v != 0, &x);
    napi_set_named_property(env, o, k, x);
}

/* Run @p exec on the thread pool, then @p done on the JS thread, for
 * @p data; the promise returned is settled by @p done through
 * *@p deferred. NULL after throwing. */
static napi_value
queue_work(napi_env env, const char *name, napi_async_execute_callback exec,
           napi_async_complete_callback done, void *data,
           napi_async_work *work, napi_deferred *deferred)
{
    napi_value promise, nm;

    if (napi_create_promise(env, deferred, &promise) != napi_ok)
        return NULL;
    napi_create_string_utf8(env, name, NAPI_AUTO_LENGTH, &nm);
    if (napi_create_async_work(env, NULL, nm, exec, done, data, work) !=
        napi_ok)
        return NULL;
    if (napi_queue_async_work(env, *work) != napi_ok) {
        napi_delete_async_work(env, *work);
        return NULL;
    }
    return promise;
}

/* ---- values ------------------------------------------------------- */

/* JS -> crdt_value. Strings and bytes are copied into *mem (free it). */
static int
to_value(napi_env env, napi_value v, crdt_value *out, void **mem)
{
    napi_valuetype t;
    bool is_buf = false, is_ta = false, lossless;
    size_t len;

    *mem = NULL;
    if (napi_typeof(env, v, &t) != napi_ok)
        return -1;
    switch (t) {
    case napi_null:
    case napi_undefined:
        *out = crdt_value_null();
        return 0;
    case napi_boolean: {
        bool b;
        napi_get_value_bool(env, v, &b);
        *out = crdt_value_bool(b);
        return 0;
    }
    case napi_number: {
        double d;
        napi_get_value_double(env, v, &d);
        if (d == (double)(int64_t)d && d >= -9007199254740991.0 &&
            d <= 9007199254740991.0 && !(d == 0 && 1 / d < 0))
            *out = crdt_value_int((int64_t)d);
        else
            *out = crdt_value_double(d);
        return 0;
    }
    case napi_bigint: {
        int64_t i;
        napi_get_value_bigint_int64(env, v, &i, &lossless);
        if (!lossless) {
            throw_type(env, "a bigint value must fit in 64 bits");
            return -1;
        }
        *out = crdt_value_int(i);
        return 0;
    }
    case napi_string: {
        char *s;
        napi_get_value_string_utf8(env, v, NULL, 0, &len);
        if ((s = malloc(len + 1)) == NULL) {
            throw_crdt(env, CRDT_ENOMEM, "value");
            return -1;
        }
        napi_get_value_string_utf8(env, v, s, len + 1, &len);
        *mem = s;
        *out = crdt_value_str(s, len);
        return 0;
    }
    case napi_object:
        napi_is_buffer(env, v, &is_buf);
        napi_is_typedarray(env, v, &is_ta);
        if (is_buf || is_ta) {
            void *data;
            unsigned char *copy;
            if (is_buf) {
                napi_get_buffer_info(env, v, &data, &len);
            } else {
                napi_typedarray_type tt;
                napi_value ab;
                size_t off;
                napi_get_typedarray_info(env, v, &tt, &len, &data, &ab,
                                         &off);
                if (tt != napi_uint8_array) {
                    throw_type(env, "bytes must be a Buffer or Uint8Array");
                    return -1;
                }
            }
            if ((copy = malloc(len ? len : 1)) == NULL) {
                throw_crdt(env, CRDT_ENOMEM, "value");
                return -1;
            }
            if (len)
                memcpy(copy, data, len);
            *mem = copy;
            *out = crdt_value_bytes(copy, len);
            return 0;
        }
        /* fall through */
    default:
        throw_type(env, "a value is null, a boolean, a number, a bigint, "
                        "a string or a Buffer");
        return -1;
    }
}

static napi_value
from_value(napi_env env, const crdt_value *v)
{
    napi_value out = NULL;

    switch (v->type) {
    case CRDT_VNULL:
        napi_get_null(env, &out);
        break;
    case CRDT_VBOOL:
        napi_get_boolean(env, v->u.b != 0, &out);
        break;
    case CRDT_VINT:
        if (v->u.i >= -9007199254740991LL && v->u.i <= 9007199254740991LL)
            napi_create_int64(env, v->u.i, &out);
        else
            napi_create_bigint_int64(env, v->u.i, &out);
        break;
    case CRDT_VDOUBLE:
        napi_create_double(env, v->u.d, &out);
        break;
    case CRDT_VSTRING:
        napi_create_string_utf8(env, v->u.s.ptr, v->u.s.len, &out);
        break;
    case CRDT_VBYTES:
        napi_create_buffer_copy(env, v->u.s.len, v->u.s.ptr, NULL, &out);
        break;
    }
    return out;
}

static napi_value
from_field(napi_env env, const crdt_field *f)
{
    napi_value out;

    switch (f->kind) {
    case CRDT_FIELD_COUNTER:
        napi_create_int64(env, f->counter, &out);
        return out;
    case CRDT_FIELD_SET:
        napi_create_array_with_length(env, f->n_elems, &out);
        for (size_t i = 0; i < f->n_elems; i++)
            napi_set_element(env, out, (uint32_t)i,
                             from_value(env, &f->elems[i]));
        return out;
    default:
        return from_value(env, &f->value);
    }
}

/* ---- open / close ------------------------------------------------- */

static napi_value
js_open(napi_env env, napi_callback_info info)
{
    napi_value argv[2], out;
    crdt_open_options o = CRDT_OPEN_OPTIONS_INIT;
    char path[4096];
    bool create = false;
    h_replica *h;
    int rc;

    if (get_args(env, info, 2, argv) < 0 ||
        get_str(env, argv[0], path, sizeof path, "path") < 0)
        return NULL;
    napi_get_value_bool(env, argv[1], &create);
    o.create = create;
    if ((h = calloc(1, sizeof *h)) == NULL)
        return throw_crdt(env, CRDT_ENOMEM, "open");
    rc = crdt_replica_open(&h->r, path, &o);
    if (rc == CRDT_EEXISTS && create) /* create if missing, else open */
        rc = crdt_replica_open(&h->r, path, NULL);
    if (rc == CRDT_OK && (rc = epoch_attach(h->r)) < 0)
        crdt_replica_close(h->r);
    if (rc < 0) {
        free(h);
        return throw_crdt(env, rc, path);
    }
    CHECK(napi_create_external(env, h, replica_finalize, NULL, &out));
    return out;
}

static napi_value
js_close(napi_env env, napi_callback_info info)
{
    napi_value argv[1];
    h_replica *h;

    if ((h = get_handle(env, info, 1, argv, "replica")) == NULL)
        return NULL;
    h->closed = 1;
    replica_settle(h);
    return NULL;
}

static napi_value
js_info(napi_env env, napi_callback_info info)
{
    napi_value argv[1], out;
    unsigned char sid[CRDT_SPACE_ID_BYTES], pk[CRDT_PUBKEY_BYTES];
    char hex[2 * CRDT_PUBKEY_BYTES + 1];
    h_replica *h;

    if (get_args(env, info, 1, argv) < 0 ||
        (h = get_replica(env, argv[0])) == NULL)
        return NULL;
    crdt_replica_space_id(h->r, sid);
    crdt_replica_public_key(h->r, pk);
    CHECK(napi_create_object(env, &out));
    crdt_hex(hex, sid, sizeof sid);
    set_str(env, out, "spaceId", hex);
    crdt_hex(hex, pk, sizeof pk);
    set_str(env, out, "publicKey", hex);
    set_str(env, out, "path", crdt_replica_path(h->r));
    return out;
}

/* ---- transactions ------------------------------------------------- */

typedef struct {
    crdt_txn *t;
    h_replica *h;
} h_txn;

static void
txn_finalize(napi_env env, void *data, void *hint)
{
    h_txn *x = data;

    (void)env;
    (void)hint;
    if (x->t != NULL) { /* dropped without commit or abort */
        crdt_txn_abort(x->t);
        x->h->txns--;
        replica_unref(x->h);
    }
    free(x);
}

static napi_value
js_begin(napi_env env, napi_callback_info info)
{
    napi_value argv[1], out;
    h_replica *h;
    h_txn *x;
    int rc;

    if (get_args(env, info, 1, argv) < 0 ||
        (h = get_replica(env, argv[0])) == NULL)
        return NULL;
    if ((x = calloc(1, sizeof *x)) == NULL)
        return throw_crdt(env, CRDT_ENOMEM, "begin");
    if ((rc = crdt_txn_begin(&x->t, h->r)) < 0) {
        free(x);
        return throw_crdt(env, rc, "begin");
    }
    x->h = h;
    h->users++;
    h->txns++;
    CHECK(napi_create_external(env, x, txn_finalize, NULL, &out));
    return out;
}

static h_txn *
get_txn(napi_env env, napi_value v)
{
    void *p = NULL;

    if (napi_get_value_external(env, v, &p) != napi_ok || p == NULL) {
        throw_type(env, "not a transaction handle");
        return NULL;
    }
    if (((h_txn *)p)->t == NULL) {
        throw_crdt(env, CRDT_EBADTXN, "transaction already ended");
        return NULL;
    }
    return p;
}

/* One op as JS gave it: [kind, coll, doc, field?, value?], its strings
 * and bytes copied, so it can be applied later on another thread. */
typedef struct {
    char kind[8];   /* put, incr, sadd, srem, del */
    char *coll, *doc;
    char *field;    /* NULL: del of the whole document */
    crdt_value v;   /* put, sadd, srem */
    void *mem;      /* v's string or bytes */
    int64_t delta;  /* incr */
} w_op;

static void
op_free(w_op *o)
{
    free(o->coll);
    free(o->doc);
    free(o->field);
    free(o->mem);
    memset(o, 0, sizeof *o);
}

/* argv[0..4] = kind, coll, doc, field?, value? into @p o; -1 after
 * throwing (o holds nothing then). */
static int
op_parse(napi_env env, const napi_value *argv, w_op *o)
{
    char coll[NAME_BUF], doc[NAME_BUF], field[NAME_BUF];
    const char *f = NULL;

    memset(o, 0, sizeof *o);
    if (get_str(env, argv[0], o->kind, sizeof o->kind, "op") < 0 ||
        get_str(env, argv[1], coll, sizeof coll, "collection") < 0 ||
        get_str(env, argv[2], doc, sizeof doc, "document") < 0 ||
        get_opt_str(env, argv[3], field, sizeof field, &f, "field") < 0)
        return -1;
    if (strcmp(o->kind, "del") != 0 && f == NULL) {
        throw_type(env, "field must be a string");
        return -1;
    }
    if (!strcmp(o->kind, "put") || !strcmp(o->kind, "sadd") ||
        !strcmp(o->kind, "srem")) {
        if (to_value(env, argv[4], &o->v, &o->mem) < 0)
            return -1;
    } else if (!strcmp(o->kind, "incr")) {
        bool lossless = true;
        napi_valuetype t;
        napi_typeof(env, argv[4], &t);
        if (t == napi_bigint) {
            napi_get_value_bigint_int64(env, argv[4], &o->delta, &lossless);
        } else {
            double dd;
            if (t != napi_number ||
                napi_get_value_double(env, argv[4], &dd) != napi_ok ||
                dd != (double)(int64_t)dd) {
                throw_type(env, "incr needs an integer");
                return -1;
            }
            o->delta = (int64_t)dd;
        }
        if (!lossless) {
            throw_type(env, "incr needs a 64-bit integer");
            return -1;
        }
    } else if (strcmp(o->kind, "del") != 0) {
        throw_type(env, "unknown op");
        return -1;
    }
    o->coll = strdup(coll);
    o->doc = strdup(doc);
    o->field = f != NULL ? strdup(f) : NULL;
    if (o->coll == NULL || o->doc == NULL || (f != NULL && o->field == NULL)) {
        op_free(o);
        throw_crdt(env, CRDT_ENOMEM, "op");
        return -1;
    }
    return 0;
}

/* Record @p o on @p t: any thread. */
static int
op_apply(crdt_txn *t, const w_op *o)
{
    const char *k = o->kind;

    if (!strcmp(k, "put"))
        return crdt_txn_put(t, o->coll, o->doc, o->field, &o->v);
    if (!strcmp(k, "sadd"))
        return crdt_txn_sadd(t, o->coll, o->doc, o->field, &o->v);
    if (!strcmp(k, "srem"))
        return crdt_txn_srem(t, o->coll, o->doc, o->field, &o->v);
    if (!strcmp(k, "incr"))
        return crdt_txn_incr(t, o->coll, o->doc, o->field, o->delta);
    return o->field ? crdt_txn_del_field(t, o->coll, o->doc, o->field)
                    : crdt_txn_del_doc(t, o->coll, o->doc);
}

/* op(txn, kind, coll, doc, field?, value?) */
static napi_value
js_op(napi_env env, napi_callback_info info)
{
    napi_value argv[6];
    w_op o;
    h_txn *x;
    int rc;

    if (get_args(env, info, 6, argv) < 0 ||
        (x = get_txn(env, argv[0])) == NULL || op_parse(env, argv + 1, &o) < 0)
        return NULL;
    rc = op_apply(x->t, &o);
    if (rc < 0)
        throw_crdt(env, rc, o.kind);
    op_free(&o);
    return NULL;
}

static napi_value
js_commit(napi_env env, napi_callback_info info)
{
    napi_value argv[1], out;
    crdt_commit_info ci;
    h_txn *x;
    int rc;

    if (get_args(env, info, 1, argv) < 0 || (x = get_txn(env, argv[0])) == NULL)
        return NULL;
    rc = crdt_txn_commit(x->t, &ci);
    x->t = NULL;
    x->h->txns--;
    replica_unref(x->h);
    if (rc < 0)
        return throw_crdt(env, rc, "commit");
    CHECK(napi_create_object(env, &out));
    set_int(env, out, "firstSeq", (int64_t)ci.first_seq);
    set_int(env, out, "lastSeq", (int64_t)ci.last_seq);
    return out;
}

static napi_value
js_abort(napi_env env, napi_callback_info info)
{
    napi_value argv[1];
    h_txn *x;

    if ((x = get_handle(env, info, 1, argv, "transaction")) == NULL)
        return NULL;
    if (x->t != NULL) {
        crdt_txn_abort(x->t);
        x->t = NULL;
        x->h->txns--;
        replica_unref(x->h);
    }
    return NULL;
}

/* ---- write(): one change committed off the JS thread ------------- */

/* The ops of one write() at most: what one change holds. */
#define WRITE_OPS_MAX CRDT_CHANGE_MAX_OPS

typedef struct {
    napi_async_work work;
    napi_deferred d;
    h_replica *h;
    w_op *ops;
    uint32_t n;
    uint32_t failed; /* the op the library refused, or n */
    crdt_commit_info ci;
    int rc;
} write_job;

/* crdt_txn_write()'s body: on a pool thread, maybe another job's. */
static int
write_body(crdt_txn *t, void *arg)
{
    write_job *j = arg;
    int rc;

    for (uint32_t i = 0; i < j->n; i++)
        if ((rc = op_apply(t, &j->ops[i])) < 0) {
            j->failed = i;
            return rc;
        }
    return CRDT_OK;
}

static void
write_exec(napi_env env, void *data)
{
    write_job *j = data;

    (void)env;
    j->failed = j->n;
    j->rc = crdt_txn_write(j->h->r, write_body, j, &j->ci);
}

static void
write_job_free(write_job *j)
{
    for (uint32_t i = 0; i < j->n; i++)
        op_free(&j->ops[i]);
    free(j->ops);
    free(j);
}

static void
write_done(napi_env env, napi_status status, void *data)
{
    write_job *j = data;
    napi_value out;

    (void)status;
    if (j->rc >= 0 && napi_create_object(env, &out) == napi_ok) {
        set_int(env, out, "firstSeq", (int64_t)j->ci.first_seq);
        set_int(env, out, "lastSeq", (int64_t)j->ci.last_seq);
        napi_resolve_deferred(env, j->d, out);
    } else {
        napi_reject_deferred(
            env, j->d,
            make_error(env, j->rc < 0 ? j->rc : CRDT_ENOMEM,
                       j->failed < j->n ? j->ops[j->failed].kind : "write",
                       NULL));
    }
    napi_delete_async_work(env, j->work);
    replica_unref(j->h);
    write_job_free(j);
}

/* write(r, ops) -> Promise: ops = [[kind, coll, doc, field?, value?]...]
 * recorded as one change by crdt_txn_write() on the thread pool, so
 * concurrent write()s share LMDB txns and syncs and the JS thread never
 * waits for the disk. */
static napi_value
js_write(napi_env env, napi_callback_info info)
{
    napi_value argv[2], promise;
    h_replica *h;
    write_job *j;
    uint32_t n;
    bool is_arr = false;

    if (get_args(env, info, 2, argv) < 0 ||
        (h = get_replica(env, argv[0])) == NULL)
        return NULL;
    if (napi_is_array(env, argv[1], &is_arr) != napi_ok || !is_arr)
        return throw_type(env, "write needs an array of ops");
    CHECK(napi_get_array_length(env, argv[1], &n));
    if (n > WRITE_OPS_MAX)
        return throw_crdt(env, CRDT_ELIMIT, "write");
    if (h->txns > 0) {
        /* its pool thread would wait for the writer lock that txn holds,
         * while the JS thread may wait for the write: never ends */
        napi_throw(env, make_error(env, CRDT_EBUSY, "write",
                                   "a transaction of this replica is "
                                   "open (begin()): commit or abort it "
                                   "first"));
        return NULL;
    }
    if ((j = calloc(1, sizeof *j)) == NULL ||
        (j->ops = calloc(n ? n : 1, sizeof *j->ops)) == NULL) {
        free(j);
        return throw_crdt(env, CRDT_ENOMEM, "write");
    }
    for (uint32_t i = 0; i < n; i++) {
        napi_value e, a[5];
        bool arr = false;
        uint32_t len = 0;

        if (napi_get_element(env, argv[1], i, &e) != napi_ok ||
            napi_is_array(env, e, &arr) != napi_ok || !arr ||
            napi_get_array_length(env, e, &len) != napi_ok || len < 3 ||
            len > 5) {
            write_job_free(j);
            return throw_type(env, "an op is [kind, coll, doc, field?, "
                                   "value?]");
        }
        for (uint32_t k = 0; k < 5; k++)
            if (k >= len || napi_get_element(env, e, k, &a[k]) != napi_ok)
                napi_get_undefined(env, &a[k]);
        if (op_parse(env, a, &j->ops[i]) < 0) {
            write_job_free(j);
            return NULL;
        }
        j->n = i + 1;
    }
    j->h = h;
    promise = queue_work(env, "strata.write", write_exec, write_done, j,
                         &j->work, &j->d);
    if (promise == NULL) {
        write_job_free(j);
        return NULL;
    }
    h->users++;
    return promise;
}

/* ---- reads -------------------------------------------------------- */

typedef struct {
    napi_env env;
    napi_value obj;
} read_ctx;

static int
field_cb(const crdt_field *f, void *ctx)
{
    read_ctx *c = ctx;

    napi_set_named_property(c->env, c->obj, f->name, from_field(c->env, f));
    return 0;
}

static int
name_cb(const char *name, size_t len, void *ctx)
{
    read_ctx *c = ctx;
    napi_value s;
    uint32_t n;

    napi_get_array_length(c->env, c->obj, &n);
    napi_create_string_utf8(c->env, name, len, &s);
    napi_set_element(c->env, c->obj, n, s);
    return 0;
}

/* get(r, coll, doc, field?) -> object | value | undefined */
static napi_value
js_get(napi_env env, napi_callback_info info)
{
    napi_value argv[4], out = NULL;
    char coll[NAME_BUF], doc[NAME_BUF], field[NAME_BUF];
    const char *f = NULL;
    crdt_read *rd;
    h_replica *h;
    read_ctx c;
    int rc;

    if (get_args(env, info, 4, argv) < 0 ||
        (h = get_replica(env, argv[0])) == NULL ||
        get_str(env, argv[1], coll, sizeof coll, "collection") < 0 ||
        get_str(env, argv[2], doc, sizeof doc, "document") < 0 ||
        get_opt_str(env, argv[3], field, sizeof field, &f, "field") < 0)
        return NULL;
    if ((rc = crdt_read_begin(&rd, h->r)) < 0)
        return throw_crdt(env, rc, "read");
    if (f != NULL) {
        crdt_field fv;
        rc = crdt_read_field(&fv, rd, coll, doc, f);
        if (rc == CRDT_OK)
            out = from_field(env, &fv);
    } else {
        napi_create_object(env, &c.obj);
        c.env = env;
        rc = crdt_read_doc(rd, coll, doc, field_cb, &c);
        if (rc == CRDT_OK)
            out = c.obj;
    }
    crdt_read_end(rd);
    if (rc == CRDT_ENOTFOUND) {
        napi_get_undefined(env, &out);
        return out;
    }
    if (rc < 0)
        return throw_crdt(env, rc, "read");
    return out;
}

/* list(r, coll?) -> collection names, or the document ids of coll */
static napi_value
js_list(napi_env env, napi_callback_info info)
{
    napi_value argv[2];
    char coll[NAME_BUF];
    const char *c0 = NULL;
    crdt_read *rd;
    h_replica *h;
    read_ctx c;
    int rc;

    if (get_args(env, info, 2, argv) < 0 ||
        (h = get_replica(env, argv[0])) == NULL ||
        get_opt_str(env, argv[1], coll, sizeof coll, &c0, "collection") < 0)
        return NULL;
    if ((rc = crdt_read_begin(&rd, h->r)) < 0)
        return throw_crdt(env, rc, "read");
    napi_create_array(env, &c.obj);
    c.env = env;
    rc = c0 ? crdt_read_docs(rd, c0, name_cb, &c)
            : crdt_read_collections(rd, name_cb, &c);
    crdt_read_end(rd);
    if (rc < 0 && rc != CRDT_ENOTFOUND)
        return throw_crdt(env, rc, "read");
    return c.obj;
}

/* ---- reports ------------------------------------------------------ */

/* The report of `strata sync --json`, with JS-style keys. */
static napi_value
report_obj(napi_env env, const crdtnet_report *r, int rc)
{
    napi_value o;
    char hash[2 * CRDT_HASH_BYTES + 1];

    napi_create_object(env, &o);
    set_num(env, o, "changesSent", (double)r->changes_sent);
    set_num(env, o, "changesReceived", (double)r->changes_received);
    set_num(env, o, "opsReceived", (double)r->ops_received);
    set_num(env, o, "cutChanges", (double)r->cut_changes_received);
    set_bool(env, o, "snapshotReceived", r->snapshot_received);
    set_bool(env, o, "snapshotSent", r->snapshot_sent);
    set_num(env, o, "snapshotEntries", (double)(r->snapshot_entries_sent +
                                                r->snapshot_entries_received));
    set_num(env, o, "rebased", (double)r->rebased_ops);
    set_num(env, o, "quarantined", (double)r->quarantined_ops);
    set_num(env, o, "conflicts", (double)r->conflicts);
    set_bool(env, o, "rejected", r->rejected);
    set_bool(env, o, "inSync", r->in_sync);
    set_str(env, o, "reason", r->reason);
    crdt_hex(hash, r->state_hash, CRDT_HASH_BYTES);
    set_str(env, o, "stateHash", hash);
    set_num(env, o, "busyRetryMs",
            rc == CRDT_EBUSY ? (double)r->busy_retry_ms : 0);
    return o;
}

static void
settle(napi_env env, napi_deferred d, int rc, const crdtnet_report *rep,
       const char *what)
{
    if (rc == CRDT_OK) {
        napi_resolve_deferred(env, d, report_obj(env, rep, rc));
    } else {
        napi_value e = make_error(env, rc, what, rep->reason);
        napi_set_named_property(env, e, "report", report_obj(env, rep, rc));
        napi_reject_deferred(env, d, e);
    }
}

/* ---- sync over TCP ------------------------------------------------ */

typedef struct {
    napi_async_work work;
    napi_deferred d;
    h_replica *h;
    char host[256], port[16];
    crdtnet_report rep;
    int rc;
} sync_job;

static void
sync_exec(napi_env env, void *data)
{
    sync_job *j = data;

    (void)env;
    j->rc = crdtnet_sync_connect(&j->rep, j->h->r, j->host, j->port, NULL);
    if (j->rc == CRDT_OK && j->rep.rejected)
        j->rc = CRDT_EREJECTED;
}

static void
sync_done(napi_env env, napi_status status, void *data)
{
    sync_job *j = data;

    (void)status;
    settle(env, j->d, j->rc, &j->rep, "sync");
    napi_delete_async_work(env, j->work);
    replica_unref(j->h);
    free(j);
}

static napi_value
js_sync(napi_env env, napi_callback_info info)
{
    napi_value argv[3], promise;
    h_replica *h;
    sync_job *j;

    if (get_args(env, info, 3, argv) < 0 ||
        (h = get_replica(env, argv[0])) == NULL)
        return NULL;
    if ((j = calloc(1, sizeof *j)) == NULL)
        return throw_crdt(env, CRDT_ENOMEM, "sync");
    if (get_str(env, argv[1], j->host, sizeof j->host, "host") < 0 ||
        get_str(env, argv[2], j->port, sizeof j->port, "port") < 0) {
        free(j);
        return NULL;
    }
    j->h = h;
    promise = queue_work(env, "strata.sync", sync_exec, sync_done, j,
                         &j->work, &j->d);
    if (promise == NULL) {
        free(j);
        return NULL;
    }
    h->users++;
    return promise;
}

/* ---- a peer over any transport ------------------------------------ */

typedef struct {
    crdtnet_peer *p;
    h_replica *h;
    int busy; /* a step is running in the pool: JS thread only */
} h_peer;

static void
peer_release(h_peer *x)
{
    if (x->p != NULL) {
        crdtnet_peer_free(x->p);
        x->p = NULL;
        replica_unref(x->h);
    }
}

static void
peer_finalize(napi_env env, void *data, void *hint)
{
    h_peer *x = data;

    (void)env;
    (void)hint;
    if (!x->busy) {
        peer_release(x);
        free(x);
    } else {
        x->busy = -1; /* the step's completion frees it */
    }
}

static napi_value
js_peer_new(napi_env env, napi_callback_info info)
{
    napi_value argv[2], out;
    char role[16];
    h_replica *h;
    h_peer *x;
    int rc;

    if (get_args(env, info, 2, argv) < 0 ||
        (h = get_replica(env, argv[0])) == NULL ||
        get_str(env, argv[1], role, sizeof role, "role") < 0)
        return NULL;
    if (strcmp(role, "client") != 0 && strcmp(role, "server") != 0)
        return throw_type(env, "role is 'client' or 'server'");
    if ((x = calloc(1, sizeof *x)) == NULL)
        return throw_crdt(env, CRDT_ENOMEM, "peer");
    rc = crdtnet_peer_new(&x->p, &h->r, 1,
                          role[0] == 'c' ? CRDTNET_HS_CLIENT
                                         : CRDTNET_HS_SERVER, NULL);
    if (rc < 0) {
        free(x);
        return throw_crdt(env, rc, "peer");
    }
    x->h = h;
    h->users++;
    CHECK(napi_create_external(env, x, peer_finalize, NULL, &out));
    return out;
}

typedef struct {
    napi_async_work work;
    napi_deferred d;
    h_peer *x;
    unsigned char *in;
    size_t in_len;
    int eof;
    unsigned char *out; /* every piece next_out gave, concatenated */
    size_t out_len;
    int done, rc;
    crdtnet_report rep;
} peer_job;

static void
peer_exec(napi_env env, void *data)
{
    peer_job *j = data;
    const unsigned char *p;
    size_t n;

    (void)env;
    if (j->in_len > 0)
        crdtnet_peer_feed(j->x->p, j->in, j->in_len);
    if (j->eof)
        crdtnet_peer_eof(j->x->p);
    while (crdtnet_peer_next_out(j->x->p, &p, &n) == CRDT_OK) {
        unsigned char *nb = realloc(j->out, j->out_len + n);
        if (nb == NULL) {
            j->rc = CRDT_ENOMEM;
            return;
        }
        j->out = nb;
        memcpy(j->out + j->out_len, p, n);
        j->out_len += n;
    }
    j->done = crdtnet_peer_done(j->x->p);
    if (j->done)
        j->rc = crdtnet_peer_result(j->x->p, &j->rep);
}

static void
peer_done_cb(napi_env env, napi_status status, void *data)
{
    peer_job *j = data;
    napi_value o, buf;

    (void)status;
    if (j->rc == CRDT_ENOMEM && !j->done) {
        napi_reject_deferred(env, j->d,
                             make_error(env, CRDT_ENOMEM, "peer", NULL));
    } else {
        napi_create_object(env, &o);
        napi_create_buffer_copy(env, j->out_len, j->out ? (void *)j->out : "",
                                NULL, &buf);
        napi_set_named_property(env, o, "out", buf);
        set_bool(env, o, "done", j->done);
        if (j->done) {
            napi_set_named_property(env, o, "report",
                                    report_obj(env, &j->rep, j->rc));
            if (j->rc < 0)
                napi_set_named_property(env, o, "error",
                                        make_error(env, j->rc, "peer",
                                                   j->rep.reason));
        }
        napi_resolve_deferred(env, j->d, o);
    }
    napi_delete_async_work(env, j->work);
    if (j->x->busy == -1) { /* collected while the step ran */
        peer_release(j->x);
        free(j->x);
    } else {
        j->x->busy = 0;
    }
    free(j->in);
    free(j->out);
    free(j);
}

/* peerStep(peer, bytes|null, eof) -> Promise<{out, done, report?, error?}> */
static napi_value
js_peer_step(napi_env env, napi_callback_info info)
{
    napi_value argv[3], promise;
    napi_valuetype t;
    bool eof = false, is_buf = false;
    h_peer *x;
    peer_job *j;

    if ((x = get_handle(env, info, 3, argv, "peer")) == NULL)
        return NULL;
    if (x->p == NULL)
        return throw_crdt(env, CRDT_ECLOSED, "peer");
    if (x->busy)
        return throw_crdt(env, CRDT_EBUSY, "peer: one step at a time");
    if ((j = calloc(1, sizeof *j)) == NULL)
        return throw_crdt(env, CRDT_ENOMEM, "peer");
    napi_typeof(env, argv[1], &t);
    if (t == napi_object)
        napi_is_buffer(env, argv[1], &is_buf);
    if (is_buf) {
        void *data;
        napi_get_buffer_info(env, argv[1], &data, &j->in_len);
        if (j->in_len > 0) {
            if ((j->in = malloc(j->in_len)) == NULL) {
                free(j);
                return throw_crdt(env, CRDT_ENOMEM, "peer");
            }
            memcpy(j->in, data, j->in_len);
        }
    } else if (t != napi_null && t != napi_undefined) {
        free(j);
        return throw_type(env, "peer bytes must be a Buffer");
    }
    napi_get_value_bool(env, argv[2], &eof);
    j->eof = eof;
    j->x = x;
    promise = queue_work(env, "strata.peer", peer_exec, peer_done_cb, j,
                         &j->work, &j->d);
    if (promise == NULL) {
        free(j->in);
        free(j);
        return NULL;
    }
    x->busy = 1;
    return promise;
}

static napi_value
js_peer_free(napi_env env, napi_callback_info info)
{
    napi_value argv[1];
    h_peer *x;

    if ((x = get_handle(env, info, 1, argv, "peer")) == NULL)
        return NULL;
    if (x->busy)
        return throw_crdt(env, CRDT_EBUSY, "peer: a step is running");
    peer_release(x);
    return NULL;
}

/* ---- subscriptions ------------------------------------------------ */

typedef struct {
    h_replica *h;
    crdt_feed_watch *w;
    napi_threadsafe_function tsfn;
    pthread_t th;
    int stop_pipe[2];
    char coll[NAME_BUF], doc[NAME_BUF];
    int has_coll, has_doc;
    crdt_feed_cursor cur;
    int running;
} h_sub;

/* One batch of events, built on the watch thread, turned into JS on the
 * JS thread: a flat list of lines like `strata watch --json` prints. */
typedef struct {
    char **cursor, **coll, **doc, **fields; /* fields: NUL-separated */
    size_t *nfields;
    int *whole, *everything;
    size_t n, cap;
} batch;

static void
batch_free(batch *b)
{
    if (b == NULL)
        return;
    for (size_t i = 0; i < b->n; i++) {
        free(b->cursor[i]);
        free(b->coll[i]);
        free(b->doc[i]);
        free(b->fields[i]);
    }
    free(b->cursor);
    free(b->coll);
    free(b->doc);
    free(b->fields);
    free(b->nfields);
    free(b->whole);
    free(b->everything);
    free(b);
}

static int
batch_grow(batch *b)
{
    size_t cap = b->cap ? b->cap * 2 : 8;
#define GROW(f)                                                           \
    do {                                                                  \
        void *np = realloc(b->f, cap * sizeof *b->f);                     \
        if (np == NULL)                                                   \
            return -1;                                                    \
        b->f = np;                                                        \
    } while (0)
    GROW(cursor);
    GROW(coll);
    GROW(doc);
    GROW(fields);
    GROW(nfields);
    GROW(whole);
    GROW(everything);
#undef GROW
    b->cap = cap;
    return 0;
}

typedef struct {
    batch *b;
    /* crdt_feed_since()'s next: set before the first event, its gen is
     * the one the events' cursors carry */
    const crdt_feed_cursor *at;
    int oom;
} collect_ctx;

static int
collect(void *ctx, const crdt_feed_event *ev)
{
    collect_ctx *c = ctx;
    batch *b = c->b;
    char cur[CRDT_FEED_CURSOR_CHARS];
    crdt_feed_cursor fc;
    size_t rows = ev->everything ? 1 : ev->ndocs;

    memcpy(fc.gen, c->at->gen, 8);
    fc.seq = ev->commit;
    crdt_feed_cursor_format(cur, &fc);
    for (size_t i = 0; i < rows; i++) {
        size_t k, len = 0;
        char *fs;
        if (b->n == b->cap && batch_grow(b) < 0) {
            c->oom = 1;
            return 1;
        }
        k = b->n;
        b->everything[k] = ev->everything;
        b->whole[k] = ev->everything ? 0 : ev->docs[i].whole;
        b->nfields[k] = ev->everything ? 0 : ev->docs[i].nfields;
        b->cursor[k] = strdup(cur);
        b->coll[k] = ev->everything ? NULL : strdup(ev->docs[i].coll);
        b->doc[k] = ev->everything ? NULL : strdup(ev->docs[i].doc);
        for (size_t j = 0; j < b->nfields[k]; j++)
            len += strlen(ev->docs[i].fields[j]) + 1;
        fs = malloc(len + 1);
        if (fs != NULL) {
            char *p = fs;
            for (size_t j = 0; j < b->nfields[k]; j++) {
                size_t l = strlen(ev->docs[i].fields[j]) + 1;
                memcpy(p, ev->docs[i].fields[j], l);
                p += l;
            }
        }
        b->fields[k] = fs;
        b->n++;
        if (b->cursor[k] == NULL || fs == NULL ||
            (!ev->everything && (b->coll[k] == NULL || b->doc[k] == NULL))) {
            c->oom = 1;
            return 1;
        }
    }
    return 0;
}

static void *
sub_thread(void *arg)
{
    h_sub *s = arg;

    for (;;) {
        struct pollfd pf[2] = { { crdt_feed_watch_fd(s->w), POLLIN, 0 },
                                { s->stop_pipe[0], POLLIN, 0 } };
        crdt_feed_cursor next;
        collect_ctx c;
        int rc;

        /* catch up first: the watch was opened before the cursor */
        for (;;) {
            memset(&c, 0, sizeof c);
            if ((c.b = calloc(1, sizeof *c.b)) == NULL)
                break;
            c.at = &next;
            rc = crdt_feed_since(s->h->r, &s->cur,
                                 s->has_coll ? s->coll : NULL,
                                 s->has_doc ? s->doc : NULL, 256, collect, &c,
                                 &next);
            if (rc < 0 || c.oom) {
                batch_free(c.b);
                break; /* try again on the next wake-up */
            }
            if (c.b->n > 0) {
                if (napi_call_threadsafe_function(s->tsfn, c.b,
                                                  napi_tsfn_blocking) !=
                    napi_ok)
                    batch_free(c.b);
            } else {
                batch_free(c.b);
            }
            if (memcmp(&next, &s->cur, sizeof next) == 0)
                break;
            s->cur = next;
        }
        if (poll(pf, 2, -1) < 0 && errno != EINTR)
            break;
        if (pf[1].revents)
            break;
        if (pf[0].revents)
            crdt_feed_watch_clear(s->w);
    }
    return NULL;
}

static void
sub_call_js(napi_env env, napi_value js_cb, void *context, void *data)
{
    batch *b = data;
    napi_value arr, undef;

    (void)context;
    if (env == NULL || b == NULL) { /* the function is being torn down */
        batch_free(b);
        return;
    }
    napi_create_array_with_length(env, b->n, &arr);
    for (size_t i = 0; i < b->n; i++) {
        napi_value o, v, fl;
        napi_create_object(env, &o);
        set_str(env, o, "cursor", b->cursor[i]);
        if (b->everything[i]) {
            set_bool(env, o, "everything", 1);
        } else {
            const char *p = b->fields[i];
            set_str(env, o, "coll", b->coll[i]);
            set_str(env, o, "doc", b->doc[i]);
            napi_create_array_with_length(env, b->nfields[i], &fl);
            for (size_t j = 0; j < b->nfields[i]; j++) {
                napi_create_string_utf8(env, p, NAPI_AUTO_LENGTH, &v);
                napi_set_element(env, fl, (uint32_t)j, v);
                p += strlen(p) + 1;
            }
            napi_set_named_property(env, o, "fields", fl);
            set_bool(env, o, "whole", b->whole[i]);
        }
        napi_set_element(env, arr, (uint32_t)i, o);
    }
    batch_free(b);
    napi_get_undefined(env, &undef);
    napi_call_function(env, undef, js_cb, 1, &arr, NULL);
}

static void
sub_finalize(napi_env env, void *data, void *hint)
{
    h_sub *s = data;

    (void)env;
    (void)hint;
    if (!s->running) /* a running one is never collected from under */
        free(s);     /* its thread: it stays until the process ends */
}

/* subscribe(r, coll?, doc?, cursor?, cb) -> handle */
static napi_value
js_subscribe(napi_env env, napi_callback_info info)
{
    napi_value argv[5], out, name;
    char cursor[64];
    const char *cs = NULL, *c0 = NULL, *d0 = NULL;
    h_replica *h;
    h_sub *s;
    int rc;

    if (get_args(env, info, 5, argv) < 0 ||
        (h = get_replica(env, argv[0])) == NULL)
        return NULL;
    if ((s = calloc(1, sizeof *s)) == NULL)
        return throw_crdt(env, CRDT_ENOMEM, "subscribe");
    s->stop_pipe[0] = s->stop_pipe[1] = -1;
    if (get_opt_str(env, argv[1], s->coll, sizeof s->coll, &c0,
                    "collection") < 0 ||
        get_opt_str(env, argv[2], s->doc, sizeof s->doc, &d0, "document") <
            0 ||
        get_opt_str(env, argv[3], cursor, sizeof cursor, &cs, "cursor") < 0) {
        free(s);
        return NULL;
    }
    if (d0 != NULL && c0 == NULL) {
        free(s);
        return throw_type(env, "a document filter needs a collection");
    }
    s->has_coll = c0 != NULL;
    s->has_doc = d0 != NULL;
    if (cs != NULL && crdt_feed_cursor_parse(&s->cur, cs) < 0) {
        free(s);
        return throw_crdt(env, CRDT_EINVAL, "subscribe: bad cursor");
    }
    /* the watch first, then the cursor: no commit falls in between */
    rc = crdt_feed_watch_open(&s->w, crdt_replica_path(h->r));
    if (rc == CRDT_OK && cs == NULL)
        rc = crdt_feed_head(&s->cur, h->r);
    if (rc == CRDT_OK && pipe(s->stop_pipe) != 0)
        rc = CRDT_EIO;
    if (rc < 0) {
        crdt_feed_watch_close(s->w);
        free(s);
        return throw_crdt(env, rc, "subscribe");
    }
    napi_create_string_utf8(env, "strata.subscribe", NAPI_AUTO_LENGTH, &name);
    if (napi_create_threadsafe_function(env, argv[4], NULL, name, 0, 1, NULL,
                                        NULL, NULL, sub_call_js,
                                        &s->tsfn) != napi_ok) {
        close(s->stop_pipe[0]);
        close(s->stop_pipe[1]);
        crdt_feed_watch_close(s->w);
        free(s);
        return NULL; /* napi threw: the callback is not a function */
    }
    s->h = h;
    h->users++;
    if (pthread_create(&s->th, NULL, sub_thread, s) != 0) {
        napi_release_threadsafe_function(s->tsfn, napi_tsfn_abort);
        close(s->stop_pipe[0]);
        close(s->stop_pipe[1]);
        crdt_feed_watch_close(s->w);
        replica_unref(h);
        free(s);
        return throw_crdt(env, CRDT_EIO, "subscribe: thread");
    }
    s->running = 1;
    CHECK(napi_create_external(env, s, sub_finalize, NULL, &out));
    return out;
}

static napi_value
js_unsubscribe(napi_env env, napi_callback_info info)
{
    napi_value argv[1];
    h_sub *s;

    if ((s = get_handle(env, info, 1, argv, "subscription")) == NULL)
        return NULL;
    if (!s->running)
        return NULL;
    s->running = 0;
    (void)!write(s->stop_pipe[1], "x", 1);
    /* the thread may be blocked handing a batch to the queue, which the
     * JS thread (us) drains: abort the function first so it returns */
    napi_release_threadsafe_function(s->tsfn, napi_tsfn_abort);
    pthread_join(s->th, NULL);
    close(s->stop_pipe[0]);
    close(s->stop_pipe[1]);
    crdt_feed_watch_close(s->w);
    replica_unref(s->h);
    /* s itself stays: the external may be used again (a no-op) */
    return NULL;
}

/* ---- module ------------------------------------------------------- */

static napi_value
init(napi_env env, napi_value exports)
{
    static const struct {
        const char *name;
        napi_callback fn;
    } fns[] = {
        { "open", js_open },       { "close", js_close },
        { "info", js_info },       { "begin", js_begin },
        { "op", js_op },           { "commit", js_commit },
        { "abort", js_abort },     { "write", js_write },
        { "get", js_get },
        { "list", js_list },       { "sync", js_sync },
        { "peerNew", js_peer_new }, { "peerStep", js_peer_step },
        { "peerFree", js_peer_free }, { "subscribe", js_subscribe },
        { "unsubscribe", js_unsubscribe },
    };

    for (size_t i = 0; i < sizeof fns / sizeof fns[0]; i++) {
        napi_value f;
        CHECK(napi_create_function(env, fns[i].name, NAPI_AUTO_LENGTH,
                                   fns[i].fn, NULL, &f));
        CHECK(napi_set_named_property(env, exports, fns[i].name, f));
    }
    return exports;
}

/* node_api.h's macro defines a function without a prototype; gcc lets a
 * system header's macro do that, clang does not */
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wmissing-prototypes"
NAPI_MODULE(NODE_GYP_MODULE_NAME, init)
#pragma GCC diagnostic pop
