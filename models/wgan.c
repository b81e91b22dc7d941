/* wgan.c: the WGAN / WGAN-GP model on 2-D toy data, its [wgan] section and its
 * outputs (see wgan.h for the mathematics).
 *
 * References: Arjovsky, Chintala & Bottou (2017), Algorithm 1, and their
 * martinarjovsky/WassersteinGAN main.py (n_critic 5, 100 critic updates for the
 * first 25 generator updates and every 500th, RMSProp 5e-5, clamp 0.01);
 * Gulrajani et al. (2017) and igul222/improved_wgan_training gan_toy.py (the
 * datasets, 3 x 512 ReLU MLPs, noise in R^2, batch 256, the penalty on random
 * interpolates, Adam 1e-4 (0.5, 0.9)).
 *
 * One trainer step = one generator iteration: the critic updates, then one
 * generator update. The weight clamp and both optimizers are the trainer's
 * update pipeline, configured per group; this file only builds losses.
 * Besides metrics.csv a run writes samples.csv (real and generated points),
 * critic_map.csv (the critic's value on a grid), critic_weights.csv and, with
 * layer_grads = true, layer_grads.csv (per-layer activation-gradient norms). */
#include "wgan.h"

#include <errno.h>
#include <math.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>

#include "common.h"
#include "ops.h"
#include "ops_gan.h"
#include "train.h"

static const char *const dataset_choices[] = {"8gaussians", "25gaussians", "swissroll", NULL};
static const char *const init_choices[] = {"he", "torch", NULL};

#define WG_KEY(n, t, f, d, lo, hi, ch, h) {n, t, offsetof(WganConfig, f), d, lo, hi, ch, h}
static const CfgKey wgan_keys[] = {
    WG_KEY("dataset", CFG_ENUM, dataset, "8gaussians", 0, 0, dataset_choices,
           "real distribution (gan_toy.py): 8 or 25 Gaussians, or the Swiss roll"),
    WG_KEY("dataset_size", CFG_INT, dataset_size, "100000", 25, 10000000, NULL,
           "25gaussians: size of the fixed shuffled set the batches cycle through"),
    WG_KEY("noise_dim", CFG_INT, noise_dim, "2", 1, 1024, NULL, "generator noise N(0, I) dims"),
    WG_KEY("g_depth", CFG_INT, g_depth, "3", 1, WGAN_MAX_DEPTH, NULL,
           "generator hidden ReLU layers"),
    WG_KEY("g_width", CFG_INT, g_width, "512", 1, 8192, NULL, "generator hidden width"),
    WG_KEY("d_depth", CFG_INT, d_depth, "3", 1, WGAN_MAX_DEPTH, NULL,
           "critic hidden ReLU layers"),
    WG_KEY("d_width", CFG_INT, d_width, "512", 1, 8192, NULL, "critic hidden width"),
    WG_KEY("init", CFG_ENUM, init, "he", 0, 0, init_choices,
           "he: tflib's He-uniform hidden layers, Glorot-uniform output, zero biases "
           "(gan_toy.py); torch: nn.Linear's U(+-1/sqrt(fan_in)) (WassersteinGAN main.py)"),
    WG_KEY("n_critic", CFG_INT, n_critic, "5", 1, 100000, NULL,
           "critic updates per generator update (WGAN Algorithm 1)"),
    WG_KEY("diters_start", CFG_INT, diters_start, "100", 1, 100000, NULL,
           "critic updates per generator update during the start and every diters_every"),
    WG_KEY("diters_start_gens", CFG_INT, diters_start_gens, "25", 0, 100000000, NULL,
           "generator updates at the start that get diters_start critic updates"),
    WG_KEY("diters_every", CFG_INT, diters_every, "500", 0, 100000000, NULL,
           "every generator update divisible by this gets diters_start (0 = never)"),
    WG_KEY("gp_lambda", CFG_DOUBLE, gp_lambda, "0", 0, 1e6, NULL,
           "gradient penalty weight (WGAN-GP eq. 3; the paper's 10); 0 = none"),
    WG_KEY("eval_samples", CFG_INT, eval_samples, "1024", 16, 1000000, NULL,
           "fixed noise batch for modes / hq_frac and samples.csv"),
    WG_KEY("layer_grads", CFG_BOOL, layer_grads, "false", 0, 1, NULL,
           "log the critic loss's gradient norm w.r.t. each hidden layer (layer_grads.csv)"),
    WG_KEY("map_points", CFG_INT, map_points, "64", 2, 1024, NULL,
           "critic value map resolution (critic_map.csv)"),
    WG_KEY("map_range", CFG_DOUBLE, map_range, "3", 0.01, 1000, NULL,
           "critic value map half-width (gan_toy.py's RANGE)"),
};
/* dataset_size only matters for the fixed 25gaussians set */
static const char *wgan_unused(const void *sp, const CfgKey *k) {
    const WganConfig *s = sp;
    if (!strcmp(k->name, "dataset_size") && s->dataset != WGAN_25GAUSSIANS)
        return "only 25gaussians is a fixed set";
    return NULL;
}

