/* test_plot_kinds.c: the figure kinds beyond plain line panels, rendered into memory
 * (plot_figure_render, plot_filmstrip_render) and checked pixel by pixel: a band under
 * its line, markers told apart by shape, a field heatmap's colours and colour bar with
 * scatter sets on it, histograms overlaid / side by side / log-y, log and categorical
 * x axes, polylines on a heatmap, a grid of panels, a filmstrip drawn through PlotDraw.
 * With CLIPLAB_PLOT_SAMPLES=DIR a sample of each kind is written there to look at. */
#include <criterion/criterion.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "plot.h"

typedef struct Img {
    unsigned char *px; /* RGB */
    int w, h;
} Img;

static Img to_rgb(const PlotImage *im) {
    Img r = {malloc((size_t)im->w * im->h * 3), im->w, im->h};
    cr_assert(r.px);
    plot_image_rgb(im, r.px);
    return r;
}

static Img render(const PlotPanel *p, int np, int ncols, int w, int h) {
    PlotImage im = {0};
    char err[256] = "";
    cr_assert_eq(plot_figure_render(&im, NULL, p, np, ncols, w, h, err, sizeof err), 0, "%s", err);
    Img r = to_rgb(&im);
    plot_image_free(&im);
    return r;
}

static const unsigned char *at(const Img *im, int x, int y) {
    return im->px + ((size_t)y * (size_t)im->w + (size_t)x) * 3;
}

/* c blended over white with opacity a, as cairo rounds it (within tol). */
static int near(const unsigned char *p, PlotColor c, double a, int tol) {
    const unsigned char cc[3] = {c.r, c.g, c.b};
    for (int k = 0; k < 3; k++)
        if (abs(p[k] - (int)lround(255 + (cc[k] - 255) * a)) > tol) return 0;
    return 1;
}

typedef struct Stats {
    long n;
    double mx, my;      /* mean position */
    int x0, y0, x1, y1; /* bounding box */
} Stats;

static Stats find(const Img *im, PlotColor c, double a, int tol, int x0, int y0, int x1, int y1) {
    Stats s = {0, 0, 0, x1, y1, -1, -1};
    for (int y = y0; y < y1; y++)
        for (int x = x0; x < x1; x++)
            if (near(at(im, x, y), c, a, tol)) {
                s.n++, s.mx += x, s.my += y;
                if (x < s.x0) s.x0 = x;
                if (y < s.y0) s.y0 = y;
                if (x > s.x1) s.x1 = x;
                if (y > s.y1) s.y1 = y;
            }
    if (s.n) s.mx /= s.n, s.my /= s.n;
    return s;
}

static Stats find_all(const Img *im, PlotColor c, double a, int tol) {
    return find(im, c, a, tol, 0, 0, im->w, im->h);
}

/* Coverage of pixel p by colour c drawn over white (0..1), or -1 when p is not such a
 * blend (another colour, or c over something else). */
static double coverage(const unsigned char *p, PlotColor c) {
    const int cc[3] = {c.r, c.g, c.b};
    int k = 0;
    for (int j = 1; j < 3; j++)
        if (abs(255 - cc[j]) > abs(255 - cc[k])) k = j;
    double a = (255.0 - p[k]) / (255 - cc[k]);
    for (int j = 0; j < 3; j++)
        if (fabs(255 + (cc[j] - 255) * a - p[j]) > 6) return -1;
    return a;
}

/* Connected blobs (4-neighbour) of pixels covered at least half by colour c: the
 * shapes as drawn, to a pixel. */
typedef struct Blob {
    int n, x0, y0, x1, y1;
    double cx, cy;
} Blob;

static int in_blob(const Img *im, int p, PlotColor c) {
    return coverage(im->px + 3 * (size_t)p, c) >= 0.5;
}

static int blobs(const Img *im, PlotColor c, Blob *out, int cap) {
    int W = im->w, H = im->h, nb = 0;
    unsigned char *seen = calloc((size_t)W * H, 1);
    int *stack = malloc((size_t)W * H * sizeof *stack);
    for (int s = 0; s < W * H; s++) {
        if (seen[s] || !in_blob(im, s, c)) continue;
        Blob b = {0, W, H, -1, -1, 0, 0};
        int top = 0;
        stack[top++] = s, seen[s] = 1;
        while (top) {
            int p = stack[--top], x = p % W, y = p / W;
            b.n++, b.cx += x, b.cy += y;
            b.x0 = x < b.x0 ? x : b.x0, b.x1 = x > b.x1 ? x : b.x1;
            b.y0 = y < b.y0 ? y : b.y0, b.y1 = y > b.y1 ? y : b.y1;
            const int nbr[4] = {x > 0 ? p - 1 : -1, x + 1 < W ? p + 1 : -1, y > 0 ? p - W : -1,
                                y + 1 < H ? p + W : -1};
            for (int k = 0; k < 4; k++)
                if (nbr[k] >= 0 && !seen[nbr[k]] && in_blob(im, nbr[k], c))
                    seen[nbr[k]] = 1, stack[top++] = nbr[k];
        }
        b.cx /= b.n, b.cy /= b.n;
        if (nb < cap) out[nb++] = b;
    }
    free(seen), free(stack);
    return nb;
}

