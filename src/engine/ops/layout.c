/*
 * ops/layout.c — operators that move elements without computing on them:
 * Transpose, Concat, Split, Pad, CenterCropPad, DepthToSpace, SpaceToDepth,
 * Trilu and ReverseSequence.
 *
 * Most of them are one primitive, the strided copy: walk an index space of up
 * to 2*IFD_MAX_RANK dims and copy the element at src + sum(i_k*src_stride_k)
 * to dst + sum(i_k*dst_stride_k). Transpose permutes the source strides,
 * Concat/Split offset one side into a sub-block, DepthToSpace/SpaceToDepth are
 * 6-D transposes. The same primitive serves Slice (indexing.c) and Expand and
 * Tile (shape.c), which is why layout_copy_strided is the one non-static
 * function here. Before copying, size-1 dims are dropped and dims contiguous on
 * both sides are merged, so most copies become memcpy of long rows; when the
 * destination is contiguous along the last dim and the source along another
 * (2-D transposes, NCHW<->NHWC) a cache-blocked transpose is used.
 *
 * Kernels work on element sizes (1, 2, 4, 8, 16 bytes), not dtypes: moving a
 * float or an int32 is the same. Strings are deep-copied one by one on the
 * calling thread, since a string copy can fail on OOM and a parallel chunk
 * must not fail.
 */
#include <stdlib.h>
#include <string.h>

#include "../op.h"
#include "op_util.h"

#define COPY_MAX_RANK (2 * IFD_MAX_RANK)
/* Elements per parallel chunk below which threading does not pay. */
#define COPY_GRAIN 32768
/* Side of the square tiles of the blocked transpose. */
#define TRANSPOSE_BLOCK 16

/* ---- element kernels --------------------------------------------------- */

typedef struct elem16 {
    uint64_t lo, hi;
} elem16;

#define ELEM_SIZES(X) X(1, uint8_t) X(2, uint16_t) X(4, uint32_t) X(8, uint64_t) X(16, elem16)

#define DEFINE_ROW_COPY(SIZE, TYPE)                                                                \
    static void row_copy_##SIZE(char *dst, int64_t ds, const char *src, int64_t ss, int64_t n)     \
    {                                                                                              \
        TYPE *d = (TYPE *)(void *)dst;                                                             \
        const TYPE *s = (const TYPE *)(const void *)src;                                           \
        for (int64_t j = 0; j < n; j++)                                                            \
            d[j * ds] = s[j * ss];                                                                 \
    }
ELEM_SIZES(DEFINE_ROW_COPY)

/* One tile of a transpose: d[i*drow + j] = s[i + j*scol]. */
#define DEFINE_TILE_COPY(SIZE, TYPE)                                                               \
    static void tile_copy_##SIZE(char *dst, int64_t drow, const char *src, int64_t scol,           \
                                 int64_t rows, int64_t cols)                                       \
    {                                                                                              \
        TYPE *d = (TYPE *)(void *)dst;                                                             \
        const TYPE *s = (const TYPE *)(const void *)src;                                           \
        for (int64_t i = 0; i < rows; i++)                                                         \
            for (int64_t j = 0; j < cols; j++)                                                     \
                d[i * drow + j] = s[i + j * scol];                                                 \
    }
ELEM_SIZES(DEFINE_TILE_COPY)

static void row_copy(size_t esz, char *dst, int64_t ds, const char *src, int64_t ss, int64_t n)
{
    if (ds == 1 && ss == 1) {
        memcpy(dst, src, (size_t)n * esz);
        return;
    }
    switch (esz) {
#define CASE_ROW(SIZE, TYPE)                                                                       \
    case SIZE: row_copy_##SIZE(dst, ds, src, ss, n); break;
        ELEM_SIZES(CASE_ROW)
#undef CASE_ROW
    default: break;
    }
}

static void tile_copy(size_t esz, char *dst, int64_t drow, const char *src, int64_t scol,
                      int64_t rows, int64_t cols)
{
    switch (esz) {
#define CASE_TILE(SIZE, TYPE)                                                                      \
    case SIZE: tile_copy_##SIZE(dst, drow, src, scol, rows, cols); break;
        ELEM_SIZES(CASE_TILE)
#undef CASE_TILE
    default: break;
    }
}

/* ---- the strided copy -------------------------------------------------- */

typedef struct copy_plan {
    int rank;
    int64_t dims[COPY_MAX_RANK];
    int64_t dst_strides[COPY_MAX_RANK];
    int64_t src_strides[COPY_MAX_RANK];
    char *dst;       /* at element 0 of the index space */
    const char *src; /* at element 0 of the index space */
    size_t esz;
    int outer;                            /* dims [0, outer) are walked row by row */
    int64_t tiles_per_row, tiles_per_col; /* blocked transpose only */
} copy_plan;

/* Element offsets of the start of row `row` of dims [0, outer). */
static void row_offsets(const copy_plan *p, int64_t row, int64_t *idx, int64_t *doff, int64_t *soff)
{
    *doff = 0;
    *soff = 0;
    for (int k = p->outer - 1; k >= 0; k--) {
        idx[k] = row % p->dims[k];
        row /= p->dims[k];
        *doff += idx[k] * p->dst_strides[k];
        *soff += idx[k] * p->src_strides[k];
    }
}

static void next_row(const copy_plan *p, int64_t *idx, int64_t *doff, int64_t *soff)
{
    for (int k = p->outer - 1; k >= 0; k--) {
        idx[k]++;
        *doff += p->dst_strides[k];
        *soff += p->src_strides[k];
        if (idx[k] < p->dims[k])
            return;
        *doff -= p->dims[k] * p->dst_strides[k];
        *soff -= p->dims[k] * p->src_strides[k];
        idx[k] = 0;
    }
}

static void copy_rows(void *arg, size_t begin, size_t end)
{
    const copy_plan *p = arg;
    int64_t idx[COPY_MAX_RANK], doff, soff;
    int last = p->rank - 1;
    row_offsets(p, (int64_t)begin, idx, &doff, &soff);
    for (size_t r = begin; r < end; r++) {
        row_copy(p->esz, p->dst + doff * (int64_t)p->esz, p->dst_strides[last],
                 p->src + soff * (int64_t)p->esz, p->src_strides[last], p->dims[last]);
        next_row(p, idx, &doff, &soff);
    }
}

/* Work item = (outer row, tile row, tile column) of a blocked transpose over
 * the last two dims, where src is contiguous along dim rank-2 and dst along
 * dim rank-1. */
static void copy_tiles(void *arg, size_t begin, size_t end)
{
    const copy_plan *p = arg;
    int64_t idx[COPY_MAX_RANK], doff, soff;
    int r0 = p->rank - 2, r1 = p->rank - 1;
    int64_t per_outer = p->tiles_per_row * p->tiles_per_col;
    for (size_t w = begin; w < end; w++) {
        int64_t outer = (int64_t)w / per_outer, t = (int64_t)w % per_outer;
        int64_t i0 = (t / p->tiles_per_col) * TRANSPOSE_BLOCK;
        int64_t j0 = (t % p->tiles_per_col) * TRANSPOSE_BLOCK;
        int64_t rows = p->dims[r0] - i0 < TRANSPOSE_BLOCK ? p->dims[r0] - i0 : TRANSPOSE_BLOCK;
        int64_t cols = p->dims[r1] - j0 < TRANSPOSE_BLOCK ? p->dims[r1] - j0 : TRANSPOSE_BLOCK;
        row_offsets(p, outer, idx, &doff, &soff);
        doff += i0 * p->dst_strides[r0] + j0;
        soff += i0 + j0 * p->src_strides[r1];
        tile_copy(p->esz, p->dst + doff * (int64_t)p->esz, p->dst_strides[r0],
                  p->src + soff * (int64_t)p->esz, p->src_strides[r1], rows, cols);
    }
}

