/*
 * infer_synth.c - infer-synth: write a random-weight llama-family model of
 * given shapes, so that benchmarks at real sizes need no download.
 *
 *   infer-synth OUT.gguf [--preset tinyllama-1.1b|llama-7b] [--arch llama|qwen2|qwen3]
 *               [--n-embd N] [--n-layer N] [--n-head N] [--n-head-kv N] [--n-ff N]
 *               [--n-vocab N] [--n-ctx N] [--type T] [--seed S] [--std F] [--tied]
 *               [--dry-run]
 *
 * A wrapper over synth_model_file (src/synth.h): weights N(0, std^2), norms
 * 1 + N(0, std^2) in F32, a synthetic SentencePiece vocabulary (<unk> <s>
 * </s>, 256 byte tokens, then letters and filler words). 2-D weights are
 * written in --type through the reference quantizers (F32, F16, BF16, Q4_0,
 * Q4_1, Q5_0, Q5_1, Q8_0, Q2_K..Q6_K); for llama.cpp's mixtures (Q4_K_M,
 * Q5_K_M, ...) write F16 here and run infer-quantize.
 *
 * The whole file is built in memory before it is written: about twice its
 * size (a TinyLlama-shaped Q4_0 model is ~0.6 GB, a 7B Q4_0 ~3.8 GB).
 *
 * Exit status: 0 ok, 1 usage, 3 generation or write failed.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include "infer_gguf.h"
#include "ref/quants.h"
#include "synth.h"

typedef struct {
    const char *name;
    uint32_t n_embd, n_layer, n_head, n_head_kv, n_ff, n_vocab, n_ctx;
} preset;

static const preset PRESETS[] = {
    /* TinyLlama-1.1B (Chat v1.0) shapes */
    {"tinyllama-1.1b", 2048, 22, 32, 4, 5632, 32000, 2048},
    /* Llama(-2)-7B shapes */
    {"llama-7b", 4096, 32, 32, 32, 11008, 32000, 4096},
};

static const struct {
    const char *name;
    uint32_t type;
} TYPES[] = {
    {"F32", INFER_TYPE_F32},   {"F16", INFER_TYPE_F16},   {"BF16", INFER_TYPE_BF16},
    {"Q4_0", INFER_TYPE_Q4_0}, {"Q4_1", INFER_TYPE_Q4_1}, {"Q5_0", INFER_TYPE_Q5_0},
    {"Q5_1", INFER_TYPE_Q5_1}, {"Q8_0", INFER_TYPE_Q8_0}, {"Q2_K", INFER_TYPE_Q2_K},
    {"Q3_K", INFER_TYPE_Q3_K}, {"Q4_K", INFER_TYPE_Q4_K}, {"Q5_K", INFER_TYPE_Q5_K},
    {"Q6_K", INFER_TYPE_Q6_K},
};

static void usage(FILE *f) {
    fprintf(f,
            "usage: infer-synth OUT.gguf [options]\n"
            "\n"
            "  --preset P      tinyllama-1.1b (2048 embd, 22 layers, 32/4 heads, ff 5632,\n"
            "                  vocab 32000, ctx 2048) or llama-7b (4096, 32 layers, 32/32\n"
            "                  heads, ff 11008, vocab 32000, ctx 4096); options below override\n"
            "  --arch A        llama (default), qwen2, qwen3\n"
            "  --n-embd N      hidden size (default 32)\n"
            "  --n-layer N     layers (default 2)\n"
            "  --n-head N      attention heads (default 4)\n"
            "  --n-head-kv N   KV heads (default 2)\n"
            "  --n-ff N        feed-forward size (default 64)\n"
            "  --n-vocab N     vocabulary size, >= 259 (default 300)\n"
            "  --n-ctx N       training context length (default 128)\n"
            "  --type T        2-D weight type: F32 (default) F16 BF16 Q4_0 Q4_1 Q5_0 Q5_1\n"
            "                  Q8_0 Q2_K Q3_K Q4_K Q5_K Q6_K (mixtures such as Q4_K_M: write\n"
            "                  F16, then infer-quantize)\n"
            "  --seed S        random seed (default 1)\n"
            "  --std F         weight standard deviation (default 0.02)\n"
            "  --tied          no output.weight: the output reuses token_embd (as Llama 3.2\n"
            "                  1B, Qwen2.5 0.5B)\n"
            "  --dry-run       print the shapes and the size, write nothing\n");
}

