/* test_amp.c: mixed precision (issue 22): the AMP casts around the matrix
 * products (ops.h), the loss scaler against torch 1.13's GradScaler rule
 * (tests/ref/ref_scaler.py transcribes it; torch's CPU build has no scaler
 * kernels), the wrong order (clip_before_unscale) against torch's
 * clip_grad_norm_, the bf16 transformer loss against torch's CPU autocast
 * (tests/ref/ref_transformer.py), the scaler in checkpoints, every model in
 * every precision, and the config errors.
 *
 * Mutations each test is built to catch (tried by hand, see the commit):
 *   dropping the unscale, updating the scale before the check (the backward
 *   of a step running with the updated scale), stepping on an overflow,
 *   dropping the cast backward's rounding, the growth past FLT_MAX; in the
 *   activation-gradient histogram, < instead of <= at fp16's flush point
 *   2^-25, a CSV reader that drops the bins, and the comparison's histogram
 *   figure hooked into the trainer's comparison only (the cliff's own
 *   comparison skipped it). */
#include <criterion/criterion.h>
#include <float.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "checkpoint.h"
#include "clip.h"
#include "cli.h"
#include "grad_hist.h"
#include "half.h"
#include "ops.h"
#include "tfile.h"
#include "train.h"
#include "transformer.h"
#include "trainer_fixture.h"
#include "tsettings.h"

static uint32_t bits(float x) {
    uint32_t u;
    memcpy(&u, &x, sizeof u);
    return u;
}

/* ---------------------------------------------------------------- the AMP casts */

/* x[2,3] @ w[2,3]^T with a tiny upstream gradient: in fp16 the activation
 * gradient below 2^-25 flushes to zero; the same seed times 2^16 survives and
 * is exactly 2^16 times the fp32 gradient (rounded to fp16). */
static void linear_grads(int fmt, float seed, float *dx, float *dw) {
    Ctx c;
    ctx_init(&c, 1 << 20, 64);
    c.precision = fmt;
    float xv[6] = {0.3f, -1.2f, 2.5f, 0.7f, 1.1f, -0.4f}, wv[6] = {0.5f, -0.1f, 0.25f, 1.5f, 0.3f, -0.7f};
    Tensor *x = tensor_new2(&c, 2, 3, 1), *w = tensor_new2(&c, 2, 3, 1);
    memcpy(x->data, xv, sizeof xv), memcpy(w->data, wv, sizeof wv);
    Tensor *y = ad_linear(&c, x, w, NULL);
    ad_backward(&c, ad_sum(&c, y), seed);
    memcpy(dx, x->grad, 6 * sizeof *dx), memcpy(dw, w->grad, 6 * sizeof *dw);
    ctx_free(&c);
}

Test(amp, fp16_flushes_small_activation_gradients_and_scaling_restores_them) {
    float dx32[6], dw32[6], dx16[6], dw16[6], dxs[6], dws[6];
    float tiny = ldexpf(1, -27); /* dx = tiny * w: about 2^-27 .. 2^-26, below fp16's 2^-24 / 2 */
    linear_grads(HALF_FP32, tiny, dx32, dw32);
    linear_grads(HALF_FP16, tiny, dx16, dw16);
    linear_grads(HALF_FP16, tiny * 65536.0f, dxs, dws);
    for (int i = 0; i < 6; i++) {
        cr_expect(dx32[i] != 0.0f, "fp32 keeps the gradient");
        cr_expect_eq(dx16[i], 0.0f, "fp16 flushes dx[%d] = %g to zero", i, dx32[i]);
        /* w and the gradient each rounded to fp16: 2^-11 relative apiece */
        double want = dx32[i] * 65536.0;
        cr_expect(fabs(dxs[i] - want) <= ldexp(1, -9) * fabs(want), "scaled: dx[%d] = %g, want 2^16 * %g",
                  i, dxs[i], dx32[i]);
    }
}