static int copy_strings(op_ctx *ctx, const copy_plan *p)
{
    int64_t idx[COPY_MAX_RANK], doff, soff, rows = 1;
    int last = p->rank - 1;
    ifd_string *d = (ifd_string *)(void *)p->dst;
    const ifd_string *s = (const ifd_string *)(const void *)p->src;
    for (int k = 0; k < p->outer; k++)
        rows *= p->dims[k];
    row_offsets(p, 0, idx, &doff, &soff);
    for (int64_t r = 0; r < rows; r++) {
        for (int64_t j = 0; j < p->dims[last]; j++) {
            const ifd_string *from = &s[soff + j * p->src_strides[last]];
            if (!string_set(&d[doff + j * p->dst_strides[last]], from->data ? from->data : "",
                            from->size))
                return op_fail(ctx, "out of memory copying strings");
        }
        next_row(p, idx, &doff, &soff);
    }
    return 0;
}

/* Copy the index space `dims` from src to dst (element strides and bases;
 * strides may be 0 to broadcast, or negative). Returns 0, or -1 after
 * op_fail. rank may reach 2*IFD_MAX_RANK; rank 0 copies one element. */
int layout_copy_strided(op_ctx *ctx, int rank, const int64_t *dims, ifd_dtype dtype, void *dst,
                        int64_t dst_base, const int64_t *dst_strides, const void *src,
                        int64_t src_base, const int64_t *src_strides)
{
    copy_plan p;
    int n = 0;
    memset(&p, 0, sizeof(p));
    p.esz = ifd_dtype_size(dtype);
    if (rank < 0 || rank > COPY_MAX_RANK || p.esz == 0)
        return op_fail(ctx, "cannot copy rank %d %s tensors", rank, ifd_dtype_name(dtype));
    for (int k = 0; k < rank; k++)
        if (dims[k] == 0)
            return 0;
    /* Walk from the innermost dim outwards, dropping size-1 dims and merging a
     * dim into the one inside it when both sides are contiguous across them.
     * The kept dims fill the arrays from the end. */
    for (int k = rank - 1; k >= 0; k--) {
        if (dims[k] == 1)
            continue;
        if (n > 0) {
            int in = COPY_MAX_RANK - n;
            if (dst_strides[k] == p.dst_strides[in] * p.dims[in] &&
                src_strides[k] == p.src_strides[in] * p.dims[in]) {
                p.dims[in] *= dims[k];
                continue;
            }
        }
        n++;
        p.dims[COPY_MAX_RANK - n] = dims[k];
        p.dst_strides[COPY_MAX_RANK - n] = dst_strides[k];
        p.src_strides[COPY_MAX_RANK - n] = src_strides[k];
    }
    if (n == 0) {
        n = 1;
        p.dims[COPY_MAX_RANK - 1] = 1;
        p.dst_strides[COPY_MAX_RANK - 1] = 1;
        p.src_strides[COPY_MAX_RANK - 1] = 1;
    }
    memmove(p.dims, p.dims + COPY_MAX_RANK - n, (size_t)n * sizeof(int64_t));
    memmove(p.dst_strides, p.dst_strides + COPY_MAX_RANK - n, (size_t)n * sizeof(int64_t));
    memmove(p.src_strides, p.src_strides + COPY_MAX_RANK - n, (size_t)n * sizeof(int64_t));
    p.rank = n;
    p.outer = n - 1;
    p.dst = (char *)dst + dst_base * (int64_t)p.esz;
    p.src = (const char *)src + src_base * (int64_t)p.esz;

    if (dtype == IFD_STRING)
        return copy_strings(ctx, &p);

    /* When dst is contiguous along the last dim and src along another one,
     * move that one next to the last (the walk order is free, the strides say
     * where each element goes) and copy in square tiles, so that both sides
     * read and write whole cache lines. */
    int src_unit = -1;
    for (int k = 0; k < n - 1; k++)
        if (p.src_strides[k] == 1)
            src_unit = k;
    if (src_unit >= 0 && p.dst_strides[n - 1] == 1 && p.src_strides[n - 1] != 1 &&
        p.dims[src_unit] >= 8 && p.dims[n - 1] >= 8) {
        int64_t dim = p.dims[src_unit], ds = p.dst_strides[src_unit];
        for (int k = src_unit; k < n - 2; k++) {
            p.dims[k] = p.dims[k + 1];
            p.dst_strides[k] = p.dst_strides[k + 1];
            p.src_strides[k] = p.src_strides[k + 1];
        }
        p.dims[n - 2] = dim;
        p.dst_strides[n - 2] = ds;
        p.src_strides[n - 2] = 1;
        p.outer = n - 2;
        p.tiles_per_row = (dim + TRANSPOSE_BLOCK - 1) / TRANSPOSE_BLOCK;
        p.tiles_per_col = (p.dims[n - 1] + TRANSPOSE_BLOCK - 1) / TRANSPOSE_BLOCK;
        int64_t items = p.tiles_per_row * p.tiles_per_col;
        for (int k = 0; k < p.outer; k++)
            items *= p.dims[k];
        size_t grain = COPY_GRAIN / (TRANSPOSE_BLOCK * TRANSPOSE_BLOCK);
        op_parallel_for(ctx, (size_t)items, grain, copy_tiles, &p);
        return 0;
    }
    int64_t inner = p.dims[n - 1], rows = 1;
    for (int k = 0; k < p.outer; k++)
        rows *= p.dims[k];
    size_t grain = (size_t)(COPY_GRAIN / inner);
    op_parallel_for(ctx, (size_t)rows, grain ? grain : 1, copy_rows, &p);
    return 0;
}

/* ---- shared helpers ----------------------------------------------------- */





/* Normalise axis into [0, rank), accepting negative values counted from the
 * end. */


/* ---- Transpose ---------------------------------------------------------- */

typedef struct transpose_state {
    int n_perm; /* 0: reverse the dims (the default) */
    int64_t perm[IFD_MAX_RANK];
} transpose_state;

static bool valid_perm(const int64_t *perm, int n)
{
    bool seen[IFD_MAX_RANK] = {false};
    for (int i = 0; i < n; i++) {
        if (perm[i] < 0 || perm[i] >= n || seen[perm[i]])
            return false;
        seen[perm[i]] = true;
    }
    return true;
}

static int transpose_prepare(op_node *node, ifd_error *err)
{
    if (check_input_tensor(node, 0, err))
        return -1;
    const value_info *in = node->inputs[0];
    const int64_t *perm;
    size_t n = op_attr_ints(node, "perm", &perm);
    transpose_state *st = calloc(1, sizeof(*st));
    if (!st)
        return op_prepare_fail(node, err, "out of memory");
    node->state = st;
    if (op_attr_has(node, "perm")) {
        if (n > IFD_MAX_RANK)
            return op_prepare_fail(node, err, "perm has %zu entries, more than rank %d", n,
                                   IFD_MAX_RANK);
        for (size_t i = 0; i < n; i++)
            st->perm[i] = perm[i];
        st->n_perm = (int)n;
        if (!valid_perm(st->perm, st->n_perm))
            return op_prepare_fail(node, err, "perm is not a permutation of its %zu axes", n);
        if (in->rank >= 0 && in->rank != st->n_perm)
            return op_prepare_fail(node, err, "perm has %d entries but the input has rank %d",
                                   st->n_perm, in->rank);
    }
    set_output(node, 0, in->dtype, in->rank, NULL);
    for (int k = 0; k < in->rank; k++)
        node->outputs[0]->dims[k] = in->dims[st->n_perm ? st->perm[k] : in->rank - 1 - k];
    return 0;
}

static int transpose_run(op_ctx *ctx)
{
    const transpose_state *st = ctx->node->state;
    const ifd_tensor *x = op_input(ctx, 0);
    int64_t perm[IFD_MAX_RANK], dims[IFD_MAX_RANK], in_strides[IFD_MAX_RANK],
        src_strides[IFD_MAX_RANK], dst_strides[IFD_MAX_RANK];
    int rank = x->rank;
    if (st->n_perm && st->n_perm != rank)
        return op_fail(ctx, "perm has %d entries but the input has rank %d", st->n_perm, rank);
    for (int k = 0; k < rank; k++)
        perm[k] = st->n_perm ? st->perm[k] : rank - 1 - k;
    contiguous_strides(rank, x->dims, in_strides);
    for (int k = 0; k < rank; k++) {
        dims[k] = x->dims[perm[k]];
        src_strides[k] = in_strides[perm[k]];
    }
    ifd_tensor *y = op_output(ctx, 0, x->dtype, rank, dims);
    if (!y)
        return -1;
    contiguous_strides(rank, dims, dst_strides);
    return layout_copy_strided(ctx, rank, dims, x->dtype, y->data, 0, dst_strides, x->data, 0,
                               src_strides);
}

