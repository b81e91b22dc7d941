/* test_wgan.c: the WGAN model and its two ops (ops_gan.c):
 *   1. finite-difference checks and PyTorch parity of ad_relu_grad and
 *      ad_gradient_penalty, and a finite-difference check of the whole GP
 *      critic loss w.r.t. a critic weight (the double backward);
 *   2. PyTorch parity (tests/ref/ref_wgan.py) of the critic loss and gradients
 *      without and with the penalty (torch.autograd.grad(create_graph=True)),
 *      and of the generator loss and gradients with the critic frozen;
 *   3. the toy datasets against a Python transcription of gan_toy.py;
 *   4. no gradient crosses between the critic and generator groups;
 *   5. the mode-quality and at-bounds metrics on hand-made inputs. */
#include <criterion/criterion.h>
#include <math.h>
#include <string.h>

#include "gradcheck.h"
#include "ops.h"
#include "ops_gan.h"
#include "tfile.h"
#include "wgan.h"

/* ---------------------------------------------------------------- ops */

static Tensor *b_relu_grad(Ctx *c, Tensor **in, void *u) {
    (void)u;
    return ad_relu_grad(c, in[0], in[1]);
}

static Tensor *b_gp(Ctx *c, Tensor **in, void *u) {
    (void)u;
    return ad_gradient_penalty(c, in[0]);
}

Test(wgan_ops, relu_grad_gradcheck) {
    Rng r;
    rng_seed(&r, 3, 1);
    Tensor *g = gc_input(2, (int[]){6, 5}, &r, 1, 0);
    Tensor *z = gc_input(2, (int[]){6, 5}, &r, 1, 0);
    for (size_t i = 0; i < z->n; i++) /* away from the kink at 0 */
        if (fabsf(z->data[i]) < 0.1f) z->data[i] = z->data[i] < 0 ? -0.1f : 0.1f;
    Tensor *in[2] = {g, z};
    gradcheck(b_relu_grad, in, 2, NULL, 1e-2, 1e-3, 1e-2, "relu_grad");
    /* z gets no gradient at all (the step function's derivative is 0) */
    for (size_t i = 0; i < z->n; i++) cr_assert_eq(z->grad[i], 0.0f);
    /* and the forward is g where z > 0, else 0 */
    float out[30];
    ops_relu_grad_forward(out, g->data, z->data, 30);
    for (int i = 0; i < 30; i++) cr_assert_eq(out[i], z->data[i] > 0 ? g->data[i] : 0.0f);
    gc_free(g), gc_free(z);
}

Test(wgan_ops, gradient_penalty_gradcheck) {
    Rng r;
    rng_seed(&r, 4, 1);
    /* rows with norms both below and above 1 */
    Tensor *g = gc_input(2, (int[]){7, 3}, &r, 0.8f, 0);
    Tensor *in[1] = {g};
    gradcheck(b_gp, in, 1, NULL, 1e-2, 1e-3, 1e-2, "gradient_penalty");
    /* value: rows (3,4) -> (5-1)^2 = 16 and (0.6, 0.8) -> 0: mean 8 */
    float v[4] = {3, 4, 0.6f, 0.8f}, nrm[2];
    cr_assert_float_eq(ops_gradient_penalty_forward(nrm, v, 2, 2), 8.0, 1e-6);
    cr_assert_float_eq(nrm[0], 5.0f, 1e-6);
    gc_free(g);
}

/* Both ops against PyTorch: the penalty's value and gradient, and relu_grad
 * against autograd.grad(relu(z), z, grad_outputs=g, create_graph=True) with
 * its own gradient (d/dg; torch's d/dz is zero, ours is not recorded). */
static Tensor *heap_copy(const float *v, int d0, int d1, int grad) {
    Tensor *t = malloc(sizeof *t);
    size_t n = (size_t)d0 * d1;
    *t = tensor_view(malloc(n * sizeof(float)), grad ? calloc(n, sizeof(float)) : NULL, 2,
                     (int[]){d0, d1});
    memcpy(t->data, v, n * sizeof(float));
    return t;
}

