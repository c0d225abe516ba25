/*
 * ops/shape.c — operators about shapes: the reshaping family (Reshape,
 * Flatten, Squeeze, Unsqueeze, Identity, inference-mode Dropout), shape
 * queries (Shape, Size), broadcasting copies (Expand, Tile) and generators
 * (ConstantOfShape, Range, EyeLike).
 *
 * Reshape-like operators give the data unchanged under new dims: as a view of
 * the input's buffer where the buffer planner allows (arena_plan.c,
 * plan_views), a copy otherwise. The work is in getting the dims right, at
 * load when the shape/axes inputs are initializers (so later nodes see the
 * shape) and at run time otherwise.
 * Expand and Tile are strided copies done by layout.c's layout_copy_strided:
 * Expand reads broadcast axes with stride 0, Tile views the output as
 * [r0, d0, r1, d1, ...] and reads the input with stride 0 on every r_k.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "../model.h"
#include "../op.h"
#include "op_util.h"


/* ---- shared helpers ----------------------------------------------------- */





/* An int64 input holding a shape, axes or repeats. */
static int check_int64_input(op_node *node, int i, const char *what, ifd_error *err)
{
    if (check_input_tensor(node, i, err))
        return -1;
    if (node->inputs[i]->dtype != IFD_INT64)
        return op_prepare_fail(node, err, "%s must be int64, not %s", what,
                               ifd_dtype_name(node->inputs[i]->dtype));
    return 0;
}


static bool known_dims(int rank, const int64_t *dims)
{
    if (rank < 0)
        return false;
    for (int k = 0; k < rank; k++)
        if (dims[k] < 0)
            return false;
    return true;
}

/* A large copy in 64 KiB pieces over the session's threads: a transformer
 * reshapes its Q, K, V and attention output every layer (a MiB each at
 * batch 8), and one thread copying while the others spin was a tenth of a
 * 2-thread run. Each piece is then copied by the core whose previous node
 * wrote most of it, as the products split rows the same way. */
#define COPY_PIECE ((size_t)64 << 10)

typedef struct copy_job {
    const char *src;
    char *dst;
    size_t bytes;
} copy_job;

static void copy_pieces(void *arg, size_t begin, size_t end)
{
    const copy_job *job = arg;
    size_t from = begin * COPY_PIECE, to = end * COPY_PIECE < job->bytes ? end * COPY_PIECE : job->bytes;
    memcpy(job->dst + from, job->src + from, to - from);
}

/* Copy x's elements into y (same count, any dims). */
static int copy_elements(op_ctx *ctx, ifd_tensor *y, const ifd_tensor *x)
{
    size_t count = (size_t)ifd_tensor_count(x);
    if (x->dtype == IFD_STRING) {
        if (!strings_copy(y->data, x->data, count))
            return op_fail(ctx, "out of memory copying strings");
    } else if (count && y->data != x->data) {
        copy_job job = {x->data, y->data, count * ifd_dtype_size(x->dtype)};
        if (job.bytes >= 4 * COPY_PIECE)
            op_parallel_for(ctx, (job.bytes + COPY_PIECE - 1) / COPY_PIECE, 1, copy_pieces, &job);
        else
            memcpy(y->data, x->data, job.bytes);
    }
    return 0;
}

/* Output 0 = input 0's data under new dims. */
static int emit_reshaped(op_ctx *ctx, const ifd_tensor *x, int rank, const int64_t *dims)
{
    if (op_output_view(ctx, 0, x, rank, dims))
        return 0;
    ifd_tensor *y = op_output(ctx, 0, x->dtype, rank, dims);
    if (!y)
        return -1;
    return copy_elements(ctx, y, x);
}

/* Small integer lists (a shape, axes) held at load in node->state, from an
 * attribute or a constant input. */
typedef struct int_list {
    bool known;
    size_t count;
    int64_t values[IFD_MAX_RANK];
} int_list;

/* Read an int list from an attribute or a constant input into *list; a
 * non-constant input leaves it unknown. */
static int load_int_list(op_node *node, const char *attr, int input, const char *what,
                         int_list *list, ifd_error *err)
{
    if (attr) {
        const int64_t *v;
        size_t n = op_attr_ints(node, attr, &v);
        if (n > IFD_MAX_RANK)
            return op_prepare_fail(node, err, "'%s' has %zu entries, more than %d", attr, n,
                                   IFD_MAX_RANK);
        if (n)
            memcpy(list->values, v, n * sizeof(int64_t));
        list->count = n;
        list->known = op_attr_has(node, attr);
        return 0;
    }
    const value_info *in = input_info(node, input);
    if (in && in->constant) {
        if (!tensor_read_int64s(in->constant, list->values, IFD_MAX_RANK, &list->count))
            return op_prepare_fail(node, err, "%s must hold at most %d integers", what,
                                   IFD_MAX_RANK);
        list->known = true;
    }
    return 0;
}

/* The run-time value of an int list: the one known at load, else input i. */
static int run_int_list(op_ctx *ctx, const int_list *loaded, int input, const char *what,
                        int_list *out)
{
    if (loaded->known) {
        *out = *loaded;
        return 0;
    }
    const ifd_tensor *t = input_tensor(ctx, input);
    out->known = t != NULL;
    out->count = 0;
    if (t && !tensor_read_int64s(t, out->values, IFD_MAX_RANK, &out->count))
        return op_fail(ctx, "%s must be an integer tensor of at most %d elements", what,
                       IFD_MAX_RANK);
    return 0;
}

/* ---- Reshape ------------------------------------------------------------ */

/* At load, input dims that the shape copies with 0 cancel out of both sides,
 * so [N,3,4] -> [0,-1] infers 12 without knowing N. -1 when that does not
 * settle the inferred dim. */
static int64_t infer_past_copied(const int64_t *shape, size_t n, int in_rank,
                                 const int64_t *in_dims, bool allowzero, int inferred)
{
    int64_t rest_in = 1, rest_out = 1;
    if (in_rank < 0 || allowzero)
        return -1;
    for (int k = 0; k < in_rank; k++) {
        if ((size_t)k < n && shape[k] == 0)
            continue;
        if (in_dims[k] < 0 || (in_dims[k] && rest_in > INT64_MAX / in_dims[k]))
            return -1;
        rest_in *= in_dims[k];
    }
    for (size_t i = 0; i < n; i++) {
        if ((int)i == inferred || shape[i] == 0)
            continue;
        if (shape[i] < 0 || rest_out > INT64_MAX / shape[i])
            return -1;
        rest_out *= shape[i];
    }
    return rest_out > 0 && rest_in % rest_out == 0 ? rest_in / rest_out : -1;
}

