/* figure.c: panels (what they draw: plot.h) laid out in a column or a grid, with the
 * legend placed inside where it hides the fewest drawn pixels (counted on a coverage
 * mask), else in a column right of the plots so x stays aligned.
 *
 * Divergence: the y range fits the series that stay finite (when one does); a series
 * that goes non-finite and leaves that range gets an arrow at the frame where it left
 * and the red cross where it went non-finite, labelled with both x values. When that
 * happens in the first ZOOM_FRAC of the x range, an inset (placed where it hides the
 * least) shows the start with every finite value. */
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "plot_internal.h"

/* A legend entry's swatch: the series' PlotStyle (line, dots, line with markers) or one
 * of these. */
enum { SW_BOX = 3, SW_VLINE, SW_HLINE, SW_CROSS };

typedef struct LegendEntry {
    const char *label;
    int kind;
    PlotColor col;
    int marker, band, dash;
} LegendEntry;

/* Where a series first went non-finite (x; i: its index): its last drawable point before
 * that (index, or -1: mark the top edge at x), what the value was, and where marker and
 * text go. out: it left the y range at x = out_x before (1 above, -1 below, 0 no). */
typedef struct Diverge {
    int has, out;
    long last, i;
    double x, px, py, out_x;
    char what[8];
    char text[96];
    Rect label;
} Diverge;

#define ZOOM_FRAC 0.05

typedef struct Panel {
    const PlotPanel *p;
    Axis x, y;
    Rect area, plot, legend;
    LegendEntry *leg;
    int nleg, lw, lh;  /* legend entries and size */
    long hidden;       /* drawn pixels the legend hides inside the plot */
    char (*hlab)[160]; /* [nhists] legend labels with what was left out */
    Diverge *div;      /* [nseries] */
    int zoom;          /* an inset of the start: x in [x.lo, zoom_x] */
    double zoom_x;
    Rect inset;
    double *counts;    /* [nhists][bins] */
    int bins, cbar;    /* cbar: room the colour bar takes right of the plot */
    double hlo, hhi;   /* histogram bin range */
    Heat heat;
} Panel;

static double series_x(const PlotSeries *s, size_t i) { return s->x ? s->x[i] : (double)i; }

static PlotColor series_colour(const Panel *P, int k) {
    const PlotSeries *s = &P->p->series[k];
    if (s->faint) return (PlotColor){170, 170, 170, 255};
    return plot_palette(s->color > 0 ? s->color - 1 : P->p->nhists + k);
}

static int has_band(const PlotSeries *s) { return s->lo && s->hi; }

/* 1 when a y value (x finite) is non-finite: the series diverged. */
static int goes_nonfinite(const PlotSeries *s) {
    for (size_t i = 0; i < s->n; i++)
        if (!isfinite(s->y[i]) && isfinite(s->x ? s->x[i] : (double)i)) return 1;
    return 0;
}

/* The series that decide the y range: those that stay finite, or all when none does. */
static int fits_range(const PlotPanel *p, int k) {
    if (!goes_nonfinite(&p->series[k])) return 1;
    for (int j = 0; j < p->nseries; j++)
        if (!goes_nonfinite(&p->series[j]) && p->series[j].n > 0) return 0;
    return 1;
}

static int shown(const Axis *ax, double v) { return isfinite(v) && (!ax->log || v > 0); }

static int point_ok(const Panel *P, const PlotSeries *s, size_t i) {
    return shown(&P->x, series_x(s, i)) && shown(&P->y, s->y[i]);
}

static int band_ok(const Panel *P, const PlotSeries *s, size_t i) {
    return shown(&P->x, series_x(s, i)) && shown(&P->y, s->lo[i]) && shown(&P->y, s->hi[i]);
}

static int hline_shown(const Panel *P) { return P->p->hline_label && shown(&P->y, P->p->hline); }

static void grow(double *lo, double *hi, const Axis *ax, double v) {
    if (shown(ax, v)) *lo = fmin(*lo, v), *hi = fmax(*hi, v);
}

int plot_choose_logy(const PlotPanel *p) {
    if (p->field) return 0;
    if (p->logy != PLOT_LOGY_AUTO || p->nhists > 0) return p->logy == PLOT_LOGY_ON;
    double lo = INFINITY, hi = -INFINITY;
    for (int k = 0; p->series && k < p->nseries; k++) {
        const PlotSeries *s = &p->series[k];
        if (!fits_range(p, k)) continue;
        const double *ys[3] = {s->y, has_band(s) ? s->lo : NULL, has_band(s) ? s->hi : NULL};
        for (int j = 0; j < 3; j++)
            for (size_t i = 0; ys[j] && i < s->n; i++) {
                double v = ys[j][i];
                if (!isfinite(v)) continue;
                if (v < 0) return 0; /* a log axis would hide negative values */
                if (v > 0) lo = fmin(lo, v), hi = fmax(hi, v);
            }
    }
    return lo <= hi && log10(hi) - log10(lo) > 2;
}

int plot_field_range(const PlotField *f, double *lo, double *hi) {
    Heat hs;
    int any = heat_scale(&hs, f->v, (size_t)f->nx * (size_t)f->ny, f->logscale);
    *lo = hs.ax.log ? pow(10, hs.ax.lo) : hs.ax.lo;
    *hi = hs.ax.log ? pow(10, hs.ax.hi) : hs.ax.hi;
    return any;
}

