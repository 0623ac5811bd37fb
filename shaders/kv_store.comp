#version 450
#extension GL_GOOGLE_include_directive : require
/* kv_store.comp - n rows of K (or V) from A into the layer's cache
 * (KVW): per position and head hd values padded to hd_pad with zeros, as
 * F16 (two per word, rounded to nearest even as the CPU does) or F32. */
#include "bindings.glsl"
layout(local_size_x_id = 0) in;

layout(push_constant) uniform Params {
    uint n;
    uint heads;
    uint hd;
    uint hd_pad;  /* a multiple of 4 */
    uint f16;
    uint src_off; /* A offset of row 0 */
    uint dst_off; /* KVW word offset of row 0's first head */
} p;

float src(uint t, uint h, uint d) { return d < p.hd ? A[p.src_off + (t * p.heads + h) * p.hd + d] : 0.0; }

void main() {
    const uint wph = p.f16 != 0u ? p.hd_pad / 2u : p.hd_pad; /* words per head */
    const uint total = p.n * p.heads * wph;
    for (uint i = gl_GlobalInvocationID.x; i < total; i += gl_NumWorkGroups.x * gl_WorkGroupSize.x) {
        const uint w = i % wph, th = i / wph, h = th % p.heads, t = th / p.heads;
        uint word;
        if (p.f16 != 0u) word = f32_to_f16(src(t, h, 2u * w)) | (f32_to_f16(src(t, h, 2u * w + 1u)) << 16);
        else word = floatBitsToUint(src(t, h, w));
        KVW[p.dst_off + i] = word;
    }
}
