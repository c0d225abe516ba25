/*
 * model_version.c — loading one model version so that it can serve at
 * once: the file is mapped once, the mapping hashed (the sha256 shown in the
 * inventory and checked against an expected one is the hash of the very
 * bytes the engine parses) and handed to the engine (ifd_model_load_mapped),
 * which reads aligned weights in place: every worker of a process, every
 * process and every version serving the same file share those pages through
 * the page cache instead of each holding a copy. The model store never
 * rewrites a file in place (a version appears and goes by rename, store.c),
 * and a mapping keeps its inode alive when the file is renamed over or
 * unlinked, so a served version keeps its bytes until it is freed. A file
 * truncated or rewritten in place under a mapping (cp over it) would change
 * the weights under the server, or kill it with SIGBUS: only files nobody
 * may write (no write bit: the store writes its models read-only) are
 * mapped; a writable file is read into a private copy, as before.
 * The version is then given one session per serving thread, and every
 * session answers one warm-up inference before it is returned.
 * The golden samples recorded at import run again: an engine or file change
 * that alters predictions leaves the version not ready, with the report.
 */
#include "model_version.h"

#include <errno.h>
#include <fcntl.h>
#include <malloc.h>
#include <openssl/evp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "batcher.h"
#include "store.h"
#include "tensor_json.h"

#define MAX_MODEL_BYTES (4ull << 30)

static double monotonic_seconds(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

bool file_fingerprint_read(const char *path, file_fingerprint *out)
{
    struct stat st;
    if (stat(path, &st) != 0)
        return false;
    out->device = st.st_dev;
    out->inode = st.st_ino;
    out->size = st.st_size;
    out->mtime_ns = (long long)st.st_mtim.tv_sec * 1000000000ll + st.st_mtim.tv_nsec;
    return true;
}

bool file_fingerprint_equal(const file_fingerprint *a, const file_fingerprint *b)
{
    return a->device == b->device && a->inode == b->inode && a->size == b->size &&
           a->mtime_ns == b->mtime_ns;
}

void outcome_window_reset(outcome_window *w, int size)
{
    free(w->marks);
    memset(w, 0, sizeof(*w));
    w->marks = size > 0 ? calloc((size_t)size, 1) : NULL;
    w->size = w->marks ? size : 0;
}

void outcome_window_add(outcome_window *w, bool bad)
{
    if (!w->size)
        return;
    if (w->count == w->size)
        w->bad -= w->marks[w->next];
    else
        w->count++;
    w->marks[w->next] = bad;
    w->bad += bad;
    w->next = (w->next + 1) % w->size;
}

static void version_free(model_version *v)
{
    /* before the sessions and the model: its thread may still run on them */
    batcher_free(v->batcher);
    pthread_mutex_destroy(&v->stats_lock);
    free(v->failures.marks);
    free(v->disagreements.marks);
    for (int i = 0; i < v->n_sessions; i++)
        ifd_session_free(v->sessions[i]);
    free(v->sessions);
    ifd_model_free(v->model);
    json_decref(v->labels);
    json_decref(v->sample);
    json_decref(v->sample_prediction);
    json_decref(v->manifest);
    free(v->origin);
    free(v->name);
    free(v->version);
    free(v->path);
    free(v);
    /* a model's arenas are large and freed all at once: give the pages back,
     * so that load/unload cycles do not ratchet the resident size up */
    malloc_trim(0);
}

model_version *model_version_ref(model_version *v)
{
    __atomic_add_fetch(&v->refs, 1, __ATOMIC_RELAXED);
    return v;
}

void model_version_unref(model_version *v)
{
    if (v && __atomic_sub_fetch(&v->refs, 1, __ATOMIC_ACQ_REL) == 0)
        version_free(v);
}

/* The model file, opened without following a final symlink: mapped
 * read-only, so that the bytes hashed are the bytes the engine parses and the
 * weights it reads in place are shared through the page cache with every
 * worker process and version serving the same file; read into memory only
 * where it cannot be mapped (an empty file). */
typedef struct model_file {
    void *bytes;
    size_t size;
    bool mapped;
} model_file;

static void model_file_close(model_file *f)
{
    if (f->mapped)
        munmap(f->bytes, f->size);
    else
        free(f->bytes);
    *f = (model_file){0};
}

static bool model_file_open(const char *path, model_file *out, file_fingerprint *fp, char *err,
                            size_t n)
{
    *out = (model_file){0};
    int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
    if (fd < 0) {
        snprintf(err, n, "%s: %s", path, errno == ELOOP ? "is a symbolic link" : strerror(errno));
        return false;
    }
    struct stat st;
    if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode) ||
        (unsigned long long)st.st_size > MAX_MODEL_BYTES) {
        snprintf(err, n, "%s: not a regular file of at most 4 GiB", path);
        close(fd);
        return false;
    }
    fp->device = st.st_dev;
    fp->inode = st.st_ino;
    fp->size = st.st_size;
    fp->mtime_ns = (long long)st.st_mtim.tv_sec * 1000000000ll + st.st_mtim.tv_nsec;
    size_t want = (size_t)st.st_size, got = 0;
    /* a writable file may be rewritten in place: read it (see the top) */
    bool read_only = (st.st_mode & (S_IWUSR | S_IWGRP | S_IWOTH)) == 0;
    void *map = want && read_only ? mmap(NULL, want, PROT_READ, MAP_PRIVATE, fd, 0) : MAP_FAILED;
    if (map != MAP_FAILED) {
        close(fd); /* the mapping keeps the inode, even if the file is renamed over */
        *out = (model_file){map, want, true};
        return true;
    }
    char *buf = malloc(want ? want : 1);
    while (buf && got < want) {
        ssize_t r = read(fd, buf + got, want - got);
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0)
            break;
        got += (size_t)r;
    }
    close(fd);
    if (!buf || got != want) {
        snprintf(err, n, "%s: %s", path,
                 buf ? "the file shrank while it was read" : "out of memory");
        free(buf);
        return false;
    }
    *out = (model_file){buf, want, false};
    return true;
}

