/*
 * model_config.c — parsing and checking config.json. Every check that can
 * be made without the repository is made here, so that a bad config is
 * refused whole, with the field and the reason, before anything loads;
 * whether the versions it names exist is checked by the model set.
 */
#include "model_config.h"

#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "inferd/inferd.h"

/* Fields of a Triton model config that describe what inferd reads from the
 * ONNX file itself (or runs its own way): accepted and ignored. */
static const char *const triton_fields[] = {
    "name",
    "platform",
    "backend",
    "runtime",
    "input",
    "output",
    "batch_input",
    "batch_output",
    "instance_group",
    "sequence_batching",
    "ensemble_scheduling",
    "default_model_filename",
    "cc_model_filenames",
    "metric_tags",
    "parameters",
    "model_warmup",
    "optimization",
    "model_operations",
    "model_transaction_policy",
    "model_repository_agents",
    "response_cache",
};

void model_config_default(model_config *c)
{
    memset(c, 0, sizeof(*c));
    /* inferd has always served every version of a repository model (the
     * newest by default, any one pinned by path); a config.json narrows it */
    c->policy = VERSION_POLICY_ALL;
    c->latest = 1;
    c->max_queue_delay_us = -1;
}

static bool fail(char *err, size_t n, const char *origin, const char *field, const char *reason);

/* Batching fields: inferd's top-level names, or inside Triton's
 * dynamic_batching (its names). `field` is the name as written. */
static bool parse_batch_field(const char *field, json_t *value, const char *origin,
                              model_config *c, char *err, size_t n)
{
    if (strcmp(field, "max_queue_delay_us") == 0 || strcmp(field, "max_queue_delay_microseconds") == 0) {
        /* Triton's JSON config gives uint64 as strings too */
        json_int_t us = -1;
        if (json_is_integer(value))
            us = json_integer_value(value);
        else if (json_is_string(value))
            us = (json_int_t)strtoll(json_string_value(value), NULL, 10);
        if (us < 0 || us > 10000000)
            return fail(err, n, origin, field, "must be a whole number of microseconds from 0 to 10000000");
        c->max_queue_delay_us = (long)us;
        return true;
    }
    if (strcmp(field, "preferred_batch_sizes") == 0 || strcmp(field, "preferred_batch_size") == 0) {
        if (!json_is_array(value) ||
            json_array_size(value) > sizeof(c->preferred_batch_sizes) / sizeof(c->preferred_batch_sizes[0]))
            return fail(err, n, origin, field, "must be a list of at most 8 batch sizes");
        size_t i;
        json_t *size;
        json_array_foreach(value, i, size)
        {
            if (!json_is_integer(size) || json_integer_value(size) < 1 || json_integer_value(size) > 1 << 20)
                return fail(err, n, origin, field, "each batch size must be a whole number from 1 to 1048576");
            c->preferred_batch_sizes[i] = (int)json_integer_value(size);
        }
        c->n_preferred_batch_sizes = json_array_size(value);
        return true;
    }
    if (strcmp(field, "max_queue_size") == 0) {
        if (!json_is_integer(value) || json_integer_value(value) < 0 || json_integer_value(value) > 1 << 20)
            return fail(err, n, origin, field, "must be a whole number from 0 to 1048576");
        c->max_queue_size = (int)json_integer_value(value);
        return true;
    }
    return fail(err, n, origin, field, "unknown batching field");
}

static bool parse_dynamic_batching(json_t *value, const char *origin, model_config *c, char *err,
                                   size_t n)
{
    if (!json_is_object(value))
        return fail(err, n, origin, "dynamic_batching", "must be an object");
    const char *key;
    json_t *field;
    json_object_foreach(value, key, field)
    {
        if (strcmp(key, "default_queue_policy") == 0) {
            json_t *size = json_object_get(field, "max_queue_size");
            if (size && !parse_batch_field("max_queue_size", size, origin, c, err, n))
                return false;
        } else if (strcmp(key, "max_queue_delay_microseconds") == 0 ||
                   strcmp(key, "preferred_batch_size") == 0) {
            if (!parse_batch_field(key, field, origin, c, err, n))
                return false;
        }
        /* Triton's other scheduling fields (priority levels, ...) do not apply */
    }
    return true;
}

bool model_version_name_valid(const char *s)
{
    size_t n = strlen(s);
    if (n == 0 || n >= MODEL_VERSION_NAME_MAX || n > 18)
        return false;
    for (; *s; s++)
        if (*s < '0' || *s > '9')
            return false;
    return true;
}

