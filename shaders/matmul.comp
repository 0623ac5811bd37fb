#version 450
#extension GL_GOOGLE_include_directive : require
#extension GL_EXT_control_flow_attributes : require
/*
 * matmul.comp - out[t][r] = dot(W row r, x[t]) for a chunk of W's rows.
 *
 * x was converted by quantize_act.comp into XQ (the weight type's
 * activation type, per unit of 32 values). A group of lanes computes R
 * rows for TN tokens (matrix x vector: TN = 1, R = 8 on a CPU device and
 * 1 or 2 on a GPU, vk_mv_rows): each lane takes
 * whole weight groups (lane, lane + NLANES, ...), reads a group's shared
 * texels once per row, and for each of its units loads the TN tokens'
 * activations once and reuses them for the R rows. Texel reads are what
 * costs most on a CPU device (lavapipe) and what a GPU's caches like:
 * the layout keeps them few. The lanes' partial sums meet in a reduction.
 */
#include "lanes.glsl"
#include "bindings.glsl"
#include "quant.glsl"

layout(constant_id = 1) const uint R = 8u;  /* weight rows per group */
layout(constant_id = 2) const uint TN = 1u; /* tokens per group */

layout(push_constant) uniform Params {
    uint rows;       /* rows of this chunk */
    uint n_tok;
    uint units;      /* units per row (and per XQ token); a multiple of GROUP_UNITS */
    uint row_texels;
    uint out_off;    /* B offset of out[0][first row of the chunk] */
    uint out_stride; /* floats from one token's outputs to the next */
} p;

void load_x(uint t, uint u, out float x[32], out vec4 xm, out vec2 xs) {
    const uint b = (t * p.units + u) * XQ_TEXELS;
#ifdef FLOAT_WEIGHTS
    [[unroll]] for (uint j = 0; j < 8u; j++) {
        vec4 v = uintBitsToFloat(texelFetch(XQ, int(b + j)));
        x[4u * j] = v.x;
        x[4u * j + 1u] = v.y;
        x[4u * j + 2u] = v.z;
        x[4u * j + 3u] = v.w;
    }
    xm = vec4(0.0);
    xs = vec2(0.0);
#else
    const uvec4 a = texelFetch(XQ, int(b)), c = texelFetch(XQ, int(b + 1u));
    [[unroll]] for (uint k = 0; k < 16u; k++) {
        x[k] = float(tsbyte(a, k));
        x[k + 16u] = float(tsbyte(c, k));
    }
    xm = uintBitsToFloat(texelFetch(XQ, int(b + 2u)));
    float s0 = 0.0, s1 = 0.0;
    [[unroll]] for (uint k = 0; k < 16u; k++) {
        s0 += x[k];
        s1 += x[k + 16u];
    }
    xs = vec2(s0, s1);
#endif
}

void main() {
    const uint gr = (p.rows + R - 1u) / R, gt = (p.n_tok + TN - 1u) / TN;
    const uint n_groups = p.units / GROUP_UNITS;
    for (uint g = GROUP; g < gr * gt; g += NGROUPS) {
        const uint r0 = (g % gr) * R, t0 = (g / gr) * TN;
        float acc[R * TN];
        [[unroll]] for (uint i = 0; i < R * TN; i++) acc[i] = 0.0;
        /* Every lane runs the same number of iterations (a lane past the
         * row's end repeats the last group and drops it): uniform control
         * flow is cheaper on SIMD devices. */
        for (uint base = 0; base < n_groups; base += NLANES) {
            const uint gi = min(base + LANE, n_groups - 1u);
            const bool live = base + LANE < n_groups;
            /* Rows and tokens past the end are clamped to the last one (the
             * work is done and dropped): no branches in the inner loops. */
            uvec4 h[R][NH];
            [[unroll]] for (uint r = 0; r < R; r++) group_load(min(r0 + r, p.rows - 1u) * p.row_texels + gi * GROUP_TEXELS, h[r]);
#ifdef KQUANT
            int isum[R * TN], summs[R * TN];
            [[unroll]] for (uint i = 0; i < R * TN; i++) {
                isum[i] = 0;
                summs[i] = 0;
            }
            vec4 sd[R];
            float xd[TN];
#endif
            for (uint ui = 0; ui < GROUP_UNITS; ui++) {
                const uint u = gi * GROUP_UNITS + ui;
                float xv[TN][32];
                vec4 xm[TN];
                vec2 xs[TN];
                [[unroll]] for (uint t = 0; t < TN; t++) load_x(min(t0 + t, p.n_tok - 1u), u, xv[t], xm[t], xs[t]);
                [[unroll]] for (uint r = 0; r < R; r++) {
                    float q[32];
                    vec4 s, s2;
                    unit_decode(min(r0 + r, p.rows - 1u) * p.row_texels + gi * GROUP_TEXELS, h[r], ui, q, s, s2);
#ifdef KQUANT
                    sd[r] = s;
#endif
                    [[unroll]] for (uint t = 0; t < TN; t++) {
#ifdef KQUANT
                        unit_kdot(q, s, s2, xv[t], xm[t], xs[t], isum[r * TN + t], summs[r * TN + t]);
                        xd[t] = xm[t].x;
#else
                        const float c = unit_combine(q, s, s2, xv[t], xm[t], xs[t]);
                        acc[r * TN + t] += live ? c : 0.0;
#endif
                    }
                }
            }
#ifdef KQUANT
            [[unroll]] for (uint r = 0; r < R; r++) {
                [[unroll]] for (uint t = 0; t < TN; t++) {
                    const float c = group_finish(sd[r], xd[t], isum[r * TN + t], summs[r * TN + t]);
                    acc[r * TN + t] += live ? c : 0.0;
                }
            }
#endif
        }
        [[unroll]] for (uint r = 0; r < R; r++) {
            [[unroll]] for (uint t = 0; t < TN; t++) {
                float v = lanes_sum(acc[r * TN + t]);
                if (LANE == 0u && r0 + r < p.rows && t0 + t < p.n_tok) B[p.out_off + (t0 + t) * p.out_stride + r0 + r] = v;
            }
        }
    }
}
