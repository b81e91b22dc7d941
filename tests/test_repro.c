/* test_repro.c: the same commit, config and seed give the same metrics.csv
 * whatever BLAS kernel the machine would pick (blas_pin.c). Each run is started
 * with another OPENBLAS_CORETYPE, as a machine with that CPU would load it; the
 * kernels this CPU can run are tried. The same runs with CLIPLAB_BLAS=native
 * (the machine's kernel, unpinned) must differ, or the comparison would prove
 * nothing on this machine. */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"

/* metrics.csv without its time_ms column (wall time differs between runs) */
static char *metrics_without_time(const char *dir) {
    char path[512];
    snprintf(path, sizeof path, "%s/%s/metrics.csv", cli_dir, dir);
    FILE *f = fopen(path, "r");
    cr_assert(f, "%s missing", path);
    size_t cap = 1 << 20, n = 0;
    char *out = malloc(cap), line[4096];
    int tcol = -1;
    while (fgets(line, sizeof line, f)) {
        int col = 0;
        for (char *tok = line, *end; tok; tok = end ? end + 1 : NULL, col++) {
            end = strpbrk(tok, ",\n");
            size_t len = end ? (size_t)(end - tok) : strlen(tok);
            if (tcol < 0 && len == 7 && !strncmp(tok, "time_ms", 7)) tcol = col;
            if (col == tcol) continue;
            cr_assert(n + len + 2 < cap);
            memcpy(out + n, tok, len);
            n += len;
            out[n++] = ',';
            if (!end || *end == '\n') break;
        }
        out[n++] = '\n';
    }
    fclose(f);
    out[n] = '\0';
    cr_assert(tcol >= 0, "no time_ms column in %s", path);
    return out;
}

struct core { const char *name, *feature; };

static int cpu_runs(const char *feature) {
    __builtin_cpu_init();
    if (!strcmp(feature, "sse3")) return __builtin_cpu_supports("sse3");
    if (!strcmp(feature, "avx")) return __builtin_cpu_supports("avx");
    if (!strcmp(feature, "avx2")) return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
    if (!strcmp(feature, "avx512f")) return __builtin_cpu_supports("avx512f");
    return 0;
}

/* Runs ./train ARGS once per kernel this CPU can run, with ENV before it;
 * returns how many different metrics.csv the runs wrote (time_ms aside). */
static int distinct_runs(const char *env, const char *args, int *nruns) {
    static const struct core cores[] = {
        {"Prescott", "sse3"}, {"Sandybridge", "avx"}, {"Haswell", "avx2"}, {"SkylakeX", "avx512f"}};
    char *seen[4], cwd[256];
    int nseen = 0;
    *nruns = 0;
    cr_assert(getcwd(cwd, sizeof cwd));
    for (size_t i = 0; i < sizeof cores / sizeof *cores; i++) {
        if (!cpu_runs(cores[i].feature)) continue;
        char dir[64], cmd[2048];
        snprintf(dir, sizeof dir, "%s_%s", env[0] ? "native" : "pinned", cores[i].name);
        snprintf(cmd, sizeof cmd,
                 "cd %s && env %s OPENBLAS_CORETYPE=%s %s %s/%s run.out_dir=%s train.quiet=true "
                 ">%s.out 2>&1",
                 cli_dir, env, cores[i].name, cli_bin, cwd, args, dir, dir);
        int st = system(cmd);
        cr_assert(WIFEXITED(st) && WEXITSTATUS(st) == 0, "failed: %s", cmd);
        char *m = metrics_without_time(dir);
        int dup = 0;
        for (int k = 0; k < nseen; k++) dup |= !strcmp(seen[k], m);
        if (dup) free(m);
        else seen[nseen++] = m;
        (*nruns)++;
    }
    for (int k = 0; k < nseen; k++) free(seen[k]);
    return nseen;
}

/* ARGS: a config path relative to the repository, then overrides */
static void same_metrics_on_every_kernel(const char *args) {
    int n, nn;
    int pinned = distinct_runs("", args, &n);
    cr_assert(n >= 2, "this CPU runs fewer than two OpenBLAS kernels: nothing to compare");
    cr_expect_eq(pinned, 1, "%s: %d different metrics.csv from %d kernels, pinned", args, pinned, n);
    int native = distinct_runs("CLIPLAB_BLAS=native", args, &nn);
    cr_expect_gt(native, 1,
                 "%s: every kernel gave the same metrics unpinned too, so this comparison cannot "
                 "show the pin at work on this machine",
                 args);
}

TestSuite(repro, .init = cli_mkdir, .fini = cli_rmdir, .timeout = 900);

/* the chaotic one: the unclipped RNN, whose path the issue saw change with the CPU */
Test(repro, rnn_metrics_do_not_depend_on_the_blas_kernel) {
    same_metrics_on_every_kernel("configs/rnn_noclip.ini train.steps=100 run.plots=false");
}

/* the transformer: attention and the vocabulary projection are sgemm too, and
 * [train] threads = 2 splits them; the sums must not change */
Test(repro, transformer_metrics_do_not_depend_on_the_blas_kernel) {
    same_metrics_on_every_kernel("configs/transformer_sgd_noclip.ini train.steps=5 optim.warmup_steps=2 train.batch_size=4 train.threads=2 run.plots=false");
}
