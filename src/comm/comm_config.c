/* comm_config.c — the rows of the comm section (comm_config.h). */
#include "comm/comm_config.h"

#include <stddef.h>

#define KEY(name, type, field, def, ...) DL_CFG_KEY(dl_comm_config, name, type, field, def, __VA_ARGS__)

static const char *const embeddings_choices[] = {"replicated", "sharded", "shared", NULL};

const dl_cfg_key dl_comm_config_keys[] = {
    KEY("zero", DL_CFG_INT, zero, "0", DL_CFG_IN(0, 1),
        "1: shard the optimizer state across ranks (ZeRO-1); 0: every rank holds all of it"),
    KEY("bucket_mb", DL_CFG_FLOAT, bucket_mb, "25", DL_CFG_IN_OPEN(0, 65536),
        "gradient bucket size in MiB: each full bucket starts its all-reduce during backward"),
    DL_CFG_ENUM_KEY(dl_comm_config, "embeddings", embeddings, embeddings_choices, "replicated",
                    "fm/ffm: replicated tables, sharded (rows owned by hash % world, exchanged all-to-all; exact), or "
                    "shared (ranks of one node train one table in shared memory in place, lock-free as libffm's "
                    "threads; not bit-reproducible)"),
    KEY("timeout_s", DL_CFG_INT, timeout_s, "600", DL_CFG_GE(1),
        "a collective taking longer than this aborts the job, naming the rank"),
    DL_CFG_END,
};
