/*
 * pipeline_set.c — the served pipelines, their reloads and statistics
 * (see pipeline_set.h).
 */
#include "pipeline_set.h"

#include <dirent.h>
#include <errno.h>
#include <limits.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include "branch_pool.h"
#include "log.h"
#include "remote.h"
#include "step_stats.h"

typedef struct pipeline_entry {
    char *name;
    pipeline *serving;         /* NULL: refused or unloaded */
    char reason[1024];         /* why the last load failed, or why it is not ready */
    bool refused;              /* the last load failed */
    bool unreachable;          /* ... because its remote entry step did not answer: retried */
    double retry_at;           /* CLOCK_MONOTONIC seconds of the next retry by a request */
    bool unloaded;             /* by request: the poll leaves it alone */
    file_fingerprint applied;  /* the file last loaded or refused */
    bool has_applied;
} pipeline_entry;

struct pipeline_set {
    pipeline_set_options options;
    char *repository;
    pthread_rwlock_t lock;     /* entries */
    pipeline_entry **entries;
    size_t n_entries;
    pthread_mutex_t stats_lock;
    step_stats **stats;
    size_t n_stats;
    pthread_mutex_t load_lock; /* one load at a time: loads read models and remotes */
    branch_pool *branches;
    pipeline_env env;
    pthread_t poll_thread;
    bool polling, stopping;
    pthread_mutex_t poll_lock;
    pthread_cond_t poll_wake;
};

static step_stats *stats_for(void *context, const char *pipeline_name, const char *step_name)
{
    pipeline_set *set = context;
    pthread_mutex_lock(&set->stats_lock);
    step_stats *found = NULL;
    for (size_t i = 0; i < set->n_stats && !found; i++)
        if (step_stats_is(set->stats[i], pipeline_name, step_name))
            found = set->stats[i];
    if (!found) {
        step_stats **grown = realloc(set->stats, (set->n_stats + 1) * sizeof(*grown));
        if (grown) {
            set->stats = grown;
            found = step_stats_new(pipeline_name, step_name);
            if (found)
                set->stats[set->n_stats++] = found;
        }
    }
    pthread_mutex_unlock(&set->stats_lock);
    return found;
}

pipeline_set *pipeline_set_create(const pipeline_set_options *options)
{
    pipeline_set *set = calloc(1, sizeof(*set));
    if (!set)
        return NULL;
    set->options = *options;
    set->repository = options->repository ? strdup(options->repository) : NULL;
    set->options.repository = set->repository;
    pthread_rwlock_init(&set->lock, NULL);
    pthread_mutex_init(&set->stats_lock, NULL);
    pthread_mutex_init(&set->load_lock, NULL);
    pthread_mutex_init(&set->poll_lock, NULL);
    pthread_cond_init(&set->poll_wake, NULL);
    remote_global_init();
    set->branches = branch_pool_start(options->branch_threads, options->first_branch_session);
    set->env = (pipeline_env){.models = options->models, .branches = set->branches, .stats_for = stats_for,
                              .stats_context = set};
    return set;
}

void pipeline_set_free(pipeline_set *set)
{
    if (!set)
        return;
    if (set->polling) {
        pthread_mutex_lock(&set->poll_lock);
        set->stopping = true;
        pthread_cond_broadcast(&set->poll_wake);
        pthread_mutex_unlock(&set->poll_lock);
        pthread_join(set->poll_thread, NULL);
    }
    for (size_t i = 0; i < set->n_entries; i++) {
        pipeline_unref(set->entries[i]->serving);
        free(set->entries[i]->name);
        free(set->entries[i]);
    }
    free(set->entries);
    branch_pool_stop(set->branches);
    for (size_t i = 0; i < set->n_stats; i++)
        step_stats_free(set->stats[i]);
    free(set->stats);
    pthread_rwlock_destroy(&set->lock);
    pthread_mutex_destroy(&set->stats_lock);
    pthread_mutex_destroy(&set->load_lock);
    pthread_mutex_destroy(&set->poll_lock);
    pthread_cond_destroy(&set->poll_wake);
    free(set->repository);
    free(set);
}

static pipeline_entry *find(const pipeline_set *set, const char *name)
{
    for (size_t i = 0; i < set->n_entries; i++)
        if (strcmp(set->entries[i]->name, name) == 0)
            return set->entries[i];
    return NULL;
}

