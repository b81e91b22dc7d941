/* test_clipper.c: the trainer's side of clipping (src/clipper.c).
 *
 * - every [clip] method through clipper_apply gives, bit for bit, what the
 *   library (src/clip.h) gives when called directly on copies of the same
 *   gradients, over a run of steps with spikes (stateful methods carry state);
 *   the ClipStats it reports agree with what happened to the gradients;
 * - only/exclude: a tensor outside the selection keeps its gradient bits;
 * - the weight clamp bounds the selected weights after every step of a short
 *   SGD loop and leaves the others alone;
 * - clipper_save / clipper_load: resuming (and rolling back) mid-run continues
 *   bit-identically; a stream for another method or a short one is refused;
 * - the [clip] table: every default parses, is in range and equals the
 *   library's reference default; a config file sets every key;
 * - per-tensor norms and names; describe labels.
 * Exact comparisons (memcmp of floats) unless a tolerance is stated. */
#include <criterion/criterion.h>
#include <criterion/redirect.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "clip.h"
#include "clipper.h"
#include "config.h"
#include "optim.h"
#include "params.h"
#include "rng.h"

#define NT 4    /* trainable tensors: w1 [4,5], b1 [4], w_out [2,4], b_out [2] */
#define STEPS 40

/* ---------------------------------------------------------------- fixtures */

/* A small model: a buffer sits between trainable tensors (never a view). */
static void make_set(ParamSet *ps, const char *name) {
    param_set_init(ps, name, 8);
    param_add(ps, "w1", 2, (int[]){4, 5}, 1);
    param_add_buffer(ps, "running_mean", 1, (int[]){3});
    param_add(ps, "b1", 1, (int[]){4}, 0);
    param_add(ps, "w_out", 2, (int[]){2, 4}, 1);
    param_add(ps, "b_out", 1, (int[]){2}, 0);
    param_alloc(ps);
    Rng r;
    rng_seed(&r, 7, 1);
    for (size_t i = 0; i < ps->n; i++) ps->data[i] = (float)(0.5 * rng_normal(&r));
}

/* Step t's gradients: N(0,1) per element, times a per-tensor scale, with
 * spikes (x30 at steps 12 and 27, x8 on one tensor at 20), so every method
 * has something to clip after its warm-up. Deterministic in t. */
static void set_grads(ParamSet *ps, int t) {
    Rng r;
    rng_seed(&r, 1000 + (uint64_t)t, 3);
    float spike = (t == 12 || t == 27) ? 30.0f : 1.0f;
    for (int i = 0, k = 0; i < ps->count; i++) {
        Param *p = &ps->params[i];
        if (p->buffer) continue;
        float s = spike * (0.2f + 0.3f * (float)k) * (t == 20 && k == 1 ? 8.0f : 1.0f);
        k++;
        for (size_t j = 0; j < p->t.n; j++) p->t.grad[j] = s * (float)rng_normal(&r);
    }
}

/* The [clip] defaults, applied by the config table's own setter. */
static ClipConfig clip_defaults(void) {
    ClipConfig c;
    memset(&c, 0, sizeof c);
    Config cfg;
    const CfgSection *secs[1] = {&clip_config_section};
    void *structs[1] = {&c};
    cfg_init(&cfg, secs, structs, 1);
    cfg_free(&cfg);
    return c;
}

/* Settings under which every method clips within STEPS (short warm-ups). */
static ClipConfig test_config(int method) {
    ClipConfig c = clip_defaults();
    c.grad = method;
    c.max_norm = 5;          /* the typical global norm is ~3, spikes ~90 */
    c.value = 2.5;
    c.agc_clipping = 4;      /* typical ||G_u||/||W_u|| is 0.4-2 */
    c.zclip_max_norm = 5;
    c.zclip_warmup = 5;
    c.adagc_lambda_abs = 5;
    c.adagc_lambda_rel = 1.3;
    c.adagc_warmup = 5;
    c.auto_warmup = 5;
    return c;
}

/* Library-side copy: gradients in their own buffer, views over the selected
 * tensors (same order and AGC rows as the clipper), plus the method's state. */
typedef struct {
    float *grad;
    ClipTensor t[NT];
    int count;
    ClipZClip z;
    ClipAdaGC a;
    ClipAuto au;
} Ref;

static void ref_init(Ref *r, const ParamSet *ps, const ClipConfig *c, const char *skip) {
    memset(r, 0, sizeof *r);
    r->grad = malloc(ps->n * sizeof(float));
    for (int i = 0; i < ps->count; i++) {
        const Param *p = &ps->params[i];
        if (p->buffer || (skip && strcmp(p->name, skip) == 0)) continue;
        size_t rows = (size_t)(p->t.ndim > 1 ? p->t.shape[0] : 1);
        r->t[r->count++] = (ClipTensor){r->grad + p->offset, p->t.data, p->t.n, rows};
    }
    ClipZClipParams zp = clip_zclip_defaults();
    zp.alpha = c->zclip_alpha, zp.z_thresh = c->zclip_z_thresh;
    zp.max_grad_norm = c->zclip_max_norm, zp.warmup_steps = c->zclip_warmup;
    zp.mode = c->zclip_mode, zp.skip_update_on_spike = c->zclip_skip_on_spike;
    ClipAdaGCParams ap = {c->adagc_beta, c->adagc_lambda_rel, c->adagc_lambda_abs,
                          c->adagc_warmup};
    ClipAutoParams up = {c->auto_warmup, c->auto_percentile, c->norm_type};
    cr_assert(clip_zclip_init(&r->z, &zp) == 0 && clip_adagc_init(&r->a, &ap, r->count) == 0 &&
              clip_auto_init(&r->au, &up) == 0);
}

