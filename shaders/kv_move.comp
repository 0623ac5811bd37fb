#version 450
#extension GL_GOOGLE_include_directive : require
/* kv_move.comp - cached positions [src, src + n) of one layer move to dst,
 * keys re-rotated by the RoPE angle of (dst - src) (cos/sin in U, written
 * by the host as the CPU computes them) and rounded back to the cache
 * type; values are copied. The host keeps each dispatch's source and
 * destination ranges apart. part 0 moves K, part 1 moves V. With to_arena
 * the rows go, in the cache's layout, to the arena window A (read as
 * words) at dst_off instead, for the host to copy into place. */
#include "bindings.glsl"
layout(set = 0, binding = 0, std430) writeonly buffer WinAWords { uint AW[]; }; /* window A as words */
layout(local_size_x_id = 0) in;

layout(push_constant) uniform Params {
    uint n;
    uint src, dst;
    uint heads;
    uint hd, hd_pad;   /* K (part 0) or V (part 1) head sizes */
    uint n_rot;
    uint neox;
    uint f16;
    uint part;
    uint table_off;    /* U offset of (cos, sin) for the n_rot/2 pairs */
    uint dst_off;      /* KVW word offset of position dst, head 0 (to_arena: A's) */
    uint to_arena;
} p;

float elem(uint pos, uint h, uint d) {
    uint e = (pos * p.heads + h) * p.hd_pad + d;
    return p.part == 0u ? texelFetch(KV_K, int(e >> 2))[e & 3u] : texelFetch(KV_V, int(e >> 2))[e & 3u];
}

/* Element d of the head after rotation (the CPU's rope_head, one side). */
float moved(uint pos, uint h, uint d) {
    float x = elem(pos, h, d);
    if (p.part != 0u || d >= p.n_rot || d >= p.hd) return x;
    const uint half_ = p.n_rot / 2u;
    uint i, a, b;
    if (p.neox != 0u) {
        i = d < half_ ? d : d - half_;
        a = i;
        b = i + half_;
    } else {
        i = d / 2u;
        a = 2u * i;
        b = a + 1u;
    }
    const float cs = uintBitsToFloat(U[p.table_off + 2u * i]), sn = uintBitsToFloat(U[p.table_off + 2u * i + 1u]);
    const float x0 = elem(pos, h, a), x1 = elem(pos, h, b);
    precise float y0 = x0 * cs - x1 * sn;
    precise float y1 = x0 * sn + x1 * cs;
    return d == a ? y0 : y1;
}

void main() {
    const uint wph = p.f16 != 0u ? p.hd_pad / 2u : p.hd_pad;
    const uint total = p.n * p.heads * wph;
    for (uint i = gl_GlobalInvocationID.x; i < total; i += gl_NumWorkGroups.x * gl_WorkGroupSize.x) {
        const uint w = i % wph, th = i / wph, h = th % p.heads, k = th / p.heads;
        const uint pos = p.src + k;
        uint word;
        if (p.f16 != 0u) word = f32_to_f16(moved(pos, h, 2u * w)) | (f32_to_f16(moved(pos, h, 2u * w + 1u)) << 16);
        else word = floatBitsToUint(moved(pos, h, w));
        if (p.to_arena != 0u) AW[p.dst_off + i] = word;
        else KVW[p.dst_off + i] = word;
    }
}
