/* test_runs.c: the run as a whole, from outside: the exit-status contract
 * (0 done, 2 bad config or command line, 3 non-finite with on_nonfinite =
 * error, 1 any other failure) and the rule for run names. Runs the built
 * ./train in a fresh temporary folder per test (tests/cli.h). */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <signal.h>
#include <string.h>
#include <time.h>

#include "cli.h"
#include "runfolder.h"

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

/* ------------------------------------------------------------ resume */

#define RESUMABLE                                                                          \
    "[model]\ntype = rnn\n[rnn]\nseq_len = 20\nhidden = 16\neval_size = 16\n"              \
    "[train]\nsteps = 300\nbatch_size = 8\nquiet = true\neval_every = 50\n"                \
    "[optim]\nkind = adam\nlr = 0.02\n[run]\nresume_every = 7\n"                       \
    "[recovery]\nenabled = true\nspike_factor = 1.6\nema_beta = 0.98\nwarmup = 20\n"       \
    "snapshot_every = 5\nrollback_steps = 5\nskip_batches = 3\nmax_rollbacks = 40\n"    \
    "[clip]\ngrad = zclip\nlog_param_norms = true\n"

/* A CSV with the column named `drop` left out (time_ms: wall-clock). */
static char *csv_without(const char *rel, const char *drop) {
    char path[512], line[8192];
    snprintf(path, sizeof path, "%s/%s", cli_dir, rel);
    FILE *f = fopen(path, "r");
    cr_assert(f, "missing %s", path);
    size_t cap = 1 << 20, k = 0;
    char *out = malloc(cap);
    int skip = -1;
    for (int row = 0; fgets(line, sizeof line, f); row++) {
        int col = 0;
        for (char *tok = line, *end; tok; tok = end ? end + 1 : NULL, col++) {
            end = strpbrk(tok, ",\n");
            size_t n = end ? (size_t)(end - tok) : strlen(tok);
            if (row == 0 && n == strlen(drop) && !strncmp(tok, drop, n)) skip = col;
            if (col != skip && n) k += (size_t)snprintf(out + k, cap - k, "%.*s,", (int)n, tok);
            if (!end || *end == '\n') break;
        }
        k += (size_t)snprintf(out + k, cap - k, "\n");
    }
    fclose(f);
    return out;
}

/* The identity of dir/resume.bin (inode and change time; 0 when absent): a
 * new value is a new checkpoint (it is written to a temporary name and
 * renamed). */
static long long resume_id(const char *dir) {
    char path[512];
    struct stat sb;
    snprintf(path, sizeof path, "%s/%s/resume.bin", cli_dir, dir);
    if (stat(path, &sb) != 0) return 0;
    return (long long)sb.st_ino * 1000003LL + (long long)sb.st_ctim.tv_sec * 1000000007LL +
           sb.st_ctim.tv_nsec;
}

/* ./train INI run.out_dir=DIR --resume in the test folder, SIGKILLed once it
 * has written `checkpoints` new resume.bin files and then `extra_us` more
 * microseconds have passed (the moment is an event, then a random delay, so
 * a busy machine moves it but never makes it miss: the kill lands inside
 * the run unless the run ends first); returns 1 if it was killed, 0 if it
 * ended (exit 0) first. */
static int run_and_kill(const char *ini, const char *dir, int checkpoints, long extra_us) {
    char out[128];
    snprintf(out, sizeof out, "run.out_dir=%s", dir);
    long long seen = resume_id(dir);
    pid_t pid = fork();
    cr_assert(pid >= 0);
    if (pid == 0) {
        if (chdir(cli_dir) != 0) _exit(99);
        freopen("/dev/null", "w", stdout);
        execl(cli_bin, cli_bin, ini, out, "--resume", (char *)NULL);
        _exit(98);
    }
    int st, n = 0;
    pid_t got = 0;
    while (n < checkpoints && (got = waitpid(pid, &st, WNOHANG)) == 0) {
        usleep(500);
        long long id = resume_id(dir);
        if (id != 0 && id != seen) seen = id, n++;
    }
    if (got == 0) {
        usleep((useconds_t)extra_us);
        kill(pid, SIGKILL);
        got = waitpid(pid, &st, 0);
    }
    cr_assert_eq(got, pid);
    if (WIFSIGNALED(st)) return 1;
    cr_assert(WIFEXITED(st) && WEXITSTATUS(st) == 0, "exit %d", WEXITSTATUS(st));
    return 0;
}

