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
#include "avx512_internal.h"

void x5_matmul_packed(uint32_t type, const void *P, int64_t r0, int64_t n_rows, int64_t n_cols, const void *act,
                      size_t act_stride, int64_t n_tok, float *out, size_t out_stride) {
    if (n_rows <= 0 || n_tok <= 0) return;
    const int64_t g0 = r0 / 16, ng = n_rows / 16;
    if (n_tok == 1) {
        const kernels_prefetch pf = kernels_sw_prefetch();
        if (X5_BY_PREFETCH(pf, x5_gemv_packed, type, P, g0, ng, n_cols, act, out)) return;
    }
    x5_gemm_packed(type, P, g0, ng, n_cols, act, act_stride, n_tok, out, out_stride);
}
