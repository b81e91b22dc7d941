/* test_ddp.c: data-parallel training under mpirun (dist.h, docs/ddp.md).
 *
 *   toy         the docs' case through the real pipeline (tests/mpi/ddp_toy.c):
 *               workers (3, 0) and (0, 0.5), threshold 1: average then clip
 *               steps by (0.986, 0.164); [dist] clip = local (clip then
 *               average) by (0.5, 0.25); one process with grad_accum = 2 takes
 *               the same bytes as two ranks
 *   identical   mpirun -np N ./train C and ./train C train.grad_accum=N write
 *               the same metrics.csv (time aside): RNN and transformer, N = 2, 3, 4;
 *               WGAN and PPO (its environments split over the ranks), N = 2, 3
 *   rank 0      alone writes the folder and prints
 *   faults      a rank killed at a given step (CLIPLAB_KILL_AT, no timing) stops
 *               the job; --resume on as many ranks ends with the uninterrupted
 *               run's metrics; on another number of ranks it is refused
 *   refusals    ranks with other command lines, settings or binaries, and models
 *               whose steps are not split over ranks, are refused at start
 *               naming the difference
 * Every test starts mpirun (Open MPI), so none depends on timing. */
#include <criterion/criterion.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "clip.h"
#include "tfile.h"
#include "tskip.h"

static char repo[512];

static void setup(void) {
    cli_mkdir();
    cr_assert(getcwd(repo, sizeof repo));
}

#define MPIRUN "ASAN_OPTIONS=detect_leaks=0 mpirun --allow-run-as-root --oversubscribe "

#ifndef CLIPLAB_MPI
#define NEED_MPI()                                                                          \
    tskip("built without Open MPI (pkg-config ompi-c not found when it was compiled): `make deps` " \
          "installs openmpi-bin and libopenmpi-dev; then `make clean && make test`")
#else
#define NEED_MPI() (void)0
#endif

