/* test_ppo.c: the PPO agent. PyTorch parity (tests/ref/ref_ppo.py, CleanRL's
 * code in float64) of the minibatch loss, its logged parts and every
 * gradient, with ratio and value clipping each active on part of the
 * minibatch, and unclipped; one whole update (16 minibatches through the
 * pipeline: clip 0.5, Adam eps 1e-5) against CleanRL's loop; GAE and
 * explained variance against CleanRL's code; CleanRL's initialisation; the
 * checkpoint state; and ./train end to end: the same seed gives the same
 * metrics, a short run's return rises, a bad minibatch count is an error. */
#include <criterion/criterion.h>
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "cli.h"
#include "ops.h"
#include "ppo.h"
#include "train.h"
#include "tfile.h"
#include "tsettings.h"

static PpoConfig default_config(void) {
    return (PpoConfig){.num_envs = 4, .num_steps = 128, .gamma = 0.99, .gae_lambda = 0.95,
                       .num_minibatches = 4, .update_epochs = 4, .norm_adv = 1, .clip_coef = 0.2,
                       .clip_vloss = 1, .ent_coef = 0.01, .vf_coef = 0.5, .target_kl = INFINITY,
                       .hidden = 64, .max_episode_steps = 500, .eval_episodes = 0};
}

static void parity(const char *which, double clip_coef, int clip_vloss) {
    TFile *tf = tfile_load("ref_ppo");
    PpoConfig cfg = default_config();
    cfg.clip_coef = clip_coef, cfg.clip_vloss = clip_vloss;
    Ppo m;
    memset(&m, 0, sizeof m);
    Rng r;
    rng_seed(&r, 1, 1);
    ppo_build(&m, &cfg, &r);
    char key[128];
    for (int i = 0; i < m.ps.count; i++) {
        Param *p = &m.ps.params[i];
        snprintf(key, sizeof key, "w.%s", p->name);
        cr_assert_eq(tfile_get(tf, key)->n, p->t.n, "%s size", key);
        memcpy(p->t.data, tfile_f32(tf, key), p->t.n * sizeof(float));
    }
    PpoBatch b = {tfile_get(tf, "act")->n, tfile_f32(tf, "obs"), tfile_i32(tf, "act"),
                  tfile_f32(tf, "logp_old"), tfile_f32(tf, "adv"), tfile_f32(tf, "ret"),
                  tfile_f32(tf, "val_old"), 0};
    Ctx c;
    ctx_init(&c, 16 << 20, 4096);
    PpoStats st;
    Tensor *loss = ppo_loss_on(&m, &c, &b, &st);
    ad_backward(&c, loss, 1.0f);
    struct { const char *name; double v; } s[] = {
        {"loss", loss->data[0]}, {"pg_loss", st.pg_loss}, {"v_loss", st.v_loss},
        {"entropy", st.entropy}, {"approx_kl", st.approx_kl},
        {"old_approx_kl", st.old_approx_kl}, {"clipfrac", st.clipfrac}};
    for (size_t i = 0; i < sizeof s / sizeof *s; i++) {
        snprintf(key, sizeof key, "%s.%s", which, s[i].name);
        float got = (float)s[i].v;
        /* float32 forward through two tanh layers and exp/log: 1e-6 relative */
        assert_close(&got, tfile_f32(tf, key), 1, 2e-6, 1e-5, key);
    }
    if (clip_vloss) { /* the reference asserted both clips are active on part of the batch */
        cr_assert(st.clipfrac > 0.2 && st.clipfrac < 0.8, "clipfrac %g", st.clipfrac);
    } else {
        cr_assert_eq(st.clipfrac, 0.0, "nothing is clipped at clip_coef inf");
    }
    for (int i = 0; i < m.ps.count; i++) {
        Param *p = &m.ps.params[i];
        snprintf(key, sizeof key, "%s.grad.%s", which, p->name);
        /* float32 against float64 torch: gradients of size ~1e-2..1, summed
         * over 128 samples; atol 1e-6 + rtol 1e-4 */
        assert_close(p->t.grad, tfile_f32(tf, key), p->t.n, 1e-6, 1e-4, key);
    }
    ctx_free(&c);
    ppo_free_params(&m);
    tfile_free(tf);
}