Test(wgan_ops, torch_parity) {
    TFile *tf = tfile_load("ref_wgan");
    Ctx c;
    ctx_init(&c, 1 << 20, 256);
    Tensor *g = heap_copy(tfile_f32(tf, "op.gp.g"), 7, 3, 1);
    Tensor *pen = ad_gradient_penalty(&c, g);
    assert_close(pen->data, tfile_f32(tf, "op.gp.value"), 1, 1e-6, 1e-5, "gp value");
    ad_backward(&c, pen, 1.0f);
    assert_close(g->grad, tfile_f32(tf, "op.gp.grad"), 21, 1e-6, 1e-5, "gp grad");
    ctx_reset(&c);
    Tensor *z = heap_copy(tfile_f32(tf, "op.rg.z"), 6, 5, 1);
    Tensor *gg = heap_copy(tfile_f32(tf, "op.rg.g"), 6, 5, 1);
    Tensor *R = tensor_from(&c, 2, (int[]){6, 5}, tfile_f32(tf, "op.rg.R"));
    Tensor *rg = ad_relu_grad(&c, gg, z);
    assert_close(rg->data, tfile_f32(tf, "op.rg.out"), 30, 0, 0, "relu_grad out");
    ad_backward(&c, ad_sum(&c, ad_mul(&c, rg, R)), 1.0f);
    assert_close(gg->grad, tfile_f32(tf, "op.rg.dg"), 30, 1e-7, 1e-6, "relu_grad d/dg");
    if (!tfile_i32(tf, "op.rg.dz_is_none")[0]) {
        const float *dz = tfile_f32(tf, "op.rg.dz");
        for (int i = 0; i < 30; i++) cr_assert_eq(dz[i], 0.0f, "torch's d/dz is not zero");
    }
    for (int i = 0; i < 30; i++) cr_assert_eq(z->grad[i], 0.0f, "relu_grad sent a gradient to z");
    gc_free(g), gc_free(z), gc_free(gg);
    ctx_free(&c);
    tfile_free(tf);
}

/* ---------------------------------------------------------------- model */

static WganConfig small_cfg(int width, int depth, int nz) {
    WganConfig cfg = {.dataset = WGAN_8GAUSSIANS, .dataset_size = 1000, .noise_dim = nz,
                      .g_depth = depth, .g_width = width, .d_depth = depth, .d_width = width,
                      .init = WGAN_INIT_HE, .n_critic = 5, .diters_start = 100,
                      .diters_start_gens = 25, .diters_every = 500, .gp_lambda = 0,
                      .eval_samples = 16, .map_points = 8, .map_range = 3};
    return cfg;
}

static void load_mlp(const TFile *tf, const char *tag, const char *net, WganMlp *mlp) {
    char key[64];
    for (int l = 0; l <= mlp->depth; l++) {
        Tensor *ts[2] = {mlp->w[l], mlp->b[l]};
        for (int k = 0; k < 2; k++) {
            snprintf(key, sizeof key, "%s.%s.%c%d", tag, net, k ? 'b' : 'w', l);
            cr_assert_eq(tfile_get(tf, key)->n, ts[k]->n, "%s size", key);
            memcpy(ts[k]->data, tfile_f32(tf, key), ts[k]->n * sizeof(float));
        }
    }
}

static void check_grads(const TFile *tf, const char *prefix, const WganMlp *mlp, double atol,
                        double rtol) {
    char key[96];
    for (int l = 0; l <= mlp->depth; l++) {
        snprintf(key, sizeof key, "%s.w%d", prefix, l);
        assert_close(mlp->w[l]->grad, tfile_f32(tf, key), mlp->w[l]->n, atol, rtol, key);
        snprintf(key, sizeof key, "%s.b%d", prefix, l);
        assert_close(mlp->b[l]->grad, tfile_f32(tf, key), mlp->b[l]->n, atol, rtol, key);
    }
}

static int all_zero(const ParamSet *ps) {
    for (size_t i = 0; i < ps->n; i++)
        if (ps->grad[i] != 0.0f) return 0;
    return 1;
}

