/*
 * jobs_suite.h — the job-queue semantics every backend must have, written
 * once and run by test_jobs_embedded.c (SQLite) and test_jobs_redis.c (a
 * real redis-server). The including file defines open_queue(), which opens
 * a fresh, empty queue with the given config fields (url/state dir filled
 * in by it), and then RUNs suite_run_all().
 */
#ifndef INFERD_TESTS_JOBS_SUITE_H
#define INFERD_TESTS_JOBS_SUITE_H

#include "jobs.h"
#include "test.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static jobs_queue *open_queue(jobs_config config);
static jobs_queue *open_same_queue(jobs_config config);

static double jobs_now_for_tests(void)
{
    struct timespec now;
    clock_gettime(CLOCK_REALTIME, &now);
    return (double)now.tv_sec + (double)now.tv_nsec * 1e-9;
}

static char suite_err[1024];

static jobs_status submit_text(jobs_queue *queue, const char *model, const char *text,
                               char id[JOBS_ID_LEN + 1])
{
    return jobs_submit(queue, model, "1", text, strlen(text), "application/json", NULL, id,
                       suite_err, sizeof(suite_err));
}

static jobs_info *get_info(jobs_queue *queue, const char *id)
{
    jobs_info *info = NULL;
    jobs_status status = jobs_get(queue, id, &info, suite_err, sizeof(suite_err));
    if (status != JOBS_OK)
        fprintf(stderr, "jobs_get %s: %s: %s\n", id, jobs_status_name(status), suite_err);
    return info;
}

static void test_submit_claim_complete_round_trip(void)
{
    jobs_queue *queue = open_queue((jobs_config){0});
    if (!queue)
        return;
    char id[JOBS_ID_LEN + 1];
    double before = jobs_now_for_tests();
    CHECK_EQ_INT(jobs_submit(queue, "iris", "2", "{\"x\": [1]}", 10, "application/json", NULL, id,
                             suite_err, sizeof(suite_err)),
                 JOBS_OK);
    CHECK(jobs_id_valid(id));
    jobs_info *info = get_info(queue, id);
    if (info) {
        CHECK_EQ_INT(info->state, JOBS_QUEUED);
        CHECK(strcmp(info->model, "iris") == 0 && strcmp(info->version, "2") == 0);
        CHECK(info->queued_at >= before - 1 && info->queued_at <= jobs_now_for_tests() + 1);
        CHECK(info->result == NULL);
        jobs_info_free(info);
    }
    jobs_job *job = NULL;
    CHECK_EQ_INT(jobs_claim(queue, "worker-a", 2, &job, suite_err, sizeof(suite_err)), JOBS_OK);
    if (job) {
        CHECK(strcmp(job->id, id) == 0);
        CHECK(strcmp(job->model, "iris") == 0 && strcmp(job->version, "2") == 0);
        CHECK(strcmp(job->content_type, "application/json") == 0);
        CHECK_EQ_INT(job->payload_size, 10);
        CHECK(memcmp(job->payload, "{\"x\": [1]}", 10) == 0);
        CHECK_EQ_INT(job->attempt, 1);
        CHECK_EQ_INT(job->max_retries, 3);
        info = get_info(queue, id);
        if (info) {
            CHECK_EQ_INT(info->state, JOBS_RUNNING);
            CHECK(info->started_at >= info->queued_at);
            jobs_info_free(info);
        }
        /* a result with a NUL inside: bytes, not text */
        CHECK_EQ_INT(jobs_complete(queue, job, "{\"y\":\0[2]}", 10, "application/json", suite_err,
                                   sizeof(suite_err)),
                     JOBS_OK);
        info = get_info(queue, id);
        if (info) {
            CHECK_EQ_INT(info->state, JOBS_DONE);
            CHECK_EQ_INT(info->result_size, 10);
            CHECK(info->result && memcmp(info->result, "{\"y\":\0[2]}", 10) == 0);
            CHECK(info->result_content_type &&
                  strcmp(info->result_content_type, "application/json") == 0);
            CHECK(info->finished_at >= info->started_at && info->started_at >= info->queued_at);
            CHECK_EQ_INT(info->attempts, 1);
            CHECK(info->error == NULL);
            jobs_info_free(info);
        }
        jobs_job_free(job);
    }
    job = NULL;
    CHECK_EQ_INT(jobs_claim(queue, "worker-a", 0, &job, suite_err, sizeof(suite_err)), JOBS_EMPTY);
    jobs_close(queue);
}

