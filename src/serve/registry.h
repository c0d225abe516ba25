/*
 * registry.h — the models a server holds: loaded, warmed up, with one engine
 * session per worker, their labels and the sample row of the book's API.
 * A model is ready only after it loaded and answered one warm-up inference.
 * Thread safety: built before the server starts; read-only afterwards,
 * except each session, which only its worker touches.
 */
#ifndef INFERD_SERVE_REGISTRY_H
#define INFERD_SERVE_REGISTRY_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>

#include "inferd/inferd.h"

typedef struct served_model {
    char *name;
    char *version;
    char *path;
    ifd_model *model;
    ifd_session **sessions;   /* one per worker */
    int n_sessions;
    json_t *labels;           /* parsed labels: {"0": "setosa", ...} */
    json_t *sample;           /* rows the book's API predicts by default */
    json_t *sample_prediction;/* the warm-up's answer for them */
    int probability_output;   /* output the book's /predict answers with */
    double load_seconds;
    double run_seconds;       /* fastest warm-up inference: decides inline serving */
    bool ready;
    const char *golden_status;/* golden samples at load: "passed", "failed" or "none" */
    json_t *manifest;         /* the store's model.json, when the source gave it */
    char *origin;             /* "bundle", a URI, ...; NULL: the file at path */
} served_model;

typedef struct registry {
    served_model **models;
    size_t n_models;
    int n_sessions;
    int threads_per_session;
} registry;

typedef struct model_source {
    const char *path;
    const char *name;         /* NULL: from the file name */
    const char *version;      /* NULL: "1" */
    const char *labels_path;  /* NULL: none */
    const char *sample_json;  /* NULL: the book's default row or zeros */
    /* A model held in memory (a bundle's payload): path then only names it. */
    const void *model_data;
    size_t model_size;
    const char *labels_text;  /* labels.json's text instead of labels_path */
    const char *manifest_text;/* model.json's text, kept for GET /v2/inventory */
    const char *origin;       /* where the model came from, for the inventory */
} model_source;

/* Load, warm up and add a model. On failure err holds a one-line reason. */
bool registry_add(registry *reg, const model_source *source, char *err, size_t err_size);
/* Add every DIR/<name>/<version>/model.onnx (+ labels.json). */
bool registry_add_repository(registry *reg, const char *dir, char *err, size_t err_size);
/* version NULL or "" means the highest version of that name. */
served_model *registry_find(const registry *reg, const char *name, const char *version);
served_model *registry_default(const registry *reg);
bool registry_all_ready(const registry *reg);
void registry_free(registry *reg);

/* Run m on worker `worker`'s session. outputs gets ifd_model_output_count
 * values owned by the caller. err gets the engine's message on failure. */
ifd_status registry_run(served_model *m, int worker, ifd_value *const *inputs, ifd_value **outputs,
                        char *err, size_t err_size);

/* Probabilities (or scores) of each row from the outputs of one run, as the
 * book's API returns them: a JSON array of arrays of numbers. */
json_t *registry_probabilities(const served_model *m, ifd_value *const *outputs);

#endif /* INFERD_SERVE_REGISTRY_H */