/* The plot rectangle: the axis frame's rows and columns (grey 80, 1 px just outside). */
typedef struct Frame {
    int x0, y0, x1, y1; /* inside the frame */
} Frame;

static Frame plot_frame(const Img *im) {
    int *col = calloc((size_t)im->w, sizeof *col), *row = calloc((size_t)im->h, sizeof *row);
    const PlotColor axis = {80, 80, 80, 255};
    int cmax = 0, rmax = 0;
    for (int y = 0; y < im->h; y++)
        for (int x = 0; x < im->w; x++)
            if (near(at(im, x, y), axis, 1, 0)) col[x]++, row[y]++;
    for (int x = 0; x < im->w; x++) cmax = col[x] > cmax ? col[x] : cmax;
    for (int y = 0; y < im->h; y++) rmax = row[y] > rmax ? row[y] : rmax;
    Frame f = {im->w, im->h, -1, -1};
    for (int x = 0; x < im->w; x++)
        if (col[x] > cmax * 0.8) f.x0 = x < f.x0 ? x : f.x0, f.x1 = x;
    for (int y = 0; y < im->h; y++)
        if (row[y] > rmax * 0.8) f.y0 = y < f.y0 ? y : f.y0, f.y1 = y;
    f.x0++, f.y0++;
    free(col), free(row);
    return f;
}

static void sample(const char *name, const char *title, const PlotPanel *p, int np, int ncols,
                   int w, int h) {
    const char *d = getenv("CLIPLAB_PLOT_SAMPLES");
    if (!d || !*d) return;
    char path[512], err[256] = "";
    mkdir(d, 0755);
    snprintf(path, sizeof path, "%s/%s", d, name);
    cr_assert_eq(plot_figure_grid(path, title, p, np, ncols, w, h, err, sizeof err), 0, "%s", err);
}

/* ---- bands ---- */

Test(plot_kinds, band_is_under_its_line) {
    enum { N = 200 };
    static double x[N], y[N], lo[N], hi[N], y2[N], lo2[N], hi2[N];
    for (int i = 0; i < N; i++) {
        x[i] = i, y[i] = sin(i / 30.0), lo[i] = y[i] - 0.4, hi[i] = y[i] + 0.3 + 0.1 * (i % 7);
        y2[i] = -2, lo2[i] = -2.2, hi2[i] = i < N / 2 ? 2 : -1.8;
    }
    /* the second series' band covers the first line's left half: every band is drawn
     * before any line, so that half keeps the line's own colour */
    PlotSeries s[2] = {{.label = "median of 5 seeds", .x = x, .y = y, .n = N, .lo = lo, .hi = hi},
                       {.label = "another", .x = x, .y = y2, .n = N, .lo = lo2, .hi = hi2}};
    PlotPanel p = {.title = "band", .series = s, .nseries = 2};
    Img im = render(&p, 1, 1, 800, 400);
    PlotColor c = plot_palette(0);
    Stats line = find_all(&im, c, 1, 0), band = find_all(&im, c, 0.22, 2);
    Stats left = find(&im, c, 1, 0, 0, 0, (int)line.mx - 100, im.h);
    cr_expect(line.n > 600, "pixels of the line's own colour: %ld (hidden under the band?)",
              line.n);
    cr_expect(left.n > 200, "line pixels under the other band: %ld", left.n);
    cr_expect(band.n > 20000, "pixels of the band's tint: %ld", band.n);
    /* in every sampled column the line lies inside its band: tint above and below it */
    int checked = 0;
    for (int xc = (line.x0 + line.x1) / 2 + 20; xc < line.x1 - 20; xc += 20) { /* right half */
        int ly = -1, above = 0, below = 0;
        for (int yy = 0; yy < im.h; yy++)
            if (near(at(&im, xc, yy), c, 1, 0)) ly = yy;
        if (ly < 0) continue;
        for (int yy = 0; yy < im.h; yy++)
            if (near(at(&im, xc, yy), c, 0.22, 2)) *(yy < ly ? &above : &below) += 1;
        cr_expect(above > 5 && below > 5, "column %d: band %d px above, %d below", xc, above,
                  below);
        checked++;
    }
    cr_expect(checked >= 10);
    free(im.px);
    p.nseries = 1;
    sample("band.png", "A median with its min-max band", &p, 1, 1, 800, 400);
}

