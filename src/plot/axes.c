/* axes.c: ticks, axis limits and labels; the colour scale, its bar and the heatmap cell
 * painter (when several cells share a pixel it shows the largest, or red if any is
 * non-finite, so a one-step spike stays visible).
 *
 * Ticks follow the 1-2-5 "nice numbers" rule (Heckbert, Graphics Gems 1990); a log
 * axis labels decades (every k-th when crowded) with 2..9 x 10^e minor ticks. The
 * colour scale is matplotlib's viridis (van der Walt & Smith 2015), linearly
 * interpolated between 9 of its control points. */
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "plot_internal.h"

/* ---- ticks ---- */

/* Smallest 1-2-5 step giving at most maxticks multiples in [lo, hi] (the next smaller
 * step when that leaves fewer than two); 0 for an empty or degenerate range. */
static double tick_step(double lo, double hi, int maxticks) {
    static const double mant[3] = {1, 2, 5};
    double span = hi - lo, mag = fmax(fabs(lo), fabs(hi)), prev = 0;
    if (!(span > 0) || !isfinite(span) || span < mag * 1e-12 || maxticks < 1) return 0;
    for (int e = (int)floor(log10(span / maxticks)) - 1; e < 400; e++)
        for (int i = 0; i < 3; i++) {
            double s = mant[i] * pow(10, e);
            double cnt = floor(hi / s + 1e-9) - ceil(lo / s - 1e-9) + 1;
            if (cnt <= maxticks) return (cnt < 2 && prev > 0) ? prev : s;
            prev = s;
        }
    return 0;
}

int plot_ticks(double lo, double hi, int maxticks, double *out, int cap) {
    double s = tick_step(lo, hi, maxticks);
    int n = 0;
    if (!(s > 0)) return 0;
    for (double k = ceil(lo / s - 1e-9); k <= floor(hi / s + 1e-9) && n < cap; k++)
        out[n++] = fabs(k * s) < s * 1e-9 ? 0 : k * s;
    return n;
}

/* Add a tick labelled printf-style ("%s", "": none); hyphens become minus signs (U+2212),
 * as in typeset figures. */
void axis_add(Axis *ax, double v, int major, const char *fmt, ...) {
    if (ax->nt >= MAX_TICKS) return;
    Tick *t = &ax->t[ax->nt++];
    char lab[48];
    size_t k = 0;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(lab, sizeof lab, fmt, ap);
    va_end(ap);
    t->v = v, t->major = major;
    for (const char *p = lab; *p && k + 4 < sizeof t->label; p++)
        if (*p == '-')
            memcpy(t->label + k, "\xE2\x88\x92", 3), k += 3;
        else
            t->label[k++] = *p;
    t->label[k] = 0;
}

/* 1-2-5 ticks labelled with the digits the step needs, 2.5e6 style when large or small. */
void axis_linear_ticks(Axis *ax, int maxticks) {
    double v[MAX_TICKS], step = tick_step(ax->lo, ax->hi, maxticks), mag = 0;
    int n = plot_ticks(ax->lo, ax->hi, maxticks, v, MAX_TICKS);
    int es = (int)floor(log10(step) + 1e-9);
    for (int i = 0; i < n; i++) mag = fmax(mag, fabs(v[i]));
    ax->nt = 0;
    for (int i = 0; i < n; i++) {
        int ev = v[i] == 0 ? 0 : (int)floor(log10(fabs(v[i])) + 1e-9);
        if (v[i] != 0 && (mag >= 1e6 || mag < 1e-3)) /* %g drops the mantissa's trailing 0s */
            axis_add(ax, v[i], 1, "%.*ge%d", imax(1, imin(ev - es + 1, 7)), v[i] / pow(10, ev), ev);
        else
            axis_add(ax, v[i], 1, "%.*f", v[i] == 0 || es >= 0 ? 0 : imin(-es, 12), v[i]);
    }
}

/* Decades on a log axis of pxlen pixels: every k-th decade labelled (0.1, 1, 10, 100,
 * 1000 written out, else 1e-2, 1e4) so labels are at least min_gap apart; other decades
 * and, when there is room, 2..9 x 10^e as minor ticks. An axis shorter than a decade
 * labels 1, 2 and 5 x 10^e, or else both ends. */
