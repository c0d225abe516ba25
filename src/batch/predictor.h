/*
 * predictor.h — one engine session run over a chunk of rows along the
 * model's batch dimension, for `inferd batch`. Rows arrive as doubles (from
 * CSV, JSON Lines, .npy or a database cell), are checked and converted to the
 * input's element type in place in one [rows, ...] tensor, and every output
 * comes back split per row as JSON (the codec of src/wire), with the class
 * label from a label file when one was given.
 *
 * Thread safety: a predictor owns one session; one thread at a time.
 */
#ifndef INFERD_BATCH_PREDICTOR_H
#define INFERD_BATCH_PREDICTOR_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>

#include "inferd/inferd.h"

typedef struct batch_predictor {
    const ifd_model *model;
    ifd_session *session;
    const ifd_io_info *input;
    size_t features; /* elements per row (product of the non-batch dims) */
    int row_rank;    /* dims of one row, after the batch dimension */
    int64_t row_dims[IFD_MAX_RANK];
    size_t batch_size; /* rows per engine run */
    size_t n_outputs;
    size_t *selected; /* indices of the outputs written, in order */
    size_t n_selected;
    const json_t *labels;   /* {"0": "setosa", ...}, or NULL */
    size_t label_output;    /* output whose per-row value names the class */
    bool label_by_argmax;   /* the label output holds scores, not a class */
    ifd_value *input_value; /* capacity batch_size rows */
    ifd_value **outputs;
    json_t **output_rows; /* per selected output: a JSON array, one item per row */
    json_t *label_rows;   /* one label per row, or NULL */
    size_t rows;          /* rows in the last run */
    char notice[256];     /* said once to the user (a fixed batch dimension), or "" */
} batch_predictor;

/* Load-time checks: one tensor input whose first dimension is the batch
 * (fixed at 1 falls back to one row per run and says so in notice), every
 * other dimension known (or the only one, taken as given by the data).
 * `outputs` is a comma-separated list of output names to write (NULL: all).
 * labels is borrowed. On failure p holds nothing to close. */
bool batch_predictor_open(batch_predictor *p, const ifd_model *model, int threads,
                          size_t batch_size, const char *outputs, const json_t *labels, char *err,
                          size_t err_size);
void batch_predictor_close(batch_predictor *p);

/* Store row `r` of the next chunk (values: p->features doubles). false with a
 * reason (a fraction for an integer input, out of range) when the row cannot
 * be the input's type; the slot is then free for another row. */
bool batch_predictor_set_row(batch_predictor *p, size_t r, const double *values, char *err,
                             size_t err_size);
/* One engine run over rows [0, rows); then row outputs are ready. */
bool batch_predictor_run(batch_predictor *p, size_t rows, char *err, size_t err_size);
/* Row r of the last run: selected output k, and its label (NULL without labels). */
json_t *batch_predictor_output(const batch_predictor *p, size_t k, size_t r);
json_t *batch_predictor_label(const batch_predictor *p, size_t r);
const char *batch_predictor_output_name(const batch_predictor *p, size_t k);

/* The prediction of row r as one JSON value: an object of the selected
 * outputs (and "label"), or the bare value when one output and no labels
 * were asked for (the book's `{"0": p0, "1": p1, ...}` cells). New reference. */
json_t *batch_predictor_row_json(const batch_predictor *p, size_t r);

#endif /* INFERD_BATCH_PREDICTOR_H */