Test(ppo, torch_parity_clipped_loss_and_every_gradient) { parity("clip", 0.2, 1); }
Test(ppo, torch_parity_unclipped_loss_and_every_gradient) { parity("noclip", INFINITY, 0); }

Test(ppo, gae_and_explained_variance_match_cleanrl) {
    TFile *tf = tfile_load("ref_ppo");
    const TRec *rv = tfile_get(tf, "gae.values");
    int T = rv->shape[0], N = rv->shape[1];
    float *adv = malloc(sizeof(float) * (size_t)(T * N)), *ret = malloc(sizeof(float) * (size_t)(T * N));
    ppo_gae(adv, ret, tfile_f32(tf, "gae.rewards"), tfile_f32(tf, "gae.values"),
            tfile_f32(tf, "gae.dones"), tfile_f32(tf, "gae.next_value"),
            tfile_f32(tf, "gae.next_done"), T, N, 0.99, 0.95);
    const double *ra = tfile_f64(tf, "gae.adv@f64"), *rr = tfile_f64(tf, "gae.ret@f64");
    for (int i = 0; i < T * N; i++) {
        cr_assert(fabs(adv[i] - ra[i]) <= 1e-5 + 1e-5 * fabs(ra[i]), "adv[%d] %g vs %g", i,
                  (double)adv[i], ra[i]);
        cr_assert(fabs(ret[i] - rr[i]) <= 1e-5 + 1e-5 * fabs(rr[i]), "ret[%d] %g vs %g", i,
                  (double)ret[i], rr[i]);
    }
    double ev = ppo_explained_variance(tfile_f32(tf, "gae.values"), ret, T * N);
    cr_assert(fabs(ev - tfile_f64(tf, "gae.ev@f64")[0]) < 1e-5, "explained variance %g vs %g", ev,
              tfile_f64(tf, "gae.ev@f64")[0]);
    float same[3] = {1, 2, 4}, flat[3] = {2, 2, 2};
    cr_assert_float_eq(ppo_explained_variance(same, same, 3), 1.0, 1e-12);
    cr_assert(isnan(ppo_explained_variance(same, flat, 3)), "Var(y) = 0 gives NaN");
    free(adv), free(ret);
    tfile_free(tf);
}

/* CleanRL's layer_init: orthogonal rows/columns times the gain, zero bias;
 * the actor head is 0.01 so the first policy is nearly uniform. */
Test(ppo, initialisation_as_cleanrl) {
    PpoConfig cfg = default_config();
    Ppo m;
    memset(&m, 0, sizeof m);
    Rng r;
    rng_seed(&r, 2, 0);
    ppo_build(&m, &cfg, &r);
    cr_assert_str_eq(m.ps.name, "agent");
    cr_assert_eq(m.ps.count, 12);
    cr_assert_eq(m.ps.n, (size_t)(2 * (4 * 64 + 64 + 64 * 64 + 64) + 64 + 1 + 2 * 64 + 2));
    Tensor *const *nets[2] = {m.critic, m.actor};
    float head[2] = {1.0f, 0.01f};
    for (int k = 0; k < 2; k++)
        for (int l = 0; l < 3; l++) {
            Tensor *w = nets[k][2 * l], *bias = nets[k][2 * l + 1];
            float gain = l == 2 ? head[k] : sqrtf(2.0f);
            int rows = w->shape[0], cols = w->shape[1];
            /* the shorter side's vectors are orthonormal (times gain) */
            int byrow = rows <= cols, nv = byrow ? rows : cols, len = byrow ? cols : rows;
            for (int i = 0; i < nv; i++)
                for (int j = 0; j < nv; j++) {
                    double dot = 0;
                    for (int e = 0; e < len; e++) {
                        double a = byrow ? w->data[i * cols + e] : w->data[e * cols + i];
                        double bb = byrow ? w->data[j * cols + e] : w->data[e * cols + j];
                        dot += a * bb;
                    }
                    double want = i == j ? (double)gain * gain : 0.0;
                    cr_assert(fabs(dot - want) < 1e-5 * (1 + want), "net %d layer %d (%d,%d): %g", k,
                              l, i, j, dot);
                }
            for (size_t i = 0; i < bias->n; i++) cr_assert_eq(bias->data[i], 0.0f);
        }
    ppo_free_params(&m);
}

