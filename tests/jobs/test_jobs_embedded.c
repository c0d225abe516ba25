/*
 * test_jobs_embedded.c — the embedded (SQLite) job queue on real files in a
 * temporary state directory: the shared semantics (jobs_suite.h), then what
 * only a file-backed queue must do — survive closing and re-opening, a
 * worker process killed with SIGKILL mid-job (its job completes through
 * another consumer after the visibility timeout), a submitting process
 * killed with SIGKILL (every job it stored still runs), and refuse a state
 * directory or database file it cannot use with an error naming it.
 *
 * The child processes are this binary again, run with --child-* arguments.
 */
#include "child_process.h"
#include "jobs_suite.h"

#include <fcntl.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/wait.h>

static char base_dir[256];
static int queue_count;

static void make_state_dir(char *dir, size_t size)
{
    snprintf(dir, size, "%s/q%d", base_dir, ++queue_count);
}

static jobs_queue *open_at(const char *dir, jobs_config config)
{
    config.state_dir = dir;
    jobs_queue *queue = NULL;
    char err[1024];
    jobs_status status = jobs_open(&config, &queue, err, sizeof(err));
    if (status != JOBS_OK) {
        fprintf(stderr, "jobs_open %s: %s: %s\n", dir, jobs_status_name(status), err);
        CHECK(status == JOBS_OK);
    }
    return queue;
}

static char last_dir[300];

static jobs_queue *open_queue(jobs_config config)
{
    make_state_dir(last_dir, sizeof(last_dir));
    return open_at(last_dir, config);
}

static jobs_queue *open_same_queue(jobs_config config)
{
    return open_at(last_dir, config);
}

static void test_queue_survives_close_and_reopen(void)
{
    char dir[300];
    make_state_dir(dir, sizeof(dir));
    jobs_queue *queue = open_at(dir, (jobs_config){0});
    if (!queue)
        return;
    CHECK(strcmp(jobs_backend_name(queue), "embedded") == 0);
    CHECK_STR_CONTAINS(jobs_location(queue), "/jobs.db");
    char done[JOBS_ID_LEN + 1], running[JOBS_ID_LEN + 1], queued[JOBS_ID_LEN + 1];
    submit_text(queue, "m", "done", done);
    submit_text(queue, "m", "running", running);
    submit_text(queue, "m", "queued", queued);
    jobs_job *job = NULL;
    jobs_claim(queue, "w", 1, &job, suite_err, sizeof(suite_err));
    if (job)
        jobs_complete(queue, job, "result", 6, NULL, suite_err, sizeof(suite_err));
    jobs_job_free(job);
    job = NULL;
    jobs_claim(queue, "w", 1, &job, suite_err, sizeof(suite_err));
    jobs_close(queue);

    queue = open_at(dir, (jobs_config){0});
    if (!queue) {
        jobs_job_free(job);
        return;
    }
    jobs_info *info = get_info(queue, done);
    CHECK(info && info->state == JOBS_DONE && info->result_size == 6 &&
          memcmp(info->result, "result", 6) == 0);
    jobs_info_free(info);
    info = get_info(queue, running);
    CHECK(info && info->state == JOBS_RUNNING);
    jobs_info_free(info);
    info = get_info(queue, queued);
    CHECK(info && info->state == JOBS_QUEUED);
    jobs_info_free(info);
    /* the claim made before the re-open is still valid */
    if (job)
        CHECK_EQ_INT(jobs_complete(queue, job, "late", 4, NULL, suite_err, sizeof(suite_err)),
                     JOBS_OK);
    jobs_job_free(job);
    info = get_info(queue, running);
    CHECK(info && info->state == JOBS_DONE && info->result_size == 4);
    jobs_info_free(info);
    uint64_t pending = 0;
    CHECK_EQ_INT(jobs_depth(queue, &pending, suite_err, sizeof(suite_err)), JOBS_OK);
    CHECK_EQ_INT(pending, 1);
    jobs_close(queue);
}

/* --child-claim DIR: claim one job (visibility timeout 1 s), print its id, hang. */
static int child_claim(const char *dir)
{
    jobs_config config = {.state_dir = dir, .visibility_timeout = 1};
    jobs_queue *queue = NULL;
    char err[512];
    if (jobs_open(&config, &queue, err, sizeof(err)) != JOBS_OK) {
        fprintf(stderr, "child: %s\n", err);
        return 1;
    }
    jobs_job *job = NULL;
    if (jobs_claim(queue, "doomed-child", 10, &job, err, sizeof(err)) != JOBS_OK) {
        fprintf(stderr, "child: claim: %s\n", err);
        return 1;
    }
    printf("%s\n", job->id);
    fflush(stdout);
    pause(); /* mid-job, until SIGKILL */
    return 0;
}

