/*
 * avx512_repack.c - quantized weights in the sliced layout of
 * avx512_internal.h, made once per model, and the matmul over it.
 *
 * Generation reads every weight byte once per token, so its cost is memory
 * plus the work to decode each block; in the file's layout that work
 * includes a transpose of 16 rows and a gather of their scales per block
 * (avx512_gemv.c). Stored sliced, a block of 16 rows is 4-8 plain vector
 * loads, and a group's blocks are one sequential stream. The bytes are the
 * file's, reordered: the repacked form is exactly as large as the rows it
 * replaces, and the kernels over it do the same arithmetic in the same
 * order (bit-identical to kernels/ref).
 */
#include "avx512_internal.h"

/* Bytes of one group's blocks: 16 rows. */
static size_t group_bytes(uint32_t type, int64_t n_cols) {
    const int64_t per = x86_family_of(type) == X86_FAM_LEGACY ? X86_QK : X86_QKK;
    return (size_t)(n_cols / per) * 16 * x86_block_bytes(type);
}

size_t x5_packed_size(uint32_t type, int64_t n_rows, int64_t n_cols) {
    const x86_family fam = x86_family_of(type);
    if (fam != X86_FAM_LEGACY && fam != X86_FAM_K) return 0;
    const int64_t per = fam == X86_FAM_LEGACY ? X86_QK : X86_QKK;
    if (n_rows < 16 || n_cols <= 0 || n_cols % per != 0) return 0;
    /* callers hold the whole tensor in memory, so this cannot overflow */
    return (size_t)(n_rows / 16) * group_bytes(type, n_cols);
}

/* Row i's block back from a group-block. */
static void unslice_block(uint32_t type, const uint8_t *G, int i, uint8_t *dst) {
    const size_t bb = x86_block_bytes(type), lead = x5_body_lead(type), ns = x5_n_slices(type);
    for (size_t j = 0; j < ns; j++) memcpy(dst + lead + 4 * j, G + 64 * j + 4 * (size_t)i, 4);
    if (bb % 4 == 2) memcpy(lead ? dst : dst + bb - 2, G + x5_d_at(type) + 2 * (size_t)i, 2);
}

/* Four slices at a time with the kernels' own transpose (every read stays
 * inside the block's body), the rest and d one row at a time. */
void x5_pack_weights(uint32_t type, const void *W, size_t row_bytes, int64_t n_rows, int64_t n_cols, void *P) {
    const size_t bb = x86_block_bytes(type), gb = 16 * bb, lead = x5_body_lead(type), ns = x5_n_slices(type);
    const int64_t nb = (int64_t)(group_bytes(type, n_cols) / gb);
    const uint8_t *w = W;
    uint8_t *p = P;
    for (int64_t g = 0; g < n_rows / 16; g++) {
        const uint8_t *rows[16];
        for (int i = 0; i < 16; i++) rows[i] = w + (size_t)(16 * g + i) * row_bytes;
        for (int64_t b = 0; b < nb; b++) {
            uint8_t *G = p + ((size_t)g * (size_t)nb + (size_t)b) * gb;
            const size_t off = (size_t)b * bb;
            size_t j = 0;
            for (; j + 4 <= ns; j += 4) {
                __m512i t[4];
                x5_tr16(rows, off + lead + 4 * j, t);
                for (int k = 0; k < 4; k++) _mm512_storeu_si512((void *)(G + 64 * (j + (size_t)k)), t[k]);
            }
            for (int i = 0; i < 16; i++) {
                for (size_t r = j; r < ns; r++) memcpy(G + 64 * r + 4 * (size_t)i, rows[i] + off + lead + 4 * r, 4);
                if (bb % 4 == 2) memcpy(G + x5_d_at(type) + 2 * (size_t)i, rows[i] + off + (lead ? 0 : bb - 2), 2);
            }
        }
    }
}

void x5_unslice(uint32_t type, const uint8_t *G, int64_t b0, int64_t nb, uint8_t *rows) {
    const size_t bb = x86_block_bytes(type), gb = 16 * bb;
    for (int i = 0; i < 16; i++)
        for (int64_t b = 0; b < nb; b++)
            unslice_block(type, G + (size_t)(b0 + b) * gb, i, rows + (size_t)i * (size_t)nb * bb + (size_t)b * bb);
}

void x5_matmul_packed(uint32_t type, const void *P, int64_t r0, int64_t n_rows, int64_t n_cols, const void *act,
                      size_t act_stride, int64_t n_tok, float *out, size_t out_stride) {
    if (n_rows <= 0 || n_tok <= 0) return;
    const int64_t g0 = r0 / 16, ng = n_rows / 16;
    if (n_tok == 1 && x5_gemv_packed(type, P, g0, ng, n_cols, act, out)) return;
    x5_gemm_packed(type, P, g0, ng, n_cols, act, act_stride, n_tok, out, out_stride);
}
