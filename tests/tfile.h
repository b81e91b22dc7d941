/* tfile.h: read the named arrays that the reference scripts in tests/ref/ write (format in tfile.py).
 * Header-only, for tests. tfile_get() fails the current Criterion test when a
 * name is missing, so a stale or absent fixture is a failure, never a skip. */
#ifndef CLIPLAB_TESTS_TFILE_H
#define CLIPLAB_TESTS_TFILE_H

#include <criterion/criterion.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct {
    char name[128];
    int dtype; /* 0 f32, 1 i32, 2 f64 */
    int ndim;
    int shape[8];
    size_t n;
    void *data;
} TRec;

typedef struct {
    TRec *recs;
    int count;
} TFile;

static inline const char *tfile_dir(void) {
    const char *d = getenv("CLIPLAB_REF_DIR");
    return d && *d ? d : "build/ref";
}

static inline uint32_t tfile_u32(FILE *f) {
    uint32_t v = 0;
    if (fread(&v, 4, 1, f) != 1) cr_assert_fail("truncated fixture");
    return v;
}

/* Load build/ref/<stem>.bin (CLIPLAB_REF_DIR overrides the folder). */
static inline TFile *tfile_load(const char *stem) {
    char path[512];
    snprintf(path, sizeof path, "%s/%s.bin", tfile_dir(), stem);
    FILE *f = fopen(path, "rb");
    cr_assert(f, "cannot open PyTorch fixture %s (run the reference script tests/ref/%s.py)",
              path, stem);
    char magic[4];
    cr_assert(fread(magic, 1, 4, f) == 4 && memcmp(magic, "CLTF", 4) == 0, "%s: bad magic",
              path);
    TFile *tf = calloc(1, sizeof *tf);
    tf->count = (int)tfile_u32(f);
    tf->recs = calloc((size_t)tf->count, sizeof *tf->recs);
    for (int i = 0; i < tf->count; i++) {
        TRec *r = &tf->recs[i];
        uint32_t len = tfile_u32(f);
        cr_assert(len < sizeof r->name, "name too long");
        cr_assert(fread(r->name, 1, len, f) == len);
        r->dtype = (int)tfile_u32(f);
        r->ndim = (int)tfile_u32(f);
        r->n = 1;
        for (int d = 0; d < r->ndim; d++) {
            r->shape[d] = (int)tfile_u32(f);
            r->n *= (size_t)r->shape[d];
        }
        size_t es = r->dtype == 2 ? 8 : 4;
        r->data = malloc(r->n * es + 1);
        cr_assert(fread(r->data, es, r->n, f) == r->n, "%s: truncated record %s", path, r->name);
    }
    fclose(f);
    return tf;
}

static inline const TRec *tfile_get(const TFile *tf, const char *name) {
    for (int i = 0; i < tf->count; i++)
        if (strcmp(tf->recs[i].name, name) == 0) return &tf->recs[i];
    cr_assert_fail("fixture has no array named %s", name);
    return NULL;
}

static inline float *tfile_f32(const TFile *tf, const char *name) {
    const TRec *r = tfile_get(tf, name);
    cr_assert(r->dtype == 0, "%s is not float32", name);
    return (float *)r->data;
}

static inline int *tfile_i32(const TFile *tf, const char *name) {
    const TRec *r = tfile_get(tf, name);
    cr_assert(r->dtype == 1, "%s is not int32", name);
    return (int *)r->data;
}

static inline double *tfile_f64(const TFile *tf, const char *name) {
    const TRec *r = tfile_get(tf, name);
    cr_assert(r->dtype == 2, "%s is not float64", name);
    return (double *)r->data;
}

static inline void tfile_free(TFile *tf) {
    for (int i = 0; i < tf->count; i++) free(tf->recs[i].data);
    free(tf->recs);
    free(tf);
}

/* Assert |a-b| <= atol + rtol*|b| elementwise; reports the worst element. */
static inline void assert_close(const float *a, const float *b, size_t n, double atol,
                                double rtol, const char *what) {
    size_t worst = 0;
    double worst_excess = -1e300;
    for (size_t i = 0; i < n; i++) {
        double diff = fabs((double)a[i] - (double)b[i]);
        double tol = atol + rtol * fabs((double)b[i]);
        if (!(diff <= tol) && isnan(diff)) {
            worst = i;
            worst_excess = INFINITY;
            break;
        }
        if (diff - tol > worst_excess) {
            worst_excess = diff - tol;
            worst = i;
        }
    }
    cr_assert(n == 0 || worst_excess <= 0.0,
              "%s: element %zu: got %.9g, expected %.9g (|diff| %.3g > atol %.1g + rtol %.1g*|b|)",
              what, worst, (double)a[worst], (double)b[worst],
              fabs((double)a[worst] - (double)b[worst]), atol, rtol);
}

#endif
