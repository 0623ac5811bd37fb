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

/* Q6_K's file slices of values 128c + 32k + 4j .. + 3: ql[64c + 4j ..] is
 * slice 16c + j, ql[64c + 32 + 4j ..] slice 16c + 8 + j, qh[32c + 4j ..]
 * slice 32 + 8c + j. */
static void q6k_file_values(const uint8_t *G, int c, int j, __m512i v[4]) {
    const __m512i la = _mm512_loadu_si512((const void *)(G + 64 * (16 * c + j)));
    const __m512i lb = _mm512_loadu_si512((const void *)(G + 64 * (16 * c + 8 + j)));
    const __m512i hh = _mm512_loadu_si512((const void *)(G + 64 * (32 + 8 * c + j)));
    x5_q6k_file_values(la, lb, hh, v);
}

static void q6k_encode(uint8_t *G) {
    __m512i out[48];
    const __m512i mc0 = _mm512_set1_epi8((char)0xc0);
    for (int c = 0; c < 2; c++)
        for (int j = 0; j < 8; j++) {
            __m512i v[4];
            q6k_file_values(G, c, j, v);
            /* bits 2w, 2w + 1 of v[3] to bits 6, 7 (masked: nothing crosses bytes) */
            out[24 * c + 3 * j] = _mm512_or_si512(v[0], _mm512_and_si512(_mm512_slli_epi16(v[3], 6), mc0));
            out[24 * c + 3 * j + 1] = _mm512_or_si512(v[1], _mm512_and_si512(_mm512_slli_epi16(v[3], 4), mc0));
            out[24 * c + 3 * j + 2] = _mm512_or_si512(v[2], _mm512_and_si512(_mm512_slli_epi16(v[3], 2), mc0));
        }
    for (int s = 0; s < 48; s++) _mm512_storeu_si512((void *)(G + 64 * s), out[s]);
}

static void q6k_decode(uint8_t *G) {
    __m512i out[48];
    const __m512i m4 = _mm512_set1_epi8(0x0f), m3 = _mm512_set1_epi8(0x03);
    for (int c = 0; c < 2; c++)
        for (int j = 0; j < 8; j++) {
            __m512i v[4];
            x5_q6k_values(G + 64 * (24 * c + 3 * j), v);
            /* the file's ql (two nibbles) and qh (four 2-bit fields) */
            out[16 * c + j] = _mm512_or_si512(_mm512_and_si512(v[0], m4), _mm512_slli_epi16(_mm512_and_si512(v[2], m4), 4));
            out[16 * c + 8 + j] = _mm512_or_si512(_mm512_and_si512(v[1], m4), _mm512_slli_epi16(_mm512_and_si512(v[3], m4), 4));
            __m512i h = _mm512_and_si512(_mm512_srli_epi16(v[0], 4), m3);
            h = _mm512_or_si512(h, _mm512_slli_epi16(_mm512_and_si512(_mm512_srli_epi16(v[1], 4), m3), 2));
            h = _mm512_or_si512(h, _mm512_slli_epi16(_mm512_and_si512(_mm512_srli_epi16(v[2], 4), m3), 4));
            out[32 + 8 * c + j] = _mm512_or_si512(h, _mm512_slli_epi16(_mm512_and_si512(_mm512_srli_epi16(v[3], 4), m3), 6));
        }
    for (int s = 0; s < 48; s++) _mm512_storeu_si512((void *)(G + 64 * s), out[s]);
}

/* A group-block of a recoded type (avx512_internal.h) from the file's
 * slices to the kernels' form (back 0) or back (1). */
static void recode(uint32_t type, uint8_t *G, int back) {
    if (type == INFER_TYPE_Q8_0) { /* q ^ 0x80 both ways */
        for (int s = 0; s < 8; s++) {
            const __m512i v = _mm512_loadu_si512((const void *)(G + 64 * s));
            _mm512_storeu_si512((void *)(G + 64 * s), _mm512_xor_si512(v, _mm512_set1_epi8((char)0x80)));
        }
    } else if (type == INFER_TYPE_Q6_K) {
        if (back) q6k_decode(G);
        else q6k_encode(G);
    }
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
            recode(type, G, 0);
        }
    }
}

void x5_unslice(uint32_t type, const uint8_t *G, int64_t b0, int64_t nb, uint8_t *rows) {
    const size_t bb = x86_block_bytes(type), gb = 16 * bb;
    _Alignas(64) uint8_t file[16 * 210]; /* a recoded group-block in the file's slices (Q6_K's are the largest) */
    for (int64_t b = 0; b < nb; b++) {
        const uint8_t *src = G + (size_t)(b0 + b) * gb;
        if (x5_recoded(type)) {
            memcpy(file, src, gb);
            recode(type, file, 1);
            src = file;
        }
        for (int i = 0; i < 16; i++) unslice_block(type, src, i, rows + (size_t)i * (size_t)nb * bb + (size_t)b * bb);
    }
}

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
