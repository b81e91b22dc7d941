/* bench_wgan.c: median wall time of one WGAN critic update at the reference
 * size (gan_toy.py: 3 x 512 ReLU MLPs, noise in R^2, batch 256), as a run
 * does it (wgan_critic_update: a real batch, noise, fake = G(noise) without a
 * tape, trainer_step on the critic group with the whole update pipeline):
 *   clip: loss E D(fake) - E D(real), RMSProp 5e-5, [clip.critic] weight = 0.01;
 *   gp:   the same + 10 * gradient penalty (double backward), Adam 1e-4 (0.5, 0.9).
 * tests/bench/bench_wgan.py runs this beside the same updates in PyTorch.
 * Usage: bench_wgan REPS [clip|gp] */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "bench_util.h"
#include "train.h"
#include "wgan.h"

static const char *ini_clip =
    "[train]\nbatch_size = 256\n[optim]\nkind = rmsprop\nlr = 5e-5\n[clip.critic]\nweight = 0.01\n";
static const char *ini_gp = "[train]\nbatch_size = 256\n[wgan]\ngp_lambda = 10\n"
                            "[optim]\nkind = adam\nlr = 1e-4\nbeta1 = 0.5\nbeta2 = 0.9\n";

int main(int argc, char **argv) {
    int reps = argc > 1 ? atoi(argv[1]) : 20, warm = 3;
    int gp = argc > 2 && strcmp(argv[2], "gp") == 0;
    static TrainerSettings s;
    static GroupSettings store[4];
    static WganConfig wc;
    Config cfg;
    const CfgSection *secs[] = {&run_config_section,  &train_config_section,    &optim_config_section,
                                &clip_config_section, &recovery_config_section, wgan_model.section};
    void *structs[] = {&s.run, &s.train, &s.optim, &s.clip, &s.recovery, &wc};
    cfg_init(&cfg, secs, structs, 6);
    int n = train_groups_register(&cfg, store, 0, 4, wgan_model.groups);
    char path[] = "/tmp/cliplab_bench_wgan_XXXXXX", err[1024];
    int fd = mkstemp(path);
    FILE *f = fd >= 0 ? fdopen(fd, "w") : NULL;
    if (!f) return 1;
    fputs(gp ? ini_gp : ini_clip, f);
    fclose(f);
    CfgStatus rc = cfg_load_file(&cfg, path, err, sizeof err);
    unlink(path);
    if (rc != CFG_OK) {
        fprintf(stderr, "%s\n", err);
        return 1;
    }
    cfg_resolve_groups(&cfg);
    if (train_groups_select(&cfg, &s, store, n, wgan_model.groups, err, sizeof err) != 0) {
        fprintf(stderr, "%s\n", err);
        return 1;
    }
    s.train.quiet = 1;
    s.train.threads = bench_threads(); /* CLIPLAB_BENCH_THREADS (the default 0 = all cores) */
    Trainer *tr = trainer_create(&wgan_model, &wc, &s);
    Wgan *m = tr->model;
    double *ms = malloc(sizeof(double) * (size_t)reps);
    for (int i = 0; i < warm + reps; i++) {
        double t0 = now_seconds();
        wgan_critic_update(m, tr, 0);
        double t1 = now_seconds();
        if (i >= warm) ms[i - warm] = 1e3 * (t1 - t0);
    }
    printf("c_step_ms %.6f\n", bench_median(ms, reps));
    free(ms);
    trainer_destroy(tr);
    cfg_free(&cfg);
    return 0;
}
