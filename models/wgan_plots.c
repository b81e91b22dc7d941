/* wgan_plots.c: the WGAN's figures, drawn with the plotting module's general
 * kinds (plot.h: line panels, scatter sets over a function heatmap,
 * histograms); nothing here draws pixels. Inputs are the runs' in-memory
 * metrics and the CSVs wgan.c writes at the end of a run (samples.csv,
 * critic_map.csv, critic_weights.csv, layer_grads.csv).
 *   wgan_run_plot:     <out_dir>/wgan.png: real and generated points over the
 *                      critic's value D(x) (WGAN-GP's value surfaces), the critic
 *                      weight histogram, the Wasserstein estimate and the
 *                      critic's input-gradient norm over steps;
 *   wgan_compare_plot: several runs: those curves overlaid plus each run's
 *                      points and weights; or, when every run logged per-layer
 *                      gradients (layer_grads = true), WGAN-GP's Figure 1:
 *                      (a) the critic loss's gradient norm w.r.t. each layer's
 *                      activations, log scale, one line per run, and (b) each
 *                      run's weight histogram; several seeds of each
 *                      configuration: the trainer's median-and-band figure of
 *                      the estimate, ||grad D||, modes and high-quality share. */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common.h"
#include "plot.h"
#include "train.h"
#include "wgan.h"

/* ------------------------------------------------------------- inputs */

/* What one run left behind, for its panels. */
typedef struct RunPics {
    const char *name, *label;
    const MetricsLog *log;
    double *step, *wass, *slope, *modes, *hq;  /* metrics columns (nrows) */
    double *rx, *ry, *gx, *gy;                 /* samples.csv: real and generated points */
    size_t nreal, ngen;
    double *map;                               /* critic_map.csv, [P][P], row 0 at the bottom */
    int P;
    double range;
    double *w;                                 /* critic_weights.csv */
    size_t nw;
    double c;                                  /* the clamp bound, NaN when not clipped */
    double at_bounds;
    double *layer;                             /* layer_grads.csv: mean of the last rows */
    int nlayer;
    char title[3][CFG_STR_MAX + 96];
    double vl[2];
} RunPics;

static FILE *open_in(const char *dir, const char *name) {
    char path[600];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    return fopen(path, "r");
}

/* Append v to a growing array. */
static void push(double **a, size_t *n, size_t *cap, double v) {
    if (*n == *cap) {
        *cap = *cap ? 2 * *cap : 1024;
        *a = realloc(*a, *cap * sizeof **a);
        if (!*a) die("out of memory reading a run's files");
    }
    (*a)[(*n)++] = v;
}

static void read_samples(RunPics *r, const char *dir) {
    FILE *f = open_in(dir, "samples.csv");
    if (!f) return;
    char line[256];
    size_t n[4] = {0, 0, 0, 0}, cap[4] = {0, 0, 0, 0};
    while (fgets(line, sizeof line, f)) {
        double x, y;
        if (sscanf(line, "real,%lf,%lf", &x, &y) == 2) {
            push(&r->rx, &n[0], &cap[0], x);
            push(&r->ry, &n[1], &cap[1], y);
        } else if (sscanf(line, "generated,%lf,%lf", &x, &y) == 2) {
            push(&r->gx, &n[2], &cap[2], x);
            push(&r->gy, &n[3], &cap[3], y);
        }
    }
    fclose(f);
    r->nreal = n[0], r->ngen = n[2];
}

static void read_map(RunPics *r, const char *dir) {
    FILE *f = open_in(dir, "critic_map.csv");
    if (!f) return;
    char line[256];
    size_t n = 0, cap = 0;
    double xmax = 0;
    while (fgets(line, sizeof line, f)) {
        double x, y, v;
        if (sscanf(line, "%lf,%lf,%lf", &x, &y, &v) != 3) continue;
        push(&r->map, &n, &cap, v);
        xmax = x > xmax ? x : xmax;
    }
    fclose(f);
    int P = (int)lround(sqrt((double)n));
    if (P >= 2 && (size_t)P * (size_t)P == n) r->P = P, r->range = xmax;
}

static void read_weights(RunPics *r, const char *dir) {
    FILE *f = open_in(dir, "critic_weights.csv");
    if (!f) return;
    char line[256];
    size_t cap = 0;
    double amax = 0;
    while (fgets(line, sizeof line, f)) {
        char *c = strchr(line, ',');
        char *end;
        double v = c ? strtod(c + 1, &end) : NAN;
        if (!c || end == c + 1) continue; /* the header */
        push(&r->w, &r->nw, &cap, v);
        amax = fabs(v) > amax ? fabs(v) : amax;
    }
    fclose(f);
    /* a clamped critic's largest |w| is the bound itself */
    if (!isnan(r->at_bounds)) r->c = amax;
}