/* --child-submit DIR N: submit N jobs, print each id as it is stored, hang. */
static int child_submit(const char *dir, int n)
{
    jobs_config config = {.state_dir = dir};
    jobs_queue *queue = NULL;
    char err[512];
    if (jobs_open(&config, &queue, err, sizeof(err)) != JOBS_OK) {
        fprintf(stderr, "child: %s\n", err);
        return 1;
    }
    for (int i = 0; i < n; i++) {
        char id[JOBS_ID_LEN + 1], text[32];
        snprintf(text, sizeof(text), "job %d", i);
        if (jobs_submit(queue, "echo", "", text, strlen(text), "text/plain", NULL, id, err,
                        sizeof(err)) != JOBS_OK) {
            fprintf(stderr, "child: submit: %s\n", err);
            return 1;
        }
        printf("%s\n", id);
        fflush(stdout);
    }
    pause();
    return 0;
}

static void test_job_of_a_killed_worker_completes_through_another(void)
{
    char dir[300];
    make_state_dir(dir, sizeof(dir));
    jobs_queue *queue = open_at(dir, (jobs_config){.visibility_timeout = 1});
    if (!queue)
        return;
    char id[JOBS_ID_LEN + 1], other[JOBS_ID_LEN + 1];
    submit_text(queue, "m", "{\"n\":1}", id);
    submit_text(queue, "m", "{\"n\":2}", other);
    child_process child;
    CHECK(child_start(&child, (const char *[]){"--child-claim", dir, NULL}));
    char line[128] = "";
    CHECK(child_read_line(&child, line, sizeof(line), 20));
    CHECK(strcmp(line, id) == 0); /* the child took the oldest job */
    jobs_info *info = get_info(queue, id);
    CHECK(info && info->state == JOBS_RUNNING);
    jobs_info_free(info);
    child_kill(&child, SIGKILL);

    /* this consumer first gets the job nobody holds, then the dead child's
     * once its claim has been silent for the visibility timeout */
    jobs_job *job = NULL;
    CHECK_EQ_INT(jobs_claim(queue, "survivor", 1, &job, suite_err, sizeof(suite_err)), JOBS_OK);
    CHECK(job && strcmp(job->id, other) == 0);
    if (job)
        jobs_complete(queue, job, "2", 1, NULL, suite_err, sizeof(suite_err));
    jobs_job_free(job);
    job = NULL;
    CHECK_EQ_INT(jobs_claim(queue, "survivor", 5, &job, suite_err, sizeof(suite_err)), JOBS_OK);
    if (job) {
        CHECK(strcmp(job->id, id) == 0);
        CHECK_EQ_INT(job->attempt, 2);
        CHECK(job->payload_size == 7 && memcmp(job->payload, "{\"n\":1}", 7) == 0);
        CHECK_EQ_INT(jobs_complete(queue, job, "1", 1, NULL, suite_err, sizeof(suite_err)),
                     JOBS_OK);
    }
    jobs_job_free(job);
    info = get_info(queue, id);
    if (info) {
        CHECK_EQ_INT(info->state, JOBS_DONE);
        CHECK_EQ_INT(info->attempts, 2);
        CHECK(info->result_size == 1 && info->result[0] == '1');
        jobs_info_free(info);
    }
    jobs_close(queue);
}

static void test_every_job_of_a_killed_submitter_runs_after_restart(void)
{
    char dir[300];
    make_state_dir(dir, sizeof(dir));
    enum { N = 25 };
    child_process child;
    CHECK(child_start(&child, (const char *[]){"--child-submit", dir, "25", NULL}));
    char ids[N][JOBS_ID_LEN + 1];
    int got = 0;
    char line[128];
    while (got < N && child_read_line(&child, line, sizeof(line), 20))
        snprintf(ids[got++], sizeof(ids[0]), "%.32s", line);
    CHECK_EQ_INT(got, N);
    child_kill(&child, SIGKILL);

    jobs_queue *queue = open_at(dir, (jobs_config){0});
    if (!queue)
        return;
    runner_state state = {0};
    jobs_runner *runner = NULL;
    jobs_runner_config config = {
        .threads = 2, .run = upper_case, .user = &state, .poll_interval = 0.2};
    CHECK_EQ_INT(jobs_runner_start(queue, &config, &runner, suite_err, sizeof(suite_err)), JOBS_OK);
    for (int i = 0; i < got; i++) {
        jobs_info *info;
        CHECK(wait_finished(queue, ids[i], 20, &info));
        char expected[32];
        snprintf(expected, sizeof(expected), "JOB %d", i);
        CHECK(info && info->state == JOBS_DONE && strcmp((char *)info->result, expected) == 0);
        jobs_info_free(info);
    }
    jobs_runner_stop(runner);
    jobs_close(queue);
}