static const CfgSection wgan_section = {"wgan", wgan_keys,
                                        (int)(sizeof wgan_keys / sizeof *wgan_keys),
                                        "WGAN / WGAN-GP on 2-D toy data", wgan_unused};

static const char *const wgan_groups[] = {"critic", "generator", NULL};

/* ------------------------------------------------------------- datasets */

/* gan_toy.py's 8gaussians: scale 2, the four axis and four diagonal unit
 * vectors; point = randn(2) * 0.02 + random.choice(centres), then / 1.414
 * (in float32, as numpy divides the float32 array). */
static void centre_8(int k, double *cx, double *cy) {
    static const double u[8][2] = {{1, 0}, {-1, 0}, {0, 1}, {0, -1}, {1, 1}, {1, -1}, {-1, 1},
                                   {-1, -1}};
    double s = k < 4 ? 1.0 : 1.0 / sqrt(2.0);
    *cx = 2.0 * (u[k][0] * s);
    *cy = 2.0 * (u[k][1] * s);
}

int wgan_modes(int kind, float *centres, double *std) {
    if (kind == WGAN_8GAUSSIANS) {
        for (int k = 0; k < 8; k++) {
            double cx, cy;
            centre_8(k, &cx, &cy);
            centres[2 * k] = (float)cx / 1.414f;
            centres[2 * k + 1] = (float)cy / 1.414f;
        }
        *std = 0.02 / 1.414;
        return 8;
    }
    if (kind == WGAN_25GAUSSIANS) {
        int k = 0;
        for (int x = -2; x <= 2; x++)
            for (int y = -2; y <= 2; y++, k++) {
                centres[2 * k] = (float)(2 * x) / 2.828f;
                centres[2 * k + 1] = (float)(2 * y) / 2.828f;
            }
        *std = 0.05 / 2.828;
        return 25;
    }
    *std = NAN;
    return 0;
}

void wgan_data_init(WganData *d, int kind, int dataset_size, Rng *r) {
    memset(d, 0, sizeof *d);
    d->kind = kind;
    if (kind != WGAN_25GAUSSIANS) return;
    /* for i in range(size/25): for x, y in grid: randn(2)*0.05 + (2x, 2y);
     * np.random.shuffle (Fisher-Yates from the end); / 2.828 */
    d->n = dataset_size / 25 * 25;
    d->set = xmalloc((size_t)d->n * 2 * sizeof *d->set);
    int i = 0;
    for (int rep = 0; rep < dataset_size / 25; rep++)
        for (int x = -2; x <= 2; x++)
            for (int y = -2; y <= 2; y++, i++) {
                double px = rng_normal(r) * 0.05, py = rng_normal(r) * 0.05;
                d->set[2 * i] = (float)(px + 2 * x);
                d->set[2 * i + 1] = (float)(py + 2 * y);
            }
    for (int k = d->n - 1; k > 0; k--) {
        int j = (int)rng_below(r, (uint32_t)k + 1);
        float t0 = d->set[2 * k], t1 = d->set[2 * k + 1];
        d->set[2 * k] = d->set[2 * j], d->set[2 * k + 1] = d->set[2 * j + 1];
        d->set[2 * j] = t0, d->set[2 * j + 1] = t1;
    }
    for (int k = 0; k < 2 * d->n; k++) d->set[k] /= 2.828f;
}

void wgan_data_free(WganData *d) {
    free(d->set);
    d->set = NULL;
}

void wgan_data_next(WganData *d, Rng *r, float *out, int B) {
    if (d->kind == WGAN_8GAUSSIANS) {
        for (int i = 0; i < B; i++) {
            double px = rng_normal(r) * 0.02, py = rng_normal(r) * 0.02;
            double cx, cy;
            centre_8((int)rng_below(r, 8), &cx, &cy);
            out[2 * i] = (float)(px + cx) / 1.414f;
            out[2 * i + 1] = (float)(py + cy) / 1.414f;
        }
    } else if (d->kind == WGAN_25GAUSSIANS) {
        /* consecutive batches of the set; the tail that does not fill a batch is
         * skipped and the set starts again (gan_toy.py's generator loop) */
        ASSERT(B <= d->n, "batch %d larger than the 25gaussians set (%d)", B, d->n);
        if (d->pos + B > d->n) d->pos = 0;
        memcpy(out, d->set + 2 * (size_t)d->pos, (size_t)B * 2 * sizeof *out);
        d->pos += B;
    } else {
        /* sklearn make_swiss_roll(B, noise=0.25): t = 1.5 pi (1 + 2 U), y = 21 U,
         * X = (t cos t, y, t sin t) + 0.25 N(0, I_3) drawn row by row; columns
         * [0, 2] / 7.5 */
        double *t = xmalloc((size_t)B * sizeof *t);
        for (int i = 0; i < B; i++) t[i] = 1.5 * M_PI * (1.0 + 2.0 * rng_uniform(r));
        for (int i = 0; i < B; i++) (void)rng_uniform(r); /* the roll's height, unused */
        for (int i = 0; i < B; i++) out[2 * i] = (float)(t[i] * cos(t[i]) + 0.25 * rng_normal(r));
        for (int i = 0; i < B; i++) (void)rng_normal(r);
        for (int i = 0; i < B; i++)
            out[2 * i + 1] = (float)(t[i] * sin(t[i]) + 0.25 * rng_normal(r));
        for (int i = 0; i < 2 * B; i++) out[i] /= 7.5f;
        free(t);
    }
}

