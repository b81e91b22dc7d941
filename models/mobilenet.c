/* mobilenet.c: the small MobileNetV2 of mobilenet.h, its [mobilenet] section,
 * the IDX data it trains on, evaluation (val_loss, val_acc), the per-layer
 * activation maxima it logs, and the low-precision evaluation after training
 * (quant.csv, quant.png).
 *
 * Why ReLU6 (Sandler et al. 2018, section 6.1, after Krizhevsky 2010): a
 * bounded activation has a range known in advance, [0, 6], so a fixed-point
 * format can cover it without calibration; ReLU's range is whatever training
 * made it, and one outlier stretches the quantisation step of every other
 * value. PACT learns the bound instead of fixing it. After training, finish()
 * evaluates the test set with every activation output fake-quantised to each
 * of [mobilenet] quant_bits (uniform, unsigned, over [0, 6] / [0, act_max] /
 * [0, alpha_layer], or for ReLU [0, max of the layer over calib_size training
 * images]) and writes what it measured.
 *
 * Data (imageset.h): batches walk a random permutation of the training set
 * drawn from the trainer's Rng at each epoch (the last partial batch of an
 * epoch is dropped); the permutation and position are checkpoint state. */
#include "mobilenet.h"

#include <errno.h>
#include <math.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "common.h"
#include "ops.h"
#include "plot.h"
#include "train.h"

#define BN_EPS 1e-5f /* torch.nn.BatchNorm2d default */

/* ------------------------------------------------------------------ config */

static const char *const act_choices[] = {"relu6", "relu", "clamp", "pact", NULL};
static const char *const init_choices[] = {"fan_out", "fan_in", NULL};

#define MB_KEY(n, t, f, d, lo, hi, ch, h) {n, t, offsetof(MobilenetConfig, f), d, lo, hi, ch, h}
static const CfgKey mb_keys[] = {
    MB_KEY("activation", CFG_ENUM, activation, "relu6", 0, 0, act_choices,
           "relu6 = min(max(0,x),6) (MobileNetV2); relu (unbounded); clamp = min(max(0,x),"
           "act_max); pact = min(max(0,x),alpha) with alpha learned per layer (Choi et al. 2018)"),
    MB_KEY("act_max", CFG_DOUBLE, act_max, "6", 1e-3, 1e6, NULL,
           "clamp level of activation = clamp"),
    MB_KEY("pact_init", CFG_DOUBLE, pact_init, "10", 1e-3, 1e6, NULL,
           "PACT: initial alpha of every layer (10 in the paper); weight-decayed with the weights"),
    MB_KEY("batchnorm", CFG_BOOL, batchnorm, "true", 0, 1, NULL,
           "conv + batchnorm (true), or conv with a bias and no normalisation (false)"),
    MB_KEY("bn_momentum", CFG_DOUBLE, bn_momentum, "0.1", 0, 1, NULL,
           "batchnorm running-statistics momentum (torch default 0.1)"),
    MB_KEY("init", CFG_ENUM, init, "fan_out", 0, 0, init_choices,
           "conv init: kaiming normal over fan_out (torchvision) or fan_in (keeps the forward "
           "signal's scale without batchnorm; He et al. 2015)"),
    MB_KEY("stem", CFG_INT, stem, "16", 1, 4096, NULL, "stem conv 3x3 output channels"),
    MB_KEY("stem_stride", CFG_INT, stem_stride, "2", 1, 4, NULL, "stem conv stride"),
    MB_KEY("blocks", CFG_STRING, blocks, "1:16:1:1,6:24:2:2,6:32:2:2", 0, 0, NULL,
           "inverted residual groups t:c:n:s (expansion, out channels, repeats, first stride), "
           "comma-separated, as torchvision's inverted_residual_setting"),
    MB_KEY("last_channels", CFG_INT, last_channels, "128", 1, 8192, NULL,
           "channels of the final 1x1 conv before pooling"),
    IMAGESET_CFG_KEYS(MobilenetConfig, data),
    MB_KEY("quant_bits", CFG_STRING, quant_bits, "8,6,5,4,3", 0, 0, NULL,
           "after training: test accuracy with every activation fake-quantised to each of "
           "these bit widths (1-16, comma-separated; empty = none) -> quant.csv, quant.png"),
    MB_KEY("calib_size", CFG_INT, calib_size, "256", 1, 100000, NULL,
           "ReLU's quantisation range: the max of each layer over this many training images"),
};
/* Keys a run does not read, for the unused-key warning. */
static const char *mb_unused(const void *sp, const CfgKey *k) {
    const MobilenetConfig *c = sp;
    if (!strcmp(k->name, "act_max") && c->activation != MB_CLAMP)
        return "read only with activation = clamp";
    if (!strcmp(k->name, "pact_init") && c->activation != MB_PACT)
        return "read only with activation = pact";
    if (!strcmp(k->name, "calib_size") && c->activation != MB_RELU)
        return "read only with activation = relu (the others have a range fixed in advance)";
    if (!strcmp(k->name, "bn_momentum") && !c->batchnorm) return "read only with batchnorm = true";
    return NULL;
}

static const CfgSection mb_section = {
    "mobilenet", mb_keys, (int)(sizeof mb_keys / sizeof *mb_keys),
    "small MobileNetV2 on Fashion-MNIST (IDX files); activation clipping and low precision",
    mb_unused};

void mobilenet_default_config(MobilenetConfig *cfg) {
    Config c;
    const CfgSection *secs[1] = {&mb_section};
    void *structs[1] = {cfg};
    cfg_init(&c, secs, structs, 1);
    cfg_free(&c);
}

