/*
 * model_set.c — the live model set (see model_set.h for the contract).
 *
 * A load is a transaction on one model: read its config, list the version
 * directories that are complete, load every version the policy selects that
 * is not already loaded from the same bytes (outside any lock: reading,
 * the version guard and the warm-up take the time), check the config
 * against what loaded, and only then, under the write lock, replace the
 * model's list of versions in one step. A version that is no longer listed
 * keeps the references of the requests it is answering and is freed by
 * the last of them (model_version.h). Any failure before the publish
 * leaves everything as it was, records the reason for the index, the log
 * and the metrics, and refuses the same files until they change.
 *
 * The poll thread compares a signature of each model directory (config and
 * version files: device, inode, size, mtime) between scans; a directory
 * still changing between two scans (a copy in progress) waits for the next
 * scan, and a version whose manifest records a sha256 loads only when its
 * bytes hash to it, so a half-copied file never loads.
 *
 * Shadow copies go to one thread through a bounded queue: the caller only
 * copies its inputs and the scores of its answer; when the queue is full
 * the copy is dropped and counted.
 */
#include "model_set.h"

#include <dirent.h>
#include <errno.h>
#include <limits.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "log.h"

#define SERVE_OUTCOMES 1u /* record answers for the error-rate rollback */
#define SHADOW_SOURCE 2u  /* copy requests to the model's shadow version */
#define MAX_CONFIG_BYTES (1 << 20)
#define MAX_MODEL_NAME 127

typedef struct shadow_job {
    struct shadow_job *next;
    model_version *shadow;  /* referenced */
    ifd_value **inputs;     /* copies */
    size_t n_inputs;
    float *live_scores;
    size_t rows, cols;
    double tolerance;
} shadow_job;

struct model_set {
    model_set_options options;
    char *repository;            /* realpath of options.repository, or NULL */
    pthread_rwlock_t lock;
    model_entry **entries;       /* sorted by name */
    size_t n_entries;

    pthread_mutex_t poll_lock;
    pthread_cond_t poll_wake;
    pthread_t poll_thread;
    bool poll_running, stopping;

    pthread_mutex_t shadow_lock;
    pthread_cond_t shadow_wake;
    pthread_t shadow_thread;
    bool shadow_running;
    shadow_job *shadow_head, *shadow_tail;
    size_t shadow_queued;
    shadow_totals shadow_counts;
};

/* ---- names and small helpers ------------------------------------------- */

const char *version_state_name(version_state s)
{
    switch (s) {
    case VERSION_READY: return "READY";
    case VERSION_LOADING: return "LOADING";
    case VERSION_UNLOADING: return "UNLOADING";
    case VERSION_UNAVAILABLE: return "UNAVAILABLE";
    }
    return "UNAVAILABLE";
}

const char *model_control_name(model_control c)
{
    return c == MODEL_CONTROL_POLL ? "poll" : c == MODEL_CONTROL_EXPLICIT ? "explicit" : "none";
}

bool model_control_parse(const char *text, model_control *out)
{
    if (strcmp(text, "none") == 0)
        *out = MODEL_CONTROL_NONE;
    else if (strcmp(text, "poll") == 0)
        *out = MODEL_CONTROL_POLL;
    else if (strcmp(text, "explicit") == 0)
        *out = MODEL_CONTROL_EXPLICIT;
    else
        return false;
    return true;
}

model_control model_set_control(const model_set *set) { return set->options.control; }

/* A model name from a request: what a directory may be called, never a path. */
static bool model_name_valid(const char *s)
{
    size_t n = strlen(s);
    if (n == 0 || n > MAX_MODEL_NAME || s[0] == '.')
        return false;
    for (; *s; s++)
        if (!((*s >= 'a' && *s <= 'z') || (*s >= 'A' && *s <= 'Z') || (*s >= '0' && *s <= '9') ||
              *s == '.' || *s == '_' || *s == '-'))
            return false;
    return true;
}

static long long version_number(const char *v) { return strtoll(v, NULL, 10); }

static uint64_t random_u64(void)
{
    static __thread uint64_t state;
    if (!state) {
        if (getrandom(&state, sizeof(state), 0) != (ssize_t)sizeof(state))
            state = (uint64_t)time(NULL) ^ (uint64_t)(uintptr_t)&state;
        state |= 1;
    }
    state ^= state << 13;
    state ^= state >> 7;
    state ^= state << 17;
    return state;
}

static uint64_t fnv1a(const char *s)
{
    uint64_t h = 1469598103934665603ull;
    for (; *s; s++)
        h = (h ^ (unsigned char)*s) * 1099511628211ull;
    return h;
}

static void log_model(log_level level, const char *message, const char *model, const char *version,
                      const char *key, const char *value)
{
    log_event(level, message, "model", model, "version", version ? version : "", key, value, NULL);
}

/* ---- entries ------------------------------------------------------------- */

