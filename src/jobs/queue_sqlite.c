/*
 * queue_sqlite.c — the embedded job queue: one SQLite database in WAL mode,
 * <state dir>/jobs.db, one row per job. Every state change is one
 * transaction, so a kill -9 at any point leaves each job either before or
 * after the change, never half-way; synchronous=NORMAL makes a committed
 * change survive a process crash (a power loss may lose the last commits,
 * never corrupt the file).
 *
 * Claims are BEGIN IMMEDIATE transactions: they first (at most once a
 * second) give back the jobs of workers silent beyond the visibility timeout
 * (lease_until in the past) — re-queued, or failed once their attempts are
 * used up — then take the oldest queued job. Per-state counts live in a table kept by triggers, so
 * the cap check at submit and the depth gauge cost one indexed read, not a
 * scan of 100,000 rows.
 *
 * One connection per handle behind a mutex: SQLite serialises writers
 * anyway. A claim waiting for work sleeps on a condition variable that
 * submits through the same handle signal, and polls every 50 ms for jobs
 * submitted by other processes sharing the file.
 */
#include "jobs_backend.h"

#include <errno.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#define SCHEMA_VERSION 1
#define POLL_SECONDS 0.05
#define EXPIRE_EVERY_SECONDS 30.0
#define RECLAIM_EVERY_SECONDS 1.0
#define BUSY_TIMEOUT_MS 10000

enum {
    SQL_COUNT_PENDING,
    SQL_INSERT,
    SQL_ANY_WORK,
    SQL_GIVE_UP_LOST,
    SQL_REQUEUE_LOST,
    SQL_OLDEST_QUEUED,
    SQL_START,
    SQL_COMPLETE,
    SQL_FAIL,
    SQL_EXTEND,
    SQL_GET,
    SQL_CANCEL,
    SQL_STATE_OF,
    SQL_COUNTS,
    SQL_EXPIRE,
    SQL_BEGIN,
    SQL_COMMIT,
    SQL_ROLLBACK,
    SQL_STATEMENTS
};

/* %1$s is the queue name; tables are "<name>_jobs" and "<name>_counts". */
static const char *const statement_sql[SQL_STATEMENTS] = {
    [SQL_COUNT_PENDING] =
        "SELECT coalesce(sum(n), 0) FROM \"%1$s_counts\" WHERE state IN ('queued', 'running')",
    [SQL_INSERT] =
        "INSERT INTO \"%1$s_jobs\"(id, model, version, content_type, payload, state, attempts, "
        "max_retries, result_ttl, queued_at) VALUES (?1, ?2, ?3, ?4, ?5, 'queued', 0, ?6, ?7, ?8)",
    [SQL_ANY_WORK] =
        "SELECT 1 WHERE EXISTS (SELECT 1 FROM \"%1$s_jobs\" WHERE state = 'queued') OR EXISTS "
        "(SELECT 1 FROM \"%1$s_jobs\" WHERE state = 'running' AND lease_until < ?1)",
    [SQL_GIVE_UP_LOST] =
        "UPDATE \"%1$s_jobs\" SET state = 'failed', payload = NULL, finished_at = ?1, "
        "expires_at = ?1 + result_ttl, error = 'gave up after ' || attempts || "
        "' attempts: worker ' || coalesce(worker, '?') || "
        "' lost the job (no word within the visibility timeout)' "
        "WHERE state = 'running' AND lease_until < ?1 AND attempts > max_retries",
    [SQL_REQUEUE_LOST] =
        "UPDATE \"%1$s_jobs\" SET state = 'queued', error = 'worker ' || coalesce(worker, '?') "
        "|| ' lost the job on attempt ' || attempts || ' (no word within the visibility "
        "timeout)', worker = NULL, lease_until = NULL "
        "WHERE state = 'running' AND lease_until < ?1",
    [SQL_OLDEST_QUEUED] =
        "SELECT seq, id, model, version, content_type, payload, attempts, max_retries, "
        "queued_at FROM \"%1$s_jobs\" WHERE state = 'queued' ORDER BY seq LIMIT 1",
    [SQL_START] =
        "UPDATE \"%1$s_jobs\" SET state = 'running', attempts = attempts + 1, worker = ?2, "
        "started_at = ?3, lease_until = ?4 WHERE seq = ?1",
    [SQL_COMPLETE] =
        "UPDATE \"%1$s_jobs\" SET state = 'done', result = ?2, result_content_type = ?3, "
        "finished_at = ?4, expires_at = ?4 + result_ttl, error = NULL, payload = NULL, "
        "lease_until = NULL WHERE id = ?1 AND state IN ('queued', 'running')",
    /* ?3 retryable: re-queue (at the back, as on Redis: a natural pause
     * before the retry) while attempts remain; else fail with the reason */
    [SQL_FAIL] =
        "UPDATE \"%1$s_jobs\" SET "
        "seq = CASE WHEN ?3 AND attempts <= max_retries "
        "THEN (SELECT max(seq) FROM \"%1$s_jobs\") + 1 ELSE seq END, "
        "state = CASE WHEN ?3 AND attempts <= max_retries THEN 'queued' ELSE 'failed' END, "
        "error = CASE WHEN ?3 AND attempts > max_retries "
        "THEN 'gave up after ' || attempts || ' attempts: ' || ?2 ELSE ?2 END, "
        "finished_at = CASE WHEN ?3 AND attempts <= max_retries THEN NULL ELSE ?5 END, "
        "expires_at = CASE WHEN ?3 AND attempts <= max_retries THEN NULL ELSE ?5 + result_ttl END, "
        "payload = CASE WHEN ?3 AND attempts <= max_retries THEN payload ELSE NULL END, "
        "worker = NULL, lease_until = NULL "
        "WHERE id = ?1 AND state = 'running' AND attempts = ?4 RETURNING state",
    [SQL_EXTEND] = "UPDATE \"%1$s_jobs\" SET lease_until = ?3 WHERE id = ?1 AND state = 'running' "
                   "AND attempts = ?2",
    [SQL_GET] =
        "SELECT state, model, version, attempts, max_retries, queued_at, started_at, finished_at, "
        "result, result_content_type, error FROM \"%1$s_jobs\" "
        "WHERE id = ?1 AND (expires_at IS NULL OR expires_at > ?2)",
    [SQL_CANCEL] =
        "UPDATE \"%1$s_jobs\" SET state = 'cancelled', payload = NULL, finished_at = ?2, "
        "expires_at = ?2 + result_ttl WHERE id = ?1 AND state = 'queued'",
    [SQL_STATE_OF] =
        "SELECT state FROM \"%1$s_jobs\" WHERE id = ?1 AND (expires_at IS NULL OR expires_at > ?2)",
    [SQL_COUNTS] = "SELECT state, n FROM \"%1$s_counts\"",
    [SQL_EXPIRE] = "DELETE FROM \"%1$s_jobs\" WHERE expires_at <= ?1",
    [SQL_BEGIN] = "BEGIN IMMEDIATE",
    [SQL_COMMIT] = "COMMIT",
    [SQL_ROLLBACK] = "ROLLBACK",
};

