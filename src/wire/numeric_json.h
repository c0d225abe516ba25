/*
 * numeric_json.h — the hot path of numeric request bodies: the book API's
 * {"data": [[x, ...], ...]} read straight into a float or double tensor, with
 * no jansson tree and no strtod for ordinary numbers. It accepts only that
 * exact form; anything else (another key, a string, a ragged row, a number
 * it cannot convert exactly) is left to the general path (jansson +
 * json_rows_to_tensor), which gives the same tensor or the precise error. So
 * the fast path never changes an answer, only what it costs.
 * Thread safety: pure functions.
 */
#ifndef INFERD_WIRE_NUMERIC_JSON_H
#define INFERD_WIRE_NUMERIC_JSON_H

#include <stdbool.h>
#include <stddef.h>

#include "inferd/inferd.h"

/* The rank-2 tensor of `dtype` (IFD_FLOAT or IFD_DOUBLE) that the body
 * {"data": [[...], ...]} holds, or NULL when the body is not exactly that
 * (or memory ran out): the caller then takes the general path. `body` need
 * not be NUL-terminated. */
ifd_value *numeric_json_book_rows(const char *body, size_t len, ifd_dtype dtype);

/* One JSON number at s[0..len) (the whole of it), as jansson reads it into a
 * double: integers through int64, other numbers correctly rounded. False
 * when it is not a JSON number or one the fast path leaves to jansson (an
 * integer beyond 18 digits). */
bool numeric_json_number(const char *s, size_t len, double *out);

/* KServe V2 infer bodies. The numbers of an input's "data" are most of
 * such a body, and a jansson tree of them costs a node per number. So the
 * body is scanned once for inputs[i].data arrays that are flat lists of
 * numbers the fast reader takes; each is blanked in a copy of the body
 * (a 0 and spaces, newlines kept, so every other byte keeps its line and
 * column and jansson parses, checks and words errors on the rest as
 * before) and read straight into the tensor by numeric_json_flat_tensor.
 * Anything else about a body (an escaped key, a nested or mixed array, a
 * number the fast reader leaves to jansson) leaves that array in place. */
#define NUMERIC_JSON_MAX_LIFTED 16

typedef struct numeric_json_span {
    size_t input;       /* index in "inputs" */
    size_t offset, len; /* the array's text in the original body, brackets included */
} numeric_json_span;

typedef struct numeric_json_lifted {
    char *text; /* the body with the lifted arrays blanked (malloc'd) */
    size_t count;
    numeric_json_span spans[NUMERIC_JSON_MAX_LIFTED];
} numeric_json_lifted;

/* True with *out filled when at least one array was lifted; false (nothing
 * to free) otherwise, or when memory ran out. */
bool numeric_json_v2_lift(const char *body, size_t len, numeric_json_lifted *out);
void numeric_json_lifted_free(numeric_json_lifted *lifted);
/* The lifted "data" of inputs[input], or NULL. */
const numeric_json_span *numeric_json_lifted_input(const numeric_json_lifted *lifted, size_t input);

/* The common V2 body read without jansson at all: {"id"?, "inputs": [{"name",
 * "shape", "datatype", "data": [numbers]}, ...], "outputs"?: [{"name"}, ...]}
 * with those keys only, each once, strings of printable ASCII without
 * escapes, shapes of at most IFD_MAX_RANK integers and flat data arrays.
 * False for any other body (another key, "parameters", an escape, a nested
 * array, a malformed body): the caller takes the jansson path, which gives
 * the same answer or words the error. Strings and data point into body. */
typedef struct numeric_json_text {
    const char *s;
    size_t len;
} numeric_json_text;

typedef struct numeric_json_v2_input {
    numeric_json_text name, datatype;
    int rank;
    int64_t dims[IFD_MAX_RANK];
    size_t data_offset, data_len; /* "[...]" in body */
} numeric_json_v2_input;

typedef struct numeric_json_v2_request {
    bool has_id, has_outputs;
    numeric_json_text id;
    size_t n_inputs, n_outputs;
    numeric_json_v2_input inputs[NUMERIC_JSON_MAX_LIFTED];
    numeric_json_text outputs[NUMERIC_JSON_MAX_LIFTED];
} numeric_json_v2_request;

bool numeric_json_v2_read(const char *body, size_t len, numeric_json_v2_request *out);

/* The tensor of `dtype` and shape dims[0..rank) from the flat array text
 * "[x, ...]", or NULL when the fast path does not take it: a count that
 * does not match the shape, a value out of range or not an integer for an
 * integer type, a type other than FP32/FP64/INT8..INT64/UINT8..UINT32, rank
 * 0, or no memory. The caller then decodes the same text the general way,
 * which gives the same tensor or words the error. */
ifd_value *numeric_json_flat_tensor(const char *text, size_t len, ifd_dtype dtype, int rank,
                                    const int64_t *dims);

#endif /* INFERD_WIRE_NUMERIC_JSON_H */
