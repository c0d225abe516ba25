/*
 * ops/sequence.c — ONNX's sequence operators (opset 11 on): SequenceEmpty,
 * SequenceConstruct, SequenceAt, SequenceInsert, SequenceErase,
 * SequenceLength, SplitToSequence and ConcatFromSequence.
 *
 * A sequence is an ifd_value of kind IFD_VALUE_SEQUENCE owning its items, all
 * tensors of the element dtype the loader recorded for it (value_info.dtype).
 * The operators never modify their input sequence (another node may read
 * it): Insert and Erase build a new one from copies, which is what ONNX's
 * value semantics ask for. Positions are int32 or int64 scalars, negative
 * ones counting from the end; a position out of range is a run error naming
 * the position and the length.
 */
#include <stdlib.h>
#include <string.h>

#include "../model.h"
#include "op_util.h"

/* ---- helpers --------------------------------------------------------------- */

static int check_sequence_input(op_node *node, int i, ifd_error *err)
{
    const value_info *in = input_info(node, i);
    if (!in)
        return op_prepare_fail(node, err, "input %d (a sequence) is required", i);
    if (in->kind != IFD_VALUE_SEQUENCE || in->elem_kind != IFD_VALUE_TENSOR)
        return op_prepare_fail(node, err, "input %d ('%s') must be a sequence of tensors", i,
                               in->name);
    return 0;
}

static int check_position_input(op_node *node, int i, ifd_error *err)
{
    const value_info *pos = input_info(node, i);
    if (!pos)
        return 0;
    if (pos->kind != IFD_VALUE_TENSOR || (pos->dtype != IFD_INT32 && pos->dtype != IFD_INT64))
        return op_prepare_fail(node, err, "position must be an int32 or int64 tensor");
    if (pos->rank > 1 || (pos->rank == 1 && pos->dims[0] > 1))
        return op_prepare_fail(node, err, "position must be a scalar");
    return 0;
}

static void set_sequence_output(op_node *node, int i, ifd_dtype dtype)
{
    value_info *out = node->outputs[i];
    out->kind = IFD_VALUE_SEQUENCE;
    out->elem_kind = IFD_VALUE_TENSOR;
    out->dtype = dtype;
    out->rank = -1;
}

/* The position input read at run time, normalised into [0, limit) (or
 * [0, limit] when `inclusive`, for insertion); -1 after op_fail. */
static int read_position(op_ctx *ctx, int i, int64_t length, bool inclusive, int64_t fallback,
                         int64_t *out)
{
    const ifd_tensor *t = input_tensor(ctx, i);
    int64_t p = fallback;
    if (t) {
        if (ifd_tensor_count(t) != 1 || (t->dtype != IFD_INT32 && t->dtype != IFD_INT64))
            return op_fail(ctx, "position must be one int32 or int64 value");
        p = tensor_get_int64(t, 0);
    }
    int64_t upper = inclusive ? length : length - 1;
    if (p < -length || p > upper)
        return op_fail(ctx, "position %lld is out of range for a sequence of %lld tensors "
                       "(allowed: %lld to %lld)", (long long)p, (long long)length,
                       (long long)-length, (long long)upper);
    *out = p < 0 ? p + length : p;
    return 0;
}

/* A new sequence of `length` slots in output i; items are filled by the
 * caller. NULL after op_fail. */
static ifd_value *new_sequence(op_ctx *ctx, int i, size_t length)
{
    ifd_value *out = op_output_value(ctx, i);
    if (!out)
        return NULL;
    out->kind = IFD_VALUE_SEQUENCE;
    if (length) {
        out->items = calloc(length, sizeof(*out->items));
        if (!out->items) {
            op_fail(ctx, "out of memory for a sequence of %zu tensors", length);
            return NULL;
        }
    }
    return out;
}

/* Append a deep copy of value to seq (whose items array has room). */
static int append_copy(op_ctx *ctx, ifd_value *seq, const ifd_value *value)
{
    ifd_error err;
    ifd_value *copy;
    if (value_clone(value, &copy, &err) != IFD_OK)
        return op_fail(ctx, "%s", err.message);
    seq->items[seq->length++] = copy;
    return 0;
}