static void ref_free(Ref *r) {
    clip_zclip_free(&r->z), clip_adagc_free(&r->a), clip_auto_free(&r->au);
    free(r->grad);
}

/* The library called directly, as the clipper should call it. */
static void ref_step(Ref *r, const ClipConfig *c) {
    switch (c->grad) {
    case CLIP_GLOBAL_NORM: clip_grad_norm(r->t, r->count, c->max_norm, c->norm_type); break;
    case CLIP_VALUE: clip_grad_value(r->t, r->count, c->value); break;
    case CLIP_NORM: clip_grad_norm_per_tensor(r->t, r->count, c->max_norm, c->norm_type); break;
    case CLIP_AGC: clip_agc(r->t, r->count, c->agc_clipping, c->agc_eps); break;
    case CLIP_ZCLIP: clip_zclip_step(&r->z, r->t, r->count); break;
    case CLIP_ADAGC: clip_adagc_step(&r->a, r->t, r->count); break;
    case CLIP_AUTO: clip_auto_step(&r->au, r->t, r->count); break;
    default: break;
    }
}

static double l2(const float *g, size_t n) {
    double s = 0;
    for (size_t i = 0; i < n; i++) s += (double)g[i] * g[i];
    return sqrt(s);
}

static void assert_same_bits(const float *a, const float *b, size_t n, const char *what, int t) {
    for (size_t i = 0; i < n; i++)
        cr_assert(memcmp(&a[i], &b[i], sizeof *a) == 0, "%s, step %d: element %zu: %.9g vs %.9g",
                  what, t, i, (double)a[i], (double)b[i]);
}

/* ---------------------------------------------------------------- parity */

/* The threshold clipper_apply must report, from the reference's state
 * before (thr_before) and after the step (ClipStats.threshold in clipper.h). */
static double expected_threshold(const Ref *r, const ClipConfig *c, double before) {
    switch (c->grad) {
    case CLIP_GLOBAL_NORM: return c->max_norm;
    case CLIP_ZCLIP: return isnan(r->z.clip_val) ? before : r->z.last.threshold;
    case CLIP_ADAGC:
    case CLIP_AUTO: return before;
    default: return NAN;
    }
}

/* Before a step: ZClip's detection level, AdaGC's bound, auto's threshold. */
static double threshold_before(const Ref *r, const ClipConfig *c) {
    if (c->grad == CLIP_AUTO) return r->au.threshold;
    if (c->grad == CLIP_ADAGC) {
        if (r->a.steps < c->adagc_warmup) return c->adagc_lambda_abs;
        double s = 0;
        for (int i = 0; i < r->count; i++) s += pow(c->adagc_lambda_rel * r->a.gamma[i], 2);
        return sqrt(s);
    }
    if (c->grad != CLIP_ZCLIP) return NAN;
    if (!r->z.initialized) return isinf(c->zclip_max_norm) ? NAN : c->zclip_max_norm;
    double eps = c->zclip_mode == CLIP_ZCLIP_ZSCORE ? r->z.p.eps : 0.0;
    double lvl = r->z.mean + c->zclip_z_thresh * (sqrt(r->z.var) + eps);
    return lvl < c->zclip_max_norm ? lvl : c->zclip_max_norm;
}

static void same_double(double a, double b, const char *what, int t) {
    cr_assert((isnan(a) && isnan(b)) || a == b, "%s, step %d: %.17g vs %.17g", what, t, a, b);
}

/* Run STEPS steps through the clipper and the library side by side. */
static void run_parity(ClipConfig c, const char *skip) {
    ParamSet ps;
    make_set(&ps, "model");
    Clipper cl;
    clipper_init(&cl, &c, &ps);
    Ref r;
    ref_init(&r, &ps, &c, skip);
    float *before = malloc(ps.n * sizeof(float));
    int nclipped = 0;
    for (int t = 0; t < STEPS; t++) {
        set_grads(&ps, t);
        memcpy(r.grad, ps.grad, ps.n * sizeof(float));
        memcpy(before, ps.grad, ps.n * sizeof(float));
        double thr = threshold_before(&r, &c);
        ClipStats st;
        double pre = clipper_global_norm(&cl);
        clipper_apply(&cl, pre, &st);
        ref_step(&r, &c);
        assert_same_bits(ps.grad, r.grad, ps.n, "clipper vs library", t);
        int changed = memcmp(before, ps.grad, ps.n * sizeof(float)) != 0;
        cr_assert_eq(st.clipped, changed, "step %d: clipped flag %d, gradients changed %d", t,
                     st.clipped, changed);
        nclipped += changed;
        cr_assert_eq(st.pre_norm, pre);
        /* post norm recomputed over every tensor: equal to a float64 sum to 1e-12 */
        double post = l2(ps.grad, ps.n);
        cr_assert(fabs(st.post_norm - post) <= 1e-12 * post, "step %d post %g vs %g", t,
                  st.post_norm, post);
        cr_assert(fabs(st.coef - post / pre) <= 1e-12, "step %d coef", t);
        same_double(st.threshold, expected_threshold(&r, &c, thr), "threshold", t);
    }
    if (c.grad == CLIP_NONE) cr_assert_eq(nclipped, 0);
    else cr_assert(nclipped > 0 && nclipped < STEPS, "method %d clipped %d of %d steps", c.grad,
                   nclipped, STEPS);
    free(before);
    ref_free(&r);
    clipper_free(&cl);
    param_set_free(&ps);
}

