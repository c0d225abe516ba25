/*
 * ops/linear_algebra.c — Det (opset 11) and Einsum (opset 12), onnx 1.12
 * Operators.md.
 *
 * Det: the determinant of each square matrix in the last two axes, by LU
 * decomposition with partial pivoting in double (the product of the pivots,
 * negated per row swap), as numpy.linalg.det computes; float16/float/double.
 *
 * Einsum: the equation's letters (and `...`, which stands for the same
 * leading axes in every operand, broadcast) label axes; a letter repeated in
 * one operand takes its diagonal, letters absent from the output are summed.
 * Without `->` the output is `...` then the letters used once, alphabetically.
 * It runs as one walk over every combination of letter values, each operand
 * read through per-letter strides (a repeated letter adds its axes' strides),
 * accumulating in double (int64 for integers): general and exact, but not a
 * GEMM, so large batched products are slower than MatMul.
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "op_util.h"

static int det_prepare(op_node *node, ifd_error *err)
{
    const value_info *x = node->inputs[0];
    if (x->kind != IFD_VALUE_TENSOR ||
        (x->dtype != IFD_FLOAT && x->dtype != IFD_DOUBLE && x->dtype != IFD_FLOAT16))
        return op_prepare_fail(node, err, "X must be float16, float or double, not %s",
                               ifd_dtype_name(x->dtype));
    if (x->rank >= 0 && x->rank < 2)
        return op_prepare_fail(node, err, "X must have rank 2 or more, not %d", x->rank);
    if (x->rank >= 2 && x->dims[x->rank - 1] >= 0 && x->dims[x->rank - 2] >= 0 &&
        x->dims[x->rank - 1] != x->dims[x->rank - 2])
        return op_prepare_fail(node, err, "the matrices must be square, not %lld x %lld",
                               (long long)x->dims[x->rank - 2], (long long)x->dims[x->rank - 1]);
    set_output(node, 0, x->dtype, x->rank >= 2 ? x->rank - 2 : -1, x->rank >= 2 ? x->dims : NULL);
    return 0;
}

static int det_run(op_ctx *ctx)
{
    const ifd_tensor *x = op_input(ctx, 0);
    if (x->rank < 2 || x->dims[x->rank - 1] != x->dims[x->rank - 2])
        return op_fail(ctx, "X must hold square matrices in its last two axes");
    int64_t m = x->dims[x->rank - 1];
    ifd_tensor *y = op_output(ctx, 0, x->dtype, x->rank - 2, x->dims);
    if (!y)
        return -1;
    int64_t count = ifd_tensor_count(y);
    if (m > 0 && (uint64_t)m > ((uint64_t)1 << 20) / (uint64_t)m)
        return op_fail(ctx, "matrices of %lld x %lld are too large", (long long)m, (long long)m);
    double *a = op_scratch(ctx, (size_t)(m * m + 1) * sizeof(double));
    if (!a)
        return -1;
    for (int64_t k = 0; k < count; k++) {
        for (int64_t i = 0; i < m * m; i++)
            a[i] = tensor_get_double(x, (size_t)(k * m * m + i));
        double det = 1.0;
        for (int64_t c = 0; c < m && det != 0.0; c++) {
            int64_t pivot = c;
            for (int64_t r = c + 1; r < m; r++)
                if (fabs(a[r * m + c]) > fabs(a[pivot * m + c]))
                    pivot = r;
            if (a[pivot * m + c] == 0.0) {
                det = 0.0;
                break;
            }
            if (pivot != c) {
                for (int64_t j = 0; j < m; j++) {
                    double t = a[c * m + j];
                    a[c * m + j] = a[pivot * m + j];
                    a[pivot * m + j] = t;
                }
                det = -det;
            }
            det *= a[c * m + c];
            for (int64_t r = c + 1; r < m; r++) {
                double f = a[r * m + c] / a[c * m + c];
                for (int64_t j = c; j < m; j++)
                    a[r * m + j] -= f * a[c * m + j];
            }
        }
        tensor_set_double(y, (size_t)k, det);
    }
    return 0;
}

/* ---- Einsum ------------------------------------------------------------------- */

