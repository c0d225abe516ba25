/*
 * db_postgres.c — the PostgreSQL backend of `inferd batch --db
 * postgresql://...` (libpq, Debian libpq-dev). A chunk is claimed with
 * SELECT ... FOR UPDATE SKIP LOCKED inside a transaction: concurrent runs
 * (and Kubernetes pods without --shard) each lock different rows, and a
 * row another run has just predicted no longer matches IS NULL when it is
 * re-checked under the lock. The chunk's predictions go back in one UPDATE
 * joined to json_each_text($1) (id -> prediction) and one COMMIT; a killed
 * run's transaction is rolled back by the server and its rows stay NULL
 * for the next run.
 */
#include "db.h"

#include <libpq-fe.h>
#include <jansson.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct postgres_backend {
    PGconn *conn;
    char id_type[128], output_type[128];
    /* the claimed columns are selected as text under other names: ORDER BY
     * "id" would otherwise sort by the text, not by the id the cursor compares */
    char select_first[1024], select_after[1024], update[1024], count[1024];
    char *last_id;
} postgres_backend;

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

/* Writes one SQL statement; false when it does not fit (never a cut query). */
static bool format_sql(char *sql, size_t size, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static bool format_sql(char *sql, size_t size, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int written = vsnprintf(sql, size, fmt, ap);
    va_end(ap);
    return written >= 0 && (size_t)written < size;
}

/* libpq messages end with a newline; messages here are one line. */
static const char *pg_message(PGconn *conn)
{
    static _Thread_local char line[512];
    snprintf(line, sizeof(line), "%s", PQerrorMessage(conn));
    for (char *c = line; *c; c++)
        if (*c == '\n')
            *c = c[1] ? ' ' : '\0';
    return line;
}

static bool exec_ok(batch_db *db, const char *sql, char *err, size_t n)
{
    postgres_backend *b = db->backend;
    PGresult *r = PQexec(b->conn, sql);
    bool ok = PQresultStatus(r) == PGRES_COMMAND_OK;
    if (!ok)
        fail(err, n, "%s: %s: %s", db->display_url, sql, pg_message(b->conn));
    PQclear(r);
    return ok;
}

static void postgres_rollback(batch_db *db)
{
    postgres_backend *b = db->backend;
    PQclear(PQexec(b->conn, "ROLLBACK"));
    db->in_transaction = false;
}

static bool postgres_claim(batch_db *db, size_t limit, char *err, size_t n)
{
    postgres_backend *b = db->backend;
    if (!exec_ok(db, "BEGIN", err, n))
        return false;
    db->in_transaction = true;
    char limit_text[32];
    snprintf(limit_text, sizeof(limit_text), "%zu", limit);
    const char *params[2] = {limit_text, b->last_id};
    PGresult *r = b->last_id
                      ? PQexecParams(b->conn, b->select_after, 2, NULL, params, NULL, NULL, 0)
                      : PQexecParams(b->conn, b->select_first, 1, NULL, params, NULL, NULL, 0);
    if (PQresultStatus(r) != PGRES_TUPLES_OK) {
        fail(err, n, "%s: reading %s: %s", db->display_url, db->table, pg_message(b->conn));
        PQclear(r);
        return false;
    }
    int rows = PQntuples(r);
    for (int i = 0; i < rows; i++) {
        const char *values = PQgetisnull(r, i, 1) ? NULL : PQgetvalue(r, i, 1);
        if (!batch_db_add_row(db, PQgetvalue(r, i, 0), values)) {
            PQclear(r);
            return fail(err, n, "out of memory");
        }
    }
    PQclear(r);
    if (db->n_rows) {
        free(b->last_id);
        if (!(b->last_id = strdup(db->rows[db->n_rows - 1].id)))
            return fail(err, n, "out of memory");
    }
    return true;
}

static bool postgres_commit(batch_db *db, const size_t *which, const char *const *predictions,
                            size_t count, char *err, size_t n)
{
    postgres_backend *b = db->backend;
    if (count) {
        json_t *batch = json_object();
        for (size_t i = 0; i < count; i++)
            json_object_set_new(batch, db->rows[which[i]].id, json_string(predictions[i]));
        char *text = json_dumps(batch, JSON_COMPACT);
        json_decref(batch);
        if (!text) {
            postgres_rollback(db);
            return fail(err, n, "out of memory");
        }
        const char *params[1] = {text};
        PGresult *r = PQexecParams(b->conn, b->update, 1, NULL, params, NULL, NULL, 0);
        free(text);
        bool ok = PQresultStatus(r) == PGRES_COMMAND_OK;
        long long updated = ok ? atoll(PQcmdTuples(r)) : 0;
        if (!ok)
            fail(err, n, "%s: writing %s: %s", db->display_url, db->output, pg_message(b->conn));
        else if (updated != (long long)count)
            ok = fail(err, n, "%s: writing %s: %lld of %zu rows updated", db->display_url,
                      db->output, updated, count);
        PQclear(r);
        if (!ok) {
            postgres_rollback(db);
            return false;
        }
    }
    if (!exec_ok(db, "COMMIT", err, n)) {
        postgres_rollback(db);
        return false;
    }
    db->in_transaction = false;
    return true;
}

static void postgres_close(batch_db *db)
{
    postgres_backend *b = db->backend;
    if (!b)
        return;
    PQfinish(b->conn);
    free(b->last_id);
    free(b);
    db->backend = NULL;
}

static long long postgres_count_pending(batch_db *db)
{
    postgres_backend *b = db->backend;
    PGresult *r = PQexec(b->conn, b->count);
    long long pending = -1;
    if (PQresultStatus(r) == PGRES_TUPLES_OK && PQntuples(r) == 1)
        pending = atoll(PQgetvalue(r, 0, 0));
    PQclear(r);
    return pending;
}

static const batch_db_ops postgres_ops = {postgres_claim, postgres_commit, postgres_rollback,
                                          postgres_close, postgres_count_pending};

/* Column types from the catalog (format_type), which also proves that the
 * table and columns exist. */
static bool check_columns(batch_db *db, char *err, size_t n)
{
    postgres_backend *b = db->backend;
    const batch_db_target *t = db->target;
    const char *params[1] = {db->table};
    PGresult *r = PQexecParams(b->conn,
                               "SELECT a.attname, format_type(a.atttypid, a.atttypmod), "
                               "to_regclass($1) IS NOT NULL FROM (SELECT 1) one LEFT JOIN "
                               "pg_attribute a ON a.attrelid = to_regclass($1) AND a.attnum > 0 "
                               "AND NOT a.attisdropped",
                               1, NULL, params, NULL, NULL, 0);
    if (PQresultStatus(r) != PGRES_TUPLES_OK) {
        fail(err, n, "%s: %s", db->display_url, pg_message(b->conn));
        PQclear(r);
        return false;
    }
    if (PQntuples(r) < 1 || strcmp(PQgetvalue(r, 0, 2), "t") != 0) {
        PQclear(r);
        return fail(err, n, "%s: table '%s' does not exist", db->display_url, t->table);
    }
    const char *wanted[4] = {t->id_column, t->input_column, t->output_column, t->updated_column};
    const char *flags[4] = {"--id-column", "--input-column", "--output-column", "--updated-column"};
    bool found[4] = {false, false, false, t->updated_column == NULL};
    for (int i = 0; i < PQntuples(r); i++) {
        const char *name = PQgetvalue(r, i, 0), *type = PQgetvalue(r, i, 1);
        for (int k = 0; k < 4; k++) {
            if (!wanted[k] || strcmp(name, wanted[k]) != 0)
                continue;
            found[k] = true;
            if (k == 0)
                snprintf(b->id_type, sizeof(b->id_type), "%s", type);
            if (k == 2)
                snprintf(b->output_type, sizeof(b->output_type), "%s", type);
        }
    }
    PQclear(r);
    for (int k = 0; k < 4; k++)
        if (!found[k])
            return fail(err, n, "%s: table '%s' has no column '%s' (%s)", db->display_url, t->table,
                        wanted[k], flags[k]);
    if (t->shard_count > 0 && strcmp(b->id_type, "integer") != 0 &&
        strcmp(b->id_type, "bigint") != 0 && strcmp(b->id_type, "smallint") != 0)
        return fail(err, n,
                    "--shard: rows are split by id modulo n, so --id-column '%s' must be "
                    "an integer (it is %s)",
                    t->id_column, b->id_type);
    return true;
}

bool batch_db_open_postgres(batch_db *db, const char *url, char *err, size_t n)
{
    char *parse_error = NULL;
    PQconninfoOption *parsed = PQconninfoParse(url, &parse_error);
    if (!parsed) {
        fail(err, n, "--db '%s' does not parse: %s", db->display_url,
             parse_error ? parse_error : "out of memory");
        for (char *c = err; *c; c++)
            if (*c == '\n')
                *c = c[1] ? ' ' : '\0';
        PQfreemem(parse_error);
        return false;
    }
    PQconninfoFree(parsed);
    postgres_backend *b = calloc(1, sizeof(*b));
    if (!b)
        return fail(err, n, "out of memory");
    db->backend = b;
    db->ops = &postgres_ops;
    b->conn = PQconnectdb(url);
    if (!b->conn || PQstatus(b->conn) != CONNECTION_OK)
        return fail(err, n, "%s: cannot connect: %s", db->display_url,
                    b->conn ? pg_message(b->conn) : "out of memory");
    PQclear(PQexec(b->conn, "SET client_min_messages = warning"));
    if (!check_columns(db, err, n))
        return false;
    char shard[256] = "";
    long long count = db->target->shard_count;
    if (count > 0)
        snprintf(shard, sizeof(shard), " AND mod(mod(t.%s, %lld) + %lld, %lld) = %lld", db->id,
                 count, count, count, db->target->shard_index);
    char updated[128] = "";
    if (db->target->updated_column)
        snprintf(updated, sizeof(updated), ", %s = now()", db->updated);
    bool fits =
        format_sql(b->select_first, sizeof(b->select_first),
                   "SELECT t.%s::text AS claimed_id, t.%s::text AS claimed_values FROM %s AS t "
                   "WHERE t.%s IS NULL%s ORDER BY t.%s LIMIT $1 FOR UPDATE SKIP LOCKED",
                   db->id, db->input, db->table, db->output, shard, db->id) &&
        format_sql(b->select_after, sizeof(b->select_after),
                   "SELECT t.%s::text AS claimed_id, t.%s::text AS claimed_values FROM %s AS t "
                   "WHERE t.%s IS NULL AND t.%s > $2::%s%s ORDER BY t.%s LIMIT $1 "
                   "FOR UPDATE SKIP LOCKED",
                   db->id, db->input, db->table, db->output, db->id, b->id_type, shard, db->id) &&
        format_sql(b->count, sizeof(b->count), "SELECT count(*) FROM %s AS t WHERE t.%s IS NULL%s",
                   db->table, db->output, shard) &&
        format_sql(b->update, sizeof(b->update),
                   "UPDATE %s AS t SET %s = u.value::%s%s FROM json_each_text($1::json) AS u "
                   "WHERE t.%s = u.key::%s",
                   db->table, db->output, b->output_type, updated, db->id, b->id_type);
    if (!fits)
        return fail(err, n, "%s: table '%s': its table and column names make a query longer than %zu bytes",
                    db->display_url, db->table, sizeof(b->update) - 1);
    return true;
}
