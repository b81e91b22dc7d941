/* clipper.c: the [clip] section and the trainer's clip steps (see clipper.h).
 * The mathematics is clip.c's; this file maps ParamSets onto ClipTensor views,
 * selects tensors by name (only/exclude globs), dispatches on the configured
 * method, keeps and checkpoints the stateful methods' state, clamps weights
 * after the optimizer step and measures what the step did. */
#include "clipper.h"

#include <ctype.h>
#include <fnmatch.h>
#include <math.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "common.h"

/* ---------------------------------------------------------------- [clip] */

/* Order = ClipMethod. */
static const char *const method_choices[] = {"none", "global_norm", "value", "norm", "agc",
                                             "zclip", "adagc", "auto", NULL};
_Static_assert(sizeof method_choices / sizeof *method_choices == CLIP_METHOD_COUNT + 1,
               "one [clip] grad name per ClipMethod, in enum order (clipper.h)");
static const char *const zclip_mode_choices[] = {"zscore", "percentile", NULL};

#define CLIP_KEY(n, t, f, d, lo, hi, ch, h) {n, t, offsetof(ClipConfig, f), d, lo, hi, ch, h}
#define CLIP_NUM(n, t, f, d, lo, hi, h) CLIP_KEY(n, t, f, d, lo, hi, NULL, h)
static const CfgKey clip_keys[] = {
    CLIP_KEY("grad", CFG_ENUM, grad, "none", 0, 0, method_choices,
             "gradient clipping method, applied after backward and before the optimizer step"),
    CLIP_NUM("max_norm", CFG_DOUBLE, max_norm, "1", 0, 1e30,
             "global_norm: rescale all gradients when their total norm exceeds this (Pascanu "
             "et al. 2013); norm: the same bound for each tensor alone (Keras clipnorm)"),
    CLIP_NUM("norm_type", CFG_NORM, norm_type, "2", 1e-6, 1e6,
             "p of the norm for global_norm, norm and auto: any p > 0, or inf (max |g|)"),
    CLIP_NUM("value", CFG_DOUBLE, value, "1", 0, 1e30,
             "value: clamp each gradient element to [-value, value] (clip_grad_value_; "
             "the seeds' range 0.5-1; changes the gradient's direction)"),
    CLIP_NUM("agc_clipping", CFG_DOUBLE, agc_clipping, "0.01", 0, 1e30,
             "agc: lambda, max ||G_u||/||W_u|| per unit (Brock et al. 2021: 0.01 at batch 4096, "
             "~0.16 at batch 128-256)"),
    CLIP_NUM("agc_eps", CFG_DOUBLE, agc_eps, "1e-3", 0, 1,
             "agc: floor on the weight-unit norm, so zero-initialised units can move (optax)"),
    CLIP_NUM("zclip_alpha", CFG_DOUBLE, zclip_alpha, "0.97", 0, 1,
             "zclip: EMA smoothing of the mean and variance of the gradient norm"),
    CLIP_NUM("zclip_z_thresh", CFG_DOUBLE, zclip_z_thresh, "2.5", 1e-6, 1e6,
             "zclip: a norm more than this many standard deviations above its mean is a spike"),
    CLIP_NUM("zclip_max_norm", CFG_NORM, zclip_max_norm, "1", 1e-30, 1e30,
             "zclip: absolute cap, also the warm-up's global_norm threshold; inf = none"),
    CLIP_NUM("zclip_warmup", CFG_INT, zclip_warmup, "25", 1, 1000000,
             "zclip: steps whose norms seed the mean and variance"),
    CLIP_KEY("zclip_mode", CFG_ENUM, zclip_mode, "zscore", 0, 0, zclip_mode_choices,
             "zclip: zscore (spike threshold shrinks as the spike grows) or percentile "
             "(clip at mean + z_thresh * std)"),
    CLIP_NUM("zclip_skip_on_spike", CFG_BOOL, zclip_skip_on_spike, "false", 0, 1,
             "zclip: keep spikes out of the mean/variance EMA"),
    CLIP_NUM("adagc_beta", CFG_DOUBLE, adagc_beta, "0.98", 0, 0.999999,
             "adagc: EMA smoothing of each tensor's clipped gradient norm"),
    CLIP_NUM("adagc_lambda_rel", CFG_DOUBLE, adagc_lambda_rel, "1.05", 1e-6, 1e6,
             "adagc: a tensor is clipped to lambda_rel times its EMA norm (Wang et al. 2025)"),
    CLIP_NUM("adagc_lambda_abs", CFG_DOUBLE, adagc_lambda_abs, "1", 0, 1e30,
             "adagc: global-norm threshold during the warm-up"),
    CLIP_NUM("adagc_warmup", CFG_INT, adagc_warmup, "100", 0, 1000000,
             "adagc: steps of global clipping that seed the per-tensor EMAs"),
    CLIP_NUM("auto_warmup", CFG_INT, auto_warmup, "100", 1, 1000000,
             "auto: steps logged unclipped before the threshold is fixed (unprotected!)"),
    CLIP_NUM("auto_percentile", CFG_DOUBLE, auto_percentile, "90", 0, 100,
             "auto: the threshold is this percentile of the warm-up norms (the seeds' recipe)"),
    CLIP_NUM("only", CFG_STRING, only, "", 0, 0,
             "gradient clip only these tensors: comma-separated globs on parameter names "
             "(or <group>.<name>); empty = all"),
    CLIP_NUM("exclude", CFG_STRING, exclude, "", 0, 0,
             "gradient clip all selected tensors but these globs (NFNets: AGC off for the "
             "classifier, exclude = w_out)"),
    CLIP_NUM("weight", CFG_DOUBLE, weight, "0", 0, 1e30,
             "clamp weights to [-weight, weight] after each optimizer step (WGAN critic: "
             "0.01, Arjovsky et al. 2017); 0 = off"),
    CLIP_NUM("weight_only", CFG_STRING, weight_only, "", 0, 0,
             "weight clamp only these tensors (globs, e.g. critic.*); empty = all"),
    CLIP_NUM("weight_exclude", CFG_STRING, weight_exclude, "", 0, 0,
             "weight clamp all selected tensors but these globs"),
    CLIP_NUM("log_param_norms", CFG_BOOL, log_param_norms, "false", 0, 1,
             "measure each tensor's pre-clip gradient L2 norm every step (grad_norms.csv)"),
};
/* Which grad methods read a key: its name's prefix, or the table below. */
static const char *clip_key_unused(const void *s, const CfgKey *k) {
    static const struct { const char *key; unsigned methods; } readers[] = {
        {"max_norm", 1u << CLIP_GLOBAL_NORM | 1u << CLIP_NORM},
        {"norm_type", 1u << CLIP_GLOBAL_NORM | 1u << CLIP_NORM | 1u << CLIP_AUTO},
        {"value", 1u << CLIP_VALUE},
        {"agc_", 1u << CLIP_AGC},
        {"zclip_", 1u << CLIP_ZCLIP},
        {"adagc_", 1u << CLIP_ADAGC},
        {"auto_", 1u << CLIP_AUTO},
        {"only", ~1u},
        {"exclude", ~1u},
    };
    static char why[128];
    const ClipConfig *c = s;
    if (!strcmp(k->name, "weight_only") || !strcmp(k->name, "weight_exclude"))
        return c->weight > 0 ? NULL : "read only with weight > 0";
    for (size_t i = 0; i < sizeof readers / sizeof *readers; i++) {
        size_t n = strlen(readers[i].key);
        int prefix = readers[i].key[n - 1] == '_';
        if (prefix ? strncmp(k->name, readers[i].key, n) != 0 : strcmp(k->name, readers[i].key) != 0)
            continue;
        if (readers[i].methods >> c->grad & 1u) return NULL;
        int w = snprintf(why, sizeof why, "grad = %s; read with grad =", method_choices[c->grad]);
        for (int m = 1; method_choices[m] && w < (int)sizeof why - 16; m++)
            if (readers[i].methods >> m & 1u) w += snprintf(why + w, sizeof why - (size_t)w, " %s", method_choices[m]);
        return why;
    }
    return NULL;
}

