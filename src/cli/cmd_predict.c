/* cmd_predict.c — `dealer predict`. */
#include <stdio.h>

#include "cli/commands.h"

int dl_cmd_predict(int argc, char **argv) {
    if (dl_cli_wants_help(argc, argv)) {
        printf("usage: dealer predict ...\n(not implemented yet: arrives with the ffm work)\n");
        return 0;
    }
    return dl_cli_not_implemented("predict", "ffm");
}
