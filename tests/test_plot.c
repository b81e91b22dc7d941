/* test_plot.c: figures and heatmaps are written to a temporary folder and read back
 * with stb_image: size, content, series colours, the red non-finite marks, automatic
 * log scale, 1-2-5 ticks, failure without a half-written file, degenerate inputs.
 * With CLIPLAB_PLOT_SAMPLES=DIR the sample figures are kept in DIR for a person to
 * look at (they are always drawn and checked). */
#include <criterion/criterion.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define STB_IMAGE_IMPLEMENTATION
#include <stb/stb_image.h>

#include "plot.h"

/* ---- helpers ---- */

typedef struct Img {
    unsigned char *px; /* RGB */
    int w, h;
} Img;

static char g_dir[256];

static void make_tmpdir(void) {
    snprintf(g_dir, sizeof g_dir, "/tmp/cliplab_plot_XXXXXX");
    cr_assert(mkdtemp(g_dir), "mkdtemp failed");
}

static void remove_tmpdir(void) {
    char cmd[300];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", g_dir);
    cr_assert(system(cmd) == 0);
}

TestSuite(plot, .init = make_tmpdir, .fini = remove_tmpdir);

static const char *tmp_path(const char *name) {
    static char buf[512];
    snprintf(buf, sizeof buf, "%s/%s", g_dir, name);
    return buf;
}

static int file_exists(const char *path) {
    struct stat st;
    return stat(path, &st) == 0;
}

static Img load(const char *path) {
    Img im = {0};
    int n;
    im.px = stbi_load(path, &im.w, &im.h, &n, 3);
    cr_assert(im.px, "cannot read back %s", path);
    return im;
}

static const unsigned char *at(const Img *im, int x, int y) {
    return im->px + ((size_t)y * (size_t)im->w + (size_t)x) * 3;
}

/* Red of non-finite marks (crosses, their text, heatmap cells); no series colour or
 * blend of series colours with white comes near it (vermillion has g = 94). */
static int is_red(const unsigned char *p) { return p[0] >= 170 && p[1] <= 70 && p[2] <= 70; }

/* The brighter red of the cross itself (its text is a darker red). */
static int is_cross_red(const unsigned char *p) { return p[0] >= 200 && p[1] <= 40 && p[2] <= 40; }

static long count_if(const Img *im, int (*pred)(const unsigned char *), int x0, int y0, int x1,
                     int y1) {
    long n = 0;
    for (int y = y0; y < y1; y++)
        for (int x = x0; x < x1; x++) n += pred(at(im, x, y));
    return n;
}

static long count_red(const Img *im, int x0, int y0, int x1, int y1) {
    return count_if(im, is_red, x0, y0, x1, y1);
}

/* Pixels exactly of colour c; their leftmost and rightmost column. */
static long count_colour(const Img *im, const unsigned char c[3], int *xmin, int *xmax) {
    long n = 0;
    *xmin = im->w, *xmax = -1;
    for (int y = 0; y < im->h; y++)
        for (int x = 0; x < im->w; x++)
            if (memcmp(at(im, x, y), c, 3) == 0) {
                n++;
                if (x < *xmin) *xmin = x;
                if (x > *xmax) *xmax = x;
            }
    return n;
}

static long count_non_white(const Img *im) {
    long n = 0;
    for (size_t i = 0; i < (size_t)im->w * (size_t)im->h; i++)
        n += im->px[3 * i] < 250 || im->px[3 * i + 1] < 250 || im->px[3 * i + 2] < 250;
    return n;
}

static PlotPanel panel_of(const char *title, const PlotSeries *s, int n) {
    PlotPanel p = {.title = title,
                   .xlabel = "step",
                   .ylabel = "value",
                   .logy = PLOT_LOGY_AUTO,
                   .series = s,
                   .nseries = n};
    return p;
}

/* Deterministic noise in [-1, 1). */
static double noise(unsigned *state) {
    *state = *state * 1664525u + 1013904223u;
    return (*state >> 8) / 8388608.0 - 1.0;
}

enum { NS = 1000 };
static double g_x[NS], g_a[NS], g_b[NS];

/* A run whose loss blows up and goes NaN at step 300 (a), one that decreases (b). */
static void fill_runs(int with_nan) {
    unsigned st = 7;
    for (int i = 0; i < NS; i++) {
        g_x[i] = i;
        g_b[i] = 1.2 + 3.4 * exp(-i / 180.0) + 0.08 * noise(&st);
        g_a[i] = 4.6 * exp(-i / 120.0) + 0.5 + (i > 200 ? exp((i - 200) / 9.0) : 0);
        if (with_nan && i >= 300) g_a[i] = NAN;
    }
}