/* Resolve Reshape's requested shape against the input dims (entries < 0 are
 * unknown at load and give unknown output dims). Returns NULL, or the reason
 * the shape is invalid, formatted into buf. */
static const char *resolve_reshape(const int64_t *shape, size_t n, int in_rank,
                                   const int64_t *in_dims, bool allowzero, int64_t *out, char *buf,
                                   size_t size)
{
    int inferred = -1;
    bool has_zero = false, others_known = true;
    int64_t in_count = -1, others = 1;
    if (n > IFD_MAX_RANK) {
        snprintf(buf, size, "shape has %zu dims, more than %d", n, IFD_MAX_RANK);
        return buf;
    }
    for (size_t i = 0; i < n; i++) {
        int64_t s = shape[i];
        if (s == -1) {
            if (inferred >= 0) {
                snprintf(buf, size, "shape has more than one -1 dim");
                return buf;
            }
            inferred = (int)i;
            continue;
        }
        if (s < -1) {
            snprintf(buf, size, "shape dim %zu is %lld", i, (long long)s);
            return buf;
        }
        if (s == 0 && !allowzero) {
            if (in_rank >= 0 && (int)i >= in_rank) {
                snprintf(buf, size, "shape dim %zu is 0 but the input has rank %d", i, in_rank);
                return buf;
            }
            s = in_rank >= 0 ? in_dims[i] : -1;
        } else if (s == 0) {
            has_zero = true;
        }
        out[i] = s;
        if (s < 0 || (s != 0 && others > INT64_MAX / s))
            others_known = false;
        else
            others *= s;
    }
    if (allowzero && has_zero && inferred >= 0) {
        snprintf(buf, size, "shape has both -1 and 0 with allowzero=1");
        return buf;
    }
    if (known_dims(in_rank, in_dims) && !shape_count(in_rank, in_dims, &in_count))
        in_count = -1;
    if (inferred >= 0) {
        if (in_count < 0 || !others_known) {
            out[inferred] = infer_past_copied(shape, n, in_rank, in_dims, allowzero, inferred);
            return NULL;
        }
        if (others == 0 || in_count % others != 0) {
            snprintf(buf, size, "cannot infer the -1 dim: %lld elements into blocks of %lld",
                     (long long)in_count, (long long)others);
            return buf;
        }
        out[inferred] = in_count / others;
        return NULL;
    }
    int64_t out_count;
    if (in_count >= 0 && known_dims((int)n, out) &&
        (!shape_count((int)n, out, &out_count) || out_count != in_count)) {
        char shape_buf[128];
        snprintf(buf, size, "cannot reshape %lld elements into shape %s", (long long)in_count,
                 shape_to_string((int)n, out, shape_buf, sizeof(shape_buf)));
        return buf;
    }
    return NULL;
}

/* Reshape-1 takes the shape as an attribute, Reshape-5 on as input 1;
 * Reshape-14 adds allowzero (0 then means a zero dim, not "copy"). */
static int reshape_prepare(op_node *node, ifd_error *err)
{
    int_list *shape;
    if (check_input_tensor(node, 0, err))
        return -1;
    if (node->version >= 5 && check_int64_input(node, 1, "shape", err))
        return -1;
    if (!(shape = calloc(1, sizeof(*shape))))
        return op_prepare_fail(node, err, "out of memory");
    node->state = shape;
    if (load_int_list(node, node->version < 5 ? "shape" : NULL, 1, "shape", shape, err))
        return -1;
    if (node->version < 5 && !shape->known)
        return op_prepare_fail(node, err, "attribute 'shape' is required");
    const value_info *in = node->inputs[0];
    if (!shape->known) {
        const value_info *s = node->inputs[1];
        int rank =
            s->rank == 1 && s->dims[0] >= 0 && s->dims[0] <= IFD_MAX_RANK ? (int)s->dims[0] : -1;
        set_output(node, 0, in->dtype, rank, NULL);
        return 0;
    }
    int64_t dims[IFD_MAX_RANK];
    char reason[256];
    bool allowzero = node->version >= 14 && op_attr_int(node, "allowzero", 0) != 0;
    if (resolve_reshape(shape->values, shape->count, in->rank, in->dims, allowzero, dims, reason,
                        sizeof(reason)))
        return op_prepare_fail(node, err, "%s", reason);
    set_output(node, 0, in->dtype, (int)shape->count, dims);
    return 0;
}

static int reshape_run(op_ctx *ctx)
{
    const ifd_tensor *x = op_input(ctx, 0);
    int_list shape;
    int64_t dims[IFD_MAX_RANK];
    char reason[256];
    if (run_int_list(ctx, ctx->node->state, 1, "shape", &shape))
        return -1;
    if (!shape.known)
        return op_fail(ctx, "input 'shape' is missing");
    bool allowzero = ctx->node->version >= 14 && op_attr_int(ctx->node, "allowzero", 0) != 0;
    if (resolve_reshape(shape.values, shape.count, x->rank, x->dims, allowzero, dims, reason,
                        sizeof(reason)))
        return op_fail(ctx, "%s", reason);
    return emit_reshaped(ctx, x, (int)shape.count, dims);
}

/* ---- Flatten ------------------------------------------------------------ */

/* Flatten-1/9 take axis in [0, rank]; Flatten-11 adds negative axes. */
static bool flatten_axis(const op_node *node, int rank, int64_t *axis)
{
    int64_t a = op_attr_int(node, "axis", 1);
    if (a < 0 && node->version >= 11)
        a += rank;
    if (a < 0 || a > rank)
        return false;
    *axis = a;
    return true;
}

static void flatten_dims(int rank, const int64_t *in, int64_t axis, int64_t *out)
{
    out[0] = out[1] = 1;
    for (int k = 0; k < rank; k++) {
        int64_t *d = &out[k < axis ? 0 : 1];
        if (in[k] < 0 || *d < 0)
            *d = -1;
        else if (in[k] != 0 && *d > INT64_MAX / in[k])
            *d = -1;
        else
            *d *= in[k];
    }
}

static int flatten_prepare(op_node *node, ifd_error *err)
{
    if (check_input_tensor(node, 0, err))
        return -1;
    const value_info *in = node->inputs[0];
    int64_t axis, dims[2];
    if (in->rank < 0) {
        set_output(node, 0, in->dtype, 2, NULL);
        return 0;
    }
    if (!flatten_axis(node, in->rank, &axis))
        return op_prepare_fail(node, err, "axis %lld is out of range for rank %d",
                               (long long)op_attr_int(node, "axis", 1), in->rank);
    flatten_dims(in->rank, in->dims, axis, dims);
    set_output(node, 0, in->dtype, 2, dims);
    return 0;
}

