/* cmd_ckpt.c — `dealer ckpt`. */
#include <stdio.h>

#include "cli/commands.h"

int dl_cmd_ckpt(int argc, char **argv) {
    if (dl_cli_wants_help(argc, argv)) {
        printf("usage: dealer ckpt ...\n(not implemented yet: arrives with the checkpoints work)\n");
        return 0;
    }
    return dl_cli_not_implemented("ckpt", "checkpoints");
}
