/* synth_clicks.h — large Criteo-like click files for throughput benchmarks (`dealer data synth-clicks`).
 *
 * A sample in libffm text (`label field:feature:value ...`, e.g. data/criteo/small_train.txt) is replicated until
 * the output has `rows` rows. Copy c of a sample row keeps its label, fields and values and re-hashes every feature
 * id: id' = dl_hash_pair(c, id) mod id_space (core/hash.h). So each copy brings fresh features spread over the id
 * space, the way a big hashed Criteo file looks to a model's table (rows touched at random, little reuse), while the
 * per-row shape (fields, entries, label balance) stays the sample's. The output is a record file (with its index), or
 * libffm text for other tools (libffm, xLearn) to read the same rows. Deterministic: the same sample and options give
 * the same bytes. The output appears atomically or not at all. */
#ifndef DL_DATA_SYNTH_CLICKS_H
#define DL_DATA_SYNTH_CLICKS_H

#include <stdint.h>

#include "core/status.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct dl_synth_clicks_options {
    const char *sample;  /* libffm text */
    const char *output;  /* OUT.tfrecord, or OUT text with `text` */
    uint64_t rows;       /* rows to write (> 0) */
    uint64_t id_space;   /* feature ids of the copies are in [0, id_space) (> 0) */
    int text;            /* write libffm text instead of records */
    int progress;        /* a progress bar on a terminal */
} dl_synth_clicks_options;

typedef struct dl_synth_clicks_result {
    uint64_t sample_rows; /* rows read from the sample */
    uint64_t rows;        /* rows written */
    uint64_t entries;     /* feature entries written */
    uint64_t bytes;       /* size of the output */
} dl_synth_clicks_result;

/* Writes the file the options describe. A malformed sample line fails with DL_ERR_FORMAT naming file, line and
 * column; an empty sample with DL_ERR_INVALID. `result` may be NULL. */
dl_status dl_synth_clicks(const dl_synth_clicks_options *options, dl_synth_clicks_result *result);

#ifdef __cplusplus
}
#endif

#endif