#define EINSUM_MAX_LABELS 64 /* 52 letters and up to IFD_MAX_RANK ellipsis axes */
#define EINSUM_MAX_INPUTS 16

typedef struct einsum_term {
    int n;                       /* axes, ellipsis expanded at run time */
    char labels[IFD_MAX_RANK + 8];
    bool has_ellipsis;
    int ellipsis_at;             /* position of ... among the labels */
} einsum_term;

typedef struct einsum_state {
    int n_inputs;
    einsum_term in[EINSUM_MAX_INPUTS];
    einsum_term out;
    bool explicit_output;
} einsum_state;

static int label_index(char c)
{
    return c >= 'a' && c <= 'z' ? c - 'a' : c >= 'A' && c <= 'Z' ? 26 + c - 'A' : -1;
}

/* Parse one term (up to ',' '-' or the end); -1 with *why on error. */
static int parse_term(const char **p, einsum_term *t, const char **why)
{
    memset(t, 0, sizeof(*t));
    t->ellipsis_at = -1;
    while (**p && **p != ',' && **p != '-') {
        char c = **p;
        if (c == ' ') {
            (*p)++;
            continue;
        }
        if (c == '.') {
            if (strncmp(*p, "...", 3) != 0 || t->has_ellipsis) {
                *why = "an ellipsis must be exactly '...', once per term";
                return -1;
            }
            t->has_ellipsis = true;
            t->ellipsis_at = t->n;
            *p += 3;
            continue;
        }
        if (label_index(c) < 0) {
            *why = "labels must be letters";
            return -1;
        }
        if (t->n >= IFD_MAX_RANK) {
            *why = "a term has more labels than the engine's maximum rank";
            return -1;
        }
        t->labels[t->n++] = c;
        (*p)++;
    }
    return 0;
}

static int einsum_prepare(op_node *node, ifd_error *err)
{
    const char *eq = op_attr_string(node, "equation", NULL);
    if (!eq)
        return op_prepare_fail(node, err, "the equation attribute is required");
    if (node->n_inputs > EINSUM_MAX_INPUTS)
        return op_prepare_fail(node, err, "at most %d operands are supported", EINSUM_MAX_INPUTS);
    einsum_state *st = calloc(1, sizeof(*st));
    if (!st)
        return op_prepare_fail(node, err, "out of memory");
    node->state = st;
    const char *p = eq, *why = NULL;
    for (;;) {
        if (st->n_inputs >= EINSUM_MAX_INPUTS)
            return op_prepare_fail(node, err, "equation '%s' has too many terms", eq);
        if (parse_term(&p, &st->in[st->n_inputs], &why))
            return op_prepare_fail(node, err, "equation '%s': %s", eq, why);
        st->n_inputs++;
        if (*p == ',') {
            p++;
            continue;
        }
        break;
    }
    if (*p == '-') {
        if (p[1] != '>')
            return op_prepare_fail(node, err, "equation '%s': '-' must start '->'", eq);
        p += 2;
        if (parse_term(&p, &st->out, &why))
            return op_prepare_fail(node, err, "equation '%s': %s", eq, why);
        if (*p)
            return op_prepare_fail(node, err, "equation '%s' has more than one output", eq);
        st->explicit_output = true;
    }
    if (st->n_inputs != node->n_inputs)
        return op_prepare_fail(node, err, "equation '%s' has %d operands; the node has %d", eq,
                               st->n_inputs, node->n_inputs);
    for (int i = 0; i < node->n_inputs; i++)
        if (!node->inputs[i]) /* an empty name in a variadic list (found by the fuzzer) */
            return op_prepare_fail(node, err, "operand %d is empty", i);
    ifd_dtype dtype = node->inputs[0]->dtype;
    for (int i = 0; i < node->n_inputs; i++)
        if (node->inputs[i]->dtype != dtype || !dtype_is_numeric(dtype))
            return op_prepare_fail(node, err, "operands must share one numeric type");
    if (!st->explicit_output) {
        /* implicit: ..., then the letters used exactly once, alphabetically */
        int count[52] = {0};
        bool any_ellipsis = false;
        for (int i = 0; i < st->n_inputs; i++) {
            any_ellipsis |= st->in[i].has_ellipsis;
            for (int k = 0; k < st->in[i].n; k++)
                count[label_index(st->in[i].labels[k])]++;
        }
        st->out.ellipsis_at = any_ellipsis ? 0 : -1;
        st->out.has_ellipsis = any_ellipsis;
        for (int l = 0; l < 52; l++)
            if (count[l] == 1 && st->out.n < IFD_MAX_RANK)
                st->out.labels[st->out.n++] = (char)(l < 26 ? 'a' + l : 'A' + l - 26);
    }
    for (int k = 0; k < st->out.n; k++) {
        bool found = false;
        for (int i = 0; i < st->n_inputs && !found; i++)
            found = memchr(st->in[i].labels, st->out.labels[k], (size_t)st->in[i].n) != NULL;
        if (!found)
            return op_prepare_fail(node, err, "output label '%c' is in no operand",
                                   st->out.labels[k]);
    }
    set_output(node, 0, dtype, -1, NULL);
    return 0;
}

