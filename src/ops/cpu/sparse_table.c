/* sparse_table.c — the CPU sparse kernel family. */
#include "ops/backend_internal.h"

const dl_sparse_ops dl_cpu_sparse_ops = {0};
