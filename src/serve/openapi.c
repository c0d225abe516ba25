/*
 * openapi.c — GET /openapi.json describes every route of the server in
 * OpenAPI 3.0, with the served models' input schemas (dtype and shape), and
 * GET /docs renders it for people with Swagger UI (swagger-ui-dist from
 * npm, compiled into the binary when the build had it: docs_assets.c;
 * else installed beside the binary: docs_dir()).
 */
#include <errno.h>
#include <limits.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "docs_assets.h"
#include "routes.h"
#include "server.h"
#include "tensor_json.h"

static json_t *json_type_of(ifd_dtype dtype)
{
    switch (dtype) {
    case IFD_FLOAT: case IFD_DOUBLE: case IFD_FLOAT16: case IFD_BFLOAT16:
        return json_pack("{s:s}", "type", "number");
    case IFD_BOOL: return json_pack("{s:s}", "type", "boolean");
    case IFD_STRING: return json_pack("{s:s}", "type", "string");
    default: return json_pack("{s:s}", "type", "integer");
    }
}

/* Nested arrays as deep as the input's rank, with fixed sizes where known. */
static json_t *rows_schema(const ifd_type_info *t)
{
    json_t *schema = json_type_of(t->dtype);
    for (int i = (t->rank < 0 ? 1 : t->rank) - 1; i >= 0; i--) {
        json_t *arr = json_pack("{s:s, s:o}", "type", "array", "items", schema);
        if (t->rank >= 0 && t->dims[i] >= 0 && i > 0) {
            json_object_set_new(arr, "minItems", json_integer(t->dims[i]));
            json_object_set_new(arr, "maxItems", json_integer(t->dims[i]));
        }
        schema = arr;
    }
    return schema;
}

static json_t *error_response(const char *description)
{
    return json_pack("{s:s, s:{s:{s:{s:s}}}}", "description", description, "content",
                     "application/json", "schema", "$ref", "#/components/schemas/Error");
}

static json_t *ok_json(const char *description, json_t *schema)
{
    return json_pack("{s:s, s:{s:{s:o}}}", "description", description, "content", "application/json",
                     "schema", schema ? schema : json_pack("{s:s}", "type", "object"));
}

static json_t *operation(const char *summary, const char *tag, json_t *ok, json_t *body, bool model_param,
                         bool version_param)
{
    json_t *op = json_pack("{s:s, s:[s], s:{s:o, s:o, s:o}}", "summary", summary, "tags", tag, "responses",
                           "200", ok, "400", error_response("Bad request"), "404",
                           error_response("Unknown model or route"));
    if (body)
        json_object_set_new(op, "requestBody",
                            json_pack("{s:b, s:{s:{s:o}}}", "required", 1, "content", "application/json",
                                      "schema", body));
    json_t *params = json_array();
    if (model_param)
        json_array_append_new(params, json_pack("{s:s, s:s, s:b, s:{s:s}}", "name", "model", "in", "path",
                                                "required", 1, "schema", "type", "string"));
    if (version_param)
        json_array_append_new(params, json_pack("{s:s, s:s, s:b, s:{s:s}}", "name", "version", "in", "path",
                                                "required", 1, "schema", "type", "string"));
    if (json_array_size(params))
        json_object_set_new(op, "parameters", params);
    else
        json_decref(params);
    return op;
}

static json_t *v2_paths_for(json_t *paths, const char *prefix, bool versioned)
{
    char path[256];
    snprintf(path, sizeof(path), "%s", prefix);
    json_object_set_new(paths, path, json_pack("{s:o}", "get",
        operation("KServe V2 model metadata", "KServe V2", ok_json("Model metadata", json_pack("{s:s}", "$ref", "#/components/schemas/V2ModelMetadata")), NULL, true, versioned)));
    snprintf(path, sizeof(path), "%s/ready", prefix);
    json_object_set_new(paths, path, json_pack("{s:o}", "get",
        operation("KServe V2 model readiness", "KServe V2", ok_json("Ready", NULL), NULL, true, versioned)));
    snprintf(path, sizeof(path), "%s/infer", prefix);
    json_t *infer = operation("KServe V2 inference (JSON, or binary tensors with Inference-Header-Content-Length; "
                              "an image model also takes a raw JPEG/PNG body and BYTES inputs of encoded images; "
                              "?top_k=K adds the K best classes)",
                              "KServe V2", ok_json("Inference response", json_pack("{s:s}", "$ref", "#/components/schemas/V2InferResponse")),
                              json_pack("{s:s}", "$ref", "#/components/schemas/V2InferRequest"), true, versioned);
    /* a raw image body, for a model whose manifest declares an image input */
    json_t *content = json_object_get(json_object_get(infer, "requestBody"), "content");
    for (size_t i = 0; i < 2; i++)
        json_object_set_new(content, i ? "image/png" : "image/jpeg",
                            json_pack("{s:{s:s, s:s}}", "schema", "type", "string", "format", "binary"));
    json_object_set_new(paths, path, json_pack("{s:o}", "post", infer));
    return paths;
}

