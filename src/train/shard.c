/* shard.c: the clip step on a ZeRO-2 / FSDP shard (pipeline step 7 with
 * [dist] shard = true). After the reduce-scatter this rank holds the reduced
 * gradient of the flat elements [lo, hi) only, so no rank can compute a norm
 * alone: as FSDP's clip_grad_norm_ (and Megatron's get_grad_norm_fp32,
 * DeepSpeed's get_grad_norm_direct) each rank reduces its part and the parts
 * are combined across the ranks; the coefficients then scale this rank's part.
 *
 * Bit for bit the unsharded clip. The norms of the pieces are not summed per
 * rank and then added (another order of float additions, another last bit):
 * each tensor (or AGC unit) is scanned in index order into the clip library's
 * ClipNormPart (the eight partial sums and the tail its one-array kernel keeps),
 * and where a shard boundary cuts a tensor, the rank on the left passes its
 * running part to the rank on the right (a few doubles, point to point), which
 * continues it. The rank holding a tensor's last element has its exact norm;
 * one all-gather gives every rank every norm. Then each method decides from
 * the same norms the unsharded clipper sees, so its state (ZClip's EMA,
 * AdaGC's per-tensor EMAs, auto's warm-up norms) is the same on every rank
 * and the same as one process's:
 *   global_norm, norm, auto   the tensors' p-norms (another p than 1, 2, inf:
 *                             two passes, each tensor's max |g| then the sum of
 *                             (|g| / max)^p, as the one-array kernel)
 *   value                     elementwise: the shard alone is exact
 *   agc                       each unit's gradient norm (a unit cut by a shard
 *                             boundary gets all of it); the weights are whole on
 *                             every rank (all-gathered after each step)
 *   zclip                     the global L2 norm
 *   adagc                     the per-tensor L2 norms, and after a clipped
 *                             warm-up step the clipped ones
 *
 * [dist] norm = local is the FSDP pitfall: plain clip_grad_norm_ on a shard
 * uses the shard's own norm (smaller than the global one) and each rank scales
 * its shard by a different factor. */
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

/* ---------------------------------------------------------------- exact norms */

/* A stretch of the flat buffer whose norm is wanted: a tensor or an AGC unit. */
typedef struct {
    size_t off, len;
} Seg;

#define PART_DOUBLES ((int)(sizeof(ClipNormPart) / sizeof(double)))

static int owner_of(size_t n, size_t idx) {
    for (int r = 0; r < dist_size(); r++) {
        size_t lo, hi;
        dist_chunk(n, r, &lo, &hi);
        if (idx >= lo && idx < hi) return r;
    }
    return 0;
}

static void add_piece(ClipNormPart *s, const float *x, const Seg *g, size_t from, size_t to, double p) {
    if (from < to) clip_norm_part_add(s, x + from, from - g->off, to - g->off, g->len, p);
}

/* out[j] = the p-norm (1, 2, inf) of x[seg[j].off .. +len) (segments sorted, not
 * overlapping), bit for bit array_norm of the whole segment, on every rank,
 * where this rank holds x[lo, hi) of the n-element buffer. */
static void seg_norms(const float *x, size_t n, const Seg *seg, int nseg, size_t lo, size_t hi, double p,
                      double *out) {
    int me = dist_rank(), N = dist_size(), cut_in = -1, cut_out = -1;
    double *scale = NULL;
    if (!(p == 1 || p == 2 || isinf(p))) { /* norm_p's two passes: each segment's max |g| first */
        scale = xmalloc((size_t)(nseg > 0 ? nseg : 1) * sizeof *scale);
        seg_norms(x, n, seg, nseg, lo, hi, INFINITY, scale);
    }
    for (int j = 0; j < nseg; j++) {
        if (seg[j].off < lo && lo < seg[j].off + seg[j].len) cut_in = j;
        if (seg[j].off < hi && hi < seg[j].off + seg[j].len) cut_out = j;
    }
    ClipNormPart *part = xcalloc((size_t)(nseg > 0 ? nseg : 1), sizeof *part);
    for (int j = 0; scale && j < nseg; j++) part[j].scale = scale[j];
    if (cut_in >= 0 && cut_in == cut_out) { /* the whole chunk is inside one segment */
        dist_recv_doubles((double *)&part[cut_in], PART_DOUBLES, me - 1);
        add_piece(&part[cut_in], x, &seg[cut_in], lo, hi, p);
        dist_send_doubles((double *)&part[cut_in], PART_DOUBLES, me + 1);
    } else {
        if (cut_out >= 0) { /* it starts here: scan it and pass it on first */
            add_piece(&part[cut_out], x, &seg[cut_out], seg[cut_out].off, hi, p);
            dist_send_doubles((double *)&part[cut_out], PART_DOUBLES, me + 1);
        }
        if (cut_in >= 0) { /* continue the left neighbour's */
            dist_recv_doubles((double *)&part[cut_in], PART_DOUBLES, me - 1);
            add_piece(&part[cut_in], x, &seg[cut_in], lo, seg[cut_in].off + seg[cut_in].len, p);
        }
        for (int j = 0; j < nseg; j++) {
            size_t a = seg[j].off, b = a + seg[j].len;
            if (j != cut_in && j != cut_out && a >= lo && b <= hi) add_piece(&part[j], x, &seg[j], a, b, p);
        }
    }
    double *mine = xcalloc((size_t)(nseg > 0 ? nseg : 1), sizeof *mine);
    for (int j = 0; j < nseg; j++) {
        size_t last = seg[j].off + seg[j].len - 1;
        if (seg[j].len && last >= lo && last < hi) mine[j] = clip_norm_part_result(&part[j], p);
    }
    double *all = xmalloc((size_t)(nseg > 0 ? nseg : 1) * (size_t)N * sizeof *all);
    dist_allgather_doubles(all, mine, nseg);
    for (int j = 0; j < nseg; j++)
        out[j] = seg[j].len ? all[(size_t)owner_of(n, seg[j].off + seg[j].len - 1) * (size_t)nseg + (size_t)j]
                            : 0.0;
    free(all), free(mine), free(part), free(scale);
}

