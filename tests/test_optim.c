/* test_optim.c: optimizers and schedules against torch.optim (tests/ref/ref_optim.py):
 * the parameters after each step and, far more sensitive, each step's change,
 * closed-form checks of weight decay and schedule landmarks, and a sanity check
 * of the [optim] config table (inspected directly: config.c is not used here). */
#include <criterion/criterion.h>
#include <math.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include "optim.h"
#include "params.h"
#include "tfile.h"

#define STEPS 5 /* ref_optim.py STEPS */
#define NW 35   /* w [5, 7] */
#define NB 7    /* b [7] */

/* ---- parity with torch.optim ---- */

typedef struct {
    const char *name;
    OptimConfig cfg;
} Variant;

/* Must match VARIANTS in ref_optim.py (a mismatch fails the parity test). */
static const Variant VARIANTS[] = {
    {"sgd", {.kind = OPTIM_SGD, .lr = 0.1}},
    {"sgd_momentum", {.kind = OPTIM_SGD, .lr = 0.1, .momentum = 0.9}},
    {"sgd_nesterov", {.kind = OPTIM_SGD, .lr = 0.1, .momentum = 0.9, .nesterov = 1}},
    {"sgd_wd", {.kind = OPTIM_SGD, .lr = 0.1, .momentum = 0.5, .weight_decay = 0.05}},
    {"adam", {.kind = OPTIM_ADAM, .lr = 1e-2, .beta1 = 0.9, .beta2 = 0.999, .eps = 1e-8}},
    {"adam_wd",
     {.kind = OPTIM_ADAM, .lr = 1e-2, .beta1 = 0.9, .beta2 = 0.999, .eps = 1e-8,
      .weight_decay = 0.1}},
    {"adamw",
     {.kind = OPTIM_ADAMW, .lr = 1e-2, .beta1 = 0.8, .beta2 = 0.95, .eps = 1e-6,
      .weight_decay = 0.1}},
    {"rmsprop", {.kind = OPTIM_RMSPROP, .lr = 1e-2, .alpha = 0.99, .eps = 1e-8}},
    {"rmsprop_momentum",
     {.kind = OPTIM_RMSPROP, .lr = 1e-2, .alpha = 0.9, .eps = 1e-8, .momentum = 0.9}},
    {"rmsprop_wd",
     {.kind = OPTIM_RMSPROP, .lr = 1e-2, .alpha = 0.99, .eps = 1e-8, .weight_decay = 0.05}},
};

static const Variant *variant(const char *name) {
    for (size_t i = 0; i < sizeof VARIANTS / sizeof VARIANTS[0]; i++)
        if (strcmp(VARIANTS[i].name, name) == 0) return &VARIANTS[i];
    cr_assert_fail("no variant %s", name);
    return NULL;
}

/* w (decay), a buffer between them (must never be stepped), b (no decay). */
static void make_params(ParamSet *ps, Tensor **w, Tensor **buf, Tensor **b) {
    static const int ws[2] = {5, 7}, bs[1] = {7};
    param_set_init(ps, "model", 3);
    *w = param_add(ps, "w", 2, ws, 1);
    *buf = param_add_buffer(ps, "running_mean", 1, bs);
    *b = param_add(ps, "b", 1, bs, 0);
    param_alloc(ps);
    param_init_const(*buf, 3.0f);
}

/* Each step's change against torch's: |d - d_ref| <= 2 ulp(parameter) + 2e-6 |d_ref|.
 * Both parameters are float32, so their difference carries the rounding of the
 * two new values (half an ulp each side, each of us and torch): 2 ulp; the rest
 * of the change must agree to 2e-6 of itself (measured: within 1e-7 for every
 * variant). An error of 1e-5 per step on a
 * parameter of size 1 is 1e-3 of a change of 1e-2, far outside that, where the
 * absolute comparison (rtol 1e-5 of the parameter) could not see it. */
