/*
 * main.c - the `infer` command-line program. Uses only the public API.
 *
 *   infer MODEL -p PROMPT [options]      generate text
 *   infer MODEL --perplexity FILE [-c N] llama.cpp-style perplexity
 *   infer MODEL --tokenize -p TEXT        print token ids
 *   infer --inspect MODEL [--json]       what is inside a GGUF file
 *
 * Generated text goes to stdout as it is produced, nothing else; timings and
 * messages go to stderr. Exit status: 0 ok, 1 usage error, 2 model rejected,
 * 3 runtime error.
 */
#include <errno.h>
#include <math.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cli.h"
#include "pool.h"

static void usage(FILE *f) {
    fprintf(f,
            "usage: infer MODEL -p PROMPT [options]\n"
            "       infer MODEL --perplexity FILE [-c N]\n"
            "       infer MODEL --tokenize (-p TEXT | -f FILE) [--no-bos]\n"
            "       infer --inspect MODEL [--json]\n"
            "\n"
            "  -m, --model FILE        the GGUF model (or give it as the first argument)\n"
            "  -p, --prompt TEXT       the prompt\n"
            "  -e, --escape            process escapes in -p's text: \\n \\r \\t \\' \\\" \\\\ \\xHH\n"
            "                          (off by default, and with --no-escape; -f stays verbatim)\n"
            "  -f, --file FILE         read the prompt's bytes from FILE, verbatim\n"
            "  -n, --n-predict N       tokens to generate (default -1: until end of text or context full)\n"
            "  -c, --ctx-size N        context size in tokens (default: training context, at most 4096)\n"
            "  -b, --batch-size N      most tokens per forward pass (default 512)\n"
            "  -t, --threads N         CPU threads (default: the CPUs it may run on, those of -C/-Cr\n"
            "                          when given)\n"
            "  -tb, --threads-batch N  CPU threads for prompts (passes of more than one token; default: -t)\n"
            "  -C, --cpu-mask M        the CPUs its threads run on, in hex as llama.cpp's (0x5: CPUs 0\n"
            "                          and 2); with -Cr, both sets\n"
            "  -Cr, --cpu-range LO-HI  CPUs LO to HI (LO left out: 0, HI left out: the last)\n"
            "      --cpu-strict 0|1    1: thread k on the k-th CPU of the mask alone (default 0: on any)\n"
            "      --poll 0..100       how long idle threads wait busily for work (default 50, ~0.5 ms;\n"
            "                          0: they sleep at once)\n"
            "      --prio -1..3        priority as llama.cpp's: nice 5, 0, -5, -10, -20 (default 0)\n"
            "  -s, --seed N            sampling seed (default: random, printed)\n"
            "      --temp T            temperature (default 0.8; 0 = greedy)\n"
            "      --top-k K           keep the K most likely tokens (default 40; 0 = off)\n"
            "      --top-p P           nucleus sampling (default 0.95; 1 = off)\n"
            "      --min-p P           drop tokens below P x the best's probability (default 0.05)\n"
            "      --repeat-penalty R  penalise recent tokens (default 1.0 = off)\n"
            "      --repeat-last-n N   how many recent tokens (default 64)\n"
            "      --ignore-eos        never pick an end-of-generation token (generate -n tokens)\n"
            "      --context-shift     when the context is full, drop half of it and go on\n"
            "      --keep N            tokens of the prompt kept by a context shift (default 0: BOS only)\n"
            "  -ctk, --cache-type-k T  KV cache type: f16 (default) or f32\n"
            "      --no-mmap           read the model into memory instead of mapping it\n"
            "      --backend B         where to run: cpu (default), vulkan, or auto (a Vulkan GPU when\n"
            "                          present); without a usable device: the CPU, with one line\n"
            "      --device N          the Vulkan device (see --list-devices; default: the best)\n"
            "  -ngl, --n-gpu-layers N  llama.cpp's offload: N > 0 or all runs on Vulkan (the whole model),\n"
            "                          0 on the CPU, auto as --backend auto\n"
            "  -fa, --flash-attn [on|off|auto]  accepted: the attention is always fused (online softmax)\n"
            "  -no-cnv, --no-warmup, --no-display-prompt  accepted: infer has no conversation mode,\n"
            "                          runs no warm-up and never echoes the prompt\n"
            "      --list-devices      list the Vulkan devices and exit\n"
            "      --perplexity FILE   perplexity of FILE's text, llama.cpp's method\n"
            "      --tokenize          print the prompt's token ids on one line\n"
            "      --no-bos            with --tokenize: add no BOS/EOS\n"
            "      --parse-special     with --tokenize: recognise special token texts\n"
            "      --inspect           print a GGUF file's version, metadata, tensors, totals\n"
            "      --json              with --inspect: JSON on stdout\n"
            "  -h, --help              this text\n"
            "      --version           print the version\n");
}

