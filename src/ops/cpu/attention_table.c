/* attention_table.c — the CPU attention kernel family: the flash forward and backward of attention.c. */
#include "ops/backend_internal.h"
#include "ops/cpu/cpu_attention.h"

const dl_attention_ops dl_cpu_attention_ops = {
    .forward = dl_cpu_attention_forward,
    .backward = dl_cpu_attention_backward,
};
