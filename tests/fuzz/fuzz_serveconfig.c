/* SPDX-License-Identifier: Apache-2.0 */
/* Fuzz target: the `berth serve` YAML configuration. Whatever loads must print, load again and
 * print identically (berth_config_print() output is a fixed point), and validation must not
 * crash on any loaded configuration. */
#include <berth/config.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static char *print(const berth_config *cfg)
{
    char *text = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&text, &len);
    if (!f) {
        abort();
    }
    if (berth_config_print(cfg, f) != 0) {
        abort();
    }
    fclose(f);
    return text;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    berth_config *cfg = NULL, *again = NULL;
    char *first = NULL, *second = NULL;

    if (berth_config_new(&cfg) != 0 || berth_config_new(&again) != 0) {
        abort();
    }
    if (berth_config_load_string(cfg, "fuzz", (const char *)data, size) == 0) {
        (void)berth_config_validate(cfg);
        first = print(cfg);
        if (berth_config_load_string(again, "printed", first, strlen(first)) != 0) {
            abort();
        }
        second = print(again);
        if (strcmp(first, second) != 0) {
            abort();
        }
    }
    free(first);
    free(second);
    berth_config_free(cfg);
    berth_config_free(again);
    return 0;
}