/* The schema: jobs in submission order (seq), partial indexes for the three
 * questions asked often (oldest queued, overdue running, expired), and the
 * per-state counts kept by triggers. */
static const char schema_sql[] =
    "CREATE TABLE IF NOT EXISTS \"%1$s_jobs\" ("
    " seq INTEGER PRIMARY KEY,"
    " id TEXT NOT NULL UNIQUE,"
    " model TEXT NOT NULL, version TEXT NOT NULL, content_type TEXT NOT NULL, payload BLOB,"
    " state TEXT NOT NULL CHECK (state IN ('queued', 'running', 'done', 'failed', 'cancelled')),"
    " attempts INTEGER NOT NULL, max_retries INTEGER NOT NULL, result_ttl REAL NOT NULL,"
    " worker TEXT, queued_at REAL NOT NULL, started_at REAL, lease_until REAL, finished_at REAL,"
    " expires_at REAL, error TEXT, result BLOB, result_content_type TEXT);"
    "CREATE INDEX IF NOT EXISTS \"%1$s_jobs_queued\" ON \"%1$s_jobs\"(seq) WHERE state = 'queued';"
    "CREATE INDEX IF NOT EXISTS \"%1$s_jobs_running\" ON \"%1$s_jobs\"(lease_until) WHERE state = "
    "'running';"
    "CREATE INDEX IF NOT EXISTS \"%1$s_jobs_expires\" ON \"%1$s_jobs\"(expires_at) WHERE "
    "expires_at IS NOT NULL;"
    "CREATE TABLE IF NOT EXISTS \"%1$s_counts\" (state TEXT PRIMARY KEY, n INTEGER NOT NULL) "
    "WITHOUT ROWID;"
    "INSERT OR IGNORE INTO \"%1$s_counts\" VALUES ('queued', 0), ('running', 0), ('done', 0), "
    "('failed', 0),"
    " ('cancelled', 0);"
    "CREATE TRIGGER IF NOT EXISTS \"%1$s_count_insert\" AFTER INSERT ON \"%1$s_jobs\" BEGIN"
    " UPDATE \"%1$s_counts\" SET n = n + 1 WHERE state = NEW.state; END;"
    "CREATE TRIGGER IF NOT EXISTS \"%1$s_count_delete\" AFTER DELETE ON \"%1$s_jobs\" BEGIN"
    " UPDATE \"%1$s_counts\" SET n = n - 1 WHERE state = OLD.state; END;"
    "CREATE TRIGGER IF NOT EXISTS \"%1$s_count_update\" AFTER UPDATE OF state ON \"%1$s_jobs\""
    " WHEN OLD.state <> NEW.state BEGIN"
    " UPDATE \"%1$s_counts\" SET n = n - 1 WHERE state = OLD.state;"
    " UPDATE \"%1$s_counts\" SET n = n + 1 WHERE state = NEW.state; END;";

