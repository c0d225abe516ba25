/*
 * optimize/share_packed.c — packs each distinct weight once per model.
 *
 * Gemm and MatMul pack their constant B in prepare, one copy per node. When
 * several nodes multiply by the same weight — torch exports a
 * TransformerEncoder's layers (deep copies of one layer) as one initializer
 * per weight read through an Identity per layer — that is one packed copy
 * per reader. The loader hands each node to a packed_sharer right after its
 * prepare, which finds an earlier node whose packed B is byte for byte equal
 * (same shape, then a hash, then the bytes) and lets the two hold one copy
 * (ops/fusable.h): the duplicate is freed before the next node packs, so the
 * load never holds a weight's packed copy more than twice. After prepare the
 * same comparison runs over the final graph (fusions may have repacked).
 * The outputs cannot change: the bytes every product reads are the same as
 * before. It runs at every optimisation level, since it changes memory, not
 * the graph.
 */
#include <stdlib.h>

#include "optimize.h"

#include "../ops/fusable.h"

struct packed_entry {
    size_t node, k, n;
    uint64_t hash;
    bool hashed;
};

static uint64_t entry_hash(ifd_model *m, packed_entry *e)
{
    if (!e->hashed) {
        e->hash = product_packed_b_hash(&m->nodes[e->node].op);
        e->hashed = true;
    }
    return e->hash;
}

ifd_status packed_sharer_node(packed_sharer *s, ifd_model *m, size_t node, ifd_error *err)
{
    size_t k, n;
    if (!product_packed_b(&m->nodes[node].op, &k, &n))
        return IFD_OK;
    if (s->count == s->capacity) {
        size_t cap = s->capacity ? 2 * s->capacity : 16;
        packed_entry *grown = realloc(s->entries, cap * sizeof(*grown));
        if (!grown) {
            set_error(err, "out of memory sharing packed weights");
            return IFD_ERR_NO_MEMORY;
        }
        s->entries = grown;
        s->capacity = cap;
    }
    packed_entry *e = &s->entries[s->count++];
    *e = (packed_entry){node, k, n, 0, false};
    /* only weights with a same-shaped peer are hashed; linear in the
     * products per product, which number in the hundreds */
    for (size_t i = 0; i + 1 < s->count; i++) {
        packed_entry *peer = &s->entries[i];
        if (peer->k != k || peer->n != n || entry_hash(m, peer) != entry_hash(m, e))
            continue;
        if (product_share_packed_b(&m->nodes[peer->node].op, &m->nodes[node].op))
            break;
    }
    return IFD_OK;
}

void packed_sharer_free(packed_sharer *s)
{
    free(s->entries);
    *s = (packed_sharer){0};
}

ifd_status optimize_share_packed_weights(ifd_model *m, ifd_error *err)
{
    packed_sharer s = {0};
    ifd_status st = IFD_OK;
    for (size_t i = 0; i < m->n_nodes && st == IFD_OK; i++)
        st = packed_sharer_node(&s, m, i, err);
    packed_sharer_free(&s);
    return st;
}
