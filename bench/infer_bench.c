/*
 * infer_bench.c - `infer-bench`, a benchmark whose numbers compare line for
 * line with llama.cpp's llama-bench: same options, same columns, same
 * method (a warm-up run, random tokens, the KV cache cleared before every
 * repetition, tokenization and sampling not timed). Beyond llama-bench: for
 * generation, GB/s of weights streamed and its share of the machine's read
 * bandwidth (measured by a built-in probe), time to first token, load time
 * and peak RSS. `--kernels` prints per-kernel GFLOP/s and GB/s instead.
 *
 *   infer-bench -m MODEL [-m MODEL...] [-p 512] [-n 128] [-pg 512,128] [-d 0] [-r 5] [-t 2]
 *               [-b 2048] [-ub 512] [-ctk f16] [-fa 0] [-mmp 1] [-o md|csv|json|jsonl|sql]
 *
 * Tests run and print in llama-bench's order: per model and -mmp value,
 * -b, -ub, the KV type, -fa, -t, -C, --cpu-strict, -d and --poll vary (the
 * last fastest), and for
 * each the -p, then the -n, then the -pg tests. The output (table and
 * records) is bench_report.c's; the probe and the kernels' tables are
 * bench_probe.c's and bench_kernels.c's.
 */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

#include "bench.h"
#include "bench_report.h"
#include "infer.h"
#include "pool.h"
#include "util.h"

#define MAX_LIST 16
#define MAX_MASK_TEXT 258 /* "0x" and 256 hex digits: CPUs 0 to 1023 */

typedef struct {
    const char *models[MAX_LIST];
    int n_models;
    int pp[MAX_LIST], n_pp;
    int tg[MAX_LIST], n_tg;
    int pg[MAX_LIST][2], n_pg; /* -pg: a prompt then that many generated tokens, timed as one */
    int depth[MAX_LIST], n_depth;
    int threads[MAX_LIST], n_threads;
    int batch[MAX_LIST], n_batch;   /* -b: tokens per decode call (prompt, depth fill) */
    int ubatch[MAX_LIST], n_ubatch; /* -ub: tokens per forward pass (the context's n_batch) */
    uint32_t kv[MAX_LIST];          /* -ctk / -ctv: KV cache types (one for both in infer) */
    int n_kv;
    int fa[MAX_LIST], n_fa;         /* -fa: llama-bench's flash attention, 0 or 1 (the same attention here) */
    char cpu_mask[MAX_LIST][MAX_MASK_TEXT + 1]; /* -C: hex masks as given (records, the probe's child) */
    uint64_t cpu_bits[MAX_LIST][INFER_CPU_MASK_WORDS]; /* and parsed (the contexts, --kernels) */
    int n_cpu_mask;
    int cpu_strict[MAX_LIST], n_cpu_strict; /* --cpu-strict 0|1 */
    int poll[MAX_LIST], n_poll;             /* --poll 0..100 */
    int mmap[MAX_LIST], n_mmap;     /* -mmp: 1 map the file, 0 read it (a load per value) */
    int shown;                      /* SHOW_*: the columns of those options (llama-bench's rule) */
    int reps;
    int format;     /* OUT_* */
    int err_format; /* -oe: OUT_* on stderr too, or -1 */
    int progress;   /* --progress: a line on stderr as each test starts */
    int warmup;
    int delay_s; /* seconds of sleep before each test but the first (--delay) */
    int prio;    /* --prio: llama.cpp's priority level 0..3 */
    int kernels;
    int backend, device; /* INFER_BACKEND_*, Vulkan device (-1: best) */
} bench_opts;

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

/* "f16,f32" into KV cache types (the type table's names); 0 on success. */
static int parse_kv_list(const char *flag, const char *s, uint32_t *list, int *n) {
    char *copy = strdup(s), *save = NULL;
    if (!copy) return -1;
    *n = 0;
    for (char *tok = strtok_r(copy, ",", &save); tok; tok = strtok_r(NULL, ",", &save)) {
        const uint32_t t = strcmp(tok, infer_type_name(INFER_TYPE_F16)) ? INFER_TYPE_F32 : INFER_TYPE_F16;
        if (*n >= MAX_LIST || strcmp(tok, infer_type_name(t))) {
            fprintf(stderr, "infer-bench: %s: '%s' (f16 or f32)\n", flag, tok);
            free(copy);
            return -1;
        }
        list[(*n)++] = t;
    }
    free(copy);
    if (*n == 0) fprintf(stderr, "infer-bench: %s: bad value '%s' (f16 or f32)\n", flag, s);
    return *n ? 0 : -1;
}

