/* wgan.h: the Wasserstein GAN on the 2-D toy distributions of WGAN-GP's
 * gan_toy.py: a generator MLP and a critic MLP trained in turn as two update
 * groups, "critic" and "generator", each with its own optimizer and clip
 * settings ([optim.critic], [clip.critic], ...).
 *
 * The critic must be (close to) 1-Lipschitz for E D(real) - E D(fake) to
 * estimate the Wasserstein-1 distance (Arjovsky, Chintala & Bottou 2017, eq. 3):
 *   - weight clipping: every critic weight clamped to [-c, c] after each of its
 *     updates ([clip.critic] weight = c; WGAN Algorithm 1, c = 0.01);
 *   - gradient penalty: lambda * E (||grad_xhat D(xhat)||_2 - 1)^2 on random
 *     interpolates xhat of real and fake points ([wgan] gp_lambda; Gulrajani et
 *     al. 2017, eq. 3, lambda = 10);
 *   - neither: the critic's objective is unbounded.
 *
 * Dimension legend: B batch, NZ noise dims, H hidden width, L hidden layers,
 * 2 data dims. An MLP is L hidden ReLU layers of width H and a linear output:
 *   z_l = h_{l-1} W_l^T + b_l, h_l = relu(z_l) (h_0 = input), out = h_L W_o^T + b_o.
 * Weights use the torch nn.Linear layout [OUT, IN]. */
#ifndef CLIPLAB_MODELS_WGAN_H
#define CLIPLAB_MODELS_WGAN_H

#include "metrics.h"
#include "model.h"
#include "params.h"
#include "rng.h"

#define WGAN_MAX_DEPTH 16

typedef enum { WGAN_8GAUSSIANS, WGAN_25GAUSSIANS, WGAN_SWISSROLL } WganDataset;
typedef enum { WGAN_INIT_HE, WGAN_INIT_TORCH } WganInit;

typedef struct WganConfig {
    int dataset;            /* WganDataset */
    int dataset_size;       /* 25gaussians: points in the fixed shuffled set */
    int noise_dim;          /* NZ */
    int g_depth, g_width;   /* generator: hidden layers, width */
    int d_depth, d_width;   /* critic: hidden layers, width */
    int init;               /* WganInit */
    int n_critic;           /* critic updates per generator update */
    int diters_start;       /* critic updates per generator update at the start and every diters_every */
    int diters_start_gens;  /* the first this many generator updates get diters_start */
    int diters_every;       /* ... and so does every generator update divisible by it (0 = never) */
    double gp_lambda;       /* gradient-penalty weight (0 = none) */
    int eval_samples;       /* fixed noise batch for the mode metrics */
    int layer_grads;        /* log per-layer activation-gradient norms (layer_grads.csv) */
    int map_points;         /* critic value map: map_points^2 grid over [-map_range, map_range]^2 */
    double map_range;
} WganConfig;

extern const ModelDef wgan_model;

/* An MLP: in -> depth x (linear, ReLU) of width -> linear -> out. w[depth] and
 * b[depth] are the output layer. */
typedef struct WganMlp {
    ParamSet ps;
    int in, width, depth, out;
    Tensor *w[WGAN_MAX_DEPTH + 1], *b[WGAN_MAX_DEPTH + 1];
} WganMlp;

/* A stream of real batches drawn as gan_toy.py's inf_train_gen() draws them. */
typedef struct WganData {
    int kind;               /* WganDataset */
    float *set;             /* 25gaussians: the shuffled set, [n, 2] */
    int n, pos;
} WganData;

/* What one critic loss evaluation saw (for metrics). */
typedef struct WganCriticStats {
    double d_real, d_fake;  /* E D(real), E D(fake) */
    double gp;              /* mean (||grad D(xhat)|| - 1)^2, NaN when not computed */
    double slope;           /* mean ||grad D(xhat)|| */
} WganCriticStats;

