/* test_surprises.c: valid inputs that used to do something else in silence,
 * and names that used to collide (issue 21, sections 2 and 3). Each is run
 * the way a student types it (./train in a fresh folder, tests/cli.h):
 *  - a run with overrides goes to a folder named for them, never replacing
 *    the run of the config alone; CONFIG.ini:key=value applies to one config;
 *  - max_norm = 0 is refused; [clip] weight on a two-group model warns;
 *  - a .sweep given as a config, an override typed with spaces, --compare
 *    with one config, a misspelt key / section / option, an old key name,
 *    --help SECTION each get a message that points at the mistake;
 *  - --resume of a finished run with other settings is refused, of a run
 *    without resume.bin says so;
 *  - the start shows the settings that differ from the defaults, and the
 *    progress line shows val_loss; PPO's shows its return and approx_kl. */
#include <criterion/criterion.h>
#include <stdio.h>
#include <string.h>

#include "cli.h"

#define TINY_RNN                                                                            \
    "[model]\ntype = rnn\n[rnn]\nseq_len = 6\nhidden = 4\neval_size = 4\n"                  \
    "[train]\nsteps = 6\nbatch_size = 2\nquiet = true\n[optim]\nkind = sgd\nlr = 0.01\n"   \
    "[clip]\ngrad = global_norm\n"

TestSuite(surprises, .init = cli_mkdir, .fini = cli_rmdir, .timeout = 300);

static int run(const char *args, char *out, size_t len) { return cli_run(args, out, len, 1); }

Test(surprises, overrides_name_their_folder_and_never_replace_another_run) {
    char out[8192];
    cli_write("a.ini", TINY_RNN);
    cr_assert_eq(run("a.ini", out, sizeof out), 0, "%s", out);
    cr_assert_eq(run("a.ini clip.max_norm=0.25 train.quiet=true", out, sizeof out), 0, "%s", out);
    cr_assert(cli_exists("runs/a/metrics.csv"), "the run of the config alone was replaced");
    cr_assert(cli_exists("runs/a,clip.max_norm=0.25/metrics.csv"),
              "the override's run is not in a folder named for it (train.quiet left out)");
    /* sorted, so the same overrides in another order name the same folder */
    cr_assert_eq(run("a.ini train.steps=4 clip.max_norm=0.25", out, sizeof out), 0, "%s", out);
    cr_assert_eq(run("a.ini clip.max_norm=0.25 train.steps=4", out, sizeof out), 0, "%s", out);
    cr_assert(cli_exists("runs/a,clip.max_norm=0.25,train.steps=4/metrics.csv"));
    /* per config: the baseline and the variant side by side in one command */
    cr_assert_eq(run("a.ini a.ini:clip.max_norm=0.1:train.lr_unused_check=1", out, sizeof out), 2,
                 "an unknown key in a per-config override is refused: %s", out);
    cr_assert_eq(run("a.ini a.ini:clip.max_norm=0.1 --compare cmp.png", out, sizeof out), 0, "%s", out);
    cr_assert(cli_exists("runs/a,clip.max_norm=0.1/metrics.csv") && cli_exists("cmp.png"));
    char cfg[8192];
    FILE *f = fopen(strcat(strcpy(cfg, cli_dir), "/runs/a,clip.max_norm=0.1/config.ini"), "r");
    cr_assert(f);
    cfg[fread(cfg, 1, sizeof cfg - 1, f)] = '\0';
    fclose(f);
    cr_assert(strstr(cfg, "max_norm = 0.1\n"), "the per-config override was not applied");
    /* run.name given: no suffix */
    cr_assert_eq(run("a.ini clip.max_norm=0.3 run.name=mine", out, sizeof out), 0, "%s", out);
    cr_assert(cli_exists("runs/mine/metrics.csv"));
}

Test(surprises, zero_threshold_refused_and_group_clamp_warned) {
    char out[8192], args[1024], cwd[512];
    cli_write("a.ini", TINY_RNN);
    cr_assert_eq(run("a.ini clip.max_norm=0", out, sizeof out), 2, "%s", out);
    cr_assert(strstr(out, "[clip] max_norm = 0") && strstr(out, "grad = none"), "%s", out);
    cr_assert_eq(run("a.ini clip.grad=value clip.value=0", out, sizeof out), 2, "%s", out);
    cr_assert(strstr(out, "[clip] value = 0"), "%s", out);
    cr_assert_eq(run("a.ini clip.grad=none clip.max_norm=0", out, sizeof out), 0,
                 "max_norm = 0 is harmless when no rule reads it: %s", out);
    cr_assert(getcwd(cwd, sizeof cwd));
    snprintf(args, sizeof args, "%s/configs/wgan_noclip.ini clip.weight=0.01 run.memory_mb=1", cwd);
    run(args, out, sizeof out);
    cr_assert(strstr(out, "warning") && strstr(out, "(critic, generator)") &&
              strstr(out, "[clip.critic] weight"), "%s", out);
    snprintf(args, sizeof args, "%s/configs/wgan_clip.ini run.memory_mb=1", cwd);
    run(args, out, sizeof out);
    cr_assert(!strstr(out, "clamps the weights of every update group"), "the critic alone: %s", out);
    snprintf(args, sizeof args, "%s/configs/ppo_clip.ini ppo.ratio_clip=0", cwd);
    cr_assert_eq(run(args, out, sizeof out), 2, "%s", out);
    cr_assert(strstr(out, "number above 0") && !strstr(out, "from 0 to"), "self-contradicting range: %s", out);
}

