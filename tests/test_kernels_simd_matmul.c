/* test_kernels_simd_matmul.c - the matmuls of every SIMD kernel table this
 * machine runs against kernels/ref (suite kernels_simd, with
 * test_kernels_simd.c, whose top comment gives the tolerances and why):
 * quantized weights bit for bit, in the file's layout and repacked (with
 * each build of the generation kernels' prefetch), over rows longer than
 * every internal chunk; float weights (F32/F16/BF16) within the sum bound
 * n * 2^-24 * sum|w_i a_i| of the double reference, and matmul_kn (W by
 * column, as the V cache) within the same bound and bit for bit the
 * level's own matmul. Odd block counts, token counts 1 to 600 (more than
 * one internal chunk) and rows off the 8/16/32-row tiles; results must
 * not change when the rows are split between calls (as threads split
 * them). */
#include <float.h>
#include <math.h>

#include "dispatch.h"
#include "infer_gguf.h"
#include "ref/quants.h"
#include "testutil.h"
#include "kernels_simd_testutil.h"

static const uint32_t QTYPES[] = {INFER_TYPE_Q4_0, INFER_TYPE_Q4_1, INFER_TYPE_Q5_0, INFER_TYPE_Q5_1,
                                  INFER_TYPE_Q8_0, INFER_TYPE_Q2_K, INFER_TYPE_Q3_K, INFER_TYPE_Q4_K,
                                  INFER_TYPE_Q5_K, INFER_TYPE_Q6_K};
static const uint32_t FTYPES[] = {INFER_TYPE_F32, INFER_TYPE_F16, INFER_TYPE_BF16};

/* Weights of a type: quantized random rows, or (raw) any bytes at all. */
static void weights(uint32_t type, uint8_t *w, int64_t rows, int64_t cols, int raw) {
    const size_t rb = row_size(type, cols);
    if (raw) {
        for (size_t i = 0; i < rb * (size_t)rows; i++) w[i] = (uint8_t)test_rng(&rng);
        return;
    }
    float *f = malloc(sizeof(float) * (size_t)cols);
    for (int64_t r = 0; r < rows; r++) {
        for (int64_t k = 0; k < cols; k++) f[k] = test_uniform(&rng, -1.0f, 1.0f) * (float)(1 + r % 4);
        cr_assert_eq(infer_ref_quantize(type, f, w + (size_t)r * rb, cols), 0, "no quantizer for %s", infer_type_name(type));
    }
    free(f);
}

/* ======================= matmul ============================================== */

typedef struct {
    int64_t blocks, n_tok, rows;
} mm_case;

/* Odd block counts, every token count asked for, rows off the tiles, and
 * more tokens than one internal chunk (600 > 512). */
static const mm_case CASES[] = {{1, 1, 1},  {3, 2, 17}, {7, 3, 5},  {33, 5, 33}, {1, 17, 50},  {3, 64, 19},
                                {7, 1, 50}, {33, 2, 16}, {1, 64, 7}, {3, 17, 32}, {3, 600, 5}, {1, 37, 23}};

/* out of kt vs the reference; W split at row `split` (0: one call). */
static void run_mm(const kernel_table *kt, uint32_t wt, const uint8_t *W, size_t rb, int64_t rows, int64_t cols,
                   const uint8_t *act, size_t ab, int64_t n_tok, float *out, int64_t split) {
    for (size_t i = 0; i < (size_t)(rows * n_tok); i++) out[i] = -777.0f;
    if (split <= 0 || split >= rows) {
        kt->matmul(wt, W, rb, rows, cols, act, ab, n_tok, out, (size_t)rows);
    } else {
        kt->matmul(wt, W, rb, split, cols, act, ab, n_tok, out, (size_t)rows);
        kt->matmul(wt, W + (size_t)split * rb, rb, rows - split, cols, act, ab, n_tok, out + split, (size_t)rows);
    }
}

