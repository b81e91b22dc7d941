/* ops_nn.c: the neural-network half of ops.h: softmax and log-softmax, fused
 * cross-entropy, embedding, LayerNorm, BatchNorm, conv2d (im2col + sgemm),
 * depthwise conv2d, global average pooling, causal multi-head attention, and
 * the naive reference convolution the tests hold the fast kernels against.
 *
 * Each op is a forward kernel, a backward kernel (llm.c style: plain functions
 * over raw pointers, outputs first, inputs const, sizes last) and a tape
 * wrapper. Backward kernels ADD into gradients. Saved context lives in the
 * step arena; nothing here calls malloc. Linear algebra, elementwise ops,
 * reductions and shape ops are in ops_core.c. conv2d, dwconv2d and batchnorm
 * split their work over ops_num_threads OpenMP threads (ops_set_threads in
 * ops_act.c), every sum in one order whatever the count;
 * depthwise planes are zero-padded copies so the tap loops need no bounds.
 *
 * Dimension legend: N rows (leading dims flattened) or batch for images,
 * V classes, C channels/features, H/W image height/width, HO/WO output size,
 * KH/KW kernel size, CKK = CIN*KH*KW, B batch, T time, NH heads, hd head dim. */
#include "ops.h"

#include <cblas.h>
#ifdef _OPENMP
#include <omp.h>
#else
static int omp_get_thread_num(void) { return 0; }
#endif
#include <math.h>
#include <stddef.h>
#include <string.h>

#include "common.h"
#include "perex.h"
#include "half.h"
#include "ops_kernel.h"

/* ------------------------------------------------------------------------ */
/* row reductions                                                           */
/* A row sum is a chain of dependent adds: its cost is the add latency, and  */
/* without -ffast-math the compiler may not reorder it. These helpers keep   */
/* LANES independent float accumulators (a fixed-width block, which GCC's    */
/* SLP vectorizer turns into vector ops) and combine them at the end.        */
/* ------------------------------------------------------------------------ */

#define LANES 8

static float lanes_total(const float *acc, float tail) {
    float s = 0.0f;
    for (int j = 0; j < LANES; j++) s += acc[j];
    return s + tail;
}

/* sum x[i] */
static float row_sum(const float *x, size_t n) {
    float acc[LANES] = {0}, tail = 0.0f;
    size_t i = 0;
    for (; i + LANES <= n; i += LANES)
        for (int j = 0; j < LANES; j++) acc[j] += x[i + j];
    for (; i < n; i++) tail += x[i];
    return lanes_total(acc, tail);
}

/* sum a[i] * b[i] */
static float row_dot(const float *a, const float *b, size_t n) {
    float acc[LANES] = {0}, tail = 0.0f;
    size_t i = 0;
    for (; i + LANES <= n; i += LANES)
        for (int j = 0; j < LANES; j++) acc[j] += a[i + j] * b[i + j];
    for (; i < n; i++) tail += a[i] * b[i];
    return lanes_total(acc, tail);
}

/* sum a[i] * (x[i] - m) */
static float row_dot_dev(const float *a, const float *x, float m, size_t n) {
    float acc[LANES] = {0}, tail = 0.0f;
    size_t i = 0;
    for (; i + LANES <= n; i += LANES)
        for (int j = 0; j < LANES; j++) acc[j] += a[i + j] * (x[i + j] - m);
    for (; i < n; i++) tail += a[i] * (x[i] - m);
    return lanes_total(acc, tail);
}

/* sum a[i] * b[i] * (x[i] - m) */
static float row_dot3_dev(const float *a, const float *b, const float *x, float m, size_t n) {
    float acc[LANES] = {0}, tail = 0.0f;
    size_t i = 0;
    for (; i + LANES <= n; i += LANES)
        for (int j = 0; j < LANES; j++) acc[j] += a[i + j] * b[i + j] * (x[i + j] - m);
    for (; i < n; i++) tail += a[i] * b[i] * (x[i] - m);
    return lanes_total(acc, tail);
}

/* sum (x[i] - m)^2 */
static float row_sqdev(const float *x, float m, size_t n) {
    float acc[LANES] = {0}, tail = 0.0f;
    size_t i = 0;
    for (; i + LANES <= n; i += LANES)
        for (int j = 0; j < LANES; j++) acc[j] += (x[i + j] - m) * (x[i + j] - m);
    for (; i < n; i++) tail += (x[i] - m) * (x[i] - m);
    return lanes_total(acc, tail);
}

/* max x[i], n >= 1 */
static float row_max(const float *x, size_t n) {
    float m = x[0];
    size_t i = 0;
    if (n >= LANES) {
        float acc[LANES];
        for (int j = 0; j < LANES; j++) acc[j] = x[j];
        for (i = LANES; i + LANES <= n; i += LANES)
            for (int j = 0; j < LANES; j++) acc[j] = x[i + j] > acc[j] ? x[i + j] : acc[j];
        for (int j = 0; j < LANES; j++) m = acc[j] > m ? acc[j] : m;
    }
    for (; i < n; i++) m = x[i] > m ? x[i] : m;
    return m;
}

/* ------------------------------------------------------------------------ */
/* softmax family (rows of the last dim)                                    */
/* ------------------------------------------------------------------------ */

/* y = exp(x - max) / sum; returns log(sum exp(x - max)) + max, the row's
 * log-sum-exp. y may be x (in place). */
static float softmax_row(float *y, const float *x, int n) {
    float m = row_max(x, (size_t)n);
    for (int i = 0; i < n; i++) y[i] = expf(x[i] - m);
    float s = row_sum(y, (size_t)n), inv = 1.0f / s;
    for (int i = 0; i < n; i++) y[i] *= inv;
    return m + logf(s);
}

static void softmax_forward(float *out, const float *inp, size_t N, int C) {
    /* out[N,C], inp[N,C] */
    for (size_t r = 0; r < N; r++) softmax_row(out + r * C, inp + r * C, C);
}

/* dinp += y * (dout - sum(dout * y)) */
static void softmax_backward(float *dinp, const float *out, const float *dout, size_t N, int C) {
    /* dinp[N,C], out[N,C] (the softmax), dout[N,C] */
    for (size_t r = 0; r < N; r++) {
        const float *y = out + r * C, *dy = dout + r * C;
        float *dx = dinp + r * C;
        float d = row_dot(dy, y, (size_t)C);
        for (int i = 0; i < C; i++) dx[i] += y[i] * (dy[i] - d);
    }
}

static void log_softmax_forward(float *out, const float *inp, size_t N, int C) {
    /* out[N,C], inp[N,C] */
    for (size_t r = 0; r < N; r++) {
        float lse = softmax_row(out + r * C, inp + r * C, C);
        for (int i = 0; i < C; i++) out[r * C + i] = inp[r * C + i] - lse;
    }
}

/* dinp += dout - exp(y) * sum(dout) */
static void log_softmax_backward(float *dinp, const float *out, const float *dout, size_t N,
                                 int C) {
    /* dinp[N,C], out[N,C] (log-probabilities), dout[N,C] */
    for (size_t r = 0; r < N; r++) {
        const float *y = out + r * C, *dy = dout + r * C;
        float *dx = dinp + r * C;
        float sf = row_sum(dy, (size_t)C);
        for (int i = 0; i < C; i++) dx[i] += dy[i] - expf(y[i]) * sf;
    }
}

static void softmax_bwd(TapeNode *nd) {
    Tensor *x = nd->in[0], *y = nd->out;
    if (!x->grad) return;
    int C = tensor_cols(y);
    float *dx = x->grad;
    const float *yd = y->data, *dy = y->grad;
    OPS_PARALLEL_CHUNKS(tensor_rows(y), OPS_WORK_THREADS(y->n), 1,
                        softmax_backward(dx + lo * C, yd + lo * C, dy + lo * C, hi - lo, C));
}

static void log_softmax_bwd(TapeNode *nd) {
    Tensor *x = nd->in[0], *y = nd->out;
    if (!x->grad) return;
    int C = tensor_cols(y);
    float *dx = x->grad;
    const float *yd = y->data, *dy = y->grad;
    OPS_PARALLEL_CHUNKS(tensor_rows(y), OPS_WORK_THREADS(y->n), 1,
                        log_softmax_backward(dx + lo * C, yd + lo * C, dy + lo * C, hi - lo, C));
}

Tensor *ad_softmax(Ctx *c, Tensor *x) {
    Tensor *out = ad_out(c, x->ndim, x->shape, &x, 1);
    float *o = out->data;
    const float *xd = x->data;
    int C = tensor_cols(x);
    OPS_PARALLEL_CHUNKS(tensor_rows(x), OPS_WORK_THREADS(x->n), 1,
                        softmax_forward(o + lo * C, xd + lo * C, hi - lo, C));
    tape_record(c, "softmax", softmax_bwd, out, &x, 1);
    return out;
}

