/*
 * ops/indexing.c — operators that select or place elements by index: Gather,
 * GatherElements, GatherND, Scatter, ScatterElements, ScatterND, Slice,
 * Compress, OneHot and NonZero.
 *
 * Indices come from data, so each one is checked against its axis before any
 * element moves (op_fail names the bad index; negative indices count from the
 * end as ONNX allows from opset 11). The checked indices become element
 * offsets in scratch memory, and one block-gather kernel then copies blocks
 * of `inner` contiguous elements (a whole row for Gather and GatherND, a
 * single element for GatherElements) in parallel. Scatters run serially in
 * index order, so that with duplicate indices the last update wins as in the
 * ONNX reference. Slice is a strided copy by layout.c's layout_copy_strided.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../op.h"
#include "op_util.h"


/* Elements per parallel chunk below which threading does not pay. */
#define GATHER_GRAIN 32768

/* ---- shared helpers ----------------------------------------------------- */





/* Input i must hold int32 or int64 indices (int64 only where `int64_only`). */
static int check_indices(op_node *node, int i, bool int64_only, ifd_error *err)
{
    if (check_input_tensor(node, i, err))
        return -1;
    ifd_dtype d = node->inputs[i]->dtype;
    if (d != IFD_INT64 && (int64_only || d != IFD_INT32))
        return op_prepare_fail(node, err, "indices must be %s, not %s",
                               int64_only ? "int64" : "int32 or int64", ifd_dtype_name(d));
    return 0;
}



static int64_t product(int from, int to, const int64_t *dims)
{
    int64_t n = 1;
    for (int k = from; k < to; k++)
        n *= dims[k];
    return n;
}

/* Index element i (int32 or int64) made non-negative against dim; false when
 * it is outside [-dim, dim). */
static bool read_index(const ifd_tensor *indices, size_t i, int64_t dim, int64_t *out)
{
    int64_t v = indices->dtype == IFD_INT32 ? ((const int32_t *)indices->data)[i]
                                            : ((const int64_t *)indices->data)[i];
    if (v < -dim || v >= dim)
        return false;
    *out = v < 0 ? v + dim : v;
    return true;
}

static int64_t raw_index(const ifd_tensor *indices, size_t i)
{
    return indices->dtype == IFD_INT32 ? ((const int32_t *)indices->data)[i]
                                       : ((const int64_t *)indices->data)[i];
}

/* Scratch for n int64 offsets (at least one, so that n == 0 is fine). */
static int64_t *offsets_scratch(op_ctx *ctx, int64_t n)
{
    if (n < 0 || (uint64_t)n > IFD_MAX_TENSOR_BYTES / sizeof(int64_t)) {
        op_fail(ctx, "too many indices");
        return NULL;
    }
    return op_scratch(ctx, (size_t)(n ? n : 1) * sizeof(int64_t));
}

/* Deep copy n strings; false on OOM. */
static bool copy_strings(ifd_string *dst, const ifd_string *src, size_t n)
{
    return strings_copy(dst, src, n);
}

static int copy_tensor(op_ctx *ctx, ifd_tensor *y, const ifd_tensor *x)
{
    size_t count = (size_t)ifd_tensor_count(x);
    if (x->dtype == IFD_STRING) {
        if (!copy_strings(y->data, x->data, count))
            return op_fail(ctx, "out of memory copying strings");
    } else if (count) {
        memcpy(y->data, x->data, count * ifd_dtype_size(x->dtype));
    }
    return 0;
}

/* ---- the block gather --------------------------------------------------- */

typedef struct elem16 {
    uint64_t lo, hi;
} elem16;

#define ELEM_SIZES(X) X(1, uint8_t) X(2, uint16_t) X(4, uint32_t) X(8, uint64_t) X(16, elem16)

/* Destination block b (of `inner` elements) comes from source element
 * (b / per_outer) * outer_stride + offsets[b % per_outer]. */
typedef struct block_gather {
    char *dst;
    const char *src;
    size_t esz;
    int64_t inner;
    int64_t per_outer;
    int64_t outer_stride;
    const int64_t *offsets;
} block_gather;

#define DEFINE_GATHER_ELEMS(SIZE, TYPE)                                                            \
    static void gather_elems_##SIZE(const block_gather *g, int64_t begin, int64_t end)             \
    {                                                                                              \
        TYPE *d = (TYPE *)(void *)g->dst;                                                          \
        const TYPE *s = (const TYPE *)(const void *)g->src;                                        \
        for (int64_t b = begin; b < end; b++)                                                      \
            d[b] = s[(b / g->per_outer) * g->outer_stride + g->offsets[b % g->per_outer]];         \
    }
ELEM_SIZES(DEFINE_GATHER_ELEMS)

static void gather_blocks(void *arg, size_t begin, size_t end)
{
    const block_gather *g = arg;
    if (g->inner == 1) {
        switch (g->esz) {
#define CASE_GATHER(SIZE, TYPE)                                                                    \
    case SIZE: gather_elems_##SIZE(g, (int64_t)begin, (int64_t)end); break;
            ELEM_SIZES(CASE_GATHER)
#undef CASE_GATHER
        default: break;
        }
        return;
    }
    size_t bytes = (size_t)g->inner * g->esz;
    for (size_t b = begin; b < end; b++) {
        int64_t from =
            ((int64_t)b / g->per_outer) * g->outer_stride + g->offsets[(int64_t)b % g->per_outer];
        memcpy(g->dst + b * bytes, g->src + from * (int64_t)g->esz, bytes);
    }
}

/* Copy `blocks` blocks into y as described by g (g->dst/src/esz are set
 * here). */
static int run_block_gather(op_ctx *ctx, block_gather *g, ifd_tensor *y, const ifd_tensor *x,
                            int64_t blocks)
{
    g->dst = y->data;
    g->src = x->data;
    g->esz = ifd_dtype_size(x->dtype);
    if (blocks == 0 || g->inner == 0)
        return 0;
    if (x->dtype == IFD_STRING) {
        ifd_string *d = y->data;
        const ifd_string *s = x->data;
        for (int64_t b = 0; b < blocks; b++) {
            int64_t from = (b / g->per_outer) * g->outer_stride + g->offsets[b % g->per_outer];
            if (!copy_strings(d + b * g->inner, s + from, (size_t)g->inner))
                return op_fail(ctx, "out of memory copying strings");
        }
        return 0;
    }
    size_t grain = (size_t)(GATHER_GRAIN / g->inner);
    op_parallel_for(ctx, (size_t)blocks, grain ? grain : 1, gather_blocks, g);
    return 0;
}

