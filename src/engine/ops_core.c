/* ops_core.c: the core differentiable ops of ops.h: matmul and linear through
 * cblas_sgemm, elementwise arithmetic with bias broadcast, activations (with
 * the activation clips relu6 and clamp), reductions, MSE, gather and the shape
 * ops (views, column slices, concatenation); plus the naive reference matmul.
 *
 * Each op is a forward kernel and a backward kernel over raw pointers (llm.c
 * style: outputs first, inputs const, sizes last, a shape comment on every
 * pointer), and a tape callback `<op>_bw` that unpacks the node and runs the
 * backward kernel for each input that has a gradient. Backward kernels ADD.
 * Kernel pointers are `restrict`: an op's output (and its gradient) is always
 * a fresh arena buffer, and data and gradient buffers never overlap.
 *
 * Softmax, cross-entropy, embedding, norms, convolutions, pooling and attention
 * live in ops_nn.c.
 *
 * Legend: R rows (leading dims flattened), C last dim, NB broadcast block
 * (the size of b in a op b), M/K/N matmul sizes, IN/OUT linear sizes, n all
 * elements. */
#include "ops.h"

#include <cblas.h>
#include <limits.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "blas_pin.h"
#include "common.h"
#include "perex.h"
#include "half.h"
#include "ops_kernel.h"

/* ---------------------------------------------------------------- helpers */

static void shape_str(char *buf, size_t cap, const Tensor *t) {
    size_t len = (size_t)snprintf(buf, cap, "[");
    for (int i = 0; i < t->ndim && len < cap; i++)
        len += (size_t)snprintf(buf + len, cap - len, i ? ",%d" : "%d", t->shape[i]);
    if (len < cap) snprintf(buf + len, cap - len, "]");
}

/* Shape errors are bugs: abort naming the op and both shapes. */
static void check_shapes(int ok, const char *op, const Tensor *a, const Tensor *b) {
    if (ok) return;
    char sa[64], sb[64];
    shape_str(sa, sizeof sa, a);
    shape_str(sb, sizeof sb, b);
    ASSERT(ok, "%s: incompatible shapes %s and %s", op, sa, sb);
}

static int as_int(size_t v, const char *op) {
    ASSERT(v <= INT_MAX, "%s: size %zu exceeds the BLAS int range", op, v);
    return (int)v;
}

/* dx[n] += dy[n] */
OPS_SIMD static void accum(float *restrict dx, const float *restrict dy, size_t n) {
    for (size_t i = 0; i < n; i++) dx[i] += dy[i];
}

/* db[NB] += sign * (column sums of d[R,NB]) */
OPS_SIMD static void colsum_add(float *restrict db, const float *restrict d, float sign, size_t rows,
                       size_t nb) {
    for (size_t r = 0; r < rows; r++)
        for (size_t j = 0; j < nb; j++) db[j] += sign * d[r * nb + j];
}

/* db[W] += column sums of d[R, ld][:, 0:W], each column summed in row order */
OPS_SIMD static void colsum_cols(float *restrict db, const float *restrict d, size_t rows,
                                 size_t ld, size_t W) {
    for (size_t r = 0; r < rows; r++)
        for (size_t j = 0; j < W; j++) db[j] += d[r * ld + j];
}

/* ------------------------------------------------------- mixed precision */

static void cast_bw(TapeNode *nd) {
    float *g = nd->out->grad;
    half_round(g, nd->out->n, (HalfFormat)nd->iargs[0]); /* dout is in the format */
    accum(nd->in[0]->grad, g, nd->out->n);
}

Tensor *ad_cast(Ctx *c, Tensor *x, int fmt) {
    if (!x) return NULL;
    Tensor *out = ad_out(c, x->ndim, x->shape, &x, 1);
    if (fmt == HALF_FP16) half_round_fp16(out->data, x->data, x->n);
    else if (fmt == HALF_BF16) half_round_bf16(out->data, x->data, x->n);
    else memcpy(out->data, x->data, x->n * sizeof *out->data);
    TapeNode *nd = tape_record(c, "cast", cast_bw, out, &x, 1);
    if (nd) nd->iargs[0] = fmt;
    return out;
}

/* ------------------------------------------------------- linear algebra */

/* Row blocks of one sgemm call, byte-identical to the whole call.
 *
 * Measured (tests/test_sgemm_split.c; docs/reproducibility.md): with the
 * pinned Haswell kernel, cutting a row-major product's output rows at
 * multiples of 12 gives the whole call's bits, for every transposition, beta
 * 0 or 1, and K split into chunks; a cut at any other row, or any cut of its
 * columns, does not. Why: row-major C is OpenBLAS's column-major C^T, so our
 * rows are OpenBLAS's N, which its kernel walks in blocks of 12 from the
 * start of the call; each block pairs 8- and 16-row tiles of OpenBLAS's M
 * (our columns) that sum K in different orders, with the tiles of the two
 * halves of the block offset by 8. K's chunks depend on K alone. So a cut at a
 * multiple of 12 rows leaves every output in the same tile, summed the same
 * way. Only when the kernel is pinned (another kernel blocks otherwise), and
 * while a call's rows fit one OpenBLAS panel (its R, about 100k rows; cap). */
enum { SGEMM_ROW_ALIGN = 12, SGEMM_SPLIT_MAX_ROWS = 32768 };

int ops_sgemm_row_threads(int M, int N, int K) {
    if (ops_num_threads < 2 || M < 2 * SGEMM_ROW_ALIGN || M > SGEMM_SPLIT_MAX_ROWS) return 1;
    if ((double)M * N * K < (double)(1 << 23) || !blas_pin()) return 1;
    int nt = M / SGEMM_ROW_ALIGN;
    return nt < ops_num_threads ? nt : ops_num_threads;
}

void ops_sgemm_rows(int nt, int trans_a, int trans_b, int M, int N, int K, float alpha,
                    const float *a, int lda, const float *b, int ldb, float beta, float *c,
                    int ldc) {
    /* c[M,N] (row-major, ldc) = alpha op(a) op(b) + beta c; op(a) [M,K] is a[M,lda]
     * or a[K,lda]^T, op(b) [K,N] is b[K,ldb] or b[N,ldb]^T */
    CBLAS_TRANSPOSE ta = trans_a ? CblasTrans : CblasNoTrans;
    CBLAS_TRANSPOSE tb = trans_b ? CblasTrans : CblasNoTrans;
    if (nt <= 1) { /* no OpenMP region at all: the RNN makes hundreds of small calls a step */
        cblas_sgemm(CblasRowMajor, ta, tb, M, N, K, alpha, a, lda, b, ldb, beta, c, ldc);
        return;
    }
    OPS_PARALLEL_CHUNKS((size_t)M, nt, SGEMM_ROW_ALIGN, {
        const float *ak = trans_a ? a + lo : a + lo * (size_t)lda;
        cblas_sgemm(CblasRowMajor, ta, tb, (int)(hi - lo), N, K, alpha, ak, lda, b, ldb, beta,
                    c + lo * (size_t)ldc, ldc);
    });
}

