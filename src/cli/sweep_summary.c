/* sweep_summary.c: what a sweep answers. Reads each run's metrics.csv into its
 * status and numbers, then writes sweep.csv (one row per run), summary.csv
 * (the numbers the figure draws) and summary.png.
 *
 * A run "diverged at step N" when its last logged row has a non-finite loss or
 * pre-clip gradient norm (the trainer stopped there); N is the first such row.
 * Its final metric is then NaN: the weights it ended with are not a result.
 * The figure groups runs into lines (a group, and the values of the swept keys
 * other than the x key); each point is the median over its seeds of the final
 * metric of the runs that did not diverge or fail, with their min and max, and
 * a count of the diverged ones. Drawing is left to src/plot. */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common.h"
#include "plot.h"
#include "sweep.h"

static int cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

double sweep_median(double *x, size_t n) {
    size_t k = 0;
    for (size_t i = 0; i < n; i++)
        if (isfinite(x[i])) x[k++] = x[i];
    if (k == 0) return NAN;
    qsort(x, k, sizeof *x, cmp_double);
    return k % 2 ? x[k / 2] : 0.5 * (x[k / 2 - 1] + x[k / 2]);
}

/* ------------------------------------------------------------ one run */

int sweep_read_metrics(SweepRun *r, const char *path, const char *metric, int higher, int code) {
    r->diverged_step = -1;
    r->failed = 0;
    r->final_metric = r->best_metric = r->clip_frac = r->median_norm = NAN;
    FILE *f = fopen(path, "r");
    int rc = -1;
    double *norms = NULL;
    size_t nn = 0, cap = 0;
    if (f) {
        static char line[1 << 16];
        int c_step = -1, c_loss = -1, c_norm = -1, c_frac = -1, c_met = -1;
        if (fgets(line, sizeof line, f)) {
            line[strcspn(line, "\r\n")] = '\0';
            int col = 0;
            for (char *p = line, *q; p; p = q, col++) {
                q = strchr(p, ',');
                if (q) *q++ = '\0';
                if (!strcmp(p, "step")) c_step = col;
                if (!strcmp(p, "loss")) c_loss = col;
                if (!strcmp(p, "grad_norm")) c_norm = col;
                if (!strcmp(p, "grad_clip_frac") || !strcmp(p, "clip_frac")) c_frac = col; /* the name before 2026-12 too */
                if (!strcmp(p, metric)) c_met = col;
            }
            rc = c_step >= 0 && c_loss >= 0 && c_norm >= 0 ? 0 : -1;
        }
        int last_bad = 0;
        long first_bad = -1;
        double best = NAN, final = NAN;
        while (rc == 0 && fgets(line, sizeof line, f)) {
            double v[5] = {NAN, NAN, NAN, NAN, NAN}; /* step loss norm frac metric */
            int col = 0;
            for (char *p = line, *q; p; p = q, col++) {
                q = strchr(p, ',');
                if (q) *q++ = '\0';
                double d = strtod(p, NULL);
                if (col == c_step) v[0] = d;
                if (col == c_loss) v[1] = d;
                if (col == c_norm) v[2] = d;
                if (col == c_frac) v[3] = d;
                if (col == c_met) v[4] = d;
            }
            last_bad = !isfinite(v[1]) || !isfinite(v[2]);
            if (last_bad && first_bad < 0) first_bad = (long)v[0];
            if (isfinite(v[2])) {
                if (nn == cap) {
                    cap = cap ? 2 * cap : 4096;
                    norms = realloc(norms, cap * sizeof *norms);
                    if (!norms) die("out of memory");
                }
                norms[nn++] = v[2];
            }
            if (!isnan(v[3])) r->clip_frac = v[3];
            if (!isnan(v[4])) final = v[4]; /* evaluated rows only */
            if (isfinite(v[4]) && (isnan(best) || (higher ? v[4] > best : v[4] < best))) best = v[4];
        }
        fclose(f);
        if (rc == 0) {
            r->median_norm = sweep_median(norms, nn);
            r->best_metric = best;
            if (last_bad) r->diverged_step = first_bad;
            else r->final_metric = final;
        }
    }
    free(norms);
    if (r->diverged_step >= 0)
        snprintf(r->status, sizeof r->status, "diverged at step %ld", r->diverged_step);
    else if (code != 0 || rc != 0) {
        r->failed = 1;
        if (code < 0) snprintf(r->status, sizeof r->status, "error (signal %d)", -code);
        else if (code != 0) snprintf(r->status, sizeof r->status, "error (exit %d)", code);
        else snprintf(r->status, sizeof r->status, "error (no metrics.csv)");
    } else
        snprintf(r->status, sizeof r->status, "ok");
    return rc;
}

