/* cmd_data.c — `dealer data`. */
#include <stdio.h>

#include "cli/commands.h"

int dl_cmd_data(int argc, char **argv) {
    if (dl_cli_wants_help(argc, argv)) {
        printf("usage: dealer data ...\n(not implemented yet: arrives with the data work)\n");
        return 0;
    }
    return dl_cli_not_implemented("data", "data");
}