/* ---- Concat ------------------------------------------------------------- */

static int concat_prepare(op_node *node, ifd_error *err)
{
    /* Concat-1 defaults axis to 1; from Concat-4 it is required. */
    if (node->version >= 4 && !op_attr_has(node, "axis"))
        return op_prepare_fail(node, err, "attribute 'axis' is required");
    int64_t axis_attr = op_attr_int(node, "axis", 1), axis = 0;
    if (node->n_inputs < 1)
        return op_prepare_fail(node, err, "needs at least one input");
    int rank = -1;
    for (int i = 0; i < node->n_inputs; i++) {
        if (check_input_tensor(node, i, err))
            return -1;
        if (node->inputs[i]->dtype != node->inputs[0]->dtype)
            return op_prepare_fail(node, err, "input %d is %s but input 0 is %s", i,
                                   ifd_dtype_name(node->inputs[i]->dtype),
                                   ifd_dtype_name(node->inputs[0]->dtype));
        int r = node->inputs[i]->rank;
        if (r >= 0 && rank >= 0 && r != rank)
            return op_prepare_fail(node, err, "input %d has rank %d but another has rank %d", i, r,
                                   rank);
        if (r >= 0)
            rank = r;
    }
    if (rank == 0)
        return op_prepare_fail(node, err, "cannot concatenate scalars");
    if (rank > 0 && !normalize_axis(axis_attr, rank, &axis))
        return op_prepare_fail(node, err, "axis %lld is out of range for rank %d",
                               (long long)axis_attr, rank);
    set_output(node, 0, node->inputs[0]->dtype, rank, NULL);
    for (int k = 0; k < rank; k++) {
        /* The concatenated dim is the sum when every input's is known; the
         * others are whichever input knows them. */
        int64_t d = k == axis ? 0 : -1;
        for (int i = 0; i < node->n_inputs; i++) {
            const value_info *in = node->inputs[i];
            int64_t di = in->rank < 0 ? -1 : in->dims[k];
            if (k == axis) {
                d = d < 0 || di < 0 || di > INT64_MAX - d ? -1 : d + di;
                if (d < 0)
                    break;
            } else if (di >= 0) {
                if (d >= 0 && d != di)
                    return op_prepare_fail(node, err,
                                           "input %d has dim %lld on axis %d, another has %lld", i,
                                           (long long)di, k, (long long)d);
                d = di;
            }
        }
        node->outputs[0]->dims[k] = d;
    }
    return 0;
}

static int concat_run(op_ctx *ctx)
{
    const ifd_tensor *first = op_input(ctx, 0);
    int rank = first->rank;
    int64_t axis, dims[IFD_MAX_RANK];
    if (rank == 0)
        return op_fail(ctx, "cannot concatenate scalars");
    if (!normalize_axis(op_attr_int(ctx->node, "axis", 1), rank, &axis))
        return op_fail(ctx, "axis is out of range for rank %d", rank);
    for (int k = 0; k < rank; k++)
        dims[k] = first->dims[k];
    dims[axis] = 0;
    for (int i = 0; i < ctx->n_inputs; i++) {
        const ifd_tensor *x = op_input(ctx, i);
        if (!x)
            return op_fail(ctx, "input %d is missing", i);
        if (x->rank != rank || x->dtype != first->dtype)
            return op_fail(ctx, "input %d is rank %d %s, input 0 is rank %d %s", i, x->rank,
                           ifd_dtype_name(x->dtype), rank, ifd_dtype_name(first->dtype));
        for (int k = 0; k < rank; k++)
            if (k != axis && x->dims[k] != first->dims[k])
                return op_fail(ctx, "input %d has dim %lld on axis %d, input 0 has %lld", i,
                               (long long)x->dims[k], k, (long long)first->dims[k]);
        if (x->dims[axis] > INT64_MAX - dims[axis])
            return op_fail(ctx, "the concatenated dim overflows");
        dims[axis] += x->dims[axis];
    }
    ifd_tensor *y = op_output(ctx, 0, first->dtype, rank, dims);
    if (!y)
        return -1;
    int64_t dst_strides[IFD_MAX_RANK], src_strides[IFD_MAX_RANK], offset = 0;
    contiguous_strides(rank, dims, dst_strides);
    for (int i = 0; i < ctx->n_inputs; i++) {
        const ifd_tensor *x = op_input(ctx, i);
        contiguous_strides(rank, x->dims, src_strides);
        if (layout_copy_strided(ctx, rank, x->dims, x->dtype, y->data, offset * dst_strides[axis],
                                dst_strides, x->data, 0, src_strides))
            return -1;
        offset += x->dims[axis];
    }
    return 0;
}

/* ---- Split -------------------------------------------------------------- */

/* Split sizes come from the `split` attribute (Split-1, 2, 11), or from a
 * second input (Split-1, and Split-13 where the attribute became the input).
 * Without them the axis is cut into equal parts. Split-18 (onnx 1.13
 * Operators.md) adds `num_outputs`: parts of ceil(dim / num_outputs), the
 * last one smaller when the dim does not divide. */
typedef struct split_state {
    bool ceil_parts; /* Split-18 num_outputs */
    size_t n_split;  /* 0: not known at load */
    int64_t split[];
} split_state;

/* Split-18's num_outputs parts of `dim`; false when they cannot all be
 * non-negative (e.g. 5 into 4: 2, 2, 2, -1). */
static bool split_ceil_parts(int64_t dim, int n_out, int64_t *split)
{
    int64_t chunk = (dim + n_out - 1) / n_out;
    for (int i = 0; i < n_out; i++)
        split[i] = chunk;
    split[n_out - 1] = dim - chunk * (n_out - 1);
    return split[n_out - 1] >= 0;
}

static bool split_from_input(const op_node *node)
{
    return node->version >= 13 || node->version == 1;
}

static int split_prepare(op_node *node, ifd_error *err)
{
    if (check_input_tensor(node, 0, err))
        return -1;
    if (node->n_outputs < 1)
        return op_prepare_fail(node, err, "needs at least one output");
    const value_info *in = node->inputs[0];
    const int64_t *attr = NULL;
    size_t n_attr = node->version < 13 ? op_attr_ints(node, "split", &attr) : 0;
    int64_t axis_attr = op_attr_int(node, "axis", 0), axis = -1;
    split_state *st = calloc(1, sizeof(*st) + (size_t)node->n_outputs * sizeof(int64_t));
    if (!st)
        return op_prepare_fail(node, err, "out of memory");
    node->state = st;
    if (n_attr) {
        if (n_attr != (size_t)node->n_outputs)
            return op_prepare_fail(node, err, "'split' has %zu entries for %d outputs", n_attr,
                                   node->n_outputs);
        for (size_t i = 0; i < n_attr; i++) {
            if (attr[i] < 0)
                return op_prepare_fail(node, err, "'split' entry %zu is negative", i);
            st->split[i] = attr[i];
        }
        st->n_split = n_attr;
    }
    const value_info *sizes = split_from_input(node) && !n_attr ? input_info(node, 1) : NULL;
    if (sizes && sizes->kind == IFD_VALUE_TENSOR && sizes->constant) {
        size_t count;
        if (!tensor_read_int64s(sizes->constant, st->split, (size_t)node->n_outputs, &count) ||
            count != (size_t)node->n_outputs)
            return op_prepare_fail(node, err, "'split' input must hold %d integers",
                                   node->n_outputs);
        for (size_t i = 0; i < count; i++)
            if (st->split[i] < 0)
                return op_prepare_fail(node, err, "'split' entry %zu is negative", i);
        st->n_split = count;
    }
    if (node->version >= 18 && op_attr_has(node, "num_outputs")) {
        int64_t n = op_attr_int(node, "num_outputs", 0);
        if (sizes)
            return op_prepare_fail(node, err, "takes the 'split' input or 'num_outputs', not both");
        if (n != node->n_outputs)
            return op_prepare_fail(node, err, "num_outputs is %lld but the node has %d outputs",
                                   (long long)n, node->n_outputs);
        st->ceil_parts = true;
    }
    if (in->rank >= 0 && !normalize_axis(axis_attr, in->rank, &axis))
        return op_prepare_fail(node, err, "axis %lld is out of range for rank %d",
                               (long long)axis_attr, in->rank);
    if (st->ceil_parts && axis >= 0 && in->dims[axis] >= 0) {
        if (!split_ceil_parts(in->dims[axis], node->n_outputs, st->split))
            return op_prepare_fail(node, err, "dim %lld of axis %lld cannot be cut into %d parts "
                                   "of ceil(%lld / %d)", (long long)in->dims[axis],
                                   (long long)axis, node->n_outputs, (long long)in->dims[axis],
                                   node->n_outputs);
        st->n_split = (size_t)node->n_outputs;
    }
    for (int i = 0; i < node->n_outputs; i++) {
        set_output(node, i, in->dtype, in->rank, in->rank >= 0 ? in->dims : NULL);
        if (axis < 0)
            continue;
        int64_t d = -1;
        if (st->n_split)
            d = st->split[i];
        else if (!sizes && in->dims[axis] >= 0 && in->dims[axis] % node->n_outputs == 0)
            d = in->dims[axis] / node->n_outputs;
        node->outputs[i]->dims[axis] = d;
    }
    return 0;
}

