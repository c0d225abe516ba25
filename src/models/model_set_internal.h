/*
 * model_set_internal.h — what the files of the live model set share and no
 * one else sees: the set's structure, the shadow queue's jobs and the
 * functions one file calls in another. model_set.c owns the structure and
 * the request path, model_load.c the transactions that change it (load,
 * unload, traffic, the poll), repository.c reading the repository
 * directory, shadow.c the shadow copies and their comparison.
 */
#ifndef INFERD_MODELS_MODEL_SET_INTERNAL_H
#define INFERD_MODELS_MODEL_SET_INTERNAL_H

#include <limits.h>
#include <pthread.h>
#include <stdint.h>

#include "log.h"
#include "model_set.h"

#define SERVE_OUTCOMES 1u /* record answers for the error-rate rollback */
#define SHADOW_SOURCE 2u  /* copy requests to the model's shadow version */
#define MAX_CONFIG_BYTES (1 << 20)
#define MAX_MODEL_NAME 127

typedef struct shadow_job {
    struct shadow_job *next;
    model_version *shadow; /* referenced */
    ifd_value **inputs;    /* copies */
    size_t n_inputs;
    float *live_scores;
    size_t rows, cols;
    double tolerance;
} shadow_job;

struct model_set {
    model_set_options options;
    char *repository; /* realpath of options.repository, or NULL */
    pthread_rwlock_t lock;
    model_entry **entries; /* sorted by name */
    size_t n_entries;

    pthread_mutex_t poll_lock;
    pthread_cond_t poll_wake;
    pthread_t poll_thread;
    bool poll_running;
    bool stopping; /* atomic: read by the poll and shadow threads */

    pthread_mutex_t shadow_lock;
    pthread_cond_t shadow_wake;
    pthread_t shadow_thread;
    bool shadow_running;
    shadow_job *shadow_head, *shadow_tail;
    size_t shadow_queued;
    shadow_totals shadow_counts;
};

typedef struct version_file {
    char version[MODEL_VERSION_NAME_MAX];
    char path[PATH_MAX + 16];
    char labels[PATH_MAX + 16];
    bool has_labels;
    char sha256[65];              /* from model.json, or "" */
    file_fingerprint fingerprint; /* of model.onnx */
    file_fingerprint sidecars[2]; /* labels.json, model.json (zero when absent) */
} version_file;

/* model_set.c */
bool repository_name_valid(const char *name);
/* DIR/<name> holds a pipeline.json: a pipeline (src/pipeline), not a model. */
bool repository_is_pipeline(const model_set *set, const char *name);
long long version_number_of(const char *version);
uint64_t model_set_random(void);
void model_set_log(log_level level, const char *message, const char *model, const char *version,
                   const char *key, const char *value);
model_entry *model_set_entry_add(model_set *set, const char *name); /* write lock held */
version_status *model_set_status_row(model_entry *e, const char *version, bool create);
int model_set_listed_index(const model_entry *e, const model_version *v);
int model_set_baseline_index(const model_entry *e);
void model_set_refresh_flags(model_entry *e); /* write lock held */
void model_set_roll_back(model_set *set, model_version *v, const char *reason);
void model_set_release_list(model_version **versions, size_t n);

/* model_load.c */
version_load_options model_set_load_options(const model_set *set);
model_version **model_set_publish(model_entry *e, model_version **versions, size_t n,
                                  const model_config *config, size_t *n_old);
void *model_set_poll_main(void *set);

/* repository.c */
bool repository_confined_path(const model_set *set, const char *rel, char *out, size_t n);
size_t repository_scan_versions(const model_set *set, const char *name, version_file **out);
char *repository_read_config(const model_set *set, const char *name, file_fingerprint *fp,
                             char *err, size_t n);
char *repository_signature(const model_set *set, const char *name);

/* shadow.c */
void shadow_offer(model_set *set, model_version *live, ifd_value *const *inputs,
                  ifd_value **outputs);
void *shadow_thread_main(void *set);

#endif /* INFERD_MODELS_MODEL_SET_INTERNAL_H */