typedef struct sqlite_queue {
    jobs_queue *queue;
    sqlite3 *db;
    char *path;
    sqlite3_stmt *statements[SQL_STATEMENTS];
    pthread_mutex_t lock;
    pthread_cond_t submitted; /* signalled by submits through this handle */
    double next_expire_at;
    double next_reclaim_at; /* looking for lost workers' jobs costs two updates: once a second is
                               enough */
} sqlite_queue;

static jobs_status db_error(sqlite_queue *q, const char *doing, char *err, size_t err_size)
{
    int code = sqlite3_extended_errcode(q->db);
    jobs_set_error(err, err_size, "job queue %s: %s: %s", q->path, doing, sqlite3_errmsg(q->db));
    /* a writer from another process holding the lock past the busy timeout
     * is a moment's unavailability, not damage */
    if ((code & 0xff) == SQLITE_BUSY || (code & 0xff) == SQLITE_LOCKED)
        return JOBS_UNAVAILABLE;
    return JOBS_IO_ERROR;
}

static sqlite3_stmt *statement(sqlite_queue *q, int which)
{
    sqlite3_stmt *stmt = q->statements[which];
    sqlite3_reset(stmt);
    sqlite3_clear_bindings(stmt);
    return stmt;
}

static void rollback(sqlite_queue *q)
{
    if (!sqlite3_get_autocommit(q->db))
        sqlite3_step(statement(q, SQL_ROLLBACK));
    sqlite3_reset(q->statements[SQL_ROLLBACK]);
}

static jobs_status run_done(sqlite_queue *q, sqlite3_stmt *stmt, const char *doing, char *err,
                            size_t err_size)
{
    int rc = sqlite3_step(stmt);
    sqlite3_reset(stmt);
    return rc == SQLITE_DONE ? JOBS_OK : db_error(q, doing, err, err_size);
}

static jobs_status begin(sqlite_queue *q, char *err, size_t err_size)
{
    return run_done(q, statement(q, SQL_BEGIN), "begin", err, err_size);
}

static jobs_status commit(sqlite_queue *q, char *err, size_t err_size)
{
    jobs_status status = run_done(q, statement(q, SQL_COMMIT), "commit", err, err_size);
    if (status != JOBS_OK)
        rollback(q);
    return status;
}

static char *format_sql(const char *format, const char *name)
{
    int size = snprintf(NULL, 0, format, name);
    char *sql = size < 0 ? NULL : malloc((size_t)size + 1);
    if (sql)
        snprintf(sql, (size_t)size + 1, format, name);
    return sql;
}

static bool make_dirs(const char *path, char *err, size_t err_size)
{
    char *copy = strdup(path);
    if (!copy) {
        jobs_set_error(err, err_size, "out of memory");
        return false;
    }
    for (char *p = copy + 1;; p++) {
        if (*p != '/' && *p)
            continue;
        char saved = *p;
        *p = 0;
        /* 0700: results are private to whoever holds a job id */
        if (mkdir(copy, 0700) != 0 && errno != EEXIST) {
            jobs_set_error(err, err_size, "state directory %s: cannot create %s: %s", path, copy,
                           strerror(errno));
            free(copy);
            return false;
        }
        *p = saved;
        if (!saved)
            break;
    }
    free(copy);
    struct stat st;
    if (stat(path, &st) != 0 || !S_ISDIR(st.st_mode)) {
        jobs_set_error(err, err_size, "state directory %s: not a directory", path);
        return false;
    }
    return true;
}

static void sqlite_close(void *backend)
{
    sqlite_queue *q = backend;
    if (!q)
        return;
    for (int i = 0; i < SQL_STATEMENTS; i++)
        sqlite3_finalize(q->statements[i]);
    sqlite3_close(q->db);
    pthread_mutex_destroy(&q->lock);
    pthread_cond_destroy(&q->submitted);
    free(q->path);
    free(q);
}

static jobs_status expire_locked(sqlite_queue *q, uint64_t *removed, char *err, size_t err_size);