Test(clipper, parity_none) { run_parity(test_config(CLIP_NONE), NULL); }
Test(clipper, parity_global_norm) { run_parity(test_config(CLIP_GLOBAL_NORM), NULL); }
Test(clipper, parity_global_norm_p3) {
    ClipConfig c = test_config(CLIP_GLOBAL_NORM);
    c.norm_type = 3;
    run_parity(c, NULL);
}
Test(clipper, parity_global_norm_inf) {
    ClipConfig c = test_config(CLIP_GLOBAL_NORM);
    c.norm_type = INFINITY;
    c.max_norm = 2.0;
    run_parity(c, NULL);
}
Test(clipper, parity_value) { run_parity(test_config(CLIP_VALUE), NULL); }
Test(clipper, parity_norm) { run_parity(test_config(CLIP_NORM), NULL); }
Test(clipper, parity_agc) { run_parity(test_config(CLIP_AGC), NULL); }
Test(clipper, parity_zclip) { run_parity(test_config(CLIP_ZCLIP), NULL); }
Test(clipper, parity_zclip_percentile_skip) {
    ClipConfig c = test_config(CLIP_ZCLIP);
    c.zclip_mode = CLIP_ZCLIP_PERCENTILE;
    c.zclip_skip_on_spike = 1;
    c.zclip_max_norm = INFINITY;
    run_parity(c, NULL);
}
Test(clipper, parity_adagc) { run_parity(test_config(CLIP_ADAGC), NULL); }
Test(clipper, parity_auto) { run_parity(test_config(CLIP_AUTO), NULL); }

/* ---------------------------------------------------------------- selection */

/* exclude = b_out under every method: b_out keeps its bits, and the others
 * equal the library run on the remaining three tensors (run_parity's skip). */
Test(clipper, exclude_every_method) {
    for (int m = CLIP_GLOBAL_NORM; m < CLIP_METHOD_COUNT; m++) {
        ClipConfig c = test_config(m);
        snprintf(c.exclude, sizeof c.exclude, "b_out");
        run_parity(c, "b_out");
    }
}

/* Which tensors a pattern list selects: those whose gradient changed under a
 * value clip that touches every element of every selected tensor. */
static unsigned selected_by(const char *only, const char *exclude) {
    ParamSet ps;
    make_set(&ps, "model");
    ClipConfig c = test_config(CLIP_VALUE);
    c.value = 0; /* clamps every nonzero element to 0 */
    snprintf(c.only, sizeof c.only, "%s", only);
    snprintf(c.exclude, sizeof c.exclude, "%s", exclude);
    Clipper cl;
    clipper_init(&cl, &c, &ps);
    set_grads(&ps, 0);
    float *before = malloc(ps.n * sizeof(float));
    memcpy(before, ps.grad, ps.n * sizeof(float));
    ClipStats st;
    clipper_apply(&cl, clipper_global_norm(&cl), &st);
    unsigned mask = 0;
    for (int i = 0, k = 0; i < ps.count; i++) {
        const Param *p = &ps.params[i];
        if (p->buffer) continue;
        const float *b = before + p->offset, *a = p->t.grad;
        int zeroed = 1, same = memcmp(a, b, p->t.n * sizeof(float)) == 0;
        for (size_t j = 0; j < p->t.n; j++) zeroed &= a[j] == 0.0f;
        cr_assert(zeroed || same, "%s: partly clipped", p->name);
        if (!same) mask |= 1u << k;
        k++;
    }
    free(before);
    clipper_free(&cl);
    param_set_free(&ps);
    return mask;
}

/* bits: 1 w1, 2 b1, 4 w_out, 8 b_out */
Test(clipper, selection_patterns) {
    cr_assert_eq(selected_by("", ""), 0xFu);
    cr_assert_eq(selected_by("", "w_out"), 0xBu);
    cr_assert_eq(selected_by("w*", ""), 0x5u);
    cr_assert_eq(selected_by(" w1 , b_out ", ""), 0x9u);   /* spaces around commas */
    cr_assert_eq(selected_by("*_out", "b*"), 0x4u);
    cr_assert_eq(selected_by("model.b*", ""), 0xAu);       /* qualified by the set's name */
    cr_assert_eq(selected_by("critic.*", ""), 0x0u);       /* another group's tensors */
    cr_assert_eq(selected_by("", "*"), 0x0u);
    cr_assert_eq(selected_by(",", ""), 0xFu);               /* no pattern = all */
    cr_assert_eq(selected_by("b[1]", ""), 0x2u);            /* fnmatch bracket */
}

