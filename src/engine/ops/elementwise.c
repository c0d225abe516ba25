/*
 * ops/elementwise.c — ONNX's element-wise arithmetic and math operators:
 * Add Sub Mul Div Pow Mod BitShift, the variadic Min Max Sum Mean, and the
 * unary Neg Abs Sqrt Exp Log Floor Ceil Round Sign Reciprocal Erf, the
 * trigonometric and hyperbolic functions, IsNaN and IsInf.
 *
 * It also holds the machinery the other element-wise families share
 * (elementwise_kernels.h): the broadcasting walker, the unary and binary
 * drivers with their float16/bfloat16 conversion, shape inference and the
 * node-level prepare/run helpers.
 *
 * Integer arithmetic wraps (it is done in unsigned types, so overflow is
 * defined); integer Div and Mod by zero are run errors, INT_MIN / -1 wraps to
 * INT_MIN. Before opset 7, Add/Sub/Mul/Div/Pow had the `broadcast` and `axis`
 * attributes instead of numpy broadcasting (Add-1/6: "B's shape aligned with
 * A's starting at axis, or suffix matching"); both live here.
 */
#include <stdlib.h>

#include "../kernels/vmath.h"
#include "elementwise_kernels.h"

#include <tgmath.h>

/* ---- float16 / bfloat16 blocks ------------------------------------------ */

void ew_half_to_float(ifd_dtype dtype, const uint16_t *src, float *dst, size_t n)
{
    if (dtype == IFD_BFLOAT16) {
        for (size_t i = 0; i < n; i++)
            dst[i] = ew_bits_f32((uint32_t)src[i] << 16);
    } else {
        for (size_t i = 0; i < n; i++)
            dst[i] = half_to_float(src[i]);
    }
}

void ew_float_to_half(ifd_dtype dtype, const float *src, uint16_t *dst, size_t n)
{
    if (dtype == IFD_BFLOAT16) {
        for (size_t i = 0; i < n; i++)
            dst[i] = float_to_bfloat16(src[i]);
    } else {
        for (size_t i = 0; i < n; i++)
            dst[i] = float_to_half(src[i]);
    }
}

static bool is_half(ifd_dtype dtype)
{
    return dtype == IFD_FLOAT16 || dtype == IFD_BFLOAT16;
}

static size_t min_size(size_t a, size_t b)
{
    return a < b ? a : b;
}

/* ---- broadcasting walker -------------------------------------------------- */

bool ew_walk_init(ew_walk *w, const ifd_tensor *out, int n_in, const ifd_tensor *const *in,
                  ew_row_fn row, void *arg)
{
    int64_t strides[EW_MAX_OPERANDS][IFD_MAX_RANK];
    int rank = out->rank;
    memset(w, 0, sizeof(*w));
    w->n_in = n_in;
    w->row = row;
    w->arg = arg;
    w->out = out->data;
    w->out_size = ifd_dtype_size(out->dtype);
    for (int k = 0; k < n_in; k++) {
        const ifd_tensor *t = in[k];
        if (t->rank > rank)
            return false;
        for (int i = 0; i < t->rank; i++) {
            int64_t d = t->dims[i], od = out->dims[i + rank - t->rank];
            if (d != od && d != 1)
                return false;
        }
        broadcast_strides(rank, out->dims, t->rank, t->dims, strides[k]);
        w->in[k] = t->data;
        w->in_size[k] = ifd_dtype_size(t->dtype);
    }
    w->count = (size_t)ifd_tensor_count(out);

    /* Drop axes of size 1 and merge neighbours that every operand walks
     * contiguously (or broadcasts along both), so a same-shape op is one row
     * and [N,C,H,W] + [C,1,1] is N*C rows of H*W against one element. */
    int r = 0;
    for (int i = 0; i < rank; i++) {
        if (out->dims[i] == 1)
            continue;
        if (r > 0) {
            bool merge = true;
            for (int k = 0; k < n_in; k++)
                if (w->strides[k][r - 1] != strides[k][i] * out->dims[i])
                    merge = false;
            if (merge) {
                w->dims[r - 1] *= out->dims[i];
                for (int k = 0; k < n_in; k++)
                    w->strides[k][r - 1] = strides[k][i];
                continue;
            }
        }
        w->dims[r] = out->dims[i];
        for (int k = 0; k < n_in; k++)
            w->strides[k][r] = strides[k][i];
        r++;
    }
    if (r == 0) {
        w->dims[0] = 1;
        for (int k = 0; k < n_in; k++)
            w->strides[k][0] = 0;
        r = 1;
    }
    w->rank = r;
    return true;
}

static void walk_range(const ew_walk *w, size_t begin, size_t end)
{
    int r = w->rank, n_in = w->n_in;
    int64_t coord[IFD_MAX_RANK];
    int64_t off[EW_MAX_OPERANDS] = {0, 0, 0};
    const void *in[EW_MAX_OPERANDS] = {NULL, NULL, NULL};
    unsigned mode = 0;
    size_t rem = begin;
    for (int i = r - 1; i >= 0; i--) {
        coord[i] = (int64_t)(rem % (size_t)w->dims[i]);
        rem /= (size_t)w->dims[i];
    }
    for (int k = 0; k < n_in; k++) {
        for (int i = 0; i < r; i++)
            off[k] += coord[i] * w->strides[k][i];
        if (w->strides[k][r - 1] != 0)
            mode |= 1u << k;
    }
    size_t pos = begin;
    const int64_t inner = w->dims[r - 1];
    while (pos < end) {
        size_t take = min_size((size_t)(inner - coord[r - 1]), end - pos);
        for (int k = 0; k < n_in; k++)
            in[k] = w->in[k] + (size_t)off[k] * w->in_size[k];
        w->row(w->arg, in, w->out + pos * w->out_size, take, mode);
        pos += take;
        coord[r - 1] += (int64_t)take;
        for (int k = 0; k < n_in; k++)
            off[k] += (int64_t)take * w->strides[k][r - 1];
        for (int i = r - 1; i > 0 && coord[i] == w->dims[i]; i--) {
            coord[i] = 0;
            coord[i - 1]++;
            for (int k = 0; k < n_in; k++)
                off[k] += w->strides[k][i - 1] - w->dims[i] * w->strides[k][i];
        }
    }
}

static void walk_chunk(void *arg, size_t begin, size_t end)
{
    walk_range(arg, begin, end);
}

void ew_walk_run(op_ctx *ctx, const ew_walk *w, bool parallel)
{
    if (w->count == 0)
        return;
    if (parallel && w->count >= EW_PARALLEL_MIN)
        op_parallel_for(ctx, w->count, EW_PARALLEL_GRAIN, walk_chunk, (void *)w);
    else
        walk_range(w, 0, w->count);
}

/* ---- binary and unary drivers --------------------------------------------- */

