#version 450
#extension GL_GOOGLE_include_directive : require
/* rope.comp - rotate the first n_rot dims of every head of n rows. The
 * host writes cos/sin per (token, pair) into U with the CPU's formulas, so
 * the rotation is the CPU's bit for bit. Normal layout pairs (2i, 2i+1),
 * NeoX layout pairs (i, i + n_rot/2). */
#include "bindings.glsl"
layout(local_size_x_id = 0) in;

layout(push_constant) uniform Params {
    uint n;
    uint n_heads;
    uint head_dim;
    uint n_rot;
    uint neox;
    uint x_off;     /* A offset of x[0] */
    uint table_off; /* U offset of (cos, sin) for token 0, pair 0 */
} p;

void main() {
    const uint half_ = p.n_rot / 2u;
    const uint total = p.n * p.n_heads * half_;
    for (uint i = gl_GlobalInvocationID.x; i < total; i += gl_NumWorkGroups.x * gl_WorkGroupSize.x) {
        const uint pr = i % half_, th = i / half_, t = th / p.n_heads;
        const uint base = p.x_off + th * p.head_dim;
        const uint a = p.neox != 0u ? pr : 2u * pr, b = p.neox != 0u ? pr + half_ : 2u * pr + 1u;
        const float cs = uintBitsToFloat(U[p.table_off + 2u * (t * half_ + pr)]);
        const float sn = uintBitsToFloat(U[p.table_off + 2u * (t * half_ + pr) + 1u]);
        const float x0 = A[base + a], x1 = A[base + b];
        precise float y0 = x0 * cs - x1 * sn;
        precise float y1 = x0 * sn + x1 * cs;
        A[base + a] = y0;
        A[base + b] = y1;
    }
}