/* A pattern that selects nothing here is reported, unless it names another group. */
Test(clipper, note_unmatched_pattern, .init = cr_redirect_stderr) {
    ParamSet ps;
    make_set(&ps, "generator");
    ClipConfig c = test_config(CLIP_GLOBAL_NORM);
    snprintf(c.exclude, sizeof c.exclude, "w_outt, critic.*, w1");
    c.weight = 0.01;
    snprintf(c.weight_only, sizeof c.weight_only, "critic.*");
    Clipper cl;
    clipper_init(&cl, &c, &ps);
    cr_assert_eq(cl.nsel, 3);  /* w1 excluded */
    cr_assert_eq(cl.nwsel, 0); /* the critic's clamp is not the generator's */
    clipper_free(&cl);
    param_set_free(&ps);
    fflush(stderr);
    char buf[1024] = {0};
    FILE *f = cr_get_redirected_stderr();
    size_t n = fread(buf, 1, sizeof buf - 1, f);
    cr_assert(n > 0 && strstr(buf, "'w_outt'") && strstr(buf, "exclude"), "stderr: %s", buf);
    cr_assert(!strstr(buf, "critic"), "a note for another group's pattern: %s", buf);
    cr_assert(!strstr(buf, "'w1'"), "a note for a pattern that matched: %s", buf);
}

/* ---------------------------------------------------------------- weight clamp */

/* Returns how many values were outside [-C, C] before the clamps. */
static int clamp_loop(ParamSet *ps, const ClipConfig *c, int steps) {
    OptimConfig oc = {.kind = OPTIM_SGD, .lr = 0.3, .momentum = 0.9};
    Optim o;
    optim_init(&o, &oc, ps->n);
    Clipper cl;
    clipper_init(&cl, c, ps);
    int outside = 0;
    for (int t = 0; t < steps; t++) {
        set_grads(ps, t);
        ClipStats st;
        clipper_apply(&cl, clipper_global_norm(&cl), &st);
        optim_step(&o, ps, oc.lr);
        for (size_t i = 0; i < ps->n; i++) outside += fabsf(ps->data[i]) > (float)c->weight;
        clipper_clamp_weights(&cl);
        for (int i = 0; i < ps->count; i++) {
            const Param *p = &ps->params[i];
            if (p->buffer || p->name[0] != 'w') continue;
            for (size_t j = 0; j < p->t.n; j++)
                cr_assert(fabsf(p->t.data[j]) <= (float)c->weight, "step %d %s[%zu] = %g", t,
                          p->name, j, (double)p->t.data[j]);
        }
        param_zero_grad(ps);
    }
    clipper_free(&cl);
    optim_free(&o);
    return outside;
}

/* WGAN clamp of the weights (not the biases) at 0.05 under SGD with a large
 * step: the bound holds after every step; biases are free to leave it. */
Test(clipper, weight_clamp_bound_every_step) {
    ParamSet ps;
    make_set(&ps, "critic");
    ClipConfig c = test_config(CLIP_GLOBAL_NORM);
    c.weight = 0.05;
    snprintf(c.weight_only, sizeof c.weight_only, "critic.w*");
    cr_assert(clamp_loop(&ps, &c, 20) > 0, "the clamp never had anything to do");
    int bias_outside = 0;
    for (int i = 0; i < ps.count; i++)
        if (ps.params[i].name[0] == 'b')
            for (size_t j = 0; j < ps.params[i].t.n; j++)
                bias_outside += fabsf(ps.params[i].t.data[j]) > 0.05f;
    cr_assert(bias_outside > 0, "biases were clamped too");
    float buf0 = ps.buf[0];
    cr_assert(buf0 == 0.0f, "buffer changed");
    param_set_free(&ps);
}

/* weight = 0: clipper_clamp_weights changes nothing. */
Test(clipper, weight_clamp_off) {
    ParamSet ps;
    make_set(&ps, "model");
    ClipConfig c = test_config(CLIP_NONE);
    Clipper cl;
    clipper_init(&cl, &c, &ps);
    for (size_t i = 0; i < ps.n; i++) ps.data[i] *= 100.0f;
    float *copy = malloc(ps.n * sizeof(float));
    memcpy(copy, ps.data, ps.n * sizeof(float));
    clipper_clamp_weights(&cl);
    assert_same_bits(ps.data, copy, ps.n, "weight = 0", 0);
    free(copy);
    clipper_free(&cl);
    param_set_free(&ps);
}

/* ---------------------------------------------------------------- checkpoint */

typedef struct {
    float *grads; /* STEPS x n clipped gradients */
    ClipStats *st;
} Trace;

static void run_steps(Clipper *cl, ParamSet *ps, int from, int to, Trace *tr) {
    for (int t = from; t < to; t++) {
        set_grads(ps, t);
        clipper_apply(cl, clipper_global_norm(cl), &tr->st[t]);
        memcpy(tr->grads + (size_t)t * ps->n, ps->grad, ps->n * sizeof(float));
    }
}

static void assert_same_trace(const Trace *a, const Trace *b, size_t n, int from, int to) {
    assert_same_bits(a->grads + (size_t)from * n, b->grads + (size_t)from * n,
                     (size_t)(to - from) * n, "resumed gradients", from);
    for (int t = from; t < to; t++) {
        same_double(a->st[t].post_norm, b->st[t].post_norm, "post_norm", t);
        same_double(a->st[t].threshold, b->st[t].threshold, "threshold", t);
        cr_assert_eq(a->st[t].clipped, b->st[t].clipped, "clipped at step %d", t);
    }
}