Test(kernels_simd, matmul_quantized_bit_identical_to_ref) {
    FOR_EACH_LEVEL(kt) {
        int nfail = 0;
        for (size_t ti = 0; ti < sizeof QTYPES / sizeof QTYPES[0]; ti++) {
            const uint32_t wt = QTYPES[ti], at = infer_ref_vec_dot_type(wt);
            for (size_t ci = 0; ci < sizeof CASES / sizeof CASES[0]; ci++) {
                const mm_case cs = CASES[ci];
                const int64_t cols = (is_k(wt) ? 256 : 32) * (is_k(wt) ? (cs.blocks + 1) / 2 : cs.blocks);
                const size_t rb = row_size(wt, cols), ab = row_size(at, cols);
                uint8_t *W = malloc(rb * (size_t)cs.rows), *A = malloc(ab * (size_t)cs.n_tok);
                float *x = malloc(sizeof(float) * (size_t)cols), *want = malloc(sizeof(float) * (size_t)(cs.rows * cs.n_tok));
                float *got = malloc(sizeof(float) * (size_t)(cs.rows * cs.n_tok));
                weights(wt, W, cs.rows, cols, ci % 3 == 2); /* every third case: arbitrary bytes */
                for (int64_t t = 0; t < cs.n_tok; t++) {
                    fill(x, cols, (int)((t + ci) % N_KINDS));
                    infer_ref_quantize(at, x, A + (size_t)t * ab, cols);
                }
                infer_ref_matmul(wt, W, rb, cs.rows, cols, A, ab, cs.n_tok, want, (size_t)cs.rows);
                const int64_t splits[3] = {0, 7, cs.rows / 2 + 1}; /* 0: one call */
                for (int si = 0; si < 3; si++) {
                    run_mm(kt, wt, W, rb, cs.rows, cols, A, ab, cs.n_tok, got, splits[si]);
                    for (int64_t i = 0; i < cs.rows * cs.n_tok; i++)
                        CHECK(nfail, same(got[i], want[i]), "%s %s: blocks %lld tok %lld rows %lld split %lld: [%lld] %a, ref %a",
                              kt->name, infer_type_name(wt), (long long)cs.blocks, (long long)cs.n_tok,
                              (long long)cs.rows, (long long)splits[si], (long long)i, got[i], want[i]);
                }
                free(W), free(A), free(x), free(want), free(got);
            }
        }
        cr_assert_eq(nfail, 0);
    }
}

/* One case of check_packed: n_tok activations of the given kind (kind + t
 * for token t) against W's reference, the whole groups through
 * matmul_packed (first group alone, then the rest, as threads split
 * them), the tail rows through matmul. Returns the failures. */
static int packed_case(const kernel_table *kt, uint32_t wt, const uint8_t *W, const uint8_t *P, int64_t rows,
                       int64_t cols, int64_t n_tok, int kind) {
    const uint32_t at = infer_ref_vec_dot_type(wt);
    const int64_t pr = kt->packed_rows, full = rows / pr * pr;
    const size_t rb = row_size(wt, cols), ab = row_size(at, cols);
    uint8_t *A = malloc(ab * (size_t)n_tok);
    float *x = malloc(sizeof(float) * (size_t)cols);
    float *want = malloc(sizeof(float) * (size_t)(rows * n_tok));
    float *got = malloc(sizeof(float) * (size_t)(rows * n_tok));
    int nfail = 0;
    for (int64_t t = 0; t < n_tok; t++) {
        fill(x, cols, (int)((t + kind) % N_KINDS));
        infer_ref_quantize(at, x, A + (size_t)t * ab, cols);
    }
    infer_ref_matmul(wt, W, rb, rows, cols, A, ab, n_tok, want, (size_t)rows);
    for (size_t i = 0; i < (size_t)(rows * n_tok); i++) got[i] = -777.0f;
    const int64_t split = full > pr ? pr : full; /* first group alone, then the rest */
    kt->matmul_packed(wt, P, 0, split, cols, A, ab, n_tok, got, (size_t)rows);
    kt->matmul_packed(wt, P, split, full - split, cols, A, ab, n_tok, got + split, (size_t)rows);
    if (rows > full) kt->matmul(wt, W + (size_t)full * rb, rb, rows - full, cols, A, ab, n_tok, got + full, (size_t)rows);
    for (int64_t i = 0; i < rows * n_tok; i++)
        CHECK(nfail, same(got[i], want[i]), "%s %s packed: cols %lld tok %lld rows %lld kind %d: [%lld] %a, ref %a",
              kt->name, infer_type_name(wt), (long long)cols, (long long)n_tok, (long long)rows, kind, (long long)i,
              got[i], want[i]);
    free(A), free(x), free(want), free(got);
    return nfail;
}

