/* rnn.c: the vanilla RNN, its two synthetic tasks and its [rnn] section (see rnn.h).
 * Why the demo diverges: with W_hh orthogonal times a spectral radius above 1,
 * the BPTT Jacobian product prod_t diag(tanh'_t) W_hh can grow like rho^T along
 * directions where tanh is not saturated (Pascanu et al. 2013, section 3); an
 * SGD step along such a gradient throws the weights far away. Global-norm
 * clipping bounds that step (their Algorithm 1). */
#include "rnn.h"

#include <math.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common.h"
#include "ops.h"
#include "train.h"

static const char *const task_choices[] = {"adding", "temporal_order", NULL};
static const char *const init_choices[] = {"orthogonal", "uniform", NULL};

#define RNN_KEY(n, t, f, d, lo, hi, ch, h) {n, t, offsetof(RnnConfig, f), d, lo, hi, ch, h}
static const CfgKey rnn_keys[] = {
    RNN_KEY("task", CFG_ENUM, task, "adding", 0, 0, task_choices,
            "adding: regress the sum of two marked values; temporal_order: classify the "
            "order of two symbols"),
    RNN_KEY("seq_len", CFG_INT, seq_len, "50", 4, 10000, NULL,
            "sequence length T (BPTT depth)"),
    RNN_KEY("hidden", CFG_INT, hidden, "128", 1, 8192, NULL, "hidden units H"),
    RNN_KEY("init", CFG_ENUM, init, "orthogonal", 0, 0, init_choices,
            "W_hh initialisation: orthogonal * spectral_radius, or torch's uniform"),
    RNN_KEY("spectral_radius", CFG_DOUBLE, spectral_radius, "1.0", 0, 100, NULL,
            "spectral radius of the orthogonal W_hh (> 1 invites exploding gradients)"),
    RNN_KEY("eval_size", CFG_INT, eval_size, "512", 1, 1000000, NULL,
            "held-out sequences for val_loss"),
    RNN_KEY("final_eval_size", CFG_INT, final_eval_size, "10000", 0, 10000000, NULL,
            "fresh held-out sequences for val_success (and val_acc) after the last step; "
            "Pascanu et al. 2013 use 10,000; 0 = off"),
};
static const CfgSection rnn_section = {"rnn", rnn_keys, (int)(sizeof rnn_keys / sizeof *rnn_keys),
                                       "vanilla RNN on the adding / temporal order problems", NULL};

int rnn_input_dim(RnnTask task) { return task == RNN_TASK_ADDING ? 2 : 6; }
int rnn_output_dim(RnnTask task) { return task == RNN_TASK_ADDING ? 1 : 4; }

/* Adding problem (Hochreiter & Schmidhuber 1997, exp. 4; Pascanu et al. 2013):
 * x_t = (value ~ U[0,1], marker); one marker in the first half, one in the
 * second half; target = sum of the two marked values. */
static void make_adding(Rng *r, int T, int B, float *x, float *y) {
    for (int b = 0; b < B; b++) {
        int m1 = (int)rng_below(r, (uint32_t)(T / 2));
        int m2 = T / 2 + (int)rng_below(r, (uint32_t)(T - T / 2));
        for (int t = 0; t < T; t++) {
            float *xt = x + ((size_t)t * B + b) * 2;
            xt[0] = (float)rng_uniform(r);
            xt[1] = (t == m1 || t == m2) ? 1.0f : 0.0f;
        }
        y[b] = x[((size_t)m1 * B + b) * 2] + x[((size_t)m2 * B + b) * 2];
    }
}

/* Temporal order problem (Hochreiter & Schmidhuber 1997, exp. 6a): one-hot
 * symbols {a,b,c,d} as distractors, X or Y at t1 in [T/10, 2T/10) and t2 in
 * [T/2, 6T/10); class = 2*(first is Y) + (second is Y). */
static void make_temporal_order(Rng *r, int T, int B, float *x, int *cls) {
    memset(x, 0, (size_t)T * B * 6 * sizeof *x);
    int span = T / 10 > 0 ? T / 10 : 1;
    for (int b = 0; b < B; b++) {
        int t1 = T / 10 + (int)rng_below(r, (uint32_t)span);
        int t2 = T / 2 + (int)rng_below(r, (uint32_t)span);
        int s1 = (int)rng_below(r, 2), s2 = (int)rng_below(r, 2);
        for (int t = 0; t < T; t++) {
            int sym = (int)rng_below(r, 4);
            if (t == t1) sym = 4 + s1;
            if (t == t2) sym = 4 + s2;
            x[((size_t)t * B + b) * 6 + sym] = 1.0f;
        }
        cls[b] = 2 * s1 + s2;
    }
}