static int flatten_run(op_ctx *ctx)
{
    const ifd_tensor *x = op_input(ctx, 0);
    int64_t axis, dims[2];
    if (!flatten_axis(ctx->node, x->rank, &axis))
        return op_fail(ctx, "axis is out of range for rank %d", x->rank);
    flatten_dims(x->rank, x->dims, axis, dims);
    return emit_reshaped(ctx, x, 2, dims);
}

/* ---- Squeeze / Unsqueeze ------------------------------------------------ */

/* Axes are the `axes` attribute before version 13 and input 1 from 13. */
static int axes_prepare(op_node *node, int_list **axes, ifd_error *err)
{
    if (check_input_tensor(node, 0, err))
        return -1;
    if (node->version >= 13 && input_info(node, 1) && check_int64_input(node, 1, "axes", err))
        return -1;
    if (!(*axes = calloc(1, sizeof(**axes))))
        return op_prepare_fail(node, err, "out of memory");
    node->state = *axes;
    return load_int_list(node, node->version < 13 ? "axes" : NULL, 1, "axes", *axes, err);
}

/* Output dims of Squeeze; axes NULL squeezes every 1. Unknown input dims make
 * the answer unknown (returns 1) unless axes name them. */
static int squeeze_dims(const int_list *axes, int rank, const int64_t *in, int *out_rank,
                        int64_t *out, char *buf, size_t size)
{
    bool drop[IFD_MAX_RANK] = {false};
    if (axes) {
        for (size_t i = 0; i < axes->count; i++) {
            int64_t a = axes->values[i];
            if (a < -rank || a >= rank) {
                snprintf(buf, size, "axis %lld is out of range for rank %d", (long long)a, rank);
                return -1;
            }
            a = a < 0 ? a + rank : a;
            if (in[a] >= 0 && in[a] != 1) {
                snprintf(buf, size, "axis %lld has size %lld, not 1", (long long)a,
                         (long long)in[a]);
                return -1;
            }
            drop[a] = true;
        }
    } else {
        for (int k = 0; k < rank; k++) {
            if (in[k] < 0)
                return 1;
            drop[k] = in[k] == 1;
        }
    }
    *out_rank = 0;
    for (int k = 0; k < rank; k++)
        if (!drop[k])
            out[(*out_rank)++] = in[k];
    return 0;
}

static int squeeze_prepare(op_node *node, ifd_error *err)
{
    int_list *axes;
    if (axes_prepare(node, &axes, err))
        return -1;
    const value_info *in = node->inputs[0];
    /* Empty axes squeeze every 1, as when they are omitted (as ONNX Runtime
     * reads them). */
    bool have_axes = node->version < 13 ? axes->known && axes->count
                                        : input_info(node, 1) && !(axes->known && !axes->count);
    int rank;
    int64_t dims[IFD_MAX_RANK];
    char reason[256];
    set_output(node, 0, in->dtype, -1, NULL);
    if (in->rank < 0 || (have_axes && !axes->known))
        return 0;
    int r = squeeze_dims(have_axes ? axes : NULL, in->rank, in->dims, &rank, dims, reason,
                         sizeof(reason));
    if (r < 0)
        return op_prepare_fail(node, err, "%s", reason);
    if (r == 0)
        set_output(node, 0, in->dtype, rank, dims);
    return 0;
}

static int squeeze_run(op_ctx *ctx)
{
    const ifd_tensor *x = op_input(ctx, 0);
    int_list axes;
    int rank;
    int64_t dims[IFD_MAX_RANK];
    char reason[256];
    if (run_int_list(ctx, ctx->node->state, 1, "axes", &axes))
        return -1;
    if (squeeze_dims(axes.known && axes.count ? &axes : NULL, x->rank, x->dims, &rank, dims, reason,
                     sizeof(reason)))
        return op_fail(ctx, "%s", reason);
    return emit_reshaped(ctx, x, rank, dims);
}

static int unsqueeze_dims(const int_list *axes, int rank, const int64_t *in, int *out_rank,
                          int64_t *out, char *buf, size_t size)
{
    bool inserted[IFD_MAX_RANK] = {false};
    int r = rank + (int)axes->count;
    if (r > IFD_MAX_RANK) {
        snprintf(buf, size, "output rank %d is more than %d", r, IFD_MAX_RANK);
        return -1;
    }
    for (size_t i = 0; i < axes->count; i++) {
        int64_t a = axes->values[i];
        if (a < -r || a >= r) {
            snprintf(buf, size, "axis %lld is out of range for output rank %d", (long long)a, r);
            return -1;
        }
        a = a < 0 ? a + r : a;
        if (inserted[a]) {
            snprintf(buf, size, "axis %lld is repeated", (long long)a);
            return -1;
        }
        inserted[a] = true;
    }
    for (int k = 0, from = 0; k < r; k++)
        out[k] = inserted[k] ? 1 : in[from++];
    *out_rank = r;
    return 0;
}

static int unsqueeze_prepare(op_node *node, ifd_error *err)
{
    int_list *axes;
    if (axes_prepare(node, &axes, err))
        return -1;
    const value_info *in = node->inputs[0];
    int rank;
    int64_t dims[IFD_MAX_RANK];
    char reason[256];
    if (node->version < 13 && !axes->known)
        return op_prepare_fail(node, err, "attribute 'axes' is required");
    if (node->version >= 13 && !input_info(node, 1))
        return op_prepare_fail(node, err, "input 'axes' is required");
    set_output(node, 0, in->dtype, -1, NULL);
    if (in->rank < 0 || !axes->known)
        return 0;
    if (unsqueeze_dims(axes, in->rank, in->dims, &rank, dims, reason, sizeof(reason)))
        return op_prepare_fail(node, err, "%s", reason);
    set_output(node, 0, in->dtype, rank, dims);
    return 0;
}

static int unsqueeze_run(op_ctx *ctx)
{
    const ifd_tensor *x = op_input(ctx, 0);
    int_list axes;
    int rank;
    int64_t dims[IFD_MAX_RANK];
    char reason[256];
    if (run_int_list(ctx, ctx->node->state, 1, "axes", &axes))
        return -1;
    if (!axes.known)
        return op_fail(ctx, "input 'axes' is missing");
    if (unsqueeze_dims(&axes, x->rank, x->dims, &rank, dims, reason, sizeof(reason)))
        return op_fail(ctx, "%s", reason);
    return emit_reshaped(ctx, x, rank, dims);
}

/* ---- Shape / Size ------------------------------------------------------- */

