/* bench_wgan.c: median wall time of one WGAN critic update at the reference
 * size (gan_toy.py: 3 x 512 ReLU MLPs, noise in R^2, batch 256), two ways:
 *   clip: fake = G(noise) without a tape, critic loss E D(fake) - E D(real),
 *         backward, RMSProp 5e-5, clamp of every critic weight to +-0.01;
 *   gp:   the same loss + 10 * gradient penalty (double backward), Adam 1e-4
 *         (0.5, 0.9), no clamp.
 * Each includes the data batch and the noise draw. tests/bench/bench_wgan.py
 * runs this beside the same updates in PyTorch. Usage: bench_wgan REPS [clip|gp] */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bench_util.h"
#include "clip.h"
#include "ops.h"
#include "optim.h"
#include "train.h"
#include "wgan.h"

int main(int argc, char **argv) {
    int reps = argc > 1 ? atoi(argv[1]) : 20, warm = 3;
    int gp = argc > 2 && strcmp(argv[2], "gp") == 0;
    enum { B = 256, H = 512 };
    WganConfig cfg = {.dataset = WGAN_8GAUSSIANS, .dataset_size = 100000, .noise_dim = 2,
                      .g_depth = 3, .g_width = H, .d_depth = 3, .d_width = H,
                      .init = WGAN_INIT_HE, .n_critic = 5, .diters_start = 100,
                      .diters_start_gens = 25, .diters_every = 500, .gp_lambda = gp ? 10 : 0,
                      .eval_samples = 16, .map_points = 8, .map_range = 3};
    Wgan m;
    memset(&m, 0, sizeof m);
    Rng r;
    rng_seed(&r, 1, 1);
    wgan_build(&m, &cfg, B, &r);
    wgan_data_init(&m.data, cfg.dataset, cfg.dataset_size, &r);
    Ctx c;
    ctx_init(&c, 256 << 20, 1 << 14);
    OptimConfig oc = gp ? (OptimConfig){.kind = OPTIM_ADAM, .lr = 1e-4, .beta1 = 0.5, .beta2 = 0.9,
                                        .eps = 1e-8, .schedule = SCHED_CONSTANT}
                        : (OptimConfig){.kind = OPTIM_RMSPROP, .lr = 5e-5, .alpha = 0.99,
                                        .eps = 1e-8, .schedule = SCHED_CONSTANT};
    Optim opt;
    optim_init(&opt, &oc, m.critic.ps.n);
    ClipTensor ct[2 * WGAN_MAX_DEPTH + 2];
    for (int i = 0; i < m.critic.ps.count; i++) /* the clamp acts on the values */
        ct[i] = (ClipTensor){m.critic.ps.params[i].t.data, NULL, m.critic.ps.params[i].t.n, 0};
    double *ms = malloc(sizeof(double) * (size_t)reps);
    for (int i = 0; i < warm + reps; i++) {
        double t0 = now_seconds();
        wgan_data_next(&m.data, &r, m.real, B);
        for (int k = 0; k < B * 2; k++) m.noise[k] = (float)rng_normal(&r);
        for (int k = 0; k < B; k++) m.alpha[k] = (float)rng_uniform(&r);
        ctx_reset(&c);
        int prev = ctx_set_grad(&c, 0);
        Tensor *f = wgan_mlp_forward(&c, &m.gen, tensor_from(&c, 2, (int[]){B, 2}, m.noise), NULL,
                                     NULL);
        memcpy(m.fake, f->data, sizeof(float) * B * 2);
        ctx_set_grad(&c, prev);
        ctx_reset(&c);
        param_zero_grad(&m.critic.ps);
        wgan_critic_backward(&m, &c, 0, NULL);
        optim_step(&opt, &m.critic.ps, oc.lr);
        if (!gp) clip_grad_value(ct, m.critic.ps.count, 0.01);
        double t1 = now_seconds();
        if (i >= warm) ms[i - warm] = 1e3 * (t1 - t0);
    }
    printf("c_step_ms %.6f\n", bench_median(ms, reps));
    free(ms);
    optim_free(&opt);
    ctx_free(&c);
    wgan_free(&m);
    return 0;
}