static void test_jobs_are_claimed_oldest_first(void)
{
    jobs_queue *queue = open_queue((jobs_config){0});
    if (!queue)
        return;
    char ids[5][JOBS_ID_LEN + 1];
    for (int i = 0; i < 5; i++)
        CHECK_EQ_INT(submit_text(queue, "m", "{}", ids[i]), JOBS_OK);
    for (int i = 0; i < 5; i++) {
        jobs_job *job = NULL;
        CHECK_EQ_INT(jobs_claim(queue, "w", 1, &job, suite_err, sizeof(suite_err)), JOBS_OK);
        CHECK(job && strcmp(job->id, ids[i]) == 0);
        if (job)
            jobs_complete(queue, job, "1", 1, NULL, suite_err, sizeof(suite_err));
        jobs_job_free(job);
    }
    jobs_close(queue);
}

static void test_completing_twice_keeps_the_first_result(void)
{
    jobs_queue *queue = open_queue((jobs_config){0});
    if (!queue)
        return;
    char id[JOBS_ID_LEN + 1];
    submit_text(queue, "m", "{}", id);
    jobs_job *job = NULL;
    CHECK_EQ_INT(jobs_claim(queue, "w", 1, &job, suite_err, sizeof(suite_err)), JOBS_OK);
    if (job) {
        CHECK_EQ_INT(
            jobs_complete(queue, job, "first", 5, "text/plain", suite_err, sizeof(suite_err)),
            JOBS_OK);
        CHECK_EQ_INT(
            jobs_complete(queue, job, "second", 6, "text/plain", suite_err, sizeof(suite_err)),
            JOBS_OK);
        /* a late failure report of the same delivery changes nothing either */
        CHECK_EQ_INT(jobs_fail(queue, job, "late", true, suite_err, sizeof(suite_err)), JOBS_OK);
        jobs_info *info = get_info(queue, id);
        if (info) {
            CHECK_EQ_INT(info->state, JOBS_DONE);
            CHECK(info->result_size == 5 && memcmp(info->result, "first", 5) == 0);
            jobs_info_free(info);
        }
        jobs_metrics metrics;
        jobs_metrics_snapshot(queue, &metrics);
        CHECK_EQ_INT(metrics.completed, 1);
        CHECK_EQ_INT(metrics.retried, 0);
    }
    jobs_job_free(job);
    jobs_close(queue);
}

static void test_retryable_failure_requeues_until_max_retries_then_fails(void)
{
    jobs_queue *queue = open_queue((jobs_config){.max_retries = 2});
    if (!queue)
        return;
    char id[JOBS_ID_LEN + 1];
    submit_text(queue, "m", "{}", id);
    for (unsigned attempt = 1; attempt <= 3; attempt++) {
        jobs_job *job = NULL;
        CHECK_EQ_INT(jobs_claim(queue, "w", 1, &job, suite_err, sizeof(suite_err)), JOBS_OK);
        if (!job)
            break;
        CHECK_EQ_INT(job->attempt, attempt);
        CHECK_EQ_INT(jobs_fail(queue, job, "engine busy", true, suite_err, sizeof(suite_err)),
                     JOBS_OK);
        jobs_job_free(job);
        jobs_info *info = get_info(queue, id);
        if (info) {
            CHECK_EQ_INT(info->state, attempt < 3 ? JOBS_QUEUED : JOBS_FAILED);
            CHECK_STR_CONTAINS(info->error, "engine busy");
            CHECK_EQ_INT(info->attempts, attempt);
            if (attempt == 3) {
                CHECK_STR_CONTAINS(info->error, "gave up after 3 attempts");
                CHECK(info->finished_at > 0);
            }
            jobs_info_free(info);
        }
    }
    jobs_job *job = NULL;
    CHECK_EQ_INT(jobs_claim(queue, "w", 0, &job, suite_err, sizeof(suite_err)), JOBS_EMPTY);
    jobs_metrics metrics;
    jobs_metrics_snapshot(queue, &metrics);
    CHECK_EQ_INT(metrics.retried, 2);
    CHECK_EQ_INT(metrics.failed, 1);
    CHECK_EQ_INT(metrics.started, 3);
    jobs_close(queue);
}

static void test_a_retried_job_goes_to_the_back_of_the_queue(void)
{
    jobs_queue *queue = open_queue((jobs_config){0});
    if (!queue)
        return;
    char first[JOBS_ID_LEN + 1], second[JOBS_ID_LEN + 1];
    submit_text(queue, "m", "{}", first);
    submit_text(queue, "m", "{}", second);
    jobs_job *job = NULL;
    CHECK_EQ_INT(jobs_claim(queue, "w", 1, &job, suite_err, sizeof(suite_err)), JOBS_OK);
    CHECK(job && strcmp(job->id, first) == 0);
    if (job)
        jobs_fail(queue, job, "busy", true, suite_err, sizeof(suite_err));
    jobs_job_free(job);
    const char *expected[] = {second, first};
    for (int i = 0; i < 2; i++) {
        job = NULL;
        CHECK_EQ_INT(jobs_claim(queue, "w", 1, &job, suite_err, sizeof(suite_err)), JOBS_OK);
        CHECK(job && strcmp(job->id, expected[i]) == 0);
        jobs_job_free(job);
    }
    jobs_close(queue);
}

