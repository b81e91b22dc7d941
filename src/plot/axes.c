/* axes.c: ticks, axis limits and labels, legends and the colour scale with its bar.
 *
 * Ticks follow the 1-2-5 "nice numbers" rule (Heckbert, Graphics Gems 1990); a log
 * axis labels decades (every k-th when crowded) with 2..9 x 10^e minor ticks. The
 * colour scale is matplotlib's viridis (van der Walt & Smith 2015), linearly
 * interpolated between 9 of its control points. Leaves to others: where an axis
 * goes (the figure kinds) and how pixels are drawn (surface.c). */
#include <math.h>
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

static int ticks_from_step(double lo, double hi, double s, double *out, int cap) {
    if (!(s > 0)) return 0;
    double k0 = ceil(lo / s - 1e-9), cnt = floor(hi / s + 1e-9) - k0 + 1;
    int n = 0;
    for (int i = 0; i < cnt && n < cap; i++) {
        double v = (k0 + i) * s;
        out[n++] = fabs(v) < s * 1e-9 ? 0 : v;
    }
    return n;
}

int plot_ticks(double lo, double hi, int maxticks, double *out, int cap) {
    return ticks_from_step(lo, hi, tick_step(lo, hi, maxticks), out, cap);
}

/* v as a tick label with as many digits as the step needs; sci: 2.5e6 style. */
static void fmt_tick(char *buf, size_t n, double v, double step, int sci) {
    int es = (int)floor(log10(step) + 1e-9);
    if (v == 0) {
        snprintf(buf, n, "0");
    } else if (!sci) {
        snprintf(buf, n, "%.*f", es < 0 ? imin(-es, 12) : 0, v);
    } else {
        int ev = (int)floor(log10(fabs(v)) + 1e-9);
        char m[32];
        snprintf(m, sizeof m, "%.*f", imax(0, imin(ev - es, 6)), v / pow(10, ev));
        if (strchr(m, '.')) { /* 1.0e300 -> 1e300, 2.50e6 -> 2.5e6 */
            size_t k = strlen(m);
            while (m[k - 1] == '0') m[--k] = 0;
            if (m[k - 1] == '.') m[--k] = 0;
        }
        snprintf(buf, n, "%se%d", m, ev);
    }
}

/* Add a tick; hyphens in its label become minus signs (U+2212), as in typeset figures. */
void axis_add(Axis *ax, double v, int major, const char *label) {
    if (ax->nt >= MAX_TICKS) return;
    Tick *t = &ax->t[ax->nt++];
    size_t k = 0;
    t->v = v;
    t->major = major;
    for (const char *p = label ? label : ""; *p && k + 4 < sizeof t->label; p++) {
        if (*p == '-')
            memcpy(t->label + k, "\xE2\x88\x92", 3), k += 3;
        else
            t->label[k++] = *p;
    }
    t->label[k] = 0;
}

void axis_linear_ticks(Axis *ax, int maxticks) {
    double v[MAX_TICKS], step = tick_step(ax->lo, ax->hi, maxticks), mag = 0;
    int n = ticks_from_step(ax->lo, ax->hi, step, v, MAX_TICKS);
    for (int i = 0; i < n; i++) mag = fmax(mag, fabs(v[i]));
    int sci = mag >= 1e6 || (mag > 0 && mag < 1e-3);
    ax->nt = 0;
    for (int i = 0; i < n; i++) {
        char lab[48];
        fmt_tick(lab, sizeof lab, v[i], step, sci);
        axis_add(ax, v[i], 1, lab);
    }
}

/* A log axis shorter than a decade: label 1, 2 and 5 x 10^e, or else both ends. */
static void axis_log_short(Axis *ax) {
    static const int mant[3] = {1, 2, 5};
    ax->nt = 0;
    for (int e = (int)floor(ax->lo); e <= (int)ceil(ax->hi); e++)
        for (int i = 0; i < 3; i++) {
            double u = e + log10(mant[i]);
            char lab[48];
            snprintf(lab, sizeof lab, "%g", mant[i] * pow(10, e));
            if (u >= ax->lo - 1e-9 && u <= ax->hi + 1e-9) axis_add(ax, u, 1, lab);
        }
    if (ax->nt >= 2) return;
    ax->nt = 0;
    for (int i = 0; i < 2; i++) {
        char lab[48];
        double u = i ? ax->hi : ax->lo;
        snprintf(lab, sizeof lab, "%.3g", pow(10, u));
        axis_add(ax, u, 1, lab);
    }
}

/* Decades on a log axis of pxlen pixels: every k-th decade labelled (0.1, 1, 10, 100,
 * 1000 written out, else 1e-2, 1e4) so labels are at least min_gap apart; other decades
 * and, when there is room, 2..9 x 10^e as minor ticks. */
