/*
 * remote.c — KServe V2 REST calls of remote pipeline steps (see remote.h).
 */
#include "remote.h"

#include <curl/curl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "tensor_json.h"

#define MAX_IDLE_HANDLES 16

struct remote_endpoint {
    char *url, *model, *version;
    long timeout_ms;
    int retries;
    long backoff_ms;
    int breaker_failures;
    long breaker_reset_ms;
    pthread_mutex_t lock;
    CURL *idle[MAX_IDLE_HANDLES];
    size_t n_idle;
    int consecutive_failures;
    bool open, probing;
    double opened_at;
    json_t *metadata; /* under lock; NULL until read */
};

static pthread_once_t curl_once = PTHREAD_ONCE_INIT;
static bool curl_ready;

static void curl_start(void)
{
    curl_ready = curl_global_init(CURL_GLOBAL_DEFAULT) == CURLE_OK;
}

bool remote_global_init(void)
{
    pthread_once(&curl_once, curl_start);
    return curl_ready;
}

static double now_seconds(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + (double)t.tv_nsec * 1e-9;
}

static bool read_long(const json_t *spec, const char *field, long min, long max, long fallback, long *out,
                      char *err, size_t n)
{
    const json_t *v = json_object_get(spec, field);
    if (!v) {
        *out = fallback;
        return true;
    }
    if (!json_is_integer(v) || json_integer_value(v) < min || json_integer_value(v) > max) {
        snprintf(err, n, "\"%s\" must be an integer from %ld to %ld", field, min, max);
        return false;
    }
    *out = (long)json_integer_value(v);
    return true;
}

remote_endpoint *remote_endpoint_new(const json_t *spec, char *err, size_t n)
{
    const char *url = json_string_value(json_object_get(spec, "url"));
    const char *model = json_string_value(json_object_get(spec, "model"));
    const json_t *version = json_object_get(spec, "version");
    if (!url || (strncmp(url, "http://", 7) != 0 && strncmp(url, "https://", 8) != 0)) {
        snprintf(err, n, "\"url\" must be an http:// or https:// URL of a KServe V2 server");
        return NULL;
    }
    if (!model || !*model || strchr(model, '/')) {
        snprintf(err, n, "\"model\" must name the remote model");
        return NULL;
    }
    if (version && !json_is_string(version)) {
        snprintf(err, n, "\"version\" must be a string");
        return NULL;
    }
    long timeout_ms, retries, backoff_ms, failures = 5, reset_ms = 1000;
    if (!read_long(spec, "timeout_ms", 1, 3600000, 1000, &timeout_ms, err, n) ||
        !read_long(spec, "retries", 0, 10, 0, &retries, err, n) ||
        !read_long(spec, "backoff_ms", 0, 60000, 10, &backoff_ms, err, n))
        return NULL;
    const json_t *breaker = json_object_get(spec, "circuit_breaker");
    if (breaker) {
        if (!json_is_object(breaker)) {
            snprintf(err, n, "\"circuit_breaker\" must be an object {\"failures\": N, \"reset_ms\": MS}");
            return NULL;
        }
        if (!read_long(breaker, "failures", 1, 1000000, 5, &failures, err, n) ||
            !read_long(breaker, "reset_ms", 1, 3600000, 1000, &reset_ms, err, n))
            return NULL;
    }
    remote_endpoint *r = calloc(1, sizeof(*r));
    if (!r) {
        snprintf(err, n, "out of memory");
        return NULL;
    }
    size_t url_len = strlen(url);
    while (url_len > 0 && url[url_len - 1] == '/')
        url_len--;
    r->url = strndup(url, url_len);
    r->model = strdup(model);
    r->version = version ? strdup(json_string_value(version)) : NULL;
    r->timeout_ms = timeout_ms;
    r->retries = (int)retries;
    r->backoff_ms = backoff_ms;
    r->breaker_failures = (int)failures;
    r->breaker_reset_ms = reset_ms;
    pthread_mutex_init(&r->lock, NULL);
    if (!r->url || !r->model || (version && !r->version)) {
        remote_endpoint_free(r);
        snprintf(err, n, "out of memory");
        return NULL;
    }
    return r;
}

void remote_endpoint_free(remote_endpoint *r)
{
    if (!r)
        return;
    for (size_t i = 0; i < r->n_idle; i++)
        curl_easy_cleanup(r->idle[i]);
    json_decref(r->metadata);
    pthread_mutex_destroy(&r->lock);
    free(r->url);
    free(r->model);
    free(r->version);
    free(r);
}

