/*
 * fold_constants.c — computes at load every node whose inputs are all
 * constants, so that run() does not redo it and later nodes' prepare() sees
 * the result as a constant (and packs it, if it is a weight).
 *
 * Exporters leave much of this: weights transposed or reshaped by the graph,
 * shape arithmetic (Shape → Gather → Unsqueeze → Concat → Reshape) around
 * every reshape of a transformer, scales computed from constants. The node
 * runs through its own operator's run() on a session of the model being
 * loaded, so a folded value is exactly what the graph would compute.
 *
 * A Shape node whose input's shape prepare() inferred completely folds too,
 * though its input is not a constant: that is what unlocks the shape chains.
 * When only some dimensions are known (a batch left dynamic), a Gather of
 * known entries of that Shape folds instead: torch's attention takes the
 * bounds of its Q, K and V slices and the head size from such Gathers.
 *
 * Folding never grows memory much: an output may take at most as many bytes
 * as the node's constant inputs (or 64 KiB), and never more than 256 MiB, so
 * a tiny Expand or ConstantOfShape of a huge shape stays a node. A node that
 * fails to fold (its run refuses the constants, say) stays a node and fails
 * at run time with the operator's own message, as it would have unoptimised.
 */
#include <stdlib.h>
#include <string.h>

#include "optimize.h"

#define FOLD_SMALL_BYTES ((size_t)64 << 10)
#define FOLD_MAX_BYTES ((size_t)256 << 20)

/* Operators whose output is not a function of their inputs. */
static bool is_nondeterministic(const op_node *op)
{
    static const char *const random_ops[] = {"RandomNormal", "RandomUniform",
                                             "RandomNormalLike", "RandomUniformLike",
                                             "Multinomial", "Bernoulli"};
    for (size_t i = 0; i < sizeof(random_ops) / sizeof(random_ops[0]); i++)
        if (strcmp(op->op_type, random_ops[i]) == 0)
            return true;
    return false;
}

/* Operators whose output holds input 0's bytes unchanged (a new shape at
 * most). Folded, the output views the input's data instead of copying it:
 * torch writes a weight shared by several layers as Identity(initializer)
 * per layer, and copies would multiply the weights by the layer count. */
static bool keeps_bytes(const op_node *op)
{
    static const char *const same_bytes[] = {"Identity", "Reshape", "Flatten", "Squeeze",
                                             "Unsqueeze"};
    for (size_t i = 0; i < sizeof(same_bytes) / sizeof(same_bytes[0]); i++)
        if (strcmp(op->op_type, same_bytes[i]) == 0)
            return op->n_outputs == 1;
    return false;
}

static void view_input(ifd_model *m, const model_node *node, ifd_tensor *out)
{
    model_value *src = &m->values[node->input_slots[0]];
    const ifd_tensor *in = &src->constant_storage;
    size_t in_bytes, out_bytes;
    if (in->dtype != out->dtype || in->dtype == IFD_STRING ||
        !shape_bytes(in->dtype, in->rank, in->dims, &in_bytes) ||
        !shape_bytes(out->dtype, out->rank, out->dims, &out_bytes) || in_bytes != out_bytes ||
        !in->data || !out->data)
        return;
    free(out->data);
    out->data = in->data;
    out->capacity = 0;
    out->owns_data = 0;
    /* the bytes' owner is src, or (src being a view itself) already pinned */
    src->viewed = true;
}

static void become_constant(model_value *v, const ifd_tensor *t)
{
    v->origin = VALUE_CONSTANT;
    v->producer = -1;
    value_set_constant(v, t);
}

/* A byte-keeping node whose output shape prepare() inferred completely
 * folds to a view of its input without running: running it would copy the
 * weight first (freed at once, but a freed block of a few MiB stays in
 * malloc's heap, so every layer's Identity grew the resident size by its
 * weight; the 4-layer bench encoder 5 -> 12 MiB while folding). */
