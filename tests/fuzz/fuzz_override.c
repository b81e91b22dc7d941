/* fuzz_override.c: libFuzzer target for command-line overrides
 * (cfg_override). The input is up to 32 arguments, one per line, applied in
 * order as ./train does (stopping at the first refused one). Properties: no
 * crash; a refused override's message starts with "override '"; the settings
 * after accepted ones survive cfg_write and a reload unchanged. */
#include <stdint.h>

#include "fuzz_sections.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    FuzzSpec *s = calloc(1, sizeof *s);
    fuzz_spec_init(s);
    char *text = malloc(size + 1), err[4096];
    memcpy(text, data, size);
    text[size] = '\0';
    int ok = 1;
    char *save = NULL;
    int n = 0;
    for (char *arg = strtok_r(text, "\n", &save); arg && n < 32; arg = strtok_r(NULL, "\n", &save), n++) {
        CfgStatus st = cfg_override(&s->cfg, arg, err, sizeof err);
        if (st != CFG_OK) {
            FUZZ_CHECK(strncmp(err, "override '", 10) == 0, "status %d: '%s'", st, err);
            ok = 0;
            break;
        }
    }
    if (ok) fuzz_round_trip(s);
    free(text);
    fuzz_spec_free(s);
    free(s);
    return 0;
}