const CfgSection clip_config_section = {"clip", clip_keys,
                                        (int)(sizeof clip_keys / sizeof *clip_keys),
                                        "gradient and weight clipping", clip_key_unused};

/* ---------------------------------------------------------------- selection */

/* The next comma-separated, space-trimmed pattern of *s into tok; 0 at the end. */
static int next_pattern(const char **s, char *tok, size_t len) {
    while (**s == ',' || isspace((unsigned char)**s)) (*s)++;
    if (!**s) return 0;
    const char *start = *s, *comma = strchr(start, ',');
    size_t n = comma ? (size_t)(comma - start) : strlen(start);
    *s += n;
    while (n && isspace((unsigned char)start[n - 1])) n--;
    snprintf(tok, len, "%.*s", (int)n, start);
    return 1;
}

static int has_patterns(const char *list) {
    char tok[CFG_STR_MAX];
    return next_pattern(&list, tok, sizeof tok);
}

/* A glob matches a tensor by its name or by "<set>.<name>". */
static int pattern_matches(const char *pat, const ParamSet *ps, const Param *p) {
    char qualified[sizeof ps->name + PARAM_NAME_MAX + 2];
    snprintf(qualified, sizeof qualified, "%s.%s", ps->name, p->name);
    return fnmatch(pat, p->name, 0) == 0 || fnmatch(pat, qualified, 0) == 0;
}

