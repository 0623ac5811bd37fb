/* test_kernels_ref.c - the scalar reference kernels (kernels/ref): f16/bf16
 * conversions, every block layout bit for bit, the activation and weight
 * quantizers' rounding (vec_dot, matmul and llama.cpp's own quantized
 * files are in test_kernels_ref_dot.c).
 *
 * Loops over many values count failures and assert once (Criterion reports
 * every assertion to its runner, which is slow in tight loops); the first
 * few failures are logged with their inputs. Assumes a little-endian host,
 * as GGUF does. */
#include <float.h>
#include <math.h>

#include "infer_gguf.h"
#include "ref/quants.h"
#include "kernels_ref_util.h"

/* ======================= f16 / bf16 ====================================== */

Test(kernels_ref_fp16, every_half_converts_exactly_and_round_trips) {
    int nfail = 0;
    for (uint32_t h = 0; h < 65536; h++) {
        float f = infer_f16_to_f32((uint16_t)h);
        int exp = (h >> 10) & 31, man = h & 1023;
        double want = exp == 0 ? ldexp(man, -24) : ldexp(1024 + man, exp - 25);
        if (h & 0x8000) want = -want;
        uint16_t back = infer_f32_to_f16(f);
        if (exp == 31 && man != 0) {
            CHECK(nfail, isnan(f) && !!signbit(f) == !!(h & 0x8000), "h=%04x: %g not a NaN", h, f);
            CHECK(nfail, back == (h | 0x200), "NaN %04x -> %04x (want quieted %04x)", h, back,
                  h | 0x200);
            continue;
        }
        if (exp == 31) want = (h & 0x8000) ? -INFINITY : INFINITY;
        CHECK(nfail, f == want && !!signbit(f) == !!(h & 0x8000), "h=%04x: %a want %a", h, f, want);
        CHECK(nfail, back == h, "h=%04x -> %a -> %04x", h, f, back);
    }
    cr_assert_eq(nfail, 0);
}

Test(kernels_ref_fp16, f16_rounds_every_midpoint_to_even) {
    /* Between each pair of adjacent finite halves: the midpoint goes to the
     * even one, a float just below/above to the lower/upper one. Both
     * signs, subnormals included. */
    int nfail = 0;
    for (uint32_t h = 0; h < 0x7bff; h++) {
        float lo = infer_f16_to_f32((uint16_t)h), hi = infer_f16_to_f32((uint16_t)(h + 1));
        float mid = (lo + hi) / 2; /* exact: 12 significant bits */
        uint16_t even = (uint16_t)((h & 1) ? h + 1 : h);
        CHECK(nfail, infer_f32_to_f16(mid) == even, "mid %a -> %04x want %04x", mid,
              infer_f32_to_f16(mid), even);
        CHECK(nfail, infer_f32_to_f16(-mid) == (even | 0x8000), "-mid %a", mid);
        CHECK(nfail, infer_f32_to_f16(nextafterf(mid, 0)) == h, "below mid %a", mid);
        CHECK(nfail, infer_f32_to_f16(nextafterf(mid, INFINITY)) == h + 1, "above mid %a", mid);
    }
    cr_assert_eq(nfail, 0);
}