/* ---- Gather ------------------------------------------------------------- */

static int gather_prepare(op_node *node, ifd_error *err)
{
    if (check_input_tensor(node, 0, err) || check_indices(node, 1, false, err))
        return -1;
    const value_info *data = node->inputs[0], *indices = node->inputs[1];
    int64_t axis_attr = op_attr_int(node, "axis", 0), axis;
    set_output(node, 0, data->dtype, -1, NULL);
    if (data->rank < 0)
        return 0;
    if (!normalize_axis(axis_attr, data->rank, &axis))
        return op_prepare_fail(node, err, "axis %lld is out of range for rank %d",
                               (long long)axis_attr, data->rank);
    if (indices->rank < 0)
        return 0;
    int rank = data->rank - 1 + indices->rank;
    if (rank > IFD_MAX_RANK)
        return op_prepare_fail(node, err, "output rank %d is more than %d", rank, IFD_MAX_RANK);
    value_info *out = node->outputs[0];
    out->rank = rank;
    for (int k = 0, o = 0; k < data->rank; k++) {
        if (k == axis)
            for (int q = 0; q < indices->rank; q++)
                out->dims[o++] = indices->dims[q];
        else
            out->dims[o++] = data->dims[k];
    }
    return 0;
}

static int gather_run(op_ctx *ctx)
{
    const ifd_tensor *data = op_input(ctx, 0), *indices = op_input(ctx, 1);
    int64_t axis, dims[IFD_MAX_RANK];
    if (!normalize_axis(op_attr_int(ctx->node, "axis", 0), data->rank, &axis))
        return op_fail(ctx, "axis is out of range for rank %d", data->rank);
    if (indices->dtype != IFD_INT32 && indices->dtype != IFD_INT64)
        return op_fail(ctx, "indices must be int32 or int64");
    int rank = data->rank - 1 + indices->rank;
    if (rank > IFD_MAX_RANK)
        return op_fail(ctx, "output rank %d is more than %d", rank, IFD_MAX_RANK);
    for (int k = 0, o = 0; k < data->rank; k++) {
        if (k == axis)
            for (int q = 0; q < indices->rank; q++)
                dims[o++] = indices->dims[q];
        else
            dims[o++] = data->dims[k];
    }
    int64_t n_idx = ifd_tensor_count(indices), dim = data->dims[axis];
    int64_t inner = product((int)axis + 1, data->rank, data->dims);
    int64_t *offsets = offsets_scratch(ctx, n_idx);
    if (!offsets)
        return -1;
    for (int64_t j = 0; j < n_idx; j++) {
        if (!read_index(indices, (size_t)j, dim, &offsets[j]))
            return op_fail(ctx, "index %lld is out of range for axis %lld of size %lld",
                           (long long)raw_index(indices, (size_t)j), (long long)axis,
                           (long long)dim);
        offsets[j] *= inner;
    }
    ifd_tensor *y = op_output(ctx, 0, data->dtype, rank, dims);
    if (!y)
        return -1;
    block_gather g = {.inner = inner,
                      .per_outer = n_idx ? n_idx : 1,
                      .outer_stride = dim * inner,
                      .offsets = offsets};
    /* With inner > 0 the block count is bounded by y's size; with 0 it is moot. */
    return run_block_gather(ctx, &g, y, data,
                            inner ? product(0, (int)axis, data->dims) * n_idx : 0);
}

/* ---- GatherElements ----------------------------------------------------- */

static int gather_elements_prepare(op_node *node, ifd_error *err)
{
    if (check_input_tensor(node, 0, err) || check_indices(node, 1, false, err))
        return -1;
    const value_info *data = node->inputs[0], *indices = node->inputs[1];
    int64_t axis_attr = op_attr_int(node, "axis", 0), axis;
    if (data->rank >= 0 && !normalize_axis(axis_attr, data->rank, &axis))
        return op_prepare_fail(node, err, "axis %lld is out of range for rank %d",
                               (long long)axis_attr, data->rank);
    if (data->rank >= 0 && indices->rank >= 0 && data->rank != indices->rank)
        return op_prepare_fail(node, err, "indices have rank %d but data rank %d", indices->rank,
                               data->rank);
    set_output(node, 0, data->dtype, indices->rank, indices->dims);
    return 0;
}

/* Element offsets into data for every position of `indices` along axis, with
 * the other coordinates taken from the position itself. */
static int element_offsets(op_ctx *ctx, const ifd_tensor *data, const ifd_tensor *indices,
                           int64_t axis, int64_t *offsets)
{
    int rank = data->rank;
    int64_t strides[IFD_MAX_RANK], idx[IFD_MAX_RANK] = {0}, base = 0;
    int64_t count = ifd_tensor_count(indices);
    contiguous_strides(rank, data->dims, strides);
    for (int64_t i = 0; i < count; i++) {
        int64_t at;
        if (!read_index(indices, (size_t)i, data->dims[axis], &at))
            return op_fail(ctx, "index %lld is out of range for axis %lld of size %lld",
                           (long long)raw_index(indices, (size_t)i), (long long)axis,
                           (long long)data->dims[axis]);
        offsets[i] = base + at * strides[axis];
        /* Advance the position; base excludes the axis coordinate. */
        for (int k = rank - 1; k >= 0; k--) {
            if (++idx[k] < indices->dims[k]) {
                if (k != axis)
                    base += strides[k];
                break;
            }
            if (k != axis)
                base -= (idx[k] - 1) * strides[k];
            idx[k] = 0;
        }
    }
    return 0;
}

/* Indices must fit inside data on every axis but `axis`, whose extent the
 * index values address. */