static int list_matches(const char *list, const ParamSet *ps, const Param *p) {
    char tok[CFG_STR_MAX];
    while (next_pattern(&list, tok, sizeof tok))
        if (pattern_matches(tok, ps, p)) return 1;
    return 0;
}

static int is_selected(const char *only, const char *exclude, const ParamSet *ps,
                       const Param *p) {
    if (has_patterns(only) && !list_matches(only, ps, p)) return 0;
    return !list_matches(exclude, ps, p);
}

/* "critic.*" in the generator's group: a pattern qualified by another group's
 * name (a literal prefix that is neither this set's name nor the first
 * component of one of its tensor names) is meant for another group. */
static int meant_for_other_group(const char *pat, const ParamSet *ps) {
    const char *dot = strchr(pat, '.');
    if (!dot) return 0;
    size_t k = (size_t)(dot - pat);
    for (size_t i = 0; i < k; i++)
        if (strchr("*?[\\", pat[i])) return 0;
    if (strlen(ps->name) == k && strncmp(ps->name, pat, k) == 0) return 0;
    for (int i = 0; i < ps->count; i++)
        if (strncmp(ps->params[i].name, pat, k + 1) == 0) return 0;
    return 1;
}

/* A note on stderr for each pattern of `list` that selects nothing here (a typo
 * would otherwise silently clip everything, or nothing). */
static void note_unmatched(const char *key, const char *list, const ParamSet *ps) {
    char tok[CFG_STR_MAX];
    while (next_pattern(&list, tok, sizeof tok)) {
        int hit = 0;
        for (int i = 0; i < ps->count && !hit; i++)
            hit = !ps->params[i].buffer && pattern_matches(tok, ps, &ps->params[i]);
        if (hit || meant_for_other_group(tok, ps)) continue;
        fprintf(stderr, "cliplab: note: [clip] %s pattern '%s' matches no trainable tensor of "
                        "group '%s' (tensors:", key, tok, ps->name);
        for (int i = 0; i < ps->count; i++)
            if (!ps->params[i].buffer) fprintf(stderr, " %s", ps->params[i].name);
        fprintf(stderr, ")\n");
    }
}

/* ---------------------------------------------------------------- init */

static void init_views(Clipper *cl, ParamSet *ps) {
    size_t cap = (size_t)(ps->count > 0 ? ps->count : 1);
    cl->all = xcalloc(cap, sizeof *cl->all);
    cl->sel = xcalloc(cap, sizeof *cl->sel);
    cl->wsel = xcalloc(cap, sizeof *cl->wsel);
    cl->param_names = xcalloc(cap, sizeof *cl->param_names);
    const ClipConfig *c = &cl->cfg;
    for (int i = 0; i < ps->count; i++) {
        Param *p = &ps->params[i];
        if (p->buffer) continue;
        /* AGC units: rows of the [out][in...] layout (clip.h) */
        ClipTensor v = {p->t.grad, p->t.data, p->t.n,
                        (size_t)(p->t.ndim > 1 ? p->t.shape[0] : 1)};
        cl->param_names[cl->count] = p->name;
        cl->all[cl->count++] = v;
        if (is_selected(c->only, c->exclude, ps, p)) cl->sel[cl->nsel++] = v;
        if (is_selected(c->weight_only, c->weight_exclude, ps, p))
            cl->wsel[cl->nwsel++] = (ClipTensor){p->t.data, NULL, p->t.n, 0};
    }
    if (c->log_param_norms) cl->param_norms = xcalloc(cap, sizeof *cl->param_norms);
}