static void test_permanent_failure_fails_at_once(void)
{
    jobs_queue *queue = open_queue((jobs_config){0});
    if (!queue)
        return;
    char id[JOBS_ID_LEN + 1];
    submit_text(queue, "gone", "{}", id);
    jobs_job *job = NULL;
    CHECK_EQ_INT(jobs_claim(queue, "w", 1, &job, suite_err, sizeof(suite_err)), JOBS_OK);
    if (job)
        CHECK_EQ_INT(jobs_fail(queue, job, "model gone version 1 is not loaded", false, suite_err,
                               sizeof(suite_err)),
                     JOBS_OK);
    jobs_job_free(job);
    jobs_info *info = get_info(queue, id);
    if (info) {
        CHECK_EQ_INT(info->state, JOBS_FAILED);
        CHECK(info->error && strcmp(info->error, "model gone version 1 is not loaded") == 0);
        CHECK_EQ_INT(info->attempts, 1);
        jobs_info_free(info);
    }
    jobs_close(queue);
}

static void test_a_stale_claim_cannot_fail_the_next_attempt(void)
{
    /* worker A's claim times out, B claims attempt 2, then A reports a
     * failure: B's attempt must stay running */
    jobs_queue *queue = open_queue((jobs_config){.visibility_timeout = 0.3});
    if (!queue)
        return;
    char id[JOBS_ID_LEN + 1];
    submit_text(queue, "m", "{}", id);
    jobs_job *first = NULL, *second = NULL;
    CHECK_EQ_INT(jobs_claim(queue, "a", 1, &first, suite_err, sizeof(suite_err)), JOBS_OK);
    usleep(400000);
    CHECK_EQ_INT(jobs_claim(queue, "b", 3, &second, suite_err, sizeof(suite_err)), JOBS_OK);
    if (first && second) {
        CHECK(strcmp(first->id, second->id) == 0);
        CHECK_EQ_INT(second->attempt, 2);
        CHECK_EQ_INT(jobs_fail(queue, first, "stale", true, suite_err, sizeof(suite_err)), JOBS_OK);
        CHECK_EQ_INT(jobs_extend(queue, first, suite_err, sizeof(suite_err)), JOBS_CONFLICT);
        CHECK_STR_CONTAINS(suite_err, "claim");
        jobs_info *info = get_info(queue, id);
        if (info) {
            CHECK_EQ_INT(info->state, JOBS_RUNNING);
            CHECK_STR_CONTAINS(info->error, "lost the job on attempt 1");
            jobs_info_free(info);
        }
        CHECK_EQ_INT(jobs_extend(queue, second, suite_err, sizeof(suite_err)), JOBS_OK);
        CHECK_EQ_INT(jobs_complete(queue, second, "ok", 2, NULL, suite_err, sizeof(suite_err)),
                     JOBS_OK);
        jobs_metrics metrics;
        jobs_metrics_snapshot(queue, &metrics);
        CHECK_EQ_INT(metrics.retried, 1); /* the lost attempt */
        CHECK_EQ_INT(metrics.completed, 1);
    }
    jobs_job_free(first);
    jobs_job_free(second);
    jobs_close(queue);
}

static void test_extend_keeps_a_long_job_from_being_reclaimed(void)
{
    jobs_queue *queue = open_queue((jobs_config){.visibility_timeout = 2.0});
    if (!queue)
        return;
    char id[JOBS_ID_LEN + 1];
    submit_text(queue, "m", "{}", id);
    jobs_job *job = NULL, *other = NULL;
    CHECK_EQ_INT(jobs_claim(queue, "a", 1, &job, suite_err, sizeof(suite_err)), JOBS_OK);
    for (int i = 0; i < 6 && job; i++) { /* 2.4 s of work, extended every 0.4 s */
        usleep(400000);
        CHECK_EQ_INT(jobs_extend(queue, job, suite_err, sizeof(suite_err)), JOBS_OK);
    }
    CHECK_EQ_INT(jobs_claim(queue, "b", 0.2, &other, suite_err, sizeof(suite_err)), JOBS_EMPTY);
    jobs_job_free(other);
    jobs_job_free(job);
    jobs_close(queue);
}

