#version 450
#extension GL_GOOGLE_include_directive : require
#extension GL_EXT_control_flow_attributes : require
/*
 * matmul.comp - out[t][r] = dot(W row r, x[t]) for a chunk of W's rows.
 *
 * x was converted by quantize_act.comp into XQ: per token and unit of 32
 * values, 8 texels of values and 1 of scales. A group of lanes computes R
 * rows for TN tokens: each lane walks the row's units (lane, lane +
 * NLANES, ...), keeps the unit's activations in registers and reuses them
 * for the R rows (matrix x vector: TN = 1, R = 8), or keeps a row's
 * decoded unit and reuses it for TN tokens (matrix x matrix); the lanes'
 * partial sums meet in a reduction.
 */
#include "lanes.glsl"
#include "bindings.glsl"
#include "quant.glsl"

layout(constant_id = 1) const uint R = 8u;  /* weight rows per group */
layout(constant_id = 2) const uint TN = 1u; /* tokens per group */

layout(push_constant) uniform Params {
    uint rows;       /* rows of this chunk */
    uint n_tok;
    uint units;      /* units per row (and per XQ token) */
    uint row_texels;
    uint out_off;    /* B offset of out[0][first row of the chunk] */
    uint out_stride; /* floats from one token's outputs to the next */
} p;

void load_x(uint t, uint u, out float x[32], out vec4 xm) {
    uint b = (t * p.units + u) * 9u;
    [[unroll]] for (uint j = 0; j < 8u; j++) {
        vec4 v = uintBitsToFloat(texelFetch(XQ, int(b + j)));
        x[4u * j] = v.x;
        x[4u * j + 1u] = v.y;
        x[4u * j + 2u] = v.z;
        x[4u * j + 3u] = v.w;
    }
    xm = uintBitsToFloat(texelFetch(XQ, int(b + 8u)));
}

void main() {
    const uint gr = (p.rows + R - 1u) / R, gt = (p.n_tok + TN - 1u) / TN;
    for (uint g = GROUP; g < gr * gt; g += NGROUPS) {
        const uint r0 = (g % gr) * R, t0 = (g / gr) * TN;
        float acc[R * TN];
        [[unroll]] for (uint i = 0; i < R * TN; i++) acc[i] = 0.0;
        for (uint u = LANE; u < p.units; u += NLANES) {
            const uint gi = u / GROUP_UNITS, ui = u % GROUP_UNITS;
            if (TN == 1u) {
                float x[32];
                vec4 xm;
                load_x(t0, u, x, xm);
                [[unroll]] for (uint r = 0; r < R; r++) {
                    if (r0 + r < p.rows) {
                        float q[32];
                        vec4 s, s2;
                        unit_decode((r0 + r) * p.row_texels + gi * GROUP_TEXELS, ui, q, s, s2);
                        acc[r] += unit_combine(q, s, s2, x, xm);
                    }
                }
            } else {
                [[unroll]] for (uint r = 0; r < R; r++) {
                    if (r0 + r < p.rows) {
                        float q[32];
                        vec4 s, s2;
                        unit_decode((r0 + r) * p.row_texels + gi * GROUP_TEXELS, ui, q, s, s2);
                        [[unroll]] for (uint t = 0; t < TN; t++) {
                            if (t0 + t < p.n_tok) {
                                float x[32];
                                vec4 xm;
                                load_x(t0 + t, u, x, xm);
                                acc[r * TN + t] += unit_combine(q, s, s2, x, xm);
                            }
                        }
                    }
                }
            }
        }
        [[unroll]] for (uint r = 0; r < R; r++) {
            [[unroll]] for (uint t = 0; t < TN; t++) {
                float v = lanes_sum(acc[r * TN + t]);
                if (LANE == 0u && r0 + r < p.rows && t0 + t < p.n_tok) B[p.out_off + (t0 + t) * p.out_stride + r0 + r] = v;
            }
        }
    }
}
