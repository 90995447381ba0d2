/* stat.h — what a record file holds (`dealer data stat FILE`).
 *
 * One pass over every record (all CRCs checked, every record decoded as the kind detected from the first one), then
 * figures by kind:
 *   text     documents, tokens, the largest token id, document length min/median/p90/max/mean and a log2 histogram;
 *   clicks   rows, label balance, fields (distinct and largest id), distinct features, entries per row;
 *   pairs    pairs, lengths of prompt/chosen/rejected, pairs whose chosen equals rejected.
 * A file of another kind (written by other tools) gets its record count and the first record's feature list. */
#ifndef DL_DATA_STAT_H
#define DL_DATA_STAT_H

#include <stdint.h>
#include <stdio.h>

#include "core/status.h"
#include "data/example.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Order statistics of a list of lengths (nearest-rank percentiles: the smallest value with at least q of the list
 * at or below it). All zero for an empty list. */
typedef struct dl_length_stats {
    uint64_t count;
    uint64_t total;
    uint64_t min, median, p90, max;
    double mean;
} dl_length_stats;

enum { DL_STAT_HIST_BUCKETS = 34 }; /* bucket 0: length 0; bucket b >= 1: [2^(b-1), 2^b) */

typedef struct dl_data_stats {
    dl_example_kind kind;
    uint64_t records;
    uint64_t file_bytes;
    int indexed;                  /* a valid .idx was used */
    char features[512];           /* the first record's features (dl_example_describe) */
    /* text */
    dl_length_stats doc;          /* tokens per document */
    uint64_t hist[DL_STAT_HIST_BUCKETS];
    int64_t max_token;            /* -1 when there are no tokens */
    /* clicks */
    uint64_t positives;
    uint64_t distinct_fields;
    int64_t max_field;            /* -1 when there are no entries */
    uint64_t distinct_features;
    dl_length_stats entries;      /* entries per row */
    /* pairs */
    dl_length_stats prompt, chosen, rejected;
    uint64_t identical;           /* pairs with chosen == rejected */
} dl_data_stats;

/* Order statistics of values[0..n) (sorted in place). */
void dl_length_stats_compute(uint32_t *values, uint64_t n, dl_length_stats *out);
/* The histogram bucket of a length (see DL_STAT_HIST_BUCKETS). */
int dl_stat_bucket(uint64_t length);

/* Reads every record of PATH. Damaged records fail with DL_ERR_FORMAT naming file, record and offset. */
dl_status dl_data_stat(const char *path, dl_data_stats *stats);
/* Prints the figures for people. */
void dl_data_stats_print(const dl_data_stats *stats, const char *path, FILE *out);

#ifdef __cplusplus
}
#endif

#endif
