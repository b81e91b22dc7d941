/* test_clip.c: the clipping library (src/clip.c) against PyTorch, optax and the
 * ZClip / AdaGC reference algorithms, through fixtures written by
 * tests/ref/ref_clip.py (see its docstring for what each array holds).
 *
 * Tolerances, |a-b| <= atol + rtol*|b|:
 *  - our norms are accumulated in double: 1e-12 relative to the exact float64
 *    norm (numpy); against PyTorch's float32 norm 1e-5 (its own rounding).
 *  - gradients we clip with our own norm: 1e-5 relative to PyTorch's, whose
 *    float32 total (and so coefficient) is off by up to ~1e-6 for p = 0.5;
 *    fed PyTorch's own total, the result must be bit-identical.
 *  - AGC: 1e-6 relative to optax's formula in float64 (we round the unit
 *    coefficient to float32 and multiply in float32: <= 2 ulp).
 *  - ZClip / AdaGC / auto: the references run in float32 (torch); decisions are
 *    kept 1e-4 away from their boundaries by the fixture script, so flags must
 *    match exactly and values to 1e-5 relative. */
#include <criterion/criterion.h>
#include <math.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>

#include "clip.h"
#include "tfile.h"

#define MAXT 16

/* Views over a private copy of `src`, split by `sizes`. */
typedef struct {
    ClipTensor t[MAXT];
    float *buf;
    int count;
    size_t total;
} Views;

static Views views_make(const float *src, const int *sizes, int count) {
    Views v = {.count = count};
    cr_assert(count <= MAXT);
    for (int i = 0; i < count; i++) v.total += (size_t)sizes[i];
    v.buf = malloc(v.total * sizeof(float) + 1);
    memcpy(v.buf, src, v.total * sizeof(float));
    size_t off = 0;
    for (int i = 0; i < count; i++) {
        v.t[i] = (ClipTensor){v.buf + off, NULL, (size_t)sizes[i], 0};
        off += (size_t)sizes[i];
    }
    return v;
}

static void views_load(Views *v, const float *src) {
    memcpy(v->buf, src, v->total * sizeof(float));
}

static int nsizes(const TFile *f, const char *name) { return (int)tfile_get(f, name)->n; }

static void assert_bits(const float *a, const float *b, size_t n, const char *what) {
    for (size_t i = 0; i < n; i++)
        cr_assert(memcmp(&a[i], &b[i], sizeof(float)) == 0,
                  "%s: element %zu differs: %.9g vs %.9g", what, i, (double)a[i], (double)b[i]);
}

/* NaN exactly where the reference has NaN; elsewhere equal values, same sign of zero. */
static void assert_same_nonfinite(const float *a, const float *b, size_t n, const char *what) {
    for (size_t i = 0; i < n; i++) {
        cr_assert(isnan(a[i]) == isnan(b[i]), "%s: NaN mismatch at %zu: %g vs %g", what, i,
                  (double)a[i], (double)b[i]);
        if (!isnan(a[i]))
            cr_assert(a[i] == b[i] && signbit(a[i]) == signbit(b[i]),
                      "%s: element %zu: %.9g vs %.9g", what, i, (double)a[i], (double)b[i]);
    }
}

static void assert_near(double a, double b, double atol, double rtol, const char *what, int k) {
    if (isnan(b)) {
        cr_assert(isnan(a), "%s[%d]: got %.17g, expected NaN", what, k, a);
        return;
    }
    if (isinf(b)) {
        cr_assert(a == b, "%s[%d]: got %.17g, expected %g", what, k, a, b);
        return;
    }
    cr_assert(fabs(a - b) <= atol + rtol * fabs(b), "%s[%d]: got %.17g, expected %.17g", what,
              k, a, b);
}

static const char *ptag[] = {"0p5", "1", "2", "3", "inf"};
static const double pval[] = {0.5, 1, 2, 3, INFINITY};

static double f64(const TFile *f, const char *fmt, const char *tag) {
    char name[96];
    snprintf(name, sizeof name, fmt, tag);
    return tfile_f64(f, name)[0];
}

static const float *f32(const TFile *f, const char *fmt, const char *tag) {
    char name[96];
    snprintf(name, sizeof name, fmt, tag);
    return tfile_f32(f, name);
}

/* ---------------------------------------------------------------- total norm */

Test(clip, total_norm_matches_exact_and_torch) {
    TFile *f = tfile_load("ref_clip");
    Views v = views_make(tfile_f32(f, "gn_in"), tfile_i32(f, "gn_sizes"), nsizes(f, "gn_sizes"));
    for (int k = 0; k < 5; k++) {
        double ours = clip_total_norm(v.t, v.count, pval[k]);
        double exact = f64(f, "gn_exact_%s@f64", ptag[k]);
        double torch = f32(f, "gn_torch_norm_%s", ptag[k])[0];
        assert_near(ours, exact, 0, isinf(pval[k]) ? 0 : 1e-12, "norm vs exact", k);
        assert_near(ours, torch, 0, isinf(pval[k]) ? 0 : 1e-5, "norm vs torch", k);
    }
    free(v.buf);
    tfile_free(f);
}

