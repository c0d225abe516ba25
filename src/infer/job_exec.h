/*
 * job_exec.h — running one queued inference job: the job queue's run
 * callback (jobs.h) shared by the server's own job workers and `inferd
 * worker`. It acquires the version the job names from the model set,
 * decodes, runs and encodes through infer.h — the code the synchronous
 * routes run — and gives back the answer's bytes as the job's result.
 *
 * A job's payload is the request body; its content type says which
 * protocol it speaks:
 *   application/json                            V2 JSON
 *   application/octet-stream; header-length=N   V2 with binary tensors (N =
 *                                               the Inference-Header-Content-Length)
 *   application/vnd.inferd.book+json            the book's POST /predict
 * A V2 result is stored with "application/json" or
 * "application/octet-stream; header-length=N", so GET /v2/jobs/{id} can
 * answer exactly what the synchronous route would have.
 *
 * Failures: a 503 of the engine (model not ready, out of memory) is retried;
 * anything else — the job's model or named version is no longer loaded, a
 * body the model refuses — fails the job at once with the reason.
 */
#ifndef INFERD_INFER_JOB_EXEC_H
#define INFERD_INFER_JOB_EXEC_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>

#include "jobs.h"
#include "model_set.h"

#define JOB_TYPE_V2 "application/json"
#define JOB_TYPE_V2_BINARY "application/octet-stream"
#define JOB_TYPE_BOOK "application/vnd.inferd.book+json"

typedef enum job_protocol { JOB_PROTOCOL_V2, JOB_PROTOCOL_BOOK } job_protocol;

/* The sessions a job runner uses: runner thread k takes session
 * first_session + k (claimed on its first job), so job workers never share
 * a session with each other or with the HTTP workers. */
typedef struct job_exec {
    model_set *set;
    int first_session;
    int sessions;
    atomic_int claimed;
} job_exec;

/* The jobs_run_fn; user is a job_exec. */
jobs_outcome job_exec_run(void *user, const jobs_job *job, jobs_output *output, char *error,
                          size_t error_size);

/* A content type for a payload or result: V2 with header_length > 0 is
 * binary. Writes into buf (at least 64 bytes). */
void job_content_type(job_protocol protocol, size_t header_length, char *buf, size_t size);

/* Reads a content type back. False when it is none of the above. */
bool job_parse_content_type(const char *type, job_protocol *protocol, size_t *header_length);

#endif /* INFERD_INFER_JOB_EXEC_H */
