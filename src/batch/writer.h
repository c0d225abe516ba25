/*
 * writer.h — output rows of `inferd batch` files: CSV (row number, id, one
 * column per output element, label) or JSON Lines (one object per row).
 * Numbers are written by src/wire's encoder, digit for digit what
 * `inferd predict` prints.
 */
#ifndef INFERD_BATCH_WRITER_H
#define INFERD_BATCH_WRITER_H

#include <stdbool.h>
#include <stddef.h>

#include "predictor.h"
#include "reader.h"
#include "textbuf.h"

typedef struct batch_writer {
    batch_format format;
    const char *id_name; /* the id column's name, or NULL */
    size_t n_columns;    /* CSV: value columns, known from the first row */
    bool columns_known;
} batch_writer;

/* CSV: the header line, from the shape of row r of the last run. */
bool batch_writer_header(batch_writer *w, const batch_predictor *p, size_t r, textbuf *out,
                         char *err, size_t err_size);
/* Row r of the last run, from `origin`. CSV rows must have the header's shape. */
bool batch_writer_row(batch_writer *w, const batch_predictor *p, size_t r,
                      const batch_row_origin *origin, textbuf *out, char *err, size_t err_size);

#endif /* INFERD_BATCH_WRITER_H */