/* "0x3,0xc" (-C) into masks as given and parsed (cpu_mask_parse),
 * appended. 0 on success. */
static int parse_mask_list(const char *flag, const char *s, bench_opts *o) {
    char *copy = strdup(s), *save = NULL;
    if (!copy) return -1;
    int ok = s[strspn(s, ",")] != '\0';
    for (char *tok = strtok_r(copy, ",", &save); ok && tok; tok = strtok_r(NULL, ",", &save)) {
        ok = o->n_cpu_mask < MAX_LIST && strlen(tok) <= MAX_MASK_TEXT &&
             cpu_mask_parse(tok, o->cpu_bits[o->n_cpu_mask]) == 0; /* bits zeroed with o */
        if (ok) snprintf(o->cpu_mask[o->n_cpu_mask++], MAX_MASK_TEXT + 1, "%s", tok);
    }
    free(copy);
    if (!ok)
        fprintf(stderr, "infer-bench: %s: bad value '%s' (hex masks of CPUs 0 to 1023, at most %d)\n", flag, s, MAX_LIST);
    return ok ? 0 : -1;
}

/* One number of a list at *p (lo .. 2^24), advancing *p; 0 on success. */
static int parse_num(const char **p, int lo, long *v) {
    char *end;
    if (**p < '0' || **p > '9') return -1; /* no sign: '-' separates a range */
    errno = 0;
    *v = strtol(*p, &end, 10);
    if (errno || *v < lo || *v > (1 << 24)) return -1;
    *p = end;
    return 0;
}

/* "512,1024" into list (room for cap values), appended to its *n entries
 * (an option given twice adds to its list, as llama-bench's); an entry may
 * be a range as llama-bench writes them: "first-last" (every value),
 * "first-last+step" or "first-last*mult". A value with no number at all
 * ("" or ",") is refused. 0 on success. */
static int parse_list(const char *flag, const char *s, int *list, int *n, int cap, int lo) {
    if (s[strspn(s, ",")] == '\0') { /* "" or only commas: no value at all */
        fprintf(stderr, "infer-bench: %s: bad value '%s' (no number)\n", flag, s);
        return -1;
    }
    char *copy = strdup(s), *save = NULL;
    if (!copy) return -1;
    for (char *tok = strtok_r(copy, ",", &save); tok; tok = strtok_r(NULL, ",", &save)) {
        const char *p = tok;
        long first, last, by = 1;
        char how = '+';
        int ok = parse_num(&p, lo, &first) == 0, full = 0;
        last = first;
        if (ok && *p == '-') {
            p++;
            ok = parse_num(&p, lo, &last) == 0 && last >= first;
            if (ok && (*p == '+' || *p == '*')) {
                how = *p++;
                ok = parse_num(&p, 1, &by) == 0 && (how == '+' || by >= 2);
            }
        }
        for (long v = first; ok && v <= last; v = how == '+' ? v + by : v * by) {
            if (*n >= cap) {
                ok = 0;
                full = 1;
                break;
            }
            list[(*n)++] = (int)v;
        }
        if (!ok || *p) {
            if (full && cap == 1) fprintf(stderr, "infer-bench: %s: bad value '%s' (one number)\n", flag, tok);
            else if (full) fprintf(stderr, "infer-bench: %s: bad value '%s' (at most %d values in all)\n", flag, tok, cap);
            else fprintf(stderr, "infer-bench: %s: bad value '%s' (whole numbers %d to %d%s)\n", flag, tok, lo, 1 << 24,
                         cap == 1 ? "" : ", or ranges first-last, first-last+step, first-last*mult");
            free(copy);
            return -1;
        }
    }
    free(copy);
    return 0;
}

/* One number (lo .. 2^24) for an option that takes one: a list with room
 * for one, which refuses none and more; 0 on success. */
static int parse_one(const char *flag, const char *s, int lo, int *v) {
    int n = 0;
    return parse_list(flag, s, v, &n, 1, lo);
}