static int append_tensor_copy(op_ctx *ctx, ifd_value *seq, const ifd_tensor *t)
{
    ifd_value v = {.kind = IFD_VALUE_TENSOR, .tensor = tensor_view(t)};
    return append_copy(ctx, seq, &v);
}

/* y's data = t's (same dtype and shape). */
static int copy_tensor_data(op_ctx *ctx, const ifd_tensor *t, ifd_tensor *y)
{
    size_t count = (size_t)ifd_tensor_count(t);
    if (t->dtype == IFD_STRING) {
        if (!strings_copy(y->data, t->data, count))
            return op_fail(ctx, "out of memory copying strings");
    } else if (count) {
        memcpy(y->data, t->data, count * ifd_dtype_size(t->dtype));
    }
    return 0;
}

static const ifd_value *sequence_input(op_ctx *ctx, int i)
{
    const ifd_value *v = op_input_value(ctx, i);
    return v && v->kind == IFD_VALUE_SEQUENCE ? v : NULL;
}

/* ---- SequenceEmpty, SequenceConstruct, SequenceLength ---------------------- */

static int sequence_empty_prepare(op_node *node, ifd_error *err)
{
    int64_t dtype = op_attr_int(node, "dtype", IFD_FLOAT);
    if (dtype <= 0 || ifd_dtype_size((ifd_dtype)dtype) == 0 || dtype > IFD_BFLOAT16)
        return op_prepare_fail(node, err, "dtype %lld is not a supported tensor type",
                               (long long)dtype);
    set_sequence_output(node, 0, (ifd_dtype)dtype);
    return 0;
}

static int sequence_empty_run(op_ctx *ctx)
{
    return new_sequence(ctx, 0, 0) ? 0 : -1;
}

static int sequence_construct_prepare(op_node *node, ifd_error *err)
{
    for (int i = 0; i < node->n_inputs; i++) {
        if (check_input_tensor(node, i, err))
            return -1;
        if (node->inputs[i]->dtype != node->inputs[0]->dtype)
            return op_prepare_fail(node, err, "input %d is %s but input 0 is %s: a sequence "
                                   "holds one type", i, ifd_dtype_name(node->inputs[i]->dtype),
                                   ifd_dtype_name(node->inputs[0]->dtype));
    }
    set_sequence_output(node, 0, node->inputs[0]->dtype);
    return 0;
}

static int sequence_construct_run(op_ctx *ctx)
{
    ifd_value *out = new_sequence(ctx, 0, (size_t)ctx->n_inputs);
    if (!out)
        return -1;
    for (int i = 0; i < ctx->n_inputs; i++)
        if (append_tensor_copy(ctx, out, op_input(ctx, i)))
            return -1;
    return 0;
}

static int sequence_length_prepare(op_node *node, ifd_error *err)
{
    if (check_sequence_input(node, 0, err))
        return -1;
    set_output(node, 0, IFD_INT64, 0, NULL);
    return 0;
}

static int sequence_length_run(op_ctx *ctx)
{
    const ifd_value *seq = sequence_input(ctx, 0);
    if (!seq)
        return op_fail(ctx, "input is not a sequence");
    ifd_tensor *y = op_output(ctx, 0, IFD_INT64, 0, NULL);
    if (!y)
        return -1;
    *(int64_t *)y->data = (int64_t)seq->length;
    return 0;
}

/* ---- SequenceAt, SequenceInsert, SequenceErase ----------------------------- */

static int sequence_at_prepare(op_node *node, ifd_error *err)
{
    if (check_sequence_input(node, 0, err))
        return -1;
    if (!input_info(node, 1))
        return op_prepare_fail(node, err, "position is required");
    if (check_position_input(node, 1, err))
        return -1;
    set_output(node, 0, node->inputs[0]->dtype, -1, NULL);
    return 0;
}