static jobs_status sqlite_open(jobs_queue *queue, char *err, size_t err_size)
{
    if (!make_dirs(queue->state_dir, err, err_size))
        return JOBS_IO_ERROR;
    sqlite_queue *q = calloc(1, sizeof(*q));
    if (!q) {
        jobs_set_error(err, err_size, "out of memory");
        return JOBS_IO_ERROR;
    }
    q->queue = queue;
    pthread_mutex_init(&q->lock, NULL);
    pthread_condattr_t attr;
    pthread_condattr_init(&attr);
    pthread_condattr_setclock(&attr, CLOCK_MONOTONIC);
    pthread_cond_init(&q->submitted, &attr);
    pthread_condattr_destroy(&attr);
    size_t path_size = strlen(queue->state_dir) + sizeof("/jobs.db");
    q->path = malloc(path_size);
    if (!q->path) {
        jobs_set_error(err, err_size, "out of memory");
        sqlite_close(q);
        return JOBS_IO_ERROR;
    }
    snprintf(q->path, path_size, "%s/jobs.db", queue->state_dir);

    /* FULLMUTEX is not needed: this handle's mutex serialises every use */
    int rc = sqlite3_open_v2(
        q->path, &q->db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX, NULL);
    if (rc != SQLITE_OK) {
        jobs_set_error(err, err_size, "job queue %s: cannot open: %s", q->path,
                       q->db ? sqlite3_errmsg(q->db) : sqlite3_errstr(rc));
        sqlite_close(q);
        return JOBS_IO_ERROR;
    }
    sqlite3_busy_timeout(q->db, BUSY_TIMEOUT_MS);
    sqlite3_extended_result_codes(q->db, 1);

    char *journal = NULL;
    sqlite3_stmt *pragma = NULL;
    jobs_status status = JOBS_OK;
    if (sqlite3_prepare_v2(q->db, "PRAGMA journal_mode=WAL", -1, &pragma, NULL) != SQLITE_OK ||
        sqlite3_step(pragma) != SQLITE_ROW) {
        status = db_error(q, "cannot switch to WAL mode (is it a SQLite database?)", err, err_size);
    } else {
        journal = jobs_strdup((const char *)sqlite3_column_text(pragma, 0));
        if (!journal || strcmp(journal, "wal") != 0) {
            jobs_set_error(err, err_size, "job queue %s: journal mode is \"%s\", WAL is needed",
                           q->path, journal ? journal : "?");
            status = JOBS_IO_ERROR;
        }
    }
    free(journal);
    sqlite3_finalize(pragma);
    if (status != JOBS_OK) {
        sqlite_close(q);
        return status;
    }
    int user_version = 0;
    if (sqlite3_exec(q->db, "PRAGMA synchronous=NORMAL", NULL, NULL, NULL) != SQLITE_OK ||
        sqlite3_prepare_v2(q->db, "PRAGMA user_version", -1, &pragma, NULL) != SQLITE_OK ||
        sqlite3_step(pragma) != SQLITE_ROW) {
        status = db_error(q, "cannot read the schema version", err, err_size);
    } else {
        user_version = sqlite3_column_int(pragma, 0);
    }
    sqlite3_finalize(pragma);
    if (status == JOBS_OK && user_version > SCHEMA_VERSION) {
        jobs_set_error(err, err_size,
                       "job queue %s: schema version %d was written by a newer inferd (this one "
                       "knows %d)",
                       q->path, user_version, SCHEMA_VERSION);
        status = JOBS_INVALID;
    }
    if (status != JOBS_OK) {
        sqlite_close(q);
        return status;
    }
    char *schema = format_sql(schema_sql, queue->name);
    char *message = NULL;
    if (!schema) {
        jobs_set_error(err, err_size, "out of memory");
        status = JOBS_IO_ERROR;
    } else if (sqlite3_exec(q->db, "BEGIN IMMEDIATE", NULL, NULL, &message) != SQLITE_OK ||
               sqlite3_exec(q->db, schema, NULL, NULL, &message) != SQLITE_OK ||
               sqlite3_exec(q->db, "PRAGMA user_version=1", NULL, NULL, &message) != SQLITE_OK ||
               sqlite3_exec(q->db, "COMMIT", NULL, NULL, &message) != SQLITE_OK) {
        jobs_set_error(err, err_size, "job queue %s: cannot create the tables: %s", q->path,
                       message ? message : sqlite3_errmsg(q->db));
        sqlite3_exec(q->db, "ROLLBACK", NULL, NULL, NULL);
        status = JOBS_IO_ERROR;
    }
    sqlite3_free(message);
    free(schema);
    for (int i = 0; status == JOBS_OK && i < SQL_STATEMENTS; i++) {
        char *sql = format_sql(statement_sql[i], queue->name);
        if (!sql) {
            jobs_set_error(err, err_size, "out of memory");
            status = JOBS_IO_ERROR;
        } else if (sqlite3_prepare_v3(q->db, sql, -1, SQLITE_PREPARE_PERSISTENT, &q->statements[i],
                                      NULL) != SQLITE_OK) {
            status = db_error(q, "cannot prepare a statement", err, err_size);
        }
        free(sql);
    }
    if (status == JOBS_OK)
        status = expire_locked(q, NULL, err, err_size);
    if (status != JOBS_OK) {
        sqlite_close(q);
        return status;
    }
    queue->backend = q;
    queue->location = strdup(q->path);
    return JOBS_OK;
}