/* out[M,N] = a[M,K] @ b[K,N] */
static void matmul_forward(float *out, const float *a, const float *b, int M, int K, int N) {
    ops_sgemm_rows(ops_sgemm_row_threads(M, N, K), 0, 0, M, N, K, 1.0f, a, K, b, N, 0.0f, out, N);
}

/* da[M,K] += dout[M,N] @ b[K,N]^T;  db[K,N] += a[M,K]^T @ dout[M,N]; da/db may be NULL */
static void matmul_backward(float *da, float *db, const float *dout, const float *a,
                            const float *b, int M, int K, int N) {
    if (da)
        ops_sgemm_rows(ops_sgemm_row_threads(M, K, N), 0, 1, M, K, N, 1.0f, dout, N, b, N, 1.0f,
                       da, K);
    if (db)
        ops_sgemm_rows(ops_sgemm_row_threads(K, N, M), 1, 0, K, N, M, 1.0f, a, K, dout, N, 1.0f,
                       db, N);
}

static void matmul_bw(TapeNode *nd) {
    Tensor *a = nd->in[0], *b = nd->in[1];
    matmul_backward(a->grad, b->grad, nd->out->grad, a->data, b->data, nd->iargs[0],
                    nd->iargs[1], nd->iargs[2]);
}

Tensor *ad_matmul(Ctx *c, Tensor *a, Tensor *b) {
    if (c->precision) { /* AMP: cast(matmul(cast(a), cast(b))), see ops.h */
        int f = c->precision;
        c->precision = 0;
        Tensor *out = ad_matmul(c, ad_cast(c, a, f), ad_cast(c, b, f));
        c->precision = f;
        return ad_cast(c, out, f);
    }
    check_shapes(a->ndim == 2 && b->ndim == 2 && a->shape[1] == b->shape[0], "matmul", a, b);
    int M = a->shape[0], K = a->shape[1], N = b->shape[1];
    Tensor *in[2] = {a, b};
    int shape[2] = {M, N};
    Tensor *out = ad_out(c, 2, shape, in, 2);
    matmul_forward(out->data, a->data, b->data, M, K, N);
    TapeNode *nd = tape_record(c, "matmul", matmul_bw, out, in, 2);
    if (nd) {
        nd->iargs[0] = M;
        nd->iargs[1] = K;
        nd->iargs[2] = N;
    }
    return out;
}

/* out[R,OUT] = x[R,IN] @ w[OUT,IN]^T + bias[OUT]; bias may be NULL. With
 * threads, each takes a block of rows (bias copy and sgemm): byte-identical
 * to one call (ops_sgemm_rows). */
static void linear_forward(float *out, const float *x, const float *w, const float *bias,
                           int R, int IN, int OUT) {
    int nt = ops_sgemm_row_threads(R, OUT, IN);
    if (nt <= 1) { /* one call, no OpenMP region (the RNN makes hundreds a step) */
        if (bias)
            for (int r = 0; r < R; r++) memcpy(out + (size_t)r * OUT, bias, (size_t)OUT * sizeof *out);
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, R, OUT, IN, 1.0f, x, IN, w, IN,
                    bias ? 1.0f : 0.0f, out, OUT);
        return;
    }
    OPS_PARALLEL_CHUNKS((size_t)R, nt, SGEMM_ROW_ALIGN, {
        if (bias)
            for (size_t r = lo; r < hi; r++) memcpy(out + r * OUT, bias, (size_t)OUT * sizeof *out);
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, (int)(hi - lo), OUT, IN, 1.0f,
                    x + lo * IN, IN, w, IN, bias ? 1.0f : 0.0f, out + lo * OUT, OUT);
    });
}

/* dx[R,IN] += dout[R,OUT] @ w[OUT,IN];  dw[OUT,IN] += dout^T @ x[R,IN];
 * dbias[OUT] += column sums of dout. Any of dx/dw/dbias may be NULL.
 * On two threads, dx's sgemm and dw's (then dbias) run at once, whole (equal
 * work, nothing packed twice); otherwise each product is split into row
 * blocks over the threads (ops_sgemm_rows). Either way the same bits. */
static void linear_backward(float *dx, float *dw, float *dbias, const float *dout,
                            const float *x, const float *w, int R, int IN, int OUT) {
    int pair = dx && (dw || dbias) && ops_num_threads == 2 &&
               OPS_WORK_THREADS((size_t)R * (size_t)(IN > OUT ? IN : OUT)) > 1;
    if (!pair) {
        if (dx)
            ops_sgemm_rows(ops_sgemm_row_threads(R, IN, OUT), 0, 0, R, IN, OUT, 1.0f, dout, OUT,
                           w, IN, 1.0f, dx, IN);
        if (dw)
            ops_sgemm_rows(ops_sgemm_row_threads(OUT, IN, R), 1, 0, OUT, IN, R, 1.0f, dout, OUT,
                           x, IN, 1.0f, dw, IN);
        if (dbias) colsum_cols(dbias, dout, (size_t)R, (size_t)OUT, (size_t)OUT);
        return;
    }
#pragma omp parallel for num_threads(2) schedule(static)
    for (int part = 0; part < 2; part++) {
        if (part == 0 && dx)
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, R, IN, OUT, 1.0f, dout, OUT, w,
                        IN, 1.0f, dx, IN);
        if (part == 1 && dw)
            cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, OUT, IN, R, 1.0f, dout, OUT, x,
                        IN, 1.0f, dw, IN);
        if (part == 1 && dbias) colsum_cols(dbias, dout, (size_t)R, (size_t)OUT, (size_t)OUT);
    }
}

static void linear_bw(TapeNode *nd) {
    Tensor *x = nd->in[0], *w = nd->in[1], *bias = nd->nin > 2 ? nd->in[2] : NULL;
    PerEx *pe = nd->ctx; /* DP-SGD: the weight gradient goes per example (perex.h) */
    if (pe && w->grad) {
        int B = x->shape[0], R = nd->iargs[0];
        ASSERT(B > 0 && R % B == 0, "linear: %d rows are not %d examples", R, B);
        perex_linear(pe, w, bias, x->data, nd->out->grad, B, R / B, nd->iargs[1], nd->iargs[2]);
        linear_backward(x->grad, NULL, NULL, nd->out->grad, x->data, w->data, R, nd->iargs[1],
                        nd->iargs[2]);
        return;
    }
    linear_backward(x->grad, w->grad, bias ? bias->grad : NULL, nd->out->grad, x->data,
                    w->data, nd->iargs[0], nd->iargs[1], nd->iargs[2]);
}