/* Norm of norms, overflow-safe for large p: all-equal entries give v * n^(1/p). */
Test(clip, total_norm_large_p_no_overflow) {
    float big[4] = {1e30f, -1e30f, 1e30f, 1e30f}, tiny[3] = {1e-30f, 1e-30f, -1e-30f};
    ClipTensor t[2] = {{big, NULL, 4, 0}, {big, NULL, 4, 0}};
    double p = 20;
    assert_near(clip_total_norm(t, 1, p), 1e30f * pow(4, 1 / p), 0, 1e-12, "p=20 big", 0);
    assert_near(clip_total_norm(t, 2, p), 1e30f * pow(8, 1 / p), 0, 1e-12, "p=20 two", 0);
    ClipTensor s = {tiny, NULL, 3, 0};
    assert_near(clip_total_norm(&s, 1, p), 1e-30f * pow(3, 1 / p), 0, 1e-12, "p=20 tiny", 0);
    assert_near(clip_total_norm(&s, 1, 0.25), 1e-30f * pow(3, 4), 0, 1e-12, "p=0.25 tiny", 0);
}

/* ---------------------------------------------------------------- clip_grad_norm */

Test(clip, grad_norm_above_threshold_matches_torch) {
    TFile *f = tfile_load("ref_clip");
    const float *in = tfile_f32(f, "gn_in");
    Views v = views_make(in, tfile_i32(f, "gn_sizes"), nsizes(f, "gn_sizes"));
    for (int k = 0; k < 5; k++) {
        views_load(&v, in);
        double max = f64(f, "gn_max_above_%s@f64", ptag[k]);
        double norm = clip_grad_norm(v.t, v.count, max, pval[k]);
        assert_near(norm, f64(f, "gn_exact_%s@f64", ptag[k]), 0, 1e-12, "returned norm", k);
        assert_close(v.buf, f32(f, "gn_out_above_%s", ptag[k]), v.total, 0, 1e-5, ptag[k]);
        double post = clip_total_norm(v.t, v.count, pval[k]);
        assert_near(post, max, 0, 1e-5, "post-clip norm", k);
    }
    free(v.buf);
    tfile_free(f);
}

/* Given PyTorch's own float32 total, the float32 coefficient and the float32
 * products are PyTorch's: bit-identical gradients. */
Test(clip, grads_with_torch_norm_bit_identical) {
    TFile *f = tfile_load("ref_clip");
    const float *in = tfile_f32(f, "gn_in");
    Views v = views_make(in, tfile_i32(f, "gn_sizes"), nsizes(f, "gn_sizes"));
    for (int k = 0; k < 5; k++) {
        views_load(&v, in);
        clip_grads_with_norm(v.t, v.count, f64(f, "gn_max_above_%s@f64", ptag[k]),
                             f32(f, "gn_torch_norm_%s", ptag[k])[0]);
        assert_bits(v.buf, f32(f, "gn_out_above_%s", ptag[k]), v.total, ptag[k]);
    }
    free(v.buf);
    tfile_free(f);
}

Test(clip, grad_norm_below_threshold_untouched) {
    TFile *f = tfile_load("ref_clip");
    const float *in = tfile_f32(f, "gn_in");
    Views v = views_make(in, tfile_i32(f, "gn_sizes"), nsizes(f, "gn_sizes"));
    for (int k = 0; k < 5; k++) {
        views_load(&v, in);
        clip_grad_norm(v.t, v.count, f64(f, "gn_max_below_%s@f64", ptag[k]), pval[k]);
        assert_bits(v.buf, in, v.total, "below: vs input");
        assert_bits(v.buf, f32(f, "gn_out_below_%s", ptag[k]), v.total, "below: vs torch");
    }
    free(v.buf);
    tfile_free(f);
}

Test(clip, zero_grads_max_norm_zero_no_nan) {
    TFile *f = tfile_load("ref_clip");
    const int *sizes = tfile_i32(f, "gn_sizes");
    int count = nsizes(f, "gn_sizes");
    for (int k = 0; k < 5; k++) {
        const float *want = f32(f, "gn_zero_out_%s", ptag[k]);
        Views v = views_make(want, sizes, count); /* torch's output is all zeros: same input */
        for (size_t i = 0; i < v.total; i++) cr_assert(want[i] == 0);
        double norm = clip_grad_norm(v.t, v.count, 0.0, pval[k]);
        cr_assert(norm == 0 && f32(f, "gn_zero_norm_%s", ptag[k])[0] == 0);
        assert_bits(v.buf, want, v.total, "zero grads");
        free(v.buf);
    }
    tfile_free(f);
}

