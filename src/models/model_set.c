/*
 * model_set.c — the live model set's structure and its request path (see
 * model_set.h for the contract): the entries by name, the lookup that picks
 * a version by the traffic policy and hands out a reference, the run that
 * feeds rollback and the shadow, the index and status, start and stop.
 *
 * A version is listed only after model_load.c loaded and checked it whole,
 * and a listed version is replaced in one step under the write lock; a
 * request holds its version's reference from the lookup to its answer, so
 * a replaced version finishes what it began and its last request frees it.
 * Rollback takes a canary's weight to 0 (or stops feeding a shadow) when
 * its window of outcomes crosses the config's threshold.
 */
#include "model_set_internal.h"

#include <dirent.h>
#include <errno.h>
#include <limits.h>
#include <pthread.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "log.h"

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

model_control model_set_control(const model_set *set)
{
    return set->options.control;
}

/* A model name from a request: what a directory may be called, never a path. */
bool repository_name_valid(const char *s)
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

long long version_number_of(const char *v)
{
    return strtoll(v, NULL, 10);
}

uint64_t model_set_random(void)
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

void model_set_log(log_level level, const char *message, const char *model, const char *version,
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
model_entry *model_set_entry_add(model_set *set, const char *name)
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
    e->batch_defaults = &set->options.batching;
    size_t at = 0;
    while (at < set->n_entries && strcmp(set->entries[at]->name, name) < 0)
        at++;
    memmove(set->entries + at + 1, set->entries + at,
            (set->n_entries - at) * sizeof(*set->entries));
    set->entries[at] = e;
    set->n_entries++;
    return e;
}

size_t model_set_count(const model_set *set)
{
    return set->n_entries;
}
model_entry *model_set_entry(const model_set *set, size_t i)
{
    return i < set->n_entries ? set->entries[i] : NULL;
}

model_entry *model_set_default(const model_set *set)
{
    for (size_t i = 0; i < set->n_entries; i++)
        if (set->entries[i]->n_versions)
            return set->entries[i];
    return set->n_entries ? set->entries[0] : NULL;
}

void model_set_read_lock(model_set *set)
{
    pthread_rwlock_rdlock(&set->lock);
}
void model_set_read_unlock(model_set *set)
{
    pthread_rwlock_unlock(&set->lock);
}

version_status *model_set_status_row(model_entry *e, const char *version, bool create)
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

int model_set_listed_index(const model_entry *e, const model_version *v)
{
    for (size_t i = 0; i < e->n_versions; i++)
        if (e->versions[i] == v)
            return (int)i;
    return -1;
}

/* The version that takes the most configured traffic (ties: the older
 * one; without a split, the newest): never rolled back. */
int model_set_baseline_index(const model_entry *e)
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
/* The batching in force for a model: its config's fields, the server's
 * flags for what the config leaves out. */
static batch_settings batching_of(const model_entry *e)
{
    batch_settings s = e->batch_defaults ? *e->batch_defaults : (batch_settings){0};
    const model_config *c = &e->config;
    if (c->max_batch_size)
        s.max_batch_size = c->max_batch_size;
    if (c->max_queue_delay_us >= 0)
        s.max_queue_delay_us = c->max_queue_delay_us;
    if (c->n_preferred_batch_sizes) {
        memcpy(s.preferred, c->preferred_batch_sizes, c->n_preferred_batch_sizes * sizeof(int));
        s.n_preferred = c->n_preferred_batch_sizes;
    }
    if (c->max_queue_size)
        s.max_queue = c->max_queue_size;
    if (s.max_queue_delay_us < 0)
        s.max_queue_delay_us = 0;
    if (s.max_queue <= 0)
        s.max_queue = BATCH_DEFAULT_QUEUE;
    return s;
}

/* Intra-op threads of a batcher's session. One batch thread replaces the
 * many workers that would each run a request, so unless --threads asks
 * for a number, its engine calls may use every core the process may run
 * on (a batch is large enough for the engine to split it). */
static int batch_threads(const model_version *v)
{
    if (v->threads_per_session > 1)
        return v->threads_per_session;
    cpu_set_t allowed;
    if (sched_getaffinity(0, sizeof(allowed), &allowed) == 0 && CPU_COUNT(&allowed) > 0)
        return CPU_COUNT(&allowed);
    return 1;
}

