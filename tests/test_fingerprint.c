/* test_fingerprint.c: the resume fingerprint (src/train/resume.c) over every
 * key of every config table. For each key of each section ./train registers
 * (the shared ones, every model's, every group section of every model), the
 * key is changed to another accepted value: a resume.bin written with the
 * original settings must then be refused, naming the key, unless the key is in
 * the exclusion list the README documents; and the keys whose change leaves the
 * fingerprint alone must be exactly that list. The sections are checked
 * against `./train --help`, so a section added to ./train without being added
 * here fails. */
#include <criterion/criterion.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli.h"
#include "dist.h"
#include "dp.h"
#include "resume.h"
#include "scaler.h"
#include "trainer_fixture.h"

#define MAXSEC CFG_MAX_SECTIONS
#define STRUCT_BYTES (64 * 1024) /* more than any section's struct */

/* [model] as ./train registers it (main.c keeps its table private). */
static const char *model_names[64];
static const CfgKey model_keys[] = {
    {"type", CFG_ENUM, 0, "rnn", 0, 0, model_names, "which network and task to train"}};
static const CfgSection model_section = {"model", model_keys, 1, "the network to train", NULL};

typedef struct {
    Config cfg;
    void *structs[MAXSEC];
    GroupSettings gstore[32];
    TrainerSettings set;
} AllSections;

/* Every section of ./train: run, model, train, optim, clip, recovery, scaler,
 * dp, dist, each model's own, then each model's group sections; defaults applied. */
static void all_sections(AllSections *a) {
    for (int i = 0; i < model_registry_count; i++) model_names[i] = model_registry[i]->name;
    const CfgSection *secs[MAXSEC];
    int n = 0;
    const CfgSection *shared[] = {&run_config_section,   &model_section,
                                  &train_config_section, &optim_config_section,
                                  &clip_config_section,  &recovery_config_section,
                                  &scaler_config_section, &dp_config_section,
                                  &dist_config_section};
    for (size_t i = 0; i < sizeof shared / sizeof *shared; i++) secs[n++] = shared[i];
    for (int i = 0; i < model_registry_count; i++)
        if (model_registry[i]->section) secs[n++] = model_registry[i]->section;
    for (int i = 0; i < n; i++) {
        if (!a->structs[i]) a->structs[i] = calloc(1, STRUCT_BYTES);
        memset(a->structs[i], 0, STRUCT_BYTES);
        for (int k = 0; k < secs[i]->nkeys; k++)
            cr_assert(secs[i]->keys[k].offset + CFG_STR_MAX < STRUCT_BYTES, "raise STRUCT_BYTES");
    }
    cfg_init(&a->cfg, secs, a->structs, n);
    int ng = 0;
    for (int i = 0; i < model_registry_count; i++)
        ng = train_groups_register(&a->cfg, a->gstore, ng, 32, model_registry[i]->groups);
}

static void free_sections(AllSections *a) {
    cfg_free(&a->cfg);
    for (int i = 0; i < MAXSEC; i++) free(a->structs[i]);
}

/* Another value the key accepts, as text; 0 if the key has none. */
static int other_value(const CfgKey *k, const char *cur, char *out, size_t len) {
    switch (k->type) {
    case CFG_BOOL:
        snprintf(out, len, "%s", strcmp(cur, "true") == 0 ? "false" : "true");
        return 1;
    case CFG_ENUM: {
        int n = 0, at = 0;
        while (k->choices[n]) {
            if (!strcmp(k->choices[n], cur)) at = n;
            n++;
        }
        if (n < 2) return 0;
        snprintf(out, len, "%s", k->choices[(at + 1) % n]);
        return 1;
    }
    case CFG_STRING:
        snprintf(out, len, "%sx", cur);
        return 1;
    case CFG_INT:
    case CFG_LONG: {
        long v = strtol(cur, NULL, 10);
        long w = v + 1 <= k->max ? v + 1 : v - 1;
        if (w < k->min) return 0;
        snprintf(out, len, "%ld", w);
        return 1;
    }
    case CFG_DOUBLE:
    case CFG_NORM: {
        double v = strtod(cur, NULL), w;
        if (isinf(v)) w = k->min > 2 ? k->min : 2;
        else if (v * 1.5 + 0.125 <= k->max) w = v * 1.5 + 0.125;
        else if (k->type == CFG_NORM) w = INFINITY;
        else w = 0.5 * (v + k->min);
        if (w == v) return 0;
        if (isinf(w)) snprintf(out, len, "inf");
        else snprintf(out, len, "%.17g", w);
        return 1;
    }
    }
    return 0;
}

/* The exclusion list as the README states it: the backquoted keys after
 * "except these, which cannot:" up to the ';'. */
static int readme_exclusions(char list[][96], int cap) {
    FILE *f = fopen("README.md", "r");
    cr_assert(f, "README.md not found (tests run from the repository root)");
    static char text[1 << 18];
    size_t n = fread(text, 1, sizeof text - 1, f);
    fclose(f);
    text[n] = '\0';
    for (char *p = text; *p; p++)
        if (*p == '\n') *p = ' ';
    const char *mark = "except these, which cannot:";
    char *s = strstr(text, mark);
    cr_assert(s, "README.md no longer says \"%s\" before the resume exclusion list", mark);
    s += strlen(mark);
    char *end = strchr(s, ';');
    cr_assert(end);
    int k = 0;
    for (char *p = strchr(s, '`'); p && p < end && k < cap; p = strchr(p + 1, '`')) {
        char *q = strchr(p + 1, '`');
        cr_assert(q && q < end);
        snprintf(list[k++], 96, "%.*s", (int)(q - p - 1), p + 1);
        p = q;
    }
    return k;
}