Tensor *ad_linear(Ctx *c, Tensor *x, Tensor *w, Tensor *bias) {
    if (c->precision) { /* AMP: the bias too is cast, as torch's addmm under autocast */
        int f = c->precision;
        c->precision = 0;
        Tensor *out = ad_linear(c, ad_cast(c, x, f), ad_cast(c, w, f), ad_cast(c, bias, f));
        c->precision = f;
        return ad_cast(c, out, f);
    }
    check_shapes(w->ndim == 2 && tensor_cols(x) == w->shape[1], "linear (x, w)", x, w);
    if (bias)
        check_shapes(bias->ndim == 1 && bias->shape[0] == w->shape[0], "linear (w, bias)", w,
                     bias);
    int R = as_int(tensor_rows(x), "linear"), IN = w->shape[1], OUT = w->shape[0];
    Tensor *in[3] = {x, w, bias};
    int nin = bias ? 3 : 2;
    int shape[TENSOR_MAX_DIMS];
    memcpy(shape, x->shape, sizeof shape);
    shape[x->ndim - 1] = OUT;
    Tensor *out = ad_out(c, x->ndim, shape, in, nin);
    linear_forward(out->data, x->data, w->data, bias ? bias->data : NULL, R, IN, OUT);
    TapeNode *nd = tape_record(c, "linear", linear_bw, out, in, nin);
    if (nd) {
        nd->iargs[0] = R;
        nd->iargs[1] = IN;
        nd->iargs[2] = OUT;
        nd->ctx = c->pe;
    }
    return out;
}

/* out[M,N] = a[M,K] @ b[K,N], triple loop, double accumulation */
void ops_ref_matmul(float *out, const float *a, const float *b, int M, int K, int N) {
    for (int i = 0; i < M; i++)
        for (int j = 0; j < N; j++) {
            double s = 0.0;
            for (int k = 0; k < K; k++) s += (double)a[(size_t)i * K + k] * b[(size_t)k * N + j];
            out[(size_t)i * N + j] = (float)s;
        }
}

/* ------------------------------------------- binary elementwise, broadcast */

/* a op b where b is a block of NB elements repeated over R = a->n / NB rows:
 * NB = a->n (same shape), the trailing dims (bias), or 1 (single element). */
typedef enum { BIN_ADD, BIN_SUB, BIN_MUL } BinOp;

static const char *const bin_names[] = {"add", "sub", "mul"};

/* b's shape without its leading 1s must equal a's trailing dims; returns NB. */
static size_t bcast_block(const Tensor *a, const Tensor *b, const char *op) {
    int lead = 0;
    while (lead < b->ndim && b->shape[lead] == 1) lead++;
    int m = b->ndim - lead, ok = m <= a->ndim;
    for (int k = 0; ok && k < m; k++) ok = b->shape[lead + k] == a->shape[a->ndim - m + k];
    check_shapes(ok, op, a, b);
    return b->n;
}

/* out[R,NB] = a[R,NB] + b[NB] */
OPS_SIMD static void add_forward(float *restrict out, const float *restrict a, const float *restrict b,
                        size_t rows, size_t nb) {
    for (size_t r = 0; r < rows; r++)
        for (size_t j = 0; j < nb; j++) out[r * nb + j] = a[r * nb + j] + b[j];
}

/* out[R,NB] = a[R,NB] - b[NB] */
static void sub_forward(float *restrict out, const float *restrict a, const float *restrict b,
                        size_t rows, size_t nb) {
    for (size_t r = 0; r < rows; r++)
        for (size_t j = 0; j < nb; j++) out[r * nb + j] = a[r * nb + j] - b[j];
}

/* out[R,NB] = a[R,NB] * b[NB] */
static void mul_forward(float *restrict out, const float *restrict a, const float *restrict b,
                        size_t rows, size_t nb) {
    for (size_t r = 0; r < rows; r++)
        for (size_t j = 0; j < nb; j++) out[r * nb + j] = a[r * nb + j] * b[j];
}

/* da[R,NB] += dout[R,NB] * b[NB] */
static void mul_backward_a(float *restrict da, const float *restrict dout,
                           const float *restrict b, size_t rows, size_t nb) {
    for (size_t r = 0; r < rows; r++)
        for (size_t j = 0; j < nb; j++) da[r * nb + j] += dout[r * nb + j] * b[j];
}

/* db[NB] += sum over rows of dout[R,NB] * a[R,NB] */
static void mul_backward_b(float *restrict db, const float *restrict dout,
                           const float *restrict a, size_t rows, size_t nb) {
    for (size_t r = 0; r < rows; r++)
        for (size_t j = 0; j < nb; j++) db[j] += dout[r * nb + j] * a[r * nb + j];
}

static void binary_bw(TapeNode *nd) {
    Tensor *a = nd->in[0], *b = nd->in[1];
    const float *dout = nd->out->grad;
    size_t nb = b->n, rows = a->n / nb;
    BinOp op = (BinOp)nd->iargs[0];
    if (op == BIN_MUL) {
        if (a->grad) mul_backward_a(a->grad, dout, b->data, rows, nb);
        if (b->grad) mul_backward_b(b->grad, dout, a->data, rows, nb);
        return;
    }
    if (a->grad) {
        float *da = a->grad;
        OPS_PARALLEL_CHUNKS(a->n, OPS_WORK_THREADS(a->n), 64, accum(da + lo, dout + lo, hi - lo));
    }
    if (!b->grad) return;
    if (op == BIN_SUB || rows * nb < ((size_t)1 << 16)) {
        colsum_add(b->grad, dout, op == BIN_SUB ? -1.0f : 1.0f, rows, nb);
        return;
    }
    float *db = b->grad; /* columns split over threads, each summed in row order */
    OPS_PARALLEL_CHUNKS(nb, OPS_WORK_THREADS(rows * nb), 16, colsum_cols(db + lo, dout + lo, rows, nb, hi - lo));
}

