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
#include "plot.h"
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
    .name = "cliff",
    .keys = cliff_keys,
    .nkeys = (int)(sizeof cliff_keys / sizeof *cliff_keys),
    .help = "one-unit RNN x_t = w*sigmoid(x_{t-1}) + b, loss (sigmoid(x_T) - target)^2 "
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

/* ---------------------------------------------------------------- figure */

/* The loss on a nx x ny grid of cells over [w0,w1] x [b0,b1] (cell centres),
 * floored at 1e-4 so the log colour scale shows the plateaus and the valley
 * rather than the valley's floor alone. */
static double *surface_cells(const CliffConfig *cfg, int n, double w0, double w1, double b0,
                             double b1) {
    double *v = xmalloc((size_t)n * n * sizeof *v);
    for (int j = 0; j < n; j++)
        for (int i = 0; i < n; i++) {
            double w = w0 + (w1 - w0) * (i + 0.5) / n, b = b0 + (b1 - b0) * (j + 0.5) / n;
            v[(size_t)j * n + i] = fmax(cliff_loss_grad(cfg, w, b, NULL, NULL), 1e-4);
        }
    return v;
}

typedef struct Path {
    double *w, *b, *step, *loss, *gnorm;
    size_t n;
    double threshold; /* the clip threshold (NaN when none) */
} Path;

static Path path_of(const MetricsLog *l) {
    Path p = {.n = l->nrows, .threshold = NAN};
    double **cols[5] = {&p.step, &p.w, &p.b, &p.loss, &p.gnorm};
    const char *names[5] = {"step", "w", "b", "loss", "grad_norm"};
    for (int k = 0; k < 5; k++) {
        int c = metrics_col(l, names[k]);
        ASSERT(c >= 0, "metrics column %s", names[k]);
        *cols[k] = xmalloc((p.n + 1) * sizeof(double));
        metrics_column(l, c, *cols[k]);
    }
    int ct = metrics_col(l, "clip_threshold");
    for (size_t r = 0; ct >= 0 && r < p.n; r++)
        if (isfinite(l->rows[r * (size_t)l->ncols + ct])) p.threshold = l->rows[r * (size_t)l->ncols + ct];
    return p;
}

static void path_free(Path *p) { free(p->w), free(p->b), free(p->step), free(p->loss), free(p->gnorm); }

/* A step-to-step zigzag drawn as one line fills a band with colour: over a trailing
 * window of w steps, the geometric mean (mid) and the min and max (lo, hi). Non-finite
 * values propagate from where they occur. */
static void window_band(const double *y, size_t n, size_t w, double *mid, double *lo, double *hi) {
    for (size_t i = 0; i < n; i++) {
        size_t a = i + 1 >= w ? i + 1 - w : 0;
        double sl = 0, mn = INFINITY, mx = -INFINITY;
        int bad = 0;
        for (size_t k = a; k <= i; k++) {
            bad |= !(y[k] > 0) || !isfinite(y[k]);
            if (bad) break;
            sl += log(y[k]), mn = fmin(mn, y[k]), mx = fmax(mx, y[k]);
        }
        mid[i] = bad ? y[i] : exp(sl / (double)(i + 1 - a));
        lo[i] = bad ? NAN : mn, hi[i] = bad ? NAN : mx;
    }
}

/* Panels, in a 2 x 2 grid: the surface over the configured window with every
 * path, the cliff line and the start; the same zoomed on the step where run 0's
 * gradient was largest (the wall); the loss curves; the pre-clip gradient norms
 * with the clip thresholds. A path's colour is the same in all four. */