Tensor *ad_log_softmax(Ctx *c, Tensor *x) {
    Tensor *out = ad_out(c, x->ndim, x->shape, &x, 1);
    float *o = out->data;
    const float *xd = x->data;
    int C = tensor_cols(x);
    OPS_PARALLEL_CHUNKS(tensor_rows(x), OPS_WORK_THREADS(x->n), 1,
                        log_softmax_forward(o + lo * C, xd + lo * C, hi - lo, C));
    tape_record(c, "log_softmax", log_softmax_bwd, out, &x, 1);
    return out;
}

/* ------------------------------------------------------------------------ */
/* cross-entropy, fused with log-softmax                                    */
/* ------------------------------------------------------------------------ */

typedef struct {
    float *probs;   /* [N,V] softmax of the logits */
    int *targets;   /* [N] copy of the targets */
    int count;      /* non-ignored rows */
} CrossEntropyCtx;

/* Returns sum over non-ignored rows of -log softmax(logits)[target] and
 * their count; fills probs[N,V] (softmax) when probs is not NULL.
 * scratch[V] is used when probs is NULL. */
static double crossentropy_forward(float *probs, float *scratch, int *count,
                                   const float *logits, const int *targets, size_t N, int V) {
    /* probs[N,V] or NULL, scratch[V], logits[N,V], targets[N] */
    double total = 0.0;
    int cnt = 0;
    for (size_t r = 0; r < N; r++) {
        int t = targets[r];
        ASSERT(t >= -1 && t < V, "cross_entropy: target %d of row %zu outside [-1, %d)", t, r, V);
        float *p = probs ? probs + r * V : scratch;
        float lse = softmax_row(p, logits + r * V, V);
        if (t < 0) continue;
        total += (double)lse - (double)logits[r * V + t];
        cnt++;
    }
    *count = cnt;
    return total;
}

/* dlogits += dloss / count * (probs - onehot(target)) on non-ignored rows */
OPS_SIMD static void crossentropy_backward(float *dlogits, const float *probs, const int *targets,
                                  float dscale, size_t N, int V) {
    /* dlogits[N,V], probs[N,V], targets[N]; dscale = dloss / count */
    for (size_t r = 0; r < N; r++) {
        int t = targets[r];
        if (t < 0) continue;
        float *dx = dlogits + r * V;
        const float *p = probs + r * V;
        for (int i = 0; i < V; i++) dx[i] += dscale * p[i];
        dx[t] -= dscale;
    }
}

static void cross_entropy_bwd(TapeNode *nd) {
    CrossEntropyCtx *k = nd->ctx;
    Tensor *x = nd->in[0];
    if (!x->grad || k->count == 0) return;
    float dscale = nd->out->grad[0] / (float)k->count, *dx = x->grad;
    const float *probs = k->probs;
    const int *tg = k->targets;
    int V = tensor_cols(x);
    OPS_PARALLEL_CHUNKS(tensor_rows(x), OPS_WORK_THREADS(x->n), 1,
                        crossentropy_backward(dx + lo * V, probs + lo * V, tg + lo, dscale,
                                              hi - lo, V));
}

/* Mean over non-ignored targets; when every target is ignored the loss is
 * 0/0 = NaN, as torch's F.cross_entropy(..., ignore_index=-1) gives. */
Tensor *ad_cross_entropy(Ctx *c, Tensor *logits, const int *targets) {
    size_t N = tensor_rows(logits);
    int V = tensor_cols(logits);
    int one = 1, count;
    Tensor *out = ad_out(c, 1, &one, &logits, 1);
    int rec = out->grad != NULL;
    float *probs = rec ? arena_alloc(&c->arena, N * V * sizeof(float)) : NULL;
    float *scratch = rec ? NULL : arena_alloc(&c->arena, (size_t)V * sizeof(float));
    double total = 0.0;
    int nt = probs ? OPS_WORK_THREADS(N * (size_t)V) : 1;
    if (nt == 1) {
        total = crossentropy_forward(probs, scratch, &count, logits->data, targets, N, V);
    } else { /* rows over threads, each row's term kept; summed here in row order */
        double *term = arena_alloc(&c->arena, N * sizeof *term);
        const float *lg = logits->data;
        OPS_PARALLEL_CHUNKS(N, nt, 1, {
            for (size_t r = lo; r < hi; r++) {
                int cnt1;
                term[r] = crossentropy_forward(probs + r * V, NULL, &cnt1, lg + r * V,
                                               targets + r, 1, V);
            }
        });
        count = 0;
        for (size_t r = 0; r < N; r++)
            if (targets[r] >= 0) total += term[r], count++;
    }
    out->data[0] = count ? (float)(total / count) : NAN;
    TapeNode *nd = tape_record(c, "cross_entropy", cross_entropy_bwd, out, &logits, 1);
    if (nd) {
        CrossEntropyCtx *k = arena_alloc(&c->arena, sizeof *k);
        k->probs = probs;
        k->targets = arena_alloc(&c->arena, N * sizeof(int));
        memcpy(k->targets, targets, N * sizeof(int));
        k->count = count;
        nd->ctx = k;
    }
    return out;
}

/* ------------------------------------------------------------------------ */
/* embedding                                                                */
/* ------------------------------------------------------------------------ */

static void embedding_forward(float *out, const float *w, const int *idx, int n, int V, int C) {
    /* out[n,C], w[V,C], idx[n] */
    for (int i = 0; i < n; i++) {
        ASSERT(idx[i] >= 0 && idx[i] < V, "embedding: index %d at %d outside [0, %d)", idx[i],
               i, V);
        memcpy(out + (size_t)i * C, w + (size_t)idx[i] * C, (size_t)C * sizeof(float));
    }
}

/* dw[idx[i]] += dout[i]; repeated indices accumulate */
static void embedding_backward(float *dw, const float *dout, const int *idx, int n, int C) {
    /* dw[V,C], dout[n,C], idx[n] */
    for (int i = 0; i < n; i++) {
        float *d = dw + (size_t)idx[i] * C;
        const float *g = dout + (size_t)i * C;
        for (int j = 0; j < C; j++) d[j] += g[j];
    }
}

static void embedding_bwd(TapeNode *nd) {
    Tensor *w = nd->in[0];
    if (w->grad) embedding_backward(w->grad, nd->out->grad, nd->ctx, nd->iargs[0], w->shape[1]);
}

Tensor *ad_embedding(Ctx *c, Tensor *w, const int *idx, int n) {
    ASSERT(w->ndim == 2, "embedding: w must be [V,C], got %d dims", w->ndim);
    int shape[2] = {n, w->shape[1]};
    Tensor *out = ad_out(c, 2, shape, &w, 1);
    embedding_forward(out->data, w->data, idx, n, w->shape[0], w->shape[1]);
    TapeNode *nd = tape_record(c, "embedding", embedding_bwd, out, &w, 1);
    if (nd) {
        int *copy = arena_alloc(&c->arena, (size_t)n * sizeof(int));
        memcpy(copy, idx, (size_t)n * sizeof(int));
        nd->ctx = copy;
        nd->iargs[0] = n;
    }
    return out;
}

/* ------------------------------------------------------------------------ */
/* LayerNorm (Ba et al. 2016): y = (x - mean) * rstd * w + b over the last  */
/* dim, rstd = 1/sqrt(var + eps), biased variance as torch.                 */
/* ------------------------------------------------------------------------ */

OPS_SIMD static void layernorm_forward(float *restrict out, float *restrict mean, float *restrict rstd,
                              const float *restrict inp, const float *restrict w,
                              const float *restrict b, float eps, size_t N, int C) {
    /* out[N,C], mean[N], rstd[N], inp[N,C], w[C], b[C] */
    for (size_t r = 0; r < N; r++) {
        const float *x = inp + r * C;
        float m = row_sum(x, (size_t)C) / (float)C;
        float rs = 1.0f / sqrtf(row_sqdev(x, m, (size_t)C) / (float)C + eps);
        float *y = out + r * C;
        for (int i = 0; i < C; i++) y[i] = (x[i] - m) * rs * w[i] + b[i];
        mean[r] = m;
        rstd[r] = rs;
    }
}

/* llm.c layernorm_backward: dx = rstd * (g - mean(g) - xhat * mean(g * xhat)),
 * g = w * dout. Any of dinp, dw, db may be NULL. */
OPS_SIMD static void layernorm_backward(float *restrict dinp, float *restrict dw, float *restrict db,
                               const float *restrict dout, const float *restrict inp,
                               const float *restrict w, const float *restrict mean,
                               const float *restrict rstd, size_t N, int C) {
    /* dinp[N,C], dw[C], db[C], dout[N,C], inp[N,C], w[C], mean[N], rstd[N] */
    for (size_t r = 0; r < N; r++) {
        const float *x = inp + r * C, *dy = dout + r * C;
        float m = mean[r], rs = rstd[r];
        if (dw && db) /* one pass for both (the common case) */
            for (int i = 0; i < C; i++) {
                dw[i] += (x[i] - m) * rs * dy[i];
                db[i] += dy[i];
            }
        else if (dw)
            for (int i = 0; i < C; i++) dw[i] += (x[i] - m) * rs * dy[i];
        else if (db)
            for (int i = 0; i < C; i++) db[i] += dy[i];
        if (!dinp) continue;
        float a = row_dot(w, dy, (size_t)C) / (float)C;
        float bb = rs * row_dot3_dev(w, dy, x, m, (size_t)C) / (float)C;
        float *dx = dinp + r * C;
        for (int i = 0; i < C; i++) dx[i] += rs * (w[i] * dy[i] - a - (x[i] - m) * rs * bb);
    }
}

