/*
 * reader.h — the input files of `inferd batch`: CSV with a header row
 * (--columns picks the inputs, an id column is carried through), JSON Lines
 * (one row or one request object per line) and NumPy .npy arrays. A reader
 * hands out one row at a time as doubles and knows the byte offset of the
 * next unread row, which is what a resume point records.
 *
 * Thread safety: one thread per reader.
 */
#ifndef INFERD_BATCH_READER_H
#define INFERD_BATCH_READER_H

#include <stdbool.h>
#include <stddef.h>

typedef enum batch_format { BATCH_FORMAT_CSV, BATCH_FORMAT_JSONL, BATCH_FORMAT_NPY } batch_format;

/* From --format when given, else from the file name's extension. */
bool batch_format_pick(const char *path, const char *forced, bool output, batch_format *format,
                       char *err, size_t err_size);
const char *batch_format_name(batch_format format);

typedef struct batch_reader batch_reader;

typedef struct batch_reader_options {
    const char *columns;    /* CSV: comma-separated input column names; NULL: all but the id */
    const char *id_column;  /* CSV/JSONL: the id carried to the output; NULL: "id" if present */
    const char *input_name; /* JSONL objects may key the row by the model's input name */
    size_t features;        /* values per row the model takes */
} batch_reader_options;

/* Where one row came from: 1-based line of the file (CSV, JSONL) or 0-based
 * row of the array (.npy), its 0-based data row number, and its id. */
typedef struct batch_row_origin {
    long long line;
    long long row;
    char id[256];
    bool has_id;
} batch_row_origin;

bool batch_reader_open(const char *path, batch_format format, const batch_reader_options *options,
                       batch_reader **out, char *err, size_t err_size);
void batch_reader_close(batch_reader *reader);

enum { BATCH_ROW = 1, BATCH_END = 0, BATCH_BAD_ROW = -1, BATCH_READ_FAILED = -2 };
/* The next row into values (options.features doubles). BATCH_BAD_ROW: err
 * says why (without the location, which is in origin); the reader has moved
 * past the row. BATCH_READ_FAILED: the file cannot be read further. */
int batch_reader_next(batch_reader *reader, double *values, batch_row_origin *origin, char *err,
                      size_t err_size);

/* The resume point: byte offset of the next unread row, with the line and
 * row numbers it has; batch_reader_seek returns there. */
typedef struct batch_read_position {
    long long offset, next_line, next_row;
} batch_read_position;
batch_read_position batch_reader_position(const batch_reader *reader);
bool batch_reader_seek(batch_reader *reader, const batch_read_position *position, char *err,
                       size_t err_size);

/* The name of the input's id column (CSV: --id-column or "id" when the
 * header has it; JSONL: the member of that name), NULL when rows have none
 * (they are then known by row number). */
const char *batch_reader_id_name(const batch_reader *reader);

/* A JSON row (numbers, nested arrays flattened) into `features` doubles;
 * false naming the first value that is not a number, or the count. */
struct json_t;
bool batch_json_values(const struct json_t *row, double *values, size_t features, char *err,
                       size_t err_size);

#endif /* INFERD_BATCH_READER_H */
