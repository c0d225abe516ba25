/*
 * grpc_server.c — the gRPC transport of KServe V2 (see grpc_server.h), on
 * gRPC's C core: one completion queue, a few threads draining it, and one
 * small state machine per call (struct rpc) driven by the queue's events.
 *
 * Every method is registered, and a generic request is always pending too:
 * the C core leaves a call to an unregistered method waiting for a generic
 * request forever, so such calls are answered UNIMPLEMENTED at once here.
 * Unary methods have their one request message read with the call
 * (GRPC_SRM_PAYLOAD_READ_INITIAL_BYTE_BUFFER); messages over --max-body are
 * refused by the core itself with RESOURCE_EXHAUSTED before they reach us.
 * A message protobuf-c cannot parse is INVALID_ARGUMENT with a message
 * naming what was expected — never INTERNAL with an empty one.
 *
 * ModelInfer takes the REST path's route to a model or pipeline: the
 * version (or pipeline) is acquired when the call arrives (traffic policy,
 * sticky splits read from request metadata), a model whose warm-up run is
 * a few microseconds runs right on the queue thread with that thread's own
 * session, anything slower goes to the inference workers, and both call
 * model_set_run — the same entry point, so rollback and shadow copies
 * apply alike. A version that batches is queued with model_set_submit
 * instead, from the queue thread (small requests to a fast model) or a
 * worker, and neither waits for the batch: the thread that runs it
 * encodes and sends the answer (submit_inference, on_batched_inference),
 * as REST's V2 path answers. A pipeline starts on a worker
 * (pipeline_run_then, as REST's served_run_then): a model step that
 * batches gives the worker back while it waits, and the thread the run
 * ends on answers (submit_pipeline, on_pipeline_inference). ModelStreamInfer (Triton's extension) runs the
 * requests of a stream one after another, answering each in order; a
 * failed one answers error_message and the stream goes on.
 *
 * Each request is counted in the metrics (protocol="grpc", code: the HTTP
 * status REST would give; inferd_requests_in_flight) and the access log
 * like an HTTP request, and srv->in_flight covers calls, so SIGTERM's
 * grace period waits for them.
 */
#include "grpc_server.h"

#include <arpa/inet.h>
#include <grpc/byte_buffer.h>
#include <grpc/byte_buffer_reader.h>
#include <grpc/grpc.h>
#include <grpc/grpc_security.h>
#include <grpc/support/log.h>
#include <grpc/support/time.h>
#include <limits.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "batcher.h"
#include "grpc_v2_codec.h"
#include "log.h"
#include "metrics.h"
#include "pipeline.h"
#include "pipeline_set.h"
#include "server.h"
#include "tensor_json.h"

#define SERVICE "/inference.GRPCInferenceService/"

enum method {
    SERVER_LIVE,
    SERVER_READY,
    MODEL_READY,
    SERVER_METADATA,
    MODEL_METADATA,
    MODEL_INFER,
    MODEL_STREAM_INFER,
    N_METHODS,
    UNREGISTERED = N_METHODS, /* any other path: answered UNIMPLEMENTED */
};

static const char *const method_names[N_METHODS + 1] = {
    "ServerLive", "ServerReady", "ModelReady", "ServerMetadata", "ModelMetadata", "ModelInfer", "ModelStreamInfer",
    "(unregistered)",
};

/* Requests kept pending per method, so calls arriving together are
 * surfaced to every queue thread without a round trip. */
#define PENDING_PER_METHOD 4

/* Inference run on the queue thread: a small request to a model whose
 * warm-up inference took less than this (as the HTTP polling threads do). */
#define INLINE_MAX_SECONDS 0.0002
#define INLINE_MAX_BYTES 16384

typedef enum phase {
    PHASE_REQUESTED,    /* waiting for a call */
    PHASE_STREAM_READ,  /* a stream's next request is being read */
    PHASE_STREAM_WRITE, /* a stream's answer is being written */
    PHASE_FINISHING,    /* the status is being sent */
} phase;

typedef struct rpc {
    struct grpc_frontend *f;
    enum method method;
    phase phase;
    grpc_call *call;
    gpr_timespec deadline;
    grpc_call_details details; /* UNREGISTERED only */
    grpc_metadata_array request_metadata;
    grpc_byte_buffer *payload;  /* the request message read */
    grpc_byte_buffer *response; /* the answer message being sent */
    grpc_metadata initial[2];
    size_t n_initial;
    grpc_slice status_details;
    bool has_details;
    grpc_status_code status;
    int cancelled;
    char request_id[72];
    char *metadata_text;    /* the request metadata's values, NUL-terminated in order (see metadata_value) */
    char answered_by[200];  /* "model:version" for x-model-version */
    /* the request being answered (one at a time, also on a stream) */
    Inference__ModelInferRequest *infer;
    model_version *version; /* what answers: a model version, */
    pipeline *pipeline;     /* or a pipeline */
    char message[1024];
    double t_start, t_queued, t_compute_start, t_compute_end;
    size_t response_bytes;
    bool counted_in_flight;
} rpc;

struct grpc_frontend {
    server *srv;
    grpc_server *server;
    grpc_completion_queue *cq;
    void *methods[N_METHODS];
    pthread_t *threads;
    int n_threads;
    atomic_bool quiescing;
    atomic_bool server_down; /* the shutdown notification arrived */
    int shutdown_tag;        /* its address is the tag */
    pthread_mutex_t lock;
    pthread_cond_t down;
};

static __thread int thread_session = -1; /* a queue thread's inference session */

/* ---- helpers ------------------------------------------------------------- */

static int http_status_of(grpc_status_code code)
{
    switch (code) {
    case GRPC_STATUS_OK: return 200;
    case GRPC_STATUS_INVALID_ARGUMENT: return 400;
    case GRPC_STATUS_NOT_FOUND: return 404;
    case GRPC_STATUS_RESOURCE_EXHAUSTED: return 429;
    case GRPC_STATUS_UNIMPLEMENTED: return 501;
    case GRPC_STATUS_UNAVAILABLE: return 503;
    case GRPC_STATUS_DEADLINE_EXCEEDED: return 504;
    case GRPC_STATUS_CANCELLED: return 499;
    default: return 500;
    }
}

