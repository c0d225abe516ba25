/*
 * optimize.c — runs the optimiser's passes by level and holds the graph
 * bookkeeping they share (producers, reader counts, node removal).
 *
 * Levels follow ONNX Runtime's: NONE runs the graph as written (Constant
 * nodes are still constants: that is loading, not optimising); BASIC folds
 * constants and removes dead nodes; ALL also rewrites patterns into fused
 * operators. Every pass keeps the outputs the same up to floating-point
 * reassociation; tests/engine/test_optimize.c and the conformance and
 * fixture suites run at NONE and at ALL hold them to it.
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "optimize.h"

#include "fuse_kernels.h"

ifd_graph_opt optimize_level(ifd_graph_opt requested)
{
    return requested == IFD_GRAPH_OPT_NONE || requested == IFD_GRAPH_OPT_BASIC ? requested
                                                                               : IFD_GRAPH_OPT_ALL;
}

/* ---- graph view ------------------------------------------------------------ */

ifd_status graph_view_init(graph_view *g, ifd_model *m, ifd_error *err)
{
    memset(g, 0, sizeof(*g));
    g->m = m;
    g->producer = malloc((m->n_values + 1) * sizeof(int));
    g->readers = calloc(m->n_values + 1, sizeof(int));
    g->removed = calloc(m->n_nodes + 1, sizeof(bool));
    if (!g->producer || !g->readers || !g->removed) {
        graph_view_free(g);
        set_error(err, "out of memory");
        return IFD_ERR_NO_MEMORY;
    }
    for (size_t v = 0; v < m->n_values; v++)
        g->producer[v] = -1;
    for (size_t n = 0; n < m->n_nodes; n++) {
        const model_node *node = &m->nodes[n];
        for (int k = 0; k < node->op.n_outputs; k++)
            g->producer[node->output_slots[k]] = (int)n;
        for (int k = 0; k < node->op.n_inputs + node->op.n_implicit; k++)
            if (node->input_slots[k] >= 0)
                g->readers[node->input_slots[k]]++;
    }
    for (size_t i = 0; i < m->n_outputs; i++)
        g->readers[m->outputs[i].slot]++;
    return IFD_OK;
}

void graph_view_free(graph_view *g)
{
    free(g->producer);
    free(g->readers);
    free(g->removed);
    memset(g, 0, sizeof(*g));
}

void graph_view_remove(graph_view *g, int n)
{
    const model_node *node = &g->m->nodes[n];
    if (g->removed[n])
        return;
    g->removed[n] = true;
    for (int k = 0; k < node->op.n_inputs + node->op.n_implicit; k++)
        if (node->input_slots[k] >= 0)
            g->readers[node->input_slots[k]]--;
    for (int k = 0; k < node->op.n_outputs; k++)
        if (g->producer[node->output_slots[k]] == n)
            g->producer[node->output_slots[k]] = -1;
}

int graph_view_sole_producer(const graph_view *g, int slot, const char *op_type, int reads)
{
    if (slot < 0 || g->readers[slot] != reads)
        return -1;
    int n = g->producer[slot];
    if (n < 0 || g->removed[n])
        return -1;
    const op_node *op = &g->m->nodes[n].op;
    if (op->domain[0] || strcmp(op->op_type, op_type) != 0 || op->n_subgraphs)
        return -1;
    /* the graph is not yet checked against the schemas: a pattern reads
     * input 0, and both inputs of the binary operators, so those must exist */
    static const char *const binary[] = {"Add", "Sub", "Mul", "Div", "Pow"};
    const int *in = g->m->nodes[n].input_slots;
    if (op->n_inputs < 1 || in[0] < 0)
        return -1;
    for (size_t i = 0; i < sizeof(binary) / sizeof(binary[0]); i++)
        if (strcmp(op_type, binary[i]) == 0 && (op->n_inputs != 2 || in[1] < 0))
            return -1;
    /* a rewrite replaces the whole pattern, so no other output may be read */
    for (int k = 0; k < op->n_outputs; k++)
        if (g->m->nodes[n].output_slots[k] != slot && g->readers[g->m->nodes[n].output_slots[k]])
            return -1;
    return n;
}

