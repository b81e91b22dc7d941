/* test_mobilenet.c: the MobileNetV2 model and the ops of ops_act.c.
 *  - PyTorch parity (tests/ref/ref_mobilenet.py, float64 there): the whole
 *    network's logits, loss and every gradient with train-mode batchnorm, the
 *    running statistics it leaves, the eval-mode forward, and PACT's gradients
 *    (alphas included) through the whole network;
 *  - PACT's finite-difference gradient, fake quantisation against
 *    torch.fake_quantize_per_tensor_affine and the paper's formula;
 *  - layout (residuals, weight decay), initial loss near ln 10 on
 *    Fashion-MNIST, the blocks parser, and ./train end to end (metrics
 *    columns, quant.csv, a missing data folder as a clear error). */
#include <criterion/criterion.h>
#include <math.h>
#include <string.h>

#include "cli.h"
#include "gradcheck.h"
#include "mobilenet.h"
#include "ops.h"
#include "tfile.h"

/* the reference network: stem 8 stride 2, blocks 1:8:1:1,6:12:2:2, head 32, 16x16 images */
static void build_ref(Mobilenet *m, int activation, const TFile *tf) {
    MobilenetConfig cfg;
    mobilenet_default_config(&cfg);
    cfg.activation = activation;
    cfg.stem = 8, cfg.stem_stride = 2, cfg.last_channels = 32;
    snprintf(cfg.blocks, sizeof cfg.blocks, "1:8:1:1,6:12:2:2");
    memset(m, 0, sizeof *m);
    Rng r;
    rng_seed(&r, 1, 1);
    mobilenet_build(m, &cfg, 16, 16, 10, &r);
    char key[96];
    for (int i = 0; i < m->ps.count; i++) {
        Param *p = &m->ps.params[i];
        snprintf(key, sizeof key, "%sw.%s", strstr(p->name, ".alpha") ? "pact." : "", p->name);
        cr_assert_eq(tfile_get(tf, key)->n, p->t.n, "%s size", key);
        memcpy(p->t.data, tfile_f32(tf, key), p->t.n * sizeof(float));
    }
}

/* every gradient against prefix.g.<name>; none of the references may be zero */
static void check_grads(Mobilenet *m, const TFile *tf, const char *prefix, double atol,
                        double rtol) {
    char key[96];
    int checked = 0;
    for (int i = 0; i < m->ps.count; i++) {
        Param *p = &m->ps.params[i];
        if (p->buffer) continue;
        snprintf(key, sizeof key, "%s.g.%s", prefix, p->name);
        const float *ref = tfile_f32(tf, key);
        double norm = 0;
        for (size_t j = 0; j < p->t.n; j++) norm += (double)ref[j] * ref[j];
        /* A projection's BN bias adds a per-channel constant that reaches only
         * 1x1 convs followed by train-mode BN, which subtracts it again: its
         * gradient is exactly zero (1e-17 in float64). Every other reference
         * must be non-zero, or the comparison would be vacuous. */
        int zero = strstr(p->name, ".project.bn.b") != NULL;
        cr_assert(zero ? norm < 1e-20 : norm > 1e-12, "%s: reference gradient norm^2 %g", key, norm);
        assert_close(p->t.grad, ref, p->t.n, atol, rtol, key);
        checked++;
    }
    cr_assert_gt(checked, 20);
}

/* Tolerances: float32 against float64 through 7 conv + BN layers with batch
 * statistics over 6 images; they pass at half these (1e-6, 1e-4). */
static void parity_train_mode(int threads) {
    ops_set_threads(threads);
    TFile *tf = tfile_load("ref_mobilenet");
    Mobilenet m;
    build_ref(&m, MB_RELU6, tf);
    cr_assert_eq(m.nblocks, 3);
    cr_assert(m.blocks[0].residual && !m.blocks[0].expand, "block 0: t = 1, residual");
    cr_assert(!m.blocks[1].residual && m.blocks[2].residual, "stride 2 block has no residual");
    Ctx c;
    ctx_init(&c, 64 << 20, 4096);
    const int *y = tfile_i32(tf, "y");
    Tensor *logits = mobilenet_logits(&m, &c, tfile_f32(tf, "x"), 6);
    assert_close(logits->data, tfile_f32(tf, "relu6.logits"), logits->n, 1e-5, 1e-4, "logits");
    Tensor *loss = ad_cross_entropy(&c, logits, y);
    assert_close(loss->data, tfile_f32(tf, "relu6.loss"), 1, 1e-6, 1e-5, "loss");
    ad_backward(&c, loss, 1.0f);
    check_grads(&m, tf, "relu6", 2e-6, 2e-4);
    char key[96];
    for (int i = 0; i < m.ps.count; i++) {
        Param *p = &m.ps.params[i];
        if (!p->buffer) continue;
        snprintf(key, sizeof key, "relu6.rs.%s", p->name);
        assert_close(p->t.data, tfile_f32(tf, key), p->t.n, 1e-5, 1e-4, key);
    }
    ctx_free(&c);
    mobilenet_free_params(&m);
    tfile_free(tf);
    ops_set_threads(1);
}