model_entry *model_set_find(const model_set *set, const char *name)
{
    size_t lo = 0, hi = set->n_entries;
    while (lo < hi) {
        size_t mid = (lo + hi) / 2;
        int c = strcmp(set->entries[mid]->name, name);
        if (c == 0)
            return set->entries[mid];
        if (c < 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    return NULL;
}

/* Under the write lock. */
static model_entry *entry_add(model_set *set, const char *name)
{
    model_entry *e = model_set_find(set, name);
    if (e)
        return e;
    model_entry **grown = realloc(set->entries, (set->n_entries + 1) * sizeof(*grown));
    if (!grown)
        return NULL;
    set->entries = grown;
    e = calloc(1, sizeof(*e));
    if (!e || !(e->name = strdup(name))) {
        free(e);
        return NULL;
    }
    model_config_default(&e->config);
    size_t at = 0;
    while (at < set->n_entries && strcmp(set->entries[at]->name, name) < 0)
        at++;
    memmove(set->entries + at + 1, set->entries + at, (set->n_entries - at) * sizeof(*set->entries));
    set->entries[at] = e;
    set->n_entries++;
    return e;
}

size_t model_set_count(const model_set *set) { return set->n_entries; }
model_entry *model_set_entry(const model_set *set, size_t i) { return i < set->n_entries ? set->entries[i] : NULL; }

model_entry *model_set_default(const model_set *set)
{
    for (size_t i = 0; i < set->n_entries; i++)
        if (set->entries[i]->n_versions)
            return set->entries[i];
    return set->n_entries ? set->entries[0] : NULL;
}

void model_set_read_lock(model_set *set) { pthread_rwlock_rdlock(&set->lock); }
void model_set_read_unlock(model_set *set) { pthread_rwlock_unlock(&set->lock); }

static version_status *status_row(model_entry *e, const char *version, bool create)
{
    for (size_t i = 0; i < e->n_status; i++)
        if (strcmp(e->status[i].version, version) == 0)
            return &e->status[i];
    if (!create)
        return NULL;
    version_status *grown = realloc(e->status, (e->n_status + 1) * sizeof(*grown));
    if (!grown)
        return NULL;
    e->status = grown;
    version_status *row = &e->status[e->n_status++];
    memset(row, 0, sizeof(*row));
    snprintf(row->version, sizeof(row->version), "%s", version);
    return row;
}

static int listed_index(const model_entry *e, const model_version *v)
{
    for (size_t i = 0; i < e->n_versions; i++)
        if (e->versions[i] == v)
            return (int)i;
    return -1;
}

/* The version that takes the most configured traffic (ties: the older
 * one; without a split, the newest): never rolled back. */
static int baseline_index(const model_entry *e)
{
    if (!e->config.n_traffic)
        return (int)e->n_versions - 1;
    int chosen = -1, chosen_weight = -1;
    for (size_t i = 0; i < e->n_versions; i++) {
        int w = 0;
        for (size_t k = 0; k < e->config.n_traffic; k++)
            if (strcmp(e->config.traffic[k].version, e->versions[i]->version) == 0)
                w = e->config.traffic[k].weight;
        if (w > chosen_weight) {
            chosen = (int)i;
            chosen_weight = w;
        }
    }
    return chosen;
}

/* Which requests each listed version records or copies, from the config in
 * force (under the write lock). */
static void set_serving_flags(model_entry *e)
{
    int baseline = baseline_index(e);
    for (size_t i = 0; i < e->n_versions; i++) {
        model_version *v = e->versions[i];
        unsigned flags = 0;
        bool is_shadow = e->config.shadow.enabled && strcmp(v->version, e->config.shadow.version) == 0;
        if (e->config.rollback.enabled && e->config.rollback.max_error_rate >= 0 && (int)i != baseline &&
            e->weights[i] > 0)
            flags |= SERVE_OUTCOMES;
        if (e->config.shadow.enabled && !is_shadow)
            flags |= SHADOW_SOURCE;
        pthread_mutex_lock(&v->stats_lock);
        v->failure_limit = e->config.rollback.max_error_rate;
        v->agreement_floor = is_shadow && e->config.rollback.enabled ? e->config.rollback.min_agreement : -1;
        if (e->config.rollback.enabled) {
            if (v->failures.size != e->config.rollback.window)
                outcome_window_reset(&v->failures, e->config.rollback.window);
            if (is_shadow && v->disagreements.size != e->config.rollback.window)
                outcome_window_reset(&v->disagreements, e->config.rollback.window);
        }
        pthread_mutex_unlock(&v->stats_lock);
        __atomic_store_n(&v->serving_flags, flags, __ATOMIC_RELEASE);
    }
}

/* ---- the request path ---------------------------------------------------- */

static int choose_version(const model_entry *e, header_lookup headers, void *context)
{
    const char *shadow = e->config.shadow.enabled ? e->config.shadow.version : NULL;
    int total = 0;
    for (size_t i = 0; i < e->n_versions; i++)
        total += e->weights[i];
    if (e->config.n_traffic && total > 0) {
        const char *key = e->config.sticky_header[0] && headers ? headers(context, e->config.sticky_header) : NULL;
        uint64_t draw = key ? fnv1a(key) : random_u64();
        int point = (int)(draw % (uint64_t)total);
        for (size_t i = 0; i < e->n_versions; i++) {
            if (point < e->weights[i])
                return (int)i;
            point -= e->weights[i];
        }
    }
    for (size_t i = e->n_versions; i-- > 0;)
        if (!shadow || strcmp(e->versions[i]->version, shadow) != 0)
            return (int)i;
    return e->n_versions ? (int)e->n_versions - 1 : -1;
}

acquire_result model_set_acquire(model_set *set, const char *name, const char *version,
                                 header_lookup headers, void *context, acquired *out, char *err,
                                 size_t n)
{
    out->version = NULL;
    out->mode_field = false;
    pthread_rwlock_rdlock(&set->lock);
    model_entry *e = name && *name ? model_set_find(set, name) : model_set_default(set);
    acquire_result result = ACQUIRE_OK;
    if (!e) {
        if (name && *name)
            snprintf(err, n, "unknown model '%s'", name);
        else
            snprintf(err, n, "no model is loaded");
        result = ACQUIRE_UNKNOWN_MODEL;
    } else if (!e->n_versions) {
        snprintf(err, n, "model '%s' is not loaded%s%s", e->name, e->reason[0] ? ": " : "", e->reason);
        result = ACQUIRE_NOT_SERVING;
    } else if (version && *version) {
        for (size_t i = 0; i < e->n_versions && !out->version; i++)
            if (strcmp(e->versions[i]->version, version) == 0)
                out->version = model_version_ref(e->versions[i]);
        if (!out->version) {
            const version_status *row = status_row(e, version, false);
            if (row)
                snprintf(err, n, "model '%s' version %s is not loaded (%s%s%s)", e->name, version,
                         version_state_name(row->state), row->reason[0] ? ": " : "", row->reason);
            else
                snprintf(err, n, "model '%s' has no version '%s'", e->name, version);
            result = ACQUIRE_UNKNOWN_VERSION;
        }
    } else {
        int i = choose_version(e, headers, context);
        out->version = model_version_ref(e->versions[i]);
    }
    if (out->version)
        out->mode_field = e->config.mode_field;
    pthread_rwlock_unlock(&set->lock);
    return result;
}

double model_set_run_seconds(model_set *set, const char *name, const char *version)
{
    double slowest = 1e9;
    pthread_rwlock_rdlock(&set->lock);
    model_entry *e = name && *name ? model_set_find(set, name) : model_set_default(set);
    for (size_t i = 0; e && i < e->n_versions; i++) {
        const model_version *v = e->versions[i];
        if (version && *version && strcmp(v->version, version) != 0)
            continue;
        slowest = slowest >= 1e9 || v->run_seconds > slowest ? v->run_seconds : slowest;
    }
    pthread_rwlock_unlock(&set->lock);
    return slowest;
}

bool model_set_ready(model_set *set)
{
    bool ready = false;
    pthread_rwlock_rdlock(&set->lock);
    for (size_t i = 0; i < set->n_entries; i++) {
        const model_entry *e = set->entries[i];
        if (e->unloaded)
            continue;
        if (!e->n_versions) {
            ready = false;
            break;
        }
        ready = true;
        for (size_t k = 0; k < e->n_versions; k++)
            ready = ready && e->versions[k]->ready;
        if (!ready)
            break;
    }
    pthread_rwlock_unlock(&set->lock);
    return ready;
}

/* Weight to 0, with the reason, unless the version is the baseline. */
static void roll_back(model_set *set, model_version *v, const char *reason)
{
    pthread_rwlock_wrlock(&set->lock);
    model_entry *e = model_set_find(set, v->name);
    int i = e ? listed_index(e, v) : -1;
    bool done = false;
    if (i >= 0 && !e->rolled_back[i][0]) {
        bool is_shadow = e->config.shadow.enabled && strcmp(v->version, e->config.shadow.version) == 0;
        if (i != baseline_index(e) || is_shadow) {
            e->weights[i] = 0;
            snprintf(e->rolled_back[i], sizeof(e->rolled_back[i]), "%s", reason);
            if (is_shadow)
                e->config.shadow.enabled = false;
            e->rollbacks++;
            set_serving_flags(e);
            done = true;
        }
    }
    pthread_rwlock_unlock(&set->lock);
    if (done)
        log_model(LOG_WARNING, "rollback: version taken out of traffic", v->name, v->version, "reason",
                  reason);
}

static ifd_value *clone_value(const ifd_value *v)
{
    if (v->kind != IFD_VALUE_TENSOR)
        return NULL;
    ifd_value *copy;
    ifd_error e;
    if (ifd_value_new_tensor(v->tensor.dtype, v->tensor.rank, v->tensor.dims, &copy, &e) != IFD_OK)
        return NULL;
    size_t count = (size_t)ifd_tensor_count(&v->tensor);
    if (v->tensor.dtype != IFD_STRING) {
        if (count)
            memcpy(copy->tensor.data, v->tensor.data, count * ifd_dtype_size(v->tensor.dtype));
        return copy;
    }
    for (size_t i = 0; i < count; i++) {
        const ifd_string *from = &((const ifd_string *)v->tensor.data)[i];
        ifd_string *to = &((ifd_string *)copy->tensor.data)[i];
        to->data = malloc(from->size + 1);
        if (!to->data) {
            ifd_value_free(copy);
            return NULL;
        }
        if (from->size)
            memcpy(to->data, from->data, from->size);
        to->data[from->size] = '\0';
        to->size = from->size;
    }
    return copy;
}

static void shadow_job_free(shadow_job *job)
{
    for (size_t i = 0; i < job->n_inputs; i++)
        ifd_value_free(job->inputs[i]);
    free(job->inputs);
    free(job->live_scores);
    model_version_unref(job->shadow);
    free(job);
}

static void offer_shadow(model_set *set, model_version *live, ifd_value *const *inputs,
                         ifd_value **outputs)
{
    model_version *shadow = NULL;
    double percent = 0, tolerance = 0;
    int cap = 0;
    pthread_rwlock_rdlock(&set->lock);
    model_entry *e = model_set_find(set, live->name);
    if (e && e->config.shadow.enabled) {
        percent = e->config.shadow.percent;
        tolerance = e->config.shadow.tolerance;
        cap = e->config.shadow.queue;
        for (size_t i = 0; i < e->n_versions; i++)
            if (strcmp(e->versions[i]->version, e->config.shadow.version) == 0 && e->versions[i] != live)
                shadow = model_version_ref(e->versions[i]);
    }
    pthread_rwlock_unlock(&set->lock);
    if (!shadow)
        return;
    if (percent < 100 && (double)(random_u64() % 10000) >= percent * 100) {
        model_version_unref(shadow);
        return;
    }
    pthread_mutex_lock(&set->shadow_lock);
    set->shadow_counts.offered++;
    bool full = set->shadow_queued >= (size_t)cap || !set->shadow_running;
    if (full)
        set->shadow_counts.dropped++;
    pthread_mutex_unlock(&set->shadow_lock);
    if (full) {
        model_version_unref(shadow);
        return;
    }
    shadow_job *job = calloc(1, sizeof(*job));
    size_t n_in = ifd_model_input_count(live->model);
    bool ok = job && (job->inputs = calloc(n_in ? n_in : 1, sizeof(*job->inputs)));
    if (job) {
        job->shadow = shadow;
        job->tolerance = tolerance;
    }
    for (size_t i = 0; ok && i < n_in; i++) {
        job->inputs[i] = clone_value(inputs[i]);
        job->n_inputs = i + 1;
        ok = job->inputs[i] != NULL;
    }
    ok = ok && model_version_scores(live, outputs, &job->live_scores, &job->rows, &job->cols);
    if (!ok) {
        if (job)
            shadow_job_free(job);
        else
            model_version_unref(shadow);
        pthread_mutex_lock(&set->shadow_lock);
        set->shadow_counts.dropped++;
        pthread_mutex_unlock(&set->shadow_lock);
        return;
    }
    pthread_mutex_lock(&set->shadow_lock);
    if (set->shadow_tail)
        set->shadow_tail->next = job;
    else
        set->shadow_head = job;
    set->shadow_tail = job;
    set->shadow_queued++;
    pthread_cond_signal(&set->shadow_wake);
    pthread_mutex_unlock(&set->shadow_lock);
}

ifd_status model_set_run(model_set *set, model_version *v, int session, ifd_value *const *inputs,
                         ifd_value **outputs, char *err, size_t n)
{
    ifd_status st = model_version_run(v, session, inputs, outputs, err, n);
    unsigned flags = __atomic_load_n(&v->serving_flags, __ATOMIC_ACQUIRE);
    if (flags & SERVE_OUTCOMES) {
        char reason[256] = "";
        pthread_mutex_lock(&v->stats_lock);
        v->answered++;
        v->failed += st != IFD_OK;
        outcome_window_add(&v->failures, st != IFD_OK);
        double limit = v->failure_limit;
        if (v->failures.size && v->failures.count == v->failures.size &&
            (double)v->failures.bad / v->failures.count > limit)
            snprintf(reason, sizeof(reason),
                     "error rate %.4f over the last %d requests exceeds max_error_rate %.4f",
                     (double)v->failures.bad / v->failures.count, v->failures.count, limit);
        pthread_mutex_unlock(&v->stats_lock);
        if (reason[0])
            roll_back(set, v, reason);
    }
    if ((flags & SHADOW_SOURCE) && st == IFD_OK)
        offer_shadow(set, v, inputs, outputs);
    return st;
}

/* Compare a shadow answer with the live one: the same class for every row
 * (classifiers: more than one score per row), or every score within the
 * tolerance (regressors). */
static bool answers_agree(const shadow_job *job, const float *scores, size_t rows, size_t cols,
                          double *max_abs_diff)
{
    *max_abs_diff = 0;
    if (rows != job->rows || cols != job->cols)
        return false;
    bool agree = true;
    for (size_t r = 0; r < rows; r++) {
        const float *a = job->live_scores + r * cols, *b = scores + r * cols;
        size_t best_a = 0, best_b = 0;
        for (size_t c = 0; c < cols; c++) {
            double d = a[c] > b[c] ? a[c] - b[c] : b[c] - a[c];
            if (d > *max_abs_diff)
                *max_abs_diff = d;
            if (a[c] > a[best_a])
                best_a = c;
            if (b[c] > b[best_b])
                best_b = c;
        }
        if (cols > 1 ? best_a != best_b : false)
            agree = false;
    }
    if (cols <= 1 && *max_abs_diff > job->tolerance)
        agree = false;
    return agree;
}

static void run_shadow_job(model_set *set, shadow_job *job)
{
    model_version *v = job->shadow;
    size_t n_out = ifd_model_output_count(v->model);
    ifd_value **outputs = calloc(n_out ? n_out : 1, sizeof(*outputs));
    char err[512];
    float *scores = NULL;
    size_t rows = 0, cols = 0;
    bool ran = outputs && model_version_run(v, v->n_sessions - 1, job->inputs, outputs, err, sizeof(err)) == IFD_OK;
    bool scored = ran && model_version_scores(v, outputs, &scores, &rows, &cols);
    double diff = 0;
    bool agree = scored && answers_agree(job, scores, rows, cols, &diff);
    char reason[256] = "";
    unsigned long long compared;
    pthread_mutex_lock(&v->stats_lock);
    if (!scored)
        v->shadow_failed++;
    else if (agree)
        v->shadow_agreed++;
    else
        v->shadow_disagreed++;
    if (scored && diff > v->shadow_max_abs_diff)
        v->shadow_max_abs_diff = diff;
    outcome_window_add(&v->disagreements, !agree);
    if (v->agreement_floor >= 0 && v->disagreements.size && v->disagreements.count == v->disagreements.size) {
        double agreement = 1.0 - (double)v->disagreements.bad / v->disagreements.count;
        if (agreement < v->agreement_floor)
            snprintf(reason, sizeof(reason),
                     "shadow agreement %.4f over the last %d copies is below min_agreement %.4f",
                     agreement, v->disagreements.count, v->agreement_floor);
    }
    compared = v->shadow_agreed + v->shadow_disagreed + v->shadow_failed;
    unsigned long long agreed = v->shadow_agreed, disagreed = v->shadow_disagreed;
    pthread_mutex_unlock(&v->stats_lock);
    if (compared % 500 == 0 || (!agree && log_enabled(LOG_DEBUG))) {
        char counts[160];
        snprintf(counts, sizeof(counts), "agreed %llu, disagreed %llu, failed %llu (max abs diff %.3g)",
                 agreed, disagreed, compared - agreed - disagreed, diff);
        log_model(agree ? LOG_INFO : LOG_DEBUG, "shadow comparison", v->name, v->version, "counts", counts);
    }
    if (reason[0])
        roll_back(set, v, reason);
    for (size_t k = 0; outputs && k < n_out; k++)
        ifd_value_free(outputs[k]);
    free(outputs);
    free(scores);
}

static void *shadow_main(void *arg)
{
    model_set *set = arg;
    pthread_mutex_lock(&set->shadow_lock);
    for (;;) {
        while (!set->shadow_head && !set->stopping)
            pthread_cond_wait(&set->shadow_wake, &set->shadow_lock);
        shadow_job *job = set->shadow_head;
        if (!job)
            break;
        set->shadow_head = job->next;
        if (!set->shadow_head)
            set->shadow_tail = NULL;
        set->shadow_queued--;
        pthread_mutex_unlock(&set->shadow_lock);
        if (!set->stopping)
            run_shadow_job(set, job);
        shadow_job_free(job);
        pthread_mutex_lock(&set->shadow_lock);
    }
    pthread_mutex_unlock(&set->shadow_lock);
    return NULL;
}

shadow_totals model_set_shadow_totals(model_set *set)
{
    pthread_mutex_lock(&set->shadow_lock);
    shadow_totals t = set->shadow_counts;
    pthread_mutex_unlock(&set->shadow_lock);
    return t;
}

/* ---- the repository ------------------------------------------------------ */

/* realpath of repository/rel, only when it lies inside the repository. */
static bool confined_path(const model_set *set, const char *rel, char *out, size_t n)
{
    char candidate[PATH_MAX], resolved[PATH_MAX];
    if (snprintf(candidate, sizeof(candidate), "%s/%s", set->repository, rel) >= (int)sizeof(candidate))
        return false;
    if (!realpath(candidate, resolved))
        return false;
    size_t root = strlen(set->repository);
    if (strncmp(resolved, set->repository, root) != 0 || resolved[root] != '/')
        return false;
    return snprintf(out, n, "%s", resolved) < (int)n;
}

typedef struct version_file {
    char version[MODEL_VERSION_NAME_MAX];
    char path[PATH_MAX + 16];
    char labels[PATH_MAX + 16];
    bool has_labels;
    char sha256[65];              /* from model.json, or "" */
    file_fingerprint fingerprint; /* of model.onnx */
    file_fingerprint sidecars[2]; /* labels.json, model.json (zero when absent) */
} version_file;

static int by_number(const void *a, const void *b)
{
    long long x = version_number(((const version_file *)a)->version);
    long long y = version_number(((const version_file *)b)->version);
    return x < y ? -1 : x > y;
}

/* The complete version directories of a model: a number for a name and a
 * regular model.onnx inside the repository. */
static size_t scan_versions(const model_set *set, const char *name, version_file **out)
{
    *out = NULL;
    char dir[PATH_MAX];
    if (!confined_path(set, name, dir, sizeof(dir)))
        return 0;
    DIR *d = opendir(dir);
    if (!d)
        return 0;
    version_file *files = NULL;
    size_t count = 0;
    struct dirent *ent;
    while ((ent = readdir(d))) {
        if (!model_version_name_valid(ent->d_name))
            continue;
        char rel[PATH_MAX], version_dir[PATH_MAX];
        snprintf(rel, sizeof(rel), "%s/%s", name, ent->d_name);
        if (!confined_path(set, rel, version_dir, sizeof(version_dir)))
            continue; /* a symlink out of the repository */
        version_file f = {0};
        snprintf(f.version, sizeof(f.version), "%.31s", ent->d_name);
        snprintf(f.path, sizeof(f.path), "%s/model.onnx", version_dir);
        struct stat st;
        if (lstat(f.path, &st) != 0 || !S_ISREG(st.st_mode) || !file_fingerprint_read(f.path, &f.fingerprint))
            continue;
        snprintf(f.labels, sizeof(f.labels), "%s/labels.json", version_dir);
        f.has_labels = lstat(f.labels, &st) == 0 && S_ISREG(st.st_mode);
        if (f.has_labels)
            file_fingerprint_read(f.labels, &f.sidecars[0]);
        char manifest[PATH_MAX + 16];
        snprintf(manifest, sizeof(manifest), "%s/model.json", version_dir);
        if (lstat(manifest, &st) == 0 && S_ISREG(st.st_mode) && st.st_size < (16 << 20)) {
            file_fingerprint_read(manifest, &f.sidecars[1]);
            json_t *m = json_load_file(manifest, 0, NULL);
            const char *sum = json_string_value(json_object_get(m, "sha256"));
            if (sum && strlen(sum) == 64)
                snprintf(f.sha256, sizeof(f.sha256), "%s", sum);
            json_decref(m);
        }
        version_file *grown = realloc(files, (count + 1) * sizeof(*grown));
        if (!grown)
            break;
        files = grown;
        files[count++] = f;
    }
    closedir(d);
    if (count)
        qsort(files, count, sizeof(*files), by_number);
    *out = files;
    return count;
}

/* config.json's text (NULL when there is none; err set when it is unreadable). */
static char *read_config_file(const model_set *set, const char *name, file_fingerprint *fp, char *err,
                              size_t n)
{
    char rel[PATH_MAX], path[PATH_MAX];
    err[0] = '\0';
    snprintf(rel, sizeof(rel), "%s/config.json", name);
    char candidate[PATH_MAX + 300];
    snprintf(candidate, sizeof(candidate), "%s/%s", set->repository, rel);
    struct stat st;
    if (lstat(candidate, &st) != 0)
        return NULL;
    if (!confined_path(set, rel, path, sizeof(path)) || stat(path, &st) != 0 || !S_ISREG(st.st_mode) ||
        st.st_size > MAX_CONFIG_BYTES) {
        snprintf(err, n, "%s/config.json: not a regular file of at most 1 MiB inside the repository", name);
        return NULL;
    }
    file_fingerprint_read(path, fp);
    FILE *f = fopen(path, "rb");
    char *text = f ? malloc((size_t)st.st_size + 1) : NULL;
    size_t got = text ? fread(text, 1, (size_t)st.st_size, f) : 0;
    if (f)
        fclose(f);
    if (!text || got != (size_t)st.st_size) {
        snprintf(err, n, "%s/config.json: cannot be read", name);
        free(text);
        return NULL;
    }
    text[got] = '\0';
    return text;
}

/* What a poll compares between scans. */
static char *model_signature(const model_set *set, const char *name)
{
    char *text = NULL;
    size_t len = 0;
    FILE *out = open_memstream(&text, &len);
    if (!out)
        return NULL;
    char candidate[PATH_MAX + 300];
    snprintf(candidate, sizeof(candidate), "%s/%s/config.json", set->repository, name);
    file_fingerprint fp = {0};
    if (file_fingerprint_read(candidate, &fp))
        fprintf(out, "config %llu:%llu:%lld:%lld;", (unsigned long long)fp.device,
                (unsigned long long)fp.inode, (long long)fp.size, fp.mtime_ns);
    version_file *files;
    size_t count = scan_versions(set, name, &files);
    for (size_t i = 0; i < count; i++) {
        fprintf(out, "%s", files[i].version);
        const file_fingerprint *all[3] = {&files[i].fingerprint, &files[i].sidecars[0], &files[i].sidecars[1]};
        for (int k = 0; k < 3; k++)
            fprintf(out, " %llu:%llu:%lld:%lld", (unsigned long long)all[k]->device,
                    (unsigned long long)all[k]->inode, (long long)all[k]->size, all[k]->mtime_ns);
        fputc(';', out);
    }
    free(files);
    fclose(out);
    return text;
}

static void list_versions_text(model_version *const *versions, size_t n, char *out, size_t size)
{
    size_t used = 0;
    out[0] = '\0';
    for (size_t i = 0; i < n && used < size; i++)
        used += (size_t)snprintf(out + used, size - used, "%s%s", i ? ", " : "", versions[i]->version);
}

static version_load_options load_options(const model_set *set)
{
    return (version_load_options){.n_sessions = set->options.serving_sessions + 1,
                                  .threads_per_session = set->options.threads_per_session};
}

/* Publish a new list of versions and the config that goes with it (under
 * the write lock). The entry takes over `versions` (their references);
 * the old list is returned to be released outside the lock. */
static model_version **publish(model_entry *e, model_version **versions, size_t n,
                               const model_config *config, size_t *n_old)
{
    int *weights = calloc(n ? n : 1, sizeof(*weights));
    char(*rolled_back)[256] = calloc(n ? n : 1, sizeof(*rolled_back));
    if (!weights || !rolled_back) {
        free(weights);
        free(rolled_back);
        *n_old = 0;
        return NULL; /* keeps the old list: the caller treats it as a failure */
    }
    for (size_t i = 0; i < n; i++)
        for (size_t k = 0; k < config->n_traffic; k++)
            if (strcmp(config->traffic[k].version, versions[i]->version) == 0)
                weights[i] = config->traffic[k].weight;
    model_version **old = e->versions;
    *n_old = e->n_versions;
    /* index rows: the listed versions ready, the ones that left unloaded */
    for (size_t i = 0; i < *n_old; i++) {
        bool kept = false;
        for (size_t k = 0; k < n; k++)
            kept = kept || old[i] == versions[k];
        version_status *row = status_row(e, old[i]->version, true);
        if (row && !kept) {
            row->state = VERSION_UNAVAILABLE;
            snprintf(row->reason, sizeof(row->reason), "unloaded");
        }
    }
    for (size_t i = 0; i < n; i++) {
        version_status *row = status_row(e, versions[i]->version, true);
        if (!row)
            continue;
        row->state = versions[i]->ready ? VERSION_READY : VERSION_UNAVAILABLE;
        row->has_refused = false;
        snprintf(row->reason, sizeof(row->reason), "%s",
                 versions[i]->ready ? "" : "golden samples do not reproduce (see the log)");
    }
    free(e->weights);
    free(e->rolled_back);
    e->versions = versions;
    e->n_versions = n;
    e->weights = weights;
    e->rolled_back = rolled_back;
    e->config = *config;
    e->reason[0] = '\0';
    e->unloaded = false;
    set_serving_flags(e);
    return old;
}

static void release_list(model_version **versions, size_t n)
{
    for (size_t i = 0; i < n; i++)
        model_version_unref(versions[i]);
    free(versions);
}

/* Record a refused version for the index (under the write lock). */
static void refuse_version(model_entry *e, const version_file *f, const char *reason)
{
    version_status *row = status_row(e, f->version, true);
    if (!row)
        return;
    bool listed = false;
    for (size_t i = 0; i < e->n_versions; i++)
        listed = listed || strcmp(e->versions[i]->version, f->version) == 0;
    row->state = listed ? VERSION_READY : VERSION_UNAVAILABLE;
    snprintf(row->reason, sizeof(row->reason), "%s%s", listed ? "a reload failed: " : "", reason);
    row->refused = f->fingerprint;
    row->has_refused = true;
}

static admin_result load_model(model_set *set, const char *name, const char *config_text, bool initial,
                               char *err, size_t n)
{
    char dir[PATH_MAX];
    struct stat st;
    if (!set->repository) {
        snprintf(err, n, "this server has no model repository (start it with --repository DIR)");
        return ADMIN_NOT_FOUND;
    }
    if (!model_name_valid(name)) {
        snprintf(err, n, "'%.200s' is not a model name (letters, digits, '.', '_', '-')", name);
        return ADMIN_BAD_REQUEST;
    }
    if (!confined_path(set, name, dir, sizeof(dir)) || stat(dir, &st) != 0 || !S_ISDIR(st.st_mode)) {
        snprintf(err, n, "model '%s' is not in the repository", name);
        return ADMIN_NOT_FOUND;
    }
    pthread_rwlock_wrlock(&set->lock);
    model_entry *e = entry_add(set, name);
    if (e && e->busy) {
        pthread_rwlock_unlock(&set->lock);
        snprintf(err, n, "a load or unload of model '%s' is already running; retry when it ends", name);
        return ADMIN_CONFLICT;
    }
    if (e) {
        e->busy = true;
        e->from_repository = true;
    }
    pthread_rwlock_unlock(&set->lock);
    if (!e) {
        snprintf(err, n, "out of memory");
        return ADMIN_BAD_REQUEST;
    }

    double started = 0;
    {
        struct timespec ts;
        clock_gettime(CLOCK_MONOTONIC, &ts);
        started = (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
    }
    model_config config;
    file_fingerprint config_fp = {0};
    char reason[2048] = "";
    model_version **loaded = NULL;
    size_t n_loaded = 0;
    version_file *files = NULL;
    size_t n_files = 0;
    char *file_text = config_text ? NULL : read_config_file(set, name, &config_fp, reason, sizeof(reason));
    char origin[300];
    snprintf(origin, sizeof(origin), config_text ? "the load request's config" : "%s/config.json", name);
    if (reason[0])
        goto failed;
    if (config_text || file_text) {
        if (!model_config_parse(config_text ? config_text : file_text, origin, name, &config, reason,
                                sizeof(reason)))
            goto failed;
    } else {
        model_config_default(&config);
    }
    n_files = scan_versions(set, name, &files);
    if (!n_files) {
        snprintf(reason, sizeof(reason), "no complete version directory (%s/<number>/model.onnx)", name);
        goto failed;
    }
    long long available[256];
    size_t n_available = n_files < 256 ? n_files : 256;
    for (size_t i = 0; i < n_available; i++)
        available[i] = version_number(files[i].version);
    loaded = calloc(n_files, sizeof(*loaded));
    if (!loaded) {
        snprintf(reason, sizeof(reason), "out of memory");
        goto failed;
    }
    version_load_options options = load_options(set);
    for (size_t i = 0; i < n_files; i++) {
        const version_file *f = &files[i];
        if (!model_config_wants(&config, version_number(f->version), available, n_available))
            continue;
        model_version *v = NULL;
        pthread_rwlock_rdlock(&set->lock);
        for (size_t k = 0; k < e->n_versions && !v; k++)
            if (strcmp(e->versions[k]->version, f->version) == 0 &&
                file_fingerprint_equal(&e->versions[k]->fingerprint, &f->fingerprint))
                v = model_version_ref(e->versions[k]);
        pthread_rwlock_unlock(&set->lock);
        if (!v) {
            pthread_rwlock_wrlock(&set->lock);
            version_status *row = status_row(e, f->version, true);
            bool listed = false;
            for (size_t k = 0; k < e->n_versions; k++)
                listed = listed || strcmp(e->versions[k]->version, f->version) == 0;
            if (row && !listed) {
                row->state = VERSION_LOADING;
                row->reason[0] = '\0';
            }
            pthread_rwlock_unlock(&set->lock);
            model_source source = {.path = f->path, .name = name, .version = f->version,
                                   .labels_path = f->has_labels ? f->labels : NULL,
                                   .expected_sha256 = f->sha256[0] ? f->sha256 : NULL};
            char version_err[1536] = "";
            v = model_version_load(&source, &options, version_err, sizeof(version_err));
            if (!v || (!v->ready && !initial)) {
                snprintf(reason, sizeof(reason), "version %s: %s", f->version,
                         version_err[0] ? version_err : "cannot load");
                pthread_rwlock_wrlock(&set->lock);
                refuse_version(e, f, version_err[0] ? version_err : "cannot load");
                pthread_rwlock_unlock(&set->lock);
                model_version_unref(v);
                goto failed;
            }
            if (!v->ready)
                log_model(LOG_ERROR, "golden samples failed: version loaded but not ready", name,
                          f->version, "reason", version_err);
        }
        loaded[n_loaded++] = v;
    }
    if (!n_loaded) {
        char present[256] = "";
        size_t used = 0;
        for (size_t i = 0; i < n_files && used < sizeof(present); i++)
            used += (size_t)snprintf(present + used, sizeof(present) - used, "%s%s", i ? ", " : "",
                                     files[i].version);
        snprintf(reason, sizeof(reason), "%s: version_policy selects none of the versions present (%s)",
                 origin, present);
        goto failed;
    }
    char names[512];
    list_versions_text(loaded, n_loaded, names, sizeof(names));
    for (size_t k = 0; k < config.n_traffic; k++) {
        bool found = false;
        for (size_t i = 0; i < n_loaded; i++)
            found = found || strcmp(loaded[i]->version, config.traffic[k].version) == 0;
        if (!found) {
            snprintf(reason, sizeof(reason), "%s: traffic names version %s, which is not among the versions "
                     "the policy loads (%s)", origin, config.traffic[k].version, names);
            goto failed;
        }
    }
    if (config.shadow.enabled) {
        bool found = false;
        for (size_t i = 0; i < n_loaded; i++)
            found = found || strcmp(loaded[i]->version, config.shadow.version) == 0;
        if (!found) {
            snprintf(reason, sizeof(reason), "%s: shadow.version %s is not among the versions the policy "
                     "loads (%s)", origin, config.shadow.version, names);
            goto failed;
        }
    }

    pthread_rwlock_wrlock(&set->lock);
    size_t n_old = 0;
    model_version **old = publish(e, loaded, n_loaded, &config, &n_old);
    bool published = e->versions == loaded;
    if (published) {
        e->config_fingerprint = config_fp;
        e->has_config_file = file_text != NULL;
        e->loads_ok++;
        e->busy = false;
    }
    pthread_rwlock_unlock(&set->lock);
    if (!published) {
        snprintf(reason, sizeof(reason), "out of memory");
        goto failed;
    }
    /* versions no longer listed finish their requests and are freed by the last */
    for (size_t i = 0; i < n_old; i++) {
        bool kept = false;
        for (size_t k = 0; k < n_loaded; k++)
            kept = kept || old[i] == loaded[k];
        if (!kept)
            log_model(LOG_INFO, "version retired: finishing its requests in flight", name, old[i]->version,
                      "replaced_by", names);
    }
    release_list(old, n_old);
    free(files);
    free(file_text);
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    char seconds[32];
    snprintf(seconds, sizeof(seconds), "%.6f", (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9 - started);
    log_event(LOG_INFO, "model loaded", "model", name, "versions", names, "seconds", seconds, NULL);
    return ADMIN_OK;

failed:
    pthread_rwlock_wrlock(&set->lock);
    e->busy = false;
    e->loads_failed++;
    if (!e->n_versions)
        snprintf(e->reason, sizeof(e->reason), "%s", reason);
    /* rows left LOADING by this attempt go back to what they were */
    for (size_t i = 0; i < e->n_status; i++)
        if (e->status[i].state == VERSION_LOADING) {
            e->status[i].state = VERSION_UNAVAILABLE;
            if (!e->status[i].reason[0])
                snprintf(e->status[i].reason, sizeof(e->status[i].reason), "load abandoned: %.400s", reason);
        }
    bool serving = e->n_versions > 0;
    pthread_rwlock_unlock(&set->lock);
    release_list(loaded, n_loaded);
    free(files);
    free(file_text);
    log_event(LOG_ERROR, serving ? "model load failed: the versions serving before keep serving"
                                 : "model load failed",
              "model", name, "reason", reason, NULL);
    snprintf(err, n, "%s", reason);
    return ADMIN_BAD_REQUEST;
}

admin_result model_set_load(model_set *set, const char *name, const char *config_text, char *err, size_t n)
{
    if (set->options.control != MODEL_CONTROL_EXPLICIT) {
        snprintf(err, n, "explicit model load and unload are not allowed in model control mode '%s' "
                 "(start the server with --model-control explicit)", model_control_name(set->options.control));
        return ADMIN_NOT_ALLOWED;
    }
    return load_model(set, name, config_text, false, err, n);
}

static admin_result unload_model(model_set *set, const char *name, const char *why, char *err, size_t n)
{
    pthread_rwlock_wrlock(&set->lock);
    model_entry *e = model_set_find(set, name);
    if (!e) {
        pthread_rwlock_unlock(&set->lock);
        char dir[PATH_MAX];
        if (set->repository && model_name_valid(name) && confined_path(set, name, dir, sizeof(dir)))
            return ADMIN_OK; /* in the repository, not loaded: nothing to do (as Triton) */
        snprintf(err, n, "unknown model '%.200s'", name);
        return ADMIN_NOT_FOUND;
    }
    if (e->busy) {
        pthread_rwlock_unlock(&set->lock);
        snprintf(err, n, "a load or unload of model '%s' is already running; retry when it ends", name);
        return ADMIN_CONFLICT;
    }
    model_version **old = e->versions;
    size_t n_old = e->n_versions;
    for (size_t i = 0; i < n_old; i++) {
        version_status *row = status_row(e, old[i]->version, true);
        if (row) {
            row->state = VERSION_UNAVAILABLE;
            snprintf(row->reason, sizeof(row->reason), "unloaded");
        }
    }
    free(e->weights);
    free(e->rolled_back);
    e->versions = NULL;
    e->weights = NULL;
    e->rolled_back = NULL;
    e->n_versions = 0;
    e->unloaded = true;
    snprintf(e->reason, sizeof(e->reason), "%s", why);
    pthread_rwlock_unlock(&set->lock);
    release_list(old, n_old);
    log_event(LOG_INFO, "model unloaded: its versions finish their requests in flight", "model", name,
              "reason", why, NULL);
    return ADMIN_OK;
}

admin_result model_set_unload(model_set *set, const char *name, char *err, size_t n)
{
    if (set->options.control != MODEL_CONTROL_EXPLICIT) {
        snprintf(err, n, "explicit model load and unload are not allowed in model control mode '%s' "
                 "(start the server with --model-control explicit)", model_control_name(set->options.control));
        return ADMIN_NOT_ALLOWED;
    }
    return unload_model(set, name, "unloaded by the repository API", err, n);
}

admin_result model_set_set_traffic(model_set *set, const char *name, const json_t *traffic, char *err,
                                   size_t n)
{
    if (set->options.control == MODEL_CONTROL_NONE) {
        snprintf(err, n, "traffic cannot change in model control mode 'none' (start the server with "
                 "--model-control explicit or poll)");
        return ADMIN_NOT_ALLOWED;
    }
    json_t *wrapper = json_pack("{s:O}", "traffic", traffic);
    char *text = wrapper ? json_dumps(wrapper, JSON_COMPACT) : NULL;
    json_decref(wrapper);
    model_config parsed;
    bool ok = text && model_config_parse(text, "traffic", name, &parsed, err, n);
    free(text);
    if (!ok)
        return ADMIN_BAD_REQUEST;
    pthread_rwlock_wrlock(&set->lock);
    model_entry *e = model_set_find(set, name);
    admin_result result = ADMIN_OK;
    if (!e || !e->n_versions) {
        snprintf(err, n, e ? "model '%s' is not loaded" : "unknown model '%s'", name);
        result = ADMIN_NOT_FOUND;
    } else if (e->busy) {
        snprintf(err, n, "a load or unload of model '%s' is running; retry when it ends", name);
        result = ADMIN_CONFLICT;
    }
    char names[512];
    if (result == ADMIN_OK)
        list_versions_text(e->versions, e->n_versions, names, sizeof(names));
    for (size_t k = 0; result == ADMIN_OK && k < parsed.n_traffic; k++) {
        bool found = false;
        for (size_t i = 0; i < e->n_versions; i++)
            found = found || strcmp(e->versions[i]->version, parsed.traffic[k].version) == 0;
        if (!found) {
            snprintf(err, n, "traffic names version %s, which is not loaded (loaded: %s)",
                     parsed.traffic[k].version, names);
            result = ADMIN_BAD_REQUEST;
        }
    }
    if (result == ADMIN_OK) {
        memcpy(e->config.traffic, parsed.traffic, sizeof(parsed.traffic));
        e->config.n_traffic = parsed.n_traffic;
        for (size_t i = 0; i < e->n_versions; i++) {
            e->weights[i] = 0;
            e->rolled_back[i][0] = '\0';
            for (size_t k = 0; k < parsed.n_traffic; k++)
                if (strcmp(parsed.traffic[k].version, e->versions[i]->version) == 0)
                    e->weights[i] = parsed.traffic[k].weight;
        }
        set_serving_flags(e);
    }
    pthread_rwlock_unlock(&set->lock);
    if (result == ADMIN_OK) {
        char *split = json_dumps(traffic, JSON_COMPACT);
        log_event(LOG_INFO, "traffic split changed", "model", name, "traffic", split ? split : "", NULL);
        free(split);
    }
    return result;
}

/* ---- the index ----------------------------------------------------------- */

static int by_row_version(const void *a, const void *b)
{
    long long x = version_number(((const version_status *)a)->version);
    long long y = version_number(((const version_status *)b)->version);
    return x < y ? -1 : x > y;
}

json_t *model_set_index(model_set *set, bool ready_only)
{
    json_t *index = json_array();
    pthread_rwlock_wrlock(&set->lock); /* sorts the rows in place */
    for (size_t i = 0; i < set->n_entries; i++) {
        model_entry *e = set->entries[i];
        if (e->n_status)
            qsort(e->status, e->n_status, sizeof(*e->status), by_row_version);
        bool any = false;
        for (size_t k = 0; k < e->n_status; k++) {
            const version_status *row = &e->status[k];
            if (ready_only && row->state != VERSION_READY)
                continue;
            const char *reason = row->reason;
            for (size_t v = 0; v < e->n_versions; v++)
                if (strcmp(e->versions[v]->version, row->version) == 0 && e->rolled_back[v][0])
                    reason = e->rolled_back[v];
            json_array_append_new(index, json_pack("{s:s, s:s, s:s, s:s}", "name", e->name, "version",
                                                   row->version, "state", version_state_name(row->state),
                                                   "reason", reason));
            any = true;
        }
        if (!any && !ready_only)
            json_array_append_new(index, json_pack("{s:s, s:s, s:s}", "name", e->name, "state", "UNAVAILABLE",
                                                   "reason", e->reason[0] ? e->reason : "not loaded"));
    }
    pthread_rwlock_unlock(&set->lock);
    /* models in the repository that were never loaded */
    if (!ready_only && set->repository) {
        struct dirent **names;
        int count = scandir(set->repository, &names, NULL, alphasort);
        for (int i = 0; i < count; i++) {
            char dir[PATH_MAX];
            struct stat st;
            const char *name = names[i]->d_name;
            if (model_name_valid(name) && confined_path(set, name, dir, sizeof(dir)) && stat(dir, &st) == 0 &&
                S_ISDIR(st.st_mode)) {
                pthread_rwlock_rdlock(&set->lock);
                bool known = model_set_find(set, name) != NULL;
                pthread_rwlock_unlock(&set->lock);
                if (!known)
                    json_array_append_new(index, json_pack("{s:s, s:s, s:s}", "name", name, "state",
                                                           "UNAVAILABLE", "reason", "not loaded"));
            }
            free(names[i]);
        }
        if (count >= 0)
            free(names);
    }
    return index;
}

static json_t *config_json(const model_config *c)
{
    json_t *policy = c->policy == VERSION_POLICY_ALL ? json_pack("{s:b}", "all", 1)
                     : c->policy == VERSION_POLICY_LATEST ? json_pack("{s:i}", "latest", c->latest)
                                                          : json_pack("{s:[]}", "specific");
    for (size_t i = 0; c->policy == VERSION_POLICY_SPECIFIC && i < c->n_specific; i++)
        json_array_append_new(json_object_get(policy, "specific"), json_integer(c->specific[i]));
    json_t *out = json_pack("{s:o, s:b}", "version_policy", policy, "mode_field", c->mode_field);
    if (c->n_traffic) {
        json_t *traffic = json_object();
        for (size_t i = 0; i < c->n_traffic; i++)
            json_object_set_new(traffic, c->traffic[i].version, json_integer(c->traffic[i].weight));
        json_object_set_new(out, "traffic", traffic);
    }
    if (c->sticky_header[0])
        json_object_set_new(out, "sticky", json_string(c->sticky_header));
    if (c->shadow.enabled)
        json_object_set_new(out, "shadow", json_pack("{s:s, s:f, s:i, s:f}", "version", c->shadow.version, "percent",
                                                     c->shadow.percent, "queue", c->shadow.queue, "tolerance",
                                                     c->shadow.tolerance));
    if (c->rollback.enabled) {
        json_t *rb = json_pack("{s:i}", "window", c->rollback.window);
        if (c->rollback.max_error_rate >= 0)
            json_object_set_new(rb, "max_error_rate", json_real(c->rollback.max_error_rate));
        if (c->rollback.min_agreement >= 0)
            json_object_set_new(rb, "min_agreement", json_real(c->rollback.min_agreement));
        json_object_set_new(out, "rollback", rb);
    }
    if (c->max_batch_size)
        json_object_set_new(out, "max_batch_size", json_integer(c->max_batch_size));
    return out;
}

static json_t *entry_status(const model_entry *e)
{
    json_t *versions = json_array();
    for (size_t i = 0; i < e->n_versions; i++) {
        model_version *v = e->versions[i];
        pthread_mutex_lock(&v->stats_lock);
        json_t *shadow = json_pack("{s:I, s:I, s:I, s:f}", "agreed", (json_int_t)v->shadow_agreed, "disagreed",
                                   (json_int_t)v->shadow_disagreed, "failed", (json_int_t)v->shadow_failed,
                                   "max_abs_diff", v->shadow_max_abs_diff);
        json_int_t answered = (json_int_t)v->answered, failed = (json_int_t)v->failed;
        pthread_mutex_unlock(&v->stats_lock);
        json_array_append_new(versions,
                              json_pack("{s:s, s:s, s:i, s:s, s:s, s:f, s:f, s:{s:I, s:I}, s:o}", "version",
                                        v->version, "state", v->ready ? "READY" : "UNAVAILABLE", "weight",
                                        e->weights[i], "rolled_back", e->rolled_back[i], "sha256", v->sha256,
                                        "loaded_at", v->loaded_at, "load_seconds", v->load_seconds, "canary",
                                        "answered", answered, "failed", failed, "shadow", shadow));
    }
    return json_pack("{s:s, s:o, s:o, s:s, s:I, s:I, s:I}", "name", e->name, "versions", versions, "config",
                     config_json(&e->config), "reason", e->reason, "loads_ok", (json_int_t)e->loads_ok,
                     "loads_failed", (json_int_t)e->loads_failed, "rollbacks", (json_int_t)e->rollbacks);
}

json_t *model_set_status(model_set *set, const char *name)
{
    json_t *out = NULL;
    pthread_rwlock_rdlock(&set->lock);
    if (name) {
        const model_entry *e = model_set_find(set, name);
        out = e ? entry_status(e) : NULL;
    } else {
        out = json_array();
        for (size_t i = 0; i < set->n_entries; i++)
            json_array_append_new(out, entry_status(set->entries[i]));
    }
    pthread_rwlock_unlock(&set->lock);
    return out;
}

/* ---- start, poll, stop --------------------------------------------------- */

model_set *model_set_create(const model_set_options *options)
{
    model_set *set = calloc(1, sizeof(*set));
    if (!set)
        return NULL;
    set->options = *options;
    set->options.repository = NULL;
    if (options->repository) {
        char resolved[PATH_MAX];
        if (!realpath(options->repository, resolved) || !(set->repository = strdup(resolved))) {
            free(set);
            return NULL;
        }
    }
    pthread_rwlock_init(&set->lock, NULL);
    pthread_mutex_init(&set->poll_lock, NULL);
    pthread_cond_init(&set->poll_wake, NULL);
    pthread_mutex_init(&set->shadow_lock, NULL);
    pthread_cond_init(&set->shadow_wake, NULL);
    return set;
}

bool model_set_add_source(model_set *set, const model_source *source, char *err, size_t n)
{
    version_load_options options = load_options(set);
    model_version *v = model_version_load(source, &options, err, n);
    if (!v)
        return false;
    if (!v->ready)
        log_model(LOG_ERROR, "golden samples failed: model not ready", v->name, v->version, "reason", err);
    pthread_rwlock_wrlock(&set->lock);
    model_entry *e = entry_add(set, v->name);
    bool ok = e != NULL;
    for (size_t i = 0; ok && i < e->n_versions; i++)
        if (strcmp(e->versions[i]->version, v->version) == 0) {
            snprintf(err, n, "model '%s' version %s is given twice", v->name, v->version);
            ok = false;
        }
    model_version **list = ok ? calloc(e->n_versions + 1, sizeof(*list)) : NULL;
    if (ok && !list) {
        snprintf(err, n, "out of memory");
        ok = false;
    }
    size_t n_old = 0;
    model_version **old = NULL;
    if (ok) {
        for (size_t i = 0; i < e->n_versions; i++)
            list[i] = model_version_ref(e->versions[i]);
        list[e->n_versions] = v;
        model_config config = e->config;
        old = publish(e, list, e->n_versions + 1, &config, &n_old);
        e->loads_ok++;
    }
    pthread_rwlock_unlock(&set->lock);
    release_list(old, n_old);
    if (!ok) {
        free(list);
        model_version_unref(v);
    }
    return ok;
}

bool model_set_load_repository(model_set *set, char *err, size_t n)
{
    struct dirent **names;
    int count = scandir(set->repository, &names, NULL, alphasort);
    if (count < 0) {
        snprintf(err, n, "%s: %s", set->repository, strerror(errno));
        return false;
    }
    bool ok = true;
    size_t tried = 0;
    for (int i = 0; i < count; i++) {
        const char *name = names[i]->d_name;
        char dir[PATH_MAX], why[2048];
        struct stat st;
        if (ok && model_name_valid(name) && confined_path(set, name, dir, sizeof(dir)) && stat(dir, &st) == 0 &&
            S_ISDIR(st.st_mode)) {
            tried++;
            char *signature = model_signature(set, name);
            admin_result r = load_model(set, name, NULL, true, why, sizeof(why));
            pthread_rwlock_wrlock(&set->lock);
            model_entry *e = model_set_find(set, name);
            if (e) {
                free(e->poll_applied);
                free(e->poll_pending);
                e->poll_applied = signature;
                e->poll_pending = signature ? strdup(signature) : NULL;
            } else {
                free(signature);
            }
            pthread_rwlock_unlock(&set->lock);
            if (r != ADMIN_OK && set->options.control == MODEL_CONTROL_NONE) {
                snprintf(err, n, "model '%s': %s", name, why);
                ok = false;
            }
        }
        free(names[i]);
    }
    free(names);
    if (ok && tried == 0 && set->options.control == MODEL_CONTROL_NONE) {
        snprintf(err, n, "%s: no models found (expected <name>/<version>/model.onnx)", set->repository);
        ok = false;
    }
    return ok;
}

static void poll_once(model_set *set)
{
    struct dirent **names;
    int count = scandir(set->repository, &names, NULL, alphasort);
    if (count < 0)
        return;
    for (int i = 0; i < count; i++) {
        const char *name = names[i]->d_name;
        char dir[PATH_MAX];
        struct stat st;
        if (!set->stopping && model_name_valid(name) && confined_path(set, name, dir, sizeof(dir)) &&
            stat(dir, &st) == 0 && S_ISDIR(st.st_mode)) {
            char *signature = model_signature(set, name);
            pthread_rwlock_wrlock(&set->lock);
            model_entry *e = entry_add(set, name);
            bool attempt = false;
            if (e && signature) {
                e->from_repository = true;
                bool applied = e->poll_applied && strcmp(e->poll_applied, signature) == 0;
                bool settled = e->poll_pending && strcmp(e->poll_pending, signature) == 0;
                if (!applied && settled) {
                    attempt = true;
                    free(e->poll_applied);
                    e->poll_applied = strdup(signature);
                } else if (!settled) {
                    free(e->poll_pending);
                    e->poll_pending = strdup(signature);
                }
            }
            pthread_rwlock_unlock(&set->lock);
            free(signature);
            if (attempt) {
                char why[2048];
                load_model(set, name, NULL, false, why, sizeof(why));
            }
        }
    }
    /* models whose directory went away */
    pthread_rwlock_rdlock(&set->lock);
    size_t n_entries = set->n_entries;
    char **gone = calloc(n_entries ? n_entries : 1, sizeof(*gone));
    size_t n_gone = 0;
    for (size_t k = 0; gone && k < n_entries; k++) {
        const model_entry *e = set->entries[k];
        if (!e->from_repository || !e->n_versions)
            continue;
        bool present = false;
        for (int i = 0; i < count && !present; i++)
            present = strcmp(names[i]->d_name, e->name) == 0;
        if (!present)
            gone[n_gone++] = strdup(e->name);
    }
    pthread_rwlock_unlock(&set->lock);
    for (size_t k = 0; k < n_gone; k++) {
        char why[256];
        if (gone[k])
            unload_model(set, gone[k], "its directory left the repository", why, sizeof(why));
        if (gone[k]) {
            pthread_rwlock_wrlock(&set->lock);
            model_entry *e = model_set_find(set, gone[k]);
            if (e) {
                e->unloaded = true;
                free(e->poll_applied);
                e->poll_applied = NULL;
            }
            pthread_rwlock_unlock(&set->lock);
        }
        free(gone[k]);
    }
    free(gone);
    for (int i = 0; i < count; i++)
        free(names[i]);
    free(names);
}

static void *poll_main(void *arg)
{
    model_set *set = arg;
    pthread_mutex_lock(&set->poll_lock);
    while (!set->stopping) {
        struct timespec until;
        clock_gettime(CLOCK_REALTIME, &until);
        double at = (double)until.tv_sec + (double)until.tv_nsec * 1e-9 + set->options.poll_interval;
        until.tv_sec = (time_t)at;
        until.tv_nsec = (long)((at - (double)until.tv_sec) * 1e9);
        pthread_cond_timedwait(&set->poll_wake, &set->poll_lock, &until);
        if (set->stopping)
            break;
        pthread_mutex_unlock(&set->poll_lock);
        poll_once(set);
        pthread_mutex_lock(&set->poll_lock);
    }
    pthread_mutex_unlock(&set->poll_lock);
    return NULL;
}

bool model_set_start(model_set *set)
{
    if (pthread_create(&set->shadow_thread, NULL, shadow_main, set) != 0)
        return false;
    pthread_mutex_lock(&set->shadow_lock);
    set->shadow_running = true;
    pthread_mutex_unlock(&set->shadow_lock);
    if (set->options.control == MODEL_CONTROL_POLL && set->repository) {
        if (pthread_create(&set->poll_thread, NULL, poll_main, set) != 0)
            return false;
        set->poll_running = true;
    }
    return true;
}

void model_set_free(model_set *set)
{
    if (!set)
        return;
    pthread_mutex_lock(&set->poll_lock);
    set->stopping = true;
    pthread_cond_broadcast(&set->poll_wake);
    pthread_mutex_unlock(&set->poll_lock);
    if (set->poll_running)
        pthread_join(set->poll_thread, NULL);
    pthread_mutex_lock(&set->shadow_lock);
    bool shadow = set->shadow_running;
    set->shadow_running = false;
    pthread_cond_broadcast(&set->shadow_wake);
    pthread_mutex_unlock(&set->shadow_lock);
    if (shadow)
        pthread_join(set->shadow_thread, NULL);
    for (size_t i = 0; i < set->n_entries; i++) {
        model_entry *e = set->entries[i];
        release_list(e->versions, e->n_versions);
        free(e->weights);
        free(e->rolled_back);
        free(e->status);
        free(e->poll_pending);
        free(e->poll_applied);
        free(e->name);
        free(e);
    }
    free(set->entries);
    free(set->repository);
    pthread_rwlock_destroy(&set->lock);
    pthread_mutex_destroy(&set->poll_lock);
    pthread_cond_destroy(&set->poll_wake);
    pthread_mutex_destroy(&set->shadow_lock);
    pthread_cond_destroy(&set->shadow_wake);
    free(set);
}
