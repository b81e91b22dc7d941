/* test_ops_core.c: the ops of src/ops_core.c.
 *   1. finite-difference gradient checks for every op (each broadcast form of
 *      add/sub/mul, views, and weight sharing, where gradients must accumulate);
 *   2. sgemm matmul/linear (forward and backward) against ops_ref_matmul;
 *   3. parity with PyTorch (tests/ref/ref_ops_core.py): outputs and input
 *      gradients of (out * R).sum() for a fixed random R;
 *   4. tape bookkeeping: no-grad mode and gradient-free inputs record nothing,
 *      bad shapes abort. */
#include <criterion/criterion.h>
#include <signal.h>

#include "ops.h"
#include "gradcheck.h"
#include "tfile.h"

/* Gradcheck: central differences with eps 1e-2 on float32 forwards; per element
 * |analytic - numeric| <= 1e-3 + 1e-2 |numeric|. Float rounding in L costs
 * ~1e-5 after dividing by 2 eps and truncation ~eps^2 |f'''| / 6 ~ 1e-4, while
 * a wrong gradient (missed term, sign, factor) is off by O(1). */
#define GC_EPS 1e-2
#define GC_ATOL 1e-3
#define GC_RTOL 1e-2

/* Kinks are kept at least this far from every input, well beyond GC_EPS. */
#define KINK_MARGIN 0.1f

/* Scalar arguments shared with tests/ref/ref_ops_core.py. */
#define SCALE_S (-1.7f)
#define ADD_S 0.3f
#define CLAMP_LO (-0.5f)
#define CLAMP_HI 0.8f

static Rng rng;

static void setup(void) { rng_seed(&rng, 42, 1); }

TestSuite(ops_core, .init = setup);

/* ---------------------------------------------------------------- helpers */

static Tensor *input2(int d0, int d1, float scale, float shift) {
    int shape[2] = {d0, d1};
    return gc_input(2, shape, &rng, scale, shift);
}

static Tensor *input_n(int ndim, const int *shape) { return gc_input(ndim, shape, &rng, 1, 0); }

/* Move every element at least `margin` away from `kink`, keeping its side. */
static void push_away(Tensor *t, float kink, float margin) {
    for (size_t i = 0; i < t->n; i++) {
        float d = t->data[i] - kink;
        if (fabsf(d) < margin) t->data[i] = kink + (d < 0 ? -margin : margin);
    }
}

static void check(GcBuild f, Tensor **in, int nin, void *user, const char *what) {
    gradcheck(f, in, nin, user, GC_EPS, GC_ATOL, GC_RTOL, what);
    for (int i = 0; i < nin; i++) gc_free(in[i]);
}

/* ----------------------------------------------------- build functions */
/* One per op; `user` carries the op's extra argument where it has one. */

static Tensor *b_matmul(Ctx *c, Tensor **in, void *u) {
    (void)u;
    return ad_matmul(c, in[0], in[1]);
}
static Tensor *b_linear(Ctx *c, Tensor **in, void *u) {
    (void)u;
    return ad_linear(c, in[0], in[1], in[2]);
}
static Tensor *b_linear_nobias(Ctx *c, Tensor **in, void *u) {
    (void)u;
    return ad_linear(c, in[0], in[1], NULL);
}
static Tensor *b_add(Ctx *c, Tensor **in, void *u) {
    (void)u;
    return ad_add(c, in[0], in[1]);
}
static Tensor *b_sub(Ctx *c, Tensor **in, void *u) {
    (void)u;
    return ad_sub(c, in[0], in[1]);
}
static Tensor *b_mul(Ctx *c, Tensor **in, void *u) {
    (void)u;
    return ad_mul(c, in[0], in[1]);
}
static Tensor *b_minimum(Ctx *c, Tensor **in, void *u) {
    (void)u;
    return ad_minimum(c, in[0], in[1]);
}
static Tensor *b_scale(Ctx *c, Tensor **in, void *u) {
    (void)u;
    return ad_scale(c, in[0], SCALE_S);
}
static Tensor *b_add_scalar(Ctx *c, Tensor **in, void *u) {
    (void)u;
    return ad_add_scalar(c, in[0], ADD_S);
}
static Tensor *b_clamp(Ctx *c, Tensor **in, void *u) {
    (void)u;
    return ad_clamp(c, in[0], CLAMP_LO, CLAMP_HI);
}
static Tensor *b_mse(Ctx *c, Tensor **in, void *u) {
    (void)u;
    return ad_mse(c, in[0], in[1]);
}
static Tensor *b_gather(Ctx *c, Tensor **in, void *u) { return ad_gather(c, in[0], u); }
static Tensor *b_slice_cols(Ctx *c, Tensor **in, void *u) {
    (void)u;
    return ad_slice_cols(c, in[0], 2, 3);
}
static Tensor *b_slice_rows(Ctx *c, Tensor **in, void *u) {
    (void)u;
    return ad_slice_rows(c, in[0], 1, 3);
}
static Tensor *b_reshape(Ctx *c, Tensor **in, void *u) {
    (void)u;
    int shape[2] = {6, 4};
    return ad_reshape(c, in[0], 2, shape);
}
/* user = int count of inputs */
static Tensor *b_concat_cols(Ctx *c, Tensor **in, void *u) {
    return ad_concat_cols(c, in, *(int *)u);
}
static Tensor *b_concat_rows(Ctx *c, Tensor **in, void *u) {
    return ad_concat_rows(c, in, *(int *)u);
}