void axis_log_ticks(Axis *ax, double pxlen, double min_gap) {
    static const int ks[] = {1, 2, 3, 5, 10, 20, 25, 50, 100};
    static const char *plain[] = {"0.1", "1", "10", "100", "1000"};
    double per_dec = pxlen / (ax->hi - ax->lo);
    int k = 100, e0 = (int)ceil(ax->lo - 1e-9), e1 = (int)floor(ax->hi + 1e-9);
    for (int i = 0; i < (int)(sizeof ks / sizeof ks[0]); i++)
        if (ks[i] * per_dec >= min_gap) {
            k = ks[i];
            break;
        }
    ax->nt = 0;
    for (int e = e0; e <= e1; e++) {
        char lab[48];
        if (e >= -1 && e <= 3)
            snprintf(lab, sizeof lab, "%s", plain[e + 1]);
        else
            snprintf(lab, sizeof lab, "1e%d", e);
        if (e % k == 0)
            axis_add(ax, e, 1, lab);
        else if (per_dec >= 6)
            axis_add(ax, e, 0, NULL);
    }
    if (per_dec >= 45)
        for (int e = (int)floor(ax->lo); e <= e1; e++)
            for (int m = 2; m <= 9; m++) {
                double u = e + log10(m);
                if (u >= ax->lo && u <= ax->hi) axis_add(ax, u, -1, NULL);
            }
    if (e1 - e0 < 1) axis_log_short(ax);
}

void axis_fit_ticks(Axis *ax, Canvas *cv, double w, int most) {
    for (int m = imax(2, imin((int)(w / 90), most)); m >= 2; m--) {
        axis_linear_ticks(ax, m);
        if (ax->nt * (axis_label_width(ax, cv, FONT_TICK) + 24) <= w) break;
    }
}

double axis_frac(const Axis *ax, double v) {
    if (!isfinite(v) || (ax->log && v <= 0)) return NAN;
    double u = ax->log ? log10(v) : v;
    return (u - ax->lo) / (ax->hi - ax->lo);
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
    double mag = fmax(fabs(lo), fabs(hi));
    if (hi - lo <= mag * 1e-9) {
        double d = mag > 0 ? mag * 0.1 : 1;
        lo -= d, hi += d;
    }
    double span = hi - lo;
    *a = lo - pad * span, *b = hi + pad * span;
}

/* Log limits (in log10 units) from positive data [lo, hi], padded 5%, widened to whole
 * decades when fewer than two decade ticks would show. */
void limits_log(double lo, double hi, double *a, double *b) {
    if (!(lo <= hi) || !(lo > 0)) {
        *a = 0, *b = 1;
        return;
    }
    double l = log10(lo), h = log10(hi);
    if (h - l < 1e-9) l -= 0.5, h += 0.5;
    double span = h - l;
    l -= 0.05 * span, h += 0.05 * span;
    if (floor(h) - ceil(l) < 1) {
        l = floor(l), h = ceil(h);
        if (h - l < 1) h = l + 1;
    }
    *a = l, *b = h;
}

void draw_x_tick(Canvas *cv, Rect r, int x, const char *label) {
    pixel_vline(cv, x, r.y1 + 1, r.y1 + 7, C_AXIS);
    text_draw(cv, label, FONT_TICK, x + 0.5, r.y1 + 9 + text_ascent(FONT_TICK), 0.5, C_INK);
}

/* ---- legends ---- */

#define LEGEND_PAD 8
#define LEGEND_ROW 21
#define LEGEND_SWATCH 30

void legend_size(Canvas *cv, const LegendEntry *e, int n, int *w, int *h) {
    double tw = 0;
    for (int i = 0; i < n; i++) tw = fmax(tw, text_width(cv, e[i].label, FONT_LEGEND));
    *w = n ? 2 * LEGEND_PAD + LEGEND_SWATCH + 8 + (int)ceil(tw) : 0;
    *h = n ? 2 * LEGEND_PAD + n * LEGEND_ROW - 4 : 0;
}

