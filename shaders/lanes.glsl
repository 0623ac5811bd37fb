/*
 * lanes.glsl - "a group of lanes works on one item", with or without
 * subgroup operations.
 *
 * With subgroups (the default), a group is one subgroup: LANE/NLANES are
 * the subgroup invocation and size, a workgroup holds several groups, and
 * reductions are subgroupAdd/subgroupMax. With NO_SUBGROUP (devices
 * without subgroup arithmetic in compute shaders), a group is a whole
 * workgroup and reductions go through shared memory. Work loops stride by
 * NGROUPS, so any dispatch size covers any amount of work.
 *
 * Spec constant 0 is the workgroup size (a power of two with NO_SUBGROUP).
 */
layout(local_size_x_id = 0) in;

#ifdef NO_SUBGROUP
shared float lanes_red[gl_WorkGroupSize.x];
#define LANE gl_LocalInvocationID.x
#define NLANES gl_WorkGroupSize.x
#define GROUP gl_WorkGroupID.x
#define NGROUPS gl_NumWorkGroups.x

float lanes_sum(float v) {
    lanes_red[LANE] = v;
    barrier();
    for (uint s = NLANES / 2u; s > 0u; s >>= 1) {
        if (LANE < s) lanes_red[LANE] += lanes_red[LANE + s];
        barrier();
    }
    float r = lanes_red[0];
    barrier();
    return r;
}

float lanes_max(float v) {
    lanes_red[LANE] = v;
    barrier();
    for (uint s = NLANES / 2u; s > 0u; s >>= 1) {
        if (LANE < s) lanes_red[LANE] = max(lanes_red[LANE], lanes_red[LANE + s]);
        barrier();
    }
    float r = lanes_red[0];
    barrier();
    return r;
}
#else
#extension GL_KHR_shader_subgroup_basic : require
#extension GL_KHR_shader_subgroup_arithmetic : require
#define LANE gl_SubgroupInvocationID
#define NLANES gl_SubgroupSize
#define GROUP (gl_WorkGroupID.x * gl_NumSubgroups + gl_SubgroupID)
#define NGROUPS (gl_NumWorkGroups.x * gl_NumSubgroups)

float lanes_sum(float v) { return subgroupAdd(v); }
float lanes_max(float v) { return subgroupMax(v); }
#endif