/* Under the write lock. */
static pipeline_entry *find_or_add(pipeline_set *set, const char *name)
{
    pipeline_entry *e = find(set, name);
    if (e)
        return e;
    pipeline_entry **grown = realloc(set->entries, (set->n_entries + 1) * sizeof(*grown));
    if (!grown)
        return NULL;
    set->entries = grown;
    e = calloc(1, sizeof(*e));
    if (!e || !(e->name = strdup(name))) {
        free(e);
        return NULL;
    }
    /* keep the index sorted by name */
    size_t at = set->n_entries;
    while (at > 0 && strcmp(set->entries[at - 1]->name, name) > 0) {
        set->entries[at] = set->entries[at - 1];
        at--;
    }
    set->entries[at] = e;
    set->n_entries++;
    return e;
}

/* A repository name is one path segment of safe characters: a request
 * names a pipeline, never a path. */
static bool name_valid(const char *name)
{
    if (!*name || name[0] == '.' || strlen(name) > 120)
        return false;
    for (const char *c = name; *c; c++)
        if (!((*c >= 'a' && *c <= 'z') || (*c >= 'A' && *c <= 'Z') || (*c >= '0' && *c <= '9') || *c == '_' ||
              *c == '-' || *c == '.'))
            return false;
    return true;
}

/* DIR/<name>/pipeline.json, confined to the repository (no symlink out). */
static bool pipeline_file(const pipeline_set *set, const char *name, char *dir, size_t dir_size,
                          file_fingerprint *fingerprint)
{
    if (!set->repository || !name_valid(name))
        return false;
    char path[PATH_MAX], real[PATH_MAX], root[PATH_MAX];
    snprintf(dir, dir_size, "%s/%s", set->repository, name);
    snprintf(path, sizeof(path), "%s/pipeline.json", dir);
    if (!realpath(path, real) || !realpath(set->repository, root))
        return false;
    size_t n = strlen(root);
    if (strncmp(real, root, n) != 0 || real[n] != '/')
        return false;
    return file_fingerprint_read(path, fingerprint);
}

/* Load one pipeline and publish it, or record why not. */
static admin_result load_one(pipeline_set *set, const char *name, bool at_start, char *err, size_t n)
{
    char dir[PATH_MAX];
    file_fingerprint fingerprint;
    if (!pipeline_file(set, name, dir, sizeof(dir), &fingerprint)) {
        snprintf(err, n, "no pipeline '%s' in the repository (%s/%s/pipeline.json)", name,
                 set->repository ? set->repository : "", name);
        return ADMIN_NOT_FOUND;
    }
    pthread_mutex_lock(&set->load_lock);
    char not_ready[512];
    pipeline *p = pipeline_load(dir, name, &set->env, not_ready, sizeof(not_ready), err, n);
    pthread_rwlock_wrlock(&set->lock);
    pipeline_entry *e = find_or_add(set, name);
    pipeline *old = NULL;
    if (e) {
        e->applied = fingerprint;
        e->has_applied = true;
        e->unloaded = false;
        if (p) {
            old = e->serving;
            e->serving = p;
            e->refused = false;
            e->unreachable = false;
            snprintf(e->reason, sizeof(e->reason), "%s", not_ready);
            struct timespec now;
            clock_gettime(CLOCK_MONOTONIC, &now);
            e->retry_at = (double)now.tv_sec + (double)now.tv_nsec * 1e-9 + 1.0;
        } else {
            struct timespec now;
            clock_gettime(CLOCK_MONOTONIC, &now);
            e->refused = true;
            e->unreachable = not_ready[0] != '\0';
            e->retry_at = (double)now.tv_sec + (double)now.tv_nsec * 1e-9 + 1.0;
            snprintf(e->reason, sizeof(e->reason), "%s", err);
        }
    }
    pthread_rwlock_unlock(&set->lock);
    pthread_mutex_unlock(&set->load_lock);
    pipeline_unref(old); /* requests still on it hold their own references */
    if (!p) {
        log_event(at_start && !not_ready[0] ? LOG_ERROR : LOG_WARNING,
                  not_ready[0] ? "pipeline not ready" : "pipeline refused", "pipeline", name, "error", err, NULL);
        return not_ready[0] ? ADMIN_CONFLICT : ADMIN_BAD_REQUEST;
    }
    if (!e) {
        pipeline_unref(p);
        snprintf(err, n, "out of memory");
        return ADMIN_BAD_REQUEST;
    }
    log_event(LOG_INFO, "pipeline ready", "pipeline", name, "not_ready", not_ready[0] ? not_ready : "", NULL);
    return ADMIN_OK;
}

typedef void (*each_fn)(pipeline_set *set, const char *name, void *arg);

/* Every DIR/<name> that holds a pipeline.json. */
static size_t each_pipeline_dir(pipeline_set *set, each_fn fn, void *arg)
{
    if (!set->repository)
        return 0;
    struct dirent **names;
    int count = scandir(set->repository, &names, NULL, alphasort);
    size_t found = 0;
    for (int i = 0; i < count; i++) {
        char dir[PATH_MAX];
        file_fingerprint fingerprint;
        if (pipeline_file(set, names[i]->d_name, dir, sizeof(dir), &fingerprint)) {
            found++;
            fn(set, names[i]->d_name, arg);
        }
        free(names[i]);
    }
    if (count >= 0)
        free(names);
    return found;
}

