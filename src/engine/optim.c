/* optim.c: SGD (momentum, Nesterov), Adam, AdamW and RMSProp over a ParamSet's
 * flat buffers, plus learning-rate schedules and the [optim] config table.
 *
 * Every update reproduces torch.optim 1.13 (single-tensor path) operation by
 * operation, in float32 with hyper-parameters rounded to float where torch
 * rounds them (Scalar.to<float>()), and with the same association inside
 * addcmul (p + (c*a)*b) and addcdiv (p + (c*a)/b). Per-step scalars (bias
 * corrections, step size) are computed in double as torch's Python code does.
 *
 * Weight decay applies only to parameters with Param.decay == 1; buffers
 * (Param.buffer) are never touched. The state buffers m and v hold n floats
 * each, at the same offsets as ParamSet.data/grad; both are always allocated
 * (zeroed) so checkpointing can save them without asking which are in use.
 *
 * The caller (train.c) chooses the learning rate (optim_lr_at) and runs
 * clipping before optim_step; nothing here clips. */
#include "optim.h"

#include <string.h>

#include <math.h>
#include <stddef.h>

#include "common.h"
#include "ops_kernel.h"

/* ---- [optim] config table ---- */

static const char *const optim_kinds[] = {"sgd", "adam", "adamw", "rmsprop", NULL};
static const char *const optim_schedules[] = {"constant", "cosine", "linear", NULL};

#define BETA_MAX (1.0 - 1e-9) /* beta = 1 makes Adam's bias correction 1 - beta^t zero */