int mobilenet_parse_blocks(const char *s, int (*tcns)[4], int max, char *err, size_t errlen) {
    int n = 0;
    const char *p = s;
    while (*p) {
        while (*p == ' ' || *p == ',') p++;
        if (!*p) break;
        int v[4], used = 0;
        if (sscanf(p, "%d:%d:%d:%d%n", &v[0], &v[1], &v[2], &v[3], &used) != 4 ||
            (p[used] && p[used] != ',' && p[used] != ' ')) {
            snprintf(err, errlen, "[mobilenet] blocks = '%s': cannot read group %d (accepted: "
                     "comma-separated t:c:n:s integers, e.g. 6:16:1:1,6:24:2:2)", s, n + 1);
            return -1;
        }
        if (v[0] < 1 || v[0] > 64 || v[1] < 1 || v[1] > 4096 || v[2] < 1 || v[2] > MB_MAX_BLOCKS ||
            v[3] < 1 || v[3] > 4) {
            snprintf(err, errlen, "[mobilenet] blocks = '%s': group %d = %d:%d:%d:%d out of range "
                     "(accepted: t 1-64, c 1-4096, n 1-%d, s 1-4)", s, n + 1, v[0], v[1], v[2],
                     v[3], MB_MAX_BLOCKS);
            return -1;
        }
        if (n == max) {
            snprintf(err, errlen, "[mobilenet] blocks = '%s': more than %d groups", s, max);
            return -1;
        }
        memcpy(tcns[n++], v, sizeof v);
        p += used;
    }
    if (n == 0) {
        snprintf(err, errlen, "[mobilenet] blocks is empty (accepted: t:c:n:s groups, e.g. "
                 "6:16:1:1,6:24:2:2)");
        return -1;
    }
    return n;
}

/* ------------------------------------------------------------------- model */

static void conv_declare(Mobilenet *m, MbConv *cv, const char *name, int cin, int cout, int k,
                         int stride, int depthwise) {
    char nm[PARAM_NAME_MAX];
    cv->stride = stride;
    cv->pad = k / 2;
    cv->depthwise = depthwise;
    snprintf(nm, sizeof nm, "%s.conv.w", name);
    cv->w = param_add(&m->ps, nm, 4, (int[]){cout, depthwise ? 1 : cin, k, k}, 1);
    if (!m->cfg.batchnorm) {
        snprintf(nm, sizeof nm, "%s.conv.b", name);
        cv->bias = param_add(&m->ps, nm, 1, (int[]){cout}, 0);
        return;
    }
    snprintf(nm, sizeof nm, "%s.bn.w", name);
    cv->bn_w = param_add(&m->ps, nm, 1, (int[]){cout}, 0);
    snprintf(nm, sizeof nm, "%s.bn.b", name);
    cv->bn_b = param_add(&m->ps, nm, 1, (int[]){cout}, 0);
    snprintf(nm, sizeof nm, "%s.bn.running_mean", name);
    cv->rmean = param_add_buffer(&m->ps, nm, 1, (int[]){cout});
    snprintf(nm, sizeof nm, "%s.bn.running_var", name);
    cv->rvar = param_add_buffer(&m->ps, nm, 1, (int[]){cout});
}

/* An activation layer: its name (metrics column) and, for PACT, its alpha. */
static int act_declare(Mobilenet *m, const char *name) {
    ASSERT(m->nacts < MB_MAX_ACTS, "too many activation layers");
    int k = m->nacts++;
    snprintf(m->act_names[k], sizeof m->act_names[k], "%s", name);
    if (m->cfg.activation == MB_PACT) {
        char nm[PARAM_NAME_MAX];
        snprintf(nm, sizeof nm, "%s.alpha", name);
        m->alpha[k] = param_add(&m->ps, nm, 1, (int[]){1}, 1); /* decayed (PACT, section 3) */
    }
    return k;
}

static void conv_init(MbConv *cv, Rng *r, int fan_in_mode) {
    /* kaiming_normal_(mode="fan_out"): fan_out = shape[0] * KH * KW (torch ignores groups);
     * mode="fan_in": fan_in = shape[1] * KH * KW */
    int fan = cv->w->shape[fan_in_mode ? 1 : 0] * cv->w->shape[2] * cv->w->shape[3];
    param_init_normal(cv->w, r, 0.0f, sqrtf(2.0f / (float)fan));
    if (cv->bn_w) {
        param_init_const(cv->bn_w, 1.0f);
        param_init_const(cv->rvar, 1.0f); /* running_var starts at 1, running_mean at 0 */
    }
}