int graph_view_constant(const graph_view *g, int slot)
{
    for (int hops = 0; slot >= 0 && hops < 8; hops++) {
        if (g->m->values[slot].origin == VALUE_CONSTANT)
            return slot;
        int n = g->producer[slot];
        const op_node *op = n >= 0 && !g->removed[n] ? &g->m->nodes[n].op : NULL;
        if (!op || op->domain[0] || strcmp(op->op_type, "Identity") != 0 || op->n_inputs != 1)
            return -1;
        slot = g->m->nodes[n].input_slots[0];
    }
    return -1;
}

bool graph_value_is_scalar(const ifd_model *m, int slot, double want, double rel_tol)
{
    if (slot < 0 || m->values[slot].origin != VALUE_CONSTANT)
        return false;
    const ifd_tensor *t = &m->values[slot].constant_storage;
    int64_t count;
    if (t->dtype != IFD_FLOAT || !t->data || !shape_count(t->rank, t->dims, &count) || count != 1)
        return false;
    double got = ((const float *)t->data)[0];
    return fabs(got - want) <= rel_tol * fabs(want);
}

bool graph_view_rewrite(graph_view *g, int n, const char *op_type, int version,
                        const int *inputs, int n_inputs, const op_attr *attrs, size_t n_attrs)
{
    ifd_model *m = g->m;
    model_node *node = &m->nodes[n];
    const op_def *def = op_registry_find("", op_type, version);
    if (!def || node->op.n_outputs < 1)
        return false;
    value_info **infos = model_alloc(m, (size_t)n_inputs * sizeof(*infos));
    int *slots = model_alloc(m, (size_t)n_inputs * sizeof(*slots));
    op_attr *copied = model_alloc(m, (n_attrs + 1) * sizeof(*copied));
    if (!infos || !slots || !copied)
        return false;
    for (int k = 0; k < node->op.n_inputs + node->op.n_implicit; k++)
        if (node->input_slots[k] >= 0)
            g->readers[node->input_slots[k]]--;
    for (int k = 0; k < n_inputs; k++) {
        slots[k] = inputs[k];
        infos[k] = inputs[k] >= 0 ? &m->values[inputs[k]].info : NULL;
        if (inputs[k] >= 0)
            g->readers[inputs[k]]++;
    }
    if (n_attrs)
        memcpy(copied, attrs, n_attrs * sizeof(*copied));
    node->op.op_type = op_type;
    node->op.domain = "";
    node->op.version = version;
    node->op.n_inputs = n_inputs;
    node->op.n_implicit = 0;
    node->op.inputs = infos;
    node->op.n_outputs = 1;
    node->op.attrs = copied;
    node->op.n_attrs = n_attrs;
    node->input_slots = slots;
    node->def = def;
    return true;
}

void graph_view_compact(graph_view *g)
{
    ifd_model *m = g->m;
    size_t kept = 0;
    for (size_t n = 0; n < m->n_nodes; n++) {
        model_node *node = &m->nodes[n];
        if (g->removed[n]) {
            if (node->op.state && node->def && node->def->free_state)
                node->def->free_state(node->op.state);
            node->op.state = NULL;
            continue;
        }
        m->nodes[kept++] = *node;
    }
    m->n_nodes = kept;
    /* the view's indices are stale now: start it again */
    memset(g->removed, 0, (kept + 1) * sizeof(bool));
    for (size_t v = 0; v < m->n_values; v++)
        g->producer[v] = -1;
    for (size_t n = 0; n < m->n_nodes; n++)
        for (int k = 0; k < m->nodes[n].op.n_outputs; k++)
            g->producer[m->nodes[n].output_slots[k]] = (int)n;
}

void graph_drop_nodes(ifd_model *m, const bool *removed)
{
    size_t kept = 0;
    for (size_t i = 0; i < m->n_nodes; i++) {
        model_node *node = &m->nodes[i];
        if (removed[i]) {
            if (node->op.state && node->def && node->def->free_state)
                node->def->free_state(node->op.state);
            node->op.state = NULL;
            continue;
        }
        m->nodes[kept] = *node;
        for (int k = 0; k < node->op.n_outputs; k++)
            m->values[node->output_slots[k]].producer = (int)kept;
        kept++;
    }
    m->n_nodes = kept;
    for (size_t i = 0; i < m->n_values; i++)
        m->values[i].last_use = -1;
}

