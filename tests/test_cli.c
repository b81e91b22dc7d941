/* test_cli.c: ./train as a user runs it: config errors (file, line, key, what is
 * accepted; non-zero exit; nothing written), --help, determinism from the seed,
 * the non-finite policies, and the comparison plot. Runs the built ./train
 * (CLIPLAB_TRAIN overrides the path) in a fresh temporary folder per test. */
#include <criterion/criterion.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "cli.h"

static int run_train(const char *args, char *err, size_t errlen) {
    return cli_run(args, err, errlen, 0);
}

#define SMALL_RNN                                                                          \
    "[model]\ntype = rnn\n[rnn]\nseq_len = 10\nhidden = 8\neval_size = 16\n"               \
    "[train]\nsteps = 20\nbatch_size = 4\nquiet = true\n[optim]\nkind = sgd\nlr = 0.01\n"

static void expect_error(const char *ini, const char *needle1, const char *needle2) {
    char err[4096];
    cli_write("bad.ini", ini);
    int rc = run_train("bad.ini", err, sizeof err);
    cr_assert_neq(rc, 0, "a bad config must exit non-zero");
    cr_assert(strstr(err, needle1), "stderr lacks '%s':\n%s", needle1, err);
    if (needle2) cr_assert(strstr(err, needle2), "stderr lacks '%s':\n%s", needle2, err);
    cr_assert(!cli_exists("runs"), "a rejected config must write nothing");
}

TestSuite(cli, .init = cli_mkdir, .fini = cli_rmdir);

Test(cli, unknown_key) { expect_error(SMALL_RNN "[clip]\nmax_nrom = 1\n", "bad.ini:15", "max_nrom"); }
Test(cli, bad_number) { expect_error(SMALL_RNN "[clip]\nmax_norm = 1.0x\n", "bad.ini:15", "max_norm"); }
Test(cli, missing_equals) { expect_error("[model]\ntype = rnn\n[train]\nsteps 20\n", "bad.ini:4", NULL); }
Test(cli, out_of_range) { expect_error("[model]\ntype = rnn\n[rnn]\nhidden = 0\n", "bad.ini:4", "hidden"); }
Test(cli, unknown_section) { expect_error("[model]\ntype = rnn\n[clipping]\ngrad = none\n", "bad.ini:3", "clipping"); }
Test(cli, bad_enum_lists_choices) {
    expect_error("[model]\ntype = rnn\n[clip]\ngrad = sometimes\n", "bad.ini:4", "global_norm");
}
Test(cli, inconsistent_settings) {
    expect_error(SMALL_RNN "nesterov = true\n", "bad.ini", "nesterov");
}
Test(cli, missing_file) {
    char err[4096];
    int rc = run_train("nope.ini", err, sizeof err);
    cr_assert_neq(rc, 0);
    cr_assert(strstr(err, "nope.ini"), "%s", err);
}
Test(cli, bad_override) {
    char err[4096];
    cli_write("ok.ini", SMALL_RNN);
    cr_assert_neq(run_train("ok.ini train.stepz=3", err, sizeof err), 0);
    cr_assert(strstr(err, "stepz"), "%s", err);
    cr_assert(!cli_exists("runs"));
}

Test(cli, help_lists_every_section) {
    char err[256];
    cr_assert_eq(run_train("--help", err, sizeof err), 0);
    char path[512], out[65536];
    snprintf(path, sizeof path, "%s/stdout.txt", cli_dir);
    FILE *f = fopen(path, "r");
    size_t n = fread(out, 1, sizeof out - 1, f);
    out[n] = '\0';
    fclose(f);
    const char *want[] = {"[run]", "[train]", "[optim]", "[clip]", "[model]", "[rnn]",
                          "on_nonfinite", "max_norm", "spectral_radius"};
    for (size_t i = 0; i < sizeof want / sizeof *want; i++)
        cr_assert(strstr(out, want[i]), "--help lacks %s", want[i]);
}

