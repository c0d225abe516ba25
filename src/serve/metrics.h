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
/* The same counters as JSON for the dashboard: per model version the
 * requests by status code and the whole-request latency histogram
 * (cumulative since start: a client computes rates and quantiles from two
 * readings), and the last answered errors with their messages. */
json_t *metrics_stats(metrics *m);
/* The text exposition format (version 0.0.4). malloc'd. */
char *metrics_render(metrics *m, const struct server *srv, size_t *len);

#endif /* INFERD_SERVE_METRICS_H */