const char *remote_endpoint_url(const remote_endpoint *r)
{
    return r->url;
}

const char *remote_endpoint_model(const remote_endpoint *r)
{
    return r->model;
}

/* An idle handle keeps its connection open: taking one reuses it. */
static CURL *take_handle(remote_endpoint *r)
{
    pthread_mutex_lock(&r->lock);
    CURL *h = r->n_idle ? r->idle[--r->n_idle] : NULL;
    pthread_mutex_unlock(&r->lock);
    if (h)
        curl_easy_reset(h); /* options only: the connection cache stays */
    else
        h = curl_easy_init();
    return h;
}

static void give_back(remote_endpoint *r, CURL *h)
{
    pthread_mutex_lock(&r->lock);
    if (r->n_idle < MAX_IDLE_HANDLES) {
        r->idle[r->n_idle++] = h;
        h = NULL;
    }
    pthread_mutex_unlock(&r->lock);
    if (h)
        curl_easy_cleanup(h);
}

typedef struct buffer {
    char *data;
    size_t len;
    bool too_large;
} buffer;

#define MAX_RESPONSE_BYTES (64u << 20)

static size_t collect(char *data, size_t size, size_t count, void *arg)
{
    buffer *b = arg;
    size_t n = size * count;
    if (b->len + n > MAX_RESPONSE_BYTES) {
        b->too_large = true;
        return 0;
    }
    char *grown = realloc(b->data, b->len + n + 1);
    if (!grown)
        return 0;
    memcpy(grown + b->len, data, n);
    b->data = grown;
    b->len += n;
    b->data[b->len] = '\0';
    return n;
}

static void model_url(const remote_endpoint *r, const char *tail, char *out, size_t n)
{
    if (r->version)
        snprintf(out, n, "%s/v2/models/%s/versions/%s%s", r->url, r->model, r->version, tail);
    else
        snprintf(out, n, "%s/v2/models/%s%s", r->url, r->model, tail);
}

/* One HTTP exchange. Returns the HTTP status, or -1 (connection failed,
 * err set) / -2 (timed out). */
static long exchange(remote_endpoint *r, const char *url, const char *body, size_t body_len,
                     struct curl_slist *headers, buffer *answer, char *err, size_t n)
{
    CURL *h = take_handle(r);
    if (!h) {
        snprintf(err, n, "cannot create an HTTP client");
        return -1;
    }
    curl_easy_setopt(h, CURLOPT_URL, url);
    curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(h, CURLOPT_TIMEOUT_MS, r->timeout_ms);
    curl_easy_setopt(h, CURLOPT_CONNECTTIMEOUT_MS, r->timeout_ms);
    curl_easy_setopt(h, CURLOPT_TCP_KEEPALIVE, 1L);
    curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, collect);
    curl_easy_setopt(h, CURLOPT_WRITEDATA, answer);
    if (headers)
        curl_easy_setopt(h, CURLOPT_HTTPHEADER, headers);
    if (body) {
        curl_easy_setopt(h, CURLOPT_POSTFIELDS, body);
        curl_easy_setopt(h, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)body_len);
    }
    CURLcode rc = curl_easy_perform(h);
    long status = 0;
    if (rc == CURLE_OK) {
        curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &status);
        give_back(r, h);
        return status;
    }
    snprintf(err, n, "%s", curl_easy_strerror(rc));
    if (answer->too_large)
        snprintf(err, n, "the answer is larger than %u bytes", MAX_RESPONSE_BYTES);
    curl_easy_cleanup(h); /* a broken connection is not worth keeping */
    return rc == CURLE_OPERATION_TIMEDOUT ? -2 : -1;
}

bool remote_fetch_metadata(remote_endpoint *r, json_t **metadata, char *err, size_t n)
{
    char url[2048];
    model_url(r, "", url, sizeof(url));
    buffer answer = {0};
    char why[512];
    long status = exchange(r, url, NULL, 0, NULL, &answer, why, sizeof(why));
    bool ok = false;
    if (status < 0) {
        snprintf(err, n, "%s unreachable: %s", url, why);
    } else if (status != 200) {
        snprintf(err, n, "%s answered HTTP %ld", url, status);
    } else {
        json_t *j = answer.data ? json_loads(answer.data, 0, NULL) : NULL;
        if (!json_is_array(json_object_get(j, "inputs")) || !json_is_array(json_object_get(j, "outputs"))) {
            snprintf(err, n, "%s answered something that is not V2 model metadata", url);
            json_decref(j);
        } else {
            *metadata = j;
            ok = true;
        }
    }
    free(answer.data);
    return ok;
}