Test(kernels_ref_fp16, f16_specials_overflow_and_underflow) {
    cr_expect_eq(infer_f32_to_f16(1.0f), 0x3c00);
    cr_expect_eq(infer_f32_to_f16(1.0f + 0x1p-11f), 0x3c00);   /* tie, even below */
    cr_expect_eq(infer_f32_to_f16(1.0f + 0x3p-11f), 0x3c02);   /* tie, even above */
    cr_expect_eq(infer_f32_to_f16(1.0f + 0x1p-11f + 0x1p-20f), 0x3c01);
    cr_expect_eq(infer_f32_to_f16(65504.0f), 0x7bff);
    cr_expect_eq(infer_f32_to_f16(nextafterf(65520.0f, 0)), 0x7bff);
    cr_expect_eq(infer_f32_to_f16(65520.0f), 0x7c00); /* tie above the max: inf */
    cr_expect_eq(infer_f32_to_f16(1e10f), 0x7c00);
    cr_expect_eq(infer_f32_to_f16(FLT_MAX), 0x7c00);
    cr_expect_eq(infer_f32_to_f16(-FLT_MAX), 0xfc00);
    cr_expect_eq(infer_f32_to_f16(INFINITY), 0x7c00);
    cr_expect_eq(infer_f32_to_f16(-INFINITY), 0xfc00);
    cr_expect_eq(infer_f32_to_f16(0.0f), 0x0000);
    cr_expect_eq(infer_f32_to_f16(-0.0f), 0x8000);
    cr_expect_eq(infer_f32_to_f16(0x1p-14f), 0x0400);  /* smallest normal */
    cr_expect_eq(infer_f32_to_f16(0x1p-24f), 0x0001);  /* smallest subnormal */
    cr_expect_eq(infer_f32_to_f16(0x1p-25f), 0x0000);  /* tie with 0: even */
    cr_expect_eq(infer_f32_to_f16(0x1.000002p-25f), 0x0001);
    cr_expect_eq(infer_f32_to_f16(0x3p-25f), 0x0002);  /* tie 1|2: even */
    cr_expect_eq(infer_f32_to_f16(0x7ffp-25f), 0x0400); /* 1023.5 ulp: to the normal */
    cr_expect_eq(infer_f32_to_f16(-0x1p-26f), 0x8000);
    cr_expect_eq(infer_f32_to_f16(1e-30f), 0x0000);
    cr_expect_eq(infer_f32_to_f16(bitsf(1)), 0x0000); /* float denormal */
    uint16_t n = infer_f32_to_f16(NAN);
    cr_expect((n & 0x7c00) == 0x7c00 && (n & 0x3ff) != 0, "NaN -> %04x", n);
    n = infer_f32_to_f16(-NAN);
    cr_expect((n & 0xfc00) == 0xfc00 && (n & 0x3ff) != 0, "-NaN -> %04x", n);
    n = infer_f32_to_f16(bitsf(0x7f800001)); /* payload only in dropped bits */
    cr_expect((n & 0x7c00) == 0x7c00 && (n & 0x3ff) != 0, "sNaN -> %04x", n);
}

Test(kernels_ref_fp16, every_bf16_converts_exactly_and_round_trips) {
    int nfail = 0;
    for (uint32_t h = 0; h < 65536; h++) {
        float f = infer_bf16_to_f32((uint16_t)h);
        CHECK(nfail, fbits(f) == h << 16, "bf16 %04x -> %08x", h, fbits(f));
        uint16_t back = infer_f32_to_bf16(f);
        int nan = (h & 0x7f80) == 0x7f80 && (h & 0x7f);
        CHECK(nfail, back == (nan ? (h | 0x40) : h), "bf16 %04x -> %04x", h, back);
    }
    cr_assert_eq(nfail, 0);
}

Test(kernels_ref_fp16, bf16_rounds_every_midpoint_to_even) {
    int nfail = 0;
    for (uint32_t h = 0; h < 0x7f7f; h++) {
        uint32_t mid = (h << 16) | 0x8000;
        uint16_t even = (uint16_t)((h & 1) ? h + 1 : h);
        CHECK(nfail, infer_f32_to_bf16(bitsf(mid)) == even, "mid %08x", mid);
        CHECK(nfail, infer_f32_to_bf16(bitsf(mid | 0x80000000u)) == (even | 0x8000), "-mid %08x",
              mid);
        CHECK(nfail, infer_f32_to_bf16(bitsf(mid - 1)) == h, "below %08x", mid);
        CHECK(nfail, infer_f32_to_bf16(bitsf(mid + 1)) == h + 1, "above %08x", mid);
    }
    cr_assert_eq(nfail, 0);
    cr_expect_eq(infer_f32_to_bf16(1.0f + 0x1p-8f), 0x3f80);
    cr_expect_eq(infer_f32_to_bf16(1.0f + 0x3p-8f), 0x3f82);
    cr_expect_eq(infer_f32_to_bf16(FLT_MAX), 0x7f80); /* rounds up to inf */
    cr_expect_eq(infer_f32_to_bf16(bitsf(0x7f7f7fff)), 0x7f7f);
    cr_expect_eq(infer_f32_to_bf16(INFINITY), 0x7f80);
    cr_expect_eq(infer_f32_to_bf16(-INFINITY), 0xff80);
    cr_expect_eq(infer_f32_to_bf16(bitsf(0x00008001)), 0x0001); /* denormals kept */
    cr_expect_eq(infer_f32_to_bf16(bitsf(0x80008000)), 0x8000);
    cr_expect_eq(infer_f32_to_bf16(bitsf(0x7f800001)), 0x7fc0); /* NaN stays NaN, quiet */
    cr_expect_eq(infer_f32_to_bf16(bitsf(0xff812345)), 0xffc1);
}

/* ======================= hand-built blocks ================================ */

/* Dequantize nb blocks from an odd address (blocks inside tensors are
 * packed, so fields are unaligned). */
static void dequant_unaligned(uint32_t type, const uint8_t *blocks, int64_t n, float *out) {
    size_t bytes = row_size(type, n);
    uint8_t *buf = malloc(bytes + 1);
    memcpy(buf + 1, blocks, bytes);
    infer_ref_dequantize(type, buf + 1, out, n);
    free(buf);
}

