/*
 * run_db.c — `inferd batch MODEL --db URL --table T --id-column ID
 * --input-column IN --output-column OUT`: the book's batch pattern. Each
 * chunk: claim up to batch_size rows whose OUT IS NULL (db.h says how runs
 * never share a row), decode each IN cell (a JSON array of numbers), run the
 * valid rows through the engine at once, write their predictions and commit.
 * A bad cell is reported with its row id and left NULL; the run goes on
 * past it (the cursor moves beyond it) until --max-errors.
 */
#include "batch.h"

#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "db.h"
#include "predictor.h"
#include "reader.h"
#include "tensor_json.h"

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

static double now_seconds(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

/* The cell as `features` numbers; false with the reason. */
static bool decode_cell(const char *cell, const char *column, double *values, size_t features,
                        char *why, size_t n)
{
    if (!cell)
        return fail(why, n, "column '%s' is NULL", column);
    json_error_t jerr;
    json_t *j = json_loads(cell, JSON_DECODE_ANY, &jerr);
    if (!j)
        return fail(why, n, "column '%s' is not JSON (column %d: %s)", column, jerr.column,
                    jerr.text);
    char inner[512];
    bool ok = json_is_array(j) ? batch_json_values(j, values, features, inner, sizeof(inner))
                               : fail(inner, sizeof(inner), "expected a JSON array of numbers");
    json_decref(j);
    return ok ? true : fail(why, n, "column '%s': %s", column, inner);
}

bool batch_run_db(const ifd_model *model, const batch_options *o, const batch_callbacks *cb,
                  batch_summary *summary, char *err, size_t n)
{
    double started = now_seconds();
    memset(summary, 0, sizeof(*summary));
    if (o->batch_size < 1)
        return fail(err, n, "--batch-size must be at least 1");
    batch_predictor p;
    if (!batch_predictor_open(&p, model, o->threads, o->batch_size, o->outputs, o->labels, err, n))
        return false;
    if (p.notice[0] && cb && cb->notice)
        cb->notice(cb->context, p.notice);
    batch_db_target target = {.table = o->table,
                              .id_column = o->db_id_column,
                              .input_column = o->input_column,
                              .output_column = o->output_column,
                              .updated_column = o->updated_column,
                              .shard_index = o->shard_index,
                              .shard_count = o->shard_count};
    batch_db *db = NULL;
    int errors_fd = -1;
    double *values = malloc(p.features * sizeof(*values));
    size_t *which = calloc(p.batch_size, sizeof(*which));
    char **predictions = calloc(p.batch_size, sizeof(*predictions));
    bool ok = false, stop = false;
    char why[1024], last_bad[1400] = "";
    long long bad = 0, written = 0;
    if (!values || !which || !predictions) {
        fail(err, n, "out of memory");
        goto done;
    }
    if (!batch_db_open(o->db_url, &target, &db, err, n))
        goto done;
    if (o->errors_path &&
        (errors_fd = open(o->errors_path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644)) < 0) {
        fail(err, n, "%s: %s", o->errors_path, strerror(errno));
        goto done;
    }
    /* for progress: rows other runs take meanwhile make the ETA pessimistic */
    long long pending = cb && cb->progress ? batch_db_count_pending(db) : -1;
    while (!stop) {
        const batch_db_row *rows;
        size_t count, valid = 0;
        /* a claim is at most batch_size rows, so the valid ones fit one engine run */
        if (!batch_db_claim(db, p.batch_size, &rows, &count, err, n))
            goto done;
        if (count == 0) {
            batch_db_rollback(db);
            break;
        }
        for (size_t i = 0; i < count; i++) {
            if (decode_cell(rows[i].values, o->input_column, values, p.features, why,
                            sizeof(why)) &&
                batch_predictor_set_row(&p, valid, values, why, sizeof(why))) {
                which[valid++] = i;
                continue;
            }
            char line[1600];
            snprintf(line, sizeof(line), "%s table %s, %s %s: %s", batch_db_display_url(db),
                     o->table, o->db_id_column, rows[i].id, why);
            snprintf(last_bad, sizeof(last_bad), "%s %s: %s", o->db_id_column, rows[i].id, why);
            if (errors_fd >= 0) {
                size_t len = strlen(line);
                line[len] = '\n';
                if (write(errors_fd, line, len + 1) != (ssize_t)(len + 1)) {
                    fail(err, n, "%s: %s", o->errors_path, strerror(errno));
                    goto done;
                }
            } else if (cb && cb->notice) {
                cb->notice(cb->context, line);
            }
            bad++;
            if (o->max_errors > 0 && bad >= o->max_errors) {
                stop = true; /* commit the good rows before it; the rest stay NULL */
                break;
            }
        }
        if (!batch_predictor_run(&p, valid, why, sizeof(why))) {
            fail(err, n, "%s table %s, %s %s to %s: %s", batch_db_display_url(db), o->table,
                 o->db_id_column, rows[0].id, rows[count - 1].id, why);
            goto done;
        }
        for (size_t r = 0; r < valid; r++) {
            json_t *row = batch_predictor_row_json(&p, r);
            size_t len;
            predictions[r] = row ? json_encode(row, &len) : NULL;
            json_decref(row);
            if (!predictions[r]) {
                fail(err, n, "out of memory");
                goto done;
            }
        }
        bool committed =
            batch_db_commit(db, which, (const char *const *)predictions, valid, err, n);
        for (size_t r = 0; r < valid; r++) {
            free(predictions[r]);
            predictions[r] = NULL;
        }
        if (!committed)
            goto done;
        written += (long long)valid;
        if (cb && cb->progress) {
            double fraction = -1;
            if (pending > 0)
                fraction = (double)(written + bad) / (double)pending;
            batch_progress pr = {.rows_done = written,
                                 .rows_this_run = written,
                                 .bad_rows = bad,
                                 .fraction = fraction > 1 ? 1 : fraction,
                                 .elapsed = now_seconds() - started};
            cb->progress(cb->context, &pr);
        }
    }
    if (stop) {
        fail(err, n,
             "stopped after %lld bad rows (--max-errors %lld); the last, %s; %lld rows "
             "written",
             bad, o->max_errors, last_bad, written);
        goto done;
    }
    if (cb && cb->progress) {
        batch_progress pr = {.rows_done = written,
                             .rows_this_run = written,
                             .bad_rows = bad,
                             .fraction = 1,
                             .elapsed = now_seconds() - started,
                             .final = true};
        cb->progress(cb->context, &pr);
    }
    ok = true;
done:
    summary->rows_written = written;
    summary->bad_rows = bad;
    summary->seconds = now_seconds() - started;
    for (size_t r = 0; predictions && r < p.batch_size; r++)
        free(predictions[r]);
    free(predictions);
    free(which);
    free(values);
    if (errors_fd >= 0)
        close(errors_fd);
    batch_db_close(db);
    batch_predictor_close(&p);
    return ok;
}
