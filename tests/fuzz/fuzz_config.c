/* fuzz_config.c: libFuzzer target for the config loader (cfg_load_buffer)
 * with every section ./train registers. Properties: no crash or sanitizer
 * report; a refused file's message starts with "<name>:" and the line; an
 * accepted file survives cfg_write and a reload with every value equal. */
#include <stdint.h>

#include "fuzz_sections.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    FuzzSpec *s = calloc(1, sizeof *s);
    fuzz_spec_init(s);
    char err[2048];
    CfgStatus st = cfg_load_buffer(&s->cfg, "fuzz.ini", (const char *)data, size, err, sizeof err);
    if (st == CFG_OK)
        fuzz_round_trip(s);
    else
        FUZZ_CHECK(strncmp(err, "fuzz.ini:", 9) == 0 && err[9] >= '1' && err[9] <= '9',
                   "status %d, message without file and line: '%s'", st, err);
    fuzz_spec_free(s);
    free(s);
    return 0;
}