/* Shape-15's start/end select dims [start, end), clamped to [0, rank]. */
static void shape_range(const op_node *node, int rank, int64_t *start, int64_t *end)
{
    int64_t s = 0, e = rank;
    if (node->version >= 15) {
        s = op_attr_int(node, "start", 0);
        e = op_attr_int(node, "end", rank);
    }
    if (s < 0)
        s = s < -(int64_t)rank ? 0 : s + rank;
    if (e < 0)
        e = e < -(int64_t)rank ? 0 : e + rank;
    *start = s > rank ? rank : s;
    *end = e > rank ? rank : e < *start ? *start : e;
}

static int shape_prepare(op_node *node, ifd_error *err)
{
    if (check_input_tensor(node, 0, err))
        return -1;
    const value_info *in = node->inputs[0];
    int64_t start, end, len = -1;
    if (in->rank >= 0) {
        shape_range(node, in->rank, &start, &end);
        len = end - start;
    }
    set_output(node, 0, IFD_INT64, 1, &len);
    return 0;
}

static int shape_run(op_ctx *ctx)
{
    const ifd_tensor *x = op_input(ctx, 0);
    int64_t start, end, len;
    shape_range(ctx->node, x->rank, &start, &end);
    len = end - start;
    ifd_tensor *y = op_output(ctx, 0, IFD_INT64, 1, &len);
    if (!y)
        return -1;
    for (int64_t k = 0; k < len; k++)
        ((int64_t *)y->data)[k] = x->dims[start + k];
    return 0;
}

static int size_prepare(op_node *node, ifd_error *err)
{
    if (check_input_tensor(node, 0, err))
        return -1;
    set_output(node, 0, IFD_INT64, 0, NULL);
    return 0;
}

static int size_run(op_ctx *ctx)
{
    const ifd_tensor *x = op_input(ctx, 0);
    ifd_tensor *y = op_output(ctx, 0, IFD_INT64, 0, NULL);
    if (!y)
        return -1;
    *(int64_t *)y->data = ifd_tensor_count(x);
    return 0;
}

/* ---- Identity ----------------------------------------------------------- */

/* Identity-14 accepts sequences and Identity-16 optionals: the value of any
 * kind is copied. The type info passes through (prepare is NULL). */
static int identity_run(op_ctx *ctx)
{
    const ifd_value *in = op_input_value(ctx, 0);
    if (!in)
        return op_fail(ctx, "input is missing");
    if (in->kind == IFD_VALUE_TENSOR)
        return emit_reshaped(ctx, &in->tensor, in->tensor.rank, in->tensor.dims);
    ifd_value *copy, *out;
    ifd_error err;
    if (value_clone(in, &copy, &err) != IFD_OK)
        return op_fail(ctx, "%s", err.message);
    if (!(out = op_output_value(ctx, 0))) {
        ifd_value_free(copy);
        return -1;
    }
    *out = *copy;
    free(copy);
    return 0;
}

/* ---- Optional (15) --------------------------------------------------------- */

/* OptionalHasElement says whether an optional holds a value; OptionalGetElement
 * takes the value out (a tensor, or a sequence of tensors). */
/* Optional-15: an optional holding its input, or, without one, an empty
 * optional of the type attribute's type (a tensor or a sequence of them). */
static int optional_prepare(op_node *node, ifd_error *err)
{
    const value_info *in = input_info(node, 0);
    const op_attr *type = op_attr_find(node, "type");
    value_info *out = node->outputs[0];
    const value_info *of = in ? in : type && type->type_info ? type->type_info : NULL;
    if (!of)
        return op_prepare_fail(node, err, "needs an input or the type attribute");
    if (of->kind != IFD_VALUE_TENSOR && !(of->kind == IFD_VALUE_SEQUENCE &&
                                          of->elem_kind == IFD_VALUE_TENSOR))
        return op_prepare_fail(node, err, "an optional holds a tensor or a sequence of tensors");
    if (in && type && type->type_info &&
        (type->type_info->kind != in->kind || type->type_info->dtype != in->dtype))
        return op_prepare_fail(node, err, "the type attribute (%s) differs from the input (%s)",
                               ifd_dtype_name(type->type_info->dtype), ifd_dtype_name(in->dtype));
    out->kind = IFD_VALUE_OPTIONAL;
    out->elem_kind = of->kind;
    out->dtype = of->dtype;
    out->rank = -1;
    return 0;
}

static int optional_run(op_ctx *ctx)
{
    const ifd_value *in = op_input_value(ctx, 0);
    ifd_value *copy = NULL, *out;
    ifd_error err;
    if (in && value_clone(in, &copy, &err) != IFD_OK)
        return op_fail(ctx, "%s", err.message);
    if (!(out = op_output_value(ctx, 0))) {
        ifd_value_free(copy);
        return -1;
    }
    out->kind = IFD_VALUE_OPTIONAL;
    if (copy) {
        out->items = malloc(sizeof(*out->items));
        if (!out->items) {
            ifd_value_free(copy);
            return op_fail(ctx, "out of memory");
        }
        out->items[0] = copy;
        out->length = 1;
    }
    return 0;
}

/* OptionalHasElement-18 / OptionalGetElement-18 (onnx 1.13 Operators.md)
 * also take a plain tensor or sequence, which is always present, and
 * OptionalHasElement-18 an omitted input, which never is. */
static int optional_has_element_prepare(op_node *node, ifd_error *err)
{
    const value_info *in = input_info(node, 0);
    if (node->version < 18 && (!in || in->kind != IFD_VALUE_OPTIONAL))
        return op_prepare_fail(node, err, "input must be an optional");
    if (in && in->kind != IFD_VALUE_OPTIONAL && in->kind != IFD_VALUE_TENSOR &&
        in->kind != IFD_VALUE_SEQUENCE)
        return op_prepare_fail(node, err, "input must be an optional, a tensor or a sequence");
    set_output(node, 0, IFD_BOOL, 0, NULL);
    return 0;
}

static int optional_has_element_run(op_ctx *ctx)
{
    const ifd_value *in = op_input_value(ctx, 0);
    ifd_tensor *y = op_output(ctx, 0, IFD_BOOL, 0, NULL);
    if (!y)
        return -1;
    *(uint8_t *)y->data = in && (in->kind != IFD_VALUE_OPTIONAL || in->length > 0);
    return 0;
}

static int optional_get_element_prepare(op_node *node, ifd_error *err)
{
    const value_info *in = input_info(node, 0);
    value_info *out = node->outputs[0];
    if (in && node->version >= 18 &&
        (in->kind == IFD_VALUE_TENSOR || in->kind == IFD_VALUE_SEQUENCE)) {
        const char *name = out->name;
        *out = *in;
        out->name = name;
        out->constant = NULL;
        return 0;
    }
    if (!in || in->kind != IFD_VALUE_OPTIONAL)
        return op_prepare_fail(node, err, node->version >= 18
                                              ? "input must be an optional, a tensor or a sequence"
                                              : "input must be an optional");
    out->kind = in->elem_kind;
    out->elem_kind = IFD_VALUE_TENSOR;
    out->dtype = in->dtype;
    out->rank = -1;
    return 0;
}