typedef struct start_state {
    bool ok;
    char *err;
    size_t n;
} start_state;

static void load_at_start(pipeline_set *set, const char *name, void *arg)
{
    start_state *s = arg;
    char why[2048];
    admin_result r = load_one(set, name, true, why, sizeof(why));
    /* an unreachable remote is allowed at start: the pipeline is retried */
    if (r != ADMIN_OK && r != ADMIN_CONFLICT && set->options.control == MODEL_CONTROL_NONE && s->ok) {
        snprintf(s->err, s->n, "pipeline '%s': %s", name, why);
        s->ok = false;
    }
}

bool pipeline_set_load_repository(pipeline_set *set, char *err, size_t n)
{
    start_state s = {true, err, n};
    each_pipeline_dir(set, load_at_start, &s);
    return s.ok;
}

/* A trial load of a refused or not-ready pipeline: does it now load (and,
 * when one serves, with its remotes answering)? Only a different outcome
 * is worth a swap and a log line. */
static bool load_would_improve(pipeline_set *set, const char *name, const char *dir, bool was_serving)
{
    char not_ready[512], why[1024];
    pthread_mutex_lock(&set->load_lock);
    pipeline *p = pipeline_load(dir, name, &set->env, not_ready, sizeof(not_ready), why, sizeof(why));
    pthread_mutex_unlock(&set->load_lock);
    bool better = p && !(was_serving && not_ready[0]);
    pipeline_unref(p);
    return better;
}

static void poll_dir(pipeline_set *set, const char *name, void *arg)
{
    (void)arg;
    char dir[PATH_MAX];
    file_fingerprint now;
    if (!pipeline_file(set, name, dir, sizeof(dir), &now))
        return;
    pthread_rwlock_rdlock(&set->lock);
    const pipeline_entry *e = find(set, name);
    /* a changed file loads; a refused one is retried, because the models
     * it needs may have arrived since, and so is one whose remote step did
     * not answer at load */
    bool same_file = e && e->has_applied && file_fingerprint_equal(&e->applied, &now);
    bool attempt = !e || (!e->unloaded && (!same_file || e->refused || (e->serving && e->reason[0])));
    bool quietly = same_file && e && !e->unloaded && (e->refused || (e->serving && e->reason[0]));
    bool was_serving = e && e->serving;
    pthread_rwlock_unlock(&set->lock);
    if (!attempt)
        return;
    if (quietly && !load_would_improve(set, name, dir, was_serving))
        return;
    char why[2048];
    load_one(set, name, false, why, sizeof(why));
}

static void poll_once(pipeline_set *set)
{
    each_pipeline_dir(set, poll_dir, NULL);
    /* pipelines whose file went away */
    pthread_rwlock_wrlock(&set->lock);
    for (size_t i = 0; i < set->n_entries; i++) {
        pipeline_entry *e = set->entries[i];
        char dir[PATH_MAX];
        file_fingerprint fingerprint;
        if (e->serving && !pipeline_file(set, e->name, dir, sizeof(dir), &fingerprint)) {
            pipeline_unref(e->serving);
            e->serving = NULL;
            e->has_applied = false;
            e->refused = false;
            snprintf(e->reason, sizeof(e->reason), "its pipeline.json left the repository");
            log_event(LOG_INFO, "pipeline unloaded", "pipeline", e->name, "reason", e->reason, NULL);
        }
    }
    pthread_rwlock_unlock(&set->lock);
}