static int check_element_shapes(op_ctx *ctx, const ifd_tensor *data, const ifd_tensor *indices,
                                int64_t axis, const char *what)
{
    if (indices->rank != data->rank)
        return op_fail(ctx, "%s have rank %d but data rank %d", what, indices->rank, data->rank);
    for (int k = 0; k < data->rank; k++)
        if (k != axis && indices->dims[k] > data->dims[k])
            return op_fail(ctx, "%s dim %d is %lld, larger than data's %lld", what, k,
                           (long long)indices->dims[k], (long long)data->dims[k]);
    return 0;
}

static int gather_elements_run(op_ctx *ctx)
{
    const ifd_tensor *data = op_input(ctx, 0), *indices = op_input(ctx, 1);
    int64_t axis;
    if (!normalize_axis(op_attr_int(ctx->node, "axis", 0), data->rank, &axis))
        return op_fail(ctx, "axis is out of range for rank %d", data->rank);
    if (check_element_shapes(ctx, data, indices, axis, "indices"))
        return -1;
    int64_t count = ifd_tensor_count(indices);
    int64_t *offsets = offsets_scratch(ctx, count);
    if (!offsets || element_offsets(ctx, data, indices, axis, offsets))
        return -1;
    ifd_tensor *y = op_output(ctx, 0, data->dtype, indices->rank, indices->dims);
    if (!y)
        return -1;
    block_gather g = {
        .inner = 1, .per_outer = count ? count : 1, .outer_stride = 0, .offsets = offsets};
    return run_block_gather(ctx, &g, y, data, count);
}

/* ---- GatherND ----------------------------------------------------------- */

/* GatherND-11 has no batch_dims; GatherND-12 adds it. */
static int gathernd_shape(int64_t b, int data_rank, const int64_t *data_dims, int idx_rank,
                          const int64_t *idx_dims, int *rank, int64_t *dims, char *buf, size_t size)
{
    if (idx_rank < 1 || b < 0 || b >= idx_rank || b >= data_rank) {
        snprintf(buf, size, "batch_dims %lld does not fit indices of rank %d and data rank %d",
                 (long long)b, idx_rank, data_rank);
        return -1;
    }
    int64_t k = idx_dims[idx_rank - 1];
    if (k >= 0 && (k < 1 || k > data_rank - b)) {
        snprintf(buf, size, "index tuples of length %lld do not fit data rank %d", (long long)k,
                 data_rank);
        return -1;
    }
    for (int d = 0; d < b; d++)
        if (idx_dims[d] >= 0 && data_dims[d] >= 0 && idx_dims[d] != data_dims[d]) {
            snprintf(buf, size, "batch dim %d differs between data and indices", d);
            return -1;
        }
    if (k < 0) {
        *rank = -1;
        return 0;
    }
    *rank = idx_rank - 1 + data_rank - (int)b - (int)k;
    if (*rank > IFD_MAX_RANK) {
        snprintf(buf, size, "output rank %d is more than %d", *rank, IFD_MAX_RANK);
        return -1;
    }
    int o = 0;
    for (int d = 0; d < idx_rank - 1; d++)
        dims[o++] = idx_dims[d];
    for (int d = (int)(b + k); d < data_rank; d++)
        dims[o++] = data_dims[d];
    return 0;
}

static int gathernd_prepare(op_node *node, ifd_error *err)
{
    if (check_input_tensor(node, 0, err) || check_indices(node, 1, true, err))
        return -1;
    const value_info *data = node->inputs[0], *indices = node->inputs[1];
    int64_t b = node->version >= 12 ? op_attr_int(node, "batch_dims", 0) : 0;
    int rank;
    int64_t dims[IFD_MAX_RANK];
    char reason[256];
    set_output(node, 0, data->dtype, -1, NULL);
    if (data->rank < 0 || indices->rank < 0)
        return 0;
    if (gathernd_shape(b, data->rank, data->dims, indices->rank, indices->dims, &rank, dims, reason,
                       sizeof(reason)))
        return op_prepare_fail(node, err, "%s", reason);
    set_output(node, 0, data->dtype, rank, dims);
    return 0;
}

/* Element offset into data of each index tuple of `indices`, whose first b
 * dims are batch dims shared with data. */
static int tuple_offsets(op_ctx *ctx, const ifd_tensor *data, const ifd_tensor *indices, int64_t b,
                         int64_t *offsets)
{
    int64_t strides[IFD_MAX_RANK];
    int64_t k = indices->dims[indices->rank - 1];
    int64_t tuples = k ? ifd_tensor_count(indices) / k : 0;
    int64_t per_batch = product((int)b, indices->rank - 1, indices->dims);
    int64_t batch_size = product((int)b, data->rank, data->dims);
    contiguous_strides(data->rank, data->dims, strides);
    for (int64_t t = 0; t < tuples; t++) {
        int64_t off = (per_batch ? t / per_batch : 0) * batch_size;
        for (int64_t j = 0; j < k; j++) {
            int64_t at, dim = data->dims[b + j];
            if (!read_index(indices, (size_t)(t * k + j), dim, &at))
                return op_fail(ctx, "index %lld is out of range for axis %lld of size %lld",
                               (long long)raw_index(indices, (size_t)(t * k + j)),
                               (long long)(b + j), (long long)dim);
            off += at * strides[b + j];
        }
        offsets[t] = off;
    }
    return 0;
}

static int gathernd_run(op_ctx *ctx)
{
    const ifd_tensor *data = op_input(ctx, 0), *indices = op_input(ctx, 1);
    int64_t b = ctx->node->version >= 12 ? op_attr_int(ctx->node, "batch_dims", 0) : 0;
    int rank;
    int64_t dims[IFD_MAX_RANK];
    char reason[256];
    if (indices->dtype != IFD_INT64)
        return op_fail(ctx, "indices must be int64");
    if (gathernd_shape(b, data->rank, data->dims, indices->rank, indices->dims, &rank, dims, reason,
                       sizeof(reason)))
        return op_fail(ctx, "%s", reason);
    int64_t k = indices->dims[indices->rank - 1];
    int64_t tuples = product(0, indices->rank - 1, indices->dims);
    int64_t *offsets = offsets_scratch(ctx, tuples);
    if (!offsets || tuple_offsets(ctx, data, indices, b, offsets))
        return -1;
    ifd_tensor *y = op_output(ctx, 0, data->dtype, rank, dims);
    if (!y)
        return -1;
    block_gather g = {.inner = product((int)(b + k), data->rank, data->dims),
                      .per_outer = tuples ? tuples : 1,
                      .outer_stride = 0,
                      .offsets = offsets};
    return run_block_gather(ctx, &g, y, data, tuples);
}