/* Column 0 (step) of a CSV, one value per line. */
static char *read_step_column(const char *rel) {
    char path[512], line[2048];
    snprintf(path, sizeof path, "%s/%s", cli_dir, rel);
    FILE *f = fopen(path, "r");
    cr_assert(f, "missing %s", path);
    char *out = malloc(1 << 16);
    size_t k = 0;
    cr_assert(fgets(line, sizeof line, f));
    while (fgets(line, sizeof line, f))
        k += (size_t)snprintf(out + k, (1 << 16) - k, "%.*s\n", (int)strcspn(line, ","), line);
    fclose(f);
    return out;
}

static char *read_loss_column(const char *rel) {
    char path[512];
    snprintf(path, sizeof path, "%s/%s", cli_dir, rel);
    FILE *f = fopen(path, "r");
    cr_assert(f, "missing %s", path);
    char *out = malloc(1 << 16), line[1024];
    size_t k = 0;
    cr_assert(fgets(line, sizeof line, f));
    cr_assert(!strncmp(line, "step,loss,grad_norm,grad_norm_clipped,grad_clip_coef,", 53), "%s", line);
    while (fgets(line, sizeof line, f)) {
        char *c1 = strchr(line, ','), *c2 = c1 ? strchr(c1 + 1, ',') : NULL;
        cr_assert(c2);
        k += (size_t)snprintf(out + k, (1 << 16) - k, "%.*s\n", (int)(c2 - c1 - 1), c1 + 1);
    }
    fclose(f);
    return out;
}

Test(cli, same_seed_same_metrics) {
    char err[4096];
    cli_write("a.ini", SMALL_RNN);
    cr_assert_eq(run_train("a.ini run.out_dir=r1", err, sizeof err), 0, "%s", err);
    cr_assert_eq(run_train("a.ini run.out_dir=r2", err, sizeof err), 0, "%s", err);
    cr_assert_eq(run_train("a.ini run.out_dir=r3 run.seed=2", err, sizeof err), 0, "%s", err);
    char *l1 = read_loss_column("r1/metrics.csv"), *l2 = read_loss_column("r2/metrics.csv");
    cr_assert(strlen(l1) > 20);
    cr_assert_str_eq(l1, l2, "same seed, different loss column");
    char *l3 = read_loss_column("r3/metrics.csv");
    cr_assert_str_neq(l1, l3, "a different seed must give different numbers");
    free(l1), free(l2), free(l3);
    cr_assert(cli_exists("r1/config.ini") && cli_exists("r1/loss.png") && cli_exists("r1/grad_norm.png"));
}

/* A learning rate of 1000 drives the RNN to a non-finite loss: stop exits 0
 * with plots written; error exits 3. */
Test(cli, nonfinite_policies) {
    char err[4096];
    cli_write("boom.ini", "[model]\ntype = rnn\n[rnn]\nseq_len = 10\nhidden = 8\neval_size = 4\n"
                           "init = orthogonal\nspectral_radius = 3\n"
                           "[train]\nsteps = 200\nbatch_size = 4\nquiet = true\n"
                           "[optim]\nkind = sgd\nlr = 1000\n");
    cr_assert_eq(run_train("boom.ini run.out_dir=stop", err, sizeof err), 0, "%s", err);
    cr_assert(strstr(err, "non-finite"), "%s", err);
    cr_assert(cli_exists("stop/loss.png") && cli_exists("stop/metrics.csv"));
    cr_assert_eq(run_train("boom.ini run.out_dir=err train.on_nonfinite=error", err, sizeof err), 3,
                 "%s", err);
    cr_assert_eq(run_train("boom.ini run.out_dir=skip train.on_nonfinite=skip", err, sizeof err), 0,
                 "%s", err);
}

Test(cli, comparison_plot) {
    char err[4096];
    cli_write("a.ini", SMALL_RNN);
    cli_write("b.ini", SMALL_RNN "[clip]\ngrad = global_norm\nmax_norm = 0.5\n");
    cr_assert_eq(run_train("a.ini b.ini", err, sizeof err), 0, "%s", err);
    cr_assert(cli_exists("runs/a/metrics.csv") && cli_exists("runs/b/metrics.csv"));
    cr_assert(cli_exists("runs/compare_a_vs_b.png"));
}

