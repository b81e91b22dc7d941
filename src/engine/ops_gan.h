/* ops_gan.h: the two ops the WGAN-GP critic loss needs on top of ops.h, so
 * that the gradient of the critic with respect to its input is built from tape
 * ops and its own gradient with respect to the critic's weights is exact
 * (double backward by construction, as torch.autograd.grad(create_graph=True)).
 *
 * For an MLP critic D(x) = W_L relu(... relu(W_1 x + b_1) ...) + b_L the input
 * gradient of sum_i D(x_i) is the backward pass written forward:
 *   g_L = 1 W_L;  g_{l-1} = relu_grad(g_l, z_l) W_l;  dD/dx = g_0
 * with z_l the pre-activations. ad_matmul carries the weight gradients;
 * ad_relu_grad is the ReLU backward as an op; ad_gradient_penalty is the
 * penalty of Gulrajani et al. (2017), eq. 3.
 *
 * Dimension legend: N rows, K features. Implemented in ops_gan.c. */
#ifndef CLIPLAB_OPS_GAN_H
#define CLIPLAB_OPS_GAN_H

#include "tensor.h"

/* out = g * (z > 0): the ReLU backward as a differentiable op of g (same
 * shapes). z receives no gradient: the second derivative of ReLU is zero
 * almost everywhere (torch's threshold_backward double backward does the same). */
Tensor *ad_relu_grad(Ctx *c, Tensor *g, Tensor *z);

/* g[N,K] -> [1] = mean_i (||g_i||_2 - 1)^2, the WGAN-GP penalty (Gulrajani et
 * al. 2017, eq. 3) on per-example input gradients g_i. A row with norm 0 gets
 * gradient 0 (torch's sqrt backward would give NaN there). */
Tensor *ad_gradient_penalty(Ctx *c, Tensor *g);

/* Kernels, exported for the tests and the benchmark. */
/* out[n] = g[n] * (z[n] > 0) */
void ops_relu_grad_forward(float *out, const float *g, const float *z, size_t n);
/* norms[N] = ||g_i||; returns mean_i (norms_i - 1)^2 (double accumulation) */
double ops_gradient_penalty_forward(float *norms, const float *g, int N, int K);

#endif