/* Repacked weights (levels that have them), bit for bit the reference
 * (packed_case). Token counts 1 (the generation kernels), 2, 9 and 600
 * (more than one internal chunk); rows longer than every activation
 * chunk, in fewer groups than the generation kernels take at once and in
 * more (their quarter streams: 4, 5, 8 and 9 groups after the first); arbitrary
 * bytes as weights. One token runs twice, with the case's kind of values
 * and with ordinary ones: the special kinds can make every sum 0, inf or
 * NaN, which would hide a block summed twice or into the wrong row. */
static void check_packed(void) {
    static const struct {
        int64_t blocks, rows;
    } PC[] = {{1, 16}, {3, 48}, {7, 80}, {2, 150}, {33, 64}, {528, 80}, {5, 96}, {528, 32}, {9, 160}};
    static const int64_t TOKS[] = {1, 2, 9, 600};
    int tested = 0;
    FOR_EACH_LEVEL(kt) {
        if (!kt->packed_size) continue;
        tested = 1;
        int nfail = 0;
        cr_assert(kt->pack && kt->matmul_packed && kt->packed_rows > 0);
        cr_assert_eq(kt->packed_size(INFER_TYPE_F32, 64, 64), 0);
        cr_assert_eq(kt->packed_size(INFER_TYPE_Q4_0, kt->packed_rows - 1, 64), 0);
        for (size_t ti = 0; ti < sizeof QTYPES / sizeof QTYPES[0]; ti++) {
            const uint32_t wt = QTYPES[ti];
            for (size_t ci = 0; ci < sizeof PC / sizeof PC[0]; ci++) {
                const int64_t blocks = is_k(wt) ? (PC[ci].blocks == 528 ? 130 : (PC[ci].blocks + 1) / 2) : PC[ci].blocks;
                const int64_t cols = (is_k(wt) ? 256 : 32) * blocks, rows = PC[ci].rows;
                const int64_t full = rows / kt->packed_rows * kt->packed_rows;
                const size_t rb = row_size(wt, cols), psz = kt->packed_size(wt, rows, cols);
                /* a level that repacks (both x86 levels) repacks every quantized type */
                cr_assert_eq(psz, (size_t)full * rb, "%s %s: packed size %zu for %lld whole rows of %zu bytes", kt->name,
                             infer_type_name(wt), psz, (long long)full, rb);
                uint8_t *W = malloc(rb * (size_t)rows), *P = malloc(psz);
                weights(wt, W, rows, cols, ci % 2);
                kt->pack(wt, W, rb, rows, cols, P);
                for (size_t k = 0; k < sizeof TOKS / sizeof TOKS[0]; k++) {
                    if (TOKS[k] > 9 && blocks > 8) continue; /* long rows: generation and short batches */
                    nfail += packed_case(kt, wt, W, P, rows, cols, TOKS[k], (int)(ci % N_KINDS));
                    if (TOKS[k] == 1 && ci % N_KINDS != 0) nfail += packed_case(kt, wt, W, P, rows, cols, 1, 0);
                }
                free(W), free(P);
            }
        }
        cr_assert_eq(nfail, 0);
    }
    if (!tested) cr_log_info("no level on this machine repacks weights");
}

Test(kernels_simd, matmul_packed_bit_identical_to_ref) { check_packed(); }

/* The same with each build of the generation kernels, whichever this
 * machine runs by default: no software prefetch, near into L1 (Intel's),
 * far into L2 (AMD's). */
Test(kernels_simd, matmul_packed_without_prefetch_bit_identical_to_ref) {
    setenv("INFER_CPU_PREFETCH", "0", 1);
    cr_assert_eq(kernels_sw_prefetch(), KERNELS_PF_NONE);
    check_packed();
}