/* list without its zeros. */
static void drop_zeros(int *list, int *n) {
    int k = 0;
    for (int i = 0; i < *n; i++)
        if (list[i]) list[k++] = list[i];
    *n = k;
}

static void usage(FILE *f) {
    fprintf(f,
            "usage: infer-bench -m MODEL [options]\n"
            "  -m, --model FILE     model to test (repeatable)\n"
            "  -p, --n-prompt N,..  prompt-processing tests (default 512; 0 = none)\n"
            "  -n, --n-gen N,..     generation tests (default 128; 0 = none)\n"
            "  -pg PP,TG            a PP-token prompt then TG generated tokens, timed as one test (repeatable)\n"
            "  -d, --n-depth N,..   tokens already in the cache when each test starts (default 0)\n"
            "  -r, --repetitions N  repetitions per test (default 5, at most 64)\n"
            "  -t, --threads N,..   thread counts (default: CPUs it may run on)\n"
            "  -C, --cpu-mask M,..  CPUs the threads run on, hex as llama-bench's (default 0x0: any)\n"
            "      --cpu-strict 0|1,.. 1: thread k on the k-th CPU of the mask alone (default 0)\n"
            "      --poll 0..100,.. how long idle threads wait busily for work (default 50, ~0.5 ms)\n"
            "  -b, --batch-size N,.. tokens per decode call for prompts and -d fills (default 2048)\n"
            "  -ub, --ubatch-size N,.. tokens per forward pass (default 512)\n"
            "  -ctk, -ctv T,..      KV cache type, f16 or f32, one for K and V (default f16)\n"
            "  -fa, --flash-attn 0|1,.. llama-bench's flash attention: accepted; both run infer's one\n"
            "                       attention (fused, online softmax: what llama.cpp calls flash attention)\n"
            "  -mmp, --mmap 0|1,..  1: map the model file, 0: read it into memory (default 1)\n"
            "  -o, --output F       md, csv, json, jsonl or sql (default md)\n"
            "  -oe, --output-err F  the results on stderr too, in md, csv, json, jsonl or sql (default none)\n"
            "      --progress       a line on stderr as each test starts\n"
            "      --delay S        seconds to wait before each test but the first (default 0)\n"
            "      --prio 0|1|2|3   the process's nice value as llama.cpp sets it: 0, -5, -10, -20 (default 0)\n"
            "      --no-warmup      no warm-up run before a test's repetitions\n"
            "      --backend B      cpu (default), vulkan or auto (a Vulkan GPU when present)\n"
            "      --device N       Vulkan device (see infer --list-devices; default: the best)\n"
            "  -ngl N               llama-bench's offload: N > 0 means --backend vulkan\n"
            "      --kernels        per-kernel GFLOP/s and GB/s at every dispatch level\n");
}

