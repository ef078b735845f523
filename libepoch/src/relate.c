/*
 * relate.c: how our epoch relates to a peer's, and the policy for stale
 * peers.
 *
 * Canonical epoch of a fork (two epochs with a common ancestor, neither
 * descending from the other): the one folding more ops (larger sum of
 * base seqs), then the smaller id. Both sides compute the same answer
 * from the same two records.
 */
#include <stdlib.h>
#include <string.h>

#include "epoch_internal.h"

/* Walk up from @p id to epoch number @p number; ENOTFOUND if unknown. */
static int
ancestor_at(epoch_info *out, crdt_raw *t, const unsigned char *id,
            uint64_t number)
{
    epoch_info e;
    int rc = epoch__get_in(&e, t, id);

    while (rc == CRDT_OK && e.number > number) {
        epoch_info up;
        rc = epoch__get_in(&up, t, e.parent);
        epoch_info_clear(&e);
        e = up;
    }
    if (rc == CRDT_OK)
        *out = e;
    return rc;
}

/* Is there a custom migration on the way from @p low (exclusive) up to
 * @p high (inclusive)? Also counts the epochs. */
static int
path_info(int *custom, uint64_t *count, crdt_raw *t, const epoch_info *high,
          uint64_t low_number)
{
    epoch_info e;
    int rc = epoch__get_in(&e, t, high->id);

    *custom = 0;
    *count = 0;
    while (rc == CRDT_OK && e.number > low_number) {
        epoch_info up;
        if (e.custom[0] != '\0')
            *custom = 1;
        (*count)++;
        rc = epoch__get_in(&up, t, e.parent);
        epoch_info_clear(&e);
        e = up;
    }
    if (rc == CRDT_OK)
        epoch_info_clear(&e);
    return rc;
}

int
epoch_relate(epoch_relation *rel_out, const char **reason_out,
             crdt_replica *r, const unsigned char *theirs,
             const epoch_policy *policy)
{
    epoch_info mine, other, a, b;
    crdt_raw *t;
    uint64_t low, count_mine = 0, count_theirs = 0;
    int rc, custom_mine = 0, custom_theirs = 0;
    epoch_relation rel;

    if (rel_out == NULL || r == NULL || theirs == NULL)
        return CRDT_EINVAL;
    if (reason_out)
        *reason_out = NULL;
    if ((rc = crdt_raw_begin(&t, r, 0)) < 0)
        return rc;
    if ((rc = epoch__current_in(&mine, t)) < 0) {
        crdt_raw_abort(t);
        return rc;
    }
    if (memcmp(mine.id, theirs, EPOCH_ID_BYTES) == 0) {
        *rel_out = EPOCH_SAME;
        goto out_mine;
    }
    rc = epoch__get_in(&other, t, theirs);
    if (rc == CRDT_ENOTFOUND) {
        *rel_out = EPOCH_UNKNOWN;
        rc = CRDT_OK;
        goto out_mine;
    }
    if (rc < 0)
        goto out_mine;
    /* bring both to the same number, then up together to the ancestor */
    low = mine.number < other.number ? mine.number : other.number;
    if ((rc = ancestor_at(&a, t, mine.id, low)) < 0)
        goto out_both;
    if ((rc = ancestor_at(&b, t, other.id, low)) < 0) {
        epoch_info_clear(&a);
        goto out_both;
    }
    while (memcmp(a.id, b.id, EPOCH_ID_BYTES) != 0 && a.number > 0) {
        epoch_info ua, ub;
        if ((rc = epoch__get_in(&ua, t, a.parent)) < 0)
            break;
        if ((rc = epoch__get_in(&ub, t, b.parent)) < 0) {
            epoch_info_clear(&ua);
            break;
        }
        epoch_info_clear(&a);
        epoch_info_clear(&b);
        a = ua;
        b = ub;
    }
    low = a.number;
    int same_root = memcmp(a.id, b.id, EPOCH_ID_BYTES) == 0;
    epoch_info_clear(&a);
    epoch_info_clear(&b);
    if (rc < 0)
        goto out_both;
    if (!same_root) {
        rc = CRDT_EAUTH; /* different genesis: another space */
        goto out_both;
    }
    if ((rc = path_info(&custom_mine, &count_mine, t, &mine, low)) < 0 ||
        (rc = path_info(&custom_theirs, &count_theirs, t, &other, low)) < 0)
        goto out_both;

    if (count_mine == 0)
        rel = EPOCH_BEHIND;
    else if (count_theirs == 0)
        rel = EPOCH_AHEAD;
    else if (mine.base_total != other.base_total)
        rel = mine.base_total > other.base_total ? EPOCH_FORK_WIN
                                                 : EPOCH_FORK_LOSE;
    else
        rel = memcmp(mine.id, other.id, EPOCH_ID_BYTES) < 0
                  ? EPOCH_FORK_WIN : EPOCH_FORK_LOSE;
    *rel_out = rel;

    /* policy applies to the side that must move */
    if (rel == EPOCH_BEHIND || rel == EPOCH_FORK_LOSE) {
        if (custom_theirs || (rel == EPOCH_FORK_LOSE && custom_mine)) {
            if (reason_out)
                *reason_out = "a custom migration is in between";
            rc = CRDT_EREJECTED;
        } else if (policy && policy->max_epochs_behind &&
                   count_theirs > policy->max_epochs_behind) {
            if (reason_out)
                *reason_out = "more epochs behind than the policy allows";
            rc = CRDT_EREJECTED;
        } else if (policy && policy->max_age_ms && mine.number > 0 &&
                   other.created_ms > mine.created_ms + policy->max_age_ms) {
            /* (genesis has no creation time: the policy starts with the
             * first epoch a replica holds) */
            if (reason_out)
                *reason_out = "older than the policy allows";
            rc = CRDT_EREJECTED;
        }
    }
out_both:
    epoch_info_clear(&other);
out_mine:
    epoch_info_clear(&mine);
    crdt_raw_abort(t);
    return rc;
}