void mobilenet_build(Mobilenet *m, const MobilenetConfig *cfg, int rows, int cols, int classes,
                     Rng *init_rng) {
    int tcns[MB_MAX_BLOCKS][4];
    char err[512];
    int ng = mobilenet_parse_blocks(cfg->blocks, tcns, MB_MAX_BLOCKS, err, sizeof err);
    ASSERT(ng > 0, "%s", err);
    m->cfg = *cfg;
    m->rows = rows, m->cols = cols, m->classes = classes;
    /* a rebuilt model keeps nothing of a previous one (its tensors are freed) */
    memset(&m->stem, 0, sizeof m->stem);
    memset(&m->head, 0, sizeof m->head);
    memset(m->blocks, 0, sizeof m->blocks);
    memset(m->alpha, 0, sizeof m->alpha);
    m->nacts = 0;
    param_set_init(&m->ps, "model", 16 + 16 * MB_MAX_BLOCKS);
    conv_declare(m, &m->stem, "stem", 1, cfg->stem, 3, cfg->stem_stride, 0);
    act_declare(m, "stem");
    int cin = cfg->stem;
    m->nblocks = 0;
    for (int g = 0; g < ng; g++)
        for (int i = 0; i < tcns[g][2]; i++) {
            ASSERT(m->nblocks < MB_MAX_BLOCKS, "more than %d blocks", MB_MAX_BLOCKS);
            int bi = m->nblocks++;
            MbBlock *b = &m->blocks[bi];
            char nm[24];
            b->cin = cin, b->cout = tcns[g][1], b->expand = tcns[g][0] != 1;
            b->hidden = cin * tcns[g][0];
            b->stride = i == 0 ? tcns[g][3] : 1;
            b->residual = b->stride == 1 && b->cin == b->cout;
            b->act_exp = -1;
            if (b->expand) {
                snprintf(nm, sizeof nm, "b%d.expand", bi);
                conv_declare(m, &b->exp, nm, cin, b->hidden, 1, 1, 0);
                b->act_exp = act_declare(m, nm);
            }
            snprintf(nm, sizeof nm, "b%d.dw", bi);
            conv_declare(m, &b->dw, nm, b->hidden, b->hidden, 3, b->stride, 1);
            b->act_dw = act_declare(m, nm);
            snprintf(nm, sizeof nm, "b%d.project", bi);
            conv_declare(m, &b->proj, nm, b->hidden, b->cout, 1, 1, 0);
            cin = b->cout;
        }
    conv_declare(m, &m->head, "head", cin, cfg->last_channels, 1, 1, 0);
    act_declare(m, "head");
    m->fc_w = param_add(&m->ps, "fc.w", 2, (int[]){classes, cfg->last_channels}, 1);
    m->fc_b = param_add(&m->ps, "fc.b", 1, (int[]){classes}, 0);
    param_alloc(&m->ps);
    /* init in declaration order, so a seed fixes every weight */
    int fi = cfg->init == MB_INIT_FAN_IN;
    conv_init(&m->stem, init_rng, fi);
    for (int i = 0; i < m->nblocks; i++) {
        if (m->blocks[i].expand) conv_init(&m->blocks[i].exp, init_rng, fi);
        conv_init(&m->blocks[i].dw, init_rng, fi);
        conv_init(&m->blocks[i].proj, init_rng, fi);
    }
    conv_init(&m->head, init_rng, fi);
    param_init_normal(m->fc_w, init_rng, 0.0f, 0.01f);
    for (int k = 0; k < m->nacts; k++)
        if (m->alpha[k]) param_init_const(m->alpha[k], (float)cfg->pact_init);
}

void mobilenet_free_params(Mobilenet *m) { param_set_free(&m->ps); }

/* conv, then BN (or the conv's own bias) */
static Tensor *conv_bn(const Mobilenet *m, Ctx *c, const MbConv *cv, Tensor *x) {
    Tensor *y = cv->depthwise ? ad_dwconv2d(c, x, cv->w, cv->bias, cv->stride, cv->pad)
                              : ad_conv2d(c, x, cv->w, cv->bias, cv->stride, cv->pad);
    if (!cv->bn_w) return y;
    return ad_batchnorm(c, y, cv->bn_w, cv->bn_b, cv->rmean->data, cv->rvar->data,
                        (float)m->cfg.bn_momentum, BN_EPS);
}

/* Activation layer k: the configured clip, its maximum recorded, and fake
 * quantisation when a quantised evaluation is running. */
static Tensor *activate(Mobilenet *m, Ctx *c, Tensor *x, int k) {
    Tensor *y;
    switch (m->cfg.activation) {
    case MB_RELU6: y = ad_relu6(c, x); break;
    case MB_RELU: y = ad_relu(c, x); break;
    case MB_CLAMP: y = ad_clamp(c, x, 0.0f, (float)m->cfg.act_max); break;
    default: y = ad_pact(c, x, m->alpha[k]); break;
    }
    if (m->record) {
        float v = act_max(y->data, y->n);
        m->act_seen[k] = isnan(v) || v > m->act_seen[k] ? v : m->act_seen[k];
    }
    if (m->quant_bits > 0) y = ad_fake_quant(c, y, m->quant_hi[k], m->quant_bits);
    return y;
}

Tensor *mobilenet_block_forward(Mobilenet *m, Ctx *c, int i, Tensor *x) {
    const MbBlock *b = &m->blocks[i];
    Tensor *y = x;
    if (b->expand) y = activate(m, c, conv_bn(m, c, &b->exp, y), b->act_exp);
    y = activate(m, c, conv_bn(m, c, &b->dw, y), b->act_dw);
    y = conv_bn(m, c, &b->proj, y); /* linear bottleneck: no activation */
    return b->residual ? ad_add(c, y, x) : y;
}

Tensor *mobilenet_logits(Mobilenet *m, Ctx *c, const float *x, int B) {
    Tensor *h = tensor_from(c, 4, (int[]){B, 1, m->rows, m->cols}, x);
    if (m->record)
        for (int k = 0; k < m->nacts; k++) m->act_seen[k] = -INFINITY;
    h = activate(m, c, conv_bn(m, c, &m->stem, h), 0);
    for (int i = 0; i < m->nblocks; i++) h = mobilenet_block_forward(m, c, i, h);
    int k = m->nacts - 1;
    h = activate(m, c, conv_bn(m, c, &m->head, h), k);
    return ad_linear(c, ad_global_avgpool(c, h), m->fc_w, m->fc_b);
}

