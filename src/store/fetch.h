/*
 * fetch.h — the model-load pattern's download layer: fetch a model from
 * http://, https://, file:// or s3:// (AWS Signature V4) into a file, with
 * bounded retries and exponential backoff, resumption with a Range request
 * when the server honours it (a fresh start when it does not), and a sha256
 * computed while the bytes stream in. store_pull() puts that download into
 * the store: no network at all when an expected sha256 is already stored,
 * otherwise download into <store>/.tmp, verify, and store_import_file().
 *
 * S3: s3://BUCKET/KEY, credentials from AWS_ACCESS_KEY_ID,
 * AWS_SECRET_ACCESS_KEY and AWS_SESSION_TOKEN, the region from AWS_REGION or
 * AWS_DEFAULT_REGION (default us-east-1), and an S3-compatible endpoint from
 * AWS_ENDPOINT_URL_S3 or AWS_ENDPOINT_URL (addressed path-style:
 * ENDPOINT/BUCKET/KEY); without one, https://BUCKET.s3.REGION.amazonaws.com.
 *
 * Library code prints nothing by itself: the progress bar goes to the stream
 * the caller passes (the CLI passes stderr only when it is a terminal) and
 * retry notices go to the caller's callback.
 *
 * Thread safety: functions may run on several threads at once; each call
 * owns its transfer.
 */
#ifndef INFERD_STORE_FETCH_H
#define INFERD_STORE_FETCH_H

#include <stdbool.h>
#include <stdio.h>

#include "store.h"

typedef struct fetch_options {
    const char *expected_sha256; /* 64 hex digits, or NULL for no check */
    int max_attempts;            /* <= 0: 5 (the first try and four retries) */
    double backoff_seconds;      /* first retry delay, doubled each time (<= 0: 0.5, at most 30) */
    FILE *progress;              /* draw a progress bar here, or NULL for quiet */
    void (*notice)(void *context, const char *message); /* retries and restarts, or NULL */
    void *notice_context;
} fetch_options;

typedef struct fetch_result {
    char sha256[65];          /* of the downloaded file, lowercase hex */
    unsigned long long bytes; /* size of the downloaded file */
    int attempts;             /* transfers started (1 when nothing failed) */
    int resumed;              /* retries that continued with a Range request */
    int restarted;            /* retries that started over (no range support) */
} fetch_result;

/* Whether uri has a scheme fetch supports and a well-formed rest. */
bool fetch_check_uri(const char *uri, char *err, size_t err_size);

/* The uri without user:password@ and without a query string (presigned URLs
 * carry their signature there), fit for logs and manifests. */
void fetch_redact_uri(const char *uri, char *out, size_t out_size);

/* A valid 64-digit hex sha256 into lowercase hex (out has 65 bytes). */
bool fetch_parse_sha256(const char *text, char out[65]);

/* Download uri into path (created or truncated; mode 0600). On failure the
 * file at path may hold a partial download: the caller removes it. */
bool fetch_download(const char *uri, const char *path, const fetch_options *options,
                    fetch_result *result, char *err, size_t err_size);

typedef struct pull_result {
    model_ref ref; /* the stored model that now holds the download */
    char sha256[65];
    bool cache_hit;      /* an expected sha256 was already stored: no download */
    bool already_stored; /* downloaded, but that name already held these bytes */
    fetch_result fetch;  /* zeroed on a cache hit */
} pull_result;

/* Pull uri into the store as import->name (import->version, labels, task,
 * ... as for store_import_file; import->expected_sha256 is the --sha256).
 * The manifest's source is the redacted uri unless import->source is set.
 * Nothing is left in the store or its .tmp folder when anything fails. */
bool store_pull(store *s, const char *uri, const import_options *import,
                const fetch_options *options, pull_result *result, char *err, size_t err_size);

/* A store name derived from a URI's last path segment ("…/Iris_SVC.onnx" ->
 * "iris_svc"); "model" when nothing usable is left. */
void fetch_name_from_uri(const char *uri, char out[STORE_NAME_MAX + 1]);

#endif /* INFERD_STORE_FETCH_H */