void axis_log_ticks(Axis *ax, double pxlen, double min_gap) {
    static const int ks[] = {1, 2, 3, 5, 10, 20, 25, 50, 100}, mant[3] = {1, 2, 5};
    double per_dec = pxlen / (ax->hi - ax->lo);
    int k = 0, e0 = (int)ceil(ax->lo - 1e-9), e1 = (int)floor(ax->hi + 1e-9);
    while (k < 8 && ks[k] * per_dec < min_gap) k++;
    ax->nt = 0;
    for (int e = e0; e <= e1; e++)
        if (e % ks[k] == 0 && e >= -1 && e <= 3)
            axis_add(ax, e, 1, "%g", pow(10, e));
        else if (e % ks[k] == 0)
            axis_add(ax, e, 1, "1e%d", e);
        else if (per_dec >= 6)
            axis_add(ax, e, 0, "%s", "");
    for (int e = (int)floor(ax->lo); per_dec >= 45 && e <= e1; e++)
        for (int m = 2; m <= 9; m++) {
            double u = e + log10(m);
            if (u >= ax->lo && u <= ax->hi) axis_add(ax, u, -1, "%s", "");
        }
    if (e1 - e0 >= 1) return;
    ax->nt = 0;
    for (int e = (int)floor(ax->lo); e <= (int)ceil(ax->hi); e++)
        for (int i = 0; i < 3; i++) {
            double u = e + log10(mant[i]);
            if (u >= ax->lo - 1e-9 && u <= ax->hi + 1e-9)
                axis_add(ax, u, 1, "%g", mant[i] * pow(10, e));
        }
    if (ax->nt >= 2) return;
    ax->nt = 0;
    axis_add(ax, ax->lo, 1, "%.3g", pow(10, ax->lo));
    axis_add(ax, ax->hi, 1, "%.3g", pow(10, ax->hi));
}

/* The most linear ticks (one per 90 px down to 2, at most `most`) whose labels fit in w. */
void axis_fit_ticks(Axis *ax, Canvas *cv, double w, int most) {
    for (int m = imax(2, imin((int)(w / 90), most)); m >= 2; m--) {
        axis_linear_ticks(ax, m);
        if (ax->nt * (axis_label_width(ax, cv, FONT_TICK) + 24) <= w) break;
    }
}

double axis_unit(const Axis *ax, double v) {
    return !isfinite(v) || (ax->log && v <= 0) ? NAN : ax->log ? log10(v) : v;
}

double axis_px(const Axis *ax, double u, double p0, double p1) {
    return p0 + clampd((u - ax->lo) / (ax->hi - ax->lo), -100, 100) * (p1 - p0);
}

double axis_label_width(const Axis *ax, Canvas *cv, double px) {
    double w = 0;
    for (int i = 0; i < ax->nt; i++) w = fmax(w, text_width(cv, ax->t[i].label, px));
    return w;
}

/* Linear limits from data [lo, hi] (none when lo > hi) padded by pad of the span; a
 * constant gets +-10% (or +-1 at zero) so the axis always has a range. */
void limits_linear(double lo, double hi, double pad, double *a, double *b) {
    if (!(lo <= hi)) {
        *a = 0, *b = 1;
        return;
    }
    lo = fmax(lo, -1e300), hi = fmin(hi, 1e300);
    double mag = fmax(fabs(lo), fabs(hi)), d = mag > 0 ? mag * 0.1 : 1;
    if (hi - lo <= mag * 1e-9) lo -= d, hi += d;
    *a = lo - pad * (hi - lo), *b = hi + pad * (hi - lo);
}

/* Log limits (in log10 units) from positive data [lo, hi], padded by pad of the span;
 * widen: to whole decades when fewer than two decade ticks would show. */
void limits_log(double lo, double hi, double pad, int widen, double *a, double *b) {
    if (!(lo <= hi) || !(lo > 0)) {
        *a = 0, *b = 1;
        return;
    }
    double l = log10(lo), h = log10(hi);
    if (h - l < 1e-9) l -= 0.5, h += 0.5;
    double span = h - l;
    l -= pad * span, h += pad * span;
    if (widen && floor(h) - ceil(l) < 1) l = floor(l), h = fmax(ceil(h), floor(l) + 1);
    *a = l, *b = h;
}

void draw_x_tick(Canvas *cv, Rect r, int x, const char *label) {
    fill_rect(cv, (Rect){x, r.y1 + 1, x + 1, r.y1 + 7}, C_AXIS, 1);
    text_draw(cv, label, FONT_TICK, x + 0.5, r.y1 + 9 + text_ascent(FONT_TICK), 0.5, C_INK);
}

/* ---- colour scale ---- */

static PlotColor viridis(double t) {
    static const unsigned char V[9][3] = {{68, 1, 84},    {71, 44, 122},  {59, 81, 139},
                                          {44, 113, 142}, {33, 145, 140}, {40, 174, 128},
                                          {94, 201, 98},  {173, 220, 48}, {253, 231, 37}};
    t = clampd(isfinite(t) ? t : 0, 0, 1) * 8;
    int i = imin((int)t, 7);
    double f = t - i;
    unsigned char c[3];
    for (int k = 0; k < 3; k++) c[k] = (unsigned char)lround(V[i][k] + f * (V[i + 1][k] - V[i][k]));
    return (PlotColor){c[0], c[1], c[2], 255};
}