Test(amp, gradients_arrive_in_the_format_and_fp32_is_untouched) {
    float dx[6], dw[6], dx32[6], dw32[6];
    float seed = 0.3333f; /* not representable in fp16 or bf16 */
    linear_grads(HALF_FP32, seed, dx32, dw32);
    for (int fmt = HALF_FP16; fmt <= HALF_BF16; fmt++) {
        linear_grads(fmt, seed, dx, dw);
        int differs = 0;
        for (int i = 0; i < 6; i++) {
            float r[2] = {dx[i], dw[i]};
            half_round(r, 2, fmt);
            cr_expect(r[0] == dx[i] && r[1] == dw[i], "%s: dx %.9g / dw %.9g not in the format",
                      half_name(fmt), dx[i], dw[i]);
            differs |= dw[i] != dw32[i];
        }
        cr_expect(differs, "%s: the weight gradient equals fp32's: no rounding happened", half_name(fmt));
    }
    /* fp32 records no cast: the same tape as before AMP existed */
    Ctx c;
    ctx_init(&c, 1 << 20, 64);
    Tensor *x = tensor_new2(&c, 2, 3, 1), *w = tensor_new2(&c, 2, 3, 1);
    ad_linear(&c, x, w, NULL);
    cr_expect_eq(c.nnodes, 1, "fp32 linear recorded %zu nodes", c.nnodes);
    c.precision = HALF_FP16;
    ad_linear(&c, x, w, NULL);
    cr_expect_eq(c.nnodes, 1 + 4, "fp16 linear: cast x, cast w, linear, cast out");
    ctx_free(&c);
}

/* bf16 forward of the transformer (same weights as ref_transformer.py) against
 * torch 1.13's CPU autocast. Both round to bf16 at the same places (linear and
 * matmul inputs and outputs; layernorm, softmax and the loss in float32 - the
 * fixture checks torch's dtypes), so bf16 moves both losses away from fp32's
 * by the same amount (here 3.3e-3). What may differ are single roundings: the
 * float32 sums inside a product run in another order (OpenBLAS vs oneDNN) and
 * our GELU/exp are polynomials, so a value near a rounding boundary can land
 * one bf16 ulp (2^-8 relative) apart, and the fp32 residual stream carries
 * that on. Tolerance: the loss within 10% of bf16's own effect on it, each
 * logit within 2 bf16 ulps of the largest logit (2 * 2^-8 * 10.8 = 0.084).
 * Measured: loss 3e-5 apart (1% of the effect); logits 0.011 apart on
 * average, 0.0625 (one ulp at 8..16) at most. */
Test(amp, bf16_transformer_loss_matches_torch_cpu_autocast) {
    enum { B = 3, T = 16, C = 32, L = 2, NH = 2, V = 20 };
    TFile *tf = tfile_load("ref_transformer");
    const int *dt = tfile_i32(tf, "dtypes_bf16_autocast");
    cr_assert(dt[0] == 1 && dt[1] == 1, "torch's autocast: logits bf16 and the loss float32");
    TransformerConfig cfg;
    memset(&cfg, 0, sizeof cfg);
    cfg.d_model = C, cfg.n_layer = L, cfg.n_head = NH, cfg.context = T;
    Transformer m;
    memset(&m, 0, sizeof m);
    Rng r;
    rng_seed(&r, 1, 1);
    transformer_build(&m, &cfg, V, &r);
    char key[96];
    for (int i = 0; i < m.ps.count; i++) {
        snprintf(key, sizeof key, "w.%s", m.ps.params[i].name);
        memcpy(m.ps.params[i].t.data, tfile_f32(tf, key), m.ps.params[i].t.n * sizeof(float));
    }
    Ctx c;
    ctx_init(&c, 16 << 20, 4096);
    c.precision = HALF_BF16;
    Tensor *logits = transformer_logits(&m, &c, tfile_i32(tf, "idx"), B, T);
    Tensor *loss = ad_cross_entropy(&c, logits, tfile_i32(tf, "targets"));
    double got = loss->data[0], want = tfile_f32(tf, "loss_bf16_autocast")[0];
    double fp32 = tfile_f32(tf, "loss")[0];
    double effect = fabs(fp32 - want);
    cr_expect(effect > 1e-3, "bf16 moves torch's loss by only %.2g: the test would be vacuous", effect);
    cr_expect(fabs(got - want) <= 0.1 * effect, "bf16 loss %.7f, torch autocast %.7f (|diff| %.2g, bf16's "
              "effect %.2g)", got, want, fabs(got - want), effect);
    const float *lw = tfile_f32(tf, "logits_bf16_autocast");
    float lmax = 0;
    for (size_t i = 0; i < logits->n; i++) lmax = fmaxf(lmax, fabsf(lw[i]));
    assert_close(logits->data, lw, logits->n, 2 * ldexp(1, -8) * lmax, 0, "bf16 logits");
    ctx_free(&c);
    transformer_free_params(&m);
    tfile_free(tf);
}

