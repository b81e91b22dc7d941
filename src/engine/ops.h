/* ops.h: the differentiable ops every model is built from.
 *
 * Dimension legend: B batch, T time, C channels/features, V vocab, H hidden,
 * N rows (any leading dims flattened), K inner dim, OUT/IN linear sizes,
 * KH/KW kernel size, NH heads.
 *
 * Every op takes the step Ctx, allocates its output in the arena (ad_out),
 * computes the forward with a plain kernel over raw pointers, and records a
 * tape node whose backward ADDS into the inputs' gradients (never overwrites).
 * Inputs without a gradient (data, targets) are simply not differentiated.
 * Shape errors are bugs: ASSERT with a message.
 *
 * Implemented in ops_core.c (linear algebra, elementwise, reductions, shapes,
 * MSE, gather) and ops_nn.c (softmax family, cross-entropy, embedding, norms,
 * convolutions, pooling, attention). Naive reference kernels at the bottom are
 * what the tests hold the fast ones against. */
#ifndef CLIPLAB_OPS_H
#define CLIPLAB_OPS_H

#include "tensor.h"

/* ---- mixed precision (AMP; torch autocast, Micikevicius et al. 2018) ----
 * When c->precision is fp16 or bf16 (half.h), the matrix-product ops (matmul,
 * linear, conv2d, dwconv2d, attention) cast their inputs to the format,
 * accumulate in float32 and cast their output: out = cast(op(cast(x), cast(w))).
 * Everything else (softmax, norms, losses, exp/log, reductions, elementwise)
 * runs in float32 on whatever it is given. A cast's backward rounds the
 * gradient arriving at its output (a gradient of a value in the format is in
 * the format), so activation gradients underflow and overflow where a GPU's
 * would, and a weight's gradient reaches its float32 master gradient rounded.
 * With c->precision = 0 (fp32) no cast is recorded: the numbers are unchanged. */
/* out = x rounded to fmt (HalfFormat); backward: dx += round(dout) */
Tensor *ad_cast(Ctx *c, Tensor *x, int fmt);

/* ---- linear algebra (cblas_sgemm) ---- */
/* a[M,K] @ b[K,N] -> [M,N] */
Tensor *ad_matmul(Ctx *c, Tensor *a, Tensor *b);
/* x[..., IN] @ w[OUT,IN]^T + bias[OUT] -> [..., OUT]; bias may be NULL.
 * PyTorch nn.Linear layout (so AGC units = rows of w). */
Tensor *ad_linear(Ctx *c, Tensor *x, Tensor *w, Tensor *bias);
/* c[M,N] (row-major, ldc) = alpha op(a) op(b) + beta c, as one cblas_sgemm
 * call, on nt threads each taking a block of c's rows cut at multiples of 12:
 * byte-identical to the whole call with the pinned kernel (ops_core.c says
 * why). op(a)[M,K] is a[M,lda] or (trans_a) a[K,lda]^T; op(b)[K,N] is
 * b[K,ldb] or (trans_b) b[N,ldb]^T. */
void ops_sgemm_rows(int nt, int trans_a, int trans_b, int M, int N, int K, float alpha,
                    const float *a, int lda, const float *b, int ldb, float beta, float *c,
                    int ldc);
/* Threads for such a call: 1 unless the kernel is pinned, [train] threads > 1
 * and the product is big enough to pay for waking them. */
int ops_sgemm_row_threads(int M, int N, int K);
/* 1 if rows lo .. hi-1 of an M-row product, computed as a product of their
 * own, get the whole call's bits (the pinned kernel and cuts at multiples of
 * 12, as ops_sgemm_rows): PPO's ranks then run the policy on their own rows. */
int ops_sgemm_rows_exact(int lo, int hi, int M);

/* ---- elementwise, with bias broadcast ----
 * b has the same shape as a, or b matches a's trailing dims (b->n divides a->n,
 * e.g. a[B,T,C] + b[C]), or b is a single element. Output has a's shape. */
Tensor *ad_add(Ctx *c, Tensor *a, Tensor *b);
Tensor *ad_sub(Ctx *c, Tensor *a, Tensor *b);
Tensor *ad_mul(Ctx *c, Tensor *a, Tensor *b);
/* elementwise minimum of two same-shape tensors (PPO's min(surr1, surr2));
 * ties send the gradient to a. */