static int draw_pair(const char *path, int with_nan, char *err) {
    fill_runs(with_nan);
    PlotSeries s[2] = {{.label = "no clipping", .x = g_x, .y = g_a, .n = NS},
                       {.label = "clip 1.0", .x = g_x, .y = g_b, .n = NS}};
    PlotPanel p = panel_of("loss", s, 2);
    return plot_figure(path, "test", &p, 1, 0, 0, err, 256);
}

/* Where a sample for a person to look at goes: CLIPLAB_PLOT_SAMPLES, else the temp folder. */
static void sample_path(char *buf, size_t n, const char *name) {
    const char *d = getenv("CLIPLAB_PLOT_SAMPLES");
    if (d && *d) {
        mkdir(d, 0755);
        snprintf(buf, n, "%s/%s", d, name);
    } else {
        snprintf(buf, n, "%s/%s", g_dir, name);
    }
}

/* ---- figure ---- */

Test(plot, figure_default_and_given_size) {
    char err[256] = "";
    fill_runs(0);
    PlotSeries s[1] = {{.label = "a", .x = g_x, .y = g_b, .n = NS}};
    PlotPanel p[2] = {panel_of("one", s, 1), panel_of("two", s, 1)};
    cr_assert_eq(plot_figure(tmp_path("d.png"), "t", p, 2, 0, 0, err, sizeof err), 0, "%s", err);
    Img im = load(tmp_path("d.png"));
    cr_expect_eq(im.w, 1000);
    cr_expect_eq(im.h, 840);
    stbi_image_free(im.px);
    cr_assert_eq(plot_figure(tmp_path("e.png"), NULL, p, 1, 640, 360, err, sizeof err), 0, "%s",
                 err);
    im = load(tmp_path("e.png"));
    cr_expect_eq(im.w, 640);
    cr_expect_eq(im.h, 360);
    stbi_image_free(im.px);
    cr_expect(!file_exists(tmp_path("d.png.tmp")) && !file_exists(tmp_path("e.png.tmp")));
}

Test(plot, canvas_has_text_and_series_colours) {
    char err[256] = "";
    cr_assert_eq(draw_pair(tmp_path("c.png"), 0, err), 0, "%s", err);
    Img im = load(tmp_path("c.png"));
    long nw = count_non_white(&im);
    cr_expect(nw > 10000 && nw < (long)im.w * im.h / 2, "non-white pixels %ld", nw);
    for (int k = 0; k < 2; k++) {
        PlotColor pc = plot_palette(k);
        const unsigned char c[3] = {pc.r, pc.g, pc.b};
        int xmin, xmax;
        long n = count_colour(&im, c, &xmin, &xmax);
        /* full-coverage line pixels across the plot, not just the legend swatch */
        cr_expect(n > 500, "series %d: %ld pixels of its colour", k, n);
        cr_expect(xmax - xmin > 600, "series %d spans x %d..%d", k, xmin, xmax);
    }
    stbi_image_free(im.px);
}

Test(plot, palette_colours_differ) {
    for (int i = 0; i < 7; i++)
        for (int j = i + 1; j < 7; j++) {
            PlotColor a = plot_palette(i), b = plot_palette(j);
            cr_expect(a.r != b.r || a.g != b.g || a.b != b.b, "colours %d and %d equal", i, j);
        }
}

Test(plot, nonfinite_marker_only_when_nan) {
    char err[256] = "";
    cr_assert_eq(draw_pair(tmp_path("nan.png"), 1, err), 0, "%s", err);
    cr_assert_eq(draw_pair(tmp_path("fin.png"), 0, err), 0, "%s", err);
    Img a = load(tmp_path("nan.png")), b = load(tmp_path("fin.png"));
    long ra = count_red(&a, 0, 0, a.w, a.h), rb = count_red(&b, 0, 0, b.w, b.h);
    cr_expect(ra > 60, "red marker pixels with NaN: %ld", ra);
    cr_expect_eq(rb, 0, "red pixels without NaN: %ld", rb);
    /* The run diverged at step 300 of 0..999: the cross is in the left half (the legend,
     * with its own small cross, is top right). */
    cr_expect(count_if(&a, is_cross_red, 0, 0, a.w / 2, a.h) > 30, "cross in the left half");
    stbi_image_free(a.px);
    stbi_image_free(b.px);
}