static void *poll_main(void *arg)
{
    pipeline_set *set = arg;
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

bool pipeline_set_start(pipeline_set *set)
{
    if (set->options.control != MODEL_CONTROL_POLL || !set->repository)
        return true;
    set->polling = pthread_create(&set->poll_thread, NULL, poll_main, set) == 0;
    return set->polling;
}

bool pipeline_set_has(pipeline_set *set, const char *name)
{
    if (!set || !name)
        return false;
    pthread_rwlock_rdlock(&set->lock);
    bool known = find(set, name) != NULL;
    pthread_rwlock_unlock(&set->lock);
    return known;
}

bool pipeline_set_claims(pipeline_set *set, const char *name)
{
    char dir[PATH_MAX];
    file_fingerprint fingerprint;
    return pipeline_set_has(set, name) || (set && pipeline_file(set, name, dir, sizeof(dir), &fingerprint));
}

pipeline *pipeline_set_acquire(pipeline_set *set, const char *name, char *err, size_t n)
{
    /* a pipeline whose remote entry step did not answer is retried by the
     * requests for it, at most once a second */
    struct timespec now;
    clock_gettime(CLOCK_MONOTONIC, &now);
    double t = (double)now.tv_sec + (double)now.tv_nsec * 1e-9;
    pthread_rwlock_rdlock(&set->lock);
    const pipeline_entry *seen = find(set, name);
    /* refused for an unreachable entry step, or serving while a remote step
     * was unreachable at load (its types unchecked): worth another look */
    bool again = seen && !seen->unloaded && ((!seen->serving && seen->unreachable) ||
                                             (seen->serving && seen->reason[0] && !seen->refused));
    bool seen_serving = seen && seen->serving;
    pthread_rwlock_unlock(&set->lock);
    if (again) { /* rare: only then the write lock, to let one request retry */
        pthread_rwlock_wrlock(&set->lock);
        pipeline_entry *retry = find(set, name);
        again = retry && !retry->unloaded && t >= retry->retry_at &&
                ((!retry->serving && retry->unreachable) || (retry->serving && retry->reason[0] && !retry->refused));
        if (again)
            retry->retry_at = t + 1.0;
        pthread_rwlock_unlock(&set->lock);
    }
    char dir[PATH_MAX];
    file_fingerprint fingerprint;
    if (again && pipeline_file(set, name, dir, sizeof(dir), &fingerprint) &&
        load_would_improve(set, name, dir, seen_serving)) {
        char why[1024];
        load_one(set, name, false, why, sizeof(why));
    }
    pthread_rwlock_rdlock(&set->lock);
    const pipeline_entry *e = find(set, name);
    pipeline *p = e && e->serving ? pipeline_ref(e->serving) : NULL;
    if (!p)
        snprintf(err, n, "pipeline '%s' is not serving: %s", name,
                 !e ? "unknown" : e->reason[0] ? e->reason : "unloaded");
    pthread_rwlock_unlock(&set->lock);
    return p;
}

const pipeline_env *pipeline_set_env(pipeline_set *set)
{
    return &set->env;
}

admin_result pipeline_set_load(pipeline_set *set, const char *name, char *err, size_t n)
{
    if (set->options.control == MODEL_CONTROL_NONE) {
        snprintf(err, n, "explicit model load / unload is not allowed if polling is enabled or control is none");
        return ADMIN_NOT_ALLOWED;
    }
    return load_one(set, name, false, err, n);
}

admin_result pipeline_set_unload(pipeline_set *set, const char *name, char *err, size_t n)
{
    if (set->options.control == MODEL_CONTROL_NONE) {
        snprintf(err, n, "explicit model load / unload is not allowed if polling is enabled or control is none");
        return ADMIN_NOT_ALLOWED;
    }
    pthread_rwlock_wrlock(&set->lock);
    pipeline_entry *e = find(set, name);
    pipeline *old = NULL;
    if (e) {
        old = e->serving;
        e->serving = NULL;
        e->unloaded = true;
        e->refused = false;
        snprintf(e->reason, sizeof(e->reason), "unloaded by request");
    }
    pthread_rwlock_unlock(&set->lock);
    if (!e) {
        snprintf(err, n, "no pipeline '%s'", name);
        return ADMIN_NOT_FOUND;
    }
    pipeline_unref(old);
    log_event(LOG_INFO, "pipeline unloaded", "pipeline", name, "reason", "by request", NULL);
    return ADMIN_OK;
}

void pipeline_set_index(pipeline_set *set, json_t *index, bool ready_only)
{
    if (!set)
        return;
    pthread_rwlock_rdlock(&set->lock);
    for (size_t i = 0; i < set->n_entries; i++) {
        const pipeline_entry *e = set->entries[i];
        /* serving but a remote step not reachable yet: not READY */
        const char *state = e->serving && !e->reason[0] ? "READY" : "UNAVAILABLE";
        if (ready_only && strcmp(state, "READY") != 0)
            continue;
        json_t *row = json_pack("{s:s, s:s, s:s, s:b}", "name", e->name, "state", state, "reason",
                                e->serving && e->refused ? "" : e->reason, "pipeline", 1);
        if (e->serving)
            json_object_set_new(row, "version", json_string("1"));
        if (e->serving && e->refused)
            json_object_set_new(row, "reason", json_string(e->reason));
        json_array_append_new(index, row);
    }
    pthread_rwlock_unlock(&set->lock);
}

void pipeline_set_render_metrics(pipeline_set *set, FILE *out)
{
    if (!set)
        return;
    pthread_mutex_lock(&set->stats_lock);
    step_stats_render(set->stats, set->n_stats, out);
    pthread_mutex_unlock(&set->stats_lock);
}
