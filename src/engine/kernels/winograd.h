/*
 * winograd.h — 3x3 stride-1 float convolution by Winograd's minimal
 * filtering (Lavin & Gray, "Fast Algorithms for Convolutional Neural
 * Networks", 2016), for the dense 3x3 layers of ops/conv.c.
 *
 * F(m x m, 3 x 3) computes an m x m output tile from an (m+2) x (m+2) input
 * tile d and a 3x3 filter g as Y = A^T [(G g G^T) . (B^T d B)] A, where "."
 * multiplies element by element: (m+2)^2 products replace 9 m^2 multiply-
 * adds. Summed over input channels, each of the (m+2)^2 elements is an
 * independent matrix product U_xi (Cout x Cin) x V_xi (Cin x tiles), which
 * runs on a register tile of winograd.c. F(4x4) (36 products for 144 MACs, 4x)
 * and F(2x2) (16 for 36, 2.25x, smaller rounding error and 16/9 instead of
 * 4x the weight bytes) are both here; ops/conv.c picks one per layer.
 *
 * U = G g G^T is computed once at load, in double, and packed per element
 * xi in slivers of 8 output channels (winograd_pack, or a range of slivers
 * at a time with winograd_pack_channels). At run time the tiles are
 * processed in blocks that keep V and the products in L2: input transform
 * of the block into V, the (m+2)^2 products, then the output transform,
 * which adds the bias and a fused residual, applies the Relu/Clip and writes
 * Y. Blocks are ranges of the batch's tiles (across rows and images), sized
 * for the product tile's 48 columns, and are the work items the threads
 * share.
 *
 * A layer whose transformed filters would cost too much memory (4x or 16/9
 * of W, held for the model's life) can instead hand over W as gemm_pack_a
 * packed it (gemm_w): the filters are then transformed at each run, one
 * block of output channels at a time into a lane's scratch, right before
 * that block's products read them from L2. Such a run, and a run of few
 * tiles on several threads, goes block by block in two phases: the
 * threads share the input transform by channel groups, then the products
 * and output transforms by blocks of output channels, so one image's 16 or
 * 49 tiles still split evenly.
 *
 * Thread safety: pure functions on caller memory; winograd_conv_f32 splits
 * its blocks over `pool` (which may be NULL).
 */
#ifndef INFERD_ENGINE_KERNELS_WINOGRAD_H
#define INFERD_ENGINE_KERNELS_WINOGRAD_H

#include <stdbool.h>
#include <stddef.h>

#include "../threadpool.h"
#include "epilogue.h"
#include "im2col.h"

/* True when the geometry is a 2-D 3x3 convolution with stride 1, dilation 1
 * and non-negative padding (any, asymmetric included): what this path
 * computes. */
bool winograd_fits(const conv_geometry *g);

/* Floats of packed weights for output tile m (2 or 4); 0 on overflow or a
 * tile size this file does not have. */
size_t winograd_packed_floats(size_t m, size_t out_channels, size_t in_channels);
/* Output channels of one sliver of the packed weights. */
#define WINOGRAD_PACK_ROWS 8

/* Transform and pack w (out_channels x in_channels x 3 x 3, row-major). */
void winograd_pack(size_t m, size_t out_channels, size_t in_channels, const float *w,
                   float *packed);
/* The same for output channels [first, first + count) only, whose filters
 * w holds (count x in_channels x 3 x 3): packs of consecutive ranges make
 * winograd_pack's result, so a weight can be read and packed a few
 * channels at a time. first is a multiple of WINOGRAD_PACK_ROWS, and so is
 * count unless the range ends at out_channels. */
void winograd_pack_channels(size_t m, size_t out_channels, size_t in_channels, size_t first,
                            size_t count, const float *w, float *packed);

typedef struct winograd_conv {
    const conv_geometry *geo; /* winograd_fits */
    size_t tile;              /* m: 2 or 4, as packed */
    size_t batch, out_channels;
    const float *x;           /* batch x channels x image */
    const float *packed_w;    /* winograd_pack, or NULL: then gemm_w */
    const float *gemm_w;      /* W (out_channels x in_channels*9) as gemm_pack_a
                               * packed it, transformed at each run */
    const float *bias;        /* out_channels entries or NULL */
    const float *residual;    /* shaped like y, or NULL */
    float *y;                 /* batch x out_channels x out */
    kernel_epilogue epilogue;
} winograd_conv;

/* Scratch floats winograd_conv_f32 needs with a pool of `threads` threads;
 * false on overflow. */
bool winograd_scratch_floats(const winograd_conv *wc, size_t threads, size_t *floats);

void winograd_conv_f32(const winograd_conv *wc, float *scratch, threadpool *pool);

#endif /* INFERD_ENGINE_KERNELS_WINOGRAD_H */