/* Unary ops without arguments go through one builder; user = the op. */
typedef Tensor *(*UnaryOp)(Ctx *c, Tensor *x);
typedef struct {
    UnaryOp f;
} UnaryBox;
static Tensor *b_unary(Ctx *c, Tensor **in, void *u) { return ((UnaryBox *)u)->f(c, in[0]); }

/* ------------------------------------------------------- gradient checks */

Test(ops_core, gradcheck_matmul) {
    Tensor *in[2] = {input2(3, 4, 1, 0), input2(4, 5, 1, 0)};
    check(b_matmul, in, 2, NULL, "matmul");
}

Test(ops_core, gradcheck_linear) {
    int xs[3] = {2, 3, 4}, ws[2] = {5, 4}, bs[1] = {5};
    Tensor *in[3] = {input_n(3, xs), input_n(2, ws), input_n(1, bs)};
    check(b_linear, in, 3, NULL, "linear");
    Tensor *in2[2] = {input2(3, 4, 1, 0), input2(2, 4, 1, 0)};
    check(b_linear_nobias, in2, 2, NULL, "linear without bias");
}

/* add/sub/mul with b in each broadcast form against a[2,3,4] */
static void check_binary(GcBuild f, const char *name) {
    static const int bshapes[][3] = {{2, 3, 4}, {4, 0, 0}, {3, 4, 0}, {1, 0, 0}, {1, 4, 0}};
    static const int bnd[] = {3, 1, 2, 1, 2};
    static const char *forms[] = {"same shape", "bias [4]", "trailing [3,4]", "single [1]",
                                  "bias [1,4]"};
    int as[3] = {2, 3, 4};
    for (int k = 0; k < 5; k++) {
        Tensor *in[2] = {input_n(3, as), input_n(bnd[k], bshapes[k])};
        char what[64];
        snprintf(what, sizeof what, "%s, b %s", name, forms[k]);
        check(f, in, 2, NULL, what);
    }
}

Test(ops_core, gradcheck_add) { check_binary(b_add, "add"); }
Test(ops_core, gradcheck_sub) { check_binary(b_sub, "sub"); }
Test(ops_core, gradcheck_mul) { check_binary(b_mul, "mul"); }

Test(ops_core, gradcheck_minimum) {
    Tensor *a = input2(4, 5, 1, 0), *b = input2(4, 5, 1, 0);
    for (size_t i = 0; i < a->n; i++) /* no ties: |a - b| >= margin */
        if (fabsf(a->data[i] - b->data[i]) < KINK_MARGIN)
            b->data[i] = a->data[i] + (b->data[i] < a->data[i] ? -KINK_MARGIN : KINK_MARGIN);
    Tensor *in[2] = {a, b};
    check(b_minimum, in, 2, NULL, "minimum");
}

