/* test_ops_nn.c: tests for src/ops_nn.c.
 *
 * 1. Finite-difference gradient checks (tests/gradcheck.h) of every op.
 * 2. conv2d and dwconv2d forward against the naive ops_ref_conv2d.
 * 3. Parity with PyTorch (tests/ref/ref_ops_nn.py): forward outputs and the
 *    gradients of (out * R).sum(); input gradients start at 1, so the test
 *    also sees that backward ADDS into them.
 * 4. Known values: cross-entropy of uniform logits is ln V.
 * Tolerances are stated where they are used. */
#include <criterion/criterion.h>
#include <math.h>
#include <string.h>

#include "ops.h"
#include "rng.h"
#include "tensor.h"
#include "gradcheck.h"
#include "tfile.h"

/* ---- 1. gradient checks ----
 * Central differences with eps 1e-2 on float32 ops: the pass criterion per
 * element is |analytic - numeric| <= 2e-3 + 1e-2 * |numeric| (float rounding
 * of L divided by 2 eps is ~1e-4; truncation eps^2 f'''/6 is ~1e-5). */
#define GC_EPS 1e-2
#define GC_ATOL 2e-3
#define GC_RTOL 1e-2

static Tensor *b_softmax(Ctx *c, Tensor **in, void *u) {
    (void)u;
    return ad_softmax(c, in[0]);
}
static Tensor *b_log_softmax(Ctx *c, Tensor **in, void *u) {
    (void)u;
    return ad_log_softmax(c, in[0]);
}
static Tensor *b_cross_entropy(Ctx *c, Tensor **in, void *u) {
    return ad_cross_entropy(c, in[0], u);
}
static Tensor *b_embedding(Ctx *c, Tensor **in, void *u) {
    return ad_embedding(c, in[0], u, 7);
}
static Tensor *b_layernorm(Ctx *c, Tensor **in, void *u) {
    (void)u;
    return ad_layernorm(c, in[0], in[1], in[2], 1e-5f);
}
static Tensor *b_avgpool(Ctx *c, Tensor **in, void *u) {
    (void)u;
    return ad_global_avgpool(c, in[0]);
}
static Tensor *b_attention(Ctx *c, Tensor **in, void *u) {
    return ad_attention(c, in[0], *(int *)u);
}

typedef struct {
    float rm[8], rv[8]; /* running buffers (updated on every call; scratch here) */
    int train;
} BnArgs;

static Tensor *b_batchnorm(Ctx *c, Tensor **in, void *u) {
    BnArgs *a = u;
    c->train = a->train;
    return ad_batchnorm(c, in[0], in[1], in[2], a->rm, a->rv, 0.1f, 1e-5f);
}

typedef struct {
    int stride, pad, depthwise;
} ConvArgs;

static Tensor *b_conv(Ctx *c, Tensor **in, void *u) {
    ConvArgs *a = u;
    if (a->depthwise) return ad_dwconv2d(c, in[0], in[1], in[2], a->stride, a->pad);
    return ad_conv2d(c, in[0], in[1], in[2], a->stride, a->pad);
}

static void gc_run(GcBuild f, Tensor **in, int nin, void *u, const char *what) {
    gradcheck(f, in, nin, u, GC_EPS, GC_ATOL, GC_RTOL, what);
    for (int i = 0; i < nin; i++) gc_free(in[i]);
}

Test(ops_nn_gradcheck, softmax_family) {
    Rng r;
    rng_seed(&r, 1, 1);
    Tensor *x = gc_input(2, (int[]){4, 6}, &r, 1.5f, 0.0f);
    gc_run(b_softmax, &x, 1, NULL, "softmax");
    x = gc_input(3, (int[]){2, 3, 5}, &r, 1.5f, 0.0f);
    gc_run(b_log_softmax, &x, 1, NULL, "log_softmax");
}

Test(ops_nn_gradcheck, cross_entropy_with_ignored_target) {
    Rng r;
    rng_seed(&r, 2, 1);
    int targets[5] = {2, -1, 0, 6, 2};
    Tensor *x = gc_input(2, (int[]){5, 7}, &r, 1.5f, 0.0f);
    gc_run(b_cross_entropy, &x, 1, targets, "cross_entropy");
}