Test(plot_kinds, band_needs_both_ends) {
    double x[2] = {0, 1}, y[2] = {1, 2};
    PlotSeries s = {.label = "half a band", .x = x, .y = y, .n = 2, .lo = y};
    PlotPanel p = {.series = &s, .nseries = 1};
    PlotImage im = {0};
    char err[256] = "";
    cr_expect_eq(plot_figure_render(&im, NULL, &p, 1, 1, 0, 0, err, sizeof err), -1);
    cr_expect(strstr(err, "lo without hi") != NULL, "%s", err);
    plot_image_free(&im);
}

/* ---- markers ---- */

Test(plot_kinds, markers_differ_in_shape) {
    /* four sets, one marker each, three points each; blobs of each set's colour are
     * its markers (in the plot and in the legend: same shape) */
    const int marks[4] = {PLOT_MARK_CIRCLE, PLOT_MARK_SQUARE, PLOT_MARK_TRIANGLE,
                          PLOT_MARK_DIAMOND};
    static double x[4][3], y[4][3];
    PlotSeries s[4];
    for (int k = 0; k < 4; k++) {
        for (int i = 0; i < 3; i++) x[k][i] = i, y[k][i] = k;
        s[k] = (PlotSeries){
            .label = "set", .x = x[k], .y = y[k], .n = 3, .style = PLOT_DOTS, .marker = marks[k]};
    }
    PlotPanel p = {.series = s, .nseries = 4};
    Img im = render(&p, 1, 1, 700, 400);
    double fill[4], aspect[4];
    for (int k = 0; k < 4; k++) {
        Blob b[16];
        int nb = blobs(&im, plot_palette(k), b, 16), used = 0;
        fill[k] = aspect[k] = 0;
        for (int i = 0; i < nb; i++) {
            if (b[i].n < 6) continue; /* a stray fully covered pixel */
            double bw = b[i].x1 - b[i].x0 + 1, bh = b[i].y1 - b[i].y0 + 1;
            fill[k] += b[i].n / (bw * bh), aspect[k] += bh / bw, used++;
        }
        cr_assert(used >= 5, "set %d: %d markers found (3 points + 2 legend dots)", k, used);
        fill[k] /= used, aspect[k] /= used;
    }
    cr_expect(fill[1] > 0.95, "square fills its box: %.2f", fill[1]);
    cr_expect(fill[0] > 0.6 && fill[0] < fill[1] - 0.1, "circle %.2f vs square", fill[0]);
    cr_expect(fill[2] < fill[0] - 0.1 && fill[3] < fill[0] - 0.1, "triangle %.2f, diamond %.2f",
              fill[2], fill[3]);
    cr_expect(aspect[3] > aspect[2] + 0.15, "diamond taller than the triangle: %.2f vs %.2f",
              aspect[3], aspect[2]);
    free(im.px);
}

/* An x marker is two diagonals: its middle row is narrow, its top and bottom rows reach
 * both sides (a horizontal stroke would fill the middle row edge to edge). */
Test(plot_kinds, cross_marker_is_an_x) {
    double x[1] = {0}, y[1] = {0};
    PlotSeries s = {.label = "x", .x = x, .y = y, .n = 1, .style = PLOT_DOTS,
                    .marker = PLOT_MARK_CROSS};
    PlotPanel p = {.series = &s, .nseries = 1};
    Img im = render(&p, 1, 1, 700, 400);
    Blob b[8];
    int nb = blobs(&im, plot_palette(0), b, 8), checked = 0;
    for (int i = 0; i < nb; i++) {
        if (b[i].n < 6) continue;
        int w = b[i].x1 - b[i].x0 + 1, h = b[i].y1 - b[i].y0 + 1, mid = 0, top = 0;
        for (int xx = b[i].x0; xx <= b[i].x1; xx++) {
            mid += coverage(at(&im, xx, (b[i].y0 + b[i].y1) / 2), plot_palette(0)) >= 0.5;
            top += coverage(at(&im, xx, b[i].y0 + 1), plot_palette(0)) >= 0.5;
        }
        cr_expect(abs(w - h) <= 1, "marker %d: %dx%d, not square", i, w, h);
        cr_expect(mid < 0.7 * w && top >= 2, "marker %d: middle row %d of %d px, top row %d", i,
                  mid, w, top);
        checked++;
    }
    cr_expect(checked >= 3, "%d markers (1 point + 2 legend dots)", checked);
    free(im.px);
}

/* ---- field heatmap with scatter sets and polylines ---- */

enum { FN = 40 };
static double g_field[FN * FN];

static PlotField field_xy(void) {
    for (int j = 0; j < FN; j++)
        for (int i = 0; i < FN; i++) g_field[j * FN + i] = 2 + (i + j) * 5.0 / (2 * (FN - 1));
    return (PlotField){
        .v = g_field, .nx = FN, .ny = FN, .x0 = 0, .x1 = 1, .y0 = 0, .y1 = 1, .label = "f(x, y)"};
}

