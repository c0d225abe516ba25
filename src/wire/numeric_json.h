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

#endif /* INFERD_WIRE_NUMERIC_JSON_H */