/* The library's state for the stateful methods; the [clip] ranges make every
 * parameter valid, so a failure can only be memory. */
static void init_state(Clipper *cl) {
    const ClipConfig *c = &cl->cfg;
    int rc = 0;
    if (c->grad == CLIP_ZCLIP) {
        ClipZClipParams p = clip_zclip_defaults();
        p.alpha = c->zclip_alpha, p.z_thresh = c->zclip_z_thresh;
        p.max_grad_norm = c->zclip_max_norm, p.warmup_steps = c->zclip_warmup;
        p.mode = c->zclip_mode, p.skip_update_on_spike = c->zclip_skip_on_spike;
        rc = clip_zclip_init(&cl->zclip, &p);
    } else if (c->grad == CLIP_ADAGC) {
        ClipAdaGCParams p = {c->adagc_beta, c->adagc_lambda_rel, c->adagc_lambda_abs,
                             c->adagc_warmup};
        rc = clip_adagc_init(&cl->adagc, &p, cl->nsel);
    } else if (c->grad == CLIP_AUTO) {
        ClipAutoParams p = {c->auto_warmup, c->auto_percentile, c->norm_type};
        rc = clip_auto_init(&cl->autoc, &p);
    }
    if (rc != 0) die("cannot set up [clip] grad = %s (out of memory?)", method_choices[c->grad]);
}

void clipper_init(Clipper *cl, const ClipConfig *cfg, ParamSet *ps) {
    memset(cl, 0, sizeof *cl);
    ASSERT(cfg->grad >= CLIP_NONE && cfg->grad < CLIP_METHOD_COUNT, "clip method %d", cfg->grad);
    cl->cfg = *cfg;
    init_views(cl, ps);
    note_unmatched("only", cfg->only, ps);
    note_unmatched("exclude", cfg->exclude, ps);
    if (cfg->weight > 0) {
        note_unmatched("weight_only", cfg->weight_only, ps);
        note_unmatched("weight_exclude", cfg->weight_exclude, ps);
    }
    init_state(cl);
}

void clipper_free(Clipper *cl) {
    if (cl->cfg.grad == CLIP_ZCLIP) clip_zclip_free(&cl->zclip);
    if (cl->cfg.grad == CLIP_ADAGC) clip_adagc_free(&cl->adagc);
    if (cl->cfg.grad == CLIP_AUTO) clip_auto_free(&cl->autoc);
    free(cl->all), free(cl->sel), free(cl->wsel);
    free(cl->param_names), free(cl->param_norms);
    cl->all = cl->sel = cl->wsel = NULL;
    cl->param_names = NULL;
    cl->param_norms = NULL;
}

int clipper_nparams(const Clipper *cl) { return cl->count; }

const char *clipper_param_name(const Clipper *cl, int i) {
    ASSERT(i >= 0 && i < cl->count, "parameter index %d of %d", i, cl->count);
    return cl->param_names[i];
}

/* ---------------------------------------------------------------- the clip step */

double clipper_global_norm(const Clipper *cl) { return clip_total_norm(cl->all, cl->count, 2.0); }

static void apply_global(Clipper *cl, ClipStats *st) {
    double total = clip_grad_norm(cl->sel, cl->nsel, cl->cfg.max_norm, cl->cfg.norm_type);
    st->threshold = cl->cfg.max_norm;
    st->clipped = cl->nsel > 0 && clip_norm_coef(cl->cfg.max_norm, total) != 1.0f;
}

static void apply_value(Clipper *cl, ClipStats *st) {
    st->clipped = clip_grad_value_count(cl->sel, cl->nsel, cl->cfg.value) > 0;
}

