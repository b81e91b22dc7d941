/* test_suite.c: rules the test suite keeps about itself.
 * - No test skips through Criterion directly: a skip passes silently in
 *   Criterion's summary, so every skip goes through tskip() (tests/tskip.h),
 *   which fails unless CLIPLAB_ALLOW_SKIP=1 and is then listed by make test. */
#include <criterion/criterion.h>
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

Test(suite, every_skip_goes_through_tskip) {
    DIR *d = opendir("tests");
    cr_assert(d, "run from the repository root");
    int files = 0;
    for (struct dirent *e; (e = readdir(d));) {
        size_t n = strlen(e->d_name);
        if (n < 3 || (strcmp(e->d_name + n - 2, ".c") && strcmp(e->d_name + n - 2, ".h")) ||
            !strcmp(e->d_name, "tskip.h"))
            continue;
        char path[512], line[4096];
        snprintf(path, sizeof path, "tests/%s", e->d_name);
        FILE *f = fopen(path, "r");
        cr_assert(f, "%s", path);
        files++;
        for (int ln = 1; fgets(line, sizeof line, f); ln++) {
            const char *sk = "cr_" "skip"; /* not spelled out, so this file passes its own rule */
            cr_assert(!strstr(line, sk), "%s:%d calls %s: use tskip() (tests/tskip.h), which fails "
                      "when a dependency make deps installs is missing", path, ln, sk);
        }
        fclose(f);
    }
    closedir(d);
    cr_assert_gt(files, 20, "%d test files", files);
}