Test(ops_nn_gradcheck, embedding_repeated_index) {
    Rng r;
    rng_seed(&r, 3, 1);
    int idx[7] = {3, 0, 3, 5, 3, 0, 1};
    Tensor *w = gc_input(2, (int[]){6, 4}, &r, 1.0f, 0.0f);
    gc_run(b_embedding, &w, 1, idx, "embedding");
}

Test(ops_nn_gradcheck, layernorm_all_inputs) {
    Rng r;
    rng_seed(&r, 4, 1);
    Tensor *in[3] = {gc_input(3, (int[]){2, 3, 8}, &r, 1.0f, 0.5f),
                     gc_input(1, (int[]){8}, &r, 0.5f, 1.0f), gc_input(1, (int[]){8}, &r, 1.0f, 0.0f)};
    gc_run(b_layernorm, in, 3, NULL, "layernorm");
}

Test(ops_nn_gradcheck, batchnorm_train_nchw) {
    Rng r;
    rng_seed(&r, 5, 1);
    BnArgs a = {{0}, {1, 1, 1, 1, 1, 1, 1, 1}, 1};
    Tensor *in[3] = {gc_input(4, (int[]){3, 2, 3, 3}, &r, 1.0f, 0.5f),
                     gc_input(1, (int[]){2}, &r, 0.5f, 1.0f), gc_input(1, (int[]){2}, &r, 1.0f, 0.0f)};
    gc_run(b_batchnorm, in, 3, &a, "batchnorm train [N,C,H,W]");
}

Test(ops_nn_gradcheck, batchnorm_train_nc) {
    Rng r;
    rng_seed(&r, 6, 1);
    BnArgs a = {{0}, {1, 1, 1, 1, 1, 1, 1, 1}, 1};
    Tensor *in[3] = {gc_input(2, (int[]){6, 3}, &r, 1.0f, 0.5f),
                     gc_input(1, (int[]){3}, &r, 0.5f, 1.0f), gc_input(1, (int[]){3}, &r, 1.0f, 0.0f)};
    gc_run(b_batchnorm, in, 3, &a, "batchnorm train [N,C]");
}

Test(ops_nn_gradcheck, batchnorm_eval) {
    Rng r;
    rng_seed(&r, 7, 1);
    BnArgs a = {{0.1f, -0.2f, 0.3f}, {0.8f, 1.3f, 0.6f}, 0};
    Tensor *in[3] = {gc_input(4, (int[]){2, 3, 2, 2}, &r, 1.0f, 0.5f),
                     gc_input(1, (int[]){3}, &r, 0.5f, 1.0f), gc_input(1, (int[]){3}, &r, 1.0f, 0.0f)};
    gc_run(b_batchnorm, in, 3, &a, "batchnorm eval");
}

Test(ops_nn_gradcheck, conv2d_stride2_pad1_bias) {
    Rng r;
    rng_seed(&r, 8, 1);
    ConvArgs a = {2, 1, 0};
    Tensor *in[3] = {gc_input(4, (int[]){2, 3, 7, 6}, &r, 1.0f, 0.0f),
                     gc_input(4, (int[]){4, 3, 3, 3}, &r, 0.5f, 0.0f), gc_input(1, (int[]){4}, &r, 1.0f, 0.0f)};
    gc_run(b_conv, in, 3, &a, "conv2d s2 p1 bias");
}

Test(ops_nn_gradcheck, conv2d_stride2_pad1_nobias) {
    Rng r;
    rng_seed(&r, 9, 1);
    ConvArgs a = {2, 1, 0};
    Tensor *in[3] = {gc_input(4, (int[]){2, 3, 7, 6}, &r, 1.0f, 0.0f),
                     gc_input(4, (int[]){4, 3, 3, 3}, &r, 0.5f, 0.0f), NULL};
    gc_run(b_conv, in, 2, &a, "conv2d s2 p1 no bias");
}

Test(ops_nn_gradcheck, conv2d_pointwise) {
    /* 1x1, stride 1, pad 0 skips im2col: its own code path */
    Rng r;
    rng_seed(&r, 10, 1);
    ConvArgs a = {1, 0, 0};
    Tensor *in[3] = {gc_input(4, (int[]){2, 4, 3, 5}, &r, 1.0f, 0.0f),
                     gc_input(4, (int[]){3, 4, 1, 1}, &r, 0.5f, 0.0f), gc_input(1, (int[]){3}, &r, 1.0f, 0.0f)};
    gc_run(b_conv, in, 3, &a, "conv2d 1x1");
}

