/*
 * test_jobs_redis.c — the Redis Streams job queue against a real
 * redis-server started here on a free 127.0.0.1 port (stopped by PID at the
 * end): the shared semantics (jobs_suite.h, each test on its own queue
 * name), then two consumer processes sharing one stream with one killed
 * with SIGKILL mid-job (its job completes through the other by XAUTOCLAIM),
 * Redis down at start, and Redis killed mid-run and restarted: calls fail at
 * once with "queue unavailable", then the handle and a running runner
 * reconnect and the data kept in Redis's append-only file is still there.
 *
 * The child processes are this binary again, run with --child-* arguments.
 */
#include "child_process.h"
#include "jobs_suite.h"
#include "redis_server.h"

static redis_server server;
static int queue_count;

static jobs_queue *open_named(const char *name, jobs_config config)
{
    config.url = server.url;
    config.name = name;
    jobs_queue *queue = NULL;
    char err[1024];
    jobs_status status = jobs_open(&config, &queue, err, sizeof(err));
    if (status != JOBS_OK) {
        fprintf(stderr, "jobs_open %s: %s: %s\n", server.url, jobs_status_name(status), err);
        CHECK(status == JOBS_OK);
    }
    return queue;
}

static char last_name[32];

static jobs_queue *open_queue(jobs_config config)
{
    snprintf(last_name, sizeof(last_name), "t%d", ++queue_count);
    return open_named(last_name, config);
}

static jobs_queue *open_same_queue(jobs_config config)
{
    return open_named(last_name, config);
}

/* --child-claim URL NAME: claim one job (visibility timeout 1 s), print its id, hang. */
static int child_claim(const char *url, const char *name)
{
    jobs_config config = {.url = url, .name = name, .visibility_timeout = 1};
    jobs_queue *queue = NULL;
    char err[512];
    jobs_job *job = NULL;
    if (jobs_open(&config, &queue, err, sizeof(err)) != JOBS_OK ||
        jobs_claim(queue, "doomed-child", 10, &job, err, sizeof(err)) != JOBS_OK) {
        fprintf(stderr, "child: %s\n", err);
        return 1;
    }
    printf("%s\n", job->id);
    fflush(stdout);
    pause(); /* mid-job, until SIGKILL */
    return 0;
}

/* --child-worker URL NAME: a worker process (2 runner threads), until killed. */
static int child_worker(const char *url, const char *name)
{
    jobs_config config = {.url = url, .name = name, .visibility_timeout = 1};
    jobs_queue *queue = NULL;
    char err[512];
    runner_state state = {0};
    jobs_runner *runner = NULL;
    jobs_runner_config runner_config = {.threads = 2,
                                        .worker = "survivor",
                                        .run = upper_case,
                                        .user = &state,
                                        .poll_interval = 0.2};
    if (jobs_open(&config, &queue, err, sizeof(err)) != JOBS_OK ||
        jobs_runner_start(queue, &runner_config, &runner, err, sizeof(err)) != JOBS_OK) {
        fprintf(stderr, "child: %s\n", err);
        return 1;
    }
    printf("ready\n");
    fflush(stdout);
    pause();
    return 0;
}