static int split_run(op_ctx *ctx)
{
    const split_state *st = ctx->node->state;
    const ifd_tensor *x = op_input(ctx, 0);
    int n_out = ctx->node->n_outputs, rank = x->rank;
    int64_t axis, *split = op_scratch(ctx, (size_t)n_out * sizeof(int64_t));
    if (!split)
        return -1;
    if (!normalize_axis(op_attr_int(ctx->node, "axis", 0), rank, &axis))
        return op_fail(ctx, "axis is out of range for rank %d", rank);
    const ifd_tensor *sizes = split_from_input(ctx->node) ? input_tensor(ctx, 1) : NULL;
    if (st->n_split) {
        memcpy(split, st->split, (size_t)n_out * sizeof(int64_t));
    } else if (sizes) {
        /* Split-1's input has the data's (float) type; Split-13's is int64. */
        if (ifd_tensor_count(sizes) != n_out || !dtype_is_numeric(sizes->dtype))
            return op_fail(ctx, "'split' input must hold %d sizes", n_out);
        for (int i = 0; i < n_out; i++) {
            split[i] = tensor_get_int64(sizes, (size_t)i);
            if (split[i] < 0)
                return op_fail(ctx, "'split' entry %d is negative", i);
        }
    } else if (st->ceil_parts) {
        if (!split_ceil_parts(x->dims[axis], n_out, split))
            return op_fail(ctx, "dim %lld of axis %lld cannot be cut into %d parts of ceil(%lld / %d)",
                           (long long)x->dims[axis], (long long)axis, n_out,
                           (long long)x->dims[axis], n_out);
    } else {
        if (x->dims[axis] % n_out != 0)
            return op_fail(ctx, "dim %lld of axis %lld does not split into %d equal parts",
                           (long long)x->dims[axis], (long long)axis, n_out);
        for (int i = 0; i < n_out; i++)
            split[i] = x->dims[axis] / n_out;
    }
    int64_t total = 0;
    for (int i = 0; i < n_out; i++) {
        if (split[i] > x->dims[axis] - total)
            return op_fail(ctx, "split sizes add up to more than dim %lld of axis %lld",
                           (long long)x->dims[axis], (long long)axis);
        total += split[i];
    }
    if (total != x->dims[axis])
        return op_fail(ctx, "split sizes add up to %lld, not dim %lld of axis %lld",
                       (long long)total, (long long)x->dims[axis], (long long)axis);
    int64_t src_strides[IFD_MAX_RANK], dst_strides[IFD_MAX_RANK], dims[IFD_MAX_RANK], offset = 0;
    contiguous_strides(rank, x->dims, src_strides);
    for (int i = 0; i < n_out; i++) {
        memcpy(dims, x->dims, sizeof(dims));
        dims[axis] = split[i];
        ifd_tensor *y = op_output(ctx, i, x->dtype, rank, dims);
        if (!y)
            return -1;
        contiguous_strides(rank, dims, dst_strides);
        if (layout_copy_strided(ctx, rank, dims, x->dtype, y->data, 0, dst_strides, x->data,
                                offset * src_strides[axis], src_strides))
            return -1;
        offset += split[i];
    }
    return 0;
}

/* ---- CenterCropPad ------------------------------------------------------ */

/* CenterCropPad-18 (onnx 1.13 Operators.md): each listed axis (all when
 * `axes` is absent) is cropped or zero-padded to the size in `shape`, around
 * its centre; an odd difference leaves the extra element at the end, which
 * (dim - size) / 2 in front gives. The overlap of input and output is one
 * strided copy; the rest of the output is zero. */
typedef struct center_crop_pad_state {
    size_t n_axes; /* 0: every axis */
    int64_t axes[IFD_MAX_RANK];
} center_crop_pad_state;

static int center_crop_pad_prepare(op_node *node, ifd_error *err)
{
    if (check_input_tensor(node, 0, err) || check_input_tensor(node, 1, err))
        return -1;
    const value_info *in = node->inputs[0], *shape = node->inputs[1];
    if (!dtype_is_integer(shape->dtype))
        return op_prepare_fail(node, err, "shape must be an integer tensor, not %s",
                               ifd_dtype_name(shape->dtype));
    center_crop_pad_state *st = calloc(1, sizeof(*st));
    if (!st)
        return op_prepare_fail(node, err, "out of memory");
    node->state = st;
    const int64_t *axes;
    size_t n = op_attr_ints(node, "axes", &axes);
    if (n > IFD_MAX_RANK)
        return op_prepare_fail(node, err, "axes has more than %d entries", IFD_MAX_RANK);
    if (n)
        memcpy(st->axes, axes, n * sizeof(int64_t));
    st->n_axes = n;
    set_output(node, 0, in->dtype, in->rank, NULL);
    return 0;
}

static int center_crop_pad_run(op_ctx *ctx)
{
    const center_crop_pad_state *st = ctx->node->state;
    const ifd_tensor *x = op_input(ctx, 0), *shape = op_input(ctx, 1);
    int rank = x->rank;
    int64_t axes[IFD_MAX_RANK], sizes[IFD_MAX_RANK];
    size_t n_axes = st->n_axes, n_sizes;
    if (n_axes == 0) {
        n_axes = (size_t)rank;
        for (int k = 0; k < rank; k++)
            axes[k] = k;
    } else {
        memcpy(axes, st->axes, n_axes * sizeof(int64_t));
    }
    if (!tensor_read_int64s(shape, sizes, IFD_MAX_RANK, &n_sizes) || n_sizes != n_axes)
        return op_fail(ctx, "shape must hold one size per axis (%zu)", n_axes);
    int64_t dims[IFD_MAX_RANK], src_base = 0, dst_base = 0, overlap[IFD_MAX_RANK];
    int64_t src_strides[IFD_MAX_RANK], dst_strides[IFD_MAX_RANK], in_off[IFD_MAX_RANK] = {0},
                                                                  out_off[IFD_MAX_RANK] = {0};
    bool seen[IFD_MAX_RANK] = {false};
    memcpy(dims, x->dims, (size_t)rank * sizeof(int64_t));
    for (size_t i = 0; i < n_axes; i++) {
        int64_t axis;
        if (!normalize_axis(axes[i], rank, &axis))
            return op_fail(ctx, "axis %lld is out of range for rank %d", (long long)axes[i], rank);
        if (seen[axis])
            return op_fail(ctx, "axis %lld is listed twice", (long long)axes[i]);
        seen[axis] = true;
        if (sizes[i] < 0)
            return op_fail(ctx, "size %lld for axis %lld is negative", (long long)sizes[i],
                           (long long)axis);
        dims[axis] = sizes[i];
        if (sizes[i] < x->dims[axis])
            in_off[axis] = (x->dims[axis] - sizes[i]) / 2;
        else
            out_off[axis] = (sizes[i] - x->dims[axis]) / 2;
    }
    ifd_tensor *y = op_output(ctx, 0, x->dtype, rank, dims);
    if (!y)
        return -1;
    int64_t count = ifd_tensor_count(y);
    if (count == 0)
        return 0;
    if (x->dtype != IFD_STRING)
        memset(y->data, 0, (size_t)count * ifd_dtype_size(x->dtype));
    contiguous_strides(rank, x->dims, src_strides);
    contiguous_strides(rank, dims, dst_strides);
    for (int k = 0; k < rank; k++) {
        overlap[k] = x->dims[k] < dims[k] ? x->dims[k] : dims[k];
        src_base += in_off[k] * src_strides[k];
        dst_base += out_off[k] * dst_strides[k];
    }
    return layout_copy_strided(ctx, rank, overlap, x->dtype, y->data, dst_base, dst_strides,
                               x->data, src_base, src_strides);
}

