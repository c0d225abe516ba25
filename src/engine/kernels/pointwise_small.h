/*
 * pointwise_small.h — dense pointwise (1x1, stride 1, unpadded) float
 * convolution over small planes, vectorised across output channels, for
 * the AVX-512 path of ops/conv.c.
 *
 * Over planes of 7x7 and 14x14 (MobileNetV2's last twelve pointwise layers)
 * the paths that vectorise along the positions waste lanes: 49 positions
 * fill four 16-lane vectors (77%), and the im2col + GEMM path copies the
 * whole input (K x positions) into the packed layout before a product that
 * reads it once per 12 output channels, a copy as long as a fifth of the
 * product for the projection layers (K = 384..960 input channels, M = 64..320
 * output channels). Here a register tile holds 12 or 13 positions x 32 output
 * channels: each input channel contributes one broadcast of X per position,
 * read in place, times two vectors of packed weights, so no lane is wasted
 * for any plane size and X is never copied; the tile is transposed in
 * registers into Y's planes as it is stored, with the bias, a fused
 * residual and a Relu/Clip. This is what ONNX Runtime's NCHWc pointwise
 * kernel does with its channel blocks, without keeping the network in NCHWc.
 *
 * Weights are packed once at load in blocks of POINTWISE_SMALL_NB output
 * channels, input-channel-major (pointwise_small_pack);
 * pointwise_small_unpack restores the plain matrix for the other paths when
 * another micro-kernel is pinned after load.
 *
 * Thread safety: pure functions on caller memory; pointwise_small_f32 splits
 * its work over `pool` (which may be NULL).
 */
#ifndef INFERD_ENGINE_KERNELS_POINTWISE_SMALL_H
#define INFERD_ENGINE_KERNELS_POINTWISE_SMALL_H

#include <stdbool.h>
#include <stddef.h>

#include "../threadpool.h"
#include "epilogue.h"

#define POINTWISE_SMALL_NB 32 /* output channels per register tile */

typedef struct pointwise_small {
    size_t batch, in_channels, out_channels, positions;
    const float *x;         /* batch x in_channels planes of x_plane floats, positions used */
    const float *packed_w;  /* pointwise_small_pack of the (M x K) weights */
    const float *bias;      /* M entries or NULL */
    const float *residual;  /* shaped like y, or NULL */
    float *y;               /* batch x M planes of y_plane floats, positions used */
    /* floats between Y's (and the residual's) channel planes; 0 means
     * `positions`. Larger when the call computes a run of rows of a taller
     * image (kernels/depthwise_project.c) */
    size_t y_plane;
    size_t x_plane; /* the same for X's planes (0: `positions`) */
    kernel_epilogue epilogue;
} pointwise_small;

/* True when this path can run on this CPU now: the AVX-512 GEMM kernel is
 * the one in use (the engine's ISA switch). */
bool pointwise_small_available(void);

/* Floats of packed weights for an M x K matrix; 0 on overflow. */
size_t pointwise_small_packed_floats(size_t m, size_t k);
void pointwise_small_pack(size_t m, size_t k, const float *w, float *packed);
void pointwise_small_unpack(size_t m, size_t k, const float *packed, float *w);

void pointwise_small_f32(const pointwise_small *ps, threadpool *pool);

#endif /* INFERD_ENGINE_KERNELS_POINTWISE_SMALL_H */