static void expect_values(const float *got, const float *want, int n, const char *what) {
    int nfail = 0;
    for (int i = 0; i < n; i++)
        CHECK(nfail, close_to(got[i], want[i], 1e-6f), "%s[%d] = %g, want %g", what, i, got[i],
              want[i]);
    cr_assert_eq(nfail, 0, "%s: %d values differ", what, nfail);
}

Test(kernels_ref_blocks, q4_0_low_nibbles_first_then_high) {
    uint8_t b[36] = {0};
    float y[64], want[64];
    put_f16(b, 0.5f);
    put_f16(b + 18, -2.0f);
    for (int j = 0; j < 16; j++) {
        b[2 + j] = (uint8_t)(j | ((15 - j) << 4));
        b[20 + j] = 0xf0;
        want[j] = (j - 8) * 0.5f;
        want[16 + j] = (7 - j) * 0.5f;
        want[32 + j] = 16.0f;  /* (0 - 8) * -2 */
        want[48 + j] = -14.0f; /* (15 - 8) * -2 */
    }
    dequant_unaligned(INFER_TYPE_Q4_0, b, 64, y);
    expect_values(y, want, 64, "q4_0");
}

Test(kernels_ref_blocks, q4_1_scale_and_min) {
    uint8_t b[20] = {0};
    float y[32], want[32];
    put_f16(b, 0.25f);
    put_f16(b + 2, -1.0f);
    for (int j = 0; j < 16; j++) {
        b[4 + j] = (uint8_t)(j | ((15 - j) << 4));
        want[j] = j * 0.25f - 1.0f;
        want[16 + j] = (15 - j) * 0.25f - 1.0f;
    }
    dequant_unaligned(INFER_TYPE_Q4_1, b, 32, y);
    expect_values(y, want, 32, "q4_1");
}

Test(kernels_ref_blocks, q5_0_and_q5_1_fifth_bit_j_of_qh) {
    uint8_t b0[22] = {0}, b1[24] = {0};
    float y[32], want[32];
    const uint32_t qh = 0x80010003u; /* values 0, 1, 16, 31 have the fifth bit */
    put_f16(b0, 1.0f);
    memcpy(b0 + 2, &qh, 4);
    put_f16(b1, 0.5f);
    put_f16(b1 + 2, 1.0f);
    memcpy(b1 + 4, &qh, 4);
    for (int j = 0; j < 16; j++) b0[6 + j] = b1[8 + j] = (uint8_t)(j | ((15 - j) << 4));
    for (int j = 0; j < 32; j++) {
        int lo = j < 16 ? j : 31 - j, hi = (j == 0 || j == 1 || j == 16 || j == 31) ? 16 : 0;
        want[j] = (float)(lo + hi - 16);
    }
    cr_expect_eq(want[0], 0.0f);
    cr_expect_eq(want[16], 15.0f);
    dequant_unaligned(INFER_TYPE_Q5_0, b0, 32, y);
    expect_values(y, want, 32, "q5_0");
    for (int j = 0; j < 32; j++) want[j] = (want[j] + 16) * 0.5f + 1.0f;
    dequant_unaligned(INFER_TYPE_Q5_1, b1, 32, y);
    expect_values(y, want, 32, "q5_1");
}

Test(kernels_ref_blocks, q8_0_q8_1_q8_k_signed_bytes) {
    uint8_t b0[34], b1[36], bk[292] = {0};
    float y[256], want[256];
    put_f16(b0, 0.25f);
    put_f16(b1, 0.25f);
    put_f16(b1 + 2, 100.0f); /* s: not part of the values */
    for (int j = 0; j < 32; j++) {
        b0[2 + j] = b1[4 + j] = (uint8_t)(int8_t)(8 * j - 128);
        want[j] = 0.25f * (8 * j - 128);
    }
    dequant_unaligned(INFER_TYPE_Q8_0, b0, 32, y);
    expect_values(y, want, 32, "q8_0");
    dequant_unaligned(INFER_TYPE_Q8_1, b1, 32, y);
    expect_values(y, want, 32, "q8_1");
    float d = -0.5f;
    memcpy(bk, &d, 4);
    for (int j = 0; j < 256; j++) {
        bk[4 + j] = (uint8_t)(int8_t)(j - 128);
        want[j] = -0.5f * (j - 128);
    }
    dequant_unaligned(INFER_TYPE_Q8_K, bk, 256, y);
    expect_values(y, want, 256, "q8_k");
}

/* K-quants with hand-picked bytes and values worked out by hand. */