/* Killed at random moments (startup, mid-step, mid-checkpoint, during the
 * plots) and resumed each time, the run ends with the metrics, per-tensor
 * norms and rollbacks of the run never interrupted, and a clean folder. The
 * recovery settings make 40 rollbacks between steps ~190 and ~280, so resumes
 * land between rollbacks and need the restored ring and rollback count. */
Test(runs, sigkill_at_random_moments_then_resume_is_the_same_run, .timeout = 600) {
    char err[4096];
    cli_write("r.ini", RESUMABLE);
    cr_assert_eq(run("r.ini run.out_dir=full", err, sizeof err), 0, "%s", err);
    unsigned seed = 12345;
    int kills = 0, attempts = 0, done = 0;
    /* each part killed after 0-14 new checkpoints (of ~43; 0: at start-up) and
     * 0-20 ms more (mid-step, mid-checkpoint, during the plots); a chain
     * that ends before 4 kills landed starts again from an empty folder */
    while (!(done && kills >= 4) && attempts < 60) {
        if (done) {
            char cmd[512];
            snprintf(cmd, sizeof cmd, "rm -rf %s/k", cli_dir);
            cr_assert_eq(system(cmd), 0);
            done = kills = 0;
        }
        attempts++;
        seed = seed * 1103515245u + 12345u;
        int ckpts = (int)((seed >> 8) % 15);
        seed = seed * 1103515245u + 12345u;
        done = !run_and_kill("r.ini", "k", ckpts, (long)((seed >> 8) % 20000));
        kills += !done;
    }
    cr_assert(done && kills >= 4, "only %d kills landed in %d attempts", kills, attempts);
    cr_log_info("%d SIGKILLs, then resumed to the end", kills);
    cr_assert(!cli_exists("k/" RUNFOLDER_MARKER) && !cli_exists("k/resume.bin"), "not marked complete");
    cr_assert(!cli_exists("k/metrics.csv.tmp") && !cli_exists("k/resume.bin.tmp"));
    static const char *const files[] = {"metrics.csv", "grad_norms.csv", "rollbacks.csv"};
    for (int i = 0; i < 3; i++) {
        char a[64], b[64];
        snprintf(a, sizeof a, "full/%s", files[i]), snprintf(b, sizeof b, "k/%s", files[i]);
        char *x = csv_without(a, "time_ms"), *y = csv_without(b, "time_ms");
        cr_assert(strlen(x) > 100, "%s is short", a);
        cr_assert_str_eq(x, y, "%s differs after %d kills", files[i], kills);
        free(x), free(y);
    }
    cr_assert(cli_exists("k/loss.png") && cli_exists("k/config.ini"));
    /* --resume of the complete run: nothing trained, exit 0 */
    cr_assert_eq(run("r.ini run.out_dir=k --resume", err, sizeof err), 0, "%s", err);
}

/* Interrupt r.ini in folder k once it has left a resume.bin behind. */
static void interrupted_run(void) {
    char err[4096];
    cli_write("r.ini", RESUMABLE);
    cr_assert_eq(run("r.ini run.out_dir=full", err, sizeof err), 0, "%s", err);
    for (int i = 0; i < 20 && !cli_exists("k/resume.bin"); i++) {
        char cmd[512];
        snprintf(cmd, sizeof cmd, "rm -rf %s/k", cli_dir);
        cr_assert_eq(system(cmd), 0);
        run_and_kill("r.ini", "k", 1 + i % 3, 0);
    }
    cr_assert(cli_exists("k/resume.bin") && cli_exists("k/" RUNFOLDER_MARKER));
}