/* ------------------------------------------------------------- networks */

void wgan_mlp_build(WganMlp *m, const char *name, int in, int width, int depth, int out,
                    int init, Rng *r) {
    ASSERT(depth >= 1 && depth <= WGAN_MAX_DEPTH, "mlp depth %d", depth);
    m->in = in, m->width = width, m->depth = depth, m->out = out;
    param_set_init(&m->ps, name, 2 * depth + 2);
    char pn[32];
    for (int l = 0; l <= depth; l++) {
        int fi = l == 0 ? in : width, fo = l == depth ? out : width;
        snprintf(pn, sizeof pn, "w%d", l);
        m->w[l] = param_add(&m->ps, pn, 2, (int[]){fo, fi}, 1);
        snprintf(pn, sizeof pn, "b%d", l);
        m->b[l] = param_add(&m->ps, pn, 1, (int[]){fo}, 0);
    }
    param_alloc(&m->ps);
    for (int l = 0; l <= depth; l++) {
        int fi = l == 0 ? in : width, fo = l == depth ? out : width;
        if (init == WGAN_INIT_TORCH) {
            param_init_fanin_uniform(m->w[l], r, fi);
            param_init_fanin_uniform(m->b[l], r, fi);
        } else {
            /* tflib Linear: uniform with std sqrt(2/fan_in) ('he', the ReLU
             * layers) or sqrt(2/(fan_in+fan_out)) ('glorot', the output layer);
             * U(-a, a) has std a/sqrt(3); biases zero */
            double sd = l < depth ? sqrt(2.0 / fi) : sqrt(2.0 / (fi + fo));
            float a = (float)(sd * sqrt(3.0));
            param_init_uniform(m->w[l], r, -a, a);
        }
    }
}

Tensor *wgan_mlp_forward(Ctx *c, const WganMlp *m, Tensor *x, Tensor **z, Tensor **h) {
    for (int l = 0; l < m->depth; l++) {
        Tensor *zl = ad_linear(c, x, m->w[l], m->b[l]);
        x = ad_relu(c, zl);
        if (z) z[l] = zl;
        if (h) h[l] = x;
    }
    return ad_linear(c, x, m->w[m->depth], m->b[m->depth]);
}

/* The critic's backward pass for a seed of 1 per example, written forward:
 * g = 1 W_o [N,H]; for each hidden layer from the top, g = relu_grad(g, z_l) W_l. */
Tensor *wgan_critic_input_grad(Ctx *c, const WganMlp *d, Tensor *const *z, int N) {
    ASSERT(d->out == 1, "the critic has one output, not %d", d->out);
    Tensor *ones = tensor_new2(c, N, 1, 0);
    for (int i = 0; i < N; i++) ones->data[i] = 1.0f;
    Tensor *g = ad_matmul(c, ones, d->w[d->depth]); /* [N,1] @ [1,H] */
    for (int l = d->depth - 1; l >= 0; l--)
        g = ad_matmul(c, ad_relu_grad(c, g, z[l]), d->w[l]); /* [N,OUT_l] @ [OUT_l,IN_l] */
    return g;
}

static double mean_rows(const float *v, int lo, int n) {
    double s = 0.0;
    for (int i = lo; i < lo + n; i++) s += v[i];
    return s / n;
}