Test(ops_core, gradcheck_scalar_ops) {
    Tensor *in[1] = {input2(3, 4, 1, 0)};
    check(b_scale, in, 1, NULL, "scale");
    in[0] = input2(3, 4, 1, 0);
    check(b_add_scalar, in, 1, NULL, "add_scalar");
}

Test(ops_core, gradcheck_smooth_unary) {
    struct {
        UnaryBox op;
        const char *name;
        float scale, shift;
    } cases[] = {
        {{ad_exp}, "exp", 1, 0},         {{ad_tanh}, "tanh", 1.5f, 0},
        {{ad_sigmoid}, "sigmoid", 2, 0}, {{ad_gelu}, "gelu", 1.5f, 0},
    };
    for (size_t k = 0; k < sizeof cases / sizeof cases[0]; k++) {
        Tensor *in[1] = {input2(3, 5, cases[k].scale, cases[k].shift)};
        check(b_unary, in, 1, &cases[k].op, cases[k].name);
    }
}

Test(ops_core, gradcheck_log) {
    Tensor *x = input2(3, 5, 1, 0);
    for (size_t i = 0; i < x->n; i++) x->data[i] = fabsf(x->data[i]) + 0.5f; /* x > 0 */
    Tensor *in[1] = {x};
    UnaryBox op = {ad_log};
    check(b_unary, in, 1, &op, "log");
}

Test(ops_core, gradcheck_relu) {
    Tensor *x = input2(4, 5, 1, 0);
    push_away(x, 0.0f, KINK_MARGIN);
    Tensor *in[1] = {x};
    UnaryBox op = {ad_relu};
    check(b_unary, in, 1, &op, "relu");
}

Test(ops_core, gradcheck_relu6) {
    Tensor *x = input2(5, 6, 4, 2); /* spans both kinks */
    push_away(x, 0.0f, KINK_MARGIN);
    push_away(x, 6.0f, KINK_MARGIN);
    Tensor *in[1] = {x};
    UnaryBox op = {ad_relu6};
    check(b_unary, in, 1, &op, "relu6");
}

Test(ops_core, gradcheck_clamp) {
    Tensor *x = input2(5, 6, 1, 0);
    push_away(x, CLAMP_LO, KINK_MARGIN);
    push_away(x, CLAMP_HI, KINK_MARGIN);
    Tensor *in[1] = {x};
    check(b_clamp, in, 1, NULL, "clamp");
}

Test(ops_core, gradcheck_reductions) {
    UnaryBox ops[] = {{ad_sum}, {ad_mean}, {ad_sum_last}};
    const char *names[] = {"sum", "mean", "sum_last"};
    int shape[3] = {2, 3, 5};
    for (int k = 0; k < 3; k++) {
        Tensor *in[1] = {input_n(3, shape)};
        check(b_unary, in, 1, &ops[k], names[k]);
    }
    Tensor *in[1] = {input_n(1, shape + 2)};
    check(b_unary, in, 1, &ops[2], "sum_last of a vector");
}

Test(ops_core, gradcheck_mse) {
    Tensor *in[2] = {input2(4, 5, 1, 0), input2(4, 5, 1, 0)};
    check(b_mse, in, 2, NULL, "mse");
}

Test(ops_core, gradcheck_gather) {
    int idx[6] = {0, 4, 2, 2, 1, 3};
    Tensor *in[1] = {input2(6, 5, 1, 0)};
    check(b_gather, in, 1, idx, "gather");
}

Test(ops_core, gradcheck_shapes) {
    int s3[3] = {2, 3, 4}, s7[3] = {3, 4, 7};
    Tensor *in[1] = {input_n(3, s3)};
    check(b_reshape, in, 1, NULL, "reshape");
    in[0] = input2(6, 4, 1, 0);
    check(b_slice_rows, in, 1, NULL, "slice_rows");
    in[0] = input_n(3, s7);
    check(b_slice_cols, in, 1, NULL, "slice_cols");
}

