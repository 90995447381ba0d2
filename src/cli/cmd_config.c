/* cmd_config.c — `dealer config`. */
#include <stdio.h>

#include "cli/commands.h"

int dl_cmd_config(int argc, char **argv) {
    if (dl_cli_wants_help(argc, argv)) {
        printf("usage: dealer config ...\n(not implemented yet: arrives with the foundation work)\n");
        return 0;
    }
    return dl_cli_not_implemented("config", "foundation");
}
