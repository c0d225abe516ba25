/*
 * pipeline.h — inference graphs over served models: the book's prep-pred,
 * serial and parallel (horizontal) microservice patterns, and KServe's
 * Switch, run in one process when the models are local and over KServe V2
 * REST when a step is remote.
 *
 * A pipeline is read from DIR/<pipeline>/pipeline.json (format in
 * README.md, "Pipelines") into a tree of steps, validated against the
 * models that serve at that moment (every model and step exists, no cycle,
 * the names, dtypes and shapes flowing between steps line up) and then run
 * many times. A run passes engine values between local steps in memory:
 * a step reads the values it needs by name from the values produced so far
 * (borrowed, never copied) and adds its outputs. A model step asks the
 * live model set for a version per request, so version policies and
 * canaries apply to pipelines too.
 *
 * Parallel branches run on a small pool of branch threads owned by the
 * pipeline set (branch_pool.h), never on the server's worker pool: the
 * caller queues the branches, runs the first itself and then runs every
 * branch no branch thread has started yet, so it only ever waits for work
 * that is already running and can never deadlock, whatever the pool size.
 *
 * A model step whose version batches joins the version's batch queue and
 * gives its thread back (pipeline_run_then): the run goes on from the
 * batch's completion, so requests through a pipeline batch with every
 * other request of that model and hold no HTTP worker while they wait.
 *
 * Thread safety: a loaded pipeline is immutable except its remote steps'
 * connection pools and circuit breakers (locked) and its step statistics
 * (locked); pipeline_run may be called from any thread with a session
 * index that no other thread uses at the same time.
 */
#ifndef INFERD_PIPELINE_PIPELINE_H
#define INFERD_PIPELINE_PIPELINE_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>

#include "inferd/inferd.h"
#include "model_set.h"

typedef struct pipeline pipeline;
typedef struct branch_pool branch_pool;
typedef struct step_stats step_stats;

/* Where a run failed, as the HTTP status a server answers with. */
typedef enum pipeline_status {
    PIPELINE_OK = 200,
    PIPELINE_BAD_INPUT = 400,   /* the request does not fit the first steps */
    PIPELINE_BUSY = 429,        /* a model step's batch queue is full */
    PIPELINE_INTERNAL = 500,
    PIPELINE_BAD_GATEWAY = 502, /* a remote step answered garbage or a 5xx, or failed */
    PIPELINE_UNAVAILABLE = 503, /* a model step's model serves no version */
    PIPELINE_TIMEOUT = 504,     /* a remote step did not answer in its timeout_ms, or a batch its deadline */
} pipeline_status;

/* What a pipeline needs from its surroundings at load and at run time. */
typedef struct pipeline_env {
    model_set *models;
    branch_pool *branches;        /* NULL: branches run one after the other */
    /* per-step statistics live here so that they survive reloads; NULL: none */
    step_stats *(*stats_for)(void *context, const char *pipeline, const char *step);
    void *stats_context;
} pipeline_env;

/* Read and validate dir/pipeline.json. NULL with err naming the file, the
 * step and the reason. A remote step that cannot be reached does not fail
 * the load: *not_ready (when given) gets the reason. Only when that step is
 * the entry (so the pipeline's inputs are unknown) is NULL returned with
 * not_ready still set: worth retrying later. */
pipeline *pipeline_load(const char *dir, const char *name, const pipeline_env *env, char *not_ready,
                        size_t not_ready_size, char *err, size_t err_size);
/* The same from JSON text (name: the pipeline's name, origin: the file the
 * text came from, for messages). */
pipeline *pipeline_load_text(const char *text, const char *name, const char *origin,
                             const pipeline_env *env, char *not_ready, size_t not_ready_size,
                             char *err, size_t err_size);

pipeline *pipeline_ref(pipeline *p);
void pipeline_unref(pipeline *p);

const char *pipeline_name(const pipeline *p);
/* The signature: the first steps' inputs and the last steps' outputs. */
size_t pipeline_input_count(const pipeline *p);
const ifd_io_info *pipeline_input(const pipeline *p, size_t index);
size_t pipeline_output_count(const pipeline *p);
const ifd_io_info *pipeline_output(const pipeline *p, size_t index);

/* The book's fan-out view of a pipeline whose top step is parallel: its
 * branch names (the labels /predict/label answers) and which score column
 * of each branch's output means "yes". 0 branches otherwise. */
size_t pipeline_branch_count(const pipeline *p);
const char *pipeline_branch_label(const pipeline *p, size_t index);
int pipeline_branch_score_index(const pipeline *p);
/* The labels of the last model step (its labels.json), for /predict/label
 * of a pipeline that is not parallel; NULL when it has none. Borrowed. */
const json_t *pipeline_labels(const pipeline *p);

/* The graph as text (one step a line, indented) or Graphviz dot. */
char *pipeline_describe(const pipeline *p, bool dot);

/* ---- running ------------------------------------------------------------- */

typedef struct pipeline_request {
    int session;                  /* the calling thread's session index */
    const char *request_id;       /* sent on as X-Request-ID and logged */
    const char *traceparent;      /* W3C traceparent received, or NULL */
    header_lookup headers;        /* sticky traffic splits of model steps */
    void *header_context;
    bool trace;                   /* collect each step's timing */
    double deadline;              /* batch_clock() seconds after which a model step still
                                     waiting in a batch queue fails with 504; 0: none */
} pipeline_request;

typedef struct pipeline_result {
    pipeline_status status;
    char error[1024];             /* names the step and the reason */
    ifd_value **outputs;          /* pipeline_output_count values, in signature order */
    /* top-level parallel branches: each branch's scored output (or NULL
     * when an optional branch failed), for the book's fan-out answers */
    ifd_value **branch_outputs;
    json_t *skipped;              /* ["step: reason", ...] optional branches left out, or NULL */
    json_t *trace;                /* [{"step", "seconds", "status"}] when asked, else NULL */
} pipeline_result;

/* inputs: pipeline_input_count values in signature order (borrowed).
 * Returns when the run is over; a model step whose version batches waits
 * for its batch on the calling thread. */
void pipeline_run(pipeline *p, const pipeline_env *env, const pipeline_request *request,
                  ifd_value *const *inputs, pipeline_result *result);

/* The end of pipeline_run_then: result is valid during the call only; the
 * callee may take values out of it (setting their slots to NULL). */
typedef void (*pipeline_done)(void *context, pipeline_result *result);

/* The same without holding the calling thread while a model step waits for
 * its batch: the step queues on the batch queue and this returns; the run
 * goes on on a branch thread of env->branches when the batch answers (see
 * pipeline_run.c). `done` is called exactly once, on the calling thread
 * before this returns when no step had to wait (or env->branches has no
 * threads: then the run waits as pipeline_run does), else later on a
 * branch thread. request is copied; the strings and the header context it
 * points to, p and inputs must stay valid until `done`. */
void pipeline_run_then(pipeline *p, const pipeline_env *env, const pipeline_request *request,
                       ifd_value *const *inputs, pipeline_done done, void *context);
void pipeline_result_free(pipeline *p, pipeline_result *result);

/* Prometheus text of the step statistics (both series families). */
void step_stats_render(step_stats *const *stats, size_t count, FILE *out);

#endif /* INFERD_PIPELINE_PIPELINE_H */
