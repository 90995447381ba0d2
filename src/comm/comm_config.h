/* comm_config.h — the `comm` section of the config: how ranks exchange gradients and embeddings (ZeRO-1, bucket
 * size, sharded tables) and how long a collective may take. comm/ owns it; its code takes plain values, which the
 * trainer and the click models fill from this section. */
#ifndef DL_COMM_COMM_CONFIG_H
#define DL_COMM_COMM_CONFIG_H

#include "core/config.h"

#ifdef __cplusplus
extern "C" {
#endif

/* comm.embeddings: replicated | sharded (rows owned by hash % world) | shared (sharded rows in one node-wide
 * shared-memory window, trained in place without locks). */
typedef enum dl_embeddings {
    DL_EMBEDDINGS_REPLICATED = 0,
    DL_EMBEDDINGS_SHARDED = 1,
    DL_EMBEDDINGS_SHARED = 2,
} dl_embeddings;

typedef struct dl_comm_config {
    int zero;
    double bucket_mb;
    dl_embeddings embeddings;
    int timeout_s;
} dl_comm_config;

/* The section's rows, ended by DL_CFG_END (offsets within dl_comm_config). */
extern const dl_cfg_key dl_comm_config_keys[];

#ifdef __cplusplus
}
#endif

#endif
