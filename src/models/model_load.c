/*
 * model_load.c — the transactions that change the live set: a load (all or
 * nothing: every selected version loads and is checked, then the model's
 * list of versions is replaced in one step under the write lock), an
 * unload, a traffic change, the start-up load of a repository, and the
 * poll thread that reloads a model when its directory changed and has
 * stopped changing.
 */
#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "model_set_internal.h"

static void list_versions_text(model_version *const *versions, size_t n, char *out, size_t size)
{
    size_t used = 0;
    out[0] = '\0';
    for (size_t i = 0; i < n && used < size; i++)
        used +=
            (size_t)snprintf(out + used, size - used, "%s%s", i ? ", " : "", versions[i]->version);
}

version_load_options model_set_load_options(const model_set *set)
{
    return (version_load_options){.n_sessions = set->options.serving_sessions + 1,
                                  .threads_per_session = set->options.threads_per_session,
                                  .graph_opt = set->options.graph_opt};
}

/* Publish a new list of versions and the config that goes with it (under
 * the write lock). The entry takes over `versions` (their references);
 * the old list is returned to be released outside the lock. */
model_version **model_set_publish(model_entry *e, model_version **versions, size_t n,
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
        version_status *row = model_set_status_row(e, old[i]->version, true);
        if (row && !kept) {
            row->state = VERSION_UNAVAILABLE;
            snprintf(row->reason, sizeof(row->reason), "unloaded");
        }
    }
    for (size_t i = 0; i < n; i++) {
        version_status *row = model_set_status_row(e, versions[i]->version, true);
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
    model_set_refresh_flags(e);
    return old;
}

void model_set_release_list(model_version **versions, size_t n)
{
    for (size_t i = 0; i < n; i++)
        model_version_unref(versions[i]);
    free(versions);
}