Tensor *wgan_critic_loss(Wgan *m, Ctx *c, const float *real, const float *fake,
                         const float *alpha, int B, double lambda, int with_gp,
                         WganCriticStats *st, Tensor **h) {
    const WganMlp *d = &m->critic;
    /* real and fake through the critic as one [2B,2] batch: one GEMM per layer */
    Tensor *x = tensor_new2(c, 2 * B, 2, 0);
    memcpy(x->data, real, (size_t)B * 2 * sizeof(float));
    memcpy(x->data + 2 * B, fake, (size_t)B * 2 * sizeof(float));
    Tensor *out = wgan_mlp_forward(c, d, x, NULL, h);
    /* E D(fake) - E D(real) = sum_i out_i s_i with s = -1/B (real), +1/B (fake) */
    Tensor *s = tensor_new2(c, 2 * B, 1, 0);
    for (int i = 0; i < 2 * B; i++) s->data[i] = (i < B ? -1.0f : 1.0f) / (float)B;
    Tensor *loss = ad_sum(c, ad_mul(c, out, s));
    WganCriticStats local;
    if (!st) st = &local;
    st->d_real = mean_rows(out->data, 0, B);
    st->d_fake = mean_rows(out->data, B, B);
    st->gp = st->slope = NAN;
    if (lambda > 0.0 || with_gp) {
        /* xhat = alpha real + (1 - alpha) fake, alpha ~ U[0,1] per example */
        Tensor *xh = tensor_new2(c, B, 2, 0);
        for (int i = 0; i < B; i++)
            for (int k = 0; k < 2; k++)
                xh->data[2 * i + k] = alpha[i] * real[2 * i + k] + (1.0f - alpha[i]) * fake[2 * i + k];
        /* the forward of xhat only provides the ReLU masks (z); it needs no tape */
        Tensor *z[WGAN_MAX_DEPTH];
        int prev = ctx_set_grad(c, 0);
        wgan_mlp_forward(c, d, xh, z, NULL);
        if (lambda > 0.0) ctx_set_grad(c, prev);
        Tensor *g = wgan_critic_input_grad(c, d, z, B);
        Tensor *gp = ad_gradient_penalty(c, g);
        ctx_set_grad(c, prev);
        st->gp = gp->data[0];
        double sl = 0.0;
        for (int i = 0; i < B; i++)
            sl += sqrt((double)g->data[2 * i] * g->data[2 * i] +
                       (double)g->data[2 * i + 1] * g->data[2 * i + 1]);
        st->slope = sl / B;
        if (lambda > 0.0) loss = ad_add(c, loss, ad_scale(c, gp, (float)lambda));
    }
    return loss;
}

Tensor *wgan_gen_loss(Wgan *m, Ctx *c, const float *noise, int B) {
    Tensor *zn = tensor_from(c, 2, (int[]){B, m->cfg.noise_dim}, noise);
    Tensor *fake = wgan_mlp_forward(c, &m->gen, zn, NULL, NULL);
    return ad_scale(c, ad_mean(c, wgan_mlp_forward(c, &m->critic, fake, NULL, NULL)), -1.0f);
}

/* The step's batch buffers for K micro-batches of m->batch rows each. */
static void alloc_batches(Wgan *m, int K) {
    size_t B = (size_t)m->batch * (size_t)K, NZ = (size_t)m->cfg.noise_dim;
    free(m->real), free(m->fake), free(m->noise), free(m->alpha), free(m->micro_stats);
    m->micro = K;
    m->real = xmalloc(B * 2 * sizeof(float));
    m->fake = xmalloc(B * 2 * sizeof(float));
    m->noise = xmalloc(B * NZ * sizeof(float));
    m->alpha = xmalloc(B * sizeof(float));
    m->micro_stats = xmalloc((size_t)K * 4 * sizeof *m->micro_stats);
}

void wgan_build(Wgan *m, const WganConfig *cfg, int batch, Rng *r) {
    m->real = m->fake = m->noise = m->alpha = NULL;
    m->micro_stats = NULL;
    m->cfg = *cfg;
    m->batch = batch;
    wgan_mlp_build(&m->gen, "generator", cfg->noise_dim, cfg->g_width, cfg->g_depth, 2,
                   cfg->init, r);
    wgan_mlp_build(&m->critic, "critic", 2, cfg->d_width, cfg->d_depth, 1, cfg->init, r);
    size_t NZ = (size_t)cfg->noise_dim;
    alloc_batches(m, 1);
    m->eval_noise = xmalloc((size_t)cfg->eval_samples * NZ * sizeof(float));
    m->eval_pts = xmalloc((size_t)cfg->eval_samples * 2 * sizeof(float));
}

void wgan_free(Wgan *m) {
    param_set_free(&m->gen.ps);
    param_set_free(&m->critic.ps);
    wgan_data_free(&m->data);
    free(m->real), free(m->fake), free(m->noise), free(m->alpha), free(m->eval_noise);
    free(m->eval_pts), free(m->micro_stats);
}

/* ------------------------------------------------------------- metrics */

int wgan_mode_quality(int kind, const float *pts, int N, double *hq) {
    float cen[50];
    double std;
    int k = wgan_modes(kind, cen, &std);
    if (k == 0) {
        *hq = NAN;
        return -1;
    }
    int covered[25] = {0}, good = 0;
    for (int i = 0; i < N; i++) {
        double best = INFINITY;
        int bj = 0;
        for (int j = 0; j < k; j++) {
            double dx = pts[2 * i] - cen[2 * j], dy = pts[2 * i + 1] - cen[2 * j + 1];
            double d2 = dx * dx + dy * dy;
            if (d2 < best) best = d2, bj = j;
        }
        if (sqrt(best) <= 3.0 * std) good++, covered[bj] = 1;
    }
    int nc = 0;
    for (int j = 0; j < k; j++) nc += covered[j];
    *hq = (double)good / N;
    return nc;
}