/* ---- scatter reductions ------------------------------------------------- */

typedef enum reduction { REDUCE_NONE, REDUCE_ADD, REDUCE_MUL, REDUCE_MAX, REDUCE_MIN } reduction;

/* Integers are combined in unsigned arithmetic of at least their width, so
 * that overflow wraps instead of being undefined. */
/* clang-format off */
#define REDUCE_TYPES(X) \
    X(IFD_FLOAT, float, float) \
    X(IFD_DOUBLE, double, double) \
    X(IFD_INT8, int8_t, uint32_t) \
    X(IFD_INT16, int16_t, uint32_t) \
    X(IFD_INT32, int32_t, uint32_t) \
    X(IFD_INT64, int64_t, uint64_t) \
    X(IFD_UINT8, uint8_t, uint32_t) \
    X(IFD_UINT16, uint16_t, uint32_t) \
    X(IFD_UINT32, uint32_t, uint32_t) \
    X(IFD_UINT64, uint64_t, uint64_t)
/* clang-format on */

static uint16_t reduce_half(uint16_t a, uint16_t b, reduction op, bool bf16)
{
    float x = bf16 ? bfloat16_to_float(a) : half_to_float(a);
    float y = bf16 ? bfloat16_to_float(b) : half_to_float(b);
    float r = op == REDUCE_ADD ? x + y
              : op == REDUCE_MUL ? x * y
              : op == REDUCE_MAX ? (x < y ? y : x)
                                 : (y < x ? y : x);
    return bf16 ? float_to_bfloat16(r) : float_to_half(r);
}

/* dst[i] = dst[i] (op) src[i] for n elements; REDUCE_NONE copies. */
static bool scatter_apply(ifd_dtype dtype, reduction op, char *dst, const char *src, int64_t n)
{
    size_t esz = ifd_dtype_size(dtype);
    if (dtype == IFD_STRING)
        return copy_strings((ifd_string *)(void *)dst, (const ifd_string *)(const void *)src,
                            (size_t)n);
    if (op == REDUCE_NONE) {
        memcpy(dst, src, (size_t)n * esz);
        return true;
    }
    switch (dtype) {
#define CASE_REDUCE(DT, TYPE, WIDE)                                                                \
    case DT: {                                                                                     \
        TYPE *d = (TYPE *)(void *)dst;                                                             \
        const TYPE *s = (const TYPE *)(const void *)src;                                           \
        for (int64_t i = 0; i < n; i++) {                                                          \
            if (op == REDUCE_MAX)                                                                  \
                d[i] = d[i] < s[i] ? s[i] : d[i];                                                  \
            else if (op == REDUCE_MIN)                                                             \
                d[i] = s[i] < d[i] ? s[i] : d[i];                                                  \
            else                                                                                   \
                d[i] = (TYPE)(op == REDUCE_ADD ? (WIDE)d[i] + (WIDE)s[i]                           \
                                               : (WIDE)d[i] * (WIDE)s[i]);                         \
        }                                                                                          \
        break;                                                                                     \
    }
        REDUCE_TYPES(CASE_REDUCE)
#undef CASE_REDUCE
    case IFD_FLOAT16:
    case IFD_BFLOAT16: {
        uint16_t *d = (uint16_t *)(void *)dst;
        const uint16_t *s = (const uint16_t *)(const void *)src;
        for (int64_t i = 0; i < n; i++)
            d[i] = reduce_half(d[i], s[i], op, dtype == IFD_BFLOAT16);
        break;
    }
    default: break;
    }
    return true;
}

/* ScatterElements-16 and ScatterND-16 add `reduction` (add, mul), the -18
 * versions (onnx 1.13 Operators.md) max and min; all need a numeric type. */
static int reduction_prepare(op_node *node, reduction *op, ifd_error *err)
{
    const char *name = node->version >= 16 ? op_attr_string(node, "reduction", "none") : "none";
    ifd_dtype d = node->inputs[0]->dtype;
    if (strcmp(name, "none") == 0)
        *op = REDUCE_NONE;
    else if (strcmp(name, "add") == 0)
        *op = REDUCE_ADD;
    else if (strcmp(name, "mul") == 0)
        *op = REDUCE_MUL;
    else if (strcmp(name, "max") == 0 && node->version >= 18)
        *op = REDUCE_MAX;
    else if (strcmp(name, "min") == 0 && node->version >= 18)
        *op = REDUCE_MIN;
    else
        return op_prepare_fail(node, err, "reduction '%s' is not one of none, add, mul%s", name,
                               node->version >= 18 ? ", max, min" : "");
    if (*op != REDUCE_NONE && !dtype_is_numeric(d))
        return op_prepare_fail(node, err, "reduction '%s' is not supported for %s", name,
                               ifd_dtype_name(d));
    return 0;
}

typedef struct scatter_state {
    reduction op;
} scatter_state;

static int scatter_state_new(op_node *node, ifd_error *err)
{
    scatter_state *st = calloc(1, sizeof(*st));
    if (!st)
        return op_prepare_fail(node, err, "out of memory");
    node->state = st;
    return reduction_prepare(node, &st->op, err);
}

/* ---- ScatterElements / Scatter ------------------------------------------ */

/* Scatter-9/11 is the deprecated name of ScatterElements, same semantics. */
static int scatter_elements_prepare(op_node *node, ifd_error *err)
{
    if (check_input_tensor(node, 0, err) || check_indices(node, 1, false, err) ||
        check_input_tensor(node, 2, err))
        return -1;
    const value_info *data = node->inputs[0];
    int64_t axis_attr = op_attr_int(node, "axis", 0), axis;
    if (node->inputs[2]->dtype != data->dtype)
        return op_prepare_fail(node, err, "updates are %s but data is %s",
                               ifd_dtype_name(node->inputs[2]->dtype), ifd_dtype_name(data->dtype));
    if (data->rank >= 0 && !normalize_axis(axis_attr, data->rank, &axis))
        return op_prepare_fail(node, err, "axis %lld is out of range for rank %d",
                               (long long)axis_attr, data->rank);
    if (scatter_state_new(node, err))
        return -1;
    set_output(node, 0, data->dtype, data->rank, data->dims);
    return 0;
}