/* ---------------------------------------------------------- end to end */

static const char *SMALL_INI =
    "[model]\ntype = ppo\n[ppo]\neval_episodes = 20\n[train]\nsteps = 60\nquiet = true\n"
    "[run]\nplots = false\n[optim]\nkind = adam\nlr = 2.5e-4\neps = 1e-5\nschedule = linear\n"
    "min_lr = 0\n[clip]\ngrad = global_norm\nmax_norm = 0.5\n";

static char *slurp(const char *rel) {
    char path[512];
    snprintf(path, sizeof path, "%s/%s", cli_dir, rel);
    FILE *f = fopen(path, "r");
    cr_assert(f, "cannot read %s", path);
    static char buf[1 << 20];
    size_t n = fread(buf, 1, sizeof buf - 1, f);
    buf[n] = '\0';
    fclose(f);
    char *s = malloc(n + 1);
    memcpy(s, buf, n + 1);
    return s;
}

/* metrics.csv without the wall-clock column (time_ms), for comparing runs. */
static char *metrics_without_time(const char *rel) {
    char *s = slurp(rel), *out = malloc(strlen(s) + 1), *o = out;
    int tcol = -1, col = 0;
    char *hdr_end = strchr(s, '\n');
    for (char *p = s, *start = s; p <= hdr_end; p++)
        if (*p == ',' || *p == '\n') {
            if (strncmp(start, "time_ms", (size_t)(p - start)) == 0 && p - start == 7) tcol = col;
            col++, start = p + 1;
        }
    cr_assert(tcol >= 0, "no time_ms column");
    col = 0;
    for (char *p = s; *p; p++) {
        if (col != tcol) *o++ = *p;
        if (*p == ',') col++;
        if (*p == '\n') col = 0;
    }
    *o = '\0';
    free(s);
    return out;
}

/* Column `name` of metrics.csv as numbers (NaN where empty or nan). */
static int read_column(const char *rel, const char *name, double *v, int cap) {
    char *s = slurp(rel), *line = strtok(s, "\n");
    int want = -1, col = 0, n = 0;
    for (char *tok = line, *p = line;; p++)
        if (*p == ',' || *p == '\0') {
            if ((size_t)(p - tok) == strlen(name) && strncmp(tok, name, (size_t)(p - tok)) == 0)
                want = col;
            col++, tok = p + 1;
            if (!*p) break;
        }
    cr_assert(want >= 0, "no column %s", name);
    while ((line = strtok(NULL, "\n")) && n < cap) {
        char *p = line;
        for (int k = 0; k < want; k++) p = strchr(p, ',') + 1;
        v[n++] = strtod(p, NULL);
    }
    free(s);
    return n;
}