static int sequence_at_run(op_ctx *ctx)
{
    const ifd_value *seq = sequence_input(ctx, 0);
    int64_t at;
    if (!seq)
        return op_fail(ctx, "input is not a sequence");
    if (read_position(ctx, 1, (int64_t)seq->length, false, 0, &at))
        return -1;
    const ifd_tensor *item = &seq->items[at]->tensor;
    ifd_tensor *y = op_output(ctx, 0, item->dtype, item->rank, item->dims);
    if (!y)
        return -1;
    return copy_tensor_data(ctx, item, y);
}

static int sequence_insert_prepare(op_node *node, ifd_error *err)
{
    if (check_sequence_input(node, 0, err) || check_input_tensor(node, 1, err) ||
        check_position_input(node, 2, err))
        return -1;
    if (node->inputs[1]->dtype != node->inputs[0]->dtype)
        return op_prepare_fail(node, err, "tensor is %s but the sequence holds %s",
                               ifd_dtype_name(node->inputs[1]->dtype),
                               ifd_dtype_name(node->inputs[0]->dtype));
    set_sequence_output(node, 0, node->inputs[0]->dtype);
    return 0;
}

static int sequence_insert_run(op_ctx *ctx)
{
    const ifd_value *seq = sequence_input(ctx, 0);
    const ifd_tensor *t = op_input(ctx, 1);
    int64_t at;
    if (!seq || !t)
        return op_fail(ctx, "needs a sequence and a tensor");
    if (t->dtype != ctx->node->inputs[0]->dtype)
        return op_fail(ctx, "tensor is %s but the sequence holds %s", ifd_dtype_name(t->dtype),
                       ifd_dtype_name(ctx->node->inputs[0]->dtype));
    if (read_position(ctx, 2, (int64_t)seq->length, true, (int64_t)seq->length, &at))
        return -1;
    ifd_value *out = new_sequence(ctx, 0, seq->length + 1);
    if (!out)
        return -1;
    for (size_t i = 0; i <= seq->length; i++) {
        int rc = (int64_t)i == at ? append_tensor_copy(ctx, out, t) : 0;
        if (!rc && i < seq->length)
            rc = append_copy(ctx, out, seq->items[i]);
        if (rc)
            return -1;
    }
    return 0;
}

static int sequence_erase_prepare(op_node *node, ifd_error *err)
{
    if (check_sequence_input(node, 0, err) || check_position_input(node, 1, err))
        return -1;
    set_sequence_output(node, 0, node->inputs[0]->dtype);
    return 0;
}

static int sequence_erase_run(op_ctx *ctx)
{
    const ifd_value *seq = sequence_input(ctx, 0);
    int64_t at;
    if (!seq)
        return op_fail(ctx, "input is not a sequence");
    if (seq->length == 0)
        return op_fail(ctx, "cannot erase from an empty sequence");
    if (read_position(ctx, 1, (int64_t)seq->length, false, -1, &at))
        return -1;
    ifd_value *out = new_sequence(ctx, 0, seq->length - 1);
    if (!out)
        return -1;
    for (size_t i = 0; i < seq->length; i++)
        if ((int64_t)i != at && append_copy(ctx, out, seq->items[i]))
            return -1;
    return 0;
}

/* ---- SplitToSequence --------------------------------------------------------- */

typedef struct split_to_sequence_state {
    int64_t axis;
    bool keepdims;
} split_to_sequence_state;

static int split_to_sequence_prepare(op_node *node, ifd_error *err)
{
    if (check_input_tensor(node, 0, err))
        return -1;
    const value_info *split = input_info(node, 1);
    if (split && (split->kind != IFD_VALUE_TENSOR ||
                  (split->dtype != IFD_INT32 && split->dtype != IFD_INT64)))
        return op_prepare_fail(node, err, "split must be an int32 or int64 tensor");
    if (split && split->rank > 1)
        return op_prepare_fail(node, err, "split must be a scalar or 1-D");
    split_to_sequence_state *st = calloc(1, sizeof(*st));
    if (!st)
        return op_prepare_fail(node, err, "out of memory");
    node->state = st;
    st->axis = op_attr_int(node, "axis", 0);
    st->keepdims = op_attr_int(node, "keepdims", 1) != 0;
    const value_info *in = node->inputs[0];
    if (in->rank >= 0 && (st->axis < -in->rank || st->axis >= in->rank))
        return op_prepare_fail(node, err, "axis %lld is out of range for rank %d",
                               (long long)st->axis, in->rank);
    set_sequence_output(node, 0, in->dtype);
    return 0;
}

