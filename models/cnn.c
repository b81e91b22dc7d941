/* cnn.c: the tanh CNN of cnn.h, its [cnn] section, batches and evaluation
 * through imageset.h. Under [dp] it declares its training-set size to the
 * trainer and draws Poisson batches (the size varies, may be 0: a step of
 * noise alone, with no loss to log but 0). */
#include "cnn.h"

#include <math.h>
#include <stddef.h>
#include <string.h>

#include "common.h"
#include "ops.h"
#include "params.h"
#include "train.h"

static const char *const act_choices[] = {"tanh", "relu", NULL};

#define CNN_KEY(n, t, f, d, lo, hi, ch, h) {n, t, offsetof(CnnConfig, f), d, lo, hi, ch, h}
static const CfgKey cnn_keys[] = {
    CNN_KEY("act", CFG_ENUM, act, "tanh", 0, 0, act_choices,
            "activation after conv1, conv2 and fc1: tanh (bounded; Papernot et al. 2021) or relu"),
    IMAGESET_CFG_KEYS(CnnConfig, data),
};
static const CfgSection cnn_section = {"cnn", cnn_keys, (int)(sizeof cnn_keys / sizeof *cnn_keys),
                                       "the tanh CNN of Papernot et al. / Tramer and Boneh 2021 "
                                       "(Fashion-MNIST)", NULL};

typedef struct Cnn {
    CnnConfig cfg;
    ParamSet ps;
    Tensor *w1, *b1, *w2, *b2, *w3, *b3, *w4, *b4;
    ImageSet data;
    int m_acc, m_epoch;
    double epoch_per_step;        /* batch / N: the x axis of the figures */
} Cnn;

static Tensor *act(const Cnn *m, Ctx *c, Tensor *x) {
    return m->cfg.act == CNN_TANH ? ad_tanh(c, x) : ad_relu(c, x);
}

static Tensor *cnn_logits(void *mp, Ctx *c, const float *x, int B) {
    Cnn *m = mp;
    int shape[4] = {B, 1, m->data.rows, m->data.cols};
    Tensor *h = tensor_from(c, 4, shape, x);
    h = ad_maxpool2d(c, act(m, c, ad_conv2d(c, h, m->w1, m->b1, 2, 2)), 2, 1);
    h = ad_maxpool2d(c, act(m, c, ad_conv2d(c, h, m->w2, m->b2, 2, 0)), 2, 1);
    int flat[2] = {B, (int)(h->n / (size_t)B)};
    h = ad_reshape(c, h, 2, flat);
    h = act(m, c, ad_linear(c, h, m->w3, m->b3));
    return ad_linear(c, h, m->w4, m->b4);
}

static void declare(Cnn *m, int rows, int cols) {
    param_set_init(&m->ps, "model", 8);
    int s1[4] = {16, 1, 8, 8}, s2[4] = {32, 16, 4, 4};
    int h1 = (rows + 4 - 8) / 2 + 1 - 1, w1 = (cols + 4 - 8) / 2 + 1 - 1; /* conv1, pool1 */
    int h2 = (h1 - 4) / 2 + 1 - 1, w2 = (w1 - 4) / 2 + 1 - 1;             /* conv2, pool2 */
    ASSERT(h2 >= 1 && w2 >= 1, "cnn: images of %dx%d are too small", rows, cols);
    int s3[2] = {32, 32 * h2 * w2}, s4[2] = {10, 32};
    int b1[1] = {16}, b2[1] = {32}, b3[1] = {32}, b4[1] = {10};
    m->w1 = param_add(&m->ps, "conv1.w", 4, s1, 1);
    m->b1 = param_add(&m->ps, "conv1.b", 1, b1, 0);
    m->w2 = param_add(&m->ps, "conv2.w", 4, s2, 1);
    m->b2 = param_add(&m->ps, "conv2.b", 1, b2, 0);
    m->w3 = param_add(&m->ps, "fc1.w", 2, s3, 1);
    m->b3 = param_add(&m->ps, "fc1.b", 1, b3, 0);
    m->w4 = param_add(&m->ps, "fc2.w", 2, s4, 1);
    m->b4 = param_add(&m->ps, "fc2.b", 1, b4, 0);
    param_alloc(&m->ps);
}

