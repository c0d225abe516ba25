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
    const char *protocol; /* a static name: "http", "grpc" */
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

/* One answered request of any protocol; error_json: an HTTP answer's body
 * to take the error message from, else error_text. */
static void observe_request(metrics *m, const char *protocol, const char *method, const char *path,
                            const char *model, const char *version, int status, const char *error_json,
                            size_t error_json_len, const char *error_text, double t_start, double t_queued,
                            double t_compute_start, double t_compute_end, double end)
{
    recent_error error; /* filled for errors only: zeroing it per request was a measurable cost */
    if (status >= 400) {
        memset(&error, 0, sizeof(error));
        struct timespec now;
        clock_gettime(CLOCK_REALTIME, &now);
        error.wall = (double)now.tv_sec + (double)now.tv_nsec * 1e-9;
        error.status = status;
        snprintf(error.method, sizeof(error.method), "%s", method);
        snprintf(error.path, sizeof(error.path), "%s", path ? path : "");
        snprintf(error.model, sizeof(error.model), "%s", model);
        snprintf(error.version, sizeof(error.version), "%s", version);
        /* the answer's own words: {"error": "..."} (parsed outside the lock) */
        json_t *body = error_json && error_json_len < 8192 ? json_loadb(error_json, error_json_len, 0, NULL) : NULL;
        const char *text = body ? json_string_value(json_object_get(body, "error")) : error_text;
        snprintf(error.message, sizeof(error.message), "%s", text ? text : "");
        trim_partial_utf8(error.message);
        trim_partial_utf8(error.path);
        json_decref(body);
    }
    pthread_mutex_lock(&m->lock);
    if (status >= 400)
        m->errors[m->n_errors++ % RECENT_ERRORS] = error;
    size_t i = 0;
    while (i < m->n_requests && (m->requests[i].code != status || m->requests[i].protocol != protocol ||
                                 strcmp(m->requests[i].model, model) || strcmp(m->requests[i].version, version)))
        i++;
    if (i == m->n_requests && i < MAX_SERIES) {
        snprintf(m->requests[i].model, sizeof(m->requests[i].model), "%s", model);
        snprintf(m->requests[i].version, sizeof(m->requests[i].version), "%s", version);
        m->requests[i].protocol = protocol;
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
            observe(&s->total, end - t_start);
            if (t_queued > 0 && t_compute_start >= t_queued) {
                observe(&s->queue, t_compute_start - t_queued);
                observe(&s->compute, t_compute_end - t_compute_start);
            }
        }
    }
    pthread_mutex_unlock(&m->lock);
}

void metrics_observe_request(metrics *m, const http_request *req, int status, double end)
{
    if (!m)
        return;
    /* requests not about a model are grouped under model="" */
    observe_request(m, "http", req->method, req->path, req->model_name, req->model_version, status,
                    req->response ? req->response : "", req->response ? req->response_len : 0, NULL, req->t_start,
                    req->t_queued, req->t_compute_start, req->t_compute_end, end);
}

