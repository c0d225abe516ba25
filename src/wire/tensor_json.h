/*
 * tensor_json.h — JSON to engine tensors and back, with the strict data
 * contract every protocol shares: the element count must match the shape,
 * JSON numbers become the declared numeric type (integers range-checked,
 * fractions refused for integer types), booleans only become BOOL and
 * strings only BYTES/string. Nothing else is cast.
 * Thread safety: pure functions.
 */
#ifndef INFERD_WIRE_TENSOR_JSON_H
#define INFERD_WIRE_TENSOR_JSON_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>

#include "inferd/inferd.h"

/* KServe V2 datatype names ("FP32", "INT64", "BYTES", ...). */
const char *v2_datatype_name(ifd_dtype dtype);
bool v2_datatype_parse(const char *name, ifd_dtype *dtype);

/* A tensor of the given shape from JSON data given flat (row-major) or as
 * nested arrays (or a bare scalar for rank 0). NULL with err on mismatch. */
ifd_value *json_to_tensor(const json_t *data, ifd_dtype dtype, int rank, const int64_t *dims,
                          char *err, size_t err_size);
/* A tensor whose shape is the nesting of `data` (rectangular arrays). */
ifd_value *json_rows_to_tensor(const json_t *data, ifd_dtype dtype, char *err, size_t err_size);
/* Fill element `index` of t from one JSON scalar (used by the binary
 * protocols' JSON fallbacks and by column-wise decoders). */
bool json_element_to_tensor(const json_t *j, ifd_tensor *t, size_t index, char *err,
                            size_t err_size);

/* The model's declared type against what a request sent. The message names
 * the input, what was expected and what was received. */
bool check_input_contract(const ifd_io_info *io, ifd_dtype dtype, int rank, const int64_t *dims,
                          char *err, size_t err_size);

/* Row-major flat array of t's elements; NaN and infinities become null. */
json_t *tensor_to_json_flat(const ifd_tensor *t);
/* Nested arrays following t's shape. */
json_t *tensor_to_json_nested(const ifd_tensor *t);
/* Any value: tensors nested, sequences as arrays, maps as objects. */
json_t *value_to_json(const ifd_value *v);

/* "[?,4]" / "(1,4)" style renderings. */
const char *type_shape_string(const ifd_type_info *type, char *buf, size_t size);

/* Compact JSON text of j with numbers written as Python writes them
 * (shortest round-trip digits, "1.0" for integral reals): the book's FastAPI
 * server prints floats that way, and clients compare text. NaN and
 * infinities become null. Returns malloc'd text; *len gets its length. */
char *json_encode(const json_t *j, size_t *len);

/* JSON text written directly, without a json_t tree, for the answers on
 * the hot path; numbers come out exactly as json_encode writes them. A
 * failed allocation sets `failed` and later calls do nothing; the caller
 * frees `data`. */
typedef struct json_text {
    char *data;
    size_t len, cap;
    bool failed;
} json_text;
void json_text_put(json_text *t, const char *s, size_t n);
void json_text_real(json_text *t, double d);
/* "[x, ...]" of elements [first, first + count) of a float or double
 * tensor, as tensor_to_json_flat + json_encode would write them; false
 * (nothing written) for other types. */
bool json_text_number_array(json_text *t, const ifd_tensor *tensor, size_t first, size_t count);

/* A JSON string of s[0..n), escaped as json_encode escapes strings. */
void json_text_string(json_text *t, const char *s, size_t n);
void json_text_integer(json_text *t, long long v);
/* What tensor_to_json_flat + json_encode write for t, any element type. */
void json_text_flat(json_text *t, const ifd_tensor *tensor);

#endif /* INFERD_WIRE_TENSOR_JSON_H */
