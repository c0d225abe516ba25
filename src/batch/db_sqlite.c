/*
 * db_sqlite.c — the SQLite backend of `inferd batch --db sqlite:///...`
 * (Debian libsqlite3). One writer at a time: each chunk is claimed and
 * written inside one BEGIN IMMEDIATE transaction, which holds SQLite's write
 * lock from the SELECT to the COMMIT, so concurrent runs take turns chunk by
 * chunk (waiting up to the busy timeout) and never see a row another run is
 * predicting. A killed run's open transaction is rolled back by SQLite's
 * journal the next time the file is opened.
 */
#include "db.h"

#include <sqlite3.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#define BUSY_TIMEOUT_MS (10 * 60 * 1000)
/* SQLite's write lock is not queued: a run that commits and begins again at
 * once would keep it while the others sleep in their busy handlers. So
 * waiting runs poll often, and a run leaves the lock free for a moment after
 * each commit, long enough for a waiting run to take it. */
#define BUSY_POLL_US 100
#define YIELD_AFTER_COMMIT_US 300

typedef struct sqlite_backend {
    sqlite3 *conn;
    sqlite3_stmt *select_first, *select_after, *update, *count;
    sqlite3_value *last_id;      /* the cursor: ids after it are unseen */
    sqlite3_value **claimed_ids; /* ids of the claimed rows, with their SQL type */
    size_t n_claimed, claimed_cap;
} sqlite_backend;

static bool fail(char *err, size_t size, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static bool fail(char *err, size_t size, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err, size, fmt, ap);
    va_end(ap);
    return false;
}

static void clear_claimed(sqlite_backend *b)
{
    for (size_t i = 0; i < b->n_claimed; i++)
        sqlite3_value_free(b->claimed_ids[i]);
    b->n_claimed = 0;
}

static void sqlite_rollback(batch_db *db)
{
    sqlite_backend *b = db->backend;
    sqlite3_exec(b->conn, "ROLLBACK", NULL, NULL, NULL);
    db->in_transaction = false;
}

static bool sqlite_claim(batch_db *db, size_t limit, char *err, size_t n)
{
    sqlite_backend *b = db->backend;
    clear_claimed(b);
    int rc = sqlite3_exec(b->conn, "BEGIN IMMEDIATE", NULL, NULL, NULL);
    if (rc != SQLITE_OK)
        return fail(err, n, "%s: cannot take the write lock: %s", db->display_url,
                    sqlite3_errmsg(b->conn));
    db->in_transaction = true;
    sqlite3_stmt *s = b->last_id ? b->select_after : b->select_first;
    sqlite3_reset(s);
    if (b->last_id)
        sqlite3_bind_value(s, 1, b->last_id);
    sqlite3_bind_int64(s, 2, (sqlite3_int64)limit);
    while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
        if (b->n_claimed == b->claimed_cap) {
            size_t cap = b->claimed_cap ? b->claimed_cap * 2 : 256;
            sqlite3_value **grown = realloc(b->claimed_ids, cap * sizeof(*grown));
            if (!grown)
                return fail(err, n, "out of memory");
            b->claimed_ids = grown;
            b->claimed_cap = cap;
        }
        sqlite3_value *id = sqlite3_value_dup(sqlite3_column_value(s, 0));
        if (!id)
            return fail(err, n, "out of memory");
        b->claimed_ids[b->n_claimed++] = id;
        const char *values = (const char *)sqlite3_column_text(s, 1);
        if (!batch_db_add_row(db, (const char *)sqlite3_column_text(s, 0), values))
            return fail(err, n, "out of memory");
    }
    sqlite3_reset(s);
    if (rc != SQLITE_DONE)
        return fail(err, n, "%s: reading %s: %s", db->display_url, db->table,
                    sqlite3_errmsg(b->conn));
    if (b->n_claimed) {
        sqlite3_value_free(b->last_id);
        b->last_id = sqlite3_value_dup(b->claimed_ids[b->n_claimed - 1]);
    }
    return true;
}

static bool sqlite_commit(batch_db *db, const size_t *which, const char *const *predictions,
                          size_t count, char *err, size_t n)
{
    sqlite_backend *b = db->backend;
    for (size_t i = 0; i < count; i++) {
        sqlite3_reset(b->update);
        sqlite3_bind_text(b->update, 1, predictions[i], -1, SQLITE_STATIC);
        sqlite3_bind_value(b->update, 2, b->claimed_ids[which[i]]);
        if (sqlite3_step(b->update) != SQLITE_DONE) {
            fail(err, n, "%s: writing %s of row %s: %s", db->display_url, db->output,
                 db->rows[which[i]].id, sqlite3_errmsg(b->conn));
            sqlite3_reset(b->update);
            sqlite_rollback(db);
            return false;
        }
    }
    sqlite3_reset(b->update);
    if (sqlite3_exec(b->conn, "COMMIT", NULL, NULL, NULL) != SQLITE_OK) {
        fail(err, n, "%s: commit failed: %s", db->display_url, sqlite3_errmsg(b->conn));
        sqlite_rollback(db);
        return false;
    }
    db->in_transaction = false;
    usleep(YIELD_AFTER_COMMIT_US);
    return true;
}

static int wait_for_lock(void *context, int attempts)
{
    (void)context;
    if ((long long)attempts * BUSY_POLL_US >= (long long)BUSY_TIMEOUT_MS * 1000)
        return 0; /* give up: SQLITE_BUSY, reported as "cannot take the write lock" */
    usleep(BUSY_POLL_US);
    return 1;
}