ifd_status graph_rewrite_from_end(ifd_model *m, const char *anchor,
                                  bool (*try_rewrite)(graph_view *g, int n), ifd_error *err)
{
    /* No view (three allocations) for a graph without the anchor: the
     * heap the session allocates from next stays as it was, and the digits
     * MLP's batch-1 run measured 1.04-1.10 us without the Gather pass's view
     * against 1.11-1.17 with it (5 alternated runs, taskset), though the
     * pass changed nothing in that graph. */
    bool anchored = false;
    for (size_t n = 0; n < m->n_nodes && !anchored; n++)
        anchored = !m->nodes[n].op.domain[0] && strcmp(m->nodes[n].op.op_type, anchor) == 0;
    if (!anchored)
        return IFD_OK;
    graph_view g;
    ifd_status st = graph_view_init(&g, m, err);
    if (st != IFD_OK)
        return st;
    bool changed = false;
    for (size_t n = m->n_nodes; n-- > 0;) {
        const op_node *op = &m->nodes[n].op;
        if (!g.removed[n] && !op->domain[0] && strcmp(op->op_type, anchor) == 0 &&
            op->n_inputs == 2 && op->n_outputs == 1)
            changed |= try_rewrite(&g, (int)n);
    }
    if (changed)
        graph_view_compact(&g);
    graph_view_free(&g);
    return IFD_OK;
}

/* ---- pass lists -------------------------------------------------------------- */

typedef struct graph_pass {
    const char *name;
    ifd_graph_opt level; /* the lowest level that runs it */
    ifd_status (*run)(ifd_model *m, ifd_error *err);
} graph_pass;

/* Rewrites on the unprepared graph, in order. LayerNormalization before Gelu
 * so that neither claims the other's nodes (they share none today). */
static const graph_pass before_prepare[] = {
    {"gather_through_transpose", IFD_GRAPH_OPT_BASIC, optimize_gather_through_transpose},
    {"recognize_layernorm", IFD_GRAPH_OPT_ALL, optimize_recognize_layernorm},
    {"recognize_gelu", IFD_GRAPH_OPT_ALL, optimize_recognize_gelu},
};

ifd_status optimize_before_prepare(ifd_model *m, ifd_error *err)
{
    for (size_t i = 0; i < sizeof(before_prepare) / sizeof(before_prepare[0]); i++) {
        if (m->graph_opt < before_prepare[i].level)
            continue;
        ifd_status st = before_prepare[i].run(m, err);
        if (st != IFD_OK)
            return st;
    }
    return IFD_OK;
}

ifd_status optimize_after_prepare(ifd_model *m, const bool *removed, ifd_error *err)
{
    graph_view g;
    ifd_status st = graph_view_init(&g, m, err);
    if (st != IFD_OK)
        return st;
    if (m->graph_opt >= IFD_GRAPH_OPT_BASIC) {
        for (size_t n = 0; removed && n < m->n_nodes; n++)
            if (removed[n])
                graph_view_remove(&g, (int)n);
        optimize_eliminate_dead_nodes(&g);
        optimize_release_unread_constants(&g);
    }
    graph_view_compact(&g);
    /* Kernel fusions need prepared nodes (shapes known, weights packed) and
     * the file's weights still there (Conv+BatchNormalization repacks them
     * scaled), so they run between dead-node elimination and the release of
     * packed constants. They remove the nodes they fold in: count again. */
    if (m->graph_opt >= IFD_GRAPH_OPT_ALL) {
        graph_view_free(&g);
        if ((st = optimize_fuse_kernels(m, err)) != IFD_OK ||
            (st = optimize_fuse_inverted_residual(m, err)) != IFD_OK ||
            (st = optimize_fuse_stacked_lstm(m, err)) != IFD_OK)
            return st;
        if ((st = graph_view_init(&g, m, err)) != IFD_OK)
            return st;
    }
    optimize_release_packed_constants(&g);
    graph_view_free(&g);
    return optimize_share_packed_weights(m, err);
}
