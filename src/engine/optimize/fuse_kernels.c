/*
 * optimize/fuse_kernels.c — fusions whose value is in the kernel epilogue
 * (ONNX Runtime's ConvBNFusion, ConvAddActivationFusion, MatMulAddFusion and
 * GemmActivationFusion do the same for MLAS):
 *
 *   Conv + BatchNormalization       the normalisation is a per-channel affine
 *                                   map: folded into the weights and bias;
 *   Conv + Add(residual)            the other operand initialises the output
 *                                   and the product accumulates onto it;
 *   Conv/Gemm/MatMul + Relu/Clip    clamped on each output block right after
 *                                   it is computed, while it is in cache;
 *   MatMul + Add(constant row)      the row initialises the output (a Linear
 *                                   layer on 3-D input exports this way);
 *   Add(x, residual) -> LayerNorm   the sum is formed row by row inside the
 *                                   normalisation (ORT's SkipLayerNormFusion);
 *   Transpose/Div/Mul -> MatMul     attention's per-head products: the kernel
 *        -> Transpose               reads Q, K and V where the QKV projection
 *                                   wrote them (strided views) and writes the
 *                                   heads where the output projection reads
 *                                   them; the 1/sqrt(d) scale becomes alpha
 *                                   (ONNX Runtime's TransposeMatMul and
 *                                   MatMulScale fusions);
 *   MatMul -> Slices of columns     each Slice's columns written by the
 *                                   product as an output of its own (the
 *                                   Q, K and V of one input projection);
 *   MatMul -> Softmax -> MatMul     the same products with the softmax
 *                                   between them: one kernel, a block of
 *                                   query rows at a time, the scores kept in
 *                                   cache (ORT's attention fusions do this
 *                                   for the forms they recognise).
 *
 * Each fusion removes a node, its output tensor (an allocation and a full
 * pass over memory per run) and a dispatch. A chain is followed only through
 * values read by exactly one node and not graph outputs, so nothing else
 * could observe the intermediate that disappears. The operators decide what
 * they can absorb (ops/fusable.h) and refuse the rest; the graph then stays
 * as written. A residual Add is fused into whichever of its two producers
 * runs later, so the other operand already exists when the Conv runs (in
 * ResNet the shortcut's Conv follows the main branch's).
 *
 * Only the top-level graph is rewritten; subgraphs (If, Loop, Scan bodies)
 * run as written.
 */
#include "fuse_kernels.h"

#include <float.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "../ops/fusable.h"
#include "optimize.h"

typedef struct fusion_pass {
    ifd_model *m;
    int *readers;  /* per value slot: node inputs reading it */
    int *reader;   /* per value slot: the last node index reading it */
    int *producer; /* per value slot: the node writing it, -1 for none */
    bool *removed; /* per node */
} fusion_pass;

static bool is_op(const model_node *node, const char *op_type)
{
    return node->op.domain[0] == '\0' && strcmp(node->op.op_type, op_type) == 0;
}

/* The one node reading slot, or -1 when it has none, several, or is a graph
 * output. */
static int sole_reader(const fusion_pass *f, int slot)
{
    if (f->m->values[slot].is_graph_output || f->readers[slot] != 1)
        return -1;
    return f->reader[slot];
}

/* Node `host` takes over node `next`'s output; `next` goes. */
static void absorb(fusion_pass *f, int host, int next)
{
    ifd_model *m = f->m;
    model_node *h = &m->nodes[host], *n = &m->nodes[next];
    int old = h->output_slots[0], out = n->output_slots[0];
    h->output_slots[0] = out;
    h->op.outputs[0] = &m->values[out].info;
    m->values[out].producer = host;
    m->values[old].producer = -1;
    f->producer[out] = host;
    f->producer[old] = -1;
    f->readers[old] = 0;
    for (int k = 0; k < n->op.n_inputs + n->op.n_implicit; k++)
        if (n->input_slots[k] >= 0 && n->input_slots[k] != old)
            f->readers[n->input_slots[k]]--;
    f->removed[next] = true;
}