Test(ops_nn_gradcheck, dwconv2d) {
    Rng r;
    rng_seed(&r, 11, 1);
    ConvArgs a = {2, 1, 1};
    Tensor *in[3] = {gc_input(4, (int[]){2, 3, 7, 6}, &r, 1.0f, 0.0f),
                     gc_input(4, (int[]){3, 1, 3, 3}, &r, 0.5f, 0.0f), gc_input(1, (int[]){3}, &r, 1.0f, 0.0f)};
    gc_run(b_conv, in, 3, &a, "dwconv2d s2 p1");
    ConvArgs a1 = {1, 1, 1};
    Tensor *in1[3] = {gc_input(4, (int[]){1, 2, 5, 4}, &r, 1.0f, 0.0f),
                      gc_input(4, (int[]){2, 1, 3, 3}, &r, 0.5f, 0.0f), NULL};
    gc_run(b_conv, in1, 2, &a1, "dwconv2d s1 p1 no bias");
}

Test(ops_nn_gradcheck, global_avgpool) {
    Rng r;
    rng_seed(&r, 12, 1);
    Tensor *x = gc_input(4, (int[]){2, 3, 3, 4}, &r, 1.0f, 0.0f);
    gc_run(b_avgpool, &x, 1, NULL, "global_avgpool");
}

Test(ops_nn_gradcheck, attention_2_heads) {
    Rng r;
    rng_seed(&r, 13, 1);
    int nh = 2;
    Tensor *x = gc_input(3, (int[]){2, 5, 3 * 8}, &r, 1.0f, 0.0f);
    gc_run(b_attention, &x, 1, &nh, "attention B2 T5 C8 NH2");
}

/* ---- 2. fast convolutions against the naive reference ---- */

static void conv_vs_ref(int N, int CIN, int H, int W, int COUT, int KH, int KW, int stride,
                        int pad, int depthwise, int bias) {
    Ctx c;
    ctx_init(&c, (size_t)64 << 20, 64);
    ctx_set_grad(&c, 0);
    Rng r;
    rng_seed(&r, (uint64_t)(N * 131 + CIN * 17 + KH * 5 + stride), 3);
    Tensor *x = tensor_new(&c, 4, (int[]){N, CIN, H, W}, 0);
    Tensor *w = tensor_new(&c, 4, (int[]){COUT, depthwise ? 1 : CIN, KH, KW}, 0);
    Tensor *b = bias ? tensor_new(&c, 1, &COUT, 0) : NULL;
    for (size_t i = 0; i < x->n; i++) x->data[i] = (float)rng_normal(&r);
    for (size_t i = 0; i < w->n; i++) w->data[i] = (float)rng_normal(&r);
    for (size_t i = 0; b && i < b->n; i++) b->data[i] = (float)rng_normal(&r);
    Tensor *y = depthwise ? ad_dwconv2d(&c, x, w, b, stride, pad) : ad_conv2d(&c, x, w, b, stride, pad);
    int HO = (H + 2 * pad - KH) / stride + 1, WO = (W + 2 * pad - KW) / stride + 1;
    cr_assert(y->ndim == 4 && y->shape[0] == N && y->shape[1] == COUT && y->shape[2] == HO &&
              y->shape[3] == WO, "output shape");
    float *ref = malloc(y->n * sizeof(float));
    ops_ref_conv2d(ref, x->data, w->data, b ? b->data : NULL, N, CIN, H, W, COUT, KH, KW, stride,
                   pad, depthwise ? CIN : 1);
    /* float32 sgemm / direct sums of <= 100 unit-variance terms vs double: 2e-5 abs + 1e-5 rel */
    assert_close(y->data, ref, y->n, 2e-5, 1e-5, "conv vs ops_ref_conv2d");
    free(ref);
    ctx_free(&c);
}

Test(ops_nn_ref, conv2d_odd_shapes) {
    conv_vs_ref(3, 5, 11, 9, 7, 3, 5, 2, 2, 0, 1);
    conv_vs_ref(2, 3, 13, 10, 4, 3, 3, 3, 1, 0, 0);
    conv_vs_ref(1, 2, 7, 7, 3, 7, 7, 1, 3, 0, 1);
    conv_vs_ref(2, 6, 5, 9, 5, 1, 1, 1, 0, 0, 1); /* pointwise path */
    conv_vs_ref(2, 6, 5, 9, 5, 1, 1, 2, 0, 0, 0); /* 1x1 stride 2 uses im2col */
}

