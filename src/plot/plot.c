/* plot.c: PNG figures: a column of line-plot panels (loss, gradient norms) and a
 * heatmap (per-layer norms over steps), drawn into an RGB buffer with our own
 * anti-aliased primitives, text from stb_truetype (DejaVu Sans, loaded once) and
 * written with stb_image_write to "<path>.tmp", then renamed.
 *
 * Ticks follow the 1-2-5 "nice numbers" rule (Heckbert, Graphics Gems 1990);
 * series colours are the Okabe-Ito colour-blind-safe palette (Okabe & Ito 2008);
 * the heatmap uses matplotlib's viridis (van der Walt & Smith 2015), linearly
 * interpolated between 9 of its control points. Lines are rasterised as capsules
 * with coverage = clamp(r + 0.5 - distance, 0, 1) into a coverage layer that is
 * then blended onto the canvas, so a polyline is anti-aliased without darkening
 * at its joints.
 *
 * Leaves to others: what to plot (the trainer and metrics build the panels). The
 * only global state is the font cache. */
#include "plot.h"

#include <errno.h>
#include <limits.h>
#include <math.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <stb/stb_image_write.h>
#include <stb/stb_truetype.h>

/* ---- sizes (pixels) and colours ---- */

#define FONT_TICK 14.0f
#define FONT_LABEL 15.0f
#define FONT_LEGEND 14.0f
#define FONT_NOTE 13.0f
#define FONT_TITLE 18.0f
#define FONT_FIGTITLE 21.0f
#define CAP_EM 0.729 /* DejaVu Sans cap height / em: centres digits on a tick */
#define LINE_WIDTH 2.25
#define DOT_RADIUS 3.5
#define MAX_TICKS 160
#define MAX_SIDE 10000

typedef struct Rgb {
    unsigned char r, g, b;
} Rgb;

/* Okabe & Ito (2008), yellow left out (too faint on white), then four more
 * distinct hues (purple, brown, grey, olive) so an 8-10 run ablation does not
 * reuse a colour. */
static const Rgb PALETTE[] = {{0, 114, 178},   {230, 159, 0},  {0, 158, 115},   {204, 121, 167},
                              {86, 180, 233},  {213, 94, 0},   {0, 0, 0},       {117, 112, 179},
                              {140, 86, 75},   {127, 127, 127}, {188, 189, 34}};
#define NPALETTE ((int)(sizeof PALETTE / sizeof PALETTE[0]))

static const Rgb RED = {220, 0, 0}; /* non-finite marks only; no palette colour is near it */
static const Rgb DARK_RED = {180, 0, 0}; /* text next to a non-finite mark */
static const Rgb INK = {25, 25, 25};
static const Rgb AXIS = {80, 80, 80};
static const Rgb GRID = {222, 222, 222};
static const Rgb GRID_MINOR = {245, 245, 245};
static const Rgb EVENT = {120, 120, 120};
static const Rgb REFLINE = {45, 45, 45};
static const Rgb LEGEND_EDGE = {190, 190, 190};
static const Rgb WHITE = {255, 255, 255};
static const Rgb NONPOS = {200, 200, 200}; /* heatmap cells <= 0 on a log colour scale */

/* ---- errors ---- */

__attribute__((format(printf, 3, 4))) static void set_err(char *err, size_t errlen, const char *fmt,
                                                          ...) {
    if (!err || errlen == 0) return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err, errlen, fmt, ap);
    va_end(ap);
}

/* ---- font cache (the only global state) ---- */

typedef struct Font {
    stbtt_fontinfo info;
    unsigned char *data;
    float ascent, descent; /* font units; descent < 0 */
    int ok;
    char err[400];
} Font;

static Font g_font;
static pthread_once_t g_font_once = PTHREAD_ONCE_INIT;

static unsigned char *read_file(const char *path, char *err, size_t errlen) {
    FILE *f = fopen(path, "rb");
    if (!f) {
        set_err(err, errlen,
                "cannot open font %s: %s (install the Debian package fonts-dejavu-core)", path,
                strerror(errno));
        return NULL;
    }
    long n = fseek(f, 0, SEEK_END) == 0 ? ftell(f) : -1;
    unsigned char *data = n > 0 ? malloc((size_t)n) : NULL;
    if (!data || fseek(f, 0, SEEK_SET) != 0 || fread(data, 1, (size_t)n, f) != (size_t)n) {
        set_err(err, errlen, "cannot read font %s (reinstall the Debian package fonts-dejavu-core)",
                path);
        free(data);
        data = NULL;
    }
    fclose(f);
    return data;
}

static void font_load_once(void) {
    g_font.data = read_file(PLOT_FONT_PATH, g_font.err, sizeof g_font.err);
    if (!g_font.data) return;
    int off = stbtt_GetFontOffsetForIndex(g_font.data, 0);
    if (off < 0 || !stbtt_InitFont(&g_font.info, g_font.data, off)) {
        snprintf(g_font.err, sizeof g_font.err,
                 "%s is not a TrueType font (reinstall the Debian package fonts-dejavu-core)",
                 PLOT_FONT_PATH);
        return;
    }
    int asc, desc, gap;
    stbtt_GetFontVMetrics(&g_font.info, &asc, &desc, &gap);
    g_font.ascent = (float)asc;
    g_font.descent = (float)desc;
    g_font.ok = 1;
}

static const Font *font_get(char *err, size_t errlen) {
    pthread_once(&g_font_once, font_load_once);
    if (g_font.ok) return &g_font;
    set_err(err, errlen, "%s", g_font.err);
    return NULL;
}

/* ---- canvas, rectangles, coverage layers ---- */

typedef struct Rect {
    int x0, y0, x1, y1; /* [x0, x1) x [y0, y1) */
} Rect;

typedef struct Canvas {
    unsigned char *px; /* [h][w][3] RGB */
    int w, h;
    const Font *font;
} Canvas;

/* Coverage (0..255) of what is being drawn, clipped to clip; dirty bounds what is set. */
typedef struct Layer {
    unsigned char *a; /* [h][w] */
    int w, h;
    Rect clip, dirty;
} Layer;

static int imin(int a, int b) { return a < b ? a : b; }
static int imax(int a, int b) { return a > b ? a : b; }
static double clampd(double v, double lo, double hi) { return v < lo ? lo : v > hi ? hi : v; }

static Rect rect_make(int x0, int y0, int w, int h) { return (Rect){x0, y0, x0 + w, y0 + h}; }

static int rect_overlap(Rect a, Rect b) {
    return a.x0 < b.x1 && b.x0 < a.x1 && a.y0 < b.y1 && b.y0 < a.y1;
}

static int rect_inside(Rect a, Rect outer) {
    return a.x0 >= outer.x0 && a.y0 >= outer.y0 && a.x1 <= outer.x1 && a.y1 <= outer.y1;
}

static Rect rect_clip(Rect r, Rect c) {
    return (Rect){imax(r.x0, c.x0), imax(r.y0, c.y0), imin(r.x1, c.x1), imin(r.y1, c.y1)};
}

/* Blend colour c with opacity a (0..1) into pixel (x, y); outside the canvas is ignored. */
static void blend(Canvas *cv, int x, int y, Rgb c, double a) {
    if (x < 0 || y < 0 || x >= cv->w || y >= cv->h || a <= 0) return;
    if (a > 1) a = 1;
    unsigned char *p = cv->px + ((size_t)y * (size_t)cv->w + (size_t)x) * 3;
    p[0] = (unsigned char)lround(p[0] + (c.r - p[0]) * a);
    p[1] = (unsigned char)lround(p[1] + (c.g - p[1]) * a);
    p[2] = (unsigned char)lround(p[2] + (c.b - p[2]) * a);
}