static int optional_get_element_run(op_ctx *ctx)
{
    const ifd_value *in = op_input_value(ctx, 0);
    const ifd_value *item = in;
    if (in && in->kind == IFD_VALUE_OPTIONAL) {
        if (in->length == 0)
            return op_fail(ctx, "the optional is empty");
        item = in->items[0];
    }
    if (!item)
        return op_fail(ctx, "the input is missing");
    if (item->kind == IFD_VALUE_TENSOR)
        return emit_reshaped(ctx, &item->tensor, item->tensor.rank, item->tensor.dims);
    ifd_value *copy, *out;
    ifd_error err;
    if (value_clone(item, &copy, &err) != IFD_OK)
        return op_fail(ctx, "%s", err.message);
    if (!(out = op_output_value(ctx, 0))) {
        ifd_value_free(copy);
        return -1;
    }
    *out = *copy;
    free(copy);
    return 0;
}

/* ---- Dropout ------------------------------------------------------------ */

/* At inference Dropout is the identity and its mask all true. Before
 * Dropout-12 the ratio is an attribute and inference mode implied (Dropout-1/6
 * carry an is_test flag that exporters left at 0; a runtime executing a graph
 * runs it in test mode); Dropout-12 makes ratio and training_mode inputs. The
 * mask is of the data's type before Dropout-10 and bool after.
 *
 * training_mode=true (Monte Carlo dropout at serving time) drops at random.
 * ONNX leaves the generator to the runtime; with a `seed` attribute inferd
 * uses MT19937 consumed as numpy's legacy RandomState does (init_genrand,
 * then 53-bit doubles from two draws), the generator of ONNX's reference
 * implementation, so a seeded model gives the reference's masks. Without a
 * seed every run draws a fresh one. */
typedef struct mt19937 {
    uint32_t key[624];
    int pos;
} mt19937;

static void mt_seed(mt19937 *mt, uint32_t seed)
{
    for (int i = 0; i < 624; i++) {
        mt->key[i] = seed;
        seed = 1812433253u * (seed ^ (seed >> 30)) + (uint32_t)i + 1;
    }
    mt->pos = 624;
}

static uint32_t mt_next(mt19937 *mt)
{
    if (mt->pos == 624) {
        for (int i = 0; i < 624; i++) {
            uint32_t y = (mt->key[i] & 0x80000000u) | (mt->key[(i + 1) % 624] & 0x7fffffffu);
            mt->key[i] = mt->key[(i + 397) % 624] ^ (y >> 1) ^ ((y & 1u) ? 0x9908b0dfu : 0u);
        }
        mt->pos = 0;
    }
    uint32_t y = mt->key[mt->pos++];
    y ^= y >> 11;
    y ^= (y << 7) & 0x9d2c5680u;
    y ^= (y << 15) & 0xefc60000u;
    return y ^ (y >> 18);
}

static double mt_uniform(mt19937 *mt)
{
    uint32_t a = mt_next(mt) >> 5, b = mt_next(mt) >> 6;
    return (a * 67108864.0 + b) / 9007199254740992.0;
}

static int dropout_prepare(op_node *node, ifd_error *err)
{
    if (check_input_tensor(node, 0, err))
        return -1;
    const value_info *in = node->inputs[0];
    if (node->version >= 12) {
        const value_info *ratio = input_info(node, 1), *training = input_info(node, 2);
        if (ratio && (ratio->kind != IFD_VALUE_TENSOR || !dtype_is_float(ratio->dtype)))
            return op_prepare_fail(node, err, "ratio must be a float scalar");
        if (training && (training->kind != IFD_VALUE_TENSOR || training->dtype != IFD_BOOL))
            return op_prepare_fail(node, err, "training_mode must be a bool scalar");
        if (!dtype_is_float(in->dtype))
            return op_prepare_fail(node, err, "data must be a float tensor, not %s",
                                   ifd_dtype_name(in->dtype));
    }
    set_output(node, 0, in->dtype, in->rank, in->dims);
    if (node->n_outputs > 1)
        set_output(node, 1, node->version >= 10 ? IFD_BOOL : in->dtype, in->rank, in->dims);
    return 0;
}

static int dropout_train(op_ctx *ctx, const ifd_tensor *x, double ratio)
{
    if (!(ratio >= 0 && ratio < 1))
        return op_fail(ctx, "ratio %g is outside [0, 1)", ratio);
    mt19937 *mt = op_scratch(ctx, sizeof(*mt));
    ifd_tensor *y = op_output(ctx, 0, x->dtype, x->rank, x->dims);
    ifd_tensor *mask = ctx->node->n_outputs > 1
                           ? op_output(ctx, 1, IFD_BOOL, x->rank, x->dims)
                           : NULL;
    if (!mt || !y || (ctx->node->n_outputs > 1 && !mask))
        return -1;
    uint32_t seed;
    if (op_attr_has(ctx->node, "seed")) {
        seed = (uint32_t)op_attr_int(ctx->node, "seed", 0);
    } else {
        struct timespec now;
        clock_gettime(CLOCK_REALTIME, &now);
        seed = (uint32_t)now.tv_nsec ^ (uint32_t)now.tv_sec ^ (uint32_t)(uintptr_t)y->data;
    }
    mt_seed(mt, seed);
    double scale = 1.0 / (1.0 - ratio);
    size_t count = (size_t)ifd_tensor_count(x);
    for (size_t i = 0; i < count; i++) {
        bool keep = mt_uniform(mt) >= ratio;
        tensor_set_double(y, i, keep ? tensor_get_double(x, i) * scale : 0.0);
        if (mask)
            ((uint8_t *)mask->data)[i] = keep;
    }
    return 0;
}

static int dropout_run(op_ctx *ctx)
{
    const ifd_tensor *x = op_input(ctx, 0);
    if (ctx->node->version >= 12) {
        const ifd_tensor *ratio = input_tensor(ctx, 1), *training = input_tensor(ctx, 2);
        if (training && (training->dtype != IFD_BOOL || ifd_tensor_count(training) != 1))
            return op_fail(ctx, "training_mode must be a bool scalar");
        if (ratio && (!dtype_is_float(ratio->dtype) || ifd_tensor_count(ratio) != 1))
            return op_fail(ctx, "ratio must be a float scalar");
        double r = ratio ? tensor_get_double(ratio, 0) : 0.5;
        if (training && *(const uint8_t *)training->data && r != 0)
            return dropout_train(ctx, x, r);
    }
    if (emit_reshaped(ctx, x, x->rank, x->dims))
        return -1;
    if (ctx->node->n_outputs > 1) {
        ifd_dtype mask_type = ctx->node->version >= 10 ? IFD_BOOL : x->dtype;
        ifd_tensor *mask = op_output(ctx, 1, mask_type, x->rank, x->dims);
        if (!mask)
            return -1;
        size_t count = (size_t)ifd_tensor_count(x);
        if (mask_type == IFD_BOOL)
            memset(mask->data, 1, count);
        else
            for (size_t i = 0; i < count; i++)
                tensor_set_double(mask, i, 1.0);
    }
    return 0;
}

