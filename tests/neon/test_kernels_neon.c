/*
 * test_kernels_neon.c - every entry of kernels_neon against kernels_ref on
 * random inputs, cross-compiled for aarch64 and run under qemu-aarch64
 * (`make test-neon`; with --no-dotprod, on a CPU without it, the dispatch
 * falling back to the reference). No Criterion (there is none for arm64 here): a plain
 * program whose last line is "N passed, M failed" and whose exit status is
 * non-zero on any failure.
 *
 * Inputs: odd numbers of blocks, n_tok 1, 2, 3, 5, 17, row counts that are
 * not multiples of the 4-row tile, padded row/activation/output strides,
 * buffers that end right before an unmapped page (an over-read faults),
 * and values that are zero, huge, subnormal, inf or NaN.
 *
 * Tolerances, and why:
 *   - activation quantization, dequantization, add: identical bytes /
 *     floats (the same rounding steps; NaN matches any NaN);
 *   - quantized matmul: the integer dots are exact and each output repeats
 *     the reference's float steps in its order, so results are expected
 *     bit-identical; allowed 1e-6 * sum|w_i a_i| (dequantized) to leave
 *     room for a harmless reordering, and the count of bit-exact outputs
 *     is printed;
 *   - F32/F16/BF16 matmul: reordered float sums of the same products:
 *     |diff| <= (2n + 8) * 2^-24 * sum|w_i a_i| (each sum's rounding error
 *     is at most n * 2^-24 * sum|terms|), plus 1e-37 for products that
 *     underflow;
 *   - rms_norm: only the order of the double sum differs, so the float
 *     mean moves by at most an ulp: 2^-21 relative (4 ulp);
 *   - silu_mul: e^x differs from expf by a few ulp: 2^-20 relative, plus
 *     1e-35 absolute where e^-g is within an ulp of float overflow.
 * A NaN must be matched by a NaN, an inf by the same inf; except where a
 * float-type sum's terms reach FLT_MAX (sum|w_i a_i| >= FLT_MAX): there
 * f32 lanes may overflow where ref's double does not, ref's product
 * rounded to inf may be finite inside a fused multiply-add, and terms that
 * overflow meet in another order (inf + -inf is NaN, a fused -inf + 1e45
 * is -inf), so a non-finite result on either side is accepted; two finite
 * results must still agree within the tolerance.
 */
#include <float.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "dispatch.h"
#include "infer_gguf.h"
#include "ref/quants.h"

static const kernel_table *NEON, *REF;
static int n_passed, n_failed, verbose;

static void report(int ok, const char *fmt, ...) {
    if (ok) n_passed++;
    else n_failed++;
    if (ok && !verbose) return;
    va_list ap;
    va_start(ap, fmt);
    printf("%s ", ok ? "ok  " : "FAIL");
    vprintf(fmt, ap);
    printf("\n");
    va_end(ap);
}

/* ---- random values -------------------------------------------------------------- */

static uint64_t rng = 0x5eed1234abcdull;

