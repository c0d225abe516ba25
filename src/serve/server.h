/*
 * server.h — `inferd serve`: the web single pattern. One process holds its
 * models and answers the book's REST API, KServe V2 and TensorFlow Serving's
 * REST API over one HTTP port (libmicrohttpd), with inference on a pool of
 * worker threads, Prometheus metrics and TEXT/JSON logs.
 */
#ifndef INFERD_SERVE_SERVER_H
#define INFERD_SERVE_SERVER_H

#include <stdbool.h>
#include <stddef.h>

#include "model_set.h"
#include "workers.h"

typedef struct serve_options {
    const char *host;            /* "127.0.0.1" unless asked otherwise */
    int port;
    int workers;                 /* inference threads */
    int io_threads;              /* libmicrohttpd polling threads */
    const char *admin_token;     /* NULL or "": the repository API is off */
    size_t max_body;             /* bytes */
    size_t max_header;           /* bytes of request line + headers */
    unsigned connection_limit;
    unsigned request_timeout;    /* seconds a request may take to arrive */
    double grace;                /* seconds to finish in-flight requests on SIGTERM */
    const char *book_model;      /* what the book's root routes serve (a model or pipeline); NULL: the default model */
    int grpc_port;               /* KServe V2 over gRPC (src/serve/grpc); -1: off */
    int grpc_threads;            /* its completion-queue threads */
    int grpc_first_session;      /* session of its first thread (fast models run there); -1: none */
    const char *grpc_tls_cert;   /* PEM certificate chain and key: gRPC over TLS; NULL: plaintext (h2c) */
    const char *grpc_tls_key;
    const char *grpc_tls_client_ca; /* PEM CAs: clients must present a certificate they signed; NULL: none asked */
} serve_options;

typedef struct route route;

typedef struct server {
    serve_options options;
    model_set *models;
    struct pipeline_set *pipelines; /* DIR/<pipeline>/pipeline.json of the repository, or NULL */
    const char *admin_token;     /* NULL: the repository API is off */
    workers *admin_pool;         /* loads and unloads, off the inference workers */
    workers *pool;
    double started;              /* CLOCK_MONOTONIC seconds */
    double started_wall;         /* Unix time */
    struct metrics *metrics;
    volatile int in_flight;      /* requests not completed (shutdown waits for 0) */
    volatile int unanswered;     /* requests whose response is not queued yet */
    volatile int deferred;       /* requests waiting in a batch queue (http_defer) */
    volatile int deferred_unsent;/* deferred requests whose answer is not sent yet */
    volatile bool stopping;
    /* asynchronous inference (api_jobs.c): NULL when the server has no queue */
    struct jobs_queue *jobs;
    bool async_book;             /* the book's POST /predict queues a job, GET /job/{id} */
    const char *async_book_model;/* the book's sync-async pattern: POST /predict answers the
                                    default model at once and queues this (slow) model */
    struct grpc_frontend *grpc;  /* the gRPC listener, or NULL */
} server;

/* Serve until SIGTERM/SIGINT, then stop accepting, finish in-flight requests
 * (at most options->grace seconds) and return 0. Non-zero if it cannot start. */
int server_run(server *srv);

double server_now(void);

/* A request's id: the client's (given, when printable ASCII and it fits),
 * else a new unique one. Every protocol's requests share one sequence. */
void server_request_id(const char *given, char *id, size_t size);

#endif /* INFERD_SERVE_SERVER_H */
