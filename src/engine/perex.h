/* perex.h: per-example gradients of the weights of ad_linear and ad_conv2d,
 * taken from the one batched backward (no backward per example): what DP-SGD
 * needs to clip each example's gradient (Abadi et al. 2016), as Opacus's
 * GradSampleModule computes them, without its hooks.
 *
 * While a PerEx is attached to the step's Ctx (perex_attach before the
 * forward), ad_linear and ad_conv2d do not add their weight and bias
 * gradients into the parameters during backward. They hand this module what
 * each example's gradient is made of, and the module adds the example's
 * squared L2 norm over that layer into sq[i]:
 *  - linear, x[B,T,IN] (T = 1 for x[B,IN]), dout[B,T,OUT]: example i's weight
 *    gradient is G_i = sum_t g_it a_it^T. For T = 1 its norm is ||g_i|| ||a_i||
 *    (Goodfellow 2015); for T > 1, ||G_i||^2 = <A_i A_i^T, G_i G_i^T> (Li et
 *    al. 2021's ghost norm), never forming G_i. Bias: ||sum_t g_it||^2.
 *  - conv2d: G_i = dout_i[COUT,HO*WO] @ col_i^T[HO*WO,CKK] is formed (one
 *    small sgemm per example, the same flops as the batched weight gradient,
 *    which it replaces), kept in the arena for the weighted sum; bias: the
 *    per-channel sums of dout_i.
 * After backward, perex_weighted_sum(f) adds sum_i f_i G_i into each
 * parameter's gradient (linear: one sgemm of the rows of dout scaled by f;
 * conv: the kept G_i summed in example order). With f_i = min(1, C/||g_i||)
 * that is DP-SGD's sum of clipped gradients (train/dp.c decides f).
 *
 * Every sum runs in a fixed order (examples in order, layers in backward
 * order), whatever the thread count. A parameter that reaches the loss through
 * any other op (embedding, layernorm, batchnorm, attention, matmul) would
 * still receive an ordinary summed gradient: the caller checks that none did
 * (dp.c refuses the run, naming the tensor). The Tensor grads of the inputs
 * x are computed as usual (the backward continues through them). */
#ifndef CLIPLAB_PEREX_H
#define CLIPLAB_PEREX_H

#include "tensor.h"

typedef struct PerExLayer {
    Tensor *w, *b;                /* the layer's weight and bias (b may be NULL) */
    int conv;                     /* 0 linear, 1 conv2d */
    int T, IN, OUT;               /* linear: x[B,T,IN], dout[B,T,OUT]; conv: IN = CKK, OUT = COUT */
    const float *x, *dout;        /* linear: kept for the weighted sum (arena tensors) */
    const float *gw, *gb;         /* conv: [B, OUT*IN] and [B, OUT] per-example gradients */
} PerExLayer;

typedef struct PerEx {
    int B;                        /* examples in this step's batch; -1 before the first layer */
    double *sq;                   /* [B] squared per-example norms over every layer (arena) */
    PerExLayer *layers;
    int n, cap;
    Arena *arena;                 /* the step Ctx's */
} PerEx;

/* Attach pe to c for the next forward/backward (c->pe = pe), empty. */
void perex_attach(PerEx *pe, Ctx *c, int max_layers);
void perex_detach(PerEx *pe, Ctx *c);
void perex_free(PerEx *pe);
/* The batch size the layers saw (0 when no layer was recorded: an empty batch). */
int perex_batch(const PerEx *pe);
/* sum_i f[i] G_i (f[B]) added into every recorded layer's w->grad and b->grad. */
void perex_weighted_sum(const PerEx *pe, const float *f);

/* For the ops (ops_core.c, ops_nn.c), from their backward: */
/* linear: x[R,IN] with R = B*T rows, dout[R,OUT]; B = the leading dim of x. */
void perex_linear(PerEx *pe, Tensor *w, Tensor *b, const float *x, const float *dout, int B, int T,
                  int IN, int OUT);
/* conv2d: per-example gradients gw[B, COUT*CKK], gb[B, COUT] (gb NULL: no bias),
 * allocated with perex_alloc and filled by the op, and sq[B] their squared
 * norms, each from perex_conv_sq (the op takes them per example while the
 * example's gradient is in cache, on whichever thread made it). */
void perex_conv(PerEx *pe, Tensor *w, Tensor *b, const float *gw, const float *gb, const double *sq,
                int B, int CKK, int COUT);
/* ||gw_i||^2 + ||gb_i||^2 of one example (gw_i[COUT*CKK], gb_i[COUT] or NULL), in double. */
double perex_conv_sq(const float *gw_i, const float *gb_i, int CKK, int COUT);
float *perex_alloc(PerEx *pe, size_t n);
double *perex_alloc_sq(PerEx *pe, int B);

#endif
