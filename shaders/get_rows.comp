#version 450
#extension GL_GOOGLE_include_directive : require
#extension GL_EXT_control_flow_attributes : require
/* get_rows.comp - out[t] = row ids[t] of W as floats, for the tokens whose
 * row lies in this chunk of W, rows [row0, row0 + rows); the others are
 * left to the dispatches of their chunks. */
#include "bindings.glsl"
#include "quant.glsl"
layout(local_size_x_id = 0) in;

layout(push_constant) uniform Params {
    uint n_tok;
    uint cols;
    uint units;      /* units per row */
    uint row_texels;
    uint ids_off;    /* U offset of the row ids (of the whole tensor) */
    uint out_off;    /* B offset of out[0] */
    uint row0;       /* this chunk's first row */
    uint rows;       /* and its row count */
} p;

void main() {
    const uint total = p.n_tok * p.units;
    for (uint i = gl_GlobalInvocationID.x; i < total; i += gl_NumWorkGroups.x * gl_WorkGroupSize.x) {
        const uint t = i / p.units, u = i % p.units;
        const uint id = U[p.ids_off + t];
        if (id < p.row0 || id - p.row0 >= p.rows) continue;
        const uint row = id - p.row0;
        float v[32];
        unit_dequant(row * p.row_texels + (u / GROUP_UNITS) * GROUP_TEXELS, u % GROUP_UNITS, v);
        const uint c0 = u * 32u;
        [[unroll]] for (uint k = 0; k < 32u; k++) {
            if (c0 + k < p.cols) B[p.out_off + t * p.cols + c0 + k] = v[k];
        }
    }
}
