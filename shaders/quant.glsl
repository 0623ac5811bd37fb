/*
 * quant.glsl - weight types in their device layout (written by
 * src/backend_vulkan_repack.c), decoded 32 values ("a unit") at a time.
 *
 * A row is a run of groups; a group is GROUP_UNITS units in GROUP_TEXELS
 * 16-byte texels. For the 32-value block types eight blocks form a group,
 * scales first, so every field is 4-byte aligned; a K-quant super-block is
 * a group of 8 units (padded to whole texels); F32/F16/BF16 group one unit.
 *
 *   Q4_0  9 texels: 8 f16 d | 8 x qs[16]
 *   Q4_1 10 texels: 8 x (f16 d, f16 m) | 8 x qs[16]
 *   Q5_0 11 texels: 8 f16 d, pad | 8 x u32 qh | 8 x qs[16]
 *   Q5_1 12 texels: 8 x (d, m) | 8 x qh | 8 x qs[16]
 *   Q8_0 17 texels: 8 f16 d | 8 x qs[32]
 *   Q2_K  6 texels: scales[16] | qs[64] | f16 d, f16 dmin, pad
 *   Q3_K  7 texels: hmask[32] | qs[64] | scales[12], f16 d, pad
 *   Q4_K  9 texels: f16 d, f16 dmin, scales[12] | qs[128]   (as in GGUF)
 *   Q5_K 11 texels: f16 d, f16 dmin, scales[12] | qh[32] | qs[128]
 *   Q6_K 14 texels: ql[128] | qh[64] | scales[16] | f16 d, pad
 *   F32 8, F16 4, BF16 4 texels per unit of 32 values (rows zero-padded)
 *
 * A group's shared texels (scales, Q5 high bits, ...) are read once into
 * h[NH] by group_load; unit_decode then gives unit i's integer quants q
 * (as exact floats) and its scales. The activations hold the integers of
 * the activation type (Q8_0 / Q8_1 / Q8_K, exact in float) with scales
 * xm, and the sums follow llama.cpp's vec_dot:
 *   32-value types: unit_combine, an exact integer dot per block times
 *     the float scales, block by block;
 *   K-quants: unit_kdot adds each unit's scaled integer sums into int
 *     accumulators, group_finish applies d and dmin once per super-block.
 * Quants stored with an offset (Q4_0 - 8, Q5_0 - 16, Q3_K - 4, Q6_K - 32)
 * are decoded without it and the offset is taken out through the sums of
 * the activations (xm's companion xs = (sum of x[0..15], sum of x[16..31])),
 * which load once per unit for all rows: exact, and one operation less
 * per weight.
 * unit_dequant gives the float values with the CPU reference's formulas.
 */

uint tbyte(uvec4 t, uint k) { return (t[k >> 2] >> ((k & 3u) * 8u)) & 0xffu; }
int tsbyte(uvec4 t, uint k) { return bitfieldExtract(int(t[k >> 2]), int((k & 3u) * 8u), 8); }
float half_lo(uint w) { return unpackHalf2x16(w).x; }
float half_hi(uint w) { return unpackHalf2x16(w).y; }
/* f16 number i (0..7) of the 8 packed in one texel. */
float half_of(uvec4 t, uint i) { return unpackHalf2x16(t[i >> 1] >> ((i & 1u) * 16u)).x; }

/* Dots of 32 values (and in two halves of 16, for sub-block scales),
 * with explicit fma (one instruction, not a multiply and an add) and
 * independent partial sums: for the quantized types every product and
 * partial sum is an exact integer, so neither changes a bit. */
void dot16x2(float q[32], float x[32], out float lo, out float hi) {
    float a0 = 0.0, a1 = 0.0, a2 = 0.0, a3 = 0.0, b0 = 0.0, b1 = 0.0, b2 = 0.0, b3 = 0.0;
    [[unroll]] for (uint k = 0; k < 16u; k += 4u) {
        a0 = fma(q[k], x[k], a0);
        a1 = fma(q[k + 1u], x[k + 1u], a1);
        a2 = fma(q[k + 2u], x[k + 2u], a2);
        a3 = fma(q[k + 3u], x[k + 3u], a3);
        b0 = fma(q[k + 16u], x[k + 16u], b0);
        b1 = fma(q[k + 17u], x[k + 17u], b1);
        b2 = fma(q[k + 18u], x[k + 18u], b2);
        b3 = fma(q[k + 19u], x[k + 19u], b3);
    }
    lo = (a0 + a1) + (a2 + a3);
    hi = (b0 + b1) + (b2 + b3);
}

