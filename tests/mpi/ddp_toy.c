/* ddp_toy.c: the docs' toy case of data-parallel clipping, through the real
 * trainer and update pipeline (tests only; test_ddp.c runs it under mpirun).
 *
 * One parameter w = (0, 0), loss of micro-batch i = <w, x_i>, so its gradient
 * is x_i: worker 0 has (3, 0), worker 1 has (0, 0.5). SGD with lr 1 and a
 * global-norm clip of 1, one step: w ends at minus the update.
 *   ddp_toy global|local        under mpirun -np 2: one micro-batch per rank
 *   ddp_toy global accum        one process, grad_accum = 2 (the same micro-batches)
 * Rank 0 prints "w %a %a rank_norms %.9g %.9g reduced %.9g".
 *
 *   ddp_toy mlp REF.bin         under mpirun -np 2: tests/ref/ref_ddp.py's MLP
 *                               (Linear 4-8, tanh, Linear 8-1, MSE, SGD momentum,
 *                               clip 0.5) from its weights and data, 4 steps;
 *                               rank 0 prints "norm %.17g" per step, then "w" and
 *                               every weight (%.9g) for the test to hold against
 *                               PyTorch DDP's. */
#include <math.h>
#include <stdint.h>
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

/* ---------------------------------------------------------------- the MLP */

enum { MLP_STEPS = 4, MLP_RANKS = 2, MLP_B = 8 };
static float mlp_w0[49], mlp_x[MLP_STEPS * MLP_RANKS * MLP_B * 4], mlp_y[MLP_STEPS * MLP_RANKS * MLP_B];

/* The records named w0, x, y of a tests/ref file (format: tests/ref/tfile.py). */
static int read_ref(const char *path) {
    FILE *f = fopen(path, "rb");
    if (!f) return -1;
    char magic[4];
    uint32_t count = 0;
    int got = 0;
    if (fread(magic, 1, 4, f) != 4 || memcmp(magic, "CLTF", 4) || fread(&count, 4, 1, f) != 1) count = 0;
    for (uint32_t i = 0; i < count; i++) {
        uint32_t nlen, dtype, ndim, dims[8];
        char name[128] = "";
        if (fread(&nlen, 4, 1, f) != 1 || nlen >= sizeof name || fread(name, 1, nlen, f) != nlen ||
            fread(&dtype, 4, 1, f) != 1 || fread(&ndim, 4, 1, f) != 1 || ndim > 8 ||
            fread(dims, 4, ndim, f) != ndim)
            break;
        size_t n = 1;
        for (uint32_t d = 0; d < ndim; d++) n *= dims[d];
        size_t esz = dtype == 2 ? 8 : 4;
        float *dst = !strcmp(name, "w0") ? mlp_w0 : !strcmp(name, "x") ? mlp_x : !strcmp(name, "y") ? mlp_y : NULL;
        size_t cap = dst == mlp_w0 ? 49 : dst == mlp_x ? sizeof mlp_x / 4 : sizeof mlp_y / 4;
        if (dst && (dtype != 0 || n != cap)) break;
        if (dst ? fread(dst, 4, n, f) != n : fseek(f, (long)(n * esz), SEEK_CUR) != 0) break;
        got += dst != NULL;
    }
    fclose(f);
    return got == 3 ? 0 : -1;
}

typedef struct Mlp {
    ParamSet ps;
    Tensor *w1, *b1, *w2, *b2;
    long batch;
} Mlp;

static void *mlp_create(Trainer *tr, const void *cfg) {
    (void)cfg;
    Mlp *m = calloc(1, sizeof *m);
    param_set_init(&m->ps, "mlp", 4);
    m->w1 = param_add(&m->ps, "w1", 2, (int[]){8, 4}, 1);
    m->b1 = param_add(&m->ps, "b1", 1, (int[]){8}, 0);
    m->w2 = param_add(&m->ps, "w2", 2, (int[]){1, 8}, 1);
    m->b2 = param_add(&m->ps, "b2", 1, (int[]){1}, 0);
    param_alloc(&m->ps);
    const float *w = mlp_w0; /* torch's parameters() order */
    Tensor *ts[4] = {m->w1, m->b1, m->w2, m->b2};
    for (int i = 0; i < 4; i++) memcpy(ts[i]->data, w, ts[i]->n * sizeof *w), w += ts[i]->n;
    trainer_add_group(tr, &m->ps);
    return m;
}
static void mlp_destroy(void *p) {
    Mlp *m = p;
    param_set_free(&m->ps);
    free(m);
}
/* micro-batch k = step k / 2, rank k % 2: x[step, rank] */
static Tensor *mlp_loss(void *p, Ctx *c, Trainer *tr) {
    (void)tr;
    Mlp *m = p;
    long k = m->batch++;
    Tensor *x = tensor_from(c, 2, (int[]){MLP_B, 4}, mlp_x + k * MLP_B * 4);
    Tensor *y = tensor_from(c, 2, (int[]){MLP_B, 1}, mlp_y + k * MLP_B);
    Tensor *h = ad_tanh(c, ad_linear(c, x, m->w1, m->b1));
    return ad_mse(c, ad_linear(c, h, m->w2, m->b2), y);
}
static void mlp_skip(void *p, Trainer *tr) {
    (void)tr;
    ((Mlp *)p)->batch++;
}
static const ModelDef mlp_def = {
    .name = "mlp", .summary = "ref_ddp.py's MLP", .create = mlp_create, .loss = mlp_loss,
    .skip_batch = mlp_skip, .destroy = mlp_destroy};

/* ---------------------------------------------------------------- the toy */

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
    int mlp = !strcmp(argv[1], "mlp");
    if (mlp && (argc < 3 || read_ref(argv[2]) != 0)) {
        fprintf(stderr, "ddp_toy mlp: cannot read w0, x, y from %s\n", argc > 2 ? argv[2] : "(no file)");
        return dist_finalize(1);
    }
    int accum = argc > 2 && !strcmp(argv[2], "accum");
    char ini[512];
    if (mlp)
        snprintf(ini, sizeof ini, "[train]\nsteps = %d\nquiet = true\narena_mb = 1\n[optim]\nkind = sgd\n"
                 "lr = 0.1\nmomentum = 0.9\n[clip]\ngrad = global_norm\nmax_norm = 0.5\n", MLP_STEPS);
    else
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
    Trainer *tr = trainer_create(mlp ? &mlp_def : &toy_def, NULL, &s);
    trainer_train(tr);
    if (mlp) {
        if (dist_rank() == 0) {
            int col = metrics_col(&tr->log, "grad_norm");
            for (size_t i = 0; i < tr->log.nrows; i++)
                printf("norm %.17g\n", tr->log.rows[i * (size_t)tr->log.ncols + (size_t)col]);
            printf("w");
            for (size_t i = 0; i < tr->groups[0].ps->n; i++) printf(" %.9g", tr->groups[0].ps->data[i]);
            printf("\n");
        }
        trainer_destroy(tr);
        cfg_free(&cfg);
        return dist_finalize(0);
    }
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