static void test_unusable_state_dir_or_database_is_named(void)
{
    char file[300], dir[300], path[400];
    snprintf(file, sizeof(file), "%s/a-file", base_dir);
    FILE *f = fopen(file, "w");
    fputs("not a directory\n", f);
    fclose(f);
    jobs_config config = {.state_dir = file};
    jobs_queue *queue = NULL;
    CHECK_EQ_INT(jobs_open(&config, &queue, suite_err, sizeof(suite_err)), JOBS_IO_ERROR);
    CHECK_STR_CONTAINS(suite_err, file);
    CHECK(queue == NULL);

    make_state_dir(dir, sizeof(dir));
    mkdir(dir, 0700);
    snprintf(path, sizeof(path), "%s/jobs.db", dir);
    f = fopen(path, "w");
    for (int i = 0; i < 200; i++)
        fputs("this is not a SQLite database, just text. ", f);
    fclose(f);
    config.state_dir = dir;
    CHECK_EQ_INT(jobs_open(&config, &queue, suite_err, sizeof(suite_err)), JOBS_IO_ERROR);
    CHECK_STR_CONTAINS(suite_err, path);
    CHECK_STR_CONTAINS(suite_err, "not a database");

    config = (jobs_config){.url = "postgres://x"};
    CHECK_EQ_INT(jobs_open(&config, &queue, suite_err, sizeof(suite_err)), JOBS_INVALID);
    CHECK_STR_CONTAINS(suite_err, "queue URL \"postgres://x\"");
    config = (jobs_config){.state_dir = dir, .name = "Bad Name"};
    CHECK_EQ_INT(jobs_open(&config, &queue, suite_err, sizeof(suite_err)), JOBS_INVALID);
    CHECK_STR_CONTAINS(suite_err, "queue name \"Bad Name\"");
}

static void test_default_state_dir_follows_the_environment(void)
{
    char buf[512];
    char *saved_state = getenv("INFERD_STATE_DIR") ? strdup(getenv("INFERD_STATE_DIR")) : NULL;
    char *saved_xdg = getenv("XDG_STATE_HOME") ? strdup(getenv("XDG_STATE_HOME")) : NULL;
    setenv("INFERD_STATE_DIR", "/srv/inferd-state", 1);
    CHECK(jobs_default_state_dir(buf, sizeof(buf)) && strcmp(buf, "/srv/inferd-state") == 0);
    unsetenv("INFERD_STATE_DIR");
    setenv("XDG_STATE_HOME", "/x/state", 1);
    CHECK(jobs_default_state_dir(buf, sizeof(buf)) && strcmp(buf, "/x/state/inferd") == 0);
    unsetenv("XDG_STATE_HOME");
    if (getenv("HOME")) {
        char expected[512];
        snprintf(expected, sizeof(expected), "%s/.local/state/inferd", getenv("HOME"));
        CHECK(jobs_default_state_dir(buf, sizeof(buf)) && strcmp(buf, expected) == 0);
    }
    if (saved_state)
        setenv("INFERD_STATE_DIR", saved_state, 1);
    if (saved_xdg)
        setenv("XDG_STATE_HOME", saved_xdg, 1);
    free(saved_state);
    free(saved_xdg);
}

static void test_state_dir_is_private(void)
{
    char dir[300];
    make_state_dir(dir, sizeof(dir));
    jobs_queue *queue = open_at(dir, (jobs_config){0});
    jobs_close(queue);
    struct stat st;
    CHECK(stat(dir, &st) == 0 && (st.st_mode & 0777) == 0700);
}

int main(int argc, char **argv)
{
    if (argc >= 3 && strcmp(argv[1], "--child-claim") == 0)
        return child_claim(argv[2]);
    if (argc >= 4 && strcmp(argv[1], "--child-submit") == 0)
        return child_submit(argv[2], atoi(argv[3]));
    snprintf(base_dir, sizeof(base_dir), "/tmp/inferd-jobs-test-XXXXXX");
    if (!mkdtemp(base_dir)) {
        perror("mkdtemp");
        return 1;
    }
    suite_run_all();
    RUN(test_queue_survives_close_and_reopen);
    RUN(test_job_of_a_killed_worker_completes_through_another);
    RUN(test_every_job_of_a_killed_submitter_runs_after_restart);
    RUN(test_unusable_state_dir_or_database_is_named);
    RUN(test_default_state_dir_follows_the_environment);
    RUN(test_state_dir_is_private);
    char command[300];
    snprintf(command, sizeof(command), "rm -rf '%s'", base_dir);
    if (system(command) != 0)
        fprintf(stderr, "cannot remove %s\n", base_dir);
    TEST_MAIN_END();
}
