/* grad_hist.c: one step's activation-gradient histogram and its figure (grad_hist.h). */
#include "grad_hist.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common.h"
#include "plot.h"

#define NB (GRAD_HIST_HI - GRAD_HIST_LO)

void grad_hist_record(GradHist *h, const Ctx *c, long step, double scale) {
    memset(h, 0, sizeof *h);
    h->step = step;
    h->scale = scale;
    const double tiny = ldexp(1, -25), big = 65520.0; /* fp16: <= 2^-25 -> 0, >= 65520 -> inf */
    for (size_t i = 0; i < c->nnodes; i++) {
        const Tensor *t = c->nodes[i].out;
        for (size_t j = 0; t->grad && j < t->n; j++) {
            double a = fabs((double)t->grad[j]);
            h->total++;
            if (!isfinite(a)) {
                h->nonfinite++;
                continue;
            }
            if (a == 0) {
                h->zero++;
                continue;
            }
            h->flush_true += a / scale <= tiny;
            h->flush_scaled += a <= tiny;
            h->overflow_scaled += a >= big;
            int e;
            frexp(a, &e); /* a = m 2^e, m in [0.5, 1): floor(log2 a) = e - 1 */
            int k = e - 1 < GRAD_HIST_LO ? GRAD_HIST_LO : e - 1 >= GRAD_HIST_HI ? GRAD_HIST_HI - 1 : e - 1;
            h->count[k - GRAD_HIST_LO]++;
        }
    }
}

static double pct(double a, double b) { return b > 0 ? 100.0 * a / b : NAN; }

int grad_hist_write(const GradHist *h, const char *dir, const char *run_name, char *err, size_t errlen) {
    char path[1024];
    snprintf(path, sizeof path, "%s/grad_hist.csv", dir);
    FILE *f = fopen(path, "w");
    if (!f) {
        snprintf(err, errlen, "cannot write %s", path);
        return -1;
    }
    fprintf(f, "# step %ld, loss scale %.17g, %.0f values: %.0f zero, %.0f non-finite; fp16 flushes "
               "%.0f to zero at scale 1 and %.0f at this scale, and overflows %.0f at this scale\n",
            h->step, h->scale, h->total, h->zero, h->nonfinite, h->flush_true, h->flush_scaled,
            h->overflow_scaled);
    fprintf(f, "log2_lo,count\n");
    for (int k = 0; k < NB; k++)
        if (h->count[k] > 0) fprintf(f, "%d,%.0f\n", k + GRAD_HIST_LO, h->count[k]);
    if (fclose(f) != 0) {
        snprintf(err, errlen, "cannot write %s", path);
        return -1;
    }
    /* the share of all values per bin, true (scale 1) and as scaled */
    int lo = NB, hi = 0;
    for (int k = 0; k < NB; k++)
        if (h->count[k] > 0) lo = k < lo ? k : lo, hi = k > hi ? k : hi;
    if (lo > hi) lo = hi = 0;
    int n = hi - lo + 1;
    double sh = log2(h->scale);
    double xt[NB], xs[NB], y[NB];
    for (int i = 0; i < n; i++) {
        xs[i] = lo + i + GRAD_HIST_LO + 0.5;
        xt[i] = xs[i] - sh;
        y[i] = pct(h->count[lo + i], h->total);
    }
    char lt[160], ls[160], title[600];
    snprintf(lt, sizeof lt, "true gradient (scale 1): fp16 flushes %.1f%% to zero", pct(h->flush_true, h->total));
    snprintf(ls, sizeof ls, "times the loss scale 2^%.0f: %.2f%% flushed, %.2f%% overflow", sh,
             pct(h->flush_scaled, h->total), pct(h->overflow_scaled, h->total));
    PlotSeries s[2] = {{.label = lt, .x = xt, .y = y, .n = (size_t)n, .style = PLOT_LINE_MARKERS},
                       {.label = ls, .x = xs, .y = y, .n = (size_t)n, .style = PLOT_LINE_MARKERS,
                        .marker = PLOT_MARK_SQUARE}};
    double vl[3] = {-24, -14, log2(65504.0)};
    PlotPanel p = {.title = "share per log2 bin; dashed: fp16's smallest subnormal, smallest normal, largest",
                   .xlabel = "log2 |gradient|", .ylabel = "% of all values", .logy = PLOT_LOGY_ON,
                   .series = s, .nseries = h->scale != 1.0 ? 2 : 1, .vlines = vl, .nvlines = 3,
                   .vline_label = "fp16: 2^-24, 2^-14, 65504 (below 2^-25: zero)"};
    snprintf(title, sizeof title, "%s: activation gradients at step %ld (%.1f%% exactly zero in fp32)",
             run_name, h->step, pct(h->zero, h->total));
    snprintf(path, sizeof path, "%s/grad_hist.png", dir);
    return plot_figure(path, title, &p, 1, 1000, 520, err, errlen);
}