/* ./train --plot redraws a finished run's figures from its folder, nothing trained (the
 * metrics stay byte-identical), and overlays several folders with --compare; a folder
 * without config.ini is a usage error (exit 2). The comparison's PNG names the command
 * that made it in its footer's text chunk. */
Test(cli, plot_redraws_from_folders) {
    char err[4096];
    cli_write("a.ini", SMALL_RNN);
    cli_write("b.ini", SMALL_RNN "[clip]\ngrad = value\nvalue = 0.1\n");
    cr_assert_eq(run_train("a.ini b.ini", err, sizeof err), 0, "%s", err);
    char cmd[1024];
    snprintf(cmd, sizeof cmd, "cd %s && cp runs/a/metrics.csv m.csv && rm runs/a/*.png runs/b/*.png",
             cli_dir);
    cr_assert_eq(system(cmd), 0);
    cr_assert_eq(run_train("--plot runs/a runs/b/ --compare cmp.png", err, sizeof err), 0, "%s", err);
    const char *want[] = {"runs/a/loss.png", "runs/a/grad_norm.png", "runs/a/step_size.png",
                          "runs/b/grad_norm.png", "cmp.png", "cmp_step_size.png"};
    for (size_t i = 0; i < sizeof want / sizeof *want; i++)
        cr_expect(cli_exists(want[i]), "--plot did not write %s", want[i]);
    snprintf(cmd, sizeof cmd, "cd %s && cmp -s m.csv runs/a/metrics.csv && grep -aq "
             "'./train --plot runs/a runs/b/ --compare cmp.png' cmp.png", cli_dir);
    cr_expect_eq(system(cmd), 0, "metrics changed, or the command is not in cmp.png");
    cr_expect_eq(run_train("--plot nowhere", err, sizeof err), 2);
    cr_expect(strstr(err, "nowhere"), "%s", err);
}

/* Runs that differ only by their seed are drawn as one configuration each, the median
 * over its seeds with a min-max band (a figure 1100 wide, one panel per column), not as
 * four runs side by side (1500 wide); the footer's Seed lists each seed once. */
Test(cli, plot_groups_seeds) {
    char err[4096], cmd[1024];
    cli_write("a.ini", SMALL_RNN);
    cli_write("b.ini", SMALL_RNN "[clip]\ngrad = global_norm\nmax_norm = 0.5\n");
    for (int s = 1; s <= 2; s++) {
        snprintf(cmd, sizeof cmd, "a.ini:run.name=a b.ini:run.name=b run.seed=%d run.plots=false", s);
        cr_assert_eq(run_train(cmd, err, sizeof err), 0, "%s", err);
        snprintf(cmd, sizeof cmd, "cd %s && mv runs/a runs/a%d && mv runs/b runs/b%d", cli_dir, s, s);
        cr_assert_eq(system(cmd), 0);
    }
    cr_assert_eq(run_train("--plot runs/a1 runs/a2 runs/b1 runs/b2 --compare s.png", err, sizeof err), 0,
                 "%s", err);
    snprintf(cmd, sizeof cmd,
             "cd %s && /usr/bin/python3 -c \"import struct,sys; b=open('s.png','rb').read(); "
             "sys.exit(0 if struct.unpack('>I', b[16:20])[0] == 1100 and b'Seed\\x001, 2' in b else 1)\"",
             cli_dir);
    cr_expect_eq(system(cmd), 0, "s.png is not the seeds figure (width 1100, Seed 1, 2)");
}

/* A rollback restores exactly the state it saved. ema_beta = 0 and factor 1
 * make any loss above the previous one a "spike". With no batches skipped the
 * replay reaches the same spike with the same loss (so every rollback row is
 * identical), and once rollbacks run out the run ends with the same metrics as
 * a run without recovery. The checkpoint file is written and complete. */