static void test_two_consumer_processes_share_a_stream_and_survive_a_kill(void)
{
    jobs_queue *queue = open_named("shared", (jobs_config){.visibility_timeout = 1});
    if (!queue)
        return;
    CHECK(strcmp(jobs_backend_name(queue), "redis") == 0);
    char slow[JOBS_ID_LEN + 1];
    submit_text(queue, "echo", "slow one", slow);
    child_process doomed, survivor;
    CHECK(child_start(&doomed, (const char *[]){"--child-claim", server.url, "shared", NULL}));
    char line[128] = "";
    CHECK(child_read_line(&doomed, line, sizeof(line), 20));
    CHECK(strcmp(line, slow) == 0);

    enum { N = 10 };
    char ids[N][JOBS_ID_LEN + 1], text[N][16];
    for (int i = 0; i < N; i++) {
        snprintf(text[i], sizeof(text[i]), "job %d", i);
        submit_text(queue, "echo", text[i], ids[i]);
    }
    CHECK(child_start(&survivor, (const char *[]){"--child-worker", server.url, "shared", NULL}));
    CHECK(child_read_line(&survivor, line, sizeof(line), 20) && strcmp(line, "ready") == 0);
    /* both consumers are in the group now; the doomed one dies mid-job */
    child_kill(&doomed, SIGKILL);
    for (int i = 0; i < N; i++) {
        jobs_info *info;
        CHECK(wait_finished(queue, ids[i], 20, &info));
        char expected[16];
        snprintf(expected, sizeof(expected), "JOB %d", i);
        CHECK(info && info->state == JOBS_DONE && strcmp((char *)info->result, expected) == 0);
        jobs_info_free(info);
    }
    jobs_info *info;
    CHECK(wait_finished(queue, slow, 20, &info));
    if (info) {
        CHECK_EQ_INT(info->state, JOBS_DONE);
        CHECK_EQ_INT(info->attempts, 2);
        CHECK(info->result && strcmp((char *)info->result, "SLOW ONE") == 0);
        jobs_info_free(info);
    }
    child_kill(&survivor, SIGTERM);
    uint64_t pending = 99;
    CHECK_EQ_INT(jobs_depth(queue, &pending, suite_err, sizeof(suite_err)), JOBS_OK);
    CHECK_EQ_INT(pending, 0);
    jobs_close(queue);
}

static void test_redis_down_at_start_is_a_clear_error(void)
{
    char url[64];
    int port = redis_server_free_port();
    snprintf(url, sizeof(url), "redis://127.0.0.1:%d/0", port);
    jobs_config config = {.url = url};
    jobs_queue *queue = NULL;
    CHECK_EQ_INT(jobs_open(&config, &queue, suite_err, sizeof(suite_err)), JOBS_UNAVAILABLE);
    CHECK_STR_CONTAINS(suite_err, "queue unavailable: cannot connect to");
    CHECK_STR_CONTAINS(suite_err, url);
    CHECK_STR_CONTAINS(suite_err, "refused");
    CHECK(queue == NULL);
}

static void test_bad_redis_urls_are_refused(void)
{
    const char *bad[] = {"redis://", "redis://host:notaport/0", "redis://host:70000",
                         "redis://host/zero", "redis:/host"};
    const char *why[] = {"no host", "port \"notaport\"", "port \"70000\"", "database \"zero\"",
                         "queue URL"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(*bad); i++) {
        jobs_config config = {.url = bad[i]};
        jobs_queue *queue = NULL;
        CHECK_EQ_INT(jobs_open(&config, &queue, suite_err, sizeof(suite_err)), JOBS_INVALID);
        CHECK_STR_CONTAINS(suite_err, why[i]);
    }
    /* a URL that parses but names a database the server does not have */
    char url[96];
    snprintf(url, sizeof(url), "redis://127.0.0.1:%d/100000", server.port);
    jobs_config config = {.url = url};
    jobs_queue *queue = NULL;
    CHECK_EQ_INT(jobs_open(&config, &queue, suite_err, sizeof(suite_err)), JOBS_IO_ERROR);
    CHECK_STR_CONTAINS(suite_err, "SELECT");
    CHECK_STR_CONTAINS(suite_err, "DB index is out of range");
    CHECK(queue == NULL);
}

typedef struct error_log {
    atomic_int count;
    atomic_int unavailable;
} error_log;

static error_log runner_errors;

static void count_error(void *user, jobs_status status, const char *message)
{
    (void)user;
    (void)message;
    atomic_fetch_add(&runner_errors.count, 1);
    if (status == JOBS_UNAVAILABLE)
        atomic_fetch_add(&runner_errors.unavailable, 1);
}