Test(ops_nn_ref, dwconv2d_odd_shapes) {
    conv_vs_ref(3, 5, 11, 9, 5, 3, 3, 2, 1, 1, 1);
    conv_vs_ref(2, 7, 9, 13, 7, 5, 5, 1, 2, 1, 0);
    conv_vs_ref(1, 3, 8, 7, 3, 3, 5, 3, 2, 1, 1);
}

/* ---- 3. PyTorch parity ----
 * Tolerance: 1e-5 abs + 1e-4 rel (float32 on both sides, different summation
 * orders; the gradient-buffer preset of 1 adds at most 6e-8 of rounding). */
#define PT_ATOL 1e-5
#define PT_RTOL 1e-4

/* A tensor holding fixture data; with grad, its gradient buffer starts at 1. */
static Tensor *fx_tensor(Ctx *c, const TFile *tf, const char *op, const char *name, int grad) {
    char key[128];
    snprintf(key, sizeof key, "%s.%s", op, name);
    const TRec *rec = tfile_get(tf, key);
    cr_assert(rec->dtype == 0 && rec->ndim <= TENSOR_MAX_DIMS, "%s", key);
    Tensor *t = tensor_new(c, rec->ndim, rec->shape, grad);
    memcpy(t->data, rec->data, t->n * sizeof(float));
    for (size_t i = 0; grad && i < t->n; i++) t->grad[i] = 1.0f;
    return t;
}

/* Compare y with <op>.y, seed y->grad with <op>.R and walk the tape. */
static void fx_forward_backward(Ctx *c, const TFile *tf, const char *op, Tensor *y) {
    char key[128];
    snprintf(key, sizeof key, "%s.y", op);
    const TRec *rec = tfile_get(tf, key);
    cr_assert(rec->n == y->n, "%s: %zu elements, torch has %zu", key, y->n, rec->n);
    assert_close(y->data, rec->data, y->n, PT_ATOL, PT_RTOL, key);
    snprintf(key, sizeof key, "%s.R", op);
    cr_assert(y->grad, "%s: output has no gradient", op);
    memcpy(y->grad, tfile_f32(tf, key), y->n * sizeof(float));
    tape_backward(c);
}

/* Compare t->grad - 1 (the preset) with <op>.d<name>. */
static void fx_check_grad(const TFile *tf, const char *op, const char *name, const Tensor *t) {
    char key[128];
    snprintf(key, sizeof key, "%s.d%s", op, name);
    const TRec *rec = tfile_get(tf, key);
    cr_assert(rec->n == t->n, "%s size", key);
    float *g = malloc(t->n * sizeof(float));
    for (size_t i = 0; i < t->n; i++) g[i] = t->grad[i] - 1.0f;
    assert_close(g, rec->data, t->n, PT_ATOL, PT_RTOL, key);
    free(g);
}

typedef struct {
    Ctx c;
    TFile *tf;
} Fx;

static void fx_open(Fx *f) {
    ctx_init(&f->c, (size_t)64 << 20, 256);
    f->tf = tfile_load("ref_ops_nn");
}

static void fx_close(Fx *f) {
    tfile_free(f->tf);
    ctx_free(&f->c);
}

Test(ops_nn_torch, softmax_and_log_softmax) {
    Fx f;
    fx_open(&f);
    Tensor *x = fx_tensor(&f.c, f.tf, "softmax", "x", 1);
    fx_forward_backward(&f.c, f.tf, "softmax", ad_softmax(&f.c, x));
    fx_check_grad(f.tf, "softmax", "x", x);
    ctx_reset(&f.c);
    x = fx_tensor(&f.c, f.tf, "log_softmax", "x", 1);
    fx_forward_backward(&f.c, f.tf, "log_softmax", ad_log_softmax(&f.c, x));
    fx_check_grad(f.tf, "log_softmax", "x", x);
    fx_close(&f);
}

Test(ops_nn_torch, cross_entropy) {
    Fx f;
    fx_open(&f);
    Tensor *x = fx_tensor(&f.c, f.tf, "cross_entropy", "x", 1);
    const int *tgt = tfile_i32(f.tf, "cross_entropy.targets");
    fx_forward_backward(&f.c, f.tf, "cross_entropy", ad_cross_entropy(&f.c, x, tgt));
    fx_check_grad(f.tf, "cross_entropy", "x", x);
    fx_close(&f);
}