Test(plot, all_nan_series_marked_at_top) {
    char err[256] = "";
    double x[5] = {4, 5, 6, 7, 8}, y[5] = {NAN, NAN, NAN, NAN, NAN}, ax[2] = {0, 8}, ay[2] = {1, 1};
    PlotSeries s[2] = {{.label = "dead", .x = x, .y = y, .n = 5},
                       {.label = "alive", .x = ax, .y = ay, .n = 2}}; /* x axis 0..8 */
    PlotPanel p = panel_of("all NaN", s, 2);
    cr_assert_eq(plot_figure(tmp_path("an.png"), NULL, &p, 1, 0, 0, err, sizeof err), 0, "%s", err);
    Img im = load(tmp_path("an.png"));
    /* it went non-finite at x = 4, the middle of the x range: the cross sits at the top
     * edge of the plot there (the legend, with its own small cross, goes to a corner) */
    long centre = count_if(&im, is_cross_red, im.w * 2 / 5, 0, im.w * 3 / 5, im.h / 4);
    cr_expect(centre > 30, "red pixels at the top centre: %ld", centre);
    cr_expect_eq(count_red(&im, im.w * 2 / 5, im.h / 2, im.w * 3 / 5, im.h), 0);
    stbi_image_free(im.px);
}

Test(plot, choose_logy) {
    double x[3] = {0, 1, 2}, wide[3] = {1e-2, 3, 1e4}, narrow[3] = {1, 3, 5};
    double withneg[3] = {-1, 1e-2, 1e4}, withzero[3] = {0, 1e-3, 10}, nan3[3] = {NAN, 1, 50};
    PlotSeries s = {.label = "s", .x = x, .y = wide, .n = 3};
    PlotPanel p = panel_of("p", &s, 1);
    cr_expect_eq(plot_choose_logy(&p), 1, "1e-2..1e4 is six decades");
    s.y = narrow;
    cr_expect_eq(plot_choose_logy(&p), 0, "1..5 is under one decade");
    p.logy = PLOT_LOGY_ON;
    cr_expect_eq(plot_choose_logy(&p), 1);
    s.y = wide;
    p.logy = PLOT_LOGY_OFF;
    cr_expect_eq(plot_choose_logy(&p), 0);
    p.logy = PLOT_LOGY_AUTO;
    s.y = withneg;
    cr_expect_eq(plot_choose_logy(&p), 0, "negative values keep a linear axis");
    s.y = withzero;
    cr_expect_eq(plot_choose_logy(&p), 1, "zeros are skipped; 1e-3..10 is four decades");
    s.y = nan3;
    cr_expect_eq(plot_choose_logy(&p), 0, "1..50 is 1.7 decades (NaN ignored)");
    nan3[2] = 500;
    cr_expect_eq(plot_choose_logy(&p), 1, "1..500 is 2.7 decades");
}

/* True when s is m * 10^e with m in {1, 2, 5}. */
static int is_125(double s) {
    double e = floor(log10(s) + 1e-9), m = s / pow(10, e);
    return fabs(m - 1) < 1e-6 || fabs(m - 2) < 1e-6 || fabs(m - 5) < 1e-6;
}

Test(plot, ticks_are_125_and_cover_the_range) {
    const double r[][2] = {{0, 1},      {-3.7, 12.2}, {0.013, 0.0171}, {1e-3, 1e30},
                           {-5e6, 5e6}, {995, 1005},  {1, 1.0001},     {-1e-9, 3e-9}};
    for (size_t i = 0; i < sizeof r / sizeof r[0]; i++)
        for (int m = 2; m <= 10; m++) {
            double t[64], lo = r[i][0], hi = r[i][1];
            int n = plot_ticks(lo, hi, m, t, 64);
            cr_assert(n >= 2, "range %g..%g max %d: %d ticks", lo, hi, m, n);
            if (m >= 6) cr_expect(n <= m, "range %g..%g max %d: %d ticks", lo, hi, m, n);
            double step = t[1] - t[0], eps = step * 1e-6;
            cr_expect(is_125(step), "step %g", step);
            cr_expect(t[0] >= lo - eps && t[0] - lo < step + eps, "first tick %g for %g", t[0], lo);
            cr_expect(t[n - 1] <= hi + eps && hi - t[n - 1] < step + eps, "last tick %g", t[n - 1]);
            for (int k = 1; k < n; k++) cr_expect(fabs(t[k] - t[k - 1] - step) <= eps);
            cr_expect(fabs(t[0] / step - round(t[0] / step)) < 1e-6,
                      "ticks are multiples of the step");
        }
    double t[8];
    cr_expect_eq(plot_ticks(0, 1, 6, t, 8), 6, "0, 0.2, ..., 1");
    cr_expect(fabs(t[1] - 0.2) < 1e-12);
    cr_expect_eq(plot_ticks(1, 1, 5, t, 8), 0, "empty range");
    cr_expect_eq(plot_ticks(2, 1, 5, t, 8), 0, "reversed range");
}

