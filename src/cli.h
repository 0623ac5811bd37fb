/* cli.h - pieces of the `infer` command-line program (not the library). */
#ifndef INFER_CLI_H
#define INFER_CLI_H

#include "infer.h"
#include "util.h"

/* Exit statuses (DESIGN.md): */
enum { CLI_EXIT_OK = 0, CLI_EXIT_USAGE = 1, CLI_EXIT_REJECTED = 2, CLI_EXIT_RUNTIME = 3 };

/* Everything the command line can set. */
typedef struct {
    const char *model;
    const char *prompt;      /* -p */
    const char *prompt_file; /* -f */
    const char *ppl_file;    /* --perplexity */
    int inspect, json, tokenize, no_bos, parse_special, context_shift;
    int list_devices;        /* --list-devices */
    int n_predict;           /* -n, -1: until end of generation or context full */
    int n_keep;              /* --keep, -1: the whole prompt... as llama.cpp: 0 means BOS only */
    int escape;              /* -e: the -p prompt's escape sequences processed */
    int prio;                /* --prio: llama.cpp's priority level -1 .. 3 */
    infer_model_params mp;
    infer_context_params cp;
    infer_sampler_params sp;
} cli_options;

/* One line `infer: PATH: MESSAGE` on stderr, the path escaped. */
void cli_reject(const char *path, const char *message);

/* Whole file into a NUL-terminated malloc'd buffer; NULL with a message. */
char *cli_read_file(const char *path, size_t *len);

double cli_now_ms(void);

/* One line on stderr when a Vulkan backend was asked for but the context
 * runs on the CPU (the library itself prints nothing). */
void cli_note_backend(const cli_options *o, const infer_context *c);

int cli_inspect(const char *path, int json, unsigned gguf_flags);
int cli_perplexity(const cli_options *o, infer_model *m, const char *text, size_t len);

#endif
