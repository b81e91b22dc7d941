/* test_half.c: the fp16 / bf16 rounding kernels (src/engine/half.c) bit for
 * bit against torch 1.13's x.to(torch.float16 / torch.bfloat16).float() on
 * the million values of tests/ref/ref_half.py (random bit patterns, fp16's
 * range, every fp16 subnormal and the ties between them, the edges), plus the
 * issue's edge cases written out by hand so a reader sees them. */
#include <criterion/criterion.h>
#include <float.h>
#include <math.h>
#include <stdint.h>
#include <string.h>

#include "half.h"
#include "tfile.h"

static uint32_t bits(float x) {
    uint32_t u;
    memcpy(&u, &x, sizeof u);
    return u;
}

static void check_against_torch(const char *name, void (*kernel)(float *, const float *, size_t)) {
    TFile *tf = tfile_load("ref_half");
    const TRec *rx = tfile_get(tf, "x");
    const float *x = (const float *)tfile_i32(tf, "x");
    const uint32_t *want = (const uint32_t *)tfile_i32(tf, name);
    size_t n = rx->n;
    cr_assert(n > 1000000, "the fixture holds %zu values, expected over a million", n);
    float *out = malloc(n * sizeof *out);
    kernel(out, x, n);
    size_t bad = 0, first = n;
    for (size_t i = 0; i < n; i++)
        if (bits(out[i]) != want[i] && bad++ == 0) first = i;
    cr_expect_eq(bad, 0, "%s: %zu of %zu values differ from torch; first: x = 0x%08x -> 0x%08x, torch 0x%08x",
                 name, bad, n, bad ? bits(x[first]) : 0, bad ? bits(out[first]) : 0,
                 bad ? want[first] : 0);
    /* in place (out == x) gives the same */
    float *again = malloc(n * sizeof *again);
    memcpy(again, x, n * sizeof *again);
    kernel(again, again, n);
    cr_expect(memcmp(again, out, n * sizeof *out) == 0, "%s in place differs", name);
    free(again);
    free(out);
    tfile_free(tf);
}

Test(half, fp16_bit_exact_vs_torch) { check_against_torch("fp16", half_round_fp16); }
Test(half, bf16_bit_exact_vs_torch) { check_against_torch("bf16", half_round_bf16); }

static float r16(float x) {
    half_round_fp16(&x, &x, 1);
    return x;
}
static float rb16(float x) {
    half_round_bf16(&x, &x, 1);
    return x;
}

Test(half, fp16_edges) {
    cr_expect_eq(r16(ldexpf(1, -25)), 0.0f, "2^-25 is the tie between 0 and 2^-24: to even, 0");
    cr_expect_eq(r16(nextafterf(ldexpf(1, -25), 1)), ldexpf(1, -24), "just above 2^-25: 2^-24");
    cr_expect_eq(r16(ldexpf(1, -24)), ldexpf(1, -24), "smallest subnormal kept");
    cr_expect_eq(r16(ldexpf(3, -25)), ldexpf(2, -24), "1.5 * 2^-24: tie to the even 2^-23");
    cr_expect_eq(r16(65504.0f), 65504.0f);
    cr_expect_eq(r16(65519.0f), 65504.0f, "65519 rounds down to the largest finite");
    cr_expect(isinf(r16(65520.0f)) && r16(65520.0f) > 0, "65520 (the tie) rounds to inf");
    cr_expect(isinf(r16(-1e6f)) && r16(-1e6f) < 0, "overflow keeps the sign");
    cr_expect(isnan(r16(NAN)));
    cr_expect_eq(bits(r16(-0.0f)), 0x80000000u, "-0 stays -0");
    cr_expect_eq(r16(1 + ldexpf(1, -11)), 1.0f, "1 + eps/2 ties to 1");
    cr_expect_eq(r16(1 + ldexpf(3, -11)), 1 + ldexpf(1, -9), "1 + 3 eps/2 ties up to even");
}

Test(half, bf16_edges) {
    cr_expect_eq(rb16(1 + ldexpf(1, -8)), 1.0f, "1 + 2^-8 is the tie: to even, 1");
    cr_expect_eq(rb16(1 + ldexpf(3, -8)), 1 + ldexpf(1, -6), "1 + 3*2^-8 ties up to even");
    cr_expect_eq(rb16(nextafterf(1 + ldexpf(1, -8), 2)), 1 + ldexpf(1, -7));
    cr_expect(isinf(rb16(FLT_MAX)), "float32's max is past bf16's: inf");
    cr_expect_eq(rb16(ldexpf(1, -130)), ldexpf(1, -130), "bf16 keeps float32's subnormal range");
    cr_expect_eq(rb16(ldexpf(1, -134)), 0.0f, "half its smallest subnormal 2^-133 ties to 0");
    cr_expect(isnan(rb16(NAN)));
    cr_expect_eq(rb16(65520.0f), 65536.0f, "no fp16 overflow in bf16");
}

Test(half, in_place_dispatch) {
    float x[3] = {ldexpf(1, -25), 65520.0f, 1 + ldexpf(1, -8)};
    float y[3];
    memcpy(y, x, sizeof x);
    half_round(y, 3, HALF_FP32);
    cr_expect(memcmp(x, y, sizeof x) == 0, "fp32 leaves values untouched");
    half_round(y, 3, HALF_FP16);
    cr_expect(y[0] == 0.0f && isinf(y[1]) && y[2] == x[2], "fp16 holds 1 + 2^-8 exactly");
}
