/*
 * fuzz_feed.c: a change-feed record as stored in the `feed` database ->
 * crdt__feed_decode, unfiltered and filtered by collection and document.
 *
 * Input: the record bytes (docs/storage.md, "The change feed").
 * Checked: no crash or sanitizer report; only CRDT_OK, CRDT_ECORRUPT or
 * CRDT_ENOMEM; a decoded event either says everything with no documents
 * or lists documents in strictly increasing (coll, doc) order, each with
 * valid names and its fields strictly increasing, all pointing inside
 * the input (version 1: entries are read where they lie; a version 2
 * entry is rebuilt in the decoder's memory); a filtered decode lists
 * exactly the matching documents of the unfiltered one.
 *
 * Seeds: `STRATA_FUZZ_SEEDS=DIR fuzz_feed` writes the corpus (records
 * for one field, several documents, a whole-document entry, everything)
 * into DIR and exits.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "crdt/crdt.h"
#include "internal.h"
#include "support/fuzz_util.h"

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void
inside(const void *p, const unsigned char *buf, size_t size)
{
    const unsigned char *q = p;

    if (buf[0] == 1 && (q < buf || q >= buf + size))
        abort();
}

static void
check_event(const crdt_feed_event *ev, const unsigned char *buf,
            size_t size)
{
    if (ev->everything) {
        if (ev->ndocs != 0)
            abort();
        return;
    }
    for (size_t i = 0; i < ev->ndocs; i++) {
        const crdt_feed_doc *d = &ev->docs[i];
        inside(d->coll, buf, size);
        inside(d->doc, buf, size);
        if (!crdt__name_ok(d->coll) || !crdt__name_ok(d->doc))
            abort();
        if (i > 0) {
            int c = strcmp(ev->docs[i - 1].coll, d->coll);
            if (c > 0 || (c == 0 && strcmp(ev->docs[i - 1].doc, d->doc) >= 0))
                abort();
        }
        if (d->nfields == 0 && !d->whole)
            abort();
        for (size_t j = 0; j < d->nfields; j++) {
            inside(d->fields[j], buf, size);
            if (!crdt__name_ok(d->fields[j]) ||
                (j > 0 && strcmp(d->fields[j - 1], d->fields[j]) >= 0))
                abort();
        }
    }
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    unsigned char *buf = malloc(size ? size : 1);
    crdt_feed_event ev, fe;
    void *mem = NULL, *fmem = NULL;
    int rc;

    if (buf == NULL)
        return 0;
    if (size)
        memcpy(buf, data, size);
    rc = crdt__feed_decode(buf, size, 7, NULL, NULL, &ev, &mem);
    if (rc != CRDT_OK) {
        if (rc != CRDT_ECORRUPT && rc != CRDT_ENOMEM)
            abort();
        free(buf);
        return 0;
    }
    if (ev.commit != 7)
        abort();
    check_event(&ev, buf, size);
    if (ev.ndocs > 0) {
        const crdt_feed_doc *d = &ev.docs[ev.ndocs / 2];
        size_t want = 0;
        for (size_t i = 0; i < ev.ndocs; i++)
            want += strcmp(ev.docs[i].coll, d->coll) == 0;
        rc = crdt__feed_decode(buf, size, 7, d->coll, NULL, &fe, &fmem);
        if (rc == CRDT_OK && fe.ndocs != want)
            abort();
        free(fmem);
        rc = crdt__feed_decode(buf, size, 7, d->coll, d->doc, &fe, &fmem);
        if (rc == CRDT_OK && (fe.ndocs != 1 ||
                              fe.docs[0].nfields != d->nfields ||
                              fe.docs[0].whole != d->whole))
            abort();
        free(fmem);
    }
    free(mem);
    free(buf);
    return 0;
}

static void
write_seeds(const char *dir)
{
    static const unsigned char one[] = { 1, 0, 0, 0, 0, 1, 0, 6, 'c', 0,
                                         'd', 0, 'f', 0 };
    static const unsigned char several[] = {
        1, 0, 0, 0, 0, 4,
        0, 6, 'a', 0, 'd', 0, 'x', 0,
        0, 5, 'c', 0, 'd', 0, 0,
        0, 6, 'c', 0, 'd', 0, 'f', 0,
        0, 6, 'c', 0, 'e', 0, 'g', 0,
    };
    /* version 2: keep | tail | n | n bytes against the entry before */
    static const unsigned char coded[] = {
        2, 0, 0, 0, 0, 4,
        0, 0, 6, 'a', 0, 'd', 0, 'x', 0,
        0, 1, 4, 'c', 0, 'd', 0, 0,
        4, 0, 2, 'f', 0,
        2, 0, 4, 'e', 0, 'g', 0,
    };
    static const unsigned char coded_run[] = {
        2, 0, 0, 0, 0, 3,
        0, 0, 10, 'c', 0, 'd', '0', '0', '4', '1', 0, 'v', 0,
        6, 3, 1, '2',
        6, 3, 1, '3',
    };
    static const unsigned char all[] = { 1, 1, 0, 0, 0, 0 };
    static const unsigned char huge_count[] = { 1, 0, 0xff, 0xff, 0xff,
                                                0xff, 0, 6 };

    fuzz_put_seed(dir, "one_field", one, sizeof one);
    fuzz_put_seed(dir, "several_docs", several, sizeof several);
    fuzz_put_seed(dir, "coded", coded, sizeof coded);
    fuzz_put_seed(dir, "coded_run", coded_run, sizeof coded_run);
    fuzz_put_seed(dir, "everything", all, sizeof all);
    fuzz_put_seed(dir, "bomb_count", huge_count, sizeof huge_count);
}

int
LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    return fuzz_seeds_if_asked(write_seeds);
}
