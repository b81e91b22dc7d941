/* test_sweep.c: ./train --sweep. The spec parser (good and bad specs, the
 * product and the run names), refusals before anything runs, resume after a
 * killed sweep, results independent of -j, 3 MPI ranks equal to one host, and
 * the summary's numbers against tests/ref/ref_sweep.py's own computation from
 * the runs' metrics.csv. Sweeps run the built ./train on a tiny RNN whose
 * unclipped runs diverge, so every status appears. */
#include <criterion/criterion.h>
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <sys/prctl.h>
#include <time.h>
#include <unistd.h>

#include "cli.h"
#include "model.h"
#include "sweep.h"
#include "tfile.h"
#include "tskip.h"

/* ------------------------------------------------------------ parser */

static int parse(SweepSpec *s, const char *line, char *err) {
    char buf[2048], *argv[64];
    int argc = 0;
    snprintf(buf, sizeof buf, "%s", line);
    for (char *p = strtok(buf, " "); p; p = strtok(NULL, " ")) argv[argc++] = p;
    int rc = sweep_parse(s, argc, argv, err, 1024);
    return rc;
}

Test(sweep_spec, list_log_and_lin_values) {
    SweepAxis a = {0};
    char err[512];
    cr_assert_eq(sweep_parse_values(&a, "log:0.01:100:9", err, sizeof err), 0, "%s", err);
    const char *want[] = {"0.01", "0.03162", "0.1", "0.3162", "1", "3.162", "10", "31.62", "100"};
    cr_assert_eq(a.nvals, 9);
    for (int i = 0; i < 9; i++) cr_assert_str_eq(a.vals[i], want[i]);
    cr_assert(a.numeric);
    SweepAxis b = {0};
    cr_assert_eq(sweep_parse_values(&b, "lin:0:1:5", err, sizeof err), 0, "%s", err);
    cr_assert_str_eq(b.vals[1], "0.25");
    cr_assert_str_eq(b.vals[4], "1");
    SweepAxis c = {0};
    cr_assert_eq(sweep_parse_values(&c, "value,{w_out,b_out},agc", err, sizeof err), 0, "%s", err);
    cr_assert_eq(c.nvals, 3);
    cr_assert_str_eq(c.vals[1], "w_out,b_out");
    cr_assert(!c.numeric);
    sweep_axis_free(&a), sweep_axis_free(&b), sweep_axis_free(&c);
}

Test(sweep_spec, an_override_with_commas_is_one_value) {
    SweepSpec s;
    char err[1024];
    cr_assert_eq(parse(&s, "a.ini clip.exclude=w_out,b_out --vary clip.max_norm=0.5,1 --seeds 1:3", err),
                 0, "%s", err);
    cr_assert_eq(s.nsets, 1);
    cr_assert_str_eq(s.sets[0], "clip.exclude=w_out,b_out");
    cr_assert_eq(s.nruns, 6, "2 values x 3 seeds, not %d", s.nruns);
    char *args[300], buf[8192];
    int n = sweep_run_args(&s, &s.runs[0], args, buf, sizeof buf);
    cr_assert_str_eq(args[0], "clip.exclude=w_out,b_out");
    cr_assert_str_eq(args[1], "clip.max_norm=0.5");
    cr_assert_str_eq(args[2], "run.seed=1");
    cr_assert_str_eq(args[n - 1], "run.out_dir=runs/a_sweep/max_norm=0.5-seed1");
    sweep_free(&s);
}