/* ---- Pad ---------------------------------------------------------------- */

typedef enum pad_mode { PAD_CONSTANT, PAD_REFLECT, PAD_EDGE, PAD_WRAP } pad_mode;

/* Pad-1 takes `paddings` and Pad-2 `pads` as attributes, both with a float
 * `value`; from Pad-11 pads and constant_value are inputs. Pad-18 (onnx 1.13
 * Operators.md) adds an optional `axes` input: pads then has two entries per
 * listed axis and the others are not padded. Pad-19 (onnx 1.14) adds mode
 * "wrap", numpy's: the axis repeats periodically. */
typedef struct pad_state {
    pad_mode mode;
    bool have_pads; /* attribute, or constant input */
    size_t n_pads;
    int64_t pads[2 * IFD_MAX_RANK];
    bool axes_given; /* Pad-18 axes input */
    bool have_axes;  /* ... and it is a constant */
    size_t n_axes;
    int64_t axes[IFD_MAX_RANK];
} pad_state;

/* Pads for every axis of a rank-`rank` tensor from Pad-18's pads over `axes`
 * (begins of each listed axis, then ends). NULL on success, else the reason. */
static const char *pad_expand_axes(int rank, const int64_t *axes, size_t n_axes,
                                   const int64_t *pads, size_t n_pads, int64_t *full)
{
    if (n_pads != 2 * n_axes)
        return "pads must hold two entries per axis in axes";
    for (int k = 0; k < 2 * rank; k++)
        full[k] = 0;
    bool seen[IFD_MAX_RANK] = {false};
    for (size_t i = 0; i < n_axes; i++) {
        int64_t axis;
        if (!normalize_axis(axes[i], rank, &axis))
            return "an axis is out of range";
        if (seen[axis])
            return "an axis is listed twice";
        seen[axis] = true;
        full[axis] = pads[i];
        full[axis + rank] = pads[i + n_axes];
    }
    return NULL;
}

static int pad_prepare(op_node *node, ifd_error *err)
{
    if (check_input_tensor(node, 0, err))
        return -1;
    const value_info *in = node->inputs[0];
    pad_state *st = calloc(1, sizeof(*st));
    if (!st)
        return op_prepare_fail(node, err, "out of memory");
    node->state = st;
    const char *mode = op_attr_string(node, "mode", "constant");
    if (strcmp(mode, "constant") == 0)
        st->mode = PAD_CONSTANT;
    else if (strcmp(mode, "reflect") == 0)
        st->mode = PAD_REFLECT;
    else if (strcmp(mode, "edge") == 0)
        st->mode = PAD_EDGE;
    else if (strcmp(mode, "wrap") == 0 && node->version >= 19)
        st->mode = PAD_WRAP;
    else
        return op_prepare_fail(node, err, "mode '%s' is not constant, reflect, edge%s", mode,
                               node->version >= 19 ? " or wrap" : " (wrap needs Pad-19)");
    if (node->version < 11) {
        const char *name = node->version == 1 ? "paddings" : "pads";
        const int64_t *pads;
        size_t n = op_attr_ints(node, name, &pads);
        if (!op_attr_has(node, name))
            return op_prepare_fail(node, err, "attribute '%s' is required", name);
        if (n > 2 * IFD_MAX_RANK || n % 2)
            return op_prepare_fail(node, err, "'%s' has %zu entries", name, n);
        if (n)
            memcpy(st->pads, pads, n * sizeof(int64_t));
        st->n_pads = n;
        st->have_pads = true;
    } else {
        if (check_input_tensor(node, 1, err))
            return -1;
        const value_info *pads = node->inputs[1];
        if (pads->dtype != IFD_INT64)
            return op_prepare_fail(node, err, "pads must be int64, not %s",
                                   ifd_dtype_name(pads->dtype));
        const value_info *value = input_info(node, 2);
        if (value && value->kind == IFD_VALUE_TENSOR && value->dtype != in->dtype)
            return op_prepare_fail(node, err, "constant_value is %s but data is %s",
                                   ifd_dtype_name(value->dtype), ifd_dtype_name(in->dtype));
        if (pads->constant) {
            if (!tensor_read_int64s(pads->constant, st->pads, 2 * IFD_MAX_RANK, &st->n_pads) ||
                st->n_pads % 2)
                return op_prepare_fail(node, err, "pads must hold 2 * rank integers");
            st->have_pads = true;
        }
        const value_info *axes = node->version >= 18 ? input_info(node, 3) : NULL;
        if (axes) {
            st->axes_given = true;
            if (axes->kind != IFD_VALUE_TENSOR || !dtype_is_integer(axes->dtype))
                return op_prepare_fail(node, err, "axes must be an integer tensor");
            if (axes->constant) {
                if (!tensor_read_int64s(axes->constant, st->axes, IFD_MAX_RANK, &st->n_axes))
                    return op_prepare_fail(node, err, "axes has more than %d entries",
                                           IFD_MAX_RANK);
                st->have_axes = true;
            }
        }
    }
    set_output(node, 0, in->dtype, in->rank, NULL);
    if (in->rank >= 0 && st->have_pads && st->axes_given && st->have_axes) {
        int64_t full[2 * IFD_MAX_RANK];
        const char *problem =
            pad_expand_axes(in->rank, st->axes, st->n_axes, st->pads, st->n_pads, full);
        if (problem)
            return op_prepare_fail(node, err, "%s", problem);
        memcpy(st->pads, full, sizeof(full));
        st->n_pads = 2 * (size_t)in->rank;
        st->axes_given = false; /* expanded once, here */
    } else if (st->axes_given) {
        st->have_pads = false; /* pads of the listed axes only: expanded at run time */
    }
    if (in->rank >= 0 && st->have_pads) {
        if (st->n_pads != 2 * (size_t)in->rank)
            return op_prepare_fail(node, err, "pads has %zu entries for rank %d", st->n_pads,
                                   in->rank);
        for (int k = 0; k < in->rank; k++) {
            int64_t before = st->pads[k], after = st->pads[k + in->rank], d = -1;
            if (in->dims[k] >= 0 && before < INT64_MAX / 4 && after < INT64_MAX / 4 &&
                before > -INT64_MAX / 4 && after > -INT64_MAX / 4) {
                d = in->dims[k] + before + after;
                if (d < 0)
                    return op_prepare_fail(node, err, "pads crop axis %d below zero", k);
            }
            node->outputs[0]->dims[k] = d;
        }
    }
    return 0;
}

typedef struct pad_plan {
    int rank;
    int64_t dims[IFD_MAX_RANK]; /* output */
    int64_t in_strides[IFD_MAX_RANK];
    const int64_t *map[IFD_MAX_RANK]; /* output index -> input index, or -1 */
    const char *src;
    char *dst;
    size_t esz;
    unsigned char fill[16]; /* the constant, one element */
} pad_plan;