void metrics_observe_call(metrics *m, const metrics_call *c)
{
    if (!m)
        return;
    observe_request(m, c->protocol, c->method, c->path, c->model, c->version, c->status, NULL, 0, c->error,
                    c->t_start, c->t_queued, c->t_compute_start, c->t_compute_end, c->end);
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

static void batch_histogram(FILE *out, const char *name, const model_version *v, const double *bounds,
                            size_t n_bounds, const unsigned long long *counts, double sum,
                            unsigned long long count)
{
    char metric[128];
    unsigned long long cumulative = 0;
    snprintf(metric, sizeof(metric), "%s_bucket", name);
    for (size_t b = 0; b <= n_bounds; b++) {
        cumulative += counts[b];
        version_labels(out, metric, v);
        if (b < n_bounds)
            fprintf(out, ",le=\"%g\"} %llu\n", bounds[b], cumulative);
        else
            fprintf(out, ",le=\"+Inf\"} %llu\n", cumulative);
    }
    snprintf(metric, sizeof(metric), "%s_sum", name);
    version_labels(out, metric, v);
    fprintf(out, "} %.9g\n", sum);
    snprintf(metric, sizeof(metric), "%s_count", name);
    version_labels(out, metric, v);
    fprintf(out, "} %llu\n", count);
}

/* Adaptive batching, per version that has a batcher (read lock held). */
static void render_batching(FILE *out, model_set *set)
{
    size_t n = model_set_count(set);
    size_t with = 0;
    for (size_t i = 0; i < n; i++) {
        const model_entry *e = model_set_entry(set, i);
        for (size_t k = 0; k < e->n_versions; k++)
            with += __atomic_load_n(&e->versions[k]->batcher, __ATOMIC_ACQUIRE) != NULL;
    }
    if (!with)
        return;
    batch_stats *stats = calloc(with, sizeof(*stats));
    const model_version **owners = calloc(with, sizeof(*owners));
    if (!stats || !owners) {
        free(stats);
        free(owners);
        return;
    }
    size_t m = 0;
    for (size_t i = 0; i < n; i++) {
        const model_entry *e = model_set_entry(set, i);
        for (size_t k = 0; k < e->n_versions && m < with; k++) {
            batcher *b = __atomic_load_n(&e->versions[k]->batcher, __ATOMIC_ACQUIRE);
            if (!b)
                continue;
            batcher_stats(b, &stats[m]);
            owners[m++] = e->versions[k];
        }
    }
    fprintf(out, "# HELP inferd_batch_size_rows Rows per engine call of adaptive batching.\n"
                 "# TYPE inferd_batch_size_rows histogram\n");
    for (size_t i = 0; i < m; i++)
        batch_histogram(out, "inferd_batch_size_rows", owners[i], batch_size_bounds, BATCH_SIZE_BUCKETS,
                        stats[i].size_counts, stats[i].rows, stats[i].batches);
    fprintf(out, "# HELP inferd_batch_queue_delay_seconds Time a request waited in the batch queue.\n"
                 "# TYPE inferd_batch_queue_delay_seconds histogram\n");
    for (size_t i = 0; i < m; i++)
        batch_histogram(out, "inferd_batch_queue_delay_seconds", owners[i], batch_delay_bounds,
                        BATCH_DELAY_BUCKETS, stats[i].delay_counts, stats[i].delay_sum, stats[i].delayed);
    static const struct {
        const char *name, *help;
    } counters[] = {
        {"inferd_batch_queue_full_total", "Requests refused (429) because the batch queue was full."},
        {"inferd_batch_deadline_expired_total", "Requests answered 504 because their deadline passed in the batch queue."},
        {"inferd_batch_failed_total", "Engine calls of a batch that failed (every member answered with the error)."},
    };
    for (size_t c = 0; c < sizeof(counters) / sizeof(counters[0]); c++) {
        fprintf(out, "# HELP %s %s\n# TYPE %s counter\n", counters[c].name, counters[c].help, counters[c].name);
        for (size_t i = 0; i < m; i++) {
            unsigned long long value = c == 0   ? stats[i].queue_full
                                       : c == 1 ? stats[i].deadline_expired
                                                : stats[i].failed_batches;
            version_labels(out, counters[c].name, owners[i]);
            fprintf(out, "} %llu\n", value);
        }
    }
    fprintf(out, "# HELP inferd_batch_run_seconds_total Wall time of the batches' engine calls "
                 "(over the batch_size_rows count: the mean duration of one batch run).\n"
                 "# TYPE inferd_batch_run_seconds_total counter\n");
    for (size_t i = 0; i < m; i++) {
        version_labels(out, "inferd_batch_run_seconds_total", owners[i]);
        fprintf(out, "} %.9g\n", stats[i].run_seconds);
    }
    fprintf(out, "# HELP inferd_batch_queue_length Requests waiting in the batch queue now.\n"
                 "# TYPE inferd_batch_queue_length gauge\n");
    for (size_t i = 0; i < m; i++) {
        version_labels(out, "inferd_batch_queue_length", owners[i]);
        fprintf(out, "} %zu\n", stats[i].queued);
    }
    fprintf(out, "# HELP inferd_batch_running_rows Rows of the batch the engine runs now (0: idle).\n"
                 "# TYPE inferd_batch_running_rows gauge\n");
    for (size_t i = 0; i < m; i++) {
        version_labels(out, "inferd_batch_running_rows", owners[i]);
        fprintf(out, "} %lld\n", stats[i].running_rows);
    }
    free(stats);
    free(owners);
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
    render_batching(out, set);
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
    log_flush(); /* the access lines still buffered are written, or counted as dropped, first */
    fprintf(out, "# HELP inferd_log_lines_dropped_total Log lines (the access log included) that could not be written.\n"
                 "# TYPE inferd_log_lines_dropped_total counter\ninferd_log_lines_dropped_total %lu\n",
            log_lines_dropped());
    render_model_set(out, srv->models);
    async_render_metrics(out, srv);
    pipeline_set_render_metrics(srv->pipelines, out);
    pthread_mutex_lock(&m->lock);
    fprintf(out, "# HELP inferd_requests_total Requests by model, version, status code (gRPC: the HTTP status "
                 "REST would answer) and protocol (http, grpc).\n"
                 "# TYPE inferd_requests_total counter\n");
    for (size_t i = 0; i < m->n_requests; i++) {
        fprintf(out, "inferd_requests_total{model=\"");
        label_value(out, m->requests[i].model);
        fprintf(out, "\",version=\"");
        label_value(out, m->requests[i].version);
        fprintf(out, "\",code=\"%d\",protocol=\"%s\"} %llu\n", m->requests[i].code, m->requests[i].protocol,
                m->requests[i].count);
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
            /* one count per code, whichever protocols answered it */
            json_int_t before = json_integer_value(json_object_get(codes, code));
            json_object_set_new(codes, code, json_integer(before + (json_int_t)r->count));
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
