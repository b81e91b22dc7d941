/* test_axes.c: what the axes say (src/plot/axes.c) and where they say it.
 *
 * - every labelled tick's label, read back as a number, is the value at the
 *   tick's position (10^v on a log axis): a label ten times too high fails;
 * - log axes: decades are whole exponents, minor ticks sit at log10(m) of the
 *   way through their decade (m = 2..9), labelled decades are spaced so their
 *   labels fit; axes shorter than a decade label 1, 2, 5 x 10^e;
 * - linear axes: 1-2-5 steps, equally spaced, labels that print the value;
 * - in a rendered figure (pixels, not the tick table): the y tick marks of a
 *   log axis are a decade apart and the minor marks at log10(m) of a decade,
 *   the x tick marks of a linear axis equally spaced.
 * References are hand-computed lists and the definitions above. */
#include <criterion/criterion.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "plot.h"
#include "plot_internal.h"

/* A label as a number: the minus sign U+2212 back to '-'; the whole label must parse. */
static double label_value(const char *label) {
    char buf[64];
    size_t k = 0;
    for (const char *p = label; *p && k + 1 < sizeof buf; p++)
        if (!strncmp(p, "\xE2\x88\x92", 3)) buf[k++] = '-', p += 2;
        else buf[k++] = *p;
    buf[k] = '\0';
    char *end;
    double v = strtod(buf, &end);
    cr_assert(k > 0 && *end == '\0', "label \"%s\" is not a number", label);
    return v;
}

static Axis log_axis(double lo, double hi, double pxlen, double gap) {
    Axis ax = {.lo = lo, .hi = hi, .log = 1};
    axis_log_ticks(&ax, pxlen, gap);
    return ax;
}

/* Properties every log axis has, whatever its range. */
static void check_log_axis(const Axis *ax, double pxlen, double gap) {
    double last_major = -INFINITY;
    int nmajor = 0;
    for (int i = 0; i < ax->nt; i++) {
        const Tick *t = &ax->t[i];
        cr_assert(t->v >= ax->lo - 1e-9 && t->v <= ax->hi + 1e-9, "tick %g outside [%g, %g]", t->v,
                  ax->lo, ax->hi);
        if (t->major == 1) {
            double want = pow(10, t->v), got = label_value(t->label);
            cr_assert(fabs(got - want) <= 1e-9 * want, "tick at 10^%g labelled \"%s\" (%g)", t->v,
                      t->label, got);
            double px = (t->v - last_major) / (ax->hi - ax->lo) * pxlen;
            cr_assert(nmajor == 0 || px >= gap - 1e-9, "labels %g px apart, asked for %g", px, gap);
            last_major = t->v, nmajor++;
        } else if (t->major == 0) { /* an unlabelled decade */
            cr_assert(fabs(t->v - round(t->v)) < 1e-12 && t->label[0] == '\0', "minor decade %g", t->v);
        } else { /* 2..9 x 10^e */
            double e = floor(t->v + 1e-12), m = pow(10, t->v - e);
            cr_assert(fabs(m - round(m)) < 1e-9 && round(m) >= 2 && round(m) <= 9,
                      "minor tick at 10^%g is %g x 10^%g", t->v, m, e);
        }
    }
    cr_assert_geq(nmajor, 2, "%d labelled ticks on [%g, %g]", nmajor, ax->lo, ax->hi);
}

Test(axes, log_decades_labels_and_minor_ticks_by_hand) {
    /* 1e-2 .. 1e3 over 600 px: 120 px a decade, every decade labelled, and the
     * eight minor ticks of each of the five decades */
    Axis ax = log_axis(-2, 3, 600, 40);
    check_log_axis(&ax, 600, 40);
    static const char *want[] = {"1e\xE2\x88\x92" "2", "0.1", "1", "10", "100", "1000"};
    int k = 0, minor = 0;
    for (int i = 0; i < ax.nt; i++) {
        if (ax.t[i].major == 1) {
            cr_assert(k < 6 && !strcmp(ax.t[i].label, want[k]), "label %d: \"%s\"", k, ax.t[i].label);
            cr_assert(ax.t[i].v == k - 2, "label %s at 10^%g", ax.t[i].label, ax.t[i].v);
            k++;
        }
        if (ax.t[i].major == -1) {
            double u = ax.t[i].v;
            int e = (int)floor(u), m = (int)round(pow(10, u - e));
            cr_assert(fabs(u - (e + log10(m))) < 1e-12, "minor tick %g is not at %d x 10^%d", u, m, e);
            minor++;
        }
    }
    cr_assert_eq(k, 6);
    cr_assert_eq(minor, 5 * 8);
}