Tensor *ad_minimum(Ctx *c, Tensor *a, Tensor *b);
Tensor *ad_scale(Ctx *c, Tensor *x, float s);           /* s * x */
Tensor *ad_add_scalar(Ctx *c, Tensor *x, float s);      /* x + s */
Tensor *ad_exp(Ctx *c, Tensor *x);
Tensor *ad_log(Ctx *c, Tensor *x);                      /* natural log, x > 0 */

/* ---- activations (activation clipping lives here: relu6, clamp) ---- */
Tensor *ad_tanh(Ctx *c, Tensor *x);
Tensor *ad_sigmoid(Ctx *c, Tensor *x);
Tensor *ad_relu(Ctx *c, Tensor *x);
/* min(max(0, x), 6) (Krizhevsky 2010); gradient 1 on (0, 6), 0 elsewhere,
 * matching torch.nn.ReLU6 (hardtanh backward: zero at the kinks). */
Tensor *ad_relu6(Ctx *c, Tensor *x);
/* min(max(x, lo), hi); gradient 1 where lo <= x <= hi (torch.clamp). */
Tensor *ad_clamp(Ctx *c, Tensor *x, float lo, float hi);
/* GELU, tanh approximation (Hendrycks & Gimpel 2016; torch approximate='tanh'). */
Tensor *ad_gelu(Ctx *c, Tensor *x);

/* ---- reductions ---- */
Tensor *ad_sum(Ctx *c, Tensor *x);                      /* -> [1] */
Tensor *ad_mean(Ctx *c, Tensor *x);                     /* -> [1] */
Tensor *ad_sum_last(Ctx *c, Tensor *x);                 /* [..., C] -> [...] ([C] -> [1]) */

/* ---- softmax family and losses (over the last dim) ---- */
Tensor *ad_softmax(Ctx *c, Tensor *x);
Tensor *ad_log_softmax(Ctx *c, Tensor *x);
/* Mean cross-entropy from logits[N,V] (leading dims flattened into N) against
 * targets[N] in [0, V); a target of -1 is ignored (torch ignore_index=-1).
 * Fused log-softmax for stability. -> [1] */
Tensor *ad_cross_entropy(Ctx *c, Tensor *logits, const int *targets);
/* mean((pred - target)^2) over all elements; same shapes. -> [1] */
Tensor *ad_mse(Ctx *c, Tensor *pred, Tensor *target);
/* x[N,K] -> out[i] = x[i, idx[i]] -> [N] */
Tensor *ad_gather(Ctx *c, Tensor *x, const int *idx);

/* ---- embedding and normalisation ---- */
/* w[V,C], idx[n] in [0, V) -> [n, C] (reshape the result as needed) */
Tensor *ad_embedding(Ctx *c, Tensor *w, const int *idx, int n);
/* LayerNorm over the last dim C with affine w[C], b[C] (biased variance, as torch). */
Tensor *ad_layernorm(Ctx *c, Tensor *x, Tensor *w, Tensor *b, float eps);
/* BatchNorm over x[N,C,H,W] (or x[N,C]) per channel with affine w[C], b[C].
 * c->train: normalise with batch statistics (biased var) and update the running
 * buffers: running = (1-momentum)*running + momentum*batch, with the UNBIASED
 * batch variance (torch semantics). !c->train: normalise with the running buffers. */
Tensor *ad_batchnorm(Ctx *c, Tensor *x, Tensor *w, Tensor *b, float *running_mean,
                     float *running_var, float momentum, float eps);

/* ---- convolution and pooling (NCHW) ---- */
/* x[N,CIN,H,W] * w[COUT,CIN,KH,KW] + bias[COUT] -> [N,COUT,HO,WO] via im2col + sgemm;
 * HO = (H + 2*pad - KH)/stride + 1. bias may be NULL. */
Tensor *ad_conv2d(Ctx *c, Tensor *x, Tensor *w, Tensor *bias, int stride, int pad);
/* depthwise: x[N,C,H,W] * w[C,1,KH,KW] + bias[C] (groups = C). */
Tensor *ad_dwconv2d(Ctx *c, Tensor *x, Tensor *w, Tensor *bias, int stride, int pad);
Tensor *ad_global_avgpool(Ctx *c, Tensor *x);           /* [N,C,H,W] -> [N,C] */
/* max over k x k windows every `stride` pixels, no padding (torch max_pool2d):
 * [N,C,H,W] -> [N,C,(H-k)/stride+1,(W-k)/stride+1]; the gradient goes to the
 * first maximum of each window. */
