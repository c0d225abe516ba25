/*
 * op.h — the contract between the engine's core and its operators.
 *
 * Each operator family lives in one file under ops/ and exports one
 * `op_family` table of `op_def`s. An op_def covers a range of ONNX schema
 * versions of one operator. At load the core finds, for each node, the schema
 * version in effect for the model's opset (onnx_op_versions.c) and the op_def
 * whose range holds it, then calls its `prepare` once; at run time only `run`
 * is called. So: parse attributes, check dtypes, infer output types/shapes and
 * pre-pack weights in `prepare`; only compute in `run`.
 *
 * Thread safety: `prepare` runs once per model on one thread. `run` may be
 * called concurrently from several sessions of one model, so it must treat
 * node->state as read-only.
 */
#ifndef INFERD_ENGINE_OP_H
#define INFERD_ENGINE_OP_H

#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "inferd/inferd.h"
#include "tensor.h"
#include "threadpool.h"

/* What is known about a value at load time. rank < 0 or dims[i] < 0 mean
 * unknown. `constant` is set for initializers and Constant outputs. */
typedef struct value_info {
    const char *name;
    ifd_value_kind kind;
    ifd_dtype dtype;         /* tensors; map value dtype; sequence item dtype */
    ifd_dtype key_dtype;     /* maps (and sequences of maps) */
    ifd_value_kind elem_kind; /* sequences */
    int rank;
    int64_t dims[IFD_MAX_RANK];
    const ifd_tensor *constant;
    /* Set by the loader during the prepare() of the one node that reads a
     * large float32 weight still in the mapped model file (Gemm's and
     * MatMul's B): the weight's bytes there, not necessarily aligned for
     * float; constant->data is then NULL (not copied yet) or a view of the
     * same bytes. prepare() reads them in order with op_constant_read, which
     * gives the file's pages back as they are consumed, so that a weight is
     * never resident both as read and as packed. Unless prepare() then marks
     * the input packed (op_constant_packed), the loader copies the weight
     * as usual afterwards. NULL at all other times. */
    const uint8_t *mapped_bytes;
} value_info;

typedef enum op_attr_type {
    OP_ATTR_UNDEFINED = 0,
    OP_ATTR_FLOAT = 1,
    OP_ATTR_INT = 2,
    OP_ATTR_STRING = 3,
    OP_ATTR_TENSOR = 4,
    OP_ATTR_GRAPH = 5,
    OP_ATTR_FLOATS = 6,
    OP_ATTR_INTS = 7,
    OP_ATTR_STRINGS = 8,
    OP_ATTR_TENSORS = 9,
    OP_ATTR_GRAPHS = 10,
    OP_ATTR_SPARSE_TENSOR = 11,
    OP_ATTR_SPARSE_TENSORS = 12,
    OP_ATTR_TYPE_PROTO = 13,
    OP_ATTR_TYPE_PROTOS = 14
} op_attr_type;

typedef struct op_attr {
    const char *name;
    op_attr_type type;
    int64_t i;
    float f;
    ifd_string s;          /* data is NUL-terminated as well */
    size_t count;          /* ints / floats / strings */
    int64_t *ints;
    float *floats;
    ifd_string *strings;
    ifd_tensor *tensor;    /* decoded TENSOR attribute */
    value_info *type_info; /* decoded TYPE_PROTO attribute (Optional's `type`) */
} op_attr;

typedef struct subgraph subgraph;

typedef struct op_node {
    const char *name;      /* node name, or "" */
    const char *op_type;
    const char *domain;    /* "" for ai.onnx */
    int version;           /* ONNX schema version in effect (e.g. 13 for Softmax-13) */
    int n_inputs;
    int n_outputs;
    value_info **inputs;   /* NULL for an omitted optional input */
    value_info **outputs;  /* never NULL: omitted outputs get anonymous values */
    bool *output_used;     /* false where the model omits or never reads an output */
    size_t n_attrs;
    const op_attr *attrs;
    void *state;           /* owned by the operator; freed by op_def.free_state */
    /* Bit k set by prepare() (op_constant_packed) when input k is a constant
     * it copied into its own layout, so that run() reads only that input's
     * dtype and shape: once every reader says so, the loader frees the
     * constant's data and the model holds the weights once, packed. */
    unsigned packed_inputs;
    /* Graph attributes (If's branches, Loop's and Scan's body), in attribute
     * order, loaded with the model. The values they read from enclosing
     * graphs follow the node's own inputs as n_implicit more entries of
     * inputs[]: they are inputs for ordering and lifetimes, not for the
     * operator's schema (n_inputs counts only the node's own). */
    int n_subgraphs;
    subgraph **subgraphs;
    int n_implicit;
} op_node;

/* Attribute access. Defaults are returned when the attribute is absent. */
const op_attr *op_attr_find(const op_node *node, const char *name);
bool op_attr_has(const op_node *node, const char *name);
int64_t op_attr_int(const op_node *node, const char *name, int64_t fallback);
float op_attr_float(const op_node *node, const char *name, float fallback);
const char *op_attr_string(const op_node *node, const char *name, const char *fallback);
/* Return the element count and set *out (NULL and 0 when absent). */
size_t op_attr_ints(const op_node *node, const char *name, const int64_t **out);
size_t op_attr_floats(const op_node *node, const char *name, const float **out);
size_t op_attr_strings(const op_node *node, const char *name, const ifd_string **out);
const ifd_tensor *op_attr_tensor(const op_node *node, const char *name);

/* For prepare(): constant input k is packed into node->state and run() will
 * not read its data (see packed_inputs). Inputs past 31 are ignored. */
