/*
 * routes.c — maps method + path to a handler. Fixed paths come from a table;
 * the model paths of KServe V2 (/v2/models/{m}[/versions/{v}][/ready|/infer])
 * and TensorFlow Serving (/v1/models/{m}[/versions/{v}][:predict]) are
 * parsed by hand because their parameters sit inside the path, as are the
 * book's /predict routes for a named model or pipeline
 * (/models/{m}/predict[/label]).
 */
#include "routes.h"

#include "ui.h"

#include <stdio.h>
#include <string.h>

typedef struct fixed_route {
    const char *method;
    const char *path;
    route_fn fn;
    bool compute;
} fixed_route;

static const fixed_route fixed[] = {
    {"GET", "/health", book_health, false},
    {"GET", "/metadata", book_metadata, false},
    {"GET", "/label", book_label, false},
    {"GET", "/predict/test", book_predict_test, true},
    {"GET", "/predict/test/label", book_predict_test_label, true},
    {"POST", "/predict", book_predict, true},
    {"POST", "/predict/label", book_predict_label, true},
    {"POST", "/prediction", book_prediction, true},
    {"GET", "/v2", v2_server_metadata, false},
    {"GET", "/v2/health/live", v2_health_live, false},
    {"GET", "/v2/health/ready", v2_health_ready, false},
    {"GET", "/v2/inventory", v2_inventory, false},
    {"POST", "/v2/repository/index", repository_index, false},
    {"GET", "/v2/repository/status", repository_status, false},
    {"GET", "/metrics", metrics_handler, false},
    {"GET", "/openapi.json", openapi_json, false},
    {"GET", "/docs", openapi_docs, false},
    /* Swagger UI's files, served by the same handler (see openapi.c) */
    {"GET", "/docs/swagger-ui.css", openapi_docs, false},
    {"GET", "/docs/swagger-ui-bundle.js", openapi_docs, false},
    /* the web dashboard (ui.c) */
    {"GET", "/", ui_root, false},
    {"GET", "/ui", ui_page, false},
    {"GET", "/ui/", ui_page, false},
    {"GET", "/ui/app.js", ui_page, false},
    {"GET", "/ui/app.css", ui_page, false},
    {"GET", "/ui/api/stats", ui_stats, false},
    {"GET", "/favicon.ico", ui_favicon, false},
};

static bool method_is(const http_request *req, const char *method)
{
    if (strcmp(req->method, method) == 0)
        return true;
    return strcmp(method, "GET") == 0 && strcmp(req->method, "HEAD") == 0;
}

static bool set(route_match *out, route_fn fn, bool compute)
{
    out->fn = fn;
    out->compute = compute;
    return true;
}

static bool wrong_method(http_request *req, const char *allow)
{
    req->allow = allow;
    http_reply_error(req, 405, "method %s is not allowed on %s (allowed: %s)", req->method,
                     req->path, allow);
    return false;
}

/* Copy one path segment [start, end) into dst; false if empty or too long. */
static bool segment(const char *start, const char *end, char *dst, size_t size)
{
    size_t n = (size_t)(end - start);
    if (n == 0 || n >= size)
        return false;
    memcpy(dst, start, n);
    dst[n] = '\0';
    return true;
}

/* /v2/models/{m}[/versions/{v}][/ready|/infer] */
static bool match_v2_model(http_request *req, const char *rest, route_match *out)
{
    const char *slash = strchr(rest, '/');
    const char *end = slash ? slash : rest + strlen(rest);
    if (!segment(rest, end, out->params.model, sizeof(out->params.model)))
        return false;
    const char *tail = end;
    if (strncmp(tail, "/versions/", 10) == 0) {
        const char *v = tail + 10;
        const char *vend = strchr(v, '/');
        vend = vend ? vend : v + strlen(v);
        if (!segment(v, vend, out->params.version, sizeof(out->params.version)))
            return false;
        out->params.has_version = true;
        tail = vend;
    }
    if (*tail == '\0')
        return method_is(req, "GET") ? set(out, v2_model_metadata, false) : wrong_method(req, "GET");
    if (strcmp(tail, "/ready") == 0)
        return method_is(req, "GET") ? set(out, v2_model_ready, false) : wrong_method(req, "GET");
    if (strcmp(tail, "/infer") == 0) {
        out->has_body = true;
        return method_is(req, "POST") ? set(out, v2_infer, true) : wrong_method(req, "POST");
    }
    return false;
}