Test(clip, nonfinite_entries_match_torch) {
    TFile *f = tfile_load("ref_clip");
    const int *sizes = tfile_i32(f, "gn_sizes");
    int count = nsizes(f, "gn_sizes");
    const char *kinds[] = {"inf", "nan", "both"};
    for (int c = 0; c < 3; c++) {
        char name[64];
        snprintf(name, sizeof name, "gn_%s_in", kinds[c]);
        const float *in = tfile_f32(f, name);
        for (int k = 0; k < 5; k++) {
            Views v = views_make(in, sizes, count);
            double norm = clip_grad_norm(v.t, v.count, 1.0, pval[k]);
            snprintf(name, sizeof name, "gn_%s_norm_%%s", kinds[c]);
            double torch = f32(f, name, ptag[k])[0];
            cr_assert(isnan(norm) == isnan(torch) && isinf(norm) == isinf(torch),
                      "%s p=%s: norm %g, torch %g", kinds[c], ptag[k], norm, torch);
            snprintf(name, sizeof name, "gn_%s_out_%%s", kinds[c]);
            assert_same_nonfinite(v.buf, f32(f, name, ptag[k]), v.total, kinds[c]);
            free(v.buf);
        }
    }
    tfile_free(f);
}

/* ---------------------------------------------------------------- clip_grad_value */

Test(clip, grad_value_matches_torch) {
    TFile *f = tfile_load("ref_clip");
    const char *tags[] = {"pos", "neg", "zero"};
    for (int k = 0; k < 3; k++) {
        Views v = views_make(tfile_f32(f, "cv_in"), tfile_i32(f, "cv_sizes"),
                             nsizes(f, "cv_sizes"));
        clip_grad_value(v.t, v.count, f64(f, "cv_v_%s@f64", tags[k]));
        assert_same_nonfinite(v.buf, f32(f, "cv_out_%s", tags[k]), v.total, tags[k]);
        free(v.buf);
    }
    tfile_free(f);
}

/* ---------------------------------------------------------------- per-tensor norm */

Test(clip, per_tensor_matches_torch_each_tensor) {
    TFile *f = tfile_load("ref_clip");
    const char *tags[] = {"1", "2", "inf"};
    const double ps[] = {1, 2, INFINITY};
    const float *in = tfile_f32(f, "pt_in");
    for (int k = 0; k < 3; k++) {
        Views v = views_make(in, tfile_i32(f, "pt_sizes"), nsizes(f, "pt_sizes"));
        const float *norms = f32(f, "pt_norms_%s", tags[k]);
        double want = 0;
        for (int i = 0; i < v.count; i++) want = norms[i] > want ? norms[i] : want;
        double got = clip_grad_norm_per_tensor(v.t, v.count, 0.5, ps[k]);
        assert_near(got, want, 0, 1e-5, "largest tensor norm", k);
        assert_close(v.buf, f32(f, "pt_out_%s", tags[k]), v.total, 0, 1e-5, tags[k]);
        cr_assert(norms[0] < 0.5 && norms[3] > 0.5, "fixture: one tensor below, one above");
        assert_bits(v.t[0].grad, in, v.t[0].n, "tensor below its threshold untouched");
        free(v.buf);
    }
    tfile_free(f);
}

/* ---------------------------------------------------------------- AGC */

Test(clip, agc_matches_optax) {
    TFile *f = tfile_load("ref_clip");
    const float *in = tfile_f32(f, "agc_grad"), *w = tfile_f32(f, "agc_param");
    const float *want = tfile_f32(f, "agc_out");
    const int *rows = tfile_i32(f, "agc_rows");
    const double *hp = tfile_f64(f, "agc_hp@f64");
    Views v = views_make(in, tfile_i32(f, "agc_sizes"), nsizes(f, "agc_sizes"));
    for (int i = 0; i < v.count; i++) {
        v.t[i].param = w + (v.t[i].grad - v.buf);
        v.t[i].rows = (size_t)rows[i];
    }
    clip_agc(v.t, v.count, hp[0], hp[1]);
    assert_close(v.buf, want, v.total, 0, 1e-6, "agc");
    int kept = 0, changed = 0; /* units optax left alone stay bit-identical */
    for (int i = 0; i < v.count; i++) {
        size_t m = v.t[i].n / (size_t)rows[i];
        for (int u = 0; u < rows[i]; u++) {
            size_t o = (size_t)(v.t[i].grad - v.buf) + (size_t)u * m;
            if (memcmp(in + o, want + o, m * sizeof(float)) == 0) {
                assert_bits(v.buf + o, in + o, m, "unclipped unit");
                kept++;
            } else {
                changed++;
            }
        }
    }
    cr_assert(kept >= 3 && changed >= 3, "fixture exercises both branches (%d kept, %d clipped)",
              kept, changed);
    free(v.buf);
    tfile_free(f);
}

/* ---------------------------------------------------------------- ZClip */