static bool fail(char *err, size_t n, const char *origin, const char *field, const char *reason)
{
    snprintf(err, n, "%s: %s: %s", origin, field, reason);
    return false;
}

static bool version_number(const json_t *j, long long *out)
{
    if (json_is_integer(j) && json_integer_value(j) >= 0) {
        *out = json_integer_value(j);
        return true;
    }
    if (json_is_string(j) && model_version_name_valid(json_string_value(j))) {
        *out = strtoll(json_string_value(j), NULL, 10);
        return true;
    }
    return false;
}

static bool parse_policy(const json_t *policy, const char *origin, model_config *c, char *err,
                         size_t n)
{
    const char *field = "version_policy";
    if (!json_is_object(policy) || json_object_size(policy) != 1)
        return fail(err, n, origin, field,
                    "must be an object with one of \"latest\", \"all\", \"specific\"");
    const json_t *latest = json_object_get(policy, "latest");
    const json_t *all = json_object_get(policy, "all");
    const json_t *specific = json_object_get(policy, "specific");
    if (latest) {
        /* TF Serving: {"latest": N}; Triton: {"latest": {"num_versions": N}} */
        const json_t *count =
            json_is_object(latest) ? json_object_get(latest, "num_versions") : latest;
        if (!json_is_integer(count) || json_integer_value(count) < 1 ||
            json_integer_value(count) > MODEL_CONFIG_MAX_VERSIONS)
            return fail(err, n, origin, "version_policy.latest",
                        "must be a whole number from 1 to 64");
        c->policy = VERSION_POLICY_LATEST;
        c->latest = (int)json_integer_value(count);
        return true;
    }
    if (all) {
        if (!json_is_true(all) && !(json_is_object(all) && json_object_size(all) == 0))
            return fail(err, n, origin, "version_policy.all",
                        "must be true (or {} as Triton writes it)");
        c->policy = VERSION_POLICY_ALL;
        return true;
    }
    if (specific) {
        const json_t *list =
            json_is_object(specific) ? json_object_get(specific, "versions") : specific;
        if (!json_is_array(list) || json_array_size(list) == 0 ||
            json_array_size(list) > MODEL_CONFIG_MAX_VERSIONS)
            return fail(err, n, origin, "version_policy.specific",
                        "must be a list of 1 to 64 version numbers");
        c->policy = VERSION_POLICY_SPECIFIC;
        for (size_t i = 0; i < json_array_size(list); i++) {
            long long v;
            if (!version_number(json_array_get(list, i), &v))
                return fail(err, n, origin, "version_policy.specific",
                            "every entry must be a version number (digits)");
            for (size_t k = 0; k < c->n_specific; k++)
                if (c->specific[k] == v)
                    return fail(err, n, origin, "version_policy.specific",
                                "a version is listed twice");
            c->specific[c->n_specific++] = v;
        }
        return true;
    }
    return fail(err, n, origin, field,
                "must be an object with one of \"latest\", \"all\", \"specific\"");
}

static bool parse_traffic(const json_t *traffic, const char *origin, model_config *c, char *err,
                          size_t n)
{
    if (!json_is_object(traffic) || json_object_size(traffic) == 0 ||
        json_object_size(traffic) > MODEL_CONFIG_MAX_VERSIONS)
        return fail(err, n, origin, "traffic", "must be an object {\"<version>\": <percent>, ...}");
    const char *version;
    const json_t *weight;
    int total = 0;
    json_object_foreach((json_t *)traffic, version, weight)
    {
        char field[96];
        snprintf(field, sizeof(field), "traffic.%.60s", version);
        if (!model_version_name_valid(version))
            return fail(err, n, origin, field, "a version is a number (digits only)");
        if (!json_is_integer(weight) || json_integer_value(weight) < 0 ||
            json_integer_value(weight) > 100)
            return fail(err, n, origin, field, "the weight must be a whole percent from 0 to 100");
        traffic_share *s = &c->traffic[c->n_traffic++];
        snprintf(s->version, sizeof(s->version), "%s", version);
        s->weight = (int)json_integer_value(weight);
        total += s->weight;
    }
    if (total != 100) {
        char reason[96];
        snprintf(reason, sizeof(reason), "the weights must add up to 100 (they add up to %d)",
                 total);
        return fail(err, n, origin, "traffic", reason);
    }
    return true;
}

static bool header_name_valid(const char *s)
{
    if (!*s || strlen(s) >= 128)
        return false;
    for (; *s; s++)
        if (!((*s >= 'a' && *s <= 'z') || (*s >= 'A' && *s <= 'Z') || (*s >= '0' && *s <= '9') ||
              strchr("!#$%&'*+-.^_`|~", *s)))
            return false;
    return true;
}

