/* data_config.h — the `data` section of the config: which records a run reads and how they become batches (format,
 * sequence length, packing, shuffling, the tokenizer). data/ owns it because it describes the records; the data
 * code itself takes plain values (dl_loader_config), and the application fills them from this section. */
#ifndef DL_DATA_DATA_CONFIG_H
#define DL_DATA_DATA_CONFIG_H

#include <stdbool.h>

#include "core/config.h"

#ifdef __cplusplus
extern "C" {
#endif

/* data.format: which tf.Example features the records hold; auto follows model.kind. */
typedef enum dl_data_format {
    DL_FORMAT_AUTO = 0,
    DL_FORMAT_TOKENS = 1, /* tokens */
    DL_FORMAT_CLICKS = 2, /* label, field, feature, value */
    DL_FORMAT_PAIRS = 3,  /* prompt, chosen, rejected */
} dl_data_format;
/* data.overlong: a document longer than data.seq_len. */
typedef enum dl_overlong {
    DL_OVERLONG_TRUNCATE = 0, /* keep the first seq_len tokens */
    DL_OVERLONG_DROP = 1,     /* skip the document */
    DL_OVERLONG_ERROR = 2,    /* fail naming the record */
    DL_OVERLONG_SPLIT = 3,    /* cut into seq_len pieces, each a document of its own */
} dl_overlong;

/* The data section. Strings are never NULL ("" when unset). */
typedef struct dl_data_config {
    dl_str_list train;
    dl_str_list valid;
    dl_data_format format;
    int seq_len;
    bool packing;
    int pack_window;
    dl_overlong overlong;
    bool shuffle;
    int skip_corrupt; /* how many damaged records may be skipped (with a warning) before failing */
    int prefetch;
    char *tokenizer;  /* "bytes" or a tokenizer.json (gpt/dpo) */
} dl_data_config;

/* The section's rows, ended by DL_CFG_END (offsets within dl_data_config). */
extern const dl_cfg_key dl_data_config_keys[];

#ifdef __cplusplus
}
#endif

#endif