static jobs_status expire_locked(sqlite_queue *q, uint64_t *removed, char *err, size_t err_size)
{
    double now = jobs_now();
    sqlite3_stmt *stmt = statement(q, SQL_EXPIRE);
    sqlite3_bind_double(stmt, 1, now);
    jobs_status status = run_done(q, stmt, "expiring finished jobs", err, err_size);
    if (status == JOBS_OK && removed)
        *removed = (uint64_t)sqlite3_changes(q->db);
    q->next_expire_at = now + (q->queue->result_ttl < EXPIRE_EVERY_SECONDS ? q->queue->result_ttl
                                                                           : EXPIRE_EVERY_SECONDS);
    return status;
}

static jobs_status sqlite_expire(void *backend, uint64_t *removed, char *err, size_t err_size)
{
    sqlite_queue *q = backend;
    pthread_mutex_lock(&q->lock);
    jobs_status status = expire_locked(q, removed, err, err_size);
    pthread_mutex_unlock(&q->lock);
    return status;
}

static jobs_status sqlite_submit(void *backend, const jobs_new_job *job, char *err, size_t err_size)
{
    sqlite_queue *q = backend;
    pthread_mutex_lock(&q->lock);
    jobs_status status = begin(q, err, err_size);
    if (status == JOBS_OK) {
        sqlite3_stmt *stmt = statement(q, SQL_COUNT_PENDING);
        if (sqlite3_step(stmt) != SQLITE_ROW) {
            status = db_error(q, "counting pending jobs", err, err_size);
        } else {
            sqlite3_int64 pending = sqlite3_column_int64(stmt, 0);
            if (pending >= 0 && (uint64_t)pending >= q->queue->max_queued) {
                jobs_set_error(err, err_size, "job queue is full: %lld jobs pending (at most %llu)",
                               (long long)pending, (unsigned long long)q->queue->max_queued);
                status = JOBS_FULL;
            }
        }
        sqlite3_reset(stmt);
    }
    if (status == JOBS_OK) {
        sqlite3_stmt *stmt = statement(q, SQL_INSERT);
        sqlite3_bind_text(stmt, 1, job->id, -1, SQLITE_STATIC);
        sqlite3_bind_text(stmt, 2, job->model, -1, SQLITE_STATIC);
        sqlite3_bind_text(stmt, 3, job->version, -1, SQLITE_STATIC);
        sqlite3_bind_text(stmt, 4, job->content_type, -1, SQLITE_STATIC);
        sqlite3_bind_blob64(stmt, 5, job->payload, job->payload_size, SQLITE_STATIC);
        sqlite3_bind_int64(stmt, 6, job->max_retries);
        sqlite3_bind_double(stmt, 7, job->result_ttl);
        sqlite3_bind_double(stmt, 8, job->queued_at);
        status = run_done(q, stmt, "storing the job", err, err_size);
    }
    if (status == JOBS_OK)
        status = commit(q, err, err_size);
    else
        rollback(q);
    if (status == JOBS_OK)
        pthread_cond_broadcast(&q->submitted);
    pthread_mutex_unlock(&q->lock);
    return status;
}

static char *column_text(sqlite3_stmt *stmt, int column)
{
    const unsigned char *text = sqlite3_column_text(stmt, column);
    return text ? strdup((const char *)text) : NULL;
}