static void test_redis_lost_mid_run_fails_clearly_then_reconnects(void)
{
    jobs_queue *queue = open_named("outage", (jobs_config){0});
    if (!queue)
        return;
    runner_state state = {0};
    jobs_runner *runner = NULL;
    jobs_runner_config config = {.threads = 2,
                                 .run = upper_case,
                                 .on_error = count_error,
                                 .user = &state,
                                 .poll_interval = 0.2};
    CHECK_EQ_INT(jobs_runner_start(queue, &config, &runner, suite_err, sizeof(suite_err)), JOBS_OK);
    char before[JOBS_ID_LEN + 1], after[JOBS_ID_LEN + 1];
    submit_text(queue, "echo", "before", before);
    jobs_info *info;
    CHECK(wait_finished(queue, before, 20, &info));
    jobs_info_free(info);

    redis_server_kill(&server, SIGKILL);
    CHECK_EQ_INT(submit_text(queue, "echo", "lost", after), JOBS_UNAVAILABLE);
    CHECK_STR_CONTAINS(suite_err, "queue unavailable");
    CHECK_STR_CONTAINS(suite_err, server.url);
    double start = jobs_now_for_tests();
    info = NULL;
    CHECK_EQ_INT(jobs_get(queue, before, &info, suite_err, sizeof(suite_err)), JOBS_UNAVAILABLE);
    CHECK_EQ_INT(jobs_cancel(queue, before, suite_err, sizeof(suite_err)), JOBS_UNAVAILABLE);
    CHECK(jobs_now_for_tests() - start < 1.0); /* fails at once, does not hang */
    jobs_metrics metrics;
    jobs_metrics_snapshot(queue, &metrics);
    CHECK(!metrics.depth_known);
    usleep(500000); /* the runner keeps trying, and says so */
    CHECK(atomic_load(&runner_errors.unavailable) > 0);

    CHECK(redis_server_start(&server));
    jobs_status status = JOBS_UNAVAILABLE;
    for (int i = 0; i < 100 && status == JOBS_UNAVAILABLE; i++) {
        status = submit_text(queue, "echo", "after", after);
        if (status == JOBS_UNAVAILABLE)
            usleep(100000);
    }
    CHECK_EQ_INT(status, JOBS_OK);
    CHECK(wait_finished(queue, after, 20, &info));
    CHECK(info && info->state == JOBS_DONE && strcmp((char *)info->result, "AFTER") == 0);
    jobs_info_free(info);
    /* what Redis had written to its append-only file survived the kill */
    info = get_info(queue, before);
    CHECK(info && info->state == JOBS_DONE && strcmp((char *)info->result, "BEFORE") == 0);
    jobs_info_free(info);
    jobs_runner_stop(runner);
    jobs_close(queue);
}

int main(int argc, char **argv)
{
    if (argc >= 4 && strcmp(argv[1], "--child-claim") == 0)
        return child_claim(argv[2], argv[3]);
    if (argc >= 4 && strcmp(argv[1], "--child-worker") == 0)
        return child_worker(argv[2], argv[3]);
    if (access(REDIS_SERVER_PATH, X_OK) != 0) {
        fprintf(stderr, "%s not found: install the Debian package redis-server (scripts/deps.sh)\n",
                REDIS_SERVER_PATH);
        return 1;
    }
    if (!redis_server_start(&server)) {
        fprintf(stderr, "cannot start %s on port %d\n", REDIS_SERVER_PATH, server.port);
        redis_server_stop(&server);
        return 1;
    }
    suite_run_all();
    RUN(test_two_consumer_processes_share_a_stream_and_survive_a_kill);
    RUN(test_redis_down_at_start_is_a_clear_error);
    RUN(test_bad_redis_urls_are_refused);
    RUN(test_redis_lost_mid_run_fails_clearly_then_reconnects);
    redis_server_stop(&server);
    TEST_MAIN_END();
}