static bool fold_as_view(ifd_model *m, const model_node *node)
{
    const op_node *op = &node->op;
    const value_info *out = op->outputs[0];
    int in_slot = node->input_slots[0];
    if (!keeps_bytes(op) || in_slot < 0 || out->kind != IFD_VALUE_TENSOR || out->rank < 0)
        return false;
    model_value *src = &m->values[in_slot];
    const ifd_tensor *in = &src->constant_storage;
    ifd_tensor view = {0};
    size_t in_bytes, out_bytes;
    for (int i = 0; i < out->rank; i++)
        if (out->dims[i] < 0)
            return false;
    view.dtype = out->dtype;
    tensor_set_shape(&view, out->rank, out->dims);
    if (!in->data || in->dtype != out->dtype || in->dtype == IFD_STRING ||
        !shape_bytes(in->dtype, in->rank, in->dims, &in_bytes) ||
        !shape_bytes(view.dtype, view.rank, view.dims, &out_bytes) || in_bytes != out_bytes)
        return false; /* run it: a wrong shape fails with the operator's message */
    view.data = in->data;
    /* the bytes' owner is src, or (src being a view itself) already pinned */
    src->viewed = true;
    become_constant(&m->values[node->output_slots[0]], &view);
    return true;
}

/* The [start, end) of a Shape node's output within its input's dims (Shape-15
 * clamps them like Slice); false when the input's rank is unknown. */
static bool shape_range(const op_node *op, int64_t *start, int64_t *end)
{
    const value_info *in = op->n_inputs == 1 ? op->inputs[0] : NULL;
    if (!in || in->kind != IFD_VALUE_TENSOR || in->rank < 0)
        return false;
    int64_t rank = in->rank;
    int64_t s = op_attr_int(op, "start", 0), e = op_attr_int(op, "end", rank);
    if (s < 0)
        s += rank;
    if (e < 0)
        e += rank;
    *start = s < 0 ? 0 : s > rank ? rank : s;
    *end = e < 0 ? 0 : e > rank ? rank : e;
    if (*end < *start)
        *end = *start;
    return true;
}

/* Shape-1 and Shape-15 (start/end, clamped like Slice) of a statically known
 * input shape. */
static bool fold_static_shape(constant_folder *f, model_node *node)
{
    const op_node *op = &node->op;
    const value_info *in = op->n_inputs == 1 ? op->inputs[0] : NULL;
    int64_t start, end;
    /* a subgraph's input shapes are the first iteration's, not every one's */
    if (f->in_subgraph || strcmp(op->op_type, "Shape") != 0 || op->domain[0] || !in ||
        op->n_outputs != 1 || !shape_range(op, &start, &end))
        return false;
    for (int64_t i = start; i < end; i++)
        if (in->dims[i] < 0)
            return false;
    int64_t count = end - start;
    ifd_tensor t = {0};
    ifd_error ignored;
    if (tensor_alloc(&t, IFD_INT64, 1, &count, "Shape", &ignored) != IFD_OK)
        return false;
    for (int64_t i = 0; i < count; i++)
        ((int64_t *)t.data)[i] = in->dims[start + i];
    become_constant(&f->m->values[node->output_slots[0]], &t);
    return true;
}

/* A Shape that did not fold: remembered, so that Gathers of its known
 * entries can. */
static void note_shape(constant_folder *f, const model_node *node, size_t n)
{
    const op_node *op = &node->op;
    if (f->in_subgraph || strcmp(op->op_type, "Shape") != 0 || op->domain[0] ||
        op->n_outputs != 1 || node->output_slots[0] < 0)
        return;
    if (!f->shape_node) {
        f->shape_node = malloc((f->m->n_values ? f->m->n_values : 1) * sizeof(int));
        if (!f->shape_node)
            return; /* nothing folds from it: the graph runs as written */
        for (size_t i = 0; i < f->m->n_values; i++)
            f->shape_node[i] = -1;
    }
    f->shape_node[node->output_slots[0]] = (int)n;
}

/* Gather(Shape(x), indices) along axis 0 where every dimension of x that the
 * constant indices pick is known at load. An index out of range is left for
 * the Gather to refuse at run time, as unoptimised. */