Test(sweep_spec, product_order_and_names) {
    SweepSpec s;
    char err[1024];
    cr_assert_eq(parse(&s, "cfg/x.ini --name demo --seeds 1,4 --vary optim.lr=0.1,0.2 --group g "
                           "clip.grad=global_norm --vary clip.max_norm=1,2,3 --group none clip.grad=none",
                       err), 0, "%s", err);
    /* group g: lr(2) x max_norm(3) x seeds(2) = 12; group none: lr(2) x seeds(2) = 4 */
    cr_assert_eq(s.nruns, 16);
    cr_assert_str_eq(s.out_dir, "runs/demo");
    cr_assert_str_eq(s.runs[0].name, "g-lr=0.1-max_norm=1-seed1");
    cr_assert_str_eq(s.runs[1].name, "g-lr=0.1-max_norm=1-seed4");
    cr_assert_str_eq(s.runs[2].name, "g-lr=0.1-max_norm=2-seed1");
    cr_assert_str_eq(s.runs[6].name, "g-lr=0.2-max_norm=1-seed1");
    cr_assert_str_eq(s.runs[12].name, "none-lr=0.1-seed1");
    cr_assert_str_eq(s.runs[15].name, "none-lr=0.2-seed4");
    for (int i = 0; i < s.nruns; i++)
        for (int j = 0; j < i; j++) cr_assert_str_neq(s.runs[i].name, s.runs[j].name);
    char *args[300], buf[8192];
    int n = sweep_run_args(&s, &s.runs[12], args, buf, sizeof buf);
    cr_assert_eq(n, 5);
    cr_assert_str_eq(args[0], "clip.grad=none");
    cr_assert_str_eq(args[1], "optim.lr=0.1");
    sweep_free(&s);
}

Test(sweep_spec, same_short_key_in_two_sections_keeps_the_section) {
    SweepSpec s;
    char err[1024];
    cr_assert_eq(parse(&s, "a.ini --vary optim.lr=1,2 --vary other.lr=3", err), 0, "%s", err);
    cr_assert_str_eq(s.runs[0].name, "optim.lr=1-other.lr=3");
    sweep_free(&s);
}

static void expect_bad(const char *line, const char *needle) {
    SweepSpec s;
    char err[1024] = "";
    cr_assert_neq(parse(&s, line, err), 0, "accepted: %s", line);
    cr_assert(strstr(err, "cliplab: error: "), "%s", err);
    cr_assert(strstr(err, needle), "'%s': message lacks '%s': %s", line, needle, err);
    sweep_free(&s);
}

Test(sweep_spec, bad_specs_are_refused_with_what_is_accepted) {
    expect_bad("--vary clip.max_norm=1,2", "no base config");
    expect_bad("a.ini --vary clip.max_norm", "section.key=VALUES");
    expect_bad("a.ini --vary max_norm=1,2", "section.key=VALUES");
    expect_bad("a.ini --vary clip.max_norm=", "empty list");
    expect_bad("a.ini --vary clip.max_norm=1,,2", "empty value");
    expect_bad("a.ini --vary clip.max_norm=1,2,", "trailing comma");
    expect_bad("a.ini --vary clip.max_norm=1,1", "listed twice");
    expect_bad("a.ini --vary clip.max_norm=log:0:1:5", "LO > 0");
    expect_bad("a.ini --vary clip.max_norm=log:1:0.1:5", "LO must be below HI");
    expect_bad("a.ini --vary clip.max_norm=log:0.1:1", "log:LO:HI:N");
    expect_bad("a.ini --vary clip.max_norm=log:0.1:1:1", "accepted: 2 to 1000");
    expect_bad("a.ini --vary clip.max_norm=log:0.1:1:x", "log:LO:HI:N");
    expect_bad("a.ini --vary clip.max_norm=log:1:1.0001:9", "4 significant digits");
    expect_bad("a.ini --vary clip.exclude={w_out,b_out", "closing");
    expect_bad("a.ini --vary clip.max_norm=1 --vary clip.max_norm=2", "swept twice");
    expect_bad("a.ini clip.max_norm=1 --vary clip.max_norm=1,2", "both swept");
    expect_bad("a.ini --vary run.seed=1,2", "--seeds");
    expect_bad("a.ini run.out_dir=x", "run.out_dir");
    expect_bad("a.ini --seeds 5:1", "FIRST:LAST");
    expect_bad("a.ini --seeds 1,x", "not a seed");
    expect_bad("a.ini --seeds 1:3 --seeds 4", "twice");
    expect_bad("a.ini --group a --group a", "given twice");
    expect_bad("a.ini --name a/b", "no '/'");
    expect_bad("a.ini -j 0", "1 to 1024");
    expect_bad("a.ini --x clip.max_norm", "not a numeric swept key");
    expect_bad("a.ini --vary clip.grad=value,norm --x clip.grad", "not a numeric swept key");
    expect_bad("a.ini --frobnicate", "unknown sweep option");
    expect_bad("a.ini b.ini", "second config");
    expect_bad("a.ini --seeds", "needs a value");
    expect_bad("a.ini nope.sweep", "nope.sweep");
}