typedef struct {
    float *mean, *rstd; /* [N] */
} NormCtx;

/* dw[W] += sum over rows of (x - mean) rstd dout, db[W] += sum of dout, on
 * columns [0, W) of rows of stride C; each column summed in row order. */
OPS_SIMD static void layernorm_backward_wb(float *restrict dw, float *restrict db,
                                           const float *restrict dout, const float *restrict inp,
                                           const float *restrict mean, const float *restrict rstd,
                                           size_t N, int C, size_t W) {
    /* dw[W], db[W], dout[N,C], inp[N,C] (both offset to the first column), mean[N], rstd[N] */
    for (size_t r = 0; r < N; r++) {
        const float *x = inp + r * C, *dy = dout + r * C;
        float m = mean[r], rs = rstd[r];
        if (dw)
            for (size_t i = 0; i < W; i++) dw[i] += (x[i] - m) * rs * dy[i];
        if (db)
            for (size_t i = 0; i < W; i++) db[i] += dy[i];
    }
}

/* One thread: layernorm_backward as is. Several: thread k takes a block of
 * rows of dx and a block of columns of dw/db (those sums stay in row order). */
static void layernorm_bwd(TapeNode *nd) {
    Tensor *x = nd->in[0], *w = nd->in[1], *b = nd->in[2];
    NormCtx *k = nd->ctx;
    size_t N = tensor_rows(x);
    int C = tensor_cols(x), nt = OPS_WORK_THREADS(N * (size_t)C);
    if (nt == 1) {
        layernorm_backward(x->grad, w->grad, b->grad, nd->out->grad, x->data, w->data, k->mean,
                           k->rstd, N, C);
        return;
    }
    const float *dout = nd->out->grad;
#pragma omp parallel for num_threads(nt) schedule(static)
    for (int t = 0; t < nt; t++) {
        size_t r0 = ops_chunk(N, nt, t, 1), r1 = ops_chunk(N, nt, t + 1, 1);
        size_t c0 = ops_chunk((size_t)C, nt, t, 16), c1 = ops_chunk((size_t)C, nt, t + 1, 16);
        if (x->grad && r1 > r0)
            layernorm_backward(x->grad + r0 * C, NULL, NULL, dout + r0 * C, x->data + r0 * C,
                               w->data, k->mean + r0, k->rstd + r0, r1 - r0, C);
        if (c1 > c0)
            layernorm_backward_wb(w->grad ? w->grad + c0 : NULL, b->grad ? b->grad + c0 : NULL,
                                  dout + c0, x->data + c0, k->mean, k->rstd, N, C, c1 - c0);
    }
}

Tensor *ad_layernorm(Ctx *c, Tensor *x, Tensor *w, Tensor *b, float eps) {
    int C = tensor_cols(x);
    size_t N = tensor_rows(x);
    ASSERT(w && b && w->n == (size_t)C && b->n == (size_t)C,
           "layernorm: w and b must have %d elements", C);
    Tensor *in[3] = {x, w, b};
    Tensor *out = ad_out(c, x->ndim, x->shape, in, 3);
    NormCtx *k = arena_alloc(&c->arena, sizeof *k);
    k->mean = arena_alloc(&c->arena, N * sizeof(float));
    k->rstd = arena_alloc(&c->arena, N * sizeof(float));
    float *o = out->data, *mean = k->mean, *rstd = k->rstd;
    const float *xd = x->data, *wd = w->data, *bd = b->data;
    OPS_PARALLEL_CHUNKS(N, OPS_WORK_THREADS(N * (size_t)C), 1,
                        layernorm_forward(o + lo * C, mean + lo, rstd + lo, xd + lo * C, wd, bd,
                                          eps, hi - lo, C));
    TapeNode *nd = tape_record(c, "layernorm", layernorm_bwd, out, in, 3);
    if (nd) nd->ctx = k;
    return out;
}

/* ------------------------------------------------------------------------ */
/* BatchNorm (Ioffe & Szegedy 2015, Alg. 1) per channel over N and H*W.      */
/* ------------------------------------------------------------------------ */

/* Per-channel batch mean and biased variance of x[N,C,S] (S = H*W, 1 for [N,C]). */
static void batchnorm_stats(float *mean, float *var, const float *x, int N, int C, size_t S) {
    /* mean[C], var[C], x[N,C,S] */
    double M = (double)N * (double)S;
    int nt = OPS_ELEM_THREADS((size_t)N * C * S);
#pragma omp parallel for num_threads(nt) schedule(dynamic) if (nt > 1)
    for (int ch = 0; ch < C; ch++) {
        double s = 0.0, v = 0.0;
        for (int n = 0; n < N; n++) s += row_sum(x + ((size_t)n * C + ch) * S, S);
        float m = (float)(s / M);
        for (int n = 0; n < N; n++) v += row_sqdev(x + ((size_t)n * C + ch) * S, m, S);
        mean[ch] = m;
        var[ch] = (float)(v / M);
    }
}

/* out = (x - mean[ch]) * rstd[ch] * w[ch] + b[ch] */
static void batchnorm_apply(float *out, const float *x, const float *mean, const float *rstd,
                            const float *w, const float *b, int N, int C, size_t S) {
    /* out[N,C,S], x[N,C,S], mean[C], rstd[C], w[C], b[C] */
    int nt = OPS_ELEM_THREADS((size_t)N * C * S);
#pragma omp parallel for num_threads(nt) schedule(static) if (nt > 1)
    for (int p = 0; p < N * C; p++) {
        int ch = p % C;
        size_t o = (size_t)p * S;
        float sc = rstd[ch] * w[ch], sh = b[ch] - mean[ch] * sc;
        for (size_t i = 0; i < S; i++) out[o + i] = x[o + i] * sc + sh;
    }
}

/* Per-channel sums of dout and dout * xhat over N and S. */
static void batchnorm_reduce(double *sdy, double *sdyx, const float *dout, const float *x,
                             const float *mean, const float *rstd, int N, int C, size_t S) {
    /* sdy[C], sdyx[C], dout[N,C,S], x[N,C,S], mean[C], rstd[C]; each channel's
     * sums run over n in order, whichever thread has the channel */
    int nt = OPS_ELEM_THREADS((size_t)N * C * S);
#pragma omp parallel for num_threads(nt) schedule(dynamic) if (nt > 1)
    for (int ch = 0; ch < C; ch++) {
        double a = 0.0, b = 0.0;
        for (int n = 0; n < N; n++) {
            size_t o = ((size_t)n * C + ch) * S;
            a += row_sum(dout + o, S);
            b += (double)rstd[ch] * row_dot_dev(dout + o, x + o, mean[ch], S);
        }
        sdy[ch] = a, sdyx[ch] = b;
    }
}

/* Train mode: dx = w * rstd * (dy - mean(dy) - xhat * mean(dy * xhat)) (the
 * batch statistics depend on x). Eval mode: dx = w * rstd * dy.
 * dw += sum(dy * xhat), db += sum(dy). Any of dinp, dw, db may be NULL. */
static void batchnorm_backward(float *dinp, float *dw, float *db, const float *dout,
                               const float *x, const float *w, const float *mean,
                               const float *rstd, double *sdy, double *sdyx, int train, int N,
                               int C, size_t S) {
    /* dinp[N,C,S], dw[C], db[C], dout[N,C,S], x[N,C,S], w[C], mean[C], rstd[C],
     * sdy[C] and sdyx[C] scratch */
    batchnorm_reduce(sdy, sdyx, dout, x, mean, rstd, N, C, S);
    for (int ch = 0; ch < C; ch++) {
        if (dw) dw[ch] += (float)sdyx[ch];
        if (db) db[ch] += (float)sdy[ch];
    }
    if (!dinp) return;
    double M = (double)N * (double)S;
    int nt = OPS_ELEM_THREADS((size_t)N * C * S);
#pragma omp parallel for num_threads(nt) schedule(static) if (nt > 1)
    for (int p = 0; p < N * C; p++) {
        int ch = p % C;
        size_t o = (size_t)p * S;
        float g = w[ch] * rstd[ch], m = mean[ch], rs = rstd[ch];
        float a = train ? (float)(sdy[ch] / M) : 0.0f;
        float bb = train ? (float)(sdyx[ch] / M) : 0.0f;
        for (size_t i = 0; i < S; i++)
            dinp[o + i] += g * (dout[o + i] - a - (x[o + i] - m) * rs * bb);
    }
}

typedef struct {
    float *mean, *rstd;  /* [C] statistics used for normalisation */
    double *sdy, *sdyx;  /* [C] backward scratch */
    int train;
} BatchNormCtx;