/* The coefficient falls with the norm, so the largest tensor decides. */
static void apply_per_tensor(Clipper *cl, ClipStats *st) {
    double largest = clip_grad_norm_per_tensor(cl->sel, cl->nsel, cl->cfg.max_norm,
                                               cl->cfg.norm_type);
    st->clipped = cl->nsel > 0 && clip_norm_coef(cl->cfg.max_norm, largest) != 1.0f;
}

static void apply_agc(Clipper *cl, ClipStats *st) {
    st->clipped = clip_agc_count(cl->sel, cl->nsel, cl->cfg.agc_clipping, cl->cfg.agc_eps) > 0;
}

static void apply_zclip(Clipper *cl, ClipStats *st) {
    double level = clip_zclip_level(&cl->zclip);
    clip_zclip_step(&cl->zclip, cl->sel, cl->nsel);
    st->clipped = cl->zclip.last.clipped;
    st->threshold = isnan(cl->zclip.clip_val) ? level : cl->zclip.last.threshold;
}

static void apply_adagc(Clipper *cl, ClipStats *st) {
    st->threshold = clip_adagc_level(&cl->adagc);
    clip_adagc_step(&cl->adagc, cl->sel, cl->nsel);
    st->clipped = cl->adagc.last.clipped > 0;
}

static void apply_auto(Clipper *cl, ClipStats *st) {
    st->threshold = cl->autoc.threshold; /* NaN until chosen, at the end of the warm-up */
    clip_auto_step(&cl->autoc, cl->sel, cl->nsel);
    st->clipped = cl->autoc.last.clipped;
}

void clipper_apply(Clipper *cl, double pre_l2, ClipStats *st) {
    for (int i = 0; cl->param_norms && i < cl->count; i++)
        cl->param_norms[i] = clip_total_norm(&cl->all[i], 1, 2.0);
    *st = (ClipStats){.pre_norm = pre_l2, .threshold = NAN};
    switch ((ClipMethod)cl->cfg.grad) {
    case CLIP_NONE: break;
    case CLIP_GLOBAL_NORM: apply_global(cl, st); break;
    case CLIP_VALUE: apply_value(cl, st); break;
    case CLIP_NORM: apply_per_tensor(cl, st); break;
    case CLIP_AGC: apply_agc(cl, st); break;
    case CLIP_ZCLIP: apply_zclip(cl, st); break;
    case CLIP_ADAGC: apply_adagc(cl, st); break;
    case CLIP_AUTO: apply_auto(cl, st); break;
    case CLIP_METHOD_COUNT: ASSERT(0, "not a clip method"); break;
    }
    st->post_norm = st->clipped ? clipper_global_norm(cl) : pre_l2;
    st->coef = pre_l2 > 0 ? st->post_norm / pre_l2 : 1.0;
}

/* WGAN weight clipping (Arjovsky et al. 2017, Algorithm 1 line 7):
 * w <- clip(w, -c, c), torch.clamp semantics, through the library's clamp. */
void clipper_clamp_weights(Clipper *cl) {
    if (cl->cfg.weight > 0) clip_grad_value(cl->wsel, cl->nwsel, cl->cfg.weight);
}

/* ---------------------------------------------------------------- checkpoint */

/* Layout: "CLPR", int32 method, int32 selected-tensor count, then the
 * method's state field by field (no struct padding in the stream). */
#define CLIPPER_MAGIC "CLPR"

static int info_put(FILE *f, const ClipStepInfo *s) {
    double d[4] = {s->norm, s->post_norm, s->threshold, s->coef};
    int32_t i[2] = {s->clipped, s->warmup};
    return io_put(f, d, sizeof *d, 4) || io_put(f, i, sizeof *i, 2) ? -1 : 0;
}

static int info_get(FILE *f, ClipStepInfo *s) {
    double d[4];
    int32_t i[2];
    if (io_get(f, d, sizeof *d, 4) || io_get(f, i, sizeof *i, 2)) return -1;
    *s = (ClipStepInfo){d[0], d[1], d[2], d[3], i[0], i[1]};
    return 0;
}

