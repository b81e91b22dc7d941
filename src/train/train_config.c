/* train_config.c: the [run] and [train] sections the trainer reads (train.h). */
#include <stddef.h>
#include <stdio.h>
#include <string.h>

#include "train.h"

#include "common.h"

static const char *const nonfinite_choices[] = {"stop", "skip", "error", NULL};
static const char *const dynamic_word[] = {"dynamic", NULL};
static const char *const precision_choices[] = {"fp32", "fp16", "bf16", NULL}; /* HalfFormat */

#define RUN_KEY(n, t, f, d, lo, hi, h) {n, t, offsetof(RunConfig, f), d, lo, hi, NULL, h}
static const CfgKey run_keys[] = {
    RUN_KEY("name", CFG_STRING, name, "", 0, 0,
            "run name (default: the config file's base name)"),
    RUN_KEY("out_dir", CFG_STRING, out_dir, "", 0, 0,
            "output folder (default: runs/<name>)"),
    RUN_KEY("seed", CFG_LONG, seed, "1", 0, 2147483647.0,
            "seed of every random draw (data, initialisation): same seed, same numbers on any x86-64 machine"),
    RUN_KEY("plots", CFG_BOOL, plots, "true", 0, 1, "write loss.png and grad_norm.png"),
    RUN_KEY("resume_every", CFG_LONG, checkpoint_every, "0", 0, 1e8,
            "write <out_dir>/resume.bin every this many steps, so ./train CONFIG --resume "
            "continues an interrupted run (0 = never; independent of [recovery])"),
    RUN_KEY("memory_mb", CFG_LONG, memory_mb, "0", 0, 1e9,
            "refuse a run whose estimated memory (parameters, optimizer, arena, tape, "
            "checkpoint ring) is above this many MiB (0 = 80% of physical memory)"),
};
/* [run] checkpoint_every and [recovery] checkpoint_every meant different things */
const char *const run_renamed_keys[] = {"checkpoint_every", "resume_every", NULL};

const CfgSection run_config_section = {"run", run_keys, (int)(sizeof run_keys / sizeof *run_keys),
                                       "naming, output folder and seed of a run", NULL};

#define TR_KEY(n, t, f, d, lo, hi, ch, h) {n, t, offsetof(TrainConfig, f), d, lo, hi, ch, h}
static const CfgKey train_keys[] = {
    TR_KEY("steps", CFG_LONG, steps, "1000", 1, 1e8, NULL, "optimizer steps to run"),
    TR_KEY("batch_size", CFG_INT, batch_size, "32", 1, 65536, NULL, "examples per batch"),
    TR_KEY("log_every", CFG_INT, log_every, "1", 1, 1000000, NULL,
           "write a metrics.csv row every this many steps"),
    TR_KEY("eval_every", CFG_INT, eval_every, "0", 0, 1000000, NULL,
           "held-out evaluation every this many steps (0 = never)"),
    TR_KEY("on_nonfinite", CFG_ENUM, on_nonfinite, "stop", 0, 0, nonfinite_choices,
           "non-finite loss or gradient: stop (record it, plot, exit 0), skip the step, "
           "or error (exit 3)"),
    TR_KEY("grad_accum", CFG_INT, grad_accum, "1", 1, 1024, NULL,
           "micro-batches per update, each loss scaled by 1/k: the update and the clip see their mean"),
    TR_KEY("loss_scale", CFG_DOUBLE, loss_scale, "1", 1e-8, 1e12, dynamic_word,
           "loss scale: backward runs on loss*scale, gradients are unscaled before the clip; "
           "dynamic = torch's GradScaler ([scaler]: overflow skips the step, backs off)"),
    TR_KEY("precision", CFG_ENUM, precision, "fp32", 0, 0, precision_choices,
           "matrix products (linear, matmul, conv, attention) round inputs and outputs to this "
           "format and accumulate in fp32; the rest, master weights and optimizer stay fp32"),
    TR_KEY("clip_before_unscale", CFG_BOOL, clip_before_unscale, "false", 0, 1, NULL,
           "the bug: clip the still-scaled gradient (threshold acts as threshold/scale; "
           "an overflow turns into NaN and zeros under the clip)"),
    TR_KEY("threads", CFG_INT, threads, "0", 0, 256, NULL,
           "threads the engine's kernels split work over (0 = all cores); any count gives "
           "the same numbers"),
    TR_KEY("arena_mb", CFG_INT, arena_mb, "256", 1, 65536, NULL,
           "per-step memory arena (activations and their gradients), MiB"),
    TR_KEY("max_nodes", CFG_INT, max_nodes, "65536", 16, 100000000, NULL,
           "tape capacity: ops recorded per step"),
    TR_KEY("quiet", CFG_BOOL, quiet, "false", 0, 1, NULL, "no progress lines"),
    TR_KEY("grad_hist_step", CFG_LONG, grad_hist_step, "-1", -1, 1e8, NULL,
           "record this step's activation gradients: grad_hist.csv/.png, log2 bins against "
           "fp16's range (-1 = none)"),
};
const CfgSection train_config_section = {"train", train_keys,
                                         (int)(sizeof train_keys / sizeof *train_keys),
                                         "the training loop and the update pipeline", NULL};


/* ---------------------------------------------------------------- group sections */

int train_groups_register(Config *cfg, GroupSettings *store, int nstore, int cap,
                          const char *const *names) {
    for (int i = 0; names && names[i]; i++) {
        int have = 0;
        for (int j = 0; j < nstore; j++) have |= !strcmp(store[j].name, names[i]);
        if (have) continue;
        ASSERT(nstore < cap, "too many group names (at most %d)", cap);
        GroupSettings *g = &store[nstore++];
        snprintf(g->name, sizeof g->name, "%s", names[i]);
        cfg_add_group(cfg, "optim", g->name, &g->optim);
        cfg_add_group(cfg, "clip", g->name, &g->clip);
    }
    return nstore;
}

int train_groups_select(const Config *cfg, TrainerSettings *s, const GroupSettings *store,
                        int nstore, const char *const *names, char *err, size_t errlen) {
    s->ngroups = 0;
    for (int i = 0; names && names[i]; i++) {
        ASSERT(s->ngroups < TRAINER_MAX_GROUPS, "too many groups");
        for (int j = 0; j < nstore; j++)
            if (!strcmp(store[j].name, names[i])) s->groups[s->ngroups++] = store[j];
    }
    /* a group section of a group this model does not have is an error */
    for (int j = 0; j < nstore; j++) {
        int mine = 0;
        for (int i = 0; names && names[i]; i++) mine |= !strcmp(store[j].name, names[i]);
        if (mine) continue;
        const char *base[] = {"optim", "clip"};
        for (int b = 0; b < 2; b++) {
            char sec[CFG_NAME_MAX + 8]; /* "optim." + a group name */
            snprintf(sec, sizeof sec, "%s.%s", base[b], store[j].name);
            int si = cfg_find_section(cfg, sec);
            if (si < 0 || !cfg->touched[si]) continue;
            char list[512] = "";
            for (int i = 0; names && names[i]; i++) {
                size_t n = strlen(list);
                snprintf(list + n, sizeof list - n, "%s[%s.%s]", i ? ", " : "", base[b], names[i]);
            }
            int line = cfg->present[si];
            snprintf(err, errlen, "%s%s%.0d: [%s]: this model has no update group '%s' (accepted: %s)",
                     cfg->path, line ? ":" : "", line, sec, store[j].name,
                     list[0] ? list : "no group sections: this model has one group, set [optim] and [clip]");
            return -1;
        }
    }
    return 0;
}