static json_t *build_document(const server *srv)
{
    const model_entry *default_entry = model_set_default(srv->models);
    const model_version *def = default_entry && default_entry->n_versions
                                   ? default_entry->versions[default_entry->n_versions - 1]
                                   : NULL;
    json_t *rows = def && ifd_model_input_count(def->model) == 1
                       ? rows_schema(&ifd_model_input(def->model, 0)->type)
                       : json_pack("{s:s, s:{}}", "type", "array", "items");
    json_t *book_request = json_pack("{s:s, s:{s:o}}", "type", "object", "properties", "data", rows);
    if (def && def->sample)
        json_object_set_new(book_request, "example", json_pack("{s:O}", "data", def->sample));
    json_t *prediction = json_pack("{s:s, s:{s:{}}}", "type", "object", "properties", "prediction");

    json_t *paths = json_object();
    json_object_set_new(paths, "/health", json_pack("{s:o}", "get", operation("Liveness (the book's API)", "Book API", ok_json("Alive", NULL), NULL, false, false)));
    json_object_set_new(paths, "/metadata", json_pack("{s:o}", "get", operation("Input and output description with a sample", "Book API", ok_json("Metadata", NULL), NULL, false, false)));
    json_object_set_new(paths, "/label", json_pack("{s:o}", "get", operation("The label file", "Book API", ok_json("Labels", NULL), NULL, false, false)));
    json_object_set_new(paths, "/predict/test", json_pack("{s:o}", "get", operation("Predict the sample row", "Book API", ok_json("Probabilities", json_deep_copy(prediction)), NULL, false, false)));
    json_object_set_new(paths, "/predict/test/label", json_pack("{s:o}", "get", operation("Label of the sample row", "Book API", ok_json("Label", json_deep_copy(prediction)), NULL, false, false)));
    json_object_set_new(paths, "/predict", json_pack("{s:o}", "post", operation("Class probabilities for each row", "Book API", ok_json("Probabilities", json_deep_copy(prediction)), json_deep_copy(book_request), false, false)));
    json_object_set_new(paths, "/models/{model}/predict", json_pack("{s:o}", "post", operation("The book's /predict for a named model or pipeline (a parallel pipeline answers {branch: {prediction}})", "Book API", ok_json("Probabilities", json_deep_copy(prediction)), json_pack("{s:s, s:{s:{s:s}}}", "type", "object", "properties", "data", "type", "array"), true, false)));
    json_object_set_new(paths, "/models/{model}/predict/label", json_pack("{s:o}", "post", operation("The book's /predict/label for a named model or pipeline (a parallel pipeline answers {prediction: {proba, label}})", "Book API", ok_json("Labels", json_deep_copy(prediction)), json_pack("{s:s, s:{s:{s:s}}}", "type", "object", "properties", "data", "type", "array"), true, false)));
    json_object_set_new(paths, "/predict/label", json_pack("{s:o}", "post", operation("Label for each row", "Book API", ok_json("Labels", prediction), book_request, false, false)));
    /* the seeds' tutorial: an uploaded image (multipart field `image`) -> its class */
    json_t *upload = json_pack("{s:s, s:{s:{s:s, s:s}}, s:[s]}", "type", "object", "properties", "image", "type",
                               "string", "format", "binary", "required", "image");
    json_t *tutorial = operation("Most probable class of an uploaded JPEG/PNG (?top_k=K adds the K best)", "Book API",
                                 ok_json("{prediction, index, probability[, top_k]}",
                                         json_pack("{s:s, s:{s:{}, s:{s:s}, s:{s:s}, s:{s:s, s:{s:s}}}}", "type",
                                                   "object", "properties", "prediction", "index", "type",
                                                   "integer", "probability", "type", "number", "top_k", "type",
                                                   "array", "items", "type", "object")),
                                 NULL, false, false);
    json_object_set_new(tutorial, "requestBody", json_pack("{s:b, s:{s:{s:o}}}", "required", 1, "content",
                                                           "multipart/form-data", "schema", upload));
    json_object_set_new(paths, "/prediction", json_pack("{s:o}", "post", tutorial));
    json_object_set_new(paths, "/v2", json_pack("{s:o}", "get", operation("KServe V2 server metadata", "KServe V2", ok_json("Server metadata", NULL), NULL, false, false)));
    json_object_set_new(paths, "/v2/health/live", json_pack("{s:o}", "get", operation("KServe V2 liveness", "KServe V2", ok_json("Live", NULL), NULL, false, false)));
    json_object_set_new(paths, "/v2/health/ready", json_pack("{s:o}", "get", operation("KServe V2 readiness: every model loaded and warmed up", "KServe V2", ok_json("Ready", NULL), NULL, false, false)));
    v2_paths_for(paths, "/v2/models/{model}", false);
    v2_paths_for(paths, "/v2/models/{model}/versions/{version}", true);
    json_object_set_new(paths, "/v1/models/{model}", json_pack("{s:o}", "get", operation("TensorFlow Serving model status", "TensorFlow Serving", ok_json("Status", NULL), NULL, true, false)));
    json_object_set_new(paths, "/v1/models/{model}/versions/{version}", json_pack("{s:o}", "get", operation("TensorFlow Serving model status", "TensorFlow Serving", ok_json("Status", NULL), NULL, true, true)));
    json_object_set_new(paths, "/v1/models/{model}:predict", json_pack("{s:o}", "post", operation("TensorFlow Serving predict (instances or inputs)", "TensorFlow Serving", ok_json("Predictions", NULL), json_pack("{s:s}", "$ref", "#/components/schemas/V1PredictRequest"), true, false)));
    json_object_set_new(paths, "/v1/models/{model}/versions/{version}:predict", json_pack("{s:o}", "post", operation("TensorFlow Serving predict (instances or inputs)", "TensorFlow Serving", ok_json("Predictions", NULL), json_pack("{s:s}", "$ref", "#/components/schemas/V1PredictRequest"), true, true)));
    json_object_set_new(paths, "/metrics", json_pack("{s:{s:s, s:[s], s:{s:{s:s, s:{s:{s:{s:s}}}}}}}", "get", "summary", "Prometheus metrics", "tags", "Operations", "responses", "200", "description", "Metrics in the text exposition format", "content", "text/plain", "schema", "type", "string"));
    json_object_set_new(paths, "/openapi.json", json_pack("{s:o}", "get", operation("This document", "Operations", ok_json("OpenAPI 3 document", NULL), NULL, false, false)));
    json_object_set_new(paths, "/docs", json_pack("{s:{s:s, s:[s], s:{s:{s:s, s:{s:{s:{s:s}}}}}}}", "get", "summary", "Interactive documentation (Swagger UI)", "tags", "Operations", "responses", "200", "description", "HTML page", "content", "text/html", "schema", "type", "string"));

    json_object_set_new(paths, "/v2/repository/index", json_pack("{s:o}", "post", operation("Triton model repository index: every model and version with its state and reason (needs --admin-token; Authorization: Bearer TOKEN)", "Model repository", ok_json("Index", NULL), json_pack("{s:s, s:{s:{s:s}}}", "type", "object", "properties", "ready", "type", "boolean"), false, false)));
    json_object_set_new(paths, "/v2/repository/models/{model}/load", json_pack("{s:o}", "post", operation("Load or reload a model from the repository; parameters.config overrides its config.json (needs --admin-token)", "Model repository", ok_json("Loaded", NULL), json_pack("{s:s, s:{s:{s:s}}}", "type", "object", "properties", "parameters", "type", "object"), true, false)));
    json_object_set_new(paths, "/v2/repository/models/{model}/unload", json_pack("{s:o}", "post", operation("Unload a model: its versions finish the requests in flight (needs --admin-token)", "Model repository", ok_json("Unloaded", NULL), json_pack("{s:s, s:{s:{s:s}}}", "type", "object", "properties", "parameters", "type", "object"), true, false)));
    json_object_set_new(paths, "/v2/repository/models/{model}/traffic", json_pack("{s:o}", "post", operation("Change a served model's traffic split, e.g. {\"traffic\": {\"1\": 90, \"2\": 10}} (inferd extension; needs --admin-token)", "Model repository", ok_json("Changed", NULL), json_pack("{s:s, s:{s:{s:s}}}", "type", "object", "properties", "traffic", "type", "object"), true, false)));
    json_object_set_new(paths, "/v2/repository/models/{model}/status", json_pack("{s:o}", "get", operation("Versions, weights, rollbacks, shadow agreement and config of a model (inferd extension; needs --admin-token)", "Model repository", ok_json("Status", NULL), NULL, true, false)));

    /* asynchronous inference (api_jobs.c): POST .../infer with Prefer: respond-async queues a job */
    json_t *job_id = json_pack("[{s:s, s:s, s:b, s:s, s:{s:s, s:s}}]", "name", "id", "in", "path", "required", 1,
                               "description", "a job id: 32 lowercase hexadecimal characters", "schema", "type",
                               "string", "pattern", "^[0-9a-f]{32}$");
    json_t *job_get = operation("A job's result (200, the V2 infer answer), or its status: 202 while queued or "
                                "running, 200 {\"status\": \"failed\", \"error\"}; 404 unknown or expired",
                                "Asynchronous inference", ok_json("Result or final status", NULL), NULL, false, false);
    json_object_set(job_get, "parameters", job_id);
    json_t *job_delete = operation("Cancel a queued job (409 once it runs)", "Asynchronous inference",
                                   ok_json("Cancelled", NULL), NULL, false, false);
    json_object_set(job_delete, "parameters", job_id);
    json_object_set_new(paths, "/v2/jobs/{id}", json_pack("{s:o, s:o}", "get", job_get, "delete", job_delete));
    json_t *book_job = operation("The book's job result with --async-book: {id: {\"prediction\": ...}}, an empty "
                                 "string while pending", "Book API", ok_json("Prediction", NULL), NULL, false, false);
    json_object_set_new(book_job, "parameters", job_id);
    json_object_set_new(paths, "/job/{id}", json_pack("{s:o}", "get", book_job));

    /* each served model's inputs, by name, for V2 clients */
    json_t *models = json_object();
    for (size_t i = 0; i < model_set_count(srv->models); i++) {
        const model_entry *entry = model_set_entry(srv->models, i);
        if (!entry->n_versions)
            continue;
        const model_version *m = entry->versions[entry->n_versions - 1];
        json_t *inputs = json_object();
        for (size_t k = 0; k < ifd_model_input_count(m->model); k++) {
            const ifd_io_info *io = ifd_model_input(m->model, k);
            json_t *shape = json_array();
            for (int d = 0; d < io->type.rank; d++)
                json_array_append_new(shape, json_integer(io->type.dims[d] >= 0 ? io->type.dims[d] : -1));
            json_object_set_new(inputs, io->name,
                                json_pack("{s:s, s:s, s:o, s:o}", "type", "object", "description",
                                          "V2 input tensor", "properties",
                                          json_pack("{s:{s:s, s:[s]}, s:{s:s, s:o}}", "datatype", "type", "string", "enum",
                                                    v2_datatype_name(io->type.dtype), "shape", "type", "array",
                                                    "example", shape),
                                          "x-data-schema", rows_schema(&io->type)));
        }
        char key[200];
        snprintf(key, sizeof(key), "Model_%s_%s_Inputs", m->name, m->version);
        for (char *c = key; *c; c++)
            if (!((*c >= 'a' && *c <= 'z') || (*c >= 'A' && *c <= 'Z') || (*c >= '0' && *c <= '9') || *c == '_' || *c == '.' || *c == '-'))
                *c = '_';
        json_object_set_new(models, key, json_pack("{s:s, s:o}", "type", "object", "properties", inputs));
    }

    json_t *schemas = json_pack(
        "{s:{s:s, s:[s], s:{s:{s:s}}}, s:{s:s, s:{s:{s:s}, s:{s:s, s:{s:s}}, s:{s:s}, s:{s:s}, s:{s:s}}},"
        " s:{s:s, s:[s], s:{s:{s:s}, s:{s:s}, s:{s:s, s:{s:s}}}},"
        " s:{s:s, s:{s:{s:s}, s:{s:s}, s:{s:s}, s:{s:s, s:{s:s}}}}, s:{s:s, s:{s:{s:s}, s:{}, s:{}}}}",
        "Error", "type", "object", "required", "error", "properties", "error", "type", "string",
        "V2ModelMetadata", "type", "object", "properties", "name", "type", "string", "versions", "type", "array",
        "items", "type", "string", "platform", "type", "string", "inputs", "type", "array", "outputs", "type",
        "array",
        "V2InferRequest", "type", "object", "required", "inputs", "properties", "id", "type", "string",
        "parameters", "type", "object", "inputs", "type", "array", "items", "$ref",
        "#/components/schemas/V2Tensor",
        "V2InferResponse", "type", "object", "properties", "model_name", "type", "string", "model_version",
        "type", "string", "id", "type", "string", "outputs", "type", "array", "items", "$ref",
        "#/components/schemas/V2Tensor",
        "V1PredictRequest", "type", "object", "properties", "signature_name", "type", "string", "instances",
        "inputs");
    json_object_set_new(schemas, "V2Tensor",
                        json_pack("{s:s, s:[s,s,s], s:{s:{s:s}, s:{s:s, s:{s:s}}, s:{s:s}, s:{s:s}, s:{}}}", "type",
                                  "object", "required", "name", "shape", "datatype", "properties", "name",
                                  "type", "string", "shape", "type", "array", "items", "type", "integer",
                                  "datatype", "type", "string", "parameters", "type", "object", "data"));
    json_object_update(schemas, models);
    json_decref(models);

    return json_pack("{s:s, s:{s:s, s:s, s:s}, s:o, s:{s:o}}", "openapi", "3.0.3", "info", "title",
                     "inferd", "version", IFD_VERSION_STRING, "description",
                     "ONNX model server: the book's web single pattern API, KServe V2 and TensorFlow "
                     "Serving REST.",
                     "paths", paths, "components", "schemas", schemas);
}