Test(plot_kinds, field_colours_and_colour_bar) {
    PlotField f = field_xy();
    double lo, hi;
    cr_assert(plot_field_range(&f, &lo, &hi));
    cr_expect(fabs(lo - 2) < 1e-12 && fabs(hi - 7) < 1e-12, "range %g..%g", lo, hi);
    double px[2] = {0.15, 0.25}, py[2] = {0.2, 0.1}, qx[2] = {0.8, 0.9}, qy[2] = {0.85, 0.75};
    PlotSeries s[2] = {{.label = "real", .x = px, .y = py, .n = 2, .style = PLOT_DOTS},
                       {.label = "generated",
                        .x = qx,
                        .y = qy,
                        .n = 2,
                        .style = PLOT_DOTS,
                        .marker = PLOT_MARK_TRIANGLE}};
    PlotPanel p = {
        .title = "f", .xlabel = "x", .ylabel = "y", .series = s, .nseries = 2, .field = &f};
    Img im = render(&p, 1, 1, 700, 500);
    const PlotColor vmin = {68, 1, 84, 255}, vmax = {253, 231, 37, 255};
    Stats a = find_all(&im, vmin, 1, 0), b = find_all(&im, vmax, 1, 0);
    /* the smallest value is the bottom-left cell, the largest the top-right one */
    cr_assert(a.n > 50 && b.n > 50, "min cell %ld px, max cell %ld px", a.n, b.n);
    cr_expect(a.mx < b.mx - 300 && a.my > b.my + 200, "min at (%.0f,%.0f), max at (%.0f,%.0f)",
              a.mx, a.my, b.mx, b.my);
    /* the colour bar right of the field: viridis top to bottom */
    Stats top = find(&im, vmax, 1, 12, (int)b.mx + 15, 0, im.w, im.h);
    Stats bot = find(&im, vmin, 1, 12, (int)b.mx + 15, 0, im.w, im.h);
    cr_expect(top.n > 10 && bot.n > 10, "colour bar ends: %ld, %ld px", top.n, bot.n);
    cr_expect(top.my < bot.my - 250, "bar top %.0f, bottom %.0f", top.my, bot.my);
    cr_expect(fabs(bot.my - a.my) < 30 && fabs(top.my - b.my) < 30,
              "bar range = the field's range (ends level with its extreme cells)");
    /* scatter sets on top: set 0 bottom left, set 1 top right */
    Stats s0 = find_all(&im, plot_palette(0), 1, 0), s1 = find_all(&im, plot_palette(1), 1, 0);
    /* each set's markers in the quarter of the field where its points are (the legend,
     * with one swatch of each, is somewhere else) */
    int xm = (a.x0 + b.x1) / 2, ym = (b.y0 + a.y1) / 2;
    Stats s0d = find(&im, plot_palette(0), 1, 0, a.x0, ym, xm, a.y1 + 1);
    Stats s1d = find(&im, plot_palette(1), 1, 0, xm, b.y0, b.x1 + 1, ym);
    cr_expect(s0.n > 40 && s1.n > 40, "marker pixels: %ld, %ld", s0.n, s1.n);
    cr_expect(s0d.n > 20 && s1d.n > 20, "2 markers in their quarter: %ld, %ld px", s0d.n, s1d.n);
    free(im.px);
}

Test(plot_kinds, polyline_on_a_heatmap) {
    PlotField f = field_xy();
    f.logscale = 1;
    enum { T = 30 };
    static double tx[T], ty[T];
    for (int i = 0; i < T; i++) tx[i] = 0.1 + 0.8 * i / (T - 1), ty[i] = 0.5 + 0.3 * sin(i / 4.0);
    PlotSeries s = {.label = "SGD",
                    .x = tx,
                    .y = ty,
                    .n = T,
                    .style = PLOT_LINE_MARKERS,
                    .color = 7 /* black */};
    PlotPanel p = {.title = "loss surface", .series = &s, .nseries = 1, .field = &f};
    Img im = render(&p, 1, 1, 700, 500);
    const PlotColor black = plot_palette(6), vmin = {68, 1, 84, 255}, vmax = {253, 231, 37, 255};
    Stats a = find_all(&im, vmin, 1, 0), b = find_all(&im, vmax, 1, 0);
    int xl = a.x0, xr = b.x1, yt = b.y0, yb = a.y1, xm = (xl + xr) / 2;
    Stats left = find(&im, black, 1, 0, xl, yt, xm, yb),
          right = find(&im, black, 1, 0, xm, yt, xr, yb);
    cr_expect(left.n > 300 && right.n > 300, "the trajectory crosses the field: %ld | %ld", left.n,
              right.n);
    /* markers have white rims over the heatmap */
    long rim = 0; /* no viridis colour is near white (its blue is 37 where red is 253) */
    for (int y = yt + 5; y < yb - 5; y++)
        for (int x = xl + 5; x < xr - 5; x++)
            rim += at(&im, x, y)[0] > 235 && at(&im, x, y)[1] > 235 && at(&im, x, y)[2] > 235;
    cr_expect(rim > 100, "white rims of the markers: %ld px", rim);
    free(im.px);
    sample("field.png", "Heatmap of a function with points and a trajectory", &p, 1, 1, 700, 500);
}

