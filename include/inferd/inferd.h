/*
 * inferd.h — the public interface of libinferd, inferd's ONNX inference engine.
 *
 * The engine loads an ONNX model once (parse, validate, resolve every operator
 * for the model's opset, infer types and shapes, plan buffers) and then runs it
 * many times through sessions. It knows nothing of HTTP, JSON or the model
 * store: those sit on top of it (src/serve, src/store, src/cli).
 *
 * Thread safety: an ifd_model is immutable after load and may be shared by any
 * number of threads. An ifd_session is used by one thread at a time; create one
 * session per worker. ifd_value objects have a single owner and no internal
 * locking.
 *
 * Errors: every function that can fail on user input returns an ifd_status and,
 * when given a non-NULL ifd_error, fills a one-line message naming the file,
 * node, operator or input and the reason. Library code never prints.
 */
#ifndef INFERD_INFERD_H
#define INFERD_INFERD_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define IFD_VERSION_STRING "0.1.0"
#define IFD_MAX_RANK 8

typedef enum ifd_status {
    IFD_OK = 0,
    IFD_ERR_INVALID_MODEL,    /* the file is not a well-formed ONNX model */
    IFD_ERR_UNSUPPORTED,      /* well-formed, but uses what the engine cannot run */
    IFD_ERR_INVALID_ARGUMENT, /* caller input does not match the model */
    IFD_ERR_NO_MEMORY,
    IFD_ERR_IO,
    IFD_ERR_RUNTIME           /* an operator failed on the given data */
} ifd_status;

typedef struct ifd_error {
    char message[1024];
} ifd_error;

/* Element types, numbered as ONNX's TensorProto.DataType. */
typedef enum ifd_dtype {
    IFD_UNDEFINED = 0,
    IFD_FLOAT = 1,
    IFD_UINT8 = 2,
    IFD_INT8 = 3,
    IFD_UINT16 = 4,
    IFD_INT16 = 5,
    IFD_INT32 = 6,
    IFD_INT64 = 7,
    IFD_STRING = 8,
    IFD_BOOL = 9,
    IFD_FLOAT16 = 10,
    IFD_DOUBLE = 11,
    IFD_UINT32 = 12,
    IFD_UINT64 = 13,
    IFD_COMPLEX64 = 14,
    IFD_COMPLEX128 = 15,
    IFD_BFLOAT16 = 16,
    /* IR 9 (opset 19) 8-bit floats: one byte each, as ONNX stores them. */
    IFD_FLOAT8E4M3FN = 17,
    IFD_FLOAT8E4M3FNUZ = 18,
    IFD_FLOAT8E5M2 = 19,
    IFD_FLOAT8E5M2FNUZ = 20,
    /* IR 10 (opset 21) 4-bit integers. Files pack two per byte (low nibble
     * first); in memory each element takes one byte (uint8 / int8 values in
     * [0, 15] / [-8, 7]), so every operator reads them like bytes. */
    IFD_UINT4 = 21,
    IFD_INT4 = 22
} ifd_dtype;

/* A string element: bytes, not necessarily NUL-terminated UTF-8. A string
 * tensor owns the bytes of each of its elements. */
typedef struct ifd_string {
    char *data;
    size_t size;
} ifd_string;

/* A dense row-major tensor. Scalars have rank 0 and one element. */
typedef struct ifd_tensor {
    ifd_dtype dtype;
    int rank;
    int64_t dims[IFD_MAX_RANK];
    void *data;         /* ifd_tensor_count() elements of dtype; ifd_string for IFD_STRING */
    size_t capacity;    /* bytes allocated at data when owned */
    int owns_data;      /* 0 for views of caller or model memory */
} ifd_tensor;

typedef enum ifd_value_kind {
    IFD_VALUE_TENSOR = 0,
    IFD_VALUE_SEQUENCE,
    IFD_VALUE_MAP,
    IFD_VALUE_OPTIONAL
} ifd_value_kind;

/* A value flowing through a graph. Maps are what ai.onnx.ml's ZipMap makes:
 * 1-D keys (int64 or string) with 1-D values of the same length. An optional
 * (ONNX's optional type) holds its value as items[0] with length 1, or is
 * empty with length 0. */
typedef struct ifd_value {
    ifd_value_kind kind;
    ifd_tensor tensor;          /* IFD_VALUE_TENSOR */
    size_t length;              /* IFD_VALUE_SEQUENCE/OPTIONAL: number of items */
    struct ifd_value **items;   /* IFD_VALUE_SEQUENCE/OPTIONAL: owned items */
    ifd_tensor map_keys;        /* IFD_VALUE_MAP */
    ifd_tensor map_values;      /* IFD_VALUE_MAP */
} ifd_value;

/* The declared type of a graph input or output. dims[i] < 0 is unknown
 * (dim_params[i] then holds its symbolic name, or NULL). rank < 0 is unknown. */