static void run_zclip(int k) {
    TFile *f = tfile_load("ref_clip");
    char nm[64];
#define ZC(suffix) (snprintf(nm, sizeof nm, "zc%d_" suffix, k), nm)
    const double *hp = tfile_f64(f, ZC("hp@f64"));
    const int *ip = tfile_i32(f, ZC("ip"));
    ClipZClipParams p = {.alpha = hp[0], .z_thresh = hp[1], .max_grad_norm = hp[2],
                         .eps = hp[3], .clip_factor = hp[4], .warmup_steps = ip[0],
                         .mode = ip[1], .clip_option = ip[2], .skip_update_on_spike = ip[3]};
    const double *norm = tfile_f64(f, ZC("norm@f64")), *thr = tfile_f64(f, ZC("thr@f64"));
    const double *mean = tfile_f64(f, ZC("mean@f64")), *var = tfile_f64(f, ZC("var@f64"));
    const int *spike = tfile_i32(f, ZC("spike"));
    const float *out = tfile_f32(f, ZC("out")), *seq = tfile_f32(f, "seq_in");
    int steps = tfile_get(f, ZC("norm@f64"))->shape[0];
#undef ZC
    Views v = views_make(seq, tfile_i32(f, "seq_sizes"), nsizes(f, "seq_sizes"));
    ClipZClip z;
    cr_assert(clip_zclip_init(&z, &p) == 0);
    int spikes = 0;
    for (int s = 0; s < steps; s++) {
        views_load(&v, seq + (size_t)s * v.total);
        double g = clip_zclip_step(&z, v.t, v.count);
        assert_near(g, norm[s], 0, 1e-6, "zclip norm", s);
        assert_near(z.last.threshold, thr[s], 0, 1e-5, "zclip threshold", s);
        cr_assert((!isnan(z.clip_val)) == spike[s], "zclip spike flag at step %d", s);
        cr_assert(z.last.clipped == (norm[s] > thr[s]), "zclip clipped flag at step %d", s);
        assert_near(z.initialized ? z.mean : NAN, mean[s], 0, 1e-5, "zclip mean", s);
        assert_near(z.initialized ? z.var : NAN, var[s], 1e-12, 1e-5, "zclip var", s);
        assert_close(v.buf, out + (size_t)s * v.total, v.total, 1e-8, 1e-5, "zclip grads");
        assert_near(z.last.post_norm, clip_total_norm(v.t, v.count, 2), 0, 1e-5, "post", s);
        spikes += spike[s];
    }
    cr_assert(spikes >= 3);
    clip_zclip_free(&z);
    free(v.buf);
    tfile_free(f);
}

Test(clip, zclip_defaults_match_reference) { run_zclip(0); }
Test(clip, zclip_no_cap) { run_zclip(1); }
Test(clip, zclip_percentile_mode) { run_zclip(2); }
Test(clip, zclip_mean_option_cap2) { run_zclip(3); }
Test(clip, zclip_skip_update_clip_factor) { run_zclip(4); }
Test(clip, zclip_warmup_zero) { run_zclip(5); }
Test(clip, zclip_alpha_zthresh_eps) { run_zclip(6); }
Test(clip, zclip_cap_below_spike_threshold) { run_zclip(7); }

Test(clip, zclip_defaults_are_the_papers) {
    ClipZClipParams d = clip_zclip_defaults();
    cr_assert(d.alpha == 0.97 && d.z_thresh == 2.5 && d.max_grad_norm == 1.0 && d.eps == 1e-6 &&
              d.warmup_steps == 25 && d.mode == CLIP_ZCLIP_ZSCORE &&
              d.clip_option == CLIP_ZCLIP_ADAPTIVE_SCALING && d.clip_factor == 1.0 &&
              !d.skip_update_on_spike);
    ClipZClip z;
    d.alpha = 1.5;
    cr_assert(clip_zclip_init(&z, &d) == -1);
    d = clip_zclip_defaults();
    d.max_grad_norm = NAN;
    cr_assert(clip_zclip_init(&z, &d) == -1);
}

/* ---------------------------------------------------------------- AdaGC */

static void run_adagc(int k) {
    TFile *f = tfile_load("ref_clip");
    char nm[64];
#define AG(suffix) (snprintf(nm, sizeof nm, "ag%d_" suffix, k), nm)
    const double *hp = tfile_f64(f, AG("hp@f64"));
    ClipAdaGCParams p = {.beta = hp[0], .lambda_rel = hp[1], .lambda_abs = hp[2],
                         .warmup_steps = tfile_i32(f, AG("warmup"))[0]};
    const double *norm = tfile_f64(f, AG("norm@f64")), *gamma = tfile_f64(f, AG("gamma@f64"));
    const int *nclip = tfile_i32(f, AG("nclip"));
    const float *out = tfile_f32(f, AG("out")), *seq = tfile_f32(f, "seq_in");
    int steps = tfile_get(f, AG("norm@f64"))->shape[0];
#undef AG
    Views v = views_make(seq, tfile_i32(f, "seq_sizes"), nsizes(f, "seq_sizes"));
    ClipAdaGC a;
    cr_assert(clip_adagc_init(&a, &p, v.count) == 0);
    int clips = 0;
    for (int s = 0; s < steps; s++) {
        views_load(&v, seq + (size_t)s * v.total);
        double g = clip_adagc_step(&a, v.t, v.count);
        assert_near(g, norm[s], 0, 1e-6, "adagc norm", s);
        cr_assert(a.last.warmup == (s < p.warmup_steps), "warm-up flag at step %d", s);
        if (!a.last.warmup) cr_assert(a.last.clipped == nclip[s], "tensors clipped at step %d", s);
        for (int i = 0; i < v.count; i++)
            assert_near(a.gamma[i], gamma[(size_t)s * v.count + i], 0, 1e-5, "adagc gamma", s);
        assert_close(v.buf, out + (size_t)s * v.total, v.total, 1e-8, 1e-5, "adagc grads");
        assert_near(a.last.post_norm, clip_total_norm(v.t, v.count, 2), 0, 1e-5, "post", s);
        clips += nclip[s];
    }
    cr_assert(clips >= 3);
    clip_adagc_free(&a);
    free(v.buf);
    tfile_free(f);
}

