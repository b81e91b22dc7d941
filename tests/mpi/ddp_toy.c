/* ddp_toy.c: the docs' toy case of data-parallel clipping, through the real
 * trainer and update pipeline (tests only; test_ddp.c runs it under mpirun).
 *
 * One parameter w = (0, 0), loss of micro-batch i = <w, x_i>, so its gradient
 * is x_i: worker 0 has (3, 0), worker 1 has (0, 0.5). SGD with lr 1 and a
 * global-norm clip of 1, one step: w ends at minus the update.
 *   ddp_toy global|local        under mpirun -np 2: one micro-batch per rank
 *   ddp_toy global accum        one process, grad_accum = 2 (the same micro-batches)
 * Rank 0 prints "w %a %a rank_norms %.9g %.9g reduced %.9g". */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "ops.h"
#include "params.h"
#include "train.h"

typedef struct Toy {
    ParamSet ps;
    Tensor *w;
    long batch;
} Toy;

static const float toy_x[2][2] = {{3.0f, 0.0f}, {0.0f, 0.5f}};

static void *toy_create(Trainer *tr, const void *cfg) {
    (void)cfg;
    Toy *m = calloc(1, sizeof *m);
    param_set_init(&m->ps, "toy", 1);
    m->w = param_add(&m->ps, "w", 1, (int[]){2}, 0);
    param_alloc(&m->ps);
    trainer_add_group(tr, &m->ps);
    return m;
}
static void toy_destroy(void *p) {
    Toy *m = p;
    param_set_free(&m->ps);
    free(m);
}
static Tensor *toy_loss(void *p, Ctx *c, Trainer *tr) {
    (void)tr;
    Toy *m = p;
    Tensor *x = tensor_from(c, 1, (int[]){2}, (float *)toy_x[m->batch++ % 2]);
    return ad_sum(c, ad_mul(c, m->w, x));
}
static void toy_skip(void *p, Trainer *tr) {
    (void)tr;
    ((Toy *)p)->batch++;
}
static const ModelDef toy_def = {
    .name = "toy", .summary = "docs toy", .create = toy_create, .loss = toy_loss,
    .skip_batch = toy_skip, .destroy = toy_destroy};

int main(int argc, char **argv) {
    if (argc < 2) {
        fprintf(stderr, "usage: ddp_toy global|local [accum]\n");
        return 2;
    }
    dist_init();
    int accum = argc > 2 && !strcmp(argv[2], "accum");
    char ini[512];
    snprintf(ini, sizeof ini,
             "[train]\nsteps = 1\ngrad_accum = %d\nquiet = true\narena_mb = 1\n"
             "[optim]\nkind = sgd\nlr = 1\n[clip]\ngrad = global_norm\nmax_norm = 1\n[dist]\nclip = %s\n",
             accum ? 2 : 1, argv[1]);
    TrainerSettings s;
    memset(&s, 0, sizeof s);
    const CfgSection *secs[] = {&run_config_section, &train_config_section, &optim_config_section,
                                &clip_config_section, &recovery_config_section, &dist_config_section};
    void *structs[] = {&s.run, &s.train, &s.optim, &s.clip, &s.recovery, &s.dist};
    Config cfg;
    cfg_init(&cfg, secs, structs, 6);
    char path[] = "/tmp/cliplab_ddp_toy_XXXXXX", err[1024];
    int fd = mkstemp(path);
    if (fd < 0 || write(fd, ini, strlen(ini)) != (ssize_t)strlen(ini)) return 1;
    close(fd);
    CfgStatus st = cfg_load_file(&cfg, path, err, sizeof err);
    unlink(path);
    if (st != CFG_OK) {
        fprintf(stderr, "%s\n", err);
        return 2;
    }
    Trainer *tr = trainer_create(&toy_def, NULL, &s);
    trainer_train(tr);
    const UpdateGroup *g = &tr->groups[0];
    double norms[2] = {g->rank_norm, g->rank_norm};
    dist_allgather_doubles(norms, &g->rank_norm, 1);
    const float *w = ((Toy *)tr->model)->w->data;
    if (dist_rank() == 0)
        printf("w %a %a rank_norms %.9g %.9g reduced %.9g\n", w[0], w[1], norms[0],
               dist_size() > 1 ? norms[1] : NAN, g->last.pre_norm);
    trainer_destroy(tr);
    cfg_free(&cfg);
    return dist_finalize(0);
}
