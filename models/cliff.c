/* cliff.c: the one-unit RNN of Pascanu, Mikolov & Bengio (2013), Figure 6,
 * its [cliff] section, and its loss surface (see cliff.h).
 *
 * The map f(x) = w*sigmoid(x) + b is increasing for w > 0, so x_t moves
 * monotonically to a fixed point of f. x0 itself is a fixed point when
 * b = x0 - w*sigmoid(x0) (the wall line). Its slope there is
 * g = w*sigmoid'(x0); for g > 1 it repels, and the two stable fixed points
 * above and below it are the two plateaus of the surface. Just off the line,
 * x_t - x0 grows like g^t (delta b) until it leaves, so d x_T / d b ~ g^T:
 * the surface has a wall of height ~0.4 and slope ~g^T, thinner than 1e-6
 * in b for w >= 6 (their section 3.3: "a steep wall perpendicular to the
 * gradient"). Below w = 4.26 the line is no wall; there the valley of loss 0
 * is the stable fixed point sigmoid(x*) = target, b = logit(target) - w*target,
 * which exists while w*target*(1-target) < 1 (w < 4.76 for 0.7). */
#include "cliff.h"

#include <errno.h>
#include <math.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>

#include "common.h"
#include "ops.h"
#include "train.h"

#define CLIFF_KEY(n, t, f, d, lo, hi, h) {n, t, offsetof(CliffConfig, f), d, lo, hi, NULL, h}
static const CfgKey cliff_keys[] = {
    CLIFF_KEY("w0", CFG_DOUBLE, w0, "6", -100, 100, "start value of the recurrent weight w"),
    CLIFF_KEY("b0", CFG_DOUBLE, b0, "-2", -100, 100, "start value of the bias b"),
    CLIFF_KEY("x0", CFG_DOUBLE, x0, "0.5", -10, 10, "initial state x_0 (Pascanu et al.: 0.5)"),
    CLIFF_KEY("target", CFG_DOUBLE, target, "0.7", 0.001, 0.999,
              "loss = (sigmoid(x_T) - target)^2 (Pascanu et al.: 0.7)"),
    CLIFF_KEY("seq_len", CFG_INT, seq_len, "50", 1, 1000,
              "recurrence steps T (Pascanu et al.: 50)"),
    CLIFF_KEY("surface", CFG_BOOL, surface, "true", 0, 1,
              "write surface.csv: loss and gradient norm on a grid over (w, b)"),
    CLIFF_KEY("w_min", CFG_DOUBLE, w_min, "2", -100, 100, "surface grid: smallest w"),
    CLIFF_KEY("w_max", CFG_DOUBLE, w_max, "10", -100, 100, "surface grid: largest w"),
    CLIFF_KEY("b_min", CFG_DOUBLE, b_min, "-6", -100, 100, "surface grid: smallest b"),
    CLIFF_KEY("b_max", CFG_DOUBLE, b_max, "6", -100, 100, "surface grid: largest b"),
    CLIFF_KEY("grid", CFG_INT, grid, "200", 2, 4000, "surface grid: points per axis"),
};
static const CfgSection cliff_section = {
    "cliff", cliff_keys, (int)(sizeof cliff_keys / sizeof *cliff_keys),
    "one-unit RNN x_t = w*sigmoid(x_{t-1}) + b, loss (sigmoid(x_T) - target)^2 "
    "(Pascanu et al. 2013, Fig. 6)"};

static double sigmoid(double x) { return 1.0 / (1.0 + exp(-x)); }

double cliff_wall_b(const CliffConfig *cfg, double w) { return cfg->x0 - w * sigmoid(cfg->x0); }

double cliff_wall_gain(const CliffConfig *cfg, double w) {
    double s = sigmoid(cfg->x0);
    return w * s * (1.0 - s);
}

double cliff_loss_grad(const CliffConfig *cfg, double w, double b, double *dw, double *db) {
    int T = cfg->seq_len;
    double s_prev[1000]; /* sigmoid(x_{t-1}) for t = 1..T */
    ASSERT(T <= 1000, "seq_len %d", T);
    double x = cfg->x0;
    for (int t = 0; t < T; t++) {
        s_prev[t] = sigmoid(x);
        x = w * s_prev[t] + b;
    }
    double s = sigmoid(x), e = s - cfg->target;
    /* delta = dL/dx_t, from t = T down: x_t = w*s_{t-1} + b, s_{t-1} = sigmoid(x_{t-1}) */
    double delta = 2.0 * e * s * (1.0 - s), gw = 0.0, gb = 0.0;
    for (int t = T - 1; t >= 0; t--) {
        gw += delta * s_prev[t];
        gb += delta;
        delta *= w * s_prev[t] * (1.0 - s_prev[t]);
    }
    if (dw) *dw = gw;
    if (db) *db = gb;
    return e * e;
}

