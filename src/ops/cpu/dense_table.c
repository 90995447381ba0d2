/* dense_table.c — the CPU dense kernel family. */
#include "ops/backend_internal.h"

const dl_dense_ops dl_cpu_dense_ops = {0};