static void batchnorm_bwd(TapeNode *nd) {
    Tensor *x = nd->in[0], *w = nd->in[1], *b = nd->in[2];
    BatchNormCtx *k = nd->ctx;
    int N = x->shape[0], C = x->shape[1];
    size_t S = x->n / ((size_t)N * C);
    batchnorm_backward(x->grad, w->grad, b->grad, nd->out->grad, x->data, w->data, k->mean,
                       k->rstd, k->sdy, k->sdyx, k->train, N, C, S);
}

/* running = (1 - momentum) * running + momentum * batch, unbiased variance */
static void batchnorm_update_running(float *rmean, float *rvar, const float *mean,
                                     const float *var, float momentum, double M, int C) {
    /* rmean[C], rvar[C], mean[C], var[C] (biased) */
    for (int ch = 0; ch < C; ch++) {
        rmean[ch] = (1.0f - momentum) * rmean[ch] + momentum * mean[ch];
        rvar[ch] = (1.0f - momentum) * rvar[ch] + momentum * (float)(var[ch] * M / (M - 1.0));
    }
}

Tensor *ad_batchnorm(Ctx *c, Tensor *x, Tensor *w, Tensor *b, float *running_mean,
                     float *running_var, float momentum, float eps) {
    ASSERT(x->ndim >= 2, "batchnorm: x must be [N,C,...], got %d dims", x->ndim);
    ASSERT(!c->pe || !c->train, "batchnorm under per-example gradients (DP-SGD): batch statistics "
           "mix the examples, so no example has a gradient of its own");
    int N = x->shape[0], C = x->shape[1];
    size_t S = x->n / ((size_t)N * C);
    double M = (double)N * (double)S;
    ASSERT(w && b && w->n == (size_t)C && b->n == (size_t)C,
           "batchnorm: w and b must have %d elements", C);
    ASSERT(!c->train || M > 1, "batchnorm: training needs more than 1 value per channel");
    Tensor *in[3] = {x, w, b};
    Tensor *out = ad_out(c, x->ndim, x->shape, in, 3);
    BatchNormCtx *k = arena_alloc(&c->arena, sizeof *k);
    k->mean = arena_alloc(&c->arena, (size_t)C * sizeof(float));
    k->rstd = arena_alloc(&c->arena, (size_t)C * sizeof(float));
    k->train = c->train;
    if (c->train) {
        batchnorm_stats(k->mean, k->rstd, x->data, N, C, S);
        batchnorm_update_running(running_mean, running_var, k->mean, k->rstd, momentum, M, C);
    } else {
        memcpy(k->mean, running_mean, (size_t)C * sizeof(float));
        memcpy(k->rstd, running_var, (size_t)C * sizeof(float));
    }
    for (int ch = 0; ch < C; ch++) k->rstd[ch] = 1.0f / sqrtf(k->rstd[ch] + eps);
    batchnorm_apply(out->data, x->data, k->mean, k->rstd, w->data, b->data, N, C, S);
    TapeNode *nd = tape_record(c, "batchnorm", batchnorm_bwd, out, in, 3);
    if (nd) {
        k->sdy = arena_alloc(&c->arena, (size_t)C * sizeof(double));
        k->sdyx = arena_alloc(&c->arena, (size_t)C * sizeof(double));
        nd->ctx = k;
    }
    return out;
}

/* ------------------------------------------------------------------------ */
/* convolution (NCHW)                                                       */
/* ------------------------------------------------------------------------ */

/* Output positions o in [lo, hi) whose input o*stride - pad + k lies in [0, n). */
static void conv_range(int *lo, int *hi, int k, int n, int stride, int pad, int nout) {
    int a = pad - k; /* need o*stride >= a */
    int l = a > 0 ? (a + stride - 1) / stride : 0;
    int b = n - 1 + pad - k; /* need o*stride <= b */
    int h = b >= 0 ? b / stride + 1 : 0;
    *lo = l;
    *hi = h < nout ? h : nout;
    if (*hi < *lo) *hi = *lo;
}

typedef struct {
    int CIN, H, W, COUT, KH, KW, HO, WO, stride, pad;
} ConvShape;

/* Index into x[CIN,H,W] of (ci, ih = oh*stride - pad + kh, iw = -pad + kw): add
 * ow*stride for output column ow. May be negative; only in-range sums are used. */
static ptrdiff_t conv_offset(const ConvShape *s, int ci, int oh, int kh, int kw) {
    return ((ptrdiff_t)ci * s->H + (oh * s->stride - s->pad + kh)) * s->W + (kw - s->pad);
}

/* col[CIN*KH*KW, HO*WO]: col[(ci,kh,kw), (oh,ow)] = x[ci, oh*s-pad+kh, ow*s-pad+kw] or 0 */
static void im2col(float *col, const float *x, const ConvShape *s) {
    /* col[CKK, HO*WO], x[CIN,H,W] */
    size_t HOWO = (size_t)s->HO * s->WO;
    for (int ci = 0; ci < s->CIN; ci++)
        for (int kh = 0; kh < s->KH; kh++)
            for (int kw = 0; kw < s->KW; kw++) {
                float *row = col + ((size_t)(ci * s->KH + kh) * s->KW + kw) * HOWO;
                int oh0, oh1, ow0, ow1;
                conv_range(&oh0, &oh1, kh, s->H, s->stride, s->pad, s->HO);
                conv_range(&ow0, &ow1, kw, s->W, s->stride, s->pad, s->WO);
                /* zeros only where the tap falls in the padding */
                memset(row, 0, (size_t)oh0 * s->WO * sizeof(float));
                memset(row + (size_t)oh1 * s->WO, 0, (size_t)(s->HO - oh1) * s->WO * sizeof(float));
                for (int oh = oh0; oh < oh1; oh++) {
                    ptrdiff_t xo = conv_offset(s, ci, oh, kh, kw);
                    float *cr = row + (size_t)oh * s->WO;
                    for (int ow = 0; ow < ow0; ow++) cr[ow] = 0.0f;
                    for (int ow = ow0; ow < ow1; ow++) cr[ow] = x[xo + ow * s->stride];
                    for (int ow = ow1; ow < s->WO; ow++) cr[ow] = 0.0f;
                }
            }
}

/* The adjoint of im2col: dx[ci, ih, iw] += col[(ci,kh,kw), (oh,ow)] */
static void col2im_add(float *dx, const float *col, const ConvShape *s) {
    /* dx[CIN,H,W], col[CKK, HO*WO] */
    size_t HOWO = (size_t)s->HO * s->WO;
    for (int ci = 0; ci < s->CIN; ci++)
        for (int kh = 0; kh < s->KH; kh++)
            for (int kw = 0; kw < s->KW; kw++) {
                const float *row = col + ((size_t)(ci * s->KH + kh) * s->KW + kw) * HOWO;
                int oh0, oh1, ow0, ow1;
                conv_range(&oh0, &oh1, kh, s->H, s->stride, s->pad, s->HO);
                conv_range(&ow0, &ow1, kw, s->W, s->stride, s->pad, s->WO);
                for (int oh = oh0; oh < oh1; oh++) {
                    ptrdiff_t xo = conv_offset(s, ci, oh, kh, kw);
                    const float *cr = row + (size_t)oh * s->WO;
                    for (int ow = ow0; ow < ow1; ow++) dx[xo + ow * s->stride] += cr[ow];
                }
            }
}

/* A 1x1 convolution with stride 1 and no padding needs no im2col: col = x. */
static int conv_is_pointwise(const ConvShape *s) {
    return s->KH == 1 && s->KW == 1 && s->stride == 1 && s->pad == 0;
}

/* Convolutions split the batch over nt threads (ops_set_threads; OpenMP). Each
 * thread has its own im2col scratch. Weight and bias gradients are summed into
 * CONV_CHUNKS partials, one per fixed slice of the batch whatever nt is, and
 * added in slice order after the loop: every thread count (1 included) adds
 * the same numbers in the same order, so results do not depend on [train]
 * threads. Work is handed out dynamically (each unit writes only its own
 * outputs), so a thread the OS deschedules on a busy machine delays the
 * others by one unit, not by its whole static share. */
enum { CONV_CHUNKS = 8 };

/* Slices of a batch of N: min(N, CONV_CHUNKS); slice j is images [j*N/P, (j+1)*N/P). */
static int conv_chunks(int N) { return N < CONV_CHUNKS ? N : CONV_CHUNKS; }

/* out[n] = w[COUT,CKK] @ col(x[n]) + bias; col[nt][CKK,HO*WO] is scratch, or with
 * keep, col[N][CKK,HO*WO] keeps every image's col for the backward */
static void conv2d_forward(float *out, float *col, int keep, const float *x, const float *w,
                           const float *bias, int N, int nt, const ConvShape *s) {
    /* out[N,COUT,HO,WO], col[nt or N,CKK,HO*WO], x[N,CIN,H,W], w[COUT,CKK], bias[COUT] or NULL */
    int CKK = s->CIN * s->KH * s->KW, HOWO = s->HO * s->WO;
#pragma omp parallel for num_threads(nt) schedule(dynamic) if (nt > 1)
    for (int n = 0; n < N; n++) {
        const float *xn = x + (size_t)n * s->CIN * s->H * s->W;
        float *on = out + (size_t)n * s->COUT * HOWO;
        const float *cn = xn;
        if (!conv_is_pointwise(s)) {
            float *ct = col + (size_t)(keep ? n : omp_get_thread_num()) * CKK * HOWO;
            im2col(ct, xn, s);
            cn = ct;
        }
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, s->COUT, HOWO, CKK, 1.0f, w, CKK,
                    cn, HOWO, 0.0f, on, HOWO);
        if (bias)
            for (int co = 0; co < s->COUT; co++)
                for (int i = 0; i < HOWO; i++) on[(size_t)co * HOWO + i] += bias[co];
    }
}

