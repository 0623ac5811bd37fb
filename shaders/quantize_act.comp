#version 450
#extension GL_GOOGLE_include_directive : require
#extension GL_EXT_control_flow_attributes : require
/*
 * quantize_act.comp - activations (rows of A) to the form a matmul reads
 * (XQW), per token and unit of 32 values, computed exactly as the CPU
 * reference computes the weight type's activation type:
 *   F32: x | F16, BF16: x rounded to that type
 *     9 texels: 32 floats, then one unused
 *   Q8_0: integers q, scale d (f16-rounded)          xm = (d, 0, 0, 0)
 *   Q8_1: q, d, and s = f16(d * sum q)               xm = (d, s, 0, 0)
 *   Q8_K: per 256 values q and d (f32); per unit the sums of q over its
 *         two halves of 16                           xm = (d, sum0, sum1, 0)
 *     3 texels: 32 int8 (value k in byte k), then xm as floats
 * Units past the row (padding) are zeros.
 */
#include "bindings.glsl"
layout(local_size_x_id = 0) in;

layout(push_constant) uniform Params {
    uint n_tok;
    uint cols;
    uint units;    /* units per token in XQ */
    uint mode;     /* 0 F32, 1 F16, 2 BF16, 3 Q8_0, 4 Q8_1, 5 Q8_K */
    uint x_off;    /* A offset of x[0] */
    uint x_stride; /* floats between tokens in A */
} p;

float xval(uint t, uint c) { return c < p.cols ? A[p.x_off + t * p.x_stride + c] : 0.0; }

/* Unit u of token t: word k of its record (36 words for the float
 * modes, 12 for the quantized ones). */
void put(uint t, uint u, uint k, uint w) { XQW[(t * p.units + u) * (p.mode >= 3u ? 12u : 36u) + k] = w; }

/* roundf: half away from zero, clamped to int8 (llama.cpp's Q8_0/Q8_1). */
float round_i8(float v) {
    if (isnan(v)) return 0.0;
    float t = trunc(v);
    if (abs(v - t) >= 0.5) t += sign(v);
    return clamp(t, -128.0, 127.0);
}

/* ggml's nearest_int: round half to even via the 1.5 * 2^23 trick. */
int nearest_int(float v) {
    if (isnan(v)) return 0;
    precise float t = clamp(v, -4194303.0, 4194303.0) + 12582912.0;
    return (floatBitsToInt(t) & 0x007fffff) - 0x00400000;
}

/* The unit's 32 values (zeros past the row). */
void load_unit(uint t, uint u, out float x[32]) {
    [[unroll]] for (uint k = 0; k < 32u; k++) x[k] = xval(t, 32u * u + k);
}

void unit_q8(uint t, uint u, const float x[32], bool with_sum) {
    float amax = 0.0;
    [[unroll]] for (uint k = 0; k < 32u; k++) amax = max(amax, abs(x[k]));
    const float d = amax / 127.0;
    const float id = d != 0.0 ? 1.0 / d : 0.0;
    float sum = 0.0;
    [[unroll]] for (uint w = 0; w < 8u; w++) {
        uint word = 0u;
        [[unroll]] for (uint b = 0; b < 4u; b++) {
            precise float v = x[4u * w + b] * id;
            float q = round_i8(v);
            sum += q;
            word |= (uint(int(q)) & 0xffu) << (8u * b);
        }
        put(t, u, w, word);
    }
    precise float s = sum * d;
    put(t, u, 8u, floatBitsToUint(round_f16(d)));
    put(t, u, 9u, floatBitsToUint(with_sum ? round_f16(s) : 0.0));
    put(t, u, 10u, 0u);
    put(t, u, 11u, 0u);
}

/* Q8_K: the eight units of a super-block are eight neighbouring
 * invocations of one workgroup (units per token is a multiple of 8 and the
 * workgroup size a multiple of 8). Each finds its unit's largest |x| (the
 * first one, with its sign); the super-block's is the first unit's with
 * the largest, which is the value a scan of all 256 in order finds. */
shared float sb_amax[gl_WorkGroupSize.x];
shared float sb_mx[gl_WorkGroupSize.x];

void unit_q8k(uint t, uint u, const float x[32], uint lid, bool live) {
    float amax = 0.0, mx = 0.0;
    [[unroll]] for (uint k = 0; k < 32u; k++) {
        if (abs(x[k]) > amax) {
            amax = abs(x[k]);
            mx = x[k];
        }
    }
    sb_amax[lid] = amax;
    sb_mx[lid] = mx;
    barrier();
    const uint first = lid & ~7u;
    amax = 0.0;
    mx = 0.0;
    for (uint j = first; j < first + 8u; j++) {
        if (sb_amax[j] > amax) {
            amax = sb_amax[j];
            mx = sb_mx[j];
        }
    }
    if (!live) return;
    const float iscale = amax != 0.0 ? -127.0 / mx : 0.0;
    const float d = amax != 0.0 ? 1.0 / iscale : 0.0;
    float sum0 = 0.0, sum1 = 0.0;
    [[unroll]] for (uint w = 0; w < 8u; w++) {
        uint word = 0u;
        [[unroll]] for (uint b = 0; b < 4u; b++) {
            precise float v = iscale * x[4u * w + b];
            int q = clamp(nearest_int(v), -128, 127);
            if (w < 4u) sum0 += float(q); else sum1 += float(q);
            word |= (uint(q) & 0xffu) << (8u * b);
        }
        put(t, u, w, word);
    }
    put(t, u, 8u, floatBitsToUint(d));
    put(t, u, 9u, floatBitsToUint(sum0));
    put(t, u, 10u, floatBitsToUint(sum1));
    put(t, u, 11u, 0u);
}

/* One invocation per unit. The loop runs the same number of times in every
 * invocation of a workgroup (Q8_K's barrier needs all of them). */
void main() {
    const uint total = p.n_tok * p.units, wg = gl_WorkGroupSize.x, lid = gl_LocalInvocationID.x;
    for (uint base = gl_WorkGroupID.x * wg; base < total; base += gl_NumWorkGroups.x * wg) {
        const uint i = min(base + lid, total - 1u);
        const uint t = i / p.units, u = i % p.units;
        const bool live = base + lid < total;
        float x[32];
        load_unit(t, u, x);
        if (p.mode == 5u) {
            unit_q8k(t, u, x, lid, live);
            barrier(); /* the next round's maxima overwrite these */
        } else if (live && p.mode >= 3u) {
            unit_q8(t, u, x, p.mode == 4u);
        } else if (live) {
            [[unroll]] for (uint k = 0; k < 32u; k++) {
                float v = x[k];
                if (p.mode == 1u) v = round_f16(v);
                else if (p.mode == 2u) v = round_bf16(v);
                put(t, u, k, floatBitsToUint(v));
            }
            for (uint k = 32u; k < 36u; k++) put(t, u, k, 0u);
        }
    }
}
