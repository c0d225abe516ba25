/*
 * ops/spatial.h — the window geometry that Conv, ConvTranspose and the
 * pools share: the auto_pad, kernel_shape, strides, dilations and pads
 * attributes, and how one spatial axis resolves its padding and output size
 * from them. Conv and the pools then lay the resolved axes out in their own
 * plans (conv.c, pool.c).
 */
#ifndef INFERD_ENGINE_OPS_SPATIAL_H
#define INFERD_ENGINE_OPS_SPATIAL_H

#include "../op.h"

/* Up to three spatial axes (1-D, 2-D and 3-D windows). */
#define SPATIAL_MAX 3
/* Largest stride, dilation, padding or kernel extent accepted: it keeps
 * every size computed from them in int64 range. */
#define SPATIAL_ATTR_LIMIT ((int64_t)1 << 24)

typedef enum auto_pad { PAD_NOTSET, PAD_SAME_UPPER, PAD_SAME_LOWER, PAD_VALID } auto_pad;

/* The attribute lists as given; a count of 0 means absent. Lengths are
 * checked against the spatial rank by the caller, once that is known. */
typedef struct spatial_attrs {
    auto_pad auto_pad;
    size_t n_kernel, n_strides, n_dilations, n_pads;
    int64_t kernel[SPATIAL_MAX], strides[SPATIAL_MAX], dilations[SPATIAL_MAX];
    int64_t pads[2 * SPATIAL_MAX];
} spatial_attrs;

/* One spatial axis: its input size, window, the dilated kernel's span
 * (extent), the padding at each end and the output size. */
typedef struct spatial_axis {
    int64_t in, kernel, stride, dilation, extent, begin, end, out;
} spatial_axis;

/* Read the ints attribute `name` into dst (at most max entries). Returns 0,
 * or -1 after op_prepare_fail. */
int spatial_read_list(op_node *node, ifd_error *err, const char *name, int64_t *dst, size_t max,
                      size_t *count);

/* Parse auto_pad, kernel_shape, strides, dilations and pads, and check each
 * entry's range. Returns 0, or -1 after op_prepare_fail. */
int spatial_parse(op_node *node, spatial_attrs *a, ifd_error *err);

/* Axis i of sp spatial axes, for input size `in` and kernel size k: stride,
 * dilation, extent and explicit pads from the attributes (defaults where
 * absent); out is left 0. */
spatial_axis spatial_axis_init(const spatial_attrs *a, int sp, int i, int64_t in, int64_t k);

/* Resolve a forward window's (Conv, pools) padding and output size: the
 * auto_pad SAME_* padding, VALID's none, or the explicit pads; ceil_mode
 * rounds the output up, dropping a last window that would start in the end
 * padding (as ONNX Runtime and PyTorch do). Returns -1 when the padded input
 * is shorter than the window's extent. */
int spatial_axis_forward(auto_pad pad, bool ceil_mode, spatial_axis *ax);

#endif /* INFERD_ENGINE_OPS_SPATIAL_H */