Test(fingerprint, every_key_outside_the_documented_list_refuses_a_resume, .init = cli_mkdir,
     .fini = cli_rmdir, .timeout = 600) {
    AllSections *a = calloc(1, sizeof *a);
    all_sections(a);
    char *fp0 = resume_fingerprint(&a->cfg);
    /* a resume.bin written with the default settings, in the fixture trainer */
    int rows[1] = {2};
    Fixture *x = fix_new(rows, 1, NULL, 0, 1);
    snprintf(x->tr.run.out_dir, sizeof x->tr.run.out_dir, "%s", cli_dir);
    char err[2048];
    cr_assert_eq(resume_save(&x->tr, fp0, err, sizeof err), 0, "%s", err);
    double elapsed;
    /* the trainer is the same and so is every setting: accepted up to the logs
     * (the fixture has no metrics.csv to cut back), not for the settings */
    cr_assert_neq(resume_load(&x->tr, fp0, &elapsed, err, sizeof err), 0);
    cr_assert(!strstr(err, "other settings"), "%s", err);

    char excluded[256][160];
    int nex = 0, nkeys = 0;
    int nsec = a->cfg.nsections;
    for (int s = 0; s < nsec; s++) {
        for (int k = 0; k < a->cfg.sections[s]->nkeys; k++) {
            /* a fresh configuration each time: every default, this key changed */
            free_sections(a);
            memset(a, 0, sizeof *a);
            all_sections(a);
            cr_assert_eq(a->cfg.nsections, nsec);
            const CfgSection *sec = a->cfg.sections[s];
            const CfgKey *key = &sec->keys[k];
            char cur[CFG_STR_MAX + 64], val[CFG_STR_MAX + 128], name[160];
            snprintf(name, sizeof name, "%s.%s", sec->name, key->name);
            cfg_format_value(key, a->cfg.structs[s], cur, sizeof cur);
            cr_assert(other_value(key, cur, val, sizeof val), "%s: no other value than %s", name, cur);
            CfgStatus st = cfg_set(&a->cfg, sec->name, key->name, val, "test", err, sizeof err);
            cr_assert_eq(st, CFG_OK, "%s=%s: %s", name, val, err);
            nkeys++;
            char *fp1 = resume_fingerprint(&a->cfg);
            if (strcmp(fp0, fp1) == 0) {
                cr_assert(nex < 256);
                snprintf(excluded[nex++], 160, "%s", name);
            } else {
                err[0] = '\0';
                cr_assert_neq(resume_load(&x->tr, fp1, &elapsed, err, sizeof err), 0,
                              "%s changed from %s to %s: the resume was accepted", name, cur, val);
                char want[200];
                snprintf(want, sizeof want, "%s = ", name);
                cr_assert(strstr(err, "other settings") && strstr(err, want),
                          "%s changed: the refusal does not name it: %s", name, err);
            }
            free(fp1);
        }
    }
    cr_log_info("%d keys in %d sections changed one at a time", nkeys, nsec);
    cr_assert_gt(nkeys, 150, "only %d keys seen", nkeys);

    char doc[64][96];
    int ndoc = readme_exclusions(doc, 64);
    cr_assert_gt(ndoc, 0);
    for (int i = 0; i < nex; i++) {
        int found = 0;
        for (int j = 0; j < ndoc; j++) found |= !strcmp(excluded[i], doc[j]);
        cr_assert(found, "changing %s does not change the fingerprint, but the README does not "
                         "list it among the keys a resume may change", excluded[i]);
    }
    for (int j = 0; j < ndoc; j++) {
        int found = 0;
        for (int i = 0; i < nex; i++) found |= !strcmp(excluded[i], doc[j]);
        cr_assert(found, "the README says %s may change on a resume, but changing it refuses "
                         "the resume (or it is not a key)", doc[j]);
    }
    free(fp0);
    fix_free(x);
    free_sections(a);
    free(a);
}

/* The sections above are the ones ./train reads: every [section] its --help
 * lists is registered here. */
Test(fingerprint, covers_every_section_of_train_help, .init = cli_mkdir, .fini = cli_rmdir) {
    AllSections *a = calloc(1, sizeof *a);
    all_sections(a);
    char cmd[700];
    snprintf(cmd, sizeof cmd, "%s --help", cli_bin);
    FILE *p = popen(cmd, "r");
    cr_assert(p);
    char line[1024];
    int n = 0;
    while (fgets(line, sizeof line, p)) {
        char name[128];
        if (line[0] != '[' || sscanf(line, "[%127[a-z0-9_.]]  ", name) != 1) continue;
        cr_assert_geq(cfg_find_section(&a->cfg, name), 0,
                      "./train --help lists [%s]: add it to tests/test_fingerprint.c's sections", name);
        n++;
    }
    cr_assert_eq(pclose(p), 0);
    cr_assert_geq(n, 6, "./train --help lists %d sections", n);
    free_sections(a);
    free(a);
}