Test(surprises, mistakes_get_messages_that_point_at_them) {
    char out[8192];
    cli_write("a.ini", TINY_RNN);
    cli_write("s.sweep", "a.ini\n--vary clip.max_norm=1,2\n");
    cr_assert_eq(run("s.sweep", out, sizeof out), 2, "%s", out);
    cr_assert(strstr(out, "sweep spec") && strstr(out, "./train --sweep s.sweep"), "%s", out);
    cr_assert_eq(run("a.ini clip.max_norm = 0.5", out, sizeof out), 2, "%s", out);
    cr_assert(strstr(out, "no spaces") && strstr(out, "clip.max_norm=0.5"), "%s", out);
    cr_assert_eq(run("a.ini clip.max_norm= 0.5", out, sizeof out), 2, "%s", out);
    cr_assert(strstr(out, "clip.max_norm=0.5"), "%s", out);
    cr_assert_eq(run("a.ini --compare x.png", out, sizeof out), 2, "%s", out);
    cr_assert(strstr(out, "two or more") && strstr(out, "a.ini:clip.max_norm="), "%s", out);
    cr_assert(!cli_exists("runs"), "a refused command line wrote something");
    cr_assert_eq(run("a.ini clip.max_nrom=1", out, sizeof out), 2, "%s", out);
    cr_assert(strstr(out, "did you mean max_norm?"), "%s", out);
    cr_assert_eq(run("a.ini clp.max_norm=1", out, sizeof out), 2, "%s", out);
    cr_assert(strstr(out, "did you mean [clip]?"), "%s", out);
    cli_write("b.ini", TINY_RNN "[trian]\nsteps = 3\n");
    cr_assert_eq(run("b.ini", out, sizeof out), 2, "%s", out);
    cr_assert(strstr(out, "b.ini:") && strstr(out, "did you mean [train]?"), "%s", out);
    cr_assert_eq(run("a.ini --resum", out, sizeof out), 2, "%s", out);
    cr_assert(strstr(out, "did you mean --resume?"), "%s", out);
    cr_assert_eq(run("a.ini clip.max_norm=1 clip.grad=zzzz_far_from_all", out, sizeof out), 2, "%s", out);
    cr_assert(!strstr(out, "did you mean"), "no suggestion for a value: %s", out);
    /* old names: an error naming the new one, in files, overrides and group sections */
    cr_assert_eq(run("a.ini run.checkpoint_every=5", out, sizeof out), 2, "%s", out);
    cr_assert(strstr(out, "renamed to resume_every") && strstr(out, "run.resume_every=5"), "%s", out);
    cli_write("c.ini", TINY_RNN "[recovery]\ncheckpoint_every = 5\n");
    cr_assert_eq(run("c.ini", out, sizeof out), 2, "%s", out);
    cr_assert(strstr(out, "c.ini:") && strstr(out, "renamed to snapshot_every"), "%s", out);
    cr_assert_eq(run("a.ini model.type=ppo ppo.clip_coef=0.2", out, sizeof out), 2, "%s", out);
    cr_assert(strstr(out, "renamed to ratio_clip"), "%s", out);
    /* --help SECTION */
    cr_assert_eq(run("--help clip", out, sizeof out), 0, "%s", out);
    cr_assert(!strncmp(out, "[clip]", 6) && strstr(out, "max_norm = 1") && !strstr(out, "[train]"), "%s", out);
    cr_assert_eq(run("--help clp", out, sizeof out), 2, "%s", out);
    cr_assert(strstr(out, "did you mean clip?"), "%s", out);
}

/* Every line of --help fits in 100 columns. */
Test(surprises, help_fits_in_100_columns) {
    char out[65536], path[600], line[1024];
    cr_assert_eq(run("--help", out, sizeof out), 0);
    snprintf(path, sizeof path, "%s/stdout.txt", cli_dir);
    FILE *f = fopen(path, "r");
    cr_assert(f);
    int n = 0;
    while (fgets(line, sizeof line, f)) {
        n++;
        size_t len = strcspn(line, "\n");
        cr_assert(len <= 100, "--help line %d is %zu columns: %s", n, len, line);
    }
    fclose(f);
    cr_assert(n > 100, "--help printed %d lines", n);
}