/* Strides of operand t (dims, rank) per label id, the ellipsis axes taking ids
 * 52.. aligned to the right (numpy broadcasting); false on a mismatch. */
static bool bind_labels(const einsum_term *t, int rank, const int64_t *dims, int n_ell,
                        int64_t *size, int64_t *stride)
{
    int own_ell = t->has_ellipsis ? rank - t->n : 0;
    if (own_ell < 0 || (!t->has_ellipsis && rank != t->n) || own_ell > n_ell)
        return false;
    int64_t strides[IFD_MAX_RANK];
    contiguous_strides(rank, dims, strides);
    for (int axis = 0, k = 0; axis < rank; axis++) {
        int id;
        if (t->has_ellipsis && axis >= t->ellipsis_at && axis < t->ellipsis_at + own_ell)
            id = 52 + (n_ell - own_ell) + (axis - t->ellipsis_at);
        else
            id = label_index(t->labels[k++]);
        if (id >= 52 && dims[axis] == 1)
            continue; /* broadcast */
        if (size[id] >= 0 && size[id] != dims[axis] && !(id >= 52 && size[id] == 1))
            return false;
        size[id] = dims[axis];
        stride[id] += strides[axis];
    }
    return true;
}

static int einsum_run(op_ctx *ctx)
{
    const einsum_state *st = ctx->node->state;
    int64_t size[EINSUM_MAX_LABELS], stride[EINSUM_MAX_INPUTS + 1][EINSUM_MAX_LABELS];
    int n_ell = 0;
    for (int i = 0; i < st->n_inputs; i++) {
        const ifd_tensor *x = op_input(ctx, i);
        if (st->in[i].has_ellipsis && x->rank - st->in[i].n > n_ell)
            n_ell = x->rank - st->in[i].n;
    }
    for (int l = 0; l < EINSUM_MAX_LABELS; l++)
        size[l] = -1;
    memset(stride, 0, sizeof(stride));
    for (int i = 0; i < st->n_inputs; i++) {
        const ifd_tensor *x = op_input(ctx, i);
        if (!bind_labels(&st->in[i], x->rank, x->dims, n_ell, size, stride[i]))
            return op_fail(ctx, "operand %d of shape rank %d does not fit its term or the other "
                           "operands' sizes", i, x->rank);
    }
    for (int l = 52; l < 52 + n_ell; l++)
        if (size[l] < 0)
            size[l] = 1;
    /* output axes: the ellipsis axes where the output term has them */
    int out_ids[IFD_MAX_RANK * 2], out_rank = 0;
    for (int k = 0; k <= st->out.n; k++) {
        if (st->out.has_ellipsis && k == st->out.ellipsis_at)
            for (int e = 0; e < n_ell; e++)
                out_ids[out_rank++] = 52 + e;
        if (k < st->out.n)
            out_ids[out_rank++] = label_index(st->out.labels[k]);
    }
    if (out_rank > IFD_MAX_RANK)
        return op_fail(ctx, "the output would have rank %d", out_rank);
    int64_t out_dims[IFD_MAX_RANK], out_strides[IFD_MAX_RANK];
    for (int k = 0; k < out_rank; k++)
        out_dims[k] = size[out_ids[k]] < 0 ? 1 : size[out_ids[k]];
    ifd_tensor *y = op_output(ctx, 0, op_input(ctx, 0)->dtype, out_rank, out_dims);
    if (!y)
        return -1;
    contiguous_strides(out_rank, out_dims, out_strides);
    for (int k = 0; k < out_rank; k++)
        stride[st->n_inputs][out_ids[k]] += out_strides[k];
    /* walk every used label; accumulate into a double (or int64) buffer */
    int ids[EINSUM_MAX_LABELS], n_ids = 0;
    int64_t total = 1;
    for (int l = 0; l < EINSUM_MAX_LABELS; l++)
        if (size[l] >= 0) {
            ids[n_ids++] = l;
            if (size[l] == 0)
                total = 0;
            else if (total > INT64_MAX / size[l])
                return op_fail(ctx, "the equation's index space is too large");
            else
                total *= size[l];
        }
    int64_t count = ifd_tensor_count(y);
    bool integer = dtype_is_integer(y->dtype);
    double *acc = op_scratch(ctx, (size_t)(count + 1) * sizeof(double));
    int64_t *iacc = op_scratch(ctx, (size_t)(count + 1) * sizeof(int64_t));
    if (!acc || !iacc)
        return -1;
    memset(acc, 0, (size_t)(count + 1) * sizeof(double));
    memset(iacc, 0, (size_t)(count + 1) * sizeof(int64_t));
    int64_t idx[EINSUM_MAX_LABELS] = {0}, off[EINSUM_MAX_INPUTS + 1] = {0};
    for (int64_t it = 0; it < total; it++) {
        if (integer) {
            int64_t prod = 1;
            for (int i = 0; i < st->n_inputs; i++)
                prod = (int64_t)((uint64_t)prod *
                                 (uint64_t)tensor_get_int64(op_input(ctx, i), (size_t)off[i]));
            iacc[off[st->n_inputs]] = (int64_t)((uint64_t)iacc[off[st->n_inputs]] + (uint64_t)prod);
        } else {
            double prod = 1;
            for (int i = 0; i < st->n_inputs; i++)
                prod *= tensor_get_double(op_input(ctx, i), (size_t)off[i]);
            acc[off[st->n_inputs]] += prod;
        }
        /* odometer over the labels, last fastest, updating every offset */
        for (int k = n_ids - 1; k >= 0; k--) {
            int l = ids[k];
            idx[l]++;
            for (int i = 0; i <= st->n_inputs; i++)
                off[i] += stride[i][l];
            if (idx[l] < size[l])
                break;
            for (int i = 0; i <= st->n_inputs; i++)
                off[i] -= stride[i][l] * size[l];
            idx[l] = 0;
        }
    }
    for (int64_t e = 0; e < count; e++)
        tensor_set_double(y, (size_t)e, integer ? (double)iacc[e] : acc[e]);
    if (integer && y->dtype == IFD_INT64)
        memcpy(y->data, iacc, (size_t)count * sizeof(int64_t));
    return 0;
}

static const op_def defs[] = {
    {"", "Det", 11, 11, det_prepare, det_run, NULL},
    {"", "Einsum", 12, 12, einsum_prepare, einsum_run, free},
};

OP_FAMILY(ops_linear_algebra, defs);