static void parity(const char *tag, int width, int depth, int B, int nz) {
    TFile *tf = tfile_load("ref_wgan");
    WganConfig cfg = small_cfg(width, depth, nz);
    Wgan m;
    memset(&m, 0, sizeof m);
    Rng r;
    rng_seed(&r, 1, 1);
    wgan_build(&m, &cfg, B, &r);
    load_mlp(tf, tag, "gen", &m.gen);
    load_mlp(tf, tag, "critic", &m.critic);
    char key[96];
    snprintf(key, sizeof key, "%s.real", tag);
    memcpy(m.real, tfile_f32(tf, key), (size_t)B * 2 * sizeof(float));
    snprintf(key, sizeof key, "%s.fake", tag);
    memcpy(m.fake, tfile_f32(tf, key), (size_t)B * 2 * sizeof(float));
    snprintf(key, sizeof key, "%s.alpha", tag);
    memcpy(m.alpha, tfile_f32(tf, key), (size_t)B * sizeof(float));
    snprintf(key, sizeof key, "%s.noise", tag);
    memcpy(m.noise, tfile_f32(tf, key), (size_t)B * nz * sizeof(float));
    Ctx c;
    ctx_init(&c, 16 << 20, 4096);
    for (int lam = 0; lam <= 10; lam += 10) {
        m.cfg.gp_lambda = lam;
        param_zero_grad(&m.critic.ps);
        ctx_reset(&c);
        WganCriticStats st;
        Tensor *lt = wgan_critic_loss(&m, &c, m.real, m.fake, m.alpha, B, lam, 1, &st, NULL);
        float loss = lt->data[0];
        ad_backward(&c, lt, 1.0f);
        char k[64];
        snprintf(k, sizeof k, "%s.lam%d", tag, lam);
        snprintf(key, sizeof key, "%s.loss", k);
        assert_close(&loss, tfile_f32(tf, key), 1, 1e-6, 1e-5, key);
        float gp = (float)st.gp, slope = (float)st.slope;
        snprintf(key, sizeof key, "%s.gp", k);
        assert_close(&gp, tfile_f32(tf, key), 1, 1e-6, 1e-5, key);
        snprintf(key, sizeof key, "%s.slope", k);
        assert_close(&slope, tfile_f32(tf, key), 1, 1e-6, 1e-5, key);
        snprintf(key, sizeof key, "%s.grad", k);
        /* float32 sums of <= 2B * width products of O(1) terms; both sides
         * float32, measured worst deviation ~1e-6 */
        check_grads(tf, key, &m.critic, 1e-5, 1e-4);
    }
    param_zero_grad(&m.critic.ps);
    ctx_reset(&c);
    param_set_requires_grad(&m.critic.ps, 0); /* as trainer_step freezes it */
    Tensor *glt = wgan_gen_loss(&m, &c, m.noise, B);
    float gl = glt->data[0];
    ad_backward(&c, glt, 1.0f);
    param_set_requires_grad(&m.critic.ps, 1);
    snprintf(key, sizeof key, "%s.gloss", tag);
    assert_close(&gl, tfile_f32(tf, key), 1, 1e-6, 1e-5, key);
    snprintf(key, sizeof key, "%s.ggrad", tag);
    check_grads(tf, key, &m.gen, 1e-5, 1e-4);
    cr_assert(all_zero(&m.critic.ps), "a generator backward reached the frozen critic");
    ctx_free(&c);
    wgan_free(&m);
    tfile_free(tf);
}

Test(wgan, torch_parity_3x16) { parity("a", 16, 3, 8, 2); }
Test(wgan, torch_parity_6x8) { parity("b", 8, 6, 5, 3); }

/* The GP critic loss as a function of one critic weight matrix, by central
 * differences in double: the double backward is exact, not an approximation. */
static Wgan *gc_model;
static Tensor *b_critic_loss(Ctx *c, Tensor **in, void *u) {
    (void)u;
    Wgan *m = gc_model;
    Tensor *saved = m->critic.w[1];
    m->critic.w[1] = in[0];
    Tensor *loss = wgan_critic_loss(m, c, m->real, m->fake, m->alpha, m->batch, 10.0, 1, NULL,
                                    NULL);
    m->critic.w[1] = saved;
    return loss;
}