Test(surprises, resume_edge_cases_say_what_they_do) {
    char out[8192];
    cli_write("a.ini", TINY_RNN);
    cr_assert_eq(run("a.ini run.out_dir=r", out, sizeof out), 0, "%s", out);
    cr_assert_eq(run("a.ini run.out_dir=r --resume", out, sizeof out), 0, "the same run: %s", out);
    cr_assert_eq(run("a.ini run.out_dir=r train.steps=9 --resume", out, sizeof out), 2, "%s", out);
    cr_assert(strstr(out, "train.steps = 6 in the finished run, 9 now") && strstr(out, "leave out --resume"),
              "%s", out);
    cr_assert_eq(run("a.ini run.out_dir=r2 train.quiet=false --resume", out, sizeof out), 0, "%s", out);
    cr_assert(strstr(out, "resume_every = 0") && strstr(out, "cannot be resumed"), "%s", out);
}

Test(surprises, start_and_progress_lines_show_what_matters) {
    char out[16384], args[1024], cwd[512];
    cli_write("a.ini", TINY_RNN);
    cr_assert_eq(run("a.ini train.quiet=false train.eval_every=2", out, sizeof out), 0, "%s", out);
    cr_assert(strstr(out, "settings that differ from the defaults"), "%s", out);
    cr_assert(strstr(out, "[train] steps=6 batch_size=2") && !strstr(out, "log_every=1"),
              "defaults listed without --all-settings: %s", out);
    cr_assert(strstr(out, "| val_loss ") && strstr(out, "| grad_clip_coef "), "%s", out);
    cr_assert_eq(run("a.ini train.quiet=false --all-settings", out, sizeof out), 0, "%s", out);
    cr_assert(strstr(out, "log_every=1"), "--all-settings: %s", out);
    cr_assert(getcwd(cwd, sizeof cwd));
    snprintf(args, sizeof args, "%s/configs/ppo_clip.ini train.steps=2", cwd);
    cr_assert_eq(run(args, out, sizeof out), 0, "%s", out);
    const char *p = strstr(out, "step      2/2");
    cr_assert(p && strstr(p, "| episodic_return ") && strstr(p, "| approx_kl "), "%s", out);
    cr_assert(!strstr(p, "| loss "), "PPO's total loss in its progress line: %s", p);
}

/* The shipped configs load without a warning (make recovery printed eight):
 * each is loaded as a run would, then refused by a 1 MiB memory budget
 * before anything trains. The exceptions are configs whose warning is their
 * lesson: the data-parallel pair, which make ddp runs under mpirun, and the
 * AMP demos of a mistake (fp16 without scaling, twice; clipping before unscaling),
 * where a user who copies the config must hear what it does. Each may print
 * that one warning and no other. */
static const struct { const char *config, *warning; } lessons[] = {
    {"ddp_global.ini", "[dist] settings act only under mpirun"},
    {"ddp_local.ini", "[dist] settings act only under mpirun"},
    {"amp_fp16.ini", "precision = fp16 without loss scaling"},
    {"amp_deep_fp16.ini", "precision = fp16 without loss scaling"},
    {"amp_fp16_clip_before_unscale.ini", "clip_before_unscale = true clips the scaled gradient"},
};
Test(surprises, shipped_configs_load_without_warnings) {
    char out[16384], cmd[1024], cwd[512];
    cr_assert(getcwd(cwd, sizeof cwd));
    snprintf(cmd, sizeof cmd, "ls %s/configs/*.ini > %s/list.txt", cwd, cli_dir);
    cr_assert_eq(system(cmd), 0);
    snprintf(cmd, sizeof cmd, "%s/list.txt", cli_dir);
    FILE *f = fopen(cmd, "r");
    cr_assert(f);
    char path[600];
    int n = 0;
    while (fgets(path, sizeof path, f)) {
        path[strcspn(path, "\n")] = '\0';
        snprintf(cmd, sizeof cmd, "%s run.memory_mb=1", path);
        cr_assert_eq(run(cmd, out, sizeof out), 2, "%s: %s", path, out);
        cr_assert(strstr(out, "memory"), "%s:\n%s", path, out);
        const char *base = strrchr(path, '/') + 1, *allowed = NULL;
        for (size_t i = 0; i < sizeof lessons / sizeof *lessons; i++)
            if (!strcmp(base, lessons[i].config)) allowed = lessons[i].warning;
        const char *w = strstr(out, "warning");
        if (allowed && w) /* at most its lesson's warning, once, and nothing else */
            cr_assert(strstr(w, allowed) && !strstr(w + 1, "warning"), "%s:\n%s", path, out);
        else
            cr_assert(!w, "%s:\n%s", path, out);
        n++;
    }
    fclose(f);
    cr_assert(n >= 30, "%d configs", n);
}