void cli_reject(const char *path, const char *message) {
    char q[512];
    fprintf(stderr, "infer: %s: %s\n", escape_cstr(path, q, sizeof q), message);
}

double cli_now_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec / 1e6;
}

char *cli_read_file(const char *path, size_t *len) {
    FILE *f = fopen(path, "rb");
    char *buf = NULL;
    size_t cap = 0, n = 0;
    if (!f) {
        cli_reject(path, strerror(errno));
        return NULL;
    }
    for (;;) {
        if (n + 1 >= cap) {
            size_t ncap = cap ? cap * 2 : 65536;
            char *nb = ncap > cap ? realloc(buf, ncap) : NULL;
            if (!nb) {
                cli_reject(path, "out of memory");
                free(buf);
                fclose(f);
                return NULL;
            }
            buf = nb;
            cap = ncap;
        }
        size_t r = fread(buf + n, 1, cap - n - 1, f);
        n += r;
        if (r == 0) break;
    }
    int bad = ferror(f);
    fclose(f);
    if (bad) {
        cli_reject(path, "read error");
        free(buf);
        return NULL;
    }
    buf[n] = '\0';
    *len = n;
    return buf;
}

/* s (len bytes) with llama.cpp's escape sequences processed (-e): \n \r
 * \t \' \" \\ and \xHH (two hex digits); any other backslash stays as it
 * is. A new malloc'd, NUL-terminated buffer (never longer than s), *out_len
 * its length; NULL when out of memory. */
static char *cli_unescape(const char *s, size_t len, size_t *out_len) {
    char *o = malloc(len + 1);
    size_t n = 0;
    if (!o) return NULL;
    for (size_t i = 0; i < len; i++) {
        if (s[i] != '\\' || i + 1 >= len) {
            o[n++] = s[i];
            continue;
        }
        const char c = s[++i];
        const int hi = i + 2 < len ? infer_hex_digit(s[i + 1]) : -1, lo = hi >= 0 ? infer_hex_digit(s[i + 2]) : -1;
        if (c == 'n') o[n++] = '\n';
        else if (c == 'r') o[n++] = '\r';
        else if (c == 't') o[n++] = '\t';
        else if (c == '\'' || c == '"' || c == '\\') o[n++] = c;
        else if (c == 'x' && lo >= 0) {
            o[n++] = (char)(hi * 16 + lo);
            i += 2;
        } else {
            o[n++] = '\\';
            o[n++] = c;
        }
    }
    o[n] = '\0';
    *out_len = n;
    return o;
}

/* ---- argument parsing -------------------------------------------------------- */

static int parse_long(const char *flag, const char *s, long lo, long hi, long *out) {
    char *end;
    errno = 0;
    long v = strtol(s, &end, 10);
    if (errno || end == s || *end || v < lo || v > hi) {
        fprintf(stderr, "infer: %s needs an integer in %ld..%ld, got '%s'\n", flag, lo, hi, s);
        return -1;
    }
    *out = v;
    return 0;
}

static int parse_float(const char *flag, const char *s, float *out) {
    char *end;
    errno = 0;
    float v = strtof(s, &end);
    /* ERANGE on underflow (1e-45 is a denormal) is fine; on overflow not */
    if ((errno && !(errno == ERANGE && !isinf(v))) || end == s || *end || v != v) {
        fprintf(stderr, "infer: %s needs a number, got '%s'\n", flag, s);
        return -1;
    }
    *out = v;
    return 0;
}

