/*
 * dispatch.h - the CPU kernel table: one set of function pointers per
 * instruction-set level, the best one for this machine chosen once at
 * start-up (cpuid + xgetbv on x86, HWCAP on aarch64) and forceable with
 * INFER_CPU=ref|avx2|avxvnni|avx512|neon. The CPU backend calls kernels only
 * through this table; every entry is tested against kernels/ref.
 *
 * Determinism: every kernel computes each output element on one thread, in
 * an order that does not depend on how the caller splits the work, so
 * results do not change with the thread count (they may differ slightly
 * between ISA levels: float sums in another order).
 */
#ifndef INFER_KERNELS_DISPATCH_H
#define INFER_KERNELS_DISPATCH_H

#include <stddef.h>
#include <stdint.h>

typedef enum {
    INFER_ISA_REF = 0,
    INFER_ISA_AVX2 = 1,    /* AVX2 + FMA + F16C */
    INFER_ISA_AVXVNNI = 2, /* AVX2 + FMA + F16C + AVX-VNNI */
    INFER_ISA_AVX512 = 3,  /* AVX-512 F/BW/VL/DQ/VNNI */
    INFER_ISA_NEON = 4,    /* aarch64 NEON + dotprod */
    INFER_ISA_COUNT
} infer_isa;

typedef struct {
    infer_isa isa;
    const char *name; /* "ref", "avx2", "avxvnni", "avx512", "neon" */

    /* The activation type paired with a weight type (as infer_ref_vec_dot_type;
     * a level may pair differently only if its tests prove the same logits
     * tolerance). INFER_TYPE_COUNT: unsupported. */
    uint32_t (*vec_dot_type)(uint32_t weight_type);

    /* Quantize n floats to vec_dot_type(weight_type) (n a multiple of its block). */
    void (*quantize_act)(uint32_t act_type, const float *x, void *y, int64_t n);

    /* out[t * out_stride + r] = dot(row r of W, activation row t), r < n_rows,
     * t < n_tok; same contract as infer_ref_matmul. Called by several threads
     * on disjoint row ranges of the same W. */
    void (*matmul)(uint32_t weight_type, const void *W, size_t row_bytes, int64_t n_rows, int64_t n_cols,
                   const void *act, size_t act_stride, int64_t n_tok, float *out, size_t out_stride);

    /* As matmul, for a float type (F32/F16/BF16, activations of the same
     * type), with W stored by column: value (r, k) at W + k * k_bytes +
     * r * (its size), the attention's V cache kept by position. Each output
     * is the same float sum in the same order as matmul's batch path on the
     * transposed copy (bit-identical at the x86 SIMD levels for n_tok >= 2;
     * NEON's float tiles sum four lanes, its matmul_kn column by column:
     * both within the reference's tolerance, not equal). */
    void (*matmul_kn)(uint32_t type, const void *W, size_t k_bytes, int64_t n_rows, int64_t n_cols, const void *act,
                      size_t act_stride, int64_t n_tok, float *out, size_t out_stride);

    /* Repacked weights (optional; NULL where a level keeps the file's
     * layout). packed_size: bytes of `type`'s repacked form of rows
     * [0, n_rows / packed_rows * packed_rows), 0 when this level does not
     * repack the type (the rows past the last whole group always stay in
     * the file's layout). pack: writes that form to P. matmul_packed: as
     * matmul for rows [r0, r0 + n_rows) of the repacked weight P, r0 and
     * n_rows multiples of packed_rows; results bit-identical to matmul. */
    int packed_rows;
    size_t (*packed_size)(uint32_t weight_type, int64_t n_rows, int64_t n_cols);
    void (*pack)(uint32_t weight_type, const void *W, size_t row_bytes, int64_t n_rows, int64_t n_cols, void *P);
    void (*matmul_packed)(uint32_t weight_type, const void *P, int64_t r0, int64_t n_rows, int64_t n_cols,
                          const void *act, size_t act_stride, int64_t n_tok, float *out, size_t out_stride);

    /* n values of a weight type to float (get_rows). */
    void (*dequantize)(uint32_t type, const void *src, float *dst, int64_t n);

    /* Elementwise helpers on n floats. */
    void (*silu_mul)(float *gate, const float *up, size_t n); /* gate = silu(gate) * up */
    void (*add)(float *x, const float *y, size_t n);          /* x += y */
    /* y = x * (1/sqrt(mean(x^2) + eps)) * w, sum of squares in double. */
    void (*rms_norm)(const float *x, const float *w, float *y, int64_t n, float eps);
    /* Softmax numerators: y[i] = e^(x[i] - max) for i < n (y may be x);
     * returns their sum, accumulated in double. A numerator below 2.5e-38
     * may be 0 instead (x86: never a denormal, which Intel cores make
     * slowly). Optional: NULL in a table without one, and then callers
     * use expf (which is the reference). */
    double (*exp_sum)(float *y, const float *x, int64_t n, float max);
    /* One row of attention weights (kernels_softmax, below) in one pass per
     * step instead of five; the same values bit for bit. Optional. */
    double (*softmax)(float *x, int64_t n_valid, int64_t n, float scale, uint32_t act_type, void *p, float *max);
} kernel_table;