typedef struct binary_job {
    ew_binary_fn fn;
    ifd_dtype half; /* IFD_FLOAT16 / IFD_BFLOAT16, or 0 */
    bool out_bool;
} binary_job;

static void binary_row(void *arg, const void *const *in, void *out, size_t n, unsigned mode)
{
    const binary_job *job = arg;
    if (!job->half) {
        job->fn(in[0], in[1], out, n, mode);
        return;
    }
    float a[EW_HALF_BLOCK], b[EW_HALF_BLOCK], o[EW_HALF_BLOCK];
    const uint16_t *ha = in[0], *hb = in[1];
    for (size_t done = 0; done < n;) {
        size_t m = min_size(EW_HALF_BLOCK, n - done);
        ew_half_to_float(job->half, (mode & EW_A_VEC) ? ha + done : ha, a,
                         (mode & EW_A_VEC) ? m : 1);
        ew_half_to_float(job->half, (mode & EW_B_VEC) ? hb + done : hb, b,
                         (mode & EW_B_VEC) ? m : 1);
        if (job->out_bool) {
            job->fn(a, b, (uint8_t *)out + done, m, mode);
        } else {
            job->fn(a, b, o, m, mode);
            ew_float_to_half(job->half, o, (uint16_t *)out + done, m);
        }
        done += m;
    }
}

static bool has_zero(const ifd_tensor *t)
{
    size_t n = (size_t)ifd_tensor_count(t), size = ifd_dtype_size(t->dtype);
    const unsigned char *p = t->data;
    for (size_t i = 0; i < n; i++) {
        bool zero = true;
        for (size_t j = 0; j < size; j++)
            if (p[i * size + j] != 0)
                zero = false;
        if (zero)
            return true;
    }
    return false;
}

int ew_binary_apply(op_ctx *ctx, const ew_binary_op *op, const ifd_tensor *a, const ifd_tensor *b,
                    ifd_tensor *out)
{
    ifd_dtype dt = a->dtype;
    char sa[128], sb[128];
    if (b->dtype != dt)
        return op_fail(ctx, "inputs have different types %s and %s", ifd_dtype_name(dt),
                       ifd_dtype_name(b->dtype));
    if ((int)dt <= 0 || (int)dt >= EW_DTYPE_SLOTS || !op->fns[dt])
        return op_fail(ctx, "unsupported input type %s", ifd_dtype_name(dt));
    if (op->integer_divisor && dtype_is_integer(dt) && ifd_tensor_count(out) > 0 && has_zero(b))
        return op_fail(ctx, "integer division by zero");
    binary_job job = {op->fns[dt], is_half(dt) ? dt : IFD_UNDEFINED, op->out_bool};
    const ifd_tensor *in[2] = {a, b};
    ew_walk w;
    if (!ew_walk_init(&w, out, 2, in, binary_row, &job))
        return op_fail(ctx, "inputs of shapes %s and %s cannot be broadcast",
                       shape_to_string(a->rank, a->dims, sa, sizeof(sa)),
                       shape_to_string(b->rank, b->dims, sb, sizeof(sb)));
    ew_walk_run(ctx, &w, true);
    return 0;
}

typedef struct unary_job {
    ew_unary_fn fn;
    const ew_params *p;
    const char *x;
    char *y;
    size_t x_size, y_size;
    ifd_dtype half;
    bool out_bool;
} unary_job;

static void unary_chunk(void *arg, size_t begin, size_t end)
{
    const unary_job *job = arg;
    if (!job->half) {
        job->fn(job->x + begin * job->x_size, job->y + begin * job->y_size, end - begin, job->p);
        return;
    }
    float x[EW_HALF_BLOCK], y[EW_HALF_BLOCK];
    for (size_t i = begin; i < end;) {
        size_t m = min_size(EW_HALF_BLOCK, end - i);
        ew_half_to_float(job->half, (const uint16_t *)job->x + i, x, m);
        if (job->out_bool) {
            job->fn(x, (uint8_t *)job->y + i, m, job->p);
        } else {
            job->fn(x, y, m, job->p);
            ew_float_to_half(job->half, y, (uint16_t *)job->y + i, m);
        }
        i += m;
    }
}

int ew_unary_apply(op_ctx *ctx, const ew_unary_op *op, const ew_params *p, const ifd_tensor *x,
                   ifd_tensor *y)
{
    ifd_dtype dt = x->dtype;
    if ((int)dt <= 0 || (int)dt >= EW_DTYPE_SLOTS || !op->fns[dt])
        return op_fail(ctx, "unsupported input type %s", ifd_dtype_name(dt));
    size_t n = (size_t)ifd_tensor_count(x);
    unary_job job = {op->fns[dt],
                     p,
                     x->data,
                     y->data,
                     ifd_dtype_size(dt),
                     ifd_dtype_size(y->dtype),
                     is_half(dt) ? dt : IFD_UNDEFINED,
                     op->out_bool};
    if (n >= EW_PARALLEL_MIN)
        op_parallel_for(ctx, n, EW_PARALLEL_GRAIN, unary_chunk, &job);
    else if (n > 0)
        unary_chunk(&job, 0, n);
    return 0;
}

/* ---- shapes ----------------------------------------------------------------- */

int ew_infer_broadcast(const op_node *node, ifd_error *err, int n, value_info *const *in,
                       value_info *out)
{
    int rank = 0;
    out->kind = IFD_VALUE_TENSOR;
    for (int k = 0; k < n; k++) {
        if (in[k]->rank < 0) {
            out->rank = -1;
            return 0;
        }
        if (in[k]->rank > rank)
            rank = in[k]->rank;
    }
    for (int i = 0; i < rank; i++) {
        int64_t d = 1;
        int from = 0; /* the input d came from */
        bool unknown = false;
        for (int k = 0; k < n; k++) {
            int j = i - (rank - in[k]->rank);
            if (j < 0)
                continue;
            int64_t e = in[k]->dims[j];
            if (e == 1)
                continue;
            if (e < 0) {
                unknown = true;
                continue;
            }
            if (d != 1 && d != e) {
                char s1[128], s2[128];
                return op_prepare_fail(
                    node, err, "inputs of shapes %s and %s cannot be broadcast",
                    shape_to_string(in[from]->rank, in[from]->dims, s1, sizeof(s1)),
                    shape_to_string(in[k]->rank, in[k]->dims, s2, sizeof(s2)));
            }
            d = e;
            from = k;
        }
        out->dims[i] = d == 1 && unknown ? -1 : d;
    }
    out->rank = rank;
    return 0;
}