static bool fold_gather_of_shape(constant_folder *f, model_node *node)
{
    const op_node *op = &node->op;
    if (!f->shape_node || strcmp(op->op_type, "Gather") != 0 || op->domain[0] ||
        op->n_inputs != 2 || op->n_outputs != 1 || node->input_slots[0] < 0 ||
        node->input_slots[1] < 0 || f->shape_node[node->input_slots[0]] < 0)
        return false;
    int64_t axis = op_attr_int(op, "axis", 0);
    if (axis != 0 && axis != -1)
        return false; /* a Shape is 1-D: 0 and -1 are its only axis */
    const op_node *shape = &f->m->nodes[f->shape_node[node->input_slots[0]]].op;
    const model_value *iv = &f->m->values[node->input_slots[1]];
    const ifd_tensor *indices = &iv->constant_storage;
    int64_t start, end;
    if (iv->origin != VALUE_CONSTANT || !indices->data || indices->rank > 1 ||
        (indices->dtype != IFD_INT64 && indices->dtype != IFD_INT32) ||
        !shape_range(shape, &start, &end))
        return false;
    const value_info *in = shape->inputs[0];
    int64_t count = (int64_t)ifd_tensor_count(indices), length = end - start;
    int64_t picked[IFD_MAX_RANK];
    if (count > IFD_MAX_RANK)
        return false;
    for (int64_t i = 0; i < count; i++) {
        int64_t k = indices->dtype == IFD_INT64 ? ((const int64_t *)indices->data)[i]
                                                : ((const int32_t *)indices->data)[i];
        if (k < 0)
            k += length;
        if (k < 0 || k >= length || in->dims[start + k] < 0)
            return false;
        picked[i] = in->dims[start + k];
    }
    ifd_tensor t = {0};
    ifd_error ignored;
    if (tensor_alloc(&t, IFD_INT64, indices->rank, indices->dims, "Gather", &ignored) != IFD_OK)
        return false;
    for (int64_t i = 0; i < count; i++)
        ((int64_t *)t.data)[i] = picked[i];
    become_constant(&f->m->values[node->output_slots[0]], &t);
    return true;
}

bool constant_folder_node(constant_folder *f, size_t n)
{
    ifd_model *m = f->m;
    model_node *node = &m->nodes[n];
    const op_node *op = &node->op;
    if (op->n_subgraphs || op->n_implicit || is_nondeterministic(op) || op->n_outputs < 1)
        return false;
    if (fold_static_shape(f, node) || fold_gather_of_shape(f, node)) {
        f->folded++;
        return true;
    }
    note_shape(f, node, n);
    bool all_constant = op->n_inputs > 0;
    for (int k = 0; k < op->n_inputs; k++) {
        int slot = node->input_slots[k];
        all_constant &= slot < 0 || m->values[slot].origin == VALUE_CONSTANT;
    }
    if (all_constant && fold_as_view(m, node)) {
        f->folded++;
        return true;
    }
    size_t input_bytes = 0;
    int present = 0;
    for (int k = 0; k < op->n_inputs; k++) {
        int slot = node->input_slots[k];
        if (slot < 0)
            continue;
        const model_value *v = &m->values[slot];
        size_t bytes;
        if (v->origin != VALUE_CONSTANT || !v->constant_storage.data ||
            !shape_bytes(v->constant_storage.dtype, v->constant_storage.rank,
                         v->constant_storage.dims, &bytes))
            return false;
        input_bytes += bytes;
        present++;
    }
    if (present == 0)
        return false; /* nothing to fold from (and sources such as EyeLike need inputs) */
    for (int k = 0; k < op->n_outputs; k++)
        if (op->outputs[k]->kind != IFD_VALUE_TENSOR)
            return false;
    if (!f->session && !f->unavailable) {
        ifd_session_options options = {.threads = 1};
        ifd_error ignored;
        /* runnable is set for the whole load; the folder runs node by node */
        if (ifd_session_create(m, &options, &f->session, &ignored) != IFD_OK)
            f->unavailable = true;
    }
    if (!f->session)
        return false;
    size_t limit = input_bytes > FOLD_SMALL_BYTES ? input_bytes : FOLD_SMALL_BYTES;
    if (limit > FOLD_MAX_BYTES)
        limit = FOLD_MAX_BYTES;
    ifd_tensor *outputs = calloc((size_t)op->n_outputs, sizeof(*outputs));
    ifd_error ignored;
    if (!outputs || session_run_node_once(f->session, n, limit, outputs, &ignored) != IFD_OK) {
        free(outputs);
        return false;
    }
    if (keeps_bytes(op))
        view_input(m, node, &outputs[0]);
    for (int k = 0; k < op->n_outputs; k++)
        become_constant(&m->values[node->output_slots[k]], &outputs[k]);
    free(outputs);
    f->folded++;
    return true;
}

void constant_folder_end(constant_folder *f)
{
    ifd_session_free(f->session);
    f->session = NULL;
    free(f->shape_node);
    f->shape_node = NULL;
}
