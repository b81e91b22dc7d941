/* main.c: ./train CONFIG [CONFIG ...] [section.key=value ...]
 *
 * Loads and validates every config (and every override) before anything is
 * written, then trains each run in turn; with several configs it also writes a
 * comparison plot overlaying their loss and gradient-norm curves.
 * `./train --help` prints every section and key from the parser's own tables. */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zlib.h>

#include "blas_pin.h"
#include "clipper.h"
#include "dp_epsilon.h"
#include "live_view.h"
#include "common.h"
#include "config.h"
#include "dist.h"
#include "model.h"
#include "optim.h"
#include "plot.h"
#include "recovery.h"
#include "resume.h"
#include "runfolder.h"
#include "sweep.h"
#include "train.h"

#define MAX_RUNS 32

/* The exit statuses (--help and the README say the same). */
enum { EXIT_DONE = 0, EXIT_FAILURE_OTHER = 1, EXIT_USAGE = 2, EXIT_NONFINITE = 3 };

/* A bad command line: the message, then exit 2 (die() is for failures: 1). */
static _Noreturn void usage_error(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static _Noreturn void usage_error(const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    fprintf(stderr, "cliplab: error: ");
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
    exit(EXIT_USAGE);
}

#ifndef CLIPLAB_COMMIT /* the Makefile passes `git describe --always --dirty` */
#define CLIPLAB_COMMIT "unknown (built outside git)"
#endif

/* Provenance of every figure this process writes (plot.h): the command that remakes it
 * (./train and the arguments, quoted for a shell where needed), the commit, the BLAS in
 * force; the trainer adds each run's seed. */
static void set_provenance(int argc, char **argv, int ranks) {
    char cmd[4096] = "./train", blas[256];
    if (ranks > 1) snprintf(cmd, sizeof cmd, "mpirun -np %d ./train", ranks); /* one run on N ranks */
    size_t k = strlen(cmd);
    for (int i = 1; i < argc && k < sizeof cmd; i++) {
        int plain = argv[i][0] != '\0';
        for (const char *c = argv[i]; *c; c++)
            plain &= !strchr(" \t\n'\"\\$`*?[]{}()<>|&;#~!", *c);
        if (plain) {
            k += (size_t)snprintf(cmd + k, sizeof cmd - k, " %s", argv[i]);
            continue;
        }
        k += (size_t)snprintf(cmd + k, sizeof cmd - k, " '");
        for (const char *c = argv[i]; *c && k < sizeof cmd; c++)
            k += (size_t)snprintf(cmd + k, sizeof cmd - k, *c == '\'' ? "'\\''" : "%c", *c);
        if (k < sizeof cmd) k += (size_t)snprintf(cmd + k, sizeof cmd - k, "'");
    }
    snprintf(blas, sizeof blas, "%s", blas_describe());
    plot_provenance("Command", cmd);
    plot_provenance("Seed", "(set per run)");
    plot_provenance("Commit", "cliplab " CLIPLAB_COMMIT);
    plot_provenance("BLAS", blas);
}

static const char *model_choices[64];

#define SEL_KEY {"type", CFG_ENUM, 0, NULL, 0, 0, model_choices, "which network and task to train"}
static CfgKey model_keys[] = {SEL_KEY};
static const CfgSection model_section = {"model", model_keys, 1, "the network to train", NULL};

#define MAX_GROUP_NAMES 32

typedef struct RunSpec {
    char path[512];
    TrainerSettings set;
    ModelSel sel;
    void *model_cfg[64];
    GroupSettings gstore[MAX_GROUP_NAMES]; /* [optim.G]/[clip.G] of every model's groups */
    int ngstore;
    Config cfg;
} RunSpec;

static int build_sections(const CfgSection **secs, void **structs, RunSpec *rs) {
    int n = 0;
    secs[n] = &run_config_section, structs[n++] = &rs->set.run;
    secs[n] = &model_section, structs[n++] = &rs->sel;
    secs[n] = &train_config_section, structs[n++] = &rs->set.train;
    secs[n] = &optim_config_section, structs[n++] = &rs->set.optim;
    secs[n] = &clip_config_section, structs[n++] = &rs->set.clip;
    secs[n] = &recovery_config_section, structs[n++] = &rs->set.recovery;
    secs[n] = &scaler_config_section, structs[n++] = &rs->set.scaler;
    secs[n] = &dp_config_section, structs[n++] = &rs->set.dp;
    secs[n] = &dist_config_section, structs[n++] = &rs->set.dist;
    for (int i = 0; i < model_registry_count; i++) {
        if (!model_registry[i]->section) continue;
        if (rs) rs->model_cfg[i] = xcalloc(1, model_registry[i]->cfg_size);
        secs[n] = model_registry[i]->section;
        structs[n++] = rs ? rs->model_cfg[i] : NULL;
    }
    return n;
}

static void usage(FILE *f) {
    fprintf(f,
            "usage: ./train CONFIG.ini [CONFIG.ini ...] [section.key=value ...] [--compare OUT.png]\n"
            "               [--resume] [--live | --live-close] [--all-settings]\n"
            "       ./train --sweep CONFIG.ini|SPEC.sweep [--vary section.key=VALUES ...] [--seeds S]\n"
            "               [--group LABEL] [--name NAME] [--x KEY] [--map] [--mark-norm-rule]\n"
            "               [-j N] [section.key=value ...]\n"
            "       ./train --plot RUN_DIR [RUN_DIR ...] [--compare OUT.png]\n"
            "       ./train --dp-epsilon N BATCH SIGMA EPOCHS DELTA [--orders tf|opacus]\n"
            "       ./train --dp-sigma N BATCH EPSILON EPOCHS DELTA [--orders tf|opacus]\n"
            "       ./train --help [SECTION]\n\n"
            "Trains the network a config describes and writes runs/<config name>/:\n"
            "config.ini (effective settings), metrics.csv, loss.png, grad_norm.png.\n"
            "Several configs: each is trained in turn and their curves are overlaid in\n"
            "runs/compare_<name>_vs_<name>.png (or --compare OUT.png).\n"
            "Overrides apply to every config: ./train configs/rnn_clip.ini clip.max_norm=0.5;\n"
            "CONFIG.ini:key=value:key=value to one config alone (two settings side by side:\n"
            "./train configs/rnn_clip.ini configs/rnn_clip.ini:clip.max_norm=0.25). A run with\n"
            "overrides is named for them, runs/rnn_clip,clip.max_norm=0.25/, so it never\n"
            "replaces another run (overrides that cannot change the numbers, such as\n"
            "train.quiet, are left out of the name). The settings that differ from the\n"
            "defaults are printed at the start (--all-settings: all of them).\n"
            "--resume continues each run its folder holds from its resume.bin ([run]\n"
            "resume_every), starts a run that has none, and leaves a complete run as it is.\n\n"
            "Exit status:\n"
            "  0  done (a run stopped at a non-finite loss with on_nonfinite = stop included)\n"
            "  2  bad config file, override or command line (nothing written), a run over its\n"
            "     memory budget ([run] memory_mb), or a --resume that cannot continue the run\n"
            "     as the same run (other settings, other model, a damaged resume.bin)\n"
            "  3  non-finite loss or gradient with [train] on_nonfinite = error\n"
            "  1  any other failure (output folder, disk, memory)\n\n"
            "--sweep runs the product of the swept keys and seeds in parallel, into runs/NAME/\n"
            "(one folder per run, sweep.csv, summary.csv, summary.png); rerunning it resumes.\n"
            "Only --vary sweeps: a plain section.key=value stays ONE value, commas and all\n"
            "(clip.exclude=w_out,b_out). VALUES: a,b,c ({...} keeps commas in one value),\n"
            "log:LO:HI:N (N log-spaced numbers), lin:LO:HI:N. --seeds 1:5 or 1,2,7.\n"
            "--group LABEL: the overrides and --vary after it apply to that group only (the\n"
            "runs are the union of the groups; a group without a numeric key is a baseline).\n"
            "--x KEY the x axis of summary.png; --map also map.png (a heatmap, one row per\n"
            "line); --mark-norm-rule marks the median unclipped norm and 0.5x-10x it.\n"
            "-j N workers (default: cores); under mpirun the runs are spread over the ranks.\n"
            "A SPEC.sweep file holds the same tokens, # comments (see configs/sweeps/):\n"
            "  ./train --sweep configs/rnn_clip.ini --vary clip.max_norm=log:0.01:100:9 --seeds 1:5\n"
            "  ./train --sweep configs/sweeps/rnn_threshold.sweep -j 2\n\n"
            "--plot redraws the figures of finished runs from their folders (config.ini,\n"
            "metrics.csv), nothing trained; several folders are also overlaid, as above, so a\n"
            "run can be set beside a reference run: ./train --plot runs/mine docs/ref --compare c.png\n\n"
            "--live opens a window that redraws the loss and gradient-norm panels as the runs\n"
            "train (closing it leaves training running) and keeps the last frame up until it is\n"
            "closed; --live-close closes it when training ends.\n");
}

/* "  name         text..." with the text wrapped at 100 columns under itself. */
static void print_wrapped(const char *name, const char *text) {
    int col = printf("  %-12s", name);
    while (*text) {
        while (*text == ' ') text++;
        int n = (int)strcspn(text, " ");
        if (col + 1 + n > 100 && col > 15) col = printf("\n%14s", "") - 1;
        col += printf(" %.*s", n, text);
        text += n;
    }
    printf("\n");
}

/* --help: everything; --help SECTION: that section's keys alone. */
static void print_help(const char *section) {
    const CfgSection *secs[CFG_MAX_SECTIONS];
    void *structs[CFG_MAX_SECTIONS];
    RunSpec *tmp = xcalloc(1, sizeof *tmp);
    int n = build_sections(secs, structs, tmp);
    if (section) {
        const char *names[CFG_MAX_SECTIONS];
        int found = -1;
        char want[CFG_NAME_MAX];
        snprintf(want, sizeof want, "%.*s", (int)strcspn(section, "[]"), section + (section[0] == '['));
        for (int i = 0; i < n; i++) {
            names[i] = secs[i]->name;
            if (!strcmp(secs[i]->name, want)) found = i;
        }
        if (found >= 0) {
            cfg_print_help(secs + found, 1, stdout);
        } else {
            const char *near = cfg_closest(want, names, n);
            fprintf(stderr, "cliplab: error: --help %s: no such section%s%s%s (accepted:", section,
                    near ? "; did you mean " : "", near ? near : "", near ? "?" : "");
            for (int i = 0; i < n; i++) fprintf(stderr, " %s", names[i]);
            fprintf(stderr, ")\n");
        }
        for (int i = 0; i < model_registry_count; i++) free(tmp->model_cfg[i]);
        free(tmp);
        if (found < 0) exit(EXIT_USAGE);
        return;
    }
    usage(stdout);
    printf("\nModels ([model] type):\n");
    for (int i = 0; i < model_registry_count; i++) {
        const ModelDef *d = model_registry[i];
        print_wrapped(d->name, d->summary);
        for (int g = 0; d->groups && d->groups[g]; g++)
            printf("%s%s%s", g ? ", " : "               update groups: ", d->groups[g],
                   d->groups[g + 1] ? "" : "\n");
    }
    printf("\nUpdate groups: a model with several groups (above) reads [optim.G] and [clip.G]\n"
           "for its group G: the same keys as [optim] and [clip]; the keys given there\n"
           "override [optim] / [clip] for that group, the others follow them. Overrides:\n"
           "optim.critic.lr=1e-4. A set key the run does not read (zclip_* with grad =\n"
           "global_norm) is warned about.\n");
    printf("\nSettings (section, key, type, default, accepted values; one section alone:\n"
           "./train --help clip):\n\n");
    cfg_print_help(secs, n, stdout);
    for (int i = 0; i < model_registry_count; i++) free(tmp->model_cfg[i]);
    free(tmp);
}

static void base_name(const char *path, char *out, size_t len) {
    const char *b = strrchr(path, '/');
    b = b ? b + 1 : path;
    snprintf(out, len, "%s", b);
    char *dot = strrchr(out, '.');
    if (dot && strcmp(dot, ".ini") == 0) *dot = '\0';
}

/* Settings that are valid alone but not together (torch.optim raises on the
 * same combinations). 0 if consistent, message printed otherwise. */
static int check_optim(const OptimConfig *o, long steps, const char *sec, const char *path) {
    char problem[256] = "";
    if (o->nesterov && (o->kind != OPTIM_SGD || o->momentum <= 0.0))
        snprintf(problem, sizeof problem, "[%s] nesterov = true needs kind = sgd and momentum > 0", sec);
    else if (o->schedule != SCHED_CONSTANT && o->min_lr > o->lr)
        snprintf(problem, sizeof problem,
                 "[%s] min_lr is above lr: a decay schedule would raise the learning rate", sec);
    else if (o->warmup_steps >= steps && o->warmup_steps > 0)
        snprintf(problem, sizeof problem, "[%s] warmup_steps must be below [train] steps", sec);
    if (!problem[0]) return 0;
    fprintf(stderr, "cliplab: error: %s: %s\n", path, problem);
    return -1;
}

/* [run] name names a folder (runs/<name>) and a plot's label: one plain path
 * component, so it can never point outside runs/ or at another run's folder. */
static int check_run_name(const char *name, const char *path) {
    const char *problem = NULL;
    if (!name[0]) problem = "is empty";
    else if (!strcmp(name, ".") || !strcmp(name, "..")) problem = "is . or ..";
    else if (strchr(name, '/')) problem = "contains '/'";
    for (const char *c = name; !problem && *c; c++)
        if ((unsigned char)*c < 0x20 || *c == 0x7f) problem = "contains a control character";
    if (!problem) return 0;
    fprintf(stderr, "cliplab: error: %s: [run] name = '%s' %s (accepted: a plain name: not empty, "
            "not . or .., no '/' and no control characters; put folders in [run] out_dir)\n",
            path, name, problem);
    return -1;
}

/* A gradient clip that zeroes every gradient trains nothing: refused, where
 * weight = 0 in the same section means "off". */
static int check_clip(const ClipConfig *c, const char *sec, const char *path) {
    const char *key = NULL;
    if ((c->grad == CLIP_GLOBAL_NORM || c->grad == CLIP_NORM) && c->max_norm == 0) key = "max_norm";
    else if (c->grad == CLIP_VALUE && c->value == 0) key = "value";
    else if (c->grad == CLIP_AGC && c->agc_clipping == 0) key = "agc_clipping";
    if (!key) return 0;
    fprintf(stderr, "cliplab: error: %s: [%s] %s = 0 with grad = %s scales every gradient to zero, "
            "so nothing would train (accepted: a number above 0; to turn gradient clipping off, "
            "grad = none)\n", path, sec, key,
            c->grad == CLIP_VALUE ? "value" : c->grad == CLIP_AGC ? "agc" :
            c->grad == CLIP_NORM ? "norm" : "global_norm");
    return -1;
}

/* Valid but surprising: [clip] weight on a model with several update groups
 * clamps every group (the WGAN recipe clamps the critic alone). */
static void warn_groups(const RunSpec *rs, const char *path) {
    int si = cfg_find_section(&rs->cfg, "clip");
    int ki = -1;
    for (int k = 0; si >= 0 && k < clip_config_section.nkeys; k++)
        if (!strcmp(clip_config_section.keys[k].name, "weight")) ki = k;
    if (rs->set.ngroups < 2 || si < 0 || ki < 0 || !rs->cfg.set[si][ki] || rs->set.clip.weight <= 0) return;
    char list[256] = "";
    int n = 0;
    for (int g = 0; g < rs->set.ngroups; g++)
        if (rs->set.groups[g].clip.weight > 0)
            n++, snprintf(list + strlen(list), sizeof list - strlen(list), "%s%s", strlen(list) ? ", " : "",
                          rs->set.groups[g].name);
    if (n < 2) return;
    fprintf(stderr, "cliplab: warning: %s: [clip] weight = %g clamps the weights of every update group "
            "(%s); to clamp one group alone (the WGAN critic), set [clip.%s] weight instead\n",
            path, rs->set.clip.weight, list, rs->set.groups[0].name);
}

static int check_combinations(const RunSpec *rs, const char *path) {
    if (check_optim(&rs->set.optim, rs->set.train.steps, "optim", path)) return -1;
    if (check_clip(&rs->set.clip, "clip", path)) return -1;
    char err[512];
    /* [scaler] "set": a key given with a value other than its default (a saved
     * config.ini writes every key at its value, and must load back quietly) */
    int si = cfg_find_section(&rs->cfg, "scaler"), scaler_set = 0;
    for (int k = 0; si >= 0 && k < rs->cfg.sections[si]->nkeys; k++)
        scaler_set |= rs->cfg.set[si][k] && !cfg_is_default(&rs->cfg.sections[si]->keys[k], rs->cfg.structs[si]);
    if (scaler_check(&rs->set.train, &rs->set.scaler, scaler_set, path, err, sizeof err, stderr)) {
        fprintf(stderr, "cliplab: error: %s\n", err);
        return -1;
    }
    if (dp_check(&rs->set.dp, rs->set.train.grad_accum, rs->set.train.precision, path, err,
                 sizeof err, stderr)) {
        fprintf(stderr, "cliplab: error: %s\n", err);
        return -1;
    }
    for (int g = 0; g < rs->set.ngroups; g++) {
        char sec[CFG_NAME_MAX + 8];
        snprintf(sec, sizeof sec, "optim.%s", rs->set.groups[g].name);
        if (check_optim(&rs->set.groups[g].optim, rs->set.train.steps, sec, path)) return -1;
        snprintf(sec, sizeof sec, "clip.%s", rs->set.groups[g].name);
        if (check_clip(&rs->set.groups[g].clip, sec, path)) return -1;
    }
    warn_groups(rs, path);
    return 0;
}
/* An argument that names a readable .ini file is a config, even with a '=' in
 * its path (a run folder named for its overrides holds a config.ini). */
static int is_config_file(const char *arg) {
    size_t n = strlen(arg);
    struct stat sb;
    return n > 4 && !strcmp(arg + n - 4, ".ini") && stat(arg, &sb) == 0 && S_ISREG(sb.st_mode);
}

static int cmp_str(const void *a, const void *b) {
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Hydra-style run names: the overrides that change a run's numbers (not
 * train.quiet, run.plots, ...: resume_key_outside), sorted and joined by
 * commas, so `./train a.ini clip.max_norm=0.25` writes runs/a,clip.max_norm=0.25
 * and never replaces runs/a; the same command names the same folder, so a
 * rerun replaces its own. Empty when there are none, or when an override
 * names the run or its folder itself. Too long for a folder name: a hash of
 * them stands in. */
static void override_suffix(char **ov, int n, char *out, size_t len) {
    char *keep[256];
    int k = 0;
    out[0] = '\0';
    for (int i = 0; i < n && k < 256; i++) {
        const char *eq = strchr(ov[i], '='), *dot = NULL;
        for (const char *p = ov[i]; eq && p < eq; p++)
            if (*p == '.') dot = p;
        if (!eq || !dot) continue;
        char sec[CFG_NAME_MAX * 2], key[CFG_NAME_MAX];
        snprintf(sec, sizeof sec, "%.*s", (int)(dot - ov[i]), ov[i]);
        snprintf(key, sizeof key, "%.*s", (int)(eq - dot - 1), dot + 1);
        if (!strcmp(sec, "run") && (!strcmp(key, "name") || !strcmp(key, "out_dir"))) return;
        if (!resume_key_outside(sec, key)) keep[k++] = ov[i];
    }
    qsort(keep, (size_t)k, sizeof *keep, cmp_str);
    size_t used = 0;
    unsigned long h = 1469598103934665603ul;
    for (int i = 0; i < k; i++) {
        for (const char *p = keep[i]; *p; p++) h = (h ^ (unsigned char)*p) * 1099511628211ul;
        h = (h ^ ',') * 1099511628211ul;
        if (used + 1 < len) used += (size_t)snprintf(out + used, len - used, "%s%s", i ? "," : "", keep[i]);
    }
    for (char *p = out; *p; p++)
        if (*p == '/' || (unsigned char)*p < 0x20) *p = '_';
    if (used > 100) snprintf(out, len, "overrides-%08lx", h & 0xfffffffful);
}

/* Load one config and the overrides; 0 on success, message printed otherwise. */
static int load_spec(RunSpec *rs, const char *path, char **overrides, int nover) {
    const CfgSection *secs[CFG_MAX_SECTIONS];
    void *structs[CFG_MAX_SECTIONS];
    int n = build_sections(secs, structs, rs);
    snprintf(rs->path, sizeof rs->path, "%s", path);
    cfg_init(&rs->cfg, secs, structs, n);
    cfg_renamed(&rs->cfg, "run", run_renamed_keys);
    cfg_renamed(&rs->cfg, "recovery", recovery_renamed_keys);
    for (int i = 0; i < model_registry_count; i++)
        if (model_registry[i]->section && model_registry[i]->renamed_keys)
            cfg_renamed(&rs->cfg, model_registry[i]->section->name, model_registry[i]->renamed_keys);
    for (int i = 0; i < model_registry_count; i++)
        rs->ngstore = train_groups_register(&rs->cfg, rs->gstore, rs->ngstore, MAX_GROUP_NAMES,
                                            model_registry[i]->groups);
    char err[1024];
    size_t plen = strlen(path);
    if (plen > 6 && !strcmp(path + plen - 6, ".sweep")) {
        fprintf(stderr, "cliplab: error: %s is a sweep spec, not a config: run it with ./train --sweep %s\n",
                path, path);
        return -1;
    }
    if (cfg_load_file(&rs->cfg, path, err, sizeof err) != CFG_OK) {
        fprintf(stderr, "cliplab: error: %s\n", err);
        return -1;
    }
    for (int i = 0; i < nover; i++)
        if (cfg_override(&rs->cfg, overrides[i], err, sizeof err) != CFG_OK) {
            fprintf(stderr, "cliplab: error: %s\n", err);
            return -1;
        }
    if (cfg_section_line(&rs->cfg, "model") == 0) {
        fprintf(stderr, "cliplab: error: %s: no [model] section (accepted: [model] type = one of",
                path);
        for (int i = 0; model_choices[i]; i++) fprintf(stderr, " %s", model_choices[i]);
        fprintf(stderr, ")\n");
        return -1;
    }
    const ModelDef *def = model_registry[rs->sel.type];
    for (int i = 0; i < model_registry_count; i++) {
        const ModelDef *o = model_registry[i];
        int si = o->section ? cfg_find_section(&rs->cfg, o->section->name) : -1;
        int line = si >= 0 ? rs->cfg.present[si] : 0;
        if (o != def && o->section) cfg_hide_section(&rs->cfg, o->section->name);
        int over = o->section ? cfg_section_override(&rs->cfg, o->section->name) : 0;
        if (o != def && over) {
            fprintf(stderr, "cliplab: error: override '%s': section [%s] does not apply to [model] "
                            "type = %s (accepted: [%s])\n",
                    overrides[over - 1], o->section->name, def->name,
                    def->section ? def->section->name : "no model section");
            return -1;
        }
        if (o != def && line) {
            fprintf(stderr, "cliplab: error: %s:%d: section [%s] does not apply to [model] type = %s"
                            " (accepted: [%s])\n",
                    path, line, o->section->name, def->name,
                    def->section ? def->section->name : "no model section");
            return -1;
        }
    }
    cfg_resolve_groups(&rs->cfg);
    if (train_groups_select(&rs->cfg, &rs->set, rs->gstore, rs->ngstore, def->groups, err,
                            sizeof err) != 0) {
        fprintf(stderr, "cliplab: error: %s\n", err);
        return -1;
    }
    for (int j = 0; j < rs->ngstore; j++) { /* other models' group sections are not written */
        int mine = 0;
        for (int g = 0; g < rs->set.ngroups; g++) mine |= !strcmp(rs->set.groups[g].name, rs->gstore[j].name);
        char sec[CFG_NAME_MAX + 8];
        snprintf(sec, sizeof sec, "optim.%s", rs->gstore[j].name);
        if (!mine) cfg_hide_section(&rs->cfg, sec);
        snprintf(sec, sizeof sec, "clip.%s", rs->gstore[j].name);
        if (!mine) cfg_hide_section(&rs->cfg, sec);
    }
    if (check_combinations(rs, path) != 0) return -1;
    cfg_warn_unused(&rs->cfg, stderr);
    /* derived defaults go through the same setter, so they are validated too */
    char value[2 * CFG_STR_MAX + 8]; /* a name and its override suffix */
    CfgStatus st = CFG_OK;
    char suffix[CFG_STR_MAX];
    override_suffix(overrides, nover, suffix, sizeof suffix);
    if (!rs->set.run.name[0] || suffix[0]) {
        if (rs->set.run.name[0]) snprintf(value, sizeof value, "%s", rs->set.run.name);
        else base_name(path, value, sizeof value);
        if (suffix[0]) snprintf(value + strlen(value), sizeof value - strlen(value), ",%s", suffix);
        st = cfg_set(&rs->cfg, "run", "name", value, path, err, sizeof err);
    }
    if (st == CFG_OK && rs->set.run.out_dir[0] && suffix[0]) { /* a folder the file names */
        snprintf(value, sizeof value, "%s,%s", rs->set.run.out_dir, suffix);
        st = cfg_set(&rs->cfg, "run", "out_dir", value, path, err, sizeof err);
    } else if (st == CFG_OK && !rs->set.run.out_dir[0]) {
        snprintf(value, sizeof value, "runs/%s", rs->set.run.name);
        st = cfg_set(&rs->cfg, "run", "out_dir", value, path, err, sizeof err);
    }
    if (st != CFG_OK) {
        fprintf(stderr, "cliplab: error: %s (set [run] name or out_dir)\n", err);
        return -1;
    }
    return check_run_name(rs->set.run.name, path);
}

/* The effective configuration, one line per section (config.ini in the run's
 * folder has the same values with every key's help). */
static void print_config(const Config *cfg, const char *path, int all) {
    printf("== %s (%s; every key in the run's config.ini%s)\n", path,
           all ? "effective settings" : "settings that differ from the defaults",
           all ? "" : ", or --all-settings");
    for (int i = 0; i < cfg->nsections; i++) {
        if (cfg->hidden[i]) continue;
        const CfgSection *sec = cfg->sections[i];
        int group = cfg->groups[i] != NULL, nshow = 0;
        for (int k = 0; k < sec->nkeys; k++)
            nshow += group ? cfg->set[i][k] : all || !cfg_is_default(&sec->keys[k], cfg->structs[i]);
        if (!nshow) continue; /* a group that follows its base; a section at its defaults */
        int col = printf("  [%s]", sec->name);
        for (int k = 0; k < sec->nkeys; k++) {
            if (group ? !cfg->set[i][k] : !all && cfg_is_default(&sec->keys[k], cfg->structs[i])) continue;
            char v[CFG_STR_MAX + 64];
            cfg_format_value(&sec->keys[k], cfg->structs[i], v, sizeof v);
            if (col > 70) col = printf("\n   ") - 1;
            col += printf(" %s=%s", sec->keys[k].name, v);
        }
        printf("\n");
    }
    fflush(stdout);
}

static void free_spec(RunSpec *rs) {
    cfg_free(&rs->cfg);
    for (int i = 0; i < model_registry_count; i++) free(rs->model_cfg[i]);
}

/* For --sweep: load one run's config exactly as a run would, then forget it. */
static int sweep_check(const char *config, char **overrides, int nover, SweepRunInfo *info) {
    RunSpec *rs = xcalloc(1, sizeof *rs);
    int rc = load_spec(rs, config, overrides, nover);
    if (rc == 0) {
        const ModelDef *def = model_registry[rs->sel.type];
        snprintf(info->main_metric, sizeof info->main_metric, "%s",
                 def->main_metric ? def->main_metric : "val_loss");
        info->main_metric_higher = def->main_metric_higher;
    }
    free_spec(rs);
    free(rs);
    return rc;
}

/* The comparison figure: the model's own when every run is of one model that has
 * one (the cliff draws its paths on the loss surface), else the trainer's. */
static int compare_runs(RunSpec *specs, const RunResult *res, int n, const char *path) {
    const ModelDef *def = model_registry[specs[0].sel.type];
    for (int i = 1; i < n; i++)
        if (specs[i].sel.type != specs[0].sel.type) def = NULL;
    int rc = 0;
    if (dist_size() > 1) { /* data-parallel runs: what the clip's place does to the update */
        rc = dist_compare_plot(res, n, path);
    } else if (!def || !def->compare_plot) {
        rc = trainer_compare_plot(res, n, path);
    } else {
        const void **cfgs = xcalloc((size_t)n, sizeof *cfgs);
        for (int i = 0; i < n; i++) cfgs[i] = specs[i].model_cfg[specs[i].sel.type];
        rc = def->compare_plot(res, cfgs, n, path);
        free(cfgs);
    }
    if (rc == 0) rc = trainer_compare_grad_hist(res, n, path);
    return rc;
}

/* The comparison figure's provenance: the runs' distinct seeds, in order. */
static void provenance_seeds(const RunSpec *specs, int n) {
    char seeds[256] = "";
    size_t m = 0;
    for (int i = 0; i < n && m < sizeof seeds; i++) {
        int dup = 0;
        for (int j = 0; j < i; j++) dup |= specs[j].set.run.seed == specs[i].set.run.seed;
        if (!dup)
            m += (size_t)snprintf(seeds + m, sizeof seeds - m, "%s%ld", m ? ", " : "",
                                  specs[i].set.run.seed);
    }
    plot_provenance("Seed", seeds);
}

/* ./train --plot RUN_DIR... [--compare OUT.png]: each folder's figures redrawn from its
 * config.ini and logs (nothing trained); several folders are also compared, as a
 * training command would compare them. */
static int plot_main(int argc, char **argv) {
    const char *dirs[MAX_RUNS], *compare = NULL;
    int n = 0;
    for (int i = 0; i < argc; i++) {
        if (!strcmp(argv[i], "--compare")) {
            if (i + 1 >= argc) usage_error("--compare needs an output path, e.g. --compare runs/cmp.png");
            compare = argv[++i];
        } else if (argv[i][0] == '-' || strchr(argv[i], '=')) {
            usage_error("--plot takes run folders and --compare OUT.png, not %s", argv[i]);
        } else {
            if (n == MAX_RUNS) usage_error("at most %d folders at once", MAX_RUNS);
            dirs[n++] = argv[i];
        }
    }
    if (n == 0) usage_error("--plot needs run folders, e.g. ./train --plot runs/rnn_clip");
    RunSpec *specs = xcalloc((size_t)n, sizeof *specs);
    RunResult *res = xcalloc((size_t)n, sizeof *res);
    int rc = 0;
    for (int i = 0; i < n && rc == 0; i++) {
        char path[256], over[256];
        size_t dl = strlen(dirs[i]);
        while (dl > 1 && dirs[i][dl - 1] == '/') dl--;
        if (dl > 180) usage_error("--plot: folder name longer than 180 characters: %s", dirs[i]);
        snprintf(path, sizeof path, "%.*s/config.ini", (int)dl, dirs[i]);
        snprintf(over, sizeof over, "run.out_dir=%.*s", (int)dl, dirs[i]);
        char *ov[2] = {over, "train.quiet=true"};
        if (access(path, R_OK) != 0) {
            fprintf(stderr, "cliplab: error: --plot %s: no config.ini there (is it a run folder?)\n",
                    dirs[i]);
            rc = EXIT_USAGE;
        } else if (load_spec(&specs[i], path, ov, 2) != 0) {
            rc = EXIT_USAGE;
        } else {
            RunSpec *sp = &specs[i];
            rc = trainer_replot(model_registry[sp->sel.type], sp->model_cfg[sp->sel.type], &sp->set,
                                &res[i]);
            if (rc == 0) printf("%s: figures redrawn in %s/\n", sp->set.run.name, sp->set.run.out_dir);
        }
    }
    if (rc == 0 && n > 1) {
        char cmp[2048];
        int k = snprintf(cmp, sizeof cmp, "%s", compare ? compare : "runs/compare");
        for (int i = 0; !compare && i < n && k < (int)sizeof cmp - 64; i++)
            k += snprintf(cmp + k, sizeof cmp - (size_t)k, "%s%s", i ? "_vs_" : "_",
                          specs[i].set.run.name);
        if (!compare) snprintf(cmp + k, sizeof cmp - (size_t)k, ".png"), mkdir("runs", 0777);
        provenance_seeds(specs, n);
        rc = compare_runs(specs, res, n, cmp) == 0 ? 0 : 1;
        if (rc == 0) printf("comparison plot: %s\n", cmp);
    }
    for (int i = 0; i < n; i++) {
        run_result_free(&res[i]);
        free_spec(&specs[i]);
    }
    free(res), free(specs);
    return rc;
}

/* --live: the window, observing every run; NULL and *rc = 2 when it cannot open. */
static LiveView *open_live(RunSpec *specs, int n, int *rc) {
    char err[768];
    LiveView *lv = live_view_open(err, sizeof err);
    if (!lv) {
        fprintf(stderr, "cliplab: error: --live: %s\n", err);
        *rc = 2;
        return NULL;
    }
    for (int i = 0; i < n; i++) specs[i].set.observer = live_view_observe, specs[i].set.observer_arg = lv;
    return lv;
}

/* Under mpirun: the ranks run one binary with one command line, or stop
 * naming the difference. The binary is compared by the CRC-32 of its file. */
static int run_main(int argc, char **argv);

static int ranks_agree(int argc, char **argv) {
    char *text = NULL, err[1024];
    size_t len = 0;
    FILE *f = open_memstream(&text, &len);
    for (int i = 1; i < argc; i++) fprintf(f, "argument %d: %s\n", i, argv[i]);
    fclose(f);
    int rc = dist_agree(text, "command lines", err, sizeof err);
    free(text);
    if (rc == 0) {
        char bin[64] = "unreadable";
        FILE *exe = fopen("/proc/self/exe", "rb");
        if (exe) {
            unsigned char buf[65536];
            uLong crc = crc32(0L, Z_NULL, 0);
            long total = 0;
            size_t n;
            while ((n = fread(buf, 1, sizeof buf, exe)) > 0) crc = crc32(crc, buf, (uInt)n), total += (long)n;
            fclose(exe);
            snprintf(bin, sizeof bin, "%ld bytes, CRC-32 %08lx", total, (unsigned long)crc);
        }
        rc = dist_agree(bin, "binaries of ./train", err, sizeof err);
    }
    if (rc != 0 && dist_rank() == 0) fprintf(stderr, "cliplab: error: %s\n", err);
    return rc;
}

/* OpenMP threads that sleep at a barrier instead of spinning: on a busy machine
 * (a student's laptop) a spinning thread takes the core its partner needs, and
 * [train] threads = 0 (all cores, the default) ran 2-5x slower than one thread
 * under load. libgomp reads OMP_WAIT_POLICY when it loads, before main, so the
 * setting takes effect by starting this program again with it (same pid, same
 * arguments; an MPI rank is re-executed before MPI_Init). A policy the user set
 * is kept; if the exec fails the run goes on with libgomp's default. */
static void omp_wait_passive(char **argv) {
    if (getenv("OMP_WAIT_POLICY")) return;
    if (setenv("OMP_WAIT_POLICY", "passive", 1) != 0) return;
    execv("/proc/self/exe", argv);
}

int main(int argc, char **argv) {
    omp_wait_passive(argv);
    blas_pin(); /* before any BLAS call, sweeps included: one kernel on every machine */
    ASSERT(model_registry_count < 63, "registry too large");
    for (int i = 0; i < model_registry_count; i++) model_choices[i] = model_registry[i]->name;
    model_keys[0].def = model_registry[0]->name;
    model_keys[0].offset = offsetof(ModelSel, type);

    set_provenance(argc, argv, 1);
    if (argc > 1 && !strcmp(argv[1], "--sweep")) return sweep_main(argc - 2, argv + 2, sweep_check);
    if (argc > 1 && !strcmp(argv[1], "--plot")) return plot_main(argc - 2, argv + 2);
    if (argc > 1 && (!strcmp(argv[1], "--dp-epsilon") || !strcmp(argv[1], "--dp-sigma")))
        return dp_epsilon_main(argc - 2, argv + 2, !strcmp(argv[1], "--dp-sigma"));
    /* ./train CONFIG under mpirun: one run, data-parallel over the ranks (dist.h) */
    if (dist_init() > 1) {
        set_provenance(argc, argv, dist_size()); /* the figures say how many ranks made them */
        int rc = ranks_agree(argc, argv) == 0 ? run_main(argc, argv) : EXIT_USAGE;
        return dist_finalize(rc);
    }
    return run_main(argc, argv);
}

/* ./train CONFIG ... (one process, or one rank of a data-parallel run). */
static int run_main(int argc, char **argv) {

    const char *paths[MAX_RUNS];
    char *overrides[256];
    /* CONFIG.ini:key=value:key=value: overrides for that config alone */
    char *own[MAX_RUNS][64];
    int nown[MAX_RUNS] = {0};
    int npaths = 0, nover = 0;
    const char *compare = NULL;
    int resume = 0, all_settings = 0;
    int live = 0; /* 1: --live (hold the last frame), 2: --live-close */
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        size_t alen = strlen(a);
        if (!strcmp(a, "--help") || !strcmp(a, "-h") || !strcmp(a, "--help-config")) {
            print_help(i + 1 < argc && argv[i + 1][0] != '-' ? argv[i + 1] : NULL);
            return 0;
        } else if (!strcmp(a, "--compare")) {
            if (i + 1 >= argc) usage_error("--compare needs an output path, e.g. --compare runs/cmp.png");
            compare = argv[++i];
        } else if (!strcmp(a, "--resume")) {
            resume = 1;
        } else if (!strcmp(a, "--all-settings")) {
            all_settings = 1;
        } else if (!strcmp(a, "--live") || !strcmp(a, "--live-close")) {
            live = !strcmp(a, "--live") ? 1 : 2;
        } else if (a[0] == '-') {
            static const char *const options[] = {"--help", "--help-config", "--compare", "--resume",
                                                  "--all-settings", "--live", "--live-close", "--sweep"};
            const char *near = cfg_closest(a, options, (int)(sizeof options / sizeof *options));
            usage(stderr);
            if (!strcmp(a, "--sweep")) usage_error("--sweep comes first: ./train --sweep CONFIG|SPEC.sweep ...");
            if (near) usage_error("unknown option %s; did you mean %s?", a, near);
            usage_error("unknown option %s", a);
        } else if (!strcmp(a, "=") || (a[0] == '=' && i > 1) ||
                   (alen > 1 && a[alen - 1] == '=' && i + 1 < argc && !strchr(argv[i + 1], '=') &&
                    argv[i + 1][0] != '-' && !strstr(argv[i + 1], ".ini"))) {
            /* clip.max_norm = 0.5 typed with spaces: two or three arguments */
            const char *key = a[0] == '=' && i > 1 ? argv[i - 1] : a, *val = "";
            if (!strcmp(a, "=")) val = i + 1 < argc ? argv[i + 1] : "";
            else if (a[0] == '=') val = a + 1;
            else val = argv[i + 1];
            int klen = (int)strcspn(key, "=");
            usage_error("'%.*s = %s': an override is one argument, with no spaces around '=' "
                        "(write %.*s=%s)", klen, key, val, klen, key, val);
        } else if (strstr(a, ".ini:") && strchr(a, '=')) {
            if (npaths == MAX_RUNS) usage_error("at most %d configs at once", MAX_RUNS);
            char *copy = xmalloc(alen + 1);
            memcpy(copy, a, alen + 1);
            char *colon = strstr(copy, ".ini:") + 4;
            *colon = '\0';
            for (char *tok = colon + 1; tok && *tok;) {
                char *next = strchr(tok, ':');
                if (next) *next++ = '\0';
                if (nown[npaths] == 64) usage_error("%s: at most 64 overrides for one config", copy);
                own[npaths][nown[npaths]++] = tok;
                tok = next;
            }
            paths[npaths++] = copy;
        } else if (strchr(a, '=') && !is_config_file(a)) { /* runs/a,clip.max_norm=1/config.ini is a file */
            if (nover == 256) usage_error("too many overrides (at most 256)");
            overrides[nover++] = argv[i];
        } else {
            if (npaths == MAX_RUNS) usage_error("at most %d configs at once", MAX_RUNS);
            paths[npaths++] = argv[i];
        }
    }
    if (npaths == 0) {
        usage(stderr);
        usage_error("no config file given (try: ./train configs/rnn_clip.ini)");
    }
    if (compare && npaths == 1)
        usage_error("--compare overlays two or more runs and one config was given (compare one config "
                    "with itself under other settings: ./train %s %s:clip.max_norm=0.25 --compare %s)",
                    paths[0], paths[0], compare);
    RunSpec *specs = xcalloc((size_t)npaths, sizeof *specs);
    int rc = 0;
    for (int i = 0; i < npaths && rc == 0; i++) {
        char *mine[256 + 64];
        int nmine = 0;
        for (int k = 0; k < nover; k++) mine[nmine++] = overrides[k];
        for (int k = 0; k < nown[i]; k++) mine[nmine++] = own[i][k];
        if (load_spec(&specs[i], paths[i], mine, nmine) != 0) rc = EXIT_USAGE;
    }
    if (dist_size() > 1 && dist_any(rc != 0)) { /* one rank's files may differ from another's */
        if (rc == 0) fprintf(stderr, "cliplab: error: rank %d: the config loads here but not on "
                                     "another rank (see its message)\n", dist_rank());
        rc = EXIT_USAGE;
    }
    if (rc == 0 && live && dist_size() > 1) {
        if (dist_rank() == 0) fprintf(stderr, "cliplab: error: --live under mpirun is not supported "
                                              "(run without --live; rank 0 writes the run's PNGs)\n");
        rc = EXIT_USAGE;
    }
    /* one folder, one run: compared resolved (runs/a and runs/./a/ are one folder) */
    char (*dirs)[4096] = xcalloc((size_t)npaths, sizeof *dirs);
    for (int i = 0; i < npaths && rc == 0; i++) {
        specs[i].set.run.resume = resume;
        if (runfolder_resolve(specs[i].set.run.out_dir, dirs[i], sizeof dirs[i]) != 0) /* the run says why */
            snprintf(dirs[i], sizeof dirs[i], "%s", specs[i].set.run.out_dir);
        for (int j = 0; j < i && rc == 0; j++)
            if (!strcmp(dirs[i], dirs[j])) {
                fprintf(stderr, "cliplab: error: %s and %s would both write %s (set [run] out_dir)\n",
                        paths[j], paths[i], dirs[i]);
                rc = EXIT_USAGE;
            }
    }
    free(dirs);
    char cmp_path[2048];
    if (compare) {
        snprintf(cmp_path, sizeof cmp_path, "%s", compare);
    } else {
        int k = snprintf(cmp_path, sizeof cmp_path, "runs/compare");
        for (int i = 0; i < npaths && k < (int)sizeof cmp_path - 64; i++)
            k += snprintf(cmp_path + k, sizeof cmp_path - (size_t)k, "%s%s", i ? "_vs_" : "_",
                          specs[i].set.run.name);
        snprintf(cmp_path + k, sizeof cmp_path - (size_t)k, ".png");
    }
    /* an earlier comparison of these names would show runs their folders no longer hold */
    if (rc == 0 && npaths > 1 && dist_rank() == 0) remove(cmp_path);
    LiveView *lv = rc == 0 && live ? open_live(specs, npaths, &rc) : NULL;
    RunResult *res = xcalloc((size_t)npaths, sizeof *res);
    if (rc == 0 && !specs[0].set.train.quiet && dist_rank() == 0) printf("BLAS: %s\n", blas_describe());
    for (int i = 0; i < npaths && rc == 0; i++) {
        RunSpec *s = &specs[i];
        if (!s->set.train.quiet && dist_rank() == 0) print_config(&s->cfg, s->path, all_settings);
        rc = trainer_run(model_registry[s->sel.type], s->model_cfg[s->sel.type], &s->set, &s->cfg,
                         &res[i]);
    }
    if (rc == 0 && npaths > 1 && dist_rank() == 0) {
        provenance_seeds(specs, npaths);
        if (!compare) mkdir("runs", 0777);
        rc = compare_runs(specs, res, npaths, cmp_path) == 0 ? 0 : 1;
        if (rc == 0) printf("comparison plot: %s\n", cmp_path);
    }
    if (lv) {
        if (live == 1) printf("live: training done; close the window (or press q) to exit\n");
        fflush(stdout);
        long frames = live_view_close(lv, live == 1);
        printf("live: %ld frames drawn\n", frames);
    }
    for (int i = 0; i < npaths; i++) {
        run_result_free(&res[i]);
        free_spec(&specs[i]);
    }
    free(res);
    free(specs);
    for (int i = 0; i < npaths; i++)
        if (nown[i]) free((char *)paths[i]);
    /* trainer_run: 0, 3 (non-finite, error policy) or another failure */
    return rc == EXIT_DONE || rc == EXIT_USAGE || rc == EXIT_NONFINITE ? rc : EXIT_FAILURE_OTHER;
}