static uint64_t rnd(void) { /* splitmix64 */
    uint64_t z = (rng += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

static float unif(void) { return (float)((rnd() >> 40) * (2.0 / 16777216.0) - 1.0); } /* [-1, 1) */
static float gauss(void) { return (unif() + unif() + unif() + unif()) * 0.866f; }
static int rndint(int n) { return (int)(rnd() % (uint64_t)n); }

static float bits_f32(uint32_t u) {
    float f;
    memcpy(&f, &u, 4);
    return f;
}

typedef enum { IN_NORMAL, IN_WIDE, IN_ZERO, IN_HUGE, IN_TINY, IN_SPECIAL, IN_HALVES, IN_COUNT } in_mode;
static const char *const IN_NAME[IN_COUNT] = {"normal", "wide", "zero", "huge", "subnormal", "inf/nan", "halves"};

/* n floats of a kind. huge: the magnitude of IN_HUGE. IN_HALVES: per 32
 * values, -127 and +127 (in that order) and the rest k + 0.5, ties for
 * every rounding rule. */
static void fill(float *x, int64_t n, in_mode m, float huge) {
    for (int64_t i = 0; i < n; i++) {
        switch (m) {
        case IN_NORMAL: x[i] = gauss(); break;
        case IN_WIDE: x[i] = ldexpf(gauss(), rndint(41) - 20); break;
        case IN_ZERO: x[i] = (rnd() & 1) ? 0.0f : -0.0f; break;
        case IN_HUGE: x[i] = gauss() * huge; break;
        case IN_TINY: x[i] = (rnd() & 3) ? bits_f32((uint32_t)(rnd() & 0x807fffffu)) : gauss() * 1e-37f; break;
        case IN_SPECIAL: {
            /* quiet and signalling NaNs of both signs among the specials */
            const float special[8] = {INFINITY, -INFINITY, NAN,    bits_f32(0x7f800001u),
                                      bits_f32(0xffa00123u), 0.0f, 1e30f, 1e-40f};
            x[i] = rndint(12) == 0 ? special[rndint(8)] : gauss();
            break;
        }
        case IN_HALVES: x[i] = (float)(rndint(252) - 126) + 0.5f; break;
        default: break;
        }
    }
    if (m == IN_HALVES)
        for (int64_t b = 0; b + 32 <= n; b += 32) {
            const int j0 = rndint(16);
            x[b + j0] = -127.0f;
            x[b + j0 + 1 + rndint(15)] = 127.0f;
        }
}

/* ---- buffers that end at an unmapped page ------------------------------------------ */

typedef struct {
    void *map;
    size_t len;
} guard;

static uint8_t *guarded(guard *g, size_t n) {
    const size_t page = (size_t)sysconf(_SC_PAGESIZE);
    const size_t data = (n + page - 1) / page * page;
    g->len = data + page;
    g->map = mmap(NULL, g->len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (g->map == MAP_FAILED) {
        perror("mmap");
        exit(2);
    }
    if (mprotect((uint8_t *)g->map + data, page, PROT_NONE) != 0) {
        perror("mprotect");
        exit(2);
    }
    return (uint8_t *)g->map + data - n;
}

static void unguard(guard *g) { munmap(g->map, g->len); }

/* ---- comparing floats ------------------------------------------------------------- */

static int same_float(float a, float b) {
    if (isnan(a) || isnan(b)) return isnan(a) && isnan(b);
    return memcmp(&a, &b, 4) == 0;
}

/* got vs want within tol; NaN matches NaN, inf the same inf, a
 * non-finite tol means exact. */
static int close_to(float got, float want, double tol) {
    if (isnan(want) || isnan(got)) return isnan(want) && isnan(got);
    if (isinf(want) || isinf(got)) return got == want;
    if (!isfinite(tol)) return got == want;
    return fabs((double)got - (double)want) <= tol;
}

/* ---- types --------------------------------------------------------------------- */

static const uint32_t WEIGHT_TYPES[] = {
    INFER_TYPE_F32,  INFER_TYPE_F16,  INFER_TYPE_BF16, INFER_TYPE_Q4_0, INFER_TYPE_Q4_1,
    INFER_TYPE_Q5_0, INFER_TYPE_Q5_1, INFER_TYPE_Q8_0, INFER_TYPE_Q2_K, INFER_TYPE_Q3_K,
    INFER_TYPE_Q4_K, INFER_TYPE_Q5_K, INFER_TYPE_Q6_K,
};
#define N_WEIGHT_TYPES (sizeof WEIGHT_TYPES / sizeof WEIGHT_TYPES[0])

static int is_float_type(uint32_t t) {
    return t == INFER_TYPE_F32 || t == INFER_TYPE_F16 || t == INFER_TYPE_BF16;
}

static size_t row_size(uint32_t type, int64_t n) {
    return (size_t)(n / infer_type_block_size(type)) * infer_type_block_bytes(type);
}

/* Offsets of a block's f16 scale fields (d, and dmin/m where present). */
static int scale_fields(uint32_t type, int off[2]) {
    switch (type) {
    case INFER_TYPE_Q4_0: case INFER_TYPE_Q5_0: case INFER_TYPE_Q8_0: off[0] = 0; return 1;
    case INFER_TYPE_Q4_1: case INFER_TYPE_Q5_1: case INFER_TYPE_Q4_K: case INFER_TYPE_Q5_K:
        off[0] = 0; off[1] = 2; return 2;
    case INFER_TYPE_Q8_1: off[0] = 0; off[1] = 2; return 2;
    case INFER_TYPE_Q2_K: off[0] = 80; off[1] = 82; return 2;
    case INFER_TYPE_Q3_K: off[0] = 108; return 1;
    case INFER_TYPE_Q6_K: off[0] = 208; return 1;
    default: return 0;
    }
}

typedef enum { W_NORMAL, W_ZERO, W_HUGE, W_TINY, W_MIXED, W_RAW, W_COUNT } w_mode;
static const char *const W_NAME[W_COUNT] = {"normal", "zero", "huge", "subnormal", "mixed", "raw-bits"};

static uint16_t scale_f16(w_mode m) {
    switch (m) {
    case W_NORMAL: return infer_f32_to_f16(unif() * 0.05f);
    case W_ZERO: return (rnd() & 1) ? 0x0000 : 0x8000;
    case W_HUGE: return (uint16_t)(0x7800 + rndint(0x3ff) + ((rnd() & 1) << 15)); /* 32768 .. 65504 */
    case W_TINY: return (uint16_t)(1 + rndint(0x3ff) + ((rnd() & 1) << 15));      /* subnormal */
    case W_MIXED: return scale_f16((w_mode)rndint(W_MIXED));
    default: return (uint16_t)rnd();
    }
}

/* n values of a weight type: quantized blocks are random bytes (every
 * quant and sub-scale pattern) with their f16 scales drawn by mode; float
 * types are floats drawn by mode. */
static void fill_weights(uint32_t type, uint8_t *w, int64_t n, w_mode m) {
    if (is_float_type(type)) {
        static const in_mode FOR_W[W_COUNT] = {IN_NORMAL, IN_ZERO, IN_HUGE, IN_TINY, IN_WIDE, IN_SPECIAL};
        float *f = malloc((size_t)n * sizeof(float));
        fill(f, n, FOR_W[m], type == INFER_TYPE_F16 ? 6e4f : 1e15f);
        if (m == W_RAW && type == INFER_TYPE_F32)
            for (int64_t i = 0; i < n; i++) f[i] = bits_f32((uint32_t)rnd());
        if (infer_ref_quantize(type, f, w, n) != 0) abort();
        if (m == W_RAW && type != INFER_TYPE_F32)
            for (int64_t i = 0; i < 2 * n; i++) w[i] = (uint8_t)rnd();
        free(f);
        return;
    }
    const size_t bytes = row_size(type, n), bb = infer_type_block_bytes(type);
    for (size_t i = 0; i < bytes; i++) w[i] = (uint8_t)rnd();
    if (m == W_RAW) return;
    int off[2];
    const int nf = scale_fields(type, off);
    for (size_t b = 0; b < bytes; b += bb)
        for (int k = 0; k < nf; k++) {
            const uint16_t h = scale_f16(m);
            memcpy(w + b + off[k], &h, 2);
        }
}

/* ---- matmul ---------------------------------------------------------------------- */

typedef struct {
    int n_rows, n_tok;
    int64_t n_cols;
    w_mode wm;
    in_mode am;
    size_t w_pad, a_pad, o_pad;
} mm_case;

static double max_ratio; /* largest |diff| / tol seen, per type */
static long exact_outputs, all_outputs;

static int run_matmul(uint32_t type, const mm_case *c, char *why, size_t why_cap) {
    const uint32_t at = REF->vec_dot_type(type);
    const int64_t n = c->n_cols;
    const size_t w_rb = row_size(type, n), row_bytes = w_rb + c->w_pad;
    const size_t a_rb = row_size(at, n), a_stride = a_rb + c->a_pad;
    const size_t o_stride = (size_t)c->n_rows + c->o_pad;
    guard gw, ga;
    uint8_t *w = guarded(&gw, (size_t)(c->n_rows - 1) * row_bytes + w_rb);
    uint8_t *a = guarded(&ga, (size_t)(c->n_tok - 1) * a_stride + a_rb);
    for (int r = 0; r < c->n_rows; r++) fill_weights(type, w + (size_t)r * row_bytes, n, c->wm);
    float *x = malloc((size_t)n * sizeof(float));
    for (int t = 0; t < c->n_tok; t++) {
        fill(x, n, c->am, 1e15f);
        REF->quantize_act(at, x, a + (size_t)t * a_stride, n);
    }
    const size_t n_out = (size_t)c->n_tok * o_stride;
    float *want = malloc(n_out * sizeof(float)), *got = malloc(n_out * sizeof(float));
    float *split = malloc(n_out * sizeof(float));
    for (size_t i = 0; i < n_out; i++) want[i] = got[i] = split[i] = 12345.0f;
    REF->matmul(type, w, row_bytes, c->n_rows, n, a, a_stride, c->n_tok, want, o_stride);
    NEON->matmul(type, w, row_bytes, c->n_rows, n, a, a_stride, c->n_tok, got, o_stride);
    /* the same matmul as two threads would split it */
    const int k = c->n_rows / 2 + 1 < c->n_rows ? c->n_rows / 2 + 1 : c->n_rows;
    NEON->matmul(type, w, row_bytes, k, n, a, a_stride, c->n_tok, split, o_stride);
    if (k < c->n_rows)
        NEON->matmul(type, w + (size_t)k * row_bytes, row_bytes, c->n_rows - k, n, a, a_stride, c->n_tok, split + k,
                     o_stride);

    float *wf = malloc((size_t)n * sizeof(float)), *af = malloc((size_t)n * sizeof(float));
    int ok = 1;
    const double rel = is_float_type(type) ? (2.0 * (double)n + 8.0) * 0x1p-24 : 1e-6;
    const double abs_tol = is_float_type(type) ? 1e-37 : 1e-30;
    for (int t = 0; t < c->n_tok && ok; t++) {
        REF->dequantize(at, a + (size_t)t * a_stride, af, n);
        for (size_t r = 0; r < o_stride && ok; r++) {
            const size_t i = (size_t)t * o_stride + r;
            if ((int)r >= c->n_rows) {
                if (got[i] != 12345.0f || split[i] != 12345.0f) {
                    snprintf(why, why_cap, "wrote outside the rows: out[%d][%zu]", t, r);
                    ok = 0;
                }
                continue;
            }
            REF->dequantize(type, w + r * row_bytes, wf, n);
            double s = 0.0;
            for (int64_t j = 0; j < n; j++) s += fabs((double)wf[j] * (double)af[j]);
            const double tol = rel * s + abs_tol;
            all_outputs++;
            if (same_float(got[i], want[i])) exact_outputs++;
            /* A float-type sum whose terms reach FLT_MAX: see the top. */
            const int overflow = is_float_type(type) && !(s < FLT_MAX);
            if (!same_float(split[i], got[i])) {
                snprintf(why, why_cap, "row split changes out[%d][%zu]: %.9g vs %.9g", t, r, split[i], got[i]);
                ok = 0;
            } else if (!is_float_type(type) && !same_float(got[i], want[i])) {
                /* the quantized sums are the reference's, bit for bit (neon_internal.h) */
                snprintf(why, why_cap, "out[%d][%zu] = %a, ref %a: not bit for bit", t, r, got[i], want[i]);
                ok = 0;
            } else if (overflow && (!isfinite(got[i]) || !isfinite(want[i]))) {
                /* one side overflowed */
            } else if (!close_to(got[i], want[i], tol)) {
                snprintf(why, why_cap, "out[%d][%zu] = %.9g, ref %.9g, tol %.3g", t, r, got[i], want[i], tol);
                ok = 0;
            } else if (isfinite(want[i]) && isfinite(tol) && tol > 0) {
                const double ratio = fabs((double)got[i] - (double)want[i]) / tol;
                if (ratio > max_ratio) max_ratio = ratio;
            }
        }
    }
    free(wf);
    free(af);
    free(x);
    free(want);
    free(got);
    free(split);
    unguard(&gw);
    unguard(&ga);
    return ok;
}

static void test_matmul(void) {
    static const int TOKS[] = {1, 2, 3, 5, 17};
    static const int ROWS[] = {1, 3, 6, 9};
    for (size_t ti = 0; ti < N_WEIGHT_TYPES; ti++) {
        const uint32_t type = WEIGHT_TYPES[ti];
        const int64_t bs = infer_type_block_size(type);
        /* odd block counts; for the float types odd column counts */
        static const int64_t FLOAT_COLS[] = {1, 3, 7, 33, 67, 131};
        const int64_t blocks[] = {1, 3, bs == 256 ? 5 : 7};
        max_ratio = 0;
        exact_outputs = all_outputs = 0;
        int passed = n_passed, failed = n_failed;
        char why[200];
        /* shapes, with ordinary values */
        int shape = 0;
        for (size_t a = 0; a < sizeof TOKS / sizeof TOKS[0]; a++)
            for (size_t b = 0; b < sizeof ROWS / sizeof ROWS[0]; b++, shape++) {
                mm_case c = {.n_rows = ROWS[b], .n_tok = TOKS[a], .wm = W_NORMAL, .am = IN_NORMAL};
                c.n_cols = bs == 1 ? FLOAT_COLS[shape % 6] : blocks[shape % 3] * bs;
                if (shape % 4 == 1) c.w_pad = 2;
                if (shape % 4 == 2) c.a_pad = 6;
                if (shape % 3 == 0) c.o_pad = 3;
                why[0] = 0;
                report(run_matmul(type, &c, why, sizeof why), "matmul %s rows=%d n_tok=%d n_cols=%lld %s",
                       infer_type_name(type), c.n_rows, c.n_tok, (long long)c.n_cols, why);
            }
        /* one model-sized matrix: 4096 columns (4099 for the float types) */
        {
            mm_case c = {.n_rows = 37, .n_tok = 7, .n_cols = bs == 1 ? 4099 : 4096, .wm = W_NORMAL, .am = IN_NORMAL};
            why[0] = 0;
            report(run_matmul(type, &c, why, sizeof why), "matmul %s rows=37 n_tok=7 n_cols=%lld %s",
                   infer_type_name(type), (long long)c.n_cols, why);
        }
        /* random shapes and kinds */
        for (int k = 0; k < 12; k++) {
            mm_case c = {.n_rows = 1 + rndint(13), .n_tok = 1 + rndint(9), .wm = (w_mode)rndint(W_COUNT),
                         .am = (in_mode)rndint(IN_HALVES), .w_pad = (size_t)rndint(3) * 2,
                         .a_pad = (size_t)rndint(3) * 4, .o_pad = (size_t)rndint(3)};
            c.n_cols = bs == 1 ? 1 + rndint(300) : (1 + 2 * rndint(bs == 256 ? 3 : 6)) * bs;
            why[0] = 0;
            report(run_matmul(type, &c, why, sizeof why), "matmul %s rows=%d n_tok=%d n_cols=%lld %s/%s %s",
                   infer_type_name(type), c.n_rows, c.n_tok, (long long)c.n_cols, W_NAME[c.wm], IN_NAME[c.am], why);
        }
        /* values: every weight scale kind against every activation kind */
        for (int wm = 0; wm < W_COUNT; wm++)
            for (int am = 0; am < IN_HALVES; am++) {
                mm_case c = {.n_rows = 5, .n_tok = 3, .wm = (w_mode)wm, .am = (in_mode)am, .o_pad = 1};
                c.n_cols = bs == 1 ? 37 : 3 * bs;
                why[0] = 0;
                report(run_matmul(type, &c, why, sizeof why), "matmul %s weights %s, activations %s %s",
                       infer_type_name(type), W_NAME[wm], IN_NAME[am], why);
            }
        printf("matmul %-5s %3d passed %d failed; bit-exact %ld/%ld, worst |diff|/tol %.3g\n",
               infer_type_name(type), n_passed - passed, n_failed - failed, exact_outputs, all_outputs, max_ratio);
    }
}

/* matmul_kn, W stored by column (the attention's V cache): the transposed
 * copy of a row-major W in a wider stride, ending at an unmapped page (a
 * read past the last row of the last column faults), against the
 * reference matmul of W; a row split changes nothing; the reference's own
 * matmul_kn is its matmul bit for bit. */
static void test_matmul_kn(void) {
    static const int ROWS[] = {1, 3, 6, 9, 64};
    static const int TOKS[] = {1, 2, 5};
    static const int COLS[] = {1, 7, 33, 131};
    int passed = n_passed, failed = n_failed;
    for (size_t ti = 0; ti < 3; ti++) {
        const uint32_t type = WEIGHT_TYPES[ti]; /* F32, F16, BF16 */
        const size_t es = type == INFER_TYPE_F32 ? 4 : 2;
        for (size_t ri = 0; ri < sizeof ROWS / sizeof ROWS[0]; ri++)
            for (size_t ki = 0; ki < sizeof TOKS / sizeof TOKS[0]; ki++) {
                const int rows = ROWS[ri], n_tok = TOKS[ki];
                const int64_t n = COLS[(ri + ki) % 4];
                const size_t rb = row_size(type, n), kb = (size_t)(rows + 2) * es;
                const size_t n_out = (size_t)rows * (size_t)n_tok;
                guard gt;
                uint8_t *w = malloc(rb * (size_t)rows), *a = malloc(rb * (size_t)n_tok);
                uint8_t *t = guarded(&gt, (size_t)(n - 1) * kb + (size_t)rows * es);
                float *x = malloc((size_t)n * sizeof(float)), *wf = malloc((size_t)n * sizeof(float));
                float *af = malloc((size_t)n * sizeof(float));
                float *want = malloc(n_out * 4), *ref_kn = malloc(n_out * 4), *got = malloc(n_out * 4);
                float *split = malloc(n_out * 4);
                for (int r = 0; r < rows; r++) fill_weights(type, w + (size_t)r * rb, n, W_NORMAL);
                for (int64_t k = 0; k < n; k++)
                    for (int r = 0; r < rows; r++) memcpy(t + (size_t)k * kb + (size_t)r * es, w + (size_t)r * rb + (size_t)k * es, es);
                for (int tk = 0; tk < n_tok; tk++) {
                    fill(x, n, tk == 1 ? IN_TINY : IN_NORMAL, 0);
                    REF->quantize_act(type, x, a + (size_t)tk * rb, n);
                }
                REF->matmul(type, w, rb, rows, n, a, rb, n_tok, want, (size_t)rows);
                REF->matmul_kn(type, t, kb, rows, n, a, rb, n_tok, ref_kn, (size_t)rows);
                NEON->matmul_kn(type, t, kb, rows, n, a, rb, n_tok, got, (size_t)rows);
                const int k2 = rows / 2 + 1 < rows ? rows / 2 + 1 : rows;
                NEON->matmul_kn(type, t, kb, k2, n, a, rb, n_tok, split, (size_t)rows);
                if (k2 < rows) NEON->matmul_kn(type, t + (size_t)k2 * es, kb, rows - k2, n, a, rb, n_tok, split + k2, (size_t)rows);
                char why[160] = "";
                for (int tk = 0; tk < n_tok && !why[0]; tk++) {
                    REF->dequantize(type, a + (size_t)tk * rb, af, n);
                    for (int r = 0; r < rows && !why[0]; r++) {
                        const size_t i = (size_t)tk * (size_t)rows + (size_t)r;
                        REF->dequantize(type, w + (size_t)r * rb, wf, n);
                        double s = 0.0;
                        for (int64_t j = 0; j < n; j++) s += fabs((double)wf[j] * (double)af[j]);
                        const double tol = (2.0 * (double)n + 8.0) * 0x1p-24 * s + 1e-37;
                        if (!same_float(ref_kn[i], want[i]))
                            snprintf(why, sizeof why, "ref matmul_kn out[%d][%d] %.9g, matmul %.9g", tk, r, ref_kn[i], want[i]);
                        else if (!close_to(got[i], want[i], tol))
                            snprintf(why, sizeof why, "out[%d][%d] = %.9g, ref %.9g, tol %.3g", tk, r, got[i], want[i], tol);
                        else if (!same_float(split[i], got[i]))
                            snprintf(why, sizeof why, "row split changes out[%d][%d]", tk, r);
                    }
                }
                report(!why[0], "matmul_kn %s rows=%d n_tok=%d n_cols=%lld %s", infer_type_name(type), rows, n_tok,
                       (long long)n, why);
                free(w), free(a), free(x), free(wf), free(af), free(want), free(ref_kn), free(got), free(split);
                unguard(&gt);
            }
    }
    printf("matmul_kn     %3d passed %d failed\n", n_passed - passed, n_failed - failed);
}

/* ---- activation quantization and dequantization ---------------------------------------- */

/* Signalling NaNs made quiet. The reference's Q8_0/Q8_1 amax is a chain
 * of fmaxf, whose handling of a signalling NaN is the platform's (on
 * aarch64 fmaxnm turns it into a quiet NaN that replaces the running max;
 * glibc's x86 fmaxf skips it), so those inputs have no one right answer;
 * arithmetic never produces a signalling NaN. Quiet NaNs stay. */
static void quiet_nans(float *x, int64_t n) {
    for (int64_t i = 0; i < n; i++)
        if (isnan(x[i])) {
            uint32_t u;
            memcpy(&u, &x[i], 4);
            u |= 0x00400000u;
            memcpy(&x[i], &u, 4);
        }
}

static void test_quantize_act(void) {
    static const uint32_t ACT[] = {INFER_TYPE_F32, INFER_TYPE_F16,  INFER_TYPE_BF16,
                                   INFER_TYPE_Q8_0, INFER_TYPE_Q8_1, INFER_TYPE_Q8_K};
    static const float HUGE[] = {1e30f, 3.4e38f};
    int passed = n_passed, failed = n_failed;
    for (size_t ti = 0; ti < sizeof ACT / sizeof ACT[0]; ti++) {
        const uint32_t type = ACT[ti];
        const int64_t bs = infer_type_block_size(type);
        const int64_t sizes[3] = {bs == 1 ? 7 : bs, bs == 1 ? 33 : 3 * bs, bs == 1 ? 100 : 5 * bs};
        for (int m = 0; m < IN_COUNT; m++)
            for (int si = 0; si < 9; si++) { /* three sizes, three draws each */
                const int64_t n = sizes[si % 3];
                if (m == IN_HALVES && n % 32) continue;
                float *x = malloc((size_t)n * sizeof(float));
                fill(x, n, (in_mode)m, HUGE[si & 1]);
                if (type == INFER_TYPE_Q8_0 || type == INFER_TYPE_Q8_1)
                    quiet_nans(x, n); /* see quiet_nans */
                const size_t bytes = row_size(type, n);
                guard g1, g2;
                uint8_t *want = guarded(&g1, bytes), *got = guarded(&g2, bytes);
                REF->quantize_act(type, x, want, n);
                NEON->quantize_act(type, x, got, n);
                size_t diff = 0;
                while (diff < bytes && want[diff] == got[diff]) diff++;
                report(diff == bytes, "quantize_act %s %s n=%lld%s%zu", infer_type_name(type), IN_NAME[m],
                       (long long)n, diff == bytes ? "" : ": first differing byte ", diff == bytes ? 0 : diff);
                unguard(&g1);
                unguard(&g2);
                free(x);
            }
    }
    printf("quantize_act  %3d passed %d failed (byte-identical)\n", n_passed - passed, n_failed - failed);
}

static void test_dequantize(void) {
    static const uint32_t EXTRA[] = {INFER_TYPE_Q8_1, INFER_TYPE_Q8_K};
    int passed = n_passed, failed = n_failed;
    for (size_t ti = 0; ti < N_WEIGHT_TYPES + 2; ti++) {
        const uint32_t type = ti < N_WEIGHT_TYPES ? WEIGHT_TYPES[ti] : EXTRA[ti - N_WEIGHT_TYPES];
        const int64_t bs = infer_type_block_size(type);
        for (int m = 0; m < W_COUNT; m++) {
            const int64_t n = bs == 1 ? 1 + 2 * rndint(40) : bs * (1 + 2 * rndint(3));
            guard g;
            uint8_t *src = guarded(&g, row_size(type, n));
            if (type == INFER_TYPE_Q8_1 || type == INFER_TYPE_Q8_K) { /* what the quantizers make */
                float *x = malloc((size_t)n * sizeof(float));
                fill(x, n, m == W_RAW ? IN_SPECIAL : (in_mode)(m % IN_SPECIAL), 1e30f);
                infer_ref_quantize(type, x, src, n);
                free(x);
            } else {
                fill_weights(type, src, n, (w_mode)m);
            }
            float *want = malloc((size_t)n * sizeof(float)), *got = malloc((size_t)n * sizeof(float));
            REF->dequantize(type, src, want, n);
            NEON->dequantize(type, src, got, n);
            int64_t bad = -1;
            for (int64_t i = 0; i < n && bad < 0; i++)
                if (!same_float(got[i], want[i])) bad = i;
            report(bad < 0, "dequantize %s %s n=%lld%s", infer_type_name(type), W_NAME[m], (long long)n,
                   bad < 0 ? "" : ": differs");
            if (bad >= 0) printf("     [%lld] %.9g vs ref %.9g\n", (long long)bad, got[bad], want[bad]);
            free(want);
            free(got);
            unguard(&g);
        }
    }
    printf("dequantize    %3d passed %d failed (identical floats)\n", n_passed - passed, n_failed - failed);
}

/* ---- elementwise ----------------------------------------------------------------------- */

static const int64_t EW_SIZES[] = {1, 3, 4, 7, 8, 17, 64, 257, 1003};
#define N_EW (sizeof EW_SIZES / sizeof EW_SIZES[0])

static void test_rms_norm(void) {
    int passed = n_passed, failed = n_failed;
    for (size_t si = 0; si < N_EW; si++)
        for (int m = 0; m < IN_HALVES; m++) {
            const int64_t n = EW_SIZES[si];
            float *x = malloc((size_t)n * 4), *w = malloc((size_t)n * 4), *want = malloc((size_t)n * 4),
                  *got = malloc((size_t)n * 4);
            fill(x, n, (in_mode)m, 1e30f);
            fill(w, n, IN_NORMAL, 0);
            const float eps = (si & 1) ? 1e-5f : 1e-6f;
            REF->rms_norm(x, w, want, n, eps);
            NEON->rms_norm(x, w, got, n, eps);
            int64_t bad = -1;
            for (int64_t i = 0; i < n && bad < 0; i++)
                if (!close_to(got[i], want[i], 0x1p-21 * fabs(want[i]) + 1e-38)) bad = i;
            report(bad < 0, "rms_norm n=%lld %s", (long long)n, IN_NAME[m]);
            if (bad >= 0) printf("     [%lld] %.9g vs ref %.9g\n", (long long)bad, got[bad], want[bad]);
            free(x);
            free(w);
            free(want);
            free(got);
        }
    printf("rms_norm      %3d passed %d failed\n", n_passed - passed, n_failed - failed);
}

static void test_silu_mul_add(void) {
    int passed = n_passed, failed = n_failed;
    for (size_t si = 0; si < N_EW; si++)
        for (int m = 0; m < IN_HALVES; m++) {
            const int64_t n = EW_SIZES[si];
            float *g = malloc((size_t)n * 4), *u = malloc((size_t)n * 4), *want = malloc((size_t)n * 4),
                  *got = malloc((size_t)n * 4);
            fill(g, n, (in_mode)m, 1e30f);
            if (m == IN_NORMAL) /* the whole range where silu bends, and past expf's limits */
                for (int64_t i = 0; i < n; i++) g[i] = unif() * 120.0f;
            fill(u, n, IN_NORMAL, 0);
            memcpy(want, g, (size_t)n * 4);
            memcpy(got, g, (size_t)n * 4);
            REF->silu_mul(want, u, (size_t)n);
            NEON->silu_mul(got, u, (size_t)n);
            int64_t bad = -1;
            for (int64_t i = 0; i < n && bad < 0; i++)
                if (!close_to(got[i], want[i], 0x1p-20 * fabs(want[i]) + 1e-35)) bad = i;
            report(bad < 0, "silu_mul n=%lld %s", (long long)n, IN_NAME[m]);
            if (bad >= 0) printf("     gate %.9g: %.9g vs ref %.9g\n", g[bad], got[bad], want[bad]);

            fill(u, n, (in_mode)((m + 1) % IN_HALVES), 1e30f);
            memcpy(want, g, (size_t)n * 4);
            memcpy(got, g, (size_t)n * 4);
            REF->add(want, u, (size_t)n);
            NEON->add(got, u, (size_t)n);
            bad = -1;
            for (int64_t i = 0; i < n && bad < 0; i++)
                if (!same_float(got[i], want[i])) bad = i;
            report(bad < 0, "add n=%lld %s", (long long)n, IN_NAME[m]);
            free(g);
            free(u);
            free(want);
            free(got);
        }
    printf("silu_mul, add %3d passed %d failed\n", n_passed - passed, n_failed - failed);
}

/* ---- dispatch ------------------------------------------------------------------------ */

/* kernels_get() in a child with INFER_CPU set to env (NULL: unset); the
 * child exits with the chosen isa. The choice is made once per process. */
static int isa_chosen_with(const char *env) {
    fflush(stdout);
    const pid_t pid = fork();
    if (pid < 0) return -1;
    if (pid == 0) {
        if (env) setenv("INFER_CPU", env, 1);
        else unsetenv("INFER_CPU");
        if (freopen("/dev/null", "w", stderr) == NULL) _exit(100); /* the expected warnings */
        _exit((int)kernels_get()->isa);
    }
    int st;
    if (waitpid(pid, &st, 0) != pid || !WIFEXITED(st)) return -1;
    return WEXITSTATUS(st);
}

static void test_dispatch(void) {
    int passed = n_passed, failed = n_failed;
    report(NEON != NULL && NEON->isa == INFER_ISA_NEON && strcmp(NEON->name, "neon") == 0,
           "kernels_for(NEON) is kernels_neon on this CPU (HWCAP asimddp)");
    report(NEON && NEON->vec_dot_type && NEON->quantize_act && NEON->matmul && NEON->matmul_kn && NEON->dequantize &&
               NEON->silu_mul &&
               NEON->add && NEON->rms_norm,
           "kernels_neon has every entry");
    for (size_t ti = 0; NEON && ti < N_WEIGHT_TYPES; ti++)
        report(NEON->vec_dot_type(WEIGHT_TYPES[ti]) == infer_ref_vec_dot_type(WEIGHT_TYPES[ti]),
               "vec_dot_type(%s) as the reference", infer_type_name(WEIGHT_TYPES[ti]));
    report(isa_chosen_with(NULL) == INFER_ISA_NEON, "kernels_get() picks neon");
    report(isa_chosen_with("ref") == INFER_ISA_REF, "INFER_CPU=ref forces the reference");
    report(isa_chosen_with("neon") == INFER_ISA_NEON, "INFER_CPU=neon picks neon");
    report(isa_chosen_with("avx2") == INFER_ISA_NEON, "INFER_CPU=avx2 (absent) falls back to neon");
    report(isa_chosen_with("bogus") == INFER_ISA_NEON, "INFER_CPU=bogus falls back to neon");
    report(kernels_for(INFER_ISA_AVX2) == NULL && kernels_for(INFER_ISA_AVX512) == NULL,
           "no x86 tables on aarch64");
    printf("dispatch      %3d passed %d failed\n", n_passed - passed, n_failed - failed);
}

/* --no-dotprod, run on a CPU without it (`qemu-aarch64 -cpu cortex-a53`):
 * the NEON level is not offered, every way of choosing lands on the
 * reference, and the chosen table runs each weight type's matmul (built,
 * like the library, for plain ARMv8-A outside kernels/arm: an instruction
 * this CPU lacks would fault) to the reference's own bits. */
static int test_without_dotprod(void) {
    report(kernels_for(INFER_ISA_NEON) == NULL, "no dotprod: kernels_for(NEON) is NULL");
    report(isa_chosen_with(NULL) == INFER_ISA_REF, "no dotprod: kernels_get() picks ref");
    report(isa_chosen_with("neon") == INFER_ISA_REF, "no dotprod: INFER_CPU=neon falls back to ref");
    const kernel_table *kt = kernels_get();
    report(kt && kt->isa == INFER_ISA_REF, "no dotprod: this process's table is ref");
    enum { ROWS = 5, TOK = 3, COLS = 512 };
    float *x = malloc(sizeof(float) * COLS);
    uint8_t *w = malloc(ROWS * row_size(INFER_TYPE_F32, COLS)), *a = malloc(TOK * row_size(INFER_TYPE_F32, COLS));
    float got[ROWS * TOK], want[ROWS * TOK];
    for (size_t ti = 0; kt && x && w && a && ti < N_WEIGHT_TYPES; ti++) {
        const uint32_t type = WEIGHT_TYPES[ti], at = kt->vec_dot_type(type);
        const size_t wrb = row_size(type, COLS), arb = row_size(at, COLS);
        for (int r = 0; r < ROWS; r++) fill_weights(type, w + (size_t)r * wrb, COLS, W_NORMAL);
        for (int t = 0; t < TOK; t++) {
            fill(x, COLS, IN_NORMAL, 1e15f);
            kt->quantize_act(at, x, a + (size_t)t * arb, COLS);
        }
        kt->matmul(type, w, wrb, ROWS, COLS, a, arb, TOK, got, ROWS);
        infer_ref_matmul(type, w, wrb, ROWS, COLS, a, arb, TOK, want, ROWS);
        report(memcmp(got, want, sizeof got) == 0, "no dotprod: %s matmul through the chosen table",
               infer_type_name(type));
    }
    report(x && w && a, "no dotprod: buffers");
    free(x), free(w), free(a);
    printf("no dotprod   %3d passed %d failed\n", n_passed, n_failed);
    printf("%d passed, %d failed\n", n_passed, n_failed);
    return n_failed != 0;
}

int main(int argc, char **argv) {
    int no_dotprod = 0;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "-v") == 0) verbose = 1;
        else if (strcmp(argv[i], "--no-dotprod") == 0) no_dotprod = 1;
        else rng = strtoull(argv[i], NULL, 0);
    }
    if (no_dotprod) return test_without_dotprod();
    setvbuf(stdout, NULL, _IOLBF, 0);
    printf("test_kernels_neon [-v] [seed]: seed %#llx\n", (unsigned long long)rng);
    const clock_t t0 = clock();
    REF = kernels_for(INFER_ISA_REF);
    NEON = kernels_for(INFER_ISA_NEON);
    test_dispatch();
    if (NEON) {
        test_quantize_act();
        test_dequantize();
        test_matmul();
        test_matmul_kn();
        test_rms_norm();
        test_silu_mul_add();
    }
    printf("(%.1f s of CPU time)\n", (double)(clock() - t0) / CLOCKS_PER_SEC);
    printf("%d passed, %d failed\n", n_passed, n_failed);
    return n_failed != 0;
}