/* Give a version its batcher when batching is on (write lock held); a
 * version keeps one it has, reconfigured, so requests queued on it are
 * never lost to a config change. */
static void refresh_batching(const model_entry *e, model_version *v)
{
    batch_settings s = batching_of(e);
    batcher *b = __atomic_load_n(&v->batcher, __ATOMIC_ACQUIRE);
    if (b) {
        batcher_configure(b, &s);
        return;
    }
    if (s.max_batch_size <= 1)
        return;
    char err[512];
    b = batcher_create(v->model, batch_threads(v), &s, err, sizeof(err));
    if (!b) {
        model_set_log(LOG_WARNING, "batching off: cannot start the batcher", v->name, v->version,
                      "error", err);
        return;
    }
    __atomic_store_n(&v->batcher, b, __ATOMIC_RELEASE);
}

void model_set_refresh_flags(model_entry *e)
{
    int baseline = model_set_baseline_index(e);
    for (size_t i = 0; i < e->n_versions; i++) {
        model_version *v = e->versions[i];
        unsigned flags = 0;
        bool is_shadow =
            e->config.shadow.enabled && strcmp(v->version, e->config.shadow.version) == 0;
        if (e->config.rollback.enabled && e->config.rollback.max_error_rate >= 0 &&
            (int)i != baseline && e->weights[i] > 0)
            flags |= SERVE_OUTCOMES;
        if (e->config.shadow.enabled && !is_shadow)
            flags |= SHADOW_SOURCE;
        pthread_mutex_lock(&v->stats_lock);
        v->failure_limit = e->config.rollback.max_error_rate;
        v->agreement_floor =
            is_shadow && e->config.rollback.enabled ? e->config.rollback.min_agreement : -1;
        if (e->config.rollback.enabled) {
            if (v->failures.size != e->config.rollback.window)
                outcome_window_reset(&v->failures, e->config.rollback.window);
            if (is_shadow && v->disagreements.size != e->config.rollback.window)
                outcome_window_reset(&v->disagreements, e->config.rollback.window);
        }
        pthread_mutex_unlock(&v->stats_lock);
        __atomic_store_n(&v->serving_flags, flags, __ATOMIC_RELEASE);
        refresh_batching(e, v);
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
        const char *key = e->config.sticky_header[0] && headers
                              ? headers(context, e->config.sticky_header)
                              : NULL;
        uint64_t draw = key ? fnv1a(key) : model_set_random();
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

int model_entry_share(const model_entry *e, size_t i)
{
    int total = 0;
    for (size_t k = 0; k < e->n_versions; k++)
        total += e->weights[k];
    if (e->config.n_traffic && total > 0)
        return e->weights[i];
    /* without a split (or with every weight rolled back) one version takes
     * every request that names none */
    return (int)i == choose_version(e, NULL, NULL) ? 100 : 0;
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
        snprintf(err, n, "model '%s' is not loaded%s%s", e->name, e->reason[0] ? ": " : "",
                 e->reason);
        result = ACQUIRE_NOT_SERVING;
    } else if (version && *version) {
        for (size_t i = 0; i < e->n_versions && !out->version; i++)
            if (strcmp(e->versions[i]->version, version) == 0)
                out->version = model_version_ref(e->versions[i]);
        if (!out->version) {
            const version_status *row = model_set_status_row(e, version, false);
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
void model_set_roll_back(model_set *set, model_version *v, const char *reason)
{
    pthread_rwlock_wrlock(&set->lock);
    model_entry *e = model_set_find(set, v->name);
    int i = e ? model_set_listed_index(e, v) : -1;
    bool done = false;
    if (i >= 0 && !e->rolled_back[i][0]) {
        bool is_shadow =
            e->config.shadow.enabled && strcmp(v->version, e->config.shadow.version) == 0;
        if (i != model_set_baseline_index(e) || is_shadow) {
            e->weights[i] = 0;
            snprintf(e->rolled_back[i], sizeof(e->rolled_back[i]), "%s", reason);
            if (is_shadow)
                e->config.shadow.enabled = false;
            e->rollbacks++;
            model_set_refresh_flags(e);
            done = true;
        }
    }
    pthread_rwlock_unlock(&set->lock);
    if (done)
        model_set_log(LOG_WARNING, "rollback: version taken out of traffic", v->name, v->version,
                      "reason", reason);
}

/* What serving learns of one answer: the error rate of a canary (rollback)
 * and a copy for the shadow. */
static void record_outcome(model_set *set, model_version *v, bool ok, ifd_value *const *inputs,
                           ifd_value **outputs)
{
    unsigned flags = __atomic_load_n(&v->serving_flags, __ATOMIC_ACQUIRE);
    if (flags & SERVE_OUTCOMES) {
        char reason[256] = "";
        pthread_mutex_lock(&v->stats_lock);
        v->answered++;
        v->failed += !ok;
        outcome_window_add(&v->failures, !ok);
        double limit = v->failure_limit;
        if (v->failures.size && v->failures.count == v->failures.size &&
            (double)v->failures.bad / v->failures.count > limit)
            snprintf(reason, sizeof(reason),
                     "error rate %.4f over the last %d requests exceeds max_error_rate %.4f",
                     (double)v->failures.bad / v->failures.count, v->failures.count, limit);
        pthread_mutex_unlock(&v->stats_lock);
        if (reason[0])
            model_set_roll_back(set, v, reason);
    }
    if ((flags & SHADOW_SOURCE) && ok)
        shadow_offer(set, v, inputs, outputs);
}

bool model_set_batches(const model_version *v)
{
    return batcher_enabled(__atomic_load_n(&v->batcher, __ATOMIC_ACQUIRE));
}

ifd_status model_set_run(model_set *set, model_version *v, int session, ifd_value *const *inputs,
                         ifd_value **outputs, char *err, size_t n)
{
    return model_set_run_until(set, v, session, inputs, outputs, 0, NULL, err, n);
}

ifd_status model_set_run_until(model_set *set, model_version *v, int session,
                               ifd_value *const *inputs, ifd_value **outputs, double deadline,
                               int *http_status, char *err, size_t n)
{
    batcher *b = __atomic_load_n(&v->batcher, __ATOMIC_ACQUIRE);
    ifd_status st;
    if (batcher_enabled(b) && (session < 0 || batcher_would_merge(b, inputs))) {
        batch_outcome outcome = batcher_run(b, inputs, outputs, deadline, err, n);
        if (http_status)
            *http_status = batch_outcome_http_status(outcome);
        if (outcome != BATCH_OK && outcome != BATCH_FAILED)
            return IFD_ERR_RUNTIME; /* refused, not the version's failure: no outcome recorded */
        st = outcome == BATCH_OK ? IFD_OK : IFD_ERR_RUNTIME;
    } else {
        st = model_version_run(v, session, inputs, outputs, err, n);
        if (http_status)
            *http_status = st == IFD_OK ? 200 : 400;
    }
    record_outcome(set, v, st == IFD_OK, inputs, outputs);
    return st;
}

/* A queued request: what model_set_submit's completion needs. */
typedef struct submitted {
    model_set *set;
    model_version *version;
    ifd_value *const *inputs;
    ifd_value **outputs;
    model_run_done done;
    void *context;
} submitted;

static void on_batch_done(void *context, batch_outcome outcome, const char *error)
{
    submitted *s = context;
    if (outcome == BATCH_OK || outcome == BATCH_FAILED)
        record_outcome(s->set, s->version, outcome == BATCH_OK, s->inputs, s->outputs);
    model_run_done done = s->done;
    void *user = s->context;
    free(s);
    done(user, batch_outcome_http_status(outcome), error);
}

int model_set_submit(model_set *set, model_version *v, int session, ifd_value *const *inputs,
                     ifd_value **outputs, double deadline, model_run_done done, void *context,
                     char *err, size_t n)
{
    batcher *b = __atomic_load_n(&v->batcher, __ATOMIC_ACQUIRE);
    if (b && session >= 0 && !batcher_would_merge(b, inputs)) {
        /* it would run alone: on this thread, not ahead of the queue */
        char why[1024] = "";
        ifd_status st = model_version_run(v, session, inputs, outputs, why, sizeof(why));
        record_outcome(set, v, st == IFD_OK, inputs, outputs);
        done(context, st == IFD_OK ? 200 : 400, why);
        return 0;
    }
    submitted *s = b ? malloc(sizeof(*s)) : NULL;
    if (!s) {
        snprintf(err, n, b ? "out of memory" : "model '%s' version %s does not batch", v->name, v->version);
        return 503;
    }
    *s = (submitted){set, v, inputs, outputs, done, context};
    /* a caller with a session of its own is a worker: it may run the batch */
    batch_outcome queued = batcher_submit(b, inputs, outputs, deadline, session >= 0, on_batch_done, s);
    if (queued == BATCH_OK)
        return 0;
    free(s);
    snprintf(err, n, "%s",
             queued == BATCH_QUEUE_FULL
                 ? "the model's batch queue is full (max_queue_size); retry later"
                 : "the model version is being unloaded; retry");
    return batch_outcome_http_status(queued);
}

/* Compare a shadow answer with the live one: the same class for every row
 * (classifiers: more than one score per row), or every score within the
 * tolerance (regressors). */
/* ---- the index ----------------------------------------------------------- */

static int by_row_version(const void *a, const void *b)
{
    long long x = version_number_of(((const version_status *)a)->version);
    long long y = version_number_of(((const version_status *)b)->version);
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
            json_array_append_new(
                index, json_pack("{s:s, s:s, s:s, s:s}", "name", e->name, "version", row->version,
                                 "state", version_state_name(row->state), "reason", reason));
            any = true;
        }
        if (!any && !ready_only)
            json_array_append_new(index, json_pack("{s:s, s:s, s:s}", "name", e->name, "state",
                                                   "UNAVAILABLE", "reason",
                                                   e->reason[0] ? e->reason : "not loaded"));
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
            if (repository_name_valid(name) && !repository_is_pipeline(set, name) &&
                repository_confined_path(set, name, dir, sizeof(dir)) && stat(dir, &st) == 0 &&
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
    json_t *policy = c->policy == VERSION_POLICY_ALL      ? json_pack("{s:b}", "all", 1)
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
        json_object_set_new(out, "shadow",
                            json_pack("{s:s, s:f, s:i, s:f}", "version", c->shadow.version,
                                      "percent", c->shadow.percent, "queue", c->shadow.queue,
                                      "tolerance", c->shadow.tolerance));
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
        int weight = model_entry_share(e, i);
        pthread_mutex_lock(&v->stats_lock);
        json_t *shadow =
            json_pack("{s:I, s:I, s:I, s:f}", "agreed", (json_int_t)v->shadow_agreed, "disagreed",
                      (json_int_t)v->shadow_disagreed, "failed", (json_int_t)v->shadow_failed,
                      "max_abs_diff", v->shadow_max_abs_diff);
        json_int_t answered = (json_int_t)v->answered, failed = (json_int_t)v->failed;
        pthread_mutex_unlock(&v->stats_lock);
        json_array_append_new(
            versions,
            json_pack("{s:s, s:s, s:i, s:s, s:s, s:f, s:f, s:{s:I, s:I}, s:o}", "version",
                      v->version, "state", v->ready ? "READY" : "UNAVAILABLE", "weight", weight,
                      "rolled_back", e->rolled_back[i], "sha256", v->sha256, "loaded_at",
                      v->loaded_at, "load_seconds", v->load_seconds, "canary", "answered", answered,
                      "failed", failed, "shadow", shadow));
    }
    return json_pack("{s:s, s:o, s:o, s:s, s:I, s:I, s:I}", "name", e->name, "versions", versions,
                     "config", config_json(&e->config), "reason", e->reason, "loads_ok",
                     (json_int_t)e->loads_ok, "loads_failed", (json_int_t)e->loads_failed,
                     "rollbacks", (json_int_t)e->rollbacks);
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

bool model_set_start(model_set *set)
{
    if (pthread_create(&set->shadow_thread, NULL, shadow_thread_main, set) != 0)
        return false;
    pthread_mutex_lock(&set->shadow_lock);
    set->shadow_running = true;
    pthread_mutex_unlock(&set->shadow_lock);
    if (set->options.control == MODEL_CONTROL_POLL && set->repository) {
        if (pthread_create(&set->poll_thread, NULL, model_set_poll_main, set) != 0)
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
    __atomic_store_n(&set->stopping, true, __ATOMIC_RELEASE);
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
        model_set_release_list(e->versions, e->n_versions);
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