Test(mobilenet, torch_parity_train_mode_loss_every_gradient_and_running_stats) {
    parity_train_mode(1);
}

/* conv2d and dwconv2d split the batch over threads (per-thread gradient partials) */
Test(mobilenet, torch_parity_train_mode_with_threads) {
    parity_train_mode(2);
    parity_train_mode(4);
}

/* The default network (mobilenet_default_config) for 28x28 inputs, 10 classes. */
static void build_default(Mobilenet *m, Rng *r, uint64_t seed) {
    MobilenetConfig cfg;
    mobilenet_default_config(&cfg);
    memset(m, 0, sizeof *m);
    rng_seed(r, seed, 1);
    mobilenet_build(m, &cfg, 28, 28, 10, r);
}

/* Every gradient of the default network on 13 random images (a batch that
 * the 8 weight-gradient slices split unevenly), with the convolutions on 1, 2,
 * 3 and 5 threads: bit for bit the same, so [train] threads never changes a
 * run's numbers. */
static void default_net_grads(int threads, float *out, size_t *n) {
    ops_set_threads(threads);
    Mobilenet m;
    Rng r;
    build_default(&m, &r, 7);
    enum { B = 13 };
    static float x[B * 28 * 28];
    int y[B];
    for (size_t i = 0; i < sizeof x / sizeof x[0]; i++) x[i] = (float)rng_normal(&r);
    for (int i = 0; i < B; i++) y[i] = (int)rng_below(&r, 10);
    Ctx c;
    ctx_init(&c, 64 << 20, 4096);
    ad_backward(&c, ad_cross_entropy(&c, mobilenet_logits(&m, &c, x, B), y), 1.0f);
    *n = m.ps.n;
    memcpy(out, m.ps.grad, m.ps.n * sizeof(float));
    ctx_free(&c);
    mobilenet_free_params(&m);
    ops_set_threads(1);
}

Test(mobilenet, gradients_do_not_depend_on_the_thread_count) {
    static float g1[1 << 17], gt[1 << 17];
    size_t n1, nt;
    default_net_grads(1, g1, &n1);
    cr_assert(n1 > 40000 && n1 < (1 << 17), "%zu parameters", n1);
    double norm = 0;
    for (size_t i = 0; i < n1; i++) norm += (double)g1[i] * g1[i];
    cr_assert(norm > 1e-8, "gradient norm^2 %g", norm);
    int threads[] = {2, 3, 5};
    for (int k = 0; k < 3; k++) {
        default_net_grads(threads[k], gt, &nt);
        cr_assert_eq(nt, n1);
        size_t diff = 0;
        for (size_t i = 0; i < n1; i++) diff += memcmp(&g1[i], &gt[i], sizeof(float)) != 0;
        cr_assert_eq(diff, 0, "%d threads: %zu of %zu gradients differ from 1 thread",
                     threads[k], diff, n1);
    }
}

Test(mobilenet, torch_parity_eval_mode_forward) {
    TFile *tf = tfile_load("ref_mobilenet");
    Mobilenet m;
    build_ref(&m, MB_RELU6, tf);
    Ctx c;
    ctx_init(&c, 64 << 20, 4096);
    c.train = 0;
    ctx_set_grad(&c, 0);
    float before[64];
    memcpy(before, m.blocks[2].dw.rmean->data, 64 * sizeof(float));
    Tensor *logits = mobilenet_logits(&m, &c, tfile_f32(tf, "x"), 6);
    assert_close(logits->data, tfile_f32(tf, "eval.logits"), logits->n, 1e-5, 1e-4, "logits");
    Tensor *loss = ad_cross_entropy(&c, logits, tfile_i32(tf, "y"));
    assert_close(loss->data, tfile_f32(tf, "eval.loss"), 1, 1e-6, 1e-5, "loss");
    cr_assert(memcmp(before, m.blocks[2].dw.rmean->data, 64 * sizeof(float)) == 0,
              "eval mode must leave the running statistics alone");
    ctx_free(&c);
    mobilenet_free_params(&m);
    tfile_free(tf);
}