Test(ops_nn_torch, embedding) {
    Fx f;
    fx_open(&f);
    Tensor *w = fx_tensor(&f.c, f.tf, "embedding", "w", 1);
    const TRec *idx = tfile_get(f.tf, "embedding.idx");
    Tensor *y = ad_embedding(&f.c, w, tfile_i32(f.tf, "embedding.idx"), (int)idx->n);
    fx_forward_backward(&f.c, f.tf, "embedding", y);
    fx_check_grad(f.tf, "embedding", "w", w);
    fx_close(&f);
}

Test(ops_nn_torch, layernorm) {
    Fx f;
    fx_open(&f);
    Tensor *x = fx_tensor(&f.c, f.tf, "layernorm", "x", 1);
    Tensor *w = fx_tensor(&f.c, f.tf, "layernorm", "w", 1);
    Tensor *b = fx_tensor(&f.c, f.tf, "layernorm", "b", 1);
    fx_forward_backward(&f.c, f.tf, "layernorm", ad_layernorm(&f.c, x, w, b, 1e-5f));
    fx_check_grad(f.tf, "layernorm", "x", x);
    fx_check_grad(f.tf, "layernorm", "w", w);
    fx_check_grad(f.tf, "layernorm", "b", b);
    fx_close(&f);
}

/* BatchNorm forward/backward and the running buffers after the call. */
static void bn_parity(const char *op, int train) {
    Fx f;
    fx_open(&f);
    f.c.train = train;
    Tensor *x = fx_tensor(&f.c, f.tf, op, "x", 1);
    Tensor *w = fx_tensor(&f.c, f.tf, op, "w", 1);
    Tensor *b = fx_tensor(&f.c, f.tf, op, "b", 1);
    Tensor *rm = fx_tensor(&f.c, f.tf, op, "rm0", 0);
    Tensor *rv = fx_tensor(&f.c, f.tf, op, "rv0", 0);
    Tensor *y = ad_batchnorm(&f.c, x, w, b, rm->data, rv->data, 0.1f, 1e-5f);
    char key[128];
    snprintf(key, sizeof key, "%s.rm1", op);
    assert_close(rm->data, tfile_f32(f.tf, key), rm->n, PT_ATOL, PT_RTOL, key);
    snprintf(key, sizeof key, "%s.rv1", op);
    assert_close(rv->data, tfile_f32(f.tf, key), rv->n, PT_ATOL, PT_RTOL, key);
    fx_forward_backward(&f.c, f.tf, op, y);
    fx_check_grad(f.tf, op, "x", x);
    fx_check_grad(f.tf, op, "w", w);
    fx_check_grad(f.tf, op, "b", b);
    fx_close(&f);
}

Test(ops_nn_torch, batchnorm_train_nchw) { bn_parity("bn_train4", 1); }
Test(ops_nn_torch, batchnorm_train_nc) { bn_parity("bn_train2", 1); }
Test(ops_nn_torch, batchnorm_eval) { bn_parity("bn_eval4", 0); }

static void conv_parity(const char *op, int stride, int pad, int depthwise, int bias) {
    Fx f;
    fx_open(&f);
    Tensor *x = fx_tensor(&f.c, f.tf, op, "x", 1);
    Tensor *w = fx_tensor(&f.c, f.tf, op, "w", 1);
    Tensor *b = bias ? fx_tensor(&f.c, f.tf, op, "b", 1) : NULL;
    Tensor *y = depthwise ? ad_dwconv2d(&f.c, x, w, b, stride, pad)
                          : ad_conv2d(&f.c, x, w, b, stride, pad);
    fx_forward_backward(&f.c, f.tf, op, y);
    fx_check_grad(f.tf, op, "x", x);
    fx_check_grad(f.tf, op, "w", w);
    if (b) fx_check_grad(f.tf, op, "b", b);
    fx_close(&f);
}

Test(ops_nn_torch, conv2d) {
    conv_parity("conv_s2p1", 2, 1, 0, 1);
    conv_parity("conv_s2p1_nobias", 2, 1, 0, 0);
    conv_parity("conv_k3x5_s1p2", 1, 2, 0, 1);
    conv_parity("conv_1x1", 1, 0, 0, 0);
}

Test(ops_nn_torch, dwconv2d) {
    conv_parity("dwconv_s2p1", 2, 1, 1, 1);
    conv_parity("dwconv_s1p1_nobias", 1, 1, 1, 0);
}

