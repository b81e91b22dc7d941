/* bench_mobilenet.c: median wall time of one training step (zero grad,
 * forward, loss, backward, Adam step) of
 *   block: one inverted residual block (16 -> 96 -> 16 channels, expansion 6,
 *          stride 1, residual, ReLU6, batchnorm in train mode) on 32 x 16 x 28 x 28
 *          random inputs, loss = MSE against a random target;
 *   net:   the whole default network of models/mobilenet.c (ReLU6) on 32
 *          random 28 x 28 images, mean cross-entropy;
 *   net28: the same with the stem's stride 1, so every plane is 4x larger
 *          (28x28, 14x14, 7x7 instead of 14x14, 7x7, 4x4).
 * Usage: bench_mobilenet REPS [block|net|net28] (default block).
 * tests/bench/bench_mobilenet.py runs this beside the same steps in PyTorch. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bench_util.h"
#include "mobilenet.h"
#include "ops.h"
#include "optim.h"
#include "train.h"

enum { B = 32, HW = 28, C = 16 };

int main(int argc, char **argv) {
    int reps = argc > 1 ? atoi(argv[1]) : 20, warm = 3;
    int net28 = argc > 2 && strcmp(argv[2], "net28") == 0;
    int net = net28 || (argc > 2 && strcmp(argv[2], "net") == 0);
    MobilenetConfig cfg;
    mobilenet_default_config(&cfg);
    if (net28) cfg.stem_stride = 1; /* the same network on 28x28 planes (4x the work) */
    if (!net) {
        cfg.stem = C, cfg.stem_stride = 1;
        snprintf(cfg.blocks, sizeof cfg.blocks, "6:16:1:1");
    }
    Mobilenet m;
    memset(&m, 0, sizeof m);
    Rng r;
    rng_seed(&r, 1, 1);
    mobilenet_build(&m, &cfg, HW, HW, 10, &r);
    size_t nin = net ? (size_t)B * HW * HW : (size_t)B * C * HW * HW;
    float *x = malloc(nin * sizeof *x), *tgt = malloc(nin * sizeof *tgt);
    int *y = malloc(B * sizeof *y);
    for (size_t i = 0; i < nin; i++) x[i] = (float)rng_normal(&r), tgt[i] = (float)rng_normal(&r);
    for (int i = 0; i < B; i++) y[i] = (int)rng_below(&r, 10);
    Ctx c;
    ctx_init(&c, (size_t)512 << 20, 1 << 12);
    ops_set_threads(bench_threads()); /* CLIPLAB_BENCH_THREADS */
    c.train = 1;
    OptimConfig oc = {.kind = OPTIM_ADAM, .lr = 1e-3, .beta1 = 0.9, .beta2 = 0.999, .eps = 1e-8,
                      .schedule = SCHED_CONSTANT};
    Optim opt;
    optim_init(&opt, &oc, m.ps.n);
    double *step_ms = malloc(sizeof(double) * (size_t)reps);
    double *fwd_ms = malloc(sizeof(double) * (size_t)reps);
    double *bwd_ms = malloc(sizeof(double) * (size_t)reps);
    int shape[4] = {B, C, HW, HW};
    for (int i = 0; i < warm + reps; i++) {
        double t0 = now_seconds();
        param_zero_grad(&m.ps);
        ctx_reset(&c);
        Tensor *loss;
        if (net) {
            loss = ad_cross_entropy(&c, mobilenet_logits(&m, &c, x, B), y);
        } else {
            Tensor *xt = tensor_from(&c, 4, shape, x), *tt = tensor_from(&c, 4, shape, tgt);
            loss = ad_mse(&c, mobilenet_block_forward(&m, &c, 0, xt), tt);
        }
        double t1 = now_seconds();
        ad_backward(&c, loss, 1.0f);
        double t2 = now_seconds();
        optim_step(&opt, &m.ps, oc.lr);
        double t3 = now_seconds();
        if (i >= warm) {
            step_ms[i - warm] = 1e3 * (t3 - t0);
            fwd_ms[i - warm] = 1e3 * (t1 - t0);
            bwd_ms[i - warm] = 1e3 * (t2 - t1);
        }
    }
    printf("c_step_ms %.6f\n", bench_median(step_ms, reps));
    printf("c_fwd_ms %.6f\n", bench_median(fwd_ms, reps));
    printf("c_bwd_ms %.6f\n", bench_median(bwd_ms, reps));
    size_t np = 0; /* block mode: the block's own parameters (the unused stem and head are not counted) */
    for (int i = 0; i < m.ps.count; i++)
        if (!m.ps.params[i].buffer && (net || strncmp(m.ps.params[i].name, "b0.", 3) == 0))
            np += m.ps.params[i].t.n;
    printf("params %zu\n", np);
    free(step_ms), free(fwd_ms), free(bwd_ms), free(x), free(tgt), free(y);
    optim_free(&opt);
    ctx_free(&c);
    mobilenet_free_params(&m);
    return 0;
}
