/*
 * ops/spatial.c — attribute parsing and per-axis output geometry shared by
 * the convolutions (conv.c) and the pools (pool.c); see spatial.h.
 */
#include "spatial.h"

#include <string.h>

int spatial_read_list(op_node *node, ifd_error *err, const char *name, int64_t *dst, size_t max,
                      size_t *count)
{
    const int64_t *v;
    size_t n = op_attr_ints(node, name, &v);
    if (n > max)
        return op_prepare_fail(node, err, "%s has %zu entries; at most %d spatial axes are "
                               "supported", name, n, SPATIAL_MAX);
    if (n > 0)
        memcpy(dst, v, n * sizeof(int64_t));
    *count = n;
    return 0;
}

int spatial_parse(op_node *node, spatial_attrs *a, ifd_error *err)
{
    const char *pad = op_attr_string(node, "auto_pad", "NOTSET");
    if (strcmp(pad, "NOTSET") == 0)
        a->auto_pad = PAD_NOTSET;
    else if (strcmp(pad, "SAME_UPPER") == 0)
        a->auto_pad = PAD_SAME_UPPER;
    else if (strcmp(pad, "SAME_LOWER") == 0)
        a->auto_pad = PAD_SAME_LOWER;
    else if (strcmp(pad, "VALID") == 0)
        a->auto_pad = PAD_VALID;
    else
        return op_prepare_fail(node, err, "unknown auto_pad '%s'", pad);
    if (spatial_read_list(node, err, "kernel_shape", a->kernel, SPATIAL_MAX, &a->n_kernel) ||
        spatial_read_list(node, err, "strides", a->strides, SPATIAL_MAX, &a->n_strides) ||
        spatial_read_list(node, err, "dilations", a->dilations, SPATIAL_MAX, &a->n_dilations) ||
        spatial_read_list(node, err, "pads", a->pads, 2 * SPATIAL_MAX, &a->n_pads))
        return -1;
    const long long limit = (long long)SPATIAL_ATTR_LIMIT;
    for (size_t i = 0; i < a->n_kernel; i++)
        if (a->kernel[i] < 1 || a->kernel[i] > SPATIAL_ATTR_LIMIT)
            return op_prepare_fail(node, err, "kernel_shape entries must be in [1, %lld]", limit);
    for (size_t i = 0; i < a->n_strides; i++)
        if (a->strides[i] < 1 || a->strides[i] > SPATIAL_ATTR_LIMIT)
            return op_prepare_fail(node, err, "strides must be in [1, %lld]", limit);
    for (size_t i = 0; i < a->n_dilations; i++)
        if (a->dilations[i] < 1 || a->dilations[i] > SPATIAL_ATTR_LIMIT)
            return op_prepare_fail(node, err, "dilations must be in [1, %lld]", limit);
    for (size_t i = 0; i < a->n_pads; i++)
        if (a->pads[i] < 0 || a->pads[i] > SPATIAL_ATTR_LIMIT)
            return op_prepare_fail(node, err, "pads must be in [0, %lld]", limit);
    return 0;
}

spatial_axis spatial_axis_init(const spatial_attrs *a, int sp, int i, int64_t in, int64_t k)
{
    spatial_axis ax;
    ax.in = in;
    ax.kernel = k;
    ax.stride = a->n_strides ? a->strides[i] : 1;
    ax.dilation = a->n_dilations ? a->dilations[i] : 1;
    ax.extent = (k - 1) * ax.dilation + 1;
    ax.begin = a->n_pads ? a->pads[i] : 0;
    ax.end = a->n_pads ? a->pads[sp + i] : 0;
    ax.out = 0;
    return ax;
}

int spatial_axis_forward(auto_pad pad, bool ceil_mode, spatial_axis *ax)
{
    int64_t in = ax->in, s = ax->stride;
    if (pad == PAD_SAME_UPPER || pad == PAD_SAME_LOWER) {
        ax->out = (in + s - 1) / s;
        int64_t total = (ax->out - 1) * s + ax->extent - in;
        if (total < 0)
            total = 0;
        ax->begin = pad == PAD_SAME_UPPER ? total / 2 : total - total / 2;
        ax->end = total - ax->begin;
        return 0;
    }
    if (pad == PAD_VALID)
        ax->begin = ax->end = 0;
    int64_t span = in + ax->begin + ax->end - ax->extent;
    if (span < 0)
        return -1;
    ax->out = (ceil_mode ? (span + s - 1) / s : span / s) + 1;
    if (ceil_mode && (ax->out - 1) * s >= in + ax->begin)
        ax->out--;
    return 0;
}