/* n doubles into a fresh buffer (NULL on a short read); caller frees. */
static double *doubles_get(FILE *f, int n) {
    double *x = xmalloc((size_t)(n > 0 ? n : 1) * sizeof *x);
    if (io_get(f, x, sizeof *x, (size_t)n) == 0) return x;
    free(x);
    return NULL;
}

static int zclip_cap(const ClipZClip *z) { return z->p.warmup_steps > 0 ? z->p.warmup_steps : 1; }

static int zclip_save(const ClipZClip *z, FILE *f) {
    int32_t h[3] = {zclip_cap(z), z->nbuf, z->initialized};
    int64_t steps = z->steps;
    double d[4] = {z->mean, z->var, z->z, z->clip_val};
    return io_put(f, h, sizeof *h, 3) || io_put(f, &steps, sizeof steps, 1) ||
                   io_put(f, d, sizeof *d, 4) || info_put(f, &z->last) ||
                   io_put(f, z->buffer, sizeof(double), (size_t)z->nbuf)
               ? -1
               : 0;
}

static int zclip_load(ClipZClip *z, FILE *f) {
    int32_t h[3];
    int64_t steps;
    double d[4], *buf;
    ClipStepInfo last;
    if (io_get(f, h, sizeof *h, 3) || io_get(f, &steps, sizeof steps, 1) || io_get(f, d, sizeof *d, 4) ||
        info_get(f, &last) || h[0] != zclip_cap(z) || h[1] < 0 || h[1] > h[0] ||
        !(buf = doubles_get(f, h[1])))
        return -1;
    memcpy(z->buffer, buf, (size_t)h[1] * sizeof *buf);
    free(buf);
    z->nbuf = h[1], z->initialized = h[2], z->steps = steps;
    z->mean = d[0], z->var = d[1], z->z = d[2], z->clip_val = d[3];
    z->last = last;
    return 0;
}

static int adagc_save(const ClipAdaGC *a, FILE *f) {
    int64_t steps = a->steps;
    size_t n = (size_t)a->count;
    return io_put(f, &steps, sizeof steps, 1) || io_put(f, a->gamma, sizeof(double), n) ||
                   io_put(f, a->norms, sizeof(double), n) || info_put(f, &a->last)
               ? -1
               : 0;
}

static int adagc_load(ClipAdaGC *a, FILE *f) {
    int64_t steps;
    ClipStepInfo last;
    double *gamma = NULL, *norms = NULL;
    int rc = io_get(f, &steps, sizeof steps, 1) || !(gamma = doubles_get(f, a->count)) ||
             !(norms = doubles_get(f, a->count)) || info_get(f, &last);
    if (rc == 0) {
        memcpy(a->gamma, gamma, (size_t)a->count * sizeof *gamma);
        memcpy(a->norms, norms, (size_t)a->count * sizeof *norms);
        a->steps = steps, a->last = last;
    }
    free(gamma), free(norms);
    return rc ? -1 : 0;
}

static int auto_save(const ClipAuto *a, FILE *f) {
    int32_t h[2] = {a->p.warmup_steps, a->nseen};
    int64_t steps = a->steps;
    return io_put(f, h, sizeof *h, 2) || io_put(f, &steps, sizeof steps, 1) ||
                   io_put(f, &a->threshold, sizeof a->threshold, 1) || info_put(f, &a->last) ||
                   io_put(f, a->seen, sizeof(double), (size_t)a->nseen)
               ? -1
               : 0;
}

static int auto_load(ClipAuto *a, FILE *f) {
    int32_t h[2];
    int64_t steps;
    double thr, *seen;
    ClipStepInfo last;
    if (io_get(f, h, sizeof *h, 2) || io_get(f, &steps, sizeof steps, 1) || io_get(f, &thr, sizeof thr, 1) ||
        info_get(f, &last) || h[0] != a->p.warmup_steps || h[1] < 0 || h[1] > h[0] ||
        !(seen = doubles_get(f, h[1])))
        return -1;
    memcpy(a->seen, seen, (size_t)h[1] * sizeof *seen);
    free(seen);
    a->nseen = h[1], a->steps = steps, a->threshold = thr, a->last = last;
    return 0;
}