void openapi_json(http_request *req, const route_params *p, int worker)
{
    (void)p;
    (void)worker;
    model_set_read_lock(req->server->models);
    json_t *doc = build_document(req->server);
    model_set_read_unlock(req->server->models);
    if (!doc) {
        http_reply_error(req, 500, "cannot build the OpenAPI document");
        return;
    }
    http_reply_json(req, 200, doc);
}

static const char docs_page[] =
    "<!doctype html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n"
    "<title>inferd API</title>\n<link rel=\"stylesheet\" href=\"/docs/swagger-ui.css\">\n</head>\n"
    "<body>\n<div id=\"swagger-ui\"></div>\n<script src=\"/docs/swagger-ui-bundle.js\"></script>\n"
    "<script>window.ui = SwaggerUIBundle({url: '/openapi.json', dom_id: '#swagger-ui'});</script>\n"
    "</body>\n</html>\n";

/* Served when the binary was built without Swagger UI and none is installed beside it. */
static const char docs_missing_page[] =
    "<!doctype html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n"
    "<title>inferd API</title>\n</head>\n<body>\n<h1>inferd API</h1>\n"
    "<p>The interactive documentation needs Swagger UI, which this inferd was built without. "
    "Install npm's <code>swagger-ui-dist</code> (<code>ONNXRUNTIME_NODE_INSTALL=skip npm ci</code> "
    "at the root of inferd's source tree; <code>scripts/demo.sh</code> does it) and rebuild: the "
    "build compiles <code>swagger-ui.css</code> and <code>swagger-ui-bundle.js</code> into the "
    "binary.</p>\n<p>The API description itself is at <a href=\"/openapi.json\">/openapi.json"
    "</a>.</p>\n</body>\n</html>\n";