typedef struct ifd_type_info {
    ifd_value_kind kind;
    ifd_dtype dtype;              /* tensor element type; map value type */
    int rank;
    int64_t dims[IFD_MAX_RANK];
    const char *dim_params[IFD_MAX_RANK];
    ifd_dtype key_dtype;          /* maps, and maps inside sequences */
    ifd_value_kind elem_kind;     /* sequences: kind of each item; optionals: of the value
                                     (an optional sequence holds tensors) */
} ifd_type_info;

typedef struct ifd_io_info {
    const char *name;
    ifd_type_info type;
} ifd_io_info;

typedef struct ifd_opset {
    const char *domain;  /* "" for the default ai.onnx domain */
    int64_t version;
} ifd_opset;

typedef struct ifd_op_count {
    const char *domain;
    const char *op_type;
    size_t count;
} ifd_op_count;

/* An operator the engine cannot run at the version the model asks for. */
typedef struct ifd_unsupported_op {
    const char *domain;
    const char *op_type;
    int64_t opset;
    /* NULL in the main graph; inside a subgraph, where: e.g.
     * "If node 'check' then_branch, node 'n3'" */
    const char *location;
} ifd_unsupported_op;

typedef struct ifd_model ifd_model;
typedef struct ifd_session ifd_session;

/* How much the loader rewrites the graph before it runs (ORT's levels).
 * NONE runs the graph as written; BASIC folds constants and drops dead
 * nodes; ALL also fuses (Conv+BatchNormalization, Conv/Gemm/MatMul with
 * their bias, residual Add and activation) and recognises LayerNormalization,
 * Gelu and attention spelled out in primitives. Every level computes the same
 * outputs within floating-point reassociation. DEFAULT (0) means ALL. */
typedef enum ifd_graph_opt {
    IFD_GRAPH_OPT_DEFAULT = 0,
    IFD_GRAPH_OPT_NONE,
    IFD_GRAPH_OPT_BASIC,
    IFD_GRAPH_OPT_ALL
} ifd_graph_opt;

typedef struct ifd_load_options {
    /* Keep loading a model that uses unsupported operators, so that it can be
     * described; such a model refuses to create sessions. */
    int describe_only;
    ifd_graph_opt graph_opt;
} ifd_load_options;

#define IFD_MAX_THREADS 1024

typedef struct ifd_session_options {
    int threads; /* intra-op threads including the caller; <= 0 means one per core;
                    above IFD_MAX_THREADS is refused */
    /* Largest tensor or scratch buffer one run may allocate, in bytes; a run
     * needing more fails with a message instead. 0 means the engine's own
     * limit (64 GiB). Servers and fuzzers set it to bound memory per run. */
    size_t max_tensor_bytes;
    /* Most iterations one Loop or Scan node may run in one run (nested loops
     * each count their own); more fail with a message. 0 means no limit, as
     * ONNX has none: a model's Loop may run as long as its trip count says.
     * Fuzzers and servers facing untrusted models set it. */
    int64_t max_loop_iterations;
    /* With threads > 1, a run of a model whose every node acts row by row
     * (an MLP, a CNN classifier) may cut the batch into one slice per thread
     * and run the whole graph on each slice on its own thread, when the
     * batch is big enough for that to pay. Each slice's rows are bit for
     * bit the run of those rows alone, within float rounding of the whole
     * batch's run (as a batch of 8 and of its first 4 rows are). At any
     * thread count, a model whose activations outweigh its weights
     * (MobileNetV2) also runs its batch, or each slice, in micro-batches
     * of a few rows that keep the activations in cache, with the same
     * promise for each micro-batch's rows. 0 lets the engine decide;
     * IFD_BATCH_SPLIT_OFF never splits nor micro-batches (so
     * does the environment variable INFERD_BATCH_SPLIT=off, and loading
     * with IFD_GRAPH_OPT_NONE). ifd_session_batch_split says what was chosen. */
    int batch_split;
    /* Nonzero: time every node of every run (two clock reads a node, ~50 ns;
     * noticeable only on models of a few microseconds a run), read with
     * ifd_session_profile. */
    int profile;
} ifd_session_options;

#define IFD_BATCH_SPLIT_OFF (-1)

/* ---- dtypes and values ------------------------------------------------- */

const char *ifd_dtype_name(ifd_dtype dtype);        /* "float32", "int64", ... */
size_t ifd_dtype_size(ifd_dtype dtype);             /* bytes per element, 0 if unknown */
const char *ifd_status_name(ifd_status status);
/* A type's name without its shape: "float32", "sequence<float32>",
 * "sequence<map<int64,float32>>", "map<string,float32>", "optional<float32>",
 * "optional<sequence<float32>>". Writes into buf and returns it. */
const char *ifd_type_name(const ifd_type_info *type, char *buf, size_t size);

/* Element count of a tensor (product of dims; 1 for a scalar). */
int64_t ifd_tensor_count(const ifd_tensor *tensor);

/* Allocate a zeroed tensor value of the given shape. Fails on overflow. */
ifd_status ifd_value_new_tensor(ifd_dtype dtype, int rank, const int64_t *dims,
                                ifd_value **out, ifd_error *err);
