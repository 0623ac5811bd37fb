/*
 * main.c - the `infer` command-line program.
 *
 *   infer --inspect MODEL [--json] [--no-mmap]
 *
 * Exit status: 0 ok, 1 usage error, 2 model rejected, 3 runtime error.
 */
#include <stdio.h>
#include <string.h>

#include "cli.h"

static void usage(FILE *f) {
    fprintf(f,
            "usage: infer --inspect MODEL [--json] [--no-mmap]\n"
            "\n"
            "  --inspect       print a GGUF file's version, metadata, tensors and totals\n"
            "  --json          with --inspect: machine-readable JSON on stdout\n"
            "  --no-mmap       read the file into memory instead of mapping it\n"
            "  -m, --model F   the model file (or give it as the first plain argument)\n"
            "  -h, --help      this text\n"
            "  --version       print the version\n");
}

void cli_reject(const char *path, const char *message) {
    char q[512];
    fprintf(stderr, "infer: %s: %s\n", escape_bytes(path, strlen(path), q, sizeof q), message);
}

int main(int argc, char **argv) {
    const char *model = NULL;
    int inspect = 0, json = 0;
    unsigned gguf_flags = 0;

    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
            usage(stdout);
            return CLI_EXIT_OK;
        } else if (!strcmp(a, "--version")) {
            printf("infer %s\n", infer_version());
            return CLI_EXIT_OK;
        } else if (!strcmp(a, "--inspect")) {
            inspect = 1;
        } else if (!strcmp(a, "--json")) {
            json = 1;
        } else if (!strcmp(a, "--no-mmap")) {
            gguf_flags |= INFER_GGUF_NO_MMAP;
        } else if (!strcmp(a, "-m") || !strcmp(a, "--model")) {
            if (i + 1 >= argc) {
                fprintf(stderr, "infer: %s needs a value\n", a);
                return CLI_EXIT_USAGE;
            }
            model = argv[++i];
        } else if (a[0] == '-' && a[1] != '\0') {
            fprintf(stderr, "infer: unknown option '%s' (see --help)\n", a);
            return CLI_EXIT_USAGE;
        } else if (!model) {
            model = a;
        } else {
            fprintf(stderr, "infer: unexpected argument '%s'\n", a);
            return CLI_EXIT_USAGE;
        }
    }
    if (!model || !inspect) {
        usage(stderr);
        return CLI_EXIT_USAGE;
    }
    return cli_inspect(model, json, gguf_flags);
}