Test(clip, adagc_defaults_match_reference) { run_adagc(0); }
Test(clip, adagc_short_warmup) { run_adagc(1); }
Test(clip, adagc_no_warmup) { run_adagc(2); }

Test(clip, adagc_defaults_are_the_papers) {
    ClipAdaGCParams d = clip_adagc_defaults();
    cr_assert(d.beta == 0.98 && d.lambda_rel == 1.05 && d.lambda_abs == 1.0 &&
              d.warmup_steps == 100);
    ClipAdaGC a;
    d.beta = 1.0;
    cr_assert(clip_adagc_init(&a, &d, 3) == -1);
    cr_assert(clip_adagc_init(&a, NULL, -1) == -1);
}

/* ---------------------------------------------------------------- auto threshold */

Test(clip, auto_threshold_is_numpy_percentile_then_torch_clip) {
    TFile *f = tfile_load("ref_clip");
    const double *hp = tfile_f64(f, "au_hp@f64"), *norm = tfile_f64(f, "au_norm@f64");
    int warm = tfile_i32(f, "au_warmup")[0];
    const float *out = tfile_f32(f, "au_out"), *seq = tfile_f32(f, "seq_in");
    int steps = tfile_get(f, "au_norm@f64")->shape[0];
    Views v = views_make(seq, tfile_i32(f, "seq_sizes"), nsizes(f, "seq_sizes"));
    ClipAuto a;
    ClipAutoParams p = clip_auto_defaults();
    cr_assert(p.warmup_steps == warm && p.percentile == hp[0] && p.norm_type == 2);
    cr_assert(clip_auto_init(&a, NULL) == 0);
    int clipped = 0;
    for (int s = 0; s < steps; s++) {
        views_load(&v, seq + (size_t)s * v.total);
        double g = clip_auto_step(&a, v.t, v.count);
        assert_near(g, norm[s], 0, 1e-12, "auto norm", s);
        cr_assert(isnan(a.threshold) == (s < warm - 1), "threshold chosen at the end of warm-up");
        if (s >= warm - 1) assert_near(a.threshold, hp[1], 0, 1e-12, "auto threshold", s);
        assert_close(v.buf, out + (size_t)s * v.total, v.total, 1e-8, 1e-5, "auto grads");
        if (s < warm) assert_bits(v.buf, seq + (size_t)s * v.total, v.total, "warm-up unclipped");
        clipped += a.last.clipped;
    }
    cr_assert(clipped >= 3);
    clip_auto_free(&a);
    free(v.buf);
    tfile_free(f);
}

/* clip_percentile is numpy.percentile to the bit, directly and through ClipAuto
 * fed single-element tensors whose norm is exactly the sample value. */
Test(clip, percentile_bit_identical_to_numpy) {
    TFile *f = tfile_load("ref_clip");
    const double *q = tfile_f64(f, "pc_q@f64");
    int nq = (int)tfile_get(f, "pc_q@f64")->n;
    const char *ns[] = {"1", "2", "7", "100"};
    for (int c = 0; c < 4; c++) {
        char name[32];
        snprintf(name, sizeof name, "pc_x%s@f64", ns[c]);
        const TRec *rx = tfile_get(f, name);
        int n = (int)rx->n;
        snprintf(name, sizeof name, "pc_p%s@f64", ns[c]);
        const double *want = tfile_f64(f, name);
        double *tmp = malloc(sizeof(double) * (size_t)n);
        for (int j = 0; j < nq; j++) {
            memcpy(tmp, rx->data, sizeof(double) * (size_t)n);
            double got = clip_percentile(tmp, n, q[j]);
            cr_assert(got == want[j], "n=%d q=%g: %.17g vs numpy %.17g", n, q[j], got, want[j]);
        }
        ClipAuto a;
        ClipAutoParams p = {.warmup_steps = n, .percentile = 90, .norm_type = 2};
        cr_assert(clip_auto_init(&a, &p) == 0);
        for (int i = 0; i < n; i++) {
            float g = (float)((const double *)rx->data)[i];
            ClipTensor t = {&g, NULL, 1, 0};
            clip_auto_step(&a, &t, 1);
        }
        int j90 = 6; /* qs[6] == 90 */
        cr_assert(q[j90] == 90);
        cr_assert(a.threshold == want[j90], "ClipAuto n=%d: %.17g vs %.17g", n, a.threshold,
                  want[j90]);
        clip_auto_free(&a);
        free(tmp);
    }
    tfile_free(f);
}