Test(ops_core, gradcheck_concat) {
    int a[3] = {2, 3, 2}, b[3] = {2, 3, 4}, d[3] = {2, 3, 1};
    Tensor *cols[3] = {input_n(3, a), input_n(3, b), input_n(3, d)};
    int k = 3;
    check(b_concat_cols, cols, 3, &k, "concat_cols");
    /* six inputs: more than a TapeNode holds */
    Tensor *rows[6];
    for (int i = 0; i < 6; i++) rows[i] = input2(1 + i % 3, 3, 1, 0);
    k = 6;
    check(b_concat_rows, rows, 6, &k, "concat_rows of 6");
}

/* ---- weight sharing: the same tensor feeds an op twice, gradients must add */

static Tensor *b_square(Ctx *c, Tensor **in, void *u) {
    (void)u;
    return ad_mul(c, in[0], in[0]);
}
static Tensor *b_double(Ctx *c, Tensor **in, void *u) {
    (void)u;
    return ad_add(c, in[0], in[0]);
}
static Tensor *b_matmul_self(Ctx *c, Tensor **in, void *u) {
    (void)u;
    return ad_matmul(c, in[0], in[0]);
}
/* tanh(W tanh(W x + b) + b): W and b used twice, as in an unrolled RNN */
static Tensor *b_linear_twice(Ctx *c, Tensor **in, void *u) {
    (void)u;
    Tensor *h = ad_tanh(c, ad_linear(c, in[0], in[1], in[2]));
    return ad_tanh(c, ad_linear(c, h, in[1], in[2]));
}
/* [x; y; x] */
static Tensor *b_concat_shared(Ctx *c, Tensor **in, void *u) {
    (void)u;
    Tensor *xs[3] = {in[0], in[1], in[0]};
    return ad_concat_rows(c, xs, 3);
}
/* rows 0-1 of x[4,3] times rows 2-3, through reshape and slice_rows views that
 * share x's gradient buffer */
static Tensor *b_views_shared(Ctx *c, Tensor **in, void *u) {
    (void)u;
    Tensor *y = ad_reshape(c, in[0], 2, (int[]){2, 6});
    return ad_mul(c, ad_slice_rows(c, y, 0, 1), ad_slice_rows(c, y, 1, 1));
}

Test(ops_core, gradcheck_weight_sharing) {
    Tensor *in[3] = {input2(3, 4, 1, 0)};
    check(b_square, in, 1, NULL, "mul(x, x)");
    in[0] = input2(3, 4, 1, 0);
    check(b_double, in, 1, NULL, "add(x, x)");
    in[0] = input2(4, 4, 1, 0);
    check(b_matmul_self, in, 1, NULL, "matmul(x, x)");
    int bs[1] = {4};
    in[0] = input2(3, 4, 1, 0);
    in[1] = input2(4, 4, 0.5f, 0);
    in[2] = input_n(1, bs);
    check(b_linear_twice, in, 3, NULL, "linear with W, b twice");
    in[0] = input2(2, 3, 1, 0);
    in[1] = input2(1, 3, 1, 0);
    check(b_concat_shared, in, 2, NULL, "concat_rows(x, y, x)");
    in[0] = input2(4, 3, 1, 0);
    check(b_views_shared, in, 1, NULL, "views of one tensor");
}

/* mul(x, x) with x->grad starting at 1 and upstream g: x->grad = 1 + 2 x g
 * exactly (small integers and halves), so both uses add and neither overwrites. */
Test(ops_core, shared_gradient_is_sum) {
    Ctx c;
    ctx_init(&c, 1 << 20, 64);
    Tensor *x = tensor_new2(&c, 2, 3, 1);
    for (size_t i = 0; i < x->n; i++) x->data[i] = (float)i - 2.5f, x->grad[i] = 1.0f;
    Tensor *y = ad_mul(&c, x, x);
    for (size_t i = 0; i < y->n; i++) y->grad[i] = 1.0f + (float)i;
    tape_backward(&c);
    for (size_t i = 0; i < x->n; i++)
        cr_assert(x->grad[i] == 1.0f + 2.0f * x->data[i] * (1.0f + (float)i),
                  "element %zu: %g", i, (double)x->grad[i]);
    ctx_free(&c);
}