Test(cli, rollback_replays_exactly) {
    char err[4096];
    cli_write("r.ini", SMALL_RNN "[recovery]\nenabled = true\nspike_factor = 1\nema_beta = 0\nwarmup = 3\n"
                                  "snapshot_every = 4\nrollback_steps = 4\nskip_batches = 0\n"
                                  "max_rollbacks = 3\n[clip]\nlog_param_norms = true\n");
    cr_assert_eq(run_train("r.ini run.out_dir=rec", err, sizeof err), 0, "%s", err);
    cr_assert_eq(run_train("r.ini run.out_dir=plain recovery.enabled=false", err, sizeof err), 0,
                 "%s", err);
    char path[512], line[256], rows[4][256];
    snprintf(path, sizeof path, "%s/rec/rollbacks.csv", cli_dir);
    FILE *f = fopen(path, "r");
    cr_assert(f, "no rollbacks.csv");
    cr_assert(fgets(line, sizeof line, f));
    cr_assert_str_eq(line, "spike_step,loss,running_avg,restored_step,batches_skipped\n");
    int n = 0;
    while (n < 4 && fgets(rows[n], sizeof rows[n], f)) n++;
    fclose(f);
    cr_assert_eq(n, 3, "expected 3 rollbacks, got %d", n);
    long spike, restored;
    cr_assert_eq(sscanf(rows[0], "%ld,%*g,%*g,%ld", &spike, &restored), 2);
    cr_assert(restored <= spike - 4 && restored % 4 == 0, "restored %ld for spike %ld", restored, spike);
    cr_assert_str_eq(rows[0], rows[1], "replay differs from the original");
    cr_assert_str_eq(rows[1], rows[2], "replay differs from the original");
    char *a = read_loss_column("rec/metrics.csv"), *b = read_loss_column("plain/metrics.csv");
    cr_assert_str_eq(a, b, "rollbacks without skipping must not change the trajectory");
    free(a), free(b);
    cr_assert(cli_exists("rec/checkpoint.bin") && !cli_exists("rec/checkpoint.bin.tmp"));
    /* a rollback rewinds grad_norms.csv with metrics.csv: the same steps, once each */
    char *ms = read_step_column("rec/metrics.csv"), *gs = read_step_column("rec/grad_norms.csv");
    cr_assert_str_eq(ms, gs, "grad_norms.csv steps differ from metrics.csv after rollbacks");
    free(ms), free(gs);
}

/* After a rollback that skips batches, the run trains on different data. */
Test(cli, rollback_skips_batches) {
    char err[4096];
    cli_write("r.ini", SMALL_RNN "[recovery]\nenabled = true\nspike_factor = 1\nema_beta = 0\nwarmup = 3\n"
                                  "snapshot_every = 4\nrollback_steps = 4\nskip_batches = 5\n"
                                  "max_rollbacks = 1\n");
    cr_assert_eq(run_train("r.ini run.out_dir=rec", err, sizeof err), 0, "%s", err);
    cr_assert_eq(run_train("r.ini run.out_dir=plain recovery.enabled=false", err, sizeof err), 0,
                 "%s", err);
    char *a = read_loss_column("rec/metrics.csv"), *b = read_loss_column("plain/metrics.csv");
    cr_assert_str_neq(a, b, "skipped batches must change what is trained on");
    free(a), free(b);
}

/* [clip] log_param_norms: grad_norms.csv has one column per tensor, one row per
 * metrics row, and the per-tensor norms combine to the logged global norm
 * (||g||_2 = sqrt(sum_i ||g_i||^2)); the heatmap is written. */
