/*
 * dead_nodes.c — removes what no output depends on: nodes none of whose
 * outputs is read (after folding, the nodes that only computed a folded
 * value's inputs are among them) and the constants no remaining node reads.
 *
 * Removing nodes in reverse execution order frees a whole dead chain in one
 * sweep: a node's readers all come after it, so by the time it is visited
 * every reader that will go has gone. No ONNX operator has side effects at
 * inference, so an unread node can always go; a graph output counts as a read.
 */
#include "optimize.h"

void optimize_eliminate_dead_nodes(graph_view *g)
{
    ifd_model *m = g->m;
    for (size_t n = m->n_nodes; n-- > 0;) {
        if (g->removed[n])
            continue;
        const model_node *node = &m->nodes[n];
        bool read = false;
        for (int k = 0; k < node->op.n_outputs && !read; k++)
            read = g->readers[node->output_slots[k]] > 0;
        if (!read)
            graph_view_remove(g, (int)n);
    }
}

/* A weight the graph only transposed or reshaped at load is held twice
 * after folding, once as read from the file and once folded: free the first. */
void optimize_release_unread_constants(graph_view *g)
{
    ifd_model *m = g->m;
    for (size_t v = 0; v < m->n_values; v++) {
        model_value *value = &m->values[v];
        if (value->origin == VALUE_CONSTANT && g->readers[v] == 0 && !value->is_graph_output &&
            value->constant_storage.data)
            tensor_release(&value->constant_storage);
    }
}