/* minimum: ties send the whole gradient to a (ops.h contract; torch would split it) */
Test(ops_core, minimum_ties_go_to_a) {
    Ctx c;
    ctx_init(&c, 1 << 20, 64);
    Tensor *a = tensor_new2(&c, 1, 3, 1), *b = tensor_new2(&c, 1, 3, 1);
    const float av[3] = {1, 2, -3}, bv[3] = {1, 1, -3};
    memcpy(a->data, av, sizeof av), memcpy(b->data, bv, sizeof bv);
    Tensor *y = ad_minimum(&c, a, b);
    for (int i = 0; i < 3; i++) y->grad[i] = 1.0f;
    tape_backward(&c);
    const float ga[3] = {1, 0, 1}, gb[3] = {0, 1, 0}, yv[3] = {1, 1, -3};
    for (int i = 0; i < 3; i++)
        cr_assert(y->data[i] == yv[i] && a->grad[i] == ga[i] && b->grad[i] == gb[i],
                  "element %d: y %g, da %g, db %g", i, (double)y->data[i], (double)a->grad[i],
                  (double)b->grad[i]);
    ctx_free(&c);
}

/* NaN passes through the activation clips and minimum (as in torch), so the
 * trainer's isfinite check sees a diverged forward instead of a clipped one. */
Test(ops_core, nan_propagates) {
    Ctx c;
    ctx_init(&c, 1 << 20, 64);
    Tensor *x = tensor_new2(&c, 1, 2, 0), *one = tensor_new2(&c, 1, 2, 0);
    x->data[0] = x->data[1] = NAN;
    one->data[0] = one->data[1] = 1.0f;
    Tensor *ys[] = {ad_relu(&c, x),           ad_relu6(&c, x),          ad_clamp(&c, x, -1, 1),
                    ad_minimum(&c, x, one),   ad_minimum(&c, one, x),   ad_tanh(&c, x)};
    for (size_t k = 0; k < sizeof ys / sizeof ys[0]; k++)
        cr_assert(isnan(ys[k]->data[0]) && isnan(ys[k]->data[1]), "op %zu dropped a NaN", k);
    ctx_free(&c);
}

/* ------------------------------------------------- sgemm vs naive reference */

/* sgemm accumulates K products in float; the reference in double. With K <= 13
 * and N(0,1) entries, |error| <= K * 2^-24 * sum|a b| ~ 1e-5 worst case. */
#define MM_ATOL 2e-5
#define MM_RTOL 1e-5

static void transpose(float *out, const float *x, int rows, int cols) {
    for (int i = 0; i < rows; i++)
        for (int j = 0; j < cols; j++) out[(size_t)j * rows + i] = x[(size_t)i * cols + j];
}

/* p[n] ~ N(0, 1) */
static void fill(float *p, size_t n) {
    for (size_t i = 0; i < n; i++) p[i] = (float)rng_normal(&rng);
}

/* a[M,K] @ b[K,N]: forward, and backward da = G b^T, db = a^T G */
static void check_matmul(int M, int K, int N) {
    Ctx c;
    ctx_init(&c, 1 << 20, 64);
    Tensor *a = tensor_new2(&c, M, K, 1), *b = tensor_new2(&c, K, N, 1);
    fill(a->data, a->n), fill(b->data, b->n);
    Tensor *out = ad_matmul(&c, a, b);
    cr_assert(out->ndim == 2 && out->shape[0] == M && out->shape[1] == N);
    size_t big = (size_t)(M + K + N) * (M + K + N);
    float *ref = calloc(big, sizeof *ref), *tr = calloc(big, sizeof *tr);
    ops_ref_matmul(ref, a->data, b->data, M, K, N);
    assert_close(out->data, ref, out->n, MM_ATOL, MM_RTOL, "matmul forward");
    fill(out->grad, out->n);
    tape_backward(&c);
    transpose(tr, b->data, K, N);
    ops_ref_matmul(ref, out->grad, tr, M, N, K);
    assert_close(a->grad, ref, a->n, MM_ATOL, MM_RTOL, "matmul da");
    transpose(tr, a->data, M, K);
    ops_ref_matmul(ref, tr, out->grad, K, M, N);
    assert_close(b->grad, ref, b->n, MM_ATOL, MM_RTOL, "matmul db");
    free(ref);
    free(tr);
    ctx_free(&c);
}

