/*
 * avx2_repack.c - quantized weights into the sliced layout of x86_common.h
 * and back, for both x86 levels (every AVX-512 machine runs this AVX2
 * code). The bytes are the file's, reordered (and two types recoded): the
 * sliced form is exactly as large as the rows it replaces.
 */
#include "avx2_internal.h"

static inline __m256i ld(const uint8_t *p) { return _mm256_loadu_si256((const __m256i *)(const void *)p); }
static inline void st(uint8_t *p, __m256i v) { _mm256_storeu_si256((__m256i *)(void *)p, v); }

/* Q6_K, one half (8 rows) of a group-block G: the file's slices to the
 * recoded ones (x86_common.h). Slice numbers as there; bytes h = 0 or 32. */
static void q6k_encode(uint8_t *G, size_t h) {
    __m256i out[48];
    const __m256i mc0 = _mm256_set1_epi8((char)0xc0);
    for (int c = 0; c < 2; c++)
        for (int j = 0; j < 8; j++) {
            __m256i v[4];
            x2_q6k_file_values(ld(G + h + 64 * (16 * c + j)), ld(G + h + 64 * (16 * c + 8 + j)),
                               ld(G + h + 64 * (32 + 8 * c + j)), v);
            /* bits 2w, 2w + 1 of v[3] to bits 6, 7 (masked: nothing crosses bytes) */
            out[24 * c + 3 * j] = _mm256_or_si256(v[0], _mm256_and_si256(_mm256_slli_epi16(v[3], 6), mc0));
            out[24 * c + 3 * j + 1] = _mm256_or_si256(v[1], _mm256_and_si256(_mm256_slli_epi16(v[3], 4), mc0));
            out[24 * c + 3 * j + 2] = _mm256_or_si256(v[2], _mm256_and_si256(_mm256_slli_epi16(v[3], 2), mc0));
        }
    for (int s = 0; s < 48; s++) st(G + h + 64 * s, out[s]);
}

/* The inverse: recoded slices back to the file's ql (two nibbles) and qh
 * (four 2-bit fields). */
static void q6k_decode(uint8_t *G, size_t h) {
    __m256i out[48];
    const __m256i m4 = _mm256_set1_epi8(0x0f), m3 = _mm256_set1_epi8(0x03);
    for (int c = 0; c < 2; c++)
        for (int j = 0; j < 8; j++) {
            __m256i v[4];
            x2_q6k_values(G + h + 64 * (24 * c + 3 * j), v);
            out[16 * c + j] = _mm256_or_si256(_mm256_and_si256(v[0], m4), _mm256_slli_epi16(_mm256_and_si256(v[2], m4), 4));
            out[16 * c + 8 + j] = _mm256_or_si256(_mm256_and_si256(v[1], m4), _mm256_slli_epi16(_mm256_and_si256(v[3], m4), 4));
            __m256i q = _mm256_and_si256(_mm256_srli_epi16(v[0], 4), m3);
            q = _mm256_or_si256(q, _mm256_slli_epi16(_mm256_and_si256(_mm256_srli_epi16(v[1], 4), m3), 2));
            q = _mm256_or_si256(q, _mm256_slli_epi16(_mm256_and_si256(_mm256_srli_epi16(v[2], 4), m3), 4));
            out[32 + 8 * c + j] = _mm256_or_si256(q, _mm256_slli_epi16(_mm256_and_si256(_mm256_srli_epi16(v[3], 4), m3), 6));
        }
    for (int s = 0; s < 48; s++) st(G + h + 64 * s, out[s]);
}

/* Q3_K's hmask slices 0..7 (bit 4c + j of a byte: field j of c) to the
 * recoded bit order (x86_common.h) or back: each byte's bits moved by
 * 16-bit shifts, every moved bit masked in its own byte. */
static void q3k_hmask(uint8_t *G, int back) {
    static const int8_t to_new[8] = {2, 3, 4, -3, -1, 0, 1, -6}; /* bit b moves by this much */
    for (int s = 0; s < 16; s++) {
        const __m256i x = ld(G + 32 * s);
        __m256i y = _mm256_setzero_si256();
        for (int b = 0; b < 8; b++) {
            const int sh = back ? -to_new[b] : to_new[b], from = back ? b + to_new[b] : b, to = from + sh;
            const __m256i t = sh > 0 ? _mm256_slli_epi16(x, sh) : _mm256_srli_epi16(x, -sh);
            y = _mm256_or_si256(y, _mm256_and_si256(t, _mm256_set1_epi8((char)(1 << to))));
        }
        st(G + 32 * s, y);
    }
}