Tensor *ad_maxpool2d(Ctx *c, Tensor *x, int k, int stride);

/* ---- attention ---- */
/* Multi-head causal self-attention on packed qkv[B,T,3C] (q, k, v each C =
 * NH * hd, heads contiguous within each) -> [B,T,C]; scores scaled by
 * 1/sqrt(hd), position t attends to 0..t. No output projection (use ad_linear). */
Tensor *ad_attention(Ctx *c, Tensor *qkv, int n_head);

/* ---- shapes ---- */
/* Same data, no gradient: the stop-gradient (torch's x.detach()). Nothing
 * downstream of the result flows back into x. */
Tensor *ad_detach(Ctx *c, Tensor *x);
/* Same data and gradient, new shape (no copy, no tape node). */
Tensor *ad_reshape(Ctx *c, Tensor *x, int ndim, const int *shape);
/* Rows [start, start+count) along dim 0: a view sharing data and gradient. */
Tensor *ad_slice_rows(Ctx *c, Tensor *x, int start, int count);
/* Columns [start, start+len) of the last dim: a copy [..., len]. */
Tensor *ad_slice_cols(Ctx *c, Tensor *x, int start, int len);
/* Concatenate k tensors along the last dim (all other dims equal). */
Tensor *ad_concat_cols(Ctx *c, Tensor *const *xs, int k);
/* Concatenate k tensors along dim 0 (all other dims equal). */
Tensor *ad_concat_rows(Ctx *c, Tensor *const *xs, int k);

/* ---- naive references (tests hold the fast kernels against these) ---- */
/* out[M,N] = a[M,K] @ b[K,N], triple loop, double accumulation */
void ops_ref_matmul(float *out, const float *a, const float *b, int M, int K, int N);
/* direct convolution, double accumulation; groups = 1 or CIN (depthwise, w[C,1,KH,KW]) */
void ops_ref_conv2d(float *out, const float *x, const float *w, const float *bias, int N,
                    int CIN, int H, int W, int COUT, int KH, int KW, int stride, int pad,
                    int groups);

/* ---- activation clipping with a learned level, and fake quantisation (ops_act.c) ---- */
/* PACT (Choi et al. 2018): clip(x, 0, alpha) with a learned alpha[1]; gradient to x
 * on the open (0, alpha), to alpha where x >= alpha (summed). */
Tensor *ad_pact(Ctx *c, Tensor *x, Tensor *alpha);
/* Uniform unsigned fake quantisation to `bits` over [0, hi] (torch
 * fake_quantize_per_tensor_affine, scale hi/(2^bits-1), zero point 0), with its
 * straight-through gradient (1 where the unclamped code is in [0, 2^bits-1]). */
Tensor *ad_fake_quant(Ctx *c, Tensor *x, float hi, int bits);
/* The kernels, for callers working on raw buffers (evaluation). */
void act_pact_forward(float *out, const float *x, float alpha, size_t n);
void act_pact_backward(float *dx, float *dalpha, const float *x, const float *dout, float alpha,
                       size_t n);
void act_fake_quant_forward(float *out, const float *x, float hi, int bits, size_t n);
/* Threads the kernels split their work over (OpenMP; default 1; the trainer
 * sets [train] threads): conv2d / dwconv2d the batch, batchnorm channels,
 * linear rows (sgemm on each block), attention (batch, head) pairs, layernorm,
 * softmax and cross-entropy rows, elementwise ops and the optimizer step
 * elements (ops_kernel.h). Every split keeps each sum in one fixed order, so
 * the numbers do not depend on it. Also sets OpenBLAS to one thread: these
 * threads call sgemm, and OpenBLAS's own would oversubscribe the cores. */
extern int ops_num_threads;
/* Threads for an elementwise pass over n values: 1 below 64k of them. */
#define OPS_ELEM_THREADS(n) ((n) >= ((size_t)1 << 16) ? ops_num_threads : 1)
void ops_set_threads(int n);
/* Largest element of x[n] (NaN if any is NaN): the activation-range metric. */
float act_max(const float *x, size_t n);

#endif