Test(wgan, gp_loss_gradcheck) {
    WganConfig cfg = small_cfg(6, 3, 2);
    Wgan m;
    memset(&m, 0, sizeof m);
    Rng r;
    rng_seed(&r, 9, 1);
    int B = 6;
    wgan_build(&m, &cfg, B, &r);
    for (int i = 0; i < 2 * B; i++) m.real[i] = (float)rng_normal(&r), m.fake[i] = (float)rng_normal(&r);
    for (int i = 0; i < B; i++) m.alpha[i] = (float)rng_uniform(&r);
    gc_model = &m;
    Tensor *w = gc_input(2, (int[]){6, 6}, &r, 0.6f, 0);
    Tensor *in[1] = {w};
    /* eps small enough that no ReLU pre-activation changes sign */
    gradcheck(b_critic_loss, in, 1, NULL, 2e-4, 5e-3, 2e-2, "critic loss with GP");
    gc_free(w);
    wgan_free(&m);
}

/* ---------------------------------------------------------------- data */

static void data_check(int kind, int size, int B, int nb, const char *key) {
    TFile *tf = tfile_load("ref_wgan");
    const TRec *ref = tfile_get(tf, key);
    cr_assert_eq(ref->n, (size_t)B * nb * 2, "%s size", key);
    Rng r;
    rng_seed(&r, 5, 3);
    WganData d;
    wgan_data_init(&d, kind, size, &r);
    float *got = malloc(ref->n * sizeof *got);
    for (int b = 0; b < nb; b++) wgan_data_next(&d, &r, got + (size_t)b * B * 2, B);
    /* same draws in the same order: equal up to libm vs numpy cos/sin in the last bit */
    assert_close(got, ref->data, ref->n, 1e-6, 1e-6, key);
    free(got);
    wgan_data_free(&d);
    tfile_free(tf);
}

Test(wgan_data, eight_gaussians_match_python) { data_check(WGAN_8GAUSSIANS, 0, 64, 2, "data.8gaussians"); }
/* 1000 points, batches of 256: 3 per pass, so batches 4-5 are the second pass */
Test(wgan_data, twentyfive_gaussians_match_python) {
    data_check(WGAN_25GAUSSIANS, 1000, 256, 5, "data.25gaussians");
}
Test(wgan_data, swissroll_matches_python) { data_check(WGAN_SWISSROLL, 0, 64, 2, "data.swissroll"); }

/* ---------------------------------------------------------------- metrics */

Test(wgan_metrics, modes_and_quality) {
    float cen[50], pts[200];
    double std, hq;
    int k = wgan_modes(WGAN_8GAUSSIANS, cen, &std);
    cr_assert_eq(k, 8);
    /* every centre, nudged by 2 std: all 8 covered, all high quality */
    for (int i = 0; i < 8; i++) pts[2 * i] = cen[2 * i] + (float)(2 * std), pts[2 * i + 1] = cen[2 * i + 1];
    cr_assert_eq(wgan_mode_quality(WGAN_8GAUSSIANS, pts, 8, &hq), 8);
    cr_assert_float_eq(hq, 1.0, 1e-12);
    /* four points on mode 0, four 4 std away from mode 3: 1 mode, half good */
    for (int i = 0; i < 8; i++) {
        int j = i < 4 ? 0 : 3;
        pts[2 * i] = cen[2 * j] + (i < 4 ? 0.0f : (float)(4 * std));
        pts[2 * i + 1] = cen[2 * j + 1];
    }
    cr_assert_eq(wgan_mode_quality(WGAN_8GAUSSIANS, pts, 8, &hq), 1);
    cr_assert_float_eq(hq, 0.5, 1e-12);
    cr_assert_eq(wgan_modes(WGAN_25GAUSSIANS, cen, &std), 25);
    cr_assert_eq(wgan_mode_quality(WGAN_25GAUSSIANS, cen, 25, &hq), 25);
    cr_assert_eq(wgan_mode_quality(WGAN_SWISSROLL, pts, 8, &hq), -1);
    cr_assert(isnan(hq));
}