/* ---------------------------------------------------------------- the scaler rule */

Test(scaler, update_rule_matches_torch_1_13_on_overflow_sequences) {
    TFile *tf = tfile_load("ref_scaler");
    for (int k = 0; k < 5; k++) {
        char key[64];
        snprintf(key, sizeof key, "seq%d.cfg@f64", k);
        const double *cfg = tfile_f64(tf, key);
        snprintf(key, sizeof key, "seq%d.inf", k);
        const TRec *rinf = tfile_get(tf, key);
        const int *inf = tfile_i32(tf, key);
        snprintf(key, sizeof key, "seq%d.scale", k);
        const float *scale = tfile_f32(tf, key);
        snprintf(key, sizeof key, "seq%d.tracker", k);
        const int *tracker = tfile_i32(tf, key);
        ScalerConfig sc = {cfg[0], cfg[1], cfg[2], (long)cfg[3]};
        GradScaler s;
        scaler_init(&s, &sc, 0.0);
        cr_assert(s.dynamic);
        long skips = 0;
        for (size_t i = 0; i < rinf->n; i++) {
            scaler_update(&s, inf[i]);
            skips += inf[i];
            cr_assert_eq(bits(s.scale), bits(scale[i]), "seq %d update %zu: scale %.9g, torch %.9g", k, i,
                         s.scale, scale[i]);
            cr_assert_eq(s.growth_tracker, tracker[i], "seq %d update %zu: tracker %d, torch %d", k, i,
                         s.growth_tracker, tracker[i]);
        }
        cr_expect_eq(s.skipped, skips);
    }
    tfile_free(tf);
}

Test(scaler, static_scale_never_changes) {
    ScalerConfig sc = {65536, 2, 0.5, 1};
    GradScaler s;
    scaler_init(&s, &sc, 8.0);
    for (int i = 0; i < 5; i++) scaler_update(&s, i & 1);
    cr_expect(!s.dynamic && s.scale == 8.0f && s.skipped == 0);
}

/* ---------------------------------------------------------------- the toy run */

/* w[2], loss = sum(w * x_k) with x_k from ref_scaler's table. */
typedef struct {
    ParamSet ps;
    Tensor *w;
    const float *x;
    long k;
} AToy;

static void *atoy_create(Trainer *tr, const void *cfg) {
    (void)cfg;
    AToy *m = calloc(1, sizeof *m);
    param_set_init(&m->ps, "a", 1);
    m->w = param_add(&m->ps, "w", 1, (int[]){2}, 0);
    param_alloc(&m->ps);
    m->w->data[0] = 0.5f, m->w->data[1] = -0.25f;
    trainer_add_group(tr, &m->ps);
    return m;
}

static void atoy_destroy(void *p) {
    AToy *m = p;
    param_set_free(&m->ps);
    free(m);
}

static Tensor *atoy_forward(void *p, Ctx *c, Trainer *tr, void *arg) {
    (void)tr, (void)arg;
    AToy *m = p;
    Tensor *x = tensor_from(c, 1, (int[]){2}, m->x + 2 * m->k++);
    return ad_sum(c, ad_mul(c, m->w, x));
}

static const char *const atoy_groups[] = {"a", NULL};
static Tensor *atoy_loss(void *p, Ctx *c, Trainer *tr) { return atoy_forward(p, c, tr, NULL); }

static ModelDef atoy_def = {.name = "atoy", .summary = "test", .groups = atoy_groups,
                            .create = atoy_create, .loss = atoy_loss, .destroy = atoy_destroy};

static Trainer *atoy_make(TSettings *st, const char *ini) {
    tsettings_load(st, atoy_groups, NULL, NULL, ini);
    return trainer_create(&atoy_def, NULL, &st->s);
}

static void atoy_finish(Trainer *tr, TSettings *st) {
    trainer_destroy(tr);
    cfg_free(&st->cfg);
}

static double atoy_step(Trainer *tr) {
    UpdateGroup *g = &tr->groups[0];
    return trainer_step(tr, &g, 1, atoy_forward, tr->model, NULL);
}