static char *save_to_memory(const Clipper *cl, size_t *len) {
    char *buf = NULL;
    FILE *f = open_memstream(&buf, len);
    cr_assert(f && clipper_save(cl, f) == 0 && fclose(f) == 0);
    return buf;
}

static int load_from_memory(Clipper *cl, const char *buf, size_t len) {
    FILE *f = fmemopen((void *)buf, len, "rb");
    cr_assert(f);
    int rc = clipper_load(cl, f);
    fclose(f);
    return rc;
}

/* Save after step k; the uninterrupted run, a fresh clipper loading the save,
 * and the original rolled back to it all produce the same steps k..STEPS. */
static void resume_at(int method, int k) {
    ParamSet ps;
    make_set(&ps, "model");
    ClipConfig c = test_config(method);
    Clipper a, b;
    clipper_init(&a, &c, &ps);
    clipper_init(&b, &c, &ps);
    size_t bytes = (size_t)STEPS * ps.n * sizeof(float);
    Trace ta = {malloc(bytes), calloc(STEPS, sizeof(ClipStats))};
    Trace tb = {malloc(bytes), calloc(STEPS, sizeof(ClipStats))};
    run_steps(&a, &ps, 0, k, &ta);
    size_t len;
    char *buf = save_to_memory(&a, &len);
    run_steps(&a, &ps, k, STEPS, &ta);
    cr_assert_eq(load_from_memory(&b, buf, len), 0);
    run_steps(&b, &ps, k, STEPS, &tb);
    assert_same_trace(&ta, &tb, ps.n, k, STEPS);
    cr_assert_eq(load_from_memory(&a, buf, len), 0); /* rollback of the advanced clipper */
    run_steps(&a, &ps, k, STEPS, &tb);
    assert_same_trace(&ta, &tb, ps.n, k, STEPS);
    free(buf), free(ta.grads), free(ta.st), free(tb.grads), free(tb.st);
    clipper_free(&a), clipper_free(&b);
    param_set_free(&ps);
}

/* k = 3: inside every warm-up (5 steps); k = 17: after it, past a spike. */
Test(clipper, resume_zclip) { resume_at(CLIP_ZCLIP, 3), resume_at(CLIP_ZCLIP, 17); }
Test(clipper, resume_adagc) { resume_at(CLIP_ADAGC, 3), resume_at(CLIP_ADAGC, 17); }
Test(clipper, resume_auto) { resume_at(CLIP_AUTO, 3), resume_at(CLIP_AUTO, 17); }
Test(clipper, resume_stateless) { resume_at(CLIP_GLOBAL_NORM, 7), resume_at(CLIP_AGC, 7); }

/* Without a load, the fresh clipper does NOT reproduce the run (the state matters). */
Test(clipper, resume_needs_state) {
    ParamSet ps;
    make_set(&ps, "model");
    ClipConfig c = test_config(CLIP_ZCLIP);
    Clipper a, b;
    clipper_init(&a, &c, &ps), clipper_init(&b, &c, &ps);
    size_t bytes = (size_t)STEPS * ps.n * sizeof(float);
    Trace ta = {malloc(bytes), calloc(STEPS, sizeof(ClipStats))};
    Trace tb = {malloc(bytes), calloc(STEPS, sizeof(ClipStats))};
    run_steps(&a, &ps, 0, STEPS, &ta);
    run_steps(&b, &ps, 17, STEPS, &tb);
    cr_assert(memcmp(ta.grads + 17 * ps.n, tb.grads + 17 * ps.n, (STEPS - 17) * ps.n * 4) != 0);
    free(ta.grads), free(ta.st), free(tb.grads), free(tb.st);
    clipper_free(&a), clipper_free(&b);
    param_set_free(&ps);
}

/* A stream for another method, another warm-up, or a short one is refused,
 * and a refused load leaves the state as it was. */
Test(clipper, load_refuses_mismatch) {
    ParamSet ps;
    make_set(&ps, "model");
    ClipConfig cz = test_config(CLIP_ZCLIP), ca = test_config(CLIP_ADAGC);
    Clipper z, a;
    clipper_init(&z, &cz, &ps), clipper_init(&a, &ca, &ps);
    Trace tr = {malloc((size_t)STEPS * ps.n * 4), calloc(STEPS, sizeof(ClipStats))};
    run_steps(&z, &ps, 0, 9, &tr);
    size_t len;
    char *buf = save_to_memory(&z, &len);
    cr_assert_eq(load_from_memory(&a, buf, len), -1, "zclip state into adagc");
    for (size_t cut = 0; cut < len; cut += 7) {
        Clipper f;
        clipper_init(&f, &cz, &ps);
        cr_assert_eq(load_from_memory(&f, buf, cut), -1, "%zu of %zu bytes", cut, len);
        cr_assert(f.zclip.steps == 0 && f.zclip.nbuf == 0 && !f.zclip.initialized);
        clipper_free(&f);
    }
    cz.zclip_warmup = 6;
    Clipper w;
    clipper_init(&w, &cz, &ps);
    cr_assert_eq(load_from_memory(&w, buf, len), -1, "another warm-up length");
    clipper_free(&w);
    free(buf), free(tr.grads), free(tr.st);
    clipper_free(&z), clipper_free(&a);
    param_set_free(&ps);
}