Test(kernels_simd, matmul_packed_with_near_prefetch_bit_identical_to_ref) {
    setenv("INFER_CPU_PREFETCH", "1", 1);
    cr_assert_eq(kernels_sw_prefetch(), KERNELS_PF_L1);
    check_packed();
}

Test(kernels_simd, matmul_packed_with_far_prefetch_bit_identical_to_ref) {
    setenv("INFER_CPU_PREFETCH", "2", 1);
    cr_assert_eq(kernels_sw_prefetch(), KERNELS_PF_L2);
    check_packed();
}


/* Rows longer than every internal chunk (activation metadata, K chunks):
 * 528 legacy blocks, 130 super-blocks. */
Test(kernels_simd, matmul_long_rows_cross_every_chunk) {
    FOR_EACH_LEVEL(kt) {
        int nfail = 0;
        for (size_t ti = 0; ti < sizeof QTYPES / sizeof QTYPES[0]; ti++) {
            const uint32_t wt = QTYPES[ti], at = infer_ref_vec_dot_type(wt);
            const int64_t cols = is_k(wt) ? 130 * 256 : 528 * 32;
            for (int64_t n_tok = 1; n_tok <= 3; n_tok += 2) {
                const int64_t rows = n_tok == 1 ? 17 : 3;
                const size_t rb = row_size(wt, cols), ab = row_size(at, cols);
                uint8_t *W = malloc(rb * (size_t)rows), *A = malloc(ab * (size_t)n_tok);
                float *x = malloc(sizeof(float) * (size_t)cols), *want = malloc(sizeof(float) * (size_t)(rows * n_tok));
                float *got = malloc(sizeof(float) * (size_t)(rows * n_tok));
                weights(wt, W, rows, cols, 1);
                for (int64_t t = 0; t < n_tok; t++) {
                    fill(x, cols, 0);
                    infer_ref_quantize(at, x, A + (size_t)t * ab, cols);
                }
                infer_ref_matmul(wt, W, rb, rows, cols, A, ab, n_tok, want, (size_t)rows);
                run_mm(kt, wt, W, rb, rows, cols, A, ab, n_tok, got, 0);
                for (int64_t i = 0; i < rows * n_tok; i++)
                    CHECK(nfail, same(got[i], want[i]), "%s %s: cols %lld tok %lld [%lld] %a, ref %a", kt->name,
                          infer_type_name(wt), (long long)cols, (long long)n_tok, (long long)i, got[i], want[i]);
                free(W), free(A), free(x), free(want), free(got);
            }
        }
        cr_assert_eq(nfail, 0);
    }
}

/* A float sum of n products against the double reference: within
 * n * 2^-24 * sum|w_k a_k| (+ the smallest normal), or the same inf / NaN. */
static int within_sum_bound(double got, double want, const float *w, const float *a, int64_t n, double *bound) {
    double mag = 0.0;
    for (int64_t k = 0; k < n; k++) mag += fabs((double)w[k] * (double)a[k]);
    *bound = (double)n * 0x1p-24 * mag + FLT_MIN;
    return fabs(got - want) <= *bound || (isinf(got) && got == want) || (isnan(got) && isnan(want));
}