float dot32(float q[32], float x[32]) {
    float lo, hi;
    dot16x2(q, x, lo, hi);
    return lo + hi;
}

/* The 32 nibbles of 16 bytes: value j (< 16) is byte j's low nibble,
 * value j + 16 its high nibble. */
void nibbles32(uvec4 qs, out uint n[32]) {
    [[unroll]] for (uint w = 0; w < 4u; w++) {
        [[unroll]] for (uint b = 0; b < 4u; b++) {
            n[4u * w + b] = (qs[w] >> (8u * b)) & 15u;
            n[16u + 4u * w + b] = (qs[w] >> (8u * b + 4u)) & 15u;
        }
    }
}

#if defined(WTYPE_q4_0)
const uint GROUP_UNITS = 8u, GROUP_TEXELS = 9u, NH = 1u;
void group_load(uint gb, out uvec4 h[NH]) { h[0] = wt(gb); }
void unit_decode(uint gb, uvec4 h[NH], uint i, out float q[32], out vec4 s, out vec4 s2) {
    s = vec4(half_of(h[0], i), 0.0, 0.0, 0.0);
    s2 = vec4(0.0);
    uint n[32];
    nibbles32(wt(gb + 1u + i), n);
    [[unroll]] for (uint k = 0; k < 32u; k++) q[k] = float(n[k]); /* q - 8 */
}
float unit_combine(float q[32], vec4 s, vec4 s2, float x[32], vec4 xm, vec2 xs) {
    precise float r = (dot32(q, x) - 8.0 * (xs.x + xs.y)) * (s.x * xm.x);
    return r;
}
void unit_dequant_q(float q[32], vec4 s, vec4 s2, out float v[32]) {
    [[unroll]] for (uint k = 0; k < 32u; k++) v[k] = (q[k] - 8.0) * s.x;
}

#elif defined(WTYPE_q4_1)
const uint GROUP_UNITS = 8u, GROUP_TEXELS = 10u, NH = 2u;
void group_load(uint gb, out uvec4 h[NH]) {
    h[0] = wt(gb);
    h[1] = wt(gb + 1u);
}
void unit_decode(uint gb, uvec4 h[NH], uint i, out float q[32], out vec4 s, out vec4 s2) {
    uint dm = h[i >> 2][i & 3u];
    s = vec4(half_lo(dm), half_hi(dm), 0.0, 0.0);
    s2 = vec4(0.0);
    uint n[32];
    nibbles32(wt(gb + 2u + i), n);
    [[unroll]] for (uint k = 0; k < 32u; k++) q[k] = float(n[k]);
}
float unit_combine(float q[32], vec4 s, vec4 s2, float x[32], vec4 xm, vec2 xs) {
    precise float r = (s.x * xm.x) * dot32(q, x) + s.y * xm.y;
    return r;
}
void unit_dequant_q(float q[32], vec4 s, vec4 s2, out float v[32]) {
    [[unroll]] for (uint k = 0; k < 32u; k++) {
        precise float t = q[k] * s.x + s.y;
        v[k] = t;
    }
}

