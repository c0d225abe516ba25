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
#include <stdlib.h>

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
            !value->viewed && value->constant_storage.data)
            tensor_release(&value->constant_storage);
    }
}

/* Weights an operator packed at load are held twice: as read from the file
 * and in the operator's layout. When every reader of a constant packed it
 * (op_constant_packed), only the packed copy is ever read again: free the
 * data and keep the dtype and shape, which run() still checks. */
static size_t release_constant_data(ifd_model *m, model_value *value)
{
    if (value->origin != VALUE_CONSTANT || value->is_graph_output || value->viewed)
        return 0;
    const ifd_tensor *t = &value->constant_storage;
    size_t bytes = (size_t)ifd_tensor_count(t) * ifd_dtype_size(t->dtype);
    /* owned data is freed; a weight read in place from the mapped model
     * file gives its pages back */
    return model_release_constant_data(m, &value->constant_storage) ? bytes : 0;
}

static int compare_data(const void *a, const void *b)
{
    const void *x = (*(model_value *const *)a)->constant_storage.data;
    const void *y = (*(model_value *const *)b)->constant_storage.data;
    return (uintptr_t)x < (uintptr_t)y ? -1 : (uintptr_t)x > (uintptr_t)y;
}

/* Folding an Identity or Reshape of a weight makes its output a view of the
 * weight's bytes (fold_constants.c), which pins the weight: torch reads a
 * TransformerEncoder's shared weights through an Identity per layer, so the
 * weights stayed next to their packed copies (the 4-layer bench encoder
 * held 3 MiB twice). Constants sharing one data pointer are released
 * together once every one of them is read only through packed copies. */
static void release_packed_views(ifd_model *m, const bool *all_packed)
{
    model_value **held = malloc((m->n_values + 1) * sizeof(*held));
    size_t n = 0;
    if (!held)
        return; /* memory only: keep them */
    for (size_t v = 0; v < m->n_values; v++)
        if (m->values[v].origin == VALUE_CONSTANT && m->values[v].constant_storage.data)
            held[n++] = &m->values[v];
    qsort(held, n, sizeof(*held), compare_data);
    for (size_t first = 0, end; first < n; first = end) {
        const void *data = held[first]->constant_storage.data;
        bool releasable = true, viewed = false;
        size_t owner = first;
        for (end = first; end < n && held[end]->constant_storage.data == data; end++) {
            size_t slot = (size_t)(held[end] - m->values);
            releasable &= all_packed[slot] && !held[end]->is_graph_output;
            viewed |= held[end]->viewed;
            if (held[end]->constant_storage.owns_data)
                owner = end;
        }
        /* a group of one was handled by the caller's pass */
        if (end - first < 2 || !viewed || !releasable ||
            !model_release_constant_data(m, &held[owner]->constant_storage))
            continue;
        for (size_t i = first; i < end; i++) {
            held[i]->constant_storage.data = NULL;
            held[i]->constant_storage.capacity = 0;
            held[i]->constant_storage.owns_data = 0;
            held[i]->viewed = false;
        }
    }
    free(held);
}

void optimize_release_packed_constants(graph_view *g)
{
    ifd_model *m = g->m;
    bool *all_packed = malloc((m->n_values + 1) * sizeof(bool));
    if (!all_packed)
        return; /* an optimisation of memory only: keep both copies */
    for (size_t v = 0; v < m->n_values; v++)
        all_packed[v] = true;
    for (size_t n = 0; n < m->n_nodes; n++) {
        const model_node *node = &m->nodes[n];
        if (g->removed[n])
            continue;
        for (int k = 0; k < node->op.n_inputs + node->op.n_implicit; k++) {
            int slot = node->input_slots[k];
            bool packed = k < node->op.n_inputs && k < 32 && (node->op.packed_inputs >> k & 1u);
            if (slot >= 0 && !packed)
                all_packed[slot] = false;
        }
    }
    for (size_t v = 0; v < m->n_values; v++)
        if (all_packed[v] && g->readers[v] > 0)
            release_constant_data(m, &m->values[v]);
    release_packed_views(m, all_packed);
    free(all_packed);
}

/* The same, right after node n's prepare() for the constants it alone reads,
 * so that a model never holds all its weights twice while it loads (each
 * weight is freed as soon as its packed copy exists). */
size_t optimize_release_packed_inputs(ifd_model *m, size_t n, const int *readers)
{
    const model_node *node = &m->nodes[n];
    size_t released = 0;
    for (int k = 0; k < node->op.n_inputs && k < 32; k++) {
        int slot = node->input_slots[k];
        if (slot >= 0 && (node->op.packed_inputs >> k & 1u) && readers[slot] == 1)
            released += release_constant_data(m, &m->values[slot]);
    }
    return released;
}