static void test_a_lost_job_fails_once_its_attempts_are_used(void)
{
    jobs_queue *queue =
        open_queue((jobs_config){.max_retries = JOBS_NO_RETRIES, .visibility_timeout = 0.3});
    if (!queue)
        return;
    char id[JOBS_ID_LEN + 1];
    submit_text(queue, "m", "{}", id);
    jobs_job *job = NULL;
    CHECK_EQ_INT(jobs_claim(queue, "doomed", 1, &job, suite_err, sizeof(suite_err)), JOBS_OK);
    CHECK(job && job->max_retries == 0);
    jobs_job_free(job);
    usleep(400000);
    job = NULL;
    CHECK_EQ_INT(jobs_claim(queue, "other", 3, &job, suite_err, sizeof(suite_err)), JOBS_EMPTY);
    jobs_job_free(job);
    jobs_metrics metrics;
    jobs_metrics_snapshot(queue, &metrics);
    CHECK_EQ_INT(metrics.failed, 1);
    jobs_info *info = get_info(queue, id);
    if (info) {
        CHECK_EQ_INT(info->state, JOBS_FAILED);
        CHECK_STR_CONTAINS(info->error, "gave up after 1 attempts");
        CHECK_STR_CONTAINS(info->error, "doomed");
        jobs_info_free(info);
    }
    jobs_close(queue);
}

static void test_cancel_only_queued_jobs(void)
{
    jobs_queue *queue = open_queue((jobs_config){0});
    if (!queue)
        return;
    char queued[JOBS_ID_LEN + 1], running[JOBS_ID_LEN + 1];
    submit_text(queue, "m", "{\"first\":1}", running);
    submit_text(queue, "m", "{\"second\":2}", queued);
    jobs_job *job = NULL;
    CHECK_EQ_INT(jobs_claim(queue, "w", 1, &job, suite_err, sizeof(suite_err)), JOBS_OK);
    CHECK(job && strcmp(job->id, running) == 0);
    CHECK_EQ_INT(jobs_cancel(queue, running, suite_err, sizeof(suite_err)), JOBS_CONFLICT);
    CHECK_STR_CONTAINS(suite_err, "is running: only a queued job can be cancelled");
    CHECK_EQ_INT(jobs_cancel(queue, queued, suite_err, sizeof(suite_err)), JOBS_OK);
    CHECK_EQ_INT(jobs_cancel(queue, queued, suite_err, sizeof(suite_err)), JOBS_CONFLICT);
    CHECK_STR_CONTAINS(suite_err, "is cancelled");
    jobs_info *info = get_info(queue, queued);
    if (info) {
        CHECK_EQ_INT(info->state, JOBS_CANCELLED);
        CHECK(info->finished_at > 0);
        jobs_info_free(info);
    }
    jobs_job *next = NULL;
    CHECK_EQ_INT(jobs_claim(queue, "w", 0.3, &next, suite_err, sizeof(suite_err)), JOBS_EMPTY);
    jobs_job_free(next);
    uint64_t pending = 99;
    CHECK_EQ_INT(jobs_depth(queue, &pending, suite_err, sizeof(suite_err)), JOBS_OK);
    CHECK_EQ_INT(pending, 1); /* the running one */
    jobs_job_free(job);
    jobs_close(queue);
}

static void test_full_queue_answers_full_and_stores_nothing(void)
{
    jobs_queue *queue = open_queue((jobs_config){.max_queued = 3});
    if (!queue)
        return;
    char ids[4][JOBS_ID_LEN + 1];
    for (int i = 0; i < 3; i++)
        CHECK_EQ_INT(submit_text(queue, "m", "{}", ids[i]), JOBS_OK);
    CHECK_EQ_INT(submit_text(queue, "m", "{}", ids[3]), JOBS_FULL);
    CHECK_STR_CONTAINS(suite_err, "job queue is full: 3 jobs pending (at most 3)");
    CHECK(ids[3][0] == 0);
    /* a running job still counts; a finished one frees its place */
    jobs_job *job = NULL;
    CHECK_EQ_INT(jobs_claim(queue, "w", 1, &job, suite_err, sizeof(suite_err)), JOBS_OK);
    CHECK_EQ_INT(submit_text(queue, "m", "{}", ids[3]), JOBS_FULL);
    if (job)
        jobs_complete(queue, job, "1", 1, NULL, suite_err, sizeof(suite_err));
    jobs_job_free(job);
    CHECK_EQ_INT(submit_text(queue, "m", "{}", ids[3]), JOBS_OK);
    jobs_metrics metrics;
    jobs_metrics_snapshot(queue, &metrics);
    CHECK_EQ_INT(metrics.rejected_full, 2);
    CHECK_EQ_INT(metrics.submitted, 4);
    CHECK(metrics.depth_known);
    CHECK_EQ_INT(metrics.depth[JOBS_QUEUED], 3);
    CHECK_EQ_INT(metrics.depth[JOBS_RUNNING], 0);
    jobs_close(queue);
}