static bool number_in(const json_t *j, double lo, double hi, double *out)
{
    if (!json_is_number(j))
        return false;
    double v = json_number_value(j);
    if (!(v >= lo && v <= hi))
        return false;
    *out = v;
    return true;
}

static bool parse_shadow(const json_t *shadow, const char *origin, model_config *c, char *err,
                         size_t n)
{
    if (!json_is_object(shadow))
        return fail(err, n, origin, "shadow",
                    "must be an object {\"version\": \"3\", \"percent\": 100}");
    const char *key;
    const json_t *value;
    json_object_foreach((json_t *)shadow, key, value)
    {
        if (strcmp(key, "version") && strcmp(key, "percent") && strcmp(key, "queue") &&
            strcmp(key, "tolerance")) {
            char field[96];
            snprintf(field, sizeof(field), "shadow.%.60s", key);
            return fail(err, n, origin, field,
                        "unknown field (version, percent, queue, tolerance)");
        }
    }
    const json_t *version = json_object_get(shadow, "version");
    long long number;
    if (!version || !version_number(version, &number))
        return fail(err, n, origin, "shadow.version", "must name a version (digits)");
    snprintf(c->shadow.version, sizeof(c->shadow.version), "%lld", number);
    c->shadow.percent = 100;
    c->shadow.queue = 256;
    c->shadow.tolerance = 1e-4;
    const json_t *percent = json_object_get(shadow, "percent");
    if (percent && !number_in(percent, 0, 100, &c->shadow.percent))
        return fail(err, n, origin, "shadow.percent", "must be a number from 0 to 100");
    double queue;
    const json_t *queue_json = json_object_get(shadow, "queue");
    if (queue_json) {
        if (!json_is_integer(queue_json) || !number_in(queue_json, 1, 65536, &queue))
            return fail(err, n, origin, "shadow.queue", "must be a whole number from 1 to 65536");
        c->shadow.queue = (int)queue;
    }
    const json_t *tolerance = json_object_get(shadow, "tolerance");
    if (tolerance && !number_in(tolerance, 0, 1e30, &c->shadow.tolerance))
        return fail(err, n, origin, "shadow.tolerance", "must be a number >= 0");
    c->shadow.enabled = true;
    return true;
}

static bool parse_rollback(const json_t *rollback, const char *origin, model_config *c, char *err,
                           size_t n)
{
    if (!json_is_object(rollback))
        return fail(err, n, origin, "rollback",
                    "must be an object {\"max_error_rate\": 0.01, \"min_agreement\": 0.95, "
                    "\"window\": 500}");
    const char *key;
    const json_t *value;
    json_object_foreach((json_t *)rollback, key, value)
    {
        if (strcmp(key, "max_error_rate") && strcmp(key, "min_agreement") &&
            strcmp(key, "window")) {
            char field[96];
            snprintf(field, sizeof(field), "rollback.%.60s", key);
            return fail(err, n, origin, field,
                        "unknown field (max_error_rate, min_agreement, window)");
        }
    }
    c->rollback.max_error_rate = -1;
    c->rollback.min_agreement = -1;
    c->rollback.window = 500;
    const json_t *rate = json_object_get(rollback, "max_error_rate");
    if (rate && !number_in(rate, 0, 1, &c->rollback.max_error_rate))
        return fail(err, n, origin, "rollback.max_error_rate", "must be a fraction from 0 to 1");
    const json_t *agreement = json_object_get(rollback, "min_agreement");
    if (agreement && !number_in(agreement, 0, 1, &c->rollback.min_agreement))
        return fail(err, n, origin, "rollback.min_agreement", "must be a fraction from 0 to 1");
    const json_t *window = json_object_get(rollback, "window");
    double w;
    if (window) {
        if (!json_is_integer(window) || !number_in(window, 1, 1000000, &w))
            return fail(err, n, origin, "rollback.window",
                        "must be a whole number of requests from 1 to 1000000");
        c->rollback.window = (int)w;
    }
    if (!rate && !agreement)
        return fail(err, n, origin, "rollback", "give max_error_rate, min_agreement or both");
    c->rollback.enabled = true;
    return true;
}