Test(plot, degenerate_inputs_do_not_crash) {
    char err[256] = "";
    double x1[1] = {5}, y1[1] = {2}, cx[4] = {0, 1, 2, 3}, cy[4] = {3, 3, 3, 3};
    double zx[3] = {0, 1, 2}, zy[3] = {0, 0, 0}, ix[4] = {0, 1, 2, 3},
           iy[4] = {1, INFINITY, 2, -INFINITY};
    double hx[6] = {0, 1, 2, 3, 4, 5}, hy[6] = {1e-3, 1e5, 1e30, 1e12, 1e-1, 1e300};
    double nx[3] = {NAN, 1, 2}, ny[3] = {1, NAN, 2};
    PlotSeries s1[] = {{.label = "empty", .x = NULL, .y = NULL, .n = 0},
                       {.label = "single", .x = x1, .y = y1, .n = 1},
                       {.label = "dots", .x = x1, .y = y1, .n = 1, .style = 1}};
    PlotSeries s2[] = {{.label = "constant", .x = cx, .y = cy, .n = 4},
                       {.label = "zeros", .x = zx, .y = zy, .n = 3}};
    PlotSeries s3[] = {{.label = "inf", .x = ix, .y = iy, .n = 4},
                       {.label = "huge", .x = hx, .y = hy, .n = 6},
                       {.label = "nan x", .x = nx, .y = ny, .n = 3}};
    PlotSeries s4[] = {{.label = "huge", .x = hx, .y = hy, .n = 6}};
    double vl[2] = {1, NAN};
    PlotPanel p[6] = {panel_of("empty + single", s1, 3), panel_of("constant", s2, 2),
                      panel_of("inf + huge", s3, 3),     panel_of("no series", NULL, 0),
                      panel_of("huge, linear", s4, 1),   panel_of("huge, log", s4, 1)};
    p[1].vlines = vl, p[1].nvlines = 2, p[1].hline = 3, p[1].hline_label = "three";
    p[4].logy = PLOT_LOGY_OFF;
    p[5].logy = PLOT_LOGY_ON, p[5].hline = -1; /* a non-positive reference on log: left out */
    p[5].hline_label = "minus one";
    for (int i = 0; i < 6; i++) {
        char name[32];
        snprintf(name, sizeof name, "deg%d.png", i);
        cr_assert_eq(plot_figure(tmp_path(name), name, &p[i], 1, 0, 0, err, sizeof err), 0,
                     "panel %d: %s", i, err);
        Img im = load(tmp_path(name));
        cr_expect(count_non_white(&im) > 2000, "panel %d looks blank", i);
        stbi_image_free(im.px);
    }
    char path[512];
    sample_path(path, sizeof path, "degenerate.png");
    cr_assert_eq(plot_figure(path, "degenerate inputs", p, 6, 1000, 6 * 300, err, sizeof err), 0,
                 "%s", err);
}

Test(plot, bad_arguments_are_errors) {
    char err[256] = "";
    PlotSeries s = {.label = "s", .x = NULL, .y = NULL, .n = 3};
    PlotPanel p = panel_of("p", &s, 1);
    cr_expect_eq(plot_figure(tmp_path("x.png"), NULL, &p, 1, 0, 0, err, sizeof err), -1,
                 "n=3 with no y values");
    cr_expect(strlen(err) > 0);
    err[0] = 0;
    cr_expect_eq(plot_figure(tmp_path("x.png"), NULL, &p, 0, 0, 0, err, sizeof err), -1);
    cr_expect(strstr(err, "no panels") != NULL, "%s", err);
    s.n = 0;
    cr_expect_eq(plot_figure(tmp_path("x.png"), NULL, &p, 1, 100, 100, err, sizeof err), -1);
    cr_expect(strstr(err, "100x100") != NULL, "%s", err);
    cr_expect(!file_exists(tmp_path("x.png")) && !file_exists(tmp_path("x.png.tmp")));
}

