/*
 * optimize/fuse_stacked_lstm.c — the load-time pass that turns two stacked
 * LSTM layers as exporters write them (torch.nn.LSTM with num_layers = 2),
 *
 *   LSTM -> Squeeze(axis 1) -> LSTM
 *
 * into one com.microsoft StackedLSTM node (ops/recurrent.c), which at two
 * threads runs the layers as a pipeline, one layer per thread, instead of
 * splitting every step of each layer over both threads. It runs after
 * prepare at graph_opt ALL: it needs the layers' prepared states (attributes
 * parsed, weights packed), which the fused node takes over.
 *
 * The pattern is taken only where the fused node computes exactly what the
 * two nodes did (lstm_stackable): both layers forward, layout 0, without
 * sequence_lens; the lower layer's Y read by the Squeeze alone, its Y_h and
 * Y_c by nobody; the Squeeze's output read by the upper layer alone, as
 * its X; the Squeeze removing axis 1 (the directions axis, 1 here).
 */
#include <string.h>

#include "../ops/fusable.h"
#include "optimize.h"

/* Squeeze node q's axes are exactly {1} of its rank-4 input (or -3). */
static bool squeezes_axis_1(const graph_view *g, int q)
{
    const model_node *node = &g->m->nodes[q];
    const op_node *op = &node->op;
    const int64_t *axes = NULL;
    size_t n = 0;
    if (op->version < 13) {
        n = op_attr_ints(op, "axes", &axes);
    } else if (op->n_inputs > 1 && node->input_slots[1] >= 0) {
        int slot = graph_view_constant(g, node->input_slots[1]);
        const ifd_tensor *t = slot >= 0 ? g->m->values[slot].info.constant : NULL;
        if (t && t->dtype == IFD_INT64 && t->data) {
            axes = t->data;
            n = (size_t)ifd_tensor_count(t);
        }
    }
    return n == 1 && axes && (axes[0] == 1 || axes[0] == -3);
}

/* Upper LSTM node n2 with the lower layer and Squeeze before it, if that is
 * what feeds its X: one StackedLSTM node then. */
static bool try_stack(graph_view *g, int n2)
{
    ifd_model *m = g->m;
    model_node *upper = &m->nodes[n2];
    if (upper->op.domain[0] || strcmp(upper->op.op_type, "LSTM") != 0 ||
        upper->op.n_inputs < 3 || upper->op.n_inputs > 8)
        return false;
    int squeezed = upper->input_slots[0];
    int q = graph_view_sole_producer(g, squeezed, "Squeeze", 1);
    if (q < 0 || !squeezes_axis_1(g, q))
        return false;
    int y1 = m->nodes[q].input_slots[0];
    int n1 = graph_view_sole_producer(g, y1, "LSTM", 1);
    if (n1 < 0 || m->nodes[n1].output_slots[0] != y1 || m->nodes[n1].op.n_inputs > 8)
        return false;
    model_node *lower = &m->nodes[n1];
    if (!lstm_stackable(&lower->op, &upper->op))
        return false;
    const op_def *def = op_registry_find("com.microsoft", "StackedLSTM", 1);
    value_info **infos = model_alloc(m, 16 * sizeof(*infos));
    int *slots = model_alloc(m, 16 * sizeof(int));
    if (!def || !infos || !slots)
        return false;
    for (int k = 0; k < 16; k++) {
        const model_node *from = k < 8 ? lower : upper;
        int i = k % 8;
        bool has = i < from->op.n_inputs && k != 8; /* 8: the upper X, the lower layer's Y */
        slots[k] = has ? from->input_slots[i] : -1;
        infos[k] = has ? from->op.inputs[i] : NULL;
    }
    void *state = stacked_lstm_state_new(&lower->op, &upper->op);
    if (!state)
        return false;
    /* the lower node's and the Squeeze's reads go with them; the upper one
     * reads the lower one's inputs instead of the Squeeze's output */
    graph_view_remove(g, n1);
    graph_view_remove(g, q);
    g->readers[squeezed]--;
    for (int k = 0; k < 8; k++)
        if (slots[k] >= 0)
            g->readers[slots[k]]++;
    for (int k = 0; k < lower->op.n_outputs; k++)
        m->values[lower->output_slots[k]].producer = -1;
    m->values[squeezed].producer = -1;
    upper->op.state = state;
    upper->op.op_type = def->op_type;
    upper->op.domain = "com.microsoft";
    upper->op.version = 1;
    upper->op.n_inputs = 16;
    upper->op.inputs = infos;
    upper->op.n_attrs = 0;
    upper->op.packed_inputs = 0;
    upper->input_slots = slots;
    upper->def = def;
    return true;
}

ifd_status optimize_fuse_stacked_lstm(ifd_model *m, ifd_error *err)
{
    bool any = false;
    for (size_t n = 0; n < m->n_nodes && !any; n++)
        any = !m->nodes[n].op.domain[0] && strcmp(m->nodes[n].op.op_type, "LSTM") == 0;
    if (!any)
        return IFD_OK;
    graph_view g;
    ifd_status st = graph_view_init(&g, m, err);
    if (st != IFD_OK)
        return st;
    bool changed = false;
    for (size_t n = 0; n < m->n_nodes; n++)
        if (!g.removed[n])
            changed |= try_stack(&g, (int)n);
    if (changed)
        graph_drop_nodes(m, g.removed);
    graph_view_free(&g);
    return IFD_OK;
}