static int split_to_sequence_run(op_ctx *ctx)
{
    const split_to_sequence_state *st = ctx->node->state;
    const ifd_tensor *x = op_input(ctx, 0), *split = input_tensor(ctx, 1);
    int64_t axis;
    if (!normalize_axis(st->axis, x->rank, &axis))
        return op_fail(ctx, "axis %lld is out of range for rank %d", (long long)st->axis,
                       x->rank);
    int64_t dim = x->dims[axis], n_parts, chunk = 1;
    const ifd_tensor *sizes = NULL;
    bool squeeze = false;
    if (!split) {
        n_parts = dim; /* one slice per index, squeezed unless keepdims */
        squeeze = !st->keepdims;
    } else if (split->rank == 0) {
        chunk = tensor_get_int64(split, 0);
        if (chunk <= 0)
            return op_fail(ctx, "split %lld must be positive", (long long)chunk);
        n_parts = (dim + chunk - 1) / chunk;
    } else {
        sizes = split;
        n_parts = ifd_tensor_count(split);
        int64_t total = 0;
        for (int64_t i = 0; i < n_parts; i++) {
            int64_t s = tensor_get_int64(split, (size_t)i);
            if (s < 0 || s > dim - total)
                return op_fail(ctx, "split sizes must be non-negative and add up to dim %lld "
                               "of axis %lld", (long long)dim, (long long)axis);
            total += s;
        }
        if (total != dim)
            return op_fail(ctx, "split sizes add up to %lld, not dim %lld of axis %lld",
                           (long long)total, (long long)dim, (long long)axis);
    }
    ifd_value *out = new_sequence(ctx, 0, (size_t)n_parts);
    if (!out)
        return -1;
    int64_t src_strides[IFD_MAX_RANK], offset = 0;
    contiguous_strides(x->rank, x->dims, src_strides);
    for (int64_t i = 0; i < n_parts; i++) {
        int64_t len = sizes ? tensor_get_int64(sizes, (size_t)i)
                            : (offset + chunk <= dim ? chunk : dim - offset);
        int64_t dims[IFD_MAX_RANK], dst_strides[IFD_MAX_RANK];
        memcpy(dims, x->dims, sizeof(dims));
        dims[axis] = len;
        ifd_value *item = calloc(1, sizeof(*item));
        ifd_error err;
        if (!item)
            return op_fail(ctx, "out of memory");
        out->items[out->length++] = item;
        item->kind = IFD_VALUE_TENSOR;
        if (tensor_alloc(&item->tensor, x->dtype, x->rank, dims, "sequence item", &err) != IFD_OK)
            return op_fail(ctx, "%s", err.message);
        contiguous_strides(x->rank, dims, dst_strides);
        if (layout_copy_strided(ctx, x->rank, dims, x->dtype, item->tensor.data, 0, dst_strides,
                                x->data, offset * src_strides[axis], src_strides))
            return -1;
        if (squeeze) {
            int64_t kept[IFD_MAX_RANK];
            int r = 0;
            for (int k = 0; k < x->rank; k++)
                if (k != axis)
                    kept[r++] = x->dims[k];
            tensor_set_shape(&item->tensor, r, kept);
        }
        offset += len;
    }
    return 0;
}

/* ---- ConcatFromSequence ------------------------------------------------------ */

typedef struct concat_from_sequence_state {
    int64_t axis;
    bool new_axis;
} concat_from_sequence_state;

static int concat_from_sequence_prepare(op_node *node, ifd_error *err)
{
    if (check_sequence_input(node, 0, err))
        return -1;
    if (!op_attr_has(node, "axis"))
        return op_prepare_fail(node, err, "the axis attribute is required");
    concat_from_sequence_state *st = calloc(1, sizeof(*st));
    if (!st)
        return op_prepare_fail(node, err, "out of memory");
    node->state = st;
    st->axis = op_attr_int(node, "axis", 0);
    st->new_axis = op_attr_int(node, "new_axis", 0) != 0;
    set_output(node, 0, node->inputs[0]->dtype, -1, NULL);
    return 0;
}

