/*
 * avx512_repack.c - the matmul over quantized weights in the sliced layout
 * of x86_common.h (made once per model by x2_pack_weights).
 *
 * Generation reads every weight byte once per token, so its cost is memory
 * plus the work to decode each block; in the file's layout that work
 * includes a transpose of 16 rows and a gather of their scales per block
 * (avx512_gemv.c). Stored sliced, a block of 16 rows is 4-8 plain vector
 * loads, and a group's blocks are one sequential stream. The kernels over
 * it do the same arithmetic in the same order (bit-identical to
 * kernels/ref).
 */
#include "avx2_internal.h"
#include "avx512_internal.h"

/* Q8_0 generation with the near prefetch style (Intel) runs the AVX2
 * level's kernel (avx2_gemv_p.c: two streams a thread, 256-bit operations,
 * the same layout and bits): on the Intel Xeon (family 6 model 167) it
 * streams faster than this level's, tg64 two rounds alternating
 * INFER_CPU=avx512 and avx2 in one run: 27.3-27.7 against 31.1-31.2 t/s
 * (83% against 90-91% of the probe); one thread from memory 16.6-16.8
 * against 17.8-18.2 GB/s, though from cache this level's is twice as fast.
 * Not for the other types: Q4_0 the same within 1-3%, Q5_0 and the
 * K-quants slower at AVX2 (Q5_0 -8%, Q4_K_M -10-15%). */
static int gemv_by_avx2(uint32_t type, kernels_prefetch pf) {
    return type == INFER_TYPE_Q8_0 && pf == KERNELS_PF_L1;
}

void x5_matmul_packed(uint32_t type, const void *P, int64_t r0, int64_t n_rows, int64_t n_cols, const void *act,
                      size_t act_stride, int64_t n_tok, float *out, size_t out_stride) {
    if (n_rows <= 0 || n_tok <= 0) return;
    const int64_t g0 = r0 / 16, ng = n_rows / 16;
    if (n_tok == 1) {
        const kernels_prefetch pf = kernels_sw_prefetch();
        if (gemv_by_avx2(type, pf) && x2_gemv_packed(type, (const uint8_t *)P, g0, ng, n_cols, act, out)) return;
        if (X5_BY_PREFETCH(pf, x5_gemv_packed, type, P, g0, ng, n_cols, act, out)) return;
    }
    x5_gemm_packed(type, P, g0, ng, n_cols, act, act_stride, n_tok, out, out_stride);
}
