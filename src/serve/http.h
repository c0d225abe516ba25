/*
 * http.h — one HTTP request as the handlers see it, and the answers they
 * give. Connection handling (libmicrohttpd), limits, the hand-off to
 * workers, request ids and access logs live in server.c; handlers only read
 * the request and fill the response.
 */
#ifndef INFERD_SERVE_HTTP_H
#define INFERD_SERVE_HTTP_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>

struct MHD_Connection;
struct server;
struct model_version;
struct pipeline;

typedef struct http_request {
    struct MHD_Connection *connection;
    struct server *server;
    char method[16];
    char *path;              /* decoded path without the query (path_inline when it fits) */
    char path_inline[192];
    char request_id[72];
    char *body;
    size_t body_len, body_cap;
    bool body_too_large;
    /* response */
    int status;
    char *response;
    size_t response_len;
    const char *content_type;
    size_t inference_header_length; /* binary V2 answers: JSON header size */
    const char *allow;              /* for 405 answers */
    const char *authenticate;       /* WWW-Authenticate of 401 answers */
    char location[64];              /* Location of 202 answers (a queued job) and redirects, or "" */
    unsigned retry_after;           /* Retry-After seconds of 429/503 answers, or 0 */
    bool page_headers;              /* the dashboard's: Content-Security-Policy and friends (ui.c) */
    /* accounting */
    double t_start, t_queued, t_compute_start, t_compute_end;
    char model_name[128], model_version[32];
    struct model_version *answered_by; /* held until the answer is sent (served.h) */
    struct pipeline *pipeline;          /* likewise, when a pipeline answers */
    bool mode_field;                    /* the book's A/B "mode" field is asked for */
    bool suspended, answered;
    bool deferred;           /* the handler queued the request (a batch): http_finish_deferred answers */
    int defer_refs;          /* atomic: the worker's and the completion's share of a deferred request */
    bool counted;            /* metrics observed (when the response was queued) */
} http_request;

/* Header value or NULL. */
const char *http_header(const http_request *req, const char *name);
/* A query-string argument or NULL. */
const char *http_query(const http_request *req, const char *name);
/* The client's address as text ("127.0.0.1:53211"), for audit logs. */
const char *http_client_address(const http_request *req, char *buf, size_t size);

/* A handler running on a worker may give the worker back before its
 * answer exists: it calls http_defer before it queues the request (on a
 * batcher), and the completion (on another thread) fills the answer and
 * calls http_finish_deferred once; so does the handler itself instead when
 * the queue refused the request. The connection is resumed only when both
 * the worker has left the handler and the answer is there, so neither
 * side ever touches a request that was already sent and freed. */
void http_defer(http_request *req);
void http_finish_deferred(http_request *req);

/* Answers. These take ownership of nothing they are given. */
void http_reply_json(http_request *req, int status, json_t *body); /* steals body */
void http_reply_error(http_request *req, int status, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
void http_reply_raw(http_request *req, int status, const char *content_type, const char *data,
                    size_t len);
/* Take over a malloc'd buffer as the response body. */
void http_reply_buffer(http_request *req, int status, const char *content_type, char *data,
                       size_t len);

#endif /* INFERD_SERVE_HTTP_H */