Test(kernels_ref_blocks, q2_k_scale_low_nibble_min_high_nibble) {
    uint8_t b[84];
    float y[256], want[256];
    for (int s = 0; s < 16; s++) b[s] = (uint8_t)(s | ((15 - s) << 4));
    memset(b + 16, 0xe4, 64); /* 2-bit fields j = 0..3 hold 0, 1, 2, 3 */
    put_f16(b + 80, 1.0f);
    put_f16(b + 82, 0.5f);
    for (int e = 0; e < 256; e++) {
        int s = e / 16, j = (e % 128) / 32;
        want[e] = (float)(s * j) - 0.5f * (15 - s);
    }
    cr_expect_eq(want[0], -7.5f);
    cr_expect_eq(want[40], -4.5f);
    dequant_unaligned(INFER_TYPE_Q2_K, b, 256, y);
    expect_values(y, want, 256, "q2_k");
}

Test(kernels_ref_blocks, q3_k_six_bit_scales_and_hmask) {
    uint8_t b[110];
    float y[256], want[256];
    /* unbiased 6-bit scales these 12 bytes encode, worked out by hand */
    static const int sc[16] = {-32, 17, -30, 19, -12, 5, -26, 23, 15, -2, -19, 28, 27, -22, -23, 24};
    memset(b, 0xff, 32);      /* hmask: high bits all set, no -4 */
    memset(b + 32, 0x55, 64); /* every 2-bit value is 1 */
    for (int i = 0; i < 8; i++) b[96 + i] = (uint8_t)(i | ((15 - i) << 4));
    b[104] = 0xe4;
    b[105] = 0x1b;
    b[106] = 0x00;
    b[107] = 0xff;
    put_f16(b + 108, 1.0f);
    for (int e = 0; e < 256; e++) want[e] = (float)sc[e / 16];
    dequant_unaligned(INFER_TYPE_Q3_K, b, 256, y);
    expect_values(y, want, 256, "q3_k scales");
    /* Clear hmask bit 4c+j of byte l: only value 128c + 32j + l drops by 4. */
    b[7] = (uint8_t)~(1u << 5); /* c = 1, j = 1, l = 7: value 167 */
    b[20] = (uint8_t)~(1u << 2); /* c = 0, j = 2, l = 20: value 84 */
    want[167] = (float)(sc[167 / 16] * (1 - 4));
    want[84] = (float)(sc[84 / 16] * (1 - 4));
    dequant_unaligned(INFER_TYPE_Q3_K, b, 256, y);
    expect_values(y, want, 256, "q3_k hmask");
}

Test(kernels_ref_blocks, q4_k_packed_scales_and_mins) {
    uint8_t b[144];
    float y[256], want[256];
    /* bytes 0..7: low 6 bits scales/mins 0..3, top 2 bits the high bits of
     * scales/mins 4..7, whose low 4 bits are the nibbles of bytes 8..11 */
    static const int sc[8] = {1, 2, 3, 4, 58, 28, 46, 1}, mn[8] = {5, 6, 7, 8, 25, 43, 13, 63};
    static const uint8_t packed[12] = {0xc1, 0x42, 0x83, 0x04, 0x45, 0x86, 0x07, 0xc8,
                                       0x9a, 0xbc, 0xde, 0xf1};
    put_f16(b, 1.0f);
    put_f16(b + 2, 1.0f);
    memcpy(b + 4, packed, 12);
    memset(b + 16, 0x21, 128); /* low nibbles 1, high nibbles 2 */
    for (int e = 0; e < 256; e++) {
        int s = e / 32;
        want[e] = (float)(sc[s] * (s % 2 ? 2 : 1) - mn[s]);
    }
    dequant_unaligned(INFER_TYPE_Q4_K, b, 256, y);
    expect_values(y, want, 256, "q4_k");
}

Test(kernels_ref_blocks, q5_k_fifth_bit_2p_plus_k_of_qh) {
    uint8_t b[176] = {0};
    float y[256], want[256];
    put_f16(b, 1.0f);
    put_f16(b + 2, 0.0f);
    memset(b + 4, 1, 4);     /* scales 0..3 = 1, mins 0 */
    memset(b + 12, 0x01, 4); /* scales 4..7 = 1, mins 0 */
    for (int l = 0; l < 32; l++) b[16 + l] = (uint8_t)(1u << (l % 8));
    memset(b + 48, 0x21, 128);
    for (int e = 0; e < 256; e++) {
        int s = e / 32, l = e % 32;
        want[e] = (float)((s % 2 ? 2 : 1) + (l % 8 == s ? 16 : 0));
    }
    dequant_unaligned(INFER_TYPE_Q5_K, b, 256, y);
    expect_values(y, want, 256, "q5_k");
}