static const char *status_name(grpc_status_code code)
{
    static const char *const names[] = {"OK", "CANCELLED", "UNKNOWN", "INVALID_ARGUMENT", "DEADLINE_EXCEEDED",
                                        "NOT_FOUND", "ALREADY_EXISTS", "PERMISSION_DENIED", "RESOURCE_EXHAUSTED",
                                        "FAILED_PRECONDITION", "ABORTED", "OUT_OF_RANGE", "UNIMPLEMENTED",
                                        "INTERNAL", "UNAVAILABLE", "DATA_LOSS", "UNAUTHENTICATED"};
    return (unsigned)code < sizeof(names) / sizeof(names[0]) ? names[code] : "UNKNOWN";
}

/* The REST status of a failed model_set_run, as served_run answers it. */
/* model_set_run_until says how REST would answer a failed run; gRPC's
 * statuses for the same cases (the batch queue full, the deadline passed in
 * it, the version going away). */
static grpc_status_code run_failure_status(int http_status)
{
    switch (http_status) {
    case 429: return GRPC_STATUS_RESOURCE_EXHAUSTED;
    case 504: return GRPC_STATUS_DEADLINE_EXCEEDED;
    case 503: return GRPC_STATUS_UNAVAILABLE;
    default: return GRPC_STATUS_INVALID_ARGUMENT;
    }
}

/* The call's deadline on the batcher's clock (0: none). */
static double batch_deadline(const rpc *r)
{
    gpr_timespec deadline = gpr_convert_clock_type(r->deadline, GPR_CLOCK_MONOTONIC);
    if (gpr_time_cmp(deadline, gpr_inf_future(GPR_CLOCK_MONOTONIC)) == 0)
        return 0;
    gpr_timespec left = gpr_time_sub(deadline, gpr_now(GPR_CLOCK_MONOTONIC));
    return batch_clock() + (double)left.tv_sec + left.tv_nsec * 1e-9;
}

static grpc_status_code pipeline_failure_status(pipeline_status status)
{
    switch (status) {
    case PIPELINE_BAD_INPUT: return GRPC_STATUS_INVALID_ARGUMENT;
    case PIPELINE_BUSY: return GRPC_STATUS_RESOURCE_EXHAUSTED;
    case PIPELINE_UNAVAILABLE:
    case PIPELINE_BAD_GATEWAY: return GRPC_STATUS_UNAVAILABLE;
    case PIPELINE_TIMEOUT: return GRPC_STATUS_DEADLINE_EXCEEDED;
    default: return GRPC_STATUS_INTERNAL;
    }
}

/* A request's message, NUL-terminated in one contiguous buffer for
 * protobuf-c; NULL when there is none or it cannot be read. */
static void *unpack(const ProtobufCMessageDescriptor *d, grpc_byte_buffer *bb)
{
    if (!bb)
        return NULL;
    grpc_byte_buffer_reader reader;
    if (!grpc_byte_buffer_reader_init(&reader, bb))
        return NULL;
    grpc_slice all = grpc_byte_buffer_reader_readall(&reader);
    grpc_byte_buffer_reader_destroy(&reader);
    void *m = protobuf_c_message_unpack(d, NULL, GRPC_SLICE_LENGTH(all), GRPC_SLICE_START_PTR(all));
    grpc_slice_unref(all);
    return m;
}

static grpc_byte_buffer *pack(const ProtobufCMessage *m, size_t *len)
{
    *len = protobuf_c_message_get_packed_size(m);
    grpc_slice s = grpc_slice_malloc(*len);
    protobuf_c_message_pack(m, GRPC_SLICE_START_PTR(s));
    grpc_byte_buffer *bb = grpc_raw_byte_buffer_create(&s, 1);
    grpc_slice_unref(s);
    return bb;
}

/* Copy the request metadata's values as C strings, once per call: the
 * header lookups of model_set_acquire and of a pipeline's steps (which may
 * run on several threads at once) then read text that never changes. */
static void keep_metadata_text(rpc *r)
{
    size_t total = 0;
    for (size_t i = 0; i < r->request_metadata.count; i++)
        total += GRPC_SLICE_LENGTH(r->request_metadata.metadata[i].value) + 1;
    r->metadata_text = malloc(total ? total : 1);
    char *at = r->metadata_text;
    for (size_t i = 0; at && i < r->request_metadata.count; i++) {
        size_t len = GRPC_SLICE_LENGTH(r->request_metadata.metadata[i].value);
        memcpy(at, GRPC_SLICE_START_PTR(r->request_metadata.metadata[i].value), len);
        at[len] = '\0';
        at += len + 1;
    }
}

/* A request metadata value (keys are lowercase on the wire, names are
 * matched ignoring case as HTTP headers are), or NULL. */
static const char *metadata_value(void *context, const char *name)
{
    const rpc *r = context;
    size_t name_len = strlen(name);
    const char *value = r->metadata_text;
    for (size_t i = 0; value && i < r->request_metadata.count; i++) {
        const grpc_metadata *md = &r->request_metadata.metadata[i];
        if (GRPC_SLICE_LENGTH(md->key) == name_len &&
            strncasecmp((const char *)GRPC_SLICE_START_PTR(md->key), name, name_len) == 0)
            return value;
        value += GRPC_SLICE_LENGTH(md->value) + 1;
    }
    return NULL;
}