Test(ops_core, matmul_matches_reference) {
    check_matmul(7, 13, 5);
    check_matmul(1, 13, 5);
    check_matmul(13, 1, 7);
    check_matmul(5, 7, 1);
}

/* x[R,IN] @ w[OUT,IN]^T + b: forward; dx = G w, dw = G^T x, db = column sums */
static void check_linear(int R, int IN, int OUT) {
    Ctx c;
    ctx_init(&c, 1 << 20, 64);
    Tensor *x = tensor_new2(&c, R, IN, 1), *w = tensor_new2(&c, OUT, IN, 1);
    Tensor *b = tensor_new(&c, 1, &OUT, 1);
    fill(x->data, x->n), fill(w->data, w->n), fill(b->data, b->n);
    Tensor *out = ad_linear(&c, x, w, b);
    size_t big = (size_t)(R + IN + OUT) * (R + IN + OUT);
    float *ref = calloc(big, sizeof *ref), *tr = calloc(big, sizeof *tr);
    transpose(tr, w->data, OUT, IN);
    ops_ref_matmul(ref, x->data, tr, R, IN, OUT);
    for (int r = 0; r < R; r++)
        for (int o = 0; o < OUT; o++) ref[r * OUT + o] += b->data[o];
    assert_close(out->data, ref, out->n, MM_ATOL, MM_RTOL, "linear forward");
    fill(out->grad, out->n);
    tape_backward(&c);
    ops_ref_matmul(ref, out->grad, w->data, R, OUT, IN);
    assert_close(x->grad, ref, x->n, MM_ATOL, MM_RTOL, "linear dx");
    transpose(tr, out->grad, R, OUT);
    ops_ref_matmul(ref, tr, x->data, OUT, R, IN);
    assert_close(w->grad, ref, w->n, MM_ATOL, MM_RTOL, "linear dw");
    for (int o = 0; o < OUT; o++) {
        double s = 0;
        for (int r = 0; r < R; r++) s += out->grad[r * OUT + o];
        ref[o] = (float)s;
    }
    assert_close(b->grad, ref, b->n, MM_ATOL, MM_RTOL, "linear db");
    free(ref);
    free(tr);
    ctx_free(&c);
}

Test(ops_core, linear_matches_reference) {
    check_linear(7, 13, 5);
    check_linear(1, 13, 5);
    check_linear(9, 3, 1);
}

/* ------------------------------------------------------- PyTorch parity */

/* Outputs and gradients against torch float32: atol 1e-5, rtol 1e-4 (values
 * are O(1); libm vs torch's vectorised exp/tanh differ by an ulp or two, and
 * our sums accumulate in double where torch sums in float). */
#define PT_ATOL 1e-5
#define PT_RTOL 1e-4

/* Input gradients start at this value, so a backward that overwrites instead of
 * adding fails; it is subtracted before comparing (exact to an ulp of 0.25). */
#define PT_GRAD0 0.25f

/* Run case `name` with nin inputs from the fixture: forward, add R into
 * out->grad (a view's grad is its input's), backward; compare the output
 * (shape and values) and every gradient. */