/* ---- data: ranges, histograms, divergences, legend ---- */

static void hist_count(Panel *P) {
    const PlotPanel *p = P->p;
    double lo = INFINITY, hi = -INFINITY;
    for (int h = 0; h < p->nhists; h++)
        for (size_t i = 0; i < p->hists[h].n; i++) grow(&lo, &hi, &P->x, p->hists[h].v[i]);
    if (p->hist_lo < p->hist_hi)
        lo = p->hist_lo, hi = p->hist_hi;
    else
        limits_linear(lo, hi, 0, &lo, &hi);
    P->hlo = lo, P->hhi = hi;
    for (int h = 0; h < p->nhists; h++) {
        long bad = 0, out = 0;
        for (size_t i = 0; i < p->hists[h].n; i++) {
            double v = p->hists[h].v[i];
            double b = v == hi ? P->bins - 1 : floor((v - lo) / (hi - lo) * P->bins);
            if (!isfinite(v))
                bad++;
            else if (b < 0 || b >= P->bins)
                out++;
            else
                P->counts[(size_t)h * P->bins + (size_t)b]++;
        }
        char note[80] = "";
        if (bad || out)
            snprintf(note, sizeof note, " (%ld %s not binned)", bad + out,
                     out ? "outside the range or non-finite" : "non-finite");
        snprintf(P->hlab[h], sizeof P->hlab[h], "%s%s",
                 p->hists[h].label ? p->hists[h].label : "(unnamed)", note);
    }
}

static Diverge find_divergence(const Panel *P, const PlotSeries *s) {
    Diverge d = {.last = -1};
    size_t i = 0;
    while (i < s->n && (isfinite(s->y[i]) || !isfinite(series_x(s, i)))) i++;
    if (i == s->n) return d;
    d.has = 1, d.x = series_x(s, i), d.last = (long)i - 1, d.i = (long)i;
    snprintf(d.what, sizeof d.what, "%s", isnan(s->y[i]) ? "NaN" : s->y[i] > 0 ? "+inf" : "-inf");
    while (d.last >= 0 && !point_ok(P, s, (size_t)d.last)) d.last--;
    return d;
}

static void panel_ranges(Panel *P) {
    const PlotPanel *p = P->p;
    double xl = INFINITY, xh = -INFINITY, yl = INFINITY, yh = -INFINITY;
    for (int k = 0; k < p->nseries; k++) {
        const PlotSeries *s = &p->series[k];
        int fit = fits_range(p, k);
        for (size_t i = 0; i < s->n; i++) {
            if (!shown(&P->x, series_x(s, i))) continue;
            grow(&xl, &xh, &P->x, series_x(s, i));
            if (!fit) continue;
            grow(&yl, &yh, &P->y, s->y[i]);
            if (has_band(s)) grow(&yl, &yh, &P->y, s->lo[i]), grow(&yl, &yh, &P->y, s->hi[i]);
        }
    }
    for (int k = 0; p->vlines && k < p->nvlines; k++) grow(&xl, &xh, &P->x, p->vlines[k]);
    if (hline_shown(P)) grow(&yl, &yh, &P->y, p->hline);
    for (size_t i = 0; i < (size_t)p->nhists * P->bins; i++) grow(&yl, &yh, &P->y, P->counts[i]);
    if (p->nhists) grow(&xl, &xh, &P->x, P->hlo), grow(&xl, &xh, &P->x, P->hhi);
    if (p->nhists && P->y.log) grow(&yl, &yh, &P->y, 0.3); /* a count of 1 stays visible */
    if (P->x.log) /* padded 5%, not widened to decades: 1-2-5 labels inside one */
        limits_log(xl, xh, 0.05, !(xl < xh), &P->x.lo, &P->x.hi);
    else
        limits_linear(xl, xh, 0.02, &P->x.lo, &P->x.hi);
    if (P->y.log)
        limits_log(yl, yh, 0.05, 1, &P->y.lo, &P->y.hi);
    else
        limits_linear(p->nhists ? fmin(0, yl) : yl, yh, 0.05, &P->y.lo, &P->y.hi);
    if (p->nhists && !P->y.log && yl >= 0) P->y.lo = 0;
    if (p->xcats) P->x.lo = -0.5, P->x.hi = p->ncats - 0.5;
    if (p->field) {
        P->x.lo = p->field->x0, P->x.hi = p->field->x1;
        P->y.lo = p->field->y0, P->y.hi = p->field->y1;
    }
}

static void legend_add(Panel *P, const char *label, int kind, PlotColor c, int marker, int band) {
    P->leg[P->nleg++] = (LegendEntry){label, kind, c, marker, band, 0};
}