bool ew_broadcast_tensors(int n, const ifd_tensor *const *in, int *rank, int64_t *dims)
{
    int r = 0;
    int64_t tmp[IFD_MAX_RANK];
    for (int k = 0; k < n; k++) {
        if (!broadcast_shapes(r, dims, in[k]->rank, in[k]->dims, &r, tmp))
            return false;
        memcpy(dims, tmp, sizeof(int64_t) * (size_t)r);
    }
    *rank = r;
    return true;
}

bool ew_legacy_shape(int rank_a, int rank_b, const int64_t *dims_b, int64_t axis, int *rank,
                     int64_t *dims)
{
    if (axis < 0) {
        *rank = rank_b;
        memcpy(dims, dims_b, sizeof(int64_t) * (size_t)rank_b);
        return true;
    }
    if (axis > rank_a || rank_b > rank_a - axis)
        return false;
    int r = rank_a - (int)axis;
    for (int i = 0; i < r; i++)
        dims[i] = i < rank_b ? dims_b[i] : 1;
    *rank = r;
    return true;
}

/* ---- node helpers ----------------------------------------------------------- */

ew_node_state *ew_state_new(op_node *node, ifd_error *err)
{
    ew_node_state *s = calloc(1, sizeof(*s));
    if (!s) {
        op_prepare_fail(node, err, "out of memory");
        return NULL;
    }
    s->legacy_broadcast = -1;
    node->state = s;
    return s;
}

static int require_inputs(op_node *node, ifd_error *err, int n)
{
    if (node->n_inputs < n)
        return op_prepare_fail(node, err, "expects %d inputs, has %d", n, node->n_inputs);
    for (int i = 0; i < n; i++)
        if (!node->inputs[i])
            return op_prepare_fail(node, err, "input %d is missing", i);
    return 0;
}

int ew_binary_node_prepare(op_node *node, ifd_error *err, const ew_binary_op *op)
{
    if (require_inputs(node, err, 2) != 0)
        return -1;
    value_info *a = node->inputs[0], *b = node->inputs[1], *out = node->outputs[0];
    ifd_dtype dt = a->dtype;
    if (b->dtype != dt)
        return op_prepare_fail(node, err, "inputs have different types %s and %s",
                               ifd_dtype_name(dt), ifd_dtype_name(b->dtype));
    if ((int)dt <= 0 || (int)dt >= EW_DTYPE_SLOTS || !op->fns[dt])
        return op_prepare_fail(node, err, "unsupported input type %s", ifd_dtype_name(dt));
    ew_node_state *s = ew_state_new(node, err);
    if (!s)
        return -1;
    s->binary = op;
    out->kind = IFD_VALUE_TENSOR;
    out->dtype = op->out_bool ? IFD_BOOL : dt;
    if (node->version < 7) {
        /* Add-1/6 and friends: broadcasting only with broadcast=1, B's dims
         * aligned with A's at `axis` (suffix matching without it). The output
         * has A's shape. */
        s->legacy_broadcast = op_attr_int(node, "broadcast", 0) != 0;
        s->has_axis = op_attr_has(node, "axis");
        s->legacy_axis = op_attr_int(node, "axis", -1);
        if (s->has_axis && a->rank >= 0) {
            if (s->legacy_axis < -a->rank || s->legacy_axis >= (a->rank ? a->rank : 1))
                return op_prepare_fail(node, err, "axis %lld is out of range for rank %d",
                                       (long long)s->legacy_axis, a->rank);
        }
        out->rank = a->rank;
        memcpy(out->dims, a->dims, sizeof(out->dims));
        return 0;
    }
    value_info *in[2] = {a, b};
    return ew_infer_broadcast(node, err, 2, in, out);
}

int ew_legacy_view(op_ctx *ctx, const ew_node_state *s, const ifd_tensor *a, const ifd_tensor *b,
                   ifd_tensor *b_view)
{
    char sa[128], sb[128];
    *b_view = tensor_view(b);
    if (s->legacy_broadcast == 0) {
        if (!tensor_same_shape(a, b))
            return op_fail(ctx,
                           "inputs of shapes %s and %s differ and the broadcast attribute is 0",
                           shape_to_string(a->rank, a->dims, sa, sizeof(sa)),
                           shape_to_string(b->rank, b->dims, sb, sizeof(sb)));
        return 0;
    }
    int64_t axis = -1; /* suffix matching */
    if (s->has_axis)
        axis = s->legacy_axis < 0 ? s->legacy_axis + a->rank : s->legacy_axis;
    int rank;
    int64_t dims[IFD_MAX_RANK];
    if ((s->has_axis && axis < 0) || !ew_legacy_shape(a->rank, b->rank, b->dims, axis, &rank, dims))
        return op_fail(ctx, "B of shape %s cannot be aligned with A of shape %s at axis %lld",
                       shape_to_string(b->rank, b->dims, sb, sizeof(sb)),
                       shape_to_string(a->rank, a->dims, sa, sizeof(sa)),
                       (long long)s->legacy_axis);
    tensor_set_shape(b_view, rank, dims);
    /* B must broadcast into A without growing it. */
    if (rank > a->rank)
        return op_fail(ctx, "B of shape %s has more dimensions than A of shape %s",
                       shape_to_string(b->rank, b->dims, sb, sizeof(sb)),
                       shape_to_string(a->rank, a->dims, sa, sizeof(sa)));
    for (int i = 0; i < rank; i++) {
        int64_t d = dims[rank - 1 - i], ad = a->dims[a->rank - 1 - i];
        if (d != 1 && d != ad)
            return op_fail(ctx, "B of shape %s does not broadcast into A of shape %s",
                           shape_to_string(b->rank, b->dims, sb, sizeof(sb)),
                           shape_to_string(a->rank, a->dims, sa, sizeof(sa)));
    }
    return 0;
}

int ew_binary_node_run(op_ctx *ctx)
{
    const ew_node_state *s = ctx->node->state;
    const ifd_tensor *a = op_input(ctx, 0), *b = op_input(ctx, 1);
    ifd_tensor b_view;
    int rank;
    int64_t dims[IFD_MAX_RANK];
    char sa[128], sb[128];
    if (!a || !b)
        return op_fail(ctx, "missing input tensor");
    if (s->legacy_broadcast >= 0) {
        if (ew_legacy_view(ctx, s, a, b, &b_view) != 0)
            return -1;
        b = &b_view;
    }
    const ifd_tensor *in[2] = {a, b};
    if (!ew_broadcast_tensors(2, in, &rank, dims))
        return op_fail(ctx, "inputs of shapes %s and %s cannot be broadcast",
                       shape_to_string(a->rank, a->dims, sa, sizeof(sa)),
                       shape_to_string(b->rank, b->dims, sb, sizeof(sb)));
    ifd_tensor *out = op_output(ctx, 0, s->binary->out_bool ? IFD_BOOL : a->dtype, rank, dims);
    if (!out)
        return -1;
    return ew_binary_apply(ctx, s->binary, a, b, out);
}