Test(ops_nn_torch, global_avgpool) {
    Fx f;
    fx_open(&f);
    Tensor *x = fx_tensor(&f.c, f.tf, "avgpool", "x", 1);
    fx_forward_backward(&f.c, f.tf, "avgpool", ad_global_avgpool(&f.c, x));
    fx_check_grad(f.tf, "avgpool", "x", x);
    fx_close(&f);
}

static void attention_parity(const char *op, int n_head) {
    Fx f;
    fx_open(&f);
    Tensor *qkv = fx_tensor(&f.c, f.tf, op, "qkv", 1);
    fx_forward_backward(&f.c, f.tf, op, ad_attention(&f.c, qkv, n_head));
    fx_check_grad(f.tf, op, "qkv", qkv);
    fx_close(&f);
}

Test(ops_nn_torch, attention) {
    attention_parity("attention", 2);
    attention_parity("attention4", 4);
}

/* ---- 4. known values and recording rules ---- */

Test(ops_nn, cross_entropy_uniform_is_ln_v) {
    Ctx c;
    ctx_init(&c, (size_t)8 << 20, 16);
    const int V = 50, N = 6;
    int targets[6] = {0, 49, 7, -1, 7, 23};
    float levels[2] = {0.0f, 3.7f};
    for (int l = 0; l < 2; l++) {
        ctx_reset(&c);
        Tensor *x = tensor_new2(&c, N, V, 1);
        for (size_t i = 0; i < x->n; i++) x->data[i] = levels[l];
        Tensor *loss = ad_cross_entropy(&c, x, targets);
        cr_assert_float_eq(loss->data[0], logf((float)V), 1e-6, "level %g: loss %.9g, ln V %.9g",
                           (double)levels[l], (double)loss->data[0], log(V));
        /* d loss / d logit = (1/V - onehot) / (non-ignored count = 5); 0 on ignored rows */
        ad_backward(&c, loss, 1.0f);
        for (int r = 0; r < N; r++)
            for (int j = 0; j < V; j++) {
                float want = targets[r] < 0 ? 0.0f : (1.0f / V - (j == targets[r])) / 5.0f;
                cr_assert_float_eq(x->grad[r * V + j], want, 1e-7, "grad[%d,%d]", r, j);
            }
    }
    ctx_free(&c);
}

Test(ops_nn, cross_entropy_all_ignored_is_nan_like_torch) {
    Ctx c;
    ctx_init(&c, (size_t)1 << 20, 16);
    Tensor *x = tensor_new2(&c, 2, 3, 1);
    int targets[2] = {-1, -1};
    Tensor *loss = ad_cross_entropy(&c, x, targets);
    cr_assert(isnan(loss->data[0]));
    ad_backward(&c, loss, 1.0f);
    for (size_t i = 0; i < x->n; i++) cr_assert(x->grad[i] == 0.0f);
    ctx_free(&c);
}

Test(ops_nn, no_grad_mode_records_nothing) {
    Ctx c;
    ctx_init(&c, (size_t)8 << 20, 16);
    ctx_set_grad(&c, 0);
    Tensor *x = tensor_new(&c, 4, (int[]){2, 3, 4, 4}, 1);
    Tensor *w = tensor_new(&c, 4, (int[]){3, 3, 3, 3}, 1);
    Tensor *dw = tensor_new(&c, 4, (int[]){3, 1, 3, 3}, 1);
    Tensor *g = tensor_new(&c, 1, (int[]){3}, 1);
    Tensor *qkv = tensor_new(&c, 3, (int[]){1, 4, 12}, 1);
    Tensor *g12 = tensor_new(&c, 1, (int[]){12}, 1);
    float rm[3] = {0}, rv[3] = {1, 1, 1};
    Tensor *outs[6] = {ad_conv2d(&c, x, w, NULL, 1, 1), ad_dwconv2d(&c, x, dw, g, 1, 1),
                       ad_batchnorm(&c, x, g, g, rm, rv, 0.1f, 1e-5f), ad_global_avgpool(&c, x),
                       ad_attention(&c, qkv, 2), ad_layernorm(&c, qkv, g12, g12, 1e-5f)};
    cr_assert(c.nnodes == 0, "%zu nodes recorded in no-grad mode", c.nnodes);
    for (int i = 0; i < 6; i++) cr_assert(outs[i]->grad == NULL, "output %d has a gradient", i);
    ctx_free(&c);
}
