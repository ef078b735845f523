/*
 * tamper.c: alter a replica's state behind its log, as a forged epoch's
 * maker would: one register written straight into the state (the state
 * hash follows), by no change of the log. The next epoch the replica
 * makes then folds a state that does not follow from its ops. Test
 * helper only (test_epoch_trust.sh).
 *
 *   strata-test-tamper DIR COLL DOC FIELD INT
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "crdt/crdt.h"
#include "crdt/raw.h"

int
main(int argc, char **argv)
{
    crdt_open_options o = CRDT_OPEN_OPTIONS_INIT;
    crdt_replica *r = NULL;
    crdt_raw *t;
    crdt_op op;
    crdt_actor ghost;
    int rc;

    if (argc != 6) {
        fprintf(stderr, "usage: %s DIR COLL DOC FIELD INT\n", argv[0]);
        return 2;
    }
    memset(&op, 0, sizeof op);
    op.kind = CRDT_OP_PUT;
    op.coll = argv[2];
    op.coll_len = strlen(argv[2]);
    op.doc = argv[3];
    op.doc_len = strlen(argv[3]);
    op.field = argv[4];
    op.field_len = strlen(argv[4]);
    op.value = crdt_value_int(strtoll(argv[5], NULL, 10));
    memset(ghost.b, 0x7e, sizeof ghost.b); /* an actor nobody is */
    if ((rc = crdt_replica_open(&r, argv[1], &o)) < 0 ||
        (rc = crdt_raw_begin(&t, r, 1)) < 0) {
        fprintf(stderr, "%s: %s\n", argv[1], crdt_strerror(rc));
        crdt_replica_close(r);
        return 1;
    }
    rc = crdt_raw_apply_op(t, &op, UINT64_MAX / 2, &ghost, 1);
    if (rc == CRDT_OK)
        rc = crdt_raw_commit(t);
    else
        crdt_raw_abort(t);
    crdt_replica_close(r);
    if (rc < 0) {
        fprintf(stderr, "%s: %s\n", argv[1], crdt_strerror(rc));
        return 1;
    }
    return 0;
}