/* A group-block of a recoded type from the file's slices to the kernels'
 * form (back 0) or back (1). */
static void recode(uint32_t type, uint8_t *G, int back) {
    if (type == INFER_TYPE_Q8_0) { /* q ^ 0x80 both ways */
        for (int s = 0; s < 16; s++) st(G + 32 * s, _mm256_xor_si256(ld(G + 32 * s), _mm256_set1_epi8((char)0x80)));
    } else if (type == INFER_TYPE_Q3_K) {
        q3k_hmask(G, back);
    } else if (type == INFER_TYPE_Q6_K) {
        for (size_t h = 0; h < 64; h += 32) {
            if (back) q6k_decode(G, h);
            else q6k_encode(G, h);
        }
    }
}

/* Row i's block back from a group-block. */
static void unslice_block(uint32_t type, const uint8_t *G, int i, uint8_t *dst) {
    const size_t bb = x86_block_bytes(type), lead = x86_sl_lead(type), ns = x86_sl_n_slices(type);
    for (size_t j = 0; j < ns; j++) memcpy(dst + lead + 4 * j, G + 64 * j + 4 * (size_t)i, 4);
    if (bb % 4 == 2) memcpy(lead ? dst : dst + bb - 2, G + x86_sl_d_at(type) + 2 * (size_t)i, 2);
}

/* Four slices at a time with the kernels' transpose, rows 0..7 into each
 * slice's first half and 8..15 into its second (every read stays inside the
 * block's body); the rest and d one row at a time. */
void x2_pack_weights(uint32_t type, const void *W, size_t row_bytes, int64_t n_rows, int64_t n_cols, void *P) {
    const size_t bb = x86_block_bytes(type), gb = 16 * bb, lead = x86_sl_lead(type), ns = x86_sl_n_slices(type);
    const int64_t nb = (int64_t)(x86_sl_group_bytes(type, n_cols) / gb);
    const uint8_t *w = W;
    uint8_t *p = P;
    for (int64_t g = 0; g < n_rows / 16; g++) {
        const uint8_t *rows[16];
        for (int i = 0; i < 16; i++) rows[i] = w + (size_t)(16 * g + i) * row_bytes;
        for (int64_t b = 0; b < nb; b++) {
            uint8_t *G = p + ((size_t)g * (size_t)nb + (size_t)b) * gb;
            const size_t off = (size_t)b * bb;
            size_t j = 0;
            for (; j + 4 <= ns; j += 4)
                for (int h = 0; h < 2; h++) {
                    __m256i t[4];
                    x2_tr8(rows + 8 * h, off + lead + 4 * j, t);
                    for (int k = 0; k < 4; k++) st(G + 64 * (j + (size_t)k) + 32 * (size_t)h, t[k]);
                }
            for (int i = 0; i < 16; i++) {
                for (size_t r = j; r < ns; r++) memcpy(G + 64 * r + 4 * (size_t)i, rows[i] + off + lead + 4 * r, 4);
                if (bb % 4 == 2) memcpy(G + x86_sl_d_at(type) + 2 * (size_t)i, rows[i] + off + (lead ? 0 : bb - 2), 2);
            }
            recode(type, G, 0);
        }
    }
}

void x2_unslice(uint32_t type, const uint8_t *G, int64_t b0, int64_t nb, uint8_t *rows) {
    const size_t bb = x86_block_bytes(type), gb = 16 * bb;
    _Alignas(64) uint8_t file[16 * 210]; /* a recoded group-block in the file's slices (Q6_K's are the largest) */
    for (int64_t b = 0; b < nb; b++) {
        const uint8_t *src = G + (size_t)(b0 + b) * gb;
        if (x86_sl_recoded(type)) {
            memcpy(file, src, gb);
            recode(type, file, 1);
            src = file;
        }
        for (int i = 0; i < 16; i++) unslice_block(type, src, i, rows + (size_t)i * (size_t)nb * bb + (size_t)b * bb);
    }
}
