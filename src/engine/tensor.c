/* tensor.c: arena, tape and reverse walk (see tensor.h). */
#include "tensor.h"

#include <math.h>
#include <string.h>

#include "blas_pin.h"
#include "common.h"

#define ARENA_ALIGN 64

void arena_init(Arena *a, size_t bytes, const char *setting) {
    a->base = aligned_alloc(ARENA_ALIGN, (bytes + ARENA_ALIGN - 1) / ARENA_ALIGN * ARENA_ALIGN);
    if (!a->base) die("cannot allocate a %zu-byte arena (%s)", bytes, setting);
    a->cap = bytes;
    a->used = 0;
    a->setting = setting;
}

void arena_free(Arena *a) {
    free(a->base);
    memset(a, 0, sizeof *a);
}

void *arena_alloc(Arena *a, size_t bytes) {
    size_t start = (a->used + ARENA_ALIGN - 1) / ARENA_ALIGN * ARENA_ALIGN;
    if (start + bytes > a->cap)
        die("the step arena is full: %zu bytes needed, %zu available of %zu; raise %s",
            start + bytes, a->cap - (a->used < a->cap ? a->used : a->cap), a->cap,
            a->setting);
    a->used = start + bytes;
    return a->base + start;
}

void *arena_calloc(Arena *a, size_t bytes) {
    void *p = arena_alloc(a, bytes);
    memset(p, 0, bytes);
    return p;
}

void arena_reset(Arena *a) { a->used = 0; }

void ctx_init(Ctx *c, size_t arena_bytes, size_t max_nodes) {
    blas_pin(); /* before the first matrix product: one sgemm kernel on every machine */
    memset(c, 0, sizeof *c);
    arena_init(&c->arena, arena_bytes, "[train] arena_mb");
    c->nodes = xmalloc(max_nodes * sizeof *c->nodes);
    c->cap_nodes = max_nodes;
    c->grad_enabled = 1;
    c->train = 1;
}

void ctx_free(Ctx *c) {
    arena_free(&c->arena);
    free(c->nodes);
    c->nodes = NULL;
}

void ctx_reset(Ctx *c) {
    arena_reset(&c->arena);
    c->nnodes = 0;
}

int ctx_set_grad(Ctx *c, int enabled) {
    int prev = c->grad_enabled;
    c->grad_enabled = enabled;
    return prev;
}

size_t shape_numel(int ndim, const int *shape) {
    size_t n = 1;
    for (int i = 0; i < ndim; i++) {
        ASSERT(shape[i] > 0, "dimension %d is %d", i, shape[i]);
        n *= (size_t)shape[i];
    }
    return n;
}

Tensor tensor_view(float *data, float *grad, int ndim, const int *shape) {
    ASSERT(ndim >= 1 && ndim <= TENSOR_MAX_DIMS, "ndim %d", ndim);
    Tensor t;
    memset(&t, 0, sizeof t);
    t.data = data;
    t.grad = grad;
    t.ndim = ndim;
    memcpy(t.shape, shape, (size_t)ndim * sizeof *shape);
    t.n = shape_numel(ndim, shape);
    return t;
}

Tensor *tensor_new(Ctx *c, int ndim, const int *shape, int requires_grad) {
    Tensor *t = arena_alloc(&c->arena, sizeof *t);
    size_t n = shape_numel(ndim, shape);
    float *data = arena_calloc(&c->arena, n * sizeof(float));
    float *grad = requires_grad ? arena_calloc(&c->arena, n * sizeof(float)) : NULL;
    *t = tensor_view(data, grad, ndim, shape);
    return t;
}

Tensor *tensor_new2(Ctx *c, int d0, int d1, int requires_grad) {
    int shape[2] = {d0, d1};
    return tensor_new(c, 2, shape, requires_grad);
}

Tensor *tensor_from(Ctx *c, int ndim, const int *shape, const float *src) {
    Tensor *t = tensor_new(c, ndim, shape, 0);
    memcpy(t->data, src, t->n * sizeof(float));
    return t;
}

int tensor_same_shape(const Tensor *a, const Tensor *b) {
    if (a->ndim != b->ndim) return 0;
    for (int i = 0; i < a->ndim; i++)
        if (a->shape[i] != b->shape[i]) return 0;
    return 1;
}

int tensor_cols(const Tensor *t) { return t->shape[t->ndim - 1]; }

size_t tensor_rows(const Tensor *t) { return t->n / (size_t)tensor_cols(t); }

Tensor *ad_out(Ctx *c, int ndim, const int *shape, Tensor *const *in, int nin) {
    int need = 0;
    if (c->grad_enabled)
        for (int i = 0; i < nin; i++)
            if (in[i] && in[i]->grad) need = 1;
    /* Op outputs are written whole by their op, so only the gradient (which
     * backward adds into) is zeroed: zeroing data too cost 10% of an RNN step. */
    Tensor *t = arena_alloc(&c->arena, sizeof *t);
    size_t n = shape_numel(ndim, shape);
    float *data = arena_alloc(&c->arena, n * sizeof(float));
#ifdef CLIPLAB_POISON_OUTPUTS /* make test-asan: an op that reads its output before writing it fails */
    for (size_t i = 0; i < n; i++) data[i] = NAN;
#endif
    *t = tensor_view(data, need ? arena_calloc(&c->arena, n * sizeof(float)) : NULL, ndim, shape);
    return t;
}

TapeNode *tape_record(Ctx *c, const char *op, BackwardFn fn, Tensor *out,
                      Tensor *const *in, int nin) {
    ASSERT(nin <= TAPE_MAX_INPUTS, "op %s has %d inputs", op, nin);
    if (!c->grad_enabled || !out->grad) return NULL;
    if (c->nnodes == c->cap_nodes)
        die("the tape is full (%zu nodes); raise [train] max_nodes", c->cap_nodes);
    TapeNode *nd = &c->nodes[c->nnodes++];
    memset(nd, 0, sizeof *nd);
    nd->op = op;
    nd->backward = fn;
    nd->out = out;
    nd->nin = nin;
    for (int i = 0; i < nin; i++) nd->in[i] = in[i];
    return nd;
}

void ad_backward(Ctx *c, Tensor *loss, float seed) {
    ASSERT(loss->n == 1, "backward needs a scalar loss, got %zu elements", loss->n);
    ASSERT(loss->grad, "loss has no gradient (no parameter reached it, or no-grad mode)");
    loss->grad[0] += seed;
    tape_backward(c);
}

void tape_backward(Ctx *c) {
    for (size_t i = c->nnodes; i-- > 0;) {
        TapeNode *nd = &c->nodes[i];
        nd->backward(nd);
    }
}
