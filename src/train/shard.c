/* shard.c: the clip step on a ZeRO-2 / FSDP shard (pipeline step 5 with
 * [dist] shard = true). After the reduce-scatter this rank holds the reduced
 * gradient of the flat elements [lo, hi) only, so no rank can compute a norm
 * alone: as FSDP's clip_grad_norm_ (and Megatron's get_grad_norm_fp32,
 * DeepSpeed's get_grad_norm_direct) each rank takes sum |g|^p over its part,
 * the sums are all-reduced (in rank order here; MAX for the inf-norm) and the
 * p-th root is the global norm. The coefficient then scales this rank's part.
 * Per-tensor norms ([clip] grad = norm) reduce one partial sum per tensor, so
 * a tensor cut by a shard boundary gets the norm of all of it.
 *
 * [dist] norm = local is the FSDP pitfall: plain clip_grad_norm_ on a shard
 * uses the shard's own norm (smaller than the global one) and each rank scales
 * its shard by a different factor.
 *
 * The clip library does the scaling (clip_grads_with_norm, clip_grad_value on
 * views of this rank's parts); methods whose state or units span the whole
 * gradient (AGC, ZClip, AdaGC, auto) are refused with shard at start. */
#include <math.h>
#include <stdlib.h>

#include "common.h"
#include "train.h"

/* The part of view t inside [lo, hi) of the flat buffer that starts at base. */
static ClipTensor part_of(const ClipTensor *t, const float *base, size_t lo, size_t hi) {
    size_t a = (size_t)(t->grad - base), b = a + t->n;
    size_t s = a > lo ? a : lo, e = b < hi ? b : hi;
    ClipTensor p = {0};
    if (s < e) p.grad = (float *)base + s, p.n = e - s;
    return p;
}

/* sum |g|^p (p = inf: max |g|, NaN propagating) */
static double power_sum(const float *g, size_t n, double p) {
    double s = 0;
    for (size_t i = 0; i < n; i++) {
        double a = fabs((double)g[i]);
        if (isinf(p)) {
            if (a != a) return NAN;
            if (a > s) s = a;
        } else {
            s += p == 2 ? a * a : p == 1 ? a : pow(a, p);
        }
    }
    return s;
}

/* Combine the ranks' values k of each of the m slots (rank order; MAX for inf). */
static void reduce_across(double *v, int m, double p) {
    int n = dist_size();
    if (n == 1) return;
    double *all = xmalloc((size_t)m * (size_t)n * sizeof *all);
    dist_allgather_doubles(all, v, m);
    for (int j = 0; j < m; j++) {
        double s = all[j];
        for (int r = 1; r < n; r++) {
            double x = all[(size_t)r * (size_t)m + (size_t)j];
            if (isinf(p)) s = (isnan(s) || isnan(x)) ? NAN : (x > s ? x : s);
            else s += x;
        }
        v[j] = s;
    }
    free(all);
}

static double root(double s, double p) { return isinf(p) ? s : p == 2 ? sqrt(s) : p == 1 ? s : pow(s, 1.0 / p); }

/* The p-norm over the views' parts in [lo, hi): across the ranks, or this rank's only. */
static double shard_norm(const ClipTensor *t, int count, const float *base, size_t lo, size_t hi, double p,
                         int across) {
    double s = 0;
    for (int i = 0; i < count; i++) {
        ClipTensor q = part_of(&t[i], base, lo, hi);
        double x = power_sum(q.grad, q.n, p);
        s = isinf(p) ? (isnan(s) || isnan(x) ? NAN : (x > s ? x : s)) : s + x;
    }
    if (across) reduce_across(&s, 1, p);
    return root(s, p);
}

/* This rank's parts of the views, as views (empty parts dropped). */
static int parts(const ClipTensor *t, int count, const float *base, size_t lo, size_t hi, ClipTensor *out) {
    int k = 0;
    for (int i = 0; i < count; i++) {
        ClipTensor q = part_of(&t[i], base, lo, hi);
        if (q.n) out[k++] = q;
    }
    return k;
}

void shard_clip(UpdateGroup *g, size_t lo, size_t hi, ClipStats *st) {
    Clipper *cl = &g->clip;
    const ClipConfig *c = &cl->cfg;
    const float *base = g->ps->grad;
    int across = g->dist.norm == DIST_NORM_GLOBAL;
    double pre = shard_norm(cl->all, cl->count, base, lo, hi, 2.0, 1);
    g->rank_norm = shard_norm(cl->all, cl->count, base, lo, hi, 2.0, 0); /* this shard's own */
    g->rank_coef = 1.0;
    *st = (ClipStats){.pre_norm = pre, .threshold = NAN};
    ClipTensor *mine = xcalloc((size_t)cl->nsel + 1, sizeof *mine);
    int nmine = parts(cl->sel, cl->nsel, base, lo, hi, mine);
    switch ((ClipMethod)c->grad) {
    case CLIP_NONE: break;
    case CLIP_GLOBAL_NORM: { /* FSDP: local sum, all-reduce, root; then scale this part */
        double total = shard_norm(cl->sel, cl->nsel, base, lo, hi, c->norm_type, across);
        if (nmine) clip_grads_with_norm(mine, nmine, c->max_norm, total);
        g->rank_coef = clip_norm_coef(c->max_norm, total);
        st->threshold = c->max_norm;
        st->clipped = cl->nsel > 0 && dist_any(g->rank_coef != 1.0f);
        break;
    }
    case CLIP_VALUE: /* elementwise: the shard alone is exact */
        st->clipped = dist_any(nmine && clip_grad_value_count(mine, nmine, c->value) > 0);
        break;
    case CLIP_NORM: { /* one partial sum per tensor, reduced: a cut tensor gets its whole norm */
        double *s = xcalloc((size_t)cl->nsel + 1, sizeof *s);
        for (int i = 0; i < cl->nsel; i++) {
            ClipTensor q = part_of(&cl->sel[i], base, lo, hi);
            s[i] = power_sum(q.grad, q.n, c->norm_type);
        }
        if (across) reduce_across(s, cl->nsel, c->norm_type);
        int changed = 0;
        for (int i = 0; i < cl->nsel; i++) {
            float coef = clip_norm_coef(c->max_norm, root(s[i], c->norm_type));
            ClipTensor q = part_of(&cl->sel[i], base, lo, hi);
            if (q.n && coef != 1.0f) clip_grads_with_norm(&q, 1, c->max_norm, root(s[i], c->norm_type));
            changed |= coef != 1.0f;
        }
        st->clipped = dist_any(changed);
        free(s);
        break;
    }
    default:
        ASSERT(0, "clip method %d with [dist] shard = true (refused at start)", c->grad);
    }
    free(mine);
    st->post_norm = st->clipped ? shard_norm(cl->all, cl->count, base, lo, hi, 2.0, 1) : pre;
    st->coef = pre > 0 ? st->post_norm / pre : 1.0;
}
