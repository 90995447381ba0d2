/* tied_rows.h — the input-side gradient rows of a tied token embedding, exchanged apart from its dense bucket.
 *
 * GPT-2's token table gets gradient twice in a backward pass: a dense term from the LM head at the very start and
 * one row per input token from the embedding at the very end. Exchanged as one tensor it can leave only after the
 * embedding, so a third of the model's gradient bytes would wait for the last layer. Instead grad_sync lets the
 * table's bucket leave right after the head and collects the embedding's rows here: each rank sums its rows per
 * distinct token id (at most a batch's tokens, against a 50k-row table), every rank receives every rank's
 * (id, row) pairs (an all-gather: a few hundred KiB at GPT-2 batch sizes), adds them in rank order, and adds the
 * result into the table's gradient once the bucket has arrived. Every rank does the same additions in the same
 * order, so all ranks end with the same bits, and the result does not depend on comm.bucket_mb or comm.zero.
 *
 * The all-gather moves (W-1)·Σu rows per rank where a reduction would move about 2u: fine while the rows are few
 * (they are bounded by the batch's tokens), not meant for tables whose every row changes each step. */
#ifndef DL_COMM_TIED_ROWS_H
#define DL_COMM_TIED_ROWS_H

#include <stdint.h>

#include "comm/world.h"
#include "ops/ops.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct dl_tied_rows dl_tied_rows;

/* For a table of table_rows × width floats on `backend`. */
dl_status dl_tied_rows_create(dl_tied_rows **rows, const dl_backend *backend, int table_rows, int width);
void dl_tied_rows_destroy(dl_tied_rows *rows);

/* Keeps this rank's rows of one backward pass for the next exchange: row i of `rows` (device memory, n × width)
 * belongs to table row ids[i] (device memory). Once per exchange. */
dl_status dl_tied_rows_hold(dl_tied_rows *rows, const int32_t *ids, const float *grad_rows, int n);
/* Collective: adds every rank's held rows, summed in rank order, into table_grad (device memory, the whole table's
 * gradient), then forgets them. A rank with nothing held takes part with no rows. local_failure != 0 says this rank
 * cannot take part correctly (its caller's message stays the error): every rank then fails, none adds. */
dl_status dl_tied_rows_exchange(dl_tied_rows *rows, dl_world *world, float *table_grad, int local_failure);
/* Forgets the held rows (after a failed step). */
void dl_tied_rows_clear(dl_tied_rows *rows);
/* Whether rows are held for the next exchange. */
int dl_tied_rows_held(const dl_tied_rows *rows);

#ifdef __cplusplus
}
#endif

#endif