Test(sweep_spec, median_matches_numpy) {
    TFile *tf = tfile_load("ref_sweep");
    int n = tfile_i32(tf, "ncases")[0];
    for (int i = 0; i < n; i++) {
        char k1[32], k2[32];
        snprintf(k1, sizeof k1, "in%d@f64", i);
        snprintf(k2, sizeof k2, "median%d@f64", i);
        const TRec *r = tfile_get(tf, k1);
        double *x = malloc(r->n * sizeof *x);
        memcpy(x, tfile_f64(tf, k1), r->n * sizeof *x);
        double got = sweep_median(x, r->n), want = tfile_f64(tf, k2)[0];
        if (isnan(want)) cr_assert(isnan(got), "case %d: %g, numpy NaN", i, got);
        else cr_assert_float_eq(got, want, 1e-12, "case %d: %.17g vs numpy %.17g", i, got, want);
        free(x);
    }
    tfile_free(tf);
}

/* ------------------------------------------------------------ ./train --sweep */

/* lr 0.5 without clipping diverges at step ~26; with clipping it trains. */
#define TINY                                                                               \
    "[model]\ntype = rnn\n[rnn]\nseq_len = 10\nhidden = 8\neval_size = 16\n"               \
    "[train]\nsteps = 40\nbatch_size = 4\neval_every = 10\nlog_every = 1\n"                \
    "[optim]\nkind = sgd\nlr = 0.5\n[clip]\ngrad = global_norm\n[run]\nplots = false\n"

#define TINY_SWEEP                                                                         \
    "tiny.ini   # base config\n--seeds 1:2\n--group clip\n"                              \
    "--vary clip.max_norm=log:0.1:10:3\n--group none\nclip.grad=none\n"

static char *slurp(const char *rel, size_t *len) {
    char path[1024];
    snprintf(path, sizeof path, "%s/%s", cli_dir, rel);
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    char *b = malloc((size_t)n + 1);
    size_t got = fread(b, 1, (size_t)n, f);
    b[got] = '\0';
    fclose(f);
    if (len) *len = got;
    return b;
}

/* The text of a CSV without one named column (time columns differ between runs). */
static char *without_column(const char *text, const char *col) {
    char *out = calloc(strlen(text) + 1, 1);
    const char *eol = strchr(text, '\n');
    int drop = -1, c = 0;
    for (const char *p = text; p < eol; c++) {
        const char *q = p + strcspn(p, ",\n");
        if ((size_t)(q - p) == strlen(col) && !strncmp(p, col, (size_t)(q - p))) drop = c;
        p = *q == ',' ? q + 1 : q;
        if (*q == '\n') break;
    }
    cr_assert(drop >= 0, "no column %s", col);
    size_t k = 0;
    for (const char *p = text; *p;) {
        c = 0;
        while (*p && *p != '\n') {
            const char *q = p + strcspn(p, ",\n");
            if (c != drop) {
                if (k && out[k - 1] != '\n') out[k++] = ',';
                memcpy(out + k, p, (size_t)(q - p));
                k += (size_t)(q - p);
            }
            c++;
            p = *q == ',' ? q + 1 : q;
        }
        if (*p == '\n') out[k++] = *p++;
    }
    return out;
}

static const char *tiny_runs[] = {"clip-max_norm=0.1-seed1", "clip-max_norm=0.1-seed2",
                                  "clip-max_norm=1-seed1",   "clip-max_norm=1-seed2",
                                  "clip-max_norm=10-seed1",  "clip-max_norm=10-seed2",
                                  "none-seed1",              "none-seed2"};

