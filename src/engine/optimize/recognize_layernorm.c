/*
 * recognize_layernorm.c — finds LayerNormalization spelled out in
 * primitives, as torch.onnx writes nn.LayerNorm below opset 17:
 *
 *   mean = ReduceMean(x, axes=[-1]);  d = Sub(x, mean)
 *   var  = ReduceMean(Pow(d, 2), axes=[-1])
 *   y    = Add(Mul(Div(d, Sqrt(Add(var, eps))), gamma), beta)
 *
 * and runs it as the engine's LayerNormalization-17 (axis -1): one pass
 * computing mean and variance per row instead of nine nodes and six
 * intermediate tensors. gamma and beta must be 1-D float constants of the
 * normalised length (so that the fused operator's Scale and B are exactly
 * what the broadcasts did); ReduceMean may take its axes as an attribute
 * (before opset 18) or a constant input (18 on).
 */
#include <string.h>

#include "optimize.h"

/* The 1-D float constant's length, or -1. */
static int64_t vector_length(const ifd_model *m, int slot)
{
    if (slot < 0 || m->values[slot].origin != VALUE_CONSTANT)
        return -1;
    const ifd_tensor *t = &m->values[slot].constant_storage;
    return t->dtype == IFD_FLOAT && t->rank == 1 && t->data ? t->dims[0] : -1;
}

/* A ReduceMean over the last axis keeping it: its input, or -1. */
static int mean_over_last_axis(const graph_view *g, int node)
{
    const ifd_model *m = g->m;
    const op_node *op = &m->nodes[node].op;
    if (op_attr_int(op, "keepdims", 1) != 1)
        return -1;
    int64_t axes[2];
    size_t count = 0;
    const int64_t *attr;
    if (op->n_inputs >= 2 && m->nodes[node].input_slots[1] >= 0) {
        int slot = m->nodes[node].input_slots[1];
        if (m->values[slot].origin != VALUE_CONSTANT ||
            !tensor_read_int64s(&m->values[slot].constant_storage, axes, 2, &count))
            return -1;
    } else {
        count = op_attr_ints(op, "axes", &attr);
        if (count == 1)
            axes[0] = attr[0];
    }
    int x = m->nodes[node].input_slots[0];
    int rank = x >= 0 ? m->values[x].info.rank : -1;
    if (count != 1 || !(axes[0] == -1 || (rank > 0 && axes[0] == rank - 1)))
        return -1;
    return x;
}

static bool try_layernorm(graph_view *g, int top)
{
    const ifd_model *m = g->m;
    const int *in = m->nodes[top].input_slots;
    for (int side = 0; side < 2; side++) {
        int beta = graph_view_constant(g, in[1 - side]);
        int64_t length = vector_length(m, beta);
        if (length < 2)
            continue;
        int scaled = graph_view_sole_producer(g, in[side], "Mul", 1);
        if (scaled < 0)
            continue;
        const int *mi = m->nodes[scaled].input_slots;
        int g0 = graph_view_constant(g, mi[0]), g1 = graph_view_constant(g, mi[1]);
        int gamma = vector_length(m, g1) == length ? g1 : vector_length(m, g0) == length ? g0 : -1;
        int normed = gamma < 0 ? -1 : graph_view_sole_producer(g, gamma == g1 ? mi[0] : mi[1], "Div", 1);
        if (normed < 0)
            continue;
        int d = m->nodes[normed].input_slots[0];
        int root = graph_view_sole_producer(g, m->nodes[normed].input_slots[1], "Sqrt", 1);
        int shifted = root < 0 ? -1 : graph_view_sole_producer(g, m->nodes[root].input_slots[0], "Add", 1);
        if (shifted < 0)
            continue;
        const int *si = m->nodes[shifted].input_slots;
        int eps_slot = -1, var_slot = -1;
        for (int k = 0; k < 2; k++) {
            int64_t count;
            int c = graph_view_constant(g, si[k]);
            const ifd_tensor *t = c >= 0 ? &m->values[c].constant_storage : NULL;
            if (t && t->dtype == IFD_FLOAT && t->data && shape_count(t->rank, t->dims, &count) &&
                count == 1)
                eps_slot = c, var_slot = si[1 - k];
        }
        int var = eps_slot < 0 ? -1 : graph_view_sole_producer(g, var_slot, "ReduceMean", 1);
        int squared = var < 0 ? -1 : graph_view_sole_producer(g, mean_over_last_axis(g, var), "Pow", 1);
        if (squared < 0 || m->nodes[squared].input_slots[0] != d ||
            !graph_value_is_scalar(m, m->nodes[squared].input_slots[1], 2.0, 0.0))
            continue;
        /* d is read twice: by the Pow and by the Div */
        int centred = graph_view_sole_producer(g, d, "Sub", 2);
        if (centred < 0)
            continue;
        int x = m->nodes[centred].input_slots[0];
        int mean = graph_view_sole_producer(g, m->nodes[centred].input_slots[1], "ReduceMean", 1);
        if (mean < 0 || x < 0 || mean_over_last_axis(g, mean) != x)
            continue;
        const value_info *xi = &m->values[x].info;
        if (xi->rank > 0 && xi->dims[xi->rank - 1] >= 0 && xi->dims[xi->rank - 1] != length)
            continue;
        op_attr attrs[2] = {
            {.name = "axis", .type = OP_ATTR_INT, .i = -1},
            {.name = "epsilon", .type = OP_ATTR_FLOAT,
             .f = ((const float *)m->values[eps_slot].constant_storage.data)[0]},
        };
        int inputs[3] = {x, gamma, beta};
        if (!graph_view_rewrite(g, top, "LayerNormalization", 17, inputs, 3, attrs, 2))
            return false;
        int chain[] = {scaled, normed, root, shifted, var, squared, centred, mean};
        for (size_t i = 0; i < sizeof(chain) / sizeof(chain[0]); i++)
            graph_view_remove(g, chain[i]);
        return true;
    }
    return false;
}

ifd_status optimize_recognize_layernorm(ifd_model *m, ifd_error *err)
{
    /* a pattern's last Add is met before its inner ones */
    return graph_rewrite_from_end(m, "Add", try_layernorm, err);
}
