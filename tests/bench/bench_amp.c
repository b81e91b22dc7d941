/* bench_amp.c: the mixed-precision cost: one transformer training step
 * (forward, backward, clip_grad_norm 1.0, AdamW; the size of
 * bench_transformer.c) in fp32 and in fp16 (AMP casts around every matrix
 * product, the dynamic scale's unscale), interleaved step by step so both
 * see the same machine load; medians and their ratio. PyTorch has no CPU fp16
 * matmul to compare with, so the target is against our own fp32 step:
 * fp16 / fp32 <= 1.5 (the rounding passes are memory-bound and allocate
 * nothing outside the arena). tests/bench/bench_amp.py prints the row. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bench_util.h"
#include "clip.h"
#include "half.h"
#include "ops.h"
#include "optim.h"
#include "scaler.h"
#include "train.h"
#include "transformer.h"

enum { B = 16, T = 64, C = 128, L = 4, NH = 4, V = 96 };

int main(int argc, char **argv) {
    int reps = argc > 1 ? atoi(argv[1]) : 30, warm = 3;
    TransformerConfig cfg = {.d_model = C, .n_layer = L, .n_head = NH, .context = T};
    Transformer m;
    memset(&m, 0, sizeof m);
    Rng r;
    rng_seed(&r, 1, 1);
    transformer_build(&m, &cfg, V, &r);
    int *x = malloc(sizeof(int) * B * T), *y = malloc(sizeof(int) * B * T);
    for (int i = 0; i < B * T; i++) x[i] = (int)rng_below(&r, V), y[i] = (int)rng_below(&r, V);
    Ctx c;
    ctx_init(&c, (size_t)256 << 20, 1 << 13);
    OptimConfig oc = {.kind = OPTIM_ADAMW, .lr = 1e-4, .beta1 = 0.9, .beta2 = 0.95, .eps = 1e-8,
                      .weight_decay = 0.1, .schedule = SCHED_CONSTANT};
    Optim opt;
    optim_init(&opt, &oc, m.ps.n);
    ClipTensor *ct = calloc((size_t)m.ps.count, sizeof *ct);
    for (int i = 0; i < m.ps.count; i++)
        ct[i] = (ClipTensor){m.ps.params[i].t.grad, m.ps.params[i].t.data, m.ps.params[i].t.n, 0};
    double *ms[2] = {malloc(sizeof(double) * (size_t)reps), malloc(sizeof(double) * (size_t)reps)};
    for (int i = 0; i < warm + reps; i++)
        for (int p = 0; p < 2; p++) {
            double scale = p ? 1024.0 : 1.0;
            c.precision = p ? HALF_FP16 : HALF_FP32;
            double t0 = now_seconds();
            param_zero_grad(&m.ps);
            ctx_reset(&c);
            Tensor *loss = transformer_loss_on(&m, &c, x, y, B, T);
            ad_backward(&c, loss, (float)scale);
            scaler_unscale(m.ps.grad, m.ps.n, scale);
            clip_grad_norm(ct, m.ps.count, 1.0, 2.0);
            optim_step(&opt, &m.ps, oc.lr);
            double t1 = now_seconds();
            if (i >= warm) ms[p][i - warm] = 1e3 * (t1 - t0);
        }
    double f32 = bench_median(ms[0], reps), f16 = bench_median(ms[1], reps);
    printf("c_fp32_step_ms %.6f\nc_fp16_step_ms %.6f\nratio %.3f\n", f32, f16, f16 / f32);
    free(ms[0]), free(ms[1]), free(x), free(y), free(ct);
    optim_free(&opt);
    ctx_free(&c);
    transformer_free_params(&m);
    return 0;
}