/* ---------------------------------------------------------------- the [clip] table */

static const CfgKey *clip_key(const char *name) {
    for (int i = 0; i < clip_config_section.nkeys; i++)
        if (strcmp(clip_config_section.keys[i].name, name) == 0) return &clip_config_section.keys[i];
    cr_assert_fail("no [clip] key %s", name);
    return NULL;
}

/* Every numeric default lies in its key's range (cfg_init would abort on one
 * that does not parse; this checks the range explicitly too). */
Test(clipper, defaults_in_range) {
    for (int i = 0; i < clip_config_section.nkeys; i++) {
        const CfgKey *k = &clip_config_section.keys[i];
        cr_assert(k->help && k->help[0], "%s has no help", k->name);
        if (k->type != CFG_DOUBLE && k->type != CFG_INT && k->type != CFG_NORM) continue;
        char *end;
        double v = strtod(k->def, &end);
        cr_assert(*end == '\0' && v >= k->min && v <= k->max, "%s default %s outside [%g, %g]",
                  k->name, k->def, k->min, k->max);
    }
}

/* The defaults are the references' (clip.h *_defaults, the seeds), and every
 * method initialises with them. */
Test(clipper, defaults_match_references) {
    ClipConfig c = clip_defaults();
    ClipZClipParams z = clip_zclip_defaults();
    ClipAdaGCParams a = clip_adagc_defaults();
    ClipAutoParams u = clip_auto_defaults();
    cr_assert_eq(c.grad, CLIP_NONE);
    cr_assert(c.max_norm == 1.0 && c.norm_type == 2.0 && c.value == 1.0);
    cr_assert(c.agc_clipping == 0.01 && c.agc_eps == CLIP_AGC_EPS);
    cr_assert(c.zclip_alpha == z.alpha && c.zclip_z_thresh == z.z_thresh &&
              c.zclip_max_norm == z.max_grad_norm && c.zclip_warmup == z.warmup_steps &&
              c.zclip_mode == z.mode && c.zclip_skip_on_spike == z.skip_update_on_spike);
    cr_assert(c.adagc_beta == a.beta && c.adagc_lambda_rel == a.lambda_rel &&
              c.adagc_lambda_abs == a.lambda_abs && c.adagc_warmup == a.warmup_steps);
    cr_assert(c.auto_warmup == u.warmup_steps && c.auto_percentile == u.percentile);
    cr_assert(c.weight == 0 && !c.only[0] && !c.exclude[0] && !c.log_param_norms);
    ParamSet ps;
    make_set(&ps, "model");
    for (int m = CLIP_NONE; m < CLIP_METHOD_COUNT; m++) {
        c.grad = m;
        Clipper cl;
        clipper_init(&cl, &c, &ps);
        set_grads(&ps, 12);
        ClipStats st;
        clipper_apply(&cl, clipper_global_norm(&cl), &st);
        cr_assert(isfinite(st.post_norm) && st.post_norm <= st.pre_norm, "method %d", m);
        clipper_free(&cl);
    }
    param_set_free(&ps);
}

/* A config file sets every key; bad values name the key. */
Test(clipper, config_file) {
    char path[] = "/tmp/cliplab_clipper_XXXXXX";
    int fd = mkstemp(path);
    cr_assert(fd >= 0);
    const char *text =
        "[clip]\ngrad = zclip\nmax_norm = 2\nnorm_type = inf\nvalue = 0.5\nagc_clipping = 0.16\n"
        "agc_eps = 1e-4\nzclip_alpha = 0.9\nzclip_z_thresh = 3\nzclip_max_norm = inf\n"
        "zclip_warmup = 10\nzclip_mode = percentile\nzclip_skip_on_spike = true\n"
        "adagc_beta = 0.99\nadagc_lambda_rel = 1.04\nadagc_lambda_abs = 0.5\nadagc_warmup = 7\n"
        "auto_warmup = 50\nauto_percentile = 95\nonly = w*, b1\nexclude = w_out ; NFNets\n"
        "weight = 0.01\nweight_only = critic.*\nweight_exclude = critic.b*\nlog_param_norms = yes\n";
    cr_assert(write(fd, text, strlen(text)) == (ssize_t)strlen(text));
    close(fd);
    ClipConfig c;
    Config cfg;
    const CfgSection *secs[1] = {&clip_config_section};
    void *structs[1] = {&c};
    cfg_init(&cfg, secs, structs, 1);
    char err[512];
    cr_assert_eq(cfg_load_file(&cfg, path, err, sizeof err), CFG_OK, "%s", err);
    cr_assert(c.grad == CLIP_ZCLIP && c.max_norm == 2 && isinf(c.norm_type) && c.value == 0.5);
    cr_assert(c.agc_clipping == 0.16 && c.agc_eps == 1e-4 && c.zclip_alpha == 0.9);
    cr_assert(c.zclip_z_thresh == 3 && isinf(c.zclip_max_norm) && c.zclip_warmup == 10);
    cr_assert(c.zclip_mode == CLIP_ZCLIP_PERCENTILE && c.zclip_skip_on_spike == 1);
    cr_assert(c.adagc_beta == 0.99 && c.adagc_lambda_rel == 1.04 && c.adagc_lambda_abs == 0.5);
    cr_assert(c.adagc_warmup == 7 && c.auto_warmup == 50 && c.auto_percentile == 95);
    cr_assert_str_eq(c.only, "w*, b1");
    cr_assert_str_eq(c.exclude, "w_out");
    cr_assert(c.weight == 0.01 && c.log_param_norms == 1);
    cr_assert_str_eq(c.weight_only, "critic.*");
    cr_assert_str_eq(c.weight_exclude, "critic.b*");
    const char *bad[][2] = {{"zclip_mode=median", "zclip_mode"}, {"grad=clip_harder", "grad"},
                            {"auto_percentile=101", "auto_percentile"},
                            {"adagc_beta=1", "adagc_beta"}, {"zclip_warmup=0", "zclip_warmup"},
                            {"weight=-1", "weight"}};
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        char arg[64];
        snprintf(arg, sizeof arg, "clip.%s", bad[i][0]);
        cr_assert_neq(cfg_override(&cfg, arg, err, sizeof err), CFG_OK, "%s accepted", arg);
        cr_assert(strstr(err, bad[i][1]), "%s: %s", arg, err);
    }
    cfg_free(&cfg);
    unlink(path);
}

