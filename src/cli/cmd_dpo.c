/* cmd_dpo.c — `dealer dpo`. */
#include <stdio.h>

#include "cli/commands.h"

int dl_cmd_dpo(int argc, char **argv) {
    if (dl_cli_wants_help(argc, argv)) {
        printf("usage: dealer dpo ...\n(not implemented yet: arrives with the dpo work)\n");
        return 0;
    }
    return dl_cli_not_implemented("dpo", "dpo");
}