Test(scaler, training_steps_match_torch_gradscaler_with_sgd) {
    TFile *tf = tfile_load("ref_scaler");
    const float *x = tfile_f32(tf, "toy.x"), *w = tfile_f32(tf, "toy.w"), *scale = tfile_f32(tf, "toy.scale");
    const int *skip = tfile_i32(tf, "toy.skip");
    int S = tfile_get(tf, "toy.skip")->shape[0], nskip = 0;
    TSettings st;
    Trainer *tr = atoy_make(&st, "[optim]\nkind = sgd\nlr = 0.1\n[train]\nloss_scale = dynamic\n"
                                 "[scaler]\ngrowth_interval = 4\n");
    AToy *m = tr->model;
    m->x = x;
    for (int s = 0; s < S; s++) {
        tr->step = s;
        atoy_step(tr);
        nskip += skip[s];
        cr_assert_eq(tr->scaler.last_scale, scale[s], "step %d ran with scale %g, torch %g", s,
                     tr->scaler.last_scale, scale[s]);
        cr_assert_eq(tr->scaler.last_found_inf, skip[s], "step %d: found_inf %d, torch %d", s,
                     tr->scaler.last_found_inf, skip[s]);
        /* torch's SGD adds lr*g with a fused multiply-add: a few ulps over 40 steps */
        cr_assert(fabsf(m->w->data[0] - w[2 * s]) <= 1e-6f * fabsf(w[2 * s]) &&
                      fabsf(m->w->data[1] - w[2 * s + 1]) <= 1e-6f * fabsf(w[2 * s + 1]),
                  "step %d: w = (%.9g, %.9g), torch (%.9g, %.9g)", s, m->w->data[0], m->w->data[1],
                  w[2 * s], w[2 * s + 1]);
    }
    cr_expect(nskip >= 3 && nskip < S / 2, "the sequence holds %d overflows", nskip);
    cr_expect_eq(tr->scaler.skipped, nskip);
    cr_expect_eq(tr->groups[0].skipped, nskip);
    cr_expect(!tr->diverged, "an overflow under the dynamic scaler is not a divergence");
    atoy_finish(tr, &st);
    tfile_free(tf);
}

/* With grad_accum the scale stays fixed over the micro-batches and the sum is
 * unscaled once: two micro-batches (x, x) give the step of one. */
Test(scaler, accumulation_keeps_one_scale) {
    static const float x[8] = {1.5f, -2.0f, 1.5f, -2.0f, 1e35f, 1.0f, 1e35f, 1.0f};
    TSettings st;
    Trainer *tr = atoy_make(&st, "[optim]\nkind = sgd\nlr = 0.1\n[train]\nloss_scale = dynamic\n"
                                 "grad_accum = 2\n");
    AToy *m = tr->model;
    m->x = x;
    atoy_step(tr);
    cr_expect(m->w->data[0] == 0.5f - 0.1f * 1.5f && m->w->data[1] == -0.25f + 0.1f * 2.0f,
              "w = (%.9g, %.9g)", m->w->data[0], m->w->data[1]);
    cr_expect_eq(tr->scaler.scale, 65536.0f);
    atoy_step(tr); /* both micro-batches overflow: one skip, one backoff */
    cr_expect_eq(tr->scaler.scale, 32768.0f);
    cr_expect_eq(tr->scaler.skipped, 1);
    atoy_finish(tr, &st);
}

/* ---------------------------------------------------------------- the wrong order */

Test(wrong_order, clip_grad_norm_of_an_inf_or_nan_gradient_is_torch_1_13s) {
    TFile *tf = tfile_load("ref_scaler");
    for (int k = 0; k < 3; k++) {
        char key[32];
        snprintf(key, sizeof key, "clip.in%d", k);
        const TRec *r = tfile_get(tf, key);
        float g[8];
        memcpy(g, tfile_f32(tf, key), r->n * sizeof *g);
        snprintf(key, sizeof key, "clip.out%d", k);
        const float *want = tfile_f32(tf, key);
        ClipTensor t = {.grad = g, .n = r->n};
        clip_grad_norm(&t, 1, 1.0, 2.0);
        for (size_t i = 0; i < r->n; i++)
            cr_expect(isnan(want[i]) ? isnan(g[i]) : bits(g[i]) == bits(want[i]),
                      "case %d [%zu]: %g, torch %g", k, i, g[i], want[i]);
    }
    tfile_free(tf);
}

