#version 450
#extension GL_GOOGLE_include_directive : require
/* elementwise.comp - the small ops, by mode:
 *   0 silu_mul  A[a + i] = silu(A[a + i]) * B[b + i]      i < n
 *   1 add       A[a + i] += B[b + i]                      i < n
 *   2 add_rows  A[a + t * cols + c] += w[c] (1-D F32 weight) i < n = rows * cols */
#include "bindings.glsl"
layout(local_size_x_id = 0) in;

layout(push_constant) uniform Params {
    uint mode;
    uint n;
    uint a_off;
    uint b_off;
    uint cols;
} p;

void main() {
    for (uint i = gl_GlobalInvocationID.x; i < p.n; i += gl_NumWorkGroups.x * gl_WorkGroupSize.x) {
        if (p.mode == 0u) {
            const float g = A[p.a_off + i];
            precise float y = g / (1.0 + exp(-g)) * B[p.b_off + i];
            A[p.a_off + i] = y;
        } else if (p.mode == 1u) {
            A[p.a_off + i] += B[p.b_off + i];
        } else {
            A[p.a_off + i] += w_f32(i % p.cols);
        }
    }
}
