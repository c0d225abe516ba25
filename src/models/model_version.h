/*
 * model_version.h — one version of one model, loaded and ready to serve:
 * the engine model, one session per serving thread (plus one for shadow
 * copies), its labels, the sample rows of the book's API and what the
 * load learned (warm-up time, golden samples, sha256).
 *
 * A version is reference counted. The model set holds one reference while
 * the version is listed; every request that is answered by it holds one
 * from the moment it is chosen until its answer is sent. So retiring a
 * version (a swap, an unload) only unlists it: the requests in flight
 * finish on it, and the last of them frees it. Nothing ever runs on a
 * version that is not fully loaded, because a version is listed only after
 * model_version_load() returned it whole.
 * Thread safety: immutable after load except the sessions (session i is
 * used by serving thread i only) and the reference count (atomic).
 */
#ifndef INFERD_MODELS_MODEL_VERSION_H
#define INFERD_MODELS_MODEL_VERSION_H

#include <jansson.h>
#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

#include "inferd/inferd.h"

/* What identifies the bytes of a model file without reading them: a file
 * replaced (rename) or rewritten gets a new fingerprint. */
typedef struct file_fingerprint {
    dev_t device;
    ino_t inode;
    off_t size;
    long long mtime_ns;
} file_fingerprint;

/* The last `size` outcomes of one kind (1 = bad), for rollback decisions. */
typedef struct outcome_window {
    unsigned char *marks;
    int size, next, count, bad;
} outcome_window;

typedef struct model_version {
    char *name;
    char *version;
    char *path;
    ifd_model *model;
    ifd_session **sessions; /* n_sessions; the last one is the shadow thread's */
    int n_sessions;
    json_t *labels;            /* {"0": "setosa", ...} or NULL */
    json_t *sample;            /* rows the book's API predicts by default */
    json_t *sample_prediction; /* the warm-up's answer for them */
    int probability_output;    /* output the book's /predict answers with */
    double load_seconds;
    double run_seconds;        /* fastest warm-up inference: decides inline serving */
    bool ready;                /* loaded, warmed up and its golden samples reproduce */
    const char *golden_status; /* "passed", "failed" or "none" */
    json_t *manifest;          /* the store's model.json, when given or found beside */
    bool manifest_beside;      /* found beside the model file: the file is a stored model */
    char *origin;              /* "bundle", a URI, ...; NULL: the file at path */
    char sha256[65];           /* of the bytes loaded; "" when they came from memory */
    double loaded_at;          /* Unix time the version became loadable */
    file_fingerprint fingerprint;
    int refs; /* atomic */

    /* What serving learned of this version, guarded by stats_lock: answers
     * and failures, and shadow comparisons against the live answers. */
    pthread_mutex_t stats_lock;
    outcome_window failures;      /* 1 = the inference failed */
    outcome_window disagreements; /* 1 = the shadow answer disagreed */
    unsigned long long answered, failed;
    unsigned long long shadow_agreed, shadow_disagreed, shadow_failed;
    double shadow_max_abs_diff;
    double failure_limit;   /* rollback's max_error_rate in force */
    double agreement_floor; /* rollback's min_agreement in force, < 0: none */
    unsigned serving_flags; /* atomic; set by the model set */
    int threads_per_session;
    /* Adaptive batching (batcher.h): created by the model set when the
     * model's config turns batching on, freed with the version. Atomic
     * pointer: the request path reads it without the set's lock. */
    struct batcher *batcher;
} model_version;

typedef struct model_source {
    const char *path;
    const char *name;        /* NULL: from the file name */
    const char *version;     /* NULL: "1" */
    const char *labels_path; /* NULL: none */
    const char *sample_json; /* NULL: the book's default row or zeros */
    /* A model held in memory (a bundle's payload): path then only names it. */
    const void *model_data;
    size_t model_size;
    const char *labels_text;     /* labels.json's text instead of labels_path */
    const char *manifest_text;   /* model.json's text, kept for GET /v2/inventory */
    const char *origin;          /* where the model came from, for the inventory */
    const char *expected_sha256; /* refuse the file unless its bytes hash to this */
} model_source;

typedef struct version_load_options {
    int n_sessions; /* serving threads + 1 for shadow copies */
    int threads_per_session;
    ifd_graph_opt graph_opt; /* the loader's optimisation level (--graph-opt) */
} version_load_options;

/* Read, check (unsupported operators, sha256, golden samples), create the
 * sessions and warm every one up. Returns a version holding one reference,
 * or NULL with a one-line reason in err. A version whose golden samples do
 * not reproduce is returned with ready false and the report in err. */
model_version *model_version_load(const model_source *source, const version_load_options *options,
                                  char *err, size_t err_size);

model_version *model_version_ref(model_version *v);
/* Drop one reference; the last one frees the version. */
void model_version_unref(model_version *v);

/* Run on session `session` (a serving thread's index). outputs gets
 * ifd_model_output_count values owned by the caller. */
ifd_status model_version_run(model_version *v, int session, ifd_value *const *inputs,
                             ifd_value **outputs, char *err, size_t err_size);

/* Probabilities (or scores) of each row from the outputs of one run, as the
 * book's API returns them: a JSON array of arrays of numbers. */
json_t *model_version_probabilities(const model_version *v, ifd_value *const *outputs);

/* The same answer as numbers: rows x cols floats (malloc'd), for comparing
 * two versions' answers. False when the output is not numeric. */
bool model_version_scores(const model_version *v, ifd_value *const *outputs, float **scores,
                          size_t *rows, size_t *cols);

/* Record one outcome; false when the window could not be sized. */
void outcome_window_reset(outcome_window *w, int size);
void outcome_window_add(outcome_window *w, bool bad);

bool file_fingerprint_read(const char *path, file_fingerprint *out);
bool file_fingerprint_equal(const file_fingerprint *a, const file_fingerprint *b);

#endif /* INFERD_MODELS_MODEL_VERSION_H */