/* One claim attempt, the lock held: JOBS_EMPTY when there is nothing to take. */
static jobs_status try_claim(sqlite_queue *q, const char *worker, jobs_job **out, char *err,
                             size_t err_size)
{
    double now = jobs_now();
    sqlite3_stmt *stmt = statement(q, SQL_ANY_WORK);
    sqlite3_bind_double(stmt, 1, now);
    int rc = sqlite3_step(stmt);
    sqlite3_reset(stmt);
    if (rc == SQLITE_DONE)
        return JOBS_EMPTY;
    if (rc != SQLITE_ROW)
        return db_error(q, "looking for queued jobs", err, err_size);

    jobs_status status = begin(q, err, err_size);
    if (status != JOBS_OK)
        return status;
    now = jobs_now();
    bool reclaim = now >= q->next_reclaim_at;
    if (reclaim)
        q->next_reclaim_at = now + (q->queue->visibility_timeout < 2 * RECLAIM_EVERY_SECONDS
                                        ? q->queue->visibility_timeout / 2
                                        : RECLAIM_EVERY_SECONDS);
    uint64_t lost[2] = {0, 0}; /* given up, re-queued */
    for (int which = SQL_GIVE_UP_LOST; reclaim && status == JOBS_OK && which <= SQL_REQUEUE_LOST;
         which++) {
        stmt = statement(q, which);
        sqlite3_bind_double(stmt, 1, now);
        status = run_done(q, stmt, "re-queueing jobs of lost workers", err, err_size);
        if (status == JOBS_OK)
            lost[which - SQL_GIVE_UP_LOST] = (uint64_t)sqlite3_changes(q->db);
    }
    jobs_job *job = NULL;
    sqlite3_int64 seq = 0;
    if (status == JOBS_OK) {
        stmt = statement(q, SQL_OLDEST_QUEUED);
        rc = sqlite3_step(stmt);
        if (rc == SQLITE_DONE) {
            status = JOBS_EMPTY;
        } else if (rc != SQLITE_ROW) {
            status = db_error(q, "reading the oldest queued job", err, err_size);
        } else if (!(job = calloc(1, sizeof(*job)))) {
            status = JOBS_IO_ERROR;
        } else {
            seq = sqlite3_column_int64(stmt, 0);
            snprintf(job->id, sizeof(job->id), "%s", (const char *)sqlite3_column_text(stmt, 1));
            job->model = column_text(stmt, 2);
            job->version = column_text(stmt, 3);
            job->content_type = column_text(stmt, 4);
            job->payload_size = (size_t)sqlite3_column_bytes(stmt, 5);
            job->payload = jobs_memdup(sqlite3_column_blob(stmt, 5), job->payload_size);
            job->attempt = (unsigned)sqlite3_column_int64(stmt, 6) + 1;
            job->max_retries = (unsigned)sqlite3_column_int64(stmt, 7);
            job->queued_at = sqlite3_column_double(stmt, 8);
            job->started_at = now;
            snprintf(job->claim, sizeof(job->claim), "%u", job->attempt);
            if (!job->model || !job->version || !job->content_type || !job->payload)
                status = JOBS_IO_ERROR;
        }
        sqlite3_reset(stmt);
        if (status == JOBS_IO_ERROR && sqlite3_errcode(q->db) == SQLITE_OK)
            jobs_set_error(err, err_size, "out of memory");
    }
    if (status == JOBS_OK) {
        stmt = statement(q, SQL_START);
        sqlite3_bind_int64(stmt, 1, seq);
        sqlite3_bind_text(stmt, 2, worker, -1, SQLITE_STATIC);
        sqlite3_bind_double(stmt, 3, now);
        sqlite3_bind_double(stmt, 4, now + q->queue->visibility_timeout);
        status = run_done(q, stmt, "marking the job running", err, err_size);
    }
    /* the re-queueing of lost jobs is worth keeping even when none is left */
    if (status == JOBS_OK || status == JOBS_EMPTY) {
        jobs_status committed = commit(q, err, err_size);
        if (committed != JOBS_OK)
            status = committed;
        else
            jobs_count_lost(q->queue, lost[1], lost[0]);
    } else {
        rollback(q);
    }
    if (status != JOBS_OK) {
        jobs_job_free(job);
        return status;
    }
    *out = job;
    return JOBS_OK;
}

static struct timespec monotonic_after(double seconds)
{
    struct timespec at;
    clock_gettime(CLOCK_MONOTONIC, &at);
    long nanos = at.tv_nsec + (long)((seconds - (double)(long)seconds) * 1e9);
    at.tv_sec += (time_t)seconds + nanos / 1000000000L;
    at.tv_nsec = nanos % 1000000000L;
    return at;
}

static jobs_status sqlite_claim(void *backend, const char *worker, double timeout, jobs_job **out,
                                char *err, size_t err_size)
{
    sqlite_queue *q = backend;
    double deadline = jobs_now() + timeout;
    pthread_mutex_lock(&q->lock);
    jobs_status status;
    for (;;) {
        double now = jobs_now();
        if (now >= q->next_expire_at && (status = expire_locked(q, NULL, err, err_size)) != JOBS_OK)
            break;
        status = try_claim(q, worker, out, err, err_size);
        if (status != JOBS_EMPTY)
            break;
        double left = deadline - jobs_now();
        if (left <= 0)
            break;
        struct timespec until = monotonic_after(left < POLL_SECONDS ? left : POLL_SECONDS);
        pthread_cond_timedwait(&q->submitted, &q->lock, &until);
    }
    pthread_mutex_unlock(&q->lock);
    return status;
}

