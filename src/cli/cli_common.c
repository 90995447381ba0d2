/* cli_common.c — helpers every subcommand shares: reporting a failure as one line and the exit code. */
#include <stdio.h>
#include <string.h>

#include "cli/commands.h"
#include "core/status.h"

int dl_cli_report(const char *command, int status) {
    fprintf(stderr, "dealer %s: error: %s\n", command, dl_error_message());
    return dl_status_exit_code((dl_status)status);
}

int dl_cli_wants_help(int argc, char **argv) {
    for (int i = 1; i < argc; i++)
        if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0)
            return 1;
    return 0;
}