int ew_unary_node_prepare(op_node *node, ifd_error *err, const ew_unary_op *op,
                          const ew_params *params)
{
    if (require_inputs(node, err, 1) != 0)
        return -1;
    value_info *x = node->inputs[0], *y = node->outputs[0];
    ifd_dtype dt = x->dtype;
    if ((int)dt <= 0 || (int)dt >= EW_DTYPE_SLOTS || !op->fns[dt])
        return op_prepare_fail(node, err, "unsupported input type %s", ifd_dtype_name(dt));
    ew_node_state *s = ew_state_new(node, err);
    if (!s)
        return -1;
    s->unary = op;
    if (params)
        s->params = *params;
    y->kind = IFD_VALUE_TENSOR;
    y->dtype = op->out_bool ? IFD_BOOL : dt;
    y->rank = x->rank;
    memcpy(y->dims, x->dims, sizeof(y->dims));
    return 0;
}

int ew_unary_node_run(op_ctx *ctx)
{
    const ew_node_state *s = ctx->node->state;
    const ifd_tensor *x = op_input(ctx, 0);
    if (!x)
        return op_fail(ctx, "missing input tensor");
    ifd_tensor *y = op_output(ctx, 0, s->unary->out_bool ? IFD_BOOL : x->dtype, x->rank, x->dims);
    if (!y)
        return -1;
    return ew_unary_apply(ctx, s->unary, &s->params, x, y);
}

/* ---- binary kernels ------------------------------------------------------- */

#define Add_F(T, W, x, y) ((x) + (y))
#define Add_S(T, W, x, y) ((T)((W)(x) + (W)(y)))
#define Add_U Add_S
#define Sub_F(T, W, x, y) ((x) - (y))
#define Sub_S(T, W, x, y) ((T)((W)(x) - (W)(y)))
#define Sub_U Sub_S
#define Mul_F(T, W, x, y) ((x) * (y))
#define Mul_S(T, W, x, y) ((T)((W)(x) * (W)(y)))
#define Mul_U Mul_S
/* Divisors are checked for zero before; INT_MIN / -1 would trap. */
#define Div_F(T, W, x, y) ((x) / (y))
#define Div_S(T, W, x, y) ((y) == -1 ? (T)((W)0 - (W)(x)) : (T)((x) / (y)))
#define Div_U(T, W, x, y) ((T)((x) / (y)))
/* Max/Min propagate NaN like numpy's maximum/minimum. */
#define Max_F(T, W, x, y) ((x) > (y) || (x) != (x) ? (x) : (y))
#define Max_S(T, W, x, y) ((x) > (y) ? (x) : (y))
#define Max_U Max_S
#define Min_F(T, W, x, y) ((x) < (y) || (x) != (x) ? (x) : (y))
#define Min_S(T, W, x, y) ((x) < (y) ? (x) : (y))
#define Min_U Min_S
/* Mod with fmod=1: the remainder has the dividend's sign (C's fmod, %). */
#define Fmod_F(T, W, x, y) fmod((x), (y))
#define Fmod_S(T, W, x, y) ((y) == -1 ? (T)0 : (T)((x) % (y)))
#define Fmod_U(T, W, x, y) ((T)((x) % (y)))
/* Mod with fmod=0: the remainder has the divisor's sign (numpy's mod). */
#define Mod_F(T, W, x, y) floor_mod_##T(x, y)
#define Mod_S(T, W, x, y) ((y) == -1 ? (T)0 : floor_mod_int((x) % (y), (y), T))
#define Mod_U Fmod_U
#define floor_mod_int(r, y, T) ((T)((r) != 0 && (((r) < 0) != ((y) < 0)) ? (r) + (y) : (r)))
#define Pow_F(T, W, x, y) pow((x), (y))
#define Pow_S(T, W, x, y) ipow_##T(x, y)
#define Pow_U Pow_S
/* BitShift: shifting by the width or more gives 0 (undefined in C). */
#define BitShiftLeft_U(T, W, x, y) ((y) >= sizeof(T) * 8 ? (T)0 : (T)((W)(x) << (y)))
#define BitShiftRight_U(T, W, x, y) ((y) >= sizeof(T) * 8 ? (T)0 : (T)((x) >> (y)))

static inline float floor_mod_float(float x, float y)
{
    float r = fmod(x, y);
    return r != 0 && ((r < 0) != (y < 0)) ? r + y : r;
}

static inline double floor_mod_double(double x, double y)
{
    double r = fmod(x, y);
    return r != 0 && ((r < 0) != (y < 0)) ? r + y : r;
}

/* Integer powers by squaring in the wrapping type; negative exponents give
 * 1/x^n truncated toward zero (0 unless |x| == 1). */
#define DEFINE_IPOW(unused, DT, T, SFX, KIND, W)                                                   \
    static inline T ipow_##T(T x, T y)                                                             \
    {                                                                                              \
        if (y < (T)1 && y != (T)0) {                                                               \
            if (x == (T)1)                                                                         \
                return (T)1;                                                                       \
            if (x == (T)-1)                                                                        \
                return ((W)y & 1u) ? x : (T)1;                                                     \
            return (T)0;                                                                           \
        }                                                                                          \
        W result = 1, base = (W)x;                                                                 \
        for (uint64_t e = (uint64_t)y; e; e >>= 1) {                                               \
            if (e & 1u)                                                                            \
                result *= base;                                                                    \
            base *= base;                                                                          \
        }                                                                                          \
        return (T)result;                                                                          \
    }
EW_INT_TYPES(DEFINE_IPOW, _)

EW_NUMERIC_TYPES(EW_BINARY_INST, Add)
EW_NUMERIC_TYPES(EW_BINARY_INST, Sub)
EW_NUMERIC_TYPES(EW_BINARY_INST, Mul)
EW_NUMERIC_TYPES(EW_BINARY_INST, Div)
EW_NUMERIC_TYPES(EW_BINARY_INST, Max)
EW_NUMERIC_TYPES(EW_BINARY_INST, Min)
EW_NUMERIC_TYPES(EW_BINARY_INST, Fmod)
EW_NUMERIC_TYPES(EW_BINARY_INST, Mod)
EW_NUMERIC_TYPES(EW_BINARY_INST, Pow)
EW_UNSIGNED_TYPES(EW_BINARY_INST, BitShiftLeft)
EW_UNSIGNED_TYPES(EW_BINARY_INST, BitShiftRight)

#define NUMERIC_BINARY_OP(op, divides)                                                             \
    static const ew_binary_op op##_op = {                                                          \
        {EW_NUMERIC_TYPES(EW_SLOT, op) EW_HALF_SLOTS(op)}, false, divides}