/* A float constant of `count` elements as doubles in out, or false. */
static bool constant_floats(const value_info *v, size_t count, double *out)
{
    if (!v || !v->constant || v->constant->dtype != IFD_FLOAT ||
        ifd_tensor_count(v->constant) != (int64_t)count)
        return false;
    const float *d = v->constant->data;
    for (size_t i = 0; i < count; i++)
        out[i] = d[i];
    return true;
}

/* Relu or Clip with constant bounds: the clamp they apply. */
static bool clamp_of(const model_node *node, float *lo, float *hi)
{
    if (is_op(node, "Relu")) {
        *lo = 0.0f;
        *hi = INFINITY;
        return true;
    }
    if (!is_op(node, "Clip"))
        return false;
    if (node->op.version < 11) {
        *lo = op_attr_float(&node->op, "min", -FLT_MAX);
        *hi = op_attr_float(&node->op, "max", FLT_MAX);
        return true;
    }
    *lo = -INFINITY;
    *hi = INFINITY;
    for (int k = 1; k < node->op.n_inputs && k < 3; k++) {
        const value_info *b = node->op.inputs[k];
        double v;
        if (!b)
            continue;
        if (!constant_floats(b, 1, &v))
            return false;
        if (k == 1)
            *lo = (float)v;
        else
            *hi = (float)v;
    }
    return true;
}

/* BatchNormalization in inference form reading the Conv's output: its
 * per-channel scale and shift. */
static bool batchnorm_affine(const model_node *bn, int x_slot, size_t channels, double *scale,
                             double *shift)
{
    if (!is_op(bn, "BatchNormalization") || bn->op.n_inputs != 5 || bn->input_slots[0] != x_slot)
        return false;
    for (int k = 1; k < bn->op.n_outputs; k++)
        if (bn->op.output_used[k])
            return false;
    if (op_attr_int(&bn->op, "training_mode", 0) != 0 || op_attr_int(&bn->op, "spatial", 1) != 1)
        return false;
    double eps = op_attr_float(&bn->op, "epsilon", 1e-5f);
    double *gamma = malloc(4 * channels * sizeof(double));
    if (!gamma)
        return false;
    double *beta = gamma + channels, *mean = beta + channels, *var = mean + channels;
    bool ok = constant_floats(bn->op.inputs[1], channels, gamma) &&
              constant_floats(bn->op.inputs[2], channels, beta) &&
              constant_floats(bn->op.inputs[3], channels, mean) &&
              constant_floats(bn->op.inputs[4], channels, var);
    for (size_t c = 0; ok && c < channels; c++) {
        if (!(var[c] + eps > 0.0)) {
            ok = false;
            break;
        }
        scale[c] = gamma[c] / sqrt(var[c] + eps);
        shift[c] = beta[c] - mean[c] * scale[c];
    }
    free(gamma);
    return ok;
}

/* The known dims of a and b agree and they have one rank: the Add does not
 * broadcast as far as load time can tell (the Conv checks at run time). */
static bool same_shape(const value_info *a, const value_info *b)
{
    if (a->kind != IFD_VALUE_TENSOR || b->kind != IFD_VALUE_TENSOR || a->dtype != b->dtype ||
        a->rank < 0 || a->rank != b->rank)
        return false;
    for (int i = 0; i < a->rank; i++)
        if (a->dims[i] >= 0 && b->dims[i] >= 0 && a->dims[i] != b->dims[i])
            return false;
    /* a 1 against an unknown extent could broadcast: refuse */
    for (int i = 0; i < a->rank; i++)
        if ((a->dims[i] == 1) != (b->dims[i] == 1) && (a->dims[i] < 0 || b->dims[i] < 0))
            return false;
    return true;
}