/* One output row: map[j] < 0 (or no map at all, for a row in the padding
 * of an outer axis) takes the constant. */
#define DEFINE_PAD_ROW(SIZE, TYPE)                                                                 \
    static void pad_row_##SIZE(char *dst, const char *src, const int64_t *map, int64_t n,          \
                               const void *fill)                                                   \
    {                                                                                              \
        TYPE *d = (TYPE *)(void *)dst, c;                                                          \
        const TYPE *s = (const TYPE *)(const void *)src;                                           \
        memcpy(&c, fill, sizeof(c));                                                               \
        for (int64_t j = 0; j < n; j++)                                                            \
            d[j] = !map || map[j] < 0 ? c : s[map[j]];                                             \
    }
ELEM_SIZES(DEFINE_PAD_ROW)

/* Offset of the input row under output row `row`, or -1 in the padding. */
static int64_t pad_row_source(const pad_plan *p, int64_t row)
{
    int64_t off = 0;
    for (int k = p->rank - 2; k >= 0; k--) {
        int64_t m = p->map[k][row % p->dims[k]];
        row /= p->dims[k];
        if (m < 0)
            return -1;
        off += m * p->in_strides[k];
    }
    return off;
}

static void pad_rows(void *arg, size_t begin, size_t end)
{
    const pad_plan *p = arg;
    int last = p->rank - 1;
    int64_t n = p->dims[last];
    for (size_t r = begin; r < end; r++) {
        int64_t off = pad_row_source(p, (int64_t)r);
        char *dst = p->dst + (int64_t)r * n * (int64_t)p->esz;
        const char *src = p->src + (off < 0 ? 0 : off) * (int64_t)p->esz;
        const int64_t *map = off < 0 ? NULL : p->map[last];
        switch (p->esz) {
#define CASE_PAD(SIZE, TYPE)                                                                       \
    case SIZE: pad_row_##SIZE(dst, src, map, n, p->fill); break;
            ELEM_SIZES(CASE_PAD)
#undef CASE_PAD
        default: break;
        }
    }
}

/* Index into an axis of n elements read at position i of its padded
 * version (i < 0: in the padding before it), or -1 for the constant. */
static int64_t pad_window_index(pad_mode mode, int64_t i, int64_t n)
{
    if (i >= 0 && i < n)
        return i;
    switch (mode) {
    case PAD_CONSTANT: return -1;
    case PAD_EDGE: return i < 0 ? 0 : n - 1;
    case PAD_WRAP: {
        int64_t m = i % n;
        return m < 0 ? m + n : m;
    }
    case PAD_REFLECT: {
        /* numpy's reflect: mirror without repeating the edge, periodic with
         * period 2*(n-1) for pads wider than the axis. */
        if (n == 1)
            return 0;
        int64_t period = 2 * (n - 1);
        int64_t m = i % period;
        if (m < 0)
            m += period;
        return m < n ? m : period - m;
    }
    }
    return -1;
}

/* Input index read by output index o along one axis of input size `size`
 * with `before` and `after` elements of padding (negative: cropping). A crop
 * happens first and the padding mirrors, repeats or extends what is left, as
 * ONNX's reference implementation and ONNX Runtime do (it matters for wrap,
 * whose period is the cropped length). */
static int64_t pad_source_index(pad_mode mode, int64_t o, int64_t before, int64_t after,
                                int64_t size)
{
    int64_t start = before < 0 ? -before : 0;
    int64_t n = size - start - (after < 0 ? -after : 0);
    int64_t k = pad_window_index(mode, o - (before > 0 ? before : 0), n);
    return k < 0 ? -1 : start + k;
}

static int pad_strings(op_ctx *ctx, const pad_plan *p, const ifd_tensor *x, ifd_tensor *y,
                       const ifd_tensor *value)
{
    const ifd_string *s = x->data, *c = value ? value->data : NULL;
    ifd_string *d = y->data;
    int last = p->rank - 1;
    int64_t n = p->dims[last], rows = ifd_tensor_count(y) / n;
    for (int64_t r = 0; r < rows; r++) {
        int64_t off = pad_row_source(p, r);
        for (int64_t j = 0; j < n; j++) {
            const ifd_string *from =
                off >= 0 && p->map[last][j] >= 0 ? &s[off + p->map[last][j]] : c;
            /* Without constant_value the padding stays the empty string. */
            if (from && !string_set(&d[r * n + j], from->data ? from->data : "", from->size))
                return op_fail(ctx, "out of memory copying strings");
        }
    }
    return 0;
}

static int pad_run(op_ctx *ctx)
{
    const pad_state *st = ctx->node->state;
    const ifd_tensor *x = op_input(ctx, 0);
    int rank = x->rank;
    int64_t pads[2 * IFD_MAX_RANK];
    size_t n_pads = st->n_pads;
    if (st->have_pads) {
        memcpy(pads, st->pads, sizeof(pads));
    } else {
        const ifd_tensor *t = input_tensor(ctx, 1);
        if (!t || !tensor_read_int64s(t, pads, 2 * IFD_MAX_RANK, &n_pads))
            return op_fail(ctx, "pads must be an integer tensor of 2 * rank elements");
    }
    if (st->axes_given) {
        int64_t axes_buf[IFD_MAX_RANK], full[2 * IFD_MAX_RANK];
        const int64_t *axes = st->axes;
        size_t n_axes = st->n_axes;
        if (!st->have_axes) {
            const ifd_tensor *t = input_tensor(ctx, 3);
            if (!t || !tensor_read_int64s(t, axes_buf, IFD_MAX_RANK, &n_axes))
                return op_fail(ctx, "axes must be an integer tensor of at most %d elements",
                               IFD_MAX_RANK);
            axes = axes_buf;
        }
        const char *problem = pad_expand_axes(rank, axes, n_axes, pads, n_pads, full);
        if (problem)
            return op_fail(ctx, "%s", problem);
        memcpy(pads, full, sizeof(full));
        n_pads = 2 * (size_t)rank;
    }
    if (n_pads != 2 * (size_t)rank)
        return op_fail(ctx, "pads has %zu entries for rank %d", n_pads, rank);
    const ifd_tensor *value =
        st->mode == PAD_CONSTANT && ctx->node->version >= 11 ? input_tensor(ctx, 2) : NULL;
    if (value && (value->dtype != x->dtype || ifd_tensor_count(value) != 1))
        return op_fail(ctx, "constant_value must be one %s", ifd_dtype_name(x->dtype));

    pad_plan p;
    memset(&p, 0, sizeof(p));
    p.rank = rank;
    p.esz = ifd_dtype_size(x->dtype);
    for (int k = 0; k < rank; k++) {
        int64_t before = pads[k], after = pads[k + rank], n = x->dims[k];
        /* Bounds keep the sum from overflowing; op_output refuses what is too big.
         */
        if (before < -n || after < -n || before > INT64_MAX / 4 || after > INT64_MAX / 4)
            return op_fail(ctx, "pads %lld,%lld are out of range for axis %d of size %lld",
                           (long long)before, (long long)after, k, (long long)n);
        p.dims[k] = n + before + after;
        if (p.dims[k] < 0)
            return op_fail(ctx, "pads crop axis %d of size %lld below zero", k, (long long)n);
        int64_t kept = n - (before < 0 ? -before : 0) - (after < 0 ? -after : 0);
        if (st->mode != PAD_CONSTANT && kept <= 0 && p.dims[k] > 0)
            return op_fail(ctx, "%s padding of empty axis %d",
                           st->mode == PAD_EDGE ? "edge" : st->mode == PAD_WRAP ? "wrap" : "reflect",
                           k);
    }
    ifd_tensor *y = op_output(ctx, 0, x->dtype, rank, p.dims);
    if (!y)
        return -1;
    if (ifd_tensor_count(y) == 0)
        return 0;
    if (rank == 0)
        return layout_copy_strided(ctx, 0, NULL, x->dtype, y->data, 0, NULL, x->data, 0, NULL);

    /* y exists, so every output dim and their sum are bounded by its size. */
    int64_t map_len = 0;
    for (int k = 0; k < rank; k++)
        map_len += p.dims[k];
    int64_t *maps = op_scratch(ctx, (size_t)map_len * sizeof(int64_t));
    if (!maps)
        return -1;
    for (int k = 0; k < rank; k++) {
        p.map[k] = maps;
        for (int64_t o = 0; o < p.dims[k]; o++)
            maps[o] = pad_source_index(st->mode, o, pads[k], pads[k + rank], x->dims[k]);
        maps += p.dims[k];
    }
    contiguous_strides(rank, x->dims, p.in_strides);
    p.src = x->data;
    p.dst = y->data;
    if (x->dtype == IFD_STRING)
        return pad_strings(ctx, &p, x, y, value);
    if (value) {
        memcpy(p.fill, value->data, p.esz);
    } else if (dtype_is_numeric(x->dtype) || x->dtype == IFD_BOOL) {
        /* Pad-1/2's float `value` (0 from Pad-11 on without constant_value). */
        ifd_tensor fill = {.dtype = x->dtype, .rank = 0, .data = p.fill};
        float v = ctx->node->version < 11 ? op_attr_float(ctx->node, "value", 0.0f) : 0.0f;
        tensor_set_double(&fill, 0, v);
    }
    int64_t rows = ifd_tensor_count(y) / p.dims[rank - 1];
    size_t grain = (size_t)(COPY_GRAIN / p.dims[rank - 1]);
    op_parallel_for(ctx, (size_t)rows, grain ? grain : 1, pad_rows, &p);
    return 0;
}

