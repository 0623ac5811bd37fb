/*
 * bench_kernels.c - matmul throughput per weight type and CPU kernel level,
 * as a markdown table: GFLOP/s for prompt processing (512 activation rows
 * against 2048x2048 and 5632x2048 weights) and GB/s of weights streamed for
 * generation (one activation row against weights far larger than the last
 * level cache), using the CPUs it may run on as the CPU backend does (the
 * rows split in multiples of 32 over the thread pool). OpenBLAS sgemm and
 * sgemv (with its own threads) are the baseline. Activation quantization
 * is not timed: it is its own kernel and costs a fraction of a percent.
 *
 * Each figure is the best of a few repetitions, to damp the noise of a
 * shared machine. Quantized weights are timed in the layout a model runs
 * them in: repacked at load time where the level repacks the type (the
 * AVX-512 and AVX2 levels; AVX2 keeps Q2_K and Q3_K), the file's layout
 * elsewhere. INFER_BENCH_TYPES=q4_0,q8_0 limits the run to those
 * weight types (and skips the OpenBLAS rows unless f32 is among them).
 *
 * A second table (bench_ops) times the kernel table's other entries at
 * every level, the reference too: ns per call on one thread, data in cache.
 */
#include <cblas.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "bench.h"
#include "dispatch.h"
#include "infer.h"
#include "pool.h"
#include "ref/quants.h"

static int bench_ops(FILE *out);

#define PP_TOK 512
#define PP_COLS 2048
#define BIG_ROWS 5632
#define SMALL_ROWS 2048
#define TG_BYTES ((size_t)384 << 20) /* weights streamed per generation pass */
#define REPS 3

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static uint64_t rng_state = 0x1234567;