/* Mean over the last `last` rows of each layer column. */
static void read_layers(RunPics *r, const char *dir, int last) {
    FILE *f = open_in(dir, "layer_grads.csv");
    if (!f) return;
    char line[8192];
    double *rows = NULL;
    size_t n = 0, cap = 0;
    int L = 0;
    if (fgets(line, sizeof line, f))
        for (char *c = line; *c; c++) L += *c == ',';
    while (L > 0 && fgets(line, sizeof line, f)) {
        char *c = strchr(line, ',');
        for (int l = 0; l < L; l++) {
            double v = c ? strtod(c + 1, &c) : NAN;
            push(&rows, &n, &cap, v);
        }
    }
    fclose(f);
    size_t nr = L ? n / (size_t)L : 0;
    if (nr > 0) {
        r->nlayer = L;
        r->layer = xcalloc((size_t)L, sizeof *r->layer);
        size_t lo = nr > (size_t)last ? nr - (size_t)last : 0;
        for (int l = 0; l < L; l++) {
            for (size_t i = lo; i < nr; i++) r->layer[l] += rows[i * (size_t)L + l];
            r->layer[l] /= (double)(nr - lo);
        }
    }
    free(rows);
}

static void load_run(RunPics *r, const char *name, const char *label, const MetricsLog *log,
                     const char *dir) {
    memset(r, 0, sizeof *r);
    r->name = name, r->label = label, r->log = log;
    r->step = metrics_column_or_nan(log, "step");
    r->wass = metrics_column_or_nan(log, "wasserstein");
    r->slope = metrics_column_or_nan(log, "grad_x_norm");
    r->modes = metrics_column_or_nan(log, "modes");
    r->hq = metrics_column_or_nan(log, "hq_frac");
    double *b = metrics_column_or_nan(log, "critic_at_bounds");
    r->at_bounds = log->nrows ? b[log->nrows - 1] : NAN;
    free(b);
    r->c = NAN;
    read_samples(r, dir);
    read_map(r, dir);
    read_weights(r, dir);
    read_layers(r, dir, 50);
}

static void free_run(RunPics *r) {
    free(r->step), free(r->wass), free(r->slope), free(r->modes), free(r->hq);
    free(r->rx), free(r->ry), free(r->gx), free(r->gy), free(r->map), free(r->w), free(r->layer);
}

/* ------------------------------------------------------------- panels */

/* Real and generated points over the critic's value. s: 2 series, f: 1 field. */
static PlotPanel samples_panel(RunPics *r, PlotSeries *s, PlotField *f) {
    double h = r->P > 1 ? 2 * r->range / (r->P - 1) : 0;
    *f = (PlotField){.v = r->map, .nx = r->P, .ny = r->P, .x0 = -r->range - h / 2,
                     .x1 = r->range + h / 2, .y0 = -r->range - h / 2, .y1 = r->range + h / 2,
                     .label = "critic D(x)"};
    /* the real points last, so the generated cloud does not hide the modes */
    s[0] = (PlotSeries){.label = "generated", .x = r->gx, .y = r->gy, .n = r->ngen,
                        .style = PLOT_DOTS, .marker = PLOT_MARK_CIRCLE, .color = 3};
    s[1] = (PlotSeries){.label = "real", .x = r->rx, .y = r->ry, .n = r->nreal, .style = PLOT_DOTS,
                        .marker = PLOT_MARK_PLUS, .color = 2};
    size_t last = r->log->nrows ? r->log->nrows - 1 : 0;
    if (r->log->nrows && !isnan(r->modes[last]))
        snprintf(r->title[0], sizeof r->title[0], "%s: %g modes, %.0f%% of points near one", r->name,
                 r->modes[last], 100 * r->hq[last]);
    else
        snprintf(r->title[0], sizeof r->title[0], "%s: points over the critic D(x)", r->name);
    return (PlotPanel){.title = r->title[0], .xlabel = "x1", .ylabel = "x2", .series = s,
                       .nseries = r->ngen ? 2 : 0, .field = r->P ? f : NULL};
}