static void legend_build(Panel *P) {
    const PlotPanel *p = P->p;
    if (p->legend_off) return;
    int any_div = 0;
    for (int h = 0; h < p->nhists; h++) legend_add(P, P->hlab[h], SW_BOX, plot_palette(h), 0, 0);
    for (int k = 0; k < p->nseries; k++) {
        const PlotSeries *s = &p->series[k];
        legend_add(P, s->label ? s->label : "(unnamed)",
                   s->style == PLOT_DOTS || s->style == PLOT_LINE_MARKERS ? s->style : PLOT_LINE,
                   series_colour(P, k), s->marker, has_band(s));
        P->leg[P->nleg - 1].dash = s->dash;
        any_div |= P->div[k].has;
    }
    if (p->vlines && p->nvlines > 0)
        legend_add(P, p->vline_label ? p->vline_label : "event", SW_VLINE, C_EVENT, 0, 0);
    if (hline_shown(P)) legend_add(P, p->hline_label, SW_HLINE, C_REFLINE, 0, 0);
    if (any_div) legend_add(P, "non-finite (diverged)", SW_CROSS, C_RED, 0, 0);
}

static const char *panel_check(const PlotPanel *p) {
    const PlotField *f = p->field;
    if (p->nseries < 0 || (p->nseries > 0 && !p->series) || p->nhists < 0 ||
        (p->nhists > 0 && !p->hists))
        return "bad series or histogram list";
    for (int k = 0; k < p->nseries; k++) {
        const PlotSeries *s = &p->series[k];
        if (s->n > 0 && !s->y) return "a series has points but no y values";
        if (s->n > 0 && !s->lo != !s->hi) return "a series has lo without hi";
    }
    for (int h = 0; h < p->nhists; h++)
        if (p->hists[h].n > 0 && !p->hists[h].v) return "a histogram has samples but no values";
    if (p->xcats && (p->ncats < 1 || p->logx))
        return "a categorical x axis needs ncats >= 1, not log";
    if (f && (!f->v || f->nx < 1 || f->ny < 1 || f->nx > 100000 || f->ny > 100000 ||
              !(f->x0 < f->x1) || !(f->y0 < f->y1)))
        return "a field needs values, nx, ny >= 1 and x0 < x1, y0 < y1";
    return NULL;
}

/* Layout-independent setup of a panel: scales, histograms, ranges, divergences, legend. */
static int panel_prepare(Panel *P, const PlotPanel *p, int i, char *err, size_t errlen) {
    const char *bad = panel_check(p);
    if (bad)
        return set_err(err, errlen, "plot_figure: panel %d (%s): %s", i,
                       p->title ? p->title : "untitled", bad);
    P->p = p;
    P->bins = p->bins > 0 ? imin(p->bins, 10000) : 30;
    P->div = calloc((size_t)p->nseries + 1, sizeof *P->div);
    P->leg = calloc((size_t)p->nseries + (size_t)p->nhists + 3, sizeof *P->leg);
    P->hlab = calloc((size_t)p->nhists + 1, sizeof *P->hlab);
    P->counts = calloc((size_t)p->nhists * (size_t)P->bins + 1, sizeof *P->counts);
    if (!P->div || !P->leg || !P->hlab || !P->counts)
        return set_err(err, errlen, "plot: out of memory");
    P->y.log = plot_choose_logy(p);
    P->x.log = p->logx && !p->field && !p->nhists;
    if (p->nhists) hist_count(P);
    for (int k = 0; k < p->nseries; k++) P->div[k] = find_divergence(P, &p->series[k]);
    panel_ranges(P);
    legend_build(P);
    if (p->field)
        heat_scale(&P->heat, p->field->v, (size_t)p->field->nx * p->field->ny, p->field->logscale);
    return 0;
}

/* ---- pixels ---- */

/* Canvas coordinates of data values (kept within 100 plot sizes of the plot, for values
 * beyond the +-1e300 the limits are clamped to). */
static double px_x(const Panel *P, double x) {
    return axis_px(&P->x, axis_unit(&P->x, x), P->plot.x0, P->plot.x1);
}

static double px_y(const Panel *P, double y) {
    return axis_px(&P->y, axis_unit(&P->y, y), P->plot.y1, P->plot.y0);
}

/* The lo..hi band of a series as filled polygons, one per run of drawable points. */
static void fill_band(cairo_t *cr, const Panel *P, const PlotSeries *s, PlotColor c, double a) {
    for (size_t i = 0, j = 0; i < s->n; i = ++j) {
        while (j < s->n && band_ok(P, s, j)) j++;
        if (j - i < 2) continue;
        cairo_new_sub_path(cr);
        for (size_t k = i; k < j; k++)
            cairo_line_to(cr, px_x(P, series_x(s, k)), px_y(P, s->hi[k]));
        for (size_t k = j; k-- > i;)
            cairo_line_to(cr, px_x(P, series_x(s, k)), px_y(P, s->lo[k]));
        cairo_close_path(cr);
    }
    set_colour(cr, c, a);
    cairo_fill(cr);
}

