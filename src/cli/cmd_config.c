/* cmd_config.c — `dealer config`: print a resolved config with the source of each value (show), or every key with
 * its type, default and meaning (keys). Output is built whole before anything is printed, so a bad config prints
 * its one error line and nothing on stdout. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/commands.h"
#include "train/run_config.h"

static void usage(FILE *out) {
    fprintf(out,
            "usage: dealer config show CONFIG [--no-sources] [section.key=value ...]\n"
            "       dealer config keys [--markdown]\n"
            "\n"
            "  show   resolve CONFIG (a YAML file) and the overrides after it, check every value, and print the\n"
            "         result as YAML; each value's source (default, FILE:LINE or override) is its trailing\n"
            "         comment unless --no-sources is given\n"
            "  keys   list every key: name, type and range, default, the model kinds that read it (all, or\n"
            "         e.g. gpt,dpo), meaning (--markdown: as a markdown table). A config that sets a key its\n"
            "         model.kind does not read (to other than the default) is refused\n"
            "\n"
            "Overrides look like optim.lr=3e-4, device=cpu or data.train=[a.tfrecord,b.tfrecord]; they apply\n"
            "after the file, in order. Exit codes: 0 ok, 2 bad config or usage.\n");
}

enum { OPT_NO_SOURCES = DL_CLI_LONG_ONLY, OPT_MARKDOWN };
static const dl_cli_option show_options[] = {{"no-sources", OPT_NO_SOURCES, NULL}, {NULL, 0, NULL}};
static const dl_cli_option keys_options[] = {{"markdown", OPT_MARKDOWN, NULL}, {NULL, 0, NULL}};

static int cmd_show(int argc, char **argv) {
    const char *path = NULL;
    int with_sources = 1;
    char **overrides = calloc((size_t)argc, sizeof *overrides);
    if (!overrides) {
        fprintf(stderr, "dealer config: error: out of memory\n");
        return 1;
    }
    int n = 0;
    dl_cli_args a;
    dl_cli_args_init(&a, "config show", show_options, argc, argv);
    for (int id; (id = dl_cli_next(&a)) != DL_CLI_END;) {
        if (id == OPT_NO_SOURCES) {
            with_sources = 0;
        } else if (id != DL_CLI_POSITIONAL) {
            free(overrides);
            return 2;
        } else if (!path && !strchr(a.arg, '=')) {
            path = a.arg;
        } else {
            overrides[n++] = (char *)a.arg;
        }
    }
    if (!path) {
        fprintf(stderr, "dealer config show: missing CONFIG (usage: dealer config show CONFIG [key=value ...])\n");
        free(overrides);
        return 2;
    }
    dl_config cfg;
    dl_status s = dl_config_load(&cfg, path, n, overrides);
    free(overrides);
    if (s != DL_OK)
        return dl_cli_report("config", s);
    char *text = NULL;
    s = dl_config_to_yaml(&cfg, with_sources, &text);
    dl_config_free(&cfg);
    if (s != DL_OK)
        return dl_cli_report("config", s);
    fputs(text, stdout);
    free(text);
    return fflush(stdout) == 0 ? 0 : 1;
}

static int cmd_keys(int argc, char **argv) {
    int markdown = 0;
    dl_cli_args a;
    dl_cli_args_init(&a, "config keys", keys_options, argc, argv);
    for (int id; (id = dl_cli_next(&a)) != DL_CLI_END;) {
        if (id == OPT_MARKDOWN)
            markdown = 1;
        else if (id == DL_CLI_POSITIONAL)
            return dl_cli_usage_error("config keys", "unexpected argument '%s'", a.arg);
        else
            return 2;
    }
    dl_config_print_keys(stdout, markdown);
    return fflush(stdout) == 0 ? 0 : 1;
}

int dl_cmd_config(int argc, char **argv) {
    static const dl_cli_subcommand subs[] = {{"show", cmd_show, usage}, {"keys", cmd_keys, usage}, {NULL, NULL, NULL}};
    return dl_cli_dispatch("config", usage, subs, argc, argv);
}