Test(wgan_metrics, at_bounds) {
    WganConfig cfg = small_cfg(4, 1, 2);
    Wgan m;
    memset(&m, 0, sizeof m);
    Rng r;
    rng_seed(&r, 2, 1);
    wgan_build(&m, &cfg, 4, &r); /* critic: 2x4 + 4 + 4 + 1 = 17 values */
    ParamSet *ps = &m.critic.ps;
    cr_assert_eq(ps->n, 17);
    for (size_t i = 0; i < ps->n; i++) ps->data[i] = 0.0f;
    ps->data[0] = 0.01f, ps->data[1] = -0.00995f, ps->data[2] = 0.0098f;
    cr_assert_float_eq(wgan_at_bounds(&m.critic, 0.01), 2.0 / 17.0, 1e-12);
    cr_assert(isnan(wgan_at_bounds(&m.critic, 0.0)));
    wgan_free(&m);
}

/* ---------------------------------------------------------------- through the trainer */

#include <unistd.h>

#include "train.h"
#include "tsettings.h"

typedef struct Setup {
    TSettings t;
    WganConfig wc;
} Setup;

static const char *ini_two_groups =
    "[train]\nbatch_size = 16\n"
    "[wgan]\ng_width = 16\nd_width = 16\neval_samples = 16\nditers_start = 2\n"
    "[optim]\nkind = sgd\nlr = 0.05\n"
    "[clip.critic]\nweight = 0.01\n";

static Trainer *make_trainer(Setup *st, const char *ini) {
    memset(st, 0, sizeof *st);
    tsettings_load(&st->t, wgan_model.groups, wgan_model.section, &st->wc, ini);
    return trainer_create(&wgan_model, &st->wc, &st->t.s);
}

static float *copy_of(const ParamSet *ps) {
    float *v = malloc(ps->n * sizeof *v);
    memcpy(v, ps->data, ps->n * sizeof *v);
    return v;
}

static int same(const ParamSet *ps, const float *v) { return memcmp(ps->data, v, ps->n * sizeof *v) == 0; }

/* A critic update moves only the critic (and clamps it); a generator update
 * moves only the generator (and does not clamp it): no gradient, step or clip
 * crosses between the two groups. */
Test(wgan_trainer, no_crossing_between_groups) {
    Setup st;
    Trainer *tr = make_trainer(&st, ini_two_groups);
    Wgan *m = tr->model;
    float *g0 = copy_of(&m->gen.ps), *d0 = copy_of(&m->critic.ps);
    double loss = wgan_critic_update(m, tr, 1);
    cr_assert(isfinite(loss));
    cr_assert(same(&m->gen.ps, g0), "a critic update changed the generator");
    cr_assert(!same(&m->critic.ps, d0), "a critic update left the critic unchanged");
    for (size_t i = 0; i < m->critic.ps.n; i++)
        cr_assert(fabsf(m->critic.ps.data[i]) <= 0.01f, "critic weight %zu = %g not clamped", i,
                  (double)m->critic.ps.data[i]);
    free(d0);
    d0 = copy_of(&m->critic.ps);
    loss = wgan_gen_update(m, tr);
    cr_assert(isfinite(loss));
    cr_assert(same(&m->critic.ps, d0), "a generator update changed the critic");
    cr_assert(!same(&m->gen.ps, g0), "a generator update left the generator unchanged");
    size_t outside = 0;
    for (size_t i = 0; i < m->gen.ps.n; i++) outside += fabsf(m->gen.ps.data[i]) > 0.01f;
    cr_assert(outside > m->gen.ps.n / 2, "the critic's clamp reached the generator");
    for (int g = 0; g < tr->ngroups; g++) cr_assert(all_zero(tr->groups[g].ps), "stale gradient");
    free(g0), free(d0);
    trainer_destroy(tr);
    cfg_free(&st.t.cfg);
}