static void fill_rect(Canvas *cv, Rect r, Rgb c, double a) {
    for (int y = r.y0; y < r.y1; y++)
        for (int x = r.x0; x < r.x1; x++) blend(cv, x, y, c, a);
}

/* A 1-px outline just outside r. */
static void frame_rect(Canvas *cv, Rect r, Rgb c) {
    fill_rect(cv, (Rect){r.x0 - 1, r.y0 - 1, r.x1 + 1, r.y0}, c, 1);
    fill_rect(cv, (Rect){r.x0 - 1, r.y1, r.x1 + 1, r.y1 + 1}, c, 1);
    fill_rect(cv, (Rect){r.x0 - 1, r.y0, r.x0, r.y1}, c, 1);
    fill_rect(cv, (Rect){r.x1, r.y0, r.x1 + 1, r.y1}, c, 1);
}

static void layer_set_clip(Layer *L, Rect clip) {
    L->clip = rect_clip(clip, (Rect){0, 0, L->w, L->h});
}

static void layer_touch(Layer *L, Rect r) {
    r = rect_clip(r, L->clip);
    if (r.x0 >= r.x1 || r.y0 >= r.y1) return;
    L->dirty.x0 = imin(L->dirty.x0, r.x0);
    L->dirty.y0 = imin(L->dirty.y0, r.y0);
    L->dirty.x1 = imax(L->dirty.x1, r.x1);
    L->dirty.y1 = imax(L->dirty.y1, r.y1);
}

/* Raise the coverage of (x, y), inside the clip, to cov (0..1). */
static void layer_put(Layer *L, int x, int y, double cov) {
    if (cov <= 0) return;
    int v = (int)lround(clampd(cov, 0, 1) * 255);
    unsigned char *p = &L->a[(size_t)y * (size_t)L->w + (size_t)x];
    if (v > *p) *p = (unsigned char)v;
}

/* Liang-Barsky: clip segment (x0,y0)-(x1,y1) to [xmin,xmax]x[ymin,ymax]; 0 if outside. */
static int clip_segment(double xmin, double ymin, double xmax, double ymax, double *x0, double *y0,
                        double *x1, double *y1) {
    double dx = *x1 - *x0, dy = *y1 - *y0, t0 = 0, t1 = 1;
    double p[4] = {-dx, dx, -dy, dy};
    double q[4] = {*x0 - xmin, xmax - *x0, *y0 - ymin, ymax - *y0};
    for (int i = 0; i < 4; i++) {
        if (p[i] == 0) {
            if (q[i] < 0) return 0;
            continue;
        }
        double t = q[i] / p[i];
        if (p[i] < 0 && t > t0) t0 = t;
        if (p[i] > 0 && t < t1) t1 = t;
        if (t0 > t1) return 0;
    }
    double ax = *x0, ay = *y0;
    *x0 = ax + t0 * dx, *y0 = ay + t0 * dy;
    *x1 = ax + t1 * dx, *y1 = ay + t1 * dy;
    return 1;
}

/* Anti-aliased segment of the given width with round caps (a capsule). */
static void layer_segment(Layer *L, double ax, double ay, double bx, double by, double width) {
    double r = width / 2, m = r + 1;
    Rect c = L->clip;
    if (!clip_segment(c.x0 - m, c.y0 - m, c.x1 + m, c.y1 + m, &ax, &ay, &bx, &by)) return;
    Rect box = {(int)floor(fmin(ax, bx) - m), (int)floor(fmin(ay, by) - m),
                (int)ceil(fmax(ax, bx) + m), (int)ceil(fmax(ay, by) + m)};
    box = rect_clip(box, c);
    layer_touch(L, box);
    double dx = bx - ax, dy = by - ay, len2 = dx * dx + dy * dy;
    for (int y = box.y0; y < box.y1; y++)
        for (int x = box.x0; x < box.x1; x++) {
            double cx = x + 0.5, cy = y + 0.5;
            double t = len2 > 0 ? clampd(((cx - ax) * dx + (cy - ay) * dy) / len2, 0, 1) : 0;
            double ex = ax + t * dx - cx, ey = ay + t * dy - cy;
            layer_put(L, x, y, r + 0.5 - sqrt(ex * ex + ey * ey));
        }
}

static void layer_dot(Layer *L, double cx, double cy, double r) {
    Rect box = {(int)floor(cx - r - 1), (int)floor(cy - r - 1), (int)ceil(cx + r + 1),
                (int)ceil(cy + r + 1)};
    box = rect_clip(box, L->clip);
    layer_touch(L, box);
    for (int y = box.y0; y < box.y1; y++)
        for (int x = box.x0; x < box.x1; x++)
            layer_put(L, x, y, r + 0.5 - hypot(x + 0.5 - cx, y + 0.5 - cy));
}

static void layer_fill(Layer *L, Rect r) {
    r = rect_clip(r, L->clip);
    layer_touch(L, r);
    for (int y = r.y0; y < r.y1; y++)
        for (int x = r.x0; x < r.x1; x++) layer_put(L, x, y, 1);
}

static void layer_clear(Layer *L) {
    for (int y = L->dirty.y0; y < L->dirty.y1; y++)
        memset(&L->a[(size_t)y * (size_t)L->w + (size_t)L->dirty.x0], 0,
               (size_t)(L->dirty.x1 - L->dirty.x0));
    L->dirty = (Rect){L->w, L->h, 0, 0};
}

/* Blend the layer onto the canvas in colour c, then clear it. */
static void layer_composite(Layer *L, Canvas *cv, Rgb c) {
    for (int y = L->dirty.y0; y < L->dirty.y1; y++)
        for (int x = L->dirty.x0; x < L->dirty.x1; x++) {
            unsigned char a = L->a[(size_t)y * (size_t)L->w + (size_t)x];
            if (a) blend(cv, x, y, c, a / 255.0);
        }
    layer_clear(L);
}

static long layer_count(const Layer *L, Rect r) {
    r = rect_clip(r, (Rect){0, 0, L->w, L->h});
    long n = 0;
    for (int y = r.y0; y < r.y1; y++)
        for (int x = r.x0; x < r.x1; x++) n += L->a[(size_t)y * (size_t)L->w + (size_t)x] > 0;
    return n;
}

/* Dashed segment: on/off lengths in pixels along it. */
static void layer_dashed(Layer *L, double ax, double ay, double bx, double by, double width,
                         double on, double off) {
    double len = hypot(bx - ax, by - ay);
    if (!(len > 0) || len > 1e6) return;
    double ux = (bx - ax) / len, uy = (by - ay) / len;
    for (double s = 0; s < len; s += on + off) {
        double e = fmin(s + on, len);
        layer_segment(L, ax + ux * s, ay + uy * s, ax + ux * e, ay + uy * e, width);
    }
}

/* A red X of half-size h at (x, y), on a white halo so it stands out on top of lines. */
static void draw_cross(Layer *L, Canvas *cv, double x, double y, double h) {
    for (int pass = 0; pass < 2; pass++) {
        double w = pass == 0 ? 6.5 : 3.0;
        layer_segment(L, x - h, y - h, x + h, y + h, w);
        layer_segment(L, x - h, y + h, x + h, y - h, w);
        layer_composite(L, cv, pass == 0 ? WHITE : RED);
    }
}

/* ---- text ---- */

