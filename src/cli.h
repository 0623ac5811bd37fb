/* cli.h - pieces of the `infer` command-line program (not the library). */
#ifndef INFER_CLI_H
#define INFER_CLI_H

#include "infer.h"
#include "util.h"

/* Exit statuses (DESIGN.md): */
enum { CLI_EXIT_OK = 0, CLI_EXIT_USAGE = 1, CLI_EXIT_REJECTED = 2, CLI_EXIT_RUNTIME = 3 };

/* One line `infer: PATH: MESSAGE` on stderr, the path escaped. */
void cli_reject(const char *path, const char *message);

int cli_inspect(const char *path, int json, unsigned gguf_flags);

#endif