/* dw += dout[n] @ col^T; dcol = w^T @ dout[n], then col2im into dx; dbias += sum dout.
 * col is recomputed per image (one image of scratch per thread instead of N),
 * unless kept[N,CKK,HO*WO] holds the forward's (then col is dcol's scratch).
 * part[P][COUT*CKK + COUT] (P = conv_chunks(N)) receives each slice's dw and dbias. */
static void conv2d_backward(float *dx, float *dw, float *dbias, float *pgw, float *pgb, double *psq,
                            float *col, const float *kept, float *part, const float *dout,
                            const float *x, const float *w, int N, int nt, const ConvShape *s) {
    /* dx[N,CIN,H,W], dw[COUT,CKK], dbias[COUT], col[nt,CKK,HO*WO] scratch,
     * part[P,COUT*CKK+COUT] scratch, dout[N,COUT,HO,WO], x[N,CIN,H,W],
     * w[COUT,CKK]; dx, dw, dbias may be NULL. Per example (DP-SGD, perex.h):
     * pgw[N,COUT*CKK] and pgb[N,COUT] (or NULL) receive each image's own
     * weight and bias gradient instead of dw and dbias, and psq[N] its squared
     * norm (perex_conv_sq), taken while the image's gradient is in cache. */
    int CKK = s->CIN * s->KH * s->KW, HOWO = s->HO * s->WO, pw = conv_is_pointwise(s);
    int P = conv_chunks(N), ntp = nt < P ? nt : P;
    size_t np = (size_t)s->COUT * CKK + s->COUT;
    if (dw || dbias) memset(part, 0, (size_t)P * np * sizeof(float)); /* per example: unused */
#pragma omp parallel for num_threads(ntp) schedule(dynamic) if (ntp > 1)
    for (int j = 0; j < P; j++) {
        float *ct = pw ? NULL : col + (size_t)omp_get_thread_num() * CKK * HOWO;
        float *dwt = part + (size_t)j * np, *dbt = dwt + (size_t)s->COUT * CKK;
        for (int n = j * N / P; n < (j + 1) * N / P; n++) {
            const float *xn = x + (size_t)n * s->CIN * s->H * s->W;
            const float *dn = dout + (size_t)n * s->COUT * HOWO;
            float *dbn = pgb ? pgb + (size_t)n * s->COUT : dbt;
            if (dbias || pgb)
                for (int co = 0; co < s->COUT; co++)
                    dbn[co] = (pgb ? 0.0f : dbn[co]) + row_sum(dn + (size_t)co * HOWO, HOWO);
            if (dw || pgw) {
                const float *cn = pw ? xn : kept ? kept + (size_t)n * CKK * HOWO : ct;
                if (!pw && !kept) im2col(ct, xn, s);
                cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, s->COUT, CKK, HOWO, 1.0f, dn,
                            HOWO, cn, HOWO, pgw ? 0.0f : 1.0f,
                            pgw ? pgw + (size_t)n * s->COUT * CKK : dwt, CKK);
            }
            if (pgw) psq[n] = perex_conv_sq(pgw + (size_t)n * s->COUT * CKK, pgb ? dbn : NULL, CKK,
                                            s->COUT);
            if (!dx) continue;
            float *dxn = dx + (size_t)n * s->CIN * s->H * s->W;
            cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, CKK, HOWO, s->COUT, 1.0f, w, CKK,
                        dn, HOWO, pw ? 1.0f : 0.0f, pw ? dxn : ct, HOWO);
            if (!pw) col2im_add(dxn, ct, s);
        }
    }
    for (int t = 0; t < P; t++) {
        const float *pt = part + (size_t)t * np;
        if (dw)
            for (size_t i = 0; i < (size_t)s->COUT * CKK; i++) dw[i] += pt[i];
        if (dbias)
            for (int co = 0; co < s->COUT; co++) dbias[co] += pt[(size_t)s->COUT * CKK + co];
    }
}

typedef struct {
    ConvShape s;
    float *col;  /* [nt, CKK, HO*WO] scratch (dwconv: [nt, 3, HP, WP]) */
    float *kept; /* DP-SGD: [N, CKK, HO*WO], every image's col from the forward, or NULL */
    float *part; /* [P, COUT*CKK + COUT] per-slice gradient partials (conv2d backward) */
    int nt;      /* threads over the batch */
    PerEx *pe;   /* the step's per-example collector (DP-SGD), or NULL */
} ConvCtx;

static void conv2d_bwd(TapeNode *nd) {
    Tensor *x = nd->in[0], *w = nd->in[1], *bias = nd->in[2];
    ConvCtx *k = nd->ctx;
    int N = x->shape[0], CKK = k->s.CIN * k->s.KH * k->s.KW;
    if (k->pe && w->grad) { /* DP-SGD: each image's weight gradient, kept (perex.h) */
        float *pgw = perex_alloc(k->pe, (size_t)N * k->s.COUT * CKK);
        float *pgb = bias ? perex_alloc(k->pe, (size_t)N * k->s.COUT) : NULL;
        double *psq = perex_alloc_sq(k->pe, N);
        conv2d_backward(x->grad, NULL, NULL, pgw, pgb, psq, k->col, k->kept, k->part, nd->out->grad,
                        x->data, w->data, N, k->nt, &k->s);
        perex_conv(k->pe, w, bias, pgw, pgb, psq, N, CKK, k->s.COUT);
        return;
    }
    conv2d_backward(x->grad, w->grad, bias ? bias->grad : NULL, NULL, NULL, NULL, k->col, NULL, k->part,
                    nd->out->grad, x->data, w->data, N, k->nt, &k->s);
}

/* Threads for a batch of N: ops_set_threads's count, at most N. */
static int conv_threads(int N) { return ops_num_threads < N ? ops_num_threads : N; }

static ConvShape conv_shape(const Tensor *x, const Tensor *w, const Tensor *bias, int stride,
                            int pad, const char *op) {
    ASSERT(x->ndim == 4 && w->ndim == 4, "%s: x and w must be 4-d (NCHW, OIHW)", op);
    ASSERT(stride >= 1 && pad >= 0, "%s: stride %d, pad %d", op, stride, pad);
    ConvShape s = {x->shape[1], x->shape[2], x->shape[3], w->shape[0], w->shape[2], w->shape[3],
                   0, 0, stride, pad};
    s.HO = (s.H + 2 * pad - s.KH) / stride + 1;
    s.WO = (s.W + 2 * pad - s.KW) / stride + 1;
    ASSERT(s.H + 2 * pad >= s.KH && s.W + 2 * pad >= s.KW, "%s: kernel %dx%d larger than input",
           op, s.KH, s.KW);
    ASSERT(!bias || bias->n == (size_t)s.COUT, "%s: bias must have %d elements", op, s.COUT);
    return s;
}

Tensor *ad_conv2d(Ctx *c, Tensor *x, Tensor *w, Tensor *bias, int stride, int pad) {
    if (c->precision) { /* AMP: cast(conv2d(cast(x), cast(w), cast(bias))), see ops.h */
        int f = c->precision;
        c->precision = 0;
        Tensor *out = ad_conv2d(c, ad_cast(c, x, f), ad_cast(c, w, f), ad_cast(c, bias, f), stride, pad);
        c->precision = f;
        return ad_cast(c, out, f);
    }
    ConvShape s = conv_shape(x, w, bias, stride, pad, "conv2d");
    ASSERT(w->shape[1] == s.CIN, "conv2d: w has %d input channels, x has %d", w->shape[1], s.CIN);
    int shape[4] = {x->shape[0], s.COUT, s.HO, s.WO};
    Tensor *in[3] = {x, w, bias};
    Tensor *out = ad_out(c, 4, shape, in, 3);
    ConvCtx *k = arena_alloc(&c->arena, sizeof *k);
    k->s = s;
    k->nt = conv_threads(x->shape[0]);
    size_t ckk = (size_t)s.CIN * s.KH * s.KW;
    k->col = conv_is_pointwise(&s)
                 ? NULL
                 : arena_alloc(&c->arena, (size_t)k->nt * ckk * s.HO * s.WO * sizeof(float));
    k->part = NULL;
    k->pe = c->pe;
    /* DP-SGD's backward takes each image's weight gradient from its col: the
     * forward keeps them (N images of col instead of nt) rather than the
     * backward recomputing them */
    int keep = c->pe && c->grad_enabled && out->grad && w->grad && !conv_is_pointwise(&s);
    k->kept = keep ? arena_alloc(&c->arena, (size_t)x->shape[0] * ckk * s.HO * s.WO * sizeof(float))
                   : NULL;
    conv2d_forward(out->data, keep ? k->kept : k->col, keep, x->data, w->data,
                   bias ? bias->data : NULL, x->shape[0], k->nt, &s);
    TapeNode *nd = tape_record(c, "conv2d", conv2d_bwd, out, in, 3);
    if (nd) {
        k->part = arena_alloc(&c->arena, (size_t)conv_chunks(x->shape[0]) *
                                             (s.COUT * ckk + s.COUT) * sizeof(float));
        nd->ctx = k;
    }
    return out;
}

