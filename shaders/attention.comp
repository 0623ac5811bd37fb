#version 450
#extension GL_GOOGLE_include_directive : require
/*
 * attention.comp - causal attention of n query rows (positions pos0...)
 * over the cached keys, one group of lanes per (token, head), with an
 * online softmax: each lane walks keys lane, lane + NLANES, ... keeping a
 * running maximum m, sum l and weighted sum of V; the lanes' states are
 * merged at the end (rescaled to the common maximum). Nothing is sized by
 * the context length. Head sizes: q is held in registers up to QMAX
 * values (re-read from A past that) and the output is produced CH values
 * per pass, so any head size works.
 *
 * With an F16 cache q is rounded to F16 first, as the CPU does.
 */
#include "lanes.glsl"
#include "bindings.glsl"

layout(constant_id = 1) const uint QMAX = 128u; /* multiple of 4 */
layout(constant_id = 2) const uint CH = 128u;   /* multiple of 4 */

layout(push_constant) uniform Params {
    uint n;
    uint pos0;
    uint n_head;
    uint n_head_kv;
    uint hdk, hdv;       /* head sizes */
    uint hdk4, hdv4;     /* padded head sizes in texels (4 values) */
    uint q_off;          /* A offset of q[0] */
    uint out_off;        /* B offset of out[0] */
    float scale;         /* 1/sqrt(hdk) */
    uint f16;
} p;

vec4 q_from_a(uint qb, uint d4) {
    vec4 v = vec4(0.0);
    for (uint c = 0; c < 4u; c++) {
        uint d = 4u * d4 + c;
        if (d < p.hdk) v[c] = p.f16 != 0u ? round_f16(A[qb + d]) : A[qb + d];
    }
    return v;
}

void main() {
    const uint group = p.n_head / p.n_head_kv;
    for (uint g = GROUP; g < p.n * p.n_head; g += NGROUPS) {
        const uint t = g / p.n_head, h = g % p.n_head, kvh = h / group;
        const uint n_kv = p.pos0 + t + 1u;
        const uint qb = p.q_off + g * p.hdk;
        vec4 q4[QMAX / 4u];
        for (uint d4 = 0; d4 < QMAX / 4u; d4++) q4[d4] = d4 < p.hdk4 ? q_from_a(qb, d4) : vec4(0.0);

        for (uint c0 = 0; c0 < p.hdv; c0 += CH) {
            float m = NEG_INF, l = 0.0;
            vec4 acc[CH / 4u];
            for (uint d4 = 0; d4 < CH / 4u; d4++) acc[d4] = vec4(0.0);
            const uint nv4 = min(CH, p.hdv4 * 4u - c0) / 4u;
            for (uint j = LANE; j < n_kv; j += NLANES) {
                const uint kb = (j * p.n_head_kv + kvh) * p.hdk4;
                vec4 s4 = vec4(0.0);
                for (uint d4 = 0; d4 < p.hdk4; d4++) {
                    vec4 qv = d4 < QMAX / 4u ? q4[d4] : q_from_a(qb, d4);
                    s4 += qv * texelFetch(KV_K, int(kb + d4));
                }
                const float s = (s4.x + s4.y + s4.z + s4.w) * p.scale;
                const float mn = max(m, s);
                const float corr = exp(m - mn), pj = exp(s - mn);
                l = l * corr + pj;
                const uint vb = (j * p.n_head_kv + kvh) * p.hdv4 + c0 / 4u;
                for (uint d4 = 0; d4 < nv4; d4++) acc[d4] = acc[d4] * corr + pj * texelFetch(KV_V, int(vb + d4));
                m = mn;
            }
            const float mx = lanes_max(m);
            const float f = m == NEG_INF ? 0.0 : exp(m - mx);
            const float inv = 1.0 / lanes_sum(l * f);
            const uint ob = p.out_off + g * p.hdv + c0;
            for (uint d4 = 0; d4 < CH / 4u; d4++) {
                vec4 o;
                o.x = lanes_sum(acc[d4].x * f);
                o.y = lanes_sum(acc[d4].y * f);
                o.z = lanes_sum(acc[d4].z * f);
                o.w = lanes_sum(acc[d4].w * f);
                if (LANE == 0u) {
                    for (uint c = 0; c < 4u; c++) {
                        if (c0 + 4u * d4 + c < p.hdv) B[ob + 4u * d4 + c] = o[c] * inv;
                    }
                }
            }
        }
    }
}
