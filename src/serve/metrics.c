/*
 * metrics.c — counters and histograms behind GET /metrics. Series are kept
 * in small arrays under one mutex: a server holds a handful of models and
 * status codes, so a linear scan per request costs less than hashing.
 */
#include "metrics.h"

#include <pthread.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "api_jobs.h"
#include "log.h"
#include "routes.h"
#include "pipeline_set.h"
#include "server.h"

#define MAX_SERIES 512
#define N_BUCKETS 14

static const double bucket_bounds[N_BUCKETS] = {0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025,
                                                0.005,   0.01,   0.025,   0.05,   0.1,   0.25,
                                                0.5,     1.0};

typedef struct histogram {
    unsigned long long counts[N_BUCKETS + 1]; /* last: +Inf */
    double sum;
    unsigned long long count;
} histogram;

typedef struct request_series {
    char model[128], version[32];
    int code;
    unsigned long long count;
} request_series;

typedef struct latency_series {
    char model[128], version[32];
    histogram total, queue, compute;
} latency_series;

/* Cut a string that snprintf may have cut inside a UTF-8 sequence back to
 * the last whole character, so the JSON of recent errors keeps it. */
static void trim_partial_utf8(char *s)
{
    size_t n = strlen(s), start = n;
    while (start > 0 && ((unsigned char)s[start - 1] & 0xC0) == 0x80)
        start--;
    if (start == 0)
        return;
    unsigned char lead = (unsigned char)s[start - 1];
    size_t want = lead >= 0xF0 ? 4 : lead >= 0xE0 ? 3 : lead >= 0xC0 ? 2 : 1;
    if (n - (start - 1) < want)
        s[start - 1] = '\0';
}

/* One answered error, for the dashboard's "recent errors". */
typedef struct recent_error {
    double wall; /* Unix time */
    int status;
    char method[16], path[160], model[128], version[32], message[300];
} recent_error;

#define RECENT_ERRORS 50

struct metrics {
    pthread_mutex_t lock;
    recent_error errors[RECENT_ERRORS]; /* a ring: the newest at (n_errors - 1) % RECENT_ERRORS */
    unsigned long long n_errors;
    request_series requests[MAX_SERIES];
    size_t n_requests;
    latency_series latencies[MAX_SERIES];
    size_t n_latencies;
};

metrics *metrics_create(void)
{
    metrics *m = calloc(1, sizeof(*m));
    if (m)
        pthread_mutex_init(&m->lock, NULL);
    return m;
}

void metrics_free(metrics *m)
{
    if (!m)
        return;
    pthread_mutex_destroy(&m->lock);
    free(m);
}

static void observe(histogram *h, double seconds)
{
    int b = 0;
    while (b < N_BUCKETS && seconds > bucket_bounds[b])
        b++;
    h->counts[b]++;
    h->sum += seconds;
    h->count++;
}

void metrics_observe_request(metrics *m, const http_request *req, int status, double end)
{
    if (!m)
        return;
    /* requests not about a model are grouped under model="" */
    const char *model = req->model_name, *version = req->model_version;
    recent_error error = {0};
    if (status >= 400) {
        struct timespec now;
        clock_gettime(CLOCK_REALTIME, &now);
        error.wall = (double)now.tv_sec + (double)now.tv_nsec * 1e-9;
        error.status = status;
        snprintf(error.method, sizeof(error.method), "%s", req->method);
        snprintf(error.path, sizeof(error.path), "%s", req->path ? req->path : "");
        snprintf(error.model, sizeof(error.model), "%s", model);
        snprintf(error.version, sizeof(error.version), "%s", version);
        /* the answer's own words: {"error": "..."} (parsed outside the lock) */
        json_t *body = req->response && req->response_len < 8192
                           ? json_loadb(req->response, req->response_len, 0, NULL) : NULL;
        const char *text = json_string_value(json_object_get(body, "error"));
        snprintf(error.message, sizeof(error.message), "%s", text ? text : "");
        trim_partial_utf8(error.message);
        trim_partial_utf8(error.path);
        json_decref(body);
    }
    pthread_mutex_lock(&m->lock);
    if (status >= 400)
        m->errors[m->n_errors++ % RECENT_ERRORS] = error;
    size_t i = 0;
    while (i < m->n_requests && (m->requests[i].code != status || strcmp(m->requests[i].model, model) ||
                                 strcmp(m->requests[i].version, version)))
        i++;
    if (i == m->n_requests && i < MAX_SERIES) {
        snprintf(m->requests[i].model, sizeof(m->requests[i].model), "%s", model);
        snprintf(m->requests[i].version, sizeof(m->requests[i].version), "%s", version);
        m->requests[i].code = status;
        m->n_requests++;
    }
    if (i < m->n_requests)
        m->requests[i].count++;
    if (model[0]) {
        size_t k = 0;
        while (k < m->n_latencies && (strcmp(m->latencies[k].model, model) || strcmp(m->latencies[k].version, version)))
            k++;
        if (k == m->n_latencies && k < MAX_SERIES) {
            snprintf(m->latencies[k].model, sizeof(m->latencies[k].model), "%s", model);
            snprintf(m->latencies[k].version, sizeof(m->latencies[k].version), "%s", version);
            m->n_latencies++;
        }
        if (k < m->n_latencies) {
            latency_series *s = &m->latencies[k];
            observe(&s->total, end - req->t_start);
            if (req->t_queued > 0 && req->t_compute_start >= req->t_queued) {
                observe(&s->queue, req->t_compute_start - req->t_queued);
                observe(&s->compute, req->t_compute_end - req->t_compute_start);
            }
        }
    }
    pthread_mutex_unlock(&m->lock);
}