static void sqlite_close(batch_db *db)
{
    sqlite_backend *b = db->backend;
    if (!b)
        return;
    clear_claimed(b);
    free(b->claimed_ids);
    sqlite3_value_free(b->last_id);
    sqlite3_finalize(b->select_first);
    sqlite3_finalize(b->select_after);
    sqlite3_finalize(b->update);
    sqlite3_finalize(b->count);
    sqlite3_close(b->conn);
    free(b);
    db->backend = NULL;
}

static long long sqlite_count_pending(batch_db *db)
{
    sqlite_backend *b = db->backend;
    long long pending = -1;
    sqlite3_reset(b->count);
    if (sqlite3_step(b->count) == SQLITE_ROW)
        pending = sqlite3_column_int64(b->count, 0);
    sqlite3_reset(b->count);
    return pending;
}

static const batch_db_ops sqlite_ops = {sqlite_claim, sqlite_commit, sqlite_rollback, sqlite_close,
                                        sqlite_count_pending};

/* The declared type of every column named by the target, from
 * pragma_table_info; false naming the missing table or column. */
static bool check_columns(batch_db *db, sqlite_backend *b, char *err, size_t n)
{
    const batch_db_target *t = db->target;
    const char *table = strchr(t->table, '.') ? strchr(t->table, '.') + 1 : t->table;
    sqlite3_stmt *s;
    if (sqlite3_prepare_v2(b->conn, "SELECT name, type FROM pragma_table_info(?1)", -1, &s, NULL) !=
        SQLITE_OK)
        return fail(err, n, "%s: %s", db->display_url, sqlite3_errmsg(b->conn));
    sqlite3_bind_text(s, 1, table, -1, SQLITE_STATIC);
    const char *wanted[4] = {t->id_column, t->input_column, t->output_column, t->updated_column};
    const char *flags[4] = {"--id-column", "--input-column", "--output-column", "--updated-column"};
    bool found[4] = {false, false, false, t->updated_column == NULL};
    bool id_integer = false, any = false;
    int rc;
    while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
        any = true;
        const char *name = (const char *)sqlite3_column_text(s, 0);
        const char *type = (const char *)sqlite3_column_text(s, 1);
        for (int i = 0; i < 4; i++)
            if (wanted[i] && name && strcasecmp(name, wanted[i]) == 0) {
                found[i] = true;
                if (i == 0)
                    id_integer = type && strcasestr(type, "INT") != NULL;
            }
    }
    sqlite3_finalize(s);
    if (rc != SQLITE_DONE)
        return fail(err, n, "%s: %s", db->display_url, sqlite3_errmsg(b->conn));
    if (!any)
        return fail(err, n, "%s: table '%s' does not exist", db->display_url, t->table);
    for (int i = 0; i < 4; i++)
        if (!found[i])
            return fail(err, n, "%s: table '%s' has no column '%s' (%s)", db->display_url, t->table,
                        wanted[i], flags[i]);
    if (t->shard_count > 0 && !id_integer)
        return fail(err, n,
                    "--shard: rows are split by id modulo n, so --id-column '%s' must "
                    "be declared INTEGER",
                    t->id_column);
    return true;
}

bool batch_db_open_sqlite(batch_db *db, const char *path, char *err, size_t n)
{
    sqlite_backend *b = calloc(1, sizeof(*b));
    if (!b)
        return fail(err, n, "out of memory");
    db->backend = b;
    db->ops = &sqlite_ops;
    /* READWRITE without CREATE: a mistyped path is an error, not a new database */
    if (sqlite3_open_v2(path, &b->conn, SQLITE_OPEN_READWRITE | SQLITE_OPEN_NOMUTEX, NULL) !=
        SQLITE_OK)
        return fail(err, n, "%s: cannot open %s: %s", db->display_url, path,
                    b->conn ? sqlite3_errmsg(b->conn) : "out of memory");
    sqlite3_busy_handler(b->conn, wait_for_lock, NULL);
    if (!check_columns(db, b, err, n))
        return false;
    char shard[256] = "";
    if (db->target->shard_count > 0)
        snprintf(shard, sizeof(shard), " AND ((%s %% %lld) + %lld) %% %lld = %lld", db->id,
                 db->target->shard_count, db->target->shard_count, db->target->shard_count,
                 db->target->shard_index);
    char sql[1024];
    snprintf(sql, sizeof(sql), "SELECT %s, %s FROM %s WHERE %s IS NULL%s ORDER BY %s LIMIT ?2",
             db->id, db->input, db->table, db->output, shard, db->id);
    int rc = sqlite3_prepare_v2(b->conn, sql, -1, &b->select_first, NULL);
    if (rc == SQLITE_OK) {
        snprintf(sql, sizeof(sql),
                 "SELECT %s, %s FROM %s WHERE %s IS NULL AND %s > ?1%s ORDER BY %s LIMIT ?2",
                 db->id, db->input, db->table, db->output, db->id, shard, db->id);
        rc = sqlite3_prepare_v2(b->conn, sql, -1, &b->select_after, NULL);
    }
    if (rc == SQLITE_OK) {
        char updated[128] = "";
        if (db->target->updated_column)
            snprintf(updated, sizeof(updated), ", %s = CURRENT_TIMESTAMP", db->updated);
        snprintf(sql, sizeof(sql), "UPDATE %s SET %s = ?1%s WHERE %s = ?2", db->table, db->output,
                 updated, db->id);
        rc = sqlite3_prepare_v2(b->conn, sql, -1, &b->update, NULL);
    }
    if (rc == SQLITE_OK) {
        snprintf(sql, sizeof(sql), "SELECT count(*) FROM %s WHERE %s IS NULL%s", db->table,
                 db->output, shard);
        rc = sqlite3_prepare_v2(b->conn, sql, -1, &b->count, NULL);
    }
    if (rc != SQLITE_OK)
        return fail(err, n, "%s: %s", db->display_url, sqlite3_errmsg(b->conn));
    return true;
}
