/*
 * depthwise_project.h — a depthwise convolution (+ Relu/Clip) followed by a
 * pointwise projection (+ residual, + Relu/Clip) computed a run of output
 * rows at a time by one thread, for MobileNetV2's blocks over small planes
 * and its first block, 112x112 without an expand (ops/inverted_residual.c's
 * InvertedResidual without an expand, made by
 * optimize/fuse_inverted_residual.c).
 *
 * Run layer by layer on two threads, the depthwise layer splits its
 * channels between the threads and the projection (kernels/
 * pointwise_small.h) its positions, so each thread's projection reads half
 * of its input from the other core's cache: timed inside MobileNetV2 at
 * batch 1, a 14x14 384->64 projection took 54 us on two threads against
 * 34 us when its input was already in both caches (576->96: 114 against
 * 65), where one thread takes 53 (119). Here each thread computes the
 * depthwise rows of its own output rows for every channel into its own
 * buffer D and projects those positions from it, so the projection's input
 * never crosses cores nor goes through memory, and the layer pair is one
 * hand-off to the pool instead of two.
 *
 * D is not a tensor of the graph, and that is where the gain comes from:
 * written to a tensor of its own (the fused node's second output) it went
 * through memory again and the 2-thread gain was gone. It also means the
 * graph shows fewer activations per image, which batch_split.c weighs
 * against the weights to choose micro-batches: MobileNetV2's fall from
 * 14.1 to 10.4 MB, under its 13.3 MB of weights, and its batches then stay
 * whole (batch 8, 2 threads, min of 3 runs: 65.8 ms and 65.6 MB peak RSS
 * against 53.5 ms and 34.4 MB with INFERD_MICRO_BATCH=1, 55.3 ms and 35.7
 * MB unfused) until that rule counts the tensors fused nodes keep inside.
 *
 * The depthwise rows are kernels/depthwise.h's kernels on a window of the
 * image (the padding before the rows shifted by the rows skipped), the
 * projection kernels/pointwise_small.h's tile (or, over planes of 28x28
 * and more, kernels/conv_direct.h's) over D writing into Y's planes;
 * another micro-kernel pinned after load runs the projection as a matrix
 * product on unpacked weights. Each output is the same sum in the
 * same order as the layer-by-layer path on the same micro-kernel.
 *
 * Thread safety: reentrant; work is split over `pool` (NULL: the caller).
 */
#ifndef INFERD_ENGINE_KERNELS_DEPTHWISE_PROJECT_H
#define INFERD_ENGINE_KERNELS_DEPTHWISE_PROJECT_H

#include <stdbool.h>
#include <stddef.h>

#include "../threadpool.h"
#include "epilogue.h"

typedef struct depthwise_project {
    size_t batch, channels, out_channels; /* channels: the depthwise layer's */
    size_t h, w, out_h, out_w;
    size_t kh, kw, stride_h, stride_w, dilation_h, dilation_w;
    size_t pad_t, pad_l; /* padding before each axis (after: implied by out_h, out_w) */
    const float *dw_w;    /* channels x kh x kw, plain */
    const float *dw_bias; /* channels, or NULL */
    kernel_epilogue dw_epilogue;
    /* the out_channels x channels projection: pointwise_small_pack's layout,
     * or conv_direct_pack's when `direct` (planes the direct tile takes) */
    const float *packed_w;
    bool direct;
    const float *bias;     /* out_channels, or NULL */
    kernel_epilogue epilogue;
    const float *x;        /* batch x channels x h x w */
    const float *residual; /* shaped like y, or NULL */
    float *y;              /* batch x out_channels x out_h x out_w */
} depthwise_project;

/* False for geometries this kernel does not take (sizes out of range, a
 * window that starts outside the padded image). */
bool depthwise_project_fits(const depthwise_project *dp);

/* Scratch floats depthwise_project_f32 needs for `threads` threads (with
 * room for unpacked weights only when the GEMM micro-kernel in use is not
 * AVX-512's: do not switch it between the two calls); 0 on overflow. */
size_t depthwise_project_scratch_floats(const depthwise_project *dp, size_t threads);

void depthwise_project_f32(const depthwise_project *dp, float *scratch, threadpool *pool);

#endif /* INFERD_ENGINE_KERNELS_DEPTHWISE_PROJECT_H */