/* Label values are model names and versions: escape \ " and newlines. */
static void label_value(FILE *out, const char *s)
{
    for (; *s; s++) {
        if (*s == '\\' || *s == '"')
            fputc('\\', out);
        if (*s == '\n')
            fputs("\\n", out);
        else
            fputc(*s, out);
    }
}

static void render_histogram(FILE *out, const char *name, const latency_series *s, const histogram *h)
{
    unsigned long long cumulative = 0;
    for (int b = 0; b <= N_BUCKETS; b++) {
        cumulative += h->counts[b];
        fprintf(out, "%s_bucket{model=\"", name);
        label_value(out, s->model);
        fprintf(out, "\",version=\"");
        label_value(out, s->version);
        if (b < N_BUCKETS)
            fprintf(out, "\",le=\"%g\"} %llu\n", bucket_bounds[b], cumulative);
        else
            fprintf(out, "\",le=\"+Inf\"} %llu\n", cumulative);
    }
    fprintf(out, "%s_sum{model=\"", name);
    label_value(out, s->model);
    fprintf(out, "\",version=\"");
    label_value(out, s->version);
    fprintf(out, "\"} %.9f\n%s_count{model=\"", h->sum, name);
    label_value(out, s->model);
    fprintf(out, "\",version=\"");
    label_value(out, s->version);
    fprintf(out, "\"} %llu\n", h->count);
}

static void version_labels(FILE *out, const char *metric, const model_version *v)
{
    fprintf(out, "%s{model=\"", metric);
    label_value(out, v->name);
    fprintf(out, "\",version=\"");
    label_value(out, v->version);
    fputc('"', out);
}

/* The live model set: per version load time, readiness, traffic weight,
 * shadow comparisons; per model loads, rollbacks and the state of each
 * version the repository index shows. */