TestSuite(sweep, .init = cli_mkdir, .fini = cli_rmdir, .timeout = 900);

Test(sweep, runs_writes_statuses_and_summary) {
    cli_write("tiny.ini", TINY);
    cli_write("tiny.sweep", TINY_SWEEP);
    char out[65536];
    cr_assert_eq(cli_run("--sweep tiny.sweep -j 2", out, sizeof out, 1), 0, "%s", out);
    for (size_t i = 0; i < sizeof tiny_runs / sizeof *tiny_runs; i++) {
        char rel[200];
        snprintf(rel, sizeof rel, "runs/tiny/%s.result.txt", tiny_runs[i]);
        cr_assert(cli_exists(rel), "%s missing", rel);
    }
    char *csv = slurp("runs/tiny/sweep.csv", NULL);
    cr_assert(csv);
    cr_assert(strstr(csv, "run,group,clip.max_norm,seed,status,final_val_loss,best_val_loss,"
                          "grad_clip_frac,median_grad_norm,wall_s\n"), "%s", csv);
    cr_assert(strstr(csv, "clip-max_norm=1-seed1,clip,1,1,ok,"), "%s", csv);
    cr_assert(strstr(csv, "none-seed1,none,,1,diverged at step "), "%s", csv);
    free(csv);
    cr_assert(cli_exists("runs/tiny/summary.png"));
    cr_assert(cli_exists("runs/tiny/summary.csv"));
    /* progress is the sweep's, one line per finished run, not the runs' own lines */
    cr_assert(strstr(out, "8/8 done"), "%s", out);
    cr_assert(!strstr(out, "steps/s"), "a run's own progress leaked into the sweep's:\n%s", out);
    /* the numbers against Python's computation from the runs' metrics.csv */
    char cmd[1024];
    snprintf(cmd, sizeof cmd, "/usr/bin/python3 tests/ref/ref_sweep.py check %s/runs/tiny", cli_dir);
    cr_assert_eq(system(cmd), 0, "ref_sweep.py found mismatches (above)");
}

Test(sweep, a_failing_run_does_not_stop_the_others) {
    /* the failing run: a held-out set too big for a 1 MB arena, an error that
     * only shows when the run evaluates (the config loads) */
    cli_write("tiny.ini", TINY);
    char out[65536];
    int rc = cli_run("--sweep tiny.ini --name f --vary train.arena_mb=1,64 rnn.eval_size=20000 -j 2",
                     out, sizeof out, 1);
    cr_assert_eq(rc, 1, "a failed run makes the sweep exit 1: %s", out);
    char *csv = slurp("runs/f/sweep.csv", NULL);
    cr_assert(csv, "sweep.csv written even when a run failed");
    cr_assert(strstr(csv, "arena_mb=1,,1,,error (exit 1),nan,nan"), "%s", csv);
    cr_assert(strstr(csv, "arena_mb=64,,64,,ok,"), "%s", csv);
    char *log = slurp("runs/f/arena_mb=1.log.txt", NULL);
    cr_assert(log && strstr(log, "arena"), "the run's error is in its log.txt: %s", log ? log : "");
    free(log);
    free(csv);
}

Test(sweep, a_bad_spec_or_config_writes_nothing) {
    cli_write("tiny.ini", TINY);
    char out[8192];
    cr_assert_eq(cli_run("--sweep tiny.ini --vary clip.max_norm=log:0.1:10", out, sizeof out, 1), 2);
    cr_assert(strstr(out, "log:LO:HI:N"), "%s", out);
    /* every value is checked by the strict config loader before any run starts */
    cr_assert_eq(cli_run("--sweep tiny.ini --vary clip.max_norm=1,-1", out, sizeof out, 1), 2);
    cr_assert(strstr(out, "max_norm"), "%s", out);
    cr_assert(strstr(out, "nothing was run"), "%s", out);
    cr_assert_eq(cli_run("--sweep tiny.ini --vary clip.max_nrom=1,2", out, sizeof out, 1), 2);
    cr_assert(strstr(out, "max_nrom"), "%s", out);
    cr_assert(!cli_exists("runs"), "a refused sweep must write nothing");
}