Test(cli, per_tensor_norms) {
    char err[4096];
    cli_write("a.ini", SMALL_RNN "[clip]\nlog_param_norms = true\n");
    cr_assert_eq(run_train("a.ini", err, sizeof err), 0, "%s", err);
    cr_assert(cli_exists("runs/a/grad_norm_heatmap.png"));
    char path[512], line[1024], mline[1024];
    snprintf(path, sizeof path, "%s/runs/a/grad_norms.csv", cli_dir);
    FILE *f = fopen(path, "r");
    snprintf(path, sizeof path, "%s/runs/a/metrics.csv", cli_dir);
    FILE *m = fopen(path, "r");
    cr_assert(f && m);
    cr_assert(fgets(line, sizeof line, f) && fgets(mline, sizeof mline, m));
    cr_assert_str_eq(line, "step,w_ih,b_ih,w_hh,b_hh,w_out,b_out\n");
    int rows = 0;
    while (fgets(line, sizeof line, f)) {
        cr_assert(fgets(mline, sizeof mline, m), "grad_norms.csv has more rows than metrics.csv");
        double step, v[6], mstep, loss, gn;
        cr_assert_eq(sscanf(line, "%lf,%lf,%lf,%lf,%lf,%lf,%lf", &step, v, v + 1, v + 2, v + 3,
                            v + 4, v + 5), 7);
        cr_assert_eq(sscanf(mline, "%lf,%lf,%lf", &mstep, &loss, &gn), 3);
        cr_assert_eq(step, mstep);
        double ss = 0;
        for (int i = 0; i < 6; i++) ss += v[i] * v[i];
        cr_assert(fabs(sqrt(ss) - gn) <= 1e-6 * gn + 1e-9, "step %g: %g vs %g", step, sqrt(ss), gn);
        rows++;
    }
    cr_assert(!fgets(mline, sizeof mline, m), "metrics.csv has more rows than grad_norms.csv");
    cr_assert_eq(rows, 20);
    fclose(f), fclose(m);
}

/* The saved config.ini is a config: it holds only the sections that apply,
 * loads back, and re-running it reproduces the run exactly. */
Test(cli, saved_config_reproduces_the_run) {
    char err[4096];
    cli_write("a.ini", SMALL_RNN "[clip]\ngrad = global_norm\nmax_norm = 0.5\n");
    cr_assert_eq(run_train("a.ini run.seed=5", err, sizeof err), 0, "%s", err);
    char path[512], line[512];
    snprintf(path, sizeof path, "%s/runs/a,run.seed=5/config.ini", cli_dir); /* named for its override */
    FILE *f = fopen(path, "r");
    cr_assert(f);
    while (fgets(line, sizeof line, f)) cr_assert(strncmp(line, "[transformer]", 13) != 0,
                                                  "another model's section was saved");
    fclose(f);
    cr_assert_eq(run_train("'runs/a,run.seed=5/config.ini' run.out_dir=again", err, sizeof err), 0, "%s", err);
    char *a = read_loss_column("runs/a,run.seed=5/metrics.csv"), *b = read_loss_column("again/metrics.csv");
    cr_assert_str_eq(a, b, "re-running the saved config gave different numbers");
    free(a), free(b);
}

/* A key the selected method does not read is a warning, not an error. */
Test(cli, unused_key_warns) {
    char err[4096];
    cli_write("w.ini", SMALL_RNN "[clip]\ngrad = global_norm\nzclip_alpha = 0.5\n");
    cr_assert_eq(run_train("w.ini train.steps=2", err, sizeof err), 0, "%s", err);
    cr_assert(strstr(err, "warning") && strstr(err, "[clip] zclip_alpha") && strstr(err, "grad = zclip"),
              "%s", err);
    cr_assert(strstr(err, "warning: w.ini: [clip] zclip_alpha"), "the file that set it:\n%s", err);
    /* a key set on the command line: the warning names the override, not the file */
    cr_assert_eq(run_train("w.ini train.steps=2 clip.adagc_beta=0.5 run.out_dir=runs/wo", err, sizeof err),
                 0, "%s", err);
    cr_assert(strstr(err, "warning: command-line override clip.adagc_beta=0.5: [clip] adagc_beta"),
              "%s", err);
    cr_assert(!strstr(err, "w.ini: [clip] adagc_beta"), "%s", err);
    cli_write("quiet.ini", SMALL_RNN "[clip]\ngrad = zclip\nzclip_alpha = 0.5\n");
    cr_assert_eq(run_train("quiet.ini train.steps=2", err, sizeof err), 0, "%s", err);
    cr_assert(!strstr(err, "warning"), "a key the method reads: no warning:\n%s", err);
    /* the saved config.ini loads back without warnings: unread keys are comments there */
    cr_assert_eq(run_train("runs/w,train.steps=2/config.ini run.out_dir=runs/w2", err, sizeof err), 0, "%s", err);
    cr_assert(!strstr(err, "warning"), "%s", err);
}

