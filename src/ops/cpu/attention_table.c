/* attention_table.c — the CPU attention kernel family. */
#include "ops/backend_internal.h"

const dl_attention_ops dl_cpu_attention_ops = {0};