Test(plot, unwritable_path_fails_and_leaves_no_file) {
    char err[256] = "", path[600], dir[512];
    snprintf(path, sizeof path, "%s/no_such_folder/fig.png", g_dir);
    cr_assert_eq(draw_pair(path, 1, err), -1);
    cr_expect(strstr(err, "no_such_folder") != NULL, "error names the path: %s", err);
    cr_expect(strstr(err, "No such file") != NULL, "error says why: %s", err);
    cr_expect(!file_exists(path));
    /* the target is an existing folder: the PNG is written, the rename fails, the
     * temporary file is removed */
    snprintf(dir, sizeof dir, "%s/a_folder", g_dir);
    cr_assert(mkdir(dir, 0755) == 0);
    err[0] = 0;
    cr_assert_eq(draw_pair(dir, 0, err), -1);
    cr_expect(strlen(err) > 0);
    snprintf(path, sizeof path, "%s.tmp", dir);
    cr_expect(!file_exists(path), "temporary file left behind");
    err[0] = 0;
    double v[2] = {1, 2};
    cr_expect_eq(plot_heatmap(dir, "h", "step", NULL, 1, NULL, 2, v, 0, err, sizeof err), -1);
    cr_expect(!file_exists(path) && strlen(err) > 0);
}

/* ---- heatmap ---- */

static int heat(const char *name, int rows, int cols, int nan_at, int logscale, char *err) {
    double *v = malloc((size_t)rows * cols * sizeof *v), *x = malloc((size_t)cols * sizeof *x);
    for (int c = 0; c < cols; c++) x[c] = 10.0 * c;
    for (int i = 0; i < rows * cols; i++) v[i] = 0.1 * (1 + i % cols) * (1 + i / cols);
    if (nan_at >= 0) v[nan_at] = NAN;
    const char *labels[4] = {"layer 0", "layer 1", "layer 2", "output"};
    int rc = plot_heatmap(tmp_path(name), "norms", "step", rows == 4 ? labels : NULL, rows, x, cols,
                          v, logscale, err, 256);
    free(v);
    free(x);
    return rc;
}

Test(plot, heatmap_size_and_nonfinite_cells) {
    char err[256] = "";
    int w, h;
    cr_assert_eq(heat("h1.png", 4, 8, 0, 0, err), 0, "%s", err);
    cr_assert_eq(heat("h0.png", 4, 8, -1, 1, err), 0, "%s", err);
    plot_heatmap_size(4, &w, &h);
    Img a = load(tmp_path("h1.png")), b = load(tmp_path("h0.png"));
    cr_expect(a.w == w && a.h == h, "%dx%d, expected %dx%d", a.w, a.h, w, h);
    cr_expect(b.w == w && b.h == h);
    /* NaN in cell (0, 0): red in the top-left quadrant (the note swatch is bottom right) */
    cr_expect(count_red(&a, 0, 0, a.w / 2, a.h / 2) > 100, "red cell pixels");
    cr_expect_eq(count_red(&b, 0, 0, b.w, b.h), 0, "no red without non-finite cells");
    cr_expect(count_non_white(&b) > 50000);
    stbi_image_free(a.px);
    stbi_image_free(b.px);
    int w2, h2;
    plot_heatmap_size(40, &w2, &h2);
    cr_expect(w2 == w && h2 > h, "taller for more rows");
}

Test(plot, heatmap_degenerate) {
    char err[256] = "";
    cr_expect_eq(heat("hd1.png", 1, 1, -1, 0, err), 0, "%s", err);
    cr_expect_eq(heat("hd2.png", 1, 1, 0, 1, err), 0, "%s", err);
    cr_expect_eq(heat("hd3.png", 300, 5000, 1234, 1, err), 0, "%s", err);
    char path[512];
    double one[2] = {2, 5};
    sample_path(path, sizeof path, "heatmap_small.png");
    cr_expect_eq(
        plot_heatmap(path, "one row, under a decade", "step", NULL, 1, NULL, 2, one, 1, err, 256),
        0, "%s", err);
    double z[6] = {0, 0, 0, 0, 0, 0};
    cr_expect_eq(plot_heatmap(tmp_path("hz.png"), NULL, NULL, NULL, 2, NULL, 3, z, 1, err, 256), 0,
                 "%s", err);
    cr_expect_eq(plot_heatmap(tmp_path("hz.png"), NULL, NULL, NULL, 2, NULL, 3, z, 0, err, 256), 0,
                 "%s", err);
    cr_expect_eq(plot_heatmap(tmp_path("he.png"), NULL, NULL, NULL, 0, NULL, 3, z, 0, err, 256),
                 -1);
    cr_expect(!file_exists(tmp_path("he.png")));
}