/* Static scale 1024, clip 1: the right order steps by (0.6, 0.8); the bug
 * clips the scaled (3072, 4096) to norm 1 and then unscales: 1024 times less. */
Test(wrong_order, clip_before_unscale_shrinks_the_threshold_by_the_scale) {
    static const float x[4] = {3.0f, 4.0f, 3.0f, 4.0f};
    const char *ini[2] = {"[optim]\nkind = sgd\nlr = 1\n[clip]\ngrad = global_norm\nmax_norm = 1\n"
                          "[train]\nloss_scale = 1024\n",
                          "[optim]\nkind = sgd\nlr = 1\n[clip]\ngrad = global_norm\nmax_norm = 1\n"
                          "[train]\nloss_scale = 1024\nclip_before_unscale = true\n"};
    float moved[2][2];
    for (int b = 0; b < 2; b++) {
        TSettings st;
        Trainer *tr = atoy_make(&st, ini[b]);
        AToy *m = tr->model;
        m->x = x;
        atoy_step(tr);
        moved[b][0] = 0.5f - m->w->data[0], moved[b][1] = -0.25f - m->w->data[1];
        cr_expect(fabs(tr->groups[0].last.pre_norm - 5.0) < 1e-6, "pre-clip norm logged in true units: %g",
                  tr->groups[0].last.pre_norm);
        atoy_finish(tr, &st);
    }
    cr_expect(fabsf(moved[0][0] - 0.6f) < 1e-6f && fabsf(moved[0][1] - 0.8f) < 1e-6f, "right order: (%g, %g)",
              moved[0][0], moved[0][1]);
    /* w's ulp at 0.5 is 6e-8: the tolerance */
    cr_expect(fabsf(moved[1][0] - 0.6f / 1024) < 1.2e-7f && fabsf(moved[1][1] - 0.8f / 1024) < 1.2e-7f,
              "the bug: (%g, %g), expected (0.6, 0.8) / 1024", moved[1][0], moved[1][1]);
}

/* An overflow under the bug: the clip's coefficient 0 turns the inf into NaN
 * and the rest into zeros; the unscaled gradient is non-finite, so the step is
 * skipped and the scale backs off, as torch's scaler.step would. */
Test(wrong_order, overflow_under_the_bug_is_nan_and_zeros_then_a_skip) {
    static const float x[2] = {1e35f, 1.0f};
    TSettings st;
    Trainer *tr = atoy_make(&st, "[optim]\nkind = sgd\nlr = 1\n[clip]\ngrad = global_norm\nmax_norm = 1\n"
                                 "[train]\nloss_scale = dynamic\nclip_before_unscale = true\n");
    AToy *m = tr->model;
    m->x = x;
    /* the clip alone, as the pipeline runs it: scaled (inf, 65536) -> (NaN, 0) */
    float g[2] = {1e35f * 65536.0f, 65536.0f};
    ClipTensor t = {.grad = g, .n = 2};
    clip_grad_norm(&t, 1, 1.0, 2.0);
    cr_expect(isnan(g[0]) && g[1] == 0.0f, "(%g, %g)", g[0], g[1]);
    atoy_step(tr);
    cr_expect(m->w->data[0] == 0.5f && m->w->data[1] == -0.25f, "the step was applied");
    cr_expect(tr->scaler.last_found_inf && tr->scaler.scale == 32768.0f);
    atoy_finish(tr, &st);
}

/* ---------------------------------------------------------------- checkpoints */

Test(scaler, checkpoint_carries_scale_tracker_and_skips) {
    int rows[1] = {2};
    Fixture *x = fix_new(rows, 1, NULL, 0, 7);
    Trainer *tr = &x->tr;
    tr->scaler.dynamic = 1, tr->scaler.scale = 1536.0f, tr->scaler.growth_tracker = 1234;
    tr->scaler.skipped = 17;
    char *buf;
    size_t len;
    cr_assert_eq(ckpt_to_memory(tr, &buf, &len), 0);
    tr->scaler.scale = 2.0f, tr->scaler.growth_tracker = 0, tr->scaler.skipped = 0;
    char err[256];
    cr_assert_eq(ckpt_from_memory(tr, buf, len, err, sizeof err), 0, "%s", err);
    cr_expect(tr->scaler.scale == 1536.0f && tr->scaler.growth_tracker == 1234 && tr->scaler.skipped == 17);
    free(buf);
    fix_free(x);
}