static void test_results_expire_after_their_ttl(void)
{
    jobs_queue *queue = open_queue((jobs_config){.result_ttl = 1});
    if (!queue)
        return;
    char kept[JOBS_ID_LEN + 1], expiring[JOBS_ID_LEN + 1];
    jobs_submit_options longer = {.result_ttl = 60};
    CHECK_EQ_INT(
        jobs_submit(queue, "m", "", "{}", 2, NULL, &longer, kept, suite_err, sizeof(suite_err)),
        JOBS_OK);
    submit_text(queue, "m", "{}", expiring);
    for (int i = 0; i < 2; i++) {
        jobs_job *job = NULL;
        CHECK_EQ_INT(jobs_claim(queue, "w", 1, &job, suite_err, sizeof(suite_err)), JOBS_OK);
        if (job)
            jobs_complete(queue, job, "r", 1, NULL, suite_err, sizeof(suite_err));
        jobs_job_free(job);
    }
    jobs_info *info = get_info(queue, expiring);
    CHECK(info && info->state == JOBS_DONE);
    jobs_info_free(info);
    usleep(2100000);
    info = NULL;
    CHECK_EQ_INT(jobs_get(queue, expiring, &info, suite_err, sizeof(suite_err)), JOBS_NOT_FOUND);
    CHECK_STR_CONTAINS(suite_err, "no such job (unknown, or its result expired)");
    CHECK(info == NULL);
    info = get_info(queue, kept);
    CHECK(info && info->state == JOBS_DONE && strcmp(info->version, "") == 0);
    jobs_info_free(info);
    jobs_close(queue);
}

static void test_malformed_and_unknown_ids_are_refused(void)
{
    jobs_queue *queue = open_queue((jobs_config){0});
    if (!queue)
        return;
    const char *malformed[] = {"",
                               "2f49aa",
                               "0123456789abcdef0123456789ABCDEF",
                               "0123456789abcdef0123456789abcdef0",
                               "0123456789abcdef0123456789abcdeg",
                               "../../../../etc/passwd0123456789a",
                               "0123456789abcdef 123456789abcdef"};
    for (size_t i = 0; i < sizeof(malformed) / sizeof(*malformed); i++) {
        jobs_info *info = NULL;
        CHECK_EQ_INT(jobs_get(queue, malformed[i], &info, suite_err, sizeof(suite_err)),
                     JOBS_BAD_ID);
        CHECK_STR_CONTAINS(suite_err, "malformed job id");
        CHECK_EQ_INT(jobs_cancel(queue, malformed[i], suite_err, sizeof(suite_err)), JOBS_BAD_ID);
    }
    jobs_info *info = NULL;
    CHECK_EQ_INT(jobs_get(queue, NULL, &info, suite_err, sizeof(suite_err)), JOBS_BAD_ID);
    const char *unknown = "0123456789abcdef0123456789abcdef";
    CHECK_EQ_INT(jobs_get(queue, unknown, &info, suite_err, sizeof(suite_err)), JOBS_NOT_FOUND);
    CHECK_STR_CONTAINS(suite_err, unknown);
    CHECK_EQ_INT(jobs_cancel(queue, unknown, suite_err, sizeof(suite_err)), JOBS_NOT_FOUND);
    jobs_job forged = {.attempt = 1};
    memcpy(forged.id, unknown, JOBS_ID_LEN + 1);
    CHECK_EQ_INT(jobs_complete(queue, &forged, "x", 1, NULL, suite_err, sizeof(suite_err)),
                 JOBS_NOT_FOUND);
    CHECK_EQ_INT(jobs_fail(queue, &forged, "x", true, suite_err, sizeof(suite_err)),
                 JOBS_NOT_FOUND);
    jobs_close(queue);
}

static void test_bad_submissions_are_refused(void)
{
    jobs_queue *queue = open_queue((jobs_config){0});
    if (!queue)
        return;
    char id[JOBS_ID_LEN + 1];
    CHECK_EQ_INT(jobs_submit(queue, "", "1", "{}", 2, NULL, NULL, id, suite_err, sizeof(suite_err)),
                 JOBS_INVALID);
    CHECK_STR_CONTAINS(suite_err, "model name is missing");
    CHECK_EQ_INT(
        jobs_submit(queue, "m\nx", "1", "{}", 2, NULL, NULL, id, suite_err, sizeof(suite_err)),
        JOBS_INVALID);
    CHECK_STR_CONTAINS(suite_err, "model name contains a control character at offset 1");
    CHECK_EQ_INT(
        jobs_submit(queue, "m", "1", NULL, 5, NULL, NULL, id, suite_err, sizeof(suite_err)),
        JOBS_INVALID);
    CHECK_STR_CONTAINS(suite_err, "payload is NULL but 5 bytes long");
    jobs_job *job = NULL;
    CHECK_EQ_INT(jobs_claim(queue, "", 0, &job, suite_err, sizeof(suite_err)), JOBS_INVALID);
    CHECK_EQ_INT(jobs_claim(queue, "w", -1, &job, suite_err, sizeof(suite_err)), JOBS_INVALID);
    uint64_t pending = 9;
    CHECK_EQ_INT(jobs_depth(queue, &pending, suite_err, sizeof(suite_err)), JOBS_OK);
    CHECK_EQ_INT(pending, 0);
    jobs_close(queue);
}