Test(kernels_simd, matmul_float_within_sum_bound) {
    static const int64_t cols_list[] = {1, 7, 16, 33, 100, 257};
    FOR_EACH_LEVEL(kt) {
        int nfail = 0;
        for (size_t ti = 0; ti < sizeof FTYPES / sizeof FTYPES[0]; ti++) {
            const uint32_t wt = FTYPES[ti];
            for (size_t ci = 0; ci < sizeof CASES / sizeof CASES[0]; ci++) {
                const mm_case cs = CASES[ci];
                const int64_t cols = cols_list[ci % 6];
                const size_t rb = row_size(wt, cols), ab = rb;
                uint8_t *W = malloc(rb * (size_t)cs.rows), *A = malloc(ab * (size_t)cs.n_tok);
                float *x = malloc(sizeof(float) * (size_t)cols), *wf = malloc(sizeof(float) * (size_t)cols);
                float *af = malloc(sizeof(float) * (size_t)(cols * cs.n_tok));
                float *want = malloc(sizeof(float) * (size_t)(cs.rows * cs.n_tok)), *got = malloc(sizeof(float) * (size_t)(cs.rows * cs.n_tok));
                weights(wt, W, cs.rows, cols, 0);
                for (int64_t t = 0; t < cs.n_tok; t++) {
                    /* random, zero, large (1e25: far from float overflow, which the double
                     * reference would not see), denormal */
                    static const int kinds[4] = {0, 1, 0, 3};
                    fill(x, cols, ci % 2 ? 0 : kinds[t % 4]);
                    if (ci % 2 == 0 && t % 4 == 2)
                        for (int64_t k = 0; k < cols; k++) x[k] *= 1e25f;
                    infer_ref_quantize(wt, x, A + (size_t)t * ab, cols);
                    infer_ref_dequantize(wt, A + (size_t)t * ab, af + t * cols, cols);
                }
                infer_ref_matmul(wt, W, rb, cs.rows, cols, A, ab, cs.n_tok, want, (size_t)cs.rows);
                run_mm(kt, wt, W, rb, cs.rows, cols, A, ab, cs.n_tok, got, 0);
                for (int64_t r = 0; r < cs.rows; r++) {
                    infer_ref_dequantize(wt, W + (size_t)r * rb, wf, cols);
                    for (int64_t t = 0; t < cs.n_tok; t++) {
                        const double g = got[t * cs.rows + r], w = want[t * cs.rows + r];
                        double bound;
                        CHECK(nfail, within_sum_bound(g, w, wf, af + t * cols, cols, &bound),
                              "%s %s: cols %lld tok %lld rows %lld: [%lld][%lld] %g, ref %g (bound %g)", kt->name,
                              infer_type_name(wt), (long long)cols, (long long)cs.n_tok, (long long)cs.rows,
                              (long long)t, (long long)r, g, w, bound);
                    }
                }
                /* Row splits change nothing, bit for bit. */
                float *split = malloc(sizeof(float) * (size_t)(cs.rows * cs.n_tok));
                run_mm(kt, wt, W, rb, cs.rows, cols, A, ab, cs.n_tok, split, cs.rows / 3 + 1);
                for (int64_t i = 0; i < cs.rows * cs.n_tok; i++)
                    CHECK(nfail, same(split[i], got[i]), "%s %s: row split changed [%lld]", kt->name, infer_type_name(wt),
                          (long long)i);
                free(split);
                free(W), free(A), free(x), free(wf), free(af), free(want), free(got);
            }
        }
        cr_assert_eq(nfail, 0);
    }
}

/* matmul_kn (W stored by column, as the attention's V cache): within the
 * sum bound of the reference, which is itself the reference matmul on the
 * transposed copy bit for bit; at a SIMD level bit-identical to the same
 * level's matmul on that copy for 2+ tokens (the batch path; one token
 * goes to matmul's row-wise kernel there, another order); unchanged by row
 * splits. The columns sit in a wider stride at an odd offset, the gaps
 * filled with NaN bytes: a read outside the rows shows. Sizes: rows off
 * the tiles, columns past one K chunk (256), tokens past one chunk (96). */
