/* test_threads.c: [train] threads never changes a run's numbers. Each demo
 * config, shortened, runs through ./train at threads 1, 2 and 3, and its
 * metrics.csv must be byte for byte the same once the wall-clock column
 * (time_ms) is dropped. The sizes are the demos' own, so the kernels that
 * split work (linear rows, attention heads, layernorm, elementwise, the
 * optimizer; ops_kernel.h) do split at 2 and 3 threads: chunk edges fall in
 * different places at 2 and 3. MobileNet is held to the same rule at the
 * gradient level in test_mobilenet.c (1, 2, 3, 5 threads), a full run being
 * too slow for make test. Also: threads = 0 (all cores, the default) runs and
 * gives the same numbers. */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"

TestSuite(threads, .init = cli_mkdir, .fini = cli_rmdir);

/* metrics.csv of run folder `dir` (relative to the test folder) without the
 * time_ms column; malloc'd. */
static char *metrics_without_time(const char *dir) {
    char path[600];
    snprintf(path, sizeof path, "%s/%s/metrics.csv", cli_dir, dir);
    FILE *f = fopen(path, "r");
    cr_assert(f, "no %s", path);
    size_t cap = 1 << 20, len = 0;
    char *out = malloc(cap), line[8192];
    int skip = -1; /* index of the time_ms column */
    while (fgets(line, sizeof line, f)) {
        int col = 0;
        for (char *save = NULL, *tok = strtok_r(line, ",\n", &save); tok;
             tok = strtok_r(NULL, ",\n", &save), col++) {
            if (skip < 0 && strcmp(tok, "time_ms") == 0) skip = col;
            if (col == skip) continue;
            size_t n = strlen(tok);
            if (len + n + 2 >= cap) out = realloc(out, cap *= 2);
            memcpy(out + len, tok, n);
            len += n;
            out[len++] = ',';
        }
        out[len++] = '\n';
    }
    fclose(f);
    out[len] = '\0';
    cr_assert(skip >= 0, "%s has no time_ms column", path);
    return out;
}

/* Runs configs/<config>.ini (from the repo root) with `overrides` at threads
 * 1, 2, 3 and 0; every metrics.csv must equal the one-thread one and hold at
 * least min_rows rows. */
static void same_at_every_thread_count(const char *config, const char *overrides, int min_rows) {
    static const int counts[] = {1, 2, 3, 0};
    char cwd[256], args[1024], out[8192], dir[64];
    cr_assert(getcwd(cwd, sizeof cwd));
    char *ref = NULL;
    for (size_t i = 0; i < sizeof counts / sizeof *counts; i++) {
        snprintf(dir, sizeof dir, "t%d", counts[i]);
        snprintf(args, sizeof args,
                 "%s/configs/%s.ini %s run.plots=false train.quiet=true train.threads=%d "
                 "run.out_dir=%s",
                 cwd, config, overrides, counts[i], dir);
        int rc = cli_run(args, out, sizeof out, 1);
        cr_assert_eq(rc, 0, "./train %s: exit %d\n%s", args, rc, out);
        char *m = metrics_without_time(dir);
        if (!ref) {
            int rows = -1;
            for (const char *p = m; *p; p++) rows += *p == '\n';
            cr_assert_geq(rows, min_rows, "%s: %d rows", config, rows);
            ref = m;
            continue;
        }
        cr_assert_str_eq(m, ref, "%s: metrics at threads = %d differ from threads = 1",
                         config, counts[i]);
        free(m);
    }
    free(ref);
}

Test(threads, transformer_metrics_identical_at_1_2_3_threads, .timeout = 600) {
    same_at_every_thread_count("transformer_clip",
                               "train.steps=6 train.eval_every=3 transformer.eval_batches=1 "
                               "transformer.sample_chars=0 optim.warmup_steps=2", 6);
}

Test(threads, wgan_metrics_identical_at_1_2_3_threads, .timeout = 600) {
    same_at_every_thread_count("wgan_clip", "train.steps=2", 2);
}

Test(threads, wgan_gp_metrics_identical_at_1_2_3_threads, .timeout = 600) {
    same_at_every_thread_count("wgan_gp", "train.steps=2", 2);
}

Test(threads, rnn_metrics_identical_at_1_2_3_threads, .timeout = 600) {
    same_at_every_thread_count("rnn_clip", "train.steps=40 train.eval_every=20", 40);
}

Test(threads, ppo_metrics_identical_at_1_2_3_threads, .timeout = 600) {
    same_at_every_thread_count("ppo_clip", "train.steps=2 ppo.eval_episodes=1", 2);
}