static const struct {
    const char *name, *content_type;
} docs_assets[] = {
    {"swagger-ui.css", "text/css; charset=utf-8"},
    {"swagger-ui-bundle.js", "text/javascript; charset=utf-8"},
};

static char docs_path[PATH_MAX];
static pthread_once_t docs_once = PTHREAD_ONCE_INIT;

/* Swagger UI's files: <exe dir>/share/inferd/docs in a build tree, or
 * <exe dir>/../share/inferd/docs in an installed layout (bin/, share/). */
static void find_docs_dir(void)
{
    char exe[PATH_MAX];
    ssize_t n = readlink("/proc/self/exe", exe, sizeof(exe) - 1);
    if (n <= 0)
        return;
    exe[n] = '\0';
    char *slash = strrchr(exe, '/');
    if (!slash)
        return;
    *slash = '\0';
    static const char *const layouts[] = {"%s/share/inferd/docs", "%s/../share/inferd/docs"};
    for (size_t i = 0; i < sizeof(layouts) / sizeof(layouts[0]); i++) {
        char dir[PATH_MAX], probe[PATH_MAX + 32];
        struct stat st;
        if (snprintf(dir, sizeof(dir), layouts[i], exe) >= (int)sizeof(dir))
            continue;
        snprintf(probe, sizeof(probe), "%s/%s", dir, docs_assets[1].name);
        if (stat(probe, &st) == 0 && S_ISREG(st.st_mode)) {
            snprintf(docs_path, sizeof(docs_path), "%s", dir);
            return;
        }
    }
}

