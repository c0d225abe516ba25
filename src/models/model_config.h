/*
 * model_config.h — a model's config.json (DIR/<name>/config.json, or the
 * "config" parameter of a repository load request): which versions to
 * serve, how traffic is split between them, which version runs in the
 * shadow of the live one, and when a canary is rolled back.
 *
 *   {"version_policy": {"latest": 1} | {"all": true} | {"specific": [1, 3]},
 *    "traffic": {"1": 90, "2": 10}, "sticky": "X-User-ID", "mode_field": true,
 *    "shadow": {"version": "3", "percent": 100, "queue": 256, "tolerance": 1e-4},
 *    "rollback": {"max_error_rate": 0.01, "min_agreement": 0.95, "window": 500},
 *    "max_batch_size": 64, "max_queue_delay_us": 2000, "preferred_batch_sizes": [16, 32],
 *    "max_queue_size": 1024, "graph_opt": "none" | "basic" | "all"}
 *
 * max_batch_size > 1 turns on adaptive batching (src/models/batcher.c);
 * Triton's "dynamic_batching": {"max_queue_delay_microseconds",
 * "preferred_batch_size", "default_queue_policy": {"max_queue_size"}} is
 * read too.
 *
 * Triton's spelling of the version policy ({"latest": {"num_versions": 1}},
 * {"all": {}}, {"specific": {"versions": [1]}}) is accepted too, and so are
 * the other fields of a Triton model config (name, platform, input, ...),
 * which inferd reads from the model itself and so ignores, so that
 * Triton's client can send the config it would send to Triton.
 * Thread safety: plain data; parse into a fresh value.
 */
#ifndef INFERD_MODELS_MODEL_CONFIG_H
#define INFERD_MODELS_MODEL_CONFIG_H

#include <stdbool.h>
#include <stddef.h>

#define MODEL_CONFIG_MAX_VERSIONS 64
#define MODEL_VERSION_NAME_MAX 32

typedef enum version_policy_kind {
    VERSION_POLICY_LATEST,
    VERSION_POLICY_ALL,
    VERSION_POLICY_SPECIFIC,
} version_policy_kind;

typedef struct traffic_share {
    char version[MODEL_VERSION_NAME_MAX];
    int weight; /* percent */
} traffic_share;

typedef struct model_config {
    version_policy_kind policy;
    int latest; /* VERSION_POLICY_LATEST: how many */
    long long specific[MODEL_CONFIG_MAX_VERSIONS];
    size_t n_specific;
    traffic_share traffic[MODEL_CONFIG_MAX_VERSIONS];
    size_t n_traffic;        /* 0: every request goes to the newest version */
    char sticky_header[128]; /* "": no stickiness */
    bool mode_field;         /* the book's A/B "mode" field in book-API answers */
    struct {
        bool enabled;
        char version[MODEL_VERSION_NAME_MAX];
        double percent;
        int queue;        /* copies waiting at most; more are dropped */
        double tolerance; /* regressors: largest absolute difference that agrees */
    } shadow;
    struct {
        bool enabled;
        double max_error_rate; /* < 0: not checked */
        double min_agreement;  /* < 0: not checked */
        int window;
    } rollback;
    int max_batch_size; /* 0: not given */
    long max_queue_delay_us; /* < 0: not given */
    int preferred_batch_sizes[8];
    size_t n_preferred_batch_sizes;
    int max_queue_size; /* 0: not given */
    /* the loader's graph optimisation for versions loaded under this config
     * (an ifd_graph_opt); 0: the server's --graph-opt */
    int graph_opt;
} model_config;

/* The configuration of a model without a config.json: every version
 * loaded, requests that name none to the newest. */
void model_config_default(model_config *config);

/* Parse config.json text. `origin` names it in errors ("DIR/iris/config.json",
 * "the load request's config"); err names the field and the reason. */
bool model_config_parse(const char *text, const char *origin, const char *model_name,
                        model_config *out, char *err, size_t err_size);

/* Whether the policy selects this version among the available ones
 * (`available` ascending, n of them). */
bool model_config_wants(const model_config *config, long long version, const long long *available,
                        size_t n);

/* Whether a version name is a repository version (digits only). */
bool model_version_name_valid(const char *name);

#endif /* INFERD_MODELS_MODEL_CONFIG_H */
