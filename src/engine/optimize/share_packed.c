/*
 * optimize/share_packed.c — packs each distinct weight once per model.
 *
 * Gemm and MatMul pack their constant B in prepare, one copy per node. When
 * several nodes multiply by the same weight — torch exports a
 * TransformerEncoder's layers (deep copies of one layer) as one initializer
 * per weight read through an Identity per layer — that is one packed copy
 * per reader. After prepare this pass finds the nodes whose packed B are
 * byte for byte equal (same shape, then a hash, then the bytes) and lets
 * them hold one copy (ops/fusable.h). The outputs cannot change: the bytes
 * every product reads are the same as before. It runs at every optimisation
 * level, since it changes memory, not the graph.
 */
#include <stdlib.h>

#include "optimize.h"

#include "../ops/fusable.h"

typedef struct packed_entry {
    size_t node, k, n;
    uint64_t hash;
    bool hashed;
} packed_entry;

ifd_status optimize_share_packed_weights(ifd_model *m, ifd_error *err)
{
    packed_entry *e = malloc((m->n_nodes ? m->n_nodes : 1) * sizeof(*e));
    if (!e) {
        set_error(err, "out of memory sharing packed weights");
        return IFD_ERR_NO_MEMORY;
    }
    size_t count = 0;
    for (size_t i = 0; i < m->n_nodes; i++) {
        size_t k, n;
        if (product_packed_b(&m->nodes[i].op, &k, &n))
            e[count++] = (packed_entry){i, k, n, 0, false};
    }
    /* pairs by shape first, so that only weights with a same-shaped peer
     * are hashed; quadratic in the products, which number in the hundreds */
    for (size_t a = 0; a < count; a++)
        for (size_t b = a + 1; b < count; b++) {
            if (e[a].k != e[b].k || e[a].n != e[b].n)
                continue;
            for (size_t x = a; x <= b; x += b - a) {
                if (!e[x].hashed) {
                    e[x].hash = product_packed_b_hash(&m->nodes[e[x].node].op);
                    e[x].hashed = true;
                }
            }
            if (e[a].hash == e[b].hash)
                product_share_packed_b(&m->nodes[e[a].node].op, &m->nodes[e[b].node].op);
        }
    free(e);
    return IFD_OK;
}
