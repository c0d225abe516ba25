/*
 * metrics.h — Prometheus metrics of `inferd serve`: requests by model,
 * version and status code; latency histograms of queueing, compute and the
 * whole request; requests in flight; model load seconds; build info.
 * Thread safety: observe from any thread; rendering takes the same lock.
 */
#ifndef INFERD_SERVE_METRICS_H
#define INFERD_SERVE_METRICS_H

#include "http.h"

struct server;
typedef struct metrics metrics;

metrics *metrics_create(void);
void metrics_free(metrics *m);
void metrics_observe_request(metrics *m, const http_request *req, int status, double end);
/* A request of another protocol than HTTP (gRPC), counted in the same
 * series with its own protocol label. */
typedef struct metrics_call {
    const char *protocol;              /* a static name: "grpc" */
    const char *method, *path;         /* for the dashboard's recent errors */
    const char *model, *version;       /* "" when not about a model */
    const char *error;                 /* the error's message, or NULL */
    int status;                        /* the HTTP status REST would answer */
    double t_start, t_queued, t_compute_start, t_compute_end, end;
} metrics_call;
void metrics_observe_call(metrics *m, const metrics_call *call);
/* The same counters as JSON for the dashboard: per model version the
 * requests by status code and the whole-request latency histogram
 * (cumulative since start: a client computes rates and quantiles from two
 * readings), and the last answered errors with their messages. */
json_t *metrics_stats(metrics *m);
/* The text exposition format (version 0.0.4). malloc'd. */
char *metrics_render(metrics *m, const struct server *srv, size_t *len);

#endif /* INFERD_SERVE_METRICS_H */