/* ---- samples for a person to look at ---- */

Test(plot, samples) {
    enum { N = 1000, NV = 10 };
    static double x[N], la[N], lb[N], ga[N], gb[N], vx[NV], vb[NV];
    unsigned st = 11;
    for (int i = 0; i < N; i++) {
        x[i] = i;
        double blow = i > 180 ? exp((i - 180) / 12.0) - 1 : 0;
        la[i] = i >= 300 ? NAN : 4.6 * exp(-i / 120.0) + 0.6 + 0.05 * noise(&st) + blow;
        lb[i] = 1.1 + 3.5 * exp(-i / 200.0) + 0.06 * noise(&st);
        ga[i] = i >= 300 ? NAN : 3 * exp(i / 18.0) * (1 + 0.3 * noise(&st));
        gb[i] = (0.8 + 6 * exp(-i / 150.0)) * (1 + 0.25 * noise(&st));
    }
    for (int k = 0; k < NV; k++) vx[k] = 100.0 * k + 99, vb[k] = lb[(int)vx[k]] + 0.15;
    PlotSeries loss[3] = {
        {.label = "no clipping", .x = x, .y = la, .n = N},
        {.label = "clip-by-norm 1.0", .x = x, .y = lb, .n = N},
        {.label = "clip-by-norm 1.0 (validation)", .x = vx, .y = vb, .n = NV, .style = 1}};
    PlotSeries gn[2] = {{.label = "no clipping", .x = x, .y = ga, .n = N},
                        {.label = "clip-by-norm 1.0 (pre-clip)", .x = x, .y = gb, .n = N}};
    PlotPanel p[2] = {panel_of("Training loss", loss, 3), panel_of("Gradient norm", gn, 2)};
    p[0].ylabel = "cross-entropy", p[1].ylabel = "‖g‖₂";
    p[1].hline = 1.0, p[1].hline_label = "clip threshold (1.0)";
    char err[256] = "", path[512];
    sample_path(path, sizeof path, "compare.png");
    cr_assert_eq(plot_figure(path, "RNN: no clipping vs gradient clipping (lr 0.5)", p, 2, 0, 0,
                             err, sizeof err),
                 0, "%s", err);

    double rb[3] = {420, 655, 810};
    static double ls[N];
    for (int i = 0; i < N; i++) {
        double since = i < 420 ? i : i < 655 ? i - 420 : i < 810 ? i - 655 : i - 810;
        ls[i] = 1.0 + 2.0 * exp(-i / 300.0) + (since > 120 ? 0.02 * (since - 120) : 0) +
                0.05 * noise(&st);
    }
    PlotSeries sr[1] = {{.label = "loss", .x = x, .y = ls, .n = N}};
    PlotPanel pr = panel_of("Loss with rollbacks", sr, 1);
    pr.vlines = rb, pr.nvlines = 3, pr.vline_label = "rollback to checkpoint";
    sample_path(path, sizeof path, "rollbacks.png");
    cr_assert_eq(plot_figure(path, NULL, &pr, 1, 0, 0, err, sizeof err), 0, "%s", err);

    enum { R = 12, C = 300 };
    static double hv[R * C], hx[C];
    static char names[R][32];
    const char *rl[R];
    for (int r = 0; r < R; r++) {
        snprintf(names[r], sizeof names[r], r == R - 1 ? "head.weight" : "layer%d.weight", r);
        rl[r] = names[r];
    }
    for (int c = 0; c < C; c++) {
        hx[c] = 10.0 * c;
        for (int r = 0; r < R; r++) {
            double v = 0.05 * pow(1.6, R - 1 - r) * (1 + 0.3 * noise(&st)) * exp(c / 60.0);
            hv[r * C + c] = c >= 240 && r < 3 ? NAN : v;
        }
    }
    sample_path(path, sizeof path, "heatmap.png");
    cr_assert_eq(plot_heatmap(path, "Per-layer gradient norm (no clipping)", "step", rl, R, hx, C,
                              hv, 1, err, sizeof err),
                 0, "%s", err);
    Img im = load(path);
    cr_expect(count_red(&im, 0, 0, im.w, im.h) > 100);
    stbi_image_free(im.px);
}