static void render_model_set(FILE *out, model_set *set)
{
    model_set_read_lock(set);
    size_t n = model_set_count(set);
    fprintf(out, "# HELP inferd_model_load_seconds Time to load and warm up each model version.\n"
                 "# TYPE inferd_model_load_seconds gauge\n");
    for (size_t i = 0; i < n; i++) {
        const model_entry *e = model_set_entry(set, i);
        for (size_t k = 0; k < e->n_versions; k++) {
            version_labels(out, "inferd_model_load_seconds", e->versions[k]);
            fprintf(out, "} %.6f\n", e->versions[k]->load_seconds);
        }
    }
    fprintf(out, "# HELP inferd_model_ready Whether each served model version is ready (1) or not (0).\n"
                 "# TYPE inferd_model_ready gauge\n");
    for (size_t i = 0; i < n; i++) {
        const model_entry *e = model_set_entry(set, i);
        for (size_t k = 0; k < e->n_versions; k++) {
            version_labels(out, "inferd_model_ready", e->versions[k]);
            fprintf(out, "} %d\n", e->versions[k]->ready ? 1 : 0);
        }
    }
    fprintf(out, "# HELP inferd_model_traffic_weight Percent of the model's requests each version takes "
                 "(a canary's weight; 0 after a rollback).\n# TYPE inferd_model_traffic_weight gauge\n");
    for (size_t i = 0; i < n; i++) {
        const model_entry *e = model_set_entry(set, i);
        for (size_t k = 0; k < e->n_versions; k++) {
            version_labels(out, "inferd_model_traffic_weight", e->versions[k]);
            fprintf(out, "} %d\n", model_entry_share(e, k));
        }
    }
    fprintf(out, "# HELP inferd_model_state Each version the repository index shows, by state (1 in its state).\n"
                 "# TYPE inferd_model_state gauge\n");
    for (size_t i = 0; i < n; i++) {
        const model_entry *e = model_set_entry(set, i);
        for (size_t k = 0; k < e->n_status; k++) {
            fprintf(out, "inferd_model_state{model=\"");
            label_value(out, e->name);
            fprintf(out, "\",version=\"");
            label_value(out, e->status[k].version);
            fprintf(out, "\",state=\"%s\"} 1\n", version_state_name(e->status[k].state));
        }
    }
    fprintf(out, "# HELP inferd_model_loads_total Loads of each model by result (ok, failed).\n"
                 "# TYPE inferd_model_loads_total counter\n");
    for (size_t i = 0; i < n; i++) {
        const model_entry *e = model_set_entry(set, i);
        for (int failed = 0; failed < 2; failed++) {
            fprintf(out, "inferd_model_loads_total{model=\"");
            label_value(out, e->name);
            fprintf(out, "\",result=\"%s\"} %llu\n", failed ? "failed" : "ok", failed ? e->loads_failed : e->loads_ok);
        }
    }
    fprintf(out, "# HELP inferd_model_rollbacks_total Versions taken out of traffic automatically.\n"
                 "# TYPE inferd_model_rollbacks_total counter\n");
    for (size_t i = 0; i < n; i++) {
        const model_entry *e = model_set_entry(set, i);
        fprintf(out, "inferd_model_rollbacks_total{model=\"");
        label_value(out, e->name);
        fprintf(out, "\"} %llu\n", e->rollbacks);
    }
    fprintf(out, "# HELP inferd_shadow_comparisons_total Shadow answers compared with the live answer, by result.\n"
                 "# TYPE inferd_shadow_comparisons_total counter\n");
    for (size_t i = 0; i < n; i++) {
        const model_entry *e = model_set_entry(set, i);
        for (size_t k = 0; k < e->n_versions; k++) {
            model_version *v = e->versions[k];
            pthread_mutex_lock(&v->stats_lock);
            unsigned long long counts[3] = {v->shadow_agreed, v->shadow_disagreed, v->shadow_failed};
            pthread_mutex_unlock(&v->stats_lock);
            if (!counts[0] && !counts[1] && !counts[2])
                continue;
            static const char *const results[3] = {"agree", "disagree", "error"};
            for (int r = 0; r < 3; r++) {
                version_labels(out, "inferd_shadow_comparisons_total", v);
                fprintf(out, ",result=\"%s\"} %llu\n", results[r], counts[r]);
            }
        }
    }
    model_set_read_unlock(set);
    shadow_totals shadow = model_set_shadow_totals(set);
    fprintf(out, "# HELP inferd_shadow_copies_dropped_total Shadow copies dropped because the shadow queue was full.\n"
                 "# TYPE inferd_shadow_copies_dropped_total counter\ninferd_shadow_copies_dropped_total %llu\n",
            shadow.dropped);
}

char *metrics_render(metrics *m, const server *srv, size_t *len)
{
    char *text = NULL;
    FILE *out = open_memstream(&text, len);
    if (!out)
        return NULL;
    fprintf(out, "# HELP inferd_build_info Version and build of this inferd.\n"
                 "# TYPE inferd_build_info gauge\n"
                 "inferd_build_info{version=\"%s\",compiler=\"%s\"} 1\n",
            IFD_VERSION_STRING, __VERSION__);
    fprintf(out, "# HELP inferd_start_time_seconds Unix time the server started.\n"
                 "# TYPE inferd_start_time_seconds gauge\ninferd_start_time_seconds %.3f\n",
            srv->started_wall);
    fprintf(out, "# HELP inferd_requests_in_flight Requests being read, queued or computed.\n"
                 "# TYPE inferd_requests_in_flight gauge\ninferd_requests_in_flight %d\n",
            __atomic_load_n(&srv->unanswered, __ATOMIC_SEQ_CST));
    fprintf(out, "# HELP inferd_log_lines_dropped_total Log lines (the access log included) that could not be written.\n"
                 "# TYPE inferd_log_lines_dropped_total counter\ninferd_log_lines_dropped_total %lu\n",
            log_lines_dropped());
    render_model_set(out, srv->models);
    async_render_metrics(out, srv);
    pipeline_set_render_metrics(srv->pipelines, out);
    pthread_mutex_lock(&m->lock);
    fprintf(out, "# HELP inferd_requests_total HTTP requests by model, version and status code.\n"
                 "# TYPE inferd_requests_total counter\n");
    for (size_t i = 0; i < m->n_requests; i++) {
        fprintf(out, "inferd_requests_total{model=\"");
        label_value(out, m->requests[i].model);
        fprintf(out, "\",version=\"");
        label_value(out, m->requests[i].version);
        fprintf(out, "\",code=\"%d\"} %llu\n", m->requests[i].code, m->requests[i].count);
    }
    static const struct {
        const char *name, *help;
        size_t offset;
    } kinds[] = {
        {"inferd_request_duration_seconds", "Whole request: first byte read to response queued.",
         offsetof(latency_series, total)},
        {"inferd_queue_duration_seconds", "Time a request waited for a worker.",
         offsetof(latency_series, queue)},
        {"inferd_compute_duration_seconds", "Time a worker spent decoding, inferring and encoding.",
         offsetof(latency_series, compute)},
    };
    for (size_t k = 0; k < 3; k++) {
        fprintf(out, "# HELP %s %s\n# TYPE %s histogram\n", kinds[k].name, kinds[k].help, kinds[k].name);
        for (size_t i = 0; i < m->n_latencies; i++)
            render_histogram(out, kinds[k].name, &m->latencies[i],
                             (const histogram *)((const char *)&m->latencies[i] + kinds[k].offset));
    }
    pthread_mutex_unlock(&m->lock);
    fclose(out);
    return text;
}