Test(ppo, train_is_deterministic_and_the_return_rises, .init = cli_mkdir, .fini = cli_rmdir) {
    cli_write("p.ini", SMALL_INI);
    char out[8192];
    cr_assert_eq(cli_run("p.ini run.name=a run.plots=true", out, sizeof out, 1), 0, "%s", out);
    cr_assert(strstr(out, "final policy over 20 fresh episodes"), "no evaluation line: %s", out);
    cr_assert(cli_exists("runs/a/curves.png") && cli_exists("runs/a/episode.png"),
              "curves.png or episode.png missing");
    cr_assert_eq(cli_run("p.ini run.name=b", out, sizeof out, 1), 0, "%s", out);
    cr_assert_eq(cli_run("p.ini run.name=c run.seed=2", out, sizeof out, 1), 0, "%s", out);
    char *a = metrics_without_time("runs/a/metrics.csv"), *b = metrics_without_time("runs/b/metrics.csv");
    char *c = metrics_without_time("runs/c/metrics.csv");
    cr_assert(strcmp(a, b) == 0, "the same seed gave different metrics");
    cr_assert(strcmp(a, c) != 0, "another seed gave the same metrics");
    free(a), free(b), free(c);
    const char *cols[] = {"global_step", "episodic_return", "episodic_length", "policy_loss",
                          "value_loss", "entropy", "approx_kl", "old_approx_kl", "ratio_clip_frac",
                          "explained_variance"};
    double v[64];
    for (size_t k = 0; k < sizeof cols / sizeof *cols; k++)
        cr_assert_eq(read_column("runs/a/metrics.csv", cols[k], v, 64), 60, "%s rows", cols[k]);
    read_column("runs/a/metrics.csv", "global_step", v, 64);
    cr_assert_eq(v[0], 512.0);
    cr_assert_eq(v[59], 60.0 * 512);
    /* an untrained CartPole policy lasts ~22 steps; after 30k steps of PPO the
     * episodes are several times longer (CleanRL: ~100-200 at 30k) */
    int n = read_column("runs/a/metrics.csv", "episodic_return", v, 64);
    double early = 0, late = 0;
    for (int i = 0; i < 5; i++) early += v[i] / 5, late += v[n - 1 - i] / 5;
    cr_assert(early < 40, "first updates' return %g", early);
    cr_assert(late > 2.5 * early, "return did not rise: %g -> %g", early, late);
    read_column("runs/a/metrics.csv", "entropy", v, 64);
    cr_assert(fabs(v[0] - log(2.0)) < 0.01, "first entropy %g, uniform policy ln 2", v[0]);
}

Test(ppo, bad_minibatch_count_is_a_clear_error, .init = cli_mkdir, .fini = cli_rmdir) {
    cli_write("p.ini", SMALL_INI);
    char out[8192];
    int rc = cli_run("p.ini ppo.num_minibatches=3", out, sizeof out, 0);
    cr_assert_neq(rc, 0);
    cr_assert(strstr(out, "num_minibatches = 3") && strstr(out, "512"), "message: %s", out);
    cr_assert(!cli_exists("runs/p/metrics.csv"), "a failed run left metrics behind");
}

/* ---------------------------------------------------------- checkpoint state */

typedef TSettings Setup;

/* Every default (the trainer's and [ppo]'s), then ini (may be NULL), then the
 * overrides below. */
static Trainer *make_trainer_ini(Setup *st, PpoConfig *pc, int num_envs, int num_steps,
                                 const char *ini) {
    tsettings_load(st, ppo_model.groups, ppo_model.section, pc, ini ? ini : "");
    st->s.train.quiet = 1;
    st->s.train.steps = 10;
    pc->num_envs = num_envs, pc->num_steps = num_steps, pc->eval_episodes = 0;
    return trainer_create(&ppo_model, pc, &st->s);
}

static Trainer *make_trainer(Setup *st, PpoConfig *pc, int num_envs) {
    return make_trainer_ini(st, pc, num_envs, 32, NULL);
}

/* One whole update (4 epochs x 4 minibatches of 128 from a batch of 512,
 * every minibatch through trainer_step: clip_grad_norm 0.5, active on every
 * one, then Adam lr 2.5e-4 eps 1e-5) against CleanRL's loop in float64 with
 * the same minibatch order: 16 float32 Adam steps agree to ~1e-6. */