static Tensor *binary(Ctx *c, Tensor *a, Tensor *b, BinOp op) {
    size_t nb = bcast_block(a, b, bin_names[op]), rows = a->n / nb;
    Tensor *in[2] = {a, b};
    Tensor *out = ad_out(c, a->ndim, a->shape, in, 2);
    switch (op) {
    case BIN_ADD: {
        float *o = out->data;
        const float *pa = a->data, *pb = b->data;
        if (rows == 1) /* same shape: chunks of elements */
            OPS_PARALLEL_CHUNKS(nb, OPS_WORK_THREADS(nb), 64,
                                add_forward(o + lo, pa + lo, pb + lo, 1, hi - lo));
        else /* b broadcast: chunks of rows */
            OPS_PARALLEL_CHUNKS(rows, OPS_WORK_THREADS(a->n), 1,
                                add_forward(o + lo * nb, pa + lo * nb, pb, hi - lo, nb));
        break;
    }
    case BIN_SUB: sub_forward(out->data, a->data, b->data, rows, nb); break;
    case BIN_MUL: mul_forward(out->data, a->data, b->data, rows, nb); break;
    }
    TapeNode *nd = tape_record(c, bin_names[op], binary_bw, out, in, 2);
    if (nd) nd->iargs[0] = (int)op;
    return out;
}

Tensor *ad_add(Ctx *c, Tensor *a, Tensor *b) { return binary(c, a, b, BIN_ADD); }
Tensor *ad_sub(Ctx *c, Tensor *a, Tensor *b) { return binary(c, a, b, BIN_SUB); }
Tensor *ad_mul(Ctx *c, Tensor *a, Tensor *b) { return binary(c, a, b, BIN_MUL); }

/* Whether min(a, b) takes a: ties and a NaN in a pick a, so NaN propagates
 * from either side and the gradient follows the value that was taken. */
static inline int min_picks_a(float a, float b) { return a <= b || a != a; }

/* out[n] = min(a, b) */
static void minimum_forward(float *restrict out, const float *restrict a,
                            const float *restrict b, size_t n) {
    for (size_t i = 0; i < n; i++) out[i] = min_picks_a(a[i], b[i]) ? a[i] : b[i];
}

/* da[n] += dout where min took a; db[n] += dout elsewhere (either may be NULL) */
static void minimum_backward(float *restrict da, float *restrict db, const float *restrict dout,
                             const float *restrict a, const float *restrict b, size_t n) {
    if (da)
        for (size_t i = 0; i < n; i++) {
            float g = dout[i];
            da[i] += min_picks_a(a[i], b[i]) ? g : 0.0f;
        }
    if (db)
        for (size_t i = 0; i < n; i++) {
            float g = dout[i];
            db[i] += min_picks_a(a[i], b[i]) ? 0.0f : g;
        }
}

static void minimum_bw(TapeNode *nd) {
    Tensor *a = nd->in[0], *b = nd->in[1];
    minimum_backward(a->grad, b->grad, nd->out->grad, a->data, b->data, a->n);
}

Tensor *ad_minimum(Ctx *c, Tensor *a, Tensor *b) {
    check_shapes(tensor_same_shape(a, b), "minimum", a, b);
    Tensor *in[2] = {a, b};
    Tensor *out = ad_out(c, a->ndim, a->shape, in, 2);
    minimum_forward(out->data, a->data, b->data, a->n);
    tape_record(c, "minimum", minimum_bw, out, in, 2);
    return out;
}

/* ------------------------------------------------ unary elementwise kernels */

/* out[n] = s * x[n] */
static void scale_forward(float *restrict out, const float *restrict x, float s, size_t n) {
    for (size_t i = 0; i < n; i++) out[i] = s * x[i];
}

/* dx[n] += s * dout[n] */
static void scale_backward(float *restrict dx, const float *restrict dout, float s, size_t n) {
    for (size_t i = 0; i < n; i++) dx[i] += s * dout[i];
}

/* out[n] = x[n] + s */
static void add_scalar_forward(float *restrict out, const float *restrict x, float s, size_t n) {
    for (size_t i = 0; i < n; i++) out[i] = x[i] + s;
}

/* out[n] = exp(x[n]) */
static void exp_forward(float *restrict out, const float *restrict x, size_t n) {
    for (size_t i = 0; i < n; i++) out[i] = expf(x[i]);
}

/* dx[n] += dout[n] * y[n], y = exp(x) */
static void exp_backward(float *restrict dx, const float *restrict y, const float *restrict dout,
                         size_t n) {
    for (size_t i = 0; i < n; i++) dx[i] += dout[i] * y[i];
}

/* out[n] = log(x[n]) */
static void log_forward(float *restrict out, const float *restrict x, size_t n) {
    for (size_t i = 0; i < n; i++) out[i] = logf(x[i]);
}

/* dx[n] += dout[n] / x[n] */
static void log_backward(float *restrict dx, const float *restrict x, const float *restrict dout,
                         size_t n) {
    for (size_t i = 0; i < n; i++) dx[i] += dout[i] / x[i];
}

/* out[n] = tanh(x[n]) */
static inline float tanh_abs(float x);

/* tanh with a relative error near 1e-7 everywhere, straight-line so the loop
 * vectorizes (libm's tanhf is not, and dominated an RNN step: docs/design.md
 * has the numbers): Cephes tanhf's odd polynomial for |x| < 0.625, tanh_abs
 * (below) elsewhere; both are computed and one selected bitwise, so the loop
 * vectorizes. */
static inline float tanh_fast(float x) {
    float z = x * x;
    float p = -5.70498872745e-3f;
    p = p * z + 2.06390887954e-2f;
    p = p * z - 5.37397155531e-2f;
    p = p * z + 1.33314422036e-1f;
    p = p * z - 3.33332819422e-1f;
    float small = p * z * x + x, big = tanh_abs(x), ax = fabsf(x), r;
    /* select on the bits (GCC will not if-convert the float compare): big for
     * 0.625 <= |x| <= inf; NaN (bits above inf) takes small, which is NaN */
    uint32_t ab, sb, bb;
    memcpy(&ab, &ax, sizeof ab), memcpy(&sb, &small, sizeof sb), memcpy(&bb, &big, sizeof bb);
    uint32_t mask = 0u - (uint32_t)((ab >= 0x3F200000u) & (ab <= 0x7F800000u));
    uint32_t rb = (bb & mask) | (sb & ~mask);
    memcpy(&r, &rb, sizeof r);
    return r;
}

/* vector clones (simd.h): the same IEEE results on every CPU */
OPS_SIMD static void tanh_forward(float *restrict out, const float *restrict x, size_t n) {
    for (size_t i = 0; i < n; i++) out[i] = tanh_fast(x[i]);
}