#elif defined(WTYPE_q5_0) || defined(WTYPE_q5_1)
#if defined(WTYPE_q5_0)
const uint GROUP_UNITS = 8u, GROUP_TEXELS = 11u, NH = 3u;
const uint QH_TEXEL = 1u, QS_TEXEL = 3u;
#else
const uint GROUP_UNITS = 8u, GROUP_TEXELS = 12u, NH = 4u;
const uint QH_TEXEL = 2u, QS_TEXEL = 4u;
#endif
void group_load(uint gb, out uvec4 h[NH]) {
    [[unroll]] for (uint k = 0; k < NH; k++) h[k] = wt(gb + k);
}
void unit_decode(uint gb, uvec4 h[NH], uint i, out float q[32], out vec4 s, out vec4 s2) {
#if defined(WTYPE_q5_0)
    s = vec4(half_of(h[0], i), 0.0, 0.0, 0.0);
#else
    uint dm = h[i >> 2][i & 3u];
    s = vec4(half_lo(dm), half_hi(dm), 0.0, 0.0);
#endif
    s2 = vec4(0.0);
    uint qh = h[QH_TEXEL + (i >> 2)][i & 3u];
    uint n[32];
    nibbles32(wt(gb + QS_TEXEL + i), n);
    [[unroll]] for (uint k = 0; k < 32u; k++) q[k] = float(n[k] | (((qh >> k) & 1u) << 4)); /* Q5_0: q - 16 */
}
float unit_combine(float q[32], vec4 s, vec4 s2, float x[32], vec4 xm, vec2 xs) {
#if defined(WTYPE_q5_0)
    precise float r = (dot32(q, x) - 16.0 * (xs.x + xs.y)) * (s.x * xm.x);
#else
    precise float r = (s.x * xm.x) * dot32(q, x) + s.y * xm.y;
#endif
    return r;
}
void unit_dequant_q(float q[32], vec4 s, vec4 s2, out float v[32]) {
    [[unroll]] for (uint k = 0; k < 32u; k++) {
#if defined(WTYPE_q5_0)
        v[k] = (q[k] - 16.0) * s.x;
#else
        precise float t = q[k] * s.x + s.y;
        v[k] = t;
#endif
    }
}

#elif defined(WTYPE_q8_0)
const uint GROUP_UNITS = 8u, GROUP_TEXELS = 17u, NH = 1u;
void group_load(uint gb, out uvec4 h[NH]) { h[0] = wt(gb); }
void unit_decode(uint gb, uvec4 h[NH], uint i, out float q[32], out vec4 s, out vec4 s2) {
    s = vec4(half_of(h[0], i), 0.0, 0.0, 0.0);
    s2 = vec4(0.0);
    uvec4 a = wt(gb + 1u + 2u * i), b = wt(gb + 2u + 2u * i);
    [[unroll]] for (uint k = 0; k < 16u; k++) {
        q[k] = float(tsbyte(a, k));
        q[k + 16u] = float(tsbyte(b, k));
    }
}
float unit_combine(float q[32], vec4 s, vec4 s2, float x[32], vec4 xm, vec2 xs) {
    precise float r = dot32(q, x) * (s.x * xm.x);
    return r;
}
void unit_dequant_q(float q[32], vec4 s, vec4 s2, out float v[32]) {
    [[unroll]] for (uint k = 0; k < 32u; k++) v[k] = q[k] * s.x;
}

#elif defined(WTYPE_q2_k)
#define KQUANT 1
const uint GROUP_UNITS = 8u, GROUP_TEXELS = 6u, NH = 2u;
void group_load(uint gb, out uvec4 h[NH]) {
    h[0] = wt(gb);      /* scales */
    h[1] = wt(gb + 5u); /* d, dmin */
}
/* Unit u = 4c + j holds values 128c + 32j + l: bits 2j of qs[32c + l];
 * its sub-blocks 8c + 2j (+1) have scale (low nibble) and min (high). */
void unit_decode(uint gb, uvec4 h[NH], uint u, out float q[32], out vec4 s, out vec4 s2) {
    uint c = u >> 2, j = u & 3u;
    s = vec4(half_lo(h[1].x), half_hi(h[1].x), 0.0, 0.0);
    uint b0 = tbyte(h[0], 8u * c + 2u * j), b1 = tbyte(h[0], 8u * c + 2u * j + 1u);
    s2 = vec4(float(b0 & 15u), float(b0 >> 4), float(b1 & 15u), float(b1 >> 4));
    uvec4 a = wt(gb + 1u + 2u * c), b = wt(gb + 2u + 2u * c);
    [[unroll]] for (uint k = 0; k < 16u; k++) {
        q[k] = float((tbyte(a, k) >> (2u * j)) & 3u);
        q[k + 16u] = float((tbyte(b, k) >> (2u * j)) & 3u);
    }
}
void unit_kdot(float q[32], vec4 s, vec4 s2, float x[32], vec4 xm, vec2 xs, inout int isum, inout int summs) {
    float lo, hi;
    dot16x2(q, x, lo, hi);
    isum += int(s2.x) * int(lo) + int(s2.z) * int(hi);
    summs += int(s2.y) * int(xm.y) + int(s2.w) * int(xm.z);
}
float group_finish(vec4 s, float xd, int isum, int summs) {
    precise float r = (xd * s.x) * float(isum) - (xd * s.y) * float(summs);
    return r;
}
void unit_dequant_q(float q[32], vec4 s, vec4 s2, out float v[32]) {
    precise float dl0 = s.x * s2.x, ml0 = s.y * s2.y, dl1 = s.x * s2.z, ml1 = s.y * s2.w;
    [[unroll]] for (uint k = 0; k < 16u; k++) {
        precise float t0 = dl0 * q[k] - ml0, t1 = dl1 * q[k + 16u] - ml1;
        v[k] = t0;
        v[k + 16u] = t1;
    }
}

