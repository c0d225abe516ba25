/*
 * db.h — the tables `inferd batch --db URL` predicts, behind one interface
 * with a SQLite and a PostgreSQL backend. A chunk is claimed (rows whose
 * output column IS NULL, after the last id this run saw, in this run's shard)
 * inside a transaction that stays open until its predictions are written and
 * committed, so a chunk is written whole or not at all, and no two runs
 * predict one row: PostgreSQL locks the claimed rows (FOR UPDATE SKIP
 * LOCKED: other runs take the next rows), SQLite takes its one write lock
 * for the chunk (BEGIN IMMEDIATE: other runs wait for it).
 *
 * Table and column names are checked to be plain SQL identifiers (letters,
 * digits, _; a table may be schema.table) and always quoted; values only
 * travel as bound parameters.
 * Thread safety: one connection per batch_db; one thread at a time.
 */
#ifndef INFERD_BATCH_DB_H
#define INFERD_BATCH_DB_H

#include <stdbool.h>
#include <stddef.h>

typedef struct batch_db_target {
    const char *table, *id_column, *input_column, *output_column;
    const char *updated_column;         /* NULL: none */
    long long shard_index, shard_count; /* shard_count 0: every row */
} batch_db_target;

/* One claimed row: its id and its input cell as text (NULL for SQL NULL). */
typedef struct batch_db_row {
    char *id;
    char *values;
} batch_db_row;

typedef struct batch_db batch_db;

/* Connects and checks that the table and every column exist (and that the id
 * is an integer when sharding). The message names the URL (without its
 * password), table or column. */
bool batch_db_open(const char *url, const batch_db_target *target, batch_db **out, char *err,
                   size_t err_size);
void batch_db_close(batch_db *db);
/* The URL with any password replaced by "***", for messages. */
const char *batch_db_display_url(const batch_db *db);

/* Begin a transaction and claim up to `limit` rows (fewer, or none, at the
 * end). The rows stay valid until the next claim. */
bool batch_db_claim(batch_db *db, size_t limit, const batch_db_row **rows, size_t *count, char *err,
                    size_t err_size);
/* Write predictions (JSON text) for claimed rows `which` and commit; the
 * rows not named stay NULL (bad input). */
bool batch_db_commit(batch_db *db, const size_t *which, const char *const *predictions,
                     size_t count, char *err, size_t err_size);
void batch_db_rollback(batch_db *db);
/* Rows still to predict in this run's shard (for progress and ETA); -1 when
 * the count fails (not an error: progress just has no ETA). */
long long batch_db_count_pending(batch_db *db);

/* ---- for the backends (db_sqlite.c, db_postgres.c) ---- */
typedef struct batch_db_ops {
    bool (*claim)(batch_db *db, size_t limit, char *err, size_t n);
    bool (*commit)(batch_db *db, const size_t *which, const char *const *predictions, size_t count,
                   char *err, size_t n);
    void (*rollback)(batch_db *db);
    void (*close)(batch_db *db);
    long long (*count_pending)(batch_db *db);
} batch_db_ops;

struct batch_db {
    const batch_db_ops *ops;
    void *backend;
    char display_url[1024];
    /* quoted identifiers */
    char table[160], id[80], input[80], output[80], updated[80];
    const batch_db_target *target;
    batch_db_row *rows; /* claimed by the last claim */
    size_t n_rows, rows_cap;
    bool in_transaction;
};

bool batch_db_add_row(batch_db *db, const char *id, const char *values);
void batch_db_clear_rows(batch_db *db);
bool batch_db_open_sqlite(batch_db *db, const char *path, char *err, size_t n);
bool batch_db_open_postgres(batch_db *db, const char *url, char *err, size_t n);

#endif /* INFERD_BATCH_DB_H */
