/*
 * bias_store.h — the last pass of a product whose result sits in a scratch
 * block (sliced Conv, ops/conv.c): copy one row into its place in the output
 * adding the channel's bias and, for a fused residual Add, the residual, and
 * clamp it for a fused Relu/Clip. One pass over the block while it is in
 * cache instead of a bias fill, an accumulating product and a clamp pass.
 * A block of rows per call, so that the kernel choice is made once per block.
 *
 * Thread safety: a pure function on caller memory.
 */
#ifndef INFERD_ENGINE_KERNELS_BIAS_STORE_H
#define INFERD_ENGINE_KERNELS_BIAS_STORE_H

#include <stddef.h>

/* For each of `rows` rows r: dst[r][i] = clamp(src[r][i] + bias[r] +
 * residual[r][i], lo, hi) for i in [0, width), rows dst_ld / src_ld floats
 * apart (residual laid out like dst; bias and residual may be NULL); lo =
 * -inf and hi = +inf for no clamp. NaN passes through the clamp as in
 * epilogue_apply. dst must not overlap src or residual. */
void bias_store_f32(float *dst, size_t dst_ld, const float *src, size_t src_ld,
                    const float *residual, const float *bias, size_t rows, size_t width, float lo,
                    float hi);

#endif /* INFERD_ENGINE_KERNELS_BIAS_STORE_H */
