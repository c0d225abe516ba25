/*
 * api_repository.c — the model repository API: Triton's model-repository
 * extension, so that Triton's clients drive inferd unchanged, plus two
 * inferd calls for the release patterns:
 *
 *   POST /v2/repository/index                    [{"name", "version", "state", "reason"}]
 *   POST /v2/repository/models/{m}/load          {"parameters": {"config": "<config.json text>"}}
 *   POST /v2/repository/models/{m}/unload        {"parameters": {"unload_dependents": false}}
 *   POST /v2/repository/models/{m}/traffic       {"traffic": {"1": 90, "2": 10}}  (inferd)
 *   GET  /v2/repository/models/{m}/status, /v2/repository/status                  (inferd)
 *
 * The whole surface is off unless the server was given an admin token; then
 * every call needs "Authorization: Bearer TOKEN" (401 without, 403 with a
 * wrong one; compared in constant time) and is logged with the caller's
 * address. A request names a model, never a file: Triton's "file:"
 * parameters (model files sent in the request) are refused.
 */
#include <openssl/crypto.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "log.h"
#include "routes.h"
#include "pipeline_set.h"
#include "server.h"

static bool authorized(http_request *req)
{
    const char *token = req->server->admin_token;
    if (!token || !*token) {
        http_reply_error(req, 404,
                         "the repository API is off: start inferd serve with --admin-token TOKEN "
                         "(or INFERD_ADMIN_TOKEN)");
        return false;
    }
    const char *given = http_header(req, "Authorization");
    char client[80];
    http_client_address(req, client, sizeof(client));
    if (!given || strncasecmp(given, "Bearer ", 7) != 0) {
        req->authenticate = "Bearer realm=\"inferd repository\"";
        http_reply_error(req, 401,
                         "the repository API needs the header 'Authorization: Bearer TOKEN'");
        log_event(LOG_WARNING, "admin call refused: no token", "path", req->path, "client", client,
                  NULL);
        return false;
    }
    given += 7;
    size_t want = strlen(token), got = strlen(given);
    /* compare as many bytes as the token has whatever was sent, so the time
     * taken tells nothing of how much of it matched */
    char padded[512] = {0};
    memcpy(padded, given, got < sizeof(padded) ? got : sizeof(padded) - 1);
    bool same = want < sizeof(padded) && got == want && CRYPTO_memcmp(padded, token, want) == 0;
    if (!same) {
        http_reply_error(req, 403, "the admin token is wrong");
        log_event(LOG_WARNING, "admin call refused: wrong token", "path", req->path, "client",
                  client, NULL);
        return false;
    }
    return true;
}

static void audit(http_request *req, const char *call, const char *model, const char *result)
{
    char client[80];
    http_client_address(req, client, sizeof(client));
    log_event(LOG_INFO, "admin call", "call", call, "model", model ? model : "", "client", client,
              "result", result, NULL);
}

/* The body as a JSON object; an empty body is an empty object (Triton's
 * clients send none). NULL after answering 400. */
static json_t *body_object(http_request *req)
{
    size_t start = 0;
    while (start < req->body_len && (req->body[start] == ' ' || req->body[start] == '\n' ||
                                     req->body[start] == '\r' || req->body[start] == '\t'))
        start++;
    if (start == req->body_len)
        return json_object();
    json_error_t je;
    json_t *body = json_loadb(req->body, req->body_len, JSON_REJECT_DUPLICATES, &je);
    if (!body) {
        http_reply_error(req, 400, "malformed JSON at line %d column %d: %s", je.line, je.column,
                         je.text);
        return NULL;
    }
    if (!json_is_object(body)) {
        json_decref(body);
        http_reply_error(req, 400, "the body must be a JSON object");
        return NULL;
    }
    return body;
}

/* An authorized call's body, or NULL after answering 401/403/404/400. */
static json_t *admin_request(http_request *req)
{
    return authorized(req) ? body_object(req) : NULL;
}

static int status_code(admin_result r)
{
    switch (r) {
    case ADMIN_OK: return 200;
    case ADMIN_NOT_FOUND: return 404;
    case ADMIN_CONFLICT: return 409;
    case ADMIN_BAD_REQUEST:
    case ADMIN_NOT_ALLOWED: return 400;
    }
    return 400;
}

static void answer(http_request *req, const char *call, const char *model, admin_result r,
                   const char *err)
{
    audit(req, call, model, r == ADMIN_OK ? "ok" : err);
    if (r == ADMIN_OK)
        http_reply_raw(req, 200, "application/json", "", 0); /* Triton answers an empty 200 */
    else
        http_reply_error(req, status_code(r), "%s", err);
}