#elif defined(WTYPE_q3_k)
#define KQUANT 1
const uint GROUP_UNITS = 8u, GROUP_TEXELS = 7u, NH = 3u;
void group_load(uint gb, out uvec4 h[NH]) {
    h[0] = wt(gb);      /* hmask[0..15] */
    h[1] = wt(gb + 1u); /* hmask[16..31] */
    h[2] = wt(gb + 6u); /* scales[12], d */
}
/* The 6-bit scale of sub-block sb, unbiased. */
float q3k_scale(uvec4 sc, uint sb) {
    uint lo = sb < 8u ? (tbyte(sc, sb) & 15u) : (tbyte(sc, sb - 8u) >> 4);
    uint hi = (tbyte(sc, 8u + (sb & 3u)) >> (2u * (sb >> 2))) & 3u;
    return float(int(lo | (hi << 4)) - 32);
}
/* Unit u = 4c + j holds values 128c + 32j + l: bits 2j of qs[32c + l],
 * minus 4 unless bit 4c + j of hmask[l] is set. */
void unit_decode(uint gb, uvec4 h[NH], uint u, out float q[32], out vec4 s, out vec4 s2) {
    uint c = u >> 2, j = u & 3u;
    s = vec4(half_lo(h[2].w), 0.0, 0.0, 0.0);
    s2 = vec4(q3k_scale(h[2], 8u * c + 2u * j), q3k_scale(h[2], 8u * c + 2u * j + 1u), 0.0, 0.0);
    uvec4 a = wt(gb + 2u + 2u * c), b = wt(gb + 3u + 2u * c);
    uint hb = 4u * c + j;
    /* q - 4 = low - 4 + 4 * high: decoded as low | high << 2 */
    [[unroll]] for (uint k = 0; k < 16u; k++) {
        q[k] = float(((tbyte(a, k) >> (2u * j)) & 3u) | (((tbyte(h[0], k) >> hb) & 1u) << 2));
        q[k + 16u] = float(((tbyte(b, k) >> (2u * j)) & 3u) | (((tbyte(h[1], k) >> hb) & 1u) << 2));
    }
}
void unit_kdot(float q[32], vec4 s, vec4 s2, float x[32], vec4 xm, vec2 xs, inout int isum, inout int summs) {
    float lo, hi;
    dot16x2(q, x, lo, hi);
    isum += int(s2.x) * int(lo - 4.0 * xs.x) + int(s2.y) * int(hi - 4.0 * xs.y);
}
float group_finish(vec4 s, float xd, int isum, int summs) {
    precise float r = (s.x * xd) * float(isum);
    return r;
}
void unit_dequant_q(float q[32], vec4 s, vec4 s2, out float v[32]) {
    precise float dl0 = s.x * s2.x, dl1 = s.x * s2.y;
    [[unroll]] for (uint k = 0; k < 16u; k++) {
        precise float t0 = dl0 * (q[k] - 4.0), t1 = dl1 * (q[k + 16u] - 4.0);
        v[k] = t0;
        v[k + 16u] = t1;
    }
}

