/*
 * routes.h — the route table of `inferd serve`: which handler answers a
 * method and path, whether it computes (and so runs on a worker), and the
 * model name/version the path names.
 */
#ifndef INFERD_SERVE_ROUTES_H
#define INFERD_SERVE_ROUTES_H

#include <stdbool.h>

#include "http.h"

typedef struct route_params {
    char model[128];
    char version[32];
    bool has_version;
} route_params;

typedef void (*route_fn)(http_request *req, const route_params *params, int worker);

typedef struct route_match {
    route_fn fn;
    bool compute;   /* runs on a worker thread */
    bool admin;     /* a repository call: runs on the admin thread (compute is true too) */
    bool has_body;  /* a POST whose body is JSON (or V2 binary) */
    route_params params;
} route_match;

/* Find the handler. On no match, fill the 404/405 answer and return false. */
bool routes_match(http_request *req, route_match *out);

/* Handlers, by API (api_book.c, api_v2.c, api_v1.c, metrics.c, openapi.c). */
void book_health(http_request *req, const route_params *p, int worker);
void book_metadata(http_request *req, const route_params *p, int worker);
void book_label(http_request *req, const route_params *p, int worker);
void book_predict(http_request *req, const route_params *p, int worker);
void book_predict_label(http_request *req, const route_params *p, int worker);
void book_predict_test(http_request *req, const route_params *p, int worker);
void book_predict_test_label(http_request *req, const route_params *p, int worker);
void book_prediction(http_request *req, const route_params *p, int worker); /* the tutorial's image route */

void v2_server_metadata(http_request *req, const route_params *p, int worker);
void v2_health_live(http_request *req, const route_params *p, int worker);
void v2_health_ready(http_request *req, const route_params *p, int worker);
void v2_inventory(http_request *req, const route_params *p, int worker); /* inventory.c */
void v2_model_metadata(http_request *req, const route_params *p, int worker);
void v2_model_ready(http_request *req, const route_params *p, int worker);
void v2_infer(http_request *req, const route_params *p, int worker);

/* Asynchronous inference (api_jobs.c). */
void v2_job_get(http_request *req, const route_params *p, int worker);
void v2_job_delete(http_request *req, const route_params *p, int worker);
void book_job_get(http_request *req, const route_params *p, int worker);

void v1_model_status(http_request *req, const route_params *p, int worker);
void v1_predict(http_request *req, const route_params *p, int worker);

/* The repository API (api_repository.c): Triton's model-repository
 * extension plus inferd's traffic and status calls, behind --admin-token. */
void repository_index(http_request *req, const route_params *p, int worker);
void repository_load(http_request *req, const route_params *p, int worker);
void repository_unload(http_request *req, const route_params *p, int worker);
void repository_traffic(http_request *req, const route_params *p, int worker);
void repository_status(http_request *req, const route_params *p, int worker);

void metrics_handler(http_request *req, const route_params *p, int worker);
void openapi_json(http_request *req, const route_params *p, int worker);
void openapi_docs(http_request *req, const route_params *p, int worker);

#endif /* INFERD_SERVE_ROUTES_H */