static void test_ids_are_random_and_distinct(void)
{
    jobs_queue *queue = open_queue((jobs_config){0});
    if (!queue)
        return;
    enum { N = 200 };
    static char ids[N][JOBS_ID_LEN + 1];
    for (int i = 0; i < N; i++)
        CHECK_EQ_INT(submit_text(queue, "m", "{}", ids[i]), JOBS_OK);
    int same = 0;
    unsigned hex_seen = 0;
    for (int i = 0; i < N; i++) {
        CHECK(jobs_id_valid(ids[i]));
        for (int k = 0; k < JOBS_ID_LEN; k++)
            hex_seen |= 1u << (ids[i][k] <= '9' ? ids[i][k] - '0' : ids[i][k] - 'a' + 10);
        for (int j = 0; j < i; j++)
            same += strcmp(ids[i], ids[j]) == 0;
    }
    CHECK_EQ_INT(same, 0);
    CHECK_EQ_INT(hex_seen, 0xffff); /* every digit shows up: not a counter */
    jobs_close(queue);
}

/* The runner: a callback that upper-cases the payload, fails "missing"
 * permanently and "flaky" once. */
typedef struct runner_state {
    atomic_int calls, flaky_calls;
} runner_state;

static jobs_outcome upper_case(void *user, const jobs_job *job, jobs_output *output, char *error,
                               size_t error_size)
{
    runner_state *state = user;
    atomic_fetch_add(&state->calls, 1);
    if (strcmp(job->model, "missing") == 0) {
        snprintf(error, error_size, "model missing is not loaded");
        return JOBS_RUN_FAIL;
    }
    if (strcmp(job->model, "flaky") == 0 && atomic_fetch_add(&state->flaky_calls, 1) == 0) {
        snprintf(error, error_size, "out of memory, try again");
        return JOBS_RUN_RETRY;
    }
    output->data = malloc(job->payload_size + 1);
    for (size_t i = 0; i < job->payload_size; i++)
        output->data[i] =
            (unsigned char)(job->payload[i] >= 'a' && job->payload[i] <= 'z' ? job->payload[i] - 32
                                                                             : job->payload[i]);
    output->size = job->payload_size;
    snprintf(output->content_type, sizeof(output->content_type), "text/plain");
    return JOBS_RUN_DONE;
}

static bool wait_finished(jobs_queue *queue, const char *id, double seconds, jobs_info **out)
{
    for (double waited = 0; waited < seconds; waited += 0.05) {
        jobs_info *info = NULL;
        if (jobs_get(queue, id, &info, suite_err, sizeof(suite_err)) == JOBS_OK &&
            info->state >= JOBS_DONE) {
            *out = info;
            return true;
        }
        jobs_info_free(info);
        usleep(50000);
    }
    *out = NULL;
    return false;
}

