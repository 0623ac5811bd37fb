#version 450
#extension GL_GOOGLE_include_directive : require
#extension GL_EXT_control_flow_attributes : require
/* get_rows.comp - out[t] = row ids[t] of W as floats, for the tokens whose
 * row lies in this chunk of W (the host writes 0xffffffff for the others). */
#include "bindings.glsl"
#include "quant.glsl"
layout(local_size_x_id = 0) in;

layout(push_constant) uniform Params {
    uint n_tok;
    uint cols;
    uint units;      /* units per row */
    uint row_texels;
    uint ids_off;    /* U offset of the chunk-relative row ids */
    uint out_off;    /* B offset of out[0] */
} p;

void main() {
    const uint total = p.n_tok * p.units;
    for (uint i = gl_GlobalInvocationID.x; i < total; i += gl_NumWorkGroups.x * gl_WorkGroupSize.x) {
        const uint t = i / p.units, u = i % p.units;
        const uint row = U[p.ids_off + t];
        if (row == 0xffffffffu) continue;
        float v[32];
        unit_dequant(row * p.row_texels + (u / GROUP_UNITS) * GROUP_TEXELS, u % GROUP_UNITS, v);
        const uint c0 = u * 32u;
        [[unroll]] for (uint k = 0; k < 32u; k++) {
            if (c0 + k < p.cols) B[p.out_off + t * p.cols + c0 + k] = v[k];
        }
    }
}