/* ---- histograms ---- */

static double g_ha[2000], g_hb[2000];

Test(plot_kinds, histograms_overlaid_and_side_by_side) {
    unsigned st = 3;
    for (int i = 0; i < 2000; i++) {
        st = st * 1664525u + 1013904223u;
        double u = (st >> 8) / 16777216.0;
        g_ha[i] = u, g_hb[i] = 2 + u;
    }
    g_ha[0] = NAN;
    PlotHist h[2] = {{"before", g_ha, 2000}, {"after", g_hb, 2000}};
    PlotPanel p[2] = {{.title = "overlaid", .ylabel = "count", .hists = h, .nhists = 2, .bins = 30},
                      {.title = "side by side",
                       .hists = h,
                       .nhists = 2,
                       .bins = 6,
                       .hist_side = 1,
                       .hist_lo = 0,
                       .hist_hi = 3}};
    Img im = render(&p[0], 1, 1, 800, 400);
    Frame fr = plot_frame(&im);
    double W = fr.x1 - fr.x0;
    Stats a = find_all(&im, plot_palette(0), 0.4, 2), b = find_all(&im, plot_palette(1), 0.4, 2);
    cr_expect(a.n > 10000 && b.n > 10000, "bar pixels %ld, %ld", a.n, b.n);
    cr_expect(a.x1 < b.x0, "set a (0..1) left of set b (2..3): %d < %d", a.x1, b.x0);
    cr_expect(a.x0 - fr.x0 < 0.04 * W && fr.x1 - b.x1 < 0.04 * W,
              "the bins span the data: %d..%d in %d..%d", a.x0, b.x1, fr.x0, fr.x1);
    free(im.px);
    /* same data, 6 bins of 0.5 on [0, 3]: a fills bins 0-1, b bins 4-5, each as the left
     * or right half of its bin */
    im = render(&p[1], 1, 1, 800, 400);
    fr = plot_frame(&im);
    W = fr.x1 - fr.x0;
#define PX(v) (fr.x0 + ((v) + 0.06) / 3.12 * W) /* x axis: [0, 3] padded by 2% */
    a = find_all(&im, plot_palette(0), 0.85, 2), b = find_all(&im, plot_palette(1), 0.85, 2);
    cr_expect(a.n > 5000 && b.n > 5000);
    cr_expect(fabs(a.x0 - PX(0)) < 3 && fabs(a.x1 - PX(0.75)) < 3, "a: %d..%d, expected %.0f..%.0f",
              a.x0, a.x1, PX(0), PX(0.75));
    cr_expect(fabs(b.x0 - PX(2.25)) < 3 && fabs(b.x1 - PX(3)) < 3, "b: %d..%d, expected %.0f..%.0f",
              b.x0, b.x1, PX(2.25), PX(3));
#undef PX
    free(im.px);
    sample("hist.png", "Histograms", p, 2, 2, 1100, 420);
}

Test(plot_kinds, histogram_log_y) {
    static double v[1003];
    for (int i = 0; i < 1000; i++) v[i] = 0.1;
    v[1000] = 1.5, v[1001] = 2.5, v[1002] = 3.5;
    PlotHist h = {"spiky", v, 1003};
    PlotPanel p = {.hists = &h, .nhists = 1, .bins = 4, .hist_lo = 0, .hist_hi = 4};
    double ratio[2];
    for (int lg = 0; lg < 2; lg++) {
        p.logy = lg ? PLOT_LOGY_ON : PLOT_LOGY_OFF;
        Img im = render(&p, 1, 1, 800, 400);
        Frame fr = plot_frame(&im);
        PlotColor c = plot_palette(0);
        int xb = (int)(fr.x0 + 0.58 / 4.16 * (fr.x1 - fr.x0));
        int xs = (int)(fr.x0 + 2.58 / 4.16 * (fr.x1 - fr.x0));
        Stats big = find(&im, c, 0.4, 2, xb, 0, xb + 1, im.h);
        Stats small = find(&im, c, 0.4, 2, xs, 0, xs + 1, im.h);
        cr_assert(big.n > 100, "the bar of 1000 at x = 0.5 (column %d): %ld px", xb, big.n);
        ratio[lg] = (double)small.n / big.n;
        free(im.px);
    }
    cr_expect(ratio[0] < 0.03, "linear: a count of 1 next to 1000 is a sliver (%.3f)", ratio[0]);
    cr_expect(ratio[1] > 0.1 && ratio[1] < 0.5, "log: it is visible (%.3f)", ratio[1]);
    cr_expect_eq(plot_choose_logy(&p), 1);
    p.logy = PLOT_LOGY_AUTO;
    cr_expect_eq(plot_choose_logy(&p), 0, "histogram counts are log only when asked");
}

