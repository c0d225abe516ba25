/*
 * inverted_residual.h — MobileNetV2's inverted-residual block computed a
 * band of output rows at a time: pointwise expand (+ Relu/Clip), depthwise
 * window (+ Relu/Clip), pointwise project (+ residual), for
 * ops/inverted_residual.c.
 *
 * Run layer by layer, the block writes its expanded tensor (6x the input's
 * channels: 112x112x96 floats = 4.8 MB in MobileNetV2's second block) to
 * memory and reads it back, and does the same with the depthwise output.
 * Here, for a band of output rows, only the expanded rows that band's
 * window reads are computed, into a buffer sized to stay in L2, then the
 * depthwise rows of the band, then the projection of the band straight into
 * Y (with the residual). Consecutive bands of one thread share the
 * window's overlap rows (kernel height - stride of them): they are moved to
 * the top of the buffer, not computed again; only where two threads' row
 * ranges meet are they computed twice. Rows above and below the image are
 * zero rows of the buffer, so the depthwise pass runs unpadded vertically.
 *
 * The inner loops are the engine's: the pointwise layers run on the
 * AVX-512 direct tile (kernels/conv_direct.h, weights in its packed layout)
 * reading and writing the bands in place through its plane strides, the
 * depthwise rows on kernels/depthwise.h. On another micro-kernel (pinned
 * after load) the pointwise layers are matrix products on the unpacked
 * weights instead. On the direct tile each output element is the same sum,
 * in the same order, as the layer-by-layer path (MobileNetV2's outputs are
 * bit for bit those of graph-opt NONE); the portable products are within
 * float rounding of it.
 *
 * Thread safety: reentrant; work is split over `pool` (NULL: the caller).
 */
#ifndef INFERD_ENGINE_KERNELS_INVERTED_RESIDUAL_H
#define INFERD_ENGINE_KERNELS_INVERTED_RESIDUAL_H

#include <stdbool.h>
#include <stddef.h>

#include "../threadpool.h"
#include "epilogue.h"

/* One pointwise layer: weights in conv_direct_pack's layout. */
typedef struct irb_pointwise {
    const float *packed_w;
    const float *bias; /* out channels, or NULL */
    kernel_epilogue epilogue;
} irb_pointwise;

typedef struct inverted_residual {
    size_t batch, in_channels, hidden, out_channels;
    size_t h, w;          /* input image (= the expanded planes) */
    size_t out_h, out_w;  /* after the depthwise window */
    size_t kh, kw, stride; /* the depthwise window: same stride on both axes, dilation 1 */
    size_t pad_t, pad_l;  /* its padding before each axis (after: implied by out_h, out_w) */
    irb_pointwise expand, project;
    const float *dw_w;    /* hidden x kh x kw, plain */
    const float *dw_bias; /* hidden, or NULL */
    kernel_epilogue dw_epilogue;
    const float *x;        /* batch x in_channels x h x w */
    const float *residual; /* shaped like y, or NULL */
    float *y;              /* batch x out_channels x out_h x out_w */
    /* output rows per band; 0 picks them from the cache budget */
    size_t band_rows;
} inverted_residual;

/* False when the geometry is not one this kernel takes (a window wider
 * than the padded row, stride other than 1 or 2, sizes out of range). */
bool inverted_residual_fits(const inverted_residual *ir);

/* Scratch floats inverted_residual_f32 needs for `threads` threads; 0 on
 * overflow. */
size_t inverted_residual_scratch_floats(const inverted_residual *ir, size_t threads);

void inverted_residual_f32(const inverted_residual *ir, float *scratch, threadpool *pool);

#endif /* INFERD_ENGINE_KERNELS_INVERTED_RESIDUAL_H */