/* ---------------------------------------------------------------- the histogram */

/* L = sum((a * b) * g): the node a * b gets the gradient seed * g, chosen value by value
 * at fp16's edges; the histogram counts, at scale 1 and at the recorded scale, what
 * fp16 flushes (at or below 2^-25: the tie rounds to 0) and overflows (at or above
 * 65520), and bins by floor(log2 |g|). Read back from its CSV, every field is the same. */
Test(amp, grad_hist_counts_what_fp16_flushes_and_reads_back) {
    const float gv[8] = {ldexpf(1, -25), ldexpf(1, -25) * (1 + ldexpf(1, -20)), ldexpf(1, -26), 0.0f,
                         -ldexpf(1, -20) * 1.5f, 65504.0f, -65520.0f, 3.0f};
    for (int pass = 0; pass < 2; pass++) {
        double scale = pass ? 4.0 : 1.0; /* the seed carries the scale, as the scaler's does */
        Ctx c;
        ctx_init(&c, 1 << 20, 64);
        Tensor *a = tensor_new2(&c, 1, 8, 1), *b = tensor_new2(&c, 1, 8, 0), *g = tensor_new2(&c, 1, 8, 0);
        for (int i = 0; i < 8; i++) a->data[i] = 1.0f, b->data[i] = 1.0f, g->data[i] = gv[i];
        Tensor *ab = ad_mul(&c, a, b);
        ad_backward(&c, ad_sum(&c, ad_mul(&c, ab, g)), (float)scale);
        GradHist h;
        grad_hist_record(&h, &c, 7, scale);
        /* the nodes: ab (8 values: scale * g), ab * g (8: scale), the sum (1: scale) */
        cr_expect_eq(h.total, 17);
        cr_expect_eq(h.zero, 1);
        cr_expect_eq(h.flush_true, 2, "2^-25 and 2^-26 flush at scale 1: %g", h.flush_true);
        cr_expect_eq(h.flush_scaled, pass ? 0 : 2, "times 4 they survive: %g", h.flush_scaled);
        cr_expect_eq(h.overflow_scaled, pass ? 2 : 1, "65520 (and 4 x 65504) overflow: %g", h.overflow_scaled);
        int e = pass ? 2 : 0; /* log2(scale) */
        cr_expect_eq(h.count[-25 + e - GRAD_HIST_LO], 2, "[2^-25, 2^-24) holds 2^-25 and its successor");
        cr_expect_eq(h.count[-26 + e - GRAD_HIST_LO], 1);
        cr_expect_eq(h.count[-20 + e - GRAD_HIST_LO], 1, "1.5 x 2^-20 is in bin -20");
        cr_expect_eq(h.count[1 + e - GRAD_HIST_LO], 1, "3 is in bin 1");
        cr_expect_eq(h.count[0 + e - GRAD_HIST_LO], 9, "the 9 gradients of the seed itself");
        ctx_free(&c);
        char dir[] = "/tmp/cliplab_hist_XXXXXX", err[256];
        cr_assert(mkdtemp(dir));
        cr_assert_eq(grad_hist_write(&h, dir, "t", err, sizeof err), 0, "%s", err);
        GradHist r;
        cr_assert_eq(grad_hist_read(&r, dir), 0);
        cr_expect(r.step == h.step && r.scale == h.scale && r.total == h.total && r.zero == h.zero &&
                      r.nonfinite == h.nonfinite && r.flush_true == h.flush_true &&
                      r.flush_scaled == h.flush_scaled && r.overflow_scaled == h.overflow_scaled,
                  "the header reads back");
        cr_expect(!memcmp(r.count, h.count, sizeof h.count), "the bins read back");
        char path[300];
        snprintf(path, sizeof path, "%s/grad_hist.csv", dir);
        FILE *f = fopen(path, "a");
        cr_assert(f);
        fputs("12,x\n", f); /* a damaged row: not that format */
        fclose(f);
        cr_expect_eq(grad_hist_read(&r, dir), -1, "a damaged file is refused");
        remove(path);
        snprintf(path, sizeof path, "%s/grad_hist.png", dir);
        remove(path);
        cr_expect_eq(grad_hist_read(&r, dir), -1, "no file");
        rmdir(dir);
    }
}

/* ---------------------------------------------------------------- ./train */

static char out[16384];

TestSuite(amp_cli, .init = cli_mkdir, .fini = cli_rmdir);

