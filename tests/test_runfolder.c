/* test_runfolder.c: one run per folder (src/train/runfolder.c): resolved
 * paths, the swap that replaces a previous run whole, refusals (a folder of
 * other files, a folder another run holds), and the marker's life. */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <dirent.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cli.h"
#include "runfolder.h"

TestSuite(runfolder, .init = cli_mkdir, .fini = cli_rmdir);

static void resolved(const char *rel, char *out) {
    char p[1024];
    snprintf(p, sizeof p, "%s/%s", cli_dir, rel);
    cr_assert_eq(runfolder_resolve(p, out, 4096), 0, "%s", p);
}

Test(runfolder, resolve_compares_folders_not_text) {
    char a[4096], b[4096], c[4096], d[4096], e[4096];
    cr_assert_eq(mkdir(strcat(strcpy(a, cli_dir), "/runs"), 0777), 0);
    resolved("runs/a", a);
    resolved("runs/./a/", b);
    resolved("runs//x/../a", c);
    resolved("./runs/a/.", d);
    cr_assert_str_eq(a, b);
    cr_assert_str_eq(a, c);
    cr_assert_str_eq(a, d);
    char link[1024], target[1024];
    snprintf(link, sizeof link, "%s/alias", cli_dir);
    snprintf(target, sizeof target, "%s/runs", cli_dir);
    cr_assert_eq(symlink(target, link), 0);
    resolved("alias/a", e);
    cr_assert_str_eq(a, e, "a symlinked parent is the same folder");
    resolved("runs/b", e);
    cr_assert_str_neq(a, e);
    cr_assert(a[0] == '/' && !strstr(a, "//") && !strstr(a, "/./"), "%s", a);
}

static int count_entries(const char *rel) {
    char path[512];
    snprintf(path, sizeof path, "%s/%s", cli_dir, rel);
    int n = 0;
    DIR *d = opendir(path);
    cr_assert(d, "%s", path);
    struct dirent *e;
    while ((e = readdir(d))) n += strcmp(e->d_name, ".") && strcmp(e->d_name, "..");
    closedir(d);
    return n;
}

Test(runfolder, a_new_run_replaces_the_previous_one_whole) {
    char dir[1024], err[1024];
    RunFolder rf;
    snprintf(dir, sizeof dir, "%s/runs/x", cli_dir);
    cr_assert_eq(runfolder_state(dir), RUNFOLDER_ABSENT);
    cr_assert_eq(runfolder_begin(&rf, dir, "run one\n", err, sizeof err), 0, "%s", err);
    cr_assert_eq(runfolder_state(dir), RUNFOLDER_IN_PROGRESS);
    cr_assert_eq(count_entries("runs/x"), 1);
    cli_write("runs/x/config.ini", "; cliplab effective configuration: every key\n[run]\n");
    cli_write("runs/x/metrics.csv", "step,loss\n0,1\n");
    cli_write("runs/x/loss.png", "png");
    cr_assert_eq(runfolder_complete(&rf, err, sizeof err), 0, "%s", err);
    cr_assert_eq(runfolder_state(dir), RUNFOLDER_COMPLETE);
    cr_assert(!cli_exists("runs/x/" RUNFOLDER_MARKER));
    /* the next run: only its marker, nothing of the previous run, no leftovers */
    cr_assert_eq(runfolder_begin(&rf, dir, "run two\n", err, sizeof err), 0, "%s", err);
    cr_assert_eq(count_entries("runs/x"), 1, "the previous run's files are still there");
    cr_assert(cli_exists("runs/x/" RUNFOLDER_MARKER));
    cr_assert_eq(count_entries("runs"), 1, "leftover swap folders in runs/");
    /* an interrupted run (marker, not locked: its process is gone) is replaced too */
    runfolder_release(&rf);
    cli_write("runs/x/metrics.csv", "step,loss\n");
    cr_assert_eq(runfolder_begin(&rf, dir, "run three\n", err, sizeof err), 0, "%s", err);
    cr_assert_eq(count_entries("runs/x"), 1);
    runfolder_release(&rf);
}

Test(runfolder, refuses_other_files_and_a_live_run) {
    char dir[1024], err[1024];
    RunFolder rf, rf2;
    cli_write("notes.txt", "my thesis\n");
    cr_assert_eq(runfolder_begin(&rf, cli_dir, "x\n", err, sizeof err), -1);
    cr_assert(strstr(err, "not a cliplab run") && strstr(err, "notes.txt"), "%s", err);
    cr_assert(cli_exists("notes.txt"), "a foreign folder was touched");
    snprintf(dir, sizeof dir, "%s/notes.txt", cli_dir);
    cr_assert_eq(runfolder_begin(&rf, dir, "x\n", err, sizeof err), -1);
    cr_assert(strstr(err, "is a file"), "%s", err);
    /* a run holds its folder: a second one is refused, the first is intact */
    snprintf(dir, sizeof dir, "%s/r", cli_dir);
    cr_assert_eq(runfolder_begin(&rf, dir, "pid 1 run a\n", err, sizeof err), 0, "%s", err);
    cli_write("r/metrics.csv", "step\n");
    cr_assert_eq(runfolder_begin(&rf2, dir, "y\n", err, sizeof err), -1);
    cr_assert(strstr(err, "another ./train") && strstr(err, "pid 1 run a"), "%s", err);
    cr_assert_eq(runfolder_continue(&rf2, dir, err, sizeof err), -1);
    cr_assert(cli_exists("r/metrics.csv"));
    runfolder_release(&rf);
    /* once released (the process is gone), it can be continued */
    cr_assert_eq(runfolder_continue(&rf2, dir, err, sizeof err), 0, "%s", err);
    cr_assert_eq(runfolder_complete(&rf2, err, sizeof err), 0, "%s", err);
    cr_assert_eq(runfolder_continue(&rf2, dir, err, sizeof err), -1);
    cr_assert(strstr(err, "no interrupted run"), "%s", err);
}
