/* ops_act.c: activation clipping with a learned level, and fake quantisation
 * (the ops block "activation clipping and quantisation" of ops.h).
 *
 *  - PACT (Choi et al. 2018, eq. 1): y = clip(x, 0, alpha) = 0.5(|x| - |x - alpha|
 *    + alpha), alpha a learned scalar per layer. Gradients (eq. 3): dy/dx = 1 on
 *    the open (0, alpha) (zero at the kinks, as torch's hardtanh), dy/dalpha = 1
 *    where x >= alpha, summed over the tensor.
 *  - Fake quantisation to k unsigned bits over [0, hi] (PACT eq. 2, the uniform
 *    quantiser of torch.fake_quantize_per_tensor_affine with zero point 0):
 *    scale = hi / (2^k - 1), q = clamp(nearbyint(x * (1/scale)), 0, 2^k - 1),
 *    y = q * scale. Rounding is to nearest, ties to even (nearbyintf in the
 *    default rounding mode, as torch). Backward is the straight-through
 *    estimator of torch: dy/dx = 1 where the unclamped code lies in [0, 2^k - 1].
 *
 * Legend: n all elements. Kernels ADD into gradients. */
#include <cblas.h>
#include <math.h>
#include <string.h>

#include "common.h"
#include "ops.h"

/* ------------------------------------------------------------------ PACT */

/* out[n] = min(max(x, 0), alpha) (comparisons, so NaN passes through) */
void act_pact_forward(float *out, const float *x, float alpha, size_t n) {
    /* out[n], x[n] */
    for (size_t i = 0; i < n; i++) {
        float v = x[i];
        out[i] = v < 0.0f ? 0.0f : (v > alpha ? alpha : v);
    }
}

/* dx[n] += dout on 0 < x < alpha; *dalpha += sum of dout where x >= alpha.
 * dx or dalpha may be NULL. */
void act_pact_backward(float *dx, float *dalpha, const float *x, const float *dout, float alpha,
                       size_t n) {
    /* dx[n] or NULL, dalpha[1] or NULL, x[n], dout[n] */
    if (dx)
        for (size_t i = 0; i < n; i++) {
            float v = x[i];
            dx[i] += (v > 0.0f && v < alpha) ? dout[i] : 0.0f;
        }
    if (dalpha) {
        double s = 0.0;
        for (size_t i = 0; i < n; i++) s += x[i] >= alpha ? (double)dout[i] : 0.0;
        *dalpha += (float)s;
    }
}

static void pact_bw(TapeNode *nd) {
    Tensor *x = nd->in[0], *a = nd->in[1];
    act_pact_backward(x->grad, a->grad, x->data, nd->out->grad, a->data[0], x->n);
}

Tensor *ad_pact(Ctx *c, Tensor *x, Tensor *alpha) {
    ASSERT(alpha->n == 1, "pact: alpha must be one value, got %zu", alpha->n);
    Tensor *in[2] = {x, alpha};
    Tensor *out = ad_out(c, x->ndim, x->shape, in, 2);
    act_pact_forward(out->data, x->data, alpha->data[0], x->n);
    tape_record(c, "pact", pact_bw, out, in, 2);
    return out;
}

/* ------------------------------------------------------- fake quantisation */

void act_fake_quant_forward(float *out, const float *x, float hi, int bits, size_t n) {
    /* out[n], x[n] */
    float qmax = (float)((1 << bits) - 1), scale = hi / qmax, inv = 1.0f / scale;
    for (size_t i = 0; i < n; i++) {
        float q = nearbyintf(x[i] * inv);
        q = q < 0.0f ? 0.0f : (q > qmax ? qmax : q);
        out[i] = q * scale;
    }
}

/* dx[n] += dout where 0 <= nearbyint(x / scale) <= 2^k - 1 (torch's cached mask) */
static void fake_quant_backward(float *dx, const float *x, const float *dout, float hi, int bits,
                                size_t n) {
    /* dx[n], x[n], dout[n] */
    float qmax = (float)((1 << bits) - 1), inv = 1.0f / (hi / qmax);
    for (size_t i = 0; i < n; i++) {
        float q = nearbyintf(x[i] * inv);
        dx[i] += (q >= 0.0f && q <= qmax) ? dout[i] : 0.0f;
    }
}

static void fake_quant_bw(TapeNode *nd) {
    Tensor *x = nd->in[0];
    if (x->grad)
        fake_quant_backward(x->grad, x->data, nd->out->grad, nd->fargs[0], nd->iargs[0], x->n);
}

Tensor *ad_fake_quant(Ctx *c, Tensor *x, float hi, int bits) {
    ASSERT(bits >= 1 && bits <= 16, "fake_quant: %d bits (1 to 16)", bits);
    ASSERT(hi > 0.0f && isfinite(hi), "fake_quant: range [0, %g] (hi must be finite and > 0)",
           (double)hi);
    Tensor *out = ad_out(c, x->ndim, x->shape, &x, 1);
    act_fake_quant_forward(out->data, x->data, hi, bits, x->n);
    TapeNode *nd = tape_record(c, "fake_quant", fake_quant_bw, out, &x, 1);
    if (nd) {
        nd->fargs[0] = hi;
        nd->iargs[0] = bits;
    }
    return out;
}

/* ---------------------------------------------------------------- threads */

int ops_num_threads = 1;

void ops_set_threads(int n) {
    ASSERT(n >= 1 && n <= 256, "ops_set_threads(%d)", n);
    ops_num_threads = n;
    /* our threads call sgemm: OpenBLAS's own threads would oversubscribe the
     * cores (and one thread means one: OpenBLAS would start one per core) */
    openblas_set_num_threads(1);
}

/* ---------------------------------------------------------------- helpers */

float act_max(const float *x, size_t n) {
    /* x[n]; NaN if any element is NaN, -inf if n == 0 */
    float m = -INFINITY;
    int bad = 0;
    for (size_t i = 0; i < n; i++) { /* branch-free, so it vectorizes */
        float v = x[i];
        bad |= v != v;
        m = v > m ? v : m;
    }
    return bad ? NAN : m;
}