/* Give the Conv one more input, the residual, after X, W and B. */
static int add_residual_input(ifd_model *m, model_node *conv, int slot)
{
    int index = conv->op.n_inputs > 3 ? conv->op.n_inputs : 3;
    value_info **inputs = model_alloc(m, (size_t)(index + 1) * sizeof(*inputs));
    int *slots = model_alloc(m, (size_t)(index + 1) * sizeof(int));
    if (!inputs || !slots)
        return -1;
    for (int k = 0; k < index; k++) {
        inputs[k] = k < conv->op.n_inputs ? conv->op.inputs[k] : NULL;
        slots[k] = k < conv->op.n_inputs ? conv->input_slots[k] : -1;
    }
    inputs[index] = &m->values[slot].info;
    slots[index] = slot;
    conv->op.inputs = inputs;
    conv->input_slots = slots;
    conv->op.n_inputs = index + 1;
    return index;
}

static ifd_status fuse_conv(fusion_pass *f, int host, ifd_error *err)
{
    ifd_model *m = f->m;
    bool affine_done = false, residual_done = false;
    for (;;) {
        model_node *h = &m->nodes[host];
        int out = h->output_slots[0];
        int next = sole_reader(f, out);
        if (next < 0)
            return IFD_OK;
        model_node *n = &m->nodes[next];
        size_t channels = h->op.inputs[1]->constant ? (size_t)h->op.inputs[1]->constant->dims[0] : 0;
        float lo, hi;
        if (!affine_done && !residual_done && is_op(n, "BatchNormalization") && channels) {
            double *scale = malloc(2 * channels * sizeof(double));
            if (!scale) {
                set_error(err, "out of memory fusing BatchNormalization node '%s'", n->op.name);
                return IFD_ERR_NO_MEMORY;
            }
            bool fused = batchnorm_affine(n, out, channels, scale, scale + channels) &&
                         conv_fuse_affine(&h->op, scale, scale + channels, channels);
            free(scale);
            if (!fused)
                return IFD_OK;
            absorb(f, host, next);
            affine_done = true;
        } else if (!residual_done && is_op(n, "Add") && n->op.n_inputs == 2) {
            int a = n->input_slots[0], b = n->input_slots[1];
            int other = a == out ? b : a;
            if (a == b || other < 0)
                return IFD_OK;
            const model_value *ov = &m->values[other];
            /* the residual must exist when the Conv runs */
            if (ov->producer > host || !same_shape(&ov->info, &m->values[out].info) ||
                !same_shape(&ov->info, &m->values[n->output_slots[0]].info))
                return IFD_OK;
            int index = add_residual_input(m, h, other);
            if (index < 0) {
                set_error(err, "out of memory fusing Add node '%s'", n->op.name);
                return IFD_ERR_NO_MEMORY;
            }
            if (!conv_fuse_residual(&h->op, index)) {
                h->op.n_inputs--; /* the arrays keep their old entries */
                return IFD_OK;
            }
            f->readers[other]++;
            absorb(f, host, next);
            if (f->readers[other] == 1)
                f->reader[other] = host;
            residual_done = true;
        } else if (clamp_of(n, &lo, &hi)) {
            if (conv_fuse_clamp(&h->op, lo, hi))
                absorb(f, host, next);
            return IFD_OK;
        } else {
            return IFD_OK;
        }
    }
}

/* A one-element float constant scaling the other operand of a Div (x / c)
 * or Mul (x * c, c * x) without changing its shape: the factor and which
 * input is x, or false. */