/* Softmax of x[0, n_valid) scaled by scale, written to p in act_type (F32,
 * F16 or BF16, as quantize_act) with 0 for [n_valid, n); x is scratch.
 * Each x is scaled (one float product), the max taken, the numerators
 * e^(x - max) summed by the table's exp_sum (expf without one), and each
 * numerator times the float 1/sum rounded to act_type. Returns that sum
 * and stores that max in *max (0 and -inf for n_valid 0): what attention
 * needs to merge this softmax with another block's (online softmax). A
 * table's softmax must give what this gives through its other entries,
 * bit for bit. */
double kernels_softmax(const kernel_table *kt, float *x, int64_t n_valid, int64_t n, float scale, uint32_t act_type,
                       void *p, float *max);
/* The online softmax step: merges one block's softmax (its max mb, sum sb
 * and its weights' sum of n values ob, normalized by sb) into the blocks'
 * so far (*m, *l, o), so that o stays normalized over all of them. A
 * block without a valid position (sb 0) changes nothing; a NaN sum makes
 * o NaN, as one long row would. */
void kernels_softmax_merge(float *o, const float *ob, int64_t n, float *m, double *l, float mb, double sb);
/* The same through the table's other entries only (what softmax matches). */
double kernels_softmax_generic(const kernel_table *kt, float *x, int64_t n_valid, int64_t n, float scale,
                               uint32_t act_type, void *p, float *max);

/* The table in use: the best level this machine runs, or INFER_CPU's
 * choice (an unknown or unsupported INFER_CPU falls back to the best with a
 * warning on stderr). Chosen once, thread-safely. */
const kernel_table *kernels_get(void);
/* How the x86 generation kernels prefetch the weights they stream: near,
 * into L1, on Intel CPUs; far, into L2, on AMD (Zen 4 measured: its
 * hardware prefetcher alone beat the near style, the far one beat both);
 * none on others. INFER_CPU_PREFETCH=0|1|2 (none, near, far) overrides.
 * Decided once per process. */
typedef enum { KERNELS_PF_NONE = 0, KERNELS_PF_L1 = 1, KERNELS_PF_L2 = 2 } kernels_prefetch;
kernels_prefetch kernels_sw_prefetch(void);
/* Its parts: the CPU's own style (by vendor), and the style that
 * INFER_CPU_PREFETCH's value want (NULL when unset) makes of it: exactly
 * 0, 1 or 2 that style, anything else the CPU's (with a warning on stderr
 * unless empty). */
kernels_prefetch kernels_prefetch_default(void);
kernels_prefetch kernels_prefetch_choose(const char *want, kernels_prefetch cpu);

/* Scratch memory for the batch kernels' panels, one buffer per thread
 * (KERNELS_SCRATCH_BYTES, 64-byte aligned), from the heap: they kept them
 * on the stack, up to ~131 KB a frame, which a caller's thread (musl's
 * 128 KB default, a small pthread_attr stack) may not have.
 * kernels_scratch_reserve: makes sure this thread has its buffer; 0, or -1
 * when there is no memory for it. The library reserves it wherever a
 * thread enters the kernels (a CPU decode's caller, each pool worker as it
 * starts), so that running out is an error there, not in a kernel.
 * kernels_scratch: this thread's buffer, reserving it first if it was not
 * (for code that calls a kernel table directly, as the tests and
 * infer-bench --kernels do); there only, no memory is fatal (a message on
 * stderr, then abort).
 * The buffer is freed when its thread exits. A kernel may use it only
 * between its entry and return: no kernel that holds it calls another. */
#define KERNELS_SCRATCH_BYTES ((size_t)136 << 10)
int kernels_scratch_reserve(void);
void *kernels_scratch(void);

/* What decides the x86 levels: cpuid leaf 1 ECX, leaf 7 subleaf 0 EBX
 * and ECX, leaf 7 subleaf 1 EAX, and XCR0 (xgetbv 0; 0 when OSXSAVE is
 * clear). */
typedef struct {
    uint32_t leaf1_ecx, leaf7_ebx, leaf7_ecx, leaf7s1_eax;
    uint64_t xcr0;
} kernels_x86_features;
/* Whether a CPU with these features runs an x86 level: AVX2 needs AVX,
 * AVX2, FMA and F16C with the OS saving YMM state; AVXVNNI that and
 * AVX-VNNI; AVX-512 that of AVX2 and F/BW/VL/DQ/VNNI with opmask and ZMM
 * state; 0 for a level not x86's.
 * A plain function of its argument, so tests can give it any CPU's bits. */
int kernels_x86_supports(infer_isa isa, const kernels_x86_features *f);

/* A level's table, or NULL when this build or this machine lacks it. */
const kernel_table *kernels_for(infer_isa isa);

/* The reference table (always available). */
extern const kernel_table kernels_ref;

#endif
