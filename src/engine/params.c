/* params.c: ParamSet layout and initialisers (see params.h). */
#include "params.h"

#include <lapacke.h>
#include <math.h>
#include <string.h>
#include <time.h>

#include "common.h"
#include "ops_kernel.h"

void param_set_init(ParamSet *ps, const char *name, int max_params) {
    memset(ps, 0, sizeof *ps);
    snprintf(ps->name, sizeof ps->name, "%s", name);
    ps->params = xcalloc((size_t)max_params, sizeof *ps->params);
    ps->cap = max_params;
}

void param_set_free(ParamSet *ps) {
    free(ps->params);
    free(ps->data);
    free(ps->grad);
    free(ps->buf);
    memset(ps, 0, sizeof *ps);
}

static Tensor *declare(ParamSet *ps, const char *name, int ndim, const int *shape, int decay,
                       int buffer) {
    ASSERT(!ps->allocated, "param_add(%s) after param_alloc", name);
    ASSERT(ps->count < ps->cap, "ParamSet %s holds at most %d tensors", ps->name, ps->cap);
    ASSERT(strlen(name) < PARAM_NAME_MAX, "parameter name too long: %s", name);
    ASSERT(!param_find(ps, name), "duplicate parameter name %s", name);
    Param *p = &ps->params[ps->count++];
    snprintf(p->name, sizeof p->name, "%s", name);
    p->t = tensor_view(NULL, NULL, ndim, shape);
    p->decay = decay;
    p->buffer = buffer;
    if (buffer) {
        p->offset = ps->nbuf;
        ps->nbuf += p->t.n;
    } else {
        p->offset = ps->n;
        ps->n += p->t.n;
    }
    return &p->t;
}

Tensor *param_add(ParamSet *ps, const char *name, int ndim, const int *shape, int decay) {
    return declare(ps, name, ndim, shape, decay, 0);
}

Tensor *param_add_buffer(ParamSet *ps, const char *name, int ndim, const int *shape) {
    return declare(ps, name, ndim, shape, 0, 1);
}

void param_alloc(ParamSet *ps) {
    ASSERT(!ps->allocated, "ParamSet %s allocated twice", ps->name);
    ps->data = xcalloc(ps->n, sizeof(float));
    ps->grad = xcalloc(ps->n, sizeof(float));
    ps->buf = xcalloc(ps->nbuf, sizeof(float));
    for (int i = 0; i < ps->count; i++) {
        Param *p = &ps->params[i];
        if (p->buffer) {
            p->t.data = ps->buf + p->offset;
            p->t.grad = NULL;
        } else {
            p->t.data = ps->data + p->offset;
            p->t.grad = ps->grad + p->offset;
        }
    }
    ps->allocated = 1;
}

void param_set_requires_grad(ParamSet *ps, int on) {
    ASSERT(ps->allocated, "ParamSet %s not allocated", ps->name);
    for (int i = 0; i < ps->count; i++) {
        Param *p = &ps->params[i];
        if (!p->buffer) p->t.grad = on ? ps->grad + p->offset : NULL;
    }
}

void param_zero_grad(ParamSet *ps) {
    float *g = ps->grad;
    OPS_PARALLEL_CHUNKS(ps->n, OPS_WORK_THREADS(ps->n), 64, memset(g + lo, 0, (hi - lo) * sizeof *g));
}

Param *param_find(ParamSet *ps, const char *name) {
    for (int i = 0; i < ps->count; i++)
        if (strcmp(ps->params[i].name, name) == 0) return &ps->params[i];
    return NULL;
}


void param_init_const(Tensor *t, float v) {
    for (size_t i = 0; i < t->n; i++) t->data[i] = v;
}

void param_init_uniform(Tensor *t, Rng *r, float lo, float hi) {
    for (size_t i = 0; i < t->n; i++) t->data[i] = lo + (hi - lo) * (float)rng_uniform(r);
}

void param_init_normal(Tensor *t, Rng *r, float mean, float std) {
    for (size_t i = 0; i < t->n; i++) t->data[i] = mean + std * (float)rng_normal(r);
}

void param_init_fanin_uniform(Tensor *t, Rng *r, int fan_in) {
    float k = 1.0f / sqrtf((float)fan_in);
    param_init_uniform(t, r, -k, k);
}

static double seconds(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

/* torch.nn.init.orthogonal_: QR of a Gaussian matrix, Q's columns signed so
 * R's diagonal is positive. That makes Q unique: it is the Q Gram-Schmidt on
 * the vectors gives, computed by blocked Householder QR (LAPACK through
 * OpenBLAS) instead of scalar loops. Double precision, like the Gram-Schmidt
 * this replaced, so the float weights come out the same (tests/test_params.c). */
void param_init_orthogonal(Tensor *t, Rng *r, float gain) {
    ASSERT(t->ndim == 2, "orthogonal init needs a matrix");
    int rows = t->shape[0], cols = t->shape[1];
    /* Orthonormalise k vectors of length m (the shorter side's count of the
     * longer side's vectors). Row-major k x m is column-major m x k = A. */
    int transpose = rows > cols;
    int k = transpose ? cols : rows, m = transpose ? rows : cols;
    /* ~4mk^2 flops: hidden = 8192 takes minutes on one core; say so */
    int loud = 4.0 * m * (double)k * k > 2e11;
    double t0 = seconds();
    if (loud)
        fprintf(stderr, "cliplab: orthogonal initialisation of a %d x %d matrix (LAPACK QR, "
                "%.1e flops)...\n", rows, cols, 4.0 * m * (double)k * k);
    double *q = xmalloc((size_t)k * (size_t)m * sizeof *q), *tau = xmalloc((size_t)k * sizeof *tau);
    for (size_t i = 0; i < (size_t)k * (size_t)m; i++) q[i] = rng_normal(r);
    lapack_int info = LAPACKE_dgeqrf(LAPACK_COL_MAJOR, m, k, q, m, tau); /* A = QR */
    ASSERT(info == 0, "LAPACK dgeqrf failed (%d)", (int)info);
    signed char *sign = xmalloc((size_t)k);
    for (int j = 0; j < k; j++) {
        double d = q[(size_t)j * m + j]; /* R[j][j] */
        ASSERT(fabs(d) > 1e-12, "degenerate Gaussian draw in orthogonal init");
        sign[j] = d < 0 ? -1 : 1;
    }
    info = LAPACKE_dorgqr(LAPACK_COL_MAJOR, m, k, k, q, m, tau); /* Q, m x k */
    ASSERT(info == 0, "LAPACK dorgqr failed (%d)", (int)info);
    for (int i = 0; i < rows; i++)
        for (int j = 0; j < cols; j++) {
            int vec = transpose ? j : i, e = transpose ? i : j;
            double v = sign[vec] * q[(size_t)vec * m + e];
            t->data[(size_t)i * cols + j] = (float)(gain * v);
        }
    free(q), free(tau), free(sign);
    if (loud) fprintf(stderr, "cliplab: orthogonal initialisation done in %.1f s\n", seconds() - t0);
}