double wgan_at_bounds(const WganMlp *d, double c) {
    if (!(c > 0.0)) return NAN;
    size_t n = 0;
    for (size_t i = 0; i < d->ps.n; i++) n += fabs((double)d->ps.data[i]) >= 0.99 * c;
    return (double)n / (double)d->ps.n;
}

/* ------------------------------------------------------------- training */

enum { M_WASS, M_CLOSS, M_GLOSS, M_GP, M_SLOPE, M_BOUNDS, M_MODES, M_HQ, M_DUPD, M_COUNT };
static const char *const metric_names[M_COUNT] = {
    "wasserstein", "critic_loss", "gen_loss", "gp", "grad_x_norm",
    "critic_at_bounds", "modes", "hq_frac", "critic_updates"};

static void draw_normals(Rng *r, float *v, size_t n) {
    for (size_t i = 0; i < n; i++) v[i] = (float)rng_normal(r);
}

/* fake = G(noise) without a tape, into m->fake (the critic's input is data) */
static void generate(Wgan *m, Ctx *c, const float *noise, int N, float *out) {
    int prev = ctx_set_grad(c, 0);
    Tensor *f = wgan_mlp_forward(c, &m->gen, tensor_from(c, 2, (int[]){N, m->cfg.noise_dim}, noise),
                                 NULL, NULL);
    memcpy(out, f->data, (size_t)N * 2 * sizeof(float));
    ctx_set_grad(c, prev);
}

/* trainer_step's loss functions: the trainer freezes the other group */
/* trainer_step's loss functions: the trainer freezes the other group. Each
 * computes micro-batch tr->micro (rows i B .. i B + B - 1 of the step's K B):
 * with grad_accum = K on one process all of them, under mpirun each rank its
 * own, and the pipeline's all-reduce (step 5) sums the group's gradient. */
static Tensor *critic_loss_fn(void *mp, Ctx *c, Trainer *tr, void *arg) {
    Wgan *m = mp;
    const int *last = arg;
    size_t i = (size_t)tr->micro, B = (size_t)m->batch;
    WganCriticStats st;
    Tensor *loss = wgan_critic_loss(m, c, m->real + 2 * i * B, m->fake + 2 * i * B, m->alpha + i * B,
                                    m->batch, m->cfg.gp_lambda, *last, &st, NULL);
    double *v = m->micro_stats + 4 * i;
    v[0] = st.d_real, v[1] = st.d_fake, v[2] = st.gp, v[3] = st.slope;
    return loss;
}

static Tensor *gen_loss_fn(void *mp, Ctx *c, Trainer *tr, void *arg) {
    (void)arg;
    Wgan *m = mp;
    return wgan_gen_loss(m, c, m->noise + (size_t)tr->micro * m->batch * m->cfg.noise_dim, m->batch);
}

/* The critic's statistics of the update: the mean over its K micro-batches
 * (every rank the same, in micro-batch order; K = 1: that batch's). */
static void combine_stats(Wgan *m, Trainer *tr) {
    int K = m->micro;
    trainer_micro_gather(tr, m->micro_stats, 4);
    double v[4];
    for (int j = 0; j < 4; j++) {
        v[j] = m->micro_stats[j];
        for (int i = 1; i < K; i++) v[j] += m->micro_stats[4 * i + j];
        if (K > 1) v[j] /= K;
    }
    m->last_stats = (WganCriticStats){v[0], v[1], v[2], v[3]};
}

double wgan_critic_update(Wgan *m, Trainer *tr, int last) {
    int B = m->batch * m->micro; /* every micro-batch's data, drawn on every rank alike */
    wgan_data_next(&m->data, m->rng, m->real, B);
    draw_normals(m->rng, m->noise, (size_t)B * m->cfg.noise_dim);
    for (int i = 0; i < B; i++) m->alpha[i] = (float)rng_uniform(m->rng);
    ctx_reset(&tr->ctx);
    generate(m, &tr->ctx, m->noise, B, m->fake);
    UpdateGroup *g = m->g_critic;
    m->critic_updates++;
    for (int i = 0; i < 4 * m->micro; i++) m->micro_stats[i] = NAN; /* a stopped step computes none */
    double loss = trainer_step(tr, &g, 1, critic_loss_fn, m, &last);
    combine_stats(m, tr);
    return loss;
}

double wgan_gen_update(Wgan *m, Trainer *tr) {
    draw_normals(m->rng, m->noise, (size_t)m->batch * m->micro * m->cfg.noise_dim);
    UpdateGroup *g = m->g_gen;
    return trainer_step(tr, &g, 1, gen_loss_fn, m, NULL);
}

/* layer_grads.csv: ||d(E D(fake) - E D(real)) / d h_l|| for each hidden layer,
 * on the step's last real and fake batch. A measurement, not an update: the
 * critic is frozen (no parameter gradient is touched) and the input carries a
 * gradient so the activations get one; so this one backward is the model's. */