/* dx[n] += dout[n] * (1 - y^2), y = tanh(x) */
static void tanh_backward(float *restrict dx, const float *restrict y, const float *restrict dout,
                          size_t n) {
    for (size_t i = 0; i < n; i++) dx[i] += dout[i] * (1.0f - y[i] * y[i]);
}

/* out[n] = 1 / (1 + exp(-x[n])) */
static void sigmoid_forward(float *restrict out, const float *restrict x, size_t n) {
    for (size_t i = 0; i < n; i++) out[i] = 1.0f / (1.0f + expf(-x[i]));
}

/* dx[n] += dout[n] * y (1 - y), y = sigmoid(x) */
static void sigmoid_backward(float *restrict dx, const float *restrict y,
                             const float *restrict dout, size_t n) {
    for (size_t i = 0; i < n; i++) dx[i] += dout[i] * y[i] * (1.0f - y[i]);
}

/* out[n] = min(max(x, lo), hi); written with comparisons so NaN passes through
 * (torch.clamp does too, and the trainer must see divergence). relu is
 * clamp(0, inf), relu6 is clamp(0, 6) (Krizhevsky 2010). */
OPS_SIMD static void clamp_kernel(float *restrict out, const float *restrict x, float lo, float hi,
                                  size_t n) {
    for (size_t i = 0; i < n; i++) {
        float v = x[i];
        out[i] = v < lo ? lo : (v > hi ? hi : v);
    }
}

/* dx[n] += dout where lo <= x <= hi (torch.clamp backward) */
OPS_SIMD static void clamp_bw_kernel(float *restrict dx, const float *restrict x,
                                     const float *restrict dout, float lo, float hi, size_t n) {
    for (size_t i = 0; i < n; i++) {
        float v = x[i], g = dout[i];
        dx[i] += (v >= lo && v <= hi) ? g : 0.0f;
    }
}

/* dx[n] += dout except where x <= lo or x >= hi: torch's hardtanh backward
 * (relu6), zero at the kinks; written as torch does, so NaN lets dout through. */
OPS_SIMD static void hardtanh_bw_kernel(float *restrict dx, const float *restrict x,
                                        const float *restrict dout, float lo, float hi, size_t n) {
    for (size_t i = 0; i < n; i++) {
        float v = x[i], g = dout[i];
        dx[i] += (v <= lo || v >= hi) ? 0.0f : g;
    }
}

/* dx[n] += dout except where x <= 0 (torch threshold_backward, zero at the kink) */
OPS_SIMD static void relu_bw_kernel(float *restrict dx, const float *restrict x,
                                    const float *restrict dout, size_t n) {
    for (size_t i = 0; i < n; i++) {
        float v = x[i], g = dout[i];
        dx[i] += v <= 0.0f ? 0.0f : g;
    }
}

/* the same, each thread on one contiguous chunk of elements */
static void clamp_forward(float *out, const float *x, float vlo, float vhi, size_t n) {
    OPS_PARALLEL_CHUNKS(n, OPS_ELEM_THREADS(n), 64, clamp_kernel(out + lo, x + lo, vlo, vhi, hi - lo));
}
static void clamp_backward(float *dx, const float *x, const float *dout, float vlo, float vhi,
                           size_t n) {
    OPS_PARALLEL_CHUNKS(n, OPS_ELEM_THREADS(n), 64,
                        clamp_bw_kernel(dx + lo, x + lo, dout + lo, vlo, vhi, hi - lo));
}
static void hardtanh_backward(float *dx, const float *x, const float *dout, float vlo,
                              float vhi, size_t n) {
    OPS_PARALLEL_CHUNKS(n, OPS_ELEM_THREADS(n), 64,
                        hardtanh_bw_kernel(dx + lo, x + lo, dout + lo, vlo, vhi, hi - lo));
}
static void relu_backward(float *dx, const float *x, const float *dout, size_t n) {
    OPS_PARALLEL_CHUNKS(n, OPS_ELEM_THREADS(n), 64, relu_bw_kernel(dx + lo, x + lo, dout + lo, hi - lo));
}

/* e^x for x in [-88, 0] with a relative error below 2e-7: Cephes expf
 * (Moshier), x = n ln2 + r with ln2 split in two (Cody-Waite), a degree-6
 * polynomial for e^r, 2^n built in the exponent bits. Straight-line code, so
 * loops calling it vectorize (libm's expf/tanhf are opaque calls). */
static inline float exp_nonpos(float x) {
    float n = (x * 1.44269504088896341f + 12582912.0f) - 12582912.0f; /* round(x/ln2) */
    float r = (x - n * 0.693359375f) - n * -2.12194440e-4f;
    float p = 1.9875691500e-4f;
    p = p * r + 1.3981999507e-3f;
    p = p * r + 8.3334519073e-3f;
    p = p * r + 4.1665795894e-2f;
    p = p * r + 1.6666665459e-1f;
    p = p * r + 5.0000001201e-1f;
    p = p * r * r + r + 1.0f;
    int32_t bits = ((int32_t)n + 127) * (1 << 23);
    float scale;
    memcpy(&scale, &bits, sizeof scale);
    return p * scale;
}

/* tanh(x) = sign(x) (1 - e^{-2|x|}) / (1 + e^{-2|x|}) with an ABSOLUTE error
 * below 1e-7 (not relative: near 0 it is not tanhf). That is what GELU needs,
 * where tanh is added to 1. |x| is capped at 40 (tanh = 1 in float) by an
 * integer min on its bits, which vectorizes; a NaN x gives +-1 here, and NaN
 * still propagates through GELU's factor x. */
static inline float tanh_abs(float x) {
    float z = fabsf(x);
    uint32_t zb;
    memcpy(&zb, &z, sizeof zb);
    zb = zb < 0x42200000u ? zb : 0x42200000u; /* 40.0f */
    memcpy(&z, &zb, sizeof z);
    float t = exp_nonpos(-2.0f * z);
    return copysignf((1.0f - t) / (1.0f + t), x);
}

/* GELU, tanh approximation (Hendrycks & Gimpel 2016, sec. 2), in torch's
 * operation order (aten GeluKernelImpl, approximate='tanh'):
 * y = 0.5 x (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3))); tanh is tanh_abs above
 * (libm's tanhf made GELU ~45% of a transformer step; tanh_abs vectorizes). */
#define GELU_BETA 0.7978845608028654f /* sqrt(2/pi) */
#define GELU_KAPPA 0.044715f

