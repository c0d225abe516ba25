/*
 * model_set.h — the live set of models a server holds: for every model its
 * config and the versions that serve, and everything that changes them
 * while requests are answered: load (read, version guard, warm-up, then
 * atomically visible), swap, drain (a replaced version finishes what it
 * began and is freed by its last request), unload, the repository poll,
 * the traffic policy (weighted and sticky splits), shadow copies compared
 * with the live answer, and automatic rollback of a misbehaving canary.
 *
 * The HTTP layer asks it for a version per request (model_set_acquire),
 * runs on it (model_set_run, which also feeds rollback and shadow) and
 * gives it back (model_version_unref); the repository API calls the load,
 * unload and index functions. The set never calls the HTTP layer.
 *
 * Thread safety: every function may be called from any thread. The
 * structure (entries, listed versions, configs, weights) is guarded by one
 * reader/writer lock: requests take it for reading for the few
 * instructions of a lookup; loads do all their slow work (reading, warm-up)
 * outside it and take it for writing only to publish. The entries may be
 * read directly between model_set_read_lock and model_set_read_unlock.
 */
#ifndef INFERD_MODELS_MODEL_SET_H
#define INFERD_MODELS_MODEL_SET_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>

#include "batcher.h"
#include "model_config.h"
#include "model_version.h"

typedef enum model_control {
    MODEL_CONTROL_NONE,     /* what loaded at start serves until the end */
    MODEL_CONTROL_POLL,     /* the repository is scanned every poll_interval seconds */
    MODEL_CONTROL_EXPLICIT, /* only the repository API changes what serves */
} model_control;

typedef enum version_state {
    VERSION_READY,
    VERSION_LOADING,
    VERSION_UNLOADING,
    VERSION_UNAVAILABLE,
} version_state;

const char *version_state_name(version_state state); /* "READY", ... as Triton names them */

/* One row of the repository index: a version that serves, is loading, or
 * could not load (and why). */
typedef struct version_status {
    char version[MODEL_VERSION_NAME_MAX];
    version_state state;
    char reason[512];
    file_fingerprint refused; /* the file a failed load refused: not retried until it changes */
    bool has_refused;
} version_status;

typedef struct model_entry {
    char *name;
    model_config config;
    model_version **versions; /* listed versions, ascending version number */
    int *weights;             /* per listed version: share of traffic in force, percent */
    char (*rolled_back)[256]; /* per listed version: why its weight went to 0, or "" */
    size_t n_versions;
    version_status *status; /* every version the index shows */
    size_t n_status;
    char reason[512];     /* why the model serves nothing (unloaded, ...) or "" */
    bool busy;            /* a load or unload of this model is running */
    bool unloaded;        /* unloaded by request: the poll leaves it alone */
    bool from_repository; /* false: a model given on the command line or in a bundle */
    file_fingerprint config_fingerprint;
    bool has_config_file;
    unsigned long long loads_ok, loads_failed, rollbacks;
    const batch_settings *batch_defaults; /* the set's options.batching */
    char *poll_pending; /* poll thread only: the signature seen at the last scan */
    char *poll_applied; /* poll thread only: the signature last loaded (or refused) */
} model_entry;

typedef struct model_set_options {
    int serving_sessions; /* serving threads: the set adds one session for shadow copies */
    int threads_per_session;
    ifd_graph_opt graph_opt; /* --graph-opt: every version loads at this level */
    model_control control;
    double poll_interval;   /* seconds */
    const char *repository; /* DIR of DIR/<name>/<version>/model.onnx, or NULL */
    /* Adaptive batching of the models whose config.json does not set
     * max_batch_size (serve's --max-batch-size and friends); the fields a
     * config leaves out come from here too. */
    batch_settings batching;
} model_set_options;

typedef struct model_set model_set;

model_set *model_set_create(const model_set_options *options);
/* Stops the background threads and drops the set's references. */
void model_set_free(model_set *set);

/* At start: one model from a file, a bundle or the store (never reloaded). */
bool model_set_add_source(model_set *set, const model_source *source, char *err, size_t err_size);
/* At start: every model of the repository, each as its config asks. With
 * control none a model that cannot load stops the start (false + err);
 * otherwise it shows UNAVAILABLE in the index and the rest serve. */
bool model_set_load_repository(model_set *set, char *err, size_t err_size);
/* Start the poll thread (control poll) and the shadow thread. */
bool model_set_start(model_set *set);

/* ---- the request path ---------------------------------------------------- */

typedef const char *(*header_lookup)(void *context, const char *name);

typedef enum acquire_result {
    ACQUIRE_OK,
    ACQUIRE_UNKNOWN_MODEL,
    ACQUIRE_UNKNOWN_VERSION,
    ACQUIRE_NOT_SERVING, /* known, but no version serves (unloaded, failed) */
} acquire_result;

typedef struct acquired {
    model_version *version; /* holds a reference: model_version_unref when answered */
    bool mode_field;        /* the book's A/B "mode" field is asked for */
} acquired;

/* The version that answers a request for `name` (NULL: the default model,
 * the first by name) and `version` (NULL or "": the traffic policy
 * chooses; sticky splits read the header through `headers`). On failure
 * err says why in words a client can act on. */
