/* cmd_eval.c — `dealer eval`. */
#include <stdio.h>

#include "cli/commands.h"

int dl_cmd_eval(int argc, char **argv) {
    if (dl_cli_wants_help(argc, argv)) {
        printf("usage: dealer eval ...\n(not implemented yet: arrives with the gpt work)\n");
        return 0;
    }
    return dl_cli_not_implemented("eval", "gpt");
}
