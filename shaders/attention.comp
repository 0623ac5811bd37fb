#version 450
#extension GL_GOOGLE_include_directive : require
/*
 * attention.comp - causal attention of n query rows (positions pos0...)
 * over the cached keys, one group of lanes per (token, head), nothing
 * sized by the context length.
 *
 * Online softmax: each lane walks keys lane, lane + NLANES, ... keeping a
 * running maximum m and a sum l rescaled whenever m grows; the lanes'
 * states merge at the end (rescaled to the common maximum).
 *   F32 cache: one pass, the weighted sum of V carried along and rescaled
 *     with l (the flash-attention form).
 *   F16 cache: the pass gives the maximum and the normaliser; a second
 *     streaming pass forms each weight exp(s - max) / sum rounded to F16
 *     and accumulates V: llama.cpp (and the CPU backend) multiply F16
 *     weights with the F16 cache, and this keeps the logits as close to
 *     theirs as the F32 path is.
 * With an F16 cache q is rounded to F16 first, as the CPU does. Head
 * sizes: q is held in registers up to QMAX values (re-read from A past
 * that) and the output is produced CH values per pass: any size works.
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

/* The query of the current (token, head), F16-rounded for an F16 cache. */
vec4 q4[QMAX / 4u];

float score(uint j, uint kvh, uint qb) {
    const uint kb = (j * p.n_head_kv + kvh) * p.hdk4;
    vec4 s4 = vec4(0.0);
    for (uint d4 = 0; d4 < p.hdk4; d4++) {
        vec4 qv = d4 < QMAX / 4u ? q4[d4] : q_from_a(qb, d4);
        s4 += qv * texelFetch(KV_K, int(kb + d4));
    }
    return (s4.x + s4.y + s4.z + s4.w) * p.scale;
}

void main() {
    const uint group = p.n_head / p.n_head_kv;
    for (uint g = GROUP; g < p.n * p.n_head; g += NGROUPS) {
        const uint t = g / p.n_head, h = g % p.n_head, kvh = h / group;
        const uint n_kv = p.pos0 + t + 1u;
        const uint qb = p.q_off + g * p.hdk;
        for (uint d4 = 0; d4 < QMAX / 4u; d4++) q4[d4] = d4 < p.hdk4 ? q_from_a(qb, d4) : vec4(0.0);

        /* F16 cache: the softmax's maximum and 1 / sum first. */
        float smax = 0.0, inv = 0.0;
        if (p.f16 != 0u) {
            float m = NEG_INF, l = 0.0;
            for (uint j = LANE; j < n_kv; j += NLANES) {
                const float s = score(j, kvh, qb), mn = max(m, s);
                l = l * exp(m - mn) + exp(s - mn);
                m = mn;
            }
            smax = lanes_max(m);
            inv = 1.0 / lanes_sum(m == NEG_INF ? 0.0 : l * exp(m - smax));
        }

        for (uint c0 = 0; c0 < p.hdv; c0 += CH) {
            float m = NEG_INF, l = 0.0;
            vec4 acc[CH / 4u];
            for (uint d4 = 0; d4 < CH / 4u; d4++) acc[d4] = vec4(0.0);
            const uint nv4 = min(CH, p.hdv4 * 4u - c0) / 4u;
            for (uint j = LANE; j < n_kv; j += NLANES) {
                const float s = score(j, kvh, qb);
                const uint vb = (j * p.n_head_kv + kvh) * p.hdv4 + c0 / 4u;
                if (p.f16 != 0u) {
                    precise float w = exp(s - smax) * inv;
                    const float wh = round_f16(w);
                    for (uint d4 = 0; d4 < nv4; d4++) acc[d4] += wh * texelFetch(KV_V, int(vb + d4));
                } else {
                    const float mn = max(m, s);
                    const float corr = exp(m - mn), pj = exp(s - mn);
                    l = l * corr + pj;
                    for (uint d4 = 0; d4 < nv4; d4++) acc[d4] = acc[d4] * corr + pj * texelFetch(KV_V, int(vb + d4));
                    m = mn;
                }
            }
            float f = 1.0, norm = 1.0;
            if (p.f16 == 0u) {
                const float mx = lanes_max(m);
                f = m == NEG_INF ? 0.0 : exp(m - mx);
                norm = 1.0 / lanes_sum(l * f);
            }
            const uint ob = p.out_off + g * p.hdv + c0;
            for (uint d4 = 0; d4 < CH / 4u; d4++) {
                vec4 o;
                o.x = lanes_sum(acc[d4].x * f);
                o.y = lanes_sum(acc[d4].y * f);
                o.z = lanes_sum(acc[d4].z * f);
                o.w = lanes_sum(acc[d4].w * f);
                if (LANE == 0u) {
                    for (uint c = 0; c < 4u; c++) {
                        if (c0 + 4u * d4 + c < p.hdv) B[ob + 4u * d4 + c] = o[c] * norm;
                    }
                }
            }
        }
    }
}
