/*
 * args.c: command-line options and positional arguments.
 *
 * Options are long only ("--json", "--space-id ID", "--space-id=ID") and
 * may come anywhere after the command name. A single-dash argument is
 * positional, so `strata incr DIR c d n -3` works; "--" ends options.
 */
#include <string.h>

#include "cli.h"

void
cli_print_help(FILE *f, const cli_cmd *cmd)
{
    fprintf(f, "usage: strata %s\n\n%s\n", cmd->usage, cmd->summary);
    if (cmd->help != NULL)
        fprintf(f, "\n%s", cmd->help);
    if (cmd->run == NULL)
        fprintf(f, "\n(not available in this build)\n");
}

static int
find_opt(const cli_opt *opts, const char *name, size_t len)
{
    for (int i = 0; opts != NULL && opts[i].name != NULL; i++)
        if (strlen(opts[i].name) == len &&
            strncmp(opts[i].name, name, len) == 0)
            return i;
    return -1;
}

int
cli_parse(cli_args *out, const cli_cmd *cmd, int argc, char **argv,
          const cli_opt *opts, int min_pos, int max_pos)
{
    int only_pos = 0;

    memset(out, 0, sizeof *out);
    /* --help wins over any other mistake on the line (keeps main.c (1)) */
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--") == 0)
            break;
        if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) {
            cli_print_help(stdout, cmd);
            return CLI_HELP_SHOWN;
        }
    }
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];

        if (!only_pos && strcmp(a, "--") == 0) {
            only_pos = 1;
        } else if (!only_pos && strncmp(a, "--", 2) == 0) {
            const char *name = a + 2, *eq = strchr(name, '=');
            size_t len = eq ? (size_t)(eq - name) : strlen(name);
            int k = find_opt(opts, name, len);

            if (k < 0)
                return cli_usage(cmd, "unknown option --%.*s", (int)len,
                                 name);
            if (!opts[k].has_arg) {
                if (eq != NULL)
                    return cli_usage(cmd, "--%s takes no value",
                                     opts[k].name);
                out->opt[k] = "";
            } else if (eq != NULL) {
                out->opt[k] = eq + 1;
            } else if (i + 1 < argc) {
                out->opt[k] = argv[++i];
            } else {
                return cli_usage(cmd, "--%s needs a value", opts[k].name);
            }
        } else {
            if (out->npos >= CLI_MAX_POS || out->npos >= max_pos)
                return cli_usage(cmd, "too many arguments");
            out->pos[out->npos++] = a;
        }
    }
    if (out->npos < min_pos)
        return cli_usage(cmd, "missing arguments");
    return CLI_OK;
}

int
cli_has(const cli_args *a, int i)
{
    return i >= 0 && i < CLI_MAX_OPTS && a->opt[i] != NULL;
}