static long mtime_ns(const char *rel) {
    char path[1024];
    struct stat sb;
    snprintf(path, sizeof path, "%s/%s", cli_dir, rel);
    if (stat(path, &sb) != 0) return -1;
    return (long)sb.st_mtim.tv_sec * 1000000000L + sb.st_mtim.tv_nsec;
}

Test(sweep, resumes_after_being_killed) {
    /* longer runs, one worker, so the kill lands with runs complete and one in flight */
    cli_write("tiny.ini", TINY);
    const char *args = "--sweep tiny.ini --name k --vary clip.max_norm=0.5,1,2,4,8,16 train.steps=600";
    char cmd[2048];
    snprintf(cmd, sizeof cmd, "cd %s && exec %s %s -j 1 >killed.txt 2>&1", cli_dir, cli_bin, args);
    /* the sweep's workers, orphaned by the kill, become this process's
     * children, so the test can wait for their end (an event) instead of
     * sleeping and hoping they are gone */
    cr_assert_eq(prctl(PR_SET_CHILD_SUBREAPER, 1), 0);
    int complete = 0;
    for (int attempt = 0; attempt < 5; attempt++) { /* a kill that came too late: again */
        snprintf(cmd + 1024, 1024, "rm -rf %s/runs", cli_dir);
        cr_assert_eq(system(cmd + 1024), 0);
        pid_t pid = fork();
        cr_assert(pid >= 0);
        if (pid == 0) {
            setpgid(0, 0); /* the sweep and its workers: one group to kill */
            execl("/bin/sh", "sh", "-c", cmd, (char *)NULL);
            _exit(127);
        }
        setpgid(pid, pid);
        complete = 0;
        for (int tries = 0; tries < 60000 && complete < 2; tries++) {
            struct timespec ts = {0, 10 * 1000 * 1000};
            nanosleep(&ts, NULL);
            complete = cli_exists("runs/k/max_norm=0.5.result.txt") + cli_exists("runs/k/max_norm=1.result.txt");
        }
        cr_assert_eq(complete, 2, "the first two runs never completed");
        kill(-pid, SIGKILL);
        while (waitpid(-pid, NULL, 0) > 0) {} /* the sweep, then its orphaned workers */
        if (!cli_exists("runs/k/max_norm=16.result.txt")) break;
    }
    cr_assert(!cli_exists("runs/k/sweep.csv"), "killed before the end: no summary yet");
    cr_assert(!cli_exists("runs/k/max_norm=16.result.txt"), "the kill came too late to test resume");
    long t0 = mtime_ns("runs/k/max_norm=0.5/metrics.csv");
    char *before = slurp("runs/k/max_norm=0.5/metrics.csv", NULL);
    char out[65536];
    cr_assert_eq(cli_run(args, out, sizeof out, 1), 0, "%s", out);
    cr_assert(strstr(out, "k: "), "%s", out);
    int skipped = 0;
    const char *m = strstr(out, "runs already complete");
    cr_assert(m, "resume did not report skipped runs:\n%s", out);
    while (m > out && m[-1] != '\n') m--;
    cr_assert_eq(sscanf(m, "sweep k: %d of 6 runs", &skipped), 1, "%s", m);
    cr_assert(skipped >= 2 && skipped < 6, "skipped %d of 6:\n%s", skipped, out);
    cr_assert_eq(mtime_ns("runs/k/max_norm=0.5/metrics.csv"), t0, "a complete run was run again");
    char *after = slurp("runs/k/max_norm=0.5/metrics.csv", NULL);
    cr_assert_str_eq(before, after);
    char *csv = slurp("runs/k/sweep.csv", NULL);
    int ok = 0;
    for (const char *p = csv; (p = strstr(p, ",ok,")); p++) ok++;
    cr_assert_eq(ok, 6, "every run complete after resuming:\n%s", csv);
    /* a second resume runs nothing */
    cr_assert_eq(cli_run(args, out, sizeof out, 1), 0, "%s", out);
    cr_assert(strstr(out, "6 of 6 runs already complete"), "%s", out);
    free(before), free(after), free(csv);
}

