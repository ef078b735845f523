/*
 * stats.c: what the counters of crdtnet/daemon.h mean: the outcome of a
 * session's result code and the merge latency buckets.
 */
#include <stdint.h>

#include "crdtnet/daemon.h"
#include "io_internal.h"

/* Upper bounds in microseconds; the last bucket has none. */
static const uint64_t bucket_us[CRDTNET_MERGE_BUCKETS - 1] = {
    100, 250, 500, 1000, 2500, 5000, 10000, 25000, 50000, 100000, 1000000
};

uint64_t
crdtnet_merge_bucket_us(unsigned i)
{
    return i < CRDTNET_MERGE_BUCKETS - 1 ? bucket_us[i] : UINT64_MAX;
}

const char *
crdtnet_outcome_name(int outcome)
{
    static const char *const names[CRDTNET_OUTCOME_COUNT] = {
        "ok", "busy", "rejected", "auth", "protocol", "network", "local"
    };

    return outcome >= 0 && outcome < CRDTNET_OUTCOME_COUNT ? names[outcome]
                                                           : "unknown";
}

int
crdtnet__outcome(int rc)
{
    switch (rc) {
    case CRDT_OK:
        return CRDTNET_OUTCOME_OK;
    case CRDT_EBUSY:
        return CRDTNET_OUTCOME_BUSY;
    case CRDT_EREJECTED:
        return CRDTNET_OUTCOME_REJECTED;
    case CRDT_EAUTH:
    case CRDT_EPERM:
        return CRDTNET_OUTCOME_AUTH;
    case CRDT_EIO:
    case CRDT_ECLOSED:
        return CRDTNET_OUTCOME_NETWORK;
    case CRDT_ECORRUPT:
    case CRDT_EFULL:
    case CRDT_ENOMEM:
    case CRDT_ERROR:
        return CRDTNET_OUTCOME_LOCAL;
    default: /* EPROTO, EVERSION, ELIMIT, ECLOCK, ECONFLICT... */
        return CRDTNET_OUTCOME_PROTOCOL;
    }
}

void
crdtnet__count_merge(crdtnet_space_stats *st, uint64_t us)
{
    unsigned i = 0;

    while (i < CRDTNET_MERGE_BUCKETS - 1 && us > bucket_us[i])
        i++;
    crdtnet__count(&st->merges, 1);
    crdtnet__count(&st->merge_us_total, us);
    crdtnet__count(&st->merge_buckets[i], 1);
}