#elif defined(WTYPE_q4_k) || defined(WTYPE_q5_k)
#define KQUANT 1
#if defined(WTYPE_q4_k)
const uint GROUP_UNITS = 8u, GROUP_TEXELS = 9u, NH = 1u;
const uint QS_TEXEL = 1u;
#else
const uint GROUP_UNITS = 8u, GROUP_TEXELS = 11u, NH = 3u;
const uint QS_TEXEL = 3u;
#endif
void group_load(uint gb, out uvec4 h[NH]) {
    [[unroll]] for (uint k = 0; k < NH; k++) h[k] = wt(gb + k); /* d, dmin, scales (Q5_K: qh) */
}
/* Scale and min of sub-block u (0..7), 6 bits each, packed in 12 bytes
 * (bytes 4..15 of the first texel). */
void q4k_scale_min(uvec4 h, uint u, out float sc, out float mn) {
    if (u < 4u) {
        sc = float(tbyte(h, 4u + u) & 63u);
        mn = float(tbyte(h, 8u + u) & 63u);
    } else {
        sc = float((tbyte(h, 8u + u) & 15u) | ((tbyte(h, u) >> 6) << 4));
        mn = float((tbyte(h, 8u + u) >> 4) | ((tbyte(h, 4u + u) >> 6) << 4));
    }
}
/* Unit u = 2p + k holds values 64p + 32k + l: nibble k of qs[32p + l]
 * (Q5_K: fifth bit 2p + k of qh[l]). */
void unit_decode(uint gb, uvec4 h[NH], uint u, out float q[32], out vec4 s, out vec4 s2) {
    float sc, mn;
    q4k_scale_min(h[0], u, sc, mn);
    s = vec4(half_lo(h[0].x), half_hi(h[0].x), sc, mn);
    s2 = vec4(0.0);
    uint p = u >> 1, sh = 4u * (u & 1u);
    uvec4 a = wt(gb + QS_TEXEL + 2u * p), b = wt(gb + QS_TEXEL + 1u + 2u * p);
#if defined(WTYPE_q5_k)
    uint hs = 2u * p + (u & 1u);
#endif
    [[unroll]] for (uint k = 0; k < 16u; k++) {
        uint v0 = (tbyte(a, k) >> sh) & 15u, v1 = (tbyte(b, k) >> sh) & 15u;
#if defined(WTYPE_q5_k)
        v0 |= ((tbyte(h[1], k) >> hs) & 1u) << 4;
        v1 |= ((tbyte(h[2], k) >> hs) & 1u) << 4;
#endif
        q[k] = float(v0);
        q[k + 16u] = float(v1);
    }
}
void unit_kdot(float q[32], vec4 s, vec4 s2, float x[32], vec4 xm, vec2 xs, inout int isum, inout int summs) {
    isum += int(s.z) * int(dot32(q, x));
    summs += int(s.w) * (int(xm.y) + int(xm.z));
}
float group_finish(vec4 s, float xd, int isum, int summs) {
    precise float r = (s.x * xd) * float(isum) - (s.y * xd) * float(summs);
    return r;
}
void unit_dequant_q(float q[32], vec4 s, vec4 s2, out float v[32]) {
    precise float dl = s.x * s.z, ml = s.y * s.w;
    [[unroll]] for (uint k = 0; k < 32u; k++) {
        precise float t = dl * q[k] - ml;
        v[k] = t;
    }
}

#elif defined(WTYPE_q6_k)
#define KQUANT 1
const uint GROUP_UNITS = 8u, GROUP_TEXELS = 14u, NH = 2u;
void group_load(uint gb, out uvec4 h[NH]) {
    h[0] = wt(gb + 12u); /* int8 scales[16] */
    h[1] = wt(gb + 13u); /* d */
}
/* Unit u = 4c + k holds values 128c + 32k + l: low 4 bits are nibble
 * (k >> 1) of ql[64c + 32(k & 1) + l], high 2 bits are bits 2k of
 * qh[32c + l]; sub-blocks 8c + 2k (+1) have int8 scales. */