/* ---- log and categorical x ---- */

/* x centres of the blobs of colour c in the row holding the most of them. */
static int marker_row(const Img *im, PlotColor c, double *xs, int cap) {
    Blob b[64];
    int nb = blobs(im, c, b, 64), best = 0, n = 0;
    for (int i = 0; i < nb; i++) {
        int k = 0;
        for (int j = 0; j < nb; j++) k += fabs(b[j].cy - b[i].cy) < 2 && b[j].n >= 6;
        if (k > best) best = k, n = 0;
        if (k == best && b[i].n >= 6) {
            n = 0;
            for (int j = 0; j < nb && n < cap; j++)
                if (fabs(b[j].cy - b[i].cy) < 2 && b[j].n >= 6) xs[n++] = b[j].cx;
        }
    }
    for (int i = 1; i < n; i++) /* sort */
        for (int j = i; j > 0 && xs[j] < xs[j - 1]; j--) {
            double t = xs[j];
            xs[j] = xs[j - 1], xs[j - 1] = t;
        }
    return n;
}

Test(plot_kinds, log_x_spaces_decades_evenly) {
    double x[4] = {1, 10, 100, 1000}, y[4] = {1, 1, 1, 1}, xs[8];
    PlotSeries s = {.label = "accuracy",
                    .x = x,
                    .y = y,
                    .n = 4,
                    .style = PLOT_DOTS,
                    .marker = PLOT_MARK_SQUARE};
    PlotPanel p = {.xlabel = "bits", .series = &s, .nseries = 1, .logx = 1};
    Img im = render(&p, 1, 1, 800, 400);
    int n = marker_row(&im, plot_palette(0), xs, 8);
    cr_assert_eq(n, 4, "%d markers in the data row", n);
    double d1 = xs[1] - xs[0], d2 = xs[2] - xs[1], d3 = xs[3] - xs[2];
    cr_expect(d1 > 100 && fabs(d1 - d2) < 2 && fabs(d2 - d3) < 2, "gaps %.1f %.1f %.1f", d1, d2,
              d3);
    /* each decade's grid line runs through its marker */
    for (int i = 0; i < 4; i++) {
        long grid = 0;
        for (int gx = (int)lround(xs[i]) - 1; gx <= (int)lround(xs[i]) + 1; gx++)
            grid += find(&im, (PlotColor){222, 222, 222, 255}, 1, 0, gx, 0, gx + 1, im.h).n;
        cr_expect(grid > 150, "grid line at the marker for 10^%d: %ld px", i, grid);
    }
    free(im.px);
    p.logx = 0;
    im = render(&p, 1, 1, 800, 400);
    n = marker_row(&im, plot_palette(0), xs, 8);
    cr_expect(n >= 3 && xs[n - 1] - xs[n - 2] > 5 * (xs[n - 2] - xs[0]),
              "a linear axis does not (%d markers)", n);
    free(im.px);
}

Test(plot_kinds, categorical_x_and_line_markers) {
    const char *cats[5] = {"none", "value 0.5", "norm 1", "AGC", "ZClip"};
    double x[5] = {0, 1, 2, 3, 4}, y[5] = {3, 1.2, 1.1, 1.3, 1.05}, xs[8];
    PlotSeries s[2] = {
        {.label = "final loss",
         .x = x,
         .y = y,
         .n = 5,
         .style = PLOT_DOTS,
         .marker = PLOT_MARK_DIAMOND},
        {.label = "flat", .x = x, .y = (double[5]){2, 2, 2, 2, 2}, .n = 5, .style = PLOT_DOTS}};
    PlotPanel p = {.title = "sweep", .series = s, .nseries = 2, .xcats = cats, .ncats = 5};
    Img im = render(&p, 1, 1, 800, 400);
    int n = marker_row(&im, plot_palette(1), xs, 8);
    cr_assert_eq(n, 5, "%d markers", n);
    for (int i = 1; i < 4; i++)
        cr_expect(fabs((xs[i + 1] - xs[i]) - (xs[1] - xs[0])) < 2, "evenly spaced categories");
    Frame fr = plot_frame(&im);
    double plotw = fr.x1 - fr.x0;
    cr_expect(fabs((xs[1] - xs[0]) - plotw / 5) < 2, "one category per fifth of the plot");
    cr_expect(fabs(xs[0] - fr.x0 - plotw / 10) < 2,
              "first category centred in its slot: %.1f in %d..%d", xs[0], fr.x0, fr.x1);
    free(im.px);
    s[0].style = PLOT_LINE_MARKERS, s[1].style = PLOT_LINE_MARKERS, s[1].marker = PLOT_MARK_PLUS;
    sample("categorical.png", "Sweep summary on a categorical axis", &p, 1, 1, 800, 400);
    PlotPanel bad = p;
    bad.logx = 1;
    PlotImage pi = {0};
    char err[256] = "";
    cr_expect_eq(plot_figure_render(&pi, NULL, &bad, 1, 1, 0, 0, err, sizeof err), -1);
    cr_expect(strstr(err, "categorical") != NULL, "%s", err);
    plot_image_free(&pi);
}

