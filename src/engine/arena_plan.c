/*
 * arena_plan.c — places every intermediate tensor whose size is known at
 * load in one block per session (the arena), at offsets planned once, so
 * that a run with static shapes takes no buffer from the allocator and a
 * session holds only as much as the values alive at once need.
 *
 * Each planned value lives from its producer to its last reader (both
 * inclusive: an operator reads its inputs while it writes its outputs). The
 * plan is greedy by size, largest first, each value at the lowest offset
 * free of every already placed value whose life overlaps (the "greedy by
 * size" of TFLite's and ggml-alloc's planners): simple, and within a few
 * percent of the live-set peak on feed-forward graphs.
 *
 * Shapes prepare() inferred can be wrong only by being unknown; still, the
 * session checks each output against its planned size and takes a pooled
 * buffer when it does not fit (a Loop body's shapes are the first
 * iteration's), so the plan is an optimisation, never a correctness matter.
 * Graph outputs, strings and unknown shapes are not planned: outputs move to
 * the caller, strings own their elements.
 *
 * Before placing, plan_views picks the values that need no buffer at all:
 * output 0 of Reshape, Flatten, Squeeze, Unsqueeze, Identity and Dropout is
 * its input's bytes under other dims, so the session hands it out as a view
 * of the input (op_output_view) instead of copying. A transformer does about
 * ten such copies per layer between its MatMuls. The view is chosen here by
 * operator kind, so it holds for any run-time shape; it is safe because no
 * operator writes into a buffer it did not get from op_output (inputs are
 * const), and a buffer is only reused once it is free: the viewed value (the
 * root of a chain of views) keeps its buffer, in the pool and in the arena,
 * until the last reader of any of its views (buffer_last_use). A view is
 * never a graph output (the caller owns those) nor a string tensor.
 */
#include <stdlib.h>
#include <string.h>

#include "model.h"

#define ARENA_ALIGN 64
/* greedy placement is quadratic in the values alive at once; past this
 * many planned values the session keeps its buffer pool instead */
#define ARENA_MAX_VALUES 20000

typedef struct planned {
    int slot;
    int first, last; /* node indices */
    size_t bytes;
    size_t offset;
} planned;

static int by_size_descending(const void *a, const void *b)
{
    const planned *x = a, *y = b;
    if (x->bytes != y->bytes)
        return x->bytes < y->bytes ? 1 : -1;
    return x->first - y->first;
}

static int by_offset(const void *a, const void *b)
{
    const planned *x = *(const planned *const *)a, *y = *(const planned *const *)b;
    return x->offset < y->offset ? -1 : x->offset > y->offset;
}

/* The operators whose output 0 is input 0's bytes unchanged (ops/shape.c,
 * emit_reshaped). By the implementation bound, not the node's name, so that
 * a rewritten node keeps its copy. */
static bool shares_input_bytes(const model_node *node)
{
    static const char *const kinds[] = {"Reshape", "Flatten", "Squeeze", "Unsqueeze",
                                        "Identity", "Dropout"};
    if (!node->def || !node->def->domain || node->def->domain[0])
        return false;
    for (size_t k = 0; k < sizeof(kinds) / sizeof(kinds[0]); k++)
        if (strcmp(node->def->op_type, kinds[k]) == 0)
            return true;
    return false;
}

static bool plain_tensor(const model_value *v)
{
    return v->info.kind == IFD_VALUE_TENSOR && v->info.dtype != IFD_STRING;
}

static void plan_views(ifd_model *m)
{
    free(m->view_of);
    free(m->buffer_last_use);
    m->view_of = NULL;
    m->buffer_last_use = NULL;
    int *view_of = malloc((m->n_values + 1) * sizeof(*view_of));
    int *until = malloc((m->n_values + 1) * sizeof(*until));
    size_t n_views = 0;
    if (!view_of || !until)
        goto done; /* no views: every Reshape copies */
    for (size_t v = 0; v < m->n_values; v++) {
        view_of[v] = -1;
        until[v] = m->values[v].last_use;
    }
    for (size_t i = 0; i < m->n_nodes; i++) {
        const model_node *node = &m->nodes[i];
        if (!shares_input_bytes(node) || node->op.n_inputs < 1 || node->op.n_outputs < 1 ||
            node->input_slots[0] < 0)
            continue;
        int in = node->input_slots[0], out = node->output_slots[0];
        const model_value *vin = &m->values[in], *vout = &m->values[out];
        if (in == out || vout->origin != VALUE_INTERMEDIATE || vout->is_graph_output ||
            !plain_tensor(vin) || !plain_tensor(vout) || vin->info.dtype != vout->info.dtype)
            continue;
        /* nodes run in order, so in's own root is known already */
        view_of[out] = view_of[in] >= 0 ? view_of[in] : in;
        n_views++;
    }
    for (size_t v = 0; v < m->n_values; v++) {
        int root = view_of[v];
        if (root >= 0 && until[v] > until[root])
            until[root] = until[v];
    }
    if (n_views) {
        m->view_of = view_of;
        m->buffer_last_use = until;
        view_of = NULL;
        until = NULL;
    }
done:
    free(view_of);
    free(until);
}