/* out[n] = gelu_tanh(x[n]) */
OPS_SIMD static void gelu_forward(float *restrict out, const float *restrict x, size_t n) {
    for (size_t i = 0; i < n; i++) {
        float v = x[i], inner = GELU_BETA * (v + GELU_KAPPA * (v * v * v));
        out[i] = 0.5f * v * (1.0f + tanh_abs(inner));
    }
}

/* dx[n] += dout[n] * gelu_tanh'(x[n]) (torch GeluBackwardKernelImpl, tanh branch) */
OPS_SIMD static void gelu_backward(float *restrict dx, const float *restrict x, const float *restrict dout,
                          size_t n) {
    for (size_t i = 0; i < n; i++) {
        float v = x[i], v2 = v * v;
        float t = tanh_abs(GELU_BETA * (v + GELU_KAPPA * (v2 * v)));
        float left = 0.5f * v, right = 1.0f + t;
        float dinner = GELU_BETA * (1.0f + 3.0f * GELU_KAPPA * v2);
        dx[i] += dout[i] * (0.5f * right + left * (1.0f - t * t) * dinner);
    }
}

/* ------------------------------------------------------- unary elementwise */

/* The output of a unary op (x's shape) and its tape node; scalar args go to fargs. */
static Tensor *unary(Ctx *c, Tensor *x, const char *op, BackwardFn bw, float f0, float f1) {
    Tensor *out = ad_out(c, x->ndim, x->shape, &x, 1);
    TapeNode *nd = tape_record(c, op, bw, out, &x, 1);
    if (nd) {
        nd->fargs[0] = f0;
        nd->fargs[1] = f1;
    }
    return out;
}

/* Unary callbacks: the node is recorded only when out has a gradient, which
 * it has only when x has one, so in[0]->grad is never NULL here. */
#define X_GRAD(nd) ((nd)->in[0]->grad)

static void scale_bw(TapeNode *nd) {
    scale_backward(X_GRAD(nd), nd->out->grad, nd->fargs[0], nd->out->n);
}
static void add_scalar_bw(TapeNode *nd) { accum(X_GRAD(nd), nd->out->grad, nd->out->n); }
static void exp_bw(TapeNode *nd) {
    exp_backward(X_GRAD(nd), nd->out->data, nd->out->grad, nd->out->n);
}
static void log_bw(TapeNode *nd) {
    log_backward(X_GRAD(nd), nd->in[0]->data, nd->out->grad, nd->out->n);
}
static void tanh_bw(TapeNode *nd) {
    tanh_backward(X_GRAD(nd), nd->out->data, nd->out->grad, nd->out->n);
}
static void sigmoid_bw(TapeNode *nd) {
    sigmoid_backward(X_GRAD(nd), nd->out->data, nd->out->grad, nd->out->n);
}
static void clamp_bw(TapeNode *nd) {
    clamp_backward(X_GRAD(nd), nd->in[0]->data, nd->out->grad, nd->fargs[0], nd->fargs[1],
                   nd->out->n);
}
static void hardtanh_bw(TapeNode *nd) {
    hardtanh_backward(X_GRAD(nd), nd->in[0]->data, nd->out->grad, nd->fargs[0], nd->fargs[1],
                      nd->out->n);
}
static void relu_bw(TapeNode *nd) {
    relu_backward(X_GRAD(nd), nd->in[0]->data, nd->out->grad, nd->out->n);
}
static void gelu_bw(TapeNode *nd) {
    float *dx = X_GRAD(nd);
    const float *x = nd->in[0]->data, *dout = nd->out->grad;
    size_t n = nd->out->n;
    OPS_PARALLEL_CHUNKS(n, OPS_WORK_THREADS(n), 64, gelu_backward(dx + lo, x + lo, dout + lo, hi - lo));
}

Tensor *ad_scale(Ctx *c, Tensor *x, float s) {
    Tensor *out = unary(c, x, "scale", scale_bw, s, 0.0f);
    scale_forward(out->data, x->data, s, x->n);
    return out;
}

Tensor *ad_add_scalar(Ctx *c, Tensor *x, float s) {
    Tensor *out = unary(c, x, "add_scalar", add_scalar_bw, s, 0.0f);
    add_scalar_forward(out->data, x->data, s, x->n);
    return out;
}

Tensor *ad_exp(Ctx *c, Tensor *x) {
    Tensor *out = unary(c, x, "exp", exp_bw, 0.0f, 0.0f);
    exp_forward(out->data, x->data, x->n);
    return out;
}

Tensor *ad_log(Ctx *c, Tensor *x) {
    Tensor *out = unary(c, x, "log", log_bw, 0.0f, 0.0f);
    log_forward(out->data, x->data, x->n);
    return out;
}

Tensor *ad_tanh(Ctx *c, Tensor *x) {
    Tensor *out = unary(c, x, "tanh", tanh_bw, 0.0f, 0.0f);
    tanh_forward(out->data, x->data, x->n);
    return out;
}

Tensor *ad_sigmoid(Ctx *c, Tensor *x) {
    Tensor *out = unary(c, x, "sigmoid", sigmoid_bw, 0.0f, 0.0f);
    sigmoid_forward(out->data, x->data, x->n);
    return out;
}

Tensor *ad_relu(Ctx *c, Tensor *x) {
    Tensor *out = unary(c, x, "relu", relu_bw, 0.0f, 0.0f);
    clamp_forward(out->data, x->data, 0.0f, INFINITY, x->n);
    return out;
}

/* ReLU6: min(max(0, x), 6), gradient 1 on the open (0, 6) */
Tensor *ad_relu6(Ctx *c, Tensor *x) {
    Tensor *out = unary(c, x, "relu6", hardtanh_bw, 0.0f, 6.0f);
    clamp_forward(out->data, x->data, 0.0f, 6.0f, x->n);
    return out;
}

Tensor *ad_clamp(Ctx *c, Tensor *x, float lo, float hi) {
    ASSERT(lo <= hi, "clamp: lo %g > hi %g", (double)lo, (double)hi);
    Tensor *out = unary(c, x, "clamp", clamp_bw, lo, hi);
    clamp_forward(out->data, x->data, lo, hi, x->n);
    return out;
}

Tensor *ad_gelu(Ctx *c, Tensor *x) {
    Tensor *out = unary(c, x, "gelu", gelu_bw, 0.0f, 0.0f);
    float *o = out->data;
    const float *xd = x->data;
    OPS_PARALLEL_CHUNKS(x->n, OPS_WORK_THREADS(x->n), 64, gelu_forward(o + lo, xd + lo, hi - lo));
    return out;
}

/* ------------------------------------------------------------- reductions */

/* sum of x[n], double accumulation */
static double sum_kernel(const float *x, size_t n) {
    double s = 0.0;
    for (size_t i = 0; i < n; i++) s += x[i];
    return s;
}

