/* tskip.h: a test that cannot run in this build or on this machine (tests only).
 *
 * Every dependency a test needs is one `make deps` installs (DEB_PACKAGES), and
 * CI runs `make deps` before `make test`; so a missing one is a broken setup,
 * not a pass: tskip() FAILS the test, naming what is missing and how to get it.
 * With CLIPLAB_ALLOW_SKIP=1 in the environment it skips instead (Criterion
 * lists each "[SKIP]" with the reason, and `make test` prints how many were
 * skipped), for a machine where the dependency cannot be installed. */
#ifndef CLIPLAB_TESTS_TSKIP_H
#define CLIPLAB_TESTS_TSKIP_H

#include <criterion/criterion.h>
#include <stdlib.h>
#include <string.h>

#define tskip(...)                                                                          \
    do {                                                                                    \
        const char *allow_ = getenv("CLIPLAB_ALLOW_SKIP");                                  \
        if (allow_ && strcmp(allow_, "1") == 0) cr_skip(__VA_ARGS__);                       \
        cr_log_error("not run: set CLIPLAB_ALLOW_SKIP=1 to skip it instead of failing");    \
        cr_assert_fail(__VA_ARGS__);                                                        \
    } while (0)

#endif