static int scatter_elements_run(op_ctx *ctx)
{
    const scatter_state *st = ctx->node->state;
    const ifd_tensor *data = op_input(ctx, 0), *indices = op_input(ctx, 1),
                     *updates = op_input(ctx, 2);
    int64_t axis;
    if (!normalize_axis(op_attr_int(ctx->node, "axis", 0), data->rank, &axis))
        return op_fail(ctx, "axis is out of range for rank %d", data->rank);
    if (!tensor_same_shape(indices, updates) || updates->dtype != data->dtype)
        return op_fail(ctx, "updates must match indices' shape and data's dtype");
    if (check_element_shapes(ctx, data, indices, axis, "indices"))
        return -1;
    int64_t count = ifd_tensor_count(indices);
    int64_t *offsets = offsets_scratch(ctx, count);
    if (!offsets || element_offsets(ctx, data, indices, axis, offsets))
        return -1;
    ifd_tensor *y = op_output(ctx, 0, data->dtype, data->rank, data->dims);
    if (!y || copy_tensor(ctx, y, data))
        return -1;
    size_t esz = ifd_dtype_size(data->dtype);
    for (int64_t i = 0; i < count; i++)
        if (!scatter_apply(data->dtype, st->op, (char *)y->data + offsets[i] * (int64_t)esz,
                           (const char *)updates->data + i * (int64_t)esz, 1))
            return op_fail(ctx, "out of memory copying strings");
    return 0;
}

/* ---- ScatterND ---------------------------------------------------------- */

static int scatternd_prepare(op_node *node, ifd_error *err)
{
    if (check_input_tensor(node, 0, err) || check_indices(node, 1, true, err) ||
        check_input_tensor(node, 2, err))
        return -1;
    const value_info *data = node->inputs[0];
    if (node->inputs[2]->dtype != data->dtype)
        return op_prepare_fail(node, err, "updates are %s but data is %s",
                               ifd_dtype_name(node->inputs[2]->dtype), ifd_dtype_name(data->dtype));
    if (scatter_state_new(node, err))
        return -1;
    set_output(node, 0, data->dtype, data->rank, data->dims);
    return 0;
}

static int scatternd_run(op_ctx *ctx)
{
    const scatter_state *st = ctx->node->state;
    const ifd_tensor *data = op_input(ctx, 0), *indices = op_input(ctx, 1),
                     *updates = op_input(ctx, 2);
    if (indices->dtype != IFD_INT64 || indices->rank < 1 || updates->dtype != data->dtype)
        return op_fail(ctx, "indices must be int64 of rank >= 1 and updates of data's dtype");
    int64_t k = indices->dims[indices->rank - 1];
    if (k < 1 || k > data->rank)
        return op_fail(ctx, "index tuples of length %lld do not fit data rank %d", (long long)k,
                       data->rank);
    /* updates' shape is indices.shape[:-1] + data.shape[k:]. */
    int urank = indices->rank - 1 + data->rank - (int)k;
    bool shape_ok = updates->rank == urank;
    for (int d = 0; shape_ok && d < urank; d++)
        shape_ok =
            updates->dims[d] ==
            (d < indices->rank - 1 ? indices->dims[d] : data->dims[d - (indices->rank - 1) + k]);
    if (!shape_ok)
        return op_fail(ctx, "updates must have shape indices.shape[:-1] + data.shape[%lld:]",
                       (long long)k);
    int64_t tuples = product(0, indices->rank - 1, indices->dims);
    int64_t *offsets = offsets_scratch(ctx, tuples);
    if (!offsets || tuple_offsets(ctx, data, indices, 0, offsets))
        return -1;
    ifd_tensor *y = op_output(ctx, 0, data->dtype, data->rank, data->dims);
    if (!y || copy_tensor(ctx, y, data))
        return -1;
    int64_t inner = product((int)k, data->rank, data->dims);
    int64_t esz = (int64_t)ifd_dtype_size(data->dtype);
    for (int64_t t = 0; t < tuples; t++)
        if (!scatter_apply(data->dtype, st->op, (char *)y->data + offsets[t] * esz,
                           (const char *)updates->data + t * inner * esz, inner))
            return op_fail(ctx, "out of memory copying strings");
    return 0;
}

/* ---- Slice -------------------------------------------------------------- */

/* Slice-1 takes starts, ends and axes as attributes; Slice-10 makes them
 * inputs and adds steps. Lists known at load (attributes or constant inputs)
 * are kept here. */
typedef struct slice_state {
    bool known;
    size_t n;
    bool has_axes;
    int64_t starts[IFD_MAX_RANK], ends[IFD_MAX_RANK], axes[IFD_MAX_RANK], steps[IFD_MAX_RANK];
} slice_state;

/* Per-axis result of resolving the lists against the data dims. */
typedef struct slice_plan {
    int64_t start[IFD_MAX_RANK], step[IFD_MAX_RANK], count[IFD_MAX_RANK];
} slice_plan;