/* ---- Expand ------------------------------------------------------------- */

static int expand_prepare(op_node *node, ifd_error *err)
{
    int_list *shape;
    if (check_input_tensor(node, 0, err) || check_int64_input(node, 1, "shape", err))
        return -1;
    if (!(shape = calloc(1, sizeof(*shape))))
        return op_prepare_fail(node, err, "out of memory");
    node->state = shape;
    if (load_int_list(node, NULL, 1, "shape", shape, err))
        return -1;
    const value_info *in = node->inputs[0];
    set_output(node, 0, in->dtype, -1, NULL);
    if (!shape->known || in->rank < 0)
        return 0;
    int rank;
    int64_t dims[IFD_MAX_RANK];
    for (size_t i = 0; i < shape->count; i++)
        if (shape->values[i] < 0)
            return op_prepare_fail(node, err, "shape dim %zu is negative", i);
    /* Unknown input dims broadcast like 1 against the requested dim, then the
     * result is unknown unless the request is not 1. */
    int64_t probe[IFD_MAX_RANK];
    for (int k = 0; k < in->rank; k++)
        probe[k] = in->dims[k] < 0 ? 1 : in->dims[k];
    if (!broadcast_shapes(in->rank, probe, (int)shape->count, shape->values, &rank, dims))
        return op_prepare_fail(node, err, "input does not broadcast to the requested shape");
    for (int k = 0; k < rank; k++) {
        int ki = k - (rank - in->rank), ks = k - (rank - (int)shape->count);
        if (ki >= 0 && in->dims[ki] < 0 && (ks < 0 || shape->values[ks] == 1))
            dims[k] = -1;
    }
    set_output(node, 0, in->dtype, rank, dims);
    return 0;
}

static int expand_run(op_ctx *ctx)
{
    const ifd_tensor *x = op_input(ctx, 0);
    int_list shape;
    int rank;
    int64_t dims[IFD_MAX_RANK], src[IFD_MAX_RANK], dst[IFD_MAX_RANK];
    if (run_int_list(ctx, ctx->node->state, 1, "shape", &shape))
        return -1;
    if (!shape.known)
        return op_fail(ctx, "input 'shape' is missing");
    for (size_t i = 0; i < shape.count; i++)
        if (shape.values[i] < 0)
            return op_fail(ctx, "shape dim %zu is negative", i);
    if (!broadcast_shapes(x->rank, x->dims, (int)shape.count, shape.values, &rank, dims))
        return op_fail(ctx, "input does not broadcast to the requested shape");
    ifd_tensor *y = op_output(ctx, 0, x->dtype, rank, dims);
    if (!y)
        return -1;
    broadcast_strides(rank, dims, x->rank, x->dims, src);
    contiguous_strides(rank, dims, dst);
    return layout_copy_strided(ctx, rank, dims, x->dtype, y->data, 0, dst, x->data, 0, src);
}

/* ---- Tile --------------------------------------------------------------- */

/* Tile-6 on takes one repeat count per axis; Tile-1 repeats along one axis,
 * given as the inputs tiles and axis. */
static int tile_prepare(op_node *node, ifd_error *err)
{
    int_list *repeats;
    if (check_input_tensor(node, 0, err) || check_input_tensor(node, 1, err))
        return -1;
    /* Tile-1's tiles and axis have the data's (float) type. */
    if (node->version >= 6 && !dtype_is_integer(node->inputs[1]->dtype))
        return op_prepare_fail(node, err, "repeats must be int64");
    if (node->version < 6 && check_input_tensor(node, 2, err))
        return -1;
    if (!(repeats = calloc(1, sizeof(*repeats))))
        return op_prepare_fail(node, err, "out of memory");
    node->state = repeats;
    const value_info *in = node->inputs[0];
    if (node->version >= 6 && load_int_list(node, NULL, 1, "repeats", repeats, err))
        return -1;
    set_output(node, 0, in->dtype, in->rank, NULL);
    if (!repeats->known || in->rank < 0)
        return 0;
    if (repeats->count != (size_t)in->rank)
        return op_prepare_fail(node, err, "repeats has %zu entries for rank %d", repeats->count,
                               in->rank);
    for (int k = 0; k < in->rank; k++) {
        int64_t r = repeats->values[k], d = in->dims[k];
        if (r < 0)
            return op_prepare_fail(node, err, "repeats[%d] is negative", k);
        node->outputs[0]->dims[k] = d < 0 || (r && d > INT64_MAX / r) ? -1 : d * r;
    }
    return 0;
}

static int tile_repeats(op_ctx *ctx, const ifd_tensor *x, int_list *repeats)
{
    if (ctx->node->version >= 6) {
        if (run_int_list(ctx, ctx->node->state, 1, "repeats", repeats))
            return -1;
    } else {
        const ifd_tensor *tiles = input_tensor(ctx, 1), *axis = input_tensor(ctx, 2);
        if (!tiles || !axis || ifd_tensor_count(tiles) != 1 || ifd_tensor_count(axis) != 1 ||
            !dtype_is_numeric(tiles->dtype) || !dtype_is_numeric(axis->dtype))
            return op_fail(ctx, "tiles and axis must be scalars");
        int64_t a = tensor_get_int64(axis, 0);
        if (a < 0 || a >= x->rank)
            return op_fail(ctx, "axis %lld is out of range for rank %d", (long long)a, x->rank);
        repeats->known = true;
        repeats->count = (size_t)x->rank;
        for (int k = 0; k < x->rank; k++)
            repeats->values[k] = 1;
        repeats->values[a] = tensor_get_int64(tiles, 0);
    }
    if (repeats->count != (size_t)x->rank)
        return op_fail(ctx, "repeats has %zu entries for rank %d", repeats->count, x->rank);
    return 0;
}