Test(kernels_ref_blocks, q6_k_ql_nibbles_qh_pairs_signed_scales) {
    uint8_t b[210];
    float y[256], want[256];
    memset(b, 0x21, 128);       /* ql: low nibble 1, high nibble 2 */
    memset(b + 128, 0xe4, 64);  /* qh: 2-bit pairs 0, 1, 2, 3 */
    for (int s = 0; s < 16; s++) b[192 + s] = (uint8_t)(int8_t)(s - 8);
    put_f16(b + 208, 0.5f);
    static const int q[4] = {1 - 32, 17 - 32, 34 - 32, 50 - 32}; /* per k = (e % 128) / 32 */
    for (int e = 0; e < 256; e++) want[e] = 0.5f * (e / 16 - 8) * q[(e % 128) / 32];
    dequant_unaligned(INFER_TYPE_Q6_K, b, 256, y);
    expect_values(y, want, 256, "q6_k");
}

/* Random K blocks against decoders written the way llama.cpp's loops walk
 * the block (word-wise scale unpacking), unlike the kernels' per-value
 * formulation. */

static void ll_q3k_scales(const uint8_t *p, int8_t *out) {
    uint32_t a[4];
    memcpy(a, p, 12);
    uint32_t tmp = a[2];
    a[2] = ((a[0] >> 4) & 0x0f0f0f0f) | (((tmp >> 4) & 0x03030303) << 4);
    a[3] = ((a[1] >> 4) & 0x0f0f0f0f) | (((tmp >> 6) & 0x03030303) << 4);
    a[0] = (a[0] & 0x0f0f0f0f) | (((tmp >> 0) & 0x03030303) << 4);
    a[1] = (a[1] & 0x0f0f0f0f) | (((tmp >> 2) & 0x03030303) << 4);
    memcpy(out, a, 16);
}

static void ll_q4k_scales(const uint8_t *p, uint8_t *sc, uint8_t *mn) {
    uint32_t u[4];
    memcpy(u, p, 12);
    u[3] = ((u[2] >> 4) & 0x0f0f0f0f) | (((u[1] >> 6) & 0x03030303) << 4);
    uint32_t m03 = u[1] & 0x3f3f3f3f;
    u[1] = (u[2] & 0x0f0f0f0f) | (((u[0] >> 6) & 0x03030303) << 4);
    u[2] = m03;
    u[0] &= 0x3f3f3f3f;
    memcpy(sc, u, 8);
    memcpy(mn, u + 2, 8);
}

static void ll_decode(uint32_t type, const uint8_t *x, float *y) {
    int8_t s3[16];
    uint8_t sc[8], mn[8];
    switch (type) {
    case INFER_TYPE_Q2_K: {
        const uint8_t *q = x + 16;
        int is = 0;
        for (int n = 0; n < 256; n += 128, q += 32)
            for (int shift = 0; shift < 8; shift += 2)
                for (int half = 0; half < 2; half++, is++)
                    for (int l = 0; l < 16; l++)
                        *y++ = h2f(x + 80) * (x[is] & 15) * ((q[16 * half + l] >> shift) & 3) -
                               h2f(x + 82) * (x[is] >> 4);
        break;
    }
    case INFER_TYPE_Q3_K: {
        const uint8_t *q = x + 32, *hm = x;
        ll_q3k_scales(x + 96, s3);
        int is = 0, m = 1;
        for (int n = 0; n < 256; n += 128, q += 32)
            for (int shift = 0; shift < 8; shift += 2, m <<= 1)
                for (int half = 0; half < 2; half++, is++)
                    for (int l = 0; l < 16; l++)
                        *y++ = h2f(x + 108) * (s3[is] - 32) *
                               (((q[16 * half + l] >> shift) & 3) - ((hm[16 * half + l] & m) ? 0 : 4));
        break;
    }
    case INFER_TYPE_Q4_K:
    case INFER_TYPE_Q5_K: {
        const int five = type == INFER_TYPE_Q5_K;
        const uint8_t *q = x + (five ? 48 : 16), *qh = x + 16;
        ll_q4k_scales(x + 4, sc, mn);
        for (int p = 0, u = 1; p < 4; p++, q += 32, u <<= 2)
            for (int k = 0; k < 2; k++)
                for (int l = 0; l < 32; l++) {
                    int v = k ? q[l] >> 4 : q[l] & 15;
                    if (five && (qh[l] & (u << k))) v += 16;
                    *y++ = h2f(x) * sc[2 * p + k] * v - h2f(x + 2) * mn[2 * p + k];
                }
        break;
    }
    case INFER_TYPE_Q6_K: {
        const uint8_t *ql = x, *qh = x + 128;
        const int8_t *s = (const int8_t *)(x + 192);
        for (int n = 0; n < 256; n += 128, y += 128, ql += 64, qh += 32, s += 8)
            for (int l = 0; l < 32; l++) {
                int is = l / 16;
                y[l] = h2f(x + 208) * s[is] * (((ql[l] & 15) | ((qh[l] & 3) << 4)) - 32);
                y[l + 32] = h2f(x + 208) * s[is + 2] * (((ql[l + 32] & 15) | (((qh[l] >> 2) & 3) << 4)) - 32);
                y[l + 64] = h2f(x + 208) * s[is + 4] * (((ql[l] >> 4) | (((qh[l] >> 4) & 3) << 4)) - 32);
                y[l + 96] = h2f(x + 208) * s[is + 6] * (((ql[l + 32] >> 4) | (((qh[l] >> 6) & 3) << 4)) - 32);
            }
        break;
    }
    }
}