acquire_result model_set_acquire(model_set *set, const char *name, const char *version,
                                 header_lookup headers, void *header_context, acquired *out,
                                 char *err, size_t err_size);

/* Run a request on an acquired version. Records the outcome for rollback
 * and, when the model has a shadow, queues a copy of the inputs for it
 * (never delaying this call beyond the copy). */
ifd_status model_set_run(model_set *set, model_version *version, int session,
                         ifd_value *const *inputs, ifd_value **outputs, char *err, size_t err_size);

/* The same with a deadline (CLOCK_MONOTONIC seconds, batch_clock(); 0:
 * none) for a version that batches: the call waits on the version's batch
 * queue. A request that cannot share a batch (more rows than
 * max_batch_size, a string or scalar input) never queues: it runs at once
 * on `session`, as without batching, so turning batching on never changes
 * which requests succeed and a large request never holds up the queue
 * (Triton refuses such requests because its max_batch_size is what the
 * model accepts; here the model accepts any batch). On failure
 * *http_status (when not NULL) says how to answer: 400
 * the engine failed, 429 the batch queue is full, 504 the deadline passed
 * in the queue, 503 the version is going away. */
ifd_status model_set_run_until(model_set *set, model_version *version, int session,
                               ifd_value *const *inputs, ifd_value **outputs, double deadline,
                               int *http_status, char *err, size_t err_size);

/* Whether requests to this version queue for batches, so that a caller
 * that can give its thread back should use model_set_submit. */
bool model_set_batches(const model_version *version);

/* Completion of model_set_submit, on the thread that ran the batch: http_status 200
 * (outputs filled) or the status to answer with and why. */
typedef void (*model_run_done)(void *context, int http_status, const char *error);

/* Queue a request on the version's batcher without waiting. inputs and
 * outputs must stay valid until `done` is called. Returns 0 when queued
 * (done will be called once), else the status of the refusal (429, 503)
 * and done is not called. A request that cannot share a batch (see
 * model_set_run_until) runs at once on `session` and `done` is called
 * before this returns (0). With session >= 0 the calling thread may also
 * run the batch this request joins when no batch is running (see
 * batcher_submit's may_run_here): `done` may then be called, for this
 * and other requests, before this returns. Outcomes feed rollback and
 * shadow as model_set_run does. */
int model_set_submit(model_set *set, model_version *version, int session, ifd_value *const *inputs,
                     ifd_value **outputs, double deadline, model_run_done done, void *context,
                     char *err, size_t err_size);

/* Fastest warm-up inference among the versions that could answer a request
 * for name (NULL: default model); a large number when unknown. */
double model_set_run_seconds(model_set *set, const char *name, const char *version);

/* Every listed version of every model is ready and every model that should
 * serve has one. */
bool model_set_ready(model_set *set);

/* ---- the repository API -------------------------------------------------- */

typedef enum admin_result {
    ADMIN_OK,
    ADMIN_BAD_REQUEST, /* 400: a bad config, a load that failed */
    ADMIN_NOT_FOUND,   /* 404: no such model in the repository */
    ADMIN_CONFLICT,    /* 409: a load or unload of this model is running */
    ADMIN_NOT_ALLOWED, /* 400 (Triton's answer): the control mode does not allow it */
} admin_result;

/* Load (or reload) a model from the repository, with config_text instead
 * of its config.json when given. All or nothing: when any version the
 * config selects fails, what served before keeps serving. */
admin_result model_set_load(model_set *set, const char *name, const char *config_text, char *err,
                            size_t err_size);
admin_result model_set_unload(model_set *set, const char *name, char *err, size_t err_size);
/* Change only the traffic split of a served model (weights in percent). */
admin_result model_set_set_traffic(model_set *set, const char *name, const json_t *traffic,
                                   char *err, size_t err_size);
/* Triton's repository index: [{"name", "version", "state", "reason"}]. */
json_t *model_set_index(model_set *set, bool ready_only);
/* {"name", "versions": [{"version", "state", "weight", "reason", ...}], "config"} */
json_t *model_set_status(model_set *set, const char *name);

model_control model_set_control(const model_set *set);
const char *model_control_name(model_control control);
bool model_control_parse(const char *text, model_control *out);

/* ---- reading the entries (metrics, inventory, metadata) ------------------ */

void model_set_read_lock(model_set *set);
void model_set_read_unlock(model_set *set);
size_t model_set_count(const model_set *set); /* under the read lock */
model_entry *model_set_entry(const model_set *set, size_t index);
model_entry *model_set_find(const model_set *set, const char *name);
/* Percent of the requests naming no version that listed version i takes. */
int model_entry_share(const model_entry *e, size_t i);
/* The default model's entry (the book's API): the first by name that serves. */
model_entry *model_set_default(const model_set *set);

/* Counters since start that are not per model. */
typedef struct shadow_totals {
    unsigned long long offered, dropped;
} shadow_totals;
shadow_totals model_set_shadow_totals(model_set *set);

#endif /* INFERD_MODELS_MODEL_SET_H */