static char *slurp(const char *rel, size_t *len) {
    char path[512];
    snprintf(path, sizeof path, "%s/%s", cli_dir, rel);
    FILE *f = fopen(path, "rb");
    cr_assert(f, "%s", path);
    fseek(f, 0, SEEK_END);
    *len = (size_t)ftell(f);
    rewind(f);
    char *b = malloc(*len + 1);
    cr_assert_eq(fread(b, 1, *len, f), *len);
    b[*len] = '\0';
    fclose(f);
    return b;
}

static void spit(const char *rel, const char *b, size_t len) {
    char path[512];
    snprintf(path, sizeof path, "%s/%s", cli_dir, rel);
    FILE *f = fopen(path, "wb");
    cr_assert(f && fwrite(b, 1, len, f) == len);
    fclose(f);
}

/* A resume that cannot be honest is refused (exit 2), naming the differing
 * keys or what is wrong with the file, and the folder is left as it was. */
Test(runs, resume_refuses_other_settings_and_damaged_files, .timeout = 600) {
    char err[4096];
    interrupted_run();
    size_t mlen, rlen, n;
    char *metrics = slurp("k/metrics.csv", &mlen), *resume = slurp("k/resume.bin", &rlen);
    cr_assert_eq(run("r.ini run.out_dir=k --resume optim.lr=0.03 rnn.hidden=17", err, sizeof err), 2, "%s", err);
    cr_assert(strstr(err, "optim.lr = 0.02 in the checkpoint, 0.03 now") &&
              strstr(err, "rnn.hidden = 16 in the checkpoint, 17 now"), "%s", err);
    cr_assert_eq(run("r.ini run.out_dir=k --resume run.seed=2", err, sizeof err), 2, "%s", err);
    cr_assert(strstr(err, "run.seed = 1 in the checkpoint, 2 now"), "%s", err);
    /* a flipped byte, a cut file, a byte too many */
    resume[rlen / 2] ^= 0x10;
    spit("k/resume.bin", resume, rlen);
    cr_assert_eq(run("r.ini run.out_dir=k --resume", err, sizeof err), 2, "%s", err);
    cr_assert(strstr(err, "corrupt"), "%s", err);
    resume[rlen / 2] ^= 0x10;
    spit("k/resume.bin", resume, rlen - 1);
    cr_assert_eq(run("r.ini run.out_dir=k --resume", err, sizeof err), 2, "%s", err);
    cr_assert(strstr(err, "truncated"), "%s", err);
    char *longer = malloc(rlen + 1);
    memcpy(longer, resume, rlen);
    longer[rlen] = 0;
    spit("k/resume.bin", longer, rlen + 1);
    cr_assert_eq(run("r.ini run.out_dir=k --resume", err, sizeof err), 2, "%s", err);
    cr_assert(strstr(err, "not part of it"), "%s", err);
    free(longer);
    char *now = slurp("k/metrics.csv", &n);
    cr_assert(n == mlen && !memcmp(now, metrics, n), "a refused resume changed metrics.csv");
    cr_assert(cli_exists("k/" RUNFOLDER_MARKER));
    free(now);
    /* the intact file, with settings that do not change the numbers changed */
    spit("k/resume.bin", resume, rlen);
    cr_assert_eq(run("r.ini run.out_dir=k --resume run.plots=false train.quiet=false", err, sizeof err),
                 0, "%s", err);
    char *x = csv_without("full/metrics.csv", "time_ms"), *y = csv_without("k/metrics.csv", "time_ms");
    cr_assert_str_eq(x, y);
    free(x), free(y), free(metrics), free(resume);
}

/* A folder holds one run: a run that fails after it started leaves its own
 * files, marked in progress, and nothing of the run before it; a folder of
 * other files is never written; one folder named two ways is one folder; a
 * comparison of runs that did not all finish is not left behind. */
