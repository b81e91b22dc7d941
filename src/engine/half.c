/* half.c: float32 -> fp16 / bf16 rounding kernels (see half.h for the
 * semantics and the reference they match bit for bit). */
#include "half.h"

#include <stdint.h>
#include <string.h>

static inline uint32_t f2u(float x) {
    uint32_t u;
    memcpy(&u, &x, sizeof u);
    return u;
}

static inline float u2f(uint32_t u) {
    float x;
    memcpy(&x, &u, sizeof x);
    return x;
}

/* One value to fp16. Normal range: round the 23-bit mantissa to 10 bits, ties
 * to even, by integer addition (a carry into the exponent is the correct
 * rounding up). Below 2^-14 (0x38800000) fp16's quantum is 2^-24: adding 0.5f,
 * whose float32 ulp is 2^-24, rounds |x| to a multiple of it (ties to even,
 * the float adder's rounding), and subtracting 0.5f is exact. */
static inline float fp16_one(float x) {
    uint32_t u = f2u(x), sign = u & 0x80000000u, a = u ^ sign;
    uint32_t sub = f2u((u2f(a) + 0.5f) - 0.5f);
    uint32_t nrm = (a + 0xfffu + ((a >> 13) & 1u)) & ~0x1fffu;
    uint32_t r = a < 0x38800000u ? sub : nrm;
    r = a >= 0x477ff000u ? 0x7f800000u : r; /* >= 65520 (the tie above 65504): inf */
    r = a > 0x7f800000u ? 0x7fc00000u : r;  /* NaN: quiet */
    return u2f(r | sign);
}

/* One value to bf16 (c10::BFloat16 round_to_nearest_even). */
static inline float bf16_one(float x) {
    uint32_t u = f2u(x);
    uint32_t r = (u + 0x7fffu + ((u >> 16) & 1u)) & 0xffff0000u;
    return u2f((u & 0x7fffffffu) > 0x7f800000u ? 0xffff0000u : r);
}

void half_round_fp16(float *out, const float *x, size_t n) {
    for (size_t i = 0; i < n; i++) out[i] = fp16_one(x[i]);
}

void half_round_bf16(float *out, const float *x, size_t n) {
    for (size_t i = 0; i < n; i++) out[i] = bf16_one(x[i]);
}

void half_round(float *x, size_t n, HalfFormat fmt) {
    if (fmt == HALF_FP16) half_round_fp16(x, x, n);
    else if (fmt == HALF_BF16) half_round_bf16(x, x, n);
}

const char *half_name(HalfFormat fmt) {
    return fmt == HALF_FP16 ? "fp16" : fmt == HALF_BF16 ? "bf16" : "fp32";
}