/* ------------------------------------------------------------ lines */

typedef struct Point {
    double x;
    int runs, ok, diverged, errors;
    double median, lo, hi;
    double median_div;         /* median with each diverged run counted as +inf */
} Point;

typedef struct Line {
    char label[256];
    const char *xkey;          /* NULL: a baseline (no x key in this group) */
    Point *pts;
    int npts;
} Line;

/* Index of the x axis among run r's axes, or -1. */
static int x_axis(const SweepSpec *s, const SweepRun *r) {
    for (int i = 0; i < r->naxes; i++)
        if (s->xkey[0] ? !strcmp(r->axis[i]->key, s->xkey) : r->axis[i]->numeric) return i;
    return -1;
}

static void line_label(const SweepSpec *s, const SweepRun *r, int xi, char *out, size_t len) {
    int k = snprintf(out, len, "%s", s->groups[r->group].label);
    for (int i = 0; i < r->naxes && k < (int)len; i++)
        if (i != xi)
            k += snprintf(out + k, len - (size_t)k, "%s%s=%s", k ? " " : "", r->axis[i]->key,
                          r->val[i]);
    if (k == 0) snprintf(out, len, "%s", xi >= 0 ? "all runs" : "baseline");
}

static Line *build_lines(const SweepSpec *s, int *nlines) {
    Line *L = xcalloc((size_t)s->nruns, sizeof *L);
    int nl = 0;
    int *line_of = xcalloc((size_t)s->nruns, sizeof *line_of);
    for (int i = 0; i < s->nruns; i++) {
        const SweepRun *r = &s->runs[i];
        int xi = x_axis(s, r);
        char lab[256];
        line_label(s, r, xi, lab, sizeof lab);
        int l = 0;
        while (l < nl && strcmp(L[l].label, lab)) l++;
        if (l == nl) {
            snprintf(L[nl].label, sizeof L[nl].label, "%s", lab);
            L[nl].xkey = xi >= 0 ? r->axis[xi]->key : NULL;
            L[nl].pts = xcalloc((size_t)s->nruns, sizeof *L[nl].pts);
            nl++;
        }
        line_of[i] = l;
        double x = xi >= 0 ? r->axis[xi]->num[0] : NAN;
        if (xi >= 0)
            for (int v = 0; v < r->axis[xi]->nvals; v++)
                if (r->axis[xi]->vals[v] == r->val[xi]) x = r->axis[xi]->num[v];
        Line *ln = &L[l];
        int p = 0;
        while (p < ln->npts && !(ln->pts[p].x == x || (isnan(x) && isnan(ln->pts[p].x)))) p++;
        if (p == ln->npts) ln->pts[ln->npts++].x = x;
        Point *pt = &ln->pts[p];
        pt->runs++;
        if (r->failed) pt->errors++;
        else if (r->diverged_step >= 0) pt->diverged++;
        else if (isfinite(r->final_metric)) pt->ok++;
        else pt->errors++;
    }
    double *vals = xcalloc((size_t)s->nruns, sizeof *vals);
    for (int l = 0; l < nl; l++) {
        Line *ln = &L[l];
        qsort(ln->pts, (size_t)ln->npts, sizeof *ln->pts, cmp_double); /* x is the first field */
        for (int p = 0; p < ln->npts; p++) {
            Point *pt = &ln->pts[p];
            size_t n = 0;
            int ndiv = 0;
            for (int i = 0; i < s->nruns; i++) {
                const SweepRun *r = &s->runs[i];
                if (line_of[i] != l || r->failed) continue;
                int xi = x_axis(s, r);
                double x = NAN;
                if (xi >= 0)
                    for (int v = 0; v < r->axis[xi]->nvals; v++)
                        if (r->axis[xi]->vals[v] == r->val[xi]) x = r->axis[xi]->num[v];
                if (!(x == pt->x || (isnan(x) && isnan(pt->x)))) continue;
                if (r->diverged_step >= 0) ndiv++;
                else if (isfinite(r->final_metric)) vals[n++] = r->final_metric;
            }
            pt->median = sweep_median(vals, n); /* sorts the finite values first */
            pt->lo = n ? vals[0] : NAN;
            pt->hi = n ? vals[n - 1] : NAN;
            /* the same runs with the diverged ones as the worst values: sorted
             * order is vals then ndiv infinities (or before them, if higher is better) */
            size_t m = n + (size_t)ndiv;
            if (m == 0) {
                pt->median_div = NAN;
            } else {
                double worst = s->metric_higher ? -INFINITY : INFINITY;
                size_t a = (m - 1) / 2, b = m / 2;
                const double *v = vals;
                /* element k of the ascending order (diverged at the end when lower is better) */
#define AT(k) (s->metric_higher ? ((k) < (size_t)ndiv ? worst : v[(k) - (size_t)ndiv]) \
                                : ((k) < n ? v[k] : worst))
                pt->median_div = a == b ? AT(a) : 0.5 * (AT(a) + AT(b));
#undef AT
            }
        }
    }
    free(vals);
    free(line_of);
    *nlines = nl;
    return L;
}