/* ------------------------------------------------------------- evaluation */

static Tensor *logits_fn(void *mp, Ctx *c, const float *x, int B) {
    return mobilenet_logits(mp, c, x, B);
}

void mobilenet_evaluate_on(Mobilenet *m, Ctx *c, const IdxDataset *d, int n, double *loss,
                           double *acc) {
    int prev_rec = m->record;
    m->record = 0;
    imageset_evaluate(&m->data, d, n, c, logits_fn, m, loss, acc);
    m->record = prev_rec;
}

/* --------------------------------------------------------- ModelDef hooks */

#define QUANT_MAX 16

static int parse_bits(const char *s, int *bits, int max) {
    int n = 0;
    for (const char *p = s; *p;) {
        while (*p == ' ' || *p == ',') p++;
        if (!*p) break;
        char *end;
        long v = strtol(p, &end, 10);
        if (end == p || v < 1 || v > 16 || n == max || (*end && *end != ',' && *end != ' '))
            return -1;
        bits[n++] = (int)v;
        p = end;
    }
    return n;
}


static void *mb_create(Trainer *tr, const void *cfgp) {
    const MobilenetConfig *cfg = cfgp;
    char err[1024];
    int tcns[MB_MAX_BLOCKS][4];
    if (mobilenet_parse_blocks(cfg->blocks, tcns, MB_MAX_BLOCKS, err, sizeof err) < 0)
        die("%s", err);
    int bits[QUANT_MAX];
    if (parse_bits(cfg->quant_bits, bits, QUANT_MAX) < 0)
        die("[mobilenet] quant_bits = '%s' (accepted: up to %d comma-separated bit widths from 1 "
            "to 16, e.g. 8,6,5,4,3; empty = no quantised evaluation)", cfg->quant_bits, QUANT_MAX);
    if (tr->set->dp.enabled && cfg->batchnorm)
        die("[dp] enabled with [mobilenet] batchnorm = true: batchnorm normalises each example "
            "with statistics of the whole batch, so an example's gradient depends on the others "
            "and clipping it bounds nothing (Opacus refuses BatchNorm too; GroupNorm is its "
            "replacement)");
    Mobilenet *m = xcalloc(1, sizeof *m);
    ImageSet *d = &m->data;
    if (imageset_load(d, &cfg->data, "mobilenet", 10, err, sizeof err) != 0) die("%s", err);
    ops_set_threads(tr->train.threads); /* convs and batchnorm split over [train] threads */
    if (tr->train.batch_size > d->train.n)
        die("[train] batch_size = %d is larger than the %d training examples",
            tr->train.batch_size, d->train.n);
    mobilenet_build(m, cfg, d->rows, d->cols, 10, &tr->rng);
    /* the first epoch's order is drawn after the initial weights */
    if (imageset_start(d, &tr->rng, tr->train.batch_size, IMAGESET_SHUFFLE, err, sizeof err) != 0)
        die("%s", err);
    trainer_add_group(tr, &m->ps);
    m->m_acc = trainer_add_metric(tr, "val_acc");
    char col[32];
    m->m_act0 = -1, m->m_alpha0 = -1;
    for (int k = 0; k < m->nacts; k++) {
        snprintf(col, sizeof col, "act_max.%s", m->act_names[k]);
        int id = trainer_add_metric(tr, col);
        if (k == 0) m->m_act0 = id;
    }
    for (int k = 0; k < m->nacts && cfg->activation == MB_PACT; k++) {
        snprintf(col, sizeof col, "alpha.%s", m->act_names[k]);
        int id = trainer_add_metric(tr, col);
        if (k == 0) m->m_alpha0 = id;
    }
    if (!tr->train.quiet)
        printf("mobilenet: %zu parameters, %d blocks, %d activation layers (%s); %d training and "
               "%d test images of %dx%d from %s\n",
               m->ps.n, m->nblocks, m->nacts, act_choices[cfg->activation], d->train.n, d->test.n,
               d->rows, d->cols, cfg->data.data_dir);
    return m;
}

static Tensor *mb_loss(void *mp, Ctx *c, Trainer *tr) {
    Mobilenet *m = mp;
    int B = imageset_next(&m->data);
    m->record = 1;
    Tensor *loss = ad_cross_entropy(c, mobilenet_logits(m, c, m->data.x, B), m->data.y);
    m->record = 0;
    for (int k = 0; k < m->nacts; k++) {
        trainer_set_metric(tr, m->m_act0 + k, m->act_seen[k]);
        if (m->m_alpha0 >= 0) trainer_set_metric(tr, m->m_alpha0 + k, m->alpha[k]->data[0]);
    }
    return loss;
}

static double mb_evaluate(void *mp, Trainer *tr) {
    Mobilenet *m = mp;
    double loss, acc;
    mobilenet_evaluate_on(m, &tr->ctx, &m->data.test, m->data.test.n, &loss, &acc);
    trainer_set_metric(tr, m->m_acc, acc);
    return loss;
}

static double mb_baseline(const void *mp) {
    return imageset_label_entropy(&((const Mobilenet *)mp)->data);
}

/* ReLU's quantisation range: the largest output of each activation layer over
 * the first calib_size images of the training set's current order, eval mode. */