static bool scalar_factor(const ifd_model *m, const model_node *n, float *factor, int *x_input)
{
    bool div = is_op(n, "Div");
    if ((!div && !is_op(n, "Mul")) || n->op.n_inputs != 2 || n->op.n_outputs != 1)
        return false;
    for (int c = div ? 1 : 0; c < 2; c++) {
        int slot = n->input_slots[c], x = n->input_slots[1 - c];
        const value_info *xi = x >= 0 ? &m->values[x].info : NULL;
        const ifd_tensor *t = slot >= 0 ? m->values[slot].info.constant : NULL;
        if (!t || !xi || xi->dtype != IFD_FLOAT || t->dtype != IFD_FLOAT || !t->data ||
            ifd_tensor_count(t) != 1 || xi->rank < t->rank)
            continue;
        float v = *(const float *)t->data;
        if (!isfinite(v) || v == 0.0f || (div && !isfinite(1.0f / v)))
            continue;
        *factor = div ? 1.0f / v : v;
        *x_input = 1 - c;
        return true;
    }
    return false;
}

/* The producer of input k of `host` when `host` is its only reader and it is
 * still in the graph, else -1. */
static int sole_producer(const fusion_pass *f, int host, int k)
{
    const ifd_model *m = f->m;
    int slot = m->nodes[host].input_slots[k];
    if (slot < 0 || m->values[slot].is_graph_output || f->readers[slot] != 1)
        return -1;
    int p = f->producer[slot];
    return p >= 0 && p < host && !f->removed[p] ? p : -1;
}

/* Input k of `host` becomes input `from` of node `gone`, which goes. */
static void bypass(fusion_pass *f, int host, int k, int gone, int from)
{
    ifd_model *m = f->m;
    model_node *h = &m->nodes[host], *g = &m->nodes[gone];
    int old = h->input_slots[k], src = g->input_slots[from];
    h->input_slots[k] = src;
    h->op.inputs[k] = &m->values[src].info;
    for (int j = 0; j < g->op.n_inputs + g->op.n_implicit; j++)
        if (g->input_slots[j] >= 0 && j != from)
            f->readers[g->input_slots[j]]--;
    /* src keeps its count: the host reads it instead of the removed node */
    if (f->reader[src] == gone || f->readers[src] == 1)
        f->reader[src] = host;
    f->readers[old] = 0;
    f->producer[old] = -1;
    f->removed[gone] = true;
}

static void fuse_viewed_matmul(fusion_pass *f, int host)
{
    ifd_model *m = f->m;
    for (int k = 0; k < 2; k++) {
        /* Div/Mul by a scalar and a Transpose, in either order, once each */
        bool scaled = false, transposed = false;
        for (int step = 0; step < 2; step++) {
            int p = sole_producer(f, host, k);
            if (p < 0)
                break;
            const model_node *pn = &m->nodes[p];
            float factor;
            int x;
            const int64_t *perm;
            if (!scaled && scalar_factor(m, pn, &factor, &x)) {
                if (!matmul_fuse_scale(&m->nodes[host].op, factor))
                    break;
                bypass(f, host, k, p, x);
                scaled = true;
            } else if (!transposed && is_op(pn, "Transpose") && pn->op.n_inputs == 1 &&
                       pn->input_slots[0] >= 0) {
                size_t n = op_attr_ints(&pn->op, "perm", &perm);
                if (!matmul_fuse_input_transpose(&m->nodes[host].op, k, perm, n))
                    break;
                bypass(f, host, k, p, 0);
                transposed = true;
            } else {
                break;
            }
        }
    }
    model_node *h = &m->nodes[host];
    int next = sole_reader(f, h->output_slots[0]);
    if (next >= 0 && is_op(&m->nodes[next], "Transpose") && m->nodes[next].op.n_inputs == 1) {
        const int64_t *perm;
        size_t n = op_attr_ints(&m->nodes[next].op, "perm", &perm);
        if (matmul_fuse_output_transpose(&h->op, perm, n))
            absorb(f, host, next);
    }
}

/* A Softmax over the last axis of a 3-D tensor (before version 13 the
 * coercion to 2-D at axis 2 is the same thing). */