int heat_scale(Heat *hs, const double *v, size_t n, int logscale) {
    double lo = INFINITY, hi = -INFINITY;
    int any = 0;
    hs->ax.log = logscale != 0;
    hs->nonfinite = hs->nonpos = 0;
    for (size_t i = 0; i < n; i++)
        if (!isfinite(v[i]))
            hs->nonfinite = 1;
        else if (logscale && v[i] <= 0)
            hs->nonpos = 1;
        else
            lo = fmin(lo, v[i]), hi = fmax(hi, v[i]), any = 1;
    if (hs->ax.log)
        limits_log(lo, hi, 0, 0, &hs->ax.lo, &hs->ax.hi);
    else
        limits_linear(lo, hi, 0, &hs->ax.lo, &hs->ax.hi);
    return any;
}

static PlotColor heat_colour(const Heat *hs, double v) {
    if (!isfinite(v)) return C_RED;
    if (hs->ax.log && v <= 0) return C_NONPOS;
    return viridis((axis_unit(&hs->ax, v) - hs->ax.lo) / (hs->ax.hi - hs->ax.lo));
}

/* Value shown for a block of cells: non-finite if any is, else the largest. */
static double heat_block(const double *values, int cols, int r0, int r1, int c0, int c1) {
    double m = -INFINITY;
    for (int r = r0; r < r1; r++)
        for (int c = c0; c < c1; c++) {
            double v = values[(size_t)r * (size_t)cols + (size_t)c];
            if (!isfinite(v)) return NAN;
            m = fmax(m, v);
        }
    return m;
}

void paint_cells(Canvas *cv, const Heat *hs, Rect p, const double *values, int rows, int cols,
                 int flip) {
    p = (Rect){imax(p.x0, 0), imax(p.y0, 0), imin(p.x1, cv->w), imin(p.y1, cv->h)};
    int pw = p.x1 - p.x0, ph = p.y1 - p.y0, stride = cairo_image_surface_get_stride(cv->s);
    if (pw <= 0 || ph <= 0) return;
    cairo_surface_flush(cv->s);
    unsigned char *data = cairo_image_surface_get_data(cv->s);
    for (int y = 0; y < ph; y++) {
        int yy = flip ? ph - 1 - y : y;
        int r0 = (int)((double)yy * rows / ph),
            r1 = imin(rows, imax(r0 + 1, (int)((double)(yy + 1) * rows / ph)));
        uint32_t *row = (uint32_t *)(data + (size_t)(p.y0 + y) * stride) + p.x0;
        for (int x = 0; x < pw; x++) {
            int c0 = (int)((double)x * cols / pw), c1 = (int)((double)(x + 1) * cols / pw);
            PlotColor c = heat_colour(hs, heat_block(values, cols, r0, r1, c0,
                                                     imin(cols, imax(c0 + 1, c1))));
            row[x] = 0xFF000000u | (uint32_t)c.r << 16 | (uint32_t)c.g << 8 | c.b;
        }
    }
    cairo_surface_mark_dirty(cv->s);
}

int colorbar_need(Heat *hs, Canvas *cv, int h, const char *label) {
    if (hs->ax.log)
        axis_log_ticks(&hs->ax, h, 22);
    else
        axis_linear_ticks(&hs->ax, imax(2, h / 40));
    return 24 + 18 + 9 + (int)ceil(axis_label_width(&hs->ax, cv, FONT_TICK)) +
           (label && *label ? 26 : 0) + 12;
}

void colorbar_draw(Canvas *cv, const Heat *hs, Rect bar, const char *label) {
    int h = bar.y1 - bar.y0;
    for (int y = bar.y0; y < bar.y1; y++)
        fill_rect(cv, (Rect){bar.x0, y, bar.x1, y + 1}, viridis((bar.y1 - y - 0.5) / h), 1);
    frame_rect(cv, bar, C_AXIS);
    for (int i = 0; i < hs->ax.nt; i++) {
        const Tick *t = &hs->ax.t[i];
        int y = (int)floor(axis_px(&hs->ax, t->v, bar.y1, bar.y0));
        fill_rect(cv, (Rect){bar.x1 + 1, y, bar.x1 + (t->major > 0 ? 6 : 3), y + 1}, C_AXIS, 1);
        text_draw(cv, t->label, FONT_TICK, bar.x1 + 9, baseline_centred(y + 0.5, FONT_TICK), 0,
                  C_INK);
    }
    int lx = bar.x1 + 9 + (int)ceil(axis_label_width(&hs->ax, cv, FONT_TICK)) + 8;
    text_draw_up(cv, label, FONT_LABEL, lx + text_ascent(FONT_LABEL), (bar.y0 + bar.y1) / 2.0,
                 C_INK);
}