/* ---- grid ---- */

Test(plot_kinds, grid_of_panels) {
    double x[3] = {0, 1, 2}, y[3] = {1, 3, 2};
    PlotSeries s[4];
    PlotPanel p[4];
    for (int k = 0; k < 4; k++) {
        s[k] = (PlotSeries){.label = "s", .x = x, .y = y, .n = 3, .color = k + 1};
        p[k] = (PlotPanel){.title = "panel", .series = &s[k], .nseries = 1};
    }
    PlotImage pi = {0};
    char err[256] = "";
    cr_assert_eq(plot_figure_render(&pi, "grid", p, 4, 2, 0, 0, err, sizeof err), 0, "%s", err);
    cr_expect(pi.w == 1120 && pi.h == 840, "%dx%d", pi.w, pi.h);
    Img im = to_rgb(&pi);
    for (int k = 0; k < 4; k++) {
        Stats st = find_all(&im, plot_palette(k), 1, 0);
        int qx = k % 2, qy = k / 2;
        cr_expect(st.n > 200 && (st.mx > im.w / 2) == qx && (st.my > im.h / 2) == qy,
                  "panel %d in its cell: %ld px at (%.0f, %.0f)", k, st.n, st.mx, st.my);
    }
    uint32_t *before = pi.px;
    cr_assert_eq(plot_figure_render(&pi, "grid", p, 4, 2, 0, 0, err, sizeof err), 0);
    cr_expect(pi.px == before, "an image of the same size is reused");
    free(im.px);
    plot_image_free(&pi);
}

/* ---- filmstrip ---- */

static const PlotColor CART = {40, 40, 160, 255}, POLE = {200, 120, 20, 255},
                       AXLE = {20, 150, 20, 255};

/* Cell i: a cart at the bottom, a pole leaning by i * 45 degrees, an axle circle in
 * cell 2, a label. View: [0, 1] x [0, 1]. */
static void draw_frame(PlotDraw *d, int i, void *arg) {
    (void)arg;
    plot_draw_line(d, 0, 0.02, 1, 0.02, 2, (PlotColor){0, 0, 0, 255});
    plot_draw_rect(d, 0.3, 0.05, 0.7, 0.15, CART);
    plot_draw_rotated_rect(d, 0.5 - 0.3 * sin(i * M_PI / 4), 0.15 + 0.3 * cos(i * M_PI / 4), 0.04,
                           0.6, i * M_PI / 4, POLE);
    if (i == 2) plot_draw_circle(d, 0.5, 0.5, 0.1, AXLE);
    char t[16];
    snprintf(t, sizeof t, "t=%d", i);
    plot_draw_text(d, 0.02, 0.9, 0, 13, (PlotColor){0, 0, 0, 255}, t);
}

Test(plot_kinds, filmstrip_cells_in_cell_coordinates) {
    const char *cap[3] = {"upright", "45 degrees", "lying"};
    PlotFilmstrip fs = {.ncells = 3, .view = {0, 1, 0, 1}, .draw = draw_frame, .captions = cap};
    PlotImage pi = {0};
    char err[256] = "";
    cr_assert_eq(plot_filmstrip_render(&pi, &fs, err, sizeof err), 0, "%s", err);
    cr_expect(pi.w == 8 + 3 * 208 && pi.h == 8 + 150 + 24 + 8, "%dx%d", pi.w, pi.h);
    Img im = to_rgb(&pi);
    /* cell i spans x 8 + 208 i .. +200, y 8 .. 158; view scale 150 px per unit, centred */
    for (int i = 0; i < 3; i++) {
        int x0 = 8 + 208 * i, ox = x0 + 25;
        Stats cart = find(&im, CART, 1, 0, x0, 8, x0 + 200, 158);
        Stats pole = find(&im, POLE, 1, 0, x0, 8, x0 + 200, 158);
        cr_expect(fabs(cart.mx - (ox + 75)) < 2 && fabs(cart.my - (158 - 15)) < 2,
                  "cell %d: cart centre (%.1f, %.1f)", i, cart.mx, cart.my);
        cr_expect(cart.x1 - cart.x0 > 55 && cart.x1 - cart.x0 < 62, "cart 0.4 wide = 60 px");
        double pw = pole.x1 - pole.x0, ph = pole.y1 - pole.y0;
        if (i == 0) cr_expect(ph > 80 && pw < 10, "upright pole %gx%g", pw, ph);
        if (i == 2) cr_expect(pw > 80 && ph < 10, "lying pole %gx%g", pw, ph);
        if (i == 1) { /* turned counter-clockwise: its top leans left, over the cart's left */
            Stats top = find(&im, POLE, 1, 0, x0, 8, x0 + 200, (int)pole.my);
            cr_expect(top.mx < pole.mx - 10, "top of the pole at %.0f, its centre %.0f", top.mx,
                      pole.mx);
        }
    }
    Stats axle = find_all(&im, AXLE, 1, 0);
    cr_expect(axle.n > 150 && axle.mx > 8 + 416 && fabs(axle.mx - (8 + 416 + 100)) < 2,
              "circle in cell 2: %ld px", axle.n);
    long ink = 0;
    for (int y = 160; y < im.h; y++)
        for (int x = 0; x < im.w; x++) ink += at(&im, x, y)[0] < 128;
    cr_expect(ink > 50, "captions under the cells");
    free(im.px);
    plot_image_free(&pi);
    fs.view[1] = 0;
    cr_expect_eq(plot_filmstrip_render(&pi, &fs, err, sizeof err), -1, "empty view");
    const char *d = getenv("CLIPLAB_PLOT_SAMPLES");
    if (d && *d) {
        char path[512];
        snprintf(path, sizeof path, "%s/filmstrip.png", d);
        fs.view[1] = 1, fs.title = "A filmstrip of small drawings";
        cr_expect_eq(plot_filmstrip(path, &fs, err, sizeof err), 0, "%s", err);
    }
}

