/*
 * ops/reduce_util.h — private helpers of the operators that work along axes
 * (normalization.c, reduce.c, softmax.c): the float16/bfloat16 load and store
 * macros their X-macro type lists use, the parallel grain rule, keeping the
 * parsed attributes as node state, the output that repeats the input's type
 * and shape, and the one axis check with its message.
 */
#ifndef INFERD_ENGINE_OPS_REDUCE_UTIL_H
#define INFERD_ENGINE_OPS_REDUCE_UTIL_H

#include <stdlib.h>
#include <string.h>

#include "../op.h"

typedef void (*range_fn)(void *arg, size_t begin, size_t end);

/* Element conversions for the type lists: float16/bfloat16 compute in float;
 * STORE_* narrow whatever the computation ran in (float or double). */
#define ID(x) (x)
#define LOAD_F16(x) half_to_float(x)
#define LOAD_BF16(x) bfloat16_to_float(x)
#define STORE_F32(w) ((float)(w))
#define STORE_F16(w) float_to_half((float)(w))
#define STORE_BF16(w) float_to_bfloat16((float)(w))

/* Units per parallel chunk so that a chunk holds about `target` elements of
 * work. */
static inline size_t grain_for(int64_t work_per_unit, int64_t target)
{
    return work_per_unit > 0 && work_per_unit < target ? (size_t)(target / work_per_unit) : 1;
}

/* Keep a copy of the parsed attributes as node->state (freed by free()).
 * Returns 0, or -1 after op_prepare_fail. */
static inline int keep_state(op_node *node, ifd_error *err, const void *attrs, size_t size)
{
    void *s = malloc(size);
    if (!s)
        return op_prepare_fail(node, err, "out of memory");
    memcpy(s, attrs, size);
    node->state = s;
    return 0;
}

/* Output 0 has the input's dtype and shape. */
static inline void output_like(op_node *node, const value_info *in)
{
    value_info *out = node->outputs[0];
    out->kind = IFD_VALUE_TENSOR;
    out->dtype = in->dtype;
    out->rank = in->rank;
    memcpy(out->dims, in->dims, sizeof(out->dims));
}

static inline bool axis_in_range(int64_t axis, int rank)
{
    return axis >= -(int64_t)rank && axis < rank;
}

/* At load: reject an axis outside a known rank (rank < 0 is unknown). */
static inline int prepare_axis(op_node *node, ifd_error *err, int64_t axis, int rank)
{
    if (rank >= 0 && !axis_in_range(axis, rank))
        return op_prepare_fail(node, err, "axis %lld is out of range for rank %d",
                               (long long)axis, rank);
    return 0;
}

/* At run time: the axis counted from 0, or -1 after op_fail. */
static inline int run_axis(op_ctx *ctx, int64_t axis, int rank)
{
    if (!axis_in_range(axis, rank))
        return op_fail(ctx, "axis %lld is out of range for rank %d", (long long)axis, rank);
    return (int)(axis < 0 ? axis + rank : axis);
}

/* Elements after `axis`: the stride of one step along it. */
static inline int64_t inner_size(const ifd_tensor *x, int axis)
{
    int64_t inner = 1;
    for (int d = axis + 1; d < x->rank; d++)
        inner *= x->dims[d];
    return inner;
}

static inline int fail_input_type(op_ctx *ctx, ifd_dtype dtype)
{
    return op_fail(ctx, "unsupported input type %s", ifd_dtype_name(dtype));
}

static inline int prepare_fail_input_type(op_node *node, ifd_error *err, ifd_dtype dtype)
{
    return op_prepare_fail(node, err, "unsupported input type %s", ifd_dtype_name(dtype));
}

#endif /* INFERD_ENGINE_OPS_REDUCE_UTIL_H */