int cliff_write_surface(const CliffConfig *cfg, const char *dir, char *err, size_t errlen) {
    char path[512], tmp[520];
    snprintf(path, sizeof path, "%s/surface.csv", dir);
    snprintf(tmp, sizeof tmp, "%s.tmp", path);
    FILE *f = fopen(tmp, "w");
    if (!f) {
        snprintf(err, errlen, "cannot write %s: %s", tmp, strerror(errno));
        return -1;
    }
    fprintf(f, "w,b,loss,grad_norm\n");
    int n = cfg->grid;
    for (int i = 0; i < n; i++) {
        double b = cfg->b_min + (cfg->b_max - cfg->b_min) * i / (n - 1);
        for (int j = 0; j < n; j++) {
            double w = cfg->w_min + (cfg->w_max - cfg->w_min) * j / (n - 1), gw, gb;
            double l = cliff_loss_grad(cfg, w, b, &gw, &gb);
            fprintf(f, "%.9g,%.9g,%.9g,%.9g\n", w, b, l, sqrt(gw * gw + gb * gb));
        }
    }
    int bad = ferror(f) | (fclose(f) != 0);
    if (bad || rename(tmp, path) != 0) {
        snprintf(err, errlen, "cannot write %s: %s", path, strerror(errno));
        remove(tmp);
        return -1;
    }
    return 0;
}

void cliff_build(Cliff *m, const CliffConfig *cfg) {
    m->cfg = *cfg;
    param_set_init(&m->ps, "model", 2);
    /* no weight decay on either: the demo is the plain loss surface */
    m->w = param_add(&m->ps, "w", 1, (int[]){1}, 0);
    m->b = param_add(&m->ps, "b", 1, (int[]){1}, 0);
    param_alloc(&m->ps);
    m->w->data[0] = (float)cfg->w0;
    m->b->data[0] = (float)cfg->b0;
}

Tensor *cliff_loss_on(Cliff *m, Ctx *c) {
    float x0 = (float)m->cfg.x0, target = (float)m->cfg.target;
    Tensor *x = tensor_from(c, 1, (int[]){1}, &x0);
    for (int t = 0; t < m->cfg.seq_len; t++) x = ad_add(c, ad_mul(c, m->w, ad_sigmoid(c, x)), m->b);
    return ad_mse(c, ad_sigmoid(c, x), tensor_from(c, 1, (int[]){1}, &target));
}

static void *cliff_create(Trainer *tr, const void *cfgp) {
    const CliffConfig *cfg = cfgp;
    if (!(cfg->w_min < cfg->w_max) || !(cfg->b_min < cfg->b_max))
        die("[cliff] the surface grid needs w_min < w_max and b_min < b_max (got w %g..%g, b %g..%g)",
            cfg->w_min, cfg->w_max, cfg->b_min, cfg->b_max);
    Cliff *m = xcalloc(1, sizeof *m);
    cliff_build(m, cfg);
    snprintf(m->out_dir, sizeof m->out_dir, "%s", tr->run.out_dir);
    trainer_add_group(tr, &m->ps);
    m->col_w = trainer_add_metric(tr, "w");
    m->col_b = trainer_add_metric(tr, "b");
    return m;
}

/* The row of step s holds the point (w, b) at which that step's loss and
 * gradient were computed, i.e. before its update. */
static Tensor *cliff_loss(void *mp, Ctx *c, Trainer *tr) {
    Cliff *m = mp;
    trainer_set_metric(tr, m->col_w, m->w->data[0]);
    trainer_set_metric(tr, m->col_b, m->b->data[0]);
    return cliff_loss_on(m, c);
}

static void cliff_finish(void *mp, Trainer *tr) {
    Cliff *m = mp;
    if (!m->cfg.surface) return;
    char err[600];
    if (cliff_write_surface(&m->cfg, m->out_dir, err, sizeof err) != 0)
        die("%s", err);
    if (!tr->train.quiet) printf("%s: wrote %s/surface.csv\n", tr->run.name, m->out_dir);
}

static void cliff_destroy(void *mp) {
    Cliff *m = mp;
    param_set_free(&m->ps);
    free(m);
}

const ModelDef cliff_model = {
    .name = "cliff",
    .summary = "one-unit RNN on Pascanu et al.'s loss surface with a cliff (2013, Fig. 6)",
    .section = &cliff_section,
    .cfg_size = sizeof(CliffConfig),
    .create = cliff_create,
    .loss = cliff_loss,
    .finish = cliff_finish,
    .destroy = cliff_destroy,
};