/* Run the tiny sweep in subfolder sub with the given prefix/suffix (mpirun, -j). */
static void tiny_sweep_in(const char *sub, const char *prefix, const char *jobs) {
    char cmd[2048];
    snprintf(cmd, sizeof cmd, "cd %s && mkdir -p %s && cp tiny.ini tiny.sweep %s/ && cd %s && "
             "%s %s --sweep tiny.sweep %s >out.txt 2>&1", cli_dir, sub, sub, sub, prefix, cli_bin, jobs);
    int st = system(cmd);
    char rel[256];
    snprintf(rel, sizeof rel, "%s/out.txt", sub);
    char *o = slurp(rel, NULL);
    cr_assert(WIFEXITED(st) && WEXITSTATUS(st) == 0, "%s failed:\n%s", cmd, o ? o : "");
    free(o);
}

static void same_results(const char *a, const char *b) {
    char ra[512], rb[512];
    for (size_t i = 0; i < sizeof tiny_runs / sizeof *tiny_runs; i++) {
        snprintf(ra, sizeof ra, "%s/runs/tiny/%s/metrics.csv", a, tiny_runs[i]);
        snprintf(rb, sizeof rb, "%s/runs/tiny/%s/metrics.csv", b, tiny_runs[i]);
        char *x = slurp(ra, NULL), *y = slurp(rb, NULL);
        cr_assert(x && y, "%s or %s missing", ra, rb);
        char *x2 = without_column(x, "time_ms"), *y2 = without_column(y, "time_ms");
        cr_assert(strcmp(x2, y2) == 0, "%s differs between %s and %s", tiny_runs[i], a, b);
        free(x), free(y), free(x2), free(y2);
    }
    snprintf(ra, sizeof ra, "%s/runs/tiny/sweep.csv", a);
    snprintf(rb, sizeof rb, "%s/runs/tiny/sweep.csv", b);
    char *x = slurp(ra, NULL), *y = slurp(rb, NULL);
    char *x2 = without_column(x, "wall_s"), *y2 = without_column(y, "wall_s");
    cr_assert_str_eq(x2, y2, "sweep.csv differs between %s and %s", a, b);
    snprintf(ra, sizeof ra, "%s/runs/tiny/summary.csv", a);
    snprintf(rb, sizeof rb, "%s/runs/tiny/summary.csv", b);
    char *s1 = slurp(ra, NULL), *s2 = slurp(rb, NULL);
    cr_assert_str_eq(s1, s2, "summary.csv differs between %s and %s", a, b);
    free(x), free(y), free(x2), free(y2), free(s1), free(s2);
}

Test(sweep, results_do_not_depend_on_workers) {
    cli_write("tiny.ini", TINY);
    cli_write("tiny.sweep", TINY_SWEEP);
    tiny_sweep_in("j1", "", "-j 1");
    tiny_sweep_in("j3", "", "-j 3");
    same_results("j1", "j3");
}

Test(sweep, mpi_three_ranks_equal_one_host) {
#ifndef CLIPLAB_MPI
    tskip("built without Open MPI (pkg-config ompi-c not found when it was compiled): `make deps` "
          "installs openmpi-bin and libopenmpi-dev; then `make clean && make test`");
#else
    cli_write("tiny.ini", TINY);
    cli_write("tiny.sweep", TINY_SWEEP);
    tiny_sweep_in("local", "", "-j 2");
    /* Under ASan (make test-asan) Open MPI's own allocations left at exit would
     * fail the ranks, so leak detection is off in this test only (other ASan
     * checks stay on); the same sweep and worker code is leak-checked by the
     * tests above, which run without MPI. */
    tiny_sweep_in("mpi", "ASAN_OPTIONS=detect_leaks=0 mpirun --oversubscribe --allow-run-as-root -np 3", "");
    char *o = slurp("mpi/out.txt", NULL);
    cr_assert(strstr(o, "rank 2 of 3"), "not 3 ranks:\n%s", o);
    free(o);
    same_results("local", "mpi");
#endif
}