int grad_hist_read(GradHist *h, const char *dir) {
    char path[1024], line[512];
    snprintf(path, sizeof path, "%s/grad_hist.csv", dir);
    FILE *f = fopen(path, "r");
    if (!f) return -1;
    memset(h, 0, sizeof *h);
    int ok = fgets(line, sizeof line, f) &&
             sscanf(line, "# step %ld, loss scale %lf, %lf values: %lf zero, %lf non-finite; fp16 "
                          "flushes %lf to zero at scale 1 and %lf at this scale, and overflows %lf",
                    &h->step, &h->scale, &h->total, &h->zero, &h->nonfinite, &h->flush_true,
                    &h->flush_scaled, &h->overflow_scaled) == 8 &&
             h->scale > 0 && fgets(line, sizeof line, f) && !strcmp(line, "log2_lo,count\n");
    int k;
    double cnt;
    while (ok && fgets(line, sizeof line, f)) {
        ok = sscanf(line, "%d,%lf", &k, &cnt) == 2 && k >= GRAD_HIST_LO && k < GRAD_HIST_HI;
        if (ok) h->count[k - GRAD_HIST_LO] = cnt;
    }
    fclose(f);
    return ok ? 0 : -1;
}

int grad_hist_compare(const char *path, const char *title, const GradHist *h,
                      const char *const *labels, int n, char *err, size_t errlen) {
    PlotSeries *s = xcalloc((size_t)n, sizeof *s);
    double *xy = xcalloc((size_t)n * 2 * NB, sizeof *xy);
    char(*lab)[256] = xcalloc((size_t)n, sizeof *lab);
    for (int r = 0; r < n; r++) {
        /* the cumulative share: values (fp32's zeros included) below each bin's upper edge,
         * on the true gradient's scale (the recorded bin less log2(scale)) */
        double *x = xy + (size_t)r * 2 * NB, *y = x + NB, sh = log2(h[r].scale), cum = h[r].zero;
        size_t m = 0;
        for (int k = 0; k < NB; k++) {
            cum += h[r].count[k];
            if (h[r].count[k] > 0) x[m] = k + GRAD_HIST_LO + 1 - sh, y[m++] = pct(cum, h[r].total);
        }
        snprintf(lab[r], sizeof lab[r], "%s: %.1fM values, fp16 flushes %.1f%% to zero at scale 1",
                 labels[r], h[r].total / 1e6, pct(h[r].flush_true, h[r].total));
        s[r] = (PlotSeries){.label = lab[r], .x = x, .y = y, .n = m, .style = PLOT_LINE_MARKERS};
    }
    double vl[3] = {-25, -14, log2(65504.0)};
    PlotPanel p = {.title = "share of the values below each size (the true gradient: scale 1)",
                   .xlabel = "log2 |gradient|", .ylabel = "% of all values (cumulative)",
                   .logy = PLOT_LOGY_OFF, .series = s, .nseries = n, .vlines = vl, .nvlines = 3,
                   .vline_label = "fp16: 0 at or below 2^-25, subnormal below 2^-14, inf above 65504"};
    int rc = plot_figure(path, title, &p, 1, 1200, 600, err, errlen);
    free(s), free(xy), free(lab);
    return rc;
}