/* Lines between drawable neighbours (a dot for an isolated point), then markers. */
static void stroke_series(cairo_t *cr, const Panel *P, const PlotSeries *s, PlotColor c) {
    if (s->style != PLOT_DOTS) {
        cairo_set_line_width(cr, LINE_WIDTH);
        set_colour(cr, c, 1);
        if (s->dash) {
            double d[2] = {7, 4};
            cairo_set_dash(cr, d, 2, 0);
        }
        int segs = 0; /* stroked in pieces: cairo's cost grows faster than a path's length */
        for (size_t i = 0; i < s->n; i++) {
            if (!point_ok(P, s, i)) continue;
            double x = px_x(P, series_x(s, i)), y = px_y(P, s->y[i]);
            int prev = i > 0 && point_ok(P, s, i - 1), next = i + 1 < s->n && point_ok(P, s, i + 1);
            if (prev)
                cairo_line_to(cr, x, y);
            else if (next)
                cairo_move_to(cr, x, y);
            else
                cairo_new_sub_path(cr), cairo_arc(cr, x, y, LINE_WIDTH / 2, 0, 2 * M_PI);
            if (++segs % 128 == 0) cairo_stroke(cr), cairo_move_to(cr, x, y);
        }
        cairo_stroke(cr);
        cairo_set_dash(cr, NULL, 0, 0);
    }
    if (s->style == PLOT_LINE) return;
    double r = (s->style == PLOT_DOTS ? DOT_RADIUS : MARK_RADIUS) + (P->p->field ? 1 : 0);
    for (size_t i = 0; i < s->n; i++)
        if (point_ok(P, s, i))
            draw_marker(cr, s->marker, px_x(P, series_x(s, i)), px_y(P, s->y[i]), r, c,
                        P->p->field != NULL);
}

/* What legends and labels should not hide: histograms, bands and series. */
static void draw_data(cairo_t *cr, const Panel *P) {
    const PlotPanel *p = P->p;
    double bw = (P->hhi - P->hlo) / P->bins;
    cairo_save(cr);
    clip_to(cr, P->plot);
    for (int h = 0; h < p->nhists; h++)
        for (int b = 0; b < P->bins; b++) {
            double n = P->counts[(size_t)h * P->bins + b], a = P->hlo + b * bw, e = a + bw;
            if (!shown(&P->y, n) || n <= 0) continue;
            if (p->hist_side) a += bw * h / p->nhists, e = a + bw / p->nhists;
            double x0 = px_x(P, a), x1 = px_x(P, e), y = px_y(P, n);
            cairo_rectangle(cr, x0, y, x1 - x0, P->plot.y1 - y);
            set_colour(cr, plot_palette(h), p->hist_side ? 0.85 : 0.4);
            cairo_fill_preserve(cr);
            stroke_halo(cr, plot_palette(h), 1, 0);
        }
    for (int k = 0; k < p->nseries; k++)
        if (has_band(&p->series[k])) fill_band(cr, P, &p->series[k], series_colour(P, k), 0.22);
    for (int pass = 0; pass < 2; pass++) /* the faint references first, under the others */
        for (int k = 0; k < p->nseries; k++)
            if ((p->series[k].faint != 0) != pass) stroke_series(cr, P, &p->series[k], series_colour(P, k));
    cairo_restore(cr);
}

/* The event and reference lines; into the layout mask (mask) with coverage 1/255. */
static void draw_refs(const Panel *P, cairo_t *cr, int mask) {
    const PlotPanel *p = P->p;
    const Rect r = P->plot;
    const PlotColor faint = {0, 0, 0, 1};
    cairo_save(cr);
    clip_to(cr, r);
    for (int k = 0; p->vlines && k < p->nvlines; k++) {
        double x = px_x(P, p->vlines[k]);
        if (isfinite(x)) dashed_line(cr, x, r.y0, x, r.y1, 6, 4, mask ? faint : C_EVENT);
    }
    if (hline_shown(P))
        dashed_line(cr, r.x0, px_y(P, p->hline), r.x1, px_y(P, p->hline), 12, 6,
                    mask ? faint : C_REFLINE);
    cairo_restore(cr);
}

/* ---- legend ---- */

#define LEGEND_PAD 8
#define LEGEND_ROW 21
#define LEGEND_SWATCH 30

static void draw_swatch(Canvas *cv, const LegendEntry *e, int x, int yc) {
    cairo_t *cr = cv->cr;
    double x1 = x + LEGEND_SWATCH, xm = x + LEGEND_SWATCH / 2.0;
    if (e->band || e->kind == SW_BOX)
        fill_rect(cv, (Rect){x + 2, yc - 7, (int)x1 - 2, yc + 7}, e->col, e->band ? 0.25 : 0.7);
    switch (e->kind) {
    case PLOT_LINE:
    case PLOT_LINE_MARKERS:
        if (e->dash) {
            double d[2] = {7, 4};
            cairo_set_dash(cr, d, 2, 0);
        }
        cairo_move_to(cr, x + 2, yc);
        cairo_line_to(cr, x1 - 2, yc);
        stroke_halo(cr, e->col, LINE_WIDTH, 0);
        cairo_set_dash(cr, NULL, 0, 0);
        if (e->kind == PLOT_LINE_MARKERS)
            draw_marker(cr, e->marker, xm, yc, MARK_RADIUS, e->col, 0);
        break;
    case PLOT_DOTS:
        draw_marker(cr, e->marker, xm - 8, yc, DOT_RADIUS, e->col, 0);
        draw_marker(cr, e->marker, xm + 8, yc, DOT_RADIUS, e->col, 0);
        break;
    case SW_VLINE: dashed_line(cr, xm, yc - 8, xm, yc + 9, 6, 4, e->col); break;
    case SW_HLINE: dashed_line(cr, x, yc, x1, yc, 12, 6, e->col); break;
    case SW_CROSS: draw_cross(cr, xm, yc, 6); break;
    default: break;
    }
}

