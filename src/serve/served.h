/*
 * served.h — how a handler gets what answers its request: a model version
 * asked of the live model set (which applies the traffic policy, sticky
 * headers included) or a pipeline of the pipeline set, held by the
 * request until its answer is sent (so a swap or unload never frees what a
 * request is using), and named in the answer (X-Model-Version, the V2
 * model_version field, the book's A/B "mode" field).
 *
 * Handlers see models and pipelines through one served_target: its
 * signature and served_run. So every API decodes and encodes tensors with
 * the same code whichever answers; the HTTP layer never runs a pipeline's
 * steps itself.
 */
#ifndef INFERD_SERVE_SERVED_H
#define INFERD_SERVE_SERVED_H

#include "http.h"
#include "infer.h"
#include "model_set.h"
#include "pipeline_set.h"
#include "routes.h"

/* The version for the model and version the route names (an empty model
 * name: the default model of the book's API). On failure the error answer
 * is filled in and NULL returned. The request keeps the reference. */
model_version *served_acquire(http_request *req, const route_params *params);

/* Send an answer of src/infer: the request takes over its body. */
void served_answer(http_request *req, infer_answer *answer);

/* "<name>:<version>", as the book's A/B "mode" field and X-Model-Version say. */
const char *served_mode(const http_request *req, char *buf, size_t size);

typedef struct served_target {
    model_version *version; /* a model, or NULL */
    pipeline *pipeline;     /* a pipeline, or NULL */
} served_target;

/* The model or pipeline the route names (an empty name: the book API's
 * default, `serve --book-model` or the default model). False after an
 * error answer. The request keeps the reference. */
bool served_acquire_target(http_request *req, const route_params *params, served_target *out);
const char *served_target_name(const served_target *t);
const char *served_target_version(const served_target *t);
bool served_target_ready(const served_target *t);
size_t served_input_count(const served_target *t);
const ifd_io_info *served_input(const served_target *t, size_t index);
size_t served_output_count(const served_target *t);
const ifd_io_info *served_output(const served_target *t, size_t index);

/* What a run adds to its outputs. */
typedef struct served_extras {
    bool want_trace;           /* in: collect step timings (?trace=1 also asks) */
    json_t *parameters;        /* out: {"skipped_steps": [...], "trace": [...]} or NULL */
    ifd_value **branch_outputs;/* out: a parallel pipeline's branch scores (see pipeline.h) */
    size_t n_branches;
} served_extras;

/* The request's deadline from its X-Request-Timeout-Ms header, as
 * CLOCK_MONOTONIC seconds (0: none): a request still waiting in a batch
 * queue then is answered 504. False after a 400 for a malformed value. */
bool served_deadline(http_request *req, double *deadline);

/* Run on inputs in signature order; outputs gets served_output_count
 * values owned by the caller. On failure the error answer (400, 502, 503,
 * 504, naming the pipeline step; 429/504 from a model's batch queue) is
 * given and false returned. */
bool served_run(http_request *req, const served_target *t, int worker, ifd_value *const *inputs,
                ifd_value **outputs, served_extras *extras);
void served_extras_free(served_extras *extras);

/* What a handler does with a run's outputs: `ok` false when the run
 * failed and the error answer was already given. It answers (when ok),
 * frees `context` and everything the run used; it may run on the
 * batcher's thread, after the handler returned. */
typedef void (*served_finish)(http_request *req, void *context, bool ok);

/* served_run without holding the worker while a batch forms: on a model
 * version that batches, on a worker (the connection suspended), the
 * request is queued and the worker given back (http_defer); `finish` is
 * called by the batcher's thread when the batch ran. A pipeline on a
 * worker runs with pipeline_run_then: a model step that batches gives the
 * worker back the same way and `finish` is called by a branch thread of
 * the pipeline set once the last step ran. Otherwise (no batching, inline
 * on a polling thread) it runs at once and `finish` is called before this
 * returns. inputs and outputs must stay
 * valid until `finish`; `finish` is called exactly once either way. */
void served_run_then(http_request *req, const served_target *t, int worker,
                     ifd_value *const *inputs, ifd_value **outputs, served_extras *extras,
                     served_finish finish, void *context);

#endif /* INFERD_SERVE_SERVED_H */