static void free_lines(Line *L, int n) {
    for (int l = 0; l < n; l++) free(L[l].pts);
    free(L);
}

/* ------------------------------------------------------------ files */

static FILE *open_tmp(const char *path, char *tmp, size_t len) {
    snprintf(tmp, len, "%s.tmp", path);
    FILE *f = fopen(tmp, "w");
    if (!f) fprintf(stderr, "cliplab: error: cannot write %s: %s\n", tmp, strerror(errno));
    return f;
}

static int close_tmp(FILE *f, const char *tmp, const char *path) {
    int bad = ferror(f) | (fclose(f) != 0);
    if (bad || rename(tmp, path) != 0) {
        fprintf(stderr, "cliplab: error: cannot write %s: %s\n", path, strerror(errno));
        unlink(tmp);
        return -1;
    }
    return 0;
}

static void put_num(FILE *f, double v) {
    if (isnan(v)) fputs(",nan", f);
    else if (isinf(v)) fputs(v > 0 ? ",inf" : ",-inf", f);
    else fprintf(f, ",%.6g", v);
}

static int write_sweep_csv(const SweepSpec *s) {
    char path[700], tmp[720];
    snprintf(path, sizeof path, "%s/sweep.csv", s->out_dir);
    FILE *f = open_tmp(path, tmp, sizeof tmp);
    if (!f) return -1;
    /* columns: every swept key once, in order of first appearance */
    const char *keys[SWEEP_MAX_AXES * (SWEEP_MAX_GROUPS + 1)];
    int nk = 0;
    for (int i = 0; i < s->nruns; i++)
        for (int a = 0; a < s->runs[i].naxes; a++) {
            int k = 0;
            while (k < nk && strcmp(keys[k], s->runs[i].axis[a]->key)) k++;
            if (k == nk) keys[nk++] = s->runs[i].axis[a]->key;
        }
    fprintf(f, "run,group");
    for (int k = 0; k < nk; k++) fprintf(f, ",%s", keys[k]);
    fprintf(f, ",seed,status,final_%s,best_%s,grad_clip_frac,median_grad_norm,wall_s\n", s->metric,
            s->metric);
    for (int i = 0; i < s->nruns; i++) {
        const SweepRun *r = &s->runs[i];
        fprintf(f, "%s,%s", r->name, s->groups[r->group].label);
        for (int k = 0; k < nk; k++) {
            const char *v = "";
            for (int a = 0; a < r->naxes; a++)
                if (!strcmp(r->axis[a]->key, keys[k])) v = r->val[a];
            /* a value with commas or quotes is quoted (RFC 4180) */
            if (strpbrk(v, ",\"")) {
                fputs(",\"", f);
                for (const char *c = v; *c; c++) fprintf(f, *c == '"' ? "\"\"" : "%c", *c);
                fputc('"', f);
            } else {
                fprintf(f, ",%s", v);
            }
        }
        if (r->seed >= 0) fprintf(f, ",%ld", r->seed);
        else fputs(",", f);
        fprintf(f, ",%s", r->done ? r->status : "not run");
        put_num(f, r->final_metric);
        put_num(f, r->best_metric);
        put_num(f, r->clip_frac);
        put_num(f, r->median_norm);
        fprintf(f, ",%.2f\n", r->wall_s);
    }
    return close_tmp(f, tmp, path);
}