static float rnd(void) {
    uint64_t z = (rng_state += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    z ^= z >> 31;
    return (float)((z >> 40) * (1.0 / 16777216.0)) * 2.0f - 1.0f;
}

static size_t row_size(uint32_t type, int64_t n) {
    uint64_t b = 0;
    return infer_type_row_bytes(type, (uint64_t)n, &b) == INFER_OK ? (size_t)b : 0;
}

typedef struct {
    const kernel_table *kt;
    uint32_t type;
    const uint8_t *W;
    size_t rb;
    int64_t rows, cols;
    const void *act;
    size_t as;
    int64_t n_tok;
    float *out;
    int packed; /* W is the level's repacked form (all rows in whole groups) */
} mm_job;

static void mm_part(void *arg, int ith, int nth, int self) {
    const mm_job *j = arg;
    const int64_t groups = (j->rows + 31) / 32;
    int64_t b, e;
    pool_range(groups, ith, nth, &b, &e);
    b *= 32;
    e = e * 32 < j->rows ? e * 32 : j->rows;
    if (e <= b) return;
    if (j->packed)
        j->kt->matmul_packed(j->type, j->W, b, e - b, j->cols, j->act, j->as, j->n_tok, j->out + b, (size_t)j->rows);
    else
        j->kt->matmul(j->type, j->W + (size_t)b * j->rb, j->rb, e - b, j->cols, j->act, j->as, j->n_tok, j->out + b,
                      (size_t)j->rows);
}

/* Best time of REPS runs of the job over `copies` weight matrices laid out
 * one after another (copies > 1 defeats the caches). */
static double time_mm(pool *p, mm_job *j, int copies, size_t copy_bytes) {
    double best = 1e30;
    const uint8_t *W0 = j->W;
    for (int r = 0; r < REPS; r++) {
        const double t0 = now_s();
        for (int c = 0; c < copies; c++) {
            j->W = W0 + (size_t)c * copy_bytes;
            pool_run(p, mm_part, j);
        }
        const double t = now_s() - t0;
        if (t < best) best = t;
    }
    j->W = W0;
    return best;
}

/* 1 when INFER_BENCH_TYPES is unset or names this type. */
static int type_wanted(const char *name) {
    const char *want = getenv("INFER_BENCH_TYPES");
    if (!want || !*want) return 1;
    const size_t n = strlen(name);
    for (const char *p = want; (p = strstr(p, name)) != NULL; p += n)
        if ((p == want || p[-1] == ',') && (p[n] == ',' || p[n] == '\0')) return 1;
    return 0;
}

/* ---- the other entries of the kernel tables, one thread, data in cache ---- */

#define OP_N 2048      /* values per row: TinyLlama's n_embd */
#define OP_FF 5632     /* SiLU x up: its n_ff */
#define OP_KV 4096     /* softmax row and V's positions: a 4096-position context */
#define OP_HD 64       /* head size */
#define OP_GROUP 8     /* query heads per KV head */
#define OP_TILE 32     /* positions per K tile */

typedef enum {
    OP_QUANT_Q8_0, OP_QUANT_Q8_K, OP_QUANT_F16, OP_DEQUANT_Q4_0, OP_RMS_NORM, OP_SILU_MUL, OP_ADD, OP_SOFTMAX,
    OP_KN_SCORES, OP_KN_VALUES, OP_COUNT
} op_id;

static const struct {
    const char *name, *size;
    double bytes, flops; /* per call: bytes read and written (the least the op must move), multiply-adds x 2 */
} OPS[OP_COUNT] = {
    {"quantize_act q8_0", "2048", OP_N * 4.0 + OP_N / 32 * 34.0, 0},
    {"quantize_act q8_K", "2048", OP_N * 4.0 + OP_N / 256 * 292.0, 0},
    {"quantize_act f16 (q, KV store)", "2048", OP_N * 6.0, 0},
    {"dequantize q4_0 (get_rows)", "2048", OP_N / 32 * 18.0 + OP_N * 4.0, 0},
    {"rms_norm", "2048", OP_N * 12.0, 0},
    {"silu_mul", "5632", OP_FF * 12.0, 0},
    {"add", "2048", OP_N * 12.0, 0},
    {"softmax to f16 (one attention row)", "4096", OP_KV * 6.0, 0},
    {"matmul_kn f16: attention scores", "32 pos x 64 x 8 rows", OP_TILE * OP_HD * 2.0 + OP_GROUP * OP_HD * 2.0 + OP_TILE * OP_GROUP * 4.0,
     2.0 * OP_TILE * OP_HD * OP_GROUP},
    {"matmul_kn f16: attention values", "64 x 4096 pos x 8 rows", OP_KV * OP_HD * 2.0 + OP_GROUP * OP_KV * 2.0 + OP_GROUP * OP_HD * 4.0,
     2.0 * OP_KV * OP_HD * OP_GROUP},
};

typedef struct {
    float *x, *y, *w, *silu, *sm; /* silu: gate, up, a fresh gate; sm: scores, fresh scores */
    uint8_t *q, *kv, *probs, *qh;
} op_bufs;

static void run_op(const kernel_table *kt, op_id op, op_bufs *b) {
    switch (op) {
    case OP_QUANT_Q8_0: kt->quantize_act(INFER_TYPE_Q8_0, b->x, b->q, OP_N); break;
    case OP_QUANT_Q8_K: kt->quantize_act(INFER_TYPE_Q8_K, b->x, b->q, OP_N); break;
    case OP_QUANT_F16: kt->quantize_act(INFER_TYPE_F16, b->x, b->q, OP_N); break;
    case OP_DEQUANT_Q4_0: kt->dequantize(INFER_TYPE_Q4_0, b->kv, b->y, OP_N); break;
    case OP_RMS_NORM: kt->rms_norm(b->x, b->w, b->y, OP_N, 1e-5f); break;
    case OP_SILU_MUL:
        /* a fresh gate each call: fed back into itself it drifts to denormals
         * and infinities, which cost an Intel core microcode assists */
        memcpy(b->silu, b->silu + 2 * OP_FF, OP_FF * sizeof(float));
        kt->silu_mul(b->silu, b->silu + OP_FF, OP_FF);
        break;
    case OP_ADD: kt->add(b->y, b->x, OP_N); break;
    case OP_SOFTMAX: {
        float mx;
        memcpy(b->sm, b->sm + OP_KV, OP_KV * sizeof(float)); /* fresh scores (softmax overwrites them) */
        (void)kernels_softmax(kt, b->sm, OP_KV, OP_KV, 0.125f, INFER_TYPE_F16, b->probs, &mx);
        break;
    }
    case OP_KN_SCORES:
        kt->matmul_kn(INFER_TYPE_F16, b->kv, OP_TILE * 2, OP_TILE, OP_HD, b->qh, OP_HD * 2, OP_GROUP, b->y, OP_KV);
        break;
    case OP_KN_VALUES:
        kt->matmul_kn(INFER_TYPE_F16, b->kv, OP_HD * 2, OP_HD, OP_KV, b->probs, OP_KV * 2, OP_GROUP, b->y, OP_HD);
        break;
    default: break;
    }
}

/* n F16 values (rnd() + shift) * scale at p. */
static void fill_f16(uint8_t *p, size_t n, float shift, float scale) {
    for (size_t i = 0; i < n; i++) {
        const uint16_t h = infer_f32_to_f16((rnd() + shift) * scale);
        memcpy(p + 2 * i, &h, 2);
    }
}

/* Seconds per call: the best of REPS timings of enough calls for ~5 ms. */
static double time_op(const kernel_table *kt, op_id op, op_bufs *b) {
    int n = 1;
    for (;;) {
        const double t0 = now_s();
        for (int i = 0; i < n; i++) run_op(kt, op, b);
        if (now_s() - t0 >= 5e-3 || n >= (1 << 24)) break;
        n *= 2;
    }
    double best = 1e30;
    for (int r = 0; r < REPS; r++) {
        const double t0 = now_s();
        for (int i = 0; i < n; i++) run_op(kt, op, b);
        const double t = (now_s() - t0) / n;
        if (t < best) best = t;
    }
    return best;
}

/* Every other kernel-table entry the forward pass calls, at every level
 * (the reference too), one thread, its data in cache: what each costs per
 * call beside the matmuls. RoPE and the attention's loop are the
 * backend's own code over these entries, not table entries. */
static int bench_ops(FILE *out) {
    op_bufs b = {0};
    b.x = malloc(sizeof(float) * OP_N);
    b.y = malloc(sizeof(float) * OP_KV * OP_GROUP); /* the largest output: scores of 8 rows, stride OP_KV */
    b.w = malloc(sizeof(float) * OP_N);
    b.silu = malloc(sizeof(float) * 3 * OP_FF);
    b.sm = malloc(sizeof(float) * 2 * OP_KV);
    b.q = malloc((size_t)OP_N / 256 * 292 + OP_N * 2);
    b.kv = malloc((size_t)OP_KV * OP_HD * 2); /* V (and a K tile, and a Q4_0 row) */
    b.probs = malloc((size_t)OP_GROUP * OP_KV * 2);
    b.qh = malloc((size_t)OP_GROUP * OP_HD * 2);
    int ok = b.x && b.y && b.w && b.silu && b.sm && b.q && b.kv && b.probs && b.qh;
    if (ok) {
        for (int i = 0; i < OP_N; i++) b.x[i] = rnd() * 4.0f, b.w[i] = 1.0f + 0.1f * rnd();
        for (int i = 0; i < 3 * OP_FF; i++) b.silu[i] = rnd() * 8.0f;
        for (int i = 0; i < 2 * OP_KV; i++) b.sm[i] = rnd() * 8.0f;
        for (int i = 0; i < OP_KV * OP_GROUP; i++) b.y[i] = rnd();
        fill_f16(b.kv, (size_t)OP_KV * OP_HD, 0.0f, 1.0f);
        fill_f16(b.probs, (size_t)OP_GROUP * OP_KV, 1.0f, 1.0f / (float)OP_KV); /* weights in (0, 2/OP_KV) */
        fill_f16(b.qh, (size_t)OP_GROUP * OP_HD, 0.0f, 1.0f);
        fprintf(out, "## Kernels: the other ops per level (1 thread, data in cache)\n\n");
        fprintf(out, "GB/s: the bytes each call must read and write; GFLOP/s for the attention's products (2 per multiply-add).\n\n");
        fprintf(out, "| level | kernel | size | ns per call | GB/s | GFLOP/s |\n");
        fprintf(out, "|---|---|---|---:|---:|---:|\n");
        for (int op = 0; op < OP_COUNT; op++) {
            for (int i = INFER_ISA_REF; i < INFER_ISA_COUNT; i++) {
                const kernel_table *kt = kernels_for((infer_isa)i);
                if (!kt) continue;
                const double t = time_op(kt, (op_id)op, &b);
                char gf[32] = "";
                if (OPS[op].flops > 0) snprintf(gf, sizeof gf, "%.1f", OPS[op].flops / t * 1e-9);
                fprintf(out, "| %s | %s | %s | %.0f | %.2f | %s |\n", kt->name, OPS[op].name, OPS[op].size, t * 1e9,
                        OPS[op].bytes / t * 1e-9, gf);
                fflush(out);
            }
        }
        fprintf(out, "\n");
    } else {
        fprintf(stderr, "bench_kernels: out of memory\n");
    }
    free(b.x), free(b.y), free(b.w), free(b.silu), free(b.sm), free(b.q), free(b.kv), free(b.probs), free(b.qh);
    return ok ? 0 : 1;
}

static const uint32_t TYPES[] = {
    INFER_TYPE_F32,  INFER_TYPE_F16,  INFER_TYPE_BF16, INFER_TYPE_Q4_0, INFER_TYPE_Q4_1,
    INFER_TYPE_Q5_0, INFER_TYPE_Q5_1, INFER_TYPE_Q8_0, INFER_TYPE_Q2_K, INFER_TYPE_Q3_K,
    INFER_TYPE_Q4_K, INFER_TYPE_Q5_K, INFER_TYPE_Q6_K,
};

int bench_kernels(FILE *out, int nth, const pool_opts *opts) {
    pool *p = NULL;
    infer_error err;
    if (pool_new(nth, opts, &p, &err) != INFER_OK) {
        fprintf(stderr, "infer-bench: --kernels: %s\n", err.message);
        return 1;
    }
    nth = pool_size(p);
    const kernel_table *levels[INFER_ISA_COUNT];
    int n_levels = 0;
    for (int i = INFER_ISA_AVX2; i < INFER_ISA_COUNT; i++)
        if (kernels_for((infer_isa)i)) levels[n_levels++] = kernels_for((infer_isa)i);

    float *wf = malloc(sizeof(float) * PP_COLS);
    float *xf = malloc(sizeof(float) * PP_COLS * PP_TOK);
    float *res = malloc(sizeof(float) * (size_t)BIG_ROWS * PP_TOK);
    uint8_t *act = malloc(row_size(INFER_TYPE_F32, PP_COLS) * PP_TOK);
    if (!wf || !xf || !res || !act) {
        fprintf(stderr, "bench_kernels: out of memory\n");
        free(wf), free(xf), free(res), free(act), pool_free(p);
        return 1;
    }
    for (size_t i = 0; i < (size_t)PP_COLS * PP_TOK; i++) xf[i] = rnd();

    fprintf(out, "## Kernels: matmul per weight type (%d thread%s)\n\n", nth, nth == 1 ? "" : "s");
    fprintf(out, "pp: %d activation rows x (rows x %d) weights, GFLOP/s (2 per multiply-add). "
                 "tg: one row, GB/s of weights streamed from memory (%zu MiB per pass). "
                 "layout: the weights as the level runs a model's (repacked at load time, or the file's).\n\n",
            PP_TOK, PP_COLS, TG_BYTES >> 20);
    fprintf(out, "| level | weights | layout | pp 2048x2048 GFLOP/s | pp 5632x2048 GFLOP/s | tg GB/s | tg GFLOP/s |\n");
    fprintf(out, "|---|---|---|---:|---:|---:|---:|\n");

    /* The baseline: OpenBLAS on F32, with its own threads. */
    if (type_wanted("f32")) {
        float *Wb = malloc(sizeof(float) * (size_t)BIG_ROWS * PP_COLS);
        const int copies = (int)(TG_BYTES / (sizeof(float) * (size_t)BIG_ROWS * PP_COLS)) + 1;
        float *Wt = malloc(sizeof(float) * (size_t)BIG_ROWS * PP_COLS * (size_t)copies);
        if (Wb && Wt) {
            for (size_t i = 0; i < (size_t)BIG_ROWS * PP_COLS; i++) Wb[i] = rnd();
            for (int c = 0; c < copies; c++) memcpy(Wt + (size_t)c * BIG_ROWS * PP_COLS, Wb, sizeof(float) * (size_t)BIG_ROWS * PP_COLS);
            openblas_set_num_threads(nth);
            double pp[2];
            const int rows_of[2] = {SMALL_ROWS, BIG_ROWS};
            for (int s = 0; s < 2; s++) {
                double best = 1e30;
                for (int r = 0; r < REPS; r++) {
                    const double t0 = now_s();
                    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, PP_TOK, rows_of[s], PP_COLS, 1.0f, xf,
                                PP_COLS, Wb, PP_COLS, 0.0f, res, rows_of[s]);
                    const double t = now_s() - t0;
                    if (t < best) best = t;
                }
                pp[s] = 2.0 * PP_TOK * rows_of[s] * PP_COLS / best * 1e-9;
            }
            double best = 1e30;
            for (int r = 0; r < REPS; r++) {
                const double t0 = now_s();
                for (int c = 0; c < copies; c++)
                    cblas_sgemv(CblasRowMajor, CblasNoTrans, BIG_ROWS, PP_COLS, 1.0f, Wt + (size_t)c * BIG_ROWS * PP_COLS,
                                PP_COLS, xf, 1, 0.0f, res, 1);
                const double t = now_s() - t0;
                if (t < best) best = t;
            }
            const double bytes = (double)copies * BIG_ROWS * PP_COLS * sizeof(float);
            fprintf(out, "| OpenBLAS sgemm/sgemv | f32 | row-major | %.1f | %.1f | %.1f | %.1f |\n", pp[0], pp[1], bytes / best * 1e-9,
                    2.0 * copies * BIG_ROWS * PP_COLS / best * 1e-9);
            openblas_set_num_threads(1);
        }
        free(Wb);
        free(Wt);
    }

    for (size_t ti = 0; ti < sizeof TYPES / sizeof TYPES[0]; ti++) {
        const uint32_t type = TYPES[ti], at = infer_ref_vec_dot_type(type);
        if (!type_wanted(infer_type_name(type))) continue;
        const size_t rb = row_size(type, PP_COLS), ab = row_size(at, PP_COLS);
        const size_t mat_bytes = rb * BIG_ROWS;
        const int copies = (int)(TG_BYTES / mat_bytes) + 1;
        uint8_t *W = malloc(mat_bytes * (size_t)copies);
        uint8_t *qa = malloc(ab * PP_TOK);
        if (!W || !qa) {
            free(W), free(qa);
            continue;
        }
        for (int64_t r = 0; r < BIG_ROWS; r++) {
            for (int k = 0; k < PP_COLS; k++) wf[k] = rnd();
            infer_ref_quantize(type, wf, W + (size_t)r * rb, PP_COLS);
        }
        for (int c = 1; c < copies; c++) memcpy(W + (size_t)c * mat_bytes, W, mat_bytes);
        for (int l = 0; l < n_levels; l++) {
            const kernel_table *kt = levels[l];
            /* the layout a model runs: repacked where the level repacks the type */
            const int packed = kt->packed_size && kt->pack && kt->matmul_packed &&
                               kt->packed_size(type, BIG_ROWS, PP_COLS) == mat_bytes;
            uint8_t *P = packed ? malloc(mat_bytes * (size_t)copies) : NULL;
            if (packed && !P) continue;
            if (P) {
                kt->pack(type, W, rb, BIG_ROWS, PP_COLS, P);
                for (int c = 1; c < copies; c++) memcpy(P + (size_t)c * mat_bytes, P, mat_bytes);
            }
            for (int t = 0; t < PP_TOK; t++) kt->quantize_act(at, xf + (size_t)t * PP_COLS, qa + (size_t)t * ab, PP_COLS);
            /* the first SMALL_ROWS rows of the packed form are those rows' packed form (whole groups) */
            mm_job j = {kt, type, P ? P : W, rb, SMALL_ROWS, PP_COLS, qa, ab, PP_TOK, res, packed};
            const double t_small = time_mm(p, &j, 1, 0);
            j.rows = BIG_ROWS;
            const double t_big = time_mm(p, &j, 1, 0);
            j.n_tok = 1;
            const double t_tg = time_mm(p, &j, copies, mat_bytes);
            fprintf(out, "| %s | %s | %s | %.1f | %.1f | %.1f | %.1f |\n", kt->name, infer_type_name(type),
                    packed ? "repacked" : "file",
                    2.0 * PP_TOK * SMALL_ROWS * PP_COLS / t_small * 1e-9, 2.0 * PP_TOK * BIG_ROWS * PP_COLS / t_big * 1e-9,
                    (double)mat_bytes * copies / t_tg * 1e-9, 2.0 * BIG_ROWS * PP_COLS * copies / t_tg * 1e-9);
            fflush(out);
            free(P);
        }
        free(W);
        free(qa);
    }
    fprintf(out, "\n");
    free(wf);
    free(xf);
    free(res);
    free(act);
    pool_free(p);
    return bench_ops(out);
}