static bool softmax_over_last_axis(const ifd_model *m, const model_node *n)
{
    if (!is_op(n, "Softmax") || n->op.n_inputs != 1 || n->op.n_outputs != 1 ||
        n->input_slots[0] < 0 || m->values[n->input_slots[0]].info.rank != 3)
        return false;
    int64_t axis = op_attr_int(&n->op, "axis", n->op.version < 13 ? 1 : -1);
    return axis == -1 || axis == 2;
}

/* MatMul(Q, K^T) -> Softmax -> MatMul(., V): the second MatMul computes all
 * three a block of query rows at a time (ops/gemm.c), reading Q, K and V
 * through the views the transposes were fused into; the scores never make
 * a tensor of their own. */
static ifd_status fuse_attention(fusion_pass *f, int qk, ifd_error *err)
{
    ifd_model *m = f->m;
    model_node *q = &m->nodes[qk];
    if (!is_op(q, "MatMul") || q->op.n_inputs != 2 || q->op.n_outputs != 1)
        return IFD_OK;
    int sm = sole_reader(f, q->output_slots[0]);
    if (sm < 0 || f->removed[sm] || !softmax_over_last_axis(m, &m->nodes[sm]))
        return IFD_OK;
    int scores = m->nodes[sm].output_slots[0];
    int pv = sole_reader(f, scores);
    if (pv < 0 || f->removed[pv] || !is_op(&m->nodes[pv], "MatMul"))
        return IFD_OK;
    model_node *p = &m->nodes[pv];
    if (p->op.n_inputs != 2 || p->input_slots[0] != scores || p->input_slots[1] == scores)
        return IFD_OK;
    value_info **inputs = model_alloc(m, 3 * sizeof(*inputs));
    int *slots = model_alloc(m, 3 * sizeof(int));
    if (!inputs || !slots) {
        set_error(err, "out of memory fusing attention at node '%s'", p->op.name);
        return IFD_ERR_NO_MEMORY;
    }
    if (!matmul_fuse_attention(&p->op, &q->op))
        return IFD_OK;
    /* Q, V, K: Q and K are read by pv now instead of qk, so their counts
     * stay; the product and the Softmax go with their outputs */
    inputs[0] = q->op.inputs[0], slots[0] = q->input_slots[0];
    inputs[1] = p->op.inputs[1], slots[1] = p->input_slots[1];
    inputs[2] = q->op.inputs[1], slots[2] = q->input_slots[1];
    p->op.inputs = inputs;
    p->input_slots = slots;
    p->op.n_inputs = 3;
    for (int k = 0; k < 2; k++)
        if (f->reader[q->input_slots[k]] == qk)
            f->reader[q->input_slots[k]] = pv;
    int raw = q->output_slots[0];
    f->readers[raw] = f->readers[scores] = 0;
    f->producer[raw] = f->producer[scores] = -1;
    m->values[raw].producer = m->values[scores].producer = -1;
    f->removed[qk] = f->removed[sm] = true;
    return IFD_OK;
}