static int parse_args(int argc, char **argv, bench_opts *o) {
    memset(o, 0, sizeof *o);
    o->reps = 5;
    o->device = -1;
    o->warmup = 1;
    o->err_format = -1;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
#define IS(x) (!strcmp(a, x))
#define NEEDV() do { if (!v) { fprintf(stderr, "infer-bench: %s needs a value\n", a); return -1; } i++; } while (0)
        if (IS("-h") || IS("--help")) { usage(stdout); exit(0); }
        else if (IS("--kernels")) o->kernels = 1;
        else if (IS("--no-warmup")) o->warmup = 0;
        else if (IS("--progress")) o->progress = 1;
        else if (IS("--backend")) {
            NEEDV();
            if (!strcmp(v, "cpu")) o->backend = INFER_BACKEND_CPU;
            else if (!strcmp(v, "vulkan")) o->backend = INFER_BACKEND_VULKAN;
            else if (!strcmp(v, "auto")) o->backend = INFER_BACKEND_AUTO;
            else { fprintf(stderr, "infer-bench: --backend takes cpu, vulkan or auto\n"); return -1; }
        } else if (IS("--device") || IS("-ngl")) {
            NEEDV();
            int d;
            if (parse_one(a, v, 0, &d)) return -1;
            if (IS("--device")) o->device = d;
            else o->backend = d > 0 ? INFER_BACKEND_VULKAN : INFER_BACKEND_CPU;
        }
        else if (IS("-m") || IS("--model")) { NEEDV(); if (o->n_models == MAX_LIST) { fprintf(stderr, "infer-bench: at most %d models\n", MAX_LIST); return -1; } o->models[o->n_models++] = v; }
        else if (IS("-p") || IS("--n-prompt")) { NEEDV(); if (parse_list(a, v, o->pp, &o->n_pp, MAX_LIST, 0)) return -1; }
        else if (IS("-n") || IS("--n-gen")) { NEEDV(); if (parse_list(a, v, o->tg, &o->n_tg, MAX_LIST, 0)) return -1; }
        else if (IS("-pg")) {
            NEEDV();
            int pair[MAX_LIST], n = 0;
            if (parse_list(a, v, pair, &n, MAX_LIST, 1)) return -1;
            if (n != 2 || o->n_pg == MAX_LIST) {
                fprintf(stderr, "infer-bench: -pg takes PP,TG, both above 0 (at most %d of them)\n", MAX_LIST);
                return -1;
            }
            o->pg[o->n_pg][0] = pair[0];
            o->pg[o->n_pg++][1] = pair[1];
        }
        else if (IS("-d") || IS("--n-depth")) { NEEDV(); if (parse_list(a, v, o->depth, &o->n_depth, MAX_LIST, 0)) return -1; }
        else if (IS("-t") || IS("--threads")) {
            NEEDV();
            if (parse_list(a, v, o->threads, &o->n_threads, MAX_LIST, 1)) return -1;
            for (int k = 0; k < o->n_threads; k++)
                if (o->threads[k] > POOL_MAX_THREADS) { /* the pool's cap: the row would name a count it did not run */
                    fprintf(stderr, "infer-bench: -t: bad value %d (at most %d threads)\n", o->threads[k], POOL_MAX_THREADS);
                    return -1;
                }
        }
        else if (IS("-b") || IS("--batch-size")) {
            NEEDV();
            if (parse_list(a, v, o->batch, &o->n_batch, MAX_LIST, 1)) return -1;
        } else if (IS("-ub") || IS("--ubatch-size")) {
            NEEDV();
            if (parse_list(a, v, o->ubatch, &o->n_ubatch, MAX_LIST, 1)) return -1;
        } else if (IS("-ctk") || IS("--cache-type-k") || IS("-ctv") || IS("--cache-type-v")) {
            /* infer keeps K and V in one type: a second list must be the first */
            NEEDV();
            uint32_t l[MAX_LIST];
            int n = 0;
            if (parse_kv_list(a, v, l, &n)) return -1;
            if (o->n_kv && (n != o->n_kv || memcmp(l, o->kv, (size_t)n * sizeof l[0]))) {
                fprintf(stderr, "infer-bench: -ctk and -ctv differ: infer keeps K and V in one type\n");
                return -1;
            }
            memcpy(o->kv, l, (size_t)n * sizeof l[0]);
            o->n_kv = n;
        } else if (IS("-mmp") || IS("--mmap") || IS("-fa") || IS("--flash-attn") || IS("--cpu-strict") ||
                   IS("--poll")) {
            NEEDV();
            const int fa = IS("-fa") || IS("--flash-attn"), cs = IS("--cpu-strict"), pl = IS("--poll");
            int *list = fa ? o->fa : cs ? o->cpu_strict : pl ? o->poll : o->mmap;
            int *n = fa ? &o->n_fa : cs ? &o->n_cpu_strict : pl ? &o->n_poll : &o->n_mmap;
            const int n0 = *n, max = pl ? 100 : 1;
            if (parse_list(a, v, list, n, MAX_LIST, 0)) return -1;
            for (int k = n0; k < *n; k++)
                if (list[k] > max) {
                    fprintf(stderr, "infer-bench: %s: bad value '%s' (%s)\n", a, v, pl ? "0 to 100" : "0 or 1");
                    return -1;
                }
        } else if (IS("-C") || IS("--cpu-mask")) {
            NEEDV();
            if (parse_mask_list(a, v, o)) return -1;
        }
        else if (IS("--prio")) {
            NEEDV();
            if (parse_one(a, v, 0, &o->prio)) return -1;
            if (o->prio > 3) {
                fprintf(stderr, "infer-bench: --prio: bad value '%s' (0, 1, 2 or 3)\n", v);
                return -1;
            }
        } else if (IS("-r") || IS("--repetitions") || IS("--delay")) {
            NEEDV();
            int r;
            if (parse_one(a, v, IS("--delay") ? 0 : 1, &r)) return -1;
            if (IS("--delay")) o->delay_s = r;
            else if (r > MAX_REPS) {
                fprintf(stderr, "infer-bench: -r: at most %d repetitions\n", MAX_REPS);
                return -1;
            } else o->reps = r;
        } else if (IS("-o") || IS("--output") || IS("-oe") || IS("--output-err")) {
            NEEDV();
            static const char *const fmts[] = {"md", "csv", "json", "jsonl", "sql"}; /* OUT_* order */
            int fmt = -1;
            for (int k = 0; k < 5; k++)
                if (!strcmp(v, fmts[k])) fmt = k;
            if (IS("-oe") || IS("--output-err")) {
                if (fmt < 0 && strcmp(v, "none")) { fprintf(stderr, "infer-bench: -oe takes md, csv, json, jsonl, sql or none\n"); return -1; }
                o->err_format = fmt;
            } else {
                if (fmt < 0) { fprintf(stderr, "infer-bench: -o takes md, csv, json, jsonl or sql\n"); return -1; }
                o->format = fmt;
            }
        } else {
            fprintf(stderr, "infer-bench: unknown option '%s'\n", a);
            return -1;
        }
#undef IS
#undef NEEDV
    }
    if (!o->n_pp) o->pp[o->n_pp++] = 512;
    if (!o->n_tg) o->tg[o->n_tg++] = 128;
    if (!o->n_depth) o->depth[o->n_depth++] = 0;
    if (!o->n_threads) o->threads[o->n_threads++] = infer_default_threads();
    if (!o->n_batch) o->batch[o->n_batch++] = 2048;
    if (!o->n_ubatch) o->ubatch[o->n_ubatch++] = 512;
    if (!o->n_kv) o->kv[o->n_kv++] = INFER_TYPE_F16;
    if (!o->n_mmap) o->mmap[o->n_mmap++] = 1;
    if (!o->n_fa) o->fa[o->n_fa++] = 0;
    if (!o->n_cpu_mask) snprintf(o->cpu_mask[o->n_cpu_mask++], MAX_MASK_TEXT + 1, "0x0"); /* its bits: none */
    if (!o->n_cpu_strict) o->cpu_strict[o->n_cpu_strict++] = 0;
    if (!o->n_poll) o->poll[o->n_poll++] = 50;
    /* llama-bench's rule: an option's column when it has more than one
     * value or one other than the default */
    o->shown = (o->n_batch > 1 || o->batch[0] != 2048 ? SHOW_B : 0) |
               (o->n_ubatch > 1 || o->ubatch[0] != 512 ? SHOW_UB : 0) |
               (o->n_kv > 1 || o->kv[0] != INFER_TYPE_F16 ? SHOW_KV : 0) | (o->n_fa > 1 || o->fa[0] ? SHOW_FA : 0) |
               (o->n_mmap > 1 || !o->mmap[0] ? SHOW_MMP : 0) |
               (o->n_cpu_mask > 1 || strcmp(o->cpu_mask[0], "0x0") ? SHOW_CM : 0) | /* as given, as llama-bench compares */
               (o->n_cpu_strict > 1 || o->cpu_strict[0] ? SHOW_CS : 0) | (o->n_poll > 1 || o->poll[0] != 50 ? SHOW_POLL : 0);
    /* -p 0 / -n 0 ask for no such test: drop them here, once */
    drop_zeros(o->pp, &o->n_pp);
    drop_zeros(o->tg, &o->n_tg);
    if (!o->kernels && !o->n_models) {
        usage(stderr);
        return -1;
    }
    return 0;
}