static const char *slice_resolve(const slice_state *s, int rank, const int64_t *dims, slice_plan *p,
                                 char *buf, size_t size)
{
    bool seen[IFD_MAX_RANK] = {false};
    for (int k = 0; k < rank; k++) {
        p->start[k] = 0;
        p->step[k] = 1;
        p->count[k] = dims[k];
    }
    if (s->n > (size_t)rank) {
        snprintf(buf, size, "%zu starts for rank %d", s->n, rank);
        return buf;
    }
    for (size_t i = 0; i < s->n; i++) {
        int64_t a = s->has_axes ? s->axes[i] : (int64_t)i;
        if (a < -rank || a >= rank) {
            snprintf(buf, size, "axis %lld is out of range for rank %d", (long long)a, rank);
            return buf;
        }
        a = a < 0 ? a + rank : a;
        if (seen[a]) {
            snprintf(buf, size, "axis %lld is repeated", (long long)a);
            return buf;
        }
        seen[a] = true;
        int64_t dim = dims[a], start = s->starts[i], end = s->ends[i], step = s->steps[i];
        if (step == 0) {
            snprintf(buf, size, "step for axis %lld is 0", (long long)a);
            return buf;
        }
        if (dim < 0) {
            p->count[a] = -1;
            continue;
        }
        /* ONNX: negative starts/ends count from the end, then both are
         * clamped to [0, dim] for positive steps and [-1, dim-1] (start
         * [0, dim-1]) for negative ones; INT64_MIN/MAX mean "to the edge". */
        if (start < 0)
            start += dim;
        if (end < 0)
            end += dim;
        uint64_t span, stride;
        if (step > 0) {
            start = start < 0 ? 0 : start > dim ? dim : start;
            end = end < 0 ? 0 : end > dim ? dim : end;
            span = end > start ? (uint64_t)(end - start) : 0;
            stride = (uint64_t)step;
        } else {
            start = start < 0 ? 0 : start > dim - 1 ? dim - 1 : start;
            end = end < -1 ? -1 : end > dim - 1 ? dim - 1 : end;
            span = start > end ? (uint64_t)(start - end) : 0;
            stride = (uint64_t)0 - (uint64_t)step;
        }
        p->start[a] = start;
        p->step[a] = step;
        p->count[a] = (int64_t)(span / stride + (span % stride != 0));
    }
    return NULL;
}

static const char *slice_check_counts(slice_state *s, const size_t n[4], bool have_axes,
                                      bool have_steps, char *buf, size_t size)
{
    if (n[0] != n[1] || (have_axes && n[2] != n[0]) || (have_steps && n[3] != n[0])) {
        snprintf(buf, size, "starts, ends, axes and steps must have the same length");
        return buf;
    }
    s->n = n[0];
    s->has_axes = have_axes;
    if (!have_steps)
        for (size_t i = 0; i < s->n; i++)
            s->steps[i] = 1;
    s->known = true;
    return NULL;
}

/* Slice-10 on: starts, ends and the optional axes and steps as tensors
 * (NULL when omitted). */
static const char *slice_from_tensors(const ifd_tensor *const t[4], slice_state *s, char *buf,
                                      size_t size)
{
    static const char *const names[4] = {"starts", "ends", "axes", "steps"};
    int64_t *lists[4] = {s->starts, s->ends, s->axes, s->steps};
    size_t n[4] = {0};
    for (int i = 0; i < 4; i++) {
        if (!t[i])
            continue;
        if (t[i]->rank != 1 || !tensor_read_int64s(t[i], lists[i], IFD_MAX_RANK, &n[i])) {
            snprintf(buf, size, "%s must be a 1-D int32/int64 tensor of at most %d elements",
                     names[i], IFD_MAX_RANK);
            return buf;
        }
    }
    return slice_check_counts(s, n, t[2] != NULL, t[3] != NULL, buf, size);
}

/* Slice-1: the same lists as attributes, without steps. */
static const char *slice_from_attrs(const op_node *node, slice_state *s, char *buf, size_t size)
{
    static const char *const names[3] = {"starts", "ends", "axes"};
    int64_t *lists[3] = {s->starts, s->ends, s->axes};
    size_t n[4] = {0};
    for (int i = 0; i < 3; i++) {
        const int64_t *v;
        n[i] = op_attr_ints(node, names[i], &v);
        if (i < 2 && !op_attr_has(node, names[i])) {
            snprintf(buf, size, "attribute '%s' is required", names[i]);
            return buf;
        }
        if (n[i] > IFD_MAX_RANK) {
            snprintf(buf, size, "'%s' has %zu entries, more than %d", names[i], n[i], IFD_MAX_RANK);
            return buf;
        }
        if (n[i])
            memcpy(lists[i], v, n[i] * sizeof(int64_t));
    }
    return slice_check_counts(s, n, op_attr_has(node, "axes"), false, buf, size);
}

static int slice_prepare(op_node *node, ifd_error *err)
{
    char reason[256];
    if (check_input_tensor(node, 0, err))
        return -1;
    slice_state *st = calloc(1, sizeof(*st));
    if (!st)
        return op_prepare_fail(node, err, "out of memory");
    node->state = st;
    const value_info *data = node->inputs[0];
    if (node->version < 10) {
        if (slice_from_attrs(node, st, reason, sizeof(reason)))
            return op_prepare_fail(node, err, "%s", reason);
    } else {
        const ifd_tensor *lists[4] = {NULL, NULL, NULL, NULL};
        bool all_constant = true;
        for (int i = 1; i <= 4; i++) {
            const value_info *in = input_info(node, i);
            if (i <= 2 && check_indices(node, i, false, err))
                return -1;
            if (!in)
                continue;
            if (in->kind != IFD_VALUE_TENSOR || (in->dtype != IFD_INT32 && in->dtype != IFD_INT64))
                return op_prepare_fail(node, err, "input %d must be int32 or int64", i);
            if (in->constant)
                lists[i - 1] = in->constant;
            else
                all_constant = false;
        }
        if (all_constant && slice_from_tensors(lists, st, reason, sizeof(reason)))
            return op_prepare_fail(node, err, "%s", reason);
    }
    set_output(node, 0, data->dtype, data->rank, NULL);
    if (st->known && data->rank >= 0) {
        slice_plan plan;
        if (slice_resolve(st, data->rank, data->dims, &plan, reason, sizeof(reason)))
            return op_prepare_fail(node, err, "%s", reason);
        for (int k = 0; k < data->rank; k++)
            node->outputs[0]->dims[k] = plan.count[k];
    }
    return 0;
}

