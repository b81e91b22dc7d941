/* perex.c: per-example gradient norms and the weighted sum of perex.h.
 * Dimension legend: B examples, T positions per example, IN/OUT linear sizes
 * (conv: IN = CKK = CIN*KH*KW, OUT = COUT). Norms accumulate in double. */
#include "perex.h"

#include <cblas.h>
#include <string.h>

#include "common.h"
#include "ops.h"

void perex_attach(PerEx *pe, Ctx *c, int max_layers) {
    if (pe->cap < max_layers) {
        free(pe->layers);
        pe->layers = xcalloc((size_t)max_layers, sizeof *pe->layers);
        pe->cap = max_layers;
    }
    pe->n = 0;
    pe->B = -1;
    pe->sq = NULL;
    pe->arena = &c->arena;
    c->pe = pe;
}

void perex_detach(PerEx *pe, Ctx *c) {
    (void)pe;
    c->pe = NULL;
}

void perex_free(PerEx *pe) {
    free(pe->layers);
    memset(pe, 0, sizeof *pe);
}

int perex_batch(const PerEx *pe) { return pe->B < 0 ? 0 : pe->B; }

float *perex_alloc(PerEx *pe, size_t n) { return arena_alloc(pe->arena, n * sizeof(float) + 1); }

double *perex_alloc_sq(PerEx *pe, int B) {
    return arena_alloc(pe->arena, (size_t)B * sizeof(double) + 1);
}

static PerExLayer *add_layer(PerEx *pe, Tensor *w, Tensor *b, int B) {
    ASSERT(pe->n < pe->cap, "per-example gradients: more than %d layers", pe->cap);
    if (pe->B < 0) {
        pe->B = B;
        pe->sq = arena_calloc(pe->arena, (size_t)B * sizeof(double) + 1);
    }
    ASSERT(B == pe->B, "per-example gradients: a layer saw a batch of %d, an earlier one %d "
           "(every layer's leading dim must be the examples)", B, pe->B);
    ASSERT(w->grad && (!b || b->grad), "per-example gradients: a frozen weight or bias");
    PerExLayer *l = &pe->layers[pe->n++];
    memset(l, 0, sizeof *l);
    l->w = w;
    l->b = b;
    return l;
}

static double dot(const float *a, const float *b, int n) {
    double s = 0.0;
    for (int k = 0; k < n; k++) s += (double)a[k] * b[k];
    return s;
}

void perex_linear(PerEx *pe, Tensor *w, Tensor *b, const float *x, const float *dout, int B, int T,
                  int IN, int OUT) {
    /* x[B,T,IN], dout[B,T,OUT] */
    PerExLayer *l = add_layer(pe, w, b, B);
    l->T = T, l->IN = IN, l->OUT = OUT, l->x = x, l->dout = dout;
    for (int i = 0; i < B; i++) {
        const float *a = x + (size_t)i * T * IN, *g = dout + (size_t)i * T * OUT;
        double s = 0.0;
        if (T == 1) { /* Goodfellow 2015: ||g a^T|| = ||g|| ||a|| */
            double gg = dot(g, g, OUT);
            s = gg * dot(a, a, IN) + (b ? gg : 0.0);
        } else { /* Li et al. 2021: sum_{t,u} (a_t.a_u)(g_t.g_u); bias: ||sum_t g_t||^2 */
            for (int t = 0; t < T; t++)
                for (int u = 0; u < T; u++) {
                    double gu = dot(g + (size_t)t * OUT, g + (size_t)u * OUT, OUT);
                    s += dot(a + (size_t)t * IN, a + (size_t)u * IN, IN) * gu + (b ? gu : 0.0);
                }
        }
        pe->sq[i] += s;
    }
}

double perex_conv_sq(const float *gw_i, const float *gb_i, int CKK, int COUT) {
    size_t P = (size_t)COUT * CKK;
    double s = 0.0;
    for (size_t k = 0; k < P; k++) s += (double)gw_i[k] * gw_i[k];
    if (gb_i) s += dot(gb_i, gb_i, COUT);
    return s;
}

void perex_conv(PerEx *pe, Tensor *w, Tensor *b, const float *gw, const float *gb, const double *sq,
                int B, int CKK, int COUT) {
    /* gw[B, COUT*CKK], gb[B, COUT] or NULL, sq[B] = perex_conv_sq of each */
    PerExLayer *l = add_layer(pe, w, b, B);
    l->conv = 1, l->IN = CKK, l->OUT = COUT, l->gw = gw, l->gb = gb;
    for (int i = 0; i < B; i++) pe->sq[i] += sq[i];
}

void perex_weighted_sum(const PerEx *pe, const float *f) {
    for (int li = 0; li < pe->n; li++) {
        const PerExLayer *l = &pe->layers[li];
        int B = pe->B, IN = l->IN, OUT = l->OUT;
        float *dw = l->w->grad, *db = l->b ? l->b->grad : NULL;
        if (!l->conv) {
            /* dw[OUT,IN] += (f . dout)^T @ x over the R = B*T rows; db += column sums */
            size_t R = (size_t)B * l->T;
            float *gs = perex_alloc((PerEx *)pe, R * OUT);
            for (size_t r = 0; r < R; r++)
                for (int o = 0; o < OUT; o++)
                    gs[r * OUT + o] = f[r / l->T] * l->dout[r * OUT + o];
            cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, OUT, IN, (int)R, 1.0f, gs, OUT,
                        l->x, IN, 1.0f, dw, IN);
            if (db)
                for (size_t r = 0; r < R; r++)
                    for (int o = 0; o < OUT; o++) db[o] += gs[r * OUT + o];
        } else {
            /* dw[k] += f_i gw_i[k] for i in example order; the coordinates are
             * split over the threads (each coordinate's sum in the same order
             * whatever the count) */
            size_t P = (size_t)OUT * IN;
            int nt = ops_num_threads;
#pragma omp parallel for num_threads(nt) schedule(static) if (nt > 1)
            for (int t = 0; t < nt; t++) {
                size_t k0 = P * t / nt, k1 = P * (t + 1) / nt;
                for (int i = 0; i < B; i++) {
                    const float *gi = l->gw + (size_t)i * P;
                    float fi = f[i];
                    for (size_t k = k0; k < k1; k++) dw[k] += fi * gi[k];
                }
            }
            if (db)
                for (int i = 0; i < B; i++)
                    for (int o = 0; o < OUT; o++) db[o] += f[i] * l->gb[(size_t)i * OUT + o];
        }
    }
}