static void parity(const TFile *tf, const char *name, int nin, GcBuild f, void *user) {
    char key[96], what[128];
    Ctx c;
    ctx_init(&c, 1 << 20, 256);
    Tensor *in[8];
    cr_assert(nin <= 8);
    for (int i = 0; i < nin; i++) {
        snprintf(key, sizeof key, "%s.in%d", name, i);
        const TRec *r = tfile_get(tf, key);
        in[i] = tensor_new(&c, r->ndim, r->shape, 1);
        memcpy(in[i]->data, r->data, r->n * sizeof(float));
        for (size_t j = 0; j < in[i]->n; j++) in[i]->grad[j] = PT_GRAD0;
    }
    Tensor *out = f(&c, in, user);
    snprintf(key, sizeof key, "%s.out", name);
    const TRec *ro = tfile_get(tf, key);
    cr_assert(ro->ndim == out->ndim, "%s: output has %d dims, torch %d", name, out->ndim,
              ro->ndim);
    for (int d = 0; d < out->ndim; d++)
        cr_assert(ro->shape[d] == out->shape[d], "%s: output dim %d is %d, torch %d", name, d,
                  out->shape[d], ro->shape[d]);
    snprintf(what, sizeof what, "%s forward", name);
    assert_close(out->data, ro->data, out->n, PT_ATOL, PT_RTOL, what);
    snprintf(key, sizeof key, "%s.R", name);
    const float *R = tfile_f32(tf, key);
    for (size_t j = 0; j < out->n; j++) out->grad[j] += R[j];
    tape_backward(&c);
    for (int i = 0; i < nin; i++) {
        snprintf(key, sizeof key, "%s.d%d", name, i);
        snprintf(what, sizeof what, "%s gradient of input %d", name, i);
        for (size_t j = 0; j < in[i]->n; j++) in[i]->grad[j] -= PT_GRAD0;
        assert_close(in[i]->grad, tfile_f32(tf, key), in[i]->n, PT_ATOL, PT_RTOL, what);
    }
    ctx_free(&c);
}

Test(ops_core, torch_linear_algebra) {
    TFile *tf = tfile_load("ref_ops_core");
    parity(tf, "matmul", 2, b_matmul, NULL);
    parity(tf, "linear", 3, b_linear, NULL);
    parity(tf, "linear_nobias", 2, b_linear_nobias, NULL);
    tfile_free(tf);
}

Test(ops_core, torch_binary) {
    TFile *tf = tfile_load("ref_ops_core");
    const char *ops[] = {"add", "sub", "mul"}, *forms[] = {"same", "bias", "trail", "one"};
    GcBuild fs[] = {b_add, b_sub, b_mul};
    for (int o = 0; o < 3; o++)
        for (int k = 0; k < 4; k++) {
            char name[32];
            snprintf(name, sizeof name, "%s_%s", ops[o], forms[k]);
            parity(tf, name, 2, fs[o], NULL);
        }
    parity(tf, "minimum", 2, b_minimum, NULL);
    tfile_free(tf);
}

Test(ops_core, torch_unary) {
    TFile *tf = tfile_load("ref_ops_core");
    parity(tf, "scale", 1, b_scale, NULL);
    parity(tf, "add_scalar", 1, b_add_scalar, NULL);
    parity(tf, "clamp", 1, b_clamp, NULL);
    struct {
        const char *name;
        UnaryBox op;
    } cases[] = {{"exp", {ad_exp}},         {"log", {ad_log}},   {"tanh", {ad_tanh}},
                 {"sigmoid", {ad_sigmoid}}, {"relu", {ad_relu}}, {"relu6", {ad_relu6}},
                 {"gelu", {ad_gelu}}};
    for (size_t k = 0; k < sizeof cases / sizeof cases[0]; k++)
        parity(tf, cases[k].name, 1, b_unary, &cases[k].op);
    parity(tf, "relu_kinks", 1, b_unary, &cases[4].op);
    parity(tf, "relu6_kinks", 1, b_unary, &cases[5].op);
    parity(tf, "clamp_kinks", 1, b_clamp, NULL);
    tfile_free(tf);
}

Test(ops_core, torch_reductions) {
    TFile *tf = tfile_load("ref_ops_core");
    UnaryBox sum = {ad_sum}, mean = {ad_mean}, sum_last = {ad_sum_last};
    parity(tf, "sum", 1, b_unary, &sum);
    parity(tf, "mean", 1, b_unary, &mean);
    parity(tf, "sum_last", 1, b_unary, &sum_last);
    parity(tf, "sum_last1", 1, b_unary, &sum_last);
    parity(tf, "mse", 2, b_mse, NULL);
    parity(tf, "gather", 1, b_gather, tfile_i32(tf, "gather.idx"));
    tfile_free(tf);
}

Test(ops_core, torch_shapes) {
    TFile *tf = tfile_load("ref_ops_core");
    parity(tf, "reshape", 1, b_reshape, NULL);
    parity(tf, "slice_rows", 1, b_slice_rows, NULL);
    parity(tf, "slice_cols", 1, b_slice_cols, NULL);
    int k = 3;
    parity(tf, "concat_cols", 3, b_concat_cols, &k);
    k = 6;
    parity(tf, "concat_rows", 6, b_concat_rows, &k);
    tfile_free(tf);
}