static void legend_draw(Canvas *cv, const Panel *P) {
    const Rect b = P->legend;
    if (P->nleg == 0) return;
    fill_rect(cv, b, C_WHITE, 0.92);
    frame_rect(cv, (Rect){b.x0 + 1, b.y0 + 1, b.x1 - 1, b.y1 - 1}, C_LEGEND_EDGE);
    for (int i = 0; i < P->nleg; i++) {
        int yc = b.y0 + LEGEND_PAD + i * LEGEND_ROW + LEGEND_ROW / 2 - 2;
        draw_swatch(cv, &P->leg[i], b.x0 + LEGEND_PAD, yc);
        text_draw(cv, P->leg[i].label, FONT_LEGEND, b.x0 + LEGEND_PAD + LEGEND_SWATCH + 8,
                  baseline_centred(yc, FONT_LEGEND), 0, C_INK);
    }
}

/* ---- layout ---- */

/* Vertical layout: the plot rectangle's top and bottom and the y ticks. */
static void panel_layout_v(Panel *P, Canvas *cv, Rect area) {
    P->area = area;
    P->plot.y0 = area.y0 + (P->p->title ? 40 : 16);
    P->plot.y1 = area.y1 - (P->p->xlabel ? 62 : 38);
    double h = P->plot.y1 - P->plot.y0;
    if (P->y.log)
        axis_log_ticks(&P->y, h, 24);
    else
        axis_linear_ticks(&P->y, imax(2, (int)(h / 48)));
    P->cbar = P->p->field ? colorbar_need(&P->heat, cv, (int)h, P->p->field->label) : 0;
}

/* The candidate spot that hides the fewest drawn pixels of the mask, then the fewest of
 * its reference lines (coverage 1/255); one not inside the plot counts as hiding twice
 * its area. *hidden: what the chosen one hides, so counted. */
static Rect best_spot(const Panel *P, const Canvas *occ, const Rect *cand, int n, long *hidden) {
    long best = -1;
    Rect pick = cand[0], o = P->plot;
    for (int c = 0; c < n; c++) {
        Rect r = cand[c];
        long refs, area = (long)(r.x1 - r.x0) * (r.y1 - r.y0);
        int inside = r.x0 >= o.x0 && r.y0 >= o.y0 && r.x1 <= o.x1 && r.y1 <= o.y1;
        long cost = mask_count(occ, r, &refs) + (inside ? 0 : 2 * area);
        if (best < 0 || cost * 1000 + refs < best) best = cost * 1000 + refs, pick = r;
    }
    *hidden = best / 1000;
    return pick;
}

/* Where each diverging series left the y range before going non-finite, its label, and
 * whether the start needs the zoom inset (P->zoom, up to P->zoom_x). */
static void divergence_exits(Panel *P) {
    const PlotPanel *p = P->p;
    const char *xn = p->xlabel && strlen(p->xlabel) <= 16 ? p->xlabel : "x";
    P->zoom = 0, P->zoom_x = -INFINITY;
    for (int k = 0; k < p->nseries; k++) {
        Diverge *d = &P->div[k];
        const PlotSeries *s = &p->series[k];
        if (!d->has) continue;
        d->out = 0;
        for (long i = 0; i < d->i && !d->out; i++) {
            double u = point_ok(P, s, (size_t)i) ? axis_unit(&P->y, s->y[i]) : NAN;
            if (u > P->y.hi || u < P->y.lo) d->out = u > P->y.hi ? 1 : -1, d->out_x = series_x(s, (size_t)i);
        }
        if (d->out)
            snprintf(d->text, sizeof d->text, "left the frame at %s %.6g; %s at %s %.6g", xn,
                     d->out_x, d->what, xn, d->x);
        else
            snprintf(d->text, sizeof d->text, "%s at %s %.6g", d->what, xn, d->x);
        double f = (axis_unit(&P->x, d->x) - P->x.lo) / (P->x.hi - P->x.lo);
        if (d->out && !p->xcats && !P->x.log && !p->nhists && !p->field && f <= ZOOM_FRAC)
            P->zoom = 1, P->zoom_x = fmax(P->zoom_x, d->x);
    }
}

/* Candidate spots for a w x h box inside plot r: the corners, then the middles of the top
 * and bottom, then of the sides. */
static void inside_spots(Rect r, int w, int h, Rect cand[8]) {
    static const double at[8][2] = {{1, 0},  {0, 0},  {1, 1},  {0, 1},
                                    {.5, 0}, {.5, 1}, {1, .5}, {0, .5}};
    for (int c = 0; c < 8; c++)
        cand[c] = rect_make(r.x0 + 10 + (int)(at[c][0] * (r.x1 - r.x0 - 20 - w)),
                            r.y0 + 10 + (int)(at[c][1] * (r.y1 - r.y0 - 20 - h)), w, h);
}

/* Plot rect from the margins; x ticks (category names, every k-th so they fit; decades;
 * or 1-2-5); the data drawn into the mask; each divergence label on the side of its
 * marker where it hides the least (then marker and label join the mask); the legend in
 * the inside spot that hides the least (P->hidden). */