/* Same seed, same numbers: three generator iterations twice. */
Test(wgan_trainer, deterministic) {
    double w[2][3];
    for (int k = 0; k < 2; k++) {
        Setup st;
        Trainer *tr = make_trainer(&st, ini_two_groups);
        for (tr->step = 0; tr->step < 3; tr->step++) {
            tr->def->step(tr->model, tr);
            w[k][tr->step] = tr->extra[((Wgan *)tr->model)->col[0]];
        }
        trainer_destroy(tr);
        cfg_free(&st.t.cfg);
    }
    for (int i = 0; i < 3; i++) {
        cr_assert(isfinite(w[0][i]));
        cr_assert_eq(w[0][i], w[1][i], "step %d: %.9g vs %.9g", i, w[0][i], w[1][i]);
    }
}

/* make wgan-seeds: runs are seeds of one configuration only when their config names
 * match too. wgan_noclip and a penalty config without a describe() would otherwise
 * look alike (same task, critic clip "none"), and two configs at different seeds
 * would be drawn as one median. */
Test(wgan_trainer, seed_groups_need_the_same_config) {
    RunResult r[4];
    memset(r, 0, sizeof r);
    const char *names[4] = {"wgan_noclip", "wgan_other", "wgan_noclip", "wgan_other"};
    const long seeds[4] = {1, 2, 2, 1};
    for (int i = 0; i < 4; i++) {
        snprintf(r[i].name, sizeof r[i].name, "%s", names[i]);
        snprintf(r[i].title, sizeof r[i].title, "WGAN on 8 Gaussians (3 x 128 MLPs)");
        snprintf(r[i].clip_desc, sizeof r[i].clip_desc, "none");
        r[i].seed = seeds[i];
    }
    cr_assert(!trainer_compare_has_seeds(r, 2), "two configs at seeds 1 and 2 taken for one config's seeds");
    cr_assert(trainer_compare_has_seeds(r, 4), "each config at seeds 1 and 2: not seen as seeds");
}

/* ---------------------------------------------------------------- ./train */

#include "cli.h"

#define SMALL_WGAN                                                                        \
    "[model]\ntype = wgan\n[wgan]\ng_width = 16\nd_width = 16\nditers_start = 3\n"        \
    "eval_samples = 64\nmap_points = 8\n[train]\nsteps = 4\nbatch_size = 32\nquiet = true\n" \
    "[optim]\nkind = rmsprop\nlr = 5e-5\n[clip.critic]\nweight = 0.01\n"

TestSuite(wgan_cli, .init = cli_mkdir, .fini = cli_rmdir);

/* A run as a user starts it: the model's columns, its files and figure. */
Test(wgan_cli, run_writes_outputs) {
    cli_write("w.ini", SMALL_WGAN);
    char err[4096];
    cr_assert_eq(cli_run("w.ini", err, sizeof err, 0), 0, "%s", err);
    const char *files[] = {"runs/w/metrics.csv", "runs/w/samples.csv", "runs/w/critic_map.csv",
                           "runs/w/critic_weights.csv", "runs/w/wgan.png"};
    for (int i = 0; i < 5; i++) cr_assert(cli_exists(files[i]), "%s missing", files[i]);
    char path[512], head[2048];
    snprintf(path, sizeof path, "%s/runs/w/metrics.csv", cli_dir);
    FILE *f = fopen(path, "r");
    cr_assert(f && fgets(head, sizeof head, f));
    fclose(f);
    const char *cols[] = {"wasserstein", "critic_loss", "gen_loss", "gp", "grad_x_norm",
                          "critic_at_bounds", "modes", "hq_frac", "generator_grad_norm"};
    for (int i = 0; i < 9; i++) cr_assert(strstr(head, cols[i]), "no column %s in %s", cols[i], head);
}

/* A batch larger than the fixed 25gaussians set: a clear error, exit 1, no run folder. */
Test(wgan_cli, batch_larger_than_set) {
    cli_write("b.ini", "[model]\ntype = wgan\n[wgan]\ndataset = 25gaussians\ndataset_size = 100\n"
                       "[train]\nbatch_size = 256\n");
    char err[4096];
    int rc = cli_run("b.ini", err, sizeof err, 0);
    cr_assert_eq(rc, 1, "exit status %d: %s", rc, err);
    cr_assert(strstr(err, "batch_size") && strstr(err, "dataset_size"), "%s", err);
    cr_assert(!cli_exists("runs/b"), "a run folder was created");
}