static inline void op_constant_packed(op_node *node, int k)
{
    if (k >= 0 && k < 32)
        node->packed_inputs |= 1u << k;
}

/* For prepare(): copy bytes [offset, offset + len) of v->mapped_bytes to
 * dst and give back the file's pages of everything before offset + len
 * (they fault in again from the file if read later). Callers read the
 * weight front to back. */
void op_constant_read(const value_info *v, size_t offset, size_t len, void *dst);

/* Fill err with "<op_type> node '<name>': <reason>" and return -1. For prepare. */
int op_prepare_fail(const op_node *node, ifd_error *err, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

typedef struct op_ctx op_ctx;

/* The run-time view of one node. */
struct op_ctx {
    const op_node *node;
    int n_inputs;
    const ifd_value *const *inputs; /* NULL entries for omitted inputs */
    struct session_private *session; /* core only */
    int node_index;                  /* core only */
    ifd_error *err;                  /* core only */
};

/* Input i as a tensor, or NULL when omitted or not a tensor. */
const ifd_tensor *op_input(const op_ctx *ctx, int i);
/* The value bound to input i (any kind), or NULL. */
const ifd_value *op_input_value(const op_ctx *ctx, int i);
/* Allocate output i with the given shape; data is uninitialised except for
 * strings (zeroed). Returns NULL after setting the error on overflow/OOM. */
ifd_tensor *op_output(op_ctx *ctx, int i, ifd_dtype dtype, int rank, const int64_t *dims);
/* Output i as a view of x (input 0, the same bytes) under new dims, when the
 * buffer planner made it one (arena_plan.c, plan_views: the Reshape family's
 * output 0). NULL without an error otherwise: the operator then copies into
 * op_output as usual. x's element count must equal the dims'. */
ifd_tensor *op_output_view(op_ctx *ctx, int i, const ifd_tensor *x, int rank,
                           const int64_t *dims);
/* Output i as an empty value the operator fills (sequences and maps); the
 * value's previous contents are cleared. */
ifd_value *op_output_value(op_ctx *ctx, int i);
/* Set the run error ("<op_type> node '<name>': <reason>") and return -1. */
int op_fail(op_ctx *ctx, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Scratch memory valid until run returns; NULL after setting the error. */
void *op_scratch(op_ctx *ctx, size_t bytes);
/* Subgraphs (control flow). At prepare, the operator gives the types of the
 * subgraph's own inputs (NULL entries keep what the subgraph declares; the
 * values it reads from enclosing graphs are typed by the loader), and the
 * subgraph is then prepared like a model; its outputs' types are then known.
 * Errors name the node and the attribute. */
int op_subgraph_prepare(op_node *node, int k, const value_info *const *inputs, int n_inputs,
                        ifd_error *err);
const char *op_subgraph_name(const op_node *node, int k); /* the attribute: "then_branch" */
int op_subgraph_input_count(const op_node *node, int k);  /* its own inputs */
int op_subgraph_output_count(const op_node *node, int k);
const value_info *op_subgraph_output(const op_node *node, int k, int i);
/* Run subgraph k of the node with its own inputs (n given, the count above;
 * the values it reads from enclosing graphs are bound from the node's
 * implicit inputs). outputs[] receives new values the caller owns. Runs on a
 * session kept with this run's session, made on first use. -1 after
 * op_fail. */
int op_subgraph_run(op_ctx *ctx, int k, const ifd_value *const *inputs, ifd_value **outputs);

/* Split [0, n) into chunks of at least `grain` items over the session's
 * threads and wait for all. fn must not fail. */
void op_parallel_for(op_ctx *ctx, size_t n, size_t grain,
                     void (*fn)(void *arg, size_t begin, size_t end), void *arg);
threadpool *op_threadpool(op_ctx *ctx);
/* The session's limit on one Loop's or Scan's iterations, 0 for none. */
int64_t op_loop_limit(const op_ctx *ctx);

typedef int (*op_prepare_fn)(op_node *node, ifd_error *err);
typedef int (*op_run_fn)(op_ctx *ctx);
typedef void (*op_free_fn)(void *state);

typedef struct op_def {
    const char *domain;  /* "" or "ai.onnx.ml" */
    const char *op_type;
    int first_version;   /* ONNX schema versions this implementation serves */
    int last_version;
    /* Must set outputs[i]->dtype (and kind for non-tensors), and rank/dims where
     * they follow from what is known; must reject unsupported dtypes and bad
     * attributes. NULL means: every output copies input 0's type info. */
    op_prepare_fn prepare;
    op_run_fn run;
    op_free_fn free_state;
} op_def;

typedef struct op_family {
    const op_def *defs;
    size_t count;
} op_family;

#define OP_FAMILY(name, table) \
    const op_family name = {table, sizeof(table) / sizeof((table)[0])}

/* Registry (registry.c). `version` is the ONNX schema version in effect. */
const op_def *op_registry_find(const char *domain, const char *op_type, int version);
/* The schema version of op_type in effect at `opset` of `domain`, or 0 when
 * the operator does not exist there (onnx_op_versions.c). */
int onnx_schema_version(const char *domain, const char *op_type, int64_t opset);
/* The input/output counts ONNX's schema allows for op_type at schema
 * `version`, and a bit mask of the inputs a node must name (neither optional
 * nor past the first of a variadic list). False if the schema is unknown. */
bool onnx_schema_arity(const char *domain, const char *op_type, int version, int *min_inputs,
                       int *max_inputs, int *min_outputs, int *max_outputs,
                       unsigned *required_inputs);
/* Highest opset of a domain this engine knows (ai.onnx 21, ai.onnx.ml 3). */
int64_t onnx_max_opset(const char *domain);

#endif /* INFERD_ENGINE_OP_H */