static int tile_run(op_ctx *ctx)
{
    const ifd_tensor *x = op_input(ctx, 0);
    int_list repeats;
    int rank = x->rank;
    int64_t dims[IFD_MAX_RANK], view[2 * IFD_MAX_RANK], src[2 * IFD_MAX_RANK],
        dst[2 * IFD_MAX_RANK], in_strides[IFD_MAX_RANK];
    if (tile_repeats(ctx, x, &repeats))
        return -1;
    for (int k = 0; k < rank; k++) {
        int64_t r = repeats.values[k];
        if (r < 0)
            return op_fail(ctx, "repeats[%d] is negative", k);
        if (r && x->dims[k] > INT64_MAX / r)
            return op_fail(ctx, "tiled dim %d overflows", k);
        dims[k] = x->dims[k] * r;
    }
    ifd_tensor *y = op_output(ctx, 0, x->dtype, rank, dims);
    if (!y)
        return -1;
    /* Output axis k as (repeat, element): the element index reads the input,
     * the repeat index does not move it. */
    contiguous_strides(rank, x->dims, in_strides);
    for (int k = 0; k < rank; k++) {
        view[2 * k] = repeats.values[k];
        view[2 * k + 1] = x->dims[k];
        src[2 * k] = 0;
        src[2 * k + 1] = in_strides[k];
    }
    contiguous_strides(2 * rank, view, dst);
    return layout_copy_strided(ctx, 2 * rank, view, x->dtype, y->data, 0, dst, x->data, 0, src);
}

/* ---- ConstantOfShape ---------------------------------------------------- */

/* count elements of esz bytes, each a copy of `element` (NULL: zeros). Zeros,
 * torch's h0/c0, are one memset; other values are stored by their width,
 * not by a memcpy call per element (3.6 us for 1024 floats). */
static void fill_elements(void *dst, size_t count, size_t esz, const void *element)
{
    bool zero = true;
    for (size_t b = 0; element && b < esz; b++)
        zero &= ((const uint8_t *)element)[b] == 0;
    if (zero) {
        memset(dst, 0, count * esz);
        return;
    }
    if (esz == 1) {
        memset(dst, *(const uint8_t *)element, count);
        return;
    }
#define FILL_WIDTH(type)                                                                           \
    do {                                                                                           \
        type v, *d = dst;                                                                          \
        memcpy(&v, element, sizeof(v));                                                            \
        for (size_t i = 0; i < count; i++)                                                         \
            d[i] = v;                                                                              \
    } while (0)
    switch (esz) {
    case 2: FILL_WIDTH(uint16_t); break;
    case 4: FILL_WIDTH(uint32_t); break;
    case 8: FILL_WIDTH(uint64_t); break;
    default:
        for (size_t i = 0; i < count; i++)
            memcpy((char *)dst + i * esz, element, esz);
    }
#undef FILL_WIDTH
}

static int constant_of_shape_prepare(op_node *node, ifd_error *err)
{
    int_list *shape;
    if (check_int64_input(node, 0, "input", err))
        return -1;
    const ifd_tensor *value = op_attr_tensor(node, "value");
    ifd_dtype dtype = value ? value->dtype : IFD_FLOAT;
    if (value && ifd_tensor_count(value) != 1)
        return op_prepare_fail(node, err, "'value' must hold one element");
    if (!(dtype_is_numeric(dtype) || dtype == IFD_BOOL))
        return op_prepare_fail(node, err, "'value' of dtype %s is not supported",
                               ifd_dtype_name(dtype));
    if (!(shape = calloc(1, sizeof(*shape))))
        return op_prepare_fail(node, err, "out of memory");
    node->state = shape;
    if (load_int_list(node, NULL, 0, "input", shape, err))
        return -1;
    set_output(node, 0, dtype, -1, NULL);
    if (shape->known) {
        for (size_t i = 0; i < shape->count; i++)
            if (shape->values[i] < 0)
                return op_prepare_fail(node, err, "shape dim %zu is negative", i);
        set_output(node, 0, dtype, (int)shape->count, shape->values);
    } else if (node->inputs[0]->rank == 1 && node->inputs[0]->dims[0] >= 0 &&
               node->inputs[0]->dims[0] <= IFD_MAX_RANK) {
        set_output(node, 0, dtype, (int)node->inputs[0]->dims[0], NULL);
    }
    return 0;
}

static int constant_of_shape_run(op_ctx *ctx)
{
    const ifd_tensor *value = op_attr_tensor(ctx->node, "value");
    ifd_dtype dtype = value ? value->dtype : IFD_FLOAT;
    int_list shape;
    if (run_int_list(ctx, ctx->node->state, 0, "input", &shape))
        return -1;
    if (!shape.known)
        return op_fail(ctx, "input is missing");
    for (size_t i = 0; i < shape.count; i++)
        if (shape.values[i] < 0)
            return op_fail(ctx, "shape dim %zu is negative", i);
    ifd_tensor *y = op_output(ctx, 0, dtype, (int)shape.count, shape.values);
    if (!y)
        return -1;
    size_t count = (size_t)ifd_tensor_count(y), esz = ifd_dtype_size(dtype);
    fill_elements(y->data, count, esz, value ? value->data : NULL);
    return 0;
}

/* ---- Range -------------------------------------------------------------- */

#define RANGE_INT_TYPES(X) X(IFD_INT16, int16_t) X(IFD_INT32, int32_t) X(IFD_INT64, int64_t)
#define RANGE_FLOAT_TYPES(X) X(IFD_FLOAT, float) X(IFD_DOUBLE, double)

static int range_prepare(op_node *node, ifd_error *err)
{
    for (int i = 0; i < 3; i++) {
        if (check_input_tensor(node, i, err))
            return -1;
        ifd_dtype d = node->inputs[i]->dtype;
        if (d != IFD_FLOAT && d != IFD_DOUBLE && d != IFD_INT16 && d != IFD_INT32 && d != IFD_INT64)
            return op_prepare_fail(node, err, "dtype %s is not supported", ifd_dtype_name(d));
        if (d != node->inputs[0]->dtype)
            return op_prepare_fail(node, err, "start, limit and delta must share a dtype");
    }
    set_output(node, 0, node->inputs[0]->dtype, 1, NULL);
    return 0;
}

/* Integer ranges count in unsigned arithmetic so that extreme start/limit do
 * not overflow: the count is ceil((limit - start) / delta), and every value
 * start + i*delta lies between start and limit. */
