/*
 * op_util.h — small helpers shared by the tensor-manipulation families
 * (shape.c, indexing.c, layout.c): reading node inputs at load and run
 * time, declaring outputs, axis normalisation, strides, and the one strided
 * copy routine (layout.c) that Transpose, Concat, Split, Slice, Expand, Tile
 * and DepthToSpace all reduce to.
 */
#ifndef INFERD_ENGINE_OPS_OP_UTIL_H
#define INFERD_ENGINE_OPS_OP_UTIL_H

#include "../op.h"

/* Copy the index space `dims` between two strided views (element strides, 0
 * broadcasts). Returns 0, or -1 after op_fail. Defined in layout.c. */
int layout_copy_strided(op_ctx *ctx, int rank, const int64_t *dims, ifd_dtype dtype, void *dst,
                        int64_t dst_base, const int64_t *dst_strides, const void *src,
                        int64_t src_base, const int64_t *src_strides);

static inline const value_info *input_info(const op_node *node, int i)
{
    return i < node->n_inputs ? node->inputs[i] : NULL;
}

static inline const ifd_tensor *input_tensor(const op_ctx *ctx, int i)
{
    return i < ctx->n_inputs ? op_input(ctx, i) : NULL;
}

/* Set output i to a tensor of dtype with the given rank (-1 unknown) and dims
 * (NULL or entries < 0 unknown). */
static inline void set_output(op_node *node, int i, ifd_dtype dtype, int rank,
                              const int64_t *dims)
{
    value_info *out = node->outputs[i];
    out->kind = IFD_VALUE_TENSOR;
    out->dtype = dtype;
    out->rank = rank;
    for (int k = 0; k < rank && k < IFD_MAX_RANK; k++)
        out->dims[k] = dims ? dims[k] : -1;
}

static inline int check_input_tensor(op_node *node, int i, ifd_error *err)
{
    const value_info *in = input_info(node, i);
    if (!in)
        return op_prepare_fail(node, err, "input %d is required", i);
    if (in->kind != IFD_VALUE_TENSOR)
        return op_prepare_fail(node, err, "input %d must be a tensor", i);
    if (ifd_dtype_size(in->dtype) == 0)
        return op_prepare_fail(node, err, "input %d has unsupported dtype %s", i,
                               ifd_dtype_name(in->dtype));
    return 0;
}

static inline bool normalize_axis(int64_t axis, int rank, int64_t *out)
{
    if (axis < -rank || axis >= rank)
        return false;
    *out = axis < 0 ? axis + rank : axis;
    return true;
}

/* Row-major element strides. An empty shape's strides are all 0: nothing
 * is read through them, and its other dims may be too large to multiply. */
static inline void contiguous_strides(int rank, const int64_t *dims, int64_t *strides)
{
    for (int k = 0; k < rank; k++)
        if (dims[k] == 0) {
            for (int j = 0; j < rank; j++)
                strides[j] = 0;
            return;
        }
    int64_t s = 1;
    for (int k = rank - 1; k >= 0; k--) {
        strides[k] = s;
        s *= dims[k];
    }
}

#endif /* INFERD_ENGINE_OPS_OP_UTIL_H */