/* Next code point of a UTF-8 string (U+FFFD for a malformed byte); advances *s. */
static int utf8_next(const char **s) {
    const unsigned char *p = (const unsigned char *)*s;
    int c = p[0], n = c < 0x80 ? 0 : c >= 0xF0 ? 3 : c >= 0xE0 ? 2 : c >= 0xC0 ? 1 : -1;
    if (n < 0) {
        (*s)++;
        return 0xFFFD;
    }
    int cp = n == 0 ? c : c & (0x3F >> n);
    for (int i = 1; i <= n; i++) {
        if ((p[i] & 0xC0) != 0x80) {
            *s += i;
            return 0xFFFD;
        }
        cp = (cp << 6) | (p[i] & 0x3F);
    }
    *s += n + 1;
    return cp;
}

static float font_scale(const Font *f, float px) {
    return stbtt_ScaleForMappingEmToPixels(&f->info, px);
}

static float text_width(const Font *f, const char *s, float px) {
    float scale = font_scale(f, px), w = 0;
    int prev = 0;
    while (s && *s) {
        int cp = utf8_next(&s), adv, lsb;
        if (prev) w += scale * (float)stbtt_GetCodepointKernAdvance(&f->info, prev, cp);
        stbtt_GetCodepointHMetrics(&f->info, cp, &adv, &lsb);
        w += scale * (float)adv;
        prev = cp;
    }
    return w;
}

/* Coverage mask of a rendered string; the pen starts at column 2 on row base. */
typedef struct TextMask {
    unsigned char *a; /* [h][w] */
    int w, h, base;
    float tw; /* advance width of the string */
} TextMask;

static void glyph_to_mask(TextMask *m, const Font *f, int cp, float scale, float x) {
    enum { G = 128 };
    unsigned char g[G * G];
    int ix = (int)floorf(x), x0, y0, x1, y1;
    float sx = x - (float)ix;
    stbtt_GetCodepointBitmapBoxSubpixel(&f->info, cp, scale, scale, sx, 0, &x0, &y0, &x1, &y1);
    int gw = x1 - x0, gh = y1 - y0;
    if (gw <= 0 || gh <= 0 || gw > G || gh > G) return; /* blank, or absurdly large glyph */
    stbtt_MakeCodepointBitmapSubpixel(&f->info, g, gw, gh, gw, scale, scale, sx, 0, cp);
    for (int r = 0; r < gh; r++)
        for (int c = 0; c < gw; c++) {
            int tx = ix + x0 + c, ty = m->base + y0 + r;
            if (tx < 0 || ty < 0 || tx >= m->w || ty >= m->h) continue;
            unsigned char *p = &m->a[(size_t)ty * (size_t)m->w + (size_t)tx];
            if (g[r * gw + c] > *p) *p = g[r * gw + c];
        }
}

static int text_mask(TextMask *m, const Font *f, const char *s, float px) {
    float scale = font_scale(f, px), x = 2;
    m->tw = text_width(f, s, px);
    m->base = (int)ceilf(f->ascent * scale) + 2;
    m->h = m->base + (int)ceilf(-f->descent * scale) + 2;
    m->w = (int)ceilf(m->tw) + 8;
    m->a = calloc((size_t)m->w * (size_t)m->h, 1);
    if (!m->a) return -1;
    int prev = 0;
    while (*s) {
        int cp = utf8_next(&s), adv, lsb;
        if (prev) x += scale * (float)stbtt_GetCodepointKernAdvance(&f->info, prev, cp);
        glyph_to_mask(m, f, cp, scale, x);
        stbtt_GetCodepointHMetrics(&f->info, cp, &adv, &lsb);
        x += scale * (float)adv;
        prev = cp;
    }
    return 0;
}

/* Horizontal text with its baseline at ybase; halign 0, 0.5, 1 puts x at its left, centre, right.
 */
static void text_draw(Canvas *cv, const char *s, float px, double x, double ybase, double halign,
                      Rgb col) {
    TextMask m;
    if (!s || !*s || text_mask(&m, cv->font, s, px)) return;
    int ox = (int)lround(x - halign * m.tw) - 2, oy = (int)lround(ybase) - m.base;
    for (int r = 0; r < m.h; r++)
        for (int c = 0; c < m.w; c++)
            blend(cv, ox + c, oy + r, col, m.a[(size_t)r * (size_t)m.w + (size_t)c] / 255.0);
    free(m.a);
}

/* Text turned 90 degrees counter-clockwise (reads bottom to top), centred on yc, its
 * baseline on column xbase (the letters extend to the left of it). */
static void text_draw_up(Canvas *cv, const char *s, float px, double xbase, double yc, Rgb col) {
    TextMask m;
    if (!s || !*s || text_mask(&m, cv->font, s, px)) return;
    int ox = (int)lround(xbase) - m.base, oy = (int)lround(yc + m.tw / 2) + 2;
    for (int r = 0; r < m.h; r++)
        for (int c = 0; c < m.w; c++)
            blend(cv, ox + r, oy - c, col, m.a[(size_t)r * (size_t)m.w + (size_t)c] / 255.0);
    free(m.a);
}

/* Baseline that centres digits/capitals vertically on y. */
static double baseline_centred(double y, float px) { return y + 0.5 * CAP_EM * px; }

static double text_ascent(const Font *f, float px) { return f->ascent * font_scale(f, px); }

/* ---- ticks ---- */

typedef struct Tick {
    double v;  /* axis units: the value, or log10 of it on a log axis */
    int major; /* 1 labelled; 0 minor with a faint grid line; -1 tick mark only */
    char label[40];
} Tick;

typedef struct Axis {
    double lo, hi; /* limits in axis units */
    int log;
    int nt;
    Tick t[MAX_TICKS];
} Axis;

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

/* Decade 10^e as a label: 0.1, 1, 10, 100, 1000 written out, else 1e-2, 1e4. */
static void fmt_decade(char *buf, size_t n, int e) {
    static const char *plain[] = {"0.1", "1", "10", "100", "1000"};
    if (e >= -1 && e <= 3)
        snprintf(buf, n, "%s", plain[e + 1]);
    else
        snprintf(buf, n, "1e%d", e);
}