/* ---- one test ------------------------------------------------------------------------ */


static void random_tokens(int32_t *ids, int n, int32_t n_vocab, uint64_t *rng) {
    for (int i = 0; i < n; i++) {
        *rng = *rng * 6364136223846793005ull + 1442695040888963407ull;
        ids[i] = (int32_t)((*rng >> 33) % (uint64_t)n_vocab);
    }
}

/* ids[0, n) decoded n_batch per decode call; 0, or -1 with the message. */
static int decode_calls(infer_context *c, const int32_t *ids, int n, int n_batch, const char *what) {
    infer_error err;
    for (int i = 0; i < n; i += n_batch) {
        const int k = n - i < n_batch ? n - i : n_batch;
        if (infer_decode(c, ids + i, (size_t)k, 0, &err) != INFER_OK) {
            fprintf(stderr, "infer-bench: %s: %s\n", what, err.message);
            return -1;
        }
    }
    return 0;
}

/* Time one repetition: pp decodes n_prompt tokens, n_batch per decode
 * call (each split into the context's forward passes); tg decodes n_gen
 * tokens one at a time; pg does both in that order. Cache cleared first,
 * then depth random tokens decoded n_batch per call, not timed
 * (llama-bench's -d). ids holds max(depth, n_prompt + n_gen) tokens.
 * Seconds, or < 0; *prompt_s: the prompt's part of them. */
