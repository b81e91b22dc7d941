/* bench_dp.c: median wall time of one training step of the tanh CNN of
 * models/cnn.h on B = 256 random 28 x 28 images (mean cross-entropy, SGD with
 * momentum):
 *   plain: zero grad, forward, backward, SGD step;
 *   dp:    the same with DP-SGD: per-example norms during backward
 *          (perex.h), each example clipped to C = 1 and the sum taken
 *          (dp_clip_sum), noise sigma = 1 and the division by the expected
 *          batch (dp_noise), then the SGD step.
 * Usage: bench_dp REPS plain|dp. tests/bench/bench_dp.py runs both beside
 * PyTorch's step and its functorch vmap(grad) DP step. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bench_util.h"
#include "dp.h"
#include "ops.h"
#include "optim.h"
#include "params.h"

enum { B = 256 };

static Tensor *logits(Ctx *c, Tensor **p, const float *x) {
    int shape[4] = {B, 1, 28, 28}, flat[2] = {B, 512};
    Tensor *h = tensor_from(c, 4, shape, x);
    h = ad_maxpool2d(c, ad_tanh(c, ad_conv2d(c, h, p[0], p[1], 2, 2)), 2, 1);
    h = ad_maxpool2d(c, ad_tanh(c, ad_conv2d(c, h, p[2], p[3], 2, 0)), 2, 1);
    h = ad_tanh(c, ad_linear(c, ad_reshape(c, h, 2, flat), p[4], p[5]));
    return ad_linear(c, h, p[6], p[7]);
}

int main(int argc, char **argv) {
    int reps = argc > 1 ? atoi(argv[1]) : 10, warm = 2;
    int dp_on = argc > 2 && !strcmp(argv[2], "dp");
    static const int shapes[8][4] = {{16, 1, 8, 8}, {16}, {32, 16, 4, 4}, {32}, {32, 512}, {32},
                                     {10, 32}, {10}};
    static const int ndims[8] = {4, 1, 4, 1, 2, 1, 2, 1};
    ParamSet ps;
    param_set_init(&ps, "model", 8);
    Tensor *p[8];
    for (int i = 0; i < 8; i++) {
        char nm[8];
        snprintf(nm, sizeof nm, "p%d", i);
        p[i] = param_add(&ps, nm, ndims[i], shapes[i], i % 2 == 0);
    }
    param_alloc(&ps);
    Rng r;
    rng_seed(&r, 1, 1);
    for (int i = 0; i < 8; i++) param_init_fanin_uniform(p[i], &r, i < 2 ? 64 : i < 4 ? 256 : i < 6 ? 512 : 32);
    float *x = malloc((size_t)B * 784 * sizeof *x);
    int *y = malloc(B * sizeof *y);
    for (size_t i = 0; i < (size_t)B * 784; i++) x[i] = (float)rng_normal(&r);
    for (int i = 0; i < B; i++) y[i] = (int)rng_below(&r, 10);
    Ctx c;
    ctx_init(&c, (size_t)512 << 20, 1 << 12);
    OptimConfig oc = {.kind = OPTIM_SGD, .lr = 0.1, .momentum = 0.9, .schedule = SCHED_CONSTANT};
    Optim opt;
    optim_init(&opt, &oc, ps.n);
    DpConfig dc = {.enabled = 1, .max_grad_norm = 1.0, .noise_multiplier = 1.0, .delta = 1e-5};
    Dp *dp = dp_create(&dc, 60000, B, 100, 1);
    double *ms = malloc(sizeof(double) * (size_t)reps);
    for (int i = 0; i < warm + reps; i++) {
        double t0 = now_seconds();
        param_zero_grad(&ps);
        ctx_reset(&c);
        if (dp_on) dp_attach(dp, &c, i);
        ad_backward(&c, ad_cross_entropy(&c, logits(&c, p, x), y), 1.0f);
        if (dp_on) {
            dp_detach(dp, &c);
            dp_clip_sum(dp, &ps, 1.0);
            dp_noise(dp, &ps);
        }
        optim_step(&opt, &ps, oc.lr);
        if (i >= warm) ms[i - warm] = 1e3 * (now_seconds() - t0);
    }
    printf("c_step_ms %.6f\n", bench_median(ms, reps));
    printf("params %zu\n", ps.n);
    free(ms), free(x), free(y);
    dp_free(dp);
    optim_free(&opt);
    ctx_free(&c);
    param_set_free(&ps);
    return 0;
}