typedef struct Wgan {
    WganConfig cfg;
    int batch;              /* B: one micro-batch (per rank under mpirun) */
    int micro;              /* K micro-batches per update (trainer_micro_batches; 1 in tests) */
    WganMlp gen, critic;
    void *g_critic, *g_gen; /* UpdateGroup * */
    Rng *rng;               /* the trainer's stream: data, noise, interpolation */
    WganData data;
    float *real, *noise, *fake, *alpha;   /* [K*B,2], [K*B,NZ], [K*B,2], [K*B]: micro-batch i = rows iB.. */
    double *micro_stats;                  /* [K][4]: each micro-batch's WganCriticStats */
    float *eval_noise;                    /* [eval_samples, NZ], fixed at create */
    float *eval_pts;                      /* [eval_samples, 2]: G(eval_noise) */
    long critic_updates;
    WganCriticStats last_stats;
    int col[10];
    void *layer_csv;        /* FILE * of layer_grads.csv */
    char out_dir[512];
} Wgan;

/* ---- datasets (gan_toy.py, transcribed; our PCG32 stands in for numpy's stream) ---- */
void wgan_data_init(WganData *d, int kind, int dataset_size, Rng *r);
void wgan_data_free(WganData *d);
/* out[B,2]: the next batch */
void wgan_data_next(WganData *d, Rng *r, float *out, int B);
/* Mixture centres after scaling ([k,2]); returns k (0 for the Swiss roll) and
 * each component's standard deviation in *std. */
int wgan_modes(int kind, float *centres, double *std);

/* ---- networks ---- */
void wgan_mlp_build(WganMlp *m, const char *name, int in, int width, int depth, int out,
                    int init, Rng *r);
/* x[N,in] -> [N,out]. z[l] / h[l] (l < depth) receive the pre-activations and
 * activations when non-NULL. */
Tensor *wgan_mlp_forward(Ctx *c, const WganMlp *m, Tensor *x, Tensor **z, Tensor **h);
/* d(sum_i D(x_i))/dx_i [N,in] from the critic's pre-activations z[l] ([N, H]),
 * built from tape ops so that its gradient w.r.t. the weights is exact. */
Tensor *wgan_critic_input_grad(Ctx *c, const WganMlp *d, Tensor *const *z, int N);

/* Critic loss E D(fake) - E D(real) + lambda * GP on real/fake [B,2], the
 * interpolation weights alpha[B] (xhat = alpha real + (1 - alpha) fake).
 * with_gp: compute the penalty even when lambda = 0 (for the metrics; then it
 * is not on the tape). h (optional, [depth]) receives the critic's activations
 * of the 2B real-then-fake rows. */
Tensor *wgan_critic_loss(Wgan *m, Ctx *c, const float *real, const float *fake,
                         const float *alpha, int B, double lambda, int with_gp,
                         WganCriticStats *st, Tensor **h);
/* Generator loss -E D(G(noise)) for noise[B,NZ]. */
Tensor *wgan_gen_loss(Wgan *m, Ctx *c, const float *noise, int B);

/* One critic update (a fresh real batch, noise and alpha; fake = G(noise)
 * without a tape; trainer_step on the critic group, so the generator is
 * frozen) and one generator update (trainer_step on the generator group, the
 * critic frozen). `last`: compute the penalty for the metrics even without
 * gp_lambda. Return the loss; the critic's stats land in m->last_stats. */
double wgan_critic_update(Wgan *m, Trainer *tr, int last);
double wgan_gen_update(Wgan *m, Trainer *tr);

/* Build both networks (no trainer needed: tests use this). */
void wgan_build(Wgan *m, const WganConfig *cfg, int batch, Rng *init_rng);
void wgan_free(Wgan *m);

/* Quality of generated points pts[N,2] on a mixture (VEEGAN, Srivastava et al.
 * 2017, after Metz et al. 2017): a point is high quality when within 3 std of
 * its nearest mode; a mode is covered when it is the nearest mode of at least
 * one high-quality point. Returns the modes covered, *hq the fraction. */
int wgan_mode_quality(int kind, const float *pts, int N, double *hq);
/* Fraction of the critic's parameters with |w| >= 0.99 c. */
double wgan_at_bounds(const WganMlp *d, double c);

/* ---- figures (wgan_plots.c) ---- */
/* <dir>/wgan.png: Wasserstein estimate, ||grad_x D|| and modes over steps. */
int wgan_run_plot(const MetricsLog *log, const char *name, const char *title, const char *dir);
/* ModelDef.compare_plot: the three panels overlaid, or Figure 1 of WGAN-GP
 * when every run logged layer_grads.csv. */
int wgan_compare_plot(const struct RunResult *runs, const void *const *cfgs, int n, const char *path);

#endif