/* ------------------------------------------------------------------------ */
/* depthwise convolution (groups = C), direct loops                         */
/* ------------------------------------------------------------------------ */

/* The plane x[H,W] copied into xp[HP,WP] (HP = H + 2*pad, WP = W + 2*pad) with a
 * zero border, so every tap of every output reads in range: no bounds in the loops. */
static void pad_plane(float *xp, const float *x, const ConvShape *s) {
    /* xp[HP,WP], x[H,W] */
    int WP = s->W + 2 * s->pad, HP = s->H + 2 * s->pad;
    memset(xp, 0, (size_t)s->pad * WP * sizeof(float));
    memset(xp + (size_t)(s->pad + s->H) * WP, 0, (size_t)(HP - s->pad - s->H) * WP * sizeof(float));
    for (int h = 0; h < s->H; h++) {
        float *row = xp + (size_t)(h + s->pad) * WP;
        for (int i = 0; i < s->pad; i++) row[i] = row[s->pad + s->W + i] = 0.0f;
        memcpy(row + s->pad, x + (size_t)h * s->W, (size_t)s->W * sizeof(float));
    }
}

/* One channel: out[HO,WO] += w[KH,KW] (*) xp (cross-correlation) on the padded
 * plane. For each output row the taps are axpys along the row (contiguous for
 * stride 1, so the compiler vectorizes them). */
static void dwconv_plane(float *restrict out, const float *restrict xp, const float *restrict w,
                         const ConvShape *s) {
    /* out[HO,WO], xp[HP,WP] (pad_plane), w[KH,KW] */
    int WP = s->W + 2 * s->pad, st = s->stride, WO = s->WO;
    for (int oh = 0; oh < s->HO; oh++) {
        float *restrict orow = out + (size_t)oh * WO;
        for (int kh = 0; kh < s->KH; kh++) {
            const float *xr = xp + (size_t)(oh * st + kh) * WP;
            for (int kw = 0; kw < s->KW; kw++) {
                float wv = w[kh * s->KW + kw];
                const float *xk = xr + kw;
                if (st == 1)
                    for (int ow = 0; ow < WO; ow++) orow[ow] += wv * xk[ow];
                else
                    for (int ow = 0; ow < WO; ow++) orow[ow] += wv * xk[ow * st];
            }
        }
    }
}

/* One channel's backward on padded planes: dxp += w-scattered dout (the
 * caller adds its interior into dx), dw += sum dout * xp (float sums per tap
 * over the plane). dxp or dw may be NULL. */
static void dwconv_plane_backward(float *restrict dxp, float *restrict dw,
                                  const float *restrict dout, const float *restrict xp,
                                  const float *restrict w, const ConvShape *s) {
    /* dxp[HP,WP] or NULL, dw[KH,KW] or NULL, dout[HO,WO], xp[HP,WP], w[KH,KW] */
    int WP = s->W + 2 * s->pad, st = s->stride, WO = s->WO, KK = s->KH * s->KW;
    float acc[64];
    ASSERT(KK <= 64, "dwconv2d: kernel %dx%d larger than 8x8", s->KH, s->KW);
    for (int t = 0; t < KK; t++) acc[t] = 0.0f;
    for (int oh = 0; oh < s->HO; oh++) {
        const float *restrict drow = dout + (size_t)oh * WO;
        for (int kh = 0; kh < s->KH; kh++) {
            size_t ro = (size_t)(oh * st + kh) * WP;
            for (int kw = 0; kw < s->KW; kw++) {
                const float *xk = xp + ro + kw;
                float wv = w[kh * s->KW + kw], a = 0.0f;
                if (dxp) {
                    float *dk = dxp + ro + kw;
                    if (st == 1)
                        for (int ow = 0; ow < WO; ow++) dk[ow] += wv * drow[ow];
                    else
                        for (int ow = 0; ow < WO; ow++) dk[ow * st] += wv * drow[ow];
                }
                if (dw) {
                    if (st == 1)
                        for (int ow = 0; ow < WO; ow++) a += drow[ow] * xk[ow];
                    else
                        for (int ow = 0; ow < WO; ow++) a += drow[ow] * xk[ow * st];
                    acc[kh * s->KW + kw] += a;
                }
            }
        }
    }
    if (dw)
        for (int t = 0; t < KK; t++) dw[t] += acc[t];
}

/* Stride 1 on the padded plane as one long 1-D correlation: with rows of the
 * padded width WP, output i = oh*WP + ow is sum_t w[t] * xp[i + kh*WP + kw],
 * so each tap is a single axpy over L = (HO-1)*WP + WO values (the WP - WO
 * columns past each row's end are computed and dropped). Long loops instead
 * of HO*KH*KW short ones: the shape of MobileNet's small planes. */
static void dwconv_plane_s1(float *restrict full, const float *restrict xp,
                            const float *restrict w, const ConvShape *s) {
    /* full[HO*WP] out (first L values written), xp[HP,WP], w[KH,KW] */
    int WP = s->W + 2 * s->pad;
    size_t L = (size_t)(s->HO - 1) * WP + s->WO;
    for (size_t i = 0; i < L; i++) full[i] = 0.0f;
    for (int kh = 0; kh < s->KH; kh++)
        for (int kw = 0; kw < s->KW; kw++) {
            const float *restrict xk = xp + (size_t)kh * WP + kw;
            float wv = w[kh * s->KW + kw];
            for (size_t i = 0; i < L; i++) full[i] += wv * xk[i];
        }
}

/* Its backward: dfull[HO*WP] holds dout in the padded-width layout (zero past
 * each row's end); dxp[i + off] += w * dfull[i], dw[t] += dot(dfull, xp + off). */
static void dwconv_plane_s1_backward(float *restrict dxp, float *restrict dw,
                                     const float *restrict dfull, const float *restrict xp,
                                     const float *restrict w, const ConvShape *s) {
    /* dxp[HP,WP] or NULL, dw[KH,KW] or NULL, dfull[HO*WP], xp[HP,WP], w[KH,KW] */
    int WP = s->W + 2 * s->pad;
    size_t L = (size_t)(s->HO - 1) * WP + s->WO;
    for (int kh = 0; kh < s->KH; kh++)
        for (int kw = 0; kw < s->KW; kw++) {
            size_t off = (size_t)kh * WP + kw;
            float wv = w[kh * s->KW + kw];
            if (dxp) {
                float *restrict dk = dxp + off;
                for (size_t i = 0; i < L; i++) dk[i] += wv * dfull[i];
            }
            if (dw) dw[kh * s->KW + kw] += row_dot(dfull, xp + off, L);
        }
}

static void dwconv2d_forward(float *out, float *scratch, const float *x, const float *w,
                             const float *bias, int N, int nt, const ConvShape *s) {
    /* out[N,C,HO,WO], scratch[nt,3,HP,WP], x[N,C,H,W], w[C,KH,KW], bias[C] or NULL */
    size_t HOWO = (size_t)s->HO * s->WO, HW = (size_t)s->H * s->W, KK = (size_t)s->KH * s->KW;
    int WP = s->W + 2 * s->pad, HP = s->H + 2 * s->pad;
    size_t planes = (size_t)N * s->CIN;
#pragma omp parallel for num_threads(nt) schedule(dynamic, 16) if (nt > 1)
    for (size_t p = 0; p < planes; p++) {
        int ch = (int)(p % (size_t)s->CIN);
        float *xp = scratch + (size_t)omp_get_thread_num() * 3 * HP * WP;
        float *full = xp + 2 * (size_t)HP * WP;
        float *o = out + p * HOWO;
        float b0 = bias ? bias[ch] : 0.0f;
        pad_plane(xp, x + p * HW, s);
        if (s->stride == 1) {
            dwconv_plane_s1(full, xp, w + ch * KK, s);
            for (int oh = 0; oh < s->HO; oh++)
                for (int ow = 0; ow < s->WO; ow++)
                    o[oh * s->WO + ow] = full[(size_t)oh * WP + ow] + b0;
            continue;
        }
        for (size_t i = 0; i < HOWO; i++) o[i] = b0;
        dwconv_plane(o, xp, w + ch * KK, s);
    }
}