Test(runs, a_folder_never_mixes_two_runs) {
    char err[4096];
    cli_write("a.ini", TINY_RNN);
    cr_assert_eq(run("a.ini", err, sizeof err), 0, "%s", err);
    cr_assert(cli_exists("runs/a/loss.png") && !cli_exists("runs/a/" RUNFOLDER_MARKER));
    /* the same config, failing at its first step (arena full): exit 1 */
    cr_assert_eq(run("a.ini run.name=a train.arena_mb=1 rnn.seq_len=2000 rnn.hidden=256", err, sizeof err), 1,
                 "%s", err); /* run.name=a: the same folder (overrides would name another) */
    cr_assert(strstr(err, "arena"), "%s", err);
    cr_assert(cli_exists("runs/a/" RUNFOLDER_MARKER), "the failed run is not marked in progress");
    cr_assert(!cli_exists("runs/a/loss.png") && !cli_exists("runs/a/grad_norm.png"),
              "the previous run's plots sit beside the new run's files");
    cr_assert(!cli_exists("runs/a/metrics.csv.tmp"));
    size_t n;
    char *cfg = slurp("runs/a/config.ini", &n);
    cr_assert(strstr(cfg, "arena_mb = 1\n"), "config.ini is not the new run's");
    free(cfg);
    /* a folder of other files */
    char notes[512];
    snprintf(notes, sizeof notes, "%s/notes", cli_dir);
    cr_assert_eq(mkdir(notes, 0777), 0);
    cli_write("notes/thesis.txt", "do not touch\n");
    cr_assert_eq(run("a.ini run.out_dir=notes", err, sizeof err), 1, "%s", err);
    cr_assert(strstr(err, "not a cliplab run"), "%s", err);
    cr_assert(cli_exists("notes/thesis.txt") && !cli_exists("notes/config.ini"));
    /* one folder, two spellings */
    cli_write("b.ini", TINY_RNN "[run]\nout_dir = runs/./a/\n");
    cr_assert_eq(run("a.ini b.ini", err, sizeof err), 2, "%s", err);
    cr_assert(strstr(err, "would both write"), "%s", err);
    /* a comparison is of runs that all finished */
    cli_write("c.ini", TINY_RNN);
    cr_assert_eq(run("a.ini c.ini", err, sizeof err), 0, "%s", err);
    cr_assert(cli_exists("runs/compare_a_vs_c.png"));
    cli_write("c.ini", "[model]\ntype = rnn\n[rnn]\nseq_len = 2000\nhidden = 256\neval_size = 4\n"
                       "[train]\nsteps = 6\nbatch_size = 2\nquiet = true\narena_mb = 1\n");
    cr_assert_neq(run("a.ini c.ini", err, sizeof err), 0, "%s", err);
    cr_assert(!cli_exists("runs/compare_a_vs_c.png"), "a comparison of the runs before is left behind");
}

/* A configuration whose memory would outgrow the budget is refused before
 * anything is written, naming the keys that drive it. */
Test(runs, memory_budget_refuses_before_writing) {
    char err[4096];
    cli_write("ok.ini", TINY_RNN);
    /* the recovery ring: a checkpoint every step, kept for 10^8 steps */
    cr_assert_eq(run("ok.ini train.steps=100000000 recovery.enabled=true recovery.snapshot_every=1 "
                     "recovery.rollback_steps=100000000", err, sizeof err), 2, "%s", err);
    cr_assert(strstr(err, "recovery ring") && strstr(err, "[recovery] snapshot_every") &&
              strstr(err, "80% of physical memory"), "%s", err);
    /* a budget set by hand: the default 256 MiB arena does not fit in 64 */
    cr_assert_eq(run("ok.ini run.memory_mb=64", err, sizeof err), 2, "%s", err);
    cr_assert(strstr(err, "budget of 64 MiB ([run] memory_mb)") && strstr(err, "arena 256 MiB ([train] arena_mb)"),
              "%s", err);
    cr_assert(!cli_exists("runs"), "a refused run wrote something");
    cr_assert_eq(run("ok.ini run.memory_mb=64 train.arena_mb=16", err, sizeof err), 0, "%s", err);
}
