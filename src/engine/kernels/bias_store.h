/*
 * bias_store.h — the last pass of a product whose result sits in a scratch
 * block (sliced Conv, ops/conv.c): copy one row into its place in the output
 * adding the channel's bias and, for a fused residual Add, the residual, and
 * clamp it for a fused Relu/Clip. One pass over the block while it is in
 * cache instead of a bias fill, an accumulating product and a clamp pass.
 *
 * Thread safety: a pure function on caller memory.
 */
#ifndef INFERD_ENGINE_KERNELS_BIAS_STORE_H
#define INFERD_ENGINE_KERNELS_BIAS_STORE_H

#include <stddef.h>

/* dst[i] = clamp(src[i] + bias + (residual ? residual[i] : 0), lo, hi) for i
 * in [0, width); lo = -inf and hi = +inf for no clamp. NaN passes through the
 * clamp as in epilogue_apply. dst must not overlap src or residual. */
void bias_store_f32(float *dst, const float *src, const float *residual, float bias, float lo,
                    float hi, size_t width);

#endif /* INFERD_ENGINE_KERNELS_BIAS_STORE_H */