Test(axes, log_wide_axis_labels_every_third_decade) {
    /* 1e-8 .. 1e8 over 300 px: 18.75 px a decade; labels at least 40 px apart
     * take every third decade (56 px); no room for 2..9 x 10^e */
    Axis ax = log_axis(-8, 8, 300, 40);
    check_log_axis(&ax, 300, 40);
    static const char *want[] = {"1e\xE2\x88\x92" "6", "1e\xE2\x88\x92" "3", "1", "1000", "1e6"};
    int k = 0, decades = 0;
    for (int i = 0; i < ax.nt; i++) {
        if (ax.t[i].major == 1) {
            cr_assert(k < 5 && !strcmp(ax.t[i].label, want[k]), "label %d: \"%s\"", k, ax.t[i].label);
            k++;
        }
        cr_assert(ax.t[i].major != -1, "a 2..9 tick on a 19 px decade");
        decades += ax.t[i].major == 0;
    }
    cr_assert_eq(k, 5);
    cr_assert_eq(decades, 17 - 5);
}

Test(axes, log_axis_shorter_than_a_decade) {
    /* 2 .. 30: one decade tick (10) only, so 1-2-5 x 10^e are labelled */
    Axis ax = log_axis(log10(2), log10(30), 400, 30);
    check_log_axis(&ax, 400, 0);
    static const double want[] = {2, 5, 10, 20};
    cr_assert_eq(ax.nt, 4);
    for (int i = 0; i < 4; i++) {
        cr_assert(fabs(pow(10, ax.t[i].v) - want[i]) < 1e-9 * want[i], "tick %d at %g", i,
                  pow(10, ax.t[i].v));
        cr_assert(label_value(ax.t[i].label) == want[i], "tick %d labelled %s", i, ax.t[i].label);
    }
    /* 3 .. 4.5: not even a 1-2-5 value inside: both ends, labelled with their values */
    Axis b = log_axis(log10(3), log10(4.5), 400, 30);
    cr_assert_eq(b.nt, 2);
    cr_assert(fabs(label_value(b.t[0].label) - 3) < 1e-9 && fabs(label_value(b.t[1].label) - 4.5) < 1e-9,
              "%s %s", b.t[0].label, b.t[1].label);
}

/* Linear axes: labels print the value, steps are 1-2-5 x 10^e, equally spaced. */
static void check_linear(double lo, double hi, int maxticks, int want_n, double want_step) {
    Axis ax = {.lo = lo, .hi = hi};
    axis_linear_ticks(&ax, maxticks);
    cr_assert_eq(ax.nt, want_n, "[%g, %g] max %d: %d ticks", lo, hi, maxticks, ax.nt);
    for (int i = 0; i < ax.nt; i++) {
        const Tick *t = &ax.t[i];
        cr_assert(t->major == 1);
        cr_assert(fabs(label_value(t->label) - t->v) <= 1e-9 * want_step, "tick at %.17g labelled %s",
                  t->v, t->label);
        cr_assert(fabs(t->v / want_step - round(t->v / want_step)) < 1e-9, "tick %g not a multiple of %g",
                  t->v, want_step);
        if (i) cr_assert(fabs(t->v - ax.t[i - 1].v - want_step) < 1e-9 * want_step, "uneven ticks");
        cr_assert(t->v >= lo - 1e-9 * want_step && t->v <= hi + 1e-9 * want_step);
    }
}

Test(axes, linear_ticks_by_hand) {
    check_linear(0, 1, 6, 6, 0.2);           /* 0 0.2 ... 1 */
    check_linear(-1.5, 0.5, 5, 5, 0.5);      /* -1.5 ... 0.5, minus signs */
    check_linear(0, 3e6, 4, 4, 1e6);         /* 0 1e6 2e6 3e6 */
    check_linear(0.0012, 0.0019, 8, 8, 1e-4); /* 1.2e-3 ... 1.9e-3 */
    check_linear(17, 983, 5, 4, 200);        /* 200 400 600 800 */
    Axis ax = {.lo = -1.5, .hi = 0.5};
    axis_linear_ticks(&ax, 5);
    cr_assert_str_eq(ax.t[0].label, "\xE2\x88\x92" "1.5");
    cr_assert_str_eq(ax.t[3].label, "0");
    Axis big = {.lo = 0, .hi = 3e6};
    axis_linear_ticks(&big, 4);
    cr_assert_str_eq(big.t[2].label, "2e6");
}

Test(axes, positions_in_pixels) {
    Axis ax = {.lo = -2, .hi = 3, .log = 1};
    cr_assert(axis_unit(&ax, 10) == 1 && isnan(axis_unit(&ax, 0)) && isnan(axis_unit(&ax, -1)));
    cr_assert(fabs(axis_px(&ax, axis_unit(&ax, 10), 100, 700) - 460) < 1e-9);
    cr_assert(fabs(axis_px(&ax, axis_unit(&ax, 0.01), 100, 700) - 100) < 1e-9);
    cr_assert(fabs(axis_px(&ax, axis_unit(&ax, 1000), 700, 100) - 100) < 1e-9); /* y grows down */
    Axis lin = {.lo = 0, .hi = 4};
    cr_assert(fabs(axis_px(&lin, axis_unit(&lin, 1), 0, 400) - 100) < 1e-9);
}

