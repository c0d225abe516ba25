/*
 * api_jobs.h — the HTTP side of asynchronous inference: queueing a request
 * that asked for it (V2's Prefer: respond-async, the book's POST /predict
 * with --async-book) and answering a job's status and result. The queue is
 * src/jobs; running a job is src/infer/job_exec.c, which the server's job
 * workers and `inferd worker` share.
 */
#ifndef INFERD_SERVE_API_JOBS_H
#define INFERD_SERVE_API_JOBS_H

#include <stdbool.h>
#include <stdio.h>

#include "http.h"
#include "job_exec.h"

struct server;

/* The request asks to be answered asynchronously (Prefer: respond-async). */
bool async_requested(const http_request *req);

/* Check the request's body against m's signature (a 400 when it fails:
 * nothing is queued), then queue it: 202 with the job id, 429 when the queue
 * is full, 503 when the queue cannot be reached. */
void async_submit(http_request *req, model_version *m, job_protocol protocol, int worker);

/* The book's sync-async pattern: answer the default model m now and queue
 * the same body for the server's async_book_model; one answer carries both,
 * {"prediction": <m's>, "job_id": <the slow model's job>}. */
void async_submit_with_answer(http_request *req, model_version *m, int worker);

/* The job metrics: inferd_jobs_total{state}, the depth gauge and the
 * queue-wait histogram. Nothing when the server has no queue. */
void async_render_metrics(FILE *out, const struct server *srv);

#endif /* INFERD_SERVE_API_JOBS_H */