static void fail(rpc *r, grpc_status_code code, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static void fail(rpc *r, grpc_status_code code, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(r->message, sizeof(r->message), fmt, ap);
    va_end(ap);
    r->status = code;
}

/* ---- what answers -------------------------------------------------------- */

static const char *target_name(const rpc *r)
{
    return r->pipeline ? pipeline_name(r->pipeline) : r->version ? r->version->name : "";
}

static const char *target_version(const rpc *r)
{
    return r->pipeline ? "1" : r->version ? r->version->version : "";
}

static const ifd_io_info *pipeline_input_of(const void *p, size_t index)
{
    return pipeline_input(p, index);
}

static const ifd_io_info *pipeline_output_of(const void *p, size_t index)
{
    return pipeline_output(p, index);
}

static grpc_v2_signature target_signature(const rpc *r)
{
    if (r->pipeline)
        return (grpc_v2_signature){.owner = r->pipeline, .n_inputs = pipeline_input_count(r->pipeline),
                                   .n_outputs = pipeline_output_count(r->pipeline), .input = pipeline_input_of,
                                   .output = pipeline_output_of};
    return grpc_v2_model_signature(r->version->model);
}

/* ---- one request answered: metrics, log, release ------------------------- */

static void account(rpc *r)
{
    server *srv = r->f->srv;
    double end = server_now();
    __atomic_sub_fetch(&srv->unanswered, 1, __ATOMIC_SEQ_CST);
    int code = http_status_of(r->status);
    char path[64];
    snprintf(path, sizeof(path), SERVICE "%s", method_names[r->method]);
    const char *model = target_name(r), *version = target_version(r);
    metrics_call call = {.protocol = "grpc", .method = "GRPC", .path = path, .model = model, .version = version,
                         .error = r->status == GRPC_STATUS_OK ? NULL : r->message, .status = code,
                         .t_start = r->t_start, .t_queued = r->t_queued, .t_compute_start = r->t_compute_start,
                         .t_compute_end = r->t_compute_end, .end = end};
    metrics_observe_call(srv->metrics, &call);
    if (log_enabled(LOG_INFO)) {
        char code_text[8], ms[32], bytes[32];
        snprintf(code_text, sizeof(code_text), "%d", code);
        snprintf(ms, sizeof(ms), "%.3f", (end - r->t_start) * 1e3);
        snprintf(bytes, sizeof(bytes), "%zu", r->response_bytes);
        log_buffered(LOG_INFO, "request", "request_id", r->request_id, "method", "GRPC", "path", path,
                     "status", code_text, "grpc_status", status_name(r->status), "ms", ms, "bytes", bytes, "model",
                     model, NULL);
    }
}

/* Drop what one request held (a stream goes on to its next). */
static void request_done(rpc *r)
{
    if (r->infer)
        protobuf_c_message_free_unpacked(&r->infer->base, NULL);
    r->infer = NULL;
    model_version_unref(r->version);
    r->version = NULL;
    pipeline_unref(r->pipeline);
    r->pipeline = NULL;
    if (r->payload)
        grpc_byte_buffer_destroy(r->payload);
    r->payload = NULL;
    if (r->response)
        grpc_byte_buffer_destroy(r->response);
    r->response = NULL;
    r->message[0] = '\0';
    r->status = GRPC_STATUS_OK;
    r->t_queued = r->t_compute_start = r->t_compute_end = 0;
    r->response_bytes = 0;
}

static void rpc_free(rpc *r)
{
    request_done(r);
    if (r->call)
        grpc_call_unref(r->call);
    grpc_metadata_array_destroy(&r->request_metadata);
    free(r->metadata_text);
    if (r->method == UNREGISTERED)
        grpc_call_details_destroy(&r->details);
    if (r->has_details)
        grpc_slice_unref(r->status_details);
    if (r->counted_in_flight)
        __atomic_sub_fetch(&r->f->srv->in_flight, 1, __ATOMIC_SEQ_CST);
    free(r);
}

/* Wait for the next call of a method. */
static void request_call(struct grpc_frontend *f, enum method method)
{
    if (atomic_load(&f->quiescing))
        return;
    rpc *r = calloc(1, sizeof(*r));
    if (!r) {
        log_event(LOG_ERROR, "grpc: out of memory; a method's calls wait for the next request", NULL);
        return;
    }
    r->f = f;
    r->method = method;
    r->phase = PHASE_REQUESTED;
    grpc_metadata_array_init(&r->request_metadata);
    grpc_call_error e;
    if (method == UNREGISTERED) {
        grpc_call_details_init(&r->details);
        e = grpc_server_request_call(f->server, &r->call, &r->details, &r->request_metadata, f->cq, f->cq, r);
    } else {
        e = grpc_server_request_registered_call(f->server, f->methods[method], &r->call, &r->deadline,
                                                &r->request_metadata,
                                                method == MODEL_STREAM_INFER ? NULL : &r->payload, f->cq, f->cq, r);
    }
    if (e != GRPC_CALL_OK) {
        r->call = NULL;
        rpc_free(r);
    }
}

/* ---- sending ------------------------------------------------------------- */

/* The op sending x-request-id and x-model-version; returns 1 (ops used). */
static size_t initial_metadata_op(rpc *r, grpc_op *op)
{
    r->n_initial = 0;
    r->initial[r->n_initial].key = grpc_slice_from_static_string("x-request-id");
    r->initial[r->n_initial++].value = grpc_slice_from_static_buffer(r->request_id, strlen(r->request_id));
    if (r->version || r->pipeline) {
        snprintf(r->answered_by, sizeof(r->answered_by), "%s:%s", target_name(r), target_version(r));
        r->initial[r->n_initial].key = grpc_slice_from_static_string("x-model-version");
        r->initial[r->n_initial++].value = grpc_slice_from_static_buffer(r->answered_by, strlen(r->answered_by));
    }
    op->op = GRPC_OP_SEND_INITIAL_METADATA;
    op->data.send_initial_metadata.count = r->n_initial;
    op->data.send_initial_metadata.metadata = r->initial;
    return 1;
}

/* The last batch of a call: its status (and, for unary calls, the
 * initial metadata and answer first). */
static void finish(rpc *r, bool send_initial)
{
    grpc_op ops[4];
    memset(ops, 0, sizeof(ops));
    size_t n = 0;
    if (send_initial)
        n += initial_metadata_op(r, &ops[n]);
    if (r->response && r->status == GRPC_STATUS_OK) {
        ops[n].op = GRPC_OP_SEND_MESSAGE;
        ops[n++].data.send_message.send_message = r->response;
    }
    if (r->has_details)
        grpc_slice_unref(r->status_details);
    r->status_details = grpc_slice_from_copied_string(r->message);
    r->has_details = true;
    ops[n].op = GRPC_OP_SEND_STATUS_FROM_SERVER;
    ops[n].data.send_status_from_server.status = r->status;
    ops[n++].data.send_status_from_server.status_details = r->status == GRPC_STATUS_OK ? NULL : &r->status_details;
    ops[n].op = GRPC_OP_RECV_CLOSE_ON_SERVER;
    ops[n++].data.recv_close_on_server.cancelled = &r->cancelled;
    r->phase = PHASE_FINISHING;
    if (grpc_call_start_batch(r->call, ops, n, r, NULL) != GRPC_CALL_OK) {
        log_event(LOG_ERROR, "grpc: cannot finish a call", "request_id", r->request_id, NULL);
        rpc_free(r);
    }
}

static void stream_read(rpc *r, bool send_initial)
{
    grpc_op ops[2];
    memset(ops, 0, sizeof(ops));
    size_t n = 0;
    if (send_initial)
        n += initial_metadata_op(r, &ops[n]);
    ops[n].op = GRPC_OP_RECV_MESSAGE;
    ops[n++].data.recv_message.recv_message = &r->payload;
    r->phase = PHASE_STREAM_READ;
    if (grpc_call_start_batch(r->call, ops, n, r, NULL) != GRPC_CALL_OK) {
        fail(r, GRPC_STATUS_INTERNAL, "cannot read the stream");
        finish(r, false);
    }
}

/* A stream's answer to the request just run: the answer or its error. */
static void stream_write(rpc *r, grpc_v2_answer *answer)
{
    Inference__ModelStreamInferResponse msg = INFERENCE__MODEL_STREAM_INFER_RESPONSE__INIT;
    msg.error_message = r->status == GRPC_STATUS_OK ? (char *)"" : r->message;
    msg.infer_response = r->status == GRPC_STATUS_OK && answer ? &answer->message : NULL;
    r->response = pack(&msg.base, &r->response_bytes);
    account(r);
    grpc_op op;
    memset(&op, 0, sizeof(op));
    op.op = GRPC_OP_SEND_MESSAGE;
    op.data.send_message.send_message = r->response;
    r->phase = PHASE_STREAM_WRITE;
    if (grpc_call_start_batch(r->call, &op, 1, r, NULL) != GRPC_CALL_OK) {
        request_done(r);
        fail(r, GRPC_STATUS_INTERNAL, "cannot write the stream");
        finish(r, false);
    }
}

/* ---- the methods --------------------------------------------------------- */

static bool version_ready(rpc *r)
{
    return (r->pipeline || (r->version && r->version->ready)) && !r->f->srv->stopping;
}

/* The model version or pipeline a request names (as REST's
 * served_acquire_target chooses); false with the status set. */
static bool acquire(rpc *r, const char *name, const char *version)
{
    acquired got;
    char err[1024];
    server *srv = r->f->srv;
    if (name && *name && srv->pipelines && pipeline_set_has(srv->pipelines, name)) {
        if (version && *version && strcmp(version, "1") != 0) {
            fail(r, GRPC_STATUS_NOT_FOUND, "pipeline '%s' has only version 1", name);
            return false;
        }
        r->pipeline = pipeline_set_acquire(srv->pipelines, name, err, sizeof(err));
        if (!r->pipeline)
            fail(r, GRPC_STATUS_UNAVAILABLE, "%s", err);
        return r->pipeline != NULL;
    }
    acquire_result a = model_set_acquire(r->f->srv->models, name && *name ? name : NULL,
                                         version && *version ? version : NULL, metadata_value, r, &got, err,
                                         sizeof(err));
    if (a == ACQUIRE_OK) {
        r->version = got.version;
        return true;
    }
    if (!name || !*name)
        fail(r, GRPC_STATUS_INVALID_ARGUMENT, "the request names no model");
    else
        fail(r, a == ACQUIRE_NOT_SERVING ? GRPC_STATUS_UNAVAILABLE : GRPC_STATUS_NOT_FOUND, "%s", err);
    return false;
}

static void tensor_metadata(Inference__ModelMetadataResponse__TensorMetadata *t, int64_t *shape,
                            const ifd_io_info *io)
{
    inference__model_metadata_response__tensor_metadata__init(t);
    t->name = (char *)io->name;
    t->shape = shape;
    if (io->type.kind == IFD_VALUE_SEQUENCE && io->type.elem_kind == IFD_VALUE_MAP) {
        t->datatype = (char *)"FP32"; /* a ZipMap answers as FP32 [rows, classes] */
        shape[0] = shape[1] = -1;
        t->n_shape = 2;
    } else if (io->type.rank < 0) {
        t->datatype = (char *)v2_datatype_name(io->type.dtype);
        shape[0] = -1;
        t->n_shape = 1;
    } else {
        t->datatype = (char *)v2_datatype_name(io->type.dtype);
        for (int d = 0; d < io->type.rank; d++)
            shape[d] = io->type.dims[d] >= 0 ? io->type.dims[d] : -1;
        t->n_shape = (size_t)io->type.rank;
    }
}

static void model_metadata(rpc *r, const Inference__ModelMetadataRequest *req)
{
    if (!acquire(r, req->name, req->version))
        return;
    grpc_v2_signature sig = target_signature(r);
    size_t n_in = sig.n_inputs, n_out = sig.n_outputs;
    Inference__ModelMetadataResponse msg = INFERENCE__MODEL_METADATA_RESPONSE__INIT;
    Inference__ModelMetadataResponse__TensorMetadata *tensors = calloc(n_in + n_out + 1, sizeof(*tensors));
    Inference__ModelMetadataResponse__TensorMetadata **in = calloc(n_in + 1, sizeof(*in));
    Inference__ModelMetadataResponse__TensorMetadata **out = calloc(n_out + 1, sizeof(*out));
    int64_t(*shapes)[IFD_MAX_RANK > 2 ? IFD_MAX_RANK : 2] = calloc(n_in + n_out + 1, sizeof(*shapes));
    char **versions = NULL;
    size_t n_versions = 0;
    if (r->pipeline) {
        if ((versions = calloc(1, sizeof(*versions))) && (versions[0] = strdup("1")))
            n_versions = 1;
    } else {
        model_set_read_lock(r->f->srv->models);
        const model_entry *e = model_set_find(r->f->srv->models, r->version->name);
        if (e && (versions = calloc(e->n_versions + 1, sizeof(*versions))))
            for (size_t i = 0; i < e->n_versions; i++)
                if ((versions[n_versions] = strdup(e->versions[i]->version)))
                    n_versions++;
        model_set_read_unlock(r->f->srv->models);
    }
    if (tensors && in && out && shapes && versions) {
        for (size_t i = 0; i < n_in; i++) {
            tensor_metadata(&tensors[i], shapes[i], sig.input(sig.owner, i));
            in[i] = &tensors[i];
        }
        for (size_t i = 0; i < n_out; i++) {
            tensor_metadata(&tensors[n_in + i], shapes[n_in + i], sig.output(sig.owner, i));
            out[i] = &tensors[n_in + i];
        }
        msg.name = (char *)target_name(r);
        msg.versions = versions;
        msg.n_versions = n_versions;
        msg.platform = (char *)(r->pipeline ? "inferd_pipeline" : "onnx");
        msg.inputs = in;
        msg.n_inputs = n_in;
        msg.outputs = out;
        msg.n_outputs = n_out;
        r->response = pack(&msg.base, &r->response_bytes);
    } else {
        fail(r, GRPC_STATUS_RESOURCE_EXHAUSTED, "out of memory");
    }
    for (size_t i = 0; versions && i < n_versions; i++)
        free(versions[i]);
    free(versions);
    free(tensors);
    free(in);
    free(out);
    free(shapes);
}

/* r's client gave up waiting: its deadline is in the past */
static bool deadline_passed(const rpc *r)
{
    return gpr_time_cmp(gpr_now(GPR_CLOCK_MONOTONIC), gpr_convert_clock_type(r->deadline, GPR_CLOCK_MONOTONIC)) > 0;
}

/* Decode, run and encode r->infer on r->version (a model: pipelines go
 * to submit_pipeline) with `session`. On
 * success r->status is OK and *answer holds the answer (outputs must be
 * freed by the caller after the answer is packed). */
static void run_inference(rpc *r, int session, ifd_value **outputs, grpc_v2_answer *answer, bool *answered)
{
    *answered = false;
    server *srv = r->f->srv;
    char err[1024];
    int http_status;
    if (r->version && !r->version->ready) {
        fail(r, GRPC_STATUS_UNAVAILABLE, "model '%s' is not ready", r->version->name);
        return;
    }
    if (deadline_passed(r)) {
        fail(r, GRPC_STATUS_DEADLINE_EXCEEDED, "the deadline passed while the request waited for a worker");
        return;
    }
    grpc_v2_signature sig = target_signature(r);
    grpc_v2_request decoded;
    grpc_status_code code = grpc_v2_decode(r->infer, &sig, target_name(r), &decoded, err, sizeof(err));
    if (code != GRPC_STATUS_OK) {
        fail(r, code, "%s", err);
        return;
    }
    http_status = 0;
    if (model_set_run_until(srv->models, r->version, session, decoded.inputs, outputs, batch_deadline(r),
                            &http_status, err, sizeof(err)) != IFD_OK) {
        fail(r, run_failure_status(http_status), "%s", err);
        grpc_v2_request_free(&decoded);
        return;
    }
    code = grpc_v2_encode(&decoded, &sig, target_name(r), target_version(r), r->infer->id, outputs, answer, err,
                          sizeof(err));
    grpc_v2_request_free(&decoded);
    if (code != GRPC_STATUS_OK) {
        fail(r, code, "%s", err);
        return;
    }
    *answered = true;
}

/* Send an inference's answer, or the failure fail() recorded when !answered
 * (unary: the call's end; stream: one message), and free the answer. */
static void send_inference_answer(rpc *r, grpc_v2_answer *answer, bool answered)
{
    if (answered && r->method == MODEL_INFER)
        r->response = pack(&answer->message.base, &r->response_bytes);
    r->t_compute_end = server_now();
    if (r->method == MODEL_STREAM_INFER) {
        stream_write(r, answered ? answer : NULL);
    } else {
        account(r);
        finish(r, true);
    }
    if (answered)
        grpc_v2_answer_free(answer);
}

/* Run r's inference request and send its answer (unary: the call's end;
 * stream: one message). */
static void infer_and_answer(rpc *r, int session)
{
    r->t_compute_start = server_now();
    size_t n_out = target_signature(r).n_outputs;
    ifd_value **outputs = calloc(n_out ? n_out : 1, sizeof(*outputs));
    grpc_v2_answer answer;
    bool answered = false;
    if (!outputs)
        fail(r, GRPC_STATUS_RESOURCE_EXHAUSTED, "out of memory");
    else
        run_inference(r, session, outputs, &answer, &answered);
    send_inference_answer(r, &answer, answered);
    for (size_t i = 0; outputs && i < n_out; i++)
        ifd_value_free(outputs[i]);
    free(outputs);
}

static void infer_on_worker(void *arg, int worker)
{
    infer_and_answer(arg, worker);
}

/* A ModelInfer request in a batch queue: what its completion needs. */
typedef struct queued_infer {
    rpc *r;
    grpc_v2_request decoded;
    ifd_value **outputs;
    size_t n_outputs;
} queued_infer;

/* r's queued request with room for its signature's outputs, or NULL when
 * memory ran out. */
static queued_infer *queued_infer_new(rpc *r, const grpc_v2_signature *sig)
{
    queued_infer *q = calloc(1, sizeof(*q));
    if (q)
        q->outputs = calloc(sig->n_outputs ? sig->n_outputs : 1, sizeof(*q->outputs));
    if (q && !q->outputs) {
        free(q);
        return NULL;
    }
    if (q) {
        q->r = r;
        q->n_outputs = sig->n_outputs;
    }
    return q;
}

static void queued_infer_free(queued_infer *q)
{
    grpc_v2_request_free(&q->decoded);
    for (size_t i = 0; q->outputs && i < q->n_outputs; i++)
        ifd_value_free(q->outputs[i]);
    free(q->outputs);
    free(q);
}

/* The answer to a batched request (unary: the call's end; stream: one
 * message), on the thread that ran its batch, or on the submitting one
 * when the queue refused it. The call may be finished and freed by a queue
 * thread as soon as it is sent: q is released here, r never touched after. */
static void on_batched_inference(void *context, int http_status, const char *error)
{
    queued_infer *q = context;
    rpc *r = q->r;
    grpc_v2_answer answer;
    bool answered = false;
    if (http_status != 200) {
        fail(r, run_failure_status(http_status), "%s", error);
    } else {
        char err[1024];
        grpc_v2_signature sig = target_signature(r);
        grpc_status_code code = grpc_v2_encode(&q->decoded, &sig, target_name(r), target_version(r), r->infer->id,
                                               q->outputs, &answer, err, sizeof(err));
        if (code == GRPC_STATUS_OK)
            answered = true;
        else
            fail(r, code, "%s", err);
    }
    send_inference_answer(r, &answer, answered);
    queued_infer_free(q);
}

/* Decode r's request and queue it on its version's batcher without
 * waiting for the batch (as REST's V2 path does): the thread is given
 * back at once, and the thread that runs the batch answers the call. A
 * request that cannot share a batch runs at once on `session`. */
static void submit_inference(rpc *r, int session)
{
    r->t_compute_start = server_now();
    char err[1024];
    grpc_v2_signature sig = target_signature(r);
    queued_infer *q = queued_infer_new(r, &sig);
    if (!q) {
        fail(r, GRPC_STATUS_RESOURCE_EXHAUSTED, "out of memory");
    } else if (!r->version->ready) {
        fail(r, GRPC_STATUS_UNAVAILABLE, "model '%s' is not ready", r->version->name);
    } else if (deadline_passed(r)) {
        fail(r, GRPC_STATUS_DEADLINE_EXCEEDED, "the deadline passed while the request waited for a worker");
    } else {
        grpc_status_code code = grpc_v2_decode(r->infer, &sig, target_name(r), &q->decoded, err, sizeof(err));
        if (code == GRPC_STATUS_OK) {
            int refused = model_set_submit(r->f->srv->models, r->version, session, q->decoded.inputs, q->outputs,
                                           batch_deadline(r), on_batched_inference, q, err, sizeof(err));
            if (refused)
                on_batched_inference(q, refused, err);
            return; /* answered by the completion: r may be gone */
        }
        fail(r, code, "%s", err);
    }
    if (q)
        queued_infer_free(q);
    r->t_compute_end = server_now();
    if (r->method == MODEL_STREAM_INFER) {
        stream_write(r, NULL);
    } else {
        account(r);
        finish(r, true);
    }
}

static void submit_on_worker(void *arg, int worker)
{
    submit_inference(arg, worker);
}

/* The end of a pipeline run started by submit_pipeline: on the worker
 * before pipeline_run_then returned, or on a branch thread after a batch. */
static void on_pipeline_inference(void *context, pipeline_result *result)
{
    queued_infer *q = context;
    rpc *r = q->r;
    if (result->status != PIPELINE_OK) {
        fail(r, pipeline_failure_status(result->status), "pipeline '%s': %s", pipeline_name(r->pipeline),
             result->error);
        send_inference_answer(r, NULL, false);
        queued_infer_free(q);
        return;
    }
    for (size_t i = 0; i < q->n_outputs; i++) {
        q->outputs[i] = result->outputs[i];
        result->outputs[i] = NULL;
    }
    on_batched_inference(q, 200, "");
}

/* Decode r's request and run its pipeline without holding the worker
 * while a model step waits for a batch. */
static void submit_pipeline(void *arg, int worker)
{
    rpc *r = arg;
    r->t_compute_start = server_now();
    char err[1024];
    grpc_v2_signature sig = target_signature(r);
    queued_infer *q = queued_infer_new(r, &sig);
    if (!q) {
        fail(r, GRPC_STATUS_RESOURCE_EXHAUSTED, "out of memory");
        send_inference_answer(r, NULL, false);
        return;
    }
    if (deadline_passed(r)) {
        fail(r, GRPC_STATUS_DEADLINE_EXCEEDED, "the deadline passed while the request waited for a worker");
        send_inference_answer(r, NULL, false);
        queued_infer_free(q);
        return;
    }
    grpc_status_code code = grpc_v2_decode(r->infer, &sig, target_name(r), &q->decoded, err, sizeof(err));
    if (code != GRPC_STATUS_OK) {
        fail(r, code, "%s", err);
        send_inference_answer(r, NULL, false);
        queued_infer_free(q);
        return;
    }
    pipeline_request request = {.session = worker, .request_id = r->request_id,
                                .traceparent = metadata_value(r, "traceparent"), .headers = metadata_value,
                                .header_context = r, .deadline = batch_deadline(r)};
    pipeline_run_then(r->pipeline, pipeline_set_env(r->f->srv->pipelines), &request, q->decoded.inputs,
                      on_pipeline_inference, q);
}

/* A ModelInferRequest arrived (a unary call's, or a stream's next): pick
 * its version, then run it here or on a worker. */
static void start_inference(rpc *r, size_t request_bytes)
{
    server *srv = r->f->srv;
    r->infer = unpack(&inference__model_infer_request__descriptor, r->payload);
    if (!r->infer) {
        fail(r, GRPC_STATUS_INVALID_ARGUMENT,
             r->payload ? "the request is not a valid inference.ModelInferRequest protobuf message (%zu bytes)"
                        : "the call carries no request message",
             request_bytes);
    } else if (acquire(r, r->infer->model_name, r->infer->model_version)) {
        r->t_queued = server_now();
        /* a pipeline may wait on remote steps: never on a queue thread */
        double run_seconds = r->pipeline ? 1.0 : model_set_run_seconds(srv->models, r->version->name,
                                                                         r->version->version);
        bool small = thread_session >= 0 && run_seconds <= INLINE_MAX_SECONDS && request_bytes <= INLINE_MAX_BYTES;
        if (!r->pipeline && model_set_batches(r->version)) {
            /* a batching version's request waits for its batch on no
             * thread: queued from here when it is small and the model
             * fast (a lone one runs at once on this thread's session, as
             * inline requests do), else decoded and queued by a worker */
            if (small) {
                submit_inference(r, thread_session);
                return;
            }
            if (workers_submit(srv->pool, submit_on_worker, r))
                return;
        } else if (r->pipeline) {
            if (workers_submit(srv->pool, submit_pipeline, r))
                return;
        } else if (small) {
            infer_and_answer(r, thread_session);
            return;
        } else if (workers_submit(srv->pool, infer_on_worker, r)) {
            return;
        }
        fail(r, GRPC_STATUS_UNAVAILABLE, "the server is overloaded or stopping; retry later");
    }
    if (r->method == MODEL_STREAM_INFER) {
        stream_write(r, NULL);
    } else {
        account(r);
        finish(r, true);
    }
}

static size_t payload_length(grpc_byte_buffer *bb)
{
    return bb ? grpc_byte_buffer_length(bb) : 0;
}

/* A unary call that arrived: answer it. */
static void answer_unary(rpc *r)
{
    server *srv = r->f->srv;
    if (r->method == MODEL_INFER) {
        start_inference(r, payload_length(r->payload));
        return;
    }
    static const ProtobufCMessageDescriptor *const requests[] = {
        [SERVER_LIVE] = &inference__server_live_request__descriptor,
        [SERVER_READY] = &inference__server_ready_request__descriptor,
        [MODEL_READY] = &inference__model_ready_request__descriptor,
        [SERVER_METADATA] = &inference__server_metadata_request__descriptor,
        [MODEL_METADATA] = &inference__model_metadata_request__descriptor,
    };
    ProtobufCMessage *req = unpack(requests[r->method], r->payload);
    if (!req) {
        fail(r, GRPC_STATUS_INVALID_ARGUMENT, "the request is not a valid %s protobuf message",
             requests[r->method]->name);
    } else {
        switch (r->method) {
        case SERVER_LIVE: {
            Inference__ServerLiveResponse msg = INFERENCE__SERVER_LIVE_RESPONSE__INIT;
            msg.live = 1;
            r->response = pack(&msg.base, &r->response_bytes);
            break;
        }
        case SERVER_READY: {
            Inference__ServerReadyResponse msg = INFERENCE__SERVER_READY_RESPONSE__INIT;
            msg.ready = !srv->stopping && model_set_ready(srv->models);
            r->response = pack(&msg.base, &r->response_bytes);
            break;
        }
        case MODEL_READY: {
            const Inference__ModelReadyRequest *ready = (const Inference__ModelReadyRequest *)req;
            if (acquire(r, ready->name, ready->version)) {
                Inference__ModelReadyResponse msg = INFERENCE__MODEL_READY_RESPONSE__INIT;
                msg.ready = version_ready(r);
                r->response = pack(&msg.base, &r->response_bytes);
            }
            break;
        }
        case SERVER_METADATA: {
            static char *extensions[] = {(char *)"binary_tensor_data", (char *)"model_repository"};
            Inference__ServerMetadataResponse msg = INFERENCE__SERVER_METADATA_RESPONSE__INIT;
            msg.name = (char *)"inferd";
            msg.version = (char *)IFD_VERSION_STRING;
            msg.extensions = extensions;
            msg.n_extensions = 2;
            r->response = pack(&msg.base, &r->response_bytes);
            break;
        }
        case MODEL_METADATA: model_metadata(r, (const Inference__ModelMetadataRequest *)req); break;
        default: fail(r, GRPC_STATUS_INTERNAL, "no handler"); break;
        }
        protobuf_c_message_free_unpacked(req, NULL);
    }
    account(r);
    finish(r, true);
}

/* ---- the state machine --------------------------------------------------- */

static void on_event(rpc *r, bool ok)
{
    struct grpc_frontend *f = r->f;
    switch (r->phase) {
    case PHASE_REQUESTED:
        if (!ok) { /* the server is shutting down */
            rpc_free(r);
            return;
        }
        request_call(f, r->method); /* the next call of this method */
        r->t_start = server_now();
        r->counted_in_flight = true;
        __atomic_add_fetch(&f->srv->in_flight, 1, __ATOMIC_SEQ_CST);
        keep_metadata_text(r);
        server_request_id(metadata_value(r, "x-request-id"), r->request_id, sizeof(r->request_id));
        if (r->method != MODEL_STREAM_INFER) /* a stream's requests count as they arrive */
            __atomic_add_fetch(&f->srv->unanswered, 1, __ATOMIC_SEQ_CST);
        if (r->method == UNREGISTERED) {
            fail(r, GRPC_STATUS_UNIMPLEMENTED, "%.*s is not a method of inference.GRPCInferenceService",
                 (int)GRPC_SLICE_LENGTH(r->details.method), (const char *)GRPC_SLICE_START_PTR(r->details.method));
            account(r);
            finish(r, true);
        } else if (r->method == MODEL_STREAM_INFER) {
            stream_read(r, true);
        } else {
            answer_unary(r);
        }
        return;
    case PHASE_STREAM_READ:
        if (!ok) {
            fail(r, GRPC_STATUS_CANCELLED, "the stream broke");
            finish(r, false);
        } else if (!r->payload) {
            finish(r, false); /* the client closed its side: OK */
        } else {
            r->t_start = server_now();
            __atomic_add_fetch(&f->srv->unanswered, 1, __ATOMIC_SEQ_CST);
            start_inference(r, payload_length(r->payload));
        }
        return;
    case PHASE_STREAM_WRITE:
        request_done(r);
        if (!ok) {
            fail(r, GRPC_STATUS_CANCELLED, "the stream broke");
            finish(r, false);
        } else {
            stream_read(r, false);
        }
        return;
    case PHASE_FINISHING:
        rpc_free(r);
        return;
    }
}

static void *queue_thread(void *arg)
{
    struct grpc_frontend *f = arg;
    static atomic_int next_index;
    int index = atomic_fetch_add(&next_index, 1) % f->n_threads;
    thread_session = f->srv->options.grpc_first_session >= 0 ? f->srv->options.grpc_first_session + index : -1;
    for (;;) {
        grpc_event ev = grpc_completion_queue_next(f->cq, gpr_inf_future(GPR_CLOCK_REALTIME), NULL);
        if (ev.type == GRPC_QUEUE_SHUTDOWN)
            break;
        if (ev.type != GRPC_OP_COMPLETE)
            continue;
        if (ev.tag == &f->shutdown_tag) {
            pthread_mutex_lock(&f->lock);
            atomic_store(&f->server_down, true);
            pthread_cond_broadcast(&f->down);
            pthread_mutex_unlock(&f->lock);
            continue;
        }
        on_event(ev.tag, ev.success != 0);
    }
    return NULL;
}

/* ---- start and stop ------------------------------------------------------ */

/* A PEM file's text, NUL-terminated (gRPC takes strings); NULL after
 * logging why. */
static char *read_pem(const char *flag, const char *path)
{
    FILE *f = fopen(path, "rb");
    char *text = NULL;
    size_t len = 0;
    if (f) {
        text = malloc(1 << 20);
        len = text ? fread(text, 1, (1 << 20) - 1, f) : 0;
        if (text && (ferror(f) || !feof(f) || len == 0)) {
            free(text);
            text = NULL;
        }
        fclose(f);
    }
    if (!text) {
        log_event(LOG_ERROR, "cannot start gRPC: cannot read the PEM file (missing, empty, unreadable or over 1 MiB)",
                  "option", flag, "path", path, NULL);
        return NULL;
    }
    text[len] = '\0';
    return text;
}

/* Plaintext (h2c) credentials, or TLS ones from the PEM files asked for. */
static grpc_server_credentials *server_credentials(const serve_options *o)
{
    if (!o->grpc_tls_cert)
        return grpc_insecure_server_credentials_create();
    char *cert = read_pem("--grpc-tls-cert", o->grpc_tls_cert);
    char *key = cert ? read_pem("--grpc-tls-key", o->grpc_tls_key) : NULL;
    char *client_ca = key && o->grpc_tls_client_ca ? read_pem("--grpc-tls-client-ca", o->grpc_tls_client_ca) : NULL;
    grpc_server_credentials *creds = NULL;
    if (key && (client_ca || !o->grpc_tls_client_ca)) {
        grpc_ssl_pem_key_cert_pair pair = {.private_key = key, .cert_chain = cert};
        creds = grpc_ssl_server_credentials_create_ex(
            client_ca, &pair, 1,
            client_ca ? GRPC_SSL_REQUEST_AND_REQUIRE_CLIENT_CERTIFICATE_AND_VERIFY
                      : GRPC_SSL_DONT_REQUEST_CLIENT_CERTIFICATE,
            NULL);
    }
    free(cert);
    free(key);
    free(client_ca);
    return creds;
}

static void on_grpc_log(gpr_log_func_args *args)
{
    log_event(args->severity == GPR_LOG_SEVERITY_ERROR ? LOG_WARNING : LOG_DEBUG, "grpc", "detail", args->message,
              NULL);
}

grpc_frontend *grpc_frontend_start(server *srv)
{
    const serve_options *o = &srv->options;
    gpr_set_log_function(on_grpc_log);
    grpc_init();
    struct grpc_frontend *f = calloc(1, sizeof(*f));
    if (!f) {
        grpc_shutdown();
        return NULL;
    }
    f->srv = srv;
    pthread_mutex_init(&f->lock, NULL);
    pthread_cond_init(&f->down, NULL);
    /* Messages up to --max-body, as HTTP bodies; answers of any size. No
     * SO_REUSEPORT: a second server must not silently share the port. */
    grpc_arg args[3];
    args[0].type = GRPC_ARG_INTEGER;
    args[0].key = (char *)GRPC_ARG_MAX_RECEIVE_MESSAGE_LENGTH;
    args[0].value.integer = o->max_body > INT_MAX ? INT_MAX : (int)o->max_body;
    args[1].type = GRPC_ARG_INTEGER;
    args[1].key = (char *)GRPC_ARG_MAX_SEND_MESSAGE_LENGTH;
    args[1].value.integer = -1;
    args[2].type = GRPC_ARG_INTEGER;
    args[2].key = (char *)GRPC_ARG_ALLOW_REUSEPORT;
    args[2].value.integer = 0;
    grpc_channel_args channel_args = {.num_args = 3, .args = args};
    f->server = grpc_server_create(&channel_args, NULL);
    f->cq = grpc_completion_queue_create_for_next(NULL);
    grpc_server_register_completion_queue(f->server, f->cq, NULL);
    for (int m = 0; m < N_METHODS; m++) {
        char path[64];
        snprintf(path, sizeof(path), SERVICE "%s", method_names[m]);
        f->methods[m] = grpc_server_register_method(
            f->server, path, NULL,
            m == MODEL_STREAM_INFER ? GRPC_SRM_PAYLOAD_NONE : GRPC_SRM_PAYLOAD_READ_INITIAL_BYTE_BUFFER, 0);
    }
    /* the one name accepted without a resolver, as for HTTP */
    const char *host = strcmp(o->host, "localhost") == 0 ? "127.0.0.1" : o->host;
    struct in6_addr v6;
    char address[128];
    snprintf(address, sizeof(address), inet_pton(AF_INET6, host, &v6) == 1 ? "[%s]:%d" : "%s:%d", host,
             o->grpc_port);
    grpc_server_credentials *creds = server_credentials(o);
    int port = creds ? grpc_server_add_http2_port(f->server, address, creds) : 0;
    if (creds)
        grpc_server_credentials_release(creds);
    char port_text[16];
    snprintf(port_text, sizeof(port_text), "%d", o->grpc_port);
    if (port <= 0) {
        if (creds)
            log_event(LOG_ERROR,
                      o->grpc_tls_cert ? "cannot listen for gRPC (address in use or not permitted, or the TLS "
                                         "certificate and key are not a valid PEM pair)"
                                       : "cannot listen for gRPC (address in use or not permitted)",
                      "host", o->host, "port", port_text, NULL);
        grpc_server_destroy(f->server);
        grpc_completion_queue_shutdown(f->cq);
        while (grpc_completion_queue_next(f->cq, gpr_inf_future(GPR_CLOCK_REALTIME), NULL).type != GRPC_QUEUE_SHUTDOWN) {
        }
        grpc_completion_queue_destroy(f->cq);
        free(f);
        grpc_shutdown();
        return NULL;
    }
    grpc_server_start(f->server);
    for (int m = 0; m <= N_METHODS; m++)
        for (int k = 0; k < PENDING_PER_METHOD; k++)
            request_call(f, (enum method)m);
    f->n_threads = o->grpc_threads > 0 ? o->grpc_threads : 1;
    f->threads = calloc((size_t)f->n_threads, sizeof(*f->threads));
    int started = 0;
    while (f->threads && started < f->n_threads && pthread_create(&f->threads[started], NULL, queue_thread, f) == 0)
        started++;
    f->n_threads = started;
    if (started == 0) {
        log_event(LOG_ERROR, "cannot start the gRPC threads", NULL);
        grpc_frontend_quiesce(f);
        grpc_frontend_stop(f);
        return NULL;
    }
    snprintf(port_text, sizeof(port_text), "%d", port);
    log_event(LOG_INFO, "listening", "protocol", o->grpc_tls_cert ? "grpc+tls" : "grpc", "host", o->host, "port",
              port_text, NULL);
    return f;
}

void grpc_frontend_quiesce(grpc_frontend *f)
{
    if (!f || atomic_exchange(&f->quiescing, true))
        return;
    grpc_server_shutdown_and_notify(f->server, f->cq, &f->shutdown_tag);
}

void grpc_frontend_stop(grpc_frontend *f)
{
    if (!f)
        return;
    grpc_frontend_quiesce(f);
    grpc_server_cancel_all_calls(f->server);
    if (f->n_threads > 0) {
        pthread_mutex_lock(&f->lock);
        while (!atomic_load(&f->server_down))
            pthread_cond_wait(&f->down, &f->lock);
        pthread_mutex_unlock(&f->lock);
    } else {
        while (!atomic_load(&f->server_down)) {
            grpc_event ev = grpc_completion_queue_next(f->cq, gpr_inf_future(GPR_CLOCK_REALTIME), NULL);
            if (ev.type == GRPC_OP_COMPLETE && ev.tag == &f->shutdown_tag)
                atomic_store(&f->server_down, true);
            else if (ev.type == GRPC_OP_COMPLETE)
                on_event(ev.tag, ev.success != 0);
        }
    }
    grpc_completion_queue_shutdown(f->cq);
    for (int i = 0; i < f->n_threads; i++)
        pthread_join(f->threads[i], NULL);
    grpc_server_destroy(f->server);
    grpc_completion_queue_destroy(f->cq);
    pthread_mutex_destroy(&f->lock);
    pthread_cond_destroy(&f->down);
    free(f->threads);
    free(f);
    grpc_shutdown();
}