/* Why an update by id changed nothing: the job is gone, or it is elsewhere. */
static jobs_status explain_unchanged(sqlite_queue *q, const char *id, int *state, char *err,
                                     size_t err_size)
{
    sqlite3_stmt *stmt = statement(q, SQL_STATE_OF);
    sqlite3_bind_text(stmt, 1, id, -1, SQLITE_STATIC);
    sqlite3_bind_double(stmt, 2, jobs_now());
    int rc = sqlite3_step(stmt);
    jobs_status status = JOBS_OK;
    if (rc == SQLITE_ROW) {
        *state = jobs_state_parse((const char *)sqlite3_column_text(stmt, 0));
    } else if (rc == SQLITE_DONE) {
        jobs_set_error(err, err_size, "job %s: no such job (unknown, or its result expired)", id);
        status = JOBS_NOT_FOUND;
    } else {
        status = db_error(q, "reading a job's state", err, err_size);
    }
    sqlite3_reset(stmt);
    return status;
}

static jobs_status sqlite_complete(void *backend, const jobs_job *job, const void *result,
                                   size_t result_size, const char *content_type,
                                   jobs_effect *effect, char *err, size_t err_size)
{
    sqlite_queue *q = backend;
    pthread_mutex_lock(&q->lock);
    sqlite3_stmt *stmt = statement(q, SQL_COMPLETE);
    sqlite3_bind_text(stmt, 1, job->id, -1, SQLITE_STATIC);
    sqlite3_bind_blob64(stmt, 2, result, result_size, SQLITE_STATIC);
    sqlite3_bind_text(stmt, 3, content_type, -1, SQLITE_STATIC);
    sqlite3_bind_double(stmt, 4, jobs_now());
    jobs_status status = run_done(q, stmt, "storing the result", err, err_size);
    if (status == JOBS_OK) {
        if (sqlite3_changes(q->db) > 0) {
            *effect = JOBS_EFFECT_DONE;
        } else {
            int state = -1; /* already finished: the first result stays */
            status = explain_unchanged(q, job->id, &state, err, err_size);
        }
    }
    pthread_mutex_unlock(&q->lock);
    return status;
}

static jobs_status sqlite_fail(void *backend, const jobs_job *job, const char *reason,
                               bool retryable, jobs_effect *effect, char *err, size_t err_size)
{
    sqlite_queue *q = backend;
    pthread_mutex_lock(&q->lock);
    sqlite3_stmt *stmt = statement(q, SQL_FAIL);
    sqlite3_bind_text(stmt, 1, job->id, -1, SQLITE_STATIC);
    sqlite3_bind_text(stmt, 2, reason, -1, SQLITE_STATIC);
    sqlite3_bind_int(stmt, 3, retryable);
    sqlite3_bind_int64(stmt, 4, job->attempt);
    sqlite3_bind_double(stmt, 5, jobs_now());
    int rc = sqlite3_step(stmt);
    jobs_status status = JOBS_OK;
    if (rc == SQLITE_ROW) {
        *effect = strcmp((const char *)sqlite3_column_text(stmt, 0), "queued") == 0
                      ? JOBS_EFFECT_REQUEUED
                      : JOBS_EFFECT_FAILED;
        rc = sqlite3_step(stmt);
    }
    if (rc != SQLITE_DONE)
        status = db_error(q, "recording the failure", err, err_size);
    sqlite3_reset(stmt);
    if (status == JOBS_OK && *effect == JOBS_EFFECT_NONE) {
        int state = -1; /* finished meanwhile, or claimed again: this claim is stale */
        status = explain_unchanged(q, job->id, &state, err, err_size);
    }
    pthread_mutex_unlock(&q->lock);
    return status;
}

static jobs_status sqlite_extend(void *backend, const jobs_job *job, char *err, size_t err_size)
{
    sqlite_queue *q = backend;
    pthread_mutex_lock(&q->lock);
    sqlite3_stmt *stmt = statement(q, SQL_EXTEND);
    sqlite3_bind_text(stmt, 1, job->id, -1, SQLITE_STATIC);
    sqlite3_bind_int64(stmt, 2, job->attempt);
    sqlite3_bind_double(stmt, 3, jobs_now() + q->queue->visibility_timeout);
    jobs_status status = run_done(q, stmt, "extending the claim", err, err_size);
    if (status == JOBS_OK && sqlite3_changes(q->db) == 0) {
        int state = -1;
        status = explain_unchanged(q, job->id, &state, err, err_size);
        if (status == JOBS_OK) {
            jobs_set_error(err, err_size,
                           "job %s: the claim of attempt %u was lost (the job is %s now)", job->id,
                           job->attempt, jobs_state_name((jobs_state)state));
            status = JOBS_CONFLICT;
        }
    }
    pthread_mutex_unlock(&q->lock);
    return status;
}