/* The views' tensors as segments of the flat buffer at base. */
static Seg *tensor_segs(const ClipTensor *t, int count, const float *base) {
    Seg *s = xmalloc((size_t)(count > 0 ? count : 1) * sizeof *s);
    for (int i = 0; i < count; i++) s[i] = (Seg){(size_t)(t[i].grad - base), t[i].n};
    for (int i = 1; i < count; i++) ASSERT(s[i].off >= s[i - 1].off + s[i - 1].len, "views out of order");
    return s;
}

/* ---------------------------------------------------------------- a shard's own norm (norm = local, the report) */

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

static double root(double s, double p) { return isinf(p) ? s : p == 2 ? sqrt(s) : p == 1 ? s : pow(s, 1.0 / p); }

/* The p-norm over the views' parts in [lo, hi): this rank's only (the FSDP
 * pitfall's norm; the report's rank norm). */
static double shard_norm(const ClipTensor *t, int count, const float *base, size_t lo, size_t hi, double p) {
    double s = 0;
    for (int i = 0; i < count; i++) {
        ClipTensor q = part_of(&t[i], base, lo, hi);
        double x = power_sum(q.grad, q.n, p);
        s = isinf(p) ? (isnan(s) || isnan(x) ? NAN : (x > s ? x : s)) : s + x;
    }
    return root(s, p);
}

/* ---------------------------------------------------------------- the clip */

/* Everything a method needs about this rank's shard. */
typedef struct {
    const float *base;
    size_t n, lo, hi;
    ClipTensor *sel;   /* the selected views */
    int nsel;
    ClipTensor *mine;  /* this rank's part of each selected view (maybe empty), nsel of them */
    Seg *segs;         /* the selected tensors as segments */
} Shard;

static void sel_norms(const Shard *s, double p, double *out) {
    seg_norms(s->base, s->n, s->segs, s->nsel, s->lo, s->hi, p, out);
}

/* total p-norm of the selection, clip_total_norm's bits */
static double sel_total(const Shard *s, double p) {
    double *v = xmalloc((size_t)(s->nsel + 1) * sizeof *v);
    sel_norms(s, p, v);
    double t = clip_norm_of_norms(v, s->nsel, p);
    free(v);
    return t;
}

static void adagc_remeasure(void *ctx, double *out) { sel_norms(ctx, 2.0, out); }

/* AGC: each unit's gradient norm across the shards, its weight norm from the
 * whole weights every rank holds, and this rank's part of the unit scaled. */
static int shard_agc(const Shard *s, const Clipper *cl) {
    int nu = 0;
    for (int i = 0; i < s->nsel; i++) nu += s->sel[i].rows > 1 ? (int)s->sel[i].rows : 1;
    Seg *u = xmalloc((size_t)(nu + 1) * sizeof *u);
    const float **w = xmalloc((size_t)(nu + 1) * sizeof *w);
    int k = 0;
    for (int i = 0; i < s->nsel; i++) {
        const ClipTensor *t = &s->sel[i];
        size_t units = t->rows > 1 ? t->rows : 1, m = t->n / units;
        ASSERT(t->n % units == 0, "AGC: rows does not divide n");
        for (size_t j = 0; j < units; j++, k++)
            u[k] = (Seg){s->segs[i].off + j * m, m}, w[k] = t->param ? t->param + j * m : NULL;
    }
    double *gn = xmalloc((size_t)(nu + 1) * sizeof *gn);
    seg_norms(s->base, s->n, u, nu, s->lo, s->hi, 2.0, gn);
    int changed = 0;
    for (int j = 0; j < nu; j++) {
        ClipTensor whole = {(float *)s->base + u[j].off, NULL, u[j].len, 0};
        ClipTensor q = part_of(&whole, s->base, s->lo, s->hi);
        if (!q.n) continue;
        ASSERT(u[j].len == 0 || w[j], "AGC needs param");
        ClipTensor wt = {(float *)w[j], NULL, u[j].len, 0};
        float c = clip_agc_coef(gn[j], clip_total_norm(&wt, 1, 2.0), cl->cfg.agc_clipping, cl->cfg.agc_eps);
        if (c != 1.0f) clip_scale(&q, 1, c), changed = 1;
    }
    free(gn), free(w), free(u);
    return changed;
}