static void log_layer_grads(Wgan *m, Trainer *tr) {
    FILE *f = m->layer_csv;
    int D = m->critic.depth;
    if (!f) {
        char path[600];
        snprintf(path, sizeof path, "%s/layer_grads.csv.tmp", m->out_dir);
        f = m->layer_csv = fopen(path, "w");
        if (!f) die("cannot write %s: %s", path, strerror(errno));
        fprintf(f, "step");
        for (int l = 0; l < D; l++) fprintf(f, ",layer%d", l + 1);
        fputc('\n', f);
    }
    Ctx *c = &tr->ctx;
    ctx_reset(c);
    param_set_requires_grad(&m->critic.ps, 0);
    Tensor *h[WGAN_MAX_DEPTH];
    int B = m->batch;
    /* the input needs a gradient for the activations to get one */
    Tensor *x = tensor_new2(c, 2 * B, 2, 1);
    memcpy(x->data, m->real, (size_t)B * 2 * sizeof(float));
    memcpy(x->data + 2 * B, m->fake, (size_t)B * 2 * sizeof(float));
    Tensor *out = wgan_mlp_forward(c, &m->critic, x, NULL, h);
    Tensor *s = tensor_new2(c, 2 * B, 1, 0);
    for (int i = 0; i < 2 * B; i++) s->data[i] = (i < B ? -1.0f : 1.0f) / (float)B;
    ad_backward(c, ad_sum(c, ad_mul(c, out, s)), 1.0f);
    param_set_requires_grad(&m->critic.ps, 1);
    fprintf(f, "%ld", tr->step);
    for (int l = 0; l < D; l++) {
        double ss = 0.0;
        for (size_t i = 0; i < h[l]->n; i++) ss += (double)h[l]->grad[i] * h[l]->grad[i];
        fprintf(f, ",%.9g", sqrt(ss));
    }
    fputc('\n', f);
    ctx_reset(c);
}

/* c of the critic's weight clamp ([clip.critic] weight), NaN when off */
static double clip_bound(const Wgan *m) {
    const UpdateGroup *g = m->g_critic;
    return g->clip.nwsel > 0 && g->clip.cfg.weight > 0 ? g->clip.cfg.weight : NAN;
}

static double wgan_step(void *mp, Trainer *tr) {
    Wgan *m = mp;
    const WganConfig *cfg = &m->cfg;
    long gi = tr->step;
    int diters = gi < cfg->diters_start_gens ||
                         (cfg->diters_every > 0 && gi % cfg->diters_every == 0)
                     ? cfg->diters_start
                     : cfg->n_critic;
    m->last_stats = (WganCriticStats){NAN, NAN, NAN, NAN};
    double closs = NAN;
    for (int j = 0; j < diters && !tr->diverged; j++) closs = wgan_critic_update(m, tr, j == diters - 1);
    WganCriticStats st = m->last_stats;
    if (cfg->layer_grads && !tr->diverged && dist_rank() == 0) log_layer_grads(m, tr); /* rank 0 writes */
    double gloss = tr->diverged ? NAN : wgan_gen_update(m, tr);
    trainer_set_metric(tr, m->col[M_WASS], st.d_real - st.d_fake);
    trainer_set_metric(tr, m->col[M_CLOSS], closs);
    trainer_set_metric(tr, m->col[M_GLOSS], gloss);
    trainer_set_metric(tr, m->col[M_GP], st.gp);
    trainer_set_metric(tr, m->col[M_SLOPE], st.slope);
    trainer_set_metric(tr, m->col[M_BOUNDS], wgan_at_bounds(&m->critic, clip_bound(m)));
    /* mode metrics on the fixed noise batch */
    int E = cfg->eval_samples;
    ctx_reset(&tr->ctx);
    generate(m, &tr->ctx, m->eval_noise, E, m->eval_pts);
    ctx_reset(&tr->ctx);
    double hq;
    int modes = wgan_mode_quality(cfg->dataset, m->eval_pts, E, &hq);
    trainer_set_metric(tr, m->col[M_MODES], modes < 0 ? NAN : modes);
    trainer_set_metric(tr, m->col[M_HQ], hq);
    trainer_set_metric(tr, m->col[M_DUPD], (double)m->critic_updates);
    return closs;
}

