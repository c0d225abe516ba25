/*
 * batch.h — `inferd batch`: offline inference over files and database
 * tables, the book's batch pattern done so that nothing is lost and nothing
 * is predicted twice.
 *
 * Files (run_files.c): rows are read from CSV, JSON Lines or .npy, predicted
 * batch_size rows per engine run, and appended to OUTPUT.partial one chunk
 * at a time; after each chunk a resume point (OUTPUT.resume) is replaced
 * atomically, so a run killed at any moment resumes after the last chunk
 * fully written, and OUTPUT itself only appears, by rename, once complete.
 * Databases (run_db.c): rows whose output column is NULL are claimed, predicted
 * and written back in one transaction per chunk (SQLite: one writer at a time;
 * PostgreSQL: SELECT ... FOR UPDATE SKIP LOCKED), optionally one shard of n.
 *
 * The room depends on the engine and src/wire only; it prints nothing and
 * reports progress and notices through callbacks.
 * Thread safety: one run per thread; runs share nothing.
 */
#ifndef INFERD_BATCH_BATCH_H
#define INFERD_BATCH_BATCH_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>

#include "inferd/inferd.h"

typedef struct batch_progress {
    long long rows_done;     /* rows predicted and written, this run and earlier ones resumed */
    long long rows_this_run; /* of which by this process */
    long long bad_rows;
    double fraction; /* 0..1 of the input consumed, or < 0 when unknown */
    double elapsed;  /* seconds since this process started the run */
    bool final;      /* the last report */
} batch_progress;

typedef struct batch_callbacks {
    void *context;
    /* After every chunk written (and once more, final, at the end). */
    void (*progress)(void *context, const batch_progress *progress);
    /* Things the user should know that are not errors (one line each), and
     * bad rows when there is no errors file. */
    void (*notice)(void *context, const char *message);
} batch_callbacks;

typedef struct batch_options {
    size_t batch_size;       /* rows per engine run */
    int threads;             /* files: chunk workers (one engine thread each); db: intra-op
                                threads of the session; <= 0: one per core */
    const char *outputs;     /* comma-separated output names to write; NULL: all */
    const json_t *labels;    /* {"0": "setosa", ...} or NULL */
    const char *errors_path; /* bad rows, one line each; NULL: through notice (stderr) */
    long long max_errors;    /* stop when this many bad rows were seen; <= 0: never */

    /* files */
    const char *input_path, *output_path;
    const char *input_format, *output_format; /* NULL: from the extension */
    const char *columns;                      /* CSV input columns, comma-separated */
    const char *id_column; /* CSV/JSONL id carried to the output; NULL: "id" when present */
    bool resume;
    bool sync; /* fdatasync each chunk before its resume point (power-loss safe) */

    /* databases */
    const char *db_url; /* sqlite:///path.db (relative), sqlite:////abs.db, postgresql://... */
    const char *table, *db_id_column, *input_column, *output_column;
    const char *updated_column; /* set to the current time with each prediction; NULL: none */
    long long shard_index, shard_count; /* shard_count 0: no sharding */
} batch_options;

typedef struct batch_summary {
    long long rows_written; /* by this process */
    long long bad_rows;     /* seen by this process */
    double seconds;
} batch_summary;

/* Both return false with err naming the file/line, table/row id or column and
 * the reason; whatever was written before stays written and resumable. */
bool batch_run_files(const ifd_model *model, const batch_options *options,
                     const batch_callbacks *callbacks, batch_summary *summary, char *err,
                     size_t err_size);
bool batch_run_db(const ifd_model *model, const batch_options *options,
                  const batch_callbacks *callbacks, batch_summary *summary, char *err,
                  size_t err_size);

#endif /* INFERD_BATCH_BATCH_H */