static jobs_status sqlite_get(void *backend, const char *id, jobs_info **out, char *err,
                              size_t err_size)
{
    sqlite_queue *q = backend;
    pthread_mutex_lock(&q->lock);
    sqlite3_stmt *stmt = statement(q, SQL_GET);
    sqlite3_bind_text(stmt, 1, id, -1, SQLITE_STATIC);
    sqlite3_bind_double(stmt, 2, jobs_now());
    int rc = sqlite3_step(stmt);
    jobs_status status = JOBS_OK;
    jobs_info *info = NULL;
    if (rc == SQLITE_DONE) {
        jobs_set_error(err, err_size, "job %s: no such job (unknown, or its result expired)", id);
        status = JOBS_NOT_FOUND;
    } else if (rc != SQLITE_ROW) {
        status = db_error(q, "reading the job", err, err_size);
    } else if (!(info = calloc(1, sizeof(*info)))) {
        jobs_set_error(err, err_size, "out of memory");
        status = JOBS_IO_ERROR;
    } else {
        snprintf(info->id, sizeof(info->id), "%s", id);
        int state = jobs_state_parse((const char *)sqlite3_column_text(stmt, 0));
        info->state = state < 0 ? JOBS_FAILED : (jobs_state)state;
        info->model = column_text(stmt, 1);
        info->version = column_text(stmt, 2);
        info->attempts = (unsigned)sqlite3_column_int64(stmt, 3);
        info->max_retries = (unsigned)sqlite3_column_int64(stmt, 4);
        info->queued_at = sqlite3_column_double(stmt, 5);
        info->started_at = sqlite3_column_double(stmt, 6);
        info->finished_at = sqlite3_column_double(stmt, 7);
        if (info->state == JOBS_DONE) {
            info->result_size = (size_t)sqlite3_column_bytes(stmt, 8);
            info->result = jobs_memdup(sqlite3_column_blob(stmt, 8), info->result_size);
            info->result_content_type = column_text(stmt, 9);
        }
        info->error = column_text(stmt, 10);
        if (!info->model || !info->version || (info->state == JOBS_DONE && !info->result)) {
            jobs_set_error(err, err_size, "out of memory");
            status = JOBS_IO_ERROR;
        }
    }
    sqlite3_reset(stmt);
    pthread_mutex_unlock(&q->lock);
    if (status != JOBS_OK) {
        jobs_info_free(info);
        return status;
    }
    *out = info;
    return JOBS_OK;
}

static jobs_status sqlite_cancel(void *backend, const char *id, char *err, size_t err_size)
{
    sqlite_queue *q = backend;
    pthread_mutex_lock(&q->lock);
    sqlite3_stmt *stmt = statement(q, SQL_CANCEL);
    sqlite3_bind_text(stmt, 1, id, -1, SQLITE_STATIC);
    sqlite3_bind_double(stmt, 2, jobs_now());
    jobs_status status = run_done(q, stmt, "cancelling the job", err, err_size);
    if (status == JOBS_OK && sqlite3_changes(q->db) == 0) {
        int state = -1;
        status = explain_unchanged(q, id, &state, err, err_size);
        if (status == JOBS_OK) {
            jobs_set_error(err, err_size, "job %s is %s: only a queued job can be cancelled", id,
                           jobs_state_name((jobs_state)state));
            status = JOBS_CONFLICT;
        }
    }
    pthread_mutex_unlock(&q->lock);
    return status;
}

static jobs_status sqlite_count(void *backend, uint64_t depth[JOBS_STATE_COUNT], char *err,
                                size_t err_size)
{
    sqlite_queue *q = backend;
    pthread_mutex_lock(&q->lock);
    sqlite3_stmt *stmt = statement(q, SQL_COUNTS);
    int rc;
    while ((rc = sqlite3_step(stmt)) == SQLITE_ROW) {
        int state = jobs_state_parse((const char *)sqlite3_column_text(stmt, 0));
        sqlite3_int64 n = sqlite3_column_int64(stmt, 1);
        if (state >= 0)
            depth[state] = n > 0 ? (uint64_t)n : 0;
    }
    jobs_status status = rc == SQLITE_DONE ? JOBS_OK : db_error(q, "counting jobs", err, err_size);
    sqlite3_reset(stmt);
    pthread_mutex_unlock(&q->lock);
    return status;
}

const jobs_backend_ops jobs_sqlite_backend = {
    .name = "embedded",
    .open = sqlite_open,
    .close = sqlite_close,
    .submit = sqlite_submit,
    .claim = sqlite_claim,
    .complete = sqlite_complete,
    .fail = sqlite_fail,
    .extend = sqlite_extend,
    .get = sqlite_get,
    .cancel = sqlite_cancel,
    .count = sqlite_count,
    .expire = sqlite_expire,
};
