/* test_sgemm_split.c: ops_sgemm_rows, one product cut into row blocks over
 * threads, gives the whole cblas_sgemm call's bits with the pinned kernel:
 * every transposition, beta 0 and 1, K in one chunk and in several (OpenBLAS
 * cuts K above 2 x 320), on random shapes and the demos' own, at 2 to 5
 * threads. And the rule is not vacuous: a cut of the columns, or of the rows
 * at a multiple of 8 that is not one of 12, changes outputs of the same
 * products (docs/reproducibility.md says why). */
#include <cblas.h>
#include <criterion/criterion.h>
#include <stdlib.h>
#include <string.h>

#include "blas_pin.h"
#include "ops.h"
#include "tskip.h"

static unsigned long long rng_state = 0x9E3779B97F4A7C15ull;

static unsigned long long next(void) {
    rng_state ^= rng_state << 13;
    rng_state ^= rng_state >> 7;
    rng_state ^= rng_state << 17;
    return rng_state;
}
static int irand(int n) { return (int)(next() % (unsigned long long)n); }
static float frand(void) { return (float)((next() >> 40) * (1.0 / 16777216.0)) * 2.0f - 1.0f; }

typedef struct {
    int ta, tb, M, N, K;
    float beta;
} Case;

typedef struct {
    float *a, *b, *c0, *whole, *split;
    int lda, ldb;
} Operands;

static Operands operands(const Case *k) {
    Operands o;
    o.lda = k->ta ? k->M : k->K;
    o.ldb = k->tb ? k->K : k->N;
    size_t na = (size_t)k->M * k->K, nb = (size_t)k->K * k->N, nc = (size_t)k->M * k->N;
    o.a = malloc(na * sizeof(float));
    o.b = malloc(nb * sizeof(float));
    o.c0 = malloc(nc * sizeof(float));
    o.whole = malloc(nc * sizeof(float));
    o.split = malloc(nc * sizeof(float));
    for (size_t i = 0; i < na; i++) o.a[i] = frand();
    for (size_t i = 0; i < nb; i++) o.b[i] = frand();
    for (size_t i = 0; i < nc; i++) o.c0[i] = frand();
    memcpy(o.whole, o.c0, nc * sizeof(float));
    cblas_sgemm(CblasRowMajor, k->ta ? CblasTrans : CblasNoTrans, k->tb ? CblasTrans : CblasNoTrans,
                k->M, k->N, k->K, 1.0f, o.a, o.lda, o.b, o.ldb, k->beta, o.whole, k->N);
    return o;
}

static void operands_free(Operands *o) {
    free(o->a);
    free(o->b);
    free(o->c0);
    free(o->whole);
    free(o->split);
}

/* c[M,N] = op(a) op(b) + beta c as two calls, cut at row `row` (col < 0) or at column `col` */
static void two_calls(const Case *k, Operands *o, int row, int col) {
    CBLAS_TRANSPOSE ta = k->ta ? CblasTrans : CblasNoTrans, tb = k->tb ? CblasTrans : CblasNoTrans;
    memcpy(o->split, o->c0, (size_t)k->M * k->N * sizeof(float));
    if (col < 0) {
        cblas_sgemm(CblasRowMajor, ta, tb, row, k->N, k->K, 1.0f, o->a, o->lda, o->b, o->ldb,
                    k->beta, o->split, k->N);
        const float *a2 = k->ta ? o->a + row : o->a + (size_t)row * o->lda;
        cblas_sgemm(CblasRowMajor, ta, tb, k->M - row, k->N, k->K, 1.0f, a2, o->lda, o->b, o->ldb,
                    k->beta, o->split + (size_t)row * k->N, k->N);
    } else {
        cblas_sgemm(CblasRowMajor, ta, tb, k->M, col, k->K, 1.0f, o->a, o->lda, o->b, o->ldb,
                    k->beta, o->split, k->N);
        const float *b2 = k->tb ? o->b + (size_t)col * o->ldb : o->b + col;
        cblas_sgemm(CblasRowMajor, ta, tb, k->M, k->N - col, k->K, 1.0f, o->a, o->lda, b2, o->ldb,
                    k->beta, o->split + col, k->N);
    }
}

static int differ(const Case *k, const Operands *o) {
    return memcmp(o->whole, o->split, (size_t)k->M * k->N * sizeof(float)) != 0;
}

