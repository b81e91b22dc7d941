/* test_runs.c: the run as a whole, from outside: the exit-status contract
 * (0 done, 2 bad config or command line, 3 non-finite with on_nonfinite =
 * error, 1 any other failure) and the rule for run names. Runs the built
 * ./train in a fresh temporary folder per test (tests/cli.h). */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"

#define TINY_RNN                                                                            \
    "[model]\ntype = rnn\n[rnn]\nseq_len = 6\nhidden = 4\neval_size = 4\n"                  \
    "[train]\nsteps = 6\nbatch_size = 2\nquiet = true\n[optim]\nkind = sgd\nlr = 0.01\n"

static int run(const char *args, char *err, size_t errlen) { return cli_run(args, err, errlen, 0); }

TestSuite(runs, .init = cli_mkdir, .fini = cli_rmdir);

Test(runs, exit_status_contract) {
    char err[4096];
    cli_write("ok.ini", TINY_RNN);
    cli_write("bad.ini", TINY_RNN "stepz = 1\n");
    cli_write("file", "not a folder\n");
    cr_assert_eq(run("ok.ini", err, sizeof err), 0, "%s", err);
    cr_assert_eq(run("bad.ini", err, sizeof err), 2, "bad config: %s", err);
    cr_assert_eq(run("nope.ini", err, sizeof err), 2, "missing config: %s", err);
    cr_assert_eq(run("", err, sizeof err), 2, "no config: %s", err);
    cr_assert_eq(run("ok.ini --bogus", err, sizeof err), 2, "unknown option: %s", err);
    cr_assert_eq(run("ok.ini --compare", err, sizeof err), 2, "--compare without a path: %s", err);
    cr_assert_eq(run("ok.ini train.steps=x", err, sizeof err), 2, "bad override: %s", err);
    /* the output folder cannot be made: an environment failure, not the config */
    cr_assert_eq(run("ok.ini run.out_dir=file/sub", err, sizeof err), 1, "folder error: %s", err);
    cr_assert(strstr(err, "file/sub"), "%s", err);
    cr_assert_eq(run("--help", err, sizeof err), 0);
    char out[65536], path[512];
    snprintf(path, sizeof path, "%s/stdout.txt", cli_dir);
    FILE *f = fopen(path, "r");
    size_t n = fread(out, 1, sizeof out - 1, f);
    out[n] = '\0';
    fclose(f);
    cr_assert(strstr(out, "Exit status:") && strstr(out, "3  "), "--help lacks the exit statuses");
}

Test(runs, run_name_must_be_plain) {
    char err[4096], args[256];
    cli_write("ok.ini", TINY_RNN);
    cli_write(".ini", TINY_RNN); /* base name "": an empty derived name */
    static const char *const bad[] = {"run.name=..", "run.name=.", "run.name=a/b", "run.name=/abs",
                                      "'run.name=a\tb'", "run.name=../../x"};
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        snprintf(args, sizeof args, "ok.ini %s", bad[i]);
        cr_assert_eq(run(args, err, sizeof err), 2, "%s accepted: %s", bad[i], err);
        cr_assert(strstr(err, "[run] name"), "%s: %s", bad[i], err);
        cr_assert(!cli_exists("runs") && !cli_exists("x"), "%s wrote something", bad[i]);
    }
    cr_assert_eq(run("ok.ini run.name=..", err, sizeof err), 2);
    cr_assert(strstr(err, "plain name"), "the rule is stated: %s", err);
    cr_assert_eq(run(".ini", err, sizeof err), 2, "empty name accepted: %s", err);
    cr_assert(strstr(err, "[run] name"), "%s", err);
    /* a plain name with dots and spaces is fine */
    cr_assert_eq(run("ok.ini 'run.name=my run.v2'", err, sizeof err), 0, "%s", err);
    cr_assert(cli_exists("runs/my run.v2/metrics.csv"));
}

/* Overrides are as strict as files: another model's section and a key given
 * twice are errors, and nothing is written. */
Test(runs, overrides_as_strict_as_files) {
    char err[4096];
    cli_write("ok.ini", TINY_RNN);
    cr_assert_eq(run("ok.ini transformer.d_model=8", err, sizeof err), 2, "%s", err);
    cr_assert(strstr(err, "override 'transformer.d_model=8'") && strstr(err, "does not apply"), "%s", err);
    cr_assert_eq(run("ok.ini train.steps=3 train.steps=4", err, sizeof err), 2, "%s", err);
    cr_assert(strstr(err, "override 'train.steps=4'") && strstr(err, "already set"), "%s", err);
    cr_assert(!cli_exists("runs"), "a refused command line wrote something");
    /* the section that applies follows the model chosen by override */
    cli_write("plain.ini", "[model]\ntype = rnn\n[train]\nsteps = 2\nquiet = true\n");
    cr_assert_eq(run("plain.ini model.type=transformer rnn.hidden=8", err, sizeof err), 2, "%s", err);
    cr_assert(strstr(err, "override 'rnn.hidden=8'"), "%s", err);
}