/* PyTorch's Conv2d / Linear reset_parameters: U(-1/sqrt(fan_in), 1/sqrt(fan_in)). */
static void init(Cnn *m, Rng *r) {
    Tensor *w[4] = {m->w1, m->w2, m->w3, m->w4}, *b[4] = {m->b1, m->b2, m->b3, m->b4};
    for (int i = 0; i < 4; i++) {
        int fan_in = (int)(w[i]->n / (size_t)w[i]->shape[0]);
        param_init_fanin_uniform(w[i], r, fan_in);
        param_init_fanin_uniform(b[i], r, fan_in);
    }
}

static void *cnn_create(Trainer *tr, const void *cfgp) {
    const CnnConfig *cfg = cfgp;
    char err[1024];
    Cnn *m = xcalloc(1, sizeof *m);
    m->cfg = *cfg;
    ImageSet *d = &m->data;
    if (imageset_load(d, &cfg->data, "cnn", 10, err, sizeof err) != 0) die("%s", err);
    ops_set_threads(tr->train.threads);
    if (tr->train.batch_size > d->train.n)
        die("[train] batch_size = %d is larger than the %d training examples",
            tr->train.batch_size, d->train.n);
    declare(m, d->rows, d->cols);
    init(m, &tr->rng);
    ImageSampling smp = trainer_dp_poisson(tr) ? IMAGESET_POISSON : IMAGESET_SHUFFLE;
    if (imageset_start(d, &tr->rng, tr->train.batch_size, smp, err, sizeof err) != 0)
        die("%s", err);
    trainer_add_group(tr, &m->ps);
    trainer_dp_examples(tr, d->train.n);
    m->m_acc = trainer_add_metric(tr, "val_acc");
    m->m_epoch = trainer_add_metric(tr, "epoch");
    m->epoch_per_step = (double)tr->train.batch_size / d->train.n;
    if (!tr->train.quiet)
        printf("cnn: %zu parameters, act %s, %s batches of %d; %d training and %d test images "
               "from %s\n", m->ps.n, act_choices[cfg->act],
               smp == IMAGESET_POISSON ? "Poisson" : "shuffled", tr->train.batch_size,
               d->train.n, d->test.n, cfg->data.data_dir);
    return m;
}

static Tensor *cnn_loss(void *mp, Ctx *c, Trainer *tr) {
    Cnn *m = mp;
    int B = imageset_next(&m->data);
    trainer_set_metric(tr, m->m_acc, NAN);
    trainer_set_metric(tr, m->m_epoch, (double)(tr->step + 1) * m->epoch_per_step);
    if (B == 0) { /* an empty Poisson batch: nothing to differentiate */
        int one[1] = {1};
        return tensor_new(c, 1, one, 0);
    }
    return ad_cross_entropy(c, cnn_logits(m, c, m->data.x, B), m->data.y);
}

static double cnn_evaluate(void *mp, Trainer *tr) {
    Cnn *m = mp;
    double loss, acc;
    imageset_evaluate(&m->data, &m->data.test, m->data.test.n, &tr->ctx, cnn_logits, m, &loss,
                      &acc);
    trainer_set_metric(tr, m->m_acc, acc);
    return loss;
}

static double cnn_baseline(const void *mp) {
    return imageset_label_entropy(&((const Cnn *)mp)->data);
}

static int cnn_save_state(const void *mp, FILE *f) {
    return imageset_save_state(&((const Cnn *)mp)->data, f);
}

static int cnn_load_state(void *mp, FILE *f) { return imageset_load_state(&((Cnn *)mp)->data, f); }

static void cnn_describe(const void *mp, char *buf, size_t len) {
    snprintf(buf, len, "%s", act_choices[((const Cnn *)mp)->cfg.act]);
}

static void cnn_destroy(void *mp) {
    Cnn *m = mp;
    ops_num_threads = 1;
    param_set_free(&m->ps);
    imageset_free(&m->data);
    free(m);
}

static const char *const cnn_plot_columns[] = {"val_acc", NULL};

const ModelDef cnn_model = {
    .name = "cnn",
    .summary = "the tanh CNN of Papernot et al. / Tramer and Boneh 2021 on Fashion-MNIST (DP-SGD)",
    .section = &cnn_section,
    .cfg_size = sizeof(CnnConfig),
    .create = cnn_create,
    .loss = cnn_loss,
    .evaluate = cnn_evaluate,
    .baseline_loss = cnn_baseline,
    .save_state = cnn_save_state,
    .load_state = cnn_load_state,
    .describe = cnn_describe,
    .destroy = cnn_destroy,
    .main_metric = "val_acc",
    .main_metric_higher = 1,
    .plot_columns = cnn_plot_columns,
    .compare_plot = cnn_compare_plot,
};