static void *wgan_create(Trainer *tr, const void *cfgp) {
    const WganConfig *cfg = cfgp;
    Wgan *m = xcalloc(1, sizeof *m);
    if (cfg->dataset == WGAN_25GAUSSIANS && tr->train.batch_size > cfg->dataset_size / 25 * 25)
        die("[train] batch_size = %d is larger than [wgan] dataset_size = %d", tr->train.batch_size,
            cfg->dataset_size);
    int K = trainer_micro_batches(tr);
    if (cfg->dataset == WGAN_25GAUSSIANS && (long)K * tr->train.batch_size > cfg->dataset_size / 25 * 25)
        die("[train] batch_size = %d x %d micro-batches (grad_accum x ranks) is larger than [wgan] "
            "dataset_size = %d", tr->train.batch_size, K, cfg->dataset_size);
    wgan_build(m, cfg, tr->train.batch_size, &tr->rng);
    if (K > 1) alloc_batches(m, K);
    m->rng = &tr->rng;
    wgan_data_init(&m->data, cfg->dataset, cfg->dataset_size, &tr->rng);
    draw_normals(&tr->rng, m->eval_noise, (size_t)cfg->eval_samples * cfg->noise_dim);
    snprintf(m->out_dir, sizeof m->out_dir, "%s", tr->run.out_dir);
    m->g_critic = trainer_add_group(tr, &m->critic.ps);
    m->g_gen = trainer_add_group(tr, &m->gen.ps);
    for (int i = 0; i < M_COUNT; i++) m->col[i] = trainer_add_metric(tr, metric_names[i]);
    return m;
}

/* ------------------------------------------------------------- outputs */

static FILE *open_tmp(const char *dir, const char *name, char *tmp, char *path) {
    snprintf(path, 600, "%s/%s", dir, name);
    snprintf(tmp, 608, "%s.tmp", path);
    FILE *f = fopen(tmp, "w");
    if (!f) fprintf(stderr, "cliplab: error: cannot write %s: %s\n", tmp, strerror(errno));
    return f;
}

static int close_tmp(FILE *f, const char *tmp, const char *path) {
    if (ferror(f) | (fclose(f) != 0) || rename(tmp, path) != 0) {
        fprintf(stderr, "cliplab: error: cannot write %s: %s\n", path, strerror(errno));
        return -1;
    }
    return 0;
}

static void wgan_title(const void *mp, char *buf, size_t len);

static void wgan_finish(void *mp, Trainer *tr) {
    Wgan *m = mp;
    const WganConfig *cfg = &m->cfg;
    char tmp[608], path[600];
    Ctx *c = &tr->ctx;
    int E = cfg->eval_samples;
    /* samples.csv: E real points (own stream, so the run's draws are untouched)
     * and the generator's points on the fixed noise */
    FILE *f = open_tmp(m->out_dir, "samples.csv", tmp, path);
    if (f) {
        float *pts = xmalloc((size_t)E * 2 * sizeof *pts);
        Rng r;
        rng_seed(&r, (uint64_t)tr->run.seed, 77);
        WganData d;
        wgan_data_init(&d, cfg->dataset, cfg->dataset_size, &r);
        int chunk = d.n > 0 && d.n < E ? d.n : E;
        fprintf(f, "kind,x,y\n");
        for (int done = 0; done < E; done += chunk) {
            int k = E - done < chunk ? E - done : chunk;
            wgan_data_next(&d, &r, pts, k);
            for (int i = 0; i < k; i++) fprintf(f, "real,%.7g,%.7g\n", pts[2 * i], pts[2 * i + 1]);
        }
        wgan_data_free(&d);
        ctx_reset(c);
        generate(m, c, m->eval_noise, E, pts);
        ctx_reset(c);
        for (int i = 0; i < E; i++) fprintf(f, "generated,%.7g,%.7g\n", pts[2 * i], pts[2 * i + 1]);
        free(pts);
        close_tmp(f, tmp, path);
    }
    /* critic_map.csv: D on a map_points^2 grid (gan_toy.py's generate_image) */
    f = open_tmp(m->out_dir, "critic_map.csv", tmp, path);
    if (f) {
        int P = cfg->map_points;
        Tensor *g = NULL;
        ctx_reset(c);
        int prev = ctx_set_grad(c, 0);
        Tensor *x = tensor_new2(c, P * P, 2, 0);
        for (int i = 0; i < P; i++)
            for (int j = 0; j < P; j++) {
                x->data[2 * (i * P + j)] = (float)(-cfg->map_range + 2 * cfg->map_range * j / (P - 1));
                x->data[2 * (i * P + j) + 1] = (float)(-cfg->map_range + 2 * cfg->map_range * i / (P - 1));
            }
        g = wgan_mlp_forward(c, &m->critic, x, NULL, NULL);
        ctx_set_grad(c, prev);
        fprintf(f, "x,y,critic\n");
        for (int i = 0; i < P * P; i++)
            fprintf(f, "%.7g,%.7g,%.9g\n", x->data[2 * i], x->data[2 * i + 1], g->data[i]);
        ctx_reset(c);
        close_tmp(f, tmp, path);
    }
    /* critic_weights.csv: every critic parameter, for the weight histogram */
    f = open_tmp(m->out_dir, "critic_weights.csv", tmp, path);
    if (f) {
        fprintf(f, "tensor,value\n");
        for (int i = 0; i < m->critic.ps.count; i++) {
            const Param *p = &m->critic.ps.params[i];
            for (size_t k = 0; k < p->t.n; k++) fprintf(f, "%s,%.9g\n", p->name, p->t.data[k]);
        }
        close_tmp(f, tmp, path);
    }
    if (tr->run.plots) { /* "wgan_clip: WGAN on 8 Gaussians (3 x 128 MLPs), weight clamp 0.01, seed 1" */
        char what[CFG_STR_MAX + 200], clip[160];
        clipper_describe_run(&tr->groups[0].clip, clip, sizeof clip);
        int k = snprintf(what, sizeof what, "%s: ", tr->run.name);
        wgan_title(m, what + k, sizeof what - (size_t)k);
        k = (int)strlen(what);
        if (strcmp(clip, "none"))
            snprintf(what + k, sizeof what - (size_t)k, ", %s, seed %ld", clip, tr->run.seed);
        else if (cfg->gp_lambda > 0)
            snprintf(what + k, sizeof what - (size_t)k, ", gradient penalty %g, seed %ld", cfg->gp_lambda,
                     tr->run.seed);
        else
            snprintf(what + k, sizeof what - (size_t)k, ", no constraint, seed %ld", tr->run.seed);
        wgan_run_plot(&tr->log, tr->run.name, what, m->out_dir);
    }
}