static int train_err(const char *ini, const char *args) {
    cli_write("a.ini", ini);
    char cmd[512];
    snprintf(cmd, sizeof cmd, "a.ini %s", args);
    return cli_run(cmd, out, sizeof out, 0);
}

#define TINY "[model]\ntype = cliff\n[train]\nsteps = 2\nquiet = true\n"

Test(amp_cli, bad_input_is_an_error_naming_the_key) {
    struct {
        const char *ini, *args, *says;
    } bad[] = {
        {TINY "precision = fp8\n", "", "[train] precision = 'fp8': not one of the choices (accepted: one of: fp32, fp16, bf16)"},
        {TINY "loss_scale = 0\n", "", "[train] loss_scale = '0': out of range"},
        {TINY "loss_scale = -4\n", "", "or dynamic"},
        {TINY "loss_scale = dynamc\n", "", "[train] loss_scale = 'dynamc': not a number"},
        {TINY "loss_scale = dynamic\n[scaler]\ngrowth_factor = 1\n", "", "[scaler] growth_factor = 1 would never grow"},
        {TINY "loss_scale = dynamic\n[scaler]\nbackoff_factor = 1\n", "", "[scaler] backoff_factor = 1 would not back"},
        {TINY "loss_scale = dynamic\n[scaler]\ninit_scale = 0\n", "", "[scaler] init_scale = '0': out of range"},
        {TINY "clip_before_unscale = true\n", "", "clip_before_unscale = true needs a loss scale"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        int rc = train_err(bad[i].ini, bad[i].args);
        cr_expect_eq(rc, 2, "case %zu: exit %d: %s", i, rc, out);
        cr_expect(strstr(out, bad[i].says), "case %zu: message does not say '%s': %s", i, bad[i].says, out);
        cr_expect(!cli_exists("runs/a/metrics.csv"), "case %zu wrote a run", i);
    }
    /* surprising but valid: a warning saying what will happen, and the run goes */
    cr_expect_eq(train_err(TINY "precision = fp16\n", ""), 0, "%s", out);
    cr_expect(strstr(out, "warning") && strstr(out, "without loss scaling"), "%s", out);
    cr_expect_eq(train_err(TINY "[scaler]\ngrowth_interval = 5\n", "run.name=b"), 0, "%s", out);
    cr_expect(strstr(out, "warning") && strstr(out, "the scaler is not used"), "%s", out);
}

/* A comparison of runs that all recorded a histogram draws them on one figure beside
 * it (make amp-underflow); when one run has none, there is no such figure. */
Test(amp_cli, a_comparison_of_recorded_histograms_draws_them_together) {
    cli_write("h1.ini", TINY "grad_hist_step = 0\n");
    cli_write("h2.ini", TINY "grad_hist_step = 1\nloss_scale = dynamic\n");
    cli_write("h3.ini", TINY);
    cr_assert_eq(cli_run("h1.ini h2.ini --compare runs/c.png", out, sizeof out, 1), 0, "%s", out);
    cr_expect(cli_exists("runs/h1/grad_hist.csv") && cli_exists("runs/h2/grad_hist.csv"), "%s", out);
    cr_expect(cli_exists("runs/c_grad_hist.png"), "no runs/c_grad_hist.png: %s", out);
    cr_assert_eq(cli_run("h1.ini h3.ini --compare runs/d.png", out, sizeof out, 1), 0, "%s", out);
    cr_expect(cli_exists("runs/d.png") && !cli_exists("runs/d_grad_hist.png"), "%s", out);
}

/* Column col of a metrics.csv as text, one line each (NULL if absent). */
static char *csv_column(const char *path, const char *name) {
    char full[600];
    snprintf(full, sizeof full, "%s/%s", cli_dir, path);
    FILE *f = fopen(full, "r");
    if (!f) return NULL;
    char line[8192];
    int col = -1;
    size_t cap = 1 << 16, len = 0;
    char *res = calloc(cap, 1);
    for (int row = 0; fgets(line, sizeof line, f); row++) {
        char *save = NULL, *tok = strtok_r(line, ",\n", &save);
        for (int c = 0; tok; c++, tok = strtok_r(NULL, ",\n", &save)) {
            if (row == 0 && !strcmp(tok, name)) col = c;
            if (row > 0 && c == col && len + strlen(tok) + 2 < cap) len += (size_t)sprintf(res + len, "%s\n", tok);
        }
    }
    fclose(f);
    if (col < 0) free(res), res = NULL;
    return res;
}

/* Powers of two are exact in float32: with no overflow the dynamic scaler's
 * run is the unscaled run, bit for bit (the transformer, 6 steps, clip 1). */
Test(amp_cli, fp32_dynamic_scale_is_byte_identical_to_no_scaling) {
    char cfg[600], cwd[400];
    cr_assert(getcwd(cwd, sizeof cwd));
    snprintf(cfg, sizeof cfg, "%s/configs/transformer_clip.ini train.steps=6 train.eval_every=3 "
             "transformer.sample_chars=0 run.plots=false train.quiet=true optim.warmup_steps=2", cwd);
    char cmd[900];
    snprintf(cmd, sizeof cmd, "%s run.out_dir=runs/plain", cfg);
    cr_assert_eq(cli_run(cmd, out, sizeof out, 1), 0, "%s", out);
    snprintf(cmd, sizeof cmd, "%s run.out_dir=runs/dyn train.loss_scale=dynamic", cfg);
    cr_assert_eq(cli_run(cmd, out, sizeof out, 1), 0, "%s", out);
    const char *cols[] = {"loss", "grad_norm", "grad_norm_clipped", "grad_clip_coef", "val_loss"};
    for (int i = 0; i < 5; i++) {
        char *a = csv_column("runs/plain/metrics.csv", cols[i]), *b = csv_column("runs/dyn/metrics.csv", cols[i]);
        cr_assert(a && b, "column %s missing", cols[i]);
        cr_expect_str_eq(a, b, "column %s differs", cols[i]);
        free(a), free(b);
    }
    char *s = csv_column("runs/dyn/metrics.csv", "loss_scale");
    cr_assert(s, "no loss_scale column");
    cr_expect_str_eq(s, "65536\n65536\n65536\n65536\n65536\n65536\n", "fp32 never overflows here");
    free(s);
}

/* Every model trains two steps in every precision, and the rounding reaches
 * its numbers: the second step's loss differs from fp32's. */
Test(amp_cli, every_model_runs_in_every_precision, .timeout = 600) {
    const char *configs[] = {"rnn_clip", "transformer_clip", "wgan_gp", "ppo_clip", "mobilenet_relu6",
                             "cliff_clip"};
    const char *extra[] = {"", "transformer.sample_chars=0 train.eval_every=0 optim.warmup_steps=1",
                           "", "", "train.eval_every=0 mobilenet.train_limit=256 mobilenet.test_limit=100 "
                           "mobilenet.quant_bits=", ""};
    const char *prec[] = {"fp32", "fp16", "bf16"};
    char cwd[400];
    cr_assert(getcwd(cwd, sizeof cwd));
    for (int c = 0; c < 6; c++) {
        char *loss[3];
        for (int p = 0; p < 3; p++) {
            char cmd[1200];
            snprintf(cmd, sizeof cmd, "%s/configs/%s.ini train.steps=2 train.log_every=1 run.plots=false "
                     "train.quiet=true train.precision=%s %s run.out_dir=runs/%s_%s %s", cwd, configs[c],
                     prec[p], p == 1 ? "train.loss_scale=dynamic" : "", configs[c], prec[p], extra[c]);
            int rc = cli_run(cmd, out, sizeof out, 1);
            cr_assert_eq(rc, 0, "%s in %s: exit %d: %s", configs[c], prec[p], rc, out);
            char path[300];
            snprintf(path, sizeof path, "runs/%s_%s/metrics.csv", configs[c], prec[p]);
            loss[p] = csv_column(path, "loss");
            cr_assert(loss[p], "%s: no loss column", path);
            cr_expect(!strstr(loss[p], "nan") && !strstr(loss[p], "inf"), "%s %s: %s", configs[c], prec[p],
                      loss[p]);
        }
        if (strcmp(configs[c], "cliff_clip") != 0) { /* the cliff has no matrix product */
            cr_expect(strcmp(loss[0], loss[1]) != 0, "%s: fp16 losses equal fp32's: %s", configs[c], loss[0]);
            cr_expect(strcmp(loss[0], loss[2]) != 0, "%s: bf16 losses equal fp32's: %s", configs[c], loss[0]);
        }
        for (int p = 0; p < 3; p++) free(loss[p]);
    }
}
