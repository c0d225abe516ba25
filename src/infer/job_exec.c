/*
 * job_exec.c — one queued inference job, run on a session of the model set
 * (see job_exec.h).
 */
#include "job_exec.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "infer.h"

void job_content_type(job_protocol protocol, size_t header_length, char *buf, size_t size)
{
    if (protocol == JOB_PROTOCOL_BOOK)
        snprintf(buf, size, "%s", JOB_TYPE_BOOK);
    else if (header_length)
        snprintf(buf, size, "%s; header-length=%zu", JOB_TYPE_V2_BINARY, header_length);
    else
        snprintf(buf, size, "%s", JOB_TYPE_V2);
}

bool job_parse_content_type(const char *type, job_protocol *protocol, size_t *header_length)
{
    *header_length = 0;
    if (!type)
        return false;
    if (strcmp(type, JOB_TYPE_BOOK) == 0) {
        *protocol = JOB_PROTOCOL_BOOK;
        return true;
    }
    *protocol = JOB_PROTOCOL_V2;
    if (strcmp(type, JOB_TYPE_V2) == 0)
        return true;
    static const char binary[] = JOB_TYPE_V2_BINARY "; header-length=";
    if (strncmp(type, binary, sizeof(binary) - 1) != 0)
        return false;
    const char *digits = type + sizeof(binary) - 1;
    char *end;
    errno = 0;
    unsigned long long n = strtoull(digits, &end, 10);
    if (errno || *end || end == digits || *digits == '-' || n == 0)
        return false;
    *header_length = (size_t)n;
    return true;
}

/* The session of the calling runner thread, claimed on its first job. The
 * slot remembers which executor it belongs to: a process has one, but a
 * test may make several in turn. */
static int thread_session(job_exec *exec)
{
    static __thread const job_exec *owner;
    static __thread int slot = -1;
    if (owner != exec) {
        int n = atomic_fetch_add(&exec->claimed, 1);
        owner = exec;
        slot = n < exec->sessions ? exec->first_session + n : -1;
    }
    return slot;
}

/* The message of an {"error": ...} answer. */
static void answer_message(const infer_answer *a, char *error, size_t error_size)
{
    json_t *body = a->body ? json_loadb(a->body, a->len, 0, NULL) : NULL;
    const char *message = json_string_value(json_object_get(body, "error"));
    snprintf(error, error_size, "%s (HTTP %d)", message ? message : "the inference failed",
             a->status);
    json_decref(body);
}

jobs_outcome job_exec_run(void *user, const jobs_job *job, jobs_output *output, char *error,
                          size_t error_size)
{
    job_exec *exec = user;
    job_protocol protocol;
    size_t header_length;
    if (!job_parse_content_type(job->content_type, &protocol, &header_length)) {
        snprintf(error, error_size, "job %s: unknown payload type '%s'", job->id,
                 job->content_type ? job->content_type : "");
        return JOBS_RUN_FAIL;
    }
    int session = thread_session(exec);
    if (session < 0) {
        snprintf(error, error_size, "more job threads than sessions (%d)", exec->sessions);
        return JOBS_RUN_RETRY;
    }
    bool named = job->version && job->version[0];
    acquired got;
    char err[1024];
    acquire_result r = model_set_acquire(exec->set, job->model, named ? job->version : NULL, NULL,
                                         NULL, &got, err, sizeof(err));
    if (r != ACQUIRE_OK) {
        /* the job was checked against a serving model when it was queued:
         * what it names has been unloaded since (or this worker never
         * loaded it), and waiting will not bring it back */
        if (named)
            snprintf(error, error_size,
                     "model '%s' version '%s' is not loaded here (unloaded after the job "
                     "was queued?): %s",
                     job->model, job->version, err);
        else
            snprintf(error, error_size,
                     "model '%s' is not loaded here (unloaded after the job was queued?): %s",
                     job->model, err);
        return JOBS_RUN_FAIL;
    }
    /* a body larger than the payload's JSON header means binary tensors */
    char header_text[32];
    snprintf(header_text, sizeof(header_text), "%zu", header_length);
    infer_answer answer;
    if (protocol == JOB_PROTOCOL_BOOK)
        infer_book(exec->set, got.version, session, (const char *)job->payload, job->payload_size,
                   false, false, got.mode_field, false, &answer);
    else
        infer_v2(exec->set, got.version, session, (const char *)job->payload, job->payload_size,
                 header_length ? header_text : NULL, false, &answer);
    model_version_unref(got.version);
    if (answer.status != 200) {
        answer_message(&answer, error, error_size);
        int status = answer.status;
        infer_answer_free(&answer);
        return status == 503 ? JOBS_RUN_RETRY : JOBS_RUN_FAIL;
    }
    output->data = (unsigned char *)answer.body;
    output->size = answer.len;
    job_content_type(protocol, answer.inference_header_length, output->content_type,
                     sizeof(output->content_type));
    return JOBS_RUN_DONE;
}