/* Add(a, b) -> LayerNormalization: b becomes the LayerNorm's input 3. */
static ifd_status fuse_layernorm_residual(fusion_pass *f, int host, ifd_error *err)
{
    ifd_model *m = f->m;
    model_node *h = &m->nodes[host];
    if (h->op.n_inputs < 2 || h->op.n_inputs > 3 || h->op.n_outputs != 1 || h->op.n_implicit)
        return IFD_OK;
    int p = sole_producer(f, host, 0);
    if (p < 0)
        return IFD_OK;
    const model_node *add = &m->nodes[p];
    if (!is_op(add, "Add") || add->op.n_inputs != 2 || add->input_slots[0] < 0 ||
        add->input_slots[1] < 0 || add->input_slots[0] == add->input_slots[1])
        return IFD_OK;
    const value_info *a = &m->values[add->input_slots[0]].info;
    const value_info *b = &m->values[add->input_slots[1]].info;
    const value_info *sum = &m->values[add->output_slots[0]].info;
    if (a->dtype != IFD_FLOAT || !same_shape(a, b) || !same_shape(a, sum))
        return IFD_OK;
    int residual = add->input_slots[1];
    int n_before = h->op.n_inputs;
    /* X, Scale, B (absent when the node has none), residual */
    value_info **inputs = model_alloc(m, 4 * sizeof(*inputs));
    int *slots = model_alloc(m, 4 * sizeof(int));
    if (!inputs || !slots) {
        set_error(err, "out of memory fusing Add node '%s'", add->op.name);
        return IFD_ERR_NO_MEMORY;
    }
    for (int k = 0; k < 3; k++) {
        inputs[k] = k < n_before ? h->op.inputs[k] : NULL;
        slots[k] = k < n_before ? h->input_slots[k] : -1;
    }
    inputs[3] = &m->values[residual].info;
    slots[3] = residual;
    value_info **old_inputs = h->op.inputs;
    int *old_slots = h->input_slots;
    h->op.inputs = inputs;
    h->input_slots = slots;
    h->op.n_inputs = 4;
    if (!layernorm_fuse_residual(&h->op, 3)) {
        h->op.inputs = old_inputs;
        h->input_slots = old_slots;
        h->op.n_inputs = n_before;
        return IFD_OK;
    }
    bypass(f, host, 0, p, 0);
    f->readers[residual]++; /* bypass dropped the Add's read; the LayerNorm reads it now */
    if (f->readers[residual] == 1)
        f->reader[residual] = host;
    return IFD_OK;
}

static ifd_status fuse_product(fusion_pass *f, int host)
{
    ifd_model *m = f->m;
    model_node *h = &m->nodes[host];
    int next = sole_reader(f, h->output_slots[0]);
    if (next < 0)
        return IFD_OK;
    model_node *n = &m->nodes[next];
    if (is_op(h, "MatMul") && is_op(n, "Add") && n->op.n_inputs == 2) {
        int out = h->output_slots[0];
        int other = n->input_slots[0] == out ? n->input_slots[1] : n->input_slots[0];
        const value_info *bias = other >= 0 ? &m->values[other].info : NULL;
        const value_info *y = &m->values[out].info;
        const ifd_tensor *c = bias ? bias->constant : NULL;
        /* a row of N broadcast over every leading axis: rank 1, or leading 1s */
        bool row = c && c->dtype == IFD_FLOAT && c->rank >= 1 && y->rank >= c->rank &&
                   c->dims[c->rank - 1] == y->dims[y->rank - 1] && y->dims[y->rank - 1] > 0 &&
                   n->input_slots[0] != n->input_slots[1];
        for (int i = 0; row && i < c->rank - 1; i++)
            row = c->dims[i] == 1;
        if (row && matmul_fuse_bias(&h->op, c->data, (size_t)c->dims[c->rank - 1])) {
            absorb(f, host, next);
            next = sole_reader(f, h->output_slots[0]);
            if (next < 0)
                return IFD_OK;
            n = &m->nodes[next];
        }
    }
    float lo, hi;
    if (clamp_of(n, &lo, &hi) && product_fuse_clamp(&h->op, lo, hi))
        absorb(f, host, next);
    return IFD_OK;
}

/* The value of a constant integer input holding one element. */
static bool constant_int1(const ifd_model *m, int slot, int64_t *v)
{
    const ifd_tensor *c = slot >= 0 ? m->values[slot].info.constant : NULL;
    if (!c || !c->data || ifd_tensor_count(c) != 1)
        return false;
    if (c->dtype == IFD_INT64)
        *v = *(const int64_t *)c->data;
    else if (c->dtype == IFD_INT32)
        *v = *(const int32_t *)c->data;
    else
        return false;
    return true;
}

#define MAX_COLUMN_PARTS 16