static void calibrate(Mobilenet *m, Ctx *c, float *hi) {
    const ImageSet *d = &m->data;
    int n = m->cfg.calib_size < d->train.n ? m->cfg.calib_size : d->train.n;
    int EB = d->eval_batch;
    for (int k = 0; k < m->nacts; k++) hi[k] = 0.0f;
    float *x = xmalloc((size_t)EB * m->rows * m->cols * sizeof *x);
    int *y = xmalloc((size_t)EB * sizeof *y);
    int prev = ctx_set_grad(c, 0), prev_train = c->train;
    c->train = 0;
    for (int s = 0; s < n; s += EB) {
        int B = n - s < EB ? n - s : EB;
        imageset_fill(d, &d->train, d->perm + s, B, x, y);
        ctx_reset(c);
        m->record = 1;
        mobilenet_logits(m, c, x, B);
        m->record = 0;
        for (int k = 0; k < m->nacts; k++) hi[k] = m->act_seen[k] > hi[k] ? m->act_seen[k] : hi[k];
    }
    ctx_reset(c);
    ctx_set_grad(c, prev);
    c->train = prev_train;
    free(x), free(y);
}


/* ----------------------------------------------------------------- figures */

/* Column `name` of a metrics log as (step, value) pairs with the NaN rows left
 * out; returns the count. x and y hold log->nrows values. */
static size_t log_series(const MetricsLog *l, const char *name, double *x, double *y) {
    int col = -1;
    for (int i = 0; i < l->ncols; i++)
        if (strcmp(l->names[i], name) == 0) col = i;
    size_t n = 0;
    for (size_t r = 0; col >= 0 && r < l->nrows; r++) {
        double v = l->rows[r * (size_t)l->ncols + col];
        if (isnan(v)) continue;
        x[n] = l->rows[r * (size_t)l->ncols];
        y[n++] = v;
    }
    return n;
}

/* act_max.png: each activation layer's largest output over training. */
static int write_act_figure(const Mobilenet *m, const Trainer *tr, char *err, size_t errlen) {
    const MetricsLog *l = &tr->log;
    size_t n = l->nrows ? l->nrows : 1;
    double *buf = xmalloc(2 * (size_t)m->nacts * n * sizeof *buf);
    PlotSeries ser[MB_MAX_ACTS];
    char col[48];
    for (int k = 0; k < m->nacts; k++) {
        double *x = buf + 2 * (size_t)k * n, *y = x + n;
        snprintf(col, sizeof col, "act_max.%s", m->act_names[k]);
        ser[k] = (PlotSeries){.label = m->act_names[k], .x = x, .y = y,
                              .n = log_series(l, col, x, y)};
    }
    char title[CFG_STR_MAX + 96], path[CFG_STR_MAX + 32];
    snprintf(title, sizeof title, "%s: largest activation of each layer (activation %s)",
             tr->run.name, act_choices[m->cfg.activation]);
    PlotPanel p = {.title = "Largest activation output per layer, training batch",
                   .xlabel = "step", .ylabel = "max activation", .logy = PLOT_LOGY_AUTO,
                   .series = ser, .nseries = m->nacts,
                   .hline = m->cfg.activation == MB_RELU6   ? 6.0
                            : m->cfg.activation == MB_CLAMP ? m->cfg.act_max
                                                            : NAN,
                   .hline_label = "clip level"};
    snprintf(path, sizeof path, "%s/act_max.png", tr->run.out_dir);
    int rc = plot_figure(path, title, &p, 1, 1000, 520, err, errlen);
    free(buf);
    return rc;
}

/* One quantisation curve: test accuracy (%) against bits, ascending. */
typedef struct QuantCurve {
    char act[16];
    double bits[QUANT_MAX], acc[QUANT_MAX], float_acc;
    int n;
} QuantCurve;

static int quant_figure(const QuantCurve *q, int nq, const char *labels_from, const char *path,
                        char *err, size_t errlen) {
    PlotSeries ser[64];
    char labels[64][96];
    ASSERT(nq <= 64, "%d curves", nq);
    for (int i = 0; i < nq; i++) {
        snprintf(labels[i], sizeof labels[i], "%s (float %.2f%%)", q[i].act, q[i].float_acc);
        ser[i] = (PlotSeries){.label = labels[i], .x = q[i].bits, .y = q[i].acc,
                              .n = (size_t)q[i].n, .style = PLOT_LINE_MARKERS};
    }
    char title[CFG_STR_MAX + 96];
    snprintf(title, sizeof title, "Test accuracy with every activation fake-quantised (%s)",
             labels_from);
    PlotPanel p = {.title = "uniform unsigned over [0,6] relu6, [0,act_max] clamp, [0,alpha] "
                            "pact, [0,calibrated max] relu",
                   .xlabel = "bits per activation", .ylabel = "test accuracy (%)",
                   .logy = PLOT_LOGY_OFF, .series = ser, .nseries = nq, .hline = 10.0,
                   .hline_label = "chance (10%)"};
    return plot_figure(path, title, &p, 1, 1000, 520, err, errlen);
}

/* Sort a curve by bits (quant_bits may list them in any order). */
static void sort_curve(QuantCurve *q) {
    for (int i = 1; i < q->n; i++)
        for (int j = i; j > 0 && q->bits[j - 1] > q->bits[j]; j--) {
            double t = q->bits[j], a = q->acc[j];
            q->bits[j] = q->bits[j - 1], q->acc[j] = q->acc[j - 1];
            q->bits[j - 1] = t, q->acc[j - 1] = a;
        }
}