static void draw_swatch(Canvas *cv, const LegendEntry *e, int x, int yc) {
    cairo_t *cr = cv->cr;
    double x1 = x + LEGEND_SWATCH, xm = x + LEGEND_SWATCH / 2.0;
    if (e->band || e->kind == SW_BOX)
        fill_rect(cv, (Rect){x + 2, yc - 7, (int)x1 - 2, yc + 7}, e->col, e->band ? 0.25 : 0.7);
    cairo_set_line_width(cr, LINE_WIDTH);
    set_colour(cr, e->col, 1);
    switch (e->kind) {
    case SW_LINE:
    case SW_LINE_MARK:
        cairo_move_to(cr, x + 2, yc);
        cairo_line_to(cr, x1 - 2, yc);
        cairo_stroke(cr);
        if (e->kind == SW_LINE_MARK) draw_marker(cr, e->marker, xm, yc, MARK_RADIUS, e->col, 0);
        break;
    case SW_DOTS:
        draw_marker(cr, e->marker, xm - 8, yc, DOT_RADIUS, e->col, 0);
        draw_marker(cr, e->marker, xm + 8, yc, DOT_RADIUS, e->col, 0);
        break;
    case SW_VLINE: dashed_line(cr, xm, yc - 8, xm, yc + 9, 6, 4, e->col); break;
    case SW_HLINE: dashed_line(cr, x, yc, x1, yc, 12, 6, e->col); break;
    case SW_CROSS: draw_cross(cr, xm, yc, 6); break;
    default: break;
    }
}

void legend_draw(Canvas *cv, Rect b, const LegendEntry *e, int n) {
    if (n == 0) return;
    fill_rect(cv, b, C_WHITE, 0.92);
    frame_rect(cv, (Rect){b.x0 + 1, b.y0 + 1, b.x1 - 1, b.y1 - 1}, C_LEGEND_EDGE);
    for (int i = 0; i < n; i++) {
        int yc = b.y0 + LEGEND_PAD + i * LEGEND_ROW + LEGEND_ROW / 2 - 2;
        draw_swatch(cv, &e[i], b.x0 + LEGEND_PAD, yc);
        text_draw(cv, e[i].label, FONT_LEGEND, b.x0 + LEGEND_PAD + LEGEND_SWATCH + 8,
                  baseline_centred(yc, FONT_LEGEND), 0, C_INK);
    }
}

/* ---- colour scale ---- */

PlotColor viridis(double t) {
    static const unsigned char V[9][3] = {{68, 1, 84},    {71, 44, 122},  {59, 81, 139},
                                          {44, 113, 142}, {33, 145, 140}, {40, 174, 128},
                                          {94, 201, 98},  {173, 220, 48}, {253, 231, 37}};
    t = clampd(isfinite(t) ? t : 0, 0, 1) * 8;
    int i = imin((int)t, 7);
    double f = t - i;
    PlotColor c = {0, 0, 0, 255};
    c.r = (unsigned char)lround(V[i][0] + f * (V[i + 1][0] - V[i][0]));
    c.g = (unsigned char)lround(V[i][1] + f * (V[i + 1][1] - V[i][1]));
    c.b = (unsigned char)lround(V[i][2] + f * (V[i + 1][2] - V[i][2]));
    return c;
}

void heat_scale(Heat *hs, const double *v, size_t n, int logscale) {
    double lo = INFINITY, hi = -INFINITY;
    hs->ax.log = logscale != 0;
    hs->nonfinite = hs->nonpos = 0;
    for (size_t i = 0; i < n; i++) {
        if (!isfinite(v[i]))
            hs->nonfinite = 1;
        else if (logscale && v[i] <= 0)
            hs->nonpos = 1;
        else
            lo = fmin(lo, v[i]), hi = fmax(hi, v[i]);
    }
    if (!hs->ax.log) {
        limits_linear(lo, hi, 0, &hs->ax.lo, &hs->ax.hi);
    } else if (lo <= hi) {
        hs->ax.lo = log10(lo), hs->ax.hi = log10(hi);
        if (hs->ax.hi - hs->ax.lo < 1e-9) hs->ax.lo -= 0.5, hs->ax.hi += 0.5;
    } else {
        hs->ax.lo = 0, hs->ax.hi = 1;
    }
}

PlotColor heat_colour(const Heat *hs, double v) {
    if (!isfinite(v)) return C_RED;
    if (hs->ax.log && v <= 0) return C_NONPOS;
    return viridis(axis_frac(&hs->ax, v));
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
        int y = (int)floor(bar.y1 - (t->v - hs->ax.lo) / (hs->ax.hi - hs->ax.lo) * h);
        pixel_hline(cv, bar.x1 + 1, bar.x1 + (t->major > 0 ? 6 : 3), y, C_AXIS);
        text_draw(cv, t->label, FONT_TICK, bar.x1 + 9, baseline_centred(y + 0.5, FONT_TICK), 0,
                  C_INK);
    }
    int lx = bar.x1 + 9 + (int)ceil(axis_label_width(&hs->ax, cv, FONT_TICK)) + 8;
    text_draw_up(cv, label, FONT_LABEL, lx + text_ascent(FONT_LABEL), (bar.y0 + bar.y1) / 2.0,
                 C_INK);
}