Test(sweep, help_documents_the_syntax) {
    char out[256];
    cr_assert_eq(cli_run("--help", out, sizeof out, 0), 0);
    size_t n;
    char *help = slurp("stdout.txt", &n);
    const char *want[] = {"--sweep", "--vary section.key=VALUES", "clip.exclude=w_out,b_out",
                          "log:LO:HI:N", "--seeds", "--group", "-j N", "mpirun"};
    for (size_t i = 0; i < sizeof want / sizeof *want; i++)
        cr_assert(strstr(help, want[i]), "--help lacks '%s'", want[i]);
    free(help);
}

/* ------------------------------------------------------------ summaries, both directions */

/* A synthetic sweep (no training): 4 thresholds x 5 seeds, each run's metrics.csv
 * written here, so the summary's choices can be checked for a metric where lower
 * is better and for one where higher is better. Per x (finals of the runs that
 * neither diverged nor failed; D diverged, E failed):
 *   x=1: 3 1 4 1.5 9           median 3
 *   x=2: 5 2 7, D D            diverged as worst: lower 7, higher 2
 *   x=4: 1 2 3, D, E           diverged as worst: lower (2+3)/2, higher (1+2)/2
 *   x=8: D D D 5 6             diverged as worst: lower +inf, higher -inf
 * Each run logs its metric as final+2, final-1, nan (not evaluated), final, so its
 * best is final-1 (lower) or final+2 (higher). */
static const double synth_final[4][5] = {
    {3, 1, 4, 1.5, 9}, {NAN, NAN, 5, 2, 7}, {1, 2, 3, NAN, 0}, {NAN, NAN, NAN, 5, 6}};

static void synth_run(const char *dir, const char *metric, double final, int diverged) {
    char path[1200];
    snprintf(path, sizeof path, "%s/metrics.csv", dir);
    cr_assert(mkdir(dir, 0755) == 0, "%s", dir);
    FILE *f = fopen(path, "w");
    cr_assert(f);
    fprintf(f, "step,loss,grad_norm,grad_clip_frac,%s\n", metric);
    fprintf(f, "1,2.5,1.5,0.5,%.17g\n2,2.0,2.5,0.25,%.17g\n3,1.5,0.5,0.5,nan\n", final + 2, final - 1);
    if (diverged) fprintf(f, "4,nan,inf,0.75,nan\n");
    else fprintf(f, "4,1.0,1.25,0.75,%.17g\n", final);
    fclose(f);
}

/* The summary.csv value of column col at x (the one line "all runs"). */
static double summary_value(const char *csv, const char *col, const char *x) {
    const char *nl = strchr(csv, '\n');
    int want = -1, c = 0;
    for (const char *p = csv; p < nl; c++) {
        size_t n = strcspn(p, ",\n");
        if (n == strlen(col) && !strncmp(p, col, n)) want = c;
        if (p[n] != ',') break;
        p += n + 1;
    }
    cr_assert(want >= 0, "summary.csv has no column %s", col);
    for (const char *p = nl + 1; *p; p += strcspn(p, "\n") + (p[strcspn(p, "\n")] == '\n')) {
        char line[1024];
        snprintf(line, sizeof line, "%.*s", (int)strcspn(p, "\n"), p);
        char *tok[32];
        int k = 0;
        for (char *t = line, *q; t && k < 32; t = q) {
            q = strchr(t, ',');
            if (q) *q++ = '\0';
            tok[k++] = t;
        }
        if (k > want && !strcmp(tok[2], x)) return strtod(tok[want], NULL);
    }
    cr_assert_fail("summary.csv has no x = %s", x);
    return NAN;
}