/* 0 ok, 1 usage error, -1 exit 0 (help/version printed). */
static int parse_args(int argc, char **argv, cli_options *o) {
    memset(o, 0, sizeof *o);
    o->n_predict = -1;
    o->mp = infer_model_default_params();
    o->cp = infer_context_default_params();
    o->sp = infer_sampler_default_params();
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        const char *v = i + 1 < argc ? argv[i + 1] : NULL;
        long n;
#define NEEDV() do { if (!v) { fprintf(stderr, "infer: %s needs a value\n", a); return 1; } i++; } while (0)
#define IS(x) (!strcmp(a, x))
        if (IS("-h") || IS("--help")) { usage(stdout); return -1; }
        else if (IS("--version")) { printf("infer %s\n", infer_version()); return -1; }
        else if (IS("--inspect")) o->inspect = 1;
        else if (IS("--json")) o->json = 1;
        else if (IS("--tokenize")) o->tokenize = 1;
        else if (IS("--no-bos")) o->no_bos = 1;
        else if (IS("--parse-special")) o->parse_special = 1;
        else if (IS("--context-shift")) o->context_shift = 1;
        else if (IS("--ignore-eos")) o->sp.ignore_eog = 1;
        else if (IS("-e") || IS("--escape")) o->escape = 1;
        else if (IS("--no-escape")) o->escape = 0;
        else if (IS("-no-cnv") || IS("--no-conversation") || IS("--no-warmup") || IS("--no-display-prompt")) {
            /* llama-cli's: infer completes the prompt, warms nothing up and
             * never echoes the prompt */
        } else if (IS("-fa") || IS("--flash-attn")) {
            /* one attention here, fused with an online softmax (what llama.cpp calls
             * flash attention); a value after it (newer llama-cli's) is taken */
            static const char *const vals[] = {"on", "off", "auto", "1", "0", "true", "false"};
            for (size_t k = 0; v && k < sizeof vals / sizeof *vals; k++)
                if (!strcmp(v, vals[k])) {
                    i++;
                    break;
                }
        } else if (IS("-ngl") || IS("--n-gpu-layers") || IS("--gpu-layers")) {
            NEEDV();
            if (!strcmp(v, "auto")) o->cp.backend = INFER_BACKEND_AUTO;
            else if (!strcmp(v, "all")) o->cp.backend = INFER_BACKEND_VULKAN;
            else if (parse_long(a, v, 0, INT_MAX, &n)) return 1;
            else o->cp.backend = n > 0 ? INFER_BACKEND_VULKAN : INFER_BACKEND_CPU;
        }
        else if (IS("--no-mmap")) o->mp.use_mmap = 0;
        else if (IS("--list-devices")) o->list_devices = 1;
        else if (IS("--device")) { NEEDV(); if (parse_long(a, v, 0, 1023, &n)) return 1; o->cp.device = (int)n; }
        else if (IS("--backend")) {
            NEEDV();
            if (!strcmp(v, "cpu")) o->cp.backend = INFER_BACKEND_CPU;
            else if (!strcmp(v, "vulkan")) o->cp.backend = INFER_BACKEND_VULKAN;
            else if (!strcmp(v, "auto")) o->cp.backend = INFER_BACKEND_AUTO;
            else { fprintf(stderr, "infer: --backend takes cpu, vulkan or auto\n"); return 1; }
        }
        else if (IS("-m") || IS("--model")) { NEEDV(); o->model = v; }
        else if (IS("-p") || IS("--prompt")) { NEEDV(); o->prompt = v; }
        else if (IS("-f") || IS("--file")) { NEEDV(); o->prompt_file = v; }
        else if (IS("--perplexity")) { NEEDV(); o->ppl_file = v; }
        else if (IS("-n") || IS("--n-predict")) { NEEDV(); if (parse_long(a, v, -1, INT_MAX, &n)) return 1; o->n_predict = (int)n; }
        else if (IS("-c") || IS("--ctx-size")) { NEEDV(); if (parse_long(a, v, 0, 1L << 24, &n)) return 1; o->cp.n_ctx = (uint32_t)n; }
        else if (IS("-b") || IS("--batch-size")) { NEEDV(); if (parse_long(a, v, 1, 1L << 24, &n)) return 1; o->cp.n_batch = (uint32_t)n; }
        else if (IS("-C") || IS("--cpu-mask") || IS("-Cr") || IS("--cpu-range")) {
            NEEDV();
            const int range = IS("-Cr") || IS("--cpu-range");
            if ((range ? cpu_range_parse : cpu_mask_parse)(v, o->cp.cpu_mask)) {
                fprintf(stderr, "infer: %s: bad value '%s' (%s)\n", a, v,
                        range ? "LO-HI, CPUs 0 to 1023" : "hex digits, CPUs 0 to 1023");
                return 1;
            }
        }
        else if (IS("--cpu-strict")) { NEEDV(); if (parse_long(a, v, 0, 1, &n)) return 1; o->cp.cpu_strict = (int)n; }
        else if (IS("--poll")) { NEEDV(); if (parse_long(a, v, 0, 100, &n)) return 1; o->cp.poll = (int)n; }
        else if (IS("--prio")) { NEEDV(); if (parse_long(a, v, -1, 3, &n)) return 1; o->prio = (int)n; }
        else if (IS("-tb") || IS("--threads-batch")) { NEEDV(); if (parse_long(a, v, 0, POOL_MAX_THREADS, &n)) return 1; o->cp.n_threads_batch = (int)n; }
        else if (IS("-t") || IS("--threads")) { NEEDV(); if (parse_long(a, v, 0, POOL_MAX_THREADS, &n)) return 1; o->cp.n_threads = (int)n; }
        else if (IS("-s") || IS("--seed")) { NEEDV(); if (parse_long(a, v, -1, LONG_MAX, &n)) return 1; o->sp.seed = n < 0 ? INFER_SEED_RANDOM : (uint64_t)n; }
        else if (IS("--temp")) { NEEDV(); if (parse_float(a, v, &o->sp.temp)) return 1; }
        else if (IS("--top-k")) { NEEDV(); if (parse_long(a, v, INT32_MIN, INT32_MAX, &n)) return 1; o->sp.top_k = (int32_t)n; }
        else if (IS("--top-p")) { NEEDV(); if (parse_float(a, v, &o->sp.top_p)) return 1; }
        else if (IS("--min-p")) { NEEDV(); if (parse_float(a, v, &o->sp.min_p)) return 1; }
        else if (IS("--repeat-penalty")) { NEEDV(); if (parse_float(a, v, &o->sp.repeat_penalty)) return 1; }
        else if (IS("--repeat-last-n")) { NEEDV(); if (parse_long(a, v, 0, 1L << 20, &n)) return 1; o->sp.repeat_last_n = (int32_t)n; }
        else if (IS("--keep")) { NEEDV(); if (parse_long(a, v, -1, 1L << 24, &n)) return 1; o->n_keep = (int)n; }
        else if (IS("-ctk") || IS("--cache-type-k") || IS("--kv-type")) {
            NEEDV();
            if (!strcmp(v, "f16")) o->cp.kv_type = INFER_TYPE_F16;
            else if (!strcmp(v, "f32")) o->cp.kv_type = INFER_TYPE_F32;
            else { fprintf(stderr, "infer: %s takes f16 or f32\n", a); return 1; }
        }
        else if (a[0] == '-' && a[1] != '\0') {
            fprintf(stderr, "infer: unknown option '%s' (see --help)\n", a);
            return 1;
        } else if (!o->model) {
            o->model = a;
        } else {
            fprintf(stderr, "infer: unexpected argument '%s'\n", a);
            return 1;
        }
#undef NEEDV
#undef IS
    }
    if (!o->model && !o->list_devices) {
        usage(stderr);
        return 1;
    }
    if (o->prompt && o->prompt_file) {
        fprintf(stderr, "infer: give the prompt with -p or -f, not both\n");
        return 1;
    }
    if (o->ppl_file && (o->prompt || o->prompt_file)) {
        fprintf(stderr, "infer: --perplexity reads its text from its FILE: no -p or -f with it\n");
        return 1;
    }
    if (!(o->sp.repeat_penalty > 0.0f) || isinf(o->sp.repeat_penalty)) {
        fprintf(stderr, "infer: --repeat-penalty must be a finite number > 0\n");
        return 1;
    }
    return 0;
}