/* Add a tick; hyphens in its label become minus signs (U+2212), as in typeset figures. */
static void axis_add(Axis *ax, double v, int major, const char *label) {
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

static void axis_linear_ticks(Axis *ax, int maxticks) {
    double v[MAX_TICKS], step = tick_step(ax->lo, ax->hi, maxticks), mag = 0;
    int n = ticks_from_step(ax->lo, ax->hi, step, v, MAX_TICKS);
    for (int i = 0; i < n; i++) mag = fmax(mag, fabs(v[i]));
    int sci = mag >= 1e6 || (mag > 0 && mag < 1e-3);
    ax->nt = 0;
    for (int i = 0; i < n; i++) {
        char lab[32];
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
            char lab[32];
            snprintf(lab, sizeof lab, "%g", mant[i] * pow(10, e));
            if (u >= ax->lo - 1e-9 && u <= ax->hi + 1e-9) axis_add(ax, u, 1, lab);
        }
    if (ax->nt >= 2) return;
    ax->nt = 0;
    for (int i = 0; i < 2; i++) {
        char lab[32];
        double u = i ? ax->hi : ax->lo;
        snprintf(lab, sizeof lab, "%.3g", pow(10, u));
        axis_add(ax, u, 1, lab);
    }
}

/* Decades on a log axis of pxlen pixels: every k-th decade labelled so labels are at
 * least min_gap apart; other decades and, when there is room, 2..9 x 10^e as minor ticks. */
static void axis_log_ticks(Axis *ax, double pxlen, double min_gap) {
    static const int ks[] = {1, 2, 3, 5, 10, 20, 25, 50, 100};
    double per_dec = pxlen / (ax->hi - ax->lo);
    int k = 100, e0 = (int)ceil(ax->lo - 1e-9), e1 = (int)floor(ax->hi + 1e-9);
    for (int i = 0; i < (int)(sizeof ks / sizeof ks[0]); i++)
        if (ks[i] * per_dec >= min_gap) {
            k = ks[i];
            break;
        }
    ax->nt = 0;
    for (int e = e0; e <= e1; e++) {
        char lab[32];
        fmt_decade(lab, sizeof lab, e);
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

/* Fraction 0..1 of v along the axis (NaN if v cannot be shown). */
static double axis_frac(const Axis *ax, double v) {
    if (!isfinite(v) || (ax->log && v <= 0)) return NAN;
    double u = ax->log ? log10(v) : v;
    return (u - ax->lo) / (ax->hi - ax->lo);
}

static float axis_label_width(const Axis *ax, const Font *f, float px) {
    float w = 0;
    for (int i = 0; i < ax->nt; i++) w = fmaxf(w, text_width(f, ax->t[i].label, px));
    return w;
}

/* Linear limits from data [lo, hi] (none when lo > hi) padded by pad of the span; a
 * constant gets +-10% (or +-1 at zero) so the axis always has a range. */
static void limits_linear(double lo, double hi, double pad, double *a, double *b) {
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
static void limits_log(double lo, double hi, double *a, double *b) {
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

/* ---- figure: data ---- */

static double series_x(const PlotSeries *s, size_t i) { return s->x ? s->x[i] : (double)i; }

/* The colour of series i (the palette repeats; any i, negative too). */
static Rgb series_rgb(int i) { return PALETTE[((i % NPALETTE) + NPALETTE) % NPALETTE]; }

void plot_series_color(int i, unsigned char rgb[3]) {
    Rgb c = series_rgb(i);
    rgb[0] = c.r, rgb[1] = c.g, rgb[2] = c.b;
}

int plot_choose_logy(const PlotPanel *p) {
    if (p->logy != PLOT_LOGY_AUTO) return p->logy == PLOT_LOGY_ON;
    double lo = INFINITY, hi = -INFINITY;
    for (int k = 0; p->series && k < p->nseries; k++) {
        const PlotSeries *s = &p->series[k];
        for (size_t i = 0; s->y && i < s->n; i++) {
            double v = s->y[i];
            if (!isfinite(v)) continue;
            if (v < 0) return 0; /* a log axis would hide negative values */
            if (v > 0) lo = fmin(lo, v), hi = fmax(hi, v);
        }
    }
    return lo <= hi && log10(hi) - log10(lo) > 2;
}

/* Where a series first went non-finite: its last drawable point before that (index, or
 * -1: mark the top edge at x) and what the value was. */
typedef struct Diverge {
    int has;
    long last;
    double x;
    char text[32];
    double px, py; /* marker position on the canvas */
    Rect label;    /* where its text goes */
} Diverge;

typedef enum { SW_LINE, SW_DOTS, SW_VLINE, SW_HLINE, SW_CROSS } Swatch;

typedef struct LegendEntry {
    const char *label;
    Swatch kind;
    Rgb col;
} LegendEntry;

/* One panel being laid out and drawn. */
typedef struct Panel {
    const PlotPanel *p;
    Axis x, y;
    Rect area, plot, legend;
    LegendEntry *leg;
    int nleg;
    Diverge *div; /* [nseries] */
} Panel;

static int point_drawable(const Panel *P, const PlotSeries *s, size_t i) {
    double x = series_x(s, i), y = s->y[i];
    return isfinite(x) && isfinite(y) && (!P->y.log || y > 0);
}

static Diverge find_divergence(const Panel *P, const PlotSeries *s) {
    Diverge d = {0};
    d.last = -1;
    for (size_t i = 0; i < s->n; i++) {
        double y = s->y[i];
        if (isfinite(y) || !isfinite(series_x(s, i))) continue;
        d.has = 1;
        d.x = series_x(s, i);
        snprintf(d.text, sizeof d.text, "diverged (%s)",
                 isnan(y) ? "NaN"
                 : y > 0  ? "+inf"
                          : "-inf");
        for (size_t j = i; j-- > 0;)
            if (point_drawable(P, s, j)) {
                d.last = (long)j;
                break;
            }
        break;
    }
    return d;
}

static void panel_xrange(Panel *P) {
    const PlotPanel *p = P->p;
    double lo = INFINITY, hi = -INFINITY;
    for (int k = 0; k < p->nseries; k++)
        for (size_t i = 0; i < p->series[k].n; i++) {
            double x = series_x(&p->series[k], i);
            if (isfinite(x)) lo = fmin(lo, x), hi = fmax(hi, x);
        }
    for (int k = 0; p->vlines && k < p->nvlines; k++)
        if (isfinite(p->vlines[k])) lo = fmin(lo, p->vlines[k]), hi = fmax(hi, p->vlines[k]);
    limits_linear(lo, hi, 0.02, &P->x.lo, &P->x.hi);
}

static void panel_yrange(Panel *P) {
    const PlotPanel *p = P->p;
    double lo = INFINITY, hi = -INFINITY;
    for (int k = 0; k < p->nseries; k++)
        for (size_t i = 0; i < p->series[k].n; i++)
            if (point_drawable(P, &p->series[k], i))
                lo = fmin(lo, p->series[k].y[i]), hi = fmax(hi, p->series[k].y[i]);
    if (isfinite(p->hline) && (!P->y.log || p->hline > 0))
        lo = fmin(lo, p->hline), hi = fmax(hi, p->hline);
    if (P->y.log)
        limits_log(lo, hi, &P->y.lo, &P->y.hi);
    else
        limits_linear(lo, hi, 0.05, &P->y.lo, &P->y.hi);
}

static int legend_build(Panel *P) {
    const PlotPanel *p = P->p;
    int any_div = 0;
    P->nleg = 0;
    for (int k = 0; k < p->nseries; k++) {
        const PlotSeries *s = &p->series[k];
        P->leg[P->nleg++] = (LegendEntry){s->label ? s->label : "(unnamed)",
                                          s->style == 1 ? SW_DOTS : SW_LINE, series_rgb(k)};
        any_div |= P->div[k].has;
    }
    if (p->vlines && p->nvlines > 0)
        P->leg[P->nleg++] =
            (LegendEntry){p->vline_label ? p->vline_label : "event", SW_VLINE, EVENT};
    if (isfinite(p->hline) && (!P->y.log || p->hline > 0))
        P->leg[P->nleg++] =
            (LegendEntry){p->hline_label ? p->hline_label : "reference", SW_HLINE, REFLINE};
    if (any_div) P->leg[P->nleg++] = (LegendEntry){"non-finite (diverged)", SW_CROSS, RED};
    return P->nleg;
}

/* Layout-independent setup of a panel: scale, data ranges, divergences, legend entries. */
static int panel_prepare(Panel *P, const PlotPanel *p, char *err, size_t errlen) {
    P->p = p;
    for (int k = 0; k < p->nseries; k++)
        if (p->series[k].n > 0 && !p->series[k].y) {
            set_err(err, errlen, "plot: series %d (%s) has %zu points but no y values", k,
                    p->series[k].label ? p->series[k].label : "unnamed", p->series[k].n);
            return -1;
        }
    P->div = calloc((size_t)p->nseries + 1, sizeof *P->div);
    P->leg = calloc((size_t)p->nseries + 3, sizeof *P->leg);
    if (!P->div || !P->leg) {
        set_err(err, errlen, "plot: out of memory");
        return -1;
    }
    P->y.log = plot_choose_logy(p);
    for (int k = 0; k < p->nseries; k++) P->div[k] = find_divergence(P, &p->series[k]);
    panel_xrange(P);
    panel_yrange(P);
    legend_build(P);
    return 0;
}

/* ---- figure: layout ---- */

#define LEGEND_PAD 8
#define LEGEND_ROW 21
#define LEGEND_SWATCH 30

static void legend_size(const Panel *P, const Font *f, int *w, int *h) {
    float tw = 0;
    for (int i = 0; i < P->nleg; i++) tw = fmaxf(tw, text_width(f, P->leg[i].label, FONT_LEGEND));
    *w = P->nleg ? 2 * LEGEND_PAD + LEGEND_SWATCH + 8 + (int)ceilf(tw) : 0;
    *h = P->nleg ? 2 * LEGEND_PAD + P->nleg * LEGEND_ROW - 4 : 0;
}

/* Vertical layout: the plot rectangle's top and bottom and the y ticks. */
static void panel_layout_v(Panel *P, Rect area) {
    P->area = area;
    P->plot.y0 = area.y0 + (P->p->title ? 40 : 16);
    P->plot.y1 = area.y1 - (P->p->xlabel ? 62 : 38);
    double h = P->plot.y1 - P->plot.y0;
    if (P->y.log)
        axis_log_ticks(&P->y, h, 24);
    else
        axis_linear_ticks(&P->y, imax(2, (int)(h / 48)));
}

/* Room the y tick labels and the y label need left of the plot. */
static int panel_left_need(const Panel *P, const Font *f) {
    return 12 + (P->p->ylabel ? 24 : 0) + (int)ceilf(axis_label_width(&P->y, f, FONT_TICK)) + 12;
}

/* The most linear ticks (from one per 90 px down to 2, at most `most`) whose
 * labels fit side by side in width w. */
static void axis_fit_ticks(Axis *ax, const Font *f, double w, int most) {
    for (int m = imax(2, imin((int)(w / 90), most)); m >= 2; m--) {
        axis_linear_ticks(ax, m);
        if (ax->nt * (axis_label_width(ax, f, FONT_TICK) + 24) <= w) break;
    }
}

/* One x tick below the plot rect r at pixel column x: its mark and its label. */
static void draw_x_tick(Canvas *cv, Rect r, int x, const char *label) {
    fill_rect(cv, (Rect){x, r.y1 + 1, x + 1, r.y1 + 7}, AXIS, 1);
    text_draw(cv, label, FONT_TICK, x + 0.5, r.y1 + 9 + text_ascent(cv->font, FONT_TICK), 0.5, INK);
}

/* Horizontal layout: the plot's left and right and the x ticks (as many as fit). */
static void panel_layout_h(Panel *P, const Font *f, int left, int right) {
    P->plot.x0 = P->area.x0 + left;
    P->plot.x1 = P->area.x1 - right;
    axis_fit_ticks(&P->x, f, P->plot.x1 - P->plot.x0, INT_MAX);
}

/* Canvas coordinates of data values (kept within 1e5 px of the plot, for values beyond
 * the +-1e300 the limits are clamped to). */
static double px_x(const Panel *P, double x) {
    double f = clampd(axis_frac(&P->x, x), -100, 100);
    return P->plot.x0 + f * (P->plot.x1 - P->plot.x0);
}

static double px_y(const Panel *P, double y) {
    double f = clampd(axis_frac(&P->y, y), -100, 100);
    return P->plot.y1 - f * (P->plot.y1 - P->plot.y0);
}

/* The series as coverage: capsule segments between drawable neighbours, a dot for an
 * isolated point; dots only for style 1. */
static void stroke_series(Layer *L, const Panel *P, const PlotSeries *s) {
    int prev_ok = 0;
    double px0 = 0, py0 = 0;
    for (size_t i = 0; i < s->n; i++) {
        int ok = point_drawable(P, s, i);
        double px = ok ? px_x(P, series_x(s, i)) : 0, py = ok ? px_y(P, s->y[i]) : 0;
        int next_ok = i + 1 < s->n && point_drawable(P, s, i + 1);
        if (ok && s->style == 1)
            layer_dot(L, px, py, DOT_RADIUS);
        else if (ok && prev_ok)
            layer_segment(L, px0, py0, px, py, LINE_WIDTH);
        else if (ok && !next_ok)
            layer_dot(L, px, py, LINE_WIDTH);
        prev_ok = ok, px0 = px, py0 = py;
    }
}

/* Cost of a divergence label at r: drawn pixels it hides, and much more for leaving the
 * plot or covering a label already placed. */
static long label_cost(const Panel *P, const Layer *occ, Rect r, const Rect *done, int ndone) {
    long n = layer_count(occ, r) + (rect_inside(r, P->plot) ? 0 : 100000L);
    for (int j = 0; j < ndone; j++) n += rect_overlap(r, done[j]) ? 50000L : 0;
    return n;
}

/* Marker positions and label boxes for divergences: each label goes on the side of its
 * marker where it hides the least; markers and labels are then added to occ. */
static void place_divergences(Panel *P, const Font *f, Layer *occ) {
    const PlotPanel *p = P->p;
    int placed = 0;
    Rect done[64];
    for (int k = 0; k < p->nseries; k++) {
        Diverge *d = &P->div[k];
        if (!d->has) continue;
        const PlotSeries *s = &p->series[k];
        d->px = px_x(P, d->last >= 0 ? series_x(s, (size_t)d->last) : d->x);
        d->py = d->last >= 0 ? px_y(P, s->y[d->last]) : P->plot.y0 + 10;
        int w = (int)ceilf(text_width(f, d->text, FONT_NOTE)) + 8, h = 20;
        int x = (int)d->px, y = (int)d->py;
        Rect cand[4] = {rect_make(x + 11, y - 11 - h, w, h), rect_make(x + 11, y + 11, w, h),
                        rect_make(x - 11 - w, y - 11 - h, w, h),
                        rect_make(x - 11 - w, y + 11, w, h)};
        long best = -1;
        for (int c = 0; c < 4; c++) {
            long cost = label_cost(P, occ, cand[c], done, placed);
            if (best < 0 || cost < best) best = cost, d->label = cand[c];
        }
        if (placed < 64) done[placed++] = d->label;
    }
    for (int k = 0; k < p->nseries; k++)
        if (P->div[k].has) {
            layer_fill(occ, rect_make((int)P->div[k].px - 9, (int)P->div[k].py - 9, 18, 18));
            layer_fill(occ, P->div[k].label);
        }
}

/* Coverage of the series (what labels and the legend should not hide). */
static void panel_occupancy(const Panel *P, Layer *occ) {
    layer_set_clip(occ, P->plot);
    for (int k = 0; k < P->p->nseries; k++) stroke_series(occ, P, &P->p->series[k]);
}

/* Put the legend in the inside spot that covers the fewest drawn pixels; returns that count. */
static long legend_inside(Panel *P, const Layer *occ, int w, int h) {
    const int m = 10;
    Rect r = P->plot;
    int xl = r.x0 + m, xr = r.x1 - m - w, xc = (r.x0 + r.x1 - w) / 2;
    int yt = r.y0 + m, yb = r.y1 - m - h, yc = (r.y0 + r.y1 - h) / 2;
    Rect cand[8] = {rect_make(xr, yt, w, h), rect_make(xl, yt, w, h), rect_make(xr, yb, w, h),
                    rect_make(xl, yb, w, h), rect_make(xc, yt, w, h), rect_make(xc, yb, w, h),
                    rect_make(xr, yc, w, h), rect_make(xl, yc, w, h)};
    long best = -1;
    for (int c = 0; c < 8; c++) {
        long n = layer_count(occ, cand[c]) + (rect_inside(cand[c], r) ? 0 : (long)w * h);
        if (best < 0 || n < best) best = n, P->legend = cand[c];
    }
    return best;
}

/* ---- figure: drawing ---- */

static void draw_grid(const Panel *P, Canvas *cv) {
    for (int i = 0; i < P->y.nt; i++) {
        int y = (int)floor(P->plot.y1 - (P->y.t[i].v - P->y.lo) / (P->y.hi - P->y.lo) *
                                            (P->plot.y1 - P->plot.y0));
        if (P->y.t[i].major < 0) continue;
        Rgb c = P->y.t[i].major ? GRID : GRID_MINOR;
        fill_rect(cv, (Rect){P->plot.x0, y, P->plot.x1, y + 1}, c, 1);
    }
    for (int i = 0; i < P->x.nt; i++) {
        int x = (int)floor(px_x(P, P->x.t[i].v));
        fill_rect(cv, (Rect){x, P->plot.y0, x + 1, P->plot.y1}, GRID, 1);
    }
}

static void draw_refs(const Panel *P, Canvas *cv, Layer *L) {
    const PlotPanel *p = P->p;
    layer_set_clip(L, P->plot);
    for (int k = 0; p->vlines && k < p->nvlines; k++) {
        double x = px_x(P, p->vlines[k]);
        if (isfinite(x)) layer_dashed(L, x, P->plot.y0, x, P->plot.y1, 1.8, 6, 4);
    }
    layer_composite(L, cv, EVENT);
    if (isfinite(p->hline) && (!P->y.log || p->hline > 0)) {
        double y = px_y(P, p->hline);
        layer_dashed(L, P->plot.x0, y, P->plot.x1, y, 1.8, 12, 6);
        layer_composite(L, cv, REFLINE);
    }
}

static void draw_divergences(const Panel *P, Canvas *cv, Layer *L) {
    Rect r = P->plot;
    layer_set_clip(L, (Rect){r.x0 - 10, r.y0 - 10, r.x1 + 10, r.y1 + 10});
    for (int k = 0; k < P->p->nseries; k++) {
        const Diverge *d = &P->div[k];
        if (!d->has) continue;
        draw_cross(L, cv, d->px, d->py, 7);
        fill_rect(cv, d->label, WHITE, 0.85);
        text_draw(cv, d->text, FONT_NOTE, d->label.x0 + 4, d->label.y0 + 15, 0, DARK_RED);
    }
}

static void draw_axes(const Panel *P, Canvas *cv) {
    const Rect r = P->plot;
    frame_rect(cv, r, AXIS);
    for (int i = 0; i < P->y.nt; i++) {
        const Tick *t = &P->y.t[i];
        double y = r.y1 - (t->v - P->y.lo) / (P->y.hi - P->y.lo) * (r.y1 - r.y0);
        int yi = (int)floor(y), len = t->major > 0 ? 6 : 3;
        fill_rect(cv, (Rect){r.x0 - 1 - len, yi, r.x0 - 1, yi + 1}, AXIS, 1);
        text_draw(cv, t->label, FONT_TICK, r.x0 - 10, baseline_centred(yi + 0.5, FONT_TICK), 1,
                  INK);
    }
    for (int i = 0; i < P->x.nt; i++)
        draw_x_tick(cv, r, (int)floor(px_x(P, P->x.t[i].v)), P->x.t[i].label);
}

static void draw_titles(const Panel *P, Canvas *cv) {
    const Rect r = P->plot;
    const PlotPanel *p = P->p;
    text_draw(cv, p->title, FONT_TITLE, (r.x0 + r.x1) / 2.0, P->area.y0 + 27, 0.5, INK);
    text_draw(cv, p->xlabel, FONT_LABEL, (r.x0 + r.x1) / 2.0, r.y1 + 48, 0.5, INK);
    text_draw_up(cv, p->ylabel, FONT_LABEL, P->area.x0 + 12 + text_ascent(cv->font, FONT_LABEL),
                 (r.y0 + r.y1) / 2.0, INK);
}

static void draw_swatch(Canvas *cv, Layer *L, const LegendEntry *e, int x, int yc) {
    layer_set_clip(L, (Rect){0, 0, cv->w, cv->h});
    double x1 = x + LEGEND_SWATCH, xm = x + LEGEND_SWATCH / 2.0;
    switch (e->kind) {
    case SW_LINE: layer_segment(L, x + 2, yc, x1 - 2, yc, LINE_WIDTH); break;
    case SW_DOTS:
        layer_dot(L, xm - 8, yc, DOT_RADIUS);
        layer_dot(L, xm + 8, yc, DOT_RADIUS);
        break;
    case SW_VLINE: layer_dashed(L, xm, yc - 8, xm, yc + 9, 1.8, 6, 4); break;
    case SW_HLINE: layer_dashed(L, x, yc, x1, yc, 1.8, 12, 6); break;
    case SW_CROSS: draw_cross(L, cv, xm, yc, 6); return;
    }
    layer_composite(L, cv, e->col);
}

static void draw_legend(const Panel *P, Canvas *cv, Layer *L) {
    if (P->nleg == 0) return;
    Rect b = P->legend;
    fill_rect(cv, b, WHITE, 0.92);
    frame_rect(cv, (Rect){b.x0 + 1, b.y0 + 1, b.x1 - 1, b.y1 - 1}, LEGEND_EDGE);
    for (int i = 0; i < P->nleg; i++) {
        int yc = b.y0 + LEGEND_PAD + i * LEGEND_ROW + LEGEND_ROW / 2 - 2;
        draw_swatch(cv, L, &P->leg[i], b.x0 + LEGEND_PAD, yc);
        text_draw(cv, P->leg[i].label, FONT_LEGEND, b.x0 + LEGEND_PAD + LEGEND_SWATCH + 8,
                  baseline_centred(yc, FONT_LEGEND), 0, INK);
    }
}

static void panel_draw(const Panel *P, Canvas *cv, Layer *L) {
    draw_grid(P, cv);
    draw_refs(P, cv, L);
    layer_set_clip(L, P->plot);
    for (int k = 0; k < P->p->nseries; k++) {
        stroke_series(L, P, &P->p->series[k]);
        layer_composite(L, cv, series_rgb(k));
    }
    draw_divergences(P, cv, L);
    draw_axes(P, cv);
    draw_titles(P, cv);
    draw_legend(P, cv, L);
}

/* ---- output ---- */

typedef struct PngSink {
    FILE *f;
    int failed;
} PngSink;

static void png_sink(void *ctx, void *data, int size) {
    PngSink *s = ctx;
    if (size > 0 && fwrite(data, 1, (size_t)size, s->f) != (size_t)size) s->failed = 1;
}

/* Write the canvas as PNG to path via "<path>.tmp" and rename; no file is left on failure. */
static int png_write(const char *path, const Canvas *cv, char *err, size_t errlen) {
    size_t n = strlen(path);
    char *tmp = malloc(n + 5);
    if (!tmp) {
        set_err(err, errlen, "plot: out of memory");
        return -1;
    }
    snprintf(tmp, n + 5, "%s.tmp", path);
    PngSink s = {fopen(tmp, "wb"), 0};
    if (!s.f) {
        set_err(err, errlen,
                "cannot write plot %s: %s (does the output folder exist and is it writable?)", tmp,
                strerror(errno));
        free(tmp);
        return -1;
    }
    errno = 0;
    int ok = stbi_write_png_to_func(png_sink, &s, cv->w, cv->h, 3, cv->px, cv->w * 3);
    ok = ok && !s.failed && fflush(s.f) == 0;
    int e = errno;
    ok = (fclose(s.f) == 0) && ok;
    if (ok && rename(tmp, path) != 0) ok = 0, e = errno;
    if (!ok) {
        remove(tmp);
        set_err(err, errlen, "cannot write plot %s: %s", path,
                e ? strerror(e) : "PNG encoder failed");
    }
    free(tmp);
    return ok ? 0 : -1;
}

static int canvas_init(Canvas *cv, Layer *L, Layer *occ, int w, int h, char *err, size_t errlen) {
    memset(cv, 0, sizeof *cv);
    memset(L, 0, sizeof *L);
    if (occ) memset(occ, 0, sizeof *occ);
    cv->font = font_get(err, errlen);
    if (!cv->font) return -1;
    size_t n = (size_t)w * (size_t)h;
    cv->w = w, cv->h = h;
    cv->px = malloc(n * 3);
    *L = (Layer){calloc(n, 1), w, h, {0, 0, w, h}, {w, h, 0, 0}};
    if (occ) *occ = (Layer){calloc(n, 1), w, h, {0, 0, w, h}, {w, h, 0, 0}};
    if (!cv->px || !L->a || (occ && !occ->a)) {
        set_err(err, errlen, "plot: out of memory for a %dx%d canvas", w, h);
        return -1;
    }
    memset(cv->px, 255, n * 3);
    return 0;
}

static void canvas_free(Canvas *cv, Layer *L, Layer *occ) {
    free(cv->px);
    free(L->a);
    if (occ) free(occ->a);
}

/* ---- plot_figure ---- */

static int figure_check(const char *path, const PlotPanel *panels, int npanels, int w, int h,
                        int top, char *err, size_t errlen) {
    if (!path || !*path) {
        set_err(err, errlen, "plot_figure: no output path");
        return -1;
    }
    if (!panels || npanels < 1) {
        set_err(err, errlen, "plot_figure: no panels to draw (%s)", path);
        return -1;
    }
    if (w < 320 || (h - top) / npanels < 170 || w > MAX_SIDE || h > MAX_SIDE) {
        set_err(err, errlen,
                "plot_figure: canvas %dx%d does not fit %d panel(s) (need width 320..%d and "
                "170..%d pixels of height per panel)",
                w, h, npanels, MAX_SIDE, MAX_SIDE);
        return -1;
    }
    for (int i = 0; i < npanels; i++)
        if (panels[i].nseries < 0 || (panels[i].nseries > 0 && !panels[i].series)) {
            set_err(err, errlen, "plot_figure: panel %d has a bad series list", i);
            return -1;
        }
    return 0;
}

/* Lay the panels out with a shared left margin; legends go inside where they hide no
 * data, otherwise every legend goes in a column right of the plots (keeps x aligned). */
static void figure_layout(Panel *P, int np, const Canvas *cv, Layer *occ, int top) {
    int ph = (cv->h - top) / np, left = 0, right = 20, outside = 0, wmax = 0;
    for (int i = 0; i < np; i++) {
        panel_layout_v(&P[i], (Rect){0, top + i * ph, cv->w, top + (i + 1) * ph});
        left = imax(left, panel_left_need(&P[i], cv->font));
    }
    for (int pass = 0; pass < 2; pass++) {
        for (int i = 0; i < np; i++) {
            int w, h;
            legend_size(&P[i], cv->font, &w, &h);
            wmax = imax(wmax, w);
            panel_layout_h(&P[i], cv->font, left, right);
            panel_occupancy(&P[i], occ);
            place_divergences(&P[i], cv->font, occ);
            if (pass == 0)
                outside |= P[i].nleg > 0 && legend_inside(&P[i], occ, w, h) > 0;
            else
                P[i].legend = rect_make(P[i].plot.x1 + 16, P[i].plot.y0, w, h);
            layer_clear(occ);
        }
        if (!outside || cv->w - left - wmax - 36 < cv->w / 2) break;
        right = wmax + 28;
    }
}

int plot_figure(const char *path, const char *title, const PlotPanel *panels, int npanels,
                int width, int height, char *err, size_t errlen) {
    int w = width > 0 ? width : 1000, h = height > 0 ? height : 420 * (npanels > 0 ? npanels : 1);
    int top = title && *title ? 44 : 0;
    if (figure_check(path, panels, npanels, w, h, top, err, errlen)) return -1;
    Canvas cv;
    Layer L, occ;
    Panel *P = calloc((size_t)npanels, sizeof *P);
    int rc = P ? canvas_init(&cv, &L, &occ, w, h, err, errlen) : -1;
    if (!P) set_err(err, errlen, "plot: out of memory");
    for (int i = 0; rc == 0 && i < npanels; i++) rc = panel_prepare(&P[i], &panels[i], err, errlen);
    if (rc == 0) {
        text_draw(&cv, title, FONT_FIGTITLE, w / 2.0, 30, 0.5, INK);
        figure_layout(P, npanels, &cv, &occ, top);
        for (int i = 0; i < npanels; i++) panel_draw(&P[i], &cv, &L);
        rc = png_write(path, &cv, err, errlen);
    }
    for (int i = 0; P && i < npanels; i++) free(P[i].div), free(P[i].leg);
    free(P);
    if (P) canvas_free(&cv, &L, &occ);
    return rc;
}

/* ---- heatmap ---- */

/* matplotlib viridis at t = 0, 1/8, ..., 1 (van der Walt & Smith 2015). */
static Rgb viridis(double t) {
    static const unsigned char V[9][3] = {{68, 1, 84},    {71, 44, 122},  {59, 81, 139},
                                          {44, 113, 142}, {33, 145, 140}, {40, 174, 128},
                                          {94, 201, 98},  {173, 220, 48}, {253, 231, 37}};
    t = clampd(isfinite(t) ? t : 0, 0, 1) * 8;
    int i = imin((int)t, 7);
    double f = t - i;
    Rgb c;
    c.r = (unsigned char)lround(V[i][0] + f * (V[i + 1][0] - V[i][0]));
    c.g = (unsigned char)lround(V[i][1] + f * (V[i + 1][1] - V[i][1]));
    c.b = (unsigned char)lround(V[i][2] + f * (V[i + 1][2] - V[i][2]));
    return c;
}

/* The colour scale: range in scale units (log10 on a log scale), and what was seen. */
typedef struct Heat {
    Axis ax;
    int nonfinite, nonpos;
} Heat;

static void heat_scale(Heat *hs, const double *v, size_t n, int logscale) {
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

static Rgb heat_colour(const Heat *hs, double v) {
    if (!isfinite(v)) return RED;
    if (hs->ax.log && v <= 0) return NONPOS;
    return viridis(axis_frac(&hs->ax, v));
}

/* Value shown for a block of cells: non-finite if any is, else the largest (a spike in
 * one step stays visible when several steps share a pixel). */
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

void plot_heatmap_size(int rows, int *width, int *height) {
    int ph = imax(160, imin(rows * 22, 560));
    *width = 1000;
    *height = 52 + ph + 92;
}

/* First pixel row of matrix row r (pixel y shows row floor((y - y0) * rows / height)). */
static int row_top(int r, int rows, Rect p) {
    return p.y0 + (int)ceil((double)r * (p.y1 - p.y0) / rows);
}

static void heat_cells(Canvas *cv, const Heat *hs, Rect p, const double *values, int rows,
                       int cols) {
    int pw = p.x1 - p.x0, ph = p.y1 - p.y0;
    for (int y = 0; y < ph; y++) {
        int r0 = (int)((double)y * rows / ph),
            r1 = imax(r0 + 1, (int)((double)(y + 1) * rows / ph));
        for (int x = 0; x < pw; x++) {
            int c0 = (int)((double)x * cols / pw),
                c1 = imax(c0 + 1, (int)((double)(x + 1) * cols / pw));
            double v = heat_block(values, cols, r0, imin(r1, rows), c0, imin(c1, cols));
            blend(cv, p.x0 + x, p.y0 + y, heat_colour(hs, v), 1);
        }
    }
    if (ph / rows >= 10)
        for (int r = 1; r < rows; r++) {
            int y = row_top(r, rows, p);
            fill_rect(cv, (Rect){p.x0, y, p.x1, y + 1}, WHITE, 0.6);
        }
}

static void heat_row_labels(Canvas *cv, Rect p, const char *const *labels, int rows, int maxw) {
    double rh = (double)(p.y1 - p.y0) / rows;
    int every = imax(1, (int)ceil(18 / rh));
    for (int r = 0; r < rows; r += every) {
        char buf[64], lab[96];
        const char *s = labels && labels[r] ? labels[r] : (snprintf(buf, sizeof buf, "%d", r), buf);
        snprintf(lab, sizeof lab, "%s", s);
        for (size_t n = strlen(lab); n > 4 && text_width(cv->font, lab, FONT_TICK) > maxw; n--)
            snprintf(lab + n - 4, 5, "...");
        double yc = p.y0 + (r + 0.5) * rh;
        fill_rect(cv, (Rect){p.x0 - 6, (int)yc, p.x0 - 1, (int)yc + 1}, AXIS, 1);
        text_draw(cv, lab, FONT_TICK, p.x0 - 9, baseline_centred(yc, FONT_TICK), 1, INK);
    }
}

/* Pixel x of value v on a column axis whose columns have positions xs (increasing). */
static double heat_col_px(const double *xs, int cols, Rect p, double v) {
    int c = 0;
    while (c + 2 < cols && xs[c + 1] <= v) c++;
    double f = cols > 1 ? c + (v - xs[c]) / (xs[c + 1] - xs[c]) : 0;
    return p.x0 + (f + 0.5) * (p.x1 - p.x0) / cols;
}

static void heat_x_ticks(Canvas *cv, Rect p, const double *xs, int cols, const char *xlabel) {
    Axis ax = {0};
    ax.lo = xs[0], ax.hi = xs[cols - 1];
    if (cols > 1) axis_fit_ticks(&ax, cv->font, p.x1 - p.x0, cols);
    if (cols == 1) {
        char lab[32];
        snprintf(lab, sizeof lab, "%g", xs[0]);
        axis_add(&ax, xs[0], 1, lab);
    }
    for (int i = 0; i < ax.nt; i++)
        draw_x_tick(cv, p, (int)floor(heat_col_px(xs, cols, p, ax.t[i].v)), ax.t[i].label);
    text_draw(cv, xlabel, FONT_LABEL, (p.x0 + p.x1) / 2.0, p.y1 + 48, 0.5, INK);
}

static void heat_colorbar(Canvas *cv, Heat *hs, Rect bar) {
    int h = bar.y1 - bar.y0;
    for (int y = bar.y0; y < bar.y1; y++)
        fill_rect(cv, (Rect){bar.x0, y, bar.x1, y + 1}, viridis((bar.y1 - y - 0.5) / h), 1);
    frame_rect(cv, bar, AXIS);
    for (int i = 0; i < hs->ax.nt; i++) {
        const Tick *t = &hs->ax.t[i];
        int y = (int)floor(bar.y1 - (t->v - hs->ax.lo) / (hs->ax.hi - hs->ax.lo) * h);
        fill_rect(cv, (Rect){bar.x1 + 1, y, bar.x1 + (t->major > 0 ? 6 : 3), y + 1}, AXIS, 1);
        text_draw(cv, t->label, FONT_TICK, bar.x1 + 9, baseline_centred(y + 0.5, FONT_TICK), 0,
                  INK);
    }
}

/* Small legend note for the colours that are not on the colour bar, right-aligned at x. */
static void heat_note(Canvas *cv, const Heat *hs, int x, int y) {
    const struct {
        int on;
        Rgb c;
        const char *s;
    } items[2] = {{hs->nonfinite, RED, "non-finite (NaN/inf)"},
                  {hs->nonpos, NONPOS, "<= 0 (log scale)"}};
    for (int i = 1; i >= 0; i--) {
        if (!items[i].on) continue;
        x -= (int)ceilf(text_width(cv->font, items[i].s, FONT_NOTE));
        text_draw(cv, items[i].s, FONT_NOTE, x, baseline_centred(y, FONT_NOTE), 0, INK);
        x -= 20;
        fill_rect(cv, rect_make(x, y - 7, 14, 14), items[i].c, 1);
        frame_rect(cv, rect_make(x, y - 7, 14, 14), AXIS);
        x -= 22;
    }
}

static int heat_check(const char *path, int rows, int cols, const double *values, char *err,
                      size_t errlen) {
    if (!path || !*path) {
        set_err(err, errlen, "plot_heatmap: no output path");
        return -1;
    }
    if (rows < 1 || cols < 1 || !values || rows > 100000 || cols > 100000000 / rows) {
        set_err(err, errlen, "plot_heatmap: nothing sensible to draw (%d rows x %d columns) for %s",
                rows, cols, path);
        return -1;
    }
    return 0;
}

/* Column positions: x if given and strictly increasing, else 0, 1, 2, ... */
static double *heat_columns(const double *x, int cols) {
    double *xs = malloc((size_t)cols * sizeof *xs);
    int ok = x != NULL;
    for (int c = 0; ok && c < cols; c++) ok = isfinite(x[c]) && (c == 0 || x[c] > x[c - 1]);
    for (int c = 0; xs && c < cols; c++) xs[c] = ok ? x[c] : c;
    return xs;
}

static void heat_draw(Canvas *cv, const char *title, const char *xlabel,
                      const char *const *row_labels, int rows, const double *xs, int cols,
                      const double *values, int logscale) {
    Heat hs;
    int ph = cv->h - 52 - 92, maxw = 260, lw = 0;
    heat_scale(&hs, values, (size_t)rows * (size_t)cols, logscale);
    if (hs.ax.log)
        axis_log_ticks(&hs.ax, ph, 22);
    else
        axis_linear_ticks(&hs.ax, imax(2, ph / 40));
    for (int r = 0; r < rows && row_labels; r++)
        lw = imax(lw, (int)ceilf(text_width(cv->font, row_labels[r], FONT_TICK)));
    lw = imin(imax(lw, 24), maxw);
    int bw = (int)ceilf(axis_label_width(&hs.ax, cv->font, FONT_TICK));
    Rect p = {16 + lw + 12, 52, cv->w - 16 - bw - 10 - 18 - 24, 52 + ph};
    text_draw(cv, title, FONT_TITLE, (p.x0 + p.x1) / 2.0, 32, 0.5, INK);
    heat_cells(cv, &hs, p, values, rows, cols);
    frame_rect(cv, p, AXIS);
    heat_row_labels(cv, p, row_labels, rows, maxw);
    heat_x_ticks(cv, p, xs, cols, xlabel);
    heat_colorbar(cv, &hs, (Rect){p.x1 + 24, p.y0, p.x1 + 42, p.y1});
    heat_note(cv, &hs, p.x1, cv->h - 16);
}

int plot_heatmap(const char *path, const char *title, const char *xlabel,
                 const char *const *row_labels, int rows, const double *x, int cols,
                 const double *values, int logscale, char *err, size_t errlen) {
    if (heat_check(path, rows, cols, values, err, errlen)) return -1;
    int w, h;
    plot_heatmap_size(rows, &w, &h);
    Canvas cv;
    Layer L;
    double *xs = heat_columns(x, cols);
    int rc = xs ? canvas_init(&cv, &L, NULL, w, h, err, errlen) : -1;
    if (!xs) set_err(err, errlen, "plot: out of memory");
    if (rc == 0) {
        heat_draw(&cv, title, xlabel, row_labels, rows, xs, cols, values, logscale);
        rc = png_write(path, &cv, err, errlen);
    }
    if (xs) canvas_free(&cv, &L, NULL);
    free(xs);
    return rc;
}
