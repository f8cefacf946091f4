/* The tidemq executable: git-style subcommands. `tidemq [serve] ...` runs the broker. */
#include <stdio.h>
#include <string.h>

#include "cmd.h"

static void usage(FILE *out)
{
    fprintf(out, "usage: tidemq [serve] [-c FILE] [-p PORT] [-v] [--rules DIR]\n"
                 "       tidemq passwd [-c | -D] [-b] [-U] [-I ITERATIONS] FILE USER [PASSWORD]\n"
                 "       tidemq rules check DIR | tidemq rules test DIR [--input FILE]\n"
                 "       tidemq --version\n");
}

int main(int argc, char **argv)
{
    if (argc > 1 && (strcmp(argv[1], "-h") == 0 || strcmp(argv[1], "--help") == 0)) {
        usage(stdout);
        return 0;
    }
    if (argc > 1 && strcmp(argv[1], "--version") == 0) {
        printf("tidemq %s\n", TIDEMQ_VERSION);
        return 0;
    }
    if (argc > 1 && argv[1][0] != '-') {
        if (strcmp(argv[1], "serve") == 0)
            return cmd_serve(argc - 1, argv + 1);
        if (strcmp(argv[1], "passwd") == 0)
            return cmd_passwd(argc - 1, argv + 1);
        if (strcmp(argv[1], "rules") == 0)
            return cmd_rules(argc - 1, argv + 1);
        fprintf(stderr, "tidemq: unknown command '%s'\n", argv[1]);
        usage(stderr);
        return 2;
    }
    return cmd_serve(argc, argv);
}
