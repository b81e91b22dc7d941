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
#include "bench_gpt.h"
#include "half.h"
#include "ops.h"
#include "optim.h"
#include "scaler.h"
#include "train.h"
#include "transformer.h"

int main(int argc, char **argv) {
    int reps = argc > 1 ? atoi(argv[1]) : 30, warm = 3;
    BenchGpt g;
    bench_gpt_init(&g, 1e-4, 1 << 13);
    double *ms[2] = {malloc(sizeof(double) * (size_t)reps), malloc(sizeof(double) * (size_t)reps)};
    for (int i = 0; i < warm + reps; i++)
        for (int p = 0; p < 2; p++) {
            double scale = p ? 1024.0 : 1.0;
            g.c.precision = p ? HALF_FP16 : HALF_FP32;
            double t0 = now_seconds();
            param_zero_grad(&g.m.ps);
            ctx_reset(&g.c);
            Tensor *loss = transformer_loss_on(&g.m, &g.c, g.x, g.y, B, T);
            ad_backward(&g.c, loss, (float)scale);
            scaler_unscale(g.m.ps.grad, g.m.ps.n, scale);
            clip_grad_norm(g.ct, g.m.ps.count, 1.0, 2.0);
            optim_step(&g.opt, &g.m.ps, g.opt.cfg.lr);
            double t1 = now_seconds();
            if (i >= warm) ms[p][i - warm] = 1e3 * (t1 - t0);
        }
    double f32 = bench_median(ms[0], reps), f16 = bench_median(ms[1], reps);
    printf("c_fp32_step_ms %.6f\nc_fp16_step_ms %.6f\nratio %.3f\n", f32, f16, f16 / f32);
    free(ms[0]), free(ms[1]);
    bench_gpt_free(&g);
    return 0;
}