json_t *remote_metadata(remote_endpoint *r, char *err, size_t n)
{
    pthread_mutex_lock(&r->lock);
    json_t *known = json_incref(r->metadata);
    pthread_mutex_unlock(&r->lock);
    if (known)
        return known;
    json_t *fetched = NULL;
    if (!remote_fetch_metadata(r, &fetched, err, n))
        return NULL;
    pthread_mutex_lock(&r->lock);
    if (!r->metadata)
        r->metadata = json_incref(fetched);
    pthread_mutex_unlock(&r->lock);
    return fetched;
}

/* Breaker: may this attempt go out? */
static bool breaker_admit(remote_endpoint *r)
{
    pthread_mutex_lock(&r->lock);
    bool admit = true;
    if (r->open) {
        if (r->probing || now_seconds() - r->opened_at < (double)r->breaker_reset_ms / 1000.0)
            admit = false;
        else
            r->probing = true; /* half-open: this one attempt probes */
    }
    pthread_mutex_unlock(&r->lock);
    return admit;
}

static void breaker_record(remote_endpoint *r, bool ok)
{
    pthread_mutex_lock(&r->lock);
    if (ok) {
        r->consecutive_failures = 0;
        r->open = r->probing = false;
    } else {
        r->consecutive_failures++;
        if (r->probing || r->consecutive_failures >= r->breaker_failures) {
            r->open = true;
            r->opened_at = now_seconds();
        }
        r->probing = false;
    }
    pthread_mutex_unlock(&r->lock);
}

static char *request_body(const remote_call *call, size_t *len, char *err, size_t n)
{
    json_t *inputs = json_array();
    for (size_t i = 0; i < call->n_inputs; i++) {
        const ifd_value *v = call->values[i];
        if (v->kind != IFD_VALUE_TENSOR) {
            snprintf(err, n, "input '%s' is not a tensor and cannot be sent", call->names[i]);
            json_decref(inputs);
            return NULL;
        }
        json_t *shape = json_array();
        for (int d = 0; d < v->tensor.rank; d++)
            json_array_append_new(shape, json_integer(v->tensor.dims[d]));
        json_array_append_new(inputs, json_pack("{s:s, s:s, s:o, s:o}", "name", call->names[i], "datatype",
                                                v2_datatype_name(v->tensor.dtype), "shape", shape, "data",
                                                tensor_to_json_flat(&v->tensor)));
    }
    json_t *body = json_pack("{s:s, s:o}", "id", call->request_id ? call->request_id : "", "inputs", inputs);
    char *text = json_encode(body, len);
    json_decref(body);
    if (!text)
        snprintf(err, n, "out of memory");
    return text;
}

/* The V2 answer as values; false with err when it is not one. */
static bool decode_answer(const char *text, size_t len, char ***names, ifd_value ***values, size_t *count,
                          char *err, size_t n)
{
    json_error_t je;
    json_t *body = text ? json_loadb(text, len, 0, &je) : NULL;
    json_t *outputs = json_object_get(body, "outputs");
    if (!json_is_array(outputs) || json_array_size(outputs) == 0) {
        snprintf(err, n, "the answer is not a V2 inference response (no \"outputs\")");
        json_decref(body);
        return false;
    }
    size_t k = json_array_size(outputs);
    *names = calloc(k, sizeof(**names));
    *values = calloc(k, sizeof(**values));
    *count = 0;
    bool ok = *names && *values;
    for (size_t i = 0; ok && i < k; i++) {
        json_t *o = json_array_get(outputs, i);
        const char *name = json_string_value(json_object_get(o, "name"));
        const char *datatype = json_string_value(json_object_get(o, "datatype"));
        json_t *shape = json_object_get(o, "shape");
        ifd_dtype dtype;
        if (!name || !datatype || !v2_datatype_parse(datatype, &dtype) || !json_is_array(shape) ||
            json_array_size(shape) > IFD_MAX_RANK) {
            snprintf(err, n, "outputs[%zu] lacks a valid name, datatype or shape", i);
            ok = false;
            break;
        }
        int64_t dims[IFD_MAX_RANK];
        int rank = (int)json_array_size(shape);
        for (int d = 0; d < rank; d++) {
            json_t *dim = json_array_get(shape, (size_t)d);
            dims[d] = json_is_integer(dim) ? json_integer_value(dim) : -1;
            if (dims[d] < 0) {
                snprintf(err, n, "outputs[%zu] (%s): the shape is not non-negative integers", i, name);
                ok = false;
            }
        }
        char why[512];
        ifd_value *v = ok ? json_to_tensor(json_object_get(o, "data"), dtype, rank, dims, why, sizeof(why)) : NULL;
        if (ok && !v) {
            snprintf(err, n, "output %.100s: %.380s", name, why);
            ok = false;
        }
        if (ok) {
            (*names)[i] = strdup(name);
            (*values)[i] = v;
            (*count)++;
        }
    }
    json_decref(body);
    if (!ok) {
        for (size_t i = 0; *names && *values && i < *count; i++) {
            free((*names)[i]);
            ifd_value_free((*values)[i]);
        }
        free(*names);
        free(*values);
        *names = NULL;
        *values = NULL;
        *count = 0;
    }
    return ok;
}