/* The key names other engineers' configs use. */
Test(clipper, key_names) {
    const char *names[] = {"grad", "max_norm", "norm_type", "value", "agc_clipping", "agc_eps",
                           "zclip_alpha", "zclip_z_thresh", "zclip_max_norm", "zclip_warmup",
                           "zclip_mode", "zclip_skip_on_spike", "adagc_beta", "adagc_lambda_rel",
                           "adagc_lambda_abs", "adagc_warmup", "auto_warmup", "auto_percentile",
                           "only", "exclude", "weight", "weight_only", "weight_exclude",
                           "log_param_norms"};
    for (size_t i = 0; i < sizeof names / sizeof *names; i++) clip_key(names[i]);
    const char *const *m = clip_key("grad")->choices;
    const char *want[] = {"none", "global_norm", "value", "norm", "agc", "zclip", "adagc", "auto"};
    for (int i = 0; i < 8; i++) cr_assert_str_eq(m[i], want[i], "choice %d = ClipMethod %d", i, i);
    cr_assert_null(m[8]);
}

/* ---------------------------------------------------------------- norms, names, labels */

Test(clipper, param_norms_and_names) {
    ParamSet ps;
    make_set(&ps, "model");
    ClipConfig c = test_config(CLIP_GLOBAL_NORM);
    Clipper off;
    clipper_init(&off, &c, &ps);
    cr_assert_null(off.param_norms);
    clipper_free(&off);
    c.log_param_norms = 1;
    Clipper cl;
    clipper_init(&cl, &c, &ps);
    const char *want[NT] = {"w1", "b1", "w_out", "b_out"};
    cr_assert_eq(clipper_nparams(&cl), NT);
    for (int i = 0; i < NT; i++) cr_assert_str_eq(clipper_param_name(&cl, i), want[i]);
    set_grads(&ps, 12); /* a spike: the global clip changes every tensor */
    double expect[NT];
    for (int i = 0; i < NT; i++) {
        const Param *p = param_find(&ps, want[i]);
        expect[i] = l2(p->t.grad, p->t.n);
    }
    ClipStats st;
    clipper_apply(&cl, clipper_global_norm(&cl), &st);
    cr_assert(st.clipped);
    for (int i = 0; i < NT; i++) /* pre-clip norms; different float64 summation order: 1e-12 */
        cr_assert(fabs(cl.param_norms[i] - expect[i]) <= 1e-12 * expect[i], "%s: %g vs %g",
                  want[i], cl.param_norms[i], expect[i]);
    clipper_free(&cl);
    param_set_free(&ps);
}

static void check_label(ClipConfig c, const char *want) {
    char buf[160];
    clipper_describe(&c, buf, sizeof buf);
    cr_assert_str_eq(buf, want);
}

Test(clipper, describe_labels) {
    ClipConfig d = clip_defaults();
    const char *want[] = {"none", "global L2 norm 1", "value 1", "per-tensor L2 norm 1",
                          "AGC 0.01", "ZClip z>2.5", "AdaGC 1.05", "auto p90"};
    _Static_assert(sizeof want / sizeof *want == CLIP_METHOD_COUNT, "a label for every method");
    for (int m = CLIP_NONE; m < CLIP_METHOD_COUNT; m++) {
        ClipConfig c = d;
        c.grad = m;
        check_label(c, want[m]);
    }
    ClipConfig c = d;
    c.grad = CLIP_GLOBAL_NORM, c.norm_type = INFINITY;
    check_label(c, "global Linf norm 1");
    c = d;
    c.grad = CLIP_AGC, c.agc_clipping = 0.16;
    snprintf(c.exclude, sizeof c.exclude, "w_out");
    check_label(c, "AGC 0.16 excl. w_out");
    c = d;
    c.grad = CLIP_ZCLIP, c.zclip_mode = CLIP_ZCLIP_PERCENTILE;
    check_label(c, "ZClip mean+2.5sd");
    c = d;
    c.weight = 0.01;
    snprintf(c.weight_only, sizeof c.weight_only, "critic.*");
    check_label(c, "weight clamp 0.01 on critic.*");
    c.grad = CLIP_GLOBAL_NORM;
    snprintf(c.only, sizeof c.only, "w*");
    check_label(c, "global L2 norm 1 only w* + weight clamp 0.01 on critic.*");
    char tiny[6];
    clipper_describe(&c, tiny, sizeof tiny); /* truncates, terminated */
    cr_assert_str_eq(tiny, "globa");
}