void repository_index(http_request *req, const route_params *p, int worker)
{
    (void)p;
    (void)worker;
    json_t *body = admin_request(req);
    if (!body)
        return;
    json_t *ready = json_object_get(body, "ready");
    if (ready && !json_is_boolean(ready)) {
        json_decref(body);
        http_reply_error(req, 400, "\"ready\" must be true or false");
        return;
    }
    json_t *index = model_set_index(req->server->models, json_is_true(ready));
    pipeline_set_index(req->server->pipelines, index, json_is_true(ready));
    json_decref(body);
    audit(req, "index", NULL, "ok");
    http_reply_json(req, 200, index);
}

void repository_load(http_request *req, const route_params *p, int worker)
{
    (void)worker;
    json_t *body = admin_request(req);
    if (!body)
        return;
    json_t *params = json_object_get(body, "parameters");
    char *config = NULL;
    const char *key;
    json_t *value;
    if (params && !json_is_object(params)) {
        http_reply_error(req, 400, "\"parameters\" must be an object");
        goto done;
    }
    json_object_foreach(params, key, value)
    {
        if (strncmp(key, "file:", 5) == 0) {
            http_reply_error(req, 400,
                             "parameter '%s': model files cannot be sent in a load request; "
                             "put them in the repository and load the model by name",
                             key);
            goto done;
        }
        if (strcmp(key, "config") != 0) {
            http_reply_error(req, 400, "unknown load parameter '%s' (known: config)", key);
            goto done;
        }
        if (json_is_string(value))
            config = strdup(json_string_value(value));
        else if (json_is_object(value))
            config = json_dumps(value, JSON_COMPACT);
        else {
            http_reply_error(req, 400, "parameter 'config' must be the text of a config.json");
            goto done;
        }
    }
    char err[2048];
    admin_result r;
    if (pipeline_set_claims(req->server->pipelines, p->model)) {
        if (config) {
            http_reply_error(req, 400, "'%s' is a pipeline: it has no config.json to override", p->model);
            goto done;
        }
        r = pipeline_set_load(req->server->pipelines, p->model, err, sizeof(err));
    } else {
        r = model_set_load(req->server->models, p->model, config, err, sizeof(err));
    }
    answer(req, "load", p->model, r, err);
done:
    free(config);
    json_decref(body);
}

void repository_unload(http_request *req, const route_params *p, int worker)
{
    (void)worker;
    json_t *body = admin_request(req);
    if (!body)
        return;
    json_t *params = json_object_get(body, "parameters");
    json_t *dependents = json_object_get(params, "unload_dependents");
    if ((params && !json_is_object(params)) || (dependents && !json_is_boolean(dependents))) {
        json_decref(body);
        http_reply_error(req, 400, "\"parameters\" must be {\"unload_dependents\": true|false}");
        return;
    }
    json_decref(body);
    char err[1024];
    admin_result r = pipeline_set_has(req->server->pipelines, p->model)
                         ? pipeline_set_unload(req->server->pipelines, p->model, err, sizeof(err))
                         : model_set_unload(req->server->models, p->model, err, sizeof(err));
    answer(req, "unload", p->model, r, err);
}

void repository_traffic(http_request *req, const route_params *p, int worker)
{
    (void)worker;
    json_t *body = admin_request(req);
    if (!body)
        return;
    json_t *traffic = json_object_get(body, "traffic");
    char err[1024];
    if (!traffic) {
        json_decref(body);
        http_reply_error(req, 400,
                         "the body must be {\"traffic\": {\"<version>\": <percent>, ...}}");
        return;
    }
    admin_result r =
        model_set_set_traffic(req->server->models, p->model, traffic, err, sizeof(err));
    json_decref(body);
    if (r == ADMIN_OK) {
        audit(req, "traffic", p->model, "ok");
        http_reply_json(req, 200, model_set_status(req->server->models, p->model));
    } else {
        answer(req, "traffic", p->model, r, err);
    }
}

void repository_status(http_request *req, const route_params *p, int worker)
{
    (void)worker;
    if (!authorized(req))
        return;
    const char *name = p && p->model[0] ? p->model : NULL;
    json_t *status = model_set_status(req->server->models, name);
    if (!status) {
        http_reply_error(req, 404, "unknown model '%s'", name);
        return;
    }
    if (!name) {
        json_t *all =
            json_pack("{s:s, s:o}", "model_control",
                      model_control_name(model_set_control(req->server->models)), "models", status);
        status = all;
    }
    http_reply_json(req, 200, status);
}