Test(mobilenet, torch_parity_pact_every_gradient_and_alpha) {
    TFile *tf = tfile_load("ref_mobilenet");
    Mobilenet m;
    build_ref(&m, MB_PACT, tf);
    cr_assert_eq(m.nacts, 7);
    Ctx c;
    ctx_init(&c, 64 << 20, 4096);
    Tensor *loss = ad_cross_entropy(&c, mobilenet_logits(&m, &c, tfile_f32(tf, "x"), 6),
                                    tfile_i32(tf, "y"));
    assert_close(loss->data, tfile_f32(tf, "pact.loss"), 1, 1e-6, 1e-5, "loss");
    ad_backward(&c, loss, 1.0f);
    check_grads(&m, tf, "pact", 2e-6, 2e-4);
    for (int k = 0; k < m.nacts; k++) { /* each layer's own alpha, found by its name */
        char name[64];
        snprintf(name, sizeof name, "%s.alpha", m.act_names[k]);
        Param *p = param_find(&m.ps, name);
        cr_assert(p && &p->t == m.alpha[k], "%s is layer %d's alpha", name, k);
        cr_assert(p->decay == 1, "%s is weight-decayed (Choi et al. 2018)", name);
        cr_assert(m.alpha[k]->grad[0] != 0.0f, "alpha %d receives gradient", k);
    }
    ctx_free(&c);
    mobilenet_free_params(&m);
    tfile_free(tf);
}

/* ------------------------------------------------------------ ops_act.c */

static Tensor *b_pact(Ctx *c, Tensor **in, void *u) {
    (void)u;
    return ad_pact(c, in[0], in[1]);
}

/* x away from the kinks 0 and alpha (finite differences straddling a kink disagree) */
Test(mobilenet_ops, pact_finite_difference_gradient) {
    Rng r;
    rng_seed(&r, 21, 1);
    Tensor *x = gc_input(2, (int[]){4, 16}, &r, 2.0f, 1.0f);
    Tensor *a = gc_input(1, (int[]){1}, &r, 0.0f, 1.5f);
    int above = 0;
    for (size_t i = 0; i < x->n; i++) {
        while (fabsf(x->data[i]) < 0.05f || fabsf(x->data[i] - 1.5f) < 0.05f) x->data[i] += 0.13f;
        above += x->data[i] > 1.5f;
    }
    cr_assert(above > 5 && above < 50, "both sides of alpha are exercised (%d above)", above);
    Tensor *in[2] = {x, a};
    gradcheck(b_pact, in, 2, NULL, 1e-3, 1e-3, 1e-3, "pact");
    /* the alpha gradient is the sum of dout over x >= alpha: check it exactly */
    Ctx c;
    ctx_init(&c, 1 << 20, 64);
    memset(a->grad, 0, sizeof(float));
    Tensor *y = ad_pact(&c, x, a);
    for (size_t i = 0; i < y->n; i++) y->grad[i] = 1.0f;
    tape_backward(&c);
    cr_assert_float_eq(a->grad[0], (float)above, 1e-6, "dalpha = count of x >= alpha");
    ctx_free(&c);
    gc_free(x), gc_free(a);
}

Test(mobilenet_ops, fake_quant_matches_torch_and_the_paper) {
    TFile *tf = tfile_load("ref_mobilenet");
    const TRec *xr = tfile_get(tf, "fq.x");
    size_t n = xr->n;
    const float *x = tfile_f32(tf, "fq.x");
    int bits[4] = {8, 4, 3, 2};
    float his[4] = {6.0f, 6.0f, 2.5f, 1.0f};
    Ctx c;
    ctx_init(&c, 4 << 20, 64);
    Tensor *xin = tensor_new(&c, 1, (int[]){(int)n}, 1);
    memcpy(xin->data, x, n * sizeof(float));
    char key[64];
    for (int t = 0; t < 4; t++) {
        memset(xin->grad, 0, n * sizeof(float));
        c.nnodes = 0;
        Tensor *y = ad_fake_quant(&c, xin, his[t], bits[t]);
        snprintf(key, sizeof key, "fq.%d.torch", bits[t]);
        assert_close(y->data, tfile_f32(tf, key), n, 0.0, 0.0, key); /* bit for bit */
        snprintf(key, sizeof key, "fq.%d.paper", bits[t]);
        assert_close(y->data, tfile_f32(tf, key), n, 1e-6, 1e-6, key);
        /* distinct levels: at most 2^k of them, all multiples of the step */
        int levels = 0;
        float seen[256];
        for (size_t i = 0; i < n; i++) {
            int k = 0;
            while (k < levels && seen[k] != y->data[i]) k++;
            if (k == levels) {
                cr_assert_lt(levels, 1 << bits[t], "more than 2^%d levels", bits[t]);
                seen[levels++] = y->data[i];
            }
        }
        if (bits[t] <= 4)
            cr_assert_eq(levels, 1 << bits[t], "%d bits over a wide input use every level", bits[t]);
        snprintf(key, sizeof key, "fq.%d.dy", bits[t]);
        memcpy(y->grad, tfile_f32(tf, key), n * sizeof(float));
        tape_backward(&c);
        snprintf(key, sizeof key, "fq.%d.dx", bits[t]);
        assert_close(xin->grad, tfile_f32(tf, key), n, 0.0, 0.0, key);
    }
    ctx_free(&c);
    tfile_free(tf);
}

