/* blas_pin.c: one BLAS kernel on every x86-64 machine, so the same commit,
 * config and seed give the same numbers on a teacher's AVX-512 server and a
 * student's AVX2 laptop.
 *
 * Debian's OpenBLAS is built with DYNAMIC_ARCH: at load time it picks the sgemm
 * kernel for the CPU it finds (Haswell, SkylakeX, Cooperlake, Zen...). The
 * kernels block and vectorise the K sum differently, so a chaotic run (an RNN
 * without clipping, PPO without ratio clipping) takes another path on another
 * CPU. We re-select OpenBLAS's Haswell kernel (AVX2 + FMA, which every x86-64
 * CPU since 2013 (Intel) / 2015 (AMD) has) through OpenBLAS's own selection
 * entry points, gotoblas_dynamic_quit/_init, after setting OPENBLAS_CORETYPE
 * as a user would. The kernel's result still depends on how a product is
 * blocked, so OpenBLAS runs on one thread and the engine's own threads cut a
 * call only where the kernel's blocks are (ops_sgemm_rows, ops_core.c). glibc's
 * libm picks its FMA variants on the same CPUs, so expf/logf/tanhf agree too.
 *
 * What is left to the machine, and said once on stderr: a CPU without AVX2 or
 * FMA, an OpenBLAS without DYNAMIC_ARCH, an OpenBLAS other than the 0.3.21 the
 * documented numbers were made with, and CLIPLAB_BLAS=native (the user asked
 * for the machine's own kernel). */
#include "blas_pin.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

/* OpenBLAS's exported entry points (no header declares them). Weak, so an
 * OpenBLAS built for one CPU (no DYNAMIC_ARCH) still links; then we cannot pin. */
extern void gotoblas_dynamic_init(void) __attribute__((weak));
extern void gotoblas_dynamic_quit(void) __attribute__((weak));
extern char *openblas_get_corename(void);
extern char *openblas_get_config(void);

#define PIN_CORE "Haswell"
#define REF_VERSION "OpenBLAS 0.3.21"

static pthread_once_t once = PTHREAD_ONCE_INIT;
static int pinned;
static char why[160];
static char desc[320];

static int cpu_has_avx2_fma(void) {
#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
    __builtin_cpu_init();
    return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
#else
    return 0;
#endif
}

static void pin_once(void) {
    const char *mode = getenv("CLIPLAB_BLAS");
    if (mode && !strcmp(mode, "native"))
        snprintf(why, sizeof why, "CLIPLAB_BLAS=native asks for the machine's own kernel");
    else if (!cpu_has_avx2_fma())
        snprintf(why, sizeof why, "this CPU lacks AVX2/FMA, so the %s kernel cannot run on it",
                 PIN_CORE);
    else if (!gotoblas_dynamic_init || !gotoblas_dynamic_quit)
        snprintf(why, sizeof why, "this OpenBLAS was built for one CPU (no DYNAMIC_ARCH)");
    else {
        setenv("OPENBLAS_CORETYPE", PIN_CORE, 1); /* children (sweeps, mpirun) inherit it */
        gotoblas_dynamic_quit();
        gotoblas_dynamic_init();
        const char *core = openblas_get_corename();
        if (core && !strcasecmp(core, PIN_CORE))
            pinned = 1;
        else
            snprintf(why, sizeof why, "OpenBLAS refused the %s kernel (it runs %s)", PIN_CORE,
                     core ? core : "?");
    }
    const char *cfg = openblas_get_config();
    const char *core = openblas_get_corename();
    char version[64] = "OpenBLAS ?";
    if (cfg && !strncmp(cfg, "OpenBLAS ", 9)) {
        size_t n = 9 + strcspn(cfg + 9, " ");
        snprintf(version, sizeof version, "%.*s", (int)n, cfg);
    }
    snprintf(desc, sizeof desc, "%s, %s kernel (%s)", version, core ? core : "?",
             pinned ? "pinned: same numbers on every x86-64 machine" : "machine-chosen");
    if (!pinned)
        fprintf(stderr,
                "cliplab: note: BLAS kernel not pinned: %s; numbers may differ from another "
                "machine's (see docs/reproducibility.md)\n",
                why);
    else if (strcmp(version, REF_VERSION))
        fprintf(stderr,
                "cliplab: note: %s, not the %s the documented numbers were made with; runs are "
                "reproducible on this installation but may differ from the docs\n",
                version, REF_VERSION);
}

int blas_pin(void) {
    pthread_once(&once, pin_once);
    return pinned;
}

const char *blas_describe(void) {
    blas_pin();
    return desc;
}