Test(ppo, one_update_matches_cleanrl_adam_and_clip) {
    TFile *tf = tfile_load("ref_ppo");
    Setup st;
    PpoConfig pc;
    Trainer *tr = make_trainer_ini(&st, &pc, 4, 128, "[optim]\nkind = adam\nlr = 2.5e-4\neps = 1e-5\n"
                                   "schedule = linear\nmin_lr = 0\n[clip]\ngrad = global_norm\n"
                                   "max_norm = 0.5\n");
    Ppo *m = tr->model;
    char key[128];
    for (int i = 0; i < m->ps.count; i++) {
        Param *p = &m->ps.params[i];
        snprintf(key, sizeof key, "w.%s", p->name);
        memcpy(p->t.data, tfile_f32(tf, key), p->t.n * sizeof(float));
    }
    enum { B = 512 };
    memcpy(m->obs, tfile_f32(tf, "upd.obs"), B * 4 * sizeof(float));
    memcpy(m->act, tfile_i32(tf, "upd.act"), B * sizeof(int));
    memcpy(m->logp, tfile_f32(tf, "upd.logp"), B * sizeof(float));
    memcpy(m->val, tfile_f32(tf, "upd.val"), B * sizeof(float));
    memcpy(m->ret, tfile_f32(tf, "upd.ret"), B * sizeof(float));
    memcpy(m->adv, tfile_f32(tf, "upd.adv"), B * sizeof(float));
    tr->step = 0; /* lr = 2.5e-4 * (1 - 0 / steps) */
    PpoStats last;
    double clipfrac;
    double loss = ppo_update(m, tr, tfile_i32(tf, "upd.orders"), &last, &clipfrac);
    UpdateGroup *g = trainer_group(tr, "agent");
    cr_assert_eq(g->updates, 16, "%ld optimizer updates", g->updates);
    cr_assert_eq(g->clipped, 16, "the clip acted on %ld of 16 updates", g->clipped);
    float l = (float)loss;
    assert_close(&l, tfile_f32(tf, "upd.loss"), 1, 1e-5, 1e-5, "last minibatch loss");
    for (int i = 0; i < m->ps.count; i++) {
        Param *p = &m->ps.params[i];
        snprintf(key, sizeof key, "upd.w.%s", p->name);
        assert_close(p->t.data, tfile_f32(tf, key), p->t.n, 2e-6, 1e-5, key);
    }
    trainer_destroy(tr);
    cfg_free(&st.cfg);
    tfile_free(tf);
}

Test(ppo, checkpoint_state_round_trip_and_mismatch) {
    Setup sa, sb, sc;
    PpoConfig ca, cb, cc;
    Trainer *a = make_trainer(&sa, &ca, 4), *b = make_trainer(&sb, &cb, 4), *c = make_trainer(&sc, &cc, 3);
    for (a->step = 0; a->step < 3; a->step++) ppo_model.step(a->model, a);
    FILE *f = tmpfile();
    cr_assert(f);
    cr_assert_eq(ppo_model.save_state(a->model, f), 0);
    rewind(f);
    cr_assert_eq(ppo_model.load_state(b->model, f), 0);
    const Ppo *pa = a->model, *pb = b->model;
    cr_assert(pa->episodes > 0, "3 updates of 128 steps finished no episode");
    cr_assert_eq(pb->episodes, pa->episodes);
    cr_assert(memcmp(pa->env.state, pb->env.state, 4 * 4 * sizeof(double)) == 0);
    cr_assert(memcmp(pa->env.len, pb->env.len, 4 * sizeof(int)) == 0);
    cr_assert(memcmp(pa->next_obs, pb->next_obs, 4 * 4 * sizeof(float)) == 0);
    cr_assert(memcmp(pa->recent, pb->recent, sizeof pa->recent) == 0);
    /* the environments go on identically: same reset stream */
    cr_assert_eq(rng_u32((Rng *)&pa->env.rng), rng_u32((Rng *)&pb->env.rng));
    rewind(f);
    cr_assert_neq(ppo_model.load_state(c->model, f), 0, "a state for 4 envs loaded into 3");
    fclose(f);
    trainer_destroy(a), trainer_destroy(b), trainer_destroy(c);
    cfg_free(&sa.cfg), cfg_free(&sb.cfg), cfg_free(&sc.cfg);
}