static int range_int(op_ctx *ctx, const ifd_tensor *t[3])
{
    int64_t start = tensor_get_int64(t[0], 0), limit = tensor_get_int64(t[1], 0),
            delta = tensor_get_int64(t[2], 0), n = 0;
    if (delta == 0)
        return op_fail(ctx, "delta is 0");
    if ((delta > 0 && limit > start) || (delta < 0 && limit < start)) {
        uint64_t span =
            delta > 0 ? (uint64_t)limit - (uint64_t)start : (uint64_t)start - (uint64_t)limit;
        uint64_t step = delta > 0 ? (uint64_t)delta : (uint64_t)0 - (uint64_t)delta;
        uint64_t count = span / step + (span % step != 0);
        if (count > (uint64_t)INT64_MAX)
            return op_fail(ctx, "range is too long");
        n = (int64_t)count;
    }
    ifd_tensor *y = op_output(ctx, 0, t[0]->dtype, 1, &n);
    if (!y)
        return -1;
    switch (t[0]->dtype) {
#define RANGE_INT(DT, TYPE)                                                                        \
    case DT:                                                                                       \
        for (int64_t i = 0; i < n; i++)                                                            \
            ((TYPE *)y->data)[i] =                                                                 \
                (TYPE)(int64_t)((uint64_t)start + (uint64_t)i * (uint64_t)delta);                  \
        break;
        RANGE_INT_TYPES(RANGE_INT)
#undef RANGE_INT
    default: break;
    }
    return 0;
}

static int range_float(op_ctx *ctx, const ifd_tensor *t[3])
{
    double start = tensor_get_double(t[0], 0), limit = tensor_get_double(t[1], 0),
           delta = tensor_get_double(t[2], 0);
    double count = ceil((limit - start) / delta);
    if (delta == 0 || !isfinite(count))
        return op_fail(ctx, "start %g, limit %g and delta %g do not make a finite range", start,
                       limit, delta);
    if (count > (double)(IFD_MAX_TENSOR_BYTES))
        return op_fail(ctx, "range of %g elements is too long", count);
    int64_t n = count > 0 ? (int64_t)count : 0;
    ifd_tensor *y = op_output(ctx, 0, t[0]->dtype, 1, &n);
    if (!y)
        return -1;
    switch (t[0]->dtype) {
#define RANGE_FLOAT(DT, TYPE)                                                                      \
    case DT:                                                                                       \
        for (int64_t i = 0; i < n; i++)                                                            \
            ((TYPE *)y->data)[i] = (TYPE)(start + (double)i * delta);                              \
        break;
        RANGE_FLOAT_TYPES(RANGE_FLOAT)
#undef RANGE_FLOAT
    default: break;
    }
    return 0;
}

static int range_run(op_ctx *ctx)
{
    const ifd_tensor *t[3];
    for (int i = 0; i < 3; i++) {
        t[i] = op_input(ctx, i);
        if (!t[i] || ifd_tensor_count(t[i]) != 1 || t[i]->dtype != t[0]->dtype)
            return op_fail(ctx, "start, limit and delta must be scalars of one dtype");
    }
    return dtype_is_float(t[0]->dtype) ? range_float(ctx, t) : range_int(ctx, t);
}

/* ---- EyeLike ------------------------------------------------------------ */

static bool eyelike_dtype_ok(ifd_dtype d)
{
    return dtype_is_numeric(d) || d == IFD_BOOL;
}

static int eyelike_prepare(op_node *node, ifd_error *err)
{
    if (check_input_tensor(node, 0, err))
        return -1;
    const value_info *in = node->inputs[0];
    ifd_dtype dtype = (ifd_dtype)op_attr_int(node, "dtype", in->dtype);
    if (!eyelike_dtype_ok(dtype) || ifd_dtype_size(dtype) == 0)
        return op_prepare_fail(node, err, "dtype %s is not supported", ifd_dtype_name(dtype));
    if (in->rank >= 0 && in->rank != 2)
        return op_prepare_fail(node, err, "input must be 2-D, not rank %d", in->rank);
    set_output(node, 0, dtype, 2, in->rank == 2 ? in->dims : NULL);
    return 0;
}

static int eyelike_run(op_ctx *ctx)
{
    const ifd_tensor *x = op_input(ctx, 0);
    ifd_dtype dtype = (ifd_dtype)op_attr_int(ctx->node, "dtype", x->dtype);
    int64_t k = op_attr_int(ctx->node, "k", 0);
    if (x->rank != 2)
        return op_fail(ctx, "input must be 2-D, not rank %d", x->rank);
    if (!eyelike_dtype_ok(dtype))
        return op_fail(ctx, "dtype %s is not supported", ifd_dtype_name(dtype));
    ifd_tensor *y = op_output(ctx, 0, dtype, 2, x->dims);
    if (!y)
        return -1;
    int64_t rows = x->dims[0], cols = x->dims[1];
    memset(y->data, 0, (size_t)(rows * cols) * ifd_dtype_size(dtype));
    /* Ones at (i, i + k); k beyond the matrix leaves it all zero. */
    if (k >= cols || k <= -rows)
        return 0;
    for (int64_t i = k < 0 ? -k : 0; i < rows && i + k < cols; i++)
        tensor_set_double(y, (size_t)(i * cols + i + k), 1.0);
    return 0;
}

static const op_def defs[] = {
    /* The opset 19 and 21 versions of Reshape, Flatten, Squeeze, Unsqueeze,
     * Shape, Size, Identity and ConstantOfShape (onnx 1.14 and 1.16
     * Operators.md) only added types: float8, int4, uint4, which the engine
     * refuses where they appear (ConstantOfShape-20 added bfloat16 too). */
    {"", "Reshape", 1, 21, reshape_prepare, reshape_run, free},
    {"", "Flatten", 1, 21, flatten_prepare, flatten_run, NULL},
    {"", "Squeeze", 1, 21, squeeze_prepare, squeeze_run, free},
    {"", "Unsqueeze", 1, 21, unsqueeze_prepare, unsqueeze_run, free},
    {"", "Shape", 1, 21, shape_prepare, shape_run, NULL},
    {"", "Size", 1, 21, size_prepare, size_run, NULL},
    {"", "Identity", 1, 21, NULL, identity_run, NULL},
    {"", "Optional", 15, 15, optional_prepare, optional_run, NULL},
    {"", "OptionalHasElement", 15, 18, optional_has_element_prepare, optional_has_element_run, NULL},
    {"", "OptionalGetElement", 15, 18, optional_get_element_prepare, optional_get_element_run, NULL},
    {"", "Dropout", 1, 13, dropout_prepare, dropout_run, NULL},
    {"", "Expand", 8, 13, expand_prepare, expand_run, free},
    {"", "Tile", 1, 13, tile_prepare, tile_run, free},
    {"", "ConstantOfShape", 9, 21, constant_of_shape_prepare, constant_of_shape_run, free},
    {"", "Range", 11, 11, range_prepare, range_run, NULL},
    {"", "EyeLike", 9, 9, eyelike_prepare, eyelike_run, NULL},
};
OP_FAMILY(ops_shape, defs);