/* ---- modes ------------------------------------------------------------------------ */

static int print_tokens(const cli_options *o, infer_model *m, const char *text, size_t len) {
    unsigned flags = (o->no_bos ? 0 : INFER_TOKENIZE_ADD_SPECIAL) | (o->parse_special ? INFER_TOKENIZE_PARSE_SPECIAL : 0);
    infer_error err = {0};
    size_t n = 0;
    infer_status s = infer_tokenize(m, text, len, flags, NULL, 0, &n, &err);
    if (s != INFER_OK && s != INFER_EINVAL) {
        fprintf(stderr, "infer: tokenize: %s\n", err.message);
        return CLI_EXIT_RUNTIME;
    }
    int32_t *ids = malloc((n ? n : 1) * sizeof *ids);
    if (!ids || infer_tokenize(m, text, len, flags, ids, n, &n, &err) != INFER_OK) {
        fprintf(stderr, "infer: tokenize: %s\n", ids ? err.message : "out of memory");
        free(ids);
        return CLI_EXIT_RUNTIME;
    }
    for (size_t i = 0; i < n; i++) printf(i ? " %d" : "%d", ids[i]);
    printf("\n");
    free(ids);
    return CLI_EXIT_OK;
}

static int write_piece(void *user, int32_t token, const char *text, size_t len) {
    (void)user;
    (void)token;
    fwrite(text, 1, len, stdout);
    fflush(stdout);
    return 0;
}

