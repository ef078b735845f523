/*
 * hlc.c: hybrid logical clock. A stamp is (milliseconds << 16) | counter:
 * it follows the wall clock when it can, and stays strictly increasing
 * when the clock stalls or steps back, so local stamps never repeat.
 */
#include <time.h>

#include "internal.h"

static crdt_clock_fn clock_override;
static void *clock_ctx;

void
crdt_set_clock(crdt_clock_fn fn, void *ctx)
{
    clock_override = fn;
    clock_ctx = ctx;
}

uint64_t
crdt__now_ms(void)
{
    struct timespec ts;

    if (clock_override != NULL)
        return clock_override(clock_ctx);
    clock_gettime(CLOCK_REALTIME, &ts);
    return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

uint64_t
crdt_raw_now_ms(void)
{
    return crdt__now_ms();
}

uint64_t
crdt__hlc_next(uint64_t last, uint64_t n)
{
    uint64_t phys = crdt__now_ms() << 16;

    (void)n;
    return phys > last ? phys : last + 1;
}