static double run_once(infer_context *c, int32_t *ids, int depth, int n_batch, int n_prompt, int n_gen, int32_t n_vocab,
                       uint64_t *rng, double *prompt_s) {
    if (infer_context_reset(c) != INFER_OK) return -1.0;
    random_tokens(ids, depth, n_vocab, rng);
    if (decode_calls(c, ids, depth, n_batch, "decode (depth)")) return -1.0;
    random_tokens(ids, n_prompt + n_gen, n_vocab, rng);
    double t0 = now_s();
    if (decode_calls(c, ids, n_prompt, n_batch, "decode")) return -1.0;
    *prompt_s = now_s() - t0;
    /* generation: one token per call */
    if (decode_calls(c, ids + n_prompt, n_gen, 1, "decode")) return -1.0;
    return now_s() - t0;
}

/* The next digit of *at in base n (its remainder), *at moving past it. */
static int next_digit(long long *at, int n) {
    const int d = (int)(*at % n);
    *at /= n;
    return d;
}

static int run_test(infer_model *m, result *r, int reps, int warmup, double bandwidth) {
    infer_error err;
    const time_t now = time(NULL);
    struct tm utc;
    if (!gmtime_r(&now, &utc) || !strftime(r->test_time, sizeof r->test_time, "%Y-%m-%dT%H:%M:%SZ", &utc))
        r->test_time[0] = '\0';
    infer_context *c = NULL;
    infer_context_params cp = infer_context_default_params();
    const int n_tok = r->n_prompt + r->n_gen, all = r->depth + n_tok; /* each at most 2^24 (parse_list) */
    cp.n_ctx = (uint32_t)(all < 16 ? 16 : all);
    /* Forward passes of -ub tokens, or of the most a decode call holds
     * where that is fewer (a smaller arena, the same passes). */
    const int b = r->n_batch, fill = r->depth < b ? r->depth : b, pp = r->n_prompt < b ? r->n_prompt : b;
    const int need = pp > fill ? pp : fill > 0 ? fill : 1;
    cp.n_batch = (uint32_t)(r->n_ubatch < need ? r->n_ubatch : need);
    cp.kv_type = r->kv_type;
    cp.n_threads = r->threads;
    memcpy(cp.cpu_mask, r->cpu_bits, sizeof cp.cpu_mask);
    cp.cpu_strict = r->cpu_strict;
    cp.poll = r->poll;
    cp.backend = r->backend;
    cp.device = r->device;
    if (infer_context_new(m, &cp, &c, &err) != INFER_OK) {
        fprintf(stderr, "infer-bench: context: %s\n", err.message);
        return -1;
    }
    r->ran_on = infer_context_backend(c) == INFER_BACKEND_VULKAN ? "Vulkan" : "CPU";
    if (r->backend != INFER_BACKEND_CPU && infer_context_backend(c) == INFER_BACKEND_CPU) {
        fprintf(stderr, "infer-bench: %s; running on the CPU\n", infer_context_backend_note(c));
    }
    const int n_ids = r->depth > n_tok ? r->depth : n_tok;
    int32_t *ids = malloc((size_t)(n_ids > 0 ? n_ids : 1) * sizeof *ids);
    uint64_t rng = 1234;
    int32_t nv = infer_model_n_vocab(m);
    int ok = ids != NULL;
    double prompt_s = 0.0;
    /* Warm-up: one run of the test itself, with one generated token
     * (llama-bench's warm-up; --no-warmup skips it as llama-bench's does). */
    if (ok && warmup)
        ok = run_once(c, ids, r->depth, b, r->n_prompt, r->n_gen > 0 ? 1 : 0, nv, &rng, &prompt_s) >= 0;
    /* Generation: the probe again right before each repetition (on a shared
     * machine the bandwidth on offer moves by 2x within minutes), and the
     * share of it each repetition streamed. */
    /* The probe reads host memory: no share of it for a run on a device. */
    const int on_cpu = r->on_cpu = infer_context_backend(c) == INFER_BACKEND_CPU;
    const int paired = on_cpu && r->n_gen && !r->n_prompt && r->threads > 0;
    double pct_sum = 0.0, probe_lo = 0.0, probe_hi = 0.0;
    for (int k = 0; ok && k < reps && k < MAX_REPS; k++) {
        const double pb = paired ? bench_probe_bandwidth(r->threads, r->cpu_mask, r->cpu_strict) : 0.0;
        double t = run_once(c, ids, r->depth, b, r->n_prompt, r->n_gen, nv, &rng, &prompt_s);
        if (t <= 0) {
            ok = 0;
            break;
        }
        r->samples[r->n_samples++] = (double)n_tok / t;
        if (r->n_prompt) r->ttft_ms += prompt_s * 1e3 / reps;
        if (pb > 0) {
            pct_sum += 100.0 * (double)r->streamed * r->samples[r->n_samples - 1] / 1e9 / pb;
            if (probe_lo == 0 || pb < probe_lo) probe_lo = pb;
            if (pb > probe_hi) probe_hi = pb;
        }
    }
    if (ok) {
        mean_sd(r->samples, r->n_samples, &r->mean, &r->sd);
        if (r->n_gen && !r->n_prompt) {
            r->gbs = (double)r->streamed * r->mean / 1e9; /* the embedding table is read one row a token */
            if (probe_lo > 0) {
                r->bw_pct = pct_sum / r->n_samples;
                r->probe_gbs = probe_lo;
                r->probe_hi = probe_hi;
                fprintf(stderr, "infer-bench: %s tg%d, %d threads: probe before each repetition %.2f-%.2f GB/s\n", r->desc,
                        r->n_gen, r->threads, probe_lo, probe_hi);
            } else if (on_cpu) {
                r->bw_pct = bandwidth > 0 ? 100.0 * r->gbs / bandwidth : 0.0;
            }
        }
    }
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    r->rss_mib = (double)ru.ru_maxrss / 1024.0;
    free(ids);
    infer_context_free(c);
    return ok ? 0 : -1;
}