static const char *docs_dir(void)
{
    pthread_once(&docs_once, find_docs_dir);
    return docs_path[0] ? docs_path : NULL;
}

/* One of Swagger UI's files, by its name in docs_assets (nothing else is
 * served from the directory, so no path from a request reaches the disk). */
static void docs_asset(http_request *req, const char *name)
{
    const char *embedded;
    size_t embedded_size;
    for (size_t i = 0; i < sizeof(docs_assets) / sizeof(docs_assets[0]); i++) {
        if (strcmp(name, docs_assets[i].name) == 0 && docs_asset_embedded(name, &embedded, &embedded_size)) {
            http_reply_raw(req, 200, docs_assets[i].content_type, embedded, embedded_size);
            return;
        }
    }
    const char *dir = docs_assets_embedded() ? NULL : docs_dir();
    for (size_t i = 0; dir && i < sizeof(docs_assets) / sizeof(docs_assets[0]); i++) {
        if (strcmp(name, docs_assets[i].name) != 0)
            continue;
        char path[PATH_MAX + 64];
        snprintf(path, sizeof(path), "%s/%s", dir, docs_assets[i].name);
        FILE *f = fopen(path, "rb");
        struct stat st;
        if (!f || fstat(fileno(f), &st) != 0 || !S_ISREG(st.st_mode)) {
            if (f)
                fclose(f);
            http_reply_error(req, 500, "cannot read %s: %s", path, strerror(errno));
            return;
        }
        size_t size = (size_t)st.st_size;
        char *data = malloc(size ? size : 1);
        size_t got = data ? fread(data, 1, size, f) : 0;
        fclose(f);
        if (!data || got != size) {
            free(data);
            http_reply_error(req, 500, "cannot read %s", path);
            return;
        }
        http_reply_buffer(req, 200, docs_assets[i].content_type, data, size);
        return;
    }
    http_reply_error(req, 404, "no such documentation file%s",
                     dir || docs_assets_embedded() ? "" : " (this inferd has no Swagger UI: see /docs)");
}

/* GET /docs, and the Swagger UI files the page loads from /docs/. */
void openapi_docs(http_request *req, const route_params *p, int worker)
{
    (void)p;
    (void)worker;
    if (strncmp(req->path, "/docs/", 6) == 0) {
        docs_asset(req, req->path + 6);
        return;
    }
    if (docs_assets_embedded() || docs_dir())
        http_reply_raw(req, 200, "text/html; charset=utf-8", docs_page, sizeof(docs_page) - 1);
    else
        http_reply_raw(req, 200, "text/html; charset=utf-8", docs_missing_page,
                       sizeof(docs_missing_page) - 1);
}
