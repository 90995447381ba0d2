/* nccl_exchange.h — the gradient exchange of exchange.h on GPU buffers, through NCCL (built only with CUDA).
 *
 * Same layout, same algorithm, same result: bucket b's chunks go to their owners with ncclSend/ncclRecv inside
 * one NCCL group, the owner adds the W copies in rank order with a small kernel, and (all-reduce) a second group
 * sends the sums back. Everything runs on a communication stream of its own: starting a bucket records an event on
 * the compute stream (the backend's) and makes the communication stream wait for it, so a bucket leaves as soon as
 * the kernels that wrote it have run, while later layers keep computing. Finishing waits on the host, polling an
 * event under the watchdog (a dead peer never completes an NCCL call: on timeout the communicator is aborted and
 * the message names the collective, step and missing ranks), then orders the compute stream after it.
 *
 * The NCCL communicator is built at creation: rank 0's unique id goes to the other ranks over MPI. One GPU per
 * rank: NCCL refuses two ranks on one device, and creation fails with that message (grad_sync then falls back to
 * staging through host memory). */
#ifndef DL_COMM_NCCL_EXCHANGE_H
#define DL_COMM_NCCL_EXCHANGE_H

#include "comm/exchange.h"
#include "comm/world.h"
#include "ops/ops.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct dl_nccl_exchange dl_nccl_exchange;

/* Collective over `world`. `buffer` is device memory of layout->count floats on `backend` (a CUDA backend). */
dl_status dl_nccl_exchange_create(dl_nccl_exchange **exchange, dl_world *world, const dl_backend *backend,
                                  float *buffer, const dl_exchange_layout *layout);
void dl_nccl_exchange_destroy(dl_nccl_exchange *exchange);
/* Enqueues bucket `bucket` (index order, as dl_exchange_start) after the compute stream's work so far. */
dl_status dl_nccl_exchange_start(dl_nccl_exchange *exchange, int bucket);
/* Enqueues the buckets not started, waits for all under the watchdog, orders the compute stream after them. */
dl_status dl_nccl_exchange_finish(dl_nccl_exchange *exchange, const char *what);
/* ZeRO-1's parameter all-gather: rank r's slice [slice_bounds[r], slice_bounds[r+1]) of `buffer` (device, layout
 * count floats) goes to every rank, after the compute stream's work so far; waits like finish. */
dl_status dl_nccl_allgather(dl_nccl_exchange *exchange, float *buffer, const size_t *slice_bounds, const char *what);

#ifdef __cplusplus
}
#endif

#endif