/* auto's label gains the threshold it chose once its warm-up is over. */
Test(clipper, describe_auto_run) {
    ParamSet ps;
    make_set(&ps, "model");
    ClipConfig c = test_config(CLIP_AUTO);
    Clipper cl;
    clipper_init(&cl, &c, &ps);
    char buf[96], want[96];
    clipper_describe_run(&cl, buf, sizeof buf);
    cr_assert_str_eq(buf, "auto p90");
    Trace tr = {malloc((size_t)STEPS * ps.n * 4), calloc(STEPS, sizeof(ClipStats))};
    run_steps(&cl, &ps, 0, 6, &tr);
    cr_assert(isfinite(cl.autoc.threshold));
    snprintf(want, sizeof want, "auto p90 (threshold chosen: %.3g)", cl.autoc.threshold);
    clipper_describe_run(&cl, buf, sizeof buf);
    cr_assert_str_eq(buf, want);
    free(tr.grads), free(tr.st);
    clipper_free(&cl);
    param_set_free(&ps);
}

/* AGC's `clipped` comes from the library's count, not from comparing global
 * norms: a tiny unit clipped beside a huge one changes no double norm, and
 * used to be reported as "not clipped". */
Test(clipper, agc_clipped_even_when_the_global_norm_cannot_show_it) {
    ParamSet ps;
    make_set(&ps, "model");
    ClipConfig c = clip_defaults();
    c.grad = CLIP_AGC;
    c.agc_clipping = 0.01;
    Clipper cl;
    clipper_init(&cl, &c, &ps);
    /* every unit: ||G_u|| = 1e6 sqrt(k) far below 0.01 ||W_u|| = 1e7 sqrt(k) ... */
    for (size_t i = 0; i < ps.n; i++) ps.grad[i] = 1e6f, ps.data[i] = 1e9f;
    /* ... but w1's first row: ||G|| 2.2e-3 above 0.01 * max(||W||, 1e-3) = 1e-5 */
    Param *w1 = param_find(&ps, "w1");
    for (int j = 0; j < 5; j++) w1->t.data[j] = 1e-9f, w1->t.grad[j] = 1e-3f;
    double pre = clipper_global_norm(&cl);
    ClipStats st;
    clipper_apply(&cl, pre, &st);
    cr_assert(w1->t.grad[0] < 1e-3f, "the tiny unit was not clipped");
    cr_assert(clipper_global_norm(&cl) == pre, "the clip should be invisible in the global norm");
    cr_assert_eq(st.clipped, 1, "clipped not reported");
    clipper_free(&cl);
    param_set_free(&ps);
}

/* ---------------------------------------------------------------- signs, by hand */

/* The clipper on negative gradients with the max norm (p = inf): the decisive
 * element is -8 (w1), so a global bound of 2 scales everything by 2 / (8 + 1e-6)
 * and a per-tensor bound of 2 scales w1 and w_out (max |g| 4) and leaves b1 and
 * b_out (max |g| 1) alone. Hand-computed, not the library's numbers. */
Test(clipper, max_norm_of_negative_gradients_by_hand) {
    for (int method = CLIP_GLOBAL_NORM; method <= CLIP_NORM; method += CLIP_NORM - CLIP_GLOBAL_NORM) {
        ParamSet ps;
        make_set(&ps, "model");
        ClipConfig c = test_config(method);
        c.max_norm = 2, c.norm_type = INFINITY;
        Clipper cl;
        clipper_init(&cl, &c, &ps);
        for (int i = 0; i < ps.count; i++) {
            Param *p = &ps.params[i];
            if (p->buffer) continue;
            int w1 = !strcmp(p->name, "w1"), wout = !strcmp(p->name, "w_out");
            for (size_t j = 0; j < p->t.n; j++) /* all negative; w1[3] = -8, w_out up to -4 */
                p->t.grad[j] = w1 && j == 3 ? -8.0f : wout ? -4.0f + 0.5f * (float)(j % 3) : -1.0f;
        }
        float *before = malloc(ps.n * sizeof(float));
        memcpy(before, ps.grad, ps.n * sizeof(float));
        ClipStats st;
        clipper_apply(&cl, clipper_global_norm(&cl), &st);
        cr_assert(st.clipped, "method %d: nothing clipped", method);
        for (int i = 0; i < ps.count; i++) {
            const Param *p = &ps.params[i];
            if (p->buffer) continue;
            float tmax = !strcmp(p->name, "w1") ? 8.0f : !strcmp(p->name, "w_out") ? 4.0f : 1.0f;
            float m = method == CLIP_GLOBAL_NORM ? 8.0f : tmax;
            float coef = m > 2 ? 2.0f * (1.0f / (m + 1e-6f)) : 1.0f;
            for (size_t j = 0; j < p->t.n; j++) {
                float want = before[p->offset + j] * coef;
                cr_assert(p->t.grad[j] == want, "method %d, %s[%zu]: %.9g, expected %.9g", method,
                          p->name, j, (double)p->t.grad[j], (double)want);
            }
        }
        free(before);
        clipper_free(&cl);
        param_set_free(&ps);
    }
}