NUMERIC_BINARY_OP(Add, false);
NUMERIC_BINARY_OP(Sub, false);
NUMERIC_BINARY_OP(Mul, false);
NUMERIC_BINARY_OP(Div, true);
NUMERIC_BINARY_OP(Max, false);
NUMERIC_BINARY_OP(Min, false);
NUMERIC_BINARY_OP(Fmod, true);
NUMERIC_BINARY_OP(Mod, true);
NUMERIC_BINARY_OP(Pow, false);
static const ew_binary_op BitShiftLeft_op = {
    {EW_UNSIGNED_TYPES(EW_SLOT, BitShiftLeft)}, false, false};
static const ew_binary_op BitShiftRight_op = {
    {EW_UNSIGNED_TYPES(EW_SLOT, BitShiftRight)}, false, false};

/* ---- unary kernels ---------------------------------------------------------- */

#define Neg_F(T, W, x) (-(x))
#define Neg_S(T, W, x) ((T)((W)0 - (W)(x)))
#define Abs_F(T, W, x) fabs(x)
#define Abs_S(T, W, x) ((x) < 0 ? (T)((W)0 - (W)(x)) : (x))
#define Abs_U(T, W, x) (x)
#define Sign_F(T, W, x) ((x) > 0 ? (T)1 : (x) < 0 ? (T)-1 : (x) == 0 ? (T)0 : (x))
#define Sign_S(T, W, x) ((T)(((x) > 0) - ((x) < 0)))
#define Sign_U(T, W, x) ((T)((x) > 0))
/* Erf of integers (allowed since Erf-9) goes through double. */
#define Erf_F(T, W, x) erf(x)
#define Erf_S(T, W, x) ((T)ew_double_to_int64(erf((double)(x))))
#define Erf_U Erf_S
#define Exp_F(T, W, x) _Generic((x), float : ew_expf, default : exp)(x)
#define Log_F(T, W, x) log(x)
#define Sqrt_F(T, W, x) sqrt(x)
#define Reciprocal_F(T, W, x) ((T)1 / (x))
#define Floor_F(T, W, x) floor(x)
#define Ceil_F(T, W, x) ceil(x)
/* Round-11: halves to even, which is nearbyint in the default rounding mode. */
#define Round_F(T, W, x) nearbyint(x)
#define Sin_F(T, W, x) sin(x)
#define Cos_F(T, W, x) cos(x)
#define Tan_F(T, W, x) tan(x)
#define Asin_F(T, W, x) asin(x)
#define Acos_F(T, W, x) acos(x)
#define Atan_F(T, W, x) atan(x)
#define Sinh_F(T, W, x) sinh(x)
#define Cosh_F(T, W, x) cosh(x)
#define Asinh_F(T, W, x) asinh(x)
#define Acosh_F(T, W, x) acosh(x)
#define Atanh_F(T, W, x) atanh(x)
#define IsNaN_F(T, W, x) ((x) != (x))
#define IsInf_F(T, W, x)                                                                           \
    ((p->detect_positive && (x) == (T)INFINITY) || (p->detect_negative && (x) == -(T)INFINITY))
/* Pow's fast paths for a scalar exponent of 2, 3 or 0.5. */
#define Square_F(T, W, x) ((x) * (x))
#define Cube_F(T, W, x) ((x) * (x) * (x))

EW_SIGNED_NUMERIC_TYPES(EW_UNARY_INST, Neg)
EW_NUMERIC_TYPES(EW_UNARY_INST, Abs)
EW_NUMERIC_TYPES(EW_UNARY_INST, Sign)
/* float32 Erf (and float16/bfloat16 through it) is kernels/vmath.h's
 * vector erf (1.1 ulp); float64 and integers go through libm. */
EW_UNARY_INST(Erf, IFD_DOUBLE, double, f64, F, double)
EW_INT_TYPES(EW_UNARY_INST, Erf)
static void Erf_vmath(const void *x, void *y, size_t n, const ew_params *p)
{
    (void)p;
    vmath_erf(x, y, n);
}
EW_FLOAT_TYPES(EW_UNARY_INST, Exp)
EW_FLOAT_TYPES(EW_UNARY_INST, Log)
EW_FLOAT_TYPES(EW_UNARY_INST, Sqrt)
EW_FLOAT_TYPES(EW_UNARY_INST, Reciprocal)
EW_FLOAT_TYPES(EW_UNARY_INST, Floor)
EW_FLOAT_TYPES(EW_UNARY_INST, Ceil)
EW_FLOAT_TYPES(EW_UNARY_INST, Round)
EW_FLOAT_TYPES(EW_UNARY_INST, Sin)
EW_FLOAT_TYPES(EW_UNARY_INST, Cos)
EW_FLOAT_TYPES(EW_UNARY_INST, Tan)
EW_FLOAT_TYPES(EW_UNARY_INST, Asin)
EW_FLOAT_TYPES(EW_UNARY_INST, Acos)
EW_FLOAT_TYPES(EW_UNARY_INST, Atan)
EW_FLOAT_TYPES(EW_UNARY_INST, Sinh)
EW_FLOAT_TYPES(EW_UNARY_INST, Cosh)
EW_FLOAT_TYPES(EW_UNARY_INST, Asinh)
EW_FLOAT_TYPES(EW_UNARY_INST, Acosh)
EW_FLOAT_TYPES(EW_UNARY_INST, Atanh)
EW_FLOAT_TYPES(EW_UNARY_BOOL_INST, IsNaN)
EW_FLOAT_TYPES(EW_UNARY_BOOL_INST, IsInf)
EW_FLOAT_TYPES(EW_UNARY_INST, Square)
EW_FLOAT_TYPES(EW_UNARY_INST, Cube)

#define FLOAT_UNARY_OP(op, out_bool)                                                               \
    static const ew_unary_op op##_op = {{EW_FLOAT_TYPES(EW_SLOT, op) EW_HALF_SLOTS(op)}, out_bool}
static const ew_unary_op Neg_op = {{EW_SIGNED_NUMERIC_TYPES(EW_SLOT, Neg) EW_HALF_SLOTS(Neg)},
                                   false};
static const ew_unary_op Abs_op = {{EW_NUMERIC_TYPES(EW_SLOT, Abs) EW_HALF_SLOTS(Abs)}, false};
static const ew_unary_op Sign_op = {{EW_NUMERIC_TYPES(EW_SLOT, Sign) EW_HALF_SLOTS(Sign)}, false};
static const ew_unary_op Erf_op = {
    {[IFD_FLOAT] = Erf_vmath, EW_SLOT(Erf, IFD_DOUBLE, double, f64, F, double)
         EW_INT_TYPES(EW_SLOT, Erf)[IFD_FLOAT16] = Erf_vmath, [IFD_BFLOAT16] = Erf_vmath},
    false};