Test(kernels_ref_blocks, random_k_blocks_match_loop_decoders) {
    static const uint32_t types[] = {INFER_TYPE_Q2_K, INFER_TYPE_Q3_K, INFER_TYPE_Q4_K,
                                     INFER_TYPE_Q5_K, INFER_TYPE_Q6_K};
    uint64_t rng = 42;
    uint8_t x[3 * 210];
    float got[768], want[768];
    for (size_t t = 0; t < sizeof types / sizeof *types; t++) {
        for (int rep = 0; rep < 20; rep++) {
            random_blocks(types[t], x, 3, &rng);
            dequant_unaligned(types[t], x, 768, got);
            for (int b = 0; b < 3; b++)
                ll_decode(types[t], x + b * infer_type_block_bytes(types[t]), want + 256 * b);
            expect_values(got, want, 768, infer_type_name(types[t]));
        }
    }
}

/* ======================= quantizers ======================================= */

Test(kernels_ref_quant, q8_0_and_q8_1_round_half_away_from_zero) {
    float x[32] = {127.0f, 2.5f, -2.5f, 0.5f, -0.5f, 1.49f, -126.5f}; /* d = 1 */
    static const int8_t want[7] = {127, 3, -3, 1, -1, 1, -127};
    uint8_t b0[34], b1[36];
    cr_assert_eq(infer_ref_quantize(INFER_TYPE_Q8_0, x, b0, 32), 0);
    cr_assert_eq(infer_ref_quantize(INFER_TYPE_Q8_1, x, b1, 32), 0);
    cr_expect_eq(b0[0] | (b0[1] << 8), 0x3c00);
    cr_expect_eq(b1[0] | (b1[1] << 8), 0x3c00);
    for (int j = 0; j < 32; j++) {
        int8_t w = j < 7 ? want[j] : 0;
        cr_expect_eq((int8_t)b0[2 + j], w, "q8_0 qs[%d] = %d, want %d", j, (int8_t)b0[2 + j], w);
        cr_expect_eq((int8_t)b1[4 + j], w, "q8_1 qs[%d]", j);
    }
    /* s = d * sum(q) = 127 + 3 - 3 + 1 - 1 + 1 - 127 = 1 */
    cr_expect_eq(h2f(b1 + 2), 1.0f);
}

Test(kernels_ref_quant, q8_k_scale_from_signed_max_rounds_half_even) {
    float x[256] = {127.0f, 2.5f, 3.5f, -0.5f, 1.5f};
    uint8_t b[292];
    float d;
    cr_assert_eq(infer_ref_quantize(INFER_TYPE_Q8_K, x, b, 256), 0);
    memcpy(&d, b, 4);
    cr_expect_eq(d, -1.0f); /* iscale = -127 / max */
    static const int8_t want[5] = {-127, -2, -4, 0, -2};
    for (int j = 0; j < 5; j++) cr_expect_eq((int8_t)b[4 + j], want[j], "qs[%d] = %d", j, (int8_t)b[4 + j]);
    int16_t bs[16];
    memcpy(bs, b + 260, 32);
    cr_expect_eq(bs[0], -127 - 2 - 4 + 0 - 2);
    for (int g = 1; g < 16; g++) cr_expect_eq(bs[g], 0);
    /* negative max: d > 0 */
    memset(x, 0, sizeof x);
    x[200] = -254.0f;
    x[201] = 3.0f;
    infer_ref_quantize(INFER_TYPE_Q8_K, x, b, 256);
    memcpy(&d, b, 4);
    cr_expect_eq(d, 2.0f);
    cr_expect_eq((int8_t)b[4 + 200], -127);
    cr_expect_eq((int8_t)b[4 + 201], 2); /* 1.5 -> 2 */
    memcpy(bs, b + 260, 32);
    cr_expect_eq(bs[12], -125);
}