static PlotPanel weights_panel(RunPics *r, PlotHist *hs) {
    *hs = (PlotHist){.label = "critic weights and biases", .v = r->w, .n = r->nw};
    if (isfinite(r->c)) {
        snprintf(r->title[1], sizeof r->title[1], "%s: %.0f%% of critic weights at +-%g", r->name,
                 100 * r->at_bounds, r->c);
        r->vl[0] = -r->c, r->vl[1] = r->c;
    } else {
        snprintf(r->title[1], sizeof r->title[1], "%s: critic weights (no clamp)", r->name);
    }
    return (PlotPanel){.title = r->title[1], .xlabel = "value", .ylabel = "count",
                       .logy = PLOT_LOGY_OFF, .hists = hs, .nhists = r->nw ? 1 : 0, .bins = 60,
                       .vlines = isfinite(r->c) ? r->vl : NULL, .nvlines = isfinite(r->c) ? 2 : 0,
                       .vline_label = "+-c"};
}

/* Metrics over steps for runs[0..n): which = 0 estimate, 1 slope, 2 modes, 3 hq. */
static PlotPanel curve_panel(RunPics *r, int n, int which, PlotSeries *s) {
    static const char *const titles[4] = {
        "Wasserstein estimate E D(real) - E D(fake)",
        "Critic slope ||grad_x D|| at interpolates (dashed: 1)",
        "Modes covered (a generated point within 3 std)", "Share of generated points within 3 std of a mode"};
    static const char *const ylabels[4] = {"estimate", "norm", "modes", "share"};
    for (int i = 0; i < n; i++) {
        const double *y[4] = {r[i].wass, r[i].slope, r[i].modes, r[i].hq};
        s[i] = (PlotSeries){.label = r[i].label, .x = r[i].step, .y = y[which], .n = r[i].log->nrows};
    }
    return (PlotPanel){.title = titles[which], .xlabel = "generator update", .ylabel = ylabels[which],
                       .logy = which == 1 ? PLOT_LOGY_ON : PLOT_LOGY_OFF, .series = s, .nseries = n,
                       .hline = which == 1 ? 1.0 : NAN, .hline_label = which == 1 ? "1-Lipschitz" : NULL,
                       .legend_off = which > 0 && n > 1}; /* several runs: named once, in the first */
}

static int has_modes(const RunPics *r) { return r->log->nrows && !isnan(r->modes[0]); }

int wgan_run_plot(const MetricsLog *log, const char *name, const char *title, const char *dir) {
    RunPics r;
    load_run(&r, name, name, log, dir);
    PlotSeries ss[2], cs[2];
    PlotField f;
    PlotHist h;
    PlotPanel p[4] = {samples_panel(&r, ss, &f), weights_panel(&r, &h), curve_panel(&r, 1, 0, cs),
                      curve_panel(&r, 1, 1, cs + 1)};
    char path[600], err[256];
    snprintf(path, sizeof path, "%s/wgan.png", dir);
    int rc = plot_figure_grid(path, title, p, 4, 2, 1300, 960, err, sizeof err);
    if (rc != 0) fprintf(stderr, "cliplab: error: writing %s: %s\n", path, err);
    free_run(&r);
    return rc;
}

/* ------------------------------------------------------------- comparisons */

/* WGAN-GP Figure 1: per-layer gradient norms, the input-gradient norm over
 * steps, and each run's weight histogram. */
static int figure1(RunPics *r, int n, const char *title, const char *path) {
    PlotSeries *ls = xcalloc((size_t)n, sizeof *ls), *cs = xcalloc((size_t)n, sizeof *cs);
    PlotHist *hs = xcalloc((size_t)n, sizeof *hs);
    PlotPanel *p = xcalloc((size_t)n + 2, sizeof *p);
    double lx[WGAN_MAX_DEPTH];
    for (int l = 0; l < WGAN_MAX_DEPTH; l++) lx[l] = l + 1;
    for (int i = 0; i < n; i++) {
        ls[i] = (PlotSeries){.label = r[i].label, .x = lx, .y = r[i].layer, .n = (size_t)r[i].nlayer,
                             .style = PLOT_LINE_MARKERS};
        printf("%s: ||dL/dh|| layer 1 %.3g, layer %d %.3g (first/last %.3g); weights within 1%% of "
               "+-c: %.1f%%\n", r[i].name, r[i].layer[0], r[i].nlayer, r[i].layer[r[i].nlayer - 1],
               r[i].layer[0] / r[i].layer[r[i].nlayer - 1], 100 * r[i].at_bounds);
        p[2 + i] = weights_panel(&r[i], &hs[i]);
    }
    p[0] = (PlotPanel){.title = "(a) ||d critic loss / d h_layer|| (last 50 updates)",
                       .xlabel = "critic layer (1 = next to the input)", .ylabel = "gradient norm",
                       .logy = PLOT_LOGY_ON, .series = ls, .nseries = n};
    p[1] = curve_panel(r, n, 1, cs);
    char err[256];
    int ncols = 3, rows = (n + 2 + ncols - 1) / ncols;
    int rc = plot_figure_grid(path, title, p, n + 2, ncols, 1800, 460 * rows, err, sizeof err);
    if (rc != 0) fprintf(stderr, "cliplab: error: writing %s: %s\n", path, err);
    free(ls), free(cs), free(hs), free(p);
    return rc;
}

