/*
 * registry.c — loads the models a server holds and keeps them ready.
 * Loading a model: engine load, one session per worker, labels, the sample
 * rows, and a warm-up inference on those rows (whose answer is also the
 * book's /metadata prediction_sample). A model whose warm-up fails is not
 * added: the server never reports ready with a model it cannot run.
 */
#include "registry.h"

#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include "log.h"
#include "store.h"
#include "tensor_json.h"

static double now_seconds(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static void served_model_free(served_model *m)
{
    if (!m)
        return;
    for (int i = 0; i < m->n_sessions; i++)
        ifd_session_free(m->sessions[i]);
    free(m->sessions);
    ifd_model_free(m->model);
    json_decref(m->labels);
    json_decref(m->sample);
    json_decref(m->sample_prediction);
    json_decref(m->manifest);
    free(m->origin);
    free(m->name);
    free(m->version);
    free(m->path);
    free(m);
}

static char *read_text(const char *path, char *err, size_t n)
{
    FILE *f = fopen(path, "rb");
    if (!f) {
        snprintf(err, n, "%s: %s", path, strerror(errno));
        return NULL;
    }
    struct stat st;
    if (fstat(fileno(f), &st) != 0 || !S_ISREG(st.st_mode) || st.st_size > (1 << 24)) {
        snprintf(err, n, "%s: not a regular file of at most 16 MiB", path);
        fclose(f);
        return NULL;
    }
    char *text = malloc((size_t)st.st_size + 1);
    size_t got = text ? fread(text, 1, (size_t)st.st_size, f) : 0;
    fclose(f);
    if (!text || got != (size_t)st.st_size) {
        snprintf(err, n, "%s: read failed", path);
        free(text);
        return NULL;
    }
    text[got] = '\0';
    return text;
}

/* The output the book's /predict answers with: the class probabilities
 * (skl2onnx's ZipMap sequence of maps, or a float matrix), else the last
 * float output. */
static int find_probability_output(const ifd_model *model)
{
    int fallback = -1;
    for (size_t i = 0; i < ifd_model_output_count(model); i++) {
        const ifd_type_info *t = &ifd_model_output(model, i)->type;
        if (t->kind == IFD_VALUE_SEQUENCE && t->elem_kind == IFD_VALUE_MAP)
            return (int)i;
        if (t->kind == IFD_VALUE_TENSOR && (t->dtype == IFD_FLOAT || t->dtype == IFD_DOUBLE))
            fallback = (int)i;
    }
    return fallback >= 0 ? fallback : 0;
}

/* The book's FastAPI request model defaults to one iris row; inferd keeps
 * that default for models shaped like it, and zeros for any other. */
static json_t *default_sample(const ifd_io_info *input)
{
    const ifd_type_info *t = &input->type;
    if (t->kind == IFD_VALUE_TENSOR && t->dtype == IFD_FLOAT && t->rank == 2 && t->dims[1] == 4)
        return json_pack("[[f,f,f,f]]", 5.1, 3.5, 1.4, 0.2);
    int64_t dims[IFD_MAX_RANK];
    int rank = t->rank < 0 ? 1 : t->rank;
    for (int i = 0; i < rank; i++)
        dims[i] = t->rank < 0 || t->dims[i] < 0 ? 1 : t->dims[i];
    ifd_value *zeros;
    ifd_error e;
    if (ifd_value_new_tensor(t->dtype, rank, dims, &zeros, &e) != IFD_OK)
        return NULL;
    if (t->dtype == IFD_STRING)
        for (int64_t i = 0; i < ifd_tensor_count(&zeros->tensor); i++) {
            ifd_string *s = &((ifd_string *)zeros->tensor.data)[i];
            s->data = calloc(1, 1);
        }
    json_t *sample = tensor_to_json_nested(&zeros->tensor);
    ifd_value_free(zeros);
    return sample;
}

json_t *registry_probabilities(const served_model *m, ifd_value *const *outputs)
{
    const ifd_value *v = outputs[m->probability_output];
    json_t *rows = json_array();
    if (v->kind == IFD_VALUE_SEQUENCE) {
        for (size_t r = 0; r < v->length; r++) {
            const ifd_value *map = v->items[r];
            json_t *row = json_array();
            if (map->kind == IFD_VALUE_MAP) {
                ifd_value flat = {.kind = IFD_VALUE_TENSOR, .tensor = map->map_values};
                json_decref(row);
                row = tensor_to_json_flat(&flat.tensor);
            }
            json_array_append_new(rows, row);
        }
        return rows;
    }
    if (v->kind != IFD_VALUE_TENSOR) {
        json_decref(rows);
        return value_to_json(v);
    }
    const ifd_tensor *t = &v->tensor;
    if (t->rank <= 1) {
        json_array_append_new(rows, tensor_to_json_flat(t));
        return rows;
    }
    json_decref(rows);
    return tensor_to_json_nested(t);
}

/* Zeros shaped like a declared input (unknown dimensions taken as 1). */
static ifd_value *zeros_for(const ifd_io_info *input, char *err, size_t n)
{
    json_t *rows = default_sample(input);
    ifd_value *x = rows ? json_rows_to_tensor(rows, input->type.dtype, err, n) : NULL;
    if (!rows)
        snprintf(err, n, "cannot make a zero tensor for input '%s'", input->name);
    json_decref(rows);
    return x;
}

/* Every session runs once: on the sample rows for one-input models (whose
 * answer /metadata shows), on zeros for models with several inputs. */
static bool warm_up(served_model *m, char *err, size_t n)
{
    size_t n_in = ifd_model_input_count(m->model), n_out = ifd_model_output_count(m->model);
    ifd_value **inputs = calloc(n_in ? n_in : 1, sizeof(*inputs));
    ifd_value **outputs = calloc(n_out ? n_out : 1, sizeof(*outputs));
    bool ok = inputs && outputs;
    if (!ok)
        snprintf(err, n, "out of memory");
    for (size_t i = 0; ok && i < n_in; i++) {
        const ifd_io_info *input = ifd_model_input(m->model, i);
        char reason[512];
        inputs[i] = m->sample ? json_rows_to_tensor(m->sample, input->type.dtype, reason, sizeof(reason))
                              : zeros_for(input, reason, sizeof(reason));
        if (!inputs[i]) {
            snprintf(err, n, "model '%s': %s do not fit input '%s': %s", m->name,
                     m->sample ? "sample rows" : "zeros", input->name, reason);
            ok = false;
        }
    }
    m->run_seconds = 1e9;
    for (int s = 0; ok && s < m->n_sessions; s++) {
        ifd_error e;
        struct timespec t0, t1;
        clock_gettime(CLOCK_MONOTONIC, &t0);
        ifd_status st = ifd_session_run(m->sessions[s], (const ifd_value *const *)inputs, outputs, &e);
        clock_gettime(CLOCK_MONOTONIC, &t1);
        double took = (double)(t1.tv_sec - t0.tv_sec) + (double)(t1.tv_nsec - t0.tv_nsec) * 1e-9;
        if (s > 0 && took < m->run_seconds)
            m->run_seconds = took; /* the first run of a process pays for page faults */
        if (st != IFD_OK) {
            snprintf(err, n, "model '%s': warm-up inference failed: %s", m->name, e.message);
            ok = false;
            break;
        }
        if (s == 0 && m->sample)
            m->sample_prediction = registry_probabilities(m, outputs);
        for (size_t k = 0; k < n_out; k++)
            ifd_value_free(outputs[k]);
    }
    for (size_t i = 0; inputs && i < n_in; i++)
        ifd_value_free(inputs[i]);
    free(inputs);
    free(outputs);
    return ok;
}

/* The golden samples recorded at import (model.json's golden_samples,
 * given by the source or lying beside the model file) run again at every
 * load: an engine change that alters predictions leaves the model loaded
 * but not ready, with the report in the log, instead of serving it. */
static bool golden_recheck(served_model *m)
{
    json_t *manifest = m->manifest ? json_incref(m->manifest) : NULL;
    if (!manifest) {
        char path[4400];
        const char *slash = strrchr(m->path, '/');
        snprintf(path, sizeof(path), "%.*smodel.json", slash ? (int)(slash - m->path + 1) : 0, m->path);
        struct stat st;
        if (stat(path, &st) == 0)
            manifest = json_load_file(path, 0, NULL);
    }
    const json_t *golden = json_object_get(manifest, "golden_samples");
    bool ok = true;
    m->golden_status = "none";
    if (json_is_object(golden)) {
        char label[300], report[4096];
        snprintf(label, sizeof(label), "model '%s:%s'", m->name, m->version);
        ok = golden_samples_check_model(m->model, label, golden, report, sizeof(report));
        m->golden_status = ok ? "passed" : "failed";
        if (!ok)
            log_event(LOG_ERROR, "golden samples failed: model not ready", "model", m->name,
                      "version", m->version, "reason", report, NULL);
    }
    json_decref(manifest);
    return ok;
}

bool registry_add(registry *reg, const model_source *src, char *err, size_t n)
{
    double start = now_seconds();
    served_model *m = calloc(1, sizeof(*m));
    if (!m) {
        snprintf(err, n, "out of memory");
        return false;
    }
    const char *base = strrchr(src->path, '/');
    base = base ? base + 1 : src->path;
    const char *dot = strrchr(base, '.');
    m->name = src->name ? strdup(src->name) : strndup(base, dot ? (size_t)(dot - base) : strlen(base));
    m->version = strdup(src->version ? src->version : "1");
    m->path = strdup(src->path);
    ifd_error e;
    if (!m->name || !m->version || !m->path) {
        snprintf(err, n, "out of memory");
        goto fail;
    }
    if (registry_find(reg, m->name, m->version)) {
        snprintf(err, n, "model '%s' version %s is given twice", m->name, m->version);
        goto fail;
    }
    if ((src->model_data ? ifd_model_load_memory(src->model_data, src->model_size, NULL, NULL,
                                                  &m->model, &e)
                         : ifd_model_load_file(src->path, NULL, &m->model, &e)) != IFD_OK) {
        snprintf(err, n, "%s", e.message);
        goto fail;
    }
    m->sessions = calloc((size_t)reg->n_sessions, sizeof(*m->sessions));
    if (!m->sessions) {
        snprintf(err, n, "out of memory");
        goto fail;
    }
    ifd_session_options options = {.threads = reg->threads_per_session};
    for (int i = 0; i < reg->n_sessions; i++) {
        if (ifd_session_create(m->model, &options, &m->sessions[i], &e) != IFD_OK) {
            snprintf(err, n, "%s: %s", src->path, e.message);
            goto fail;
        }
        m->n_sessions++;
    }
    if (src->labels_path || src->labels_text) {
        json_error_t je;
        const char *labels_name = src->labels_text ? "embedded labels.json" : src->labels_path;
        char *file_text = src->labels_text ? NULL : read_text(src->labels_path, err, n);
        if (!src->labels_text && !file_text)
            goto fail;
        m->labels = json_loads(src->labels_text ? src->labels_text : file_text, 0, &je);
        free(file_text);
        if (!m->labels || !json_is_object(m->labels)) {
            snprintf(err, n, "%s: line %d: %s", labels_name, je.line,
                     m->labels ? "labels must be a JSON object {\"0\": \"name\", ...}" : je.text);
            goto fail;
        }
    }
    if (src->manifest_text) {
        json_error_t je;
        if (!(m->manifest = json_loads(src->manifest_text, 0, &je))) {
            snprintf(err, n, "%s: model.json: line %d: %s", src->path, je.line, je.text);
            goto fail;
        }
    }
    if (src->origin && !(m->origin = strdup(src->origin))) {
        snprintf(err, n, "out of memory");
        goto fail;
    }
    m->probability_output = find_probability_output(m->model);
    if (ifd_model_input_count(m->model) == 1) {
        if (src->sample_json) {
            json_error_t je;
            m->sample = json_loads(src->sample_json, 0, &je);
            if (!m->sample) {
                snprintf(err, n, "--sample: invalid JSON: %s", je.text);
                goto fail;
            }
        } else {
            m->sample = default_sample(ifd_model_input(m->model, 0));
        }
        if (!m->sample) {
            snprintf(err, n, "model '%s': cannot make a sample for input '%s'", m->name,
                     ifd_model_input(m->model, 0)->name);
            goto fail;
        }
    }
    /* models with several inputs are warmed up too (on zeros): ready means
     * every model ran once */
    if (!warm_up(m, err, n))
        goto fail;
    m->load_seconds = now_seconds() - start;
    m->ready = golden_recheck(m);
    served_model **grown = realloc(reg->models, (reg->n_models + 1) * sizeof(*grown));
    if (!grown) {
        snprintf(err, n, "out of memory");
        goto fail;
    }
    reg->models = grown;
    reg->models[reg->n_models++] = m;
    return true;
fail:
    served_model_free(m);
    return false;
}

static bool is_version_name(const char *s)
{
    if (!*s)
        return false;
    for (; *s; s++)
        if (*s < '0' || *s > '9')
            return false;
    return true;
}

static int by_version(const struct dirent **a, const struct dirent **b)
{
    long long x = strtoll((*a)->d_name, NULL, 10), y = strtoll((*b)->d_name, NULL, 10);
    return x < y ? -1 : x > y;
}

static int is_version_entry(const struct dirent *d) { return is_version_name(d->d_name); }

/* Models are read in name order (and versions in number order), so the
 * default model of the book's API, the first one, does not depend on the
 * order the file system lists directories in. */
bool registry_add_repository(registry *reg, const char *dir, char *err, size_t n)
{
    struct dirent **names;
    int n_names = scandir(dir, &names, NULL, alphasort);
    if (n_names < 0) {
        snprintf(err, n, "%s: %s", dir, strerror(errno));
        return false;
    }
    bool ok = true;
    size_t before = reg->n_models;
    for (int i = 0; ok && i < n_names; i++) {
        const struct dirent *name = names[i];
        if (name->d_name[0] == '.')
            continue;
        char path[4096];
        snprintf(path, sizeof(path), "%s/%s", dir, name->d_name);
        struct dirent **versions;
        int n_versions = scandir(path, &versions, is_version_entry, by_version);
        if (n_versions < 0)
            continue;
        for (int k = 0; k < n_versions; k++) {
            const struct dirent *ver = versions[k];
            if (!ok)
                continue;
            char model_path[4400], labels_path[4400];
            struct stat st;
            snprintf(model_path, sizeof(model_path), "%s/%s/model.onnx", path, ver->d_name);
            snprintf(labels_path, sizeof(labels_path), "%s/%s/labels.json", path, ver->d_name);
            if (stat(model_path, &st) != 0)
                continue;
            model_source src = {.path = model_path, .name = name->d_name, .version = ver->d_name,
                                .labels_path = stat(labels_path, &st) == 0 ? labels_path : NULL};
            ok = registry_add(reg, &src, err, n);
        }
        for (int k = 0; k < n_versions; k++)
            free(versions[k]);
        free(versions);
    }
    for (int i = 0; i < n_names; i++)
        free(names[i]);
    free(names);
    if (ok && reg->n_models == before) {
        snprintf(err, n, "%s: no models found (expected <name>/<version>/model.onnx)", dir);
        ok = false;
    }
    return ok;
}

served_model *registry_find(const registry *reg, const char *name, const char *version)
{
    served_model *best = NULL;
    for (size_t i = 0; i < reg->n_models; i++) {
        served_model *m = reg->models[i];
        if (strcmp(m->name, name) != 0)
            continue;
        if (version && *version) {
            if (strcmp(m->version, version) == 0)
                return m;
        } else if (!best || strtoll(m->version, NULL, 10) > strtoll(best->version, NULL, 10)) {
            best = m;
        }
    }
    return best;
}

served_model *registry_default(const registry *reg)
{
    return reg->n_models ? registry_find(reg, reg->models[0]->name, NULL) : NULL;
}

bool registry_all_ready(const registry *reg)
{
    for (size_t i = 0; i < reg->n_models; i++)
        if (!reg->models[i]->ready)
            return false;
    return reg->n_models > 0;
}

void registry_free(registry *reg)
{
    for (size_t i = 0; i < reg->n_models; i++)
        served_model_free(reg->models[i]);
    free(reg->models);
    reg->models = NULL;
    reg->n_models = 0;
}

ifd_status registry_run(served_model *m, int worker, ifd_value *const *inputs, ifd_value **outputs,
                        char *err, size_t n)
{
    ifd_error e;
    int index = worker >= 0 && worker < m->n_sessions ? worker : 0;
    ifd_status st = ifd_session_run(m->sessions[index], (const ifd_value *const *)inputs, outputs, &e);
    if (st != IFD_OK)
        snprintf(err, n, "%s", e.message);
    return st;
}