Test(kernels_ref_quant, q4_0_exact_bytes_and_clamp) {
    float x[32];
    uint8_t b[18];
    for (int j = 0; j < 32; j++) x[j] = (float)(j % 16 - 8); /* first |max| is -8: d = 1 */
    x[30] = 8.0f;                                         /* 8.5 + 8 -> 16, clamped to 15 */
    cr_assert_eq(infer_ref_quantize(INFER_TYPE_Q4_0, x, b, 32), 0);
    cr_expect_eq(b[0] | (b[1] << 8), 0x3c00);
    for (int j = 0; j < 16; j++) {
        int want = j | ((j == 14 ? 15 : j) << 4);
        cr_expect_eq(b[2 + j], want, "qs[%d] = %02x, want %02x", j, b[2 + j], want);
    }
    for (int j = 0; j < 32; j++) x[j] = -x[j]; /* max now +8 (x[0]): d = -1 */
    x[30] = -8.0f;
    infer_ref_quantize(INFER_TYPE_Q4_0, x, b, 32);
    cr_expect_eq(b[0] | (b[1] << 8), 0xbc00);
    cr_expect_eq(b[2 + 0], 0x00);
    cr_expect_eq(b[2 + 14], 0xfe);
}

Test(kernels_ref_quant, zero_blocks_give_zero_scales) {
    float x[256] = {0};
    uint8_t b[292];
    float y[256];
    static const uint32_t types[] = {INFER_TYPE_Q8_0, INFER_TYPE_Q8_1, INFER_TYPE_Q8_K,
                                     INFER_TYPE_Q4_0, INFER_TYPE_Q4_1, INFER_TYPE_Q5_0,
                                     INFER_TYPE_Q5_1};
    for (size_t t = 0; t < sizeof types / sizeof *types; t++) {
        int n = (int)infer_type_block_size(types[t]);
        memset(b, 0xaa, sizeof b);
        cr_assert_eq(infer_ref_quantize(types[t], x, b, n), 0);
        float d;
        if (types[t] == INFER_TYPE_Q8_K)
            memcpy(&d, b, 4);
        else
            d = h2f(b);
        cr_expect_eq(d, 0.0f, "%s d = %g", infer_type_name(types[t]), d);
        infer_ref_dequantize(types[t], b, y, n);
        for (int j = 0; j < n; j++) cr_assert_eq(y[j], 0.0f, "%s", infer_type_name(types[t]));
    }
    infer_ref_quantize(INFER_TYPE_Q4_0, x, b, 32);
    cr_expect_eq(b[2], 0x88); /* 0 * id + 8.5 -> 8 */
    infer_ref_quantize(INFER_TYPE_Q5_0, x, b, 32);
    cr_expect_eq(b[2] & b[3] & b[4] & b[5], 0xff); /* 16: fifth bits set */
    infer_ref_quantize(INFER_TYPE_Q8_K, x, b, 256);
    for (int i = 0; i < 292; i++) cr_assert_eq(b[i], 0, "q8_k byte %d", i);
}

Test(kernels_ref_quant, quantizers_survive_denormal_huge_and_nan_input) {
    /* Denormals make 1/d overflow to inf inside llama.cpp's formulas, NaN and
     * inf poison them: the result must stay defined (UBSan checks the float
     * to int conversions) and denormal blocks must come back as ~0. */
    static const uint32_t types[] = {INFER_TYPE_F32,  INFER_TYPE_F16,  INFER_TYPE_BF16,
                                     INFER_TYPE_Q8_0, INFER_TYPE_Q8_1, INFER_TYPE_Q8_K,
                                     INFER_TYPE_Q4_0, INFER_TYPE_Q4_1, INFER_TYPE_Q5_0,
                                     INFER_TYPE_Q5_1};
    float x[256], y[256];
    uint8_t b[1024];
    uint64_t rng = 3;
    for (size_t t = 0; t < sizeof types / sizeof *types; t++) {
        for (int i = 0; i < 256; i++) x[i] = test_uniform(&rng, -1, 1) * 1e-40f;
        cr_assert_eq(infer_ref_quantize(types[t], x, b, 256), 0);
        infer_ref_dequantize(types[t], b, y, 256);
        for (int i = 0; i < 256; i++)
            cr_assert(fabsf(y[i]) <= 1e-39f, "%s: denormal %g -> %g", infer_type_name(types[t]), x[i], y[i]);
        for (int i = 0; i < 256; i++) x[i] = (i % 3 == 0) ? FLT_MAX : (i % 3 == 1) ? -FLT_MAX : 1.0f;
        x[5] = INFINITY;
        x[77] = NAN;
        cr_assert_eq(infer_ref_quantize(types[t], x, b, 256), 0);
        infer_ref_dequantize(types[t], b, y, 256);
    }
}