/* The curves overlaid, then each run's points and weights, one column per run. */
static int overlay(RunPics *r, int n, const char *title, const char *path) {
    int ncols = n < 3 ? 3 : n, ncurves = has_modes(&r[0]) ? 4 : 2;
    if (ncurves > ncols) ncurves = ncols;
    PlotSeries *cs = xcalloc(4 * (size_t)n, sizeof *cs), *ss = xcalloc(2 * (size_t)n, sizeof *ss);
    PlotField *fs = xcalloc((size_t)n, sizeof *fs);
    PlotHist *hs = xcalloc((size_t)n, sizeof *hs);
    PlotPanel *p = xcalloc((size_t)ncols + 2 * (size_t)n, sizeof *p);
    int np = 0;
    for (int k = 0; k < ncurves; k++) p[np++] = curve_panel(r, n, k, cs + (size_t)k * n);
    np = ncols;  /* a fresh row for the runs' own panels */
    for (int i = 0; i < n; i++) p[np++] = samples_panel(&r[i], ss + 2 * i, &fs[i]);
    np += (ncols - n % ncols) % ncols;
    for (int i = 0; i < n; i++) p[np++] = weights_panel(&r[i], &hs[i]);
    for (int i = ncurves; i < ncols; i++) p[i] = (PlotPanel){.title = ""};
    char err[256];
    int rows = (np + ncols - 1) / ncols;
    int rc = plot_figure_grid(path, title, p, np, ncols, 520 * ncols, 440 * rows, err, sizeof err);
    if (rc != 0) fprintf(stderr, "cliplab: error: writing %s: %s\n", path, err);
    free(cs), free(ss), free(fs), free(hs), free(p);
    return rc;
}

/* A run's legend: its critic's constraint and its config's name ("weight clamp 0.01
 * (wgan_clip)"); the generic legend would call the penalty "no clipping". */
static void constraint_label(const RunResult *r, char *buf, size_t len) {
    if (strcmp(r->clip_desc, "none"))
        snprintf(buf, len, "%s (%s)", r->clip_desc, r->name);
    else
        snprintf(buf, len, "%s (%s)", r->own[0] ? r->own : "no constraint", r->name);
}

int wgan_compare_plot(const RunResult *runs, const void *const *cfgs, int n, const char *path) {
    (void)cfgs;
    if (trainer_compare_has_seeds(runs, n)) /* several seeds: medians and bands */
        return trainer_compare_plot(runs, n, path);
    RunPics *r = xcalloc((size_t)n, sizeof *r);
    char (*labels)[2 * CFG_STR_MAX] = xcalloc((size_t)n, sizeof *labels), title[400], seed[40] = "";
    int fig1 = 1, same_seed = 1;
    for (int i = 0; i < n; i++) {
        constraint_label(&runs[i], labels[i], sizeof labels[i]);
        load_run(&r[i], runs[i].name, labels[i], &runs[i].log, runs[i].out_dir);
        fig1 &= r[i].nlayer > 0;
        same_seed &= runs[i].seed == runs[0].seed;
    }
    if (same_seed) snprintf(seed, sizeof seed, ", seed %ld", runs[0].seed);
    if (fig1)
        snprintf(title, sizeof title, "WGAN-GP Figure 1: 12-layer ReLU critics on the Swiss roll, "
                                      "weight clipping vs gradient penalty%s", seed);
    else
        snprintf(title, sizeof title, "%s: no constraint, weight clipping, gradient penalty%s",
                 runs[0].title, seed);
    int rc = fig1 ? figure1(r, n, title, path) : overlay(r, n, title, path);
    for (int i = 0; i < n; i++) free_run(&r[i]);
    free(r), free(labels);
    return rc;
}