static int cliff_figure(const CliffConfig *cfg, const MetricsLog *const *logs,
                        const char *const *labels, int n, const char *title, const char *path,
                        char *err, size_t errlen) {
    enum { MAXP = 8, ZOOM_N = 160 };
    ASSERT(n >= 1 && n <= MAXP, "%d paths", n);
    Path p[MAXP];
    for (int i = 0; i < n; i++) p[i] = path_of(logs[i]);
    /* the wall: where x0 repels (gain > 1), as a straight line over the window */
    double wl = fmax(cfg->w_min, 1.0 / cliff_wall_gain(cfg, 1.0)), wall_w[2] = {wl, cfg->w_max};
    double wall_b[2] = {cliff_wall_b(cfg, wall_w[0]), cliff_wall_b(cfg, wall_w[1])};
    double sw = cfg->w0, sb = cfg->b0;
    /* the zoom: centred on run 0's largest gradient, 1.2 wide in w and b */
    size_t km = 0;
    for (size_t r = 0; r < p[0].n; r++)
        if (p[0].gnorm[r] > p[0].gnorm[km]) km = r;
    double zw = p[0].n ? p[0].w[km] : sw, zb = p[0].n ? p[0].b[km] : sb, h = 0.6;
    PlotSeries on_map[MAXP + 2], loss_s[MAXP], norm_s[2 * MAXP];
    char lab[MAXP][CFG_STR_MAX + 160], thl[MAXP][CFG_STR_MAX + 160];
    int nn = 0;
    enum { WIN = 25 };
    double *band[MAXP][6];
    for (int i = 0; i < n; i++) {
        int colour = i + 1; /* palette i, the same in every panel */
        for (int k = 0; k < 6; k++) band[i][k] = xmalloc((p[i].n + 1) * sizeof(double));
        window_band(p[i].loss, p[i].n, WIN, band[i][0], band[i][1], band[i][2]);
        window_band(p[i].gnorm, p[i].n, WIN, band[i][3], band[i][4], band[i][5]);
        on_map[i] = (PlotSeries){.label = labels[i], .x = p[i].w, .y = p[i].b, .n = p[i].n,
                                 .style = PLOT_LINE, .color = colour};
        loss_s[i] = (PlotSeries){.label = labels[i], .x = p[i].step, .y = band[i][0], .n = p[i].n,
                                 .lo = band[i][1], .hi = band[i][2], .color = colour};
        snprintf(lab[i], sizeof lab[i], "%s: pre-clip norm", labels[i]);
        norm_s[nn++] = (PlotSeries){.label = lab[i], .x = p[i].step, .y = band[i][3], .n = p[i].n,
                                    .lo = band[i][4], .hi = band[i][5], .color = colour};
    }
    /* each clipped run's threshold as a flat series in its colour */
    double *thy[MAXP] = {0}, ends[MAXP][2];
    for (int i = 0; i < n; i++) {
        if (!isfinite(p[i].threshold) || p[i].n == 0) continue;
        thy[i] = xmalloc(2 * sizeof(double));
        thy[i][0] = thy[i][1] = p[i].threshold;
        ends[i][0] = p[i].step[0], ends[i][1] = p[i].step[p[i].n - 1];
        snprintf(thl[i], sizeof thl[i], "%s: clip threshold %g", labels[i], p[i].threshold);
        norm_s[nn++] = (PlotSeries){.label = thl[i], .x = ends[i], .y = thy[i], .n = 2,
                                    .style = PLOT_LINE, .color = 7 /* black */};
    }
    on_map[n] = (PlotSeries){.label = "cliff: x0 a repelling fixed point", .x = wall_w,
                             .y = wall_b, .n = 2, .color = 10 /* grey */};
    on_map[n + 1] = (PlotSeries){.label = "start (w0, b0)", .x = &sw, .y = &sb, .n = 1,
                                 .style = PLOT_DOTS, .marker = PLOT_MARK_CIRCLE, .color = 7};
    int gn = cfg->grid;
    double *full = surface_cells(cfg, gn, cfg->w_min, cfg->w_max, cfg->b_min, cfg->b_max);
    double *zoom = surface_cells(cfg, ZOOM_N, zw - h, zw + h, zb - h, zb + h);
    PlotField ff = {.v = full, .nx = gn, .ny = gn, .x0 = cfg->w_min, .x1 = cfg->w_max,
                    .y0 = cfg->b_min, .y1 = cfg->b_max, .logscale = 1, .label = "loss"};
    PlotField fz = {.v = zoom, .nx = ZOOM_N, .ny = ZOOM_N, .x0 = zw - h, .x1 = zw + h,
                    .y0 = zb - h, .y1 = zb + h, .logscale = 1, .label = "loss"};
    char zt[160];
    snprintf(zt, sizeof zt, "Zoom on the first run's largest gradient (norm %.3g, step %.0f)",
             p[0].n ? p[0].gnorm[km] : NAN, p[0].n ? p[0].step[km] : NAN);
    PlotPanel panels[4] = {
        {.title = "Loss surface (floored at 1e-4) and the SGD paths", .xlabel = "w",
         .ylabel = "b", .series = on_map, .nseries = n + 2, .field = &ff},
        {.title = "Loss (line: geometric mean of 25 steps; band: their min to max)",
         .xlabel = "step", .ylabel = "loss", .logy = PLOT_LOGY_AUTO,
         .series = loss_s, .nseries = n},
        {.title = zt, .xlabel = "w", .ylabel = "b", .series = on_map, .nseries = n + 1,
         .field = &fz},
        {.title = "Global gradient L2 norm (geometric mean of 25 steps; band: min to max)",
         .xlabel = "step", .ylabel = "norm",
         .logy = PLOT_LOGY_AUTO, .series = norm_s, .nseries = nn},
    };
    int rc = plot_figure_grid(path, title, panels, 4, 2, 1500, 1150, err, errlen);
    free(full), free(zoom);
    for (int i = 0; i < n; i++) {
        path_free(&p[i]), free(thy[i]);
        for (int k = 0; k < 6; k++) free(band[i][k]);
    }
    return rc;
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

/* surface.csv, and with [run] plots cliff.png: this run's path on the surface. */
static void cliff_finish(void *mp, Trainer *tr) {
    Cliff *m = mp;
    char err[600], path[CFG_STR_MAX + 32], label[CFG_STR_MAX + 128], desc[96];
    if (m->cfg.surface && cliff_write_surface(&m->cfg, m->out_dir, err, sizeof err) != 0)
        die("%s", err);
    if (tr->run.plots) {
        clipper_describe_run(&tr->groups[0].clip, desc, sizeof desc);
        snprintf(label, sizeof label, "%s (clip: %s)", tr->run.name, desc);
        snprintf(path, sizeof path, "%s/cliff.png", m->out_dir);
        const MetricsLog *log = &tr->log;
        const char *lp = label;
        if (cliff_figure(&m->cfg, &log, &lp, 1, "Pascanu et al.'s cliff (2013, Fig. 6)", path, err,
                         sizeof err) != 0)
            die("writing %s: %s", path, err);
    }
    if (!tr->train.quiet)
        printf("%s: wrote %s%s\n", tr->run.name, m->cfg.surface ? "surface.csv " : "",
               tr->run.plots ? "cliff.png" : "");
}

/* Several runs: every path on one surface (the first run's config gives the
 * surface and the start; the zoom follows the first run's largest gradient). */
static int cliff_compare(const RunResult *runs, const void *const *cfgs, int n, const char *path) {
    enum { MAXR = 8 };
    if (n > MAXR) return trainer_compare_plot(runs, n, path);
    const MetricsLog *logs[MAXR];
    const char *labels[MAXR];
    char names[MAXR][128];
    for (int i = 0; i < n; i++) {
        logs[i] = &runs[i].log, labels[i] = names[i];
        if (!strcmp(runs[i].clip_desc, "none"))
            snprintf(names[i], sizeof names[i], "SGD, no clipping");
        else
            snprintf(names[i], sizeof names[i], "SGD, clip at %s", runs[i].clip_desc);
    }
    const CliffConfig *c0 = cfgs[0];
    for (int i = 1; i < n; i++) {
        const CliffConfig *ci = cfgs[i];
        if (ci->w0 != c0->w0 || ci->b0 != c0->b0)
            fprintf(stderr, "cliplab: warning: %s starts at (%g, %g), %s at (%g, %g); the figure "
                            "marks the first start\n",
                    runs[0].name, c0->w0, c0->b0, runs[i].name, ci->w0, ci->b0);
    }
    char err[600];
    int rc = cliff_figure(c0, logs, labels, n, "Pascanu et al.'s cliff (2013, Fig. 6): the same "
                          "start, SGD without and with clipping", path, err, sizeof err);
    if (rc != 0) fprintf(stderr, "cliplab: error: writing %s: %s\n", path, err);
    return rc;
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
    .compare_plot = cliff_compare,
};
