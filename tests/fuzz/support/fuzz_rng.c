/* fuzz_rng.c: a splitmix64 stream behind libsodium's randombytes. */
#include <sodium.h>
#include <string.h>

#include "fuzz_rng.h"

uint64_t rng;

uint64_t
rng_next(void)
{
    uint64_t z = (rng += 0x9e3779b97f4a7c15ULL);

    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}

static const char *
rng_name(void)
{
    return "fuzz-deterministic";
}

static uint32_t
rng_random(void)
{
    return (uint32_t)rng_next();
}

static void
rng_buf(void *const buf, const size_t size)
{
    unsigned char *p = buf;
    size_t n = size, k;
    uint64_t z;

    while (n > 0) {
        z = rng_next();
        k = n < 8 ? n : 8;
        memcpy(p, &z, k);
        p += k;
        n -= k;
    }
}

static randombytes_implementation rng_impl = { rng_name, rng_random, NULL,
                                               NULL,     rng_buf,    NULL };

void
fuzz_rng_install(void)
{
    randombytes_set_implementation(&rng_impl);
}