/* Threads split the channels (each channel's dw and dbias belong to one thread). */
static void dwconv2d_backward(float *dx, float *dw, float *dbias, float *scratch,
                              const float *dout, const float *x, const float *w, int N, int nt,
                              const ConvShape *s) {
    /* dx[N,C,H,W], dw[C,KH,KW], dbias[C] (each may be NULL), scratch[nt,3,HP,WP],
     * dout[N,C,HO,WO], x[N,C,H,W], w[C,KH,KW] */
    size_t HOWO = (size_t)s->HO * s->WO, HW = (size_t)s->H * s->W, KK = (size_t)s->KH * s->KW;
    int WP = s->W + 2 * s->pad, HP = s->H + 2 * s->pad;
    int ntc = nt < s->CIN ? nt : s->CIN;
#pragma omp parallel num_threads(ntc) if (ntc > 1)
    {
        float *xp = scratch + (size_t)omp_get_thread_num() * 3 * HP * WP;
        float *dxp = xp + (size_t)HP * WP, *dfull = dxp + (size_t)HP * WP;
        if (s->stride == 1) memset(dfull, 0, (size_t)HP * WP * sizeof(float)); /* row ends stay 0 */
#pragma omp for schedule(dynamic)
        for (int ch = 0; ch < s->CIN; ch++)
            for (int n = 0; n < N; n++) {
                size_t p = (size_t)n * s->CIN + ch;
                const float *d = dout + p * HOWO;
                if (dbias) dbias[ch] += row_sum(d, HOWO);
                pad_plane(xp, x + p * HW, s);
                if (dx) memset(dxp, 0, (size_t)HP * WP * sizeof(float));
                if (s->stride == 1) {
                    for (int oh = 0; oh < s->HO; oh++)
                        memcpy(dfull + (size_t)oh * WP, d + (size_t)oh * s->WO,
                               (size_t)s->WO * sizeof(float));
                    dwconv_plane_s1_backward(dx ? dxp : NULL, dw ? dw + ch * KK : NULL, dfull, xp,
                                             w + ch * KK, s);
                } else {
                    dwconv_plane_backward(dx ? dxp : NULL, dw ? dw + ch * KK : NULL, d, xp,
                                          w + ch * KK, s);
                }
                if (!dx) continue;
                float *dxc = dx + p * HW;
                for (int h = 0; h < s->H; h++) {
                    const float *src = dxp + (size_t)(h + s->pad) * WP + s->pad;
                    float *dst = dxc + (size_t)h * s->W;
                    for (int i = 0; i < s->W; i++) dst[i] += src[i];
                }
            }
    }
}

static void dwconv2d_bwd(TapeNode *nd) {
    Tensor *x = nd->in[0], *w = nd->in[1], *bias = nd->in[2];
    ConvCtx *k = nd->ctx;
    dwconv2d_backward(x->grad, w->grad, bias ? bias->grad : NULL, k->col, nd->out->grad, x->data,
                      w->data, x->shape[0], k->nt, &k->s);
}

Tensor *ad_dwconv2d(Ctx *c, Tensor *x, Tensor *w, Tensor *bias, int stride, int pad) {
    if (c->precision) { /* AMP: cast(dwconv2d(cast(x), cast(w), cast(bias))), see ops.h */
        int f = c->precision;
        c->precision = 0;
        Tensor *out = ad_dwconv2d(c, ad_cast(c, x, f), ad_cast(c, w, f), ad_cast(c, bias, f), stride, pad);
        c->precision = f;
        return ad_cast(c, out, f);
    }
    ConvShape s = conv_shape(x, w, bias, stride, pad, "dwconv2d");
    ASSERT(s.COUT == s.CIN && w->shape[1] == 1, "dwconv2d: w must be [%d,1,KH,KW]", s.CIN);
    int shape[4] = {x->shape[0], s.CIN, s.HO, s.WO};
    Tensor *in[3] = {x, w, bias};
    Tensor *out = ad_out(c, 4, shape, in, 3);
    size_t plane = (size_t)(s.H + 2 * pad) * (size_t)(s.W + 2 * pad);
    ConvCtx *k = arena_alloc(&c->arena, sizeof *k);
    k->s = s;
    k->nt = conv_threads(x->shape[0] * s.CIN);
    k->part = NULL;
    /* per thread: padded x and dx planes, and the stride-1 output in padded-width rows */
    k->col = arena_alloc(&c->arena, (size_t)k->nt * 3 * plane * sizeof(float));
    dwconv2d_forward(out->data, k->col, x->data, w->data, bias ? bias->data : NULL, x->shape[0],
                     k->nt, &s);
    TapeNode *nd = tape_record(c, "dwconv2d", dwconv2d_bwd, out, in, 3);
    if (nd) nd->ctx = k;
    return out;
}

/* ------------------------------------------------------------------------ */
/* global average pooling                                                   */
/* ------------------------------------------------------------------------ */

static void avgpool_forward(float *out, const float *x, size_t NC, size_t S) {
    /* out[N*C], x[N*C, S] (S = H*W) */
    for (size_t p = 0; p < NC; p++) out[p] = row_sum(x + p * S, S) / (float)S;
}

static void avgpool_backward(float *dx, const float *dout, size_t NC, size_t S) {
    /* dx[N*C, S], dout[N*C] */
    for (size_t p = 0; p < NC; p++) {
        float g = dout[p] / (float)S;
        for (size_t i = 0; i < S; i++) dx[p * S + i] += g;
    }
}

static void avgpool_bwd(TapeNode *nd) {
    Tensor *x = nd->in[0];
    if (x->grad) avgpool_backward(x->grad, nd->out->grad, nd->out->n, x->n / nd->out->n);
}

/* out[n,c,oh,ow] = max of x[n,c, oh*s + i, ow*s + j] over i, j < k; arg[] keeps the
 * winner's index within the plane: the first maximum in row-major window order,
 * a NaN wins (torch's max_pool2d CPU kernel). */
static void maxpool_forward(float *restrict out, int *restrict arg, const float *restrict x,
                            size_t NC, int H, int W, int k, int stride, int HO, int WO) {
    /* out[NC,HO,WO], arg[NC,HO,WO], x[NC,H,W] */
    /* Each output row starts at its windows' first taps; the other taps are
     * then visited in the same row-major order, a whole output row at a time,
     * with a select instead of a branch (the compiler vectorizes it; the
     * branch on the data was mispredicted half the time): the same winner as
     * one window at a time. */
    for (size_t p = 0; p < NC; p++) {
        const float *xp = x + p * H * W;
        for (int oh = 0; oh < HO; oh++) {
            size_t o = (p * HO + oh) * WO;
            float *restrict om = out + o;
            int *restrict oa = arg + o;
            for (int ow = 0; ow < WO; ow++) {
                int at = oh * stride * W + ow * stride;
                om[ow] = xp[at], oa[ow] = at;
            }
            for (int i = 0; i < k; i++)
                for (int j = i == 0; j < k; j++) {
                    int at0 = (oh * stride + i) * W + j;
                    for (int ow = 0; ow < WO; ow++) {
                        int at = at0 + ow * stride;
                        float v = xp[at], m = om[ow];
                        int take = (v > m) | ((v != v) & (m == m)); /* a NaN wins */
                        om[ow] = take ? v : m;
                        oa[ow] = take ? at : oa[ow];
                    }
                }
        }
    }
}

static void maxpool_backward(float *dx, const float *dout, const int *arg, size_t NC, int HW,
                             int HOWO) {
    /* dx[NC,H*W], dout[NC,HO*WO], arg[NC,HO*WO] */
    for (size_t p = 0; p < NC; p++)
        for (int o = 0; o < HOWO; o++) dx[p * HW + arg[p * HOWO + o]] += dout[p * HOWO + o];
}

static void maxpool_bwd(TapeNode *nd) {
    Tensor *x = nd->in[0];
    if (x->grad)
        maxpool_backward(x->grad, nd->out->grad, nd->ctx, (size_t)x->shape[0] * x->shape[1],
                         x->shape[2] * x->shape[3], nd->out->shape[2] * nd->out->shape[3]);
}

Tensor *ad_maxpool2d(Ctx *c, Tensor *x, int k, int stride) {
    ASSERT(x->ndim == 4, "maxpool2d: x must be [N,C,H,W], got %d dims", x->ndim);
    ASSERT(k >= 1 && stride >= 1 && x->shape[2] >= k && x->shape[3] >= k,
           "maxpool2d: kernel %d, stride %d on %dx%d", k, stride, x->shape[2], x->shape[3]);
    int HO = (x->shape[2] - k) / stride + 1, WO = (x->shape[3] - k) / stride + 1;
    int shape[4] = {x->shape[0], x->shape[1], HO, WO};
    Tensor *out = ad_out(c, 4, shape, &x, 1);
    int *arg = arena_alloc(&c->arena, out->n * sizeof(int) + 1);
    maxpool_forward(out->data, arg, x->data, (size_t)x->shape[0] * x->shape[1], x->shape[2],
                    x->shape[3], k, stride, HO, WO);
    TapeNode *nd = tape_record(c, "maxpool2d", maxpool_bwd, out, &x, 1);
    if (nd) nd->ctx = arg;
    return out;
}

Tensor *ad_global_avgpool(Ctx *c, Tensor *x) {
    ASSERT(x->ndim == 4, "global_avgpool: x must be [N,C,H,W], got %d dims", x->ndim);
    int shape[2] = {x->shape[0], x->shape[1]};
    Tensor *out = ad_out(c, 2, shape, &x, 1);
    avgpool_forward(out->data, x->data, out->n, x->n / out->n);
    tape_record(c, "global_avgpool", avgpool_bwd, out, &x, 1);
    return out;
}