/* ---------------------------------------------------------------- edge cases */

Test(clip, count_zero_and_empty_tensors) {
    for (int k = 0; k < 5; k++) {
        cr_assert(clip_total_norm(NULL, 0, pval[k]) == 0);
        cr_assert(clip_grad_norm(NULL, 0, 1.0, pval[k]) == 0);
        cr_assert(clip_grad_norm_per_tensor(NULL, 0, 1.0, pval[k]) == 0);
    }
    clip_grad_value(NULL, 0, 1.0);
    clip_agc(NULL, 0, 0.01, CLIP_AGC_EPS);
    clip_grads_with_norm(NULL, 0, 1.0, 5.0);
    /* n == 0 tensors (grad NULL allowed) do not change the norm or the result */
    float a[3] = {3, -4, 12}, b[3] = {3, -4, 12};
    ClipTensor t[3] = {{NULL, NULL, 0, 0}, {a, NULL, 3, 0}, {NULL, NULL, 0, 5}};
    for (int k = 0; k < 5; k++)
        assert_near(clip_total_norm(t, 3, pval[k]), clip_total_norm(&t[1], 1, pval[k]), 0, 0,
                    "empty tensors ignored", k);
    cr_assert(clip_total_norm(t, 3, 2) == 13 && clip_total_norm(t, 3, INFINITY) == 12);
    cr_assert(clip_total_norm(t, 3, 1) == 19);
    cr_assert(clip_grad_norm(t, 3, 26.0, 2) == 13);
    assert_bits(a, b, 3, "below threshold with empty tensors");
    float w[3] = {1, 1, 1};
    t[1].param = w; /* param may stay NULL where n == 0 */
    clip_agc(t, 3, 0.01, CLIP_AGC_EPS);
    cr_assert(fabs(clip_total_norm(&t[1], 1, 2) - 0.01 * sqrt(3.0)) < 1e-7);
}

Test(clip, stateful_with_no_tensors) {
    ClipZClip z;
    ClipAdaGC g;
    ClipAuto a;
    cr_assert(clip_zclip_init(&z, NULL) == 0 && clip_adagc_init(&g, NULL, 0) == 0 &&
              clip_auto_init(&a, NULL) == 0);
    for (int s = 0; s < 30; s++) {
        cr_assert(clip_zclip_step(&z, NULL, 0) == 0);
        cr_assert(clip_adagc_step(&g, NULL, 0) == 0);
        cr_assert(clip_auto_step(&a, NULL, 0) == 0);
    }
    cr_assert(z.initialized && z.mean == 0 && z.var == 0);
    clip_zclip_free(&z);
    clip_adagc_free(&g);
    clip_auto_free(&a);
}

Test(clip, auto_rejects_bad_params_and_skips_nonfinite) {
    ClipAuto a;
    ClipAutoParams p = {.warmup_steps = 0, .percentile = 90, .norm_type = 2};
    cr_assert(clip_auto_init(&a, &p) == -1);
    p = (ClipAutoParams){.warmup_steps = 2, .percentile = 101, .norm_type = 2};
    cr_assert(clip_auto_init(&a, &p) == -1);
    p.percentile = 50;
    cr_assert(clip_auto_init(&a, &p) == 0);
    float g = INFINITY;
    ClipTensor t = {&g, NULL, 1, 0};
    clip_auto_step(&a, &t, 1);
    cr_assert(a.nseen == 0 && g == INFINITY && isnan(a.threshold));
    g = 2;
    clip_auto_step(&a, &t, 1);
    g = 4;
    clip_auto_step(&a, &t, 1);
    cr_assert(a.threshold == 3, "median of {2, 4}: %g", a.threshold);
    g = 6;
    cr_assert(clip_auto_step(&a, &t, 1) == 6);
    cr_assert(a.last.clipped && fabsf(g - 3.0f) < 1e-5f && a.last.threshold == 3);
    clip_auto_free(&a);
}

/* A contract violation aborts with a message (not a silent wrong answer). */
Test(clip, bad_norm_type_aborts, .signal = SIGABRT) {
    float g[2] = {1, 2};
    ClipTensor t = {g, NULL, 2, 0};
    clip_total_norm(&t, 1, 0.0);
}

Test(clip, agc_rows_not_dividing_aborts, .signal = SIGABRT) {
    float g[6] = {1, 2, 3, 4, 5, 6}, w[6] = {1, 1, 1, 1, 1, 1};
    ClipTensor t = {g, w, 6, 4};
    clip_agc(&t, 1, 0.01, CLIP_AGC_EPS);
}