/* ---- DepthToSpace / SpaceToDepth ---------------------------------------- */

/* Both are a reshape to 6-D, a transpose and a reshape back (see the ONNX
 * docs); the copy walks the output as the 6-D index space directly. */
typedef enum block_layout { BLOCKS_DCR, BLOCKS_CRD } block_layout;

typedef struct block_state {
    int64_t blocksize;
    block_layout layout;
} block_state;

static int block_prepare(op_node *node, ifd_error *err, bool to_space)
{
    if (check_input_tensor(node, 0, err))
        return -1;
    const value_info *in = node->inputs[0];
    block_state *st = calloc(1, sizeof(*st));
    if (!st)
        return op_prepare_fail(node, err, "out of memory");
    node->state = st;
    if (!op_attr_has(node, "blocksize"))
        return op_prepare_fail(node, err, "attribute 'blocksize' is required");
    st->blocksize = op_attr_int(node, "blocksize", 0);
    if (st->blocksize <= 0 || st->blocksize > (1 << 20))
        return op_prepare_fail(node, err, "blocksize %lld must be positive",
                               (long long)st->blocksize);
    /* DepthToSpace-11 added `mode`; DepthToSpace-1 is DCR. */
    const char *mode =
        to_space && node->version >= 11 ? op_attr_string(node, "mode", "DCR") : "DCR";
    if (strcmp(mode, "DCR") == 0)
        st->layout = BLOCKS_DCR;
    else if (strcmp(mode, "CRD") == 0)
        st->layout = BLOCKS_CRD;
    else
        return op_prepare_fail(node, err, "mode '%s' is not DCR or CRD", mode);
    if (in->rank >= 0 && in->rank != 4)
        return op_prepare_fail(node, err, "input must be 4-D (N,C,H,W), not rank %d", in->rank);
    int64_t b = st->blocksize, dims[4] = {-1, -1, -1, -1};
    if (in->rank == 4) {
        dims[0] = in->dims[0];
        if (to_space) {
            if (in->dims[1] >= 0 && in->dims[1] % (b * b))
                return op_prepare_fail(node, err, "channels %lld are not a multiple of %lld",
                                       (long long)in->dims[1], (long long)(b * b));
            dims[1] = in->dims[1] < 0 ? -1 : in->dims[1] / (b * b);
            dims[2] = in->dims[2] < 0 || in->dims[2] > INT64_MAX / b ? -1 : in->dims[2] * b;
            dims[3] = in->dims[3] < 0 || in->dims[3] > INT64_MAX / b ? -1 : in->dims[3] * b;
        } else {
            for (int k = 2; k < 4; k++)
                if (in->dims[k] >= 0 && in->dims[k] % b)
                    return op_prepare_fail(node, err, "dim %d (%lld) is not a multiple of %lld", k,
                                           (long long)in->dims[k], (long long)b);
            dims[1] =
                in->dims[1] < 0 || in->dims[1] > INT64_MAX / (b * b) ? -1 : in->dims[1] * b * b;
            dims[2] = in->dims[2] < 0 ? -1 : in->dims[2] / b;
            dims[3] = in->dims[3] < 0 ? -1 : in->dims[3] / b;
        }
    }
    set_output(node, 0, in->dtype, 4, dims);
    return 0;
}

static int depth_to_space_prepare(op_node *node, ifd_error *err)
{
    return block_prepare(node, err, true);
}

static int space_to_depth_prepare(op_node *node, ifd_error *err)
{
    return block_prepare(node, err, false);
}

static int depth_to_space_run(op_ctx *ctx)
{
    const block_state *st = ctx->node->state;
    const ifd_tensor *x = op_input(ctx, 0);
    int64_t b = st->blocksize;
    if (x->rank != 4)
        return op_fail(ctx, "input must be 4-D (N,C,H,W), not rank %d", x->rank);
    int64_t n = x->dims[0], c = x->dims[1], h = x->dims[2], w = x->dims[3];
    if (c % (b * b))
        return op_fail(ctx, "channels %lld are not a multiple of %lld", (long long)c,
                       (long long)(b * b));
    if (h > INT64_MAX / b || w > INT64_MAX / b)
        return op_fail(ctx, "output is too large");
    int64_t oc = c / (b * b), out_dims[4] = {n, oc, h * b, w * b};
    ifd_tensor *y = op_output(ctx, 0, x->dtype, 4, out_dims);
    if (!y)
        return -1;
    /* Output viewed as [N, C', H, b1, W, b2]; the input channel read is
     * b1*b*C' + b2*C' + c for DCR and c*b*b + b1*b + b2 for CRD. */
    int64_t dims[6] = {n, oc, h, b, w, b}, dst[6], src[6];
    int64_t hw = h * w;
    contiguous_strides(6, dims, dst);
    src[0] = c * hw;
    src[2] = w;
    src[4] = 1;
    if (st->layout == BLOCKS_DCR) {
        src[1] = hw;
        src[3] = b * oc * hw;
        src[5] = oc * hw;
    } else {
        src[1] = b * b * hw;
        src[3] = b * hw;
        src[5] = hw;
    }
    return layout_copy_strided(ctx, 6, dims, x->dtype, y->data, 0, dst, x->data, 0, src);
}

static int space_to_depth_run(op_ctx *ctx)
{
    const block_state *st = ctx->node->state;
    const ifd_tensor *x = op_input(ctx, 0);
    int64_t b = st->blocksize;
    if (x->rank != 4)
        return op_fail(ctx, "input must be 4-D (N,C,H,W), not rank %d", x->rank);
    int64_t n = x->dims[0], c = x->dims[1], h = x->dims[2], w = x->dims[3];
    for (int k = 2; k < 4; k++)
        if (x->dims[k] % b)
            return op_fail(ctx, "dim %d (%lld) is not a multiple of %lld", k, (long long)x->dims[k],
                           (long long)b);
    if (c > INT64_MAX / (b * b))
        return op_fail(ctx, "output is too large");
    int64_t out_dims[4] = {n, c * b * b, h / b, w / b};
    ifd_tensor *y = op_output(ctx, 0, x->dtype, 4, out_dims);
    if (!y)
        return -1;
    /* Output viewed as [N, b1, b2, C, H', W'], reading (n, c, h'*b+b1, w'*b+b2).
     */
    int64_t dims[6] = {n, b, b, c, h / b, w / b}, dst[6];
    int64_t src[6] = {c * h * w, w, 1, h * w, b * w, b};
    contiguous_strides(6, dims, dst);
    return layout_copy_strided(ctx, 6, dims, x->dtype, y->data, 0, dst, x->data, 0, src);
}

