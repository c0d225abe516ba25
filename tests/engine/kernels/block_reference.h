/*
 * block_reference.h — what the tests of MobileNetV2's fused block kernels
 * (test_inverted_residual.c, test_depthwise_project.c) share: repeatable
 * random operands and the fused Relu/Clip applied in double by the
 * reference computations they compare against.
 */
#ifndef INFERD_TESTS_ENGINE_KERNELS_BLOCK_REFERENCE_H
#define INFERD_TESTS_ENGINE_KERNELS_BLOCK_REFERENCE_H

#include <stddef.h>

#include "kernels/epilogue.h"

/* A float in [-0.5, 0.5) from a linear congruential state. */
static inline float frand(unsigned *state)
{
    *state = *state * 1103515245u + 12345u;
    return (float)((*state >> 8) & 0xffff) / 65536.0f - 0.5f;
}

static inline void fill(float *a, size_t n, unsigned *state, float scale)
{
    for (size_t i = 0; i < n; i++)
        a[i] = scale * frand(state);
}

static inline double clamp_d(double v, kernel_epilogue e)
{
    if (!e.clamp)
        return v;
    v = v < e.lo ? e.lo : v;
    return v > e.hi ? e.hi : v;
}

#endif /* INFERD_TESTS_ENGINE_KERNELS_BLOCK_REFERENCE_H */