static int write_summary_csv(const SweepSpec *s, const Line *L, int nl) {
    char path[700], tmp[720];
    snprintf(path, sizeof path, "%s/summary.csv", s->out_dir);
    FILE *f = open_tmp(path, tmp, sizeof tmp);
    if (!f) return -1;
    fprintf(f, "line,x_key,x,runs,ok,diverged,errors,median_final_%s,min_final_%s,max_final_%s,"
               "frac_diverged,median_final_%s_diverged_as_worst\n", s->metric, s->metric, s->metric,
            s->metric);
    for (int l = 0; l < nl; l++)
        for (int p = 0; p < L[l].npts; p++) {
            const Point *pt = &L[l].pts[p];
            fprintf(f, "%s,%s", L[l].label, L[l].xkey ? L[l].xkey : "");
            if (isnan(pt->x)) fputs(",", f);
            else fprintf(f, ",%.6g", pt->x);
            fprintf(f, ",%d,%d,%d,%d", pt->runs, pt->ok, pt->diverged, pt->errors);
            put_num(f, pt->median);
            put_num(f, pt->lo);
            put_num(f, pt->hi);
            put_num(f, pt->runs ? (double)pt->diverged / pt->runs : NAN);
            put_num(f, pt->median_div);
            fputc('\n', f);
        }
    return close_tmp(f, tmp, path);
}

/* ------------------------------------------------------------ figure */

/* The trivial predictor's loss when the sweep's metric is a loss, from a run's config.ini
 * (the trainer notes it there); NaN otherwise. */
static double trivial_loss(const SweepSpec *s) {
    double trivial = NAN;
    char path[800], line[512];
    if (!strstr(s->metric, "loss")) return NAN;
    snprintf(path, sizeof path, "%s/%s/config.ini", s->out_dir, s->nruns ? s->runs[0].name : "");
    FILE *cf = fopen(path, "r");
    while (cf && fgets(line, sizeof line, cf))
        if (!strncmp(line, "; trivial-predictor loss: ", 26)) trivial = strtod(line + 26, NULL);
    if (cf) fclose(cf);
    return trivial;
}

/* summary.png. Panel 1: per line, the median final metric over the seeds that
 * did not diverge, with a min-max band; a baseline (a group without the x key)
 * is a flat line with its band across the x range; diverged runs are crosses
 * at the top of the panel in their line's colour, counted in the legend.
 * Panel 2: the fraction of seeds that diverged (left out when no run did).
 * Log x when x spans a decade (one panel per method: two decades). */
/* Groups that sweep different keys (units) get a panel each, on their own key's axis:
 * the median and min-max band of the final metric over the seeds that did not diverge,
 * the diverged runs as crosses at the top and counted in the panel's title; a baseline
 * group (nothing swept) is each panel's reference line. */
