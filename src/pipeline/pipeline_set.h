/*
 * pipeline_set.h — the pipelines a server serves: every
 * DIR/<pipeline>/pipeline.json of the repository, loaded after the models
 * and changed as the model set's control mode says (none: what loaded at
 * start; poll: re-read when the file changes, dropped when it leaves;
 * explicit: only the repository API loads and unloads). A pipeline that
 * fails validation is never served; when it replaces one that served, the
 * old one keeps serving and the index says why the new one was refused.
 * A swap never disturbs a request: each request holds the pipeline it
 * started with.
 *
 * The set also owns the branch threads of parallel steps and the step
 * statistics behind /metrics.
 * Thread safety: every function may be called from any thread.
 */
#ifndef INFERD_PIPELINE_PIPELINE_SET_H
#define INFERD_PIPELINE_PIPELINE_SET_H

#include <jansson.h>
#include <stdbool.h>
#include <stdio.h>

#include "model_set.h"
#include "pipeline.h"

typedef struct pipeline_set_options {
    const char *repository;   /* NULL: no pipelines */
    model_set *models;
    model_control control;
    double poll_interval;     /* seconds */
    int branch_threads;       /* threads running parallel branches */
    int first_branch_session; /* session index of the first branch thread */
} pipeline_set_options;

typedef struct pipeline_set pipeline_set;

pipeline_set *pipeline_set_create(const pipeline_set_options *options);
void pipeline_set_free(pipeline_set *set);

/* Every pipeline of the repository. With control none an invalid pipeline
 * stops the start (false + err); otherwise it is listed UNAVAILABLE. */
bool pipeline_set_load_repository(pipeline_set *set, char *err, size_t err_size);
bool pipeline_set_start(pipeline_set *set); /* the poll thread, in poll mode */

/* Is `name` a pipeline of this set (loaded or refused)? */
bool pipeline_set_has(pipeline_set *set, const char *name);
/* Is `name` a pipeline here or in the repository (DIR/<name>/pipeline.json)? */
bool pipeline_set_claims(pipeline_set *set, const char *name);
/* The pipeline that answers `name`, with a reference for the caller
 * (pipeline_unref when answered); NULL with err when it does not serve. */
pipeline *pipeline_set_acquire(pipeline_set *set, const char *name, char *err, size_t err_size);
const pipeline_env *pipeline_set_env(pipeline_set *set);

/* The repository API: load (re-read) and unload one pipeline. */
admin_result pipeline_set_load(pipeline_set *set, const char *name, char *err, size_t err_size);
admin_result pipeline_set_unload(pipeline_set *set, const char *name, char *err, size_t err_size);
/* Rows for the repository index: {"name", "version", "state", "reason", "pipeline": true}. */
void pipeline_set_index(pipeline_set *set, json_t *index, bool ready_only);

void pipeline_set_render_metrics(pipeline_set *set, FILE *out);

#endif /* INFERD_PIPELINE_PIPELINE_SET_H */
