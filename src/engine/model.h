/*
 * model.h — the engine's internal picture of a loaded model and of a session.
 *
 * A model is a list of values (every tensor name of the graph gets one slot)
 * and a list of nodes in execution order, each bound to its operator
 * implementation. The loader (loader.c) builds it from the ModelProto and
 * plans it; sessions (session.c) execute it.
 */
#ifndef INFERD_ENGINE_MODEL_H
#define INFERD_ENGINE_MODEL_H

#include "op.h"

typedef enum value_origin {
    VALUE_INTERMEDIATE = 0,
    VALUE_GRAPH_INPUT,  /* bound by the caller at run time */
    VALUE_CONSTANT      /* initializer or Constant node output, owned by the model */
} value_origin;

typedef struct model_value {
    value_info info;
    value_origin origin;
    ifd_tensor constant_storage; /* VALUE_CONSTANT */
    int producer;                /* node index, -1 for inputs and constants */
    int last_use;                /* last node index reading it, -1 if none */
    bool is_graph_output;
    /* a folded Identity/Reshape/... of this constant views its data: the
     * data must live as long as the model (never released early) */
    bool viewed;
    /* a weight not copied from the mapped file yet (pb_tensor_materialize):
     * constant_storage has its dtype and shape, data NULL */
    const uint8_t *deferred_raw;
} model_value;

typedef struct model_node {
    op_node op;
    const op_def *def;
    int *input_slots;  /* -1 for omitted inputs */
    int *output_slots;
} model_node;

typedef struct model_io {
    ifd_io_info info;
    int slot;
} model_io;

/* A graph attribute of a node, loaded as a model of its own. Its inputs are
 * first its n_formal declared inputs, then n_captures values of enclosing
 * graphs it reads by name (ONNX's outer scope), which the owning node
 * carries as implicit inputs first_implicit.. of its own. */
struct subgraph {
    ifd_model *model;
    const char *attr_name;
    int n_formal;
    int n_captures;
    int first_implicit;
    const value_info **capture_outer; /* the enclosing graph's info of each capture */
    const void *graph_proto;          /* valid during load only (prepare) */
    const char *base_dir;
    bool prepared;
};

struct ifd_model {
    char *path;
    int64_t ir_version;
    char *producer_name;
    char *producer_version;
    char *graph_name;
    size_t n_opsets;
    ifd_opset *opsets;

    size_t n_values;
    model_value *values;
    size_t n_nodes;
    model_node *nodes;   /* in execution order */
    size_t n_inputs;
    model_io *inputs;    /* graph inputs that are not initializers */
    size_t n_outputs;
    model_io *outputs;

    size_t n_op_counts;
    ifd_op_count *op_counts;
    size_t n_unsupported;
    ifd_unsupported_op *unsupported;
    bool runnable;
    /* arena_plan.c: per value slot, its offset in a session's arena
     * (SIZE_MAX: not planned) and planned bytes; NULL when nothing is */
    size_t *arena_offset;
    size_t *arena_size;
    size_t arena_bytes;
    /* arena_plan.c (plan_views): per value slot, the slot whose buffer it
     * views (an output of the Reshape family sharing its input's bytes),
     * -1 for a value with its own; and the last node that reads the value
     * or any view of it, after which its buffer may be reused. NULL when
     * no value is a view (each buffer then goes after its last_use). */
    int *view_of;
    int *buffer_last_use;
    ifd_graph_opt graph_opt; /* the level the loader applied (never DEFAULT);
                                subgraphs take their owner's */

    ifd_tensor **attr_tensors; /* decoded TENSOR attributes, owning their data */
    size_t n_attr_tensors;
    /* ifd_model_load_file maps the model file read-only (MAP_PRIVATE) and
     * lets aligned weights point into it (constant_storage with owns_data
     * 0). The outermost model owns the mapping and unmaps it when freed;
     * its subgraph models carry the same range to recognise such weights. */
    const uint8_t *map_base;
    size_t map_len;
    bool owns_map;
    ifd_model **subgraph_models; /* every subgraph's model, owned */
    size_t n_subgraph_models;
    /* every block the model owns (names, attribute arrays), freed together */
    void **blocks;
    size_t n_blocks, cap_blocks;
};

/* Zeroed memory owned by the model, freed with it (loader.c); NULL when out
 * of memory. For load-time passes that grow a node's arrays. */
void *model_alloc(ifd_model *m, size_t bytes);

/* Recursively free what a value owns and zero it (the struct itself stays). */
void value_clear(ifd_value *value);
/* Deep copy of any value kind into a new value. */
ifd_status value_clone(const ifd_value *src, ifd_value **out, ifd_error *err);

/* Decoding shared by the loader and ifd_value_decode_pb (pb.c). The opaque
 * pointers are protobuf-c messages (Onnx__TensorProto and friends) so that
 * callers of this header need not include the generated code. */
ifd_status pb_tensor_to_ifd(const void *tensor_proto, const char *base_dir, ifd_tensor *out,
                            ifd_error *err);

/* Whether data points into the model file's mapping (loader.c). */
bool model_maps(const ifd_model *m, const void *data);
/* Free a constant's data, or give its mapped pages back to the page cache,
 * keeping its dtype and shape (which run() still checks), for a constant no
 * operator reads any more. false (nothing done) for a view of another
 * value's memory, which its owner releases. */
bool model_release_constant_data(ifd_model *m, ifd_tensor *t);

/* Make v a constant holding t (taking ownership), its info t's type. */
void value_set_constant(model_value *v, const ifd_tensor *t);
/* Plan the session arena of a prepared model (arena_plan.c). */
void plan_arena(ifd_model *m);
/* A block owned by the model, zeroed, freed with it (loader.c). */
void *model_alloc(ifd_model *m, size_t bytes);

/* Run node n of a prepared model once, at load, on inputs that are all
 * constants (constant folding, optimize/fold_constants.c). outputs[k]
 * receive owned tensors. Refuses (without touching the model) a node whose
 * outputs are not tensors or would take more than max_bytes each. */
ifd_status session_run_node_once(ifd_session *s, size_t n, size_t max_bytes, ifd_tensor *outputs,
                                 ifd_error *err);

/* How many buffers the session's pool has had to allocate so far; after a
 * first run with static shapes, a run adds only the graph outputs it hands
 * to the caller (tests assert it). */
size_t session_buffer_allocations(const ifd_session *session);

void set_error(ifd_error *err, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* Load-time preparation of a subgraph (loader.c), for op_subgraph_prepare. */
ifd_status subgraph_prepare(subgraph *sg, const value_info *const *inputs, int n_inputs,
                            ifd_error *err);
/* A session running a subgraph inside a parent session, sharing its threads
 * and limits (session.c). */
ifd_status session_create_child(const ifd_model *model, const struct session_private *parent,
                                ifd_session **out, ifd_error *err);

#endif /* INFERD_ENGINE_MODEL_H */
