/*
 * remote.h — a pipeline step answered by another server over KServe V2
 * REST (POST {url}/v2/models/{model}[/versions/{v}]/infer), with libcurl:
 * connections are kept alive and reused (a small stack of idle easy
 * handles per endpoint), each attempt has the step's timeout_ms, failed
 * attempts are retried with doubling backoff (inference is idempotent),
 * and a circuit breaker stops calling an endpoint after `failures`
 * consecutive failures, letting one probe through after reset_ms
 * (half-open) and closing again when it succeeds. X-Request-ID and a W3C
 * traceparent (the caller's trace id, a new span id) go with every call.
 * Thread safety: every function may be called from any thread.
 */
#ifndef INFERD_PIPELINE_REMOTE_H
#define INFERD_PIPELINE_REMOTE_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>

#include "inferd/inferd.h"

typedef struct remote_endpoint remote_endpoint;

/* Call once before any thread uses an endpoint. */
bool remote_global_init(void);

/* From a step's JSON: url, model, version, timeout_ms, retries,
 * backoff_ms, circuit_breaker {failures, reset_ms}. NULL with err naming
 * the field. */
remote_endpoint *remote_endpoint_new(const json_t *spec, char *err, size_t err_size);
void remote_endpoint_free(remote_endpoint *r);
const char *remote_endpoint_url(const remote_endpoint *r);
const char *remote_endpoint_model(const remote_endpoint *r);

/* Read the remote model's metadata (GET .../v2/models/{model}); false with
 * err when it cannot be reached or answers something else. On success
 * *metadata gets a new reference. */
bool remote_fetch_metadata(remote_endpoint *r, json_t **metadata, char *err, size_t err_size);
/* The metadata read once and kept (read again while it could not be):
 * a new reference, or NULL with err. */
json_t *remote_metadata(remote_endpoint *r, char *err, size_t err_size);

typedef struct remote_call {
    const char *request_id;
    const char *trace_id;      /* 32 hex digits */
    const char *const *names;  /* the inputs sent */
    ifd_value *const *values;
    size_t n_inputs;
} remote_call;

/* One inference. Returns 200 with *outputs / *output_names (n_outputs,
 * owned by the caller), or 502/504 with err (without the step's name). */
int remote_infer(remote_endpoint *r, const remote_call *call, char ***output_names, ifd_value ***outputs,
                 size_t *n_outputs, char *err, size_t err_size);

#endif /* INFERD_PIPELINE_REMOTE_H */