static void panel_place(Panel *P, Canvas *cv, Canvas *occ, int left, int right) {
    const PlotPanel *p = P->p;
    Rect r = P->plot = (Rect){P->area.x0 + left, P->plot.y0, P->area.x1 - right, P->plot.y1};
    if (p->xcats) {
        double lw = 0;
        for (int i = 0; i < p->ncats; i++) lw = fmax(lw, text_width(cv, p->xcats[i], FONT_TICK));
        int k = imax(1, (int)ceil((lw + 12) * p->ncats / (r.x1 - r.x0)));
        P->x.nt = 0;
        for (int i = 0; i < p->ncats; i++)
            axis_add(&P->x, i, i % k == 0 ? 1 : -1, "%s", i % k ? "" : p->xcats[i]);
    } else if (P->x.log) {
        axis_log_ticks(&P->x, r.x1 - r.x0, 56);
    } else {
        axis_fit_ticks(&P->x, cv, r.x1 - r.x0, INT_MAX);
    }
    cairo_set_operator(occ->cr, CAIRO_OPERATOR_CLEAR);
    cairo_paint(occ->cr);
    cairo_set_operator(occ->cr, CAIRO_OPERATOR_OVER);
    draw_refs(P, occ->cr, 1);
    draw_data(occ->cr, P);
    divergence_exits(P);
    for (int k = 0; k < p->nseries; k++) {
        Diverge *d = &P->div[k];
        const PlotSeries *s = &p->series[k];
        if (!d->has) continue;
        /* the cross at the last point when it is in the frame, else on the edge it left by */
        double u = d->last >= 0 ? axis_unit(&P->y, s->y[d->last]) : NAN;
        int in = u >= P->y.lo && u <= P->y.hi;
        d->px = px_x(P, in ? series_x(s, (size_t)d->last) : d->x);
        d->py = in ? px_y(P, s->y[d->last]) : u < P->y.lo ? r.y1 - 10 : r.y0 + 10;
        if (d->out) fill_rect(occ, rect_make((int)px_x(P, d->out_x) - 8, d->out > 0 ? r.y0 : r.y1 - 16, 16, 16), C_WHITE, 1);
        int w = (int)ceil(text_width(cv, d->text, FONT_NOTE)) + 8, h = 20;
        int x = (int)d->px, y = (int)d->py;
        Rect cand[4]; /* right above, right below, left above, left below */
        for (int c = 0; c < 4; c++)
            cand[c] = rect_make(c < 2 ? x + 11 : x - 11 - w, c % 2 ? y + 11 : y - 11 - h, w, h);
        long hidden;
        d->label = best_spot(P, occ, cand, 4, &hidden);
        fill_rect(occ, rect_make(x - 9, y - 9, 18, 18), C_WHITE, 1);
        fill_rect(occ, d->label, C_WHITE, 1);
    }
    Rect cand[8];
    if (P->zoom) { /* the inset first, where it hides the least; the legend avoids it */
        int w = imin(imax(320, (int)(0.4 * (r.x1 - r.x0))), r.x1 - r.x0 - 20);
        int h = imin(imax(180, (int)(0.5 * (r.y1 - r.y0))), r.y1 - r.y0 - 20);
        long hidden;
        inside_spots(r, w, h, cand);
        P->inset = best_spot(P, occ, cand, 8, &hidden);
        fill_rect(occ, P->inset, C_WHITE, 1);
    }
    inside_spots(r, P->lw, P->lh, cand);
    P->hidden = 0;
    if (P->nleg) P->legend = best_spot(P, occ, cand, 8, &P->hidden);
}

/* Panels in cells with a left margin shared by each column; legends go inside where they
 * hide no data, otherwise every legend goes in a column right of its plot, or, when
 * that would leave the plots less than half the width, the y axis grows above the data
 * to make room for the legend at the top. */
static int figure_layout(Panel *P, int np, int ncols, Canvas *cv, int top) {
    int rows = (np + ncols - 1) / ncols, cw = cv->w / ncols, ph = (cv->h - top) / rows;
    int left[64] = {0}, right[64], wmax[64] = {0}, outside = 0, fits = 1;
    Canvas occ = {0};
    if (canvas_mask(&occ, cv->w, cv->h)) return canvas_end(&occ, -1, NULL, 0);
    for (int c = 0; c < ncols; c++) right[c] = 20;
    for (int i = 0; i < np; i++) {
        int c = i % ncols, r = i / ncols;
        double tw = 0;
        panel_layout_v(&P[i], cv, (Rect){c * cw, top + r * ph, (c + 1) * cw, top + (r + 1) * ph});
        for (int e = 0; e < P[i].nleg; e++)
            tw = fmax(tw, text_width(cv, P[i].leg[e].label, FONT_LEGEND));
        P[i].lw = P[i].nleg ? 2 * LEGEND_PAD + LEGEND_SWATCH + 8 + (int)ceil(tw) : 0;
        P[i].lh = P[i].nleg ? 2 * LEGEND_PAD + P[i].nleg * LEGEND_ROW - 4 : 0;
        left[c] = imax(left[c], 24 + (P[i].p->ylabel ? 24 : 0) +
                                    (int)ceil(axis_label_width(&P[i].y, cv, FONT_TICK)));
        right[c] = imax(right[c], P[i].cbar + 20);
        wmax[c] = imax(wmax[c], P[i].lw);
    }
    for (int i = 0; i < np; i++) {
        panel_place(&P[i], cv, &occ, left[i % ncols], right[i % ncols]);
        outside |= P[i].hidden > 0;
    }
    for (int c = 0; c < ncols; c++) fits &= cw - left[c] - wmax[c] - 36 >= cw / 2;
    for (int i = 0; outside && i < np; i++) {
        int c = i % ncols;
        if (fits) {
            panel_place(&P[i], cv, &occ, left[c], imax(right[c], P[i].cbar + wmax[c] + 28));
            P[i].legend = rect_make(P[i].plot.x1 + P[i].cbar + 16, P[i].plot.y0, P[i].lw, P[i].lh);
        } else if (P[i].hidden > 0 && !P[i].p->field) {
            Axis *y = &P[i].y;
            double frac = (double)(P[i].lh + 20) / (P[i].plot.y1 - P[i].plot.y0);
            y->hi = y->lo + (y->hi - y->lo) / (1 - fmin(frac, 0.6));
            panel_layout_v(&P[i], cv, P[i].area);
            panel_place(&P[i], cv, &occ, left[c], right[c]);
        }
    }
    return canvas_end(&occ, 0, NULL, 0);
}

