/* bench_rnn.c: median wall time of one RNN training step (forward, BPTT,
 * global-norm clip, SGD step) at hidden 128, sequence 100, batch 32 on the
 * adding problem; also the clip step alone, to report its share of the step.
 * tests/bench/bench_rnn.py runs this beside the same step in PyTorch. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "rnn.h"
#include "bench_util.h"
#include "clip.h"
#include "ops.h"
#include "optim.h"
#include "train.h"

int main(int argc, char **argv) {
    int reps = argc > 1 ? atoi(argv[1]) : 100, warm = 10;
    enum { T = 100, B = 32, H = 128 };
    RnnConfig cfg = {.task = RNN_TASK_ADDING, .seq_len = T, .hidden = H,
                     .init = RNN_INIT_UNIFORM, .spectral_radius = 1.0, .eval_size = 1};
    Rnn m;
    memset(&m, 0, sizeof m);
    Rng r;
    rng_seed(&r, 1, 1);
    rnn_build(&m, &cfg, &r);
    float *x = malloc(sizeof(float) * T * B * 2), *y = malloc(sizeof(float) * B);
    rnn_make_batch(&r, RNN_TASK_ADDING, T, B, x, y, NULL);
    Ctx c;
    ctx_init(&c, 64 << 20, 1 << 14);
    ops_set_threads(bench_threads()); /* CLIPLAB_BENCH_THREADS */
    OptimConfig oc = {.kind = OPTIM_SGD, .lr = 0.01, .schedule = SCHED_CONSTANT};
    Optim opt;
    optim_init(&opt, &oc, m.ps.n);
    ClipTensor ct[6];
    for (int i = 0; i < m.ps.count; i++)
        ct[i] = (ClipTensor){m.ps.params[i].t.grad, m.ps.params[i].t.data, m.ps.params[i].t.n, 0};
    double *step_ms = malloc(sizeof(double) * (size_t)reps);
    double *clip_ms = malloc(sizeof(double) * (size_t)reps);
    for (int i = 0; i < warm + reps; i++) {
        double t0 = now_seconds();
        param_zero_grad(&m.ps);
        ctx_reset(&c);
        Tensor *loss = rnn_loss_on(&m, &c, x, y, NULL, B);
        ad_backward(&c, loss, 1.0f);
        double t1 = now_seconds();
        clip_grad_norm(ct, m.ps.count, 1.0, 2.0);
        double t2 = now_seconds();
        optim_step(&opt, &m.ps, oc.lr);
        double t3 = now_seconds();
        if (i >= warm) {
            step_ms[i - warm] = 1e3 * (t3 - t0);
            clip_ms[i - warm] = 1e3 * (t2 - t1);
        }
    }
    printf("c_step_ms %.6f\n", bench_median(step_ms, reps));
    printf("c_clip_ms %.6f\n", bench_median(clip_ms, reps));
    printf("params %zu\n", m.ps.n);
    free(step_ms), free(clip_ms), free(x), free(y);
    optim_free(&opt);
    ctx_free(&c);
    param_set_free(&m.ps);
    return 0;
}