/* A decimal in [lo, hi], or -1 (with a message) for anything else. */
static int parse_u32(const char *opt, const char *s, uint32_t lo, uint32_t hi, uint32_t *out) {
    char *end;
    errno = 0;
    unsigned long long v = strtoull(s, &end, 10);
    if (!s[0] || *end || errno || strchr(s, '-') || v < lo || v > hi) { /* strtoull wraps " -1" */
        fprintf(stderr, "infer-synth: %s wants an integer in %u..%u, not '%s'\n", opt, lo, hi, s);
        return -1;
    }
    *out = (uint32_t)v;
    return 0;
}

/* Rough bytes of the file: every matrix value in the weight type. */
static double model_bytes(const synth_params *p) {
    const double E = p->n_embd, F = p->n_ff, V = p->n_vocab;
    const double hd = p->head_dim ? p->head_dim : E / p->n_head;
    const double per_layer = E * hd * (2.0 * p->n_head + 2.0 * p->n_head_kv) + 3.0 * E * F;
    const double values = (p->tied ? 1.0 : 2.0) * E * V + p->n_layer * per_layer;
    return values * infer_type_block_bytes(p->wtype) / infer_type_block_size(p->wtype);
}

int main(int argc, char **argv) {
    synth_params p = synth_default_params();
    const char *out = NULL;
    /* explicit shape options, applied over the preset */
    enum { O_EMBD, O_LAYER, O_HEAD, O_HEAD_KV, O_FF, O_VOCAB, O_CTX, O_COUNT };
    static const char *const OPT[O_COUNT] = {"--n-embd", "--n-layer", "--n-head", "--n-head-kv",
                                             "--n-ff", "--n-vocab", "--n-ctx"};
    static const uint32_t OPT_MAX[O_COUNT] = {65536, 4096, 4096, 4096, 1u << 20, 1u << 22, 1u << 24};
    uint32_t val[O_COUNT];
    int given[O_COUNT] = {0};
    const preset *pre = NULL;
    int dry_run = 0;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
            usage(stdout);
            return 0;
        }
        if (!strcmp(a, "--dry-run")) {
            dry_run = 1;
            continue;
        }
        if (!strcmp(a, "--tied")) {
            p.tied = 1;
            continue;
        }
        if (a[0] != '-') {
            if (out) {
                usage(stderr);
                return 1;
            }
            out = a;
            continue;
        }
        if (i + 1 >= argc) {
            fprintf(stderr, "infer-synth: %s needs a value\n", a);
            return 1;
        }
        const char *v = argv[++i];
        int k;
        for (k = 0; k < O_COUNT && strcmp(a, OPT[k]); k++) {}
        if (k < O_COUNT) {
            if (parse_u32(a, v, 1, OPT_MAX[k], &val[k])) return 1;
            given[k] = 1;
        } else if (!strcmp(a, "--preset")) {
            pre = NULL;
            for (size_t j = 0; j < sizeof PRESETS / sizeof *PRESETS; j++)
                if (!strcasecmp(v, PRESETS[j].name)) pre = &PRESETS[j];
            if (!pre) {
                fprintf(stderr, "infer-synth: unknown preset '%s' (tinyllama-1.1b, llama-7b)\n", v);
                return 1;
            }
        } else if (!strcmp(a, "--arch")) {
            if (strcmp(v, "llama") && strcmp(v, "qwen2") && strcmp(v, "qwen3")) {
                fprintf(stderr, "infer-synth: unknown architecture '%s' (llama, qwen2, qwen3)\n", v);
                return 1;
            }
            p.arch = v;
        } else if (!strcmp(a, "--type")) {
            size_t j;
            for (j = 0; j < sizeof TYPES / sizeof *TYPES && strcasecmp(v, TYPES[j].name); j++) {}
            if (j == sizeof TYPES / sizeof *TYPES) {
                const int mixture = strlen(v) == 6 && !strncasecmp(v + 2, "_K_", 3);
                fprintf(stderr, "infer-synth: cannot write '%s' weights%s\n", v,
                        mixture ? " (a mixture: write F16, then run infer-quantize)" : "");
                return 1;
            }
            p.wtype = TYPES[j].type;
        } else if (!strcmp(a, "--seed")) {
            char *end;
            errno = 0;
            p.seed = strtoull(v, &end, 0);
            if (!v[0] || *end || errno || strchr(v, '-')) { /* strtoull wraps " -1" */
                fprintf(stderr, "infer-synth: bad seed '%s'\n", v);
                return 1;
            }
        } else if (!strcmp(a, "--std")) {
            char *end;
            double d = strtod(v, &end);
            if (!v[0] || *end || !(d > 0 && d <= 100) || !((float)d > 0)) { /* 1e-60 rounds to 0 as a float */
                fprintf(stderr, "infer-synth: --std wants a number in (0, 100], not '%s'\n", v);
                return 1;
            }
            p.std = (float)d;
        } else {
            fprintf(stderr, "infer-synth: unknown option %s\n", a);
            usage(stderr);
            return 1;
        }
    }
    if (!out) {
        usage(stderr);
        return 1;
    }
    if (pre) {
        p.n_embd = pre->n_embd, p.n_layer = pre->n_layer, p.n_head = pre->n_head;
        p.n_head_kv = pre->n_head_kv, p.n_ff = pre->n_ff, p.n_vocab = pre->n_vocab, p.n_ctx = pre->n_ctx;
    }
    uint32_t *field[O_COUNT] = {&p.n_embd, &p.n_layer, &p.n_head, &p.n_head_kv, &p.n_ff, &p.n_vocab, &p.n_ctx};
    for (int k = 0; k < O_COUNT; k++)
        if (given[k]) *field[k] = val[k];

    /* Shapes the loader and the quantizers accept. */
    const uint32_t blk = infer_type_block_size(p.wtype);
    if (p.n_vocab < 259) {
        fprintf(stderr, "infer-synth: --n-vocab must be >= 259 (3 specials + 256 byte tokens)\n");
        return 1;
    }
    if (p.n_embd % p.n_head || p.n_head % p.n_head_kv) {
        fprintf(stderr, "infer-synth: n_head (%u) must divide n_embd (%u), n_head_kv (%u) n_head\n",
                p.n_head, p.n_embd, p.n_head_kv);
        return 1;
    }
    if ((p.n_embd / p.n_head) % 2) { /* RoPE rotates pairs: the loader refuses an odd rope dimension */
        fprintf(stderr, "infer-synth: the head size n_embd / n_head (%u) must be even\n", p.n_embd / p.n_head);
        return 1;
    }
    if (p.n_embd % blk || p.n_ff % blk) {
        fprintf(stderr, "infer-synth: %s needs n_embd (%u) and n_ff (%u) to be multiples of %u\n",
                infer_type_name(p.wtype), p.n_embd, p.n_ff, blk);
        return 1;
    }
    const double bytes = model_bytes(&p);
    const long pages = sysconf(_SC_PHYS_PAGES), page = sysconf(_SC_PAGESIZE);
    const double ram = pages > 0 && page > 0 ? (double)pages * (double)page : 0;
    /* The writer's copy of the tensors, the finished file image, and 12
     * bytes of scratch per value of the largest tensor (synth_model: 4 of
     * floats, 8 for its bytes in any type). */
    const double E = p.n_embd, hd = p.head_dim ? p.head_dim : E / p.n_head;
    double big = E * (p.n_vocab + 1.0);
    if ((E + 1) * (p.n_ff + 1.0) > big) big = (E + 1) * (p.n_ff + 1.0);
    if ((p.n_head * hd + 1) * (E + 1) > big) big = (p.n_head * hd + 1) * (E + 1);
    const double need = 2 * bytes + 12 * big;
    if (ram > 0 && need > ram) {
        fprintf(stderr,
                "infer-synth: a %.2f GB %s model is built in memory (about %.1f GB needed, %.1f GB "
                "here): choose a smaller type or shape\n",
                bytes / 1e9, infer_type_name(p.wtype), need / 1e9, ram / 1e9);
        return 1;
    }
    printf("infer-synth: %s, %s, n_embd %u, %u layers, %u/%u heads, n_ff %u, vocab %u, ctx %u, "
           "%s%s, seed %llu: ~%.1f MiB\n",
           out, p.arch, p.n_embd, p.n_layer, p.n_head, p.n_head_kv, p.n_ff, p.n_vocab, p.n_ctx,
           infer_type_name(p.wtype), p.tied ? ", tied embeddings" : "", (unsigned long long)p.seed,
           bytes / 1048576.0);
    fflush(stdout);
    if (dry_run) return 0;
    infer_error err = {0};
    if (synth_model_file(&p, out, &err) != INFER_OK) {
        fprintf(stderr, "infer-synth: %s\n", err.message);
        return 3;
    }
    printf("infer-synth: wrote %s\n", out);
    return 0;
}