Test(plot_kinds, bad_fields_are_errors) {
    PlotField f = field_xy();
    f.x1 = f.x0;
    PlotPanel p = {.title = "broken", .field = &f};
    PlotImage pi = {0};
    char err[256] = "";
    cr_expect_eq(plot_figure_render(&pi, NULL, &p, 1, 1, 0, 0, err, sizeof err), -1);
    cr_expect(strstr(err, "x0 < x1") && strstr(err, "broken"), "%s", err);
    plot_image_free(&pi);
}

Test(plot_kinds, degenerate_kinds_do_not_crash) {
    double c3[3] = {2, 2, 2}, nan3[3] = {NAN, NAN, NAN}, x3[3] = {-1, 0, 1}, one = NAN;
    const char *cat[1] = {"only"};
    PlotHist h[2] = {{"empty", NULL, 0}, {"constant", c3, 3}};
    PlotField f1 = {.v = &one, .nx = 1, .ny = 1, .x0 = 0, .x1 = 1, .y0 = 0, .y1 = 1, .logscale = 1};
    PlotSeries s[3] = {{.label = "nan band", .x = x3, .y = c3, .n = 3, .lo = nan3, .hi = nan3},
                       {.label = "x <= 0 on log", .x = x3, .y = c3, .n = 3},
                       {.label = "one category", .x = NULL, .y = c3, .n = 1, .style = 2}};
    PlotPanel p[5] = {{.title = "hists", .hists = h, .nhists = 2, .logy = PLOT_LOGY_ON},
                      {.title = "1x1 NaN field", .field = &f1},
                      {.title = "band", .series = &s[0], .nseries = 1},
                      {.title = "log x", .series = &s[1], .nseries = 1, .logx = 1},
                      {.title = "cat", .series = &s[2], .nseries = 1, .xcats = cat, .ncats = 1}};
    for (int i = 0; i < 5; i++) {
        Img im = render(&p[i], 1, 1, 500, 300);
        long ink = 0;
        for (size_t k = 0; k < (size_t)im.w * im.h * 3; k++) ink += im.px[k] < 200;
        cr_expect(ink > 500, "panel %d drew its axes", i);
        free(im.px);
    }
    Img im = render(p, 5, 3, 0, 0);
    free(im.px);
}

/* The legend avoids reference lines when it can: data low, a threshold near the top,
 * the legend goes between them instead of over the threshold in the top right corner. */
Test(plot_kinds, legend_keeps_off_a_reference_line) {
    enum { N = 300 };
    static double x[N], y[N];
    for (int i = 0; i < N; i++) x[i] = i, y[i] = 0.15 + 0.15 * sin(i / 9.0);
    PlotSeries s = {.label = "gradient norm", .x = x, .y = y, .n = N};
    PlotPanel p = {.series = &s, .nseries = 1, .hline = 0.95, .hline_label = "clip threshold"};
    Img im = render(&p, 1, 1, 800, 400);
    const PlotColor ref = {45, 45, 45, 255};
    int row = -1;
    long best = 0;
    for (int yy = 0; yy < im.h; yy++) {
        long n = find(&im, ref, 1, 0, 0, yy, im.w, yy + 1).n;
        if (n > best) best = n, row = yy;
    }
    Frame fr = plot_frame(&im);
    long right = find(&im, ref, 1, 0, fr.x1 - (fr.x1 - fr.x0) / 4, row - 1, fr.x1, row + 2).n;
    cr_expect(best > 300, "the threshold line: %ld px in row %d", best, row);
    cr_expect(right > 60, "its right quarter is not under the legend: %ld px", right);
    free(im.px);
}
