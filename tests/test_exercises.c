/* test_exercises.c: the exercise sheet stays true. docs/exercises.md answers
 * each exercise with the commands that measure it, in a ```sh check block,
 * followed by the output they print, in a ```text block. This test runs
 * every check block in a fresh folder (./train and configs/ linked in, as a
 * student runs them from the repository) and compares what it prints with
 * the sheet, so a change to the code that changes an answer fails here until
 * the sheet is remeasured. Blocks marked ```sh slow are measured by hand
 * (minutes of training) and only counted. */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"

#define SHEET "docs/exercises.md"

static char *slurp_text(const char *path) {
    FILE *f = fopen(path, "r");
    cr_assert(f, "cannot open %s (run from the repository root)", path);
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    char *b = malloc((size_t)n + 1);
    cr_assert_eq(fread(b, 1, (size_t)n, f), (size_t)n);
    b[n] = '\0';
    fclose(f);
    return b;
}

/* Text with leading and trailing white space cut (in place). */
static char *trim(char *s) {
    while (*s == ' ' || *s == '\n' || *s == '\t') s++;
    size_t n = strlen(s);
    while (n && (s[n - 1] == ' ' || s[n - 1] == '\n' || s[n - 1] == '\t')) s[--n] = '\0';
    return s;
}

/* The fenced block whose opening line starts at *p ("```info\n"): its body
 * (a copy) and, in *p, the text after its closing fence. */
static char *fence_body(const char **p) {
    const char *body = strchr(*p, '\n');
    cr_assert(body, "unterminated fence");
    body++;
    const char *end = strstr(body, "\n```");
    cr_assert(end, "unterminated fence");
    size_t n = (size_t)(end - body) + 1;
    char *b = malloc(n + 1);
    memcpy(b, body, n);
    b[n] = '\0';
    *p = end + 4;
    return b;
}

Test(exercises, every_fast_answer_on_the_sheet_is_what_cliplab_prints, .init = cli_mkdir,
     .fini = cli_rmdir, .timeout = 1200) {
    char cwd[512];
    cr_assert(getcwd(cwd, sizeof cwd));
    char *sheet = slurp_text(SHEET);
    int exercises = 0, checked = 0, slow = 0;
    for (const char *p = sheet; (p = strstr(p, "\n## Exercise ")); p++) exercises++;
    cr_assert(exercises >= 12, "%d exercises on the sheet (at least 12)", exercises);
    char cmd[4096];
    snprintf(cmd, sizeof cmd, "ln -s %s %s/train && ln -s %s/configs %s/configs", cli_bin, cli_dir, cwd,
             cli_dir);
    cr_assert_eq(system(cmd), 0);
    const char *p = sheet;
    while ((p = strstr(p, "```sh "))) {
        int is_check = !strncmp(p + 6, "check\n", 6);
        slow += !strncmp(p + 6, "slow\n", 5);
        /* the exercise it answers, for messages */
        char title[160] = "?";
        for (const char *h = p; h > sheet; h--)
            if (!strncmp(h, "\n## Exercise ", 13)) {
                snprintf(title, sizeof title, "%.*s", (int)strcspn(h + 4, "\n"), h + 4);
                break;
            }
        char *script = fence_body(&p);
        if (!is_check) {
            free(script);
            continue;
        }
        const char *q = p;
        while (*q == '\n' || *q == ' ') q++;
        cr_assert(!strncmp(q, "```text\n", 8), "%s: a ```sh check block must be followed by the "
                  "```text block of its output", title);
        char *expect = fence_body(&q);
        p = q;
        char path[600];
        snprintf(path, sizeof path, "%s/script.sh", cli_dir);
        FILE *f = fopen(path, "w");
        cr_assert(f);
        fputs(script, f);
        fclose(f);
        snprintf(cmd, sizeof cmd, "cd %s && rm -rf runs && sh -e script.sh >out.txt 2>err.txt", cli_dir);
        int st = system(cmd);
        snprintf(path, sizeof path, "%s/out.txt", cli_dir);
        char *out = slurp_text(path);
        snprintf(path, sizeof path, "%s/err.txt", cli_dir);
        char *err = slurp_text(path);
        cr_assert(WIFEXITED(st) && WEXITSTATUS(st) == 0, "%s: the commands failed (status %d):\n%s\n%s",
                  title, WEXITSTATUS(st), script, err);
        cr_assert_str_eq(trim(out), trim(expect), "%s: the sheet says\n%s\nbut the commands print\n%s",
                         title, trim(expect), trim(out));
        checked++;
        free(out), free(err), free(expect), free(script);
    }
    cr_log_info("%d exercises, %d answers checked, %d slow ones measured by hand", exercises, checked, slow);
    cr_assert(checked >= 10, "only %d answers checked", checked);
    free(sheet);
}