/* Read <dir>/quant.csv into q; 0 or -1 with err. */
static int read_quant_csv(const char *dir, QuantCurve *q, char *err, size_t errlen) {
    char path[CFG_STR_MAX + 32], line[512];
    snprintf(path, sizeof path, "%s/quant.csv", dir);
    FILE *f = fopen(path, "r");
    if (!f) {
        snprintf(err, errlen, "cannot read %s: %s", path, strerror(errno));
        return -1;
    }
    memset(q, 0, sizeof *q);
    int rc = fgets(line, sizeof line, f) && strncmp(line, "activation,bits,", 16) == 0 ? 0 : -1;
    while (rc == 0 && fgets(line, sizeof line, f)) {
        int bits;
        double lo, hi, acc;
        char kind[32];
        if (sscanf(line, "%15[^,],%d,%31[^,],%lf,%lf,%lf", q->act, &bits, kind, &lo, &hi, &acc) != 6)
            rc = -1;
        else if (bits == 32)
            q->float_acc = 100.0 * acc;
        else if (q->n < QUANT_MAX)
            q->bits[q->n] = bits, q->acc[q->n++] = 100.0 * acc;
    }
    fclose(f);
    if (rc != 0) snprintf(err, errlen, "%s is not a quant.csv written by cliplab", path);
    sort_curve(q);
    return rc;
}

/* From <dir>/metrics.csv: step, the largest act_max.* of each row, and val_acc
 * (%) where evaluated. Arrays are malloc'd with *n rows; 0 or -1 with err. */
static int read_act_metrics(const char *dir, double **step, double **amax, double **acc,
                            size_t *n, char *err, size_t errlen) {
    char path[CFG_STR_MAX + 32];
    snprintf(path, sizeof path, "%s/metrics.csv", dir);
    FILE *f = fopen(path, "r");
    if (!f) {
        snprintf(err, errlen, "cannot read %s: %s", path, strerror(errno));
        return -1;
    }
    size_t cap = 1 << 20;
    char *line = xmalloc(cap);
    int is_act[512] = {0}, acc_col = -1, ncol = 0;
    if (fgets(line, (int)cap, f))
        for (char *save = NULL, *t = strtok_r(line, ",\n", &save); t && ncol < 512;
             t = strtok_r(NULL, ",\n", &save), ncol++) {
            is_act[ncol] = strncmp(t, "act_max.", 8) == 0;
            if (!strcmp(t, "val_acc")) acc_col = ncol;
        }
    size_t rows = 0, rcap = 1024;
    *step = xmalloc(rcap * sizeof **step), *amax = xmalloc(rcap * sizeof **amax);
    *acc = xmalloc(rcap * sizeof **acc);
    while (fgets(line, (int)cap, f)) {
        if (rows == rcap) {
            rcap *= 2;
            *step = realloc(*step, rcap * sizeof **step), *amax = realloc(*amax, rcap * sizeof **amax);
            *acc = realloc(*acc, rcap * sizeof **acc);
            if (!*step || !*amax || !*acc) die("out of memory reading %s", path);
        }
        double mx = -INFINITY, a = NAN, st = NAN;
        char *p = line;
        for (int c = 0; c < ncol && *p; c++) {
            char *end;
            double v = strtod(p, &end);
            if (c == 0) st = v;
            if (is_act[c]) mx = isnan(v) || v > mx ? v : mx;
            if (c == acc_col) a = 100.0 * v;
            p = *end == ',' ? end + 1 : end;
        }
        (*step)[rows] = st, (*amax)[rows] = mx, (*acc)[rows++] = a;
    }
    fclose(f);
    free(line);
    *n = rows;
    return 0;
}

/* What a run's activation is, for legends: ReLU6 named as the clipped one. */
static void act_legend(const MobilenetConfig *c, char *buf, size_t len) {
    switch ((MbActivation)c->activation) {
    case MB_RELU6: snprintf(buf, len, "ReLU6 (activations clipped at 6)"); break;
    case MB_RELU: snprintf(buf, len, "ReLU (unbounded)"); break;
    case MB_CLAMP: snprintf(buf, len, "clamp (activations clipped at %g)", c->act_max); break;
    case MB_PACT: snprintf(buf, len, "PACT (clip level learned per layer)"); break;
    }
    if (!c->batchnorm) snprintf(buf + strlen(buf), len - strlen(buf), ", no batchnorm");
}

/* The activation lesson: each run's largest activation (over its layers) per step, with
 * the clip level 6 drawn when a run clips there; its test accuracy over training; and,
 * when the runs were evaluated with fake-quantised activations, accuracy against bits. */
