#version 450
#extension GL_GOOGLE_include_directive : require
/* rms_norm.comp - out[r] = x[r] * (1 / sqrt(mean(x[r]^2) + eps)) * w, one
 * group of lanes per row; rows of any length (each lane strides the row). */
#include "lanes.glsl"
#include "bindings.glsl"

layout(push_constant) uniform Params {
    uint n;      /* values per row (w's length) */
    uint n_rows;
    uint x_off;  /* A offset of x[0] */
    uint out_off; /* B offset of out[0] (may be x itself) */
    float eps;
} p;

void main() {
    for (uint r = GROUP; r < p.n_rows; r += NGROUPS) {
        const uint xb = p.x_off + r * p.n, ob = p.out_off + r * p.n;
        float sum = 0.0;
        for (uint i = LANE; i < p.n; i += NLANES) sum += A[xb + i] * A[xb + i];
        sum = lanes_sum(sum);
        const float mean = sum / float(p.n);
        const float scale = 1.0 / sqrt(mean + p.eps);
        for (uint i = LANE; i < p.n; i += NLANES) {
            precise float y = (A[xb + i] * scale) * w_f32(i);
            B[ob + i] = y;
        }
    }
}