static int write_figure_groups(const SweepSpec *s, const Line *L, int nl) {
    PlotPanel *pan = xcalloc((size_t)nl, sizeof *pan);
    PlotSeries *ser = xcalloc(2 * (size_t)nl, sizeof *ser);
    char (*titles)[300] = xcalloc((size_t)nl, sizeof *titles);
    char (*labels)[300] = xcalloc(2 * (size_t)nl, sizeof *labels);
    double **bufs = xcalloc((size_t)nl * 6 + 1, sizeof *bufs);
    double base = NAN;
    char blab[300] = "";
    for (int l = 0; l < nl; l++)
        if (!L[l].xkey && isfinite(L[l].pts[0].median) && isnan(base)) {
            base = L[l].pts[0].median;
            snprintf(blab, sizeof blab, "%s (nothing swept): median %.3g", L[l].label, base);
        }
    int np = 0, nb = 0;
    for (int l = 0; l < nl; l++) {
        const Line *ln = &L[l];
        if (!ln->xkey) continue;
        int m = ln->npts, k = 0, kd = 0, ndiv = 0, nrun = 0;
        double *x = bufs[nb++] = xcalloc((size_t)m + 1, sizeof *x);
        double *med = bufs[nb++] = xcalloc((size_t)m + 1, sizeof *med);
        double *lo = bufs[nb++] = xcalloc((size_t)m + 1, sizeof *lo);
        double *hi = bufs[nb++] = xcalloc((size_t)m + 1, sizeof *hi);
        double *dx = bufs[nb++] = xcalloc((size_t)m + 1, sizeof *dx);
        double *dy = bufs[nb++] = xcalloc((size_t)m + 1, sizeof *dy);
        double ymax = -INFINITY, xmin = INFINITY, xmax = -INFINITY;
        for (int p = 0; p < m; p++) {
            const Point *pt = &ln->pts[p];
            ndiv += pt->diverged, nrun += pt->runs;
            xmin = fmin(xmin, pt->x), xmax = fmax(xmax, pt->x);
            if (!isfinite(pt->median)) continue;
            x[k] = pt->x, med[k] = pt->median, lo[k] = pt->lo, hi[k++] = pt->hi;
            ymax = fmax(ymax, pt->hi);
        }
        if (isfinite(base)) ymax = fmax(ymax, base);
        for (int p = 0; p < m; p++)
            if (ln->pts[p].diverged) dx[kd] = ln->pts[p].x, dy[kd++] = isfinite(ymax) ? ymax * 2 : 1;
        snprintf(labels[2 * l], sizeof labels[0], "median of %d seeds, min-max band", ln->pts[0].runs);
        snprintf(labels[2 * l + 1], sizeof labels[0], "diverged (each x with one or more)");
        int ns = 0;
        PlotSeries *sr = ser + 2 * np;
        if (k)
            sr[ns++] = (PlotSeries){.label = labels[2 * l], .x = x, .y = med, .n = (size_t)k,
                                    .style = PLOT_LINE_MARKERS, .lo = lo, .hi = hi,
                                    .marker = PLOT_MARK_CIRCLE, .color = l + 1};
        if (kd)
            sr[ns++] = (PlotSeries){.label = labels[2 * l + 1], .x = dx, .y = dy, .n = (size_t)kd,
                                    .style = PLOT_DOTS, .marker = PLOT_MARK_CROSS, .color = 7};
        snprintf(titles[np], sizeof titles[0], "%s: %d of %d runs diverged", ln->label, ndiv, nrun);
        double ymin = INFINITY;
        for (int q = 0; q < k; q++) ymin = fmin(ymin, lo[q]);
        int logy = ymin > 0 && isfinite(ymax) && ymax / ymin > 100; /* the baseline included */
        pan[np] = (PlotPanel){.title = titles[np], .xlabel = ln->xkey, .ylabel = s->metric,
                                .logy = logy ? PLOT_LOGY_ON : PLOT_LOGY_AUTO, .series = sr, .nseries = ns,
                                .logx = xmin > 0 && xmax / xmin >= 100, .hline = base,
                                .hline_label = isfinite(base) ? blab : NULL};
        np++;
    }
    char title[600], path[700], err[512];
    snprintf(title, sizeof title, "sweep %.120s: final %s (%s is better) of %d runs of %.200s, "
             "one panel per method", s->name, s->metric, s->metric_higher ? "higher" : "lower",
             s->nruns, s->config);
    snprintf(path, sizeof path, "%s/summary.png", s->out_dir);
    int rows = (np + 1) / 2;
    int rc = plot_figure_grid(path, title, pan, np, np > 1 ? 2 : 1, 1300, 44 + 330 * rows, err,
                              sizeof err);
    if (rc != 0) fprintf(stderr, "cliplab: error: %s: %s\n", path, err);
    for (int i = 0; i < nb; i++) free(bufs[i]);
    free(bufs), free(labels), free(titles), free(ser), free(pan);
    return rc;
}