/* Legends that cannot go inside, scientific tick labels, negative values, large steps. */
Test(plot, samples_misc) {
    enum { N = 400 };
    static double x[N], a[N], b[N], c[N], lr[N], big[N], critic[N];
    unsigned st = 5;
    for (int i = 0; i < N; i++) {
        x[i] = i;
        a[i] = sin(i / 9.0) + 0.4 * noise(&st);
        b[i] = cos(i / 13.0) + 0.4 * noise(&st);
        c[i] = sin(i / 5.0 + 1) * 1.2;
        lr[i] = 3e-4 * fmin(1, i / 40.0) * 0.5 * (1 + cos(M_PI * i / N));
        big[i] = 500.0 * i;
        critic[i] = -40 * (1 - exp(-i / 80.0)) + 3 * noise(&st);
    }
    PlotSeries crowd[3] = {{.label = "sin + noise", .x = x, .y = a, .n = N},
                           {.label = "cos + noise", .x = x, .y = b, .n = N},
                           {.label = "fast sine", .x = x, .y = c, .n = N}};
    PlotSeries sl[1] = {{.label = "learning rate", .x = x, .y = lr, .n = N}};
    PlotSeries sc[1] = {
        {.label = "critic loss (Wasserstein estimate, negated)", .x = big, .y = critic, .n = N}};
    PlotPanel p[3] = {panel_of("Crowded panel: legend goes outside", crowd, 3),
                      panel_of("Warm-up + cosine schedule", sl, 1), panel_of("WGAN critic", sc, 1)};
    p[1].ylabel = "learning rate";
    p[2].xlabel = "generator step", p[2].ylabel = "critic loss";
    p[2].hline = 0, p[2].hline_label = "zero";
    char err[256] = "", path[512];
    sample_path(path, sizeof path, "misc.png");
    cr_assert_eq(plot_figure(path, "Layout checks", p, 3, 0, 0, err, sizeof err), 0, "%s", err);
    Img im = load(path);
    cr_expect_eq(count_red(&im, 0, 0, im.w, im.h), 0);
    stbi_image_free(im.px);
}

/* The PNG holds exactly the pixels plot_figure_render leaves in memory (what a live
 * window would show). */
Test(plot, png_equals_the_in_memory_render) {
    char err[256] = "";
    fill_runs(1);
    PlotSeries s[2] = {{.label = "no clipping", .x = g_x, .y = g_a, .n = NS},
                       {.label = "clip 1.0", .x = g_x, .y = g_b, .n = NS}};
    PlotPanel p = panel_of("loss", s, 2);
    PlotImage im = {0};
    cr_assert_eq(plot_figure_render(&im, "t", &p, 1, 1, 0, 0, err, sizeof err), 0, "%s", err);
    cr_assert_eq(plot_figure(tmp_path("m.png"), "t", &p, 1, 0, 0, err, sizeof err), 0, "%s", err);
    Img png = load(tmp_path("m.png"));
    cr_assert(png.w == im.w && png.h == im.h);
    unsigned char *rgb = malloc((size_t)im.w * im.h * 3);
    plot_image_rgb(&im, rgb);
    cr_expect(memcmp(rgb, png.px, (size_t)im.w * im.h * 3) == 0, "PNG differs from the render");
    cr_expect_eq(im.px[0], 0xFFFFFFFFu, "opaque white ARGB32 background");
    free(rgb);
    stbi_image_free(png.px);
    plot_image_free(&im);
    cr_expect(im.px == NULL);
}

/* A run that explodes to +inf in the first 3% of x beside one that learns from 1 to 0.01:
 * the y range fits the finite run (its line spans most of the plot's height, not a flat
 * line under 1e30), and the zoom inset draws the explosion away from the left edge. */