static void synth_sweep(const char *metric, int higher) {
    SweepSpec s;
    char err[1024];
    cr_assert_eq(parse(&s, "synth.ini --vary clip.max_norm=1,2,4,8 --seeds 1:5 --name synth", err), 0,
                 "%s", err);
    cr_assert_eq(s.nruns, 20);
    snprintf(s.out_dir, sizeof s.out_dir, "%s/%s", cli_dir, metric);
    cr_assert(mkdir(s.out_dir, 0755) == 0);
    snprintf(s.metric, sizeof s.metric, "%s", metric);
    s.metric_higher = higher;
    s.map = 1; /* the map's cells are the same medians, diverged as worst */
    for (int i = 0; i < s.nruns; i++) {
        SweepRun *r = &s.runs[i];
        int xi = (int)log2(strtod(r->val[0], NULL)), seed = (int)r->seed - 1;
        double final = synth_final[xi][seed];
        int failed = xi == 2 && seed == 4;
        char dir[1100], csv[1200];
        snprintf(dir, sizeof dir, "%s/%s", s.out_dir, r->name);
        synth_run(dir, metric, isnan(final) ? 1 : final, isnan(final));
        snprintf(csv, sizeof csv, "%s/metrics.csv", dir);
        sweep_read_metrics(r, csv, metric, higher, failed ? 1 : 0);
        r->done = 1, r->wall_s = 1;
        /* each run's best by hand */
        if (!isnan(final) && !failed)
            cr_assert(r->best_metric == (higher ? final + 2 : final - 1) && r->final_metric == final,
                      "%s: best %g final %g", r->name, r->best_metric, r->final_metric);
    }
    cr_assert_eq(sweep_write_summary(&s), 0);
    char rel[300], col[200];
    snprintf(rel, sizeof rel, "%s/summary.csv", metric);
    char *csv = slurp(rel, NULL);
    cr_assert(csv);
    snprintf(col, sizeof col, "median_final_%s", metric);
    cr_assert(summary_value(csv, col, "1") == 3 && summary_value(csv, col, "2") == 5);
    snprintf(col, sizeof col, "median_final_%s_diverged_as_worst", metric);
    double w1 = summary_value(csv, col, "1"), w2 = summary_value(csv, col, "2"),
           w4 = summary_value(csv, col, "4"), w8 = summary_value(csv, col, "8");
    cr_assert(w1 == 3, "x=1 %g", w1);
    cr_assert(w2 == (higher ? 2 : 7), "%s (%s is better), x=2: %g", metric, higher ? "higher" : "lower", w2);
    cr_assert(w4 == (higher ? 1.5 : 2.5), "%s (%s is better), x=4: %g", metric, higher ? "higher" : "lower", w4);
    cr_assert(w8 == (higher ? -INFINITY : INFINITY), "%s, x=8: %g", metric, w8);
    free(csv);
    /* and everything against Python's computation, which knows each metric's direction */
    char cmd[1200];
    snprintf(cmd, sizeof cmd, "/usr/bin/python3 tests/ref/ref_sweep.py check %s", s.out_dir);
    cr_assert_eq(system(cmd), 0, "ref_sweep.py found mismatches for %s (above)", metric);
    sweep_free(&s);
}

/* Every model's main metric, in the direction its ModelDef declares (PPO's
 * return, MobileNet's accuracy and the WGAN's share are higher-is-better). */
Test(sweep, summaries_for_every_models_metric_and_direction) {
    int seen_higher = 0, seen_lower = 0;
    for (int i = 0; i < model_registry_count; i++) {
        const ModelDef *d = model_registry[i];
        const char *metric = d->main_metric ? d->main_metric : "val_loss";
        char rel[200];
        snprintf(rel, sizeof rel, "%s", metric);
        if (cli_exists(rel)) continue; /* same metric as an earlier model */
        synth_sweep(metric, d->main_metric_higher);
        seen_higher += d->main_metric_higher, seen_lower += !d->main_metric_higher;
    }
    cr_assert(seen_higher >= 3 && seen_lower >= 1, "%d higher, %d lower", seen_higher, seen_lower);
}