/* MatMul -> Slices of its last axis (attention's Q, K and V out of one
 * input projection, bounds folded to constants): the product writes each
 * Slice's columns as an output of its own (ops/gemm.c
 * matmul_fuse_column_split), so neither the whole product nor the copies
 * are made. Every reader must be such a Slice (step 1, constant bounds). */
static ifd_status fuse_column_slices(fusion_pass *f, int host, ifd_error *err)
{
    ifd_model *m = f->m;
    model_node *h = &m->nodes[host];
    if (!is_op(h, "MatMul") || h->op.n_outputs != 1 || !product_can_fuse(&h->op))
        return IFD_OK;
    int out = h->output_slots[0];
    const value_info *y = &m->values[out].info;
    int count = f->readers[out];
    if (out < 0 || m->values[out].is_graph_output || count < 1 || count > MAX_COLUMN_PARTS ||
        y->rank < 2 || y->dims[y->rank - 1] <= 0)
        return IFD_OK;
    int64_t n = y->dims[y->rank - 1];
    int slices[MAX_COLUMN_PARTS], found = 0;
    size_t begin[MAX_COLUMN_PARTS], end[MAX_COLUMN_PARTS];
    for (size_t i = (size_t)host + 1; i < m->n_nodes && found < count; i++) {
        const model_node *s = &m->nodes[i];
        int reads = 0;
        for (int k = 0; !f->removed[i] && k < s->op.n_inputs + s->op.n_implicit; k++)
            reads += s->input_slots[k] == out;
        if (reads == 0)
            continue;
        int64_t start, stop, axis = -1, step = 1;
        if (reads != 1 || !is_op(s, "Slice") || s->op.version < 10 || s->op.n_inputs < 3 ||
            s->op.n_outputs != 1 || s->input_slots[0] != out ||
            !constant_int1(m, s->input_slots[1], &start) ||
            !constant_int1(m, s->input_slots[2], &stop) ||
            (s->op.n_inputs > 3 && s->input_slots[3] >= 0 &&
             !constant_int1(m, s->input_slots[3], &axis)) ||
            (s->op.n_inputs > 4 && s->input_slots[4] >= 0 &&
             !constant_int1(m, s->input_slots[4], &step)))
            return IFD_OK;
        if ((axis != -1 && axis != y->rank - 1) || step != 1)
            return IFD_OK;
        /* Slice's bounds for step 1: from the end when negative, clamped */
        start = start < 0 ? start + n : start;
        stop = stop < 0 ? stop + n : stop;
        start = start < 0 ? 0 : start > n ? n : start;
        stop = stop < 0 ? 0 : stop > n ? n : stop;
        if (stop <= start)
            return IFD_OK;
        slices[found] = (int)i;
        begin[found] = (size_t)start;
        end[found] = (size_t)stop;
        found++;
    }
    if (found != count)
        return IFD_OK;
    value_info **outputs = model_alloc(m, (size_t)found * sizeof(*outputs));
    int *slots = model_alloc(m, (size_t)found * sizeof(int));
    bool *used = model_alloc(m, (size_t)found * sizeof(bool));
    if (!outputs || !slots || !used) {
        set_error(err, "out of memory splitting node '%s'", h->op.name);
        return IFD_ERR_NO_MEMORY;
    }
    if (!matmul_fuse_column_split(&h->op, found, begin, end))
        return IFD_OK;
    for (int j = 0; j < found; j++) {
        model_node *s = &m->nodes[slices[j]];
        int slot = s->output_slots[0];
        outputs[j] = &m->values[slot].info;
        slots[j] = slot;
        used[j] = s->op.output_used[0];
        m->values[slot].producer = host;
        f->producer[slot] = host;
        for (int k = 1; k < s->op.n_inputs + s->op.n_implicit; k++)
            if (s->input_slots[k] >= 0)
                f->readers[s->input_slots[k]]--;
        f->removed[slices[j]] = true;
    }
    h->op.outputs = outputs;
    h->output_slots = slots;
    h->op.output_used = used;
    h->op.n_outputs = found;
    f->readers[out] = 0;
    f->producer[out] = -1;
    m->values[out].producer = -1;
    return IFD_OK;
}

