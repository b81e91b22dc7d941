/* provenance.c: what made a figure (the command, seed, commit, BLAS kernel), set once by
 * the program and carried by every PNG it writes afterwards: a footer under the figure
 * and the same keys as PNG text chunks (tEXt; iTXt for a value that is not ASCII),
 * checksummed with zlib's crc32. The state is per process (sweep workers are processes).
 * surface.c's PNG writer calls prov_footer and prov_chunks; nothing else here draws. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <zlib.h>

#include "plot_internal.h"

#define PROV_MAX 8
#define FOOT_LINES 12
#define FOOT_LINE_H 17

static char g_key[PROV_MAX][80];
static char *g_val[PROV_MAX];
static int g_n;

int plot_provenance(const char *key, const char *value) {
    size_t kl = key ? strlen(key) : 0;
    if (kl < 1 || kl > 79) return -1;
    for (size_t i = 0; i < kl; i++)
        if ((unsigned char)key[i] < 32 || (unsigned char)key[i] > 126) return -1;
    int i = 0;
    while (i < g_n && strcmp(g_key[i], key)) i++;
    if (!value) { /* remove, keeping the others' order */
        if (i == g_n) return 0;
        free(g_val[i]);
        for (; i + 1 < g_n; i++) memcpy(g_key[i], g_key[i + 1], 80), g_val[i] = g_val[i + 1];
        g_n--;
        return 0;
    }
    if (i == PROV_MAX) return -1;
    char *v = strdup(value);
    if (!v) return -1;
    if (i == g_n) memcpy(g_key[g_n++], key, kl + 1);
    else free(g_val[i]);
    g_val[i] = v;
    return 0;
}

/* The footer's lines: "Key: value" items three spaces apart, wrapped at spaces to width
 * pixels (a word longer than a line gets a line of its own). Returns how many. */
static int footer_lines(Canvas *cv, double width, char lines[FOOT_LINES][1024]) {
    char all[4096] = "";
    size_t k = 0;
    for (int i = 0; i < g_n && k < sizeof all; i++)
        k += (size_t)snprintf(all + k, sizeof all - k, "%s%s: %s", i ? "   " : "", g_key[i], g_val[i]);
    int n = 0;
    size_t ll = 0; /* length of lines[n] */
    lines[0][0] = '\0';
    for (char *w = all; *w && n < FOOT_LINES;) {
        char *e = strchr(w + 1, ' ');
        size_t wl = e ? (size_t)(e - w) : strlen(w);
        if (ll + wl >= 1024) wl = 1023 - ll;
        memcpy(lines[n] + ll, w, wl);
        lines[n][ll + wl] = '\0';
        if (ll > 0 && text_width(cv, lines[n], FONT_NOTE) > width) { /* the word starts a line */
            lines[n][ll] = '\0';
            if (++n == FOOT_LINES) break;
            while (*w == ' ') w++, wl--;
            memcpy(lines[n], w, wl);
            lines[n][wl] = '\0';
            ll = wl;
        } else {
            ll += wl;
        }
        w += wl;
        if (wl == 0) break;
    }
    return n < FOOT_LINES ? n + 1 : FOOT_LINES;
}

int prov_footer(PlotImage *im, char *err, size_t errlen) {
    if (g_n == 0) return 0;
    static char lines[FOOT_LINES][1024];
    PlotImage scratch = {0}, out = {0};
    Canvas cv;
    if (canvas_begin(&cv, &scratch, 1, 1, err, errlen)) return -1;
    int n = footer_lines(&cv, im->w - 20, lines);
    canvas_end(&cv, 0, NULL, 0);
    plot_image_free(&scratch);
    int h = im->h + 10 + n * FOOT_LINE_H;
    if (h > MAX_SIDE) h = MAX_SIDE;
    if (canvas_begin(&cv, &out, im->w, h, err, errlen)) return -1;
    cairo_surface_flush(cv.s);
    for (int y = 0; y < im->h && y < h; y++)
        memcpy((unsigned char *)out.px + (size_t)y * (size_t)out.stride,
               (const unsigned char *)im->px + (size_t)y * (size_t)im->stride, (size_t)im->w * 4);
    cairo_surface_mark_dirty(cv.s);
    fill_rect(&cv, (Rect){10, im->h + 2, im->w - 10, im->h + 3}, C_GRID, 1);
    for (int i = 0; i < n; i++)
        text_draw(&cv, lines[i], FONT_NOTE, 10, im->h + 6 + (i + 1) * FOOT_LINE_H - 4, 0, C_AXIS);
    int rc = canvas_end(&cv, 0, err, errlen);
    if (rc == 0) {
        plot_image_free(im);
        *im = out;
    } else {
        plot_image_free(&out);
    }
    return rc;
}

static void put_be32(unsigned char *p, uint32_t v) {
    p[0] = (unsigned char)(v >> 24), p[1] = (unsigned char)(v >> 16);
    p[2] = (unsigned char)(v >> 8), p[3] = (unsigned char)v;
}

/* One chunk: length, type, data, CRC-32 of type and data (PNG spec 5.3). */
static int write_chunk(FILE *f, const char *type, const unsigned char *data, size_t n) {
    unsigned char head[8], crc[4];
    put_be32(head, (uint32_t)n);
    memcpy(head + 4, type, 4);
    uLong c = crc32(0L, Z_NULL, 0);
    c = crc32(c, head + 4, 4);
    if (n) c = crc32(c, data, (uInt)n);
    put_be32(crc, (uint32_t)c);
    return fwrite(head, 1, 8, f) == 8 && (!n || fwrite(data, 1, n, f) == n) &&
           fwrite(crc, 1, 4, f) == 4 ? 0 : -1;
}

int prov_chunks(FILE *f) {
    for (int i = 0; i < g_n; i++) {
        size_t kl = strlen(g_key[i]), vl = strlen(g_val[i]);
        int ascii = 1;
        for (size_t j = 0; j < vl; j++) ascii &= (unsigned char)g_val[i][j] < 128;
        /* tEXt: keyword NUL text; iTXt: keyword NUL, flag 0, method 0, "" NUL, "" NUL, UTF-8 */
        size_t n = kl + 1 + (ascii ? 0 : 4) + vl;
        unsigned char *d = malloc(n), *p = d;
        if (!d) return -1;
        memcpy(p, g_key[i], kl + 1), p += kl + 1;
        if (!ascii) *p++ = 0, *p++ = 0, *p++ = 0, *p++ = 0;
        memcpy(p, g_val[i], vl);
        int rc = write_chunk(f, ascii ? "tEXt" : "iTXt", d, n);
        free(d);
        if (rc) return -1;
    }
    return 0;
}