int clipper_save(const Clipper *cl, FILE *f) {
    int32_t h[2] = {cl->cfg.grad, cl->nsel};
    if (io_put(f, CLIPPER_MAGIC, 1, 4) || io_put(f, h, sizeof *h, 2)) return -1;
    switch (cl->cfg.grad) {
    case CLIP_ZCLIP: return zclip_save(&cl->zclip, f);
    case CLIP_ADAGC: return adagc_save(&cl->adagc, f);
    case CLIP_AUTO: return auto_save(&cl->autoc, f);
    default: return 0; /* the other methods keep no state between steps */
    }
}

int clipper_load(Clipper *cl, FILE *f) {
    char magic[4];
    int32_t h[2];
    if (io_get(f, magic, 1, 4) || memcmp(magic, CLIPPER_MAGIC, 4) != 0 || io_get(f, h, sizeof *h, 2) ||
        h[0] != cl->cfg.grad || h[1] != cl->nsel)
        return -1;
    switch (cl->cfg.grad) {
    case CLIP_ZCLIP: return zclip_load(&cl->zclip, f);
    case CLIP_ADAGC: return adagc_load(&cl->adagc, f);
    case CLIP_AUTO: return auto_load(&cl->autoc, f);
    default: return 0;
    }
}

/* ---------------------------------------------------------------- labels */

/* The method's label; chosen = auto's threshold once fixed (NaN otherwise). */
static void describe_method(const ClipConfig *c, double chosen, char *buf, size_t len) {
    switch ((ClipMethod)c->grad) {
    case CLIP_NONE: snprintf(buf, len, "none"); break;
    case CLIP_GLOBAL_NORM: snprintf(buf, len, "global L%g norm %g", c->norm_type, c->max_norm); break;
    case CLIP_VALUE: snprintf(buf, len, "value %g", c->value); break;
    case CLIP_NORM: snprintf(buf, len, "per-tensor L%g norm %g", c->norm_type, c->max_norm); break;
    case CLIP_AGC: snprintf(buf, len, "AGC %g", c->agc_clipping); break;
    case CLIP_ZCLIP:
        if (c->zclip_mode == CLIP_ZCLIP_ZSCORE) snprintf(buf, len, "ZClip z>%g", c->zclip_z_thresh);
        else snprintf(buf, len, "ZClip mean+%gsd", c->zclip_z_thresh);
        break;
    case CLIP_ADAGC: snprintf(buf, len, "AdaGC %g", c->adagc_lambda_rel); break;
    case CLIP_AUTO:
        if (isnan(chosen)) snprintf(buf, len, "auto p%g", c->auto_percentile);
        else snprintf(buf, len, "auto p%g (threshold chosen: %.3g)", c->auto_percentile, chosen);
        break;
    case CLIP_METHOD_COUNT: ASSERT(0, "not a clip method"); break;
    }
}

/* Append to buf (truncating safely). */
static void append(char *buf, size_t len, const char *what, const char *text) {
    size_t n = strlen(buf);
    if (n + 1 < len) snprintf(buf + n, len - n, "%s%s", what, text);
}

static void describe(const ClipConfig *c, double chosen, char *buf, size_t len) {
    char num[32];
    buf[0] = '\0';
    if (c->grad != CLIP_NONE || c->weight <= 0) {
        describe_method(c, chosen, buf, len);
        if (c->grad != CLIP_NONE && has_patterns(c->only)) append(buf, len, " only ", c->only);
        if (c->grad != CLIP_NONE && has_patterns(c->exclude))
            append(buf, len, " excl. ", c->exclude);
    }
    if (c->weight > 0) {
        snprintf(num, sizeof num, "%g", c->weight);
        append(buf, len, buf[0] ? " + weight clamp " : "weight clamp ", num);
        if (has_patterns(c->weight_only)) append(buf, len, " on ", c->weight_only);
        if (has_patterns(c->weight_exclude)) append(buf, len, " excl. ", c->weight_exclude);
    }
}

void clipper_describe(const ClipConfig *cfg, char *buf, size_t len) { describe(cfg, NAN, buf, len); }

void clipper_describe_run(const Clipper *cl, char *buf, size_t len) {
    describe(&cl->cfg, cl->cfg.grad == CLIP_AUTO ? cl->autoc.threshold : NAN, buf, len);
}
