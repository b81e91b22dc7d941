/* half.h: the reduced-precision formats of mixed precision (fp16, bf16),
 * emulated on float32 numbers: a value "in fp16" is a float32 that fp16 can
 * represent exactly. The kernels round float32 to the nearest such value,
 * bit-exactly as torch's x.to(torch.float16 / torch.bfloat16).float():
 *   fp16: round to nearest, ties to even, with subnormals (quantum 2^-24
 *         below 2^-14), magnitudes >= 65520 become inf, NaN stays NaN
 *         (quiet, sign kept: 0x7fc00000 | sign);
 *   bf16: round to nearest, ties to even on the top 16 bits (c10::BFloat16),
 *         overflow to inf by the carry, NaN becomes 0xffff0000 (torch's
 *         vectorised conversion writes 0xffff).
 * Branch-free integer/float code that the compiler vectorises; no allocation.
 * How the ops use them (AMP: round matmul inputs and outputs) is ops_core.c's. */
#ifndef CLIPLAB_HALF_H
#define CLIPLAB_HALF_H

#include <stddef.h>

/* [train] precision; the values are stored in Ctx.precision */
typedef enum { HALF_FP32 = 0, HALF_FP16 = 1, HALF_BF16 = 2 } HalfFormat;

/* out[n] = x[n] rounded to fp16 / bf16 (out may equal x) */
void half_round_fp16(float *out, const float *x, size_t n);
void half_round_bf16(float *out, const float *x, size_t n);
/* x[n] rounded in place to fmt; HALF_FP32 leaves x untouched */
void half_round(float *x, size_t n, HalfFormat fmt);
/* "fp32", "fp16", "bf16" */
const char *half_name(HalfFormat fmt);

/* fp16's limits (IEEE 754 binary16) */
#define HALF_FP16_MAX 65504.0f
#define HALF_FP16_MIN_NORMAL 6.103515625e-05f  /* 2^-14 */
#define HALF_FP16_MIN_SUB 5.9604644775390625e-08f /* 2^-24 */

#endif