/* dx[n] += v */
static void fill_add(float *dx, float v, size_t n) {
    for (size_t i = 0; i < n; i++) dx[i] += v;
}

/* sum: fargs[0] = 1; mean: fargs[0] = 1/n */
static void sum_bw(TapeNode *nd) {
    fill_add(X_GRAD(nd), nd->out->grad[0] * nd->fargs[0], nd->in[0]->n);
}

/* out[1] = sum(x) / div */
static Tensor *reduce_all(Ctx *c, Tensor *x, const char *op, double div) {
    int one = 1;
    Tensor *out = ad_out(c, 1, &one, &x, 1);
    out->data[0] = (float)(sum_kernel(x->data, x->n) / div);
    TapeNode *nd = tape_record(c, op, sum_bw, out, &x, 1);
    if (nd) nd->fargs[0] = (float)(1.0 / div);
    return out;
}

Tensor *ad_sum(Ctx *c, Tensor *x) { return reduce_all(c, x, "sum", 1.0); }
Tensor *ad_mean(Ctx *c, Tensor *x) { return reduce_all(c, x, "mean", (double)x->n); }

/* out[R] = sum over C of x[R,C] */
static void sum_last_forward(float *out, const float *x, size_t rows, size_t cols) {
    for (size_t r = 0; r < rows; r++) out[r] = (float)sum_kernel(x + r * cols, cols);
}

/* dx[R,C] += dout[R] */
static void sum_last_backward(float *restrict dx, const float *restrict dout, size_t rows,
                              size_t cols) {
    for (size_t r = 0; r < rows; r++) fill_add(dx + r * cols, dout[r], cols);
}

static void sum_last_bw(TapeNode *nd) {
    Tensor *x = nd->in[0];
    sum_last_backward(x->grad, nd->out->grad, tensor_rows(x), (size_t)tensor_cols(x));
}

Tensor *ad_sum_last(Ctx *c, Tensor *x) {
    int one = 1;
    Tensor *out = x->ndim == 1 ? ad_out(c, 1, &one, &x, 1)
                               : ad_out(c, x->ndim - 1, x->shape, &x, 1);
    sum_last_forward(out->data, x->data, tensor_rows(x), (size_t)tensor_cols(x));
    tape_record(c, "sum_last", sum_last_bw, out, &x, 1);
    return out;
}

/* mean over n of (p - t)^2, double accumulation */
static double mse_forward(const float *p, const float *t, size_t n) {
    double s = 0.0;
    for (size_t i = 0; i < n; i++) {
        double d = (double)p[i] - t[i];
        s += d * d;
    }
    return s / (double)n;
}

/* dp[n] += k (p - t); called with k = 2 dout / n for pred, -k for target */
static void mse_backward(float *restrict dp, const float *restrict p, const float *restrict t,
                         float k, size_t n) {
    for (size_t i = 0; i < n; i++) dp[i] += k * (p[i] - t[i]);
}

static void mse_bw(TapeNode *nd) {
    Tensor *p = nd->in[0], *t = nd->in[1];
    float k = 2.0f * nd->out->grad[0] / (float)p->n;
    if (p->grad) mse_backward(p->grad, p->data, t->data, k, p->n);
    if (t->grad) mse_backward(t->grad, p->data, t->data, -k, p->n);
}

Tensor *ad_mse(Ctx *c, Tensor *pred, Tensor *target) {
    check_shapes(tensor_same_shape(pred, target), "mse", pred, target);
    Tensor *in[2] = {pred, target};
    int one = 1;
    Tensor *out = ad_out(c, 1, &one, in, 2);
    out->data[0] = (float)mse_forward(pred->data, target->data, pred->n);
    tape_record(c, "mse", mse_bw, out, in, 2);
    return out;
}

/* out[R] = x[R,K][r, idx[r]] */
static void gather_forward(float *out, const float *x, const int *idx, size_t rows, size_t K) {
    for (size_t r = 0; r < rows; r++) out[r] = x[r * K + (size_t)idx[r]];
}

/* dx[R,K][r, idx[r]] += dout[R] */
static void gather_backward(float *dx, const float *dout, const int *idx, size_t rows, size_t K) {
    for (size_t r = 0; r < rows; r++) dx[r * K + (size_t)idx[r]] += dout[r];
}

static void gather_bw(TapeNode *nd) {
    Tensor *x = nd->in[0];
    gather_backward(x->grad, nd->out->grad, nd->ctx, tensor_rows(x), (size_t)tensor_cols(x));
}

Tensor *ad_gather(Ctx *c, Tensor *x, const int *idx) {
    int K = tensor_cols(x), R = as_int(tensor_rows(x), "gather");
    for (int r = 0; r < R; r++)
        ASSERT(idx[r] >= 0 && idx[r] < K, "gather: idx[%d] = %d outside [0, %d)", r, idx[r], K);
    Tensor *out = ad_out(c, 1, &R, &x, 1);
    gather_forward(out->data, x->data, idx, (size_t)R, (size_t)K);
    TapeNode *nd = tape_record(c, "gather", gather_bw, out, &x, 1);
    if (nd) {
        int *saved = arena_alloc(&c->arena, (size_t)R * sizeof *saved);
        memcpy(saved, idx, (size_t)R * sizeof *saved);
        nd->ctx = saved;
    }
    return out;
}

/* ----------------------------------------------------------------- shapes */

Tensor *ad_detach(Ctx *c, Tensor *x) {
    Tensor *out = arena_alloc(&c->arena, sizeof *out);
    *out = tensor_view(x->data, NULL, x->ndim, x->shape);
    return out;
}

Tensor *ad_reshape(Ctx *c, Tensor *x, int ndim, const int *shape) {
    Tensor *out = arena_alloc(&c->arena, sizeof *out);
    *out = tensor_view(x->data, x->grad, ndim, shape);
    check_shapes(out->n == x->n, "reshape (from, to)", x, out);
    return out;
}

Tensor *ad_slice_rows(Ctx *c, Tensor *x, int start, int count) {
    ASSERT(start >= 0 && count > 0 && start + count <= x->shape[0],
           "slice_rows: rows [%d, %d) of %d", start, start + count, x->shape[0]);
    size_t inner = x->n / (size_t)x->shape[0], off = (size_t)start * inner;
    int shape[TENSOR_MAX_DIMS];
    memcpy(shape, x->shape, sizeof shape);
    shape[0] = count;
    Tensor *out = arena_alloc(&c->arena, sizeof *out);
    *out = tensor_view(x->data + off, x->grad ? x->grad + off : NULL, x->ndim, shape);
    return out;
}

