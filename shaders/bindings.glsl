/*
 * bindings.glsl - the descriptor sets every infer shader sees (one pipeline
 * layout for all of them; a shader declares only what it uses).
 *
 * set 0, per context:
 *   0, 1, 2  A, B, C  windows onto the activation arena (dynamic storage
 *            buffers: each op binds the window its offsets fall in, and
 *            passes offsets in floats relative to that window)
 *   3        U        host-written upload area (token ids, RoPE cos/sin)
 *   4        XQW      activations converted for a matmul (written)
 *   5        XQ       the same, read as RGBA32UI texels
 * set 1, per weight (or weight chunk):
 *   0        W        the weight in its device layout, RGBA32UI texels
 * set 2, per layer:
 *   0, 1     KV_K, KV_V  the layer's K and V cache as float vec4 texels
 *                        (RGBA16F for an F16 cache, RGBA32F for F32)
 *   2        KVW      the layer's cache for writes (dynamic storage buffer)
 */
layout(set = 0, binding = 0, std430) buffer WinA { float A[]; };
layout(set = 0, binding = 1, std430) buffer WinB { float B[]; };
layout(set = 0, binding = 2, std430) buffer WinC { float C[]; };
layout(set = 0, binding = 3, std430) readonly buffer Upload { uint U[]; };
layout(set = 0, binding = 4, std430) writeonly buffer XqOut { uint XQW[]; };
layout(set = 0, binding = 5) uniform usamplerBuffer XQ;
layout(set = 1, binding = 0) uniform usamplerBuffer W;
layout(set = 2, binding = 0) uniform samplerBuffer KV_K;
layout(set = 2, binding = 1) uniform samplerBuffer KV_V;
layout(set = 2, binding = 2, std430) buffer KvOut { uint KVW[]; };

uvec4 wt(uint i) { return texelFetch(W, int(i)); }

/* Element i of a 1-D F32 weight stored as plain floats (norms, biases). */
float w_f32(uint i) { return uintBitsToFloat(wt(i >> 2u)[i & 3u]); }

#define NEG_INF uintBitsToFloat(0xff800000u)

/* float -> IEEE half bits, round to nearest even in every range, as the
 * CPU reference (kernels/ref/fp16.c) does: packHalf2x16 leaves the rounding
 * to the implementation, and the KV cache must match the CPU's bit for bit. */
uint shift_round_even(uint m, uint s) {
    uint q = m >> s;
    uint rem = m & ((1u << s) - 1u);
    uint half_ = 1u << (s - 1u);
    if (rem > half_ || (rem == half_ && (q & 1u) != 0u)) q++;
    return q;
}

uint f32_to_f16(float f) {
    uint x = floatBitsToUint(f);
    uint sign = (x >> 16) & 0x8000u;
    x &= 0x7fffffffu;
    if (x > 0x7f800000u) return sign | 0x7e00u | ((x >> 13) & 0x3ffu);
    if (x >= 0x477ff000u) return sign | 0x7c00u;
    if (x >= 0x38800000u) return sign | ((((x >> 23) - 112u) << 10) + shift_round_even(x & 0x7fffffu, 13u));
    uint e = x >> 23;
    if (e < 102u) return sign;
    return sign | shift_round_even((x & 0x7fffffu) | 0x800000u, 126u - e);
}

float f16_bits_to_f32(uint h) { return unpackHalf2x16(h & 0xffffu).x; }

/* The value an F16 store and load gives back. */
float round_f16(float f) { return f16_bits_to_f32(f32_to_f16(f)); }

float round_bf16(float f) {
    uint x = floatBitsToUint(f);
    if ((x & 0x7fffffffu) > 0x7f800000u) return uintBitsToFloat(((x >> 16) | 0x40u) << 16);
    return uintBitsToFloat(((x + 0x7fffu + ((x >> 16) & 1u)) >> 16) << 16);
}