/* ---- in a rendered figure ---- */

static int is_axis(const unsigned char *p) { return p[0] == 80 && p[1] == 80 && p[2] == 80; }

/* A figure whose y axis is log over 1e-2 .. 1e3 and whose x axis is linear; the
 * plot frame's left column and bottom row are found in the pixels, then the tick
 * marks left of and below the frame. */
Test(axes, rendered_tick_marks_sit_where_the_axis_says) {
    double x[51], y[51];
    for (int i = 0; i <= 50; i++) x[i] = i * 0.2, y[i] = pow(10, -2 + 5.0 * i / 50);
    PlotSeries s = {.label = "10^(x/2 - 2)", .x = x, .y = y, .n = 51};
    PlotPanel p = {.title = "ticks", .xlabel = "x", .ylabel = "y", .logy = PLOT_LOGY_ON,
                   .series = &s, .nseries = 1, .hline = NAN};
    PlotImage im = {0};
    char err[256];
    cr_assert_eq(plot_figure_render(&im, "axes", &p, 1, 1, 900, 700, err, sizeof err), 0, "%s", err);
    unsigned char *rgb = malloc((size_t)im.w * im.h * 3);
    plot_image_rgb(&im, rgb);
#define PX(cx, cy) (rgb + ((size_t)(cy) * im.w + (cx)) * 3)
    /* the frame's left edge: the leftmost column that is axis-grey over most of the height */
    int fx = -1, fy = -1;
    for (int cx = 0; cx < im.w / 2 && fx < 0; cx++) {
        int run = 0;
        for (int cy = 0; cy < im.h; cy++) run += is_axis(PX(cx, cy));
        if (run > im.h / 2) fx = cx;
    }
    for (int cy = im.h - 1; cy > im.h / 2 && fy < 0; cy--) {
        int run = 0;
        for (int cx = 0; cx < im.w; cx++) run += is_axis(PX(cx, cy));
        if (run > im.w / 2) fy = cy;
    }
    cr_assert(fx > 10 && fy > 0, "no plot frame found (%d, %d)", fx, fy);
    /* y: major marks reach 7 px left of the frame, minor ones 4 */
    int major[32], nmaj = 0, minor[128], nmin = 0;
    for (int cy = 0; cy < fy; cy++) {
        if (is_axis(PX(fx - 6, cy)) && nmaj < 32) major[nmaj++] = cy;
        else if (is_axis(PX(fx - 3, cy)) && nmin < 128) minor[nmin++] = cy;
    }
    cr_assert_geq(nmaj, 4, "%d decade marks", nmaj);
    double dec = (double)(major[nmaj - 1] - major[0]) / (nmaj - 1);
    for (int i = 1; i < nmaj; i++)
        cr_assert(fabs(major[i] - major[i - 1] - dec) <= 1.01, "decade marks at rows %d, %d: %g px a decade",
                  major[i - 1], major[i], dec);
    /* each minor mark between two decade marks is at log10(m) of the decade, m = 2..9 */
    int inside = 0;
    for (int i = 0; i < nmin; i++) {
        int k = 0;
        while (k + 1 < nmaj && major[k + 1] < minor[i]) k++;
        if (k + 1 >= nmaj || minor[i] < major[0]) continue;
        double frac = (major[k + 1] - minor[i]) / dec; /* up the image = up the axis */
        double m = pow(10, frac);
        cr_assert(fabs(frac - log10(round(m))) * dec <= 1.01 && round(m) >= 2 && round(m) <= 9,
                  "minor mark at row %d is %.3f of a decade up (10^ that = %.3f)", minor[i], frac, m);
        inside++;
    }
    cr_assert_eq(inside, 8 * (nmaj - 1), "%d minor marks between %d decade marks", inside, nmaj);
    /* x: the linear tick marks below the frame, equally spaced */
    int xt[64], nx = 0;
    for (int cx = fx; cx < im.w && nx < 64; cx++)
        if (is_axis(PX(cx, fy + 4)) && (nx == 0 || cx > xt[nx - 1] + 1)) xt[nx++] = cx;
    cr_assert_geq(nx, 3, "%d x tick marks", nx);
    double step = (double)(xt[nx - 1] - xt[0]) / (nx - 1);
    for (int i = 1; i < nx; i++)
        cr_assert(fabs(xt[i] - xt[i - 1] - step) <= 1.01, "x marks at %d, %d (%g apart)", xt[i - 1], xt[i], step);
#undef PX
    free(rgb);
    plot_image_free(&im);
}