/* Run a shell command in the test's folder; stdout+stderr into *out (malloc'd). */
static int sh(char **out, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static int sh(char **out, const char *fmt, ...) {
    char cmd[4096], full[4600];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(cmd, sizeof cmd, fmt, ap);
    va_end(ap);
    snprintf(full, sizeof full, "cd %s && (%s) >sh.txt 2>&1", cli_dir, cmd);
    int st = system(full);
    char path[600];
    snprintf(path, sizeof path, "%s/sh.txt", cli_dir);
    FILE *f = fopen(path, "r");
    cr_assert(f);
    size_t cap = 1 << 20;
    char *buf = malloc(cap);
    size_t n = fread(buf, 1, cap - 1, f);
    buf[n] = '\0';
    fclose(f);
    if (out) *out = buf;
    else free(buf);
    return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
}

/* A file of the test folder with the time_ms column (the 10th) cut out of every line. */
static char *without_time(const char *rel) {
    char path[600];
    snprintf(path, sizeof path, "%s/%s", cli_dir, rel);
    FILE *f = fopen(path, "r");
    cr_assert(f, "%s missing", rel);
    size_t cap = 1 << 22, n = 0;
    char *out = malloc(cap), line[8192];
    while (fgets(line, sizeof line, f)) {
        int col = 0;
        for (char *c = line; *c && n + 2 < cap; c++) {
            if (col != 9) out[n++] = *c;
            if (*c == ',') col++;
        }
    }
    out[n] = '\0';
    fclose(f);
    return out;
}

/* A file of the test folder, whole (malloc'd; NULL if missing). */
static char *slurp(const char *rel) {
    char path[600];
    snprintf(path, sizeof path, "%s/%s", cli_dir, rel);
    FILE *f = fopen(path, "r");
    if (!f) return NULL;
    size_t cap = 1 << 22;
    char *buf = malloc(cap);
    size_t n = fread(buf, 1, cap - 1, f);
    buf[n] = '\0';
    fclose(f);
    return buf;
}

static void same_metrics(const char *a, const char *b) {
    char *x = without_time(a), *y = without_time(b);
    cr_assert(strchr(x, '\n') && strlen(x) > 100, "%s is nearly empty", a);
    cr_assert_str_eq(x, y, "%s and %s differ", a, b);
    free(x);
    free(y);
}

/* The uninterrupted run (u) against one whose rank 1 is killed at a step (k)
 * and resumed with --resume: the job must stop, leave a resume.bin, and the
 * resumed run must end with u's metrics. */
static void killed_and_resumed_matches(const char *config, const char *opts, int kill_step) {
    char *o;
    int rc = sh(&o, MPIRUN "-np 2 %s %s/configs/%s %s run.out_dir=u", cli_bin, repo, config, opts);
    cr_assert_eq(rc, 0, "%s", o);
    free(o);
    rc = sh(&o, MPIRUN "-np 2 -x CLIPLAB_KILL_AT=1:%d %s %s/configs/%s %s run.out_dir=k", kill_step,
            cli_bin, repo, config, opts);
    cr_assert_neq(rc, 0, "the job went on without rank 1:\n%s", o);
    cr_assert(cli_exists("k/resume.bin"), "no resume.bin before step %d", kill_step);
    free(o);
    rc = sh(&o, MPIRUN "-np 2 %s %s/configs/%s %s run.out_dir=k --resume", cli_bin, repo, config, opts);
    cr_assert_eq(rc, 0, "%s", o);
    free(o);
    same_metrics("u/metrics.csv", "k/metrics.csv");
}

static const char *helper(void) {
    static char path[700];
    const char *d = getenv("CLIPLAB_MPI_HELPERS");
    snprintf(path, sizeof path, "%s/%s/mpi_ddp_toy", repo, d && *d ? d : "build/tests");
    cr_assert(access(path, X_OK) == 0, "%s not built (make test builds it)", path);
    return path;
}

/* w after one SGD step of lr 1 from 0 is minus the update. */
static void toy(const char *how, int np, float *w0, float *w1, char **line) {
    char *o;
    int rc = np > 1 ? sh(&o, MPIRUN "-np %d %s %s", np, helper(), how) : sh(&o, "%s %s", helper(), how);
    cr_assert_eq(rc, 0, "%s", o);
    char *p = strstr(o, "w ");
    cr_assert(p, "%s", o);
    *w0 = strtof(p + 2, &p);
    *w1 = strtof(p, NULL);
    *line = o;
}

Test(ddp, toy_average_then_clip, .init = setup, .fini = cli_rmdir) {
    NEED_MPI();
    float a, b;
    char *o;
    toy("global", 2, &a, &b, &o);
    /* mean (1.5, 0.25), norm 1.5207: scaled to norm 1 */
    cr_assert(fabsf(-a - 0.986394f) < 2e-6f && fabsf(-b - 0.164399f) < 2e-6f, "update (%g, %g): %s", -a, -b, o);
    cr_assert(strstr(o, "rank_norms 3 0.5 reduced 1.5206906"), "%s", o);
    free(o);
}

Test(ddp, toy_clip_then_average, .init = setup, .fini = cli_rmdir) {
    NEED_MPI();
    float a, b;
    char *o;
    toy("local", 2, &a, &b, &o);
    /* (3,0) clipped to (1,0), (0,0.5) untouched; their mean */
    cr_assert(fabsf(-a - 0.5f) < 2e-6f && fabsf(-b - 0.25f) < 2e-6f, "update (%g, %g): %s", -a, -b, o);
    free(o);
}

Test(ddp, toy_two_ranks_are_grad_accum_two, .init = setup, .fini = cli_rmdir) {
    NEED_MPI();
    float a, b, c, d;
    char *o1, *o2;
    toy("global", 2, &a, &b, &o1);
    toy("global accum", 1, &c, &d, &o2);
    cr_assert(a == c && b == d, "np 2: %s one process, grad_accum 2: %s", o1, o2);
    free(o1);
    free(o2);
}

/* mpirun -np N ./train C O and ./train C O train.grad_accum=N: same metrics.csv. */
static void np_equals_accum(const char *config, const char *over, int np) {
    char *o;
    int rc = sh(&o, "%s %s/%s %s train.grad_accum=%d run.out_dir=acc%d", cli_bin, repo, config, over, np, np);
    cr_assert_eq(rc, 0, "%s", o);
    free(o);
    rc = sh(&o, MPIRUN "-np %d %s %s/%s %s run.out_dir=np%d", np, cli_bin, repo, config, over, np);
    cr_assert_eq(rc, 0, "%s", o);
    char a[32], b[32];
    snprintf(a, sizeof a, "acc%d/metrics.csv", np);
    snprintf(b, sizeof b, "np%d/metrics.csv", np);
    same_metrics(a, b);
    free(o);
}

#define RNN_O "train.steps=25 train.eval_every=10 run.plots=false train.quiet=true"
#define TF_O                                                                                         \
    "train.steps=4 train.eval_every=2 optim.warmup_steps=1 run.plots=false train.quiet=true "        \
    "transformer.sample_chars=0 transformer.eval_batches=1"

Test(ddp, rnn_np_2_3_4_equal_grad_accum, .init = setup, .fini = cli_rmdir, .timeout = 900) {
    NEED_MPI();
    for (int np = 2; np <= 4; np++) np_equals_accum("configs/rnn_clip.ini", RNN_O, np);
}

Test(ddp, transformer_np_2_3_4_equal_grad_accum, .init = setup, .fini = cli_rmdir, .timeout = 900) {
    NEED_MPI();
    for (int np = 2; np <= 4; np++) np_equals_accum("configs/transformer_clip.ini", TF_O, np);
}

Test(ddp, rank_zero_alone_writes_and_speaks, .init = setup, .fini = cli_rmdir, .timeout = 600) {
    NEED_MPI();
    char *o;
    int rc = sh(&o, MPIRUN "-np 3 %s %s/configs/rnn_clip.ini train.steps=12 train.eval_every=6 run.out_dir=r",
                cli_bin, repo);
    cr_assert_eq(rc, 0, "%s", o);
    const char *p = strstr(o, "wrote r/");
    cr_assert(p && !strstr(p + 1, "wrote r/"), "not exactly one 'wrote' line:\n%s", o);
    cr_assert(cli_exists("r/metrics.csv") && cli_exists("r/loss.png") && cli_exists("r/config.ini"));
    free(o);
    /* provenance: the figures' command and the saved config name the ranks */
    char *ini = slurp("r/config.ini"), path[600];
    cr_assert(ini && strstr(ini, "; trained on 3 ranks: mpirun -np 3 ./train"), "config.ini:\n%s", ini);
    free(ini);
    snprintf(path, sizeof path, "%s/r/loss.png", cli_dir);
    FILE *f = fopen(path, "rb");
    cr_assert(f);
    char *png = malloc(1 << 23);
    size_t n = fread(png, 1, 1 << 23, f);
    fclose(f);
    int found = 0;
    for (size_t i = 0; i + 21 < n && !found; i++) found = !memcmp(png + i, "mpirun -np 3 ./train ", 21);
    cr_assert(found, "loss.png's Command does not name mpirun -np 3 (%zu bytes)", n);
    free(png);
    /* nothing but rank 0's files: the same listing as one process's */
    rc = sh(&o, "%s %s/configs/rnn_clip.ini train.steps=12 train.eval_every=6 run.out_dir=s train.quiet=true "
                "&& ls r > lr.txt && ls s > ls.txt && cmp lr.txt ls.txt", cli_bin, repo);
    cr_assert_eq(rc, 0, "%s", o);
    free(o);
}

#define KILL_O "train.steps=30 train.eval_every=10 run.plots=false run.resume_every=10 train.quiet=true"

Test(ddp, killed_rank_stops_the_job_and_resume_matches, .init = setup, .fini = cli_rmdir, .timeout = 900) {
    NEED_MPI();
    char *o;
    int rc = sh(&o, MPIRUN "-np 2 %s %s/configs/rnn_clip.ini " KILL_O " run.out_dir=u", cli_bin, repo);
    cr_assert_eq(rc, 0, "%s", o);
    free(o);
    /* rank 1 dies at step 15: the job stops (mpirun kills rank 0), not hangs */
    rc = sh(&o, MPIRUN "-np 2 -x CLIPLAB_KILL_AT=1:15 %s %s/configs/rnn_clip.ini " KILL_O " run.out_dir=k",
            cli_bin, repo);
    cr_assert_neq(rc, 0, "the job went on without rank 1:\n%s", o);
    cr_assert(cli_exists("k/resume.bin"), "no resume.bin at step 10");
    free(o);
    /* another number of ranks is another global batch: refused, naming it */
    rc = sh(&o, MPIRUN "-np 3 %s %s/configs/rnn_clip.ini " KILL_O " run.out_dir=k --resume", cli_bin, repo);
    cr_assert_eq(rc, 2, "%s", o);
    cr_assert(strstr(o, "dist.ranks = 2 in the checkpoint, 3 now"), "%s", o);
    free(o);
    rc = sh(&o, "%s %s/configs/rnn_clip.ini " KILL_O " run.out_dir=k --resume", cli_bin, repo);
    cr_assert_eq(rc, 2, "one process resumed a 2-rank run:\n%s", o);
    free(o);
    rc = sh(&o, MPIRUN "-np 2 %s %s/configs/rnn_clip.ini " KILL_O " run.out_dir=k --resume", cli_bin, repo);
    cr_assert_eq(rc, 0, "%s", o);
    free(o);
    same_metrics("u/metrics.csv", "k/metrics.csv");
    cr_assert(!cli_exists("k/resume.bin"), "the resumed run did not complete");
}

Test(ddp, ranks_with_other_settings_or_binaries_are_refused, .init = setup, .fini = cli_rmdir, .timeout = 600) {
    NEED_MPI();
    char *o;
    /* other command lines (MPMD) */
    int rc = sh(&o, MPIRUN "-np 1 %s %s/configs/rnn_clip.ini " RNN_O " : -np 1 %s %s/configs/rnn_clip.ini "
                RNN_O " clip.max_norm=2", cli_bin, repo, cli_bin, repo);
    cr_assert_eq(rc, 2, "%s", o);
    cr_assert(strstr(o, "different command lines") && strstr(o, "clip.max_norm=2"), "%s", o);
    free(o);
    /* the same command line, other files: the settings differ */
    rc = sh(&o, "mkdir -p a b && sed 's/^max_norm = 1.0/max_norm = 0.5/' %s/configs/rnn_clip.ini > b/c.ini && "
                "cp %s/configs/rnn_clip.ini a/c.ini && " MPIRUN "-np 1 -wdir a %s c.ini " RNN_O
                " run.out_dir=/tmp/x : -np 1 -wdir b %s c.ini " RNN_O " run.out_dir=/tmp/x",
            repo, repo, cli_bin, cli_bin);
    cr_assert_eq(rc, 2, "%s", o);
    cr_assert(strstr(o, "different settings") && strstr(o, "clip.max_norm=1") && strstr(o, "clip.max_norm=0.5"),
              "%s", o);
    free(o);
    /* another binary */
    rc = sh(&o, "cp %s t2 && printf x >> t2 && " MPIRUN "-np 1 %s %s/configs/rnn_clip.ini " RNN_O
                " : -np 1 ./t2 %s/configs/rnn_clip.ini " RNN_O, cli_bin, cli_bin, repo, repo);
    cr_assert_eq(rc, 2, "%s", o);
    cr_assert(strstr(o, "different binaries"), "%s", o);
    free(o);
}

/* The custom-step models: each update's K = grad_accum x ranks micro-batches
 * (WGAN: K batches of batch_size for each critic and generator update; PPO:
 * each minibatch split in K), every group's gradient reduced by step 5. */
#define WGAN_O                                                                                       \
    "train.steps=3 run.plots=false train.quiet=true wgan.diters_start=3 wgan.diters_start_gens=0 "  \
    "wgan.n_critic=2"
/* PPO: 6 environments (split 3 + 3 and 2 + 2 + 2 over the ranks), 96 steps
 * each, so episodes end and reset inside every rollout */
#define PPO_O                                                                                        \
    "train.steps=3 run.plots=false train.quiet=true ppo.num_envs=6 ppo.num_steps=96 "               \
    "ppo.update_epochs=2 ppo.eval_episodes=0"

Test(ddp, wgan_np_2_3_equal_grad_accum, .init = setup, .fini = cli_rmdir, .timeout = 600) {
    NEED_MPI();
    for (int np = 2; np <= 3; np++) np_equals_accum("configs/wgan_clip.ini", WGAN_O, np);
}

static double csv_value(const char *rel, const char *name, int row);

/* The micro-batches are the batch's pieces: 2 micro-batches of 256 make the
 * first critic update of one batch of 512 (8gaussians draws row by row), but
 * for the order of the float sums. (Compared before the first RMSProp step,
 * whose update is nearly sign(g): it turns last-bit differences into lr.) */
Test(ddp, wgan_micro_batches_are_the_batch_in_pieces, .init = setup, .fini = cli_rmdir, .timeout = 300) {
    const char *o1 = "train.steps=1 run.plots=false train.quiet=true wgan.diters_start=1 "
                     "wgan.diters_start_gens=0 wgan.n_critic=1";
    char *o;
    int rc = sh(&o, "%s %s/configs/wgan_clip.ini %s train.grad_accum=2 run.out_dir=a", cli_bin, repo, o1);
    cr_assert_eq(rc, 0, "%s", o);
    free(o);
    rc = sh(&o, "%s %s/configs/wgan_clip.ini %s train.batch_size=512 run.out_dir=b", cli_bin, repo, o1);
    cr_assert_eq(rc, 0, "%s", o);
    free(o);
    const char *cols[] = {"grad_norm", "wasserstein", "critic_loss", "gp"};
    for (int i = 0; i < 4; i++) {
        double a = csv_value("a/metrics.csv", cols[i], 1), b = csv_value("b/metrics.csv", cols[i], 1);
        cr_assert(fabs(a - b) <= 1e-5 * fabs(b), "%s: %.9g in 2 micro-batches of 256, %.9g in one of 512",
                  cols[i], a, b);
    }
}

/* column `name` of data row `row` (1 = the first) of a metrics.csv of the test folder */
static double csv_value(const char *rel, const char *name, int row) {
    char path[600], line[8192];
    snprintf(path, sizeof path, "%s/%s", cli_dir, rel);
    FILE *f = fopen(path, "r");
    cr_assert(f, "%s missing", rel);
    cr_assert(fgets(line, sizeof line, f));
    int col = 0;
    for (char *t = strtok(line, ",\n"); t && strcmp(t, name); t = strtok(NULL, ",\n")) col++;
    for (int r = 0; r < row; r++) cr_assert(fgets(line, sizeof line, f), "%s: no row %d", rel, row);
    fclose(f);
    char *p = line;
    for (int c = 0; c < col; c++) p = strchr(p, ',') + 1;
    return strtod(p, NULL);
}

/* Each rank steps its own block of the environments (its policy rows on the
 * shape of all 6, its resets drawn from the one reset stream in environment
 * order, its actions from the one action stream) and the rollout is
 * gathered: one process's bytes. */
Test(ddp, ppo_np_2_3_equal_grad_accum, .init = setup, .fini = cli_rmdir, .timeout = 600) {
    NEED_MPI();
    for (int np = 2; np <= 3; np++) np_equals_accum("configs/ppo_clip.ini", PPO_O, np);
    /* splitting a minibatch is the same mathematics (the advantages are
     * normalised over the whole minibatch, the stats are the micro-batches'
     * mean): the first update of grad_accum = 3 is one process's, but for the
     * order of the float sums */
    char *o;
    int rc = sh(&o, "%s %s/configs/ppo_clip.ini " PPO_O " run.out_dir=acc1", cli_bin, repo);
    cr_assert_eq(rc, 0, "%s", o);
    free(o);
    const char *cols[] = {"grad_norm", "policy_loss", "value_loss", "entropy", "approx_kl"};
    for (int i = 0; i < 5; i++) {
        double a = csv_value("acc1/metrics.csv", cols[i], 1), b = csv_value("acc3/metrics.csv", cols[i], 1);
        cr_assert(fabs(a - b) <= 1e-5 * fabs(a) + 1e-9, "%s: %.9g with one minibatch, %.9g in 3 micro-batches",
                  cols[i], a, b);
    }
}

/* 24 and 36 environments: blocks of 12, where a rank's policy product of its
 * own rows alone keeps one process's bits (ops_sgemm_rows_exact); and
 * num_envs that does not divide over the ranks is refused naming the sizes. */
Test(ddp, ppo_envs_split_in_blocks_of_12_and_refused_uneven, .init = setup, .fini = cli_rmdir,
     .timeout = 600) {
    NEED_MPI();
    const char *o12 = "train.steps=2 run.plots=false train.quiet=true ppo.num_steps=32 "
                      "ppo.update_epochs=2 ppo.eval_episodes=0 ppo.num_envs=";
    char over[256];
    snprintf(over, sizeof over, "%s24", o12);
    np_equals_accum("configs/ppo_clip.ini", over, 2);
    snprintf(over, sizeof over, "%s36", o12);
    np_equals_accum("configs/ppo_clip.ini", over, 3);
    char *o;
    int rc = sh(&o, MPIRUN "-np 3 %s %s/configs/ppo_clip.ini train.steps=1 run.out_dir=bad", cli_bin, repo);
    cr_assert_neq(rc, 0, "%s", o);
    cr_assert(strstr(o, "num_envs = 4 environments cannot be split over 3 ranks"), "%s", o);
    char path[600];
    snprintf(path, sizeof path, "%s/bad/metrics.csv", cli_dir);
    cr_assert(access(path, F_OK) != 0, "a refused run wrote %s", path);
    free(o);
}

/* A checkpoint of a split rollout holds every environment (gathered at the
 * end of each rollout): rank 1 killed at step 5, --resume from step 4 ends
 * with the uninterrupted run's metrics. */
Test(ddp, ppo_split_envs_killed_and_resumed, .init = setup, .fini = cli_rmdir, .timeout = 600) {
    NEED_MPI();
    killed_and_resumed_matches("ppo_clip.ini",
                               "train.steps=6 run.resume_every=2 run.plots=false train.quiet=true "
                               "ppo.num_envs=6 ppo.num_steps=48 ppo.update_epochs=2 ppo.eval_episodes=0",
                               5);
}

/* PyTorch DDP (gloo, 2 processes on the CPU, tests/ref/ref_ddp.py): 4 steps of
 * an MLP with clip_grad_norm_ after the all-reduce; ours under mpirun -np 2
 * from the same weights and batches gives the same norms and weights. */
Test(ddp, matches_pytorch_ddp_gloo, .init = setup, .fini = cli_rmdir, .timeout = 600) {
    NEED_MPI();
    TFile *ref = tfile_load("ref_ddp");
    const TRec *norms = tfile_get(ref, "norms@f64"), *w = tfile_get(ref, "w_final");
    char path[1024], *o;
    const char *dir = tfile_dir(); /* relative to the repo root, where the tests start */
    snprintf(path, sizeof path, "%s%s%s/ref_ddp.bin", dir[0] == '/' ? "" : repo, dir[0] == '/' ? "" : "/", dir);
    int rc = sh(&o, MPIRUN "-np 2 %s mlp %s", helper(), path);
    cr_assert_eq(rc, 0, "%s", o);
    const char *p = o;
    for (size_t i = 0; i < norms->n; i++) {
        p = strstr(p, "norm ");
        cr_assert(p, "step %zu's norm missing:\n%s", i, o);
        double got = strtod(p + 5, (char **)&p), want = ((const double *)norms->data)[i];
        cr_assert(fabs(got - want) <= 1e-5 * fabs(want), "step %zu: norm %.9g, torch %.9g", i, got, want);
        cr_assert(want > 0.5, "step %zu: the clip at 0.5 did not bite (norm %g): a weak test", i, want);
    }
    p = strstr(o, "\nw ");
    cr_assert(p, "%s", o);
    p += 3;
    for (size_t i = 0; i < w->n; i++) {
        double got = strtod(p, (char **)&p), want = ((const float *)w->data)[i];
        cr_assert(fabs(got - want) <= 1e-6 + 1e-5 * fabs(want), "weight %zu: %.9g, torch %.9g", i, got, want);
    }
    free(o);
    tfile_free(ref);
}

/* [dist] shard = true (ZeRO-2 / FSDP, shard.c): reduce-scatter, the clip's norm
 * reduced across the shards, each rank steps its part with its part of the
 * optimizer state, all-gather. The RNN's shard boundaries cut w_hh, so the
 * per-tensor norm is held across a boundary. Same metrics.csv as unsharded. */
/* The run unsharded (u) and sharded (s) on np ranks: the same metrics.csv; the
 * folders are kept for further comparisons. */
static void shard_pair(const char *config, const char *over, int np) {
    char *o;
    int rc = sh(&o, MPIRUN "-np %d %s %s/%s %s run.out_dir=u", np, cli_bin, repo, config, over);
    cr_assert_eq(rc, 0, "%s", o);
    free(o);
    rc = sh(&o, MPIRUN "-np %d %s %s/%s %s dist.shard=true run.out_dir=s", np, cli_bin, repo, config, over);
    cr_assert_eq(rc, 0, "%s", o);
    free(o);
    same_metrics("u/metrics.csv", "s/metrics.csv");
}

static void shard_equals_unsharded(const char *config, const char *over, int np) {
    shard_pair(config, over, np);
    sh(NULL, "rm -rf u s");
}

Test(ddp, shard_equals_unsharded_rnn, .init = setup, .fini = cli_rmdir, .timeout = 300) {
    NEED_MPI();
    shard_equals_unsharded("configs/rnn_clip.ini", RNN_O, 3);                          /* global L2 */
    shard_equals_unsharded("configs/rnn_clip.ini", RNN_O " clip.grad=norm", 3);        /* per tensor */
    shard_equals_unsharded("configs/rnn_clip.ini", RNN_O " clip.norm_type=inf", 2);    /* MAX */
    shard_equals_unsharded("configs/rnn_clip.ini", RNN_O " clip.norm_type=1", 2);      /* sum |g| */
}

/* The per-tensor and stateful methods across shard boundaries (the RNN's
 * w_hh is cut at N = 2 and 3; AGC's units too): the norms are continued
 * across the boundary, so every method's state and every step is the
 * unsharded one's, bit for bit. */
Test(ddp, shard_equals_unsharded_stateful_and_unitwise, .init = setup, .fini = cli_rmdir, .timeout = 600) {
    NEED_MPI();
    shard_equals_unsharded("configs/rnn_clip.ini", RNN_O " clip.grad=agc clip.agc_clipping=0.01", 3);
    shard_equals_unsharded("configs/rnn_clip.ini", RNN_O " clip.grad=zclip clip.zclip_warmup=5", 2);
    shard_equals_unsharded("configs/rnn_clip.ini", RNN_O " clip.grad=adagc clip.adagc_warmup=5", 3);
    shard_equals_unsharded("configs/rnn_clip.ini", RNN_O " clip.grad=auto clip.auto_warmup=5", 2);
    shard_equals_unsharded("configs/rnn_clip.ini", RNN_O " clip.grad=norm clip.norm_type=3", 3); /* two passes */
    /* the per-tensor pre-clip norms too */
    shard_pair("configs/rnn_clip.ini", RNN_O " clip.log_param_norms=true", 3);
    char *a = slurp("u/grad_norms.csv"), *b = slurp("s/grad_norms.csv");
    cr_assert(a && b && strlen(a) > 100 && !strcmp(a, b), "grad_norms.csv differ");
    free(a), free(b);
}

/* The pieces of a tensor fed in order give clip_total_norm's bits (the
 * library side of the sharded norms). */
Test(ddp, norm_parts_are_the_whole_norm_bit_for_bit) {
    enum { N = 1003 };
    static float g[N];
    unsigned x = 12345;
    for (int i = 0; i < N; i++) x = x * 1103515245u + 12345u, g[i] = ((float)(x >> 8) / 16777216.0f - 0.5f) * (float)(1 + i % 7);
    const double ps[4] = {1, 2, INFINITY, 3};
    const size_t cuts[][3] = {{1, 2, 3}, {7, 8, 9}, {500, 501, 1000}, {333, 666, 999}, {0, 0, 1003}};
    for (int k = 0; k < 4; k++)
        for (size_t c = 0; c < sizeof cuts / sizeof *cuts; c++) {
            ClipTensor t = {g, NULL, N, 0};
            double whole = clip_total_norm(&t, 1, ps[k]);
            /* another p: the second pass, scaled by the max |g| (the first pass) */
            ClipNormPart s = {{0}, 0, k == 3 ? clip_total_norm(&t, 1, INFINITY) : 0};
            size_t at = 0;
            for (int j = 0; j <= 3; j++) {
                size_t to = j < 3 ? cuts[c][j] : N;
                clip_norm_part_add(&s, g + at, at, to, N, ps[k]);
                at = to;
            }
            double parts = clip_norm_part_result(&s, ps[k]);
            cr_assert(parts == whole, "p %g cuts %zu: %.17g in pieces, %.17g whole", ps[k], c, parts, whole);
        }
}

/* Checkpoints with shard: every rank's part of the optimizer state is gathered
 * (FSDP's full state dict), so checkpoint.bin is the unsharded run's file; the
 * rollbacks restore it; a killed sharded run resumes to the same metrics. */
Test(ddp, shard_checkpoints_rollbacks_and_resume, .init = setup, .fini = cli_rmdir, .timeout = 900) {
    NEED_MPI();
    char *o;
    const char *rec = "train.steps=40 run.plots=false train.quiet=true optim.lr=0.5 recovery.enabled=true "
                      "recovery.warmup=5 recovery.snapshot_every=5 recovery.rollback_steps=5 "
                      "recovery.skip_batches=3 recovery.spike_factor=1.2";
    shard_pair("configs/rnn_clip.ini", rec, 2);
    char *a = slurp("u/rollbacks.csv"), *b = slurp("s/rollbacks.csv");
    cr_assert(a && b && strchr(a, '\n') && strchr(strchr(a, '\n') + 1, '\n') && !strcmp(a, b),
              "no rollback, or other rollbacks:\n%s\n%s", a, b);
    free(a), free(b);
    int rc = sh(&o, "cmp u/checkpoint.bin s/checkpoint.bin");
    cr_assert_eq(rc, 0, "checkpoint.bin differs: %s", o);
    free(o);
    sh(NULL, "rm -rf u s");
    killed_and_resumed_matches("rnn_clip.ini",
                               KILL_O " optim.kind=adamw clip.grad=zclip clip.zclip_warmup=5 dist.shard=true", 15);
}

Test(ddp, shard_equals_unsharded_transformer_adamw, .init = setup, .fini = cli_rmdir, .timeout = 300) {
    NEED_MPI();
    shard_equals_unsharded("configs/transformer_clip.ini", TF_O, 2);
}

/* The FSDP pitfall: each rank clips its shard by its own (smaller) norm, so on
 * a step where every shard is over the threshold the update has norm sqrt(N)
 * x threshold, and the shards are scaled by different factors. */
Test(ddp, shard_local_norm_is_the_fsdp_pitfall, .init = setup, .fini = cli_rmdir, .timeout = 120) {
    NEED_MPI();
    char *o;
    int rc = sh(&o, MPIRUN "-np 2 %s %s/configs/rnn_clip.ini train.steps=1 run.plots=false train.quiet=true "
                "dist.shard=true dist.norm=local dist.report_every=1 run.out_dir=p", cli_bin, repo);
    cr_assert_eq(rc, 0, "%s", o);
    const char *p = strstr(o, "coefs ");
    cr_assert(p, "%s", o);
    double c0 = strtod(p + 6, (char **)&p), c1 = strtod(p, NULL);
    cr_assert(c0 < 1 && c1 < 1 && fabs(c0 - c1) > 1e-3, "shards scaled alike (%g, %g):\n%s", c0, c1, o);
    p = strstr(o, "| to the optimizer ");
    cr_assert(p && fabs(strtod(p + 19, NULL) - sqrt(2.0)) < 1e-3, "update norm not sqrt(2):\n%s", o);
    free(o);
    rc = sh(&o, MPIRUN "-np 2 %s %s/configs/rnn_clip.ini train.steps=2 dist.shard=true dist.clip=local "
            "run.out_dir=q", cli_bin, repo);
    cr_assert_eq(rc, 2, "%s", o);
    cr_assert(strstr(o, "shard = true does not work with [dist] clip = local"), "%s", o);
    free(o);
}