#define KEY(field, type, def, lo, hi, choices, help) \
    {#field, type, offsetof(OptimConfig, field), def, lo, hi, choices, help}

static const CfgKey optim_keys[] = {
    KEY(kind, CFG_ENUM, "adam", 0, 0, optim_kinds, "optimizer"),
    KEY(lr, CFG_DOUBLE, "1e-3", 0, 1e3, NULL, "peak learning rate (after warm-up)"),
    KEY(momentum, CFG_DOUBLE, "0", 0, 1, NULL, "SGD / RMSProp momentum (0 = none)"),
    KEY(nesterov, CFG_BOOL, "false", 0, 0, NULL, "SGD: Nesterov momentum (needs momentum > 0)"),
    KEY(beta1, CFG_DOUBLE, "0.9", 0, BETA_MAX, NULL, "Adam/AdamW first-moment decay"),
    KEY(beta2, CFG_DOUBLE, "0.999", 0, BETA_MAX, NULL, "Adam/AdamW second-moment decay"),
    KEY(eps, CFG_DOUBLE, "1e-8", 0, 1, NULL, "Adam/AdamW/RMSProp: added to the root of the second moment"),
    KEY(alpha, CFG_DOUBLE, "0.99", 0, 1, NULL, "RMSProp square-average smoothing"),
    KEY(weight_decay, CFG_DOUBLE, "0", 0, 10, NULL,
        "L2 (SGD/Adam/RMSProp) or decoupled (AdamW) decay of decay-marked weights"),
    KEY(schedule, CFG_ENUM, "constant", 0, 0, optim_schedules, "learning rate after warm-up"),
    KEY(warmup_steps, CFG_LONG, "0", 0, 1e9, NULL, "linear warm-up from 0 over these steps (0 = none)"),
    KEY(min_lr, CFG_DOUBLE, "0", 0, 1e3, NULL, "learning rate the cosine/linear decay reaches at [train] steps"),
};

#undef KEY

/* Which optimizers read a key (the others ignore it). */
static const char *optim_key_unused(const void *s, const CfgKey *k) {
    static const struct { const char *key; unsigned kinds; const char *why; } readers[] = {
        {"momentum", 1u << OPTIM_SGD | 1u << OPTIM_RMSPROP, "read only by kind = sgd, rmsprop"},
        {"nesterov", 1u << OPTIM_SGD, "read only by kind = sgd"},
        {"beta1", 1u << OPTIM_ADAM | 1u << OPTIM_ADAMW, "read only by kind = adam, adamw"},
        {"beta2", 1u << OPTIM_ADAM | 1u << OPTIM_ADAMW, "read only by kind = adam, adamw"},
        {"eps", 1u << OPTIM_ADAM | 1u << OPTIM_ADAMW | 1u << OPTIM_RMSPROP,
         "read only by kind = adam, adamw, rmsprop"},
        {"alpha", 1u << OPTIM_RMSPROP, "read only by kind = rmsprop"},
    };
    const OptimConfig *o = s;
    if (!strcmp(k->name, "min_lr") && o->schedule == SCHED_CONSTANT)
        return "read only by schedule = cosine, linear";
    for (size_t i = 0; i < sizeof readers / sizeof *readers; i++)
        if (!strcmp(k->name, readers[i].key)) return readers[i].kinds >> o->kind & 1u ? NULL : readers[i].why;
    return NULL;
}

const CfgSection optim_config_section = {
    "optim", optim_keys, (int)(sizeof optim_keys / sizeof optim_keys[0]),
    "optimizer and learning-rate schedule", optim_key_unused,
};

/* ---- state ---- */

void optim_init(Optim *o, const OptimConfig *cfg, size_t n) {
    o->cfg = *cfg;
    o->m = xcalloc(n ? n : 1, sizeof(float));
    o->v = xcalloc(n ? n : 1, sizeof(float));
    o->n = n;
    o->lo = 0;
    o->t = 0;
}

void optim_init_shard(Optim *o, const OptimConfig *cfg, size_t lo, size_t hi) {
    ASSERT(lo <= hi, "shard [%zu, %zu)", lo, hi);
    optim_init(o, cfg, hi - lo);
    o->lo = lo;
}

void optim_free(Optim *o) {
    free(o->m);
    free(o->v);
    o->m = o->v = NULL;
    o->n = 0;
}

/* ---- kernels (one Param's slice; p, g, m, v: [n]) ---- */

/* The gradient with L2 decay: torch adds wd*p only when wd != 0. */
static inline float l2(float g, float p, float wd) { return wd != 0.0f ? g + wd * p : g; }

/* torch.optim.SGD, dampening 0: buf = d (first step) or mom*buf + d;
 * Nesterov: d + mom*buf, else buf; p -= lr*that. */
static void sgd_update(float *restrict p, float *restrict m, const float *restrict g, size_t n,
                       float lr, float wd, float mom, int nesterov, int first) {
    for (size_t i = 0; i < n; i++) {
        float d = l2(g[i], p[i], wd);
        if (mom != 0.0f) {
            m[i] = first ? d : m[i] * mom + d;
            d = nesterov ? d + mom * m[i] : m[i];
        }
        p[i] = p[i] + -lr * d;
    }
}

typedef struct {
    float b1, omb1, b2, omb2; /* beta, 1 - beta (rounded from double) */
    float bc2_sqrt, eps;
    float neg_step;           /* -lr / (1 - beta1^t) */
    float shrink;             /* AdamW: 1 - lr*wd (1 for Adam) */
    float wd;                 /* Adam: L2 coefficient (0 for AdamW) */
} AdamScalars;

/* Adam (Kingma & Ba 2015, Alg. 1, with eps outside the bias-corrected root as
 * torch has it); AdamW (Loshchilov & Hutter 2019) first shrinks p. */
OPS_SIMD static void adam_update(float *restrict p, float *restrict m, float *restrict v,
                        const float *restrict g, size_t n, const AdamScalars *s) {
    for (size_t i = 0; i < n; i++) {
        p[i] = p[i] * s->shrink;
        float d = l2(g[i], p[i], s->wd);
        m[i] = m[i] * s->b1 + s->omb1 * d;
        v[i] = v[i] * s->b2 + s->omb2 * d * d;
        float denom = sqrtf(v[i]) / s->bc2_sqrt + s->eps;
        p[i] = p[i] + s->neg_step * m[i] / denom;
    }
}

typedef struct {
    float alpha, oma;         /* alpha, 1 - alpha (rounded from double) */
    float eps, mom, neg_lr, wd;
} RmsScalars;

/* RMSProp (Hinton, Lecture 6e), torch's form: v = alpha*v + (1-alpha)*d^2,
 * avg = sqrt(v) + eps; with momentum buf = mom*buf + d/avg, p -= lr*buf. */
static void rmsprop_update(float *restrict p, float *restrict m, float *restrict v,
                           const float *restrict g, size_t n, const RmsScalars *s) {
    for (size_t i = 0; i < n; i++) {
        float d = l2(g[i], p[i], s->wd);
        v[i] = v[i] * s->alpha + s->oma * d * d;
        float avg = sqrtf(v[i]) + s->eps;
        if (s->mom > 0.0f) {
            m[i] = m[i] * s->mom + d / avg;
            p[i] = p[i] + s->neg_lr * m[i];
        } else {
            p[i] = p[i] + s->neg_lr * d / avg;
        }
    }
}

/* ---- step ---- */

static AdamScalars adam_scalars(const OptimConfig *c, long t, double lr, double wd) {
    AdamScalars s;
    s.b1 = (float)c->beta1;
    s.omb1 = (float)(1.0 - c->beta1);
    s.b2 = (float)c->beta2;
    s.omb2 = (float)(1.0 - c->beta2);
    s.bc2_sqrt = (float)sqrt(1.0 - pow(c->beta2, (double)t));
    s.eps = (float)c->eps;
    s.neg_step = (float)-(lr / (1.0 - pow(c->beta1, (double)t)));
    s.shrink = c->kind == OPTIM_ADAMW ? (float)(1.0 - lr * wd) : 1.0f;
    s.wd = c->kind == OPTIM_ADAMW ? 0.0f : (float)wd;
    return s;
}

/* The elements [off, off + n) of one Param (within the optimizer's state range). */
static void step_slice(Optim *o, ParamSet *ps, const Param *prm, double lr, size_t off, size_t n) {
    const OptimConfig *c = &o->cfg;
    float *p = ps->data + off, *m = o->m + (off - o->lo), *v = o->v + (off - o->lo);
    const float *g = ps->grad + off;
    double wd = prm->decay ? c->weight_decay : 0.0;
    switch (c->kind) {
    case OPTIM_SGD:
        sgd_update(p, m, g, n, (float)lr, (float)wd, (float)c->momentum, c->nesterov, o->t == 1);
        break;
    case OPTIM_ADAM:
    case OPTIM_ADAMW: {
        AdamScalars s = adam_scalars(c, o->t, lr, wd);
        adam_update(p, m, v, g, n, &s);
        break;
    }
    case OPTIM_RMSPROP: {
        RmsScalars s = {(float)c->alpha, (float)(1.0 - c->alpha), (float)c->eps,
                        (float)c->momentum, (float)-lr, (float)wd};
        rmsprop_update(p, m, v, g, n, &s);
        break;
    }
    default:
        ASSERT(0, "unknown optimizer kind %d", c->kind);
    }
}

void optim_step(Optim *o, ParamSet *ps, double lr) {
    ASSERT(ps->allocated, "optim_step on unallocated ParamSet %s", ps->name);
    ASSERT(o->n == ps->n && o->lo == 0, "optimizer sized for %zu values, ParamSet %s has %zu", o->n,
           ps->name, ps->n);
    o->t++;
    /* every update is elementwise: threads take contiguous blocks of the flat
     * buffer, each updating the part of every Param inside its block */
    OPS_PARALLEL_CHUNKS(ps->n, OPS_WORK_THREADS(ps->n), 64, {
        for (int i = 0; i < ps->count; i++) {
            const Param *prm = &ps->params[i];
            size_t a = prm->offset, b = prm->offset + prm->t.n;
            a = a > lo ? a : lo;
            b = b < hi ? b : hi;
            if (!prm->buffer && a < b) step_slice(o, ps, prm, lr, a, b - a);
        }
    });
}

void optim_step_shard(Optim *o, ParamSet *ps, double lr) {
    ASSERT(ps->allocated && o->lo + o->n <= ps->n, "shard [%zu, +%zu) of ParamSet %s (%zu values)", o->lo,
           o->n, ps->name, ps->n);
    o->t++;
    size_t lo = o->lo, hi = o->lo + o->n;
    for (int i = 0; i < ps->count; i++) {
        const Param *prm = &ps->params[i];
        size_t a = prm->offset, b = prm->offset + prm->t.n;
        if (prm->buffer || b <= lo || a >= hi) continue;
        size_t s = a > lo ? a : lo, e = b < hi ? b : hi;
        step_slice(o, ps, prm, lr, s, e - s);
    }
}

/* ---- schedules ---- */

/* Warm-up as LambdaLR(lambda e: (e+1)/warmup); then constant, cosine
 * (CosineAnnealingLR closed form, SGDR, Loshchilov & Hutter 2017, eq. 5, no
 * restarts) or linear decay to min_lr over the steps [warmup, total], held at
 * min_lr afterwards. */
double optim_lr_at(const OptimConfig *cfg, long step, long total) {
    ASSERT(step >= 0, "negative step %ld", step);
    long warm = cfg->warmup_steps;
    if (step < warm) return cfg->lr * ((double)(step + 1) / (double)warm);
    if (cfg->schedule == SCHED_CONSTANT) return cfg->lr;
    long span = total - warm, e = step - warm;
    if (e >= span) return cfg->min_lr;
    double range = cfg->lr - cfg->min_lr;
    if (cfg->schedule == SCHED_COSINE)
        return cfg->min_lr + range * (1.0 + cos(M_PI * (double)e / (double)span)) / 2.0;
    ASSERT(cfg->schedule == SCHED_LINEAR, "unknown schedule %d", cfg->schedule);
    return cfg->min_lr + range * (1.0 - (double)e / (double)span);
}