/* ------------------------------------------------------------------------ */
/* causal multi-head self-attention (Vaswani et al. 2017, eq. 1), the        */
/* packed-qkv layout of llm.c train_gpt2.c. Per (b, h): S = Q K^T / sqrt(hd) */
/* (sgemm), P = causal softmax(S) (saved), O = P V (sgemm).                 */
/* ------------------------------------------------------------------------ */

typedef struct {
    int B, T, C, NH, hd;
    int fmt; /* HalfFormat: AMP rounds S, P, dP and dS (fp32: nothing) */
} AttShape;

/* Row t of att: softmax over 0..t, zero after (the causal mask). */
static void causal_softmax_rows(float *att, int T) {
    /* att[T,T], scores in, probabilities out */
    for (int t = 0; t < T; t++) {
        float *row = att + (size_t)t * T;
        softmax_row(row, row, t + 1);
        for (int u = t + 1; u < T; u++) row[u] = 0.0f;
    }
}

/* The (b, h) pairs [u0, u1) of u = b * NH + h. */
static void attention_forward(float *out, float *att, const float *qkv, const AttShape *a,
                              int u0, int u1) {
    /* out[B,T,C], att[B,NH,T,T], qkv[B,T,3C] */
    int T = a->T, C = a->C, C3 = 3 * a->C, hd = a->hd;
    float scale = 1.0f / sqrtf((float)hd);
    for (int u = u0; u < u1; u++) {
        int b = u / a->NH, h = u % a->NH;
        const float *q = qkv + (size_t)b * T * C3 + h * hd;
        float *p = att + (size_t)u * T * T;
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, T, T, hd, scale, q, C3, q + C, C3,
                    0.0f, p, T);
        half_round(p, (size_t)T * T, a->fmt); /* S is a matmul output */
        causal_softmax_rows(p, T);           /* float32 (autocast's softmax) */
        half_round(p, (size_t)T * T, a->fmt); /* P cast for P V; saved as cast */
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, T, hd, T, 1.0f, p, T, q + 2 * C,
                    C3, 0.0f, out + (size_t)b * T * C + h * hd, C);
    }
}

/* dS = P * (dP - rowsum(P * dP)), in place over dP; zero above the diagonal. */
OPS_SIMD static void causal_softmax_backward(float *dp, const float *p, int T) {
    /* dp[T,T] (dP in, dS out), p[T,T] */
    for (int t = 0; t < T; t++) {
        float *d = dp + (size_t)t * T;
        const float *pr = p + (size_t)t * T;
        float df = row_dot(pr, d, (size_t)t + 1);
        for (int u = 0; u <= t; u++) d[u] = pr[u] * (d[u] - df);
        for (int u = t + 1; u < T; u++) d[u] = 0.0f;
    }
}

/* The (b, h) pairs [u0, u1): each writes only its own head's columns of
 * dqkv's rows of batch b, so pairs split over threads without sharing a sum. */
static void attention_backward(float *dqkv, float *dp, const float *dout, const float *qkv,
                               const float *att, const AttShape *a, int u0, int u1) {
    /* dqkv[B,T,3C], dp[T,T] scratch, dout[B,T,C], qkv[B,T,3C], att[B,NH,T,T] */
    int T = a->T, C = a->C, C3 = 3 * a->C, hd = a->hd;
    float scale = 1.0f / sqrtf((float)hd);
    for (int u = u0; u < u1; u++) {
        int b = u / a->NH, h = u % a->NH;
        size_t off = (size_t)b * T * C3 + h * hd;
        const float *q = qkv + off, *k = q + C, *v = q + 2 * C;
        float *dq = dqkv + off, *dk = dq + C, *dv = dq + 2 * C;
        const float *p = att + (size_t)u * T * T;
        const float *dO = dout + (size_t)b * T * C + h * hd;
        /* dP = dO V^T; dV += P^T dO */
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, T, T, hd, 1.0f, dO, C, v, C3, 0.0f,
                    dp, T);
        half_round(dp, (size_t)T * T, a->fmt); /* dP: gradient of a value in the format */
        cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, T, hd, T, 1.0f, p, T, dO, C, 1.0f,
                    dv, C3);
        causal_softmax_backward(dp, p, T);
        half_round(dp, (size_t)T * T, a->fmt); /* dS, likewise */
        /* dQ += scale dS K; dK += scale dS^T Q */
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, T, hd, T, scale, dp, T, k, C3,
                    1.0f, dq, C3);
        cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, T, hd, T, scale, dp, T, q, C3, 1.0f,
                    dk, C3);
    }
}

typedef struct {
    AttShape s;
    float *att; /* [B,NH,T,T] probabilities */
    float *dp;  /* [nt,T,T] backward scratch, one per thread */
    int nt;     /* threads over the B*NH (batch, head) pairs */
} AttCtx;

static void attention_bwd(TapeNode *nd) {
    Tensor *qkv = nd->in[0];
    AttCtx *k = nd->ctx;
    if (!qkv->grad) return;
    int nt = k->nt, units = k->s.B * k->s.NH;
    size_t TT = (size_t)k->s.T * (size_t)k->s.T;
    float *dq = qkv->grad, *dout = nd->out->grad;
    OPS_PARALLEL_CHUNKS((size_t)units, nt, 1,
                        attention_backward(dq, k->dp + (size_t)omp_get_thread_num() * TT, dout,
                                           qkv->data, k->att, &k->s, (int)lo, (int)hi));
}

Tensor *ad_attention(Ctx *c, Tensor *qkv, int n_head) {
    int fmt = c->precision;
    if (fmt) qkv = ad_cast(c, qkv, fmt); /* AMP: cast qkv and the output; S, P, dP, dS inside */
    ASSERT(qkv->ndim == 3 && qkv->shape[2] % 3 == 0, "attention: qkv must be [B,T,3C]");
    AttShape s = {qkv->shape[0], qkv->shape[1], qkv->shape[2] / 3, n_head, 0, fmt};
    ASSERT(n_head >= 1 && s.C % n_head == 0, "attention: C=%d not divisible by %d heads", s.C,
           n_head);
    s.hd = s.C / n_head;
    int shape[3] = {s.B, s.T, s.C}, units = s.B * s.NH;
    Tensor *out = ad_out(c, 3, shape, &qkv, 1);
    AttCtx *k = arena_alloc(&c->arena, sizeof *k);
    k->s = s;
    size_t TT = (size_t)s.T * (size_t)s.T;
    k->att = arena_alloc(&c->arena, (size_t)units * TT * sizeof(float));
    k->nt = OPS_WORK_THREADS((size_t)units * TT);
    if (k->nt > units) k->nt = units;
    float *o = out->data, *att = k->att;
    const float *q = qkv->data;
    OPS_PARALLEL_CHUNKS((size_t)units, k->nt, 1,
                        attention_forward(o, att, q, &s, (int)lo, (int)hi));
    TapeNode *nd = tape_record(c, "attention", attention_bwd, out, &qkv, 1);
    if (nd) {
        k->dp = arena_alloc(&c->arena, (size_t)k->nt * TT * sizeof(float));
        nd->ctx = k;
    }
    return fmt ? ad_cast(c, out, fmt) : out;
}

/* ------------------------------------------------------------------------ */
/* naive reference convolution                                              */
/* ------------------------------------------------------------------------ */

/* Direct loops, double accumulation. groups = 1: w[COUT,CIN,KH,KW];
 * groups = CIN (depthwise): w[C,1,KH,KW] with COUT = CIN. */
void ops_ref_conv2d(float *out, const float *x, const float *w, const float *bias, int N,
                    int CIN, int H, int W, int COUT, int KH, int KW, int stride, int pad,
                    int groups) {
    /* out[N,COUT,HO,WO], x[N,CIN,H,W], w as above, bias[COUT] or NULL */
    ASSERT(groups == 1 || (groups == CIN && COUT == CIN), "ref_conv2d: groups %d", groups);
    int HO = (H + 2 * pad - KH) / stride + 1, WO = (W + 2 * pad - KW) / stride + 1;
    int cpg = CIN / groups; /* input channels per group */
    for (int n = 0; n < N; n++)
        for (int co = 0; co < COUT; co++)
            for (int oh = 0; oh < HO; oh++)
                for (int ow = 0; ow < WO; ow++) {
                    double acc = bias ? bias[co] : 0.0;
                    int ci0 = groups == 1 ? 0 : co;
                    for (int j = 0; j < cpg; j++)
                        for (int kh = 0; kh < KH; kh++)
                            for (int kw = 0; kw < KW; kw++) {
                                int ih = oh * stride - pad + kh, iw = ow * stride - pad + kw;
                                if (ih < 0 || ih >= H || iw < 0 || iw >= W) continue;
                                acc += (double)x[(((size_t)n * CIN + ci0 + j) * H + ih) * W + iw] *
                                       w[(((size_t)co * cpg + j) * KH + kh) * KW + kw];
                            }
                    out[(((size_t)n * COUT + co) * HO + oh) * WO + ow] = (float)acc;
                }
}