/* Checkpoint state besides the parameters and tr->rng (which the trainer
 * saves): the position in the 25gaussians set and the critic-update count. */
#define WGAN_STATE_MAGIC 0x31534757u /* "WGS1" */

static int wgan_save_state(const void *mp, FILE *f) {
    const Wgan *m = mp;
    int64_t v[4] = {WGAN_STATE_MAGIC, m->data.n, m->data.pos, m->critic_updates};
    return io_put(f, v, sizeof *v, 4);
}

static int wgan_load_state(void *mp, FILE *f) {
    Wgan *m = mp;
    int64_t v[4];
    if (io_get(f, v, sizeof *v, 4) != 0 || v[0] != WGAN_STATE_MAGIC || v[1] != m->data.n ||
        v[2] < 0 || v[2] > m->data.n) {
        fprintf(stderr, "cliplab: error: wgan checkpoint state is truncated or from another data set\n");
        return -1;
    }
    m->data.pos = (int)v[2];
    m->critic_updates = (long)v[3];
    return 0;
}

static void wgan_destroy(void *mp) {
    Wgan *m = mp;
    if (m->layer_csv) {
        char tmp[608], path[600];
        snprintf(path, sizeof path, "%s/layer_grads.csv", m->out_dir);
        snprintf(tmp, sizeof tmp, "%s.tmp", path);
        close_tmp(m->layer_csv, tmp, path);
    }
    wgan_free(m);
    free(m);
}

/* The model's own constraint besides the weight clamp (a legend's words). */
static void wgan_describe(const void *mp, char *buf, size_t len) {
    const WganConfig *cfg = &((const Wgan *)mp)->cfg;
    if (cfg->gp_lambda > 0)
        snprintf(buf, len, "gradient penalty %g", cfg->gp_lambda);
    else
        buf[0] = '\0';
}

static void wgan_title(const void *mp, char *buf, size_t len) {
    const WganConfig *cfg = &((const Wgan *)mp)->cfg;
    static const char *const sets[] = {"8 Gaussians", "25 Gaussians", "Swiss roll"};
    snprintf(buf, len, "WGAN on %s (%d x %d MLPs)", sets[cfg->dataset], cfg->d_depth, cfg->d_width);
}

/* Several seeds compared (make wgan-seeds): each configuration's median and band of these */
static const char *const wgan_compare_columns[] = {"wasserstein", "grad_x_norm", "modes", "hq_frac", NULL};
static const char *const wgan_compare_titles[] = {
    "wasserstein: the estimate E D(real) - E D(fake)", "grad_x_norm: critic slope ||grad_x D|| (penalty's target 1)",
    "modes: modes covered (a generated point within 3 std)", "hq_frac: share of generated points within 3 std of a mode", NULL};

const ModelDef wgan_model = {
    .name = "wgan",
    .summary = "WGAN critic + generator MLPs on 2-D toy data: weight clipping vs gradient "
               "penalty (Arjovsky et al. 2017; Gulrajani et al. 2017)",
    .section = &wgan_section,
    .cfg_size = sizeof(WganConfig),
    .groups = wgan_groups,
    .create = wgan_create,
    .step = wgan_step,
    .finish = wgan_finish,
    .save_state = wgan_save_state,
    .load_state = wgan_load_state,
    .destroy = wgan_destroy,
    /* the share of generated points within 3 std of a mode (NaN on the Swiss roll) */
    .main_metric = "hq_frac",
    .main_metric_higher = 1,
    .compare_plot = wgan_compare_plot,
    .compare_columns = wgan_compare_columns,
    .compare_column_titles = wgan_compare_titles,
    .describe = wgan_describe,
    .title = wgan_title,
};