FLOAT_UNARY_OP(Exp, false);
FLOAT_UNARY_OP(Log, false);
FLOAT_UNARY_OP(Sqrt, false);
FLOAT_UNARY_OP(Reciprocal, false);
FLOAT_UNARY_OP(Floor, false);
FLOAT_UNARY_OP(Ceil, false);
FLOAT_UNARY_OP(Round, false);
FLOAT_UNARY_OP(Sin, false);
FLOAT_UNARY_OP(Cos, false);
FLOAT_UNARY_OP(Tan, false);
FLOAT_UNARY_OP(Asin, false);
FLOAT_UNARY_OP(Acos, false);
FLOAT_UNARY_OP(Atan, false);
FLOAT_UNARY_OP(Sinh, false);
FLOAT_UNARY_OP(Cosh, false);
FLOAT_UNARY_OP(Asinh, false);
FLOAT_UNARY_OP(Acosh, false);
FLOAT_UNARY_OP(Atanh, false);
FLOAT_UNARY_OP(IsNaN, true);
FLOAT_UNARY_OP(IsInf, true);
FLOAT_UNARY_OP(Square, false);
FLOAT_UNARY_OP(Cube, false);

/* ---- operators -------------------------------------------------------------- */

typedef struct named_binary {
    const char *op_type;
    const ew_binary_op *op;
} named_binary;

static const named_binary binary_ops[] = {
    {"Add", &Add_op},
    {"Sub", &Sub_op},
    {"Mul", &Mul_op},
    {"Div", &Div_op},
};

static int binary_prepare(op_node *node, ifd_error *err)
{
    for (size_t i = 0; i < sizeof(binary_ops) / sizeof(binary_ops[0]); i++)
        if (strcmp(node->op_type, binary_ops[i].op_type) == 0)
            return ew_binary_node_prepare(node, err, binary_ops[i].op);
    return op_prepare_fail(node, err, "not an arithmetic operator");
}

static int mod_prepare(op_node *node, ifd_error *err)
{
    int64_t fmod_attr = op_attr_int(node, "fmod", 0);
    if (fmod_attr != 0 && fmod_attr != 1)
        return op_prepare_fail(node, err, "fmod must be 0 or 1, not %lld", (long long)fmod_attr);
    /* fmod=0 on floats is outside the spec ("must be set to 1"); it is given
     * numpy's floored modulus rather than refused. */
    return ew_binary_node_prepare(node, err, fmod_attr ? &Fmod_op : &Mod_op);
}

static int bitshift_prepare(op_node *node, ifd_error *err)
{
    const char *direction = op_attr_string(node, "direction", NULL);
    if (!direction)
        return op_prepare_fail(node, err, "the direction attribute is required");
    if (strcmp(direction, "LEFT") == 0)
        return ew_binary_node_prepare(node, err, &BitShiftLeft_op);
    if (strcmp(direction, "RIGHT") == 0)
        return ew_binary_node_prepare(node, err, &BitShiftRight_op);
    return op_prepare_fail(node, err, "direction must be LEFT or RIGHT, not '%s'", direction);
}

/* Pow-12+ allows an exponent of another numeric type than the base. A
 * float32/float64 base gets the exponent converted to its own type (integer
 * exponents stay exact up to 2^24 / 2^53); any other pair computes in double
 * and converts the result back (to integers truncating, saturating). */
static double load_double(ifd_dtype dtype, const void *p)
{
    ifd_tensor t = {.dtype = dtype, .data = (void *)p};
    return tensor_get_double(&t, 0);
}

static void store_double(ifd_dtype dtype, void *p, double v)
{
    switch (dtype) {
    case IFD_FLOAT: *(float *)p = (float)v; break;
    case IFD_DOUBLE: *(double *)p = v; break;
    case IFD_FLOAT16: *(uint16_t *)p = float_to_half((float)v); break;
    case IFD_BFLOAT16: *(uint16_t *)p = float_to_bfloat16((float)v); break;
    case IFD_INT8: *(int8_t *)p = (int8_t)ew_double_to_int64(v); break;
    case IFD_INT16: *(int16_t *)p = (int16_t)ew_double_to_int64(v); break;
    case IFD_INT32: *(int32_t *)p = (int32_t)ew_double_to_int64(v); break;
    case IFD_INT64: *(int64_t *)p = ew_double_to_int64(v); break;
    case IFD_UINT8: *(uint8_t *)p = (uint8_t)ew_double_to_uint64(v); break;
    case IFD_UINT16: *(uint16_t *)p = (uint16_t)ew_double_to_uint64(v); break;
    case IFD_UINT32: *(uint32_t *)p = (uint32_t)ew_double_to_uint64(v); break;
    case IFD_UINT64: *(uint64_t *)p = ew_double_to_uint64(v); break;
    default: break;
    }
}

typedef struct mixed_pow_job {
    ifd_dtype base, exponent;
} mixed_pow_job;

static void mixed_pow_row(void *arg, const void *const *in, void *out, size_t n, unsigned mode)
{
    const mixed_pow_job *job = arg;
    size_t sa = ifd_dtype_size(job->base), sb = ifd_dtype_size(job->exponent);
    const char *a = in[0], *b = in[1];
    for (size_t i = 0; i < n; i++) {
        double x = load_double(job->base, a + ((mode & EW_A_VEC) ? i * sa : 0));
        double y = load_double(job->exponent, b + ((mode & EW_B_VEC) ? i * sb : 0));
        store_double(job->base, (char *)out + i * sa, pow(x, y));
    }
}

static int pow_prepare(op_node *node, ifd_error *err)
{
    if (require_inputs(node, err, 2) != 0)
        return -1;
    value_info *a = node->inputs[0], *b = node->inputs[1];
    if (a->dtype == b->dtype || node->version < 12)
        return ew_binary_node_prepare(node, err, &Pow_op);
    if (!dtype_is_numeric(a->dtype) || !dtype_is_numeric(b->dtype))
        return op_prepare_fail(node, err, "unsupported input types %s and %s",
                               ifd_dtype_name(a->dtype), ifd_dtype_name(b->dtype));
    ew_node_state *s = ew_state_new(node, err);
    if (!s)
        return -1;
    s->binary = &Pow_op;
    value_info *in[2] = {a, b};
    if (ew_infer_broadcast(node, err, 2, in, node->outputs[0]) != 0)
        return -1;
    node->outputs[0]->dtype = a->dtype;
    return 0;
}

/* Pow(x, c) for a scalar c of 2, 3, 0.5 or 1: a multiplication (or sqrt)
 * instead of pow per element, as these are what models use. */
static const ew_unary_op *pow_shortcut(const ifd_tensor *a, const ifd_tensor *b)
{
    if (!dtype_is_float(a->dtype) || !dtype_is_float(b->dtype) || ifd_tensor_count(b) != 1 ||
        b->rank > a->rank)
        return NULL;
    double c = tensor_get_double(b, 0);
    if (c == 2.0)
        return &Square_op;
    if (c == 3.0)
        return &Cube_op;
    if (c == 0.5)
        return &Sqrt_op;
    return NULL;
}