/* out[R,W] = x[R,C][:, start:start+W] */
static void slice_cols_forward(float *restrict out, const float *restrict x, size_t rows,
                               size_t C, size_t start, size_t W) {
    for (size_t r = 0; r < rows; r++) memcpy(out + r * W, x + r * C + start, W * sizeof *out);
}

/* dx[R,C][:, start:start+W] += dout[R,W] */
static void slice_cols_backward(float *restrict dx, const float *restrict dout, size_t rows,
                                size_t C, size_t start, size_t W) {
    for (size_t r = 0; r < rows; r++) accum(dx + r * C + start, dout + r * W, W);
}

static void slice_cols_bw(TapeNode *nd) {
    Tensor *x = nd->in[0];
    slice_cols_backward(x->grad, nd->out->grad, tensor_rows(x), (size_t)tensor_cols(x),
                        (size_t)nd->iargs[0], (size_t)nd->iargs[1]);
}

Tensor *ad_slice_cols(Ctx *c, Tensor *x, int start, int len) {
    int C = tensor_cols(x);
    ASSERT(start >= 0 && len > 0 && start + len <= C, "slice_cols: columns [%d, %d) of %d",
           start, start + len, C);
    int shape[TENSOR_MAX_DIMS];
    memcpy(shape, x->shape, sizeof shape);
    shape[x->ndim - 1] = len;
    Tensor *out = ad_out(c, x->ndim, shape, &x, 1);
    slice_cols_forward(out->data, x->data, tensor_rows(x), (size_t)C, (size_t)start, (size_t)len);
    TapeNode *nd = tape_record(c, "slice_cols", slice_cols_bw, out, &x, 1);
    if (nd) {
        nd->iargs[0] = start;
        nd->iargs[1] = len;
    }
    return out;
}

/* Concatenation takes any number of inputs (BPTT stacks hundreds of hidden
 * states), more than TapeNode.in holds: the full list is saved in node->ctx
 * and node->in keeps only the first TAPE_MAX_INPUTS, for display. */
typedef struct {
    Tensor **xs;
    int k;
} ConcatCtx;

static void concat_save(Ctx *c, TapeNode *nd, Tensor *const *xs, int k) {
    ConcatCtx *cc = arena_alloc(&c->arena, sizeof *cc);
    cc->xs = arena_alloc(&c->arena, (size_t)k * sizeof *cc->xs);
    memcpy(cc->xs, xs, (size_t)k * sizeof *cc->xs);
    cc->k = k;
    nd->ctx = cc;
}

static int concat_nin(int k) { return k < TAPE_MAX_INPUTS ? k : TAPE_MAX_INPUTS; }

/* out[R,CT][:, off:off+C] = x[R,C] */
static void concat_cols_forward(float *restrict out, const float *restrict x, size_t rows,
                                size_t CT, size_t off, size_t C) {
    for (size_t r = 0; r < rows; r++) memcpy(out + r * CT + off, x + r * C, C * sizeof *out);
}

/* dx[R,C] += dout[R,CT][:, off:off+C] */
static void concat_cols_backward(float *restrict dx, const float *restrict dout, size_t rows,
                                 size_t CT, size_t off, size_t C) {
    for (size_t r = 0; r < rows; r++) accum(dx + r * C, dout + r * CT + off, C);
}

static void concat_cols_bw(TapeNode *nd) {
    const ConcatCtx *cc = nd->ctx;
    size_t CT = (size_t)tensor_cols(nd->out), rows = tensor_rows(nd->out), off = 0;
    for (int i = 0; i < cc->k; i++) {
        Tensor *x = cc->xs[i];
        size_t C = (size_t)tensor_cols(x);
        if (x->grad) concat_cols_backward(x->grad, nd->out->grad, rows, CT, off, C);
        off += C;
    }
}

Tensor *ad_concat_cols(Ctx *c, Tensor *const *xs, int k) {
    ASSERT(k >= 1, "concat_cols: %d inputs", k);
    int shape[TENSOR_MAX_DIMS];
    memcpy(shape, xs[0]->shape, sizeof shape);
    int nd0 = xs[0]->ndim, CT = 0;
    for (int i = 0; i < k; i++) {
        int ok = xs[i]->ndim == nd0;
        for (int d = 0; ok && d < nd0 - 1; d++) ok = xs[i]->shape[d] == shape[d];
        check_shapes(ok, "concat_cols", xs[0], xs[i]);
        CT += tensor_cols(xs[i]);
    }
    shape[nd0 - 1] = CT;
    Tensor *out = ad_out(c, nd0, shape, xs, k);
    size_t rows = tensor_rows(out), off = 0;
    for (int i = 0; i < k; i++) {
        size_t C = (size_t)tensor_cols(xs[i]);
        concat_cols_forward(out->data, xs[i]->data, rows, (size_t)CT, off, C);
        off += C;
    }
    TapeNode *nd = tape_record(c, "concat_cols", concat_cols_bw, out, xs, concat_nin(k));
    if (nd) concat_save(c, nd, xs, k);
    return out;
}

static void concat_rows_bw(TapeNode *nd) {
    const ConcatCtx *cc = nd->ctx;
    size_t off = 0;
    for (int i = 0; i < cc->k; i++) {
        Tensor *x = cc->xs[i];
        if (x->grad) accum(x->grad, nd->out->grad + off, x->n);
        off += x->n;
    }
}

Tensor *ad_concat_rows(Ctx *c, Tensor *const *xs, int k) {
    ASSERT(k >= 1, "concat_rows: %d inputs", k);
    int shape[TENSOR_MAX_DIMS];
    memcpy(shape, xs[0]->shape, sizeof shape);
    int nd0 = xs[0]->ndim, rows = 0;
    for (int i = 0; i < k; i++) {
        int ok = xs[i]->ndim == nd0;
        for (int d = 1; ok && d < nd0; d++) ok = xs[i]->shape[d] == shape[d];
        check_shapes(ok, "concat_rows", xs[0], xs[i]);
        rows += xs[i]->shape[0];
    }
    shape[0] = rows;
    Tensor *out = ad_out(c, nd0, shape, xs, k);
    size_t off = 0;
    for (int i = 0; i < k; i++) {
        memcpy(out->data + off, xs[i]->data, xs[i]->n * sizeof *out->data);
        off += xs[i]->n;
    }
    TapeNode *nd = tape_record(c, "concat_rows", concat_rows_bw, out, xs, concat_nin(k));
    if (nd) concat_save(c, nd, xs, k);
    return out;
}