static int act_compare_figure(const char *const *dirs, const char *const *labels, int n,
                              int clip6, const QuantCurve *q, const int *qrun, int nq,
                              const char *title, const char *out, char *err, size_t errlen) {
    PlotSeries *ma = xcalloc((size_t)n, sizeof *ma), *va = xcalloc((size_t)n, sizeof *va);
    PlotSeries *qa = xcalloc((size_t)nq + 1, sizeof *qa);
    double **bufs = xcalloc(4 * (size_t)n, sizeof *bufs);
    int rc = 0;
    for (int i = 0; i < n && rc == 0; i++) {
        size_t rows;
        double **b = bufs + 4 * i;
        rc = read_act_metrics(dirs[i], &b[0], &b[1], &b[2], &rows, err, errlen);
        if (rc) break;
        ma[i] = (PlotSeries){.label = labels[i], .x = b[0], .y = b[1], .n = rows, .color = i + 1};
        b[3] = xmalloc((rows + 1) * sizeof(double)); /* the evaluated steps' x */
        size_t k = 0;
        for (size_t r = 0; r < rows; r++)
            if (!isnan(b[2][r])) b[3][k] = b[0][r], b[2][k++] = b[2][r];
        va[i] = (PlotSeries){.label = labels[i], .x = b[3], .y = b[2], .n = k,
                             .style = PLOT_LINE_MARKERS, .color = i + 1};
    }
    for (int i = 0; i < nq; i++)
        qa[i] = (PlotSeries){.label = labels[qrun[i]], .x = q[i].bits, .y = q[i].acc,
                             .n = (size_t)q[i].n, .style = PLOT_LINE_MARKERS, .color = qrun[i] + 1};
    if (rc == 0) {
        PlotPanel p[3] = {
            {.title = "Largest activation output over all layers (training batch)", .xlabel = "step",
             .ylabel = "max activation", .logy = PLOT_LOGY_AUTO, .series = ma, .nseries = n,
             .hline = clip6 ? 6.0 : NAN, .hline_label = clip6 ? "6: where ReLU6 clips" : NULL},
            {.title = "Test accuracy (float, evaluation mode)", .xlabel = "step",
             .ylabel = "test accuracy (%)", .logy = PLOT_LOGY_OFF, .series = va, .nseries = n,
             .hline = NAN},
            {.title = "Test accuracy at low precision (every activation fake-quantised)",
             .xlabel = "bits per activation (over [0, 6] for ReLU6; ReLU's range calibrated)",
             .ylabel = "test accuracy (%)",
             .logy = PLOT_LOGY_OFF, .series = qa, .nseries = nq, .hline = 10.0,
             .hline_label = "chance (10%)"}};
        rc = plot_figure(out, title, p, nq ? 3 : 2, 1100, nq ? 1250 : 860, err, errlen);
    }
    for (int i = 0; i < 4 * n; i++) free(bufs[i]);
    free(bufs), free(ma), free(va), free(qa);
    return rc;
}

/* ./train A.ini B.ini ...: the activation lesson at path (activation ranges, accuracy, and
 * accuracy at low precision when evaluated), the trainer's loss / gradient-norm figure at
 * <compare>_loss.png, <compare>_quant.png (one line per run), and <compare>_act_max.png
 * (the lesson without the low-precision panel). */
static int mb_compare(const RunResult *runs, const void *const *cfgs, int n, const char *path) {
    size_t len = strlen(path);
    int stem = (int)(len > 4 && !strcmp(path + len - 4, ".png") ? len - 4 : len);
    char err[512], out[2048], names[256] = "";
    snprintf(out, sizeof out, "%.*s_loss.png", stem, path);
    if (trainer_compare_plot(runs, n, out) != 0) return -1;
    const char **dirs = xcalloc((size_t)n, sizeof *dirs);
    char (*labels)[96] = xcalloc((size_t)n, sizeof *labels);
    int clip6 = 0, *qrun = xcalloc((size_t)n, sizeof *qrun);
    for (int i = 0; i < n; i++) {
        const MobilenetConfig *c = cfgs[i];
        dirs[i] = runs[i].out_dir;
        act_legend(c, labels[i], sizeof labels[i]);
        clip6 |= c->activation == MB_RELU6 || (c->activation == MB_CLAMP && c->act_max == 6.0);
    }
    QuantCurve *q = xcalloc((size_t)n, sizeof *q);
    int nq = 0, rc = 0;
    for (int i = 0; i < n && rc == 0; i++) {
        char p[CFG_STR_MAX + 32];
        snprintf(p, sizeof p, "%s/quant.csv", dirs[i]);
        if (access(p, R_OK) != 0) continue; /* quant_bits empty: no low-precision evaluation */
        qrun[nq] = i;
        rc = read_quant_csv(dirs[i], &q[nq++], err, sizeof err);
        size_t l = strlen(names);
        snprintf(names + l, sizeof names - l, "%s%s", l ? " / " : "", q[nq - 1].act);
    }
    const char **lp = xcalloc((size_t)n, sizeof *lp);
    for (int i = 0; i < n; i++) lp[i] = labels[i];
    char title[512];
    int k = snprintf(title, sizeof title, "%s: ", runs[0].title);
    for (int i = 0; i < n && k < (int)sizeof title; i++)
        k += snprintf(title + k, sizeof title - (size_t)k, "%s%s", i ? " vs " : "",
                      act_choices[((const MobilenetConfig *)cfgs[i])->activation]);
    if (k < (int)sizeof title) snprintf(title + k, sizeof title - (size_t)k, ", seed %ld", runs[0].seed);
    if (rc == 0) rc = act_compare_figure(dirs, lp, n, clip6, q, qrun, nq, title, path, err, sizeof err);
    if (rc == 0 && nq > 0) {
        snprintf(out, sizeof out, "%.*s_quant.png", stem, path);
        rc = quant_figure(q, nq, names, out, err, sizeof err);
        if (rc == 0) printf("low-precision comparison: %s\n", out);
    }
    if (rc == 0) {
        snprintf(out, sizeof out, "%.*s_act_max.png", stem, path);
        rc = act_compare_figure(dirs, lp, n, clip6, q, qrun, 0, title, out, err, sizeof err);
        if (rc == 0) printf("activation-range comparison: %s\n", out);
    }
    if (rc != 0) fprintf(stderr, "cliplab: error: %s\n", err);
    free(q), free(qrun), free(lp), free(labels);
    free(dirs);
    return rc;
}

/* After training: the float accuracy, then the accuracy with every activation
 * fake-quantised at each bit width -> quant.csv and quant.png in out_dir. */