static int slice_run(op_ctx *ctx)
{
    const slice_state *st = ctx->node->state;
    const ifd_tensor *data = op_input(ctx, 0);
    slice_state lists;
    slice_plan plan;
    char reason[256];
    int rank = data->rank;
    if (st->known) {
        lists = *st;
    } else {
        const ifd_tensor *t[4];
        memset(&lists, 0, sizeof(lists));
        for (int i = 0; i < 4; i++)
            t[i] = input_tensor(ctx, i + 1);
        if (!t[0] || !t[1])
            return op_fail(ctx, "starts and ends are required");
        if (slice_from_tensors(t, &lists, reason, sizeof(reason)))
            return op_fail(ctx, "%s", reason);
    }
    if (slice_resolve(&lists, rank, data->dims, &plan, reason, sizeof(reason)))
        return op_fail(ctx, "%s", reason);
    ifd_tensor *y = op_output(ctx, 0, data->dtype, rank, plan.count);
    if (!y)
        return -1;
    int64_t in_strides[IFD_MAX_RANK], src[IFD_MAX_RANK], dst[IFD_MAX_RANK], base = 0;
    contiguous_strides(rank, data->dims, in_strides);
    contiguous_strides(rank, plan.count, dst);
    for (int k = 0; k < rank; k++) {
        src[k] = in_strides[k] * plan.step[k];
        if (plan.count[k] > 0)
            base += plan.start[k] * in_strides[k];
    }
    return layout_copy_strided(ctx, rank, plan.count, data->dtype, y->data, 0, dst, data->data,
                               base, src);
}

/* ---- Compress ----------------------------------------------------------- */

/* Without axis the input is flattened. Compress-11 allows a negative axis. */
static int compress_prepare(op_node *node, ifd_error *err)
{
    if (check_input_tensor(node, 0, err) || check_input_tensor(node, 1, err))
        return -1;
    const value_info *data = node->inputs[0];
    if (node->inputs[1]->dtype != IFD_BOOL)
        return op_prepare_fail(node, err, "condition must be bool, not %s",
                               ifd_dtype_name(node->inputs[1]->dtype));
    if (!op_attr_has(node, "axis")) {
        set_output(node, 0, data->dtype, 1, NULL);
        return 0;
    }
    int64_t axis_attr = op_attr_int(node, "axis", 0), axis = 0;
    if (data->rank >= 0 &&
        (!normalize_axis(axis_attr, data->rank, &axis) || (node->version < 11 && axis_attr < 0)))
        return op_prepare_fail(node, err, "axis %lld is out of range for rank %d",
                               (long long)axis_attr, data->rank);
    set_output(node, 0, data->dtype, data->rank, data->dims);
    if (data->rank >= 0)
        node->outputs[0]->dims[axis] = -1;
    return 0;
}

static int compress_run(op_ctx *ctx)
{
    const ifd_tensor *data = op_input(ctx, 0), *cond = op_input(ctx, 1);
    bool flat = !op_attr_has(ctx->node, "axis");
    int64_t axis = 0, dims[IFD_MAX_RANK];
    int rank = flat ? 1 : data->rank;
    if (cond->dtype != IFD_BOOL || cond->rank != 1)
        return op_fail(ctx, "condition must be a 1-D bool tensor");
    if (flat) {
        dims[0] = ifd_tensor_count(data);
    } else {
        if (!normalize_axis(op_attr_int(ctx->node, "axis", 0), data->rank, &axis))
            return op_fail(ctx, "axis is out of range for rank %d", data->rank);
        memcpy(dims, data->dims, sizeof(dims));
    }
    /* numpy.compress: entries past the axis must not select anything. */
    int64_t dim = dims[axis], n_cond = cond->dims[0], selected = 0;
    const uint8_t *c = cond->data;
    for (int64_t i = 0; i < n_cond; i++) {
        if (c[i] && i >= dim)
            return op_fail(ctx, "condition selects index %lld past axis size %lld", (long long)i,
                           (long long)dim);
        selected += c[i] != 0;
    }
    int64_t inner = product((int)axis + 1, rank, dims);
    int64_t *offsets = offsets_scratch(ctx, selected);
    if (!offsets)
        return -1;
    for (int64_t i = 0, j = 0; i < n_cond && i < dim; i++)
        if (c[i])
            offsets[j++] = i * inner;
    dims[axis] = selected;
    ifd_tensor *y = op_output(ctx, 0, data->dtype, rank, dims);
    if (!y)
        return -1;
    block_gather g = {.inner = inner,
                      .per_outer = selected ? selected : 1,
                      .outer_stride = dim * inner,
                      .offsets = offsets};
    return run_block_gather(ctx, &g, y, data, inner ? product(0, (int)axis, dims) * selected : 0);
}

/* ---- OneHot ------------------------------------------------------------- */

static int onehot_prepare(op_node *node, ifd_error *err)
{
    for (int i = 0; i < 3; i++)
        if (check_input_tensor(node, i, err))
            return -1;
    const value_info *indices = node->inputs[0], *values = node->inputs[2];
    if (!dtype_is_numeric(indices->dtype) || !dtype_is_numeric(node->inputs[1]->dtype))
        return op_prepare_fail(node, err, "indices and depth must be numeric");
    int64_t axis = op_attr_int(node, "axis", -1);
    set_output(node, 0, values->dtype, -1, NULL);
    if (indices->rank < 0)
        return 0;
    int rank = indices->rank + 1;
    if (rank > IFD_MAX_RANK)
        return op_prepare_fail(node, err, "output rank %d is more than %d", rank, IFD_MAX_RANK);
    if (!normalize_axis(axis, rank, &axis))
        return op_prepare_fail(node, err, "axis %lld is out of range for output rank %d",
                               (long long)op_attr_int(node, "axis", -1), rank);
    set_output(node, 0, values->dtype, rank, NULL);
    for (int k = 0, from = 0; k < rank; k++)
        node->outputs[0]->dims[k] = k == axis ? -1 : indices->dims[from++];
    return 0;
}