static int concat_from_sequence_run(op_ctx *ctx)
{
    const concat_from_sequence_state *st = ctx->node->state;
    const ifd_value *seq = sequence_input(ctx, 0);
    if (!seq)
        return op_fail(ctx, "input is not a sequence");
    if (seq->length == 0)
        return op_fail(ctx, "cannot concatenate an empty sequence");
    const ifd_tensor *first = &seq->items[0]->tensor;
    int rank = first->rank + (st->new_axis ? 1 : 0);
    int64_t axis;
    if (rank > IFD_MAX_RANK || !normalize_axis(st->axis, rank, &axis))
        return op_fail(ctx, "axis %lld is out of range for rank %d%s", (long long)st->axis,
                       first->rank, st->new_axis ? " (new_axis)" : "");
    /* each item seen as its shape with the new axis (of 1) inserted */
    int64_t dims[IFD_MAX_RANK], total = 0;
    for (size_t i = 0; i < seq->length; i++) {
        const ifd_tensor *t = &seq->items[i]->tensor;
        int64_t item_dims[IFD_MAX_RANK];
        if (seq->items[i]->kind != IFD_VALUE_TENSOR || t->dtype != first->dtype ||
            t->rank != first->rank)
            return op_fail(ctx, "item %zu does not match item 0's type and rank", i);
        for (int k = 0, j = 0; k < rank; k++)
            item_dims[k] = st->new_axis && k == axis ? 1 : t->dims[j++];
        for (int k = 0; k < rank; k++)
            if (k != axis && i > 0 && item_dims[k] != dims[k])
                return op_fail(ctx, "item %zu has dim %lld on axis %d, item 0 %lld", i,
                               (long long)item_dims[k], k, (long long)dims[k]);
        if (i == 0)
            memcpy(dims, item_dims, sizeof(dims));
        total += item_dims[axis];
    }
    dims[axis] = total;
    ifd_tensor *y = op_output(ctx, 0, first->dtype, rank, dims);
    if (!y)
        return -1;
    int64_t dst_strides[IFD_MAX_RANK], offset = 0;
    contiguous_strides(rank, dims, dst_strides);
    for (size_t i = 0; i < seq->length; i++) {
        const ifd_tensor *t = &seq->items[i]->tensor;
        int64_t item_dims[IFD_MAX_RANK], src_strides[IFD_MAX_RANK];
        for (int k = 0, j = 0; k < rank; k++)
            item_dims[k] = st->new_axis && k == axis ? 1 : t->dims[j++];
        contiguous_strides(rank, item_dims, src_strides);
        if (layout_copy_strided(ctx, rank, item_dims, t->dtype, y->data,
                                offset * dst_strides[axis], dst_strides, t->data, 0, src_strides))
            return -1;
        offset += item_dims[axis];
    }
    return 0;
}

static const op_def defs[] = {
    {"", "SequenceEmpty", 11, 11, sequence_empty_prepare, sequence_empty_run, NULL},
    {"", "SequenceConstruct", 11, 11, sequence_construct_prepare, sequence_construct_run, NULL},
    {"", "SequenceAt", 11, 11, sequence_at_prepare, sequence_at_run, NULL},
    {"", "SequenceInsert", 11, 11, sequence_insert_prepare, sequence_insert_run, NULL},
    {"", "SequenceErase", 11, 11, sequence_erase_prepare, sequence_erase_run, NULL},
    {"", "SequenceLength", 11, 11, sequence_length_prepare, sequence_length_run, NULL},
    {"", "SplitToSequence", 11, 11, split_to_sequence_prepare, split_to_sequence_run, free},
    {"", "ConcatFromSequence", 11, 11, concat_from_sequence_prepare, concat_from_sequence_run,
     free},
};

OP_FAMILY(ops_sequence, defs);