static int pow_run(op_ctx *ctx)
{
    const ew_node_state *s = ctx->node->state;
    const ifd_tensor *a = op_input(ctx, 0), *b = op_input(ctx, 1);
    ifd_tensor b_view;
    int rank;
    int64_t dims[IFD_MAX_RANK];
    char sa[128], sb[128];
    if (!a || !b)
        return op_fail(ctx, "missing input tensor");
    if (s->legacy_broadcast >= 0) {
        if (ew_legacy_view(ctx, s, a, b, &b_view) != 0)
            return -1;
        b = &b_view;
    }
    const ifd_tensor *in[2] = {a, b};
    if (!ew_broadcast_tensors(2, in, &rank, dims))
        return op_fail(ctx, "inputs of shapes %s and %s cannot be broadcast",
                       shape_to_string(a->rank, a->dims, sa, sizeof(sa)),
                       shape_to_string(b->rank, b->dims, sb, sizeof(sb)));
    if (!dtype_is_numeric(a->dtype) || !dtype_is_numeric(b->dtype))
        return op_fail(ctx, "unsupported input types %s and %s", ifd_dtype_name(a->dtype),
                       ifd_dtype_name(b->dtype));
    ifd_tensor *out = op_output(ctx, 0, a->dtype, rank, dims);
    if (!out)
        return -1;
    const ew_unary_op *shortcut = pow_shortcut(a, b);
    if (shortcut && tensor_same_shape(a, out)) {
        ew_params none = {0};
        return ew_unary_apply(ctx, shortcut, &none, a, out);
    }
    if (a->dtype == b->dtype)
        return ew_binary_apply(ctx, s->binary, a, b, out);
    if (a->dtype == IFD_FLOAT || a->dtype == IFD_DOUBLE) {
        size_t n = (size_t)ifd_tensor_count(b);
        ifd_tensor converted = tensor_view(b);
        converted.dtype = a->dtype;
        converted.data = op_scratch(ctx, (n ? n : 1) * ifd_dtype_size(a->dtype));
        if (!converted.data)
            return -1;
        for (size_t i = 0; i < n; i++)
            tensor_set_double(&converted, i, tensor_get_double(b, i));
        return ew_binary_apply(ctx, s->binary, a, &converted, out);
    }
    mixed_pow_job job = {a->dtype, b->dtype};
    ew_walk w;
    if (!ew_walk_init(&w, out, 2, in, mixed_pow_row, &job))
        return op_fail(ctx, "inputs cannot be broadcast");
    ew_walk_run(ctx, &w, true);
    return 0;
}

/* Min, Max, Sum, Mean: any number of inputs broadcast together (Max-8 and
 * later; earlier versions required equal shapes, which broadcasting
 * includes). */
typedef struct named_variadic {
    const char *op_type;
    const ew_binary_op *op;
    bool float_only;
} named_variadic;

static const named_variadic variadic_ops[] = {
    {"Min", &Min_op, false},
    {"Max", &Max_op, false},
    {"Sum", &Add_op, false},
    {"Mean", &Add_op, true},
};

static int variadic_prepare(op_node *node, ifd_error *err)
{
    const named_variadic *v = NULL;
    for (size_t i = 0; i < sizeof(variadic_ops) / sizeof(variadic_ops[0]); i++)
        if (strcmp(node->op_type, variadic_ops[i].op_type) == 0)
            v = &variadic_ops[i];
    if (!v)
        return op_prepare_fail(node, err, "not a variadic operator");
    if (node->n_inputs < 1)
        return op_prepare_fail(node, err, "needs at least one input");
    if (require_inputs(node, err, node->n_inputs) != 0)
        return -1;
    ifd_dtype dt = node->inputs[0]->dtype;
    for (int i = 1; i < node->n_inputs; i++)
        if (node->inputs[i]->dtype != dt)
            return op_prepare_fail(node, err, "input %d is %s, input 0 is %s", i,
                                   ifd_dtype_name(node->inputs[i]->dtype), ifd_dtype_name(dt));
    if ((int)dt <= 0 || (int)dt >= EW_DTYPE_SLOTS || !v->op->fns[dt] ||
        (v->float_only && !dtype_is_float(dt)))
        return op_prepare_fail(node, err, "unsupported input type %s", ifd_dtype_name(dt));
    ew_node_state *s = ew_state_new(node, err);
    if (!s)
        return -1;
    s->binary = v->op;
    s->extra = v->float_only; /* Mean divides the sum */
    if (ew_infer_broadcast(node, err, node->n_inputs, node->inputs, node->outputs[0]) != 0)
        return -1;
    node->outputs[0]->dtype = dt;
    return 0;
}

/* Mean's final step, in place on the sum (one pointer, so no aliasing). */
static void divide_in_place(ifd_tensor *t, double divisor)
{
    size_t n = (size_t)ifd_tensor_count(t);
    if (t->dtype == IFD_FLOAT) {
        float *y = t->data, d = (float)divisor;
        for (size_t i = 0; i < n; i++)
            y[i] = y[i] / d;
    } else if (t->dtype == IFD_DOUBLE) {
        double *y = t->data;
        for (size_t i = 0; i < n; i++)
            y[i] = y[i] / divisor;
    } else {
        uint16_t *y = t->data;
        float block[EW_HALF_BLOCK], d = (float)divisor;
        for (size_t i = 0; i < n;) {
            size_t m = min_size(EW_HALF_BLOCK, n - i);
            ew_half_to_float(t->dtype, y + i, block, m);
            for (size_t j = 0; j < m; j++)
                block[j] = block[j] / d;
            ew_float_to_half(t->dtype, block, y + i, m);
            i += m;
        }
    }
}

