/* bench_ppo.c: median wall time of one PPO update with CleanRL's CartPole
 * settings: 4 epochs x 4 shuffled minibatches of 128 from a batch of 512, each
 * minibatch = forward of actor and critic (64-64 tanh), clipped surrogate,
 * clipped value loss, entropy, backward, clip_grad_norm 0.5, Adam step.
 * tests/bench/bench_ppo.py runs this beside the same update in PyTorch. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bench_util.h"
#include "clip.h"
#include "ops.h"
#include "optim.h"
#include "ppo.h"
#include "train.h"

enum { B = 512, M = 128, EPOCHS = 4 };

int main(int argc, char **argv) {
    int reps = argc > 1 ? atoi(argv[1]) : 20, warm = 3;
    PpoConfig cfg = {.num_envs = 4, .num_steps = 128, .gamma = 0.99, .gae_lambda = 0.95,
                     .num_minibatches = 4, .update_epochs = EPOCHS, .norm_adv = 1,
                     .clip_coef = 0.2, .clip_vloss = 1, .ent_coef = 0.01, .vf_coef = 0.5,
                     .target_kl = INFINITY, .hidden = 64, .max_episode_steps = 500};
    Ppo m;
    memset(&m, 0, sizeof m);
    Rng r;
    rng_seed(&r, 1, 1);
    ppo_build(&m, &cfg, &r);
    /* a batch shaped like a CartPole rollout */
    static float obs[B * 4], logp[B], adv[B], ret[B], val[B];
    static int act[B], inds[B];
    for (int i = 0; i < B; i++) {
        for (int k = 0; k < 4; k++) obs[i * 4 + k] = 0.1f * (float)rng_normal(&r);
        act[i] = (int)rng_below(&r, 2);
        logp[i] = logf(0.5f) + 0.05f * (float)rng_normal(&r);
        val[i] = (float)rng_normal(&r);
        ret[i] = val[i] + (float)rng_normal(&r);
        adv[i] = (float)rng_normal(&r);
    }
    static float mo[M * 4], ml[M], ma[M], mr[M], mv[M];
    static int mact[M];
    Ctx c;
    ctx_init(&c, 16 << 20, 4096);
    ops_set_threads(bench_threads()); /* CLIPLAB_BENCH_THREADS */
    OptimConfig oc = {.kind = OPTIM_ADAM, .lr = 2.5e-4, .beta1 = 0.9, .beta2 = 0.999,
                      .eps = 1e-5, .schedule = SCHED_CONSTANT};
    Optim opt;
    optim_init(&opt, &oc, m.ps.n);
    ClipTensor ct[12];
    for (int i = 0; i < m.ps.count; i++)
        ct[i] = (ClipTensor){m.ps.params[i].t.grad, m.ps.params[i].t.data, m.ps.params[i].t.n, 0};
    double *ms = malloc(sizeof(double) * (size_t)reps);
    for (int i = 0; i < B; i++) inds[i] = i;
    for (int it = 0; it < warm + reps; it++) {
        double t0 = now_seconds();
        for (int e = 0; e < EPOCHS; e++) {
            for (int i = B - 1; i > 0; i--) { /* shuffle, as np.random.shuffle */
                int j = (int)rng_below(&r, (uint32_t)(i + 1)), t = inds[i];
                inds[i] = inds[j], inds[j] = t;
            }
            for (int s = 0; s < B; s += M) {
                for (int i = 0; i < M; i++) {
                    int k = inds[s + i];
                    memcpy(mo + 4 * i, obs + 4 * k, 4 * sizeof(float));
                    mact[i] = act[k], ml[i] = logp[k], ma[i] = adv[k], mr[i] = ret[k], mv[i] = val[k];
                }
                PpoBatch b = {M, mo, mact, ml, ma, mr, mv, 0}; /* normalised inside, as ppo.c does */
                param_zero_grad(&m.ps);
                ctx_reset(&c);
                ad_backward(&c, ppo_loss_on(&m, &c, &b, NULL), 1.0f);
                clip_grad_norm(ct, m.ps.count, 0.5, 2.0);
                optim_step(&opt, &m.ps, oc.lr);
            }
        }
        if (it >= warm) ms[it - warm] = 1e3 * (now_seconds() - t0);
    }
    printf("c_step_ms %.6f\n", bench_median(ms, reps));
    printf("params %zu\n", m.ps.n);
    free(ms);
    optim_free(&opt);
    ctx_free(&c);
    ppo_free_params(&m);
    return 0;
}