void shard_clip(UpdateGroup *g, size_t lo, size_t hi, ClipStats *st) {
    Clipper *cl = &g->clip;
    const ClipConfig *c = &cl->cfg;
    Shard s = {g->ps->grad, g->ps->n, lo, hi, cl->sel, cl->nsel, NULL, NULL};
    s.mine = xcalloc((size_t)cl->nsel + 1, sizeof *s.mine);
    for (int i = 0; i < cl->nsel; i++) s.mine[i] = part_of(&cl->sel[i], s.base, lo, hi);
    s.segs = tensor_segs(cl->sel, cl->nsel, s.base);
    /* the logged pre-clip norm: every tensor's L2 norm, combined as clipper_global_norm */
    Seg *all_segs = tensor_segs(cl->all, cl->count, s.base);
    double *norms = xmalloc((size_t)(cl->count + 1) * sizeof *norms);
    seg_norms(s.base, s.n, all_segs, cl->count, lo, hi, 2.0, norms);
    double pre = clip_norm_of_norms(norms, cl->count, 2.0);
    for (int i = 0; cl->param_norms && i < cl->count; i++) cl->param_norms[i] = norms[i];
    g->rank_norm = shard_norm(cl->all, cl->count, s.base, lo, hi, 2.0); /* this shard's own */
    g->rank_coef = 1.0;
    *st = (ClipStats){.pre_norm = pre, .threshold = NAN};
    int local = g->dist.norm == DIST_NORM_LOCAL;
    switch ((ClipMethod)c->grad) {
    case CLIP_NONE: break;
    case CLIP_GLOBAL_NORM: { /* FSDP: the norm across the shards; then scale this part */
        double total = local ? shard_norm(cl->sel, cl->nsel, s.base, lo, hi, c->norm_type)
                             : sel_total(&s, c->norm_type);
        clip_grads_with_norm(s.mine, cl->nsel, c->max_norm, total);
        g->rank_coef = clip_norm_coef(c->max_norm, total);
        st->threshold = c->max_norm;
        st->clipped = cl->nsel > 0 && dist_any(g->rank_coef != 1.0f);
        break;
    }
    case CLIP_VALUE: /* elementwise: the shard alone is exact */
        st->clipped = dist_any(clip_grad_value_count(s.mine, cl->nsel, c->value) > 0);
        break;
    case CLIP_NORM: { /* each tensor by its whole norm, a cut one too (clip_grad_norm_per_tensor) */
        double *v = xmalloc((size_t)(cl->nsel + 1) * sizeof *v), largest = 0;
        sel_norms(&s, c->norm_type, v);
        for (int i = 0; i < cl->nsel; i++) {
            if (local) v[i] = shard_norm(&cl->sel[i], 1, s.base, lo, hi, c->norm_type);
            if (!isnan(largest) && (isnan(v[i]) || v[i] > largest)) largest = v[i];
            clip_grads_with_norm(&s.mine[i], 1, c->max_norm, v[i]);
        }
        st->clipped = cl->nsel > 0 && dist_any(clip_norm_coef(c->max_norm, largest) != 1.0f);
        free(v);
        break;
    }
    case CLIP_AGC:
        st->clipped = dist_any(shard_agc(&s, cl));
        break;
    case CLIP_ZCLIP: {
        double level = clip_zclip_level(&cl->zclip);
        clip_zclip_step_norm(&cl->zclip, s.mine, cl->nsel, sel_total(&s, 2.0));
        st->clipped = cl->zclip.last.clipped;
        st->threshold = isnan(cl->zclip.clip_val) ? level : cl->zclip.last.threshold;
        break;
    }
    case CLIP_ADAGC: {
        double *v = xmalloc((size_t)(cl->nsel + 1) * sizeof *v);
        sel_norms(&s, 2.0, v);
        st->threshold = clip_adagc_level(&cl->adagc);
        clip_adagc_step_norms(&cl->adagc, s.mine, cl->nsel, v, adagc_remeasure, &s);
        st->clipped = cl->adagc.last.clipped > 0;
        free(v);
        break;
    }
    case CLIP_AUTO:
        st->threshold = cl->autoc.threshold;
        clip_auto_step_norm(&cl->autoc, s.mine, cl->nsel, sel_total(&s, cl->autoc.p.norm_type));
        st->clipped = cl->autoc.last.clipped;
        break;
    case CLIP_METHOD_COUNT: ASSERT(0, "not a clip method"); break;
    }
    if (st->clipped) { /* clipper_apply's post-clip norm, as exactly */
        seg_norms(s.base, s.n, all_segs, cl->count, lo, hi, 2.0, norms);
        st->post_norm = clip_norm_of_norms(norms, cl->count, 2.0);
    } else {
        st->post_norm = pre;
    }
    st->coef = pre > 0 ? st->post_norm / pre : 1.0;
    free(norms), free(all_segs), free(s.segs), free(s.mine);
}
