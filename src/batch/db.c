/*
 * db.c — URL dispatch, identifier checks and the claimed-row list shared by
 * the SQLite and PostgreSQL backends of `inferd batch --db` (see db.h).
 */
#include "db.h"

#include <ctype.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

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

/* A plain identifier: [A-Za-z_][A-Za-z0-9_]*, at most 63 bytes (PostgreSQL's
 * limit). Anything else is refused rather than escaped, so flags can never
 * carry SQL. */
static bool plain_identifier(const char *s, size_t len)
{
    if (len == 0 || len > 63 || !(isalpha((unsigned char)s[0]) || s[0] == '_'))
        return false;
    for (size_t i = 1; i < len; i++)
        if (!(isalnum((unsigned char)s[i]) || s[i] == '_'))
            return false;
    return true;
}

static bool quote_identifier(const char *flag, const char *name, bool qualified, char *out,
                             size_t size, char *err, size_t n)
{
    if (!name)
        return fail(err, n, "%s is required with --db", flag);
    const char *dot = qualified ? strchr(name, '.') : NULL;
    if (dot) {
        size_t a = (size_t)(dot - name);
        if (!plain_identifier(name, a) || !plain_identifier(dot + 1, strlen(dot + 1)))
            return fail(err, n,
                        "%s '%s': expected a plain SQL name (letters, digits, _), or "
                        "schema.table",
                        flag, name);
        snprintf(out, size, "\"%.*s\".\"%s\"", (int)a, name, dot + 1);
        return true;
    }
    if (!plain_identifier(name, strlen(name)))
        return fail(err, n,
                    "%s '%s': expected a plain SQL name (letters, digits and _, not "
                    "starting with a digit, at most 63)",
                    flag, name);
    snprintf(out, size, "\"%s\"", name);
    return true;
}

/* The URL for messages: a password in user:password@ or ?password= becomes ***. */
static void redact(const char *url, char *out, size_t size)
{
    const char *scheme = strstr(url, "://");
    const char *at = scheme ? strchr(scheme + 3, '@') : NULL;
    const char *colon = at ? memchr(scheme + 3, ':', (size_t)(at - scheme - 3)) : NULL;
    if (colon)
        snprintf(out, size, "%.*s:***%s", (int)(colon - url), url, at);
    else
        snprintf(out, size, "%s", url);
    char *password = strstr(out, "password=");
    if (password) {
        char rest[1024];
        char *value = password + 9;
        snprintf(rest, sizeof(rest), "%s", value + strcspn(value, "&"));
        snprintf(value, size - (size_t)(value - out), "***%s", rest);
    }
}

bool batch_db_open(const char *url, const batch_db_target *t, batch_db **out, char *err, size_t n)
{
    *out = NULL;
    batch_db *db = calloc(1, sizeof(*db));
    if (!db)
        return fail(err, n, "out of memory");
    db->target = t;
    redact(url, db->display_url, sizeof(db->display_url));
    bool ok =
        quote_identifier("--table", t->table, true, db->table, sizeof(db->table), err, n) &&
        quote_identifier("--id-column", t->id_column, false, db->id, sizeof(db->id), err, n) &&
        quote_identifier("--input-column", t->input_column, false, db->input, sizeof(db->input),
                         err, n) &&
        quote_identifier("--output-column", t->output_column, false, db->output, sizeof(db->output),
                         err, n) &&
        (!t->updated_column || quote_identifier("--updated-column", t->updated_column, false,
                                                db->updated, sizeof(db->updated), err, n));
    if (ok && t->shard_count > 0 && (t->shard_index < 0 || t->shard_index >= t->shard_count))
        ok = fail(err, n, "--shard %lld/%lld: the index must be from 0 to %lld", t->shard_index,
                  t->shard_count, t->shard_count - 1);
    if (ok) {
        if (strncmp(url, "sqlite:///", 10) == 0 && url[10])
            ok = batch_db_open_sqlite(db, url + 10, err, n);
        else if (strncmp(url, "postgresql://", 13) == 0 || strncmp(url, "postgres://", 11) == 0)
            ok = batch_db_open_postgres(db, url, err, n);
        else
            ok = fail(err, n,
                      "--db '%s': expected sqlite:///relative/path.db, "
                      "sqlite:////absolute/path.db or postgresql://user@host:port/database",
                      db->display_url);
    }
    if (!ok) {
        batch_db_close(db);
        return false;
    }
    *out = db;
    return true;
}

void batch_db_close(batch_db *db)
{
    if (!db)
        return;
    if (db->ops) {
        if (db->in_transaction)
            db->ops->rollback(db);
        db->ops->close(db);
    }
    batch_db_clear_rows(db);
    free(db->rows);
    free(db);
}

const char *batch_db_display_url(const batch_db *db)
{
    return db->display_url;
}

bool batch_db_add_row(batch_db *db, const char *id, const char *values)
{
    if (db->n_rows == db->rows_cap) {
        size_t cap = db->rows_cap ? db->rows_cap * 2 : 256;
        batch_db_row *grown = realloc(db->rows, cap * sizeof(*grown));
        if (!grown)
            return false;
        db->rows = grown;
        db->rows_cap = cap;
    }
    batch_db_row *row = &db->rows[db->n_rows];
    row->id = strdup(id ? id : "");
    row->values = values ? strdup(values) : NULL;
    if (!row->id || (values && !row->values)) {
        free(row->id);
        free(row->values);
        return false;
    }
    db->n_rows++;
    return true;
}

void batch_db_clear_rows(batch_db *db)
{
    for (size_t i = 0; i < db->n_rows; i++) {
        free(db->rows[i].id);
        free(db->rows[i].values);
    }
    db->n_rows = 0;
}

bool batch_db_claim(batch_db *db, size_t limit, const batch_db_row **rows, size_t *count, char *err,
                    size_t n)
{
    if (db->in_transaction)
        db->ops->rollback(db);
    batch_db_clear_rows(db);
    if (!db->ops->claim(db, limit, err, n))
        return false;
    *rows = db->rows;
    *count = db->n_rows;
    return true;
}

bool batch_db_commit(batch_db *db, const size_t *which, const char *const *predictions,
                     size_t count, char *err, size_t n)
{
    return db->ops->commit(db, which, predictions, count, err, n);
}

void batch_db_rollback(batch_db *db)
{
    if (db->in_transaction)
        db->ops->rollback(db);
}

long long batch_db_count_pending(batch_db *db)
{
    return db->ops->count_pending(db);
}