/* ------------------------------------------------------ tape bookkeeping */

Test(ops_core, no_grad_records_nothing) {
    Ctx c;
    ctx_init(&c, 1 << 20, 64);
    Tensor *w = tensor_new2(&c, 3, 4, 1), *x = tensor_new2(&c, 2, 4, 0);
    Tensor *y = ad_tanh(&c, ad_linear(&c, x, w, NULL));
    cr_assert(y->grad && c.nnodes == 2, "with grad: out->grad %p, %zu nodes", (void *)y->grad,
              c.nnodes);
    Tensor *z = ad_relu(&c, x); /* x has no gradient */
    cr_assert(!z->grad && c.nnodes == 2, "gradient-free input recorded a node");
    ctx_set_grad(&c, 0);
    Tensor *v = ad_sum(&c, ad_mul(&c, w, w));
    cr_assert(!v->grad && c.nnodes == 2, "no-grad mode recorded a node");
    ctx_free(&c);
}

Test(ops_core, views_share_storage) {
    Ctx c;
    ctx_init(&c, 1 << 20, 64);
    Tensor *x = tensor_new2(&c, 4, 6, 1);
    Tensor *s = ad_slice_rows(&c, x, 1, 2);
    cr_assert(s->data == x->data + 6 && s->grad == x->grad + 6 && s->n == 12);
    Tensor *r = ad_reshape(&c, x, 3, (int[]){2, 2, 6});
    cr_assert(r->data == x->data && r->grad == x->grad && r->ndim == 3 && r->shape[2] == 6);
    cr_assert(c.nnodes == 0, "views recorded %zu nodes", c.nnodes);
    ctx_free(&c);
}

/* A broadcast that does not match a's trailing dims is a bug: ASSERT aborts. */
Test(ops_core, add_rejects_bad_broadcast, .signal = SIGABRT) {
    Ctx c;
    ctx_init(&c, 1 << 20, 64);
    ad_add(&c, tensor_new2(&c, 2, 3, 0), tensor_new2(&c, 2, 1, 0));
}

Test(ops_core, matmul_rejects_inner_mismatch, .signal = SIGABRT) {
    Ctx c;
    ctx_init(&c, 1 << 20, 64);
    ad_matmul(&c, tensor_new2(&c, 2, 3, 0), tensor_new2(&c, 4, 2, 0));
}

Test(ops_core, gather_rejects_index_out_of_range, .signal = SIGABRT) {
    Ctx c;
    ctx_init(&c, 1 << 20, 64);
    int idx[2] = {0, 3}; /* K = 3 */
    ad_gather(&c, tensor_new2(&c, 2, 3, 0), idx);
}

/* minimum: where a is NaN the forward takes a, so its gradient goes to a too */
Test(ops_core, minimum_gradient_follows_the_value_taken) {
    Ctx c;
    ctx_init(&c, 1 << 20, 64);
    float av[3] = {NAN, 1.0f, 3.0f}, bv[3] = {2.0f, 1.0f, 2.0f};
    Tensor *a = tensor_from(&c, 1, (int[]){3}, av), *b = tensor_from(&c, 1, (int[]){3}, bv);
    a->grad = arena_calloc(&c.arena, 3 * sizeof(float));
    b->grad = arena_calloc(&c.arena, 3 * sizeof(float));
    Tensor *m = ad_minimum(&c, a, b);
    cr_assert(isnan(m->data[0]) && m->data[1] == 1.0f && m->data[2] == 2.0f);
    ad_backward(&c, ad_sum(&c, m), 1.0f);
    float want_a[3] = {1, 1, 0}, want_b[3] = {0, 0, 1};
    for (int i = 0; i < 3; i++)
        cr_assert(a->grad[i] == want_a[i] && b->grad[i] == want_b[i],
                  "element %d: da %g db %g", i, (double)a->grad[i], (double)b->grad[i]);
    ctx_free(&c);
}
