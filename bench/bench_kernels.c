/*
 * bench_kernels.c - matmul throughput per weight type and CPU kernel level,
 * as a markdown table: GFLOP/s for prompt processing (512 activation rows
 * against 2048x2048 and 5632x2048 weights) and GB/s of weights streamed for
 * generation (one activation row against weights far larger than the last
 * level cache), using every online CPU the way the CPU backend does (the
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
 */
#include <cblas.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "dispatch.h"
#include "infer_gguf.h"
#include "pool.h"
#include "ref/quants.h"

int bench_kernels(FILE *out);

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

static void mm_part(void *arg, int ith, int nth) {
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

static const uint32_t TYPES[] = {
    INFER_TYPE_F32,  INFER_TYPE_F16,  INFER_TYPE_BF16, INFER_TYPE_Q4_0, INFER_TYPE_Q4_1,
    INFER_TYPE_Q5_0, INFER_TYPE_Q5_1, INFER_TYPE_Q8_0, INFER_TYPE_Q2_K, INFER_TYPE_Q3_K,
    INFER_TYPE_Q4_K, INFER_TYPE_Q5_K, INFER_TYPE_Q6_K,
};

int bench_kernels(FILE *out) {
    long ncpu = sysconf(_SC_NPROCESSORS_ONLN);
    const int nth = ncpu > 0 ? (int)ncpu : 1;
    pool *p = NULL;
    infer_error err;
    if (pool_new(nth, &p, &err) != INFER_OK) {
        fprintf(stderr, "bench_kernels: no thread pool\n");
        return 1;
    }
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

    fprintf(out, "## Kernels: matmul per weight type (%d threads)\n\n", nth);
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
    return 0;
}