Test(plot, divergence_leaves_frame_and_zoom_shows_it) {
    char err[256] = "";
    enum { N = 1000 };
    double x[N], good[N], bad[N];
    for (int i = 0; i < N; i++) {
        x[i] = i;
        good[i] = pow(10, -2.0 * i / (N - 1));
        bad[i] = i < 30 ? pow(10, i) : INFINITY;
    }
    PlotSeries s[2] = {{.label = "explodes", .x = x, .y = bad, .n = N},
                       {.label = "learns", .x = x, .y = good, .n = N}};
    PlotPanel p = panel_of("divergence", s, 2);
    cr_assert_eq(plot_figure(tmp_path("dv.png"), NULL, &p, 1, 1000, 500, err, sizeof err), 0,
                 "%s", err);
    Img im = load(tmp_path("dv.png"));
    PlotColor c0 = plot_palette(0), c1 = plot_palette(1);
    unsigned char k0[3] = {c0.r, c0.g, c0.b}, k1[3] = {c1.r, c1.g, c1.b};
    long upper = 0, far = 0; /* the learning run's pixels in the upper half; the exploding
                                run's right of the first quarter (the legend has ~50 each) */
    for (int y = 0; y < im.h; y++)
        for (int xx = 0; xx < im.w; xx++) {
            upper += y < im.h / 2 && !memcmp(at(&im, xx, y), k1, 3);
            far += xx > im.w / 4 && !memcmp(at(&im, xx, y), k0, 3);
        }
    cr_expect(upper > 150, "the finite run fills the height (upper half: %ld pixels)", upper);
    cr_expect(far > 150, "the exploding run drawn in the inset, away from the left edge: %ld", far);
    cr_expect(count_if(&im, is_cross_red, 0, 0, im.w, im.h / 3) > 30, "a cross near the top");
    stbi_image_free(im.px);
}

/* The provenance items come back from the PNG's text chunks read by an independent reader
 * (Python's zlib and struct: chunk lengths, types, CRC-32s checked), in order, tEXt for
 * ASCII and iTXt for UTF-8; and the footer makes the image taller than the figure. */
Test(plot, provenance_in_text_chunks_and_footer) {
    char err[256] = "";
    double x[3] = {0, 1, 2}, y[3] = {1, 2, 3};
    PlotSeries s = {.label = "s", .x = x, .y = y, .n = 3};
    PlotPanel p = panel_of("provenance", &s, 1);
    cr_assert_eq(plot_provenance("Command", "./train configs/a.ini clip.max_norm=0.5"), 0);
    cr_assert_eq(plot_provenance("Seed", "7"), 0);
    cr_assert_eq(plot_provenance("Where", "Z\xc3\xbcrich"), 0); /* UTF-8: iTXt */
    cr_assert_eq(plot_provenance("bad\tkey", "x"), -1);
    int rc = plot_figure(tmp_path("pv.png"), "t", &p, 1, 600, 300, err, sizeof err);
    plot_provenance("Command", NULL), plot_provenance("Seed", NULL), plot_provenance("Where", NULL);
    cr_assert_eq(rc, 0, "%s", err);
    Img im = load(tmp_path("pv.png"));
    cr_expect_eq(im.w, 600);
    cr_expect(im.h > 300, "the footer adds rows under the figure: height %d", im.h);
    stbi_image_free(im.px);
    char cmd[1024];
    snprintf(cmd, sizeof cmd,
             "/usr/bin/python3 -c \"import struct,sys,zlib\n"
             "b=open(sys.argv[1],'rb').read(); assert b[:8]==b'\\x89PNG\\r\\n\\x1a\\n'; i=8\n"
             "while i<len(b):\n"
             " n,t=struct.unpack('>I4s',b[i:i+8]); d=b[i+8:i+8+n]\n"
             " assert struct.unpack('>I',b[i+8+n:i+12+n])[0]==zlib.crc32(t+d), t\n"
             " if t==b'tEXt': k,v=d.split(b'\\0',1); print('tEXt',k.decode(),v.decode('latin-1'))\n"
             " if t==b'iTXt': k,r=d.split(b'\\0',1); print('iTXt',k.decode(),r[4:].decode('utf-8'))\n"
             " i+=12+n\n\" %s",
             tmp_path("pv.png"));
    FILE *f = popen(cmd, "r");
    cr_assert(f);
    char out[2048] = "";
    size_t n = fread(out, 1, sizeof out - 1, f);
    out[n] = '\0';
    cr_assert_eq(pclose(f), 0, "the reader failed (bad chunk or CRC):\n%s", out);
    cr_expect_str_eq(out, "tEXt Command ./train configs/a.ini clip.max_norm=0.5\n"
                          "tEXt Seed 7\n"
                          "iTXt Where Z\xc3\xbcrich\n");
}