static void assert_delta(const float *now, const float *prev, const float *ref_now,
                         const float *ref_prev, size_t n, const char *what) {
    for (size_t i = 0; i < n; i++) {
        double d = (double)now[i] - prev[i], dr = (double)ref_now[i] - ref_prev[i];
        float big = fmaxf(fmaxf(fabsf(now[i]), fabsf(prev[i])), fmaxf(fabsf(ref_now[i]), fabsf(ref_prev[i])));
        double ulp = (double)nextafterf(big, INFINITY) - big;
        cr_assert(fabs(d - dr) <= 2 * ulp + 2e-6 * fabs(dr),
                  "%s, element %zu: change %.9g, torch %.9g (off by %.3g of it; parameter %.6g)", what,
                  i, d, dr, dr != 0 ? fabs(d - dr) / fabs(dr) : INFINITY, (double)now[i]);
    }
}

static void run_parity(const char *name) {
    const Variant *var = variant(name);
    TFile *tf = tfile_load("ref_optim");
    const float *gw = tfile_f32(tf, "gw"), *gb = tfile_f32(tf, "gb");
    const double *lr_factor = tfile_f64(tf, "lr_factor@f64");
    char key[64], what[96];
    snprintf(key, sizeof key, "%s.w", name);
    const float *ref_w = tfile_f32(tf, key);
    snprintf(key, sizeof key, "%s.b", name);
    const float *ref_b = tfile_f32(tf, key);

    ParamSet ps;
    Tensor *w, *buf, *b;
    make_params(&ps, &w, &buf, &b);
    memcpy(w->data, tfile_f32(tf, "w0"), NW * sizeof(float));
    memcpy(b->data, tfile_f32(tf, "b0"), NB * sizeof(float));
    Optim o;
    optim_init(&o, &var->cfg, ps.n);
    const float *w0 = tfile_f32(tf, "w0"), *b0 = tfile_f32(tf, "b0");
    float wprev[NW], bprev[NB];
    for (int k = 0; k < STEPS; k++) {
        memcpy(w->grad, gw + k * NW, NW * sizeof(float));
        memcpy(b->grad, gb + k * NB, NB * sizeof(float));
        memcpy(wprev, w->data, sizeof wprev);
        memcpy(bprev, b->data, sizeof bprev);
        optim_step(&o, &ps, var->cfg.lr * lr_factor[k]);
        snprintf(what, sizeof what, "%s: w's change in step %d", name, k + 1);
        assert_delta(w->data, wprev, ref_w + k * NW, k ? ref_w + (k - 1) * NW : w0, NW, what);
        snprintf(what, sizeof what, "%s: b's change in step %d", name, k + 1);
        assert_delta(b->data, bprev, ref_b + k * NB, k ? ref_b + (k - 1) * NB : b0, NB, what);
        /* float32 state after <= 5 steps: torch may fuse (FMA) where we round
         * twice, a few ulp at most; atol 1e-6, rtol 1e-5. */
        snprintf(what, sizeof what, "%s: w after step %d", name, k + 1);
        assert_close(w->data, ref_w + k * NW, NW, 1e-6, 1e-5, what);
        snprintf(what, sizeof what, "%s: b after step %d", name, k + 1);
        assert_close(b->data, ref_b + k * NB, NB, 1e-6, 1e-5, what);
        /* The step reads gradients, never writes them. */
        assert_close(w->grad, gw + k * NW, NW, 0, 0, "w.grad unchanged");
        assert_close(b->grad, gb + k * NB, NB, 0, 0, "b.grad unchanged");
    }
    for (size_t i = 0; i < buf->n; i++) cr_assert_eq(buf->data[i], 3.0f, "buffer was stepped");
    cr_assert_eq(o.t, STEPS);
    optim_free(&o);
    param_set_free(&ps);
    tfile_free(tf);
}