/* ops_sgemm_rows at 2..5 threads must equal the whole call byte for byte */
static void check_rows_split(const Case *k) {
    Operands o = operands(k);
    for (int nt = 2; nt <= 5; nt++) {
        memcpy(o.split, o.c0, (size_t)k->M * k->N * sizeof(float));
        ops_sgemm_rows(nt, k->ta, k->tb, k->M, k->N, k->K, 1.0f, o.a, o.lda, o.b, o.ldb, k->beta,
                       o.split, k->N);
        cr_assert(!differ(k, &o),
                  "sgemm ta %d tb %d M %d N %d K %d beta %g: %d row blocks differ from one call",
                  k->ta, k->tb, k->M, k->N, k->K, k->beta, nt);
    }
    operands_free(&o);
}

static void require_pinned(void) {
    if (!blas_pin()) tskip("the BLAS kernel is not pinned here (%s)", blas_describe());
}

Test(sgemm_split, row_blocks_equal_one_call_on_random_shapes, .timeout = 300) {
    require_pinned();
    for (int t = 0; t < 160; t++) {
        Case k = {irand(2), irand(2), 24 + irand(600), 1 + irand(400),
                  1 + irand(t % 4 == 0 ? 1800 : 400), (float)irand(2)};
        check_rows_split(&k);
    }
}

/* the demos' products: the transformer (batch 16 x 64 characters, d_model 128,
 * vocabulary 65), WGAN (512 rows of real and fake points, hidden 512), the
 * MLP on Fashion-MNIST; forward (NT), dx (NN), dw (TN), matmul backward (NT) */
Test(sgemm_split, row_blocks_equal_one_call_on_the_demos_products, .timeout = 300) {
    require_pinned();
    static const int shapes[][3] = {{1024, 384, 128}, {1024, 128, 128}, {1024, 512, 128},
                                    {1024, 128, 512}, {1024, 65, 128},  {512, 512, 512},
                                    {512, 512, 2},    {512, 1, 512},    {256, 256, 784},
                                    {2048, 1024, 256}};
    for (size_t i = 0; i < sizeof shapes / sizeof *shapes; i++) {
        int R = shapes[i][0], OUT = shapes[i][1], IN = shapes[i][2];
        Case fwd = {0, 1, R, OUT, IN, 1.0f}, dx = {0, 0, R, IN, OUT, 1.0f},
             dw = {1, 0, OUT, IN, R, 1.0f}, mm = {0, 0, R, OUT, IN, 0.0f},
             da = {0, 1, R, IN, OUT, 1.0f};
        check_rows_split(&fwd);
        check_rows_split(&dx);
        if (OUT >= 24) check_rows_split(&dw);
        check_rows_split(&mm);
        check_rows_split(&da);
    }
}

/* Rows far past one OpenBLAS panel of 12 (several kernel calls per block). */
Test(sgemm_split, row_blocks_equal_one_call_with_many_rows, .timeout = 300) {
    require_pinned();
    Case k = {0, 1, 20000, 37, 700, 1.0f};
    check_rows_split(&k);
    Case t = {1, 0, 9000, 130, 90, 0.0f};
    check_rows_split(&t);
}

/* The cut must be where the kernel's blocks are: cutting the columns (at a
 * multiple of 64), or the rows at a multiple of 8 that is not a multiple of
 * 12, changes outputs of these same products. */
Test(sgemm_split, other_cuts_change_the_bits, .timeout = 120) {
    require_pinned();
    static const Case cases[] = {{0, 1, 1024, 384, 128, 1.0f}, {0, 0, 512, 512, 512, 0.0f},
                                 {1, 0, 384, 128, 1024, 1.0f}, {1, 1, 300, 461, 476, 1.0f}};
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        const Case *k = &cases[i];
        Operands o = operands(k);
        two_calls(k, &o, 120, -1);
        cr_assert(!differ(k, &o), "case %zu: a cut at row 120 (10 x 12) should keep the bits", i);
        two_calls(k, &o, 128, -1);
        cr_assert(differ(k, &o), "case %zu: a cut at row 128 kept every bit", i);
        two_calls(k, &o, -1, 64);
        cr_assert(differ(k, &o), "case %zu: a cut at column 64 kept every bit", i);
        operands_free(&o);
    }
}