Test(kernels_simd, matmul_kn_same_sums_as_matmul) {
    static const mm_case kn_cases[] = {{1, 1, 1},    {5, 2, 7},   {64, 8, 64},  {257, 13, 33},
                                       {300, 3, 70}, {100, 100, 16}, {33, 1, 128}, {513, 8, 64}};
    FOR_EACH_LEVEL(kt) {
        int nfail = 0;
        for (size_t ti = 0; ti < sizeof FTYPES / sizeof FTYPES[0]; ti++) {
            const uint32_t wt = FTYPES[ti];
            const size_t es = wt == INFER_TYPE_F32 ? 4 : 2;
            for (size_t ci = 0; ci < sizeof kn_cases / sizeof kn_cases[0]; ci++) {
                const int64_t cols = kn_cases[ci].blocks, n_tok = kn_cases[ci].n_tok, rows = kn_cases[ci].rows;
                const size_t rb = row_size(wt, cols), ab = rb, kb = (size_t)(rows + 3) * es, off = 5 * es;
                const size_t n_out = (size_t)(rows * n_tok);
                uint8_t *W = malloc(rb * (size_t)rows), *A = malloc(ab * (size_t)n_tok);
                uint8_t *T = malloc(off + kb * (size_t)cols);
                float *x = malloc(sizeof(float) * (size_t)cols), *wf = malloc(sizeof(float) * (size_t)(rows * cols));
                float *af = malloc(sizeof(float) * (size_t)(cols * n_tok));
                float *want = malloc(sizeof(float) * n_out), *got = malloc(sizeof(float) * n_out);
                float *other = malloc(sizeof(float) * n_out);
                weights(wt, W, rows, cols, 0);
                memset(T, 0xff, off + kb * (size_t)cols);
                for (int64_t r = 0; r < rows; r++)
                    for (int64_t k = 0; k < cols; k++)
                        memcpy(T + off + (size_t)k * kb + (size_t)r * es, W + (size_t)r * rb + (size_t)k * es, es);
                for (int64_t t = 0; t < n_tok; t++) {
                    fill(x, cols, t % 3 == 2 ? 3 : 0); /* random, and denormal */
                    infer_ref_quantize(wt, x, A + (size_t)t * ab, cols);
                    infer_ref_dequantize(wt, A + (size_t)t * ab, af + t * cols, cols);
                }
                for (int64_t r = 0; r < rows; r++) infer_ref_dequantize(wt, W + (size_t)r * rb, wf + r * cols, cols);
                infer_ref_matmul(wt, W, rb, rows, cols, A, ab, n_tok, want, (size_t)rows);
                kernels_ref.matmul_kn(wt, T + off, kb, rows, cols, A, ab, n_tok, other, (size_t)rows);
                for (size_t i = 0; i < n_out; i++)
                    CHECK(nfail, same(other[i], want[i]), "ref %s matmul_kn [%zu] %a, matmul %a", infer_type_name(wt), i,
                          other[i], want[i]);
                for (size_t i = 0; i < n_out; i++) got[i] = -777.0f;
                kt->matmul_kn(wt, T + off, kb, rows, cols, A, ab, n_tok, got, (size_t)rows);
                for (int64_t t = 0; t < n_tok; t++) {
                    for (int64_t r = 0; r < rows; r++) {
                        const double g = got[t * rows + r], w = want[t * rows + r];
                        double bound;
                        CHECK(nfail, within_sum_bound(g, w, wf + r * cols, af + t * cols, cols, &bound),
                              "%s %s matmul_kn: cols %lld tok %lld rows %lld: [%lld][%lld] %g, ref %g (bound %g)",
                              kt->name, infer_type_name(wt), (long long)cols, (long long)n_tok, (long long)rows,
                              (long long)t, (long long)r, g, w, bound);
                    }
                }
                if (n_tok >= 2) {
                    kt->matmul(wt, W, rb, rows, cols, A, ab, n_tok, other, (size_t)rows);
                    for (size_t i = 0; i < n_out; i++)
                        CHECK(nfail, same(got[i], other[i]), "%s %s: matmul_kn [%zu] %a, matmul %a", kt->name,
                              infer_type_name(wt), i, got[i], other[i]);
                }
                const int64_t split = rows / 3 + 1;
                if (split < rows) {
                    kt->matmul_kn(wt, T + off, kb, split, cols, A, ab, n_tok, other, (size_t)rows);
                    kt->matmul_kn(wt, T + off + (size_t)split * es, kb, rows - split, cols, A, ab, n_tok, other + split,
                                  (size_t)rows);
                    for (size_t i = 0; i < n_out; i++)
                        CHECK(nfail, same(other[i], got[i]), "%s %s: matmul_kn row split changed [%zu]", kt->name,
                              infer_type_name(wt), i);
                }
                free(W), free(A), free(T), free(x), free(wf), free(af), free(want), free(got), free(other);
            }
        }
        cr_assert_eq(nfail, 0);
    }
}