#define PARITY(v) \
    Test(optim_parity, v) { run_parity(#v); }
PARITY(sgd)
PARITY(sgd_momentum)
PARITY(sgd_nesterov)
PARITY(sgd_wd)
PARITY(adam)
PARITY(adam_wd)
PARITY(adamw)
PARITY(rmsprop)
PARITY(rmsprop_momentum)
PARITY(rmsprop_wd)

/* ---- weight decay in closed form: zero gradients leave only the decay ---- */

static void decay_only(const OptimConfig *cfg, double lr, float expect_w_factor) {
    ParamSet ps;
    Tensor *w, *buf, *b;
    make_params(&ps, &w, &buf, &b);
    param_init_const(w, 2.0f);
    param_init_const(b, 2.0f);
    Optim o;
    optim_init(&o, cfg, ps.n);
    optim_step(&o, &ps, lr);
    for (size_t i = 0; i < w->n; i++)
        cr_assert_float_eq(w->data[i], 2.0f * expect_w_factor, 1e-6f, "w[%zu] = %g", i,
                           (double)w->data[i]);
    for (size_t i = 0; i < b->n; i++) cr_assert_eq(b->data[i], 2.0f, "b decayed: decay flag 0");
    optim_free(&o);
    param_set_free(&ps);
}

Test(optim_decay, sgd_l2_only_on_decay_params) {
    OptimConfig c = {.kind = OPTIM_SGD, .lr = 0.1, .weight_decay = 0.5};
    decay_only(&c, 0.1, 1.0f - 0.1f * 0.5f); /* p - lr*wd*p */
}

Test(optim_decay, adamw_decoupled_only_on_decay_params) {
    OptimConfig c = {.kind = OPTIM_ADAMW, .lr = 0.2, .beta1 = 0.9, .beta2 = 0.999,
                     .eps = 1e-8, .weight_decay = 0.25};
    decay_only(&c, 0.2, 1.0f - 0.2f * 0.25f); /* zero moments: Adam part is 0/(0+eps) */
}

/* ---- schedules ---- */

typedef struct {
    const char *name;
    int schedule;
    double lr;
    long warmup;
    double min_lr;
    long total;
} Sched;

/* Must match SCHEDULES in ref_optim.py. */
static const Sched SCHEDULES[] = {
    {"constant_warmup", SCHED_CONSTANT, 0.1, 5, 0.0, 20},
    {"cosine", SCHED_COSINE, 0.1, 0, 0.0, 20},
    {"cosine_warmup", SCHED_COSINE, 0.1, 5, 1e-3, 25},
    {"linear", SCHED_LINEAR, 0.05, 0, 0.0, 10},
    {"linear_warmup", SCHED_LINEAR, 0.1, 4, 0.01, 24},
};

static OptimConfig sched_cfg(const Sched *s) {
    OptimConfig c = {.kind = OPTIM_SGD, .lr = s->lr, .schedule = s->schedule,
                     .warmup_steps = s->warmup, .min_lr = s->min_lr};
    return c;
}

static void assert_lr(double got, double want, const char *what, long step) {
    /* double closed form vs torch's recursive schedulers: atol 1e-12, rtol 1e-9. */
    cr_assert(fabs(got - want) <= 1e-12 + 1e-9 * fabs(want), "%s step %ld: got %.17g, want %.17g",
              what, step, got, want);
}

Test(optim_schedule, matches_torch_lr_scheduler) {
    TFile *tf = tfile_load("ref_optim");
    for (size_t i = 0; i < sizeof SCHEDULES / sizeof SCHEDULES[0]; i++) {
        const Sched *s = &SCHEDULES[i];
        char key[64];
        snprintf(key, sizeof key, "sched.%s@f64", s->name);
        const TRec *r = tfile_get(tf, key);
        cr_assert_eq(r->n, (size_t)s->total + 4, "%s: fixture length", s->name);
        const double *want = r->data;
        OptimConfig c = sched_cfg(s);
        for (long step = 0; step < (long)r->n; step++)
            assert_lr(optim_lr_at(&c, step, s->total), want[step], s->name, step);
    }
    tfile_free(tf);
}

Test(optim_schedule, landmarks) {
    const Sched *cw = &SCHEDULES[2], *lw = &SCHEDULES[4];
    const Sched *sets[2] = {cw, lw};
    for (int i = 0; i < 2; i++) {
        const Sched *s = sets[i];
        OptimConfig c = sched_cfg(s);
        long mid = s->warmup + (s->total - s->warmup) / 2; /* spans are even */
        assert_lr(optim_lr_at(&c, 0, s->total), s->lr / (double)s->warmup, s->name, 0);
        assert_lr(optim_lr_at(&c, s->warmup - 1, s->total), s->lr, s->name, s->warmup - 1);
        assert_lr(optim_lr_at(&c, s->warmup, s->total), s->lr, s->name, s->warmup);
        assert_lr(optim_lr_at(&c, mid, s->total), (s->lr + s->min_lr) / 2, s->name, mid);
        assert_lr(optim_lr_at(&c, s->total, s->total), s->min_lr, s->name, s->total);
        assert_lr(optim_lr_at(&c, s->total + 1000, s->total), s->min_lr, s->name,
                  s->total + 1000);
        for (long t = s->warmup; t < s->total; t++) /* decay never rises */
            cr_assert(optim_lr_at(&c, t + 1, s->total) <= optim_lr_at(&c, t, s->total));
    }
    OptimConfig flat = {.lr = 0.3, .schedule = SCHED_CONSTANT};
    cr_assert_eq(optim_lr_at(&flat, 0, 10), 0.3);
    cr_assert_eq(optim_lr_at(&flat, 1000000, 10), 0.3);
}

/* ---- [optim] config table ---- */

static const CfgKey *find_key(const char *name) {
    const CfgSection *s = &optim_config_section;
    for (int i = 0; i < s->nkeys; i++)
        if (strcmp(s->keys[i].name, name) == 0) return &s->keys[i];
    return NULL;
}

/* Parse one default as config.c must (full consumption, range, choices) and
 * store it in *c; fails the test if the default is not acceptable. */
static void apply_default(const CfgKey *k, OptimConfig *c) {
    char *end = NULL;
    void *field = (char *)c + k->offset;
    switch (k->type) {
    case CFG_DOUBLE: {
        double v = strtod(k->def, &end);
        cr_assert(*end == '\0' && isfinite(v), "%s: default '%s' not a number", k->name, k->def);
        cr_assert(v >= k->min && v <= k->max, "%s: default %g outside [%g, %g]", k->name, v,
                  k->min, k->max);
        *(double *)field = v;
        break;
    }
    case CFG_LONG: {
        long v = strtol(k->def, &end, 10);
        cr_assert(*end == '\0', "%s: default '%s' not an integer", k->name, k->def);
        cr_assert(v >= k->min && v <= k->max, "%s: default %ld out of range", k->name, v);
        *(long *)field = v;
        break;
    }
    case CFG_BOOL:
        cr_assert(strcmp(k->def, "true") == 0 || strcmp(k->def, "false") == 0,
                  "%s: default '%s' not true/false", k->name, k->def);
        *(int *)field = strcmp(k->def, "true") == 0;
        break;
    case CFG_ENUM: {
        int idx = -1;
        for (int j = 0; k->choices[j]; j++)
            if (strcmp(k->choices[j], k->def) == 0) idx = j;
        cr_assert(idx >= 0, "%s: default '%s' not among the choices", k->name, k->def);
        *(int *)field = idx;
        break;
    }
    default:
        cr_assert_fail("%s: unexpected type %d for an OptimConfig field", k->name, (int)k->type);
    }
}

Test(optim_config, table_is_complete_and_consistent) {
    const CfgSection *s = &optim_config_section;
    cr_assert_str_eq(s->name, "optim");
    cr_assert(s->help && *s->help);
    /* Every OptimConfig field, under its own name, with the type that fits it. */
    static const struct { const char *name; size_t off; CfgType type; } fields[] = {
        {"kind", offsetof(OptimConfig, kind), CFG_ENUM},
        {"lr", offsetof(OptimConfig, lr), CFG_DOUBLE},
        {"momentum", offsetof(OptimConfig, momentum), CFG_DOUBLE},
        {"nesterov", offsetof(OptimConfig, nesterov), CFG_BOOL},
        {"beta1", offsetof(OptimConfig, beta1), CFG_DOUBLE},
        {"beta2", offsetof(OptimConfig, beta2), CFG_DOUBLE},
        {"eps", offsetof(OptimConfig, eps), CFG_DOUBLE},
        {"alpha", offsetof(OptimConfig, alpha), CFG_DOUBLE},
        {"weight_decay", offsetof(OptimConfig, weight_decay), CFG_DOUBLE},
        {"schedule", offsetof(OptimConfig, schedule), CFG_ENUM},
        {"warmup_steps", offsetof(OptimConfig, warmup_steps), CFG_LONG},
        {"min_lr", offsetof(OptimConfig, min_lr), CFG_DOUBLE},
    };
    size_t nf = sizeof fields / sizeof fields[0];
    cr_assert_eq(s->nkeys, (int)nf, "table has %d keys, OptimConfig %zu fields", s->nkeys, nf);
    for (size_t i = 0; i < nf; i++) {
        const CfgKey *k = find_key(fields[i].name);
        cr_assert(k, "no key for field %s", fields[i].name);
        cr_assert_eq(k->offset, fields[i].off, "%s: wrong offset", k->name);
        cr_assert_eq(k->type, fields[i].type, "%s: wrong type", k->name);
        cr_assert(k->help && *k->help, "%s: no help", k->name);
        cr_assert(k->def, "%s: no default", k->name);
        if (k->type == CFG_DOUBLE || k->type == CFG_LONG)
            cr_assert(k->min <= k->max, "%s: empty range", k->name);
        cr_assert_eq(k->type == CFG_ENUM, k->choices != NULL, "%s: choices", k->name);
    }
}

Test(optim_config, choices_follow_the_enums) {
    const CfgKey *kind = find_key("kind"), *sched = find_key("schedule");
    cr_assert(kind && sched);
    static const char *const kinds[] = {"sgd", "adam", "adamw", "rmsprop"};
    static const char *const scheds[] = {"constant", "cosine", "linear"};
    static const int kv[] = {OPTIM_SGD, OPTIM_ADAM, OPTIM_ADAMW, OPTIM_RMSPROP};
    static const int sv[] = {SCHED_CONSTANT, SCHED_COSINE, SCHED_LINEAR};
    for (int i = 0; i < 4; i++) cr_assert_str_eq(kind->choices[kv[i]], kinds[i]);
    cr_assert_null(kind->choices[4]);
    for (int i = 0; i < 3; i++) cr_assert_str_eq(sched->choices[sv[i]], scheds[i]);
    cr_assert_null(sched->choices[3]);
}

Test(optim_config, defaults_parse_in_range_and_are_the_documented_ones) {
    OptimConfig c;
    memset(&c, 0xff, sizeof c); /* every field must be written by a default */
    for (int i = 0; i < optim_config_section.nkeys; i++)
        apply_default(&optim_config_section.keys[i], &c);
    cr_assert_eq(c.kind, OPTIM_ADAM);
    cr_assert_eq(c.lr, 1e-3);
    cr_assert_eq(c.momentum, 0.0);
    cr_assert_eq(c.nesterov, 0);
    cr_assert_eq(c.beta1, 0.9);
    cr_assert_eq(c.beta2, 0.999);
    cr_assert_eq(c.eps, 1e-8);
    cr_assert_eq(c.alpha, 0.99);
    cr_assert_eq(c.weight_decay, 0.0);
    cr_assert_eq(c.schedule, SCHED_CONSTANT);
    cr_assert_eq(c.warmup_steps, 0);
    cr_assert_eq(c.min_lr, 0.0);
}