static int variadic_run(op_ctx *ctx)
{
    const ew_node_state *s = ctx->node->state;
    int n = ctx->n_inputs, rank = 0;
    int64_t dims[IFD_MAX_RANK];
    for (int i = 0; i < n; i++) {
        const ifd_tensor *t = op_input(ctx, i);
        int64_t merged[IFD_MAX_RANK];
        if (!t)
            return op_fail(ctx, "input %d is missing", i);
        if (!broadcast_shapes(rank, dims, t->rank, t->dims, &rank, merged)) {
            char st[128];
            return op_fail(ctx, "input %d of shape %s does not broadcast with the others", i,
                           shape_to_string(t->rank, t->dims, st, sizeof(st)));
        }
        memcpy(dims, merged, sizeof(int64_t) * (size_t)rank);
    }
    const ifd_tensor *first = op_input(ctx, 0);
    ifd_tensor *out = op_output(ctx, 0, first->dtype, rank, dims);
    if (!out)
        return -1;
    if (n == 1) {
        memcpy(out->data, first->data,
               (size_t)ifd_tensor_count(first) * ifd_dtype_size(first->dtype));
        return 0;
    }
    if (ifd_tensor_count(out) == 0)
        return 0;
    /* Fold the inputs pairwise, alternating between out and a scratch buffer
     * so that no step reads the buffer it writes and the last lands in out.
     * Each step's result has the broadcast shape of the inputs folded so far,
     * which can be smaller than the final one (Max(s, s, v) folds two scalars
     * first); with every final dim >= 1 it never holds more elements. */
    ifd_tensor scratch = tensor_view(out);
    if (n > 2) {
        scratch.data =
            op_scratch(ctx, (size_t)ifd_tensor_count(out) * ifd_dtype_size(out->dtype) + 1);
        if (!scratch.data)
            return -1;
    }
    const ifd_tensor *acc = first;
    for (int j = 1; j < n; j++) {
        ifd_tensor *target = (n - 1 - j) % 2 == 0 ? out : &scratch;
        const ifd_tensor *next = op_input(ctx, j);
        int step_rank;
        int64_t step_dims[IFD_MAX_RANK];
        broadcast_shapes(acc->rank, acc->dims, next->rank, next->dims, &step_rank, step_dims);
        tensor_set_shape(target, step_rank, step_dims);
        if (ew_binary_apply(ctx, s->binary, acc, next, target) != 0)
            return -1;
        acc = target;
    }
    if (s->extra)
        divide_in_place(out, (double)n);
    return 0;
}

/* ---- unary operators ---------------------------------------------------- */

typedef struct named_unary {
    const char *op_type;
    const ew_unary_op *op;
} named_unary;

static const named_unary unary_ops[] = {
    {"Neg", &Neg_op},     {"Abs", &Abs_op},
    {"Sign", &Sign_op},   {"Erf", &Erf_op},
    {"Exp", &Exp_op},     {"Log", &Log_op},
    {"Sqrt", &Sqrt_op},   {"Reciprocal", &Reciprocal_op},
    {"Floor", &Floor_op}, {"Ceil", &Ceil_op},
    {"Round", &Round_op}, {"Sin", &Sin_op},
    {"Cos", &Cos_op},     {"Tan", &Tan_op},
    {"Asin", &Asin_op},   {"Acos", &Acos_op},
    {"Atan", &Atan_op},   {"Sinh", &Sinh_op},
    {"Cosh", &Cosh_op},   {"Asinh", &Asinh_op},
    {"Acosh", &Acosh_op}, {"Atanh", &Atanh_op},
    {"IsNaN", &IsNaN_op},
};

static int unary_prepare(op_node *node, ifd_error *err)
{
    for (size_t i = 0; i < sizeof(unary_ops) / sizeof(unary_ops[0]); i++)
        if (strcmp(node->op_type, unary_ops[i].op_type) == 0)
            return ew_unary_node_prepare(node, err, unary_ops[i].op, NULL);
    return op_prepare_fail(node, err, "not a unary operator");
}

static int isinf_prepare(op_node *node, ifd_error *err)
{
    ew_params p = {0};
    p.detect_negative = op_attr_int(node, "detect_negative", 1) != 0;
    p.detect_positive = op_attr_int(node, "detect_positive", 1) != 0;
    return ew_unary_node_prepare(node, err, &IsInf_op, &p);
}

/* Version ranges follow onnx_op_versions.c; versions that only added dtypes
 * or dropped consumed_inputs share one implementation. */
static const op_def defs[] = {
    {"", "Add", 1, 14, binary_prepare, ew_binary_node_run, free},
    {"", "Sub", 1, 14, binary_prepare, ew_binary_node_run, free},
    {"", "Mul", 1, 14, binary_prepare, ew_binary_node_run, free},
    {"", "Div", 1, 14, binary_prepare, ew_binary_node_run, free},
    {"", "Pow", 1, 15, pow_prepare, pow_run, free},
    {"", "Mod", 10, 13, mod_prepare, ew_binary_node_run, free},
    {"", "BitShift", 11, 11, bitshift_prepare, ew_binary_node_run, free},
    {"", "Min", 1, 13, variadic_prepare, variadic_run, free},
    {"", "Max", 1, 13, variadic_prepare, variadic_run, free},
    {"", "Sum", 1, 13, variadic_prepare, variadic_run, free},
    {"", "Mean", 1, 13, variadic_prepare, variadic_run, free},
    {"", "Neg", 1, 13, unary_prepare, ew_unary_node_run, free},
    {"", "Abs", 1, 13, unary_prepare, ew_unary_node_run, free},
    {"", "Sign", 9, 13, unary_prepare, ew_unary_node_run, free},
    {"", "Erf", 9, 13, unary_prepare, ew_unary_node_run, free},
    {"", "Exp", 1, 13, unary_prepare, ew_unary_node_run, free},
    {"", "Log", 1, 13, unary_prepare, ew_unary_node_run, free},
    {"", "Sqrt", 1, 13, unary_prepare, ew_unary_node_run, free},
    {"", "Reciprocal", 1, 13, unary_prepare, ew_unary_node_run, free},
    {"", "Floor", 1, 13, unary_prepare, ew_unary_node_run, free},
    {"", "Ceil", 1, 13, unary_prepare, ew_unary_node_run, free},
    {"", "Round", 11, 11, unary_prepare, ew_unary_node_run, free},
    {"", "Sin", 7, 7, unary_prepare, ew_unary_node_run, free},
    {"", "Cos", 7, 7, unary_prepare, ew_unary_node_run, free},
    {"", "Tan", 7, 7, unary_prepare, ew_unary_node_run, free},
    {"", "Asin", 7, 7, unary_prepare, ew_unary_node_run, free},
    {"", "Acos", 7, 7, unary_prepare, ew_unary_node_run, free},
    {"", "Atan", 7, 7, unary_prepare, ew_unary_node_run, free},
    {"", "Sinh", 9, 9, unary_prepare, ew_unary_node_run, free},
    {"", "Cosh", 9, 9, unary_prepare, ew_unary_node_run, free},
    {"", "Asinh", 9, 9, unary_prepare, ew_unary_node_run, free},
    {"", "Acosh", 9, 9, unary_prepare, ew_unary_node_run, free},
    {"", "Atanh", 9, 9, unary_prepare, ew_unary_node_run, free},
    /* IsNaN-20 / IsInf-20 (onnx 1.15 Operators.md) added float8 inputs, and
     * IsInf-20 float16/bfloat16, which the half slots already serve. */
    {"", "IsNaN", 9, 20, unary_prepare, ew_unary_node_run, free},
    {"", "IsInf", 10, 20, isinf_prepare, ew_unary_node_run, free},
};

OP_FAMILY(ops_elementwise, defs);
