/* gradcheck.h: finite-difference gradient checker for ops (tests only).
 *
 * The scalar checked is L = sum_i R_i * out_i with fixed random R (so every
 * output element matters), accumulated in double. Analytic gradients come from
 * seeding out->grad = R and walking the tape; numeric ones from central
 * differences (L(x+eps) - L(x-eps)) / 2eps on each input element. Callers pick
 * inputs away from kinks (0 and 6 for relu6, the clamp bounds). */
#ifndef CLIPLAB_TESTS_GRADCHECK_H
#define CLIPLAB_TESTS_GRADCHECK_H

#include <criterion/criterion.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "rng.h"
#include "tensor.h"

/* Builds the op's output from the inputs (called many times; must be pure). */
typedef Tensor *(*GcBuild)(Ctx *c, Tensor **in, void *user);

/* A heap tensor (outlives ctx_reset) with gradient, filled from N(0, scale^2) + shift. */
static inline Tensor *gc_input(int ndim, const int *shape, Rng *r, float scale, float shift) {
    Tensor *t = malloc(sizeof *t);
    size_t n = shape_numel(ndim, shape);
    *t = tensor_view(malloc(n * sizeof(float)), calloc(n, sizeof(float)), ndim, shape);
    for (size_t i = 0; i < n; i++) t->data[i] = shift + scale * (float)rng_normal(r);
    return t;
}

static inline void gc_free(Tensor *t) {
    free(t->data);
    free(t->grad);
    free(t);
}

static inline double gc_eval(Ctx *c, GcBuild f, Tensor **in, void *user, const double *R) {
    ctx_reset(c);
    int prev = ctx_set_grad(c, 0);
    Tensor *out = f(c, in, user);
    ctx_set_grad(c, prev);
    double s = 0.0;
    for (size_t i = 0; i < out->n; i++) s += R[i] * (double)out->data[i];
    return s;
}

/* Check every element of every input that has a gradient buffer.
 * Pass criterion per element: |analytic - numeric| <= atol + rtol*|numeric|. */
static inline void gradcheck(GcBuild f, Tensor **in, int nin, void *user, double eps,
                             double atol, double rtol, const char *what) {
    Ctx c;
    ctx_init(&c, (size_t)256 << 20, 1 << 16);
    Rng r;
    rng_seed(&r, 1234, 7);
    /* analytic */
    for (int k = 0; k < nin; k++)
        if (in[k]->grad) memset(in[k]->grad, 0, in[k]->n * sizeof(float));
    ctx_reset(&c);
    Tensor *out = f(&c, in, user);
    cr_assert(out->grad, "%s: output has no gradient", what);
    double *R = malloc(out->n * sizeof *R);
    for (size_t i = 0; i < out->n; i++) {
        R[i] = rng_normal(&r);
        out->grad[i] = (float)R[i];
    }
    tape_backward(&c);
    for (int k = 0; k < nin; k++) {
        if (!in[k]->grad) continue;
        float *ana = malloc(in[k]->n * sizeof(float));
        memcpy(ana, in[k]->grad, in[k]->n * sizeof(float));
        for (size_t j = 0; j < in[k]->n; j++) {
            float x0 = in[k]->data[j];
            in[k]->data[j] = x0 + (float)eps;
            double lp = gc_eval(&c, f, in, user, R);
            in[k]->data[j] = x0 - (float)eps;
            double lm = gc_eval(&c, f, in, user, R);
            in[k]->data[j] = x0;
            /* use the actually representable step */
            double h = ((double)(x0 + (float)eps) - (double)(x0 - (float)eps));
            double num = (lp - lm) / h;
            double diff = fabs((double)ana[j] - num);
            cr_assert(diff <= atol + rtol * fabs(num),
                      "%s: input %d element %zu: analytic %.6g vs numeric %.6g", what, k, j,
                      (double)ana[j], num);
        }
        free(ana);
    }
    free(R);
    ctx_free(&c);
}

#endif
