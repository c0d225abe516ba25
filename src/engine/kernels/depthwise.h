/*
 * depthwise.h — 2-D depthwise convolution (a Conv whose groups each have one
 * input channel: MobileNet's 3x3 layers), computed directly on NCHW planes
 * instead of through im2col and a 1-row matrix product.
 *
 * Each output plane gets its bias (and a fused residual plane) as the
 * starting value, the taps' products, and the fused Relu/Clip clamp, in
 * registers, and is written once. The AVX-512 and AVX2 kernels take any
 * kernel size, padding, dilation and row stride with a column stride of 1 or
 * 2; other shapes, and CPUs without AVX2, run a portable loop. The ISA is the
 * one the GEMM kernels use (gemm_kernel_name: CPUID, or INFERD_GEMM_KERNEL /
 * gemm_use_kernel to pin it), so one switch pins the whole engine.
 *
 * Thread safety: reentrant; the planes are split over `pool`, which may be
 * NULL (run on the caller) and must not be inside a parallel_for already.
 */
#ifndef INFERD_ENGINE_KERNELS_DEPTHWISE_H
#define INFERD_ENGINE_KERNELS_DEPTHWISE_H

#include <stddef.h>

#include "../threadpool.h"
#include "epilogue.h"
#include "im2col.h"

typedef struct depthwise_conv {
    /* one plane's geometry: axes 1 and 2 are height and width, axis 0 and
     * `channels` are unused (2-D only) */
    const conv_geometry *geo;
    size_t batch;
    size_t in_channels; /* = groups */
    size_t multiplier;  /* output channels per input channel */
    const float *x;     /* batch x in_channels planes */
    const float *w;     /* in_channels * multiplier x kernel_h x kernel_w */
    const float *bias;  /* one per output channel, or NULL */
    const float *residual; /* added to the output (same shape as y), or NULL */
    float *y;           /* batch x in_channels * multiplier planes */
    kernel_epilogue epilogue;
} depthwise_conv;

void depthwise_conv_f32(const depthwise_conv *dc, threadpool *pool);

#endif /* INFERD_ENGINE_KERNELS_DEPTHWISE_H */