/* sha256 of the model's bytes. From a mapping, each MiB's pages are given
 * back after it is hashed (the page cache keeps them for the load that
 * follows): hashing never makes the whole file resident in this process. */
static void sha256_hex(const void *data, size_t len, bool mapped, char hex[65])
{
    unsigned char digest[EVP_MAX_MD_SIZE];
    unsigned int dlen = 0;
    const size_t chunk = (size_t)1 << 20;
    hex[0] = '\0';
    EVP_MD_CTX *ctx = EVP_MD_CTX_new();
    bool ok = ctx && EVP_DigestInit_ex(ctx, EVP_sha256(), NULL);
    for (size_t done = 0; ok && done < len; done += chunk) {
        size_t part = len - done < chunk ? len - done : chunk;
        ok = EVP_DigestUpdate(ctx, (const char *)data + done, part);
        /* the mapping starts on a page and chunks are whole pages: only the
         * last may end inside one */
        if (mapped)
            madvise((char *)data + done, part, MADV_DONTNEED);
    }
    ok = ok && EVP_DigestFinal_ex(ctx, digest, &dlen) && dlen == 32;
    EVP_MD_CTX_free(ctx);
    if (!ok)
        return;
    for (unsigned i = 0; i < 32; i++)
        snprintf(hex + 2 * i, 3, "%02x", digest[i]);
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

json_t *model_version_probabilities(const model_version *m, ifd_value *const *outputs)
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

static bool element_as_float(const ifd_tensor *t, size_t i, float *out)
{
    switch (t->dtype) {
    case IFD_FLOAT: *out = ((const float *)t->data)[i]; return true;
    case IFD_DOUBLE: *out = (float)((const double *)t->data)[i]; return true;
    case IFD_INT64: *out = (float)((const int64_t *)t->data)[i]; return true;
    case IFD_INT32: *out = (float)((const int32_t *)t->data)[i]; return true;
    default: return false;
    }
}

bool model_version_scores(const model_version *m, ifd_value *const *outputs, float **scores,
                          size_t *rows, size_t *cols)
{
    const ifd_value *v = outputs[m->probability_output];
    *scores = NULL;
    if (v->kind == IFD_VALUE_SEQUENCE) {
        size_t width = v->length && v->items[0]->kind == IFD_VALUE_MAP
                           ? (size_t)ifd_tensor_count(&v->items[0]->map_values)
                           : 0;
        float *out = malloc((v->length * width) * sizeof(float) + 1);
        for (size_t r = 0; out && r < v->length; r++) {
            const ifd_value *map = v->items[r];
            if (map->kind != IFD_VALUE_MAP || (size_t)ifd_tensor_count(&map->map_values) != width)
                goto fail;
            for (size_t c = 0; c < width; c++)
                if (!element_as_float(&map->map_values, c, &out[r * width + c]))
                    goto fail;
        }
        *scores = out;
        *rows = v->length;
        *cols = width;
        return out != NULL;
    fail:
        free(out);
        return false;
    }
    if (v->kind != IFD_VALUE_TENSOR)
        return false;
    const ifd_tensor *t = &v->tensor;
    size_t count = (size_t)ifd_tensor_count(t);
    float *out = malloc(count * sizeof(float) + 1);
    for (size_t i = 0; out && i < count; i++)
        if (!element_as_float(t, i, &out[i])) {
            free(out);
            return false;
        }
    *scores = out;
    *rows = t->rank >= 1 ? (size_t)t->dims[0] : 1;
    *cols = *rows ? count / *rows : 0;
    return out != NULL;
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
static bool warm_up(model_version *m, char *err, size_t n)
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
        inputs[i] = m->sample
                        ? json_rows_to_tensor(m->sample, input->type.dtype, reason, sizeof(reason))
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
        double t0 = monotonic_seconds();
        ifd_status st =
            ifd_session_run(m->sessions[s], (const ifd_value *const *)inputs, outputs, &e);
        double took = monotonic_seconds() - t0;
        if (s > 0 && took < m->run_seconds)
            m->run_seconds = took; /* the first run of a process pays for page faults */
        if (st != IFD_OK) {
            snprintf(err, n, "model '%s' version %s: warm-up inference failed: %s", m->name,
                     m->version, e.message);
            ok = false;
            break;
        }
        if (s == 0 && m->sample)
            m->sample_prediction = model_version_probabilities(m, outputs);
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
 * load. */
static bool golden_recheck(model_version *m, char *err, size_t n)
{
    const json_t *golden = json_object_get(m->manifest, "golden_samples");
    m->golden_status = "none";
    if (!json_is_object(golden))
        return true;
    char label[300], report[4096];
    snprintf(label, sizeof(label), "model '%s:%s'", m->name, m->version);
    bool ok = golden_samples_check_model(m->model, label, golden, report, sizeof(report));
    m->golden_status = ok ? "passed" : "failed";
    if (!ok)
        snprintf(err, n, "golden samples do not reproduce: %s", report);
    return ok;
}

/* model.json beside the model file, when there is one. */
static json_t *manifest_beside(const char *path)
{
    char manifest_path[4400];
    const char *slash = strrchr(path, '/');
    snprintf(manifest_path, sizeof(manifest_path), "%.*smodel.json",
             slash ? (int)(slash - path + 1) : 0, path);
    struct stat st;
    if (lstat(manifest_path, &st) != 0 || !S_ISREG(st.st_mode) || st.st_size > (16 << 20))
        return NULL;
    json_t *manifest = json_load_file(manifest_path, 0, NULL);
    if (manifest && !json_is_object(manifest)) {
        json_decref(manifest);
        return NULL;
    }
    return manifest;
}

model_version *model_version_load(const model_source *src, const version_load_options *options,
                                  char *err, size_t n)
{
    double start = monotonic_seconds();
    model_version *m = calloc(1, sizeof(*m));
    model_file file = {0};
    if (!m) {
        snprintf(err, n, "out of memory");
        return NULL;
    }
    m->refs = 1;
    pthread_mutex_init(&m->stats_lock, NULL);
    const char *base = strrchr(src->path, '/');
    base = base ? base + 1 : src->path;
    const char *dot = strrchr(base, '.');
    m->name =
        src->name ? strdup(src->name) : strndup(base, dot ? (size_t)(dot - base) : strlen(base));
    m->version = strdup(src->version ? src->version : "1");
    m->path = strdup(src->path);
    ifd_error e;
    ifd_load_options load_options = {.graph_opt = options->graph_opt};
    if (!m->name || !m->version || !m->path) {
        snprintf(err, n, "out of memory");
        goto fail;
    }
    struct timespec wall;
    clock_gettime(CLOCK_REALTIME, &wall);
    m->loaded_at = (double)wall.tv_sec + (double)wall.tv_nsec * 1e-9;
    if (src->model_data) {
        if (ifd_model_load_memory(src->model_data, src->model_size, NULL, &load_options,
                                  &m->model, &e) != IFD_OK) {
            snprintf(err, n, "%s", e.message);
            goto fail;
        }
        sha256_hex(src->model_data, src->model_size, false, m->sha256);
    } else {
        if (!model_file_open(src->path, &file, &m->fingerprint, err, n))
            goto fail;
        sha256_hex(file.bytes, file.size, file.mapped, m->sha256);
        if (src->expected_sha256 && strcmp(src->expected_sha256, m->sha256) != 0) {
            snprintf(err, n, "%s: sha256 is %s, the manifest says %s (a partial or changed copy?)",
                     src->path, m->sha256, src->expected_sha256);
            goto fail;
        }
        ifd_status st;
        bool named = file.mapped; /* ifd_model_load_mapped's messages start with the path */
        if (file.mapped) {
            /* the model takes the mapping over, also when it fails */
            st = ifd_model_load_mapped(file.bytes, file.size, src->path, &load_options, &m->model,
                                       &e);
            file = (model_file){0};
        } else {
            char dir[4400];
            snprintf(dir, sizeof(dir), "%.*s",
                     base > src->path ? (int)(base - src->path - 1) : 1,
                     base > src->path ? src->path : ".");
            st = ifd_model_load_memory(file.bytes, file.size, dir, &load_options, &m->model, &e);
            model_file_close(&file);
        }
        if (st != IFD_OK) {
            snprintf(err, n, "%s%s%s", named ? "" : src->path, named ? "" : ": ", e.message);
            goto fail;
        }
    }
    m->sessions = calloc((size_t)options->n_sessions, sizeof(*m->sessions));
    if (!m->sessions) {
        snprintf(err, n, "out of memory");
        goto fail;
    }
    ifd_session_options session_options = {.threads = options->threads_per_session};
    m->threads_per_session = options->threads_per_session;
    for (int i = 0; i < options->n_sessions; i++) {
        if (ifd_session_create(m->model, &session_options, &m->sessions[i], &e) != IFD_OK) {
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
    } else if (!src->model_data) {
        m->manifest = manifest_beside(src->path);
        m->manifest_beside = m->manifest != NULL;
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
     * every session ran once */
    if (!warm_up(m, err, n))
        goto fail;
    m->load_seconds = monotonic_seconds() - start;
    if (err && n)
        err[0] = '\0';
    m->ready = golden_recheck(m, err, n);
    return m;
fail:
    model_file_close(&file);
    version_free(m);
    return NULL;
}

ifd_status model_version_run(model_version *m, int session, ifd_value *const *inputs,
                             ifd_value **outputs, char *err, size_t n)
{
    ifd_error e;
    int index = session >= 0 && session < m->n_sessions ? session : 0;
    ifd_status st =
        ifd_session_run(m->sessions[index], (const ifd_value *const *)inputs, outputs, &e);
    if (st != IFD_OK)
        snprintf(err, n, "%s", e.message);
    return st;
}