/* ---------------------------------------------------------------- counts */

/* clip_agc_count / clip_grad_value_count report exactly the units / elements
 * whose bits changed, including a tiny unit clipped beside a huge one (whose
 * change is invisible in the global norm: the case a norm comparison misses). */
Test(clip, counts_report_exactly_what_changed) {
    float g[8] = {1e-3f, 1e-3f, 1e-3f, 1e-3f, 3e6f, 4e6f, 1e-3f, -1e-3f};
    float w[8] = {1e-6f, 1e-6f, 1e-6f, 1e-6f, 1e9f, 1e9f, 1.0f, 1.0f};
    float before[8];
    memcpy(before, g, sizeof g);
    /* tensor 0 is 3 units of 2: units g[0..1] and g[2..3] have ||G|| 1.4e-3 >
     * 0.01 * max(||W||, 1e-3) = 1e-5: clipped; g[4..5]: ||G|| 5e6 < 0.01 * 1.4e9:
     * kept; tensor 1 (the vector g[6..7]): 1.4e-3 < 0.01 * 1.4: kept */
    ClipTensor t[2] = {{g, w, 6, 3}, {g + 6, w + 6, 2, 1}};
    double pre = clip_total_norm(t, 2, 2.0);
    cr_assert_eq(clip_agc_count(t, 2, 0.01, 1e-3), 2);
    cr_assert(g[0] != before[0] && g[2] != before[2], "the tiny units were not clipped");
    cr_assert(memcmp(g + 4, before + 4, 4 * sizeof *g) == 0, "other units touched");
    cr_assert(clip_total_norm(t, 2, 2.0) == pre, "this clip is invisible in the global norm");

    float v[6] = {0.2f, -3.0f, 0.9f, NAN, 1.0f, 7.0f};
    ClipTensor tv = {v, NULL, 6, 0};
    cr_assert_eq(clip_grad_value_count(&tv, 1, 1.0), 2, "-3 and 7 change; 1.0 and NaN do not");
    cr_assert(v[1] == -1.0f && v[5] == 1.0f && v[4] == 1.0f && isnan(v[3]));
    cr_assert(clip_norm_coef(1.0, 0.5) == 1.0f && clip_norm_coef(1.0, 4.0) < 1.0f);
}

/* ---------------------------------------------------------------- signs */

/* Every norm and every method that measures a norm sees |g|, not g: tensors
 * that are all negative, and tensors whose decisive extreme is negative (the
 * fixtures above happen to have positive extremes). References are computed
 * by hand from the definition (sum |g|^p)^(1/p), max |g| for p = inf. */
static double hand_norm(const float *g, int n, double p) {
    double m = 0, s = 0;
    for (int i = 0; i < n; i++) m = fmax(m, fabs((double)g[i]));
    if (isinf(p)) return m;
    for (int i = 0; i < n; i++) s += pow(fabs((double)g[i]), p);
    return pow(s, 1.0 / p);
}

/* all negative (3 and 11 elements: the tail loop and the unrolled one), and
 * mixed signs with the largest magnitude negative */
static const float neg_a[3] = {-3, -4, -12};
static const float neg_b[4] = {1, -5, 2, 0.5f};
static const float neg_c[11] = {-1, -2, -3, -4, -5, -6, -7, -8, -9, -10, -11};

