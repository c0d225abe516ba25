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
 */
#include <stdlib.h>

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

void plan_arena(ifd_model *m)
{
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
                !shape_bytes(info->dtype, info->rank, info->dims, &bytes) ||
                bytes > SIZE_MAX / 2)
                continue;
            bytes = (bytes + ARENA_ALIGN - 1) / ARENA_ALIGN * ARENA_ALIGN;
            if (bytes == 0)
                bytes = ARENA_ALIGN; /* outputs always get a buffer (op_output) */
            values[n++] = (planned){slot, (int)i, mv->last_use > (int)i ? mv->last_use : (int)i,
                                    bytes, 0};
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
