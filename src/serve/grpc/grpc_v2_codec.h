/*
 * grpc_v2_codec.h — KServe V2 inference messages over gRPC
 * (proto/kserve/grpc_predict_v2.proto, compiled by protobuf-c) to engine
 * values and back. The decoder applies the same data contract as the REST
 * V2 path: every input checked against the model's signature
 * (check_input_contract: datatype, rank, fixed dimensions), element counts
 * and raw byte sizes checked against shape × datatype before anything is
 * allocated, integers range-checked. It knows nothing of the transport
 * (grpc_server.c) so the fuzzer drives it alone.
 *
 * Tensors come typed (InferTensorContents) or raw (raw_input_contents, one
 * entry per input, Triton's layout: little-endian elements, a BYTES element
 * as a 4-byte length and its bytes). Answers take the request's form, as
 * KServe's servers do: raw when the request was raw, typed otherwise; the
 * request parameter "binary_data_output" (Triton's name, a bool) overrides
 * it. One form for the whole answer, because raw_output_contents is indexed
 * like outputs; an FP16/BF16 output has no typed form and makes it raw. A ZipMap output (a sequence of maps) answers as FP32
 * [rows, classes] with the class keys in its parameter "keys" (JSON text),
 * as REST answers it.
 *
 * Thread safety: pure functions.
 */
#ifndef INFERD_SERVE_GRPC_V2_CODEC_H
#define INFERD_SERVE_GRPC_V2_CODEC_H

#include <grpc/status.h>
#include <stdbool.h>
#include <stddef.h>

#include "inferd/inferd.h"
#include "kserve/grpc_predict_v2.pb-c.h"

/* The most inputs or requested outputs one request may name. */
#define GRPC_V2_MAX_TENSORS 256

/* What a request is checked against: a model's or a pipeline's inputs and
 * outputs. */
typedef struct grpc_v2_signature {
    const void *owner;
    size_t n_inputs, n_outputs;
    const ifd_io_info *(*input)(const void *owner, size_t index);
    const ifd_io_info *(*output)(const void *owner, size_t index);
} grpc_v2_signature;

grpc_v2_signature grpc_v2_model_signature(const ifd_model *model);

/* A decoded request: inputs in the signature's order, and which outputs are
 * answered in which order and form. */
typedef struct grpc_v2_request {
    ifd_value **inputs; /* n_inputs, owned */
    size_t n_inputs;
    size_t order[GRPC_V2_MAX_TENSORS]; /* model output index of each answered output */
    size_t n_answered;
    bool raw_asked;   /* the request was raw, or asked binary_data_output */
} grpc_v2_request;

/* Decode `msg` for `sig` (a model named `model_name` in messages). On
 * failure the status (INVALID_ARGUMENT) and err say why, naming the input. */
grpc_status_code grpc_v2_decode(const Inference__ModelInferRequest *msg, const grpc_v2_signature *sig,
                                const char *model_name, grpc_v2_request *out, char *err, size_t n);
void grpc_v2_request_free(grpc_v2_request *r);

/* An answer message and everything it points to (released together). */
typedef struct grpc_v2_answer {
    Inference__ModelInferResponse message;
    void **owned;
    size_t n_owned, cap_owned;
    ifd_value **flattened; /* ZipMap outputs made FP32 tensors */
    size_t n_flattened;
} grpc_v2_answer;

/* Build the answer to a decoded request from the model's outputs (which
 * must outlive the answer: numeric tensors are referenced, not copied).
 * INTERNAL when an output cannot be encoded. */
grpc_status_code grpc_v2_encode(const grpc_v2_request *r, const grpc_v2_signature *sig, const char *name,
                                const char *version, const char *id, ifd_value *const *outputs,
                                grpc_v2_answer *out, char *err, size_t n);
void grpc_v2_answer_free(grpc_v2_answer *a);

#endif /* INFERD_SERVE_GRPC_V2_CODEC_H */