static int generate(const cli_options *o, infer_model *m, const char *text, size_t len, double load_ms) {
    infer_error err = {0};
    infer_context *c = NULL;
    infer_sampler *smp = NULL;
    int32_t *ids = NULL;
    size_t n = 0;
    int rc = CLI_EXIT_RUNTIME;
    unsigned flags = INFER_TOKENIZE_ADD_SPECIAL | INFER_TOKENIZE_PARSE_SPECIAL;

    infer_status s = infer_tokenize(m, text, len, flags, NULL, 0, &n, &err);
    if ((s != INFER_OK && s != INFER_EINVAL) || !(ids = malloc((n ? n : 1) * sizeof *ids)) ||
        infer_tokenize(m, text, len, flags, ids, n, &n, &err) != INFER_OK) {
        fprintf(stderr, "infer: tokenize: %s\n", ids ? err.message : "out of memory");
        goto out;
    }
    if (n == 0) {
        fprintf(stderr, "infer: the prompt is empty and the vocabulary adds no BOS: nothing to start from\n");
        goto out;
    }
    if (infer_context_new(m, &o->cp, &c, &err) != INFER_OK) {
        fprintf(stderr, "infer: context: %s\n", err.message);
        goto out;
    }
    cli_note_backend(o, c);
    if (infer_sampler_new(m, &o->sp, &smp, &err) != INFER_OK) {
        fprintf(stderr, "infer: sampler: %s\n", err.message);
        goto out;
    }
    if (o->sp.seed == INFER_SEED_RANDOM && o->sp.temp > 0.0f) fprintf(stderr, "infer: seed = %llu\n", (unsigned long long)infer_sampler_seed(smp));

    infer_generate_params gp = {
        .n_predict = o->n_predict < 0 ? SIZE_MAX : (size_t)o->n_predict,
        .context_shift = o->context_shift,
        .n_keep = (uint32_t)(o->n_keep < 0 ? n : (size_t)o->n_keep + (infer_token_bos(m) >= 0 && ids[0] == infer_token_bos(m))),
    };
    if (gp.n_keep > n) gp.n_keep = (uint32_t)n;
    infer_generate_stats st;
    s = infer_generate(c, smp, ids, n, &gp, write_piece, NULL, &st, &err);
    fflush(stdout);
    if (s != INFER_OK) {
        fprintf(stderr, "\ninfer: %s\n", err.message);
        goto out;
    }
    if (st.stopped_by == INFER_STOP_CTX_FULL) {
        fprintf(stderr, "\ninfer: context full (%u tokens): stopping (%s)\n", infer_context_n_ctx(c),
                !o->context_shift ? "--context-shift keeps going"
                                  : "--context-shift had nothing to drop: the tokens kept (--keep) fill it");
    }
    fprintf(stderr, "\n");
    fprintf(stderr, "infer:        load time = %10.2f ms\n", load_ms);
    fprintf(stderr, "infer: prompt eval time = %10.2f ms / %5zu tokens (%8.2f ms per token, %8.2f tokens per second)\n",
            st.prompt_ms, st.n_prompt, st.n_prompt ? st.prompt_ms / (double)st.n_prompt : 0.0,
            st.prompt_ms > 0 ? 1e3 * (double)st.n_prompt / st.prompt_ms : 0.0);
    fprintf(stderr, "infer:        eval time = %10.2f ms / %5zu runs   (%8.2f ms per token, %8.2f tokens per second)\n",
            st.gen_ms, st.n_generated, st.n_generated ? st.gen_ms / (double)st.n_generated : 0.0,
            st.gen_ms > 0 ? 1e3 * (double)st.n_generated / st.gen_ms : 0.0);
    fprintf(stderr, "infer:       total time = %10.2f ms / %5zu tokens\n", load_ms + st.prompt_ms + st.gen_ms,
            st.n_prompt + st.n_generated);
    rc = CLI_EXIT_OK;
out:
    free(ids);
    infer_sampler_free(smp);
    infer_context_free(c);
    return rc;
}

