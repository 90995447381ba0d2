/* data_config.c — the rows of the data section (data_config.h). */
#include "data/data_config.h"

#include <stddef.h>

#define KEY(name, type, field, def, ...) DL_CFG_KEY(dl_data_config, name, type, field, def, __VA_ARGS__)
#define ENUM(name, field, choices, def, doc) DL_CFG_ENUM_KEY(dl_data_config, name, field, choices, def, doc)

static const char *const format_choices[] = {"auto", "tokens", "clicks", "pairs", NULL};
static const char *const overlong_choices[] = {"truncate", "drop", "error", "split", NULL};

const dl_cfg_key dl_data_config_keys[] = {
    KEY("train", DL_CFG_LIST, train, "", DL_CFG_ANY, "training records: a path or a list of paths (*.tfrecord)"),
    KEY("valid", DL_CFG_LIST, valid, "", DL_CFG_ANY,
        "validation records: a path or a list of paths (empty: no evaluation)"),
    ENUM("format", format, format_choices, "auto",
         "features the records hold: tokens, clicks, pairs; auto follows model.kind"),
    KEY("seq_len", DL_CFG_INT, seq_len, "1024", DL_CFG_GE(1), "gpt/dpo: tokens per row of a batch"),
    KEY("packing", DL_CFG_BOOL, packing, "true", DL_CFG_ANY,
        "gpt/dpo: pack several documents into a row (attention never crosses them); false: one per row"),
    KEY("pack_window", DL_CFG_INT, pack_window, "64", DL_CFG_IN(1, 1048576),
        "documents held back to find the best fit when packing"),
    ENUM("overlong", overlong, overlong_choices, "truncate",
         "a document longer than seq_len: truncate it, drop it, fail (error) or split it into seq_len pieces"),
    KEY("shuffle", DL_CFG_BOOL, shuffle, "true", DL_CFG_ANY,
        "shuffle the record order each epoch (from run.seed and the epoch number)"),
    KEY("skip_corrupt", DL_CFG_INT, skip_corrupt, "0", DL_CFG_GE(0),
        "damaged records each rank may skip with a warning before the run fails (0: fail at the first)"),
    KEY("prefetch", DL_CFG_INT, prefetch, "2", DL_CFG_IN(0, 64), "batches prepared ahead by the loader (0: none)"),
    KEY("tokenizer", DL_CFG_STRING, tokenizer, "bytes", DL_CFG_ANY,
        "gpt/dpo: the tokenizer that made the records: bytes (byte-level) or a tokenizer.json; the run keeps a "
        "copy (run_dir/tokenizer.json), checkpoints record its hash, data made by another is refused"),
    DL_CFG_END,
};
