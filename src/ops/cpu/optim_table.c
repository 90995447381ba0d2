/* optim_table.c — the CPU optim kernel family. */
#include "ops/backend_internal.h"

const dl_optim_ops dl_cpu_optim_ops = {0};