static void test_runner_runs_jobs_on_several_threads(void)
{
    jobs_queue *queue = open_queue((jobs_config){0});
    if (!queue)
        return;
    runner_state state = {0};
    jobs_runner *runner = NULL;
    jobs_runner_config config = {
        .threads = 3, .worker = "test", .run = upper_case, .user = &state, .poll_interval = 0.2};
    CHECK_EQ_INT(jobs_runner_start(queue, &config, &runner, suite_err, sizeof(suite_err)), JOBS_OK);
    enum { N = 40 };
    char ids[N][JOBS_ID_LEN + 1], missing[JOBS_ID_LEN + 1], flaky[JOBS_ID_LEN + 1];
    char text[N][16];
    for (int i = 0; i < N; i++) {
        snprintf(text[i], sizeof(text[i]), "job %d", i);
        CHECK_EQ_INT(submit_text(queue, "echo", text[i], ids[i]), JOBS_OK);
    }
    submit_text(queue, "missing", "x", missing);
    submit_text(queue, "flaky", "again", flaky);
    for (int i = 0; i < N; i++) {
        jobs_info *info;
        CHECK(wait_finished(queue, ids[i], 20, &info));
        if (!info)
            continue;
        CHECK_EQ_INT(info->state, JOBS_DONE);
        char expected[16];
        snprintf(expected, sizeof(expected), "JOB %d", i);
        CHECK(info->result && strcmp((char *)info->result, expected) == 0);
        CHECK(strcmp(info->result_content_type, "text/plain") == 0);
        jobs_info_free(info);
    }
    jobs_info *info;
    CHECK(wait_finished(queue, missing, 20, &info));
    if (info) {
        CHECK_EQ_INT(info->state, JOBS_FAILED);
        CHECK(info->error && strcmp(info->error, "model missing is not loaded") == 0);
        jobs_info_free(info);
    }
    CHECK(wait_finished(queue, flaky, 20, &info));
    if (info) {
        CHECK_EQ_INT(info->state, JOBS_DONE);
        CHECK_EQ_INT(info->attempts, 2);
        CHECK(info->result && strcmp((char *)info->result, "AGAIN") == 0);
        jobs_info_free(info);
    }
    jobs_runner_stop(runner);
    CHECK_EQ_INT(atomic_load(&state.calls), N + 3);
    jobs_metrics metrics;
    jobs_metrics_snapshot(queue, &metrics);
    CHECK_EQ_INT(metrics.completed, N + 1);
    CHECK_EQ_INT(metrics.failed, 1);
    CHECK_EQ_INT(metrics.retried, 1);
    CHECK_EQ_INT(metrics.wait_count, N + 3);
    uint64_t in_buckets = 0;
    for (int i = 0; i <= JOBS_WAIT_BUCKETS; i++)
        in_buckets += metrics.wait_buckets[i];
    CHECK_EQ_INT(in_buckets, N + 3);
    CHECK(metrics.wait_sum >= 0 && metrics.wait_sum < 60 * (N + 3));
    CHECK_EQ_INT(metrics.depth[JOBS_QUEUED] + metrics.depth[JOBS_RUNNING], 0);
    jobs_close(queue);
}

static atomic_int slow_calls;

static jobs_outcome slow_echo(void *user, const jobs_job *job, jobs_output *output, char *error,
                              size_t error_size)
{
    (void)user, (void)error, (void)error_size;
    atomic_fetch_add(&slow_calls, 1);
    usleep(3500000);
    output->data = malloc(4);
    memcpy(output->data, "slow", 4);
    output->size = 4;
    (void)job;
    return JOBS_RUN_DONE;
}

static void test_runner_keeps_the_claim_of_a_slow_job(void)
{
    /* a 3.5 s job with a 1.5 s visibility timeout and a second idle runner
     * thread: without the keeper's extensions it would run twice */
    jobs_queue *queue = open_queue((jobs_config){.visibility_timeout = 1.5});
    if (!queue)
        return;
    atomic_store(&slow_calls, 0);
    jobs_runner *runner = NULL;
    jobs_runner_config config = {.threads = 2, .run = slow_echo, .poll_interval = 0.2};
    CHECK_EQ_INT(jobs_runner_start(queue, &config, &runner, suite_err, sizeof(suite_err)), JOBS_OK);
    char id[JOBS_ID_LEN + 1];
    submit_text(queue, "slow", "{}", id);
    jobs_info *info;
    CHECK(wait_finished(queue, id, 20, &info));
    if (info) {
        CHECK_EQ_INT(info->state, JOBS_DONE);
        CHECK_EQ_INT(info->attempts, 1);
        jobs_info_free(info);
    }
    jobs_runner_stop(runner);
    CHECK_EQ_INT(atomic_load(&slow_calls), 1);
    jobs_close(queue);
}

typedef struct late_submit {
    jobs_queue *queue;
    char id[JOBS_ID_LEN + 1];
} late_submit;

static void *submit_later(void *arg)
{
    late_submit *late = arg;
    usleep(300000);
    char err[256];
    jobs_submit(late->queue, "m", "", "{}", 2, NULL, NULL, late->id, err, sizeof(err));
    return NULL;
}

static void test_claim_waits_for_a_job_submitted_meanwhile(void)
{
    jobs_queue *queue = open_queue((jobs_config){0});
    if (!queue)
        return;
    late_submit late = {.queue = queue};
    pthread_t thread;
    pthread_create(&thread, NULL, submit_later, &late);
    double start = jobs_now_for_tests();
    jobs_job *job = NULL;
    char err[256];
    CHECK_EQ_INT(jobs_claim(queue, "w", 5, &job, err, sizeof(err)), JOBS_OK);
    double waited = jobs_now_for_tests() - start;
    pthread_join(thread, NULL);
    CHECK(job && strcmp(job->id, late.id) == 0);
    CHECK(waited >= 0.25 && waited < 2.5);
    jobs_job_free(job);
    jobs_close(queue);
}

enum { SHARED_JOBS = 300 };
static atomic_int runs_per_job[SHARED_JOBS];

static jobs_outcome count_run(void *user, const jobs_job *job, jobs_output *output, char *error,
                              size_t error_size)
{
    (void)user, (void)error, (void)error_size;
    int n = atoi((const char *)job->payload);
    if (n >= 0 && n < SHARED_JOBS)
        atomic_fetch_add(&runs_per_job[n], 1);
    output->data = malloc(1);
    output->data[0] = 'k';
    output->size = 1;
    return JOBS_RUN_DONE;
}