/* ---- drawing ---- */

/* Grid lines across the plot at the ticks (grid) or, left of and below it, the tick marks
 * with their labels. */
static void draw_ticks(const Panel *P, Canvas *cv, int grid) {
    const Rect r = P->plot;
    for (int i = 0; i < P->y.nt; i++) {
        const Tick *t = &P->y.t[i];
        int y = (int)floor(axis_px(&P->y, t->v, r.y1, r.y0));
        if (!grid) {
            fill_rect(cv, (Rect){r.x0 - (t->major > 0 ? 7 : 4), y, r.x0 - 1, y + 1}, C_AXIS, 1);
            text_draw(cv, t->label, FONT_TICK, r.x0 - 10, baseline_centred(y + 0.5, FONT_TICK), 1,
                      C_INK);
        } else if (t->major >= 0) {
            fill_rect(cv, (Rect){r.x0, y, r.x1, y + 1}, t->major ? C_GRID : C_GRID_MINOR, 1);
        }
    }
    for (int i = 0; i < P->x.nt; i++) {
        const Tick *t = &P->x.t[i];
        int x = (int)floor(axis_px(&P->x, t->v, r.x0, r.x1));
        if (!grid)
            draw_x_tick(cv, r, x, t->label);
        else if (t->major >= 0)
            fill_rect(cv, (Rect){x, r.y0, x + 1, r.y1}, t->major ? C_GRID : C_GRID_MINOR, 1);
    }
}

/* An arrow on the frame edge at (x, y) pointing out of the plot (dir 1: up, -1: down). */
static void draw_exit(cairo_t *cr, double x, double y, int dir, PlotColor c) {
    double tip = y + (dir > 0 ? 1 : -1), base = y + (dir > 0 ? 15 : -15);
    cairo_move_to(cr, x, tip);
    cairo_line_to(cr, x + 7, base);
    cairo_line_to(cr, x - 7, base);
    cairo_close_path(cr);
    set_colour(cr, c, 1);
    cairo_fill_preserve(cr);
    stroke_halo(cr, C_WHITE, 1.5, 0);
}

/* The zoom inset: x from the data's start to past the last early divergence, y over every
 * finite value there (log when they span more than two decades), the crosses in it. */
static void inset_draw(const Panel *P, Canvas *cv) {
    const PlotPanel *p = P->p;
    Panel Z = *P;
    double xl = INFINITY, yl = INFINITY, yh = -INFINITY;
    int neg = 0;
    for (int k = 0; k < p->nseries; k++)
        for (size_t i = 0; i < p->series[k].n; i++)
            if (isfinite(series_x(&p->series[k], i))) xl = fmin(xl, series_x(&p->series[k], i));
    double xe = P->zoom_x + 0.3 * (P->zoom_x - xl);
    for (int k = 0; k < p->nseries; k++) {
        const PlotSeries *s = &p->series[k];
        for (size_t i = 0; i < s->n; i++) {
            double x = series_x(s, i), v = s->y[i];
            if (!isfinite(x) || x > xe || !isfinite(v)) continue;
            yl = fmin(yl, v), yh = fmax(yh, v), neg |= v <= 0;
        }
    }
    Z.x.log = 0;
    limits_linear(xl, xe, 0.02, &Z.x.lo, &Z.x.hi);
    Z.y.log = !neg && yl <= yh && log10(yh) - log10(yl) > 2;
    Rect o = P->inset;
    double h = (o.y1 - 30) - (o.y0 + 26);
    if (Z.y.log) {
        limits_log(yl, yh, 0.05, 1, &Z.y.lo, &Z.y.hi);
        axis_log_ticks(&Z.y, h, 20);
    } else {
        limits_linear(yl, yh, 0.05, &Z.y.lo, &Z.y.hi);
        axis_linear_ticks(&Z.y, imax(2, (int)(h / 40)));
    }
    int left = 16 + (int)ceil(axis_label_width(&Z.y, cv, FONT_TICK));
    Z.plot = (Rect){o.x0 + left, o.y0 + 26, o.x1 - 12, o.y1 - 30};
    axis_fit_ticks(&Z.x, cv, Z.plot.x1 - Z.plot.x0, 5);
    fill_rect(cv, o, C_WHITE, 1);
    frame_rect(cv, o, C_LEGEND_EDGE);
    draw_ticks(&Z, cv, 1);
    draw_refs(&Z, cv->cr, 0);
    draw_data(cv->cr, &Z);
    for (int k = 0; k < p->nseries; k++) {
        const Diverge *d = &P->div[k];
        const PlotSeries *s = &p->series[k];
        if (d->has && d->last >= 0 && series_x(s, (size_t)d->last) <= xe)
            draw_cross(cv->cr, px_x(&Z, series_x(s, (size_t)d->last)), px_y(&Z, s->y[d->last]), 5);
    }
    frame_rect(cv, Z.plot, C_AXIS);
    draw_ticks(&Z, cv, 0);
    text_draw(cv, "zoom on the start: every finite value", FONT_NOTE, (o.x0 + o.x1) / 2.0,
              o.y0 + 18, 0.5, C_INK);
}