int main(int argc, char **argv) {
    int rc;
    if (bench_probe_child(argc, argv, &rc)) return rc;
    bench_opts o;
    if (parse_args(argc, argv, &o) != 0) return 1;
    if (o.kernels) { /* the matmuls on -t threads, placed and polling as -C, --cpu-strict and --poll say */
        if (o.n_threads > 1 || o.n_cpu_mask > 1 || o.n_cpu_strict > 1 || o.n_poll > 1) {
            fprintf(stderr, "infer-bench: --kernels takes one value each of -t, -C, --cpu-strict and --poll\n");
            return 1;
        }
        const pool_opts po = {.cpu_mask = o.cpu_bits[0], .strict = o.cpu_strict[0], .poll = o.poll[0]};
        return bench_kernels(stdout, o.threads[0], &po) == 0 ? 0 : 3;
    }
    const int perr = process_priority_set(o.prio); /* llama.cpp warns and goes on when refused */
    if (perr) fprintf(stderr, "infer-bench: --prio %d: cannot set the nice value: %s (going on)\n", o.prio, strerror(perr));

    int max_threads = 1;
    for (int i = 0; i < o.n_threads; i++) if (o.threads[i] > max_threads) max_threads = o.threads[i];
    double bw = bench_probe_bandwidth(max_threads, "0x0", 0);
    fprintf(stderr, "infer-bench: read bandwidth probe: %.2f GB/s (%d threads, best of 10 passes over 512 MiB, 1 and 4 streams per thread)\n", bw,
            max_threads);
    if ((o.format != OUT_MD) || (o.err_format >= 0 && o.err_format != OUT_MD)) report_machine_info(); /* records only */
    printer out = {stdout, o.format, o.shown, 1}, err_out = {stderr, o.err_format, o.shown, 1};
    report_begin(&out);
    report_begin(&err_out);
    /* Option sets per model load (llama-bench's instances), each run with
     * every pp, tg and pg test; tests in all for --progress. Eleven counts
     * of at most MAX_LIST (16) each, the tests 3 x 16: under 2^50, so a
     * long long holds them. */
    const long long n_inst = (long long)o.n_batch * o.n_ubatch * o.n_kv * o.n_fa * o.n_threads * o.n_cpu_mask *
                             o.n_cpu_strict * o.n_depth * o.n_poll;
    const long long n_tests = n_inst * (o.n_pp + o.n_tg + o.n_pg) * o.n_models * o.n_mmap;
    int first_test = 1, failed = 0;
    long long test_no = 0;
    /* each model once per -mmp value, loaded that way */
    for (int lm = 0; lm < o.n_models * o.n_mmap; lm++) {
        const int mi = lm / o.n_mmap, use_mmap = o.mmap[lm % o.n_mmap];
        infer_error err;
        infer_model *m = NULL;
        infer_model_params mp = infer_model_default_params();
        mp.use_mmap = use_mmap;
        double t0 = now_s();
        if (infer_model_load(o.models[mi], &mp, &m, &err) != INFER_OK) {
            char qpath[512];
            fprintf(stderr, "infer-bench: %s: %s\n", escape_cstr(o.models[mi], qpath, sizeof qpath),
                    err.message);
            failed = 1;
            continue;
        }
        double load_ms = (now_s() - t0) * 1e3;
        /* llama-bench's order: -b x -ub x KV type x -fa x threads x -C x
         * --cpu-strict x depth x --poll, the last varying fastest (instance
         * in's digits, the fastest first); then the pp, tg and pg tests */
        for (long long in = 0; in < n_inst; in++) {
            long long at = in;
            const int pi = next_digit(&at, o.n_poll), di = next_digit(&at, o.n_depth);
            const int si = next_digit(&at, o.n_cpu_strict), ci = next_digit(&at, o.n_cpu_mask);
            const int ti = next_digit(&at, o.n_threads), fi = next_digit(&at, o.n_fa);
            const int ki = next_digit(&at, o.n_kv), ui = next_digit(&at, o.n_ubatch), bi = next_digit(&at, o.n_batch);
            for (int kind = 0; kind < 3; kind++) { /* pp, tg, pg */
                const int n = kind == 0 ? o.n_pp : kind == 1 ? o.n_tg : o.n_pg;
                for (int e = 0; e < n; e++) {
                    const int n_prompt = kind == 0 ? o.pp[e] : kind == 2 ? o.pg[e][0] : 0;
                    const int n_gen = kind == 1 ? o.tg[e] : kind == 2 ? o.pg[e][1] : 0;
                    result r = {.model_path = o.models[mi], .size = infer_model_size(m), .streamed = infer_model_streamed_bytes(m), .params = infer_model_n_params(m),
                                .threads = o.threads[ti], .cpu_mask = o.cpu_mask[ci], .cpu_bits = o.cpu_bits[ci],
                                .cpu_strict = o.cpu_strict[si],
                                .poll = o.poll[pi], .n_batch = o.batch[bi], .n_ubatch = o.ubatch[ui],
                                .kv_type = o.kv[ki], .flash_attn = o.fa[fi], .use_mmap = use_mmap, .load_ms = load_ms,
                                .backend = o.backend,
                                .device = o.device, .ran_on = "CPU"};
                    snprintf(r.desc, sizeof r.desc, "%s", infer_model_desc(m));
                    r.n_prompt = n_prompt;
                    r.n_gen = n_gen;
                    r.depth = o.depth[di];
                    if (o.delay_s > 0 && !first_test) sleep((unsigned)o.delay_s);
                    first_test = 0;
                    if (o.progress) {
                        char name[48];
                        report_test_name(&r, name, sizeof name);
                        fprintf(stderr, "infer-bench: test %lld/%lld: %s, %s, %d threads\n", ++test_no, n_tests,
                                r.desc, name, r.threads);
                    }
                    if (run_test(m, &r, o.reps, o.warmup, bw) != 0) {
                        failed = 1;
                        continue;
                    }
                    report_row(&out, &r);
                    report_row(&err_out, &r);
                }
            }
        }
        infer_model_release(m);
    }
    report_end(&out);
    report_end(&err_out);
    return failed ? 3 : 0;
}