int remote_infer(remote_endpoint *r, const remote_call *call, char ***output_names, ifd_value ***outputs,
                 size_t *n_outputs, char *err, size_t n)
{
    size_t body_len;
    char *body = request_body(call, &body_len, err, n);
    if (!body)
        return 502;
    char url[2048], header[256];
    model_url(r, "/infer", url, sizeof(url));
    struct curl_slist *headers = curl_slist_append(NULL, "Content-Type: application/json");
    headers = curl_slist_append(headers, "Expect:"); /* no 100-continue round trip */
    if (call->request_id) {
        snprintf(header, sizeof(header), "X-Request-ID: %s", call->request_id);
        headers = curl_slist_append(headers, header);
    }
    if (call->trace_id) {
        /* a new span id per call; the trace id is the request's */
        unsigned long long span = ((unsigned long long)rand() << 32) ^ (unsigned long long)rand() ^
                                  (unsigned long long)(now_seconds() * 1e9);
        snprintf(header, sizeof(header), "traceparent: 00-%.32s-%016llx-01", call->trace_id, span ? span : 1);
        headers = curl_slist_append(headers, header);
    }
    int result = 502;
    long delay_ms = r->backoff_ms;
    for (int attempt = 0; attempt <= r->retries; attempt++) {
        if (attempt > 0 && delay_ms > 0) {
            struct timespec pause = {delay_ms / 1000, (delay_ms % 1000) * 1000000L};
            nanosleep(&pause, NULL);
            delay_ms *= 2;
        }
        if (!breaker_admit(r)) {
            snprintf(err, n, "circuit breaker open after %d consecutive failures of %s", r->breaker_failures, r->url);
            result = 502;
            break; /* retrying into an open circuit only waits */
        }
        buffer answer = {0};
        char why[512];
        long status = exchange(r, url, body, body_len, headers, &answer, why, sizeof(why));
        bool ok = false;
        if (status == -2) {
            snprintf(err, n, "no answer from %s within timeout_ms %ld", url, r->timeout_ms);
            result = 504;
        } else if (status < 0) {
            snprintf(err, n, "%s: %s", url, why);
            result = 502;
        } else if (status != 200) {
            json_t *j = answer.data ? json_loads(answer.data, 0, NULL) : NULL;
            const char *message = json_string_value(json_object_get(j, "error"));
            snprintf(err, n, "%s answered HTTP %ld%s%.300s", url, status, message ? ": " : "",
                     message ? message : "");
            json_decref(j);
            result = 502;
        } else if (!decode_answer(answer.data, answer.len, output_names, outputs, n_outputs, why, sizeof(why))) {
            snprintf(err, n, "%s answered garbage: %s", url, why);
            result = 502;
        } else {
            ok = true;
            result = 200;
        }
        free(answer.data);
        /* a 4xx says the remote is alive and the request wrong: not a
         * failure of the endpoint */
        breaker_record(r, ok || (status >= 400 && status < 500));
        /* a 4xx is the request's fault: the same request will fail again */
        if (ok || (status >= 400 && status < 500))
            break;
    }
    curl_slist_free_all(headers);
    free(body);
    return result;
}
