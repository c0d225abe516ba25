/*
 * conv_direct.h — dense stride-1 and stride-2 float convolution without a
 * patch matrix
 * (implicit GEMM), for the AVX-512 path of ops/conv.c.
 *
 * With stride 1 a kernel tap reads the input shifted by a constant, so if
 * the image is laid out with its padding (rows of Wp = out_w + the kernel's
 * width span - 1 floats), the 32 consecutive output positions of a tile,
 * counted in that padded row pitch, read 32 consecutive floats for every
 * (channel, tap): the product's B rows are slices of the image itself and
 * im2col (9 copies of the input for 3x3) disappears. The price is (span - 1)
 * positions per output row that are computed and dropped (2 of 58 for 3x3
 * at 56x56), and one padded copy of the input when the layer pads. The
 * output tile stays in registers over the whole K, so there are no K panels
 * to reload and the bias, a fused residual and a Relu/Clip are applied as
 * the tile is stored into Y: no scratch block and no bias_store pass. A
 * pointwise (1x1, unpadded) layer reads X in place. Stride 2 becomes stride
 * 1 over the image split into its four phases (even/odd rows x even/odd
 * columns): a tap reads one phase shifted by a constant again.
 *
 * ops/conv.c sends it dense pointwise layers over large planes and
 * stride-2 stems over few channels: for 3x3 layers the dropped columns cost
 * more than im2col saves (its direct_wanted has the numbers).
 *
 * Weights are packed once at load in tiles of CONV_DIRECT_MR output
 * channels, k-major (conv_direct_pack); conv_direct_unpack restores the plain
 * matrix for the portable path when another micro-kernel is pinned later.
 *
 * Thread safety: pure functions on caller memory; conv_direct_f32 splits
 * its work over `pool` (which may be NULL).
 */
#ifndef INFERD_ENGINE_KERNELS_CONV_DIRECT_H
#define INFERD_ENGINE_KERNELS_CONV_DIRECT_H

#include <stdbool.h>
#include <stddef.h>

#include "../threadpool.h"
#include "epilogue.h"
#include "im2col.h"

#define CONV_DIRECT_MR 12      /* output channels per register tile */
#define CONV_DIRECT_MAX_TAPS 64 /* kernel taps per channel it takes (7x7 = 49) */

/* One dense Conv (group 1) over a batch. */
typedef struct conv_direct {
    const conv_geometry *geo;  /* 1-D or 2-D: image[0] == kernel[0] == 1 */
    size_t batch, out_channels;
    const float *x;            /* batch x channels x image */
    const float *packed_w;     /* conv_direct_pack of the (M x channels*taps) weights */
    const float *bias;         /* M entries or NULL */
    const float *residual;     /* shaped like y, or NULL */
    float *y;                  /* batch x M x out */
    kernel_epilogue epilogue;
    /* Floats from one channel plane of X, and of Y and the residual, to the
     * next; 0 for the image's and the output's own plane. Set to compute a
     * band of rows of larger tensors in place (ops/inverted_residual.c):
     * x_plane only for layers that read X in place (1x1, unpadded,
     * stride 1); images of a batch are then channels * x_plane and M *
     * y_plane floats apart. */
    size_t x_plane, y_plane;
} conv_direct;

/* True when this path takes the geometry on this CPU: the AVX-512 GEMM
 * kernel in use, 1-D or 2-D, stride 1 or 2 (the same on both axes),
 * non-negative padding, at most
 * CONV_DIRECT_MAX_TAPS taps. */
bool conv_direct_fits(const conv_geometry *g);

/* Whether the weights of a layer with these taps should be packed for this
 * path at load (the decision that needs no image shape). */
bool conv_direct_wanted(size_t taps);

/* Floats of packed weights for an M x K matrix; 0 on overflow. */
size_t conv_direct_packed_floats(size_t m, size_t k);
void conv_direct_pack(size_t m, size_t k, const float *w, float *packed);
void conv_direct_unpack(size_t m, size_t k, const float *packed, float *w);

/* Scratch floats conv_direct_f32 needs (the padded copies of the images;
 * 0 when it reads X in place). Returns false on overflow. */
bool conv_direct_scratch_floats(const conv_direct *dc, size_t *floats);

void conv_direct_f32(const conv_direct *dc, float *scratch, threadpool *pool);

#endif /* INFERD_ENGINE_KERNELS_CONV_DIRECT_H */