/* ---- Trilu -------------------------------------------------------------- */

static int trilu_prepare(op_node *node, ifd_error *err)
{
    if (check_input_tensor(node, 0, err))
        return -1;
    const value_info *in = node->inputs[0], *k = input_info(node, 1);
    if (in->rank >= 0 && in->rank < 2)
        return op_prepare_fail(node, err, "input must have rank >= 2, not %d", in->rank);
    if (k && (k->kind != IFD_VALUE_TENSOR || k->dtype != IFD_INT64))
        return op_prepare_fail(node, err, "k must be an int64 scalar");
    set_output(node, 0, in->dtype, in->rank, in->dims);
    return 0;
}

typedef struct trilu_plan {
    const char *src;
    char *dst;
    size_t esz;
    int64_t rows, cols, k;
    bool upper;
} trilu_plan;

/* Columns [lo, hi) of row i are kept; the rest become zero. */
static void trilu_keep(const trilu_plan *p, int64_t i, int64_t *lo, int64_t *hi)
{
    /* upper keeps j - i >= k, lower keeps j - i <= k; k may be huge. */
    int64_t edge;
    if (p->k > p->cols)
        edge = p->upper ? p->cols : p->cols + 1;
    else if (p->k < -p->rows)
        edge = p->upper ? -1 : -p->rows - 1;
    else
        edge = i + p->k;
    if (p->upper) {
        *lo = edge < 0 ? 0 : edge > p->cols ? p->cols : edge;
        *hi = p->cols;
    } else {
        *lo = 0;
        *hi = edge + 1 < 0 ? 0 : edge + 1 > p->cols ? p->cols : edge + 1;
    }
}

static void trilu_rows(void *arg, size_t begin, size_t end)
{
    const trilu_plan *p = arg;
    size_t row_bytes = (size_t)p->cols * p->esz;
    for (size_t r = begin; r < end; r++) {
        int64_t lo, hi;
        trilu_keep(p, (int64_t)r % p->rows, &lo, &hi);
        char *d = p->dst + r * row_bytes;
        const char *s = p->src + r * row_bytes;
        memset(d, 0, row_bytes);
        if (hi > lo)
            memcpy(d + lo * (int64_t)p->esz, s + lo * (int64_t)p->esz, (size_t)(hi - lo) * p->esz);
    }
}

static int trilu_run(op_ctx *ctx)
{
    const ifd_tensor *x = op_input(ctx, 0), *k = input_tensor(ctx, 1);
    if (x->rank < 2)
        return op_fail(ctx, "input must have rank >= 2, not %d", x->rank);
    trilu_plan p = {.src = x->data,
                    .esz = ifd_dtype_size(x->dtype),
                    .rows = x->dims[x->rank - 2],
                    .cols = x->dims[x->rank - 1],
                    .upper = op_attr_int(ctx->node, "upper", 1) != 0};
    if (k) {
        if (k->dtype != IFD_INT64 || ifd_tensor_count(k) != 1)
            return op_fail(ctx, "k must be an int64 scalar");
        p.k = ((const int64_t *)k->data)[0];
    }
    ifd_tensor *y = op_output(ctx, 0, x->dtype, x->rank, x->dims);
    if (!y)
        return -1;
    p.dst = y->data;
    int64_t count = ifd_tensor_count(x);
    if (count == 0)
        return 0;
    int64_t total_rows = count / p.cols;
    if (x->dtype == IFD_STRING) {
        const ifd_string *s = x->data;
        ifd_string *d = y->data;
        for (int64_t r = 0; r < total_rows; r++) {
            int64_t lo, hi;
            trilu_keep(&p, r % p.rows, &lo, &hi);
            for (int64_t j = lo; j < hi; j++) {
                const ifd_string *from = &s[r * p.cols + j];
                if (!string_set(&d[r * p.cols + j], from->data ? from->data : "", from->size))
                    return op_fail(ctx, "out of memory copying strings");
            }
        }
        return 0;
    }
    size_t grain = (size_t)(COPY_GRAIN / p.cols);
    op_parallel_for(ctx, (size_t)total_rows, grain ? grain : 1, trilu_rows, &p);
    return 0;
}

/* ---- ReverseSequence ---------------------------------------------------- */

static int reverse_sequence_prepare(op_node *node, ifd_error *err)
{
    if (check_input_tensor(node, 0, err) || check_input_tensor(node, 1, err))
        return -1;
    const value_info *in = node->inputs[0];
    int64_t batch_axis = op_attr_int(node, "batch_axis", 1);
    int64_t time_axis = op_attr_int(node, "time_axis", 0);
    if (!((batch_axis == 0 && time_axis == 1) || (batch_axis == 1 && time_axis == 0)))
        return op_prepare_fail(node, err, "batch_axis and time_axis must be 0 and 1 in some order");
    if (node->inputs[1]->dtype != IFD_INT64)
        return op_prepare_fail(node, err, "sequence_lens must be int64");
    if (in->rank >= 0 && in->rank < 2)
        return op_prepare_fail(node, err, "input must have rank >= 2, not %d", in->rank);
    set_output(node, 0, in->dtype, in->rank, in->dims);
    return 0;
}

static int reverse_sequence_run(op_ctx *ctx)
{
    const ifd_tensor *x = op_input(ctx, 0), *lens = op_input(ctx, 1);
    int batch_axis = (int)op_attr_int(ctx->node, "batch_axis", 1);
    int time_axis = 1 - batch_axis;
    if (x->rank < 2)
        return op_fail(ctx, "input must have rank >= 2, not %d", x->rank);
    int64_t batch = x->dims[batch_axis], steps = x->dims[time_axis];
    if (lens->dtype != IFD_INT64 || lens->rank != 1 || lens->dims[0] != batch)
        return op_fail(ctx, "sequence_lens must be int64 of shape [%lld]", (long long)batch);
    const int64_t *len = lens->data;
    for (int64_t b = 0; b < batch; b++)
        if (len[b] < 0 || len[b] > steps)
            return op_fail(ctx, "sequence_lens[%lld] = %lld is outside [0, %lld]", (long long)b,
                           (long long)len[b], (long long)steps);
    ifd_tensor *y = op_output(ctx, 0, x->dtype, x->rank, x->dims);
    if (!y)
        return -1;
    int64_t strides[IFD_MAX_RANK], inner = 1;
    contiguous_strides(x->rank, x->dims, strides);
    for (int k = 2; k < x->rank; k++)
        inner *= x->dims[k];
    int64_t dims[1] = {inner}, unit[1] = {1};
    for (int64_t b = 0; b < batch; b++) {
        for (int64_t t = 0; t < steps; t++) {
            int64_t from = t < len[b] ? len[b] - 1 - t : t;
            int64_t dst = b * strides[batch_axis] + t * strides[time_axis];
            int64_t src = b * strides[batch_axis] + from * strides[time_axis];
            if (layout_copy_strided(ctx, 1, dims, x->dtype, y->data, dst, unit, x->data, src, unit))
                return -1;
        }
    }
    return 0;
}

static const op_def defs[] = {
    /* Transpose-21 (onnx 1.16 Operators.md) only added float8/int4 types. */
    {"", "Transpose", 1, 21, transpose_prepare, transpose_run, free},
    {"", "Concat", 1, 13, concat_prepare, concat_run, NULL},
    {"", "Split", 1, 18, split_prepare, split_run, free},
    {"", "Pad", 1, 21, pad_prepare, pad_run, free},
    {"", "CenterCropPad", 18, 18, center_crop_pad_prepare, center_crop_pad_run, free},
    {"", "DepthToSpace", 1, 13, depth_to_space_prepare, depth_to_space_run, free},
    {"", "SpaceToDepth", 1, 13, space_to_depth_prepare, space_to_depth_run, free},
    {"", "Trilu", 14, 14, trilu_prepare, trilu_run, NULL},
    {"", "ReverseSequence", 10, 10, reverse_sequence_prepare, reverse_sequence_run, NULL},
};
OP_FAMILY(ops_layout, defs);