static int write_figure(const SweepSpec *s, const Line *L, int nl) {
    double xmin = INFINITY, xmax = -INFINITY, ymin = INFINITY, ymax = -INFINITY;
    const char *xkey = NULL;
    int same_key = 1;
    for (int l = 0; l < nl; l++) {
        if (!L[l].xkey) continue;
        if (xkey && strcmp(xkey, L[l].xkey)) same_key = 0;
        xkey = L[l].xkey;
        for (int p = 0; p < L[l].npts; p++) xmin = fmin(xmin, L[l].pts[p].x), xmax = fmax(xmax, L[l].pts[p].x);
    }
    for (int l = 0; l < nl; l++)
        for (int p = 0; p < L[l].npts; p++)
            if (isfinite(L[l].pts[p].median)) {
                ymin = fmin(ymin, L[l].pts[p].lo);
                ymax = fmax(ymax, L[l].pts[p].hi);
            }
    if (xkey && !same_key) return write_figure_groups(s, L, nl);
    if (!xkey) { /* nothing numeric was swept: the groups side by side */
        xmin = 0, xmax = nl > 1 ? nl - 1 : 1;
    }
    if (xmin == xmax) xmin -= 0.5, xmax += 0.5;
    int logx = xkey && xmin > 0 && xmax / xmin >= 10; /* a decade: epsilon 0.5..8 too */
    int logy = isfinite(ymin) && ymin > 0 && ymax / ymin > 100;
    double ytop = !isfinite(ymax) ? 1.0 : logy ? ymax * 3 : ymax + 0.08 * (ymax - ymin) + 1e-12;
    int cap = 2 * nl + 2;
    PlotSeries *s1 = xcalloc((size_t)cap, sizeof *s1), *s2 = xcalloc((size_t)cap, sizeof *s2);
    char (*labels)[300] = xcalloc((size_t)cap * 2, sizeof *labels);
    double **bufs = xcalloc((size_t)nl * 8 + 1, sizeof *bufs);
    int n1 = 0, n2 = 0, nb = 0, nlab = 0;
    for (int l = 0; l < nl; l++) {
        const Line *ln = &L[l];
        int m = ln->npts, base = ln->xkey == NULL, npt = base ? 2 : m;
        double *x = bufs[nb++] = xcalloc((size_t)npt + 1, sizeof *x);
        double *med = bufs[nb++] = xcalloc((size_t)npt + 1, sizeof *med);
        double *lo = bufs[nb++] = xcalloc((size_t)npt + 1, sizeof *lo);
        double *hi = bufs[nb++] = xcalloc((size_t)npt + 1, sizeof *hi);
        double *fx = bufs[nb++] = xcalloc((size_t)npt + 1, sizeof *fx);
        double *frac = bufs[nb++] = xcalloc((size_t)npt + 1, sizeof *frac);
        double *dx = bufs[nb++] = xcalloc((size_t)npt + 1, sizeof *dx);
        double *dy = bufs[nb++] = xcalloc((size_t)npt + 1, sizeof *dy);
        int k = 0, kd = 0, kf = 0, ndiv = 0, nrun = 0;
        for (int p = 0; p < m; p++) ndiv += ln->pts[p].diverged, nrun += ln->pts[p].runs;
        if (base) {
            const Point *pt = &ln->pts[0];
            double xb[2] = {xkey ? xmin : l - 0.25, xkey ? xmax : l + 0.25};
            for (int q = 0; q < 2; q++) {
                fx[q] = xb[q];
                frac[q] = pt->runs ? (double)pt->diverged / pt->runs : NAN;
                if (isfinite(pt->median)) x[k] = xb[q], med[k] = pt->median, lo[k] = pt->lo, hi[k++] = pt->hi;
            }
            kf = 2;
            if (pt->diverged) /* one mark, mid-axis */
                dx[kd] = !xkey ? l : logx ? sqrt(xmin * xmax) : 0.5 * (xmin + xmax), dy[kd++] = ytop;
        } else {
            for (int p = 0; p < m; p++) {
                const Point *pt = &ln->pts[p];
                fx[kf] = pt->x;
                frac[kf++] = pt->runs ? (double)pt->diverged / pt->runs : NAN;
                if (pt->diverged) dx[kd] = pt->x, dy[kd++] = ytop;
                if (!isfinite(pt->median)) continue;
                x[k] = pt->x, med[k] = pt->median, lo[k] = pt->lo, hi[k++] = pt->hi;
            }
        }
        int runs0 = ln->pts[0].runs;
        snprintf(labels[nlab], sizeof labels[nlab], "%s%s: median of %d seed%s, min-max band",
                 ln->label, base ? " (baseline)" : "", runs0, runs0 > 1 ? "s" : "");
        if (k)
            s1[n1++] = (PlotSeries){.label = labels[nlab], .x = x, .y = med, .n = (size_t)k,
                                    .style = base ? PLOT_LINE : PLOT_LINE_MARKERS, .lo = lo,
                                    .hi = hi, .marker = PLOT_MARK_CIRCLE, .color = l + 1};
        nlab++;
        if (kd) {
            int w = snprintf(labels[nlab], sizeof labels[nlab],
                             "%s: diverged, %d of %d runs (drawn above the finite values)", ln->label, ndiv, nrun);
            if (w >= (int)sizeof labels[nlab]) /* a cut label says so */
                memcpy(labels[nlab] + sizeof labels[nlab] - 4, "...", 4);
            s1[n1++] = (PlotSeries){.label = labels[nlab++], .x = dx, .y = dy, .n = (size_t)kd,
                                    .style = PLOT_DOTS, .marker = PLOT_MARK_CROSS, .color = l + 1};
        }
        snprintf(labels[nlab], sizeof labels[nlab], "%s%s", ln->label, base ? " (baseline)" : "");
        s2[n2++] = (PlotSeries){.label = labels[nlab++], .x = fx, .y = frac, .n = (size_t)kf,
                                .style = base ? PLOT_LINE : PLOT_LINE_MARKERS,
                                .marker = PLOT_MARK_CIRCLE, .color = l + 1};
    }
    char xlabel[300];
    snprintf(xlabel, sizeof xlabel, "%s", !xkey ? "group" : same_key ? xkey : "each group's swept key");
    char t1[300], t2[200], title[700];
    snprintf(t1, sizeof t1, "final %s (%s is better): median over the seeds that did not diverge",
             s->metric, s->metric_higher ? "higher" : "lower");
    snprintf(t2, sizeof t2, "fraction of seeds that diverged (non-finite loss or gradient)");
    if (xkey && same_key)
        snprintf(title, sizeof title, "sweep %.100s: final %s against %.60s, %d runs of %.150s", s->name,
                 s->metric, xkey, s->nruns, s->config);
    else
        snprintf(title, sizeof title, "sweep %.120s: %d runs of %.200s", s->name, s->nruns, s->config);
    double trivial = trivial_loss(s);
    double vl[3];
    int nv = 0;
    char vlab[300] = "";
    if (s->mark_norm_rule && xkey) {
        double *m = xcalloc((size_t)s->nruns + 1, sizeof *m);
        size_t nm = 0;
        for (int i = 0; i < s->nruns; i++) {
            const SweepRun *r = &s->runs[i];
            if (!r->failed && r->clip_frac == 0.0) m[nm++] = r->median_norm;
        }
        double typ = sweep_median(m, nm);
        free(m);
        if (isfinite(typ) && typ > 0) {
            vl[nv++] = 0.5 * typ, vl[nv++] = typ, vl[nv++] = 10 * typ;
            snprintf(vlab, sizeof vlab, "median pre-clip norm of the never-clipped runs (%.3g), "
                     "0.5x and 10x it: Pascanu et al. 2013's range", typ);
        }
    }
    const char *const *cats = NULL;
    const char **catv = NULL;
    if (!xkey) { /* groups side by side on a categorical axis */
        catv = xcalloc((size_t)nl, sizeof *catv);
        for (int l = 0; l < nl; l++) catv[l] = L[l].label;
        cats = catv;
    }
    PlotPanel pan[2] = {
        {.title = t1, .xlabel = xlabel, .ylabel = s->metric, .logy = logy ? PLOT_LOGY_ON : PLOT_LOGY_OFF,
         .series = s1, .nseries = n1, .vlines = nv ? vl : NULL, .nvlines = nv,
         .vline_label = nv ? vlab : NULL, .hline = trivial,
         .hline_label = isfinite(trivial) ? "trivial predictor" : NULL, .logx = logx, .xcats = cats,
         .ncats = cats ? nl : 0},
        {.title = t2, .xlabel = xlabel, .ylabel = "fraction diverged", .logy = PLOT_LOGY_OFF,
         .series = s2, .nseries = n2, .vlines = nv ? vl : NULL, .nvlines = nv,
         .vline_label = nv ? vlab : NULL, .hline = NAN, .logx = logx, .xcats = cats,
         .ncats = cats ? nl : 0},
    };
    /* no run diverged: the second panel would be a line at 0; say so in the first */
    int anydiv = 0;
    for (int l = 0; l < nl; l++)
        for (int p = 0; p < L[l].npts; p++) anydiv |= L[l].pts[p].diverged > 0;
    if (!anydiv)
        snprintf(t1, sizeof t1, "final %s (%s is better): median over the seeds; no run diverged",
                 s->metric, s->metric_higher ? "higher" : "lower");
    char path[700], err[512];
    snprintf(path, sizeof path, "%s/summary.png", s->out_dir);
    int rc = plot_figure(path, title, pan, anydiv ? 2 : 1, 1100, anydiv ? 1000 : 600, err,
                         sizeof err);
    if (rc != 0) fprintf(stderr, "cliplab: error: %s: %s\n", path, err);
    for (int i = 0; i < nb; i++) free(bufs[i]);
    free(bufs), free(labels), free(s1), free(s2), free(catv);
    return rc;
}

