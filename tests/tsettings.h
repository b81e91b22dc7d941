/* tsettings.h: TrainerSettings for tests, made the way ./train makes them:
 * every section's defaults, the group sections of a model's groups, then an
 * INI text through the real loader, the groups resolved and selected.
 * Header-only, for tests; failures fail the current Criterion test. */
#ifndef CLIPLAB_TESTS_TSETTINGS_H
#define CLIPLAB_TESTS_TSETTINGS_H

#include <criterion/criterion.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "train.h"

typedef struct TSettings {
    TrainerSettings s;
    GroupSettings store[4];
    Config cfg;            /* cfg_free() it when done (its group sections) */
} TSettings;

/* model_sec / model_struct: the model's own section and the struct it fills (NULL: none). */
static inline void tsettings_load(TSettings *t, const char *const *groups, const CfgSection *model_sec,
                                  void *model_struct, const char *ini) {
    memset(&t->s, 0, sizeof t->s);
    const CfgSection *secs[] = {&run_config_section,  &train_config_section,    &optim_config_section,
                                &clip_config_section, &recovery_config_section, &scaler_config_section,
                                &dp_config_section, &dist_config_section, model_sec};
    void *structs[] = {&t->s.run,      &t->s.train,  &t->s.optim, &t->s.clip,
                       &t->s.recovery, &t->s.scaler, &t->s.dp,    &t->s.dist, model_struct};
    cfg_init(&t->cfg, secs, structs, model_sec ? 9 : 8);
    int n = train_groups_register(&t->cfg, t->store, 0, 4, groups);
    char path[] = "/tmp/cliplab_tsettings_XXXXXX";
    int fd = mkstemp(path);
    cr_assert(fd >= 0);
    FILE *f = fdopen(fd, "w");
    fputs(ini, f);
    fclose(f);
    char err[1024];
    CfgStatus rc = cfg_load_file(&t->cfg, path, err, sizeof err);
    unlink(path);
    cr_assert_eq(rc, CFG_OK, "%s", err);
    cfg_resolve_groups(&t->cfg);
    cr_assert_eq(train_groups_select(&t->cfg, &t->s, t->store, n, groups, err, sizeof err), 0, "%s", err);
    t->s.train.quiet = 1;
}

#endif