Test(clip, norms_of_negative_gradients_use_the_magnitude) {
    /* closed forms, so the helper above is checked too */
    cr_assert(hand_norm(neg_a, 3, INFINITY) == 12 && hand_norm(neg_a, 3, 1) == 19);
    cr_assert(fabs(hand_norm(neg_a, 3, 2) - 13) < 1e-12);
    cr_assert(fabs(hand_norm(neg_a, 3, 0.5) - pow(3 * sqrt(3.0) + 2, 2)) < 1e-9);
    cr_assert(fabs(hand_norm(neg_b, 4, 2) - 5.5) < 1e-12 && hand_norm(neg_b, 4, INFINITY) == 5);
    cr_assert(hand_norm(neg_c, 11, 1) == 66 && hand_norm(neg_c, 11, INFINITY) == 11);
    const float *arr[3] = {neg_a, neg_b, neg_c};
    const int len[3] = {3, 4, 11};
    for (int k = 0; k < 5; k++) {
        double p = pval[k];
        for (int i = 0; i < 3; i++) {
            float g[11];
            memcpy(g, arr[i], (size_t)len[i] * sizeof *g);
            ClipTensor t = {g, NULL, (size_t)len[i], 0};
            assert_near(clip_total_norm(&t, 1, p), hand_norm(arr[i], len[i], p), 0, 1e-12,
                        ptag[k], i);
        }
        /* three tensors together: the p-norm of the concatenation */
        float all[18];
        memcpy(all, neg_a, sizeof neg_a), memcpy(all + 3, neg_b, sizeof neg_b);
        memcpy(all + 7, neg_c, sizeof neg_c);
        Views v = views_make(all, (int[]){3, 4, 11}, 3);
        double want = hand_norm(all, 18, p);
        assert_near(clip_total_norm(v.t, 3, p), want, 0, 1e-12, "total", k);
        /* clipping to a third of it scales by max_norm / (norm + 1e-6) */
        double got = clip_grad_norm(v.t, 3, want / 3, p);
        assert_near(got, want, 0, 1e-12, "returned norm", k);
        float c = (float)(want / 3) * (1.0f / ((float)want + 1e-6f));
        for (int i = 0; i < 18; i++)
            cr_assert(v.buf[i] == all[i] * c, "%s: element %d: %g, expected %g", ptag[k], i,
                      (double)v.buf[i], (double)(all[i] * c));
        assert_near(hand_norm(v.buf, 18, p), want / 3, 0, 1e-6, "clipped norm", k);
        /* per tensor: each clipped to 4 in its own norm; the largest norm returned */
        views_load(&v, all);
        double largest = 0;
        for (int i = 0; i < 3; i++) largest = fmax(largest, hand_norm(arr[i], len[i], p));
        assert_near(clip_grad_norm_per_tensor(v.t, 3, 4.0, p), largest, 0, 1e-12, "per tensor", k);
        for (int i = 0; i < 3; i++) {
            double n0 = hand_norm(arr[i], len[i], p), n1 = hand_norm(v.t[i].grad, len[i], p);
            assert_near(n1, n0 > 4 ? 4 : n0, 0, 1e-6, "per-tensor clipped norm", i);
        }
        free(v.buf);
    }
}

Test(clip, methods_on_negative_gradients_and_weights) {
    /* value: torch.clamp to [-1, 1] */
    float g[4] = {-3, -0.5f, -1, 2};
    ClipTensor t = {g, NULL, 4, 0};
    cr_assert_eq(clip_grad_value_count(&t, 1, 1.0), 2);
    cr_assert(g[0] == -1 && g[1] == -0.5f && g[2] == -1 && g[3] == 1);
    /* AGC with negative weights and gradients: ||W_u|| = 5, ||G_u|| = 50 in each
     * row, clipping 0.1: G_u <- G_u * 0.5 / 50 */
    float w[4] = {-3, -4, -4, -3}, ga[4] = {-30, -40, -40, -30};
    ClipTensor ta = {ga, w, 4, 2};
    cr_assert_eq(clip_agc_count(&ta, 1, 0.1, CLIP_AGC_EPS), 2);
    const float want[4] = {-0.3f, -0.4f, -0.4f, -0.3f};
    for (int i = 0; i < 4; i++)
        cr_assert(fabsf(ga[i] - want[i]) <= 2e-7f, "agc[%d] = %.9g, expected %g", i, (double)ga[i],
                  (double)want[i]);
    /* auto with p = inf: the warm-up's one norm is max |g| = 12; a later step whose
     * max |g| is 24 is brought back to 12 */
    ClipAuto au;
    ClipAutoParams ap = {1, 50, INFINITY};
    cr_assert(clip_auto_init(&au, &ap) == 0);
    float a1[3], a2[3];
    for (int i = 0; i < 3; i++) a1[i] = neg_a[i], a2[i] = 2 * neg_a[i];
    ClipTensor t1 = {a1, NULL, 3, 0}, t2 = {a2, NULL, 3, 0};
    cr_assert(clip_auto_step(&au, &t1, 1) == 12);
    cr_assert(au.threshold == 12, "threshold %g, expected 12", au.threshold);
    cr_assert(clip_auto_step(&au, &t2, 1) == 24);
    cr_assert(fabs(hand_norm(a2, 3, INFINITY) - 12) < 1e-5, "clipped to %g", hand_norm(a2, 3, INFINITY));
    clip_auto_free(&au);
    /* ZClip and AdaGC take the L2 norm: an all-negative tensor of norm 13 is
     * clipped to their cap 1 during the warm-up */
    float z[3], ad[3];
    memcpy(z, neg_a, sizeof z), memcpy(ad, neg_a, sizeof ad);
    ClipZClip zc;
    ClipAdaGC ag;
    cr_assert(clip_zclip_init(&zc, NULL) == 0 && clip_adagc_init(&ag, NULL, 1) == 0);
    ClipTensor tz = {z, NULL, 3, 0}, tg = {ad, NULL, 3, 0};
    assert_near(clip_zclip_step(&zc, &tz, 1), 13, 0, 1e-12, "zclip norm", 0);
    assert_near(clip_adagc_step(&ag, &tg, 1), 13, 0, 1e-12, "adagc norm", 0);
    assert_near(hand_norm(z, 3, 2), 1, 0, 1e-6, "zclip clipped", 0);
    assert_near(hand_norm(ad, 3, 2), 1, 0, 1e-6, "adagc clipped", 0);
    clip_zclip_free(&zc);
    clip_adagc_free(&ag);
}