static void panel_draw(const Panel *P, Canvas *cv) {
    const PlotField *f = P->p->field;
    const Rect r = P->plot;
    if (f)
        paint_cells(cv, &P->heat, r, f->v, f->ny, f->nx, 1);
    else
        draw_ticks(P, cv, 1);
    draw_refs(P, cv->cr, 0);
    draw_data(cv->cr, P);
    for (int k = 0; k < P->p->nseries; k++) {
        const Diverge *d = &P->div[k];
        if (!d->has) continue;
        if (d->out) draw_exit(cv->cr, px_x(P, d->out_x), d->out > 0 ? r.y0 : r.y1, d->out,
                              series_colour(P, k));
        draw_cross(cv->cr, d->px, d->py, 7);
        fill_rect(cv, d->label, C_WHITE, 0.85);
        text_draw(cv, d->text, FONT_NOTE, d->label.x0 + 4, d->label.y0 + 15, 0, C_DARK_RED);
    }
    frame_rect(cv, r, C_AXIS);
    draw_ticks(P, cv, 0);
    if (P->zoom) inset_draw(P, cv);
    text_draw(cv, P->p->title, FONT_TITLE, (r.x0 + r.x1) / 2.0, P->area.y0 + 27, 0.5, C_INK);
    text_draw(cv, P->p->xlabel, FONT_LABEL, (r.x0 + r.x1) / 2.0, r.y1 + 48, 0.5, C_INK);
    text_draw_up(cv, P->p->ylabel, FONT_LABEL, P->area.x0 + 12 + text_ascent(FONT_LABEL),
                 (r.y0 + r.y1) / 2.0, C_INK);
    if (f) colorbar_draw(cv, &P->heat, (Rect){r.x1 + 24, r.y0, r.x1 + 42, r.y1}, f->label);
    legend_draw(cv, P);
}

/* ---- entry points ---- */

int plot_figure_render(PlotImage *im, const char *title, const PlotPanel *panels, int npanels,
                       int ncols, int width, int height, char *err, size_t errlen) {
    if (!panels || npanels < 1) return set_err(err, errlen, "plot_figure: no panels to draw");
    ncols = imax(1, imin(ncols, imin(npanels, 64)));
    int rows = (npanels + ncols - 1) / ncols, top = title && *title ? 44 : 0;
    int w = width > 0 ? width : ncols == 1 ? 1000 : 560 * ncols;
    int h = height > 0 ? height : 420 * rows;
    if (w < 320 || w / ncols < 240 || (h - top) / rows < 170 || w > MAX_SIDE || h > MAX_SIDE)
        return set_err(err, errlen,
                       "plot_figure: canvas %dx%d does not fit %d panel(s) in %d column(s) (need "
                       "width 320..%d, 240 per column, and 170..%d pixels of height per row)",
                       w, h, npanels, ncols, MAX_SIDE, MAX_SIDE);
    Canvas cv = {0};
    Panel *P = calloc((size_t)npanels, sizeof *P);
    int rc = P ? canvas_begin(&cv, im, w, h, err, errlen)
               : set_err(err, errlen, "plot: out of memory");
    for (int i = 0; rc == 0 && i < npanels; i++)
        rc = panel_prepare(&P[i], &panels[i], i, err, errlen);
    if (rc == 0) {
        text_draw(&cv, title, FONT_FIGTITLE, w / 2.0, 30, 0.5, C_INK);
        if (figure_layout(P, npanels, ncols, &cv, top))
            rc = set_err(err, errlen, "plot: out of memory for the layout mask");
        for (int i = 0; rc == 0 && i < npanels; i++) panel_draw(&P[i], &cv);
    }
    rc = canvas_end(&cv, rc, err, errlen);
    for (int i = 0; P && i < npanels; i++)
        free(P[i].div), free(P[i].leg), free(P[i].hlab), free(P[i].counts);
    free(P);
    return rc;
}

int plot_figure_grid(const char *path, const char *title, const PlotPanel *panels, int npanels,
                     int ncols, int width, int height, char *err, size_t errlen) {
    PlotImage im = {0};
    int rc = plot_figure_render(&im, title, panels, npanels, ncols, width, height, err, errlen);
    return image_png_free(path, &im, rc, err, errlen);
}

int plot_figure(const char *path, const char *title, const PlotPanel *panels, int npanels,
                int width, int height, char *err, size_t errlen) {
    return plot_figure_grid(path, title, panels, npanels, 1, width, height, err, errlen);
}