void ifd_value_free(ifd_value *value);

/* Decode a TensorProto, SequenceProto or MapProto file body (the ONNX test
 * data format). `expected` picks which message it is; NULL means a tensor. */
ifd_status ifd_value_decode_pb(const void *buf, size_t len, const ifd_type_info *expected,
                               ifd_value **out, ifd_error *err);
/* Encode a value as TensorProto / SequenceProto / MapProto with the given name.
 * *buf is malloc'd; free it with free(). */
ifd_status ifd_value_encode_pb(const ifd_value *value, const char *name, void **buf,
                               size_t *len, ifd_error *err);

/* ---- models -------------------------------------------------------------- */

ifd_status ifd_model_load_file(const char *path, const ifd_load_options *options,
                               ifd_model **out, ifd_error *err);
/* base_dir resolves external data; NULL forbids external data. */
ifd_status ifd_model_load_memory(const void *buf, size_t len, const char *base_dir,
                                 const ifd_load_options *options, ifd_model **out,
                                 ifd_error *err);
/* Load from a mapping of a whole model file that the caller made — mmap(NULL,
 * len, PROT_READ, MAP_PRIVATE, fd, 0) — for callers that read the bytes
 * before loading them: a server hashes the very bytes the engine parses,
 * without reading the file twice or holding a copy of it. The model takes
 * the mapping over, whatever the outcome: weights aligned for their type are
 * read in place, shared through the page cache by every process and model
 * mapping the same file, and the mapping is unmapped once no weight reads
 * it (at the latest by ifd_model_free). path names the model in messages and
 * its directory resolves external data (NULL: none allowed). As with
 * ifd_model_load_file, the file may be replaced by rename while mapped, but
 * not truncated or rewritten in place (a read past a new end is SIGBUS). */
ifd_status ifd_model_load_mapped(void *map, size_t len, const char *path,
                                 const ifd_load_options *options, ifd_model **out,
                                 ifd_error *err);
void ifd_model_free(ifd_model *model);

/* Inputs here are the graph inputs that are not initializers, in graph order. */
size_t ifd_model_input_count(const ifd_model *model);
const ifd_io_info *ifd_model_input(const ifd_model *model, size_t index);
size_t ifd_model_output_count(const ifd_model *model);
const ifd_io_info *ifd_model_output(const ifd_model *model, size_t index);

int64_t ifd_model_ir_version(const ifd_model *model);
const char *ifd_model_producer_name(const ifd_model *model);
const char *ifd_model_producer_version(const ifd_model *model);
const char *ifd_model_graph_name(const ifd_model *model);
size_t ifd_model_opset_count(const ifd_model *model);
ifd_opset ifd_model_opset(const ifd_model *model, size_t index);
size_t ifd_model_node_count(const ifd_model *model);
/* Operator histogram, most used first. */
size_t ifd_model_op_count(const ifd_model *model);
ifd_op_count ifd_model_op(const ifd_model *model, size_t index);
/* Non-empty only for models loaded with describe_only. */
size_t ifd_model_unsupported_count(const ifd_model *model);
ifd_unsupported_op ifd_model_unsupported(const ifd_model *model, size_t index);

/* ---- sessions ------------------------------------------------------------ */

ifd_status ifd_session_create(const ifd_model *model, const ifd_session_options *options,
                              ifd_session **out, ifd_error *err);
void ifd_session_free(ifd_session *session);

/* Run the model. inputs[i] binds ifd_model_input(model, i) and is only read.
 * outputs receives ifd_model_output_count() new values owned by the caller. */
ifd_status ifd_session_run(ifd_session *session, const ifd_value *const *inputs,
                           ifd_value **outputs, ifd_error *err);

/* Whether this session's runs may split the batch over its threads (1) or
 * not (0); reason (may be NULL) receives a one-line account of why, e.g.
 * "ReduceMean node 'r' reduces over the batch axis". */
int ifd_session_batch_split(const ifd_session *session, char *reason, size_t size);

/* One node of the prepared graph (after the optimiser's fusions: a Conv
 * that absorbed its Relu is one node), as a profiled session timed it. */
typedef struct ifd_node_profile {
    const char *name;    /* the node's name, or "" when it has none */
    const char *op_type; /* valid while the model lives */
    uint64_t runs;       /* times it ran: once a run, once a slice of a split run */
    uint64_t total_ns;   /* wall time inside it, summed over runs and slices (so
                            over the threads of a split run: CPU time) */
} ifd_node_profile;

/* The per-node times of a session made with options.profile, in execution
 * order, since it was made or last reset: fills up to `capacity` entries
 * and returns the node count (0 for a session not profiled). */
size_t ifd_session_profile(const ifd_session *session, ifd_node_profile *nodes,
                           size_t capacity);
void ifd_session_profile_reset(ifd_session *session);

#ifdef __cplusplus
}
#endif

#endif /* INFERD_INFERD_H */