void cli_note_backend(const cli_options *o, const infer_context *c) {
    if (o->cp.backend != INFER_BACKEND_CPU && infer_context_backend(c) == INFER_BACKEND_CPU) {
        fprintf(stderr, "infer: %s; running on the CPU\n", infer_context_backend_note(c));
    }
}

/* --list-devices: one line per Vulkan device on stdout. */
static int list_devices(void) {
    static const char *const types[] = {"other", "integrated GPU", "discrete GPU", "virtual GPU", "CPU"};
    infer_device_info dev[16];
    size_t n = 0;
    infer_error err = {0};
    if (infer_vulkan_devices(dev, 16, &n, &err) != INFER_OK) {
        fprintf(stderr, "infer: %s\n", err.message);
        return CLI_EXIT_RUNTIME;
    }
    for (size_t i = 0; i < n && i < 16; i++) {
        const infer_device_info *d = &dev[i];
        printf("%zu: %s (%s), %.1f GiB, Vulkan %u.%u, subgroup %u%s, fp16 %s, int8 %s, int8 dot %s\n", i, d->name,
               d->type >= 0 && d->type <= 4 ? types[d->type] : "other", (double)d->memory / (1024.0 * 1024.0 * 1024.0),
               (d->api_version >> 22) & 0x7f, (d->api_version >> 12) & 0x3ff, d->subgroup_size,
               d->subgroup_ops ? " (arithmetic)" : "", d->fp16 ? "yes" : "no", d->int8 ? "yes" : "no",
               d->int_dot ? "yes" : "no");
    }
    return CLI_EXIT_OK;
}

int main(int argc, char **argv) {
    cli_options o;
    int r = parse_args(argc, argv, &o);
    if (r != 0) return r < 0 ? CLI_EXIT_OK : CLI_EXIT_USAGE;
    if (o.list_devices) return list_devices();
    if (o.inspect) return cli_inspect(o.model, o.json, o.mp.use_mmap ? 0 : INFER_GGUF_NO_MMAP);
    const int perr = process_priority_set(o.prio); /* llama.cpp warns and goes on when refused */
    if (perr) fprintf(stderr, "infer: --prio %d: %s (going on)\n", o.prio, strerror(perr));

    char *text = NULL;
    size_t len = 0;
    const char *src = o.ppl_file ? o.ppl_file : o.prompt_file;
    if (src) {
        if (!(text = cli_read_file(src, &len))) return CLI_EXIT_USAGE;
    } else if (o.prompt && o.escape) {
        if (!(text = cli_unescape(o.prompt, strlen(o.prompt), &len))) {
            fprintf(stderr, "infer: out of memory\n");
            return CLI_EXIT_RUNTIME;
        }
    } else if (o.prompt) {
        len = strlen(o.prompt);
    } else if (!o.tokenize) {
        fprintf(stderr, "infer: no prompt: give -p TEXT or -f FILE (or --perplexity FILE)\n");
        return CLI_EXIT_USAGE;
    }
    const char *input = text ? text : (o.prompt ? o.prompt : "");

    infer_error err = {0};
    infer_model *m = NULL;
    double t0 = cli_now_ms();
    o.mp.vocab_only = o.tokenize;
    if (infer_model_load(o.model, &o.mp, &m, &err) != INFER_OK) {
        cli_reject(o.model, err.message);
        free(text);
        return CLI_EXIT_REJECTED;
    }
    double load_ms = cli_now_ms() - t0;
    int rc;
    if (o.tokenize) rc = print_tokens(&o, m, input, len);
    else if (o.ppl_file) rc = cli_perplexity(&o, m, input, len);
    else rc = generate(&o, m, input, len, load_ms);
    infer_model_release(m);
    free(text);
    return rc;
}