/* map.png: rows = the figure's lines, columns = the x values they share. A cell
 * is the median final metric with diverged runs as the worst value, so a cell
 * whose median run diverged is non-finite and drawn in the diverged colour. */
static int write_map(const SweepSpec *s, const Line *L, int nl) {
    double xs[1000];
    int nx = 0;
    const char *xkey = NULL;
    for (int l = 0; l < nl; l++)
        for (int p = 0; p < L[l].npts && L[l].xkey; p++) {
            xkey = L[l].xkey;
            int k = 0;
            while (k < nx && xs[k] != L[l].pts[p].x) k++;
            if (k == nx && nx < 1000) xs[nx++] = L[l].pts[p].x;
        }
    if (!nx) {
        fprintf(stderr, "cliplab: error: --map needs a numeric swept key for the columns\n");
        return -1;
    }
    qsort(xs, (size_t)nx, sizeof *xs, cmp_double);
    double *v = xcalloc((size_t)nl * (size_t)nx, sizeof *v);
    const char **rows = xcalloc((size_t)nl, sizeof *rows);
    int logx = xs[0] > 0 && xs[nx - 1] / xs[0] >= 100;
    double cx[1000];
    for (int k = 0; k < nx; k++) cx[k] = logx ? log10(xs[k]) : xs[k];
    int logc = 1;
    for (int l = 0; l < nl; l++) {
        rows[l] = L[l].label;
        for (int k = 0; k < nx; k++) {
            double c = NAN;
            for (int p = 0; p < L[l].npts; p++)
                if (L[l].pts[p].x == xs[k] || (!L[l].xkey && p == 0)) c = L[l].pts[p].median_div;
            v[(size_t)l * nx + k] = c;
            if (isfinite(c) && c <= 0) logc = 0;
        }
    }
    double trivial = trivial_loss(s);
    char path[800], err[512], title[400], xlabel[200], mlab[96] = "";
    if (isfinite(trivial))
        snprintf(mlab, sizeof mlab, "trivial predictor %.3g", trivial);
    char (*cl)[32] = xcalloc((size_t)nx, sizeof *cl);
    const char **clp = xcalloc((size_t)nx, sizeof *clp);
    for (int k = 0; k < nx; k++) snprintf(cl[k], sizeof cl[k], "%.3g", xs[k]), clp[k] = cl[k];
    snprintf(path, sizeof path, "%s/map.png", s->out_dir);
    snprintf(title, sizeof title, "%.100s: median final %s over seeds (div: the median run "
             "diverged)", s->name, s->metric);
    snprintf(xlabel, sizeof xlabel, "%.150s", xkey);
    int rc = nx <= 60 && nl <= 60
                 ? plot_matrix(path, title, xlabel, rows, nl, clp, nx, v, logc, trivial,
                               mlab[0] ? mlab : NULL, err, sizeof err)
                 : plot_heatmap(path, title, xlabel, rows, nl, cx, nx, v, logc, err, sizeof err);
    free(cl), free(clp);
    if (rc != 0) fprintf(stderr, "cliplab: error: %s: %s\n", path, err);
    free(v);
    free(rows);
    return rc;
}

int sweep_write_summary(const SweepSpec *s) {
    int nl;
    Line *L = build_lines(s, &nl);
    int rc = write_sweep_csv(s);
    if (rc == 0) rc = write_summary_csv(s, L, nl);
    char seeds[200] = "the config's own";
    size_t k = 0;
    for (int i = 0; i < s->nseeds && k < sizeof seeds; i++)
        k += (size_t)snprintf(seeds + k, sizeof seeds - k, "%s%ld", i ? ", " : "", s->seeds[i]);
    plot_provenance("Seed", seeds); /* every run of each point */
    if (rc == 0) rc = write_figure(s, L, nl);
    if (rc == 0 && s->map) rc = write_map(s, L, nl);
    if (rc == 0)
        printf("sweep %s: wrote %s/sweep.csv, summary.csv, summary.png%s\n", s->name, s->out_dir,
               s->map ? ", map.png" : "");
    free_lines(L, nl);
    return rc;
}
