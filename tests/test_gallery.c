/* test_gallery.c: every figure the gallery (docs/README.md) shows is committed
 * in docs/figures/ as a PNG, and is written by the command the gallery names:
 * its "`make T` (figure: `S`)" line matches an entry T:S:NAME of the
 * Makefile's GALLERY list, whose target T exists and whose `make figures`
 * recipe copies S to docs/figures/NAME (checked on `make -n figures FIGURES=all`;
 * the default keeps the long trainings' figures). Runs from the repository root,
 * as `make test` does. */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static char *slurp(const char *path) {
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    size_t cap = 1 << 16, n = 0, got;
    char *b = malloc(cap + 1);
    while ((got = fread(b + n, 1, cap - n, f)) > 0)
        if ((n += got) == cap) b = realloc(b, (cap *= 2) + 1);
    fclose(f);
    b[n] = '\0';
    return b;
}

static char *dry_run(void) {
    FILE *p = popen("make -n --no-print-directory figures FIGURES=all 2>&1", "r");
    cr_assert(p, "cannot run make -n figures");
    size_t cap = 1 << 16, n = 0, got;
    char *b = malloc(cap + 1);
    while ((got = fread(b + n, 1, cap - n, p)) > 0)
        if ((n += got) == cap) b = realloc(b, (cap *= 2) + 1);
    b[n] = '\0';
    cr_assert_eq(pclose(p), 0, "make -n figures failed:\n%s", b);
    return b;
}

Test(gallery, every_figure_has_its_command) {
    char *doc = slurp("docs/README.md"), *mk = slurp("Makefile");
    cr_assert(doc && mk, "run from the repository root (docs/README.md, Makefile)");
    char *dry = dry_run();
    int figures = 0;
    for (const char *p = doc; (p = strstr(p, "](figures/")) != NULL; p++) {
        char name[128];
        cr_assert_eq(sscanf(p, "](figures/%127[^)])", name), 1);
        /* the file is there and is a PNG */
        char path[256];
        snprintf(path, sizeof path, "docs/figures/%s", name);
        FILE *f = fopen(path, "rb");
        cr_assert(f, "the gallery shows %s, which is not committed", path);
        unsigned char sig[8] = {0};
        cr_assert_eq(fread(sig, 1, 8, f), 8);
        fclose(f);
        cr_assert(!memcmp(sig, "\x89PNG\r\n\x1a\n", 8), "%s is not a PNG", path);
        /* the command under it */
        const char *cmd = strstr(p, "`make ");
        cr_assert(cmd, "no `make TARGET` after %s", name);
        char target[64], src[256];
        cr_assert_eq(sscanf(cmd, "`make %63[^`]` (figure: `%255[^`]`)", target, src), 2,
                     "after %s the gallery should say `make T` (figure: `runs/...`)", name);
        char entry[512];
        snprintf(entry, sizeof entry, "%s:%s:%s", target, src, name);
        cr_assert(strstr(mk, entry), "the Makefile's GALLERY lacks %s", entry);
        char copy[600];
        snprintf(copy, sizeof copy, "cp %s docs/figures/%s", src, name);
        cr_assert(strstr(dry, copy), "make figures does not run '%s'", copy);
        char rule[80];
        snprintf(rule, sizeof rule, "\n%s:", target);
        cr_assert(strstr(mk, rule), "no make target %s", target);
        figures++;
    }
    cr_assert_geq(figures, 10, "the gallery shows only %d figures", figures);
    free(doc), free(mk), free(dry);
}