static int onehot_run(op_ctx *ctx)
{
    const ifd_tensor *indices = op_input(ctx, 0), *depth_t = op_input(ctx, 1),
                     *values = op_input(ctx, 2);
    int rank = indices->rank + 1;
    int64_t axis, dims[IFD_MAX_RANK];
    if (rank > IFD_MAX_RANK || !normalize_axis(op_attr_int(ctx->node, "axis", -1), rank, &axis))
        return op_fail(ctx, "axis is out of range for output rank %d", rank);
    if (ifd_tensor_count(depth_t) != 1 || !dtype_is_numeric(depth_t->dtype))
        return op_fail(ctx, "depth must be one number");
    if (ifd_tensor_count(values) != 2)
        return op_fail(ctx, "values must hold [off_value, on_value]");
    if (!dtype_is_numeric(indices->dtype))
        return op_fail(ctx, "indices must be numeric");
    int64_t depth = tensor_get_int64(depth_t, 0);
    if (depth < 1)
        return op_fail(ctx, "depth %lld must be positive", (long long)depth);
    for (int k = 0, from = 0; k < rank; k++)
        dims[k] = k == axis ? depth : indices->dims[from++];
    ifd_tensor *y = op_output(ctx, 0, values->dtype, rank, dims);
    if (!y)
        return -1;
    int64_t count = ifd_tensor_count(y), inner = product((int)axis, indices->rank, indices->dims);
    size_t esz = ifd_dtype_size(values->dtype);
    const char *off = values->data, *on = (const char *)values->data + esz;
    char *out = y->data;
    /* Fill with off_value, then put on_value at each valid index; indices in
     * [-depth, 0) count from the end, others leave the row all off. */
    for (int64_t i = 0; i < count; i++)
        if (!scatter_apply(values->dtype, REDUCE_NONE, out + i * (int64_t)esz, off, 1))
            return op_fail(ctx, "out of memory copying strings");
    int64_t n = ifd_tensor_count(indices);
    for (int64_t i = 0; i < n; i++) {
        int64_t v = tensor_get_int64(indices, (size_t)i);
        if (v < -depth || v >= depth)
            continue;
        v = v < 0 ? v + depth : v;
        int64_t at = (i / inner) * depth * inner + v * inner + i % inner;
        if (!scatter_apply(values->dtype, REDUCE_NONE, out + at * (int64_t)esz, on, 1))
            return op_fail(ctx, "out of memory copying strings");
    }
    return 0;
}

/* ---- NonZero ------------------------------------------------------------ */

/* Zero tests per dtype: -0.0 is zero, NaN is not, a string is "non-zero"
 * when non-empty (numpy's rules). */
/* clang-format off */
#define NONZERO_TYPES(X) \
    X(IFD_FLOAT, float) \
    X(IFD_DOUBLE, double) \
    X(IFD_INT8, int8_t) \
    X(IFD_INT16, int16_t) \
    X(IFD_INT32, int32_t) \
    X(IFD_INT64, int64_t) \
    X(IFD_UINT8, uint8_t) \
    X(IFD_UINT16, uint16_t) \
    X(IFD_UINT32, uint32_t) \
    X(IFD_UINT64, uint64_t) \
    X(IFD_BOOL, uint8_t)
/* clang-format on */

static bool element_nonzero(const ifd_tensor *x, size_t i)
{
    switch (x->dtype) {
#define CASE_NONZERO(DT, TYPE)                                                                     \
    case DT: return ((const TYPE *)x->data)[i] != 0;
        NONZERO_TYPES(CASE_NONZERO)
#undef CASE_NONZERO
    case IFD_FLOAT16:
    case IFD_BFLOAT16: return (((const uint16_t *)x->data)[i] & 0x7fffu) != 0;
    case IFD_COMPLEX64:
        return ((const float *)x->data)[2 * i] != 0 || ((const float *)x->data)[2 * i + 1] != 0;
    case IFD_COMPLEX128:
        return ((const double *)x->data)[2 * i] != 0 || ((const double *)x->data)[2 * i + 1] != 0;
    case IFD_STRING: return ((const ifd_string *)x->data)[i].size != 0;
    default: return false;
    }
}

static int nonzero_prepare(op_node *node, ifd_error *err)
{
    if (check_input_tensor(node, 0, err))
        return -1;
    int64_t dims[2] = {node->inputs[0]->rank < 0 ? -1 : node->inputs[0]->rank, -1};
    /* A scalar reports as 1-D, as numpy.nonzero does. */
    if (dims[0] == 0)
        dims[0] = 1;
    set_output(node, 0, IFD_INT64, 2, dims);
    return 0;
}

static int nonzero_run(op_ctx *ctx)
{
    const ifd_tensor *x = op_input(ctx, 0);
    int rank = x->rank ? x->rank : 1;
    int64_t count = ifd_tensor_count(x), found = 0, idx[IFD_MAX_RANK] = {0};
    for (int64_t i = 0; i < count; i++)
        found += element_nonzero(x, (size_t)i);
    int64_t dims[2] = {rank, found};
    ifd_tensor *y = op_output(ctx, 0, IFD_INT64, 2, dims);
    if (!y)
        return -1;
    int64_t *out = y->data, j = 0;
    for (int64_t i = 0; i < count; i++) {
        if (element_nonzero(x, (size_t)i)) {
            for (int k = 0; k < rank; k++)
                out[k * found + j] = x->rank ? idx[k] : 0;
            j++;
        }
        for (int k = x->rank - 1; k >= 0; k--) {
            if (++idx[k] < x->dims[k])
                break;
            idx[k] = 0;
        }
    }
    return 0;
}

static const op_def defs[] = {
    {"", "Gather", 1, 13, gather_prepare, gather_run, NULL},
    {"", "GatherElements", 11, 13, gather_elements_prepare, gather_elements_run, NULL},
    {"", "GatherND", 11, 13, gathernd_prepare, gathernd_run, NULL},
    {"", "ScatterElements", 11, 18, scatter_elements_prepare, scatter_elements_run, free},
    {"", "Scatter", 9, 11, scatter_elements_prepare, scatter_elements_run, free},
    {"", "ScatterND", 11, 18, scatternd_prepare, scatternd_run, free},
    {"", "Slice", 1, 13, slice_prepare, slice_run, free},
    {"", "Compress", 9, 11, compress_prepare, compress_run, NULL},
    {"", "OneHot", 9, 11, onehot_prepare, onehot_run, NULL},
    {"", "NonZero", 9, 13, nonzero_prepare, nonzero_run, NULL},
};
OP_FAMILY(ops_indexing, defs);