ifd_status optimize_fuse_kernels(ifd_model *m, ifd_error *err)
{
    fusion_pass f = {.m = m};
    f.readers = calloc(m->n_values ? m->n_values : 1, sizeof(int));
    f.reader = calloc(m->n_values ? m->n_values : 1, sizeof(int));
    f.producer = malloc((m->n_values ? m->n_values : 1) * sizeof(int));
    f.removed = calloc(m->n_nodes ? m->n_nodes : 1, sizeof(bool));
    ifd_status st = IFD_OK;
    if (!f.readers || !f.reader || !f.producer || !f.removed) {
        set_error(err, "out of memory planning fusions");
        st = IFD_ERR_NO_MEMORY;
    }
    for (size_t v = 0; st == IFD_OK && v < m->n_values; v++)
        f.producer[v] = -1;
    for (size_t i = 0; st == IFD_OK && i < m->n_nodes; i++) {
        const model_node *node = &m->nodes[i];
        for (int k = 0; k < node->op.n_outputs; k++)
            if (node->output_slots[k] >= 0)
                f.producer[node->output_slots[k]] = (int)i;
        for (int k = 0; k < node->op.n_inputs + node->op.n_implicit; k++)
            if (node->input_slots[k] >= 0) {
                f.readers[node->input_slots[k]]++;
                f.reader[node->input_slots[k]] = (int)i;
            }
        /* the loader recorded producers as positions in the file, and the
         * Constant nodes and folded nodes that are gone since shifted the
         * rest: fuse_conv compares them with positions in this array (a
         * residual must be computed before its Conv), so renumber first.
         * MobileNetV2's Clip bounds are Constant nodes; with stale numbers
         * none of its 10 residual Adds was fused. */
        for (int k = 0; k < node->op.n_outputs; k++)
            m->values[node->output_slots[k]].producer = (int)i;
    }
    for (size_t i = 0; st == IFD_OK && i < m->n_nodes; i++) {
        model_node *node = &m->nodes[i];
        if (f.removed[i] || node->op.n_outputs < 1)
            continue;
        if (conv_can_fuse(&node->op))
            st = fuse_conv(&f, (int)i, err);
        else if (product_can_fuse(&node->op) && (st = fuse_product(&f, (int)i)) == IFD_OK)
            st = fuse_column_slices(&f, (int)i, err);
        else if (matmul_can_view(&node->op))
            fuse_viewed_matmul(&f, (int)i);
        else if (is_op(node, "LayerNormalization"))
            st = fuse_layernorm_residual(&f, (int)i, err);
    }
    /* after the loop above: the second product's transposes are fused by
     * now, and its views are what the attention kernel reads */
    for (size_t i = 0; st == IFD_OK && i < m->n_nodes; i++)
        if (!f.removed[i])
            st = fuse_attention(&f, (int)i, err);
    if (st == IFD_OK)
        graph_drop_nodes(m, f.removed);
    free(f.readers);
    free(f.reader);
    free(f.producer);
    free(f.removed);
    return st;
}

bool fuse_kernels_needs_weights(const ifd_model *m, size_t n, const int *readers)
{
    const model_node *conv = &m->nodes[n];
    if (!is_op(conv, "Conv") || conv->op.n_outputs != 1)
        return false;
    int out = conv->output_slots[0];
    if (out < 0 || readers[out] != 1)
        return false;
    for (size_t r = n + 1; r < m->n_nodes; r++) {
        const model_node *node = &m->nodes[r];
        for (int k = 0; k < node->op.n_inputs; k++)
            if (node->input_slots[k] == out)
                return is_op(node, "BatchNormalization") && k == 0;
    }
    return false;
}