/* -------------------------------------------------------------- the model */

Test(mobilenet, layout_residuals_and_weight_decay) {
    Mobilenet m;
    Rng r;
    build_default(&m, &r, 1);
    /* 1:16:1:1, 6:24:2:2, 6:32:2:2 (torchvision's first group has no expansion) */
    cr_assert_eq(m.nblocks, 5);
    int res[5] = {1, 0, 1, 0, 1}, stride[5] = {1, 2, 1, 2, 1};
    for (int i = 0; i < 5; i++) {
        cr_assert_eq(m.blocks[i].residual, res[i], "block %d residual", i);
        cr_assert_eq(m.blocks[i].stride, stride[i], "block %d stride", i);
        cr_assert_eq(m.blocks[i].expand, i > 0, "block %d expand", i);
        cr_assert_eq(m.blocks[i].hidden, (i ? 6 : 1) * m.blocks[i].cin);
    }
    cr_assert_eq(m.nacts, 11);
    for (int i = 0; i < m.ps.count; i++) {
        const Param *p = &m.ps.params[i];
        int is_w = strstr(p->name, ".conv.w") || !strcmp(p->name, "fc.w");
        if (!p->buffer) cr_assert_eq(p->decay, is_w, "%s decay", p->name);
    }
    /* running_var starts at 1, BN weight at 1 */
    cr_assert_float_eq(m.stem.rvar->data[0], 1.0f, 0);
    cr_assert_float_eq(m.stem.bn_w->data[3], 1.0f, 0);
    mobilenet_free_params(&m);
    MobilenetConfig cfg;
    mobilenet_default_config(&cfg);
    memset(&m, 0, sizeof m); /* a fresh model: build does not reuse what free released */
    cfg.batchnorm = 0;
    mobilenet_build(&m, &cfg, 28, 28, 10, &r);
    cr_assert_null(param_find(&m.ps, "stem.bn.w"));
    cr_assert_not_null(param_find(&m.ps, "stem.conv.b"));
    mobilenet_free_params(&m);
}

#define FM "/usr/share/datasets/fashion-mnist/"
Test(mobilenet, initial_loss_is_near_ln_10) {
    IdxDataset d;
    char err[512];
    cr_assert_eq(idx_load_pair(FM "t10k-images-idx3-ubyte.gz", FM "t10k-labels-idx1-ubyte.gz", 10,
                               &d, err, sizeof err), 0, "%s", err);
    MobilenetConfig cfg;
    mobilenet_default_config(&cfg);
    for (int act = 0; act < 4; act++) {
        cfg.activation = act;
        Mobilenet m;
        memset(&m, 0, sizeof m);
        Rng r;
        rng_seed(&r, 5, 1);
        mobilenet_build(&m, &cfg, 28, 28, 10, &r);
        ImageSet norm = {.mean = 0.286f, .std = 0.353f};
        enum { B = 200 };
        int idx[B], y[B];
        static float x[B * 784];
        for (int i = 0; i < B; i++) idx[i] = i * 37;
        imageset_fill(&norm, &d, idx, B, x, y);
        Ctx c;
        ctx_init(&c, 512 << 20, 4096);
        double loss = ad_cross_entropy(&c, mobilenet_logits(&m, &c, x, B), y)->data[0];
        cr_assert(fabs(loss - log(10.0)) < 0.02, "activation %d: initial loss %.4f, ln 10 = %.4f",
                  act, loss, log(10.0));
        ctx_free(&c);
        mobilenet_free_params(&m);
    }
    idx_dataset_free(&d);
}

