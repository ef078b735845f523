/* fuzz_rng.h: deterministic randomness for the fuzz targets, so an input
 * replays exactly (keys, nonces and incarnations come from a seed). */
#ifndef FUZZ_RNG_H
#define FUZZ_RNG_H

#include <stdint.h>

/* The seed; targets reset it before work that must replay exactly. */
extern uint64_t rng;

uint64_t rng_next(void);
/* Make libsodium draw from rng (before sodium_init). */
void fuzz_rng_install(void);

#endif