/* Record a refused version for the index (under the write lock). */
static void refuse_version(model_entry *e, const version_file *f, const char *reason)
{
    version_status *row = model_set_status_row(e, f->version, true);
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

static admin_result load_model(model_set *set, const char *name, const char *config_text,
                               bool initial, char *err, size_t n)
{
    char dir[PATH_MAX];
    struct stat st;
    if (!set->repository) {
        snprintf(err, n, "this server has no model repository (start it with --repository DIR)");
        return ADMIN_NOT_FOUND;
    }
    if (!repository_name_valid(name)) {
        snprintf(err, n, "'%.200s' is not a model name (letters, digits, '.', '_', '-')", name);
        return ADMIN_BAD_REQUEST;
    }
    if (!repository_confined_path(set, name, dir, sizeof(dir)) || stat(dir, &st) != 0 ||
        !S_ISDIR(st.st_mode)) {
        snprintf(err, n, "model '%s' is not in the repository", name);
        return ADMIN_NOT_FOUND;
    }
    pthread_rwlock_wrlock(&set->lock);
    model_entry *e = model_set_entry_add(set, name);
    if (e && e->busy) {
        pthread_rwlock_unlock(&set->lock);
        snprintf(err, n, "a load or unload of model '%s' is already running; retry when it ends",
                 name);
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
    char *file_text =
        config_text ? NULL : repository_read_config(set, name, &config_fp, reason, sizeof(reason));
    char origin[300];
    snprintf(origin, sizeof(origin), config_text ? "the load request's config" : "%s/config.json",
             name);
    if (reason[0])
        goto failed;
    if (config_text || file_text) {
        if (!model_config_parse(config_text ? config_text : file_text, origin, name, &config,
                                reason, sizeof(reason)))
            goto failed;
    } else {
        model_config_default(&config);
    }
    n_files = repository_scan_versions(set, name, &files);
    if (!n_files) {
        snprintf(reason, sizeof(reason), "no complete version directory (%s/<number>/model.onnx)",
                 name);
        goto failed;
    }
    long long available[256];
    size_t n_available = n_files < 256 ? n_files : 256;
    for (size_t i = 0; i < n_available; i++)
        available[i] = version_number_of(files[i].version);
    loaded = calloc(n_files, sizeof(*loaded));
    if (!loaded) {
        snprintf(reason, sizeof(reason), "out of memory");
        goto failed;
    }
    version_load_options options = model_set_load_options(set);
    if (config.graph_opt)
        options.graph_opt = (ifd_graph_opt)config.graph_opt;
    for (size_t i = 0; i < n_files; i++) {
        const version_file *f = &files[i];
        if (!model_config_wants(&config, version_number_of(f->version), available, n_available))
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
            version_status *row = model_set_status_row(e, f->version, true);
            bool listed = false;
            for (size_t k = 0; k < e->n_versions; k++)
                listed = listed || strcmp(e->versions[k]->version, f->version) == 0;
            if (row && !listed) {
                row->state = VERSION_LOADING;
                row->reason[0] = '\0';
            }
            pthread_rwlock_unlock(&set->lock);
            model_source source = {.path = f->path,
                                   .name = name,
                                   .version = f->version,
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
                model_set_log(LOG_ERROR, "golden samples failed: version loaded but not ready",
                              name, f->version, "reason", version_err);
        }
        loaded[n_loaded++] = v;
    }
    if (!n_loaded) {
        char present[256] = "";
        size_t used = 0;
        for (size_t i = 0; i < n_files && used < sizeof(present); i++)
            used += (size_t)snprintf(present + used, sizeof(present) - used, "%s%s", i ? ", " : "",
                                     files[i].version);
        snprintf(reason, sizeof(reason),
                 "%s: version_policy selects none of the versions present (%s)", origin, present);
        goto failed;
    }
    char names[512];
    list_versions_text(loaded, n_loaded, names, sizeof(names));
    for (size_t k = 0; k < config.n_traffic; k++) {
        bool found = false;
        for (size_t i = 0; i < n_loaded; i++)
            found = found || strcmp(loaded[i]->version, config.traffic[k].version) == 0;
        if (!found) {
            snprintf(reason, sizeof(reason),
                     "%s: traffic names version %s, which is not among the versions "
                     "the policy loads (%s)",
                     origin, config.traffic[k].version, names);
            goto failed;
        }
    }
    if (config.shadow.enabled) {
        bool found = false;
        for (size_t i = 0; i < n_loaded; i++)
            found = found || strcmp(loaded[i]->version, config.shadow.version) == 0;
        if (!found) {
            snprintf(reason, sizeof(reason),
                     "%s: shadow.version %s is not among the versions the policy "
                     "loads (%s)",
                     origin, config.shadow.version, names);
            goto failed;
        }
    }

    pthread_rwlock_wrlock(&set->lock);
    size_t n_old = 0;
    model_version **old = model_set_publish(e, loaded, n_loaded, &config, &n_old);
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
            model_set_log(LOG_INFO, "version retired: finishing its requests in flight", name,
                          old[i]->version, "replaced_by", names);
    }
    model_set_release_list(old, n_old);
    free(files);
    free(file_text);
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    char seconds[32];
    snprintf(seconds, sizeof(seconds), "%.6f",
             (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9 - started);
    log_event(LOG_INFO, "model loaded", "model", name, "versions", names, "seconds", seconds, NULL);
    return ADMIN_OK;

failed:
    pthread_rwlock_wrlock(&set->lock);
    e->busy = false;
    e->loads_failed++;
    if (!e->n_versions)
        snprintf(e->reason, sizeof(e->reason), "%.*s", (int)sizeof(e->reason) - 1, reason);
    /* rows left LOADING by this attempt go back to what they were */
    for (size_t i = 0; i < e->n_status; i++)
        if (e->status[i].state == VERSION_LOADING) {
            e->status[i].state = VERSION_UNAVAILABLE;
            if (!e->status[i].reason[0])
                snprintf(e->status[i].reason, sizeof(e->status[i].reason), "load abandoned: %.400s",
                         reason);
        }
    bool serving = e->n_versions > 0;
    pthread_rwlock_unlock(&set->lock);
    model_set_release_list(loaded, n_loaded);
    free(files);
    free(file_text);
    log_event(LOG_ERROR,
              serving ? "model load failed: the versions serving before keep serving"
                      : "model load failed",
              "model", name, "reason", reason, NULL);
    snprintf(err, n, "%s", reason);
    return ADMIN_BAD_REQUEST;
}

admin_result model_set_load(model_set *set, const char *name, const char *config_text, char *err,
                            size_t n)
{
    if (set->options.control != MODEL_CONTROL_EXPLICIT) {
        snprintf(err, n,
                 "explicit model load and unload are not allowed in model control mode '%s' "
                 "(start the server with --model-control explicit)",
                 model_control_name(set->options.control));
        return ADMIN_NOT_ALLOWED;
    }
    return load_model(set, name, config_text, false, err, n);
}

static admin_result unload_model(model_set *set, const char *name, const char *why, char *err,
                                 size_t n)
{
    pthread_rwlock_wrlock(&set->lock);
    model_entry *e = model_set_find(set, name);
    if (!e) {
        pthread_rwlock_unlock(&set->lock);
        char dir[PATH_MAX];
        if (set->repository && repository_name_valid(name) &&
            repository_confined_path(set, name, dir, sizeof(dir)))
            return ADMIN_OK; /* in the repository, not loaded: nothing to do (as Triton) */
        snprintf(err, n, "unknown model '%.200s'", name);
        return ADMIN_NOT_FOUND;
    }
    if (e->busy) {
        pthread_rwlock_unlock(&set->lock);
        snprintf(err, n, "a load or unload of model '%s' is already running; retry when it ends",
                 name);
        return ADMIN_CONFLICT;
    }
    model_version **old = e->versions;
    size_t n_old = e->n_versions;
    for (size_t i = 0; i < n_old; i++) {
        version_status *row = model_set_status_row(e, old[i]->version, true);
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
    model_set_release_list(old, n_old);
    log_event(LOG_INFO, "model unloaded: its versions finish their requests in flight", "model",
              name, "reason", why, NULL);
    return ADMIN_OK;
}

admin_result model_set_unload(model_set *set, const char *name, char *err, size_t n)
{
    if (set->options.control != MODEL_CONTROL_EXPLICIT) {
        snprintf(err, n,
                 "explicit model load and unload are not allowed in model control mode '%s' "
                 "(start the server with --model-control explicit)",
                 model_control_name(set->options.control));
        return ADMIN_NOT_ALLOWED;
    }
    return unload_model(set, name, "unloaded by the repository API", err, n);
}

admin_result model_set_set_traffic(model_set *set, const char *name, const json_t *traffic,
                                   char *err, size_t n)
{
    if (set->options.control == MODEL_CONTROL_NONE) {
        snprintf(err, n,
                 "traffic cannot change in model control mode 'none' (start the server with "
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
        model_set_refresh_flags(e);
    }
    pthread_rwlock_unlock(&set->lock);
    if (result == ADMIN_OK) {
        char *split = json_dumps(traffic, JSON_COMPACT);
        log_event(LOG_INFO, "traffic split changed", "model", name, "traffic", split ? split : "",
                  NULL);
        free(split);
    }
    return result;
}

bool model_set_add_source(model_set *set, const model_source *source, char *err, size_t n)
{
    version_load_options options = model_set_load_options(set);
    model_version *v = model_version_load(source, &options, err, n);
    if (!v)
        return false;
    if (!v->ready)
        model_set_log(LOG_ERROR, "golden samples failed: model not ready", v->name, v->version,
                      "reason", err);
    pthread_rwlock_wrlock(&set->lock);
    model_entry *e = model_set_entry_add(set, v->name);
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
        old = model_set_publish(e, list, e->n_versions + 1, &config, &n_old);
        e->loads_ok++;
    }
    pthread_rwlock_unlock(&set->lock);
    model_set_release_list(old, n_old);
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
        if (ok && repository_name_valid(name) && !repository_is_pipeline(set, name) &&
            repository_confined_path(set, name, dir, sizeof(dir)) && stat(dir, &st) == 0 &&
            S_ISDIR(st.st_mode)) {
            tried++;
            char *signature = repository_signature(set, name);
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
        snprintf(err, n, "%s: no models found (expected <name>/<version>/model.onnx)",
                 set->repository);
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
        if (!__atomic_load_n(&set->stopping, __ATOMIC_ACQUIRE) && repository_name_valid(name) &&
            !repository_is_pipeline(set, name) &&
            repository_confined_path(set, name, dir, sizeof(dir)) && stat(dir, &st) == 0 &&
            S_ISDIR(st.st_mode)) {
            char *signature = repository_signature(set, name);
            pthread_rwlock_wrlock(&set->lock);
            model_entry *e = model_set_entry_add(set, name);
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

void *model_set_poll_main(void *arg)
{
    model_set *set = arg;
    pthread_mutex_lock(&set->poll_lock);
    while (!__atomic_load_n(&set->stopping, __ATOMIC_ACQUIRE)) {
        struct timespec until;
        clock_gettime(CLOCK_REALTIME, &until);
        double at =
            (double)until.tv_sec + (double)until.tv_nsec * 1e-9 + set->options.poll_interval;
        until.tv_sec = (time_t)at;
        until.tv_nsec = (long)((at - (double)until.tv_sec) * 1e9);
        pthread_cond_timedwait(&set->poll_wake, &set->poll_lock, &until);
        if (__atomic_load_n(&set->stopping, __ATOMIC_ACQUIRE))
            break;
        pthread_mutex_unlock(&set->poll_lock);
        poll_once(set);
        pthread_mutex_lock(&set->poll_lock);
    }
    pthread_mutex_unlock(&set->poll_lock);
    return NULL;
}