/* /v2/repository/models/{m}/load|unload|traffic (POST), /status (GET) */
static bool match_repository_model(http_request *req, const char *rest, route_match *out)
{
    const char *slash = strchr(rest, '/');
    if (!slash || !segment(rest, slash, out->params.model, sizeof(out->params.model)))
        return false;
    static const struct {
        const char *tail;
        route_fn fn;
    } calls[] = {{"/load", repository_load}, {"/unload", repository_unload}, {"/traffic", repository_traffic}};
    for (size_t i = 0; i < sizeof(calls) / sizeof(calls[0]); i++) {
        if (strcmp(slash, calls[i].tail) != 0)
            continue;
        out->has_body = true;
        out->admin = true;
        return method_is(req, "POST") ? set(out, calls[i].fn, true) : wrong_method(req, "POST");
    }
    if (strcmp(slash, "/status") == 0)
        return method_is(req, "GET") ? set(out, repository_status, false) : wrong_method(req, "GET");
    return false;
}

/* /v1/models/{m}[/versions/{v}][:predict] */
static bool match_v1_model(http_request *req, const char *rest, route_match *out)
{
    char path[512];
    if (!segment(rest, rest + strlen(rest), path, sizeof(path)))
        return false;
    bool predict = false;
    size_t n = strlen(path);
    if (n > 8 && strcmp(path + n - 8, ":predict") == 0) {
        predict = true;
        path[n - 8] = '\0';
    }
    char *versions = strstr(path, "/versions/");
    if (versions) {
        *versions = '\0';
        if (!segment(versions + 10, versions + 10 + strlen(versions + 10), out->params.version,
                     sizeof(out->params.version)) ||
            strchr(out->params.version, '/'))
            return false;
        out->params.has_version = true;
    }
    if (strchr(path, '/') || !segment(path, path + strlen(path), out->params.model,
                                      sizeof(out->params.model)))
        return false;
    if (predict) {
        out->has_body = true;
        return method_is(req, "POST") ? set(out, v1_predict, true) : wrong_method(req, "POST");
    }
    return method_is(req, "GET") ? set(out, v1_model_status, false) : wrong_method(req, "GET");
}

/* /models/{m}/predict[/label]: the book's API for a named model or pipeline */
static bool match_book_model(http_request *req, const char *rest, route_match *out)
{
    const char *slash = strchr(rest, '/');
    if (!slash || !segment(rest, slash, out->params.model, sizeof(out->params.model)))
        return false;
    route_fn fn = strcmp(slash, "/predict") == 0         ? book_predict
                  : strcmp(slash, "/predict/label") == 0 ? book_predict_label
                                                         : NULL;
    if (!fn)
        return false;
    out->has_body = true;
    return method_is(req, "POST") ? set(out, fn, true) : wrong_method(req, "POST");
}

bool routes_match(http_request *req, route_match *out)
{
    memset(out, 0, sizeof(*out));
    const char *path = req->path;
    const char *allow = NULL;
    for (size_t i = 0; i < sizeof(fixed) / sizeof(fixed[0]); i++) {
        if (strcmp(fixed[i].path, path) != 0)
            continue;
        if (method_is(req, fixed[i].method)) {
            out->has_body = strcmp(fixed[i].method, "POST") == 0;
            return set(out, fixed[i].fn, fixed[i].compute);
        }
        allow = fixed[i].method;
    }
    if (allow)
        return wrong_method(req, allow);
    if (strncmp(path, "/v2/models/", 11) == 0 && match_v2_model(req, path + 11, out))
        return true;
    /* job ids are checked by the handlers: a malformed one is a 400, not a 404 */
    if (strncmp(path, "/v2/jobs/", 9) == 0 && path[9] && !strchr(path + 9, '/')) {
        if (method_is(req, "GET"))
            return set(out, v2_job_get, false);
        return strcmp(req->method, "DELETE") == 0 ? set(out, v2_job_delete, false) : wrong_method(req, "GET, DELETE");
    }
    if (strncmp(path, "/job/", 5) == 0 && path[5] && !strchr(path + 5, '/'))
        return method_is(req, "GET") ? set(out, book_job_get, false) : wrong_method(req, "GET");
    if (strncmp(path, "/v1/models/", 11) == 0 && match_v1_model(req, path + 11, out))
        return true;
    if (strncmp(path, "/v2/repository/models/", 22) == 0 && match_repository_model(req, path + 22, out))
        return true;
    if (strncmp(path, "/models/", 8) == 0 && match_book_model(req, path + 8, out))
        return true;
    if (req->answered)
        return false; /* a 405 from the model routes */
    http_reply_error(req, 404, "no route for %s %s", req->method, path);
    return false;
}
