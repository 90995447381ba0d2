/* fuzz_config.c — libFuzzer target for the config reader.
 *
 * The input up to the first NUL byte is YAML text for dl_config_load_string; whatever follows is a list of
 * NUL-separated command-line overrides for dl_config_load. Besides "no crash, no leak" (ASan/UBSan), it checks
 * the promises the rest of dealer relies on:
 *   - a failure is DL_ERR_CONFIG (or DL_ERR_NOMEM) with a one-line message, and leaves the config empty;
 *   - a config that loads writes YAML that reads back to an equal config (what checkpoints store). */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "train/run_config.h"

static void check_failure(dl_status s, const dl_config *cfg) {
    const char *msg = dl_error_message();
    if ((s != DL_ERR_CONFIG && s != DL_ERR_NOMEM) || !msg[0] || strchr(msg, '\n') || cfg->origin) {
        fprintf(stderr, "bad failure: status %d, message '%s'\n", (int)s, msg);
        abort();
    }
    dl_error_clear();
}

static void check_round_trip(const dl_config *cfg) {
    for (int with_sources = 0; with_sources <= 1; with_sources++) {
        char *text = NULL;
        if (dl_config_to_yaml(cfg, with_sources, &text) != DL_OK)
            abort();
        dl_config back;
        if (dl_config_load_string(&back, text, strlen(text), "round-trip") != DL_OK) {
            fprintf(stderr, "written config does not read back: %s\n%s", dl_error_message(), text);
            abort();
        }
        if (!dl_config_equal(cfg, &back)) {
            fprintf(stderr, "written config reads back different:\n%s", text);
            abort();
        }
        dl_config_free(&back);
        free(text);
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    const char *text = (const char *)data;
    size_t yaml_len = strnlen(text, size);
    dl_config cfg;
    dl_status s = dl_config_load_string(&cfg, text, yaml_len, "fuzz.yaml");
    if (s == DL_OK)
        check_round_trip(&cfg);
    else
        check_failure(s, &cfg);
    dl_config_free(&cfg);

    if (yaml_len + 1 >= size)
        return 0;
    /* Overrides: copy the tail so that every piece is NUL-terminated. */
    size_t tail_len = size - yaml_len - 1;
    char *tail = malloc(tail_len + 1);
    if (!tail)
        return 0;
    memcpy(tail, text + yaml_len + 1, tail_len);
    tail[tail_len] = '\0';
    char *overrides[16];
    int n = 0;
    for (size_t i = 0; i <= tail_len && n < 16;) {
        overrides[n++] = tail + i;
        i += strlen(tail + i) + 1;
    }
    s = dl_config_load(&cfg, NULL, n, overrides);
    if (s == DL_OK)
        check_round_trip(&cfg);
    else
        check_failure(s, &cfg);
    dl_config_free(&cfg);
    free(tail);
    return 0;
}