bool model_config_parse(const char *text, const char *origin, const char *model_name,
                        model_config *c, char *err, size_t n)
{
    model_config_default(c);
    json_error_t je;
    json_t *root = json_loads(text, JSON_REJECT_DUPLICATES, &je);
    if (!root) {
        snprintf(err, n, "%s: line %d column %d: %s", origin, je.line, je.column, je.text);
        return false;
    }
    bool ok = json_is_object(root);
    if (!ok)
        fail(err, n, origin, "(top level)", "must be a JSON object");
    const char *key;
    json_t *value;
    json_object_foreach(root, key, value)
    {
        if (!ok)
            break;
        if (strcmp(key, "version_policy") == 0) {
            ok = parse_policy(value, origin, c, err, n);
        } else if (strcmp(key, "traffic") == 0) {
            ok = parse_traffic(value, origin, c, err, n);
        } else if (strcmp(key, "sticky") == 0) {
            ok = json_is_string(value) && header_name_valid(json_string_value(value));
            if (ok)
                snprintf(c->sticky_header, sizeof(c->sticky_header), "%s",
                         json_string_value(value));
            else
                fail(err, n, origin, "sticky", "must be an HTTP header name such as \"X-User-ID\"");
        } else if (strcmp(key, "mode_field") == 0) {
            ok = json_is_boolean(value);
            c->mode_field = json_is_true(value);
            if (!ok)
                fail(err, n, origin, "mode_field", "must be true or false");
        } else if (strcmp(key, "shadow") == 0) {
            ok = parse_shadow(value, origin, c, err, n);
        } else if (strcmp(key, "rollback") == 0) {
            ok = parse_rollback(value, origin, c, err, n);
        } else if (strcmp(key, "graph_opt") == 0) {
            const char *level = json_is_string(value) ? json_string_value(value) : "";
            c->graph_opt = strcmp(level, "none") == 0    ? IFD_GRAPH_OPT_NONE
                           : strcmp(level, "basic") == 0 ? IFD_GRAPH_OPT_BASIC
                           : strcmp(level, "all") == 0   ? IFD_GRAPH_OPT_ALL
                                                         : 0;
            ok = c->graph_opt != 0;
            if (!ok)
                fail(err, n, origin, "graph_opt", "must be \"none\", \"basic\" or \"all\"");
        } else if (strcmp(key, "max_batch_size") == 0) {
            ok = json_is_integer(value) && json_integer_value(value) >= 0 &&
                 json_integer_value(value) <= 1 << 20;
            c->max_batch_size = ok ? (int)json_integer_value(value) : 0;
            if (!ok)
                fail(err, n, origin, "max_batch_size", "must be a whole number from 0 to 1048576");
        } else if (strcmp(key, "max_queue_delay_us") == 0 || strcmp(key, "preferred_batch_sizes") == 0 ||
                   strcmp(key, "max_queue_size") == 0) {
            ok = parse_batch_field(key, value, origin, c, err, n);
        } else if (strcmp(key, "dynamic_batching") == 0) {
            ok = parse_dynamic_batching(value, origin, c, err, n);
        } else {
            bool triton = false;
            for (size_t i = 0; i < sizeof(triton_fields) / sizeof(triton_fields[0]); i++)
                triton = triton || strcmp(key, triton_fields[i]) == 0;
            if (!triton) {
                ok = fail(err, n, origin, key,
                          "unknown field (version_policy, traffic, sticky, mode_field, shadow, "
                          "rollback, max_batch_size, max_queue_delay_us, preferred_batch_sizes, "
                          "max_queue_size, graph_opt, or a Triton model config field)");
            } else if (strcmp(key, "name") == 0 && model_name &&
                       (!json_is_string(value) ||
                        strcmp(json_string_value(value), model_name) != 0)) {
                char reason[256];
                snprintf(reason, sizeof(reason), "names another model than '%.200s'", model_name);
                ok = fail(err, n, origin, "name", reason);
            }
        }
    }
    if (ok && c->sticky_header[0] && c->n_traffic == 0)
        ok = fail(err, n, origin, "sticky", "needs a \"traffic\" split to keep users on");
    if (ok && c->rollback.enabled && c->rollback.min_agreement >= 0 && !c->shadow.enabled)
        ok = fail(err, n, origin, "rollback.min_agreement",
                  "needs a \"shadow\" version to compare with");
    json_decref(root);
    return ok;
}

bool model_config_wants(const model_config *c, long long version, const long long *available,
                        size_t n)
{
    switch (c->policy) {
    case VERSION_POLICY_ALL: return true;
    case VERSION_POLICY_SPECIFIC:
        for (size_t i = 0; i < c->n_specific; i++)
            if (c->specific[i] == version)
                return true;
        return false;
    case VERSION_POLICY_LATEST: {
        size_t newer = 0;
        for (size_t i = 0; i < n; i++)
            newer += available[i] > version;
        return newer < (size_t)c->latest;
    }
    }
    return false;
}