typedef struct submitter {
    jobs_queue *queue;
    int first, step;
    char (*ids)[JOBS_ID_LEN + 1];
} submitter;

static void *submit_share(void *arg)
{
    submitter *s = arg;
    char err[256], text[16];
    for (int i = s->first; i < SHARED_JOBS; i += s->step) {
        snprintf(text, sizeof(text), "%d", i);
        if (jobs_submit(s->queue, "m", "", text, strlen(text), NULL, NULL, s->ids[i], err,
                        sizeof(err)) != JOBS_OK)
            fprintf(stderr, "submit %d: %s\n", i, err);
    }
    return NULL;
}

static void test_two_handles_run_each_job_exactly_once(void)
{
    /* two handles on one queue (two server processes would look the same),
     * each with a 2-thread runner and a submitting thread: every job runs
     * once, none twice, none lost */
    jobs_queue *first = open_queue((jobs_config){0});
    jobs_queue *second = first ? open_same_queue((jobs_config){0}) : NULL;
    if (!second) {
        jobs_close(first);
        return;
    }
    for (int i = 0; i < SHARED_JOBS; i++)
        atomic_store(&runs_per_job[i], 0);
    static char ids[SHARED_JOBS][JOBS_ID_LEN + 1];
    jobs_runner *runners[2] = {NULL, NULL};
    jobs_queue *queues[2] = {first, second};
    pthread_t threads[2];
    submitter submitters[2];
    for (int k = 0; k < 2; k++) {
        jobs_runner_config config = {
            .threads = 2, .worker = k ? "second" : "first", .run = count_run, .poll_interval = 0.2};
        CHECK_EQ_INT(
            jobs_runner_start(queues[k], &config, &runners[k], suite_err, sizeof(suite_err)),
            JOBS_OK);
    }
    for (int k = 0; k < 2; k++) {
        submitters[k] = (submitter){.queue = queues[k], .first = k, .step = 2, .ids = ids};
        pthread_create(&threads[k], NULL, submit_share, &submitters[k]);
    }
    for (int k = 0; k < 2; k++)
        pthread_join(threads[k], NULL);
    int done = 0;
    for (int i = 0; i < SHARED_JOBS; i++) {
        jobs_info *info;
        if (wait_finished(queues[i % 2], ids[i], 30, &info) && info->state == JOBS_DONE)
            done++;
        jobs_info_free(info);
    }
    for (int k = 0; k < 2; k++)
        jobs_runner_stop(runners[k]);
    CHECK_EQ_INT(done, SHARED_JOBS);
    int twice = 0, never = 0;
    for (int i = 0; i < SHARED_JOBS; i++) {
        twice += atomic_load(&runs_per_job[i]) > 1;
        never += atomic_load(&runs_per_job[i]) == 0;
    }
    CHECK_EQ_INT(twice, 0);
    CHECK_EQ_INT(never, 0);
    jobs_metrics a, b;
    jobs_metrics_snapshot(first, &a);
    jobs_metrics_snapshot(second, &b);
    CHECK_EQ_INT(a.completed + b.completed, SHARED_JOBS);
    CHECK_EQ_INT(a.submitted + b.submitted, SHARED_JOBS);
    jobs_close(second);
    jobs_close(first);
}

static void suite_run_all(void)
{
    RUN(test_submit_claim_complete_round_trip);
    RUN(test_jobs_are_claimed_oldest_first);
    RUN(test_completing_twice_keeps_the_first_result);
    RUN(test_retryable_failure_requeues_until_max_retries_then_fails);
    RUN(test_a_retried_job_goes_to_the_back_of_the_queue);
    RUN(test_permanent_failure_fails_at_once);
    RUN(test_a_stale_claim_cannot_fail_the_next_attempt);
    RUN(test_extend_keeps_a_long_job_from_being_reclaimed);
    RUN(test_a_lost_job_fails_once_its_attempts_are_used);
    RUN(test_cancel_only_queued_jobs);
    RUN(test_full_queue_answers_full_and_stores_nothing);
    RUN(test_results_expire_after_their_ttl);
    RUN(test_malformed_and_unknown_ids_are_refused);
    RUN(test_bad_submissions_are_refused);
    RUN(test_ids_are_random_and_distinct);
    RUN(test_runner_runs_jobs_on_several_threads);
    RUN(test_claim_waits_for_a_job_submitted_meanwhile);
    RUN(test_runner_keeps_the_claim_of_a_slow_job);
    RUN(test_two_handles_run_each_job_exactly_once);
}

#endif /* INFERD_TESTS_JOBS_SUITE_H */
