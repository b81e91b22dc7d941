/* cli.h: run ./train the way a user does, inside a fresh temporary folder per
 * test (tests only). Use as .init = cli_mkdir, .fini = cli_rmdir. The binary is
 * CLIPLAB_TRAIN (set by `make test` for the build under test) or ./train,
 * resolved against the folder the tests were started from (the repo root). */
#ifndef CLIPLAB_TESTS_CLI_H
#define CLIPLAB_TESTS_CLI_H

#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

static char cli_dir[256];
static char cli_bin[512];

static inline void cli_mkdir(void) {
    snprintf(cli_dir, sizeof cli_dir, "/tmp/cliplab_test_XXXXXX");
    cr_assert(mkdtemp(cli_dir));
    const char *b = getenv("CLIPLAB_TRAIN");
    char cwd[256];
    cr_assert(getcwd(cwd, sizeof cwd));
    snprintf(cli_bin, sizeof cli_bin, "%s/%s", cwd, b && *b ? b : "train");
    cr_assert(access(cli_bin, X_OK) == 0, "%s not built", cli_bin);
    /* Open MPI's session folder inside the test's own: two tests starting mpirun
     * at the same moment raced on /tmp/ompi.HOST.UID ("mkdir ... File exists",
     * orte_init failed) on a CI machine */
    cr_assert(setenv("OMPI_MCA_orte_tmpdir_base", cli_dir, 1) == 0);
}

static inline void cli_rmdir(void) {
    char cmd[300];
    snprintf(cmd, sizeof cmd, "rm -rf %s", cli_dir);
    cr_assert(system(cmd) == 0);
}

static inline void cli_write(const char *name, const char *text) {
    char path[512];
    snprintf(path, sizeof path, "%s/%s", cli_dir, name);
    FILE *f = fopen(path, "w");
    cr_assert(f, "cannot write %s", path);
    fputs(text, f);
    fclose(f);
}

static inline int cli_exists(const char *rel) {
    char path[512];
    struct stat sb;
    snprintf(path, sizeof path, "%s/%s", cli_dir, rel);
    return stat(path, &sb) == 0;
}

/* Run ./train ARGS in the folder; returns its exit status. out receives its
 * stderr (merge = 0; stdout goes to stdout.txt) or stdout and stderr together. */
static inline int cli_run(const char *args, char *out, size_t outlen, int merge) {
    char cmd[2048], path[512];
    snprintf(cmd, sizeof cmd, "cd %s && %s %s >stdout.txt %s", cli_dir, cli_bin, args,
             merge ? "2>&1" : "2>stderr.txt");
    int st = system(cmd);
    snprintf(path, sizeof path, "%s/%s", cli_dir, merge ? "stdout.txt" : "stderr.txt");
    FILE *f = fopen(path, "r");
    cr_assert(f);
    size_t n = fread(out, 1, outlen - 1, f);
    out[n] = '\0';
    fclose(f);
    cr_assert(WIFEXITED(st), "./train %s did not exit normally", args);
    return WEXITSTATUS(st);
}

#endif