Test(mobilenet, blocks_parser) {
    int v[8][4];
    char err[256];
    cr_assert_eq(mobilenet_parse_blocks("6:16:1:1, 6:24:2:2", v, 8, err, sizeof err), 2);
    cr_assert(v[1][0] == 6 && v[1][1] == 24 && v[1][2] == 2 && v[1][3] == 2);
    cr_assert_eq(mobilenet_parse_blocks("6:16:1", v, 8, err, sizeof err), -1);
    cr_assert(strstr(err, "t:c:n:s"), "%s", err);
    cr_assert_eq(mobilenet_parse_blocks("6:16:1:9", v, 8, err, sizeof err), -1);
    cr_assert(strstr(err, "out of range"), "%s", err);
    cr_assert_eq(mobilenet_parse_blocks("6:16:1:1x", v, 8, err, sizeof err), -1);
    cr_assert_eq(mobilenet_parse_blocks("", v, 8, err, sizeof err), -1);
}

/* ---------------------------------------------------------------- ./train */

static const char *tiny_ini =
    "[model]\ntype = mobilenet\n"
    "[mobilenet]\nactivation = pact\ntrain_limit = 256\ntest_limit = 100\nstem = 8\n"
    "blocks = 2:8:1:1,2:12:1:2\nlast_channels = 16\neval_batch = 50\nquant_bits = 8,3\n"
    "calib_size = 64\n"
    "[train]\nsteps = 4\nbatch_size = 32\neval_every = 2\n"
    "[optim]\nkind = adam\nlr = 1e-2\n[run]\nplots = false\n";

Test(mobilenet, train_end_to_end_metrics_and_quant_csv, .init = cli_mkdir, .fini = cli_rmdir) {
    static char out[1 << 16];
    cli_write("tiny.ini", tiny_ini);
    cr_assert_eq(cli_run("tiny.ini", out, sizeof out, 1), 0, "%s", out);
    char path[512], line[4096];
    snprintf(path, sizeof path, "%s/runs/tiny/metrics.csv", cli_dir);
    FILE *f = fopen(path, "r");
    cr_assert(f, "no metrics.csv");
    cr_assert(fgets(line, sizeof line, f));
    cr_assert(strstr(line, "val_acc") && strstr(line, "val_loss"), "%s", line);
    cr_assert(strstr(line, "act_max.stem,act_max.b0.expand,act_max.b0.dw,act_max.b1.expand"),
              "%s", line);
    cr_assert(strstr(line, "alpha.head"), "PACT logs its alphas: %s", line);
    fclose(f);
    snprintf(path, sizeof path, "%s/runs/tiny/quant.csv", cli_dir);
    f = fopen(path, "r");
    cr_assert(f, "no quant.csv");
    cr_assert(fgets(line, sizeof line, f));
    cr_assert_str_eq(line, "activation,bits,range,range_hi_min,range_hi_max,accuracy\n");
    int rows = 0;
    while (fgets(line, sizeof line, f)) {
        int bits;
        double lo, hi, acc;
        char act[16], kind[16];
        cr_assert_eq(sscanf(line, "%15[^,],%d,%15[^,],%lf,%lf,%lf", act, &bits, kind, &lo, &hi, &acc),
                     6, "%s", line);
        cr_assert_str_eq(act, "pact");
        cr_assert(acc >= 0 && acc <= 1);
        cr_assert(lo > 0 && lo <= hi, "alpha range %g..%g", lo, hi);
        rows++;
    }
    fclose(f);
    cr_assert_eq(rows, 3, "float, 8 and 3 bits");
}

Test(mobilenet, train_missing_data_is_a_clear_error, .init = cli_mkdir, .fini = cli_rmdir) {
    static char out[1 << 16];
    cli_write("tiny.ini", tiny_ini);
    int rc = cli_run("tiny.ini mobilenet.data_dir=no_such_dir", out, sizeof out, 1);
    cr_assert_neq(rc, 0, "exit status 0 on missing data");
    cr_assert(strstr(out, "no_such_dir/train-images-idx3-ubyte.gz") &&
              strstr(out, "dataset-fashion-mnist"), "%s", out);
    cr_assert(!cli_exists("runs/tiny/metrics.csv"), "nothing written");
    rc = cli_run("tiny.ini mobilenet.quant_bits=8,x", out, sizeof out, 1);
    cr_assert_neq(rc, 0);
    cr_assert(strstr(out, "quant_bits"), "%s", out);
}
