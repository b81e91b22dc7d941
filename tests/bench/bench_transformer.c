/* bench_transformer.c: median wall time of one transformer training step
 * (zero grad, forward, backward, clip_grad_norm 1.0, AdamW step) at the
 * default size (d_model 128, 4 layers, 4 heads, context 64) with batch 16 and
 * a vocabulary of 96, on random tokens; also the forward alone and the
 * backward alone, and the time inside cblas_sgemm (bench_sgemm.h), to show
 * where the time goes. Usage: bench_transformer REPS, at CLIPLAB_BENCH_THREADS
 * threads ([train] threads; default 1). tests/bench/bench_transformer.py runs
 * this beside the same step in PyTorch, and again at 2 threads.
 * For instruction counts: valgrind --tool=callgrind --toggle-collect=bench_step
 * build/bench/bench_transformer 3 counts the steps alone. */
#include "bench_sgemm.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "transformer.h"
#include "bench_gpt.h"
#include "bench_util.h"
#include "clip.h"
#include "ops.h"
#include "optim.h"
#include "train.h"

typedef struct {
    Transformer *m;
    Ctx *c;
    Optim *opt;
    ClipTensor *ct;
    const int *x, *y;
    double t[4]; /* start, forward done, backward done, step done */
} Step;

/* One training step: zero grad, forward, backward, clip 1.0, AdamW. */
__attribute__((noinline)) static void bench_step(Step *s) {
    s->t[0] = now_seconds();
    param_zero_grad(&s->m->ps);
    ctx_reset(s->c);
    Tensor *loss = transformer_loss_on(s->m, s->c, s->x, s->y, B, T);
    s->t[1] = now_seconds();
    ad_backward(s->c, loss, 1.0f);
    s->t[2] = now_seconds();
    clip_grad_norm(s->ct, s->m->ps.count, 1.0, 2.0);
    optim_step(s->opt, &s->m->ps, s->opt->cfg.lr);
    s->t[3] = now_seconds();
}

int main(int argc, char **argv) {
    int reps = argc > 1 ? atoi(argv[1]) : 50, warm = 5;
    BenchGpt g;
    bench_gpt_init(&g, 1e-3, 1 << 12);
    ops_set_threads(bench_threads());
    double *step_ms = malloc(sizeof(double) * (size_t)reps);
    double *fwd_ms = malloc(sizeof(double) * (size_t)reps);
    double *bwd_ms = malloc(sizeof(double) * (size_t)reps);
    double *gemm_ms = malloc(sizeof(double) * (size_t)reps);
    Step st = {&g.m, &g.c, &g.opt, g.ct, g.x, g.y, {0}};
    for (int i = 0; i < warm + reps; i++) {
        double g0 = bench_sgemm_seconds;
        bench_step(&st);
        if (i >= warm) {
            step_ms[i - warm] = 1e3 * (st.t[3] - st.t[0]);
            fwd_ms[i - warm] = 1e3 * (st.t[1] - st.t[0]);
            bwd_ms[i - warm] = 1e3 * (st.t[2] - st.t[1]);
            gemm_ms[i - warm] = 1e3 * (bench_sgemm_seconds - g0);
        }
    }
    printf("c_step_ms %.6f\n", bench_median(step_ms, reps));
    printf("c_fwd_ms %.6f\n", bench_median(fwd_ms, reps));
    printf("c_bwd_ms %.6f\n", bench_median(bwd_ms, reps));
    printf("c_sgemm_ms %.6f\n", bench_median(gemm_ms, reps));
    printf("params %zu\n", g.m.ps.n);
    free(step_ms), free(fwd_ms), free(bwd_ms), free(gemm_ms);
    bench_gpt_free(&g);
    return 0;
}
