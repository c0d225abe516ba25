/*
 * optimize.h — the loader's graph optimiser: passes that rewrite a loaded
 * model so that it computes the same outputs with less work and memory.
 *
 * The passes run at three points of loading (loader.c), because what each
 * needs is known at different times:
 *   - before prepare: rewrites that need only the graph and its initializers
 *     (recognising LayerNormalization and Gelu spelled out in primitives), so
 *     that the operators they produce are prepared, and pre-pack their
 *     weights, like any other node;
 *   - during prepare: constant folding, node by node in execution order, so
 *     that every later node's prepare() sees the folded values as constants
 *     (a weight transposed by the graph is packed once at load);
 *   - after prepare: dead-node elimination, the kernel fusions (fuse_kernels.c:
 *     they need shapes and packed weights, and the file's weights to repack a
 *     folded BatchNormalization), then freeing constants no node reads any
 *     more and weights only their packed copy is read from, and letting
 *     products packed from equal weights share one copy.
 * optimize.c holds the pass lists per level and the graph bookkeeping the
 * passes share; each pass has its own file.
 */
#ifndef INFERD_ENGINE_OPTIMIZE_H
#define INFERD_ENGINE_OPTIMIZE_H

#include "../model.h"

/* DEFAULT means ALL. */
ifd_graph_opt optimize_level(ifd_graph_opt requested);

/* ---- shared bookkeeping --------------------------------------------------- */

/* Who produces and who reads each value of a model, and which nodes a pass
 * has removed. Passes that rewrite keep it current for the nodes they touch. */
typedef struct graph_view {
    ifd_model *m;
    int *producer; /* per value slot: index into m->nodes, -1 for none */
    int *readers;  /* per value slot: node inputs reading it, +1 if a graph output */
    bool *removed; /* per node */
} graph_view;

ifd_status graph_view_init(graph_view *g, ifd_model *m, ifd_error *err);
void graph_view_free(graph_view *g);
/* Mark node n removed and stop counting its reads. */
void graph_view_remove(graph_view *g, int n);
/* The live node producing `slot` if it is an ai.onnx `op_type` node whose
 * output is read exactly `reads` times in all, else -1. */
int graph_view_sole_producer(const graph_view *g, int slot, const char *op_type, int reads);
/* The constant slot holds, seen through Identity nodes (torch writes a
 * weight shared by several layers as Identity(initializer)), or -1. */
int graph_view_constant(const graph_view *g, int slot);
/* True when slot is a one-element float constant within rel_tol of want. */
bool graph_value_is_scalar(const ifd_model *m, int slot, double want, double rel_tol);
/* Drop removed nodes (freeing their operator state) and close the gaps,
 * keeping execution order. */
void graph_view_compact(graph_view *g);
/* Drop the nodes marked in removed (freeing their state), keep the rest in
 * order, point each value at its producer's new index and clear the
 * values' last use for the planner to compute again: how a fusion pass that
 * kept its own marks ends. */
void graph_drop_nodes(ifd_model *m, const bool *removed);

/* ---- passes --------------------------------------------------------------- */

/* Before prepare, at BASIC and ALL: a Gather of one slice out of a
 * Transpose reads the Transpose's input (gather_through_transpose.c). */
ifd_status optimize_gather_through_transpose(ifd_model *m, ifd_error *err);
/* Before prepare, at level ALL. */
ifd_status optimize_recognize_gelu(ifd_model *m, ifd_error *err);
ifd_status optimize_recognize_layernorm(ifd_model *m, ifd_error *err);
/* Turn node n into a `op_type` node of ai.onnx schema `version` reading
 * `inputs` (slots) with `attrs`, keeping its first output; false when the
 * engine has no such operator or memory ran out. */
bool graph_view_rewrite(graph_view *g, int n, const char *op_type, int version,
                        const int *inputs, int n_inputs, const op_attr *attrs, size_t n_attrs);
/* The driver of a pattern-recognition pass: every live ai.onnx `anchor` node
 * with two inputs and one output, last first (so a pattern's outermost node
 * is met before the inner ones it would otherwise be mistaken for), given to
 * try_rewrite; the graph is compacted when one succeeded. */
ifd_status graph_rewrite_from_end(ifd_model *m, const char *anchor,
                                  bool (*try_rewrite)(graph_view *g, int n), ifd_error *err);

/* Constant folding (fold_constants.c), at BASIC and ALL: call
 * constant_folder_node after node n is prepared; true if it was folded (its
 * outputs are constants now and the node is to be removed). */
typedef struct constant_folder {
    ifd_model *m;
    ifd_session *session; /* made on first use */
    bool in_subgraph; /* Loop bodies see shapes that change per iteration */
    bool unavailable;
    size_t folded;
    /* per value slot, made on first use: the index of the Shape node that
     * computes it when that Shape could not fold (an input dimension is
     * only known at run time), else -1; a Gather of its known entries
     * folds */
    int *shape_node;
} constant_folder;
bool constant_folder_node(constant_folder *f, size_t n);
void constant_folder_end(constant_folder *f);

/* After prepare, at ALL, after the kernel fusions: MobileNetV2's
 * inverted-residual blocks become one node computed in bands of rows
 * (fuse_inverted_residual.c). Leaves last_use at -1 like the fusions. */
ifd_status optimize_fuse_inverted_residual(ifd_model *m, ifd_error *err);
/* After prepare, at ALL: LSTM -> Squeeze -> LSTM becomes one StackedLSTM
 * node, run as a pipeline of the two layers at 2 threads
 * (fuse_stacked_lstm.c). */
ifd_status optimize_fuse_stacked_lstm(ifd_model *m, ifd_error *err);

/* After prepare, at BASIC and ALL. */
void optimize_eliminate_dead_nodes(graph_view *g);
void optimize_release_unread_constants(graph_view *g);
/* After prepare, at every level: memory, not the graph. */
void optimize_release_packed_constants(graph_view *g);
/* Gemm/MatMul nodes whose packed weights are equal hold one copy
 * (share_packed.c). */
ifd_status optimize_share_packed_weights(ifd_model *m, ifd_error *err);
/* The same during prepare: packed_sharer_node after node n's prepare()
 * shares its packed weight with an earlier node's equal one, freeing its
 * own at once. Node indices must not move until packed_sharer_free. */
typedef struct packed_entry packed_entry;
typedef struct packed_sharer {
    packed_entry *entries;
    size_t count, capacity;
} packed_sharer;
ifd_status packed_sharer_node(packed_sharer *s, ifd_model *m, size_t n, ifd_error *err);
void packed_sharer_free(packed_sharer *s);
/* During prepare, after node n's: `readers` counts each value's reads
 * (graph outputs included). */
/* Returns the bytes of weight data it freed or gave back. */
size_t optimize_release_packed_inputs(ifd_model *m, size_t n, const int *readers);

/* The loader's three entry points. `removed` (m->n_nodes entries) marks the
 * nodes folded during prepare. */
ifd_status optimize_before_prepare(ifd_model *m, ifd_error *err);
ifd_status optimize_after_prepare(ifd_model *m, const bool *removed, ifd_error *err);

#endif /* INFERD_ENGINE_OPTIMIZE_H */
