/*
 * gather_through_transpose.c — a Gather of one slice (a scalar constant
 * index) out of a Transpose's output reads the Transpose's input instead:
 *
 *   Z = Gather(Transpose(X, perm), i, axis=a)  ==  Gather(X, i, axis=perm[a])
 *
 * up to the order of Z's axes, which is perm without a, each axis renumbered
 * for X's axis perm[a] being gone. When that order is the identity (torch's
 * `out[:, -1, :]` of a sequence-first LSTM: perm [1, 0, 2], axis 1) the
 * Transpose goes away and the Gather copies one slice instead of the
 * Transpose copying all of them; otherwise the Gather runs first and a
 * Transpose of the one slice follows. The index is untouched: the gathered
 * axis has the same length in X as in the Transpose's output, so a negative
 * index still counts from its end. Only a Transpose whose output the Gather
 * alone reads, with an explicit valid perm, is rewritten.
 */
#include <string.h>

#include "optimize.h"

static bool is_scalar_int_constant(const graph_view *g, int slot)
{
    int c = graph_view_constant(g, slot);
    if (c < 0)
        return false;
    const ifd_tensor *t = &g->m->values[c].constant_storage;
    return t->rank == 0 && t->data && (t->dtype == IFD_INT64 || t->dtype == IFD_INT32);
}

static bool is_permutation(const int64_t *perm, size_t rank)
{
    bool seen[IFD_MAX_RANK] = {false};
    if (rank < 1 || rank > IFD_MAX_RANK)
        return false;
    for (size_t k = 0; k < rank; k++) {
        if (perm[k] < 0 || perm[k] >= (int64_t)rank || seen[perm[k]])
            return false;
        seen[perm[k]] = true;
    }
    return true;
}

static bool try_gather_through_transpose(graph_view *g, int gather)
{
    ifd_model *m = g->m;
    const int *gin = m->nodes[gather].input_slots;
    int transpose = graph_view_sole_producer(g, gin[0], "Transpose", 1);
    if (transpose < 0 || m->nodes[transpose].op.n_inputs != 1 || gin[1] < 0 ||
        !is_scalar_int_constant(g, gin[1]))
        return false;
    const int64_t *perm;
    size_t rank = op_attr_ints(&m->nodes[transpose].op, "perm", &perm);
    int64_t axis = op_attr_int(&m->nodes[gather].op, "axis", 0);
    if (!is_permutation(perm, rank) || axis < -(int64_t)rank || axis >= (int64_t)rank)
        return false;
    if (axis < 0)
        axis += (int64_t)rank;
    int64_t gathered = perm[axis];
    int64_t rest[IFD_MAX_RANK];
    bool identity = true;
    for (size_t k = 0, j = 0; k < rank; k++) {
        if ((int64_t)k == axis)
            continue;
        rest[j] = perm[k] - (perm[k] > gathered);
        identity &= rest[j] == (int64_t)j;
        j++;
    }
    int x = m->nodes[transpose].input_slots[0];
    int gather_version = m->nodes[gather].op.version;
    int transpose_version = m->nodes[transpose].op.version;
    op_attr gather_axis = {.name = "axis", .type = OP_ATTR_INT, .i = gathered};
    int gather_inputs[2] = {x, gin[1]};
    if (identity) {
        if (!graph_view_rewrite(g, gather, "Gather", gather_version, gather_inputs, 2, &gather_axis, 1))
            return false;
        graph_view_remove(g, transpose);
        return true;
    }
    /* The Transpose's node becomes the Gather, its output the slice (whose
     * shape prepare() sets anew), and the Gather's node, which reads that
     * slot already, the smaller Transpose: execution order still has
     * producers first. Everything that can fail comes before the first
     * change, so a failure leaves the graph as it was. */
    model_node *last = &m->nodes[gather];
    const op_def *transpose_def = op_registry_find("", "Transpose", transpose_version);
    int64_t *rest_perm = model_alloc(m, (rank - 1) * sizeof(*rest_perm));
    op_attr *transpose_perm = model_alloc(m, sizeof(*transpose_perm));
    if (!transpose_def || !rest_perm || !transpose_perm || x < 0 ||
        !graph_view_rewrite(g, transpose, "Gather", gather_version, gather_inputs, 2, &gather_axis, 1))
        return false;
    memcpy(rest_perm, rest, (rank - 1) * sizeof(*rest_perm));
    *transpose_perm = (op_attr){.name = "perm", .type = OP_ATTR_INTS, .count = rank - 1, .ints = rest_perm};
    g->readers[gin[1]]--;
    last->op.op_type = "Transpose";
    last->op.version = transpose_version;
    last->op.n_inputs = 1;
    last->op.attrs = transpose_perm;
    last->op.n_attrs = 1;
    last->def = transpose_def;
    m->values[last->input_slots[0]].info.rank = -1;
    return true;
}

ifd_status optimize_gather_through_transpose(ifd_model *m, ifd_error *err)
{
    return graph_rewrite_from_end(m, "Gather", try_gather_through_transpose, err);
}
