/* params.c: ParamSet layout and initialisers (see params.h). */
#include "params.h"

#include <math.h>
#include <string.h>

#include "common.h"

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

void param_zero_grad(ParamSet *ps) { memset(ps->grad, 0, ps->n * sizeof(float)); }

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

void param_init_orthogonal(Tensor *t, Rng *r, float gain) {
    ASSERT(t->ndim == 2, "orthogonal init needs a matrix");
    int rows = t->shape[0], cols = t->shape[1];
    /* Orthonormalise the longer side's vectors: work on k vectors of length m. */
    int transpose = rows > cols;
    int k = transpose ? cols : rows, m = transpose ? rows : cols;
    double *q = xmalloc((size_t)k * (size_t)m * sizeof *q);
    for (size_t i = 0; i < (size_t)k * (size_t)m; i++) q[i] = rng_normal(r);
    for (int i = 0; i < k; i++) {
        double *v = q + (size_t)i * m;
        for (int pass = 0; pass < 2; pass++) /* twice is enough (Kahan) */
            for (int j = 0; j < i; j++) {
                const double *u = q + (size_t)j * m;
                double dot = 0.0;
                for (int e = 0; e < m; e++) dot += u[e] * v[e];
                for (int e = 0; e < m; e++) v[e] -= dot * u[e];
            }
        double nrm = 0.0;
        for (int e = 0; e < m; e++) nrm += v[e] * v[e];
        nrm = sqrt(nrm);
        ASSERT(nrm > 1e-12, "degenerate Gaussian draw in orthogonal init");
        for (int e = 0; e < m; e++) v[e] /= nrm;
    }
    for (int i = 0; i < rows; i++)
        for (int j = 0; j < cols; j++) {
            double v = transpose ? q[(size_t)j * m + i] : q[(size_t)i * m + j];
            t->data[(size_t)i * cols + j] = (float)(gain * v);
        }
    free(q);
}