/* Overrides are as strict as files: another model's section is refused. */
Test(cli, override_of_another_models_section) {
    char err[4096];
    cli_write("ok.ini", SMALL_RNN);
    cr_assert_neq(run_train("ok.ini transformer.d_model=8", err, sizeof err), 0);
    cr_assert(strstr(err, "[transformer]") && strstr(err, "does not apply"), "%s", err);
    cr_assert(!cli_exists("runs"));
}

/* A sweep's workers share the cores: the sweep sets CLIPLAB_THREAD_CAP (cores /
 * jobs) and a run's [train] threads is held to it. */
Test(cli, thread_cap_of_a_sweep_worker) {
    char out[8192];
    cli_write("ok.ini", SMALL_RNN);
    setenv("CLIPLAB_THREAD_CAP", "1", 1);
    int rc = cli_run("ok.ini train.threads=2", out, sizeof out, 1);
    unsetenv("CLIPLAB_THREAD_CAP");
    cr_assert_eq(rc, 0, "%s", out);
    cr_assert(strstr(out, "threads = 2 capped at 1"), "%s", out);
    cr_assert_eq(cli_run("ok.ini train.threads=2 run.out_dir=runs/b", out, sizeof out, 1), 0);
    cr_assert(!strstr(out, "capped"), "no cap without the sweep's variable:\n%s", out);
}

/* ./train started without OMP_WAIT_POLICY sets it to passive and starts itself
 * again (main.c, omp_wait_passive): the run must go through that path and give
 * the same numbers as a run started with the policy set. */
Test(cli, restart_without_omp_wait_policy_same_numbers, .init = cli_mkdir, .fini = cli_rmdir) {
    char out[8192];
    cli_write("ok.ini", SMALL_RNN);
    const char *had = getenv("OMP_WAIT_POLICY");
    char keep[64] = "";
    if (had) snprintf(keep, sizeof keep, "%s", had);
    unsetenv("OMP_WAIT_POLICY");
    int rc = cli_run("ok.ini run.out_dir=runs/a", out, sizeof out, 1);
    setenv("OMP_WAIT_POLICY", "active", 1);
    int rc2 = cli_run("ok.ini run.out_dir=runs/b", out, sizeof out, 1);
    if (had) setenv("OMP_WAIT_POLICY", keep, 1);
    else unsetenv("OMP_WAIT_POLICY");
    cr_assert_eq(rc, 0);
    cr_assert_eq(rc2, 0, "%s", out);
    FILE *a = NULL, *b = NULL;
    char pa[512], pb[512];
    snprintf(pa, sizeof pa, "%s/runs/a/metrics.csv", cli_dir);
    snprintf(pb, sizeof pb, "%s/runs/b/metrics.csv", cli_dir);
    a = fopen(pa, "r"), b = fopen(pb, "r");
    cr_assert(a && b);
    char la[4096], lb[4096];
    int rows = 0, tcol = -1;
    while (fgets(la, sizeof la, a)) {
        cr_assert(fgets(lb, sizeof lb, b), "runs/b has fewer rows");
        /* every column but time_ms */
        char *ta[64], *tb[64], *sa, *sb;
        int n = 0;
        for (char *t = strtok_r(la, ",\n", &sa); t && n < 64; t = strtok_r(NULL, ",\n", &sa)) ta[n++] = t;
        int m = 0;
        for (char *t = strtok_r(lb, ",\n", &sb); t && m < 64; t = strtok_r(NULL, ",\n", &sb)) tb[m++] = t;
        cr_assert_eq(n, m);
        for (int i = 0; i < n; i++) {
            if (!rows && !strcmp(ta[i], "time_ms")) tcol = i;
            if (i != tcol) cr_assert_str_eq(ta[i], tb[i], "row %d column %d", rows, i);
        }
        rows++;
    }
    cr_assert(!fgets(lb, sizeof lb, b), "runs/b has more rows");
    cr_assert_gt(rows, 2);
    cr_assert_geq(tcol, 0, "no time_ms column");
    fclose(a), fclose(b);
}
