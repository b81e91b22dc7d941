/* clip.c: the clipping library (see clip.h for the exact rules and their
 * references). libc + libm only; no other cliplab header.
 *
 * Layout: norm kernels over one float array (double accumulation; the L2 one
 * with independent accumulators so the compiler vectorizes it), the combination
 * of per-tensor norms into a total (PyTorch's norm of norms, overflow-safe for
 * any p), the float32 scale and PyTorch's float32 coefficient, then the
 * stateless methods, then ZClip, AdaGC and the auto threshold. */
#include "clip.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>

/* A broken contract is a bug in the caller: say where, then abort. */
#define CLIP_REQUIRE(cond, msg)                                                     \
    do {                                                                            \
        if (!(cond)) {                                                              \
            fprintf(stderr, "%s:%d: clip: %s (%s)\n", __FILE__, __LINE__, msg, #cond); \
            abort();                                                                \
        }                                                                           \
    } while (0)

/* PyTorch adds this to the total norm before dividing (clip_grads_with_norm_);
 * ZClip and AdaGC's reference code use the same constant. */
#define CLIP_DIV_EPS 1e-6

/* ---- contracts ---- */

static void check_tensors(const ClipTensor *t, int count) {
    CLIP_REQUIRE(count >= 0, "tensor count is negative");
    CLIP_REQUIRE(count == 0 || t != NULL, "NULL tensor array");
    for (int i = 0; i < count; i++)
        CLIP_REQUIRE(t[i].n == 0 || t[i].grad != NULL, "NULL grad with n > 0");
}

static void check_norm_type(double p) {
    CLIP_REQUIRE(p > 0, "norm_type must be > 0 or INFINITY");
}

/* A hot loop compiled for AVX-512, AVX2 and baseline SSE2, picked at load
 * time (an ifunc). The same bits on every clone: the loops below keep their
 * own named accumulators, ISO C mode never fuses a multiply-add and nothing
 * reassociates a sum, so a wider vector only does more lanes at once. */
#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
#define CLIP_SIMD __attribute__((target_clones("avx512f", "avx2", "default")))
#else
#define CLIP_SIMD
#endif

/* ---- norms of one array, in double ---- */

/* sum g^2. Each product of two floats is exact in double; eight independent
 * partial sums (named, so the compiler keeps them in registers and pairs them
 * into SIMD lanes) break the add dependency chain. */
CLIP_SIMD static double sum_sq(const float *g, size_t n) {
    double a0 = 0, a1 = 0, a2 = 0, a3 = 0, a4 = 0, a5 = 0, a6 = 0, a7 = 0;
    size_t i = 0;
    for (; i + 8 <= n; i += 8) {
        double x0 = g[i], x1 = g[i + 1], x2 = g[i + 2], x3 = g[i + 3];
        double x4 = g[i + 4], x5 = g[i + 5], x6 = g[i + 6], x7 = g[i + 7];
        a0 += x0 * x0, a1 += x1 * x1, a2 += x2 * x2, a3 += x3 * x3;
        a4 += x4 * x4, a5 += x5 * x5, a6 += x6 * x6, a7 += x7 * x7;
    }
    double tail = 0;
    for (; i < n; i++) tail += (double)g[i] * (double)g[i];
    return ((a0 + a1) + (a2 + a3)) + ((a4 + a5) + (a6 + a7)) + tail;
}

static double sum_abs(const float *g, size_t n) {
    double a0 = 0, a1 = 0, a2 = 0, a3 = 0, a4 = 0, a5 = 0, a6 = 0, a7 = 0;
    size_t i = 0;
    for (; i + 8 <= n; i += 8) {
        a0 += fabs((double)g[i]), a1 += fabs((double)g[i + 1]);
        a2 += fabs((double)g[i + 2]), a3 += fabs((double)g[i + 3]);
        a4 += fabs((double)g[i + 4]), a5 += fabs((double)g[i + 5]);
        a6 += fabs((double)g[i + 6]), a7 += fabs((double)g[i + 7]);
    }
    double tail = 0;
    for (; i < n; i++) tail += fabs((double)g[i]);
    return ((a0 + a1) + (a2 + a3)) + ((a4 + a5) + (a6 + a7)) + tail;
}

/* max |g|; NaN as soon as one element is NaN (torch's max propagates NaN). */
static double max_abs(const float *g, size_t n) {
    double m = 0;
    for (size_t i = 0; i < n; i++) {
        double a = fabs((double)g[i]);
        if (a != a) return NAN;
        if (a > m) m = a;
    }
    return m;
}

/* (sum |g|^p)^(1/p) for a general p, scaled by max |g| so that neither a
 * large p (overflow) nor a tiny one (underflow) loses the result. */
static double norm_p(const float *g, size_t n, double p) {
    double m = max_abs(g, n);
    if (m == 0 || !isfinite(m)) return m;
    double s = 0;
    for (size_t i = 0; i < n; i++) s += pow(fabs((double)g[i]) / m, p);
    return m * pow(s, 1.0 / p);
}

static double array_norm(const float *g, size_t n, double p) {
    if (p == 2) return sqrt(sum_sq(g, n));
    if (p == 1) return sum_abs(g, n);
    if (isinf(p)) return max_abs(g, n);
    return norm_p(g, n, p);
}

/* ---- the p-norm of a list of norms (PyTorch's norm of norms) ---- */

/* total = scale * sum^(1/p), accumulated with a running rescale (as LAPACK's
 * dnrm2) so any p is overflow-safe. NaN wins over infinity, which wins over
 * everything else, as in the elementwise norm. */
typedef struct {
    double p, scale, sum;
} NormAcc;

static NormAcc norm_acc(double p) { return (NormAcc){p, 0, 0}; }

static void norm_acc_add(NormAcc *a, double x) {
    if (isnan(a->scale) || x == 0) return;
    if (isnan(x) || isinf(x) || isinf(a->scale)) {
        a->scale = isnan(x) ? x : INFINITY;
        return;
    }
    if (isinf(a->p)) {
        if (x > a->scale) a->scale = x;
    } else if (x > a->scale) {
        a->sum = a->sum * pow(a->scale / x, a->p) + 1;
        a->scale = x;
    } else {
        a->sum += pow(x / a->scale, a->p);
    }
}

static double norm_acc_result(const NormAcc *a) {
    if (a->scale == 0 || !isfinite(a->scale) || isinf(a->p)) return a->scale;
    return a->scale * pow(a->sum, 1.0 / a->p);
}

/* ---- scaling ---- */

/* g *= c, unrolled by eight so the compiler emits SIMD multiplies at -O2. */
CLIP_SIMD static void scale_f32(float *g, size_t n, float c) {
    size_t i = 0;
    for (; i + 8 <= n; i += 8) {
        g[i] *= c, g[i + 1] *= c, g[i + 2] *= c, g[i + 3] *= c;
        g[i + 4] *= c, g[i + 5] *= c, g[i + 6] *= c, g[i + 7] *= c;
    }
    for (; i < n; i++) g[i] *= c;
}

static void scale_all(ClipTensor *t, int count, float c) {
    for (int i = 0; i < count; i++) scale_f32(t[i].grad, t[i].n, c);
}

/* torch.clamp(max_norm / (total + 1e-6), max=1.0) in float32, step by step as
 * PyTorch evaluates it: total is a float32 tensor, `+ 1e-6` adds 1e-6f, and
 * `max_norm / tensor` is reciprocal(tensor) * float(max_norm). clamp keeps NaN. */
float clip_norm_coef(double max_norm, double total) {
    float d = (float)total + (float)CLIP_DIV_EPS;
    float c = (1.0f / d) * (float)max_norm;
    return c > 1.0f ? 1.0f : c;
}

/* Fill what a step decided. */
static void step_info(ClipStepInfo *s, double norm, double thr, double coef, int clipped,
                      int warmup) {
    s->norm = norm;
    s->post_norm = clipped ? norm * coef : norm;
    s->threshold = thr;
    s->coef = coef;
    s->clipped = clipped;
    s->warmup = warmup;
}

/* ---- stateless methods ---- */

double clip_total_norm(const ClipTensor *t, int count, double norm_type) {
    check_tensors(t, count);
    check_norm_type(norm_type);
    NormAcc acc = norm_acc(norm_type);
    for (int i = 0; i < count; i++) norm_acc_add(&acc, array_norm(t[i].grad, t[i].n, norm_type));
    return norm_acc_result(&acc);
}

double clip_norm_of_norms(const double *norms, int count, double norm_type) {
    check_norm_type(norm_type);
    NormAcc acc = norm_acc(norm_type);
    for (int i = 0; i < count; i++) norm_acc_add(&acc, norms[i]);
    return norm_acc_result(&acc);
}

void clip_scale(ClipTensor *t, int count, float c) {
    check_tensors(t, count);
    scale_all(t, count, c);
}

/* sum_sq / sum_abs / max_abs of an n-element array, fed in pieces: element j
 * goes to lane j % 8 while it lies in a full block of eight (j < n - n % 8),
 * else to the tail, in index order, so the pieces make exactly sum_sq's adds. */
void clip_norm_part_add(ClipNormPart *s, const float *g, size_t from, size_t to, size_t n, double p) {
    check_norm_type(p);
    CLIP_REQUIRE(from <= to && to <= n, "clip_norm_part: piece outside the array");
    size_t full = n - n % 8;
    int general = !(p == 1 || p == 2 || isinf(p));
    if (general && (s->scale == 0 || !isfinite(s->scale))) return; /* norm_p's early return */
    for (size_t j = from; j < to; j++) {
        double x = g[j - from];
        if (general) { /* norm_p: one running sum of (|g| / max)^p */
            s->tail += pow(fabs(x) / s->scale, p);
            continue;
        }
        if (isinf(p)) {
            double a = fabs(x);
            if (a != a || s->tail != s->tail) s->tail = NAN;
            else if (a > s->tail) s->tail = a;
            continue;
        }
        double v = p == 2 ? x * x : fabs(x);
        if (j < full) s->lane[j % 8] += v;
        else s->tail += v;
    }
}

double clip_norm_part_result(const ClipNormPart *s, double p) {
    if (isinf(p)) return s->tail;
    if (!(p == 1 || p == 2)) return s->scale == 0 || !isfinite(s->scale) ? s->scale : s->scale * pow(s->tail, 1.0 / p);
    const double *a = s->lane;
    double sum = ((a[0] + a[1]) + (a[2] + a[3])) + ((a[4] + a[5]) + (a[6] + a[7])) + s->tail;
    return p == 2 ? sqrt(sum) : sum;
}

void clip_grads_with_norm(ClipTensor *t, int count, double max_norm, double total_norm) {
    check_tensors(t, count);
    float c = clip_norm_coef(max_norm, total_norm);
    if (c == 1.0f) return; /* x * 1.0f == x bit for bit: skipping is PyTorch's result */
    scale_all(t, count, c);
}

double clip_grad_norm(ClipTensor *t, int count, double max_norm, double norm_type) {
    double total = clip_total_norm(t, count, norm_type);
    clip_grads_with_norm(t, count, max_norm, total);
    return total;
}

/* torch.clamp(g, min=-v, max=v) = min(max(g, -v), v) with NaN kept. */
size_t clip_grad_value_count(ClipTensor *t, int count, double clip_value) {
    check_tensors(t, count);
    float hi = (float)clip_value, lo = -hi;
    size_t changed = 0;
    for (int i = 0; i < count; i++) {
        float *g = t[i].grad;
        for (size_t j = 0; j < t[i].n; j++) {
            changed += g[j] < lo || g[j] > hi;
            float v = g[j] < lo ? lo : g[j];
            g[j] = v > hi ? hi : v;
        }
    }
    return changed;
}

void clip_grad_value(ClipTensor *t, int count, double clip_value) {
    (void)clip_grad_value_count(t, count, clip_value);
}

double clip_grad_norm_per_tensor(ClipTensor *t, int count, double max_norm, double norm_type) {
    check_tensors(t, count);
    check_norm_type(norm_type);
    double largest = 0;
    for (int i = 0; i < count; i++) {
        double n = array_norm(t[i].grad, t[i].n, norm_type);
        if (!isnan(largest) && (isnan(n) || n > largest)) largest = n;
        float c = clip_norm_coef(max_norm, n);
        if (c != 1.0f) scale_f32(t[i].grad, t[i].n, c);
    }
    return largest;
}

/* One unit of AGC: optax unitwise_clip with max_norm = clipping * max(||W||, eps).
 * The comparisons are written so NaN behaves as jnp.maximum (propagates). */
/* Returns 1 if the unit's gradient changed (a factor of exactly 1 at equality
 * is optax's clip too, but leaves the bits as they were). */
float clip_agc_coef(double gn, double pn, double clipping, double eps) {
    double max_norm = clipping * (pn < eps ? eps : pn);
    if (gn < max_norm) return 1.0f;
    return (float)(max_norm / (gn < CLIP_DIV_EPS ? CLIP_DIV_EPS : gn));
}

static int agc_unit(float *g, const float *w, size_t m, double clipping, double eps) {
    float c = clip_agc_coef(sqrt(sum_sq(g, m)), sqrt(sum_sq(w, m)), clipping, eps);
    if (c == 1.0f) return 0; /* x * 1.0f == x bit for bit */
    scale_f32(g, m, c);
    return 1;
}

size_t clip_agc_count(ClipTensor *t, int count, double clipping, double eps) {
    check_tensors(t, count);
    size_t changed = 0;
    for (int i = 0; i < count; i++) {
        size_t units = t[i].rows > 1 ? t[i].rows : 1;
        CLIP_REQUIRE(t[i].n % units == 0, "AGC: rows does not divide n");
        CLIP_REQUIRE(t[i].n == 0 || t[i].param != NULL, "AGC needs param");
        size_t m = t[i].n / units;
        for (size_t u = 0; u < units && m > 0; u++)
            changed += (size_t)agc_unit(t[i].grad + u * m, t[i].param + u * m, m, clipping, eps);
    }
    return changed;
}

void clip_agc(ClipTensor *t, int count, double clipping, double eps) {
    (void)clip_agc_count(t, count, clipping, eps);
}

/* ---- ZClip ---- */

ClipZClipParams clip_zclip_defaults(void) {
    return (ClipZClipParams){.alpha = 0.97, .z_thresh = 2.5, .max_grad_norm = 1.0,
                             .eps = 1e-6, .clip_factor = 1.0, .warmup_steps = 25,
                             .mode = CLIP_ZCLIP_ZSCORE,
                             .clip_option = CLIP_ZCLIP_ADAPTIVE_SCALING,
                             .skip_update_on_spike = 0};
}

static int zclip_params_ok(const ClipZClipParams *p) {
    return p->alpha >= 0 && p->alpha <= 1 && p->z_thresh > 0 && p->max_grad_norm >= 0 &&
           p->eps >= 0 && p->clip_factor >= 0 && isfinite(p->clip_factor) &&
           p->warmup_steps >= 0 && (p->mode == CLIP_ZCLIP_ZSCORE || p->mode == CLIP_ZCLIP_PERCENTILE) &&
           (p->clip_option == CLIP_ZCLIP_ADAPTIVE_SCALING || p->clip_option == CLIP_ZCLIP_MEAN);
}

int clip_zclip_init(ClipZClip *z, const ClipZClipParams *p) {
    ClipZClipParams d = clip_zclip_defaults();
    if (!p) p = &d;
    if (!zclip_params_ok(p)) return -1;
    *z = (ClipZClip){.p = *p, .z = NAN, .clip_val = NAN};
    z->buffer = malloc(sizeof(double) * (size_t)(p->warmup_steps > 0 ? p->warmup_steps : 1));
    return z->buffer ? 0 : -1;
}

void clip_zclip_free(ClipZClip *z) {
    free(z->buffer);
    z->buffer = NULL;
}

/* Mean and population variance of the warm-up norms, summed left to right. */
static void zclip_start_ema(ClipZClip *z) {
    double s = 0, v = 0;
    for (int i = 0; i < z->nbuf; i++) s += z->buffer[i];
    z->mean = s / z->nbuf;
    for (int i = 0; i < z->nbuf; i++) v += (z->buffer[i] - z->mean) * (z->buffer[i] - z->mean);
    z->var = v / z->nbuf;
    z->initialized = 1;
    z->nbuf = 0;
}

/* Collect g; clip as torch clip_grad_norm_(max_grad_norm) unless that is None. */
static double zclip_warmup(ClipZClip *z, ClipTensor *t, int count, double g) {
    z->buffer[z->nbuf++] = g;
    if (z->nbuf >= z->p.warmup_steps) zclip_start_ema(z);
    double max = z->p.max_grad_norm;
    float c = isinf(max) ? 1.0f : clip_norm_coef(max, g);
    if (c != 1.0f) scale_all(t, count, c);
    step_info(&z->last, g, max, c, c != 1.0f, 1);
    return g;
}

/* The spike threshold (clip_val) for norm g, or NaN when g is not a spike. */
static double zclip_clip_val(ClipZClip *z, double g) {
    const ClipZClipParams *p = &z->p;
    double std = pow(z->var, 0.5);
    if (p->mode == CLIP_ZCLIP_PERCENTILE) {
        double thr = z->mean + p->z_thresh * std;
        return g > thr ? thr : NAN;
    }
    z->z = (g - z->mean) / (std + p->eps);
    if (!(z->z > p->z_thresh)) return NAN;
    if (p->clip_option == CLIP_ZCLIP_MEAN) return z->mean;
    double eta = z->z / p->z_thresh; /* a larger outlier gets a tighter threshold */
    return (z->mean + (p->z_thresh * std) / eta) * p->clip_factor;
}

double clip_zclip_level(const ClipZClip *z) {
    double cap = z->p.max_grad_norm;
    if (!z->initialized) return isinf(cap) ? NAN : cap;
    double sd = sqrt(z->var) + (z->p.mode == CLIP_ZCLIP_ZSCORE ? z->p.eps : 0.0);
    double level = z->mean + z->p.z_thresh * sd;
    return level < cap ? level : cap;
}

static void zclip_update_ema(ClipZClip *z, double x) {
    double a = z->p.alpha;
    z->mean = a * z->mean + (1 - a) * x;
    z->var = a * z->var + (1 - a) * (x - z->mean) * (x - z->mean);
}

double clip_zclip_step(ClipZClip *z, ClipTensor *t, int count) {
    return clip_zclip_step_norm(z, t, count, clip_total_norm(t, count, 2.0));
}

double clip_zclip_step_norm(ClipZClip *z, ClipTensor *t, int count, double g) {
    check_tensors(t, count);
    z->steps++;
    z->z = NAN;
    z->clip_val = NAN;
    if (!z->initialized) return zclip_warmup(z, t, count, g);
    double clip_val = zclip_clip_val(z, g);
    int spike = !isnan(clip_val);
    z->clip_val = clip_val;
    double adaptive = spike ? clip_val : g;
    double max = z->p.max_grad_norm;
    double eff = max < adaptive ? max : adaptive; /* Python min(adaptive, max) */
    double c = g > eff ? eff / (g + CLIP_DIV_EPS) : 1.0;
    if (c < 1.0) scale_all(t, count, (float)c);
    step_info(&z->last, g, eff, c, c < 1.0, 0);
    if (!(spike && z->p.skip_update_on_spike)) zclip_update_ema(z, spike ? clip_val : g);
    return g;
}

/* ---- AdaGC ---- */

ClipAdaGCParams clip_adagc_defaults(void) {
    return (ClipAdaGCParams){.beta = 0.98, .lambda_rel = 1.05, .lambda_abs = 1.0,
                             .warmup_steps = 100};
}

int clip_adagc_init(ClipAdaGC *a, const ClipAdaGCParams *p, int count) {
    ClipAdaGCParams d = clip_adagc_defaults();
    if (!p) p = &d;
    if (!(p->beta >= 0 && p->beta < 1 && p->lambda_rel > 0 && p->lambda_abs >= 0 &&
          p->warmup_steps >= 0 && count >= 0))
        return -1;
    *a = (ClipAdaGC){.p = *p, .count = count};
    size_t cap = (size_t)(count > 0 ? count : 1);
    a->gamma = malloc(cap * sizeof(double));
    a->norms = malloc(cap * sizeof(double));
    if (!a->gamma || !a->norms) {
        clip_adagc_free(a);
        return -1;
    }
    for (int i = 0; i < count; i++) a->gamma[i] = a->norms[i] = NAN;
    return 0;
}

void clip_adagc_free(ClipAdaGC *a) {
    free(a->gamma);
    free(a->norms);
    a->gamma = a->norms = NULL;
}

/* Warm-up step: global clip at lambda_abs, gamma_i = running min of the
 * clipped tensor norms (re-measured after the clip, as the reference does). */
static void adagc_warmup(ClipAdaGC *a, ClipTensor *t, int count, double g,
                         void (*remeasure)(void *ctx, double *out), void *ctx) {
    double c = a->p.lambda_abs / (g + CLIP_DIV_EPS);
    int clipped = c < 1.0;
    double post = 0, *after = NULL;
    if (clipped) {
        for (int i = 0; i < count; i++) scale_f32(t[i].grad, t[i].n, (float)c);
        after = malloc((size_t)(count > 0 ? count : 1) * sizeof *after);
        CLIP_REQUIRE(after != NULL, "out of memory");
        remeasure(ctx, after);
    }
    for (int i = 0; i < count; i++) {
        double n = clipped ? after[i] : a->norms[i];
        if (a->steps == 1 || n < a->gamma[i]) a->gamma[i] = n;
        post += n * n;
    }
    free(after);
    step_info(&a->last, g, a->p.lambda_abs, clipped ? c : 1.0, clipped, 1);
    a->last.post_norm = sqrt(post);
}

/* After warm-up: each tensor against lambda_rel times its own EMA. */
static void adagc_relative(ClipAdaGC *a, ClipTensor *t, int count, double g) {
    const ClipAdaGCParams *p = &a->p;
    double min_coef = 1.0, post = 0;
    int nclipped = 0;
    for (int i = 0; i < count; i++) {
        double n = a->norms[i], post_i = n;
        if (a->steps == 1) a->gamma[i] = n; /* no warm-up: start from the first norm */
        double thr = p->lambda_rel * a->gamma[i];
        if (n > thr) {
            double c = thr / (n + CLIP_DIV_EPS);
            scale_f32(t[i].grad, t[i].n, (float)c);
            post_i = n * c;
            n = thr;
            nclipped++;
            if (c < min_coef) min_coef = c;
        }
        a->gamma[i] = a->gamma[i] * p->beta + n * (1.0 - p->beta);
        post += post_i * post_i;
    }
    step_info(&a->last, g, NAN, min_coef, nclipped, 0);
    a->last.post_norm = sqrt(post);
}

double clip_adagc_level(const ClipAdaGC *a) {
    if (a->steps < a->p.warmup_steps) return a->p.lambda_abs;
    double s = 0;
    for (int i = 0; i < a->count; i++) {
        double b = a->p.lambda_rel * a->gamma[i];
        s += b * b;
    }
    return sqrt(s);
}

typedef struct {
    ClipTensor *t;
    int count;
} AdagcTensors;

static void adagc_measure(void *ctx, double *out) {
    const AdagcTensors *v = ctx;
    for (int i = 0; i < v->count; i++) out[i] = array_norm(v->t[i].grad, v->t[i].n, 2.0);
}

double clip_adagc_step(ClipAdaGC *a, ClipTensor *t, int count) {
    check_tensors(t, count);
    AdagcTensors v = {t, count};
    double *norms = malloc((size_t)(count > 0 ? count : 1) * sizeof *norms);
    CLIP_REQUIRE(norms != NULL, "out of memory");
    adagc_measure(&v, norms);
    double g = clip_adagc_step_norms(a, t, count, norms, adagc_measure, &v);
    free(norms);
    return g;
}

double clip_adagc_step_norms(ClipAdaGC *a, ClipTensor *t, int count, const double *norms,
                             void (*remeasure)(void *ctx, double *out), void *ctx) {
    check_tensors(t, count);
    CLIP_REQUIRE(count == a->count, "AdaGC: tensor count differs from init");
    NormAcc acc = norm_acc(2.0);
    for (int i = 0; i < count; i++) {
        a->norms[i] = norms[i];
        norm_acc_add(&acc, a->norms[i]);
    }
    double g = norm_acc_result(&acc);
    a->steps++;
    if (a->steps <= a->p.warmup_steps)
        adagc_warmup(a, t, count, g, remeasure, ctx);
    else
        adagc_relative(a, t, count, g);
    return g;
}

/* ---- auto threshold ---- */

ClipAutoParams clip_auto_defaults(void) {
    return (ClipAutoParams){.warmup_steps = 100, .percentile = 90, .norm_type = 2};
}

int clip_auto_init(ClipAuto *a, const ClipAutoParams *p) {
    ClipAutoParams d = clip_auto_defaults();
    if (!p) p = &d;
    if (!(p->warmup_steps >= 1 && p->percentile >= 0 && p->percentile <= 100 &&
          p->norm_type > 0))
        return -1;
    *a = (ClipAuto){.p = *p, .threshold = NAN};
    a->seen = malloc(sizeof(double) * (size_t)p->warmup_steps);
    return a->seen ? 0 : -1;
}

void clip_auto_free(ClipAuto *a) {
    free(a->seen);
    a->seen = NULL;
}

static int cmp_double(const void *pa, const void *pb) {
    double a = *(const double *)pa, b = *(const double *)pb;
    return (a > b) - (a < b);
}

/* numpy.percentile, method='linear': virtual index (n-1)*(q/100), then numpy's
 * _lerp (a + d*t below t = 0.5, b - d*(1-t) from 0.5 on) for identical bits. */
double clip_percentile(double *x, int n, double q) {
    if (n <= 0) return NAN;
    qsort(x, (size_t)n, sizeof *x, cmp_double);
    double vi = (double)(n - 1) * (q / 100);
    if (vi >= n - 1) return x[n - 1];
    if (vi < 0) return x[0];
    double lo = floor(vi), gamma = vi - lo;
    double a = x[(size_t)lo], b = x[(size_t)lo + 1], d = b - a;
    return gamma >= 0.5 ? b - d * (1 - gamma) : a + d * gamma;
}

double clip_auto_step(ClipAuto *a, ClipTensor *t, int count) {
    return clip_auto_step_norm(a, t, count, clip_total_norm(t, count, a->p.norm_type));
}

double clip_auto_step_norm(ClipAuto *a, ClipTensor *t, int count, double g) {
    check_tensors(t, count);
    a->steps++;
    if (isnan(a->threshold)) {
        if (isfinite(g)) a->seen[a->nseen++] = g;
        if (a->nseen == a->p.warmup_steps)
            a->threshold = clip_percentile(a->seen, a->nseen, a->p.percentile);
        step_info(&a->last, g, INFINITY, 1.0, 0, 1);
        return g;
    }
    float c = count > 0 ? clip_norm_coef(a->threshold, g) : 1.0f;
    if (c != 1.0f) scale_all(t, count, c);
    step_info(&a->last, g, a->threshold, c, c != 1.0f, 0);
    return g;
}