/* Per-element error bound of quantize -> dequantize for one block x[0..n). */
static double round_trip_bound(uint32_t type, const float *x, int n) {
    float amax = 0, lo = x[0], hi = x[0];
    for (int j = 0; j < n; j++) {
        amax = fmaxf(amax, fabsf(x[j]));
        lo = fminf(lo, x[j]);
        hi = fmaxf(hi, x[j]);
    }
    const double h = 0x1p-11; /* f16 relative rounding of a scale */
    switch (type) {
    case INFER_TYPE_Q8_0: case INFER_TYPE_Q8_1: return amax * (0.5 / 127 + h) * 1.01;
    case INFER_TYPE_Q8_K: return amax * (0.5 / 127) * 1.01;
    case INFER_TYPE_Q4_0: return amax * (1.0 / 8 + h) * 1.01;  /* -max clamps: one step */
    case INFER_TYPE_Q5_0: return amax * (1.0 / 16 + h) * 1.01;
    case INFER_TYPE_Q4_1: return ((hi - lo) * (0.5 / 15 + h) + fabsf(lo) * h) * 1.01;
    case INFER_TYPE_Q5_1: return ((hi - lo) * (0.5 / 31 + h) + fabsf(lo) * h) * 1.01;
    }
    return 0;
}

Test(kernels_ref_quant, round_trip_error_within_bounds) {
    static const uint32_t types[] = {INFER_TYPE_F16, INFER_TYPE_BF16, INFER_TYPE_Q8_0,
                                     INFER_TYPE_Q8_1, INFER_TYPE_Q8_K, INFER_TYPE_Q4_0,
                                     INFER_TYPE_Q4_1, INFER_TYPE_Q5_0, INFER_TYPE_Q5_1};
    /* relative RMS error on uniform [-1, 1) data; about step / 2 for the
     * block types (step = range / levels); measured values are logged */
    static const double rms_bound[] = {3e-4, 2.5e-3, 5e-3, 5e-3, 5e-3, 0.08, 0.07, 0.04, 0.035};
    enum { N = 256 * 6 };
    static float x[N], u[N], y[N];
    static uint8_t q[N * 2];
    uint64_t rng = 7;
    /* x: blocks of 32 at scales 0.05 .. 500, some offset from zero */
    for (int b = 0; b < N / 32; b++) {
        float scale = 0.05f * powf(10.0f, (float)(b % 5)), off = (b % 3 == 0) ? scale / 2 : 0;
        for (int j = 0; j < 32; j++) x[32 * b + j] = off + test_uniform(&rng, -scale, scale);
    }
    for (int i = 0; i < N; i++) u[i] = test_uniform(&rng, -1, 1);
    for (size_t t = 0; t < sizeof types / sizeof *types; t++) {
        const uint32_t ty = types[t];
        const int bs = (int)infer_type_block_size(ty), blk = bs == 1 ? 32 : bs;
        cr_assert_eq(infer_ref_quantize(ty, x, q, N), 0);
        infer_ref_dequantize(ty, q, y, N);
        int nfail = 0;
        for (int b = 0; b < N / blk; b++) {
            double bound = round_trip_bound(ty, x + b * blk, blk);
            for (int j = b * blk; j < (b + 1) * blk; j++) {
                double e = fabs((double)y[j] - x[j]);
                if (ty == INFER_TYPE_F16) bound = fmax(fabsf(x[j]) * 0x1p-11, 0x1p-25);
                if (ty == INFER_TYPE_BF16) bound = fabsf(x[j]) * 0x1p-8;
                CHECK(nfail, e <= bound, "%s x[%d] = %g -> %g (bound %g)", infer_type_name(ty), j,
                      x[j], y[j], bound);
            }
        }
        cr_expect_eq(nfail, 0, "%s: %d values outside the bound", infer_type_name(ty), nfail);
        infer_ref_quantize(ty, u, q, N);
        infer_ref_dequantize(ty, q, y, N);
        double se = 0, sx = 0;
        for (int i = 0; i < N; i++) {
            se += ((double)y[i] - u[i]) * ((double)y[i] - u[i]);
            sx += (double)u[i] * u[i];
        }
        double rel = sqrt(se / sx);
        cr_log_info("%s: uniform data rel rms %.5f (bound %g)", infer_type_name(ty), rel, rms_bound[t]);
        cr_expect(rel < rms_bound[t], "%s: rel rms %g >= %g", infer_type_name(ty), rel, rms_bound[t]);
    }
}
