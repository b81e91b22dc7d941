/* fuzz_sections.h: the sections ./train registers (src/cli/main.c builds the
 * same list), for the config and override fuzz targets, and the round-trip
 * check both end with: an accepted config, written by cfg_write, loads back to
 * the same value of every key it writes (keys a run does not read are written
 * as comments, so they load back as defaults). A broken property aborts, which libFuzzer reports. */
#ifndef CLIPLAB_FUZZ_SECTIONS_H
#define CLIPLAB_FUZZ_SECTIONS_H

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "clipper.h"
#include "config.h"
#include "model.h"
#include "optim.h"
#include "recovery.h"
#include "train.h"

#define FUZZ_CHECK(cond, ...)                                     \
    do {                                                          \
        if (!(cond)) {                                            \
            fprintf(stderr, "fuzz property failed: %s: ", #cond); \
            fprintf(stderr, __VA_ARGS__);                         \
            fputc('\n', stderr);                                  \
            abort();                                              \
        }                                                         \
    } while (0)

typedef struct FuzzSpec {
    TrainerSettings set;
    ModelSel sel;
    void *model_cfg[64];
    GroupSettings gstore[16]; /* [optim.G]/[clip.G] of every model's groups, as main.c */
    int ngstore;
    Config cfg;
} FuzzSpec;

static const char *fuzz_model_choices[64];
static CfgKey fuzz_model_keys[1];
static CfgSection fuzz_model_section;

static void fuzz_spec_init(FuzzSpec *s) {
    if (!fuzz_model_section.name) {
        for (int i = 0; i < model_registry_count; i++) fuzz_model_choices[i] = model_registry[i]->name;
        fuzz_model_keys[0] = (CfgKey){"type", CFG_ENUM, offsetof(ModelSel, type), model_registry[0]->name,
                                      0, 0, fuzz_model_choices, "which network"};
        fuzz_model_section = (CfgSection){"model", fuzz_model_keys, 1, "the network to train"};
    }
    memset(s, 0, sizeof *s);
    const CfgSection *secs[CFG_MAX_SECTIONS];
    void *structs[CFG_MAX_SECTIONS];
    int n = 0;
    secs[n] = &run_config_section, structs[n] = &s->set.run, n++;
    secs[n] = &fuzz_model_section, structs[n] = &s->sel, n++;
    secs[n] = &train_config_section, structs[n] = &s->set.train, n++;
    secs[n] = &optim_config_section, structs[n] = &s->set.optim, n++;
    secs[n] = &clip_config_section, structs[n] = &s->set.clip, n++;
    secs[n] = &recovery_config_section, structs[n] = &s->set.recovery, n++;
    secs[n] = &scaler_config_section, structs[n] = &s->set.scaler, n++;
    secs[n] = &dp_config_section, structs[n] = &s->set.dp, n++;
    for (int i = 0; i < model_registry_count; i++) {
        if (!model_registry[i]->section) continue;
        s->model_cfg[i] = calloc(1, model_registry[i]->cfg_size);
        secs[n] = model_registry[i]->section, structs[n++] = s->model_cfg[i];
    }
    cfg_init(&s->cfg, secs, structs, n);
    for (int i = 0; i < model_registry_count; i++)
        s->ngstore = train_groups_register(&s->cfg, s->gstore, s->ngstore, 16, model_registry[i]->groups);
}

static void fuzz_spec_free(FuzzSpec *s) {
    cfg_free(&s->cfg);
    for (int i = 0; i < 64; i++) free(s->model_cfg[i]);
}

/* cfg_write(a) loads into a fresh spec with every value equal. */
static void fuzz_round_trip(const FuzzSpec *a) {
    char *text = NULL, err[2048];
    size_t len = 0;
    FILE *f = open_memstream(&text, &len);
    cfg_write(&a->cfg, f);
    fclose(f);
    FuzzSpec *b = calloc(1, sizeof *b);
    fuzz_spec_init(b);
    CfgStatus st = cfg_load_buffer(&b->cfg, "written.ini", text, len, err, sizeof err);
    FUZZ_CHECK(st == CFG_OK, "the written config does not load: %s\n%s", err, text);
    /* every key written live (not commented out as unread; a group's own keys) */
    for (int i = 0; i < a->cfg.nsections; i++) {
        const CfgSection *sec = a->cfg.sections[i];
        if (a->cfg.hidden[i]) continue;
        for (int j = 0; j < sec->nkeys; j++) {
            if (a->cfg.groups[i] && !a->cfg.set[i][j]) continue;
            if (sec->unused && sec->unused(a->cfg.structs[i], &sec->keys[j])) continue;
            char va[CFG_STR_MAX + 64], vb[CFG_STR_MAX + 64];
            cfg_format_value(&sec->keys[j], a->cfg.structs[i], va, sizeof va);
            cfg_format_value(&sec->keys[j], b->cfg.structs[i], vb, sizeof vb);
            FUZZ_CHECK(!strcmp(va, vb), "[%s] %s = %s, %s after the round trip:\n%s", sec->name,
                       sec->keys[j].name, va, vb, text);
        }
    }
    fuzz_spec_free(b);
    free(b);
    free(text);
}

#endif