void rnn_make_batch(Rng *r, RnnTask task, int T, int B, float *x, float *y, int *cls) {
    if (task == RNN_TASK_ADDING)
        make_adding(r, T, B, x, y);
    else
        make_temporal_order(r, T, B, x, cls);
}

void rnn_build(Rnn *m, const RnnConfig *cfg, Rng *init_rng) {
    m->cfg = *cfg;
    int H = cfg->hidden;
    m->in_dim = rnn_input_dim(cfg->task);
    m->out_dim = rnn_output_dim(cfg->task);
    param_set_init(&m->ps, "model", 8);
    m->w_ih = param_add(&m->ps, "w_ih", 2, (int[]){H, m->in_dim}, 1);
    m->b_ih = param_add(&m->ps, "b_ih", 1, (int[]){H}, 0);
    m->w_hh = param_add(&m->ps, "w_hh", 2, (int[]){H, H}, 1);
    m->b_hh = param_add(&m->ps, "b_hh", 1, (int[]){H}, 0);
    m->w_out = param_add(&m->ps, "w_out", 2, (int[]){m->out_dim, H}, 1);
    m->b_out = param_add(&m->ps, "b_out", 1, (int[]){m->out_dim}, 0);
    param_alloc(&m->ps);
    /* torch.nn.RNN's default U(-1/sqrt(H), 1/sqrt(H)) for the input and output
     * maps; biases start at zero so the only scale in play is W_hh's. */
    param_init_fanin_uniform(m->w_ih, init_rng, H);
    param_init_fanin_uniform(m->w_out, init_rng, H);
    if (cfg->init == RNN_INIT_ORTHOGONAL)
        param_init_orthogonal(m->w_hh, init_rng, (float)cfg->spectral_radius);
    else
        param_init_fanin_uniform(m->w_hh, init_rng, H);
}

Tensor *rnn_output_on(Rnn *m, Ctx *c, const float *x, int B) {
    int T = m->cfg.seq_len, H = m->cfg.hidden;
    Tensor *X = tensor_from(c, 2, (int[]){T * B, m->in_dim}, x);
    /* all input projections in one GEMM: [T*B, I] -> [T*B, H] */
    Tensor *XW = ad_linear(c, X, m->w_ih, m->b_ih);
    Tensor *h = tensor_new2(c, B, H, 0);
    for (int t = 0; t < T; t++) {
        Tensor *pre = ad_add(c, ad_slice_rows(c, XW, t * B, B), ad_linear(c, h, m->w_hh, m->b_hh));
        h = ad_tanh(c, pre);
    }
    return ad_linear(c, h, m->w_out, m->b_out);
}

Tensor *rnn_loss_on(Rnn *m, Ctx *c, const float *x, const float *y, const int *cls, int B) {
    Tensor *out = rnn_output_on(m, c, x, B);
    if (m->cfg.task == RNN_TASK_ADDING)
        return ad_mse(c, out, tensor_from(c, 2, (int[]){B, 1}, y));
    return ad_cross_entropy(c, out, cls);
}

static void *rnn_create(Trainer *tr, const void *cfgp) {
    const RnnConfig *cfg = cfgp;
    Rnn *m = xcalloc(1, sizeof *m);
    rnn_build(m, cfg, &tr->rng);
    m->batch = tr->train.batch_size;
    m->data_rng = &tr->rng;
    size_t T = (size_t)cfg->seq_len, B = (size_t)m->batch, E = (size_t)cfg->eval_size;
    m->xbuf = xmalloc(T * B * (size_t)m->in_dim * sizeof(float));
    m->ybuf = xmalloc(B * sizeof(float));
    m->cbuf = xmalloc(B * sizeof(int));
    /* held-out set from its own stream, so it does not shift the training data */
    Rng eval_rng;
    rng_seed(&eval_rng, (uint64_t)tr->run.seed, 99);
    m->eval_x = xmalloc(T * E * (size_t)m->in_dim * sizeof(float));
    m->eval_y = xmalloc(E * sizeof(float));
    m->eval_c = xmalloc(E * sizeof(int));
    rnn_make_batch(&eval_rng, (RnnTask)cfg->task, (int)T, (int)E, m->eval_x, m->eval_y, m->eval_c);
    trainer_add_group(tr, &m->ps);
    m->col_acc = cfg->task == RNN_TASK_TEMPORAL_ORDER ? trainer_add_metric(tr, "val_acc") : -1;
    m->col_success = trainer_add_metric(tr, "val_success");
    return m;
}

static Tensor *rnn_loss(void *mp, Ctx *c, Trainer *tr) {
    (void)tr;
    Rnn *m = mp;
    rnn_make_batch(m->data_rng, (RnnTask)m->cfg.task, m->cfg.seq_len, m->batch, m->xbuf, m->ybuf,
                   m->cbuf);
    return rnn_loss_on(m, c, m->xbuf, m->ybuf, m->cbuf, m->batch);
}

