/* rng.h: a small deterministic random generator (PCG32, O'Neill 2014) so every
 * run, dataset and initialisation is reproducible from its seed on any machine.
 * Normal variates use Box-Muller on two uniforms (the spare one is cached). */
#ifndef CLIPLAB_RNG_H
#define CLIPLAB_RNG_H

#include <stdint.h>

typedef struct {
    uint64_t state;
    uint64_t inc;
    int32_t has_spare;
    int32_t pad; /* always 0: the struct is written to checkpoints as bytes */
    double spare;
} Rng;

void rng_seed(Rng *r, uint64_t seed, uint64_t stream);
uint32_t rng_u32(Rng *r);
double rng_uniform(Rng *r);                  /* [0, 1) with 53 random bits */
double rng_normal(Rng *r);                   /* N(0, 1) */
uint32_t rng_below(Rng *r, uint32_t bound);  /* uniform integer in [0, bound) */

#endif