void metrics_handler(http_request *req, const route_params *p, int worker)
{
    (void)p;
    (void)worker;
    size_t len = 0;
    char *text = metrics_render(req->server->metrics, req->server, &len);
    if (!text) {
        http_reply_error(req, 503, "out of memory");
        return;
    }
    http_reply_buffer(req, 200, "text/plain; version=0.0.4; charset=utf-8", text, len);
}

/* ---- the dashboard's JSON ---------------------------------------------------- */

static json_t *histogram_json(const histogram *h)
{
    json_t *counts = json_array();
    for (int b = 0; b <= N_BUCKETS; b++)
        json_array_append_new(counts, json_integer((json_int_t)h->counts[b]));
    return json_pack("{s:o, s:f, s:I}", "counts", counts, "sum", h->sum, "count", (json_int_t)h->count);
}

json_t *metrics_stats(metrics *m)
{
    json_t *bounds = json_array();
    for (int b = 0; b < N_BUCKETS; b++)
        json_array_append_new(bounds, json_real(bucket_bounds[b]));
    json_t *series = json_array();
    json_t *errors = json_array();
    pthread_mutex_lock(&m->lock);
    for (size_t k = 0; k < m->n_latencies; k++) {
        const latency_series *l = &m->latencies[k];
        json_t *codes = json_object();
        unsigned long long total = 0, failed = 0;
        for (size_t i = 0; i < m->n_requests; i++) {
            const request_series *r = &m->requests[i];
            if (strcmp(r->model, l->model) || strcmp(r->version, l->version))
                continue;
            char code[16];
            snprintf(code, sizeof(code), "%d", r->code);
            json_object_set_new(codes, code, json_integer((json_int_t)r->count));
            total += r->count;
            failed += r->code >= 400 ? r->count : 0;
        }
        json_array_append_new(series, json_pack("{s:s, s:s, s:I, s:I, s:o, s:o}", "model", l->model, "version",
                                                l->version, "requests", (json_int_t)total, "errors",
                                                (json_int_t)failed, "codes", codes, "latency",
                                                histogram_json(&l->total)));
    }
    unsigned long long shown = m->n_errors < RECENT_ERRORS ? m->n_errors : RECENT_ERRORS;
    for (unsigned long long i = 0; i < shown; i++) {
        const recent_error *e = &m->errors[(m->n_errors - 1 - i) % RECENT_ERRORS];
        /* paths and messages echo client bytes: json_string refuses invalid UTF-8 */
        json_t *path = json_string(e->path), *message = json_string(e->message);
        json_array_append_new(errors, json_pack("{s:f, s:i, s:s, s:o, s:s, s:s, s:o}", "time", e->wall, "status",
                                                e->status, "method", e->method, "path",
                                                path ? path : json_string("(not UTF-8)"), "model", e->model,
                                                "version", e->version, "message",
                                                message ? message : json_string("(not UTF-8)")));
    }
    unsigned long long errors_total = m->n_errors;
    pthread_mutex_unlock(&m->lock);
    return json_pack("{s:o, s:o, s:o, s:I}", "latency_bounds", bounds, "series", series, "recent_errors", errors,
                     "errors_total", (json_int_t)errors_total);
}