void unit_decode(uint gb, uvec4 h[NH], uint u, out float q[32], out vec4 s, out vec4 s2) {
    uint c = u >> 2, k4 = u & 3u;
    s = vec4(half_lo(h[1].x), 0.0, 0.0, 0.0);
    uint sb = 8u * c + 2u * k4;
    s2 = vec4(float(tsbyte(h[0], sb)), float(tsbyte(h[0], sb + 1u)), 0.0, 0.0);
    uint lt = 4u * c + 2u * (k4 & 1u), sh = 4u * (k4 >> 1);
    uvec4 la = wt(gb + lt), lb = wt(gb + lt + 1u);
    uvec4 ha = wt(gb + 8u + 2u * c), hb = wt(gb + 9u + 2u * c);
    [[unroll]] for (uint k = 0; k < 16u; k++) {
        uint v0 = ((tbyte(la, k) >> sh) & 15u) | (((tbyte(ha, k) >> (2u * k4)) & 3u) << 4);
        uint v1 = ((tbyte(lb, k) >> sh) & 15u) | (((tbyte(hb, k) >> (2u * k4)) & 3u) << 4);
        q[k] = float(v0); /* q - 32 */
        q[k + 16u] = float(v1);
    }
}
void unit_kdot(float q[32], vec4 s, vec4 s2, float x[32], vec4 xm, vec2 xs, inout int isum, inout int summs) {
    float lo, hi;
    dot16x2(q, x, lo, hi);
    isum += int(s2.x) * int(lo - 32.0 * xs.x) + int(s2.y) * int(hi - 32.0 * xs.y);
}
float group_finish(vec4 s, float xd, int isum, int summs) {
    precise float r = (s.x * xd) * float(isum);
    return r;
}
void unit_dequant_q(float q[32], vec4 s, vec4 s2, out float v[32]) {
    precise float dl0 = s.x * s2.x, dl1 = s.x * s2.y;
    [[unroll]] for (uint k = 0; k < 16u; k++) {
        precise float t0 = dl0 * (q[k] - 32.0), t1 = dl1 * (q[k + 16u] - 32.0);
        v[k] = t0;
        v[k + 16u] = t1;
    }
}

#elif defined(WTYPE_f32) || defined(WTYPE_f16) || defined(WTYPE_bf16)
#define FLOAT_WEIGHTS 1
const uint GROUP_UNITS = 1u, NH = 1u;
#if defined(WTYPE_f32)
const uint GROUP_TEXELS = 8u;
#else
const uint GROUP_TEXELS = 4u;
#endif
void group_load(uint gb, out uvec4 h[NH]) { h[0] = uvec4(0u); }
void unit_decode(uint gb, uvec4 h[NH], uint u, out float q[32], out vec4 s, out vec4 s2) {
    s = vec4(0.0);
    s2 = vec4(0.0);
    [[unroll]] for (uint t = 0; t < GROUP_TEXELS; t++) {
        uvec4 v = wt(gb + t);
        [[unroll]] for (uint w = 0; w < 4u; w++) {
#if defined(WTYPE_f32)
            q[4u * t + w] = uintBitsToFloat(v[w]);
#elif defined(WTYPE_f16)
            vec2 hv = unpackHalf2x16(v[w]);
            q[8u * t + 2u * w] = hv.x;
            q[8u * t + 2u * w + 1u] = hv.y;
#else
            q[8u * t + 2u * w] = uintBitsToFloat(v[w] << 16);
            q[8u * t + 2u * w + 1u] = uintBitsToFloat(v[w] & 0xffff0000u);
#endif
        }
    }
}
float unit_combine(float q[32], vec4 s, vec4 s2, float x[32], vec4 xm, vec2 xs) { return dot32(q, x); }
void unit_dequant_q(float q[32], vec4 s, vec4 s2, out float v[32]) { v = q; }
#else
#error "define WTYPE_<type>"
#endif

/* Activations in XQ (quantize_act.comp): per token and unit, quantized
 * types hold 32 int8 in 2 texels and the scales in a third; float types
 * 32 floats in 8 texels and a ninth (unused) for the scales. */
#ifdef FLOAT_WEIGHTS
const uint XQ_TEXELS = 9u;
#else
const uint XQ_TEXELS = 3u;
#endif

void unit_dequant(uint gb, uint i, out float v[32]) {
    uvec4 h[NH];
    group_load(gb, h);
    float q[32];
    vec4 s, s2;
    unit_decode(gb, h, i, q, s, s2);
    unit_dequant_q(q, s, s2, v);
}