/* A data-parallel rank's draw of another rank's micro-batch: the same draws, no forward. */
static void rnn_skip_batch(void *mp, Trainer *tr) {
    (void)tr;
    Rnn *m = mp;
    rnn_make_batch(m->data_rng, (RnnTask)m->cfg.task, m->cfg.seq_len, m->batch, m->xbuf, m->ybuf,
                   m->cbuf);
}

/* Pascanu, Mikolov & Bengio (2013), section 4: a run succeeds when fewer than
 * 1% of 10,000 fresh test sequences are misclassified (temporal order) or
 * have a squared error above 0.04 (adding). Fills acc (NaN for adding) and the
 * fraction of sequences that meet the criterion. The sequences come from their
 * own stream, drawn in chunks so the arena holds one chunk's activations. */
void rnn_success(Rnn *m, Ctx *c, uint64_t seed, int n, double *acc, double *success) {
    enum { CHUNK = 500 };
    int T = m->cfg.seq_len, task = m->cfg.task;
    float *x = xmalloc((size_t)T * CHUNK * (size_t)m->in_dim * sizeof *x);
    float y[CHUNK];
    int cls[CHUNK];
    Rng r;
    rng_seed(&r, seed, 100);
    long good = 0;
    for (int done = 0; done < n; done += CHUNK) {
        int B = n - done < CHUNK ? n - done : CHUNK;
        rnn_make_batch(&r, (RnnTask)task, T, B, x, y, cls);
        ctx_reset(c);
        const float *out = rnn_output_on(m, c, x, B)->data; /* [B, O] */
        for (int b = 0; b < B; b++) {
            if (task == RNN_TASK_ADDING) {
                double e = (double)out[b] - (double)y[b];
                good += e * e < 0.04;
            } else {
                const float *o = out + (size_t)b * 4;
                int best = 0;
                for (int k = 1; k < 4; k++) best = o[k] > o[best] ? k : best;
                good += best == cls[b];
            }
        }
    }
    ctx_reset(c);
    free(x);
    *success = n ? (double)good / n : NAN;
    *acc = task == RNN_TASK_ADDING ? NAN : *success;
}

static double rnn_evaluate(void *mp, Trainer *tr) {
    Rnn *m = mp;
    double loss =
        rnn_loss_on(m, &tr->ctx, m->eval_x, m->eval_y, m->eval_c, m->cfg.eval_size)->data[0];
    if (tr->step + 1 == tr->train.steps && m->cfg.final_eval_size > 0) {
        double acc, success;
        rnn_success(m, &tr->ctx, (uint64_t)tr->run.seed, m->cfg.final_eval_size, &acc, &success);
        if (m->col_acc >= 0) trainer_set_metric(tr, m->col_acc, acc);
        trainer_set_metric(tr, m->col_success, success);
        if (!tr->train.quiet)
            printf("%s: %d fresh held-out sequences: %.2f%% %s (Pascanu et al.'s success: "
                   "under 1%% wrong)\n", tr->run.name, m->cfg.final_eval_size, 100 * success,
                   m->cfg.task == RNN_TASK_ADDING ? "with squared error under 0.04"
                                                  : "classified right");
    }
    return loss;
}

/* Predicting the mean (1.0) of the sum of two U[0,1] gives MSE = 2/12; a
 * uniform guess over 4 classes gives cross-entropy ln 4. */
static double rnn_baseline(const void *mp) {
    const Rnn *m = mp;
    return m->cfg.task == RNN_TASK_ADDING ? 1.0 / 6.0 : log(4.0);
}

static void rnn_title(const void *mp, char *buf, size_t len) {
    const Rnn *m = mp;
    snprintf(buf, len, "Vanilla RNN, %s problem (T = %d)",
             m->cfg.task == RNN_TASK_ADDING ? "adding" : "temporal order", m->cfg.seq_len);
}

static void rnn_destroy(void *mp) {
    Rnn *m = mp;
    param_set_free(&m->ps);
    free(m->xbuf), free(m->ybuf), free(m->cbuf);
    free(m->eval_x), free(m->eval_y), free(m->eval_c);
    free(m);
}

const ModelDef rnn_model = {
    .name = "rnn",
    .summary = "vanilla tanh RNN, BPTT, adding / temporal order problems (Pascanu et al. 2013)",
    .section = &rnn_section,
    .cfg_size = sizeof(RnnConfig),
    .create = rnn_create,
    .loss = rnn_loss,
    .skip_batch = rnn_skip_batch,
    .evaluate = rnn_evaluate,
    .baseline_loss = rnn_baseline,
    .destroy = rnn_destroy,
    .title = rnn_title,
};