void plan_arena(ifd_model *m)
{
    plan_views(m);
    free(m->arena_offset);
    free(m->arena_size);
    m->arena_offset = NULL;
    m->arena_size = NULL;
    m->arena_bytes = 0;
    size_t n = 0;
    planned *values = malloc((m->n_values + 1) * sizeof(*values));
    /* the placed values, then room for the ones overlapping the next */
    const planned **placed = malloc(2 * (m->n_values + 1) * sizeof(*placed));
    size_t *offsets = malloc((m->n_values + 1) * sizeof(*offsets));
    size_t *sizes = calloc(m->n_values + 1, sizeof(*sizes));
    if (!values || !placed || !offsets || !sizes)
        goto done; /* no plan: the session's pool serves every output */
    for (size_t v = 0; v < m->n_values; v++)
        offsets[v] = SIZE_MAX;
    for (size_t i = 0; i < m->n_nodes; i++) {
        const model_node *node = &m->nodes[i];
        for (int k = 0; k < node->op.n_outputs; k++) {
            int slot = node->output_slots[k];
            const model_value *mv = &m->values[slot];
            const value_info *info = &mv->info;
            size_t bytes;
            bool known = info->kind == IFD_VALUE_TENSOR && info->dtype != IFD_STRING &&
                         info->rank >= 0;
            for (int d = 0; known && d < info->rank; d++)
                known = info->dims[d] >= 0;
            if (!known || mv->origin != VALUE_INTERMEDIATE || mv->is_graph_output ||
                (m->view_of && m->view_of[slot] >= 0) ||
                !shape_bytes(info->dtype, info->rank, info->dims, &bytes) ||
                bytes > SIZE_MAX / 2)
                continue;
            bytes = (bytes + ARENA_ALIGN - 1) / ARENA_ALIGN * ARENA_ALIGN;
            if (bytes == 0)
                bytes = ARENA_ALIGN; /* outputs always get a buffer (op_output) */
            /* a viewed value lives until its views' last reader too */
            int last = m->buffer_last_use ? m->buffer_last_use[slot] : mv->last_use;
            values[n++] = (planned){slot, (int)i, last > (int)i ? last : (int)i, bytes, 0};
        }
    }
    if (n == 0 || n > ARENA_MAX_VALUES)
        goto done;
    qsort(values, n, sizeof(*values), by_size_descending);
    size_t n_placed = 0, total = 0;
    for (size_t i = 0; i < n; i++) {
        planned *p = &values[i];
        /* the overlapping values, by offset: take the first gap that fits */
        size_t n_live = 0;
        const planned **live = placed + n_placed; /* scratch after the placed list */
        for (size_t j = 0; j < n_placed; j++)
            if (placed[j]->first <= p->last && p->first <= placed[j]->last)
                live[n_live++] = placed[j];
        qsort(live, n_live, sizeof(*live), by_offset);
        size_t at = 0;
        for (size_t j = 0; j < n_live; j++) {
            if (live[j]->offset >= at + p->bytes)
                break;
            if (live[j]->offset + live[j]->bytes > at)
                at = live[j]->offset + live[j]->bytes;
        }
        if (at > SIZE_MAX / 2)
            goto done;
        p->offset = at;
        placed[n_placed++] = p;
        if (at + p->bytes > total)
            total = at + p->bytes;
    }
    /* the arena is one allocation of each session: refuse a plan no session
     * could make (the pool then fails with the operator's own message) */
    if (total > IFD_MAX_TENSOR_BYTES)
        goto done;
    for (size_t i = 0; i < n; i++) {
        offsets[values[i].slot] = values[i].offset;
        sizes[values[i].slot] = values[i].bytes;
    }
    m->arena_offset = offsets;
    m->arena_size = sizes;
    m->arena_bytes = total;
    offsets = NULL;
    sizes = NULL;
done:
    free(values);
    free(placed);
    free(offsets);
    free(sizes);
}
