/* ops_gan.c: ad_relu_grad and ad_gradient_penalty (see ops_gan.h): forward and
 * backward kernels over raw pointers and their tape wrappers. Backward kernels
 * ADD into gradients. The critic MLP and its input-gradient chain are in
 * models/wgan.c; everything else comes from ops.h.
 *
 * Dimension legend: N rows (examples), K features (input dimensions). */
#include "ops_gan.h"

#include <math.h>
#include <string.h>

#include "common.h"

/* ------------------------------------------------------------ relu_grad */

void ops_relu_grad_forward(float *restrict out, const float *restrict g,
                           const float *restrict z, size_t n) {
    for (size_t i = 0; i < n; i++) out[i] = z[i] > 0.0f ? g[i] : 0.0f;
}

/* dg[n] += dout[n] * (z[n] > 0) */
static void relu_grad_backward(float *restrict dg, const float *restrict dout,
                               const float *restrict z, size_t n) {
    for (size_t i = 0; i < n; i++) dg[i] += z[i] > 0.0f ? dout[i] : 0.0f;
}

static void relu_grad_bw(TapeNode *nd) {
    Tensor *g = nd->in[0], *z = nd->in[1];
    if (g->grad) relu_grad_backward(g->grad, nd->out->grad, z->data, g->n);
}

Tensor *ad_relu_grad(Ctx *c, Tensor *g, Tensor *z) {
    ASSERT(tensor_same_shape(g, z), "relu_grad: g and z shapes differ (%zu vs %zu elements)",
           g->n, z->n);
    /* only g is differentiated: z enters through a step function */
    Tensor *out = ad_out(c, g->ndim, g->shape, &g, 1);
    ops_relu_grad_forward(out->data, g->data, z->data, g->n);
    Tensor *in[2] = {g, z};
    tape_record(c, "relu_grad", relu_grad_bw, out, in, 2);
    return out;
}

/* ---------------------------------------------------- gradient penalty */

double ops_gradient_penalty_forward(float *norms, const float *g, int N, int K) {
    double total = 0.0;
    for (int i = 0; i < N; i++) {
        double s = 0.0;
        for (int k = 0; k < K; k++) s += (double)g[(size_t)i * K + k] * g[(size_t)i * K + k];
        double nrm = sqrt(s);
        norms[i] = (float)nrm;
        total += (nrm - 1.0) * (nrm - 1.0);
    }
    return total / N;
}

/* d/dg_i of mean_i (||g_i|| - 1)^2 = (2 / N) (||g_i|| - 1) g_i / ||g_i|| */
static void gradient_penalty_backward(float *dg, const float *g, const float *norms, float dout,
                                      int N, int K) {
    for (int i = 0; i < N; i++) {
        float nrm = norms[i];
        if (!(nrm > 0.0f)) continue;
        float coef = dout * 2.0f * (nrm - 1.0f) / ((float)N * nrm);
        for (int k = 0; k < K; k++) dg[(size_t)i * K + k] += coef * g[(size_t)i * K + k];
    }
}

static void gradient_penalty_bw(TapeNode *nd) {
    Tensor *g = nd->in[0];
    gradient_penalty_backward(g->grad, g->data, nd->ctx, nd->out->grad[0], nd->iargs[0],
                              nd->iargs[1]);
}

Tensor *ad_gradient_penalty(Ctx *c, Tensor *g) {
    ASSERT(g->ndim == 2, "gradient_penalty: g must be [N,K], got %d dims", g->ndim);
    int N = g->shape[0], K = g->shape[1];
    Tensor *out = ad_out(c, 1, (int[]){1}, &g, 1);
    float *norms = arena_alloc(&c->arena, (size_t)N * sizeof *norms);
    out->data[0] = (float)ops_gradient_penalty_forward(norms, g->data, N, K);
    TapeNode *nd = tape_record(c, "gradient_penalty", gradient_penalty_bw, out, &g, 1);
    if (nd) {
        nd->ctx = norms;
        nd->iargs[0] = N;
        nd->iargs[1] = K;
    }
    return out;
}