static void mb_finish(void *mp, Trainer *tr) {
    Mobilenet *m = mp;
    int bits[QUANT_MAX];
    char err[512];
    if (tr->run.plots && write_act_figure(m, tr, err, sizeof err) != 0)
        die("writing %s/act_max.png: %s", tr->run.out_dir, err);
    int nb = parse_bits(m->cfg.quant_bits, bits, QUANT_MAX);
    if (nb <= 0) return;
    const char *act = act_choices[m->cfg.activation];
    const char *kind = m->cfg.activation == MB_RELU ? "calibrated"
                       : m->cfg.activation == MB_PACT ? "learned" : "fixed";
    float hi[MB_MAX_ACTS];
    if (m->cfg.activation == MB_RELU) calibrate(m, &tr->ctx, hi);
    for (int k = 0; k < m->nacts; k++)
        hi[k] = m->cfg.activation == MB_RELU6   ? 6.0f
                : m->cfg.activation == MB_CLAMP ? (float)m->cfg.act_max
                : m->cfg.activation == MB_PACT  ? m->alpha[k]->data[0]
                                                : hi[k];
    float lo_hi = INFINITY, hi_hi = 0.0f;
    for (int k = 0; k < m->nacts; k++) {
        if (!(hi[k] > 0.0f) || !isfinite(hi[k])) hi[k] = 1e-6f; /* a dead layer: all zero */
        lo_hi = fminf(lo_hi, hi[k]), hi_hi = fmaxf(hi_hi, hi[k]);
    }
    double loss, acc[QUANT_MAX + 1];
    m->quant_bits = 0;
    mobilenet_evaluate_on(m, &tr->ctx, &m->data.test, m->data.test.n, &loss, &acc[0]);
    memcpy(m->quant_hi, hi, sizeof hi);
    for (int i = 0; i < nb; i++) {
        m->quant_bits = bits[i];
        mobilenet_evaluate_on(m, &tr->ctx, &m->data.test, m->data.test.n, &loss, &acc[i + 1]);
    }
    m->quant_bits = 0;
    char path[CFG_STR_MAX + 32], tmp[CFG_STR_MAX + 40];
    snprintf(path, sizeof path, "%s/quant.csv", tr->run.out_dir);
    snprintf(tmp, sizeof tmp, "%s.tmp", path);
    FILE *f = fopen(tmp, "w");
    if (!f) die("cannot write %s: %s", tmp, strerror(errno));
    fprintf(f, "activation,bits,range,range_hi_min,range_hi_max,accuracy\n");
    fprintf(f, "%s,32,float,%.6g,%.6g,%.6f\n", act, lo_hi, hi_hi, acc[0]);
    for (int i = 0; i < nb; i++)
        fprintf(f, "%s,%d,%s,%.6g,%.6g,%.6f\n", act, bits[i], kind, lo_hi, hi_hi, acc[i + 1]);
    if (ferror(f) | (fclose(f) != 0) || rename(tmp, path) != 0)
        die("cannot write %s: %s", path, strerror(errno));
    QuantCurve q = {.n = nb, .float_acc = 100.0 * acc[0]};
    snprintf(q.act, sizeof q.act, "%s", act);
    for (int i = 0; i < nb; i++) q.bits[i] = bits[i], q.acc[i] = 100.0 * acc[i + 1];
    sort_curve(&q);
    snprintf(path, sizeof path, "%s/quant.png", tr->run.out_dir);
    if (tr->run.plots && quant_figure(&q, 1, tr->run.name, path, err, sizeof err) != 0)
        die("writing %s: %s", path, err);
    snprintf(path, sizeof path, "%s/quant.csv", tr->run.out_dir);
    if (!tr->train.quiet) {
        printf("%s: test accuracy float %.4f;", tr->run.name, acc[0]);
        for (int i = 0; i < nb; i++) printf(" %d-bit %.4f", bits[i], acc[i + 1]);
        if (lo_hi == hi_hi)
            printf(" (activations over [0, %.3g], %s) -> %s\n", lo_hi, kind, path);
        else
            printf(" (activations over [0, %.3g] to [0, %.3g] by layer, %s) -> %s\n", lo_hi, hi_hi,
                   kind, path);
    }
}

/* Checkpoint state besides parameters: the data's epoch order and position. */
static int mb_save_state(const void *mp, FILE *f) {
    return imageset_save_state(&((const Mobilenet *)mp)->data, f);
}

static int mb_load_state(void *mp, FILE *f) {
    return imageset_load_state(&((Mobilenet *)mp)->data, f);
}

static void mb_title(const void *mp, char *buf, size_t len) {
    (void)mp;
    snprintf(buf, len, "Small MobileNetV2, Fashion-MNIST");
}

static void mb_destroy(void *mp) {
    Mobilenet *m = mp;
    ops_num_threads = 1;
    mobilenet_free_params(m);
    imageset_free(&m->data);
    free(m);
}

const ModelDef mobilenet_model = {
    .name = "mobilenet",
    .summary = "small MobileNetV2 on Fashion-MNIST: ReLU6 / ReLU / clamp / PACT, low precision",
    .section = &mb_section,
    .cfg_size = sizeof(MobilenetConfig),
    .create = mb_create,
    .loss = mb_loss,
    .evaluate = mb_evaluate,
    .baseline_loss = mb_baseline,
    .finish = mb_finish,
    .save_state = mb_save_state,
    .load_state = mb_load_state,
    .destroy = mb_destroy,
    .title = mb_title,
    .compare_plot = mb_compare,
    .main_metric = "val_acc",
    .main_metric_higher = 1,
};
